/*
 * cc_store_int: what the store's back ends share (not part of the public API; include only
 * from shared/cc_store_*.c).
 *
 * The rules of the store live once, in cc_store_rules.c, and every back end (SQLite in
 * cc_store_sqlite.c, PostgreSQL in cc_store_pg.c) calls them: the validation of names, ids,
 * keys and token hashes; the keys a metadata patch may not set and the checks of the
 * metadata after it; the one function that makes an ExecutionRecord's JSON; the one that
 * makes a ProjectInfo; the per-thread failure messages; option defaults.  A back end only
 * stores and fetches rows.
 *
 * Ownership follows cc_store.h: inputs are borrowed, `char **`/`cJSON **` outs are the
 * caller's.
 */
#ifndef CC_STORE_INT_H
#define CC_STORE_INT_H

#include <pthread.h>
#include <stdarg.h>

#include "cc_store.h"

/* ---- per-thread failure messages of one handle ---- */

typedef struct cc_store_errmsg cc_store_errmsg;

/* The last failure message of each thread on one handle (thread-specific data), so that a
 * message read by one worker thread is never another request's (possibly another user's). */
typedef struct cc_store_errs {
  pthread_mutex_t mu; /* guards the list (a thread's own buffer needs no lock) */
  pthread_key_t key;
  bool have_key;
  cc_store_errmsg *list; /* every thread's buffer, freed at destroy */
  char open_err[512];    /* messages before the key exists (open is single-threaded) */
} cc_store_errs;

#define CC_STORE_ERRMSG_MAX 512

/* Until cc_store_errs_start succeeds, messages go to open_err. */
void cc_store_errs_init(cc_store_errs *e);
/* Creates the thread key; false when none is left. */
bool cc_store_errs_start(cc_store_errs *e);
void cc_store_errs_destroy(cc_store_errs *e);
/* Records a message for the calling thread and returns st. */
cc_status cc_store_fail(cc_store_errs *e, cc_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Copies the calling thread's last message into buf ("" when none). */
void cc_store_errs_copy(cc_store_errs *e, char *buf, size_t len);

/* ---- validation (each records its complaint and returns CC_BAD_REQUEST) ---- */

cc_status cc_store_check_name(cc_store_errs *e, const char *what, const char *v);
cc_status cc_store_check_owner_project(cc_store_errs *e, const char *owner, const char *project);
cc_status cc_store_check_key(cc_store_errs *e, const char *key);
cc_status cc_store_check_id(cc_store_errs *e, const char *id);
/* Lower-cases a hex token hash into buf; CC_BAD_REQUEST unless 1..CC_STORE_NAME_MAX hex. */
cc_status cc_store_norm_hash(cc_store_errs *e, const char *hash, char buf[CC_STORE_NAME_MAX + 1]);
/* The checks of record_finish's arguments (final status, sizes). */
cc_status cc_store_check_finish(cc_store_errs *e, const cc_store_options *o, const char *owner,
                                const char *id, cc_proto_record_status status,
                                const char *error_code, const char *error_message);
/* The stored error of a finished record: a message without a code is "internal", a code
 * without a message gets "". */
void cc_store_finish_error(const char *code_in, const char *msg_in, const char **code,
                           const char **message);

/* Serialises a JSON value for storage: *text is NULL for a NULL value, else owned by the
 * caller (cJSON_free).  CC_TOO_LARGE beyond max bytes. */
cc_status cc_store_to_text(cc_store_errs *e, const char *what, const cJSON *v, size_t max,
                           char **text);

/* ---- project metadata ---- */

/* Splits a merge patch into the part a tenant may apply (*own, a copy) and the store-owned
 * keys it named (*ignored, an array).  CC_BAD_REQUEST when the patch is not an object. */
cc_status cc_store_patch_split(cc_store_errs *e, const cJSON *patch, cJSON **own, cJSON **ignored);
/* Applies `own` to the stored metadata text (NULL = {}) and checks the result: name string,
 * port integer 1..65535, settings object, at most max bytes.  *text is the new metadata
 * (cJSON_free). */
cc_status cc_store_patch_metadata(cc_store_errs *e, const char *stored, const cJSON *own,
                                  size_t max, char **text);

/* The newest record of a project, for ProjectInfo (strings borrowed). */
typedef struct cc_store_last_record {
  const char *id, *op, *status;
  int64_t created_at;
} cc_store_last_record;

/* The stored columns of a project row, for ProjectInfo (strings borrowed). */
typedef struct cc_store_project_row {
  const char *project, *sandbox_id /* or NULL */, *metadata /* JSON text */;
  int64_t created_at, updated_at, generation;
  const cc_store_last_record *last; /* or NULL */
} cc_store_project_row;

/* Builds ProjectInfo from a project row (see project_get in cc_store.h). */
cc_status cc_store_build_info(cc_store_errs *e, const cc_store_project_row *row, cJSON **out);

/* ---- execution records ---- */

/* The store's own fields of an ExecutionRecord (strings borrowed). */
typedef struct cc_store_record_fields {
  const char *id, *project, *op, *status;
  const char *input;                      /* JSON text, or NULL */
  const char *result;                     /* JSON text of the result, or NULL */
  const char *error_code, *error_message; /* an error object only when error_code != NULL */
  int64_t created_at;
  int64_t finished_at; /* < 0: not finished */
} cc_store_record_fields;

/* Builds the text of an ExecutionRecord: the fields of `result` (an object; anything else
 * counts as {}) that the record does not set itself, in their order, then id, projectId,
 * op, status, input?, error?{code, message}, createdAt, finishedAt?.  This is the one place
 * a record's JSON is made: record_finish stores it as the record's body, and back ends call
 * it for rows without a body.  f->result is ignored (the tree is given).  *out is malloc'd. */
cc_status cc_store_record_text(cc_store_errs *e, const cJSON *result,
                               const cc_store_record_fields *f, char **out);
/* The same from f->result as text (parsed here). */
cc_status cc_store_record_text_from_row(cc_store_errs *e, const cc_store_record_fields *f,
                                        char **out);

/* history() from history_json(): given history_json's status and text (taken: freed here),
 * parses the page into *items; on a corrupt page frees *next and fails CC_INTERNAL. */
cc_status cc_store_history_tree(cc_store_errs *e, cc_status rc, char *text, cJSON **items,
                                char **next);

/* What recover() and the sweep write into an interrupted record. */
extern const char CC_STORE_RECOVER_MESSAGE[];

/* ---- small things ---- */

/* A growable text buffer (a history page). */
typedef struct cc_store_textbuf {
  char *p;
  size_t len, cap;
} cc_store_textbuf;
bool cc_store_textbuf_put(cc_store_textbuf *b, const char *t, size_t n);

char *cc_store_dup(const char *v);

/* Applies the defaults to zero fields; false for negative limits. */
bool cc_store_options_normalise(cc_store_options *o);

/* The clock of the options. */
int64_t cc_store_now(const cc_store_options *o);

#endif
