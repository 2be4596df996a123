/*
 * cc_store_sqlite: the SQLite back end of cc_store (see cc_store.h, docs/store.md).
 *
 * One connection per handle, opened in WAL mode with foreign keys on and a busy timeout;
 * a pthread mutex serialises every call on the handle, so the worker may share one handle
 * between its threads.  Every call that writes more than one row runs inside BEGIN
 * IMMEDIATE ... COMMIT (single-statement writes are their own transaction), so a process
 * killed at any point leaves either the whole change or none of it.  Prepared statements
 * are cached per handle (prep/done).
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_store_int.h"

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

/* Columns of an ExecutionRecord row, in the order row_body() reads them (COL_*). */
#define RECORD_COLUMNS                                                                  \
  "r.id, p.project, r.op, r.input, r.status, r.result, r.error_code, r.error_message, " \
  "r.created_at, r.finished_at, r.body"
enum {
  COL_ID,
  COL_PROJECT,
  COL_OP,
  COL_INPUT,
  COL_STATUS,
  COL_RESULT,
  COL_ERROR_CODE,
  COL_ERROR_MESSAGE,
  COL_CREATED_AT,
  COL_FINISHED_AT,
  COL_BODY
};

/* Prepared statements are kept for reuse, keyed by the address of their SQL text (every
 * SQL string here is a literal, so one call site is one key). */
#define STMT_CACHE 64

typedef struct {
  const char *sql;
  sqlite3_stmt *st;
  bool busy; /* handed out by prep() and not yet given back by done() */
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

/* A failed SQLite call: CC_INTERNAL with SQLite's message. */
static cc_status dberr(sq *s, const char *what) {
  return fail(s, CC_INTERNAL, "store: %s: %s", what, sqlite3_errmsg(s->db));
}


/* Hands out a prepared statement for sql (a string literal): a cached one when it is not
 * in use, else a new one (kept in the cache while there is room).  Give it back with done(). */
static cc_status prep(sq *s, const char *sql, sqlite3_stmt **st) {
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
    return dberr(s, "prepare");
  }
  if (s->nstmts < STMT_CACHE) s->stmts[s->nstmts++] = (cached_stmt){sql, *st, true};
  return CC_OK;
}

/* Gives a statement from prep() back: reset and unbound when cached (so it holds no read
 * lock), finalized otherwise.  Accepts NULL. */
