/* cc_metrics: atomic counters and their Prometheus text rendering (see cc_metrics.h). */
#include "cc_metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const op_names[CC_MOP_COUNT] = {
#define CC_METRICS_OP_NAME(name) #name,
    CC_METRICS_OPS(CC_METRICS_OP_NAME)
#undef CC_METRICS_OP_NAME
};

/* Upper bounds of the latency buckets, in seconds. */
static const double bucket_le[CC_METRICS_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60};

void cc_metrics_init(cc_metrics *m) {
  memset(m, 0, sizeof *m);
}

const char *cc_metrics_op_name(int op) {
  return op >= 0 && op < CC_MOP_COUNT ? op_names[op] : op_names[CC_MOP_other];
}

int cc_metrics_op(const char *name) {
  if (name)
    for (int i = 0; i < CC_MOP_other; i++)
      if (strcmp(op_names[i], name) == 0) return i;
  return CC_MOP_other;
}

void cc_metrics_request(cc_metrics *m, int op, cc_status st, unsigned long long us) {
  if (op < 0 || op >= CC_MOP_COUNT) op = CC_MOP_other;
  if ((unsigned)st >= CC_STATUS_COUNT) st = CC_INTERNAL;
  atomic_fetch_add_explicit(&m->requests[op][st], 1, memory_order_relaxed);
  double s = (double)us / 1e6;
  int b = 0;
  while (b < CC_METRICS_BUCKETS && s > bucket_le[b]) b++;
  atomic_fetch_add_explicit(&m->latency_bucket[b], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&m->latency_count, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&m->latency_sum_us, us, memory_order_relaxed);
}

struct buf {
  char *p;
  size_t len, cap;
  int failed;
};

static void add(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct buf *b, const char *fmt, ...) {
  if (b->failed) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
      b->failed = 1;
      return;
    }
    if ((size_t)n < b->cap - b->len) {
      b->len += (size_t)n;
      return;
    }
    size_t ncap = b->cap * 2 + (size_t)n;
    char *np = realloc(b->p, ncap);
    if (!np) {
      b->failed = 1;
      return;
    }
    b->p = np;
    b->cap = ncap;
  }
}

char *cc_metrics_render(cc_metrics *m) {
  struct buf b = {malloc(8192), 0, 8192, 0};
  if (!b.p) return NULL;
  b.p[0] = 0;
  add(&b,
      "# HELP codecanvas_requests_total Requests answered, by protocol op and result code.\n"
      "# TYPE codecanvas_requests_total counter\n");
  for (int op = 0; op < CC_MOP_COUNT; op++)
    for (int st = 0; st < CC_STATUS_COUNT; st++) {
      unsigned long long v = atomic_load_explicit(&m->requests[op][st], memory_order_relaxed);
      if (v)
        add(&b, "codecanvas_requests_total{op=\"%s\",code=\"%s\"} %llu\n", op_names[op],
            cc_status_code((cc_status)st), v);
    }
  add(&b,
      "# HELP codecanvas_requests_in_flight Requests being served now.\n"
      "# TYPE codecanvas_requests_in_flight gauge\ncodecanvas_requests_in_flight %lld\n",
      (long long)atomic_load(&m->in_flight));
  add(&b,
      "# HELP codecanvas_cache_hits_total Exec results served from the cache.\n"
      "# TYPE codecanvas_cache_hits_total counter\ncodecanvas_cache_hits_total %llu\n",
      (unsigned long long)atomic_load(&m->cache_hits));
  add(&b,
      "# HELP codecanvas_cache_misses_total Cacheable execs that missed the cache.\n"
      "# TYPE codecanvas_cache_misses_total counter\ncodecanvas_cache_misses_total %llu\n",
      (unsigned long long)atomic_load(&m->cache_misses));
  add(&b,
      "# HELP codecanvas_sandboxes_created_total Sandboxes created (first use or re-creation).\n"
      "# TYPE codecanvas_sandboxes_created_total counter\ncodecanvas_sandboxes_created_total "
      "%llu\n",
      (unsigned long long)atomic_load(&m->sandboxes_created));
  add(&b,
      "# HELP codecanvas_sandboxes_recreated_total Sandboxes re-created after they expired.\n"
      "# TYPE codecanvas_sandboxes_recreated_total counter\ncodecanvas_sandboxes_recreated_total "
      "%llu\n",
      (unsigned long long)atomic_load(&m->sandboxes_recreated));
  add(&b,
      "# HELP codecanvas_request_duration_seconds Time from request received to response queued.\n"
      "# TYPE codecanvas_request_duration_seconds histogram\n");
  unsigned long long cum = 0;
  for (int i = 0; i < CC_METRICS_BUCKETS; i++) {
    cum += atomic_load(&m->latency_bucket[i]);
    add(&b, "codecanvas_request_duration_seconds_bucket{le=\"%g\"} %llu\n", bucket_le[i], cum);
  }
  cum += atomic_load(&m->latency_bucket[CC_METRICS_BUCKETS]);
  add(&b, "codecanvas_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n", cum);
  add(&b, "codecanvas_request_duration_seconds_sum %.6f\n",
      (double)atomic_load(&m->latency_sum_us) / 1e6);
  add(&b, "codecanvas_request_duration_seconds_count %llu\n",
      (unsigned long long)atomic_load(&m->latency_count));
  if (b.failed) {
    free(b.p);
    return NULL;
  }
  return b.p;
}
