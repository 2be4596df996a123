/*
 * cc_sbx: the host side of the sandbox runtime (see cc_sbx.h for the model).  This file holds
 * the runtime object (its start-up probes, starting and stopping the I/O thread), the
 * registry of sandboxes and their lifecycle (create, open, kill, info, freeze, usage), and
 * the error helpers every file of the runtime uses; cc_sbx_priv.h lists the other files.
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

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "cc_sbx_priv.h"

#define CREATE_TIMEOUT_MS 20000

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

cc_status cc_sbx_fail(cc_sbx_err *err, cc_sbx_errkind k, int e, const char *fmt, ...) {
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

cc_sbx_errkind cc_sbx_errno_kind(int e) {
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
  return cc_sbx_fail(err, cc_sbx_errno_kind(e), e, "%s: %s: %s", what, path ? path : "",
                     strerror(e));
}

uint64_t cc_sbx_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void cc_sbx_deadline_ts(struct timespec *ts, int timeout_ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += timeout_ms / 1000;
  ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) ts->tv_sec++, ts->tv_nsec -= 1000000000L;
}

/* ---- sandboxes: references ------------------------------------------------------------- */

static void sbx_free(cc_sbx *sbx) {
  while (sbx->procs) {
    proc *p = sbx->procs;
    sbx->procs = p->next;
    cc_sbx_proc_unref(p);
  }
  cc_sbx_close_launch_fds(sbx);
  cc_sbx_cg_close_fds(&sbx->cg);
  if (sbx->sock >= 0) close(sbx->sock);
  if (sbx->bwrap_pidfd >= 0) close(sbx->bwrap_pidfd);
  if (sbx->bwrap_errfd >= 0) close(sbx->bwrap_errfd);
  if (sbx->slirp_exit_fd >= 0) close(sbx->slirp_exit_fd); /* slirp4netns exits */
  cc_sbx_dproxy_stop(sbx->dproxy);
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

void cc_sbx_unref(cc_sbx *sbx) {
  cc_sbx_runtime *rt = sbx->rt;
  pthread_mutex_lock(&rt->lock);
  bool last = --sbx->refs == 0;
  pthread_mutex_unlock(&rt->lock);
  if (last) sbx_free(sbx);
}

void cc_sbx_ref(cc_sbx *sbx) {
  pthread_mutex_lock(&sbx->rt->lock);
  sbx->refs++;
  pthread_mutex_unlock(&sbx->rt->lock);
}

void cc_sbx_release(cc_sbx *sbx) {
  if (sbx) cc_sbx_unref(sbx);
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
      /* egress rules: one deny rule (TEST-NET-1) installed the way every sandbox gets them */
      cc_sbx_cidr test;
      cc_sbx_cidr_parse("192.0.2.0/24", &test);
      cc_sbx_egress rules = {.deny = &test, .n_deny = 1};
      if (in.egress && rt->nft[0]) {
        if (cc_sbx_set_egress(s, &rules, &e) == CC_OK)
          snprintf(rt->info.egress_rules, sizeof rt->info.egress_rules,
                   "nftables (%.200s) in each sandbox's network namespace", rt->nft);
        else /* every later call then fails at once with this reason */
          snprintf(rt->info.egress_rules, sizeof rt->info.egress_rules, "unavailable: %.200s",
                   e.msg), rt->nft[0] = 0;
      }
      cc_sbx_release(s);
      cc_sbx_kill(rt, id);
      if (!in.egress) snprintf(n->why, sizeof n->why, "%s", in.egress_why);
    } else {
      snprintf(n->why, sizeof n->why, "the probe sandbox did not start: %.150s", e.msg);
    }
    if (!in.egress) n->tun = CC_SBX_TUN_NONE;
  }
  rt->info.egress_available = n->tun != CC_SBX_TUN_NONE;
  if (!rt->info.egress_available && !rt->info.egress_rules[0])
    snprintf(rt->info.egress_rules, sizeof rt->info.egress_rules,
             "not needed: sandboxes have no egress");
  if (rt->info.egress_available)
    snprintf(rt->info.egress, sizeof rt->info.egress,
             "%.60s (%.120s; its own seccomp filter; host loopback disabled)", n->slirp, n->how);
  else
    snprintf(rt->info.egress, sizeof rt->info.egress, "%.200s; sandboxes get loopback only",
             n->why);
}

