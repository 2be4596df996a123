/*
 * cc_store_sqlite_int: what the files of the SQLite back end share (private; include only
 * from shared/cc_store_sqlite*.c).
 *
 * The back end is one handle (sq) in three files: cc_store_sqlite.c (the handle, the
 * statement cache, transactions, schema, open/close, maintenance and the ops table),
 * cc_store_sqlite_projects.c (users, tokens, projects) and cc_store_sqlite_records.c (exec
 * cache, execution records, history).  Every sq_* function here is called with the handle's
 * mutex held, except the sq_<op> entries of the ops table, which take it themselves.
 */
#ifndef CC_STORE_SQLITE_INT_H
#define CC_STORE_SQLITE_INT_H

#include <pthread.h>
#include <sqlite3.h>

#include "cc_store_int.h"

/* Prepared statements are kept for reuse, keyed by the address of their SQL text (every
 * SQL string here is a literal, so one call site is one key). */
#define STMT_CACHE 64

typedef struct {
  const char *sql;
  sqlite3_stmt *st;
  bool busy; /* handed out by sq_prep() and not yet given back by sq_done() */
} cached_stmt;

typedef struct sq sq;

struct sq {
  sqlite3 *db;
  pthread_mutex_t mu;
  cc_store_options o;
  cc_store_errs errs; /* per-thread failure messages */
  cached_stmt stmts[STMT_CACHE];
  int nstmts;
};

/* ---- small helpers (all called with the mutex held) ---- */

/* The shared rules (cc_store_rules.c) record their complaints in the handle's messages. */
#define fail(s, ...) cc_store_fail(&(s)->errs, __VA_ARGS__)
#define check_name(s, what, v) cc_store_check_name(&(s)->errs, what, v)
#define check_owner_project(s, o, p) cc_store_check_owner_project(&(s)->errs, o, p)
#define check_key(s, k) cc_store_check_key(&(s)->errs, k)
#define check_id(s, id) cc_store_check_id(&(s)->errs, id)
#define norm_hash(s, h, buf) cc_store_norm_hash(&(s)->errs, h, buf)
#define to_text(s, what, v, max, text) cc_store_to_text(&(s)->errs, what, v, max, text)
#define now(s) cc_store_now(&(s)->o)
#define dup_str cc_store_dup

/* Every operation of the ops table holds the handle's mutex for its whole call. */
#define LOCK(s) pthread_mutex_lock(&(s)->mu)
#define UNLOCK(s) pthread_mutex_unlock(&(s)->mu)

/* A failed SQLite call: CC_INTERNAL with SQLite's message. */
cc_status sq_dberr(sq *s, const char *what);
/* Hands out a prepared statement for sql (a string literal): a cached one when it is not
 * in use, else a new one (kept in the cache while there is room).  Give it back with
 * sq_done(). */
cc_status sq_prep(sq *s, const char *sql, sqlite3_stmt **st);
/* Gives a statement from sq_prep() back: reset and unbound when cached (so it holds no read
 * lock), finalized otherwise.  Accepts NULL. */
void sq_done(sq *s, sqlite3_stmt *st);
/* Binds text (SQLITE_STATIC: v must outlive the step), or SQL NULL when v is NULL. */
void sq_bind_text(sqlite3_stmt *st, int i, const char *v);
/* BEGIN IMMEDIATE: the write lock up front, so two processes never deadlock upgrading. */
cc_status sq_begin(sq *s);
/* Commits, or rolls back when the commit fails. */
cc_status sq_commit(sq *s);
/* Rolls back when a transaction is open (harmless after a commit). */
void sq_rollback(sq *s);
/* The rowid of (owner, project); CC_NOT_FOUND when missing. */
cc_status sq_find_project(sq *s, const char *owner, const char *project, int64_t *rowid);
/* Steps sql (owner ?1, project ?2) to the project's row: on CC_OK *st is on the row (give it
 * back with sq_done); otherwise *st is NULL.  CC_NOT_FOUND when there is no such project. */
cc_status sq_read_project_column(sq *s, const char *owner, const char *project,
                                 const char *sql, sqlite3_stmt **st);

/* ---- the operations of the ops table (cc_store.h), each taking the mutex ---- */

/* cc_store_sqlite_projects.c */
cc_status sq_user_ensure(void *ctx, const char *user, bool *created);
cc_status sq_token_add(void *ctx, const char *user, const char *hash, const char *label,
                       int64_t *token_id);
cc_status sq_token_lookup(void *ctx, const char *hash, char **user);
cc_status sq_token_list(void *ctx, const char *user, cJSON **tokens);
cc_status sq_token_revoke(void *ctx, const char *user, int64_t token_id);
cc_status sq_project_ensure(void *ctx, const char *owner, const char *project, bool *created);
cc_status sq_project_get(void *ctx, const char *owner, const char *project, cJSON **info);
cc_status sq_project_list(void *ctx, const char *owner, cJSON **list);
cc_status sq_project_delete(void *ctx, const char *owner, const char *project, bool *deleted);
cc_status sq_project_generation(void *ctx, const char *owner, const char *project,
                                int64_t *generation);
cc_status sq_project_bump_generation(void *ctx, const char *owner, const char *project,
                                     int64_t *generation);
cc_status sq_project_sandbox(void *ctx, const char *owner, const char *project,
                             char **sandbox_id);
cc_status sq_project_set_sandbox(void *ctx, const char *owner, const char *project,
                                 const char *sandbox_id, int64_t *generation);
cc_status sq_project_patch(void *ctx, const char *owner, const char *project,
                           const cJSON *patch, cJSON **info);

/* cc_store_sqlite_records.c */
cc_status sq_cache_get(void *ctx, const char *owner, const char *project, const char *key,
                       bool *hit, cJSON **result);
cc_status sq_cache_put(void *ctx, const char *owner, const char *project, const char *key,
                       const char *cmd, int64_t generation, const cJSON *result);
cc_status sq_cache_clear(void *ctx, const char *owner, const char *project, const char *cmd,
                         int64_t *cleared);
cc_status sq_cache_count(void *ctx, const char *owner, const char *project, int64_t *count);
cc_status sq_record_insert(void *ctx, const char *owner, const char *project, const char *id,
                           const char *op, const cJSON *input, char out_id[CC_STORE_ID_LEN + 1]);
cc_status sq_record_set_running(void *ctx, const char *owner, const char *id);
cc_status sq_record_finish(void *ctx, const char *owner, const char *id,
                           cc_proto_record_status status, const cJSON *result,
                           const char *error_code, const char *error_message);
cc_status sq_record_get(void *ctx, const char *owner, const char *id, cJSON **record);
cc_status sq_history(void *ctx, const char *owner, const char *project, int limit,
                     const char *before, cJSON **items, char **next);
cc_status sq_history_json(void *ctx, const char *owner, const char *project, int limit,
                          const char *before, char **items, char **next);

#endif
