/*
 * bench_store: cost of the store (shared/cc_store_sqlite.c) per worker-visible call, each
 * printed beside a baseline measured in the same run on the same kind of file: hand-written
 * SQLite with statements prepared once and no JSON, i.e. what the interface, the per-call
 * prepare, the mutex, validation and JSON (de)serialisation add on top of SQLite itself.
 * Run through `scripts/bench store` (Release build).  Not a test: nothing is asserted.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cc_store.h"

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Runs fn for about 300 ms (after a warm-up) and returns ns per call; best of 3 rounds. */
static double measure(void (*fn)(void *), void *arg) {
  for (int i = 0; i < 50; i++) fn(arg);
  double best = 1e300;
  for (int round = 0; round < 3; round++) {
    long n = 0;
    double t0 = now_ns(), t;
    do {
      for (int i = 0; i < 16; i++) fn(arg);
      n += 16;
      t = now_ns();
    } while (t - t0 < 100e6);
    double per = (t - t0) / n;
    if (per < best) best = per;
  }
  return best;
}

static void die(const char *what) {
  fprintf(stderr, "bench_store: %s failed\n", what);
  exit(1);
}

/* ---- the store ---- */

static cc_store *store;
static cJSON *result;

static void store_exec_record(void *arg) {
  (void)arg;
  char id[CC_STORE_ID_LEN + 1];
  if (cc_store_record_insert(store, "alice", "demo", NULL, "exec", result, id) != CC_OK ||
      cc_store_record_set_running(store, "alice", id) != CC_OK ||
      cc_store_record_finish(store, "alice", id, CC_RECORD_SUCCESS, result, NULL, NULL) != CC_OK)
    die("store record");
}

static void store_cache_hit(void *arg) {
  (void)arg;
  bool hit;
  cJSON *r;
  if (cc_store_cache_get(store, "alice", "demo", "ls -la|/home/user|", &hit, &r) != CC_OK || !hit)
    die("store cache_get");
  cJSON_Delete(r);
}

static void store_token_lookup(void *arg) {
  char *user;
  if (cc_store_token_lookup(store, arg, &user) != CC_OK) die("store token_lookup");
  free(user);
}

static void store_history_page(void *arg) {
  (void)arg;
  cJSON *items;
  if (cc_store_history(store, "alice", "demo", 50, NULL, &items, NULL) != CC_OK)
    die("store history");
  cJSON_Delete(items);
}

static void store_history_json_page(void *arg) {
  (void)arg;
  char *items;
  if (cc_store_history_json(store, "alice", "demo", 50, NULL, &items, NULL) != CC_OK)
    die("store history_json");
  free(items);
}

/* ---- the baseline: raw SQLite, statements prepared once, text instead of JSON ---- */

static sqlite3 *db;
static sqlite3_stmt *ins, *run, *fin, *prune, *get, *tok, *page;
static const char *result_text;
static long seq;

