/*
 * cc_sbx_dproxy: domain egress rules of a sandbox, enforced by a transparent proxy of ours.
 *
 * With allowed domains, the sandbox's nftables table (cc_sbx_egress.c) redirects every IPv4
 * TCP connection to port 80 or 443 whose destination is not allowed by address to
 * 127.0.0.1:CC_SBX_DPROXY_PORT inside the sandbox's network namespace, where this proxy
 * listens (the socket lives in that namespace; the threads are sandboxd's, in no namespace of
 * the sandbox, so nothing inside can stop or trace them).  For each connection it reads the
 * first bytes: port 443, the TLS ClientHello's server name; port 80, the HTTP Host header
 * (cc_sbx_sni.c), within HEAD_TIMEOUT_MS.  A name among the allowed domains is connected to
 * its original destination (SO_ORIGINAL_DST), from the host's network as slirp4netns would,
 * and the bytes relayed both ways; anything else is closed.  As in E2B, the client has seen
 * its connection accepted before it is closed, and the name is what the client says: the
 * rules choose which names a well-behaved client reaches, they do not authenticate servers.
 *
 * Never connected to: loopback, 0.0.0.0/8, slirp4netns's own 10.0.2.0/24 (10.0.2.2 is the
 * host there, which sandboxes are not given), multicast and broadcast addresses.
 *
 * Lifetime: a reference per thread plus the owner's; cc_sbx_dproxy_stop closes the write end
 * of a pipe every thread polls (the accept thread and each relay), so they all end at once;
 * the last one out frees.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cc_sbx_int.h"

#define HEAD_TIMEOUT_MS 10000    /* for the name to arrive */
#define CONNECT_TIMEOUT_MS 10000 /* for the destination to answer */
#define MAX_CONNS 256            /* relayed at once per sandbox; more are closed */
#define HEAD_BUF (CC_SBX_HEAD_MAX + 2048) /* room for a ClientHello split over records */
#define BUF HEAD_BUF /* a direction's buffer: first it holds what was read for the name */

struct cc_sbx_dproxy {
  pthread_mutex_t mu;
  char **domains;
  size_t n;
  int lfd;            /* listening, in the sandbox's network namespace */
  int stop_r, stop_w; /* stop_w closed: every thread's poll on stop_r wakes */
  atomic_int refs;
  atomic_int conns;
};

static void unref(cc_sbx_dproxy *p) {
  if (atomic_fetch_sub(&p->refs, 1) != 1) return;
  if (p->lfd >= 0) close(p->lfd);
  if (p->stop_r >= 0) close(p->stop_r);
  for (size_t i = 0; i < p->n; i++) free(p->domains[i]);
  free(p->domains);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Polls fd for events and the stop pipe until deadline (-1: none); true when fd is ready. */
static bool wait_fd(cc_sbx_dproxy *p, int fd, short events, int64_t deadline) {
  for (;;) {
    int left = deadline < 0 ? -1 : (int)(deadline - now_ms());
    if (deadline >= 0 && left <= 0) return false;
    struct pollfd f[2] = {{.fd = fd, .events = events}, {.fd = p->stop_r, .events = POLLIN}};
    int r = poll(f, 2, left);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0 || f[1].revents) return false;
    if (f[0].revents) return true;
  }
}

/* Whether an original destination may be connected to (see the opening comment). */
static bool reachable(const struct sockaddr_in *a) {
  uint32_t ip = ntohl(a->sin_addr.s_addr);
  if ((ip >> 24) == 127 || (ip >> 24) == 0) return false;
  if ((ip & 0xffffff00u) == 0x0a000200u) return false; /* 10.0.2.0/24 */
  if ((ip >> 28) >= 0xe) return false;                   /* multicast, reserved, broadcast */
  return ntohs(a->sin_port) == 80 || ntohs(a->sin_port) == 443;
}

typedef struct {
  uint8_t b[BUF];
  size_t off, len;
  bool eof, shut;
} pipebuf;

