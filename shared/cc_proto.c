/*
 * cc_proto: protocol v1 codec (API and ownership rule in cc_proto.h, wire format in
 * docs/protocol.md).
 *
 * Decoding runs in a fixed order so that every malformed input has one deterministic
 * reason: size limit, a pre-scan (UTF-8, bracket depth outside strings, NUL inside
 * strings) that runs before cJSON so that no input can drive cJSON's recursion past the
 * depth limit, cJSON parse, then the envelope fields and the op's args.  Decoded strings
 * point into the request's own cJSON tree; derived data (normalised paths, decoded
 * base64, arrays) lives in a per-request list of cJSON_malloc'd blocks freed by cleanup.
 */
#include "cc_proto.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cc_proto_limits cc_proto_limits_default(void) {
  cc_proto_limits l = {
      .max_body_bytes = 1u << 20,
      .max_depth = 32,
      .max_string_bytes = 64u << 10,
      .max_path_bytes = 4096,
      .max_file_bytes = 1u << 20,
      .max_files = 1000,
      .max_env = 256,
      .max_timeout_ms = 3600000,
      .max_list_depth = 16,
      .max_history_limit = 1000,
      .max_response_bytes = 64u << 20,
      .max_response_depth = 64,
  };
  return l;
}

/* ---------------------------------------------------------------- tables */

static const struct {
  const char *name;
  bool project;
  bool streams;
} op_rows[CC_OP_COUNT] = {
#define OP_ROW(name, wire, project, streams) {wire, project, streams},
    CC_PROTO_OP_MAP(OP_ROW)
#undef OP_ROW
};

const char *cc_proto_op_name(cc_proto_op op) {
  return (unsigned)op < CC_OP_COUNT ? op_rows[op].name : "";
}
bool cc_proto_op_needs_project(cc_proto_op op) {
  return (unsigned)op < CC_OP_COUNT && op_rows[op].project;
}
bool cc_proto_op_streams(cc_proto_op op) {
  return (unsigned)op < CC_OP_COUNT && op_rows[op].streams;
}
bool cc_proto_op_from_name(const char *name, cc_proto_op *out) {
  if (!name) return false;
  for (int i = 0; i < CC_OP_COUNT; i++)
    if (strcmp(op_rows[i].name, name) == 0) {
      *out = (cc_proto_op)i;
      return true;
    }
  return false;
}

/* Index of `name` in names[0..count), or -1 (also for a NULL name). */
static int name_index(const char *const *names, int count, const char *name) {
  for (int i = 0; name && i < count; i++)
    if (strcmp(names[i], name) == 0) return i;
  return -1;
}

static const char *const reason_names[CC_REASON_COUNT] = {
#define REASON_ROW(name, wire) wire,
    CC_PROTO_REASON_MAP(REASON_ROW)
#undef REASON_ROW
};
const char *cc_proto_reason_name(cc_proto_reason r) {
  return (unsigned)r < CC_REASON_COUNT ? reason_names[r] : "none";
}
bool cc_proto_reason_from_name(const char *name, cc_proto_reason *out) {
  int i = name_index(reason_names, CC_REASON_COUNT, name);
  if (i >= 0) *out = (cc_proto_reason)i;
  return i >= 0;
}

static const char *const event_names[CC_EVENT_COUNT] = {
#define EVENT_ROW(name, wire) wire,
    CC_PROTO_EVENT_MAP(EVENT_ROW)
#undef EVENT_ROW
};
const char *cc_proto_event_name(cc_proto_event_type t) {
  return (unsigned)t < CC_EVENT_COUNT ? event_names[t] : "";
}
bool cc_proto_event_from_name(const char *name, cc_proto_event_type *out) {
  int i = name_index(event_names, CC_EVENT_COUNT, name);
  if (i >= 0) *out = (cc_proto_event_type)i;
  return i >= 0;
}

static const char *const record_status_names[CC_RECORD_STATUS_COUNT] = {
#define RS_ROW(name, wire) wire,
    CC_PROTO_RECORD_STATUS_MAP(RS_ROW)
#undef RS_ROW
};
const char *cc_proto_record_status_name(cc_proto_record_status s) {
  return (unsigned)s < CC_RECORD_STATUS_COUNT ? record_status_names[s] : "";
}
bool cc_proto_record_status_from_name(const char *name, cc_proto_record_status *out) {
  int i = name_index(record_status_names, CC_RECORD_STATUS_COUNT, name);
  if (i >= 0) *out = (cc_proto_record_status)i;
  return i >= 0;
}
bool cc_proto_record_status_is_final(cc_proto_record_status s) {
  return (unsigned)s < CC_RECORD_STATUS_COUNT && s != CC_RECORD_PENDING && s != CC_RECORD_RUNNING;
}

const char *cc_proto_encoding_name(cc_proto_encoding e) {
  return e == CC_ENC_BASE64 ? "base64" : "utf8";
}

void cc_proto_free(void *p) {
  if (p) cJSON_free(p);
}

/* ---------------------------------------------------------------- errors */

/* Fills `err` (never NULL here) and returns its status: TOO_LARGE for the too_large
 * reason, INTERNAL for NONE (out of memory), BAD_REQUEST otherwise. */
static cc_status fail(cc_proto_error *err, cc_proto_reason reason, const char *field,
                      const char *fmt, ...) {
  err->reason = reason;
  err->status = reason == CC_REASON_TOO_LARGE ? CC_TOO_LARGE
                : reason == CC_REASON_NONE    ? CC_INTERNAL
                                              : CC_BAD_REQUEST;
  snprintf(err->field, sizeof err->field, "%s", field ? field : "");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  return err->status;
}

static cc_status oom(cc_proto_error *err) {
  return fail(err, CC_REASON_NONE, "", "out of memory");
}

static void error_reset(cc_proto_error *err) {
  memset(err, 0, sizeof *err);
  err->status = CC_OK;
}

/* ---------------------------------------------------------------- UTF-8 */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when it is invalid or truncated
 * (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  if (c < 0x80) return 1;
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF)
    need = 2;
  else if (c == 0xE0)
    need = 3, lo = 0xA0;
  else if (c >= 0xE1 && c <= 0xEC)
    need = 3;
  else if (c == 0xED)
    need = 3, hi = 0x9F;
  else if (c >= 0xEE && c <= 0xEF)
    need = 3;
  else if (c == 0xF0)
    need = 4, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3)
    need = 4;
  else if (c == 0xF4)
    need = 4, hi = 0x8F;
  else
    return 0;
  if (n < need) return 0;
  if (s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < need; i++)
    if (s[i] < 0x80 || s[i] > 0xBF) return 0;
  return need;
}

#define HIGH_BITS 0x8080808080808080ULL
#define LOW_BITS 0x0101010101010101ULL

/* Whether the 8 bytes at p are ASCII (and, with no_nul, none of them is NUL). */
static bool ascii8(const unsigned char *p, bool no_nul) {
  uint64_t w;
  memcpy(&w, p, 8);
  if (w & HIGH_BITS) return false;
  return !no_nul || !((w - LOW_BITS) & ~w & HIGH_BITS);
}

/* Whether bytes[0..len) is valid UTF-8 (and, with no_nul, holds no NUL). */
static bool utf8_check(const char *bytes, size_t len, bool no_nul) {
  const unsigned char *s = (const unsigned char *)bytes;
  size_t i = 0;
  while (i < len) {
    if (len - i >= 8 && ascii8(s + i, no_nul)) {
      i += 8;
      continue;
    }
    if (s[i] == 0 && no_nul) return false;
    if (s[i] < 0x80) {
      i++;
      continue;
    }
    size_t k = utf8_seq(s + i, len - i);
    if (!k) return false;
    i += k;
  }
  return true;
}

