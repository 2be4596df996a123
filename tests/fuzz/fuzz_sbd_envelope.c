/* libFuzzer target: codecanvas-sandboxd's Connect envelope reader (shared/cc_envelope with
 * sandboxd's rules from cc_connect_reader_init), fed
 * the input in pieces whose sizes come from the input itself, must never read or write out
 * of bounds and must deliver exactly the envelopes a one-shot feed delivers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cc_connect.h"

typedef struct {
  size_t count, bytes;
  uint32_t sum;
} tally;

static int count(void *ctx, unsigned flags, const uint8_t *p, size_t n) {
  tally *t = ctx;
  t->count++;
  t->bytes += n;
  for (size_t i = 0; i < n; i++) t->sum = t->sum * 31 + p[i];
  t->sum += flags;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t step = (size_t)data[0] % 17 + 1;
  data++;
  size--;
  tally whole = {0}, parts = {0};
  cc_envelope_reader r;
  cc_connect_reader_init(&r, 4096);
  cc_status a = cc_envelope_reader_feed(&r, data, size, count, &whole);
  cc_envelope_reader_cleanup(&r);
  cc_connect_reader_init(&r, 4096);
  cc_status b = CC_OK;
  for (size_t off = 0; off < size && b == CC_OK; off += step) {
    size_t k = size - off < step ? size - off : step;
    b = cc_envelope_reader_feed(&r, data + off, k, count, &parts);
  }
  cc_envelope_reader_cleanup(&r);
  if (a != b || whole.count != parts.count || whole.bytes != parts.bytes || whole.sum != parts.sum)
    abort();
  return 0;
}
