/*
 * cc_store_pg_workers: what the PostgreSQL back end does for several workers on one database
 * (see docs/store.md): this worker's registration and presence, the heartbeat and the sweep
 * of dead workers' records (recover is the same sweep), the health check, and project locks.
 *
 * Each handle registers as a worker (table workers) and holds a session advisory lock on its
 * own key on a dedicated connection (the presence connection) for as long as it lives;
 * sweep() renews its row and marks the pending/running records of workers whose lock is free
 * (their session ended: crash, kill -9, lost host) and whose row has not been renewed for
 * SWEEP_GRACE_S as error/internal -- but not in the first RESTART_GRACE_S after the server
 * started, when every live worker's lock is free until it registers again.  project_lock()
 * takes a session advisory lock of the project on a borrowed connection: waiters are served
 * in arrival order by the server, and a holder that dies releases it with its session.
 */
#define _GNU_SOURCE
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cc_store_pg_int.h"

#define SWEEP_GRACE_S 2   /* a worker's row must be this stale (heartbeat: every second) */
#define RESTART_GRACE_S 5 /* ... and the server up this long (workers re-register after it restarts) */
#define LOCK_PROJECT 0x6363706c   /* "ccpl": project locks, (class, hashtext) form */

/* ------------------------------------------------------------------ presence and sweep */

/* (Re-)registers this worker on the presence connection: its session lock, then its row.
 * Called with presence_mu held. */
cc_status pg_presence_up(pg *s) {
  if (s->presence && PQstatus(s->presence) == CONNECTION_OK) return CC_OK;
  PQfinish(s->presence);
  s->presence = pg_connect(s);
  char m[256];
  if (!s->presence || PQstatus(s->presence) != CONNECTION_OK) {
    pg_msg_of(s->presence, m, sizeof m);
    return fail(s, CC_UPSTREAM_ERROR, "store: PostgreSQL unreachable: %s", m);
  }
  char key[24], pid[16], host[256] = "";
  snprintf(key, sizeof key, "%lld", s->worker_key);
  snprintf(pid, sizeof pid, "%d", (int)getpid());
  gethostname(host, sizeof host - 1);
  const char *pl[] = {key};
  const char *pw[] = {s->worker_id, key, host, pid};
  PGresult *r = PQexecParams(s->presence, "SELECT pg_advisory_lock($1::bigint)", 1, NULL, pl, NULL,
                             NULL, 0);
  bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
  PQclear(r);
  if (ok) {
    r = PQexecParams(s->presence,
                     "INSERT INTO workers(id, lock_key, host, pid) VALUES($1, $2, $3, $4) "
                     "ON CONFLICT (id) DO UPDATE SET seen_at = now()",
                     4, NULL, pw, NULL, NULL, 0);
    ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
  }
  if (!ok) {
    pg_msg_of(s->presence, m, sizeof m);
    PQfinish(s->presence);
    s->presence = NULL;
    return fail(s, CC_UPSTREAM_ERROR, "store: cannot register this worker: %s", m);
  }
  return CC_OK;
}

