/*
 * cc_wexec: the exec operation of codecanvas-worker (DESIGN §4, §5): running a command in
 * the project's sandbox with its output bounded and streamed as events, and the cache.
 *
 * Cache: exec results (success or failed) are stored at the project's generation after
 * the command; a lookup hits only at the same generation and within the TTL (the store
 * enforces both).  A hit is answered without a new record: its `id` is the record that
 * produced it, `cached` is true and `duration` is the time taken to serve it.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cc_wjson.h"
#include "cc_wmemo.h"
#include "cc_wops_int.h"

/* ------------------------------------------------------------------ output */

static void out_add(struct outbuf *b, const char *data, size_t len) {
  if (b->len + len > b->max) {
    b->truncated = true;
    len = b->len < b->max ? b->max - b->len : 0;
    len = cc_proto_utf8_complete_prefix(data, len);
  }
  if (!len) return;
  if (b->len + len + 1 > b->cap) {
    size_t ncap = (b->len + len + 1) * 2;
    if (ncap > b->max + 1) ncap = b->max + 1;
    char *np = realloc(b->p, ncap);
    if (!np) {
      b->truncated = true;
      return;
    }
    b->p = np;
    b->cap = ncap;
  }
  memcpy(b->p + b->len, data, len);
  b->len += len;
}

static bool emit_line(op *o, char *line) {
  if (!line) return false;
  bool ok = o->call->emit(o->call->sink, line, strlen(line));
  cc_proto_free(line);
  return ok;
}

static bool emit_start(op *o, uint32_t pid, bool cached) {
  if (!o->call->emit) return true;
  cJSON *d = cJSON_CreateObject();
  if (!d) return false;
  cJSON_AddStringToObject(d, "executionId", o->call->record_id);
  if (pid) cJSON_AddNumberToObject(d, "pid", pid);
  if (cached) cJSON_AddTrueToObject(d, "cached");
  char *line = NULL;
  cc_proto_encode_event(o->req->id, CC_EVENT_START, d, &line);
  cJSON_Delete(d);
  return emit_line(o, line);
}

/* Emits output bytes as events, holding back a split UTF-8 sequence for the next chunk. */
bool cc_wexec_emit_output(struct exec_run *x, int which, const char *data, size_t len, bool flush) {
  op *o = x->o;
  if (!o->call->emit) return true;
  size_t total = x->ncarry[which] + len;
  char *tmp = malloc(total ? total : 1);
  if (!tmp) return false;
  memcpy(tmp, x->carry[which], x->ncarry[which]);
  if (len) memcpy(tmp + x->ncarry[which], data, len);
  size_t keep = flush ? total : cc_proto_utf8_complete_prefix(tmp, total);
  if (total - keep > sizeof x->carry[which]) keep = total; /* not a real sequence */
  x->ncarry[which] = total - keep;
  memcpy(x->carry[which], tmp + keep, total - keep);
  bool ok = true;
  if (keep) {
    char *line = NULL;
    cc_proto_encode_output_event(o->req->id, which ? CC_EVENT_STDERR : CC_EVENT_STDOUT, tmp, keep,
                                 &line);
    ok = emit_line(o, line);
  }
  free(tmp);
  return ok;
}

static cc_e2b_action on_exec_event(void *ctx, const cc_e2b_event *ev) {
  struct exec_run *x = ctx;
  op *o = x->o;
  switch (ev->type) {
    case CC_E2B_EVENT_START:
      x->pid = ev->pid;
      cc_wops_mark_running(o);
      if (x->detach_on_start) return CC_E2B_DETACH;
      if (!emit_start(o, ev->pid, false)) x->emit_failed = true;
      break;
    case CC_E2B_EVENT_STDOUT:
    case CC_E2B_EVENT_STDERR:
    case CC_E2B_EVENT_PTY: {
      int which = ev->type == CC_E2B_EVENT_STDERR;
      out_add(which ? &x->err : &x->out, ev->data, ev->len);
      if (!cc_wexec_emit_output(x, which, ev->data, ev->len, false)) x->emit_failed = true;
      break;
    }
    default:
      break;
  }
  if (x->emit_failed || (o->call->cancel && atomic_load(o->call->cancel))) return CC_E2B_CANCEL;
  return CC_E2B_CONTINUE;
}

/* ------------------------------------------------------------------ cache */

