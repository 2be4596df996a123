/*
 * cc_store_pg_records: the operations of the PostgreSQL back end on the exec cache, the
 * execution records and history (see cc_store.h, docs/store.md): cache get/put/clear/count
 * with its eviction, record insert with pruning, the record state transitions, reading one
 * record and history pages as JSON text.  Each runs on a borrowed connection through CALL
 * (cc_store_pg_int.h).
 */
#define _GNU_SOURCE
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_store_pg_int.h"

/* ------------------------------------------------------------------ exec cache */

static cc_status do_cache_get(pg *s, conn *c, const char *owner, const char *project,
                              const char *key, bool *hit, cJSON **result) {
  pg_num since = pg_n(cc_store_now(&s->o) - s->o.cache_ttl_ms);
  const char *p[] = {owner, project, key, since.v};
  PGresult *r;
  cc_status rc = pg_run(s, c, Q_CACHE_GET, 4, p, &r, "read cache", NULL);
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

cc_status pg_cache_get(void *ctx, const char *owner, const char *project, const char *key,
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
  cc_status rc = pg_begin(s, c);
  if (rc) return rc;
  if ((rc = pg_find_project(s, c, owner, project, &id))) goto out;
  pg_num pid = pg_n(id), g = pg_n(generation), t = pg_n(cc_store_now(&s->o)),
      keep = pg_n(s->o.cache_entries_per_project);
  const char *pp[] = {pid.v, key, cmd, g.v, t.v, text}, *pe[] = {pid.v, keep.v};
  if ((rc = pg_run(s, c, Q_CACHE_PUT, 6, pp, &r, "write cache", NULL))) goto out;
  PQclear(r);
  r = NULL;
  /* Bound: keep the newest cache_entries_per_project (seq grows with every write). */
  if ((rc = pg_run(s, c, Q_CACHE_EVICT, 2, pe, &r, "evict cache", NULL))) goto out;
  rc = pg_commit(s, c);
out:
  PQclear(r);
  pg_rollback(s, c);
  return rc;
}

cc_status pg_cache_put(void *ctx, const char *owner, const char *project, const char *key,
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
  cc_status rc = pg_run(s, c, Q_CACHE_CLEAR, 3, p, &r, "clear cache", NULL);
  if (!rc && cleared) *cleared = strtoll(PQcmdTuples(r), NULL, 10);
  PQclear(r);
  return rc;
}

cc_status pg_cache_clear(void *ctx, const char *owner, const char *project, const char *cmd,
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
  cc_status rc = pg_run(s, c, Q_CACHE_COUNT, 2, p, &r, "count cache", NULL);
  if (!rc) *count = pg_col_ll(r, 0, 0);
  PQclear(r);
  return rc;
}

cc_status pg_cache_count(void *ctx, const char *owner, const char *project, int64_t *count) {
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
  cc_status rc = pg_begin(s, c);
  if (rc) return rc;
  if ((rc = pg_find_project(s, c, owner, project, &pid))) goto out;
  pg_num pn = pg_n(pid), t = pg_n(cc_store_now(&s->o)), keep = pg_n(s->o.history_keep);
  const char *pi[] = {id, pn.v, op, text, t.v, s->worker_id}, *pp[] = {pn.v, keep.v};
  rc = pg_run(s, c, Q_RECORD_INSERT, 6, pi, &r, "insert record", state);
  if (rc == CC_INTERNAL && strcmp(state, "23505") == 0) {
    rc = fail(s, CC_CONFLICT, "store: record id %s exists", id);
    goto out;
  }
  if (rc) goto out;
  PQclear(r);
  r = NULL;
  /* Prune: keep exactly the newest history_keep records of this project. */
  if ((rc = pg_run(s, c, Q_RECORD_PRUNE, 2, pp, &r, "prune records", NULL))) goto out;
  rc = pg_commit(s, c);
out:
  PQclear(r);
  pg_rollback(s, c);
  return rc;
}

cc_status pg_record_insert(void *ctx, const char *owner, const char *project, const char *id,
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
  cc_status rc = pg_run(s, c, Q_RECORD_STATUS, 2, p, &r, "read record", NULL);
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
  cc_status rc = pg_run(s, c, Q_RECORD_RUNNING, 2, p, &r, "update record", NULL);
  if (rc) return rc;
  bool changed = strcmp(PQcmdTuples(r), "0") != 0;
  PQclear(r);
  return changed ? CC_OK : explain_no_change(s, c, owner, id, "running");
}

cc_status pg_record_set_running(void *ctx, const char *owner, const char *id) {
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
  cc_status rc = pg_run(s, c, Q_RECORD_OPEN_FIELDS, 2, pf, &r, "read record", NULL);
  if (rc) return rc;
  if (PQntuples(r) == 1) {
    cc_store_record_fields f = {.id = a->id,
                                .project = pg_col_str(r, 0, 0),
                                .op = pg_col_str(r, 0, 1),
                                .status = a->status,
                                .input = pg_col_str(r, 0, 2),
                                .error_code = a->code,
                                .error_message = a->message,
                                .created_at = pg_col_ll(r, 0, 3),
                                .finished_at = finished_at};
    rc = cc_store_record_text(&s->errs, a->result, &f, &body);
  }
  PQclear(r);
  r = NULL;
  if (rc) return rc;
  pg_num t = pg_n(finished_at);
  const char *pu[] = {a->id, a->owner, a->status, body ? NULL : a->text, a->code, a->message,
                      t.v, body};
  if (!(rc = pg_run(s, c, Q_RECORD_FINISH, 8, pu, &r, "finish record", NULL)) &&
      strcmp(PQcmdTuples(r), "0") == 0)
    rc = explain_no_change(s, c, a->owner, a->id, a->status);
  PQclear(r);
  free(body);
  return rc;
}

cc_status pg_record_finish(void *ctx, const char *owner, const char *id,
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
      .id = pg_col_str(r, i, 0),
      .project = pg_col_str(r, i, 1),
      .op = pg_col_str(r, i, 2),
      .input = pg_col_str(r, i, 3),
      .status = pg_col_str(r, i, 4),
      .result = pg_col_str(r, i, 5),
      .error_code = pg_col_str(r, i, 6),
      .error_message = pg_col_str(r, i, 7),
      .created_at = pg_col_ll(r, i, 8),
      .finished_at = PQgetisnull(r, i, 9) ? -1 : pg_col_ll(r, i, 9),
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
  cc_status rc = pg_run(s, c, Q_RECORD_GET, 2, p, &r, "read record", NULL);
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

cc_status pg_record_get(void *ctx, const char *owner, const char *id, cJSON **record) {
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
  cc_status rc = pg_find_project(s, c, owner, project, &pid);
  if (rc == CC_NOT_FOUND) return CC_OK; /* empty page */
  if (rc) return rc;
  pg_num pn = pg_n(pid);
  if (before_id) {
    const char *pc[] = {before_id, pn.v};
    if ((rc = pg_run(s, c, Q_RECORD_CURSOR, 2, pc, &r, "read cursor", NULL))) return rc;
    bool found = PQntuples(r) == 1;
    if (found) bound = pg_col_ll(r, 0, 0);
    PQclear(r);
    if (!found) return CC_OK; /* unknown or pruned cursor: empty page */
  }
  pg_num b = pg_n(bound), l = pg_n((long long)limit + 1);
  const char *ph[] = {pn.v, b.v, l.v};
  if ((rc = pg_run(s, c, Q_HISTORY, 3, ph, &r, "read history", NULL))) return rc;
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

cc_status pg_history_json(void *ctx, const char *owner, const char *project, int limit,
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
    if (!cc_store_textbuf_put(&page, "[", 1)) {
      rc = fail(s, CC_INTERNAL, "store: out of memory");
      break;
    }
    if ((rc = pg_acquire(s, &c))) break;
    rc = do_history(s, c, owner, project, limit, before_id, &page, &cursor);
    bool retry = rc == CC_UPSTREAM_ERROR && c->reused && c->in_call <= 1 && c->broken;
    pg_release(s, c);
    if (!retry) break;
  }
  if (!rc && !cc_store_textbuf_put(&page, "]", 1)) rc = fail(s, CC_INTERNAL, "store: out of memory");
  if (rc) {
    free(page.p);
    free(cursor);
    return rc;
  }
  *items = page.p; /* the page is built in place: "[" items "]" */
  if (next)
    *next = cursor;
  else
    free(cursor);
  return CC_OK;
}

cc_status pg_history(void *ctx, const char *owner, const char *project, int limit,
                     const char *before_id, cJSON **items, char **next) {
  char *text = NULL;
  cc_status rc = pg_history_json(ctx, owner, project, limit, before_id, &text, next);
  return cc_store_history_tree(&((pg *)ctx)->errs, rc, text, items, next);
}
