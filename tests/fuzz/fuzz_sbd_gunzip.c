/* libFuzzer target: codecanvas-sandboxd's streaming gzip decoder of /files upload bodies
 * (cc_sbd_gunzip, on zlib).  The first input byte picks the feed size; the rest is the body.
 * However the body is cut, the decoder must stay in bounds and give the same bytes and the
 * same result, and never hand out more than 64 KiB at once. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cc_sbd_gunzip.h"

typedef struct {
  size_t bytes;
  uint32_t sum;
} tally;

static cc_status out(void *ctx, const uint8_t *d, size_t n) {
  tally *t = ctx;
  if (n == 0 || n > 65536) __builtin_trap();
  t->bytes += n;
  for (size_t i = 0; i < n; i++) t->sum = t->sum * 31 + d[i];
  return t->bytes > (64u << 20) ? CC_TOO_LARGE : CC_OK; /* the caller's own bound */
}

static cc_status run(const uint8_t *d, size_t n, size_t step, tally *t) {
  cc_sbd_gunzip *g = cc_sbd_gunzip_new(out, t);
  if (!g) return CC_INTERNAL;
  cc_status st = CC_OK;
  for (size_t off = 0; off < n && st == CC_OK; off += step)
    st = cc_sbd_gunzip_feed(g, d + off, n - off < step ? n - off : step);
  if (st == CC_OK) st = cc_sbd_gunzip_finish(g);
  cc_sbd_gunzip_free(g);
  return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t step = (size_t)data[0] % 64 + 1;
  tally a = {0}, b = {0};
  cc_status sa = run(data + 1, size - 1, step, &a);
  cc_status sb = run(data + 1, size - 1, size, &b);
  if (sa != sb || (sa == CC_OK && (a.bytes != b.bytes || a.sum != b.sum))) __builtin_trap();
  return 0;
}
