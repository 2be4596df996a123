/*
 * agent_sudo: `sudo` inside a sandbox, both sides of it, for codecanvas-sandbox-agent (see
 * agent.h): the agent's server (a socket any sandbox process may use, one command per
 * connection, started the way the agent starts every command) and the client that runs when
 * the agent binary, bound over /usr/bin/sudo, is called as sudo.
 *
 * Debian's setuid sudo cannot work inside (its owner, host root, is not mapped, and bwrap sets
 * no_new_privs), so /usr/bin/sudo is this binary again, and it asks the agent — uid 0 of the
 * sandbox with root's capabilities there — to run the command.  The channel is a
 * SOCK_SEQPACKET socket at SUDO_SOCK that any process of the sandbox may use: passwordless
 * root *inside the sandbox*, exactly what E2B's sudo gives its user, and nothing on the host
 * (the agent's root is the sandbox namespace's, with the same seccomp filter and cgroup).
 * Request: one packet {uid, argc, envc} + cwd, argv, env as NUL-terminated strings, with the
 * caller's stdin, stdout and stderr as SCM_RIGHTS; the command runs in a session of its own.
 * Then the caller may send signal numbers (int32: SIGINT, SIGTERM, SIGHUP, SIGQUIT it
 * received), which go to the command's process group; the agent answers once with
 * {kind, value}: kind 1 = wait status, kind 2 = errno of a failed start.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "cc_sbx_wire.h"

#define SUDO_SOCK "/run/cc-sudo"

typedef struct {
  int32_t uid, argc, envc;
} sudo_req;

static int sudo_listen = -1;
static struct {
  int conn; /* -1: free slot */
  pid_t pid; /* 0: request not read yet */
} sudos[AGENT_SUDO_MAX];
static unsigned char sudobuf[CC_SBX_WIRE_MAX];
static int slot_of[1 + AGENT_SUDO_MAX]; /* agent_sudo_pollfds: entry k >= 1 is sudos[slot_of[k]] */

static void sudo_listen_init(void) {
  int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX, .sun_path = SUDO_SOCK};
  if (s < 0) return;
  unlink(SUDO_SOCK);
  if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || chmod(SUDO_SOCK, 0666) != 0 ||
      listen(s, 16) != 0) {
    close(s);
    return;
  }
  sudo_listen = s;
}

static void sudo_answer(int i, int32_t kind, int32_t value) {
  int32_t m[2] = {kind, value};
  (void)!send(sudos[i].conn, m, sizeof m, MSG_NOSIGNAL | MSG_DONTWAIT);
  close(sudos[i].conn);
  sudos[i].conn = -1;
  sudos[i].pid = 0;
}

