/*
 * cc_wrpc: POST /v1/rpc, protocol v1 over HTTP.
 *
 * Two paths.  The event loop answers at once what needs no I/O: a token and an exec result
 * both remembered in memory since the database last changed (cc_wmemo; SQLite's file watch
 * tells that without waiting), the refusals (401, 429, a malformed message).  Everything else
 * is handed to a pool thread with the connection suspended (cc_wfront_defer): the token read
 * from the store, the operation run (cc_wops_run), and the answer queued on resume.  With a
 * shared database (PostgreSQL) even a remembered answer needs a round trip to the server
 * first (cc_wsync's barrier, shared by all requests in flight): the connection is suspended
 * until the feed's thread has it answered, then the same fast path runs in the loop.
 *
 * Streaming (`"stream":true`): the pool thread queues a response whose content reader sends
 * each NDJSON line as one HTTP chunk as soon as it is there, then runs the operation, handing
 * lines to a bounded buffer.  The reader must not wait in the event loop: with nothing to send
 * it suspends the connection, and the next line resumes it.  A client that hangs up is
 * noticed by the disconnect monitor (POLLRDHUP on the sockets of running calls) or by MHD
 * freeing the response; either sets the call's cancel flag, and the E2B client then kills the
 * process in the sandbox.
 */
#define _GNU_SOURCE
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cc_warena.h"
#include "cc_wdb.h"
#include "cc_wfront.h"
#include "cc_wmemo.h"
#include "cc_wsync.h"
#include "cc_wtime.h"
#include "cc_wtoken.h"

#define STREAM_MAX_PENDING (1u << 20) /* NDJSON bytes buffered for a slow client */

/* ------------------------------------------------------------------ tokens */

#define TOKEN_MAX 512 /* bytes of a bearer token; longer ones are refused */

/* A bearer token (spaces trimmed); false for none or one over TOKEN_MAX. */
static bool token_trim(const char **tok, size_t *n) {
  while (*n && **tok == ' ') (*tok)++, (*n)--;
  while (*n && (*tok)[*n - 1] == ' ') (*n)--;
  return *n > 0 && *n <= TOKEN_MAX;
}

/* The hash of a bearer token (spaces trimmed); CC_UNAUTHORIZED for none. */
static cc_status token_hash(cc_worker *w, const char *tok, size_t n,
                            char hex[CC_WTOKEN_HASH_LEN + 1]) {
  if (!token_trim(&tok, &n)) return CC_UNAUTHORIZED;
  return cc_wtoken_hash_with(w->hasher, tok, n, hex) == CC_OK ? CC_OK : CC_INTERNAL;
}

/* A keep-alive client sends the same Authorization header with every request; hashing it
 * was a tenth of a cached exec's CPU.  The connection keeps the last token and its hash; the
 * token is compared in constant time (a proxy may carry several users' requests on one
 * connection) and wiped when the connection closes.  Only the hash is remembered: whether it
 * still names a user is asked of the memo or the store on every request, as before. */
struct cc_wconn {
  size_t n; /* 0: nothing remembered */
  char hex[CC_WTOKEN_HASH_LEN + 1];
  char tok[TOKEN_MAX];
};

struct cc_wconn *cc_wrpc_conn_new(void) {
  struct cc_wconn *k = malloc(sizeof *k);
  if (k) k->n = 0;
  return k;
}

void cc_wrpc_conn_free(struct cc_wconn *k) {
  if (!k) return;
  explicit_bzero(k, sizeof *k);
  free(k);
}

static bool same_token(const struct cc_wconn *k, const char *tok, size_t n) {
  if (k->n != n) return false;
  unsigned char d = 0;
  for (size_t i = 0; i < n; i++) d |= (unsigned char)(k->tok[i] ^ tok[i]);
  return d == 0;
}

/* token_hash through the connection's memory of its last token. */
static cc_status conn_token_hash(cc_worker *w, struct MHD_Connection *c, const char *tok,
                                 size_t n, char hex[CC_WTOKEN_HASH_LEN + 1]) {
  if (!token_trim(&tok, &n)) return CC_UNAUTHORIZED;
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  struct cc_wconn *k = ci ? ci->socket_context : NULL;
  if (k && same_token(k, tok, n)) {
    memcpy(hex, k->hex, sizeof k->hex);
    return CC_OK;
  }
  cc_status st = token_hash(w, tok, n, hex);
  if (st != CC_OK) return st;
  if (k) {
    memcpy(k->tok, tok, n);
    k->n = n;
    memcpy(k->hex, hex, sizeof k->hex);
  }
  return CC_OK;
}

