/* cc_wsync: a shared PostgreSQL database's change feed as the memo's epoch (see cc_wsync.h). */
#include "cc_wsync.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cc_wtime.h"

#define IDLE_DRAIN_MS 100

struct cc_wsync {
  char *uri;
  PGconn *c; /* the listening connection: only the feed's thread uses it after start */
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t wake, done;
  bool stop;
  bool up;            /* the connection listens */
  uint64_t epoch;     /* moves on every batch of notifications and on every reconnect */
  uint64_t requested; /* barrier calls so far */
  uint64_t completed; /* barrier calls answered (every call numbered <= completed) */
  struct waiter {     /* cc_wsync_ready's callers waiting for their ticket */
    uint64_t ticket;
    void (*wake)(void *);
    void *arg;
  } *waiters;
  size_t n_waiters, cap_waiters;
};

/* Connects and LISTENs.  Called without mu. */
static PGconn *listen_conn(const char *uri) {
  const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
  const char *vals[] = {uri, "3", "codecanvas-worker change feed", NULL};
  PGconn *c = PQconnectdbParams(keys, vals, 1);
  if (PQstatus(c) == CONNECTION_OK) {
    PGresult *r = PQexec(c, "LISTEN cc_change");
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (ok) return c;
  }
  PQfinish(c);
  return NULL;
}

/* Drains the notifications libpq has read; true when there were any. */
static bool drain(PGconn *c) {
  bool any = false;
  PGnotify *n;
  while ((n = PQnotifies(c))) {
    any = true;
    PQfreemem(n);
  }
  return any;
}

/* One round trip on the listening connection; false when the connection failed. */
static bool round_trip(PGconn *c, bool *changed) {
  if (!PQsendQuery(c, "SELECT 1")) return false;
  bool ok = false;
  for (;;) {
    if (!PQconsumeInput(c)) return false;
    if (drain(c)) *changed = true;
    if (PQisBusy(c)) {
      struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
      if (poll(&p, 1, 5000) <= 0) return false; /* a server that does not answer is down */
      continue;
    }
    PGresult *r = PQgetResult(c);
    if (!r) break;
    if (PQresultStatus(r) == PGRES_TUPLES_OK) ok = true;
    PQclear(r);
  }
  if (drain(c)) *changed = true; /* delivered before the answer */
  return ok && PQstatus(c) == CONNECTION_OK;
}

/* Calls the wake of every waiter whose ticket is answered, outside mu.  Called with mu held;
 * returns with it held. */
static void wake_answered(cc_wsync *s) {
  struct waiter ready[64];
  for (;;) {
    size_t n = 0;
    for (size_t i = 0; i < s->n_waiters && n < 64;) {
      if (s->waiters[i].ticket <= s->completed) {
        ready[n++] = s->waiters[i];
        s->waiters[i] = s->waiters[--s->n_waiters];
      } else {
        i++;
      }
    }
    if (n == 0) return;
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < n; i++) ready[i].wake(ready[i].arg);
    pthread_mutex_lock(&s->mu);
  }
}

