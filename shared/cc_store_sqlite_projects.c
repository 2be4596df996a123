/*
 * cc_store_sqlite_projects: the operations of the SQLite back end on users, their tokens and
 * projects (see cc_store.h, docs/store.md): adding users and tokens, looking a token up,
 * listing and revoking; creating, reading, listing and deleting projects, their generation,
 * sandbox id and metadata, and the ProjectInfo of a project.  The handle, statements and
 * transactions are in cc_store_sqlite.c (cc_store_sqlite_int.h).
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "cc_store_sqlite_int.h"

/* ---- users and tokens ---- */

static cc_status do_user_ensure(sq *s, const char *user, bool *created) {
  cc_status rc = check_name(s, "user", user);
  if (rc) return rc;
  sqlite3_stmt *st;
  if ((rc = sq_prep(s, "INSERT OR IGNORE INTO users(name, created_at) VALUES(?1, ?2)", &st)))
    return rc;
  sq_bind_text(st, 1, user);
  sqlite3_bind_int64(st, 2, now(s));
  if (sqlite3_step(st) != SQLITE_DONE)
    rc = sq_dberr(s, "create user");
  else if (created)
    *created = sqlite3_changes(s->db) == 1;
  sq_done(s, st);
  return rc;
}

cc_status sq_user_ensure(void *ctx, const char *user, bool *created) {
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
  if ((rc = sq_begin(s))) return rc;
  if ((rc = sq_prep(s, "SELECT 1 FROM users WHERE name=?1", &st))) goto out;
  sq_bind_text(st, 1, user);
  int r = sqlite3_step(st);
  if (r != SQLITE_ROW) {
    rc = r == SQLITE_DONE ? fail(s, CC_NOT_FOUND, "store: no user %s", user)
                          : sq_dberr(s, "find user");
    goto out;
  }
  sq_done(s, st);
  if ((rc = sq_prep(s, "INSERT INTO tokens(user, hash, label, created_at) VALUES(?1,?2,?3,?4)",
                    &st)))
    goto out;
  sq_bind_text(st, 1, user);
  sq_bind_text(st, 2, h);
  sq_bind_text(st, 3, label ? label : "");
  sqlite3_bind_int64(st, 4, now(s));
  r = sqlite3_step(st);
  if (r == SQLITE_CONSTRAINT) {
    rc = fail(s, CC_CONFLICT, "store: a token with this hash exists");
    goto out;
  }
  if (r != SQLITE_DONE) {
    rc = sq_dberr(s, "add token");
    goto out;
  }
  int64_t id = sqlite3_last_insert_rowid(s->db);
  if ((rc = sq_commit(s))) goto out;
  if (token_id) *token_id = id;
out:
  sq_done(s, st);
  sq_rollback(s);
  return rc;
}

cc_status sq_token_add(void *ctx, const char *user, const char *hash, const char *label,
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
  cc_status rc = sq_prep(s, "SELECT user FROM tokens WHERE hash=?1 AND revoked_at IS NULL", &st);
  if (rc) return rc;
  sq_bind_text(st, 1, h);
  int r = sqlite3_step(st);
  if (r == SQLITE_ROW) {
    if (!(*user = dup_str((const char *)sqlite3_column_text(st, 0))))
      rc = fail(s, CC_INTERNAL, "store: out of memory");
  } else if (r == SQLITE_DONE) {
    rc = fail(s, CC_UNAUTHORIZED, "store: unknown or revoked token");
  } else {
    rc = sq_dberr(s, "look up token");
  }
  sq_done(s, st);
  return rc;
}

cc_status sq_token_lookup(void *ctx, const char *hash, char **user) {
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
  if ((rc = sq_prep(s,
                    "SELECT id, label, created_at, revoked_at FROM tokens WHERE user=?1 "
                    "ORDER BY id",
                    &st)))
    return rc;
  sq_bind_text(st, 1, user);
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
    rc = sq_dberr(s, "list tokens");
  sq_done(s, st);
  if (rc) {
    cJSON_Delete(arr);
    return rc;
  }
  *out = arr;
  return CC_OK;
}

