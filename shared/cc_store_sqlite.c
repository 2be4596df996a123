/*
 * cc_store_sqlite: the SQLite back end of cc_store (see cc_store.h, docs/store.md) -- its
 * handle, statement cache, transactions, schema, open/close, maintenance and ops table.
 *
 * One connection per handle, opened in WAL mode with foreign keys on and a busy timeout;
 * a pthread mutex serialises every call on the handle, so the worker may share one handle
 * between its threads.  Every call that writes more than one row runs inside BEGIN
 * IMMEDIATE ... COMMIT (single-statement writes are their own transaction), so a process
 * killed at any point leaves either the whole change or none of it.  Prepared statements
 * are cached per handle (sq_prep/sq_done).
 *
 * The operations live beside this file: users, tokens and projects in
 * cc_store_sqlite_projects.c; the exec cache, execution records and history in
 * cc_store_sqlite_records.c.  What the three share is in cc_store_sqlite_int.h.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_store_sqlite_int.h"

#define SCHEMA_VERSION 2

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS users("
    "  name TEXT PRIMARY KEY,"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS tokens("
    "  id INTEGER PRIMARY KEY,"
    "  user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,"
    "  hash TEXT NOT NULL UNIQUE,"
    "  label TEXT NOT NULL DEFAULT '',"
    "  created_at INTEGER NOT NULL,"
    "  revoked_at INTEGER);"
    "CREATE INDEX IF NOT EXISTS tokens_by_user ON tokens(user);"
    "CREATE TABLE IF NOT EXISTS projects("
    "  id INTEGER PRIMARY KEY,"
    "  owner TEXT NOT NULL,"
    "  project TEXT NOT NULL,"
    "  generation INTEGER NOT NULL DEFAULT 0,"
    "  sandbox_id TEXT,"
    "  metadata TEXT NOT NULL DEFAULT '{}',"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  UNIQUE(owner, project));"
    "CREATE TABLE IF NOT EXISTS cache("
    "  project_rowid INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
    "  key TEXT NOT NULL,"
    "  cmd TEXT NOT NULL,"
    "  generation INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  result TEXT NOT NULL,"
    "  PRIMARY KEY(project_rowid, key));"
    "CREATE INDEX IF NOT EXISTS cache_by_cmd ON cache(project_rowid, cmd);"
    "CREATE TABLE IF NOT EXISTS records("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  id TEXT NOT NULL UNIQUE,"
    "  project_rowid INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
    "  op TEXT NOT NULL,"
    "  input TEXT,"
    "  status TEXT NOT NULL CHECK(status IN ('pending','running','success','failed','error',"
    "                                        'timeout','canceled')),"
    "  result TEXT,"
    "  error_code TEXT,"
    "  error_message TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  finished_at INTEGER,"
    "  body TEXT);"
    "CREATE INDEX IF NOT EXISTS records_by_project ON records(project_rowid, seq);"
    "CREATE INDEX IF NOT EXISTS records_open ON records(status)"
    "  WHERE status IN ('pending','running');";

/* Schema 1 -> 2: records.body, the finished record's JSON (rows of schema 1 have none). */
static const char MIGRATE_1_TO_2[] = "ALTER TABLE records ADD COLUMN body TEXT";

/* ---- statements and transactions (all called with the mutex held) ---- */

/* A failed SQLite call: CC_INTERNAL with SQLite's message. */
cc_status sq_dberr(sq *s, const char *what) {
  return fail(s, CC_INTERNAL, "store: %s: %s", what, sqlite3_errmsg(s->db));
}

/* Hands out a prepared statement for sql (a string literal): a cached one when it is not
 * in use, else a new one (kept in the cache while there is room).  Give it back with
 * sq_done(). */
cc_status sq_prep(sq *s, const char *sql, sqlite3_stmt **st) {
  for (int i = 0; i < s->nstmts; i++) {
    if (s->stmts[i].sql == sql && !s->stmts[i].busy) {
      s->stmts[i].busy = true;
      *st = s->stmts[i].st;
      return CC_OK;
    }
  }
  if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK) {
    sqlite3_finalize(*st);
    *st = NULL;
    return sq_dberr(s, "prepare");
  }
  if (s->nstmts < STMT_CACHE) s->stmts[s->nstmts++] = (cached_stmt){sql, *st, true};
  return CC_OK;
}

/* Gives a statement from sq_prep() back: reset and unbound when cached (so it holds no read
 * lock), finalized otherwise.  Accepts NULL. */
void sq_done(sq *s, sqlite3_stmt *st) {
  if (!st) return;
  for (int i = 0; i < s->nstmts; i++) {
    if (s->stmts[i].st == st) {
      sqlite3_reset(st);
      sqlite3_clear_bindings(st);
      s->stmts[i].busy = false;
      return;
    }
  }
  sqlite3_finalize(st);
}

