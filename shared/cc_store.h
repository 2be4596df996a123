/*
 * cc_store: the worker's persistent state behind one interface.
 *
 * The store holds users and their hashed tokens, projects namespaced by owner, each
 * project's generation counter, sandbox id and JSON metadata, the exec cache and the
 * execution records (history).  It is a struct of function pointers with a `void *ctx`
 * (STYLE 3): SQLite (cc_store_sqlite.c, one worker per file, the embedded default) and
 * PostgreSQL (cc_store_pg.c, several workers on one database) implement the same calls, and
 * the rules they share live once in cc_store_rules.c.  cc_store_open() picks one by the
 * database's name.
 * Rules (generation, TTL, pruning, recovery) and the schema: docs/store.md.
 *
 * Ownership (one rule for the whole API):
 *  - Inputs are borrowed: the store copies what it keeps and never retains a pointer.
 *  - Every `cJSON **out` receives a new tree owned by the caller (free with cJSON_Delete).
 *  - Every `char **out` receives a malloc'd string owned by the caller (free with free()).
 *  - On any status other than CC_OK the out-parameters are set to NULL / 0 / false.
 *  - Strings inside cc_store_options are only read during cc_store_sqlite_open().
 *
 * Identity and scoping: a project is the pair (owner, projectId).  Every function that
 * takes `owner` sees only that owner's data; asking for another owner's project, record
 * or cache entry gives CC_NOT_FOUND (or an empty result), never their data.
 *
 * Times are milliseconds since the Unix epoch from the injectable clock (options.now_ms).
 *
 * Threads: one handle may be used by many threads at once.  The SQLite back end keeps ONE
 * connection and serialises every call with a mutex held for the duration of the call
 * (calls are short: single statements or one small transaction); failure messages are kept
 * per thread.  Other processes (the `token create` command, a second worker) may open the
 * same file; SQLite's WAL locking and the busy timeout arbitrate between processes.
 */
#ifndef CC_STORE_H
#define CC_STORE_H

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cc_proto.h" /* cc_proto_record_status: the record statuses (DESIGN §4) */
#include "cc_status.h"

/* Defaults of cc_store_options (0 in a field means "use the default"). */
#define CC_STORE_DEFAULT_CACHE_TTL_MS 3600000     /* one hour */
#define CC_STORE_DEFAULT_HISTORY_KEEP 1000        /* records kept per project */
#define CC_STORE_DEFAULT_CACHE_ENTRIES 256        /* cache entries per project */
#define CC_STORE_DEFAULT_PROJECTS 1000            /* projects per owner */
#define CC_STORE_DEFAULT_JSON_MAX (8u << 20)      /* bytes of one stored input/result */
#define CC_STORE_DEFAULT_METADATA_MAX (64u << 10) /* bytes of one project's metadata */
#define CC_STORE_DEFAULT_BUSY_TIMEOUT_MS 5000
#define CC_STORE_DEFAULT_HISTORY_PAGE 50 /* getHistory without a limit */

/* Longest owner / projectId / cache key / id / token hash accepted (CC_BAD_REQUEST beyond). */
#define CC_STORE_NAME_MAX 128
#define CC_STORE_KEY_MAX 65536

/* Record ids: 128 random bits as 32 lowercase hex digits. */
#define CC_STORE_ID_LEN 32

typedef struct cc_store_options {
  const char *path;                   /* database file; required */
  int64_t (*now_ms)(void *clock_ctx); /* clock; NULL = wall clock */
  void *clock_ctx;                    /* passed to now_ms */
  int64_t cache_ttl_ms;               /* cache entries older than this miss */
  int history_keep;                   /* records kept per project (newest N) */
  int cache_entries_per_project;      /* oldest evicted beyond this */
  int projects_per_owner;             /* project_ensure of one more: CC_TOO_LARGE */
  size_t json_max_bytes;              /* larger input/result/cache JSON: CC_TOO_LARGE */
  size_t metadata_max_bytes;          /* larger metadata after a patch: CC_TOO_LARGE */
  int busy_timeout_ms;                /* wait for another process's lock */
  int max_connections;                /* PostgreSQL: connections of the pool (0: 32) */
} cc_store_options;

