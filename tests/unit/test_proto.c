/*
 * cc_proto: round trips of every op, event and response; each malformed input class with
 * its own reason; limits (size, depth, strings, files, env) and path normalisation.
 * The table-driven protocol cases in tests/protocol/ complement these.
 */
#include <stdlib.h>

#include "cc_proto.h"
#include "cc_test.h"

static cc_proto_limits L;

/* Parses `text` and returns the reason (NONE on success); *req is cleaned afterwards. */
static cc_proto_reason reason_of(const char *text) {
  cc_request req;
  cc_proto_error err;
  cc_status st = cc_proto_parse_request(text, strlen(text), &L, &req, &err);
  cc_request_cleanup(&req);
  if (st == CC_OK) return CC_REASON_NONE;
  if (err.reason == CC_REASON_TOO_LARGE)
    CHECK_INT(st, CC_TOO_LARGE);
  else
    CHECK_INT(st, CC_BAD_REQUEST);
  CHECK(err.message[0] != '\0');
  return err.reason;
}

static cJSON *json(const char *text) {
  cJSON *j = cJSON_Parse(text);
  CHECK(j != NULL);
  return j;
}

/* Encodes a request with `args_text`, parses it back into *req (caller cleans). */
static cc_status round_trip(cc_proto_op op, const char *project, bool stream, const char *args_text,
                            cc_request *req) {
  cJSON *args = args_text ? json(args_text) : NULL;
  char *text = NULL;
  cc_proto_error err;
  cc_status st = cc_proto_encode_request("r-1", op, project, stream, args, &L, &text, &err);
  cJSON_Delete(args);
  memset(req, 0, sizeof *req);
  if (st != CC_OK) return st;
  st = cc_proto_parse_request(text, strlen(text), &L, req, &err);
  cc_proto_free(text);
  if (st == CC_OK) {
    CHECK_STR(req->id, "r-1");
    CHECK_INT(req->op, op);
    CHECK_INT(req->v, 1);
    CHECK(cJSON_IsObject(req->args));
  }
  return st;
}