/* The canonical cache key of an exec: cmd, cwd, env sorted by name, stdin, as the JSON array
 * ["cmd","cwd",[["NAME","value"],...],"<stdin base64>"|null], byte for byte what cJSON printed
 * before (keys already in the store stay valid) but written without building a tree.  The
 * caller frees it with free(). */
char *cc_wexec_cache_key(const cc_proto_exec_args *a) {
  cc_wjson_buf b = {0};
  cc_wjson_buf_put(&b, "[", 1);
  cc_wjson_buf_str(&b, a->cmd);
  cc_wjson_buf_put(&b, ",", 1);
  cc_wjson_buf_str(&b, a->cwd ? a->cwd : "");
  cc_wjson_buf_put(&b, ",[", 2);
  size_t n = a->env_count;
  const cc_proto_env_var **sorted = n ? malloc(n * sizeof *sorted) : NULL;
  if (n && !sorted) b.failed = 1;
  for (size_t i = 0; sorted && i < n; i++) sorted[i] = &a->env[i];
  for (size_t i = 1; sorted && i < n; i++)
    for (size_t j = i; j > 0 && strcmp(sorted[j - 1]->name, sorted[j]->name) > 0; j--) {
      const cc_proto_env_var *t = sorted[j];
      sorted[j] = sorted[j - 1];
      sorted[j - 1] = t;
    }
  for (size_t i = 0; sorted && i < n; i++) {
    cc_wjson_buf_put(&b, i ? ",[" : "[", i ? 2 : 1);
    cc_wjson_buf_str(&b, sorted[i]->name);
    cc_wjson_buf_put(&b, ",", 1);
    cc_wjson_buf_str(&b, sorted[i]->value);
    cc_wjson_buf_put(&b, "]", 1);
  }
  free(sorted);
  cc_wjson_buf_put(&b, "],", 2);
  if (a->stdin_data) {
    char *b64 = NULL;
    size_t bl;
    if (cc_proto_base64_encode((const unsigned char *)a->stdin_data, a->stdin_len, &b64, &bl) ==
        CC_OK)
      cc_wjson_buf_str(&b, b64);
    else
      b.failed = 1;
    cc_proto_free(b64);
  } else {
    cc_wjson_buf_put(&b, "null", 4);
  }
  cc_wjson_buf_put(&b, "]", 1);
  return cc_wjson_buf_finish(&b);
}

/* Remembers a served cache entry in the memo (cc_wmemo), rendered once: `result` is the
 * answer's result object as sent, except that its "duration" is printed as a one-byte
 * marker (no valid JSON text has a raw 0x01) where the served response puts its own. */
static void remember_cached(op *o, cJSON *result, int64_t gen, int64_t created_ms) {
  if (!o->w->memo || o->call->memo_epoch == 0 || gen < 0 || created_ms <= 0) return;
  cJSON *mark = cJSON_CreateRaw("\x01");
  if (!mark || !cJSON_ReplaceItemInObjectCaseSensitive(result, "duration", mark)) {
    cJSON_Delete(mark);
    return;
  }
  cc_wjson_buf b = {0};
  cc_wjson_buf_item(&b, result);
  char *text = cc_wjson_buf_finish(&b);
  char *cut = text ? memchr(text, 1, b.len) : NULL;
  if (cut) {
    cc_wmemo_exec e = {.before = text,
                       .before_len = (size_t)(cut - text),
                       .after = cut + 1,
                       .after_len = b.len - (size_t)(cut - text) - 1,
                       .generation = gen,
                       .created_ms = created_ms,
                       .record_id = o->call->record_id};
    char *key = cc_wexec_cache_key(&o->req->exec);
    if (key) cc_wmemo_remember_exec(o->w->memo, o->call->memo_epoch, o->user, o->project, key, &e);
    free(key);
  }
  free(text);
}

/* Serves a cache hit remembered under the call's epoch (cc_wmemo), without reading the
 * store.  Non-streaming calls only.  True when *response was made. */
bool cc_wexec_serve_remembered(op *o, const char *key, char **response) {
  cc_worker *w = o->w;
  if (o->call->emit || !cc_wmemo_exec_serve(w->memo, o->call->memo_epoch, o->user, o->project, key,
                                            cc_worker_now_ms(), w->cfg->cache_ttl_s * 1000,
                                            o->req->id, cc_wops_mono_ms() - o->t0_ms, response,
                                            o->call->record_id, sizeof o->call->record_id))
    return false;
  o->call->cached = true;
  atomic_fetch_add(&w->metrics.cache_hits, 1);
  return true;
}

