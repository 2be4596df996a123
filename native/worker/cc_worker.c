/*
 * cc_worker: the HTTP front of codecanvas-worker on libmicrohttpd.
 *
 * One thread per connection (MHD_USE_THREAD_PER_CONNECTION): a request may block for as
 * long as its sandbox command runs without holding up any other connection, and the code
 * of an operation is plain sequential C.  Routes: POST /v1/rpc (protocol v1), GET /healthz,
 * GET /metrics, OPTIONS (CORS preflight) and GET/HEAD of static files.
 *
 * Streaming (`"stream":true`): the operation runs on its own thread and hands NDJSON lines
 * to a bounded buffer; MHD's content reader sends each line as one HTTP chunk as soon as it
 * is there.  A client that hangs up is noticed by the disconnect monitor (a thread that
 * polls the sockets of running calls for POLLRDHUP) or by MHD freeing the response; either
 * sets the call's cancel flag, and the E2B client then kills the process in the sandbox.
 *
 * Access log: one JSON object per request, written with a single write(2).  It holds the
 * user name, never the bearer token; the E2B key is never known to this file at all.
 *
 * Bodies over max_body_bytes: answered 413 as early as libmicrohttpd allows, and the rest of
 * the body is drained within body_linger_ms / body_linger_bytes (linger_close) so that every
 * client, Node's fetch included, reads the answer instead of a connection reset.
 *
 * Hot path: a cached exec costs about what GET /healthz does (docs/benchmarks.md): the token's
 * user and the cached result come from cc_wmemo while the database is unchanged, calls that
 * are answered at once never register with the disconnect monitor, and the access log line is
 * formatted without printf.
 */
#define _GNU_SOURCE
#include "cc_worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cc_wdb.h"
#include "cc_wsync.h"
#include "cc_wmemo.h"
#include "cc_worker_internal.h"
#include "cc_wsnap.h"
#include "cc_wterm.h"
#include "cc_wtoken.h"

#define STREAM_MAX_PENDING (1u << 20) /* NDJSON bytes buffered for a slow client */

int64_t cc_worker_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Copies src into dst[n], cut to fit (the per-request fields; snprintf("%s") is several
 * times slower and this runs a few times per request). */
static void set_str(char *dst, size_t n, const char *src) {
  size_t l = src ? strnlen(src, n - 1) : 0;
  memcpy(dst, src ? src : "", l);
  dst[l] = 0;
}

/* ------------------------------------------------------------------ per-request state */

struct stream;
static void stream_detach(struct stream *s);

struct req {
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
  char user[CC_STORE_NAME_MAX + 1];
  char id[CC_PROTO_MAX_ID_BYTES + 1];
  char project[CC_PROTO_MAX_PROJECT_BYTES + 1];
  char record[CC_STORE_ID_LEN + 1];
  char method[12];
  char path[200];
  char remote[64];
  struct stream *stream; /* a reference while the request lives (streaming only) */
};

/* A bounded line for the access log; everything past `end` is dropped (and flagged). */
struct line {
  char *p, *end;
  bool full;
};

static void put(struct line *l, const char *s, size_t n) {
  if ((size_t)(l->end - l->p) < n) {
    l->full = true;
    return;
  }
  memcpy(l->p, s, n);
  l->p += n;
}

#define PUT_LIT(l, lit) put((l), (lit), sizeof(lit) - 1)

/* s as the inside of a JSON string: quote and backslash escaped, control characters and
 * non-ASCII bytes as \u00XX (so the log stays ASCII whatever a client sent). */
static void put_esc(struct line *l, const char *s) {
  static const char hex[] = "0123456789abcdef";
  for (; s && *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      put(l, e, 2);
    } else if (c < 0x20 || c >= 0x7f) {
      char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      put(l, e, 6);
    } else {
      put(l, (const char *)&c, 1);
    }
  }
}

/* Unsigned decimal, zero-padded to `width` digits. */
static void put_uint(struct line *l, unsigned long long v, int width) {
  char tmp[24];
  int k = 0;
  do tmp[k++] = (char)('0' + v % 10);
  while ((v /= 10) || k < width);
  char out[24];
  for (int i = 0; i < k; i++) out[i] = tmp[k - 1 - i];
  put(l, out, (size_t)k);
}

/* One JSON object per request, written with a single write(2) so that lines of concurrent
 * requests never interleave.  Built by hand (no printf: it was a tenth of a request's CPU). */
