/* cc_client, the wasm client's core, natively with a scripted transport: requests are real
 * protocol messages, responses and NDJSON streams are read whatever the chunking (down to
 * one byte), local exec hits send nothing, generations invalidate, errors keep their fields,
 * reads fall back to the cache when the worker is unreachable, and limits hold. */
#include <stdlib.h>
#include <string.h>

#include "cc_client.h"
#include "cc_test.h"

typedef struct {
  int sends;
  uint32_t last_req;
  char last_body[4096];
  bool last_stream;
  int dones;
  bool ok;
  char json[8192];
  char events[1024]; /* "type:data|" concatenated */
  int generations;
  int64_t last_generation;
} fake;

static cc_status f_send(void *ctx, uint32_t req, const char *body, size_t len, bool stream) {
  fake *f = ctx;
  f->sends++;
  f->last_req = req;
  f->last_stream = stream;
  snprintf(f->last_body, sizeof f->last_body, "%.*s", (int)len, body);
  return CC_OK;
}

static void f_event(void *ctx, uint32_t req, cc_proto_event_type type, const char *data,
                    size_t len) {
  fake *f = ctx;
  size_t n = strlen(f->events);
  snprintf(f->events + n, sizeof f->events - n, "%s:%.*s|", cc_proto_event_name(type), (int)len,
           data);
}

static void f_done(void *ctx, uint32_t req, bool ok, const char *json, size_t len) {
  fake *f = ctx;
  f->dones++;
  f->ok = ok;
  snprintf(f->json, sizeof f->json, "%.*s", (int)len, json);
}

static void f_generation(void *ctx, const char *project, int64_t generation) {
  fake *f = ctx;
  f->generations++;
  f->last_generation = generation;
}

typedef struct {
  fake f;
  cc_client_cache *cache;
  cc_client *c;
} rig;

static void rig_init(rig *r, const cc_client_options *opt) {
  memset(r, 0, sizeof *r);
  CHECK_INT(cc_client_cache_open(":memory:", NULL, &r->cache), CC_OK);
  cc_client_io io = {.ctx = &r->f, .send = f_send, .event = f_event, .done = f_done,
                     .generation = f_generation};
  CHECK_INT(cc_client_new(r->cache, &io, opt, &r->c), CC_OK);
}

static void rig_cleanup(rig *r) {
  cc_client_free(r->c);
  cc_client_cache_free(r->cache);
}

/* Feeds `text` in chunks of `step` bytes. */
static void feed(rig *r, uint32_t req, const char *text, size_t step, int64_t now) {
  size_t n = strlen(text);
  for (size_t i = 0; i < n; i += step)
    cc_client_on_data(r->c, req, text + i, n - i < step ? n - i : step, now);
}

static cc_status request(rig *r, uint32_t req, const char *op, const char *project,
                         const char *args, bool stream, int64_t now) {
  char *err = NULL;
  cc_status st = cc_client_request(r->c, req, op, project, args, stream, now, &err);
  free(err);
  return st;
}

static const char exec_ok[] =
    "{\"v\":1,\"id\":\"c1\",\"ok\":true,\"generation\":7,\"result\":{\"id\":\"e1\","
    "\"stdout\":\"hi\\n\",\"stderr\":\"\",\"exitCode\":0,\"duration\":12,\"cached\":false,"
    "\"status\":\"success\"}}";

