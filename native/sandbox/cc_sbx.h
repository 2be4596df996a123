/*
 * cc_sbx: the sandbox runtime of codecanvas-sandboxd (bubblewrap + cgroups).
 *
 * A sandbox is one bubblewrap instance with its own user, PID, IPC, UTS, mount and network
 * namespaces.  Its init (PID 1 inside) is our small agent program
 * `codecanvas-sandbox-agent`, connected to the host by a SOCK_SEQPACKET socketpair.  The host
 * asks the agent to spawn processes (the stdin/stdout/stderr pipe ends travel over
 * SCM_RIGHTS), to signal them, to open/stat/list/move/remove files, and to connect to
 * 127.0.0.1:PORT inside the sandbox and pass back the connected socket.  So the host never
 * resolves a path the sandbox can write and never enters a namespace: the kernel applies the
 * sandbox's own view and permissions (uid 1000 "user", or uid 0 "root" when asked for and
 * the runtime has root_inside) to every file operation.
 *
 * Root inside (sandboxd running as root): the sandbox's user namespace, made by the runtime,
 * maps uid 0 to host uid host_uid + 1 and uid 1000 to host_uid; the agent runs as that uid 0
 * with a few capabilities of the namespace, drops to 1000 for "user", and serves the
 * sandbox's `sudo` (docs/sandboxd.md "Root inside").
 *
 * Inside, with root inside (unless read_only_system): a writable system of the sandbox's own,
 * overlays over the host's /usr and a copy of its /etc (cc_sbx_sys.c), on a size-capped tmpfs
 * "disk" that also holds /home/user; otherwise `/usr`, `/etc` (with our own passwd/group),
 * `/bin`, `/lib*`, `/sbin` read-only from the host and `/home/user` (HOME, the default cwd) a
 * private size-capped tmpfs; `/tmp` is a private tmpfs; each lives as long as the sandbox; minimal `/proc` and `/dev`; `/run/e2b`
 * holds .E2B_SANDBOX, .E2B_SANDBOX_ID, .E2B_TEMPLATE_ID.  Only loopback networking unless
 * egress was asked for AND the runtime proved it at start (slirp4netns, started with
 * --disable-host-loopback, its own sandbox and seccomp; see cc_sbx_net.c for /dev/net/tun),
 * narrowed by egress rules where asked (cc_sbx_set_egress: nftables in the sandbox's network
 * namespace, cc_sbx_egress.c).
 * Memory, process count and CPU are capped by a cgroup per sandbox (v1 memory/pids/cpu/
 * freezer controllers when mounted, else cgroup v2); a seccomp deny list narrows the syscalls.
 * Details: docs/sandboxd.md "Isolation".
 *
 * Host resources: each live sandbox holds 2 host fds (agent socket, bwrap pidfd), each
 * running process 2-3 (its pipes), each subscription 1 (an eventfd); a server with many
 * sandboxes should raise RLIMIT_NOFILE.
 *
 * Threading: every function is thread-safe (a registry lock in the runtime, a mutex per
 * sandbox, a mutex per process).  No call blocks on another sandbox.  Calls that may block
 * say so and take a timeout.  One internal I/O thread per runtime pumps output, reaps, and
 * enforces process deadlines; it also forks every bubblewrap so that `--die-with-parent`
 * refers to a thread that lives as long as the runtime (not to a short-lived HTTP thread).
 * No callback ever runs on the I/O thread: events are pulled with cc_sbx_sub_next().
 *
 * Ownership: the runtime owns sandboxes; `cc_sbx_open` hands out a counted reference that the
 * caller gives back with `cc_sbx_release` (after `cc_sbx_kill` the handle stays valid but every
 * call fails with CC_SANDBOX_UNAVAILABLE).  Strings passed in are copied; nothing passed in is
 * retained.  Everything handed out is freed by the matching `_free` function (all accept NULL).
 * Event data pointers are borrowed until the next cc_sbx_sub_next()/cc_sbx_sub_free() on
 * that subscription.
 *
 * Errors: functions return cc_status.  Calls that take a `cc_sbx_err *` (may be NULL) fill it
 * on failure with a precise class (envd's error classes, e.g. NO_SPACE for HTTP 507), the
 * errno seen inside the sandbox, and a message naming the sandbox path (never a host path).
 */
#ifndef CC_SBX_H
#define CC_SBX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cc_status.h"

/* ------------------------------------------------------------------------------------------ */
/* Errors                                                                                      */

/* The precise failure class.  Mapping to envd (C2): NOT_FOUND → not_found 404; NOT_DIR,
 * IS_DIR, INVALID_PATH, INVALID_ARG → invalid_argument 400; EXISTS → already_exists 409;
 * NO_SPACE → HTTP 507 (/files) or resource_exhausted; PERMISSION → permission_denied 403;
 * LOOP → failed_precondition; STDIN_CLOSED → internal "stdin not enabled or closed";
 * GONE → the sandbox is dead (killed, crashed); LIMIT → a runtime limit (too many processes,
 * message or listing too large); SYSTEM → anything else (internal 500). */
