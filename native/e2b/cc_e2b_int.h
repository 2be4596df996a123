/*
 * cc_e2b_int: what the two halves of the E2B client share (cc_e2b.c: configuration, the
 * transfer pool and transport, the control plane; cc_e2b_envd.c: envd, i.e. processes,
 * streams and files).  Not a public interface: see cc_e2b.h.
 */
#ifndef CC_E2B_INT_H
#define CC_E2B_INT_H

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "cc_e2b.h"

#define ENVD_PORT 49983
#define ERROR_BODY_LIMIT (64 * 1024) /* how much of an error body we keep */
#define STREAM_GRACE_MS 5000         /* client deadline = command deadline + this */
#define KILL_TIMEOUT_MS 10000        /* the SIGKILL after a cancel */
#define MAX_LIST_ENTRIES 200000

/* One pooled transfer: an easy handle and the multi handle that drives it.  The multi owns
 * the connection cache, so keep-alive connections survive between calls. */
typedef struct xfer {
  CURL *h;
  CURLM *m;
} xfer;

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

/* Growable byte buffer with a hard limit (STYLE: every growable thing has a limit). */
typedef struct {
  char *p;
  size_t len, cap, limit;
  bool over;     /* more than `limit` bytes were offered */
  bool truncate; /* when over: keep the first `limit` bytes and accept the rest silently */
} buf_t;

typedef struct {
  const char *what; /* "create sandbox", for messages */
  bool sandbox_op;  /* a 404 means the sandbox is gone */
  bool envd;        /* envd endpoint: string Connect codes are honoured */
  size_t limit;     /* response body limit */
} call_info;

/* Helpers of cc_e2b.c used by both halves. */
bool e2b_add_map(cJSON *obj, const char *name, const cc_e2b_kv *kv, size_t n);
bool e2b_buf_append(buf_t *b, const void *data, size_t n);
void e2b_buf_free(buf_t *b);
long e2b_elapsed_ms(const struct timespec *t0);
/* Fills err (scrubbed) and returns st. */
cc_status e2b_fail(cc_e2b_error *err, cc_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
cc_status e2b_finish(const cc_e2b_client *c, const cc_e2b_sandbox *sb, cc_e2b_error *err,
                        cc_status st);
xfer *e2b_handle_get(cc_e2b_client *c);
void e2b_handle_put(cc_e2b_client *c, xfer *x, bool reusable);
bool e2b_header_safe(const char *s);
cc_status e2b_perform_unary(cc_e2b_client *c, xfer *x, const call_info *ci, buf_t *body,
                               long *http_out, char *errbuf, cc_e2b_error *err);
bool e2b_request_sent(CURL *h);
void e2b_setup_common(cc_e2b_client *c, CURL *h, char *errbuf);
cc_status e2b_transport_fail(cc_e2b_error *err, CURL *h, CURLcode rc, const char *errbuf,
                                const char *what);
bool e2b_valid_id(const char *id);
char *e2b_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
CURLcode e2b_xfer_run(cc_e2b_client *c, xfer *x, atomic_int *cancel, bool *canceled);

#endif