static bool utf8_valid(const char *bytes, size_t len) {
  return utf8_check(bytes, len, false);
}

bool cc_proto_utf8_valid(const char *bytes, size_t len) { return utf8_check(bytes, len, true); }

cc_status cc_proto_utf8_sanitize(const char *bytes, size_t len, char **out, size_t *out_len) {
  *out = NULL;
  if (out_len) *out_len = 0;
  if (len > (SIZE_MAX - 1) / 3) return CC_TOO_LARGE;
  if (utf8_check(bytes, len, true)) { /* the common case: a plain copy */
    char *copy = cJSON_malloc(len + 1);
    if (!copy) return CC_INTERNAL;
    memcpy(copy, bytes, len);
    copy[len] = '\0';
    *out = copy;
    if (out_len) *out_len = len;
    return CC_OK;
  }
  /* Worst case every byte becomes U+FFFD (3 bytes). */
  char *buf = cJSON_malloc(len * 3 + 1);
  if (!buf) return CC_INTERNAL;
  const unsigned char *s = (const unsigned char *)bytes;
  size_t i = 0, o = 0;
  while (i < len) {
    if (len - i >= 8 && ascii8(s + i, true)) {
      memcpy(buf + o, s + i, 8);
      o += 8;
      i += 8;
      continue;
    }
    size_t k = (s[i] != 0) ? utf8_seq(s + i, len - i) : 0;
    if (k) {
      memcpy(buf + o, s + i, k);
      o += k;
      i += k;
    } else {
      memcpy(buf + o, "\xEF\xBF\xBD", 3);
      o += 3;
      i += 1;
    }
  }
  buf[o] = '\0';
  *out = buf;
  if (out_len) *out_len = o;
  return CC_OK;
}

size_t cc_proto_utf8_complete_prefix(const char *bytes, size_t len) {
  const unsigned char *s = (const unsigned char *)bytes;
  /* Find the lead byte of the last sequence: at most 3 continuation bytes back. */
  size_t back = 0;
  while (back < 3 && back < len && (s[len - 1 - back] & 0xC0) == 0x80) back++;
  if (back == len) return len; /* only continuation bytes: nothing can complete them */
  size_t lead = len - 1 - back;
  unsigned char c = s[lead];
  size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
  if (c >= 0xF5 || need == 1) return len;
  if (back + 1 >= need) return len; /* complete (valid or not: sanitize decides) */
  /* Incomplete: hold it back only if some continuation could still make it valid.  The
   * second byte's range depends on the lead (E0: A0..BF, ED: 80..9F, F0: 90..BF,
   * F4: 80..8F); 0x80 or 0xA0 as filler satisfies one of them in every case. */
  static const unsigned char fillers[2] = {0x80, 0xA0};
  for (int f = 0; f < 2; f++) {
    unsigned char tmp[4];
    memcpy(tmp, s + lead, back + 1);
    for (size_t i = back + 1; i < need; i++) tmp[i] = fillers[f];
    if (utf8_seq(tmp, need) == need) return lead;
  }
  return len;
}

/* ---------------------------------------------------------------- base64 */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

cc_status cc_proto_base64_encode(const unsigned char *data, size_t len, char **out,
                                 size_t *out_len) {
  *out = NULL;
  if (out_len) *out_len = 0;
  if (len > (SIZE_MAX / 4) * 3 - 3) return CC_TOO_LARGE;
  size_t n = (len + 2) / 3 * 4;
  char *buf = cJSON_malloc(n + 1);
  if (!buf) return CC_INTERNAL;
  size_t o = 0, i = 0;
  for (; i + 3 <= len; i += 3) {
    uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
    buf[o++] = b64_alphabet[v >> 18];
    buf[o++] = b64_alphabet[(v >> 12) & 63];
    buf[o++] = b64_alphabet[(v >> 6) & 63];
    buf[o++] = b64_alphabet[v & 63];
  }
  if (len - i == 1) {
    uint32_t v = (uint32_t)data[i] << 16;
    buf[o++] = b64_alphabet[v >> 18];
    buf[o++] = b64_alphabet[(v >> 12) & 63];
    buf[o++] = '=';
    buf[o++] = '=';
  } else if (len - i == 2) {
    uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8;
    buf[o++] = b64_alphabet[v >> 18];
    buf[o++] = b64_alphabet[(v >> 12) & 63];
    buf[o++] = b64_alphabet[(v >> 6) & 63];
    buf[o++] = '=';
  }
  buf[o] = '\0';
  *out = buf;
  if (out_len) *out_len = o;
  return CC_OK;
}

/* Decoding table: the 6-bit value of each alphabet byte, -1 for every other byte. */
static const signed char b64_dec[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1, -1, 63,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1, -1, 0,  1,  2,  3,  4,  5,  6,
    7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, -1,
    -1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48,
    49, 50, 51, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

cc_status cc_proto_base64_decode(const char *text, size_t len, unsigned char **out,
                                 size_t *out_len) {
  *out = NULL;
  if (out_len) *out_len = 0;
  if (len % 4 != 0) return CC_BAD_REQUEST;
  size_t pad = 0;
  if (len >= 4 && text[len - 1] == '=') pad = text[len - 2] == '=' ? 2 : 1;
  size_t n = len / 4 * 3 - pad;
  unsigned char *buf = cJSON_malloc(n + 1);
  if (!buf) return CC_INTERNAL;
  const unsigned char *t = (const unsigned char *)text;
  size_t o = 0, i = 0;
  /* Every group but the last: four alphabet bytes, no padding. */
  for (; i + 4 < len; i += 4) {
    int a = b64_dec[t[i]], b = b64_dec[t[i + 1]], c = b64_dec[t[i + 2]], d = b64_dec[t[i + 3]];
    if ((a | b | c | d) < 0) goto bad;
    uint32_t x = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
    buf[o++] = (unsigned char)(x >> 16);
    buf[o++] = (unsigned char)(x >> 8);
    buf[o++] = (unsigned char)x;
  }
  if (i < len) { /* the last group, with its 0-2 '=' */
    int v[4];
    for (int k = 0; k < 4; k++) {
      v[k] = k >= 4 - (int)pad ? 0 : b64_dec[t[i + k]];
      if (v[k] < 0) goto bad;
    }
    uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
    /* Non-canonical encodings (bits set under the padding) are rejected. */
    if ((pad == 2 && (x & 0xFFFF)) || (pad == 1 && (x & 0xFF))) goto bad;
    buf[o++] = (unsigned char)(x >> 16);
    if (pad < 2) buf[o++] = (unsigned char)(x >> 8);
    if (pad < 1) buf[o++] = (unsigned char)x;
  }
  buf[o] = '\0';
  *out = buf;
  if (out_len) *out_len = o;
  return CC_OK;
bad:
  cJSON_free(buf);
  return CC_BAD_REQUEST;
}

/* ---------------------------------------------------------------- paths and names */

bool cc_proto_valid_project_id(const char *s) {
  if (!s) return false;
  size_t n = strlen(s);
  if (n < 1 || n > CC_PROTO_MAX_PROJECT_BYTES) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-'))) return false;
  }
  return true;
}

