/*
 * cc_sbx_priv: what the files of the host runtime share (not for C2, not for the agent).
 *
 * cc_sbx.c: the runtime object and its registry of sandboxes (create, open, kill, info,
 * freeze, usage) and the error helpers every file uses.
 * cc_sbx_launch.c: starting bubblewrap (its command line, the data it reads, the fork/exec).
 * cc_sbx_io.c: the I/O thread (epoll loop, agent messages, output pumping, deadlines,
 * teardown of a dead sandbox) and agent requests from caller threads.
 * cc_sbx_proc.c: processes and subscriptions (start, subscribe, events, stdin, signals).
 * cc_sbx_fs.c: file operations and port connections, each one request to the agent.
 * The helper modules they use (cgroups, egress, pty, seccomp, wire) are in cc_sbx_int.h.
 *
 * Locks: rt->lock (registry, refs, launch queue, kick/stop flags) is taken before a
 * sandbox's lock, never after; a process's stdin_lock is taken without either.
 * Ownership: a sandbox is reference counted (the registry, the I/O thread from launch to
 * teardown, open handles, subscriptions); a process likewise (the table, its subscriptions,
 * any thread using it outside the sandbox lock); a chunk belongs to the subscription whose
 * queue it is in (or whose current event it is).
 */
#ifndef CC_SBX_PRIV_H
#define CC_SBX_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "cc_sbx.h"
#include "cc_sbx_int.h"
#include "cc_sbx_wire.h"

#define CC_SBX_CHUNK_MAX 32768 /* one read of output, and one queued chunk at most */
#define CC_SBX_AGENT_TIMEOUT_MS 60000
#define CC_SBX_SANDBOX_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

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
  bool gone; /* ended by the sandbox's teardown, not by its own exit (END's sandbox_gone) */
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
  bool egress_busy; /* cc_sbx_set_egress is running nft for it (one at a time) */
  struct cc_sbx_dproxy *dproxy; /* domain rules' proxy (cc_sbx_dproxy.c), or NULL */
  char why[256];
  int sock, bwrap_pidfd, bwrap_errfd;
  pid_t bwrap_pid, agent_pid, slirp_pid;
  int slirp_exit_fd; /* write end of slirp4netns's --exit-fd pipe (-1 = none) */
  tag t_sock, t_pidfd;
  pending *pend;
  uint32_t next_id;
  proc *procs;
  size_t n_procs;
  cc_sbx_cg cg;
  /* launch inputs (built by the caller, consumed by the I/O thread) */
  char **argv;
  int child_sock, passwd_fd, group_fd, resolv_fd, agent_fd, seccomp_fd;
  int userns_fd; /* root_inside: the user namespace made for it (bwrap --userns) */
  int sudo_fd;   /* root_inside with a host /usr/bin/sudo: the agent again, run as `sudo` */
  int bootid_fd; /* this boot's /proc/sys/kernel/random/boot_id (a pipe) */
  bool disk;     /* it has a disk with a writable system (rt->sys) */
  bool resume_disk; /* created to reuse the disk kept for its id */
  bool keep_disk;   /* its kill keeps the disk (cc_sbx_kill_keep_disk) */
  cc_sbx *next_launch, *next, *next_dead;
};

struct cc_sbx_runtime {
  cc_sbx_config cfg;
  char *state_dir, *prefix;
  cc_sbx_runtime_info info;
  cc_sbx_net net;
  cc_sbx_cg_root cg;
  cc_sbx_sys sys; /* the writable system (sys.on), set up before any sandbox */
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
  char nft[256]; /* egress rules: "libnftables" (root), the nft program (unprivileged), or
                    "" = none (info.egress_rules says why) */
  pthread_mutex_t nft_lock; /* one libnftables run at a time */
};

/* ---- cc_sbx.c: errors, time, references, environments ------------------------------------- */

/* Fills err (may be NULL) with kind, errno e and the formatted message; returns the kind's
 * cc_status. */
