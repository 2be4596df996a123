/*
 * e2b_client_test: drives the native E2B client (native/e2b/) against a live E2B-compatible
 * server.  Run by tests/e2e/e2b_client.test.mjs against a real codecanvas-sandboxd (real
 * bubblewrap sandboxes, real HTTP on 127.0.0.1); it can equally be pointed at the E2B cloud.
 *
 *   e2b_client_test <base-url> <api-key>
 *
 * The base URL serves both the control plane and envd (E2B_API_URL = E2B_SANDBOX_URL).
 * Prints one line per check group ("ok"/"FAIL") and exits with the number of failed checks.
 * No sleeps and no timing assertions: where ordering matters (streamed output arriving
 * before the command ends) the command itself waits for something the test does only after
 * it saw the output, so a client that buffered until the end would hang and fail instead.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cc_e2b.h"
#include "cc_test.h"

static const char *g_key;
static const char *g_url;
static cc_e2b_client *g_c;
static cc_e2b_sandbox g_sb;

/* Every error message any call produced, to check the API key never appears in one. */
static char g_messages[64 * 1024];
static size_t g_messages_len;

static void note(const cc_e2b_error *e) {
  size_t l = strlen(e->message);
  if (g_messages_len + l + 2 < sizeof g_messages) {
    memcpy(g_messages + g_messages_len, e->message, l);
    g_messages_len += l;
    g_messages[g_messages_len++] = '\n';
    g_messages[g_messages_len] = 0;
  }
}

/* ------------------------------------------------------------ event recorder */

typedef struct {
  char out[8192];
  size_t out_len;
  char err[8192];
  size_t err_len;
  char order[64]; /* one letter per event: s(tart) o(ut) e(rr) E(nd) k(eepalive) */
  size_t norder;
  /* optional behaviours */
  const char *write_on_stdout; /* write this file in the sandbox when stdout first arrives */
  bool wrote;
  const char *stdin_on_start; /* send this to stdin on the start event */
  cc_e2b_action on_start;     /* returned on the start event */
  atomic_int *flag_on_start;  /* set on the start event */
  const char *write_on_start; /* write this file in the sandbox on the start event */
  bool cancel_on_stdout;      /* return CC_E2B_CANCEL after the first stdout */
} rec;

static void append(char *buf, size_t *len, size_t cap, const char *d, size_t n) {
  if (*len + n >= cap) n = cap - *len - 1;
  memcpy(buf + *len, d, n);
  *len += n;
  buf[*len] = 0;
}

static cc_e2b_action on_event(void *ctx, const cc_e2b_event *ev) {
  rec *r = ctx;
  static const char letters[] = "soepEk";
  if (r->norder + 1 < sizeof r->order) r->order[r->norder++] = letters[ev->type];
  cc_e2b_error e;
  switch (ev->type) {
    case CC_E2B_EVENT_START:
      if (r->stdin_on_start) {
        if (cc_e2b_send_input(g_c, &g_sb, ev->pid, r->stdin_on_start, strlen(r->stdin_on_start),
                              &e) != CC_OK) {
          note(&e);
          fprintf(stderr, "send_input: %s\n", e.message);
        }
      }
      if (r->flag_on_start) atomic_store(r->flag_on_start, 1);
      if (r->write_on_start &&
          cc_e2b_write_file(g_c, &g_sb, r->write_on_start, "go", 2, NULL, 0, &e) != CC_OK) {
        note(&e);
        fprintf(stderr, "write_file on start: %s\n", e.message);
      }
      return r->on_start;
    case CC_E2B_EVENT_STDOUT:
      append(r->out, &r->out_len, sizeof r->out, ev->data, ev->len);
      if (r->write_on_stdout && !r->wrote) {
        r->wrote = true;
        if (cc_e2b_write_file(g_c, &g_sb, r->write_on_stdout, "go", 2, NULL, 0, &e) != CC_OK) {
          note(&e);
          fprintf(stderr, "write_file in callback: %s\n", e.message);
        }
      }
      if (r->cancel_on_stdout) return CC_E2B_CANCEL;
      break;
    case CC_E2B_EVENT_STDERR:
      append(r->err, &r->err_len, sizeof r->err, ev->data, ev->len);
      break;
    default:
      break;
  }
  return CC_E2B_CONTINUE;
}

