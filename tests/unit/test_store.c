/* The store on real databases: the cache rules (TTL with an injected clock, generation),
 * history pruning to exactly the newest 1000, owner isolation, project metadata by merge
 * patch, the record lifecycle, startup recovery, tokens, threads and two handles.
 *
 * Without CC_TEST_PG_URI every test runs on SQLite files in a temp directory, plus the
 * SQLite-only ones (a process SIGKILLed in the middle of a transaction, schema-1 rows,
 * corruption).  With CC_TEST_PG_URI=postgresql://USER@HOST:PORT (a server the test may create
 * databases on; tests/lib/with-postgres.mjs starts one) the same rule tests run on the
 * PostgreSQL back end, each on a fresh database. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "cc_store.h"
#include "cc_test.h"

static char tmpdir[256];
static int dbn;
static const char *pg_base; /* CC_TEST_PG_URI: run on PostgreSQL */
static char last_path[300]; /* the database new_path made last */

typedef struct {
  int64_t t;
} fake_clock;

static int64_t fake_now(void *ctx) {
  return ((fake_clock *)ctx)->t;
}

/* A fresh database: a file in the temp dir, or a new PostgreSQL database. */
static void new_path(char *buf, size_t len) {
  ++dbn;
  if (!pg_base) {
    snprintf(buf, len, "%s/db%d.sqlite", tmpdir, dbn);
    snprintf(last_path, sizeof last_path, "%s", buf);
    return;
  }
  char admin[300], sql[128];
  snprintf(admin, sizeof admin, "%s/postgres", pg_base);
  snprintf(sql, sizeof sql, "CREATE DATABASE cc_store_%d_%d", (int)getpid(), dbn);
  PGconn *c = PQconnectdb(admin);
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) fprintf(stderr, "%s: %s\n", sql, PQerrorMessage(c));
  CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
  PQclear(r);
  PQfinish(c);
  snprintf(buf, len, "%s/cc_store_%d_%d", pg_base, (int)getpid(), dbn);
  snprintf(last_path, sizeof last_path, "%s", buf);
}

static cc_store *open_at(const char *path, fake_clock *clk, cc_store_options *extra) {
  cc_store_options o;
  if (extra)
    o = *extra;
  else
    cc_store_options_init(&o);
  o.path = path;
  if (clk) {
    o.now_ms = fake_now;
    o.clock_ctx = clk;
  }
  cc_store *s = NULL;
  char err[256];
  cc_status st = cc_store_open(&o, &s, err, sizeof err);
  if (st != CC_OK) fprintf(stderr, "open %s: %s\n", path, err);
  CHECK_INT(st, CC_OK);
  return s;
}

static cc_store *open_new(fake_clock *clk, cc_store_options *extra) {
  char path[300];
  new_path(path, sizeof path);
  return open_at(path, clk, extra);
}

static cJSON *result_json(const char *stdout_text, int exit_code) {
  cJSON *r = cJSON_CreateObject();
  cJSON_AddStringToObject(r, "stdout", stdout_text);
  cJSON_AddStringToObject(r, "stderr", "");
  cJSON_AddNumberToObject(r, "exitCode", exit_code);
  return r;
}

