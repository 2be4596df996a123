/*
 * cc_sbx_egress: egress rules of a sandbox (allowed and denied IP addresses / CIDR blocks),
 * enforced by nftables in the sandbox's own network namespace.
 *
 * Every packet a sandbox sends out leaves through its network namespace, whose only way out is
 * slirp4netns's tap device.  The rules are one nftables table in that namespace (an output
 * chain: loopback always passes, then destinations in the allow set pass, then destinations in
 * the deny set are refused with an ICMP "administratively prohibited", so the sender gets
 * EHOSTUNREACH at once; everything else passes).  Changing a network namespace's nftables needs
 * CAP_NET_ADMIN over the user namespace that owns it, which no process inside holds (root
 * inside keeps only the capabilities listed in cc_sbx_launch.c; `user` none), and the seccomp
 * filter refuses new user namespaces, so nothing inside can flush, replace or route around the
 * table; raw and packet sockets need CAP_NET_RAW, which nothing inside holds either.
 *
 * The table is written with Debian's nftables, from a script that contains no string we did
 * not print ourselves (addresses are parsed here and printed in canonical form).  As root, by
 * libnftables in a short-lived thread of ours that joins only the sandbox's network namespace
 * (a thread may; its netlink socket is then that namespace's), serialised by a runtime-wide
 * lock: about 1 ms.  Unprivileged, entering that namespace means joining the user namespace
 * owning it first, which a multi-threaded process may not, so a forked child does both and
 * execs `nft -f`.  Either way one script is one transaction, so a change replaces the whole
 * table atomically: there is no moment without rules.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <nftables/libnftables.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cc_sbx_priv.h"

#define NFT_TIMEOUT_MS 5000
#define LOG_BYTES 4096 /* nft's stderr: a sealed memfd, never more than this */
#define TABLE "codecanvas_egress"

