/*
 * cc_wtime: the absolute deadline pthread_cond_timedwait takes, `ms` from now on `clock` (the
 * clock the condition variable was made with).  Header-only, so that the worker's standalone
 * modules (queue, log, change feed) need nothing else to link.
 */
#ifndef CC_WTIME_H
#define CC_WTIME_H

#include <stdint.h>
#include <time.h>

static inline void cc_wtime_deadline(struct timespec *ts, clockid_t clock, int64_t ms) {
  clock_gettime(clock, ts);
  ts->tv_sec += (time_t)(ms / 1000);
  ts->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) ts->tv_sec++, ts->tv_nsec -= 1000000000L;
}

#endif
