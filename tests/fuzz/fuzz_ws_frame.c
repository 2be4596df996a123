/*
 * fuzz_ws_frame: the worker's WebSocket frame decoder (native/worker/cc_wws.c) on arbitrary
 * client bytes, fed in pieces whose sizes come from the input: it must never read or write
 * out of bounds, and every message it hands out lies within its buffer.
 */
#include <stdint.h>
#include <string.h>

#include "cc_wws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t step = (size_t)data[0] % 17 + 1;
  cc_ws_decoder d;
  cc_ws_decoder_init(&d, 4096);
  const uint8_t *p = data + 1;
  size_t left = size - 1;
  volatile uint8_t sink = 0;
  while (left > 0) {
    size_t k = left < step ? left : step;
    const uint8_t *q = p;
    size_t n = k;
    for (;;) {
      cc_ws_message m;
      int r = cc_ws_feed(&d, &q, &n, &m);
      if (r == 1) {
        for (size_t i = 0; i < m.len; i++) sink ^= m.data[i];
        continue;
      }
      break;
    }
    if (d.close_code) break;
    p += k;
    left -= k;
  }
  (void)sink;
  cc_ws_decoder_free(&d);
  return 0;
}
