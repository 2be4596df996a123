/*
 * cc_client_cache: the client's local cache over SQLite (see cc_client_cache.h).
 *
 * Statements are prepared once at open: the exec lookup is the hot path of a local cache
 * hit.  A file database runs with journal_mode=TRUNCATE (no WAL files); an in-memory image
 * (memdb, the wasm client's form) with journal_mode=MEMORY; both with
 * locking_mode=EXCLUSIVE (one module instance owns its copy).  Row caps are
 * enforced by pruning the oldest rows every PRUNE_EVERY inserts, so a table holds at most
 * its cap plus PRUNE_EVERY - 1 rows.
 */
#include "cc_client_cache.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PRUNE_EVERY 32

enum {
  S_GEN_SET,
  S_GEN_GET,
  S_EXEC_PUT,
  S_EXEC_GET,
  S_EXEC_CLEAR_ONE,
  S_EXEC_CLEAR_ALL,
  S_EXEC_PRUNE,
  S_DOC_PUT,
  S_DOC_GET,
  S_DOC_PRUNE,
  S_COUNT
};

static const char *const sql_text[S_COUNT] = {
    [S_GEN_SET] = "INSERT INTO gen(project, generation) VALUES(?1, ?2) "
                  "ON CONFLICT(project) DO UPDATE SET generation = excluded.generation "
                  "WHERE excluded.generation > gen.generation",
    [S_GEN_GET] = "SELECT generation FROM gen WHERE project = ?1",
    [S_EXEC_PUT] = "INSERT OR REPLACE INTO exec(project, key, generation, stored_at, json) "
                   "VALUES(?1, ?2, ?3, ?4, ?5)",
    [S_EXEC_GET] = "SELECT e.json FROM exec e JOIN gen g ON g.project = e.project "
                   "WHERE e.project = ?1 AND e.key = ?2 AND e.generation = g.generation "
                   "AND ?3 - e.stored_at <= ?4",
    [S_EXEC_CLEAR_ONE] = "DELETE FROM exec WHERE project = ?1 AND key = ?2",
    [S_EXEC_CLEAR_ALL] = "DELETE FROM exec WHERE project = ?1",
    [S_EXEC_PRUNE] = "DELETE FROM exec WHERE rowid IN (SELECT rowid FROM exec "
                     "ORDER BY stored_at DESC, rowid DESC LIMIT -1 OFFSET ?1)",
    [S_DOC_PUT] = "INSERT OR REPLACE INTO doc(kind, project, key, stored_at, json) "
                  "VALUES(?1, ?2, ?3, ?4, ?5)",
    [S_DOC_GET] = "SELECT json, stored_at FROM doc WHERE kind = ?1 AND project = ?2 AND key = ?3",
    [S_DOC_PRUNE] = "DELETE FROM doc WHERE rowid IN (SELECT rowid FROM doc "
                    "ORDER BY stored_at DESC, rowid DESC LIMIT -1 OFFSET ?1)",
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS gen(project TEXT PRIMARY KEY, generation INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS exec(project TEXT NOT NULL, key TEXT NOT NULL,"
    "  generation INTEGER NOT NULL, stored_at INTEGER NOT NULL, json TEXT NOT NULL,"
    "  PRIMARY KEY(project, key));"
    "CREATE INDEX IF NOT EXISTS exec_age ON exec(stored_at);"
    "CREATE TABLE IF NOT EXISTS doc(kind TEXT NOT NULL, project TEXT NOT NULL,"
    "  key TEXT NOT NULL, stored_at INTEGER NOT NULL, json TEXT NOT NULL,"
    "  PRIMARY KEY(kind, project, key));"
    "CREATE INDEX IF NOT EXISTS doc_age ON doc(stored_at);";

struct cc_client_cache {
  sqlite3 *db;
  sqlite3_stmt *st[S_COUNT];
  cc_client_cache_limits lim;
  unsigned exec_puts, doc_puts;
  char err[200];
};

/* Records SQLite's message for the failed call and returns CC_INTERNAL. */
static cc_status fail(cc_client_cache *c, const char *what) {
  snprintf(c->err, sizeof c->err, "%s: %s", what, c->db ? sqlite3_errmsg(c->db) : "no database");
  return CC_INTERNAL;
}

/* Resets the statement (clearing bindings) so it can be reused. */
static sqlite3_stmt *stmt(cc_client_cache *c, int which) {
  sqlite3_stmt *s = c->st[which];
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return s;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v) {
  sqlite3_bind_text(s, i, v ? v : "", -1, SQLITE_STATIC);
}

/* Runs a statement that returns no rows. */
static cc_status run(cc_client_cache *c, sqlite3_stmt *s, const char *what) {
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  return rc == SQLITE_DONE ? CC_OK : fail(c, what);
}

static char *dup_text(const unsigned char *t, int n) {
  char *out = malloc((size_t)n + 1);
  if (!out) return NULL;
  memcpy(out, t, (size_t)n);
  out[n] = '\0';
  return out;
}

/* Journal settings: a file keeps a truncated rollback journal (no WAL files next to it); an
 * image keeps its journal in memory (memdb has no journal file).  One owner: EXCLUSIVE. */
static const char pragmas_file[] = "PRAGMA journal_mode=TRUNCATE; PRAGMA locking_mode=EXCLUSIVE;";
static const char pragmas_image[] = "PRAGMA journal_mode=MEMORY; PRAGMA locking_mode=EXCLUSIVE;";

/* Creates the handle over an open database `c->db`: pragmas, schema, statements. */
static cc_status finish_open(cc_client_cache *c, const char *pragmas) {
  if (sqlite3_exec(c->db, pragmas, NULL, NULL, NULL) != SQLITE_OK) return fail(c, "pragmas");
  if (sqlite3_exec(c->db, schema, NULL, NULL, NULL) != SQLITE_OK) return fail(c, "schema");
  for (int i = 0; i < S_COUNT; i++) {
    if (sqlite3_prepare_v3(c->db, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT, &c->st[i],
                           NULL) != SQLITE_OK)
      return fail(c, "prepare");
  }
  return CC_OK;
}

static cc_client_cache *new_handle(const cc_client_cache_limits *limits) {
  cc_client_cache *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->lim = (cc_client_cache_limits){500, 2000, 4 << 20};
  if (limits) {
    if (limits->max_exec_entries > 0) c->lim.max_exec_entries = limits->max_exec_entries;
    if (limits->max_docs > 0) c->lim.max_docs = limits->max_docs;
    if (limits->max_value_bytes > 0) c->lim.max_value_bytes = limits->max_value_bytes;
  }
  return c;
}

/* Opens a memdb database; when `image` is given, loads it.  Fails (and closes) when the image
 * cannot be read as a database. */
static cc_status open_memdb(cc_client_cache *c, const unsigned char *image, size_t len) {
  /* A name without a leading "/": a private memdb (a shared one has a mutex and no image). */
  if (sqlite3_open_v2("cc-client-cache", &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                      "memdb") != SQLITE_OK)
    return fail(c, "open memdb");
  if (len > 0) {
    unsigned char *copy = sqlite3_malloc64(len);
    if (!copy) return fail(c, "image copy");
    memcpy(copy, image, len);
    /* FREEONCLOSE: SQLite owns `copy` from here on, even when this call fails. */
    if (sqlite3_deserialize(c->db, "main", copy, (sqlite3_int64)len, (sqlite3_int64)len,
                            SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_RESIZEABLE) !=
        SQLITE_OK)
      return fail(c, "deserialize");
  }
  return finish_open(c, pragmas_image);
}

static void close_db(cc_client_cache *c) {
  for (int i = 0; i < S_COUNT; i++) {
    sqlite3_finalize(c->st[i]);
    c->st[i] = NULL;
  }
  sqlite3_close(c->db);
  c->db = NULL;
}

cc_status cc_client_cache_open_image(const unsigned char *image, size_t len,
                                     const cc_client_cache_limits *limits,
                                     cc_client_cache **out) {
  *out = NULL;
  cc_client_cache *c = new_handle(limits);
  if (!c) return CC_INTERNAL;
  cc_status st = open_memdb(c, image, len);
  if (st != CC_OK && len > 0) {
    /* Not a usable image (corrupt, foreign, older schema): a cache may start empty. */
    close_db(c);
    st = open_memdb(c, NULL, 0);
  }
  if (st != CC_OK) {
    cc_client_cache_free(c);
    return st;
  }
  *out = c;
  return CC_OK;
}

cc_status cc_client_cache_image(cc_client_cache *c, const unsigned char **data, size_t *len) {
  sqlite3_int64 n = 0;
  unsigned char *p = sqlite3_serialize(c->db, "main", &n, SQLITE_SERIALIZE_NOCOPY);
  if (!p) {
    snprintf(c->err, sizeof c->err, "image: not an in-memory cache");
    return CC_INTERNAL;
  }
  *data = p;
  *len = (size_t)n;
  return CC_OK;
}

cc_status cc_client_cache_open(const char *path, const cc_client_cache_limits *limits,
                               cc_client_cache **out) {
  *out = NULL;
  cc_client_cache *c = new_handle(limits);
  if (!c) return CC_INTERNAL;
  cc_status st = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                 NULL) == SQLITE_OK
                     ? finish_open(c, pragmas_file)
                     : fail(c, "open");
  if (st != CC_OK) {
    cc_client_cache_free(c);
    return st;
  }
  *out = c;
  return CC_OK;
}

void cc_client_cache_free(cc_client_cache *c) {
  if (!c) return;
  close_db(c);
  free(c);
}

const char *cc_client_cache_errmsg(const cc_client_cache *c) { return c ? c->err : "no cache"; }

cc_status cc_client_cache_seen_generation(cc_client_cache *c, const char *project,
                                          int64_t generation, bool *changed) {
  sqlite3_stmt *s = stmt(c, S_GEN_SET);
  bind_text(s, 1, project);
  sqlite3_bind_int64(s, 2, generation);
  cc_status st = run(c, s, "seen_generation");
  if (changed) *changed = st == CC_OK && sqlite3_changes(c->db) > 0;
  return st;
}

cc_status cc_client_cache_generation(cc_client_cache *c, const char *project,
                                     int64_t *generation) {
  sqlite3_stmt *s = stmt(c, S_GEN_GET);
  bind_text(s, 1, project);
  int rc = sqlite3_step(s);
  cc_status st = CC_NOT_FOUND;
  if (rc == SQLITE_ROW) {
    *generation = sqlite3_column_int64(s, 0);
    st = CC_OK;
  } else if (rc != SQLITE_DONE) {
    st = fail(c, "generation");
  }
  sqlite3_reset(s);
  return st;
}

/* Deletes all but the newest `keep` rows with the given prune statement. */
static cc_status prune(cc_client_cache *c, int which, int keep) {
  sqlite3_stmt *s = stmt(c, which);
  sqlite3_bind_int(s, 1, keep);
  return run(c, s, "prune");
}

cc_status cc_client_cache_merge_image(cc_client_cache *c, const unsigned char *image, size_t len) {
  if (len == 0) return CC_OK;
  static const char merge[] =
      "BEGIN;"
      "INSERT INTO main.gen(project, generation) SELECT project, generation FROM other.gen"
      "  WHERE true ON CONFLICT(project) DO UPDATE"
      "  SET generation = max(generation, excluded.generation);"
      "INSERT INTO main.exec(project, key, generation, stored_at, json)"
      "  SELECT project, key, generation, stored_at, json FROM other.exec WHERE true"
      "  ON CONFLICT(project, key) DO UPDATE SET generation = excluded.generation,"
      "  stored_at = excluded.stored_at, json = excluded.json"
      "  WHERE excluded.stored_at > exec.stored_at;"
      "INSERT INTO main.doc(kind, project, key, stored_at, json)"
      "  SELECT kind, project, key, stored_at, json FROM other.doc WHERE true"
      "  ON CONFLICT(kind, project, key) DO UPDATE SET stored_at = excluded.stored_at,"
      "  json = excluded.json WHERE excluded.stored_at > doc.stored_at;"
      "COMMIT;";
  if (sqlite3_exec(c->db, "ATTACH ':memory:' AS other", NULL, NULL, NULL) != SQLITE_OK)
    return fail(c, "attach");
  cc_status st = CC_OK;
  unsigned char *copy = sqlite3_malloc64(len);
  if (!copy) {
    st = fail(c, "merge copy");
  } else {
    memcpy(copy, image, len);
    /* FREEONCLOSE: SQLite owns `copy` from here on, even when this call fails. */
    if (sqlite3_deserialize(c->db, "other", copy, (sqlite3_int64)len, (sqlite3_int64)len,
                            SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_READONLY) !=
        SQLITE_OK)
      st = fail(c, "merge: deserialize");
    else if (sqlite3_exec(c->db, merge, NULL, NULL, NULL) != SQLITE_OK) {
      st = fail(c, "merge: not a cache image");
      sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    }
  }
  sqlite3_exec(c->db, "DETACH other", NULL, NULL, NULL);
  if (st == CC_OK) st = prune(c, S_EXEC_PRUNE, c->lim.max_exec_entries);
  if (st == CC_OK) st = prune(c, S_DOC_PRUNE, c->lim.max_docs);
  return st;
}

cc_status cc_client_cache_exec_put(cc_client_cache *c, const char *project, const char *key,
                                   int64_t generation, int64_t now_ms, const char *json) {
  if (strlen(json) > (size_t)c->lim.max_value_bytes) return CC_OK;
  sqlite3_stmt *s = stmt(c, S_EXEC_PUT);
  bind_text(s, 1, project);
  bind_text(s, 2, key);
  sqlite3_bind_int64(s, 3, generation);
  sqlite3_bind_int64(s, 4, now_ms);
  bind_text(s, 5, json);
  cc_status st = run(c, s, "exec_put");
  if (st == CC_OK && ++c->exec_puts % PRUNE_EVERY == 0)
    st = prune(c, S_EXEC_PRUNE, c->lim.max_exec_entries);
  return st;
}

cc_status cc_client_cache_exec_get(cc_client_cache *c, const char *project, const char *key,
                                   int64_t now_ms, int64_t max_stale_ms, char **json) {
  *json = NULL;
  sqlite3_stmt *s = stmt(c, S_EXEC_GET);
  bind_text(s, 1, project);
  bind_text(s, 2, key);
  sqlite3_bind_int64(s, 3, now_ms);
  sqlite3_bind_int64(s, 4, max_stale_ms);
  int rc = sqlite3_step(s);
  cc_status st = CC_NOT_FOUND;
  if (rc == SQLITE_ROW) {
    *json = dup_text(sqlite3_column_text(s, 0), sqlite3_column_bytes(s, 0));
    st = *json ? CC_OK : CC_INTERNAL;
  } else if (rc != SQLITE_DONE) {
    st = fail(c, "exec_get");
  }
  sqlite3_reset(s);
  return st;
}

cc_status cc_client_cache_exec_clear(cc_client_cache *c, const char *project, const char *key,
                                     int *cleared) {
  sqlite3_stmt *s = stmt(c, key ? S_EXEC_CLEAR_ONE : S_EXEC_CLEAR_ALL);
  bind_text(s, 1, project);
  if (key) bind_text(s, 2, key);
  cc_status st = run(c, s, "exec_clear");
  if (cleared) *cleared = st == CC_OK ? sqlite3_changes(c->db) : 0;
  return st;
}

cc_status cc_client_cache_doc_put(cc_client_cache *c, const char *kind, const char *project,
                                  const char *key, int64_t now_ms, const char *json) {
  if (strlen(json) > (size_t)c->lim.max_value_bytes) return CC_OK;
  sqlite3_stmt *s = stmt(c, S_DOC_PUT);
  bind_text(s, 1, kind);
  bind_text(s, 2, project);
  bind_text(s, 3, key);
  sqlite3_bind_int64(s, 4, now_ms);
  bind_text(s, 5, json);
  cc_status st = run(c, s, "doc_put");
  if (st == CC_OK && ++c->doc_puts % PRUNE_EVERY == 0)
    st = prune(c, S_DOC_PRUNE, c->lim.max_docs);
  return st;
}

cc_status cc_client_cache_doc_get(cc_client_cache *c, const char *kind, const char *project,
                                  const char *key, char **json, int64_t *stored_at_ms) {
  *json = NULL;
  sqlite3_stmt *s = stmt(c, S_DOC_GET);
  bind_text(s, 1, kind);
  bind_text(s, 2, project);
  bind_text(s, 3, key);
  int rc = sqlite3_step(s);
  cc_status st = CC_NOT_FOUND;
  if (rc == SQLITE_ROW) {
    *json = dup_text(sqlite3_column_text(s, 0), sqlite3_column_bytes(s, 0));
    if (stored_at_ms) *stored_at_ms = sqlite3_column_int64(s, 1);
    st = *json ? CC_OK : CC_INTERNAL;
  } else if (rc != SQLITE_DONE) {
    st = fail(c, "doc_get");
  }
  sqlite3_reset(s);
  return st;
}

cc_status cc_client_cache_drop_project(cc_client_cache *c, const char *project) {
  static const char *const sql[] = {
      "DELETE FROM gen WHERE project = ?1",
      "DELETE FROM exec WHERE project = ?1",
      "DELETE FROM doc WHERE project = ?1",
  };
  for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(c->db, sql[i], -1, &s, NULL) != SQLITE_OK) return fail(c, "drop");
    bind_text(s, 1, project);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) return fail(c, "drop");
  }
  return CC_OK;
}