static cc_status run(const char *cmd, rec *r, long timeout_ms, bool stdin_on,
                     cc_e2b_exec_result *res, cc_e2b_error *e) {
  cc_e2b_exec_opts o = {.cmd = cmd,
                        .timeout_ms = timeout_ms,
                        .stdin_enabled = stdin_on,
                        .on_event = on_event,
                        .ctx = r};
  cc_status st = cc_e2b_exec(g_c, &g_sb, &o, res, e);
  if (st != CC_OK) note(e);
  return st;
}

static bool process_running(uint32_t pid) {
  cc_e2b_process_list l;
  cc_e2b_error e;
  bool found = false;
  if (cc_e2b_list_processes(g_c, &g_sb, &l, &e) != CC_OK) {
    note(&e);
    return true; /* unknown: report as running so the caller's check fails */
  }
  for (size_t i = 0; i < l.count; i++)
    if (l.items[i].pid == pid) found = true;
  cc_e2b_process_list_cleanup(&l);
  return found;
}

/* ------------------------------------------------------------ tests */

static void test_create(void) {
  cc_e2b_kv meta[] = {{"suite", "e2b_client_test"}};
  cc_e2b_kv envs[] = {{"CC_FROM_CREATE", "created-env"}};
  cc_e2b_create_opts co = {.metadata = meta,
                           .metadata_count = 1,
                           .env_vars = envs,
                           .env_vars_count = 1,
                           .timeout_s = 120};
  cc_e2b_error e;
  cc_status st = cc_e2b_create(g_c, &co, &g_sb, &e);
  if (st != CC_OK) {
    note(&e);
    fprintf(stderr, "create: %s\n", e.message);
  }
  CHECK_INT(st, CC_OK);
  CHECK(g_sb.id[0] != 0);
  CHECK(g_sb.envd_version[0] != 0);
  CHECK(g_sb.envd_access_token[0] != 0); /* secure:true issues a token */
  cc_e2b_info info;
  CHECK_INT(cc_e2b_get_info(g_c, g_sb.id, &info, &e), CC_OK);
  CHECK_STR(info.id, g_sb.id);
  CHECK_STR(info.state, "running");
  CHECK_INT(cc_e2b_set_timeout(g_c, g_sb.id, 120, &e), CC_OK);
  cc_e2b_sandbox again;
  CHECK_INT(cc_e2b_connect(g_c, g_sb.id, 120, &again, &e), CC_OK);
  CHECK_STR(again.id, g_sb.id);
  CHECK_INT(cc_e2b_health(g_c, &g_sb, &e), CC_OK);
  char host[320];
  CHECK_INT(cc_e2b_host(&g_sb, 3000, host, sizeof host), CC_OK);
  CHECK(strncmp(host, "3000-", 5) == 0 && strstr(host, g_sb.id) != NULL);
}

