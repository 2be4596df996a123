/*
 * cc_store_pg_int: what the files of the PostgreSQL back end share (private; include only
 * from shared/cc_store_pg*.c).
 *
 * The back end is one handle (pg) in four files: cc_store_pg.c (the handle, the connection
 * pool, running statements, transactions, schema, open/close and the ops table),
 * cc_store_pg_workers.c (worker registration and presence, heartbeat, sweep, health,
 * project locks), cc_store_pg_projects.c (users, tokens, projects) and cc_store_pg_records.c
 * (exec cache, execution records, history).  Here: the statements every connection
 * prepares, the handle, the helpers that run statements on a borrowed connection, and the
 * operations each file gives the ops table.
 */
#ifndef CC_STORE_PG_INT_H
#define CC_STORE_PG_INT_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "cc_store_int.h"

/* ------------------------------------------------------------------ statements */


/* Columns of an ExecutionRecord row, in the order record_row() reads them. */
#define RECORD_COLUMNS                                                                  \
  "r.id, p.project, r.op, r.input, r.status, r.result, r.error_code, r.error_message, " \
  "r.created_at, r.finished_at, r.body"

/* ProjectInfo columns: the project row and its newest record. */
#define INFO_SELECT                                                                         \
  "SELECT p.project, p.sandbox_id, p.metadata, p.created_at, p.updated_at, p.generation, " \
  "l.id, l.op, l.status, l.created_at FROM projects p LEFT JOIN LATERAL "                  \
  "(SELECT id, op, status, created_at FROM records WHERE project_id = p.id "               \
  "ORDER BY seq DESC LIMIT 1) l ON true "

