/*
 * cc_sbd_gunzip: streaming gzip decoding (zlib) of a `Content-Encoding: gzip` request body for
 * codecanvas-sandboxd's /files uploads.  Input arrives in arbitrary pieces; decoded bytes are
 * handed to a callback in chunks of at most 64 KiB as they come out, so a body is never held
 * in memory and the caller bounds the decoded size itself (a small body may decode to a lot).
 * Several gzip members one after the other decode as one stream (RFC 1952, as Go's reader).
 *
 * Ownership: the decoder owns its zlib state and buffer; cc_sbd_gunzip_free accepts NULL.
 * Fed untrusted bytes (fuzzed by tests/fuzz/fuzz_sbd_gunzip.c).
 */
#ifndef CC_SBD_GUNZIP_H
#define CC_SBD_GUNZIP_H

#include <stddef.h>
#include <stdint.h>

#include "cc_status.h"

typedef struct cc_sbd_gunzip cc_sbd_gunzip;

/* Receives decoded bytes; a status other than CC_OK stops decoding and is returned. */
typedef cc_status (*cc_sbd_gunzip_out)(void *ctx, const uint8_t *data, size_t n);

/* A decoder writing to out(ctx, ...); NULL when out of memory. */
cc_sbd_gunzip *cc_sbd_gunzip_new(cc_sbd_gunzip_out out, void *ctx);

/* Decodes the next n input bytes.  CC_OK, CC_BAD_REQUEST for input that is not gzip (or
 * bytes after the last member that do not start another), or the callback's status. */
cc_status cc_sbd_gunzip_feed(cc_sbd_gunzip *g, const uint8_t *data, size_t n);

/* The end of the input: CC_OK only if it ended at the end of a member. */
cc_status cc_sbd_gunzip_finish(cc_sbd_gunzip *g);

void cc_sbd_gunzip_free(cc_sbd_gunzip *g);

#endif