static void sudo_accept(void) {
  int c = accept4(sudo_listen, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (c < 0) return;
  for (int i = 0; i < AGENT_SUDO_MAX; i++)
    if (sudos[i].conn < 0 && sudos[i].pid == 0) {
      sudos[i].conn = c;
      return;
    }
  int32_t m[2] = {2, EAGAIN};
  (void)!send(c, m, sizeof m, MSG_NOSIGNAL | MSG_DONTWAIT);
  close(c);
}

/* The request on slot i (readable): starts the command, or answers the error. */
static void sudo_start(int i) {
  union {
    char buf[CMSG_SPACE(sizeof(int) * 3)];
    struct cmsghdr align;
  } u;
  struct iovec iov = {sudobuf, sizeof sudobuf - 1};
  struct msghdr m = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  ssize_t n = recvmsg(sudos[i].conn, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  int fds[3], nfds = 0;
  for (struct cmsghdr *c = n >= 0 ? CMSG_FIRSTHDR(&m) : NULL; c; c = CMSG_NXTHDR(&m, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      for (int j = 0; j < k; j++) {
        int fd;
        memcpy(&fd, CMSG_DATA(c) + j * sizeof(int), sizeof(int));
        if (nfds < 3) fds[nfds++] = fd;
        else close(fd);
      }
    }
  sudo_req rq;
  int err = EINVAL;
  char **strs = NULL, **envp = NULL;
  if (n < (ssize_t)sizeof rq || nfds != 3 || (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) goto fail;
  memcpy(&rq, sudobuf, sizeof rq);
  if ((rq.uid != 0 && rq.uid != 1000) || rq.argc < 1 || rq.argc > 4096 || rq.envc < 0 ||
      rq.envc > 4096)
    goto fail;
  char *p = (char *)sudobuf + sizeof rq;
  size_t len = (size_t)n - sizeof rq;
  p[len] = 0;
  int want = 1 + rq.argc + rq.envc;
  strs = calloc((size_t)want + 2, sizeof *strs);
  envp = calloc((size_t)rq.envc + 1, sizeof *envp);
  if (!strs || !envp) {
    err = ENOMEM;
    goto fail;
  }
  if (agent_split(p, len, strs, want) != want) goto fail;
  memcpy(envp, strs + 1 + rq.argc, sizeof(char *) * (size_t)rq.envc);
  char **av = strs + 1;
  strs[1 + rq.argc] = NULL; /* av's terminator; that string is envp[0] now */
  spawn_args a = {.av = av,
                  .envp = envp,
                  .cwd = strs[0],
                  .in = fds[0],
                  .out = fds[1],
                  .err_fd = fds[2],
                  .slave = -1,
                  .as_user = rq.uid == 1000};
  pid_t pid = agent_spawn(&a);
  err = a.err;
  if (pid < 0 || a.err) goto fail;
  sudos[i].pid = pid;
  for (int j = 0; j < nfds; j++) close(fds[j]);
  free(strs), free(envp);
  return;
fail:
  for (int j = 0; j < nfds; j++) close(fds[j]);
  free(strs), free(envp);
  sudo_answer(i, 2, err);
}

/* A signal number from the caller of a running command (or its end). */
static void sudo_signal(int i) {
  int32_t sig;
  ssize_t n = recv(sudos[i].conn, &sig, sizeof sig, MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n == (ssize_t)sizeof sig) {
    if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGQUIT)
      kill(-sudos[i].pid, sig), kill(sudos[i].pid, sig);
    return;
  }
  /* the caller is gone: the command goes on (as with sudo), nobody to answer */
  close(sudos[i].conn);
  sudos[i].conn = -1;
}

/* pid ended with status st: answers its caller.  true when it was a sudo command. */
int agent_sudo_reaped(pid_t pid, int st) {
  for (int i = 0; i < AGENT_SUDO_MAX; i++)
    if (sudos[i].pid == pid) {
      if (sudos[i].conn >= 0) sudo_answer(i, 1, st);
      sudos[i].pid = 0;
      return 1;
    }
  return 0;
}

void agent_sudo_init(int listen_too) {
  for (int i = 0; i < AGENT_SUDO_MAX; i++) sudos[i].conn = -1;
  if (listen_too) sudo_listen_init();
}

int agent_sudo_pollfds(struct pollfd *pf) {
  pf[0] = (struct pollfd){.fd = sudo_listen, .events = POLLIN}; /* -1: ignored by poll */
  int n = 1;
  for (int i = 0; i < AGENT_SUDO_MAX; i++)
    if (sudos[i].conn >= 0)
      slot_of[n] = i, pf[n++] = (struct pollfd){.fd = sudos[i].conn, .events = POLLIN};
  return n;
}

void agent_sudo_serve(const struct pollfd *pf, int n) {
  for (int k = 1; k < n; k++)
    if (pf[k].revents && sudos[slot_of[k]].conn == pf[k].fd) {
      if (sudos[slot_of[k]].pid == 0) sudo_start(slot_of[k]);
      else sudo_signal(slot_of[k]);
    }
  if (n > 0 && (pf[0].revents & POLLIN)) sudo_accept();
}

/* The caller's side: `sudo [-u USER] [-g G] [-E] [-H] [-n] [-i | -s] [--] [COMMAND [ARG...]]`.
 * The only users are root (0) and user (1000): the sandbox's namespace maps no other uid. */
static volatile sig_atomic_t got_signal;
static void on_signal(int sig) { got_signal = sig; }

int agent_sudo_main(int argc, char **argv) {
  int uid = 0, login = 0, shell = 0, i = 1;
  for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
    const char *o = argv[i];
    if (!strcmp(o, "--")) {
      i++;
      break;
    }
    if (!strcmp(o, "-u") || !strcmp(o, "-g") || !strcmp(o, "--user") || !strcmp(o, "--group")) {
      if (i + 1 >= argc) goto usage;
      const char *v = argv[++i];
      if (o[1] == 'g' || !strcmp(o, "--group")) continue; /* the group follows the user */
      if (!strcmp(v, "root") || !strcmp(v, "0") || !strcmp(v, "#0"))
        uid = 0;
      else if (!strcmp(v, "user") || !strcmp(v, "1000") || !strcmp(v, "#1000"))
        uid = 1000;
      else {
        fprintf(stderr, "sudo: unknown user %s\n", v);
        return 1;
      }
      continue;
    }
    if (!strcmp(o, "-v") || !strcmp(o, "-k") || !strcmp(o, "-K")) return 0;
    for (const char *c = o + 1; *c; c++) {
      if (*c == 'i') login = 1;
      else if (*c == 's') shell = 1;
      else if (!strchr("EHnSAPb", *c)) goto usage;
    }
  }
  if (i >= argc && !login && !shell) goto usage;
  const char *home = uid ? "/home/user" : "/root", *name = uid ? "user" : "root";
  char num[16];
  snprintf(num, sizeof num, "%u", (unsigned)getuid());
  setenv("SUDO_USER", getuid() == 1000 ? "user" : "root", 1);
  setenv("SUDO_UID", num, 1);
  setenv("SUDO_GID", num, 1);
  setenv("HOME", home, 1);
  setenv("USER", name, 1);
  setenv("LOGNAME", name, 1);
  if (!uid) setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
  /* the command line: as given, or bash (-s) / a login bash (-i) running the words joined */
  char cwd[CC_SBX_WIRE_PATH_MAX];
  if (login) snprintf(cwd, sizeof cwd, "%s", home);
  else if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, "/");
  char *shv[4] = {"/bin/bash", login ? "-l" : NULL, NULL, NULL};
  char **av = argv + i;
  int ac = argc - i;
  char *joined = NULL;
  if (login || shell) {
    size_t len = 1;
    for (int k = i; k < argc; k++) len += strlen(argv[k]) + 1;
    joined = calloc(len, 1);
    if (!joined) return 1;
    for (int k = i; k < argc; k++) strcat(strcat(joined, argv[k]), k + 1 < argc ? " " : "");
    int n = login ? 2 : 1;
    if (i < argc) shv[n++] = "-c", shv[n++] = joined;
    av = shv;
    ac = n;
  }
  extern char **environ;
  int envc = 0;
  while (environ[envc]) envc++;
  sudo_req rq = {.uid = uid, .argc = ac, .envc = envc};
  size_t off = sizeof rq;
  memcpy(sudobuf, &rq, sizeof rq);
  int fits = 1;
  const char *one[] = {cwd};
  for (int k = 0; fits && k < 1 + ac + envc; k++) {
    const char *str = k == 0 ? one[0] : k <= ac ? av[k - 1] : environ[k - 1 - ac];
    size_t l = strlen(str) + 1;
    if (off + l > sizeof sudobuf - 1) fits = 0;
    else memcpy(sudobuf + off, str, l), off += l;
  }
  if (!fits) {
    fprintf(stderr, "sudo: command line and environment too long\n");
    return 1;
  }
  int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX, .sun_path = SUDO_SOCK};
  if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
    fprintf(stderr, "sudo: cannot reach the sandbox agent: %s\n", strerror(errno));
    return 1;
  }
  int fds[3] = {0, 1, 2};
  union {
    char buf[CMSG_SPACE(sizeof fds)];
    struct cmsghdr align;
  } u;
  memset(&u, 0, sizeof u);
  struct iovec iov = {sudobuf, off};
  struct msghdr m = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof fds);
  memcpy(CMSG_DATA(c), fds, sizeof fds);
  if (sendmsg(s, &m, MSG_NOSIGNAL) < 0) {
    fprintf(stderr, "sudo: %s\n", strerror(errno));
    return 1;
  }
  struct sigaction sa = {.sa_handler = on_signal};
  const int fwd[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
  for (int k = 0; k < 4; k++) sigaction(fwd[k], &sa, NULL);
  int32_t ans[2];
  for (;;) {
    ssize_t n = recv(s, ans, sizeof ans, 0);
    if (n == (ssize_t)sizeof ans) break;
    if (n < 0 && errno == EINTR) {
      int32_t sig = got_signal;
      got_signal = 0;
      if (sig) (void)!send(s, &sig, sizeof sig, MSG_NOSIGNAL);
      continue;
    }
    fprintf(stderr, "sudo: the sandbox agent went away\n");
    return 1;
  }
  if (ans[0] == 2) {
    fprintf(stderr, "sudo: %s: %s\n", av[0], strerror(ans[1]));
    return ans[1] == ENOENT ? 127 : 126;
  }
  if (WIFSIGNALED(ans[1])) return 128 + WTERMSIG(ans[1]);
  return WEXITSTATUS(ans[1]);
usage:
  fprintf(stderr, "usage: sudo [-u user] [-E] [-H] [-n] [-i | -s] [--] command [arg ...]\n");
  return 1;
}