static const char *str_of(const cJSON *obj, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num_of(const cJSON *obj, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
  return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* cache_get and report hit; checks the stored stdout on a hit. */
static bool cache_hit(cc_store *s, const char *owner, const char *project, const char *key,
                      const char *want_stdout) {
  bool hit = true;
  cJSON *r = NULL;
  CHECK_INT(cc_store_cache_get(s, owner, project, key, &hit, &r), CC_OK);
  if (hit && want_stdout) CHECK_STR(str_of(r, "stdout"), want_stdout);
  if (!hit) CHECK(r == NULL);
  cJSON_Delete(r);
  return hit;
}

/* ---- cache ---- */

static void cache_ttl_expiry(void) {
  fake_clock clk = {1700000000000};
  cc_store_options o;
  cc_store_options_init(&o);
  CHECK_INT(o.cache_ttl_ms, 3600000); /* the default TTL is one hour */
  cc_store *s = open_new(&clk, NULL);
  CHECK_INT(cc_store_project_ensure(s, "alice", "p1", NULL), CC_OK);
  int64_t g = -1;
  CHECK_INT(cc_store_project_generation(s, "alice", "p1", &g), CC_OK);
  cJSON *r = result_json("hello\n", 0);
  CHECK_INT(cc_store_cache_put(s, "alice", "p1", "k-echo", "echo hello", g, r), CC_OK);
  cJSON_Delete(r);
  CHECK(cache_hit(s, "alice", "p1", "k-echo", "hello\n"));
  CHECK(!cache_hit(s, "alice", "p1", "k-other", NULL));
  clk.t += 3600000 - 1; /* one ms before expiry: still served */
  CHECK(cache_hit(s, "alice", "p1", "k-echo", "hello\n"));
  clk.t += 1; /* exactly one hour old: expired */
  CHECK(!cache_hit(s, "alice", "p1", "k-echo", NULL));
  /* A new put refreshes the age. */
  r = result_json("again\n", 0);
  CHECK_INT(cc_store_cache_put(s, "alice", "p1", "k-echo", "echo hello", g, r), CC_OK);
  cJSON_Delete(r);
  CHECK(cache_hit(s, "alice", "p1", "k-echo", "again\n"));
  cc_store_close(s);

  /* A configured TTL is honoured. */
  cc_store_options_init(&o);
  o.cache_ttl_ms = 5000;
  s = open_new(&clk, &o);
  CHECK_INT(cc_store_project_ensure(s, "alice", "p1", NULL), CC_OK);
  r = result_json("x", 0);
  CHECK_INT(cc_store_cache_put(s, "alice", "p1", "k", "x", 0, r), CC_OK);
  cJSON_Delete(r);
  clk.t += 4999;
  CHECK(cache_hit(s, "alice", "p1", "k", "x"));
  clk.t += 1;
  CHECK(!cache_hit(s, "alice", "p1", "k", NULL));
  cc_store_close(s);
}

static void cache_generation_rule(void) {
  fake_clock clk = {1000};
  cc_store *s = open_new(&clk, NULL);
  CHECK_INT(cc_store_project_ensure(s, "alice", "p1", NULL), CC_OK);
  int64_t g0 = -1, g1 = -1, g2 = -1, g = -1;
  CHECK_INT(cc_store_project_generation(s, "alice", "p1", &g0), CC_OK);
  CHECK_INT(g0, 0);
  cJSON *r = result_json("a.txt\n", 0);
  CHECK_INT(cc_store_cache_put(s, "alice", "p1", "ls", "ls", g0, r), CC_OK);

  /* A readOnly exec: the worker does not bump, so the entry keeps hitting. */
  for (int i = 0; i < 3; i++) CHECK(cache_hit(s, "alice", "p1", "ls", "a.txt\n"));
  CHECK_INT(cc_store_project_generation(s, "alice", "p1", &g), CC_OK);
  CHECK_INT(g, g0);

  /* A state change (writeFile, non-readOnly exec, ...) bumps: the old entry is stale. */
  CHECK_INT(cc_store_project_bump_generation(s, "alice", "p1", &g1), CC_OK);
  CHECK_INT(g1, g0 + 1);
  CHECK(!cache_hit(s, "alice", "p1", "ls", NULL));
  /* Still stale later within the TTL: no path back to a stale entry. */
  clk.t += 1000;
  CHECK(!cache_hit(s, "alice", "p1", "ls", NULL));
  /* Re-running stores at the new generation and repeats hit again. */
  CHECK_INT(cc_store_cache_put(s, "alice", "p1", "ls", "ls", g1, r), CC_OK);
  CHECK(cache_hit(s, "alice", "p1", "ls", "a.txt\n"));
  /* An entry stored at an old generation (result of a run that raced a change) misses. */
  CHECK_INT(cc_store_cache_put(s, "alice", "p1", "old", "old", g0, r), CC_OK);
  CHECK(!cache_hit(s, "alice", "p1", "old", NULL));

  /* Re-created sandbox: set_sandbox bumps when the id changes, not when it stays. */
  CHECK_INT(cc_store_project_set_sandbox(s, "alice", "p1", "sbx-1", &g2), CC_OK);
  CHECK_INT(g2, g1 + 1);
  CHECK(!cache_hit(s, "alice", "p1", "ls", NULL));
  CHECK_INT(cc_store_cache_put(s, "alice", "p1", "ls", "ls", g2, r), CC_OK);
  CHECK_INT(cc_store_project_set_sandbox(s, "alice", "p1", "sbx-1", &g), CC_OK);
  CHECK_INT(g, g2);
  CHECK(cache_hit(s, "alice", "p1", "ls", "a.txt\n"));
  CHECK_INT(cc_store_project_set_sandbox(s, "alice", "p1", "sbx-2", &g), CC_OK);
  CHECK_INT(g, g2 + 1);
  CHECK(!cache_hit(s, "alice", "p1", "ls", NULL));
  char *sbx = NULL;
  CHECK_INT(cc_store_project_sandbox(s, "alice", "p1", &sbx), CC_OK);
  CHECK_STR(sbx, "sbx-2");
  free(sbx);

  /* Bumps survive reopening. */
  char path[300];
  snprintf(path, sizeof path, "%s", last_path);
  cc_store_close(s);
  s = open_at(path, &clk, NULL);
  CHECK_INT(cc_store_project_generation(s, "alice", "p1", &g), CC_OK);
  CHECK_INT(g, g2 + 1);
  CHECK_INT(cc_store_project_bump_generation(s, "alice", "nope", &g), CC_NOT_FOUND);
  cJSON_Delete(r);
  cc_store_close(s);
}

static void cache_clear_and_bound(void) {
  fake_clock clk = {1000};
  cc_store_options o;
  cc_store_options_init(&o);
  o.cache_entries_per_project = 3;
  cc_store *s = open_new(&clk, &o);
  CHECK_INT(cc_store_project_ensure(s, "alice", "p1", NULL), CC_OK);
  cJSON *r = result_json("out", 0);
  /* Same cmd under two cwd/env keys, and another cmd. */
  CHECK_INT(cc_store_cache_put(s, "alice", "p1", "ls|/home", "ls", 0, r), CC_OK);
  CHECK_INT(cc_store_cache_put(s, "alice", "p1", "ls|/tmp", "ls", 0, r), CC_OK);
  CHECK_INT(cc_store_cache_put(s, "alice", "p1", "pwd|/", "pwd", 0, r), CC_OK);
  int64_t n = -1;
  CHECK_INT(cc_store_cache_clear(s, "alice", "p1", "ls", &n), CC_OK);
  CHECK_INT(n, 2);
  CHECK(!cache_hit(s, "alice", "p1", "ls|/home", NULL));
  CHECK(cache_hit(s, "alice", "p1", "pwd|/", "out"));
  CHECK_INT(cc_store_cache_clear(s, "alice", "p1", NULL, &n), CC_OK);
  CHECK_INT(n, 1);
  CHECK_INT(cc_store_cache_count(s, "alice", "p1", &n), CC_OK);
  CHECK_INT(n, 0);
  CHECK_INT(cc_store_cache_clear(s, "alice", "missing", NULL, &n), CC_OK);
  CHECK_INT(n, 0);

  /* Bounded: five puts keep the newest three; the two oldest are evicted. */
  const char *keys[] = {"k1", "k2", "k3", "k4", "k5"};
  for (int i = 0; i < 5; i++) {
    clk.t++;
    CHECK_INT(cc_store_cache_put(s, "alice", "p1", keys[i], keys[i], 0, r), CC_OK);
  }
  CHECK_INT(cc_store_cache_count(s, "alice", "p1", &n), CC_OK);
  CHECK_INT(n, 3);
  CHECK(!cache_hit(s, "alice", "p1", "k1", NULL));
  CHECK(!cache_hit(s, "alice", "p1", "k2", NULL));
  for (int i = 2; i < 5; i++) CHECK(cache_hit(s, "alice", "p1", keys[i], "out"));
  /* Replacing an existing key does not evict another. */
  CHECK_INT(cc_store_cache_put(s, "alice", "p1", "k3", "k3", 0, r), CC_OK);
  CHECK_INT(cc_store_cache_count(s, "alice", "p1", &n), CC_OK);
  CHECK_INT(n, 3);
  CHECK(cache_hit(s, "alice", "p1", "k4", "out"));
  /* Put on a missing project is refused; a too-large result is a distinct error. */
  CHECK_INT(cc_store_cache_put(s, "alice", "nope", "k", "k", 0, r), CC_NOT_FOUND);
  cJSON_Delete(r);
  cc_store_close(s);

  cc_store_options_init(&o);
  o.json_max_bytes = 64;
  s = open_new(&clk, &o);
  CHECK_INT(cc_store_project_ensure(s, "alice", "p1", NULL), CC_OK);
  char big[200];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  r = result_json(big, 0);
  CHECK_INT(cc_store_cache_put(s, "alice", "p1", "k", "k", 0, r), CC_TOO_LARGE);
  CHECK_INT(cc_store_record_insert(s, "alice", "p1", NULL, "exec", r, NULL), CC_TOO_LARGE);
  cJSON_Delete(r);
  cc_store_close(s);
}

/* ---- history ---- */

static void pruning_keeps_exactly_newest_1000(void) {
  fake_clock clk = {5000};
  cc_store *s = open_new(&clk, NULL); /* the real default: 1000 */
  CHECK_INT(cc_store_project_ensure(s, "alice", "p1", NULL), CC_OK);
  CHECK_INT(cc_store_project_ensure(s, "alice", "p2", NULL), CC_OK);
  char other[CC_STORE_ID_LEN + 1];
  CHECK_INT(cc_store_record_insert(s, "alice", "p2", NULL, "exec", NULL, other), CC_OK);

  enum { TOTAL = 1005 };
  static char ids[TOTAL][CC_STORE_ID_LEN + 1];
  for (int i = 0; i < TOTAL; i++) {
    clk.t++;
    cJSON *in = cJSON_CreateObject();
    cJSON_AddNumberToObject(in, "n", i);
    CHECK_INT(cc_store_record_insert(s, "alice", "p1", NULL, "exec", in, ids[i]), CC_OK);
    cJSON_Delete(in);
  }
  CHECK_INT(strlen(ids[0]), CC_STORE_ID_LEN);
  CHECK(strcmp(ids[0], ids[1]) != 0);

  /* One page of everything: exactly 1000, newest first, no further page. */
  cJSON *items = NULL;
  char *next = NULL;
  CHECK_INT(cc_store_history(s, "alice", "p1", 5000, NULL, &items, &next), CC_OK);
  CHECK_INT(cJSON_GetArraySize(items), 1000);
  CHECK(next == NULL);
  CHECK_STR(str_of(cJSON_GetArrayItem(items, 0), "id"), ids[TOTAL - 1]);
  CHECK_STR(str_of(cJSON_GetArrayItem(items, 999), "id"), ids[TOTAL - 1000]);
  CHECK_INT(num_of(cJSON_GetObjectItem(cJSON_GetArrayItem(items, 999), "input"), "n"), 5);
  cJSON_Delete(items);

  /* The five oldest are gone; the oldest kept is there; p2's record is untouched. */
  for (int i = 0; i < TOTAL - 1000; i++) {
    cJSON *rec = NULL;
    CHECK_INT(cc_store_record_get(s, "alice", ids[i], &rec), CC_NOT_FOUND);
    CHECK(rec == NULL);
  }
  cJSON *rec = NULL;
  CHECK_INT(cc_store_record_get(s, "alice", ids[TOTAL - 1000], &rec), CC_OK);
  cJSON_Delete(rec);
  CHECK_INT(cc_store_record_get(s, "alice", other, &rec), CC_OK);
  cJSON_Delete(rec);

  /* Paging with the before cursor walks all 1000 once, in order: 300+300+300+100. */
  const char *before = NULL;
  char *cursor = NULL;
  int seen = 0, pages = 0;
  for (;;) {
    CHECK_INT(cc_store_history(s, "alice", "p1", 300, before, &items, &next), CC_OK);
    int n = cJSON_GetArraySize(items);
    for (int i = 0; i < n; i++)
      CHECK_STR(str_of(cJSON_GetArrayItem(items, i), "id"), ids[TOTAL - 1 - seen - i]);
    seen += n;
    pages++;
    cJSON_Delete(items);
    free(cursor);
    cursor = next;
    before = next;
    if (!next || pages > 10) break;
  }
  free(cursor);
  CHECK_INT(seen, 1000);
  CHECK_INT(pages, 4);

  /* A default page is 50; a pruned cursor gives an empty page. */
  CHECK_INT(cc_store_history(s, "alice", "p1", 0, NULL, &items, &next), CC_OK);
  CHECK_INT(cJSON_GetArraySize(items), CC_STORE_DEFAULT_HISTORY_PAGE);
  CHECK(next != NULL);
  cJSON_Delete(items);
  free(next);
  CHECK_INT(cc_store_history(s, "alice", "p1", 10, ids[0], &items, &next), CC_OK);
  CHECK_INT(cJSON_GetArraySize(items), 0);
  CHECK(next == NULL);
  cJSON_Delete(items);
  CHECK_INT(cc_store_integrity_check(s), CC_OK);
  cc_store_close(s);
}

static void pruning_honours_configured_keep(void) {
  fake_clock clk = {5000};
  cc_store_options o;
  cc_store_options_init(&o);
  o.history_keep = 3;
  cc_store *s = open_new(&clk, &o);
  CHECK_INT(cc_store_project_ensure(s, "alice", "p", NULL), CC_OK);
  char id[CC_STORE_ID_LEN + 1];
  for (int i = 0; i < 10; i++)
    CHECK_INT(cc_store_record_insert(s, "alice", "p", NULL, "exec", NULL, id), CC_OK);
  cJSON *items = NULL;
  CHECK_INT(cc_store_history(s, "alice", "p", 100, NULL, &items, NULL), CC_OK);
  CHECK_INT(cJSON_GetArraySize(items), 3);
  CHECK_STR(str_of(cJSON_GetArrayItem(items, 0), "id"), id);
  cJSON_Delete(items);
  cc_store_close(s);
}

/* ---- records ---- */

static void record_lifecycle(void) {
  fake_clock clk = {10000};
  cc_store *s = open_new(&clk, NULL);
  CHECK_INT(cc_store_project_ensure(s, "alice", "p1", NULL), CC_OK);
  cJSON *input = cJSON_Parse("{\"cmd\":\"echo hi\",\"cwd\":\"/home/user\"}");
  char id[CC_STORE_ID_LEN + 1];
  CHECK_INT(cc_store_record_insert(s, "alice", "p1", "exec-1", "exec", input, id), CC_OK);
  CHECK_STR(id, "exec-1");
  CHECK_INT(cc_store_record_insert(s, "alice", "p1", "exec-1", "exec", input, id), CC_CONFLICT);
  CHECK_INT(cc_store_record_insert(s, "alice", "nope", NULL, "exec", input, id), CC_NOT_FOUND);
  CHECK_INT(cc_store_record_insert(s, "alice", "p1", "bad id!", "exec", input, id), CC_BAD_REQUEST);

  cJSON *rec = NULL;
  CHECK_INT(cc_store_record_get(s, "alice", "exec-1", &rec), CC_OK);
  CHECK_STR(str_of(rec, "status"), "pending");
  CHECK_STR(str_of(rec, "op"), "exec");
  CHECK_STR(str_of(rec, "projectId"), "p1");
  CHECK_STR(str_of(cJSON_GetObjectItem(rec, "input"), "cmd"), "echo hi");
  CHECK_INT(num_of(rec, "createdAt"), 10000);
  CHECK(!cJSON_HasObjectItem(rec, "finishedAt"));
  cJSON_Delete(rec);

  CHECK_INT(cc_store_record_finish(s, "alice", "exec-1", CC_RECORD_RUNNING, NULL, NULL, NULL),
            CC_BAD_REQUEST);
  CHECK_INT(cc_store_record_set_running(s, "alice", "exec-1"), CC_OK);
  CHECK_INT(cc_store_record_set_running(s, "alice", "exec-1"), CC_CONFLICT);
  clk.t += 250;
  cJSON *res = result_json("hi\n", 0);
  cJSON_AddStringToObject(res, "id", "spoofed"); /* the record's own fields win */
  cJSON_AddStringToObject(res, "status", "spoofed");
  cJSON_AddNumberToObject(res, "duration", 250);
  CHECK_INT(cc_store_record_finish(s, "alice", "exec-1", CC_RECORD_SUCCESS, res, NULL, NULL),
            CC_OK);
  CHECK_INT(cc_store_record_finish(s, "alice", "exec-1", CC_RECORD_FAILED, res, NULL, NULL),
            CC_CONFLICT);
  CHECK_INT(cc_store_record_set_running(s, "alice", "exec-1"), CC_CONFLICT);
  CHECK_INT(cc_store_record_get(s, "alice", "exec-1", &rec), CC_OK);
  CHECK_STR(str_of(rec, "id"), "exec-1");
  CHECK_STR(str_of(rec, "status"), "success");
  CHECK_STR(str_of(rec, "stdout"), "hi\n");
  CHECK_INT(num_of(rec, "exitCode"), 0);
  CHECK_INT(num_of(rec, "duration"), 250);
  CHECK_INT(num_of(rec, "finishedAt"), 10250);
  CHECK(!cJSON_HasObjectItem(rec, "error"));
  cJSON_Delete(rec);
  cJSON_Delete(res);

  /* An operation that could not run: error with {code, message}, the input kept. */
  CHECK_INT(cc_store_record_insert(s, "alice", "p1", NULL, "readFile", input, id), CC_OK);
  CHECK_INT(cc_store_record_finish(s, "alice", id, CC_RECORD_ERROR, NULL, "sandbox_unavailable",
                                   "no sandbox"),
            CC_OK);
  CHECK_INT(cc_store_record_get(s, "alice", id, &rec), CC_OK);
  CHECK_STR(str_of(rec, "status"), "error");
  CHECK_STR(str_of(cJSON_GetObjectItem(rec, "error"), "code"), "sandbox_unavailable");
  CHECK_STR(str_of(cJSON_GetObjectItem(rec, "error"), "message"), "no sandbox");
  CHECK_STR(str_of(cJSON_GetObjectItem(rec, "input"), "cmd"), "echo hi");
  cJSON_Delete(rec);

  /* Pending straight to canceled / timeout is allowed. */
  CHECK_INT(cc_store_record_insert(s, "alice", "p1", NULL, "exec", NULL, id), CC_OK);
  CHECK_INT(cc_store_record_finish(s, "alice", id, CC_RECORD_CANCELED, NULL, NULL, NULL), CC_OK);

  /* ProjectInfo.lastExecution follows the newest record. */
  cJSON *info = NULL;
  CHECK_INT(cc_store_project_get(s, "alice", "p1", &info), CC_OK);
  CHECK_STR(str_of(cJSON_GetObjectItem(info, "lastExecution"), "id"), id);
  CHECK_STR(str_of(cJSON_GetObjectItem(info, "lastExecution"), "status"), "canceled");
  cJSON_Delete(info);
  cJSON_Delete(input);

  /* Status names round trip. */
  for (int i = 0; i < CC_RECORD_STATUS_COUNT; i++) {
    cc_proto_record_status back;
    CHECK(cc_proto_record_status_from_name(cc_proto_record_status_name((cc_proto_record_status)i),
                                           &back));
    CHECK_INT(back, i);
  }
  cc_store_close(s);
}

static void recovery_marks_interrupted_records(void) {
  fake_clock clk = {20000};
  char path[300];
  new_path(path, sizeof path);
  cc_store *s = open_at(path, &clk, NULL);
  CHECK_INT(cc_store_project_ensure(s, "alice", "p1", NULL), CC_OK);
  CHECK_INT(cc_store_project_ensure(s, "bob", "p1", NULL), CC_OK);
  CHECK_INT(cc_store_record_insert(s, "alice", "p1", "pend", "exec", NULL, NULL), CC_OK);
  CHECK_INT(cc_store_record_insert(s, "alice", "p1", "run", "exec", NULL, NULL), CC_OK);
  CHECK_INT(cc_store_record_set_running(s, "alice", "run"), CC_OK);
  CHECK_INT(cc_store_record_insert(s, "bob", "p1", "bobrun", "setupProject", NULL, NULL), CC_OK);
  CHECK_INT(cc_store_record_set_running(s, "bob", "bobrun"), CC_OK);
  CHECK_INT(cc_store_record_insert(s, "alice", "p1", "done", "exec", NULL, NULL), CC_OK);
  cJSON *res = result_json("ok", 0);
  CHECK_INT(cc_store_record_finish(s, "alice", "done", CC_RECORD_SUCCESS, res, NULL, NULL), CC_OK);
  cJSON_Delete(res);
  cc_store_close(s); /* the worker "stops" with work in flight */

  clk.t = 30000;
  s = open_at(path, &clk, NULL);
  int64_t n = -1;
  CHECK_INT(cc_store_recover(s, &n), CC_OK);
  CHECK_INT(n, 3);
  const struct {
    const char *owner, *id;
  } interrupted[] = {{"alice", "pend"}, {"alice", "run"}, {"bob", "bobrun"}};
  for (int i = 0; i < 3; i++) {
    cJSON *rec = NULL;
    CHECK_INT(cc_store_record_get(s, interrupted[i].owner, interrupted[i].id, &rec), CC_OK);
    CHECK_STR(str_of(rec, "status"), "error");
    CHECK_STR(str_of(cJSON_GetObjectItem(rec, "error"), "code"), "internal");
    const char *msg = str_of(cJSON_GetObjectItem(rec, "error"), "message");
    CHECK(msg && strstr(msg, "worker stopped"));
    CHECK_INT(num_of(rec, "finishedAt"), 30000);
    cJSON_Delete(rec);
  }
  cJSON *rec = NULL;
  CHECK_INT(cc_store_record_get(s, "alice", "done", &rec), CC_OK);
  CHECK_STR(str_of(rec, "status"), "success");
  CHECK(!cJSON_HasObjectItem(rec, "error"));
  cJSON_Delete(rec);
  CHECK_INT(cc_store_recover(s, &n), CC_OK);
  CHECK_INT(n, 0);
  cc_store_close(s);
}

/* ---- tenancy ---- */

static void owners_never_see_each_other(void) {
  fake_clock clk = {40000};
  cc_store *s = open_new(&clk, NULL);
  const char *owners[2] = {"alice", "bob"};
  char ids[2][CC_STORE_ID_LEN + 1];
  for (int i = 0; i < 2; i++) {
    CHECK_INT(cc_store_project_ensure(s, owners[i], "shared-name", NULL), CC_OK);
    cJSON *in = cJSON_CreateObject();
    cJSON_AddStringToObject(in, "cmd", owners[i]);
    CHECK_INT(cc_store_record_insert(s, owners[i], "shared-name", NULL, "exec", in, ids[i]), CC_OK);
    cJSON *res = result_json(owners[i], 0);
    CHECK_INT(cc_store_record_finish(s, owners[i], ids[i], CC_RECORD_SUCCESS, res, NULL, NULL),
              CC_OK);
    CHECK_INT(cc_store_cache_put(s, owners[i], "shared-name", "cat secret", "cat secret", 0, res),
              CC_OK);
    cJSON_Delete(res);
    cJSON_Delete(in);
    cJSON *patch = cJSON_CreateObject();
    cJSON_AddStringToObject(patch, "name", owners[i]);
    CHECK_INT(cc_store_project_patch(s, owners[i], "shared-name", patch, NULL), CC_OK);
    cJSON_Delete(patch);
  }
  CHECK_INT(cc_store_project_ensure(s, "alice", "alice-only", NULL), CC_OK);

  for (int i = 0; i < 2; i++) {
    const char *me = owners[i], *other = owners[1 - i];
    /* Cache: each gets its own entry. */
    CHECK(cache_hit(s, me, "shared-name", "cat secret", me));
    /* Metadata. */
    cJSON *info = NULL;
    CHECK_INT(cc_store_project_get(s, me, "shared-name", &info), CC_OK);
    CHECK_STR(str_of(info, "name"), me);
    CHECK_STR(str_of(cJSON_GetObjectItem(info, "lastExecution"), "id"), ids[i]);
    cJSON_Delete(info);
    /* History. */
    cJSON *items = NULL;
    CHECK_INT(cc_store_history(s, me, "shared-name", 10, NULL, &items, NULL), CC_OK);
    CHECK_INT(cJSON_GetArraySize(items), 1);
    CHECK_STR(str_of(cJSON_GetArrayItem(items, 0), "stdout"), me);
    cJSON_Delete(items);
    /* getResult of the other owner's id: not found, and no transition allowed. */
    cJSON *rec = (cJSON *)1;
    CHECK_INT(cc_store_record_get(s, me, ids[1 - i], &rec), CC_NOT_FOUND);
    CHECK(rec == NULL);
    CHECK_INT(cc_store_record_finish(s, me, ids[1 - i], CC_RECORD_FAILED, NULL, NULL, NULL),
              CC_NOT_FOUND);
    CHECK_INT(cc_store_record_set_running(s, me, ids[1 - i]), CC_NOT_FOUND);
    /* A cursor from the other owner's history gives nothing. */
    CHECK_INT(cc_store_history(s, me, "shared-name", 10, ids[1 - i], &items, NULL), CC_OK);
    CHECK_INT(cJSON_GetArraySize(items), 0);
    cJSON_Delete(items);
    (void)other;
  }
  /* Listing shows only one's own projects. */
  cJSON *list = NULL;
  CHECK_INT(cc_store_project_list(s, "bob", &list), CC_OK);
  cJSON *projects = cJSON_GetObjectItem(list, "projects");
  CHECK_INT(cJSON_GetArraySize(projects), 1);
  CHECK_STR(str_of(cJSON_GetArrayItem(projects, 0), "projectId"), "shared-name");
  CHECK_STR(str_of(cJSON_GetArrayItem(projects, 0), "name"), "bob");
  cJSON_Delete(list);
  CHECK_INT(cc_store_project_list(s, "alice", &list), CC_OK);
  CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(list, "projects")), 2);
  cJSON_Delete(list);
  cJSON *info = NULL;
  CHECK_INT(cc_store_project_get(s, "bob", "alice-only", &info), CC_NOT_FOUND);
  CHECK(info == NULL);

  /* bob's generation bump, cache clear and delete leave alice's project alone. */
  int64_t g = -1, n = -1;
  CHECK_INT(cc_store_project_bump_generation(s, "bob", "shared-name", &g), CC_OK);
  CHECK(cache_hit(s, "alice", "shared-name", "cat secret", "alice"));
  CHECK_INT(cc_store_cache_clear(s, "bob", "shared-name", NULL, &n), CC_OK);
  CHECK_INT(n, 1);
  CHECK(cache_hit(s, "alice", "shared-name", "cat secret", "alice"));
  bool deleted = false;
  CHECK_INT(cc_store_project_delete(s, "bob", "alice-only", &deleted), CC_OK);
  CHECK(!deleted);
  CHECK_INT(cc_store_project_delete(s, "bob", "shared-name", &deleted), CC_OK);
  CHECK(deleted);
  CHECK_INT(cc_store_project_get(s, "alice", "shared-name", &info), CC_OK);
  CHECK_STR(str_of(info, "name"), "alice");
  cJSON_Delete(info);
  cJSON *rec = NULL;
  CHECK_INT(cc_store_record_get(s, "alice", ids[0], &rec), CC_OK);
  cJSON_Delete(rec);
  cc_store_close(s);
}

