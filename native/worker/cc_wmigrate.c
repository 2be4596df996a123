/*
 * cc_wmigrate: `codecanvas-worker migrate` -- a SQLite deployment copied into PostgreSQL (see
 * cc_wmigrate.h for the contract, docs/operations.md for the operator's view).
 *
 * The steps, in order, each only when the one before succeeded:
 *  1. the SQLite file is opened read-only, its schema version checked (1 or 2: a file of
 *     schema 1 has no records.body, read as NULL) and a read transaction begun, so every
 *     table is read as of one moment;
 *  2. on a connection of our own, the refusal check (users, projects or snapshots present),
 *     before anything is written;
 *  3. the target is opened through cc_store_open() and the snapshot store
 *     (cc_wsnap_pg_store), which create or migrate its schema exactly as a worker would, and
 *     closed again;
 *  4. on our connection: BEGIN, the tables locked against writers, the refusal check again,
 *     one COPY per table in the order of the foreign keys, the bigserial sequences set past
 *     the copied ids, COMMIT.
 * Rows stream from SQLite into the COPY through a fixed buffer (COPY data may be cut
 * anywhere), so memory stays bounded whatever the size of the file or of a snapshot.
 */
#define _GNU_SOURCE
#include "cc_wmigrate.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cc_store.h"
#include "cc_wsnap.h"

#define COPY_BUF (256 * 1024) /* bytes handed to PQputCopyData at a time */
#define READ_BUF (64 * 1024)  /* bytes of a snapshot archive read at a time */
#define META_MAX (1 << 20)    /* largest <key>.json read */
#define SOURCE_VERSION_MAX 2  /* the SQLite schema versions this program reads: 1 and 2 */

/* What the store's recovery writes into an interrupted record (cc_store_rules.c,
 * CC_STORE_RECOVER_MESSAGE, which is internal to the store; docs/store.md "Recovery"). */
static const char RECOVER_MESSAGE[] =
    "the worker stopped while this operation ran; it did not finish";

typedef struct {
  const cc_wmigrate_options *o;
  cc_wmigrate_counts *n;
  char *err;
  size_t errlen;
  char shown_to[512]; /* the URI with its password masked: the only form ever printed */
  char snap_dir[1024];
  bool snapshots; /* copy the snapshot directory */
  sqlite3 *src;
  int version; /* the source's schema version */
  PGconn *pg;
  size_t len; /* bytes waiting in buf */
  char buf[COPY_BUF];
} mig;

static cc_status failf(mig *m, cc_status st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m->err, m->errlen, fmt, ap);
  va_end(ap);
  size_t l = strlen(m->err);
  while (l && (m->err[l - 1] == '\n' || m->err[l - 1] == ' ')) m->err[--l] = 0;
  return st;
}

/* A failure of the PostgreSQL connection: CC_UPSTREAM_ERROR when it is gone. */
static cc_status pg_fail(mig *m, const PGresult *r, const char *what) {
  const char *em = r ? PQresultErrorMessage(r) : NULL;
  if (!em || !*em) em = PQerrorMessage(m->pg);
  bool gone = PQstatus(m->pg) != CONNECTION_OK;
  return failf(m, gone ? CC_UPSTREAM_ERROR : CC_INTERNAL, "%s on %s: %s", what, m->shown_to,
               em && *em ? em : "connection lost");
}

