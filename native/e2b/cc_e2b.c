/*
 * cc_e2b: the libcurl E2B client: configuration, the transfer pool and transport, and the
 * control plane (create, connect, kill, timeouts, info); envd (processes, streams, files) is
 * in cc_e2b_envd.c.  See cc_e2b.h for the contract.
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

#include "cc_e2b_int.h"
#include "cc_e2b_wire.h"

#define USER_AGENT "codecanvas-e2b/0.1"



static void xfer_free(xfer *x) {
  if (!x) return;
  if (x->h) curl_easy_cleanup(x->h);
  if (x->m) curl_multi_cleanup(x->m);
  free(x);
}


/* ---------------------------------------------------------------- small helpers */

char *e2b_xasprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0) s = NULL;
  va_end(ap);
  return s;
}

long e2b_elapsed_ms(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long)((t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000);
}

/* Sets *err (if any) to st with a formatted message.  Returns st. */
cc_status e2b_fail(cc_e2b_error *err, cc_status st, const char *fmt, ...) {
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
cc_status e2b_finish(const cc_e2b_client *c, const cc_e2b_sandbox *sb, cc_e2b_error *err,
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

bool e2b_valid_id(const char *id) {
  if (!id || !*id || strlen(id) >= 64) return false;
  for (const char *p = id; *p; p++)
    if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_') return false;
  return true;
}


void e2b_buf_free(buf_t *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

bool e2b_buf_append(buf_t *b, const void *data, size_t n) {
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
  return e2b_buf_append(ud, data, n) ? n : 0;
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

bool e2b_header_safe(const char *s) {
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
  if (l == 0 || !e2b_header_safe(s)) {
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
    return e2b_fail(err, CC_BAD_REQUEST, "e2b config: negative timeout or pool size");
  const char *domain = cfg->domain && *cfg->domain ? cfg->domain : "e2b.app";
  if (!e2b_header_safe(domain) || strchr(domain, '/'))
    return e2b_fail(err, CC_BAD_REQUEST, "e2b config: invalid domain");
  if (cfg->api_url && *cfg->api_url && !http_url(cfg->api_url))
    return e2b_fail(err, CC_BAD_REQUEST, "e2b config: E2B_API_URL must start with http:// or https://");
  if (cfg->sandbox_url && *cfg->sandbox_url && !http_url(cfg->sandbox_url))
    return e2b_fail(err, CC_BAD_REQUEST,
                "e2b config: E2B_SANDBOX_URL must start with http:// or https://");
  if (cfg->api_key && !e2b_header_safe(cfg->api_key))
    return e2b_fail(err, CC_BAD_REQUEST, "e2b config: the API key contains control characters");
  if (cfg->envd_user &&
      (!*cfg->envd_user || !e2b_header_safe(cfg->envd_user) || strchr(cfg->envd_user, ':')))
    return e2b_fail(err, CC_BAD_REQUEST, "e2b config: invalid envd user");
  const char *tpl = cfg->template_id && *cfg->template_id ? cfg->template_id : "base";

  pthread_once(&curl_once, curl_init_once);
  if (curl_init_rc != CURLE_OK)
    return e2b_fail(err, CC_INTERNAL, "e2b: curl_global_init failed: %s",
                curl_easy_strerror(curl_init_rc));

  cc_e2b_client *c = calloc(1, sizeof *c);
  if (!c) return e2b_fail(err, CC_INTERNAL, "e2b: out of memory");
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
                                             : e2b_xasprintf("https://api.%s", domain);
  c->sandbox_url = cfg->sandbox_url && *cfg->sandbox_url ? dup_trim_slash(cfg->sandbox_url) : NULL;
  c->template_id = strdup(tpl);
  c->pool = calloc((size_t)c->pool_cap, sizeof *c->pool);
  c->user_query = strdup("");
  bool ok = c->domain && c->api_url && c->template_id && c->pool && c->user_query &&
            (!(cfg->sandbox_url && *cfg->sandbox_url) || c->sandbox_url);
  if (ok && cfg->api_key && *cfg->api_key) {
    c->api_key = strdup(cfg->api_key);
    c->key_header = e2b_xasprintf("X-API-Key: %s", cfg->api_key);
    ok = c->api_key && c->key_header;
  }
  if (ok && cfg->envd_user) {
    char *pair = e2b_xasprintf("%s:", cfg->envd_user);
    char *b64 = pair ? cc_e2b_base64_encode(pair, strlen(pair)) : NULL;
    char *esc = curl_easy_escape(NULL, cfg->envd_user, 0);
    c->basic_header = b64 ? e2b_xasprintf("Authorization: Basic %s", b64) : NULL;
    free(c->user_query);
    c->user_query = esc ? e2b_xasprintf("&username=%s", esc) : NULL;
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
    return e2b_fail(err, CC_INTERNAL, "e2b: out of memory");
  }
  *out = c;
  return e2b_finish(c, NULL, err, CC_OK);
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
xfer *e2b_handle_get(cc_e2b_client *c) {
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
void e2b_handle_put(cc_e2b_client *c, xfer *x, bool reusable) {
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
CURLcode e2b_xfer_run(cc_e2b_client *c, xfer *x, atomic_int *cancel, bool *canceled) {
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
void e2b_setup_common(cc_e2b_client *c, CURL *h, char *errbuf) {
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
bool e2b_request_sent(CURL *h) {
  curl_off_t t = 0;
  return curl_easy_getinfo(h, CURLINFO_PRETRANSFER_TIME_T, &t) == CURLE_OK && t > 0;
}

/* Maps a libcurl transport failure of the transfer on h (docs/protocol.md, "Upstream
 * errors").  `what` names the call.  Unreachable (refused, reset, DNS, no connection within
 * connect_timeout_ms, cut mid-answer) is sandbox_unavailable; no answer in time once the
 * request was sent is timeout; any TLS failure (handshake, certificate) is upstream_error:
 * it does not heal by itself, it is the server's or the operator's configuration. */
cc_status e2b_transport_fail(cc_e2b_error *err, CURL *h, CURLcode rc, const char *errbuf,
                                const char *what) {
  cc_status st;
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
      st = e2b_request_sent(h) ? CC_TIMEOUT : CC_SANDBOX_UNAVAILABLE;
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
      return e2b_fail(err, st, "%s: TLS: %s%s%s", what, curl_easy_strerror(rc), errbuf[0] ? ": " : "",
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
  return e2b_fail(err, st, "%s: %s%s%s", what, curl_easy_strerror(rc), errbuf[0] ? ": " : "", errbuf);
}


/* Performs the request set up on h (URL, method, headers, body) as a unary call and reads the
 * body into *body.  CC_OK only for a 2xx status.  Does not scrub (e2b_finish() does). */
cc_status e2b_perform_unary(cc_e2b_client *c, xfer *x, const call_info *ci, buf_t *body,
                               long *http_out, char *errbuf, cc_e2b_error *err) {
  CURL *h = x->h;
  memset(body, 0, sizeof *body);
  body->limit = ci->limit;
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->request_timeout_ms);
  curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
  CURLcode rc = e2b_xfer_run(c, x, NULL, NULL);
  long http = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);
  if (http_out) *http_out = http;
  if (rc == CURLE_WRITE_ERROR && body->over) {
    if (http >= 200 && http < 300)
      return e2b_fail(err, CC_TOO_LARGE, "%s: response larger than %zu bytes", ci->what, ci->limit);
    rc = CURLE_OK; /* an oversized error body: map the status with what we have */
  }
  if (rc != CURLE_OK) return e2b_transport_fail(err, h, rc, errbuf, ci->what);
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
  xfer *x = e2b_handle_get(c);
  CURL *h = x ? x->h : NULL;
  if (!x) return e2b_fail(err, CC_INTERNAL, "%s: out of memory", ci->what);
  char *url = e2b_xasprintf("%s%s", c->api_url, path);
  struct curl_slist *hd = NULL, *t;
  bool ok = url != NULL;
  if (ok && c->key_header) ok = (t = curl_slist_append(hd, c->key_header)) && (hd = t);
  if (ok) ok = (t = curl_slist_append(hd, "Accept: application/json")) && (hd = t);
  if (ok && json) ok = (t = curl_slist_append(hd, "Content-Type: application/json")) && (hd = t);
  if (ok) ok = (t = curl_slist_append(hd, "Expect:")) && (hd = t);
  cc_status st;
  if (!ok) {
    st = e2b_fail(err, CC_INTERNAL, "%s: out of memory", ci->what);
    memset(resp, 0, sizeof *resp);
  } else {
    e2b_setup_common(c, h, errbuf);
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
    st = e2b_perform_unary(c, x, ci, resp, http, errbuf, err);
  }
  curl_slist_free_all(hd);
  free(url);
  e2b_handle_put(c, x, true);
  if (st != CC_OK) e2b_buf_free(resp);
  return st;
}

bool e2b_add_map(cJSON *obj, const char *name, const cc_e2b_kv *kv, size_t n) {
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
            e2b_add_map(req, "metadata", opts->metadata, opts->metadata_count) &&
            e2b_add_map(req, "envVars", opts->env_vars, opts->env_vars_count);
  char *json = ok ? cJSON_PrintUnformatted(req) : NULL;
  cJSON_Delete(req);
  if (!json) return e2b_finish(c, NULL, err, e2b_fail(err, CC_BAD_REQUEST, "create sandbox: bad options"));
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
    if (st != CC_OK) e2b_fail(err, st, "create sandbox: malformed response (HTTP %ld)", http);
  }
  e2b_buf_free(&resp);
  return e2b_finish(c, NULL, err, st);
}

cc_status cc_e2b_connect(cc_e2b_client *c, const char *sandbox_id, int timeout_s,
                         cc_e2b_sandbox *out, cc_e2b_error *err) {
  memset(out, 0, sizeof *out);
  if (!e2b_valid_id(sandbox_id))
    return e2b_finish(c, NULL, err, e2b_fail(err, CC_BAD_REQUEST, "connect: invalid sandbox id"));
  char path[128], json[64];
  snprintf(path, sizeof path, "/sandboxes/%s/connect", sandbox_id);
  snprintf(json, sizeof json, "{\"timeout\":%d}", timeout_s > 0 ? timeout_s : c->sandbox_timeout_s);
  call_info ci = {"connect sandbox", true, false, c->max_response};
  buf_t resp;
  long http = 0;
  cc_status st = api_call(c, "POST", path, json, &ci, &resp, &http, err);
  if (st == CC_OK) {
    st = cc_e2b_sandbox_parse(resp.p ? resp.p : "", resp.len, c->domain, out);
    if (st != CC_OK) e2b_fail(err, st, "connect sandbox: malformed response (HTTP %ld)", http);
    out->resumed = http == 201; /* 200: it was running */
  }
  e2b_buf_free(&resp);
  return e2b_finish(c, NULL, err, st);
}

cc_status cc_e2b_kill(cc_e2b_client *c, const char *sandbox_id, cc_e2b_error *err) {
  if (!e2b_valid_id(sandbox_id))
    return e2b_finish(c, NULL, err, e2b_fail(err, CC_BAD_REQUEST, "kill: invalid sandbox id"));
  char path[128];
  snprintf(path, sizeof path, "/sandboxes/%s", sandbox_id);
  call_info ci = {"kill sandbox", true, false, c->max_response};
  buf_t resp;
  cc_status st = api_call(c, "DELETE", path, NULL, &ci, &resp, NULL, err);
  e2b_buf_free(&resp);
  return e2b_finish(c, NULL, err, st);
}

cc_status cc_e2b_set_timeout(cc_e2b_client *c, const char *sandbox_id, int timeout_s,
                             cc_e2b_error *err) {
  if (!e2b_valid_id(sandbox_id))
    return e2b_finish(c, NULL, err, e2b_fail(err, CC_BAD_REQUEST, "set timeout: invalid sandbox id"));
  if (timeout_s <= 0)
    return e2b_finish(c, NULL, err, e2b_fail(err, CC_BAD_REQUEST, "set timeout: timeout must be > 0"));
  char path[128], json[64];
  snprintf(path, sizeof path, "/sandboxes/%s/timeout", sandbox_id);
  snprintf(json, sizeof json, "{\"timeout\":%d}", timeout_s);
  call_info ci = {"set sandbox timeout", true, false, c->max_response};
  buf_t resp;
  cc_status st = api_call(c, "POST", path, json, &ci, &resp, NULL, err);
  e2b_buf_free(&resp);
  return e2b_finish(c, NULL, err, st);
}

cc_status cc_e2b_get_info(cc_e2b_client *c, const char *sandbox_id, cc_e2b_info *out,
                          cc_e2b_error *err) {
  memset(out, 0, sizeof *out);
  if (!e2b_valid_id(sandbox_id))
    return e2b_finish(c, NULL, err, e2b_fail(err, CC_BAD_REQUEST, "get info: invalid sandbox id"));
  char path[128];
  snprintf(path, sizeof path, "/sandboxes/%s", sandbox_id);
  call_info ci = {"get sandbox info", true, false, c->max_response};
  buf_t resp;
  cc_status st = api_call(c, "GET", path, NULL, &ci, &resp, NULL, err);
  if (st == CC_OK) {
    st = cc_e2b_info_parse(resp.p ? resp.p : "", resp.len, out);
    if (st != CC_OK) e2b_fail(err, st, "get sandbox info: malformed response");
  }
  e2b_buf_free(&resp);
  return e2b_finish(c, NULL, err, st);
}

cc_status cc_e2b_host(const cc_e2b_sandbox *sb, int port, char *buf, size_t n) {
  int w = snprintf(buf, n, "%d-%s.%s", port, sb->id, sb->domain);
  if (w < 0 || (size_t)w >= n) {
    if (n) buf[0] = 0;
    return CC_TOO_LARGE;
  }
  return CC_OK;
}