static void delete_drops_everything(void) {
  fake_clock clk = {50000};
  cc_store *s = open_new(&clk, NULL);
  CHECK_INT(cc_store_project_ensure(s, "alice", "p1", NULL), CC_OK);
  char id[CC_STORE_ID_LEN + 1];
  CHECK_INT(cc_store_record_insert(s, "alice", "p1", NULL, "exec", NULL, id), CC_OK);
  cJSON *r = result_json("x", 0);
  CHECK_INT(cc_store_cache_put(s, "alice", "p1", "k", "k", 0, r), CC_OK);
  cJSON_Delete(r);
  cJSON *patch = cJSON_Parse("{\"name\":\"old\",\"settings\":{\"a\":1}}");
  CHECK_INT(cc_store_project_patch(s, "alice", "p1", patch, NULL), CC_OK);
  cJSON_Delete(patch);
  CHECK_INT(cc_store_project_set_sandbox(s, "alice", "p1", "sbx", NULL), CC_OK);
  CHECK_INT(cc_store_project_bump_generation(s, "alice", "p1", NULL), CC_OK);

  bool deleted = false;
  CHECK_INT(cc_store_project_delete(s, "alice", "p1", &deleted), CC_OK);
  CHECK(deleted);
  cJSON *rec = NULL, *items = NULL, *info = NULL;
  CHECK_INT(cc_store_record_get(s, "alice", id, &rec), CC_NOT_FOUND);
  CHECK_INT(cc_store_project_get(s, "alice", "p1", &info), CC_NOT_FOUND);
  int64_t n = -1;
  CHECK_INT(cc_store_cache_count(s, "alice", "p1", &n), CC_OK);
  CHECK_INT(n, 0);

  /* The same projectId again starts from nothing. */
  bool created = false;
  CHECK_INT(cc_store_project_ensure(s, "alice", "p1", &created), CC_OK);
  CHECK(created);
  CHECK(!cache_hit(s, "alice", "p1", "k", NULL));
  CHECK_INT(cc_store_history(s, "alice", "p1", 10, NULL, &items, NULL), CC_OK);
  CHECK_INT(cJSON_GetArraySize(items), 0);
  cJSON_Delete(items);
  CHECK_INT(cc_store_project_get(s, "alice", "p1", &info), CC_OK);
  CHECK(!cJSON_HasObjectItem(info, "name"));
  CHECK(!cJSON_HasObjectItem(info, "sandboxId"));
  CHECK(!cJSON_HasObjectItem(info, "lastExecution"));
  CHECK_INT(num_of(info, "generation"), 0);
  cJSON_Delete(info);
  /* No orphan rows left anywhere (the cascade really ran). */
  CHECK_INT(cc_store_integrity_check(s), CC_OK);
  cc_store_close(s);
}

