/*
 * cc_wterm: the worker's interactive terminal, GET /v1/terminal upgraded to a WebSocket:
 * a login shell on a PTY in the project's sandbox (E2B pty), relayed both ways.
 *
 *   GET /v1/terminal?project=<id>&cols=<n>&rows=<n>[&pid=<n>]
 *   Upgrade: websocket, Sec-WebSocket-Version: 13, Sec-WebSocket-Key
 *   Sec-WebSocket-Protocol: codecanvas.terminal.v1, bearer.<token>   (browsers)
 *     or Authorization: Bearer <token>                               (other clients)
 *
 * Server -> client: text {"type":"ready","pid":N,"reattached":bool,"sandboxRestored"?}, then
 * binary frames of terminal output, then {"type":"exit","exitCode":N,"status":"..."} and a
 * close; {"type":"error","code","message"} and a close when it cannot run.
 * Client -> client: binary (or text that is not a control message) = keys typed; text
 * {"type":"resize","cols","rows"} and {"type":"kill"} (ends the shell).  A client that goes
 * away without "kill" leaves the shell running: a reconnect with pid=N reattaches to it (a
 * network blip loses the output produced meanwhile, not the shell).
 *
 * Authentication is the bearer token of every request; the project is the caller's own (as
 * for every operation), so one user's terminal is never reachable by another: a pid is only
 * ever looked up in the caller's project's sandbox.
 *
 * Threads: the handshake is checked in the HTTP front's event loop; the token, the rate limit
 * and the project's sandbox (which may be created or resumed) on a pool thread (cc_wfront_defer).
 * After the upgrade the session's own thread reads the socket and a second one runs the E2B
 * stream (start or attach) and writes output frames.  Writes to the socket are serialised by a
 * mutex.  The worker counts open sessions (terminals) and waits for them when it stops.
 */
#define _GNU_SOURCE
#include "cc_wterm.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cc_wfront.h"
#include "cc_worker_internal.h"
#include "cc_wsnap.h"
#include "cc_wws.h"

#define SUBPROTOCOL "codecanvas.terminal.v1"
#define MAX_CLIENT_MESSAGE 65536

typedef struct {
  cc_worker *w;
  char user[256], project[256];
  cc_e2b_sandbox sb;
  bool restored;
  uint16_t cols, rows;
  uint32_t attach_pid; /* 0: start a new shell */
  MHD_socket sock;
  struct MHD_UpgradeResponseHandle *urh;
  pthread_mutex_t write_mu;
  bool broken; /* a write failed: the client is gone */
  atomic_int kill, detach, pump_done;
  atomic_uint pid;
  pthread_t pump;
  char token[600];    /* until it is checked */
  char accept[29];    /* Sec-WebSocket-Accept */
  bool subprotocol;   /* the client offered SUBPROTOCOL */
  char *extra;        /* bytes read past the upgrade request */
  size_t extra_len;
} session;

static void session_free(session *s) {
  explicit_bzero(s->token, sizeof s->token);
  pthread_mutex_destroy(&s->write_mu);
  free(s->extra);
  free(s);
}

/* ------------------------------------------------------------------ frames out */

static bool send_all(MHD_socket fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    c += k;
    n -= (size_t)k;
  }
  return true;
}

static bool ws_send(session *s, int opcode, const void *data, size_t len) {
  uint8_t hdr[10];
  size_t hl = cc_ws_frame_header(opcode, len, hdr);
  pthread_mutex_lock(&s->write_mu);
  bool ok = !s->broken && send_all(s->sock, hdr, hl) && (len == 0 || send_all(s->sock, data, len));
  if (!ok) s->broken = true;
  pthread_mutex_unlock(&s->write_mu);
  return ok;
}

static void ws_send_json(session *s, cJSON *o) {
  char *t = o ? cJSON_PrintUnformatted(o) : NULL;
  if (t) ws_send(s, CC_WS_TEXT, t, strlen(t));
  cJSON_free(t);
  cJSON_Delete(o);
}

static void ws_close(session *s, unsigned code, const char *reason) {
  uint8_t b[125];
  size_t n = strlen(reason) > 100 ? 100 : strlen(reason);
  b[0] = (uint8_t)(code >> 8);
  b[1] = (uint8_t)code;
  memcpy(b + 2, reason, n);
  ws_send(s, CC_WS_CLOSE, b, n + 2);
}

static void send_error(session *s, const char *code, const char *message) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "type", "error");
  cJSON_AddStringToObject(o, "code", code);
  cJSON_AddStringToObject(o, "message", message);
  ws_send_json(s, o);
}

/* ------------------------------------------------------------------ the shell's stream */

