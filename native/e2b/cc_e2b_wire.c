/*
 * cc_e2b_wire: Connect envelopes, E2B/envd JSON, error mapping, base64, scrubbing.
 *
 * Pure functions over bytes (no I/O, no global state), so the unit tests and the fuzz
 * targets exercise exactly the code the client runs.  Every allocation is bounded by the
 * caller's limits: an envelope payload by max_payload, a JSON document by the response
 * limit the client enforced before calling here.
 */
#include "cc_e2b_wire.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------- helpers */

/* Copies src into dst (n bytes), truncating.  Returns false if it had to truncate. */
static bool copy_str(char *dst, size_t n, const char *src) {
  if (n == 0) return false;
  if (!src) src = "";
  size_t l = strlen(src);
  if (l >= n) {
    memcpy(dst, src, n - 1);
    dst[n - 1] = 0;
    return false;
  }
  memcpy(dst, src, l + 1);
  return true;
}

static const char *json_str(const cJSON *obj, const char *name, const char *alt) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
  if (!v && alt) v = cJSON_GetObjectItemCaseSensitive(obj, alt);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const cJSON *json_obj(const cJSON *obj, const char *name, const char *alt) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
  if (!v && alt) v = cJSON_GetObjectItemCaseSensitive(obj, alt);
  return cJSON_IsObject(v) ? v : NULL;
}

/* Reads an integer that may be a JSON number or a decimal string (proto3 int64).  Absent ->
 * *out = 0 and true.  Out of [lo, hi] or malformed -> false. */
static bool json_int(const cJSON *obj, const char *name, const char *alt, long long lo,
                     long long hi, long long *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
  if (!v && alt) v = cJSON_GetObjectItemCaseSensitive(obj, alt);
  *out = 0;
  if (!v || cJSON_IsNull(v)) return true;
  if (cJSON_IsNumber(v)) {
    double d = v->valuedouble;
    if (!(d >= (double)lo && d <= (double)hi) || d >= 9.2e18 || d <= -9.2e18) return false;
    *out = (long long)d;
    return true;
  }
  if (cJSON_IsString(v)) {
    const char *s = v->valuestring;
    if (!*s) return false;
    char *end = NULL;
    long long x = strtoll(s, &end, 10);
    if (*end || x < lo || x > hi) return false;
    *out = x;
    return true;
  }
  return false;
}

static bool json_bool(const cJSON *obj, const char *name) {
  return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, name));
}

static char *dup_or_null(const char *s) {
  return s ? strdup(s) : NULL;
}
static char *dup_or_empty(const char *s) {
  return strdup(s ? s : "");
}

/* ---------------------------------------------------------------- envelopes */

void cc_e2b_envelope_init(cc_envelope_reader *r, size_t max_payload) {
  cc_envelope_opts o = {
      .max_payload = max_payload,
      .allowed_flags = CC_E2B_FLAG_END_STREAM, /* 0x01 compressed is never negotiated */
      .end_is_last = true,
      .violation = CC_UPSTREAM_ERROR,
  };
  cc_envelope_reader_init(r, &o);
}

void cc_e2b_envelope_header(unsigned char out[5], unsigned flags, uint32_t len) {
  out[0] = (unsigned char)flags;
  out[1] = (unsigned char)(len >> 24);
  out[2] = (unsigned char)(len >> 16);
  out[3] = (unsigned char)(len >> 8);
  out[4] = (unsigned char)len;
}

/* ---------------------------------------------------------------- base64 */

static int b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

size_t cc_e2b_base64_decoded_max(size_t n) {
  return n / 4 * 3 + 3;
}

bool cc_e2b_base64_decode(const char *in, size_t n, unsigned char *out, size_t *out_len) {
  while (n > 0 && in[n - 1] == '=') n--; /* padding is optional */
  if (n % 4 == 1) return false;
  uint32_t acc = 0;
  int bits = 0;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64_value((unsigned char)in[i]);
    if (v < 0) return false;
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  *out_len = o;
  return true;
}

