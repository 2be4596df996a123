/*
 * cc_wmonitor: the worker's disconnect monitor.  Calls that may run long (an operation waiting
 * in its project's queue, a stream) register their connection's socket and a cancel flag
 * (cc_worker_watch); one thread polls every registered socket for a hang-up and sets the flag
 * of its call, so work for a client that has gone away is canceled.  Shutdown cancels all.
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include <poll.h>
#include <stdlib.h>
#include <time.h>

#include "cc_worker_internal.h"

void cc_worker_watch(cc_worker *w, struct cc_wwatch *wt, int fd, atomic_int *cancel) {
  wt->fd = fd;
  wt->cancel = cancel;
  wt->prev = NULL;
  pthread_mutex_lock(&w->watch_mu);
  wt->next = w->watches;
  if (w->watches) w->watches->prev = wt;
  w->watches = wt;
  if (atomic_load(&w->stopping) > 1) atomic_store(cancel, 1); /* already canceling */
  pthread_cond_signal(&w->watch_cond);
  pthread_mutex_unlock(&w->watch_mu);
}

void cc_worker_unwatch(cc_worker *w, struct cc_wwatch *wt) {
  pthread_mutex_lock(&w->watch_mu);
  if (wt->prev)
    wt->prev->next = wt->next;
  else if (w->watches == wt)
    w->watches = wt->next;
  if (wt->next) wt->next->prev = wt->prev;
  wt->next = wt->prev = NULL;
  pthread_mutex_unlock(&w->watch_mu);
}

/* Sets the cancel flag of every registered call (shutdown). */
void cc_worker_cancel_all(cc_worker *w) {
  pthread_mutex_lock(&w->watch_mu);
  for (struct cc_wwatch *wt = w->watches; wt; wt = wt->next) atomic_store(wt->cancel, 1);
  pthread_mutex_unlock(&w->watch_mu);
}

void *cc_wmonitor_main(void *arg) {
  cc_worker *w = arg;
  enum { MAXFD = 2048 };
  struct pollfd *pfd = calloc(MAXFD, sizeof *pfd);
  if (!pfd) return NULL;
  for (;;) {
    pthread_mutex_lock(&w->watch_mu);
    while (!w->watches && !w->monitor_stop) pthread_cond_wait(&w->watch_cond, &w->watch_mu);
    if (w->monitor_stop) {
      pthread_mutex_unlock(&w->watch_mu);
      break;
    }
    nfds_t n = 0;
    for (struct cc_wwatch *wt = w->watches; wt && n < MAXFD; wt = wt->next)
      if (wt->fd >= 0) {
        pfd[n].fd = wt->fd;
        pfd[n].events = POLLRDHUP;
        pfd[n].revents = 0;
        n++;
      }
    pthread_mutex_unlock(&w->watch_mu);
    if (n == 0 || poll(pfd, n, 100) <= 0) {
      if (n == 0) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
      }
      continue;
    }
    pthread_mutex_lock(&w->watch_mu);
    for (nfds_t i = 0; i < n; i++) {
      if (!(pfd[i].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))) continue;
      for (struct cc_wwatch *wt = w->watches; wt; wt = wt->next)
        if (wt->fd == pfd[i].fd) atomic_store(wt->cancel, 1);
    }
    pthread_mutex_unlock(&w->watch_mu);
    struct timespec ts = {0, 20 * 1000000L}; /* do not spin on a socket that stays hung up */
    nanosleep(&ts, NULL);
  }
  free(pfd);
  return NULL;
}
