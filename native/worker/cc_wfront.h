/*
 * cc_wfront: what the files of the worker's HTTP front share (cc_worker.c = routes and
 * lifecycle, cc_wrpc.c = POST /v1/rpc, cc_wlog.c = the access log, cc_wlinger.c = lingering
 * close).  Not a public interface.
 *
 * Threads: libmicrohttpd runs an event loop (epoll) on a few threads; an access handler there
 * must never block.  Whatever may block (a store read, a sandbox call) runs on cc_wpool while
 * the connection is suspended, and its answer is queued when the handler is called again
 * after the resume (cc_wfront_defer).
 */
#ifndef CC_WFRONT_H
#define CC_WFRONT_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>

#include "cc_worker_internal.h"

typedef struct cc_wjob cc_wjob;
struct cc_wstream;

/* One request's state (MHD's con_cls), from its first header to on_completed. */
typedef struct cc_wreq {
  int64_t t0_us;
  char *body;
  size_t len, cap;
  bool too_large;
  bool early;            /* answered before its body was read: drain it after the answer */
  size_t dropped;        /* body bytes read and dropped after max_body_bytes was passed */
  int64_t drop_until_us; /* ... for at most body_linger_ms from then */
  bool is_rpc;
  bool counted;
  int mop; /* metrics op index */
  cc_status code;
  int http;
  size_t bytes_out;
  bool cached;
  uint64_t epoch; /* cc_wmemo_epoch taken when the token was checked */
  uint64_t sync_ticket; /* PostgreSQL: this request's change-feed barrier (cc_wsync) */
  bool sync_waiting;    /* suspended until that barrier is answered */
  char user[CC_STORE_NAME_MAX + 1];
  char id[CC_PROTO_MAX_ID_BYTES + 1];
  char project[CC_PROTO_MAX_PROJECT_BYTES + 1];
  char record[CC_STORE_ID_LEN + 1];
  char method[12];
  char path[200];
  char remote[64];
  /* Deferred work (cc_wfront_defer): set while a pool thread works for this request; its
   * answer waits in `ready` until the handler queues it. */
  cc_wjob *job;
  struct cc_wstream *stream; /* a reference while the request lives (streaming only) */
} cc_wreq;

/* Work for a pool thread, run with the connection suspended.  It must call cc_wfront_answer
 * exactly once; r and c are its own until then and the event loop's from then on. */
typedef void (*cc_wslow_fn)(cc_worker *w, cc_wreq *r, cc_wjob *job, void *arg,
                            struct MHD_Connection *c);

/* Suspends the connection and runs fn on the pool; the answer is queued when MHD calls the
 * handler again.  fn owns arg (free_arg frees it if fn never runs). */
enum MHD_Result cc_wfront_defer(cc_worker *w, struct MHD_Connection *c, cc_wreq *r,
                                cc_wslow_fn fn, void *arg, void (*free_arg)(void *));
/* The answer of deferred work (resp NULL: close the connection): resumes the connection. */
void cc_wfront_answer(cc_wjob *job, struct MHD_Response *resp, int http);
/* The handler's second call for a deferred request: queues its answer (or suspends again if
 * it is not there yet). */
enum MHD_Result cc_wfront_resume(cc_worker *w, struct MHD_Connection *c, cc_wreq *r);

/* Response helpers (cc_worker.c): each records the status in r and queues. */
enum MHD_Result cc_wfront_queue(cc_worker *w, struct MHD_Connection *c, cc_wreq *r, int http,
                                struct MHD_Response *resp);
/* A JSON text owned by cJSON's allocator (ownership moves to MHD). */
struct MHD_Response *cc_wfront_json_response(cc_wreq *r, char *text);
enum MHD_Result cc_wfront_queue_json(cc_worker *w, struct MHD_Connection *c, cc_wreq *r,
                                     int http, char *text);
/* A protocol error message (id may be NULL). */
char *cc_wfront_error_text(cc_wreq *r, const char *id, cc_status st, const char *msg);
enum MHD_Result cc_wfront_queue_error(cc_worker *w, struct MHD_Connection *c, cc_wreq *r,
                                      const char *id, cc_status st, const char *msg);
enum MHD_Result cc_wfront_queue_too_large(cc_worker *w, struct MHD_Connection *c, cc_wreq *r);

/* POST /v1/rpc (cc_wrpc.c). */
enum MHD_Result cc_wrpc_handle(cc_worker *w, struct MHD_Connection *c, cc_wreq *r);
/* The request is finishing: its stream forgets it. */
void cc_wrpc_stream_detach(struct cc_wstream *s);
/* A connection's own state (MHD's socket context): the last bearer token it sent and its
 * hash.  NULL from cc_wrpc_conn_new (out of memory) only turns the shortcut off. */
struct cc_wconn *cc_wrpc_conn_new(void);
void cc_wrpc_conn_free(struct cc_wconn *k);
/* The client's socket, for the disconnect monitor. */
int cc_wfront_conn_fd(struct MHD_Connection *c);

/* The access log (cc_wlog.c): lines to fd (closed at the end if close_fd), buffered for at
 * most flush_ms (0: written at once). */
cc_wlog *cc_wlog_new(int fd, bool close_fd, long flush_ms);
/* Writes what is buffered, then frees. */
void cc_wlog_free(cc_wlog *l);
/* The access log line of a finished request. */
void cc_wlog_request(cc_worker *w, const cc_wreq *r, bool completed);

/* Lingering close (cc_wlinger.c): takes a duplicate of a connection's socket whose answer was
 * sent before its body was read, and drains the body for at most ms and bytes. */
struct cc_wlinger *cc_wlinger_new(long ms, long bytes);
void cc_wlinger_add(struct cc_wlinger *l, int fd);
void cc_wlinger_free(struct cc_wlinger *l);

int64_t cc_wfront_mono_us(void);
/* Copies src into dst[n], cut to fit. */
void cc_wfront_set_str(char *dst, size_t n, const char *src);

#endif