static cc_status sq_fail(mig *m, const char *what) {
  return failf(m, CC_INTERNAL, "%s in %s: %s", what, m->o->from, sqlite3_errmsg(m->src));
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ the source */

/* One integer from a query of the source (count(*), PRAGMA user_version). */
static cc_status sq_int(mig *m, const char *sql, int64_t *out) {
  sqlite3_stmt *st = NULL;
  cc_status rc = CC_OK;
  if (sqlite3_prepare_v2(m->src, sql, -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
    rc = sq_fail(m, "cannot read");
  else
    *out = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return rc;
}

static cc_status open_source(mig *m) {
  const char *from = m->o->from;
  struct stat sb;
  if (stat(from, &sb) != 0)
    return failf(m, errno == ENOENT ? CC_NOT_FOUND : CC_INTERNAL, "cannot open %s: %s", from,
                 strerror(errno));
  if (!S_ISREG(sb.st_mode)) return failf(m, CC_BAD_REQUEST, "%s is not a file", from);
  if (sqlite3_open_v2(from, &m->src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
    return failf(m, CC_INTERNAL, "cannot open %s: %s", from,
                 m->src ? sqlite3_errmsg(m->src) : "out of memory");
  sqlite3_busy_timeout(m->src, 5000);
  int64_t version = 0, tables = 0;
  cc_status rc = sq_int(m, "PRAGMA user_version", &version);
  if (!rc)
    rc = sq_int(m,
                "SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN "
                "('users','tokens','projects','cache','records')",
                &tables);
  if (rc) return rc;
  if (version < 1 || tables != 5)
    return failf(m, CC_BAD_REQUEST, "%s is not a codecanvas database (schema version %lld)", from,
                 (long long)version);
  if (version > SOURCE_VERSION_MAX)
    return failf(m, CC_BAD_REQUEST, "%s has schema %lld, newer than this program's (%d)", from,
                 (long long)version, SOURCE_VERSION_MAX);
  m->version = (int)version;
  /* One read transaction: every table as of the same moment. */
  if (sqlite3_exec(m->src, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
    return sq_fail(m, "cannot begin a read");
  int64_t one;
  return sq_int(m, "SELECT count(*) FROM users", &one); /* takes the read snapshot now */
}

/* Where the deployment's snapshots are: the option, else snapshots/ beside the file (as
 * cc_wsnap_init picks it).  A missing default directory means "none"; a missing directory the
 * operator named is an error. */
static cc_status find_snapshots(mig *m) {
  const char *d = m->o->snapshot_dir;
  if (d && strcmp(d, "off") == 0) return CC_OK;
  if (d && *d) {
    snprintf(m->snap_dir, sizeof m->snap_dir, "%s", d);
  } else {
    char copy[1024];
    snprintf(copy, sizeof copy, "%s", m->o->from);
    snprintf(m->snap_dir, sizeof m->snap_dir, "%s/snapshots", dirname(copy));
  }
  struct stat sb;
  if (stat(m->snap_dir, &sb) != 0) {
    if (errno == ENOENT && !(d && *d)) return CC_OK;
    return failf(m, errno == ENOENT ? CC_NOT_FOUND : CC_INTERNAL, "snapshot directory %s: %s",
                 m->snap_dir, strerror(errno));
  }
  if (!S_ISDIR(sb.st_mode))
    return failf(m, CC_BAD_REQUEST, "snapshot directory %s is not a directory", m->snap_dir);
  m->snapshots = true;
  return CC_OK;
}

/* ------------------------------------------------------------------ the target */

/* The schema, made by the code every worker runs: the store, then the snapshot table. */
static cc_status prepare_target(mig *m) {
  cc_store_options so;
  cc_store_options_init(&so);
  so.path = m->o->to;
  so.max_connections = 2;
  cc_store *s = NULL;
  char e[512] = "";
  cc_status rc = cc_store_open(&so, &s, e, sizeof e);
  if (rc) return failf(m, rc, "cannot open %s: %s", m->shown_to, e);
  cc_store_close(s);
  cc_wsnap_store *snap = NULL;
  if ((rc = cc_wsnap_pg_store(m->o->to, &snap)) != CC_OK)
    return failf(m, rc, "cannot create the snapshots table in %s: %s", m->shown_to,
                 cc_status_message(rc));
  snap->free(snap);
  return CC_OK;
}

static cc_status connect_target(mig *m) {
  const char *keys[] = {"dbname", "connect_timeout", "application_name", "client_encoding", NULL};
  const char *vals[] = {m->o->to, "10", "codecanvas-worker migrate", "UTF8", NULL};
  m->pg = PQconnectdbParams(keys, vals, 1);
  if (!m->pg) return failf(m, CC_INTERNAL, "out of memory");
  if (PQstatus(m->pg) != CONNECTION_OK)
    return failf(m, CC_UPSTREAM_ERROR, "cannot connect to %s: %s", m->shown_to,
                 PQerrorMessage(m->pg));
  PGresult *r = PQexec(m->pg, "SET client_min_messages = warning");
  PQclear(r);
  return CC_OK;
}

static cc_status exec_pg(mig *m, const char *sql, const char *what) {
  PGresult *r = PQexec(m->pg, sql);
  ExecStatusType t = PQresultStatus(r);
  cc_status rc = t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK ? CC_OK : pg_fail(m, r, what);
  PQclear(r);
  return rc;
}

/* The rows of `table` in the target, 0 when it has no such table (yet). */
static cc_status count_rows(mig *m, const char *table, long long *n) {
  *n = 0;
  const char *p[] = {table};
  PGresult *r =
      PQexecParams(m->pg, "SELECT to_regclass($1) IS NOT NULL", 1, NULL, p, NULL, NULL, 0);
  cc_status rc = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
                     ? CC_OK
                     : pg_fail(m, r, "cannot read the target's tables");
  bool exists = !rc && PQgetvalue(r, 0, 0)[0] == 't';
  PQclear(r);
  if (rc || !exists) return rc;
  char sql[64];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table); /* one of ours, never input */
  r = PQexec(m->pg, sql);
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
    *n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  else
    rc = pg_fail(m, r, "cannot count the target's rows");
  PQclear(r);
  return rc;
}

/* Refuses a target that already holds data (nothing of ours may mix with it).  Runs before
 * anything is written (so a refusal leaves even the schema as it was), and again inside the
 * transaction once the tables are locked, so no worker adds a row in between. */
static cc_status check_empty(mig *m) {
  long long users = 0, projects = 0, snaps = 0;
  cc_status rc = count_rows(m, "users", &users);
  if (!rc) rc = count_rows(m, "projects", &projects);
  if (!rc) rc = count_rows(m, "snapshots", &snaps);
  if (rc) return rc;
  if (users || projects || snaps)
    return failf(m, CC_CONFLICT,
                 "refused: %s already holds %lld user(s), %lld project(s) and %lld snapshot(s); "
                 "migrate copies only into a database without any (nothing was written)",
                 m->shown_to, users, projects, snaps);
  return CC_OK;
}

/* ------------------------------------------------------------------ COPY text format */

static cc_status flush(mig *m) {
  if (m->len && PQputCopyData(m->pg, m->buf, (int)m->len) != 1) return pg_fail(m, NULL, "copy");
  m->len = 0;
  return CC_OK;
}

static cc_status put(mig *m, const void *data, size_t n) {
  const char *p = data;
  while (n) {
    size_t k = COPY_BUF - m->len < n ? COPY_BUF - m->len : n;
    memcpy(m->buf + m->len, p, k);
    m->len += k;
    p += k;
    n -= k;
    if (m->len == COPY_BUF) {
      cc_status rc = flush(m);
      if (rc) return rc;
    }
  }
  return CC_OK;
}

static cc_status put_str(mig *m, const char *s) {
  return put(m, s, strlen(s));
}

/* A text value: backslash, newline, carriage return and tab escaped (COPY's text format). */
static cc_status put_escaped(mig *m, const unsigned char *s, size_t n) {
  size_t run = 0;
  cc_status rc = CC_OK;
  for (size_t i = 0; !rc && i < n; i++) {
    const char *esc = s[i] == '\\'   ? "\\\\"
                      : s[i] == '\n' ? "\\n"
                      : s[i] == '\r' ? "\\r"
                      : s[i] == '\t' ? "\\t"
                                     : NULL;
    if (!esc) continue;
    if (!(rc = put(m, s + run, i - run))) rc = put(m, esc, 2);
    run = i + 1;
  }
  return rc ? rc : put(m, s + run, n - run);
}

static cc_status copy_begin(mig *m, const char *sql) {
  PGresult *r = PQexec(m->pg, sql);
  cc_status rc = PQresultStatus(r) == PGRES_COPY_IN ? CC_OK : pg_fail(m, r, "cannot start a copy");
  PQclear(r);
  m->len = 0;
  return rc;
}

/* Ends the COPY begun by copy_begin: sends the rest, or aborts it when `rc` is a failure
 * (the transaction is then failed and rolled back by the caller).  Returns the outcome. */
static cc_status copy_end(mig *m, cc_status rc, const char *what) {
  if (!rc) rc = flush(m);
  if (PQputCopyEnd(m->pg, rc ? "migration failed" : NULL) != 1 && !rc) rc = pg_fail(m, NULL, what);
  PGresult *r;
  while ((r = PQgetResult(m->pg))) {
    if (!rc && PQresultStatus(r) != PGRES_COMMAND_OK) rc = pg_fail(m, r, what);
    PQclear(r);
  }
  return rc;
}

/* Streams every row of the source query `select` into `copy` (a COPY ... FROM STDIN whose
 * columns are the query's, in order); *count gets the number of rows.  ?1 and ?2 of the query,
 * when it has them, are the recovery message and the time now. */
static cc_status copy_table(mig *m, const char *what, const char *select, const char *copy,
                            int64_t *count) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(m->src, select, -1, &st, NULL) != SQLITE_OK)
    return sq_fail(m, "cannot read");
  if (sqlite3_bind_parameter_count(st) >= 2) {
    sqlite3_bind_text(st, 1, RECOVER_MESSAGE, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_ms());
  }
  cc_status rc = copy_begin(m, copy);
  if (rc) {
    sqlite3_finalize(st);
    return rc;
  }
  int cols = sqlite3_column_count(st), step = SQLITE_DONE;
  int64_t rows = 0;
  char num[32];
  while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
    for (int i = 0; !rc && i < cols; i++) {
      if (i && (rc = put(m, "\t", 1))) break;
      switch (sqlite3_column_type(st, i)) {
        case SQLITE_NULL:
          rc = put(m, "\\N", 2);
          break;
        case SQLITE_INTEGER:
          snprintf(num, sizeof num, "%lld", (long long)sqlite3_column_int64(st, i));
          rc = put_str(m, num);
          break;
        case SQLITE_FLOAT: /* no column of ours holds one; an integer column gets its value */
          snprintf(num, sizeof num, "%lld", (long long)sqlite3_column_double(st, i));
          rc = put_str(m, num);
          break;
        default: { /* text (a blob is copied as its bytes) */
          const unsigned char *t = sqlite3_column_text(st, i);
          rc = put_escaped(m, t ? t : (const unsigned char *)"",
                           (size_t)sqlite3_column_bytes(st, i));
        }
      }
    }
    if (!rc && !(rc = put(m, "\n", 1))) rows++;
  }
  if (!rc && step != SQLITE_DONE) rc = sq_fail(m, "cannot read");
  sqlite3_finalize(st);
  char w[64];
  snprintf(w, sizeof w, "cannot copy %s", what);
  if ((rc = copy_end(m, rc, w))) return rc;
  *count = rows;
  return CC_OK;
}

/* ------------------------------------------------------------------ snapshots */

/* Whether name is <64 lowercase hex digits>.json: a snapshot's metadata (cc_wsnap.c keys). */
static bool is_meta_name(const char *name) {
  if (strlen(name) != 64 + 5 || strcmp(name + 64, ".json") != 0) return false;
  for (int i = 0; i < 64; i++)
    if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f'))) return false;
  return true;
}

static int meta_filter(const struct dirent *e) {
  return is_meta_name(e->d_name);
}

/* Reads <dir>/<key>.json as the directory store writes it: {takenAt, bytes, partial,
 * excluded}.  *excluded is the array's compact JSON or NULL (the caller frees it). */
static bool read_meta(const char *path, long long *taken, long long *bytes, bool *partial,
                      char **excluded) {
  *excluded = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return false;
  char *text = malloc(META_MAX + 1);
  size_t n = text ? fread(text, 1, META_MAX + 1, f) : 0;
  fclose(f);
  if (!text || n > META_MAX) {
    free(text);
    return false;
  }
  text[n] = 0;
  cJSON *o = cJSON_Parse(text);
  free(text);
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "takenAt");
  const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "bytes");
  const cJSON *ex = cJSON_GetObjectItemCaseSensitive(o, "excluded");
  bool ok = cJSON_IsNumber(t) && cJSON_IsNumber(b);
  if (ok) {
    *taken = (long long)t->valuedouble;
    *bytes = (long long)b->valuedouble;
    *partial = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "partial"));
    if (cJSON_IsArray(ex) && !(*excluded = cJSON_PrintUnformatted(ex))) ok = false;
  }
  cJSON_Delete(o);
  return ok;
}

