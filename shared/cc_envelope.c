/*
 * cc_envelope: incremental Connect envelope reader (see cc_envelope.h).
 */
#include "cc_envelope.h"

#include <stdlib.h>
#include <string.h>

void cc_envelope_reader_init(cc_envelope_reader *r, const cc_envelope_opts *opt) {
  memset(r, 0, sizeof *r);
  r->opt = *opt;
}

void cc_envelope_reader_cleanup(cc_envelope_reader *r) {
  free(r->buf);
  r->buf = NULL;
  r->buf_len = 0;
  r->hdr_len = 0;
}

bool cc_envelope_reader_idle(const cc_envelope_reader *r) {
  return r->failed == CC_OK && r->hdr_len == 0;
}

static cc_status fail(cc_envelope_reader *r, cc_status st) {
  r->failed = st;
  return st;
}

/* Delivers the current envelope and resets for the next header.  Returns the callback's
 * stop request. */
static int deliver(cc_envelope_reader *r, const uint8_t *payload, cc_envelope_fn fn, void *ctx) {
  unsigned flags = r->flags;
  size_t len = r->need;
  if (flags & CC_ENVELOPE_END_STREAM) r->end_seen = true;
  int stop = fn ? fn(ctx, flags, payload, len) : 0;
  r->hdr_len = 0;
  r->need = 0;
  r->buf_len = 0;
  free(r->buf);
  r->buf = NULL;
  if (stop) r->stopped = true;
  return stop;
}

cc_status cc_envelope_reader_feed(cc_envelope_reader *r, const void *data, size_t n,
                                  cc_envelope_fn fn, void *ctx) {
  const uint8_t *in = data;
  if (r->failed != CC_OK) return r->failed;
  if (r->stopped) return CC_OK;
  while (n > 0) {
    if (r->end_seen && r->opt.end_is_last) return fail(r, r->opt.violation);
    if (r->hdr_len < CC_ENVELOPE_HEADER_LEN) {
      size_t take = CC_ENVELOPE_HEADER_LEN - r->hdr_len;
      if (take > n) take = n;
      memcpy(r->hdr + r->hdr_len, in, take);
      r->hdr_len += take;
      in += take;
      n -= take;
      if (r->hdr_len < CC_ENVELOPE_HEADER_LEN) break;
      r->flags = r->hdr[0];
      r->need = ((size_t)r->hdr[1] << 24) | ((size_t)r->hdr[2] << 16) |
                ((size_t)r->hdr[3] << 8) | (size_t)r->hdr[4];
      if (r->flags & ~r->opt.allowed_flags) return fail(r, r->opt.violation);
      if (r->need > r->opt.max_payload) return fail(r, CC_TOO_LARGE);
      r->buf_len = 0;
      if (n >= r->need) {
        /* Fast path: the whole payload is in this chunk; deliver it without copying. */
        const uint8_t *payload = r->need ? in : (const uint8_t *)"";
        in += r->need;
        n -= r->need;
        if (deliver(r, payload, fn, ctx)) return CC_OK;
        continue;
      }
      r->buf = malloc(r->need);
      if (!r->buf) return fail(r, CC_INTERNAL);
    }
    size_t take = r->need - r->buf_len;
    if (take > n) take = n;
    memcpy(r->buf + r->buf_len, in, take);
    r->buf_len += take;
    in += take;
    n -= take;
    if (r->buf_len == r->need && deliver(r, r->buf, fn, ctx)) return CC_OK;
  }
  return CC_OK;
}
