/*
 * cc_metrics: the worker's counters, exposed at GET /metrics in the Prometheus text format.
 *
 * All counters are C11 atomics so request threads update them without locks.  Requests
 * are counted by (op, protocol code); `op` is an index into CC_METRICS_OPS, and anything
 * else (static files, /healthz, unknown ops) is counted under the pseudo-op "other"/"http".
 *
 * Ownership: a cc_metrics lives inside the worker struct (init/cleanup, no heap);
 * cc_metrics_render returns a malloc'd string the caller frees with free().
 */
#ifndef CC_METRICS_H
#define CC_METRICS_H

#include <stdatomic.h>
#include <stddef.h>

#include "cc_status.h"

// clang-format off
#define CC_METRICS_OPS(X)                                                                 \
  X(hello) X(exec) X(writeFile) X(readFile) X(listDir) X(setupProject) X(startDevServer) \
  X(killProcess) X(listProcesses) X(getHistory) X(getResult) X(getProject)              \
  X(updateProject) X(listProjects) X(deleteProject) X(clearCache) X(other) X(http)
// clang-format on
enum {
#define CC_METRICS_OP_ENUM(name) CC_MOP_##name,
  CC_METRICS_OPS(CC_METRICS_OP_ENUM)
#undef CC_METRICS_OP_ENUM
      CC_MOP_COUNT
};

#define CC_METRICS_BUCKETS 14

typedef struct cc_metrics {
  atomic_ullong requests[CC_MOP_COUNT][CC_STATUS_COUNT];
  atomic_llong in_flight;
  atomic_ullong cache_hits, cache_misses;
  atomic_ullong sandboxes_created, sandboxes_recreated;
  atomic_ullong latency_bucket[CC_METRICS_BUCKETS + 1]; /* last = +Inf */
  atomic_ullong latency_count;
  atomic_ullong latency_sum_us;
} cc_metrics;

void cc_metrics_init(cc_metrics *m);

/* The name of op index `op` ("exec", ..., "other", "http"); "other" when out of range. */
const char *cc_metrics_op_name(int op);

/* Returns the op index of `name`, or CC_MOP_other. */
int cc_metrics_op(const char *name);

/* Counts one finished request of op `op` with outcome `st`, taking `us` microseconds. */
void cc_metrics_request(cc_metrics *m, int op, cc_status st, unsigned long long us);

/* Renders every metric.  Returns NULL on allocation failure; caller frees with free(). */
char *cc_metrics_render(cc_metrics *m);

#endif
