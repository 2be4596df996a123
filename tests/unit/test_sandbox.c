/* The sandbox runtime against real bubblewrap: processes, files, isolation, kill, the server's
 * death, unprivileged use, ptys, seccomp, root inside (limits: sandbox_limits.c).
 * Every wait is on an event (subscriptions, pipes, pidfds); nothing sleeps to synchronise. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cc_sbx.h"
#include "cc_test.h"
#include "sandbox_harness.h"

/* the check counters of this executable's files (cc_test.h, CC_TEST_SHARED_COUNTS) */
int cc_test_failures;
int cc_test_checks;

static char orphan_cgroup[256];

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

static void env_and_cwd_follow_envd(void) {
  cc_sbx_env cenv[] = {{"FROM_CREATE", "c"}, {"BOTH", "create"}};
  cc_sbx_create_opts o = {.id = "envs", .envs = cenv, .n_envs = 2};
  cc_sbx *s = NULL;
  CHECK_INT(cc_sbx_create(rt, &o, &s, NULL), CC_OK);
  if (!s) return;
  result r;
  CHECK_INT(run(s, "mkdir -p sub/dir", &r), CC_OK);
  cc_sbx_env renv[] = {{"BOTH", "request"}};
  const char *args[] = {
      "-c",
      "echo $FROM_CREATE $BOTH $E2B_SANDBOX $E2B_SANDBOX_ID; pwd; cat /run/e2b/.E2B_SANDBOX_ID"};
  cc_sbx_proc_spec spec = {
      .cmd = "/bin/bash", .args = args, .n_args = 2, .envs = renv, .n_envs = 1, .cwd = "sub/dir"};
  uint32_t pid;
  cc_sbx_sub *sub;
  CHECK_INT(cc_sbx_proc_start(s, &spec, &pid, &sub, NULL), CC_OK);
  collect(sub, &r);
  r.out[r.out_len] = 0;
  cc_sbx_sub_free(sub);
  CHECK_STR(r.out, "c request true envs\n/home/user/sub/dir\nenvs");
  /* A missing cwd is reported synchronously with envd's message. */
  cc_sbx_err err;
  spec.cwd = "/nope";
  CHECK_INT(cc_sbx_proc_start(s, &spec, &pid, &sub, &err), CC_BAD_REQUEST);
  CHECK_STR(err.msg, "cwd '/nope' does not exist");
  cc_sbx_release(s);
  cc_sbx_kill(rt, "envs");
}

static void stdin_signal_deadline_and_list(void) {
  cc_sbx *s = make("procs");
  if (!s) return;
  uint32_t pid;
  cc_sbx_sub *sub;
  result r;
  /* stdin: bytes written arrive, closing gives EOF. */
  CHECK_INT(start(s, "cat; echo done", true, 0, &pid, &sub), CC_OK);
  CHECK_INT(cc_sbx_proc_write_stdin(s, pid, "abc", 3, -1, NULL), CC_OK);
  CHECK_INT(cc_sbx_proc_close_stdin(s, pid, NULL), CC_OK);
  collect(sub, &r);
  cc_sbx_sub_free(sub);
  r.out[r.out_len] = 0;
  CHECK_STR(r.out, "abcdone\n");
  CHECK_INT(r.exit_code, 0);
  /* stdin disabled: writing is envd's "stdin not enabled or closed". */
  CHECK_INT(start(s, "echo ready; exec sleep 100", false, 0, &pid, &sub), CC_OK);
  wait_stdout(sub);
  cc_sbx_err err;
  CHECK_INT(cc_sbx_proc_write_stdin(s, pid, "x", 1, -1, &err), CC_INTERNAL);
  CHECK_INT(err.kind, CC_SBX_ERR_STDIN_CLOSED);
  /* list echoes the config of running processes. */
  cc_sbx_proc_info *list;
  size_t n;
  CHECK_INT(cc_sbx_proc_list(s, &list, &n), CC_OK);
  CHECK_INT(n, 1);
  if (n == 1) {
    CHECK_INT(list[0].pid, pid);
    CHECK_STR(list[0].cmd, "/bin/bash");
    CHECK_INT(list[0].n_args, 2);
    CHECK(list[0].cwd == NULL);
  }
  cc_sbx_proc_list_free(list, n);
  /* A second subscriber (envd Connect) sees START then the same END. */
  cc_sbx_sub *sub2;
  CHECK_INT(cc_sbx_proc_subscribe(s, pid, &sub2, NULL), CC_OK);
  CHECK_INT(cc_sbx_proc_signal(s, pid, SIGTERM, NULL), CC_OK);
  collect(sub, &r);
  CHECK(r.ended && !r.exited);
  CHECK_INT(r.exit_code, -1);
  CHECK_STR(r.status, "signal: terminated");
  collect(sub2, &r);
  CHECK(r.started && r.ended);
  CHECK_STR(r.status, "signal: terminated");
  cc_sbx_sub_free(sub);
  cc_sbx_sub_free(sub2);
  CHECK_INT(cc_sbx_proc_signal(s, pid, SIGKILL, &err), CC_NOT_FOUND);
  /* Deadline: SIGKILL even with nobody subscribed; a late Connect still gets the END. */
  CHECK_INT(start(s, "exec sleep 100", false, 300, &pid, NULL), CC_OK);
  CHECK_INT(cc_sbx_proc_subscribe(s, pid, &sub, NULL), CC_OK);
  collect(sub, &r);
  cc_sbx_sub_free(sub);
  CHECK_STR(r.status, "signal: killed");
  CHECK_INT(r.exit_code, -1);
  /* kill -STOP on its own process group stops only that command; its deadline still ends it
   * and the sandbox keeps working. */
  CHECK_INT(start(s, "kill -STOP 0; echo never", false, 300, &pid, &sub), CC_OK);
  collect(sub, &r);
  cc_sbx_sub_free(sub);
  CHECK_STR(r.status, "signal: killed");
  CHECK_INT(run(s, "echo alive", &r), CC_OK);
  CHECK_STR(r.out, "alive\n");
  cc_sbx_release(s);
  cc_sbx_kill(rt, "procs");
}

