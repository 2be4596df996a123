/*
 * codecanvas-sandbox-agent: PID 1 inside every sandbox.
 *
 * Started by bubblewrap (--as-pid-1) as uid 1000, or as uid 0 of the sandbox's namespace
 * where the runtime has a root inside (then it runs "user" commands and file operations as
 * uid 1000 and serves `sudo`, see below), with the host socket on fd 3 (see cc_sbx_wire.h).
 * Called as `sudo` (the same binary bound over /usr/bin/sudo) it is sudo's client side; both
 * sides of sudo are agent_sudo.c.
 * It serves the host's requests one at a time: spawn a process on the pipe fds it was sent
 * or on a pseudo-terminal it opens (in the sandbox's own devpts, so the process sees
 * /dev/pts/N; the master goes to the host), signal a process group it spawned,
 * open/stat/list/move/remove files, and connect to a port on the sandbox's loopback.  It
 * reaps every child (it is init) and reports the exits of the processes it spawned.  When the
 * host socket closes it exits, and with it (PID-namespace init) every process of the sandbox.
 *
 * Everything runs in the sandbox's view and with the requesting user's rights, so the host never
 * resolves a sandbox path itself.  The agent itself is not dumpable (sandbox processes of the
 * same uid cannot ptrace it) and ignores every signal it can (it is init of its PID namespace,
 * so only the host can kill it).  It is deliberately small, single-threaded and built without
 * sanitizers (see CMakeLists.txt).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <grp.h>
#include <sys/fsuid.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "agent.h"
#include "cc_sbx.h"
#include "cc_sbx_wire.h"

#define SOCK CC_SBX_WIRE_SOCK_FD
#define MAX_TRACKED 4096

static unsigned char inbuf[CC_SBX_WIRE_MAX];
static unsigned char outbuf[CC_SBX_WIRE_MAX];
static pid_t tracked[MAX_TRACKED]; /* pids spawned on request (0 = free slot) */
static int is_root; /* started as uid 0 of the sandbox's namespace (the runtime's root_inside) */

static void reply(uint32_t id, int err, int a, int b, const void *p, size_t len, int fd) {
  if (id == 0) return;
  cc_sbx_wire_hdr h = {.op = CC_SBX_OP_REPLY, .id = id, .err = err, .a = a, .b = b};
  if (cc_sbx_wire_send(SOCK, &h, p, len, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0, 0)) _exit(0);
}

/* ---- processes ------------------------------------------------------------------------ */

static void track(pid_t pid) {
  for (int i = 0; i < MAX_TRACKED; i++)
    if (tracked[i] == 0) {
      tracked[i] = pid;
      return;
    }
}

static int tracked_full(void) {
  for (int i = 0; i < MAX_TRACKED; i++)
    if (tracked[i] == 0) return 0;
  return 1;
}

static int untrack(pid_t pid) {
  for (int i = 0; i < MAX_TRACKED; i++)
    if (tracked[i] == pid) {
      tracked[i] = 0;
      return 1;
    }
  return 0;
}

static int is_tracked(pid_t pid) {
  for (int i = 0; i < MAX_TRACKED; i++)
    if (tracked[i] == pid) return 1;
  return 0;
}

static void reap(void) {
  int st;
  pid_t p;
  while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
    if (agent_sudo_reaped(p, st)) continue;
    if (untrack(p)) {
      cc_sbx_wire_hdr h = {.op = CC_SBX_OP_EXIT, .a = p, .b = st};
      if (cc_sbx_wire_send(SOCK, &h, NULL, 0, NULL, 0, 0)) _exit(0);
    }
  }
}

/* Splits a payload into n NUL-terminated strings; returns the number found or -1. */
int agent_split(char *p, size_t len, char **out, int max) {
  int n = 0;
  size_t i = 0;
  while (i < len && n < max) {
    char *s = p + i;
    char *z = memchr(s, 0, len - i);
    if (!z) return -1;
    out[n++] = s;
    i = (size_t)(z - p) + 1;
  }
  return n;
}