static void every_op_round_trips(void) {
  cc_request r;
  CHECK_INT(round_trip(CC_OP_HELLO, NULL, false, NULL, &r), CC_OK);
  CHECK(r.project == NULL);
  cc_request_cleanup(&r);

  CHECK_INT(round_trip(CC_OP_EXEC, "p1", true,
                       "{\"cmd\":\"npm list\",\"cwd\":\"app\",\"env\":{\"A\":\"1\",\"B_2\":\"x\"},"
                       "\"timeoutMs\":5000,\"useCache\":false,\"readOnly\":true,\"stdin\":\"in\"}",
                       &r),
            CC_OK);
  CHECK_STR(r.project, "p1");
  CHECK(r.stream);
  CHECK_STR(r.exec.cmd, "npm list");
  CHECK_STR(r.exec.cwd, "/home/user/app");
  CHECK_INT(r.exec.env_count, 2);
  CHECK_STR(r.exec.env[0].name, "A");
  CHECK_STR(r.exec.env[1].value, "x");
  CHECK_INT(r.exec.timeout_ms, 5000);
  CHECK(!r.exec.use_cache);
  CHECK(r.exec.read_only);
  CHECK_INT(r.exec.stdin_len, 2);
  CHECK_STR(r.exec.stdin_data, "in");
  /* the original args are kept as `input` */
  CHECK_STR(cJSON_GetObjectItem(r.args, "cwd")->valuestring, "app");
  cc_request_cleanup(&r);

  CHECK_INT(round_trip(CC_OP_EXEC, "p1", false, "{\"cmd\":\"ls\"}", &r), CC_OK);
  CHECK(r.exec.use_cache); /* default true */
  CHECK(!r.exec.read_only);
  CHECK(r.exec.cwd == NULL);
  CHECK_INT(r.exec.timeout_ms, 0);
  CHECK(r.exec.stdin_data == NULL);
  CHECK(!r.stream);
  cc_request_cleanup(&r);

  CHECK_INT(
      round_trip(CC_OP_WRITE_FILE, "p1", false,
                 "{\"path\":\"/home/user/a.bin\",\"content\":\"AAEC/w==\",\"encoding\":\"base64\"}",
                 &r),
      CC_OK);
  CHECK_STR(r.write_file.file.path, "/home/user/a.bin");
  CHECK_INT(r.write_file.file.content_len, 4);
  CHECK(memcmp(r.write_file.file.content, "\x00\x01\x02\xff", 4) == 0);
  CHECK_INT(r.write_file.file.encoding, CC_ENC_BASE64);
  cc_request_cleanup(&r);

  CHECK_INT(round_trip(CC_OP_WRITE_FILE, "p1", false,
                       "{\"path\":\"x.txt\",\"content\":\"h\xc3\xa9\"}", &r),
            CC_OK);
  CHECK_STR(r.write_file.file.path, "/home/user/x.txt");
  CHECK_INT(r.write_file.file.content_len, 3);
  CHECK_INT(r.write_file.file.encoding, CC_ENC_UTF8);
  cc_request_cleanup(&r);

  CHECK_INT(round_trip(CC_OP_READ_FILE, "p1", false,
                       "{\"path\":\"./x.txt\",\"encoding\":\"base64\"}", &r),
            CC_OK);
  CHECK_STR(r.read_file.path, "/home/user/x.txt");
  CHECK_INT(r.read_file.encoding, CC_ENC_BASE64);
  cc_request_cleanup(&r);

  CHECK_INT(round_trip(CC_OP_LIST_DIR, "p1", false, NULL, &r), CC_OK);
  CHECK_STR(r.list_dir.path, "/home/user");
  CHECK_INT(r.list_dir.depth, 1);
  cc_request_cleanup(&r);
  CHECK_INT(round_trip(CC_OP_LIST_DIR, "p1", false, "{\"path\":\"src\",\"depth\":3}", &r), CC_OK);
  CHECK_STR(r.list_dir.path, "/home/user/src");
  CHECK_INT(r.list_dir.depth, 3);
  cc_request_cleanup(&r);

  CHECK_INT(round_trip(CC_OP_SETUP_PROJECT, "p1", true,
                       "{\"files\":[{\"path\":\"package.json\",\"content\":\"{}\"},"
                       "{\"path\":\"b/c.bin\",\"content\":\"aGk=\",\"encoding\":\"base64\"}],"
                       "\"install\":\"npm install\"}",
                       &r),
            CC_OK);
  CHECK_INT(r.setup_project.file_count, 2);
  CHECK_STR(r.setup_project.files[0].path, "/home/user/package.json");
  CHECK_STR((const char *)r.setup_project.files[1].content, "hi");
  CHECK_STR(r.setup_project.install, "npm install");
  cc_request_cleanup(&r);
  CHECK_INT(round_trip(CC_OP_SETUP_PROJECT, "p1", false, "{\"files\":[]}", &r), CC_OK);
  CHECK_INT(r.setup_project.file_count, 0);
  CHECK(r.setup_project.install == NULL);
  cc_request_cleanup(&r);

  CHECK_INT(round_trip(CC_OP_START_DEV_SERVER, "p1", false,
                       "{\"port\":3000,\"cmd\":\"npm run dev\",\"cwd\":\"/home/user/app\"}", &r),
            CC_OK);
  CHECK_INT(r.start_dev_server.port, 3000);
  CHECK_STR(r.start_dev_server.cmd, "npm run dev");
  CHECK_STR(r.start_dev_server.cwd, "/home/user/app");
  cc_request_cleanup(&r);

  CHECK_INT(round_trip(CC_OP_KILL_PROCESS, "p1", false, "{\"pid\":4242}", &r), CC_OK);
  CHECK_INT(r.kill_process.pid, 4242);
  cc_request_cleanup(&r);

  CHECK_INT(round_trip(CC_OP_LIST_PROCESSES, "p1", false, NULL, &r), CC_OK);
  cc_request_cleanup(&r);

  CHECK_INT(round_trip(CC_OP_GET_HISTORY, "p1", false, NULL, &r), CC_OK);
  CHECK_INT(r.get_history.limit, 50);
  CHECK(r.get_history.before == NULL);
  cc_request_cleanup(&r);
  CHECK_INT(round_trip(CC_OP_GET_HISTORY, "p1", false, "{\"limit\":1000,\"before\":\"c-9\"}", &r),
            CC_OK);
  CHECK_INT(r.get_history.limit, 1000);
  CHECK_STR(r.get_history.before, "c-9");
  cc_request_cleanup(&r);

  CHECK_INT(round_trip(CC_OP_GET_RESULT, NULL, false, "{\"executionId\":\"e-1\"}", &r), CC_OK);
  CHECK_STR(r.get_result.execution_id, "e-1");
  cc_request_cleanup(&r);

  CHECK_INT(round_trip(CC_OP_GET_PROJECT, "p1", false, NULL, &r), CC_OK);
  cc_request_cleanup(&r);

  CHECK_INT(round_trip(CC_OP_UPDATE_PROJECT, "p1", false,
                       "{\"patch\":{\"name\":\"x\",\"settings\":{\"a\":null}}}", &r),
            CC_OK);
  CHECK_STR(cJSON_GetObjectItem(r.update_project.patch, "name")->valuestring, "x");
  cc_request_cleanup(&r);

  CHECK_INT(round_trip(CC_OP_LIST_PROJECTS, NULL, false, NULL, &r), CC_OK);
  cc_request_cleanup(&r);
  CHECK_INT(round_trip(CC_OP_DELETE_PROJECT, "p1", false, NULL, &r), CC_OK);
  cc_request_cleanup(&r);
  CHECK_INT(round_trip(CC_OP_CLEAR_CACHE, "p1", false, NULL, &r), CC_OK);
  CHECK(r.clear_cache.cmd == NULL);
  cc_request_cleanup(&r);
  CHECK_INT(round_trip(CC_OP_CLEAR_CACHE, "p1", false, "{\"cmd\":\"ls\"}", &r), CC_OK);
  CHECK_STR(r.clear_cache.cmd, "ls");
  cc_request_cleanup(&r);
}

static void op_table_is_complete(void) {
  static const char *const design[] = {
      "hello",          "exec",         "writeFile",     "readFile",   "listDir",   "setupProject",
      "startDevServer", "killProcess",  "listProcesses", "getHistory", "getResult", "getProject",
      "updateProject",  "listProjects", "deleteProject", "clearCache"};
  CHECK_INT(CC_OP_COUNT, sizeof design / sizeof design[0]);
  for (size_t i = 0; i < sizeof design / sizeof design[0]; i++) {
    cc_proto_op op;
    CHECK(cc_proto_op_from_name(design[i], &op));
    CHECK_STR(cc_proto_op_name(op), design[i]);
  }
  CHECK(!cc_proto_op_needs_project(CC_OP_HELLO));
  CHECK(!cc_proto_op_needs_project(CC_OP_LIST_PROJECTS));
  CHECK(cc_proto_op_needs_project(CC_OP_EXEC));
  CHECK(cc_proto_op_streams(CC_OP_EXEC) && cc_proto_op_streams(CC_OP_SETUP_PROJECT));
  CHECK(!cc_proto_op_streams(CC_OP_READ_FILE));
  cc_proto_op op;
  CHECK(!cc_proto_op_from_name("Exec", &op));
  /* reasons are distinct and round trip */
  for (int i = 0; i < CC_REASON_COUNT; i++) {
    cc_proto_reason r;
    CHECK(cc_proto_reason_from_name(cc_proto_reason_name(i), &r));
    CHECK_INT(r, i);
  }
}