static void output_is_complete_under_back_pressure(void) {
  cc_sbx *s = make("flood");
  if (!s) return;
  uint32_t pid;
  cc_sbx_sub *sub;
  CHECK_INT(start(s, "head -c 8388608 /dev/zero; echo -n end", false, 0, &pid, &sub), CC_OK);
  size_t total = 0;
  bool ended = false;
  cc_sbx_event ev;
  while (next_ev(sub, &ev)) {
    if (ev.type == CC_SBX_EV_STDOUT) total += ev.len;
    if (ev.type == CC_SBX_EV_END) ended = ev.exited && ev.exit_code == 0;
  }
  cc_sbx_sub_free(sub);
  CHECK_INT(total, 8388608 + 3);
  CHECK(ended);
  cc_sbx_release(s);
  cc_sbx_kill(rt, "flood");
}

static void file_api_stays_inside_the_sandbox(void) {
  cc_sbx *s = make("files");
  if (!s) return;
  cc_sbx_err err;
  CHECK_INT(cc_sbx_fs_write_file(s, "dir/a.txt", "hello", 5, &err), CC_OK);
  uint8_t *data;
  size_t len;
  CHECK_INT(cc_sbx_fs_read_file(s, "/home/user/dir/a.txt", 1 << 20, &data, &len, &err), CC_OK);
  CHECK_INT(len, 5);
  if (data) CHECK(memcmp(data, "hello", 5) == 0);
  free(data);
  cc_sbx_entry e;
  CHECK_INT(cc_sbx_fs_stat(s, "~/dir/a.txt", &e, &err), CC_OK);
  CHECK_STR(e.path, "/home/user/dir/a.txt");
  CHECK_STR(e.name, "a.txt");
  CHECK_INT(e.type, CC_SBX_FT_FILE);
  CHECK_INT(e.size, 5);
  CHECK_INT(e.mode, 0644);
  CHECK_STR(e.permissions, "-rw-r--r--");
  CHECK_STR(e.owner, "user");
  cc_sbx_entry_cleanup(&e);
  CHECK_INT(cc_sbx_fs_mkdir(s, "dir/x/y", NULL, &err), CC_OK);
  CHECK_INT(cc_sbx_fs_mkdir(s, "dir/x/y", NULL, &err), CC_CONFLICT);
  CHECK_INT(err.kind, CC_SBX_ERR_EXISTS);
  CHECK_INT(cc_sbx_fs_mkdir(s, "dir/a.txt", NULL, &err), CC_BAD_REQUEST);
  CHECK_INT(err.kind, CC_SBX_ERR_NOT_DIR);
  cc_sbx_entry *list;
  size_t n;
  CHECK_INT(cc_sbx_fs_list(s, "dir", 1, 0, &list, &n, &err), CC_OK);
  CHECK_INT(n, 2);
  if (n == 2) {
    CHECK_STR(list[0].path, "/home/user/dir/a.txt");
    CHECK_STR(list[1].name, "x");
  }
  cc_sbx_entries_free(list, n);
  CHECK_INT(cc_sbx_fs_list(s, "dir", 3, 0, &list, &n, &err), CC_OK);
  CHECK_INT(n, 3);
  cc_sbx_entries_free(list, n);
  CHECK_INT(cc_sbx_fs_list(s, "dir/a.txt", 1, 0, &list, &n, &err), CC_BAD_REQUEST);
  CHECK_INT(err.kind, CC_SBX_ERR_NOT_DIR);
  CHECK_INT(cc_sbx_fs_move(s, "dir/a.txt", "other/b.txt", &e, &err), CC_OK);
  CHECK_STR(e.path, "/home/user/other/b.txt");
  cc_sbx_entry_cleanup(&e);
  CHECK_INT(cc_sbx_fs_move(s, "dir/a.txt", "c", NULL, &err), CC_NOT_FOUND);
  CHECK_INT(cc_sbx_fs_stat(s, "dir/a.txt", &e, &err), CC_NOT_FOUND);
  CHECK_STR(err.msg, "file not found: /home/user/dir/a.txt");
  CHECK_INT(cc_sbx_fs_open_read(s, "dir", &(int){0}, NULL, &err), CC_BAD_REQUEST);
  CHECK_INT(err.kind, CC_SBX_ERR_IS_DIR);
  CHECK_INT(cc_sbx_fs_remove(s, "dir", &err), CC_OK);
  CHECK_INT(cc_sbx_fs_remove(s, "dir", &err), CC_OK); /* missing is not an error */
  CHECK_INT(cc_sbx_fs_stat(s, "dir", &e, &err), CC_NOT_FOUND);
  /* '..' is refused, whatever it would resolve to. */
  CHECK_INT(cc_sbx_fs_read_file(s, "../../etc/passwd", 1 << 20, &data, &len, &err), CC_BAD_REQUEST);
  CHECK_INT(err.kind, CC_SBX_ERR_INVALID_PATH);
  CHECK_INT(cc_sbx_fs_write_file(s, "/home/user/../../tmp/x", "x", 1, &err), CC_BAD_REQUEST);
  /* A symlink to a host file, planted in the home: the file API resolves it inside the
   * sandbox, so the host file is neither read nor written. */
  char host_file[128];
  snprintf(host_file, sizeof host_file, "%s/host-secret", state_dir);
  FILE *f = fopen(host_file, "w");
  fputs("host", f);
  fclose(f);
  char script[256];
  snprintf(script, sizeof script, "ln -s %s ~/link && ln -s /etc/shadow ~/shadow", host_file);
  result r;
  CHECK_INT(run(s, script, &r), CC_OK);
  CHECK_INT(cc_sbx_fs_read_file(s, "link", 1 << 20, &data, &len, &err), CC_NOT_FOUND);
  CHECK(cc_sbx_fs_write_file(s, "link", "evil", 4, &err) != CC_OK);
  /* (the host's /etc/shadow, or with a writable system the sandbox's own: root's only) */
  CHECK_INT(cc_sbx_fs_read_file(s, "shadow", 1 << 20, &data, &len, &err), CC_FORBIDDEN);
  CHECK(cc_sbx_fs_write_file(s, "shadow", "evil", 4, &err) != CC_OK);
  char buf[16] = "";
  f = fopen(host_file, "r");
  CHECK(f && fgets(buf, sizeof buf, f));
  if (f) fclose(f);
  CHECK_STR(buf, "host");
  unlink(host_file);
  /* A disk-filling write gets ENOSPC (NO_SPACE, HTTP 507) from the home quota. */
  int fd;
  CHECK_INT(cc_sbx_fs_open_write(s, "big", &fd, &err), CC_OK);
  static char block[1 << 20];
  int werr = 0;
  for (int i = 0; i < 1024 && !werr; i++)
    if (write(fd, block, sizeof block) < 0) werr = errno;
  close(fd);
  CHECK_INT(werr, ENOSPC);
  CHECK_INT(cc_sbx_err_from_errno(&err, werr, "write", "/home/user/big"), CC_TOO_LARGE);
  CHECK_INT(err.kind, CC_SBX_ERR_NO_SPACE);
  CHECK_INT(run(s, "head -c 400M /dev/zero > ~/big2", &r), CC_OK);
  CHECK(strstr(r.err, "No space left on device") != NULL);
  cc_sbx_release(s);
  cc_sbx_kill(rt, "files");
}

