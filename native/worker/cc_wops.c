/*
 * cc_wops: the protocol v1 operations of codecanvas-worker (DESIGN §4, §5): per-call state,
 * responses, execution records, the recorded sandbox operations, the project operations,
 * dispatch.  The project's sandbox is in cc_wsbx.c, exec and its cache in cc_wexec.c; what
 * they share is in cc_wops_int.h.
 *
 * Every operation runs on behalf of one authenticated user and sees only that user's
 * projects (the store scopes every call by owner).  Operations that touch a project's
 * state or its sandbox are ordered per project through cc_wqueue (one at a time, arrival
 * order); pure reads (hello, getHistory, getResult, getProject, listProjects) read
 * committed state directly and never wait behind a long command.
 *
 * Sandbox operations (exec, writeFile, readFile, listDir, setupProject, startDevServer,
 * killProcess, listProcesses) are execution records: pending -> running -> final, with the
 * input and, on failure, the error.  When E2B says the sandbox is gone, a new one is
 * created (cc_wsbx) and the operation is retried once, unless a command had already
 * started.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cc_wjson.h"
#include "cc_wdb.h"
#include "cc_wops_int.h"
#include "cc_wsnap.h"

/* ------------------------------------------------------------------ per-call state */

int64_t cc_wops_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Records `st`'s detailed message (never a secret) for the response and the record. */
cc_status cc_wops_fail(op *o, cc_status st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(o->message, sizeof o->message, fmt, ap);
  va_end(ap);
  return st;
}

cc_status cc_wops_fail_e2b(op *o, cc_status st, const cc_e2b_error *e, const char *what) {
  return cc_wops_fail(o, st, "%s: %s", what, e->message[0] ? e->message : cc_status_message(st));
}

/* "<verb> <path>": what a failure message starts with, so that it names the user's path
 * (forbidden, not_found, bad_request of a file op).  Long paths are cut. */
static const char *on_path(char *buf, size_t n, const char *verb, const char *path) {
  snprintf(buf, n, "%s %.300s", verb, path ? path : "");
  return buf;
}

cc_status cc_wops_store_fail(op *o, cc_status st, const char *what) {
  if (st == CC_NOT_FOUND) return cc_wops_fail(o, st, "%s not found", what);
  char buf[256];
  cc_store_last_error(o->w->store, buf, sizeof buf);
  if (st == CC_UPSTREAM_ERROR) { /* the detail (hosts, ports) is for the operator's log only */
    cc_wdb_report_down(o->w->db, buf);
    return cc_wops_fail(o, st, "%s: the database is unreachable; retry later", what);
  }
  return cc_wops_fail(o, st, "%s: %s", what, st == CC_INTERNAL ? "storage error" : buf);
}

/* ------------------------------------------------------------------ responses */

static cc_status generation_of(op *o, int64_t *gen) {
  *gen = -1;
  if (!o->project) return CC_OK;
  cc_status st = cc_store_project_generation(o->w->store, o->user, o->project, gen);
  if (st == CC_NOT_FOUND) *gen = -1, st = CC_OK;
  return st;
}

cc_status cc_wops_bump(op *o) {
  return cc_store_project_bump_generation(o->w->store, o->user, o->project, NULL);
}

/* Encodes an ok response with `result` (borrowed) and the project's current generation. */
cc_status cc_wops_respond_ok(op *o, const cJSON *result, char **response) {
  int64_t gen = -1;
  if (generation_of(o, &gen) != CC_OK) gen = -1;
  return cc_wjson_encode_ok(o->req->id, result, gen, response) == CC_OK ? CC_OK : CC_INTERNAL;
}

/* Encodes an error response.  When the failed operation has a record, the error object
 * also carries its `executionId`, so that the client can fetch it with getResult. */
static cc_status respond_err(op *o, cc_status st, char **response) {
  if (st == CC_OK) st = CC_INTERNAL;
  cc_proto_encode_error(o->req->id, st, o->message[0] ? o->message : NULL, NULL, response);
  if (*response && o->call->record_id[0] && !o->call->cached) {
    cJSON *j = cJSON_Parse(*response);
    cJSON *e = j ? cJSON_GetObjectItemCaseSensitive(j, "error") : NULL;
    char *text = NULL;
    if (cJSON_IsObject(e) && cJSON_AddStringToObject(e, "executionId", o->call->record_id))
      text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (text) {
      cc_proto_free(*response);
      *response = text;
    }
  }
  return st;
}

/* ------------------------------------------------------------------ records */

/* The input kept in a record: the args as sent, with file contents above 4 KiB replaced
 * by their size so that history rows stay small. */
