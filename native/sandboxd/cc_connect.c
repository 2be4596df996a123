/*
 * cc_connect: Connect envelope headers, sandboxd's reader rules and the error-code table (see cc_connect.h).
 */
#include "cc_connect.h"


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

void cc_connect_reader_init(cc_envelope_reader *r, size_t max_payload) {
  cc_envelope_opts o = {
      .max_payload = max_payload,
      .allowed_flags = CC_ENVELOPE_ANY_FLAGS,
      .end_is_last = false,
      .violation = CC_BAD_REQUEST, /* unused with these rules */
  };
  cc_envelope_reader_init(r, &o);
}