static cc_e2b_action on_event(void *ctx, const cc_e2b_event *ev) {
  session *s = ctx;
  if (ev->type == CC_E2B_EVENT_START) {
    atomic_store(&s->pid, ev->pid);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "ready");
    cJSON_AddNumberToObject(o, "pid", ev->pid);
    cJSON_AddBoolToObject(o, "reattached", s->attach_pid != 0);
    if (s->restored) cJSON_AddTrueToObject(o, "sandboxRestored");
    ws_send_json(s, o);
  } else if (ev->type == CC_E2B_EVENT_PTY || ev->type == CC_E2B_EVENT_STDOUT ||
             ev->type == CC_E2B_EVENT_STDERR) {
    if (ev->len && !ws_send(s, CC_WS_BINARY, ev->data, ev->len)) return CC_E2B_DETACH;
  } else if (ev->type == CC_E2B_EVENT_END) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "exit");
    cJSON_AddNumberToObject(o, "exitCode", ev->exit_code);
    cJSON_AddStringToObject(o, "status", ev->status);
    ws_send_json(s, o);
  }
  return CC_E2B_CONTINUE;
}

static void *pump_main(void *arg) {
  session *s = arg;
  static const char *const args[] = {"-l"};
  static const cc_e2b_kv envs[] = {{"TERM", "xterm-256color"}, {"COLORTERM", "truecolor"}};
  cc_e2b_exec_opts o = {.cmd = "/bin/bash",
                        .args = args,
                        .args_count = 1,
                        .envs = envs,
                        .envs_count = 2,
                        .cancel = &s->kill,
                        .detach = &s->detach,
                        .pty_cols = s->cols,
                        .pty_rows = s->rows,
                        .on_event = on_event,
                        .ctx = s};
  cc_e2b_exec_result res;
  cc_e2b_error err = {0};
  cc_status st;
  if (s->attach_pid) {
    atomic_store(&s->pid, s->attach_pid);
    st = cc_e2b_attach(s->w->e2b, &s->sb, s->attach_pid, &o, &res, &err);
  } else {
    st = cc_e2b_exec(s->w->e2b, &s->sb, &o, &res, &err);
  }
  if (st != CC_OK) {
    send_error(s, cc_status_code(st),
               st == CC_NOT_FOUND && s->attach_pid ? "that terminal's process is gone"
                                                   : (err.message[0] ? err.message
                                                                     : cc_status_message(st)));
    ws_close(s, 1011, "terminal failed");
  } else if (res.ended || res.canceled) {
    if (res.canceled) {
      cJSON *x = cJSON_CreateObject();
      cJSON_AddStringToObject(x, "type", "exit");
      cJSON_AddNumberToObject(x, "exitCode", -1);
      cJSON_AddStringToObject(x, "status", "killed");
      ws_send_json(s, x);
    }
    ws_close(s, 1000, "the shell ended");
  }
  atomic_store(&s->pump_done, 1);
  return NULL;
}

/* ------------------------------------------------------------------ client messages */

static void on_control(session *s, const uint8_t *data, size_t len) {
  cJSON *o = cJSON_ParseWithLength((const char *)data, len);
  const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "type"));
  uint32_t pid = atomic_load(&s->pid);
  cc_e2b_error err = {0};
  if (type && strcmp(type, "resize") == 0) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "cols");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "rows");
    if (pid && cJSON_IsNumber(c) && cJSON_IsNumber(r) && c->valuedouble >= 1 &&
        c->valuedouble <= 1000 && r->valuedouble >= 1 && r->valuedouble <= 1000)
      cc_e2b_pty_resize(s->w->e2b, &s->sb, pid, (uint16_t)c->valuedouble,
                        (uint16_t)r->valuedouble, &err);
  } else if (type && strcmp(type, "kill") == 0) {
    atomic_store(&s->kill, 1);
  } else if (!type && pid) { /* not a control message: keys */
    cc_e2b_send_pty_input(s->w->e2b, &s->sb, pid, data, len, &err);
  }
  cJSON_Delete(o);
}

/* Reads the client until it closes, goes away, breaks the protocol, or the shell ends. */
static void read_loop(session *s, const char *extra, size_t extra_len) {
  cc_ws_decoder d;
  cc_ws_decoder_init(&d, MAX_CLIENT_MESSAGE);
  uint8_t buf[16384];
  const uint8_t *p = (const uint8_t *)extra;
  size_t n = extra_len;
  for (;;) {
    cc_ws_message m;
    int r;
    while (n > 0 && (r = cc_ws_feed(&d, &p, &n, &m)) != 0) {
      if (r < 0) {
        ws_close(s, (unsigned)d.close_code, "protocol error");
        goto out;
      }
      uint32_t pid = atomic_load(&s->pid);
      cc_e2b_error err = {0};
      switch (m.opcode) {
        case CC_WS_BINARY:
          if (pid) cc_e2b_send_pty_input(s->w->e2b, &s->sb, pid, m.data, m.len, &err);
          break;
        case CC_WS_TEXT:
          on_control(s, m.data, m.len);
          break;
        case CC_WS_PING:
          ws_send(s, CC_WS_PONG, m.data, m.len);
          break;
        case CC_WS_CLOSE:
          ws_close(s, 1000, "bye");
          goto out;
        default:
          break;
      }
    }
    if (atomic_load(&s->pump_done) || s->broken || atomic_load(&s->w->stopping)) goto out;
    struct pollfd pf = {.fd = s->sock, .events = POLLIN};
    int pr = poll(&pf, 1, 200);
    if (pr < 0 && errno != EINTR) goto out;
    if (pr <= 0) continue;
    ssize_t k = recv(s->sock, buf, sizeof buf, 0);
    if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (k <= 0) goto out; /* the client went away: the shell stays (detach) */
    p = buf;
    n = (size_t)k;
  }
out:
  cc_ws_decoder_free(&d);
}

