/*
 * cc_sbx_net: a sandbox's egress.  Decides once, at runtime start, how slirp4netns reaches
 * the kernel's tap device (or why it cannot), and attaches slirp4netns to one sandbox.
 *
 * slirp4netns opens /dev/net/tun after joining the sandbox's user and network namespaces,
 * as the sandbox's unprivileged host uid.  Where the host's node lets that uid open it
 * (mode 0666, the udev default) it is used as is.  Where it is root-only (0600: many VMs,
 * containers, minimal images) and we are root, slirp4netns starts in a private mount
 * namespace of its own in which /dev/net is a fresh tmpfs holding one node of the same
 * device, owned by the sandbox's host uid: only that process sees it, the host's node and
 * its mode are untouched, and the traffic handler never runs with privilege.  Otherwise
 * egress is unavailable, with the reason, and sandboxes get loopback only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cc_sbx_int.h"

#define TUN_PATH "/dev/net/tun"
#define READY_TIMEOUT_MS 5000
#define LOG_BYTES 4096 /* slirp4netns's stderr: a sealed memfd, never more than this */

void cc_sbx_net_init(cc_sbx_net *n, const char *slirp_cfg, bool root, uint32_t host_uid) {
  memset(n, 0, sizeof *n);
  n->host_uid = host_uid;
  n->drop = root;
  if (slirp_cfg && !slirp_cfg[0]) {
    snprintf(n->why, sizeof n->why, "disabled (--no-internet)");
    return;
  }
  if (slirp_cfg)
    snprintf(n->slirp, sizeof n->slirp, "%s", slirp_cfg);
  else if (!cc_sbx_find_in_path("slirp4netns", n->slirp, sizeof n->slirp))
    n->slirp[0] = 0;
  if (!n->slirp[0] || access(n->slirp, X_OK) != 0) {
    n->slirp[0] = 0;
    snprintf(n->why, sizeof n->why, "slirp4netns is not installed");
    return;
  }
  struct stat st;
  if (stat(TUN_PATH, &st) != 0) {
    snprintf(n->why, sizeof n->why, "%s: %s (no tun driver)", TUN_PATH, strerror(errno));
    return;
  }
  if (!S_ISCHR(st.st_mode)) {
    snprintf(n->why, sizeof n->why, "%s is not a character device", TUN_PATH);
    return;
  }
  n->tun_rdev = st.st_rdev;
  bool usable;
  if (root) /* the sandbox's host uid/gid has no supplementary groups */
    usable = (st.st_uid == host_uid && (st.st_mode & 0600) == 0600) ||
             (st.st_gid == host_uid && (st.st_mode & 0060) == 0060) ||
             (st.st_mode & 0006) == 0006;
  else
    usable = access(TUN_PATH, R_OK | W_OK) == 0;
  if (usable) {
    n->tun = CC_SBX_TUN_HOST;
    snprintf(n->how, sizeof n->how, "tap via %s (mode %04o)", TUN_PATH,
             (unsigned)(st.st_mode & 07777));
  } else if (root) {
    n->tun = CC_SBX_TUN_PRIVATE;
    snprintf(n->how, sizeof n->how,
             "tap via a private %s node for uid %u (the host's is mode %04o, not accessible to "
             "it)",
             TUN_PATH, host_uid, (unsigned)(st.st_mode & 07777));
  } else {
    snprintf(n->why, sizeof n->why, "%s is not accessible to uid %u (mode %04o)", TUN_PATH,
             host_uid, (unsigned)(st.st_mode & 07777));
  }
}

/* In the forked child, before credentials are dropped (raw syscalls only): a mount namespace
 * of its own where /dev/net is a tmpfs with one tun node owned by the sandbox's host uid. */
