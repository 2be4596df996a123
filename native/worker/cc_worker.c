/*
 * cc_worker: the HTTP front of codecanvas-worker on libmicrohttpd: routes, responses, the
 * deferral of slow requests to the pool, and the server's lifecycle.
 *
 * libmicrohttpd runs an event loop (epoll) on a few threads (http_threads, default half the
 * cores, at least one).  What can be answered without waiting is answered there: GET /healthz, /metrics,
 * CORS preflights, static files, refusals, and a cached exec whose token and result are
 * remembered in memory (cc_wrpc.c).  Whatever may wait (a store read, a sandbox call that may
 * run for minutes, a terminal's sandbox) runs on a pool thread (cc_wpool) while its connection
 * is suspended; the pool thread leaves the answer in the request's job and resumes the
 * connection, and the handler, called again, queues it (cc_wfront_defer/answer/resume).
 * Routes: POST /v1/rpc (protocol v1, cc_wrpc.c), GET /v1/terminal (cc_wterm.c), GET /healthz,
 * GET /metrics, OPTIONS (CORS preflight) and GET/HEAD of static files (cc_wstatic.c).
 *
 * Bodies over max_body_bytes: answered 413 as early as libmicrohttpd allows, and the rest of
 * the body is drained within body_linger_ms / body_linger_bytes (cc_wlinger.c) so that every
 * client, Node's fetch included, reads the answer instead of a connection reset.
 *
 * Hot path: a cached exec costs about what GET /healthz does (docs/benchmarks.md): it never
 * leaves the event loop, and the access log line is formatted without printf (cc_wlog.c).
 */
#define _GNU_SOURCE
#include "cc_worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cc_warena.h"
#include "cc_wdb.h"
#include "cc_wfront.h"
#include "cc_wmemo.h"
#include "cc_wpool.h"
#include "cc_wsnap.h"
#include "cc_wsync.h"
#include "cc_wterm.h"
#include "cc_wtoken.h"

int64_t cc_worker_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cc_wfront_mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* snprintf("%s") is several times slower, and this runs a few times per request. */
void cc_wfront_set_str(char *dst, size_t n, const char *src) {
  size_t l = src ? strnlen(src, n - 1) : 0;
  memcpy(dst, src ? src : "", l);
  dst[l] = 0;
}

int cc_wfront_conn_fd(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  return ci ? ci->connect_fd : -1;
}

/* ------------------------------------------------------------------ deferred work */

struct cc_wjob {
  cc_worker *w;
  struct MHD_Connection *c;
  cc_wreq *r;
  cc_wslow_fn fn;
  void *arg;
  void (*free_arg)(void *);
  struct MHD_Response *resp; /* the answer, once there */
  int http;
  bool answered;
  atomic_int refs; /* the pool thread and the request */
};

static void job_unref(cc_wjob *job) {
  if (atomic_fetch_sub(&job->refs, 1) != 1) return;
  if (job->resp) MHD_destroy_response(job->resp); /* answered, never queued */
  free(job);
}

void cc_wfront_answer(cc_wjob *job, struct MHD_Response *resp, int http) {
  if (job->answered) { /* a second answer is a bug of the caller: keep the first */
    if (resp) MHD_destroy_response(resp);
    return;
  }
  job->resp = resp;
  job->http = http;
  job->answered = true;
  /* The connection is suspended until this call: nothing else reads the job meanwhile, and
   * the resume (a lock and a wake-up in libmicrohttpd) publishes what was written. */
  MHD_resume_connection(job->c);
}

static void job_main(void *arg) {
  cc_wjob *job = arg;
  cc_worker *w = job->w;
  job->fn(w, job->r, job, job->arg, job->c); /* fn owns arg from here */
  if (!job->answered) cc_wfront_answer(job, NULL, 500);
  atomic_fetch_sub(&w->deferred, 1);
  job_unref(job);
}