/* Reads a pid list from a cgroup.procs file. */
static int read_pids(const char *dir, int *pids, int max) {
  char p[600];
  snprintf(p, sizeof p, "%s/cgroup.procs", dir);
  FILE *f = fopen(p, "r");
  if (!f) return -1;
  int n = 0;
  while (n < max && fscanf(f, "%d", &pids[n]) == 1) n++;
  fclose(f);
  return n;
}

static void sandboxes_are_isolated_and_kill_leaves_nothing(void) {
  cc_sbx *a = make("iso-a"), *b = make("iso-b");
  if (!a || !b) return;
  result r;
  uint32_t pid;
  cc_sbx_sub *sub;
  CHECK_INT(run(a, "echo secret > ~/secret", &r), CC_OK);
  CHECK_INT(start(a, "echo ready; exec sleep 1000", false, 0, &pid, &sub), CC_OK);
  wait_stdout(sub);
  /* b sees neither a's files nor a's processes, and cannot signal them through the API. */
  CHECK_INT(run(b, "cat /home/user/secret; ls /proc | grep -c '^[0-9]'", &r), CC_OK);
  CHECK(strstr(r.out, "secret") == NULL);
  CHECK(atoi(r.out) <= 5);
  cc_sbx_err err;
  CHECK_INT(cc_sbx_proc_signal(b, pid, SIGKILL, &err), CC_NOT_FOUND);
  cc_sbx_info ia;
  CHECK_INT(cc_sbx_get_info(a, &ia), CC_OK);
  CHECK(ia.alive && ia.host_pid > 1);
  char script[128];
  snprintf(script, sizeof script, "kill -9 %d", ia.host_pid);
  CHECK_INT(run(b, script, &r), CC_OK);
  CHECK(r.exit_code != 0);
  CHECK_INT(run(a, "echo still", &r), CC_OK);
  CHECK_STR(r.out, "still\n");
  /* Kill: every host process of the sandbox is gone, and so is its cgroup. */
  int pids[64];
  int n = read_pids(ia.cgroup, pids, 64);
  CHECK(n >= 3); /* bwrap, the agent, sleep */
  CHECK_INT(cc_sbx_kill(rt, "iso-a"), CC_OK);
  collect(sub, &r);
  CHECK_STR(r.status, "signal: killed");
  cc_sbx_sub_free(sub);
  for (int i = 0; i < n; i++) {
    bool gone = kill(pids[i], 0) != 0 && errno == ESRCH;
    if (!gone) {
      char cmd[128];
      snprintf(cmd, sizeof cmd, "grep -E 'Name|State|PPid' /proc/%d/status >&2", pids[i]);
      if (system(cmd)) {
      }
    }
    CHECK(gone);
  }
  struct stat st;
  CHECK(stat(ia.cgroup, &st) != 0);
  CHECK(cc_sbx_open(rt, "iso-a", &(cc_sbx *){NULL}) == CC_NOT_FOUND);
  CHECK(cc_sbx_proc_start(a, &(cc_sbx_proc_spec){.cmd = "true"}, &pid, NULL, &err) ==
        CC_SANDBOX_UNAVAILABLE);
  cc_sbx_release(a);
  cc_sbx_release(b);
  cc_sbx_kill(rt, "iso-b");
}