/* The session's own thread, from the upgrade on: reads the client while the pump thread
 * writes the shell's output, then closes the connection. */
static void *session_main(void *arg) {
  session *s = arg;
  bool started = pthread_create(&s->pump, NULL, pump_main, s) == 0;
  if (!started) {
    send_error(s, "internal", "cannot start the terminal");
    ws_close(s, 1011, "internal");
  } else {
    read_loop(s, s->extra, s->extra_len);
    if (!atomic_load(&s->kill)) atomic_store(&s->detach, 1); /* leave the shell running */
    pthread_join(s->pump, NULL);
  }
  cc_wsnap_touch(s->w, s->user, s->project); /* what was typed may have changed files */
  MHD_upgrade_action(s->urh, MHD_UPGRADE_ACTION_CLOSE);
  atomic_long *open = &s->w->terminals;
  session_free(s);
  atomic_fetch_sub(open, 1);
  return NULL;
}

/* libmicrohttpd hands over the socket, in its event loop: the session goes to a thread. */
static void on_upgrade(void *cls, struct MHD_Connection *conn, void *req_cls,
                       const char *extra_in, size_t extra_in_size, MHD_socket sock,
                       struct MHD_UpgradeResponseHandle *urh) {
  (void)conn, (void)req_cls;
  session *s = cls;
  s->sock = sock;
  s->urh = urh;
  /* the socket may be non-blocking: our writes block (back-pressure), reads poll */
  int fl = fcntl(sock, F_GETFL);
  if (fl >= 0) fcntl(sock, F_SETFL, fl & ~O_NONBLOCK);
  if (extra_in_size && (s->extra = malloc(extra_in_size))) {
    memcpy(s->extra, extra_in, extra_in_size);
    s->extra_len = extra_in_size;
  }
  atomic_fetch_add(&s->w->terminals, 1);
  pthread_t th;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&th, &attr, session_main, s) != 0) {
    cc_worker *w = s->w;
    MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
    session_free(s);
    atomic_fetch_sub(&w->terminals, 1);
  }
  pthread_attr_destroy(&attr);
}

/* ------------------------------------------------------------------ the handshake */

static bool has_token(const char *list, const char *want) {
  if (!list) return false;
  size_t wl = strlen(want);
  for (const char *p = list; *p;) {
    while (*p == ' ' || *p == ',' || *p == '\t') p++;
    size_t n = strcspn(p, ",");
    size_t t = n;
    while (t && (p[t - 1] == ' ' || p[t - 1] == '\t')) t--;
    if (t == wl && strncasecmp(p, want, wl) == 0) return true;
    p += n;
  }
  return false;
}

/* The bearer token: Authorization, else the "bearer.<token>" subprotocol. */
static bool find_token(struct MHD_Connection *c, char *out, size_t cap) {
  const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
  if (h && strncasecmp(h, "Bearer ", 7) == 0) {
    snprintf(out, cap, "%s", h + 7);
    return out[0] != 0;
  }
  const char *sp = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Protocol");
  for (const char *p = sp; p && *p;) {
    while (*p == ' ' || *p == ',') p++;
    size_t n = strcspn(p, ", ");
    if (n > 7 && strncmp(p, "bearer.", 7) == 0 && n - 7 < cap) {
      memcpy(out, p + 7, n - 7);
      out[n - 7] = 0;
      return true;
    }
    p += n;
  }
  return false;
}

/* The worker's JSON error answer, before any upgrade. */
static struct MHD_Response *refusal(const char *code, const char *msg) {
  cJSON *o = cJSON_CreateObject();
  cJSON *e = cJSON_AddObjectToObject(o, "error");
  cJSON_AddFalseToObject(o, "ok");
  cJSON_AddStringToObject(e, "code", code);
  cJSON_AddStringToObject(e, "message", msg);
  char *body = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (!body) return NULL;
  struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
  cJSON_free(body);
  if (r) MHD_add_response_header(r, "Content-Type", "application/json");
  return r;
}