cc_status cc_sbx_fail(cc_sbx_err *err, cc_sbx_errkind k, int e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The error class of an errno (0 → NONE, unknown → SYSTEM). */
cc_sbx_errkind cc_sbx_errno_kind(int e);

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t cc_sbx_now_ms(void);

/* *ts = timeout_ms from now on CLOCK_MONOTONIC (the clock of every sandbox's condition
 * variable), for pthread_cond_timedwait. */
void cc_sbx_deadline_ts(struct timespec *ts, int timeout_ms);

/* One more reference to sbx / one less (the last frees it).  Both take rt->lock, so neither
 * may be called while holding a sandbox lock. */
void cc_sbx_ref(cc_sbx *sbx);
void cc_sbx_unref(cc_sbx *sbx);

/* Sets name=value in the NULL-terminated "K=V" array *list of *n entries, in place when name
 * is there, else appended.  An invalid name ("" or containing '=') is ignored.  false only
 * when out of memory (the list is unchanged). */
bool cc_sbx_env_set(char ***list, size_t *n, const char *name, const char *value);

/* ---- cc_sbx_io.c: the I/O thread, output queues, the process table, agent requests -------- */

/* The thread's body (arg: the runtime); returns once rt->stopping is seen. */
void *cc_sbx_io_main(void *arg);

/* The sandbox is down (bwrap exited, or never started): ends every process, fails every
 * pending request, closes every fd (the agent socket is only shut down) and wakes its
 * waiters.  I/O thread only; the caller then puts sbx on rt->dead. */
void cc_sbx_teardown(cc_sbx *sbx);

/* Wakes the I/O thread (launch queue, kick, stop, or a new deadline to compute). */
void cc_sbx_wake(cc_sbx_runtime *rt);

/* A chunk holding a copy of data (len bytes); NULL when out of memory. */
chunk *cc_sbx_chunk_new(cc_sbx_event_type type, const void *data, size_t len, int wstatus);

/* Appends c to s's queue (taking it) and signals s's eventfd.  Caller holds the sandbox
 * lock. */
void cc_sbx_sub_push(cc_sbx_sub *s, chunk *c);

/* Room for one more chunk in every subscription of p?  Caller holds the sandbox lock. */
bool cc_sbx_has_room(cc_sbx_runtime *rt, proc *p);

/* Drops one reference to p (the last closes its fds and frees it).  Caller holds the sandbox
 * lock. */
void cc_sbx_proc_unref(proc *p);

/* The registered process pid of the table (running_only: one that has not exited), or NULL.
 * Caller holds the sandbox lock; no reference is taken. */
proc *cc_sbx_find_proc(cc_sbx *sbx, uint32_t pid, bool running_only);

/* Sends one request (h->id is set here; fds are not taken) and waits up to timeout_ms for its
 * reply.  Returns 0 with pd filled, or an errno (EPIPE: the sandbox is dead; ETIMEDOUT).  pd
 * is the caller's and needs cc_sbx_pending_cleanup afterwards, whatever the result. */
int cc_sbx_agent_call(cc_sbx *sbx, cc_sbx_wire_hdr *h, const void *payload, size_t len,
                      const int *fds, int nfds, pending *pd, int timeout_ms);

/* Frees a reply's payload and closes the fd it carried, if still set. */
void cc_sbx_pending_cleanup(pending *pd);

/* The failure of an agent call that got no reply: TIMEOUT for ETIMEDOUT, else GONE. */
cc_status cc_sbx_gone(cc_sbx *sbx, cc_sbx_err *err, int e);

/* ---- cc_sbx_launch.c: starting bubblewrap ------------------------------------------------- */

/* Makes sbx's launch inputs (its disk with a writable system, argv, passwd/group/resolv
 * pipes, agent and seccomp memfds).  false with why when one could not be made; what was
 * made is sbx's to close (and its disk, sbx->disk, to drop). */
bool cc_sbx_launch_prepare(cc_sbx_runtime *rt, cc_sbx *sbx, char *why, size_t cap);

/* A user namespace owned by the sandbox's host uid, mapping uid/gid 0 to host_uid + 1, 1000
 * to host_uid, 1-999 to host_uid + 2 .. + 1000 and 1001-65535 to host_uid + 1001 .. + 65535
 * (what bwrap joins with root inside; also the ID map of the writable system's layers).  Its fd (CLOEXEC), or -1 with why. */
int cc_sbx_make_userns(cc_sbx_runtime *rt, char *why, size_t cap);

/* The sandbox users' /etc/passwd and /etc/group. */
const char *cc_sbx_passwd(void);
const char *cc_sbx_group(void);

/* Runs bwrap with a sandbox's arguments and /usr/bin/true once; false with why (bwrap's own
 * message where it gave one) when it fails. */
bool cc_sbx_launch_probe(cc_sbx_runtime *rt, char *why, size_t cap);

/* I/O thread only: forks bwrap for sbx, or tears sbx down and puts it on rt->dead. */
void cc_sbx_launch(cc_sbx_runtime *rt, cc_sbx *sbx);

/* Closes whatever launch inputs of sbx are still open (idempotent). */
void cc_sbx_close_launch_fds(cc_sbx *sbx);

/* ---- cc_sbx_fs.c: paths and payloads ------------------------------------------------------ */

/* Resolves a cwd or file path the way envd does (see cc_sbx.h "Files") into out (cap bytes):
 * absolute, no "." or empty components; the home is /root when root, else /home/user.  false
 * for "..", "~user" or a path too long. */
bool cc_sbx_resolve_path(const char *in, bool root, char *out, size_t cap);

/* Appends s with its NUL at buf + *off (advancing it); false, and nothing written, when it
 * does not fit in cap. */
bool cc_sbx_put_str(char *buf, size_t cap, size_t *off, const char *s);

#endif
