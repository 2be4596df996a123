/*
 * cc_store_sqlite_records: the operations of the SQLite back end on the exec cache, the
 * execution records and history (see cc_store.h, docs/store.md): cache get/put/clear/count
 * with its eviction, record insert with pruning, the record state transitions, reading one
 * record and history pages as JSON text.  The handle, statements and transactions are in
 * cc_store_sqlite.c (cc_store_sqlite_int.h).
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_store_sqlite_int.h"

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

/* ---- exec cache ---- */

/* Parses a stored JSON column; NULL column gives *v = NULL. */
static cc_status column_json(sq *s, sqlite3_stmt *st, int col, cJSON **v) {
  *v = NULL;
  const char *t = (const char *)sqlite3_column_text(st, col);
  if (!t) return CC_OK;
  if (!(*v = cJSON_Parse(t))) return fail(s, CC_INTERNAL, "store: corrupt JSON in database");
  return CC_OK;
}

static cc_status do_cache_get(sq *s, const char *owner, const char *project, const char *key,
                              bool *hit, cJSON **result) {
  cc_status rc = check_owner_project(s, owner, project);
  if (!rc) rc = check_key(s, key);
  if (rc) return rc;
  sqlite3_stmt *st;
  if ((rc = sq_prep(s,
                    "SELECT c.generation, c.created_at, c.result, p.generation "
                    "FROM cache c JOIN projects p ON c.project_rowid = p.id "
                    "WHERE p.owner=?1 AND p.project=?2 AND c.key=?3",
                    &st)))
    return rc;
  sq_bind_text(st, 1, owner);
  sq_bind_text(st, 2, project);
  sq_bind_text(st, 3, key);
  int r = sqlite3_step(st);
  if (r == SQLITE_ROW) {
    int64_t age = now(s) - sqlite3_column_int64(st, 1);
    if (sqlite3_column_int64(st, 0) == sqlite3_column_int64(st, 3) && age < s->o.cache_ttl_ms) {
      if (!(rc = column_json(s, st, 2, result))) *hit = true;
    }
  } else if (r != SQLITE_DONE) {
    rc = sq_dberr(s, "read cache");
  }
  sq_done(s, st);
  return rc;
}

