/*
 * cc_sbx_io: the runtime's I/O thread, and requests to a sandbox's agent.
 *
 * One thread per runtime waits on one epoll set for its wake eventfd (launch queue, kicks,
 * stop), each sandbox's agent socket (HELLO, EXIT, REPLY), each bwrap pidfd (the sandbox is
 * down: teardown) and each process's output pipe or pty master.  It is the only thread that
 * reads those or changes the epoll set.  Output flows pipe → I/O thread → per-subscription
 * bounded queues → cc_sbx_sub_next; a full queue disarms the pipe until a reader makes room
 * (a kick), so the process blocks on write.  Caller threads send requests with
 * cc_sbx_agent_call and wait on the sandbox's condition variable until the I/O thread hands
 * them the reply.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cc_sbx_priv.h"

#define RETAIN_ENDED 64
#define RETAIN_MS 30000

/* ---- output queues and streams ------------------------------------------------------------ */

void cc_sbx_wake(cc_sbx_runtime *rt) {
  uint64_t one = 1;
  (void)!write(rt->wakefd, &one, sizeof one);
}

void cc_sbx_sub_push(cc_sbx_sub *s, chunk *c) {
  c->next = NULL;
  if (s->tail)
    s->tail->next = c;
  else
    s->head = c;
  s->tail = c;
  s->bytes += c->len;
  uint64_t one = 1;
  (void)!write(s->efd, &one, sizeof one);
}

chunk *cc_sbx_chunk_new(cc_sbx_event_type type, const void *data, size_t len, int wstatus) {
  chunk *c = malloc(sizeof *c + len);
  if (!c) return NULL;
  c->next = NULL;
  c->type = type;
  c->len = len;
  c->wstatus = wstatus;
  if (len) memcpy(c->data, data, len);
  return c;
}

static void push_all(proc *p, cc_sbx_event_type type, const void *data, size_t len, int ws) {
  for (cc_sbx_sub *s = p->subs; s; s = s->next) {
    if (s->end_queued) continue;
    chunk *c = cc_sbx_chunk_new(type, data, len, ws);
    if (!c) continue; /* out of memory: this subscriber loses the chunk */
    if (type == CC_SBX_EV_END) s->end_queued = true;
    cc_sbx_sub_push(s, c);
  }
}

static void proc_free(proc *p) {
  if (p->in_fd >= 0) close(p->in_fd);
  if (p->out.fd >= 0) close(p->out.fd);
  if (p->err.fd >= 0) close(p->err.fd);
  pthread_mutex_destroy(&p->stdin_lock);
  free(p->cmd), free(p->cwd), free(p->tag);
  for (size_t i = 0; i < p->n_args; i++) free(p->args[i]);
  free(p->args);
  for (size_t i = 0; i < p->n_envs; i++)
    free((char *)p->envs[i].name), free((char *)p->envs[i].value);
  free(p->envs);
  free(p);
}

/* Drops one reference; caller holds the sandbox lock. */
void cc_sbx_proc_unref(proc *p) {
  if (--p->refs == 0) proc_free(p);
}

/* Room for one more chunk in every subscription of p? */
bool cc_sbx_has_room(cc_sbx_runtime *rt, proc *p) {
  for (cc_sbx_sub *s = p->subs; s; s = s->next)
    if (s->bytes + CC_SBX_CHUNK_MAX > rt->cfg.sub_queue_bytes) return false;
  return true;
}

static void stream_close(cc_sbx_runtime *rt, stream *st) {
  if (st->fd < 0) return;
  if (st->armed) epoll_ctl(rt->epfd, EPOLL_CTL_DEL, st->fd, NULL);
  close(st->fd);
  st->fd = -1;
  st->armed = false;
}

static void stream_arm(cc_sbx_runtime *rt, stream *st, bool on) {
  if (st->fd < 0 || st->armed == on) return;
  if (on) {
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &st->t};
    if (epoll_ctl(rt->epfd, EPOLL_CTL_ADD, st->fd, &ev) == 0) st->armed = true;
  } else {
    epoll_ctl(rt->epfd, EPOLL_CTL_DEL, st->fd, NULL);
    st->armed = false;
  }
}

/* Emits END once both streams are closed after the exit (caller holds the sandbox lock). */
static void maybe_end(proc *p) {
  if (p->ended || !p->exited || p->out.fd >= 0 || p->err.fd >= 0) return;
  p->ended = true;
  p->ended_at = cc_sbx_now_ms();
  push_all(p, CC_SBX_EV_END, NULL, 0, p->wstatus);
}