/* Sets every field to its default (path NULL, clock NULL = wall clock). */
void cc_store_options_init(cc_store_options *opts);

/* Fills out[0..32] with a fresh random record id (32 hex digits + NUL) from the platform
 * random source.  CC_INTERNAL only when the platform source fails. */
cc_status cc_store_new_id(char out[CC_STORE_ID_LEN + 1]);

typedef struct cc_store_ops {
  /* Closes the back end and frees ctx.  Accepts a NULL ctx. */
  void (*close)(void *ctx);

  /* Copies the detailed message of the calling thread's last failure on this handle into
   * buf (always NUL-terminated; "" when it had none).  Messages are kept per thread, so a
   * worker thread never reads the message of another thread's (another user's) request. */
  void (*last_error)(void *ctx, char *buf, size_t len);

  /* ---- users and tokens (tokens are stored only as the caller's hash, hex) ---- */

  /* Creates `user` if missing; *created (may be NULL) says whether it was new. */
  cc_status (*user_ensure)(void *ctx, const char *user, bool *created);
  /* Adds a token of an existing user (CC_NOT_FOUND otherwise) given its hash (hex string,
   * e.g. SHA-256); CC_CONFLICT when the hash exists.  *token_id (may be NULL) gets its id. */
  cc_status (*token_add)(void *ctx, const char *user, const char *token_hash_hex, const char *label,
                         int64_t *token_id);
  /* Maps a token hash to its user.  CC_UNAUTHORIZED when unknown or revoked. */
  cc_status (*token_lookup)(void *ctx, const char *token_hash_hex, char **user);
  /* The user's tokens as a JSON array of {id, label, createdAt, revokedAt?}; never the
   * hashes.  An unknown user gives an empty array. */
  cc_status (*token_list)(void *ctx, const char *user, cJSON **tokens);
  /* Revokes a token of `user` by id; CC_NOT_FOUND when it is not that user's token.
   * Revoking twice is CC_OK (the first revocation time stays). */
  cc_status (*token_revoke)(void *ctx, const char *user, int64_t token_id);

  /* ---- projects ---- */

  /* Creates (owner, project) if missing, at generation 0.  *created may be NULL.
   * CC_TOO_LARGE when the owner already has projects_per_owner projects. */
  cc_status (*project_ensure)(void *ctx, const char *owner, const char *project, bool *created);
  /* ProjectInfo {projectId, name?, port?, sandboxId?, lastExecution?, createdAt, updatedAt,
   * settings?, generation, ...other metadata keys}.  lastExecution is
   * {id, op, status, createdAt} of the newest record.  CC_NOT_FOUND when missing. */
  cc_status (*project_get)(void *ctx, const char *owner, const char *project, cJSON **info);
  /* {"projects":[ProjectInfo...]} of one owner ordered by projectId. */
  cc_status (*project_list)(void *ctx, const char *owner, cJSON **list);
  /* Deletes the project with its records, cache entries and metadata.  *deleted (may be
   * NULL) says whether it existed; a missing project is CC_OK with *deleted = false.
   * The caller kills the sandbox first (read its id with project_sandbox). */
  cc_status (*project_delete)(void *ctx, const char *owner, const char *project, bool *deleted);
  /* The current generation.  CC_NOT_FOUND when the project is missing. */
  cc_status (*project_generation)(void *ctx, const char *owner, const char *project,
                                  int64_t *generation);
  /* Atomically increments the generation and returns the new value (may be NULL).
   * Every cache entry made before is stale from now on.  CC_NOT_FOUND when missing. */
  cc_status (*project_bump_generation)(void *ctx, const char *owner, const char *project,
                                       int64_t *generation);
  /* The project's sandbox id, or *sandbox_id = NULL with CC_OK when it has none. */
  cc_status (*project_sandbox)(void *ctx, const char *owner, const char *project,
                               char **sandbox_id);
  /* Stores the sandbox id (NULL clears it).  When the id changes, the generation is bumped
   * in the same transaction (a new sandbox is a state change); *generation (may be NULL)
   * gets the generation after the call. */
  cc_status (*project_set_sandbox)(void *ctx, const char *owner, const char *project,
                                   const char *sandbox_id, int64_t *generation);
  /* Applies an RFC 7386 merge patch (a JSON object) to the project's metadata and returns
   * the new ProjectInfo (may be NULL).  CC_BAD_REQUEST when the patch is not an object,
   * touches a store-owned key (projectId, sandboxId, lastExecution, createdAt, updatedAt,
   * generation) or gives name a non-string, port a non-integer outside 1..65535 or settings
   * a non-object; CC_TOO_LARGE when the result exceeds metadata_max_bytes; CC_NOT_FOUND
   * when the project is missing.  Does not change the generation. */
  cc_status (*project_patch)(void *ctx, const char *owner, const char *project, const cJSON *patch,
                             cJSON **info);

  /* ---- exec cache ---- */

  /* Looks up (owner, project, key).  *hit is true only when an entry exists, its
   * generation equals the project's current generation and now - createdAt < TTL; then
   * *result is a copy of the stored result.  A miss is CC_OK with *hit = false (also for a
   * missing project).  key is the caller's canonical form of cmd + cwd + env. */
  cc_status (*cache_get)(void *ctx, const char *owner, const char *project, const char *key,
                         bool *hit, cJSON **result);
  /* Stores (replacing) the entry for key, made at `generation`, created now.  `cmd` is
   * kept so cache_clear can drop all entries of one command.  Evicts the oldest entries
   * beyond cache_entries_per_project.  CC_NOT_FOUND when the project is missing;
   * CC_TOO_LARGE when the result is larger than json_max_bytes. */
  cc_status (*cache_put)(void *ctx, const char *owner, const char *project, const char *key,
                         const char *cmd, int64_t generation, const cJSON *result);
  /* Drops the project's entries whose cmd equals `cmd`, or all when cmd is NULL.
   * *cleared (may be NULL) gets the count.  A missing project clears 0. */
  cc_status (*cache_clear)(void *ctx, const char *owner, const char *project, const char *cmd,
                           int64_t *cleared);
  /* Number of stored entries of the project (stale ones included). */
  cc_status (*cache_count)(void *ctx, const char *owner, const char *project, int64_t *count);

  /* ---- execution records ---- */

  /* Inserts a pending record of `op` with its input (may be NULL) for an existing project
   * (CC_NOT_FOUND otherwise).  id may be NULL: the store generates one.  The final id is
   * copied to out_id (may be NULL).  CC_CONFLICT when the id exists.  In the same
   * transaction the project's records beyond the newest history_keep are deleted. */
  cc_status (*record_insert)(void *ctx, const char *owner, const char *project, const char *id,
                             const char *op, const cJSON *input, char out_id[CC_STORE_ID_LEN + 1]);
  /* pending -> running.  CC_NOT_FOUND when not the owner's; CC_CONFLICT from any other
   * status. */
  cc_status (*record_set_running)(void *ctx, const char *owner, const char *id);
  /* pending|running -> a final status, with the result (may be NULL) and the error
   * (code/message, both may be NULL), finishedAt = now.  CC_BAD_REQUEST when status is not
   * final; CC_CONFLICT when the record is already final; CC_NOT_FOUND when not the
   * owner's; CC_TOO_LARGE when result exceeds json_max_bytes. */
  cc_status (*record_finish)(void *ctx, const char *owner, const char *id,
                             cc_proto_record_status status, const cJSON *result,
                             const char *error_code, const char *error_message);
  /* ExecutionRecord {...result fields, id, projectId, op, input?, status, error?{code,
   * message}, createdAt, finishedAt?}: the stored result's fields first, then the record's
   * own fields replacing any of the same name.  CC_NOT_FOUND when the id is not one of
   * owner's records. */
  cc_status (*record_get)(void *ctx, const char *owner, const char *id, cJSON **record);
  /* A page of the project's records newest first: *items is a JSON array of at most
   * `limit` ExecutionRecords (limit <= 0: CC_STORE_DEFAULT_HISTORY_PAGE; clamped to
   * history_keep) strictly older than the record `before` (NULL: from the newest).  *next
   * (may be NULL) is the id to pass as `before` for the next page, or NULL when this page
   * is the last.  A `before` that is unknown, pruned or another project's gives an empty
   * page.  A missing project gives an empty page. */
  cc_status (*history)(void *ctx, const char *owner, const char *project, int limit,
                       const char *before, cJSON **items, char **next);
  /* Exactly the page of `history`, as JSON text: *items is the array "[...]" (a malloc'd
   * NUL-terminated string).  For callers that only forward the page (the worker splices
   * it into its response): a finished record's JSON is made once when it finishes, so a
   * page costs a copy per record and no JSON tree. */
  cc_status (*history_json)(void *ctx, const char *owner, const char *project, int limit,
                            const char *before, char **items, char **next);

  /* ---- maintenance ---- */

  /* Marks every record left pending or running as error {code:"internal", message: the
   * worker stopped while it ran}, finishedAt = now; *count (may be NULL) gets how many.
   * Call once at startup before serving. */
  cc_status (*recover)(void *ctx, int64_t *count);
  /* CC_OK only when the database's own consistency check passes (SQLite: PRAGMA
   * integrity_check answers exactly "ok"); CC_INTERNAL otherwise (last_error holds the first
   * complaint). */
  cc_status (*integrity_check)(void *ctx);

  /* ---- several workers on one database (NULL in a back end one worker owns alone) ---- */

  /* Holds (owner, project) against every other process using the database until
   * project_unlock(*lock): waiters get it in arrival order; a holder that dies releases it.
   * CC_SANDBOX_UNAVAILABLE when *cancel (may be NULL) became non-zero while waiting,
   * CC_UPSTREAM_ERROR when the database cannot be reached. */
  cc_status (*project_lock)(void *ctx, const char *owner, const char *project,
                            atomic_int *cancel, void **lock);
  void (*project_unlock)(void *ctx, void *lock);
  /* Marks the records that workers which are gone left pending or running as recover()
   * does; *count (may be NULL) gets how many.  Call periodically. */
  cc_status (*sweep)(void *ctx, int64_t *count);
  /* CC_OK when the database answers now; CC_UPSTREAM_ERROR otherwise (last_error says why). */
  cc_status (*health)(void *ctx);

  /* "sqlite" or "postgresql". */
  const char *name;
} cc_store_ops;

