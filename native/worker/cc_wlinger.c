/*
 * cc_wlinger: lingering close, as nginx does it.
 *
 * The answer (a 413, or a 503 while shutting down) was sent before the request body was
 * read, and the connection is being closed.  Closing a socket that still has unread data makes
 * the kernel send a reset, and a reset that reaches the client while it is still sending
 * throws away the answer waiting in its receive buffer (Node's fetch then fails with EPIPE
 * instead of reading the 413).  So: send FIN after the answer, then read and drop whatever
 * arrives until the client closes its side, for at most body_linger_ms and body_linger_bytes.
 * A client that reads the answer stops sending within a round trip; one that never stops is
 * cut off at either bound.
 *
 * The HTTP front's threads run an event loop and must not wait, so the connection's socket is
 * duplicated when libmicrohttpd finishes with it (its own close then leaves the socket open)
 * and handed to this file's one thread, which polls every lingering socket with its deadline.
 * At most MAX_LINGER at once: past that a socket is closed at once (the bound on what slow
 * senders can hold).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cc_wfront.h"

#define MAX_LINGER 256

struct lsock {
  int fd;
  int64_t until_us;
  unsigned long long left; /* bytes still to drop */
};

struct cc_wlinger {
  long ms, bytes;
  pthread_mutex_t mu;
  struct lsock socks[MAX_LINGER];
  int n;
  int wake; /* eventfd: a socket was added, or stop */
  bool stop;
  pthread_t th;
  bool started;
};

/* Drops what is readable on one socket; false when it is done (closed, broken, bound hit). */
static bool drain(struct lsock *s) {
  for (;;) {
    if (s->left == 0) return false;
    /* MSG_TRUNC on TCP drops the bytes in the kernel without copying them out. */
    size_t want = s->left < (1u << 20) ? (size_t)s->left : (1u << 20);
    ssize_t k = recv(s->fd, NULL, want, MSG_TRUNC | MSG_DONTWAIT);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (k <= 0) return false; /* the client closed (it read the answer), or it broke */
    s->left -= (unsigned long long)k < s->left ? (unsigned long long)k : s->left;
  }
}

static void *linger_main(void *arg) {
  struct cc_wlinger *l = arg;
  struct pollfd pf[MAX_LINGER + 1];
  for (;;) {
    pthread_mutex_lock(&l->mu);
    if (l->stop) {
      for (int i = 0; i < l->n; i++) close(l->socks[i].fd);
      l->n = 0;
      pthread_mutex_unlock(&l->mu);
      return NULL;
    }
    int64_t now = cc_wfront_mono_us(), next = now + 60 * 1000000LL;
    for (int i = 0; i < l->n;) { /* past their deadline: cut off */
      if (l->socks[i].until_us <= now) {
        close(l->socks[i].fd);
        l->socks[i] = l->socks[--l->n];
        continue;
      }
      if (l->socks[i].until_us < next) next = l->socks[i].until_us;
      pf[i] = (struct pollfd){.fd = l->socks[i].fd, .events = POLLIN};
      i++;
    }
    int n = l->n;
    pf[n] = (struct pollfd){.fd = l->wake, .events = POLLIN};
    pthread_mutex_unlock(&l->mu);

    int rc = poll(pf, (nfds_t)n + 1, (int)((next - now + 999) / 1000));
    if (rc < 0 && errno != EINTR) continue;
    if (pf[n].revents & POLLIN) {
      uint64_t v;
      ssize_t k = read(l->wake, &v, sizeof v);
      (void)k;
    }
    /* Only this thread removes sockets, and additions go to the end: the first n entries
     * are still the ones polled. */
    pthread_mutex_lock(&l->mu);
    for (int i = n - 1; i >= 0; i--) {
      if (!pf[i].revents) continue;
      if (!drain(&l->socks[i])) {
        close(l->socks[i].fd);
        l->socks[i] = l->socks[--l->n];
        /* the entry moved into i came from the end: polled entries above i were handled */
      }
    }
    pthread_mutex_unlock(&l->mu);
  }
}

struct cc_wlinger *cc_wlinger_new(long ms, long bytes) {
  struct cc_wlinger *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  l->ms = ms;
  l->bytes = bytes;
  pthread_mutex_init(&l->mu, NULL);
  l->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (l->wake < 0 || pthread_create(&l->th, NULL, linger_main, l) != 0) {
    cc_wlinger_free(l);
    return NULL;
  }
  l->started = true;
  return l;
}

void cc_wlinger_add(struct cc_wlinger *l, int fd) {
  if (!l || l->ms <= 0 || l->bytes <= 0) {
    close(fd);
    return;
  }
  shutdown(fd, SHUT_WR); /* the answer is complete: FIN after it */
  pthread_mutex_lock(&l->mu);
  if (l->stop || l->n == MAX_LINGER) {
    pthread_mutex_unlock(&l->mu);
    close(fd);
    return;
  }
  l->socks[l->n++] = (struct lsock){.fd = fd,
                                    .until_us = cc_wfront_mono_us() + l->ms * 1000,
                                    .left = (unsigned long long)l->bytes};
  pthread_mutex_unlock(&l->mu);
  uint64_t one = 1;
  ssize_t k = write(l->wake, &one, sizeof one);
  (void)k;
}

void cc_wlinger_free(struct cc_wlinger *l) {
  if (!l) return;
  if (l->started) {
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_mutex_unlock(&l->mu);
    uint64_t one = 1;
    ssize_t k = write(l->wake, &one, sizeof one);
    (void)k;
    pthread_join(l->th, NULL);
  }
  if (l->wake >= 0) close(l->wake);
  pthread_mutex_destroy(&l->mu);
  free(l);
}
