/*
 * cc_sbd_envd: envd's HTTP and Connect-RPC API for one sandbox (see cc_sbd_envd.h): routing
 * of envd requests, /health, /envs, the process.Process service and the WatchDir stream; the
 * file API (/files, the unary filesystem.Filesystem RPCs) is cc_sbd_files.c.
 *
 * Unary RPCs answer 200 with a JSON message or a Connect error with a string code and the
 * code's HTTP status.  Server streams (Start, Connect, WatchDir) answer 200
 * application/connect+json and write one envelope per event, each flushed as it is produced
 * by returning it from the MHD content reader; they end with the 0x02 end-of-stream envelope,
 * carrying the error if there was one (e2b-protocol.md §3.3) — except when the sandbox dies
 * under the stream (killed, timed out): then, as with E2B, the connection is cut after the
 * output already produced, with no end event and no end-of-stream, and the SDK reports the
 * sandbox gone (TimeoutError) after probing /health (502).
 */
#include "cc_sbd_envd.h"
#include "cc_sbd_files.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cc_connect.h"
#include "cc_sbx.h"

#define HOME "/home/user"
#define STDIN_TIMEOUT_MS 10000
#define WATCH_TAG "cc-sandboxd-watch" /* the tag of WatchDir's helper process */

/* ---------- small helpers ---------- */

static const char b64std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with padding into a new string (caller frees). */
char *cc_sbd_envd_b64(const uint8_t *d, size_t n, bool pad) {
  char *out = malloc(4 * ((n + 2) / 3) + 1);
  if (!out) return NULL;
  size_t o = 0, i = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t v = ((uint32_t)d[i] << 16) | ((uint32_t)d[i + 1] << 8) | d[i + 2];
    out[o++] = b64std[v >> 18];
    out[o++] = b64std[(v >> 12) & 63];
    out[o++] = b64std[(v >> 6) & 63];
    out[o++] = b64std[v & 63];
  }
  if (i < n) {
    uint32_t v = (uint32_t)d[i] << 16;
    if (i + 1 < n) v |= (uint32_t)d[i + 1] << 8;
    out[o++] = b64std[v >> 18];
    out[o++] = b64std[(v >> 12) & 63];
    if (i + 1 < n) out[o++] = b64std[(v >> 6) & 63];
    else if (pad) out[o++] = '=';
    if (pad) out[o++] = '=';
  }
  out[o] = 0;
  return out;
}

static int b64_val(int ch) {
  if (ch >= 'A' && ch <= 'Z') return ch - 'A';
  if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
  if (ch >= '0' && ch <= '9') return ch - '0' + 52;
  if (ch == '+' || ch == '-') return 62;
  if (ch == '/' || ch == '_') return 63;
  return -1;
}

/* Decodes standard or URL-safe base64, padded or not.  Returns false on bad input. */
static bool b64_decode(const char *s, uint8_t **out, size_t *out_len) {
  size_t n = strlen(s);
  uint8_t *buf = malloc(n / 4 * 3 + 3);
  if (!buf) return false;
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '=') break;
    int v = b64_val((unsigned char)s[i]);
    if (v < 0) {
      free(buf);
      return false;
    }
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      buf[o++] = (uint8_t)(acc >> bits);
    }
  }
  *out = buf;
  *out_len = o;
  return true;
}

/* envd path resolution for display (the runtime resolves again, inside the sandbox):
 * "" → /home/user, "~"/"~/x" → home, relative → under home, then cleaned lexically. */
bool cc_sbd_envd_resolve_path(const char *in, char *out, size_t out_size) {
  return cc_sbd_envd_resolve_path_as(false, in, out, out_size);
}

bool cc_sbd_envd_resolve_path_as(bool root, const char *in, char *out, size_t out_size) {
  char tmp[8192];
  const char *home = root ? "/root" : HOME;
  if (!in || !in[0]) snprintf(tmp, sizeof tmp, "%s", home);
  else if (strcmp(in, "~") == 0) snprintf(tmp, sizeof tmp, "%s", home);
  else if (strncmp(in, "~/", 2) == 0) snprintf(tmp, sizeof tmp, "%s/%s", home, in + 2);
  else if (in[0] == '~') return false;
  else if (in[0] == '/') snprintf(tmp, sizeof tmp, "%s", in);
  else snprintf(tmp, sizeof tmp, "%s/%s", home, in);
  /* clean: collapse "//" and "/./", drop a trailing "/" */
  size_t o = 0;
  for (size_t i = 0; tmp[i]; i++) {
    if (tmp[i] == '/') {
      if (o > 0 && out[o - 1] == '/') continue;
      if (tmp[i + 1] == '.' && (tmp[i + 2] == '/' || tmp[i + 2] == 0)) {
        i++;
        if (o == 0) out[o++] = '/';
        continue;
      }
    }
    if (o + 1 >= out_size) return false;
    out[o++] = tmp[i];
  }
  if (o > 1 && out[o - 1] == '/') o--;
  if (o == 0) out[o++] = '/';
  out[o] = 0;
  return true;
}

static cc_connect_code connect_code_of(cc_sbx_errkind k) {
  switch (k) {
  case CC_SBX_ERR_NOT_FOUND: return CC_CONNECT_NOT_FOUND;
  case CC_SBX_ERR_NOT_DIR:
  case CC_SBX_ERR_IS_DIR:
  case CC_SBX_ERR_INVALID_PATH:
  case CC_SBX_ERR_INVALID_ARG: return CC_CONNECT_INVALID_ARGUMENT;
  case CC_SBX_ERR_EXISTS: return CC_CONNECT_ALREADY_EXISTS;
  case CC_SBX_ERR_NO_SPACE:
  case CC_SBX_ERR_LIMIT: return CC_CONNECT_RESOURCE_EXHAUSTED;
  case CC_SBX_ERR_PERMISSION: return CC_CONNECT_PERMISSION_DENIED;
  case CC_SBX_ERR_LOOP: return CC_CONNECT_FAILED_PRECONDITION;
  case CC_SBX_ERR_TIMEOUT: return CC_CONNECT_DEADLINE_EXCEEDED;
  case CC_SBX_ERR_GONE: return CC_CONNECT_UNAVAILABLE;
  default: return CC_CONNECT_INTERNAL;
  }
}

