/*
 * cc_client_cache: the wasm client's local cache, one SQLite database.
 *
 * In the wasm client the database is an in-memory image (SQLite's memdb) that JS loads from
 * and saves to IndexedDB; natively it can also be a plain file, so the logic is unit-tested
 * under ASan either way.  It holds:
 *   - per project, the newest generation this client has seen (from any response, or from
 *     another tab) — the key of the exec-cache correctness rule;
 *   - exec results, served locally only while their generation equals the project's seen
 *     generation and they are younger than max_stale_ms (DESIGN §5, §8);
 *   - documents for offline reads: execution records, history pages, project info, the
 *     project list.
 * Every table has a row cap set at open; the oldest rows are pruned on insert.
 *
 * Ownership: strings passed in are copied; strings handed out (char **out) are allocated
 * with malloc and freed by the caller with free().  A cc_client_cache is not thread-safe.
 */
#ifndef CC_CLIENT_CACHE_H
#define CC_CLIENT_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cc_status.h"

typedef struct cc_client_cache cc_client_cache;

typedef struct {
  int max_exec_entries; /* exec results kept; default 500 */
  int max_docs;         /* records + history pages + project infos kept; default 2000 */
  int max_value_bytes;  /* largest JSON value stored; larger values are not cached; 4 MiB */
} cc_client_cache_limits;

/* Document kinds (the `kind` argument of the doc functions). */
#define CC_DOC_RECORD "record"     /* key: execution id, project: "" */
#define CC_DOC_HISTORY "history"   /* key: the page's query ("limit=50"), project: id */
#define CC_DOC_PROJECT "project"   /* key: "", project: id */
#define CC_DOC_PROJECTS "projects" /* key: "", project: "" */

/* Opens (creating if needed) the cache database at `path` (":memory:" allowed).
 * `limits` may be NULL for the defaults.  On success *out owns the connection; on failure
 * *out is NULL and the status says why (CC_INTERNAL for SQLite errors). */
cc_status cc_client_cache_open(const char *path, const cc_client_cache_limits *limits,
                               cc_client_cache **out);

/* Opens the cache as an in-memory database (SQLite's memdb) initialised from `image`, the
 * bytes of a database file (len 0 = a new, empty cache).  This is how the wasm client keeps
 * its cache: JS stores the image in IndexedDB (see cc_client_cache_image).  An image that is
 * not a usable database is dropped and the cache starts empty.  The image is copied. */
cc_status cc_client_cache_open_image(const unsigned char *image, size_t len,
                                     const cc_client_cache_limits *limits,
                                     cc_client_cache **out);

/* The current database image of a cache opened with cc_client_cache_open_image: *data points
 * into the database (borrowed: valid until the next call that changes the cache; copy it at
 * once), *len is its size.  CC_INTERNAL for a file-backed cache. */
cc_status cc_client_cache_image(cc_client_cache *c, const unsigned char **data, size_t *len);

/* Merges another cache image into this one (several tabs of one user each keep an image of
 * the same cache; the one saved last must not drop what the others cached): per project the
 * higher seen generation; per exec key and per document the newer entry (stored_at); then the
 * row caps.  The other image is only read.  CC_INTERNAL (nothing changed) when it is not a
 * usable cache image. */
cc_status cc_client_cache_merge_image(cc_client_cache *c, const unsigned char *image, size_t len);

/* Closes the database.  Accepts NULL. */
void cc_client_cache_free(cc_client_cache *c);

/* The last detailed error message (static storage inside the handle; never NULL). */
const char *cc_client_cache_errmsg(const cc_client_cache *c);

/* Records that `project` has reached `generation`.  Generations only grow: a smaller value
 * than the stored one is ignored.  *changed (may be NULL) tells whether it grew. */
cc_status cc_client_cache_seen_generation(cc_client_cache *c, const char *project,
                                          int64_t generation, bool *changed);

/* The newest generation seen for `project`; CC_NOT_FOUND when none was seen yet. */
cc_status cc_client_cache_generation(cc_client_cache *c, const char *project,
                                     int64_t *generation);

/* Stores an exec result (a JSON object) under (project, key) with the generation the
 * worker reported with it.  Values above max_value_bytes are skipped (CC_OK, not stored). */
cc_status cc_client_cache_exec_put(cc_client_cache *c, const char *project, const char *key,
                                   int64_t generation, int64_t now_ms, const char *json);

/* Looks up an exec result.  A hit needs: an entry for (project, key), its generation equal
 * to the project's seen generation, and now_ms - stored_at <= max_stale_ms.  On a hit
 * *json is the stored JSON (caller frees); otherwise CC_NOT_FOUND and *json is NULL. */
cc_status cc_client_cache_exec_get(cc_client_cache *c, const char *project, const char *key,
                                   int64_t now_ms, int64_t max_stale_ms, char **json);

/* Drops the exec entries of `project` (all of them when key is NULL, else one key);
 * *cleared (may be NULL) receives the number of rows removed. */
cc_status cc_client_cache_exec_clear(cc_client_cache *c, const char *project, const char *key,
                                     int *cleared);

/* Stores a document (JSON) for offline reads, replacing an older one with the same
 * (kind, project, key).  Values above max_value_bytes are skipped. */
cc_status cc_client_cache_doc_put(cc_client_cache *c, const char *kind, const char *project,
                                  const char *key, int64_t now_ms, const char *json);

/* Reads a document; CC_NOT_FOUND when absent.  *json is caller-freed; *stored_at_ms (may be
 * NULL) receives when it was stored. */
cc_status cc_client_cache_doc_get(cc_client_cache *c, const char *kind, const char *project,
                                  const char *key, char **json, int64_t *stored_at_ms);

/* Forgets everything about `project`: its generation, exec entries and documents. */
cc_status cc_client_cache_drop_project(cc_client_cache *c, const char *project);

#endif
