/*
 * cc_e2b: the libcurl E2B client (control plane + envd); see cc_e2b.h for the contract.
 *
 * Every call borrows an easy handle from the client's pool, sets it up from scratch
 * (curl_easy_reset keeps the handle's live keep-alive connections), performs one request and
 * returns the handle.  Unary calls have a connect timeout and a total timeout and a bounded
 * response buffer; the process stream has no total timeout (only the command deadline plus
 * a grace period), low-speed detection tied to the keepalive interval, a first-event
 * deadline and cancellation polled from libcurl's progress callback.  Wire parsing lives in
 * cc_e2b_wire.c.  The API key only ever goes into one header string; every message that
 * leaves this file passes through cc_e2b_scrub.
 */
#define _GNU_SOURCE /* vasprintf, explicit_bzero */
#include "cc_e2b.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cc_e2b_wire.h"

#define ENVD_PORT 49983
#define ERROR_BODY_LIMIT (64 * 1024) /* how much of an error body we keep */
#define STREAM_GRACE_MS 5000         /* client deadline = command deadline + this */
#define KILL_TIMEOUT_MS 10000        /* the SIGKILL after a cancel */
#define MAX_LIST_ENTRIES 200000
#define USER_AGENT "codecanvas-e2b/0.1"

/* One pooled transfer: an easy handle and the multi handle that drives it.  The multi owns
 * the connection cache, so keep-alive connections survive between calls. */
typedef struct xfer {
  CURL *h;
  CURLM *m;
} xfer;

static void xfer_free(xfer *x) {
  if (!x) return;
  if (x->h) curl_easy_cleanup(x->h);
  if (x->m) curl_multi_cleanup(x->m);
  free(x);
}

struct cc_e2b_client {
  char *api_key;
  char *api_url;
  char *domain;
  char *sandbox_url; /* NULL: per-sandbox host form */
  char *template_id;
  char *key_header;   /* "X-API-Key: <key>" or NULL */
  char *basic_header; /* "Authorization: Basic <b64(user:)>" or NULL */
  char *user_query;   /* "&username=<escaped>" or "" */
  int sandbox_timeout_s;
  long request_timeout_ms;
  long connect_timeout_ms;
  int keepalive_s;
  size_t max_response;
  size_t max_file;
  size_t max_envelope;
  bool allow_internet;
  bool pause_on_timeout;

  pthread_mutex_t pool_mu;
  struct xfer **pool;
  int pool_n;
  int pool_cap;

  CURLSH *share;
  pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];

  atomic_ullong requests;    /* HTTP requests performed */
  atomic_ullong connections; /* new TCP connections they opened */
};

/* ---------------------------------------------------------------- small helpers */

static char *xasprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0) s = NULL;
  va_end(ap);
  return s;
}

static long elapsed_ms(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long)((t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000);
}

/* Sets *err (if any) to st with a formatted message.  Returns st. */
static cc_status fail(cc_e2b_error *err, cc_status st, const char *fmt, ...) {
  if (err) {
    memset(err, 0, sizeof *err);
    err->status = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
  }
  return st;
}

/* Final step of every public call: scrub secrets out of the message, set the status. */
static cc_status finish(const cc_e2b_client *c, const cc_e2b_sandbox *sb, cc_e2b_error *err,
                        cc_status st) {
  if (!err) return st;
  if (st == CC_OK) {
    memset(err, 0, sizeof *err);
    return st;
  }
  err->status = st;
  cc_e2b_scrub(err->message, sizeof err->message, c ? c->api_key : NULL);
  if (sb) cc_e2b_scrub(err->message, sizeof err->message, sb->envd_access_token);
  return st;
}

static bool valid_id(const char *id) {
  if (!id || !*id || strlen(id) >= 64) return false;
  for (const char *p = id; *p; p++)
    if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_') return false;
  return true;
}

/* Growable byte buffer with a hard limit (STYLE: every growable thing has a limit). */
typedef struct {
  char *p;
  size_t len, cap, limit;
  bool over;     /* more than `limit` bytes were offered */
  bool truncate; /* when over: keep the first `limit` bytes and accept the rest silently */
} buf_t;

static void buf_free(buf_t *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

static bool buf_append(buf_t *b, const void *data, size_t n) {
  if (n > b->limit - b->len) {
    b->over = true;
    if (!b->truncate) return false;
    n = b->limit - b->len;
    if (n == 0) return true;
  }
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + n + 1) cap *= 2;
    if (cap > b->limit + 1) cap = b->limit + 1;
    char *p = realloc(b->p, cap);
    if (!p) return false;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, data, n);
  b->len += n;
  b->p[b->len] = 0;
  return true;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
  size_t n = size * nmemb;
  return buf_append(ud, data, n) ? n : 0;
}

static char *dup_trim_slash(const char *s) {
  char *d = strdup(s);
  if (!d) return NULL;
  size_t n = strlen(d);
  while (n > 0 && d[n - 1] == '/') d[--n] = 0;
  return d;
}

static bool http_url(const char *s) {
  return s && (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0);
}

static bool header_safe(const char *s) {
  for (; s && *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f) return false;
  return true;
}

/* ---------------------------------------------------------------- configuration */

void cc_e2b_config_init(cc_e2b_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->sandbox_timeout_s = 300;
  cfg->request_timeout_ms = 60000;
  cfg->connect_timeout_ms = 10000;
  cfg->keepalive_interval_s = 50;
  cfg->max_response_bytes = 4u << 20;
  cfg->max_file_bytes = 64u << 20;
  cfg->max_envelope_bytes = 4u << 20;
  cfg->pool_size = 8;
  cfg->allow_internet_access = true;
}

static void env_over(const char **dst, const char *name) {
  const char *v = getenv(name);
  if (v && *v) *dst = v;
}

void cc_e2b_config_from_env(cc_e2b_config *cfg) {
  env_over(&cfg->api_key, "E2B_API_KEY");
  env_over(&cfg->api_url, "E2B_API_URL");
  env_over(&cfg->domain, "E2B_DOMAIN");
  env_over(&cfg->sandbox_url, "E2B_SANDBOX_URL");
}

cc_status cc_e2b_read_key_file(const char *path, char **key_out) {
  *key_out = NULL;
  FILE *f = fopen(path, "re");
  if (!f) return CC_NOT_FOUND;
  char buf[4098];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  cc_status st = CC_OK;
  if (n > 4096) {
    st = CC_TOO_LARGE;
    goto out;
  }
  buf[n] = 0;
  char *nl = strpbrk(buf, "\r\n");
  if (nl) *nl = 0;
  char *s = buf;
  while (isspace((unsigned char)*s)) s++;
  size_t l = strlen(s);
  while (l > 0 && isspace((unsigned char)s[l - 1])) s[--l] = 0;
  if (l == 0 || !header_safe(s)) {
    st = CC_BAD_REQUEST;
    goto out;
  }
  *key_out = strdup(s);
  if (!*key_out) st = CC_INTERNAL;
out:
  explicit_bzero(buf, sizeof buf);
  return st;
}

void cc_e2b_free(void *p) {
  free(p);
}