static cJSON *record_input(const op *o) {
  cJSON *in = cJSON_Duplicate(o->req->args, 1);
  if (!in) return NULL;
  cJSON *files = cJSON_GetObjectItemCaseSensitive(in, "files");
  cJSON *f;
  if (cJSON_IsArray(files)) {
    cJSON_ArrayForEach(f, files) {
      cJSON *c = cJSON_GetObjectItemCaseSensitive(f, "content");
      if (cJSON_IsString(c) && strlen(c->valuestring) > 4096) {
        double n = (double)strlen(c->valuestring);
        cJSON_DeleteItemFromObjectCaseSensitive(f, "content");
        cJSON_AddNumberToObject(f, "contentBytes", n);
      }
    }
  }
  cJSON *c = cJSON_GetObjectItemCaseSensitive(in, "content");
  if (cJSON_IsString(c) && strlen(c->valuestring) > 4096) {
    double n = (double)strlen(c->valuestring);
    cJSON_DeleteItemFromObjectCaseSensitive(in, "content");
    cJSON_AddNumberToObject(in, "contentBytes", n);
  }
  return in;
}

cc_status cc_wops_record_begin(op *o) {
  cJSON *in = record_input(o);
  cc_status st = cc_store_record_insert(o->w->store, o->user, o->project, NULL,
                                        cc_proto_op_name(o->req->op), in, o->call->record_id);
  cJSON_Delete(in);
  if (st != CC_OK) return cc_wops_store_fail(o, st, "record");
  return CC_OK;
}

/* pending -> running: called once the sandbox is ready (and, for commands, when the
 * process has started), so a running record always has its sandbox. */
void cc_wops_mark_running(op *o) {
  if (o->running || !o->call->record_id[0]) return;
  o->running = true;
  cc_store_record_set_running(o->w->store, o->user, o->call->record_id);
}

void cc_wops_record_end(op *o, cc_proto_record_status status, const cJSON *result, cc_status err) {
  if (!o->call->record_id[0]) return;
  cc_status st = cc_store_record_finish(
      o->w->store, o->user, o->call->record_id, status, result,
      err == CC_OK ? NULL : cc_status_code(err), err == CC_OK ? NULL : o->message);
  if (st != CC_OK) {
    char buf[256];
    cc_store_last_error(o->w->store, buf, sizeof buf);
    fprintf(stderr, "codecanvas-worker: cannot finish record %s: %s\n", o->call->record_id, buf);
  }
}

/* ------------------------------------------------------------------ files */

/* Runs `fn` against the project's sandbox, renewing a gone sandbox once. */

cc_status cc_wops_with_sandbox(op *o, sbx_fn fn, void *ctx, const char *what) {
  cc_status st = cc_wsbx_ensure(o, false);
  if (st != CC_OK) return st;
  cc_wops_mark_running(o);
  for (int attempt = 0;; attempt++) {
    cc_e2b_error err = {0};
    st = fn(o, ctx, &err);
    if (st != CC_OK && err.sandbox_gone && attempt == 0) {
      cc_status rs = cc_wsbx_renew(o);
      if (rs != CC_OK) return rs;
      continue;
    }
    if (st != CC_OK) return cc_wops_fail_e2b(o, st, &err, what);
    return CC_OK;
  }
}

cc_status cc_wops_do_write(op *o, void *ctx, cc_e2b_error *err) {
  const cc_proto_file *f = ((struct write_ctx *)ctx)->f;
  return cc_e2b_write_file(o->w->e2b, &o->sb, f->path, f->content, f->content_len, NULL, 0, err);
}

static cc_status op_write_file(op *o, cJSON **result) {
  const cc_proto_file *f = &o->req->write_file.file;
  if (f->content_len > (size_t)o->w->cfg->max_file_bytes)
    return cc_wops_fail(o, CC_TOO_LARGE, "file larger than %ld bytes", o->w->cfg->max_file_bytes);
  struct write_ctx c = {f};
  char what[320];
  cc_status st =
      cc_wops_with_sandbox(o, cc_wops_do_write, &c, on_path(what, sizeof what, "writing", f->path));
  if (st != CC_OK) return st;
  cc_wops_bump(o);
  *result = cJSON_CreateObject();
  cJSON_AddStringToObject(*result, "path", f->path);
  cJSON_AddNumberToObject(*result, "size", (double)f->content_len);
  return CC_OK;
}

struct read_ctx {
  const char *path;
  char *data;
  size_t len;
};