/* The writable system (root inside only): builds the base, then proves it with a probe
 * sandbox on a disk; either failure leaves the system read-only, with the reason in the
 * report (as egress does). */
static void setup_system(cc_sbx_runtime *rt) {
  cc_sbx_sys *s = &rt->sys;
  const char *why = NULL;
  char buf[300];
  if (!rt->info.root_inside)
    why = rt->info.root ? "no root inside" : "sandboxd is not root";
  else if (rt->cfg.read_only_system)
    why = "--read-only-system";
  int ns = why ? -1 : cc_sbx_make_userns(rt, buf, sizeof buf);
  if (!why && ns < 0) why = buf;
  if (!why) {
    bool ok = cc_sbx_sys_init(s, rt->state_dir, rt->host_uid, ns, cc_sbx_passwd(), cc_sbx_group());
    close(ns);
    if (!ok) {
      snprintf(buf, sizeof buf, "%s", s->why);
      why = buf;
    } else if (!cc_sbx_launch_probe(rt, buf, sizeof buf)) {
      cc_sbx_sys_cleanup(s);
      why = buf;
    } else {
      cc_sbx_sys_spares_start(s, rt->cfg.limits.home_bytes);
    }
  }
  rt->info.writable_system = s->on;
  if (s->on)
    snprintf(rt->info.system, sizeof rt->info.system,
             "writable (each sandbox's /, /usr and /var/lib/dpkg are overlays on its own disk "
             "over the host's /usr and /var/lib/dpkg, %zu entries an ordinary user cannot read "
             "hidden, and a copy of /etc and apt's state, %zu entries; built in %.0f ms)",
             s->masked, s->copied, s->build_ms);
  else
    snprintf(rt->info.system, sizeof rt->info.system, "read-only: %.280s", why);
}