static void access_log(cc_worker *w, struct req *r, enum MHD_RequestTerminationCode toe) {
  if (w->log_fd < 0) return;
  char buf[4096]; /* every field escaped at its own limit still fits */
  struct line l = {buf, buf + sizeof buf, false};
  /* UTC date from the epoch by arithmetic (days to civil date, H. Hinnant's algorithm):
   * gmtime_r takes glibc's global time-zone lock on every call. */
  long long t = (long long)time(NULL), days = t / 86400, sod = t % 86400;
  long long z = days + 719468, era = z / 146097, doe = z - era * 146097;
  long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
  long long mday = doy - (153 * mp + 2) / 5 + 1, mon = mp < 10 ? mp + 3 : mp - 9;
  long long year = yoe + era * 400 + (mon <= 2);
  PUT_LIT(&l, "{\"ts\":\"");
  put_uint(&l, (unsigned long long)year, 4);
  PUT_LIT(&l, "-");
  put_uint(&l, (unsigned long long)mon, 2);
  PUT_LIT(&l, "-");
  put_uint(&l, (unsigned long long)mday, 2);
  PUT_LIT(&l, "T");
  put_uint(&l, (unsigned long long)(sod / 3600), 2);
  PUT_LIT(&l, ":");
  put_uint(&l, (unsigned long long)(sod / 60 % 60), 2);
  PUT_LIT(&l, ":");
  put_uint(&l, (unsigned long long)(sod % 60), 2);
  PUT_LIT(&l, "Z\",\"remote\":\"");
  put_esc(&l, r->remote);
  PUT_LIT(&l, "\",\"method\":\"");
  put_esc(&l, r->method);
  PUT_LIT(&l, "\",\"path\":\"");
  put_esc(&l, r->path);
  PUT_LIT(&l, "\",\"status\":");
  put_uint(&l, r->http > 0 ? (unsigned)r->http : 0, 1);
  int64_t us = mono_us() - r->t0_us;
  PUT_LIT(&l, ",\"durationMs\":");
  put_uint(&l, us > 0 ? (unsigned long long)us / 1000 : 0, 1);
  PUT_LIT(&l, ".");
  put_uint(&l, us > 0 ? (unsigned long long)us % 1000 : 0, 3);
  PUT_LIT(&l, ",\"bytesIn\":");
  put_uint(&l, r->len, 1);
  PUT_LIT(&l, ",\"bytesOut\":");
  put_uint(&l, r->bytes_out, 1);
  if (r->is_rpc) {
    PUT_LIT(&l, ",\"op\":\"");
    put_esc(&l, cc_metrics_op_name(r->mop));
    PUT_LIT(&l, "\",\"code\":\"");
    put_esc(&l, cc_status_code(r->code));
    PUT_LIT(&l, "\",\"user\":\"");
    put_esc(&l, r->user);
    PUT_LIT(&l, "\",\"id\":\"");
    put_esc(&l, r->id);
    PUT_LIT(&l, "\",\"project\":\"");
    put_esc(&l, r->project);
    PUT_LIT(&l, "\",\"record\":\"");
    put_esc(&l, r->record);
    PUT_LIT(&l, "\",\"cached\":");
    if (r->cached)
      PUT_LIT(&l, "true");
    else
      PUT_LIT(&l, "false");
  }
  PUT_LIT(&l, ",\"completed\":");
  if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
    PUT_LIT(&l, "true}\n");
  else
    PUT_LIT(&l, "false}\n");
  if (l.full) return; /* cannot happen with the fields' own limits; never log half a line */
  ssize_t wr = write(w->log_fd, buf, (size_t)(l.p - buf));
  (void)wr;
}

/* Lingering close, as nginx does it.  The answer (a 413, or a 503 while shutting down) was
 * sent before the request body was read, and the connection is about to be closed.  Closing a
 * socket that still has unread data makes the kernel send a reset, and a reset that reaches
 * the client while it is still sending throws away the answer waiting in its receive buffer
 * (Node's fetch then fails with EPIPE instead of reading the 413).  So: send FIN after the
 * answer, then read and drop whatever arrives until the client closes its side, for at most
 * body_linger_ms and body_linger_bytes.  A client that reads the answer stops sending within
 * a round trip; one that never stops is cut off at either bound.  Runs on the connection's own
 * thread (it holds one of max_connections meanwhile, nothing else); MHD_stop_daemon's
 * shutdown of the socket ends it at once. */
static void linger_close(cc_worker *w, struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (!ci || ci->connect_fd < 0) return;
  int fd = ci->connect_fd;
  shutdown(fd, SHUT_WR);
  int64_t until = mono_us() + w->cfg->body_linger_ms * 1000;
  unsigned long long left = (unsigned long long)w->cfg->body_linger_bytes;
  for (;;) {
    int64_t wait_us = until - mono_us();
    if (wait_us <= 0 || left == 0) break;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, (int)((wait_us + 999) / 1000));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    /* MSG_TRUNC on TCP drops the bytes in the kernel without copying them out. */
    ssize_t k =
        recv(fd, NULL, left < (1u << 20) ? (size_t)left : (1u << 20), MSG_TRUNC | MSG_DONTWAIT);
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
    if (k <= 0) break; /* the client closed (it read the answer), or the connection broke */
    left -= (unsigned long long)k < left ? (unsigned long long)k : left;
  }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  cc_worker *w = cls;
  struct req *r = *con_cls;
  if (!r) return;
  unsigned long long us = (unsigned long long)(mono_us() - r->t0_us);
  cc_metrics_request(&w->metrics, r->mop >= 0 ? r->mop : CC_MOP_http, r->code, us);
  access_log(w, r, toe);
  if (r->early && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK) linger_close(w, c);
  if (r->counted) atomic_fetch_sub(&w->metrics.in_flight, 1);
  if (r->stream) stream_detach(r->stream);
  free(r->body);
  free(r);
  *con_cls = NULL;
}

