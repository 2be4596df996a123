/*
 * cc_wpool: threads for the worker's slow requests; a task never waits behind another
 * (cc_wpool.c).
 */
#ifndef CC_WPOOL_H
#define CC_WPOOL_H

#include <stdbool.h>

typedef struct cc_wpool cc_wpool;

cc_wpool *cc_wpool_new(void);
/* Runs fn(arg) on an idle thread of the pool or on a new one.  false (fn not run) when no
 * thread can be had or the pool is being freed. */
bool cc_wpool_run(cc_wpool *p, void (*fn)(void *), void *arg);
/* Lets every submitted task finish, then ends the threads. */
void cc_wpool_free(cc_wpool *p);

#endif