/* ---- project metadata ---- */

static cc_status patch_text(cc_store *s, const char *json, cJSON **info) {
  cJSON *p = cJSON_Parse(json);
  CHECK(p != NULL);
  cc_status st = cc_store_project_patch(s, "alice", "p1", p, info);
  cJSON_Delete(p);
  return st;
}

static void metadata_merge_patch(void) {
  fake_clock clk = {60000};
  cc_store *s = open_new(&clk, NULL);
  bool created = false;
  CHECK_INT(cc_store_project_ensure(s, "alice", "p1", &created), CC_OK);
  CHECK(created);
  CHECK_INT(cc_store_project_ensure(s, "alice", "p1", &created), CC_OK);
  CHECK(!created);
  cJSON *info = NULL;
  CHECK_INT(cc_store_project_get(s, "alice", "p1", &info), CC_OK);
  CHECK_STR(str_of(info, "projectId"), "p1");
  CHECK_INT(num_of(info, "createdAt"), 60000);
  CHECK_INT(num_of(info, "updatedAt"), 60000);
  CHECK(!cJSON_HasObjectItem(info, "name") && !cJSON_HasObjectItem(info, "settings"));
  cJSON_Delete(info);

  clk.t = 61000;
  CHECK_INT(patch_text(s,
                       "{\"name\":\"demo\",\"port\":3000,\"settings\":{\"theme\":\"dark\","
                       "\"editor\":{\"tabs\":2,\"wrap\":true},\"langs\":[\"js\",\"py\"]},"
                       "\"notes\":\"free-form\"}",
                       &info),
            CC_OK);
  CHECK_STR(str_of(info, "name"), "demo");
  CHECK_INT(num_of(info, "port"), 3000);
  CHECK_STR(str_of(info, "notes"), "free-form");
  CHECK_INT(num_of(info, "updatedAt"), 61000);
  CHECK_INT(num_of(info, "createdAt"), 60000);
  cJSON_Delete(info);

  /* null deletes, nested objects merge, arrays replace. */
  CHECK_INT(patch_text(s,
                       "{\"port\":null,\"settings\":{\"theme\":null,\"editor\":{\"tabs\":4},"
                       "\"langs\":[\"c\"]}}",
                       &info),
            CC_OK);
  CHECK(!cJSON_HasObjectItem(info, "port"));
  CHECK_STR(str_of(info, "name"), "demo");
  cJSON *settings = cJSON_GetObjectItem(info, "settings");
  cJSON *want = cJSON_Parse("{\"editor\":{\"tabs\":4,\"wrap\":true},\"langs\":[\"c\"]}");
  CHECK(cJSON_Compare(settings, want, 1));
  cJSON_Delete(want);
  cJSON_Delete(info);

  /* Persisted, not just returned. */
  CHECK_INT(cc_store_project_get(s, "alice", "p1", &info), CC_OK);
  CHECK_INT(num_of(cJSON_GetObjectItem(cJSON_GetObjectItem(info, "settings"), "editor"), "tabs"),
            4);
  cJSON_Delete(info);

  /* The store's own keys are never applied; the answer lists them.  The seed's example
   * (worker-owned sandboxId beside client fields, lastExecution a client timestamp) works. */
  CHECK_INT(patch_text(s,
                       "{\"name\":\"My App\",\"port\":3000,\"sandboxId\":\"sandbox-123\","
                       "\"lastExecution\":1700000000000,\"projectId\":\"other\",\"generation\":9,"
                       "\"createdAt\":1,\"updatedAt\":2}",
                       &info),
            CC_OK);
  CHECK_STR(str_of(info, "name"), "My App");
  CHECK_INT(num_of(info, "port"), 3000);
  CHECK_INT((long long)num_of(info, "lastExecution"), 1700000000000LL);
  CHECK_STR(str_of(info, "projectId"), "p1");
  CHECK(!cJSON_HasObjectItem(info, "sandboxId")); /* a tenant never points it at a sandbox */
  CHECK(num_of(info, "createdAt") != 1 && num_of(info, "updatedAt") != 2);
  char *ign = cJSON_PrintUnformatted(cJSON_GetObjectItem(info, "ignored"));
  CHECK_STR(ign, "[\"projectId\",\"sandboxId\",\"createdAt\",\"updatedAt\",\"generation\"]");
  cJSON_free(ign);
  cJSON_Delete(info);
  CHECK_INT(cc_store_project_get(s, "alice", "p1", &info), CC_OK);
  CHECK(!cJSON_HasObjectItem(info, "ignored")); /* said once, in the patch's answer */
  CHECK(!cJSON_HasObjectItem(info, "sandboxId"));
  cJSON_Delete(info);
  CHECK_INT(patch_text(s, "{\"name\":\"demo\",\"port\":null,\"lastExecution\":null}", &info),
            CC_OK);
  CHECK(!cJSON_HasObjectItem(info, "ignored"));
  cJSON_Delete(info);

  /* Refused patches change nothing. */
  const char *bad[] = {"{\"port\":0}",
                       "{\"port\":70000}",
                       "{\"port\":80.5}",
                       "{\"port\":1e300}",
                       "{\"port\":-1e300}",
                       "{\"port\":\"80\"}",
                       "{\"name\":5}",
                       "{\"settings\":[1]}",
                       "[1]",
                       "null"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    info = (cJSON *)1;
    CHECK_INT(patch_text(s, bad[i], &info), CC_BAD_REQUEST);
    CHECK(info == NULL);
  }
  /* Metadata is bounded. */
  char big[70000];
  memcpy(big, "{\"notes\":\"", 10);
  memset(big + 10, 'x', sizeof big - 13);
  memcpy(big + sizeof big - 3, "\"}", 3);
  CHECK_INT(patch_text(s, big, &info), CC_TOO_LARGE);
  CHECK_INT(cc_store_project_get(s, "alice", "p1", &info), CC_OK);
  CHECK_STR(str_of(info, "name"), "demo");
  CHECK_STR(str_of(info, "notes"), "free-form");
  CHECK(!cJSON_HasObjectItem(info, "port"));
  cJSON_Delete(info);
  /* A patch does not change the generation; a missing project is not found. */
  int64_t g = -1;
  CHECK_INT(cc_store_project_generation(s, "alice", "p1", &g), CC_OK);
  CHECK_INT(g, 0);
  cJSON *p = cJSON_Parse("{\"name\":\"x\"}");
  CHECK_INT(cc_store_project_patch(s, "alice", "nope", p, NULL), CC_NOT_FOUND);
  cJSON_Delete(p);
  cc_store_close(s);
}