/* ---------------------------------------------------------------- client */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ud) {
  cc_e2b_client *c = ud;
  if (data >= 0 && data < CURL_LOCK_DATA_LAST) pthread_mutex_lock(&c->share_mu[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ud) {
  cc_e2b_client *c = ud;
  if (data >= 0 && data < CURL_LOCK_DATA_LAST) pthread_mutex_unlock(&c->share_mu[data]);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init_once(void) {
  curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void wipe_free(char *s) {
  if (s) {
    explicit_bzero(s, strlen(s));
    free(s);
  }
}

void cc_e2b_client_free(cc_e2b_client *c) {
  if (!c) return;
  for (int i = 0; i < c->pool_n; i++) xfer_free(c->pool[i]);
  free(c->pool);
  if (c->share) curl_share_cleanup(c->share);
  for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) pthread_mutex_destroy(&c->share_mu[i]);
  pthread_mutex_destroy(&c->pool_mu);
  wipe_free(c->api_key);
  wipe_free(c->key_header);
  free(c->api_url);
  free(c->domain);
  free(c->sandbox_url);
  free(c->template_id);
  free(c->basic_header);
  free(c->user_query);
  free(c);
}

cc_status cc_e2b_client_new(const cc_e2b_config *cfg, cc_e2b_client **out, cc_e2b_error *err) {
  *out = NULL;
  if (cfg->sandbox_timeout_s < 0 || cfg->request_timeout_ms < 0 || cfg->connect_timeout_ms < 0 ||
      cfg->keepalive_interval_s < 0 || cfg->pool_size < 0)
    return fail(err, CC_BAD_REQUEST, "e2b config: negative timeout or pool size");
  const char *domain = cfg->domain && *cfg->domain ? cfg->domain : "e2b.app";
  if (!header_safe(domain) || strchr(domain, '/'))
    return fail(err, CC_BAD_REQUEST, "e2b config: invalid domain");
  if (cfg->api_url && *cfg->api_url && !http_url(cfg->api_url))
    return fail(err, CC_BAD_REQUEST, "e2b config: E2B_API_URL must start with http:// or https://");
  if (cfg->sandbox_url && *cfg->sandbox_url && !http_url(cfg->sandbox_url))
    return fail(err, CC_BAD_REQUEST,
                "e2b config: E2B_SANDBOX_URL must start with http:// or https://");
  if (cfg->api_key && !header_safe(cfg->api_key))
    return fail(err, CC_BAD_REQUEST, "e2b config: the API key contains control characters");
  if (cfg->envd_user &&
      (!*cfg->envd_user || !header_safe(cfg->envd_user) || strchr(cfg->envd_user, ':')))
    return fail(err, CC_BAD_REQUEST, "e2b config: invalid envd user");
  const char *tpl = cfg->template_id && *cfg->template_id ? cfg->template_id : "base";

  pthread_once(&curl_once, curl_init_once);
  if (curl_init_rc != CURLE_OK)
    return fail(err, CC_INTERNAL, "e2b: curl_global_init failed: %s",
                curl_easy_strerror(curl_init_rc));

  cc_e2b_client *c = calloc(1, sizeof *c);
  if (!c) return fail(err, CC_INTERNAL, "e2b: out of memory");
  pthread_mutex_init(&c->pool_mu, NULL);
  for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) pthread_mutex_init(&c->share_mu[i], NULL);
  c->sandbox_timeout_s = cfg->sandbox_timeout_s ? cfg->sandbox_timeout_s : 300;
  c->request_timeout_ms = cfg->request_timeout_ms ? cfg->request_timeout_ms : 60000;
  c->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 10000;
  c->keepalive_s = cfg->keepalive_interval_s ? cfg->keepalive_interval_s : 50;
  c->max_response = cfg->max_response_bytes ? cfg->max_response_bytes : 4u << 20;
  c->max_file = cfg->max_file_bytes ? cfg->max_file_bytes : 64u << 20;
  c->max_envelope = cfg->max_envelope_bytes ? cfg->max_envelope_bytes : 4u << 20;
  c->pool_cap = cfg->pool_size ? cfg->pool_size : 8;
  c->allow_internet = cfg->allow_internet_access;
  c->pause_on_timeout = cfg->pause_on_timeout;

  c->domain = strdup(domain);
  c->api_url = cfg->api_url && *cfg->api_url ? dup_trim_slash(cfg->api_url)
                                             : xasprintf("https://api.%s", domain);
  c->sandbox_url = cfg->sandbox_url && *cfg->sandbox_url ? dup_trim_slash(cfg->sandbox_url) : NULL;
  c->template_id = strdup(tpl);
  c->pool = calloc((size_t)c->pool_cap, sizeof *c->pool);
  c->user_query = strdup("");
  bool ok = c->domain && c->api_url && c->template_id && c->pool && c->user_query &&
            (!(cfg->sandbox_url && *cfg->sandbox_url) || c->sandbox_url);
  if (ok && cfg->api_key && *cfg->api_key) {
    c->api_key = strdup(cfg->api_key);
    c->key_header = xasprintf("X-API-Key: %s", cfg->api_key);
    ok = c->api_key && c->key_header;
  }
  if (ok && cfg->envd_user) {
    char *pair = xasprintf("%s:", cfg->envd_user);
    char *b64 = pair ? cc_e2b_base64_encode(pair, strlen(pair)) : NULL;
    char *esc = curl_easy_escape(NULL, cfg->envd_user, 0);
    c->basic_header = b64 ? xasprintf("Authorization: Basic %s", b64) : NULL;
    free(c->user_query);
    c->user_query = esc ? xasprintf("&username=%s", esc) : NULL;
    free(pair);
    free(b64);
    curl_free(esc);
    ok = c->basic_header && c->user_query;
  }
  if (ok) {
    c->share = curl_share_init();
    ok = c->share && curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock) == CURLSHE_OK &&
         curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock) == CURLSHE_OK &&
         curl_share_setopt(c->share, CURLSHOPT_USERDATA, c) == CURLSHE_OK &&
         curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) == CURLSHE_OK &&
         curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) == CURLSHE_OK;
  }
  if (!ok) {
    cc_e2b_client_free(c);
    return fail(err, CC_INTERNAL, "e2b: out of memory");
  }
  *out = c;
  return finish(c, NULL, err, CC_OK);
}

const char *cc_e2b_client_api_url(const cc_e2b_client *c) {
  return c->api_url;
}

void cc_e2b_client_stats(cc_e2b_client *c, cc_e2b_stats *out) {
  out->requests = atomic_load(&c->requests);
  out->connections = atomic_load(&c->connections);
}

/* Borrows a transfer (easy handle + its own multi handle) from the pool, or makes one.
 * NULL on OOM. */
static xfer *handle_get(cc_e2b_client *c) {
  xfer *x = NULL;
  pthread_mutex_lock(&c->pool_mu);
  if (c->pool_n > 0) x = c->pool[--c->pool_n];
  pthread_mutex_unlock(&c->pool_mu);
  if (x) return x;
  x = calloc(1, sizeof *x);
  if (!x) return NULL;
  x->h = curl_easy_init();
  x->m = curl_multi_init();
  if (!x->h || !x->m) {
    xfer_free(x);
    return NULL;
  }
  return x;
}

/* Returns a transfer to the pool.  `reusable` false (a transfer we aborted mid-stream) closes
 * it so that no half-read connection is reused. */
static void handle_put(cc_e2b_client *c, xfer *x, bool reusable) {
  if (!x) return;
  if (reusable) {
    curl_easy_reset(x->h);
    pthread_mutex_lock(&c->pool_mu);
    if (c->pool_n < c->pool_cap) {
      c->pool[c->pool_n++] = x;
      x = NULL;
    }
    pthread_mutex_unlock(&c->pool_mu);
  }
  xfer_free(x);
}

/* Runs the transfer set up on x->h to completion through x->m, polling `cancel` (if any)
 * every 100 ms.  Returns the transfer's result, or CURLE_ABORTED_BY_CALLBACK with *canceled
 * set when the flag was raised. */
