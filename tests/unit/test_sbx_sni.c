/* Unit tests: the names that domain egress rules judge (native/sandbox/cc_sbx_sni.c): the
 * server name of a TLS ClientHello (whole, cut short at every byte, split over records,
 * malformed), the Host of an HTTP/1 request head, and how a name matches allowed domains
 * ("*.example.com" is every name below it, never a name that merely ends the same). */
#include <stdlib.h>
#include <string.h>

#include "cc_sbx_int.h"
#include "cc_test.h"

static size_t put16(uint8_t *p, size_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
  return 2;
}

/* A ClientHello (as one handshake message, no record header) with an optional SNI entry and
 * one other extension before it; its length. */
static size_t client_hello(uint8_t *out, const char *sni) {
  uint8_t body[1024];
  size_t n = 0;
  n += put16(body + n, 0x0303);
  memset(body + n, 0xab, 32), n += 32;           /* random */
  body[n++] = 32, memset(body + n, 7, 32), n += 32; /* session id */
  n += put16(body + n, 4), n += put16(body + n, 0x1301), n += put16(body + n, 0x1302);
  body[n++] = 1, body[n++] = 0; /* compression: null */
  uint8_t ext[600];
  size_t e = 0;
  e += put16(ext + e, 0x002b), e += put16(ext + e, 3), ext[e++] = 2, e += put16(ext + e, 0x0304);
  if (sni) {
    size_t l = strlen(sni);
    e += put16(ext + e, 0), e += put16(ext + e, l + 5), e += put16(ext + e, l + 3);
    ext[e++] = 0, e += put16(ext + e, l);
    memcpy(ext + e, sni, l), e += l;
  }
  n += put16(body + n, e);
  memcpy(body + n, ext, e), n += e;
  out[0] = 1, out[1] = 0, out[2] = (uint8_t)(n >> 8), out[3] = (uint8_t)n;
  memcpy(out + 4, body, n);
  return n + 4;
}

/* hs wrapped in records of at most `chunk` bytes each. */
static size_t records(uint8_t *out, const uint8_t *hs, size_t len, size_t chunk) {
  size_t o = 0;
  for (size_t at = 0; at < len; at += chunk) {
    size_t k = len - at < chunk ? len - at : chunk;
    out[o++] = 22, out[o++] = 3, out[o++] = 1;
    o += put16(out + o, k);
    memcpy(out + o, hs + at, k), o += k;
  }
  return o;
}

static cc_sbx_name_result sni(const uint8_t *p, size_t n, char *name) {
  return cc_sbx_tls_sni(p, n, name);
}

static void test_tls(void) {
  uint8_t hs[1200], rec[1400];
  char name[CC_SBX_NAME_MAX + 1];
  size_t hl = client_hello(hs, "Api.Example.COM.");
  size_t rl = records(rec, hs, hl, 16384);
  CHECK_INT(sni(rec, rl, name), CC_SBX_NAME_FOUND);
  CHECK_STR(name, "api.example.com");
  /* every shorter prefix is a beginning: read more */
  for (size_t k = 0; k < rl; k++) CHECK_INT(sni(rec, k, name), CC_SBX_NAME_MORE);
  /* split over records of 50 bytes */
  rl = records(rec, hs, hl, 50);
  CHECK_INT(sni(rec, rl, name), CC_SBX_NAME_FOUND);
  CHECK_STR(name, "api.example.com");
  /* no server name, a name that is not a DNS name, a name too long */
  hl = client_hello(hs, NULL);
  CHECK_INT(sni(rec, records(rec, hs, hl, 16384), name), CC_SBX_NAME_NONE);
  hl = client_hello(hs, "a_b.example.com");
  CHECK_INT(sni(rec, records(rec, hs, hl, 16384), name), CC_SBX_NAME_NONE);
  hl = client_hello(hs, "x..example.com");
  CHECK_INT(sni(rec, records(rec, hs, hl, 16384), name), CC_SBX_NAME_NONE);
  char longname[300];
  memset(longname, 'a', 254);
  longname[254] = 0;
  hl = client_hello(hs, longname);
  CHECK_INT(sni(rec, records(rec, hs, hl, 16384), name), CC_SBX_NAME_NONE);
  /* not a handshake record, not a ClientHello, an empty record, a lying length */
  hl = client_hello(hs, "example.com");
  rl = records(rec, hs, hl, 16384);
  rec[0] = 23;
  CHECK_INT(sni(rec, rl, name), CC_SBX_NAME_NONE);
  rec[0] = 22, rec[5] = 2;
  CHECK_INT(sni(rec, rl, name), CC_SBX_NAME_NONE);
  rec[5] = 1;
  static const uint8_t empty[] = {22, 3, 1, 0, 0};
  CHECK_INT(sni(empty, sizeof empty, name), CC_SBX_NAME_NONE);
  rec[8] = (uint8_t)(rec[8] + 1); /* the handshake claims one byte more than the record has */
  CHECK_INT(sni(rec, rl, name), CC_SBX_NAME_MORE);
  static const uint8_t http[] = "GET / HTTP/1.1\r\n";
  CHECK_INT(sni(http, sizeof http - 1, name), CC_SBX_NAME_NONE);
}

