/*
 * Unit tests of the E2B client's response parsing and error mapping (native/e2b/cc_e2b_wire.c):
 * the mapping onto cc_status that the worker relies on (sandbox gone vs file missing, our
 * credentials vs the user's), response JSON in the shapes envd/E2B really send (int64 as
 * strings, enums as names, omitted defaults), and scrubbing of the API key from messages.
 */
#include <stdlib.h>

#include "cc_e2b_wire.h"
#include "cc_test.h"

static cc_status map(int http, const char *body, bool sandbox_op, bool envd, cc_e2b_error *e) {
  return cc_e2b_error_from_response(http, body, strlen(body), sandbox_op, envd, "op", e);
}

static void test_error_mapping(void) {
  cc_e2b_error e;
  /* Control plane: a 404 on a sandbox op means the sandbox is gone -> recreate. */
  CHECK_INT(
      map(404, "{\"code\":404,\"message\":\"Sandbox \\\"x\\\" doesn't exist\"}", true, false, &e),
      CC_NOT_FOUND);
  CHECK(e.sandbox_gone);
  CHECK_INT(e.http_status, 404);
  CHECK(strstr(e.message, "doesn't exist") != NULL);
  /* Our credentials are wrong: never the user's "unauthorized". */
  CHECK_INT(map(401, "{\"code\":401,\"message\":\"Invalid API key\"}", false, false, &e),
            CC_UPSTREAM_ERROR);
  CHECK_INT(map(403, "{\"code\":403,\"message\":\"forbidden\"}", true, false, &e),
            CC_UPSTREAM_ERROR);
  CHECK(!e.sandbox_gone);
  CHECK_INT(map(429, "{\"code\":429,\"message\":\"slow down\"}", false, false, &e),
            CC_RATE_LIMITED);
  CHECK_INT(map(500, "{\"code\":500,\"message\":\"boom\"}", false, false, &e), CC_UPSTREAM_ERROR);
  /* A 400 of the control plane refuses the worker's own request (its configuration), not the
   * user's: upstream_error.  A 409 is a sandbox in transition: try again. */
  CHECK_INT(
      map(400, "{\"code\":400,\"message\":\"Timeout must be greater than 0\"}", false, false, &e),
      CC_UPSTREAM_ERROR);
  CHECK_INT(map(409, "{\"code\":409,\"message\":\"x\"}", true, false, &e), CC_SANDBOX_UNAVAILABLE);
  CHECK(!e.sandbox_gone);
  CHECK_INT(map(502, "<html>bad gateway</html>", false, false, &e), CC_SANDBOX_UNAVAILABLE);
  CHECK_INT(map(504, "", false, false, &e), CC_TIMEOUT);
  CHECK_INT(map(507, "{\"code\":507,\"message\":\"x\"}", false, false, &e), CC_TOO_LARGE);
  /* An empty or non-JSON error body still maps by status. */
  CHECK_INT(map(503, "", false, false, &e), CC_SANDBOX_UNAVAILABLE);
  CHECK_INT(map(418, "<html>teapot</html>", false, false, &e), CC_UPSTREAM_ERROR);
  CHECK(strstr(e.message, "teapot") != NULL);

  /* The edge proxy: the sandbox is gone (reference §2.1). */
  CHECK_INT(
      map(502, "{\"sandboxId\":\"i1\",\"message\":\"The sandbox was not found\",\"code\":502}",
          false, true, &e),
      CC_NOT_FOUND);
  CHECK(e.sandbox_gone);
  /* ... vs a closed port, which is not "gone". */
  CHECK_INT(map(502,
                "{\"sandboxId\":\"i1\",\"message\":\"The sandbox is running but port is not open\","
                "\"port\":49983,\"code\":502}",
                false, true, &e),
            CC_SANDBOX_UNAVAILABLE);
  CHECK(!e.sandbox_gone);

  /* envd Connect errors: the string code wins over the HTTP status; not the sandbox. */
  CHECK_INT(
      map(404, "{\"code\":\"not_found\",\"message\":\"file not found: /x\"}", false, true, &e),
      CC_NOT_FOUND);
  CHECK(!e.sandbox_gone);
  CHECK_STR(e.code, "not_found");
  CHECK_INT(map(409, "{\"code\":\"already_exists\",\"message\":\"directory already exists\"}",
                false, true, &e),
            CC_CONFLICT);
  CHECK_INT(map(400, "{\"code\":\"invalid_argument\",\"message\":\"x\"}", false, true, &e),
            CC_BAD_REQUEST);
  CHECK_INT(map(401, "{\"code\":401,\"message\":\"unauthorized access\"}", false, true, &e),
            CC_UPSTREAM_ERROR);
  /* /files: numeric codes, mapped by status, as the user's request inside the sandbox. */
  CHECK_INT(map(403, "{\"code\":403,\"message\":\"open /etc/shadow: permission denied\"}", false,
                true, &e),
            CC_FORBIDDEN);
  CHECK(strstr(e.message, "/etc/shadow") != NULL);
  CHECK_INT(map(400, "{\"code\":400,\"message\":\"path '/a' is a directory\"}", false, true, &e),
            CC_BAD_REQUEST);
  CHECK_INT(map(409, "{\"code\":409,\"message\":\"x\"}", false, true, &e), CC_CONFLICT);
  CHECK_INT(
      map(500, "{\"code\":500,\"message\":\"error opening file '/a': open /a: permission denied\"}",
          false, true, &e),
      CC_FORBIDDEN);
  CHECK_INT(map(500, "{\"code\":500,\"message\":\"disk I/O error\"}", false, true, &e),
            CC_UPSTREAM_ERROR);
  /* A bare 404 (no envd JSON) is an endpoint envd does not have, not the user's file. */
  CHECK_INT(map(404, "404 page not found", false, true, &e), CC_UPSTREAM_ERROR);
  CHECK_INT(map(404, "{\"code\":404,\"message\":\"path '/a' does not exist\"}", false, true, &e),
            CC_NOT_FOUND);
  CHECK(!e.sandbox_gone);
  CHECK_INT(
      map(507, "{\"code\":507,\"message\":\"not enough disk space available\"}", false, true, &e),
      CC_TOO_LARGE);

  CHECK_INT(cc_e2b_status_from_connect_code("unauthenticated"), CC_UPSTREAM_ERROR);
  CHECK_INT(cc_e2b_status_from_connect_code("permission_denied"), CC_FORBIDDEN);
  CHECK_INT(cc_e2b_status_from_connect_code("no_such_code"), CC_UPSTREAM_ERROR);
}

