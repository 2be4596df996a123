/* The wire codecs of codecanvas-sandboxd: Connect envelopes survive any split or coalescing
 * of the byte stream, and the multipart parser reads the exact bodies the E2B SDK sends
 * (single file with filename="undefined", several files by filename) however the body is
 * cut into pieces, and rejects truncated or oversized input with a distinct status; the gzip
 * decoder of uploads gives the same bytes however the body is cut (several members too) and
 * refuses cut or foreign input; the X-Metadata-* rules are envd's, and a metadata set
 * replaces a real file's user.e2b.* attributes and reads back. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zlib.h>

#include "cc_connect.h"
#include "cc_multipart.h"
#include "cc_sbd_gunzip.h"
#include "cc_sbd_meta.h"
#include "cc_test.h"

typedef struct {
  int n;
  uint8_t flags[8];
  char payload[8][64];
} envs;

static int collect(void *ctx, unsigned flags, const uint8_t *p, size_t len) {
  envs *e = ctx;
  if (e->n < 8 && len < 64) {
    e->flags[e->n] = flags;
    memcpy(e->payload[e->n], p, len);
    e->payload[e->n][len] = 0;
  }
  e->n++;
  return 0;
}

static size_t build(uint8_t *out) {
  size_t o = 0;
  const char *msgs[] = {"{\"event\":{\"start\":{\"pid\":7}}}", "", "{}"};
  const uint8_t flags[] = {0, 0, CC_CONNECT_FLAG_END_STREAM};
  for (int i = 0; i < 3; i++) {
    size_t l = strlen(msgs[i]);
    cc_connect_envelope_header(out + o, flags[i], (uint32_t)l);
    memcpy(out + o + 5, msgs[i], l);
    o += 5 + l;
  }
  return o;
}

static void envelopes_any_split(void) {
  uint8_t buf[256];
  size_t n = build(buf);
  CHECK_INT(buf[0], 0);
  CHECK_INT(buf[4], 29); /* big-endian length */
  for (size_t step = 1; step <= n; step++) {
    cc_envelope_reader r;
    envs e = {0};
    cc_connect_reader_init(&r, 1024);
    for (size_t off = 0; off < n; off += step) {
      size_t k = n - off < step ? n - off : step;
      CHECK_INT(cc_envelope_reader_feed(&r, buf + off, k, collect, &e), CC_OK);
    }
    CHECK_INT(e.n, 3);
    CHECK_STR(e.payload[0], "{\"event\":{\"start\":{\"pid\":7}}}");
    CHECK_STR(e.payload[1], "");
    CHECK_INT(e.flags[2], CC_CONNECT_FLAG_END_STREAM);
    CHECK(cc_envelope_reader_idle(&r));
    cc_envelope_reader_cleanup(&r);
  }
}

static void envelope_too_large(void) {
  uint8_t hdr[5];
  cc_envelope_reader r;
  envs e = {0};
  cc_connect_envelope_header(hdr, 0, 0x01000000);
  cc_connect_reader_init(&r, 1024);
  CHECK_INT(cc_envelope_reader_feed(&r, hdr, 5, collect, &e), CC_TOO_LARGE);
  CHECK_INT(e.n, 0);
  cc_envelope_reader_cleanup(&r);
  cc_connect_reader_init(&r, 1024);
  CHECK_INT(cc_envelope_reader_feed(&r, hdr, 3, collect, &e), CC_OK);
  CHECK(!cc_envelope_reader_idle(&r)); /* a truncated envelope is visible */
  cc_envelope_reader_cleanup(&r);
}

static void connect_codes(void) {
  CHECK_STR(cc_connect_code_name(CC_CONNECT_NOT_FOUND), "not_found");
  CHECK_INT(cc_connect_code_http(CC_CONNECT_NOT_FOUND), 404);
  CHECK_INT(cc_connect_code_http(CC_CONNECT_UNIMPLEMENTED), 501);
  CHECK_INT(cc_connect_code_http(CC_CONNECT_UNAUTHENTICATED), 401);
  CHECK_STR(cc_connect_code_name(CC_CONNECT_ALREADY_EXISTS), "already_exists");
}

typedef struct {
  int parts;
  char name[4][32], filename[4][64];
  char data[4][256];
  size_t len[4];
  int ended;
} parts;

