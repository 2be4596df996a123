/*
 * test_exports.c: the boundary of the TEST-ONLY wasm module cc_protocol_cases.js, which
 * runs the protocol data files (tests/protocol/cases/) through the wasm build of cc_proto
 * under Node, with the same function (cc_proto_case_run) as the native runner.  It is not
 * part of the shipped client (codecanvas.wasm), so the client carries no test code.
 *
 * Exports follow the rules of exports.c: one macro, 32-bit sizes, JS frees results with
 * cc_wasm_free.
 */
#include <emscripten.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cc_proto_cases.h"

#define CC_EXPORT EMSCRIPTEN_KEEPALIVE

/* Runs one case file's text.  Returns "<rc> <message>" (rc: 0 pass, 1 fail, 2 malformed);
 * JS frees it with cc_wasm_free. */
CC_EXPORT char *cc_wasm_protocol_case(const char *text, uint32_t len) {
  char msg[512] = "";
  int rc = cc_proto_case_run(text, len, msg, sizeof msg);
  size_t cap = sizeof msg + 16;
  char *out = malloc(cap);
  if (out) snprintf(out, cap, "%d %s", rc, msg);
  return out;
}

/* Frees a string returned above. Accepts NULL. */
CC_EXPORT void cc_wasm_free(void *p) { free(p); }
