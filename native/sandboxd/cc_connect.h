/*
 * cc_connect: the Connect-RPC wire pieces that codecanvas-sandboxd speaks (JSON codec).
 *
 * Streaming Connect messages are framed as envelopes: 1 flag byte (0x00 message,
 * 0x01 compressed, 0x02 end-of-stream), a 4-byte big-endian payload length, the payload
 * (reference e2b-protocol.md §3.3).  This module encodes envelope headers, sets sandboxd's
 * rules on the shared incremental reader (shared/cc_envelope.h), and maps the Connect error
 * codes ("not_found", ...) to their HTTP statuses (§3.2).
 *
 * Ownership: see cc_envelope.h for the reader.  All strings returned are static.
 */
#ifndef CC_CONNECT_H
#define CC_CONNECT_H

#include <stddef.h>
#include <stdint.h>

#include "cc_envelope.h"
#include "cc_status.h"

enum {
  CC_CONNECT_FLAG_COMPRESSED = CC_ENVELOPE_COMPRESSED,
  CC_CONNECT_FLAG_END_STREAM = CC_ENVELOPE_END_STREAM,
};

/* Connect error codes, numbered as in the protocol (1 = canceled ... 16 = unauthenticated). */
#define CC_CONNECT_CODE_MAP(X)                  \
  X(CANCELED, "canceled", 499)                  \
  X(UNKNOWN, "unknown", 500)                    \
  X(INVALID_ARGUMENT, "invalid_argument", 400)  \
  X(DEADLINE_EXCEEDED, "deadline_exceeded", 504)\
  X(NOT_FOUND, "not_found", 404)                \
  X(ALREADY_EXISTS, "already_exists", 409)      \
  X(PERMISSION_DENIED, "permission_denied", 403)\
  X(RESOURCE_EXHAUSTED, "resource_exhausted", 429) \
  X(FAILED_PRECONDITION, "failed_precondition", 400) \
  X(ABORTED, "aborted", 409)                    \
  X(OUT_OF_RANGE, "out_of_range", 400)          \
  X(UNIMPLEMENTED, "unimplemented", 501)        \
  X(INTERNAL, "internal", 500)                  \
  X(UNAVAILABLE, "unavailable", 503)            \
  X(DATA_LOSS, "data_loss", 500)                \
  X(UNAUTHENTICATED, "unauthenticated", 401)

typedef enum {
  CC_CONNECT_OK = 0,
#define CC_CONNECT_ENUM(name, str, http) CC_CONNECT_##name,
  CC_CONNECT_CODE_MAP(CC_CONNECT_ENUM)
#undef CC_CONNECT_ENUM
  CC_CONNECT_CODE_COUNT
} cc_connect_code;

/* The snake_case name of a code ("not_found"); "unknown" for out-of-range values. */
const char *cc_connect_code_name(cc_connect_code code);

/* The HTTP status connect-go uses for a unary error with this code (500 if out of range). */
int cc_connect_code_http(cc_connect_code code);

/* Writes the 5-byte envelope header for a payload of `len` bytes into hdr. */
void cc_connect_envelope_header(uint8_t hdr[5], uint8_t flags, uint32_t len);

/* Prepares r (shared/cc_envelope.h) to read request envelopes with sandboxd's rules: an
 * envelope above max_payload is CC_TOO_LARGE; flags are handed to the callback unchecked
 * (the handler decides).  Feed, test and free it with cc_envelope_reader_feed/_idle/_cleanup. */
void cc_connect_reader_init(cc_envelope_reader *r, size_t max_payload);

#endif
