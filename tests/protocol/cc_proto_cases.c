/*
 * cc_proto_cases: one protocol data case -> decode -> canonical description -> compare
 * with `expect` (subset match) -> re-encode -> decode -> same description (round trip).
 * See tests/protocol/README.md for the file format and the description of each kind.
 */
#include "cc_proto_cases.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_proto.h"

static int say(char *msg, size_t cap, int rc, const char *fmt, ...) {
  if (cap) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
  }
  return rc;
}

/* ---------------------------------------------------------------- descriptions */

static cJSON *str_or_null(const char *s) {
  return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

/* A file's decoded content: as text when it is UTF-8 without NUL, else as base64. */
static void describe_file(cJSON *o, const cc_proto_file *f) {
  cJSON_AddStringToObject(o, "path", f->path);
  cJSON_AddStringToObject(o, "encoding", cc_proto_encoding_name(f->encoding));
  cJSON_AddNumberToObject(o, "size", (double)f->content_len);
  char *clean;
  size_t n;
  if (cc_proto_utf8_sanitize((const char *)f->content, f->content_len, &clean, &n) == CC_OK) {
    if (n == f->content_len && memcmp(clean, f->content, n) == 0) {
      cJSON_AddStringToObject(o, "content", clean);
    } else {
      char *b64;
      if (cc_proto_base64_encode(f->content, f->content_len, &b64, NULL) == CC_OK) {
        cJSON_AddStringToObject(o, "contentBase64", b64);
        cc_proto_free(b64);
      }
    }
    cc_proto_free(clean);
  }
}

static cJSON *describe_args(const cc_request *r) {
  cJSON *a = cJSON_CreateObject();
  switch (r->op) {
    case CC_OP_EXEC: {
      const cc_proto_exec_args *x = &r->exec;
      cJSON_AddStringToObject(a, "cmd", x->cmd);
      cJSON_AddItemToObject(a, "cwd", str_or_null(x->cwd));
      cJSON *env = cJSON_AddObjectToObject(a, "env");
      for (size_t i = 0; i < x->env_count; i++)
        cJSON_AddStringToObject(env, x->env[i].name, x->env[i].value);
      if (x->timeout_ms)
        cJSON_AddNumberToObject(a, "timeoutMs", (double)x->timeout_ms);
      else
        cJSON_AddNullToObject(a, "timeoutMs");
      cJSON_AddBoolToObject(a, "useCache", x->use_cache);
      cJSON_AddBoolToObject(a, "readOnly", x->read_only);
      cJSON_AddItemToObject(a, "stdin", str_or_null(x->stdin_data));
      break;
    }
    case CC_OP_WRITE_FILE:
      describe_file(a, &r->write_file.file);
      break;
    case CC_OP_READ_FILE:
      cJSON_AddStringToObject(a, "path", r->read_file.path);
      cJSON_AddStringToObject(a, "encoding", cc_proto_encoding_name(r->read_file.encoding));
      break;
    case CC_OP_LIST_DIR:
      cJSON_AddStringToObject(a, "path", r->list_dir.path);
      cJSON_AddNumberToObject(a, "depth", r->list_dir.depth);
      break;
    case CC_OP_SETUP_PROJECT: {
      cJSON *files = cJSON_AddArrayToObject(a, "files");
      for (size_t i = 0; i < r->setup_project.file_count; i++) {
        cJSON *f = cJSON_CreateObject();
        describe_file(f, &r->setup_project.files[i]);
        cJSON_AddItemToArray(files, f);
      }
      cJSON_AddItemToObject(a, "install", str_or_null(r->setup_project.install));
      break;
    }
    case CC_OP_START_DEV_SERVER:
      cJSON_AddNumberToObject(a, "port", r->start_dev_server.port);
      cJSON_AddItemToObject(a, "cmd", str_or_null(r->start_dev_server.cmd));
      cJSON_AddItemToObject(a, "cwd", str_or_null(r->start_dev_server.cwd));
      break;
    case CC_OP_KILL_PROCESS:
      cJSON_AddNumberToObject(a, "pid", (double)r->kill_process.pid);
      break;
    case CC_OP_GET_HISTORY:
      cJSON_AddNumberToObject(a, "limit", r->get_history.limit);
      cJSON_AddItemToObject(a, "before", str_or_null(r->get_history.before));
      break;
    case CC_OP_GET_RESULT:
      cJSON_AddStringToObject(a, "executionId", r->get_result.execution_id);
      break;
    case CC_OP_UPDATE_PROJECT:
      cJSON_AddItemToObject(a, "patch", cJSON_Duplicate(r->update_project.patch, true));
      break;
    case CC_OP_CLEAR_CACHE:
      cJSON_AddItemToObject(a, "cmd", str_or_null(r->clear_cache.cmd));
      break;
    default:
      break;
  }
  return a;
}

static cJSON *describe_error(const cc_proto_error *err) {
  cJSON *d = cJSON_CreateObject();
  cJSON_AddFalseToObject(d, "valid");
  cJSON_AddStringToObject(d, "reason", cc_proto_reason_name(err->reason));
  cJSON_AddStringToObject(d, "code", cc_status_code(err->status));
  cJSON_AddNumberToObject(d, "status", cc_status_http(err->status));
  cJSON_AddStringToObject(d, "field", err->field);
  cJSON_AddItemToObject(d, "id", err->id[0] ? cJSON_CreateString(err->id) : cJSON_CreateNull());
  return d;
}

static cJSON *describe_request(const cc_request *r) {
  cJSON *d = cJSON_CreateObject();
  cJSON_AddTrueToObject(d, "valid");
  cJSON_AddNumberToObject(d, "v", r->v);
  cJSON_AddStringToObject(d, "id", r->id);
  cJSON_AddStringToObject(d, "op", cc_proto_op_name(r->op));
  cJSON_AddItemToObject(d, "project", str_or_null(r->project));
  cJSON_AddBoolToObject(d, "stream", r->stream);
  cJSON_AddItemToObject(d, "args", describe_args(r));
  return d;
}

static cJSON *describe_response(const cc_response *r) {
  cJSON *d = cJSON_CreateObject();
  cJSON_AddTrueToObject(d, "valid");
  cJSON_AddFalseToObject(d, "isEvent");
  cJSON_AddNumberToObject(d, "v", r->v);
  cJSON_AddItemToObject(d, "id", str_or_null(r->id));
  cJSON_AddBoolToObject(d, "ok", r->ok);
  if (r->ok) {
    cJSON_AddItemToObject(d, "result", cJSON_Duplicate(r->result, true));
    if (r->generation >= 0)
      cJSON_AddNumberToObject(d, "generation", (double)r->generation);
    else
      cJSON_AddNullToObject(d, "generation");
  } else {
    cJSON *e = cJSON_AddObjectToObject(d, "error");
    cJSON_AddStringToObject(e, "code", r->error.code);
    cJSON_AddStringToObject(e, "status", cc_status_code(r->error.status));
    cJSON_AddStringToObject(e, "message", r->error.message);
    cJSON_AddBoolToObject(e, "retryable", r->error.retryable);
    cJSON_AddItemToObject(e, "reason", str_or_null(r->error.reason));
  }
  return d;
}

static cJSON *describe_event(const cc_event *ev) {
  cJSON *d = cJSON_CreateObject();
  cJSON_AddTrueToObject(d, "valid");
  cJSON_AddTrueToObject(d, "isEvent");
  cJSON_AddStringToObject(d, "id", ev->id);
  cJSON_AddStringToObject(d, "event", cc_proto_event_name(ev->type));
  cJSON_AddItemToObject(d, "data", ev->data ? cJSON_Duplicate(ev->data, true) : cJSON_CreateNull());
  return d;
}

/* Decodes `in` as `kind` and describes it; with `reencoded`, also encodes the decoded
 * message again into *reencoded (cc_proto_free) when it was valid. */
static cJSON *decode_and_describe(const char *kind, const char *in, size_t n,
                                  const cc_proto_limits *lim, char **reencoded) {
  cc_proto_error err;
  cJSON *d = NULL;
  if (reencoded) *reencoded = NULL;
  if (strcmp(kind, "request") == 0) {
    cc_request r;
    if (cc_proto_parse_request(in, n, lim, &r, &err) != CC_OK) return describe_error(&err);
    d = describe_request(&r);
    if (reencoded)
      cc_proto_encode_request(r.id, r.op, r.project, r.stream, r.args, lim, reencoded, &err);
    cc_request_cleanup(&r);
    return d;
  }
  bool line = strcmp(kind, "line") == 0;
  cc_proto_line l;
  memset(&l, 0, sizeof l);
  cc_status st;
  if (line) {
    st = cc_proto_parse_line(in, n, lim, &l, &err);
  } else if (strcmp(kind, "response") == 0) {
    st = cc_proto_parse_response(in, n, lim, &l.response, &err);
  } else {
    l.is_event = true;
    st = cc_proto_parse_event(in, n, lim, &l.event, &err);
  }
  if (st != CC_OK) return describe_error(&err);
  if (l.is_event) {
    d = describe_event(&l.event);
    if (reencoded) cc_proto_encode_event(l.event.id, l.event.type, l.event.data, reencoded);
  } else {
    const cc_response *r = &l.response;
    d = describe_response(r);
    if (reencoded) {
      if (r->ok)
        cc_proto_encode_ok(r->id, r->result, r->generation, reencoded);
      else if (r->error.status != CC_INTERNAL || strcmp(r->error.code, "internal") == 0)
        cc_proto_encode_error(r->id, r->error.status, r->error.message, r->error.reason, reencoded);
    }
  }
  cc_proto_line_cleanup(&l);
  return d;
}

/* ---------------------------------------------------------------- matching */

/* expect ⊆ actual: objects by key (recursively), arrays element by element, scalars equal. */
static bool subset(const cJSON *expect, const cJSON *actual, char *path, size_t cap) {
  if (!actual) return false;
  if (cJSON_IsObject(expect)) {
    if (!cJSON_IsObject(actual)) return false;
    const cJSON *e;
    size_t base = strlen(path);
    cJSON_ArrayForEach(e, expect) {
      snprintf(path + base, cap - base, ".%s", e->string);
      if (!subset(e, cJSON_GetObjectItemCaseSensitive(actual, e->string), path, cap)) return false;
      path[base] = '\0';
    }
    return true;
  }
  if (cJSON_IsArray(expect)) {
    if (!cJSON_IsArray(actual) || cJSON_GetArraySize(expect) != cJSON_GetArraySize(actual))
      return false;
    size_t base = strlen(path);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, expect) {
      snprintf(path + base, cap - base, "[%d]", i);
      if (!subset(e, cJSON_GetArrayItem(actual, i), path, cap)) return false;
      path[base] = '\0';
      i++;
    }
    return true;
  }
  return cJSON_Compare(expect, actual, true);
}