/* Reads output of one stream (I/O thread only).  draining: the process has exited, so an
 * empty pipe means done.  Respects the subscription caps (back-pressure). */
static void pump(cc_sbx *sbx, stream *st, bool draining) {
  cc_sbx_runtime *rt = sbx->rt;
  static __thread uint8_t buf[CC_SBX_CHUNK_MAX];
  proc *p = st->p;
  for (int rounds = 0; st->fd >= 0; rounds++) {
    pthread_mutex_lock(&sbx->lock);
    bool room = cc_sbx_has_room(rt, p);
    if (!room) {
      p->throttled = true;
      stream_arm(rt, st, false);
    }
    pthread_mutex_unlock(&sbx->lock);
    if (!room) return;
    ssize_t n = read(st->fd, buf, sizeof buf);
    int e = n < 0 ? errno : 0;
    if (n < 0 && e == EINTR) continue;
    pthread_mutex_lock(&sbx->lock);
    if (n > 0) {
      if (p->subs)
        push_all(p,
                 st != &p->out ? CC_SBX_EV_STDERR
                 : p->pty      ? CC_SBX_EV_PTY
                               : CC_SBX_EV_STDOUT,
                 buf, (size_t)n, 0);
    } else if (n == 0 || e != EAGAIN || draining) {
      stream_close(rt, st); /* EOF, an error, or an empty pipe after the exit */
    }
    maybe_end(p);
    pthread_mutex_unlock(&sbx->lock);
    if (n <= 0 || (!draining && rounds >= 0)) return;
  }
}

/* ---- the I/O thread: agent messages ----------------------------------------------------- */

proc *cc_sbx_find_proc(cc_sbx *sbx, uint32_t pid, bool running_only) {
  for (proc *p = sbx->procs; p; p = p->next)
    if (p->registered && p->pid == pid && (!running_only || !p->exited)) return p;
  return NULL;
}

static void on_exit_msg(cc_sbx *sbx, uint32_t pid, int ws) {
  pthread_mutex_lock(&sbx->lock);
  proc *p = cc_sbx_find_proc(sbx, pid, true);
  if (p) {
    p->exited = true;
    p->wstatus = ws;
    p->refs++;
  }
  pthread_mutex_unlock(&sbx->lock);
  if (!p) return;
  pump(sbx, &p->out, true);
  pump(sbx, &p->err, true);
  pthread_mutex_lock(&sbx->lock);
  maybe_end(p);
  cc_sbx_proc_unref(p);
  pthread_mutex_unlock(&sbx->lock);
}

static void on_reply(cc_sbx *sbx, const cc_sbx_wire_hdr *h, const unsigned char *p, size_t len,
                     int fd) {
  cc_sbx_runtime *rt = sbx->rt;
  pthread_mutex_lock(&sbx->lock);
  pending *pd = sbx->pend;
  while (pd && pd->id != h->id) pd = pd->next;
  if (!pd || pd->done) {
    pthread_mutex_unlock(&sbx->lock);
    if (fd >= 0) close(fd);
    return;
  }
  pd->hdr = *h;
  pd->fd = fd;
  pd->payload = len ? malloc(len) : NULL;
  if (pd->payload) memcpy(pd->payload, p, len), pd->len = len;
  if (pd->spawn && pd->spawn->pty && h->err == 0 && h->a > 1) {
    /* The pty master becomes the process's output stream and input. */
    int e = fd < 0 ? EPROTO : cc_sbx_pty_adopt(fd, &pd->spawn->in_fd);
    if (e)
      pd->hdr.err = e, pd->hdr.b = CC_SBX_STAGE_PTY;
    else
      pd->spawn->out.fd = fd, pd->fd = -1;
  }
  if (pd->spawn && pd->hdr.err == 0 && h->a > 1) {
    proc *pr = pd->spawn;
    pr->pid = (uint32_t)h->a;
    pr->registered = true;
    pr->refs++; /* the table's reference */
    pr->next = sbx->procs;
    sbx->procs = pr;
    sbx->n_procs++;
    push_all(pr, CC_SBX_EV_START, NULL, 0, 0);
    stream_arm(rt, &pr->out, true);
    stream_arm(rt, &pr->err, true);
  }
  pd->done = true;
  pthread_cond_broadcast(&sbx->cond);
  pthread_mutex_unlock(&sbx->lock);
}