#define CC_SBX_ERR_MAP(X)         \
  X(NONE, CC_OK)                  \
  X(NOT_FOUND, CC_NOT_FOUND)      \
  X(NOT_DIR, CC_BAD_REQUEST)      \
  X(IS_DIR, CC_BAD_REQUEST)       \
  X(EXISTS, CC_CONFLICT)          \
  X(NO_SPACE, CC_TOO_LARGE)       \
  X(PERMISSION, CC_FORBIDDEN)     \
  X(INVALID_PATH, CC_BAD_REQUEST) \
  X(INVALID_ARG, CC_BAD_REQUEST)  \
  X(LOOP, CC_BAD_REQUEST)         \
  X(STDIN_CLOSED, CC_INTERNAL)    \
  X(TIMEOUT, CC_TIMEOUT)          \
  X(GONE, CC_SANDBOX_UNAVAILABLE) \
  X(LIMIT, CC_RATE_LIMITED)       \
  X(SYSTEM, CC_INTERNAL)

typedef enum {
#define CC_SBX_ERR_ENUM(name, status) CC_SBX_ERR_##name,
  CC_SBX_ERR_MAP(CC_SBX_ERR_ENUM)
#undef CC_SBX_ERR_ENUM
} cc_sbx_errkind;

typedef struct {
  cc_sbx_errkind kind; /* CC_SBX_ERR_NONE on success */
  int sys_errno;       /* errno seen by the agent or host, 0 if none */
  char msg[256];       /* e.g. "file not found: /home/user/x"; sandbox paths only */
} cc_sbx_err;

/* "NOT_FOUND", ... ; "SYSTEM" for out-of-range values.  Static string. */
const char *cc_sbx_errkind_name(cc_sbx_errkind k);

/* ------------------------------------------------------------------------------------------ */
/* Runtime                                                                                     */

typedef struct cc_sbx_runtime cc_sbx_runtime;
typedef struct cc_sbx cc_sbx;

/* Limits of one sandbox.  0 in a field of cc_sbx_create_opts.limits = the runtime default. */
typedef struct {
  uint64_t memory_bytes; /* cgroup memory limit incl. tmpfs pages written inside (512 MiB) */
  uint32_t pids_max;     /* max tasks (processes + threads) incl. the agent (256) */
  uint32_t cpu_millis;   /* CPU bandwidth, 1000 = one full CPU (1000) */
  uint64_t home_bytes;   /* size of the /home/user tmpfs; a write past it gets ENOSPC (256 MiB) */
  uint64_t tmp_bytes;    /* size of the /tmp tmpfs (64 MiB) */
} cc_sbx_limits;

#define CC_SBX_DEFAULT_MEMORY_BYTES (512ull << 20)
#define CC_SBX_DEFAULT_PIDS_MAX 256u
#define CC_SBX_DEFAULT_CPU_MILLIS 1000u
#define CC_SBX_DEFAULT_HOME_BYTES (256ull << 20)
#define CC_SBX_DEFAULT_TMP_BYTES (64ull << 20)
#define CC_SBX_DEFAULT_HOST_UID 101000u /* host uid/gid the sandbox user maps to when root */

/* How cgroup limits are applied (see cc_sbx_runtime_info). */
typedef enum {
  CC_SBX_CGROUP_NONE = 0, /* no writable cgroup found; only allowed with allow_no_cgroups */
  CC_SBX_CGROUP_V1,       /* /sys/fs/cgroup/{memory,pids,cpu,freezer}/<prefix>/<id> */
  CC_SBX_CGROUP_V2,       /* <cgroup2 mount>/<our cgroup>/<prefix>/<id> */
} cc_sbx_cgroup_mode;

typedef struct {
  const char *state_dir;     /* required: sandboxd's state dir, created 0700 if missing.  No
                                sandbox data lives there on disk: homes (and, with a writable
                                system, the sandboxes' disks under sys/) are tmpfs mounts */
  const char *agent_path;    /* NULL: codecanvas-sandbox-agent next to /proc/self/exe */
  const char *bwrap_path;    /* NULL: /usr/bin/bwrap, else bwrap from PATH */
  const char *slirp_path;    /* NULL: slirp4netns from PATH; "" disables egress entirely */
  const char *cgroup_prefix; /* NULL: "codecanvas-<pid of this process>" */
  cc_sbx_limits limits;      /* defaults for every sandbox (cc_sbx_config_init fills them) */
  uint32_t host_uid;      /* root only: host uid/gid the sandbox runs as (CC_SBX_DEFAULT_HOST_UID);
                             not root: ignored, the sandbox maps to our own uid */
  bool no_root_inside;    /* root only: true = no uid 0 inside ("root" runs as "user", no
                             sudo), as when unprivileged; default false */
  bool allow_no_cgroups;  /* false (default): runtime_new fails when no cgroup is writable.
                             true: sandboxes run without memory/pids/CPU limits, and
                             cc_sbx_runtime_info says so (C2 must print it at start) */
  size_t sub_queue_bytes; /* per-subscription output buffer cap (default 1 MiB); a full
                             subscriber stops reading of that process's pipes (back-pressure) */
  uint32_t max_procs;     /* max tracked processes per sandbox (default 1024) */
  cc_sbx_cgroup_mode cgroup; /* NONE (default): v1 when its memory and pids controllers are
                                mounted, else v2; V1 or V2: that hierarchy only */
  bool read_only_system;     /* root inside only: true = the host's system read-only, as
                                without root inside; default false: a writable system (see
                                cc_sbx_runtime_info.writable_system) */
} cc_sbx_config;

