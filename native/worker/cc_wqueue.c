/* cc_wqueue: one FIFO of waiters per project behind one mutex (see cc_wqueue.h). */
#include "cc_wqueue.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cc_wtime.h"

#define NBUCKETS 1024

struct node {
  struct node *next;
  pthread_cond_t cond;
  bool passive; /* entered with cc_wqueue_enter_passive */
};

struct entry {
  struct entry *next; /* hash chain */
  struct node *head, *tail;
  size_t active; /* nodes that are not passive */
  size_t keylen;
  char key[]; /* owner \0 project */
};

struct cc_wqueue {
  pthread_mutex_t mu;
  struct entry *buckets[NBUCKETS];
};

cc_status cc_wqueue_new(cc_wqueue **out) {
  cc_wqueue *q = calloc(1, sizeof *q);
  if (!q) return CC_INTERNAL;
  pthread_mutex_init(&q->mu, NULL);
  *out = q;
  return CC_OK;
}

void cc_wqueue_free(cc_wqueue *q) {
  if (!q) return;
  for (int i = 0; i < NBUCKETS; i++)
    for (struct entry *e = q->buckets[i], *n; e; e = n) {
      n = e->next;
      free(e);
    }
  pthread_mutex_destroy(&q->mu);
  free(q);
}

static unsigned hash(const char *k, size_t n) {
  unsigned h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)k[i]) * 16777619u;
  return h % NBUCKETS;
}

/* Removes `e` from its chain and frees it.  Caller holds mu; e has no nodes. */
static void drop_entry(cc_wqueue *q, struct entry *e) {
  unsigned h = hash(e->key, e->keylen);
  for (struct entry **pp = &q->buckets[h]; *pp; pp = &(*pp)->next)
    if (*pp == e) {
      *pp = e->next;
      break;
    }
  free(e);
}

static cc_status enter(cc_wqueue *q, const char *owner, const char *project, atomic_int *cancel,
                       bool passive, cc_wqueue_ticket *t) {
  size_t lo = strlen(owner), lp = strlen(project), n = lo + 1 + lp;
  struct node *me = calloc(1, sizeof *me);
  if (!me) return CC_INTERNAL;
  me->passive = passive;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&me->cond, &ca);
  pthread_condattr_destroy(&ca);

  pthread_mutex_lock(&q->mu);
  char key[n];
  memcpy(key, owner, lo);
  key[lo] = 0;
  memcpy(key + lo + 1, project, lp);
  unsigned h = hash(key, n);
  struct entry *e = q->buckets[h];
  while (e && !(e->keylen == n && memcmp(e->key, key, n) == 0)) e = e->next;
  if (!e) {
    e = calloc(1, sizeof *e + n);
    if (!e) {
      pthread_mutex_unlock(&q->mu);
      pthread_cond_destroy(&me->cond);
      free(me);
      return CC_INTERNAL;
    }
    memcpy(e->key, key, n);
    e->keylen = n;
    e->next = q->buckets[h];
    q->buckets[h] = e;
  }
  if (e->tail)
    e->tail->next = me;
  else
    e->head = me;
  e->tail = me;
  if (!passive) e->active++;

  cc_status st = CC_OK;
  while (e->head != me) {
    if (cancel && atomic_load(cancel)) {
      st = CC_SANDBOX_UNAVAILABLE;
      break;
    }
    struct timespec ts;
    cc_wtime_deadline(&ts, CLOCK_MONOTONIC, 100);
    pthread_cond_timedwait(&me->cond, &q->mu, &ts);
  }
  if (st != CC_OK) { /* unlink me (not the head) */
    struct node *prev = e->head;
    while (prev->next != me) prev = prev->next;
    prev->next = me->next;
    if (e->tail == me) e->tail = prev;
    if (!passive) e->active--;
    pthread_mutex_unlock(&q->mu);
    pthread_cond_destroy(&me->cond);
    free(me);
    return st;
  }
  pthread_mutex_unlock(&q->mu);
  t->entry_ = e;
  t->node_ = me;
  return CC_OK;
}

cc_status cc_wqueue_enter(cc_wqueue *q, const char *owner, const char *project, atomic_int *cancel,
                          cc_wqueue_ticket *t) {
  return enter(q, owner, project, cancel, false, t);
}

cc_status cc_wqueue_enter_passive(cc_wqueue *q, const char *owner, const char *project,
                                  atomic_int *cancel, cc_wqueue_ticket *t) {
  return enter(q, owner, project, cancel, true, t);
}

void cc_wqueue_leave(cc_wqueue *q, cc_wqueue_ticket *t) {
  struct entry *e = t->entry_;
  struct node *me = t->node_;
  if (!e || !me) return;
  pthread_mutex_lock(&q->mu);
  if (!me->passive) e->active--;
  e->head = me->next;
  if (!e->head) {
    e->tail = NULL;
    drop_entry(q, e);
  } else {
    pthread_cond_signal(&e->head->cond);
  }
  pthread_mutex_unlock(&q->mu);
  pthread_cond_destroy(&me->cond);
  free(me);
  t->entry_ = t->node_ = NULL;
}

bool cc_wqueue_idle(cc_wqueue *q, const char *owner, const char *project) {
  size_t lo = strlen(owner), lp = strlen(project), n = lo + 1 + lp;
  char key[n];
  memcpy(key, owner, lo);
  key[lo] = 0;
  memcpy(key + lo + 1, project, lp);
  unsigned h = hash(key, n);
  pthread_mutex_lock(&q->mu);
  struct entry *e = q->buckets[h];
  while (e && !(e->keylen == n && memcmp(e->key, key, n) == 0)) e = e->next;
  bool idle = e == NULL || e->active == 0;
  pthread_mutex_unlock(&q->mu);
  return idle;
}