static void on_sock(cc_sbx *sbx, uint32_t events) {
  static __thread unsigned char buf[CC_SBX_WIRE_MAX + 1];
  for (int i = 0; i < 64; i++) {
    union {
      char b[CMSG_SPACE(sizeof(int) * 4) + CMSG_SPACE(sizeof(struct ucred))];
      struct cmsghdr align;
    } u;
    struct iovec iov = {buf, CC_SBX_WIRE_MAX};
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof u.b};
    ssize_t n = recvmsg(sbx->sock, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    int fds[4], nfds = 0;
    struct ucred cred = {0};
    bool have_cred = false;
    if (n > 0)
      for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET) continue;
        if (c->cmsg_type == SCM_RIGHTS) {
          int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
          for (int j = 0; j < k; j++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + (size_t)j * sizeof(int), sizeof fd);
            if (nfds < 4)
              fds[nfds++] = fd;
            else
              close(fd);
          }
        } else if (c->cmsg_type == SCM_CREDENTIALS) {
          memcpy(&cred, CMSG_DATA(c), sizeof cred);
          have_cred = true;
        }
      }
    if (n <= 0) {
      /* The agent is gone; the pidfd of bwrap tells when the sandbox is fully down. */
      epoll_ctl(sbx->rt->epfd, EPOLL_CTL_DEL, sbx->sock, NULL);
      return;
    }
    cc_sbx_wire_hdr h;
    if ((size_t)n < sizeof h || (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
      for (int j = 0; j < nfds; j++) close(fds[j]);
      continue;
    }
    memcpy(&h, buf, sizeof h);
    unsigned char *pl = buf + sizeof h;
    size_t len = (size_t)n - sizeof h;
    switch (h.op) {
      case CC_SBX_OP_HELLO:
        pthread_mutex_lock(&sbx->lock);
        if (sbx->state == ST_STARTING) {
          sbx->agent_pid = have_cred && cred.pid > 1 ? cred.pid : 0;
          sbx->state = ST_READY;
          pthread_cond_broadcast(&sbx->cond);
        }
        pthread_mutex_unlock(&sbx->lock);
        break;
      case CC_SBX_OP_EXIT:
        on_exit_msg(sbx, (uint32_t)h.a, h.b);
        break;
      case CC_SBX_OP_REPLY:
        on_reply(sbx, &h, pl, len, nfds > 0 ? fds[0] : -1);
        for (int j = 1; j < nfds; j++) close(fds[j]);
        nfds = 0;
        break;
      default:
        break;
    }
    for (int j = 0; j < nfds; j++) close(fds[j]);
    (void)events;
  }
}

/* The sandbox is down (bwrap exited): end every process, fail every pending request, close
 * every fd.  I/O thread only. */
void cc_sbx_teardown(cc_sbx *sbx) {
  cc_sbx_runtime *rt = sbx->rt;
  if (sbx->bwrap_pid > 0) waitpid(sbx->bwrap_pid, NULL, 0);
  /* Exits the agent reported just before it died still count (not "signal: killed"). */
  if (sbx->state == ST_READY && sbx->sock >= 0) on_sock(sbx, 0);
  if (sbx->slirp_pid > 0) {
    kill(sbx->slirp_pid, SIGKILL);
    waitpid(sbx->slirp_pid, NULL, 0);
    sbx->slirp_pid = 0;
  }
  if (sbx->slirp_exit_fd >= 0) close(sbx->slirp_exit_fd);
  sbx->slirp_exit_fd = -1;
  pthread_mutex_lock(&sbx->lock);
  if (sbx->state == ST_STARTING && !sbx->why[0]) {
    char msg[200] = "";
    if (sbx->bwrap_errfd >= 0) {
      ssize_t n = read(sbx->bwrap_errfd, msg, sizeof msg - 1);
      msg[n > 0 ? n : 0] = 0;
      msg[strcspn(msg, "\n")] = 0;
    }
    snprintf(sbx->why, sizeof sbx->why, "sandbox failed to start: %s",
             msg[0] ? msg : "bwrap exited");
  }
  sbx->state = ST_DEAD;
  epoll_ctl(rt->epfd, EPOLL_CTL_DEL, sbx->sock, NULL);
  epoll_ctl(rt->epfd, EPOLL_CTL_DEL, sbx->bwrap_pidfd, NULL);
  for (proc *p = sbx->procs; p; p = p->next) {
    stream_close(rt, &p->out);
    stream_close(rt, &p->err);
    if (!p->exited) {
      p->exited = true;
      p->wstatus = SIGKILL; /* WIFSIGNALED, WTERMSIG == SIGKILL */
      p->gone = true;
    }
    maybe_end(p);
  }
  for (pending *pd = sbx->pend; pd; pd = pd->next)
    if (!pd->done) {
      pd->done = true;
      pd->hdr.err = EPIPE;
    }
  if (sbx->sock >= 0) shutdown(sbx->sock, SHUT_RDWR); /* closed by sbx_free */
  if (sbx->bwrap_pidfd >= 0) close(sbx->bwrap_pidfd), sbx->bwrap_pidfd = -1;
  if (sbx->bwrap_errfd >= 0) close(sbx->bwrap_errfd), sbx->bwrap_errfd = -1;
  sbx->torn_down = true;
  pthread_cond_broadcast(&sbx->cond);
  pthread_mutex_unlock(&sbx->lock);
}