static void test_exec_output(void) {
  rec r = {0};
  cc_e2b_exec_result res;
  cc_e2b_error e;
  CHECK_INT(run("echo hello; echo oops >&2; echo $CC_FROM_CREATE", &r, 30000, false, &res, &e),
            CC_OK);
  CHECK(res.started && res.ended && res.exited);
  CHECK(res.pid > 0);
  CHECK_INT(res.exit_code, 0);
  CHECK_STR(r.out, "hello\ncreated-env\n");
  CHECK_STR(r.err, "oops\n");
  CHECK(r.order[0] == 's');
  CHECK(r.norder > 0 && r.order[r.norder - 1] == 'E');

  /* Per-command environment and working directory. */
  rec r2 = {0};
  cc_e2b_kv env[] = {{"CC_X", "per-exec"}};
  cc_e2b_exec_opts o = {.cmd = "echo $CC_X; pwd",
                        .envs = env,
                        .envs_count = 1,
                        .cwd = "/tmp",
                        .timeout_ms = 30000,
                        .on_event = on_event,
                        .ctx = &r2};
  CHECK_INT(cc_e2b_exec(g_c, &g_sb, &o, &res, &e), CC_OK);
  CHECK_STR(r2.out, "per-exec\n/tmp\n");

  /* Binary-safe output, larger than one envd read (32 KiB). */
  rec r3 = {0};
  CHECK_INT(run("head -c 6000 /dev/zero | tr '\\0' 'x'", &r3, 30000, false, &res, &e), CC_OK);
  CHECK_INT(r3.out_len, 6000);
}

static void test_streaming_before_end(void) {
  /* The command cannot finish until the test writes /tmp/cc-go, which it does only when it
   * has received "ready" — so the output must be streamed while the command runs. */
  rec r = {.write_on_stdout = "/tmp/cc-go"};
  cc_e2b_exec_result res;
  cc_e2b_error e;
  cc_status st =
      run("rm -f /tmp/cc-go; echo ready; while [ ! -f /tmp/cc-go ]; do sleep 0.05; done;"
          " echo done",
          &r, 20000, false, &res, &e);
  CHECK_INT(st, CC_OK);
  CHECK(r.wrote);
  CHECK_STR(r.out, "ready\ndone\n");
  CHECK(res.ended && res.exit_code == 0);
}

static void test_exit_codes(void) {
  rec r = {0};
  cc_e2b_exec_result res;
  cc_e2b_error e;
  CHECK_INT(run("echo partial; exit 3", &r, 30000, false, &res, &e), CC_OK);
  CHECK(res.ended);
  CHECK_INT(res.exit_code, 3);
  CHECK(res.exited);
  CHECK_STR(res.error, "exit status 3");
  CHECK_STR(r.out, "partial\n");

  /* A spawn failure (missing cwd) is the caller's bad request. */
  cc_e2b_exec_opts o = {.cmd = "true", .cwd = "/no/such/dir", .timeout_ms = 30000};
  cc_status st = cc_e2b_exec(g_c, &g_sb, &o, &res, &e);
  note(&e);
  CHECK_INT(st, CC_BAD_REQUEST);
}

static void test_timeout(void) {
  rec r = {0};
  cc_e2b_exec_result res;
  cc_e2b_error e;
  cc_status st = run("echo started; sleep 30", &r, 3000, false, &res, &e);
  CHECK_INT(st, CC_TIMEOUT);
  CHECK(res.timed_out);
  CHECK_STR(r.out, "started\n");
  CHECK(res.pid > 0 && !process_running(res.pid)); /* the deadline killed it */
}

static void test_stdin(void) {
  rec r = {.stdin_on_start = "hi there\n"};
  cc_e2b_exec_result res;
  cc_e2b_error e;
  CHECK_INT(run("read line; echo got:$line", &r, 20000, true, &res, &e), CC_OK);
  CHECK_STR(r.out, "got:hi there\n");
}

