/*
 * cc_worker: the codecanvas-worker server: HTTP front (libmicrohttpd), authentication,
 * admission control, the protocol v1 operations and graceful shutdown.
 *
 * Lifecycle: cc_worker_new (opens the store, runs crash recovery, makes the E2B client)
 * -> cc_worker_start (listens; reports the bound port) -> cc_worker_shutdown (stops
 * accepting, lets in-flight work finish for up to the grace period, then cancels the rest
 * and records it as canceled) -> cc_worker_free.
 *
 * Ownership: the worker copies nothing from cfg it does not keep; cfg must outlive it.
 */
#ifndef CC_WORKER_H
#define CC_WORKER_H

#include "cc_status.h"
#include "cc_wconf.h"

typedef struct cc_worker cc_worker;

/* Opens the store at cfg->db, marks records interrupted by a previous crash as error,
 * and creates the E2B client.  On failure writes one line into err (never a secret). */
cc_status cc_worker_new(const cc_wconf *cfg, cc_worker **out, char *err, size_t errlen);

/* Starts serving on cfg->listen.  *port gets the bound port. */
cc_status cc_worker_start(cc_worker *w, int *port, char *err, size_t errlen);

/* Graceful stop: refuse new requests (503), wait up to grace_ms for in-flight operations,
 * cancel what is left (records become "canceled"), then close every connection. */
void cc_worker_shutdown(cc_worker *w, long grace_ms);

/* Frees the worker (after shutdown).  Accepts NULL. */
void cc_worker_free(cc_worker *w);

#endif
