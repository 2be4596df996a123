/*
 * Unit tests of codecanvas-worker's memo (native/worker/cc_wmemo.c): what it remembers is
 * served only under the epoch it was read in, and any write to the database file or its
 * write-ahead log (real files, real inotify) starts a new epoch; with a real SQLite database
 * in WAL mode the check reads the WAL-index header instead, and every commit by another
 * connection (another process, such as `token revoke`) starts a new epoch while reads do
 * not; cache entries expire with the cache TTL; a served response is byte for byte what
 * cc_wjson_encode_ok prints for the same result; oversized entries are not kept; a lost watch
 * turns the memo off.
 */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cc_test.h"
#include "cc_wjson.h"
#include "cc_wmemo.h"

static char g_dir[64], g_db[128], g_wal[160];

static void append(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
  CHECK(fd >= 0);
  if (fd < 0) return;
  CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
  close(fd);
}

static const char HASH_A[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char HASH_B[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

static void test_epochs_and_users(void) {
  cc_wmemo *m = cc_wmemo_new(g_db);
  CHECK(m != NULL);
  CHECK_STR(cc_wmemo_how(m), "inotify"); /* no -shm file: the fallback */
  uint64_t e1 = cc_wmemo_epoch(m);
  CHECK(e1 != 0);
  CHECK_INT(cc_wmemo_epoch(m), e1); /* nothing written: the same epoch */
  char user[129] = "";
  CHECK(!cc_wmemo_user(m, e1, HASH_A, user, sizeof user));
  cc_wmemo_remember_user(m, e1, HASH_A, "alice");
  CHECK(cc_wmemo_user(m, e1, HASH_A, user, sizeof user));
  CHECK_STR(user, "alice");
  CHECK(!cc_wmemo_user(m, e1, HASH_B, user, sizeof user));

  /* A commit writes the WAL: the next epoch is new and the user must be read again. */
  append(g_wal, "commit");
  uint64_t e2 = cc_wmemo_epoch(m);
  CHECK(e2 != e1 && e2 != 0);
  CHECK(!cc_wmemo_user(m, e2, HASH_A, user, sizeof user));
  CHECK_INT(cc_wmemo_epoch(m), e2); /* the event was consumed */
  cc_wmemo_remember_user(m, e2, HASH_A, "alice");
  CHECK(cc_wmemo_user(m, e2, HASH_A, user, sizeof user));
  /* A checkpoint writes the database file: also a change. */
  append(g_db, "checkpoint");
  uint64_t e3 = cc_wmemo_epoch(m);
  CHECK(e3 != e2);
  CHECK(!cc_wmemo_user(m, e3, HASH_A, user, sizeof user));
  /* Epoch 0 (memo off) never hits and never remembers. */
  cc_wmemo_remember_user(m, 0, HASH_B, "bob");
  CHECK(!cc_wmemo_user(m, 0, HASH_B, user, sizeof user));
  cc_wmemo_free(m);
}

/* Splits the printed result at its "duration" value, as cc_wops does. */
static void remember(cc_wmemo *m, uint64_t epoch, const char *project, const char *key,
                     const char *result_json, int64_t created_ms) {
  const char *d = strstr(result_json, "\"duration\":");
  CHECK(d != NULL);
  const char *after = d + strlen("\"duration\":");
  while (*after >= '0' && *after <= '9') after++;
  cc_wmemo_exec e = {.before = result_json,
                     .before_len = (size_t)(d - result_json) + strlen("\"duration\":"),
                     .after = after,
                     .after_len = strlen(after),
                     .generation = 7,
                     .created_ms = created_ms,
                     .record_id = "0123456789abcdef0123456789abcdef"};
  cc_wmemo_remember_exec(m, epoch, "alice", project, key, &e);
}

static void test_exec_entries(void) {
  cc_wmemo *m = cc_wmemo_new(g_db);
  uint64_t e = cc_wmemo_epoch(m);
  const char *result =
      "{\"id\":\"0123456789abcdef0123456789abcdef\",\"stdout\":\"hi \\\"there\\\"\\n\","
      "\"stderr\":\"\",\"exitCode\":0,\"duration\":0,\"cached\":true,\"status\":\"success\"}";
  remember(m, e, "p", "[\"echo hi\",\"\",[],null]", result, 1000);
  char *resp = NULL, rec[33] = "";
  /* The response is what cc_wjson_encode_ok prints for the same result and duration. */
  CHECK(cc_wmemo_exec_serve(m, e, "alice", "p", "[\"echo hi\",\"\",[],null]", 1200, 500,
                            "req-\"1\"", 42, &resp, rec, sizeof rec));
  cJSON *r = cJSON_Parse(result);
  cJSON_ReplaceItemInObjectCaseSensitive(r, "duration", cJSON_CreateNumber(42));
  char *want = NULL;
  CHECK_INT(cc_wjson_encode_ok("req-\"1\"", r, 7, &want), CC_OK);
  CHECK_STR(resp, want);
  CHECK_STR(rec, "0123456789abcdef0123456789abcdef");
  free(resp);
  free(want);
  cJSON_Delete(r);
  /* A null id prints as null, like the encoder. */
  CHECK(cc_wmemo_exec_serve(m, e, "alice", "p", "[\"echo hi\",\"\",[],null]", 1200, 500, NULL, 0,
                            &resp, rec, sizeof rec));
  CHECK(resp && strncmp(resp, "{\"v\":1,\"id\":null,", 17) == 0);
  free(resp);
  /* Another user, project or key is another entry. */
  CHECK(!cc_wmemo_exec_serve(m, e, "bob", "p", "[\"echo hi\",\"\",[],null]", 1200, 500, "x", 0,
                             &resp, rec, sizeof rec));
  CHECK(resp == NULL);
  CHECK(!cc_wmemo_exec_serve(m, e, "alice", "q", "[\"echo hi\",\"\",[],null]", 1200, 500, "x", 0,
                             &resp, rec, sizeof rec));
  CHECK(!cc_wmemo_exec_serve(m, e, "alice", "p", "[\"echo ho\",\"\",[],null]", 1200, 500, "x", 0,
                             &resp, rec, sizeof rec));
  /* The cache TTL counts from when the result was stored (created 1000, TTL 500). */
  CHECK(cc_wmemo_exec_serve(m, e, "alice", "p", "[\"echo hi\",\"\",[],null]", 1499, 500, "x", 0,
                            &resp, rec, sizeof rec));
  free(resp);
  CHECK(!cc_wmemo_exec_serve(m, e, "alice", "p", "[\"echo hi\",\"\",[],null]", 1500, 500, "x", 0,
                             &resp, rec, sizeof rec));
  /* Any write retires it. */
  append(g_wal, "bump");
  uint64_t e2 = cc_wmemo_epoch(m);
  CHECK(!cc_wmemo_exec_serve(m, e2, "alice", "p", "[\"echo hi\",\"\",[],null]", 1200, 500, "x", 0,
                             &resp, rec, sizeof rec));
  /* Entries above the size limit are not kept (they are served from the store). */
  size_t big = CC_WMEMO_MAX_ENTRY_BYTES + 10;
  char *huge = malloc(big + 64);
  snprintf(huge, big + 64, "{\"stdout\":\"%0*d\",\"duration\":0}", (int)big, 0);
  remember(m, e2, "p", "big", huge, 1000);
  CHECK(
      !cc_wmemo_exec_serve(m, e2, "alice", "p", "big", 1200, 500, "x", 0, &resp, rec, sizeof rec));
  free(huge);
  /* Many entries: bounded slots, every lookup either the right entry or a miss. */
  int hits = 0;
  for (int i = 0; i < 3000; i++) {
    char key[32];
    snprintf(key, sizeof key, "k%d", i);
    remember(m, e2, "p", key, "{\"duration\":0}", 1000);
  }
  for (int i = 0; i < 3000; i++) {
    char key[32];
    snprintf(key, sizeof key, "k%d", i);
    if (cc_wmemo_exec_serve(m, e2, "alice", "p", key, 1200, 500, "x", 1, &resp, rec, sizeof rec)) {
      hits++;
      CHECK(strstr(resp, "\"result\":{\"duration\":1}") != NULL);
      free(resp);
    }
  }
  CHECK(hits > 0 && hits <= 1024);
  cc_wmemo_free(m);
}

static void test_lost_watch(void) {
  /* No such database: the memo is off from the start. */
  char missing[200];
  snprintf(missing, sizeof missing, "%s/none.db", g_dir);
  cc_wmemo *m = cc_wmemo_new(missing);
  CHECK(m != NULL);
  CHECK_INT(cc_wmemo_epoch(m), 0);
  cc_wmemo_free(m);
  /* The log goes away under a running memo: it turns itself off. */
  m = cc_wmemo_new(g_db);
  CHECK(cc_wmemo_epoch(m) != 0);
  CHECK(unlink(g_wal) == 0);
  CHECK_INT(cc_wmemo_epoch(m), 0);
  CHECK_INT(cc_wmemo_epoch(m), 0);
  cc_wmemo_free(m);
  cc_wmemo_free(NULL);
}

static void exec_sql(sqlite3 *db, const char *sql) {
  char *err = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
  if (rc != SQLITE_OK) fprintf(stderr, "sqlite: %s: %s\n", sql, err ? err : "?");
  CHECK_INT(rc, SQLITE_OK);
  sqlite3_free(err);
}

static void test_wal_index_header(void) {
  char db_path[200];
  snprintf(db_path, sizeof db_path, "%s/real.db", g_dir);
  /* "the store": the worker's own connection, open for the memo's whole life */
  sqlite3 *store = NULL, *other = NULL;
  CHECK_INT(sqlite3_open(db_path, &store), SQLITE_OK);
  exec_sql(store, "PRAGMA journal_mode=WAL; CREATE TABLE t(k TEXT PRIMARY KEY, v TEXT);"
                  "INSERT INTO t VALUES('tok','alice');");
  cc_wmemo *m = cc_wmemo_new(db_path);
  CHECK_STR(cc_wmemo_how(m), "WAL-index header"); /* not the inotify fallback */
  uint64_t e1 = cc_wmemo_epoch(m);
  CHECK(e1 != 0);
  cc_wmemo_remember_user(m, e1, HASH_A, "alice");
  /* reads, by this or another connection, change nothing */
  exec_sql(store, "SELECT * FROM t;");
  CHECK_INT(sqlite3_open(db_path, &other), SQLITE_OK);
  exec_sql(other, "SELECT * FROM t;");
  CHECK_INT(cc_wmemo_epoch(m), e1);
  char user[129] = "";
  CHECK(cc_wmemo_user(m, e1, HASH_A, user, sizeof user));
  /* each commit of another connection is seen by the very next epoch */
  for (int i = 0; i < 50; i++) {
    uint64_t before = cc_wmemo_epoch(m);
    char sql[64];
    snprintf(sql, sizeof sql, "UPDATE t SET v='v%d'", i);
    exec_sql(other, sql);
    uint64_t after = cc_wmemo_epoch(m);
    CHECK(after != before && after != 0);
    CHECK_INT(cc_wmemo_epoch(m), after); /* and only once */
  }
  CHECK(!cc_wmemo_user(m, cc_wmemo_epoch(m), HASH_A, user, sizeof user));
  /* a checkpoint that restarts the log is a change too (never missed, maybe conservative) */
  uint64_t before = cc_wmemo_epoch(m);
  exec_sql(other, "PRAGMA wal_checkpoint(TRUNCATE); UPDATE t SET v='carol';");
  CHECK(cc_wmemo_epoch(m) != before);
  /* a transaction rolled back leaves the epoch alone */
  before = cc_wmemo_epoch(m);
  exec_sql(other, "BEGIN; UPDATE t SET v='dave'; ROLLBACK;");
  CHECK_INT(cc_wmemo_epoch(m), before);
  sqlite3_close(other);
  cc_wmemo_free(m);
  sqlite3_close(store);
  char side[220];
  unlink(db_path);
  snprintf(side, sizeof side, "%s-wal", db_path);
  unlink(side);
  snprintf(side, sizeof side, "%s-shm", db_path);
  unlink(side);
}

int main(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/cc-wmemo-XXXXXX");
  if (!mkdtemp(g_dir)) return 1;
  snprintf(g_db, sizeof g_db, "%s/w.db", g_dir);
  snprintf(g_wal, sizeof g_wal, "%s-wal", g_db);
  append(g_db, "");
  append(g_wal, "");
  RUN(test_epochs_and_users);
  RUN(test_exec_entries);
  RUN(test_lost_watch);
  RUN(test_wal_index_header);
  unlink(g_db);
  unlink(g_wal);
  rmdir(g_dir);
  return CC_TEST_DONE();
}