static void test_cancel(void) {
  /* Cancel from the callback: the stream stops and the process is SIGKILLed. */
  rec r = {.on_start = CC_E2B_CANCEL};
  cc_e2b_exec_result res;
  cc_e2b_error e;
  CHECK_INT(run("sleep 60", &r, 0, false, &res, &e), CC_OK);
  CHECK(res.canceled && !res.kill_failed && !res.ended);
  CHECK(res.pid > 0 && !process_running(res.pid));

  /* Cancel through the flag (what the worker sets from another thread on disconnect). */
  atomic_int flag = 0;
  rec r2 = {.flag_on_start = &flag};
  cc_e2b_exec_opts o = {
      .cmd = "echo x; sleep 60", .cancel = &flag, .on_event = on_event, .ctx = &r2};
  CHECK_INT(cc_e2b_exec(g_c, &g_sb, &o, &res, &e), CC_OK);
  CHECK(res.canceled && !res.kill_failed);
  CHECK(res.pid > 0 && !process_running(res.pid));

  /* Detach leaves a background process running; SendSignal then kills it. */
  rec r3 = {.on_start = CC_E2B_DETACH};
  CHECK_INT(run("sleep 60", &r3, 0, false, &res, &e), CC_OK);
  CHECK(res.detached && res.pid > 0);
  CHECK(process_running(res.pid));
  CHECK_INT(cc_e2b_send_signal(g_c, &g_sb, res.pid, 9, &e), CC_OK);
  /* SendSignal returns once the signal is sent; attach waits for the end event. */
  cc_e2b_exec_result ar;
  cc_status ast = cc_e2b_attach(g_c, &g_sb, res.pid, NULL, &ar, &e);
  CHECK(ast == CC_NOT_FOUND || (ast == CC_OK && ar.ended && ar.exit_code == -1));
  CHECK(!process_running(res.pid));
  CHECK_INT(cc_e2b_send_signal(g_c, &g_sb, res.pid, 9, &e), CC_NOT_FOUND);
  CHECK(!e.sandbox_gone);
  note(&e);
  CHECK_INT(cc_e2b_send_signal(g_c, &g_sb, res.pid, 3, &e), CC_BAD_REQUEST);

  /* Attach to a background process: its live output arrives through the attached stream
   * (it prints only after the attach's start event made us create /tmp/cc-go2), and a
   * cancel through the attach kills it. */
  /* A fresh sandbox's /tmp is empty, so no "rm -f" first: it could run after our write. */
  rec r4 = {.on_start = CC_E2B_DETACH};
  CHECK_INT(run("while [ ! -f /tmp/cc-go2 ]; do sleep 0.05; done; echo late; sleep 60", &r4, 0,
                false, &res, &e),
            CC_OK);
  CHECK(res.detached);
  uint32_t bg = res.pid;
  rec r5 = {.write_on_start = "/tmp/cc-go2", .cancel_on_stdout = true};
  cc_e2b_exec_opts ao = {.on_event = on_event, .ctx = &r5, .timeout_ms = 20000};
  CHECK_INT(cc_e2b_attach(g_c, &g_sb, bg, &ao, &res, &e), CC_OK);
  CHECK_STR(r5.out, "late\n");
  CHECK(res.canceled && !res.kill_failed);
  CHECK(!process_running(bg));
  /* Attaching to a finished pid: not_found, or (newer envd keeps the end event for a while)
   * an immediate start + end. */
  cc_status ast2 = cc_e2b_attach(g_c, &g_sb, bg, NULL, &res, &e);
  CHECK(ast2 == CC_NOT_FOUND || (ast2 == CC_OK && res.ended));
  CHECK_INT(cc_e2b_attach(g_c, &g_sb, 999999, NULL, &res, &e), CC_NOT_FOUND);
}