cc_status sq_cache_get(void *ctx, const char *owner, const char *project, const char *key,
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
  if ((rc = sq_begin(s))) goto out;
  if ((rc = sq_find_project(s, owner, project, &rowid))) goto out;
  if ((rc = sq_prep(s,
                    "INSERT OR REPLACE INTO cache(project_rowid, key, cmd, generation, created_at,"
                    " result) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                    &st)))
    goto out;
  sqlite3_bind_int64(st, 1, rowid);
  sq_bind_text(st, 2, key);
  sq_bind_text(st, 3, cmd);
  sqlite3_bind_int64(st, 4, generation);
  sqlite3_bind_int64(st, 5, now(s));
  sq_bind_text(st, 6, text);
  if (sqlite3_step(st) != SQLITE_DONE) {
    rc = sq_dberr(s, "write cache");
    goto out;
  }
  sq_done(s, st);
  /* Bound: keep the newest cache_entries_per_project (rowids grow with insertion). */
  if ((rc = sq_prep(s,
                    "DELETE FROM cache WHERE rowid IN (SELECT rowid FROM cache "
                    "WHERE project_rowid=?1 ORDER BY rowid DESC LIMIT -1 OFFSET ?2)",
                    &st)))
    goto out;
  sqlite3_bind_int64(st, 1, rowid);
  sqlite3_bind_int(st, 2, s->o.cache_entries_per_project);
  if (sqlite3_step(st) != SQLITE_DONE) {
    rc = sq_dberr(s, "evict cache");
    goto out;
  }
  rc = sq_commit(s);
out:
  sq_done(s, st);
  sq_rollback(s);
  cJSON_free(text);
  return rc;
}

cc_status sq_cache_put(void *ctx, const char *owner, const char *project, const char *key,
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
  if ((rc = sq_prep(s,
                    "DELETE FROM cache WHERE project_rowid = "
                    "(SELECT id FROM projects WHERE owner=?1 AND project=?2) "
                    "AND (?3 IS NULL OR cmd=?3)",
                    &st)))
    return rc;
  sq_bind_text(st, 1, owner);
  sq_bind_text(st, 2, project);
  sq_bind_text(st, 3, cmd);
  if (sqlite3_step(st) != SQLITE_DONE)
    rc = sq_dberr(s, "clear cache");
  else if (cleared)
    *cleared = sqlite3_changes(s->db);
  sq_done(s, st);
  return rc;
}

cc_status sq_cache_clear(void *ctx, const char *owner, const char *project, const char *cmd,
                         int64_t *cleared) {
  sq *s = ctx;
  if (cleared) *cleared = 0;
  LOCK(s);
  cc_status rc = do_cache_clear(s, owner, project, cmd, cleared);
  UNLOCK(s);
  return rc;
}

cc_status sq_cache_count(void *ctx, const char *owner, const char *project, int64_t *count) {
  sq *s = ctx;
  sqlite3_stmt *st;
  *count = 0;
  LOCK(s);
  cc_status rc = sq_read_project_column(s, owner, project,
                                        "SELECT (SELECT count(*) FROM cache WHERE project_rowid = "
                                        "projects.id) FROM projects WHERE owner=?1 AND project=?2",
                                        &st);
  if (rc == CC_NOT_FOUND) rc = CC_OK; /* a missing project has no entries */
  if (!rc && st) *count = sqlite3_column_int64(st, 0);
  sq_done(s, st);
  UNLOCK(s);
  return rc;
}

/* ---- execution records ---- */

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
  if ((rc = sq_begin(s))) goto out;
  if ((rc = sq_find_project(s, owner, project, &rowid))) goto out;
  if ((rc = sq_prep(s,
                    "INSERT INTO records(id, project_rowid, op, input, status, created_at) "
                    "VALUES(?1, ?2, ?3, ?4, 'pending', ?5)",
                    &st)))
    goto out;
  sq_bind_text(st, 1, id);
  sqlite3_bind_int64(st, 2, rowid);
  sq_bind_text(st, 3, op);
  sq_bind_text(st, 4, text);
  sqlite3_bind_int64(st, 5, now(s));
  int r = sqlite3_step(st);
  if (r == SQLITE_CONSTRAINT) {
    rc = fail(s, CC_CONFLICT, "store: record id %s exists", id);
    goto out;
  }
  if (r != SQLITE_DONE) {
    rc = sq_dberr(s, "insert record");
    goto out;
  }
  sq_done(s, st);
  /* Prune: keep exactly the newest history_keep records of this project. */
  if ((rc = sq_prep(s,
                    "DELETE FROM records WHERE project_rowid=?1 AND seq <= "
                    "(SELECT seq FROM records WHERE project_rowid=?1 ORDER BY seq DESC "
                    "LIMIT 1 OFFSET ?2)",
                    &st)))
    goto out;
  sqlite3_bind_int64(st, 1, rowid);
  sqlite3_bind_int(st, 2, s->o.history_keep);
  if (sqlite3_step(st) != SQLITE_DONE) {
    rc = sq_dberr(s, "prune records");
    goto out;
  }
  if ((rc = sq_commit(s))) goto out;
  if (out_id) snprintf(out_id, CC_STORE_ID_LEN + 1, "%s", id);
out:
  sq_done(s, st);
  sq_rollback(s);
  cJSON_free(text);
  return rc;
}

cc_status sq_record_insert(void *ctx, const char *owner, const char *project, const char *id,
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
  cc_status rc = sq_prep(s,
                         "SELECT r.status FROM records r JOIN projects p ON r.project_rowid = p.id "
                         "WHERE r.id=?1 AND p.owner=?2",
                         &st);
  if (rc) return rc;
  sq_bind_text(st, 1, id);
  sq_bind_text(st, 2, owner);
  int r = sqlite3_step(st);
  if (r == SQLITE_ROW)
    rc = fail(s, CC_CONFLICT, "store: record %s is %s; cannot become %s", id,
              (const char *)sqlite3_column_text(st, 0), want);
  else if (r == SQLITE_DONE)
    rc = fail(s, CC_NOT_FOUND, "store: no record %s", id);
  else
    rc = sq_dberr(s, "read record");
  sq_done(s, st);
  return rc;
}

static cc_status do_record_set_running(sq *s, const char *owner, const char *id) {
  cc_status rc = check_name(s, "owner", owner);
  if (!rc) rc = check_id(s, id);
  if (rc) return rc;
  sqlite3_stmt *st;
  if ((rc = sq_prep(s,
                    "UPDATE records SET status='running' WHERE id=?1 AND status='pending' AND "
                    "project_rowid IN (SELECT id FROM projects WHERE owner=?2)",
                    &st)))
    return rc;
  sq_bind_text(st, 1, id);
  sq_bind_text(st, 2, owner);
  if (sqlite3_step(st) != SQLITE_DONE)
    rc = sq_dberr(s, "update record");
  else if (sqlite3_changes(s->db) == 0)
    rc = explain_no_change(s, owner, id, "running");
  sq_done(s, st);
  return rc;
}

cc_status sq_record_set_running(void *ctx, const char *owner, const char *id) {
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
  if ((rc = sq_prep(s,
                    "SELECT p.project, r.op, r.input, r.created_at "
                    "FROM records r JOIN projects p ON r.project_rowid = p.id "
                    "WHERE r.id=?1 AND p.owner=?2 AND r.status IN ('pending','running')",
                    &st)))
    goto out;
  sq_bind_text(st, 1, id);
  sq_bind_text(st, 2, owner);
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
    rc = sq_dberr(s, "read record");
    goto out;
  }
  sq_done(s, st);
  /* With a body the result column stays NULL (the body holds the result's fields). */
  if ((rc = sq_prep(s,
                    "UPDATE records SET status=?3, result=?4, error_code=?5, error_message=?6, "
                    "finished_at=?7, body=?8 WHERE id=?1 AND status IN ('pending','running') AND "
                    "project_rowid IN (SELECT id FROM projects WHERE owner=?2)",
                    &st)))
    goto out;
  sq_bind_text(st, 1, id);
  sq_bind_text(st, 2, owner);
  sq_bind_text(st, 3, cc_proto_record_status_name(status));
  sq_bind_text(st, 4, body ? NULL : text);
  sq_bind_text(st, 5, code);
  sq_bind_text(st, 6, message);
  sqlite3_bind_int64(st, 7, finished_at);
  sq_bind_text(st, 8, body);
  if (sqlite3_step(st) != SQLITE_DONE)
    rc = sq_dberr(s, "finish record");
  else if (sqlite3_changes(s->db) == 0)
    rc = explain_no_change(s, owner, id, cc_proto_record_status_name(status));
out:
  sq_done(s, st);
  cJSON_free(text);
  free(body);
  return rc;
}

cc_status sq_record_finish(void *ctx, const char *owner, const char *id,
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
  if ((rc = sq_prep(s,
                    "SELECT " RECORD_COLUMNS
                    " FROM records r JOIN projects p ON r.project_rowid = p.id "
                    "WHERE r.id=?1 AND p.owner=?2",
                    &st)))
    return rc;
  sq_bind_text(st, 1, id);
  sq_bind_text(st, 2, owner);
  int r = sqlite3_step(st);
  if (r == SQLITE_ROW)
    rc = row_to_record(s, st, record);
  else if (r == SQLITE_DONE)
    rc = fail(s, CC_NOT_FOUND, "store: no record %s", id);
  else
    rc = sq_dberr(s, "read record");
  sq_done(s, st);
  return rc;
}

cc_status sq_record_get(void *ctx, const char *owner, const char *id, cJSON **record) {
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
  rc = sq_find_project(s, owner, project, &rowid);
  if (rc == CC_NOT_FOUND) {
    rc = CC_OK;
    goto done; /* empty page */
  }
  if (rc) goto done;
  if (before) {
    if ((rc = sq_prep(s, "SELECT seq FROM records WHERE id=?1 AND project_rowid=?2", &st)))
      goto done;
    sq_bind_text(st, 1, before);
    sqlite3_bind_int64(st, 2, rowid);
    int r = sqlite3_step(st);
    if (r == SQLITE_DONE) goto done; /* unknown or pruned cursor: empty page */
    if (r != SQLITE_ROW) {
      rc = sq_dberr(s, "read cursor");
      goto done;
    }
    bound = sqlite3_column_int64(st, 0);
    sq_done(s, st);
    st = NULL;
  }
  if ((rc = sq_prep(s,
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
  if (!rc && r != SQLITE_ROW && r != SQLITE_DONE) rc = sq_dberr(s, "read history");
done:
  sq_done(s, st);
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

cc_status sq_history_json(void *ctx, const char *owner, const char *project, int limit,
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
cc_status sq_history(void *ctx, const char *owner, const char *project, int limit,
                     const char *before, cJSON **items, char **next) {
  char *text = NULL;
  cc_status rc = sq_history_json(ctx, owner, project, limit, before, &text, next);
  return cc_store_history_tree(&((sq *)ctx)->errs, rc, text, items, next);
}