/* Parses "COLSxROWS" (decimal, each 0..65535) into ws. */
static int parse_size(const char *s, struct winsize *ws) {
  unsigned long v[2];
  for (int i = 0; i < 2; i++) {
    char *end;
    if (*s < '0' || *s > '9') return -1;
    errno = 0;
    v[i] = strtoul(s, &end, 10);
    if (errno || v[i] > 65535 || *end != (i == 0 ? 'x' : 0)) return -1;
    s = end + 1;
  }
  memset(ws, 0, sizeof *ws);
  ws->ws_col = (unsigned short)v[0];
  ws->ws_row = (unsigned short)v[1];
  return 0;
}

/* Opens a pseudo-terminal pair in the sandbox's devpts instance, both ends CLOEXEC and
 * neither our controlling terminal (O_NOCTTY), with window size ws.  Returns 0 with *master
 * and *slave open, or an errno with both closed. */
static int open_pty(const struct winsize *ws, int *master, int *slave) {
  *master = *slave = -1;
  int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (m < 0) return errno;
  int s = -1;
  if (grantpt(m) != 0 || unlockpt(m) != 0) goto fail;
  /* Open the peer through the master (no path lookup); ptsname for kernels before 4.13. */
  s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (s < 0) {
    char name[64];
    if (ptsname_r(m, name, sizeof name) != 0) goto fail;
    s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0) goto fail;
  }
  if (ioctl(m, TIOCSWINSZ, ws) != 0) goto fail;
  *master = m;
  *slave = s;
  return 0;
fail:;
  int e = errno ? errno : EIO;
  if (s >= 0) close(s);
  close(m);
  return e;
}

/* File operations of a request for uid 1000 are made with that uid's file-system identity
 * (setfsuid drops the file capabilities too); as_fs_root restores root's after the request. */
static void as_fs_user(const cc_sbx_wire_hdr *h) {
  if (!is_root || (h->flags & (CC_SBX_AS_ROOT | CC_SBX_GIVE_USER))) return;
  setfsgid(1000);
  setfsuid(1000);
}

static void as_fs_root(void) {
  if (!is_root) return;
  setfsuid(0);
  setfsgid(0);
}


/* 256 KiB: execvpe may put a PATH entry and, for a script, argc + 2 pointers on the stack. */
static char spawn_stack[256 * 1024] __attribute__((aligned(16)));

/* uid/gid 1000 with no supplementary groups; the change of uid clears every capability.  Raw
 * system calls: it runs in the spawned child, which shares our memory.  0, or -1 with errno. */
static int drop_to_user(void) {
  if (syscall(SYS_setgroups, 0, NULL) != 0 || syscall(SYS_setresgid, 1000, 1000, 1000) != 0 ||
      syscall(SYS_setresuid, 1000, 1000, 1000) != 0)
    return -1;
  return 0;
}

/* The child: default signal handling, its own session, stdio, cwd, then exec.  Only system
 * call wrappers here (no allocation, no stdio): it runs in our address space. */
static int spawn_child(void *arg) {
  spawn_args *a = arg;
  sigset_t none;
  sigemptyset(&none);
  for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);
  sigprocmask(SIG_SETMASK, &none, NULL);
  setsid(); /* its own session and process group: kill -STOP 0 stops only this command */
  if (a->as_user && drop_to_user() != 0) goto fail;
  int in = a->in;
  /* A pty becomes the controlling terminal of that session (Ctrl-C, job control). */
  if (a->slave >= 0 && ioctl(a->slave, TIOCSCTTY, 0) != 0) goto fail;
  if (in < 0) in = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (in < 0 || dup2(in, 0) < 0 || dup2(a->out, 1) < 0 || dup2(a->err_fd, 2) < 0) goto fail;
  /* Close everything else (the host socket, other commands' fds). */
  syscall(SYS_close_range, 3, ~0u, 0);
  if (chdir(a->cwd) != 0) goto fail;
  execvpe(a->av[0], a->av, a->envp);
