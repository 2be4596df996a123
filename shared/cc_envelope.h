/*
 * cc_envelope: the one incremental reader of Connect streaming envelopes.
 *
 * A Connect stream is a sequence of envelopes: 1 flag byte (0x01 compressed, 0x02
 * end-of-stream), a 4-byte big-endian payload length, the payload (reference
 * e2b-protocol.md §3.3).  Bytes arrive in arbitrary chunks (TCP, proxies and libcurl split
 * and coalesce anywhere); the reader buffers partial headers and payloads and hands every
 * complete envelope to a callback.  Both ends use it: the E2B client reads envd's response
 * streams (native/e2b) and codecanvas-sandboxd reads request envelopes (native/sandboxd).
 * Each side's extra rules (which flags are allowed, whether anything may follow
 * end-of-stream, what status a violation is) are options set at init.
 *
 * Ownership: a cc_envelope_reader is caller-owned storage (_init/_cleanup) and owns the
 * buffer of a partial payload; the payload pointer handed to the callback is valid only
 * during the call.  No global state.
 */
#ifndef CC_ENVELOPE_H
#define CC_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cc_status.h"

#define CC_ENVELOPE_COMPRESSED 0x01u
#define CC_ENVELOPE_END_STREAM 0x02u
#define CC_ENVELOPE_ANY_FLAGS 0xFFu
#define CC_ENVELOPE_HEADER_LEN 5

/* Called once per complete envelope with its flag byte and payload (len may be 0; payload
 * is then a valid empty pointer).  Return 0 to go on, non-zero to stop: the feed then
 * returns CC_OK with r->stopped set, and the rest of this and every later input is
 * ignored. */
typedef int (*cc_envelope_fn)(void *ctx, unsigned flags, const uint8_t *payload, size_t len);

typedef struct {
  size_t max_payload;     /* an envelope announcing more bytes is CC_TOO_LARGE */
  unsigned allowed_flags; /* flag bits an envelope may carry (CC_ENVELOPE_ANY_FLAGS: all) */
  bool end_is_last;       /* any byte after an end-of-stream envelope is a violation */
  cc_status violation;    /* returned for a disallowed flag or bytes after end-of-stream */
} cc_envelope_opts;

typedef struct {
  cc_envelope_opts opt;
  uint8_t hdr[CC_ENVELOPE_HEADER_LEN];
  size_t hdr_len;  /* header bytes of the current envelope seen (0..5) */
  unsigned flags;  /* flag byte of the current envelope */
  size_t need;     /* payload length of the current envelope */
  uint8_t *buf;    /* partial payload, allocated to `need` when it spans chunks */
  size_t buf_len;
  bool end_seen;   /* an end-of-stream envelope was delivered */
  bool stopped;    /* the callback asked to stop */
  cc_status failed; /* CC_OK, or the framing error that ended the stream (sticky) */
} cc_envelope_reader;

/* Prepares r with the given options (copied). */
void cc_envelope_reader_init(cc_envelope_reader *r, const cc_envelope_opts *opt);

/*
 * Consumes n bytes of the stream, calling fn for every envelope these bytes complete.
 * Returns CC_OK (all consumed, or stopped by the callback), CC_TOO_LARGE (an envelope
 * header announced more than max_payload bytes; refused before any allocation),
 * opt.violation (a flag bit outside allowed_flags, or bytes after end-of-stream when
 * end_is_last), or CC_INTERNAL (out of memory).  After an error the reader stays failed and
 * every later feed returns the same status without calling fn.  A complete payload that
 * lies inside one chunk is handed to fn without copying.
 */
cc_status cc_envelope_reader_feed(cc_envelope_reader *r, const void *data, size_t n,
                                  cc_envelope_fn fn, void *ctx);

/* True when the input so far ended exactly at an envelope boundary and nothing failed. */
bool cc_envelope_reader_idle(const cc_envelope_reader *r);

/* Frees the partial payload; r may be initialised again afterwards. */
void cc_envelope_reader_cleanup(cc_envelope_reader *r);

#endif