static CURLcode xfer_run(cc_e2b_client *c, xfer *x, atomic_int *cancel, bool *canceled) {
  if (curl_multi_add_handle(x->m, x->h) != CURLM_OK) return CURLE_OUT_OF_MEMORY;
  CURLcode rc = CURLE_OK;
  bool done = false;
  for (;;) {
    int running = 0;
    if (curl_multi_perform(x->m, &running) != CURLM_OK) {
      rc = CURLE_OUT_OF_MEMORY;
      break;
    }
    int q;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(x->m, &q)))
      if (msg->msg == CURLMSG_DONE && msg->easy_handle == x->h) {
        rc = msg->data.result;
        done = true;
      }
    if (done || !running) break;
    if (cancel && atomic_load(cancel)) {
      if (canceled) *canceled = true;
      rc = CURLE_ABORTED_BY_CALLBACK;
      break;
    }
    if (curl_multi_poll(x->m, NULL, 0, 100, NULL) != CURLM_OK) {
      rc = CURLE_OUT_OF_MEMORY;
      break;
    }
  }
  long opened = 0;
  curl_easy_getinfo(x->h, CURLINFO_NUM_CONNECTS, &opened);
  atomic_fetch_add(&c->requests, 1);
  if (opened > 0) atomic_fetch_add(&c->connections, (unsigned long long)opened);
  curl_multi_remove_handle(x->m, x->h);
  return rc;
}

/* Options every request gets. */
static void setup_common(cc_e2b_client *c, CURL *h, char *errbuf) {
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_VERBOSE, 0L); /* never: verbose output would show X-API-Key */
  curl_easy_setopt(h, CURLOPT_SHARE, c->share);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_USERAGENT, USER_AGENT);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L); /* a redirect must not carry our key away */
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
  errbuf[0] = 0;
}

/* Whether the transfer on h got as far as sending its request (a timeout before that is a
 * connect timeout: the server is unreachable, not slow). */
static bool request_sent(CURL *h) {
  curl_off_t t = 0;
  return curl_easy_getinfo(h, CURLINFO_PRETRANSFER_TIME_T, &t) == CURLE_OK && t > 0;
}

/* Maps a libcurl transport failure of the transfer on h (docs/protocol.md, "Upstream
 * errors").  `what` names the call.  Unreachable (refused, reset, DNS, no connection within
 * connect_timeout_ms, cut mid-answer) is sandbox_unavailable; no answer in time once the
 * request was sent is timeout; any TLS failure (handshake, certificate) is upstream_error:
 * it does not heal by itself, it is the server's or the operator's configuration. */
static cc_status transport_fail(cc_e2b_error *err, CURL *h, CURLcode rc, const char *errbuf,
                                const char *what) {
  cc_status st;
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
      st = request_sent(h) ? CC_TIMEOUT : CC_SANDBOX_UNAVAILABLE;
      break;
    case CURLE_FILESIZE_EXCEEDED:
      st = CC_TOO_LARGE;
      break;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_OUT_OF_MEMORY:
      st = CC_INTERNAL;
      break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_USE_SSL_FAILED:
      st = CC_UPSTREAM_ERROR;
      return fail(err, st, "%s: TLS: %s%s%s", what, curl_easy_strerror(rc), errbuf[0] ? ": " : "",
                  errbuf);
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    default:
      st = CC_SANDBOX_UNAVAILABLE;
      break;
  }
  return fail(err, st, "%s: %s%s%s", what, curl_easy_strerror(rc), errbuf[0] ? ": " : "", errbuf);
}

typedef struct {
  const char *what; /* "create sandbox", for messages */
  bool sandbox_op;  /* a 404 means the sandbox is gone */
  bool envd;        /* envd endpoint: string Connect codes are honoured */
  size_t limit;     /* response body limit */
} call_info;

/* Performs the request set up on h (URL, method, headers, body) as a unary call and reads the
 * body into *body.  CC_OK only for a 2xx status.  Does not scrub (finish() does). */
static cc_status perform_unary(cc_e2b_client *c, xfer *x, const call_info *ci, buf_t *body,
                               long *http_out, char *errbuf, cc_e2b_error *err) {
  CURL *h = x->h;
  memset(body, 0, sizeof *body);
  body->limit = ci->limit;
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->request_timeout_ms);
  curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
  CURLcode rc = xfer_run(c, x, NULL, NULL);
  long http = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);
  if (http_out) *http_out = http;
  if (rc == CURLE_WRITE_ERROR && body->over) {
    if (http >= 200 && http < 300)
      return fail(err, CC_TOO_LARGE, "%s: response larger than %zu bytes", ci->what, ci->limit);
    rc = CURLE_OK; /* an oversized error body: map the status with what we have */
  }
  if (rc != CURLE_OK) return transport_fail(err, h, rc, errbuf, ci->what);
  if (http >= 200 && http < 300) return CC_OK;
  cc_e2b_error tmp;
  cc_status st = cc_e2b_error_from_response((int)http, body->p ? body->p : "", body->len,
                                            ci->sandbox_op, ci->envd, ci->what, &tmp);
  if (err) *err = tmp;
  return st;
}

/* ---------------------------------------------------------------- control plane */

/* One control-plane request.  body may be NULL (no body).  On CC_OK *resp holds the body. */
static cc_status api_call(cc_e2b_client *c, const char *method, const char *path, const char *json,
                          const call_info *ci, buf_t *resp, long *http, cc_e2b_error *err) {
  char errbuf[CURL_ERROR_SIZE];
  xfer *x = handle_get(c);
  CURL *h = x ? x->h : NULL;
  if (!x) return fail(err, CC_INTERNAL, "%s: out of memory", ci->what);
  char *url = xasprintf("%s%s", c->api_url, path);
  struct curl_slist *hd = NULL, *t;
  bool ok = url != NULL;
  if (ok && c->key_header) ok = (t = curl_slist_append(hd, c->key_header)) && (hd = t);
  if (ok) ok = (t = curl_slist_append(hd, "Accept: application/json")) && (hd = t);
  if (ok && json) ok = (t = curl_slist_append(hd, "Content-Type: application/json")) && (hd = t);
  if (ok) ok = (t = curl_slist_append(hd, "Expect:")) && (hd = t);
  cc_status st;
  if (!ok) {
    st = fail(err, CC_INTERNAL, "%s: out of memory", ci->what);
    memset(resp, 0, sizeof *resp);
  } else {
    setup_common(c, h, errbuf);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    if (json) {
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(json));
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    else if (strcmp(method, "POST") == 0 && !json) {
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
    }
    st = perform_unary(c, x, ci, resp, http, errbuf, err);
  }
  curl_slist_free_all(hd);
  free(url);
  handle_put(c, x, true);
  if (st != CC_OK) buf_free(resp);
  return st;
}

static bool add_map(cJSON *obj, const char *name, const cc_e2b_kv *kv, size_t n) {
  if (n == 0) return true;
  cJSON *m = cJSON_AddObjectToObject(obj, name);
  if (!m) return false;
  for (size_t i = 0; i < n; i++)
    if (!kv[i].key || !kv[i].value || !cJSON_AddStringToObject(m, kv[i].key, kv[i].value))
      return false;
  return true;
}

cc_status cc_e2b_create(cc_e2b_client *c, const cc_e2b_create_opts *opts, cc_e2b_sandbox *out,
                        cc_e2b_error *err) {
  memset(out, 0, sizeof *out);
  cc_e2b_create_opts none = {0};
  if (!opts) opts = &none;
  const char *tpl = opts->template_id && *opts->template_id ? opts->template_id : c->template_id;
  int timeout = opts->timeout_s > 0 ? opts->timeout_s : c->sandbox_timeout_s;
  cJSON *req = cJSON_CreateObject();
  bool ok = req && cJSON_AddStringToObject(req, "templateID", tpl) &&
            cJSON_AddNumberToObject(req, "timeout", timeout) &&
            cJSON_AddBoolToObject(req, "autoPause", c->pause_on_timeout) &&
            (!c->pause_on_timeout ||
             cJSON_AddTrueToObject(cJSON_AddObjectToObject(req, "autoResume"), "enabled")) &&
            cJSON_AddBoolToObject(req, "secure", true) &&
            cJSON_AddBoolToObject(req, "allow_internet_access", c->allow_internet) &&
            add_map(req, "metadata", opts->metadata, opts->metadata_count) &&
            add_map(req, "envVars", opts->env_vars, opts->env_vars_count);
  char *json = ok ? cJSON_PrintUnformatted(req) : NULL;
  cJSON_Delete(req);
  if (!json) return finish(c, NULL, err, fail(err, CC_BAD_REQUEST, "create sandbox: bad options"));
  call_info ci = {"create sandbox", false, false, c->max_response};
  buf_t resp;
  long http = 0;
  cc_status st = api_call(c, "POST", "/v2/sandboxes", json, &ci, &resp, &http, err);
  cJSON_free(json);
  if (st == CC_NOT_FOUND) {
    /* Unknown template: the operator's configuration, not the user's request. */
    st = CC_UPSTREAM_ERROR;
    if (err) err->sandbox_gone = false;
  }
  if (st == CC_OK) {
    st = cc_e2b_sandbox_parse(resp.p ? resp.p : "", resp.len, c->domain, out);
    if (st != CC_OK) fail(err, st, "create sandbox: malformed response (HTTP %ld)", http);
  }
  buf_free(&resp);
  return finish(c, NULL, err, st);
}