char *cc_e2b_base64_encode(const void *data, size_t n) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const unsigned char *s = data;
  if (n > (SIZE_MAX - 1) / 4 * 3 - 3) return NULL;
  char *out = malloc((n + 2) / 3 * 4 + 1);
  if (!out) return NULL;
  size_t o = 0, i = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t v = ((uint32_t)s[i] << 16) | ((uint32_t)s[i + 1] << 8) | s[i + 2];
    out[o++] = tbl[v >> 18];
    out[o++] = tbl[(v >> 12) & 63];
    out[o++] = tbl[(v >> 6) & 63];
    out[o++] = tbl[v & 63];
  }
  if (i < n) {
    uint32_t v = (uint32_t)s[i] << 16;
    if (i + 1 < n) v |= (uint32_t)s[i + 1] << 8;
    out[o++] = tbl[v >> 18];
    out[o++] = tbl[(v >> 12) & 63];
    out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
    out[o++] = '=';
  }
  out[o] = 0;
  return out;
}

/* ---------------------------------------------------------------- process events */

void cc_e2b_parsed_event_cleanup(cc_e2b_parsed_event *e) {
  free(e->data);
  e->data = NULL;
}

/* Decodes the base64 string field `name` of obj into e->data. */
static cc_status decode_bytes(cc_e2b_parsed_event *e, const cJSON *v) {
  if (!cJSON_IsString(v)) return CC_UPSTREAM_ERROR;
  size_t n = strlen(v->valuestring);
  e->data = malloc(cc_e2b_base64_decoded_max(n) + 1);
  if (!e->data) return CC_INTERNAL;
  size_t out = 0;
  if (!cc_e2b_base64_decode(v->valuestring, n, (unsigned char *)e->data, &out))
    return CC_UPSTREAM_ERROR;
  e->data[out] = 0;
  e->ev.data = e->data;
  e->ev.len = out;
  return CC_OK;
}

cc_status cc_e2b_event_parse(const char *payload, size_t len, cc_e2b_parsed_event *out) {
  memset(out, 0, sizeof *out);
  out->ev.status = out->status;
  out->ev.error = out->error;
  out->ev.data = "";
  cJSON *root = cJSON_ParseWithLength(payload, len);
  if (!root) return CC_UPSTREAM_ERROR;
  cc_status st = CC_OK;
  const cJSON *event = cJSON_IsObject(root) ? json_obj(root, "event", NULL) : NULL;
  if (!event) {
    st = cJSON_IsObject(root) ? CC_OK : CC_UPSTREAM_ERROR; /* unknown message: ignore */
    goto done;
  }
  const cJSON *x;
  long long n;
  if ((x = json_obj(event, "start", NULL))) {
    if (!json_int(x, "pid", NULL, 0, UINT32_MAX, &n)) {
      st = CC_UPSTREAM_ERROR;
      goto done;
    }
    out->ev.type = CC_E2B_EVENT_START;
    out->ev.pid = (uint32_t)n;
    out->known = true;
  } else if ((x = json_obj(event, "data", NULL))) {
    const cJSON *b;
    if ((b = cJSON_GetObjectItemCaseSensitive(x, "stdout"))) {
      out->ev.type = CC_E2B_EVENT_STDOUT;
    } else if ((b = cJSON_GetObjectItemCaseSensitive(x, "stderr"))) {
      out->ev.type = CC_E2B_EVENT_STDERR;
    } else if ((b = cJSON_GetObjectItemCaseSensitive(x, "pty"))) {
      out->ev.type = CC_E2B_EVENT_PTY;
    } else {
      goto done; /* empty or unknown output kind */
    }
    st = decode_bytes(out, b);
    if (st == CC_OK) out->known = true;
  } else if ((x = json_obj(event, "end", NULL))) {
    if (!json_int(x, "exitCode", "exit_code", INT_MIN, INT_MAX, &n)) {
      st = CC_UPSTREAM_ERROR;
      goto done;
    }
    out->ev.type = CC_E2B_EVENT_END;
    out->ev.exit_code = (int)n;
    out->ev.exited = json_bool(x, "exited");
    copy_str(out->status, sizeof out->status, json_str(x, "status", NULL));
    copy_str(out->error, sizeof out->error, json_str(x, "error", NULL));
    out->known = true;
  } else if (json_obj(event, "keepalive", NULL)) {
    out->ev.type = CC_E2B_EVENT_KEEPALIVE;
    out->known = true;
  }
done:
  cJSON_Delete(root);
  return st;
}

