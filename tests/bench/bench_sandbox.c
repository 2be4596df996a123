/* bench_sandbox (scripts/bench sandbox): the sandbox runtime (native/sandbox/) beside a bare
 * `bwrap --unshare-all ... /bin/true` measured in the same run.
 *
 *   create→first result   cc_sbx_create + spawn /bin/true + its END, over 50 sandboxes that
 *                         stay alive (so the last ones are created with 49 others running)
 *   exec                  spawn /bin/true in a live sandbox until its END (200 runs)
 *   kill                  cc_sbx_kill of one sandbox (all 50)
 *   create+egress         the same first-result time with allow_internet (slirp4netns), 20 runs
 *   writable vs read-only create→first result with the writable system (a second runtime with
 *                         read_only_system beside it), one sandbox at a time, interleaved,
 *                         60 pairs; target: the writable system costs <= 1 ms
 *
 * Targets (issue 3): create→first result p50 ≤ 50 ms; exec ≤ 1.5× the bare bwrap baseline.
 * Run as root (cgroups); uses a temporary state dir. */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cc_sbx.h"

#define N_SBX 50
#define N_EXEC 200
#define N_NET 20
#define N_RW 60

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void report(const char *what, double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp);
  printf("%-34s p50 %7.2f ms   p95 %7.2f ms   (n=%d)\n", what, v[n / 2], v[n * 95 / 100], n);
}

static int run_true(cc_sbx *s) {
  cc_sbx_proc_spec spec = {.cmd = "/bin/true"};
  uint32_t pid;
  cc_sbx_sub *sub;
  if (cc_sbx_proc_start(s, &spec, &pid, &sub, NULL) != CC_OK) return -1;
  cc_sbx_event ev;
  int ok = -1;
  while (cc_sbx_sub_next(sub, 10000, &ev) == CC_OK && ev.type != CC_SBX_EV_NONE)
    if (ev.type == CC_SBX_EV_END) ok = ev.exited && ev.exit_code == 0 ? 0 : -1;
  cc_sbx_sub_free(sub);
  return ok;
}