/* Serves a cache hit: the stored result with cached:true and this call's duration. */
cc_status cc_wexec_serve_cached(op *o, cJSON *result, char **response) {
  /* The entry's generation is the project's current one (the store only returns entries
   * made at the current generation); it was stored beside the result as "_generation". */
  int64_t gen = -1, created_ms = 0;
  cJSON *g = cJSON_GetObjectItemCaseSensitive(result, "_generation");
  if (cJSON_IsNumber(g)) gen = (int64_t)g->valuedouble;
  cJSON_DeleteItemFromObjectCaseSensitive(result, "_generation");
  g = cJSON_GetObjectItemCaseSensitive(result, "_createdAt"); /* absent in older entries */
  if (cJSON_IsNumber(g)) created_ms = (int64_t)g->valuedouble;
  cJSON_DeleteItemFromObjectCaseSensitive(result, "_createdAt");
  cJSON_ReplaceItemInObjectCaseSensitive(result, "cached", cJSON_CreateTrue());
  cJSON_DeleteItemFromObjectCaseSensitive(result, "sandboxRecreated");
  cJSON_DeleteItemFromObjectCaseSensitive(result, "sandboxRestored");
  cJSON_DeleteItemFromObjectCaseSensitive(result, "restoredFrom");
  cJSON *id = cJSON_GetObjectItemCaseSensitive(result, "id");
  if (cJSON_IsString(id))
    snprintf(o->call->record_id, sizeof o->call->record_id, "%s", id->valuestring);
  o->call->cached = true;
  atomic_fetch_add(&o->w->metrics.cache_hits, 1);
  if (o->call->emit) {
    emit_start(o, 0, true);
    struct exec_run x = {.o = o};
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(result, "stdout");
    const cJSON *se = cJSON_GetObjectItemCaseSensitive(result, "stderr");
    if (cJSON_IsString(so) && *so->valuestring)
      cc_wexec_emit_output(&x, 0, so->valuestring, strlen(so->valuestring), true);
    if (cJSON_IsString(se) && *se->valuestring)
      cc_wexec_emit_output(&x, 1, se->valuestring, strlen(se->valuestring), true);
  }
  remember_cached(o, result, gen, created_ms);
  cJSON_ReplaceItemInObjectCaseSensitive(
      result, "duration", cJSON_CreateNumber((double)(cc_wops_mono_ms() - o->t0_ms)));
  if (gen < 0) return cc_wops_respond_ok(o, result, response);
  return cc_wjson_encode_ok(o->req->id, result, gen, response) == CC_OK ? CC_OK : CC_INTERNAL;
}

/* ------------------------------------------------------------------ running a command */

/* Runs one command in the project's sandbox (renewing a gone sandbox once) and fills `res`
 * and the output buffers of `x`.  Used by exec, setupProject's install and startDevServer. */
cc_status cc_wexec_run_command(op *o, struct exec_run *x, const cc_e2b_exec_opts *base,
                               cc_e2b_exec_result *res) {
  cc_status st = cc_wsbx_ensure(o, false);
  if (st != CC_OK) return st;
  for (int attempt = 0;; attempt++) {
    cc_e2b_exec_opts eo = *base;
    eo.cancel = o->call->cancel;
    eo.on_event = on_exec_event;
    eo.ctx = x;
    cc_e2b_error err = {0};
    memset(res, 0, sizeof *res);
    st = cc_e2b_exec(o->w->e2b, &o->sb, &eo, res, &err);
    if (st != CC_OK && err.sandbox_gone && !res->started && attempt == 0) {
      cc_status rs = cc_wsbx_renew(o);
      if (rs != CC_OK) return rs;
      continue;
    }
    if (st != CC_OK && st != CC_TIMEOUT) {
      if (err.sandbox_gone) cc_wsbx_forget(o->w, o->sb.id);
      return cc_wops_fail_e2b(o, st, &err, "running the command");
    }
    return st;
  }
}

/* After a cancel the SIGKILL has been sent; wait (at most ~2 s) until the process has left
 * the sandbox's process list, so that "canceled" means "gone". */