cc_status cc_e2b_end_stream_parse(const char *payload, size_t len, char *code, size_t code_n,
                                  char *message, size_t message_n) {
  if (code_n) code[0] = 0;
  if (message_n) message[0] = 0;
  cJSON *root = cJSON_ParseWithLength(payload, len);
  if (!root) return CC_UPSTREAM_ERROR;
  cc_status st = CC_OK;
  if (!cJSON_IsObject(root)) {
    st = CC_UPSTREAM_ERROR;
  } else {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (cJSON_IsObject(e)) {
      const char *c = json_str(e, "code", NULL);
      copy_str(code, code_n, c ? c : "unknown");
      copy_str(message, message_n, json_str(e, "message", NULL));
      st = cc_e2b_status_from_connect_code(c ? c : "unknown");
      if (st == CC_OK) st = CC_UPSTREAM_ERROR;
    } else if (e && !cJSON_IsNull(e)) {
      st = CC_UPSTREAM_ERROR;
    }
  }
  cJSON_Delete(root);
  return st;
}

/* ---------------------------------------------------------------- errors */

cc_status cc_e2b_status_from_connect_code(const char *code) {
  static const struct {
    const char *code;
    cc_status status;
  } map[] = {
      {"canceled", CC_TIMEOUT},
      {"unknown", CC_UPSTREAM_ERROR},
      {"invalid_argument", CC_BAD_REQUEST},
      {"deadline_exceeded", CC_TIMEOUT},
      {"not_found", CC_NOT_FOUND},
      {"already_exists", CC_CONFLICT},
      {"permission_denied", CC_FORBIDDEN},
      {"resource_exhausted", CC_TOO_LARGE},
      {"failed_precondition", CC_BAD_REQUEST},
      {"aborted", CC_CONFLICT},
      {"out_of_range", CC_BAD_REQUEST},
      {"unimplemented", CC_UPSTREAM_ERROR},
      {"internal", CC_UPSTREAM_ERROR},
      {"unavailable", CC_SANDBOX_UNAVAILABLE},
      {"data_loss", CC_UPSTREAM_ERROR},
      {"unauthenticated", CC_UPSTREAM_ERROR},
  };
  if (!code) return CC_UPSTREAM_ERROR;
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (strcmp(map[i].code, code) == 0) return map[i].status;
  return CC_UPSTREAM_ERROR;
}

/* Case-insensitive substring search. */
static bool contains_ci(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  for (; *hay; hay++)
    if (strncasecmp(hay, needle, n) == 0) return true;
  return false;
}

/*
 * The one table from an upstream HTTP error to a protocol code (docs/protocol.md, "Upstream
 * errors"), decided per status and per side:
 *   - the control plane (E2B API: create, connect, kill, timeout, info) only ever fails because
 *     of the worker's own request or credentials, or E2B's state: its 400/401/403 are
 *     upstream_error (the user can do nothing about them), a 404 on a sandbox is "gone" (the
 *     worker re-creates it), a 409 is a sandbox in transition (sandbox_unavailable, retry);
 *   - envd answers about the user's request inside the sandbox: 400 is the user's path or
 *     arguments (bad_request), 403 a path the sandbox user may not touch (forbidden), a 404
 *     with envd's JSON body a missing file or process (not_found; a bare 404 is an endpoint
 *     envd does not have: upstream_error), 409 conflicting state, 507 a full disk (too_large);
 *     401 is still the worker's credentials (envd token or user);
 *   - either side: 413 too_large, 429 rate_limited, 502/503 sandbox_unavailable (the proxy's
 *     502 "sandbox was not found" is "gone"), 504 timeout, any other status upstream_error.
 * A Connect error code string in an envd body wins over the status (it is more precise).
 */