static void private_tun(const void *arg) {
  const cc_sbx_net *n = arg;
  if (syscall(SYS_unshare, CLONE_NEWNS) != 0) _exit(125);
  if (syscall(SYS_mount, "none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) _exit(125);
  if (syscall(SYS_mount, "tmpfs", "/dev/net", "tmpfs", MS_NOSUID | MS_NOEXEC,
              "mode=0755,size=4k") != 0)
    _exit(125);
  if (syscall(SYS_mknodat, AT_FDCWD, TUN_PATH, S_IFCHR | 0600, n->tun_rdev) != 0) _exit(125);
  if (syscall(SYS_fchownat, AT_FDCWD, TUN_PATH, n->host_uid, n->host_uid, 0) != 0) _exit(125);
}

/* The first line of what slirp4netns said, for the reason of a failure. */
static void read_log(int fd, pid_t pid, int wstatus, bool exited, char *why, size_t cap) {
  char buf[LOG_BYTES + 1];
  ssize_t k = pread(fd, buf, LOG_BYTES, 0);
  buf[k > 0 ? k : 0] = 0;
  /* skip slirp4netns's own chatter ("WARNING: ... experimental") for the first real error */
  char *line = buf, *pick = NULL;
  while (line && *line) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = 0;
    if (*line && !strstr(line, "experimental") && !strstr(line, "tapfd")) {
      pick = line;
      break;
    }
    line = nl ? nl + 1 : NULL;
  }
  if (exited && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 125)
    snprintf(why, cap, "could not set up its private %s node", TUN_PATH);
  else if (pick)
    snprintf(why, cap, "%.150s", pick);
  else if (exited)
    snprintf(why, cap, "exited (status %d) before the tap device was up", wstatus);
  else
    snprintf(why, cap, "tap device not up within %d ms (pid %d)", READY_TIMEOUT_MS, (int)pid);
}

pid_t cc_sbx_net_attach(const cc_sbx_net *n, pid_t agent_pid, bool nested, const cc_sbx_cg *cg,
                        int *exit_fd, char *why, size_t whycap) {
  *exit_fd = -1;
  if (n->tun == CC_SBX_TUN_NONE) {
    snprintf(why, whycap, "%s", n->why);
    return 0;
  }
  /* bwrap nests a second user namespace to switch to uid 1000; the network namespace belongs
   * to the outer one, which slirp4netns must join: the parent of the agent's user ns. */
  char nspath[64];
  snprintf(nspath, sizeof nspath, "/proc/%d/ns/user", (int)agent_pid);
  int inner = open(nspath, O_RDONLY | O_CLOEXEC);
  int outer = inner >= 0 && nested ? ioctl(inner, NS_GET_PARENT) : inner;
  if (inner >= 0 && nested) close(inner);
  int rp[2] = {-1, -1}, ep[2] = {-1, -1};
  int log = memfd_create("slirp4netns-log", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (outer < 0 || log < 0 || devnull < 0 || pipe2(rp, O_CLOEXEC) != 0 ||
      pipe2(ep, O_CLOEXEC) != 0 || ftruncate(log, LOG_BYTES) != 0 ||
      fcntl(log, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
    snprintf(why, whycap, "cannot prepare slirp4netns: %s", strerror(errno));
    if (outer >= 0) close(outer);
    if (log >= 0) close(log);
    if (devnull >= 0) close(devnull);
    if (rp[0] >= 0) close(rp[0]), close(rp[1]);
    if (ep[0] >= 0) close(ep[0]), close(ep[1]);
    return 0;
  }
  char pidarg[16];
  snprintf(pidarg, sizeof pidarg, "%d", (int)agent_pid);
  /* Its own seccomp filter.  (Not --enable-sandbox: that switches to uid 0 of the sandbox's
   * user namespace, which bwrap deliberately leaves unmapped.) */
  char *argv[] = {"slirp4netns",
                  "--configure",
                  "--mtu=65520",
                  "--disable-host-loopback",
                  "--enable-seccomp",
                  "--userns-path=/proc/self/fd/4",
                  "--ready-fd=3",
                  "--exit-fd=5",
                  pidarg,
                  "tap0",
                  NULL};
  char *envp[] = {"PATH=/usr/bin:/bin", NULL};
  int src[] = {devnull, devnull, log, rp[1], outer, ep[0]};
  int dst[] = {0, 1, 2, 3, 4, 5};
  /* Not tied to this thread's life (the caller is often a short-lived HTTP connection
   * thread, whose end would SIGKILL it a few seconds after create): it ends when the
   * sandbox's teardown kills it or, if sandboxd itself dies, when the write end of its
   * exit pipe (held by sandboxd only) closes. */
  pid_t pid = fork();
  if (pid == 0)
    cc_sbx_child_exec(n->slirp, argv, envp, cg, n->host_uid, n->drop, false, src, dst, 6,
                      n->tun == CC_SBX_TUN_PRIVATE ? private_tun : NULL, n);
  close(rp[1]);
  close(outer);
  close(devnull);
  close(ep[0]);
  if (pid < 0) {
    snprintf(why, whycap, "fork: %s", strerror(errno));
    close(rp[0]), close(log), close(ep[1]);
    return 0;
  }
  /* Wait (bounded) until the tap device is configured, so the first command has network. */
  struct pollfd pf = {.fd = rp[0], .events = POLLIN};
  char c;
  int pr;
  do pr = poll(&pf, 1, READY_TIMEOUT_MS);
  while (pr < 0 && errno == EINTR);
  bool ok = pr == 1 && read(rp[0], &c, 1) == 1;
  close(rp[0]);
  if (!ok) {
    int ws = 0;
    bool exited = waitpid(pid, &ws, WNOHANG) == pid;
    if (!exited) {
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
    }
    read_log(log, pid, ws, exited, why, whycap);
    close(log);
    close(ep[1]);
    return 0;
  }
  close(log);
  *exit_fd = ep[1];
  return pid;
}