int main(void) {
  char dir[] = "/tmp/cc-bench-sbx-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  cc_sbx_config cfg;
  cc_sbx_config_init(&cfg);
  cfg.state_dir = dir;
  cc_sbx_runtime *rt;
  cc_sbx_err err;
  if (cc_sbx_runtime_new(&cfg, &rt, &err) != CC_OK) {
    fprintf(stderr, "bench_sandbox: %s\n", err.msg);
    return 1;
  }
  cc_sbx_runtime_info info;
  cc_sbx_runtime_get_info(rt, &info);
  printf("%s\n\n", info.report);

  static double base[N_SBX], create[N_SBX], exec[N_EXEC], kill_ms[N_SBX];
  for (int i = 0; i < N_SBX; i++) {
    double t0 = now_ms();
    pid_t p = fork();
    if (p == 0) {
      execl(info.bwrap, "bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--symlink",
            "usr/bin", "/bin", "/bin/true", (char *)NULL);
      _exit(127);
    }
    int st;
    waitpid(p, &st, 0);
    base[i] = now_ms() - t0;
  }
  cc_sbx *keep[N_SBX];
  int failures = 0;
  for (int i = 0; i < N_SBX; i++) {
    char id[32];
    snprintf(id, sizeof id, "bench-%d", i);
    cc_sbx_create_opts o = {.id = id};
    double t0 = now_ms();
    if (cc_sbx_create(rt, &o, &keep[i], &err) != CC_OK) {
      fprintf(stderr, "create: %s\n", err.msg);
      return 1;
    }
    failures += run_true(keep[i]) != 0;
    create[i] = now_ms() - t0;
  }
  for (int i = 0; i < N_EXEC; i++) {
    double t0 = now_ms();
    failures += run_true(keep[i % N_SBX]) != 0;
    exec[i] = now_ms() - t0;
  }
  for (int i = 0; i < N_SBX; i++) {
    char id[32];
    snprintf(id, sizeof id, "bench-%d", i);
    cc_sbx_release(keep[i]);
    double t0 = now_ms();
    cc_sbx_kill(rt, id);
    kill_ms[i] = now_ms() - t0;
  }
  /* With egress (E2B's default allow_internet): slirp4netns is attached before create returns. */
  static double create_net[N_NET];
  int n_net = 0;
  if (info.egress_available)
    for (; n_net < N_NET; n_net++) {
      cc_sbx_create_opts o = {.id = "bench-net", .allow_internet = true};
      cc_sbx *s;
      double t0 = now_ms();
      if (cc_sbx_create(rt, &o, &s, &err) != CC_OK) {
        fprintf(stderr, "create with egress: %s\n", err.msg);
        return 1;
      }
      failures += run_true(s) != 0;
      create_net[n_net] = now_ms() - t0;
      cc_sbx_release(s);
      cc_sbx_kill(rt, "bench-net");
    }
  /* The writable system's cost: the same create -> first result on a runtime without it,
   * interleaved sample by sample (and in alternating order) so both see the same load. */
  char dir2[] = "/tmp/cc-bench-sbx-ro-XXXXXX";
  cc_sbx_runtime *ro = NULL;
  static double rw_ms[N_RW], ro_ms[N_RW], diff[N_RW], rw_c[N_RW], ro_c[N_RW], diff_c[N_RW];
  if (info.writable_system && mkdtemp(dir2)) {
    cc_sbx_config c2 = cfg;
    c2.state_dir = dir2;
    c2.read_only_system = true;
    char prefix[64];
    snprintf(prefix, sizeof prefix, "codecanvas-%d-ro", (int)getpid());
    c2.cgroup_prefix = prefix;
    if (cc_sbx_runtime_new(&c2, &ro, &err) != CC_OK) {
      fprintf(stderr, "bench_sandbox: read-only runtime: %s\n", err.msg);
      return 1;
    }
    for (int i = 0; i < N_RW + 2; i++)
      for (int k = 0; k < 2; k++) {
        bool writable = (i + k) % 2 == 0;
        cc_sbx_runtime *r = writable ? rt : ro;
        cc_sbx_create_opts o = {.id = "bench-rw"};
        cc_sbx *s;
        double t0 = now_ms();
        if (cc_sbx_create(r, &o, &s, &err) != CC_OK) {
          fprintf(stderr, "create: %s\n", err.msg);
          return 1;
        }
        double tc = now_ms() - t0;
        failures += run_true(s) != 0;
        double t = now_ms() - t0;
        cc_sbx_release(s);
        cc_sbx_kill(r, "bench-rw");
        int j = i - 2; /* the first two warm up */
        if (j >= 0 && j < N_RW) {
          if (writable)
            rw_ms[j] = t, rw_c[j] = tc;
          else
            ro_ms[j] = t, ro_c[j] = tc;
        }
      }
    for (int i = 0; i < N_RW; i++) diff[i] = rw_ms[i] - ro_ms[i], diff_c[i] = rw_c[i] - ro_c[i];
  }
  report("baseline: bare bwrap /bin/true", base, N_SBX);
  report("create -> first result (true)", create, N_SBX);
  report("exec /bin/true in a live sandbox", exec, N_EXEC);
  report("kill (every process, cgroups)", kill_ms, N_SBX);
  if (n_net)
    report("create+egress -> first result", create_net, n_net);
  else
    printf("create+egress: slirp4netns not installed, sandboxes get no egress\n");
  if (ro) {
    report("create -> result, writable system", rw_ms, N_RW);
    report("create -> result, read-only system", ro_ms, N_RW);
    report("  difference of each pair", diff, N_RW);
    report("  of which cc_sbx_create", diff_c, N_RW);
    cc_sbx_runtime_free(ro);
    rmdir(dir2);
  } else {
    printf("writable system: %s\n", info.system);
  }
  printf("(%d sandboxes alive at once at the end of the create phase; %d failed commands)\n", N_SBX,
         failures);
  cc_sbx_runtime_free(rt);
  rmdir(dir);
  return failures ? 1 : 0;
}
