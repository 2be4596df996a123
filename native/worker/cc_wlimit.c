/* cc_wlimit: token buckets and in-flight counters per user (see cc_wlimit.h). */
#include "cc_wlimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 256
#define MAX_USERS 100000

struct user {
  struct user *next;
  double tokens;
  int64_t last_ms;
  long inflight;
  char name[];
};

struct cc_wlimit {
  pthread_mutex_t mu;
  long per_s, burst, max_inflight;
  long nusers;
  struct user *buckets[NBUCKETS];
};

cc_status cc_wlimit_new(long per_s, long burst, long max_inflight, cc_wlimit **out) {
  cc_wlimit *l = calloc(1, sizeof *l);
  if (!l) return CC_INTERNAL;
  pthread_mutex_init(&l->mu, NULL);
  l->per_s = per_s;
  l->burst = burst > 0 ? burst : (per_s > 0 ? per_s : 1);
  l->max_inflight = max_inflight;
  *out = l;
  return CC_OK;
}

void cc_wlimit_free(cc_wlimit *l) {
  if (!l) return;
  for (int i = 0; i < NBUCKETS; i++)
    for (struct user *u = l->buckets[i], *n; u; u = n) {
      n = u->next;
      free(u);
    }
  pthread_mutex_destroy(&l->mu);
  free(l);
}

static unsigned hash(const char *s) {
  unsigned h = 2166136261u;
  while (*s) h = (h ^ (unsigned char)*s++) * 16777619u;
  return h % NBUCKETS;
}

/* Finds or adds `name`; NULL when the table is full or memory is out.  Caller holds mu. */
static struct user *find(cc_wlimit *l, const char *name, int64_t now_ms) {
  unsigned h = hash(name);
  for (struct user *u = l->buckets[h]; u; u = u->next)
    if (strcmp(u->name, name) == 0) return u;
  if (l->nusers >= MAX_USERS) return NULL;
  size_t n = strlen(name) + 1;
  struct user *u = calloc(1, sizeof *u + n);
  if (!u) return NULL;
  memcpy(u->name, name, n);
  u->tokens = (double)l->burst;
  u->last_ms = now_ms;
  u->next = l->buckets[h];
  l->buckets[h] = u;
  l->nusers++;
  return u;
}

cc_status cc_wlimit_request(cc_wlimit *l, const char *user, int64_t now_ms) {
  if (l->per_s <= 0) return CC_OK;
  cc_status st = CC_OK;
  pthread_mutex_lock(&l->mu);
  struct user *u = find(l, user, now_ms);
  if (u) {
    if (now_ms > u->last_ms) {
      u->tokens += (double)(now_ms - u->last_ms) * (double)l->per_s / 1000.0;
      if (u->tokens > (double)l->burst) u->tokens = (double)l->burst;
      u->last_ms = now_ms;
    }
    if (u->tokens >= 1.0)
      u->tokens -= 1.0;
    else
      st = CC_RATE_LIMITED;
  }
  pthread_mutex_unlock(&l->mu);
  return st;
}

cc_status cc_wlimit_enter(cc_wlimit *l, const char *user) {
  if (l->max_inflight <= 0) return CC_OK;
  cc_status st = CC_OK;
  pthread_mutex_lock(&l->mu);
  struct user *u = find(l, user, 0);
  if (u) {
    if (u->inflight >= l->max_inflight)
      st = CC_CONFLICT;
    else
      u->inflight++;
  }
  pthread_mutex_unlock(&l->mu);
  return st;
}

void cc_wlimit_leave(cc_wlimit *l, const char *user) {
  if (l->max_inflight <= 0) return;
  pthread_mutex_lock(&l->mu);
  struct user *u = find(l, user, 0);
  if (u && u->inflight > 0) u->inflight--;
  pthread_mutex_unlock(&l->mu);
}