/* Fills defaults (limits, host uid, queue size); state_dir stays NULL. */
void cc_sbx_config_init(cc_sbx_config *cfg);

/* Capabilities found at cc_sbx_runtime_new, for sandboxd's startup line and /health. */
typedef struct {
  bool root;                 /* running as uid 0 */
  bool root_inside;          /* root only: each sandbox's user namespace maps uid 0 (to host
                                uid host_uid + 1) besides uid 1000 (to host_uid), so requests
                                for user "root" run as uid 0 inside and `sudo` works; false:
                                "root" runs as uid 1000 ("user") */
  cc_sbx_cgroup_mode cgroup; /* how limits are applied */
  bool egress_available;     /* proven at start by a probe sandbox: allow_internet sandboxes
                                get egress through slirp4netns */
  char egress[256];          /* how they get it ("/usr/bin/slirp4netns (tap via ...)"), or why
                                not ("/dev/net/tun is not accessible to uid 1000 (mode 0600);
                                sandboxes get loopback only") */
  char egress_rules[256];    /* how egress rules (cc_sbx_set_egress) are enforced ("nftables
                                (libnftables) in each sandbox's network namespace", or
                                "(/usr/sbin/nft)" unprivileged), or
                                "unavailable: <why>" (then cc_sbx_set_egress fails) */
  bool writable_system;      /* root inside: each sandbox's / and /usr are overlays of its
                                own over a read-only base, on a tmpfs disk of home_bytes that
                                also holds /home/user (docs/sandboxd.md "A writable system") */
  char system[300];          /* how ("overlay over ...") or why not ("read-only: ...") */
  char bwrap[256];           /* bwrap path used */
  char agent[256];           /* agent path used */
  char report[1024];         /* one paragraph, e.g. "sandbox runtime: root, cgroup v1
                                (memory,pids,cpu,freezer), egress via /usr/bin/slirp4netns
                                (host loopback disabled)"; names every missing capability */
} cc_sbx_runtime_info;

/* Probes the machine (bwrap runs with --unshare-all, user namespaces allowed, cgroups writable,
 * egress: a probe sandbox with slirp4netns attached; its failure only turns egress off, with
 * the reason in info.egress), creates the state dir and the cgroup parent, and starts the I/O thread.
 * On failure returns CC_INTERNAL and writes a one-line reason naming the missing capability
 * into err (never silently degrades: no cgroups is an error unless allow_no_cgroups).
 * Call once from the main thread.  *out is freed with cc_sbx_runtime_free. */
cc_status cc_sbx_runtime_new(const cc_sbx_config *cfg, cc_sbx_runtime **out, cc_sbx_err *err);

/* Kills every sandbox (as cc_sbx_kill), stops the I/O thread, removes the cgroup parent.
 * Handles still held by other threads must have been released or become unusable: call it
 * only after the server stopped calling in.  Accepts NULL. */
void cc_sbx_runtime_free(cc_sbx_runtime *rt);

/* Copies the probe results. */
void cc_sbx_runtime_get_info(cc_sbx_runtime *rt, cc_sbx_runtime_info *out);

/* ------------------------------------------------------------------------------------------ */
/* Sandboxes                                                                                   */

/* One environment variable.  Arrays of these are (pointer, count) pairs. */
typedef struct {
  const char *name;
  const char *value;
} cc_sbx_env;

typedef struct {
  const char *id;          /* required, unique, [A-Za-z0-9_-]{1,64} */
  const char *template_id; /* for E2B_TEMPLATE_ID; NULL = "base" */
  const cc_sbx_env *envs;  /* create-time envVars, given to every process */
  size_t n_envs;
  bool allow_internet;  /* egress through slirp4netns if available (else none; see info) */
  cc_sbx_limits limits; /* 0 fields = runtime defaults */
  bool resume_disk;     /* writable system: reuse the disk cc_sbx_kill_keep_disk kept for this
                           id (its system layer, /root and home), else start from the base */
} cc_sbx_create_opts;

/* Starts a sandbox and waits until its agent answered (fast: one bwrap start, no exec of
 * anything else).  Returns CC_CONFLICT if the id exists, CC_BAD_REQUEST for a bad id,
 * CC_SANDBOX_UNAVAILABLE when bwrap or the agent failed (err says why).  On success *out is a
 * reference (release with cc_sbx_release); pass out = NULL to not take one. */
cc_status cc_sbx_create(cc_sbx_runtime *rt, const cc_sbx_create_opts *opts, cc_sbx **out,
                        cc_sbx_err *err);