cc_status cc_proto_normalize_path(const char *path, size_t len, size_t max_bytes, char **out) {
  static const char home[] = CC_PROTO_HOME;
  const size_t home_len = sizeof home - 1;
  *out = NULL;
  if (!path || len == 0 || len > max_bytes || memchr(path, '\0', len)) return CC_BAD_REQUEST;
  char *buf = cJSON_malloc(home_len + len + 2);
  if (!buf) return CC_INTERNAL;
  size_t o = 0;
  if (path[0] != '/') {
    memcpy(buf, home, home_len);
    o = home_len;
  }
  size_t i = 0;
  while (i < len) {
    while (i < len && path[i] == '/') i++;
    size_t start = i;
    while (i < len && path[i] != '/') i++;
    size_t seg = i - start;
    if (seg == 0 || (seg == 1 && path[start] == '.')) continue;
    if (seg == 2 && path[start] == '.' && path[start + 1] == '.') {
      while (o > 0 && buf[o - 1] != '/') o--;
      if (o > 0) o--; /* drop the '/' too */
      continue;
    }
    buf[o++] = '/';
    memcpy(buf + o, path + start, seg);
    o += seg;
  }
  if (o == 0) buf[o++] = '/';
  buf[o] = '\0';
  bool inside = (o == home_len && memcmp(buf, home, home_len) == 0) ||
                (o > home_len && memcmp(buf, home, home_len) == 0 && buf[home_len] == '/');
  if (!inside || o > max_bytes) {
    cJSON_free(buf);
    return CC_BAD_REQUEST;
  }
  *out = buf;
  return CC_OK;
}

/* ---------------------------------------------------------------- document pre-scan */

typedef struct {
  bool nul;         /* a string contains U+0000 (raw or \u0000) */
  bool nul_in_path; /* ... and it is the value of a "path" or "cwd" member */
} scan_info;

/* Bytes that end a run of plain string content in the pre-scan: '"', '\\' and NUL. */
static const unsigned char string_special[256] = {['"'] = 1, ['\\'] = 1, [0] = 1};

/*
 * Checks, before cJSON runs: valid UTF-8 and nesting of at most `max_depth` arrays and
 * objects, counting brackets outside strings exactly where cJSON would see them.  Notes
 * strings holding NUL, which cJSON would silently truncate.  Returns CC_OK or the error.
 */
static cc_status prescan(const char *buf, size_t len, int max_depth, scan_info *info,
                         cc_proto_error *err) {
  memset(info, 0, sizeof *info);
  if (!utf8_valid(buf, len)) return fail(err, CC_REASON_NOT_JSON, "", "body is not valid UTF-8");
  int depth = 0;
  const char *last_key = NULL;
  size_t last_key_len = 0;
  size_t i = 0;
  while (i < len) {
    char c = buf[i];
    if (c == '"') {
      size_t start = ++i;
      bool has_nul = false;
      while (i < len && buf[i] != '"') {
        while (i < len && !string_special[(unsigned char)buf[i]]) i++; /* plain bytes */
        if (i >= len || buf[i] == '"') break;
        if (buf[i] == '\0') has_nul = true;
        if (buf[i] == '\\' && i + 1 < len) {
          if (buf[i + 1] == 'u' && i + 5 < len && memcmp(buf + i + 2, "0000", 4) == 0)
            has_nul = true;
          i++;
        }
        i++;
      }
      size_t end = i;
      if (i < len) i++; /* closing quote */
      size_t j = i;
      while (j < len && (buf[j] == ' ' || buf[j] == '\t' || buf[j] == '\r' || buf[j] == '\n')) j++;
      bool is_key = j < len && buf[j] == ':';
      if (has_nul && !info->nul) {
        info->nul = true;
        info->nul_in_path = !is_key && last_key &&
                            ((last_key_len == 4 && memcmp(last_key, "path", 4) == 0) ||
                             (last_key_len == 3 && memcmp(last_key, "cwd", 3) == 0));
      }
      if (is_key) {
        last_key = buf + start;
        last_key_len = end - start;
      }
      continue;
    }
    if (c == '[' || c == '{') {
      if (++depth > max_depth)
        return fail(err, CC_REASON_TOO_DEEP, "", "JSON nesting is deeper than the limit of %d",
                    max_depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      depth--; /* never below 0: stray closers must not pay for later openers */
    }
    i++;
  }
  return CC_OK;
}

static cc_status nul_error(cc_proto_error *err, bool in_path) {
  if (in_path) return fail(err, CC_REASON_BAD_PATH, "", "a path contains a NUL character");
  return fail(err, CC_REASON_BAD_VALUE, "",
              "strings must not contain NUL characters (send binary content as base64)");
}

/* Size check, pre-scan and cJSON parse of one document.  *root: cJSON_Delete(), set
 * only on CC_OK.  A NUL inside a string is an error when `nul` is NULL; otherwise the caller
 * gets *nul = 0 (none), 1 (NUL in a string) or 2 (NUL in a path) and reports it itself. */
static cc_status parse_doc(const char *buf, size_t len, size_t max_bytes, int max_depth,
                           const char *what, cJSON **root, int *nul, cc_proto_error *err) {
  *root = NULL;
  if (len > max_bytes)
    return fail(err, CC_REASON_TOO_LARGE, "", "%s is %zu bytes; the limit is %zu", what, len,
                max_bytes);
  if (!buf || len == 0) return fail(err, CC_REASON_NOT_JSON, "", "%s is empty", what);
  scan_info info;
  cc_status st = prescan(buf, len, max_depth, &info, err);
  if (st != CC_OK) return st;
  const char *end = NULL;
  cJSON *doc = cJSON_ParseWithLengthOpts(buf, len, &end, false);
  if (!doc) {
    size_t at = (end && end >= buf && end <= buf + len) ? (size_t)(end - buf) : 0;
    return fail(err, CC_REASON_NOT_JSON, "", "%s is not valid JSON (near byte %zu)", what, at);
  }
  for (const char *p = end; p && p < buf + len; p++) {
    if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
      cJSON_Delete(doc);
      return fail(err, CC_REASON_NOT_JSON, "", "%s has data after the JSON value (byte %zu)", what,
                  (size_t)(p - buf));
    }
  }
  if (info.nul && !nul) {
    cJSON_Delete(doc);
    return nul_error(err, info.nul_in_path);
  }
  if (nul) *nul = info.nul ? (info.nul_in_path ? 2 : 1) : 0;
  *root = doc;
  return CC_OK;
}

/* ---------------------------------------------------------------- field access */

/* Decoding context of one message. */
typedef struct {
  const cc_proto_limits *lim;
  cc_proto_error *err;
  cc_request *req; /* NULL when decoding responses/events */
  char field[64];  /* scratch for dotted field names */
} ctx;

/* A member, or NULL when absent or JSON null (null counts as absent). */
static const cJSON *member(const cJSON *obj, const char *key) {
  const cJSON *n = cJSON_GetObjectItemCaseSensitive(obj, key);
  return (n && !cJSON_IsNull(n)) ? n : NULL;
}

static const char *field_name(ctx *c, const char *prefix, const char *key) {
  snprintf(c->field, sizeof c->field, "%s%s%s", prefix, *prefix ? "." : "", key);
  return c->field;
}

/* Fails with the field `prefix.key` named in err->field and at the start of the message
 * ("args.cmd must be a string").  The name is formatted only here, on failure. */
