/*
 * cc_store_pg: the PostgreSQL back end of cc_store (see cc_store.h, docs/store.md), for
 * several workers on one database -- its handle, connection pool, the running of statements,
 * transactions, schema, open/close and ops table.
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
 * Several workers: each handle registers as a worker and holds a session advisory lock on its
 * own key for as long as it lives, so that the sweep can tell which workers died
 * (cc_store_pg_workers.c, with the project locks).
 *
 * Schema: created and migrated under a transaction-level advisory lock, so workers starting
 * at once do it one after the other; version in cc_schema.
 *
 * The operations live beside this file: users, tokens and projects in cc_store_pg_projects.c;
 * the exec cache, execution records and history in cc_store_pg_records.c.  What the four
 * files share (the statements, the handle, pg_run and its kin) is in cc_store_pg_int.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cc_platform.h"
#include "cc_store_pg_int.h"

#define SCHEMA_VERSION 1
#define DEFAULT_CONNECTIONS 32
#define LOCK_MIGRATE 0x63637363LL /* "ccsc": schema creation, transaction-level */

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

/* The SQL of each statement of STATEMENTS (cc_store_pg_int.h), prepared once per connection
 * as "q<index>". */
const char *const pg_sql[Q_COUNT] = {
#define STMT_SQL(name, sql) sql,
    STATEMENTS(STMT_SQL)
#undef STMT_SQL
};

/* ------------------------------------------------------------------ the connection pool */

void pg_msg_of(PGconn *c, char *buf, size_t n) {
  const char *m = c ? PQerrorMessage(c) : "out of memory";
  snprintf(buf, n, "%s", m && *m ? m : "connection lost");
  size_t l = strlen(buf);
  while (l && (buf[l - 1] == '\n' || buf[l - 1] == ' ')) buf[--l] = 0;
}

