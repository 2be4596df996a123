/*
 * cc_connect: Connect envelope codec and error-code table (see cc_connect.h).
 */
#include "cc_connect.h"

#include <stdlib.h>
#include <string.h>

static const struct {
  const char *name;
  int http;
} codes[] = {
  {"ok", 200},
#define CC_CONNECT_ROW(name, str, http) {str, http},
  CC_CONNECT_CODE_MAP(CC_CONNECT_ROW)
#undef CC_CONNECT_ROW
};

const char *cc_connect_code_name(cc_connect_code code) {
  if ((int)code <= 0 || code >= CC_CONNECT_CODE_COUNT) return "unknown";
  return codes[code].name;
}

int cc_connect_code_http(cc_connect_code code) {
  if ((int)code < 0 || code >= CC_CONNECT_CODE_COUNT) return 500;
  return codes[code].http;
}

void cc_connect_envelope_header(uint8_t hdr[5], uint8_t flags, uint32_t len) {
  hdr[0] = flags;
  hdr[1] = (uint8_t)(len >> 24);
  hdr[2] = (uint8_t)(len >> 16);
  hdr[3] = (uint8_t)(len >> 8);
  hdr[4] = (uint8_t)len;
}

void cc_connect_reader_init(cc_connect_reader *r, size_t max_payload) {
  memset(r, 0, sizeof *r);
  r->max_payload = max_payload;
}

int cc_connect_reader_idle(const cc_connect_reader *r) {
  return r->hdr_have == 0;
}

cc_status cc_connect_reader_feed(cc_connect_reader *r, const uint8_t *data, size_t n,
                                 cc_connect_envelope_fn fn, void *ctx) {
  while (n > 0) {
    if (r->hdr_have < 5) {
      size_t take = 5 - r->hdr_have;
      if (take > n) take = n;
      memcpy(r->hdr + r->hdr_have, data, take);
      r->hdr_have += take;
      data += take;
      n -= take;
      if (r->hdr_have < 5) break;
      r->len = ((uint32_t)r->hdr[1] << 24) | ((uint32_t)r->hdr[2] << 16) |
               ((uint32_t)r->hdr[3] << 8) | (uint32_t)r->hdr[4];
      if (r->len > r->max_payload) return CC_TOO_LARGE;
      r->have = 0;
      if (!r->buf && r->max_payload > 0) {
        r->buf = malloc(r->max_payload);
        if (!r->buf) return CC_INTERNAL;
      }
    }
    size_t take = r->len - r->have;
    if (take > n) take = n;
    if (take) memcpy(r->buf + r->have, data, take);
    r->have += take;
    data += take;
    n -= take;
    if (r->have == r->len) {
      r->hdr_have = 0;
      cc_status st = fn(ctx, r->hdr[0], r->buf, r->len);
      if (st != CC_OK) return st;
    }
  }
  return CC_OK;
}

void cc_connect_reader_cleanup(cc_connect_reader *r) {
  free(r->buf);
  r->buf = NULL;
  r->hdr_have = r->have = 0;
}
