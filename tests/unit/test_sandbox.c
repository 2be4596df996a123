/* The sandbox runtime against real bubblewrap: processes, files, isolation, limits, kill.
 * Every wait is on an event (subscriptions, pipes, pidfds); nothing sleeps to synchronise. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cc_sbx.h"
#include "cc_test.h"

static cc_sbx_runtime *rt;
static char state_dir[64];

/* Collected result of one command. */
typedef struct {
  char out[1 << 16], err[1 << 16];
  size_t out_len, err_len;
  bool started, ended, exited;
  int exit_code, signal;
  char status[64];
  uint32_t pid;
} result;

static void collect(cc_sbx_sub *sub, result *r) {
  memset(r, 0, sizeof *r);
  cc_sbx_event ev;
  while (cc_sbx_sub_next(sub, -1, &ev) == CC_OK) {
    if (ev.type == CC_SBX_EV_START) r->started = true, r->pid = ev.pid;
    if (ev.type == CC_SBX_EV_STDOUT && r->out_len + ev.len < sizeof r->out)
      memcpy(r->out + r->out_len, ev.data, ev.len), r->out_len += ev.len;
    if (ev.type == CC_SBX_EV_STDERR && r->err_len + ev.len < sizeof r->err)
      memcpy(r->err + r->err_len, ev.data, ev.len), r->err_len += ev.len;
    if (ev.type == CC_SBX_EV_END) {
      r->ended = true;
      r->exited = ev.exited;
      r->exit_code = ev.exit_code;
      r->signal = ev.signal;
      snprintf(r->status, sizeof r->status, "%s", ev.status);
    }
  }
}

/* Runs `bash -c script` in sbx and collects everything. */
static cc_status run(cc_sbx *sbx, const char *script, result *r) {
  const char *args[] = {"-c", script};
  cc_sbx_proc_spec spec = {.cmd = "/bin/bash", .args = args, .n_args = 2};
  uint32_t pid;
  cc_sbx_sub *sub;
  cc_sbx_err err;
  cc_status st = cc_sbx_proc_start(sbx, &spec, &pid, &sub, &err);
  if (st != CC_OK) {
    fprintf(stderr, "start failed: %s\n", err.msg);
    return st;
  }
  collect(sub, r);
  r->out[r->out_len] = 0;
  r->err[r->err_len] = 0;
  cc_sbx_sub_free(sub);
  return CC_OK;
}

static cc_sbx *make(const char *id) {
  cc_sbx_create_opts o = {.id = id};
  cc_sbx *s = NULL;
  cc_sbx_err err;
  if (cc_sbx_create(rt, &o, &s, &err) != CC_OK) fprintf(stderr, "create %s: %s\n", id, err.msg);
  return s;
}

static void runs_a_command_with_output_and_exit_code(void) {
  cc_sbx *s = make("basic");
  CHECK(s != NULL);
  if (!s) return;
  result r;
  CHECK_INT(run(s, "echo hello; echo oops >&2; exit 3", &r), CC_OK);
  CHECK(r.started);
  CHECK_STR(r.out, "hello\n");
  CHECK_STR(r.err, "oops\n");
  CHECK(r.ended && r.exited);
  CHECK_INT(r.exit_code, 3);
  CHECK_STR(r.status, "exit status 3");
  /* Runs as uid 1000 "user" in /home/user, with a small pid (own PID namespace). */
  CHECK_INT(run(s, "id -u; id -un; pwd; echo $HOME $USER; echo $$", &r), CC_OK);
  CHECK(strncmp(r.out, "1000\nuser\n/home/user\n/home/user user\n", 37) == 0);
  CHECK(atoi(r.out + 37) > 1 && atoi(r.out + 37) < 100);
  CHECK(r.pid > 1 && r.pid < 100);
  cc_sbx_release(s);
  CHECK_INT(cc_sbx_kill(rt, "basic"), CC_OK);
}

int main(void) {
  snprintf(state_dir, sizeof state_dir, "/tmp/cc-sbx-test-XXXXXX");
  if (!mkdtemp(state_dir)) return 1;
  cc_sbx_config cfg;
  cc_sbx_config_init(&cfg);
  cfg.state_dir = state_dir;
  cc_sbx_err err;
  if (cc_sbx_runtime_new(&cfg, &rt, &err) != CC_OK) {
    fprintf(stderr, "runtime: %s\n", err.msg);
    return 1;
  }
  cc_sbx_runtime_info info;
  cc_sbx_runtime_get_info(rt, &info);
  printf("%s\n", info.report);
  RUN(runs_a_command_with_output_and_exit_code);
  cc_sbx_runtime_free(rt);
  rmdir(state_dir);
  return CC_TEST_DONE();
}