static cc_status fail_field(ctx *c, cc_proto_reason reason, const char *prefix, const char *key,
                            const char *fmt, ...) {
  const char *f = field_name(c, prefix, key);
  char rest[192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(rest, sizeof rest, fmt, ap);
  va_end(ap);
  return fail(c->err, reason, f, "%s %s", f, rest);
}

/* Reads a string member.  Absent: *out = NULL, missing_field if required.  Longer than
 * `max` bytes: too_large.  Empty and !allow_empty: bad_value. */
static cc_status get_string(ctx *c, const cJSON *obj, const char *prefix, const char *key,
                            bool required, bool allow_empty, size_t max, const char **out,
                            size_t *len_out) {
  *out = NULL;
  if (len_out) *len_out = 0;
  const cJSON *n = member(obj, key);
  if (!n) {
    if (required) return fail_field(c, CC_REASON_MISSING_FIELD, prefix, key, "is required");
    return CC_OK;
  }
  if (!cJSON_IsString(n) || !n->valuestring)
    return fail_field(c, CC_REASON_WRONG_TYPE, prefix, key, "must be a string");
  size_t len = strlen(n->valuestring);
  if (len > max)
    return fail_field(c, CC_REASON_TOO_LARGE, prefix, key, "is %zu bytes; the limit is %zu", len,
                      max);
  if (len == 0 && !allow_empty)
    return fail_field(c, CC_REASON_BAD_VALUE, prefix, key, "must not be empty");
  *out = n->valuestring;
  if (len_out) *len_out = len;
  return CC_OK;
}

static cc_status get_bool(ctx *c, const cJSON *obj, const char *prefix, const char *key, bool dflt,
                          bool *out) {
  *out = dflt;
  const cJSON *n = member(obj, key);
  if (!n) return CC_OK;
  if (!cJSON_IsBool(n))
    return fail_field(c, CC_REASON_WRONG_TYPE, prefix, key, "must be true or false");
  *out = cJSON_IsTrue(n);
  return CC_OK;
}

/* Reads an integer member in [lo, hi].  Not a number: wrong_type; fractional or out of
 * range: bad_value.  Absent: *out = dflt, or missing_field if required. */
static cc_status get_int(ctx *c, const cJSON *obj, const char *prefix, const char *key,
                         bool required, int64_t lo, int64_t hi, int64_t dflt, int64_t *out) {
  *out = dflt;
  const cJSON *n = member(obj, key);
  if (!n) {
    if (required) return fail_field(c, CC_REASON_MISSING_FIELD, prefix, key, "is required");
    return CC_OK;
  }
  if (!cJSON_IsNumber(n))
    return fail_field(c, CC_REASON_WRONG_TYPE, prefix, key, "must be a number");
  double d = n->valuedouble;
  if (!(d >= (double)lo && d <= (double)hi) || d != (double)(int64_t)d)
    return fail_field(c, CC_REASON_BAD_VALUE, prefix, key, "must be an integer from %lld to %lld",
                      (long long)lo, (long long)hi);
  *out = (int64_t)d;
  return CC_OK;
}

/* ---------------------------------------------------------------- request heap */

typedef struct heap_node {
  struct heap_node *next;
  void *p;
} heap_node;

/* Hands `p` (cJSON_malloc'd) to the request; on failure frees it and returns NULL. */
static void *keep(cc_request *r, void *p) {
  if (!p) return NULL;
  heap_node *n = cJSON_malloc(sizeof *n);
  if (!n) {
    cJSON_free(p);
    return NULL;
  }
  n->p = p;
  n->next = r->heap_;
  r->heap_ = n;
  return p;
}

static void *req_calloc(cc_request *r, size_t count, size_t size) {
  if (count == 0) count = 1;
  if (size && count > SIZE_MAX / size) return NULL;
  void *p = cJSON_malloc(count * size);
  if (p) memset(p, 0, count * size);
  return keep(r, p);
}

void cc_request_cleanup(cc_request *req) {
  if (!req) return;
  heap_node *n = req->heap_;
  while (n) {
    heap_node *next = n->next;
    cJSON_free(n->p);
    cJSON_free(n);
    n = next;
  }
  cJSON_Delete(req->root_);
  memset(req, 0, sizeof *req);
}

/* ---------------------------------------------------------------- request args */

/* Reads and normalises a path member.  Absent: *out = dflt (or missing_field). */
static cc_status get_path(ctx *c, const cJSON *obj, const char *prefix, const char *key,
                          bool required, bool allow_home, const char *dflt, const char **out) {
  const char *raw;
  size_t len;
  *out = dflt;
  cc_status st = get_string(c, obj, prefix, key, required, true, SIZE_MAX, &raw, &len);
  if (st != CC_OK || !raw) return st;
  if (len > c->lim->max_path_bytes)
    return fail_field(c, CC_REASON_BAD_PATH, prefix, key, "is longer than %zu bytes",
                      c->lim->max_path_bytes);
  char *norm;
  st = cc_proto_normalize_path(raw, len, c->lim->max_path_bytes, &norm);
  if (st == CC_INTERNAL) return oom(c->err);
  if (st != CC_OK)
    return fail_field(c, CC_REASON_BAD_PATH, prefix, key,
                      "must be non-empty and stay inside " CC_PROTO_HOME);
  if (!allow_home && strcmp(norm, CC_PROTO_HOME) == 0) {
    cJSON_free(norm);
    return fail_field(c, CC_REASON_BAD_PATH, prefix, key, "must name a file inside " CC_PROTO_HOME);
  }
  if (!keep(c->req, norm)) return oom(c->err);
  *out = norm;
  return CC_OK;
}

static cc_status get_encoding(ctx *c, const cJSON *obj, const char *prefix,
                              cc_proto_encoding *out) {
  const char *s;
  *out = CC_ENC_UTF8;
  cc_status st = get_string(c, obj, prefix, "encoding", false, false, 16, &s, NULL);
  if (st != CC_OK) {
    /* an over-long encoding name is a bad value, not a large body */
    if (c->err->reason == CC_REASON_TOO_LARGE) goto bad;
    return st;
  }
  if (!s || strcmp(s, "utf8") == 0) return CC_OK;
  if (strcmp(s, "base64") == 0) {
    *out = CC_ENC_BASE64;
    return CC_OK;
  }
bad:
  return fail_field(c, CC_REASON_BAD_VALUE, prefix, "encoding", "must be \"utf8\" or \"base64\"");
}

/* path + content + encoding?, as in writeFile and setupProject files[]. */
static cc_status get_file(ctx *c, const cJSON *obj, const char *prefix, cc_proto_file *file) {
  cc_status st = get_path(c, obj, prefix, "path", true, false, NULL, &file->path);
  if (st != CC_OK) return st;
  st = get_encoding(c, obj, prefix, &file->encoding);
  if (st != CC_OK) return st;
  size_t max = c->lim->max_file_bytes;
  size_t max_text = file->encoding == CC_ENC_BASE64 ? (max + 2) / 3 * 4 : max;
  const char *text;
  size_t len;
  st = get_string(c, obj, prefix, "content", true, true, max_text, &text, &len);
  if (st != CC_OK) return st;
  if (file->encoding == CC_ENC_UTF8) {
    file->content = (const unsigned char *)text;
    file->content_len = len;
    return CC_OK;
  }
  unsigned char *bytes;
  size_t n;
  st = cc_proto_base64_decode(text, len, &bytes, &n);
  if (st == CC_INTERNAL) return oom(c->err);
  if (st != CC_OK)
    return fail_field(c, CC_REASON_BAD_VALUE, prefix, "content",
                      "is not valid base64 (RFC 4648, padded)");
  if (!keep(c->req, bytes)) return oom(c->err);
  if (n > max)
    return fail_field(c, CC_REASON_TOO_LARGE, prefix, "content", "is %zu bytes; the limit is %zu",
                      n, max);
  file->content = bytes;
  file->content_len = n;
  return CC_OK;
}

static bool valid_env_name(const char *s) {
  if (!s || !*s) return false;
  for (size_t i = 0; s[i]; i++) {
    char ch = s[i];
    bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_' ||
              (i > 0 && ch >= '0' && ch <= '9');
    if (!ok) return false;
  }
  return true;
}

static cc_status args_exec(ctx *c, const cJSON *a) {
  cc_proto_exec_args *x = &c->req->exec;
  const cc_proto_limits *l = c->lim;
  cc_status st;
  int64_t v;
  if ((st = get_string(c, a, "args", "cmd", true, false, l->max_string_bytes, &x->cmd, NULL)))
    return st;
  if ((st = get_path(c, a, "args", "cwd", false, true, NULL, &x->cwd))) return st;
  if ((st = get_int(c, a, "args", "timeoutMs", false, 1, l->max_timeout_ms, 0, &v))) return st;
  x->timeout_ms = v;
  if ((st = get_bool(c, a, "args", "useCache", true, &x->use_cache))) return st;
  if ((st = get_bool(c, a, "args", "readOnly", false, &x->read_only))) return st;
  if ((st = get_string(c, a, "args", "stdin", false, true, l->max_file_bytes, &x->stdin_data,
                       &x->stdin_len)))
    return st;
  const cJSON *env = member(a, "env");
  if (env) {
    if (!cJSON_IsObject(env))
      return fail(c->err, CC_REASON_WRONG_TYPE, "args.env",
                  "args.env must be an object of strings");
    size_t n = (size_t)cJSON_GetArraySize(env);
    if (n > l->max_env)
      return fail(c->err, CC_REASON_TOO_LARGE, "args.env",
                  "args.env has %zu entries; the limit is %zu", n, l->max_env);
    x->env = req_calloc(c->req, n, sizeof *x->env);
    if (!x->env) return oom(c->err);
    const cJSON *e;
    cJSON_ArrayForEach(e, env) {
      if (!valid_env_name(e->string))
        return fail(c->err, CC_REASON_BAD_VALUE, "args.env",
                    "args.env names must match [A-Za-z_][A-Za-z0-9_]*");
      if (!cJSON_IsString(e) || !e->valuestring)
        return fail(c->err, CC_REASON_WRONG_TYPE, "args.env", "args.env values must be strings");
      if (strlen(e->valuestring) > l->max_string_bytes)
        return fail(c->err, CC_REASON_TOO_LARGE, "args.env",
                    "an args.env value is longer than %zu bytes", l->max_string_bytes);
      x->env[x->env_count].name = e->string;
      x->env[x->env_count].value = e->valuestring;
      x->env_count++;
    }
  }
  return CC_OK;
}

static cc_status args_setup(ctx *c, const cJSON *a) {
  cc_proto_setup_project_args *x = &c->req->setup_project;
  cc_status st;
  const cJSON *files = member(a, "files");
  if (!files) return fail(c->err, CC_REASON_MISSING_FIELD, "args.files", "args.files is required");
  if (!cJSON_IsArray(files))
    return fail(c->err, CC_REASON_WRONG_TYPE, "args.files", "args.files must be an array");
  size_t n = (size_t)cJSON_GetArraySize(files);
  if (n > c->lim->max_files)
    return fail(c->err, CC_REASON_TOO_LARGE, "args.files",
                "args.files has %zu entries; the limit is %zu", n, c->lim->max_files);
  x->files = req_calloc(c->req, n, sizeof *x->files);
  if (!x->files) return oom(c->err);
  const cJSON *f;
  cJSON_ArrayForEach(f, files) {
    char prefix[32];
    snprintf(prefix, sizeof prefix, "args.files[%zu]", x->file_count);
    if (!cJSON_IsObject(f))
      return fail(c->err, CC_REASON_WRONG_TYPE, prefix, "%s must be an object", prefix);
    if ((st = get_file(c, f, prefix, &x->files[x->file_count]))) return st;
    x->file_count++;
  }
  return get_string(c, a, "args", "install", false, false, c->lim->max_string_bytes, &x->install,
                    NULL);
}

static cc_status decode_args(ctx *c, const cJSON *a) {
  cc_request *r = c->req;
  const cc_proto_limits *l = c->lim;
  cc_status st;
  int64_t v;
  switch (r->op) {
    case CC_OP_EXEC:
      return args_exec(c, a);
    case CC_OP_WRITE_FILE:
      return get_file(c, a, "args", &r->write_file.file);
    case CC_OP_READ_FILE:
      if ((st = get_path(c, a, "args", "path", true, false, NULL, &r->read_file.path))) return st;
      return get_encoding(c, a, "args", &r->read_file.encoding);
    case CC_OP_LIST_DIR:
      if ((st = get_path(c, a, "args", "path", false, true, CC_PROTO_HOME, &r->list_dir.path)))
        return st;
      if ((st = get_int(c, a, "args", "depth", false, 1, l->max_list_depth, 1, &v))) return st;
      r->list_dir.depth = (int)v;
      return CC_OK;
    case CC_OP_SETUP_PROJECT:
      return args_setup(c, a);
    case CC_OP_START_DEV_SERVER:
      if ((st = get_int(c, a, "args", "port", true, 1, 65535, 0, &v))) return st;
      r->start_dev_server.port = (int)v;
      if ((st = get_string(c, a, "args", "cmd", false, false, l->max_string_bytes,
                           &r->start_dev_server.cmd, NULL)))
        return st;
      return get_path(c, a, "args", "cwd", false, true, NULL, &r->start_dev_server.cwd);
    case CC_OP_KILL_PROCESS:
      if ((st = get_int(c, a, "args", "pid", true, 1, 4294967295LL, 0, &v))) return st;
      r->kill_process.pid = v;
      return CC_OK;
    case CC_OP_GET_HISTORY:
      if ((st = get_int(c, a, "args", "limit", false, 1, l->max_history_limit, 50, &v))) return st;
      r->get_history.limit = (int)v;
      st = get_string(c, a, "args", "before", false, false, CC_PROTO_MAX_ID_BYTES,
                      &r->get_history.before, NULL);
      if (st == CC_TOO_LARGE)
        return fail(c->err, CC_REASON_BAD_VALUE, "args.before",
                    "args.before must be a cursor of at most %d bytes", CC_PROTO_MAX_ID_BYTES);
      return st;
    case CC_OP_GET_RESULT:
      st = get_string(c, a, "args", "executionId", true, false, CC_PROTO_MAX_ID_BYTES,
                      &r->get_result.execution_id, NULL);
      if (st == CC_TOO_LARGE)
        return fail(c->err, CC_REASON_BAD_VALUE, "args.executionId",
                    "args.executionId must be at most %d bytes", CC_PROTO_MAX_ID_BYTES);
      return st;
    case CC_OP_UPDATE_PROJECT: {
      const cJSON *p = member(a, "patch");
      if (!p) return fail(c->err, CC_REASON_MISSING_FIELD, "args.patch", "args.patch is required");
      if (!cJSON_IsObject(p))
        return fail(c->err, CC_REASON_WRONG_TYPE, "args.patch",
                    "args.patch must be an object (JSON merge patch)");
      r->update_project.patch = p;
      return CC_OK;
    }
    case CC_OP_CLEAR_CACHE:
      return get_string(c, a, "args", "cmd", false, false, l->max_string_bytes, &r->clear_cache.cmd,
                        NULL);
    case CC_OP_HELLO:
    case CC_OP_LIST_PROCESSES:
    case CC_OP_GET_PROJECT:
    case CC_OP_LIST_PROJECTS:
    case CC_OP_DELETE_PROJECT:
    case CC_OP_COUNT:
      return CC_OK;
  }
  return CC_OK;
}

/* ---------------------------------------------------------------- request envelope */

static cc_status decode_request(ctx *c, cJSON *root, int nul) {
  cc_request *r = c->req;
  cc_proto_error *err = c->err;
  cc_status st;
  if (!cJSON_IsObject(root))
    return fail(err, CC_REASON_WRONG_TYPE, "", "a request must be a JSON object");

  /* Echo the id in the error response whenever it is readable. */
  const cJSON *idn = member(root, "id");
  if (cJSON_IsString(idn) && idn->valuestring && *idn->valuestring) {
    size_t n = strlen(idn->valuestring);
    if (n <= CC_PROTO_MAX_ID_BYTES && n < sizeof err->id) memcpy(err->id, idn->valuestring, n + 1);
  }
  if (nul) return nul_error(err, nul == 2);

  const cJSON *v = member(root, "v");
  if (!v) return fail(err, CC_REASON_MISSING_FIELD, "v", "v (protocol version) is required");
  if (!cJSON_IsNumber(v)) return fail(err, CC_REASON_WRONG_TYPE, "v", "v must be a number");
  if (v->valuedouble != CC_PROTO_VERSION)
    return fail(err, CC_REASON_BAD_VERSION, "v", "unsupported protocol version; this is v%d",
                CC_PROTO_VERSION);
  r->v = CC_PROTO_VERSION;

  if ((st = get_string(c, root, "", "id", true, false, SIZE_MAX, &r->id, NULL))) return st;
  if (strlen(r->id) > CC_PROTO_MAX_ID_BYTES)
    return fail(err, CC_REASON_BAD_VALUE, "id", "id must be 1 to %d bytes", CC_PROTO_MAX_ID_BYTES);

  const char *op;
  if ((st = get_string(c, root, "", "op", true, true, SIZE_MAX, &op, NULL))) return st;
  if (!cc_proto_op_from_name(op, &r->op))
    return fail(err, CC_REASON_UNKNOWN_OP, "op", "unknown op");

  const cJSON *p = member(root, "project");
  if (!p && cc_proto_op_needs_project(r->op))
    return fail(err, CC_REASON_MISSING_FIELD, "project", "project is required for %s",
                cc_proto_op_name(r->op));
  if (p) {
    if (!cJSON_IsString(p) || !p->valuestring)
      return fail(err, CC_REASON_WRONG_TYPE, "project", "project must be a string");
    if (!cc_proto_valid_project_id(p->valuestring))
      return fail(err, CC_REASON_BAD_PROJECT, "project",
                  "project must be 1-64 characters [A-Za-z0-9][A-Za-z0-9._-]*");
    r->project = p->valuestring;
  }

  if ((st = get_bool(c, root, "", "stream", false, &r->stream))) return st;
  if (r->stream && !cc_proto_op_streams(r->op))
    return fail(err, CC_REASON_BAD_VALUE, "stream",
                "stream is supported only by exec and setupProject");

  const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "args");
  if (!a || cJSON_IsNull(a)) { /* absent or null: an empty object, so `input` is always {} */
    cJSON *empty = cJSON_CreateObject();
    bool ok = empty && (a ? cJSON_ReplaceItemInObjectCaseSensitive(root, "args", empty)
                          : cJSON_AddItemToObject(root, "args", empty));
    if (!ok) {
      cJSON_Delete(empty);
      return oom(err);
    }
    a = empty;
  }
  if (!cJSON_IsObject(a)) return fail(err, CC_REASON_WRONG_TYPE, "args", "args must be an object");
  r->args = a;
  return decode_args(c, a);
}