/* One snapshot row: key, taken_ms, bytes, partial, excluded, data (bytea as \\x + hex, the
 * archive streamed from its file).  *skipped when the pair is incomplete or unreadable. */
static cc_status copy_snapshot(mig *m, const char *meta_name, bool *skipped) {
  static const char hex[] = "0123456789abcdef";
  char key[65], path[1200];
  memcpy(key, meta_name, 64);
  key[64] = 0;
  *skipped = true;
  long long taken = 0, bytes = 0;
  bool partial = false;
  char *excluded = NULL;
  snprintf(path, sizeof path, "%s/%s.json", m->snap_dir, key);
  if (!read_meta(path, &taken, &bytes, &partial, &excluded)) return CC_OK;
  snprintf(path, sizeof path, "%s/%s.tgz", m->snap_dir, key);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    cJSON_free(excluded);
    return CC_OK;
  }
  *skipped = false;
  char head[160];
  snprintf(head, sizeof head, "%s\t%lld\t%lld\t%s\t", key, taken, bytes, partial ? "t" : "f");
  cc_status rc = put_str(m, head);
  if (!rc) {
    rc = excluded ? put_escaped(m, (const unsigned char *)excluded, strlen(excluded))
                  : put(m, "\\N", 2);
  }
  if (!rc) rc = put(m, "\t\\\\x", 4);
  unsigned char in[READ_BUF];
  char out[2 * READ_BUF];
  while (!rc) {
    ssize_t k = read(fd, in, sizeof in);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) rc = failf(m, CC_INTERNAL, "cannot read %s: %s", path, strerror(errno));
    if (k <= 0) break;
    for (ssize_t i = 0; i < k; i++) {
      out[2 * i] = hex[in[i] >> 4];
      out[2 * i + 1] = hex[in[i] & 15];
    }
    m->n->snapshot_bytes += (uint64_t)k;
    rc = put(m, out, 2 * (size_t)k);
  }
  close(fd);
  cJSON_free(excluded);
  return rc ? rc : put(m, "\n", 1);
}