enum MHD_Result cc_wfront_defer(cc_worker *w, struct MHD_Connection *c, cc_wreq *r,
                                cc_wslow_fn fn, void *arg, void (*free_arg)(void *)) {
  cc_wjob *job = calloc(1, sizeof *job);
  if (!job) {
    if (free_arg) free_arg(arg);
    return MHD_NO;
  }
  *job = (cc_wjob){.w = w, .c = c, .r = r, .fn = fn, .arg = arg, .free_arg = free_arg};
  atomic_init(&job->refs, 2);
  r->job = job;
  atomic_fetch_add(&w->deferred, 1);
  MHD_suspend_connection(c); /* before the job starts: its answer resumes it */
  if (!cc_wpool_run(w->pool, job_main, job)) {
    atomic_fetch_sub(&w->deferred, 1);
    if (free_arg) free_arg(arg);
    cc_wfront_answer(job, cc_wfront_json_response(
                              r, cc_wfront_error_text(r, NULL, CC_SANDBOX_UNAVAILABLE,
                                                      "the worker cannot start a thread now")),
                     503);
    job_unref(job); /* the pool thread's reference: there is none */
  }
  return MHD_YES;
}

enum MHD_Result cc_wfront_resume(cc_worker *w, struct MHD_Connection *c, cc_wreq *r) {
  cc_wjob *job = r->job;
  /* Only a resume calls the handler again for a deferred request, and only the job resumes. */
  struct MHD_Response *resp = job->resp;
  int http = job->http;
  job->resp = NULL;
  r->job = NULL;
  job_unref(job);
  if (!resp) return MHD_NO;
  if (http == MHD_HTTP_SWITCHING_PROTOCOLS) { /* an upgrade carries its own headers */
    r->http = http;
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)http, resp);
    MHD_destroy_response(resp);
    return ret;
  }
  return cc_wfront_queue(w, c, r, http, resp);
}