void cc_wexec_wait_gone(op *o, uint32_t pid) {
  for (int i = 0; i < 40; i++) {
    cc_e2b_process_list l = {0};
    cc_e2b_error err = {0};
    if (cc_e2b_list_processes(o->w->e2b, &o->sb, &l, &err) != CC_OK) return;
    bool found = false;
    for (size_t k = 0; k < l.count; k++) found |= l.items[k].pid == pid;
    cc_e2b_process_list_cleanup(&l);
    if (!found) return;
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
  }
}

/* Builds an ExecutionResult JSON from a finished run. */
cJSON *cc_wexec_result_json(op *o, struct exec_run *x, const cc_e2b_exec_result *res,
                            cc_proto_record_status status, int64_t duration) {
  char *so = NULL, *se = NULL;
  size_t n;
  cc_proto_utf8_sanitize(x->out.p ? x->out.p : "", x->out.len, &so, &n);
  cc_proto_utf8_sanitize(x->err.p ? x->err.p : "", x->err.len, &se, &n);
  cc_proto_exec_result r = {
      .id = o->call->record_id,
      .stdout_text = so ? so : "",
      .stderr_text = se ? se : "",
      .exit_code = res->ended ? res->exit_code : -1,
      .duration_ms = duration,
      .cached = false,
      .status = status,
      .truncated = x->out.truncated || x->err.truncated,
      .sandbox_recreated = o->sandbox_recreated,
      .restored_from_ms = o->restored_from_ms,
  };
  cJSON *j = NULL;
  cc_proto_exec_result_to_json(&r, &j);
  cc_proto_free(so);
  cc_proto_free(se);
  return j;
}

/* ------------------------------------------------------------------ exec */

/* Runs `cmd` as a recorded exec and leaves the result in *result_out (caller deletes).
 * Returns the protocol status of the call (CC_OK also for a non-zero exit). */
static cc_status exec_core(op *o, const cc_proto_exec_args *a, cJSON **result_out) {
  cc_worker *w = o->w;
  *result_out = NULL;
  int64_t t0 = cc_wops_mono_ms();
  struct exec_run x = {.o = o};
  x.out.max = x.err.max = (size_t)w->cfg->max_output_bytes;
  cc_e2b_kv *envs = NULL;
  if (a->env_count) {
    envs = calloc(a->env_count, sizeof *envs);
    if (!envs) return cc_wops_fail(o, CC_INTERNAL, "out of memory");
    for (size_t i = 0; i < a->env_count; i++)
      envs[i] = (cc_e2b_kv){a->env[i].name, a->env[i].value};
  }
  long timeout = a->timeout_ms > 0 ? (long)a->timeout_ms : w->cfg->command_timeout_ms;
  cc_e2b_exec_opts eo = {.cmd = a->cmd,
                         .cwd = a->cwd,
                         .envs = envs,
                         .envs_count = a->env_count,
                         .timeout_ms = timeout};
  cc_e2b_exec_result res = {0};
  cc_status st;
  if (a->stdin_data) {
    /* stdin: the E2B protocol the SDK uses cannot close a process's stdin, so the data
     * goes to a file in the sandbox and the command reads it through a redirection. */
    char path[128], *wrapped = NULL;
    snprintf(path, sizeof path, CC_PROTO_HOME "/.codecanvas/stdin-%s", o->call->record_id);
    cc_proto_file f = {
        .path = path, .content = (const unsigned char *)a->stdin_data, .content_len = a->stdin_len};
    struct write_ctx wc = {&f};
    st = cc_wops_with_sandbox(o, cc_wops_do_write, &wc, "writing stdin");
    if (st == CC_OK && asprintf(&wrapped, "( %s\n) < '%s'; cc_rc=$?; rm -f '%s'; exit $cc_rc",
                                a->cmd, path, path) < 0)
      st = cc_wops_fail(o, CC_INTERNAL, "out of memory");
    if (st == CC_OK) {
      eo.cmd = wrapped;
      st = cc_wexec_run_command(o, &x, &eo, &res);
    } else {
      memset(&res, 0, sizeof res);
    }
    free(wrapped);
  } else {
    st = cc_wexec_run_command(o, &x, &eo, &res);
  }
  free(envs);
  cc_wexec_emit_output(&x, 0, NULL, 0, true);
  cc_wexec_emit_output(&x, 1, NULL, 0, true);
  int64_t duration = cc_wops_mono_ms() - t0;
  if (st == CC_OK && res.canceled && res.pid) cc_wexec_wait_gone(o, res.pid);

  cc_proto_record_status rs;
  if (st == CC_TIMEOUT) {
    rs = CC_RECORD_TIMEOUT;
    cc_wops_fail(o, CC_TIMEOUT, "the command ran longer than %ld ms and was killed", timeout);
  } else if (st != CC_OK) {
    rs = CC_RECORD_ERROR;
  } else if (res.canceled) {
    rs = CC_RECORD_CANCELED;
    st = CC_SANDBOX_UNAVAILABLE;
    cc_wops_fail(o, st, "the command was canceled (client disconnected or worker shutting down)");
  } else if (!res.ended) {
    rs = CC_RECORD_ERROR;
    st = CC_UPSTREAM_ERROR;
    cc_wops_fail(o, st, "the sandbox ended the command without an exit status");
  } else {
    rs = res.exit_code == 0 ? CC_RECORD_SUCCESS : CC_RECORD_FAILED;
  }
  cJSON *result = cc_wexec_result_json(o, &x, &res, rs, duration);
  free(x.out.p);
  free(x.err.p);
  if (!result) return cc_wops_fail(o, CC_INTERNAL, "out of memory");
  if (res.started && !a->read_only) cc_wops_bump(o);
  cc_wops_record_end(o, rs, result, st);
  *result_out = result;
  return st;
}

