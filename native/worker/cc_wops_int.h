/*
 * cc_wops_int: what the files of the worker's operations share (not a public interface).
 *
 * cc_wops.c: per-call state helpers (errors, clock), responses, execution records, the
 * recorded sandbox operations (files, setupProject, processes), project operations,
 * dispatch and cc_wops_run.
 * cc_wsbx.c: the sandbox of a project: the descriptor cache, making sure it runs (connect,
 * create, restore), getProject's live facts, the terminal's sandbox, snapshots.
 * cc_wexec.c: exec: running a command with bounded, streamed output, and the exec cache.
 *
 * Ownership: an op is stack storage of the call that serves one request; every pointer in
 * it is borrowed from the cc_wcall (or, for cc_wops_terminal_sandbox, from its caller).
 */
#ifndef CC_WOPS_INT_H
#define CC_WOPS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cc_worker_internal.h"

/* ---- per-call state (cc_wops.c) --------------------------------------------------------- */

typedef struct op {
  cc_wcall *call;
  cc_worker *w;
  const cc_request *req;
  const char *user;
  const char *project;
  char message[600]; /* error message of the failure being reported */
  bool sandbox_recreated;
  int64_t restored_from_ms; /* > 0: the new sandbox got the snapshot of this time */
  cc_e2b_sandbox sb;
  bool have_sb;
  bool running; /* the record was moved to running */
  int64_t t0_ms;
} op;

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t cc_wops_mono_ms(void);

/* Records `st`'s detailed message (never a secret) for the response and the record;
 * returns st. */
cc_status cc_wops_fail(op *o, cc_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* cc_wops_fail with "<what>: <E2B's message>" (or st's message when E2B gave none). */
cc_status cc_wops_fail_e2b(op *o, cc_status st, const cc_e2b_error *e, const char *what);

/* cc_wops_fail for a store failure: "<what> not found", or the store's message (never for
 * CC_INTERNAL). */
cc_status cc_wops_store_fail(op *o, cc_status st, const char *what);

/* Bumps the project's generation (its files or processes changed). */
cc_status cc_wops_bump(op *o);

/* Encodes an ok response with `result` (borrowed) and the project's current generation. */
cc_status cc_wops_respond_ok(op *o, const cJSON *result, char **response);

/* ---- execution records (cc_wops.c) ------------------------------------------------------ */

/* Inserts the call's pending record; its id goes to o->call->record_id. */
cc_status cc_wops_record_begin(op *o);

/* pending -> running, once (a no-op without a record). */
void cc_wops_mark_running(op *o);

/* Finishes the call's record with `status`, `result` (borrowed) and, when err is not
 * CC_OK, err's code and o->message.  A failure is logged, never returned. */
void cc_wops_record_end(op *o, cc_proto_record_status status, const cJSON *result,
                        cc_status err);

/* ---- one call against the sandbox (cc_wops.c) ------------------------------------------- */

typedef cc_status (*sbx_fn)(op *o, void *ctx, cc_e2b_error *err);

/* Runs `fn` against the project's sandbox, renewing a gone sandbox once; a failure's
 * message starts with `what`. */
cc_status cc_wops_with_sandbox(op *o, sbx_fn fn, void *ctx, const char *what);

struct write_ctx {
  const cc_proto_file *f;
};

/* An sbx_fn that writes the file of a struct write_ctx. */
cc_status cc_wops_do_write(op *o, void *ctx, cc_e2b_error *err);

/* ---- the project's sandbox (cc_wsbx.c) -------------------------------------------------- */

/* Drops the cached descriptor of sandbox id (if any). */
void cc_wsbx_forget(cc_worker *w, const char *id);

/* Makes o->sb the project's live sandbox (connect, or create and restore); `force_new`
 * skips the stored id. */
cc_status cc_wsbx_ensure(op *o, bool force_new);

/* The sandbox was reported gone: forget it and make sure one runs again. */
cc_status cc_wsbx_renew(op *o);

/* Adds getProject's live "snapshot" and "sandbox" facts to `project`. */
void cc_wsbx_add_facts(op *o, cJSON *project);

/* ---- exec (cc_wexec.c) ------------------------------------------------------------------ */

/* Output of one stream, kept up to `max` bytes (then `truncated`). */
struct outbuf {
  char *p;
  size_t len, cap, max;
  bool truncated;
};

/* One command being run: its buffered output and what its events do.  The caller frees
 * out.p and err.p. */
struct exec_run {
  op *o;
  struct outbuf out, err;
  char carry[2][4]; /* an incomplete UTF-8 sequence held back per stream */
  size_t ncarry[2];
  bool emit_failed;
  bool detach_on_start;
  uint32_t pid;
};

/* Emits output bytes of stream `which` (0 stdout, 1 stderr) as events; `flush` sends what
 * was held back.  False when the client is gone or memory is out. */
bool cc_wexec_emit_output(struct exec_run *x, int which, const char *data, size_t len,
                          bool flush);

/* The canonical cache key of an exec; the caller frees it with free().  NULL: no memory. */
char *cc_wexec_cache_key(const cc_proto_exec_args *a);

/* Serves a cache hit remembered by cc_wmemo, without reading the store.  True when
 * *response was made. */
bool cc_wexec_serve_remembered(op *o, const char *key, char **response);

/* Serves a cache hit from the store: `result` (modified, still the caller's) with
 * cached:true and this call's duration. */
cc_status cc_wexec_serve_cached(op *o, cJSON *result, char **response);

/* Runs one command in the project's sandbox (renewing a gone sandbox once) and fills
 * `res` and the output buffers of `x`. */
cc_status cc_wexec_run_command(op *o, struct exec_run *x, const cc_e2b_exec_opts *base,
                               cc_e2b_exec_result *res);

/* Waits (at most ~2 s) until process pid has left the sandbox's process list. */
void cc_wexec_wait_gone(op *o, uint32_t pid);

/* An ExecutionResult JSON of a finished run (caller deletes); NULL: no memory. */
cJSON *cc_wexec_result_json(op *o, struct exec_run *x, const cc_e2b_exec_result *res,
                            cc_proto_record_status status, int64_t duration);

/* The exec operation after dispatch: cache, in-flight limit, record, run, store. */
cc_status cc_wexec_op(op *o, char **response);

#endif