#define STATEMENTS(X)                                                                          \
  X(USER_ENSURE, "INSERT INTO users(name, created_at) VALUES($1, $2) ON CONFLICT DO NOTHING") \
  X(USER_EXISTS, "SELECT 1 FROM users WHERE name=$1")                                         \
  X(TOKEN_ADD,                                                                                 \
    "INSERT INTO tokens(\"user\", hash, label, created_at) VALUES($1,$2,$3,$4) RETURNING id")  \
  X(TOKEN_LOOKUP, "SELECT \"user\" FROM tokens WHERE hash=$1 AND revoked_at IS NULL")         \
  X(TOKEN_LIST,                                                                                \
    "SELECT id, label, created_at, revoked_at FROM tokens WHERE \"user\"=$1 ORDER BY id")     \
  X(TOKEN_REVOKE,                                                                              \
    "UPDATE tokens SET revoked_at=COALESCE(revoked_at, $1) WHERE id=$2 AND \"user\"=$3")      \
  X(PROJECT_FIND, "SELECT id FROM projects WHERE owner=$1 AND project=$2")                    \
  X(OWNER_LOCK, "SELECT pg_advisory_xact_lock($1::int4, hashtext($2))")                       \
  X(PROJECT_COUNT, "SELECT count(*) FROM projects WHERE owner=$1")                            \
  X(PROJECT_INSERT,                                                                            \
    "INSERT INTO projects(owner, project, created_at, updated_at) VALUES($1, $2, $3, $3) "    \
    "ON CONFLICT DO NOTHING")                                                                  \
  X(PROJECT_INFO, INFO_SELECT "WHERE p.id=$1")                                                 \
  X(PROJECT_LIST, INFO_SELECT "WHERE p.owner=$1 ORDER BY p.project")                           \
  X(PROJECT_DELETE, "DELETE FROM projects WHERE owner=$1 AND project=$2")                     \
  X(PROJECT_GENERATION, "SELECT generation FROM projects WHERE owner=$1 AND project=$2")      \
  X(PROJECT_SANDBOX, "SELECT sandbox_id FROM projects WHERE owner=$1 AND project=$2")         \
  X(PROJECT_BUMP,                                                                              \
    "UPDATE projects SET generation = generation + 1, updated_at=$3 "                         \
    "WHERE owner=$1 AND project=$2 RETURNING generation")                                      \
  X(PROJECT_SET_SANDBOX,                                                                       \
    "UPDATE projects SET generation = generation + "                                           \
    "(CASE WHEN sandbox_id IS DISTINCT FROM $3 THEN 1 ELSE 0 END), sandbox_id=$3, "            \
    "updated_at=$4 WHERE owner=$1 AND project=$2 RETURNING generation")                        \
  X(PROJECT_META_FOR_UPDATE,                                                                   \
    "SELECT id, metadata FROM projects WHERE owner=$1 AND project=$2 FOR UPDATE")              \
  X(PROJECT_META_SET, "UPDATE projects SET metadata=$1, updated_at=$2 WHERE id=$3")           \
  X(CACHE_GET,                                                                                 \
    "SELECT c.result FROM cache c JOIN projects p ON c.project_id = p.id "                     \
    "WHERE p.owner=$1 AND p.project=$2 AND c.key=$3 AND c.generation = p.generation "          \
    "AND c.created_at > $4")                                                                   \
  X(CACHE_PUT,                                                                                 \
    "INSERT INTO cache(project_id, key, cmd, generation, created_at, result) "                 \
    "VALUES($1, $2, $3, $4, $5, $6) ON CONFLICT (project_id, key) DO UPDATE SET "              \
    "cmd=EXCLUDED.cmd, generation=EXCLUDED.generation, created_at=EXCLUDED.created_at, "       \
    "result=EXCLUDED.result, seq=nextval(pg_get_serial_sequence('cache', 'seq'))")             \
  X(CACHE_EVICT,                                                                               \
    "DELETE FROM cache WHERE project_id=$1 AND seq <= (SELECT seq FROM cache "                 \
    "WHERE project_id=$1 ORDER BY seq DESC OFFSET $2 LIMIT 1)")                                \
  X(CACHE_CLEAR,                                                                               \
    "DELETE FROM cache WHERE project_id = (SELECT id FROM projects WHERE owner=$1 AND "        \
    "project=$2) AND ($3::text IS NULL OR cmd=$3)")                                            \
  X(CACHE_COUNT,                                                                               \
    "SELECT count(*) FROM cache c JOIN projects p ON c.project_id = p.id "                     \
    "WHERE p.owner=$1 AND p.project=$2")                                                       \
  X(RECORD_INSERT,                                                                             \
    "INSERT INTO records(id, project_id, op, input, status, created_at, worker) "              \
    "VALUES($1, $2, $3, $4, 'pending', $5, $6)")                                               \
  X(RECORD_PRUNE,                                                                              \
    "DELETE FROM records WHERE project_id=$1 AND seq <= (SELECT seq FROM records "             \
    "WHERE project_id=$1 ORDER BY seq DESC OFFSET $2 LIMIT 1)")                                \
  X(RECORD_STATUS,                                                                             \
    "SELECT r.status FROM records r JOIN projects p ON r.project_id = p.id "                   \
    "WHERE r.id=$1 AND p.owner=$2")                                                            \
  X(RECORD_RUNNING,                                                                            \
    "UPDATE records SET status='running' WHERE id=$1 AND status='pending' AND "                \
    "project_id IN (SELECT id FROM projects WHERE owner=$2)")                                  \
  X(RECORD_OPEN_FIELDS,                                                                        \
    "SELECT p.project, r.op, r.input, r.created_at FROM records r JOIN projects p ON "         \
    "r.project_id = p.id WHERE r.id=$1 AND p.owner=$2 AND r.status IN ('pending','running')")  \
  X(RECORD_FINISH,                                                                             \
    "UPDATE records SET status=$3, result=$4, error_code=$5, error_message=$6, "               \
    "finished_at=$7, body=$8 WHERE id=$1 AND status IN ('pending','running') AND "             \
    "project_id IN (SELECT id FROM projects WHERE owner=$2)")                                  \
  X(RECORD_GET,                                                                                \
    "SELECT " RECORD_COLUMNS " FROM records r JOIN projects p ON r.project_id = p.id "         \
    "WHERE r.id=$1 AND p.owner=$2")                                                            \
  X(RECORD_CURSOR, "SELECT seq FROM records WHERE id=$1 AND project_id=$2")                   \
  X(HISTORY,                                                                                   \
    "SELECT " RECORD_COLUMNS " FROM records r JOIN projects p ON r.project_id = p.id "         \
    "WHERE r.project_id=$1 AND r.seq < $2 ORDER BY r.seq DESC LIMIT $3")                       \
  X(SWEEP_DEAD,                                                                                \
    "DELETE FROM workers WHERE id <> $1 AND seen_at < now() - make_interval(secs => $2) "      \
    "AND pg_postmaster_start_time() < now() - make_interval(secs => $3) "                      \
    "AND CASE WHEN id <> $1 THEN pg_try_advisory_xact_lock(lock_key) ELSE false END")          \
  X(SWEEP_RECORDS,                                                                             \
    "UPDATE records SET status='error', error_code='internal', error_message=$1, "             \
    "finished_at=$2, body=NULL WHERE status IN ('pending','running') AND (worker IS NULL OR "  \
    "NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = records.worker))")                       \
  X(PROJECT_LOCK, "SELECT pg_advisory_lock($1::int4, hashtext($2))")                          \
  X(PROJECT_UNLOCK, "SELECT pg_advisory_unlock($1::int4, hashtext($2))")