cc_status cc_wexec_op(op *o, char **response) {
  cc_worker *w = o->w;
  const cc_proto_exec_args *a = &o->req->exec;
  cc_status st;
  char *key = cc_wexec_cache_key(a);
  if (!key) return cc_wops_fail(o, CC_INTERNAL, "out of memory");
  /* This request may have waited behind others that changed the project: what the memo
   * may answer is decided by the epoch now, not the one of its authentication. */
  o->call->memo_epoch = cc_wmemo_epoch(w->memo);
  if (a->use_cache && cc_wexec_serve_remembered(o, key, response)) {
    free(key);
    return CC_OK;
  }
  if (a->use_cache) {
    bool hit = false;
    cJSON *cached = NULL;
    st = cc_store_cache_get(w->store, o->user, o->project, key, &hit, &cached);
    if (st == CC_OK && hit) {
      free(key);
      st = cc_wexec_serve_cached(o, cached, response);
      cJSON_Delete(cached);
      return st;
    }
    cJSON_Delete(cached);
    atomic_fetch_add(&w->metrics.cache_misses, 1);
  }
  if ((st = cc_wlimit_enter(w->limit, o->user)) != CC_OK) {
    free(key);
    return cc_wops_fail(o, st, "more than %ld sandbox operations of this user in flight",
                        w->cfg->max_inflight_per_user);
  }
  if ((st = cc_store_project_ensure(w->store, o->user, o->project, NULL)) != CC_OK ||
      (st = cc_wops_record_begin(o)) != CC_OK) {
    cc_wlimit_leave(w->limit, o->user);
    free(key);
    if (o->message[0] == 0) cc_wops_store_fail(o, st, "project");
    return st;
  }
  cJSON *result = NULL;
  st = exec_core(o, a, &result);
  cc_wlimit_leave(w->limit, o->user);
  if (result) {
    cJSON *status = cJSON_GetObjectItemCaseSensitive(result, "status");
    if (st == CC_OK && cJSON_IsString(status) &&
        (strcmp(status->valuestring, "success") == 0 ||
         strcmp(status->valuestring, "failed") == 0)) {
      int64_t gen = -1;
      if (cc_store_project_generation(w->store, o->user, o->project, &gen) == CC_OK) {
        cJSON_AddNumberToObject(result, "_generation", (double)gen);
        cJSON_AddNumberToObject(result, "_createdAt", (double)cc_worker_now_ms()); /* memo TTL */
        cc_store_cache_put(w->store, o->user, o->project, key, a->cmd, gen, result);
        cJSON_DeleteItemFromObjectCaseSensitive(result, "_generation");
        cJSON_DeleteItemFromObjectCaseSensitive(result, "_createdAt");
      }
    }
  }
  free(key);
  if (st == CC_OK) st = cc_wops_respond_ok(o, result, response);
  cJSON_Delete(result);
  return st;
}