/* ------------------------------------------------------------------ responses */

static const char *allowed_origin(cc_worker *w, struct MHD_Connection *c) {
  const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
  const char *list = w->cfg->cors_origins;
  if (!origin || !list || !*list) return NULL;
  if (strcmp(list, "*") == 0) return origin;
  size_t n = strlen(origin);
  for (const char *p = list; *p;) {
    while (*p == ' ' || *p == ',') p++;
    const char *e = p;
    while (*e && *e != ',') e++;
    const char *t = e;
    while (t > p && t[-1] == ' ') t--;
    if ((size_t)(t - p) == n && strncmp(p, origin, n) == 0) return origin;
    p = e;
  }
  return NULL;
}

static void add_common_headers(cc_worker *w, struct MHD_Connection *c, struct MHD_Response *resp) {
  const char *o = allowed_origin(w, c);
  if (o) {
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", o);
    MHD_add_response_header(resp, "Vary", "Origin");
  }
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
}

static enum MHD_Result queue(cc_worker *w, struct MHD_Connection *c, struct req *r, int http,
                             struct MHD_Response *resp) {
  if (!resp) return MHD_NO;
  add_common_headers(w, c, resp);
  r->http = http;
  enum MHD_Result ret = MHD_queue_response(c, (unsigned)http, resp);
  MHD_destroy_response(resp);
  return ret;
}

static void free_proto(void *p) {
  cc_proto_free(p);
}

/* Queues a JSON text owned by cJSON's allocator (ownership moves to MHD). */
static enum MHD_Result queue_json(cc_worker *w, struct MHD_Connection *c, struct req *r, int http,
                                  char *text) {
  if (!text) return MHD_NO;
  size_t n = strlen(text);
  r->bytes_out = n;
  struct MHD_Response *resp =
      MHD_create_response_from_buffer_with_free_callback(n, text, free_proto);
  if (!resp) {
    cc_proto_free(text);
    return MHD_NO;
  }
  MHD_add_response_header(resp, "Content-Type", "application/json");
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  return queue(w, c, r, http, resp);
}

static enum MHD_Result queue_error(cc_worker *w, struct MHD_Connection *c, struct req *r,
                                   const char *id, cc_status st, const char *msg) {
  char *text = NULL;
  r->code = st;
  if (cc_proto_encode_error(id, st, msg, NULL, &text) != CC_OK) return MHD_NO;
  return queue_json(w, c, r, cc_status_http(st), text);
}

/* The too_large answer to a body over max_body_bytes (any route). */
static enum MHD_Result queue_too_large(cc_worker *w, struct MHD_Connection *c, struct req *r) {
  char msg[96];
  snprintf(msg, sizeof msg, "request body larger than %ld bytes", w->cfg->max_body_bytes);
  return queue_error(w, c, r, NULL, CC_TOO_LARGE, msg);
}

static enum MHD_Result queue_text(cc_worker *w, struct MHD_Connection *c, struct req *r, int http,
                                  const char *ctype, const char *text) {
  size_t n = strlen(text);
  r->bytes_out = n;
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(n, (void *)text, MHD_RESPMEM_MUST_COPY);
  if (!resp) return MHD_NO;
  MHD_add_response_header(resp, "Content-Type", ctype);
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  return queue(w, c, r, http, resp);
}

/* ------------------------------------------------------------------ streaming */

struct stream {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  char *buf;
  size_t len, off, cap;
  bool done; /* the final message is in buf */
  bool gone; /* MHD dropped the response: the client is gone */
  int refs;  /* the job thread and the MHD response */
  cc_worker *w;
  struct req *r; /* valid while the response lives (the job only touches it under mu) */
  cc_request req;
  char user[CC_STORE_NAME_MAX + 1];
  uint64_t epoch;
  atomic_int cancel;
  struct cc_wwatch watch;
  bool watching; /* watch is registered */
  int fd;
};

static void stream_unref(struct stream *s) {
  pthread_mutex_lock(&s->mu);
  int left = --s->refs;
  pthread_mutex_unlock(&s->mu);
  if (left) return;
  cc_request_cleanup(&s->req);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cond);
  free(s->buf);
  free(s);
}

/* Appends `line` + "\n"; blocks while the client is more than STREAM_MAX_PENDING behind.
 * Returns false when the client is gone or the call was canceled. */
static bool stream_append(struct stream *s, const char *line, size_t len, bool final) {
  pthread_mutex_lock(&s->mu);
  while (!final && !s->gone && !atomic_load(&s->cancel) && s->len - s->off > STREAM_MAX_PENDING) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 100 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
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
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->mu);
  return ok && !atomic_load(&s->cancel);
}