/* Looks a live sandbox up by id and takes a reference.  CC_NOT_FOUND if unknown or killed. */
cc_status cc_sbx_open(cc_sbx_runtime *rt, const char *id, cc_sbx **out);

/* Gives a reference back.  The sandbox itself lives on until cc_sbx_kill.  Accepts NULL. */
void cc_sbx_release(cc_sbx *sbx);

/* Ends EVERY process of the sandbox (freezes its cgroup, SIGKILLs all its tasks, kills the
 * agent = PID-namespace init and bwrap, stops slirp4netns), waits until they are gone from the
 * host, removes its cgroups and state, and unregisters the id.  Every subscription of a process
 * that was still running gets its END ("signal: killed", exit_code -1).  A second call (or
 * an unknown id) returns CC_NOT_FOUND.  Blocks for the kill itself (a few milliseconds). */
cc_status cc_sbx_kill(cc_sbx_runtime *rt, const char *id);

/* As cc_sbx_kill, but with a writable system the sandbox's disk (system layer, /root, home)
 * is kept, mounted on the host, for a later cc_sbx_create with resume_disk; it is also kept
 * when the runtime is freed, and survives the process.  Freed by cc_sbx_disk_drop. */
cc_status cc_sbx_kill_keep_disk(cc_sbx_runtime *rt, const char *id);

/* A disk is kept for id (only with a writable system). */
bool cc_sbx_disk_kept(cc_sbx_runtime *rt, const char *id);

/* Drops the disk kept for id, if any (no-op for a live sandbox's own: its kill does that). */
void cc_sbx_disk_drop(cc_sbx_runtime *rt, const char *id);

/* Drops every kept disk (a previous run's too) that belongs to no live sandbox and for whose
 * id keep(id, ctx) is false; returns how many it dropped. */
size_t cc_sbx_disk_prune(cc_sbx_runtime *rt, bool (*keep)(const char *id, void *ctx), void *ctx);

/* Facts about a live sandbox.  alive = false once killed or once its agent died (e.g. the
 * whole sandbox was OOM-killed); then every call on it returns CC_SANDBOX_UNAVAILABLE. */
typedef struct {
  char id[65];
  int host_pid; /* host pid of the agent (PID 1 inside); for tests and diagnostics */
  bool alive;
  bool egress;          /* slirp4netns is attached */
  char egress_why[200]; /* !egress: why ("internet access was not requested", "egress
                           unavailable: ...", "slirp4netns: ..."); the sandbox has loopback
                           only, and creation did not fail for it */
  cc_sbx_limits limits; /* effective limits */
  char cgroup[256];     /* cgroup path (v1: below the memory controller), "" if none */
} cc_sbx_info;

cc_status cc_sbx_get_info(cc_sbx *sbx, cc_sbx_info *out);

/* Adds create-time environment variables to a sandbox that nobody else uses yet (a sandbox
 * started ahead of its create, from a warm pool): every process started afterwards gets
 * them, as if they had been in cc_sbx_create_opts.envs. */
cc_status cc_sbx_add_envs(cc_sbx *sbx, const cc_sbx_env *envs, size_t n);

/* Egress rules.  An IP address or CIDR block: family 4 or 6, the prefix length, and the
 * network address (host bits cleared). */
typedef struct {
  uint8_t family; /* 4 or 6 */
  uint8_t prefix; /* 0..32 / 0..128 */
  uint8_t addr[16];
} cc_sbx_cidr;

#define CC_SBX_CIDR_TEXT 64    /* room for cc_sbx_cidr_format's text */
#define CC_SBX_EGRESS_MAX 1024 /* entries per list of cc_sbx_egress */

/* Parses an IPv4 or IPv6 address, alone ("10.1.2.3", "2001:db8::1") or as a CIDR block
 * ("10.0.0.0/8", "10.1.2.3/8" = 10.0.0.0/8, "::/0"): inet_pton's forms plus a decimal prefix
 * without sign or leading zero.  false for anything else (host names, spaces, "/33"). */
bool cc_sbx_cidr_parse(const char *s, cc_sbx_cidr *out);

/* Canonical text "addr/prefix" of a parsed block. */
void cc_sbx_cidr_format(const cc_sbx_cidr *c, char out[CC_SBX_CIDR_TEXT]);

/* What a sandbox may reach: a packet to a destination in allow is sent; else one to a
 * destination in deny is refused (the sender gets EHOSTUNREACH at once); else it is sent.
 * Loopback inside the sandbox is never filtered.  With domains (root only): an IPv4 TCP
 * connection to port 80 or 443 not allowed by address reaches its destination only if its
 * HTTP Host / TLS server name is one of them or below a "*.name" entry (else it is accepted
 * and closed), and DNS to the sandbox's resolver (10.0.2.3) and 8.8.8.8 is allowed.  Arrays
 * are read during the call only. */
typedef struct {
  const cc_sbx_cidr *allow;
  size_t n_allow;
  const cc_sbx_cidr *deny;
  size_t n_deny;
  const char *const *domains; /* lower-case DNS names, or "*." and one */
  size_t n_domains;
} cc_sbx_egress;