static cc_status do_read(op *o, void *ctx, cc_e2b_error *err) {
  struct read_ctx *c = ctx;
  return cc_e2b_read_file(o->w->e2b, &o->sb, c->path, (size_t)o->w->cfg->max_file_bytes, &c->data,
                          &c->len, err);
}

static cc_status op_read_file(op *o, cJSON **result, cJSON **record_result) {
  const cc_proto_read_file_args *a = &o->req->read_file;
  struct read_ctx c = {a->path, NULL, 0};
  char what[320];
  cc_status st =
      cc_wops_with_sandbox(o, do_read, &c, on_path(what, sizeof what, "reading", a->path));
  if (st != CC_OK) return st;
  char *text = NULL;
  size_t n;
  if (a->encoding == CC_ENC_BASE64)
    st = cc_proto_base64_encode((unsigned char *)c.data, c.len, &text, &n);
  else
    st = cc_proto_utf8_sanitize(c.data, c.len, &text, &n);
  cc_e2b_free(c.data);
  if (st != CC_OK) return cc_wops_fail(o, CC_INTERNAL, "out of memory");
  *result = cJSON_CreateObject();
  cJSON_AddStringToObject(*result, "path", a->path);
  cJSON_AddStringToObject(*result, "content", text);
  cJSON_AddStringToObject(*result, "encoding", cc_proto_encoding_name(a->encoding));
  cJSON_AddNumberToObject(*result, "size", (double)c.len);
  cc_proto_free(text);
  *record_result = cJSON_CreateObject();
  cJSON_AddStringToObject(*record_result, "path", a->path);
  cJSON_AddStringToObject(*record_result, "encoding", cc_proto_encoding_name(a->encoding));
  cJSON_AddNumberToObject(*record_result, "size", (double)c.len);
  return CC_OK;
}

struct list_ctx {
  const char *path;
  int depth;
  cc_e2b_entry_list l;
};

static cc_status do_list(op *o, void *ctx, cc_e2b_error *err) {
  struct list_ctx *c = ctx;
  return cc_e2b_list_dir(o->w->e2b, &o->sb, c->path, c->depth, &c->l, err);
}

static cc_status op_list_dir(op *o, cJSON **result, cJSON **record_result) {
  const cc_proto_list_dir_args *a = &o->req->list_dir;
  struct list_ctx c = {.path = a->path ? a->path : CC_PROTO_HOME,
                       .depth = a->depth > 0 ? a->depth : 1};
  char what[320];
  cc_status st =
      cc_wops_with_sandbox(o, do_list, &c, on_path(what, sizeof what, "listing", c.path));
  if (st != CC_OK) return st;
  *result = cJSON_CreateObject();
  cJSON *entries = cJSON_AddArrayToObject(*result, "entries");
  for (size_t i = 0; i < c.l.count; i++) {
    const cc_e2b_entry *e = &c.l.items[i];
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", e->name ? e->name : "");
    cJSON_AddStringToObject(j, "path", e->path ? e->path : "");
    cJSON_AddStringToObject(j, "type",
                            e->type == CC_E2B_FILE_DIR       ? "dir"
                            : e->type == CC_E2B_FILE_FILE    ? "file"
                            : e->type == CC_E2B_FILE_SYMLINK ? "symlink"
                                                             : "other");
    cJSON_AddNumberToObject(j, "size", (double)e->size);
    cJSON_AddStringToObject(j, "mtime", e->modified_time ? e->modified_time : "");
    cJSON_AddItemToArray(entries, j);
  }
  *record_result = cJSON_CreateObject();
  cJSON_AddStringToObject(*record_result, "path", c.path);
  cJSON_AddNumberToObject(*record_result, "count", (double)c.l.count);
  cc_e2b_entry_list_cleanup(&c.l);
  return CC_OK;
}

/* ------------------------------------------------------------------ setupProject */