static void malformed_classes_are_distinct(void) {
  CHECK_INT(reason_of("{\"v\":1,"), CC_REASON_NOT_JSON);
  CHECK_INT(reason_of(""), CC_REASON_NOT_JSON);
  CHECK_INT(reason_of("{\"v\":1} x"), CC_REASON_NOT_JSON);
  CHECK_INT(reason_of("{\"v\":1,\"id\":\"\xff\"}"), CC_REASON_NOT_JSON); /* invalid UTF-8 */
  CHECK_INT(reason_of("[1]"), CC_REASON_WRONG_TYPE);
  CHECK_INT(reason_of("{\"v\":1,\"id\":7,\"op\":\"hello\"}"), CC_REASON_WRONG_TYPE);
  CHECK_INT(
      reason_of("{\"v\":1,\"id\":\"a\",\"op\":\"exec\",\"project\":\"p\",\"args\":{\"cmd\":5}}"),
      CC_REASON_WRONG_TYPE);
  CHECK_INT(reason_of("{\"v\":1,\"id\":\"a\",\"op\":\"exec\",\"project\":\"p\",\"args\":[]}"),
            CC_REASON_WRONG_TYPE);
  CHECK_INT(reason_of("{\"v\":1,\"id\":\"a\",\"op\":\"exec\",\"project\":\"p\",\"args\":{}}"),
            CC_REASON_MISSING_FIELD);
  CHECK_INT(reason_of("{\"id\":\"a\",\"op\":\"hello\"}"), CC_REASON_MISSING_FIELD);
  CHECK_INT(reason_of("{\"v\":1,\"id\":\"a\",\"op\":\"exec\",\"args\":{\"cmd\":\"ls\"}}"),
            CC_REASON_MISSING_FIELD);
  CHECK_INT(
      reason_of(
          "{\"v\":1,\"id\":\"a\",\"op\":\"exec\",\"project\":\"../x\",\"args\":{\"cmd\":\"ls\"}}"),
      CC_REASON_BAD_PROJECT);
  CHECK_INT(reason_of("{\"v\":1,\"id\":\"a\",\"op\":\"readFile\",\"project\":\"p\",\"args\":{"
                      "\"path\":\"/etc/passwd\"}}"),
            CC_REASON_BAD_PATH);
  CHECK_INT(reason_of("{\"v\":1,\"id\":\"a\",\"op\":\"rm\",\"project\":\"p\"}"),
            CC_REASON_UNKNOWN_OP);
  CHECK_INT(reason_of("{\"v\":2,\"id\":\"a\",\"op\":\"hello\"}"), CC_REASON_BAD_VERSION);
  CHECK_INT(reason_of("{\"v\":1,\"id\":\"a\",\"op\":\"startDevServer\",\"project\":\"p\",\"args\":{"
                      "\"port\":70000}}"),
            CC_REASON_BAD_VALUE);
  CHECK_INT(reason_of("{\"v\":1,\"id\":\"a\",\"op\":\"hello\",\"stream\":true}"),
            CC_REASON_BAD_VALUE);
  CHECK_INT(reason_of("{\"v\":1,\"id\":\"a\",\"op\":\"writeFile\",\"project\":\"p\","
                      "\"args\":{\"path\":\"f\",\"content\":\"!!!!\",\"encoding\":\"base64\"}}"),
            CC_REASON_BAD_VALUE);
  CHECK_INT(reason_of("{\"v\":1,\"id\":\"a\",\"op\":\"writeFile\",\"project\":\"p\","
                      "\"args\":{\"path\":\"f\",\"content\":\"x\",\"encoding\":\"latin1\"}}"),
            CC_REASON_BAD_VALUE);
  /* NUL inside a string: cJSON would truncate it silently, so it is refused */
  CHECK_INT(reason_of("{\"v\":1,\"id\":\"a\",\"op\":\"readFile\",\"project\":\"p\",\"args\":{"
                      "\"path\":\"a\\u0000b\"}}"),
            CC_REASON_BAD_PATH);
  CHECK_INT(reason_of("{\"v\":1,\"id\":\"a\",\"op\":\"exec\",\"project\":\"p\",\"args\":{\"cmd\":"
                      "\"a\\u0000b\"}}"),
            CC_REASON_BAD_VALUE);
  /* unknown fields are ignored; null counts as absent */
  CHECK_INT(reason_of("{\"v\":1,\"id\":\"a\",\"op\":\"hello\",\"extra\":{\"x\":[1]},\"project\":"
                      "null,\"args\":null}"),
            CC_REASON_NONE);
}