static void exec_round_trip_then_local_hit(void) {
  for (size_t step = 1; step <= 64; step *= 4) {
    rig r;
    rig_init(&r, NULL);
    CHECK_INT(request(&r, 1, "exec", "p", "{\"cmd\":\"echo hi\"}", false, 1000), CC_OK);
    CHECK_INT(r.f.sends, 1);
    /* What was sent is a valid protocol request for that op and project. */
    cc_request q;
    memset(&q, 0, sizeof q);
    CHECK_INT(cc_proto_parse_request(r.f.last_body, strlen(r.f.last_body), NULL, &q, NULL), CC_OK);
    CHECK_INT(q.op, CC_OP_EXEC);
    CHECK_STR(q.project, "p");
    CHECK_STR(q.exec.cmd, "echo hi");
    cc_request_cleanup(&q);
    feed(&r, 1, exec_ok, step, 1000);
    CHECK_INT(r.f.dones, 0); /* a plain response ends with the transport */
    cc_client_on_end(r.c, 1, 200, NULL, NULL, 1000);
    CHECK_INT(r.f.dones, 1);
    CHECK(r.f.ok);
    CHECK(strstr(r.f.json, "\"stdout\":\"hi\\n\"") != NULL);
    CHECK_INT(r.f.generations, 1);
    CHECK_INT(r.f.last_generation, 7);
    /* The same command again: answered at once from the cache, nothing sent. */
    CHECK_INT(request(&r, 2, "exec", "p", "{\"cmd\":\"echo hi\"}", false, 2000), CC_OK);
    CHECK_INT(r.f.sends, 1);
    CHECK_INT(r.f.dones, 2);
    CHECK(strstr(r.f.json, "\"cached\":true") != NULL);
    CHECK(strstr(r.f.json, "\"local\":true") != NULL);
    /* useCache:false, another cwd, stdin, or an older entry than maxStale: sent. */
    CHECK_INT(request(&r, 3, "exec", "p", "{\"cmd\":\"echo hi\",\"useCache\":false}", false, 2000), CC_OK);
    CHECK_INT(request(&r, 4, "exec", "p", "{\"cmd\":\"echo hi\",\"cwd\":\"/home/user/x\"}", false, 2000), CC_OK);
    CHECK_INT(request(&r, 5, "exec", "p", "{\"cmd\":\"echo hi\"}", false, 1000 + 3600001), CC_OK);
    CHECK_INT(r.f.sends, 4);
    rig_cleanup(&r);
  }
}

static void newer_generation_invalidates(void) {
  rig r;
  rig_init(&r, NULL);
  request(&r, 1, "exec", "p", "{\"cmd\":\"echo hi\"}", false, 1000);
  feed(&r, 1, exec_ok, 1000, 1000);
  cc_client_on_end(r.c, 1, 200, NULL, NULL, 1000);
  /* Another tab says p reached generation 8. */
  CHECK_INT(cc_client_seen_generation(r.c, "p", 8, NULL), CC_OK);
  CHECK_INT(request(&r, 2, "exec", "p", "{\"cmd\":\"echo hi\"}", false, 1001), CC_OK);
  CHECK_INT(r.f.sends, 2);
  cc_client_on_end(r.c, 2, 0, "canceled", NULL, 1001);
  rig_cleanup(&r);
}

static void stream_events_any_chunking(void) {
  /* "é" is split across chunks when step is 1; lines span chunks for every step. */
  const char stream[] =
      "{\"id\":\"c1\",\"event\":\"start\",\"data\":{\"executionId\":\"e9\"}}\n"
      "{\"id\":\"c1\",\"event\":\"stdout\",\"data\":\"caf\xc3\xa9\\n\"}\r\n"
      "{\"id\":\"c1\",\"event\":\"stderr\",\"data\":\"warn\"}\n"
      "{\"v\":1,\"id\":\"c1\",\"ok\":true,\"generation\":3,\"result\":{\"id\":\"e9\","
      "\"stdout\":\"caf\xc3\xa9\\n\",\"stderr\":\"warn\",\"exitCode\":0,\"duration\":5,"
      "\"cached\":false,\"status\":\"success\"}}";
  for (size_t step = 1; step < sizeof stream; step += 7) {
    rig r;
    rig_init(&r, NULL);
    CHECK_INT(request(&r, 1, "exec", "p", "{\"cmd\":\"x\"}", true, 10), CC_OK);
    CHECK(r.f.last_stream);
    feed(&r, 1, stream, step, 10);
    CHECK_STR(r.f.events, "start:{\"executionId\":\"e9\"}|stdout:caf\xc3\xa9\n|stderr:warn|");
    CHECK_INT(r.f.dones, 0); /* the final line has no newline yet: complete only at the end */
    cc_client_on_end(r.c, 1, 200, NULL, NULL, 10);
    CHECK_INT(r.f.dones, 1);
    CHECK(r.f.ok);
    rig_cleanup(&r);
  }
  /* With its newline, the final line answers at once, before the transport ends. */
  rig r;
  rig_init(&r, NULL);
  request(&r, 1, "exec", "p", "{\"cmd\":\"x\"}", true, 10);
  feed(&r, 1, stream, 13, 10);
  feed(&r, 1, "\n", 1, 10);
  CHECK_INT(r.f.dones, 1);
  CHECK(r.f.ok);
  cc_client_on_end(r.c, 1, 200, NULL, NULL, 10);
  CHECK_INT(r.f.dones, 1);
  rig_cleanup(&r);
}