cc_status cc_e2b_connect(cc_e2b_client *c, const char *sandbox_id, int timeout_s,
                         cc_e2b_sandbox *out, cc_e2b_error *err) {
  memset(out, 0, sizeof *out);
  if (!valid_id(sandbox_id))
    return finish(c, NULL, err, fail(err, CC_BAD_REQUEST, "connect: invalid sandbox id"));
  char path[128], json[64];
  snprintf(path, sizeof path, "/sandboxes/%s/connect", sandbox_id);
  snprintf(json, sizeof json, "{\"timeout\":%d}", timeout_s > 0 ? timeout_s : c->sandbox_timeout_s);
  call_info ci = {"connect sandbox", true, false, c->max_response};
  buf_t resp;
  long http = 0;
  cc_status st = api_call(c, "POST", path, json, &ci, &resp, &http, err);
  if (st == CC_OK) {
    st = cc_e2b_sandbox_parse(resp.p ? resp.p : "", resp.len, c->domain, out);
    if (st != CC_OK) fail(err, st, "connect sandbox: malformed response (HTTP %ld)", http);
    out->resumed = http == 201; /* 200: it was running */
  }
  buf_free(&resp);
  return finish(c, NULL, err, st);
}

cc_status cc_e2b_kill(cc_e2b_client *c, const char *sandbox_id, cc_e2b_error *err) {
  if (!valid_id(sandbox_id))
    return finish(c, NULL, err, fail(err, CC_BAD_REQUEST, "kill: invalid sandbox id"));
  char path[128];
  snprintf(path, sizeof path, "/sandboxes/%s", sandbox_id);
  call_info ci = {"kill sandbox", true, false, c->max_response};
  buf_t resp;
  cc_status st = api_call(c, "DELETE", path, NULL, &ci, &resp, NULL, err);
  buf_free(&resp);
  return finish(c, NULL, err, st);
}

cc_status cc_e2b_set_timeout(cc_e2b_client *c, const char *sandbox_id, int timeout_s,
                             cc_e2b_error *err) {
  if (!valid_id(sandbox_id))
    return finish(c, NULL, err, fail(err, CC_BAD_REQUEST, "set timeout: invalid sandbox id"));
  if (timeout_s <= 0)
    return finish(c, NULL, err, fail(err, CC_BAD_REQUEST, "set timeout: timeout must be > 0"));
  char path[128], json[64];
  snprintf(path, sizeof path, "/sandboxes/%s/timeout", sandbox_id);
  snprintf(json, sizeof json, "{\"timeout\":%d}", timeout_s);
  call_info ci = {"set sandbox timeout", true, false, c->max_response};
  buf_t resp;
  cc_status st = api_call(c, "POST", path, json, &ci, &resp, NULL, err);
  buf_free(&resp);
  return finish(c, NULL, err, st);
}

cc_status cc_e2b_get_info(cc_e2b_client *c, const char *sandbox_id, cc_e2b_info *out,
                          cc_e2b_error *err) {
  memset(out, 0, sizeof *out);
  if (!valid_id(sandbox_id))
    return finish(c, NULL, err, fail(err, CC_BAD_REQUEST, "get info: invalid sandbox id"));
  char path[128];
  snprintf(path, sizeof path, "/sandboxes/%s", sandbox_id);
  call_info ci = {"get sandbox info", true, false, c->max_response};
  buf_t resp;
  cc_status st = api_call(c, "GET", path, NULL, &ci, &resp, NULL, err);
  if (st == CC_OK) {
    st = cc_e2b_info_parse(resp.p ? resp.p : "", resp.len, out);
    if (st != CC_OK) fail(err, st, "get sandbox info: malformed response");
  }
  buf_free(&resp);
  return finish(c, NULL, err, st);
}

cc_status cc_e2b_host(const cc_e2b_sandbox *sb, int port, char *buf, size_t n) {
  int w = snprintf(buf, n, "%d-%s.%s", port, sb->id, sb->domain);
  if (w < 0 || (size_t)w >= n) {
    if (n) buf[0] = 0;
    return CC_TOO_LARGE;
  }
  return CC_OK;
}

/* ---------------------------------------------------------------- envd plumbing */

/* The envd URL for path (which starts with '/'): E2B_SANDBOX_URL, else the host form. */
static char *envd_url(const cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *path) {
  if (c->sandbox_url) return xasprintf("%s%s", c->sandbox_url, path);
  return xasprintf("https://%d-%s.%s%s", ENVD_PORT, sb->id, sb->domain, path);
}

/* Headers for any envd request: sandbox routing and the access token.  `rpc` adds the
 * Connect headers for a unary call (content type and, if configured, Basic auth). */
static struct curl_slist *envd_headers(const cc_e2b_client *c, const cc_e2b_sandbox *sb, bool rpc) {
  struct curl_slist *hd = NULL, *t;
  char line[320];
  snprintf(line, sizeof line, "E2b-Sandbox-Id: %s", sb->id);
  if (!(t = curl_slist_append(hd, line))) goto oom;
  hd = t;
  if (!(t = curl_slist_append(hd, "E2b-Sandbox-Port: 49983"))) goto oom;
  hd = t;
  if (!(t = curl_slist_append(hd, "Expect:"))) goto oom;
  hd = t;
  if (sb->envd_access_token[0]) {
    snprintf(line, sizeof line, "X-Access-Token: %s", sb->envd_access_token);
    t = curl_slist_append(hd, line);
    explicit_bzero(line, sizeof line);
    if (!t) goto oom;
    hd = t;
  }
  if (rpc) {
    if (!(t = curl_slist_append(hd, "Connect-Protocol-Version: 1"))) goto oom;
    hd = t;
    if (c->basic_header) {
      if (!(t = curl_slist_append(hd, c->basic_header))) goto oom;
      hd = t;
    }
  }
  return hd;
oom:
  curl_slist_free_all(hd);
  return NULL;
}

static bool sandbox_ok(const cc_e2b_client *c, const cc_e2b_sandbox *sb) {
  return sb && valid_id(sb->id) && header_safe(sb->envd_access_token) &&
         (c->sandbox_url || (sb->domain[0] && header_safe(sb->domain) && !strchr(sb->domain, '/')));
}

/* A unary Connect-JSON call: POST {envd}/<method> with body json.  On CC_OK *resp holds the
 * response JSON. */
