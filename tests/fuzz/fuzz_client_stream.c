/*
 * libFuzzer target: the wasm client's response reader (shared/cc_client.c), i.e. every byte
 * a worker (or anything posing as one) can send back: NDJSON streams of exec and plain
 * responses of a read op, with the local cache update that a success triggers.
 *
 * Each input is fed twice per mode: in one piece and in chunks whose sizes come from the
 * input itself.  Both runs must produce the same events and the same outcome: chunking must
 * never change what the client sees.  Exactly one outcome per request, always.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cc_client.h"

typedef struct {
  uint64_t hash; /* FNV-1a over events and the outcome */
  int dones;
} digest;

static void mix(digest *d, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) d->hash = (d->hash ^ (unsigned char)p[i]) * 1099511628211ull;
  d->hash = (d->hash ^ n) * 1099511628211ull;
}

static cc_status io_send(void *ctx, uint32_t req, const char *body, size_t len, bool stream) {
  return CC_OK;
}
static void io_event(void *ctx, uint32_t req, cc_proto_event_type t, const char *data, size_t n) {
  digest *d = ctx;
  d->hash = (d->hash ^ (unsigned)t) * 1099511628211ull;
  mix(d, data, n);
}
static void io_done(void *ctx, uint32_t req, bool ok, const char *json, size_t n) {
  digest *d = ctx;
  d->dones++;
  d->hash = (d->hash ^ (ok ? 1u : 2u)) * 1099511628211ull;
  mix(d, json, n);
}

/* Runs one request of `op` whose response is `data`, delivered in chunks (split != 0). */
static digest run(const char *op, const char *args, bool stream, const uint8_t *data,
                  size_t size, bool split) {
  digest d = {1469598103934665603ull, 0};
  cc_client_cache *cache = NULL;
  cc_client *c = NULL;
  if (cc_client_cache_open(":memory:", NULL, &cache) != CC_OK) abort();
  cc_client_io io = {.ctx = &d, .send = io_send, .event = io_event, .done = io_done};
  cc_client_options opt = {.max_stale_ms = 1000};
  opt.proto = cc_proto_limits_default();
  opt.proto.max_response_bytes = 1 << 20;
  if (cc_client_new(cache, &io, &opt, &c) != CC_OK) abort();
  char *err = NULL;
  if (cc_client_request(c, 1, op, "p", args, stream, 0, &err) != CC_OK) abort();
  size_t i = 0, k = 0;
  while (i < size) {
    size_t n = split ? 1 + (data[k++ % size] % 17) : size - i;
    if (n > size - i) n = size - i;
    cc_client_on_data(c, 1, (const char *)data + i, n, 0);
    i += n;
  }
  cc_client_on_end(c, 1, 200, NULL, NULL, 0);
  cc_client_free(c);
  cc_client_cache_free(cache);
  if (d.dones != 1) abort(); /* exactly one outcome */
  return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const struct { const char *op, *args; bool stream; } modes[] = {
      {"exec", "{\"cmd\":\"x\"}", true},
      {"getHistory", "{\"limit\":5}", false},
  };
  for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
    digest whole = run(modes[m].op, modes[m].args, modes[m].stream, data, size, false);
    digest parts = run(modes[m].op, modes[m].args, modes[m].stream, data, size, true);
    if (whole.hash != parts.hash) abort(); /* chunking changed the outcome */
  }
  return 0;
}