cc_status cc_proto_parse_request(const char *buf, size_t len, const cc_proto_limits *lim,
                                 cc_request *out, cc_proto_error *err) {
  cc_proto_limits dflt;
  cc_proto_error local;
  if (!lim) {
    dflt = cc_proto_limits_default();
    lim = &dflt;
  }
  if (!err) err = &local;
  error_reset(err);
  memset(out, 0, sizeof *out);
  cJSON *root;
  int nul;
  cc_status st =
      parse_doc(buf, len, lim->max_body_bytes, lim->max_depth, "request body", &root, &nul, err);
  if (st != CC_OK) return st;
  out->root_ = root;
  ctx c = {.lim = lim, .err = err, .req = out};
  st = decode_request(&c, root, nul);
  if (st != CC_OK) {
    cc_request_cleanup(out);
    return st;
  }
  return CC_OK;
}

/* ---------------------------------------------------------------- encoders */

/* Prints `doc` unformatted into *out (cJSON allocator) and deletes `doc`. */
static cc_status print_and_delete(cJSON *doc, char **out) {
  *out = doc ? cJSON_PrintUnformatted(doc) : NULL;
  cJSON_Delete(doc);
  return *out ? CC_OK : CC_INTERNAL;
}

/* Adds `item` to `obj` as a reference: printed with it, never freed or changed by it. */
static bool add_ref(cJSON *obj, const char *key, const cJSON *item) {
  return cJSON_AddItemReferenceToObject(obj, key, (cJSON *)item);
}