static cc_status rpc_call(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *method,
                          const char *json, const char *what, buf_t *resp, cc_e2b_error *err) {
  memset(resp, 0, sizeof *resp);
  if (!sandbox_ok(c, sb)) return fail(err, CC_BAD_REQUEST, "%s: invalid sandbox", what);
  char errbuf[CURL_ERROR_SIZE];
  char path[96];
  snprintf(path, sizeof path, "/%s", method);
  xfer *x = handle_get(c);
  CURL *h = x ? x->h : NULL;
  char *url = envd_url(c, sb, path);
  struct curl_slist *hd = envd_headers(c, sb, true), *t = NULL;
  if (hd) t = curl_slist_append(hd, "Content-Type: application/json");
  if (t) hd = t;
  cc_status st;
  if (!h || !url || !hd || !t) {
    st = fail(err, CC_INTERNAL, "%s: out of memory", what);
  } else {
    setup_common(c, h, errbuf);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(json));
    call_info ci = {what, false, true, c->max_response};
    st = perform_unary(c, x, &ci, resp, NULL, errbuf, err);
  }
  curl_slist_free_all(hd);
  free(url);
  if (h) handle_put(c, x, true);
  if (st != CC_OK) buf_free(resp);
  return st;
}

/* Builds {"path": path} (or with extra fields) as JSON text; NULL on OOM. */
static char *path_json(const char *path, int depth) {
  cJSON *o = cJSON_CreateObject();
  char *s = NULL;
  if (o && cJSON_AddStringToObject(o, "path", path) &&
      (depth <= 0 || cJSON_AddNumberToObject(o, "depth", depth)))
    s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}

cc_status cc_e2b_health(cc_e2b_client *c, const cc_e2b_sandbox *sb, cc_e2b_error *err) {
  if (!sandbox_ok(c, sb))
    return finish(c, sb, err, fail(err, CC_BAD_REQUEST, "health: invalid sandbox"));
  char errbuf[CURL_ERROR_SIZE];
  xfer *x = handle_get(c);
  CURL *h = x ? x->h : NULL;
  char *url = envd_url(c, sb, "/health");
  struct curl_slist *hd = envd_headers(c, sb, false);
  cc_status st;
  buf_t resp = {0};
  if (!h || !url || !hd) {
    st = fail(err, CC_INTERNAL, "health: out of memory");
  } else {
    setup_common(c, h, errbuf);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    call_info ci = {"envd health", false, true, ERROR_BODY_LIMIT};
    st = perform_unary(c, x, &ci, &resp, NULL, errbuf, err);
  }
  buf_free(&resp);
  curl_slist_free_all(hd);
  free(url);
  if (h) handle_put(c, x, true);
  return finish(c, sb, err, st);
}

/* ---------------------------------------------------------------- processes */

/* SendInput to stdin or to the PTY ("stdin" / "pty"). */
static cc_status send_input_as(cc_e2b_client *c, const cc_e2b_sandbox *sb, uint32_t pid,
                               const char *kind, const void *data, size_t len, cc_e2b_error *err) {
  if (len > c->max_envelope)
    return finish(c, sb, err, fail(err, CC_TOO_LARGE, "send input: %zu bytes is too large", len));
  char *b64 = cc_e2b_base64_encode(data, len);
  char *json = b64 ? xasprintf("{\"process\":{\"pid\":%u},\"input\":{\"%s\":\"%s\"}}", pid,
                               kind, b64)
                   : NULL;
  free(b64);
  if (!json) return finish(c, sb, err, fail(err, CC_INTERNAL, "send input: out of memory"));
  buf_t resp;
  cc_status st = rpc_call(c, sb, "process.Process/SendInput", json, "send input", &resp, err);
  free(json);
  buf_free(&resp);
  return finish(c, sb, err, st);
}

cc_status cc_e2b_send_input(cc_e2b_client *c, const cc_e2b_sandbox *sb, uint32_t pid,
                            const void *data, size_t len, cc_e2b_error *err) {
  return send_input_as(c, sb, pid, "stdin", data, len, err);
}

cc_status cc_e2b_send_pty_input(cc_e2b_client *c, const cc_e2b_sandbox *sb, uint32_t pid,
                                const void *data, size_t len, cc_e2b_error *err) {
  return send_input_as(c, sb, pid, "pty", data, len, err);
}

cc_status cc_e2b_pty_resize(cc_e2b_client *c, const cc_e2b_sandbox *sb, uint32_t pid,
                            uint16_t cols, uint16_t rows, cc_e2b_error *err) {
  char json[128];
  snprintf(json, sizeof json, "{\"process\":{\"pid\":%u},\"pty\":{\"size\":{\"cols\":%u,\"rows\":%u}}}",
           pid, (unsigned)cols, (unsigned)rows);
  buf_t resp;
  cc_status st = rpc_call(c, sb, "process.Process/Update", json, "resize the terminal", &resp, err);
  buf_free(&resp);
  return finish(c, sb, err, st);
}

/* SendSignal with its own timeout (used after a cancel as well). */
static cc_status send_signal(cc_e2b_client *c, const cc_e2b_sandbox *sb, uint32_t pid, int sig,
                             cc_e2b_error *err) {
  char json[96];
  snprintf(json, sizeof json, "{\"process\":{\"pid\":%u},\"signal\":\"%s\"}", pid,
           sig == 9 ? "SIGNAL_SIGKILL" : "SIGNAL_SIGTERM");
  buf_t resp;
  cc_status st = rpc_call(c, sb, "process.Process/SendSignal", json, "send signal", &resp, err);
  buf_free(&resp);
  return st;
}

cc_status cc_e2b_send_signal(cc_e2b_client *c, const cc_e2b_sandbox *sb, uint32_t pid, int signal,
                             cc_e2b_error *err) {
  if (signal != 9 && signal != 15)
    return finish(c, sb, err,
                  fail(err, CC_BAD_REQUEST, "send signal: only SIGKILL (9) and SIGTERM (15)"));
  return finish(c, sb, err, send_signal(c, sb, pid, signal, err));
}

cc_status cc_e2b_list_processes(cc_e2b_client *c, const cc_e2b_sandbox *sb,
                                cc_e2b_process_list *out, cc_e2b_error *err) {
  memset(out, 0, sizeof *out);
  buf_t resp;
  cc_status st = rpc_call(c, sb, "process.Process/List", "{}", "list processes", &resp, err);
  if (st == CC_OK) {
    st = cc_e2b_processes_parse(resp.p ? resp.p : "", resp.len, out);
    if (st != CC_OK) fail(err, st, "list processes: malformed response");
  }
  buf_free(&resp);
  return finish(c, sb, err, st);
}

/* The state of one Start stream, shared by the libcurl callbacks. */
typedef struct {
  cc_e2b_client *c;
  const cc_e2b_exec_opts *o;
  cc_e2b_exec_result *res;
  CURL *h;
  cc_envelope_reader ep;
  struct timespec t0;
  bool http_checked;
  bool http_bad; /* non-200: the body is an error document */
  long http;
  buf_t errbody;
  cc_status parse_status; /* a framing/JSON failure inside a callback */
  char parse_msg[160];
  cc_e2b_action action; /* CONTINUE, or why we stopped */
  bool no_start;        /* the start event did not come within request_timeout_ms */
  bool eos;             /* the end-of-stream envelope arrived */
  cc_status eos_status;
  char eos_code[32];
  char eos_msg[384];
} stream_ctx;