static cc_status status_from_http(int http, bool sandbox_op, bool envd, bool json_body,
                                  const char *msg, bool *gone) {
  switch (http) {
    case 400:
      return envd ? CC_BAD_REQUEST : CC_UPSTREAM_ERROR;
    case 401:
      return CC_UPSTREAM_ERROR; /* our credentials, never the user's "unauthorized" */
    case 403:
      return envd ? CC_FORBIDDEN : CC_UPSTREAM_ERROR;
    case 404:
      if (sandbox_op) {
        *gone = true;
        return CC_NOT_FOUND;
      }
      return !envd || json_body ? CC_NOT_FOUND : CC_UPSTREAM_ERROR;
    case 409:
      return envd ? CC_CONFLICT : CC_SANDBOX_UNAVAILABLE;
    case 413:
    case 507: /* no space left in the sandbox: the file did not fit */
      return CC_TOO_LARGE;
    case 429:
      return CC_RATE_LIMITED;
    case 500:
      /* envd reports an OS permission failure on a path it could stat as a 500 */
      return envd && contains_ci(msg, "permission denied") ? CC_FORBIDDEN : CC_UPSTREAM_ERROR;
    case 502:
    case 503:
      return CC_SANDBOX_UNAVAILABLE;
    case 504:
      return CC_TIMEOUT;
    default:
      return CC_UPSTREAM_ERROR;
  }
}

cc_status cc_e2b_error_from_response(int http_status, const char *body, size_t len, bool sandbox_op,
                                     bool envd, const char *what, cc_e2b_error *err) {
  char code[32] = "";
  char msg[384] = "";
  bool proxy_gone = false, json_body = false;
  cJSON *root = len ? cJSON_ParseWithLength(body, len) : NULL;
  if (cJSON_IsObject(root)) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "code");
    if (cJSON_IsString(c)) copy_str(code, sizeof code, c->valuestring);
    json_body = c || cJSON_GetObjectItemCaseSensitive(root, "message");
    copy_str(msg, sizeof msg, json_str(root, "message", NULL));
    /* The edge proxy's answer for a sandbox that does not exist (reference §2.1). */
    if (http_status == 502 && (cJSON_GetObjectItemCaseSensitive(root, "sandboxId") ||
                               contains_ci(msg, "sandbox was not found")))
      proxy_gone = contains_ci(msg, "not found");
  } else if (len) {
    /* Non-JSON body: keep a printable prefix. */
    size_t n = len < sizeof msg - 1 ? len : sizeof msg - 1;
    memcpy(msg, body, n);
    msg[n] = 0;
  }
  cJSON_Delete(root);

  cc_status st;
  bool gone = false;
  if (proxy_gone) {
    st = CC_NOT_FOUND;
    gone = true;
  } else if (code[0] && envd) {
    st = cc_e2b_status_from_connect_code(code);
  } else {
    st = status_from_http(http_status, sandbox_op, envd, json_body, msg, &gone);
  }
  if (err) {
    err->status = st;
    err->http_status = http_status;
    err->sandbox_gone = gone;
    copy_str(err->code, sizeof err->code, code);
    snprintf(err->message, sizeof err->message, "%s: HTTP %d%s%s%s%s", what ? what : "e2b",
             http_status, code[0] ? " " : "", code, msg[0] ? ": " : "", msg);
  }
  return st;
}

