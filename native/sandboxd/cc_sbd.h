/*
 * cc_sbd: the state of codecanvas-sandboxd: its configuration, the registry of live
 * sandboxes (the E2B control plane), and their expiry.
 *
 * A sandbox is shared between HTTP connection threads by reference counting:
 * cc_sbd_find* return a reference the caller releases with cc_sbd_unref.  Killing a sandbox
 * (DELETE, timeout, shutdown) removes it from the registry at once and destroys its runtime;
 * the struct itself lives until the last reference is dropped.  All registry fields are
 * guarded by the server's lock; per-sandbox process state by the sandbox's own lock.
 *
 * Ownership: cc_sbd_config strings are owned by the config (cc_sbd_config_cleanup).  JSON
 * handed to cc_sbd_create is copied.
 */
#ifndef CC_SBD_H
#define CC_SBD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "cc_sbd_netcfg.h"
#include "cc_status.h"

#define CC_SBD_ENVD_PORT 49983
#define CC_SBD_ENVD_VERSION "0.6.4"
#define CC_SBD_CLIENT_ID "6532622b"
#define CC_SBD_ID_LEN 21    /* "i" + 20 of [a-z0-9] */
#define CC_SBD_TOKEN_LEN 64 /* hex */

typedef struct {
  char *listen_host;
  int listen_port;
  char *state_dir;
  char **api_keys;
  size_t n_api_keys;
  bool no_api_key; /* --insecure-no-api-key */
  char **templates;
  size_t n_templates;
  long memory_mb;
  long pids;
  long cpu_percent;
  long disk_mb;
  long cpu_count;        /* reported in getInfo */
  long default_timeout_s; /* when create sends no timeout */
  long max_timeout_s;
  long max_sandboxes;
  long max_procs_per_sandbox;
  size_t max_body;        /* JSON / proxied request bodies */
  size_t max_upload;      /* one /files upload */
  size_t max_connections;
  bool internet;          /* whether allow_internet_access may be honoured */
  char *domain_name;      /* --domain: sandbox hosts are <port>-<id>.<domain_name>:<port> */
  char *tls_cert, *tls_key; /* --tls-cert/--tls-key: PEM files to serve HTTPS with */
  char *tls_ca_dir;       /* --tls-ca: a local CA kept there issues the certificate */
  bool no_root;           /* --no-root: no uid 0 inside sandboxes */
  bool read_only_system;  /* --read-only-system: no writable layer over the system */
  long warm_pool;         /* sandboxes kept started ahead of create (--warm-pool) */
} cc_sbd_config;

void cc_sbd_config_defaults(cc_sbd_config *c);
void cc_sbd_config_cleanup(cc_sbd_config *c);

typedef struct cc_sbd_server cc_sbd_server;
struct cc_sbx; /* a sandbox of the runtime (native/sandbox/cc_sbx.h) */
struct cc_sbx_runtime;

typedef enum { CC_SBD_RUNNING, CC_SBD_PAUSED } cc_sbd_state;