static int on_envelope(void *ud, unsigned flags, const uint8_t *bytes, size_t len) {
  stream_ctx *s = ud;
  const char *payload = (const char *)bytes;
  if (flags & CC_E2B_FLAG_END_STREAM) {
    s->eos = true;
    s->eos_status = cc_e2b_end_stream_parse(payload, len, s->eos_code, sizeof s->eos_code,
                                            s->eos_msg, sizeof s->eos_msg);
    return 0;
  }
  cc_e2b_parsed_event pe;
  cc_status st = cc_e2b_event_parse(payload, len, &pe);
  if (st != CC_OK) {
    cc_e2b_parsed_event_cleanup(&pe);
    s->parse_status = st;
    snprintf(s->parse_msg, sizeof s->parse_msg, "malformed process event (%zu bytes)", len);
    return 1;
  }
  int stop = 0;
  if (pe.known) {
    cc_e2b_exec_result *r = s->res;
    if (pe.ev.type == CC_E2B_EVENT_START) {
      r->started = true;
      r->pid = pe.ev.pid;
    } else if (pe.ev.type == CC_E2B_EVENT_END) {
      r->ended = true;
      r->exit_code = pe.ev.exit_code;
      r->exited = pe.ev.exited;
      snprintf(r->status, sizeof r->status, "%s", pe.ev.status);
      snprintf(r->error, sizeof r->error, "%s", pe.ev.error);
    }
    if (s->o->on_event) {
      cc_e2b_action a = s->o->on_event(s->o->ctx, &pe.ev);
      if (a == CC_E2B_CANCEL || a == CC_E2B_DETACH) {
        s->action = a;
        stop = 1;
      }
    }
  }
  cc_e2b_parsed_event_cleanup(&pe);
  if (!stop && s->o->cancel && atomic_load(s->o->cancel)) {
    s->action = CC_E2B_CANCEL;
    stop = 1;
  }
  if (!stop && s->o->detach && atomic_load(s->o->detach)) {
    s->action = CC_E2B_DETACH;
    stop = 1;
  }
  return stop;
}

static size_t on_stream(char *data, size_t size, size_t nmemb, void *ud) {
  stream_ctx *s = ud;
  size_t n = size * nmemb;
  if (!s->http_checked) {
    s->http_checked = true;
    curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &s->http);
    s->http_bad = s->http != 200;
  }
  if (s->http_bad) {
    buf_append(&s->errbody, data, n); /* truncating buffer: keeps the first 64 KiB */
    return n;
  }
  cc_status st = cc_envelope_reader_feed(&s->ep, data, n, on_envelope, s);
  if (st != CC_OK) {
    s->parse_status = st;
    snprintf(s->parse_msg, sizeof s->parse_msg, "%s",
             st == CC_TOO_LARGE ? "stream envelope above the size limit"
                                : "malformed Connect envelope stream");
    return 0;
  }
  if (s->ep.stopped) return 0; /* cancel, detach, or an event we could not parse */
  return n;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
  stream_ctx *s = ud;
  if (s->o->cancel && atomic_load(s->o->cancel)) {
    s->action = CC_E2B_CANCEL;
    return 1;
  }
  if (s->o->detach && atomic_load(s->o->detach)) {
    s->action = CC_E2B_DETACH;
    return 1;
  }
  if (!s->res->started && elapsed_ms(&s->t0) > s->c->request_timeout_ms) {
    s->no_start = true;
    return 1;
  }
  return 0;
}

/* Builds the Start request envelope (header + JSON).  *len_out is its size. */
static char *start_envelope(const cc_e2b_exec_opts *o, size_t *len_out) {
  cJSON *req = cJSON_CreateObject();
  cJSON *proc = req ? cJSON_AddObjectToObject(req, "process") : NULL;
  char *json = NULL, *env = NULL;
  bool ok = proc != NULL;
  if (ok && !o->args) {
    const char *argv[] = {"-l", "-c", o->cmd};
    ok = cJSON_AddStringToObject(proc, "cmd", "/bin/bash") &&
         cJSON_AddItemToObject(proc, "args", cJSON_CreateStringArray(argv, 3));
  } else if (ok) {
    cJSON *a = cJSON_AddArrayToObject(proc, "args");
    ok = cJSON_AddStringToObject(proc, "cmd", o->cmd) && a;
    for (size_t i = 0; ok && i < o->args_count; i++)
      ok = o->args[i] && cJSON_AddItemToArray(a, cJSON_CreateString(o->args[i]));
  }
  if (ok) ok = add_map(proc, "envs", o->envs, o->envs_count);
  if (ok && o->cwd) ok = cJSON_AddStringToObject(proc, "cwd", o->cwd) != NULL;
  if (ok && o->tag) ok = cJSON_AddStringToObject(req, "tag", o->tag) != NULL;
  if (ok) ok = cJSON_AddBoolToObject(req, "stdin", o->stdin_enabled) != NULL;
  if (ok && o->pty_cols && o->pty_rows) {
    cJSON *size = cJSON_AddObjectToObject(cJSON_AddObjectToObject(req, "pty"), "size");
    ok = size && cJSON_AddNumberToObject(size, "cols", o->pty_cols) &&
         cJSON_AddNumberToObject(size, "rows", o->pty_rows);
  }
  if (ok) json = cJSON_PrintUnformatted(req);
  cJSON_Delete(req);
  if (json) {
    size_t n = strlen(json);
    if (n <= UINT32_MAX && (env = malloc(n + 5))) {
      cc_e2b_envelope_header((unsigned char *)env, 0, (uint32_t)n);
      memcpy(env + 5, json, n);
      *len_out = n + 5;
    }
    cJSON_free(json);
  }
  return env;
}

/* Which stream: Start (runs a command) or Connect (re-attaches to a pid). */
typedef struct {
  const char *what; /* "exec" / "attach", for messages */
  const char *path; /* "/process.Process/Start" */
  const char *body; /* the one request envelope */
  size_t body_len;
  long server_timeout_ms; /* Connect-Timeout-Ms (envd kills the process then); 0 = none */
  long client_timeout_ms; /* client-side limit without a server deadline; 0 = none */
  bool kill_on_failure;   /* SIGKILL a started process when the stream fails (exec) */
} stream_req;

static cc_status stream_call(cc_e2b_client *c, const cc_e2b_sandbox *sb, const stream_req *rq,
                             const cc_e2b_exec_opts *o, cc_e2b_exec_result *res, cc_e2b_error *err);

/* After a SIGKILL: waits (bounded) until envd reports the process ended or unknown, so that
 * "canceled" means the process is really gone when we return.  True if confirmed. */
static bool wait_gone(cc_e2b_client *c, const cc_e2b_sandbox *sb, uint32_t pid) {
  char json[64];
  int n = snprintf(json + 5, sizeof json - 5, "{\"process\":{\"pid\":%u}}", pid);
  cc_e2b_envelope_header((unsigned char *)json, 0, (uint32_t)n);
  stream_req rq = {
      "wait for exit", "/process.Process/Connect", json, (size_t)n + 5, 0, KILL_TIMEOUT_MS, false};
  cc_e2b_exec_opts o = {.cmd = ""};
  cc_e2b_exec_result r;
  cc_e2b_error e;
  cc_status st = stream_call(c, sb, &rq, &o, &r, &e);
  return (st == CC_OK && r.ended) || st == CC_NOT_FOUND;
}

