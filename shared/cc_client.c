/*
 * cc_client: request encoding, local cache decisions and response reading for the wasm
 * client (see cc_client.h).
 *
 * Each request in flight owns a slot: its op, project, exec-cache key and a response buffer
 * capped at proto.max_response_bytes.  Streamed responses are split into lines as bytes
 * arrive; a line may span any number of chunks.  Cache writes are best effort: a failing
 * cache write never fails the call, it only costs a later miss.
 */
#include "cc_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  bool used;
  bool answered; /* io->done already called (a streamed final line arrived) */
  bool stream;
  bool overflow; /* the response passed max_response_bytes */
  bool store_exec;
  uint32_t req;
  cc_proto_op op;
  char project[CC_PROTO_MAX_PROJECT_BYTES + 1];
  char *doc_key; /* exec-cache key (exec) or document key (reads); malloc'd or NULL */
  char *buf;
  size_t len, cap;
} slot;

struct cc_client {
  cc_client_cache *cache;
  cc_client_io io;
  cc_client_options opt;
  slot *slots;
};

/* A malloc'd copy of cJSON-printed text (cJSON's allocator may differ from malloc). */
static char *print_malloc(const cJSON *j) {
  char *t = cJSON_PrintUnformatted(j);
  if (!t) return NULL;
  char *out = strdup(t);
  cJSON_free(t);
  return out;
}

/* The error object {"code","message","retryable"[,"reason"]} as malloc'd text. */
static char *error_json(const char *code, const char *message, bool retryable,
                        const char *reason) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  cJSON_AddStringToObject(o, "code", code);
  cJSON_AddStringToObject(o, "message", message ? message : code);
  cJSON_AddBoolToObject(o, "retryable", retryable);
  if (reason) cJSON_AddStringToObject(o, "reason", reason);
  char *out = print_malloc(o);
  cJSON_Delete(o);
  return out;
}

static char *status_error_json(cc_status st, const char *message, const char *reason) {
  return error_json(cc_status_code(st), message ? message : cc_status_message(st),
                    cc_status_retryable(st), reason);
}

static void done_text(cc_client *c, uint32_t req, bool ok, char *json) {
  static const char oom[] = "{\"code\":\"internal\",\"message\":\"out of memory\","
                            "\"retryable\":false}";
  if (!json) {
    c->io.done(c->io.ctx, req, false, oom, sizeof oom - 1);
    return;
  }
  c->io.done(c->io.ctx, req, ok, json, strlen(json));
  free(json);
}

static void done_status(cc_client *c, uint32_t req, cc_status st, const char *message) {
  done_text(c, req, false, status_error_json(st, message, NULL));
}

cc_status cc_client_new(cc_client_cache *cache, const cc_client_io *io,
                        const cc_client_options *opt, cc_client **out) {
  *out = NULL;
  cc_client *c = calloc(1, sizeof *c);
  if (!c) return CC_INTERNAL;
  c->cache = cache;
  c->io = *io;
  c->opt.max_stale_ms = 3600000;
  c->opt.max_in_flight = 64;
  c->opt.proto = cc_proto_limits_default();
  if (opt) {
    if (opt->max_stale_ms >= 0) c->opt.max_stale_ms = opt->max_stale_ms;
    if (opt->max_in_flight > 0) c->opt.max_in_flight = opt->max_in_flight;
    if (opt->proto.max_body_bytes) c->opt.proto = opt->proto;
  }
  c->slots = calloc((size_t)c->opt.max_in_flight, sizeof *c->slots);
  if (!c->slots) {
    free(c);
    return CC_INTERNAL;
  }
  *out = c;
  return CC_OK;
}

static void slot_release(slot *s) {
  free(s->doc_key);
  free(s->buf);
  memset(s, 0, sizeof *s);
}

void cc_client_free(cc_client *c) {
  if (!c) return;
  for (int i = 0; i < c->opt.max_in_flight; i++) {
    slot *s = &c->slots[i];
    if (!s->used) continue;
    if (!s->answered) done_text(c, s->req, false, error_json("canceled", "client closed", false, NULL));
    slot_release(s);
  }
  free(c->slots);
  free(c);
}