cc_status cc_proto_encode_request(const char *id, cc_proto_op op, const char *project, bool stream,
                                  const cJSON *args, const cc_proto_limits *lim, char **out,
                                  cc_proto_error *err) {
  cc_proto_error local;
  if (!err) err = &local;
  error_reset(err);
  *out = NULL;
  if ((unsigned)op >= CC_OP_COUNT) return fail(err, CC_REASON_UNKNOWN_OP, "op", "unknown op");
  cJSON *doc = cJSON_CreateObject();
  bool ok = doc && cJSON_AddNumberToObject(doc, "v", CC_PROTO_VERSION) &&
            (id ? cJSON_AddStringToObject(doc, "id", id) != NULL
                : cJSON_AddNullToObject(doc, "id") != NULL) &&
            cJSON_AddStringToObject(doc, "op", cc_proto_op_name(op)) &&
            (!project || cJSON_AddStringToObject(doc, "project", project)) &&
            (!stream || cJSON_AddTrueToObject(doc, "stream")) &&
            (args ? add_ref(doc, "args", args) : cJSON_AddObjectToObject(doc, "args") != NULL);
  if (!ok) {
    cJSON_Delete(doc);
    return oom(err);
  }
  char *text;
  if (print_and_delete(doc, &text) != CC_OK) return oom(err);
  cc_request check;
  cc_status st = cc_proto_parse_request(text, strlen(text), lim, &check, err);
  cc_request_cleanup(&check);
  if (st != CC_OK) {
    cJSON_free(text);
    return st;
  }
  *out = text;
  return CC_OK;
}

cc_status cc_proto_encode_ok(const char *id, const cJSON *result, int64_t generation, char **out) {
  *out = NULL;
  cJSON *doc = cJSON_CreateObject();
  bool ok =
      doc && cJSON_AddNumberToObject(doc, "v", CC_PROTO_VERSION) &&
      (id ? cJSON_AddStringToObject(doc, "id", id) != NULL
          : cJSON_AddNullToObject(doc, "id") != NULL) &&
      cJSON_AddTrueToObject(doc, "ok") &&
      (result ? add_ref(doc, "result", result) : cJSON_AddObjectToObject(doc, "result") != NULL) &&
      (generation < 0 || cJSON_AddNumberToObject(doc, "generation", (double)generation));
  if (!ok) {
    cJSON_Delete(doc);
    return CC_INTERNAL;
  }
  return print_and_delete(doc, out);
}

