/*
 * cc_sbx: the host side of the sandbox runtime (see cc_sbx.h for the model).
 *
 * Structure: a runtime owns a registry of sandboxes and one I/O thread.  The I/O thread is
 * the only code that forks bubblewrap, reads agent sockets and output pipes, touches the
 * epoll set, and tears down dead sandboxes; caller threads send requests to agents and wait
 * on the sandbox's condition variable for the reply, and pull events from subscriptions.
 * Locks: rt->lock (registry) is taken before a sandbox's lock, never after.  Output flows
 * pipe → I/O thread → per-subscription bounded queues → cc_sbx_sub_next.
 */
#define _GNU_SOURCE
#include "cc_sbx.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/nsfs.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cc_sbx_int.h"
#include "cc_sbx_wire.h"

#define CHUNK_MAX 32768
#define RETAIN_ENDED 64
#define RETAIN_MS 30000
#define AGENT_TIMEOUT_MS 60000
#define CREATE_TIMEOUT_MS 20000
#define SANDBOX_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* ---- errors ----------------------------------------------------------------------------- */

static const char *const errkind_names[] = {
#define CC_SBX_ERR_NAME(name, status) #name,
    CC_SBX_ERR_MAP(CC_SBX_ERR_NAME)
#undef CC_SBX_ERR_NAME
};
static const cc_status errkind_status[] = {
#define CC_SBX_ERR_ST(name, status) status,
    CC_SBX_ERR_MAP(CC_SBX_ERR_ST)
#undef CC_SBX_ERR_ST
};
#define N_ERRKIND (sizeof errkind_names / sizeof errkind_names[0])

const char *cc_sbx_errkind_name(cc_sbx_errkind k) {
  return (unsigned)k < N_ERRKIND ? errkind_names[k] : "SYSTEM";
}

cc_status cc_sbx_errkind_status(cc_sbx_errkind k) {
  return (unsigned)k < N_ERRKIND ? errkind_status[k] : CC_INTERNAL;
}