void cc_e2b_scrub(char *msg, size_t n, const char *secret) {
  if (!msg || n == 0) return;
  msg[n - 1] = 0;
  size_t slen = secret ? strlen(secret) : 0;
  if (slen > 0) {
    static const char red[] = "[redacted]";
    char *hit;
    char *from = msg;
    while ((hit = strstr(from, secret))) {
      size_t tail = strlen(hit + slen);
      size_t rlen = sizeof red - 1;
      if (rlen > slen) rlen = 0; /* never grow the message: drop the secret outright */
      memcpy(hit, red, rlen);
      memmove(hit + rlen, hit + slen, tail + 1);
      from = hit + rlen;
      if (rlen == 0) { /* removal may join two halves into a new occurrence: look back */
        size_t back = (size_t)(hit - msg) < slen - 1 ? (size_t)(hit - msg) : slen - 1;
        from = hit - back;
      }
    }
  }
  for (char *p = msg; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
}

/* ---------------------------------------------------------------- responses */

/* sandboxd's network facts ("internet", "internetReason"); the E2B cloud sends neither. */
static void parse_internet(const cJSON *root, int *internet, char *why, size_t cap) {
  const cJSON *inet = cJSON_GetObjectItemCaseSensitive(root, "internet");
  *internet = cJSON_IsBool(inet) ? cJSON_IsTrue(inet) : -1;
  const char *r = *internet == 0 ? json_str(root, "internetReason", NULL) : NULL;
  why[0] = 0;
  if (!r) return;
  snprintf(why, cap, "%s", r);
  for (char *p = why; *p; p++)
    if ((unsigned char)*p < 0x20) *p = '?';
}

cc_status cc_e2b_sandbox_parse(const char *json, size_t len, const char *default_domain,
                               cc_e2b_sandbox *out) {
  memset(out, 0, sizeof *out);
  cJSON *root = cJSON_ParseWithLength(json, len);
  cc_status st = CC_UPSTREAM_ERROR;
  if (!cJSON_IsObject(root)) goto done;
  const char *id = json_str(root, "sandboxID", NULL);
  const char *ver = json_str(root, "envdVersion", NULL);
  const char *tok = json_str(root, "envdAccessToken", NULL);
  const char *dom = json_str(root, "domain", NULL);
  const char *tpl = json_str(root, "templateID", NULL);
  if (!id || !*id || !ver || !*ver) goto done;
  for (const char *p = id; *p; p++)
    if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_') goto done;
  if (!dom || !*dom) dom = default_domain;
  if (!copy_str(out->id, sizeof out->id, id) ||
      !copy_str(out->envd_version, sizeof out->envd_version, ver) ||
      !copy_str(out->envd_access_token, sizeof out->envd_access_token, tok) ||
      !copy_str(out->domain, sizeof out->domain, dom))
    goto done;
  copy_str(out->template_id, sizeof out->template_id, tpl);
  parse_internet(root, &out->internet, out->internet_reason, sizeof out->internet_reason);
  /* Values we put in headers must not carry CR/LF. */
  for (const char *p = out->envd_access_token; *p; p++)
    if ((unsigned char)*p < 0x20) goto done;
  for (const char *p = out->domain; *p; p++)
    if ((unsigned char)*p <= 0x20 || *p == '/') goto done;
  st = CC_OK;
done:
  if (st != CC_OK) memset(out, 0, sizeof *out);
  cJSON_Delete(root);
  return st;
}

cc_status cc_e2b_info_parse(const char *json, size_t len, cc_e2b_info *out) {
  memset(out, 0, sizeof *out);
  cJSON *root = cJSON_ParseWithLength(json, len);
  cc_status st = CC_UPSTREAM_ERROR;
  long long n;
  if (!cJSON_IsObject(root)) goto done;
  const char *id = json_str(root, "sandboxID", NULL);
  if (!id || !*id) goto done;
  copy_str(out->id, sizeof out->id, id);
  copy_str(out->template_id, sizeof out->template_id, json_str(root, "templateID", NULL));
  copy_str(out->alias, sizeof out->alias, json_str(root, "alias", NULL));
  copy_str(out->state, sizeof out->state, json_str(root, "state", NULL));
  copy_str(out->started_at, sizeof out->started_at, json_str(root, "startedAt", NULL));
  copy_str(out->end_at, sizeof out->end_at, json_str(root, "endAt", NULL));
  copy_str(out->envd_version, sizeof out->envd_version, json_str(root, "envdVersion", NULL));
  parse_internet(root, &out->internet, out->internet_reason, sizeof out->internet_reason);
  if (!json_int(root, "cpuCount", NULL, 0, INT_MAX, &n)) goto done;
  out->cpu_count = (int)n;
  if (!json_int(root, "memoryMB", NULL, 0, INT_MAX, &n)) goto done;
  out->memory_mb = (int)n;
  st = CC_OK;
done:
  cJSON_Delete(root);
  return st;
}

void cc_e2b_entry_cleanup(cc_e2b_entry *e) {
  if (!e) return;
  free(e->name);
  free(e->path);
  free(e->permissions);
  free(e->owner);
  free(e->group);
  free(e->modified_time);
  free(e->symlink_target);
  memset(e, 0, sizeof *e);
}

void cc_e2b_entry_list_cleanup(cc_e2b_entry_list *l) {
  if (!l) return;
  for (size_t i = 0; i < l->count; i++) cc_e2b_entry_cleanup(&l->items[i]);
  free(l->items);
  l->items = NULL;
  l->count = 0;
}

static cc_e2b_file_type file_type(const cJSON *v) {
  if (cJSON_IsNumber(v)) {
    int t = v->valueint;
    return t >= 0 && t <= 3 ? (cc_e2b_file_type)t : CC_E2B_FILE_UNKNOWN;
  }
  if (!cJSON_IsString(v)) return CC_E2B_FILE_UNKNOWN;
  if (strcmp(v->valuestring, "FILE_TYPE_FILE") == 0) return CC_E2B_FILE_FILE;
  if (strcmp(v->valuestring, "FILE_TYPE_DIRECTORY") == 0) return CC_E2B_FILE_DIR;
  if (strcmp(v->valuestring, "FILE_TYPE_SYMLINK") == 0) return CC_E2B_FILE_SYMLINK;
  return CC_E2B_FILE_UNKNOWN;
}

/* Fills *e from an EntryInfo object.  On failure *e is cleaned up. */
static cc_status entry_from_json(const cJSON *o, cc_e2b_entry *e) {
  memset(e, 0, sizeof *e);
  long long n;
  if (!cJSON_IsObject(o)) return CC_UPSTREAM_ERROR;
  e->type = file_type(cJSON_GetObjectItemCaseSensitive(o, "type"));
  if (!json_int(o, "size", NULL, INT64_MIN, INT64_MAX, &n)) return CC_UPSTREAM_ERROR;
  e->size = n;
  if (!json_int(o, "mode", NULL, 0, UINT32_MAX, &n)) return CC_UPSTREAM_ERROR;
  e->mode = (uint32_t)n;
  e->name = dup_or_empty(json_str(o, "name", NULL));
  e->path = dup_or_empty(json_str(o, "path", NULL));
  e->permissions = dup_or_empty(json_str(o, "permissions", NULL));
  e->owner = dup_or_empty(json_str(o, "owner", NULL));
  e->group = dup_or_empty(json_str(o, "group", NULL));
  e->modified_time = dup_or_empty(json_str(o, "modifiedTime", "modified_time"));
  const char *t = json_str(o, "symlinkTarget", "symlink_target");
  e->symlink_target = dup_or_null(t);
  if (!e->name || !e->path || !e->permissions || !e->owner || !e->group || !e->modified_time ||
      (t && !e->symlink_target)) {
    cc_e2b_entry_cleanup(e);
    return CC_INTERNAL;
  }
  return CC_OK;
}

cc_status cc_e2b_entry_parse(const char *json, size_t len, cc_e2b_entry *out) {
  memset(out, 0, sizeof *out);
  cJSON *root = cJSON_ParseWithLength(json, len);
  cc_status st = CC_UPSTREAM_ERROR;
  if (cJSON_IsObject(root)) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "entry");
    if (cJSON_IsObject(e)) st = entry_from_json(e, out);
  }
  cJSON_Delete(root);
  return st;
}