/* Renews this worker's row (re-registering after a lost connection). */
static cc_status heartbeat(pg *s) {
  pthread_mutex_lock(&s->presence_mu);
  cc_status rc = pg_presence_up(s);
  if (!rc) {
    const char *p[] = {s->worker_id};
    PGresult *r = PQexecParams(s->presence, "UPDATE workers SET seen_at = now() WHERE id=$1", 1,
                               NULL, p, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    bool gone = ok && strcmp(PQcmdTuples(r), "0") == 0;
    PQclear(r);
    if (!ok || gone) { /* connection lost, or our row was swept: register again */
      PQfinish(s->presence);
      s->presence = NULL;
      rc = pg_presence_up(s);
    }
  }
  pthread_mutex_unlock(&s->presence_mu);
  return rc;
}

static cc_status do_sweep(pg *s, conn *c, int64_t *count) {
  PGresult *r = NULL;
  pg_num grace = pg_n(SWEEP_GRACE_S), restart = pg_n(RESTART_GRACE_S),
         t = pg_n(cc_store_now(&s->o));
  const char *pd[] = {s->worker_id, grace.v, restart.v}, *pr[] = {CC_STORE_RECOVER_MESSAGE, t.v};
  cc_status rc = pg_begin(s, c);
  if (rc) return rc;
  if ((rc = pg_run(s, c, Q_SWEEP_DEAD, 3, pd, &r, "sweep workers", NULL))) goto out;
  PQclear(r);
  if ((rc = pg_run(s, c, Q_SWEEP_RECORDS, 2, pr, &r, "sweep records", NULL))) {
    r = NULL;
    goto out;
  }
  int64_t n = strtoll(PQcmdTuples(r), NULL, 10);
  PQclear(r);
  r = NULL;
  if ((rc = pg_commit(s, c))) goto out;
  if (count) *count = n;
out:
  PQclear(r);
  pg_rollback(s, c);
  return rc;
}

cc_status pg_sweep(void *ctx, int64_t *count) {
  pg *s = ctx;
  if (count) *count = 0;
  cc_status rc = heartbeat(s);
  if (rc) return rc;
  CALL(s, do_sweep(s, c, count));
  return rc;
}

cc_status pg_recover(void *ctx, int64_t *count) {
  return pg_sweep(ctx, count);
}

cc_status pg_health(void *ctx) {
  pg *s = ctx;
  cc_status rc;
  CALL(s, pg_simple(s, c, "SELECT 1", "health check"));
  return rc;
}

/* ------------------------------------------------------------------ project locks */

/* A held project lock: the connection that holds it and the key's text. */
typedef struct {
  conn *c;
  char name[2 * CC_STORE_NAME_MAX + 2];
} held_lock;

/* Waits for the lock's answer on c, polling *cancel; on cancel asks the server to cancel. */
static cc_status wait_lock(pg *s, conn *c, atomic_int *cancel) {
  int fd = PQsocket(c->pg);
  bool canceled = false;
  for (;;) {
    if (!PQconsumeInput(c->pg)) break;
    if (!PQisBusy(c->pg)) break;
    if (!canceled && cancel && atomic_load(cancel)) {
      PGcancel *k = PQgetCancel(c->pg);
      char eb[256];
      if (k) {
        PQcancel(k, eb, sizeof eb);
        PQfreeCancel(k);
      }
      canceled = true;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    poll(&p, 1, 100);
  }
  bool got = false;
  PGresult *r;
  while ((r = PQgetResult(c->pg))) {
    if (PQresultStatus(r) == PGRES_TUPLES_OK) got = true;
    else if (!canceled) pg_dberr(s, c, r, "lock project");
    PQclear(r);
  }
  if (PQstatus(c->pg) != CONNECTION_OK) {
    c->broken = true;
    return fail(s, CC_UPSTREAM_ERROR, "store: PostgreSQL connection lost while waiting for the project");
  }
  if (got && canceled) { /* granted just as we canceled: give it back */
    c->broken = true;   /* dropping the session releases it */
    return CC_SANDBOX_UNAVAILABLE;
  }
  if (canceled) return CC_SANDBOX_UNAVAILABLE;
  return got ? CC_OK : CC_INTERNAL;
}

cc_status pg_project_lock(void *ctx, const char *owner, const char *project,
                          atomic_int *cancel, void **lock) {
  pg *s = ctx;
  *lock = NULL;
  held_lock *h = calloc(1, sizeof *h);
  if (!h) return fail(s, CC_INTERNAL, "store: out of memory");
  snprintf(h->name, sizeof h->name, "%s/%s", owner, project);
  cc_status rc;
  for (int attempt = 0; attempt < 2; attempt++) {
    if ((rc = pg_acquire(s, &h->c))) break;
    char cls[16];
    snprintf(cls, sizeof cls, "%d", LOCK_PROJECT);
    const char *p[] = {cls, h->name};
    h->c->in_call++;
    if (!PQsendQueryParams(h->c->pg, pg_sql[Q_PROJECT_LOCK], 2, NULL, p, NULL, NULL, 0)) {
      h->c->broken = true;
      rc = fail(s, CC_UPSTREAM_ERROR, "store: PostgreSQL connection lost (lock project)");
    } else {
      rc = wait_lock(s, h->c, cancel);
    }
    if (rc == CC_OK) break;
    bool retry = rc == CC_UPSTREAM_ERROR && h->c->reused && h->c->broken;
    pg_release(s, h->c);
    h->c = NULL;
    if (!retry) break;
  }
  if (rc) {
    free(h);
    return rc;
  }
  *lock = h;
  return CC_OK;
}

void pg_project_unlock(void *ctx, void *lock) {
  pg *s = ctx;
  held_lock *h = lock;
  if (!h) return;
  char cls[16];
  snprintf(cls, sizeof cls, "%d", LOCK_PROJECT);
  const char *p[] = {cls, h->name};
  PGresult *r = PQexecParams(h->c->pg, pg_sql[Q_PROJECT_UNLOCK], 2, NULL, p, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) h->c->broken = true; /* the session ends it */
  PQclear(r);
  pg_release(s, h->c);
  free(h);
}