/* ---- the I/O thread: the loop ------------------------------------------------------------- */

static void io_kick(cc_sbx_runtime *rt) {
  /* Re-arm throttled streams that have room again.  A process that exited while throttled
   * must be drained actively: its pipe may be empty yet held open by a background child,
   * so epoll would never report it again. */
  enum { MAX_DRAIN = 64 };
  proc *drain[MAX_DRAIN];
  int nd = 0;
  bool more = false;
  pthread_mutex_lock(&rt->lock);
  for (cc_sbx *s = rt->sandboxes; s; s = s->next) {
    pthread_mutex_lock(&s->lock);
    for (proc *p = s->procs; p; p = p->next) {
      if (!p->throttled || !cc_sbx_has_room(rt, p)) continue;
      if (p->exited && nd == MAX_DRAIN) {
        more = true;
        continue;
      }
      p->throttled = false;
      stream_arm(rt, &p->out, true);
      stream_arm(rt, &p->err, true);
      if (p->exited) {
        p->refs++;
        drain[nd++] = p;
      }
    }
    pthread_mutex_unlock(&s->lock);
  }
  if (more) rt->kick = true;
  pthread_mutex_unlock(&rt->lock);
  for (int i = 0; i < nd; i++) {
    proc *p = drain[i];
    pump(p->sbx, &p->out, true);
    pump(p->sbx, &p->err, true);
    pthread_mutex_lock(&p->sbx->lock);
    maybe_end(p);
    cc_sbx_proc_unref(p);
    pthread_mutex_unlock(&p->sbx->lock);
  }
}

/* Deadlines and retention; returns ms until the next deadline (or -1). */
static int io_timers(cc_sbx_runtime *rt) {
  uint64_t now = cc_sbx_now_ms(), next = UINT64_MAX;
  pthread_mutex_lock(&rt->lock);
  for (cc_sbx *s = rt->sandboxes; s; s = s->next) {
    pthread_mutex_lock(&s->lock);
    size_t ended = 0;
    for (proc **pp = &s->procs; *pp;) {
      proc *p = *pp;
      if (!p->exited && p->deadline && !p->kill_sent && s->state == ST_READY) {
        if (p->deadline <= now) {
          cc_sbx_wire_hdr h = {.op = CC_SBX_OP_SIGNAL, .a = (int32_t)p->pid, .b = SIGKILL};
          if (cc_sbx_wire_send(s->sock, &h, NULL, 0, NULL, 0, MSG_DONTWAIT) == 0)
            p->kill_sent = true;
          else
            next = now + 10;
        } else if (p->deadline < next) {
          next = p->deadline;
        }
      }
      if (p->ended && (++ended > RETAIN_ENDED || now - p->ended_at > RETAIN_MS)) {
        *pp = p->next;
        s->n_procs--;
        cc_sbx_proc_unref(p);
        continue;
      }
      if (p->ended && p->ended_at + RETAIN_MS < next) next = p->ended_at + RETAIN_MS + 1;
      pp = &p->next;
    }
    pthread_mutex_unlock(&s->lock);
  }
  pthread_mutex_unlock(&rt->lock);
  if (next == UINT64_MAX) return -1;
  return next <= now ? 0 : (int)(next - now > 60000 ? 60000 : next - now);
}