/* The request is finishing: forget it and drop its reference. */
static void stream_detach(struct stream *s) {
  pthread_mutex_lock(&s->mu);
  s->r = NULL;
  pthread_mutex_unlock(&s->mu);
  stream_unref(s);
}

static bool stream_emit(void *sink, const char *line, size_t len) {
  return stream_append(sink, line, len, false);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max) {
  struct stream *s = cls;
  (void)pos;
  pthread_mutex_lock(&s->mu);
  while (s->len == s->off && !s->done) pthread_cond_wait(&s->cond, &s->mu);
  ssize_t n;
  if (s->len > s->off) {
    size_t k = s->len - s->off;
    if (k > max) k = max;
    memcpy(out, s->buf + s->off, k);
    s->off += k;
    if (s->r) s->r->bytes_out += k;
    n = (ssize_t)k;
    pthread_cond_broadcast(&s->cond);
  } else {
    n = MHD_CONTENT_READER_END_OF_STREAM;
  }
  pthread_mutex_unlock(&s->mu);
  return n;
}

static void stream_free(void *cls) {
  struct stream *s = cls;
  pthread_mutex_lock(&s->mu);
  s->gone = true;
  s->r = NULL;
  if (!s->done) atomic_store(&s->cancel, 1);
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->mu);
  stream_unref(s);
}

static void *stream_job(void *arg) {
  struct stream *s = arg;
  cc_worker *w = s->w;
  cc_wcall call = {.w = w,
                   .user = s->user,
                   .req = &s->req,
                   .emit = stream_emit,
                   .sink = s,
                   .cancel = &s->cancel,
                   .memo_epoch = s->epoch};
  cc_worker_watch(w, &s->watch, s->fd, &s->cancel);
  char *resp = NULL;
  cc_status st = cc_wops_run(&call, &resp);
  cc_worker_unwatch(w, &s->watch);
  pthread_mutex_lock(&s->mu);
  if (s->r) {
    s->r->code = st;
    s->r->cached = call.cached;
    memcpy(s->r->record, call.record_id, sizeof s->r->record);
  }
  pthread_mutex_unlock(&s->mu);
  if (resp)
    stream_append(s, resp, strlen(resp), true);
  else
    stream_append(s, "", 0, true);
  cc_proto_free(resp);
  atomic_fetch_sub(&w->ops_in_flight, 1);
  stream_unref(s);
  return NULL;
}

/* ------------------------------------------------------------------ /v1/rpc */

/* cc_wcall.on_block of a non-streaming call: watch its connection from now on. */
static void watch_from_now(cc_wcall *call) {
  struct stream *s = call->front;
  if (s->watching) return;
  cc_worker_watch(call->w, &s->watch, s->fd, &s->cancel);
  s->watching = true;
}

static int conn_fd(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  return ci ? ci->connect_fd : -1;
}

/* Authenticates the bearer token: copies the user into r->user.  The token's hash is looked
 * up in the memo first (valid while the database is unchanged: a revocation committed before
 * this request began is always seen), then in the store. */
cc_status cc_worker_token_user(cc_worker *w, const char *tok, size_t n, char *user_out,
                               size_t cap, uint64_t *epoch) {
  while (n && *tok == ' ') tok++, n--;
  while (n && tok[n - 1] == ' ') n--;
  if (n == 0 || n > 512) return CC_UNAUTHORIZED;
  char hex[CC_WTOKEN_HASH_LEN + 1];
  if (cc_wtoken_hash_with(w->hasher, tok, n, hex) != CC_OK) return CC_INTERNAL;
  *epoch = cc_wmemo_epoch(w->memo);
  if (cc_wmemo_user(w->memo, *epoch, hex, user_out, cap)) return CC_OK;
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
  set_str(user_out, cap, user);
  free(user);
  cc_wmemo_remember_user(w->memo, *epoch, hex, user_out);
  return CC_OK;
}

/* Authenticates the bearer token: copies the user into r->user. */
static cc_status authenticate(cc_worker *w, struct MHD_Connection *c, struct req *r) {
  const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
  if (!h || strncasecmp(h, "Bearer ", 7) != 0) return CC_UNAUTHORIZED;
  return cc_worker_token_user(w, h + 7, strlen(h + 7), r->user, sizeof r->user, &r->epoch);
}