static cc_status copy_snapshots(mig *m) {
  if (!m->snapshots) return CC_OK;
  struct dirent **names = NULL;
  int k = scandir(m->snap_dir, &names, meta_filter, alphasort);
  if (k < 0) return failf(m, CC_INTERNAL, "cannot list %s: %s", m->snap_dir, strerror(errno));
  cc_status rc = k ? copy_begin(m,
                                "COPY snapshots(key, taken_ms, bytes, partial, excluded, data) "
                                "FROM STDIN")
                   : CC_OK;
  bool copying = k && !rc;
  for (int i = 0; i < k; i++) {
    bool skipped = false;
    if (!rc && !(rc = copy_snapshot(m, names[i]->d_name, &skipped))) {
      if (skipped)
        m->n->snapshots_skipped++;
      else
        m->n->snapshots++;
    }
    free(names[i]);
  }
  free(names);
  if (copying) rc = copy_end(m, rc, "cannot copy snapshots");
  return rc;
}

/* ------------------------------------------------------------------ the copy */

/* Columns of each table, source query first.  Rows go in the order a worker made them:
 * cache entries by rowid (the order cache_put evicts in; the target's cache.seq is assigned
 * in the same order), records by seq.  A record pending or running in the file is written
 * as the store's recovery would leave it. */