cc_status sq_token_list(void *ctx, const char *user, cJSON **tokens) {
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
  if ((rc = sq_prep(s,
                    "UPDATE tokens SET revoked_at=COALESCE(revoked_at, ?1) "
                    "WHERE id=?2 AND user=?3",
                    &st)))
    return rc;
  sqlite3_bind_int64(st, 1, now(s));
  sqlite3_bind_int64(st, 2, id);
  sq_bind_text(st, 3, user);
  if (sqlite3_step(st) != SQLITE_DONE)
    rc = sq_dberr(s, "revoke token");
  else if (sqlite3_changes(s->db) == 0)
    rc = fail(s, CC_NOT_FOUND, "store: user %s has no token %lld", user, (long long)id);
  sq_done(s, st);
  return rc;
}

cc_status sq_token_revoke(void *ctx, const char *user, int64_t token_id) {
  sq *s = ctx;
  LOCK(s);
  cc_status rc = do_token_revoke(s, user, token_id);
  UNLOCK(s);
  return rc;
}

/* ---- projects ---- */

/* ProjectInfo of the project at rowid (cc_store_build_info makes it from the row). */
static cc_status build_info(sq *s, int64_t rowid, cJSON **out) {
  *out = NULL;
  sqlite3_stmt *st = NULL, *last = NULL;
  cc_status rc = sq_prep(s,
                         "SELECT project, sandbox_id, metadata, created_at, updated_at, generation "
                         "FROM projects WHERE id=?1",
                         &st);
  if (rc) goto out;
  sqlite3_bind_int64(st, 1, rowid);
  int r = sqlite3_step(st);
  if (r != SQLITE_ROW) {
    rc = r == SQLITE_DONE ? fail(s, CC_NOT_FOUND, "store: project vanished")
                          : sq_dberr(s, "read project");
    goto out;
  }
  if ((rc = sq_prep(s,
                    "SELECT id, op, status, created_at FROM records WHERE project_rowid=?1 "
                    "ORDER BY seq DESC LIMIT 1",
                    &last)))
    goto out;
  sqlite3_bind_int64(last, 1, rowid);
  r = sqlite3_step(last);
  if (r != SQLITE_ROW && r != SQLITE_DONE) {
    rc = sq_dberr(s, "read last execution");
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
  sq_done(s, st);
  sq_done(s, last);
  return rc;
}

static cc_status do_project_ensure(sq *s, const char *owner, const char *project, bool *created) {
  cc_status rc = check_owner_project(s, owner, project);
  if (rc) return rc;
  sqlite3_stmt *st = NULL;
  int64_t rowid;
  if ((rc = sq_begin(s))) return rc;
  rc = sq_find_project(s, owner, project, &rowid);
  if (rc != CC_NOT_FOUND) goto out; /* exists (CC_OK) or failed */
  if ((rc = sq_prep(s, "SELECT count(*) FROM projects WHERE owner=?1", &st))) goto out;
  sq_bind_text(st, 1, owner);
  if (sqlite3_step(st) != SQLITE_ROW) {
    rc = sq_dberr(s, "count projects");
    goto out;
  }
  if (sqlite3_column_int64(st, 0) >= s->o.projects_per_owner) {
    rc = fail(s, CC_TOO_LARGE, "store: owner has the maximum of %d projects",
              s->o.projects_per_owner);
    goto out;
  }
  sq_done(s, st);
  if ((rc = sq_prep(s,
                    "INSERT INTO projects(owner, project, created_at, updated_at) "
                    "VALUES(?1, ?2, ?3, ?3)",
                    &st)))
    goto out;
  sq_bind_text(st, 1, owner);
  sq_bind_text(st, 2, project);
  sqlite3_bind_int64(st, 3, now(s));
  if (sqlite3_step(st) != SQLITE_DONE) {
    rc = sq_dberr(s, "create project");
    goto out;
  }
  if ((rc = sq_commit(s))) goto out;
  if (created) *created = true;
out:
  sq_done(s, st);
  sq_rollback(s);
  return rc;
}

cc_status sq_project_ensure(void *ctx, const char *owner, const char *project,
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
  if (!rc) rc = sq_find_project(s, owner, project, &rowid);
  if (!rc) rc = build_info(s, rowid, info);
  return rc;
}

cc_status sq_project_get(void *ctx, const char *owner, const char *project, cJSON **info) {
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
  if ((rc = sq_prep(s, "SELECT id FROM projects WHERE owner=?1 ORDER BY project", &st))) return rc;
  sq_bind_text(st, 1, owner);
  cJSON *list = cJSON_CreateObject();
  cJSON *arr = cJSON_AddArrayToObject(list, "projects");
  if (!arr) rc = fail(s, CC_INTERNAL, "store: out of memory");
  int r = SQLITE_DONE;
  while (!rc && (r = sqlite3_step(st)) == SQLITE_ROW) {
    cJSON *info;
    if ((rc = build_info(s, sqlite3_column_int64(st, 0), &info))) break;
    cJSON_AddItemToArray(arr, info);
  }
  if (!rc && r != SQLITE_DONE) rc = sq_dberr(s, "list projects");
  sq_done(s, st);
  if (rc) {
    cJSON_Delete(list);
    return rc;
  }
  *out = list;
  return CC_OK;
}

cc_status sq_project_list(void *ctx, const char *owner, cJSON **list) {
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
  if ((rc = sq_prep(s, "DELETE FROM projects WHERE owner=?1 AND project=?2", &st))) return rc;
  sq_bind_text(st, 1, owner);
  sq_bind_text(st, 2, project);
  if (sqlite3_step(st) != SQLITE_DONE)
    rc = sq_dberr(s, "delete project");
  else if (deleted)
    *deleted = sqlite3_changes(s->db) > 0;
  sq_done(s, st);
  return rc;
}

cc_status sq_project_delete(void *ctx, const char *owner, const char *project,
                            bool *deleted) {
  sq *s = ctx;
  if (deleted) *deleted = false;
  LOCK(s);
  cc_status rc = do_project_delete(s, owner, project, deleted);
  UNLOCK(s);
  return rc;
}

/* Reads one column of the project row (generation or sandbox_id). */
cc_status sq_read_project_column(sq *s, const char *owner, const char *project,
                                 const char *sql, sqlite3_stmt **st) {
  cc_status rc = check_owner_project(s, owner, project);
  if (rc) return rc;
  if ((rc = sq_prep(s, sql, st))) return rc;
  sq_bind_text(*st, 1, owner);
  sq_bind_text(*st, 2, project);
  int r = sqlite3_step(*st);
  if (r == SQLITE_ROW) return CC_OK;
  rc = r == SQLITE_DONE ? fail(s, CC_NOT_FOUND, "store: no project %s", project)
                        : sq_dberr(s, "read project");
  sq_done(s, *st);
  *st = NULL;
  return rc;
}

cc_status sq_project_generation(void *ctx, const char *owner, const char *project,
                                int64_t *generation) {
  sq *s = ctx;
  sqlite3_stmt *st;
  *generation = 0;
  LOCK(s);
  cc_status rc = sq_read_project_column(
      s, owner, project, "SELECT generation FROM projects WHERE owner=?1 AND project=?2", &st);
  if (!rc) *generation = sqlite3_column_int64(st, 0);
  sq_done(s, st);
  UNLOCK(s);
  return rc;
}

cc_status sq_project_sandbox(void *ctx, const char *owner, const char *project,
                             char **sandbox_id) {
  sq *s = ctx;
  sqlite3_stmt *st;
  *sandbox_id = NULL;
  LOCK(s);
  cc_status rc = sq_read_project_column(
      s, owner, project, "SELECT sandbox_id FROM projects WHERE owner=?1 AND project=?2", &st);
  if (!rc && sqlite3_column_type(st, 0) != SQLITE_NULL &&
      !(*sandbox_id = dup_str((const char *)sqlite3_column_text(st, 0))))
    rc = fail(s, CC_INTERNAL, "store: out of memory");
  sq_done(s, st);
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
  if ((rc = sq_begin(s))) return rc;
  const char *sql = set_sandbox
                        ? "UPDATE projects SET generation = generation + (sandbox_id IS NOT ?3), "
                          "sandbox_id = ?3, updated_at = ?4 WHERE owner=?1 AND project=?2"
                        : "UPDATE projects SET generation = generation + 1, updated_at = ?4 "
                          "WHERE owner=?1 AND project=?2";
  if ((rc = sq_prep(s, sql, &st))) goto out;
  sq_bind_text(st, 1, owner);
  sq_bind_text(st, 2, project);
  if (set_sandbox) sq_bind_text(st, 3, sandbox_id);
  sqlite3_bind_int64(st, 4, now(s));
  if (sqlite3_step(st) != SQLITE_DONE) {
    rc = sq_dberr(s, "update project");
    goto out;
  }
  if (sqlite3_changes(s->db) == 0) {
    rc = fail(s, CC_NOT_FOUND, "store: no project %s", project);
    goto out;
  }
  sq_done(s, st);
  if ((rc = sq_prep(s, "SELECT generation FROM projects WHERE owner=?1 AND project=?2", &st)))
    goto out;
  sq_bind_text(st, 1, owner);
  sq_bind_text(st, 2, project);
  if (sqlite3_step(st) != SQLITE_ROW) {
    rc = sq_dberr(s, "read generation");
    goto out;
  }
  int64_t g = sqlite3_column_int64(st, 0);
  if ((rc = sq_commit(s))) goto out;
  if (generation) *generation = g;
out:
  sq_done(s, st);
  sq_rollback(s);
  return rc;
}

cc_status sq_project_bump_generation(void *ctx, const char *owner, const char *project,
                                     int64_t *generation) {
  sq *s = ctx;
  if (generation) *generation = 0;
  LOCK(s);
  cc_status rc = update_project(s, owner, project, false, NULL, generation);
  UNLOCK(s);
  return rc;
}

cc_status sq_project_set_sandbox(void *ctx, const char *owner, const char *project,
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
  if ((rc = sq_begin(s))) goto out;
  if ((rc = sq_find_project(s, owner, project, &rowid))) goto out;
  if ((rc = sq_prep(s, "SELECT metadata FROM projects WHERE id=?1", &st))) goto out;
  sqlite3_bind_int64(st, 1, rowid);
  if (sqlite3_step(st) != SQLITE_ROW) {
    rc = sq_dberr(s, "read metadata");
    goto out;
  }
  rc = cc_store_patch_metadata(&s->errs, (const char *)sqlite3_column_text(st, 0), own,
                               s->o.metadata_max_bytes, &text);
  sq_done(s, st);
  st = NULL;
  if (rc) goto out;
  if ((rc = sq_prep(s, "UPDATE projects SET metadata=?1, updated_at=?2 WHERE id=?3", &st)))
    goto out;
  sq_bind_text(st, 1, text);
  sqlite3_bind_int64(st, 2, now(s));
  sqlite3_bind_int64(st, 3, rowid);
  if (sqlite3_step(st) != SQLITE_DONE) {
    rc = sq_dberr(s, "update metadata");
    goto out;
  }
  if ((rc = sq_commit(s))) goto out;
  if (info) rc = build_info(s, rowid, info);
  if (info && rc == CC_OK && cJSON_GetArraySize(ignored) > 0) {
    cJSON_AddItemToObject(*info, "ignored", ignored);
    ignored = NULL;
  }
out:
  sq_done(s, st);
  sq_rollback(s);
  cJSON_Delete(own);
  cJSON_Delete(ignored);
  cJSON_free(text);
  return rc;
}

cc_status sq_project_patch(void *ctx, const char *owner, const char *project,
                           const cJSON *patch, cJSON **info) {
  sq *s = ctx;
  if (info) *info = NULL;
  LOCK(s);
  cc_status rc = do_project_patch(s, owner, project, patch, info);
  UNLOCK(s);
  return rc;
}
