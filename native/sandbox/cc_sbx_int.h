/*
 * cc_sbx_int: internal interfaces between the files of the sandbox runtime (not for C2).
 *
 * cc_sbx_cgroup.c: per-runtime parent cgroup and per-sandbox child cgroups (v1 or v2).
 * cc_sbx_net.c: egress (how slirp4netns reaches the tap device; attaching it to a sandbox).
 * cc_sbx_egress.c: egress rules (nftables in each sandbox's network namespace).
 * cc_sbx_pty.c: the host side of pseudo-terminals (input, resize, taking over the master).
 * cc_sbx_sys.c: the writable system (the base layers at start, each sandbox's disk).
 * What the core files (cc_sbx.c, cc_sbx_launch.c, cc_sbx_io.c, cc_sbx_proc.c, cc_sbx_fs.c)
 * share among themselves is in cc_sbx_priv.h.
 * Ownership: all paths live in the caller-owned structs below; no heap.
 */
#ifndef CC_SBX_INT_H
#define CC_SBX_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cc_sbx.h"

#define CC_SBX_CG_NCTRL 4 /* v1: memory, pids, cpu, freezer; v2: dir[0] only */
#define CC_SBX_CG_PATH 512

typedef struct {
  cc_sbx_cgroup_mode mode;
  char dir[CC_SBX_CG_NCTRL][CC_SBX_CG_PATH]; /* parent dirs; "" = controller not used */
  char hold[CC_SBX_CG_PATH]; /* v1: an empty cgroup kept FROZEN (see cc_sbx_cgroup.c); "" = none */
} cc_sbx_cg_root;

typedef struct {
  cc_sbx_cgroup_mode mode;
  char dir[CC_SBX_CG_NCTRL][CC_SBX_CG_PATH];
  int procs_fd[CC_SBX_CG_NCTRL]; /* cgroup.procs, opened for the pre-exec join; -1 = none */
} cc_sbx_cg;

/* Finds a writable hierarchy (want NONE: v1 memory+pids preferred, else v2; V1/V2: only that
 * one) and creates <our cgroup>/<prefix> in it (with v1's freezer, also the frozen hold
 * cgroup <prefix>/.freezer-hold).  false + why when none is usable. */
bool cc_sbx_cg_probe(cc_sbx_cg_root *root, cc_sbx_cgroup_mode want, const char *prefix,
                     char *why, size_t whycap);
void cc_sbx_cg_root_cleanup(cc_sbx_cg_root *root);

/* Creates the sandbox's cgroup(s) with the limits and opens their cgroup.procs. */
bool cc_sbx_cg_create(const cc_sbx_cg_root *root, const char *id, const cc_sbx_limits *lim,
                      cc_sbx_cg *cg, char *why, size_t whycap);
void cc_sbx_cg_close_fds(cc_sbx_cg *cg);

/* SIGKILLs every task in the sandbox's cgroup (freezer/cgroup.kill so none can fork away). */
void cc_sbx_cg_kill(cc_sbx_cg *cg);

/* Freezes (or thaws) every task of the sandbox with the cgroup freezer and waits, bounded,
 * until the kernel reports it.  false where there is no freezer (no cgroups, v1 without the
 * freezer controller) or it did not take. */
bool cc_sbx_cg_freeze(const cc_sbx_cg *cg, bool frozen);

/* CPU time used by the sandbox's tasks (v2: cpu.stat; v1: its processes' and their reaped
 * children's times) and its memory in use.  false without cgroups. */
bool cc_sbx_cg_usage(const cc_sbx_cg *cg, uint64_t *cpu_ns, uint64_t *mem_bytes);

/* true when no task is left in the sandbox's cgroups. */
bool cc_sbx_cg_empty(const cc_sbx_cg *cg);

/* Removes the sandbox's cgroup dirs (waiting briefly for killed tasks to leave). */
void cc_sbx_cg_destroy(cc_sbx_cg *cg);