static void test_scrub(void) {
  const char *key = "e2b_0123456789abcdef";
  char msg[128];
  snprintf(msg, sizeof msg, "bad key %s and again%s.\r\n", key, key);
  cc_e2b_scrub(msg, sizeof msg, key);
  CHECK(strstr(msg, "e2b_0123") == NULL);
  CHECK_STR(msg, "bad key [redacted] and again[redacted].??");
  /* A secret shorter than the marker is dropped, never grown into the message. */
  snprintf(msg, sizeof msg, "xKEYx");
  cc_e2b_scrub(msg, sizeof msg, "KEY");
  CHECK_STR(msg, "xx");
  snprintf(msg, sizeof msg, "nothing");
  cc_e2b_scrub(msg, sizeof msg, NULL);
  CHECK_STR(msg, "nothing");
  cc_e2b_scrub(msg, sizeof msg, "");
  CHECK_STR(msg, "nothing");
  /* Scrubbing also applies to what error mapping copied from a server body. */
  cc_e2b_error e;
  char body[160];
  snprintf(body, sizeof body, "{\"code\":401,\"message\":\"key %s is invalid\"}", key);
  map(401, body, false, false, &e);
  cc_e2b_scrub(e.message, sizeof e.message, key);
  CHECK(strstr(e.message, key) == NULL);
  CHECK(strstr(e.message, "is invalid") != NULL);
}