cc_status cc_proto_encode_error(const char *id, cc_status status, const char *message,
                                const char *reason, char **out) {
  *out = NULL;
  if (status == CC_OK || (unsigned)status >= CC_STATUS_COUNT) status = CC_INTERNAL;
  cJSON *doc = cJSON_CreateObject();
  cJSON *e = NULL;
  bool ok = doc && cJSON_AddNumberToObject(doc, "v", CC_PROTO_VERSION) &&
            (id ? cJSON_AddStringToObject(doc, "id", id) != NULL
                : cJSON_AddNullToObject(doc, "id") != NULL) &&
            cJSON_AddFalseToObject(doc, "ok") && (e = cJSON_AddObjectToObject(doc, "error")) &&
            cJSON_AddStringToObject(e, "code", cc_status_code(status)) &&
            cJSON_AddStringToObject(e, "message", message ? message : cc_status_message(status)) &&
            cJSON_AddBoolToObject(e, "retryable", cc_status_retryable(status)) &&
            (!reason || cJSON_AddStringToObject(e, "reason", reason));
  if (!ok) {
    cJSON_Delete(doc);
    return CC_INTERNAL;
  }
  return print_and_delete(doc, out);
}

cc_status cc_proto_encode_decode_error(const cc_proto_error *err, char **out) {
  cc_status st = err->status == CC_OK ? CC_BAD_REQUEST : err->status;
  return cc_proto_encode_error(
      err->id[0] ? err->id : NULL, st, err->message,
      err->reason != CC_REASON_NONE ? cc_proto_reason_name(err->reason) : NULL, out);
}

cc_status cc_proto_encode_event(const char *id, cc_proto_event_type type, const cJSON *data,
                                char **out) {
  *out = NULL;
  if ((unsigned)type >= CC_EVENT_COUNT) return CC_BAD_REQUEST;
  if (type == CC_EVENT_START ? (data && !cJSON_IsObject(data)) : !cJSON_IsString(data))
    return CC_BAD_REQUEST;
  cJSON *doc = cJSON_CreateObject();
  bool ok = doc && cJSON_AddStringToObject(doc, "id", id ? id : "") &&
            cJSON_AddStringToObject(doc, "event", cc_proto_event_name(type)) &&
            (data ? add_ref(doc, "data", data) : cJSON_AddObjectToObject(doc, "data") != NULL);
  if (!ok) {
    cJSON_Delete(doc);
    return CC_INTERNAL;
  }
  return print_and_delete(doc, out);
}

cc_status cc_proto_encode_output_event(const char *id, cc_proto_event_type type, const char *bytes,
                                       size_t len, char **out) {
  *out = NULL;
  if (type != CC_EVENT_STDOUT && type != CC_EVENT_STDERR) return CC_BAD_REQUEST;
  char *text;
  cc_status st = cc_proto_utf8_sanitize(bytes, len, &text, NULL);
  if (st != CC_OK) return st;
  cJSON *data = cJSON_CreateString(text);
  cJSON_free(text);
  if (!data) return CC_INTERNAL;
  st = cc_proto_encode_event(id, type, data, out);
  cJSON_Delete(data);
  return st;
}

/* ---------------------------------------------------------------- response decoding */

static cc_status response_from_root(ctx *c, cJSON *root, cc_response *r) {
  cc_proto_error *err = c->err;
  cc_status st;
  if (!cJSON_IsObject(root))
    return fail(err, CC_REASON_WRONG_TYPE, "", "a response must be a JSON object");
  const cJSON *v = member(root, "v");
  if (!v) return fail(err, CC_REASON_MISSING_FIELD, "v", "v is required");
  if (!cJSON_IsNumber(v)) return fail(err, CC_REASON_WRONG_TYPE, "v", "v must be a number");
  if (v->valuedouble != CC_PROTO_VERSION)
    return fail(err, CC_REASON_BAD_VERSION, "v", "unsupported protocol version");
  r->v = CC_PROTO_VERSION;
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
  if (!id) return fail(err, CC_REASON_MISSING_FIELD, "id", "id is required");
  if (!cJSON_IsNull(id)) {
    if (!cJSON_IsString(id) || !id->valuestring)
      return fail(err, CC_REASON_WRONG_TYPE, "id", "id must be a string or null");
    r->id = id->valuestring;
  }
  const cJSON *ok = member(root, "ok");
  if (!ok) return fail(err, CC_REASON_MISSING_FIELD, "ok", "ok is required");
  if (!cJSON_IsBool(ok)) return fail(err, CC_REASON_WRONG_TYPE, "ok", "ok must be a boolean");
  r->ok = cJSON_IsTrue(ok);
  r->generation = -1;
  if (r->ok) {
    const cJSON *res = member(root, "result");
    if (!res) return fail(err, CC_REASON_MISSING_FIELD, "result", "result is required");
    if (!cJSON_IsObject(res))
      return fail(err, CC_REASON_WRONG_TYPE, "result", "result must be an object");
    r->result = res;
    int64_t g;
    if ((st = get_int(c, root, "", "generation", false, 0, (int64_t)1 << 53, -1, &g))) return st;
    r->generation = g;
    return CC_OK;
  }
  const cJSON *e = member(root, "error");
  if (!e) return fail(err, CC_REASON_MISSING_FIELD, "error", "error is required");
  if (!cJSON_IsObject(e))
    return fail(err, CC_REASON_WRONG_TYPE, "error", "error must be an object");
  cc_proto_error_info *info = &r->error;
  if ((st = get_string(c, e, "error", "code", true, false, SIZE_MAX, &info->code, NULL))) return st;
  if (!cc_status_from_code(info->code, &info->status) || info->status == CC_OK)
    info->status = CC_INTERNAL;
  if ((st = get_string(c, e, "error", "message", true, true, SIZE_MAX, &info->message, NULL)))
    return st;
  if ((st = get_bool(c, e, "error", "retryable", cc_status_retryable(info->status),
                     &info->retryable)))
    return st;
  return get_string(c, e, "error", "reason", false, true, SIZE_MAX, &info->reason, NULL);
}

static cc_status event_from_root(ctx *c, cJSON *root, cc_event *ev) {
  cc_proto_error *err = c->err;
  cc_status st;
  if (!cJSON_IsObject(root))
    return fail(err, CC_REASON_WRONG_TYPE, "", "an event must be a JSON object");
  if ((st = get_string(c, root, "", "id", true, true, SIZE_MAX, &ev->id, NULL))) return st;
  const char *name;
  if ((st = get_string(c, root, "", "event", true, true, SIZE_MAX, &name, NULL))) return st;
  if (!cc_proto_event_from_name(name, &ev->type))
    return fail(err, CC_REASON_BAD_VALUE, "event", "unknown event type");
  const cJSON *data = member(root, "data");
  if (ev->type == CC_EVENT_START) {
    if (data && !cJSON_IsObject(data))
      return fail(err, CC_REASON_WRONG_TYPE, "data", "data of a start event must be an object");
  } else {
    if (!data) return fail(err, CC_REASON_MISSING_FIELD, "data", "data is required");
    if (!cJSON_IsString(data) || !data->valuestring)
      return fail(err, CC_REASON_WRONG_TYPE, "data", "data of an output event must be a string");
    ev->text = data->valuestring;
  }
  ev->data = data;
  return CC_OK;
}

static void limits_or_default(const cc_proto_limits **lim, cc_proto_limits *dflt) {
  if (!*lim) {
    *dflt = cc_proto_limits_default();
    *lim = dflt;
  }
}

cc_status cc_proto_parse_response(const char *buf, size_t len, const cc_proto_limits *lim,
                                  cc_response *out, cc_proto_error *err) {
  cc_proto_limits dflt;
  cc_proto_error local;
  limits_or_default(&lim, &dflt);
  if (!err) err = &local;
  error_reset(err);
  memset(out, 0, sizeof *out);
  cJSON *root;
  cc_status st = parse_doc(buf, len, lim->max_response_bytes, lim->max_response_depth, "response",
                           &root, NULL, err);
  if (st != CC_OK) return st;
  out->root_ = root;
  ctx c = {.lim = lim, .err = err};
  if ((st = response_from_root(&c, root, out)) != CC_OK) cc_response_cleanup(out);
  return st;
}

