/*
 * cc_wlimit: per-user admission control of the worker.
 *
 * Two independent limits, each with its own error (docs/worker.md "Limits"):
 *  - a token bucket of requests per user (rate `per_s`, capacity `burst`): an empty
 *    bucket is CC_RATE_LIMITED (HTTP 429);
 *  - a cap on sandbox operations of one user in flight (running or queued behind another
 *    operation of the same project): one more is CC_CONFLICT (HTTP 409).
 * The table is keyed by user name; users only come from valid tokens, so it is bounded
 * by the number of users the operator created (and by `max_users`, beyond which new users
 * are admitted without a bucket rather than growing the table).
 *
 * Ownership: cc_wlimit_new returns a handle freed with cc_wlimit_free; user names are copied.
 */
#ifndef CC_WLIMIT_H
#define CC_WLIMIT_H

#include <stdint.h>

#include "cc_status.h"

typedef struct cc_wlimit cc_wlimit;

/* per_s == 0 turns the rate limit off; max_inflight == 0 turns the cap off. */
cc_status cc_wlimit_new(long per_s, long burst, long max_inflight, cc_wlimit **out);
void cc_wlimit_free(cc_wlimit *l);

/* Takes one token of `user` at time now_ms.  CC_RATE_LIMITED when the bucket is empty. */
cc_status cc_wlimit_request(cc_wlimit *l, const char *user, int64_t now_ms);

/* Counts one more operation in flight for `user`; CC_CONFLICT when at the cap (nothing is
 * counted then).  Every CC_OK must be paired with cc_wlimit_leave. */
cc_status cc_wlimit_enter(cc_wlimit *l, const char *user);
void cc_wlimit_leave(cc_wlimit *l, const char *user);

#endif
