/*
 * libFuzzer target: the protocol v1 response, event and NDJSON line decoders
 * (shared/cc_proto.c), i.e. every byte the wasm client reads from a worker, plus the UTF-8
 * helpers the worker uses on sandbox output.
 *
 * Properties besides memory safety and UB: a decoded message re-encodes and decodes to the
 * same kind, id and outcome; output bytes of any kind become a valid event; the
 * complete-prefix split never cuts a valid sequence.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cc_proto.h"

static void check_response(const cc_response *r) {
  char *again = NULL;
  if (r->ok) {
    if (!cJSON_IsObject(r->result)) abort();
    if (cc_proto_encode_ok(r->id, r->result, r->generation, &again) != CC_OK) abort();
  } else {
    if (r->error.status == CC_OK || !r->error.code || !r->error.message) abort();
    if (cc_proto_encode_error(r->id, r->error.status, r->error.message, r->error.reason, &again) !=
        CC_OK)
      abort();
  }
  cc_response r2;
  if (cc_proto_parse_response(again, strlen(again), NULL, &r2, NULL) != CC_OK) abort();
  if (r2.ok != r->ok || !r2.id != !r->id || (r->id && strcmp(r2.id, r->id) != 0) ||
      r2.generation != r->generation)
    abort();
  if (r->ok) {
    cc_proto_exec_result er;
    cc_proto_exec_result_from_json(r->result, &er); /* any outcome; must not crash */
  }
  cc_response_cleanup(&r2);
  cc_proto_free(again);
}

static void check_event(const cc_event *ev) {
  char *again;
  if (cc_proto_encode_event(ev->id, ev->type, ev->data, &again) != CC_OK) abort();
  cc_event e2;
  if (cc_proto_parse_event(again, strlen(again), NULL, &e2, NULL) != CC_OK) abort();
  if (e2.type != ev->type || strcmp(e2.id, ev->id) != 0) abort();
  if (ev->text && strcmp(e2.text, ev->text) != 0) abort();
  cc_event_cleanup(&e2);
  cc_proto_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *buf = (const char *)data;
  cc_proto_limits lim = cc_proto_limits_default();

  cc_response resp;
  if (cc_proto_parse_response(buf, size, &lim, &resp, NULL) == CC_OK) check_response(&resp);
  cc_response_cleanup(&resp);

  cc_event ev;
  if (cc_proto_parse_event(buf, size, &lim, &ev, NULL) == CC_OK) check_event(&ev);
  cc_event_cleanup(&ev);

  cc_proto_line line;
  if (cc_proto_parse_line(buf, size, &lim, &line, NULL) == CC_OK) {
    if (line.is_event)
      check_event(&line.event);
    else
      check_response(&line.response);
  }
  cc_proto_line_cleanup(&line);

  /* The raw bytes as process output: always a valid stdout event, split safely. */
  char *text;
  if (cc_proto_encode_output_event("f", CC_EVENT_STDOUT, buf, size, &text) != CC_OK) abort();
  if (cc_proto_parse_event(text, strlen(text), NULL, &ev, NULL) != CC_OK) abort();
  cc_event_cleanup(&ev);
  cc_proto_free(text);
  size_t keep = cc_proto_utf8_complete_prefix(buf, size);
  if (keep > size || (size - keep) > 3) abort();
  char *whole, *part;
  size_t wn, pn;
  if (cc_proto_utf8_sanitize(buf, size, &whole, &wn) != CC_OK ||
      cc_proto_utf8_sanitize(buf, keep, &part, &pn) != CC_OK)
    abort();
  /* Holding back the tail never changes how the kept part decodes. */
  if (pn > wn || memcmp(whole, part, pn) != 0) abort();
  cc_proto_free(whole);
  cc_proto_free(part);
  return 0;
}
