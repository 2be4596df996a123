/*
 * cc_store_pg_projects: the operations of the PostgreSQL back end on users, their tokens and
 * projects (see cc_store.h, docs/store.md): adding users and tokens, looking a token up,
 * listing and revoking; creating (against the per-owner limit, under a lock of the owner),
 * reading, listing and deleting projects, their generation, sandbox id and metadata.  Each
 * runs on a borrowed connection through CALL (cc_store_pg_int.h).
 */
#define _GNU_SOURCE
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_store_pg_int.h"

#define LOCK_OWNER 0x63636f77     /* "ccow": one owner's project count */

/* ------------------------------------------------------------------ users and tokens */

static cc_status do_user_ensure(pg *s, conn *c, const char *user, bool *created) {
  pg_num t = pg_n(cc_store_now(&s->o));
  const char *p[] = {user, t.v};
  PGresult *r;
  cc_status rc = pg_run(s, c, Q_USER_ENSURE, 2, p, &r, "create user", NULL);
  if (!rc && created) *created = strcmp(PQcmdTuples(r), "1") == 0;
  PQclear(r);
  return rc;
}

cc_status pg_user_ensure(void *ctx, const char *user, bool *created) {
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
  cc_status rc = pg_run(s, c, Q_USER_EXISTS, 1, pu, &r, "find user", NULL);
  if (rc) return rc;
  bool exists = PQntuples(r) == 1;
  PQclear(r);
  if (!exists) return fail(s, CC_NOT_FOUND, "store: no user %s", user);
  pg_num t = pg_n(cc_store_now(&s->o));
  const char *p[] = {user, h, label ? label : "", t.v};
  char state[6];
  rc = pg_run(s, c, Q_TOKEN_ADD, 4, p, &r, "add token", state);
  if (rc == CC_INTERNAL && strcmp(state, "23505") == 0)
    return fail(s, CC_CONFLICT, "store: a token with this hash exists");
  if (rc == CC_INTERNAL && strcmp(state, "23503") == 0)
    return fail(s, CC_NOT_FOUND, "store: no user %s", user);
  if (!rc && token_id) *token_id = pg_col_ll(r, 0, 0);
  PQclear(r);
  return rc;
}