/* ---------------------------------------------------------------- case files */

static const char *const LIMIT_KEYS[] = {"maxBodyBytes",    "maxDepth",         "maxStringBytes",
                                         "maxPathBytes",    "maxFileBytes",     "maxFiles",
                                         "maxEnv",          "maxTimeoutMs",     "maxListDepth",
                                         "maxHistoryLimit", "maxResponseBytes", "maxResponseDepth"};

static bool apply_limits(const cJSON *o, cc_proto_limits *l) {
  if (!o) return true;
  if (!cJSON_IsObject(o)) return false;
  const cJSON *e;
  cJSON_ArrayForEach(e, o) {
    if (!cJSON_IsNumber(e) || e->valuedouble < 0) return false;
    double v = e->valuedouble;
    size_t k = 0;
    while (k < sizeof LIMIT_KEYS / sizeof *LIMIT_KEYS && strcmp(LIMIT_KEYS[k], e->string)) k++;
    switch (k) {
      case 0:
        l->max_body_bytes = (size_t)v;
        break;
      case 1:
        l->max_depth = (int)v;
        break;
      case 2:
        l->max_string_bytes = (size_t)v;
        break;
      case 3:
        l->max_path_bytes = (size_t)v;
        break;
      case 4:
        l->max_file_bytes = (size_t)v;
        break;
      case 5:
        l->max_files = (size_t)v;
        break;
      case 6:
        l->max_env = (size_t)v;
        break;
      case 7:
        l->max_timeout_ms = (int64_t)v;
        break;
      case 8:
        l->max_list_depth = (int)v;
        break;
      case 9:
        l->max_history_limit = (int)v;
        break;
      case 10:
        l->max_response_bytes = (size_t)v;
        break;
      case 11:
        l->max_response_depth = (int)v;
        break;
      default:
        return false;
    }
  }
  return true;
}