static enum MHD_Result handle_rpc(cc_worker *w, struct MHD_Connection *c, struct req *r) {
  r->is_rpc = true;
  r->mop = CC_MOP_other;
  if (atomic_load(&w->stopping))
    return queue_error(w, c, r, NULL, CC_SANDBOX_UNAVAILABLE, "the worker is shutting down");
  if (r->too_large) return queue_too_large(w, c, r);
  cc_status st = authenticate(w, c, r);
  if (st == CC_UPSTREAM_ERROR)
    return queue_error(w, c, r, NULL, st,
                       "the database is unreachable; the request was not run (retry later)");
  if (st != CC_OK) return queue_error(w, c, r, NULL, st, NULL);
  if (cc_wlimit_request(w->limit, r->user, cc_worker_now_ms()) != CC_OK) {
    char msg[96];
    snprintf(msg, sizeof msg, "more than %ld requests per second for this user",
             w->cfg->rate_limit_per_s);
    return queue_error(w, c, r, NULL, CC_RATE_LIMITED, msg);
  }
  struct stream *s = calloc(1, sizeof *s);
  if (!s) return MHD_NO;
  cc_proto_error perr;
  st = cc_proto_parse_request(r->body ? r->body : "", r->len, &w->proto_limits, &s->req, &perr);
  if (st != CC_OK) {
    free(s);
    char *text = NULL;
    r->code = st;
    set_str(r->id, sizeof r->id, perr.id);
    if (cc_proto_encode_decode_error(&perr, &text) != CC_OK) return MHD_NO;
    return queue_json(w, c, r, cc_status_http(st), text);
  }
  r->mop = cc_metrics_op(cc_proto_op_name(s->req.op));
  set_str(r->id, sizeof r->id, s->req.id);
  set_str(r->project, sizeof r->project, s->req.project);
  set_str(s->user, sizeof s->user, r->user);
  s->epoch = r->epoch;
  s->w = w;
  s->fd = conn_fd(c);
  atomic_init(&s->cancel, 0);
  atomic_fetch_add(&w->ops_in_flight, 1);

  if (!s->req.stream) {
    cc_wcall call = {.w = w,
                     .user = s->user,
                     .req = &s->req,
                     .cancel = &s->cancel,
                     .memo_epoch = r->epoch,
                     .on_block = watch_from_now,
                     .front = s};
    char *resp = NULL;
    st = cc_wops_run(&call, &resp);
    if (s->watching) cc_worker_unwatch(w, &s->watch);
    atomic_fetch_sub(&w->ops_in_flight, 1);
    r->code = st;
    r->cached = call.cached;
    memcpy(r->record, call.record_id, sizeof r->record);
    cc_request_cleanup(&s->req);
    free(s);
    return queue_json(w, c, r, cc_status_http(st), resp);
  }

  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cond, NULL);
  s->refs = 1; /* the request's reference, dropped in on_completed */
  s->r = r;
  r->stream = s;
  struct MHD_Response *resp =
      MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, s, stream_free);
  if (!resp) {
    atomic_fetch_sub(&w->ops_in_flight, 1);
    return MHD_NO;
  }
  s->refs = 3; /* + the response + the job thread */
  pthread_t th;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int rc = pthread_create(&th, &attr, stream_job, s);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    atomic_fetch_sub(&w->ops_in_flight, 1);
    pthread_mutex_lock(&s->mu);
    s->refs--; /* no job */
    s->done = true;
    pthread_mutex_unlock(&s->mu);
    MHD_destroy_response(resp);
    return queue_error(w, c, r, s->req.id, CC_INTERNAL, "cannot start a thread");
  }
  r->code = CC_OK;
  MHD_add_response_header(resp, "Content-Type", "application/x-ndjson");
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  MHD_add_response_header(resp, "X-Accel-Buffering", "no");
  return queue(w, c, r, 200, resp);
}

