/*
 * cc_sbd_http: the one HTTP port of codecanvas-sandboxd (libmicrohttpd, one thread per
 * connection).  It routes every request to the control plane (E2B REST API), to envd (the
 * in-sandbox daemon's API, served here on the host) or to the port proxy, and holds the
 * response helpers those handlers share.
 *
 * Routing (first match wins): Host `<port>-<id>.<anything>`; headers E2b-Sandbox-Id (+
 * E2b-Sandbox-Port, default 49983); an envd path (/files, /health, /envs, /process.Process/...,
 * /filesystem.Filesystem/...) with an X-Access-Token or a /files signature; else the control
 * plane.  Port 49983 means envd; any other port is proxied into the sandbox.
 *
 * Ownership: a cc_sbd_req belongs to its connection and is freed when the request
 * completes; it holds one reference on its sandbox.  The respond helpers take ownership of
 * the cJSON they are given.
 */
#ifndef CC_SBD_HTTP_H
#define CC_SBD_HTTP_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "cc_sbd.h"

typedef enum { CC_SBD_ROUTE_CONTROL, CC_SBD_ROUTE_ENVD, CC_SBD_ROUTE_PROXY } cc_sbd_route;

typedef struct cc_sbd_req cc_sbd_req;

/* A streaming body consumer (multipart upload, proxied request).  feed returns false to
 * stop (it then has queued or will queue the error response). */
typedef struct {
  bool (*feed)(cc_sbd_req *r, const char *data, size_t n);
  void (*free)(void *state);
} cc_sbd_body_sink;

struct cc_sbd_req {
  cc_sbd_server *srv;
  struct MHD_Connection *conn;
  cc_sbd_route route;
  cc_sbd_sandbox *sb;      /* reference, or NULL */
  char sandbox_id[64];     /* the ID asked for (for 502 bodies) */
  int port;                /* proxy target port */
  char *raw_uri;           /* the request target as sent (path + query), owned */
  bool started;            /* the first access-handler call happened */
  const char *url;
  const char *method;
  char *body;              /* buffered body (NUL-terminated), when no sink */
  size_t len, cap;
  bool too_large;
  bool bad_credentials;    /* an envd token/signature was sent but matches no sandbox */
  bool as_root;            /* envd user "root" where the runtime has a root inside: uid 0,
                              paths relative to /root */
  bool responded;          /* the response was queued */
  unsigned early_status;   /* an error found before the body was read (e.g. 401 on an
                              upload, a failed write): the rest of the body is discarded and
                              this is answered once it has been read */
  char early_msg[600];
  size_t discarded;        /* body bytes discarded after an early error */
  const cc_sbd_body_sink *sink;
  void *sink_state;
};

/* Starts the HTTP server on an already listening socket.  Returns NULL on failure. */
struct MHD_Daemon *cc_sbd_http_start(cc_sbd_server *srv, int listen_fd);

enum MHD_Result cc_sbd_respond_raw(struct MHD_Connection *c, unsigned status, const char *ctype,
                                   const void *data, size_t len);
/* JSON body (takes ownership of `body`). */
enum MHD_Result cc_sbd_respond_json(struct MHD_Connection *c, unsigned status, cJSON *body);
/* {"code":<status>,"message":msg}: control plane and envd HTTP errors. */
enum MHD_Result cc_sbd_respond_error(struct MHD_Connection *c, unsigned status, const char *fmt,
                                     ...) __attribute__((format(printf, 3, 4)));
/* Connect unary error {"code":"<name>","message":msg} with the code's HTTP status. */
enum MHD_Result cc_sbd_respond_connect_error(struct MHD_Connection *c, int connect_code,
                                             const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The edge proxy's 502 for a missing sandbox (port < 0) or a closed port. */
enum MHD_Result cc_sbd_respond_502(struct MHD_Connection *c, const char *sandbox_id, int port);
enum MHD_Result cc_sbd_respond_empty(struct MHD_Connection *c, unsigned status);

/* Records the first early error of a request (see early_status).  Always returns false. */
bool cc_sbd_req_fail(cc_sbd_req *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

const char *cc_sbd_header(struct MHD_Connection *c, const char *name);
const char *cc_sbd_query(struct MHD_Connection *c, const char *name);

/* Formats ms since the epoch as RFC 3339 UTC with milliseconds into out (>= 32 bytes). */
void cc_sbd_rfc3339(int64_t ms, char *out, size_t out_size);

#endif