cc_status cc_sbx_runtime_new(const cc_sbx_config *cfg, cc_sbx_runtime **out, cc_sbx_err *err) {
  *out = NULL;
  if (!cfg || !cfg->state_dir || !cfg->state_dir[0])
    return cc_sbx_fail(err, CC_SBX_ERR_INVALID_ARG, 0, "state_dir is required");
  cc_sbx_runtime *rt = calloc(1, sizeof *rt);
  if (!rt) return cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, ENOMEM, "out of memory");
  rt->cfg = *cfg;
  cc_sbx_config def;
  cc_sbx_config_init(&def);
  merge_limits(&rt->cfg.limits, &def.limits, &cfg->limits);
  if (!rt->cfg.sub_queue_bytes) rt->cfg.sub_queue_bytes = def.sub_queue_bytes;
  if (rt->cfg.sub_queue_bytes < 2 * CC_SBX_CHUNK_MAX)
    rt->cfg.sub_queue_bytes = 2 * CC_SBX_CHUNK_MAX;
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
    st = cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, errno, "cannot create state dir %s: %s",
                     cfg->state_dir, strerror(errno));
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
    st = cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, ENOENT,
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
    st = cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, errno, "sandbox agent %s not readable: %s",
                     rt->info.agent, strerror(errno));
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
  cc_sbx_egress_init(rt);
  /* cgroups */
  char prefix[64];
  if (cfg->cgroup_prefix)
    snprintf(prefix, sizeof prefix, "%s", cfg->cgroup_prefix);
  else
    snprintf(prefix, sizeof prefix, "codecanvas-%d", (int)getpid());
  rt->prefix = strdup(prefix);
  char cgwhy[600] = "";
  if (!cc_sbx_cg_probe(&rt->cg, cfg->cgroup, prefix, cgwhy, sizeof cgwhy) &&
      !cfg->allow_no_cgroups) {
    st = cc_sbx_fail(
        err, CC_SBX_ERR_SYSTEM, EPERM,
        "%s; run as root, delegate a cgroup v2 subtree, or allow running without limits", cgwhy);
    goto fail;
  }
  rt->info.cgroup = rt->cg.mode;
  rt->seccomp = cc_sbx_seccomp_program(&rt->seccomp_len);
  /* Root inside where we can write a two-range uid map (we are root); if that probe fails,
   * sandboxes run as before (no uid 0 inside) and the report says why. */
  rt->info.root_inside = rt->info.root && !cfg->no_root_inside;
  char riwhy[300] = "";
  if (rt->info.root_inside && !cc_sbx_launch_probe(rt, riwhy, sizeof riwhy))
    rt->info.root_inside = false;
  if (!rt->info.root_inside && !cc_sbx_launch_probe(rt, why, sizeof why)) {
    st = cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, EPERM, "%s", why);
    goto fail;
  }
  setup_system(rt);
  rt->epfd = epoll_create1(EPOLL_CLOEXEC);
  rt->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  rt->t_wake.kind = TAG_WAKE;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &rt->t_wake};
  if (rt->epfd < 0 || rt->wakefd < 0 || epoll_ctl(rt->epfd, EPOLL_CTL_ADD, rt->wakefd, &ev) != 0 ||
      pthread_create(&rt->io, NULL, cc_sbx_io_main, rt) != 0) {
    st = cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, errno, "cannot start the I/O thread: %s",
                     strerror(errno));
    rt->io = 0;
    goto fail;
  }
  probe_egress(rt);
  /* A report longer than the buffer is cut, which is fine for a human-readable line. */
  char rootuid[16];
  snprintf(rootuid, sizeof rootuid, "%u", rt->host_uid + 1);
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif
  int rn = snprintf(
      rt->info.report, sizeof rt->info.report,
      "sandbox runtime: %s (sandbox user 1000 = host uid %u%s%s%.200s), bubblewrap %s, agent %s; "
      "limits: %s%.300s; egress: %s%.250s; egress rules: %.200s; seccomp: %s; system: %.300s",
      rt->info.root ? "root" : "unprivileged", rt->host_uid,
      rt->info.root_inside ? ", root 0 = host uid " : riwhy[0] ? "; no root inside: " : "",
      rt->info.root_inside ? rootuid : "", rt->info.root_inside ? "" : riwhy, rt->info.bwrap,
      rt->info.agent,
      rt->cg.mode == CC_SBX_CGROUP_V1   ? "cgroup v1 (memory, pids, cpu, freezer)"
      : rt->cg.mode == CC_SBX_CGROUP_V2 ? "cgroup v2 (memory, pids, cpu)"
                                        : "NONE — memory/pids/CPU are NOT limited: ",
      rt->cg.mode == CC_SBX_CGROUP_NONE ? cgwhy : "",
      rt->info.egress_available ? "slirp4netns " : "unavailable: ", rt->info.egress,
      rt->info.egress_rules,
      rt->seccomp_len ? "deny list (keyrings, bpf, perf, io_uring, mounts, namespaces...)"
                      : "NONE (no filter for this architecture)",
      rt->info.system);
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
    cc_sbx_wake(rt);
    pthread_join(rt->io, NULL);
    while (rt->dead) {
      cc_sbx *d = rt->dead;
      rt->dead = d->next_dead;
      cc_sbx_unref(d);
    }
  }
  cc_sbx_cg_root_cleanup(&rt->cg);
  cc_sbx_sys_cleanup(&rt->sys);
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