static void test_files(void) {
  cc_e2b_error e;
  char bin[300];
  for (size_t i = 0; i < sizeof bin; i++) bin[i] = (char)(i * 7);
  char abs[256];
  CHECK_INT(cc_e2b_write_file(g_c, &g_sb, "/home/user/d1/sub/a.bin", bin, sizeof bin, abs,
                              sizeof abs, &e),
            CC_OK);
  CHECK_STR(abs, "/home/user/d1/sub/a.bin");
  char *data = NULL;
  size_t len = 0;
  CHECK_INT(cc_e2b_read_file(g_c, &g_sb, "/home/user/d1/sub/a.bin", 0, &data, &len, &e), CC_OK);
  CHECK_INT(len, sizeof bin);
  CHECK(data && memcmp(data, bin, sizeof bin) == 0);
  cc_e2b_free(data);
  /* Relative paths resolve against the user's home. */
  CHECK_INT(cc_e2b_write_file(g_c, &g_sb, "rel.txt", "", 0, abs, sizeof abs, &e), CC_OK);
  CHECK_STR(abs, "/home/user/rel.txt");
  CHECK_INT(cc_e2b_read_file(g_c, &g_sb, "rel.txt", 0, &data, &len, &e), CC_OK);
  CHECK_INT(len, 0);
  CHECK(data != NULL);
  cc_e2b_free(data);
  /* Limits and errors. */
  CHECK_INT(cc_e2b_read_file(g_c, &g_sb, "/home/user/d1/sub/a.bin", 100, &data, &len, &e),
            CC_TOO_LARGE);
  CHECK(data == NULL);
  CHECK_INT(cc_e2b_read_file(g_c, &g_sb, "/home/user/missing", 0, &data, &len, &e), CC_NOT_FOUND);
  CHECK(!e.sandbox_gone);
  note(&e);
  CHECK_INT(cc_e2b_read_file(g_c, &g_sb, "/home/user/d1", 0, &data, &len, &e), CC_BAD_REQUEST);

  /* Filesystem RPCs. */
  cc_e2b_entry ent;
  CHECK_INT(cc_e2b_make_dir(g_c, &g_sb, "/home/user/d2/x", &ent, &e), CC_OK);
  CHECK_INT(ent.type, CC_E2B_FILE_DIR);
  CHECK_STR(ent.path, "/home/user/d2/x");
  cc_e2b_entry_cleanup(&ent);
  CHECK_INT(cc_e2b_make_dir(g_c, &g_sb, "/home/user/d2/x", NULL, &e), CC_CONFLICT);
  CHECK_INT(cc_e2b_stat(g_c, &g_sb, "/home/user/d1/sub/a.bin", &ent, &e), CC_OK);
  CHECK_INT(ent.type, CC_E2B_FILE_FILE);
  CHECK_INT(ent.size, sizeof bin);
  CHECK_STR(ent.name, "a.bin");
  cc_e2b_entry_cleanup(&ent);
  CHECK_INT(cc_e2b_stat(g_c, &g_sb, "/home/user/nope", NULL, &e), CC_NOT_FOUND);
  CHECK(!e.sandbox_gone);
  CHECK_INT(cc_e2b_move(g_c, &g_sb, "/home/user/d1/sub/a.bin", "/home/user/d2/b.bin", &ent, &e),
            CC_OK);
  CHECK_STR(ent.path, "/home/user/d2/b.bin");
  cc_e2b_entry_cleanup(&ent);
  CHECK_INT(cc_e2b_move(g_c, &g_sb, "/home/user/d1/sub/a.bin", "/home/user/d2/c", NULL, &e),
            CC_NOT_FOUND);
  cc_e2b_entry_list l;
  CHECK_INT(cc_e2b_list_dir(g_c, &g_sb, "/home/user/d2", 1, &l, &e), CC_OK);
  CHECK_INT(l.count, 2); /* b.bin, x */
  cc_e2b_entry_list_cleanup(&l);
  CHECK_INT(cc_e2b_list_dir(g_c, &g_sb, "/home/user", 3, &l, &e), CC_OK);
  bool deep = false;
  for (size_t i = 0; i < l.count; i++)
    if (strcmp(l.items[i].path, "/home/user/d2/x") == 0) deep = true;
  CHECK(deep);
  cc_e2b_entry_list_cleanup(&l);
  CHECK_INT(cc_e2b_list_dir(g_c, &g_sb, "/home/user/nope", 1, &l, &e), CC_NOT_FOUND);
  CHECK_INT(cc_e2b_list_dir(g_c, &g_sb, "/home/user/d2/b.bin", 1, &l, &e), CC_BAD_REQUEST);
  CHECK_INT(cc_e2b_remove(g_c, &g_sb, "/home/user/d2", &e), CC_OK);
  CHECK_INT(cc_e2b_stat(g_c, &g_sb, "/home/user/d2", NULL, &e), CC_NOT_FOUND);
  CHECK_INT(cc_e2b_remove(g_c, &g_sb, "/home/user/d2", &e), CC_OK); /* missing is fine */
}