const char *cc_sbd_envd_err_msg(const cc_sbx_err *e, cc_status st) {
  return e->msg[0] ? e->msg : cc_status_message(st);
}

enum MHD_Result cc_sbd_envd_rpc_error(cc_sbd_req *r, const cc_sbx_err *e, cc_status st) {
  cc_connect_code code = e->kind != CC_SBX_ERR_NONE ? connect_code_of(e->kind)
                         : st == CC_SANDBOX_UNAVAILABLE ? CC_CONNECT_UNAVAILABLE
                         : st == CC_NOT_FOUND           ? CC_CONNECT_NOT_FOUND
                         : st == CC_BAD_REQUEST         ? CC_CONNECT_INVALID_ARGUMENT
                                                        : CC_CONNECT_INTERNAL;
  return cc_sbd_respond_connect_error(r->conn, code, "%s", cc_sbd_envd_err_msg(e, st));
}

enum MHD_Result cc_sbd_envd_rpc_ok(cc_sbd_req *r, cJSON *msg) {
  char *s = cJSON_PrintUnformatted(msg);
  cJSON_Delete(msg);
  if (!s) return cc_sbd_respond_connect_error(r->conn, CC_CONNECT_INTERNAL, "out of memory");
  enum MHD_Result res = cc_sbd_respond_raw(r->conn, 200, "application/json", s, strlen(s));
  free(s);
  return res;
}

/* Checks the Basic-auth user of an RPC.  envd's users here are "user" (the default) and
 * "root" (uid 0 inside where the runtime has root_inside, else "user"; docs/sandboxd.md). */
bool cc_sbd_envd_user_ok(const char *name) {
  return !name || !name[0] || strcmp(name, "user") == 0 || strcmp(name, "root") == 0;
}

static const char *json_str(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Resolves a ProcessSelector {pid}|{tag} to a pid. */
static bool selector_pid(cc_sbd_req *r, const cJSON *msg, uint32_t *pid, enum MHD_Result *res) {
  const cJSON *sel = cJSON_GetObjectItemCaseSensitive(msg, "process");
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(sel, "pid");
  const char *tag = json_str(sel, "tag");
  if (cJSON_IsNumber(p) && p->valuedouble >= 0 && p->valuedouble <= 4294967295.0) {
    *pid = (uint32_t)p->valuedouble;
    return true;
  }
  if (cJSON_IsString(p)) {
    *pid = (uint32_t)strtoul(p->valuestring, NULL, 10);
    return true;
  }
  if (tag) {
    if (cc_sbx_proc_find_tag(r->sb->sbx, tag, pid) == CC_OK) return true;
    *res = cc_sbd_respond_connect_error(r->conn, CC_CONNECT_NOT_FOUND,
                                        "process with tag %s not found", tag);
    return false;
  }
  *res = cc_sbd_respond_connect_error(r->conn, CC_CONNECT_INVALID_ARGUMENT,
                                      "invalid process selector");
  return false;
}

/* ---------- streams ---------- */

typedef struct {
  cc_sbd_sandbox *sb; /* reference */
  cc_sbx_sub *sub;
  int conn_fd;
  int keepalive_ms;
  int64_t last_sent_ms;
  int64_t deadline_ms; /* 0: none (Connect stream's Connect-Timeout-Ms) */
  uint8_t *out;
  size_t out_len, out_off, out_cap;
  bool done;
  bool drop; /* the sandbox died under the stream: end it without end-of-stream (E2B) */
  /* WatchDir: the stream relays the lines of an inotify helper process (watch_pid) */
  bool watch;
  bool watch_started;
  uint32_t watch_pid;
  char line[8192];
  size_t line_len;
  char err[512];
  size_t err_len;
} stream;

static bool push_envelope(stream *s, uint8_t flags, const char *payload) {
  size_t n = strlen(payload);
  if (s->out_len + n + 5 > s->out_cap) {
    size_t nc = s->out_cap ? s->out_cap : 1024;
    while (nc < s->out_len + n + 5) nc *= 2;
    uint8_t *nb = realloc(s->out, nc);
    if (!nb) return false;
    s->out = nb;
    s->out_cap = nc;
  }
  cc_connect_envelope_header(s->out + s->out_len, flags, (uint32_t)n);
  memcpy(s->out + s->out_len + 5, payload, n);
  s->out_len += n + 5;
  return true;
}

static bool push_json(stream *s, uint8_t flags, cJSON *msg) {
  char *p = cJSON_PrintUnformatted(msg);
  cJSON_Delete(msg);
  if (!p) return false;
  bool ok = push_envelope(s, flags, p);
  free(p);
  return ok;
}

/* Queues the end-of-stream envelope; code 0 = success. */
static void push_eos(stream *s, cc_connect_code code, const char *msg) {
  cJSON *o = cJSON_CreateObject();
  if (code != CC_CONNECT_OK) {
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "code", cc_connect_code_name(code));
    cJSON_AddStringToObject(e, "message", msg);
  }
  if (!push_json(s, CC_CONNECT_FLAG_END_STREAM, o)) push_envelope(s, CC_CONNECT_FLAG_END_STREAM, "{}");
  s->done = true;
}

static cJSON *event_wrap(const char *kind, cJSON *body) {
  cJSON *o = cJSON_CreateObject();
  cJSON *ev = cJSON_AddObjectToObject(o, "event");
  cJSON_AddItemToObject(ev, kind, body);
  return o;
}

