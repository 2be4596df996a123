/*
 * cc_wmigrate: moving a SQLite deployment to PostgreSQL (`codecanvas-worker migrate --from
 * FILE --to URI`, docs/operations.md).
 *
 * Copies everything a worker keeps -- users, tokens (hashes, labels, times, revocations,
 * ids), projects (ids, generation, sandbox id, metadata, times), cache entries (in their
 * eviction order), execution records (seq, ids, columns as they are) and the snapshot files
 * of the deployment's snapshot directory -- into a PostgreSQL database that holds no users,
 * projects or snapshots yet.  The SQLite file is opened read-only and read in one read
 * transaction; the target's schema is made by the store itself (cc_store_open and the
 * snapshot store), then every row is written in ONE PostgreSQL transaction (COPY), so a
 * failure or a refusal leaves the target as it was.  A record still pending or running in
 * the file becomes error/internal, as the store's recovery would make it.
 *
 * Ownership: every input is borrowed; nothing is handed out.
 */
#ifndef CC_WMIGRATE_H
#define CC_WMIGRATE_H

#include <stddef.h>
#include <stdint.h>

#include "cc_status.h"

typedef struct cc_wmigrate_options {
  const char *from;         /* the SQLite file of the deployment (opened read-only) */
  const char *to;           /* a libpq URI, postgresql://... or postgres://... */
  const char *snapshot_dir; /* NULL or "": snapshots/ beside `from`; "off": no snapshots */
} cc_wmigrate_options;

/* What was copied. */
typedef struct cc_wmigrate_counts {
  int64_t users, tokens, revoked_tokens, projects, cache_entries, records;
  int64_t interrupted_records; /* pending/running in the file, written as error/internal */
  int64_t snapshots;
  int64_t snapshots_skipped; /* <key>.json without its <key>.tgz, or unreadable metadata */
  uint64_t snapshot_bytes;   /* archive bytes copied */
} cc_wmigrate_counts;

/* Copies the deployment o->from (+ its snapshot directory) into o->to; *counts says what.
 * On failure nothing is written to the target (a failure after the refusal check may leave
 * the schema, made as a worker makes it, and nothing else) and err gets the reason, with any
 * URI password masked:
 *   CC_BAD_REQUEST     o->to is not a PostgreSQL URI, o->from is not a codecanvas database
 *                      or has a schema newer than this program's;
 *   CC_NOT_FOUND       o->from, or an explicitly named snapshot directory, does not exist;
 *   CC_CONFLICT        the target already holds users, projects or snapshots (refused);
 *   CC_UPSTREAM_ERROR  the PostgreSQL server cannot be reached or the connection was lost;
 *   CC_INTERNAL        anything else (a row the server refused, an unreadable file). */
cc_status cc_wmigrate_run(const cc_wmigrate_options *o, cc_wmigrate_counts *counts, char *err,
                          size_t errlen);

#endif