static void test_sandbox(void) {
  cc_e2b_sandbox sb;
  const char *j =
      "{\"sandboxID\":\"iabc123\",\"templateID\":\"rki5dems9wqfm4r03t7g\",\"alias\":\"base\","
      "\"clientID\":\"6532622b\",\"envdVersion\":\"0.4.3\",\"envdAccessToken\":\"tok\","
      "\"trafficAccessToken\":null,\"domain\":null}";
  CHECK_INT(cc_e2b_sandbox_parse(j, strlen(j), "e2b.app", &sb), CC_OK);
  CHECK_STR(sb.id, "iabc123");
  CHECK_STR(sb.envd_version, "0.4.3");
  CHECK_STR(sb.envd_access_token, "tok");
  CHECK_STR(sb.domain, "e2b.app"); /* null domain -> the configured one */
  CHECK_STR(sb.template_id, "rki5dems9wqfm4r03t7g");
  j = "{\"sandboxID\":\"i2\",\"envdVersion\":\"0.4.3\",\"domain\":\"localhost:4567\"}";
  CHECK_INT(cc_e2b_sandbox_parse(j, strlen(j), "e2b.app", &sb), CC_OK);
  CHECK_STR(sb.domain, "localhost:4567");
  CHECK_STR(sb.envd_access_token, "");
  char host[64];
  CHECK_INT(cc_e2b_host(&sb, 3000, host, sizeof host), CC_OK);
  CHECK_STR(host, "3000-i2.localhost:4567");
  CHECK_INT(cc_e2b_host(&sb, 3000, host, 8), CC_TOO_LARGE);
  CHECK_STR(host, "");
  /* Required fields, and values that would be unsafe in a URL or a header. */
  const char *bad[] = {
      "{\"envdVersion\":\"0.4.3\"}",
      "{\"sandboxID\":\"i1\"}",
      "{\"sandboxID\":\"i/../1\",\"envdVersion\":\"0.4.3\"}",
      "{\"sandboxID\":\"i1\",\"envdVersion\":\"0.4.3\",\"envdAccessToken\":\"a\\r\\nX-Evil: 1\"}",
      "{\"sandboxID\":\"i1\",\"envdVersion\":\"0.4.3\",\"domain\":\"evil.com/path\"}",
      "not json",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK_INT(cc_e2b_sandbox_parse(bad[i], strlen(bad[i]), "e2b.app", &sb), CC_UPSTREAM_ERROR);
}

static void test_info(void) {
  cc_e2b_info in;
  const char *j =
      "{\"templateID\":\"t\",\"sandboxID\":\"i1\",\"clientID\":\"6532622b\","
      "\"startedAt\":\"2025-01-01T00:00:00Z\",\"endAt\":\"2025-01-01T00:05:00Z\","
      "\"cpuCount\":2,\"memoryMB\":512,\"diskSizeMB\":1024,\"state\":\"running\","
      "\"envdVersion\":\"0.4.3\"}";
  CHECK_INT(cc_e2b_info_parse(j, strlen(j), &in), CC_OK);
  CHECK_STR(in.state, "running");
  CHECK_INT(in.cpu_count, 2);
  CHECK_INT(in.memory_mb, 512);
  CHECK_STR(in.end_at, "2025-01-01T00:05:00Z");
}

static void test_entries(void) {
  cc_e2b_entry_list l;
  const char *j =
      "{\"entries\":[{\"name\":\"a.txt\",\"type\":\"FILE_TYPE_FILE\",\"path\":\"/home/user/a.txt\","
      "\"size\":\"4096\",\"mode\":420,\"permissions\":\"-rw-r--r--\",\"owner\":\"user\","
      "\"group\":\"user\",\"modifiedTime\":\"2025-01-01T00:00:00.123Z\"},"
      "{\"name\":\"d\",\"type\":\"FILE_TYPE_DIRECTORY\",\"path\":\"/home/user/d\",\"mode\":493},"
      "{\"name\":\"l\",\"type\":2,\"path\":\"/home/user/l\",\"size\":12,"
      "\"symlinkTarget\":\"/home/user/d\"}]}";
  CHECK_INT(cc_e2b_entries_parse(j, strlen(j), 100, &l), CC_OK);
  CHECK_INT(l.count, 3);
  if (l.count == 3) {
    CHECK_STR(l.items[0].name, "a.txt");
    CHECK_INT(l.items[0].type, CC_E2B_FILE_FILE);
    CHECK_INT(l.items[0].size, 4096);
    CHECK_INT(l.items[0].mode, 420);
    CHECK_STR(l.items[0].modified_time, "2025-01-01T00:00:00.123Z");
    CHECK(l.items[0].symlink_target == NULL);
    CHECK_INT(l.items[1].type, CC_E2B_FILE_DIR);
    CHECK_INT(l.items[1].size, 0);
    CHECK_STR(l.items[1].owner, "");
    CHECK_STR(l.items[2].symlink_target, "/home/user/d");
  }
  cc_e2b_entry_list_cleanup(&l);
  CHECK_INT(cc_e2b_entries_parse(j, strlen(j), 2, &l), CC_TOO_LARGE);
  CHECK(l.items == NULL && l.count == 0);
  /* An empty directory: envd omits the empty list. */
  CHECK_INT(cc_e2b_entries_parse("{}", 2, 100, &l), CC_OK);
  CHECK_INT(l.count, 0);
  const char *bad = "{\"entries\":[{\"name\":\"a\",\"size\":\"4k\"}]}";
  CHECK_INT(cc_e2b_entries_parse(bad, strlen(bad), 100, &l), CC_UPSTREAM_ERROR);
  CHECK(l.items == NULL);

  cc_e2b_entry e;
  j = "{\"entry\":{\"name\":\"x\",\"type\":\"FILE_TYPE_DIRECTORY\",\"path\":\"/home/user/x\"}}";
  CHECK_INT(cc_e2b_entry_parse(j, strlen(j), &e), CC_OK);
  CHECK_STR(e.path, "/home/user/x");
  cc_e2b_entry_cleanup(&e);
  CHECK_INT(cc_e2b_entry_parse("{}", 2, &e), CC_UPSTREAM_ERROR);
  cc_e2b_entry_cleanup(&e);
}

static void test_processes(void) {
  cc_e2b_process_list l;
  const char *j =
      "{\"processes\":[{\"config\":{\"cmd\":\"/bin/bash\",\"args\":[\"-l\",\"-c\","
      "\"sleep 10\"],\"envs\":{\"A\":\"1\"},\"cwd\":\"/tmp\"},\"pid\":42,\"tag\":\"dev\"},"
      "{\"config\":{\"cmd\":\"/bin/true\"},\"pid\":\"43\"}]}";
  CHECK_INT(cc_e2b_processes_parse(j, strlen(j), &l), CC_OK);
  CHECK_INT(l.count, 2);
  if (l.count == 2) {
    CHECK_INT(l.items[0].pid, 42);
    CHECK_STR(l.items[0].tag, "dev");
    CHECK_STR(l.items[0].cwd, "/tmp");
    CHECK_INT(l.items[0].args_count, 3);
    if (l.items[0].args_count == 3) CHECK_STR(l.items[0].args[2], "sleep 10");
    CHECK_INT(l.items[1].pid, 43);
    CHECK(l.items[1].tag == NULL);
    CHECK_INT(l.items[1].args_count, 0);
  }
  cc_e2b_process_list_cleanup(&l);
  CHECK_INT(cc_e2b_processes_parse("{}", 2, &l), CC_OK);
  CHECK_INT(l.count, 0);
  const char *bad = "{\"processes\":[{\"pid\":1,\"config\":{\"args\":[1]}}]}";
  CHECK_INT(cc_e2b_processes_parse(bad, strlen(bad), &l), CC_UPSTREAM_ERROR);
  CHECK(l.items == NULL);
}

static void test_upload(void) {
  char p[64];
  const char *j = "[{\"path\":\"/home/user/hello.txt\",\"name\":\"hello.txt\",\"type\":\"file\"}]";
  CHECK_INT(cc_e2b_upload_parse(j, strlen(j), p, sizeof p), CC_OK);
  CHECK_STR(p, "/home/user/hello.txt");
  CHECK_INT(cc_e2b_upload_parse("[]", 2, p, sizeof p), CC_UPSTREAM_ERROR);
  CHECK_INT(cc_e2b_upload_parse("{}", 2, p, sizeof p), CC_UPSTREAM_ERROR);
}

int main(void) {
  RUN(test_error_mapping);
  RUN(test_scrub);
  RUN(test_sandbox);
  RUN(test_info);
  RUN(test_entries);
  RUN(test_processes);
  RUN(test_upload);
  return CC_TEST_DONE();
}