static void stream_without_final_line_is_an_error(void) {
  rig r;
  rig_init(&r, NULL);
  request(&r, 1, "exec", "p", "{\"cmd\":\"x\"}", true, 10);
  feed(&r, 1, "{\"id\":\"c1\",\"event\":\"stdout\",\"data\":\"a\"}\n", 5, 10);
  cc_client_on_end(r.c, 1, 200, NULL, NULL, 10);
  CHECK_INT(r.f.dones, 1);
  CHECK(!r.f.ok);
  CHECK(strstr(r.f.json, "\"upstream_error\"") != NULL);
  rig_cleanup(&r);
}

static void errors_keep_their_fields_and_http_maps(void) {
  rig r;
  rig_init(&r, NULL);
  request(&r, 1, "readFile", "p", "{\"path\":\"a.txt\"}", false, 10);
  feed(&r, 1,
       "{\"v\":1,\"id\":\"c1\",\"ok\":false,\"error\":{\"code\":\"not_found\",\"message\":\"no a.txt\","
       "\"retryable\":false,\"executionId\":\"e5\"}}",
       3, 10);
  cc_client_on_end(r.c, 1, 404, NULL, NULL, 10);
  CHECK(!r.f.ok);
  CHECK(strstr(r.f.json, "\"code\":\"not_found\"") != NULL);
  CHECK(strstr(r.f.json, "\"executionId\":\"e5\"") != NULL);
  /* A proxy's HTML error page: the HTTP status decides the code. */
  request(&r, 2, "getProject", "p", NULL, false, 10);
  feed(&r, 2, "<html>bad gateway</html>", 100, 10);
  cc_client_on_end(r.c, 2, 502, NULL, NULL, 10);
  CHECK(strstr(r.f.json, "\"upstream_error\"") != NULL);
  request(&r, 3, "getProject", "p", NULL, false, 10);
  cc_client_on_end(r.c, 3, 401, NULL, NULL, 10);
  CHECK(strstr(r.f.json, "\"unauthorized\"") != NULL);
  /* Garbage with 200 is not a success. */
  request(&r, 4, "getProject", "p", NULL, false, 10);
  feed(&r, 4, "{\"v\":1,", 100, 10);
  cc_client_on_end(r.c, 4, 200, NULL, NULL, 10);
  CHECK(!r.f.ok);
  CHECK(strstr(r.f.json, "\"upstream_error\"") != NULL);
  rig_cleanup(&r);
}