static void no_host_loopback_but_ports_are_reachable_through_the_agent(void) {
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  CHECK(bind(ls, (struct sockaddr *)&a, sizeof a) == 0 && listen(ls, 4) == 0);
  getsockname(ls, (struct sockaddr *)&a, &al);
  cc_sbx_create_opts o = {.id = "net", .allow_internet = true};
  cc_sbx *s = NULL;
  cc_sbx_err err;
  CHECK_INT(cc_sbx_create(rt, &o, &s, &err), CC_OK);
  if (!s) {
    fprintf(stderr, "%s\n", err.msg);
    close(ls);
    return;
  }
  /* Egress is attached when slirp4netns is installed (setup installs it), else reported. */
  cc_sbx_info ni;
  cc_sbx_runtime_info ri;
  cc_sbx_get_info(s, &ni);
  cc_sbx_runtime_get_info(rt, &ri);
  CHECK_INT(ni.egress, ri.egress_available);
  result r0;
  CHECK_INT(run(s, "grep -c tap0 /proc/net/dev", &r0), CC_OK);
  CHECK_STR(r0.out, ri.egress_available ? "1\n" : "0\n");
  char script[256];
  snprintf(script, sizeof script,
           "(echo x > /dev/tcp/127.0.0.1/%d) 2>/dev/null && echo reached-lo; "
           "(echo x > /dev/tcp/10.0.2.2/%d) 2>/dev/null && echo reached-host; echo checked",
           ntohs(a.sin_port), ntohs(a.sin_port));
  result r;
  CHECK_INT(run(s, script, &r), CC_OK);
  CHECK_STR(r.out, "checked\n");
  /* A server inside the sandbox, reached through cc_sbx_connect_port. */
  const char *args[] = {"-c",
                        "import socket\ns=socket.socket()\ns.bind(('127.0.0.1',8000))\n"
                        "s.listen()\nprint('ready',flush=True)\nc,_=s.accept()\n"
                        "c.sendall(b'hi from inside')\nc.close()"};
  cc_sbx_proc_spec spec = {.cmd = "python3", .args = args, .n_args = 2};
  uint32_t pid;
  cc_sbx_sub *sub;
  CHECK_INT(cc_sbx_proc_start(s, &spec, &pid, &sub, NULL), CC_OK);
  wait_stdout(sub);
  int fd = -1;
  CHECK_INT(cc_sbx_connect_port(s, 8000, &fd, &err), CC_OK);
  char buf[64] = "";
  ssize_t k = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
  buf[k > 0 ? k : 0] = 0;
  CHECK_STR(buf, "hi from inside");
  if (fd >= 0) close(fd);
  collect(sub, &r);
  cc_sbx_sub_free(sub);
  CHECK_INT(cc_sbx_connect_port(s, 8001, &fd, &err), CC_NOT_FOUND);
  CHECK_INT(err.sys_errno, ECONNREFUSED);
  cc_sbx_release(s);
  cc_sbx_kill(rt, "net");
  close(ls);
}

/* The process exits while its subscriber is full and a background child still holds the
 * pipe: the END must still come, after all the output. */
static void end_arrives_after_throttled_exit_with_lingering_child(void) {
  cc_sbx *s = make("linger");
  if (!s) return;
  result r;
  CHECK_INT(run(s, "mkfifo ~/f", &r), CC_OK);
  uint32_t pid;
  cc_sbx_sub *sub;
  CHECK_INT(start(s, "sleep 1000 & head -c 102400 /dev/zero; echo x > ~/f", false, 0, &pid, &sub),
            CC_OK);
  CHECK_INT(run(s, "cat ~/f", &r), CC_OK); /* the writer has written everything */
  CHECK_STR(r.out, "x\n");
  size_t total = 0;
  bool ended = false;
  cc_sbx_event ev;
  while (next_ev(sub, &ev)) {
    if (ev.type == CC_SBX_EV_STDOUT) total += ev.len;
    if (ev.type == CC_SBX_EV_END) ended = ev.exited && ev.exit_code == 0;
  }
  cc_sbx_sub_free(sub);
  CHECK_INT(total, 102400);
  CHECK(ended);
  cc_sbx_release(s);
  cc_sbx_kill(rt, "linger");
}

typedef struct {
  cc_sbx *s;
  int id;
  int failures;
} worker_arg;

static void *worker(void *arg) {
  worker_arg *w = arg;
  for (int i = 0; i < 15; i++) {
    char script[64], want[64];
    snprintf(script, sizeof script, "echo %d-%d", w->id, i);
    snprintf(want, sizeof want, "%d-%d\n", w->id, i);
    result *r = malloc(sizeof *r);
    if (run(w->s, script, r) != CC_OK || strcmp(r->out, want) != 0 || r->exit_code != 0)
      w->failures++;
    char path[32];
    snprintf(path, sizeof path, "t%d/f%d", w->id, i);
    uint8_t *data = NULL;
    size_t len = 0;
    if (cc_sbx_fs_write_file(w->s, path, want, strlen(want), NULL) != CC_OK ||
        cc_sbx_fs_read_file(w->s, path, 1024, &data, &len, NULL) != CC_OK || len != strlen(want))
      w->failures++;
    free(data);
    free(r);
  }
  return NULL;
}