/* Replaces the sandbox's egress rules atomically (NULL or empty lists: no rules), enforced in
 * its network namespace where nothing inside can change them (docs/sandboxd.md "Egress
 * rules").  A sandbox without egress (no slirp4netns) sends nothing out, so every rule holds
 * and this returns CC_OK without doing anything.  Blocks while nftables runs (about a
 * millisecond as root; unprivileged, an nft process, at most 5 s).  CC_SANDBOX_UNAVAILABLE if
 * it is not running, CC_RATE_LIMITED over
 * CC_SBX_EGRESS_MAX entries, CC_INTERNAL when the rules could not be installed (err says why;
 * the previous rules then still hold). */
cc_status cc_sbx_set_egress(cc_sbx *sbx, const cc_sbx_egress *rules, cc_sbx_err *err);

/* Pause with memory: stops (frozen) or restarts every process of the sandbox with the cgroup
 * freezer.  Memory, files, open streams and the network helper are kept; nothing runs.  While
 * frozen, calls that need the agent would wait, so the caller makes none until it thaws
 * (sandboxd routes nothing to a paused sandbox).  cc_sbx_kill thaws first.
 * CC_SANDBOX_UNAVAILABLE with the reason where there is no freezer (no cgroups, v1 without
 * the freezer controller) or the sandbox is not running. */
cc_status cc_sbx_freeze(cc_sbx *sbx, bool frozen, cc_sbx_err *err);

/* What a sandbox uses now: CPU time since it started (ns), memory in its cgroup and its
 * limit, bytes used in /home/user and its size. */
typedef struct {
  uint64_t cpu_ns;
  uint64_t mem_bytes, mem_limit;
  uint64_t disk_bytes, disk_total;
} cc_sbx_usage;

/* CC_SANDBOX_UNAVAILABLE when the sandbox is not running. */
cc_status cc_sbx_get_usage(cc_sbx *sbx, cc_sbx_usage *out);

/* Ids of live sandboxes.  *ids is an array of *n strings; free with cc_sbx_ids_free. */
cc_status cc_sbx_list_ids(cc_sbx_runtime *rt, char ***ids, size_t *n);
void cc_sbx_ids_free(char **ids, size_t n);

/* ------------------------------------------------------------------------------------------ */
/* Processes                                                                                   */

/* What the caller asked for; echoed by cc_sbx_proc_list exactly as given (not resolved). */
typedef struct {
  const char *cmd;         /* required; executed via PATH lookup inside if it has no '/' */
  const char *const *args; /* argv[1..]; argv[0] is cmd */
  size_t n_args;
  const cc_sbx_env *envs; /* request envs, applied last (override everything) */
  size_t n_envs;
  const char *cwd;     /* NULL or "": /home/user; relative: under /home/user; "~/x" ok */
  const char *tag;     /* optional envd tag; NULL = none */
  bool stdin_pipe;     /* true: a pipe fed by cc_sbx_proc_write_stdin; false: /dev/null */
  uint64_t timeout_ms; /* 0 = no deadline; else SIGKILL at start+timeout, even when no
                          one is subscribed (envd Connect-Timeout-Ms) */
  bool pty;            /* true: a new pseudo-terminal (opened inside the sandbox, so the
                          process sees /dev/pts/N) is its stdin, stdout, stderr and controlling
                          terminal; output comes as CC_SBX_EV_PTY, input goes through
                          cc_sbx_proc_write_pty; stdin_pipe is ignored.  TERM defaults to
                          xterm-256color (what E2B's SDK sends; envs override it) */
  uint16_t pty_cols;   /* pty only: its initial window size */
  uint16_t pty_rows;
  bool as_root;        /* run as uid 0 "root" (HOME=/root, default cwd /root, "~" = /root)
                          where cc_sbx_runtime_info.root_inside; else ignored (uid 1000) */
} cc_sbx_proc_spec;

/* Environment of a process, in envd's order (later wins): PATH, HOME=/home/user, USER=user,
 * LOGNAME=user (root: /root, root, root), then E2B_SANDBOX=true, E2B_SANDBOX_ID,
 * E2B_TEMPLATE_ID, the create-time envs, then spec->envs.  A process runs as uid/gid 1000
 * ("user"), or as uid 0 of the sandbox's user namespace with spec->as_root where the runtime
 * has root_inside (without it, as "user" too).  "user" processes keep CAP_SETUID/CAP_SETGID of
 * the sandbox's namespace (ambient) so that the sandbox's `sudo` can switch to root, as
 * E2B's passwordless sudo does. */

typedef struct cc_sbx_sub cc_sbx_sub;

typedef enum {
  CC_SBX_EV_NONE = 0, /* cc_sbx_sub_next timed out (send a keepalive) */
  CC_SBX_EV_START,    /* always first on a subscription: pid */
  CC_SBX_EV_STDOUT,   /* data/len: up to 32 KiB, split anywhere (even inside UTF-8) */
  CC_SBX_EV_STDERR,
  CC_SBX_EV_END, /* the process ended; last event for this subscription */
  CC_SBX_EV_PTY, /* data/len: terminal output of a pty process (it has no STDOUT/STDERR) */
} cc_sbx_event_type;