static void offline_reads_come_from_cache_marked_stale(void) {
  rig r;
  rig_init(&r, NULL);
  request(&r, 1, "getProject", "p", NULL, false, 10);
  feed(&r, 1, "{\"v\":1,\"id\":\"c1\",\"ok\":true,\"generation\":2,\"result\":{\"projectId\":\"p\",\"name\":\"N\"}}", 9, 10);
  cc_client_on_end(r.c, 1, 200, NULL, NULL, 10);
  CHECK(r.f.ok);
  request(&r, 2, "getProject", "p", NULL, false, 20);
  cc_client_on_end(r.c, 2, 0, "unreachable", "connect ECONNREFUSED", 20);
  CHECK(r.f.ok);
  CHECK(strstr(r.f.json, "\"name\":\"N\"") != NULL);
  CHECK(strstr(r.f.json, "\"stale\":true") != NULL);
  /* Nothing cached for q; a write is never answered from the cache. */
  request(&r, 3, "getProject", "q", NULL, false, 20);
  cc_client_on_end(r.c, 3, 0, "unreachable", "down", 20);
  CHECK(!r.f.ok);
  CHECK(strstr(r.f.json, "worker unreachable: down") != NULL);
  request(&r, 4, "writeFile", "p", "{\"path\":\"a\",\"content\":\"b\"}", false, 20);
  cc_client_on_end(r.c, 4, 0, "timeout", NULL, 20);
  CHECK(!r.f.ok);
  CHECK(strstr(r.f.json, "\"timeout\"") != NULL);
  request(&r, 5, "getProject", "p", NULL, false, 20);
  cc_client_on_end(r.c, 5, 0, "canceled", NULL, 20);
  CHECK(strstr(r.f.json, "\"canceled\"") != NULL);
  rig_cleanup(&r);
}

static void invalid_requests_are_refused_locally(void) {
  rig r;
  rig_init(&r, NULL);
  char *err = NULL;
  CHECK_INT(cc_client_request(r.c, 1, "nope", "p", NULL, false, 0, &err), CC_BAD_REQUEST);
  CHECK(err && strstr(err, "unknown_op"));
  free(err);
  CHECK_INT(cc_client_request(r.c, 2, "exec", "bad id!", "{\"cmd\":\"x\"}", false, 0, &err),
            CC_BAD_REQUEST);
  free(err);
  CHECK_INT(cc_client_request(r.c, 3, "exec", "p", "[1]", false, 0, &err), CC_BAD_REQUEST);
  free(err);
  CHECK_INT(cc_client_request(r.c, 4, "readFile", "p", "{\"path\":\"../../etc\"}", false, 0, &err),
            CC_BAD_REQUEST);
  CHECK(err && strstr(err, "bad_path"));
  free(err);
  CHECK_INT(r.f.sends, 0);
  CHECK_INT(r.f.dones, 0);
  rig_cleanup(&r);
}

static void limits_and_close(void) {
  cc_client_options opt = {.max_stale_ms = 1000, .max_in_flight = 2};
  opt.proto = cc_proto_limits_default();
  opt.proto.max_response_bytes = 64;
  rig r;
  rig_init(&r, &opt);
  CHECK_INT(request(&r, 1, "getProject", "p", NULL, false, 0), CC_OK);
  CHECK_INT(request(&r, 2, "getProject", "p", NULL, false, 0), CC_OK);
  CHECK_INT(request(&r, 3, "getProject", "p", NULL, false, 0), CC_RATE_LIMITED);
  feed(&r, 1, exec_ok, 10, 0); /* longer than 64 bytes */
  cc_client_on_end(r.c, 1, 200, NULL, NULL, 0);
  CHECK(!r.f.ok);
  CHECK(strstr(r.f.json, "\"too_large\"") != NULL);
  int before = r.f.dones;
  cc_client_free(r.c); /* request 2 is still in flight: it ends as canceled */
  r.c = NULL;
  CHECK_INT(r.f.dones, before + 1);
  CHECK(strstr(r.f.json, "\"canceled\"") != NULL);
  rig_cleanup(&r);
}

int main(void) {
  RUN(exec_round_trip_then_local_hit);
  RUN(newer_generation_invalidates);
  RUN(stream_events_any_chunking);
  RUN(stream_without_final_line_is_an_error);
  RUN(errors_keep_their_fields_and_http_maps);
  RUN(offline_reads_come_from_cache_marked_stale);
  RUN(invalid_requests_are_refused_locally);
  RUN(limits_and_close);
  return CC_TEST_DONE();
}