/* ------------------------------------------------------------------ dispatcher */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
  cc_worker *w = cls;
  struct req *r = *con_cls;
  (void)version;
  if (!r) {
    r = calloc(1, sizeof *r);
    if (!r) return MHD_NO;
    r->t0_us = mono_us();
    r->mop = -1;
    r->http = 500;
    r->code = CC_OK;
    set_str(r->method, sizeof r->method, method);
    set_str(r->path, sizeof r->path, url);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET) {
      /* dotted quad by hand (inet_ntop goes through sprintf) */
      const unsigned char *b =
          (const unsigned char *)&((const struct sockaddr_in *)ci->client_addr)->sin_addr;
      char *p = r->remote;
      for (int i = 0; i < 4; i++) {
        if (b[i] >= 100) *p++ = (char)('0' + b[i] / 100);
        if (b[i] >= 10) *p++ = (char)('0' + b[i] / 10 % 10);
        *p++ = (char)('0' + b[i] % 10);
        *p++ = i < 3 ? '.' : 0;
      }
    }
    *con_cls = r;
    r->counted = true;
    atomic_fetch_add(&w->metrics.in_flight, 1);
    /* Refuse a declared oversize body before reading it; the answer goes out now and the
     * body is drained afterwards (linger_close), so that the client can read it. */
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl && strtoull(cl, NULL, 10) > (unsigned long long)w->cfg->max_body_bytes) {
      r->too_large = true;
      r->early = true;
      if (strcmp(method, "POST") == 0 && strcmp(url, "/v1/rpc") == 0) return handle_rpc(w, c, r);
      return queue_too_large(w, c, r);
    }
    return MHD_YES;
  }
  if (*upload_size) {
    if (r->too_large) {
      /* No Content-Length told us in advance (chunked): MHD lets us answer only once the body
       * has ended, so the rest is read and dropped here, within the same bounds as
       * linger_close; past them the connection is closed without an answer. */
      r->dropped += *upload_size;
      *upload_size = 0;
      if (r->dropped > (size_t)w->cfg->body_linger_bytes || mono_us() > r->drop_until_us) {
        r->code = CC_TOO_LARGE;
        r->http = 413;
        return MHD_NO;
      }
      return MHD_YES;
    }
    if (r->len + *upload_size > (size_t)w->cfg->max_body_bytes) {
      r->too_large = true;
      r->dropped = r->len + *upload_size - (size_t)w->cfg->max_body_bytes;
      r->drop_until_us = mono_us() + w->cfg->body_linger_ms * 1000;
      /* a sender that stalls is dropped by MHD's idle timeout, set to the same bound */
      MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT,
                                (unsigned)(w->cfg->body_linger_ms / 1000 + 1));
      free(r->body);
      r->body = NULL;
      r->len = r->cap = 0;
    } else {
      if (r->len + *upload_size + 1 > r->cap) {
        size_t ncap = (r->len + *upload_size + 1) * 2;
        if (ncap > (size_t)w->cfg->max_body_bytes + 1) ncap = (size_t)w->cfg->max_body_bytes + 1;
        char *nb = realloc(r->body, ncap);
        if (!nb) return MHD_NO;
        r->body = nb;
        r->cap = ncap;
      }
      memcpy(r->body + r->len, upload, *upload_size);
      r->len += *upload_size;
      r->body[r->len] = 0;
    }
    *upload_size = 0;
    return MHD_YES;
  }
  if (r->http != 500 || r->code != CC_OK) return MHD_YES; /* already answered */
  if (r->too_large && !(strcmp(method, "POST") == 0 && strcmp(url, "/v1/rpc") == 0))
    return queue_too_large(w, c, r);

  if (strcmp(method, "OPTIONS") == 0) {
    const char *o = allowed_origin(w, c);
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    if (o) {
      MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
      MHD_add_response_header(resp, "Access-Control-Allow-Headers", "Authorization, Content-Type");
      MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    }
    return queue(w, c, r, o ? 204 : 403, resp);
  }
  if (strcmp(url, "/v1/rpc") == 0) {
    if (strcmp(method, "POST") != 0) {
      r->is_rpc = true;
      return queue_error(w, c, r, NULL, CC_BAD_REQUEST, "use POST for /v1/rpc");
    }
    return handle_rpc(w, c, r);
  }
  bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
  if (strcmp(method, "GET") == 0 && strcmp(url, "/v1/terminal") == 0) {
    int http = 0;
    enum MHD_Result ret = cc_wterm_handle(w, c, r->user, sizeof r->user, &http);
    if (http) r->http = http;
    return ret;
  }
  if (get && strcmp(url, "/healthz") == 0) {
    char why[256];
    if (atomic_load(&w->stopping))
      return queue_text(w, c, r, 503, "application/json", "{\"ok\":false,\"status\":\"stopping\"}");
    /* A shared database that does not answer.  Why (its host, port, libpq's words) is in the
     * worker's log, not in this unauthenticated answer. */
    if (!cc_wdb_healthy(w->db, why, sizeof why))
      return queue_text(w, c, r, 503, "application/json",
                        "{\"ok\":false,\"status\":\"database_unreachable\",\"store\":\"postgresql\"}");
    return queue_text(w, c, r, 200, "application/json", "{\"ok\":true}");
  }
  if (get && strcmp(url, "/metrics") == 0) {
    char *text = cc_metrics_render(&w->metrics);
    if (!text) return MHD_NO;
    enum MHD_Result ret = queue_text(w, c, r, 200, "text/plain; version=0.0.4", text);
    free(text);
    return ret;
  }
  if (get) {
    struct MHD_Response *resp = NULL;
    int http = cc_wstatic_serve(w, c, url, &resp);
    if (resp) {
      r->bytes_out = 0;
      return queue(w, c, r, http, resp);
    }
    return queue_text(w, c, r, http, "text/plain", http == 404 ? "not found\n" : "error\n");
  }
  return queue_text(w, c, r, 405, "text/plain", "method not allowed\n");
}

/* ------------------------------------------------------------------ lifecycle */

static cc_status parse_web(cc_worker *w) {
  const char *s = w->cfg->web;
  while (s && *s) {
    const char *e = strchr(s, ',');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    if (n && w->n_web < 16) {
      char item[1024];
      snprintf(item, sizeof item, "%.*s", (int)n, s);
      char *eq = strchr(item, '=');
      const char *prefix = "/", *dir = item;
      if (eq && item[0] == '/') {
        *eq = 0;
        prefix = item;
        dir = eq + 1;
      }
      size_t pl = strlen(prefix);
      char *p = malloc(pl + 2);
      if (!p) return CC_INTERNAL;
      memcpy(p, prefix, pl + 1);
      if (p[pl - 1] != '/') strcat(p, "/");
      w->web_prefix[w->n_web] = p;
      w->web_dir[w->n_web] = realpath(dir, NULL);
      if (!w->web_dir[w->n_web]) w->web_dir[w->n_web] = strdup(dir); /* may appear later */
      w->n_web++;
    }
    s = e ? e + 1 : NULL;
  }
  return CC_OK;
}

