/*
 * cc_sbx_sni: the host name a sandbox asks for in the first bytes of an outbound connection,
 * for domain egress rules (cc_sbx_dproxy.c): the server name (SNI) of a TLS ClientHello, or
 * the Host header of an HTTP/1 request; and whether a name matches a list of allowed domains.
 *
 * Pure functions over bytes the sandbox sends, so untrusted: every length is checked against
 * what is there, nothing is allocated, and a name is returned only when it is a plain DNS
 * name (letters, digits, '-', dots; labels of 1-63, at most 253 in all), lower-cased and
 * without a trailing dot.  Fuzzed by tests/fuzz/fuzz_sbx_sni.c.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "cc_sbx_int.h"

#define TLS_RECORD_MAX (16384 + 2048) /* a TLSPlaintext/compressed record's largest length */
#define HANDSHAKE_MAX 16384           /* a ClientHello longer than this is not looked into */

/* Copies a candidate name into out if it is a plain DNS name (see above). */
static bool take_name(const uint8_t *s, size_t n, char out[CC_SBX_NAME_MAX + 1]) {
  if (n && s[n - 1] == '.') n--; /* "example.com." is "example.com" */
  if (n == 0 || n > CC_SBX_NAME_MAX) return false;
  size_t label = 0;
  for (size_t i = 0; i < n; i++) {
    uint8_t c = s[i];
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
    } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-') {
      if (++label > 63) return false;
    } else {
      return false;
    }
    out[i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
  }
  if (label == 0) return false;
  out[n] = 0;
  return true;
}

/* A bounds-checked reader over a byte range. */
typedef struct {
  const uint8_t *p;
  size_t n, off;
  bool bad;
} rd;

static size_t rd_uint(rd *r, size_t bytes) {
  if (r->bad || r->n - r->off < bytes) {
    r->bad = true;
    return 0;
  }
  size_t v = 0;
  for (size_t i = 0; i < bytes; i++) v = v << 8 | r->p[r->off + i];
  r->off += bytes;
  return v;
}

static const uint8_t *rd_bytes(rd *r, size_t len) {
  if (r->bad || r->n - r->off < len) {
    r->bad = true;
    return NULL;
  }
  const uint8_t *at = r->p + r->off;
  r->off += len;
  return at;
}

/* The server_name extension's host_name in a ClientHello's body (after its 4-byte header). */
static cc_sbx_name_result client_hello_sni(const uint8_t *body, size_t len,
                                           char out[CC_SBX_NAME_MAX + 1]) {
  rd r = {.p = body, .n = len};
  rd_bytes(&r, 2 + 32);                        /* legacy_version, random */
  size_t sid = rd_uint(&r, 1);                 /* legacy_session_id */
  if (sid > 32) return CC_SBX_NAME_NONE;
  rd_bytes(&r, sid);
  size_t suites = rd_uint(&r, 2);              /* cipher_suites */
  if (suites < 2 || suites % 2) return CC_SBX_NAME_NONE;
  rd_bytes(&r, suites);
  size_t comp = rd_uint(&r, 1);                /* legacy_compression_methods */
  if (comp < 1) return CC_SBX_NAME_NONE;
  rd_bytes(&r, comp);
  if (r.bad || r.off == r.n) return CC_SBX_NAME_NONE; /* no extensions: no name */
  size_t ext_len = rd_uint(&r, 2);
  const uint8_t *ext = rd_bytes(&r, ext_len);
  if (!ext) return CC_SBX_NAME_NONE;
  rd e = {.p = ext, .n = ext_len};
  while (e.off < e.n && !e.bad) {
    size_t type = rd_uint(&e, 2), elen = rd_uint(&e, 2);
    const uint8_t *data = rd_bytes(&e, elen);
    if (!data || type != 0) continue; /* 0: server_name (RFC 6066) */
    rd s = {.p = data, .n = elen};
    size_t list = rd_uint(&s, 2);
    if (s.bad || list != elen - 2) return CC_SBX_NAME_NONE;
    while (s.off < s.n && !s.bad) {
      size_t kind = rd_uint(&s, 1), nlen = rd_uint(&s, 2);
      const uint8_t *name = rd_bytes(&s, nlen);
      if (name && kind == 0) /* host_name */
        return take_name(name, nlen, out) ? CC_SBX_NAME_FOUND : CC_SBX_NAME_NONE;
    }
    return CC_SBX_NAME_NONE;
  }
  return CC_SBX_NAME_NONE;
}

