/*
 * cc_store_pg: the PostgreSQL back end of cc_store (see cc_store.h, docs/store.md), for
 * several workers on one database.
 *
 * Connections: a pool of libpq connections per handle (opts.max_connections, default 32),
 * opened on demand; a call borrows one for its duration, so calls of different threads run
 * in parallel (the server arbitrates).  Statements are prepared once per connection.  A
 * connection that breaks is dropped; a call whose first statement finds its (idle) connection
 * broken is retried once on a new one, so a restarted server costs no request.  While the
 * server cannot be reached, calls fail fast with CC_UPSTREAM_ERROR (one thread at a time tries
 * a new connection, with a 3 s connect timeout, and the calls that need one meanwhile share its
 * outcome), and the pool reconnects by itself on the first call after the server is back.
 *
 * Several workers: each handle registers as a worker (table workers) and holds a session
 * advisory lock on its own key on a dedicated connection (the presence connection) for as
 * long as it lives; sweep() renews its row and marks the pending/running records of workers
 * whose lock is free (their session ended: crash, kill -9, lost host) and whose row has not
 * been renewed for SWEEP_GRACE_S as error/internal -- but not in the first RESTART_GRACE_S
 * after the server started, when every live worker's lock is free until it registers again.  project_lock() takes a session advisory
 * lock of the project on a borrowed connection: waiters are served in arrival order by the
 * server, and a holder that dies releases it with its session.
 *
 * Schema: created and migrated under a transaction-level advisory lock, so workers starting
 * at once do it one after the other; version in cc_schema.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cc_platform.h"
#include "cc_store_int.h"

#define SCHEMA_VERSION 1
#define DEFAULT_CONNECTIONS 32
#define SWEEP_GRACE_S 2   /* a worker's row must be this stale (heartbeat: every second) */
#define RESTART_GRACE_S 5 /* ... and the server up this long (workers re-register after it restarts) */
#define LOCK_MIGRATE 0x63637363LL /* "ccsc": schema creation, transaction-level */
#define LOCK_PROJECT 0x6363706c   /* "ccpl": project locks, (class, hashtext) form */
#define LOCK_OWNER 0x63636f77     /* "ccow": one owner's project count */

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS cc_schema(version integer NOT NULL);"
    "CREATE TABLE IF NOT EXISTS users("
    "  name text PRIMARY KEY,"
    "  created_at bigint NOT NULL);"
    "CREATE TABLE IF NOT EXISTS tokens("
    "  id bigserial PRIMARY KEY,"
    "  \"user\" text NOT NULL REFERENCES users(name) ON DELETE CASCADE,"
    "  hash text NOT NULL UNIQUE,"
    "  label text NOT NULL DEFAULT '',"
    "  created_at bigint NOT NULL,"
    "  revoked_at bigint);"
    "CREATE INDEX IF NOT EXISTS tokens_by_user ON tokens(\"user\");"
    "CREATE TABLE IF NOT EXISTS projects("
    "  id bigserial PRIMARY KEY,"
    "  owner text NOT NULL,"
    "  project text NOT NULL,"
    "  generation bigint NOT NULL DEFAULT 0,"
    "  sandbox_id text,"
    "  metadata text NOT NULL DEFAULT '{}',"
    "  created_at bigint NOT NULL,"
    "  updated_at bigint NOT NULL,"
    "  UNIQUE(owner, project));"
    "CREATE TABLE IF NOT EXISTS cache("
    "  project_id bigint NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
    "  key text NOT NULL,"
    "  cmd text NOT NULL,"
    "  generation bigint NOT NULL,"
    "  created_at bigint NOT NULL,"
    "  result text NOT NULL,"
    "  seq bigserial,"
    "  PRIMARY KEY(project_id, key));"
    "CREATE INDEX IF NOT EXISTS cache_by_cmd ON cache(project_id, cmd);"
    "CREATE INDEX IF NOT EXISTS cache_by_seq ON cache(project_id, seq);"
    "CREATE TABLE IF NOT EXISTS records("
    "  seq bigserial PRIMARY KEY,"
    "  id text NOT NULL UNIQUE,"
    "  project_id bigint NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
    "  op text NOT NULL,"
    "  input text,"
    "  status text NOT NULL CHECK(status IN ('pending','running','success','failed','error',"
    "                                        'timeout','canceled')),"
    "  result text,"
    "  error_code text,"
    "  error_message text,"
    "  created_at bigint NOT NULL,"
    "  finished_at bigint,"
    "  body text,"
    "  worker text);"
    "CREATE INDEX IF NOT EXISTS records_by_project ON records(project_id, seq);"
    "CREATE INDEX IF NOT EXISTS records_open ON records(status)"
    "  WHERE status IN ('pending','running');"
    "CREATE TABLE IF NOT EXISTS workers("
    "  id text PRIMARY KEY,"
    "  lock_key bigint NOT NULL UNIQUE,"
    "  host text NOT NULL DEFAULT '',"
    "  pid integer NOT NULL DEFAULT 0,"
    "  started_at timestamptz NOT NULL DEFAULT now(),"
    "  seen_at timestamptz NOT NULL DEFAULT now());"
    /* projects' file snapshots, read and written by the worker (native/worker/cc_wsnap_pg.c) */
    "CREATE TABLE IF NOT EXISTS snapshots("
    "  key text PRIMARY KEY,"
    "  taken_ms bigint NOT NULL,"
    "  bytes bigint NOT NULL,"
    "  partial boolean NOT NULL,"
    "  excluded text,"
    "  data bytea NOT NULL);"
    /* The change feed: every committed write to what a worker may remember (a token's user, a
     * cached result) NOTIFYs cc_change once per transaction (native/worker/cc_wsync.c). */
    "CREATE OR REPLACE FUNCTION cc_notify_change() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN PERFORM pg_notify('cc_change', ''); RETURN NULL; END $$;"
    "CREATE OR REPLACE TRIGGER cc_change AFTER INSERT OR UPDATE OR DELETE ON users "
    "  FOR EACH ROW EXECUTE FUNCTION cc_notify_change();"
    "CREATE OR REPLACE TRIGGER cc_change AFTER INSERT OR UPDATE OR DELETE ON tokens "
    "  FOR EACH ROW EXECUTE FUNCTION cc_notify_change();"
    "CREATE OR REPLACE TRIGGER cc_change AFTER INSERT OR UPDATE OR DELETE ON projects "
    "  FOR EACH ROW EXECUTE FUNCTION cc_notify_change();"
    "CREATE OR REPLACE TRIGGER cc_change AFTER INSERT OR UPDATE OR DELETE ON cache "
    "  FOR EACH ROW EXECUTE FUNCTION cc_notify_change();"
    "CREATE OR REPLACE TRIGGER cc_change AFTER INSERT OR UPDATE OR DELETE ON records "
    "  FOR EACH ROW EXECUTE FUNCTION cc_notify_change();";

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

static const char *const SQL[] = {
#define STMT_SQL(name, sql) sql,
    STATEMENTS(STMT_SQL)
#undef STMT_SQL
};

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

static void msg_of(PGconn *c, char *buf, size_t n) {
  const char *m = c ? PQerrorMessage(c) : "out of memory";
  snprintf(buf, n, "%s", m && *m ? m : "connection lost");
  size_t l = strlen(buf);
  while (l && (buf[l - 1] == '\n' || buf[l - 1] == ' ')) buf[--l] = 0;
}

/* Opens a libpq connection to the handle's URI (a short connect timeout: fail fast). */
static PGconn *connect_pg(pg *s) {
  const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
  const char *vals[] = {s->uri, "3", "codecanvas-worker", NULL};
  PGconn *c = PQconnectdbParams(keys, vals, 1);
  if (c && PQstatus(c) == CONNECTION_OK) {
    PGresult *r = PQexec(c, "SET client_min_messages = warning");
    PQclear(r);
  }
  return c;
}

static void conn_free(conn *c) {
  if (!c) return;
  PQfinish(c->pg);
  free(c);
}

/* A thread waiting for a connection: served in arrival order, by hand-off (a released
 * connection goes straight to the first waiter, or the right to open one when a slot frees). */
typedef struct waiter {
  struct waiter *next;
  pthread_cond_t cv;
  conn *got;     /* a connection handed over */
  bool may_open; /* a slot handed over: open a new connection (s->open already counts it) */
} waiter;