/* Relays both ways until both sides are done, an error, or stop. */
static void relay(cc_sbx_dproxy *p, int c, int u, pipebuf *c2u, pipebuf *u2c) {
  int fds[2] = {c, u};
  pipebuf *in[2] = {c2u, u2c}; /* what fds[i] reads into */
  for (;;) {
    struct pollfd f[3];
    for (int i = 0; i < 2; i++) {
      f[i].fd = fds[i];
      f[i].events = (short)((!in[i]->eof && in[i]->len == 0 ? POLLIN : 0) |
                            (in[1 - i]->len ? POLLOUT : 0));
      f[i].revents = 0;
    }
    f[2] = (struct pollfd){.fd = p->stop_r, .events = POLLIN};
    int r = poll(f, 3, -1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 || f[2].revents) return;
    for (int i = 0; i < 2; i++) {
      if (f[i].revents & POLLERR) return;
      if ((f[i].revents & POLLHUP) && !(f[i].events & POLLIN) && !(f[i].revents & POLLOUT))
        return; /* gone both ways while we could not read: nothing more can move */
      if (f[i].revents & POLLIN) {
        ssize_t k = read(fds[i], in[i]->b, BUF);
        if (k < 0 && errno != EAGAIN && errno != EINTR) return;
        if (k == 0) in[i]->eof = true;
        if (k > 0) in[i]->off = 0, in[i]->len = (size_t)k;
      }
      pipebuf *out = in[1 - i];
      if ((f[i].revents & POLLOUT) && out->len) {
        ssize_t k = send(fds[i], out->b + out->off, out->len, MSG_NOSIGNAL);
        if (k < 0 && errno != EAGAIN && errno != EINTR) return;
        if (k > 0) out->off += (size_t)k, out->len -= (size_t)k;
      }
    }
    for (int i = 0; i < 2; i++) /* a side that ended and was written out: pass the FIN on */
      if (in[i]->eof && !in[i]->len && !in[i]->shut) {
        shutdown(fds[1 - i], SHUT_WR);
        in[i]->shut = true;
      }
    if (c2u->shut && u2c->shut) return;
  }
}

typedef struct {
  cc_sbx_dproxy *p;
  int fd;
} conn_job;

/* The name the connection asks for, checked; then the destination, connected; then relay. */
static void serve(cc_sbx_dproxy *p, int c) {
  struct sockaddr_in dst;
  socklen_t dl = sizeof dst;
  if (getsockopt(c, SOL_IP, SO_ORIGINAL_DST, &dst, &dl) != 0 || dst.sin_family != AF_INET ||
      !reachable(&dst))
    return;
  bool tls = ntohs(dst.sin_port) == 443;
  pipebuf *c2u = malloc(sizeof *c2u), *u2c = calloc(1, sizeof *u2c);
  uint8_t *head = malloc(HEAD_BUF);
  int u = -1;
  if (!c2u || !u2c || !head) goto out;
  size_t len = 0;
  char name[CC_SBX_NAME_MAX + 1];
  cc_sbx_name_result res = CC_SBX_NAME_MORE;
  int64_t deadline = now_ms() + HEAD_TIMEOUT_MS;
  while (res == CC_SBX_NAME_MORE && len < HEAD_BUF) {
    if (!wait_fd(p, c, POLLIN, deadline)) goto out;
    ssize_t k = read(c, head + len, HEAD_BUF - len);
    if (k < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (k <= 0) goto out;
    len += (size_t)k;
    res = tls ? cc_sbx_tls_sni(head, len, name) : cc_sbx_http_host(head, len, name);
  }
  if (res != CC_SBX_NAME_FOUND) goto out;
  pthread_mutex_lock(&p->mu);
  bool allowed = cc_sbx_domain_match(name, p->domains, p->n);
  pthread_mutex_unlock(&p->mu);
  if (!allowed) goto out;
  u = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (u < 0) goto out;
  if (connect(u, (struct sockaddr *)&dst, sizeof dst) != 0 && errno != EINPROGRESS) goto out;
  int soerr = 0;
  socklen_t sl = sizeof soerr;
  if (!wait_fd(p, u, POLLOUT, now_ms() + CONNECT_TIMEOUT_MS) ||
      getsockopt(u, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0)
    goto out;
  /* what the client sent so far goes first (len <= HEAD_BUF == sizeof c2u->b) */
  _Static_assert(sizeof c2u->b >= HEAD_BUF, "the head fits the buffer");
  memcpy(c2u->b, head, len);
  c2u->off = 0;
  c2u->len = len;
  c2u->eof = c2u->shut = false;
  free(head);
  head = NULL;
  relay(p, c, u, c2u, u2c);
out:
  if (u >= 0) close(u);
  free(head);
  free(c2u);
  free(u2c);
}

static void *conn_main(void *arg) {
  conn_job *j = arg;
  serve(j->p, j->fd);
  close(j->fd);
  atomic_fetch_sub(&j->p->conns, 1);
  unref(j->p);
  free(j);
  return NULL;
}

static void *accept_main(void *arg) {
  cc_sbx_dproxy *p = arg;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 128 * 1024);
  while (wait_fd(p, p->lfd, POLLIN, -1)) {
    int c = accept4(p->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) continue;
    conn_job *j = atomic_load(&p->conns) < MAX_CONNS ? malloc(sizeof *j) : NULL;
    if (!j) {
      close(c);
      continue;
    }
    *j = (conn_job){.p = p, .fd = c};
    atomic_fetch_add(&p->conns, 1);
    atomic_fetch_add(&p->refs, 1);
    pthread_t t;
    if (pthread_create(&t, &attr, conn_main, j) != 0) {
      atomic_fetch_sub(&p->conns, 1);
      atomic_fetch_sub(&p->refs, 1);
      close(c);
      free(j);
    }
  }
  pthread_attr_destroy(&attr);
  unref(p);
  return NULL;
}

typedef struct {
  int netns, fd;
  char why[200];
} listen_job;

/* A thread that joins only the sandbox's network namespace makes the listening socket there
 * (a socket stays in the namespace it was made in), then ends. */
static void *listen_main(void *arg) {
  listen_job *j = arg;
  if (setns(j->netns, CLONE_NEWNET) != 0) {
    snprintf(j->why, sizeof j->why, "cannot enter the sandbox's network namespace: %s",
             strerror(errno));
    return NULL;
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(CC_SBX_DPROXY_PORT),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 128) != 0) {
    snprintf(j->why, sizeof j->why, "cannot listen on 127.0.0.1:%d in the sandbox: %s",
             CC_SBX_DPROXY_PORT, strerror(errno));
    if (fd >= 0) close(fd);
    return NULL;
  }
  j->fd = fd;
  return NULL;
}