void sq_bind_text(sqlite3_stmt *st, int i, const char *v) {
  if (v)
    sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, i);
}

static cc_status exec_sql(sq *s, const char *sql) {
  char *msg = NULL;
  if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    cc_status st = fail(s, CC_INTERNAL, "store: %s: %s", sql, msg ? msg : "?");
    sqlite3_free(msg);
    return st;
  }
  return CC_OK;
}

static const char SQL_BEGIN[] = "BEGIN IMMEDIATE", SQL_COMMIT[] = "COMMIT",
                  SQL_ROLLBACK[] = "ROLLBACK";

/* Runs one cached statement that returns no rows. */
static cc_status run1(sq *s, const char *sql, const char *what) {
  sqlite3_stmt *st;
  cc_status rc = sq_prep(s, sql, &st);
  if (rc) return rc;
  if (sqlite3_step(st) != SQLITE_DONE) rc = sq_dberr(s, what);
  sq_done(s, st);
  return rc;
}

cc_status sq_begin(sq *s) {
  return run1(s, SQL_BEGIN, "begin");
}

void sq_rollback(sq *s) {
  if (!sqlite3_get_autocommit(s->db)) run1(s, SQL_ROLLBACK, "rollback");
}

/* Commits, or rolls back when the commit fails. */
cc_status sq_commit(sq *s) {
  cc_status rc = run1(s, SQL_COMMIT, "commit");
  if (rc) sq_rollback(s);
  return rc;
}

/* The rowid of (owner, project); CC_NOT_FOUND when missing. */
cc_status sq_find_project(sq *s, const char *owner, const char *project, int64_t *rowid) {
  sqlite3_stmt *st;
  cc_status rc = sq_prep(s, "SELECT id FROM projects WHERE owner=?1 AND project=?2", &st);
  if (rc) return rc;
  sq_bind_text(st, 1, owner);
  sq_bind_text(st, 2, project);
  int r = sqlite3_step(st);
  if (r == SQLITE_ROW) {
    *rowid = sqlite3_column_int64(st, 0);
    rc = CC_OK;
  } else if (r == SQLITE_DONE) {
    rc = fail(s, CC_NOT_FOUND, "store: no project %s", project);
  } else {
    rc = sq_dberr(s, "find project");
  }
  sq_done(s, st);
  return rc;
}

/* ===================== the operations (each takes the mutex) ===================== */

/* The others are in cc_store_sqlite_projects.c and cc_store_sqlite_records.c. */

