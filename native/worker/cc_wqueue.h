/*
 * cc_wqueue: per-project ordering of the worker (DESIGN §5 "Ordering").
 *
 * Operations of one project (owner + projectId) run one at a time in arrival order:
 * cc_wqueue_enter appends the caller to the project's FIFO and blocks until it is at the
 * head; cc_wqueue_leave hands the project to the next waiter.  Different projects never
 * wait for each other.  A waiter whose cancel flag becomes non-zero (client gone, shutdown)
 * leaves the queue without running.  Entries exist only while someone holds or waits, so
 * memory is bounded by the requests in flight.
 *
 * Ownership: cc_wqueue_new/cc_wqueue_free; a cc_wqueue_ticket is caller-owned storage
 * filled by enter and consumed by leave.
 */
#ifndef CC_WQUEUE_H
#define CC_WQUEUE_H

#include <stdatomic.h>
#include <stdbool.h>

#include "cc_status.h"

typedef struct cc_wqueue cc_wqueue;
typedef struct cc_wqueue_ticket {
  void *entry_; /* private */
  void *node_;
} cc_wqueue_ticket;

cc_status cc_wqueue_new(cc_wqueue **out);
/* No project may be held or waited for. Accepts NULL. */
void cc_wqueue_free(cc_wqueue *q);

/* Waits until the caller holds (owner, project).  Returns CC_OK (holding; call
 * cc_wqueue_leave once), CC_SANDBOX_UNAVAILABLE when *cancel became non-zero while waiting
 * (not holding), or CC_INTERNAL when memory is out.  cancel may be NULL. */
cc_status cc_wqueue_enter(cc_wqueue *q, const char *owner, const char *project, atomic_int *cancel,
                          cc_wqueue_ticket *t);
void cc_wqueue_leave(cc_wqueue *q, cc_wqueue_ticket *t);

/* As cc_wqueue_enter, for work that changes nothing a read could observe (a snapshot of the
 * project's files): it takes its turn like any other, but cc_wqueue_idle does not count it,
 * so reads that skip the queue are not held up behind it. */
cc_status cc_wqueue_enter_passive(cc_wqueue *q, const char *owner, const char *project,
                                  atomic_int *cancel, cc_wqueue_ticket *t);

/* True when nobody holds or waits for (owner, project) at the moment of the call, apart from
 * passive entries.  A read that finds the project idle may run without entering: it is
 * ordered before anything that enters afterwards. */
bool cc_wqueue_idle(cc_wqueue *q, const char *owner, const char *project);

#endif