cc_status cc_e2b_entries_parse(const char *json, size_t len, size_t max_entries,
                               cc_e2b_entry_list *out) {
  memset(out, 0, sizeof *out);
  cJSON *root = cJSON_ParseWithLength(json, len);
  cc_status st = CC_UPSTREAM_ERROR;
  if (!cJSON_IsObject(root)) goto done;
  const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "entries");
  if (!arr || cJSON_IsNull(arr)) { /* proto3 omits an empty list */
    st = CC_OK;
    goto done;
  }
  if (!cJSON_IsArray(arr)) goto done;
  size_t n = (size_t)cJSON_GetArraySize(arr);
  if (n > max_entries) {
    st = CC_TOO_LARGE;
    goto done;
  }
  if (n) {
    out->items = calloc(n, sizeof *out->items);
    if (!out->items) {
      st = CC_INTERNAL;
      goto done;
    }
  }
  const cJSON *it;
  cJSON_ArrayForEach(it, arr) {
    st = entry_from_json(it, &out->items[out->count]);
    if (st != CC_OK) {
      cc_e2b_entry_list_cleanup(out);
      goto done;
    }
    out->count++;
  }
  st = CC_OK;
done:
  cJSON_Delete(root);
  return st;
}

void cc_e2b_process_list_cleanup(cc_e2b_process_list *l) {
  if (!l) return;
  for (size_t i = 0; i < l->count; i++) {
    cc_e2b_process *p = &l->items[i];
    free(p->tag);
    free(p->cmd);
    free(p->cwd);
    for (size_t j = 0; j < p->args_count; j++) free(p->args[j]);
    free(p->args);
  }
  free(l->items);
  l->items = NULL;
  l->count = 0;
}

