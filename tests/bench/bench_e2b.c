/*
 * bench_e2b: latency of the native E2B client's calls against a live E2B-compatible server
 * (scripts/bench e2b runs it against codecanvas-sandboxd beside the official SDK doing the
 * same calls in the same run).
 *
 *   bench_e2b <base-url> <api-key> [iterations]
 *
 * Prints one JSON object: for each operation the p50/p95/mean in milliseconds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cc_e2b.h"

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void report(const char *name, double *v, int n, int last) {
  qsort(v, (size_t)n, sizeof *v, cmp);
  double sum = 0;
  for (int i = 0; i < n; i++) sum += v[i];
  printf("  \"%s\": {\"n\": %d, \"p50\": %.3f, \"p95\": %.3f, \"mean\": %.3f}%s\n", name, n,
         v[n / 2], v[(n * 95) / 100 < n ? (n * 95) / 100 : n - 1], sum / n, last ? "" : ",");
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s <base-url> <api-key> [iterations]\n", argv[0]);
    return 2;
  }
  int n = argc > 3 ? atoi(argv[3]) : 200;
  if (n < 10) n = 10;
  cc_e2b_config cfg;
  cc_e2b_config_init(&cfg);
  cfg.api_url = cfg.sandbox_url = argv[1];
  cfg.api_key = argv[2];
  cc_e2b_client *c;
  cc_e2b_error e;
  if (cc_e2b_client_new(&cfg, &c, &e) != CC_OK) {
    fprintf(stderr, "client: %s\n", e.message);
    return 1;
  }
  double *v = calloc((size_t)n, sizeof *v);
  int creates = n / 10 < 5 ? 5 : n / 10;
  double *cv = calloc((size_t)creates, sizeof *cv);
  cc_e2b_sandbox sb;
  int rc = 1;

  /* create -> first command result, then kill (kill not timed). */
  for (int i = 0; i < creates; i++) {
    double t0 = now_ms();
    cc_e2b_sandbox s;
    if (cc_e2b_create(c, NULL, &s, &e) != CC_OK) goto fail;
    cc_e2b_exec_opts o = {.cmd = "true", .timeout_ms = 60000};
    cc_e2b_exec_result r;
    if (cc_e2b_exec(c, &s, &o, &r, &e) != CC_OK) goto fail;
    cv[i] = now_ms() - t0;
    cc_e2b_kill(c, s.id, &e);
  }
  if (cc_e2b_create(c, NULL, &sb, &e) != CC_OK) goto fail;
  char payload[1024];
  memset(payload, 'x', sizeof payload);
  if (cc_e2b_write_file(c, &sb, "/home/user/bench.txt", payload, sizeof payload, NULL, 0, &e))
    goto fail;
  printf("{\n");
  report("create_to_first_result", cv, creates, 0);
  for (int i = 0; i < n; i++) {
    double t0 = now_ms();
    cc_e2b_exec_opts o = {.cmd = "true", .timeout_ms = 60000};
    cc_e2b_exec_result r;
    if (cc_e2b_exec(c, &sb, &o, &r, &e) != CC_OK) goto fail;
    v[i] = now_ms() - t0;
  }
  report("exec_true", v, n, 0);
  for (int i = 0; i < n; i++) {
    double t0 = now_ms();
    if (cc_e2b_stat(c, &sb, "/home/user/bench.txt", NULL, &e) != CC_OK) goto fail;
    v[i] = now_ms() - t0;
  }
  report("stat", v, n, 0);
  for (int i = 0; i < n; i++) {
    double t0 = now_ms();
    char *d;
    size_t len;
    if (cc_e2b_read_file(c, &sb, "/home/user/bench.txt", 0, &d, &len, &e) != CC_OK) goto fail;
    cc_e2b_free(d);
    v[i] = now_ms() - t0;
  }
  report("read_1k", v, n, 0);
  for (int i = 0; i < n; i++) {
    double t0 = now_ms();
    if (cc_e2b_write_file(c, &sb, "/home/user/bench.txt", payload, sizeof payload, NULL, 0, &e))
      goto fail;
    v[i] = now_ms() - t0;
  }
  report("write_1k", v, n, 1);
  cc_e2b_stats st;
  cc_e2b_client_stats(c, &st);
  printf("}\n");
  fprintf(stderr, "bench_e2b: %llu requests over %llu connections\n", st.requests, st.connections);
  cc_e2b_kill(c, sb.id, &e);
  rc = 0;
  goto out;
fail:
  fprintf(stderr, "bench_e2b: %s\n", e.message);
out:
  free(v);
  free(cv);
  cc_e2b_client_free(c);
  return rc;
}