static cc_status p_begin(void *ctx, const char *name, const char *filename, const char *ct) {
  parts *p = ctx;
  if (p->parts < 4) {
    snprintf(p->name[p->parts], 32, "%s", name ? name : "(null)");
    snprintf(p->filename[p->parts], 64, "%s", filename ? filename : "(null)");
  }
  p->parts++;
  return CC_OK;
}

static cc_status p_data(void *ctx, const uint8_t *d, size_t n) {
  parts *p = ctx;
  int i = p->parts - 1;
  if (i < 4 && p->len[i] + n < 256) {
    memcpy(p->data[i] + p->len[i], d, n);
    p->len[i] += n;
  }
  return CC_OK;
}

static cc_status p_end(void *ctx) {
  ((parts *)ctx)->ended++;
  return CC_OK;
}

static const cc_multipart_callbacks cbs = {p_begin, p_data, p_end};

static const char sdk_body[] =
    "------formdata-undici-0123\r\n"
    "Content-Disposition: form-data; name=\"file\"; filename=\"undefined\"\r\n"
    "Content-Type: text/plain;charset=utf-8\r\n\r\n"
    "hello\r\n--world\r\n"
    "------formdata-undici-0123\r\n"
    "Content-Disposition: form-data; name=\"file\"; filename=\"rel/c.txt\"\r\n"
    "Content-Type: application/octet-stream\r\n\r\n"
    "\x00\x01\xff\r\n"
    "------formdata-undici-0123--\r\n";

static void multipart_any_split(void) {
  char boundary[80];
  CHECK_INT(cc_multipart_boundary("multipart/form-data; boundary=----formdata-undici-0123",
                                  boundary, sizeof boundary), CC_OK);
  CHECK_STR(boundary, "----formdata-undici-0123");
  size_t n = sizeof sdk_body - 1;
  for (size_t step = 1; step <= n; step++) {
    parts p = {0};
    cc_multipart *mp = cc_multipart_new(boundary, 10, &cbs, &p);
    for (size_t off = 0; off < n; off += step) {
      size_t k = n - off < step ? n - off : step;
      CHECK_INT(cc_multipart_feed(mp, (const uint8_t *)sdk_body + off, k), CC_OK);
    }
    CHECK_INT(cc_multipart_finish(mp), CC_OK);
    CHECK_INT(p.parts, 2);
    CHECK_INT(p.ended, 2);
    CHECK_STR(p.name[0], "file");
    CHECK_STR(p.filename[0], "undefined");
    CHECK_STR(p.filename[1], "rel/c.txt");
    CHECK_INT(p.len[0], 14);
    CHECK(memcmp(p.data[0], "hello\r\n--world", 14) == 0);
    CHECK_INT(p.len[1], 3);
    CHECK(memcmp(p.data[1], "\x00\x01\xff", 3) == 0);
    cc_multipart_free(mp);
  }
}

static void multipart_errors(void) {
  char boundary[80];
  CHECK_INT(cc_multipart_boundary("application/json", boundary, sizeof boundary), CC_BAD_REQUEST);
  CHECK_INT(cc_multipart_boundary("multipart/form-data", boundary, sizeof boundary), CC_BAD_REQUEST);
  CHECK_INT(cc_multipart_boundary("multipart/form-data; boundary=\"q b\"", boundary,
                                  sizeof boundary), CC_OK);
  CHECK_STR(boundary, "q b");
  /* truncated: no closing boundary */
  parts p = {0};
  cc_multipart *mp = cc_multipart_new("----formdata-undici-0123", 10, &cbs, &p);
  CHECK_INT(cc_multipart_feed(mp, (const uint8_t *)sdk_body, 120), CC_OK);
  CHECK_INT(cc_multipart_finish(mp), CC_BAD_REQUEST);
  cc_multipart_free(mp);
  /* too many parts */
  memset(&p, 0, sizeof p);
  mp = cc_multipart_new("----formdata-undici-0123", 1, &cbs, &p);
  CHECK_INT(cc_multipart_feed(mp, (const uint8_t *)sdk_body, sizeof sdk_body - 1), CC_TOO_LARGE);
  cc_multipart_free(mp);
  /* endless part header */
  memset(&p, 0, sizeof p);
  mp = cc_multipart_new("b", 10, &cbs, &p);
  CHECK_INT(cc_multipart_feed(mp, (const uint8_t *)"--b\r\nX: ", 8), CC_OK);
  char junk[1024];
  memset(junk, 'a', sizeof junk);
  cc_status st = CC_OK;
  for (int i = 0; i < 20 && st == CC_OK; i++) st = cc_multipart_feed(mp, (const uint8_t *)junk, sizeof junk);
  CHECK_INT(st, CC_TOO_LARGE);
  cc_multipart_free(mp);
}