static cc_sbx_name_result host(const char *s, char *name) {
  return cc_sbx_http_host((const uint8_t *)s, strlen(s), name);
}

static void test_http(void) {
  char name[CC_SBX_NAME_MAX + 1];
  const char *req = "GET /x HTTP/1.1\r\nUser-Agent: t\r\nHost:  Example.com:8080 \r\nAccept: */*\r\n\r\n";
  CHECK_INT(host(req, name), CC_SBX_NAME_FOUND);
  CHECK_STR(name, "example.com");
  for (size_t k = 0; k < strlen(req); k++) {
    char cut[200];
    memcpy(cut, req, k);
    cut[k] = 0;
    CHECK_INT(host(cut, name), CC_SBX_NAME_MORE);
  }
  CHECK_INT(host("POST / HTTP/1.1\nhost: a.b\n\n", name), CC_SBX_NAME_FOUND); /* LF only */
  CHECK_STR(name, "a.b");
  CHECK_INT(host("GET / HTTP/1.1\r\nHost: a.com\r\nHost: b.com\r\n\r\n", name), CC_SBX_NAME_NONE);
  CHECK_INT(host("GET / HTTP/1.0\r\nAccept: */*\r\n\r\n", name), CC_SBX_NAME_NONE);
  CHECK_INT(host("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", name), CC_SBX_NAME_NONE);
  CHECK_INT(host("GET / HTTP/1.1\r\nHost: a.com:\r\n\r\n", name), CC_SBX_NAME_NONE);
  CHECK_INT(host("GET / HTTP/1.1\r\nX-Host: a.com\r\n\r\n", name), CC_SBX_NAME_NONE);
  CHECK_INT(host("\x16\x03\x01", name), CC_SBX_NAME_NONE);
  CHECK_INT(host("get / HTTP/1.1\r\n", name), CC_SBX_NAME_NONE);
  CHECK_INT(host("\r\n\r\n", name), CC_SBX_NAME_NONE);
  /* a head that never ends is given up at CC_SBX_HEAD_MAX */
  size_t big = CC_SBX_HEAD_MAX + 10;
  char *h = malloc(big + 1);
  memset(h, 'a', big);
  memcpy(h, "GET /", 5);
  h[big] = 0;
  CHECK_INT(host(h, name), CC_SBX_NAME_NONE);
  free(h);
}

static void test_match(void) {
  char *domains[] = {"example.com", "*.pypi.org"};
  CHECK(cc_sbx_domain_match("example.com", domains, 2));
  CHECK(cc_sbx_domain_match("EXAMPLE.com", domains, 2));
  CHECK(!cc_sbx_domain_match("www.example.com", domains, 2)); /* exact names are exact */
  CHECK(cc_sbx_domain_match("files.pypi.org", domains, 2));
  CHECK(cc_sbx_domain_match("a.b.pypi.org", domains, 2));
  CHECK(!cc_sbx_domain_match("pypi.org", domains, 2)); /* the wildcard is what is below it */
  CHECK(!cc_sbx_domain_match("evilpypi.org", domains, 2));
  CHECK(!cc_sbx_domain_match("example.com.evil.net", domains, 2));
  CHECK(!cc_sbx_domain_match("example.com", domains, 0));
}

int main(void) {
  RUN(test_tls);
  RUN(test_http);
  RUN(test_match);
  return CC_TEST_DONE();
}