static void error_carries_id_field_and_encodes(void) {
  const char *text =
      "{\"v\":1,\"id\":\"req-7\",\"op\":\"exec\",\"project\":\"p\",\"args\":{\"cmd\":\"ls\","
      "\"cwd\":\"../..\"}}";
  cc_request req;
  cc_proto_error err;
  CHECK_INT(cc_proto_parse_request(text, strlen(text), &L, &req, &err), CC_BAD_REQUEST);
  CHECK_STR(err.id, "req-7");
  CHECK_STR(err.field, "args.cwd");
  CHECK_INT(err.reason, CC_REASON_BAD_PATH);
  char *out;
  CHECK_INT(cc_proto_encode_decode_error(&err, &out), CC_OK);
  cc_response resp;
  CHECK_INT(cc_proto_parse_response(out, strlen(out), &L, &resp, NULL), CC_OK);
  CHECK(!resp.ok);
  CHECK_STR(resp.id, "req-7");
  CHECK_STR(resp.error.code, "bad_request");
  CHECK_STR(resp.error.reason, "bad_path");
  CHECK_INT(resp.error.status, CC_BAD_REQUEST);
  CHECK(!resp.error.retryable);
  CHECK(strstr(resp.error.message, "args.cwd") != NULL);
  cc_response_cleanup(&resp);
  cc_proto_free(out);
  cc_request_cleanup(&req); /* cleaning twice is harmless */
}

/* Error messages name fields and limits but never quote what was sent: requests carry
 * commands, env values and file content, and errors end up in logs and records. */
static void error_messages_never_quote_content(void) {
  static const char *const bad[] = {
      "{\"v\":1,\"id\":\"a\",\"op\":\"SECRET_OP\",\"project\":\"p\"}",
      "{\"v\":1,\"id\":\"a\",\"op\":\"getProject\",\"project\":\"SECRET/x\"}",
      "{\"v\":1,\"id\":\"a\",\"op\":\"readFile\",\"project\":\"p\",\"args\":{\"path\":\"/etc/"
      "SECRET\"}}",
      "{\"v\":1,\"id\":\"a\",\"op\":\"exec\",\"project\":\"p\",\"args\":{\"cmd\":\"x\",\"env\":{"
      "\"K\":7,\"SECRET\":1}}}",
      "{\"v\":1,\"id\":\"a\",\"op\":\"exec\",\"project\":\"p\",\"args\":{\"cmd\":\"x\",\"env\":{"
      "\"1SECRET\":\"v\"}}}",
      "{\"v\":1,\"id\":\"a\",\"op\":\"writeFile\",\"project\":\"p\",\"args\":{\"path\":\"f\","
      "\"content\":\"SECRET!!\",\"encoding\":\"base64\"}}",
      "{\"v\":1,\"id\":\"a\",\"op\":\"writeFile\",\"project\":\"p\",\"args\":{\"path\":\"f\","
      "\"content\":\"x\",\"encoding\":\"SECRET\"}}",
      "{\"v\":1,\"id\":\"a\",\"op\":\"exec\",\"project\":\"p\",\"args\":{\"cmd\":\"SECRET\\u0000\"}"
      "}",
      "{\"v\":1,\"id\":\"a\",\"op\":\"exec\",\"project\":\"p\",\"args\":{\"cmd\":\"SECRET\"",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cc_request req;
    cc_proto_error err;
    CHECK(cc_proto_parse_request(bad[i], strlen(bad[i]), &L, &req, &err) != CC_OK);
    CHECK(err.message[0] != '\0');
    CHECK(strstr(err.message, "SECRET") == NULL);
    CHECK(strstr(err.field, "SECRET") == NULL);
    char *out;
    CHECK_INT(cc_proto_encode_decode_error(&err, &out), CC_OK);
    CHECK(strstr(out, "SECRET") == NULL);
    cc_proto_free(out);
  }
}

static char *repeat(const char *prefix, const char *unit, size_t n, const char *suffix) {
  size_t pl = strlen(prefix), ul = strlen(unit), sl = strlen(suffix);
  char *s = malloc(pl + ul * n + sl + 1);
  memcpy(s, prefix, pl);
  for (size_t i = 0; i < n; i++) memcpy(s + pl + i * ul, unit, ul);
  memcpy(s + pl + ul * n, suffix, sl + 1);
  return s;
}