enum {
#define STMT_ENUM(name, sql) Q_##name,
  STATEMENTS(STMT_ENUM)
#undef STMT_ENUM
      Q_COUNT
};

/* The SQL of each Q_* statement (cc_store_pg.c). */
extern const char *const pg_sql[Q_COUNT];

/* ------------------------------------------------------------------ the handle */

typedef struct conn {
  PGconn *pg;
  struct conn *next;
  bool prepared[Q_COUNT];
  bool reused;  /* came from the idle list (may have died since it was last used) */
  int in_call;  /* statements sent during the current call */
  bool broken;  /* drop instead of returning to the pool */
} conn;

typedef struct pg {
  cc_store_options o;
  char *uri;
  cc_store_errs errs;
  pthread_mutex_t mu; /* pool, down state */
  struct waiter *waiters, *waiters_tail; /* threads waiting for a connection, oldest first */
  pthread_cond_t probe_cv;               /* a probe of a down server ended */
  conn *idle;
  int open, max;
  bool down;    /* the last new connection failed */
  bool probing; /* a thread is trying one while down: others fail at once */
  char down_msg[256];
  /* presence: this worker's row and session lock */
  pthread_mutex_t presence_mu;
  PGconn *presence;
  char worker_id[CC_STORE_ID_LEN + 1];
  long long worker_key;
} pg;

#define fail(s, ...) cc_store_fail(&(s)->errs, __VA_ARGS__)

/* ------------------------------------------------------------------ running statements */

/* Integer text for a parameter. */
typedef struct {
  char v[24];
} pg_num;
static inline pg_num pg_n(long long v) {
  pg_num n;
  snprintf(n.v, sizeof n.v, "%lld", v);
  return n;
}

static inline long long pg_col_ll(const PGresult *r, int row, int col) {
  return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}