/* Turns one runtime event into envelopes. */
static void push_event(stream *s, const cc_sbx_event *ev) {
  cJSON *body = cJSON_CreateObject();
  switch (ev->type) {
  case CC_SBX_EV_START:
    cJSON_AddNumberToObject(body, "pid", ev->pid);
    push_json(s, 0, event_wrap("start", body));
    break;
  case CC_SBX_EV_STDOUT:
  case CC_SBX_EV_STDERR:
  case CC_SBX_EV_PTY: {
    char *b = cc_sbd_envd_b64(ev->data, ev->len, true);
    cJSON_AddStringToObject(body,
                            ev->type == CC_SBX_EV_STDOUT   ? "stdout"
                            : ev->type == CC_SBX_EV_STDERR ? "stderr"
                                                           : "pty",
                            b ? b : "");
    free(b);
    push_json(s, 0, event_wrap("data", body));
    break;
  }
  case CC_SBX_EV_END:
    if (ev->sandbox_gone) { /* killed with its sandbox: E2B's stream just breaks off */
      cJSON_Delete(body);
      s->done = s->drop = true;
      break;
    }
    if (ev->exit_code != 0) cJSON_AddNumberToObject(body, "exitCode", ev->exit_code);
    if (ev->exited) cJSON_AddTrueToObject(body, "exited");
    cJSON_AddStringToObject(body, "status", ev->status);
    if (!ev->exited || ev->exit_code != 0) cJSON_AddStringToObject(body, "error", ev->status);
    push_json(s, 0, event_wrap("end", body));
    push_eos(s, CC_CONNECT_OK, NULL);
    break;
  default:
    cJSON_Delete(body);
    break;
  }
}

/* One line of the WatchDir helper: "READY" or "<TYPE> <JSON string name>". */
static void watch_line(stream *s, const char *line) {
  if (strcmp(line, "READY") == 0) {
    if (!s->watch_started) {
      s->watch_started = true;
      cJSON *o = cJSON_CreateObject();
      cJSON_AddObjectToObject(o, "start");
      push_json(s, 0, o);
    }
    return;
  }
  const char *sp = strchr(line, ' ');
  if (!sp || !s->watch_started) return;
  cJSON *name = cJSON_Parse(sp + 1);
  if (cJSON_IsString(name)) {
    char type[48];
    snprintf(type, sizeof type, "EVENT_TYPE_%.*s", (int)(sp - line), line);
    cJSON *o = cJSON_CreateObject();
    cJSON *ev = cJSON_AddObjectToObject(o, "filesystem");
    cJSON_AddStringToObject(ev, "name", name->valuestring);
    cJSON_AddStringToObject(ev, "type", type);
    push_json(s, 0, o);
  }
  cJSON_Delete(name);
}

/* Turns a runtime event of the WatchDir helper into envelopes. */
static void push_watch_event(stream *s, const cc_sbx_event *ev) {
  switch (ev->type) {
  case CC_SBX_EV_STDOUT:
    for (size_t i = 0; i < ev->len; i++) {
      char ch = (char)ev->data[i];
      if (ch == '\n') {
        s->line[s->line_len] = 0;
        watch_line(s, s->line);
        s->line_len = 0;
      } else if (s->line_len + 1 < sizeof s->line) {
        s->line[s->line_len++] = ch;
      }
    }
    break;
  case CC_SBX_EV_STDERR: {
    size_t n = ev->len < sizeof s->err - 1 - s->err_len ? ev->len : sizeof s->err - 1 - s->err_len;
    memcpy(s->err + s->err_len, ev->data, n);
    s->err_len += n;
    s->err[s->err_len] = 0;
    break;
  }
  case CC_SBX_EV_END:
    s->watch_pid = 0;
    if (ev->sandbox_gone) { /* as for a process stream */
      s->done = s->drop = true;
      break;
    }
    if (s->watch_started) push_eos(s, CC_CONNECT_OK, NULL);
    else push_eos(s, CC_CONNECT_INTERNAL, s->err_len ? s->err : "the directory watcher ended");
    break;
  default:
    break;
  }
}

static bool client_gone(int fd) {
  if (fd < 0) return false;
  struct pollfd p = {.fd = fd, .events = POLLRDHUP};
  return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* MHD content reader: blocks until the next envelope exists, returns it (so each envelope
 * is written and flushed on its own), then END_OF_STREAM after the 0x02 envelope. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
  stream *s = cls;
  for (;;) {
    if (s->out_off < s->out_len) {
      size_t n = s->out_len - s->out_off;
      if (n > max) n = max;
      memcpy(buf, s->out + s->out_off, n);
      s->out_off += n;
      s->last_sent_ms = cc_sbd_now_ms();
      return (ssize_t)n;
    }
    if (s->done) return s->drop ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
    s->out_len = s->out_off = 0;
    int64_t now = cc_sbd_now_ms();
    if (s->deadline_ms && now >= s->deadline_ms) {
      push_eos(s, CC_CONNECT_DEADLINE_EXCEEDED, "context deadline exceeded");
      continue;
    }
    int64_t wait = s->last_sent_ms + s->keepalive_ms - now;
    if (wait > 1000) wait = 1000;
    if (wait < 0) wait = 0;
    if (s->deadline_ms && s->deadline_ms - now < wait) wait = s->deadline_ms - now;
    /* wait for an event or for the client to hang up, whichever comes first */
    int sub_fd = cc_sbx_sub_fd(s->sub);
    if (sub_fd >= 0 && s->conn_fd >= 0) {
      struct pollfd p[2] = {{.fd = sub_fd, .events = POLLIN}, {.fd = s->conn_fd, .events = POLLRDHUP}};
      if (poll(p, 2, (int)wait) > 0 && (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR)))
        return MHD_CONTENT_READER_END_WITH_ERROR;
      wait = 0;
    }
    cc_sbx_event ev;
    cc_status st = cc_sbx_sub_next(s->sub, (int)wait, &ev);
    if (st == CC_NOT_FOUND) {
      push_eos(s, CC_CONNECT_OK, NULL);
      continue;
    }
    if (st != CC_OK) {
      push_eos(s, CC_CONNECT_UNAVAILABLE, "sandbox is not running anymore");
      continue;
    }
    if (ev.type != CC_SBX_EV_NONE) {
      if (s->watch) push_watch_event(s, &ev);
      else push_event(s, &ev);
      continue;
    }
    if (client_gone(s->conn_fd)) return MHD_CONTENT_READER_END_WITH_ERROR;
    if (cc_sbd_now_ms() - s->last_sent_ms >= s->keepalive_ms && (!s->watch || s->watch_started)) {
      if (s->watch) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddObjectToObject(o, "keepalive");
        push_json(s, 0, o);
      } else {
        push_json(s, 0, event_wrap("keepalive", cJSON_CreateObject()));
      }
    }
  }
}

