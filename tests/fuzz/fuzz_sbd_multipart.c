/* libFuzzer target: codecanvas-sandboxd's multipart/form-data parser (cc_multipart), the
 * parser of every /files upload body.  The first input byte picks the feed size; the parser
 * must stay in bounds and give the same parts, bytes and result however the body is cut. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cc_multipart.h"

typedef struct {
  size_t parts, ends, bytes;
  uint32_t sum;
} tally;

static cc_status begin(void *ctx, const char *name, const char *filename, const char *ct) {
  tally *t = ctx;
  t->parts++;
  if (name) t->sum += (uint32_t)strlen(name);
  if (filename) t->sum += (uint32_t)strlen(filename) * 7;
  if (ct) t->sum += (uint32_t)strlen(ct) * 13;
  return CC_OK;
}

static cc_status data_cb(void *ctx, const uint8_t *d, size_t n) {
  tally *t = ctx;
  t->bytes += n;
  for (size_t i = 0; i < n; i++) t->sum = t->sum * 31 + d[i];
  return CC_OK;
}

static cc_status end(void *ctx) {
  ((tally *)ctx)->ends++;
  return CC_OK;
}

static const cc_multipart_callbacks cb = {begin, data_cb, end};

static cc_status run(const uint8_t *data, size_t size, size_t step, tally *t, cc_status *fin) {
  cc_multipart *mp = cc_multipart_new("XbX", 64, &cb, t);
  if (!mp) abort();
  cc_status st = CC_OK;
  for (size_t off = 0; off < size && st == CC_OK; off += step) {
    size_t k = size - off < step ? size - off : step;
    st = cc_multipart_feed(mp, data + off, k);
  }
  *fin = st == CC_OK ? cc_multipart_finish(mp) : st;
  cc_multipart_free(mp);
  return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t step = (size_t)data[0] * 97 % 20011 + 1;
  data++;
  size--;
  tally a = {0}, b = {0};
  cc_status fa, fb;
  cc_status sa = run(data, size, size ? size : 1, &a, &fa);
  cc_status sb = run(data, size, step, &b, &fb);
  /* the same outcome, the same parts and bytes, however the body was cut */
  if (sa != sb || fa != fb) abort();
  if (sa == CC_OK && (a.parts != b.parts || a.ends != b.ends || a.bytes != b.bytes || a.sum != b.sum))
    abort();
  char boundary[80];
  char ct[256];
  size_t n = size < sizeof ct - 1 ? size : sizeof ct - 1;
  memcpy(ct, data, n);
  ct[n] = 0;
  cc_multipart_boundary(ct, boundary, sizeof boundary);
  return 0;
}
