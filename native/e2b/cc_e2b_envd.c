/*
 * cc_e2b_envd: the E2B client's calls to envd inside a sandbox: health, processes (start,
 * stream, attach, input, signals, list) over Connect, and the filesystem (RPCs and /files
 * uploads and downloads).  Transport, errors and the client live in cc_e2b.c (cc_e2b_int.h).
 */
#define _GNU_SOURCE /* vasprintf, explicit_bzero */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_e2b_int.h"
#include "cc_e2b_wire.h"

/* ---------------------------------------------------------------- envd plumbing */

/* The envd URL for path (which starts with '/'): E2B_SANDBOX_URL, else the host form. */
static char *envd_url(const cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *path) {
  if (c->sandbox_url) return e2b_xasprintf("%s%s", c->sandbox_url, path);
  return e2b_xasprintf("https://%d-%s.%s%s", ENVD_PORT, sb->id, sb->domain, path);
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
  return sb && e2b_valid_id(sb->id) && e2b_header_safe(sb->envd_access_token) &&
         (c->sandbox_url || (sb->domain[0] && e2b_header_safe(sb->domain) && !strchr(sb->domain, '/')));
}

/* A unary Connect-JSON call: POST {envd}/<method> with body json.  On CC_OK *resp holds the
 * response JSON. */
static cc_status rpc_call(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *method,
                          const char *json, const char *what, buf_t *resp, cc_e2b_error *err) {
  memset(resp, 0, sizeof *resp);
  if (!sandbox_ok(c, sb)) return e2b_fail(err, CC_BAD_REQUEST, "%s: invalid sandbox", what);
  char errbuf[CURL_ERROR_SIZE];
  char path[96];
  snprintf(path, sizeof path, "/%s", method);
  xfer *x = e2b_handle_get(c);
  CURL *h = x ? x->h : NULL;
  char *url = envd_url(c, sb, path);
  struct curl_slist *hd = envd_headers(c, sb, true), *t = NULL;
  if (hd) t = curl_slist_append(hd, "Content-Type: application/json");
  if (t) hd = t;
  cc_status st;
  if (!h || !url || !hd || !t) {
    st = e2b_fail(err, CC_INTERNAL, "%s: out of memory", what);
  } else {
    e2b_setup_common(c, h, errbuf);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(json));
    call_info ci = {what, false, true, c->max_response};
    st = e2b_perform_unary(c, x, &ci, resp, NULL, errbuf, err);
  }
  curl_slist_free_all(hd);
  free(url);
  if (h) e2b_handle_put(c, x, true);
  if (st != CC_OK) e2b_buf_free(resp);
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
    return e2b_finish(c, sb, err, e2b_fail(err, CC_BAD_REQUEST, "health: invalid sandbox"));
  char errbuf[CURL_ERROR_SIZE];
  xfer *x = e2b_handle_get(c);
  CURL *h = x ? x->h : NULL;
  char *url = envd_url(c, sb, "/health");
  struct curl_slist *hd = envd_headers(c, sb, false);
  cc_status st;
  buf_t resp = {0};
  if (!h || !url || !hd) {
    st = e2b_fail(err, CC_INTERNAL, "health: out of memory");
  } else {
    e2b_setup_common(c, h, errbuf);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    call_info ci = {"envd health", false, true, ERROR_BODY_LIMIT};
    st = e2b_perform_unary(c, x, &ci, &resp, NULL, errbuf, err);
  }
  e2b_buf_free(&resp);
  curl_slist_free_all(hd);
  free(url);
  if (h) e2b_handle_put(c, x, true);
  return e2b_finish(c, sb, err, st);
}

/* ---------------------------------------------------------------- processes */

/* SendInput to stdin or to the PTY ("stdin" / "pty"). */
static cc_status send_input_as(cc_e2b_client *c, const cc_e2b_sandbox *sb, uint32_t pid,
                               const char *kind, const void *data, size_t len, cc_e2b_error *err) {
  if (len > c->max_envelope)
    return e2b_finish(c, sb, err, e2b_fail(err, CC_TOO_LARGE, "send input: %zu bytes is too large", len));
  char *b64 = cc_e2b_base64_encode(data, len);
  char *json = b64 ? e2b_xasprintf("{\"process\":{\"pid\":%u},\"input\":{\"%s\":\"%s\"}}", pid,
                               kind, b64)
                   : NULL;
  free(b64);
  if (!json) return e2b_finish(c, sb, err, e2b_fail(err, CC_INTERNAL, "send input: out of memory"));
  buf_t resp;
  cc_status st = rpc_call(c, sb, "process.Process/SendInput", json, "send input", &resp, err);
  free(json);
  e2b_buf_free(&resp);
  return e2b_finish(c, sb, err, st);
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
  e2b_buf_free(&resp);
  return e2b_finish(c, sb, err, st);
}