static slot *slot_find(cc_client *c, uint32_t req) {
  for (int i = 0; i < c->opt.max_in_flight; i++)
    if (c->slots[i].used && c->slots[i].req == req) return &c->slots[i];
  return NULL;
}

static slot *slot_alloc(cc_client *c) {
  for (int i = 0; i < c->opt.max_in_flight; i++)
    if (!c->slots[i].used) return &c->slots[i];
  return NULL;
}

/* The local exec-cache key: what makes two exec calls the same command. */
static char *exec_key(const cJSON *args) {
  const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(args, "cmd");
  const cJSON *cwd = cJSON_GetObjectItemCaseSensitive(args, "cwd");
  const cJSON *env = cJSON_GetObjectItemCaseSensitive(args, "env");
  char *env_text = env ? cJSON_PrintUnformatted(env) : NULL;
  const char *a = cJSON_IsString(cmd) ? cmd->valuestring : "";
  const char *b = cJSON_IsString(cwd) ? cwd->valuestring : "";
  const char *e = env_text ? env_text : "";
  size_t n = strlen(a) + strlen(b) + strlen(e) + 3;
  char *key = malloc(n);
  if (key) snprintf(key, n, "%s\n%s\n%s", a, b, e);
  cJSON_free(env_text);
  return key;
}

/* The document key of a read op whose answer is kept for offline use, or NULL. */
static char *doc_key(cc_proto_op op, const cJSON *args) {
  char buf[64 + CC_PROTO_MAX_ID_BYTES];
  const cJSON *v;
  switch (op) {
  case CC_OP_GET_HISTORY: {
    const cJSON *lim = cJSON_GetObjectItemCaseSensitive(args, "limit");
    const cJSON *before = cJSON_GetObjectItemCaseSensitive(args, "before");
    snprintf(buf, sizeof buf, "limit=%d&before=%.*s",
             cJSON_IsNumber(lim) ? lim->valueint : 50, CC_PROTO_MAX_ID_BYTES,
             cJSON_IsString(before) ? before->valuestring : "");
    return strdup(buf);
  }
  case CC_OP_GET_RESULT:
    v = cJSON_GetObjectItemCaseSensitive(args, "executionId");
    return cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
  case CC_OP_GET_PROJECT:
  case CC_OP_UPDATE_PROJECT:
  case CC_OP_LIST_PROJECTS:
    return strdup("");
  default:
    return NULL;
  }
}

static const char *doc_kind(cc_proto_op op) {
  switch (op) {
  case CC_OP_GET_HISTORY: return CC_DOC_HISTORY;
  case CC_OP_GET_RESULT: return CC_DOC_RECORD;
  case CC_OP_GET_PROJECT:
  case CC_OP_UPDATE_PROJECT: return CC_DOC_PROJECT;
  case CC_OP_LIST_PROJECTS: return CC_DOC_PROJECTS;
  default: return NULL;
  }
}

/* Answers an exec from the local cache.  True when answered. */
static bool local_exec_hit(cc_client *c, uint32_t req, const char *project, const char *key,
                           int64_t now_ms) {
  char *stored = NULL;
  if (c->opt.max_stale_ms <= 0) return false; /* local hits disabled */
  if (cc_client_cache_exec_get(c->cache, project, key, now_ms, c->opt.max_stale_ms, &stored) !=
      CC_OK)
    return false;
  cJSON *r = cJSON_Parse(stored);
  free(stored);
  if (!cJSON_IsObject(r)) {
    cJSON_Delete(r);
    return false;
  }
  cJSON_DeleteItemFromObjectCaseSensitive(r, "cached");
  cJSON_AddTrueToObject(r, "cached");
  cJSON_AddTrueToObject(r, "local"); /* answered without a request */
  char *text = print_malloc(r);
  cJSON_Delete(r);
  if (!text) return false;
  done_text(c, req, true, text);
  return true;
}