typedef struct {
  cc_sbx_sub *sub;
  bool killed;
  size_t bytes;
} stream_arg;

static void *streamer(void *arg) {
  stream_arg *a = arg;
  cc_sbx_event ev;
  while (next_ev(a->sub, &ev)) {
    if (ev.type == CC_SBX_EV_STDOUT) a->bytes += ev.len;
    if (ev.type == CC_SBX_EV_END) a->killed = !ev.exited && ev.signal == SIGKILL;
  }
  return NULL;
}

/* Several threads use one sandbox at once; a kill while output streams ends the stream. */
static void concurrent_callers_and_kill_during_streaming(void) {
  cc_sbx *s = make("conc");
  if (!s) return;
  pthread_t th[4];
  worker_arg w[4];
  for (int i = 0; i < 4; i++) {
    w[i] = (worker_arg){s, i, 0};
    pthread_create(&th[i], NULL, worker, &w[i]);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    CHECK_INT(w[i].failures, 0);
  }
  uint32_t pid;
  stream_arg a = {0};
  CHECK_INT(start(s, "yes", false, 0, &pid, &a.sub), CC_OK);
  cc_sbx_event ev;
  while (next_ev(a.sub, &ev) && ev.type != CC_SBX_EV_STDOUT) {
  }
  pthread_t st;
  pthread_create(&st, NULL, streamer, &a);
  CHECK_INT(cc_sbx_kill(rt, "conc"), CC_OK);
  pthread_join(st, NULL);
  CHECK(a.killed);
  cc_sbx_sub_free(a.sub);
  CHECK_INT(cc_sbx_kill(rt, "conc"), CC_NOT_FOUND);
  cc_sbx_release(s);
}

/* The seccomp deny list is active: keyrings fail with EPERM, io_uring with ENOSYS, while a
 * normal toolchain (node) still runs. */
static void seccomp_denies_kernel_attack_surface(void) {
  cc_sbx *s = make("seccomp");
  if (!s) return;
  char script[512];
  snprintf(script, sizeof script,
           "grep '^Seccomp:' /proc/self/status; python3 -c \"\nimport ctypes, os\n"
           "l = ctypes.CDLL(None, use_errno=True)\n"
           "print(l.syscall(%d, 0, 0, 0, 0), ctypes.get_errno() == %d)\n"
           "print(l.syscall(%d, 0, 0), ctypes.get_errno() == %d)\"; node -e 'console.log(6*7)'",
           SYS_keyctl, EPERM, SYS_io_uring_setup, ENOSYS);
  result r;
  CHECK_INT(run(s, script, &r), CC_OK);
  CHECK_STR(r.out, "Seccomp:\t2\n-1 True\n-1 True\n42\n");
  cc_sbx_release(s);
  cc_sbx_kill(rt, "seccomp");
}

/* Where the runtime has root_inside (it runs as root): as_root runs as uid 0 of the sandbox's
 * namespace in /root, file operations as root resolve "~" to /root and are root's, uid 1000
 * stays uid 1000 and cannot read root's files, sudo reaches root through the agent, and no
 * nested user namespace can be made (clone3 is ENOSYS, clone with CLONE_NEWUSER EPERM). */
static void root_inside_is_uid_0_of_the_sandbox(void) {
  cc_sbx_runtime_info info;
  cc_sbx_runtime_get_info(rt, &info);
  CHECK(info.root_inside == info.root);
  if (!info.root_inside) return;
  cc_sbx *s = make("rootin");
  if (!s) return;
  const char *args[] = {"-c", "id -u; id -g; pwd; echo $HOME $USER; grep CapEff /proc/self/status"};
  cc_sbx_proc_spec spec = {.cmd = "/bin/bash", .args = args, .n_args = 2, .as_root = true};
  uint32_t pid;
  cc_sbx_sub *sub;
  cc_sbx_err err;
  result r;
  CHECK_INT(cc_sbx_proc_start(s, &spec, &pid, &sub, &err), CC_OK);
  collect(sub, &r);
  cc_sbx_sub_free(sub);
  r.out[r.out_len] = 0;
  CHECK(strncmp(r.out, "0\n0\n/root\n/root root\nCapEff:\t", 27) == 0);
  CHECK(strcmp(r.out + 27, "00000000000000000\n") != 0); /* root has capabilities (inside) */
  CHECK_INT(cc_sbx_fs_write_file(s, "~/.profile-x", "x", 1, &err), CC_OK); /* user's home */
  int fd = -1;
  CHECK_INT(cc_sbx_fs_open_write_as(s, true, "r.txt", &fd, &err), CC_OK);
  if (fd >= 0) {
    CHECK(write(fd, "root", 4) == 4);
    close(fd);
  }
  cc_sbx_entry e = {0};
  CHECK_INT(cc_sbx_fs_stat_as(s, true, "r.txt", &e, &err), CC_OK);
  CHECK_STR(e.path ? e.path : "", "/root/r.txt");
  CHECK_STR(e.owner, "root");
  cc_sbx_entry_cleanup(&e);
  CHECK_INT(cc_sbx_fs_stat(s, "/root/r.txt", &e, &err), CC_FORBIDDEN);
  cc_sbx_entry_cleanup(&e);
  CHECK_INT(run(s, "id -u; cat /root/r.txt 2>/dev/null || echo denied; sudo cat /root/r.txt; echo; "
                   "sudo -u user id -u; unshare -U true 2>/dev/null || echo nouserns",
                &r),
            CC_OK);
  CHECK_STR(r.out, "1000\ndenied\nroot\n1000\nnouserns\n");
  char script[256];
  snprintf(script, sizeof script,
           "python3 -c \"import ctypes; l = ctypes.CDLL(None, use_errno=True); "
           "print(l.syscall(%d, 0, 0), ctypes.get_errno() == %d)\"",
           SYS_clone3, ENOSYS);
  CHECK_INT(run(s, script, &r), CC_OK);
  CHECK_STR(r.out, "-1 True\n");
  cc_sbx_release(s);
  cc_sbx_kill(rt, "rootin");
}