fail:
  a->err = errno ? errno : ENOEXEC;
  _exit(127);
}

pid_t agent_spawn(spawn_args *a) {
  a->err = 0;
  pid_t pid =
      clone(spawn_child, spawn_stack + sizeof spawn_stack, CLONE_VM | CLONE_VFORK | SIGCHLD, a);
  if (pid < 0) a->err = errno;
  return pid;
}

static void do_spawn(const cc_sbx_wire_hdr *h, char *p, size_t len, int *fds, int nfds) {
  int want_pty = (h->flags & CC_SBX_SPAWN_PTY) != 0;
  int want_stdin = !want_pty && (h->flags & 1);
  int argc = h->a, envc = h->b;
  int in = -1, out = -1, err_fd = -1, master = -1, slave = -1;
  int nfds_want = want_pty ? 0 : want_stdin ? 3 : 2;
  if (nfds != nfds_want || argc < 1 || envc < 0 || argc > 4096 || envc > 4096) {
    reply(h->id, EINVAL, 0, CC_SBX_STAGE_EXEC, NULL, 0, -1);
    return;
  }
  if (tracked_full()) { /* every exit must be reportable */
    reply(h->id, EAGAIN, 0, CC_SBX_STAGE_FORK, NULL, 0, -1);
    return;
  }
  if (!want_pty) {
    if (want_stdin) in = fds[0];
    out = fds[want_stdin ? 1 : 0];
    err_fd = fds[want_stdin ? 2 : 1];
  }
  char **strs = calloc((size_t)argc + (size_t)envc + 3, sizeof(char *));
  if (!strs) {
    reply(h->id, ENOMEM, 0, CC_SBX_STAGE_FORK, NULL, 0, -1);
    return;
  }
  int n = agent_split(p, len, strs, argc + envc + 1 + want_pty);
  struct winsize ws;
  if (n != argc + envc + 1 + want_pty || (want_pty && parse_size(strs[n - 1], &ws) != 0)) {
    free(strs);
    reply(h->id, EINVAL, 0, CC_SBX_STAGE_EXEC, NULL, 0, -1);
    return;
  }
  char *cwd = strs[0];
  char **argv = strs + 1;
  char **envp = calloc((size_t)envc + 1, sizeof(char *));
  char **av = calloc((size_t)argc + 1, sizeof(char *));
  if (!envp || !av) {
    free(strs), free(envp), free(av);
    reply(h->id, ENOMEM, 0, CC_SBX_STAGE_FORK, NULL, 0, -1);
    return;
  }
  memcpy(av, argv, sizeof(char *) * (size_t)argc);
  memcpy(envp, argv + argc, sizeof(char *) * (size_t)envc);
  struct stat st;
  as_fs_user(h);
  int cwd_err = stat(cwd, &st) != 0 ? errno : !S_ISDIR(st.st_mode) ? ENOTDIR : 0;
  as_fs_root();
  if (cwd_err) {
    int e = cwd_err;
    free(strs), free(envp), free(av);
    reply(h->id, e, 0, CC_SBX_STAGE_CWD, NULL, 0, -1);
    return;
  }
  if (want_pty) {
    int e = open_pty(&ws, &master, &slave);
    if (e) {
      free(strs), free(envp), free(av);
      reply(h->id, e, 0, CC_SBX_STAGE_PTY, NULL, 0, -1);
      return;
    }
    in = out = err_fd = slave;
  }
  spawn_args a = {.av = av,
                  .envp = envp,
                  .cwd = cwd,
                  .in = in,
                  .out = out,
                  .err_fd = err_fd,
                  .slave = slave,
                  .as_user = is_root && !(h->flags & CC_SBX_AS_ROOT)};
  pid_t pid =
      clone(spawn_child, spawn_stack + sizeof spawn_stack, CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
  int fork_errno = errno;
  if (slave >= 0) close(slave); /* the child holds it now: the master sees EIO once it is gone */
  free(strs), free(envp), free(av);
  if (pid < 0 || a.err) {
    if (master >= 0) close(master);
    /* after an exec failure the child exits 127 and is reaped, untracked, by reap() */
    reply(h->id, pid < 0 ? fork_errno : a.err, 0, pid < 0 ? CC_SBX_STAGE_FORK : CC_SBX_STAGE_EXEC,
          NULL, 0, -1);
    return;
  }
  track(pid);
  reply(h->id, 0, pid, 0, NULL, 0, master); /* a pty: its master goes to the host */
  if (master >= 0) close(master);
}

static void do_signal(const cc_sbx_wire_hdr *h) {
  pid_t pid = h->a;
  int sig = h->b;
  if (pid <= 1 || sig < 1 || sig >= NSIG || !is_tracked(pid)) {
    reply(h->id, ESRCH, 0, 0, NULL, 0, -1);
    return;
  }
  /* The process group first (the command and what it started), then the process itself in
   * case it left its group. */
  int r = kill(-pid, sig);
  int r2 = kill(pid, sig);
  reply(h->id, (r == 0 || r2 == 0) ? 0 : errno, 0, 0, NULL, 0, -1);
}

static void do_connect(const cc_sbx_wire_hdr *h) {
  int port = h->a;
  if (port < 1 || port > 65535) {
    reply(h->id, EINVAL, 0, 0, NULL, 0, -1);
    return;
  }
  int e = ECONNREFUSED;
  for (int v6 = 0; v6 < 2; v6++) {
    int s = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0) {
      e = errno;
      continue;
    }
    struct sockaddr_in a4 = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6,
                              .sin6_port = htons((uint16_t)port),
                              .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int r = v6 ? connect(s, (struct sockaddr *)&a6, sizeof a6)
               : connect(s, (struct sockaddr *)&a4, sizeof a4);
    int ce = r == 0 ? 0 : errno;
    if (ce == EINPROGRESS) {
      struct pollfd pf = {.fd = s, .events = POLLOUT};
      if (poll(&pf, 1, 2000) == 1) {
        socklen_t l = sizeof ce;
        if (getsockopt(s, SOL_SOCKET, SO_ERROR, &ce, &l) != 0) ce = errno;
      } else {
        ce = ETIMEDOUT;
      }
    }
    if (ce == 0) {
      int fl = fcntl(s, F_GETFL);
      fcntl(s, F_SETFL, fl & ~O_NONBLOCK);
      reply(h->id, 0, 0, 0, NULL, 0, s);
      close(s);
      return;
    }
    if (!v6) e = ce; /* report the IPv4 error; ::1 is only a fallback */
    close(s);
  }
  reply(h->id, e, 0, 0, NULL, 0, -1);
}

