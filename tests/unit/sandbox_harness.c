/*
 * sandbox_harness: the sandbox runtime tests' shared runtime and command runner (see
 * sandbox_harness.h).
 */
#define _GNU_SOURCE
#include "sandbox_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_test.h"

cc_sbx_runtime *rt;
char state_dir[64];

/* The next event, waiting at most 60 s: a lost event fails the test instead of hanging it. */
bool next_ev(cc_sbx_sub *sub, cc_sbx_event *ev) {
  if (cc_sbx_sub_next(sub, 60000, ev) != CC_OK) return false;
  if (ev->type == CC_SBX_EV_NONE) {
    CHECK(!"no event within 60 s");
    return false;
  }
  return true;
}

void collect(cc_sbx_sub *sub, result *r) {
  memset(r, 0, sizeof *r);
  cc_sbx_event ev;
  while (next_ev(sub, &ev)) {
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
cc_status run(cc_sbx *sbx, const char *script, result *r) {
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

cc_sbx *make(const char *id) {
  cc_sbx_create_opts o = {.id = id};
  cc_sbx *s = NULL;
  cc_sbx_err err;
  if (cc_sbx_create(rt, &o, &s, &err) != CC_OK) fprintf(stderr, "create %s: %s\n", id, err.msg);
  return s;
}

cc_status start(cc_sbx *s, const char *script, bool stdin_pipe, uint64_t timeout_ms, uint32_t *pid,
                cc_sbx_sub **sub) {
  const char *args[] = {"-c", script};
  cc_sbx_proc_spec spec = {.cmd = "/bin/bash",
                           .args = args,
                           .n_args = 2,
                           .stdin_pipe = stdin_pipe,
                           .timeout_ms = timeout_ms};
  cc_sbx_err err;
  cc_status st = cc_sbx_proc_start(s, &spec, pid, sub, &err);
  if (st != CC_OK) fprintf(stderr, "start: %s\n", err.msg);
  return st;
}

/* Waits for the first stdout chunk (a readiness line printed by the script). */
void wait_stdout(cc_sbx_sub *sub) {
  cc_sbx_event ev;
  while (next_ev(sub, &ev))
    if (ev.type == CC_SBX_EV_STDOUT || ev.type == CC_SBX_EV_END) return;
}