static inline const char *pg_col_str(const PGresult *r, int row, int col) {
  return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

/* Every operation runs through CALL: borrow a connection, run the body (a do_* function
 * taking (s, c, ...)), give it back; retried once on a new connection when the first
 * statement found a reused connection dead (nothing of the call ran). */
#define CALL(s, expr)                                                          \
  do {                                                                         \
    for (int attempt_ = 0;; attempt_++) {                                      \
      conn *c = NULL;                                                          \
      rc = pg_acquire(s, &c);                                                  \
      if (rc) break;                                                           \
      rc = (expr);                                                             \
      bool retry_ = rc == CC_UPSTREAM_ERROR && c->reused && c->in_call <= 1 && \
                    c->broken && attempt_ == 0;                                \
      pg_release(s, c);                                                        \
      if (!retry_) break;                                                      \
    }                                                                          \
  } while (0)

/* libpq's message of c (or "out of memory" for NULL) into buf, without its trailing newline. */
void pg_msg_of(PGconn *c, char *buf, size_t n);
/* Opens a libpq connection to the handle's URI (a short connect timeout: fail fast).  The
 * caller checks PQstatus and PQfinish()es it. */
PGconn *pg_connect(pg *s);
/* Borrows a connection: an idle one, else a new one while under max, else waits in line for
 * one (at most 10 s).  Give it back with pg_release. */
cc_status pg_acquire(pg *s, conn **out);
/* Gives a connection back (or drops it when broken or left inside a transaction): to the
 * first waiter, else to the idle list.  Accepts NULL. */
void pg_release(pg *s, conn *c);
/* A failed statement: CC_UPSTREAM_ERROR when the connection is gone (and marks it broken),
 * else CC_INTERNAL with the server's message. */
cc_status pg_dberr(pg *s, conn *c, const PGresult *r, const char *what);
/* Runs prepared statement q with text parameters (NULL = SQL NULL).  *res is the result on
 * success (PGRES_TUPLES_OK / PGRES_COMMAND_OK); the caller PQclear()s it.  On failure *res
 * is NULL and *sqlstate (may be NULL) gets the error's SQLSTATE ("" when none). */
cc_status pg_run(pg *s, conn *c, int q, int n, const char *const *params, PGresult **res,
                 const char *what, char sqlstate[6]);
/* Runs SQL text without parameters (schema, transaction control, checks). */
cc_status pg_simple(pg *s, conn *c, const char *sql, const char *what);
cc_status pg_begin(pg *s, conn *c);
cc_status pg_commit(pg *s, conn *c);
/* Rolls back when c is inside a transaction (harmless after a commit). */
void pg_rollback(pg *s, conn *c);
/* The id of (owner, project); CC_NOT_FOUND when missing. */
cc_status pg_find_project(pg *s, conn *c, const char *owner, const char *project,
                          long long *id);

/* ------------------------------------------------------------------ the operations */

/* cc_store_pg_projects.c */
cc_status pg_user_ensure(void *ctx, const char *user, bool *created);
cc_status pg_token_add(void *ctx, const char *user, const char *hash, const char *label,
                       int64_t *token_id);
cc_status pg_token_lookup(void *ctx, const char *hash, char **user);
cc_status pg_token_list(void *ctx, const char *user, cJSON **tokens);
cc_status pg_token_revoke(void *ctx, const char *user, int64_t token_id);
cc_status pg_project_ensure(void *ctx, const char *owner, const char *project, bool *created);
cc_status pg_project_get(void *ctx, const char *owner, const char *project, cJSON **info);
cc_status pg_project_list(void *ctx, const char *owner, cJSON **list);
cc_status pg_project_delete(void *ctx, const char *owner, const char *project, bool *deleted);
cc_status pg_project_generation(void *ctx, const char *owner, const char *project,
                                int64_t *generation);
cc_status pg_project_bump_generation(void *ctx, const char *owner, const char *project,
                                     int64_t *generation);
cc_status pg_project_sandbox(void *ctx, const char *owner, const char *project,
                             char **sandbox_id);
cc_status pg_project_set_sandbox(void *ctx, const char *owner, const char *project,
                                 const char *sandbox_id, int64_t *generation);
cc_status pg_project_patch(void *ctx, const char *owner, const char *project,
                           const cJSON *patch, cJSON **info);

/* cc_store_pg_records.c */
cc_status pg_cache_get(void *ctx, const char *owner, const char *project, const char *key,
                       bool *hit, cJSON **result);
cc_status pg_cache_put(void *ctx, const char *owner, const char *project, const char *key,
                       const char *cmd, int64_t generation, const cJSON *result);
cc_status pg_cache_clear(void *ctx, const char *owner, const char *project, const char *cmd,
                         int64_t *cleared);
cc_status pg_cache_count(void *ctx, const char *owner, const char *project, int64_t *count);
cc_status pg_record_insert(void *ctx, const char *owner, const char *project, const char *id,
                           const char *op, const cJSON *input, char out_id[CC_STORE_ID_LEN + 1]);
cc_status pg_record_set_running(void *ctx, const char *owner, const char *id);
cc_status pg_record_finish(void *ctx, const char *owner, const char *id,
                           cc_proto_record_status status, const cJSON *result,
                           const char *error_code, const char *error_message);
cc_status pg_record_get(void *ctx, const char *owner, const char *id, cJSON **record);
cc_status pg_history(void *ctx, const char *owner, const char *project, int limit,
                     const char *before_id, cJSON **items, char **next);
cc_status pg_history_json(void *ctx, const char *owner, const char *project, int limit,
                          const char *before_id, char **items, char **next);

/* cc_store_pg_workers.c */
/* (Re-)registers this worker on the presence connection: its session lock, then its row.
 * Called with presence_mu held. */
cc_status pg_presence_up(pg *s);
cc_status pg_sweep(void *ctx, int64_t *count);
cc_status pg_recover(void *ctx, int64_t *count);
cc_status pg_health(void *ctx);
cc_status pg_project_lock(void *ctx, const char *owner, const char *project, atomic_int *cancel,
                          void **lock);
void pg_project_unlock(void *ctx, void *lock);

#endif
