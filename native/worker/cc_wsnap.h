/*
 * cc_wsnap: a project's files kept by the worker, so that they outlive its sandbox.
 *
 * A snapshot is a gzip'd tar of the sandbox's /home/user, made inside the sandbox and read
 * back through the files API.  It is taken after state-changing operations (exec,
 * writeFile, setupProject, startDevServer), debounced: a project is marked dirty, and a
 * thread takes the snapshot once the project has been quiet for snapshot_debounce_ms (or
 * has stayed dirty for 10 debounce periods), in the project's own queue so it never races an
 * operation.  Over snapshot_max_bytes, heavy directories (node_modules, .venv, caches...)
 * and then the largest top-level entries are left out, and the snapshot says it is partial
 * and which paths were left out.  When the worker has to create a new sandbox for a project
 * that has a snapshot (its sandbox was lost), it restores the snapshot into it first.
 *
 * Storage is behind cc_wsnap_store (put/get/info/del by key = hex SHA-256 of owner and
 * project): the directory backend keeps <dir>/<key>.tgz and <key>.json (default dir: beside
 * the SQLite file); with a PostgreSQL database they are kept in it by default (cc_wsnap_pg.c),
 * where every worker finds them.
 *
 * Ownership: cc_wsnap_meta.excluded_json is heap-owned (cc_wsnap_meta_free).
 */
#ifndef CC_WSNAP_H
#define CC_WSNAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cc_e2b.h"
#include "cc_status.h"

struct cc_worker;

typedef struct {
  int64_t taken_ms;    /* wall clock, ms since the epoch */
  uint64_t bytes;      /* archive size */
  bool partial;        /* some paths were left out to stay under the limit */
  char *excluded_json; /* JSON array of the paths left out ("[]" or NULL when none) */
} cc_wsnap_meta;

void cc_wsnap_meta_free(cc_wsnap_meta *m);

/* A storage backend.  get/info return CC_NOT_FOUND when there is no snapshot. */
typedef struct cc_wsnap_store {
  cc_status (*put)(struct cc_wsnap_store *s, const char *key, const cc_wsnap_meta *m,
                   const void *data, size_t len);
  cc_status (*get)(struct cc_wsnap_store *s, const char *key, cc_wsnap_meta *m, char **data,
                   size_t *len);
  cc_status (*info)(struct cc_wsnap_store *s, const char *key, cc_wsnap_meta *m);
  cc_status (*del)(struct cc_wsnap_store *s, const char *key);
  void (*free)(struct cc_wsnap_store *s);
} cc_wsnap_store;

/* The directory backend (created 0700 if missing). */
cc_status cc_wsnap_dir_store(const char *dir, cc_wsnap_store **out);
/* The PostgreSQL backend (cc_wsnap_pg.c): table snapshots in the database at uri, shared by
 * every worker (created if missing).  CC_UPSTREAM_ERROR when the server cannot be reached. */
cc_status cc_wsnap_pg_store(const char *uri, cc_wsnap_store **out);

/* Sets up snapshots from the worker's configuration (snapshot_dir "off" disables them) and
 * starts the debounce thread.  cc_wsnap_cleanup stops it (pending snapshots are dropped). */
cc_status cc_wsnap_init(struct cc_worker *w);
void cc_wsnap_cleanup(struct cc_worker *w);

/* The project's files changed: snapshot it once it has been quiet for the debounce time. */
void cc_wsnap_touch(struct cc_worker *w, const char *owner, const char *project);

/* deleteProject: drops a pending snapshot and deletes the stored one. */
void cc_wsnap_forget(struct cc_worker *w, const char *owner, const char *project);

/* Whether the project changed since its last snapshot and the next one is not stored yet
 * (waiting for quiet, or being taken): what this worker knows. */
bool cc_wsnap_pending(struct cc_worker *w, const char *owner, const char *project);

/* What is stored for the project (CC_NOT_FOUND: nothing; snapshots off: CC_NOT_FOUND). */
cc_status cc_wsnap_info(struct cc_worker *w, const char *owner, const char *project,
                        cc_wsnap_meta *out);

/* Takes a snapshot of sb's /home/user now and stores it (the caller holds the project's
 * queue).  why gets the reason of a failure. */
cc_status cc_wsnap_take(struct cc_worker *w, const char *owner, const char *project,
                        const cc_e2b_sandbox *sb, char *why, size_t why_size);

/* Puts the project's snapshot into the (new) sandbox sb.  CC_NOT_FOUND: there is none
 * (nothing done); CC_OK with *meta filled (the caller frees it). */
cc_status cc_wsnap_restore(struct cc_worker *w, const char *owner, const char *project,
                           const cc_e2b_sandbox *sb, cc_wsnap_meta *meta, char *why,
                           size_t why_size);

#endif