/* Builds the input bytes from input | inputBase64 | inputRepeat.  NULL when malformed. */
static char *build_input(const cJSON *c, size_t *n) {
  const cJSON *in = cJSON_GetObjectItemCaseSensitive(c, "input");
  const cJSON *b64 = cJSON_GetObjectItemCaseSensitive(c, "inputBase64");
  const cJSON *rep = cJSON_GetObjectItemCaseSensitive(c, "inputRepeat");
  if (!!in + !!b64 + !!rep != 1) return NULL;
  if (in && cJSON_IsString(in)) {
    *n = strlen(in->valuestring);
    char *s = cJSON_malloc(*n + 1);
    if (s) memcpy(s, in->valuestring, *n + 1);
    return s;
  }
  if (in) {
    char *s = cJSON_PrintUnformatted(in);
    if (s) *n = strlen(s);
    return s;
  }
  if (b64) {
    unsigned char *bytes;
    if (!cJSON_IsString(b64) ||
        cc_proto_base64_decode(b64->valuestring, strlen(b64->valuestring), &bytes, n) != CC_OK)
      return NULL;
    return (char *)bytes;
  }
  const cJSON *pre = cJSON_GetObjectItemCaseSensitive(rep, "prefix");
  const cJSON *unit = cJSON_GetObjectItemCaseSensitive(rep, "unit");
  const cJSON *count = cJSON_GetObjectItemCaseSensitive(rep, "count");
  const cJSON *suf = cJSON_GetObjectItemCaseSensitive(rep, "suffix");
  if (!cJSON_IsString(pre) || !cJSON_IsString(unit) || !cJSON_IsNumber(count) ||
      !cJSON_IsString(suf) || count->valuedouble < 0 || count->valuedouble > 64e6)
    return NULL;
  size_t pl = strlen(pre->valuestring), ul = strlen(unit->valuestring),
         sl = strlen(suf->valuestring), k = (size_t)count->valuedouble;
  if (ul && k > (64u << 20) / ul) return NULL;
  *n = pl + ul * k + sl;
  char *s = cJSON_malloc(*n + 1);
  if (!s) return NULL;
  memcpy(s, pre->valuestring, pl);
  for (size_t i = 0; i < k; i++) memcpy(s + pl + i * ul, unit->valuestring, ul);
  memcpy(s + pl + ul * k, suf->valuestring, sl + 1);
  return s;
}