/* cc_sbx_wire.c: decodes one entry of an agent reply at *off (advancing it).  false when the
 * bytes are malformed; then *e holds nothing to free. */
bool cc_sbx_wire_decode_entry(const unsigned char *buf, size_t len, size_t *off, cc_sbx_entry *e);

/* Go's FileMode.String() of a st_mode ("-rw-r--r--", "drwxr-xr-x", "Lrwxrwxrwx"). */
void cc_sbx_wire_mode_string(uint32_t mode, char out[16]);

/* cc_sbx_seccomp.c: the sandbox's seccomp program (struct sock_filter[], *len bytes), for
 * bwrap --seccomp.  NULL with *len = 0 on an architecture without a filter; free() it. */
void *cc_sbx_seccomp_program(size_t *len);

/* cc_sbx_launch.c: in a freshly forked child, joins the cgroup, runs prep (may be NULL; raw
 * syscalls only, _exit on failure), drops to uid/gid `uid` when `drop`, moves src[i] to
 * dst[i] (dst ascending; dst[i] is closed where src[i] is -1, and everything above dst[n-1])
 * and execs path.  pdeathsig: the child gets SIGKILL when the forking *thread* ends
 * (PR_SET_PDEATHSIG is tied to the thread, not the process), so only for a child that lives
 * no longer than that thread (one forked by the I/O thread, or waited for).  Never returns. */
void cc_sbx_child_exec(const char *path, char **argv, char **envp, const cc_sbx_cg *cg,
                       uint32_t uid, bool drop, bool pdeathsig, const int *src, const int *dst,
                       int n, void (*prep)(const void *), const void *prep_arg)
    __attribute__((noreturn));

/* cc_sbx_launch.c: the first executable `name` on $PATH, into out. */
bool cc_sbx_find_in_path(const char *name, char *out, size_t cap);

/* cc_sbx_proc.c, for cc_sbx_pty.c: calls fn(master, ctx, err) with the pty master of running
 * process pid (open for the whole call) and returns fn's status.  INVALID_ARG (sys_errno
 * ENOTTY) "tty not assigned to process" when pid has no pty; NOT_FOUND / GONE as grab(). */
typedef cc_status (*cc_sbx_tty_fn)(int master, void *ctx, cc_sbx_err *err);
cc_status cc_sbx_proc_with_tty(cc_sbx *sbx, uint32_t pid, cc_sbx_tty_fn fn, void *ctx,
                               cc_sbx_err *err);

/* cc_sbx_pty.c: takes over the pty master the agent sent for a new process: makes it
 * non-blocking and puts a second descriptor of it (CLOEXEC) in *write_fd for input and
 * resizes, so the I/O thread may close the reading one at EOF.  Returns 0, or an errno (then
 * master is unchanged and still the caller's). */
int cc_sbx_pty_adopt(int master, int *write_fd);

/* cc_sbx_net.c: how sandboxes get egress, decided once at runtime start. */
typedef enum {
  CC_SBX_TUN_NONE,    /* no egress: why says why */
  CC_SBX_TUN_HOST,    /* the host's /dev/net/tun is open to the sandbox's host uid */
  CC_SBX_TUN_PRIVATE, /* root-only on the host: a private node in slirp4netns's mount ns */
} cc_sbx_tun_mode;

typedef struct {
  char slirp[256]; /* slirp4netns path ("" = none) */
  cc_sbx_tun_mode tun;
  dev_t tun_rdev;
  uint32_t host_uid;
  bool drop;      /* we are root: slirp4netns drops to host_uid */
  char how[200];  /* tun != NONE: "tap via ..." for the start line */
  char why[200];  /* tun == NONE: why there is no egress */
} cc_sbx_net;

/* slirp_cfg: NULL = slirp4netns from PATH, "" = disabled.  Looks at /dev/net/tun only; the
 * runtime then proves it with a probe sandbox (and sets tun = NONE, why, if that fails). */