typedef struct cc_sbd_sandbox {
  cc_sbd_server *srv;
  int refs;                  /* guarded by srv->mu */
  bool alive;                /* guarded by srv->mu */
  /* lifecycle (cc_sbd_life.c): state changes under life_mu, read under srv->mu */
  pthread_mutex_t life_mu;   /* serialises pause / resume / kill of this sandbox */
  cc_sbd_state state;
  bool memory_kept;          /* paused with its processes frozen; else files only, no runtime */
  bool cold_resumed;         /* the last resume started it afresh from its files */
  bool disk_kept;            /* no runtime, but the runtime keeps its disk (writable system:
                                its system layer, /root and home) for the next start */
  bool auto_pause;           /* lifecycle.onTimeout = pause (create's autoPause) */
  bool auto_pause_memory;    /* ...keeping memory (autoPauseMemory, default true) */
  bool auto_resume;          /* traffic to a paused sandbox resumes it */
  long timeout_s;            /* create's timeout: the lifetime an auto-resume gives */
  int64_t paused_ms;
  uint64_t sample_cpu_ns;    /* metrics: the previous sample (guarded by srv->mu) */
  int64_t sample_ms;
  uint64_t seq;              /* creation order, for listing and paging */
  char id[CC_SBD_ID_LEN + 1];
  char token[CC_SBD_TOKEN_LEN + 1]; /* envdAccessToken; empty when secure=false */
  char template_id[128];
  cJSON *metadata;           /* object string->string, never NULL */
  cJSON *env_vars;           /* object string->string, never NULL */
  bool internet;             /* a network helper is attached (allowInternetAccess, or allowOut) */
  bool inet_access;          /* allowInternetAccess as created / last updated (guarded by
                                srv->mu) */
  cc_sbd_netcfg net;         /* egress rules and public traffic (cc_sbd_net.c): replaced under
                                life_mu, read under srv->mu */
  char traffic_token[CC_SBD_TOKEN_LEN + 1]; /* trafficAccessToken when !net.public_traffic:
                                               port URLs need it; else empty */
  int64_t started_ms;
  int64_t end_ms;            /* expiry, guarded by srv->mu */
  struct cc_sbx *sbx;
} cc_sbd_sandbox;

struct cc_sbd_server {
  cc_sbd_config cfg;
  struct cc_sbx_runtime *rt; /* owned by main */
  bool root_inside;          /* the runtime runs user "root" as uid 0 inside (its info) */
  bool domain_rules;         /* allowOut may name domains (the runtime runs as root) */
  int port;                  /* the bound port */
  char domain[256];          /* "<domain_name>:<port>", as create answers it */
  char *tls_cert_pem, *tls_key_pem; /* HTTPS when set (cc_sbd_tls.c) */
  pthread_mutex_t mu;
  pthread_cond_t reaper_cv;
  pthread_t reaper;
  bool stopping;
  uint64_t next_seq;
  cc_sbd_sandbox **boxes;
  size_t n_boxes, cap_boxes;
  size_t n_starting;          /* creates between the limit check and insertion */
  size_t n_cold;              /* registered sandboxes without a runtime (paused, files only) */
  /* the warm pool (cc_sbd_pool.c): started sandboxes waiting for a create */
  cc_sbd_sandbox **pool;
  size_t n_pool;
  pthread_t pool_thread;
  pthread_cond_t pool_cv;
  bool pool_running;
  /* the janitor (cc_sbd_life.c): deletes retired paused-sandbox dirs off the request path */
  pthread_t janitor;
  pthread_cond_t janitor_cv;
  bool janitor_running, janitor_work, janitor_stop; /* guarded by mu */
  uint64_t retire_seq;                              /* guarded by mu */
  /* recently killed sandboxes: token -> id, so late envd calls get 502, not 401 */
  struct { char token[CC_SBD_TOKEN_LEN + 1]; char id[CC_SBD_ID_LEN + 1]; } gone[256];
  size_t gone_next;
};

int64_t cc_sbd_now_ms(void);

/* Fills buf[n-1] with random characters from alphabet; CC_INTERNAL if no randomness. */
cc_status cc_sbd_random(char *buf, size_t n, const char *alphabet);

/* Initialises the registry and starts the reaper thread that kills expired sandboxes and
 * the janitor (cfg.state_dir must be set). */
cc_status cc_sbd_server_init(cc_sbd_server *srv);

/* Refuses new sandboxes, kills every sandbox (ending their streams; a paused sandbox's files
 * stay on disk, so the next start lists it again) and stops the reaper and the janitor.  HTTP
 * threads may still call in afterwards. */
void cc_sbd_server_stop(cc_sbd_server *srv);

/* Frees the registry; only after the HTTP server stopped. */
void cc_sbd_server_cleanup(cc_sbd_server *srv);