static void stream_free(void *cls) {
  stream *s = cls;
  if (s->watch && s->watch_pid) cc_sbx_proc_signal(s->sb->sbx, s->watch_pid, 9, NULL);
  cc_sbx_sub_free(s->sub);
  cc_sbd_unref(s->sb);
  free(s->out);
  free(s);
}

static stream *stream_new(cc_sbd_req *r) {
  stream *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->sb = r->sb;
  cc_sbd_ref(r->sb);
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  s->conn_fd = ci ? ci->connect_fd : -1;
  const char *ka = cc_sbd_header(r->conn, "Keepalive-Ping-Interval");
  long kas = 90;
  if (ka) {
    char *end;
    long v = strtol(ka, &end, 10);
    if (!*end && v > 0 && v < 86400) kas = v;
  }
  s->keepalive_ms = (int)(kas * 1000);
  s->last_sent_ms = cc_sbd_now_ms();
  return s;
}

/* Sends the stream response (takes ownership of s). */
static enum MHD_Result stream_respond(cc_sbd_req *r, stream *s) {
  struct MHD_Response *resp =
      MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_read, s, stream_free);
  if (!resp) {
    stream_free(s);
    return MHD_NO;
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/connect+json");
  enum MHD_Result res = MHD_queue_response(r->conn, 200, resp);
  MHD_destroy_response(resp);
  return res;
}

