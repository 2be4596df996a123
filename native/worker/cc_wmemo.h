/*
 * cc_wmemo: what the worker remembers of its database between requests, so that the hot
 * path of a request (its bearer token, a cached exec) does not go to SQLite.
 *
 * Each SQLite read transaction costs file-lock system calls and the store's one mutex, which
 * 64 concurrent requests queue on: a cached exec used to spend more time there than anywhere
 * else (docs/benchmarks.md).  The memo keeps the answers the hot path needs (token hash ->
 * user; user+project+cache key -> the cached result, pre-rendered) and serves them only while
 * the database has not been written since they were read, by anyone: this worker, or another
 * process such as `codecanvas-worker token revoke` (with PostgreSQL: any worker; the epoch then
 * comes from the database's change feed, cc_wsync.h).  Each request asks for the current
 * epoch first; a change bumps it, which retires everything remembered before.  "Written" is
 * observed, for SQLite in WAL mode, in SQLite's WAL-index header (the first bytes of the
 * database's -shm file, mapped read-only): every commit changes it before the commit is
 * visible to any reader (that is how SQLite's own readers notice commits), so a request that
 * starts after a revocation has committed always sees the change, and the check is a few
 * loads from memory, no system call.  Where the header cannot be mapped, inotify on the
 * database file and its write-ahead log: the kernel queues the event inside the commit's
 * write, and the check is one ioctl (FIONREAD) per request.  Without either (or if a watch
 * is lost) the memo is off: every lookup misses.
 *
 * Bounds: a fixed number of slots (a new entry replaces whatever had its slot); cache entries
 * above CC_WMEMO_MAX_ENTRY_BYTES are not remembered (they are served from the store).
 * Thread-safe: one mutex, held only to copy an entry in or out.
 *
 * Ownership: a cc_wmemo is made by cc_wmemo_new and freed by cc_wmemo_free (NULL is fine);
 * every input is copied; a served response is malloc'd and freed with cc_proto_free (free).
 */
#ifndef CC_WMEMO_H
#define CC_WMEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cc_status.h"

#define CC_WMEMO_MAX_ENTRY_BYTES 16384 /* a rendered result larger than this is not kept */

typedef struct cc_wmemo cc_wmemo;

/* Watches db_path and db_path-wal.  Returns NULL only when out of memory; when inotify or a
 * watch is unavailable the memo is made but stays off (and says why on stderr once).  A NULL
 * db_path makes a memo that is off (a database without a file, such as PostgreSQL). */
cc_wmemo *cc_wmemo_new(const char *db_path);
/* A memo whose epoch comes from a change feed instead of a watched file: epoch(ctx) must
 * count every change committed before the call began, and return 0 when it cannot (a
 * PostgreSQL database shared by several workers: cc_wsync_epoch). */
cc_wmemo *cc_wmemo_new_fed(uint64_t (*epoch)(void *ctx), void *ctx);
void cc_wmemo_free(cc_wmemo *m);

/* The current epoch, after consuming pending change notifications (which bump it).  Take it
 * before reading the store; remember what was read under it; a lookup with a later epoch
 * misses.  0 when the memo is off (nothing is remembered under 0). */
uint64_t cc_wmemo_epoch(cc_wmemo *m);

/* How changes are seen: "WAL-index header", "inotify", "change feed" or "off". */
const char *cc_wmemo_how(const cc_wmemo *m);

/* Token hash (64 hex digits) -> user, as last read from the store.  Copies the user into
 * user[n] and returns true on a hit. */
bool cc_wmemo_user(cc_wmemo *m, uint64_t epoch, const char *token_hash, char *user, size_t n);
void cc_wmemo_remember_user(cc_wmemo *m, uint64_t epoch, const char *token_hash, const char *user);

/* A cached exec result, rendered as the ok response's "result" with its "duration" value
 * cut out: `before` ends just before the duration value and `after` starts just after it. */
typedef struct cc_wmemo_exec {
  const char *before, *after;
  size_t before_len, after_len;
  int64_t generation;    /* the project's generation the entry belongs to */
  int64_t created_ms;    /* when the result was stored (wall clock, ms) */
  const char *record_id; /* the record that produced it */
} cc_wmemo_exec;

/* Serves a remembered cache entry of (user, project, key) younger than ttl_ms at now_ms:
 * *response becomes {"v":1,"id":<id>,"ok":true,"result":<before><duration_ms><after>,
 * "generation":N} and record_id[rn] the record's id.  False (nothing allocated) on a miss. */
bool cc_wmemo_exec_serve(cc_wmemo *m, uint64_t epoch, const char *user, const char *project,
                         const char *key, int64_t now_ms, int64_t ttl_ms, const char *id,
                         int64_t duration_ms, char **response, char *record_id, size_t rn);
void cc_wmemo_remember_exec(cc_wmemo *m, uint64_t epoch, const char *user, const char *project,
                            const char *key, const cc_wmemo_exec *e);

#endif