/* Sequential calls reuse keep-alive connections (unary calls and finished streams). */
static void test_connection_reuse(void) {
  cc_e2b_error e;
  cc_e2b_stats before, after;
  CHECK_INT(cc_e2b_stat(g_c, &g_sb, "/home/user", NULL, &e), CC_OK); /* warm up */
  cc_e2b_client_stats(g_c, &before);
  for (int i = 0; i < 20; i++) CHECK_INT(cc_e2b_stat(g_c, &g_sb, "/home/user", NULL, &e), CC_OK);
  for (int i = 0; i < 10; i++) {
    cc_e2b_exec_opts o = {.cmd = "true", .timeout_ms = 30000};
    cc_e2b_exec_result res;
    CHECK_INT(cc_e2b_exec(g_c, &g_sb, &o, &res, &e), CC_OK);
  }
  cc_e2b_client_stats(g_c, &after);
  CHECK_INT(after.requests - before.requests, 30);
  CHECK(after.connections - before.connections <= 1);
  CHECK(after.connections >= 1); /* the counter counts: earlier calls opened connections */
}

/* Several threads share one client (the worker's situation). */
#define THREADS 4
#define PER_THREAD 6

static void *thread_main(void *arg) {
  long id = (long)arg;
  long bad = 0;
  for (int i = 0; i < PER_THREAD; i++) {
    char cmd[64], want[64];
    snprintf(cmd, sizeof cmd, "echo t%ld-%d", id, i);
    snprintf(want, sizeof want, "t%ld-%d\n", id, i);
    rec r = {0};
    cc_e2b_exec_opts o = {.cmd = cmd, .timeout_ms = 30000, .on_event = on_event, .ctx = &r};
    cc_e2b_exec_result res;
    cc_e2b_error e;
    if (cc_e2b_exec(g_c, &g_sb, &o, &res, &e) != CC_OK || strcmp(r.out, want) != 0) bad++;
  }
  return (void *)bad;
}

static void test_threads(void) {
  pthread_t t[THREADS];
  for (long i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, thread_main, (void *)i);
  long bad = 0;
  for (int i = 0; i < THREADS; i++) {
    void *r;
    pthread_join(t[i], &r);
    bad += (long)r;
  }
  CHECK_INT(bad, 0);
}

/* Cancel from ANOTHER thread (the worker's client-disconnect path), several at once. */
static pthread_mutex_t xc_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t xc_cv = PTHREAD_COND_INITIALIZER;

typedef struct {
  atomic_int cancel;
  bool started; /* under xc_mu */
  cc_e2b_exec_result res;
  cc_status st;
} xcancel;

static cc_e2b_action xcancel_event(void *ctx, const cc_e2b_event *ev) {
  xcancel *x = ctx;
  if (ev->type == CC_E2B_EVENT_START) {
    pthread_mutex_lock(&xc_mu);
    x->started = true;
    pthread_cond_broadcast(&xc_cv);
    pthread_mutex_unlock(&xc_mu);
  }
  return CC_E2B_CONTINUE;
}

static void *xcancel_main(void *arg) {
  xcancel *x = arg;
  cc_e2b_exec_opts o = {
      .cmd = "sleep 60", .cancel = &x->cancel, .on_event = xcancel_event, .ctx = x};
  cc_e2b_error e;
  x->st = cc_e2b_exec(g_c, &g_sb, &o, &x->res, &e);
  return NULL;
}

