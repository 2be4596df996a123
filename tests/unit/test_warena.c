/*
 * Unit tests of codecanvas-worker's per-thread arena for cJSON (native/worker/cc_warena.c):
 * inside a scope cJSON's blocks come from the thread's arena (back to back) and survive the
 * scope until released; outside they are malloc'd; blocks made on either side may be released
 * on the other (AddressSanitizer checks every free); a request larger than the arena parses
 * whole; several threads parse at once, each in its own arena, while another thread uses
 * cJSON outside any scope; threads that end give their arena back (LeakSanitizer).
 */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_proto.h"
#include "cc_test.h"
#include "cc_warena.h"

static cc_status parse(const char *text, cc_request *req) {
  cc_proto_limits lim = cc_proto_limits_default();
  lim.max_body_bytes = 4u << 20; /* room for the large requests below (the arena is the subject) */
  lim.max_string_bytes = 1u << 20;
  lim.max_env = 5000;
  return cc_proto_parse_request(text, strlen(text), &lim, req, NULL);
}

static void test_blocks_in_and_out_of_scope(void) {
  cc_warena_begin();
  char *a = cJSON_malloc(16), *b = cJSON_malloc(16);
  cc_warena_end();
  CHECK(a && b);
  CHECK((uintptr_t)b - (uintptr_t)a == 16); /* back to back: the arena, not malloc */
  /* outside: malloc's (a free of them with free() is what ASan checks) */
  char *c = cJSON_malloc(16);
  CHECK(c != NULL);
  free(c);
  memcpy(a, "still here", 11); /* blocks of a closed scope stay valid until the next begins */
  CHECK_STR(a, "still here");
  cJSON_free(a);
  cJSON_free(b);
  /* a tree made outside, released inside a scope; one made inside, released outside */
  cJSON *out = cJSON_Parse("{\"k\":[1,2,3],\"s\":\"x\"}");
  cc_warena_begin();
  cJSON *in = cJSON_Parse("{\"k\":[1,2,3],\"s\":\"y\"}");
  cJSON_Delete(out);
  cc_warena_end();
  CHECK(in != NULL);
  CHECK_STR(cJSON_GetObjectItem(in, "s")->valuestring, "y");
  cJSON_Delete(in);
}

static void test_request_and_reuse(void) {
  cc_request r1, r2;
  cc_warena_begin();
  cc_status st = parse("{\"v\":1,\"id\":\"a\",\"op\":\"exec\",\"project\":\"p1\",\"args\":{\"cmd\":\"echo one\"}}", &r1);
  cc_warena_end();
  CHECK_INT(st, CC_OK);
  CHECK_STR(r1.project, "p1");
  CHECK_STR(r1.exec.cmd, "echo one");
  const void *first = r1.root_;
  cc_request_cleanup(&r1);
  cc_warena_begin(); /* the next scope starts the arena over */
  st = parse("{\"v\":1,\"id\":\"b\",\"op\":\"exec\",\"project\":\"p2\",\"args\":{\"cmd\":\"echo two\"}}", &r2);
  cc_warena_end();
  CHECK_INT(st, CC_OK);
  CHECK(r2.root_ == first);
  CHECK_STR(r2.id, "b");
  CHECK_STR(r2.project, "p2");
  CHECK_STR(r2.exec.cmd, "echo two");
  cc_request_cleanup(&r2);
}

static void test_larger_than_the_arena(void) {
  size_t n = 300 * 1024; /* a command of 300 KiB: arena blocks first, then malloc'd ones */
  char *text = malloc(n + 128);
  CHECK(text != NULL);
  if (!text) return;
  int k = snprintf(text, 128, "{\"v\":1,\"id\":\"big\",\"op\":\"exec\",\"project\":\"p\",\"args\":{\"cmd\":\"");
  memset(text + k, 'x', n);
  strcpy(text + k + n, "\"}}");
  cc_request r;
  cc_warena_begin();
  cc_status st = parse(text, &r);
  cc_warena_end();
  CHECK_INT(st, CC_OK);
  if (st == CC_OK) {
    CHECK_INT(strlen(r.exec.cmd), n);
    cc_request_cleanup(&r);
  }
  /* many small members: the arena fills up part way through the tree */
  size_t cap = 200000, len = 0;
  char *many = malloc(cap);
  CHECK(many != NULL);
  if (!many) {
    free(text);
    return;
  }
  len += (size_t)snprintf(many, cap, "{\"v\":1,\"id\":\"m\",\"op\":\"exec\",\"project\":\"p\",\"args\":{\"cmd\":\"true\",\"env\":{");
  for (int i = 0; i < 4000; i++)
    len += (size_t)snprintf(many + len, cap - len, "%s\"K%d\":\"v%d\"", i ? "," : "", i, i);
  snprintf(many + len, cap - len, "}}}");
  cc_warena_begin();
  st = parse(many, &r);
  cc_warena_end();
  CHECK_INT(st, CC_OK);
  if (st == CC_OK) {
    const cJSON *env = cJSON_GetObjectItem(cJSON_GetObjectItem(r.args, "env"), "K3999");
    CHECK(cJSON_IsString(env) && strcmp(env->valuestring, "v3999") == 0);
    cc_request_cleanup(&r);
  }
  free(many);
  free(text);
}

#define THREADS 4
#define ROUNDS 3000

static void *parser(void *arg) {
  int t = (int)(intptr_t)arg, bad = 0;
  for (int i = 0; i < ROUNDS; i++) {
    char text[256], cmd[64], project[16];
    snprintf(project, sizeof project, "p%d", t);
    snprintf(cmd, sizeof cmd, "echo %d %d", t, i);
    snprintf(text, sizeof text,
             "{\"v\":1,\"id\":\"%d-%d\",\"op\":\"exec\",\"project\":\"%s\",\"args\":{\"cmd\":\"%s\"}}",
             t, i, project, cmd);
    cc_request r;
    cc_warena_begin();
    cc_status st = parse(text, &r);
    cc_warena_end();
    if (st != CC_OK) {
      bad++;
      continue;
    }
    if (strcmp(r.project, project) != 0 || strcmp(r.exec.cmd, cmd) != 0) bad++;
    cc_request_cleanup(&r);
  }
  return (void *)(intptr_t)bad;
}

static void *outsider(void *arg) {
  (void)arg;
  int bad = 0;
  for (int i = 0; i < ROUNDS; i++) {
    cJSON *doc = cJSON_Parse("{\"a\":[1,2,{\"b\":\"c\"}]}");
    char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;
    if (!text || strcmp(text, "{\"a\":[1,2,{\"b\":\"c\"}]}") != 0) bad++;
    cJSON_free(text);
    cJSON_Delete(doc);
  }
  return (void *)(intptr_t)bad;
}

static void test_threads(void) {
  pthread_t th[THREADS + 1];
  for (int t = 0; t < THREADS; t++) CHECK(pthread_create(&th[t], NULL, parser, (void *)(intptr_t)t) == 0);
  CHECK(pthread_create(&th[THREADS], NULL, outsider, NULL) == 0);
  for (int t = 0; t <= THREADS; t++) {
    void *bad = NULL;
    pthread_join(th[t], &bad);
    CHECK_INT((intptr_t)bad, 0);
  }
}

int main(void) {
  cc_warena_install();
  RUN(test_blocks_in_and_out_of_scope);
  RUN(test_request_and_reuse);
  RUN(test_larger_than_the_arena);
  RUN(test_threads);
  return CC_TEST_DONE();
}
