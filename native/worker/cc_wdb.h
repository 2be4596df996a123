/*
 * cc_wdb: the worker's watch over a database it shares with other workers (PostgreSQL).
 *
 * A thread that, once a second, renews this worker's registration and sweeps the records
 * that workers which are gone left pending or running (cc_store_sweep), and keeps the
 * outcome as the database's health for GET /healthz.  With a back end one worker owns alone
 * (SQLite) there is nothing to sweep and no thread is started; health is always good.
 *
 * Ownership: started by cc_wdb_start, stopped and freed by cc_wdb_stop (NULL is fine).
 */
#ifndef CC_WDB_H
#define CC_WDB_H

#include <stdbool.h>
#include <stddef.h>

#include "cc_status.h"
#include "cc_store.h"

typedef struct cc_wdb cc_wdb;

#define CC_WDB_PERIOD_MS 1000

/* Starts the watch for store (which must outlive it).  *out is NULL (nothing to watch) for a
 * back end without sweep.  CC_INTERNAL when the thread cannot start. */
cc_status cc_wdb_start(cc_store *store, cc_wdb **out);
void cc_wdb_stop(cc_wdb *d);

/* Whether the database answered the last check; when not, why (in buf).  True for NULL. */
bool cc_wdb_healthy(cc_wdb *d, char *buf, size_t len);

/* Tells the watch that a request just found the database unreachable: /healthz says so at
 * once, and the next check runs now. */
void cc_wdb_report_down(cc_wdb *d, const char *why);

#endif