static cc_status op_setup_project(op *o, cJSON **result) {
  const cc_proto_setup_project_args *a = &o->req->setup_project;
  cJSON *files = cJSON_CreateArray();
  cc_status st = CC_OK;
  for (size_t i = 0; i < a->file_count && st == CC_OK; i++) {
    if (a->files[i].content_len > (size_t)o->w->cfg->max_file_bytes) {
      st = cc_wops_fail(o, CC_TOO_LARGE, "file %s larger than %ld bytes", a->files[i].path,
                        o->w->cfg->max_file_bytes);
      break;
    }
    struct write_ctx c = {&a->files[i]};
    char what[320];
    st = cc_wops_with_sandbox(o, cc_wops_do_write, &c,
                              on_path(what, sizeof what, "writing", a->files[i].path));
    if (st == CC_OK) cJSON_AddItemToArray(files, cJSON_CreateString(a->files[i].path));
  }
  if (a->file_count && st == CC_OK) cc_wops_bump(o);
  if (st != CC_OK) {
    cJSON_Delete(files);
    return st;
  }
  cJSON *install = NULL;
  bool ok = true;
  if (a->install) {
    cc_proto_exec_args ea = {.cmd = a->install, .use_cache = false};
    /* The install runs inside this record: exec_core would finish the record, so run the
     * command directly and build the result here. */
    int64_t t0 = cc_wops_mono_ms();
    struct exec_run x = {.o = o};
    x.out.max = x.err.max = (size_t)o->w->cfg->max_output_bytes;
    long timeout = o->w->cfg->command_timeout_ms;
    cc_e2b_exec_opts eo = {.cmd = ea.cmd, .timeout_ms = timeout};
    cc_e2b_exec_result res = {0};
    st = cc_wexec_run_command(o, &x, &eo, &res);
    cc_wexec_emit_output(&x, 0, NULL, 0, true);
    cc_wexec_emit_output(&x, 1, NULL, 0, true);
    cc_proto_record_status rs = st == CC_TIMEOUT                    ? CC_RECORD_TIMEOUT
                                : st != CC_OK                       ? CC_RECORD_ERROR
                                : res.canceled                      ? CC_RECORD_CANCELED
                                : (res.ended && res.exit_code == 0) ? CC_RECORD_SUCCESS
                                                                    : CC_RECORD_FAILED;
    if (st == CC_OK && res.canceled) {
      st = CC_SANDBOX_UNAVAILABLE;
      cc_wops_fail(o, st, "the install command was canceled");
    }
    if (st == CC_TIMEOUT)
      cc_wops_fail(o, st, "the install command ran longer than %ld ms", timeout);
    install = cc_wexec_result_json(o, &x, &res, rs, cc_wops_mono_ms() - t0);
    free(x.out.p);
    free(x.err.p);
    if (res.started) cc_wops_bump(o);
    ok = rs == CC_RECORD_SUCCESS;
    if (st != CC_OK) {
      cJSON_Delete(files);
      cJSON_Delete(install);
      return st;
    }
  }
  *result = cJSON_CreateObject();
  cJSON_AddBoolToObject(*result, "ok", ok);
  cJSON_AddItemToObject(*result, "files", files);
  if (install) cJSON_AddItemToObject(*result, "install", install);
  return CC_OK;
}

/* ------------------------------------------------------------------ processes */

static cc_status op_start_dev_server(op *o, cJSON **result) {
  const cc_proto_start_dev_server_args *a = &o->req->start_dev_server;
  char cmd[2048];
  if (a->cmd)
    snprintf(cmd, sizeof cmd, "%s", a->cmd);
  else {
    const char *tpl = o->w->cfg->dev_server_cmd, *at = strstr(tpl, "{port}");
    if (at)
      snprintf(cmd, sizeof cmd, "%.*s%d%s", (int)(at - tpl), tpl, a->port, at + 6);
    else
      snprintf(cmd, sizeof cmd, "%s", tpl);
  }
  struct exec_run x = {.o = o, .detach_on_start = true};
  x.out.max = x.err.max = 4096;
  cc_e2b_exec_opts eo = {.cmd = cmd, .cwd = a->cwd, .timeout_ms = 0};
  cc_e2b_exec_result res = {0};
  cc_status st = cc_wexec_run_command(o, &x, &eo, &res);
  free(x.out.p);
  free(x.err.p);
  if (st != CC_OK) return st;
  if (!res.started) return cc_wops_fail(o, CC_UPSTREAM_ERROR, "the dev server did not start");
  cc_wops_bump(o);
  /* Wait (bounded) until the port accepts connections, from inside the sandbox. */
  char probe[512];
  snprintf(probe, sizeof probe,
           "for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/%d) 2>/dev/null && exit 0; "
           "sleep 0.1; done; exit 1",
           a->port);
  struct exec_run px = {.o = o};
  px.out.max = px.err.max = 1024;
  cc_e2b_exec_opts po = {.cmd = probe, .timeout_ms = 15000};
  cc_e2b_exec_result pres = {0};
  cc_status pst = cc_wexec_run_command(o, &px, &po, &pres);
  free(px.out.p);
  free(px.err.p);
  bool listening = pst == CC_OK && pres.ended && pres.exit_code == 0;

  char host[512];
  if (cc_e2b_host(&o->sb, a->port, host, sizeof host) != CC_OK)
    return cc_wops_fail(o, CC_INTERNAL, "sandbox host name too long");
  const char *su = o->w->cfg->e2b_sandbox_url;
  bool plain = strncmp(o->sb.domain, "localhost", 9) == 0 || strncmp(su, "http://", 7) == 0;
  char url[600];
  snprintf(url, sizeof url, "%s://%s/", plain ? "http" : "https", host);
  cJSON *patch = cJSON_CreateObject();
  cJSON_AddNumberToObject(patch, "port", a->port);
  cc_store_project_patch(o->w->store, o->user, o->project, patch, NULL);
  cJSON_Delete(patch);
  *result = cJSON_CreateObject();
  cJSON_AddBoolToObject(*result, "started", listening);
  cJSON_AddStringToObject(*result, "url", url);
  cJSON_AddNumberToObject(*result, "port", a->port);
  cJSON_AddNumberToObject(*result, "pid", res.pid);
  return CC_OK;
}