typedef struct {
  cc_sbx_event_type type;
  uint32_t pid;        /* pid inside the sandbox (what envd reports) */
  const uint8_t *data; /* STDOUT/STDERR/PTY: borrowed until the next next()/sub_free() */
  size_t len;
  /* END only: */
  bool exited;     /* true: exit_code is the exit status; false: killed by a signal */
  int exit_code;   /* exit status, or -1 when killed by a signal (envd's exitCode) */
  int signal;      /* the signal when !exited, else 0 */
  char status[64]; /* Go's ProcessState string: "exit status 3", "signal: killed" */
  bool sandbox_gone; /* the process did not end by itself: its sandbox died or was killed
                        under it (status "signal: killed"); E2B drops such a stream */
} cc_sbx_event;

/* Spawns a process in the sandbox.  On success *pid is its pid inside the sandbox and, when
 * sub != NULL, *sub is a subscription attached before the process could write anything (so
 * a Start stream sees all output; free it with cc_sbx_sub_free).  Failures are reported here,
 * synchronously, never as an END: INVALID_ARG "cwd '<abs>' does not exist" (envd's message),
 * NOT_FOUND / PERMISSION when cmd cannot be executed, LIMIT when fork failed (pids limit) or
 * max_procs processes are running, GONE when the sandbox is dead.  Blocks until the agent
 * has exec'd the command (about a millisecond). */
cc_status cc_sbx_proc_start(cc_sbx *sbx, const cc_sbx_proc_spec *spec, uint32_t *pid,
                            cc_sbx_sub **sub, cc_sbx_err *err);

/* Subscribes to a running process's live output (no replay; envd Connect).  The first event
 * is START.  A process that ended less than 30 s ago (and is among the last 64 ended) still
 * gives START then END.  CC_NOT_FOUND: "process with pid N not found". */
cc_status cc_sbx_proc_subscribe(cc_sbx *sbx, uint32_t pid, cc_sbx_sub **sub, cc_sbx_err *err);

/* Finds a running process by tag.  CC_NOT_FOUND if none. */
cc_status cc_sbx_proc_find_tag(cc_sbx *sbx, const char *tag, uint32_t *pid);

/* Waits up to timeout_ms (-1 = forever, 0 = poll) for the next event.  Returns CC_OK with
 * ev->type NONE on timeout.  After END (or when the sandbox died: END with signal: killed and
 * sandbox_gone) the subscription yields END once, then CC_NOT_FOUND.  Output is produced for a process only while
 * it has at least one subscription; with none it is read and dropped (envd).  A subscription
 * that is not drained holds at most sub_queue_bytes; then the process's pipes are no longer
 * read and the process blocks on write (back-pressure; a slow subscriber slows the others of
 * the same process).  One thread at a time per subscription. */
cc_status cc_sbx_sub_next(cc_sbx_sub *sub, int timeout_ms, cc_sbx_event *ev);

/* A file descriptor that is readable whenever cc_sbx_sub_next(sub, 0, ...) would return an
 * event (for poll-based servers).  Owned by the subscription. */
int cc_sbx_sub_fd(cc_sbx_sub *sub);

/* Ends the subscription (a disconnected client): the process keeps running.  Accepts NULL.
 * Thread-safe against the I/O thread, not against a concurrent next() on the same sub. */
void cc_sbx_sub_free(cc_sbx_sub *sub);

/* Writes all of data to the process's stdin, waiting up to timeout_ms (-1 forever) for pipe
 * space.  STDIN_CLOSED (CC_INTERNAL) if stdin was disabled or closed, NOT_FOUND if the pid is
 * not running, TIMEOUT if the process does not read (part may have been written).  For a pty
 * process the bytes go to its terminal, as with cc_sbx_proc_write_pty. */
cc_status cc_sbx_proc_write_stdin(cc_sbx *sbx, uint32_t pid, const void *data, size_t len,
                                  int timeout_ms, cc_sbx_err *err);

/* Closes the stdin pipe (the process sees EOF).  Idempotent for a running process.
 * INVALID_ARG for a pty process (its terminal stays; send Ctrl-D, "\x04", instead). */
cc_status cc_sbx_proc_close_stdin(cc_sbx *sbx, uint32_t pid, cc_sbx_err *err);

/* Pseudo-terminals (cc_sbx_pty.c).  A pty process's terminal is in its default mode (echo,
 * line editing, signals), so written bytes are typed keys: "\x03" is Ctrl-C (SIGINT to the
 * terminal's foreground process group), "\x04" Ctrl-D.  Both calls fail with INVALID_ARG,
 * sys_errno ENOTTY, "tty not assigned to process" for a process started without a pty, and
 * NOT_FOUND when pid is not a running process.  Like stdin, a process that does not read its
 * terminal makes cc_sbx_proc_write_pty wait up to timeout_ms, then TIMEOUT. */
cc_status cc_sbx_proc_write_pty(cc_sbx *sbx, uint32_t pid, const void *data, size_t len,
                                int timeout_ms, cc_sbx_err *err);