static enum MHD_Result refuse(cc_worker *w, struct MHD_Connection *c, cc_wreq *r, int http,
                              const char *code, const char *msg) {
  return cc_wfront_queue(w, c, r, http, refusal(code, msg));
}

static long query_long(struct MHD_Connection *c, const char *k, long lo, long hi, long dflt,
                       bool *bad) {
  const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, k);
  if (!v) return dflt;
  char *end;
  long x = strtol(v, &end, 10);
  if (!*v || *end || x < lo || x > hi) *bad = true;
  return x;
}

/* On the pool: who (the token), the rate limit, the project's sandbox (may create it), then
 * the upgrade. */
static void open_session(cc_worker *w, cc_wreq *r, cc_wjob *job, void *arg,
                         struct MHD_Connection *c) {
  (void)c;
  session *s = arg;
  int http = 0;
  const char *code = NULL;
  char why[600] = "";
  uint64_t epoch;
  if (cc_worker_token_user(w, s->token, strlen(s->token), s->user, sizeof s->user, &epoch) !=
      CC_OK) {
    http = 401, code = "unauthorized";
    snprintf(why, sizeof why, "unknown or revoked token");
  } else {
    cc_wfront_set_str(r->user, sizeof r->user, s->user);
    if (cc_wlimit_request(w->limit, s->user, cc_worker_now_ms()) != CC_OK) {
      http = 429, code = "rate_limited";
      snprintf(why, sizeof why, "too many requests for this user");
    } else {
      cc_status st = cc_wops_terminal_sandbox(w, s->user, s->project, &s->sb, &s->restored, why,
                                              sizeof why);
      if (st != CC_OK) http = cc_status_http(st), code = cc_status_code(st);
    }
  }
  explicit_bzero(s->token, sizeof s->token);
  if (code) {
    session_free(s);
    cc_wfront_answer(job, refusal(code, why), http);
    return;
  }
  struct MHD_Response *resp = MHD_create_response_for_upgrade(on_upgrade, s);
  if (!resp) {
    session_free(s);
    cc_wfront_answer(job, NULL, 500);
    return;
  }
  MHD_add_response_header(resp, "Upgrade", "websocket");
  MHD_add_response_header(resp, "Sec-WebSocket-Accept", s->accept);
  if (s->subprotocol) MHD_add_response_header(resp, "Sec-WebSocket-Protocol", SUBPROTOCOL);
  cc_wfront_answer(job, resp, MHD_HTTP_SWITCHING_PROTOCOLS); /* s is on_upgrade's now */
}

static void free_session_arg(void *arg) {
  session_free(arg);
}

enum MHD_Result cc_wterm_handle(cc_worker *w, struct MHD_Connection *c, cc_wreq *r) {
  const char *upg = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Upgrade");
  const char *con = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Connection");
  const char *ver = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Version");
  const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Key");
  char accept[29];
  if (!upg || strcasecmp(upg, "websocket") != 0 || !has_token(con, "upgrade"))
    return refuse(w, c, r, 400, "bad_request", "a WebSocket upgrade is expected");
  if (!ver || strcmp(ver, "13") != 0)
    return refuse(w, c, r, 400, "bad_request", "Sec-WebSocket-Version 13 is expected");
  if (!cc_ws_accept_key(key, accept))
    return refuse(w, c, r, 400, "bad_request", "invalid Sec-WebSocket-Key");
  /* who: the token of every request (checked on the pool: it may read the store) */
  char tok[600];
  if (!find_token(c, tok, sizeof tok)) return refuse(w, c, r, 401, "unauthorized", "missing token");
  /* what: the caller's own project */
  const char *project = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "project");
  bool bad = false;
  long cols = query_long(c, "cols", 1, 1000, 80, &bad);
  long rows = query_long(c, "rows", 1, 1000, 24, &bad);
  long pid = query_long(c, "pid", 1, 0x7fffffffL, 0, &bad);
  if (!project || !cc_proto_valid_project_id(project) || bad)
    return refuse(w, c, r, 400, "bad_request", "project (a project id), cols, rows, pid: invalid");
  session *s = calloc(1, sizeof *s);
  if (!s) return MHD_NO;
  s->w = w;
  snprintf(s->project, sizeof s->project, "%s", project);
  snprintf(s->token, sizeof s->token, "%s", tok);
  explicit_bzero(tok, sizeof tok);
  memcpy(s->accept, accept, sizeof accept);
  const char *sp = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Protocol");
  s->subprotocol = has_token(sp, SUBPROTOCOL);
  s->cols = (uint16_t)cols;
  s->rows = (uint16_t)rows;
  s->attach_pid = (uint32_t)pid;
  pthread_mutex_init(&s->write_mu, NULL);
  return cc_wfront_defer(w, c, r, open_session, s, free_session_arg);
}