static const char USERS_SQL[] = "SELECT name, created_at FROM users ORDER BY rowid";
static const char USERS_COPY[] = "COPY users(name, created_at) FROM STDIN";
static const char TOKENS_SQL[] =
    "SELECT id, user, hash, label, created_at, revoked_at FROM tokens ORDER BY id";
static const char TOKENS_COPY[] =
    "COPY tokens(id, \"user\", hash, label, created_at, revoked_at) FROM STDIN";
static const char PROJECTS_SQL[] =
    "SELECT id, owner, project, generation, sandbox_id, metadata, created_at, updated_at "
    "FROM projects ORDER BY id";
static const char PROJECTS_COPY[] =
    "COPY projects(id, owner, project, generation, sandbox_id, metadata, created_at, "
    "updated_at) FROM STDIN";
static const char CACHE_SQL[] =
    "SELECT project_rowid, key, cmd, generation, created_at, result FROM cache ORDER BY rowid";
static const char CACHE_COPY[] =
    "COPY cache(project_id, key, cmd, generation, created_at, result) FROM STDIN";
#define OPEN "status IN ('pending','running')"
static const char RECORDS_SQL[] =
    "SELECT seq, id, project_rowid, op, input, "
    "CASE WHEN " OPEN
    " THEN 'error' ELSE status END, result, "
    "CASE WHEN " OPEN
    " THEN 'internal' ELSE error_code END, "
    "CASE WHEN " OPEN
    " THEN ?1 ELSE error_message END, created_at, "
    "CASE WHEN " OPEN
    " THEN ?2 ELSE finished_at END, "
    "CASE WHEN " OPEN " THEN NULL ELSE %s END FROM records ORDER BY seq";
