/*
 * cc_wpool: the threads that run the worker's slow requests.
 *
 * The HTTP front answers what it can without blocking on its few event-loop threads (a health
 * check, a cached exec remembered in memory) and hands everything else (a store read, a
 * sandbox call that may run for minutes) to this pool.  A task is never queued behind
 * another: it goes to an idle thread or to a new one, since a task may block for as long as
 * its command runs and must not hold up the next.  Idle threads wait IDLE_SECONDS for work
 * and then end, so the pool grows with the peak of concurrent slow requests and shrinks after.
 *
 * Threads are joinable: one that ends puts itself on the `ended` list, which the next
 * submission (and cc_wpool_free) joins, so that no thread outlives the pool.
 */
#define _GNU_SOURCE
#include "cc_wpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#define IDLE_SECONDS 30

struct task {
  void (*fn)(void *);
  void *arg;
  struct task *next;
};

struct ended { /* a thread's own entry, made before it starts */
  pthread_t th;
  struct cc_wpool *pool;
  struct ended *next;
};

struct cc_wpool {
  pthread_mutex_t mu;
  pthread_cond_t work;  /* a task was queued, or stop */
  pthread_cond_t empty; /* the last thread ended */
  struct task *head, *tail;
  size_t queued;  /* tasks in the list */
  size_t idle;    /* threads waiting for work */
  size_t threads; /* threads alive */
  struct ended *ended;
  bool stop;
};

static void join_ended(cc_wpool *p) {
  struct ended *e = p->ended;
  p->ended = NULL;
  pthread_mutex_unlock(&p->mu);
  while (e) {
    struct ended *n = e->next;
    pthread_join(e->th, NULL);
    free(e);
    e = n;
  }
  pthread_mutex_lock(&p->mu);
}

static void *pool_main(void *arg) {
  struct ended *me = arg;
  cc_wpool *p = me->pool;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->head && !p->stop) {
      struct timespec until;
      clock_gettime(CLOCK_REALTIME, &until);
      until.tv_sec += IDLE_SECONDS;
      p->idle++;
      int rc = pthread_cond_timedwait(&p->work, &p->mu, &until);
      p->idle--;
      if (rc == ETIMEDOUT && !p->head) goto out;
    }
    if (!p->head) break; /* stop, and nothing left to run */
    struct task *t = p->head;
    p->head = t->next;
    if (!p->head) p->tail = NULL;
    p->queued--;
    pthread_mutex_unlock(&p->mu);
    t->fn(t->arg);
    free(t);
    pthread_mutex_lock(&p->mu);
  }
out:
  me->th = pthread_self();
  me->next = p->ended;
  p->ended = me;
  if (--p->threads == 0) pthread_cond_broadcast(&p->empty);
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

cc_wpool *cc_wpool_new(void) {
  cc_wpool *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->work, NULL);
  pthread_cond_init(&p->empty, NULL);
  return p;
}

bool cc_wpool_run(cc_wpool *p, void (*fn)(void *), void *arg) {
  struct task *t = malloc(sizeof *t);
  if (!t) return false;
  *t = (struct task){.fn = fn, .arg = arg};
  pthread_mutex_lock(&p->mu);
  if (p->ended) join_ended(p);
  if (p->stop) {
    pthread_mutex_unlock(&p->mu);
    free(t);
    return false;
  }
  if (p->idle <= p->queued) { /* every idle thread already has a task coming: start one */
    struct ended *e = malloc(sizeof *e);
    if (e) *e = (struct ended){.pool = p};
    if (!e || pthread_create(&e->th, NULL, pool_main, e) != 0) {
      free(e); /* queued now, it could wait behind a long task: refuse it instead */
      pthread_mutex_unlock(&p->mu);
      free(t);
      return false;
    }
    p->threads++;
  }
  if (p->tail)
    p->tail->next = t;
  else
    p->head = t;
  p->tail = t;
  p->queued++;
  pthread_cond_signal(&p->work);
  pthread_mutex_unlock(&p->mu);
  return true;
}

void cc_wpool_free(cc_wpool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->stop = true;
  pthread_cond_broadcast(&p->work);
  while (p->threads > 0) pthread_cond_wait(&p->empty, &p->mu);
  join_ended(p);
  pthread_mutex_unlock(&p->mu);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->work);
  pthread_cond_destroy(&p->empty);
  free(p);
}