void *cc_sbx_io_main(void *arg) {
  cc_sbx_runtime *rt = arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  struct epoll_event evs[64];
  int timeout = -1;
  for (;;) {
    int n = epoll_wait(rt->epfd, evs, 64, timeout);
    for (int i = 0; i < n; i++) {
      tag *t = evs[i].data.ptr;
      if (t->kind == TAG_WAKE) {
        uint64_t v;
        (void)!read(rt->wakefd, &v, sizeof v);
      } else if (t->kind == TAG_SOCK) {
        on_sock(t->obj, evs[i].events);
      } else if (t->kind == TAG_PIDFD) {
        cc_sbx *d = t->obj;
        cc_sbx_teardown(d);
        d->next_dead = rt->dead;
        rt->dead = d;
      } else {
        stream *st = t->obj;
        /* The stream may have been closed earlier in this batch; its memory is alive
         * (procs are freed only by io_timers or callers after END, never mid-batch). */
        if (st->fd >= 0) pump(st->p->sbx, st, st->p->exited);
      }
    }
    /* Sandboxes torn down in this batch drop the I/O thread's reference only now, so no
     * event later in the batch can point into freed memory. */
    while (rt->dead) {
      cc_sbx *d = rt->dead;
      rt->dead = d->next_dead;
      cc_sbx_unref(d);
    }
    /* Launch requests and kicks. */
    pthread_mutex_lock(&rt->lock);
    cc_sbx *q = rt->launch_q;
    rt->launch_q = NULL;
    bool kick = rt->kick, stop = rt->stopping;
    rt->kick = false;
    pthread_mutex_unlock(&rt->lock);
    while (q) {
      cc_sbx *nx = q->next_launch;
      cc_sbx_launch(rt, q);
      q = nx;
    }
    if (kick) io_kick(rt);
    if (stop) break;
    timeout = io_timers(rt);
    pthread_mutex_lock(&rt->lock);
    if (rt->kick || rt->launch_q) timeout = 0;
    pthread_mutex_unlock(&rt->lock);
  }
  return NULL;
}

/* ---- agent requests ------------------------------------------------------------------------ */

/* Sends one request and waits for its reply.  Returns 0 with pd filled, or an errno
 * (EPIPE: the sandbox is dead; ETIMEDOUT). */
int cc_sbx_agent_call(cc_sbx *sbx, cc_sbx_wire_hdr *h, const void *payload, size_t len,
                      const int *fds, int nfds, pending *pd, int timeout_ms) {
  pd->fd = -1;
  pthread_mutex_lock(&sbx->lock);
  if (sbx->state != ST_READY || sbx->kill_requested) {
    pthread_mutex_unlock(&sbx->lock);
    return EPIPE;
  }
  if (++sbx->next_id == 0) ++sbx->next_id;
  pd->id = h->id = sbx->next_id;
  pd->next = sbx->pend;
  sbx->pend = pd;
  int sock = sbx->sock;
  pthread_mutex_unlock(&sbx->lock);
  /* The socket is only shut down (never closed) while the sandbox object lives. */
  int e = cc_sbx_wire_send(sock, h, payload, len, fds, nfds, 0);
  pthread_mutex_lock(&sbx->lock);
  if (e == 0) {
    struct timespec ts;
    cc_sbx_deadline_ts(&ts, timeout_ms);
    while (!pd->done && sbx->state == ST_READY)
      if (pthread_cond_timedwait(&sbx->cond, &sbx->lock, &ts) == ETIMEDOUT) break;
    if (!pd->done) e = sbx->state == ST_READY ? ETIMEDOUT : EPIPE;
  }
  for (pending **pp = &sbx->pend; *pp; pp = &(*pp)->next)
    if (*pp == pd) {
      *pp = pd->next;
      break;
    }
  pthread_mutex_unlock(&sbx->lock);
  if (e == 0 && pd->hdr.err == EPIPE && !pd->hdr.op) e = EPIPE; /* failed by teardown */
  return e;
}

void cc_sbx_pending_cleanup(pending *pd) {
  free(pd->payload);
  if (pd->fd >= 0) close(pd->fd);
}

cc_status cc_sbx_gone(cc_sbx *sbx, cc_sbx_err *err, int e) {
  if (e == ETIMEDOUT)
    return cc_sbx_fail(err, CC_SBX_ERR_TIMEOUT, e, "sandbox %s did not answer", sbx->id);
  return cc_sbx_fail(err, CC_SBX_ERR_GONE, e, "sandbox %s is not running", sbx->id);
}