/* Opens a libpq connection to the handle's URI (a short connect timeout: fail fast). */
PGconn *pg_connect(pg *s) {
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
  PGconn *p = c ? pg_connect(s) : NULL;
  bool up = c && p && PQstatus(p) == CONNECTION_OK;
  char m[256] = "";
  if (!up) pg_msg_of(p, m, sizeof m);
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
cc_status pg_acquire(pg *s, conn **out) {
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
void pg_release(pg *s, conn *c) {
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

/* ------------------------------------------------------------------ running statements */

/* A failed statement: CC_UPSTREAM_ERROR when the connection is gone (and marks it broken),
 * else CC_INTERNAL with the server's message. */
cc_status pg_dberr(pg *s, conn *c, const PGresult *r, const char *what) {
  char m[256];
  const char *em = r ? PQresultErrorMessage(r) : NULL;
  if (em && *em)
    snprintf(m, sizeof m, "%s", em);
  else
    pg_msg_of(c->pg, m, sizeof m);
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
cc_status pg_run(pg *s, conn *c, int q, int n, const char *const *params, PGresult **res,
                 const char *what, char sqlstate[6]) {
  *res = NULL;
  if (sqlstate) sqlstate[0] = 0;
  c->in_call++;
  char name[16];
  snprintf(name, sizeof name, "q%d", q);
  if (!c->prepared[q]) {
    PGresult *p = PQprepare(c->pg, name, pg_sql[q], 0, NULL);
    if (PQresultStatus(p) != PGRES_COMMAND_OK) {
      cc_status rc = pg_dberr(s, c, p, what);
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
  cc_status rc = pg_dberr(s, c, r, what);
  PQclear(r);
  return rc;
}

/* Runs SQL text without parameters (schema, transaction control, checks). */
cc_status pg_simple(pg *s, conn *c, const char *sql, const char *what) {
  c->in_call++;
  PGresult *r = PQexec(c->pg, sql);
  ExecStatusType t = PQresultStatus(r);
  cc_status rc = t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK ? CC_OK : pg_dberr(s, c, r, what);
  PQclear(r);
  return rc;
}

cc_status pg_begin(pg *s, conn *c) {
  return pg_simple(s, c, "BEGIN", "begin");
}
cc_status pg_commit(pg *s, conn *c) {
  return pg_simple(s, c, "COMMIT", "commit");
}
void pg_rollback(pg *s, conn *c) {
  if (PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
    PGresult *r = PQexec(c->pg, "ROLLBACK");
    PQclear(r);
  }
  (void)s;
}

/* The id of (owner, project); CC_NOT_FOUND when missing. */
cc_status pg_find_project(pg *s, conn *c, const char *owner, const char *project,
                          long long *id) {
  const char *p[] = {owner, project};
  PGresult *r;
  cc_status rc = pg_run(s, c, Q_PROJECT_FIND, 2, p, &r, "find project", NULL);
  if (rc) return rc;
  if (PQntuples(r) == 1)
    *id = pg_col_ll(r, 0, 0);
  else
    rc = fail(s, CC_NOT_FOUND, "store: no project %s", project);
  PQclear(r);
  return rc;
}

/* ------------------------------------------------------------------ open and close */

/* The other operations are in cc_store_pg_workers.c, cc_store_pg_projects.c and
 * cc_store_pg_records.c. */

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
  CALL(s, pg_simple(s, c,
                    "SELECT 1 FROM cc_schema, users, tokens, projects, cache, records, workers "
                    "LIMIT 0",
                    "integrity check"));
  return rc;
}

/* The table of the back end: op_* are this file's, pg_* those of the files beside it. */
static const cc_store_ops PG_OPS = {
    .close = op_close,
    .last_error = op_last_error,
    .user_ensure = pg_user_ensure,
    .token_add = pg_token_add,
    .token_lookup = pg_token_lookup,
    .token_list = pg_token_list,
    .token_revoke = pg_token_revoke,
    .project_ensure = pg_project_ensure,
    .project_get = pg_project_get,
    .project_list = pg_project_list,
    .project_delete = pg_project_delete,
    .project_generation = pg_project_generation,
    .project_bump_generation = pg_project_bump_generation,
    .project_sandbox = pg_project_sandbox,
    .project_set_sandbox = pg_project_set_sandbox,
    .project_patch = pg_project_patch,
    .cache_get = pg_cache_get,
    .cache_put = pg_cache_put,
    .cache_clear = pg_cache_clear,
    .cache_count = pg_cache_count,
    .record_insert = pg_record_insert,
    .record_set_running = pg_record_set_running,
    .record_finish = pg_record_finish,
    .record_get = pg_record_get,
    .history = pg_history,
    .history_json = pg_history_json,
    .recover = pg_recover,
    .integrity_check = op_integrity_check,
    .project_lock = pg_project_lock,
    .project_unlock = pg_project_unlock,
    .sweep = pg_sweep,
    .health = pg_health,
    .name = "postgresql",
};

/* Creates or checks the schema under a transaction-level advisory lock. */
static cc_status setup(pg *s, conn *c) {
  cc_status rc = pg_begin(s, c);
  if (rc) return rc;
  char lock[80];
  snprintf(lock, sizeof lock, "SELECT pg_advisory_xact_lock(%lld)", LOCK_MIGRATE);
  PGresult *r = PQexec(c->pg, lock);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) rc = pg_dberr(s, c, r, "lock schema");
  PQclear(r);
  if (!rc) rc = pg_simple(s, c, SCHEMA, "create schema");
  int version = 0;
  if (!rc) {
    r = PQexec(c->pg, "SELECT max(version) FROM cc_schema");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
      rc = pg_dberr(s, c, r, "read schema version");
    else
      version = (int)pg_col_ll(r, 0, 0);
    PQclear(r);
  }
  if (!rc && version > SCHEMA_VERSION)
    rc = fail(s, CC_INTERNAL, "store: database schema %d is newer than this program's (%d)",
              version, SCHEMA_VERSION);
  if (!rc && version == 0) rc = pg_simple(s, c, "INSERT INTO cc_schema VALUES (1)", "set version");
  if (!rc) rc = pg_commit(s, c);
  pg_rollback(s, c);
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
    if (!(rc = pg_acquire(s, &c))) rc = setup(s, c);
    pg_release(s, c);
  }
  if (!rc) {
    pthread_mutex_lock(&s->presence_mu);
    rc = pg_presence_up(s);
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