struct kill_ctx {
  uint32_t pid;
  bool killed;
};

static cc_status do_kill(op *o, void *ctx, cc_e2b_error *err) {
  struct kill_ctx *c = ctx;
  cc_status st = cc_e2b_send_signal(o->w->e2b, &o->sb, c->pid, 9, err);
  if (st == CC_NOT_FOUND && !err->sandbox_gone) return CC_OK; /* no such process */
  if (st == CC_OK) c->killed = true;
  return st;
}

static cc_status op_kill_process(op *o, cJSON **result) {
  int64_t pid = o->req->kill_process.pid;
  if (pid <= 0 || pid > 0x7fffffff) return cc_wops_fail(o, CC_BAD_REQUEST, "pid out of range");
  struct kill_ctx c = {(uint32_t)pid, false};
  cc_status st = cc_wops_with_sandbox(o, do_kill, &c, "killing the process");
  if (st != CC_OK) return st;
  if (c.killed) {
    cc_wexec_wait_gone(o, c.pid); /* SIGKILL is asynchronous: answer once the process is gone */
    cc_wops_bump(o);
  }
  *result = cJSON_CreateObject();
  cJSON_AddBoolToObject(*result, "killed", c.killed);
  return CC_OK;
}

struct procs_ctx {
  cc_e2b_process_list l;
};

static cc_status do_procs(op *o, void *ctx, cc_e2b_error *err) {
  return cc_e2b_list_processes(o->w->e2b, &o->sb, &((struct procs_ctx *)ctx)->l, err);
}

static cc_status op_list_processes(op *o, cJSON **result, cJSON **record_result) {
  struct procs_ctx c = {0};
  cc_status st = cc_wops_with_sandbox(o, do_procs, &c, "listing processes");
  if (st != CC_OK) return st;
  *result = cJSON_CreateObject();
  cJSON *arr = cJSON_AddArrayToObject(*result, "processes");
  for (size_t i = 0; i < c.l.count; i++) {
    const cc_e2b_process *p = &c.l.items[i];
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "pid", p->pid);
    /* Commands run as /bin/bash -l -c <cmd>: show <cmd>. */
    const char *cmd = p->cmd ? p->cmd : "";
    if (p->args_count == 3 && strcmp(p->args[0], "-l") == 0 && strcmp(p->args[1], "-c") == 0)
      cmd = p->args[2];
    cJSON_AddStringToObject(j, "cmd", cmd);
    if (p->tag) cJSON_AddStringToObject(j, "tag", p->tag);
    if (p->cwd) cJSON_AddStringToObject(j, "cwd", p->cwd);
    cJSON_AddItemToArray(arr, j);
  }
  *record_result = cJSON_CreateObject();
  cJSON_AddNumberToObject(*record_result, "count", (double)c.l.count);
  cc_e2b_process_list_cleanup(&c.l);
  return CC_OK;
}

/* ------------------------------------------------------------------ recorded sandbox ops */

/* writeFile, readFile, listDir, setupProject, startDevServer, killProcess, listProcesses:
 * record, run, finish the record, answer. */