static void test_cancel_from_other_threads(void) {
  enum { N = 4 };
  xcancel x[N];
  pthread_t t[N];
  for (int i = 0; i < N; i++) {
    memset(&x[i], 0, sizeof x[i]);
    pthread_create(&t[i], NULL, xcancel_main, &x[i]);
  }
  /* Wait for each start event (bounded: 60 s), then cancel it from this thread. */
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 60;
  for (int i = 0; i < N; i++) {
    pthread_mutex_lock(&xc_mu);
    while (!x[i].started && pthread_cond_timedwait(&xc_cv, &xc_mu, &until) == 0) {
    }
    bool started = x[i].started;
    pthread_mutex_unlock(&xc_mu);
    CHECK(started);
    atomic_store(&x[i].cancel, 1);
  }
  for (int i = 0; i < N; i++) {
    pthread_join(t[i], NULL);
    CHECK_INT(x[i].st, CC_OK);
    CHECK(x[i].res.canceled && !x[i].res.kill_failed);
    CHECK(x[i].res.pid > 0 && !process_running(x[i].res.pid));
  }
}

/* A long silent command survives the client's dead-peer detection: with a 1 s keepalive the
 * client drops a stream silent for 12 s, and envd's keepalives must keep this 13 s one alive. */
static void test_silent_command_keepalive(void) {
  cc_e2b_config cfg;
  cc_e2b_config_init(&cfg);
  cfg.api_key = g_key;
  cfg.api_url = g_url;
  cfg.sandbox_url = g_url;
  cfg.keepalive_interval_s = 1;
  cc_e2b_client *c;
  cc_e2b_error e;
  CHECK_INT(cc_e2b_client_new(&cfg, &c, &e), CC_OK);
  rec r = {0};
  cc_e2b_exec_opts o = {.cmd = "sleep 13; echo done", .on_event = on_event, .ctx = &r};
  cc_e2b_exec_result res;
  cc_status st = cc_e2b_exec(c, &g_sb, &o, &res, &e);
  if (st != CC_OK) note(&e);
  CHECK_INT(st, CC_OK);
  CHECK_STR(r.out, "done\n");
  CHECK(strchr(r.order, 'k') != NULL); /* keepalives did arrive */
  cc_e2b_client_free(c);
}

/* A wrong envd access token is OUR credential problem: upstream_error, never unauthorized. */
static void test_wrong_envd_token(void) {
  cc_e2b_sandbox bad = g_sb;
  snprintf(bad.envd_access_token, sizeof bad.envd_access_token, "not-the-token");
  cc_e2b_error e;
  cc_e2b_exec_opts o = {.cmd = "true", .timeout_ms = 10000};
  cc_e2b_exec_result res;
  cc_status st = cc_e2b_exec(g_c, &bad, &o, &res, &e);
  note(&e);
  CHECK_INT(st, CC_UPSTREAM_ERROR);
  CHECK_INT(e.http_status, 401);
  CHECK(!res.started);
  CHECK_INT(cc_e2b_stat(g_c, &bad, "/home/user", NULL, &e), CC_UPSTREAM_ERROR);
  char *data;
  size_t len;
  CHECK_INT(cc_e2b_read_file(g_c, &bad, "/home/user/rel.txt", 0, &data, &len, &e),
            CC_UPSTREAM_ERROR);
  CHECK(strstr(e.message, g_sb.envd_access_token) == NULL);
}