/* The user of a token's hash from the store (and remembered under *epoch). */
static cc_status token_user_store(cc_worker *w, const char *hex, char *user_out, size_t cap,
                                  uint64_t epoch) {
  char *user = NULL;
  cc_status st = cc_store_token_lookup(w->store, hex, &user);
  if (st == CC_UPSTREAM_ERROR) { /* the database, not the token: retryable, and /healthz says so */
    char why[256];
    cc_store_last_error(w->store, why, sizeof why);
    cc_wdb_report_down(w->db, why);
    return CC_UPSTREAM_ERROR;
  }
  if (st != CC_OK)
    return st == CC_UNAUTHORIZED || st == CC_NOT_FOUND ? CC_UNAUTHORIZED : CC_INTERNAL;
  cc_wfront_set_str(user_out, cap, user);
  free(user);
  cc_wmemo_remember_user(w->memo, epoch, hex, user_out);
  return CC_OK;
}

/* The token's user: from the memo while the database is unchanged (a revocation committed
 * before this request began is always seen), else from the store.  May block (store). */
cc_status cc_worker_token_user(cc_worker *w, const char *tok, size_t n, char *user_out,
                               size_t cap, uint64_t *epoch) {
  char hex[CC_WTOKEN_HASH_LEN + 1];
  cc_status st = token_hash(w, tok, n, hex);
  if (st != CC_OK) return st;
  *epoch = cc_wmemo_epoch(w->memo);
  if (cc_wmemo_user(w->memo, *epoch, hex, user_out, cap)) return CC_OK;
  return token_user_store(w, hex, user_out, cap, *epoch);
}

/* ------------------------------------------------------------------ one call's state */

typedef struct rpc {
  cc_worker *w;
  char hex[CC_WTOKEN_HASH_LEN + 1]; /* the token's hash */
  bool authed;                      /* r->user and r->epoch are set */
  bool admitted;                    /* counted by the rate limit */
  bool parsed;                      /* req holds the request */
  cc_request req;
  atomic_int cancel;
  struct cc_wwatch watch;
  bool watching; /* watch is registered */
  int fd;
} rpc;

static void rpc_free(void *arg) {
  rpc *x = arg;
  if (!x) return;
  if (x->parsed) cc_request_cleanup(&x->req);
  free(x);
}

/* cc_wcall.on_block of a non-streaming call: watch its connection from now on. */
static void watch_from_now(cc_wcall *call) {
  rpc *x = call->front;
  if (x->watching) return;
  cc_worker_watch(call->w, &x->watch, x->fd, &x->cancel);
  x->watching = true;
}

/* ------------------------------------------------------------------ streaming */

struct cc_wstream {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  char *buf;
  size_t len, off, cap;
  bool done;      /* the final message is in buf */
  bool gone;      /* MHD dropped the response: the client is gone */
  bool suspended; /* the reader found nothing to send and suspended the connection */
  int refs;       /* the job, the MHD response, the request */
  struct MHD_Connection *conn; /* valid while the response lives */
  cc_wreq *r;                  /* valid until the request completes (under mu) */
  atomic_int *cancel;
};

static void stream_unref(struct cc_wstream *s) {
  pthread_mutex_lock(&s->mu);
  int left = --s->refs;
  pthread_mutex_unlock(&s->mu);
  if (left) return;
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cond);
  free(s->buf);
  free(s);
}

/* Wakes the reader: resumes the connection it suspended.  Under s->mu. */
static void stream_wake(struct cc_wstream *s) {
  pthread_cond_broadcast(&s->cond);
  if (s->suspended && s->conn) {
    s->suspended = false;
    MHD_resume_connection(s->conn);
  }
}

/* Appends `line` + "\n"; blocks while the client is more than STREAM_MAX_PENDING behind.
 * Returns false when the client is gone or the call was canceled. */
