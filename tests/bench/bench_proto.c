/*
 * bench_proto: cost of the protocol v1 codec (shared/cc_proto.c) on typical messages, each
 * printed beside a baseline measured in the same run: plain cJSON parsing or printing of the
 * same bytes, i.e. what validation, pre-scan and normalisation add on top of JSON itself.
 * Run through `scripts/bench proto` (Release build).  Not a test: nothing is asserted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cc_proto.h"

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Runs fn for about 300 ms (after a warm-up) and returns ns per call; best of 3 rounds. */
static double measure(void (*fn)(void *), void *arg) {
  for (int i = 0; i < 100; i++) fn(arg);
  double best = 1e300;
  for (int round = 0; round < 3; round++) {
    long n = 0;
    double t0 = now_ns(), t;
    do {
      for (int i = 0; i < 64; i++) fn(arg);
      n += 64;
      t = now_ns();
    } while (t - t0 < 100e6);
    double per = (t - t0) / n;
    if (per < best) best = per;
  }
  return best;
}

typedef struct {
  const char *text;
  size_t len;
} msg;

static cc_proto_limits LIM;

static void decode_request(void *a) {
  msg *m = a;
  cc_request r;
  cc_proto_error e;
  if (cc_proto_parse_request(m->text, m->len, &LIM, &r, &e) != CC_OK) abort();
  cc_request_cleanup(&r);
}
static void decode_response(void *a) {
  msg *m = a;
  cc_response r;
  if (cc_proto_parse_response(m->text, m->len, &LIM, &r, NULL) != CC_OK) abort();
  cc_response_cleanup(&r);
}
static void cjson_parse(void *a) {
  msg *m = a;
  cJSON *j = cJSON_ParseWithLength(m->text, m->len);
  if (!j) abort();
  cJSON_Delete(j);
}

typedef struct {
  cJSON *result;
  cJSON *whole; /* the same response as one cJSON tree, for the baseline */
} enc;

static void encode_ok(void *a) {
  enc *e = a;
  char *out;
  if (cc_proto_encode_ok("r-123", e->result, 42, &out) != CC_OK) abort();
  cc_proto_free(out);
}
static void cjson_print(void *a) {
  enc *e = a;
  char *out = cJSON_PrintUnformatted(e->whole);
  if (!out) abort();
  cJSON_free(out);
}

typedef struct {
  const char *bytes;
  size_t len;
} chunk;

static void output_event(void *a) {
  chunk *c = a;
  char *out;
  if (cc_proto_encode_output_event("r-123", CC_EVENT_STDOUT, c->bytes, c->len, &out) != CC_OK)
    abort();
  cc_proto_free(out);
}
static void cjson_event(void *a) {
  chunk *c = a; /* baseline: build and print the same event, no UTF-8 check */
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "id", "r-123");
  cJSON_AddStringToObject(o, "event", "stdout");
  cJSON_AddStringToObject(o, "data", c->bytes);
  char *out = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  cJSON_free(out);
  (void)c->len;
}

static void row(const char *what, const char *base_what, double ours, double base, size_t bytes) {
  printf("%-44s %9.0f ns  (%7.1f MB/s) | %-28s %9.0f ns | x%.2f\n", what, ours, bytes / ours * 1e3,
         base_what, base, ours / base);
}

static char *repeat(char c, size_t n) {
  char *s = malloc(n + 1);
  memset(s, c, n);
  s[n] = '\0';
  return s;
}

int main(void) {
  LIM = cc_proto_limits_default();
  printf(
      "protocol v1 codec (shared/cc_proto.c), best of 3 rounds; baseline = cJSON on the same "
      "bytes\n\n");

  msg exec = {
      "{\"v\":1,\"id\":\"r-123\",\"op\":\"exec\",\"project\":\"demo\",\"args\":{\"cmd\":\"npm "
      "list\","
      "\"cwd\":\"app\",\"env\":{\"NODE_ENV\":\"test\"},\"useCache\":true}}",
      0};
  exec.len = strlen(exec.text);
  row("decode exec request (typical)", "cJSON_Parse+Delete", measure(decode_request, &exec),
      measure(cjson_parse, &exec), exec.len);

  /* writeFile with 256 KiB of content, base64 */
  size_t raw = 256 << 10;
  unsigned char *bin = (unsigned char *)repeat('x', raw);
  char *b64;
  size_t b64n;
  cc_proto_base64_encode(bin, raw, &b64, &b64n);
  size_t cap = b64n + 256;
  char *wf = malloc(cap);
  snprintf(wf, cap,
           "{\"v\":1,\"id\":\"r\",\"op\":\"writeFile\",\"project\":\"demo\",\"args\":{\"path\":"
           "\"src/data.bin\",\"encoding\":\"base64\",\"content\":\"%s\"}}",
           b64);
  msg big = {wf, strlen(wf)};
  row("decode writeFile 256 KiB base64", "cJSON_Parse+Delete", measure(decode_request, &big),
      measure(cjson_parse, &big), big.len);

  /* a cached ExecutionResult response with 1 KiB of stdout */
  char *out = repeat('o', 1024);
  cc_proto_exec_result er = {.id = "exec_01",
                             .stdout_text = out,
                             .stderr_text = "",
                             .exit_code = 0,
                             .duration_ms = 12,
                             .cached = true,
                             .status = CC_RECORD_SUCCESS};
  enc e;
  cc_proto_exec_result_to_json(&er, &e.result);
  e.whole = cJSON_CreateObject();
  cJSON_AddNumberToObject(e.whole, "v", 1);
  cJSON_AddStringToObject(e.whole, "id", "r-123");
  cJSON_AddTrueToObject(e.whole, "ok");
  cJSON_AddItemToObject(e.whole, "result", cJSON_Duplicate(e.result, true));
  cJSON_AddNumberToObject(e.whole, "generation", 42);
  char *printed = cJSON_PrintUnformatted(e.whole);
  row("encode ok response, ExecutionResult 1 KiB", "cJSON_PrintUnformatted", measure(encode_ok, &e),
      measure(cjson_print, &e), strlen(printed));

  msg resp = {printed, strlen(printed)};
  row("decode that response (client side)", "cJSON_Parse+Delete", measure(decode_response, &resp),
      measure(cjson_parse, &resp), resp.len);

  chunk c = {repeat('a', 4096), 4096};
  row("encode stdout event, 4 KiB chunk", "cJSON build+print", measure(output_event, &c),
      measure(cjson_event, &c), c.len);
  return 0;
}