void cc_sbx_net_init(cc_sbx_net *n, const char *slirp_cfg, bool root, uint32_t host_uid);

/* Starts slirp4netns for the sandbox whose agent (PID 1 inside) is agent_pid, in cgroup cg,
 * and waits (bounded) until its tap device is configured.  nested: bwrap made the user
 * namespaces (the network belongs to the agent's parent one); else the agent's own user
 * namespace is the sandbox's.  Returns its pid and, in *exit_fd, the write end of its exit
 * pipe (CLOEXEC; closing it makes slirp4netns exit; the caller keeps it for the sandbox's
 * life), or 0 with why (slirp4netns's own message where it gave one) and *exit_fd = -1. */
pid_t cc_sbx_net_attach(const cc_sbx_net *n, pid_t agent_pid, bool nested, const cc_sbx_cg *cg,
                        int *exit_fd, char *why, size_t whycap);

/* cc_sbx_egress.c: finds nft for cc_sbx_set_egress (rt->nft; "" and info.egress_rules says
 * why when there is none).  The runtime proves it with its egress probe sandbox. */
struct cc_sbx_runtime;
void cc_sbx_egress_init(struct cc_sbx_runtime *rt);

/* cc_sbx_sys.c: the writable system of sandboxes with root inside (see cc_sbx_sys.c). */
#define CC_SBX_SYS_SPARES 2
typedef struct {
  bool on;           /* sandboxes get a writable / and /usr */
  char why[300];     /* !on after init: why not */
  char dir[512];     /* <state dir>/sys */
  uint32_t host_uid; /* the sandbox user's host uid; its root is host_uid + 1 */
  size_t copied;     /* entries copied into the base (/etc, the package state) */
  size_t masked;     /* entries of the host's /usr hidden (not world-readable) */
  double build_ms;   /* time init took */
  int dropping;      /* disks being unmounted by their threads (atomic) */
  unsigned gone_seq; /* names disks/.gone.<id>.<n> (atomic) */
  /* spare disks, made ahead by a thread of their own (cc_sbx_sys_spares_start) */
  pthread_t spare_thread;
  bool spare_thread_on, spare_stop;
  pthread_mutex_t spare_mu;
  pthread_cond_t spare_cv;
  uint64_t spare_bytes;
  unsigned spare[CC_SBX_SYS_SPARES], spare_seq;
  size_t n_spare;
} cc_sbx_sys;

/* Root only.  Builds the base and mounts its ID-mapped layers (userns_fd: a user namespace
 * mapped like every sandbox's; only used during the call), after removing a previous run's;
 * a previous run's disks are kept (see cc_sbx_sys_disk_mount).  The base's /etc/passwd and
 * group are the host's accounts with the sandbox user as uid/gid 1000 (passwd and group
 * where the host has none).  false with s->why when the host cannot do it (then nothing is left
 * mounted but the private <state>/sys). */
bool cc_sbx_sys_init(cc_sbx_sys *s, const char *state_dir, uint32_t host_uid, int userns_fd,
                     const char *passwd, const char *group);

/* Starts the thread that keeps CC_SBX_SYS_SPARES fresh disks of `bytes` ready, so that
 * cc_sbx_sys_disk_mount of that size only renames one (after a successful init). */
void cc_sbx_sys_spares_start(cc_sbx_sys *s, uint64_t bytes);

/* Lets the spares' thread replace the spares taken so far: called once a create is done, so
 * that making a disk never competes with a sandbox's start (bwrap's mounts). */
void cc_sbx_sys_spares_refill(cc_sbx_sys *s);

/* Stops the spares' thread and drops the spares, waits for the drops under way, and unmounts
 * the base layers (sandboxes' disks stay: cc_sbx_sys_disk_drop). */
void cc_sbx_sys_cleanup(cc_sbx_sys *s);