/* Sets the terminal's window size (the process gets SIGWINCH). */
cc_status cc_sbx_proc_resize_pty(cc_sbx *sbx, uint32_t pid, uint16_t cols, uint16_t rows,
                                 cc_sbx_err *err);

/* Sends a signal (any 1..64; envd allows SIGKILL and SIGTERM, C2 checks) to the process's
 * group — each command runs in its own session, so this also reaches what it started (a dev
 * server's children) — and to the process itself.  CC_NOT_FOUND if the pid is not a process
 * started through this API and still running, so a sandbox can never be made to signal
 * anything else.  Deadlines (timeout_ms) kill the same way. */
cc_status cc_sbx_proc_signal(cc_sbx *sbx, uint32_t pid, int sig, cc_sbx_err *err);

/* A running process, its configuration echoed as given. */
typedef struct {
  uint32_t pid;
  char *tag; /* NULL if none */
  char *cmd;
  char **args; /* n_args strings */
  size_t n_args;
  cc_sbx_env *envs; /* n_envs pairs (names and values owned by the list) */
  size_t n_envs;
  char *cwd; /* NULL if not given */
  bool stdin_pipe;
} cc_sbx_proc_info;

/* Running processes started through this API, in start order.  Free with
 * cc_sbx_proc_list_free(list, n). */
cc_status cc_sbx_proc_list(cc_sbx *sbx, cc_sbx_proc_info **list, size_t *n);
void cc_sbx_proc_list_free(cc_sbx_proc_info *list, size_t n);

/* ------------------------------------------------------------------------------------------ */
/* Ports                                                                                       */

/* Connects to 127.0.0.1:port INSIDE the sandbox (done by the agent) and returns the connected
 * TCP socket in *fd (blocking mode, CLOEXEC; the caller closes it).  NOT_FOUND + sys_errno
 * ECONNREFUSED when nothing listens (C2: 502 "port not open").  Blocks until connected. */
cc_status cc_sbx_connect_port(cc_sbx *sbx, uint16_t port, int *fd, cc_sbx_err *err);

/* ------------------------------------------------------------------------------------------ */
/* Files                                                                                       */

/* Paths, as envd resolves them: "" → /home/user; "~" and "~/x" → /home/user[/x]; relative →
 * /home/user/<rel>; absolute → as given, in the SANDBOX's view (so /etc/hostname reads the
 * sandbox's read-only /etc).  Any ".." component, an embedded NUL, "~other", or > 4096 bytes
 * is refused with INVALID_PATH.  Every operation runs inside the sandbox as uid 1000 (the agent
 * does it), so symlinks resolve inside the sandbox and can never reach a host path.
 * Resolved absolute paths are what EntryInfo.path and error messages show. */

typedef enum {
  CC_SBX_FT_UNKNOWN = 0, /* envd FILE_TYPE_UNSPECIFIED (e.g. broken symlink, socket) */
  CC_SBX_FT_FILE = 1,
  CC_SBX_FT_DIR = 2,
} cc_sbx_filetype;

/* envd EntryInfo.  Symlinks: name/path/size/permissions of the link itself (permissions
 * "Lrwxrwxrwx"), type and mode of the target, symlink_target = resolved target path. */
typedef struct {
  char *name; /* base name */
  char *path; /* absolute path inside the sandbox */
  cc_sbx_filetype type;
  int64_t size;
  uint32_t mode;        /* permission bits only (0644 → 420) */
  char permissions[16]; /* Go FileMode.String(): "-rw-r--r--", "drwxr-xr-x", "Lrwxrwxrwx" */
  char owner[32];       /* "user", "root", or the numeric uid */
  char group[32];
  int64_t mtime_sec;
  int32_t mtime_nsec;
  char *symlink_target; /* NULL unless a symlink */
  /* envd's user-defined metadata: the entry's user.e2b.<key> extended attributes (following
   * a symlink, as envd does), read inside the sandbox with the requesting user's rights (an
   * attribute that user may not read is not reported).  Only pairs whose key and value are
   * valid UTF-8 without NUL, and at most CC_SBX_META_MAX bytes of them per entry (each pair
   * costs 4 + key + value), in the order the file system lists them. */
  size_t n_meta;
  char **meta_keys;   /* n_meta keys without the "user.e2b." prefix */
  char **meta_values; /* n_meta values */
} cc_sbx_entry;

#define CC_SBX_META_MAX 32768

void cc_sbx_entry_cleanup(cc_sbx_entry *e); /* frees the strings, not e; NULL-safe */
void cc_sbx_entries_free(cc_sbx_entry *list, size_t n);

/* stat (following symlinks as described above).  NOT_FOUND "file not found: <p>". */
cc_status cc_sbx_fs_stat(cc_sbx *sbx, const char *path, cc_sbx_entry *out, cc_sbx_err *err);

/* mkdir -p (0755).  EXISTS if the directory already existed (SDK: makeDir → false);
 * NOT_DIR "path already exists but it is not a directory: <p>".  *out may be NULL. */
cc_status cc_sbx_fs_mkdir(cc_sbx *sbx, const char *path, cc_sbx_entry *out, cc_sbx_err *err);