typedef struct {
  const char *template_id;
  long timeout_s;
  const cJSON *metadata; /* may be NULL */
  const cJSON *env_vars; /* may be NULL */
  bool secure;
  bool internet;         /* attach a network helper (egress) */
  bool inet_access;      /* allowInternetAccess as asked (shown in the sandbox's info) */
  cc_sbd_netcfg *net;    /* checked network settings, moved into the sandbox (left zeroed);
                            NULL: none (all egress allowed, public traffic) */
  bool auto_pause, auto_pause_memory, auto_resume; /* lifecycle */
} cc_sbd_create_opts;

/*
 * Creates and starts a sandbox.  On success *out holds a reference.  Returns
 * CC_RATE_LIMITED when max_sandboxes are alive or starting (the slot is taken before the
 * runtime starts), CC_SANDBOX_UNAVAILABLE when the runtime could not start it or sandboxd is
 * shutting down, CC_INTERNAL otherwise; msg gets a reason in every failure case.
 */
cc_status cc_sbd_create(cc_sbd_server *srv, const cc_sbd_create_opts *o, cc_sbd_sandbox **out,
                        char *msg, size_t msg_size);

/* Looks a live sandbox up by ID / by access token; NULL if none.  Returns a reference. */
cc_sbd_sandbox *cc_sbd_find(cc_sbd_server *srv, const char *id);
cc_sbd_sandbox *cc_sbd_find_by_token(cc_sbd_server *srv, const char *token);

/* If `token` belonged to a recently killed sandbox, copies its ID into id_out and returns
 * true. */
bool cc_sbd_gone_token(cc_sbd_server *srv, const char *token, char id_out[CC_SBD_ID_LEN + 1]);

/* Finds the newest live sandbox for which check() returns true (e.g. whose token validates
 * a /files signature).  Returns a reference or NULL. */
cc_sbd_sandbox *cc_sbd_find_matching(cc_sbd_server *srv,
                                     bool (*check)(const cc_sbd_sandbox *, void *), void *ctx);

void cc_sbd_ref(cc_sbd_sandbox *sb);
void cc_sbd_unref(cc_sbd_sandbox *sb);

/* Kills a sandbox: removes it from the registry and ends all its processes.  Returns
 * CC_NOT_FOUND if it was not alive. */
cc_status cc_sbd_kill(cc_sbd_server *srv, cc_sbd_sandbox *sb);

/* Sets the expiry to now + timeout_s (setTimeout) or extends it to at least that (connect). */
void cc_sbd_set_timeout(cc_sbd_server *srv, cc_sbd_sandbox *sb, long timeout_s, bool extend_only);

/* Starts / stops the sandbox's runtime instance (cc_sbd.c; used by cc_sbd_life.c). */
cc_status cc_sbd_runtime_start(cc_sbd_sandbox *sb, char *msg, size_t msg_size);
void cc_sbd_runtime_stop(cc_sbd_sandbox *sb, bool keep_disk);

/* A zeroed sandbox of srv (for cc_sbd_load_paused and the pool), or NULL; and its free
 * (its runtime must have been stopped). */
cc_sbd_sandbox *cc_sbd_sandbox_alloc(cc_sbd_server *srv);
void cc_sbd_sandbox_free(cc_sbd_sandbox *sb);

/* ---- cc_sbd_pool.c: the warm pool ---- */

/* Starts the thread that keeps cfg.warm_pool sandboxes started (of the first template, with
 * internet access when sandboxd gives it), so that a create only hands one out. */
cc_status cc_sbd_pool_start(cc_sbd_server *srv);

/* Stops that thread and kills the sandboxes still waiting (before cc_sbd_server_stop). */
void cc_sbd_pool_stop(cc_sbd_server *srv);

/* A started sandbox for this create, or NULL when the pool has none that fits (another
 * template, no internet access asked for, or empty).  It has an id and a token; the caller
 * fills in the rest and registers it. */
cc_sbd_sandbox *cc_sbd_pool_take(cc_sbd_server *srv, const cc_sbd_create_opts *o);

