/*
 * cc_sbx_proc: processes in a sandbox and subscriptions to their output (see cc_sbx.h
 * "Processes").
 *
 * A process is started by one SPAWN request to the agent; the I/O thread (cc_sbx_io.c)
 * registers it in the sandbox's table when the reply arrives, reads its output into the
 * queues of its subscriptions and marks its end.  This file is the callers' side: it builds
 * the request, hands out queued events (cc_sbx_sub_next), writes stdin, lends a pty master
 * to cc_sbx_pty.c, sends signals and lists the table.  Exit statuses are reported in
 * envd's words ("exit status 1", "signal: killed").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cc_sbx_priv.h"

static char *xstrdup(const char *s) {
  return s ? strdup(s) : NULL;
}

/* A subscription on p.  The caller holds the sandbox lock and has already taken the sandbox
 * reference the subscription keeps (cc_sbx_ref needs rt->lock, which must never be taken while
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

cc_status cc_sbx_proc_start(cc_sbx *sbx, const cc_sbx_proc_spec *spec, uint32_t *pid,
                            cc_sbx_sub **subp, cc_sbx_err *err) {
  cc_sbx_runtime *rt = sbx->rt;
  *pid = 0;
  if (subp) *subp = NULL;
  if (!spec || !spec->cmd || !spec->cmd[0] || (spec->n_args && !spec->args) ||
      (spec->n_envs && !spec->envs))
    return cc_sbx_fail(err, CC_SBX_ERR_INVALID_ARG, EINVAL, "cmd is required");
  char cwd[CC_SBX_WIRE_PATH_MAX];
  bool root = spec && spec->as_root && rt->info.root_inside;
  if (!cc_sbx_resolve_path(spec->cwd, root, cwd, sizeof cwd))
    return cc_sbx_fail(err, CC_SBX_ERR_INVALID_PATH, EINVAL, "invalid cwd '%s'", spec->cwd);
  pthread_mutex_lock(&sbx->lock);
  size_t running = 0;
  for (proc *q = sbx->procs; q; q = q->next) running += !q->exited;
  pthread_mutex_unlock(&sbx->lock);
  if (running >= rt->cfg.max_procs)
    return cc_sbx_fail(err, CC_SBX_ERR_LIMIT, EAGAIN, "too many processes (%u)", rt->cfg.max_procs);

  /* The environment, in envd order, and the SPAWN payload. */
  char **env = NULL;
  size_t n_env = 0;
  bool ok = true;
  for (size_t i = 0; ok && i < sbx->n_base; i++) {
    char *eq = strchr(sbx->base_env[i], '=');
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(eq - sbx->base_env[i]), sbx->base_env[i]);
    ok = cc_sbx_env_set(&env, &n_env, name, eq + 1);
  }
  if (ok && root)
    ok = cc_sbx_env_set(&env, &n_env, "HOME", "/root") &&
         cc_sbx_env_set(&env, &n_env, "USER", "root") &&
         cc_sbx_env_set(&env, &n_env, "LOGNAME", "root");
  if (ok && spec->pty) ok = cc_sbx_env_set(&env, &n_env, "TERM", "xterm-256color");
  for (size_t i = 0; ok && i < spec->n_envs; i++)
    if (spec->envs[i].name && spec->envs[i].value)
      ok = cc_sbx_env_set(&env, &n_env, spec->envs[i].name, spec->envs[i].value);
  char *payload = malloc(CC_SBX_WIRE_MAX);
  size_t off = 0;
  ok = ok && payload &&
       cc_sbx_put_str(payload, CC_SBX_WIRE_MAX - sizeof(cc_sbx_wire_hdr), &off, cwd) &&
       cc_sbx_put_str(payload, CC_SBX_WIRE_MAX - sizeof(cc_sbx_wire_hdr), &off, spec->cmd);
  for (size_t i = 0; ok && i < spec->n_args; i++)
    ok = spec->args[i] &&
         cc_sbx_put_str(payload, CC_SBX_WIRE_MAX - sizeof(cc_sbx_wire_hdr), &off, spec->args[i]);
  for (size_t i = 0; ok && i < n_env; i++)
    ok = cc_sbx_put_str(payload, CC_SBX_WIRE_MAX - sizeof(cc_sbx_wire_hdr), &off, env[i]);
  if (ok && spec->pty) { /* the window size, as the last string */
    char size[16];
    snprintf(size, sizeof size, "%ux%u", (unsigned)spec->pty_cols, (unsigned)spec->pty_rows);
    ok = cc_sbx_put_str(payload, CC_SBX_WIRE_MAX - sizeof(cc_sbx_wire_hdr), &off, size);
  }
  for (size_t i = 0; i < n_env; i++) free(env[i]);
  free(env);
  if (!ok) {
    free(payload);
    return cc_sbx_fail(err, CC_SBX_ERR_INVALID_ARG, E2BIG,
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
    return cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, e, "cannot create pipes: %s", strerror(e));
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
  if (spec->timeout_ms) p->deadline = cc_sbx_now_ms() + spec->timeout_ms;
  cc_sbx_sub *sub = NULL;
  if (subp) cc_sbx_ref(sbx);
  pthread_mutex_lock(&sbx->lock);
  if (subp) sub = sub_new(sbx, p);
  pthread_mutex_unlock(&sbx->lock);
  if (subp && !sub) cc_sbx_unref(sbx);

  cc_sbx_wire_hdr h = {.op = CC_SBX_OP_SPAWN,
                       .a = (int32_t)(1 + spec->n_args),
                       .b = (int32_t)n_env,
                       .flags = stdin_pipe ? 1u : 0u};
  if (spec->pty) h.flags = CC_SBX_SPAWN_PTY;
  if (root) h.flags |= CC_SBX_AS_ROOT;
  int fds[3], nfds = 0;
  if (stdin_pipe) fds[nfds++] = pi[0];
  if (!spec->pty) fds[nfds++] = po[1], fds[nfds++] = pe[1];
  pending pd = {0};
  pd.spawn = p;
  int e = cc_sbx_agent_call(sbx, &h, payload, off, fds, nfds, &pd, CC_SBX_AGENT_TIMEOUT_MS);
  free(payload);
  for (int i = 0; i < nfds; i++) close(fds[i]);
  cc_status st = CC_OK;
  if (e) {
    st = cc_sbx_gone(sbx, err, e);
  } else if (pd.hdr.err) {
    int ae = pd.hdr.err;
    if (pd.hdr.b == CC_SBX_STAGE_CWD)
      st = cc_sbx_fail(err, CC_SBX_ERR_INVALID_ARG, ae, "cwd '%s' does not exist", cwd);
    else if (pd.hdr.b == CC_SBX_STAGE_PTY)
      st = cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, ae, "error starting pty: %s", strerror(ae));
    else if (pd.hdr.b == CC_SBX_STAGE_FORK)
      st = cc_sbx_fail(err, CC_SBX_ERR_LIMIT, ae, "cannot start process: %s", strerror(ae));
    else
      st = cc_sbx_fail(err, ae == ENOENT ? CC_SBX_ERR_NOT_FOUND : cc_sbx_errno_kind(ae), ae,
                       "exec %s: %s", spec->cmd, strerror(ae));
    if (pd.hdr.b == CC_SBX_STAGE_PTY && pd.hdr.a > 1) { /* it runs, but we hold no master */
      cc_sbx_wire_hdr k = {.op = CC_SBX_OP_SIGNAL, .a = pd.hdr.a, .b = SIGKILL};
      (void)cc_sbx_wire_send(sbx->sock, &k, NULL, 0, NULL, 0, MSG_DONTWAIT);
    }
  }
  cc_sbx_pending_cleanup(&pd);
  if (st != CC_OK) {
    pthread_mutex_lock(&sbx->lock);
    if (sub) {
      p->subs = NULL;
      p->refs--;
    }
    cc_sbx_proc_unref(p);
    pthread_mutex_unlock(&sbx->lock);
    if (sub) {
      close(sub->efd);
      while (sub->head) {
        chunk *c = sub->head;
        sub->head = c->next;
        free(c);
      }
      free(sub);
      cc_sbx_unref(sbx);
    }
    return st;
  }
  pthread_mutex_lock(&sbx->lock);
  *pid = p->pid;
  cc_sbx_proc_unref(p);
  pthread_mutex_unlock(&sbx->lock);
  if (spec->timeout_ms) cc_sbx_wake(rt); /* the I/O thread recomputes its next deadline */
  if (subp) *subp = sub;
  if (err) memset(err, 0, sizeof *err);
  return CC_OK;
}