/* ------------------------------------------------------------------ completion */

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  cc_worker *w = cls;
  cc_wreq *r = *con_cls;
  if (!r) return;
  unsigned long long us = (unsigned long long)(cc_wfront_mono_us() - r->t0_us);
  cc_metrics_request(&w->metrics, r->mop >= 0 ? r->mop : CC_MOP_http, r->code, us);
  cc_wlog_request(w, r, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
  if (r->early && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK) {
    /* libmicrohttpd closes its descriptor next; a duplicate keeps the socket for draining */
    int fd = cc_wfront_conn_fd(c);
    int dup = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (dup >= 0) cc_wlinger_add(w->linger, dup);
  }
  if (r->counted) atomic_fetch_sub(&w->metrics.in_flight, 1);
  if (r->stream) cc_wrpc_stream_detach(r->stream);
  if (r->job) job_unref(r->job); /* answered, but the connection broke before it was queued */
  if (r->sync_waiting) atomic_fetch_sub(&w->deferred, 1); /* closed before the barrier's answer */
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

enum MHD_Result cc_wfront_queue(cc_worker *w, struct MHD_Connection *c, cc_wreq *r, int http,
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

struct MHD_Response *cc_wfront_json_response(cc_wreq *r, char *text) {
  if (!text) return NULL;
  size_t n = strlen(text);
  r->bytes_out = n;
  struct MHD_Response *resp =
      MHD_create_response_from_buffer_with_free_callback(n, text, free_proto);
  if (!resp) {
    cc_proto_free(text);
    return NULL;
  }
  MHD_add_response_header(resp, "Content-Type", "application/json");
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  return resp;
}

enum MHD_Result cc_wfront_queue_json(cc_worker *w, struct MHD_Connection *c, cc_wreq *r,
                                     int http, char *text) {
  return cc_wfront_queue(w, c, r, http, cc_wfront_json_response(r, text));
}

char *cc_wfront_error_text(cc_wreq *r, const char *id, cc_status st, const char *msg) {
  char *text = NULL;
  r->code = st;
  return cc_proto_encode_error(id, st, msg, NULL, &text) == CC_OK ? text : NULL;
}

enum MHD_Result cc_wfront_queue_error(cc_worker *w, struct MHD_Connection *c, cc_wreq *r,
                                      const char *id, cc_status st, const char *msg) {
  return cc_wfront_queue_json(w, c, r, cc_status_http(st), cc_wfront_error_text(r, id, st, msg));
}

/* The too_large answer to a body over max_body_bytes (any route). */
enum MHD_Result cc_wfront_queue_too_large(cc_worker *w, struct MHD_Connection *c, cc_wreq *r) {
  char msg[96];
  snprintf(msg, sizeof msg, "request body larger than %ld bytes", w->cfg->max_body_bytes);
  return cc_wfront_queue_error(w, c, r, NULL, CC_TOO_LARGE, msg);
}

static enum MHD_Result queue_text(cc_worker *w, struct MHD_Connection *c, cc_wreq *r, int http,
                                  const char *ctype, const char *text) {
  size_t n = strlen(text);
  r->bytes_out = n;
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(n, (void *)text, MHD_RESPMEM_MUST_COPY);
  if (!resp) return MHD_NO;
  MHD_add_response_header(resp, "Content-Type", ctype);
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  return cc_wfront_queue(w, c, r, http, resp);
}

/* ------------------------------------------------------------------ dispatcher */

/* MHD's connection start and end: the connection's own state (cc_wrpc's token memory). */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
  (void)cls;
  (void)c;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    *socket_context = cc_wrpc_conn_new();
  } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
    cc_wrpc_conn_free(*socket_context);
    *socket_context = NULL;
  }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
  cc_worker *w = cls;
  cc_wreq *r = *con_cls;
  (void)version;
  if (!r) {
    r = calloc(1, sizeof *r);
    if (!r) return MHD_NO;
    r->t0_us = cc_wfront_mono_us();
    r->mop = -1;
    r->http = 500;
    r->code = CC_OK;
    cc_wfront_set_str(r->method, sizeof r->method, method);
    cc_wfront_set_str(r->path, sizeof r->path, url);
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
      if (strcmp(method, "POST") == 0 && strcmp(url, "/v1/rpc") == 0) return cc_wrpc_handle(w, c, r);
      return cc_wfront_queue_too_large(w, c, r);
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
      if (r->dropped > (size_t)w->cfg->body_linger_bytes || cc_wfront_mono_us() > r->drop_until_us) {
        r->code = CC_TOO_LARGE;
        r->http = 413;
        return MHD_NO;
      }
      return MHD_YES;
    }
    if (r->len + *upload_size > (size_t)w->cfg->max_body_bytes) {
      r->too_large = true;
      r->dropped = r->len + *upload_size - (size_t)w->cfg->max_body_bytes;
      r->drop_until_us = cc_wfront_mono_us() + w->cfg->body_linger_ms * 1000;
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
  if (r->job) return cc_wfront_resume(w, c, r); /* deferred work is back with its answer */
  if (r->http != 500 || r->code != CC_OK) return MHD_YES; /* already answered */
  if (r->too_large && !(strcmp(method, "POST") == 0 && strcmp(url, "/v1/rpc") == 0))
    return cc_wfront_queue_too_large(w, c, r);

  if (strcmp(method, "OPTIONS") == 0) {
    const char *o = allowed_origin(w, c);
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    if (o) {
      MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
      MHD_add_response_header(resp, "Access-Control-Allow-Headers", "Authorization, Content-Type");
      MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    }
    return cc_wfront_queue(w, c, r, o ? 204 : 403, resp);
  }
  if (strcmp(url, "/v1/rpc") == 0) {
    if (strcmp(method, "POST") != 0) {
      r->is_rpc = true;
      return cc_wfront_queue_error(w, c, r, NULL, CC_BAD_REQUEST, "use POST for /v1/rpc");
    }
    return cc_wrpc_handle(w, c, r);
  }
  bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
  if (strcmp(method, "GET") == 0 && strcmp(url, "/v1/terminal") == 0)
    return cc_wterm_handle(w, c, r);
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
      return cc_wfront_queue(w, c, r, http, resp);
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
  cc_warena_install(); /* before any thread of ours uses cJSON */
  cc_worker *w = calloc(1, sizeof *w);
  if (!w) return CC_INTERNAL;
  w->cfg = cfg;
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
  if (!(w->pool = cc_wpool_new()) ||
      !(w->linger = cc_wlinger_new(cfg->body_linger_ms, cfg->body_linger_bytes))) {
    snprintf(err, errlen, "cannot start the worker's threads");
    st = CC_INTERNAL;
    goto fail;
  }
  if ((st = cc_wsnap_init(w)) != CC_OK) {
    snprintf(err, errlen, "snapshots: cannot use snapshot_dir (see above)");
    goto fail;
  }
  if (cfg->access_log && *cfg->access_log) {
    bool own = strcmp(cfg->access_log, "-") != 0;
    int fd = own ? open(cfg->access_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640) : 2;
    if (fd < 0) {
      snprintf(err, errlen, "access log %s: %s", cfg->access_log, strerror(errno));
      st = CC_BAD_REQUEST;
      goto fail;
    }
    if (!(w->log = cc_wlog_new(fd, own, cfg->access_log_flush_ms))) {
      if (own) close(fd);
      snprintf(err, errlen, "out of memory");
      st = CC_INTERNAL;
      goto fail;
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
  /* An event loop per thread (epoll), slow work suspended onto the pool (cc_wfront_defer). */
  unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME |
                   MHD_ALLOW_UPGRADE; /* the terminal's WebSocket (cc_wterm.c) */
  /* By default half the cores: the loop threads only answer what needs no waiting, and the
   * pool threads doing the rest need cores too (docs/worker.md "Threads"). */
  long threads = w->cfg->http_threads > 0 ? w->cfg->http_threads
                                           : sysconf(_SC_NPROCESSORS_ONLN) / 2;
  if (threads < 1) threads = 1;
  w->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, w, MHD_OPTION_SOCK_ADDR,
                               (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, on_completed, w,
                               MHD_OPTION_NOTIFY_CONNECTION, on_connection, w,
                               MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads,
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

/* Requests still holding a suspended connection, a pool thread or an upgraded socket. */
static long busy(cc_worker *w) {
  return atomic_load(&w->ops_in_flight) + atomic_load(&w->deferred) + atomic_load(&w->terminals);
}

void cc_worker_shutdown(cc_worker *w, long grace_ms) {
  if (!w || !w->daemon) return;
  atomic_store(&w->stopping, 1); /* new RPCs are refused; terminals close within 200 ms */
  MHD_socket ls = MHD_quiesce_daemon(w->daemon);
  if (ls != MHD_INVALID_SOCKET) close(ls);
  int64_t deadline = cc_wfront_mono_us() + grace_ms * 1000;
  struct timespec tick = {0, 20 * 1000000L};
  while (busy(w) > 0 && cc_wfront_mono_us() < deadline) nanosleep(&tick, NULL);
  if (busy(w) > 0) {
    fprintf(stderr, "codecanvas-worker: canceling %ld operation(s) still running\n",
            atomic_load(&w->ops_in_flight));
    atomic_store(&w->stopping, 2);
    cc_worker_cancel_all(w);
    deadline = cc_wfront_mono_us() + 15 * 1000000LL;
    while (busy(w) > 0 && cc_wfront_mono_us() < deadline) {
      cc_worker_cancel_all(w);
      nanosleep(&tick, NULL);
    }
  }
  /* libmicrohttpd cannot stop with a connection still suspended: then the process ends with
   * the daemon running (cc_worker_free leaves everything in place). */
  if (busy(w) > 0) {
    fprintf(stderr, "codecanvas-worker: %ld request(s) did not end; exiting without them\n",
            busy(w));
    return;
  }
  MHD_stop_daemon(w->daemon);
  w->daemon = NULL;
}

void cc_worker_free(cc_worker *w) {
  if (!w) return;
  if (w->daemon && busy(w) > 0) return; /* shutdown gave up on them: leave all in place */
  if (w->daemon) MHD_stop_daemon(w->daemon);
  if (w->monitor_started) {
    pthread_mutex_lock(&w->watch_mu);
    w->monitor_stop = true;
    pthread_cond_broadcast(&w->watch_cond);
    pthread_mutex_unlock(&w->watch_mu);
    pthread_join(w->monitor, NULL);
  }
  cc_wpool_free(w->pool); /* deferred work has ended with the daemon */
  cc_wlinger_free(w->linger);
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
  cc_wlog_free(w->log);
  for (int i = 0; i < w->n_web; i++) {
    free(w->web_prefix[i]);
    free(w->web_dir[i]);
  }
  pthread_mutex_destroy(&w->watch_mu);
  pthread_cond_destroy(&w->watch_cond);
  pthread_mutex_destroy(&w->sbx_mu);
  free(w);
}