static bool stream_append(struct cc_wstream *s, const char *line, size_t len, bool final) {
  pthread_mutex_lock(&s->mu);
  while (!final && !s->gone && !atomic_load(s->cancel) && s->len - s->off > STREAM_MAX_PENDING) {
    struct timespec ts;
    cc_wtime_deadline(&ts, CLOCK_REALTIME, 100);
    pthread_cond_timedwait(&s->cond, &s->mu, &ts);
  }
  bool ok = !s->gone;
  if (ok) {
    if (s->off && s->off == s->len) s->off = s->len = 0;
    if (s->len + len + 1 > s->cap) {
      size_t ncap = (s->len + len + 1) * 2;
      char *nb = realloc(s->buf, ncap);
      if (!nb)
        ok = false;
      else {
        s->buf = nb;
        s->cap = ncap;
      }
    }
    if (ok) {
      memcpy(s->buf + s->len, line, len);
      s->buf[s->len + len] = '\n';
      s->len += len + 1;
    }
  }
  if (final) s->done = true;
  stream_wake(s);
  pthread_mutex_unlock(&s->mu);
  return ok && !atomic_load(s->cancel);
}

static bool stream_emit(void *sink, const char *line, size_t len) {
  return stream_append(sink, line, len, false);
}

/* MHD's content reader, in the event loop: never waits. */
static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max) {
  struct cc_wstream *s = cls;
  (void)pos;
  pthread_mutex_lock(&s->mu);
  ssize_t n;
  if (s->len > s->off) {
    size_t k = s->len - s->off;
    if (k > max) k = max;
    memcpy(out, s->buf + s->off, k);
    s->off += k;
    if (s->r) s->r->bytes_out += k;
    n = (ssize_t)k;
    pthread_cond_broadcast(&s->cond); /* room for a writer held back */
  } else if (s->done) {
    n = MHD_CONTENT_READER_END_OF_STREAM;
  } else { /* nothing yet: sleep until the next line (stream_wake) */
    if (!s->suspended) {
      s->suspended = true;
      MHD_suspend_connection(s->conn);
    }
    n = 0;
  }
  pthread_mutex_unlock(&s->mu);
  return n;
}

static void stream_free(void *cls) {
  struct cc_wstream *s = cls;
  pthread_mutex_lock(&s->mu);
  s->gone = true;
  s->conn = NULL;
  s->r = NULL;
  if (!s->done) atomic_store(s->cancel, 1);
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->mu);
  stream_unref(s);
}

void cc_wrpc_stream_detach(struct cc_wstream *s) {
  pthread_mutex_lock(&s->mu);
  s->r = NULL;
  pthread_mutex_unlock(&s->mu);
  stream_unref(s);
}

/* Answers with the stream's response, then runs the call into it (a pool thread). */
static void run_streaming(cc_worker *w, cc_wreq *r, cc_wjob *job, rpc *x,
                          struct MHD_Connection *c) {
  struct cc_wstream *s = calloc(1, sizeof *s);
  struct MHD_Response *resp =
      s ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, s, stream_free)
        : NULL;
  if (!resp) {
    free(s);
    cc_wfront_answer(job, cc_wfront_json_response(r, cc_wfront_error_text(
                                                        r, x->req.id, CC_INTERNAL, "out of memory")),
                     500);
    return;
  }
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cond, NULL);
  s->refs = 3; /* this job, the response, the request (dropped in on_completed) */
  s->conn = c;
  s->r = r;
  s->cancel = &x->cancel;
  r->stream = s;
  r->code = CC_OK;
  MHD_add_response_header(resp, "Content-Type", "application/x-ndjson");
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  MHD_add_response_header(resp, "X-Accel-Buffering", "no");
  cc_wcall call = {.w = w,
                   .user = r->user,
                   .req = &x->req,
                   .emit = stream_emit,
                   .sink = s,
                   .cancel = &x->cancel,
                   .memo_epoch = r->epoch};
  char user[CC_STORE_NAME_MAX + 1];
  cc_wfront_set_str(user, sizeof user, r->user); /* r goes away with the request */
  call.user = user;
  cc_worker_watch(w, &x->watch, x->fd, &x->cancel);
  cc_wfront_answer(job, resp, 200); /* from here on r and c belong to the event loop */
  char *text = NULL;
  cc_status st = cc_wops_run(&call, &text);
  cc_worker_unwatch(w, &x->watch);
  pthread_mutex_lock(&s->mu);
  if (s->r) {
    s->r->code = st;
    s->r->cached = call.cached;
    memcpy(s->r->record, call.record_id, sizeof s->r->record);
  }
  pthread_mutex_unlock(&s->mu);
  stream_append(s, text ? text : "", text ? strlen(text) : 0, true);
  cc_proto_free(text);
  stream_unref(s);
}

