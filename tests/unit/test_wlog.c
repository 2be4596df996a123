/*
 * Unit tests of codecanvas-worker's access log (native/worker/cc_wlog.c): with several
 * threads logging at once into a descriptor that is slow to take the data (a pipe drained
 * by a slow reader), every line arrives whole, none is lost, and the 64 KiB buffers are
 * never overrun.  Lines of different lengths matter: a thread that flushed a full buffer
 * must find room for its own line again after others appended meanwhile (the overrun this
 * catches showed as heap corruption at shutdown after a load test; the sanitizer build sees
 * it at once).  No timing is asserted: the reader's pauses only make the race likely.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cc_test.h"
#include "cc_wfront.h"
#include "cc_worker_internal.h"

/* cc_wlog.c's clock, from cc_worker.c (not linked here). */
int64_t cc_wfront_mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#define THREADS 6
#define LINES 3000

struct reader {
  int fd;
  char *data;
  size_t len, cap;
};

static long g_pause_ns; /* the reader's pause after each read: a slow disk */

static void *reader_main(void *arg) {
  struct reader *rd = arg;
  struct timespec pause = {0, g_pause_ns};
  for (;;) {
    if (rd->len + 4096 > rd->cap) {
      rd->cap = rd->cap ? rd->cap * 2 : 1 << 20;
      rd->data = realloc(rd->data, rd->cap);
      if (!rd->data) return NULL;
    }
    ssize_t n = read(rd->fd, rd->data + rd->len, 4096);
    if (n <= 0) break;
    rd->len += (size_t)n;
    if (g_pause_ns) nanosleep(&pause, NULL);
  }
  return NULL;
}

static cc_worker g_w;

static void *writer_main(void *arg) {
  int t = (int)(intptr_t)arg;
  cc_wreq r;
  for (int i = 0; i < LINES; i++) {
    memset(&r, 0, sizeof r);
    r.t0_us = cc_wfront_mono_us();
    r.http = 200;
    r.code = CC_OK;
    r.mop = -1;
    memcpy(r.method, "POST", 5);
    memcpy(r.remote, "127.0.0.1", 10);
    /* lines of about 150 bytes to 2.8 KiB: control bytes are logged as \u00XX, six each */
    unsigned k = (unsigned)(i * 2654435761u + (unsigned)t * 40503u) >> 7;
    size_t pl = 1 + k % 190;
    memset(r.path, k & 1 ? 1 : 'a' + t, pl);
    r.path[0] = '/';
    r.path[pl] = 0;
    if (k & 2) {
      r.is_rpc = true;
      memset(r.user, k & 4 ? 2 : 'u', 1 + (k >> 3) % CC_STORE_NAME_MAX);
      memset(r.id, k & 8 ? 3 : 'x', 1 + (k >> 5) % CC_PROTO_MAX_ID_BYTES);
      memset(r.project, 'p', 1 + (k >> 9) % CC_PROTO_MAX_PROJECT_BYTES);
    }
    cc_wlog_request(&g_w, &r, true);
  }
  return NULL;
}

static void test_concurrent_lines_whole(void) {
  int p[2];
  CHECK(pipe(p) == 0);
  struct reader rd = {.fd = p[0]};
  pthread_t rt, wt[THREADS];
  CHECK(pthread_create(&rt, NULL, reader_main, &rd) == 0);
  g_w.log = cc_wlog_new(p[1], true, 60000); /* flushed when full (and at the end) only */
  CHECK(g_w.log != NULL);
  if (!g_w.log) return;
  for (int t = 0; t < THREADS; t++)
    CHECK(pthread_create(&wt[t], NULL, writer_main, (void *)(intptr_t)t) == 0);
  for (int t = 0; t < THREADS; t++) pthread_join(wt[t], NULL);
  cc_wlog_free(g_w.log); /* writes the rest and closes the pipe */
  g_w.log = NULL;
  pthread_join(rt, NULL);
  close(p[0]);
  CHECK(rd.data != NULL);
  if (!rd.data) return;
  size_t lines = 0, bad = 0;
  const char *s = rd.data, *end = rd.data + rd.len;
  while (s < end) {
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    if (!nl) {
      bad++;
      break;
    }
    size_t n = (size_t)(nl - s);
    static const char tail[] = "\"completed\":true}";
    if (n < sizeof tail || s[0] != '{' || memcmp(nl - (sizeof tail - 1), tail, sizeof tail - 1) != 0)
      bad++;
    lines++;
    s = nl + 1;
  }
  CHECK(lines == (size_t)THREADS * LINES);
  CHECK(bad == 0);
  free(rd.data);
}

int main(void) {
  for (int round = 0; round < 3; round++) {
    g_pause_ns = round * 100 * 1000; /* 0, 100 and 200 us */
    RUN(test_concurrent_lines_whole);
  }
  return CC_TEST_DONE();
}
