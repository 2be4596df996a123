/*
 * cc_sbd_meta: envd's user-defined file metadata for codecanvas-sandboxd's /files uploads:
 * the `X-Metadata-<key>: <value>` request headers turned into a validated set, and the set
 * stored as extended attributes `user.e2b.<key>` on an uploaded file (replacing whatever
 * `user.e2b.*` attributes it had), read back for the upload's answer.  The rules are envd's
 * (e2b-dev/infra, packages/shared/pkg/filesystem/xattr.go): keys are lowercased, keys and
 * values printable US-ASCII (0x20-0x7e), a key at most 246 bytes (255, the kernel's limit of
 * an attribute name, minus the prefix), and the whole set at most 4096 bytes counted as
 * prefix + key + value per entry.  Anything else is refused with a message, never dropped.
 *
 * Ownership: a cc_sbd_meta owns its strings; cc_sbd_meta_free accepts NULL.  Header strings
 * are copied.  The set is fed untrusted header bytes (fuzzed by tests/fuzz/fuzz_sbd_meta.c).
 */
#ifndef CC_SBD_META_H
#define CC_SBD_META_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "cc_status.h"

#define CC_SBD_META_PREFIX "user.e2b."  /* the attribute namespace of envd's metadata */
#define CC_SBD_META_HEADER "X-Metadata-" /* the request header prefix (case-insensitive) */
#define CC_SBD_META_MAX_KEY 246         /* 255 - strlen(CC_SBD_META_PREFIX) */
#define CC_SBD_META_MAX_TOTAL 4096      /* sum of prefix + key + value over the set */
#define CC_SBD_META_MAX_ENTRIES 512     /* more cannot fit MAX_TOTAL (each costs >= 10) */

typedef struct {
  char *key; /* lowercased */
  char *value;
} cc_sbd_meta_pair;

typedef struct {
  cc_sbd_meta_pair *pairs;
  size_t n;
  size_t total; /* envd's size of the set */
} cc_sbd_meta;

/* A new empty set; NULL when out of memory. */
cc_sbd_meta *cc_sbd_meta_new(void);
void cc_sbd_meta_free(cc_sbd_meta *m);

/*
 * Offers one request header.  A header whose name does not start with X-Metadata- (any case)
 * is not metadata: CC_OK, nothing added.  A metadata header is added with its key lowercased,
 * or refused with CC_BAD_REQUEST and a message in err (err_size bytes, may be 0): an empty
 * key, a key over CC_SBD_META_MAX_KEY, a byte outside 0x20-0x7e in the key or the value, the
 * same key twice, or the set growing past CC_SBD_META_MAX_TOTAL.  CC_INTERNAL when out of
 * memory.  name and value must be NUL-terminated; value may be NULL (treated as "").
 */
cc_status cc_sbd_meta_add_header(cc_sbd_meta *m, const char *name, const char *value, char *err,
                                 size_t err_size);

/*
 * Makes the set m (NULL = empty) the file's whole metadata: removes every user.e2b.*
 * attribute of the file open on fd that m does not name, then sets each of m's.  Returns 0,
 * or the errno of the first failure (ENOTSUP/EOPNOTSUPP when the file system keeps no user
 * attributes; ENOSPC/EDQUOT when they do not fit).
 */
int cc_sbd_meta_write_fd(int fd, const cc_sbd_meta *m);

/*
 * The file's metadata as read back from fd: a JSON object {key: value} of its user.e2b.*
 * attributes whose key and value are valid UTF-8 without NUL bytes (what a protobuf map of
 * strings can carry; envd skips the others too), or NULL when it has none, the file system
 * keeps none, or out of memory.  Caller frees with cJSON_Delete.
 */
cJSON *cc_sbd_meta_read_fd(int fd);

#endif