bool cc_sbx_env_set(char ***list, size_t *n, const char *name, const char *value) {
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
    return cc_sbx_fail(err, CC_SBX_ERR_INVALID_ARG, 0, "invalid sandbox id");
  cc_sbx *sbx = calloc(1, sizeof *sbx);
  if (!sbx) return cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, ENOMEM, "out of memory");
  sbx->rt = rt;
  snprintf(sbx->id, sizeof sbx->id, "%s", opts->id);
  sbx->template_id = strdup(opts->template_id ? opts->template_id : "base");
  merge_limits(&sbx->limits, &rt->cfg.limits, &opts->limits);
  sbx->allow_internet = opts->allow_internet;
  sbx->resume_disk = opts->resume_disk;
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
  sbx->seccomp_fd = sbx->userns_fd = sbx->sudo_fd = sbx->slirp_exit_fd = sbx->bootid_fd = -1;
  for (int i = 0; i < CC_SBX_CG_NCTRL; i++) sbx->cg.procs_fd[i] = -1;
  sbx->t_sock = (tag){TAG_SOCK, sbx};
  sbx->t_pidfd = (tag){TAG_PIDFD, sbx};
  sbx->refs = 1;
  cc_status st;
  /* base environment, envd order */
  bool ok = cc_sbx_env_set(&sbx->base_env, &sbx->n_base, "PATH", CC_SBX_SANDBOX_PATH) &&
            cc_sbx_env_set(&sbx->base_env, &sbx->n_base, "HOME", "/home/user") &&
            cc_sbx_env_set(&sbx->base_env, &sbx->n_base, "USER", "user") &&
            cc_sbx_env_set(&sbx->base_env, &sbx->n_base, "LOGNAME", "user") &&
            cc_sbx_env_set(&sbx->base_env, &sbx->n_base, "E2B_SANDBOX", "true") &&
            cc_sbx_env_set(&sbx->base_env, &sbx->n_base, "E2B_SANDBOX_ID", sbx->id) &&
            cc_sbx_env_set(&sbx->base_env, &sbx->n_base, "E2B_TEMPLATE_ID", sbx->template_id);
  for (size_t i = 0; ok && i < opts->n_envs; i++)
    if (opts->envs[i].name && opts->envs[i].value)
      ok = cc_sbx_env_set(&sbx->base_env, &sbx->n_base, opts->envs[i].name, opts->envs[i].value);
  if (!ok || !sbx->template_id) {
    sbx_free(sbx);
    return cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, ENOMEM, "out of memory");
  }
  pthread_mutex_lock(&rt->lock);
  if (lookup(rt, sbx->id)) {
    pthread_mutex_unlock(&rt->lock);
    sbx_free(sbx);
    return cc_sbx_fail(err, CC_SBX_ERR_EXISTS, EEXIST, "sandbox %s already exists", opts->id);
  }
  sbx->next = rt->sandboxes;
  rt->sandboxes = sbx;
  sbx->in_registry = true;
  sbx->refs = 2; /* registry + this call */
  pthread_mutex_unlock(&rt->lock);

  char why[600] = "";
  int sp[2] = {-1, -1};
  if (!cc_sbx_cg_create(&rt->cg, sbx->id, &sbx->limits, &sbx->cg, why, sizeof why)) {
    st = cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, errno, "%s", why);
    goto fail_unregistered;
  }
  if (!cc_sbx_launch_prepare(rt, sbx, why, sizeof why)) {
    st = cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, errno, "cannot prepare sandbox: %s", why);
    goto fail_unregistered;
  }
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0) {
    st = cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, errno, "cannot prepare sandbox: %s", strerror(errno));
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
  cc_sbx_wake(rt);

  pthread_mutex_lock(&sbx->lock);
  struct timespec ts;
  cc_sbx_deadline_ts(&ts, CREATE_TIMEOUT_MS);
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
    int exit_fd = -1;
    pid_t sp = cc_sbx_net_attach(&rt->net, sbx->agent_pid, !rt->info.root_inside, &sbx->cg,
                                 &exit_fd, nwhy, sizeof nwhy);
    pthread_mutex_lock(&sbx->lock);
    sbx->slirp_pid = sp;
    sbx->slirp_exit_fd = exit_fd;
    if (!sp) snprintf(sbx->net_why, sizeof sbx->net_why, "slirp4netns: %.180s", nwhy);
    pthread_mutex_unlock(&sbx->lock);
  }
  if (sbx->disk) cc_sbx_sys_spares_refill(&rt->sys); /* now that it started (see there) */
  if (!ready) {
    cc_sbx_kill(rt, sbx->id);
    cc_sbx_unref(sbx);
    return cc_sbx_fail(err, CC_SBX_ERR_GONE, 0, "%s", why);
  }
  if (out)
    *out = sbx;
  else
    cc_sbx_unref(sbx);
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
  if (sbx->disk && !sbx->resume_disk) cc_sbx_sys_disk_drop(&rt->sys, sbx->id);
  cc_sbx_unref(sbx); /* registry */
  cc_sbx_unref(sbx); /* ours */
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