cc_status cc_client_request(cc_client *c, uint32_t req, const char *op_name, const char *project,
                            const char *args_json, bool stream, int64_t now_ms,
                            char **err_json) {
  *err_json = NULL;
  cc_status st = CC_OK;
  cJSON *args = NULL;
  char *body = NULL, *key = NULL;
  cc_proto_op op;
  if (project && !*project) project = NULL;
  if (!cc_proto_op_from_name(op_name ? op_name : "", &op)) {
    *err_json = status_error_json(CC_BAD_REQUEST, "unknown op", "unknown_op");
    return CC_BAD_REQUEST;
  }
  args = args_json ? cJSON_Parse(args_json) : cJSON_CreateObject();
  if (!cJSON_IsObject(args)) {
    *err_json = status_error_json(CC_BAD_REQUEST, "args must be a JSON object", "wrong_type");
    st = CC_BAD_REQUEST;
    goto out;
  }
  if (project && strlen(project) > CC_PROTO_MAX_PROJECT_BYTES) {
    *err_json = status_error_json(CC_BAD_REQUEST, "invalid projectId", "bad_project");
    st = CC_BAD_REQUEST;
    goto out;
  }
  if (slot_find(c, req)) {
    *err_json = status_error_json(CC_CONFLICT, "request id already in flight", NULL);
    st = CC_CONFLICT;
    goto out;
  }
  bool store_exec = false;
  if (op == CC_OP_EXEC) {
    const cJSON *uc = cJSON_GetObjectItemCaseSensitive(args, "useCache");
    bool use_cache = !cJSON_IsFalse(uc);
    bool has_stdin = cJSON_GetObjectItemCaseSensitive(args, "stdin") != NULL;
    key = exec_key(args);
    if (!key) {
      st = CC_INTERNAL;
      *err_json = status_error_json(st, "out of memory", NULL);
      goto out;
    }
    store_exec = use_cache && !has_stdin;
    if (store_exec && project && local_exec_hit(c, req, project, key, now_ms)) goto out;
  } else {
    key = doc_key(op, args);
  }
  if (op == CC_OP_CLEAR_CACHE && project)
    (void)cc_client_cache_exec_clear(c->cache, project, NULL, NULL); /* best effort */

  char id[16];
  snprintf(id, sizeof id, "c%u", (unsigned)req);
  cc_proto_error perr;
  memset(&perr, 0, sizeof perr);
  st = cc_proto_encode_request(id, op, project, stream, args, &c->opt.proto, &body, &perr);
  if (st != CC_OK) {
    *err_json = status_error_json(st, perr.message[0] ? perr.message : NULL,
                                  cc_proto_reason_name(perr.reason));
    goto out;
  }
  slot *s = slot_alloc(c);
  if (!s) {
    st = CC_RATE_LIMITED;
    *err_json = status_error_json(st, "too many requests in flight", NULL);
    goto out;
  }
  *s = (slot){.used = true, .stream = stream, .store_exec = store_exec, .req = req, .op = op,
              .doc_key = key};
  key = NULL;
  if (project) snprintf(s->project, sizeof s->project, "%s", project);
  st = c->io.send(c->io.ctx, req, body, strlen(body), stream);
  if (st != CC_OK) {
    slot_release(s);
    *err_json = status_error_json(st, "could not start the request", NULL);
  }
out:
  cc_proto_free(body);
  free(key);
  cJSON_Delete(args);
  return st;
}

