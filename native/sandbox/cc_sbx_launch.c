/*
 * cc_sbx_launch: starting bubblewrap, for a sandbox and for the probe at runtime start.
 *
 * A sandbox's launch inputs are made by the creating thread (cc_sbx_launch_prepare: the bwrap
 * command line, pipes holding /etc/passwd, /etc/group, resolv.conf and the boot id, memfds
 * holding the agent and the seccomp program, all CLOEXEC) and consumed by the I/O thread, which forks
 * and execs bwrap (cc_sbx_launch) with them on fixed descriptors.  cc_sbx_child_exec is the
 * one fork/exec path; slirp4netns (cc_sbx_net.c) uses it too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cc_sbx_priv.h"

/* ---- launch inputs ------------------------------------------------------------------------ */

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

/* The capabilities uid 0 inside keeps (bounding set; all of them scoped to the sandbox's own
 * user namespace, so they act only on its processes and on inodes owned by its mapped uids). */
static const char *const ROOT_CAPS[] = {"CAP_CHOWN",  "CAP_DAC_OVERRIDE", "CAP_FOWNER",
                                        "CAP_FSETID", "CAP_KILL",         "CAP_SETGID",
                                        "CAP_SETUID", "CAP_NET_BIND_SERVICE"};

/* The bwrap command line of a sandbox (argv[last] = the program to run as PID 1).  With
 * root_inside, bwrap joins the user namespace on fd 9 (made by cc_sbx_make_userns) and starts
 * the agent as its uid 0; sudo: the agent's copy on fd 10 becomes /usr/bin/sudo.  fd 11 holds
 * the boot id of this start.  disk: the sandbox's disk with a writable system (cc_sbx_sys.c):
 * its overlays become /, /usr and /var/lib/dpkg and its home /home/user; NULL: the host's
 * system read-only, tmpfs homes. */