cc_status cc_sbx_proc_subscribe(cc_sbx *sbx, uint32_t pid, cc_sbx_sub **out, cc_sbx_err *err) {
  *out = NULL;
  cc_sbx_ref(sbx);
  pthread_mutex_lock(&sbx->lock);
  proc *p = cc_sbx_find_proc(sbx, pid, false);
  cc_sbx_sub *s = p ? sub_new(sbx, p) : NULL;
  if (s) {
    chunk *c = cc_sbx_chunk_new(CC_SBX_EV_START, NULL, 0, 0);
    if (c) cc_sbx_sub_push(s, c);
    if (p->ended && (c = cc_sbx_chunk_new(CC_SBX_EV_END, NULL, 0, p->wstatus))) {
      s->end_queued = true;
      cc_sbx_sub_push(s, c);
    }
  }
  pthread_mutex_unlock(&sbx->lock);
  if (!s) cc_sbx_unref(sbx);
  if (!p)
    return cc_sbx_fail(err, CC_SBX_ERR_NOT_FOUND, ESRCH, "process with pid %u not found", pid);
  if (!s) return cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, ENOMEM, "out of memory");
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
  cc_sbx_wake(rt);
}

cc_status cc_sbx_sub_next(cc_sbx_sub *sub, int timeout_ms, cc_sbx_event *ev) {
  cc_sbx *sbx = sub->sbx;
  memset(ev, 0, sizeof *ev);
  uint64_t deadline = timeout_ms > 0 ? cc_sbx_now_ms() + (uint64_t)timeout_ms : 0;
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
        ev->sandbox_gone = sub->p->gone;
        sub->done = true;
      }
      bool kick = sub->p->throttled && cc_sbx_has_room(sbx->rt, sub->p);
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
      uint64_t now = cc_sbx_now_ms();
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
  cc_sbx_proc_unref(p);
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
  cc_sbx_unref(sbx);
}