static void done(sq *s, sqlite3_stmt *st) {
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

static void bind_text(sqlite3_stmt *st, int i, const char *v) {
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
  cc_status rc = prep(s, sql, &st);
  if (rc) return rc;
  if (sqlite3_step(st) != SQLITE_DONE) rc = dberr(s, what);
  done(s, st);
  return rc;
}

static cc_status begin(sq *s) {
  return run1(s, SQL_BEGIN, "begin");
}

static void rollback(sq *s) {
  if (!sqlite3_get_autocommit(s->db)) run1(s, SQL_ROLLBACK, "rollback");
}

/* Commits, or rolls back when the commit fails. */
static cc_status commit(sq *s) {
  cc_status rc = run1(s, SQL_COMMIT, "commit");
  if (rc) rollback(s);
  return rc;
}

/* Parses a stored JSON column; NULL column gives *v = NULL. */
static cc_status column_json(sq *s, sqlite3_stmt *st, int col, cJSON **v) {
  *v = NULL;
  const char *t = (const char *)sqlite3_column_text(st, col);
  if (!t) return CC_OK;
  if (!(*v = cJSON_Parse(t))) return fail(s, CC_INTERNAL, "store: corrupt JSON in database");
  return CC_OK;
}

/* The rowid of (owner, project); CC_NOT_FOUND when missing. */
static cc_status find_project(sq *s, const char *owner, const char *project, int64_t *rowid) {
  sqlite3_stmt *st;
  cc_status rc = prep(s, "SELECT id FROM projects WHERE owner=?1 AND project=?2", &st);
  if (rc) return rc;
  bind_text(st, 1, owner);
  bind_text(st, 2, project);
  int r = sqlite3_step(st);
  if (r == SQLITE_ROW) {
    *rowid = sqlite3_column_int64(st, 0);
    rc = CC_OK;
  } else if (r == SQLITE_DONE) {
    rc = fail(s, CC_NOT_FOUND, "store: no project %s", project);
  } else {
    rc = dberr(s, "find project");
  }
  done(s, st);
  return rc;
}

/* ---- records ---- */

/* The ExecutionRecord text of a row selected with RECORD_COLUMNS: the stored body, or one
 * built from the columns.  *text points into the row (valid until the statement steps) or
 * into *owned, which the caller frees (NULL when nothing was built). */
static cc_status row_body(sq *s, sqlite3_stmt *st, const char **text, size_t *len, char **owned) {
  *owned = NULL;
  if (sqlite3_column_type(st, COL_BODY) != SQLITE_NULL) {
    *text = (const char *)sqlite3_column_text(st, COL_BODY);
    *len = (size_t)sqlite3_column_bytes(st, COL_BODY);
    return *text ? CC_OK : fail(s, CC_INTERNAL, "store: out of memory");
  }
  cc_store_record_fields f = {
      .id = (const char *)sqlite3_column_text(st, COL_ID),
      .project = (const char *)sqlite3_column_text(st, COL_PROJECT),
      .op = (const char *)sqlite3_column_text(st, COL_OP),
      .status = (const char *)sqlite3_column_text(st, COL_STATUS),
      .input = (const char *)sqlite3_column_text(st, COL_INPUT),
      .result = (const char *)sqlite3_column_text(st, COL_RESULT),
      .error_code = (const char *)sqlite3_column_text(st, COL_ERROR_CODE),
      .error_message = (const char *)sqlite3_column_text(st, COL_ERROR_MESSAGE),
      .created_at = sqlite3_column_int64(st, COL_CREATED_AT),
      .finished_at = sqlite3_column_type(st, COL_FINISHED_AT) == SQLITE_NULL
                         ? -1
                         : sqlite3_column_int64(st, COL_FINISHED_AT),
  };
  cc_status rc = cc_store_record_text_from_row(&s->errs, &f, owned);
  if (rc) return rc;
  *text = *owned;
  *len = strlen(*owned);
  return CC_OK;
}

/* Parses the ExecutionRecord of a row selected with RECORD_COLUMNS into a new tree. */
static cc_status row_to_record(sq *s, sqlite3_stmt *st, cJSON **out) {
  const char *text;
  size_t len;
  char *owned;
  cc_status rc = row_body(s, st, &text, &len, &owned);
  if (rc) return rc;
  *out = cJSON_ParseWithLength(text, len);
  free(owned);
  return *out ? CC_OK : fail(s, CC_INTERNAL, "store: corrupt JSON in database");
}

/* ---- projects ---- */

/* ProjectInfo of the project at rowid (cc_store_build_info makes it from the row). */
static cc_status build_info(sq *s, int64_t rowid, cJSON **out) {
  *out = NULL;
  sqlite3_stmt *st = NULL, *last = NULL;
  cc_status rc = prep(s,
                      "SELECT project, sandbox_id, metadata, created_at, updated_at, generation "
                      "FROM projects WHERE id=?1",
                      &st);
  if (rc) goto out;
  sqlite3_bind_int64(st, 1, rowid);
  int r = sqlite3_step(st);
  if (r != SQLITE_ROW) {
    rc = r == SQLITE_DONE ? fail(s, CC_NOT_FOUND, "store: project vanished")
                          : dberr(s, "read project");
    goto out;
  }
  if ((rc = prep(s,
                 "SELECT id, op, status, created_at FROM records WHERE project_rowid=?1 "
                 "ORDER BY seq DESC LIMIT 1",
                 &last)))
    goto out;
  sqlite3_bind_int64(last, 1, rowid);
  r = sqlite3_step(last);
  if (r != SQLITE_ROW && r != SQLITE_DONE) {
    rc = dberr(s, "read last execution");
    goto out;
  }
  cc_store_last_record lr = {0};
  if (r == SQLITE_ROW)
    lr = (cc_store_last_record){(const char *)sqlite3_column_text(last, 0),
                                (const char *)sqlite3_column_text(last, 1),
                                (const char *)sqlite3_column_text(last, 2),
                                sqlite3_column_int64(last, 3)};
  cc_store_project_row row = {
      .project = (const char *)sqlite3_column_text(st, 0),
      .sandbox_id = (const char *)sqlite3_column_text(st, 1),
      .metadata = (const char *)sqlite3_column_text(st, 2),
      .created_at = sqlite3_column_int64(st, 3),
      .updated_at = sqlite3_column_int64(st, 4),
      .generation = sqlite3_column_int64(st, 5),
      .last = r == SQLITE_ROW ? &lr : NULL,
  };
  rc = cc_store_build_info(&s->errs, &row, out);
out:
  done(s, st);
  done(s, last);
  return rc;
}

/* ===================== the operations (each takes the mutex) ===================== */

#define LOCK(s) pthread_mutex_lock(&(s)->mu)
#define UNLOCK(s) pthread_mutex_unlock(&(s)->mu)

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

/* ---- users and tokens ---- */

static cc_status do_user_ensure(sq *s, const char *user, bool *created) {
  cc_status rc = check_name(s, "user", user);
  if (rc) return rc;
  sqlite3_stmt *st;
  if ((rc = prep(s, "INSERT OR IGNORE INTO users(name, created_at) VALUES(?1, ?2)", &st)))
    return rc;
  bind_text(st, 1, user);
  sqlite3_bind_int64(st, 2, now(s));
  if (sqlite3_step(st) != SQLITE_DONE)
    rc = dberr(s, "create user");
  else if (created)
    *created = sqlite3_changes(s->db) == 1;
  done(s, st);
  return rc;
}

static cc_status op_user_ensure(void *ctx, const char *user, bool *created) {
  sq *s = ctx;
  if (created) *created = false;
  LOCK(s);
  cc_status rc = do_user_ensure(s, user, created);
  UNLOCK(s);
  return rc;
}

static cc_status do_token_add(sq *s, const char *user, const char *hash, const char *label,
                              int64_t *token_id) {
  char h[CC_STORE_NAME_MAX + 1];
  sqlite3_stmt *st = NULL;
  cc_status rc = check_name(s, "user", user);
  if (!rc) rc = norm_hash(s, hash, h);
  if (!rc && label && strlen(label) > CC_STORE_NAME_MAX)
    rc = fail(s, CC_BAD_REQUEST, "store: token label longer than %d bytes", CC_STORE_NAME_MAX);
  if (rc) return rc;
  if ((rc = begin(s))) return rc;
  if ((rc = prep(s, "SELECT 1 FROM users WHERE name=?1", &st))) goto out;
  bind_text(st, 1, user);
  int r = sqlite3_step(st);
  if (r != SQLITE_ROW) {
    rc =
        r == SQLITE_DONE ? fail(s, CC_NOT_FOUND, "store: no user %s", user) : dberr(s, "find user");
    goto out;
  }
  done(s, st);
  if ((rc = prep(s, "INSERT INTO tokens(user, hash, label, created_at) VALUES(?1,?2,?3,?4)", &st)))
    goto out;
  bind_text(st, 1, user);
  bind_text(st, 2, h);
  bind_text(st, 3, label ? label : "");
  sqlite3_bind_int64(st, 4, now(s));
  r = sqlite3_step(st);
  if (r == SQLITE_CONSTRAINT) {
    rc = fail(s, CC_CONFLICT, "store: a token with this hash exists");
    goto out;
  }
  if (r != SQLITE_DONE) {
    rc = dberr(s, "add token");
    goto out;
  }
  int64_t id = sqlite3_last_insert_rowid(s->db);
  if ((rc = commit(s))) goto out;
  if (token_id) *token_id = id;
out:
  done(s, st);
  rollback(s);
  return rc;
}

static cc_status op_token_add(void *ctx, const char *user, const char *hash, const char *label,
                              int64_t *token_id) {
  sq *s = ctx;
  if (token_id) *token_id = 0;
  LOCK(s);
  cc_status rc = do_token_add(s, user, hash, label, token_id);
  UNLOCK(s);
  return rc;
}

static cc_status do_token_lookup(sq *s, const char *hash, char **user) {
  char h[CC_STORE_NAME_MAX + 1];
  if (norm_hash(s, hash, h)) return fail(s, CC_UNAUTHORIZED, "store: malformed token hash");
  sqlite3_stmt *st;
  cc_status rc = prep(s, "SELECT user FROM tokens WHERE hash=?1 AND revoked_at IS NULL", &st);
  if (rc) return rc;
  bind_text(st, 1, h);
  int r = sqlite3_step(st);
  if (r == SQLITE_ROW) {
    if (!(*user = dup_str((const char *)sqlite3_column_text(st, 0))))
      rc = fail(s, CC_INTERNAL, "store: out of memory");
  } else if (r == SQLITE_DONE) {
    rc = fail(s, CC_UNAUTHORIZED, "store: unknown or revoked token");
  } else {
    rc = dberr(s, "look up token");
  }
  done(s, st);
  return rc;
}

static cc_status op_token_lookup(void *ctx, const char *hash, char **user) {
  sq *s = ctx;
  *user = NULL;
  LOCK(s);
  cc_status rc = do_token_lookup(s, hash, user);
  UNLOCK(s);
  return rc;
}

static cc_status do_token_list(sq *s, const char *user, cJSON **out) {
  cc_status rc = check_name(s, "user", user);
  if (rc) return rc;
  sqlite3_stmt *st;
  if ((rc = prep(s,
                 "SELECT id, label, created_at, revoked_at FROM tokens WHERE user=?1 "
                 "ORDER BY id",
                 &st)))
    return rc;
  bind_text(st, 1, user);
  cJSON *arr = cJSON_CreateArray();
  bool ok = arr != NULL;
  int r;
  while (ok && (r = sqlite3_step(st)) == SQLITE_ROW) {
    cJSON *t = cJSON_CreateObject();
    ok = t && cJSON_AddItemToArray(arr, t) &&
         cJSON_AddNumberToObject(t, "id", (double)sqlite3_column_int64(st, 0)) &&
         cJSON_AddStringToObject(t, "label", (const char *)sqlite3_column_text(st, 1)) &&
         cJSON_AddNumberToObject(t, "createdAt", (double)sqlite3_column_int64(st, 2));
    if (ok && sqlite3_column_type(st, 3) != SQLITE_NULL)
      ok = cJSON_AddNumberToObject(t, "revokedAt", (double)sqlite3_column_int64(st, 3)) != NULL;
  }
  if (!ok)
    rc = fail(s, CC_INTERNAL, "store: out of memory");
  else if (r != SQLITE_DONE)
    rc = dberr(s, "list tokens");
  done(s, st);
  if (rc) {
    cJSON_Delete(arr);
    return rc;
  }
  *out = arr;
  return CC_OK;
}

static cc_status op_token_list(void *ctx, const char *user, cJSON **tokens) {
  sq *s = ctx;
  *tokens = NULL;
  LOCK(s);
  cc_status rc = do_token_list(s, user, tokens);
  UNLOCK(s);
  return rc;
}

static cc_status do_token_revoke(sq *s, const char *user, int64_t id) {
  cc_status rc = check_name(s, "user", user);
  if (rc) return rc;
  sqlite3_stmt *st;
  if ((rc = prep(s,
                 "UPDATE tokens SET revoked_at=COALESCE(revoked_at, ?1) "
                 "WHERE id=?2 AND user=?3",
                 &st)))
    return rc;
  sqlite3_bind_int64(st, 1, now(s));
  sqlite3_bind_int64(st, 2, id);
  bind_text(st, 3, user);
  if (sqlite3_step(st) != SQLITE_DONE)
    rc = dberr(s, "revoke token");
  else if (sqlite3_changes(s->db) == 0)
    rc = fail(s, CC_NOT_FOUND, "store: user %s has no token %lld", user, (long long)id);
  done(s, st);
  return rc;
}

static cc_status op_token_revoke(void *ctx, const char *user, int64_t token_id) {
  sq *s = ctx;
  LOCK(s);
  cc_status rc = do_token_revoke(s, user, token_id);
  UNLOCK(s);
  return rc;
}

/* ---- projects ---- */

static cc_status do_project_ensure(sq *s, const char *owner, const char *project, bool *created) {
  cc_status rc = check_owner_project(s, owner, project);
  if (rc) return rc;
  sqlite3_stmt *st = NULL;
  int64_t rowid;
  if ((rc = begin(s))) return rc;
  rc = find_project(s, owner, project, &rowid);
  if (rc != CC_NOT_FOUND) goto out; /* exists (CC_OK) or failed */
  if ((rc = prep(s, "SELECT count(*) FROM projects WHERE owner=?1", &st))) goto out;
  bind_text(st, 1, owner);
  if (sqlite3_step(st) != SQLITE_ROW) {
    rc = dberr(s, "count projects");
    goto out;
  }
  if (sqlite3_column_int64(st, 0) >= s->o.projects_per_owner) {
    rc = fail(s, CC_TOO_LARGE, "store: owner has the maximum of %d projects",
              s->o.projects_per_owner);
    goto out;
  }
  done(s, st);
  if ((rc = prep(s,
                 "INSERT INTO projects(owner, project, created_at, updated_at) "
                 "VALUES(?1, ?2, ?3, ?3)",
                 &st)))
    goto out;
  bind_text(st, 1, owner);
  bind_text(st, 2, project);
  sqlite3_bind_int64(st, 3, now(s));
  if (sqlite3_step(st) != SQLITE_DONE) {
    rc = dberr(s, "create project");
    goto out;
  }
  if ((rc = commit(s))) goto out;
  if (created) *created = true;
out:
  done(s, st);
  rollback(s);
  return rc;
}

static cc_status op_project_ensure(void *ctx, const char *owner, const char *project,
                                   bool *created) {
  sq *s = ctx;
  if (created) *created = false;
  LOCK(s);
  cc_status rc = do_project_ensure(s, owner, project, created);
  UNLOCK(s);
  return rc;
}

static cc_status do_project_get(sq *s, const char *owner, const char *project, cJSON **info) {
  int64_t rowid;
  cc_status rc = check_owner_project(s, owner, project);
  if (!rc) rc = find_project(s, owner, project, &rowid);
  if (!rc) rc = build_info(s, rowid, info);
  return rc;
}

static cc_status op_project_get(void *ctx, const char *owner, const char *project, cJSON **info) {
  sq *s = ctx;
  *info = NULL;
  LOCK(s);
  cc_status rc = do_project_get(s, owner, project, info);
  UNLOCK(s);
  return rc;
}

static cc_status do_project_list(sq *s, const char *owner, cJSON **out) {
  cc_status rc = check_name(s, "owner", owner);
  if (rc) return rc;
  sqlite3_stmt *st;
  if ((rc = prep(s, "SELECT id FROM projects WHERE owner=?1 ORDER BY project", &st))) return rc;
  bind_text(st, 1, owner);
  cJSON *list = cJSON_CreateObject();
  cJSON *arr = cJSON_AddArrayToObject(list, "projects");
  if (!arr) rc = fail(s, CC_INTERNAL, "store: out of memory");
  int r = SQLITE_DONE;
  while (!rc && (r = sqlite3_step(st)) == SQLITE_ROW) {
    cJSON *info;
    if ((rc = build_info(s, sqlite3_column_int64(st, 0), &info))) break;
    cJSON_AddItemToArray(arr, info);
  }
  if (!rc && r != SQLITE_DONE) rc = dberr(s, "list projects");
  done(s, st);
  if (rc) {
    cJSON_Delete(list);
    return rc;
  }
  *out = list;
  return CC_OK;
}

static cc_status op_project_list(void *ctx, const char *owner, cJSON **list) {
  sq *s = ctx;
  *list = NULL;
  LOCK(s);
  cc_status rc = do_project_list(s, owner, list);
  UNLOCK(s);
  return rc;
}

static cc_status do_project_delete(sq *s, const char *owner, const char *project, bool *deleted) {
  cc_status rc = check_owner_project(s, owner, project);
  if (rc) return rc;
  sqlite3_stmt *st;
  /* One statement: the foreign keys cascade to cache and records atomically. */
  if ((rc = prep(s, "DELETE FROM projects WHERE owner=?1 AND project=?2", &st))) return rc;
  bind_text(st, 1, owner);
  bind_text(st, 2, project);
  if (sqlite3_step(st) != SQLITE_DONE)
    rc = dberr(s, "delete project");
  else if (deleted)
    *deleted = sqlite3_changes(s->db) > 0;
  done(s, st);
  return rc;
}

static cc_status op_project_delete(void *ctx, const char *owner, const char *project,
                                   bool *deleted) {
  sq *s = ctx;
  if (deleted) *deleted = false;
  LOCK(s);
  cc_status rc = do_project_delete(s, owner, project, deleted);
  UNLOCK(s);
  return rc;
}

/* Reads one column of the project row (generation or sandbox_id). */
static cc_status read_project_column(sq *s, const char *owner, const char *project, const char *sql,
                                     sqlite3_stmt **st) {
  cc_status rc = check_owner_project(s, owner, project);
  if (rc) return rc;
  if ((rc = prep(s, sql, st))) return rc;
  bind_text(*st, 1, owner);
  bind_text(*st, 2, project);
  int r = sqlite3_step(*st);
  if (r == SQLITE_ROW) return CC_OK;
  rc = r == SQLITE_DONE ? fail(s, CC_NOT_FOUND, "store: no project %s", project)
                        : dberr(s, "read project");
  done(s, *st);
  *st = NULL;
  return rc;
}

static cc_status op_project_generation(void *ctx, const char *owner, const char *project,
                                       int64_t *generation) {
  sq *s = ctx;
  sqlite3_stmt *st;
  *generation = 0;
  LOCK(s);
  cc_status rc = read_project_column(
      s, owner, project, "SELECT generation FROM projects WHERE owner=?1 AND project=?2", &st);
  if (!rc) *generation = sqlite3_column_int64(st, 0);
  done(s, st);
  UNLOCK(s);
  return rc;
}

static cc_status op_project_sandbox(void *ctx, const char *owner, const char *project,
                                    char **sandbox_id) {
  sq *s = ctx;
  sqlite3_stmt *st;
  *sandbox_id = NULL;
  LOCK(s);
  cc_status rc = read_project_column(
      s, owner, project, "SELECT sandbox_id FROM projects WHERE owner=?1 AND project=?2", &st);
  if (!rc && sqlite3_column_type(st, 0) != SQLITE_NULL &&
      !(*sandbox_id = dup_str((const char *)sqlite3_column_text(st, 0))))
    rc = fail(s, CC_INTERNAL, "store: out of memory");
  done(s, st);
  UNLOCK(s);
  return rc;
}

/* Sets generation = generation + bump, sandbox_id (when set_sandbox) and updated_at in
 * one transaction, and reads the generation back. */
static cc_status update_project(sq *s, const char *owner, const char *project, bool set_sandbox,
                                const char *sandbox_id, int64_t *generation) {
  cc_status rc = check_owner_project(s, owner, project);
  if (!rc && set_sandbox && sandbox_id) rc = check_name(s, "sandboxId", sandbox_id);
  if (rc) return rc;
  sqlite3_stmt *st = NULL;
  if ((rc = begin(s))) return rc;
  const char *sql = set_sandbox
                        ? "UPDATE projects SET generation = generation + (sandbox_id IS NOT ?3), "
                          "sandbox_id = ?3, updated_at = ?4 WHERE owner=?1 AND project=?2"
                        : "UPDATE projects SET generation = generation + 1, updated_at = ?4 "
                          "WHERE owner=?1 AND project=?2";
  if ((rc = prep(s, sql, &st))) goto out;
  bind_text(st, 1, owner);
  bind_text(st, 2, project);
  if (set_sandbox) bind_text(st, 3, sandbox_id);
  sqlite3_bind_int64(st, 4, now(s));
  if (sqlite3_step(st) != SQLITE_DONE) {
    rc = dberr(s, "update project");
    goto out;
  }
  if (sqlite3_changes(s->db) == 0) {
    rc = fail(s, CC_NOT_FOUND, "store: no project %s", project);
    goto out;
  }
  done(s, st);
  if ((rc = prep(s, "SELECT generation FROM projects WHERE owner=?1 AND project=?2", &st)))
    goto out;
  bind_text(st, 1, owner);
  bind_text(st, 2, project);
  if (sqlite3_step(st) != SQLITE_ROW) {
    rc = dberr(s, "read generation");
    goto out;
  }
  int64_t g = sqlite3_column_int64(st, 0);
  if ((rc = commit(s))) goto out;
  if (generation) *generation = g;
out:
  done(s, st);
  rollback(s);
  return rc;
}

static cc_status op_project_bump_generation(void *ctx, const char *owner, const char *project,
                                            int64_t *generation) {
  sq *s = ctx;
  if (generation) *generation = 0;
  LOCK(s);
  cc_status rc = update_project(s, owner, project, false, NULL, generation);
  UNLOCK(s);
  return rc;
}

static cc_status op_project_set_sandbox(void *ctx, const char *owner, const char *project,
                                        const char *sandbox_id, int64_t *generation) {
  sq *s = ctx;
  if (generation) *generation = 0;
  LOCK(s);
  cc_status rc = update_project(s, owner, project, true, sandbox_id, generation);
  UNLOCK(s);
  return rc;
}

static cc_status do_project_patch(sq *s, const char *owner, const char *project, const cJSON *patch,
                                  cJSON **info) {
  cc_status rc = check_owner_project(s, owner, project);
  if (rc) return rc;
  cJSON *own = NULL, *ignored = NULL;
  if ((rc = cc_store_patch_split(&s->errs, patch, &own, &ignored))) return rc;
  sqlite3_stmt *st = NULL;
  char *text = NULL;
  int64_t rowid;
  if ((rc = begin(s))) goto out;
  if ((rc = find_project(s, owner, project, &rowid))) goto out;
  if ((rc = prep(s, "SELECT metadata FROM projects WHERE id=?1", &st))) goto out;
  sqlite3_bind_int64(st, 1, rowid);
  if (sqlite3_step(st) != SQLITE_ROW) {
    rc = dberr(s, "read metadata");
    goto out;
  }
  rc = cc_store_patch_metadata(&s->errs, (const char *)sqlite3_column_text(st, 0), own,
                               s->o.metadata_max_bytes, &text);
  done(s, st);
  st = NULL;
  if (rc) goto out;
  if ((rc = prep(s, "UPDATE projects SET metadata=?1, updated_at=?2 WHERE id=?3", &st))) goto out;
  bind_text(st, 1, text);
  sqlite3_bind_int64(st, 2, now(s));
  sqlite3_bind_int64(st, 3, rowid);
  if (sqlite3_step(st) != SQLITE_DONE) {
    rc = dberr(s, "update metadata");
    goto out;
  }
  if ((rc = commit(s))) goto out;
  if (info) rc = build_info(s, rowid, info);
  if (info && rc == CC_OK && cJSON_GetArraySize(ignored) > 0) {
    cJSON_AddItemToObject(*info, "ignored", ignored);
    ignored = NULL;
  }
out:
  done(s, st);
  rollback(s);
  cJSON_Delete(own);
  cJSON_Delete(ignored);
  cJSON_free(text);
  return rc;
}

static cc_status op_project_patch(void *ctx, const char *owner, const char *project,
                                  const cJSON *patch, cJSON **info) {
  sq *s = ctx;
  if (info) *info = NULL;
  LOCK(s);
  cc_status rc = do_project_patch(s, owner, project, patch, info);
  UNLOCK(s);
  return rc;
}

/* ---- exec cache ---- */

static cc_status do_cache_get(sq *s, const char *owner, const char *project, const char *key,
                              bool *hit, cJSON **result) {
  cc_status rc = check_owner_project(s, owner, project);
  if (!rc) rc = check_key(s, key);
  if (rc) return rc;
  sqlite3_stmt *st;
  if ((rc = prep(s,
                 "SELECT c.generation, c.created_at, c.result, p.generation "
                 "FROM cache c JOIN projects p ON c.project_rowid = p.id "
                 "WHERE p.owner=?1 AND p.project=?2 AND c.key=?3",
                 &st)))
    return rc;
  bind_text(st, 1, owner);
  bind_text(st, 2, project);
  bind_text(st, 3, key);
  int r = sqlite3_step(st);
  if (r == SQLITE_ROW) {
    int64_t age = now(s) - sqlite3_column_int64(st, 1);
    if (sqlite3_column_int64(st, 0) == sqlite3_column_int64(st, 3) && age < s->o.cache_ttl_ms) {
      if (!(rc = column_json(s, st, 2, result))) *hit = true;
    }
  } else if (r != SQLITE_DONE) {
    rc = dberr(s, "read cache");
  }
  done(s, st);
  return rc;
}

static cc_status op_cache_get(void *ctx, const char *owner, const char *project, const char *key,
                              bool *hit, cJSON **result) {
  sq *s = ctx;
  *hit = false;
  *result = NULL;
  LOCK(s);
  cc_status rc = do_cache_get(s, owner, project, key, hit, result);
  UNLOCK(s);
  return rc;
}

static cc_status do_cache_put(sq *s, const char *owner, const char *project, const char *key,
                              const char *cmd, int64_t generation, const cJSON *result) {
  cc_status rc = check_owner_project(s, owner, project);
  if (!rc) rc = check_key(s, key);
  if (!rc && !cmd) rc = fail(s, CC_BAD_REQUEST, "store: cache entry without cmd");
  if (!rc && !result) rc = fail(s, CC_BAD_REQUEST, "store: cache entry without result");
  if (rc) return rc;
  char *text = NULL;
  sqlite3_stmt *st = NULL;
  int64_t rowid;
  if ((rc = to_text(s, "cache result", result, s->o.json_max_bytes, &text))) return rc;
  if ((rc = begin(s))) goto out;
  if ((rc = find_project(s, owner, project, &rowid))) goto out;
  if ((rc = prep(s,
                 "INSERT OR REPLACE INTO cache(project_rowid, key, cmd, generation, created_at,"
                 " result) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                 &st)))
    goto out;
  sqlite3_bind_int64(st, 1, rowid);
  bind_text(st, 2, key);
  bind_text(st, 3, cmd);
  sqlite3_bind_int64(st, 4, generation);
  sqlite3_bind_int64(st, 5, now(s));
  bind_text(st, 6, text);
  if (sqlite3_step(st) != SQLITE_DONE) {
    rc = dberr(s, "write cache");
    goto out;
  }
  done(s, st);
  /* Bound: keep the newest cache_entries_per_project (rowids grow with insertion). */
  if ((rc = prep(s,
                 "DELETE FROM cache WHERE rowid IN (SELECT rowid FROM cache "
                 "WHERE project_rowid=?1 ORDER BY rowid DESC LIMIT -1 OFFSET ?2)",
                 &st)))
    goto out;
  sqlite3_bind_int64(st, 1, rowid);
  sqlite3_bind_int(st, 2, s->o.cache_entries_per_project);
  if (sqlite3_step(st) != SQLITE_DONE) {
    rc = dberr(s, "evict cache");
    goto out;
  }
  rc = commit(s);
out:
  done(s, st);
  rollback(s);
  cJSON_free(text);
  return rc;
}

static cc_status op_cache_put(void *ctx, const char *owner, const char *project, const char *key,
                              const char *cmd, int64_t generation, const cJSON *result) {
  sq *s = ctx;
  LOCK(s);
  cc_status rc = do_cache_put(s, owner, project, key, cmd, generation, result);
  UNLOCK(s);
  return rc;
}

static cc_status do_cache_clear(sq *s, const char *owner, const char *project, const char *cmd,
                                int64_t *cleared) {
  cc_status rc = check_owner_project(s, owner, project);
  if (rc) return rc;
  sqlite3_stmt *st;
  if ((rc = prep(s,
                 "DELETE FROM cache WHERE project_rowid = "
                 "(SELECT id FROM projects WHERE owner=?1 AND project=?2) "
                 "AND (?3 IS NULL OR cmd=?3)",
                 &st)))
    return rc;
  bind_text(st, 1, owner);
  bind_text(st, 2, project);
  bind_text(st, 3, cmd);
  if (sqlite3_step(st) != SQLITE_DONE)
    rc = dberr(s, "clear cache");
  else if (cleared)
    *cleared = sqlite3_changes(s->db);
  done(s, st);
  return rc;
}

static cc_status op_cache_clear(void *ctx, const char *owner, const char *project, const char *cmd,
                                int64_t *cleared) {
  sq *s = ctx;
  if (cleared) *cleared = 0;
  LOCK(s);
  cc_status rc = do_cache_clear(s, owner, project, cmd, cleared);
  UNLOCK(s);
  return rc;
}

static cc_status op_cache_count(void *ctx, const char *owner, const char *project, int64_t *count) {
  sq *s = ctx;
  sqlite3_stmt *st;
  *count = 0;
  LOCK(s);
  cc_status rc = read_project_column(s, owner, project,
                                     "SELECT (SELECT count(*) FROM cache WHERE project_rowid = "
                                     "projects.id) FROM projects WHERE owner=?1 AND project=?2",
                                     &st);
  if (rc == CC_NOT_FOUND) rc = CC_OK; /* a missing project has no entries */
  if (!rc && st) *count = sqlite3_column_int64(st, 0);
  done(s, st);
  UNLOCK(s);
  return rc;
}

/* ---- execution records ---- */

static cc_status do_record_insert(sq *s, const char *owner, const char *project, const char *id,
                                  const char *op, const cJSON *input,
                                  char out_id[CC_STORE_ID_LEN + 1]) {
  char idbuf[CC_STORE_ID_LEN + 1];
  cc_status rc = check_owner_project(s, owner, project);
  if (!rc) rc = check_name(s, "op", op);
  if (!rc && id) rc = check_id(s, id);
  if (rc) return rc;
  if (!id) {
    if ((rc = cc_store_new_id(idbuf))) return fail(s, rc, "store: platform random failed");
    id = idbuf;
  }
  char *text = NULL;
  sqlite3_stmt *st = NULL;
  int64_t rowid;
  if ((rc = to_text(s, "record input", input, s->o.json_max_bytes, &text))) return rc;
  if ((rc = begin(s))) goto out;
  if ((rc = find_project(s, owner, project, &rowid))) goto out;
  if ((rc = prep(s,
                 "INSERT INTO records(id, project_rowid, op, input, status, created_at) "
                 "VALUES(?1, ?2, ?3, ?4, 'pending', ?5)",
                 &st)))
    goto out;
  bind_text(st, 1, id);
  sqlite3_bind_int64(st, 2, rowid);
  bind_text(st, 3, op);
  bind_text(st, 4, text);
  sqlite3_bind_int64(st, 5, now(s));
  int r = sqlite3_step(st);
  if (r == SQLITE_CONSTRAINT) {
    rc = fail(s, CC_CONFLICT, "store: record id %s exists", id);
    goto out;
  }
  if (r != SQLITE_DONE) {
    rc = dberr(s, "insert record");
    goto out;
  }
  done(s, st);
  /* Prune: keep exactly the newest history_keep records of this project. */
  if ((rc = prep(s,
                 "DELETE FROM records WHERE project_rowid=?1 AND seq <= "
                 "(SELECT seq FROM records WHERE project_rowid=?1 ORDER BY seq DESC "
                 "LIMIT 1 OFFSET ?2)",
                 &st)))
    goto out;
  sqlite3_bind_int64(st, 1, rowid);
  sqlite3_bind_int(st, 2, s->o.history_keep);
  if (sqlite3_step(st) != SQLITE_DONE) {
    rc = dberr(s, "prune records");
    goto out;
  }
  if ((rc = commit(s))) goto out;
  if (out_id) snprintf(out_id, CC_STORE_ID_LEN + 1, "%s", id);
out:
  done(s, st);
  rollback(s);
  cJSON_free(text);
  return rc;
}

static cc_status op_record_insert(void *ctx, const char *owner, const char *project, const char *id,
                                  const char *op, const cJSON *input,
                                  char out_id[CC_STORE_ID_LEN + 1]) {
  sq *s = ctx;
  if (out_id) out_id[0] = 0;
  LOCK(s);
  cc_status rc = do_record_insert(s, owner, project, id, op, input, out_id);
  UNLOCK(s);
  return rc;
}

/* After an UPDATE of the owner's record that changed nothing: CC_NOT_FOUND when the record
 * is not the owner's, CC_CONFLICT when its status forbids the transition. */
static cc_status explain_no_change(sq *s, const char *owner, const char *id, const char *want) {
  sqlite3_stmt *st;
  cc_status rc = prep(s,
                      "SELECT r.status FROM records r JOIN projects p ON r.project_rowid = p.id "
                      "WHERE r.id=?1 AND p.owner=?2",
                      &st);
  if (rc) return rc;
  bind_text(st, 1, id);
  bind_text(st, 2, owner);
  int r = sqlite3_step(st);
  if (r == SQLITE_ROW)
    rc = fail(s, CC_CONFLICT, "store: record %s is %s; cannot become %s", id,
              (const char *)sqlite3_column_text(st, 0), want);
  else if (r == SQLITE_DONE)
    rc = fail(s, CC_NOT_FOUND, "store: no record %s", id);
  else
    rc = dberr(s, "read record");
  done(s, st);
  return rc;
}

static cc_status do_record_set_running(sq *s, const char *owner, const char *id) {
  cc_status rc = check_name(s, "owner", owner);
  if (!rc) rc = check_id(s, id);
  if (rc) return rc;
  sqlite3_stmt *st;
  if ((rc = prep(s,
                 "UPDATE records SET status='running' WHERE id=?1 AND status='pending' AND "
                 "project_rowid IN (SELECT id FROM projects WHERE owner=?2)",
                 &st)))
    return rc;
  bind_text(st, 1, id);
  bind_text(st, 2, owner);
  if (sqlite3_step(st) != SQLITE_DONE)
    rc = dberr(s, "update record");
  else if (sqlite3_changes(s->db) == 0)
    rc = explain_no_change(s, owner, id, "running");
  done(s, st);
  return rc;
}

static cc_status op_record_set_running(void *ctx, const char *owner, const char *id) {
  sq *s = ctx;
  LOCK(s);
  cc_status rc = do_record_set_running(s, owner, id);
  UNLOCK(s);
  return rc;
}

static cc_status do_record_finish(sq *s, const char *owner, const char *id,
                                  cc_proto_record_status status, const cJSON *result,
                                  const char *error_code, const char *error_message) {
  cc_status rc = cc_store_check_finish(&s->errs, &s->o, owner, id, status, error_code,
                                       error_message);
  if (rc) return rc;
  char *text = NULL, *body = NULL;
  sqlite3_stmt *st = NULL;
  const char *code, *message;
  cc_store_finish_error(error_code, error_message, &code, &message);
  int64_t finished_at = now(s);
  if ((rc = to_text(s, "record result", result, s->o.json_max_bytes, &text))) return rc;
  /* The finished record's JSON, made once here so that reads only copy it.  A record that
   * is not the owner's (or not there) gets no body; the UPDATE below then says why. */
  if ((rc = prep(s,
                 "SELECT p.project, r.op, r.input, r.created_at "
                 "FROM records r JOIN projects p ON r.project_rowid = p.id "
                 "WHERE r.id=?1 AND p.owner=?2 AND r.status IN ('pending','running')",
                 &st)))
    goto out;
  bind_text(st, 1, id);
  bind_text(st, 2, owner);
  int r = sqlite3_step(st);
  if (r == SQLITE_ROW) {
    cc_store_record_fields f = {.id = id,
                       .project = (const char *)sqlite3_column_text(st, 0),
                       .op = (const char *)sqlite3_column_text(st, 1),
                       .status = cc_proto_record_status_name(status),
                       .input = (const char *)sqlite3_column_text(st, 2),
                       .error_code = code,
                       .error_message = message,
                       .created_at = sqlite3_column_int64(st, 3),
                       .finished_at = finished_at};
    if ((rc = cc_store_record_text(&s->errs, result, &f, &body))) goto out;
  } else if (r != SQLITE_DONE) {
    rc = dberr(s, "read record");
    goto out;
  }
  done(s, st);
  /* With a body the result column stays NULL (the body holds the result's fields). */
  if ((rc = prep(s,
                 "UPDATE records SET status=?3, result=?4, error_code=?5, error_message=?6, "
                 "finished_at=?7, body=?8 WHERE id=?1 AND status IN ('pending','running') AND "
                 "project_rowid IN (SELECT id FROM projects WHERE owner=?2)",
                 &st)))
    goto out;
  bind_text(st, 1, id);
  bind_text(st, 2, owner);
  bind_text(st, 3, cc_proto_record_status_name(status));
  bind_text(st, 4, body ? NULL : text);
  bind_text(st, 5, code);
  bind_text(st, 6, message);
  sqlite3_bind_int64(st, 7, finished_at);
  bind_text(st, 8, body);
  if (sqlite3_step(st) != SQLITE_DONE)
    rc = dberr(s, "finish record");
  else if (sqlite3_changes(s->db) == 0)
    rc = explain_no_change(s, owner, id, cc_proto_record_status_name(status));
out:
  done(s, st);
  cJSON_free(text);
  free(body);
  return rc;
}

static cc_status op_record_finish(void *ctx, const char *owner, const char *id,
                                  cc_proto_record_status status, const cJSON *result,
                                  const char *error_code, const char *error_message) {
  sq *s = ctx;
  LOCK(s);
  cc_status rc = do_record_finish(s, owner, id, status, result, error_code, error_message);
  UNLOCK(s);
  return rc;
}

static cc_status do_record_get(sq *s, const char *owner, const char *id, cJSON **record) {
  cc_status rc = check_name(s, "owner", owner);
  if (!rc) rc = check_id(s, id);
  if (rc) return rc == CC_BAD_REQUEST ? fail(s, CC_NOT_FOUND, "store: no record") : rc;
  sqlite3_stmt *st;
  if ((rc = prep(s,
                 "SELECT " RECORD_COLUMNS
                 " FROM records r JOIN projects p ON r.project_rowid = p.id "
                 "WHERE r.id=?1 AND p.owner=?2",
                 &st)))
    return rc;
  bind_text(st, 1, id);
  bind_text(st, 2, owner);
  int r = sqlite3_step(st);
  if (r == SQLITE_ROW)
    rc = row_to_record(s, st, record);
  else if (r == SQLITE_DONE)
    rc = fail(s, CC_NOT_FOUND, "store: no record %s", id);
  else
    rc = dberr(s, "read record");
  done(s, st);
  return rc;
}

static cc_status op_record_get(void *ctx, const char *owner, const char *id, cJSON **record) {
  sq *s = ctx;
  *record = NULL;
  LOCK(s);
  cc_status rc = do_record_get(s, owner, id, record);
  UNLOCK(s);
  return rc;
}

/* The history page as JSON text "[record,...]" (see history_json in cc_store.h): each
 * finished record's stored body is copied as it is, so no JSON is parsed or printed for
 * it.  The page is at most `limit` records, each at most about json_max_bytes. */
static cc_status do_history(sq *s, const char *owner, const char *project, int limit,
                            const char *before, char **items, char **next) {
  cc_status rc = check_owner_project(s, owner, project);
  if (rc) return rc;
  if (limit <= 0) limit = CC_STORE_DEFAULT_HISTORY_PAGE;
  if (limit > s->o.history_keep) limit = s->o.history_keep;
  cc_store_textbuf page = {0};
  sqlite3_stmt *st = NULL;
  char *cursor = NULL;
  int64_t rowid, bound = INT64_MAX;
  if (!cc_store_textbuf_put(&page, "[", 1)) return fail(s, CC_INTERNAL, "store: out of memory");
  rc = find_project(s, owner, project, &rowid);
  if (rc == CC_NOT_FOUND) {
    rc = CC_OK;
    goto done; /* empty page */
  }
  if (rc) goto done;
  if (before) {
    if ((rc = prep(s, "SELECT seq FROM records WHERE id=?1 AND project_rowid=?2", &st))) goto done;
    bind_text(st, 1, before);
    sqlite3_bind_int64(st, 2, rowid);
    int r = sqlite3_step(st);
    if (r == SQLITE_DONE) goto done; /* unknown or pruned cursor: empty page */
    if (r != SQLITE_ROW) {
      rc = dberr(s, "read cursor");
      goto done;
    }
    bound = sqlite3_column_int64(st, 0);
    done(s, st);
    st = NULL;
  }
  if ((rc = prep(s,
                 "SELECT " RECORD_COLUMNS
                 " FROM records r JOIN projects p ON r.project_rowid = p.id "
                 "WHERE r.project_rowid=?1 AND r.seq < ?2 ORDER BY r.seq DESC LIMIT ?3",
                 &st)))
    goto done;
  sqlite3_bind_int64(st, 1, rowid);
  sqlite3_bind_int64(st, 2, bound);
  sqlite3_bind_int64(st, 3, (int64_t)limit + 1);
  int n = 0, r;
  char last_id[CC_STORE_ID_LEN + 1] = "";
  while ((r = sqlite3_step(st)) == SQLITE_ROW) {
    if (n == limit) { /* one more exists: the last item on this page is the cursor */
      if (!(cursor = dup_str(last_id))) rc = fail(s, CC_INTERNAL, "store: out of memory");
      break;
    }
    const char *text;
    size_t len;
    char *owned;
    if ((rc = row_body(s, st, &text, &len, &owned))) break;
    bool ok = (n == 0 || cc_store_textbuf_put(&page, ",", 1)) && cc_store_textbuf_put(&page, text, len);
    free(owned);
    if (!ok) {
      rc = fail(s, CC_INTERNAL, "store: out of memory");
      break;
    }
    snprintf(last_id, sizeof last_id, "%s", (const char *)sqlite3_column_text(st, COL_ID));
    n++;
  }
  if (!rc && r != SQLITE_ROW && r != SQLITE_DONE) rc = dberr(s, "read history");
done:
  done(s, st);
  if (!rc && !cc_store_textbuf_put(&page, "]", 1)) rc = fail(s, CC_INTERNAL, "store: out of memory");
  if (rc) {
    free(page.p);
    free(cursor);
    return rc;
  }
  *items = page.p;
  if (next)
    *next = cursor;
  else
    free(cursor);
  return CC_OK;
}

static cc_status op_history_json(void *ctx, const char *owner, const char *project, int limit,
                                 const char *before, char **items, char **next) {
  sq *s = ctx;
  *items = NULL;
  if (next) *next = NULL;
  LOCK(s);
  cc_status rc = do_history(s, owner, project, limit, before, items, next);
  UNLOCK(s);
  return rc;
}

/* The same page as a tree: the text of history_json, parsed. */
static cc_status op_history(void *ctx, const char *owner, const char *project, int limit,
                            const char *before, cJSON **items, char **next) {
  char *text = NULL;
  *items = NULL;
  cc_status rc = op_history_json(ctx, owner, project, limit, before, &text, next);
  if (rc) return rc;
  *items = cJSON_Parse(text);
  free(text);
  if (*items) return CC_OK;
  if (next) {
    free(*next);
    *next = NULL;
  }
  sq *s = ctx;
  LOCK(s);
  rc = fail(s, CC_INTERNAL, "store: corrupt JSON in database");
  UNLOCK(s);
  return rc;
}

/* ---- maintenance ---- */

static cc_status do_recover(sq *s, int64_t *count) {
  sqlite3_stmt *st;
  cc_status rc = prep(s,
                      "UPDATE records SET status='error', error_code='internal', "
                      "error_message=?1, finished_at=?2 WHERE status IN ('pending','running')",
                      &st);
  if (rc) return rc;
  bind_text(st, 1, CC_STORE_RECOVER_MESSAGE);
  sqlite3_bind_int64(st, 2, now(s));
  if (sqlite3_step(st) != SQLITE_DONE)
    rc = dberr(s, "recover records");
  else if (count)
    *count = sqlite3_changes(s->db);
  done(s, st);
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
  cc_status rc = prep(s, "PRAGMA integrity_check", &st);
  if (rc) return rc;
  int r = sqlite3_step(st);
  if (r != SQLITE_ROW) {
    rc = dberr(s, "integrity_check");
  } else {
    const char *first = (const char *)sqlite3_column_text(st, 0);
    if (!first || strcmp(first, "ok") != 0 || sqlite3_step(st) != SQLITE_DONE)
      rc = fail(s, CC_INTERNAL, "store: integrity_check: %s", first ? first : "?");
  }
  done(s, st);
  return rc;
}

static cc_status op_integrity_check(void *ctx) {
  sq *s = ctx;
  LOCK(s);
  cc_status rc = do_integrity_check(s);
  UNLOCK(s);
  return rc;
}

static const cc_store_ops SQLITE_OPS = {
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
    .name = "sqlite",
};

/* ===================== public entry points ===================== */

/* Sets the connection up and creates or checks the schema. */
static cc_status setup(sq *s) {
  sqlite3_stmt *st;
  cc_status rc;
  sqlite3_busy_timeout(s->db, s->o.busy_timeout_ms);
  sqlite3_extended_result_codes(s->db, 0);
  if ((rc = prep(s, "PRAGMA journal_mode=WAL", &st))) return rc;
  const char *mode =
      sqlite3_step(st) == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
  if (!mode || strcmp(mode, "wal") != 0)
    rc = fail(s, CC_INTERNAL, "store: cannot switch %s to WAL mode (%s)", "database",
              mode ? mode : sqlite3_errmsg(s->db));
  done(s, st);
  if (rc) return rc;
  if ((rc = exec_sql(s, "PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL"))) return rc;
  if ((rc = begin(s))) return rc;
  int version = -1;
  if (!(rc = prep(s, "PRAGMA user_version", &st))) {
    if (sqlite3_step(st) == SQLITE_ROW) version = sqlite3_column_int(st, 0);
    done(s, st);
    if (version < 0)
      rc = dberr(s, "read schema version");
    else if (version > SCHEMA_VERSION)
      rc = fail(s, CC_INTERNAL, "store: database schema %d is newer than this program's (%d)",
                version, SCHEMA_VERSION);
  }
  if (!rc && version == 1) rc = exec_sql(s, MIGRATE_1_TO_2);
  if (!rc && version < SCHEMA_VERSION) {
    rc = exec_sql(s, SCHEMA);
    if (!rc) rc = exec_sql(s, "PRAGMA user_version=2");
  }
  if (!rc) rc = commit(s);
  rollback(s);
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