static void project_limits(void) {
  fake_clock clk = {1};
  cc_store_options o;
  cc_store_options_init(&o);
  o.projects_per_owner = 2;
  cc_store *s = open_new(&clk, &o);
  CHECK_INT(cc_store_project_ensure(s, "alice", "a", NULL), CC_OK);
  CHECK_INT(cc_store_project_ensure(s, "alice", "b", NULL), CC_OK);
  CHECK_INT(cc_store_project_ensure(s, "alice", "c", NULL), CC_TOO_LARGE);
  CHECK_INT(cc_store_project_ensure(s, "alice", "a", NULL), CC_OK); /* existing: fine */
  CHECK_INT(cc_store_project_ensure(s, "bob", "c", NULL), CC_OK);
  CHECK_INT(cc_store_project_ensure(s, "", "c", NULL), CC_BAD_REQUEST);
  char longname[CC_STORE_NAME_MAX + 2];
  memset(longname, 'n', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  CHECK_INT(cc_store_project_ensure(s, "bob", longname, NULL), CC_BAD_REQUEST);
  char err[256];
  cc_store_last_error(s, err, sizeof err);
  CHECK(strstr(err, "projectId") != NULL);
  cc_store_close(s);
}

/* ---- tokens ---- */

static void tokens_are_hashes(void) {
  fake_clock clk = {70000};
  cc_store *s = open_new(&clk, NULL);
  const char *h1 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
  const char *h2 = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";
  int64_t t1 = 0, t2 = 0;
  CHECK_INT(cc_store_token_add(s, "alice", h1, "laptop", &t1), CC_NOT_FOUND); /* no user */
  bool created = false;
  CHECK_INT(cc_store_user_ensure(s, "alice", &created), CC_OK);
  CHECK(created);
  CHECK_INT(cc_store_user_ensure(s, "alice", &created), CC_OK);
  CHECK(!created);
  CHECK_INT(cc_store_user_ensure(s, "bob", NULL), CC_OK);
  CHECK_INT(cc_store_token_add(s, "alice", h1, "laptop", &t1), CC_OK);
  CHECK_INT(cc_store_token_add(s, "bob", h1, "dup", NULL), CC_CONFLICT);
  CHECK_INT(cc_store_token_add(s, "bob", h2, "ci", &t2), CC_OK);
  CHECK_INT(cc_store_token_add(s, "bob", "not-hex", "x", NULL), CC_BAD_REQUEST);

  char *user = NULL;
  CHECK_INT(cc_store_token_lookup(s, h1, &user), CC_OK);
  CHECK_STR(user, "alice");
  free(user);
  /* Hex case does not matter. */
  char upper[80];
  for (size_t i = 0; i <= strlen(h2); i++)
    upper[i] = (h2[i] >= 'a' && h2[i] <= 'f') ? (char)(h2[i] - 32) : h2[i];
  CHECK_INT(cc_store_token_lookup(s, upper, &user), CC_OK);
  CHECK_STR(user, "bob");
  free(user);
  CHECK_INT(cc_store_token_lookup(s, "00", &user), CC_UNAUTHORIZED);
  CHECK(user == NULL);
  CHECK_INT(cc_store_token_lookup(s, "", &user), CC_UNAUTHORIZED);

  /* Listing never shows the hash. */
  cJSON *list = NULL;
  CHECK_INT(cc_store_token_list(s, "alice", &list), CC_OK);
  CHECK_INT(cJSON_GetArraySize(list), 1);
  CHECK_STR(str_of(cJSON_GetArrayItem(list, 0), "label"), "laptop");
  CHECK_INT(num_of(cJSON_GetArrayItem(list, 0), "id"), t1);
  CHECK_INT(num_of(cJSON_GetArrayItem(list, 0), "createdAt"), 70000);
  char *text = cJSON_PrintUnformatted(list);
  CHECK(text && !strstr(text, h1));
  cJSON_free(text);
  cJSON_Delete(list);

  /* Revocation: only by the owner, and the token stops working. */
  CHECK_INT(cc_store_token_revoke(s, "bob", t1), CC_NOT_FOUND);
  CHECK_INT(cc_store_token_lookup(s, h1, &user), CC_OK);
  free(user);
  clk.t = 71000;
  CHECK_INT(cc_store_token_revoke(s, "alice", t1), CC_OK);
  CHECK_INT(cc_store_token_revoke(s, "alice", t1), CC_OK);
  CHECK_INT(cc_store_token_lookup(s, h1, &user), CC_UNAUTHORIZED);
  CHECK(user == NULL);
  CHECK_INT(cc_store_token_list(s, "alice", &list), CC_OK);
  CHECK_INT(num_of(cJSON_GetArrayItem(list, 0), "revokedAt"), 71000);
  cJSON_Delete(list);
  CHECK_INT(cc_store_token_lookup(s, h2, &user), CC_OK);
  free(user);
  cc_store_close(s);
}

/* ---- concurrency ---- */

struct worker_arg {
  cc_store *s;
  char project[16];
  int failures;
};

static void *thread_main(void *p) {
  struct worker_arg *a = p;
  for (int i = 0; i < 50; i++) {
    char id[CC_STORE_ID_LEN + 1];
    cJSON *r = result_json(a->project, 0);
    if (cc_store_record_insert(a->s, "alice", a->project, NULL, "exec", NULL, id) != CC_OK ||
        cc_store_record_set_running(a->s, "alice", id) != CC_OK ||
        cc_store_record_finish(a->s, "alice", id, CC_RECORD_SUCCESS, r, NULL, NULL) != CC_OK ||
        cc_store_cache_put(a->s, "alice", a->project, id, "cmd", 0, r) != CC_OK ||
        cc_store_project_bump_generation(a->s, "alice", a->project, NULL) != CC_OK)
      a->failures++;
    cJSON_Delete(r);
  }
  return NULL;
}

static void threads_share_one_handle(void) {
  cc_store *s = open_new(NULL, NULL); /* the wall clock */
  enum { N = 4 };
  struct worker_arg args[N];
  pthread_t th[N];
  for (int i = 0; i < N; i++) {
    args[i].s = s;
    args[i].failures = 0;
    snprintf(args[i].project, sizeof args[i].project, "proj%d", i);
    CHECK_INT(cc_store_project_ensure(s, "alice", args[i].project, NULL), CC_OK);
  }
  for (int i = 0; i < N; i++) CHECK_INT(pthread_create(&th[i], NULL, thread_main, &args[i]), 0);
  for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < N; i++) {
    CHECK_INT(args[i].failures, 0);
    cJSON *items = NULL;
    CHECK_INT(cc_store_history(s, "alice", args[i].project, 100, NULL, &items, NULL), CC_OK);
    CHECK_INT(cJSON_GetArraySize(items), 50);
    CHECK_STR(str_of(cJSON_GetArrayItem(items, 7), "stdout"), args[i].project);
    cJSON_Delete(items);
    int64_t g = -1;
    CHECK_INT(cc_store_project_generation(s, "alice", args[i].project, &g), CC_OK);
    CHECK_INT(g, 50);
  }
  cc_store_close(s);
}