/* SendSignal with its own timeout (used after a cancel as well). */
static cc_status send_signal(cc_e2b_client *c, const cc_e2b_sandbox *sb, uint32_t pid, int sig,
                             cc_e2b_error *err) {
  char json[96];
  snprintf(json, sizeof json, "{\"process\":{\"pid\":%u},\"signal\":\"%s\"}", pid,
           sig == 9 ? "SIGNAL_SIGKILL" : "SIGNAL_SIGTERM");
  buf_t resp;
  cc_status st = rpc_call(c, sb, "process.Process/SendSignal", json, "send signal", &resp, err);
  e2b_buf_free(&resp);
  return st;
}

cc_status cc_e2b_send_signal(cc_e2b_client *c, const cc_e2b_sandbox *sb, uint32_t pid, int signal,
                             cc_e2b_error *err) {
  if (signal != 9 && signal != 15)
    return e2b_finish(c, sb, err,
                  e2b_fail(err, CC_BAD_REQUEST, "send signal: only SIGKILL (9) and SIGTERM (15)"));
  return e2b_finish(c, sb, err, send_signal(c, sb, pid, signal, err));
}

cc_status cc_e2b_list_processes(cc_e2b_client *c, const cc_e2b_sandbox *sb,
                                cc_e2b_process_list *out, cc_e2b_error *err) {
  memset(out, 0, sizeof *out);
  buf_t resp;
  cc_status st = rpc_call(c, sb, "process.Process/List", "{}", "list processes", &resp, err);
  if (st == CC_OK) {
    st = cc_e2b_processes_parse(resp.p ? resp.p : "", resp.len, out);
    if (st != CC_OK) e2b_fail(err, st, "list processes: malformed response");
  }
  e2b_buf_free(&resp);
  return e2b_finish(c, sb, err, st);
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
    e2b_buf_append(&s->errbody, data, n); /* truncating buffer: keeps the first 64 KiB */
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
  if (!s->res->started && e2b_elapsed_ms(&s->t0) > s->c->request_timeout_ms) {
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
  if (ok) ok = e2b_add_map(proc, "envs", o->envs, o->envs_count);
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
  xfer *x = e2b_handle_get(c);
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
    st = e2b_fail(err, CC_INTERNAL, "%s: out of memory", rq->what);
    goto done;
  }
  e2b_setup_common(c, h, errbuf);
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
  rc = e2b_xfer_run(c, x, o->cancel, &flag_canceled);
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
    st = e2b_fail(err, s.parse_status, "%s: %s", rq->what, s.parse_msg);
  } else if (s.no_start) {
    st = e2b_fail(err, CC_TIMEOUT, "%s: no start event within %ld ms", rq->what, c->request_timeout_ms);
  } else if (rc == CURLE_OPERATION_TIMEDOUT && !e2b_request_sent(h)) {
    st = e2b_transport_fail(err, h, rc, errbuf, rq->what); /* could not connect */
  } else if (rc == CURLE_OPERATION_TIMEDOUT) {
    if (deadline > 0 && e2b_elapsed_ms(&s.t0) >= deadline) {
      res->timed_out = true;
      st = e2b_fail(err, CC_TIMEOUT, "%s: command exceeded its %ld ms deadline", rq->what, deadline);
    } else {
      st = e2b_fail(err, CC_SANDBOX_UNAVAILABLE, "%s: no data from envd for %d s", rq->what,
                2 * c->keepalive_s + 10);
    }
  } else if (rc != CURLE_OK) {
    st = e2b_transport_fail(err, h, rc, errbuf, rq->what);
  } else if (s.eos && s.eos_status != CC_OK) {
    st = s.eos_status;
    if (st == CC_TIMEOUT) res->timed_out = true;
    e2b_fail(err, st, "%s: %s: %s", rq->what, s.eos_code, s.eos_msg);
    if (err) snprintf(err->code, sizeof err->code, "%s", s.eos_code);
  } else if (!res->ended) {
    st = e2b_fail(err, s.eos ? CC_UPSTREAM_ERROR : CC_SANDBOX_UNAVAILABLE,
              "%s: the stream ended before the process did", rq->what);
  } else if (rq->server_timeout_ms > 0 && !res->exited &&
             e2b_elapsed_ms(&s.t0) >= rq->server_timeout_ms) {
    /* envd killed the process at the Connect-Timeout-Ms deadline and reported the kill. */
    res->timed_out = true;
    st = e2b_fail(err, CC_TIMEOUT, "%s: command exceeded its %ld ms deadline", rq->what,
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
  e2b_buf_free(&s.errbody);
  curl_slist_free_all(hd);
  free(url);
  /* Reuse the connection only if the stream was read to its end. */
  e2b_handle_put(c, x, rc == CURLE_OK && s.action == CC_E2B_CONTINUE && !s.http_bad);
  return st;
}

cc_status cc_e2b_exec(cc_e2b_client *c, const cc_e2b_sandbox *sb, const cc_e2b_exec_opts *o,
                      cc_e2b_exec_result *res, cc_e2b_error *err) {
  cc_e2b_exec_result local;
  if (!res) res = &local;
  memset(res, 0, sizeof *res);
  if (!o || !o->cmd || (o->args_count && !o->args))
    return e2b_finish(c, sb, err, e2b_fail(err, CC_BAD_REQUEST, "exec: no command"));
  if (!sandbox_ok(c, sb))
    return e2b_finish(c, sb, err, e2b_fail(err, CC_BAD_REQUEST, "exec: invalid sandbox"));
  if (o->timeout_ms < 0)
    return e2b_finish(c, sb, err, e2b_fail(err, CC_BAD_REQUEST, "exec: negative timeout"));
  size_t body_len = 0;
  char *body = start_envelope(o, &body_len);
  stream_req rq = {"exec", "/process.Process/Start", body, body_len, o->timeout_ms, 0, true};
  cc_status st = stream_call(c, sb, &rq, o, res, err);
  free(body);
  return e2b_finish(c, sb, err, st);
}

cc_status cc_e2b_attach(cc_e2b_client *c, const cc_e2b_sandbox *sb, uint32_t pid,
                        const cc_e2b_exec_opts *o, cc_e2b_exec_result *res, cc_e2b_error *err) {
  cc_e2b_exec_result local;
  cc_e2b_exec_opts none = {.cmd = ""};
  if (!res) res = &local;
  if (!o) o = &none;
  memset(res, 0, sizeof *res);
  if (!sandbox_ok(c, sb))
    return e2b_finish(c, sb, err, e2b_fail(err, CC_BAD_REQUEST, "attach: invalid sandbox"));
  if (o->timeout_ms < 0)
    return e2b_finish(c, sb, err, e2b_fail(err, CC_BAD_REQUEST, "attach: negative timeout"));
  char json[64];
  int n = snprintf(json + 5, sizeof json - 5, "{\"process\":{\"pid\":%u}}", pid);
  cc_e2b_envelope_header((unsigned char *)json, 0, (uint32_t)n);
  stream_req rq = {"attach", "/process.Process/Connect", json, (size_t)n + 5, 0, o->timeout_ms,
                   false};
  return e2b_finish(c, sb, err, stream_call(c, sb, &rq, o, res, err));
}

/* ---------------------------------------------------------------- filesystem */

static cc_status entry_call(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *method,
                            const char *json, const char *what, cc_e2b_entry *out,
                            cc_e2b_error *err) {
  if (out) memset(out, 0, sizeof *out);
  if (!json) return e2b_finish(c, sb, err, e2b_fail(err, CC_INTERNAL, "%s: out of memory", what));
  buf_t resp;
  cc_status st = rpc_call(c, sb, method, json, what, &resp, err);
  if (st == CC_OK && out) {
    st = cc_e2b_entry_parse(resp.p ? resp.p : "", resp.len, out);
    if (st != CC_OK) e2b_fail(err, st, "%s: malformed response", what);
  }
  e2b_buf_free(&resp);
  return e2b_finish(c, sb, err, st);
}

/* A filesystem RPC that takes {path} and answers {entry}. */
static cc_status path_entry_call(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *rpc,
                                 const char *what, const char *path, cc_e2b_entry *out,
                                 cc_e2b_error *err) {
  char *json = path ? path_json(path, 0) : NULL;
  cc_status st = entry_call(c, sb, rpc, json, what, out, err);
  cJSON_free(json);
  return st;
}

cc_status cc_e2b_stat(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *path,
                      cc_e2b_entry *out, cc_e2b_error *err) {
  return path_entry_call(c, sb, "filesystem.Filesystem/Stat", "stat", path, out, err);
}

cc_status cc_e2b_make_dir(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *path,
                          cc_e2b_entry *out, cc_e2b_error *err) {
  return path_entry_call(c, sb, "filesystem.Filesystem/MakeDir", "make dir", path, out, err);
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
  if (!json) return e2b_finish(c, sb, err, e2b_fail(err, CC_INTERNAL, "list dir: out of memory"));
  buf_t resp;
  cc_status st = rpc_call(c, sb, "filesystem.Filesystem/ListDir", json, "list dir", &resp, err);
  cJSON_free(json);
  if (st == CC_OK) {
    st = cc_e2b_entries_parse(resp.p ? resp.p : "", resp.len, MAX_LIST_ENTRIES, out);
    if (st != CC_OK) e2b_fail(err, st, "list dir: malformed or oversized response");
  }
  e2b_buf_free(&resp);
  return e2b_finish(c, sb, err, st);
}

cc_status cc_e2b_remove(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *path,
                        cc_e2b_error *err) {
  char *json = path ? path_json(path, 0) : NULL;
  if (!json) return e2b_finish(c, sb, err, e2b_fail(err, CC_INTERNAL, "remove: out of memory"));
  buf_t resp;
  cc_status st = rpc_call(c, sb, "filesystem.Filesystem/Remove", json, "remove", &resp, err);
  cJSON_free(json);
  e2b_buf_free(&resp);
  return e2b_finish(c, sb, err, st);
}

/* {envd}/files?path=<escaped>[&username=<user>] */
static char *files_url(const cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *path) {
  char *esc = curl_easy_escape(NULL, path, 0);
  if (!esc) return NULL;
  char *rel = e2b_xasprintf("/files?path=%s%s", esc, c->user_query);
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
    return e2b_finish(c, sb, err, e2b_fail(err, CC_BAD_REQUEST, "write file: invalid sandbox"));
  if (!path || !*path) return e2b_finish(c, sb, err, e2b_fail(err, CC_BAD_REQUEST, "write file: no path"));
  if (len > c->max_file)
    return e2b_finish(c, sb, err,
                  e2b_fail(err, CC_TOO_LARGE, "write file: %zu bytes exceeds the %zu byte limit", len,
                       c->max_file));
  char errbuf[CURL_ERROR_SIZE];
  xfer *x = e2b_handle_get(c);
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
    st = e2b_fail(err, CC_INTERNAL, "write file: out of memory");
  } else {
    e2b_setup_common(c, h, errbuf);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_MIMEPOST, mime);
    call_info ci = {"write file", false, true, c->max_response};
    st = e2b_perform_unary(c, x, &ci, &resp, NULL, errbuf, err);
    if (st == CC_OK && out_path) {
      st = cc_e2b_upload_parse(resp.p ? resp.p : "", resp.len, out_path, out_path_n);
      if (st != CC_OK) e2b_fail(err, st, "write file: malformed response");
    }
  }
  e2b_buf_free(&resp);
  curl_mime_free(mime);
  curl_slist_free_all(hd);
  free(url);
  if (h) e2b_handle_put(c, x, true);
  return e2b_finish(c, sb, err, st);
}