static cc_status stream_call(cc_e2b_client *c, const cc_e2b_sandbox *sb, const stream_req *rq,
                             const cc_e2b_exec_opts *o, cc_e2b_exec_result *res,
                             cc_e2b_error *err) {
  char errbuf[CURL_ERROR_SIZE];
  memset(res, 0, sizeof *res);
  char *url = envd_url(c, sb, rq->path);
  struct curl_slist *hd = envd_headers(c, sb, true), *t = NULL;
  char line[64];
  if (hd) t = curl_slist_append(hd, "Content-Type: application/connect+json");
  if (t) {
    hd = t;
    snprintf(line, sizeof line, "Keepalive-Ping-Interval: %d", c->keepalive_s);
    t = curl_slist_append(hd, line);
  }
  if (t && rq->server_timeout_ms > 0) {
    hd = t;
    snprintf(line, sizeof line, "Connect-Timeout-Ms: %ld", rq->server_timeout_ms);
    t = curl_slist_append(hd, line);
  }
  if (t) hd = t;
  xfer *x = handle_get(c);
  CURL *h = x ? x->h : NULL;
  stream_ctx s;
  memset(&s, 0, sizeof s);
  s.c = c;
  s.o = o;
  s.res = res;
  s.h = h;
  s.errbody.limit = ERROR_BODY_LIMIT;
  s.errbody.truncate = true;
  cc_e2b_envelope_init(&s.ep, c->max_envelope);
  clock_gettime(CLOCK_MONOTONIC, &s.t0);
  long deadline = rq->server_timeout_ms > 0 ? rq->server_timeout_ms : rq->client_timeout_ms;

  cc_status st = CC_OK;
  CURLcode rc = CURLE_OK;
  if (!rq->body || !url || !hd || !t || !h) {
    st = fail(err, CC_INTERNAL, "%s: out of memory", rq->what);
    goto done;
  }
  setup_common(c, h, errbuf);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body);
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)rq->body_len);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_stream);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, &s);
  /* No total timeout for a stream, except the command's own deadline plus a grace period. */
  curl_easy_setopt(
      h, CURLOPT_TIMEOUT_MS,
      rq->server_timeout_ms > 0 ? rq->server_timeout_ms + STREAM_GRACE_MS : rq->client_timeout_ms);
  /* envd sends a keepalive every interval; silence for two of them means a dead peer. */
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)(2 * c->keepalive_s + 10));
  bool flag_canceled = false;
  rc = xfer_run(c, x, o->cancel, &flag_canceled);
  if (flag_canceled) s.action = CC_E2B_CANCEL;

  if (s.action == CC_E2B_CANCEL) {
    res->canceled = true;
    if (res->started && !res->ended) {
      cc_e2b_error kerr;
      cc_status ks = send_signal(c, sb, res->pid, 9, &kerr);
      /* not_found: the process ended on its own between our stop and the kill. */
      res->kill_failed = (ks != CC_OK && ks != CC_NOT_FOUND) || !wait_gone(c, sb, res->pid);
    }
    st = CC_OK;
  } else if (s.action == CC_E2B_DETACH) {
    res->detached = true;
    st = CC_OK;
  } else if (s.http_bad) {
    cc_e2b_error tmp;
    st = cc_e2b_error_from_response((int)s.http, s.errbody.p ? s.errbody.p : "", s.errbody.len,
                                    false, true, rq->what, &tmp);
    if (err) *err = tmp;
  } else if (s.parse_status != CC_OK) {
    st = fail(err, s.parse_status, "%s: %s", rq->what, s.parse_msg);
  } else if (s.no_start) {
    st = fail(err, CC_TIMEOUT, "%s: no start event within %ld ms", rq->what, c->request_timeout_ms);
  } else if (rc == CURLE_OPERATION_TIMEDOUT && !request_sent(h)) {
    st = transport_fail(err, h, rc, errbuf, rq->what); /* could not connect */
  } else if (rc == CURLE_OPERATION_TIMEDOUT) {
    if (deadline > 0 && elapsed_ms(&s.t0) >= deadline) {
      res->timed_out = true;
      st = fail(err, CC_TIMEOUT, "%s: command exceeded its %ld ms deadline", rq->what, deadline);
    } else {
      st = fail(err, CC_SANDBOX_UNAVAILABLE, "%s: no data from envd for %d s", rq->what,
                2 * c->keepalive_s + 10);
    }
  } else if (rc != CURLE_OK) {
    st = transport_fail(err, h, rc, errbuf, rq->what);
  } else if (s.eos && s.eos_status != CC_OK) {
    st = s.eos_status;
    if (st == CC_TIMEOUT) res->timed_out = true;
    fail(err, st, "%s: %s: %s", rq->what, s.eos_code, s.eos_msg);
    if (err) snprintf(err->code, sizeof err->code, "%s", s.eos_code);
  } else if (!res->ended) {
    st = fail(err, s.eos ? CC_UPSTREAM_ERROR : CC_SANDBOX_UNAVAILABLE,
              "%s: the stream ended before the process did", rq->what);
  } else if (rq->server_timeout_ms > 0 && !res->exited &&
             elapsed_ms(&s.t0) >= rq->server_timeout_ms) {
    /* envd killed the process at the Connect-Timeout-Ms deadline and reported the kill. */
    res->timed_out = true;
    st = fail(err, CC_TIMEOUT, "%s: command exceeded its %ld ms deadline", rq->what,
              rq->server_timeout_ms);
  }
  /* A process we lost track of (a failure mid-stream) is killed, best effort, so that a
   * failed exec never leaves work running in the sandbox. */
  if (rq->kill_on_failure && st != CC_OK && res->started && !res->ended &&
      st != CC_SANDBOX_UNAVAILABLE) {
    cc_e2b_error kerr;
    send_signal(c, sb, res->pid, 9, &kerr);
  }
done:
  cc_envelope_reader_cleanup(&s.ep);
  buf_free(&s.errbody);
  curl_slist_free_all(hd);
  free(url);
  /* Reuse the connection only if the stream was read to its end. */
  handle_put(c, x, rc == CURLE_OK && s.action == CC_E2B_CONTINUE && !s.http_bad);
  return st;
}

cc_status cc_e2b_exec(cc_e2b_client *c, const cc_e2b_sandbox *sb, const cc_e2b_exec_opts *o,
                      cc_e2b_exec_result *res, cc_e2b_error *err) {
  cc_e2b_exec_result local;
  if (!res) res = &local;
  memset(res, 0, sizeof *res);
  if (!o || !o->cmd || (o->args_count && !o->args))
    return finish(c, sb, err, fail(err, CC_BAD_REQUEST, "exec: no command"));
  if (!sandbox_ok(c, sb))
    return finish(c, sb, err, fail(err, CC_BAD_REQUEST, "exec: invalid sandbox"));
  if (o->timeout_ms < 0)
    return finish(c, sb, err, fail(err, CC_BAD_REQUEST, "exec: negative timeout"));
  size_t body_len = 0;
  char *body = start_envelope(o, &body_len);
  stream_req rq = {"exec", "/process.Process/Start", body, body_len, o->timeout_ms, 0, true};
  cc_status st = stream_call(c, sb, &rq, o, res, err);
  free(body);
  return finish(c, sb, err, st);
}

cc_status cc_e2b_attach(cc_e2b_client *c, const cc_e2b_sandbox *sb, uint32_t pid,
                        const cc_e2b_exec_opts *o, cc_e2b_exec_result *res, cc_e2b_error *err) {
  cc_e2b_exec_result local;
  cc_e2b_exec_opts none = {.cmd = ""};
  if (!res) res = &local;
  if (!o) o = &none;
  memset(res, 0, sizeof *res);
  if (!sandbox_ok(c, sb))
    return finish(c, sb, err, fail(err, CC_BAD_REQUEST, "attach: invalid sandbox"));
  if (o->timeout_ms < 0)
    return finish(c, sb, err, fail(err, CC_BAD_REQUEST, "attach: negative timeout"));
  char json[64];
  int n = snprintf(json + 5, sizeof json - 5, "{\"process\":{\"pid\":%u}}", pid);
  cc_e2b_envelope_header((unsigned char *)json, 0, (uint32_t)n);
  stream_req rq = {"attach", "/process.Process/Connect", json, (size_t)n + 5, 0, o->timeout_ms,
                   false};
  return finish(c, sb, err, stream_call(c, sb, &rq, o, res, err));
}

/* ---------------------------------------------------------------- filesystem */

static cc_status entry_call(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *method,
                            const char *json, const char *what, cc_e2b_entry *out,
                            cc_e2b_error *err) {
  if (out) memset(out, 0, sizeof *out);
  if (!json) return finish(c, sb, err, fail(err, CC_INTERNAL, "%s: out of memory", what));
  buf_t resp;
  cc_status st = rpc_call(c, sb, method, json, what, &resp, err);
  if (st == CC_OK && out) {
    st = cc_e2b_entry_parse(resp.p ? resp.p : "", resp.len, out);
    if (st != CC_OK) fail(err, st, "%s: malformed response", what);
  }
  buf_free(&resp);
  return finish(c, sb, err, st);
}