cc_status pg_token_add(void *ctx, const char *user, const char *hash, const char *label,
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
  cc_status rc = pg_run(s, c, Q_TOKEN_LOOKUP, 1, p, &r, "look up token", NULL);
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

cc_status pg_token_lookup(void *ctx, const char *hash, char **user) {
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
  cc_status rc = pg_run(s, c, Q_TOKEN_LIST, 1, p, &r, "list tokens", NULL);
  if (rc) return rc;
  cJSON *arr = cJSON_CreateArray();
  bool ok = arr != NULL;
  for (int i = 0; ok && i < PQntuples(r); i++) {
    cJSON *t = cJSON_CreateObject();
    ok = t && cJSON_AddItemToArray(arr, t) &&
         cJSON_AddNumberToObject(t, "id", (double)pg_col_ll(r, i, 0)) &&
         cJSON_AddStringToObject(t, "label", PQgetvalue(r, i, 1)) &&
         cJSON_AddNumberToObject(t, "createdAt", (double)pg_col_ll(r, i, 2));
    if (ok && !PQgetisnull(r, i, 3))
      ok = cJSON_AddNumberToObject(t, "revokedAt", (double)pg_col_ll(r, i, 3)) != NULL;
  }
  PQclear(r);
  if (!ok) {
    cJSON_Delete(arr);
    return fail(s, CC_INTERNAL, "store: out of memory");
  }
  *out = arr;
  return CC_OK;
}

cc_status pg_token_list(void *ctx, const char *user, cJSON **tokens) {
  pg *s = ctx;
  *tokens = NULL;
  cc_status rc = cc_store_check_name(&s->errs, "user", user);
  if (rc) return rc;
  CALL(s, do_token_list(s, c, user, tokens));
  return rc;
}

static cc_status do_token_revoke(pg *s, conn *c, const char *user, int64_t id) {
  pg_num t = pg_n(cc_store_now(&s->o)), i = pg_n(id);
  const char *p[] = {t.v, i.v, user};
  PGresult *r;
  cc_status rc = pg_run(s, c, Q_TOKEN_REVOKE, 3, p, &r, "revoke token", NULL);
  if (!rc && strcmp(PQcmdTuples(r), "0") == 0)
    rc = fail(s, CC_NOT_FOUND, "store: user %s has no token %lld", user, (long long)id);
  PQclear(r);
  return rc;
}

cc_status pg_token_revoke(void *ctx, const char *user, int64_t token_id) {
  pg *s = ctx;
  cc_status rc = cc_store_check_name(&s->errs, "user", user);
  if (rc) return rc;
  CALL(s, do_token_revoke(s, c, user, token_id));
  return rc;
}

/* ------------------------------------------------------------------ projects */

static cc_status do_project_ensure(pg *s, conn *c, const char *owner, const char *project,
                                   bool *created) {
  long long id = 0;
  cc_status rc = pg_find_project(s, c, owner, project, &id);
  if (rc != CC_NOT_FOUND) return rc; /* exists (CC_OK) or failed */
  /* The owner's project count is checked and the row added under a lock of the owner, so
   * two workers cannot both add the last allowed project. */
  PGresult *r = NULL;
  pg_num k = pg_n(LOCK_OWNER), t = pg_n(cc_store_now(&s->o));
  const char *pl[] = {k.v, owner}, *pc[] = {owner}, *pi[] = {owner, project, t.v};
  if ((rc = pg_begin(s, c))) return rc;
  if ((rc = pg_run(s, c, Q_OWNER_LOCK, 2, pl, &r, "lock owner", NULL))) goto out;
  PQclear(r);
  if ((rc = pg_run(s, c, Q_PROJECT_COUNT, 1, pc, &r, "count projects", NULL))) goto out;
  long long n = pg_col_ll(r, 0, 0);
  PQclear(r);
  r = NULL;
  if (n >= s->o.projects_per_owner) {
    rc = fail(s, CC_TOO_LARGE, "store: owner has the maximum of %d projects",
              s->o.projects_per_owner);
    goto out;
  }
  if ((rc = pg_run(s, c, Q_PROJECT_INSERT, 3, pi, &r, "create project", NULL))) goto out;
  bool added = strcmp(PQcmdTuples(r), "1") == 0;
  PQclear(r);
  r = NULL;
  if ((rc = pg_commit(s, c))) goto out;
  if (created) *created = added;
out:
  PQclear(r);
  pg_rollback(s, c);
  return rc;
}

cc_status pg_project_ensure(void *ctx, const char *owner, const char *project,
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
  cc_store_last_record last = {pg_col_str(r, i, 6), pg_col_str(r, i, 7), pg_col_str(r, i, 8),
                               pg_col_ll(r, i, 9)};
  cc_store_project_row row = {
      .project = pg_col_str(r, i, 0),
      .sandbox_id = pg_col_str(r, i, 1),
      .metadata = pg_col_str(r, i, 2),
      .created_at = pg_col_ll(r, i, 3),
      .updated_at = pg_col_ll(r, i, 4),
      .generation = pg_col_ll(r, i, 5),
      .last = last.id ? &last : NULL,
  };
  return cc_store_build_info(&s->errs, &row, out);
}

static cc_status build_info(pg *s, conn *c, long long id, cJSON **out) {
  pg_num n = pg_n(id);
  const char *p[] = {n.v};
  PGresult *r;
  cc_status rc = pg_run(s, c, Q_PROJECT_INFO, 1, p, &r, "read project", NULL);
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
  cc_status rc = pg_find_project(s, c, owner, project, &id);
  return rc ? rc : build_info(s, c, id, info);
}

cc_status pg_project_get(void *ctx, const char *owner, const char *project, cJSON **info) {
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
  cc_status rc = pg_run(s, c, Q_PROJECT_LIST, 1, p, &r, "list projects", NULL);
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

cc_status pg_project_list(void *ctx, const char *owner, cJSON **list) {
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
  cc_status rc = pg_run(s, c, Q_PROJECT_DELETE, 2, p, &r, "delete project", NULL);
  if (!rc && deleted) *deleted = strcmp(PQcmdTuples(r), "0") != 0;
  PQclear(r);
  return rc;
}

cc_status pg_project_delete(void *ctx, const char *owner, const char *project,
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
  cc_status rc = pg_run(s, c, q, 2, p, &r, "read project", NULL);
  if (rc) return rc;
  if (PQntuples(r) != 1)
    rc = fail(s, CC_NOT_FOUND, "store: no project %s", project);
  else if (!PQgetisnull(r, 0, 0) && !(*out = cc_store_dup(PQgetvalue(r, 0, 0))))
    rc = fail(s, CC_INTERNAL, "store: out of memory");
  PQclear(r);
  return rc;
}

cc_status pg_project_generation(void *ctx, const char *owner, const char *project,
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

cc_status pg_project_sandbox(void *ctx, const char *owner, const char *project,
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
  pg_num t = pg_n(cc_store_now(&s->o));
  const char *pb[] = {owner, project, t.v}, *ps[] = {owner, project, sandbox_id, t.v};
  PGresult *r;
  cc_status rc = set_sandbox
                     ? pg_run(s, c, Q_PROJECT_SET_SANDBOX, 4, ps, &r, "update project", NULL)
                     : pg_run(s, c, Q_PROJECT_BUMP, 3, pb, &r, "update project", NULL);
  if (rc) return rc;
  if (PQntuples(r) != 1)
    rc = fail(s, CC_NOT_FOUND, "store: no project %s", project);
  else if (generation)
    *generation = pg_col_ll(r, 0, 0);
  PQclear(r);
  return rc;
}

cc_status pg_project_bump_generation(void *ctx, const char *owner, const char *project,
                                     int64_t *generation) {
  pg *s = ctx;
  if (generation) *generation = 0;
  cc_status rc = cc_store_check_owner_project(&s->errs, owner, project);
  if (rc) return rc;
  CALL(s, do_update_project(s, c, owner, project, false, NULL, generation));
  return rc;
}

cc_status pg_project_set_sandbox(void *ctx, const char *owner, const char *project,
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
  cc_status rc = pg_begin(s, c);
  if (rc) return rc;
  if ((rc = pg_run(s, c, Q_PROJECT_META_FOR_UPDATE, 2, pf, &r, "read metadata", NULL))) goto out;
  if (PQntuples(r) != 1) {
    rc = fail(s, CC_NOT_FOUND, "store: no project %s", project);
    goto out;
  }
  long long id = pg_col_ll(r, 0, 0);
  if ((rc = cc_store_patch_metadata(&s->errs, pg_col_str(r, 0, 1), own, s->o.metadata_max_bytes,
                                    &text)))
    goto out;
  PQclear(r);
  r = NULL;
  pg_num t = pg_n(cc_store_now(&s->o)), n = pg_n(id);
  const char *pu[] = {text, t.v, n.v};
  if ((rc = pg_run(s, c, Q_PROJECT_META_SET, 3, pu, &r, "update metadata", NULL))) goto out;
  if ((rc = pg_commit(s, c))) goto out;
  if (info) rc = build_info(s, c, id, info);
  if (info && rc == CC_OK && cJSON_GetArraySize(ignored) > 0)
    cJSON_AddItemToObject(*info, "ignored", cJSON_Duplicate(ignored, 1));
out:
  PQclear(r);
  pg_rollback(s, c);
  cJSON_free(text);
  return rc;
}

cc_status pg_project_patch(void *ctx, const char *owner, const char *project,
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
