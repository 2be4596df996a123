/*
 * cc_multipart: an incremental multipart/form-data parser (RFC 7578) for the envd-style
 * `POST /files` upload of codecanvas-sandboxd.
 *
 * The body is fed in arbitrary pieces as the HTTP server receives it; part bodies are handed
 * out as they arrive, so an upload is never held in memory as a whole.  Part headers are
 * capped (CC_MULTIPART_MAX_HEADER bytes per part) and the number of parts is capped at
 * creation; passing either cap is CC_TOO_LARGE.  Malformed input is CC_BAD_REQUEST.
 *
 * Ownership: the parser owns its buffers.  Strings passed to callbacks are valid only during
 * the call.  cc_multipart_free accepts NULL.
 */
#ifndef CC_MULTIPART_H
#define CC_MULTIPART_H

#include <stddef.h>
#include <stdint.h>

#include "cc_status.h"

#define CC_MULTIPART_MAX_HEADER 8192
#define CC_MULTIPART_MAX_BOUNDARY 70

typedef struct {
  /* A part starts.  name/filename are NULL when absent; filename is raw (not unescaped
   * beyond the quoted-string backslash rule). */
  cc_status (*part_begin)(void *ctx, const char *name, const char *filename,
                          const char *content_type);
  cc_status (*part_data)(void *ctx, const uint8_t *data, size_t n);
  cc_status (*part_end)(void *ctx);
} cc_multipart_callbacks;

typedef struct cc_multipart cc_multipart;

/*
 * Extracts the boundary parameter of a multipart/form-data Content-Type header into out
 * (NUL-terminated).  Returns CC_BAD_REQUEST if the type is not multipart/form-data or the
 * boundary is missing, empty or longer than CC_MULTIPART_MAX_BOUNDARY.
 */
cc_status cc_multipart_boundary(const char *content_type, char *out, size_t out_size);

/* Creates a parser for `boundary` accepting at most max_parts parts; NULL on allocation
 * failure.  The callbacks struct is copied. */
cc_multipart *cc_multipart_new(const char *boundary, size_t max_parts,
                               const cc_multipart_callbacks *cb, void *ctx);

/* Feeds the next n body bytes.  Returns CC_OK, a parse/limit error, or the first non-OK
 * status a callback returned; after an error the parser must not be fed again. */
cc_status cc_multipart_feed(cc_multipart *mp, const uint8_t *data, size_t n);

/* Declares the end of the body: CC_OK only if the closing boundary was seen. */
cc_status cc_multipart_finish(cc_multipart *mp);

/* Number of parts begun so far. */
size_t cc_multipart_parts(const cc_multipart *mp);

void cc_multipart_free(cc_multipart *mp);

#endif
