/*
 * cc_wsync: the change feed of a PostgreSQL database shared by several workers, as an epoch
 * for cc_wmemo (the worker's memory of tokens and cached results).
 *
 * Every write to the tables the memo draws from (users, tokens, projects, cache, records)
 * fires a trigger that NOTIFYs channel cc_change at commit (shared/cc_store_pg.c).  This module
 * keeps one connection that LISTENs on it.  cc_wsync_epoch() is a barrier: it returns an epoch
 * that counts every change committed before the call began.  To know that, it waits for a
 * round trip (SELECT 1) on the listening connection sent after the call began: the server
 * delivers pending notifications before it answers a later query, so every change committed
 * earlier has been seen (and has moved the epoch) when the answer arrives.  Concurrent callers
 * share one round trip, so a burst of cached requests costs the database one trivial query.
 * Anything remembered under an epoch is served only while the epoch stands, exactly as with
 * SQLite's inotify (cc_wmemo.c): a revocation or a write through any worker retires it before
 * the next request is answered.
 *
 * When the connection is lost, the epoch moves (notifications may have been missed) and, until
 * it is back, cc_wsync_epoch returns 0 (nothing is remembered or served from memory).
 *
 * Ownership: cc_wsync_start/cc_wsync_stop (NULL is fine).  Thread-safe.
 */
#ifndef CC_WSYNC_H
#define CC_WSYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "cc_status.h"

typedef struct cc_wsync cc_wsync;

/* Connects to uri, LISTENs and starts the feed's thread.  CC_UPSTREAM_ERROR when the server
 * cannot be reached (the worker then starts without it: the memo is off). */
cc_status cc_wsync_start(const char *uri, cc_wsync **out);
void cc_wsync_stop(cc_wsync *s);

/* The barrier epoch (see above); 0 when the feed is down.  Waits for the round trip. */
uint64_t cc_wsync_epoch(void *s);

/* The same barrier without waiting, for an event loop: cc_wsync_request numbers a barrier
 * call (it begins now); cc_wsync_ready says whether that call is answered and then gives its
 * epoch.  When it is not and wake is set, cc_wsync_ready registers wake(arg), called once
 * from the feed's thread when it is (not under any lock of the caller's), and returns false. */
uint64_t cc_wsync_request(cc_wsync *s);
bool cc_wsync_ready(cc_wsync *s, uint64_t ticket, uint64_t *epoch, void (*wake)(void *),
                    void *arg);

#endif
