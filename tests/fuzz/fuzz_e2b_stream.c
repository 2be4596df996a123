/*
 * libFuzzer target: the E2B client's Connect envelope stream parser and process-event
 * decoder (native/e2b/cc_e2b_wire.c), i.e. every byte an envd stream can send us.
 *
 * The input is fed twice: in one piece and in chunks whose sizes come from the input
 * itself.  Both runs must deliver the same envelopes (same flags, same payload bytes) and
 * end in the same status: chunking must never change what the parser sees.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cc_e2b_wire.h"

typedef struct {
  uint64_t hash; /* FNV-1a over every delivered envelope */
  size_t count;
} digest;

static int on_env(void *ctx, unsigned flags, const uint8_t *bytes, size_t len) {
  const char *payload = (const char *)bytes;
  digest *d = ctx;
  d->hash = (d->hash ^ flags) * 1099511628211ull;
  for (size_t i = 0; i < len; i++)
    d->hash = (d->hash ^ (unsigned char)payload[i]) * 1099511628211ull;
  d->hash = (d->hash ^ len) * 1099511628211ull;
  d->count++;
  if (flags & CC_E2B_FLAG_END_STREAM) {
    char code[32], msg[128];
    cc_e2b_end_stream_parse(payload, len, code, sizeof code, msg, sizeof msg);
  } else {
    cc_e2b_parsed_event pe;
    if (cc_e2b_event_parse(payload, len, &pe) == CC_OK && pe.known &&
        pe.ev.type == CC_E2B_EVENT_STDOUT && pe.ev.len > 0)
      d->hash ^= (unsigned char)pe.ev.data[pe.ev.len - 1]; /* touch the decoded bytes */
    cc_e2b_parsed_event_cleanup(&pe);
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  unsigned step = data[0] % 17 + 1; /* chunk size for the second run */
  data++;
  size--;

  cc_envelope_reader a, b;
  digest da = {14695981039346656037ull, 0}, db = {14695981039346656037ull, 0};
  cc_e2b_envelope_init(&a, 1 << 16);
  cc_e2b_envelope_init(&b, 1 << 16);
  cc_status sa = cc_envelope_reader_feed(&a, data, size, on_env, &da);
  cc_status sb = CC_OK;
  for (size_t at = 0; at < size && sb == CC_OK; at += step) {
    size_t n = size - at < step ? size - at : step;
    sb = cc_envelope_reader_feed(&b, data + at, n, on_env, &db);
  }
  if (sa != sb || da.hash != db.hash || da.count != db.count ||
      cc_envelope_reader_idle(&a) != cc_envelope_reader_idle(&b))
    abort();
  cc_envelope_reader_cleanup(&a);
  cc_envelope_reader_cleanup(&b);
  return 0;
}