/* sandboxd dies (SIGKILL, no cleanup): every process of its sandboxes dies with it, and the
 * next runtime removes the cgroups it left.  Runs first, before this process has threads, so
 * the forked "sandboxd" is an ordinary single-threaded child. */
static void everything_dies_with_the_server(void) {
  int pp[2];
  CHECK(pipe(pp) == 0);
  pid_t server = fork();
  if (server == 0) {
    close(pp[0]);
    cc_sbx_config cfg;
    cc_sbx_config_init(&cfg);
    cfg.state_dir = state_dir;
    cc_sbx_runtime *r2;
    if (cc_sbx_runtime_new(&cfg, &r2, NULL) != CC_OK) _exit(1);
    cc_sbx_create_opts o = {.id = "orphan"};
    cc_sbx *s;
    if (cc_sbx_create(r2, &o, &s, NULL) != CC_OK) _exit(1);
    uint32_t pid;
    cc_sbx_sub *sub;
    if (start(s, "echo ready; exec sleep 1000", false, 0, &pid, &sub) != CC_OK) _exit(1);
    wait_stdout(sub);
    cc_sbx_info info;
    cc_sbx_get_info(s, &info);
    int pids[64];
    int n = read_pids(info.cgroup, pids, 64);
    if (write(pp[1], &n, sizeof n) != sizeof n || write(pp[1], pids, sizeof(int) * (size_t)n) < 0 ||
        write(pp[1], info.cgroup, sizeof info.cgroup) < 0)
      _exit(1);
    for (;;) pause();
  }
  close(pp[1]);
  int n = 0, pids[64];
  char cgroup[256] = "";
  CHECK(read(pp[0], &n, sizeof n) == sizeof n);
  CHECK(n >= 3 && n <= 64);
  if (n < 0 || n > 64) n = 0;
  CHECK(read(pp[0], pids, sizeof(int) * (size_t)n) == (ssize_t)(sizeof(int) * (size_t)n));
  CHECK(read(pp[0], cgroup, sizeof cgroup) == sizeof cgroup);
  close(pp[0]);
  kill(server, SIGKILL);
  waitpid(server, NULL, 0);
  /* Wait (pidfd, bounded) for each sandbox process to exit. */
  for (int i = 0; i < n; i++) {
    int fd = (int)syscall(SYS_pidfd_open, pids[i], 0);
    if (fd < 0) continue; /* already gone */
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    CHECK(poll(&pf, 1, 20000) == 1);
    close(fd);
  }
  /* The cgroup the dead server left is removed by the next runtime (created in main). */
  snprintf(orphan_cgroup, sizeof orphan_cgroup, "%s", cgroup);
}

/* Unprivileged (uid 65534, user namespaces allowed): without cgroups the runtime refuses to
 * start unless told to run without limits, and then says so; sandboxes work, with egress.
 * Runs in a forked child that drops root, before this process has threads. */