static void *feed_main(void *arg) {
  cc_wsync *s = arg;
  pthread_mutex_lock(&s->mu);
  while (!s->stop) {
    /* Idle (no request waits): read what the server sent every IDLE_DRAIN_MS anyway.  A
     * listener that never reads would fill its socket, block its server process and hold back
     * the server's notification queue, which every other writer shares. */
    while (!s->stop && s->requested == s->completed) {
      struct timespec until;
      cc_wtime_deadline(&until, CLOCK_REALTIME, IDLE_DRAIN_MS);
      if (pthread_cond_timedwait(&s->wake, &s->mu, &until) == ETIMEDOUT && s->c) {
        bool any = PQconsumeInput(s->c) && drain(s->c);
        if (any) s->epoch++;
      }
    }
    if (s->stop) break;
    uint64_t target = s->requested; /* every call numbered up to here began before this trip */
    pthread_mutex_unlock(&s->mu);
    bool changed = false, ok = false, reconnected = false;
    if (!s->c) {
      s->c = listen_conn(s->uri);
      reconnected = s->c != NULL;
    }
    if (s->c) ok = round_trip(s->c, &changed);
    if (!ok && s->c) {
      PQfinish(s->c);
      s->c = NULL;
    }
    pthread_mutex_lock(&s->mu);
    if (changed || reconnected || (s->up && !ok)) s->epoch++;
    s->up = ok;
    s->completed = target;
    pthread_cond_broadcast(&s->done);
    wake_answered(s);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

uint64_t cc_wsync_request(cc_wsync *s) {
  pthread_mutex_lock(&s->mu);
  uint64_t mine = ++s->requested;
  pthread_cond_signal(&s->wake);
  pthread_mutex_unlock(&s->mu);
  return mine;
}

bool cc_wsync_ready(cc_wsync *s, uint64_t ticket, uint64_t *epoch, void (*wake)(void *),
                    void *arg) {
  pthread_mutex_lock(&s->mu);
  bool done = s->stop || s->completed >= ticket;
  if (done) {
    *epoch = s->up && !s->stop ? s->epoch : 0;
  } else if (!wake) { /* only asking */
    pthread_mutex_unlock(&s->mu);
    return false;
  } else if (s->n_waiters == s->cap_waiters) {
    size_t cap = s->cap_waiters ? 2 * s->cap_waiters : 64;
    struct waiter *w = realloc(s->waiters, cap * sizeof *w);
    if (w) {
      s->waiters = w;
      s->cap_waiters = cap;
    }
  }
  if (!done && s->n_waiters < s->cap_waiters)
    s->waiters[s->n_waiters++] = (struct waiter){.ticket = ticket, .wake = wake, .arg = arg};
  else if (!done) { /* out of memory: answer as a feed that is down (the memo is skipped) */
    *epoch = 0;
    done = true;
  }
  pthread_mutex_unlock(&s->mu);
  return done;
}

cc_status cc_wsync_start(const char *uri, cc_wsync **out) {
  *out = NULL;
  cc_wsync *s = calloc(1, sizeof *s);
  if (!s || !(s->uri = strdup(uri))) {
    free(s);
    return CC_INTERNAL;
  }
  if (!(s->c = listen_conn(uri))) {
    free(s->uri);
    free(s);
    return CC_UPSTREAM_ERROR;
  }
  s->up = true;
  s->epoch = 1;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->wake, NULL);
  pthread_cond_init(&s->done, NULL);
  if (pthread_create(&s->thread, NULL, feed_main, s) != 0) {
    PQfinish(s->c);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->done);
    free(s->uri);
    free(s);
    return CC_INTERNAL;
  }
  *out = s;
  return CC_OK;
}

/* At stop: whoever still waits is woken (cc_wsync_ready then answers "down"). */
static void wake_answered_all(cc_wsync *s) {
  pthread_mutex_lock(&s->mu);
  s->completed = UINT64_MAX;
  wake_answered(s);
  pthread_mutex_unlock(&s->mu);
  free(s->waiters);
}

void cc_wsync_stop(cc_wsync *s) {
  if (!s) return;
  pthread_mutex_lock(&s->mu);
  s->stop = true;
  pthread_cond_broadcast(&s->wake);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->thread, NULL);
  wake_answered_all(s);
  PQfinish(s->c);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->wake);
  pthread_cond_destroy(&s->done);
  free(s->uri);
  free(s);
}

uint64_t cc_wsync_epoch(void *arg) {
  cc_wsync *s = arg;
  if (!s) return 0;
  pthread_mutex_lock(&s->mu);
  uint64_t mine = ++s->requested;
  pthread_cond_signal(&s->wake);
  while (!s->stop && s->completed < mine) pthread_cond_wait(&s->done, &s->mu);
  uint64_t e = s->up && !s->stop ? s->epoch : 0;
  pthread_mutex_unlock(&s->mu);
  return e;
}