/* gzip of in (one member) into out; returns its length. */
static size_t gz(const uint8_t *in, size_t n, uint8_t *out, size_t cap) {
  z_stream z = {0};
  CHECK_INT(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)n;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  CHECK_INT(deflate(&z, Z_FINISH), Z_STREAM_END);
  size_t len = cap - z.avail_out;
  deflateEnd(&z);
  return len;
}

typedef struct {
  uint8_t buf[300000];
  size_t len;
  size_t max_chunk;
} sink;

static cc_status to_sink(void *ctx, const uint8_t *d, size_t n) {
  sink *s = ctx;
  if (s->len + n > sizeof s->buf) return CC_TOO_LARGE;
  memcpy(s->buf + s->len, d, n);
  s->len += n;
  if (n > s->max_chunk) s->max_chunk = n;
  return CC_OK;
}

static void gunzip_any_split(void) {
  static uint8_t plain[200000], packed[2 * 210000];
  for (size_t i = 0; i < sizeof plain; i++) plain[i] = (uint8_t)((i * 2654435761u) >> 13);
  /* two members: the first 1000 bytes, then the rest */
  size_t a = gz(plain, 1000, packed, sizeof packed);
  size_t n = a + gz(plain + 1000, sizeof plain - 1000, packed + a, sizeof packed - a);
  static sink s;
  const size_t steps[] = {1, 7, 4096, 65536, n};
  for (size_t k = 0; k < sizeof steps / sizeof *steps; k++) {
    s.len = s.max_chunk = 0;
    cc_sbd_gunzip *g = cc_sbd_gunzip_new(to_sink, &s);
    CHECK(g != NULL);
    for (size_t off = 0; off < n; off += steps[k])
      CHECK_INT(cc_sbd_gunzip_feed(g, packed + off, n - off < steps[k] ? n - off : steps[k]), CC_OK);
    CHECK_INT(cc_sbd_gunzip_finish(g), CC_OK);
    cc_sbd_gunzip_free(g);
    CHECK_INT(s.len, sizeof plain);
    CHECK(memcmp(s.buf, plain, sizeof plain) == 0);
    CHECK(s.max_chunk <= 65536);
  }
  /* cut short: finish says so; not gzip at all: feed says so; a callback's status stops it */
  cc_sbd_gunzip *g = cc_sbd_gunzip_new(to_sink, &s);
  s.len = 0;
  CHECK_INT(cc_sbd_gunzip_feed(g, packed, a - 4), CC_OK);
  CHECK_INT(cc_sbd_gunzip_finish(g), CC_BAD_REQUEST);
  cc_sbd_gunzip_free(g);
  g = cc_sbd_gunzip_new(to_sink, &s);
  CHECK_INT(cc_sbd_gunzip_feed(g, (const uint8_t *)"not gzip at all", 15), CC_BAD_REQUEST);
  cc_sbd_gunzip_free(g);
  g = cc_sbd_gunzip_new(to_sink, &s);
  s.len = sizeof s.buf; /* full: the next output is refused */
  CHECK_INT(cc_sbd_gunzip_feed(g, packed, n), CC_TOO_LARGE);
  cc_sbd_gunzip_free(g);
}