static void op_close(void *ctx) {
  sq *s = ctx;
  if (!s) return;
  for (int i = 0; i < s->nstmts; i++) sqlite3_finalize(s->stmts[i].st);
  sqlite3_close(s->db);
  cc_store_errs_destroy(&s->errs);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

static void op_last_error(void *ctx, char *buf, size_t len) {
  sq *s = ctx;
  if (!buf || !len) return;
  cc_store_errs_copy(&s->errs, buf, len);
}

/* ---- maintenance ---- */

static cc_status do_recover(sq *s, int64_t *count) {
  sqlite3_stmt *st;
  cc_status rc = sq_prep(s,
                         "UPDATE records SET status='error', error_code='internal', "
                         "error_message=?1, finished_at=?2 WHERE status IN ('pending','running')",
                         &st);
  if (rc) return rc;
  sq_bind_text(st, 1, CC_STORE_RECOVER_MESSAGE);
  sqlite3_bind_int64(st, 2, now(s));
  if (sqlite3_step(st) != SQLITE_DONE)
    rc = sq_dberr(s, "recover records");
  else if (count)
    *count = sqlite3_changes(s->db);
  sq_done(s, st);
  return rc;
}

static cc_status op_recover(void *ctx, int64_t *count) {
  sq *s = ctx;
  if (count) *count = 0;
  LOCK(s);
  cc_status rc = do_recover(s, count);
  UNLOCK(s);
  return rc;
}

static cc_status do_integrity_check(sq *s) {
  sqlite3_stmt *st;
  cc_status rc = sq_prep(s, "PRAGMA integrity_check", &st);
  if (rc) return rc;
  int r = sqlite3_step(st);
  if (r != SQLITE_ROW) {
    rc = sq_dberr(s, "integrity_check");
  } else {
    const char *first = (const char *)sqlite3_column_text(st, 0);
    if (!first || strcmp(first, "ok") != 0 || sqlite3_step(st) != SQLITE_DONE)
      rc = fail(s, CC_INTERNAL, "store: integrity_check: %s", first ? first : "?");
  }
  sq_done(s, st);
  return rc;
}

static cc_status op_integrity_check(void *ctx) {
  sq *s = ctx;
  LOCK(s);
  cc_status rc = do_integrity_check(s);
  UNLOCK(s);
  return rc;
}

/* The table of the back end: op_* are this file's, sq_* those of the files beside it. */
static const cc_store_ops SQLITE_OPS = {
    .close = op_close,
    .last_error = op_last_error,
    .user_ensure = sq_user_ensure,
    .token_add = sq_token_add,
    .token_lookup = sq_token_lookup,
    .token_list = sq_token_list,
    .token_revoke = sq_token_revoke,
    .project_ensure = sq_project_ensure,
    .project_get = sq_project_get,
    .project_list = sq_project_list,
    .project_delete = sq_project_delete,
    .project_generation = sq_project_generation,
    .project_bump_generation = sq_project_bump_generation,
    .project_sandbox = sq_project_sandbox,
    .project_set_sandbox = sq_project_set_sandbox,
    .project_patch = sq_project_patch,
    .cache_get = sq_cache_get,
    .cache_put = sq_cache_put,
    .cache_clear = sq_cache_clear,
    .cache_count = sq_cache_count,
    .record_insert = sq_record_insert,
    .record_set_running = sq_record_set_running,
    .record_finish = sq_record_finish,
    .record_get = sq_record_get,
    .history = sq_history,
    .history_json = sq_history_json,
    .recover = op_recover,
    .integrity_check = op_integrity_check,
    .name = "sqlite",
};

/* ===================== public entry points ===================== */

/* Sets the connection up and creates or checks the schema. */
static cc_status setup(sq *s) {
  sqlite3_stmt *st;
  cc_status rc;
  sqlite3_busy_timeout(s->db, s->o.busy_timeout_ms);
  sqlite3_extended_result_codes(s->db, 0);
  if ((rc = sq_prep(s, "PRAGMA journal_mode=WAL", &st))) return rc;
  const char *mode =
      sqlite3_step(st) == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
  if (!mode || strcmp(mode, "wal") != 0)
    rc = fail(s, CC_INTERNAL, "store: cannot switch %s to WAL mode (%s)", "database",
              mode ? mode : sqlite3_errmsg(s->db));
  sq_done(s, st);
  if (rc) return rc;
  if ((rc = exec_sql(s, "PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL"))) return rc;
  if ((rc = sq_begin(s))) return rc;
  int version = -1;
  if (!(rc = sq_prep(s, "PRAGMA user_version", &st))) {
    if (sqlite3_step(st) == SQLITE_ROW) version = sqlite3_column_int(st, 0);
    sq_done(s, st);
    if (version < 0)
      rc = sq_dberr(s, "read schema version");
    else if (version > SCHEMA_VERSION)
      rc = fail(s, CC_INTERNAL, "store: database schema %d is newer than this program's (%d)",
                version, SCHEMA_VERSION);
  }
  if (!rc && version == 1) rc = exec_sql(s, MIGRATE_1_TO_2);
  if (!rc && version < SCHEMA_VERSION) {
    rc = exec_sql(s, SCHEMA);
    if (!rc) rc = exec_sql(s, "PRAGMA user_version=2");
  }
  if (!rc) rc = sq_commit(s);
  sq_rollback(s);
  return rc;
}

cc_status cc_store_sqlite_open(const cc_store_options *opts, cc_store **out, char *errbuf,
                               size_t errlen) {
  *out = NULL;
  if (errbuf && errlen) errbuf[0] = 0;
  if (!opts || !opts->path || !*opts->path) {
    if (errbuf) snprintf(errbuf, errlen, "store: no database path");
    return CC_BAD_REQUEST;
  }
  cc_store *h = calloc(1, sizeof *h);
  sq *s = calloc(1, sizeof *s);
  if (!h || !s) {
    free(h);
    free(s);
    if (errbuf) snprintf(errbuf, errlen, "store: out of memory");
    return CC_INTERNAL;
  }
  s->o = *opts;
  s->o.path = NULL; /* not kept: the caller owns the string */
  if (!cc_store_options_normalise(&s->o)) {
    free(h);
    free(s);
    if (errbuf) snprintf(errbuf, errlen, "store: negative limit in options");
    return CC_BAD_REQUEST;
  }
  pthread_mutex_init(&s->mu, NULL);
  cc_store_errs_init(&s->errs);
  cc_status rc;
  if (sqlite3_open_v2(opts->path, &s->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      NULL) != SQLITE_OK) {
    rc = fail(s, CC_INTERNAL, "store: cannot open %s: %s", opts->path,
              s->db ? sqlite3_errmsg(s->db) : "out of memory");
  } else {
    rc = setup(s);
  }
  if (!rc && !cc_store_errs_start(&s->errs)) {
    rc = fail(s, CC_INTERNAL, "store: no thread-specific key left");
  }
  if (rc) {
    if (errbuf) snprintf(errbuf, errlen, "%s", s->errs.open_err);
    op_close(s);
    free(h);
    return rc;
  }
  h->ops = &SQLITE_OPS;
  h->ctx = s;
  *out = h;
  return CC_OK;
}
