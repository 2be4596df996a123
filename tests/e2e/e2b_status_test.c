/*
 * e2b_status_test: runs single native E2B client calls (native/e2b/) against whatever server a
 * URL names and prints how each one failed, for tests/e2e/e2b_status.test.mjs, which answers
 * every upstream status of the mapping table (docs/protocol.md, "Upstream errors") from a
 * real HTTP server and checks the protocol code each row maps to.
 *
 * Reads one call per line on stdin:
 *
 *   <call> <api-url> <sandbox-url> <connect-timeout-ms> <request-timeout-ms>
 *
 * call: create connect kill info timeout (control plane) or read write list stat exec signal
 * (envd, against a sandbox descriptor "ifake1" with an access token).  A URL may be given as
 * "@refused" (a local port nobody listens on) or "@backlog" (a local listener whose accept
 * queue is full, so that a connection attempt gets no answer at all); a path after it is kept
 * ("@backlog/x").  Prints one line per call, in order:
 *
 *   <protocol code> <HTTP status or 0> <sandbox_gone 0|1> <message>
 *
 * and exits 0 (the Node side judges).  Uses the client exactly as the worker does.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cc_e2b.h"

/* A listening socket on 127.0.0.1; its port in *port.  backlog < 0: closed again at once. */
static int local_port(int backlog, int *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &sl) != 0 ||
      listen(fd, backlog < 0 ? 1 : backlog) != 0) {
    perror("local listener");
    exit(2);
  }
  *port = ntohs(sa.sin_port);
  if (backlog < 0) {
    close(fd);
    return -1;
  }
  /* Fill the accept queue (never accepted): further SYNs are dropped, so a connect hangs. */
  for (int i = 0; i < 3; i++) {
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c >= 0) (void)connect(c, (struct sockaddr *)&sa, sizeof sa); /* kept open on purpose */
  }
  return fd;
}

/* Resolves "@refused[/path]" and "@backlog[/path]"; other URLs are returned as they are. */
static const char *resolve(const char *url, char *buf, size_t n) {
  int port = 0;
  const char *rest = NULL;
  if (strncmp(url, "@refused", 8) == 0) {
    local_port(-1, &port);
    rest = url + 8;
  } else if (strncmp(url, "@backlog", 8) == 0) {
    local_port(0, &port);
    rest = url + 8;
  } else {
    return url;
  }
  snprintf(buf, n, "http://127.0.0.1:%d%s", port, rest);
  return buf;
}

static cc_status run(cc_e2b_client *c, const char *call, cc_e2b_error *e) {
  cc_e2b_sandbox sb = {.id = "ifake1",
                       .envd_access_token = "envd-token",
                       .domain = "localhost",
                       .envd_version = "0.4.3"};
  cc_e2b_sandbox out;
  cc_e2b_info info;
  if (strcmp(call, "create") == 0) return cc_e2b_create(c, NULL, &out, e);
  if (strcmp(call, "connect") == 0) return cc_e2b_connect(c, "ifake1", 60, &out, e);
  if (strcmp(call, "kill") == 0) return cc_e2b_kill(c, "ifake1", e);
  if (strcmp(call, "info") == 0) return cc_e2b_get_info(c, "ifake1", &info, e);
  if (strcmp(call, "timeout") == 0) return cc_e2b_set_timeout(c, "ifake1", 60, e);
  if (strcmp(call, "read") == 0) {
    char *data = NULL;
    size_t len = 0;
    cc_status st = cc_e2b_read_file(c, &sb, "/home/user/link", 1 << 20, &data, &len, e);
    cc_e2b_free(data);
    return st;
  }
  if (strcmp(call, "write") == 0)
    return cc_e2b_write_file(c, &sb, "/home/user/f.txt", "hello", 5, NULL, 0, e);
  if (strcmp(call, "list") == 0) {
    cc_e2b_entry_list l;
    cc_status st = cc_e2b_list_dir(c, &sb, "/home/user/d", 1, &l, e);
    cc_e2b_entry_list_cleanup(&l);
    return st;
  }
  if (strcmp(call, "stat") == 0) {
    cc_e2b_entry en;
    cc_status st = cc_e2b_stat(c, &sb, "/home/user/d", &en, e);
    cc_e2b_entry_cleanup(&en);
    return st;
  }
  if (strcmp(call, "exec") == 0) {
    cc_e2b_exec_opts o = {.cmd = "true", .timeout_ms = 5000};
    cc_e2b_exec_result res;
    return cc_e2b_exec(c, &sb, &o, &res, e);
  }
  if (strcmp(call, "signal") == 0) return cc_e2b_send_signal(c, &sb, 77, 9, e);
  fprintf(stderr, "unknown call %s\n", call);
  exit(2);
}

int main(void) {
  char line[4096];
  setvbuf(stdout, NULL, _IOLBF, 0);
  while (fgets(line, sizeof line, stdin)) {
    char call[32], api[1024], sbx[1024];
    long connect_ms = 0, request_ms = 0;
    if (sscanf(line, "%31s %1023s %1023s %ld %ld", call, api, sbx, &connect_ms, &request_ms) != 5) {
      if (line[0] != '\n') fprintf(stderr, "bad line: %s", line);
      continue;
    }
    char abuf[1100], sbuf[1100];
    cc_e2b_config cfg;
    cc_e2b_config_init(&cfg);
    cfg.api_key = "e2b_status_test_key";
    cfg.api_url = resolve(api, abuf, sizeof abuf);
    cfg.sandbox_url = resolve(sbx, sbuf, sizeof sbuf);
    cfg.connect_timeout_ms = connect_ms;
    cfg.request_timeout_ms = request_ms;
    cfg.keepalive_interval_s = 1;
    cc_e2b_client *c = NULL;
    cc_e2b_error e = {0};
    cc_status st = cc_e2b_client_new(&cfg, &c, &e);
    if (st == CC_OK) st = run(c, call, &e);
    printf("%s %d %d %s\n", st == CC_OK ? "ok" : cc_status_code(st), e.http_status,
           e.sandbox_gone ? 1 : 0, st == CC_OK ? "" : e.message);
    cc_e2b_client_free(c);
  }
  return 0;
}
