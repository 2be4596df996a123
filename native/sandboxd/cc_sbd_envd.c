/*
 * cc_sbd_envd: envd's HTTP and Connect-RPC API for one sandbox (see cc_sbd_envd.h): routing
 * and authentication of envd requests, /health, /envs and the process.Process service, plus
 * the helpers the other envd files share.  The file API (/files, the unary
 * filesystem.Filesystem RPCs) is cc_sbd_files.c, WatchDir cc_sbd_watch.c, and the stream
 * machinery both streaming services use cc_sbd_stream.c.
 *
 * Unary RPCs answer 200 with a JSON message or a Connect error with a string code and the
 * code's HTTP status.  Process streams (Start, Connect) send start, data and end events and
 * the end-of-stream envelope (e2b-protocol.md §3.3) — except when the sandbox dies under the
 * stream (killed, timed out): then, as with E2B, the connection is cut after the output
 * already produced, with no end event and no end-of-stream, and the SDK reports the sandbox
 * gone (TimeoutError) after probing /health (502).
 */
#include "cc_sbd_envd.h"
#include "cc_sbd_files.h"
#include "cc_sbd_stream.h"
#include "cc_sbd_watch.h"

#include <errno.h>
#include <inttypes.h>
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

cc_connect_code cc_sbd_envd_connect_code(cc_sbx_errkind k) {
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
  cc_connect_code code = e->kind != CC_SBX_ERR_NONE ? cc_sbd_envd_connect_code(e->kind)
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

static cJSON *event_wrap(const char *kind, cJSON *body) {
  cJSON *o = cJSON_CreateObject();
  cJSON *ev = cJSON_AddObjectToObject(o, "event");
  cJSON_AddItemToObject(ev, kind, body);
  return o;
}

/* Turns one runtime event into envelopes. */
static void process_event(cc_sbd_stream *s, const cc_sbx_event *ev) {
  cJSON *body = cJSON_CreateObject();
  switch (ev->type) {
  case CC_SBX_EV_START:
    cJSON_AddNumberToObject(body, "pid", ev->pid);
    cc_sbd_stream_push_json(s, 0, event_wrap("start", body));
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
    cc_sbd_stream_push_json(s, 0, event_wrap("data", body));
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
    cc_sbd_stream_push_json(s, 0, event_wrap("end", body));
    cc_sbd_stream_push_eos(s, CC_CONNECT_OK, NULL);
    break;
  default:
    cJSON_Delete(body);
    break;
  }
}

static cJSON *process_keepalive(cc_sbd_stream *s) {
  (void)s;
  return event_wrap("keepalive", cJSON_CreateObject());
}

/* A stream of process events (Start, Connect), or NULL when out of memory. */
static cc_sbd_stream *process_stream_new(cc_sbd_req *r) {
  cc_sbd_stream *s = cc_sbd_stream_new(r);
  if (s) {
    s->on_event = process_event;
    s->keepalive = process_keepalive;
  }
  return s;
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
  if (!cmd || !cmd[0]) return cc_sbd_stream_error(r, CC_CONNECT_INVALID_ARGUMENT, "process.cmd is required");
  uint16_t cols = 0, rows = 0;
  bool bad_size;
  bool pty = pty_size(msg, &cols, &rows, &bad_size);
  if (bad_size) return cc_sbd_stream_error(r, CC_CONNECT_INVALID_ARGUMENT, "invalid pty size");
  const cJSON *args = cJSON_GetObjectItemCaseSensitive(proc, "args");
  size_t n_args = (size_t)(cJSON_IsArray(args) ? cJSON_GetArraySize(args) : 0);
  const char **argv = calloc(n_args ? n_args : 1, sizeof *argv);
  size_t n_envs = 0;
  cc_sbx_env *envs = env_array(cJSON_GetObjectItemCaseSensitive(proc, "envs"), &n_envs);
  if (!argv) {
    free(envs);
    return cc_sbd_stream_error(r, CC_CONNECT_INTERNAL, "out of memory");
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
    .timeout_ms = (uint64_t)cc_sbd_stream_timeout_ms(r),
    .pty = pty,
    .pty_cols = cols,
    .pty_rows = rows,
    .as_root = r->as_root,
  };
  cc_sbd_stream *s = process_stream_new(r);
  uint32_t pid = 0;
  cc_sbx_err err = {0};
  cc_status st = s ? cc_sbx_proc_start(r->sb->sbx, &spec, &pid, &s->sub, &err) : CC_INTERNAL;
  free(argv);
  free(envs);
  if (st != CC_OK) {
    if (s) cc_sbd_stream_free(s);
    cc_connect_code code = err.kind != CC_SBX_ERR_NONE ? cc_sbd_envd_connect_code(err.kind)
                           : st == CC_SANDBOX_UNAVAILABLE ? CC_CONNECT_UNAVAILABLE
                                                          : CC_CONNECT_INTERNAL;
    return cc_sbd_stream_error(r, code, "%s", cc_sbd_envd_err_msg(&err, st));
  }
  return cc_sbd_stream_respond(r, s);
}

static enum MHD_Result process_connect(cc_sbd_req *r, cJSON *msg) {
  uint32_t pid;
  const cJSON *sel = cJSON_GetObjectItemCaseSensitive(msg, "process");
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(sel, "pid");
  const char *tag = json_str(sel, "tag");
  if (cJSON_IsNumber(p)) pid = (uint32_t)p->valuedouble;
  else if (tag) {
    if (cc_sbx_proc_find_tag(r->sb->sbx, tag, &pid) != CC_OK)
      return cc_sbd_stream_error(r, CC_CONNECT_NOT_FOUND, "process with tag %s not found", tag);
  } else {
    return cc_sbd_stream_error(r, CC_CONNECT_INVALID_ARGUMENT, "invalid process selector");
  }
  cc_sbd_stream *s = process_stream_new(r);
  if (!s) return cc_sbd_stream_error(r, CC_CONNECT_INTERNAL, "out of memory");
  cc_sbx_err err = {0};
  cc_status st = cc_sbx_proc_subscribe(r->sb->sbx, pid, &s->sub, &err);
  if (st != CC_OK) {
    cc_sbd_stream_free(s);
    if (st == CC_NOT_FOUND)
      return cc_sbd_stream_error(r, CC_CONNECT_NOT_FOUND, "process with pid %u not found", pid);
    return cc_sbd_stream_error(r, cc_sbd_envd_connect_code(err.kind), "%s", cc_sbd_envd_err_msg(&err, st));
  }
  long t = cc_sbd_stream_timeout_ms(r);
  if (t > 0) s->deadline_ms = cc_sbd_now_ms() + t;
  return cc_sbd_stream_respond(r, s);
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
    if (list[i].tag && strcmp(list[i].tag, CC_SBD_WATCH_TAG) == 0) continue; /* WatchDir's helper */
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
    if (!uok) return cc_sbd_stream_error(r, CC_CONNECT_UNAUTHENTICATED, "invalid username: '%s'", ubuf);
    cJSON *msg = cc_sbd_stream_request(r);
    if (!msg) return cc_sbd_stream_error(r, CC_CONNECT_INVALID_ARGUMENT, "request must be one JSON envelope");
    enum MHD_Result res = cc_sbd_watch_dir(r, msg);
    cJSON_Delete(msg);
    return res;
  }
  if (streaming) {
    if (!uok) return cc_sbd_stream_error(r, CC_CONNECT_UNAUTHENTICATED, "invalid username: '%s'", ubuf);
    cJSON *msg = cc_sbd_stream_request(r);
    if (!msg) return cc_sbd_stream_error(r, CC_CONNECT_INVALID_ARGUMENT, "request must be one JSON envelope");
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