static char **build_argv(cc_sbx_runtime *rt, const cc_sbx_limits *lim, bool resolv, bool sudo,
                         const char *program, const char *disk) {
  char **v = calloc(128, sizeof *v);
  if (!v) return NULL;
  int n = 0;
#define A(s) (v[n++] = strdup(s))
  char num[32];
  bool ri = rt->info.root_inside;
  A(rt->info.bwrap);
  if (ri) {
    /* --unshare-all would ask for a user namespace too; bwrap refuses that with --userns.
     * Nested user namespaces are refused by the seccomp filter (clone CLONE_NEWUSER). */
    A("--userns"), A("9"), A("--unshare-ipc"), A("--unshare-pid"), A("--unshare-net"),
        A("--unshare-uts"), A("--unshare-cgroup");
    A("--die-with-parent"), A("--new-session"), A("--as-pid-1");
    A("--uid"), A("0"), A("--gid"), A("0"), A("--hostname"), A("e2b");
    for (size_t i = 0; i < sizeof ROOT_CAPS / sizeof ROOT_CAPS[0]; i++)
      A("--cap-add"), A(ROOT_CAPS[i]);
  } else {
    A("--unshare-all"), A("--unshare-user"), A("--die-with-parent"), A("--new-session"),
        A("--as-pid-1");
    A("--disable-userns");
    A("--uid"), A("1000"), A("--gid"), A("1000"), A("--hostname"), A("e2b");
  }
  char dp[700];
  if (disk) {
    /* the merged trees (the base's skeleton, /etc and /var; /usr, /var/lib/dpkg), writable
     * by root inside */
    snprintf(dp, sizeof dp, "%s/m/root", disk);
    A("--bind"), A(dp), A("/");
    const char *const *paths, *const *names;
    size_t nt = cc_sbx_sys_trees(&paths, &names);
    for (size_t i = 0; i < nt; i++) {
      snprintf(dp, sizeof dp, "%s/m/%s", disk, names[i]);
      A("--bind"), A(dp), A(paths[i]);
    }
  } else {
    A("--ro-bind"), A("/usr"), A("/usr");
  }
  static const char *const tops[] = {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"};
  for (size_t i = 0; !disk && i < sizeof tops / sizeof tops[0]; i++) {
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
  if (!disk) {
    A("--ro-bind"), A("/etc"), A("/etc");
    /* 0644: bwrap makes these files the sandbox uid's, mode 0600 unless told (root's, with a
     * root inside, and user must read them); with a disk they are the base's own */
    A("--perms"), A("0644"), A("--ro-bind-data"), A("4"), A("/etc/passwd");
    A("--perms"), A("0644"), A("--ro-bind-data"), A("5"), A("/etc/group");
  }
  if (rt->seccomp_len) A("--seccomp"), A("7");
  if (resolv) A("--perms"), A("0644"), A("--ro-bind-data"), A("8"), A("/etc/resolv.conf");
  A("--proc"), A("/proc"), A("--dev"), A("/dev");
  /* A boot id of its own, new at every start (as a VM's after a reboot; a resume without
   * memory starts the sandbox afresh), instead of the host's. */
  A("--perms"), A("0444"), A("--ro-bind-data"), A("11"), A("/proc/sys/kernel/random/boot_id");
  A("--size"), A("16777216"), A("--tmpfs"), A("/dev/shm"); /* capped like the other tmpfs */
  A("--remount-ro"), A("/dev"); /* device nodes still work; no files can be created there */
  if (disk) {
    /* the home shares the disk (and its size) with the system layer */
    snprintf(dp, sizeof dp, "%s/home", disk);
    A("--bind"), A(dp), A("/home/user");
  } else {
    snprintf(num, sizeof num, "%llu", (unsigned long long)lim->home_bytes);
    A("--size"), A(num), A("--tmpfs"), A("/home/user");
  }
  snprintf(num, sizeof num, "%llu", (unsigned long long)lim->tmp_bytes);
  if (ri) A("--perms"), A("1777"); /* root owns it: everyone may create files, as on E2B */
  A("--size"), A(num), A("--tmpfs"), A("/tmp");
  if (ri && !disk) /* root's home, capped like /tmp (its pages count in the memory limit too) */
    A("--perms"), A("0700"), A("--size"), A(num), A("--tmpfs"), A("/root");
  A("--size"), A("1048576"), A("--tmpfs"), A("/run");
  if (ri && sudo) A("--perms"), A("0555"), A("--ro-bind-data"), A("10"), A("/usr/bin/sudo");
  /* The agent is copied in from a memfd (fd 6): its host path may not be reachable by the
   * sandbox's host uid (a 0700 build directory), and a copy cannot be swapped underneath. */
  A("--perms"), A("0555"), A("--ro-bind-data"), A("6"), A("/.cc-agent");
  if (!disk) A("--remount-ro"), A("/");
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

/* A pipe holding a new random boot id, formatted as the kernel's (a version 4 UUID and a
 * newline); -1 with errno when getrandom or the pipe fails. */
static int bootid_pipe(void) {
  unsigned char b[16];
  if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) return -1;
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  char s[40];
  int k = 0;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s[k++] = '-';
    k += snprintf(s + k, sizeof s - (size_t)k, "%02x", b[i]);
  }
  s[k++] = '\n';
  s[k] = 0;
  return data_pipe(s);
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

static bool fail_errno(char *why, size_t cap, const char *what) {
  snprintf(why, cap, "%s: %s", what, strerror(errno ? errno : ENOMEM));
  return false;
}

static const char PASSWD[] =
    "root:x:0:0:root:/root:/bin/bash\n"
    "user:x:1000:1000:user:/home/user:/bin/bash\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
static const char GROUP[] = "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n";

/* What the namespace holder (below) gets: its credentials and its two pipe ends. */
typedef struct {
  uint32_t uid;
  int up, down;
} holder_args;

/* The holder: takes uid/gid H, unshares a user namespace (owned by H), says so on up and
 * waits for a byte on down.  It shares our memory (CLONE_VM) and runs on a stack of its own,
 * so: raw system calls only, and no sanitizer instrumentation. */
__attribute__((no_sanitize("address", "undefined"))) static int holder_main(void *arg) {
  const holder_args *a = arg;
  char c = 0;
  syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  uint32_t h = a->uid;
  if (syscall(SYS_setgroups, 0, NULL) == 0 && syscall(SYS_setresgid, h, h, h) == 0 &&
      syscall(SYS_setresuid, h, h, h) == 0 && syscall(SYS_unshare, CLONE_NEWUSER) == 0)
    c = 1;
  if (syscall(SYS_write, a->up, &c, 1) == 1) syscall(SYS_read, a->down, &c, 1);
  return 0;
}

/* root_inside: a user namespace owned by the sandbox's host uid H that maps uid 0 to host
 * uid H + 1 and uid 1000 to H (two ranges: only a writer with CAP_SETUID over the namespace
 * may write that map, which is why bwrap, unprivileged, cannot make it itself).  A holder
 * task takes H's credentials, unshares the namespace and waits; we write its maps, open the
 * namespace and let it exit.  The holder is a clone with CLONE_VM, not a fork: copying and
 * then tearing down our page tables made a fork-based holder cost 3.1 ms per create (p50,
 * Release), against about 0.6 ms for the whole root inside now.  Returns the namespace's fd
 * (CLOEXEC), or -1 with why. */
int cc_sbx_make_userns(cc_sbx_runtime *rt, char *why, size_t cap) {
  /* Each side waits for a byte, not for EOF: a child forked at the same time by another
   * thread holds copies of these pipes until it exits or execs. */
  int up[2], down[2];
  if (pipe2(up, O_CLOEXEC) != 0) return snprintf(why, cap, "pipe: %s", strerror(errno)), -1;
  if (pipe2(down, O_CLOEXEC) != 0) {
    close(up[0]), close(up[1]);
    return snprintf(why, cap, "pipe: %s", strerror(errno)), -1;
  }
  const size_t stack_size = 64 * 1024;
  void *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  holder_args ha = {.uid = rt->host_uid, .up = up[1], .down = down[0]};
  pid_t pid = stack == MAP_FAILED
                  ? -1
                  : clone(holder_main, (char *)stack + stack_size, CLONE_VM | SIGCHLD, &ha);
  int fd = -1;
  char c = 0;
  struct pollfd pf = {.fd = up[0], .events = POLLIN};
  if (pid < 0) {
    snprintf(why, cap, "clone: %s", strerror(errno));
  } else if (poll(&pf, 1, 5000) != 1 || read(up[0], &c, 1) != 1 || c != 1) {
    snprintf(why, cap, "cannot create a user namespace as uid %u", ha.uid);
  } else {
    /* 0 and 1000 as always; the system users (1-999: man, _apt, www-data, ...) and the ids
     * above 1000 (useradd's) get host ids of their own too, shared by all sandboxes as 0 and
     * 1000 are, so that packages whose scripts chown to a system user install (man-db's
     * trigger runs after nearly every package) and useradd works.  Host ids
     * host_uid .. host_uid + 65535, none of them privileged on the host. */
    char map[160], path[64];
    int k = snprintf(map, sizeof map, "0 %u 1\n1 %u 999\n1000 %u 1\n1001 %u 64535\n",
                     ha.uid + 1, ha.uid + 2, ha.uid, ha.uid + 1001);
    const char *const files[] = {"uid_map", "gid_map"};
    bool ok = true;
    for (int i = 0; ok && i < 2; i++) {
      snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, files[i]);
      int m = open(path, O_WRONLY | O_CLOEXEC);
      ok = m >= 0 && write(m, map, (size_t)k) == k;
      if (!ok) snprintf(why, cap, "cannot write %s: %s", path, strerror(errno));
      if (m >= 0) close(m);
    }
    snprintf(path, sizeof path, "/proc/%d/ns/user", (int)pid);
    if (ok && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
      snprintf(why, cap, "cannot open %s: %s", path, strerror(errno));
  }
  if (pid > 0) {
    c = 1;
    if (write(down[1], &c, 1) != 1) kill(pid, SIGKILL);
    waitpid(pid, NULL, 0); /* before the stack goes */
  }
  if (stack != MAP_FAILED) munmap(stack, stack_size);
  close(up[0]), close(up[1]), close(down[0]), close(down[1]);
  return fd;
}

/* A file sudo can be bound over: Debian's setuid sudo cannot work inside (its owner, host
 * root, is not mapped), so the agent's own `sudo` takes its place; without a host file there
 * is no mount point on the read-only /usr, and no sudo. */
static bool host_has_sudo(void) {
  struct stat st;
  return stat("/usr/bin/sudo", &st) == 0 && S_ISREG(st.st_mode);
}

/* Makes the launch inputs of sbx: its disk with a writable system (a fresh one, or the one
 * kept for its id with resume_disk), its bwrap command line and the data bwrap reads (passwd,
 * group, resolv.conf with egress, the agent, the seccomp program).  false with why when one
 * could not be made; what was made is sbx's (sbx_free closes it; its kill drops the disk). */
bool cc_sbx_launch_prepare(cc_sbx_runtime *rt, cc_sbx *sbx, char *why, size_t cap) {
  bool sudo = rt->info.root_inside && host_has_sudo();
  char disk[600];
  if (rt->sys.on) {
    if (!sbx->resume_disk) cc_sbx_sys_disk_drop(&rt->sys, sbx->id); /* a stale one */
    if (!cc_sbx_sys_disk_mount(&rt->sys, sbx->id, sbx->limits.home_bytes, why, cap)) return false;
    sbx->disk = true;
    cc_sbx_sys_disk_path(&rt->sys, sbx->id, NULL, disk, sizeof disk);
  }
  sbx->argv =
      build_argv(rt, &sbx->limits, sbx->egress, sudo, "/.cc-agent", sbx->disk ? disk : NULL);
  if (rt->info.root_inside) {
    sbx->userns_fd = cc_sbx_make_userns(rt, why, cap);
    if (sbx->userns_fd < 0) return false;
    if (sudo && (sbx->sudo_fd = agent_memfd(rt)) < 0) return fail_errno(why, cap, "memfd");
  }
  sbx->passwd_fd = data_pipe(PASSWD);
  sbx->group_fd = data_pipe(GROUP);
  if (sbx->egress) sbx->resolv_fd = data_pipe("nameserver 10.0.2.3\n");
  sbx->bootid_fd = bootid_pipe();
  sbx->agent_fd = agent_memfd(rt);
  sbx->seccomp_fd = seccomp_memfd(rt);
  if (!(sbx->argv && sbx->passwd_fd >= 0 && sbx->group_fd >= 0 && sbx->agent_fd >= 0 &&
        sbx->bootid_fd >= 0 && (!rt->seccomp_len || sbx->seccomp_fd >= 0) &&
        (!sbx->egress || sbx->resolv_fd >= 0)))
    return fail_errno(why, cap, "cannot prepare the launch");
  return true;
}

/* The sandbox users' /etc/passwd and /etc/group (also the writable base's). */
const char *cc_sbx_passwd(void) {
  return PASSWD;
}
const char *cc_sbx_group(void) {
  return GROUP;
}

#define PROBE_DISK ".probe" /* not a valid sandbox id */

static bool probe_with(cc_sbx_runtime *rt, const char *disk, char *why, size_t cap);

/* Runs `bwrap <sandbox args> /usr/bin/true` once with the real credentials and mounts (with a
 * writable system: on a disk of its own), so a missing capability shows up at start with
 * bwrap's own message. */
bool cc_sbx_launch_probe(cc_sbx_runtime *rt, char *why, size_t cap) {
  char disk[600] = "";
  if (rt->sys.on) {
    if (!cc_sbx_sys_disk_mount(&rt->sys, PROBE_DISK, 16 << 20, why, cap)) return false;
    cc_sbx_sys_disk_path(&rt->sys, PROBE_DISK, NULL, disk, sizeof disk);
  }
  bool ok = probe_with(rt, disk[0] ? disk : NULL, why, cap);
  if (disk[0]) cc_sbx_sys_disk_drop(&rt->sys, PROBE_DISK);
  return ok;
}

static bool probe_with(cc_sbx_runtime *rt, const char *disk, char *why, size_t cap) {
  char **argv = build_argv(rt, &rt->cfg.limits, false, false, "/usr/bin/true", disk);
  if (!argv) return snprintf(why, cap, "out of memory"), false;
  int errp[2];
  int ns = -1;
  if (rt->info.root_inside && (ns = cc_sbx_make_userns(rt, why, cap)) < 0) {
    for (char **a = argv; *a; a++) free(*a);
    free(argv);
    return false;
  }
  int pw = data_pipe(PASSWD), gr = data_pipe(GROUP), ag = agent_memfd(rt), sc = seccomp_memfd(rt);
  int bi = bootid_pipe();
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  bool ok = false;
  if (pw >= 0 && gr >= 0 && ag >= 0 && (sc >= 0 || !rt->seccomp_len) && bi >= 0 &&
      devnull >= 0 && pipe2(errp, O_CLOEXEC) == 0) {
    char *envp[] = {"PATH=" CC_SBX_SANDBOX_PATH, NULL};
    int src[] = {devnull, devnull, errp[1], devnull, pw, gr, ag, sc, -1, ns, -1, bi};
    int dst[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    pid_t pid = fork();
    if (pid == 0)
      cc_sbx_child_exec(rt->info.bwrap, argv, envp, NULL, rt->host_uid, rt->info.root, true, src, dst,
                        12, NULL, NULL);
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
  if (bi >= 0) close(bi);
  if (ns >= 0) close(ns);
  if (devnull >= 0) close(devnull);
  for (char **a = argv; *a; a++) free(*a);
  free(argv);
  return ok;
}

/* ---- forking bubblewrap ------------------------------------------------------------------- */

void cc_sbx_close_launch_fds(cc_sbx *sbx) {
  int *fds[] = {&sbx->child_sock, &sbx->passwd_fd,  &sbx->group_fd, &sbx->resolv_fd,
                &sbx->agent_fd,   &sbx->seccomp_fd, &sbx->userns_fd, &sbx->sudo_fd,
                &sbx->bootid_fd};
  for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
    if (*fds[i] >= 0) close(*fds[i]), *fds[i] = -1;
}

/* Between fork and exec: only async-signal-safe calls, raw syscalls for credentials. */
void cc_sbx_child_exec(const char *path, char **argv, char **envp, const cc_sbx_cg *cg,
                       uint32_t uid, bool drop, bool pdeathsig, const int *src, const int *dst,
                       int n, void (*prep)(const void *), const void *prep_arg) {
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
  if (pdeathsig) prctl(PR_SET_PDEATHSIG, SIGKILL);
  int hi[16];
  if (n > 16) _exit(123);
  for (int i = 0; i < n; i++) {
    hi[i] = src[i] >= 0 ? fcntl(src[i], F_DUPFD_CLOEXEC, 64) : -1;
    if (src[i] >= 0 && hi[i] < 0) _exit(123);
  }
  for (int i = 0; i < n; i++) /* a descriptor not given is closed, not inherited */
    if (hi[i] >= 0 ? dup2(hi[i], dst[i]) < 0 : (close(dst[i]), false)) _exit(123);
  syscall(SYS_close_range, (unsigned)dst[n - 1] + 1, ~0u, 0);
  execve(path, argv, envp);
  _exit(124);
}

/* I/O thread only: forks bwrap for sbx with its launch inputs (closing the host's copies)
 * and watches its agent socket and pidfd.  When it cannot (or a kill came first), sbx is torn
 * down with the reason in sbx->why and put on rt->dead. */
void cc_sbx_launch(cc_sbx_runtime *rt, cc_sbx *sbx) {
  int errp[2] = {-1, -1};
  char e1[80], e2[80];
  snprintf(e1, sizeof e1, "E2B_SANDBOX_ID=%s", sbx->id);
  snprintf(e2, sizeof e2, "E2B_TEMPLATE_ID=%s", sbx->template_id);
  char *envp[] = {"PATH=" CC_SBX_SANDBOX_PATH, e1, e2, NULL};
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (pipe2(errp, O_CLOEXEC | O_NONBLOCK) != 0 || devnull < 0) {
    snprintf(sbx->why, sizeof sbx->why, "pipe: %s", strerror(errno));
    goto failed;
  }
  int src[] = {devnull,       devnull,       errp[1],         sbx->child_sock, sbx->passwd_fd,
               sbx->group_fd, sbx->agent_fd, sbx->seccomp_fd, sbx->resolv_fd,  sbx->userns_fd,
               sbx->sudo_fd, sbx->bootid_fd};
  int dst[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  int nfd = 12;
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
    cc_sbx_child_exec(rt->info.bwrap, sbx->argv, envp, &sbx->cg, rt->host_uid, drop, true, src, dst,
                      nfd, NULL, NULL);
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
  cc_sbx_close_launch_fds(sbx);
  cc_sbx_cg_close_fds(&sbx->cg);
  if (sbx->bwrap_pidfd < 0) {
    kill(pid, SIGKILL);
    snprintf(sbx->why, sizeof sbx->why, "pidfd_open: %s", strerror(errno));
    cc_sbx_teardown(sbx);
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
  cc_sbx_close_launch_fds(sbx);
  sbx->bwrap_pid = 0;
  cc_sbx_teardown(sbx);
  sbx->next_dead = rt->dead;
  rt->dead = sbx;
}