static void depth_and_size_limits(void) {
  /* depth 32 in total is accepted: the request object + args + patch + 29 levels */
  char *ok = repeat(
      "{\"v\":1,\"id\":\"a\",\"op\":\"updateProject\",\"project\":\"p\",\"args\":{\"patch\":{"
      "\"x\":",
      "[", 29, "");
  char *ok2 = repeat(ok, "]", 29, "}}}");
  CHECK_INT(reason_of(ok2), CC_REASON_NONE);
  free(ok);
  free(ok2);
  char *deep = repeat(
      "{\"v\":1,\"id\":\"a\",\"op\":\"updateProject\",\"project\":\"p\",\"args\":{\"patch\":{"
      "\"x\":",
      "[", 30, "");
  char *deep2 = repeat(deep, "]", 30, "}}}");
  CHECK_INT(reason_of(deep2), CC_REASON_TOO_DEEP);
  free(deep);
  free(deep2);
  /* 200k unclosed brackets: refused by the pre-scan, cJSON never recurses */
  char *bomb = repeat("", "[", 200000, "");
  CHECK_INT(reason_of(bomb), CC_REASON_TOO_DEEP);
  free(bomb);
  /* brackets inside strings do not count */
  char *str = repeat("{\"v\":1,\"id\":\"a\",\"op\":\"exec\",\"project\":\"p\",\"args\":{\"cmd\":\"",
                     "[{", 100, "\\\"]\"}}");
  CHECK_INT(reason_of(str), CC_REASON_NONE);
  free(str);

  /* body size: checked first */
  char *big = repeat("{\"v\":1,\"id\":\"a\",\"op\":\"exec\",\"project\":\"p\",\"args\":{\"cmd\":\"",
                     "x", L.max_body_bytes, "\"}}");
  cc_request req;
  cc_proto_error err;
  CHECK_INT(cc_proto_parse_request(big, strlen(big), &L, &req, &err), CC_TOO_LARGE);
  CHECK_INT(err.reason, CC_REASON_TOO_LARGE);
  CHECK_INT(cc_status_http(err.status), 413);
  free(big);
  /* a string over max_string_bytes */
  char *cmd = repeat("{\"v\":1,\"id\":\"a\",\"op\":\"exec\",\"project\":\"p\",\"args\":{\"cmd\":\"",
                     "x", L.max_string_bytes + 1, "\"}}");
  CHECK_INT(reason_of(cmd), CC_REASON_TOO_LARGE);
  free(cmd);
  /* limits set at creation are honoured */
  cc_proto_limits small = L;
  small.max_body_bytes = 64;
  small.max_depth = 2;
  small.max_files = 1;
  small.max_env = 1;
  small.max_file_bytes = 3;
  const char *t = "{\"v\":1,\"id\":\"a\",\"op\":\"hello\",\"args\":{\"a\":{\"b\":1}}}";
  CHECK_INT(cc_proto_parse_request(t, strlen(t), &small, &req, &err), CC_BAD_REQUEST);
  CHECK_INT(err.reason, CC_REASON_TOO_DEEP);
  small.max_depth = 32;
  t = "{\"v\":1,\"id\":\"a\",\"op\":\"setupProject\",\"project\":\"p\",\"args\":{\"files\":[{},{}]}"
      "}";
  CHECK_INT(cc_proto_parse_request(t, strlen(t), &small, &req, &err), CC_TOO_LARGE);
  small.max_body_bytes = 1 << 20;
  CHECK_INT(cc_proto_parse_request(t, strlen(t), &small, &req, &err), CC_TOO_LARGE);
  CHECK_STR(err.field, "args.files");
  t = "{\"v\":1,\"id\":\"a\",\"op\":\"exec\",\"project\":\"p\",\"args\":{\"cmd\":\"x\",\"env\":{"
      "\"A\":\"1\",\"B\":\"2\"}}}";
  CHECK_INT(cc_proto_parse_request(t, strlen(t), &small, &req, &err), CC_TOO_LARGE);
  t = "{\"v\":1,\"id\":\"a\",\"op\":\"writeFile\",\"project\":\"p\",\"args\":{\"path\":\"f\","
      "\"content\":\"abcd\"}}";
  CHECK_INT(cc_proto_parse_request(t, strlen(t), &small, &req, &err), CC_TOO_LARGE);
  t = "{\"v\":1,\"id\":\"a\",\"op\":\"writeFile\",\"project\":\"p\",\"args\":{\"path\":\"f\","
      "\"content\":\"YWJj\",\"encoding\":\"base64\"}}";
  CHECK_INT(cc_proto_parse_request(t, strlen(t), &small, &req, &err), CC_OK); /* 3 bytes decoded */
  cc_request_cleanup(&req);
  t = "{\"v\":1,\"id\":\"a\",\"op\":\"writeFile\",\"project\":\"p\",\"args\":{\"path\":\"f\","
      "\"content\":\"YWJjZA==\",\"encoding\":\"base64\"}}";
  CHECK_INT(cc_proto_parse_request(t, strlen(t), &small, &req, &err), CC_TOO_LARGE);
  /* numeric ranges */
  CHECK_INT(reason_of("{\"v\":1,\"id\":\"a\",\"op\":\"getHistory\",\"project\":\"p\",\"args\":{"
                      "\"limit\":1001}}"),
            CC_REASON_BAD_VALUE);
  CHECK_INT(
      reason_of(
          "{\"v\":1,\"id\":\"a\",\"op\":\"getHistory\",\"project\":\"p\",\"args\":{\"limit\":0}}"),
      CC_REASON_BAD_VALUE);
  CHECK_INT(
      reason_of(
          "{\"v\":1,\"id\":\"a\",\"op\":\"killProcess\",\"project\":\"p\",\"args\":{\"pid\":1.5}}"),
      CC_REASON_BAD_VALUE);
  CHECK_INT(reason_of("{\"v\":1,\"id\":\"a\",\"op\":\"exec\",\"project\":\"p\",\"args\":{\"cmd\":"
                      "\"x\",\"timeoutMs\":1e300}}"),
            CC_REASON_BAD_VALUE);
  CHECK_INT(reason_of("{\"v\":1,\"id\":\"a\",\"op\":\"exec\",\"project\":\"p\",\"args\":{\"cmd\":"
                      "\"x\",\"timeoutMs\":\"5\"}}"),
            CC_REASON_WRONG_TYPE);
}

static const char *norm(const char *in) {
  static char buf[8192];
  char *out;
  if (cc_proto_normalize_path(in, strlen(in), 4096, &out) != CC_OK) return "<bad>";
  snprintf(buf, sizeof buf, "%s", out);
  cc_proto_free(out);
  return buf;
}