/* A stream that carries only an end-of-stream error (errors on streams are HTTP 200). */
static enum MHD_Result stream_error(cc_sbd_req *r, cc_connect_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum MHD_Result stream_error(cc_sbd_req *r, cc_connect_code code, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  stream s = {0};
  push_eos(&s, code, msg);
  enum MHD_Result res =
      cc_sbd_respond_raw(r->conn, 200, "application/connect+json", s.out, s.out_len);
  free(s.out);
  return res;
}

typedef struct {
  cJSON *msg;
  int count;
  bool bad; /* a compressed, second or non-JSON envelope */
} envelope_ctx;

/* Takes the one request envelope; anything else marks the request bad and stops reading. */
static int take_envelope(void *ctx, unsigned flags, const uint8_t *p, size_t n) {
  envelope_ctx *e = ctx;
  if ((flags & CC_CONNECT_FLAG_COMPRESSED) || e->count++ > 0) {
    e->bad = true;
    return 1;
  }
  e->msg = cJSON_ParseWithLength((const char *)p, n);
  e->bad = !e->msg;
  return e->bad;
}

/* Parses the single request envelope of a server-streaming call. */
static cJSON *stream_request(cc_sbd_req *r) {
  cc_envelope_reader rd;
  envelope_ctx e = {0};
  cc_connect_reader_init(&rd, r->srv->cfg.max_body);
  cc_status st = cc_envelope_reader_feed(&rd, r->body, r->len, take_envelope, &e);
  bool complete = cc_envelope_reader_idle(&rd);
  cc_envelope_reader_cleanup(&rd);
  if (st != CC_OK || e.bad || !complete || e.count != 1) {
    cJSON_Delete(e.msg);
    return NULL;
  }
  return e.msg;
}

static cc_sbx_env *env_array(const cJSON *o, size_t *n) {
  *n = 0;
  if (!cJSON_IsObject(o)) return NULL;
  size_t cnt = (size_t)cJSON_GetArraySize(o);
  cc_sbx_env *v = calloc(cnt ? cnt : 1, sizeof *v);
  if (!v) return NULL;
  const cJSON *it;
  cJSON_ArrayForEach(it, o) {
    if (!cJSON_IsString(it)) continue;
    v[*n].name = it->string;
    v[*n].value = it->valuestring;
    (*n)++;
  }
  return v;
}

static long header_timeout_ms(cc_sbd_req *r) {
  const char *t = cc_sbd_header(r->conn, "Connect-Timeout-Ms");
  if (!t) return 0;
  char *end;
  long v = strtol(t, &end, 10);
  return (*end || v < 0) ? 0 : v;
}

/* A uint32 of a JSON message: a number or a decimal string (protojson); absent = 0. */
static bool json_u32(const cJSON *o, const char *k, uint32_t *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  *out = 0;
  if (!v || cJSON_IsNull(v)) return true;
  double d;
  if (cJSON_IsNumber(v)) {
    d = v->valuedouble;
  } else if (cJSON_IsString(v) && v->valuestring[0]) {
    char *end;
    d = strtod(v->valuestring, &end);
    if (*end) return false;
  } else {
    return false;
  }
  if (!(d >= 0 && d <= 4294967295.0) || d != (double)(uint32_t)d) return false;
  *out = (uint32_t)d;
  return true;
}

/* The PTY message {size:{cols,rows}} of Start and Update.  false: not given (absent or null).
 * A size that does not fit a terminal (each at most 65535) sets *bad. */
static bool pty_size(const cJSON *msg, uint16_t *cols, uint16_t *rows, bool *bad) {
  const cJSON *pty = cJSON_GetObjectItemCaseSensitive(msg, "pty");
  *bad = false;
  if (!pty || cJSON_IsNull(pty)) return false;
  const cJSON *size = cJSON_GetObjectItemCaseSensitive(pty, "size");
  uint32_t c = 0, w = 0;
  if (!json_u32(size, "cols", &c) || !json_u32(size, "rows", &w) || c > 65535 || w > 65535)
    *bad = true;
  *cols = (uint16_t)c;
  *rows = (uint16_t)w;
  return true;
}

static enum MHD_Result process_start(cc_sbd_req *r, cJSON *msg) {
  const cJSON *proc = cJSON_GetObjectItemCaseSensitive(msg, "process");
  const char *cmd = json_str(proc, "cmd");
  if (!cmd || !cmd[0]) return stream_error(r, CC_CONNECT_INVALID_ARGUMENT, "process.cmd is required");
  uint16_t cols = 0, rows = 0;
  bool bad_size;
  bool pty = pty_size(msg, &cols, &rows, &bad_size);
  if (bad_size) return stream_error(r, CC_CONNECT_INVALID_ARGUMENT, "invalid pty size");
  const cJSON *args = cJSON_GetObjectItemCaseSensitive(proc, "args");
  size_t n_args = (size_t)(cJSON_IsArray(args) ? cJSON_GetArraySize(args) : 0);
  const char **argv = calloc(n_args ? n_args : 1, sizeof *argv);
  size_t n_envs = 0;
  cc_sbx_env *envs = env_array(cJSON_GetObjectItemCaseSensitive(proc, "envs"), &n_envs);
  if (!argv) {
    free(envs);
    return stream_error(r, CC_CONNECT_INTERNAL, "out of memory");
  }
  for (size_t i = 0; i < n_args; i++) {
    const cJSON *a = cJSON_GetArrayItem(args, (int)i);
    argv[i] = cJSON_IsString(a) ? a->valuestring : "";
  }
  const cJSON *in = cJSON_GetObjectItemCaseSensitive(msg, "stdin");
  cc_sbx_proc_spec spec = {
    .cmd = cmd,
    .args = argv,
    .n_args = n_args,
    .envs = envs,
    .n_envs = n_envs,
    .cwd = json_str(proc, "cwd"),
    .tag = json_str(msg, "tag"),
    .stdin_pipe = in ? cJSON_IsTrue(in) : true, /* a pty's input is its terminal */
    .timeout_ms = (uint64_t)header_timeout_ms(r),
    .pty = pty,
    .pty_cols = cols,
    .pty_rows = rows,
    .as_root = r->as_root,
  };
  stream *s = stream_new(r);
  uint32_t pid = 0;
  cc_sbx_err err = {0};
  cc_status st = s ? cc_sbx_proc_start(r->sb->sbx, &spec, &pid, &s->sub, &err) : CC_INTERNAL;
  free(argv);
  free(envs);
  if (st != CC_OK) {
    if (s) stream_free(s);
    cc_connect_code code = err.kind != CC_SBX_ERR_NONE ? connect_code_of(err.kind)
                           : st == CC_SANDBOX_UNAVAILABLE ? CC_CONNECT_UNAVAILABLE
                                                          : CC_CONNECT_INTERNAL;
    return stream_error(r, code, "%s", cc_sbd_envd_err_msg(&err, st));
  }
  return stream_respond(r, s);
}

static enum MHD_Result process_connect(cc_sbd_req *r, cJSON *msg) {
  uint32_t pid;
  const cJSON *sel = cJSON_GetObjectItemCaseSensitive(msg, "process");
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(sel, "pid");
  const char *tag = json_str(sel, "tag");
  if (cJSON_IsNumber(p)) pid = (uint32_t)p->valuedouble;
  else if (tag) {
    if (cc_sbx_proc_find_tag(r->sb->sbx, tag, &pid) != CC_OK)
      return stream_error(r, CC_CONNECT_NOT_FOUND, "process with tag %s not found", tag);
  } else {
    return stream_error(r, CC_CONNECT_INVALID_ARGUMENT, "invalid process selector");
  }
  stream *s = stream_new(r);
  if (!s) return stream_error(r, CC_CONNECT_INTERNAL, "out of memory");
  cc_sbx_err err = {0};
  cc_status st = cc_sbx_proc_subscribe(r->sb->sbx, pid, &s->sub, &err);
  if (st != CC_OK) {
    stream_free(s);
    if (st == CC_NOT_FOUND)
      return stream_error(r, CC_CONNECT_NOT_FOUND, "process with pid %u not found", pid);
    return stream_error(r, connect_code_of(err.kind), "%s", cc_sbd_envd_err_msg(&err, st));
  }
  long t = header_timeout_ms(r);
  if (t > 0) s->deadline_ms = cc_sbd_now_ms() + t;
  return stream_respond(r, s);
}

/* ---------- process unary ---------- */

static enum MHD_Result process_list(cc_sbd_req *r) {
  cc_sbx_proc_info *list = NULL;
  size_t n = 0;
  cc_status st = cc_sbx_proc_list(r->sb->sbx, &list, &n);
  if (st != CC_OK) {
    cc_sbx_err e = {0};
    return cc_sbd_envd_rpc_error(r, &e, st);
  }
  cJSON *o = cJSON_CreateObject();
  cJSON *arr = cJSON_AddArrayToObject(o, "processes");
  for (size_t i = 0; i < n; i++) {
    if (list[i].tag && strcmp(list[i].tag, WATCH_TAG) == 0) continue; /* WatchDir's helper */
    cJSON *p = cJSON_CreateObject();
    cJSON *cfg = cJSON_AddObjectToObject(p, "config");
    cJSON_AddStringToObject(cfg, "cmd", list[i].cmd ? list[i].cmd : "");
    cJSON *args = cJSON_AddArrayToObject(cfg, "args");
    for (size_t j = 0; j < list[i].n_args; j++)
      cJSON_AddItemToArray(args, cJSON_CreateString(list[i].args[j]));
    cJSON *envs = cJSON_AddObjectToObject(cfg, "envs");
    for (size_t j = 0; j < list[i].n_envs; j++)
      cJSON_AddStringToObject(envs, list[i].envs[j].name, list[i].envs[j].value);
    if (list[i].cwd) cJSON_AddStringToObject(cfg, "cwd", list[i].cwd);
    cJSON_AddNumberToObject(p, "pid", list[i].pid);
    if (list[i].tag) cJSON_AddStringToObject(p, "tag", list[i].tag);
    cJSON_AddItemToArray(arr, p);
  }
  cc_sbx_proc_list_free(list, n);
  return cc_sbd_envd_rpc_ok(r, o);
}

static enum MHD_Result process_send_input(cc_sbd_req *r, cJSON *msg) {
  uint32_t pid;
  enum MHD_Result res;
  if (!selector_pid(r, msg, &pid, &res)) return res;
  const cJSON *input = cJSON_GetObjectItemCaseSensitive(msg, "input");
  const char *b = json_str(input, "stdin");
  const char *tty = b ? NULL : json_str(input, "pty");
  if (tty) b = tty;
  if (!b) return cc_sbd_envd_rpc_ok(r, cJSON_CreateObject());
  uint8_t *data;
  size_t len;
  if (!b64_decode(b, &data, &len))
    return cc_sbd_respond_connect_error(r->conn, CC_CONNECT_INVALID_ARGUMENT, "invalid base64 input");
  cc_sbx_err err = {0};
  cc_status st = tty ? cc_sbx_proc_write_pty(r->sb->sbx, pid, data, len, STDIN_TIMEOUT_MS, &err)
                     : cc_sbx_proc_write_stdin(r->sb->sbx, pid, data, len, STDIN_TIMEOUT_MS, &err);
  free(data);
  if (st == CC_NOT_FOUND)
    return cc_sbd_respond_connect_error(r->conn, CC_CONNECT_NOT_FOUND,
                                        "process with pid %u not found", pid);
  if (tty && err.kind == CC_SBX_ERR_INVALID_ARG && err.sys_errno == ENOTTY)
    return cc_sbd_respond_connect_error(r->conn, CC_CONNECT_INTERNAL,
                                        "error writing to tty: tty not assigned to process — "
                                        "input should be written to the stdin, not the tty");
  if (err.kind == CC_SBX_ERR_STDIN_CLOSED)
    return cc_sbd_respond_connect_error(r->conn, CC_CONNECT_INTERNAL,
                                        "error writing to stdin: stdin not enabled or closed");
  if (st != CC_OK) return cc_sbd_envd_rpc_error(r, &err, st);
  return cc_sbd_envd_rpc_ok(r, cJSON_CreateObject());
}

static enum MHD_Result process_close_stdin(cc_sbd_req *r, cJSON *msg) {
  uint32_t pid;
  enum MHD_Result res;
  if (!selector_pid(r, msg, &pid, &res)) return res;
  cc_sbx_err err = {0};
  cc_status st = cc_sbx_proc_close_stdin(r->sb->sbx, pid, &err);
  if (st == CC_NOT_FOUND)
    return cc_sbd_respond_connect_error(r->conn, CC_CONNECT_NOT_FOUND,
                                        "process with pid %u not found", pid);
  if (err.kind == CC_SBX_ERR_INVALID_ARG && err.sys_errno == ENOTTY) /* a pty process */
    return cc_sbd_respond_connect_error(r->conn, CC_CONNECT_UNKNOWN, "error closing stdin: %s",
                                        err.msg);
  if (st != CC_OK) return cc_sbd_envd_rpc_error(r, &err, st);
  return cc_sbd_envd_rpc_ok(r, cJSON_CreateObject());
}

static enum MHD_Result process_signal(cc_sbd_req *r, cJSON *msg) {
  uint32_t pid;
  enum MHD_Result res;
  if (!selector_pid(r, msg, &pid, &res)) return res;
  const cJSON *sig = cJSON_GetObjectItemCaseSensitive(msg, "signal");
  int signo = 0;
  if (cJSON_IsString(sig)) {
    if (strcmp(sig->valuestring, "SIGNAL_SIGKILL") == 0) signo = 9;
    else if (strcmp(sig->valuestring, "SIGNAL_SIGTERM") == 0) signo = 15;
  } else if (cJSON_IsNumber(sig)) {
    signo = (int)sig->valuedouble;
  }
  if (signo != 9 && signo != 15)
    return cc_sbd_respond_connect_error(r->conn, CC_CONNECT_UNIMPLEMENTED, "invalid signal");
  cc_sbx_err err = {0};
  cc_status st = cc_sbx_proc_signal(r->sb->sbx, pid, signo, &err);
  if (st == CC_NOT_FOUND)
    return cc_sbd_respond_connect_error(r->conn, CC_CONNECT_NOT_FOUND,
                                        "process with pid %u not found", pid);
  if (st != CC_OK) return cc_sbd_envd_rpc_error(r, &err, st);
  return cc_sbd_envd_rpc_ok(r, cJSON_CreateObject());
}

static bool proc_running(cc_sbd_req *r, uint32_t pid) {
  cc_sbx_proc_info *list = NULL;
  size_t n = 0;
  bool found = false;
  if (cc_sbx_proc_list(r->sb->sbx, &list, &n) != CC_OK) return false;
  for (size_t i = 0; i < n; i++) found |= list[i].pid == pid;
  cc_sbx_proc_list_free(list, n);
  return found;
}

static enum MHD_Result process_update(cc_sbd_req *r, cJSON *msg) {
  uint32_t pid;
  enum MHD_Result res;
  if (!selector_pid(r, msg, &pid, &res)) return res;
  uint16_t cols, rows;
  bool bad_size;
  if (!pty_size(msg, &cols, &rows, &bad_size)) { /* nothing to update */
    if (!proc_running(r, pid))
      return cc_sbd_respond_connect_error(r->conn, CC_CONNECT_NOT_FOUND,
                                          "process with pid %u not found", pid);
    return cc_sbd_envd_rpc_ok(r, cJSON_CreateObject());
  }
  if (bad_size)
    return cc_sbd_respond_connect_error(r->conn, CC_CONNECT_INVALID_ARGUMENT, "invalid pty size");
  cc_sbx_err err = {0};
  cc_status st = cc_sbx_proc_resize_pty(r->sb->sbx, pid, cols, rows, &err);
  if (st == CC_NOT_FOUND)
    return cc_sbd_respond_connect_error(r->conn, CC_CONNECT_NOT_FOUND,
                                        "process with pid %u not found", pid);
  if (err.kind == CC_SBX_ERR_INVALID_ARG && err.sys_errno == ENOTTY)
    return cc_sbd_respond_connect_error(r->conn, CC_CONNECT_INTERNAL,
                                        "error resizing tty: tty not assigned to process");
  if (st != CC_OK) return cc_sbd_envd_rpc_error(r, &err, st);
  return cc_sbd_envd_rpc_ok(r, cJSON_CreateObject());
}

/* ---------- filesystem unary ---------- */

/* ---------- WatchDir ---------- */

/* The directory watcher: the runtime offers no inotify, so WatchDir runs this small python3
 * program inside the sandbox (as the sandbox user, in the sandbox's view of the files) and
 * relays its lines: "READY" once the watches are set, then "<TYPE> <JSON name>" per event,
 * named like fsnotify's (a moved-in file is CREATE, a moved-out one RENAME), relative to the
 * watched directory.  Without python3 in the sandbox WatchDir is unimplemented. */
static const char watch_program[] =
    "import ctypes, json, os, struct, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "root, rec = sys.argv[1], sys.argv[2] == \"1\"\n"
    "fd = libc.inotify_init1(os.O_CLOEXEC)\n"
    "MASK = 0x100 | 0x2 | 0x200 | 0x40 | 0x80 | 0x4\n"
    "wds = {}\n"
    "def add(d):\n"
    "    wd = libc.inotify_add_watch(fd, d.encode(), MASK)\n"
    "    if wd >= 0:\n"
    "        wds[wd] = d\n"
    "add(root)\n"
    "if rec:\n"
    "    for dp, dns, _ in os.walk(root):\n"
    "        for dn in dns:\n"
    "            add(os.path.join(dp, dn))\n"
    "print(\"READY\", flush=True)\n"
    "KINDS = ((0x100, \"CREATE\"), (0x80, \"CREATE\"), (0x2, \"WRITE\"), (0x200, \"REMOVE\"), (0x40, \"RENAME\"), (0x4, \"CHMOD\"))\n"
    "while True:\n"
    "    buf = os.read(fd, 65536)\n"
    "    i = 0\n"
    "    while i + 16 <= len(buf):\n"
    "        wd, mask, cookie, ln = struct.unpack_from(\"iIII\", buf, i)\n"
    "        name = buf[i + 16:i + 16 + ln].rstrip(b\"\\0\").decode(errors=\"replace\")\n"
    "        i += 16 + ln\n"
    "        d = wds.get(wd)\n"
    "        if d is None:\n"
    "            continue\n"
    "        full = os.path.join(d, name) if name else d\n"
    "        rel = os.path.relpath(full, root)\n"
    "        out = [k + \" \" + json.dumps(rel) for bit, k in KINDS if mask & bit]\n"
    "        if out:\n"
    "            print(\"\\n\".join(out), flush=True)\n"
    "        if rec and mask & 0x40000000 and mask & (0x100 | 0x80):\n"
    "            add(full)\n";


static enum MHD_Result fs_watch(cc_sbd_req *r, cJSON *msg) {
  const char *path = json_str(msg, "path");
  bool recursive = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(msg, "recursive"));
  char abs[4096];
  if (!cc_sbd_envd_resolve_path_as(r->as_root, path ? path : "", abs, sizeof abs))
    return stream_error(r, CC_CONNECT_INVALID_ARGUMENT, "invalid path %s", path ? path : "");
  cc_sbx_err err = {0};
  cc_sbx_entry e = {0};
  cc_status st = cc_sbx_fs_stat_as(r->sb->sbx, r->as_root, abs, &e, &err);
  cc_sbx_filetype type = e.type;
  cc_sbx_entry_cleanup(&e);
  if (st == CC_NOT_FOUND || err.kind == CC_SBX_ERR_NOT_FOUND)
    return stream_error(r, CC_CONNECT_NOT_FOUND, "path %s not found: %s", abs, cc_sbd_envd_err_msg(&err, st));
  if (st != CC_OK) return stream_error(r, connect_code_of(err.kind), "%s", cc_sbd_envd_err_msg(&err, st));
  if (type != CC_SBX_FT_DIR)
    return stream_error(r, CC_CONNECT_INVALID_ARGUMENT, "path %s not a directory", abs);
  const char *args[] = {"-c", watch_program, abs, recursive ? "1" : "0"};
  long t = header_timeout_ms(r);
  cc_sbx_proc_spec spec = {
    .cmd = "python3",
    .args = args,
    .n_args = 4,
    .tag = WATCH_TAG,
    .stdin_pipe = false,
    .timeout_ms = t > 0 ? (uint64_t)t + 1000 : 0,
    .as_root = r->as_root,
  };
  stream *s = stream_new(r);
  if (!s) return stream_error(r, CC_CONNECT_INTERNAL, "out of memory");
  s->watch = true;
  st = cc_sbx_proc_start(r->sb->sbx, &spec, &s->watch_pid, &s->sub, &err);
  if (st != CC_OK) {
    s->watch_pid = 0;
    stream_free(s);
    if (err.kind == CC_SBX_ERR_NOT_FOUND)
      return stream_error(r, CC_CONNECT_UNIMPLEMENTED,
                          "WatchDir needs python3 inside the sandbox: %s", cc_sbd_envd_err_msg(&err, st));
    return stream_error(r, connect_code_of(err.kind), "%s", cc_sbd_envd_err_msg(&err, st));
  }
  if (t > 0) s->deadline_ms = cc_sbd_now_ms() + t;
  return stream_respond(r, s);
}