bool cc_sbx_dproxy_start(int netns, cc_sbx_dproxy **out, char *why, size_t cap) {
  *out = NULL;
  listen_job j = {.netns = netns, .fd = -1};
  pthread_t t;
  int e = pthread_create(&t, NULL, listen_main, &j);
  if (e != 0) {
    snprintf(why, cap, "cannot start a thread: %s", strerror(e));
    return false;
  }
  pthread_join(t, NULL);
  if (j.fd < 0) {
    snprintf(why, cap, "%s", j.why);
    return false;
  }
  cc_sbx_dproxy *p = calloc(1, sizeof *p);
  int pf[2] = {-1, -1};
  if (!p || pipe2(pf, O_CLOEXEC) != 0) {
    snprintf(why, cap, "domain proxy: %s", strerror(errno));
    close(j.fd);
    free(p);
    return false;
  }
  pthread_mutex_init(&p->mu, NULL);
  p->lfd = j.fd;
  p->stop_r = pf[0];
  p->stop_w = pf[1];
  atomic_init(&p->refs, 2); /* the owner's and the accept thread's */
  atomic_init(&p->conns, 0);
  e = pthread_create(&t, NULL, accept_main, p);
  if (e != 0) {
    snprintf(why, cap, "cannot start a thread: %s", strerror(e));
    close(p->stop_w);
    atomic_store(&p->refs, 1);
    unref(p);
    return false;
  }
  pthread_detach(t);
  *out = p;
  return true;
}

bool cc_sbx_dproxy_set_domains(cc_sbx_dproxy *p, const char *const *domains, size_t n) {
  char **v = calloc(n + 1, sizeof *v);
  for (size_t i = 0; v && i < n; i++)
    if (!(v[i] = strdup(domains[i]))) {
      for (size_t k = 0; k < i; k++) free(v[k]);
      free(v);
      v = NULL;
    }
  if (!v) return false;
  pthread_mutex_lock(&p->mu);
  char **old = p->domains;
  size_t old_n = p->n;
  p->domains = v;
  p->n = n;
  pthread_mutex_unlock(&p->mu);
  for (size_t i = 0; i < old_n; i++) free(old[i]);
  free(old);
  return true;
}

void cc_sbx_dproxy_stop(cc_sbx_dproxy *p) {
  if (!p) return;
  close(p->stop_w); /* every poll on stop_r now sees POLLHUP */
  unref(p);
}