/* The host trees below / that have overlays of their own: their paths inside ("/usr", ...)
 * and layer names (<disk>/m/<name>), in mount order.  Static arrays. */
size_t cc_sbx_sys_trees(const char *const **paths, const char *const **names);

/* The disk of id (<dir>/disks/<id>/d, the tmpfs), or <disk>/<sub>, into out. */
void cc_sbx_sys_disk_path(const cc_sbx_sys *s, const char *id, const char *sub, char *out,
                          size_t cap);

/* Makes (or, when one is kept for id, reuses) the sandbox's disk: a tmpfs of `bytes` with its
 * home (<disk>/home) and the overlays of / and of each host tree mounted at <disk>/m/root and
 * <disk>/m/<tree name>.
 * false with why (and nothing left) when it cannot. */
bool cc_sbx_sys_disk_mount(cc_sbx_sys *s, const char *id, uint64_t bytes, char *why, size_t cap);

/* A disk is kept for id. */
bool cc_sbx_sys_disk_exists(const cc_sbx_sys *s, const char *id);

/* Unmounts and removes id's disk, if any: at once out of the way (the id may have a new one),
 * unmounted by a thread of its own (cc_sbx_sys_cleanup waits for those).  A running sandbox
 * keeps its own mounts until it ends; the memory goes with it. */
void cc_sbx_sys_disk_drop(cc_sbx_sys *s, const char *id);

/* Bytes used and size of id's disk; false when it has none. */
bool cc_sbx_sys_disk_usage(const cc_sbx_sys *s, const char *id, uint64_t *used, uint64_t *total);

/* ---- domain egress rules: the name a connection asks for (cc_sbx_sni.c), and the proxy
 * that lets a sandbox's TCP 80/443 through only to allowed names (cc_sbx_dproxy.c). */
#define CC_SBX_NAME_MAX 253   /* longest DNS name */
#define CC_SBX_HEAD_MAX 16384 /* an HTTP request head longer than this has no answer */
typedef enum {
  CC_SBX_NAME_FOUND, /* the name is in out */
  CC_SBX_NAME_MORE,  /* the bytes so far are a valid beginning: read more */
  CC_SBX_NAME_NONE,  /* not TLS/HTTP, no name, or not a plain DNS name */
} cc_sbx_name_result;

/* The server name (SNI host_name) of the TLS ClientHello at the start of p[0..n). */
cc_sbx_name_result cc_sbx_tls_sni(const uint8_t *p, size_t n, char out[CC_SBX_NAME_MAX + 1]);
/* The Host header (without a port) of the HTTP/1 request head at the start of p[0..n). */
cc_sbx_name_result cc_sbx_http_host(const uint8_t *p, size_t n, char out[CC_SBX_NAME_MAX + 1]);
/* Whether name is one of domains (case-insensitive), or below a "*.example.com" entry. */
bool cc_sbx_domain_match(const char *name, char *const *domains, size_t n);

#define CC_SBX_DPROXY_PORT 1 /* where TCP 80/443 is redirected inside a sandbox (127.0.0.1) */
typedef struct cc_sbx_dproxy cc_sbx_dproxy;
/* Starts a sandbox's domain proxy: a socket listening on 127.0.0.1:CC_SBX_DPROXY_PORT inside
 * the network namespace netns (made by a thread that joins only that namespace; needs root),
 * and a thread accepting on it.  false with why. */
bool cc_sbx_dproxy_start(int netns, cc_sbx_dproxy **out, char *why, size_t cap);
/* Replaces the allowed names (copied; false when out of memory, the old ones kept). */
bool cc_sbx_dproxy_set_domains(cc_sbx_dproxy *p, const char *const *domains, size_t n);
/* Stops accepting and ends every relayed connection at once; the memory goes with the last
 * thread.  p is not used after this. */
void cc_sbx_dproxy_stop(cc_sbx_dproxy *p);

#endif