static void meta_rules(void) {
  cc_sbd_meta *m = cc_sbd_meta_new();
  char err[300];
  CHECK_INT(cc_sbd_meta_add_header(m, "Content-Type", "text/plain", err, sizeof err), CC_OK);
  CHECK_INT(cc_sbd_meta_add_header(m, "X-Metadata-Author", "mish", err, sizeof err), CC_OK);
  CHECK_INT(cc_sbd_meta_add_header(m, "x-metadata-purpose", "a b=c", err, sizeof err), CC_OK);
  CHECK_INT(m->n, 2);
  CHECK_STR(m->pairs[0].key, "author");
  CHECK_STR(m->pairs[1].value, "a b=c");
  CHECK_INT(m->total, 9 + 6 + 4 + 9 + 7 + 5);
  CHECK_INT(cc_sbd_meta_add_header(m, "X-METADATA-AUTHOR", "x", err, sizeof err), CC_BAD_REQUEST);
  CHECK_STR(err, "invalid metadata: metadata key author given twice");
  CHECK_INT(cc_sbd_meta_add_header(m, "X-Metadata-", "v", err, sizeof err), CC_BAD_REQUEST);
  CHECK_STR(err, "invalid metadata: metadata key must not be empty");
  CHECK_INT(cc_sbd_meta_add_header(m, "X-Metadata-k", "a\tb", err, sizeof err), CC_BAD_REQUEST);
  CHECK_STR(err, "invalid metadata: metadata value for key k contains a non-printable-ASCII byte at offset 1");
  CHECK_INT(cc_sbd_meta_add_header(m, "X-Metadata-k\x7f", "v", err, sizeof err), CC_BAD_REQUEST);
  char name[300], value[5000];
  snprintf(name, sizeof name, "X-Metadata-%0246d", 0);
  CHECK_INT(cc_sbd_meta_add_header(m, name, "", err, sizeof err), CC_OK); /* 246: the limit */
  snprintf(name, sizeof name, "X-Metadata-%0247d", 0);
  CHECK_INT(cc_sbd_meta_add_header(m, name, "", err, sizeof err), CC_BAD_REQUEST);
  memset(value, 'v', sizeof value - 1);
  value[sizeof value - 1] = 0;
  CHECK_INT(cc_sbd_meta_add_header(m, "X-Metadata-big", value, err, sizeof err), CC_BAD_REQUEST);
  CHECK_STR(err, "invalid metadata: total metadata size exceeds 4096 bytes");
  CHECK_INT(m->n, 3); /* refusals leave the set as it was */
  cc_sbd_meta_free(m);
}

/* On a real file (the build tree's file system; skipped where it keeps no user attributes). */
static void meta_on_a_file(void) {
  char path[] = "/tmp/cc-meta-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fsetxattr(fd, "user.other", "keep", 4, 0) != 0 && (errno == ENOTSUP || errno == EOPNOTSUPP)) {
    printf("  (skipped: /tmp keeps no user extended attributes)\n");
    close(fd), unlink(path);
    return;
  }
  CHECK_INT(fsetxattr(fd, "user.e2b.old", "1", 1, 0), 0);
  cc_sbd_meta *m = cc_sbd_meta_new();
  CHECK_INT(cc_sbd_meta_add_header(m, "X-Metadata-New", "2", NULL, 0), CC_OK);
  CHECK_INT(cc_sbd_meta_write_fd(fd, m), 0);
  cJSON *o = cc_sbd_meta_read_fd(fd);
  char *s = cJSON_PrintUnformatted(o);
  CHECK_STR(s, "{\"new\":\"2\"}"); /* old removed; user.other is not envd's and stays unseen */
  free(s);
  cJSON_Delete(o);
  char v[8];
  CHECK_INT(fgetxattr(fd, "user.other", v, sizeof v), 4);
  /* an attribute that is not UTF-8 is not reported (a protobuf string cannot carry it) */
  CHECK_INT(fsetxattr(fd, "user.e2b.bin", "\xff\xfe", 2, 0), 0);
  o = cc_sbd_meta_read_fd(fd);
  s = cJSON_PrintUnformatted(o);
  CHECK_STR(s, "{\"new\":\"2\"}");
  free(s);
  cJSON_Delete(o);
  /* an empty set clears every user.e2b.* attribute */
  CHECK_INT(cc_sbd_meta_write_fd(fd, NULL), 0);
  CHECK(cc_sbd_meta_read_fd(fd) == NULL);
  CHECK_INT(fgetxattr(fd, "user.other", v, sizeof v), 4);
  cc_sbd_meta_free(m);
  close(fd);
  unlink(path);
}

int main(void) {
  RUN(envelopes_any_split);
  RUN(envelope_too_large);
  RUN(connect_codes);
  RUN(multipart_any_split);
  RUN(multipart_errors);
  RUN(gunzip_any_split);
  RUN(meta_rules);
  RUN(meta_on_a_file);
  return CC_TEST_DONE();
}