struct writer_arg {
  cc_store *s;
  int failures;
};

static void *writer_main(void *p) {
  struct writer_arg *a = p;
  for (int i = 0; i < 100; i++) {
    char id[CC_STORE_ID_LEN + 1];
    if (cc_store_record_insert(a->s, "alice", "p", NULL, "exec", NULL, id) != CC_OK ||
        cc_store_record_finish(a->s, "alice", id, CC_RECORD_SUCCESS, NULL, NULL, NULL) != CC_OK ||
        cc_store_project_bump_generation(a->s, "alice", "p", NULL) != CC_OK)
      a->failures++;
  }
  return NULL;
}

/* Two handles (two connections, as two processes would have) writing the same project at
 * once: WAL locking, BEGIN IMMEDIATE and the busy timeout make every call succeed. */
static void two_handles_on_one_file(void) {
  char path[300];
  new_path(path, sizeof path);
  cc_store *s1 = open_at(path, NULL, NULL), *s2 = open_at(path, NULL, NULL);
  CHECK_INT(cc_store_project_ensure(s1, "alice", "p", NULL), CC_OK);
  struct writer_arg a = {s1, 0}, b = {s2, 0};
  pthread_t ta, tb;
  CHECK_INT(pthread_create(&ta, NULL, writer_main, &a), 0);
  CHECK_INT(pthread_create(&tb, NULL, writer_main, &b), 0);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  CHECK_INT(a.failures, 0);
  CHECK_INT(b.failures, 0);
  cJSON *items = NULL;
  CHECK_INT(cc_store_history(s2, "alice", "p", 1000, NULL, &items, NULL), CC_OK);
  CHECK_INT(cJSON_GetArraySize(items), 200);
  cJSON_Delete(items);
  int64_t g = -1;
  CHECK_INT(cc_store_project_generation(s1, "alice", "p", &g), CC_OK);
  CHECK_INT(g, 200); /* no lost increment */
  CHECK_INT(cc_store_integrity_check(s1), CC_OK);
  cc_store_close(s1);
  cc_store_close(s2);
}

struct err_arg {
  cc_store *s;
  const char *project; /* a project that does not exist: every call fails naming it */
  int wrong;
};

static void *err_thread(void *p) {
  struct err_arg *a = p;
  for (int i = 0; i < 300; i++) {
    int64_t g;
    char msg[256];
    if (cc_store_project_generation(a->s, "alice", a->project, &g) != CC_NOT_FOUND) a->wrong++;
    cc_store_last_error(a->s, msg, sizeof msg);
    if (!strstr(msg, a->project)) a->wrong++;
  }
  return NULL;
}