/* A store handle: the back end's function table and its state. */
typedef struct cc_store {
  const cc_store_ops *ops;
  void *ctx;
} cc_store;

/* Opens the store named by opts->path: a libpq connection URI (postgresql://... or
 * postgres://...) opens the PostgreSQL back end (cc_store_pg_open), anything else is a
 * SQLite file (cc_store_sqlite_open).  Errors as those. */
cc_status cc_store_open(const cc_store_options *opts, cc_store **out, char *errbuf, size_t errlen);
/* Whether `where` names a PostgreSQL database (a postgresql:// or postgres:// URI). */
bool cc_store_is_postgresql(const char *where);
/* `where` fit for a log line or an error message: a URI's password (user:PASSWORD@ or
 * password=...) is replaced with "***".  Always NUL-terminates buf. */
void cc_store_display_name(const char *where, char *buf, size_t len);

/* Opens (creating if needed) the SQLite database at opts->path: WAL mode, foreign keys,
 * busy timeout, schema created or checked.  *out is a new handle; close it with
 * cc_store_close().  CC_BAD_REQUEST for bad options, CC_INTERNAL when SQLite fails (the
 * message goes to errbuf when errbuf is non-NULL). */
cc_status cc_store_sqlite_open(const cc_store_options *opts, cc_store **out, char *errbuf,
                               size_t errlen);

