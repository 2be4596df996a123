/*
 * cc_wsnap_pg: the PostgreSQL backend of cc_wsnap_store: projects' snapshots kept in the
 * database the workers share (table snapshots), so that any worker can restore a project whose
 * sandbox another worker lost.  One connection of its own, serialised by a mutex (snapshots are
 * taken by one thread, restored rarely); reconnects when the connection broke.  The archive
 * travels as a binary parameter/result (bytea), the metadata as text.
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_wsnap.h"

typedef struct {
  cc_wsnap_store base;
  char *uri;
  PGconn *c;
  pthread_mutex_t mu;
} pg_store;

/* The connection, (re)opened when missing or broken.  Called with mu held. */
static PGconn *conn_of(pg_store *s) {
  if (s->c && PQstatus(s->c) == CONNECTION_OK) return s->c;
  PQfinish(s->c);
  const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
  const char *vals[] = {s->uri, "3", "codecanvas-worker snapshots", NULL};
  s->c = PQconnectdbParams(keys, vals, 1);
  if (PQstatus(s->c) != CONNECTION_OK) return NULL;
  PGresult *r = PQexec(s->c, "SET client_min_messages = warning");
  PQclear(r);
  return s->c;
}

static cc_status status_of(PGconn *c, PGresult *r, ExecStatusType want) {
  if (PQresultStatus(r) == want) return CC_OK;
  return c && PQstatus(c) != CONNECTION_OK ? CC_UPSTREAM_ERROR : CC_INTERNAL;
}

static cc_status pg_info_locked(pg_store *s, const char *key, cc_wsnap_meta *m) {
  memset(m, 0, sizeof *m);
  PGconn *c = conn_of(s);
  if (!c) return CC_UPSTREAM_ERROR;
  const char *p[] = {key};
  PGresult *r = PQexecParams(c, "SELECT taken_ms, bytes, partial, excluded FROM snapshots WHERE key=$1",
                             1, NULL, p, NULL, NULL, 0);
  cc_status st = status_of(c, r, PGRES_TUPLES_OK);
  if (!st && PQntuples(r) != 1) st = CC_NOT_FOUND;
  if (!st) {
    m->taken_ms = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    m->bytes = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
    m->partial = PQgetvalue(r, 0, 2)[0] == 't';
    if (!PQgetisnull(r, 0, 3) && !(m->excluded_json = strdup(PQgetvalue(r, 0, 3)))) st = CC_INTERNAL;
  }
  PQclear(r);
  return st;
}

static cc_status pg_info(cc_wsnap_store *b, const char *key, cc_wsnap_meta *m) {
  pg_store *s = (pg_store *)b;
  pthread_mutex_lock(&s->mu);
  cc_status st = pg_info_locked(s, key, m);
  pthread_mutex_unlock(&s->mu);
  return st;
}

static cc_status pg_get(cc_wsnap_store *b, const char *key, cc_wsnap_meta *m, char **data,
                        size_t *len) {
  pg_store *s = (pg_store *)b;
  *data = NULL;
  *len = 0;
  pthread_mutex_lock(&s->mu);
  cc_status st = pg_info_locked(s, key, m);
  if (!st) {
    const char *p[] = {key};
    PGresult *r = PQexecParams(s->c, "SELECT data FROM snapshots WHERE key=$1", 1, NULL, p, NULL,
                               NULL, 1 /* binary: the bytes as they are */);
    st = status_of(s->c, r, PGRES_TUPLES_OK);
    if (!st && PQntuples(r) != 1) st = CC_NOT_FOUND;
    if (!st) {
      size_t n = (size_t)PQgetlength(r, 0, 0);
      if ((*data = malloc(n + 1))) {
        memcpy(*data, PQgetvalue(r, 0, 0), n);
        (*data)[n] = 0;
        *len = n;
      } else {
        st = CC_INTERNAL;
      }
    }
    PQclear(r);
    if (st) cc_wsnap_meta_free(m);
  }
  pthread_mutex_unlock(&s->mu);
  return st;
}

static cc_status pg_put(cc_wsnap_store *b, const char *key, const cc_wsnap_meta *m,
                        const void *data, size_t len) {
  pg_store *s = (pg_store *)b;
  char taken[24], bytes[24];
  snprintf(taken, sizeof taken, "%lld", (long long)m->taken_ms);
  snprintf(bytes, sizeof bytes, "%llu", (unsigned long long)m->bytes);
  const char *p[] = {key, taken, bytes, m->partial ? "t" : "f", m->excluded_json, data};
  int lens[] = {0, 0, 0, 0, 0, (int)len};
  int fmts[] = {0, 0, 0, 0, 0, 1};
  if (len > (size_t)1 << 30) return CC_TOO_LARGE;
  pthread_mutex_lock(&s->mu);
  PGconn *c = conn_of(s);
  cc_status st = CC_UPSTREAM_ERROR;
  if (c) { /* one statement: the archive and its metadata change together */
    PGresult *r = PQexecParams(
        c,
        "INSERT INTO snapshots(key, taken_ms, bytes, partial, excluded, data) "
        "VALUES($1, $2, $3, $4, $5, $6) ON CONFLICT (key) DO UPDATE SET taken_ms=EXCLUDED.taken_ms, "
        "bytes=EXCLUDED.bytes, partial=EXCLUDED.partial, excluded=EXCLUDED.excluded, "
        "data=EXCLUDED.data",
        6, NULL, p, lens, fmts, 0);
    st = status_of(c, r, PGRES_COMMAND_OK);
    PQclear(r);
  }
  pthread_mutex_unlock(&s->mu);
  return st;
}

static cc_status pg_del(cc_wsnap_store *b, const char *key) {
  pg_store *s = (pg_store *)b;
  pthread_mutex_lock(&s->mu);
  PGconn *c = conn_of(s);
  cc_status st = CC_UPSTREAM_ERROR;
  if (c) {
    const char *p[] = {key};
    PGresult *r = PQexecParams(c, "DELETE FROM snapshots WHERE key=$1", 1, NULL, p, NULL, NULL, 0);
    st = status_of(c, r, PGRES_COMMAND_OK);
    PQclear(r);
  }
  pthread_mutex_unlock(&s->mu);
  return st;
}

static void pg_free(cc_wsnap_store *b) {
  pg_store *s = (pg_store *)b;
  if (!s) return;
  PQfinish(s->c);
  pthread_mutex_destroy(&s->mu);
  free(s->uri);
  free(s);
}

cc_status cc_wsnap_pg_store(const char *uri, cc_wsnap_store **out) {
  *out = NULL;
  pg_store *s = calloc(1, sizeof *s);
  if (!s || !(s->uri = strdup(uri))) {
    free(s);
    return CC_INTERNAL;
  }
  pthread_mutex_init(&s->mu, NULL);
  s->base = (cc_wsnap_store){pg_put, pg_get, pg_info, pg_del, pg_free};
  /* The table is part of the store's schema (shared/cc_store_pg.c), made before this. */
  PGconn *c = conn_of(s);
  PGresult *r = c ? PQexec(c, "SELECT 1 FROM snapshots LIMIT 0") : NULL;
  cc_status st = c ? status_of(c, r, PGRES_TUPLES_OK) : CC_UPSTREAM_ERROR;
  PQclear(r);
  if (st) {
    pg_free(&s->base);
    return st;
  }
  *out = &s->base;
  return CC_OK;
}