cc_status cc_e2b_stat(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *path,
                      cc_e2b_entry *out, cc_e2b_error *err) {
  char *json = path ? path_json(path, 0) : NULL;
  cc_status st = entry_call(c, sb, "filesystem.Filesystem/Stat", json, "stat", out, err);
  cJSON_free(json);
  return st;
}

cc_status cc_e2b_make_dir(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *path,
                          cc_e2b_entry *out, cc_e2b_error *err) {
  char *json = path ? path_json(path, 0) : NULL;
  cc_status st = entry_call(c, sb, "filesystem.Filesystem/MakeDir", json, "make dir", out, err);
  cJSON_free(json);
  return st;
}

cc_status cc_e2b_move(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *source,
                      const char *destination, cc_e2b_entry *out, cc_e2b_error *err) {
  char *json = NULL;
  cJSON *o = cJSON_CreateObject();
  if (o && source && destination && cJSON_AddStringToObject(o, "source", source) &&
      cJSON_AddStringToObject(o, "destination", destination))
    json = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  cc_status st = entry_call(c, sb, "filesystem.Filesystem/Move", json, "move", out, err);
  cJSON_free(json);
  return st;
}

cc_status cc_e2b_list_dir(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *path, int depth,
                          cc_e2b_entry_list *out, cc_e2b_error *err) {
  memset(out, 0, sizeof *out);
  char *json = path ? path_json(path, depth < 1 ? 1 : depth) : NULL;
  if (!json) return finish(c, sb, err, fail(err, CC_INTERNAL, "list dir: out of memory"));
  buf_t resp;
  cc_status st = rpc_call(c, sb, "filesystem.Filesystem/ListDir", json, "list dir", &resp, err);
  cJSON_free(json);
  if (st == CC_OK) {
    st = cc_e2b_entries_parse(resp.p ? resp.p : "", resp.len, MAX_LIST_ENTRIES, out);
    if (st != CC_OK) fail(err, st, "list dir: malformed or oversized response");
  }
  buf_free(&resp);
  return finish(c, sb, err, st);
}

cc_status cc_e2b_remove(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *path,
                        cc_e2b_error *err) {
  char *json = path ? path_json(path, 0) : NULL;
  if (!json) return finish(c, sb, err, fail(err, CC_INTERNAL, "remove: out of memory"));
  buf_t resp;
  cc_status st = rpc_call(c, sb, "filesystem.Filesystem/Remove", json, "remove", &resp, err);
  cJSON_free(json);
  buf_free(&resp);
  return finish(c, sb, err, st);
}

/* {envd}/files?path=<escaped>[&username=<user>] */
static char *files_url(const cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *path) {
  char *esc = curl_easy_escape(NULL, path, 0);
  if (!esc) return NULL;
  char *rel = xasprintf("/files?path=%s%s", esc, c->user_query);
  curl_free(esc);
  if (!rel) return NULL;
  char *url = envd_url(c, sb, rel);
  free(rel);
  return url;
}

typedef struct {
  const char *p;
  size_t len, off;
} upload_src;

static size_t upload_read(char *buf, size_t size, size_t nitems, void *ud) {
  upload_src *u = ud;
  size_t n = size * nitems;
  if (n > u->len - u->off) n = u->len - u->off;
  memcpy(buf, u->p + u->off, n);
  u->off += n;
  return n;
}

static int upload_seek(void *ud, curl_off_t offset, int origin) {
  upload_src *u = ud;
  if (origin != SEEK_SET || offset < 0 || (size_t)offset > u->len) return CURL_SEEKFUNC_FAIL;
  u->off = (size_t)offset;
  return CURL_SEEKFUNC_OK;
}

cc_status cc_e2b_write_file(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *path,
                            const void *data, size_t len, char *out_path, size_t out_path_n,
                            cc_e2b_error *err) {
  if (out_path && out_path_n) out_path[0] = 0;
  if (!sandbox_ok(c, sb))
    return finish(c, sb, err, fail(err, CC_BAD_REQUEST, "write file: invalid sandbox"));
  if (!path || !*path) return finish(c, sb, err, fail(err, CC_BAD_REQUEST, "write file: no path"));
  if (len > c->max_file)
    return finish(c, sb, err,
                  fail(err, CC_TOO_LARGE, "write file: %zu bytes exceeds the %zu byte limit", len,
                       c->max_file));
  char errbuf[CURL_ERROR_SIZE];
  xfer *x = handle_get(c);
  CURL *h = x ? x->h : NULL;
  char *url = files_url(c, sb, path);
  struct curl_slist *hd = envd_headers(c, sb, false);
  curl_mime *mime = h ? curl_mime_init(h) : NULL;
  curl_mimepart *part = mime ? curl_mime_addpart(mime) : NULL;
  upload_src src = {data ? data : "", len, 0};
  const char *base = strrchr(path, '/');
  base = base && base[1] ? base + 1 : path;
  buf_t resp = {0};
  cc_status st;
  if (!h || !url || !hd || !part || curl_mime_name(part, "file") != CURLE_OK ||
      curl_mime_filename(part, base) != CURLE_OK ||
      curl_mime_type(part, "application/octet-stream") != CURLE_OK ||
      curl_mime_data_cb(part, (curl_off_t)len, upload_read, upload_seek, NULL, &src) != CURLE_OK) {
    st = fail(err, CC_INTERNAL, "write file: out of memory");
  } else {
    setup_common(c, h, errbuf);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_MIMEPOST, mime);
    call_info ci = {"write file", false, true, c->max_response};
    st = perform_unary(c, x, &ci, &resp, NULL, errbuf, err);
    if (st == CC_OK && out_path) {
      st = cc_e2b_upload_parse(resp.p ? resp.p : "", resp.len, out_path, out_path_n);
      if (st != CC_OK) fail(err, st, "write file: malformed response");
    }
  }
  buf_free(&resp);
  curl_mime_free(mime);
  curl_slist_free_all(hd);
  free(url);
  if (h) handle_put(c, x, true);
  return finish(c, sb, err, st);
}

cc_status cc_e2b_read_file(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *path,
                           size_t max_bytes, char **data_out, size_t *len_out, cc_e2b_error *err) {
  *data_out = NULL;
  *len_out = 0;
  if (!sandbox_ok(c, sb))
    return finish(c, sb, err, fail(err, CC_BAD_REQUEST, "read file: invalid sandbox"));
  if (!path || !*path) return finish(c, sb, err, fail(err, CC_BAD_REQUEST, "read file: no path"));
  size_t limit = max_bytes ? max_bytes : c->max_file;
  char errbuf[CURL_ERROR_SIZE];
  xfer *x = handle_get(c);
  CURL *h = x ? x->h : NULL;
  char *url = files_url(c, sb, path);
  struct curl_slist *hd = envd_headers(c, sb, false);
  buf_t resp = {0};
  cc_status st;
  if (!h || !url || !hd) {
    st = fail(err, CC_INTERNAL, "read file: out of memory");
  } else {
    setup_common(c, h, errbuf);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    /* Refuse early when the server announces a larger body. */
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)limit);
    call_info ci = {"read file", false, true, limit < ERROR_BODY_LIMIT ? ERROR_BODY_LIMIT : limit};
    st = perform_unary(c, x, &ci, &resp, NULL, errbuf, err);
    if (st == CC_TOO_LARGE) fail(err, st, "read file: larger than %zu bytes", limit);
    if (st == CC_OK && resp.len > limit)
      st = fail(err, CC_TOO_LARGE, "read file: larger than %zu bytes", limit);
  }
  if (st == CC_OK) {
    if (!resp.p && !(resp.p = calloc(1, 1)))
      st = fail(err, CC_INTERNAL, "read file: out of memory");
    *data_out = resp.p;
    *len_out = resp.len;
    resp.p = NULL;
  }
  buf_free(&resp);
  curl_slist_free_all(hd);
  free(url);
  if (h) handle_put(c, x, true);
  return finish(c, sb, err, st);
}