static void path_normalisation(void) {
  CHECK_STR(norm("a.txt"), "/home/user/a.txt");
  CHECK_STR(norm("."), "/home/user");
  CHECK_STR(norm("./"), "/home/user");
  CHECK_STR(norm("/home/user"), "/home/user");
  CHECK_STR(norm("/home/user/"), "/home/user");
  CHECK_STR(norm("//home///user//a/./b/"), "/home/user/a/b");
  CHECK_STR(norm("a/../b"), "/home/user/b");
  CHECK_STR(norm("a/b/../../c"), "/home/user/c");
  CHECK_STR(norm("/home/user/../user/x"), "/home/user/x"); /* lexical: ends inside */
  CHECK_STR(norm("..."), "/home/user/...");
  CHECK_STR(norm("..a/b.."), "/home/user/..a/b..");
  CHECK_STR(norm("\xc3\xa9t\xc3\xa9.txt"), "/home/user/\xc3\xa9t\xc3\xa9.txt");
  CHECK_STR(norm(".."), "<bad>");
  CHECK_STR(norm("../user"), "/home/user"); /* /home/user again: inside */
  CHECK_STR(norm("../user2"), "<bad>");
  CHECK_STR(norm("/home/username"), "<bad>"); /* prefix but not inside */
  CHECK_STR(norm("/etc/passwd"), "<bad>");
  CHECK_STR(norm("/"), "<bad>");
  CHECK_STR(norm("/.."), "<bad>");
  CHECK_STR(norm("a/../../.."), "<bad>");
  CHECK_STR(norm("/home/user/a/../../../etc"), "<bad>");
  CHECK_STR(norm(""), "<bad>");
  char *out;
  CHECK_INT(cc_proto_normalize_path("a\0b", 3, 4096, &out), CC_BAD_REQUEST);
  CHECK(out == NULL);
  /* length limit on the input and on the normalised result */
  char *lng = repeat("", "a", 4096, "");
  CHECK_INT(cc_proto_normalize_path(lng, 4096, 4096, &out), CC_BAD_REQUEST); /* +/home/user/ */
  CHECK_INT(cc_proto_normalize_path(lng, 4085, 4096, &out), CC_OK);          /* exactly 4096 */
  CHECK_INT(strlen(out), 4096);
  cc_proto_free(out);
  free(lng);
  /* writeFile must name a file, not home itself */
  CHECK_INT(reason_of("{\"v\":1,\"id\":\"a\",\"op\":\"writeFile\",\"project\":\"p\",\"args\":{"
                      "\"path\":\".\",\"content\":\"\"}}"),
            CC_REASON_BAD_PATH);
  CHECK_INT(
      reason_of(
          "{\"v\":1,\"id\":\"a\",\"op\":\"listDir\",\"project\":\"p\",\"args\":{\"path\":\".\"}}"),
      CC_REASON_NONE);
}

static void project_ids(void) {
  CHECK(cc_proto_valid_project_id("a"));
  CHECK(cc_proto_valid_project_id("My-Project_1.2"));
  char id64[65];
  memset(id64, 'x', 64);
  id64[64] = 0;
  CHECK(cc_proto_valid_project_id(id64));
  char id65[66];
  memset(id65, 'x', 65);
  id65[65] = 0;
  CHECK(!cc_proto_valid_project_id(id65));
  CHECK(!cc_proto_valid_project_id(""));
  CHECK(!cc_proto_valid_project_id(".hidden"));
  CHECK(!cc_proto_valid_project_id("-x"));
  CHECK(!cc_proto_valid_project_id("a/b"));
  CHECK(!cc_proto_valid_project_id("a b"));
  CHECK(!cc_proto_valid_project_id("\xc3\xa9"));
  CHECK(!cc_proto_valid_project_id(NULL));
}