cc_status cc_e2b_read_file(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *path,
                           size_t max_bytes, char **data_out, size_t *len_out, cc_e2b_error *err) {
  *data_out = NULL;
  *len_out = 0;
  if (!sandbox_ok(c, sb))
    return e2b_finish(c, sb, err, e2b_fail(err, CC_BAD_REQUEST, "read file: invalid sandbox"));
  if (!path || !*path) return e2b_finish(c, sb, err, e2b_fail(err, CC_BAD_REQUEST, "read file: no path"));
  size_t limit = max_bytes ? max_bytes : c->max_file;
  char errbuf[CURL_ERROR_SIZE];
  xfer *x = e2b_handle_get(c);
  CURL *h = x ? x->h : NULL;
  char *url = files_url(c, sb, path);
  struct curl_slist *hd = envd_headers(c, sb, false);
  buf_t resp = {0};
  cc_status st;
  if (!h || !url || !hd) {
    st = e2b_fail(err, CC_INTERNAL, "read file: out of memory");
  } else {
    e2b_setup_common(c, h, errbuf);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    /* Refuse early when the server announces a larger body. */
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)limit);
    call_info ci = {"read file", false, true, limit < ERROR_BODY_LIMIT ? ERROR_BODY_LIMIT : limit};
    st = e2b_perform_unary(c, x, &ci, &resp, NULL, errbuf, err);
    if (st == CC_TOO_LARGE) e2b_fail(err, st, "read file: larger than %zu bytes", limit);
    if (st == CC_OK && resp.len > limit)
      st = e2b_fail(err, CC_TOO_LARGE, "read file: larger than %zu bytes", limit);
  }
  if (st == CC_OK) {
    if (!resp.p && !(resp.p = calloc(1, 1)))
      st = e2b_fail(err, CC_INTERNAL, "read file: out of memory");
    *data_out = resp.p;
    *len_out = resp.len;
    resp.p = NULL;
  }
  e2b_buf_free(&resp);
  curl_slist_free_all(hd);
  free(url);
  if (h) e2b_handle_put(c, x, true);
  return e2b_finish(c, sb, err, st);
}