cc_status cc_worker_new(const cc_wconf *cfg, cc_worker **out, char *err, size_t errlen) {
  cc_worker *w = calloc(1, sizeof *w);
  if (!w) return CC_INTERNAL;
  w->cfg = cfg;
  w->log_fd = -1;
  pthread_mutex_init(&w->watch_mu, NULL);
  pthread_cond_init(&w->watch_cond, NULL);
  pthread_mutex_init(&w->sbx_mu, NULL);
  cc_metrics_init(&w->metrics);
  cc_status st;

  if (strcmp(cfg->sandbox_on_timeout, "pause") != 0 && strcmp(cfg->sandbox_on_timeout, "kill") != 0) {
    snprintf(err, errlen, "sandbox_on_timeout must be pause or kill, not '%.40s'",
             cfg->sandbox_on_timeout);
    st = CC_BAD_REQUEST;
    goto fail;
  }
  w->proto_limits = cc_proto_limits_default();
  w->proto_limits.max_body_bytes = (size_t)cfg->max_body_bytes;
  w->proto_limits.max_file_bytes = (size_t)cfg->max_file_bytes;
  w->proto_limits.max_timeout_ms = cfg->max_command_timeout_ms;
  if (cfg->history_limit > 0) w->proto_limits.max_history_limit = (int)cfg->history_limit;

  cc_store_options so;
  cc_store_options_init(&so);
  so.path = cfg->db;
  so.max_connections = (int)cfg->db_connections;
  so.cache_ttl_ms = cfg->cache_ttl_s * 1000;
  if (cfg->history_limit > 0) so.history_keep = (int)cfg->history_limit;
  so.json_max_bytes = (size_t)cfg->max_body_bytes + 4 * (size_t)cfg->max_output_bytes + 65536;
  char serr[256] = "";
  if ((st = cc_store_open(&so, &w->store, serr, sizeof serr)) != CC_OK) {
    char shown[512];
    cc_store_display_name(cfg->db, shown, sizeof shown);
    snprintf(err, errlen, "cannot open the database %s: %s", shown, serr);
    goto fail;
  }
  /* The memo watches a SQLite file for changes; a database other workers write has no file to
   * watch: its change feed (cc_wsync, LISTEN/NOTIFY with a barrier) gives the epoch instead. */
  if (cc_store_is_postgresql(cfg->db) && cc_wsync_start(cfg->db, &w->sync) != CC_OK)
    fprintf(stderr, "codecanvas-worker: no change feed from the database: tokens and cached "
                    "results are read from it on every request\n");
  if (!(w->memo = w->sync ? cc_wmemo_new_fed(cc_wsync_epoch, w->sync)
                          : cc_wmemo_new(cc_store_is_postgresql(cfg->db) ? NULL : cfg->db)) ||
      !(w->hasher = cc_wtoken_hasher_new())) {
    snprintf(err, errlen, "out of memory");
    st = CC_INTERNAL;
    goto fail;
  }
  int64_t recovered = 0;
  if ((st = cc_wdb_start(w->store, &w->db)) != CC_OK) {
    snprintf(err, errlen, "cannot start the database watch");
    goto fail;
  }
  if ((st = cc_store_recover(w->store, &recovered)) != CC_OK) {
    snprintf(err, errlen, "crash recovery failed");
    goto fail;
  }
  if (recovered)
    fprintf(stderr, "codecanvas-worker: %lld interrupted record(s) marked error/internal\n",
            (long long)recovered);

  cc_e2b_config ec;
  cc_e2b_config_init(&ec);
  ec.api_key = cfg->e2b_api_key;
  ec.api_url = *cfg->e2b_api_url ? cfg->e2b_api_url : NULL;
  ec.domain = *cfg->e2b_domain ? cfg->e2b_domain : NULL;
  ec.sandbox_url = *cfg->e2b_sandbox_url ? cfg->e2b_sandbox_url : NULL;
  ec.template_id = cfg->e2b_template;
  ec.sandbox_timeout_s = (int)cfg->sandbox_timeout_s;
  /* The client's transfer bound covers snapshots too; what a user may write or read is
   * bounded by max_file_bytes where the request is checked (cc_proto) and read. */
  ec.max_file_bytes = (size_t)(cfg->snapshot_max_bytes > cfg->max_file_bytes ? cfg->snapshot_max_bytes
                                                                             : cfg->max_file_bytes);
  ec.pool_size = 32;
  ec.pause_on_timeout = strcmp(cfg->sandbox_on_timeout, "pause") == 0;
  cc_e2b_error eerr = {0};
  if ((st = cc_e2b_client_new(&ec, &w->e2b, &eerr)) != CC_OK) {
    snprintf(err, errlen, "E2B client: %s", eerr.message);
    goto fail;
  }
  if ((st = cc_wlimit_new(cfg->rate_limit_per_s, cfg->rate_limit_burst, cfg->max_inflight_per_user,
                          &w->limit)) != CC_OK ||
      (st = cc_wqueue_new(&w->queue)) != CC_OK || (st = cc_wops_init(w)) != CC_OK ||
      (st = parse_web(w)) != CC_OK) {
    snprintf(err, errlen, "out of memory");
    goto fail;
  }
  if ((st = cc_wsnap_init(w)) != CC_OK) {
    snprintf(err, errlen, "snapshots: cannot use snapshot_dir (see above)");
    goto fail;
  }
  if (cfg->access_log && *cfg->access_log) {
    if (strcmp(cfg->access_log, "-") == 0)
      w->log_fd = 2;
    else {
      w->log_fd = open(cfg->access_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
      if (w->log_fd < 0) {
        snprintf(err, errlen, "access log %s: %s", cfg->access_log, strerror(errno));
        st = CC_BAD_REQUEST;
        goto fail;
      }
      w->log_close = true;
    }
  }
  *out = w;
  return CC_OK;
fail:
  cc_worker_free(w);
  return st;
}

cc_status cc_worker_start(cc_worker *w, int *port, char *err, size_t errlen) {
  const char *listen = w->cfg->listen;
  const char *colon = strrchr(listen, ':');
  struct sockaddr_in sa = {.sin_family = AF_INET};
  char host[64];
  if (!colon || (size_t)(colon - listen) >= sizeof host) {
    snprintf(err, errlen, "listen: expected IPv4:PORT");
    return CC_BAD_REQUEST;
  }
  snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
  char *end;
  long p = strtol(colon + 1, &end, 10);
  if (*end || p < 0 || p > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    snprintf(err, errlen, "listen: expected IPv4:PORT");
    return CC_BAD_REQUEST;
  }
  sa.sin_port = htons((uint16_t)p);
  w->monitor_stop = false;
  if (pthread_create(&w->monitor, NULL, cc_wmonitor_main, w) != 0) return CC_INTERNAL;
  w->monitor_started = true;
  unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ITC |
                   MHD_ALLOW_UPGRADE; /* the terminal's WebSocket (cc_wterm.c) */
  w->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, w, MHD_OPTION_SOCK_ADDR,
                               (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, on_completed, w,
                               MHD_OPTION_CONNECTION_LIMIT, (unsigned)w->cfg->max_connections,
                               MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                               MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
                               MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, MHD_OPTION_END);
  if (!w->daemon) {
    snprintf(err, errlen, "cannot listen on %s", listen);
    return CC_SANDBOX_UNAVAILABLE;
  }
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(w->daemon, MHD_DAEMON_INFO_BIND_PORT);
  *port = di ? di->port : (int)p;
  return CC_OK;
}

void cc_worker_shutdown(cc_worker *w, long grace_ms) {
  if (!w || !w->daemon) return;
  atomic_store(&w->stopping, 1);
  MHD_socket ls = MHD_quiesce_daemon(w->daemon);
  if (ls != MHD_INVALID_SOCKET) close(ls);
  int64_t deadline = mono_us() + grace_ms * 1000;
  struct timespec tick = {0, 20 * 1000000L};
  while (atomic_load(&w->ops_in_flight) > 0 && mono_us() < deadline) nanosleep(&tick, NULL);
  if (atomic_load(&w->ops_in_flight) > 0) {
    fprintf(stderr, "codecanvas-worker: canceling %ld operation(s) still running\n",
            atomic_load(&w->ops_in_flight));
    atomic_store(&w->stopping, 2);
    cc_worker_cancel_all(w);
    deadline = mono_us() + 15 * 1000000LL;
    while (atomic_load(&w->ops_in_flight) > 0 && mono_us() < deadline) {
      cc_worker_cancel_all(w);
      nanosleep(&tick, NULL);
    }
  }
  MHD_stop_daemon(w->daemon);
  w->daemon = NULL;
}

void cc_worker_free(cc_worker *w) {
  if (!w) return;
  if (w->daemon) MHD_stop_daemon(w->daemon);
  if (w->monitor_started) {
    pthread_mutex_lock(&w->watch_mu);
    w->monitor_stop = true;
    pthread_cond_broadcast(&w->watch_cond);
    pthread_mutex_unlock(&w->watch_mu);
    pthread_join(w->monitor, NULL);
  }
  cc_wsnap_cleanup(w);
  cc_wops_cleanup(w);
  cc_wqueue_free(w->queue);
  cc_wlimit_free(w->limit);
  cc_e2b_client_free(w->e2b);
  cc_wmemo_free(w->memo);
  cc_wsync_stop(w->sync);
  cc_wtoken_hasher_free(w->hasher);
  cc_wdb_stop(w->db);
  cc_store_close(w->store);
  if (w->log_close) close(w->log_fd);
  for (int i = 0; i < w->n_web; i++) {
    free(w->web_prefix[i]);
    free(w->web_dir[i]);
  }
  pthread_mutex_destroy(&w->watch_mu);
  pthread_cond_destroy(&w->watch_cond);
  pthread_mutex_destroy(&w->sbx_mu);
  free(w);
}
