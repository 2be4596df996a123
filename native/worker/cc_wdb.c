/* cc_wdb: the worker's watch over a shared database: sweep and health (see cc_wdb.h). */
#include "cc_wdb.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct cc_wdb {
  cc_store *store;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stop, wake;
  bool healthy;
  char why[256];
};

static void *watch_main(void *arg) {
  cc_wdb *d = arg;
  pthread_mutex_lock(&d->mu);
  while (!d->stop) {
    pthread_mutex_unlock(&d->mu);
    int64_t swept = 0;
    cc_status st = cc_store_sweep(d->store, &swept);
    char why[256] = "";
    if (st != CC_OK) cc_store_last_error(d->store, why, sizeof why);
    if (swept > 0)
      fprintf(stderr,
              "codecanvas-worker: %lld record(s) of a worker that is gone marked error/internal\n",
              (long long)swept);
    pthread_mutex_lock(&d->mu);
    bool was = d->healthy;
    d->healthy = st == CC_OK;
    snprintf(d->why, sizeof d->why, "%s", why);
    if (was != d->healthy)
      fprintf(stderr, "codecanvas-worker: database %s%s%s\n",
              d->healthy ? "reachable again" : "unreachable", d->healthy ? "" : ": ", why);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += CC_WDB_PERIOD_MS / 1000;
    while (!d->stop && !d->wake &&
           pthread_cond_timedwait(&d->cv, &d->mu, &until) != ETIMEDOUT) {
    }
    d->wake = false;
  }
  pthread_mutex_unlock(&d->mu);
  return NULL;
}

cc_status cc_wdb_start(cc_store *store, cc_wdb **out) {
  *out = NULL;
  if (!store->ops->sweep) return CC_OK;
  cc_wdb *d = calloc(1, sizeof *d);
  if (!d) return CC_INTERNAL;
  d->store = store;
  d->healthy = true;
  pthread_mutex_init(&d->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_cond_init(&d->cv, &ca);
  pthread_condattr_destroy(&ca);
  if (pthread_create(&d->thread, NULL, watch_main, d) != 0) {
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d);
    return CC_INTERNAL;
  }
  *out = d;
  return CC_OK;
}

void cc_wdb_stop(cc_wdb *d) {
  if (!d) return;
  pthread_mutex_lock(&d->mu);
  d->stop = true;
  pthread_cond_signal(&d->cv);
  pthread_mutex_unlock(&d->mu);
  pthread_join(d->thread, NULL);
  pthread_mutex_destroy(&d->mu);
  pthread_cond_destroy(&d->cv);
  free(d);
}

bool cc_wdb_healthy(cc_wdb *d, char *buf, size_t len) {
  if (len) buf[0] = 0;
  if (!d) return true;
  pthread_mutex_lock(&d->mu);
  bool ok = d->healthy;
  if (!ok && len) snprintf(buf, len, "%s", d->why);
  pthread_mutex_unlock(&d->mu);
  return ok;
}

void cc_wdb_report_down(cc_wdb *d, const char *why) {
  if (!d) return;
  pthread_mutex_lock(&d->mu);
  if (d->healthy) fprintf(stderr, "codecanvas-worker: database unreachable: %s\n", why ? why : "");
  d->healthy = false;
  snprintf(d->why, sizeof d->why, "%s", why ? why : "");
  d->wake = true;
  pthread_cond_signal(&d->cv);
  pthread_mutex_unlock(&d->mu);
}