/* Takes a reference on a running process, or fails with NOT_FOUND. */
static cc_status grab(cc_sbx *sbx, uint32_t pid, proc **out, cc_sbx_err *err) {
  pthread_mutex_lock(&sbx->lock);
  bool dead = sbx->state != ST_READY || sbx->kill_requested;
  proc *p = dead ? NULL : cc_sbx_find_proc(sbx, pid, true);
  if (p) p->refs++;
  pthread_mutex_unlock(&sbx->lock);
  *out = p;
  if (dead) return cc_sbx_gone(sbx, err, EPIPE);
  if (!p)
    return cc_sbx_fail(err, CC_SBX_ERR_NOT_FOUND, ESRCH, "process with pid %u not found", pid);
  return CC_OK;
}

static void drop(cc_sbx *sbx, proc *p) {
  pthread_mutex_lock(&sbx->lock);
  cc_sbx_proc_unref(p);
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
  uint64_t deadline = timeout_ms >= 0 ? cc_sbx_now_ms() + (uint64_t)timeout_ms : 0;
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
      uint64_t now = cc_sbx_now_ms();
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
    return cc_sbx_fail(err, CC_SBX_ERR_STDIN_CLOSED, EPIPE,
                       "error writing to stdin: stdin not enabled or closed");
  if (e == ETIMEDOUT)
    return cc_sbx_fail(err, CC_SBX_ERR_TIMEOUT, e,
                       "stdin of pid %u is full (wrote %zu of %zu bytes)", pid, done, len);
  if (e) return cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, e, "error writing to stdin: %s", strerror(e));
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
    return cc_sbx_fail(err, CC_SBX_ERR_INVALID_ARG, ENOTTY,
                       "cannot close stdin for PTY process — send Ctrl+D (0x04) instead");
  if (!had) return cc_sbx_fail(err, CC_SBX_ERR_STDIN_CLOSED, EPIPE, "stdin not enabled or closed");
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
    st = cc_sbx_fail(err, CC_SBX_ERR_INVALID_ARG, ENOTTY, "tty not assigned to process");
  drop(sbx, p);
  return st;
}

cc_status cc_sbx_proc_signal(cc_sbx *sbx, uint32_t pid, int sig, cc_sbx_err *err) {
  if (sig < 1 || sig > 64)
    return cc_sbx_fail(err, CC_SBX_ERR_INVALID_ARG, EINVAL, "invalid signal");
  proc *p;
  cc_status st = grab(sbx, pid, &p, err);
  if (st != CC_OK) return st;
  drop(sbx, p);
  cc_sbx_wire_hdr h = {.op = CC_SBX_OP_SIGNAL, .a = (int32_t)pid, .b = sig};
  pending pd = {0};
  int e = cc_sbx_agent_call(sbx, &h, NULL, 0, NULL, 0, &pd, CC_SBX_AGENT_TIMEOUT_MS);
  int ae = pd.hdr.err;
  cc_sbx_pending_cleanup(&pd);
  if (e) return cc_sbx_gone(sbx, err, e);
  if (ae == ESRCH)
    return cc_sbx_fail(err, CC_SBX_ERR_NOT_FOUND, ESRCH, "process with pid %u not found", pid);
  if (ae)
    return cc_sbx_fail(err, cc_sbx_errno_kind(ae), ae, "signal %d to pid %u: %s", sig, pid,
                       strerror(ae));
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