cc_sbx_name_result cc_sbx_tls_sni(const uint8_t *p, size_t n, char out[CC_SBX_NAME_MAX + 1]) {
  /* The handshake may be split over several records: gather their payloads (bounded). */
  uint8_t hs[HANDSHAKE_MAX + 4];
  size_t have = 0, off = 0;
  for (;;) {
    if (n - off < 5) return CC_SBX_NAME_MORE;
    if (p[off] != 22 || p[off + 1] != 3) return CC_SBX_NAME_NONE; /* handshake, TLS 1.x */
    size_t rl = (size_t)p[off + 3] << 8 | p[off + 4];
    if (rl == 0 || rl > TLS_RECORD_MAX) return CC_SBX_NAME_NONE;
    if (n - off - 5 < rl) return CC_SBX_NAME_MORE;
    if (rl > sizeof hs - have) return CC_SBX_NAME_NONE;
    memcpy(hs + have, p + off + 5, rl);
    have += rl;
    off += 5 + rl;
    if (have < 4) continue;
    if (hs[0] != 1) return CC_SBX_NAME_NONE; /* client_hello */
    size_t len = (size_t)hs[1] << 16 | (size_t)hs[2] << 8 | hs[3];
    if (len > HANDSHAKE_MAX) return CC_SBX_NAME_NONE;
    if (have >= 4 + len) return client_hello_sni(hs + 4, len, out);
  }
}

/* A header line "Name: value" (no CR/LF): the value if the name is `name`, else NULL. */
static const uint8_t *header_value(const uint8_t *line, size_t len, const char *name,
                                   size_t *vlen) {
  size_t k = strlen(name);
  if (len <= k || line[k] != ':' || strncasecmp((const char *)line, name, k) != 0) return NULL;
  size_t a = k + 1, b = len;
  while (a < b && (line[a] == ' ' || line[a] == '\t')) a++;
  while (b > a && (line[b - 1] == ' ' || line[b - 1] == '\t')) b--;
  *vlen = b - a;
  return line + a;
}

cc_sbx_name_result cc_sbx_http_host(const uint8_t *p, size_t n, char out[CC_SBX_NAME_MAX + 1]) {
  /* Request line: a method token (upper-case letters) and a space, seen before anything else,
   * so that what is not HTTP is turned away at once. */
  size_t i = 0;
  while (i < n && i < 16 && p[i] >= 'A' && p[i] <= 'Z') i++;
  if (i < n && (i == 0 || i == 16 || p[i] != ' ')) return CC_SBX_NAME_NONE;
  const uint8_t *host = NULL;
  size_t host_len = 0;
  size_t line = 0; /* start of the current line */
  bool first = true;
  for (size_t at = 0; at < n; at++) {
    if (p[at] != '\n') continue;
    size_t end = at;
    if (end > line && p[end - 1] == '\r') end--;
    if (end == line) { /* the empty line: end of the head */
      if (first || !host) return CC_SBX_NAME_NONE;
      /* "host:port": the port is not part of the name; "[v6]" is no name */
      size_t k = host_len;
      while (k > 0 && host[k - 1] >= '0' && host[k - 1] <= '9') k--;
      if (k > 0 && k < host_len && host[k - 1] == ':') host_len = k - 1;
      return take_name(host, host_len, out) ? CC_SBX_NAME_FOUND : CC_SBX_NAME_NONE;
    }
    if (!first) {
      size_t vlen;
      const uint8_t *v = header_value(p + line, end - line, "host", &vlen);
      if (v && host) return CC_SBX_NAME_NONE; /* two Host headers: no answer */
      if (v) host = v, host_len = vlen;
    }
    first = false;
    line = at + 1;
  }
  return n >= CC_SBX_HEAD_MAX ? CC_SBX_NAME_NONE : CC_SBX_NAME_MORE;
}

bool cc_sbx_domain_match(const char *name, char *const *domains, size_t n) {
  size_t nl = strlen(name);
  for (size_t i = 0; i < n; i++) {
    const char *d = domains[i];
    if (d[0] == '*' && d[1] == '.') {
      size_t sl = strlen(d + 1); /* ".example.com": any name below it, not itself */
      if (nl > sl && strcasecmp(name + nl - sl, d + 1) == 0) return true;
    } else if (strcasecmp(name, d) == 0) {
      return true;
    }
  }
  return false;
}