/* Keeps the cache in step with a successful response. */
static void remember(cc_client *c, slot *s, const cc_response *resp, int64_t now_ms) {
  const char *project = s->project;
  if (*project && resp->generation >= 0) {
    bool changed = false;
    if (cc_client_cache_seen_generation(c->cache, project, resp->generation, &changed) == CC_OK &&
        changed && c->io.generation)
      c->io.generation(c->io.ctx, project, resp->generation);
  }
  if (s->op == CC_OP_DELETE_PROJECT && *project) {
    (void)cc_client_cache_drop_project(c->cache, project);
    return;
  }
  const char *kind = doc_kind(s->op);
  bool exec_store = s->op == CC_OP_EXEC && s->store_exec && *project && resp->generation >= 0;
  if (!kind && !exec_store) return;
  if (exec_store) {
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(resp->result, "status");
    if (!cJSON_IsString(status) || (strcmp(status->valuestring, "success") != 0 &&
                                    strcmp(status->valuestring, "failed") != 0))
      return;
  }
  char *text = cJSON_PrintUnformatted(resp->result);
  if (!text) return;
  if (exec_store)
    (void)cc_client_cache_exec_put(c->cache, project, s->doc_key, resp->generation, now_ms, text);
  else if (s->doc_key)
    (void)cc_client_cache_doc_put(c->cache, kind, s->op == CC_OP_GET_RESULT ? "" : project,
                                  s->doc_key, now_ms, text);
  cJSON_free(text);
}

/* Answers slot `s` from a decoded final response message. */
static void answer(cc_client *c, slot *s, const cc_response *resp, int64_t now_ms) {
  s->answered = true;
  if (resp->ok) {
    remember(c, s, resp, now_ms);
    done_text(c, s->req, true, resp->result ? print_malloc(resp->result) : strdup("{}"));
  } else {
    /* The error object as sent (it may carry more than code/message, e.g. the
     * executionId of the failed operation's record); the decoder validated its fields. */
    const cJSON *eobj = cJSON_GetObjectItemCaseSensitive(resp->root_, "error");
    const cc_proto_error_info *e = &resp->error;
    done_text(c, s->req, false,
              cJSON_IsObject(eobj) ? print_malloc(eobj)
                                   : error_json(e->code ? e->code : "internal", e->message,
                                                e->retryable, e->reason));
  }
}

/* Decodes and handles one NDJSON line of a streamed response. */
static void stream_line(cc_client *c, slot *s, const char *line, size_t len, int64_t now_ms) {
  if (len == 0 || (len == 1 && line[0] == '\r') || s->answered) return;
  cc_proto_line pl;
  cc_proto_error perr;
  memset(&pl, 0, sizeof pl);
  memset(&perr, 0, sizeof perr);
  if (cc_proto_parse_line(line, len, &c->opt.proto, &pl, &perr) != CC_OK) {
    s->answered = true;
    char msg[300];
    snprintf(msg, sizeof msg, "malformed stream line from the worker: %s", perr.message);
    done_status(c, s->req, CC_UPSTREAM_ERROR, msg);
    cc_proto_line_cleanup(&pl);
    return;
  }
  if (pl.is_event) {
    const cc_event *ev = &pl.event;
    if (ev->type == CC_EVENT_START) {
      char *t = ev->data ? cJSON_PrintUnformatted(ev->data) : NULL;
      c->io.event(c->io.ctx, s->req, ev->type, t ? t : "{}", t ? strlen(t) : 2);
      cJSON_free(t);
    } else if (ev->text) {
      c->io.event(c->io.ctx, s->req, ev->type, ev->text, strlen(ev->text));
    }
  } else {
    answer(c, s, &pl.response, now_ms);
  }
  cc_proto_line_cleanup(&pl);
}

/* Hands every complete line in the buffer to stream_line and keeps the rest. */
static void drain_lines(cc_client *c, slot *s, int64_t now_ms) {
  size_t start = 0;
  for (size_t i = 0; i < s->len; i++) {
    if (s->buf[i] != '\n') continue;
    stream_line(c, s, s->buf + start, i - start, now_ms);
    start = i + 1;
  }
  if (start > 0) {
    memmove(s->buf, s->buf + start, s->len - start);
    s->len -= start;
  }
}

void cc_client_on_data(cc_client *c, uint32_t req, const char *bytes, size_t len,
                       int64_t now_ms) {
  slot *s = slot_find(c, req);
  if (!s || s->overflow || s->answered) return;
  if (s->len + len > c->opt.proto.max_response_bytes) {
    s->overflow = true;
    return;
  }
  if (s->len + len + 1 > s->cap) {
    size_t cap = s->cap ? s->cap : 4096;
    while (cap < s->len + len + 1) cap *= 2;
    char *nb = realloc(s->buf, cap);
    if (!nb) {
      s->overflow = true;
      return;
    }
    s->buf = nb;
    s->cap = cap;
  }
  memcpy(s->buf + s->len, bytes, len);
  s->len += len;
  if (s->stream) drain_lines(c, s, now_ms); /* lines are handled as they arrive */
}