static bool newest_insecure(const cc_sbd_sandbox *sb, void *arg) {
  (void)arg;
  return sb->token[0] == 0;
}

void cc_sbd_envd_route_by_credentials(cc_sbd_req *r) {
  const char *tok = cc_sbd_header(r->conn, "X-Access-Token");
  if (tok) {
    r->sb = cc_sbd_find_by_token(r->srv, tok);
    if (!r->sb) {
      char id[CC_SBD_ID_LEN + 1];
      if (cc_sbd_gone_token(r->srv, tok, id)) snprintf(r->sandbox_id, sizeof r->sandbox_id, "%s", id);
      else r->bad_credentials = true;
    }
  } else if (strcmp(r->url, "/files") == 0 && cc_sbd_query(r->conn, "signature")) {
    r->sb = cc_sbd_files_find_signed(r);
    r->bad_credentials = !r->sb;
  } else {
    r->sb = cc_sbd_find_matching(r->srv, newest_insecure, NULL);
  }
  if (r->sb) snprintf(r->sandbox_id, sizeof r->sandbox_id, "%s", r->sb->id);
}

bool cc_sbd_envd_path(const char *url) {
  return strcmp(url, "/files") == 0 || strcmp(url, "/health") == 0 ||
         strcmp(url, "/envs") == 0 || strncmp(url, "/process.Process/", 17) == 0 ||
         strncmp(url, "/filesystem.Filesystem/", 23) == 0;
}