/* ---- files ---------------------------------------------------------------------------- */

/* envd's user-defined metadata of path (its user.e2b.* attributes, following a symlink, read
 * with the request's file-system identity: what that user may not read is left out) encoded
 * as the wire's pairs into meta; returns the length (pairs that would pass CC_SBX_META_MAX
 * are left out, as is everything when the file system keeps no attributes). */
#define META_PREFIX "user.e2b."
static char xnames[65536], xvalue[65536]; /* the kernel's XATTR_LIST_MAX / XATTR_SIZE_MAX */
static unsigned char meta_buf[CC_SBX_META_MAX];

static size_t encode_meta(const char *path) {
  ssize_t n = listxattr(path, xnames, sizeof xnames);
  size_t o = 0, pl = sizeof META_PREFIX - 1;
  for (ssize_t off = 0; off < n; off += (ssize_t)strlen(xnames + off) + 1) {
    const char *nm = xnames + off;
    if (strncmp(nm, META_PREFIX, pl) != 0) continue;
    ssize_t vl = getxattr(path, nm, xvalue, sizeof xvalue);
    size_t kl = strlen(nm) - pl;
    if (vl < 0 || kl == 0 || o + 4 + kl + (size_t)vl > sizeof meta_buf) continue;
    uint16_t k16 = (uint16_t)kl, v16 = (uint16_t)vl;
    memcpy(meta_buf + o, &k16, 2);
    memcpy(meta_buf + o + 2, &v16, 2);
    memcpy(meta_buf + o + 4, nm + pl, kl);
    memcpy(meta_buf + o + 4 + kl, xvalue, (size_t)vl);
    o += 4 + kl + (size_t)vl;
  }
  return o;
}