/* Connects to the PostgreSQL database at the libpq URI opts->path, creates or migrates the
 * schema (safely when several workers start at once) and registers this process as a worker
 * of the database (see cc_store_pg.c).  CC_UPSTREAM_ERROR when the server cannot be
 * reached, CC_INTERNAL for other failures (message in errbuf).  Native builds only. */
cc_status cc_store_pg_open(const cc_store_options *opts, cc_store **out, char *errbuf,
                           size_t errlen);

/* Closes the back end and frees the handle.  Accepts NULL. */
void cc_store_close(cc_store *s);

/* Thin wrappers so callers write cc_store_cache_get(s, ...) instead of s->ops->...(s->ctx,
 * ...).  Each has exactly the contract of the function pointer above. */
static inline void cc_store_last_error(cc_store *s, char *buf, size_t len) {
  s->ops->last_error(s->ctx, buf, len);
}
static inline cc_status cc_store_user_ensure(cc_store *s, const char *user, bool *created) {
  return s->ops->user_ensure(s->ctx, user, created);
}
static inline cc_status cc_store_token_add(cc_store *s, const char *user, const char *hash,
                                           const char *label, int64_t *token_id) {
  return s->ops->token_add(s->ctx, user, hash, label, token_id);
}
static inline cc_status cc_store_token_lookup(cc_store *s, const char *hash, char **user) {
  return s->ops->token_lookup(s->ctx, hash, user);
}
static inline cc_status cc_store_token_list(cc_store *s, const char *user, cJSON **tokens) {
  return s->ops->token_list(s->ctx, user, tokens);
}
static inline cc_status cc_store_token_revoke(cc_store *s, const char *user, int64_t token_id) {
  return s->ops->token_revoke(s->ctx, user, token_id);
}
static inline cc_status cc_store_project_ensure(cc_store *s, const char *owner, const char *project,
                                                bool *created) {
  return s->ops->project_ensure(s->ctx, owner, project, created);
}
static inline cc_status cc_store_project_get(cc_store *s, const char *owner, const char *project,
                                             cJSON **info) {
  return s->ops->project_get(s->ctx, owner, project, info);
}
static inline cc_status cc_store_project_list(cc_store *s, const char *owner, cJSON **list) {
  return s->ops->project_list(s->ctx, owner, list);
}
static inline cc_status cc_store_project_delete(cc_store *s, const char *owner, const char *project,
                                                bool *deleted) {
  return s->ops->project_delete(s->ctx, owner, project, deleted);
}
static inline cc_status cc_store_project_generation(cc_store *s, const char *owner,
                                                    const char *project, int64_t *generation) {
  return s->ops->project_generation(s->ctx, owner, project, generation);
}
static inline cc_status cc_store_project_bump_generation(cc_store *s, const char *owner,
                                                         const char *project, int64_t *generation) {
  return s->ops->project_bump_generation(s->ctx, owner, project, generation);
}
static inline cc_status cc_store_project_sandbox(cc_store *s, const char *owner,
                                                 const char *project, char **sandbox_id) {
  return s->ops->project_sandbox(s->ctx, owner, project, sandbox_id);
}
static inline cc_status cc_store_project_set_sandbox(cc_store *s, const char *owner,
                                                     const char *project, const char *sandbox_id,
                                                     int64_t *generation) {
  return s->ops->project_set_sandbox(s->ctx, owner, project, sandbox_id, generation);
}
static inline cc_status cc_store_project_patch(cc_store *s, const char *owner, const char *project,
                                               const cJSON *patch, cJSON **info) {
  return s->ops->project_patch(s->ctx, owner, project, patch, info);
}
static inline cc_status cc_store_cache_get(cc_store *s, const char *owner, const char *project,
                                           const char *key, bool *hit, cJSON **result) {
  return s->ops->cache_get(s->ctx, owner, project, key, hit, result);
}
static inline cc_status cc_store_cache_put(cc_store *s, const char *owner, const char *project,
                                           const char *key, const char *cmd, int64_t generation,
                                           const cJSON *result) {
  return s->ops->cache_put(s->ctx, owner, project, key, cmd, generation, result);
}
static inline cc_status cc_store_cache_clear(cc_store *s, const char *owner, const char *project,
                                             const char *cmd, int64_t *cleared) {
  return s->ops->cache_clear(s->ctx, owner, project, cmd, cleared);
}
static inline cc_status cc_store_cache_count(cc_store *s, const char *owner, const char *project,
                                             int64_t *count) {
  return s->ops->cache_count(s->ctx, owner, project, count);
}
static inline cc_status cc_store_record_insert(cc_store *s, const char *owner, const char *project,
                                               const char *id, const char *op, const cJSON *input,
                                               char out_id[CC_STORE_ID_LEN + 1]) {
  return s->ops->record_insert(s->ctx, owner, project, id, op, input, out_id);
}
static inline cc_status cc_store_record_set_running(cc_store *s, const char *owner,
                                                    const char *id) {
  return s->ops->record_set_running(s->ctx, owner, id);
}
static inline cc_status cc_store_record_finish(cc_store *s, const char *owner, const char *id,
                                               cc_proto_record_status status, const cJSON *result,
                                               const char *error_code, const char *error_message) {
  return s->ops->record_finish(s->ctx, owner, id, status, result, error_code, error_message);
}
static inline cc_status cc_store_record_get(cc_store *s, const char *owner, const char *id,
                                            cJSON **record) {
  return s->ops->record_get(s->ctx, owner, id, record);
}
static inline cc_status cc_store_history(cc_store *s, const char *owner, const char *project,
                                         int limit, const char *before, cJSON **items,
                                         char **next) {
  return s->ops->history(s->ctx, owner, project, limit, before, items, next);
}
static inline cc_status cc_store_history_json(cc_store *s, const char *owner, const char *project,
                                              int limit, const char *before, char **items,
                                              char **next) {
  return s->ops->history_json(s->ctx, owner, project, limit, before, items, next);
}
static inline cc_status cc_store_recover(cc_store *s, int64_t *count) {
  return s->ops->recover(s->ctx, count);
}
static inline cc_status cc_store_integrity_check(cc_store *s) {
  return s->ops->integrity_check(s->ctx);
}
/* Without project_lock in the back end, *lock = NULL and CC_OK (one worker per database). */
static inline cc_status cc_store_project_lock(cc_store *s, const char *owner, const char *project,
                                              atomic_int *cancel, void **lock) {
  *lock = NULL;
  return s->ops->project_lock ? s->ops->project_lock(s->ctx, owner, project, cancel, lock) : CC_OK;
}
static inline void cc_store_project_unlock(cc_store *s, void *lock) {
  if (lock && s->ops->project_unlock) s->ops->project_unlock(s->ctx, lock);
}
static inline cc_status cc_store_sweep(cc_store *s, int64_t *count) {
  if (count) *count = 0;
  return s->ops->sweep ? s->ops->sweep(s->ctx, count) : CC_OK;
}
static inline cc_status cc_store_health(cc_store *s) {
  return s->ops->health ? s->ops->health(s->ctx) : CC_OK;
}
static inline const char *cc_store_name(cc_store *s) {
  return s->ops->name;
}

#endif