static const char *kind_of(const cJSON *c) {
  const cJSON *k = cJSON_GetObjectItemCaseSensitive(c, "kind");
  if (!k) return "request";
  static const char *const kinds[] = {"request", "response", "event", "line"};
  for (int i = 0; i < 4; i++)
    if (cJSON_IsString(k) && strcmp(k->valuestring, kinds[i]) == 0) return kinds[i];
  return NULL;
}

int cc_proto_case_input(const char *text, size_t len, const char **kind, char **input,
                        size_t *input_len) {
  *input = NULL;
  cJSON *c = cJSON_ParseWithLength(text, len);
  if (!c) return -1;
  *kind = kind_of(c);
  if (*kind) *input = build_input(c, input_len);
  cJSON_Delete(c);
  return *kind && *input ? 0 : -1;
}

static int run_case(const cJSON *c, char *msg, size_t cap) {
  const char *kind = kind_of(c);
  const cJSON *expect = cJSON_GetObjectItemCaseSensitive(c, "expect");
  if (!kind) return say(msg, cap, CC_CASE_MALFORMED, "kind must be request|response|event|line");
  if (!cJSON_IsObject(expect) || !cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(expect, "valid")))
    return say(msg, cap, CC_CASE_MALFORMED, "expect must be an object with \"valid\"");
  cc_proto_limits lim = cc_proto_limits_default();
  if (!apply_limits(cJSON_GetObjectItemCaseSensitive(c, "limits"), &lim))
    return say(msg, cap, CC_CASE_MALFORMED, "limits: unknown key or bad value");
  size_t n = 0;
  char *in = build_input(c, &n);
  if (!in) return say(msg, cap, CC_CASE_MALFORMED, "exactly one of input|inputBase64|inputRepeat");

  int rc = CC_CASE_PASS;
  char *again = NULL;
  cJSON *d = decode_and_describe(kind, in, n, &lim, &again);
  char where[256] = "";
  if (!subset(expect, d, where, sizeof where)) {
    char *got = cJSON_PrintUnformatted(d);
    rc = say(msg, cap, CC_CASE_FAIL, "mismatch at expect%s; decoded: %.600s", where,
             got ? got : "?");
    cc_proto_free(got);
    goto out;
  }
  const cJSON *rt = cJSON_GetObjectItemCaseSensitive(c, "roundTrip");
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "valid")) && !cJSON_IsFalse(rt)) {
    if (!again) {
      rc = say(msg, cap, CC_CASE_FAIL, "round trip: re-encoding the decoded message failed");
      goto out;
    }
    cJSON *d2 = decode_and_describe(kind, again, strlen(again), &lim, NULL);
    if (!cJSON_Compare(d, d2, true)) {
      char *got = cJSON_PrintUnformatted(d2);
      rc = say(msg, cap, CC_CASE_FAIL, "round trip changed the message: %.600s", got ? got : "?");
      cc_proto_free(got);
    }
    cJSON_Delete(d2);
  }
out:
  cc_proto_free(again);
  cJSON_Delete(d);
  cc_proto_free(in);
  return rc;
}

int cc_proto_case_run(const char *text, size_t len, char *msg, size_t cap) {
  if (cap) msg[0] = '\0';
  cJSON *c = cJSON_ParseWithLength(text, len);
  if (!cJSON_IsObject(c)) {
    cJSON_Delete(c);
    return say(msg, cap, CC_CASE_MALFORMED, "the case file is not a JSON object");
  }
  int rc = run_case(c, msg, cap);
  cJSON_Delete(c);
  return rc;
}