static void works_unprivileged_and_says_what_is_missing(void) {
  if (geteuid() != 0) return; /* the test itself runs unprivileged: nothing to drop */
  char dir[] = "/tmp/cc-sbx-unpriv-XXXXXX";
  if (!mkdtemp(dir)) return;
  char self[512], agent[600], dst[600];
  ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
  self[k > 0 ? k : 0] = 0;
  *strrchr(self, '/') = 0;
  snprintf(agent, sizeof agent, "%s/codecanvas-sandbox-agent", self);
  snprintf(dst, sizeof dst, "%s/agent", dir);
  /* The build dir may be private (0700): give the unprivileged runtime its own copy. */
  int in = open(agent, O_RDONLY), out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0755);
  char buf[65536];
  ssize_t n;
  while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof buf)) > 0)
    if (write(out, buf, (size_t)n) != n) break;
  close(in), close(out);
  CHECK(chmod(dir, 0755) == 0 && chown(dir, 65534, 65534) == 0);
  int pp[2];
  CHECK(pipe(pp) == 0);
  pid_t child = fork();
  if (child == 0) {
    close(pp[0]);
    if (setgroups(0, NULL) || setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
      _exit(2);
    char sd[640], msg[2048] = "";
    snprintf(sd, sizeof sd, "%s/state", dir);
    cc_sbx_config cfg;
    cc_sbx_config_init(&cfg);
    cfg.state_dir = sd;
    cfg.agent_path = dst;
    cc_sbx_runtime *r;
    cc_sbx_err err;
    cc_status refused = cc_sbx_runtime_new(&cfg, &r, &err);
    int off = snprintf(msg, sizeof msg, "refused=%d cgroup-named=%d\n", refused != CC_OK,
                       strstr(err.msg, "cgroup") != NULL);
    cfg.allow_no_cgroups = true;
    if (cc_sbx_runtime_new(&cfg, &r, &err) != CC_OK) {
      snprintf(msg + off, sizeof msg - (size_t)off, "runtime: %s\n", err.msg);
    } else {
      cc_sbx_runtime_info info;
      cc_sbx_runtime_get_info(r, &info);
      off +=
          snprintf(msg + off, sizeof msg - (size_t)off, "root=%d limits-none-said=%d\n", info.root,
                   info.cgroup == CC_SBX_CGROUP_NONE && strstr(info.report, "NOT limited") != NULL);
      /* No egress is never a reason to fail a create; the report says why there is none. */
      off += snprintf(msg + off, sizeof msg - (size_t)off, "egress-said=%d\n",
                      info.egress_available ||
                          strstr(info.report, "/dev/net/tun is not accessible to uid 65534"));
      cc_sbx_create_opts o = {.id = "unpriv", .allow_internet = true};
      cc_sbx *s;
      if (cc_sbx_create(r, &o, &s, &err) != CC_OK) {
        snprintf(msg + off, sizeof msg - (size_t)off, "create: %s\n", err.msg);
      } else {
        result *res = malloc(sizeof *res);
        run(s,
            "id -u; id -un; echo $$; grep -q tap0 /proc/net/dev && echo egress || echo no-egress",
            res);
        snprintf(msg + off, sizeof msg - (size_t)off, "%.1900s", res->out); /* a few lines; cut, not overflowed */
        free(res);
        cc_sbx_release(s);
      }
      cc_sbx_runtime_free(r);
    }
    (void)!write(pp[1], msg, strlen(msg));
    _exit(0);
  }
  close(pp[1]);
  char got[2048] = "";
  size_t off = 0;
  while (off + 1 < sizeof got && (n = read(pp[0], got + off, sizeof got - 1 - off)) > 0)
    off += (size_t)n;
  got[off] = 0;
  close(pp[0]);
  int st = 0;
  waitpid(child, &st, 0);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  /* Unprivileged, slirp4netns can open the host's /dev/net/tun only where its mode lets
   * everyone (0666, the udev default); a root-only node (0600) means loopback only. */
  struct stat tun;
  bool open_to_all = stat("/dev/net/tun", &tun) == 0 && (tun.st_mode & 0006) == 0006;
  const char *want =
      open_to_all ? "refused=1 cgroup-named=1\nroot=0 limits-none-said=1\negress-said=1\n"
                    "1000\nuser\n2\negress\n"
                  : "refused=1 cgroup-named=1\nroot=0 limits-none-said=1\negress-said=1\n"
                    "1000\nuser\n2\nno-egress\n";
  CHECK_STR(got, want);
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd)) {
  }
}

/* Terminal output of a pty process, read until `want` appears (or END); false if it never
 * does.  *buf collects everything read so far (NUL-terminated). */
static bool pty_until(cc_sbx_sub *sub, const char *want, char *buf, size_t cap, size_t *len) {
  cc_sbx_event ev;
  while (!strstr(buf, want) && next_ev(sub, &ev)) {
    CHECK(ev.type != CC_SBX_EV_STDOUT && ev.type != CC_SBX_EV_STDERR);
    if (ev.type == CC_SBX_EV_PTY && *len + ev.len < cap)
      memcpy(buf + *len, ev.data, ev.len), *len += ev.len, buf[*len] = 0;
    if (ev.type == CC_SBX_EV_END) break;
  }
  return strstr(buf, want) != NULL;
}