static void responses_round_trip(void) {
  cJSON *result = json(
      "{\"id\":\"e1\",\"stdout\":\"hi\\n\",\"stderr\":\"\",\"exitCode\":0,"
      "\"duration\":12,\"cached\":true,\"status\":\"success\"}");
  char *text;
  CHECK_INT(cc_proto_encode_ok("r9", result, 7, &text), CC_OK);
  cc_response resp;
  CHECK_INT(cc_proto_parse_response(text, strlen(text), &L, &resp, NULL), CC_OK);
  CHECK(resp.ok);
  CHECK_STR(resp.id, "r9");
  CHECK_INT(resp.generation, 7);
  cc_proto_exec_result er;
  CHECK_INT(cc_proto_exec_result_from_json(resp.result, &er), CC_OK);
  CHECK_STR(er.stdout_text, "hi\n");
  CHECK(er.cached);
  CHECK_INT(er.status, CC_RECORD_SUCCESS);
  CHECK_INT(er.duration_ms, 12);
  cc_response_cleanup(&resp);
  cc_proto_free(text);
  /* the result is borrowed, not consumed */
  CHECK_STR(cJSON_GetObjectItem(result, "id")->valuestring, "e1");
  cJSON_Delete(result);

  CHECK_INT(cc_proto_encode_ok("r10", NULL, -1, &text), CC_OK);
  CHECK_INT(cc_proto_parse_response(text, strlen(text), &L, &resp, NULL), CC_OK);
  CHECK_INT(resp.generation, -1);
  CHECK(cJSON_IsObject(resp.result));
  cc_response_cleanup(&resp);
  cc_proto_free(text);

  for (int s = 1; s < CC_STATUS_COUNT; s++) {
    CHECK_INT(cc_proto_encode_error(NULL, (cc_status)s, NULL, NULL, &text), CC_OK);
    CHECK_INT(cc_proto_parse_response(text, strlen(text), &L, &resp, NULL), CC_OK);
    CHECK(!resp.ok);
    CHECK(resp.id == NULL);
    CHECK_INT(resp.error.status, s);
    CHECK_INT(resp.error.retryable, cc_status_retryable((cc_status)s));
    CHECK_STR(resp.error.message, cc_status_message((cc_status)s));
    CHECK(resp.error.reason == NULL);
    cc_response_cleanup(&resp);
    cc_proto_free(text);
  }
  /* malformed responses */
  cc_proto_error err;
  const char *bad[] = {"{\"v\":1,\"id\":\"a\",\"ok\":true}",
                       "{\"v\":1,\"id\":\"a\",\"ok\":\"yes\"}",
                       "{\"v\":1,\"id\":\"a\",\"ok\":false,\"error\":{\"message\":\"m\"}}",
                       "{\"v\":3,\"id\":\"a\",\"ok\":true,\"result\":{}}", "nope"};
  cc_proto_reason want[] = {CC_REASON_MISSING_FIELD, CC_REASON_WRONG_TYPE, CC_REASON_MISSING_FIELD,
                            CC_REASON_BAD_VERSION, CC_REASON_NOT_JSON};
  for (int i = 0; i < 5; i++) {
    CHECK(cc_proto_parse_response(bad[i], strlen(bad[i]), &L, &resp, &err) != CC_OK);
    CHECK_INT(err.reason, want[i]);
  }
  /* an unknown code from a newer worker becomes internal but keeps its text */
  const char *future =
      "{\"v\":1,\"id\":\"a\",\"ok\":false,\"error\":{\"code\":\"quota\",\"message\":\"m\","
      "\"retryable\":true}}";
  CHECK_INT(cc_proto_parse_response(future, strlen(future), &L, &resp, &err), CC_OK);
  CHECK_INT(resp.error.status, CC_INTERNAL);
  CHECK_STR(resp.error.code, "quota");
  CHECK(resp.error.retryable);
  cc_response_cleanup(&resp);
}

static void events_round_trip(void) {
  char *text;
  cJSON *start = json("{\"executionId\":\"e1\",\"pid\":12}");
  CHECK_INT(cc_proto_encode_event("r1", CC_EVENT_START, start, &text), CC_OK);
  cJSON_Delete(start);
  cc_proto_line line;
  CHECK_INT(cc_proto_parse_line(text, strlen(text), &L, &line, NULL), CC_OK);
  CHECK(line.is_event);
  CHECK_INT(line.event.type, CC_EVENT_START);
  CHECK_STR(line.event.id, "r1");
  CHECK_INT(cJSON_GetObjectItem(line.event.data, "pid")->valueint, 12);
  cc_proto_line_cleanup(&line);
  cc_proto_free(text);

  /* raw output bytes: NUL and invalid UTF-8 become U+FFFD; valid text passes unchanged */
  CHECK_INT(cc_proto_encode_output_event("r1", CC_EVENT_STDOUT, "a\0b\xff\xc3\xa9\n", 7, &text),
            CC_OK);
  cc_event ev;
  CHECK_INT(cc_proto_parse_event(text, strlen(text), &L, &ev, NULL), CC_OK);
  CHECK_INT(ev.type, CC_EVENT_STDOUT);
  CHECK_STR(ev.text,
            "a\xef\xbf\xbd"
            "b\xef\xbf\xbd\xc3\xa9\n");
  cc_event_cleanup(&ev);
  cc_proto_free(text);

  CHECK_INT(cc_proto_encode_output_event("r1", CC_EVENT_STDERR, "oops\n", 5, &text), CC_OK);
  size_t n = strlen(text);
  char *nl = malloc(n + 2);
  memcpy(nl, text, n);
  memcpy(nl + n, "\n", 2);
  CHECK_INT(cc_proto_parse_line(nl, n + 1, &L, &line, NULL), CC_OK); /* trailing newline ok */
  CHECK_INT(line.event.type, CC_EVENT_STDERR);
  CHECK_STR(line.event.text, "oops\n");
  cc_proto_line_cleanup(&line);
  free(nl);
  cc_proto_free(text);

  /* the final line of a stream is a response */
  CHECK_INT(cc_proto_encode_ok("r1", NULL, 3, &text), CC_OK);
  CHECK_INT(cc_proto_parse_line(text, strlen(text), &L, &line, NULL), CC_OK);
  CHECK(!line.is_event);
  CHECK(line.response.ok);
  CHECK_INT(line.response.generation, 3);
  cc_proto_line_cleanup(&line);
  cc_proto_free(text);

  cJSON *num = cJSON_CreateNumber(1);
  CHECK_INT(cc_proto_encode_event("r1", CC_EVENT_STDOUT, num, &text), CC_BAD_REQUEST);
  cJSON_Delete(num);
  cc_proto_error err;
  const char *badev = "{\"id\":\"r\",\"event\":\"exit\",\"data\":\"\"}";
  CHECK(cc_proto_parse_event(badev, strlen(badev), &L, &ev, &err) != CC_OK);
  CHECK_INT(err.reason, CC_REASON_BAD_VALUE);
  badev = "{\"id\":\"r\",\"event\":\"stdout\"}";
  CHECK(cc_proto_parse_event(badev, strlen(badev), &L, &ev, &err) != CC_OK);
  CHECK_INT(err.reason, CC_REASON_MISSING_FIELD);
}