/* Failure messages are per thread: a thread never reads another request's message. */
static void error_messages_are_per_thread(void) {
  cc_store *s = open_new(NULL, NULL);
  struct err_arg a = {s, "project-of-alice", 0}, b = {s, "project-of-bob", 0};
  pthread_t ta, tb;
  CHECK_INT(pthread_create(&ta, NULL, err_thread, &a), 0);
  CHECK_INT(pthread_create(&tb, NULL, err_thread, &b), 0);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  CHECK_INT(a.wrong, 0);
  CHECK_INT(b.wrong, 0);
  char msg[256];
  cc_store_last_error(s, msg, sizeof msg);
  CHECK_STR(msg, ""); /* this thread had no failure */
  cc_store_close(s);
}

/* ---- crash safety ---- */

static int raw_count(const char *path, const char *sql) {
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  int n = -1;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

/* ---- record JSON made at finish, history as text, schema 1 rows ---- */

/* history_json is history as text; a finished record's text is made once (its result's
 * fields first, the record's own fields winning) and read back unchanged by record_get and
 * history; a pending record and a row written by schema 1 (no stored body) read the same. */
static void history_json_matches_history_and_reads_schema_1_rows(void) {
  fake_clock clk = {7000};
  char path[300];
  new_path(path, sizeof path);
  cc_store *s = open_at(path, &clk, NULL);
  CHECK_INT(cc_store_project_ensure(s, "alice", "p1", NULL), CC_OK);
  char done_id[CC_STORE_ID_LEN + 1], open_id[CC_STORE_ID_LEN + 1];
  cJSON *in = cJSON_Parse("{\"cmd\":\"echo hi\"}");
  CHECK_INT(cc_store_record_insert(s, "alice", "p1", NULL, "exec", in, done_id), CC_OK);
  cJSON *res = cJSON_Parse(
      "{\"id\":\"not-this\",\"stdout\":\"h\\u00e9llo \\\"q\\\"\\n\",\"status\":\"nope\","
      "\"exitCode\":0,\"duration\":1.5}");
  clk.t++;
  CHECK_INT(cc_store_record_finish(s, "alice", done_id, CC_RECORD_SUCCESS, res, NULL, NULL), CC_OK);
  clk.t++;
  CHECK_INT(cc_store_record_insert(s, "alice", "p1", NULL, "writeFile", NULL, open_id), CC_OK);

  char *text = NULL, *next = NULL;
  cJSON *items = NULL;
  CHECK_INT(cc_store_history_json(s, "alice", "p1", 10, NULL, &text, &next), CC_OK);
  CHECK(next == NULL);
  CHECK_INT(cc_store_history(s, "alice", "p1", 10, NULL, &items, NULL), CC_OK);
  cJSON *parsed = cJSON_Parse(text);
  CHECK(parsed != NULL && cJSON_Compare(parsed, items, true));
  CHECK_INT(cJSON_GetArraySize(items), 2);
  const cJSON *open = cJSON_GetArrayItem(items, 0), *fin = cJSON_GetArrayItem(items, 1);
  CHECK_STR(str_of(open, "id"), open_id);
  CHECK_STR(str_of(open, "status"), "pending");
  CHECK_STR(str_of(open, "op"), "writeFile");
  CHECK(!cJSON_HasObjectItem(open, "finishedAt") && !cJSON_HasObjectItem(open, "input"));
  CHECK_STR(fin->child->string, "stdout"); /* the result's fields come first */
  CHECK_STR(str_of(fin, "stdout"), "h\xc3\xa9llo \"q\"\n");
  CHECK_STR(str_of(fin, "id"), done_id);
  CHECK_STR(str_of(fin, "status"), "success");
  CHECK_STR(str_of(fin, "projectId"), "p1");
  CHECK_STR(str_of(cJSON_GetObjectItem(fin, "input"), "cmd"), "echo hi");
  CHECK(num_of(fin, "duration") == 1.5);
  CHECK_INT(num_of(fin, "createdAt"), 7000);
  CHECK_INT(num_of(fin, "finishedAt"), 7001);
  int ids = 0;
  for (const cJSON *c = fin->child; c; c = c->next) ids += strcmp(c->string, "id") == 0;
  CHECK_INT(ids, 1);
  cJSON *rec = NULL;
  CHECK_INT(cc_store_record_get(s, "alice", done_id, &rec), CC_OK);
  CHECK(cJSON_Compare(rec, fin, true));
  cJSON_Delete(rec);
  cJSON_Delete(parsed);
  cJSON_Delete(items);
  free(text);
  /* Another owner's page is empty text too. */
  CHECK_INT(cc_store_history_json(s, "bob", "p1", 10, NULL, &text, NULL), CC_OK);
  CHECK_STR(text, "[]");
  free(text);
  cc_store_close(s);

  /* Turn the file into a schema 1 database holding one finished row, as schema 1 wrote it. */
  sqlite3 *db = NULL;
  CHECK(sqlite3_open(path, &db) == SQLITE_OK);
  CHECK(sqlite3_exec(db,
                     "DELETE FROM records; ALTER TABLE records DROP COLUMN body;"
                     "PRAGMA user_version=1;"
                     "INSERT INTO records(id, project_rowid, op, input, status, result, "
                     "error_code, error_message, created_at, finished_at) SELECT 'old-1', id, "
                     "'exec', '{\"cmd\":\"ls\"}', 'failed', "
                     "'{\"status\":\"x\",\"stdout\":\"old\",\"exitCode\":2}', 'upstream_error', "
                     "'boom', 10, 20 FROM projects WHERE owner='alice' AND project='p1';",
                     NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(db);
  s = open_at(path, &clk, NULL);
  CHECK_INT(raw_count(path, "PRAGMA user_version"), 2);
  CHECK_INT(cc_store_history(s, "alice", "p1", 10, NULL, &items, NULL), CC_OK);
  CHECK_INT(cJSON_GetArraySize(items), 1);
  fin = cJSON_GetArrayItem(items, 0);
  CHECK_STR(fin->child->string, "stdout");
  CHECK_STR(str_of(fin, "stdout"), "old");
  CHECK_STR(str_of(fin, "id"), "old-1");
  CHECK_STR(str_of(fin, "status"), "failed");
  CHECK_STR(str_of(cJSON_GetObjectItem(fin, "input"), "cmd"), "ls");
  CHECK_STR(str_of(cJSON_GetObjectItem(fin, "error"), "code"), "upstream_error");
  CHECK_STR(str_of(cJSON_GetObjectItem(fin, "error"), "message"), "boom");
  CHECK_INT(num_of(fin, "finishedAt"), 20);
  CHECK_INT(cc_store_history_json(s, "alice", "p1", 10, NULL, &text, NULL), CC_OK);
  parsed = cJSON_Parse(text);
  CHECK(parsed != NULL && cJSON_Compare(parsed, items, true));
  cJSON_Delete(parsed);
  free(text);
  cJSON_Delete(items);
  /* A record finished after the upgrade gets its body. */
  CHECK_INT(cc_store_record_insert(s, "alice", "p1", NULL, "exec", in, done_id), CC_OK);
  CHECK_INT(cc_store_record_finish(s, "alice", done_id, CC_RECORD_FAILED, res, "timeout", NULL),
            CC_OK);
  CHECK_INT(raw_count(path, "SELECT count(*) FROM records WHERE body IS NOT NULL"), 1);
  CHECK_INT(cc_store_record_get(s, "alice", done_id, &rec), CC_OK);
  CHECK_STR(str_of(cJSON_GetObjectItem(rec, "error"), "code"), "timeout");
  CHECK_STR(str_of(cJSON_GetObjectItem(rec, "error"), "message"), "");
  CHECK_STR(str_of(rec, "status"), "failed");
  cJSON_Delete(rec);
  CHECK_INT(cc_store_integrity_check(s), CC_OK);
  cc_store_close(s);
  cJSON_Delete(in);
  cJSON_Delete(res);
}

/* The child: commits one marker record, then opens a big transaction that spills pages
 * into the WAL, tells the parent, and waits to be killed.  Never returns. */
static void crash_child(const char *path, int ready_fd) {
  sqlite3 *db = NULL;
  int ok = sqlite3_open(path, &db) == SQLITE_OK &&
           sqlite3_exec(db,
                        "PRAGMA busy_timeout=5000; PRAGMA cache_size=8;"
                        "INSERT INTO records(id, project_rowid, op, status, created_at) "
                        "SELECT 'child-committed', id, 'exec', 'success', 1 FROM projects "
                        "WHERE owner='alice' AND project='p1';"
                        "BEGIN IMMEDIATE;"
                        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n "
                        "WHERE i < 3000) "
                        "INSERT INTO records(id, project_rowid, op, input, status, created_at) "
                        "SELECT 'uncommitted-' || i, p.id, 'exec', "
                        "'{\"pad\":\"' || hex(randomblob(200)) || '\"}', 'running', 2 "
                        "FROM n, projects p WHERE p.owner='alice' AND p.project='p1';"
                        "UPDATE projects SET generation = generation + 1000, metadata = "
                        "'{\"name\":\"torn\"}';"
                        "DELETE FROM cache;",
                        NULL, NULL, NULL) == SQLITE_OK;
  char c = ok ? 'k' : 'e';
  if (write(ready_fd, &c, 1) != 1) _exit(2);
  for (;;) pause(); /* killed here, mid-transaction */
}

static void killed_mid_transaction_reopens_consistent(void) {
  fake_clock clk = {80000};
  char path[300], wal[320];
  new_path(path, sizeof path);
  snprintf(wal, sizeof wal, "%s-wal", path);
  cc_store *s = open_at(path, &clk, NULL);
  CHECK_INT(cc_store_project_ensure(s, "alice", "p1", NULL), CC_OK);
  cJSON *patch = cJSON_Parse("{\"name\":\"kept\"}");
  CHECK_INT(cc_store_project_patch(s, "alice", "p1", patch, NULL), CC_OK);
  cJSON_Delete(patch);
  cJSON *r = result_json("cached", 0);
  CHECK_INT(cc_store_cache_put(s, "alice", "p1", "k", "k", 0, r), CC_OK);
  cJSON_Delete(r);
  for (int i = 0; i < 20; i++)
    CHECK_INT(cc_store_record_insert(s, "alice", "p1", NULL, "exec", NULL, NULL), CC_OK);
  cc_store_close(s);

  int fds[2];
  CHECK_INT(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    crash_child(path, fds[1]);
  }
  close(fds[1]);
  char c = 0;
  CHECK_INT(read(fds[0], &c, 1), 1);
  CHECK_INT(c, 'k');
  /* The uncommitted transaction has already spilled into the WAL file. */
  struct stat sb;
  CHECK_INT(stat(wal, &sb), 0);
  CHECK(sb.st_size > 100 * 1024);
  CHECK_INT(kill(pid, SIGKILL), 0);
  int wst = 0;
  CHECK_INT(waitpid(pid, &wst, 0), pid);
  CHECK(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL);
  close(fds[0]);

  s = open_at(path, &clk, NULL);
  CHECK_INT(cc_store_integrity_check(s), CC_OK);
  /* Committed data intact: the records, the child's committed marker, metadata, cache. */
  cJSON *items = NULL;
  CHECK_INT(cc_store_history(s, "alice", "p1", 1000, NULL, &items, NULL), CC_OK);
  CHECK_INT(cJSON_GetArraySize(items), 21);
  CHECK_STR(str_of(cJSON_GetArrayItem(items, 0), "id"), "child-committed");
  cJSON_Delete(items);
  cJSON *info = NULL;
  CHECK_INT(cc_store_project_get(s, "alice", "p1", &info), CC_OK);
  CHECK_STR(str_of(info, "name"), "kept");
  CHECK_INT(num_of(info, "generation"), 0);
  cJSON_Delete(info);
  CHECK(cache_hit(s, "alice", "p1", "k", "cached"));
  /* Uncommitted data absent. */
  cJSON *rec = NULL;
  CHECK_INT(cc_store_record_get(s, "alice", "uncommitted-1", &rec), CC_NOT_FOUND);
  int64_t n = -1;
  CHECK_INT(cc_store_recover(s, &n), CC_OK);
  CHECK_INT(n,
            20); /* the 20 committed pending records; the 3000 torn 'running' rows never existed */
  /* And the database takes writes again. */
  CHECK_INT(cc_store_record_insert(s, "alice", "p1", NULL, "exec", NULL, NULL), CC_OK);
  cc_store_close(s);
  CHECK_INT(raw_count(path, "SELECT count(*) FROM records WHERE id LIKE 'uncommitted-%'"), 0);
  CHECK_INT(raw_count(path, "SELECT count(*) FROM records"), 22);
}

static void integrity_check_detects_corruption(void) {
  char path[300];
  new_path(path, sizeof path);
  cc_store *s = open_at(path, NULL, NULL);
  CHECK_INT(cc_store_project_ensure(s, "alice", "p1", NULL), CC_OK);
  cJSON *in = cJSON_CreateObject();
  char pad[2000];
  memset(pad, 'p', sizeof pad - 1);
  pad[sizeof pad - 1] = 0;
  cJSON_AddStringToObject(in, "pad", pad);
  for (int i = 0; i < 200; i++)
    CHECK_INT(cc_store_record_insert(s, "alice", "p1", NULL, "exec", in, NULL), CC_OK);
  cJSON_Delete(in);
  CHECK_INT(cc_store_integrity_check(s), CC_OK);
  cc_store_close(s); /* last connection: the WAL is checkpointed into the file */

  /* Scribble over the middle of the file (index and table pages, not page 1). */
  FILE *f = fopen(path, "r+b");
  CHECK(f != NULL);
  if (!f) return;
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  CHECK(size > 64 * 4096);
  for (long off = size / 4; off < size / 4 * 3; off += 4096) {
    fseek(f, off + 100, SEEK_SET);
    fwrite("garbage-garbage-garbage-garbage!", 1, 32, f);
  }
  fclose(f);
  cc_store_options o;
  cc_store_options_init(&o);
  o.path = path;
  cc_store *bad = NULL;
  cc_status st = cc_store_sqlite_open(&o, &bad, NULL, 0);
  if (st == CC_OK) {
    CHECK_INT(cc_store_integrity_check(bad), CC_INTERNAL);
    cc_store_close(bad);
  } else {
    CHECK_INT(st, CC_INTERNAL); /* refusing to open is also a detection */
  }
}

static void bad_options(void) {
  cc_store_options o;
  cc_store_options_init(&o);
  cc_store *s = (cc_store *)1;
  char err[128];
  CHECK_INT(cc_store_sqlite_open(&o, &s, err, sizeof err), CC_BAD_REQUEST); /* no path */
  CHECK(s == NULL);
  char path[300];
  snprintf(path, sizeof path, "%s/no/such/dir/db.sqlite", tmpdir);
  o.path = path;
  CHECK_INT(cc_store_sqlite_open(&o, &s, err, sizeof err), CC_INTERNAL);
  CHECK(strstr(err, "cannot open") != NULL);
  cc_store_close(NULL);
}

static void remove_tmpdir(void) {
  DIR *d = opendir(tmpdir);
  if (!d) return;
  struct dirent *e;
  char p[600];
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
    unlink(p);
  }
  closedir(d);
  rmdir(tmpdir);
}

int main(void) {
  pg_base = getenv("CC_TEST_PG_URI");
  if (pg_base && !*pg_base) pg_base = NULL;
  if (pg_base) printf("# on PostgreSQL at %s\n", pg_base);
  const char *base = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/cc-store-test.XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  RUN(cache_ttl_expiry);
  RUN(cache_generation_rule);
  RUN(cache_clear_and_bound);
  RUN(pruning_keeps_exactly_newest_1000);
  RUN(pruning_honours_configured_keep);
  RUN(record_lifecycle);
  RUN(recovery_marks_interrupted_records);
  RUN(owners_never_see_each_other);
  RUN(delete_drops_everything);
  RUN(metadata_merge_patch);
  RUN(project_limits);
  RUN(tokens_are_hashes);
  RUN(threads_share_one_handle);
  RUN(error_messages_are_per_thread);
  RUN(two_handles_on_one_file);
  if (!pg_base) { /* what only SQLite files have */
    RUN(killed_mid_transaction_reopens_consistent);
    RUN(history_json_matches_history_and_reads_schema_1_rows);
    RUN(integrity_check_detects_corruption);
    RUN(bad_options);
  }
  int rc = CC_TEST_DONE();
  if (rc == 0)
    remove_tmpdir();
  else
    fprintf(stderr, "databases kept in %s\n", tmpdir);
  return rc;
}