static void raw_exec_record(void *arg) {
  (void)arg;
  char id[40];
  snprintf(id, sizeof id, "raw-%ld", ++seq);
  sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  sqlite3_bind_text(ins, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_text(ins, 2, result_text, -1, SQLITE_STATIC);
  if (sqlite3_step(ins) != SQLITE_DONE) die("raw insert");
  sqlite3_reset(ins);
  if (sqlite3_step(prune) != SQLITE_DONE) die("raw prune");
  sqlite3_reset(prune);
  sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
  sqlite3_bind_text(run, 1, id, -1, SQLITE_STATIC);
  if (sqlite3_step(run) != SQLITE_DONE) die("raw running");
  sqlite3_reset(run);
  sqlite3_bind_text(fin, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_text(fin, 2, result_text, -1, SQLITE_STATIC);
  if (sqlite3_step(fin) != SQLITE_DONE) die("raw finish");
  sqlite3_reset(fin);
}

static void raw_one_row(sqlite3_stmt *st) {
  if (sqlite3_step(st) != SQLITE_ROW) die("raw select");
  volatile const unsigned char *t = sqlite3_column_text(st, 0);
  (void)t;
  sqlite3_reset(st);
}

static void raw_cache_hit(void *arg) {
  (void)arg;
  raw_one_row(get);
}

static void raw_token_lookup(void *arg) {
  (void)arg;
  raw_one_row(tok);
}

static void raw_history_page(void *arg) {
  (void)arg;
  int n = 0;
  while (sqlite3_step(page) == SQLITE_ROW) {
    volatile const unsigned char *t = sqlite3_column_text(page, 0);
    (void)t;
    n++;
  }
  sqlite3_reset(page);
  if (n != 50) die("raw page");
}

static void prepare(const char *sql, sqlite3_stmt **st) {
  if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK) die(sqlite3_errmsg(db));
}

static void row(const char *what, double ours, const char *base_what, double base) {
  printf("%-34s %9.1f us | %-30s %9.1f us | x%.2f\n", what, ours / 1e3, base_what, base / 1e3,
         ours / base);
}

int main(void) {
  char dir[] = "/tmp/cc-bench-store.XXXXXX";
  if (!mkdtemp(dir)) die("mkdtemp");
  char path[128], rawpath[128];
  snprintf(path, sizeof path, "%s/store.sqlite", dir);
  snprintf(rawpath, sizeof rawpath, "%s/raw.sqlite", dir);

  /* A typical small exec result (~300 bytes). */
  result = cJSON_Parse(
      "{\"stdout\":\"total 12\\ndrwxr-xr-x 2 user user 4096 .\\ndrwxr-xr-x 3 root root 4096 "
      "..\\n-rw-r--r-- 1 user user 220 .bash_logout\\n\",\"stderr\":\"\",\"exitCode\":0,"
      "\"duration\":12,\"cached\":false,\"status\":\"success\"}");
  char *rt = cJSON_PrintUnformatted(result);
  result_text = rt;

  cc_store_options o;
  cc_store_options_init(&o);
  o.path = path;
  if (cc_store_sqlite_open(&o, &store, NULL, 0) != CC_OK) die("open");
  const char *hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
  if (cc_store_user_ensure(store, "alice", NULL) ||
      cc_store_token_add(store, "alice", hash, "b", NULL) ||
      cc_store_project_ensure(store, "alice", "demo", NULL) ||
      cc_store_cache_put(store, "alice", "demo", "ls -la|/home/user|", "ls -la", 0, result))
    die("setup");
  /* Fill the history to the 1000 kept so every insert also prunes one. */
  for (int i = 0; i < 1000; i++) store_exec_record(NULL);

  if (sqlite3_open(rawpath, &db) != SQLITE_OK) die("raw open");
  sqlite3_exec(db,
               "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
               "CREATE TABLE records(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE,"
               " project INTEGER, status TEXT, input TEXT, result TEXT, finished_at INTEGER);"
               "CREATE INDEX records_p ON records(project, seq);"
               "CREATE TABLE cache(project INTEGER, key TEXT, result TEXT,"
               " PRIMARY KEY(project, key));"
               "CREATE TABLE tokens(hash TEXT UNIQUE, user TEXT);",
               NULL, NULL, NULL);
  prepare("INSERT INTO records(id, project, status, input) VALUES(?1, 1, 'pending', ?2)", &ins);
  prepare(
      "DELETE FROM records WHERE project=1 AND seq <= (SELECT seq FROM records WHERE "
      "project=1 ORDER BY seq DESC LIMIT 1 OFFSET 1000)",
      &prune);
  prepare("UPDATE records SET status='running' WHERE id=?1 AND status='pending'", &run);
  prepare("UPDATE records SET status='success', result=?2, finished_at=1 WHERE id=?1", &fin);
  prepare("SELECT result FROM cache WHERE project=1 AND key='k'", &get);
  prepare("SELECT user FROM tokens WHERE hash='h'", &tok);
  prepare("SELECT result FROM records WHERE project=1 ORDER BY seq DESC LIMIT 50", &page);
  char ins_cache[600];
  snprintf(ins_cache, sizeof ins_cache,
           "INSERT INTO cache VALUES(1, 'k', '%s'); INSERT INTO tokens VALUES('h', 'alice');",
           result_text);
  sqlite3_exec(db, ins_cache, NULL, NULL, NULL);
  for (int i = 0; i < 1000; i++) raw_exec_record(NULL);

  printf(
      "store (shared/cc_store_sqlite.c) on a file in /tmp, WAL, synchronous=NORMAL, best of 3;"
      "\nbaseline = raw SQLite, statements prepared once, no JSON, same schema shape\n\n");
  row("exec record insert+running+finish", measure(store_exec_record, NULL),
      "raw insert+prune, 2 updates", measure(raw_exec_record, NULL));
  row("cache_get (hit, parse result)", measure(store_cache_hit, NULL), "raw SELECT by key",
      measure(raw_cache_hit, NULL));
  row("token_lookup", measure(store_token_lookup, (void *)hash), "raw SELECT by hash",
      measure(raw_token_lookup, NULL));
  row("history page of 50 (records->JSON)", measure(store_history_page, NULL), "raw SELECT 50 rows",
      measure(raw_history_page, NULL));
  row("history_json page of 50 (text)", measure(store_history_json_page, NULL),
      "raw SELECT 50 rows", measure(raw_history_page, NULL));

  sqlite3_finalize(ins);
  sqlite3_finalize(prune);
  sqlite3_finalize(run);
  sqlite3_finalize(fin);
  sqlite3_finalize(get);
  sqlite3_finalize(tok);
  sqlite3_finalize(page);
  sqlite3_close(db);
  cc_store_close(store);
  cJSON_Delete(result);
  cJSON_free(rt);
  const char *files[] = {"store.sqlite", "store.sqlite-wal", "store.sqlite-shm",
                         "raw.sqlite",   "raw.sqlite-wal",   "raw.sqlite-shm"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    unlink(path);
  }
  rmdir(dir);
  return 0;
}