static cc_status fail(cc_sbx_err *err, cc_sbx_errkind k, int e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static cc_status fail(cc_sbx_err *err, cc_sbx_errkind k, int e, const char *fmt, ...) {
  if (err) {
    err->kind = k;
    err->sys_errno = e;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return cc_sbx_errkind_status(k);
}

static cc_sbx_errkind kind_of_errno(int e) {
  switch (e) {
    case 0:
      return CC_SBX_ERR_NONE;
    case ENOENT:
      return CC_SBX_ERR_NOT_FOUND;
    case ENOTDIR:
      return CC_SBX_ERR_NOT_DIR;
    case EISDIR:
      return CC_SBX_ERR_IS_DIR;
    case EEXIST:
    case ENOTEMPTY:
      return CC_SBX_ERR_EXISTS;
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      return CC_SBX_ERR_NO_SPACE;
    case EACCES:
    case EPERM:
    case EROFS:
      return CC_SBX_ERR_PERMISSION;
    case ELOOP:
      return CC_SBX_ERR_LOOP;
    case ENAMETOOLONG:
    case EINVAL:
      return CC_SBX_ERR_INVALID_ARG;
    case E2BIG:
      return CC_SBX_ERR_LIMIT;
    case ETIMEDOUT:
      return CC_SBX_ERR_TIMEOUT;
    case EPIPE:
    case ECONNRESET:
      return CC_SBX_ERR_GONE;
    default:
      return CC_SBX_ERR_SYSTEM;
  }
}

cc_status cc_sbx_err_from_errno(cc_sbx_err *err, int e, const char *what, const char *path) {
  if (e == 0) {
    if (err) memset(err, 0, sizeof *err);
    return CC_OK;
  }
  return fail(err, kind_of_errno(e), e, "%s: %s: %s", what, path ? path : "", strerror(e));
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void deadline_ts(struct timespec *ts, int timeout_ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += timeout_ms / 1000;
  ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) ts->tv_sec++, ts->tv_nsec -= 1000000000L;
}

static char *xstrdup(const char *s) {
  return s ? strdup(s) : NULL;
}

/* ---- data structures -------------------------------------------------------------------- */

enum { TAG_WAKE = 1, TAG_SOCK, TAG_PIDFD, TAG_OUT, TAG_ERR };

typedef struct {
  int kind;
  void *obj;
} tag;

typedef struct chunk {
  struct chunk *next;
  cc_sbx_event_type type;
  int wstatus; /* END */
  size_t len;
  uint8_t data[];
} chunk;

typedef struct proc proc;

struct cc_sbx_sub {
  cc_sbx *sbx;
  proc *p;
  chunk *head, *tail, *current;
  size_t bytes;
  bool done; /* END was handed out */
  bool end_queued;
  int efd;
  cc_sbx_sub *next;
};

typedef struct {
  proc *p;
  int fd;
  tag t;
  bool armed;
} stream;

struct proc {
  cc_sbx *sbx;
  int refs;
  uint32_t pid;
  bool registered, exited, ended, throttled, kill_sent;
  int wstatus;
  uint64_t deadline, ended_at;
  stream out, err;
  int in_fd; /* host end of stdin, -1 when disabled or closed */
  pthread_mutex_t stdin_lock;
  cc_sbx_sub *subs;
  proc *next;
  /* echo of the spec */
  char *cmd, *cwd, *tag;
  char **args;
  size_t n_args;
  cc_sbx_env *envs;
  size_t n_envs;
  bool stdin_pipe;
  bool pty; /* out is the pty master, in_fd a second descriptor of it; err is unused */
};

typedef struct pending {
  uint32_t id;
  bool done;
  cc_sbx_wire_hdr hdr;
  unsigned char *payload;
  size_t len;
  int fd;
  proc *spawn; /* SPAWN: registered by the I/O thread when the reply arrives */
  struct pending *next;
} pending;

typedef enum { ST_STARTING, ST_READY, ST_DEAD } sbx_state;

struct cc_sbx {
  cc_sbx_runtime *rt;
  int refs; /* under rt->lock */
  char id[65];
  char *template_id;
  char **base_env; /* "K=V", n_base */
  size_t n_base;
  cc_sbx_limits limits;
  bool allow_internet, egress;
  char net_why[200]; /* no egress: why ("" while it has it) */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  sbx_state state;
  bool torn_down, in_registry, kill_requested, frozen;
  char why[256];
  int sock, bwrap_pidfd, bwrap_errfd;
  pid_t bwrap_pid, agent_pid, slirp_pid;
  tag t_sock, t_pidfd;
  pending *pend;
  uint32_t next_id;
  proc *procs;
  size_t n_procs;
  cc_sbx_cg cg;
  /* launch inputs (built by the caller, consumed by the I/O thread) */
  char **argv;
  int child_sock, passwd_fd, group_fd, resolv_fd, agent_fd, seccomp_fd;
  cc_sbx *next_launch, *next, *next_dead;
};

struct cc_sbx_runtime {
  cc_sbx_config cfg;
  char *state_dir, *prefix;
  cc_sbx_runtime_info info;
  cc_sbx_net net;
  cc_sbx_cg_root cg;
  pthread_mutex_t lock;
  cc_sbx *sandboxes;
  cc_sbx *launch_q;
  cc_sbx *dead; /* I/O thread only */
  bool stopping, kick;
  int epfd, wakefd;
  tag t_wake;
  pthread_t io;
  uint32_t host_uid;
  unsigned char *agent_bytes;
  size_t agent_len;
  void *seccomp; /* struct sock_filter[] */
  size_t seccomp_len;
};

/* ---- small helpers ---------------------------------------------------------------------- */

static void wake(cc_sbx_runtime *rt) {
  uint64_t one = 1;
  (void)!write(rt->wakefd, &one, sizeof one);
}

static void sub_push(cc_sbx_sub *s, chunk *c) {
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

static chunk *chunk_new(cc_sbx_event_type type, const void *data, size_t len, int wstatus) {
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
    chunk *c = chunk_new(type, data, len, ws);
    if (!c) continue; /* out of memory: this subscriber loses the chunk */
    if (type == CC_SBX_EV_END) s->end_queued = true;
    sub_push(s, c);
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
static void proc_unref(proc *p) {
  if (--p->refs == 0) proc_free(p);
}

/* Room for one more chunk in every subscription of p? */
static bool has_room(cc_sbx_runtime *rt, proc *p) {
  for (cc_sbx_sub *s = p->subs; s; s = s->next)
    if (s->bytes + CHUNK_MAX > rt->cfg.sub_queue_bytes) return false;
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
  p->ended_at = now_ms();
  push_all(p, CC_SBX_EV_END, NULL, 0, p->wstatus);
}

/* Reads output of one stream (I/O thread only).  draining: the process has exited, so an
 * empty pipe means done.  Respects the subscription caps (back-pressure). */
static void pump(cc_sbx *sbx, stream *st, bool draining) {
  cc_sbx_runtime *rt = sbx->rt;
  static __thread uint8_t buf[CHUNK_MAX];
  proc *p = st->p;
  for (int rounds = 0; st->fd >= 0; rounds++) {
    pthread_mutex_lock(&sbx->lock);
    bool room = has_room(rt, p);
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

static proc *find_proc(cc_sbx *sbx, uint32_t pid, bool running_only) {
  for (proc *p = sbx->procs; p; p = p->next)
    if (p->registered && p->pid == pid && (!running_only || !p->exited)) return p;
  return NULL;
}

static void on_exit_msg(cc_sbx *sbx, uint32_t pid, int ws) {
  pthread_mutex_lock(&sbx->lock);
  proc *p = find_proc(sbx, pid, true);
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
  proc_unref(p);
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
static void teardown(cc_sbx *sbx) {
  cc_sbx_runtime *rt = sbx->rt;
  if (sbx->bwrap_pid > 0) waitpid(sbx->bwrap_pid, NULL, 0);
  /* Exits the agent reported just before it died still count (not "signal: killed"). */
  if (sbx->state == ST_READY && sbx->sock >= 0) on_sock(sbx, 0);
  if (sbx->slirp_pid > 0) {
    kill(sbx->slirp_pid, SIGKILL);
    waitpid(sbx->slirp_pid, NULL, 0);
    sbx->slirp_pid = 0;
  }
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

/* ---- the I/O thread: launching bubblewrap ----------------------------------------------- */

static void close_launch_fds(cc_sbx *sbx) {
  int *fds[] = {&sbx->child_sock, &sbx->passwd_fd, &sbx->group_fd,
                &sbx->resolv_fd,  &sbx->agent_fd,  &sbx->seccomp_fd};
  for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
    if (*fds[i] >= 0) close(*fds[i]), *fds[i] = -1;
}

/* Between fork and exec: only async-signal-safe calls, raw syscalls for credentials. */
void cc_sbx_child_exec(const char *path, char **argv, char **envp, const cc_sbx_cg *cg,
                       uint32_t uid, bool drop, const int *src, const int *dst, int n,
                       void (*prep)(const void *), const void *prep_arg) {
  char pidbuf[16];
  long pid = syscall(SYS_getpid);
  int k = 0;
  char tmp[16];
  do tmp[k++] = (char)('0' + pid % 10), pid /= 10;
  while (pid && k < 15);
  for (int i = 0; i < k; i++) pidbuf[i] = tmp[k - 1 - i];
  for (int i = 0; cg && i < CC_SBX_CG_NCTRL; i++)
    if (cg->procs_fd[i] >= 0 && write(cg->procs_fd[i], pidbuf, (size_t)k) != k) _exit(121);
  if (prep) prep(prep_arg);
  if (drop) {
    if (syscall(SYS_setgroups, 0, NULL) != 0) _exit(122);
    if (syscall(SYS_setresgid, uid, uid, uid) != 0) _exit(122);
    if (syscall(SYS_setresuid, uid, uid, uid) != 0) _exit(122);
  }
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  int hi[16];
  if (n > 16) _exit(123);
  for (int i = 0; i < n; i++) {
    hi[i] = src[i] >= 0 ? fcntl(src[i], F_DUPFD_CLOEXEC, 64) : -1;
    if (src[i] >= 0 && hi[i] < 0) _exit(123);
  }
  for (int i = 0; i < n; i++)
    if (hi[i] >= 0 && dup2(hi[i], dst[i]) < 0) _exit(123);
  syscall(SYS_close_range, (unsigned)dst[n - 1] + 1, ~0u, 0);
  execve(path, argv, envp);
  _exit(124);
}

static void launch(cc_sbx_runtime *rt, cc_sbx *sbx) {
  int errp[2] = {-1, -1};
  char e1[80], e2[80];
  snprintf(e1, sizeof e1, "E2B_SANDBOX_ID=%s", sbx->id);
  snprintf(e2, sizeof e2, "E2B_TEMPLATE_ID=%s", sbx->template_id);
  char *envp[] = {"PATH=" SANDBOX_PATH, e1, e2, NULL};
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (pipe2(errp, O_CLOEXEC | O_NONBLOCK) != 0 || devnull < 0) {
    snprintf(sbx->why, sizeof sbx->why, "pipe: %s", strerror(errno));
    goto failed;
  }
  int src[] = {devnull,       devnull,       errp[1],         sbx->child_sock, sbx->passwd_fd,
               sbx->group_fd, sbx->agent_fd, sbx->seccomp_fd, sbx->resolv_fd};
  int dst[] = {0, 1, 2, 3, 4, 5, 6, 7, 8};
  bool drop = rt->info.root;
  /* Fork under the sandbox lock so cc_sbx_kill sees either kill_requested first (and we do
   * not launch) or a bwrap_pid it can kill. */
  pthread_mutex_lock(&sbx->lock);
  if (sbx->kill_requested) {
    pthread_mutex_unlock(&sbx->lock);
    snprintf(sbx->why, sizeof sbx->why, "killed before start");
    goto failed;
  }
  pid_t pid = fork();
  if (pid == 0)
    cc_sbx_child_exec(rt->info.bwrap, sbx->argv, envp, &sbx->cg, rt->host_uid, drop, src, dst,
                      sbx->resolv_fd >= 0 ? 9 : 8, NULL, NULL);
  if (pid < 0) {
    pthread_mutex_unlock(&sbx->lock);
    snprintf(sbx->why, sizeof sbx->why, "fork: %s", strerror(errno));
    goto failed;
  }
  sbx->bwrap_pid = pid;
  sbx->bwrap_errfd = errp[0];
  sbx->bwrap_pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  pthread_mutex_unlock(&sbx->lock);
  close(errp[1]);
  close(devnull);
  close_launch_fds(sbx);
  cc_sbx_cg_close_fds(&sbx->cg);
  if (sbx->bwrap_pidfd < 0) {
    kill(pid, SIGKILL);
    snprintf(sbx->why, sizeof sbx->why, "pidfd_open: %s", strerror(errno));
    teardown(sbx);
    sbx->next_dead = rt->dead;
    rt->dead = sbx;
    return;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &sbx->t_sock};
  epoll_ctl(rt->epfd, EPOLL_CTL_ADD, sbx->sock, &ev);
  struct epoll_event ev2 = {.events = EPOLLIN, .data.ptr = &sbx->t_pidfd};
  epoll_ctl(rt->epfd, EPOLL_CTL_ADD, sbx->bwrap_pidfd, &ev2);
  return;
failed:
  if (errp[0] >= 0) close(errp[0]), close(errp[1]);
  if (devnull >= 0) close(devnull);
  close_launch_fds(sbx);
  sbx->bwrap_pid = 0;
  teardown(sbx);
  sbx->next_dead = rt->dead;
  rt->dead = sbx;
}

static void sbx_unref(cc_sbx *sbx);

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
      if (!p->throttled || !has_room(rt, p)) continue;
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
    proc_unref(p);
    pthread_mutex_unlock(&p->sbx->lock);
  }
}

/* Deadlines and retention; returns ms until the next deadline (or -1). */
static int io_timers(cc_sbx_runtime *rt) {
  uint64_t now = now_ms(), next = UINT64_MAX;
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
        proc_unref(p);
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

static void *io_main(void *arg) {
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
        teardown(d);
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
      sbx_unref(d);
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
      launch(rt, q);
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

/* ---- sandboxes: references ------------------------------------------------------------- */

static void sbx_free(cc_sbx *sbx) {
  while (sbx->procs) {
    proc *p = sbx->procs;
    sbx->procs = p->next;
    proc_unref(p);
  }
  close_launch_fds(sbx);
  cc_sbx_cg_close_fds(&sbx->cg);
  if (sbx->sock >= 0) close(sbx->sock);
  if (sbx->bwrap_pidfd >= 0) close(sbx->bwrap_pidfd);
  if (sbx->bwrap_errfd >= 0) close(sbx->bwrap_errfd);
  if (sbx->argv) {
    for (char **a = sbx->argv; *a; a++) free(*a);
    free(sbx->argv);
  }
  for (size_t i = 0; i < sbx->n_base; i++) free(sbx->base_env[i]);
  free(sbx->base_env);
  free(sbx->template_id);
  pthread_mutex_destroy(&sbx->lock);
  pthread_cond_destroy(&sbx->cond);
  free(sbx);
}

static void sbx_unref(cc_sbx *sbx) {
  cc_sbx_runtime *rt = sbx->rt;
  pthread_mutex_lock(&rt->lock);
  bool last = --sbx->refs == 0;
  pthread_mutex_unlock(&rt->lock);
  if (last) sbx_free(sbx);
}

void cc_sbx_release(cc_sbx *sbx) {
  if (sbx) sbx_unref(sbx);
}

/* ---- runtime ----------------------------------------------------------------------------- */

void cc_sbx_config_init(cc_sbx_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->limits.memory_bytes = CC_SBX_DEFAULT_MEMORY_BYTES;
  cfg->limits.pids_max = CC_SBX_DEFAULT_PIDS_MAX;
  cfg->limits.cpu_millis = CC_SBX_DEFAULT_CPU_MILLIS;
  cfg->limits.home_bytes = CC_SBX_DEFAULT_HOME_BYTES;
  cfg->limits.tmp_bytes = CC_SBX_DEFAULT_TMP_BYTES;
  cfg->host_uid = CC_SBX_DEFAULT_HOST_UID;
  cfg->sub_queue_bytes = 1u << 20;
  cfg->max_procs = 1024;
}

bool cc_sbx_find_in_path(const char *name, char *out, size_t cap) {
  const char *path = getenv("PATH");
  if (!path) path = "/usr/local/bin:/usr/bin:/bin";
  while (*path) {
    size_t n = strcspn(path, ":");
    if (n && snprintf(out, cap, "%.*s/%s", (int)n, path, name) < (int)cap && access(out, X_OK) == 0)
      return true;
    path += n + (path[n] == ':');
  }
  return false;
}

static void merge_limits(cc_sbx_limits *dst, const cc_sbx_limits *defaults,
                         const cc_sbx_limits *over) {
  *dst = *defaults;
  if (!over) return;
  if (over->memory_bytes) dst->memory_bytes = over->memory_bytes;
  if (over->pids_max) dst->pids_max = over->pids_max;
  if (over->cpu_millis) dst->cpu_millis = over->cpu_millis;
  if (over->home_bytes) dst->home_bytes = over->home_bytes;
  if (over->tmp_bytes) dst->tmp_bytes = over->tmp_bytes;
}

/* The bwrap command line of a sandbox (argv[last] = the program to run as PID 1). */
static char **build_argv(cc_sbx_runtime *rt, const cc_sbx_limits *lim, bool resolv,
                         const char *program) {
  char **v = calloc(96, sizeof *v);
  if (!v) return NULL;
  int n = 0;
#define A(s) (v[n++] = strdup(s))
  char num[32];
  A(rt->info.bwrap);
  A("--unshare-all"), A("--unshare-user"), A("--die-with-parent"), A("--new-session"),
      A("--as-pid-1");
  A("--disable-userns");
  A("--uid"), A("1000"), A("--gid"), A("1000"), A("--hostname"), A("e2b");
  A("--ro-bind"), A("/usr"), A("/usr");
  static const char *const tops[] = {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"};
  for (size_t i = 0; i < sizeof tops / sizeof tops[0]; i++) {
    struct stat st;
    if (lstat(tops[i], &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      char t[256];
      ssize_t k = readlink(tops[i], t, sizeof t - 1);
      if (k <= 0) continue;
      t[k] = 0;
      A("--symlink"), A(t), A(tops[i]);
    } else if (S_ISDIR(st.st_mode)) {
      A("--ro-bind"), A(tops[i]), A(tops[i]);
    }
  }
  A("--ro-bind"), A("/etc"), A("/etc");
  A("--ro-bind-data"), A("4"), A("/etc/passwd");
  A("--ro-bind-data"), A("5"), A("/etc/group");
  if (rt->seccomp_len) A("--seccomp"), A("7");
  if (resolv) A("--ro-bind-data"), A("8"), A("/etc/resolv.conf");
  A("--proc"), A("/proc"), A("--dev"), A("/dev");
  A("--size"), A("16777216"), A("--tmpfs"), A("/dev/shm"); /* capped like the other tmpfs */
  A("--remount-ro"), A("/dev"); /* device nodes still work; no files can be created there */
  snprintf(num, sizeof num, "%llu", (unsigned long long)lim->home_bytes);
  A("--size"), A(num), A("--tmpfs"), A("/home/user");
  snprintf(num, sizeof num, "%llu", (unsigned long long)lim->tmp_bytes);
  A("--size"), A(num), A("--tmpfs"), A("/tmp");
  A("--size"), A("1048576"), A("--tmpfs"), A("/run");
  /* The agent is copied in from a memfd (fd 6): its host path may not be reachable by the
   * sandbox's host uid (a 0700 build directory), and a copy cannot be swapped underneath. */
  A("--perms"), A("0555"), A("--ro-bind-data"), A("6"), A("/.cc-agent");
  A("--remount-ro"), A("/");
  A("--chdir"), A("/home/user");
  A("--");
  A(program);
#undef A
  for (int i = 0; i < n; i++)
    if (!v[i]) {
      for (int j = 0; j < n; j++) free(v[j]);
      free(v);
      return NULL;
    }
  return v;
}

static int data_pipe(const char *data) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return -1;
  size_t len = strlen(data);
  if (write(p[1], data, len) != (ssize_t)len) {
    close(p[0]), close(p[1]);
    return -1;
  }
  close(p[1]);
  return p[0];
}

/* A fresh memfd holding bytes, positioned at 0 (bwrap reads it to EOF). */
static int memfd_with(const char *name, const void *bytes, size_t len) {
  int fd = memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) return -1;
  size_t off = 0;
  while (off < len) {
    ssize_t k = write(fd, (const char *)bytes + off, len - off);
    if (k <= 0) return close(fd), -1;
    off += (size_t)k;
  }
  lseek(fd, 0, SEEK_SET);
  return fd;
}

/* The agent binary (read once at runtime_new). */
static int agent_memfd(cc_sbx_runtime *rt) {
  return memfd_with("cc-agent", rt->agent_bytes, rt->agent_len);
}

/* The seccomp program; -1 when the architecture has none (then bwrap gets no --seccomp). */
static int seccomp_memfd(cc_sbx_runtime *rt) {
  return rt->seccomp_len ? memfd_with("cc-seccomp", rt->seccomp, rt->seccomp_len) : -1;
}

static const char PASSWD[] =
    "root:x:0:0:root:/root:/bin/bash\n"
    "user:x:1000:1000:user:/home/user:/bin/bash\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
static const char GROUP[] = "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n";

/* Runs `bwrap <sandbox args> /usr/bin/true` once with the real credentials and mounts, so a
 * missing capability shows up at start with bwrap's own message. */
static bool probe_bwrap(cc_sbx_runtime *rt, char *why, size_t cap) {
  char **argv = build_argv(rt, &rt->cfg.limits, false, "/usr/bin/true");
  if (!argv) return snprintf(why, cap, "out of memory"), false;
  int errp[2];
  int pw = data_pipe(PASSWD), gr = data_pipe(GROUP), ag = agent_memfd(rt), sc = seccomp_memfd(rt);
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  bool ok = false;
  if (pw >= 0 && gr >= 0 && ag >= 0 && (sc >= 0 || !rt->seccomp_len) && devnull >= 0 &&
      pipe2(errp, O_CLOEXEC) == 0) {
    char *envp[] = {"PATH=" SANDBOX_PATH, NULL};
    int src[] = {devnull, devnull, errp[1], devnull, pw, gr, ag, sc};
    int dst[] = {0, 1, 2, 3, 4, 5, 6, 7};
    pid_t pid = fork();
    if (pid == 0)
      cc_sbx_child_exec(rt->info.bwrap, argv, envp, NULL, rt->host_uid, rt->info.root, src, dst,
                        8, NULL, NULL);
    close(errp[1]);
    char msg[300] = "";
    size_t off = 0;
    ssize_t k;
    while (off + 1 < sizeof msg && (k = read(errp[0], msg + off, sizeof msg - 1 - off)) > 0)
      off += (size_t)k;
    msg[off] = 0;
    msg[strcspn(msg, "\n")] = 0;
    close(errp[0]);
    int st = 0;
    if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0)
      ok = true;
    else if (pid < 0)
      snprintf(why, cap, "fork: %s", strerror(errno));
    else
      snprintf(why, cap, "bubblewrap cannot create a sandbox (%s as uid %u): %s%s", rt->info.bwrap,
               rt->info.root ? rt->host_uid : (unsigned)getuid(), msg[0] ? msg : "exit status ",
               msg[0] ? "" : (WIFEXITED(st) ? "non-zero" : "signal"));
  } else {
    snprintf(why, cap, "pipe: %s", strerror(errno));
  }
  if (pw >= 0) close(pw);
  if (gr >= 0) close(gr);
  if (ag >= 0) close(ag);
  if (sc >= 0) close(sc);
  if (devnull >= 0) close(devnull);
  for (char **a = argv; *a; a++) free(*a);
  free(argv);
  return ok;
}

/* Proves egress the way every sandbox gets it: a sandbox with internet access (bwrap, then
 * slirp4netns attached and its tap configured), killed at once.  Where that fails, egress is
 * off for this runtime, so that no later create waits for a helper that cannot work. */
static void probe_egress(cc_sbx_runtime *rt) {
  cc_sbx_net *n = &rt->net;
  if (n->tun != CC_SBX_TUN_NONE) {
    char id[48];
    snprintf(id, sizeof id, "cc-egress-probe-%d", (int)getpid());
    cc_sbx_create_opts o = {.id = id, .allow_internet = true};
    cc_sbx *s = NULL;
    cc_sbx_err e = {0};
    cc_sbx_info in = {0};
    if (cc_sbx_create(rt, &o, &s, &e) == CC_OK) {
      cc_sbx_get_info(s, &in);
      cc_sbx_release(s);
      cc_sbx_kill(rt, id);
      if (!in.egress) snprintf(n->why, sizeof n->why, "%s", in.egress_why);
    } else {
      snprintf(n->why, sizeof n->why, "the probe sandbox did not start: %.150s", e.msg);
    }
    if (!in.egress) n->tun = CC_SBX_TUN_NONE;
  }
  rt->info.egress_available = n->tun != CC_SBX_TUN_NONE;
  if (rt->info.egress_available)
    snprintf(rt->info.egress, sizeof rt->info.egress,
             "%.60s (%.120s; its own seccomp filter; host loopback disabled)", n->slirp,
             n->how);
  else
    snprintf(rt->info.egress, sizeof rt->info.egress, "%.200s; sandboxes get loopback only",
             n->why);
}

cc_status cc_sbx_runtime_new(const cc_sbx_config *cfg, cc_sbx_runtime **out, cc_sbx_err *err) {
  *out = NULL;
  if (!cfg || !cfg->state_dir || !cfg->state_dir[0])
    return fail(err, CC_SBX_ERR_INVALID_ARG, 0, "state_dir is required");
  cc_sbx_runtime *rt = calloc(1, sizeof *rt);
  if (!rt) return fail(err, CC_SBX_ERR_SYSTEM, ENOMEM, "out of memory");
  rt->cfg = *cfg;
  cc_sbx_config def;
  cc_sbx_config_init(&def);
  merge_limits(&rt->cfg.limits, &def.limits, &cfg->limits);
  if (!rt->cfg.sub_queue_bytes) rt->cfg.sub_queue_bytes = def.sub_queue_bytes;
  if (rt->cfg.sub_queue_bytes < 2 * CHUNK_MAX) rt->cfg.sub_queue_bytes = 2 * CHUNK_MAX;
  if (!rt->cfg.max_procs) rt->cfg.max_procs = def.max_procs;
  rt->epfd = rt->wakefd = -1;
  pthread_mutex_init(&rt->lock, NULL);
  cc_status st = CC_INTERNAL;
  char why[700] = "";
  rt->info.root = geteuid() == 0;
  rt->host_uid =
      rt->info.root ? (cfg->host_uid ? cfg->host_uid : CC_SBX_DEFAULT_HOST_UID) : getuid();
  rt->state_dir = strdup(cfg->state_dir);
  if (mkdir(cfg->state_dir, 0700) != 0 && errno != EEXIST) {
    st = fail(err, CC_SBX_ERR_SYSTEM, errno, "cannot create state dir %s: %s", cfg->state_dir,
              strerror(errno));
    goto fail;
  }
  /* bwrap and the agent */
  if (cfg->bwrap_path)
    snprintf(rt->info.bwrap, sizeof rt->info.bwrap, "%s", cfg->bwrap_path);
  else if (access("/usr/bin/bwrap", X_OK) == 0)
    snprintf(rt->info.bwrap, sizeof rt->info.bwrap, "/usr/bin/bwrap");
  else if (!cc_sbx_find_in_path("bwrap", rt->info.bwrap, sizeof rt->info.bwrap))
    rt->info.bwrap[0] = 0;
  if (!rt->info.bwrap[0] || access(rt->info.bwrap, X_OK) != 0) {
    st = fail(err, CC_SBX_ERR_SYSTEM, ENOENT,
              "bubblewrap (bwrap) not found: install the 'bubblewrap' package");
    goto fail;
  }
  if (cfg->agent_path) {
    snprintf(rt->info.agent, sizeof rt->info.agent, "%s", cfg->agent_path);
  } else {
    char self[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    self[k > 0 ? k : 0] = 0;
    char *slash = strrchr(self, '/');
    if (slash) *slash = 0;
    snprintf(rt->info.agent, sizeof rt->info.agent, "%.200s/codecanvas-sandbox-agent", self);
  }
  int afd = open(rt->info.agent, O_RDONLY | O_CLOEXEC);
  struct stat ast;
  if (afd < 0 || fstat(afd, &ast) != 0 || !S_ISREG(ast.st_mode) || ast.st_size > (64 << 20) ||
      !(rt->agent_bytes = malloc((size_t)ast.st_size + 1))) {
    st = fail(err, CC_SBX_ERR_SYSTEM, errno, "sandbox agent %s not readable: %s", rt->info.agent,
              strerror(errno));
    if (afd >= 0) close(afd);
    goto fail;
  }
  while (rt->agent_len < (size_t)ast.st_size) {
    ssize_t k = read(afd, rt->agent_bytes + rt->agent_len, (size_t)ast.st_size - rt->agent_len);
    if (k <= 0) break;
    rt->agent_len += (size_t)k;
  }
  close(afd);
  /* egress: what /dev/net/tun allows (proven by a probe sandbox below) */
  cc_sbx_net_init(&rt->net, cfg->slirp_path, rt->info.root, rt->host_uid);
  /* cgroups */
  char prefix[64];
  if (cfg->cgroup_prefix)
    snprintf(prefix, sizeof prefix, "%s", cfg->cgroup_prefix);
  else
    snprintf(prefix, sizeof prefix, "codecanvas-%d", (int)getpid());
  rt->prefix = strdup(prefix);
  char cgwhy[600] = "";
  if (!cc_sbx_cg_probe(&rt->cg, cfg->cgroup, prefix, cgwhy, sizeof cgwhy) && !cfg->allow_no_cgroups) {
    st = fail(err, CC_SBX_ERR_SYSTEM, EPERM,
              "%s; run as root, delegate a cgroup v2 subtree, or allow running without limits",
              cgwhy);
    goto fail;
  }
  rt->info.cgroup = rt->cg.mode;
  rt->seccomp = cc_sbx_seccomp_program(&rt->seccomp_len);
  if (!probe_bwrap(rt, why, sizeof why)) {
    st = fail(err, CC_SBX_ERR_SYSTEM, EPERM, "%s", why);
    goto fail;
  }
  rt->epfd = epoll_create1(EPOLL_CLOEXEC);
  rt->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  rt->t_wake.kind = TAG_WAKE;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &rt->t_wake};
  if (rt->epfd < 0 || rt->wakefd < 0 || epoll_ctl(rt->epfd, EPOLL_CTL_ADD, rt->wakefd, &ev) != 0 ||
      pthread_create(&rt->io, NULL, io_main, rt) != 0) {
    st = fail(err, CC_SBX_ERR_SYSTEM, errno, "cannot start the I/O thread: %s", strerror(errno));
    rt->io = 0;
    goto fail;
  }
  probe_egress(rt);
  /* A report longer than the buffer is cut, which is fine for a human-readable line. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif
  int rn = snprintf(
      rt->info.report, sizeof rt->info.report,
      "sandbox runtime: %s (sandbox user 1000 = host uid %u), bubblewrap %s, agent %s; "
      "limits: %s%.300s; egress: %s%.250s; seccomp: %s",
      rt->info.root ? "root" : "unprivileged", rt->host_uid, rt->info.bwrap, rt->info.agent,
      rt->cg.mode == CC_SBX_CGROUP_V1   ? "cgroup v1 (memory, pids, cpu, freezer)"
      : rt->cg.mode == CC_SBX_CGROUP_V2 ? "cgroup v2 (memory, pids, cpu)"
                                        : "NONE — memory/pids/CPU are NOT limited: ",
      rt->cg.mode == CC_SBX_CGROUP_NONE ? cgwhy : "",
      rt->info.egress_available ? "slirp4netns " : "unavailable: ", rt->info.egress,
      rt->seccomp_len ? "deny list (keyrings, bpf, perf, io_uring, mounts, namespaces...)"
                      : "NONE (no filter for this architecture)");
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
  (void)rn;
  *out = rt;
  if (err) memset(err, 0, sizeof *err);
  return CC_OK;
fail:
  cc_sbx_runtime_free(rt);
  return st;
}

void cc_sbx_runtime_get_info(cc_sbx_runtime *rt, cc_sbx_runtime_info *out) {
  *out = rt->info;
}

void cc_sbx_runtime_free(cc_sbx_runtime *rt) {
  if (!rt) return;
  char **ids = NULL;
  size_t n = 0;
  if (rt->io && cc_sbx_list_ids(rt, &ids, &n) == CC_OK) {
    for (size_t i = 0; i < n; i++) cc_sbx_kill(rt, ids[i]);
    cc_sbx_ids_free(ids, n);
  }
  if (rt->io) {
    pthread_mutex_lock(&rt->lock);
    rt->stopping = true;
    pthread_mutex_unlock(&rt->lock);
    wake(rt);
    pthread_join(rt->io, NULL);
    while (rt->dead) {
      cc_sbx *d = rt->dead;
      rt->dead = d->next_dead;
      sbx_unref(d);
    }
  }
  cc_sbx_cg_root_cleanup(&rt->cg);
  if (rt->epfd >= 0) close(rt->epfd);
  if (rt->wakefd >= 0) close(rt->wakefd);
  pthread_mutex_destroy(&rt->lock);
  free(rt->state_dir);
  free(rt->prefix);
  free(rt->agent_bytes);
  free(rt->seccomp);
  free(rt);
}

/* ---- sandboxes ---------------------------------------------------------------------------- */

static bool valid_id(const char *id) {
  size_t n = id ? strlen(id) : 0;
  if (n == 0 || n > 64) return false;
  for (size_t i = 0; i < n; i++) {
    char c = id[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_'))
      return false;
  }
  return true;
}

static cc_sbx *lookup(cc_sbx_runtime *rt, const char *id) {
  for (cc_sbx *s = rt->sandboxes; s; s = s->next)
    if (strcmp(s->id, id) == 0) return s;
  return NULL;
}

static void unregister(cc_sbx_runtime *rt, cc_sbx *sbx) {
  for (cc_sbx **pp = &rt->sandboxes; *pp; pp = &(*pp)->next)
    if (*pp == sbx) {
      *pp = sbx->next;
      sbx->in_registry = false;
      return;
    }
}

static bool env_set(char ***list, size_t *n, const char *name, const char *value) {
  size_t nl = strlen(name);
  if (nl == 0 || strchr(name, '=')) return true; /* ignore invalid names */
  char *kv = malloc(nl + strlen(value) + 2);
  if (!kv) return false;
  sprintf(kv, "%s=%s", name, value);
  for (size_t i = 0; i < *n; i++)
    if (strncmp((*list)[i], name, nl) == 0 && (*list)[i][nl] == '=') {
      free((*list)[i]);
      (*list)[i] = kv;
      return true;
    }
  char **nv = realloc(*list, (*n + 2) * sizeof *nv);
  if (!nv) return free(kv), false;
  nv[(*n)++] = kv;
  nv[*n] = NULL;
  *list = nv;
  return true;
}

cc_status cc_sbx_create(cc_sbx_runtime *rt, const cc_sbx_create_opts *opts, cc_sbx **out,
                        cc_sbx_err *err) {
  if (out) *out = NULL;
  if (!opts || !valid_id(opts->id))
    return fail(err, CC_SBX_ERR_INVALID_ARG, 0, "invalid sandbox id");
  cc_sbx *sbx = calloc(1, sizeof *sbx);
  if (!sbx) return fail(err, CC_SBX_ERR_SYSTEM, ENOMEM, "out of memory");
  sbx->rt = rt;
  snprintf(sbx->id, sizeof sbx->id, "%s", opts->id);
  sbx->template_id = strdup(opts->template_id ? opts->template_id : "base");
  merge_limits(&sbx->limits, &rt->cfg.limits, &opts->limits);
  sbx->allow_internet = opts->allow_internet;
  sbx->egress = opts->allow_internet && rt->net.tun != CC_SBX_TUN_NONE;
  if (!opts->allow_internet)
    snprintf(sbx->net_why, sizeof sbx->net_why, "internet access was not requested");
  else if (!sbx->egress)
    snprintf(sbx->net_why, sizeof sbx->net_why, "egress unavailable: %.170s", rt->net.why);
  pthread_mutex_init(&sbx->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&sbx->cond, &ca);
  pthread_condattr_destroy(&ca);
  sbx->sock = sbx->bwrap_pidfd = sbx->bwrap_errfd = -1;
  sbx->child_sock = sbx->passwd_fd = sbx->group_fd = sbx->resolv_fd = sbx->agent_fd = -1;
  sbx->seccomp_fd = -1;
  for (int i = 0; i < CC_SBX_CG_NCTRL; i++) sbx->cg.procs_fd[i] = -1;
  sbx->t_sock = (tag){TAG_SOCK, sbx};
  sbx->t_pidfd = (tag){TAG_PIDFD, sbx};
  sbx->refs = 1;
  cc_status st;
  /* base environment, envd order */
  bool ok = env_set(&sbx->base_env, &sbx->n_base, "PATH", SANDBOX_PATH) &&
            env_set(&sbx->base_env, &sbx->n_base, "HOME", "/home/user") &&
            env_set(&sbx->base_env, &sbx->n_base, "USER", "user") &&
            env_set(&sbx->base_env, &sbx->n_base, "LOGNAME", "user") &&
            env_set(&sbx->base_env, &sbx->n_base, "E2B_SANDBOX", "true") &&
            env_set(&sbx->base_env, &sbx->n_base, "E2B_SANDBOX_ID", sbx->id) &&
            env_set(&sbx->base_env, &sbx->n_base, "E2B_TEMPLATE_ID", sbx->template_id);
  for (size_t i = 0; ok && i < opts->n_envs; i++)
    if (opts->envs[i].name && opts->envs[i].value)
      ok = env_set(&sbx->base_env, &sbx->n_base, opts->envs[i].name, opts->envs[i].value);
  if (!ok || !sbx->template_id) {
    sbx_free(sbx);
    return fail(err, CC_SBX_ERR_SYSTEM, ENOMEM, "out of memory");
  }
  pthread_mutex_lock(&rt->lock);
  if (lookup(rt, sbx->id)) {
    pthread_mutex_unlock(&rt->lock);
    sbx_free(sbx);
    return fail(err, CC_SBX_ERR_EXISTS, EEXIST, "sandbox %s already exists", opts->id);
  }
  sbx->next = rt->sandboxes;
  rt->sandboxes = sbx;
  sbx->in_registry = true;
  sbx->refs = 2; /* registry + this call */
  pthread_mutex_unlock(&rt->lock);

  char why[600] = "";
  int sp[2] = {-1, -1};
  if (!cc_sbx_cg_create(&rt->cg, sbx->id, &sbx->limits, &sbx->cg, why, sizeof why)) {
    st = fail(err, CC_SBX_ERR_SYSTEM, errno, "%s", why);
    goto fail_unregistered;
  }
  sbx->argv = build_argv(rt, &sbx->limits, sbx->egress, "/.cc-agent");
  sbx->passwd_fd = data_pipe(PASSWD);
  sbx->group_fd = data_pipe(GROUP);
  if (sbx->egress) sbx->resolv_fd = data_pipe("nameserver 10.0.2.3\n");
  sbx->agent_fd = agent_memfd(rt);
  sbx->seccomp_fd = seccomp_memfd(rt);
  if (!sbx->argv || sbx->passwd_fd < 0 || sbx->group_fd < 0 || sbx->agent_fd < 0 ||
      (rt->seccomp_len && sbx->seccomp_fd < 0) || (sbx->egress && sbx->resolv_fd < 0) ||
      socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0) {
    st = fail(err, CC_SBX_ERR_SYSTEM, errno, "cannot prepare sandbox: %s", strerror(errno));
    goto fail_unregistered;
  }
  int one = 1;
  setsockopt(sp[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof one);
  sbx->sock = sp[0];
  sbx->child_sock = sp[1];
  /* Hand the launch to the I/O thread (it holds a reference until teardown). */
  pthread_mutex_lock(&rt->lock);
  sbx->refs++;
  sbx->next_launch = rt->launch_q;
  rt->launch_q = sbx;
  pthread_mutex_unlock(&rt->lock);
  wake(rt);

  pthread_mutex_lock(&sbx->lock);
  struct timespec ts;
  deadline_ts(&ts, CREATE_TIMEOUT_MS);
  while (sbx->state == ST_STARTING)
    if (pthread_cond_timedwait(&sbx->cond, &sbx->lock, &ts) == ETIMEDOUT) break;
  bool ready = sbx->state == ST_READY;
  if (!ready && !sbx->why[0]) snprintf(sbx->why, sizeof sbx->why, "sandbox did not start in time");
  snprintf(why, sizeof why, "%s", sbx->why);
  pthread_mutex_unlock(&sbx->lock);
  if (ready && sbx->egress) {
    /* No egress is not a reason to fail: the sandbox keeps loopback only and says why.
     * slirp4netns exits with its netns, and when we kill it at teardown. */
    char nwhy[200];
    pid_t sp = cc_sbx_net_attach(&rt->net, sbx->agent_pid, &sbx->cg, nwhy, sizeof nwhy);
    pthread_mutex_lock(&sbx->lock);
    sbx->slirp_pid = sp;
    if (!sp) snprintf(sbx->net_why, sizeof sbx->net_why, "slirp4netns: %.180s", nwhy);
    pthread_mutex_unlock(&sbx->lock);
  }
  if (!ready) {
    cc_sbx_kill(rt, sbx->id);
    sbx_unref(sbx);
    return fail(err, CC_SBX_ERR_GONE, 0, "%s", why);
  }
  if (out)
    *out = sbx;
  else
    sbx_unref(sbx);
  if (err) memset(err, 0, sizeof *err);
  return CC_OK;

fail_unregistered:
  pthread_mutex_lock(&rt->lock);
  unregister(rt, sbx);
  pthread_mutex_unlock(&rt->lock);
  if (sp[0] < 0 || sbx->sock < 0) {
    if (sp[0] >= 0) close(sp[0]);
    if (sp[1] >= 0) close(sp[1]);
  }
  cc_sbx_cg_destroy(&sbx->cg);
  sbx_unref(sbx); /* registry */
  sbx_unref(sbx); /* ours */
  return st;
}

cc_status cc_sbx_open(cc_sbx_runtime *rt, const char *id, cc_sbx **out) {
  *out = NULL;
  if (!id) return CC_NOT_FOUND;
  pthread_mutex_lock(&rt->lock);
  cc_sbx *s = lookup(rt, id);
  if (s) s->refs++;
  pthread_mutex_unlock(&rt->lock);
  if (!s) return CC_NOT_FOUND;
  *out = s;
  return CC_OK;
}

cc_status cc_sbx_kill(cc_sbx_runtime *rt, const char *id) {
  pthread_mutex_lock(&rt->lock);
  cc_sbx *sbx = id ? lookup(rt, id) : NULL;
  if (sbx) unregister(rt, sbx);
  pthread_mutex_unlock(&rt->lock);
  if (!sbx) return CC_NOT_FOUND;
  pthread_mutex_lock(&sbx->lock);
  /* A frozen task takes a SIGKILL only once thawed: thaw first, so the kill lands now. */
  if (sbx->frozen && cc_sbx_cg_freeze(&sbx->cg, false)) sbx->frozen = false;
  sbx->kill_requested = true;
  bool launched = sbx->bwrap_pid > 0 && !sbx->torn_down;
  pid_t agent = sbx->agent_pid, bw = sbx->bwrap_pid;
  pthread_mutex_unlock(&sbx->lock);
  /* Kill the PID-namespace init (the agent): the kernel then kills every process of the
   * namespace, and bwrap reaps the agent and exits (killing bwrap first would leave the
   * agent a zombie of the host's init).  Without a known agent, kill bwrap. */
  if (launched) {
    if (agent > 0)
      kill(agent, SIGKILL);
    else
      kill(bw, SIGKILL); /* still our unreaped child: the pid cannot have been reused */
  }
  pthread_mutex_lock(&sbx->lock);
  struct timespec ts;
  deadline_ts(&ts, 10000);
  while (!sbx->torn_down)
    if (pthread_cond_timedwait(&sbx->cond, &sbx->lock, &ts) == ETIMEDOUT) break;
  bool down = sbx->torn_down;
  pthread_mutex_unlock(&sbx->lock);
  if (!down && launched) {
    kill(bw, SIGKILL);
    pthread_mutex_lock(&sbx->lock);
    deadline_ts(&ts, 10000);
    while (!sbx->torn_down)
      if (pthread_cond_timedwait(&sbx->cond, &sbx->lock, &ts) == ETIMEDOUT) break;
    pthread_mutex_unlock(&sbx->lock);
  }
  /* Anything else in the cgroup (slirp4netns, a task that escaped the namespace). */
  cc_sbx_cg_kill(&sbx->cg);
  cc_sbx_cg_destroy(&sbx->cg);
  sbx_unref(sbx); /* the registry's reference */
  return CC_OK;
}

cc_status cc_sbx_get_info(cc_sbx *sbx, cc_sbx_info *out) {
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&sbx->lock);
  snprintf(out->id, sizeof out->id, "%s", sbx->id);
  out->host_pid = sbx->agent_pid;
  out->alive = sbx->state == ST_READY && !sbx->kill_requested;
  out->egress = sbx->egress && sbx->slirp_pid > 0;
  snprintf(out->egress_why, sizeof out->egress_why, "%s", out->egress ? "" : sbx->net_why);
  out->limits = sbx->limits;
  snprintf(out->cgroup, sizeof out->cgroup, "%.255s", sbx->cg.dir[0]);
  pthread_mutex_unlock(&sbx->lock);
  return CC_OK;
}

cc_status cc_sbx_add_envs(cc_sbx *sbx, const cc_sbx_env *envs, size_t n) {
  bool ok = true;
  for (size_t i = 0; ok && i < n; i++)
    if (envs[i].name && envs[i].value)
      ok = env_set(&sbx->base_env, &sbx->n_base, envs[i].name, envs[i].value);
  return ok ? CC_OK : CC_INTERNAL;
}

cc_status cc_sbx_freeze(cc_sbx *sbx, bool frozen, cc_sbx_err *err) {
  pthread_mutex_lock(&sbx->lock);
  cc_status st = CC_OK;
  if (sbx->state != ST_READY || sbx->kill_requested) {
    st = fail(err, CC_SBX_ERR_GONE, 0, "sandbox %s is not running", sbx->id);
  } else if (sbx->frozen != frozen) {
    if (cc_sbx_cg_freeze(&sbx->cg, frozen))
      sbx->frozen = frozen;
    else
      st = fail(err, CC_SBX_ERR_GONE, errno, "cannot %s sandbox %s: %s", frozen ? "freeze" : "thaw",
                sbx->id,
                sbx->cg.mode == CC_SBX_CGROUP_NONE ? "no cgroups (no freezer)"
                                                   : "the cgroup freezer did not take");
  }
  pthread_mutex_unlock(&sbx->lock);
  if (st == CC_OK && err) memset(err, 0, sizeof *err);
  return st;
}

cc_status cc_sbx_get_usage(cc_sbx *sbx, cc_sbx_usage *out) {
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&sbx->lock);
  bool up = sbx->state == ST_READY && !sbx->kill_requested;
  pid_t agent = sbx->agent_pid;
  out->mem_limit = sbx->limits.memory_bytes;
  out->disk_total = sbx->limits.home_bytes;
  if (up) cc_sbx_cg_usage(&sbx->cg, &out->cpu_ns, &out->mem_bytes);
  pthread_mutex_unlock(&sbx->lock);
  if (!up) return CC_SANDBOX_UNAVAILABLE;
  /* The home is a tmpfs mount point on the sandbox's read-only root: statvfs through the
   * agent's root resolves no path the sandbox can change. */
  char p[64];
  snprintf(p, sizeof p, "/proc/%d/root/home/user", (int)agent);
  struct statvfs vfs;
  if (agent > 0 && statvfs(p, &vfs) == 0) {
    out->disk_total = (uint64_t)vfs.f_blocks * vfs.f_frsize;
    out->disk_bytes = (uint64_t)(vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize;
  }
  return CC_OK;
}

cc_status cc_sbx_list_ids(cc_sbx_runtime *rt, char ***ids, size_t *n) {
  *ids = NULL;
  *n = 0;
  pthread_mutex_lock(&rt->lock);
  size_t c = 0;
  for (cc_sbx *s = rt->sandboxes; s; s = s->next) c++;
  char **v = calloc(c + 1, sizeof *v);
  size_t k = 0;
  for (cc_sbx *s = rt->sandboxes; v && s; s = s->next)
    if ((v[k] = strdup(s->id))) k++;
  pthread_mutex_unlock(&rt->lock);
  if (!v) return CC_INTERNAL;
  *ids = v;
  *n = k;
  return CC_OK;
}

void cc_sbx_ids_free(char **ids, size_t n) {
  if (!ids) return;
  for (size_t i = 0; i < n; i++) free(ids[i]);
  free(ids);
}

/* ---- agent requests ------------------------------------------------------------------------ */

/* Sends one request and waits for its reply.  Returns 0 with pd filled, or an errno
 * (EPIPE: the sandbox is dead; ETIMEDOUT). */
static int agent_call(cc_sbx *sbx, cc_sbx_wire_hdr *h, const void *payload, size_t len,
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
    deadline_ts(&ts, timeout_ms);
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

static void pending_cleanup(pending *pd) {
  free(pd->payload);
  if (pd->fd >= 0) close(pd->fd);
}

static cc_status gone(cc_sbx *sbx, cc_sbx_err *err, int e) {
  if (e == ETIMEDOUT) return fail(err, CC_SBX_ERR_TIMEOUT, e, "sandbox %s did not answer", sbx->id);
  return fail(err, CC_SBX_ERR_GONE, e, "sandbox %s is not running", sbx->id);
}

/* ---- processes -------------------------------------------------------------------------- */

static void sbx_ref(cc_sbx *sbx) {
  pthread_mutex_lock(&sbx->rt->lock);
  sbx->refs++;
  pthread_mutex_unlock(&sbx->rt->lock);
}

/* A subscription on p.  The caller holds the sandbox lock and has already taken the sandbox
 * reference the subscription keeps (sbx_ref needs rt->lock, which must never be taken while
 * holding a sandbox lock). */
static cc_sbx_sub *sub_new(cc_sbx *sbx, proc *p) {
  cc_sbx_sub *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->efd < 0) return free(s), NULL;
  s->sbx = sbx;
  s->p = p;
  p->refs++;
  s->next = p->subs;
  p->subs = s;
  return s;
}

/* Resolves a cwd or file path the way envd does (see cc_sbx.h); refuses "..". */
static bool resolve(const char *in, char *out, size_t cap) {
  char raw[CC_SBX_WIRE_PATH_MAX + 16];
  if (!in || !in[0]) in = "~";
  if (strlen(in) >= CC_SBX_WIRE_PATH_MAX) return false;
  if (in[0] == '~') {
    if (in[1] && in[1] != '/') return false; /* ~otheruser */
    snprintf(raw, sizeof raw, "/home/user%s", in + 1);
  } else if (in[0] == '/') {
    snprintf(raw, sizeof raw, "%s", in);
  } else {
    snprintf(raw, sizeof raw, "/home/user/%s", in);
  }
  size_t o = 0;
  char *save = NULL;
  for (char *t = strtok_r(raw, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
    if (strcmp(t, ".") == 0) continue;
    if (strcmp(t, "..") == 0) return false;
    size_t n = strlen(t);
    if (o + n + 2 > cap) return false;
    out[o++] = '/';
    memcpy(out + o, t, n);
    o += n;
  }
  if (o == 0) out[o++] = '/';
  out[o] = 0;
  return true;
}

static bool put(char *buf, size_t cap, size_t *off, const char *s) {
  size_t n = strlen(s) + 1;
  if (*off + n > cap) return false;
  memcpy(buf + *off, s, n);
  *off += n;
  return true;
}

cc_status cc_sbx_proc_start(cc_sbx *sbx, const cc_sbx_proc_spec *spec, uint32_t *pid,
                            cc_sbx_sub **subp, cc_sbx_err *err) {
  cc_sbx_runtime *rt = sbx->rt;
  *pid = 0;
  if (subp) *subp = NULL;
  if (!spec || !spec->cmd || !spec->cmd[0] || (spec->n_args && !spec->args) ||
      (spec->n_envs && !spec->envs))
    return fail(err, CC_SBX_ERR_INVALID_ARG, EINVAL, "cmd is required");
  char cwd[CC_SBX_WIRE_PATH_MAX];
  if (!resolve(spec->cwd, cwd, sizeof cwd))
    return fail(err, CC_SBX_ERR_INVALID_PATH, EINVAL, "invalid cwd '%s'", spec->cwd);
  pthread_mutex_lock(&sbx->lock);
  size_t running = 0;
  for (proc *q = sbx->procs; q; q = q->next) running += !q->exited;
  pthread_mutex_unlock(&sbx->lock);
  if (running >= rt->cfg.max_procs)
    return fail(err, CC_SBX_ERR_LIMIT, EAGAIN, "too many processes (%u)", rt->cfg.max_procs);

  /* The environment, in envd order, and the SPAWN payload. */
  char **env = NULL;
  size_t n_env = 0;
  bool ok = true;
  for (size_t i = 0; ok && i < sbx->n_base; i++) {
    char *eq = strchr(sbx->base_env[i], '=');
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(eq - sbx->base_env[i]), sbx->base_env[i]);
    ok = env_set(&env, &n_env, name, eq + 1);
  }
  if (ok && spec->pty) ok = env_set(&env, &n_env, "TERM", "xterm-256color");
  for (size_t i = 0; ok && i < spec->n_envs; i++)
    if (spec->envs[i].name && spec->envs[i].value)
      ok = env_set(&env, &n_env, spec->envs[i].name, spec->envs[i].value);
  char *payload = malloc(CC_SBX_WIRE_MAX);
  size_t off = 0;
  ok = ok && payload && put(payload, CC_SBX_WIRE_MAX - sizeof(cc_sbx_wire_hdr), &off, cwd) &&
       put(payload, CC_SBX_WIRE_MAX - sizeof(cc_sbx_wire_hdr), &off, spec->cmd);
  for (size_t i = 0; ok && i < spec->n_args; i++)
    ok = spec->args[i] &&
         put(payload, CC_SBX_WIRE_MAX - sizeof(cc_sbx_wire_hdr), &off, spec->args[i]);
  for (size_t i = 0; ok && i < n_env; i++)
    ok = put(payload, CC_SBX_WIRE_MAX - sizeof(cc_sbx_wire_hdr), &off, env[i]);
  if (ok && spec->pty) { /* the window size, as the last string */
    char size[16];
    snprintf(size, sizeof size, "%ux%u", (unsigned)spec->pty_cols, (unsigned)spec->pty_rows);
    ok = put(payload, CC_SBX_WIRE_MAX - sizeof(cc_sbx_wire_hdr), &off, size);
  }
  for (size_t i = 0; i < n_env; i++) free(env[i]);
  free(env);
  if (!ok) {
    free(payload);
    return fail(err, CC_SBX_ERR_INVALID_ARG, E2BIG,
                "command, arguments and environment exceed %d bytes",
                CC_SBX_WIRE_MAX - (int)sizeof(cc_sbx_wire_hdr));
  }

  /* The process record, its pipes (a pty process gets its master from the agent instead) and
   * (optionally) the first subscription. */
  bool stdin_pipe = spec->stdin_pipe && !spec->pty;
  proc *p = calloc(1, sizeof *p);
  int po[2] = {-1, -1}, pe[2] = {-1, -1}, pi[2] = {-1, -1};
  if (!p || (!spec->pty && (pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0)) ||
      (stdin_pipe && pipe2(pi, O_CLOEXEC) != 0)) {
    int e = errno;
    free(payload), free(p);
    int all[] = {po[0], po[1], pe[0], pe[1], pi[0], pi[1]};
    for (int i = 0; i < 6; i++)
      if (all[i] >= 0) close(all[i]);
    return fail(err, CC_SBX_ERR_SYSTEM, e, "cannot create pipes: %s", strerror(e));
  }
  if (po[0] >= 0) fcntl(po[0], F_SETFL, O_NONBLOCK);
  if (pe[0] >= 0) fcntl(pe[0], F_SETFL, O_NONBLOCK);
  if (pi[1] >= 0) fcntl(pi[1], F_SETFL, O_NONBLOCK);
  p->sbx = sbx;
  p->refs = 1; /* ours, until the end of this call */
  p->out = (stream){p, po[0], {TAG_OUT, NULL}, false};
  p->out.t.obj = &p->out;
  p->err = (stream){p, pe[0], {TAG_ERR, NULL}, false};
  p->err.t.obj = &p->err;
  p->in_fd = pi[1];
  pthread_mutex_init(&p->stdin_lock, NULL);
  p->stdin_pipe = stdin_pipe;
  p->pty = spec->pty;
  p->cmd = strdup(spec->cmd);
  p->cwd = xstrdup(spec->cwd);
  p->tag = xstrdup(spec->tag);
  p->args = calloc(spec->n_args + 1, sizeof *p->args);
  p->envs = calloc(spec->n_envs + 1, sizeof *p->envs);
  for (size_t i = 0; p->args && i < spec->n_args; i++)
    p->args[p->n_args++] = xstrdup(spec->args[i]);
  for (size_t i = 0; p->envs && i < spec->n_envs; i++) {
    p->envs[p->n_envs].name = xstrdup(spec->envs[i].name ? spec->envs[i].name : "");
    p->envs[p->n_envs].value = xstrdup(spec->envs[i].value ? spec->envs[i].value : "");
    p->n_envs++;
  }
  if (spec->timeout_ms) p->deadline = now_ms() + spec->timeout_ms;
  cc_sbx_sub *sub = NULL;
  if (subp) sbx_ref(sbx);
  pthread_mutex_lock(&sbx->lock);
  if (subp) sub = sub_new(sbx, p);
  pthread_mutex_unlock(&sbx->lock);
  if (subp && !sub) sbx_unref(sbx);

  cc_sbx_wire_hdr h = {.op = CC_SBX_OP_SPAWN,
                       .a = (int32_t)(1 + spec->n_args),
                       .b = (int32_t)n_env,
                       .flags = stdin_pipe ? 1u : 0u};
  if (spec->pty) h.flags = CC_SBX_SPAWN_PTY;
  int fds[3], nfds = 0;
  if (stdin_pipe) fds[nfds++] = pi[0];
  if (!spec->pty) fds[nfds++] = po[1], fds[nfds++] = pe[1];
  pending pd = {0};
  pd.spawn = p;
  int e = agent_call(sbx, &h, payload, off, fds, nfds, &pd, AGENT_TIMEOUT_MS);
  free(payload);
  for (int i = 0; i < nfds; i++) close(fds[i]);
  cc_status st = CC_OK;
  if (e) {
    st = gone(sbx, err, e);
  } else if (pd.hdr.err) {
    int ae = pd.hdr.err;
    if (pd.hdr.b == CC_SBX_STAGE_CWD)
      st = fail(err, CC_SBX_ERR_INVALID_ARG, ae, "cwd '%s' does not exist", cwd);
    else if (pd.hdr.b == CC_SBX_STAGE_PTY)
      st = fail(err, CC_SBX_ERR_SYSTEM, ae, "error starting pty: %s", strerror(ae));
    else if (pd.hdr.b == CC_SBX_STAGE_FORK)
      st = fail(err, CC_SBX_ERR_LIMIT, ae, "cannot start process: %s", strerror(ae));
    else
      st = fail(err, ae == ENOENT ? CC_SBX_ERR_NOT_FOUND : kind_of_errno(ae), ae, "exec %s: %s",
                spec->cmd, strerror(ae));
    if (pd.hdr.b == CC_SBX_STAGE_PTY && pd.hdr.a > 1) { /* it runs, but we hold no master */
      cc_sbx_wire_hdr k = {.op = CC_SBX_OP_SIGNAL, .a = pd.hdr.a, .b = SIGKILL};
      (void)cc_sbx_wire_send(sbx->sock, &k, NULL, 0, NULL, 0, MSG_DONTWAIT);
    }
  }
  pending_cleanup(&pd);
  if (st != CC_OK) {
    pthread_mutex_lock(&sbx->lock);
    if (sub) {
      p->subs = NULL;
      p->refs--;
    }
    proc_unref(p);
    pthread_mutex_unlock(&sbx->lock);
    if (sub) {
      close(sub->efd);
      while (sub->head) {
        chunk *c = sub->head;
        sub->head = c->next;
        free(c);
      }
      free(sub);
      sbx_unref(sbx);
    }
    return st;
  }
  pthread_mutex_lock(&sbx->lock);
  *pid = p->pid;
  proc_unref(p);
  pthread_mutex_unlock(&sbx->lock);
  if (spec->timeout_ms) wake(rt); /* the I/O thread recomputes its next deadline */
  if (subp) *subp = sub;
  if (err) memset(err, 0, sizeof *err);
  return CC_OK;
}

cc_status cc_sbx_proc_subscribe(cc_sbx *sbx, uint32_t pid, cc_sbx_sub **out, cc_sbx_err *err) {
  *out = NULL;
  sbx_ref(sbx);
  pthread_mutex_lock(&sbx->lock);
  proc *p = find_proc(sbx, pid, false);
  cc_sbx_sub *s = p ? sub_new(sbx, p) : NULL;
  if (s) {
    chunk *c = chunk_new(CC_SBX_EV_START, NULL, 0, 0);
    if (c) sub_push(s, c);
    if (p->ended && (c = chunk_new(CC_SBX_EV_END, NULL, 0, p->wstatus))) {
      s->end_queued = true;
      sub_push(s, c);
    }
  }
  pthread_mutex_unlock(&sbx->lock);
  if (!s) sbx_unref(sbx);
  if (!p) return fail(err, CC_SBX_ERR_NOT_FOUND, ESRCH, "process with pid %u not found", pid);
  if (!s) return fail(err, CC_SBX_ERR_SYSTEM, ENOMEM, "out of memory");
  *out = s;
  return CC_OK;
}

cc_status cc_sbx_proc_find_tag(cc_sbx *sbx, const char *tag, uint32_t *pid) {
  *pid = 0;
  pthread_mutex_lock(&sbx->lock);
  for (proc *p = sbx->procs; tag && p; p = p->next)
    if (p->registered && !p->exited && p->tag && strcmp(p->tag, tag) == 0) *pid = p->pid;
  pthread_mutex_unlock(&sbx->lock);
  return *pid ? CC_OK : CC_NOT_FOUND;
}

static const char *go_signal_name(int sig) {
  switch (sig) {
    case SIGHUP:
      return "hangup";
    case SIGINT:
      return "interrupt";
    case SIGQUIT:
      return "quit";
    case SIGILL:
      return "illegal instruction";
    case SIGTRAP:
      return "trace/breakpoint trap";
    case SIGABRT:
      return "aborted";
    case SIGBUS:
      return "bus error";
    case SIGFPE:
      return "floating point exception";
    case SIGKILL:
      return "killed";
    case SIGUSR1:
      return "user defined signal 1";
    case SIGSEGV:
      return "segmentation fault";
    case SIGUSR2:
      return "user defined signal 2";
    case SIGPIPE:
      return "broken pipe";
    case SIGALRM:
      return "alarm clock";
    case SIGTERM:
      return "terminated";
    case SIGXCPU:
      return "CPU time limit exceeded";
    case SIGXFSZ:
      return "file size limit exceeded";
    case SIGSYS:
      return "bad system call";
    default:
      return NULL;
  }
}

static void fill_end(cc_sbx_event *ev, int ws) {
  if (WIFEXITED(ws)) {
    ev->exited = true;
    ev->exit_code = WEXITSTATUS(ws);
    snprintf(ev->status, sizeof ev->status, "exit status %d", ev->exit_code);
  } else {
    int sig = WIFSIGNALED(ws) ? WTERMSIG(ws) : SIGKILL;
    ev->exited = false;
    ev->exit_code = -1;
    ev->signal = sig;
    const char *n = go_signal_name(sig);
    if (n)
      snprintf(ev->status, sizeof ev->status, "signal: %s%s", n,
               WCOREDUMP(ws) ? " (core dumped)" : "");
    else
      snprintf(ev->status, sizeof ev->status, "signal: signal %d", sig);
  }
}

static void request_kick(cc_sbx_runtime *rt) {
  pthread_mutex_lock(&rt->lock);
  rt->kick = true;
  pthread_mutex_unlock(&rt->lock);
  wake(rt);
}

cc_status cc_sbx_sub_next(cc_sbx_sub *sub, int timeout_ms, cc_sbx_event *ev) {
  cc_sbx *sbx = sub->sbx;
  memset(ev, 0, sizeof *ev);
  uint64_t deadline = timeout_ms > 0 ? now_ms() + (uint64_t)timeout_ms : 0;
  pthread_mutex_lock(&sbx->lock);
  free(sub->current);
  sub->current = NULL;
  for (;;) {
    if (sub->head) {
      chunk *c = sub->head;
      sub->head = c->next;
      if (!sub->head) sub->tail = NULL;
      sub->bytes -= c->len;
      sub->current = c;
      ev->type = c->type;
      ev->pid = sub->p->pid;
      ev->data = c->data;
      ev->len = c->len;
      if (c->type == CC_SBX_EV_END) {
        fill_end(ev, c->wstatus);
        sub->done = true;
      }
      bool kick = sub->p->throttled && has_room(sbx->rt, sub->p);
      pthread_mutex_unlock(&sbx->lock);
      if (kick) request_kick(sbx->rt);
      return CC_OK;
    }
    if (sub->done) {
      pthread_mutex_unlock(&sbx->lock);
      return CC_NOT_FOUND;
    }
    uint64_t v;
    (void)!read(sub->efd, &v, sizeof v); /* reset under the lock: no lost wake-up */
    int wait_ms = timeout_ms < 0 ? -1 : 0;
    if (timeout_ms > 0) {
      uint64_t now = now_ms();
      wait_ms = now >= deadline ? 0 : (int)(deadline - now);
    }
    if (wait_ms == 0) {
      pthread_mutex_unlock(&sbx->lock);
      ev->type = CC_SBX_EV_NONE;
      return CC_OK;
    }
    pthread_mutex_unlock(&sbx->lock);
    struct pollfd pf = {.fd = sub->efd, .events = POLLIN};
    poll(&pf, 1, wait_ms);
    pthread_mutex_lock(&sbx->lock);
  }
}

int cc_sbx_sub_fd(cc_sbx_sub *sub) {
  return sub->efd;
}

void cc_sbx_sub_free(cc_sbx_sub *sub) {
  if (!sub) return;
  cc_sbx *sbx = sub->sbx;
  pthread_mutex_lock(&sbx->lock);
  proc *p = sub->p;
  for (cc_sbx_sub **pp = &p->subs; *pp; pp = &(*pp)->next)
    if (*pp == sub) {
      *pp = sub->next;
      break;
    }
  bool kick = p->throttled;
  proc_unref(p);
  pthread_mutex_unlock(&sbx->lock);
  while (sub->head) {
    chunk *c = sub->head;
    sub->head = c->next;
    free(c);
  }
  free(sub->current);
  close(sub->efd);
  free(sub);
  if (kick) request_kick(sbx->rt);
  sbx_unref(sbx);
}

/* Takes a reference on a running process, or fails with NOT_FOUND. */
static cc_status grab(cc_sbx *sbx, uint32_t pid, proc **out, cc_sbx_err *err) {
  pthread_mutex_lock(&sbx->lock);
  bool dead = sbx->state != ST_READY || sbx->kill_requested;
  proc *p = dead ? NULL : find_proc(sbx, pid, true);
  if (p) p->refs++;
  pthread_mutex_unlock(&sbx->lock);
  *out = p;
  if (dead) return gone(sbx, err, EPIPE);
  if (!p) return fail(err, CC_SBX_ERR_NOT_FOUND, ESRCH, "process with pid %u not found", pid);
  return CC_OK;
}

static void drop(cc_sbx *sbx, proc *p) {
  pthread_mutex_lock(&sbx->lock);
  proc_unref(p);
  pthread_mutex_unlock(&sbx->lock);
}

cc_status cc_sbx_proc_write_stdin(cc_sbx *sbx, uint32_t pid, const void *data, size_t len,
                                  int timeout_ms, cc_sbx_err *err) {
  proc *p;
  cc_status st = grab(sbx, pid, &p, err);
  if (st != CC_OK) return st;
  pthread_mutex_lock(&p->stdin_lock);
  /* A write to a pipe whose reader is gone raises SIGPIPE: block it in this thread and
   * swallow the pending signal, so the server never dies of it. */
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  uint64_t deadline = timeout_ms >= 0 ? now_ms() + (uint64_t)timeout_ms : 0;
  size_t done = 0;
  int e = 0;
  if (p->in_fd < 0) e = -1;
  while (!e && done < len) {
    ssize_t n = write(p->in_fd, (const char *)data + done, len - done);
    if (n > 0) {
      done += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) {
      e = errno;
      break;
    }
    int wait = -1;
    if (timeout_ms >= 0) {
      uint64_t now = now_ms();
      if (now >= deadline) {
        e = ETIMEDOUT;
        break;
      }
      wait = (int)(deadline - now);
    }
    struct pollfd pf = {.fd = p->in_fd, .events = POLLOUT};
    poll(&pf, 1, wait);
  }
  if (e == EPIPE) {
    struct timespec zero = {0, 0};
    sigtimedwait(&pipe_set, NULL, &zero);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_mutex_unlock(&p->stdin_lock);
  drop(sbx, p);
  if (e == -1 || e == EPIPE)
    return fail(err, CC_SBX_ERR_STDIN_CLOSED, EPIPE,
                "error writing to stdin: stdin not enabled or closed");
  if (e == ETIMEDOUT)
    return fail(err, CC_SBX_ERR_TIMEOUT, e, "stdin of pid %u is full (wrote %zu of %zu bytes)", pid,
                done, len);
  if (e) return fail(err, CC_SBX_ERR_SYSTEM, e, "error writing to stdin: %s", strerror(e));
  return CC_OK;
}

cc_status cc_sbx_proc_close_stdin(cc_sbx *sbx, uint32_t pid, cc_sbx_err *err) {
  proc *p;
  cc_status st = grab(sbx, pid, &p, err);
  if (st != CC_OK) return st;
  pthread_mutex_lock(&p->stdin_lock);
  bool had = p->stdin_pipe, pty = p->pty;
  if (p->in_fd >= 0 && !pty) close(p->in_fd), p->in_fd = -1;
  pthread_mutex_unlock(&p->stdin_lock);
  drop(sbx, p);
  if (pty)
    return fail(err, CC_SBX_ERR_INVALID_ARG, ENOTTY,
                "cannot close stdin for PTY process — send Ctrl+D (0x04) instead");
  if (!had) return fail(err, CC_SBX_ERR_STDIN_CLOSED, EPIPE, "stdin not enabled or closed");
  return CC_OK;
}

cc_status cc_sbx_proc_with_tty(cc_sbx *sbx, uint32_t pid, cc_sbx_tty_fn fn, void *ctx,
                               cc_sbx_err *err) {
  proc *p;
  cc_status st = grab(sbx, pid, &p, err);
  if (st != CC_OK) return st;
  /* A pty's in_fd is closed only by proc_free, which our reference holds off. */
  if (p->pty && p->in_fd >= 0)
    st = fn(p->in_fd, ctx, err);
  else
    st = fail(err, CC_SBX_ERR_INVALID_ARG, ENOTTY, "tty not assigned to process");
  drop(sbx, p);
  return st;
}

cc_status cc_sbx_proc_signal(cc_sbx *sbx, uint32_t pid, int sig, cc_sbx_err *err) {
  if (sig < 1 || sig > 64) return fail(err, CC_SBX_ERR_INVALID_ARG, EINVAL, "invalid signal");
  proc *p;
  cc_status st = grab(sbx, pid, &p, err);
  if (st != CC_OK) return st;
  drop(sbx, p);
  cc_sbx_wire_hdr h = {.op = CC_SBX_OP_SIGNAL, .a = (int32_t)pid, .b = sig};
  pending pd = {0};
  int e = agent_call(sbx, &h, NULL, 0, NULL, 0, &pd, AGENT_TIMEOUT_MS);
  int ae = pd.hdr.err;
  pending_cleanup(&pd);
  if (e) return gone(sbx, err, e);
  if (ae == ESRCH)
    return fail(err, CC_SBX_ERR_NOT_FOUND, ESRCH, "process with pid %u not found", pid);
  if (ae)
    return fail(err, kind_of_errno(ae), ae, "signal %d to pid %u: %s", sig, pid, strerror(ae));
  return CC_OK;
}

cc_status cc_sbx_proc_list(cc_sbx *sbx, cc_sbx_proc_info **list, size_t *n) {
  *list = NULL;
  *n = 0;
  pthread_mutex_lock(&sbx->lock);
  size_t c = 0;
  for (proc *p = sbx->procs; p; p = p->next) c += p->registered && !p->exited;
  cc_sbx_proc_info *v = calloc(c + 1, sizeof *v);
  size_t k = c;
  /* The table is newest first; hand it out oldest first. */
  for (proc *p = sbx->procs; v && p; p = p->next) {
    if (!p->registered || p->exited) continue;
    cc_sbx_proc_info *i = &v[--k];
    i->pid = p->pid;
    i->tag = xstrdup(p->tag);
    i->cmd = xstrdup(p->cmd);
    i->cwd = xstrdup(p->cwd);
    i->stdin_pipe = p->stdin_pipe;
    i->args = calloc(p->n_args + 1, sizeof *i->args);
    for (size_t j = 0; i->args && j < p->n_args; j++) i->args[i->n_args++] = xstrdup(p->args[j]);
    i->envs = calloc(p->n_envs + 1, sizeof *i->envs);
    for (size_t j = 0; i->envs && j < p->n_envs; j++) {
      i->envs[j].name = xstrdup(p->envs[j].name);
      i->envs[j].value = xstrdup(p->envs[j].value);
      i->n_envs++;
    }
  }
  pthread_mutex_unlock(&sbx->lock);
  if (!v) return CC_INTERNAL;
  *list = v;
  *n = c;
  return CC_OK;
}

void cc_sbx_proc_list_free(cc_sbx_proc_info *list, size_t n) {
  if (!list) return;
  for (size_t i = 0; i < n; i++) {
    cc_sbx_proc_info *p = &list[i];
    free(p->tag), free(p->cmd), free(p->cwd);
    for (size_t j = 0; j < p->n_args; j++) free(p->args[j]);
    free(p->args);
    for (size_t j = 0; j < p->n_envs; j++)
      free((char *)p->envs[j].name), free((char *)p->envs[j].value);
    free(p->envs);
  }
  free(list);
}

/* ---- ports ------------------------------------------------------------------------------- */

cc_status cc_sbx_connect_port(cc_sbx *sbx, uint16_t port, int *fd, cc_sbx_err *err) {
  *fd = -1;
  if (port == 0) return fail(err, CC_SBX_ERR_INVALID_ARG, EINVAL, "invalid port 0");
  cc_sbx_wire_hdr h = {.op = CC_SBX_OP_CONNECT, .a = port};
  pending pd = {0};
  int e = agent_call(sbx, &h, NULL, 0, NULL, 0, &pd, AGENT_TIMEOUT_MS);
  int ae = pd.hdr.err;
  if (e) {
    pending_cleanup(&pd);
    return gone(sbx, err, e);
  }
  if (ae || pd.fd < 0) {
    pending_cleanup(&pd);
    return fail(err, CC_SBX_ERR_NOT_FOUND, ae ? ae : EPROTO, "port %u not open in sandbox %s: %s",
                port, sbx->id, strerror(ae ? ae : EPROTO));
  }
  *fd = pd.fd;
  pd.fd = -1;
  pending_cleanup(&pd);
  return CC_OK;
}

/* ---- files ------------------------------------------------------------------------------- */

void cc_sbx_entries_free(cc_sbx_entry *list, size_t n) {
  if (!list) return;
  for (size_t i = 0; i < n; i++) cc_sbx_entry_cleanup(&list[i]);
  free(list);
}

/* Runs one file operation in the agent.  path2 only for MOVE. */
static cc_status fs_call(cc_sbx *sbx, uint32_t op, const char *in, const char *in2, int32_t a,
                         int32_t b, char *path, char *path2, pending *pd, cc_sbx_err *err) {
  if (!resolve(in, path, CC_SBX_WIRE_PATH_MAX))
    return fail(err, CC_SBX_ERR_INVALID_PATH, EINVAL,
                "invalid path '%s': '..' components, '~user' and paths over %d bytes are refused",
                in ? in : "", CC_SBX_WIRE_PATH_MAX - 1);
  if (in2 && !resolve(in2, path2, CC_SBX_WIRE_PATH_MAX))
    return fail(err, CC_SBX_ERR_INVALID_PATH, EINVAL, "invalid path '%s'", in2);
  char payload[2 * CC_SBX_WIRE_PATH_MAX + 2];
  size_t off = 0;
  put(payload, sizeof payload, &off, path);
  if (in2) put(payload, sizeof payload, &off, path2);
  cc_sbx_wire_hdr h = {.op = op, .a = a, .b = b};
  int e = agent_call(sbx, &h, payload, off, NULL, 0, pd, AGENT_TIMEOUT_MS);
  if (e) return gone(sbx, err, e);
  return CC_OK;
}

static cc_status entry_reply(pending *pd, cc_sbx_entry *out, cc_sbx_err *err, const char *path) {
  if (!out) return CC_OK;
  size_t off = 0;
  if (!cc_sbx_wire_decode_entry(pd->payload, pd->len, &off, out))
    return fail(err, CC_SBX_ERR_SYSTEM, EPROTO, "cannot stat %s", path);
  return CC_OK;
}

cc_status cc_sbx_fs_stat(cc_sbx *sbx, const char *in, cc_sbx_entry *out, cc_sbx_err *err) {
  char path[CC_SBX_WIRE_PATH_MAX];
  pending pd = {0};
  memset(out, 0, sizeof *out);
  cc_status st = fs_call(sbx, CC_SBX_OP_STAT, in, NULL, 0, 0, path, NULL, &pd, err);
  if (st == CC_OK) {
    int ae = pd.hdr.err;
    if (ae == ENOENT)
      st = fail(err, CC_SBX_ERR_NOT_FOUND, ae, "file not found: %s", path);
    else if (ae)
      st = cc_sbx_err_from_errno(err, ae, "stat", path);
    else
      st = entry_reply(&pd, out, err, path);
  }
  pending_cleanup(&pd);
  return st;
}

cc_status cc_sbx_fs_mkdir(cc_sbx *sbx, const char *in, cc_sbx_entry *out, cc_sbx_err *err) {
  char path[CC_SBX_WIRE_PATH_MAX];
  pending pd = {0};
  if (out) memset(out, 0, sizeof *out);
  cc_status st = fs_call(sbx, CC_SBX_OP_MKDIR, in, NULL, 0, 0, path, NULL, &pd, err);
  if (st == CC_OK) {
    int ae = pd.hdr.err;
    if (ae == EEXIST)
      st = fail(err, CC_SBX_ERR_EXISTS, ae, "directory already exists: %s", path);
    else if (ae == ENOTDIR)
      st = fail(err, CC_SBX_ERR_NOT_DIR, ae, "path already exists but it is not a directory: %s",
                path);
    else if (ae)
      st = cc_sbx_err_from_errno(err, ae, "mkdir", path);
    else
      st = entry_reply(&pd, out, err, path);
  }
  pending_cleanup(&pd);
  return st;
}

cc_status cc_sbx_fs_move(cc_sbx *sbx, const char *src, const char *dst, cc_sbx_entry *out,
                         cc_sbx_err *err) {
  char path[CC_SBX_WIRE_PATH_MAX], path2[CC_SBX_WIRE_PATH_MAX];
  pending pd = {0};
  if (out) memset(out, 0, sizeof *out);
  cc_status st = fs_call(sbx, CC_SBX_OP_MOVE, src, dst ? dst : "", 0, 0, path, path2, &pd, err);
  if (st == CC_OK) {
    int ae = pd.hdr.err;
    if (ae == ENOENT && pd.hdr.a == 1)
      st = fail(err, CC_SBX_ERR_NOT_FOUND, ae, "source file not found: %s", path);
    else if (ae)
      st = cc_sbx_err_from_errno(err, ae, "move", path2);
    else
      st = entry_reply(&pd, out, err, path2);
  }
  pending_cleanup(&pd);
  return st;
}

cc_status cc_sbx_fs_list(cc_sbx *sbx, const char *dir, uint32_t depth, size_t max_entries,
                         cc_sbx_entry **list, size_t *n, cc_sbx_err *err) {
  char path[CC_SBX_WIRE_PATH_MAX];
  pending pd = {0};
  *list = NULL;
  *n = 0;
  if (max_entries == 0 || max_entries > 1000000) max_entries = 100000;
  if (depth == 0) depth = 1;
  if (depth > 64) depth = 64;
  cc_status st = fs_call(sbx, CC_SBX_OP_LIST, dir, NULL, (int32_t)depth, (int32_t)max_entries, path,
                         NULL, &pd, err);
  if (st != CC_OK) goto out;
  int ae = pd.hdr.err;
  if (ae == ENOENT) {
    st = fail(err, CC_SBX_ERR_NOT_FOUND, ae, "path not found: %s", path);
  } else if (ae == ENOTDIR) {
    st = fail(err, CC_SBX_ERR_NOT_DIR, ae, "path is not a directory: %s", path);
  } else if (ae == E2BIG) {
    st = fail(err, CC_SBX_ERR_LIMIT, ae, "directory listing of %s exceeds %zu entries", path,
              max_entries);
  } else if (ae) {
    st = cc_sbx_err_from_errno(err, ae, "list", path);
  } else if (pd.fd < 0 || pd.hdr.a < 0 || (size_t)pd.hdr.a > max_entries) {
    st = fail(err, CC_SBX_ERR_SYSTEM, EPROTO, "bad listing of %s", path);
  } else {
    struct stat sb;
    size_t count = (size_t)pd.hdr.a;
    if (fstat(pd.fd, &sb) != 0 || sb.st_size < 0 || sb.st_size > (64 << 20)) {
      st = fail(err, CC_SBX_ERR_SYSTEM, EPROTO, "bad listing of %s", path);
      goto out;
    }
    size_t len = (size_t)sb.st_size;
    unsigned char *buf = malloc(len ? len : 1);
    cc_sbx_entry *v = calloc(count + 1, sizeof *v);
    size_t got = 0;
    while (buf && got < len) {
      ssize_t k = pread(pd.fd, buf + got, len - got, (off_t)got);
      if (k <= 0) break;
      got += (size_t)k;
    }
    size_t off = 0, i = 0;
    if (buf && v && got == len)
      for (; i < count && cc_sbx_wire_decode_entry(buf, len, &off, &v[i]); i++) {
      }
    free(buf);
    if (!v || i != count) {
      cc_sbx_entries_free(v, i);
      st = fail(err, CC_SBX_ERR_SYSTEM, EPROTO, "bad listing of %s", path);
    } else {
      *list = v;
      *n = count;
    }
  }
out:
  pending_cleanup(&pd);
  return st;
}

cc_status cc_sbx_fs_remove(cc_sbx *sbx, const char *in, cc_sbx_err *err) {
  char path[CC_SBX_WIRE_PATH_MAX];
  pending pd = {0};
  cc_status st = fs_call(sbx, CC_SBX_OP_REMOVE, in, NULL, 0, 0, path, NULL, &pd, err);
  if (st == CC_OK && pd.hdr.err) st = cc_sbx_err_from_errno(err, pd.hdr.err, "remove", path);
  pending_cleanup(&pd);
  return st;
}

static cc_status open_errors(cc_sbx_err *err, int ae, const char *path) {
  if (ae == ENOENT) return fail(err, CC_SBX_ERR_NOT_FOUND, ae, "file not found: %s", path);
  if (ae == EISDIR) return fail(err, CC_SBX_ERR_IS_DIR, ae, "path is a directory: %s", path);
  if (ae == EINVAL) return fail(err, CC_SBX_ERR_INVALID_ARG, ae, "not a regular file: %s", path);
  return cc_sbx_err_from_errno(err, ae, "open", path);
}

cc_status cc_sbx_fs_open_read(cc_sbx *sbx, const char *in, int *fd, int64_t *size,
                              cc_sbx_err *err) {
  char path[CC_SBX_WIRE_PATH_MAX];
  pending pd = {0};
  *fd = -1;
  if (size) *size = 0;
  cc_status st = fs_call(sbx, CC_SBX_OP_OPEN_READ, in, NULL, 0, 0, path, NULL, &pd, err);
  if (st == CC_OK) {
    if (pd.hdr.err) {
      st = open_errors(err, pd.hdr.err, path);
    } else if (pd.fd < 0 || pd.len != sizeof(int64_t)) {
      st = fail(err, CC_SBX_ERR_SYSTEM, EPROTO, "cannot open %s", path);
    } else {
      if (size) memcpy(size, pd.payload, sizeof *size);
      *fd = pd.fd;
      pd.fd = -1;
    }
  }
  pending_cleanup(&pd);
  return st;
}

cc_status cc_sbx_fs_open_write(cc_sbx *sbx, const char *in, int *fd, cc_sbx_err *err) {
  char path[CC_SBX_WIRE_PATH_MAX];
  pending pd = {0};
  *fd = -1;
  cc_status st = fs_call(sbx, CC_SBX_OP_OPEN_WRITE, in, NULL, 0, 0, path, NULL, &pd, err);
  if (st == CC_OK) {
    if (pd.hdr.err)
      st = open_errors(err, pd.hdr.err, path);
    else if (pd.fd < 0)
      st = fail(err, CC_SBX_ERR_SYSTEM, EPROTO, "cannot open %s", path);
    else
      *fd = pd.fd, pd.fd = -1;
  }
  pending_cleanup(&pd);
  return st;
}

cc_status cc_sbx_fs_read_file(cc_sbx *sbx, const char *path, size_t max_bytes, uint8_t **data,
                              size_t *len, cc_sbx_err *err) {
  *data = NULL;
  *len = 0;
  int fd;
  int64_t size;
  cc_status st = cc_sbx_fs_open_read(sbx, path, &fd, &size, err);
  if (st != CC_OK) return st;
  size_t cap = 4096, n = 0;
  uint8_t *buf = malloc(cap + 1);
  for (;;) {
    if (!buf) {
      st = fail(err, CC_SBX_ERR_SYSTEM, ENOMEM, "out of memory");
      break;
    }
    if (n == cap) {
      if (cap > max_bytes) {
        st =
            fail(err, CC_SBX_ERR_LIMIT, EFBIG, "file %s is larger than %zu bytes", path, max_bytes);
        break;
      }
      cap *= 2;
      uint8_t *nb = realloc(buf, cap + 1);
      if (!nb) {
        free(buf);
        buf = NULL;
        continue;
      }
      buf = nb;
    }
    ssize_t k = read(fd, buf + n, cap - n);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) {
      st = cc_sbx_err_from_errno(err, errno, "read", path);
      break;
    }
    if (k == 0) break;
    n += (size_t)k;
    if (n > max_bytes) {
      st = fail(err, CC_SBX_ERR_LIMIT, EFBIG, "file %s is larger than %zu bytes", path, max_bytes);
      break;
    }
  }
  close(fd);
  if (st != CC_OK) {
    free(buf);
    return st;
  }
  buf[n] = 0;
  *data = buf;
  *len = n;
  return CC_OK;
}

cc_status cc_sbx_fs_write_file(cc_sbx *sbx, const char *path, const void *data, size_t len,
                               cc_sbx_err *err) {
  int fd;
  cc_status st = cc_sbx_fs_open_write(sbx, path, &fd, err);
  if (st != CC_OK) return st;
  size_t done = 0;
  while (done < len) {
    ssize_t k = write(fd, (const char *)data + done, len - done);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) {
      st = cc_sbx_err_from_errno(err, errno, "write", path);
      break;
    }
    done += (size_t)k;
  }
  if (close(fd) != 0 && st == CC_OK) st = cc_sbx_err_from_errno(err, errno, "write", path);
  return st;
}
