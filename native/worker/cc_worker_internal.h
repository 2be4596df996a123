/*
 * cc_worker_internal: what the worker's files share (cc_worker.c = HTTP front,
 * cc_wops.c, cc_wsbx.c, cc_wexec.c = operations, cc_wstatic.c = static files).  Not a
 * public interface.
 *
 * Ownership: a cc_wcall is stack storage of the thread that serves the request; every
 * pointer in it is borrowed for the duration of cc_wops_run.
 */
#ifndef CC_WORKER_INTERNAL_H
#define CC_WORKER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cc_e2b.h"
#include "cc_metrics.h"
#include "cc_proto.h"
#include "cc_store.h"
#include "cc_wconf.h"
#include "cc_wlimit.h"
#include "cc_worker.h"
#include "cc_wqueue.h"

#define CC_WORKER_NAME "codecanvas-worker"
#define CC_WORKER_VERSION "0.1.0"

struct cc_sbx_cache; /* in-memory sandbox descriptors by sandbox id (cc_wsbx.c) */
typedef struct cc_wlog cc_wlog;
struct cc_wmemo;     /* tokens and cached results while the database is unchanged (cc_wmemo.c) */

/* One registered cancellable call: the monitor thread sets *cancel when fd hangs up. */
struct cc_wwatch {
  struct cc_wwatch *next, *prev;
  int fd;
  atomic_int *cancel;
};

struct cc_worker {
  const cc_wconf *cfg;
  cc_store *store;
  struct cc_wdb *db; /* sweep and health of a shared database (cc_wdb.c); NULL for SQLite */
  struct cc_wmemo *memo;
  struct cc_wsync *sync; /* PostgreSQL: the change feed the memo's epoch comes from */
  struct cc_wtoken_hasher *hasher; /* SHA-256 of bearer tokens, fetched once */
  cc_e2b_client *e2b;
  cc_wlimit *limit;
  cc_wqueue *queue;
  cc_metrics metrics;
  cc_proto_limits proto_limits;
  struct MHD_Daemon *daemon;
  struct cc_wlog *log; /* the access log (cc_wlog.c); NULL when off */
  atomic_int stopping;       /* refuse new RPCs */
  atomic_long ops_in_flight; /* RPCs being served */
  atomic_long deferred;      /* requests on the pool, their connections suspended */
  atomic_long terminals;     /* open terminal sessions (cc_wterm.c) */
  struct cc_wpool *pool;     /* threads for what may block (cc_wpool.c) */
  struct cc_wlinger *linger; /* lingering closes (cc_wlinger.c) */

  /* the disconnect monitor */
  pthread_mutex_t watch_mu;
  pthread_cond_t watch_cond;
  struct cc_wwatch *watches;
  pthread_t monitor;
  bool monitor_started;
  bool monitor_stop;

  /* snapshots of projects' files (cc_wsnap.c); NULL when off */
  struct cc_wsnap *snap;

  /* sandbox descriptors (id -> envd token, domain), refreshed by connect */
  pthread_mutex_t sbx_mu;
  struct cc_sbx_cache *sbx;

  /* static roots: prefix (ends with '/') and directory */
  int n_web;
  char *web_prefix[16];
  char *web_dir[16];
};

/* Streaming sink: one NDJSON line (no newline).  Returns false when the client is gone. */
typedef bool (*cc_wemit_fn)(void *sink, const char *line, size_t len);

typedef struct cc_wcall {
  cc_worker *w;
  const char *user;
  const cc_request *req;
  cc_wemit_fn emit; /* NULL unless the request streams */
  void *sink;
  atomic_int *cancel;  /* set when the client disconnects or the worker shuts down */
  uint64_t memo_epoch; /* cc_wmemo_epoch taken before this request read the store */
  /* Called (if set) once, before the call may block for long (it waits for its project or
   * goes to the sandbox): the HTTP front then starts watching the client's connection, so
   * that a hang-up sets *cancel.  Calls answered at once (cache hits, reads) never pay for
   * the watch. */
  void (*on_block)(struct cc_wcall *call);
  void *front; /* the HTTP front's state for on_block */
  /* filled by cc_wops_run for the access log */
  bool cached;
  char record_id[CC_STORE_ID_LEN + 1];
} cc_wcall;

/* Runs one authenticated, admitted request.  Returns the protocol status and the final
 * response message in *response (cc_proto_free).  Never fails to produce a response
 * unless memory is out (then *response is NULL and CC_INTERNAL is returned). */
cc_status cc_wops_run(cc_wcall *call, char **response);

/* The same for an exec whose result is remembered in memory (cc_wmemo) and whose project is
 * idle: answers without any I/O or wait, or returns false having done nothing (the request
 * then goes to cc_wops_run).  This is what the HTTP front's event loop may run itself. */
bool cc_wops_run_remembered(cc_wcall *call, char **response);

/* The user of a bearer token, for every route (cc_worker.c): CC_UNAUTHORIZED for an unknown
 * or revoked one.  *epoch is the memo epoch the answer belongs to. */
cc_status cc_worker_token_user(cc_worker *w, const char *tok, size_t n, char *user_out,
                               size_t cap, uint64_t *epoch);

/* Takes a snapshot of the project's files now, in the project's queue (cc_wsnap's thread).
 * CC_NOT_FOUND when the project or its sandbox is gone (nothing to take). */
cc_status cc_wops_snapshot(cc_worker *w, const char *owner, const char *project,
                           atomic_int *cancel, char *why, size_t why_size);

/* The project's sandbox for a terminal (cc_wterm.c): creates the caller's own project if
 * needed and makes sure its sandbox runs (resumed, created, files restored), in the
 * project's queue.  why says why on failure. */
cc_status cc_wops_terminal_sandbox(cc_worker *w, const char *user, const char *project,
                                   cc_e2b_sandbox *sb, bool *restored, char *why,
                                   size_t why_size);

/* Sets up / frees the sandbox descriptor cache. */
cc_status cc_wops_init(cc_worker *w);
void cc_wops_cleanup(cc_worker *w);

/* Registers fd for hang-up detection while a call runs (cc_worker.c). */
void cc_worker_watch(cc_worker *w, struct cc_wwatch *wt, int fd, atomic_int *cancel);
void cc_worker_unwatch(cc_worker *w, struct cc_wwatch *wt);
/* Sets the cancel flag of every registered call (shutdown).  (cc_wmonitor.c) */
void cc_worker_cancel_all(cc_worker *w);
/* The monitor thread's body (arg: the worker).  (cc_wmonitor.c) */
void *cc_wmonitor_main(void *arg);

struct MHD_Connection;
struct MHD_Response;
/* Serves GET/HEAD `url` from the static roots.  Returns the HTTP status queued. */
int cc_wstatic_serve(cc_worker *w, struct MHD_Connection *conn, const char *url,
                     struct MHD_Response **out);

int64_t cc_worker_now_ms(void);

#endif