static cc_status run_recorded(op *o, char **response) {
  cc_worker *w = o->w;
  cc_status st;
  bool creates = o->req->op == CC_OP_WRITE_FILE || o->req->op == CC_OP_SETUP_PROJECT ||
                 o->req->op == CC_OP_START_DEV_SERVER;
  if (creates)
    st = cc_store_project_ensure(w->store, o->user, o->project, NULL);
  else {
    int64_t g;
    st = cc_store_project_generation(w->store, o->user, o->project, &g);
  }
  if (st != CC_OK) return cc_wops_store_fail(o, st, "project");
  if ((st = cc_wops_record_begin(o)) != CC_OK) return st;
  cJSON *result = NULL, *record_result = NULL;
  switch (o->req->op) {
    case CC_OP_WRITE_FILE:
      st = op_write_file(o, &result);
      break;
    case CC_OP_READ_FILE:
      st = op_read_file(o, &result, &record_result);
      break;
    case CC_OP_LIST_DIR:
      st = op_list_dir(o, &result, &record_result);
      break;
    case CC_OP_SETUP_PROJECT:
      st = op_setup_project(o, &result);
      break;
    case CC_OP_START_DEV_SERVER:
      st = op_start_dev_server(o, &result);
      break;
    case CC_OP_KILL_PROCESS:
      st = op_kill_process(o, &result);
      break;
    case CC_OP_LIST_PROCESSES:
      st = op_list_processes(o, &result, &record_result);
      break;
    default:
      st = cc_wops_fail(o, CC_INTERNAL, "not a sandbox operation");
      break;
  }
  if (st == CC_OK && !result) st = cc_wops_fail(o, CC_INTERNAL, "out of memory");
  /* what happened to the sandbox, in the answer and in the history */
  for (int i = 0; st == CC_OK && i < 2; i++) {
    cJSON *r = i == 0 ? result : record_result;
    if (!r) continue;
    if (o->sandbox_recreated) cJSON_AddTrueToObject(r, "sandboxRecreated");
    if (o->restored_from_ms > 0) {
      cJSON_AddTrueToObject(r, "sandboxRestored");
      cJSON_AddNumberToObject(r, "restoredFrom", (double)o->restored_from_ms);
    }
  }
  cc_proto_record_status rs = st == CC_OK        ? CC_RECORD_SUCCESS
                              : st == CC_TIMEOUT ? CC_RECORD_TIMEOUT
                                                 : CC_RECORD_ERROR;
  if (st == CC_SANDBOX_UNAVAILABLE && o->call->cancel && atomic_load(o->call->cancel))
    rs = CC_RECORD_CANCELED;
  cc_wops_record_end(o, rs, record_result ? record_result : result, st);
  cc_status out = st == CC_OK ? cc_wops_respond_ok(o, result, response) : st;
  cJSON_Delete(result);
  cJSON_Delete(record_result);
  return out;
}

/* ------------------------------------------------------------------ project ops */

static cc_status op_delete_project(op *o, char **response) {
  cc_worker *w = o->w;
  char *id = NULL;
  cc_status st = cc_store_project_sandbox(w->store, o->user, o->project, &id);
  if (st != CC_OK) return cc_wops_store_fail(o, st, "project");
  if (id) {
    cc_e2b_error err = {0};
    cc_e2b_kill(w->e2b, id, &err); /* gone already is fine; unreachable leaves it to expire */
    cc_wsbx_forget(w, id);
    free(id);
  }
  cc_wsnap_forget(w, o->user, o->project); /* nothing of a deleted project comes back */
  bool deleted = false;
  st = cc_store_project_delete(w->store, o->user, o->project, &deleted);
  if (st != CC_OK) return cc_wops_store_fail(o, st, "project");
  cJSON *r = cJSON_CreateObject();
  cJSON_AddBoolToObject(r, "deleted", deleted);
  st = cc_wjson_encode_ok(o->req->id, r, -1, response);
  cJSON_Delete(r);
  return st;
}

static cc_status op_hello(op *o, char **response) {
  cc_worker *w = o->w;
  cJSON *r = cJSON_CreateObject(), *lim = NULL;
  cJSON_AddStringToObject(r, "server", CC_WORKER_NAME);
  cJSON_AddStringToObject(r, "version", CC_WORKER_VERSION);
  cJSON_AddNumberToObject(r, "protocol", CC_PROTO_VERSION);
  cc_proto_limits_to_json(&w->proto_limits, &lim);
  if (!lim) lim = cJSON_CreateObject();
  cJSON_AddNumberToObject(lim, "maxOutputBytes", (double)w->cfg->max_output_bytes);
  cJSON_AddNumberToObject(lim, "commandTimeoutMs", (double)w->cfg->command_timeout_ms);
  cJSON_AddNumberToObject(lim, "maxInflightPerUser", (double)w->cfg->max_inflight_per_user);
  cJSON_AddNumberToObject(lim, "rateLimitPerS", (double)w->cfg->rate_limit_per_s);
  cJSON_AddNumberToObject(lim, "rateLimitBurst", (double)w->cfg->rate_limit_burst);
  cJSON_AddNumberToObject(lim, "historyLimit", (double)w->cfg->history_limit);
  cJSON_AddNumberToObject(lim, "cacheTtlMs", (double)w->cfg->cache_ttl_s * 1000);
  cJSON_AddItemToObject(r, "limits", lim);
  cJSON_AddStringToObject(r, "user", o->user);
  cc_status st = cc_wjson_encode_ok(o->req->id, r, -1, response);
  cJSON_Delete(r);
  return st;
}