/* Registers a sandbox that has no runtime (a paused sandbox found on disk at start). */
cc_status cc_sbd_register_cold(cc_sbd_server *srv, cc_sbd_sandbox *sb);

/* ---- cc_sbd_life.c: pause, resume, what survives a restart, metrics ---- */

/* Pauses a running sandbox.  keep_memory: its processes are frozen (cgroup freezer) and
 * resume continues them; else (or without a freezer) they end and resume starts it afresh
 * with its files.  Either way /home/user is first archived under the state dir, so a paused
 * sandbox survives a sandboxd restart (files only).  The timeout clock stops.  only_if_expired:
 * the reaper's call (does nothing if a connect extended it meanwhile).  CC_CONFLICT if it is
 * already paused; msg says why on failure. */
cc_status cc_sbd_pause(cc_sbd_server *srv, cc_sbd_sandbox *sb, bool keep_memory,
                       bool only_if_expired, char *msg, size_t msg_size);

/* Resumes a paused sandbox (or only extends a running one's expiry when extend_only).  reboot:
 * start it afresh from its files even if its memory was kept.  *resumed says whether it was
 * paused.  The expiry becomes now + timeout_s (connect: at least that). */
cc_status cc_sbd_resume(cc_sbd_server *srv, cc_sbd_sandbox *sb, long timeout_s, bool reboot,
                        bool *resumed, char *msg, size_t msg_size);

/* Before traffic reaches a sandbox: CC_OK if it runs (auto-resuming a paused one whose
 * lifecycle says autoResume), CC_CONFLICT if it stays paused. */
cc_status cc_sbd_ensure_running(cc_sbd_server *srv, cc_sbd_sandbox *sb, char *msg,
                                size_t msg_size);

/* Rewrites a paused sandbox's sandbox.json (its settings changed, e.g. by updateNetwork), so
 * that a restarted sandboxd brings it back with them.  CC_OK when it has nothing on disk;
 * CC_INTERNAL with msg when the file could not be written.  Caller holds life_mu. */
cc_status cc_sbd_save_descriptor(cc_sbd_server *srv, cc_sbd_sandbox *sb, char *msg,
                                 size_t msg_size);

/* Retires what a paused sandbox left on disk (at resume and at kill): one rename of
 * <state>/paused/<id> to <state>/retired/, after which a restarted sandboxd no longer sees
 * it; the janitor thread deletes it later, off the request path.  Nothing to do when the
 * sandbox has no paused dir.  Caller holds the sandbox's life_mu. */
void cc_sbd_retire_paused(cc_sbd_server *srv, const char *id);

/* Starts the janitor thread (its first pass empties what an earlier run left in
 * <state>/retired/) / stops it after a last pass; a retirement after the stop stays on disk
 * until the next start.  Called by cc_sbd_server_init / _stop (which own janitor_cv). */
cc_status cc_sbd_janitor_start(cc_sbd_server *srv);
void cc_sbd_janitor_stop(cc_sbd_server *srv);

/* At start: registers every paused sandbox kept under the state dir; returns how many. */
size_t cc_sbd_load_paused(cc_sbd_server *srv);

/* GET /sandboxes/{id}/metrics: [{timestamp, cpuCount, cpuUsedPct, memUsed, memTotal,
 * diskUsed, diskTotal}]: one sample taken now (CPU use since the previous sample) when its
 * whole second lies in [from_s, to_s] (Unix seconds, inclusive), else [] (sandboxd keeps no
 * history, and a sample outside the range is not taken); [] while paused. */
cJSON *cc_sbd_metrics_json(cc_sbd_server *srv, cc_sbd_sandbox *sb, int64_t from_s, int64_t to_s);

/* Snapshot of live sandboxes in creation order (newest first), each with a reference; the
 * caller unrefs each and frees the array. */
cc_status cc_sbd_list(cc_sbd_server *srv, cc_sbd_sandbox ***out, size_t *n);


#endif
