/*
 * sandbox_harness: what the sandbox runtime's tests share (test_sandbox.c, sandbox_limits.c):
 * the runtime under test, its state directory, and running a command to its end with every
 * event collected.  Every wait is on an event, at most 60 s; nothing sleeps to synchronise.
 */
#ifndef SANDBOX_HARNESS_H
#define SANDBOX_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cc_sbx.h"

extern cc_sbx_runtime *rt; /* the runtime every test uses (main makes it) */
extern char state_dir[64];

/* Collected result of one command. */
typedef struct {
  char out[1 << 16], err[1 << 16];
  size_t out_len, err_len;
  bool started, ended, exited;
  int exit_code, signal;
  char status[64];
  uint32_t pid;
} result;

/* The next event of sub, waiting at most 60 s (a lost event is a failed check). */
bool next_ev(cc_sbx_sub *sub, cc_sbx_event *ev);
/* Every event of sub until its end, into *r. */
void collect(cc_sbx_sub *sub, result *r);
/* Runs `bash -c script` in sbx and collects everything. */
cc_status run(cc_sbx *sbx, const char *script, result *r);
/* A sandbox of rt with this id (NULL, said on stderr, if it cannot be made). */
cc_sbx *make(const char *id);
/* Starts `bash -c script` in s. */
cc_status start(cc_sbx *s, const char *script, bool stdin_pipe, uint64_t timeout_ms, uint32_t *pid,
                cc_sbx_sub **sub);
/* Waits for the first stdout chunk (a readiness line printed by the script). */
void wait_stdout(cc_sbx_sub *sub);

/* sandbox_limits.c: the cgroup limits, through rt and through a runtime on cgroup v2 only
 * (v2_skipped when this host cannot give v2). */
void limits_contain_fork_bombs_and_memory_hogs(void);
void limits_hold_on_cgroup_v2(void);
extern bool v2_skipped;

#endif
