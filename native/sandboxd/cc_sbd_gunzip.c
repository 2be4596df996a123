/*
 * cc_sbd_gunzip: streaming gzip decoding with zlib (see cc_sbd_gunzip.h).
 */
#include "cc_sbd_gunzip.h"

#include <stdbool.h>
#include <stdlib.h>
#include <zlib.h>

#define CHUNK 65536

struct cc_sbd_gunzip {
  z_stream z;
  bool member_done; /* the last member ended; more input must start a new one */
  bool failed;
  cc_sbd_gunzip_out out;
  void *ctx;
  uint8_t buf[CHUNK];
};

cc_sbd_gunzip *cc_sbd_gunzip_new(cc_sbd_gunzip_out out, void *ctx) {
  cc_sbd_gunzip *g = calloc(1, sizeof *g);
  if (!g) return NULL;
  if (inflateInit2(&g->z, 16 + MAX_WBITS) != Z_OK) { /* 16: gzip wrapper only */
    free(g);
    return NULL;
  }
  g->out = out;
  g->ctx = ctx;
  return g;
}

cc_status cc_sbd_gunzip_feed(cc_sbd_gunzip *g, const uint8_t *data, size_t n) {
  if (g->failed) return CC_BAD_REQUEST;
  while (n > 0) {
    uInt take = n > (size_t)1 << 30 ? (uInt)1 << 30 : (uInt)n;
    g->z.next_in = (Bytef *)data;
    g->z.avail_in = take;
    while (g->z.avail_in > 0) {
      if (g->member_done) { /* another member follows */
        if (inflateReset(&g->z) != Z_OK) return g->failed = true, CC_INTERNAL;
        g->member_done = false;
      }
      g->z.next_out = g->buf;
      g->z.avail_out = CHUNK;
      int rc = inflate(&g->z, Z_NO_FLUSH);
      size_t got = CHUNK - g->z.avail_out;
      if (rc != Z_OK && rc != Z_STREAM_END && !(rc == Z_BUF_ERROR && got == 0)) {
        g->failed = true;
        return rc == Z_MEM_ERROR ? CC_INTERNAL : CC_BAD_REQUEST;
      }
      if (got > 0) {
        cc_status st = g->out(g->ctx, g->buf, got);
        if (st != CC_OK) return g->failed = true, st;
      }
      if (rc == Z_STREAM_END) g->member_done = true;
      else if (got == 0 && rc == Z_BUF_ERROR) break; /* needs more input */
    }
    data += take;
    n -= take;
  }
  return CC_OK;
}

cc_status cc_sbd_gunzip_finish(cc_sbd_gunzip *g) {
  if (g->failed) return CC_BAD_REQUEST;
  /* input may still be buffered inside zlib: drain it */
  for (int i = 0; i < 1 << 20 && !g->member_done; i++) {
    g->z.next_in = NULL;
    g->z.avail_in = 0;
    g->z.next_out = g->buf;
    g->z.avail_out = CHUNK;
    int rc = inflate(&g->z, Z_NO_FLUSH);
    size_t got = CHUNK - g->z.avail_out;
    if (got > 0) {
      cc_status st = g->out(g->ctx, g->buf, got);
      if (st != CC_OK) return g->failed = true, st;
    }
    if (rc == Z_STREAM_END) g->member_done = true;
    else if (got == 0) break; /* nothing more: the member was cut short */
  }
  return g->member_done ? CC_OK : CC_BAD_REQUEST;
}

void cc_sbd_gunzip_free(cc_sbd_gunzip *g) {
  if (!g) return;
  inflateEnd(&g->z);
  free(g);
}