static void pty_is_a_terminal_with_size_input_and_resize(void) {
  cc_sbx *s = make("pty");
  if (!s) return;
  const char *args[] = {"-c",
                        "tty; stty size; echo T=$TERM; read -r line; echo got:$line; "
                        "stty size; exit 4"};
  cc_sbx_proc_spec spec = {
      .cmd = "/bin/bash", .args = args, .n_args = 2, .pty = true, .pty_cols = 100, .pty_rows = 30};
  uint32_t pid;
  cc_sbx_sub *sub;
  cc_sbx_err err;
  CHECK_INT(cc_sbx_proc_start(s, &spec, &pid, &sub, &err), CC_OK);
  static char out[1 << 14];
  size_t len = 0;
  out[0] = 0;
  cc_sbx_event ev;
  CHECK(next_ev(sub, &ev) && ev.type == CC_SBX_EV_START);
  /* Its own terminal inside the sandbox, with the asked size; ONLCR makes "\r\n". */
  CHECK(pty_until(sub, "T=xterm-256color\r\n", out, sizeof out, &len));
  CHECK(strstr(out, "/dev/pts/") != NULL);
  CHECK(strstr(out, "30 100\r\n") != NULL);
  /* Resize before the input releases `read`, so the second `stty size` sees it; the typed
   * line is echoed by the terminal and read by the shell. */
  CHECK_INT(cc_sbx_proc_resize_pty(s, pid, 120, 40, &err), CC_OK);
  CHECK_INT(cc_sbx_proc_write_pty(s, pid, "hello\n", 6, 10000, &err), CC_OK);
  CHECK(pty_until(sub, "40 120\r\n", out, sizeof out, &len));
  CHECK(strstr(out, "hello\r\ngot:hello\r\n") != NULL);
  result r;
  collect(sub, &r);
  CHECK(r.ended && r.exited);
  CHECK_INT(r.exit_code, 4);
  cc_sbx_sub_free(sub);
  /* A flood through the terminal arrives complete under the 64 KiB subscription cap. */
  const char *flood[] = {"-c", "head -c 1000000 /dev/zero | tr '\\0' x"};
  spec.args = flood;
  CHECK_INT(cc_sbx_proc_start(s, &spec, &pid, &sub, &err), CC_OK);
  size_t xs = 0, other = 0;
  while (next_ev(sub, &ev)) {
    for (size_t i = 0; ev.type == CC_SBX_EV_PTY && i < ev.len; i++) {
      if (ev.data[i] == 'x')
        xs++;
      else
        other++;
    }
    if (ev.type == CC_SBX_EV_END) CHECK_INT(ev.exit_code, 0);
  }
  CHECK_INT(xs, 1000000);
  CHECK_INT(other, 0);
  cc_sbx_sub_free(sub);
  /* A process without a pty has no terminal to write to or resize. */
  CHECK_INT(start(s, "echo ready; exec sleep 100", true, 0, &pid, &sub), CC_OK);
  wait_stdout(sub);
  CHECK_INT(cc_sbx_proc_write_pty(s, pid, "x", 1, 1000, &err), CC_BAD_REQUEST);
  CHECK(err.kind == CC_SBX_ERR_INVALID_ARG && err.sys_errno == ENOTTY);
  CHECK_INT(cc_sbx_proc_resize_pty(s, pid, 80, 24, &err), CC_BAD_REQUEST);
  CHECK_STR(err.msg, "tty not assigned to process");
  CHECK_INT(cc_sbx_proc_signal(s, pid, SIGKILL, NULL), CC_OK);
  collect(sub, &r);
  cc_sbx_sub_free(sub);
  cc_sbx_release(s);
  CHECK_INT(cc_sbx_kill(rt, "pty"), CC_OK);
}

/* cc_sbx_disk_prune's keep: no sandbox is paused here. */
static bool keep_no_disk(const char *id, void *ctx) {
  (void)id, (void)ctx;
  return false;
}

int main(int argc, char **argv) {
  snprintf(state_dir, sizeof state_dir, "/tmp/cc-sbx-test-XXXXXX");
  if (!mkdtemp(state_dir)) return 1;
  if (argc > 1 && strcmp(argv[1], "--cgroup-v2") == 0) {
    /* ctest's unit.sandbox_cgroup_v2: 77 = skipped (this host cannot give v2 limits) */
    RUN(limits_hold_on_cgroup_v2);
    rmdir(state_dir);
    return v2_skipped && cc_test_failures == 0 ? 77 : CC_TEST_DONE();
  }
  cc_sbx_config cfg;
  cc_sbx_config_init(&cfg);
  cfg.state_dir = state_dir;
  cfg.sub_queue_bytes = 64 * 1024; /* small: back-pressure happens in every test */
  RUN(everything_dies_with_the_server);
  RUN(works_unprivileged_and_says_what_is_missing);
  cc_sbx_err err;
  if (cc_sbx_runtime_new(&cfg, &rt, &err) != CC_OK) {
    fprintf(stderr, "runtime: %s\n", err.msg);
    return 1;
  }
  cc_sbx_runtime_info info;
  cc_sbx_runtime_get_info(rt, &info);
  printf("%s\n", info.report);
  struct stat cst;
  CHECK(orphan_cgroup[0] && stat(orphan_cgroup, &cst) != 0); /* stale cgroup removed */
  /* With a writable system the dead server's sandbox left its disk mounted (as for a sandbox
   * paused without memory); the embedder prunes the disks no paused sandbox of its owns. */
  CHECK(cc_sbx_disk_kept(rt, "orphan") == info.writable_system);
  CHECK_INT((int)cc_sbx_disk_prune(rt, keep_no_disk, NULL), info.writable_system ? 1 : 0);
  CHECK(!cc_sbx_disk_kept(rt, "orphan"));
  RUN(runs_a_command_with_output_and_exit_code);
  RUN(env_and_cwd_follow_envd);
  RUN(stdin_signal_deadline_and_list);
  RUN(pty_is_a_terminal_with_size_input_and_resize);
  RUN(output_is_complete_under_back_pressure);
  RUN(file_api_stays_inside_the_sandbox);
  RUN(sandboxes_are_isolated_and_kill_leaves_nothing);
  RUN(limits_contain_fork_bombs_and_memory_hogs);
  RUN(no_host_loopback_but_ports_are_reachable_through_the_agent);
  RUN(end_arrives_after_throttled_exit_with_lingering_child);
  RUN(concurrent_callers_and_kill_during_streaming);
  RUN(seccomp_denies_kernel_attack_surface);
  RUN(root_inside_is_uid_0_of_the_sandbox);
  cc_sbx_runtime_free(rt);
  /* nothing of the writable system is left: no mount, no directory */
  char sys[sizeof state_dir + 8];
  snprintf(sys, sizeof sys, "%s/sys", state_dir);
  CHECK(stat(sys, &cst) != 0);
  rmdir(state_dir);
  return CC_TEST_DONE();
}
