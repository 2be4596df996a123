/*
 * cc_wtoken: user tokens of the worker: making a new random token and hashing one.
 *
 * A token is "cct_" + 43 base64url characters (256 random bits from OpenSSL's RAND_bytes).
 * Only its SHA-256 (64 lowercase hex digits) is ever stored; the worker hashes the bearer
 * token of every request and looks the hash up in the store.
 *
 * Ownership: callers pass fixed-size buffers; nothing allocates except cc_wtoken_hasher_new.
 */
#ifndef CC_WTOKEN_H
#define CC_WTOKEN_H

#include <stddef.h>

#include "cc_status.h"

#define CC_WTOKEN_LEN 47      /* "cct_" + 43 */
#define CC_WTOKEN_HASH_LEN 64 /* hex SHA-256 */

/* Writes a new token (NUL-terminated) into out.  CC_INTERNAL if the RNG fails. */
cc_status cc_wtoken_new(char out[CC_WTOKEN_LEN + 1]);

/* Writes the hex SHA-256 of token[0..len) into hex.  CC_INTERNAL if OpenSSL fails. */
cc_status cc_wtoken_hash(const char *token, size_t len, char hex[CC_WTOKEN_HASH_LEN + 1]);

/* OpenSSL's SHA-256 fetched once: OpenSSL 3 otherwise looks the algorithm up by name on
 * every digest, about a third of hashing a token.  For a server hashing every request's
 * token.  _new returns NULL when out of memory; _free accepts NULL. */
typedef struct cc_wtoken_hasher cc_wtoken_hasher;
cc_wtoken_hasher *cc_wtoken_hasher_new(void);
void cc_wtoken_hasher_free(cc_wtoken_hasher *h);

/* As cc_wtoken_hash, with the fetched implementation (h NULL: exactly cc_wtoken_hash). */
cc_status cc_wtoken_hash_with(const cc_wtoken_hasher *h, const char *token, size_t len,
                              char hex[CC_WTOKEN_HASH_LEN + 1]);

#endif