/* A slot of the pool became free (s->open was decremented): it goes to the first waiter. */
static void give_slot(pg *s) {
  waiter *w = s->waiters;
  if (!w) return;
  s->waiters = w->next;
  if (!s->waiters) s->waiters_tail = NULL;
  w->may_open = true;
  s->open++;
  pthread_cond_signal(&w->cv);
}

/* Opens a new connection for a slot already counted in s->open. */
static cc_status open_conn(pg *s, conn **out) {
  /* While the server is down, one thread at a time tries a new connection; the others wait
   * for that one attempt (refused at once when the server is down; at most the connect
   * timeout when it does not answer) instead of each making its own, and fail with it. */
  pthread_mutex_lock(&s->mu);
  bool waited = false;
  while (s->down && s->probing) {
    pthread_cond_wait(&s->probe_cv, &s->mu);
    waited = true;
  }
  if (waited && s->down) {
    char m[sizeof s->down_msg];
    snprintf(m, sizeof m, "%s", s->down_msg);
    s->open--;
    give_slot(s);
    pthread_mutex_unlock(&s->mu);
    return fail(s, CC_UPSTREAM_ERROR, "store: PostgreSQL unreachable: %s", m);
  }
  bool probe = s->down;
  if (probe) s->probing = true;
  pthread_mutex_unlock(&s->mu);
  conn *c = calloc(1, sizeof *c);
  PGconn *p = c ? connect_pg(s) : NULL;
  bool up = c && p && PQstatus(p) == CONNECTION_OK;
  char m[256] = "";
  if (!up) msg_of(p, m, sizeof m);
  pthread_mutex_lock(&s->mu);
  if (probe) {
    s->probing = false;
    pthread_cond_broadcast(&s->probe_cv);
  }
  s->down = !up;
  if (!up) {
    s->open--;
    snprintf(s->down_msg, sizeof s->down_msg, "%s", m);
    give_slot(s);
  }
  pthread_mutex_unlock(&s->mu);
  if (!up) {
    PQfinish(p);
    free(c);
    return fail(s, CC_UPSTREAM_ERROR, "store: PostgreSQL unreachable: %s", m);
  }
  c->pg = p;
  *out = c;
  return CC_OK;
}

static conn *ready(conn *c) {
  c->next = NULL;
  c->reused = true;
  c->in_call = 0;
  return c;
}

/* Borrows a connection: an idle one, else a new one while under max, else waits in line for
 * one (at most 10 s). */
static cc_status acquire(pg *s, conn **out) {
  *out = NULL;
  pthread_mutex_lock(&s->mu);
  if (!s->waiters && s->idle) {
    conn *c = s->idle;
    s->idle = c->next;
    pthread_mutex_unlock(&s->mu);
    *out = ready(c);
    return CC_OK;
  }
  if (!s->waiters && s->open < s->max) {
    s->open++;
    pthread_mutex_unlock(&s->mu);
    return open_conn(s, out);
  }
  waiter w = {0};
  pthread_cond_init(&w.cv, NULL);
  if (s->waiters_tail)
    s->waiters_tail->next = &w;
  else
    s->waiters = &w;
  s->waiters_tail = &w;
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 10;
  while (!w.got && !w.may_open)
    if (pthread_cond_timedwait(&w.cv, &s->mu, &until) == ETIMEDOUT) break;
  if (!w.got && !w.may_open) { /* timed out: leave the line */
    waiter **pp = &s->waiters, *prev = NULL;
    while (*pp && *pp != &w) prev = *pp, pp = &(*pp)->next;
    if (*pp) *pp = w.next;
    if (s->waiters_tail == &w) s->waiters_tail = prev;
  }
  pthread_mutex_unlock(&s->mu);
  pthread_cond_destroy(&w.cv);
  if (w.got) {
    *out = ready(w.got);
    return CC_OK;
  }
  if (w.may_open) return open_conn(s, out);
  return fail(s, CC_UPSTREAM_ERROR, "store: all %d database connections stayed busy for 10 s",
              s->max);
}

/* Gives a connection back (or drops it when broken or left inside a transaction): to the
 * first waiter, else to the idle list. */
static void release(pg *s, conn *c) {
  if (!c) return;
  if (!c->broken && PQtransactionStatus(c->pg) != PQTRANS_IDLE) c->broken = true;
  pthread_mutex_lock(&s->mu);
  if (c->broken || PQstatus(c->pg) != CONNECTION_OK) {
    s->open--;
    /* A lost connection usually means the server went away: its idle siblings are dead too, so
     * they are dropped now rather than failing one call each later. */
    conn *dead = PQstatus(c->pg) != CONNECTION_OK ? s->idle : NULL;
    if (dead) s->idle = NULL;
    int freed = 1;
    for (conn *d = dead; d; d = d->next) s->open--, freed++;
    for (int i = 0; i < freed; i++) give_slot(s);
    pthread_mutex_unlock(&s->mu);
    conn_free(c);
    while (dead) {
      conn *next = dead->next;
      conn_free(dead);
      dead = next;
    }
    return;
  }
  waiter *w = s->waiters;
  if (w) {
    s->waiters = w->next;
    if (!s->waiters) s->waiters_tail = NULL;
    w->got = c;
    pthread_cond_signal(&w->cv);
  } else {
    c->next = s->idle;
    s->idle = c;
  }
  pthread_mutex_unlock(&s->mu);
}

/* A failed statement: CC_UPSTREAM_ERROR when the connection is gone (and marks it broken),
 * else CC_INTERNAL with the server's message. */
static cc_status dberr(pg *s, conn *c, const PGresult *r, const char *what) {
  char m[256];
  const char *em = r ? PQresultErrorMessage(r) : NULL;
  if (em && *em)
    snprintf(m, sizeof m, "%s", em);
  else
    msg_of(c->pg, m, sizeof m);
  size_t l = strlen(m);
  while (l && (m[l - 1] == '\n' || m[l - 1] == ' ')) m[--l] = 0;
  if (PQstatus(c->pg) != CONNECTION_OK) {
    c->broken = true;
    return fail(s, CC_UPSTREAM_ERROR, "store: PostgreSQL connection lost (%s): %s", what, m);
  }
  return fail(s, CC_INTERNAL, "store: %s: %s", what, m);
}

/* Runs prepared statement q with text parameters (NULL = SQL NULL).  *res is the result on
 * success (PGRES_TUPLES_OK / PGRES_COMMAND_OK); the caller PQclear()s it.  On failure *res
 * is NULL and *sqlstate (may be NULL) gets the error's SQLSTATE ("" when none). */
static cc_status run(pg *s, conn *c, int q, int n, const char *const *params, PGresult **res,
                     const char *what, char sqlstate[6]) {
  *res = NULL;
  if (sqlstate) sqlstate[0] = 0;
  c->in_call++;
  char name[16];
  snprintf(name, sizeof name, "q%d", q);
  if (!c->prepared[q]) {
    PGresult *p = PQprepare(c->pg, name, SQL[q], 0, NULL);
    if (PQresultStatus(p) != PGRES_COMMAND_OK) {
      cc_status rc = dberr(s, c, p, what);
      PQclear(p);
      return rc;
    }
    PQclear(p);
    c->prepared[q] = true;
  }
  PGresult *r = PQexecPrepared(c->pg, name, n, params, NULL, NULL, 0);
  ExecStatusType t = PQresultStatus(r);
  if (t == PGRES_TUPLES_OK || t == PGRES_COMMAND_OK) {
    *res = r;
    return CC_OK;
  }
  if (sqlstate) {
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    snprintf(sqlstate, 6, "%s", st ? st : "");
  }
  cc_status rc = dberr(s, c, r, what);
  PQclear(r);
  return rc;
}

/* Runs SQL text without parameters (schema, transaction control, checks). */
static cc_status simple(pg *s, conn *c, const char *sql, const char *what) {
  c->in_call++;
  PGresult *r = PQexec(c->pg, sql);
  ExecStatusType t = PQresultStatus(r);
  cc_status rc = t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK ? CC_OK : dberr(s, c, r, what);
  PQclear(r);
  return rc;
}

static cc_status begin(pg *s, conn *c) {
  return simple(s, c, "BEGIN", "begin");
}
static cc_status commit(pg *s, conn *c) {
  return simple(s, c, "COMMIT", "commit");
}
static void rollback(pg *s, conn *c) {
  if (PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
    PGresult *r = PQexec(c->pg, "ROLLBACK");
    PQclear(r);
  }
  (void)s;
}