static void encode_request_validates_locally(void) {
  char *text = (char *)"unchanged";
  cc_proto_error err;
  cJSON *args = json("{\"path\":\"../../etc/shadow\"}");
  CHECK_INT(cc_proto_encode_request("r", CC_OP_READ_FILE, "p", false, args, &L, &text, &err),
            CC_BAD_REQUEST);
  CHECK(text == NULL);
  CHECK_INT(err.reason, CC_REASON_BAD_PATH);
  CHECK_INT(cc_proto_encode_request("r", CC_OP_READ_FILE, "bad id", false, args, &L, &text, &err),
            CC_BAD_REQUEST);
  CHECK_INT(err.reason, CC_REASON_BAD_PROJECT);
  cJSON_Delete(args);
  CHECK_INT(cc_proto_encode_request("r", CC_OP_COUNT, "p", false, NULL, &L, &text, &err),
            CC_BAD_REQUEST);
}

static void base64_and_utf8_helpers(void) {
  static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  static const char *const enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  for (int i = 0; i < 7; i++) {
    char *e;
    size_t el;
    CHECK_INT(cc_proto_base64_encode((const unsigned char *)plain[i], strlen(plain[i]), &e, &el),
              CC_OK);
    CHECK_STR(e, enc[i]);
    unsigned char *d;
    size_t dl;
    CHECK_INT(cc_proto_base64_decode(e, el, &d, &dl), CC_OK);
    CHECK_INT(dl, strlen(plain[i]));
    CHECK_STR((char *)d, plain[i]);
    cc_proto_free(d);
    cc_proto_free(e);
  }
  static const char *const bad[] = {
      "Zg=", "Zg", "Z===", "Zh==", "Zm9=", "Zm 9v", "Zm9v\n", "Zg==Zg==", "====", "Zm-_"};
  for (int i = 0; i < 10; i++) {
    unsigned char *d;
    size_t dl;
    CHECK_INT(cc_proto_base64_decode(bad[i], strlen(bad[i]), &d, &dl), CC_BAD_REQUEST);
    CHECK(d == NULL);
  }
  /* complete prefix: hold back only an unfinished sequence */
  CHECK_INT(cc_proto_utf8_complete_prefix("ab\xc3", 3), 2);
  CHECK_INT(cc_proto_utf8_complete_prefix("ab\xc3\xa9", 4), 4);
  CHECK_INT(cc_proto_utf8_complete_prefix("a\xe2\x82", 3), 1);
  CHECK_INT(cc_proto_utf8_complete_prefix("a\xf0\x9f\x98", 4), 1);
  CHECK_INT(cc_proto_utf8_complete_prefix("a\xf0\x9f\x98\x80", 5), 5);
  CHECK_INT(cc_proto_utf8_complete_prefix("a\xff", 2), 2);     /* can never complete */
  CHECK_INT(cc_proto_utf8_complete_prefix("a\xed\xa0", 3), 3); /* surrogate: never valid */
  CHECK_INT(cc_proto_utf8_complete_prefix("", 0), 0);
  char *s;
  size_t sl;
  CHECK_INT(cc_proto_utf8_sanitize("\xed\xa0\x80x", 4, &s, &sl), CC_OK); /* surrogate */
  CHECK_STR(s, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdx");
  cc_proto_free(s);
}

static void exec_result_objects(void) {
  cc_proto_exec_result r = {.id = "e1",
                            .stdout_text = "o\xff",
                            .stderr_text = "",
                            .exit_code = 2,
                            .duration_ms = 1500,
                            .status = CC_RECORD_FAILED,
                            .truncated = true,
                            .sandbox_recreated = true};
  cJSON *o;
  CHECK_INT(cc_proto_exec_result_to_json(&r, &o), CC_OK);
  cc_proto_exec_result back;
  CHECK_INT(cc_proto_exec_result_from_json(o, &back), CC_OK);
  CHECK_STR(back.stdout_text, "o\xef\xbf\xbd");
  CHECK_INT(back.exit_code, 2);
  CHECK_INT(back.status, CC_RECORD_FAILED);
  CHECK(back.truncated && back.sandbox_recreated && !back.cached);
  cJSON_Delete(o);
  r.truncated = r.sandbox_recreated = false;
  CHECK_INT(cc_proto_exec_result_to_json(&r, &o), CC_OK);
  CHECK(cJSON_GetObjectItem(o, "truncated") == NULL); /* optional fields only when true */
  cJSON_DeleteItemFromObject(o, "status");
  CHECK_INT(cc_proto_exec_result_from_json(o, &back), CC_BAD_REQUEST);
  cJSON_Delete(o);
  cJSON *lim;
  CHECK_INT(cc_proto_limits_to_json(&L, &lim), CC_OK);
  CHECK_INT(cJSON_GetObjectItem(lim, "maxBodyBytes")->valuedouble, 1 << 20);
  CHECK_INT(cJSON_GetObjectItem(lim, "maxDepth")->valueint, 32);
  cJSON_Delete(lim);
}

int main(void) {
  L = cc_proto_limits_default();
  RUN(op_table_is_complete);
  RUN(every_op_round_trips);
  RUN(malformed_classes_are_distinct);
  RUN(error_carries_id_field_and_encodes);
  RUN(error_messages_never_quote_content);
  RUN(depth_and_size_limits);
  RUN(path_normalisation);
  RUN(project_ids);
  RUN(responses_round_trip);
  RUN(events_round_trip);
  RUN(encode_request_validates_locally);
  RUN(base64_and_utf8_helpers);
  RUN(exec_result_objects);
  return CC_TEST_DONE();
}