static void test_kill_and_gone(void) {
  cc_e2b_error e;
  CHECK_INT(cc_e2b_kill(g_c, g_sb.id, &e), CC_OK);
  cc_e2b_sandbox sb2;
  CHECK_INT(cc_e2b_connect(g_c, g_sb.id, 60, &sb2, &e), CC_NOT_FOUND);
  CHECK(e.sandbox_gone);
  note(&e);
  CHECK_INT(cc_e2b_kill(g_c, g_sb.id, &e), CC_NOT_FOUND);
  CHECK(e.sandbox_gone);
  cc_e2b_info info;
  CHECK_INT(cc_e2b_get_info(g_c, g_sb.id, &info, &e), CC_NOT_FOUND);
  CHECK_INT(cc_e2b_set_timeout(g_c, g_sb.id, 60, &e), CC_NOT_FOUND);
  /* envd of a dead sandbox: the worker must learn it is gone (and re-create it). */
  cc_e2b_exec_opts o = {.cmd = "true", .timeout_ms = 10000};
  cc_e2b_exec_result res;
  cc_status st = cc_e2b_exec(g_c, &g_sb, &o, &res, &e);
  note(&e);
  CHECK_INT(st, CC_NOT_FOUND);
  CHECK(e.sandbox_gone);
  char *data;
  size_t len;
  st = cc_e2b_read_file(g_c, &g_sb, "/home/user/rel.txt", 0, &data, &len, &e);
  note(&e);
  CHECK(st == CC_NOT_FOUND && e.sandbox_gone);
}

static void test_bad_credentials_and_unreachable(void) {
  const char *url = g_url;
  cc_e2b_config cfg;
  cc_e2b_config_init(&cfg);
  char wrong[96];
  snprintf(wrong, sizeof wrong, "e2b_wrong_%s_key", g_key);
  cfg.api_key = wrong;
  cfg.api_url = url;
  cfg.sandbox_url = url;
  cc_e2b_client *c;
  cc_e2b_error e;
  CHECK_INT(cc_e2b_client_new(&cfg, &c, &e), CC_OK);
  cc_e2b_sandbox sb;
  cc_status st = cc_e2b_create(c, NULL, &sb, &e);
  note(&e);
  CHECK_INT(st, CC_UPSTREAM_ERROR); /* our credentials: never CC_UNAUTHORIZED */
  CHECK_INT(e.http_status, 401);
  CHECK(strstr(e.message, wrong) == NULL);
  cc_e2b_client_free(c);

  cfg.api_key = g_key;
  cfg.api_url = "http://127.0.0.1:1";
  cfg.sandbox_url = "http://127.0.0.1:1";
  CHECK_INT(cc_e2b_client_new(&cfg, &c, &e), CC_OK);
  st = cc_e2b_create(c, NULL, &sb, &e);
  note(&e);
  CHECK_INT(st, CC_SANDBOX_UNAVAILABLE);
  cc_e2b_client_free(c);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s <base-url> <api-key>\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  g_key = argv[2];
  g_url = argv[1];
  cc_e2b_config cfg;
  cc_e2b_config_init(&cfg);
  cfg.api_key = argv[2];
  cfg.api_url = argv[1];
  cfg.sandbox_url = argv[1];
  cfg.keepalive_interval_s = 5;
  cc_e2b_error e;
  if (cc_e2b_client_new(&cfg, &g_c, &e) != CC_OK) {
    fprintf(stderr, "client: %s\n", e.message);
    return 2;
  }
  RUN(test_create);
  if (g_sb.id[0]) {
    RUN(test_exec_output);
    RUN(test_streaming_before_end);
    RUN(test_exit_codes);
    RUN(test_timeout);
    RUN(test_stdin);
    RUN(test_cancel);
    RUN(test_files);
    RUN(test_connection_reuse);
    RUN(test_threads);
    RUN(test_cancel_from_other_threads);
    RUN(test_silent_command_keepalive);
    RUN(test_wrong_envd_token);
    RUN(test_kill_and_gone);
  }
  RUN(test_bad_credentials_and_unreachable);
  /* The key must not appear in anything the client told us. */
  CHECK(strstr(g_messages, g_key) == NULL);
  if (getenv("CC_E2B_TEST_VERBOSE")) fprintf(stderr, "messages seen:\n%s", g_messages);
  cc_e2b_client_free(g_c);
  return CC_TEST_DONE();
}