/* The status a bare HTTP error (no protocol body) maps to. */
static cc_status status_of_http(int http) {
  for (int i = 1; i < CC_STATUS_COUNT; i++)
    if (cc_status_http((cc_status)i) == http) return (cc_status)i;
  return http >= 500 ? CC_UPSTREAM_ERROR : CC_BAD_REQUEST;
}

/* Offline answer for a read op from the cache, marked "stale": true.  True if answered. */
static bool offline_answer(cc_client *c, slot *s) {
  const char *kind = doc_kind(s->op);
  if (!kind || !s->doc_key) return false;
  char *text = NULL;
  const char *project = s->op == CC_OP_GET_RESULT ? "" : s->project;
  if (cc_client_cache_doc_get(c->cache, kind, project, s->doc_key, &text, NULL) != CC_OK)
    return false;
  cJSON *o = cJSON_Parse(text);
  free(text);
  if (!cJSON_IsObject(o)) {
    cJSON_Delete(o);
    return false;
  }
  cJSON_AddTrueToObject(o, "stale");
  s->answered = true;
  done_text(c, s->req, true, print_malloc(o));
  cJSON_Delete(o);
  return true;
}

void cc_client_on_end(cc_client *c, uint32_t req, int http_status, const char *transport_error,
                      const char *message, int64_t now_ms) {
  slot *s = slot_find(c, req);
  if (!s) return;
  if (s->answered) goto release;
  if (http_status <= 0) {
    const char *kind = transport_error ? transport_error : "unreachable";
    char msg[300];
    if (strcmp(kind, "canceled") == 0) {
      done_text(c, req, false, error_json("canceled", message ? message : "canceled", false, NULL));
    } else if (strcmp(kind, "timeout") == 0) {
      if (!offline_answer(c, s)) done_status(c, req, CC_TIMEOUT, message ? message : "request timed out");
    } else if (!offline_answer(c, s)) {
      snprintf(msg, sizeof msg, "worker unreachable: %s", message ? message : "network error");
      done_status(c, req, CC_UPSTREAM_ERROR, msg);
    }
    goto release;
  }
  if (s->overflow) {
    done_status(c, req, CC_TOO_LARGE, "response larger than the client's limit");
    goto release;
  }
  if (s->stream) {
    drain_lines(c, s, now_ms);
    if (!s->answered && s->len > 0) stream_line(c, s, s->buf, s->len, now_ms);
    if (s->answered) goto release;
    if (http_status == 200) {
      done_status(c, req, CC_UPSTREAM_ERROR, "stream ended without a final response");
      goto release;
    }
    /* A non-200 answer to a stream request is a plain error message: fall through. */
  }
  cc_response resp;
  cc_proto_error perr;
  memset(&resp, 0, sizeof resp);
  memset(&perr, 0, sizeof perr);
  if (s->len > 0 && cc_proto_parse_response(s->buf, s->len, &c->opt.proto, &resp, &perr) == CC_OK) {
    answer(c, s, &resp, now_ms);
  } else if (http_status != 200) {
    char msg[80];
    snprintf(msg, sizeof msg, "worker answered HTTP %d", http_status);
    done_status(c, req, status_of_http(http_status), msg);
  } else {
    char msg[300];
    snprintf(msg, sizeof msg, "malformed response from the worker: %s", perr.message);
    done_status(c, req, CC_UPSTREAM_ERROR, msg);
  }
  cc_response_cleanup(&resp);
release:
  slot_release(s);
}

cc_status cc_client_seen_generation(cc_client *c, const char *project, int64_t generation,
                                    bool *changed) {
  return cc_client_cache_seen_generation(c->cache, project, generation, changed);
}