/* Appends one encoded entry to buf at *off; returns 0, or -1 when it does not fit. */
static int encode_entry(unsigned char *buf, size_t cap, size_t *off, const char *dirfd_path,
                        int dirfd, const char *name, const char *path) {
  struct stat ls, ts;
  if (fstatat(dirfd, dirfd_path, &ls, AT_SYMLINK_NOFOLLOW) != 0) return -2;
  cc_sbx_wire_entry e = {0};
  e.lmode = ls.st_mode;
  e.uid = ls.st_uid;
  e.gid = ls.st_gid;
  e.size = ls.st_size;
  e.mtime_sec = ls.st_mtim.tv_sec;
  e.mtime_nsec = (int32_t)ls.st_mtim.tv_nsec;
  char target[CC_SBX_WIRE_PATH_MAX];
  target[0] = 0;
  if (S_ISLNK(ls.st_mode)) {
    if (fstatat(dirfd, dirfd_path, &ts, 0) == 0) e.tmode = ts.st_mode;
    /* The resolved target path, as envd reports it. */
    char full[CC_SBX_WIRE_PATH_MAX];
    if (snprintf(full, sizeof full, "%s", path) < (int)sizeof full) {
      char *r = realpath(full, NULL);
      if (r) {
        snprintf(target, sizeof target, "%s", r);
        free(r);
      } else {
        ssize_t n = readlinkat(dirfd, dirfd_path, target, sizeof target - 1);
        target[n > 0 ? n : 0] = 0;
      }
    }
  } else {
    e.tmode = ls.st_mode;
  }
  size_t nl = strlen(name) + 1, pl = strlen(path) + 1,
         tl = S_ISLNK(ls.st_mode) ? strlen(target) + 1 : 0;
  if (nl > 65535 || pl > 65535 || tl > 65535) return -1;
  e.name_len = (uint16_t)nl;
  e.path_len = (uint16_t)pl;
  e.target_len = (uint16_t)tl;
  size_t ml = encode_meta(path);
  e.meta_len = (uint16_t)ml;
  if (*off + sizeof e + nl + pl + tl + ml > cap) return -1;
  memcpy(buf + *off, &e, sizeof e);
  *off += sizeof e;
  memcpy(buf + *off, name, nl), *off += nl;
  memcpy(buf + *off, path, pl), *off += pl;
  if (tl) memcpy(buf + *off, target, tl), *off += tl;
  if (ml) {
    memcpy(buf + *off, meta_buf, ml);
    *off += ml;
  }
  return 0;
}

static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s && s[1] ? s + 1 : (s ? "/" : p);
}

static void reply_entry(uint32_t id, int err, const char *path) {
  size_t off = 0;
  int r = encode_entry(outbuf, sizeof outbuf, &off, path, AT_FDCWD, base_name(path), path);
  if (r == -2) {
    reply(id, errno, 0, 0, NULL, 0, -1);
    return;
  }
  reply(id, err, 0, 0, outbuf, r == 0 ? off : 0, -1);
}

/* mkdir -p of path; returns 0, or an errno. *existed is set when path already was a dir.
 * give: each directory it makes is given to uid/gid 1000 (E2B's envd). */
static int mkdir_p(const char *path, int *existed, int give) {
  char buf[CC_SBX_WIRE_PATH_MAX];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof buf) return EINVAL;
  memcpy(buf, path, n + 1);
  struct stat st;
  if (existed) *existed = 0;
  if (stat(buf, &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return ENOTDIR;
    if (existed) *existed = 1;
    return 0;
  }
  for (char *s = buf + 1;; s++) {
    if (*s == '/' || *s == 0) {
      char c = *s;
      *s = 0;
      if (mkdir(buf, 0755) == 0) {
        if (give && chown(buf, 1000, 1000) != 0) return errno;
      } else if (errno != EEXIST) {
        return errno;
      }
      if (stat(buf, &st) != 0) return errno;
      if (!S_ISDIR(st.st_mode)) return ENOTDIR;
      *s = c;
      if (c == 0) break;
    }
  }
  return 0;
}