/* ------------------------------------------------------------------ the two paths */

static void answer_error(cc_wreq *r, cc_wjob *job, const char *id, cc_status st, const char *msg) {
  r->code = st;
  cc_wfront_answer(job, cc_wfront_json_response(r, cc_wfront_error_text(r, id, st, msg)),
                   cc_status_http(st));
}

#define DB_DOWN_MSG "the database is unreachable; the request was not run (retry later)"

static void rate_limited_msg(cc_worker *w, char *msg, size_t n) {
  snprintf(msg, n, "more than %ld requests per second for this user", w->cfg->rate_limit_per_s);
}

/* Parses the body into x->req; on failure fills *text with the decode error.  In the event
 * loop (in_loop) the tree goes to the thread's arena (cc_warena): it must then be released
 * before the handler returns (rpc_free; cc_request_cleanup before a deferral). */
static cc_status parse(cc_worker *w, cc_wreq *r, rpc *x, char **text, bool in_loop) {
  cc_proto_error perr;
  if (in_loop) cc_warena_begin();
  cc_status st =
      cc_proto_parse_request(r->body ? r->body : "", r->len, &w->proto_limits, &x->req, &perr);
  if (in_loop) cc_warena_end();
  if (st != CC_OK) {
    r->code = st;
    cc_wfront_set_str(r->id, sizeof r->id, perr.id);
    if (cc_proto_encode_decode_error(&perr, text) != CC_OK) *text = NULL;
    return st;
  }
  x->parsed = true;
  r->mop = cc_metrics_op(cc_proto_op_name(x->req.op));
  cc_wfront_set_str(r->id, sizeof r->id, x->req.id);
  cc_wfront_set_str(r->project, sizeof r->project, x->req.project);
  return CC_OK;
}

/* The pool path: whatever the event loop could not answer. */
static void run_slow(cc_worker *w, cc_wreq *r, cc_wjob *job, rpc *x, struct MHD_Connection *c) {
  if (!x->authed) {
    if (!w->sync) r->epoch = cc_wmemo_epoch(w->memo); /* (PostgreSQL: the barrier's, above) */
    cc_status st = cc_wmemo_user(w->memo, r->epoch, x->hex, r->user, sizeof r->user)
                       ? CC_OK
                       : token_user_store(w, x->hex, r->user, sizeof r->user, r->epoch);
    if (st != CC_OK) {
      answer_error(r, job, NULL, st, st == CC_UPSTREAM_ERROR ? DB_DOWN_MSG : NULL);
      return;
    }
  }
  if (!x->admitted && cc_wlimit_request(w->limit, r->user, cc_worker_now_ms()) != CC_OK) {
    char msg[96];
    rate_limited_msg(w, msg, sizeof msg);
    answer_error(r, job, NULL, CC_RATE_LIMITED, msg);
    return;
  }
  if (!x->parsed) {
    char *text = NULL;
    cc_status st = parse(w, r, x, &text, false);
    if (st != CC_OK) {
      cc_wfront_answer(job, cc_wfront_json_response(r, text), cc_status_http(st));
      return;
    }
  }
  x->fd = cc_wfront_conn_fd(c);
  atomic_fetch_add(&w->ops_in_flight, 1);
  if (x->req.stream) {
    run_streaming(w, r, job, x, c);
  } else {
    cc_wcall call = {.w = w,
                     .user = r->user,
                     .req = &x->req,
                     .cancel = &x->cancel,
                     .memo_epoch = r->epoch,
                     .on_block = watch_from_now,
                     .front = x};
    char *text = NULL;
    cc_status st = cc_wops_run(&call, &text);
    if (x->watching) cc_worker_unwatch(w, &x->watch);
    r->code = st;
    r->cached = call.cached;
    memcpy(r->record, call.record_id, sizeof r->record);
    cc_wfront_answer(job, cc_wfront_json_response(r, text), cc_status_http(st));
  }
  atomic_fetch_sub(&w->ops_in_flight, 1);
}