void cc_response_cleanup(cc_response *resp) {
  if (!resp) return;
  cJSON_Delete(resp->root_);
  memset(resp, 0, sizeof *resp);
}

cc_status cc_proto_parse_event(const char *buf, size_t len, const cc_proto_limits *lim,
                               cc_event *out, cc_proto_error *err) {
  cc_proto_limits dflt;
  cc_proto_error local;
  limits_or_default(&lim, &dflt);
  if (!err) err = &local;
  error_reset(err);
  memset(out, 0, sizeof *out);
  cJSON *root;
  cc_status st = parse_doc(buf, len, lim->max_response_bytes, lim->max_response_depth, "event",
                           &root, NULL, err);
  if (st != CC_OK) return st;
  out->root_ = root;
  ctx c = {.lim = lim, .err = err};
  if ((st = event_from_root(&c, root, out)) != CC_OK) cc_event_cleanup(out);
  return st;
}

void cc_event_cleanup(cc_event *ev) {
  if (!ev) return;
  cJSON_Delete(ev->root_);
  memset(ev, 0, sizeof *ev);
}

cc_status cc_proto_parse_line(const char *buf, size_t len, const cc_proto_limits *lim,
                              cc_proto_line *out, cc_proto_error *err) {
  cc_proto_limits dflt;
  cc_proto_error local;
  limits_or_default(&lim, &dflt);
  if (!err) err = &local;
  error_reset(err);
  memset(out, 0, sizeof *out);
  if (len > 0 && buf[len - 1] == '\n') len--;
  if (len > 0 && buf[len - 1] == '\r') len--;
  cJSON *root;
  cc_status st = parse_doc(buf, len, lim->max_response_bytes, lim->max_response_depth,
                           "stream line", &root, NULL, err);
  if (st != CC_OK) return st;
  ctx c = {.lim = lim, .err = err};
  out->is_event = cJSON_IsObject(root) && cJSON_GetObjectItemCaseSensitive(root, "event");
  if (out->is_event) {
    out->event.root_ = root;
    st = event_from_root(&c, root, &out->event);
  } else {
    out->response.root_ = root;
    st = response_from_root(&c, root, &out->response);
  }
  if (st != CC_OK) cc_proto_line_cleanup(out);
  return st;
}

void cc_proto_line_cleanup(cc_proto_line *line) {
  if (!line) return;
  cc_event_cleanup(&line->event);
  cc_response_cleanup(&line->response);
  memset(line, 0, sizeof *line);
}

/* ---------------------------------------------------------------- ExecutionResult */

/* Adds a text member, replacing invalid UTF-8 so the document stays valid JSON. */
static bool add_text(cJSON *obj, const char *key, const char *text) {
  if (!text) text = "";
  size_t len = strlen(text);
  if (utf8_valid(text, len)) return cJSON_AddStringToObject(obj, key, text) != NULL;
  char *clean;
  if (cc_proto_utf8_sanitize(text, len, &clean, NULL) != CC_OK) return false;
  bool ok = cJSON_AddStringToObject(obj, key, clean) != NULL;
  cJSON_free(clean);
  return ok;
}

cc_status cc_proto_exec_result_to_json(const cc_proto_exec_result *r, cJSON **out) {
  *out = NULL;
  cJSON *o = cJSON_CreateObject();
  bool ok = o && add_text(o, "id", r->id) && add_text(o, "stdout", r->stdout_text) &&
            add_text(o, "stderr", r->stderr_text) &&
            cJSON_AddNumberToObject(o, "exitCode", r->exit_code) &&
            cJSON_AddNumberToObject(o, "duration", (double)r->duration_ms) &&
            cJSON_AddBoolToObject(o, "cached", r->cached) &&
            cJSON_AddStringToObject(o, "status", cc_proto_record_status_name(r->status)) &&
            (!r->truncated || cJSON_AddTrueToObject(o, "truncated")) &&
            (!r->sandbox_recreated || cJSON_AddTrueToObject(o, "sandboxRecreated")) &&
            (r->restored_from_ms <= 0 ||
             (cJSON_AddTrueToObject(o, "sandboxRestored") &&
              cJSON_AddNumberToObject(o, "restoredFrom", (double)r->restored_from_ms)));
  if (!ok) {
    cJSON_Delete(o);
    return CC_INTERNAL;
  }
  *out = o;
  return CC_OK;
}

cc_status cc_proto_exec_result_from_json(const cJSON *obj, cc_proto_exec_result *out) {
  memset(out, 0, sizeof *out);
  if (!cJSON_IsObject(obj)) return CC_BAD_REQUEST;
  cc_proto_error err;
  error_reset(&err);
  cc_proto_limits lim = cc_proto_limits_default();
  ctx c = {.lim = &lim, .err = &err};
  int64_t v;
  const char *status;
  if (get_string(&c, obj, "", "id", true, true, SIZE_MAX, &out->id, NULL) ||
      get_string(&c, obj, "", "stdout", true, true, SIZE_MAX, &out->stdout_text, NULL) ||
      get_string(&c, obj, "", "stderr", true, true, SIZE_MAX, &out->stderr_text, NULL) ||
      get_int(&c, obj, "", "exitCode", true, INT32_MIN, INT32_MAX, -1, &v))
    return CC_BAD_REQUEST;
  out->exit_code = (int)v;
  if (get_int(&c, obj, "", "duration", true, 0, (int64_t)1 << 53, 0, &out->duration_ms) ||
      get_bool(&c, obj, "", "cached", false, &out->cached) ||
      get_string(&c, obj, "", "status", true, false, SIZE_MAX, &status, NULL) ||
      !cc_proto_record_status_from_name(status, &out->status) ||
      get_bool(&c, obj, "", "truncated", false, &out->truncated) ||
      get_bool(&c, obj, "", "sandboxRecreated", false, &out->sandbox_recreated) ||
      get_int(&c, obj, "", "restoredFrom", false, 0, (int64_t)1 << 53, 0, &out->restored_from_ms))
    return CC_BAD_REQUEST;
  return CC_OK;
}

/* ---------------------------------------------------------------- limits as JSON */

cc_status cc_proto_limits_to_json(const cc_proto_limits *l, cJSON **out) {
  *out = NULL;
  cJSON *o = cJSON_CreateObject();
  bool ok = o && cJSON_AddNumberToObject(o, "maxBodyBytes", (double)l->max_body_bytes) &&
            cJSON_AddNumberToObject(o, "maxDepth", l->max_depth) &&
            cJSON_AddNumberToObject(o, "maxStringBytes", (double)l->max_string_bytes) &&
            cJSON_AddNumberToObject(o, "maxPathBytes", (double)l->max_path_bytes) &&
            cJSON_AddNumberToObject(o, "maxFileBytes", (double)l->max_file_bytes) &&
            cJSON_AddNumberToObject(o, "maxFiles", (double)l->max_files) &&
            cJSON_AddNumberToObject(o, "maxEnv", (double)l->max_env) &&
            cJSON_AddNumberToObject(o, "maxTimeoutMs", (double)l->max_timeout_ms) &&
            cJSON_AddNumberToObject(o, "maxListDepth", l->max_list_depth) &&
            cJSON_AddNumberToObject(o, "maxHistoryLimit", l->max_history_limit);
  if (!ok) {
    cJSON_Delete(o);
    return CC_INTERNAL;
  }
  *out = o;
  return CC_OK;
}