/* rename(src, dst), creating dst's parents.  NOT_FOUND "source file not found: <p>".
 * *out (may be NULL) is dst's EntryInfo. */
cc_status cc_sbx_fs_move(cc_sbx *sbx, const char *src, const char *dst, cc_sbx_entry *out,
                         cc_sbx_err *err);

/* Entries below dir up to depth levels (0 is treated as 1), never dir itself, depth-first in
 * lexical order; entry paths are dir (as resolved, not following symlinks) joined with the
 * relative path; symlinked dirs are not descended.  NOT_FOUND "path not found: <p>", NOT_DIR
 * "path is not a directory: <p>", LIMIT past max_entries (0 = 100000).  Free with
 * cc_sbx_entries_free. */
cc_status cc_sbx_fs_list(cc_sbx *sbx, const char *dir, uint32_t depth, size_t max_entries,
                         cc_sbx_entry **list, size_t *n, cc_sbx_err *err);

/* rm -rf.  A missing path is success. */
cc_status cc_sbx_fs_remove(cc_sbx *sbx, const char *path, cc_sbx_err *err);

/* Opens a regular file for reading inside the sandbox and returns its fd (CLOEXEC; caller
 * reads and closes it; *size is its size at open).  IS_DIR for a directory, NOT_FOUND
 * "file not found: <p>" if missing. */
cc_status cc_sbx_fs_open_read(cc_sbx *sbx, const char *path, int *fd, int64_t *size,
                              cc_sbx_err *err);

/* Creates parents (0755) and opens the file O_WRONLY|O_CREAT|O_TRUNC (0644) inside the
 * sandbox; returns its fd (CLOEXEC; caller writes and closes).  A write(2) on it fails with
 * ENOSPC when the sandbox's disk quota is full: map that with cc_sbx_err_from_errno.
 * IS_DIR if the path is a directory; NOT_DIR if a parent is a file. */
cc_status cc_sbx_fs_open_write(cc_sbx *sbx, const char *path, int *fd, cc_sbx_err *err);

/* The same operations performed as uid 0 "root" inside (where cc_sbx_runtime_info.root_inside;
 * else as uid 1000): as_root selects; "" and "~" resolve to /root for root. */
cc_status cc_sbx_fs_stat_as(cc_sbx *sbx, bool as_root, const char *path, cc_sbx_entry *out,
                            cc_sbx_err *err);
cc_status cc_sbx_fs_mkdir_as(cc_sbx *sbx, bool as_root, const char *path, cc_sbx_entry *out,
                             cc_sbx_err *err);
cc_status cc_sbx_fs_move_as(cc_sbx *sbx, bool as_root, const char *src, const char *dst,
                            cc_sbx_entry *out, cc_sbx_err *err);
cc_status cc_sbx_fs_list_as(cc_sbx *sbx, bool as_root, const char *dir, uint32_t depth,
                            size_t max_entries, cc_sbx_entry **list, size_t *n, cc_sbx_err *err);
cc_status cc_sbx_fs_remove_as(cc_sbx *sbx, bool as_root, const char *path, cc_sbx_err *err);
cc_status cc_sbx_fs_open_read_as(cc_sbx *sbx, bool as_root, const char *path, int *fd,
                                 int64_t *size, cc_sbx_err *err);
cc_status cc_sbx_fs_open_write_as(cc_sbx *sbx, bool as_root, const char *path, int *fd,
                                  cc_sbx_err *err);

/* mkdir and open-for-writing as E2B's envd does them for its user: paths as uid 1000's (""
 * and "~" are /home/user), root's rights, and every directory and the file they create or
 * write given to uid/gid 1000 (so `user` may upload to /0/x).  Where the runtime has no root
 * inside (cc_sbx_runtime_info.root_inside false): the same as uid 1000. */
cc_status cc_sbx_fs_mkdir_given(cc_sbx *sbx, const char *path, cc_sbx_entry *out,
                                cc_sbx_err *err);
cc_status cc_sbx_fs_open_write_given(cc_sbx *sbx, const char *path, int *fd, cc_sbx_err *err);

/* Convenience: whole-file read (fails with LIMIT above max_bytes) and write.  *data is
 * malloc'd (free with free()), NUL-terminated beyond *len. */
cc_status cc_sbx_fs_read_file(cc_sbx *sbx, const char *path, size_t max_bytes, uint8_t **data,
                              size_t *len, cc_sbx_err *err);
cc_status cc_sbx_fs_write_file(cc_sbx *sbx, const char *path, const void *data, size_t len,
                               cc_sbx_err *err);

/* Fills err from an errno (ENOSPC/EDQUOT → NO_SPACE, ENOENT → NOT_FOUND, ...) with message
 * "<what>: <path>: <strerror>" and returns the matching cc_status. */
cc_status cc_sbx_err_from_errno(cc_sbx_err *err, int e, const char *what, const char *path);

/* The cc_status for an error class (the X-macro column). */
cc_status cc_sbx_errkind_status(cc_sbx_errkind k);

#endif