static void rpc_slow(cc_worker *w, cc_wreq *r, cc_wjob *job, void *arg,
                     struct MHD_Connection *c) {
  run_slow(w, r, job, arg, c);
  rpc_free(arg);
}

/* cc_wsync_ready's wake: the change feed answered this connection's barrier. */
static void wake_conn(void *c) {
  MHD_resume_connection(c);
}

enum MHD_Result cc_wrpc_handle(cc_worker *w, struct MHD_Connection *c, cc_wreq *r) {
  if (r->sync_waiting) { /* back from the change feed's barrier */
    r->sync_waiting = false;
    atomic_fetch_sub(&w->deferred, 1);
  }
  r->is_rpc = true;
  r->mop = CC_MOP_other;
  if (atomic_load(&w->stopping))
    return cc_wfront_queue_error(w, c, r, NULL, CC_SANDBOX_UNAVAILABLE,
                                 "the worker is shutting down");
  if (r->too_large) return cc_wfront_queue_too_large(w, c, r);
  const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
  if (!h || strncasecmp(h, "Bearer ", 7) != 0)
    return cc_wfront_queue_error(w, c, r, NULL, CC_UNAUTHORIZED, NULL);
  rpc *x = calloc(1, sizeof *x);
  if (!x) return MHD_NO;
  x->w = w;
  atomic_init(&x->cancel, 0);
  cc_status st = conn_token_hash(w, c, h + 7, strlen(h + 7), x->hex);
  if (st != CC_OK) {
    free(x);
    return cc_wfront_queue_error(w, c, r, NULL, st, NULL);
  }
  /* The memo's epoch costs nothing with SQLite (its file watch).  With PostgreSQL it is a
   * round trip on the change feed (cc_wsync), shared by every request in flight: the
   * connection sleeps (suspended) until it is answered, and this handler runs again. */
  if (w->sync) {
    if (!r->sync_ticket) r->sync_ticket = cc_wsync_request(w->sync);
    if (!cc_wsync_ready(w->sync, r->sync_ticket, &r->epoch, NULL, NULL)) {
      free(x);
      MHD_suspend_connection(c);
      atomic_fetch_add(&w->deferred, 1);
      r->sync_waiting = true;
      if (cc_wsync_ready(w->sync, r->sync_ticket, &r->epoch, wake_conn, c))
        MHD_resume_connection(c); /* answered meanwhile: go on at once */
      return MHD_YES;
    }
  } else {
    r->epoch = cc_wmemo_epoch(w->memo);
  }
  x->authed = cc_wmemo_user(w->memo, r->epoch, x->hex, r->user, sizeof r->user);
  if (!x->authed) return cc_wfront_defer(w, c, r, rpc_slow, x, rpc_free);

  x->admitted = true;
  if (cc_wlimit_request(w->limit, r->user, cc_worker_now_ms()) != CC_OK) {
    rpc_free(x);
    char msg[96];
    rate_limited_msg(w, msg, sizeof msg);
    return cc_wfront_queue_error(w, c, r, NULL, CC_RATE_LIMITED, msg);
  }
  char *text = NULL;
  if ((st = parse(w, r, x, &text, true)) != CC_OK) {
    rpc_free(x);
    return text ? cc_wfront_queue_json(w, c, r, cc_status_http(st), text) : MHD_NO;
  }
  cc_wcall call = {.w = w, .user = r->user, .req = &x->req, .cancel = &x->cancel,
                   .memo_epoch = r->epoch};
  if (cc_wops_run_remembered(&call, &text)) {
    r->code = CC_OK;
    r->cached = call.cached;
    memcpy(r->record, call.record_id, sizeof r->record);
    rpc_free(x);
    return cc_wfront_queue_json(w, c, r, 200, text);
  }
  /* The tree lives in this thread's arena: the pool thread parses the body again. */
  cc_request_cleanup(&x->req);
  x->parsed = false;
  return cc_wfront_defer(w, c, r, rpc_slow, x, rpc_free);
}