static int mkdir_parent(const char *path, int give) {
  char buf[CC_SBX_WIRE_PATH_MAX];
  snprintf(buf, sizeof buf, "%s", path);
  char *s = strrchr(buf, '/');
  if (!s || s == buf) return 0;
  *s = 0;
  return mkdir_p(buf, NULL, give);
}

static int rm_rf_at(int dirfd, const char *name, int depth) {
  if (unlinkat(dirfd, name, 0) == 0) return 0;
  if (errno == ENOENT) return 0;
  if (errno != EISDIR && errno != EPERM) return errno;
  if (depth > 256) return ELOOP;
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? 0 : errno;
  DIR *d = fdopendir(fd);
  if (!d) {
    int e = errno;
    close(fd);
    return e;
  }
  struct dirent *de;
  int err = 0;
  while ((de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    int e = rm_rf_at(fd, de->d_name, depth + 1);
    if (e && !err) err = e;
  }
  closedir(d);
  if (err) return err;
  if (unlinkat(dirfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) return errno;
  return 0;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct {
  unsigned char *buf;
  size_t cap, off;
  int count, max;
  int err;
} listing;

static void list_dir(listing *L, int dirfd, const char *path, int depth) {
  int fd = dup(dirfd);
  if (fd < 0) {
    L->err = errno;
    return;
  }
  DIR *d = fdopendir(fd);
  if (!d) {
    L->err = errno;
    close(fd);
    return;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      char **nn = realloc(names, cap * sizeof *nn);
      if (!nn) break;
      names = nn;
    }
    names[n] = strdup(de->d_name);
    if (names[n]) n++;
  }
  qsort(names, n, sizeof *names, cmp_names);
  for (size_t i = 0; i < n && !L->err; i++) {
    char child[CC_SBX_WIRE_PATH_MAX];
    if (snprintf(child, sizeof child, "%s/%s", strcmp(path, "/") ? path : "", names[i]) >=
        (int)sizeof child)
      continue;
    if (L->count >= L->max) {
      L->err = E2BIG;
      break;
    }
    int r = encode_entry(L->buf, L->cap, &L->off, names[i], dirfd, names[i], child);
    if (r == -1) {
      L->err = E2BIG;
      break;
    }
    if (r == -2) continue; /* vanished meanwhile */
    L->count++;
    if (depth > 1) {
      int cfd = openat(dirfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (cfd >= 0) {
        list_dir(L, cfd, child, depth - 1);
        close(cfd);
      }
    }
  }
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  closedir(d);
}

static void do_list(const cc_sbx_wire_hdr *h, const char *path) {
  int depth = h->a < 1 ? 1 : h->a;
  if (depth > 64) depth = 64;
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    reply(h->id, errno, 0, 0, NULL, 0, -1);
    return;
  }
  size_t cap = 64u << 20; /* encoded listing cap; a memfd grows only as far as it is used */
  listing L = {.cap = cap, .max = h->b > 0 ? h->b : 100000};
  L.buf =
      mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (L.buf == MAP_FAILED) {
    close(fd);
    reply(h->id, ENOMEM, 0, 0, NULL, 0, -1);
    return;
  }
  list_dir(&L, fd, path, depth);
  close(fd);
  int mfd = -1;
  if (!L.err) {
    mfd = memfd_create("listing", MFD_CLOEXEC);
    if (mfd < 0) L.err = errno;
    size_t w = 0;
    while (!L.err && w < L.off) {
      ssize_t k = write(mfd, L.buf + w, L.off - w);
      if (k <= 0)
        L.err = errno ? errno : EIO;
      else
        w += (size_t)k;
    }
  }
  munmap(L.buf, cap);
  reply(h->id, L.err, L.err ? 0 : L.count, 0, NULL, 0, L.err ? -1 : mfd);
  if (mfd >= 0) close(mfd);
}

/* Opens path as a regular file without ever blocking on a FIFO and without a controlling
 * terminal; non-regular files are refused. */
static int open_regular(const char *path, int flags, int *err) {
  int fd = open(path, flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0644);
  if (fd < 0) {
    *err = errno;
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    *err = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
    close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

static void do_file(const cc_sbx_wire_hdr *h, char *p, size_t len) {
  char *s[2];
  int n = agent_split(p, len, s, 2);
  if (n < 1 || s[0][0] != '/' || (h->op == CC_SBX_OP_MOVE && (n < 2 || s[1][0] != '/'))) {
    reply(h->id, EINVAL, 0, 0, NULL, 0, -1);
    return;
  }
  const char *path = s[0];
  int give = is_root && (h->flags & CC_SBX_GIVE_USER) &&
             (h->op == CC_SBX_OP_MKDIR || h->op == CC_SBX_OP_OPEN_WRITE);
  int e = 0, existed = 0, fd;
  struct stat st;
  switch (h->op) {
    case CC_SBX_OP_STAT:
      if (stat(path, &st) != 0 && lstat(path, &st) != 0) {
        reply(h->id, errno, 0, 0, NULL, 0, -1);
        return;
      }
      reply_entry(h->id, 0, path);
      return;
    case CC_SBX_OP_MKDIR:
      e = mkdir_p(path, &existed, give);
      if (e) {
        reply(h->id, e, 0, 0, NULL, 0, -1);
        return;
      }
      reply_entry(h->id, existed ? EEXIST : 0, path);
      return;
    case CC_SBX_OP_MOVE:
      if (lstat(path, &st) != 0) {
        reply(h->id, errno, 1, 0, NULL, 0, -1); /* a = 1: the source is missing */
        return;
      }
      if ((e = mkdir_parent(s[1], 0)) != 0 || rename(path, s[1]) != 0) {
        reply(h->id, e ? e : errno, 0, 0, NULL, 0, -1);
        return;
      }
      reply_entry(h->id, 0, s[1]);
      return;
    case CC_SBX_OP_REMOVE:
      reply(h->id, rm_rf_at(AT_FDCWD, path, 0), 0, 0, NULL, 0, -1);
      return;
    case CC_SBX_OP_LIST:
      do_list(h, path);
      return;
    case CC_SBX_OP_OPEN_READ:
      fd = open_regular(path, O_RDONLY, &e);
      if (fd < 0) {
        reply(h->id, e, 0, 0, NULL, 0, -1);
        return;
      }
      fstat(fd, &st);
      int64_t size = st.st_size;
      reply(h->id, 0, 0, 0, &size, sizeof size, fd);
      close(fd);
      return;
    case CC_SBX_OP_OPEN_WRITE:
      if ((e = mkdir_parent(path, give)) != 0) {
        reply(h->id, e, 0, 0, NULL, 0, -1);
        return;
      }
      if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        reply(h->id, EISDIR, 0, 0, NULL, 0, -1);
        return;
      }
      fd = open_regular(path, O_WRONLY | O_CREAT | O_TRUNC, &e);
      if (fd >= 0 && give && fchown(fd, 1000, 1000) != 0) { /* new or not, as envd */
        e = errno;
        close(fd);
        fd = -1;
      }
      if (fd < 0) {
        reply(h->id, e, 0, 0, NULL, 0, -1);
        return;
      }
      reply(h->id, 0, 0, 0, NULL, 0, fd);
      close(fd);
      return;
  }
  reply(h->id, ENOSYS, 0, 0, NULL, 0, -1);
}

/* ---- main loop ------------------------------------------------------------------------ */

static void handle(void) {
  union {
    char buf[CMSG_SPACE(sizeof(int) * 4)];
    struct cmsghdr align;
  } u;
  struct iovec iov = {inbuf, sizeof inbuf - 1};
  struct msghdr m = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  ssize_t n = recvmsg(SOCK, &m, MSG_CMSG_CLOEXEC);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) _exit(0); /* the host is gone: PID 1 exits and takes the sandbox with it */
  int fds[4], nfds = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      for (int i = 0; i < k && nfds < 4; i++)
        memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
  if ((size_t)n < sizeof(cc_sbx_wire_hdr) || (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) goto done;
  cc_sbx_wire_hdr h;
  memcpy(&h, inbuf, sizeof h);
  char *p = (char *)inbuf + sizeof h;
  size_t len = (size_t)n - sizeof h;
  p[len] = 0;
  switch (h.op) {
    case CC_SBX_OP_SPAWN:
      do_spawn(&h, p, len, fds, nfds);
      break;
    case CC_SBX_OP_SIGNAL:
      do_signal(&h);
      break;
    case CC_SBX_OP_CONNECT:
      do_connect(&h);
      break;
    case CC_SBX_OP_STAT:
    case CC_SBX_OP_MKDIR:
    case CC_SBX_OP_MOVE:
    case CC_SBX_OP_LIST:
    case CC_SBX_OP_REMOVE:
    case CC_SBX_OP_OPEN_READ:
    case CC_SBX_OP_OPEN_WRITE:
      as_fs_user(&h);
      do_file(&h, p, len);
      as_fs_root();
      break;
    default:
      reply(h.id, ENOSYS, 0, 0, NULL, 0, -1);
  }
done:
  for (int i = 0; i < nfds; i++) close(fds[i]);
}

static void write_run_file(const char *name, const char *value) {
  char path[256];
  snprintf(path, sizeof path, "/run/e2b/%s", name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  (void)!write(fd, value, strlen(value));
  close(fd);
}

int main(int argc, char **argv) {
  const char *base = argc > 0 ? strrchr(argv[0], '/') : NULL;
  base = base ? base + 1 : argc > 0 ? argv[0] : "";
  if (!strcmp(base, "sudo")) return agent_sudo_main(argc, argv);
  prctl(PR_SET_DUMPABLE, 0);
  umask(022);
  sigset_t set;
  sigfillset(&set);
  sigprocmask(SIG_SETMASK, &set, NULL);
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) return 1;
  fcntl(SOCK, F_SETFD, FD_CLOEXEC);

  if (getuid() == 0) { /* root_inside: bwrap made the tmpfs mounts root's */
    is_root = 1;
    if (setgroups(0, NULL) != 0 || chown("/home/user", 1000, 1000) != 0) return 1;
  }
  mkdir("/run/e2b", 0755);
  const char *v;
  write_run_file(".E2B_SANDBOX", "true");
  if ((v = getenv("E2B_SANDBOX_ID"))) write_run_file(".E2B_SANDBOX_ID", v);
  if ((v = getenv("E2B_TEMPLATE_ID"))) write_run_file(".E2B_TEMPLATE_ID", v);

  cc_sbx_wire_hdr hello = {.op = CC_SBX_OP_HELLO, .a = getpid()};
  if (cc_sbx_wire_send(SOCK, &hello, NULL, 0, NULL, 0, 0)) return 1;
  agent_sudo_init(is_root);
  struct pollfd pf[2 + 1 + AGENT_SUDO_MAX];
  for (;;) {
    pf[0] = (struct pollfd){.fd = SOCK, .events = POLLIN};
    pf[1] = (struct pollfd){.fd = sfd, .events = POLLIN};
    int ns = agent_sudo_pollfds(pf + 2);
    if (poll(pf, (nfds_t)(2 + ns), -1) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    agent_sudo_serve(pf + 2, ns);
    if (pf[1].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) {
      }
      reap();
    }
    if (pf[0].revents & (POLLHUP | POLLERR) && !(pf[0].revents & POLLIN)) _exit(0);
    if (pf[0].revents & POLLIN) handle();
  }
}