bool cc_sbx_cidr_parse(const char *s, cc_sbx_cidr *out) {
  memset(out, 0, sizeof *out);
  if (!s) return false;
  size_t n = strlen(s);
  if (n == 0 || n > 49) return false; /* the longest IPv6 text plus "/128" */
  char addr[64];
  const char *slash = strchr(s, '/');
  size_t an = slash ? (size_t)(slash - s) : n;
  memcpy(addr, s, an);
  addr[an] = 0;
  bool v6 = strchr(addr, ':') != NULL;
  if (inet_pton(v6 ? AF_INET6 : AF_INET, addr, out->addr) != 1) return false;
  unsigned max = v6 ? 128 : 32, prefix = max;
  if (slash) {
    const char *p = slash + 1;
    size_t pn = strlen(p);
    /* decimal digits only, no sign, no leading zero (so "/08" and "/+8" are refused) */
    if (pn == 0 || pn > 3 || (pn > 1 && p[0] == '0')) return false;
    prefix = 0;
    for (size_t i = 0; i < pn; i++) {
      if (p[i] < '0' || p[i] > '9') return false;
      prefix = prefix * 10 + (unsigned)(p[i] - '0');
    }
    if (prefix > max) return false;
  }
  out->family = v6 ? 6 : 4;
  out->prefix = (uint8_t)prefix;
  /* the network address: host bits cleared ("10.1.2.3/8" is 10.0.0.0/8) */
  for (unsigned bit = prefix; bit < max; bit++)
    out->addr[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
  return true;
}

void cc_sbx_cidr_format(const cc_sbx_cidr *c, char out[CC_SBX_CIDR_TEXT]) {
  char a[INET6_ADDRSTRLEN] = "";
  inet_ntop(c->family == 6 ? AF_INET6 : AF_INET, c->addr, a, sizeof a);
  snprintf(out, CC_SBX_CIDR_TEXT, "%s/%u", a, (unsigned)c->prefix);
}

void cc_sbx_egress_init(cc_sbx_runtime *rt) {
  pthread_mutex_init(&rt->nft_lock, NULL);
  if (rt->info.root) {
    snprintf(rt->nft, sizeof rt->nft, "libnftables");
    return;
  }
  if (!cc_sbx_find_in_path("nft", rt->nft, sizeof rt->nft)) {
    static const char *const fallback[] = {"/usr/sbin/nft", "/sbin/nft"};
    rt->nft[0] = 0;
    for (size_t i = 0; i < sizeof fallback / sizeof fallback[0] && !rt->nft[0]; i++)
      if (access(fallback[i], X_OK) == 0) snprintf(rt->nft, sizeof rt->nft, "%s", fallback[i]);
  }
  if (!rt->nft[0])
    snprintf(rt->info.egress_rules, sizeof rt->info.egress_rules,
             "unavailable: nft (Debian package nftables) is not installed");
}

/* One set of the table: its elements, or nothing when it has none. */
static void print_set(FILE *f, const char *name, int family, const cc_sbx_cidr *v, size_t n) {
  bool any = false;
  for (size_t i = 0; i < n; i++) {
    if (v[i].family != family) continue;
    char t[CC_SBX_CIDR_TEXT];
    cc_sbx_cidr_format(&v[i], t);
    if (!any)
      fprintf(f, "  set %s { type %s; flags interval; auto-merge; elements = { ", name,
              family == 6 ? "ipv6_addr" : "ipv4_addr");
    fprintf(f, "%s%s", any ? ", " : "", t);
    any = true;
  }
  if (any) fprintf(f, " } }\n");
}

static bool has_family(const cc_sbx_cidr *v, size_t n, int family) {
  for (size_t i = 0; i < n; i++)
    if (v[i].family == family) return true;
  return false;
}

/* The nft script replacing the table (or only removing it, when there are no rules).  With
 * domains, a nat chain first sends IPv4 TCP 80/443 not allowed by address to the domain
 * proxy (cc_sbx_dproxy.c), whose connections the filter chain then lets through (a redirect
 * is a DNAT; nothing else in the namespace makes one), and DNS stays reachable. */
static void print_script(FILE *f, const cc_sbx_egress *r) {
  fprintf(f, "table inet " TABLE "\ndelete table inet " TABLE "\n");
  if (!r->n_allow && !r->n_deny && !r->n_domains) return;
  fprintf(f, "table inet " TABLE " {\n");
  print_set(f, "allow4", 4, r->allow, r->n_allow);
  print_set(f, "allow6", 6, r->allow, r->n_allow);
  print_set(f, "deny4", 4, r->deny, r->n_deny);
  print_set(f, "deny6", 6, r->deny, r->n_deny);
  if (r->n_domains) {
    fprintf(f, "  chain domains {\n    type nat hook output priority -100; policy accept;\n"
               "    oifname \"lo\" accept\n");
    if (has_family(r->allow, r->n_allow, 4)) fprintf(f, "    ip daddr @allow4 accept\n");
    fprintf(f, "    ip protocol tcp tcp dport { 80, 443 } redirect to :%d\n  }\n",
            CC_SBX_DPROXY_PORT);
  }
  fprintf(f,
          "  chain output {\n    type filter hook output priority 0; policy accept;\n"
          "    oifname \"lo\" accept\n");
  if (r->n_domains)
    fprintf(f, "    ct status dnat accept\n"
               "    ip daddr { 10.0.2.3, 8.8.8.8 } meta l4proto { tcp, udp } th dport 53 accept\n");
  if (has_family(r->allow, r->n_allow, 4)) fprintf(f, "    ip daddr @allow4 accept\n");
  if (has_family(r->allow, r->n_allow, 6)) fprintf(f, "    ip6 daddr @allow6 accept\n");
  if (has_family(r->deny, r->n_deny, 4))
    fprintf(f, "    ip daddr @deny4 reject with icmpx admin-prohibited\n");
  if (has_family(r->deny, r->n_deny, 6))
    fprintf(f, "    ip6 daddr @deny6 reject with icmpx admin-prohibited\n");
  fprintf(f, "  }\n}\n");
}

typedef struct {
  int userns, netns;
} ns_fds;

/* In the forked child (raw syscalls only): the user namespace owning the sandbox's network
 * namespace, then that network namespace. */
static void enter_netns(const void *arg) {
  const ns_fds *f = arg;
  if (syscall(SYS_setns, f->userns, CLONE_NEWUSER) != 0) _exit(125);
  if (syscall(SYS_setns, f->netns, CLONE_NEWNET) != 0) _exit(125);
}

/* Unprivileged: runs `nft -f` with the script in a child that joins the user namespace owning
 * `netns` (ours: bwrap made it, so we have every capability in it) and then `netns`.  false
 * with why. */
static bool run_nft_exec(cc_sbx_runtime *rt, int netns, const char *text, size_t len, char *why,
                         size_t cap) {
  int log = memfd_create("nft-log", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  int script = memfd_create("nft-script", MFD_CLOEXEC);
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  ns_fds f = {.userns = ioctl(netns, NS_GET_USERNS), .netns = netns};
  bool ok = false;
  if (log < 0 || script < 0 || devnull < 0 || f.userns < 0 || ftruncate(log, LOG_BYTES) != 0 ||
      fcntl(log, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) != 0 ||
      write(script, text, len) != (ssize_t)len || lseek(script, 0, SEEK_SET) != 0) {
    snprintf(why, cap, "cannot prepare nft: %s", strerror(errno));
    goto out;
  }
  char *argv[] = {"nft", "-f", "/dev/stdin", NULL};
  char *envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
  int src[] = {script, devnull, log};
  int dst[] = {0, 1, 2};
  pid_t pid = fork();
  if (pid == 0)
    cc_sbx_child_exec(rt->nft, argv, envp, NULL, rt->host_uid, false, true, src, dst, 3,
                      enter_netns, &f);
  if (pid < 0) {
    snprintf(why, cap, "fork: %s", strerror(errno));
    goto out;
  }
  /* bounded wait: a pidfd polled for at most NFT_TIMEOUT_MS */
  int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
  struct pollfd p = {.fd = pfd, .events = POLLIN};
  int pr = 1;
  if (pfd >= 0) {
    do pr = poll(&p, 1, NFT_TIMEOUT_MS);
    while (pr < 0 && errno == EINTR);
    close(pfd);
  }
  if (pr == 0) kill(pid, SIGKILL);
  int ws = 0;
  while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
  }
  if (pr != 0 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0) {
    ok = true;
    goto out;
  }
  char msg[LOG_BYTES + 1];
  ssize_t k = pread(log, msg, LOG_BYTES, 0);
  msg[k > 0 ? k : 0] = 0;
  msg[strcspn(msg, "\n")] = 0;
  if (pr == 0)
    snprintf(why, cap, "nft did not finish within %d ms", NFT_TIMEOUT_MS);
  else if (WIFEXITED(ws) && WEXITSTATUS(ws) == 125)
    snprintf(why, cap, "nft could not enter the sandbox's network namespace");
  else
    snprintf(why, cap, "nft failed: %.200s", msg[0] ? msg : "no message");
out:
  if (f.userns >= 0) close(f.userns);
  if (script >= 0) close(script);
  if (log >= 0) close(log);
  if (devnull >= 0) close(devnull);
  return ok;
}

typedef struct {
  int netns;
  const char *script;
  bool ok;
  char why[300];
} lib_job;

/* The thread of one libnftables run: it joins the sandbox's network namespace (only this
 * thread changes namespace; it ends right after), so the netlink socket libnftables opens is
 * that namespace's. */
static void *lib_main(void *arg) {
  lib_job *j = arg;
  if (setns(j->netns, CLONE_NEWNET) != 0) {
    snprintf(j->why, sizeof j->why, "cannot enter the sandbox's network namespace: %s",
             strerror(errno));
    return NULL;
  }
  struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
  if (!ctx) {
    snprintf(j->why, sizeof j->why, "libnftables: cannot create a context");
    return NULL;
  }
  nft_ctx_buffer_output(ctx);
  nft_ctx_buffer_error(ctx);
  if (nft_run_cmd_from_buffer(ctx, j->script) == 0) {
    j->ok = true;
  } else {
    const char *e = nft_ctx_get_error_buffer(ctx);
    snprintf(j->why, sizeof j->why, "nftables: %.*s", (int)strcspn(e ? e : "", "\n"), e ? e : "");
  }
  nft_ctx_free(ctx);
  return NULL;
}

/* Root: runs the script with libnftables in the sandbox's network namespace (a thread of our
 * own, one run at a time per runtime).  false with why. */
static bool run_nft_lib(cc_sbx_runtime *rt, int netns, const char *text, char *why, size_t cap) {
  lib_job j = {.netns = netns, .script = text};
  pthread_t t;
  pthread_mutex_lock(&rt->nft_lock);
  int e = pthread_create(&t, NULL, lib_main, &j);
  if (e == 0) pthread_join(t, NULL);
  pthread_mutex_unlock(&rt->nft_lock);
  if (e != 0) snprintf(j.why, sizeof j.why, "cannot start a thread: %s", strerror(e));
  if (!j.ok) snprintf(why, cap, "%s", j.why);
  return j.ok;
}

cc_status cc_sbx_set_egress(cc_sbx *sbx, const cc_sbx_egress *rules, cc_sbx_err *err) {
  cc_sbx_runtime *rt = sbx->rt;
  static const cc_sbx_egress none = {0};
  if (!rules) rules = &none;
  if (rules->n_allow > CC_SBX_EGRESS_MAX || rules->n_deny > CC_SBX_EGRESS_MAX)
    return cc_sbx_fail(err, CC_SBX_ERR_LIMIT, 0, "more than %d egress rules in one list",
                       CC_SBX_EGRESS_MAX);
  for (size_t i = 0; i < rules->n_allow + rules->n_deny; i++) {
    const cc_sbx_cidr *c = i < rules->n_allow ? &rules->allow[i] : &rules->deny[i - rules->n_allow];
    if ((c->family != 4 && c->family != 6) || c->prefix > (c->family == 4 ? 32 : 128))
      return cc_sbx_fail(err, CC_SBX_ERR_INVALID_ARG, 0, "invalid egress rule");
  }
  /* One change at a time per sandbox (the lock is not held while nft runs: the I/O thread and
   * other calls keep going). */
  pthread_mutex_lock(&sbx->lock);
  while (sbx->egress_busy) pthread_cond_wait(&sbx->cond, &sbx->lock);
  bool up = sbx->state == ST_READY && !sbx->kill_requested;
  bool attached = sbx->egress && sbx->slirp_pid > 0;
  pid_t agent = sbx->agent_pid;
  if (up && attached) sbx->egress_busy = true;
  pthread_mutex_unlock(&sbx->lock);
  if (!up) return cc_sbx_fail(err, CC_SBX_ERR_GONE, 0, "sandbox %s is not running", sbx->id);
  /* Without egress nothing leaves the sandbox: every rule holds already. */
  if (!attached) return CC_OK;

  cc_status st = CC_OK;
  char why[300] = "";
  char *text = NULL;
  size_t len = 0;
  int netns = -1;
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/ns/net", (int)agent);
  struct stat mine, theirs;
  if (!rt->nft[0]) {
    st = cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, 0, "egress rules %s", rt->info.egress_rules);
    goto out;
  }
  if (rules->n_domains && !rt->info.root) {
    st = cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, 0,
                     "domain egress rules need codecanvas-sandboxd to run as root");
    goto out;
  }
  netns = open(path, O_RDONLY | O_CLOEXEC);
  /* Never the host's own namespace (a recycled pid): the sandbox's is always a new one. */
  if (netns < 0 || fstat(netns, &theirs) != 0 || stat("/proc/self/ns/net", &mine) != 0 ||
      (theirs.st_dev == mine.st_dev && theirs.st_ino == mine.st_ino)) {
    st = cc_sbx_fail(err, CC_SBX_ERR_GONE, errno, "sandbox %s: no network namespace", sbx->id);
    goto out;
  }
  FILE *f = open_memstream(&text, &len);
  if (f) {
    print_script(f, rules);
    if (fclose(f) != 0) text = NULL;
  }
  if (!text) {
    st = cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, ENOMEM, "out of memory");
    goto out;
  }
  /* The proxy first (and its names), so that nothing is redirected to a port nobody serves. */
  cc_sbx_dproxy *proxy = sbx->dproxy;
  bool fresh = rules->n_domains && !proxy;
  if (fresh && !cc_sbx_dproxy_start(netns, &proxy, why, sizeof why)) {
    st = cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, 0, "domain rules for sandbox %s: %s", sbx->id, why);
    goto out;
  }
  /* A proxy in use gets the new names only once the new table holds (a failure keeps both). */
  if (fresh && !cc_sbx_dproxy_set_domains(proxy, rules->domains, rules->n_domains))
    st = cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, ENOMEM, "out of memory");
  else if (!(rt->info.root ? run_nft_lib(rt, netns, text, why, sizeof why)
                           : run_nft_exec(rt, netns, text, len, why, sizeof why)))
    st = cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, 0, "egress rules for sandbox %s: %s", sbx->id, why);
  else if (!fresh && proxy &&
           !cc_sbx_dproxy_set_domains(proxy, rules->domains, rules->n_domains))
    st = cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, ENOMEM, "out of memory (the new table holds)");
  /* Once started, a proxy stays until the sandbox dies (with no names when the rules have
   * none, and nothing redirected to it): its port is never given up and taken again. */
  bool keep = proxy && (!fresh || st == CC_OK);
  pthread_mutex_lock(&sbx->lock);
  sbx->dproxy = keep ? proxy : NULL;
  pthread_mutex_unlock(&sbx->lock);
  if (!keep) cc_sbx_dproxy_stop(proxy);
out:
  free(text);
  if (netns >= 0) close(netns);
  pthread_mutex_lock(&sbx->lock);
  sbx->egress_busy = false;
  pthread_cond_broadcast(&sbx->cond);
  pthread_mutex_unlock(&sbx->lock);
  if (st == CC_OK && err) memset(err, 0, sizeof *err);
  return st;
}
