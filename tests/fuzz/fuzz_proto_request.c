/*
 * libFuzzer target: the protocol v1 request decoder (shared/cc_proto.c), i.e. every byte a
 * client can POST to /v1/rpc, plus the path normaliser and base64 decoder it relies on.
 *
 * Besides memory safety and UB, it checks the decoder's promises: a decoded request has a
 * valid projectId, only normalised paths inside /home/user, and encodes and decodes again
 * to the same op, id and project; a rejected one gives a well-formed error response.
 *
 * The first of the two decodes runs inside a cc_warena scope, as the worker's event loop
 * decodes (native/worker/cc_warena.c: cJSON's blocks from a per-thread arena, released after
 * the scope), so partial trees of rejected input and arena overflow are fuzzed too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cc_proto.h"
#include "cc_warena.h"

static void check_path(const char *p) {
  if (!p) return;
  size_t home = strlen(CC_PROTO_HOME);
  if (strncmp(p, CC_PROTO_HOME, home) != 0 || (p[home] != '\0' && p[home] != '/')) abort();
  if (strstr(p, "//") || strstr(p, "/./") || strstr(p, "/../")) abort();
  size_t n = strlen(p);
  if (n > 1 && p[n - 1] == '/') abort();
  if (n >= 3 && strcmp(p + n - 3, "/..") == 0) abort();
}

static void check_request(const cc_request *r, const cc_proto_limits *lim) {
  if (r->project && !cc_proto_valid_project_id(r->project)) abort();
  if (cc_proto_op_needs_project(r->op) && !r->project) abort();
  if (r->stream && !cc_proto_op_streams(r->op)) abort();
  switch (r->op) {
    case CC_OP_EXEC:
      check_path(r->exec.cwd);
      if (!r->exec.cmd || !*r->exec.cmd) abort();
      break;
    case CC_OP_WRITE_FILE:
      check_path(r->write_file.file.path);
      if (r->write_file.file.content_len > lim->max_file_bytes) abort();
      break;
    case CC_OP_READ_FILE:
      check_path(r->read_file.path);
      break;
    case CC_OP_LIST_DIR:
      check_path(r->list_dir.path);
      break;
    case CC_OP_START_DEV_SERVER:
      check_path(r->start_dev_server.cwd);
      if (r->start_dev_server.port < 1 || r->start_dev_server.port > 65535) abort();
      break;
    case CC_OP_SETUP_PROJECT:
      if (r->setup_project.file_count > lim->max_files) abort();
      for (size_t i = 0; i < r->setup_project.file_count; i++)
        check_path(r->setup_project.files[i].path);
      break;
    default:
      break;
  }
  /* encode -> decode gives the same request */
  char *again;
  cc_proto_error err;
  if (cc_proto_encode_request(r->id, r->op, r->project, r->stream, r->args, lim, &again, &err) !=
      CC_OK)
    abort();
  cc_request r2;
  if (cc_proto_parse_request(again, strlen(again), lim, &r2, &err) != CC_OK) abort();
  if (r2.op != r->op || strcmp(r2.id, r->id) != 0 || !r->project != !r2.project ||
      (r->project && strcmp(r->project, r2.project) != 0))
    abort();
  cc_request_cleanup(&r2);
  cc_proto_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *buf = (const char *)data;
  cc_proto_limits lim = cc_proto_limits_default();
  /* Small limits too, so limit edges are reached by small inputs. */
  cc_proto_limits small = lim;
  small.max_depth = 4;
  small.max_string_bytes = 16;
  small.max_path_bytes = 24;
  small.max_file_bytes = 8;
  small.max_files = 2;
  small.max_env = 2;

  cc_warena_install();
  const cc_proto_limits *each[2] = {&lim, &small};
  for (int i = 0; i < 2; i++) {
    cc_request req;
    cc_proto_error err;
    if (i == 0) cc_warena_begin();
    cc_status st = cc_proto_parse_request(buf, size, each[i], &req, &err);
    if (i == 0) cc_warena_end();
    if (st == CC_OK) {
      check_request(&req, each[i]);
    } else {
      if (st != err.status || err.reason == CC_REASON_NONE || !err.message[0]) abort();
      if ((st == CC_TOO_LARGE) != (err.reason == CC_REASON_TOO_LARGE)) abort();
      char *text;
      if (cc_proto_encode_decode_error(&err, &text) != CC_OK) abort();
      cc_response resp;
      if (cc_proto_parse_response(text, strlen(text), NULL, &resp, NULL) != CC_OK || resp.ok ||
          resp.error.status != st)
        abort();
      cc_response_cleanup(&resp);
      cc_proto_free(text);
    }
    cc_request_cleanup(&req);
  }

  /* The raw bytes as a path. */
  char *norm;
  if (cc_proto_normalize_path(buf, size, 4096, &norm) == CC_OK) {
    check_path(norm);
    cc_proto_free(norm);
  }
  /* The raw bytes as base64: a successful decode re-encodes to the same text. */
  unsigned char *bytes;
  size_t n;
  if (cc_proto_base64_decode(buf, size, &bytes, &n) == CC_OK) {
    char *text;
    size_t tn;
    if (cc_proto_base64_encode(bytes, n, &text, &tn) != CC_OK || tn != size ||
        memcmp(text, buf, size) != 0)
      abort();
    cc_proto_free(text);
    cc_proto_free(bytes);
  }
  return 0;
}