cc_status cc_e2b_processes_parse(const char *json, size_t len, cc_e2b_process_list *out) {
  memset(out, 0, sizeof *out);
  cJSON *root = cJSON_ParseWithLength(json, len);
  cc_status st = CC_UPSTREAM_ERROR;
  if (!cJSON_IsObject(root)) goto done;
  const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "processes");
  if (!arr || cJSON_IsNull(arr)) {
    st = CC_OK;
    goto done;
  }
  if (!cJSON_IsArray(arr)) goto done;
  size_t n = (size_t)cJSON_GetArraySize(arr);
  if (n) {
    out->items = calloc(n, sizeof *out->items);
    if (!out->items) {
      st = CC_INTERNAL;
      goto done;
    }
  }
  const cJSON *it;
  cJSON_ArrayForEach(it, arr) {
    long long pid;
    if (!cJSON_IsObject(it) || !json_int(it, "pid", NULL, 0, UINT32_MAX, &pid)) goto fail;
    cc_e2b_process *p = &out->items[out->count++];
    p->pid = (uint32_t)pid;
    const cJSON *cfg = json_obj(it, "config", NULL);
    const char *tag = json_str(it, "tag", NULL);
    p->tag = dup_or_null(tag);
    p->cmd = dup_or_empty(cfg ? json_str(cfg, "cmd", NULL) : NULL);
    const char *cwd = cfg ? json_str(cfg, "cwd", NULL) : NULL;
    p->cwd = dup_or_null(cwd);
    if (!p->cmd || (tag && !p->tag) || (cwd && !p->cwd)) {
      st = CC_INTERNAL;
      goto fail;
    }
    const cJSON *args = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "args") : NULL;
    if (cJSON_IsArray(args) && cJSON_GetArraySize(args) > 0) {
      size_t na = (size_t)cJSON_GetArraySize(args);
      p->args = calloc(na, sizeof *p->args);
      if (!p->args) {
        st = CC_INTERNAL;
        goto fail;
      }
      const cJSON *a;
      cJSON_ArrayForEach(a, args) {
        if (!cJSON_IsString(a)) goto fail;
        if (!(p->args[p->args_count] = strdup(a->valuestring))) {
          st = CC_INTERNAL;
          goto fail;
        }
        p->args_count++;
      }
    }
  }
  st = CC_OK;
  goto done;
fail:
  if (st == CC_OK) st = CC_UPSTREAM_ERROR;
  cc_e2b_process_list_cleanup(out);
done:
  cJSON_Delete(root);
  return st;
}

cc_status cc_e2b_upload_parse(const char *json, size_t len, char *out, size_t n) {
  if (n) out[0] = 0;
  cJSON *root = cJSON_ParseWithLength(json, len);
  cc_status st = CC_UPSTREAM_ERROR;
  const cJSON *first = cJSON_IsArray(root) ? cJSON_GetArrayItem(root, 0) : NULL;
  if (cJSON_IsObject(first)) {
    const char *p = json_str(first, "path", NULL);
    if (p) {
      copy_str(out, n, p);
      st = CC_OK;
    }
  }
  cJSON_Delete(root);
  return st;
}