/* Integer text for a parameter. */
typedef struct {
  char v[24];
} num;
static num N(long long v) {
  num n;
  snprintf(n.v, sizeof n.v, "%lld", v);
  return n;
}

static long long col_ll(const PGresult *r, int row, int col) {
  return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}
static const char *col_str(const PGresult *r, int row, int col) {
  return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

/* Every operation runs through CALL: borrow a connection, run the body (a do_* function
 * taking (s, c, ...)), give it back; retried once on a new connection when the first
 * statement found a reused connection dead (nothing of the call ran). */
#define CALL(s, expr)                                                       \
  do {                                                                      \
    for (int attempt_ = 0;; attempt_++) {                                   \
      conn *c = NULL;                                                       \
      rc = acquire(s, &c);                                                  \
      if (rc) break;                                                        \
      rc = (expr);                                                          \
      bool retry_ = rc == CC_UPSTREAM_ERROR && c->reused && c->in_call <= 1 && \
                    c->broken && attempt_ == 0;                             \
      release(s, c);                                                        \
      if (!retry_) break;                                                   \
    }                                                                       \
  } while (0)

/* ------------------------------------------------------------------ users and tokens */

static cc_status do_user_ensure(pg *s, conn *c, const char *user, bool *created) {
  num t = N(cc_store_now(&s->o));
  const char *p[] = {user, t.v};
  PGresult *r;
  cc_status rc = run(s, c, Q_USER_ENSURE, 2, p, &r, "create user", NULL);
  if (!rc && created) *created = strcmp(PQcmdTuples(r), "1") == 0;
  PQclear(r);
  return rc;
}

static cc_status op_user_ensure(void *ctx, const char *user, bool *created) {
  pg *s = ctx;
  if (created) *created = false;
  cc_status rc = cc_store_check_name(&s->errs, "user", user);
  if (rc) return rc;
  CALL(s, do_user_ensure(s, c, user, created));
  return rc;
}

static cc_status do_token_add(pg *s, conn *c, const char *user, const char *h, const char *label,
                              int64_t *token_id) {
  PGresult *r = NULL;
  const char *pu[] = {user};
  cc_status rc = run(s, c, Q_USER_EXISTS, 1, pu, &r, "find user", NULL);
  if (rc) return rc;
  bool exists = PQntuples(r) == 1;
  PQclear(r);
  if (!exists) return fail(s, CC_NOT_FOUND, "store: no user %s", user);
  num t = N(cc_store_now(&s->o));
  const char *p[] = {user, h, label ? label : "", t.v};
  char state[6];
  rc = run(s, c, Q_TOKEN_ADD, 4, p, &r, "add token", state);
  if (rc == CC_INTERNAL && strcmp(state, "23505") == 0)
    return fail(s, CC_CONFLICT, "store: a token with this hash exists");
  if (rc == CC_INTERNAL && strcmp(state, "23503") == 0)
    return fail(s, CC_NOT_FOUND, "store: no user %s", user);
  if (!rc && token_id) *token_id = col_ll(r, 0, 0);
  PQclear(r);
  return rc;
}

static cc_status op_token_add(void *ctx, const char *user, const char *hash, const char *label,
                              int64_t *token_id) {
  pg *s = ctx;
  if (token_id) *token_id = 0;
  char h[CC_STORE_NAME_MAX + 1];
  cc_status rc = cc_store_check_name(&s->errs, "user", user);
  if (!rc) rc = cc_store_norm_hash(&s->errs, hash, h);
  if (!rc && label && strlen(label) > CC_STORE_NAME_MAX)
    rc = fail(s, CC_BAD_REQUEST, "store: token label longer than %d bytes", CC_STORE_NAME_MAX);
  if (rc) return rc;
  CALL(s, do_token_add(s, c, user, h, label, token_id));
  return rc;
}

static cc_status do_token_lookup(pg *s, conn *c, const char *h, char **user) {
  const char *p[] = {h};
  PGresult *r;
  cc_status rc = run(s, c, Q_TOKEN_LOOKUP, 1, p, &r, "look up token", NULL);
  if (rc) return rc;
  if (PQntuples(r) == 1) {
    if (!(*user = cc_store_dup(PQgetvalue(r, 0, 0))))
      rc = fail(s, CC_INTERNAL, "store: out of memory");
  } else {
    rc = fail(s, CC_UNAUTHORIZED, "store: unknown or revoked token");
  }
  PQclear(r);
  return rc;
}

static cc_status op_token_lookup(void *ctx, const char *hash, char **user) {
  pg *s = ctx;
  *user = NULL;
  char h[CC_STORE_NAME_MAX + 1];
  if (cc_store_norm_hash(&s->errs, hash, h))
    return fail(s, CC_UNAUTHORIZED, "store: malformed token hash");
  cc_status rc;
  CALL(s, do_token_lookup(s, c, h, user));
  return rc;
}

static cc_status do_token_list(pg *s, conn *c, const char *user, cJSON **out) {
  const char *p[] = {user};
  PGresult *r;
  cc_status rc = run(s, c, Q_TOKEN_LIST, 1, p, &r, "list tokens", NULL);
  if (rc) return rc;
  cJSON *arr = cJSON_CreateArray();
  bool ok = arr != NULL;
  for (int i = 0; ok && i < PQntuples(r); i++) {
    cJSON *t = cJSON_CreateObject();
    ok = t && cJSON_AddItemToArray(arr, t) &&
         cJSON_AddNumberToObject(t, "id", (double)col_ll(r, i, 0)) &&
         cJSON_AddStringToObject(t, "label", PQgetvalue(r, i, 1)) &&
         cJSON_AddNumberToObject(t, "createdAt", (double)col_ll(r, i, 2));
    if (ok && !PQgetisnull(r, i, 3))
      ok = cJSON_AddNumberToObject(t, "revokedAt", (double)col_ll(r, i, 3)) != NULL;
  }
  PQclear(r);
  if (!ok) {
    cJSON_Delete(arr);
    return fail(s, CC_INTERNAL, "store: out of memory");
  }
  *out = arr;
  return CC_OK;
}

static cc_status op_token_list(void *ctx, const char *user, cJSON **tokens) {
  pg *s = ctx;
  *tokens = NULL;
  cc_status rc = cc_store_check_name(&s->errs, "user", user);
  if (rc) return rc;
  CALL(s, do_token_list(s, c, user, tokens));
  return rc;
}

static cc_status do_token_revoke(pg *s, conn *c, const char *user, int64_t id) {
  num t = N(cc_store_now(&s->o)), i = N(id);
  const char *p[] = {t.v, i.v, user};
  PGresult *r;
  cc_status rc = run(s, c, Q_TOKEN_REVOKE, 3, p, &r, "revoke token", NULL);
  if (!rc && strcmp(PQcmdTuples(r), "0") == 0)
    rc = fail(s, CC_NOT_FOUND, "store: user %s has no token %lld", user, (long long)id);
  PQclear(r);
  return rc;
}

static cc_status op_token_revoke(void *ctx, const char *user, int64_t token_id) {
  pg *s = ctx;
  cc_status rc = cc_store_check_name(&s->errs, "user", user);
  if (rc) return rc;
  CALL(s, do_token_revoke(s, c, user, token_id));
  return rc;
}

/* ------------------------------------------------------------------ projects */

/* The id of (owner, project); CC_NOT_FOUND when missing. */
static cc_status find_project(pg *s, conn *c, const char *owner, const char *project,
                              long long *id) {
  const char *p[] = {owner, project};
  PGresult *r;
  cc_status rc = run(s, c, Q_PROJECT_FIND, 2, p, &r, "find project", NULL);
  if (rc) return rc;
  if (PQntuples(r) == 1)
    *id = col_ll(r, 0, 0);
  else
    rc = fail(s, CC_NOT_FOUND, "store: no project %s", project);
  PQclear(r);
  return rc;
}

static cc_status do_project_ensure(pg *s, conn *c, const char *owner, const char *project,
                                   bool *created) {
  long long id = 0;
  cc_status rc = find_project(s, c, owner, project, &id);
  if (rc != CC_NOT_FOUND) return rc; /* exists (CC_OK) or failed */
  /* The owner's project count is checked and the row added under a lock of the owner, so
   * two workers cannot both add the last allowed project. */
  PGresult *r = NULL;
  num k = N(LOCK_OWNER), t = N(cc_store_now(&s->o));
  const char *pl[] = {k.v, owner}, *pc[] = {owner}, *pi[] = {owner, project, t.v};
  if ((rc = begin(s, c))) return rc;
  if ((rc = run(s, c, Q_OWNER_LOCK, 2, pl, &r, "lock owner", NULL))) goto out;
  PQclear(r);
  if ((rc = run(s, c, Q_PROJECT_COUNT, 1, pc, &r, "count projects", NULL))) goto out;
  long long n = col_ll(r, 0, 0);
  PQclear(r);
  r = NULL;
  if (n >= s->o.projects_per_owner) {
    rc = fail(s, CC_TOO_LARGE, "store: owner has the maximum of %d projects",
              s->o.projects_per_owner);
    goto out;
  }
  if ((rc = run(s, c, Q_PROJECT_INSERT, 3, pi, &r, "create project", NULL))) goto out;
  bool added = strcmp(PQcmdTuples(r), "1") == 0;
  PQclear(r);
  r = NULL;
  if ((rc = commit(s, c))) goto out;
  if (created) *created = added;
out:
  PQclear(r);
  rollback(s, c);
  return rc;
}

static cc_status op_project_ensure(void *ctx, const char *owner, const char *project,
                                   bool *created) {
  pg *s = ctx;
  if (created) *created = false;
  cc_status rc = cc_store_check_owner_project(&s->errs, owner, project);
  if (rc) return rc;
  CALL(s, do_project_ensure(s, c, owner, project, created));
  return rc;
}

/* ProjectInfo of row i of a PROJECT_INFO / PROJECT_LIST result. */
static cc_status info_of(pg *s, const PGresult *r, int i, cJSON **out) {
  cc_store_last_record last = {col_str(r, i, 6), col_str(r, i, 7), col_str(r, i, 8),
                               col_ll(r, i, 9)};
  cc_store_project_row row = {
      .project = col_str(r, i, 0),
      .sandbox_id = col_str(r, i, 1),
      .metadata = col_str(r, i, 2),
      .created_at = col_ll(r, i, 3),
      .updated_at = col_ll(r, i, 4),
      .generation = col_ll(r, i, 5),
      .last = last.id ? &last : NULL,
  };
  return cc_store_build_info(&s->errs, &row, out);
}

static cc_status build_info(pg *s, conn *c, long long id, cJSON **out) {
  num n = N(id);
  const char *p[] = {n.v};
  PGresult *r;
  cc_status rc = run(s, c, Q_PROJECT_INFO, 1, p, &r, "read project", NULL);
  if (rc) return rc;
  if (PQntuples(r) == 1)
    rc = info_of(s, r, 0, out);
  else
    rc = fail(s, CC_NOT_FOUND, "store: project vanished");
  PQclear(r);
  return rc;
}

static cc_status do_project_get(pg *s, conn *c, const char *owner, const char *project,
                                cJSON **info) {
  long long id = 0;
  cc_status rc = find_project(s, c, owner, project, &id);
  return rc ? rc : build_info(s, c, id, info);
}

static cc_status op_project_get(void *ctx, const char *owner, const char *project, cJSON **info) {
  pg *s = ctx;
  *info = NULL;
  cc_status rc = cc_store_check_owner_project(&s->errs, owner, project);
  if (rc) return rc;
  CALL(s, do_project_get(s, c, owner, project, info));
  return rc;
}

static cc_status do_project_list(pg *s, conn *c, const char *owner, cJSON **out) {
  const char *p[] = {owner};
  PGresult *r;
  cc_status rc = run(s, c, Q_PROJECT_LIST, 1, p, &r, "list projects", NULL);
  if (rc) return rc;
  cJSON *list = cJSON_CreateObject();
  cJSON *arr = cJSON_AddArrayToObject(list, "projects");
  if (!arr) rc = fail(s, CC_INTERNAL, "store: out of memory");
  for (int i = 0; !rc && i < PQntuples(r); i++) {
    cJSON *info;
    if (!(rc = info_of(s, r, i, &info))) cJSON_AddItemToArray(arr, info);
  }
  PQclear(r);
  if (rc) {
    cJSON_Delete(list);
    return rc;
  }
  *out = list;
  return CC_OK;
}

static cc_status op_project_list(void *ctx, const char *owner, cJSON **list) {
  pg *s = ctx;
  *list = NULL;
  cc_status rc = cc_store_check_name(&s->errs, "owner", owner);
  if (rc) return rc;
  CALL(s, do_project_list(s, c, owner, list));
  return rc;
}

static cc_status do_project_delete(pg *s, conn *c, const char *owner, const char *project,
                                   bool *deleted) {
  const char *p[] = {owner, project};
  PGresult *r;
  cc_status rc = run(s, c, Q_PROJECT_DELETE, 2, p, &r, "delete project", NULL);
  if (!rc && deleted) *deleted = strcmp(PQcmdTuples(r), "0") != 0;
  PQclear(r);
  return rc;
}

static cc_status op_project_delete(void *ctx, const char *owner, const char *project,
                                   bool *deleted) {
  pg *s = ctx;
  if (deleted) *deleted = false;
  cc_status rc = cc_store_check_owner_project(&s->errs, owner, project);
  if (rc) return rc;
  CALL(s, do_project_delete(s, c, owner, project, deleted));
  return rc;
}

/* One column of the project row: *out is its text (NULL for SQL NULL; cc_store_dup'd). */
static cc_status do_project_column(pg *s, conn *c, int q, const char *owner, const char *project,
                                   char **out) {
  const char *p[] = {owner, project};
  PGresult *r;
  *out = NULL;
  cc_status rc = run(s, c, q, 2, p, &r, "read project", NULL);
  if (rc) return rc;
  if (PQntuples(r) != 1)
    rc = fail(s, CC_NOT_FOUND, "store: no project %s", project);
  else if (!PQgetisnull(r, 0, 0) && !(*out = cc_store_dup(PQgetvalue(r, 0, 0))))
    rc = fail(s, CC_INTERNAL, "store: out of memory");
  PQclear(r);
  return rc;
}

static cc_status op_project_generation(void *ctx, const char *owner, const char *project,
                                       int64_t *generation) {
  pg *s = ctx;
  *generation = 0;
  char *v = NULL;
  cc_status rc = cc_store_check_owner_project(&s->errs, owner, project);
  if (rc) return rc;
  CALL(s, do_project_column(s, c, Q_PROJECT_GENERATION, owner, project, &v));
  if (!rc && v) *generation = strtoll(v, NULL, 10);
  free(v);
  return rc;
}

static cc_status op_project_sandbox(void *ctx, const char *owner, const char *project,
                                    char **sandbox_id) {
  pg *s = ctx;
  *sandbox_id = NULL;
  cc_status rc = cc_store_check_owner_project(&s->errs, owner, project);
  if (rc) return rc;
  CALL(s, do_project_column(s, c, Q_PROJECT_SANDBOX, owner, project, sandbox_id));
  return rc;
}

static cc_status do_update_project(pg *s, conn *c, const char *owner, const char *project,
                                   bool set_sandbox, const char *sandbox_id, int64_t *generation) {
  num t = N(cc_store_now(&s->o));
  const char *pb[] = {owner, project, t.v}, *ps[] = {owner, project, sandbox_id, t.v};
  PGresult *r;
  cc_status rc = set_sandbox ? run(s, c, Q_PROJECT_SET_SANDBOX, 4, ps, &r, "update project", NULL)
                             : run(s, c, Q_PROJECT_BUMP, 3, pb, &r, "update project", NULL);
  if (rc) return rc;
  if (PQntuples(r) != 1)
    rc = fail(s, CC_NOT_FOUND, "store: no project %s", project);
  else if (generation)
    *generation = col_ll(r, 0, 0);
  PQclear(r);
  return rc;
}

static cc_status op_project_bump_generation(void *ctx, const char *owner, const char *project,
                                            int64_t *generation) {
  pg *s = ctx;
  if (generation) *generation = 0;
  cc_status rc = cc_store_check_owner_project(&s->errs, owner, project);
  if (rc) return rc;
  CALL(s, do_update_project(s, c, owner, project, false, NULL, generation));
  return rc;
}

static cc_status op_project_set_sandbox(void *ctx, const char *owner, const char *project,
                                        const char *sandbox_id, int64_t *generation) {
  pg *s = ctx;
  if (generation) *generation = 0;
  cc_status rc = cc_store_check_owner_project(&s->errs, owner, project);
  if (!rc && sandbox_id) rc = cc_store_check_name(&s->errs, "sandboxId", sandbox_id);
  if (rc) return rc;
  CALL(s, do_update_project(s, c, owner, project, true, sandbox_id, generation));
  return rc;
}

static cc_status do_project_patch(pg *s, conn *c, const char *owner, const char *project,
                                  const cJSON *own, cJSON *ignored, cJSON **info) {
  PGresult *r = NULL;
  char *text = NULL;
  const char *pf[] = {owner, project};
  cc_status rc = begin(s, c);
  if (rc) return rc;
  if ((rc = run(s, c, Q_PROJECT_META_FOR_UPDATE, 2, pf, &r, "read metadata", NULL))) goto out;
  if (PQntuples(r) != 1) {
    rc = fail(s, CC_NOT_FOUND, "store: no project %s", project);
    goto out;
  }
  long long id = col_ll(r, 0, 0);
  if ((rc = cc_store_patch_metadata(&s->errs, col_str(r, 0, 1), own, s->o.metadata_max_bytes,
                                    &text)))
    goto out;
  PQclear(r);
  r = NULL;
  num t = N(cc_store_now(&s->o)), n = N(id);
  const char *pu[] = {text, t.v, n.v};
  if ((rc = run(s, c, Q_PROJECT_META_SET, 3, pu, &r, "update metadata", NULL))) goto out;
  if ((rc = commit(s, c))) goto out;
  if (info) rc = build_info(s, c, id, info);
  if (info && rc == CC_OK && cJSON_GetArraySize(ignored) > 0)
    cJSON_AddItemToObject(*info, "ignored", cJSON_Duplicate(ignored, 1));
out:
  PQclear(r);
  rollback(s, c);
  cJSON_free(text);
  return rc;
}

static cc_status op_project_patch(void *ctx, const char *owner, const char *project,
                                  const cJSON *patch, cJSON **info) {
  pg *s = ctx;
  if (info) *info = NULL;
  cJSON *own = NULL, *ignored = NULL;
  cc_status rc = cc_store_check_owner_project(&s->errs, owner, project);
  if (!rc) rc = cc_store_patch_split(&s->errs, patch, &own, &ignored);
  if (rc) return rc;
  CALL(s, do_project_patch(s, c, owner, project, own, ignored, info));
  cJSON_Delete(own);
  cJSON_Delete(ignored);
  return rc;
}

/* ------------------------------------------------------------------ exec cache */

static cc_status do_cache_get(pg *s, conn *c, const char *owner, const char *project,
                              const char *key, bool *hit, cJSON **result) {
  num since = N(cc_store_now(&s->o) - s->o.cache_ttl_ms);
  const char *p[] = {owner, project, key, since.v};
  PGresult *r;
  cc_status rc = run(s, c, Q_CACHE_GET, 4, p, &r, "read cache", NULL);
  if (rc) return rc;
  if (PQntuples(r) == 1) {
    if ((*result = cJSON_Parse(PQgetvalue(r, 0, 0))))
      *hit = true;
    else
      rc = fail(s, CC_INTERNAL, "store: corrupt JSON in database");
  }
  PQclear(r);
  return rc;
}

static cc_status op_cache_get(void *ctx, const char *owner, const char *project, const char *key,
                              bool *hit, cJSON **result) {
  pg *s = ctx;
  *hit = false;
  *result = NULL;
  cc_status rc = cc_store_check_owner_project(&s->errs, owner, project);
  if (!rc) rc = cc_store_check_key(&s->errs, key);
  if (rc) return rc;
  CALL(s, do_cache_get(s, c, owner, project, key, hit, result));
  return rc;
}

static cc_status do_cache_put(pg *s, conn *c, const char *owner, const char *project,
                              const char *key, const char *cmd, int64_t generation,
                              const char *text) {
  long long id = 0;
  PGresult *r = NULL;
  cc_status rc = begin(s, c);
  if (rc) return rc;
  if ((rc = find_project(s, c, owner, project, &id))) goto out;
  num pid = N(id), g = N(generation), t = N(cc_store_now(&s->o)),
      keep = N(s->o.cache_entries_per_project);
  const char *pp[] = {pid.v, key, cmd, g.v, t.v, text}, *pe[] = {pid.v, keep.v};
  if ((rc = run(s, c, Q_CACHE_PUT, 6, pp, &r, "write cache", NULL))) goto out;
  PQclear(r);
  r = NULL;
  /* Bound: keep the newest cache_entries_per_project (seq grows with every write). */
  if ((rc = run(s, c, Q_CACHE_EVICT, 2, pe, &r, "evict cache", NULL))) goto out;
  rc = commit(s, c);
out:
  PQclear(r);
  rollback(s, c);
  return rc;
}

static cc_status op_cache_put(void *ctx, const char *owner, const char *project, const char *key,
                              const char *cmd, int64_t generation, const cJSON *result) {
  pg *s = ctx;
  cc_status rc = cc_store_check_owner_project(&s->errs, owner, project);
  if (!rc) rc = cc_store_check_key(&s->errs, key);
  if (!rc && !cmd) rc = fail(s, CC_BAD_REQUEST, "store: cache entry without cmd");
  if (!rc && !result) rc = fail(s, CC_BAD_REQUEST, "store: cache entry without result");
  if (rc) return rc;
  char *text = NULL;
  if ((rc = cc_store_to_text(&s->errs, "cache result", result, s->o.json_max_bytes, &text)))
    return rc;
  CALL(s, do_cache_put(s, c, owner, project, key, cmd, generation, text));
  cJSON_free(text);
  return rc;
}

static cc_status do_cache_clear(pg *s, conn *c, const char *owner, const char *project,
                                const char *cmd, int64_t *cleared) {
  const char *p[] = {owner, project, cmd};
  PGresult *r;
  cc_status rc = run(s, c, Q_CACHE_CLEAR, 3, p, &r, "clear cache", NULL);
  if (!rc && cleared) *cleared = strtoll(PQcmdTuples(r), NULL, 10);
  PQclear(r);
  return rc;
}

static cc_status op_cache_clear(void *ctx, const char *owner, const char *project, const char *cmd,
                                int64_t *cleared) {
  pg *s = ctx;
  if (cleared) *cleared = 0;
  cc_status rc = cc_store_check_owner_project(&s->errs, owner, project);
  if (rc) return rc;
  CALL(s, do_cache_clear(s, c, owner, project, cmd, cleared));
  return rc;
}

static cc_status do_cache_count(pg *s, conn *c, const char *owner, const char *project,
                                int64_t *count) {
  const char *p[] = {owner, project};
  PGresult *r;
  cc_status rc = run(s, c, Q_CACHE_COUNT, 2, p, &r, "count cache", NULL);
  if (!rc) *count = col_ll(r, 0, 0);
  PQclear(r);
  return rc;
}

static cc_status op_cache_count(void *ctx, const char *owner, const char *project, int64_t *count) {
  pg *s = ctx;
  *count = 0;
  cc_status rc = cc_store_check_owner_project(&s->errs, owner, project);
  if (rc) return rc;
  CALL(s, do_cache_count(s, c, owner, project, count));
  return rc;
}

/* ------------------------------------------------------------------ execution records */

static cc_status do_record_insert(pg *s, conn *c, const char *owner, const char *project,
                                  const char *id, const char *op, const char *text) {
  long long pid = 0;
  PGresult *r = NULL;
  char state[6];
  cc_status rc = begin(s, c);
  if (rc) return rc;
  if ((rc = find_project(s, c, owner, project, &pid))) goto out;
  num pn = N(pid), t = N(cc_store_now(&s->o)), keep = N(s->o.history_keep);
  const char *pi[] = {id, pn.v, op, text, t.v, s->worker_id}, *pp[] = {pn.v, keep.v};
  rc = run(s, c, Q_RECORD_INSERT, 6, pi, &r, "insert record", state);
  if (rc == CC_INTERNAL && strcmp(state, "23505") == 0) {
    rc = fail(s, CC_CONFLICT, "store: record id %s exists", id);
    goto out;
  }
  if (rc) goto out;
  PQclear(r);
  r = NULL;
  /* Prune: keep exactly the newest history_keep records of this project. */
  if ((rc = run(s, c, Q_RECORD_PRUNE, 2, pp, &r, "prune records", NULL))) goto out;
  rc = commit(s, c);
out:
  PQclear(r);
  rollback(s, c);
  return rc;
}

static cc_status op_record_insert(void *ctx, const char *owner, const char *project, const char *id,
                                  const char *op, const cJSON *input,
                                  char out_id[CC_STORE_ID_LEN + 1]) {
  pg *s = ctx;
  if (out_id) out_id[0] = 0;
  char idbuf[CC_STORE_ID_LEN + 1];
  cc_status rc = cc_store_check_owner_project(&s->errs, owner, project);
  if (!rc) rc = cc_store_check_name(&s->errs, "op", op);
  if (!rc && id) rc = cc_store_check_id(&s->errs, id);
  if (rc) return rc;
  if (!id) {
    if ((rc = cc_store_new_id(idbuf))) return fail(s, rc, "store: platform random failed");
    id = idbuf;
  }
  char *text = NULL;
  if ((rc = cc_store_to_text(&s->errs, "record input", input, s->o.json_max_bytes, &text)))
    return rc;
  CALL(s, do_record_insert(s, c, owner, project, id, op, text));
  cJSON_free(text);
  if (!rc && out_id) snprintf(out_id, CC_STORE_ID_LEN + 1, "%s", id);
  return rc;
}

/* After an UPDATE of the owner's record that changed nothing: CC_NOT_FOUND when the record
 * is not the owner's, CC_CONFLICT when its status forbids the transition. */
static cc_status explain_no_change(pg *s, conn *c, const char *owner, const char *id,
                                   const char *want) {
  const char *p[] = {id, owner};
  PGresult *r;
  cc_status rc = run(s, c, Q_RECORD_STATUS, 2, p, &r, "read record", NULL);
  if (rc) return rc;
  if (PQntuples(r) == 1)
    rc = fail(s, CC_CONFLICT, "store: record %s is %s; cannot become %s", id, PQgetvalue(r, 0, 0),
              want);
  else
    rc = fail(s, CC_NOT_FOUND, "store: no record %s", id);
  PQclear(r);
  return rc;
}

static cc_status do_record_set_running(pg *s, conn *c, const char *owner, const char *id) {
  const char *p[] = {id, owner};
  PGresult *r;
  cc_status rc = run(s, c, Q_RECORD_RUNNING, 2, p, &r, "update record", NULL);
  if (rc) return rc;
  bool changed = strcmp(PQcmdTuples(r), "0") != 0;
  PQclear(r);
  return changed ? CC_OK : explain_no_change(s, c, owner, id, "running");
}

static cc_status op_record_set_running(void *ctx, const char *owner, const char *id) {
  pg *s = ctx;
  cc_status rc = cc_store_check_name(&s->errs, "owner", owner);
  if (!rc) rc = cc_store_check_id(&s->errs, id);
  if (rc) return rc;
  CALL(s, do_record_set_running(s, c, owner, id));
  return rc;
}

typedef struct {
  const char *owner, *id, *status, *code, *message, *text;
  const cJSON *result;
} finish_args;

static cc_status do_record_finish(pg *s, conn *c, const finish_args *a) {
  const char *pf[] = {a->id, a->owner};
  PGresult *r = NULL;
  char *body = NULL;
  int64_t finished_at = cc_store_now(&s->o);
  /* The finished record's JSON, made once here so that reads only copy it. */
  cc_status rc = run(s, c, Q_RECORD_OPEN_FIELDS, 2, pf, &r, "read record", NULL);
  if (rc) return rc;
  if (PQntuples(r) == 1) {
    cc_store_record_fields f = {.id = a->id,
                                .project = col_str(r, 0, 0),
                                .op = col_str(r, 0, 1),
                                .status = a->status,
                                .input = col_str(r, 0, 2),
                                .error_code = a->code,
                                .error_message = a->message,
                                .created_at = col_ll(r, 0, 3),
                                .finished_at = finished_at};
    rc = cc_store_record_text(&s->errs, a->result, &f, &body);
  }
  PQclear(r);
  r = NULL;
  if (rc) return rc;
  num t = N(finished_at);
  const char *pu[] = {a->id, a->owner, a->status, body ? NULL : a->text, a->code, a->message,
                      t.v, body};
  if (!(rc = run(s, c, Q_RECORD_FINISH, 8, pu, &r, "finish record", NULL)) &&
      strcmp(PQcmdTuples(r), "0") == 0)
    rc = explain_no_change(s, c, a->owner, a->id, a->status);
  PQclear(r);
  free(body);
  return rc;
}

static cc_status op_record_finish(void *ctx, const char *owner, const char *id,
                                  cc_proto_record_status status, const cJSON *result,
                                  const char *error_code, const char *error_message) {
  pg *s = ctx;
  cc_status rc =
      cc_store_check_finish(&s->errs, &s->o, owner, id, status, error_code, error_message);
  if (rc) return rc;
  finish_args a = {.owner = owner, .id = id, .status = cc_proto_record_status_name(status),
                   .result = result};
  cc_store_finish_error(error_code, error_message, &a.code, &a.message);
  char *text = NULL;
  if ((rc = cc_store_to_text(&s->errs, "record result", result, s->o.json_max_bytes, &text)))
    return rc;
  a.text = text;
  CALL(s, do_record_finish(s, c, &a));
  cJSON_free(text);
  return rc;
}

/* The ExecutionRecord text of row i of a RECORD_COLUMNS result: the stored body, or one built
 * from the columns into *owned (the caller frees it). */
static cc_status record_row(pg *s, const PGresult *r, int i, const char **text, size_t *len,
                            char **owned) {
  *owned = NULL;
  if (!PQgetisnull(r, i, 10)) {
    *text = PQgetvalue(r, i, 10);
    *len = (size_t)PQgetlength(r, i, 10);
    return CC_OK;
  }
  cc_store_record_fields f = {
      .id = col_str(r, i, 0),
      .project = col_str(r, i, 1),
      .op = col_str(r, i, 2),
      .input = col_str(r, i, 3),
      .status = col_str(r, i, 4),
      .result = col_str(r, i, 5),
      .error_code = col_str(r, i, 6),
      .error_message = col_str(r, i, 7),
      .created_at = col_ll(r, i, 8),
      .finished_at = PQgetisnull(r, i, 9) ? -1 : col_ll(r, i, 9),
  };
  cc_status rc = cc_store_record_text_from_row(&s->errs, &f, owned);
  if (rc) return rc;
  *text = *owned;
  *len = strlen(*owned);
  return CC_OK;
}

static cc_status do_record_get(pg *s, conn *c, const char *owner, const char *id, cJSON **record) {
  const char *p[] = {id, owner};
  PGresult *r;
  cc_status rc = run(s, c, Q_RECORD_GET, 2, p, &r, "read record", NULL);
  if (rc) return rc;
  if (PQntuples(r) == 1) {
    const char *text;
    size_t len;
    char *owned;
    if (!(rc = record_row(s, r, 0, &text, &len, &owned))) {
      *record = cJSON_ParseWithLength(text, len);
      free(owned);
      if (!*record) rc = fail(s, CC_INTERNAL, "store: corrupt JSON in database");
    }
  } else {
    rc = fail(s, CC_NOT_FOUND, "store: no record %s", id);
  }
  PQclear(r);
  return rc;
}

static cc_status op_record_get(void *ctx, const char *owner, const char *id, cJSON **record) {
  pg *s = ctx;
  *record = NULL;
  cc_status rc = cc_store_check_name(&s->errs, "owner", owner);
  if (!rc) rc = cc_store_check_id(&s->errs, id);
  if (rc) return rc == CC_BAD_REQUEST ? fail(s, CC_NOT_FOUND, "store: no record") : rc;
  CALL(s, do_record_get(s, c, owner, id, record));
  return rc;
}

/* The history page as JSON text (see history_json in cc_store.h). */
static cc_status do_history(pg *s, conn *c, const char *owner, const char *project, int limit,
                            const char *before_id, cc_store_textbuf *page, char **cursor) {
  long long pid = 0, bound = INT64_MAX;
  PGresult *r = NULL;
  cc_status rc = find_project(s, c, owner, project, &pid);
  if (rc == CC_NOT_FOUND) return CC_OK; /* empty page */
  if (rc) return rc;
  num pn = N(pid);
  if (before_id) {
    const char *pc[] = {before_id, pn.v};
    if ((rc = run(s, c, Q_RECORD_CURSOR, 2, pc, &r, "read cursor", NULL))) return rc;
    bool found = PQntuples(r) == 1;
    if (found) bound = col_ll(r, 0, 0);
    PQclear(r);
    if (!found) return CC_OK; /* unknown or pruned cursor: empty page */
  }
  num b = N(bound), l = N((long long)limit + 1);
  const char *ph[] = {pn.v, b.v, l.v};
  if ((rc = run(s, c, Q_HISTORY, 3, ph, &r, "read history", NULL))) return rc;
  int rows = PQntuples(r);
  for (int i = 0; !rc && i < rows; i++) {
    if (i == limit) { /* one more exists: the last item on this page is the cursor */
      if (!(*cursor = cc_store_dup(PQgetvalue(r, i - 1, 0))))
        rc = fail(s, CC_INTERNAL, "store: out of memory");
      break;
    }
    const char *text;
    size_t len;
    char *owned;
    if ((rc = record_row(s, r, i, &text, &len, &owned))) break;
    bool ok = (i == 0 || cc_store_textbuf_put(page, ",", 1)) &&
              cc_store_textbuf_put(page, text, len);
    free(owned);
    if (!ok) rc = fail(s, CC_INTERNAL, "store: out of memory");
  }
  PQclear(r);
  return rc;
}

static cc_status op_history_json(void *ctx, const char *owner, const char *project, int limit,
                                 const char *before_id, char **items, char **next) {
  pg *s = ctx;
  *items = NULL;
  if (next) *next = NULL;
  cc_status rc = cc_store_check_owner_project(&s->errs, owner, project);
  if (rc) return rc;
  if (limit <= 0) limit = CC_STORE_DEFAULT_HISTORY_PAGE;
  if (limit > s->o.history_keep) limit = s->o.history_keep;
  cc_store_textbuf page = {0};
  char *cursor = NULL;
  for (int attempt = 0; attempt < 2; attempt++) { /* CALL, with the page reset on a retry */
    conn *c = NULL;
    page.len = 0;
    if ((rc = acquire(s, &c))) break;
    rc = do_history(s, c, owner, project, limit, before_id, &page, &cursor);
    bool retry = rc == CC_UPSTREAM_ERROR && c->reused && c->in_call <= 1 && c->broken;
    release(s, c);
    if (!retry) break;
  }
  if (!rc) { /* "[" + items + "]" */
    char *t = malloc(page.len + 3);
    if (!t) {
      rc = fail(s, CC_INTERNAL, "store: out of memory");
    } else {
      t[0] = '[';
      if (page.len) memcpy(t + 1, page.p, page.len);
      t[page.len + 1] = ']';
      t[page.len + 2] = 0;
      *items = t;
    }
  }
  free(page.p);
  if (rc) {
    free(cursor);
    return rc;
  }
  if (next)
    *next = cursor;
  else
    free(cursor);
  return CC_OK;
}

static cc_status op_history(void *ctx, const char *owner, const char *project, int limit,
                            const char *before_id, cJSON **items, char **next) {
  char *text = NULL;
  *items = NULL;
  cc_status rc = op_history_json(ctx, owner, project, limit, before_id, &text, next);
  if (rc) return rc;
  *items = cJSON_Parse(text);
  free(text);
  if (*items) return CC_OK;
  if (next) {
    free(*next);
    *next = NULL;
  }
  return fail((pg *)ctx, CC_INTERNAL, "store: corrupt JSON in database");
}

/* ------------------------------------------------------------------ several workers */

/* (Re-)registers this worker on the presence connection: its session lock, then its row.
 * Called with presence_mu held. */
static cc_status presence_up(pg *s) {
  if (s->presence && PQstatus(s->presence) == CONNECTION_OK) return CC_OK;
  PQfinish(s->presence);
  s->presence = connect_pg(s);
  char m[256];
  if (!s->presence || PQstatus(s->presence) != CONNECTION_OK) {
    msg_of(s->presence, m, sizeof m);
    return fail(s, CC_UPSTREAM_ERROR, "store: PostgreSQL unreachable: %s", m);
  }
  char key[24], pid[16], host[256] = "";
  snprintf(key, sizeof key, "%lld", s->worker_key);
  snprintf(pid, sizeof pid, "%d", (int)getpid());
  gethostname(host, sizeof host - 1);
  const char *pl[] = {key};
  const char *pw[] = {s->worker_id, key, host, pid};
  PGresult *r = PQexecParams(s->presence, "SELECT pg_advisory_lock($1::bigint)", 1, NULL, pl, NULL,
                             NULL, 0);
  bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
  PQclear(r);
  if (ok) {
    r = PQexecParams(s->presence,
                     "INSERT INTO workers(id, lock_key, host, pid) VALUES($1, $2, $3, $4) "
                     "ON CONFLICT (id) DO UPDATE SET seen_at = now()",
                     4, NULL, pw, NULL, NULL, 0);
    ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
  }
  if (!ok) {
    msg_of(s->presence, m, sizeof m);
    PQfinish(s->presence);
    s->presence = NULL;
    return fail(s, CC_UPSTREAM_ERROR, "store: cannot register this worker: %s", m);
  }
  return CC_OK;
}

/* Renews this worker's row (re-registering after a lost connection). */
static cc_status heartbeat(pg *s) {
  pthread_mutex_lock(&s->presence_mu);
  cc_status rc = presence_up(s);
  if (!rc) {
    const char *p[] = {s->worker_id};
    PGresult *r = PQexecParams(s->presence, "UPDATE workers SET seen_at = now() WHERE id=$1", 1,
                               NULL, p, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    bool gone = ok && strcmp(PQcmdTuples(r), "0") == 0;
    PQclear(r);
    if (!ok || gone) { /* connection lost, or our row was swept: register again */
      PQfinish(s->presence);
      s->presence = NULL;
      rc = presence_up(s);
    }
  }
  pthread_mutex_unlock(&s->presence_mu);
  return rc;
}

static cc_status do_sweep(pg *s, conn *c, int64_t *count) {
  PGresult *r = NULL;
  num grace = N(SWEEP_GRACE_S), restart = N(RESTART_GRACE_S), t = N(cc_store_now(&s->o));
  const char *pd[] = {s->worker_id, grace.v, restart.v}, *pr[] = {CC_STORE_RECOVER_MESSAGE, t.v};
  cc_status rc = begin(s, c);
  if (rc) return rc;
  if ((rc = run(s, c, Q_SWEEP_DEAD, 3, pd, &r, "sweep workers", NULL))) goto out;
  PQclear(r);
  if ((rc = run(s, c, Q_SWEEP_RECORDS, 2, pr, &r, "sweep records", NULL))) {
    r = NULL;
    goto out;
  }
  int64_t n = strtoll(PQcmdTuples(r), NULL, 10);
  PQclear(r);
  r = NULL;
  if ((rc = commit(s, c))) goto out;
  if (count) *count = n;
out:
  PQclear(r);
  rollback(s, c);
  return rc;
}

static cc_status op_sweep(void *ctx, int64_t *count) {
  pg *s = ctx;
  if (count) *count = 0;
  cc_status rc = heartbeat(s);
  if (rc) return rc;
  CALL(s, do_sweep(s, c, count));
  return rc;
}

static cc_status op_recover(void *ctx, int64_t *count) {
  return op_sweep(ctx, count);
}

static cc_status op_health(void *ctx) {
  pg *s = ctx;
  cc_status rc;
  CALL(s, simple(s, c, "SELECT 1", "health check"));
  return rc;
}

/* A held project lock: the connection that holds it and the key's text. */
typedef struct {
  conn *c;
  char name[2 * CC_STORE_NAME_MAX + 2];
} held_lock;

/* Waits for the lock's answer on c, polling *cancel; on cancel asks the server to cancel. */
static cc_status wait_lock(pg *s, conn *c, atomic_int *cancel) {
  int fd = PQsocket(c->pg);
  bool canceled = false;
  for (;;) {
    if (!PQconsumeInput(c->pg)) break;
    if (!PQisBusy(c->pg)) break;
    if (!canceled && cancel && atomic_load(cancel)) {
      PGcancel *k = PQgetCancel(c->pg);
      char eb[256];
      if (k) {
        PQcancel(k, eb, sizeof eb);
        PQfreeCancel(k);
      }
      canceled = true;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    poll(&p, 1, 100);
  }
  bool got = false;
  PGresult *r;
  while ((r = PQgetResult(c->pg))) {
    if (PQresultStatus(r) == PGRES_TUPLES_OK) got = true;
    else if (!canceled) dberr(s, c, r, "lock project");
    PQclear(r);
  }
  if (PQstatus(c->pg) != CONNECTION_OK) {
    c->broken = true;
    return fail(s, CC_UPSTREAM_ERROR, "store: PostgreSQL connection lost while waiting for the project");
  }
  if (got && canceled) { /* granted just as we canceled: give it back */
    c->broken = true;   /* dropping the session releases it */
    return CC_SANDBOX_UNAVAILABLE;
  }
  if (canceled) return CC_SANDBOX_UNAVAILABLE;
  return got ? CC_OK : CC_INTERNAL;
}

static cc_status op_project_lock(void *ctx, const char *owner, const char *project,
                                 atomic_int *cancel, void **lock) {
  pg *s = ctx;
  *lock = NULL;
  held_lock *h = calloc(1, sizeof *h);
  if (!h) return fail(s, CC_INTERNAL, "store: out of memory");
  snprintf(h->name, sizeof h->name, "%s/%s", owner, project);
  cc_status rc;
  for (int attempt = 0; attempt < 2; attempt++) {
    if ((rc = acquire(s, &h->c))) break;
    char cls[16];
    snprintf(cls, sizeof cls, "%d", LOCK_PROJECT);
    const char *p[] = {cls, h->name};
    h->c->in_call++;
    if (!PQsendQueryParams(h->c->pg, SQL[Q_PROJECT_LOCK], 2, NULL, p, NULL, NULL, 0)) {
      h->c->broken = true;
      rc = fail(s, CC_UPSTREAM_ERROR, "store: PostgreSQL connection lost (lock project)");
    } else {
      rc = wait_lock(s, h->c, cancel);
    }
    if (rc == CC_OK) break;
    bool retry = rc == CC_UPSTREAM_ERROR && h->c->reused && h->c->broken;
    release(s, h->c);
    h->c = NULL;
    if (!retry) break;
  }
  if (rc) {
    free(h);
    return rc;
  }
  *lock = h;
  return CC_OK;
}

static void op_project_unlock(void *ctx, void *lock) {
  pg *s = ctx;
  held_lock *h = lock;
  if (!h) return;
  char cls[16];
  snprintf(cls, sizeof cls, "%d", LOCK_PROJECT);
  const char *p[] = {cls, h->name};
  PGresult *r = PQexecParams(h->c->pg, SQL[Q_PROJECT_UNLOCK], 2, NULL, p, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) h->c->broken = true; /* the session ends it */
  PQclear(r);
  release(s, h->c);
  free(h);
}

/* ------------------------------------------------------------------ open and close */

static void op_close(void *ctx) {
  pg *s = ctx;
  if (!s) return;
  while (s->idle) {
    conn *c = s->idle;
    s->idle = c->next;
    conn_free(c);
  }
  if (s->presence) { /* a clean exit leaves no row to sweep */
    const char *p[] = {s->worker_id};
    PGresult *r = PQexecParams(s->presence, "DELETE FROM workers WHERE id=$1", 1, NULL, p, NULL,
                               NULL, 0);
    PQclear(r);
    PQfinish(s->presence);
  }
  cc_store_errs_destroy(&s->errs);
  pthread_mutex_destroy(&s->mu);
  pthread_mutex_destroy(&s->presence_mu);
  pthread_cond_destroy(&s->probe_cv);
  free(s->uri);
  free(s);
}

static void op_last_error(void *ctx, char *buf, size_t len) {
  cc_store_errs_copy(&((pg *)ctx)->errs, buf, len);
}

static cc_status op_integrity_check(void *ctx) {
  pg *s = ctx;
  cc_status rc;
  /* The server keeps its own consistency; what can be checked here is that it answers and
   * that the schema is ours. */
  CALL(s, simple(s, c,
                 "SELECT 1 FROM cc_schema, users, tokens, projects, cache, records, workers "
                 "LIMIT 0",
                 "integrity check"));
  return rc;
}

static const cc_store_ops PG_OPS = {
    .close = op_close,
    .last_error = op_last_error,
    .user_ensure = op_user_ensure,
    .token_add = op_token_add,
    .token_lookup = op_token_lookup,
    .token_list = op_token_list,
    .token_revoke = op_token_revoke,
    .project_ensure = op_project_ensure,
    .project_get = op_project_get,
    .project_list = op_project_list,
    .project_delete = op_project_delete,
    .project_generation = op_project_generation,
    .project_bump_generation = op_project_bump_generation,
    .project_sandbox = op_project_sandbox,
    .project_set_sandbox = op_project_set_sandbox,
    .project_patch = op_project_patch,
    .cache_get = op_cache_get,
    .cache_put = op_cache_put,
    .cache_clear = op_cache_clear,
    .cache_count = op_cache_count,
    .record_insert = op_record_insert,
    .record_set_running = op_record_set_running,
    .record_finish = op_record_finish,
    .record_get = op_record_get,
    .history = op_history,
    .history_json = op_history_json,
    .recover = op_recover,
    .integrity_check = op_integrity_check,
    .project_lock = op_project_lock,
    .project_unlock = op_project_unlock,
    .sweep = op_sweep,
    .health = op_health,
    .name = "postgresql",
};

/* Creates or checks the schema under a transaction-level advisory lock. */
static cc_status setup(pg *s, conn *c) {
  cc_status rc = begin(s, c);
  if (rc) return rc;
  char lock[80];
  snprintf(lock, sizeof lock, "SELECT pg_advisory_xact_lock(%lld)", LOCK_MIGRATE);
  PGresult *r = PQexec(c->pg, lock);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) rc = dberr(s, c, r, "lock schema");
  PQclear(r);
  if (!rc) rc = simple(s, c, SCHEMA, "create schema");
  int version = 0;
  if (!rc) {
    r = PQexec(c->pg, "SELECT max(version) FROM cc_schema");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
      rc = dberr(s, c, r, "read schema version");
    else
      version = (int)col_ll(r, 0, 0);
    PQclear(r);
  }
  if (!rc && version > SCHEMA_VERSION)
    rc = fail(s, CC_INTERNAL, "store: database schema %d is newer than this program's (%d)",
              version, SCHEMA_VERSION);
  if (!rc && version == 0) rc = simple(s, c, "INSERT INTO cc_schema VALUES (1)", "set version");
  if (!rc) rc = commit(s, c);
  rollback(s, c);
  return rc;
}

cc_status cc_store_pg_open(const cc_store_options *opts, cc_store **out, char *errbuf,
                           size_t errlen) {
  *out = NULL;
  if (errbuf && errlen) errbuf[0] = 0;
  if (!opts || !opts->path || !*opts->path) {
    if (errbuf) snprintf(errbuf, errlen, "store: no database URI");
    return CC_BAD_REQUEST;
  }
  cc_store *h = calloc(1, sizeof *h);
  pg *s = calloc(1, sizeof *s);
  if (!h || !s || !(s->uri = cc_store_dup(opts->path))) {
    if (s) free(s->uri);
    free(h);
    free(s);
    if (errbuf) snprintf(errbuf, errlen, "store: out of memory");
    return CC_INTERNAL;
  }
  s->o = *opts;
  s->o.path = NULL;
  pthread_mutex_init(&s->mu, NULL);
  pthread_mutex_init(&s->presence_mu, NULL);
  pthread_cond_init(&s->probe_cv, NULL);
  cc_store_errs_init(&s->errs);
  s->max = opts->max_connections > 0 ? opts->max_connections : DEFAULT_CONNECTIONS;
  cc_status rc = CC_OK;
  unsigned char raw[8];
  if (!cc_store_options_normalise(&s->o)) {
    rc = fail(s, CC_BAD_REQUEST, "store: negative limit in options");
  } else if (cc_store_new_id(s->worker_id) != CC_OK || cc_platform_random(raw, sizeof raw)) {
    rc = fail(s, CC_INTERNAL, "store: platform random failed");
  } else {
    unsigned long long k = 0;
    for (int i = 0; i < 8; i++) k = k << 8 | raw[i];
    s->worker_key = (long long)(k >> 1); /* positive 63-bit */
    conn *c = NULL;
    if (!(rc = acquire(s, &c))) rc = setup(s, c);
    release(s, c);
  }
  if (!rc) {
    pthread_mutex_lock(&s->presence_mu);
    rc = presence_up(s);
    pthread_mutex_unlock(&s->presence_mu);
  }
  if (!rc && !cc_store_errs_start(&s->errs))
    rc = fail(s, CC_INTERNAL, "store: no thread-specific key left");
  if (rc) {
    if (errbuf) snprintf(errbuf, errlen, "%s", s->errs.open_err);
    op_close(s);
    free(h);
    return rc;
  }
  h->ops = &PG_OPS;
  h->ctx = s;
  *out = h;
  return CC_OK;
}