/* ---------- entry points ---------- */

static bool token_ok(cc_sbd_req *r) {
  if (!r->sb->token[0]) return true;
  const char *tok = cc_sbd_header(r->conn, "X-Access-Token");
  return tok && strcmp(tok, r->sb->token) == 0;
}

void cc_sbd_envd_begin(cc_sbd_req *r) {
  if (!r->sb) return; /* answered with 502/401 once the body is read */
  if (strcmp(r->url, "/files") == 0 && strcmp(r->method, "POST") == 0) {
    cc_sbd_files_begin_upload(r);
  }
}

enum MHD_Result cc_sbd_envd_handle(cc_sbd_req *r) {
  const char *url = r->url;
  if (!r->sb && r->bad_credentials)
    return cc_sbd_respond_error(r->conn, 401,
                                strcmp(url, "/files") == 0 && !cc_sbd_header(r->conn, "X-Access-Token")
                                    ? "invalid signature"
                                    : "unauthorized access, please provide a valid access token or "
                                      "method signing if supported");
  if (!r->sb) return cc_sbd_respond_502(r->conn, r->sandbox_id, -1);
  if (strcmp(url, "/health") == 0) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    enum MHD_Result res = MHD_queue_response(r->conn, 204, resp);
    MHD_destroy_response(resp);
    return res;
  }
  if (strcmp(url, "/files") == 0) return cc_sbd_files_handle(r);
  if (!token_ok(r))
    return cc_sbd_respond_error(r->conn, 401,
                                "unauthorized access, please provide a valid access token or "
                                "method signing if supported");
  if (strcmp(url, "/envs") == 0) return cc_sbd_respond_json(r->conn, 200, cJSON_Duplicate(r->sb->env_vars, 1));
  bool is_proc = strncmp(url, "/process.Process/", 17) == 0;
  bool is_fs = strncmp(url, "/filesystem.Filesystem/", 23) == 0;
  if (!is_proc && !is_fs) return cc_sbd_respond_error(r->conn, 404, "not found");
  const char *method = url + (is_proc ? 17 : 23);
  if (strcmp(r->method, "POST") != 0)
    return cc_sbd_respond_connect_error(r->conn, CC_CONNECT_UNIMPLEMENTED, "only POST is supported");
  if (r->too_large)
    return cc_sbd_respond_connect_error(r->conn, CC_CONNECT_RESOURCE_EXHAUSTED,
                                        "request body larger than %zu bytes", r->srv->cfg.max_body);
  char *pass = NULL;
  char *user = MHD_basic_auth_get_username_password(r->conn, &pass);
  bool uok = cc_sbd_envd_user_ok(user);
  r->as_root = uok && user && strcmp(user, "root") == 0 && r->srv->root_inside;
  char ubuf[128];
  snprintf(ubuf, sizeof ubuf, "%s", user ? user : "");
  if (user) MHD_free(user);
  if (pass) MHD_free(pass);

  bool streaming = is_proc && (strcmp(method, "Start") == 0 || strcmp(method, "Connect") == 0);
  if (is_fs && strcmp(method, "WatchDir") == 0) {
    if (!uok) return stream_error(r, CC_CONNECT_UNAUTHENTICATED, "invalid username: '%s'", ubuf);
    cJSON *msg = stream_request(r);
    if (!msg) return stream_error(r, CC_CONNECT_INVALID_ARGUMENT, "request must be one JSON envelope");
    enum MHD_Result res = fs_watch(r, msg);
    cJSON_Delete(msg);
    return res;
  }
  if (streaming) {
    if (!uok) return stream_error(r, CC_CONNECT_UNAUTHENTICATED, "invalid username: '%s'", ubuf);
    cJSON *msg = stream_request(r);
    if (!msg) return stream_error(r, CC_CONNECT_INVALID_ARGUMENT, "request must be one JSON envelope");
    enum MHD_Result res = method[0] == 'S' ? process_start(r, msg) : process_connect(r, msg);
    cJSON_Delete(msg);
    return res;
  }
  if (!uok)
    return cc_sbd_respond_connect_error(r->conn, CC_CONNECT_UNAUTHENTICATED,
                                        "invalid username: '%s'", ubuf);
  cJSON *msg = r->len ? cJSON_ParseWithLength(r->body, r->len) : cJSON_CreateObject();
  if (!cJSON_IsObject(msg)) {
    cJSON_Delete(msg);
    return cc_sbd_respond_connect_error(r->conn, CC_CONNECT_INVALID_ARGUMENT,
                                        "request body must be a JSON object");
  }
  enum MHD_Result res;
  if (is_fs) res = cc_sbd_files_rpc(r, method, msg);
  else if (strcmp(method, "List") == 0) res = process_list(r);
  else if (strcmp(method, "SendInput") == 0) res = process_send_input(r, msg);
  else if (strcmp(method, "CloseStdin") == 0) res = process_close_stdin(r, msg);
  else if (strcmp(method, "SendSignal") == 0) res = process_signal(r, msg);
  else if (strcmp(method, "Update") == 0) res = process_update(r, msg);
  else
    res = cc_sbd_respond_connect_error(r->conn, CC_CONNECT_UNIMPLEMENTED,
                                       "process.Process/%s is not implemented by "
                                       "codecanvas-sandboxd", method);
  cJSON_Delete(msg);
  return res;
}