/* ------------------------------------------------------------------ dispatch */

static bool is_sandbox_op(cc_proto_op op) {
  switch (op) {
    case CC_OP_EXEC:
    case CC_OP_WRITE_FILE:
    case CC_OP_READ_FILE:
    case CC_OP_LIST_DIR:
    case CC_OP_SETUP_PROJECT:
    case CC_OP_START_DEV_SERVER:
    case CC_OP_KILL_PROCESS:
    case CC_OP_LIST_PROCESSES:
    case CC_OP_DELETE_PROJECT:
      return true;
    default:
      return false;
  }
}

static cc_status dispatch(op *o, char **response) {
  cc_worker *w = o->w;
  cc_status st;
  cJSON *j = NULL;
  char *next = NULL;
  switch (o->req->op) {
    case CC_OP_HELLO:
      return op_hello(o, response);
    case CC_OP_LIST_PROJECTS:
      if ((st = cc_store_project_list(w->store, o->user, &j)) != CC_OK)
        return cc_wops_store_fail(o, st, "projects");
      st = cc_wjson_encode_ok(o->req->id, j, -1, response);
      cJSON_Delete(j);
      return st;
    case CC_OP_GET_RESULT:
      st = cc_store_record_get(w->store, o->user, o->req->get_result.execution_id, &j);
      if (st != CC_OK) return cc_wops_store_fail(o, st, "execution");
      st = cc_wjson_encode_ok(o->req->id, j, -1, response);
      cJSON_Delete(j);
      return st;
    case CC_OP_GET_PROJECT:
      if ((st = cc_store_project_get(w->store, o->user, o->project, &j)) != CC_OK)
        return cc_wops_store_fail(o, st, "project");
      cc_wsbx_add_facts(o, j);
      st = cc_wops_respond_ok(o, j, response);
      cJSON_Delete(j);
      return st;
    case CC_OP_GET_HISTORY: {
      int64_t g;
      if ((st = cc_store_project_generation(w->store, o->user, o->project, &g)) != CC_OK)
        return cc_wops_store_fail(o, st, "project");
      const cc_proto_get_history_args *a = &o->req->get_history;
      char *items = NULL;
      if ((st = cc_store_history_json(w->store, o->user, o->project, a->limit, a->before, &items,
                                      &next)) != CC_OK)
        return cc_wops_store_fail(o, st, "history");
      /* The page is spliced in as text (the store keeps each finished record's JSON). */
      cJSON *r = cJSON_CreateObject();
      bool ok = r && cJSON_AddRawToObject(r, "items", items) &&
                (!next || cJSON_AddStringToObject(r, "next", next));
      free(items);
      free(next);
      st = ok ? cc_wjson_encode_ok(o->req->id, r, g, response) /* g: read just before the page */
              : cc_wops_fail(o, CC_INTERNAL, "out of memory");
      cJSON_Delete(r);
      return st;
    }
    default:
      break;
  }

  /* A cache hit of an exec runs nothing: when the project is idle it is served without
   * queueing (ordered before whatever enters later); a miss takes the ordered path. */
  if (o->req->op == CC_OP_EXEC && o->req->exec.use_cache &&
      cc_wqueue_idle(w->queue, o->user, o->project)) {
    char *key = cc_wexec_cache_key(&o->req->exec);
    /* Remembered since the database last changed (cc_wmemo): no store read at all. */
    if (key && cc_wexec_serve_remembered(o, key, response)) {
      free(key);
      return CC_OK;
    }
    bool hit = false;
    cJSON *cached = NULL;
    if (key && cc_store_cache_get(w->store, o->user, o->project, key, &hit, &cached) == CC_OK &&
        hit) {
      free(key);
      st = cc_wexec_serve_cached(o, cached, response);
      cJSON_Delete(cached);
      return st;
    }
    free(key);
    cJSON_Delete(cached);
  }

  /* Everything below changes project state or touches the sandbox: one at a time.  It may
   * wait and run for long, so a client hang-up must cancel it from here on. */
  if (o->call->on_block) o->call->on_block(o->call);
  cc_wqueue_ticket t = {0};
  if ((st = cc_wqueue_enter(w->queue, o->user, o->project, o->call->cancel, &t)) != CC_OK)
    return cc_wops_fail(o, st, "canceled while waiting for an earlier operation of the project");
  /* ... and in the order of every worker on the database (PostgreSQL: the project's advisory
   * lock, released when this worker's session ends; nothing with SQLite). */
  void *db_lock = NULL;
  if ((st = cc_store_project_lock(w->store, o->user, o->project, o->call->cancel, &db_lock)) !=
      CC_OK) {
    cc_wqueue_leave(w->queue, &t);
    if (st == CC_SANDBOX_UNAVAILABLE)
      return cc_wops_fail(o, st, "canceled while waiting for an earlier operation of the project");
    return cc_wops_store_fail(o, st, "project lock");
  }
  bool admitted = false;
  if (is_sandbox_op(o->req->op) && o->req->op != CC_OP_EXEC) { /* exec: after a cache miss */
    if ((st = cc_wlimit_enter(w->limit, o->user)) != CC_OK) {
      cc_store_project_unlock(w->store, db_lock);
      cc_wqueue_leave(w->queue, &t);
      return cc_wops_fail(o, st, "more than %ld sandbox operations of this user in flight",
                          w->cfg->max_inflight_per_user);
    }
    admitted = true;
  }
  switch (o->req->op) {
    case CC_OP_EXEC:
      st = cc_wexec_op(o, response);
      break;
    case CC_OP_UPDATE_PROJECT:
      if ((st = cc_store_project_ensure(w->store, o->user, o->project, NULL)) != CC_OK ||
          (st = cc_store_project_patch(w->store, o->user, o->project, o->req->update_project.patch,
                                       &j)) != CC_OK) {
        if (st == CC_BAD_REQUEST || st == CC_TOO_LARGE) {
          char buf[256];
          cc_store_last_error(w->store, buf, sizeof buf);
          cc_wops_fail(o, st, "patch rejected: %s", buf);
        } else {
          cc_wops_store_fail(o, st, "project");
        }
        break;
      }
      st = cc_wops_respond_ok(o, j, response);
      cJSON_Delete(j);
      break;
    case CC_OP_CLEAR_CACHE: {
      int64_t g, cleared = 0;
      if ((st = cc_store_project_generation(w->store, o->user, o->project, &g)) != CC_OK ||
          (st = cc_store_cache_clear(w->store, o->user, o->project, o->req->clear_cache.cmd,
                                     &cleared)) != CC_OK) {
        cc_wops_store_fail(o, st, "project");
        break;
      }
      cJSON *r = cJSON_CreateObject();
      cJSON_AddNumberToObject(r, "cleared", (double)cleared);
      st = cc_wops_respond_ok(o, r, response);
      cJSON_Delete(r);
      break;
    }
    case CC_OP_DELETE_PROJECT:
      st = op_delete_project(o, response);
      break;
    default:
      st = run_recorded(o, response);
      break;
  }
  /* Files may have changed: snapshot the project once it is quiet (cc_wsnap). */
  if (o->have_sb && (o->req->op == CC_OP_EXEC || o->req->op == CC_OP_WRITE_FILE ||
                     o->req->op == CC_OP_SETUP_PROJECT || o->req->op == CC_OP_START_DEV_SERVER))
    cc_wsnap_touch(w, o->user, o->project);
  if (admitted) cc_wlimit_leave(w->limit, o->user);
  cc_store_project_unlock(w->store, db_lock);
  cc_wqueue_leave(w->queue, &t);
  return st;
}

bool cc_wops_run_remembered(cc_wcall *call, char **response) {
  *response = NULL;
  call->cached = false;
  call->record_id[0] = 0;
  const cc_request *req = call->req;
  if (req->op != CC_OP_EXEC || !req->exec.use_cache || req->stream ||
      !cc_wqueue_idle(call->w->queue, call->user, req->project))
    return false;
  op o = {.call = call,
          .w = call->w,
          .req = req,
          .user = call->user,
          .project = req->project,
          .t0_ms = cc_wops_mono_ms()};
  char *key = cc_wexec_cache_key(&req->exec);
  bool ok = key && cc_wexec_serve_remembered(&o, key, response);
  free(key);
  return ok;
}

cc_status cc_wops_run(cc_wcall *call, char **response) {
  *response = NULL;
  call->cached = false;
  call->record_id[0] = 0;
  op o = {.call = call,
          .w = call->w,
          .req = call->req,
          .user = call->user,
          .project = call->req->project,
          .t0_ms = cc_wops_mono_ms()};
  cc_status st = dispatch(&o, response);
  if (st != CC_OK || !*response) {
    if (*response) {
      cc_proto_free(*response);
      *response = NULL;
    }
    st = respond_err(&o, st, response);
  }
  return st;
}