static cc_status kill_sandbox(cc_sbx_runtime *rt, const char *id, bool keep_disk) {
  pthread_mutex_lock(&rt->lock);
  cc_sbx *sbx = id ? lookup(rt, id) : NULL;
  if (sbx) unregister(rt, sbx);
  pthread_mutex_unlock(&rt->lock);
  if (!sbx) return CC_NOT_FOUND;
  pthread_mutex_lock(&sbx->lock);
  sbx->keep_disk = keep_disk;
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
  cc_sbx_deadline_ts(&ts, 10000);
  while (!sbx->torn_down)
    if (pthread_cond_timedwait(&sbx->cond, &sbx->lock, &ts) == ETIMEDOUT) break;
  bool down = sbx->torn_down;
  pthread_mutex_unlock(&sbx->lock);
  if (!down && launched) {
    kill(bw, SIGKILL);
    pthread_mutex_lock(&sbx->lock);
    cc_sbx_deadline_ts(&ts, 10000);
    while (!sbx->torn_down)
      if (pthread_cond_timedwait(&sbx->cond, &sbx->lock, &ts) == ETIMEDOUT) break;
    pthread_mutex_unlock(&sbx->lock);
  }
  /* Its domain proxy's socket would keep the network namespace alive. */
  pthread_mutex_lock(&sbx->lock);
  cc_sbx_dproxy *proxy = sbx->dproxy;
  sbx->dproxy = NULL;
  pthread_mutex_unlock(&sbx->lock);
  cc_sbx_dproxy_stop(proxy);
  /* Anything else in the cgroup (slirp4netns, a task that escaped the namespace). */
  cc_sbx_cg_kill(&sbx->cg);
  cc_sbx_cg_destroy(&sbx->cg);
  /* Its overlays die with its mount namespace; the host's copies and the tmpfs go now. */
  if (sbx->disk && !keep_disk) cc_sbx_sys_disk_drop(&rt->sys, sbx->id);
  cc_sbx_unref(sbx); /* the registry's reference */
  return CC_OK;
}

cc_status cc_sbx_kill(cc_sbx_runtime *rt, const char *id) {
  return kill_sandbox(rt, id, false);
}

cc_status cc_sbx_kill_keep_disk(cc_sbx_runtime *rt, const char *id) {
  return kill_sandbox(rt, id, true);
}

bool cc_sbx_disk_kept(cc_sbx_runtime *rt, const char *id) {
  return rt->sys.on && valid_id(id) && cc_sbx_sys_disk_exists(&rt->sys, id);
}

size_t cc_sbx_disk_prune(cc_sbx_runtime *rt, bool (*keep)(const char *id, void *ctx), void *ctx) {
  if (!rt->sys.on) return 0;
  char dir[600];
  snprintf(dir, sizeof dir, "%s/disks", rt->sys.dir);
  DIR *d = opendir(dir);
  size_t n = 0;
  for (struct dirent *e; d && (e = readdir(d));) {
    if (!valid_id(e->d_name) || keep(e->d_name, ctx)) continue;
    pthread_mutex_lock(&rt->lock);
    bool live = lookup(rt, e->d_name) != NULL;
    pthread_mutex_unlock(&rt->lock);
    if (!live) cc_sbx_sys_disk_drop(&rt->sys, e->d_name), n++;
  }
  if (d) closedir(d);
  return n;
}

void cc_sbx_disk_drop(cc_sbx_runtime *rt, const char *id) {
  if (!rt->sys.on || !valid_id(id)) return;
  pthread_mutex_lock(&rt->lock);
  bool live = lookup(rt, id) != NULL;
  pthread_mutex_unlock(&rt->lock);
  if (!live) cc_sbx_sys_disk_drop(&rt->sys, id);
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
      ok = cc_sbx_env_set(&sbx->base_env, &sbx->n_base, envs[i].name, envs[i].value);
  return ok ? CC_OK : CC_INTERNAL;
}

cc_status cc_sbx_freeze(cc_sbx *sbx, bool frozen, cc_sbx_err *err) {
  pthread_mutex_lock(&sbx->lock);
  cc_status st = CC_OK;
  if (sbx->state != ST_READY || sbx->kill_requested) {
    st = cc_sbx_fail(err, CC_SBX_ERR_GONE, 0, "sandbox %s is not running", sbx->id);
  } else if (sbx->frozen != frozen) {
    if (cc_sbx_cg_freeze(&sbx->cg, frozen))
      sbx->frozen = frozen;
    else
      st = cc_sbx_fail(err, CC_SBX_ERR_GONE, errno, "cannot %s sandbox %s: %s",
                       frozen ? "freeze" : "thaw", sbx->id,
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
  /* With a writable system the disk is a host mount the sandbox cannot move. */
  if (sbx->disk &&
      cc_sbx_sys_disk_usage(&sbx->rt->sys, sbx->id, &out->disk_bytes, &out->disk_total))
    return CC_OK;
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
