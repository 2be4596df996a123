/*
 * cc_e2b_wire: the transport-free half of the E2B client.
 *
 * Everything here turns bytes received from E2B (or sandboxd) into C values, with no I/O:
 * the client's rules for the Connect envelope stream (the reader itself is shared/cc_envelope),
 * process-event and end-of-stream JSON, control-plane and envd response JSON,
 * error bodies and their mapping onto cc_status, base64 (tolerant of missing padding and of
 * the URL-safe alphabet), and message scrubbing.  It is internal to native/e2b/ (the client,
 * the unit tests and the fuzz targets include it); the worker uses cc_e2b.h only.
 *
 * Ownership: parsers write into caller-provided structs; the ones that allocate say so and
 * have a _cleanup.  Input bytes are never modified and need not be NUL-terminated.
 */
#ifndef CC_E2B_WIRE_H
#define CC_E2B_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cc_e2b.h"
#include "cc_envelope.h"

/* ---------------------------------------------------------------- envelopes */

#define CC_E2B_FLAG_COMPRESSED CC_ENVELOPE_COMPRESSED
#define CC_E2B_FLAG_END_STREAM CC_ENVELOPE_END_STREAM

/* Prepares r (shared/cc_envelope.h) to read an envd response stream with the client's
 * rules: envelopes above max_payload are CC_TOO_LARGE; compressed (never negotiated) or
 * unknown flag bits, and any byte after the end-of-stream envelope, are CC_UPSTREAM_ERROR.
 * Feed, test and free it with cc_envelope_reader_feed/_idle/_cleanup. */
void cc_e2b_envelope_init(cc_envelope_reader *r, size_t max_payload);

/* Writes the 5-byte header of an envelope with these flags and length. */
void cc_e2b_envelope_header(unsigned char out[5], unsigned flags, uint32_t len);

/* ---------------------------------------------------------------- process events */

/* A decoded process event plus the storage its pointers refer to. */
typedef struct cc_e2b_parsed_event {
  cc_e2b_event ev;
  bool known; /* false: a message we do not understand (ignored by the client) */
  char *data; /* decoded bytes of a data event (heap) */
  char status[64];
  char error[256];
} cc_e2b_parsed_event;

/* Parses one StartResponse/ConnectResponse payload ({"event":{...}}).  Returns CC_OK (with
 * out->known false for an unknown event kind), or CC_UPSTREAM_ERROR for invalid JSON or an
 * invalid base64/number field.  Always call cc_e2b_parsed_event_cleanup afterwards. */
cc_status cc_e2b_event_parse(const char *payload, size_t len, cc_e2b_parsed_event *out);
void cc_e2b_parsed_event_cleanup(cc_e2b_parsed_event *e);

/* Parses an end-of-stream payload.  Returns CC_OK for success ({} or metadata only), the
 * mapped status of {"error":{"code","message"}} (code/message copied, scrubbing is the
 * caller's job), or CC_UPSTREAM_ERROR for invalid JSON. */
cc_status cc_e2b_end_stream_parse(const char *payload, size_t len, char *code, size_t code_n,
                                  char *message, size_t message_n);

/* ---------------------------------------------------------------- errors */

/* Connect error code string -> cc_status (see cc_e2b.h; unknown codes -> CC_UPSTREAM_ERROR). */
cc_status cc_e2b_status_from_connect_code(const char *code);

/* Interprets a non-success HTTP response.  `sandbox_op` says a 404 means the sandbox is gone
 * (control-plane calls on one sandbox); `envd` says it came from an envd endpoint.  Fills
 * err->code/message/http_status/sandbox_gone from the body ({code,message} with a string or
 * numeric code, the proxy's 502 JSON, or any text) and returns the mapped status.  `what` is
 * a short description of the call put in front of the message.  No scrubbing here. */
cc_status cc_e2b_error_from_response(int http_status, const char *body, size_t len, bool sandbox_op,
                                     bool envd, const char *what, cc_e2b_error *err);

/* Removes every occurrence of `secret` (if non-empty) from msg in place, replacing it with
 * "[redacted]" when that fits, and turns control characters into '?'.  msg is NUL-terminated
 * within n bytes before and after. */
void cc_e2b_scrub(char *msg, size_t n, const char *secret);

/* ---------------------------------------------------------------- responses */

/* Create/connect response (Sandbox).  default_domain fills domain when the response has
 * none.  Missing sandboxID or envdVersion, or over-long fields -> CC_UPSTREAM_ERROR. */
cc_status cc_e2b_sandbox_parse(const char *json, size_t len, const char *default_domain,
                               cc_e2b_sandbox *out);

/* GET /sandboxes/{id} response (SandboxDetail). */
cc_status cc_e2b_info_parse(const char *json, size_t len, cc_e2b_info *out);

/* {"entry":EntryInfo} (Stat, MakeDir, Move).  Allocates; cc_e2b_entry_cleanup. */
cc_status cc_e2b_entry_parse(const char *json, size_t len, cc_e2b_entry *out);

/* {"entries":[EntryInfo...]} (ListDir).  Allocates; cc_e2b_entry_list_cleanup.  At most
 * max_entries entries (more -> CC_TOO_LARGE). */
cc_status cc_e2b_entries_parse(const char *json, size_t len, size_t max_entries,
                               cc_e2b_entry_list *out);

/* {"processes":[ProcessInfo...]} (List).  Allocates; cc_e2b_process_list_cleanup. */
cc_status cc_e2b_processes_parse(const char *json, size_t len, cc_e2b_process_list *out);

/* /files upload response: [{"path":...,...}].  Copies the first path into out (n bytes). */
cc_status cc_e2b_upload_parse(const char *json, size_t len, char *out, size_t n);

/* ---------------------------------------------------------------- base64 */

/* Decodes standard or URL-safe base64, with or without '=' padding.  out must hold
 * cc_e2b_base64_decoded_max(n) bytes.  Returns false on invalid input. */
bool cc_e2b_base64_decode(const char *in, size_t n, unsigned char *out, size_t *out_len);
size_t cc_e2b_base64_decoded_max(size_t n);

/* Encodes with the standard alphabet and padding into a heap string (free()).  NULL on OOM. */
char *cc_e2b_base64_encode(const void *data, size_t n);

#endif