static const char RECORDS_COPY[] =
    "COPY records(seq, id, project_id, op, input, status, result, error_code, error_message, "
    "created_at, finished_at, body) FROM STDIN";
/* New rows must get ids past the copied ones (cache.seq advanced as the rows went in). */
static const char SET_SEQUENCES[] =
    "SELECT setval(pg_get_serial_sequence('tokens', 'id'), "
    "COALESCE((SELECT max(id) FROM tokens), 0) + 1, false), "
    "setval(pg_get_serial_sequence('projects', 'id'), "
    "COALESCE((SELECT max(id) FROM projects), 0) + 1, false), "
    "setval(pg_get_serial_sequence('records', 'seq'), "
    "COALESCE((SELECT max(seq) FROM records), 0) + 1, false)";

static cc_status copy_all(mig *m) {
  cc_wmigrate_counts *n = m->n;
  char records_sql[sizeof RECORDS_SQL + 16];
  snprintf(records_sql, sizeof records_sql, RECORDS_SQL, m->version >= 2 ? "body" : "NULL");
  cc_status rc =
      sq_int(m, "SELECT count(*) FROM tokens WHERE revoked_at IS NOT NULL", &n->revoked_tokens);
  if (!rc) rc = sq_int(m, "SELECT count(*) FROM records WHERE " OPEN, &n->interrupted_records);
  if (rc) return rc;
  if ((rc = exec_pg(m, "BEGIN", "cannot begin"))) return rc;
  /* Workers on the target (there should be none) may read, not write, until COMMIT. */
  if (!(rc = exec_pg(m,
                     "LOCK TABLE users, tokens, projects, cache, records, snapshots "
                     "IN EXCLUSIVE MODE",
                     "cannot lock the tables")) &&
      !(rc = check_empty(m)) && !(rc = copy_table(m, "users", USERS_SQL, USERS_COPY, &n->users)) &&
      !(rc = copy_table(m, "tokens", TOKENS_SQL, TOKENS_COPY, &n->tokens)) &&
      !(rc = copy_table(m, "projects", PROJECTS_SQL, PROJECTS_COPY, &n->projects)) &&
      !(rc = copy_table(m, "cache", CACHE_SQL, CACHE_COPY, &n->cache_entries)) &&
      !(rc = copy_table(m, "records", records_sql, RECORDS_COPY, &n->records)) &&
      !(rc = copy_snapshots(m)) &&
      !(rc = exec_pg(m, SET_SEQUENCES, "cannot advance the sequences")))
    rc = exec_pg(m, "COMMIT", "cannot commit");
  if (rc && PQstatus(m->pg) == CONNECTION_OK && PQtransactionStatus(m->pg) != PQTRANS_IDLE) {
    PGresult *r = PQexec(m->pg, "ROLLBACK");
    PQclear(r);
  }
  return rc;
}

cc_status cc_wmigrate_run(const cc_wmigrate_options *o, cc_wmigrate_counts *counts, char *err,
                          size_t errlen) {
  memset(counts, 0, sizeof *counts);
  if (errlen) err[0] = 0;
  const char *bad = !o->from || !*o->from ? "no --from FILE"
                    : cc_store_is_postgresql(o->from)
                        ? "--from must be the SQLite file of the deployment, not a URI"
                    : !o->to || !cc_store_is_postgresql(o->to)
                        ? "--to must be a postgresql:// (or postgres://) URI"
                        : NULL;
  if (bad) {
    snprintf(err, errlen, "%s", bad);
    return CC_BAD_REQUEST;
  }
  mig *m = calloc(1, sizeof *m);
  if (!m) {
    snprintf(err, errlen, "out of memory");
    return CC_INTERNAL;
  }
  cc_wmigrate_counts n = {0};
  m->o = o;
  m->n = &n;
  m->err = err;
  m->errlen = errlen;
  cc_store_display_name(o->to, m->shown_to, sizeof m->shown_to);
  cc_status rc = open_source(m);
  if (!rc) rc = find_snapshots(m);
  if (!rc) rc = connect_target(m);
  if (!rc) rc = check_empty(m);
  if (!rc) rc = prepare_target(m);
  if (!rc) rc = copy_all(m);
  if (!rc) *counts = n;
  PQfinish(m->pg);
  if (m->src) {
    sqlite3_exec(m->src, "ROLLBACK", NULL, NULL, NULL); /* ends the read; nothing was written */
    sqlite3_close(m->src);
  }
  free(m);
  return rc;
}
