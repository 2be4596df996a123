/*
 * cc_wops: the protocol v1 operations of codecanvas-worker (DESIGN §4, §5).
 *
 * Every operation runs on behalf of one authenticated user and sees only that user's
 * projects (the store scopes every call by owner).  Operations that touch a project's
 * state or its sandbox are ordered per project through cc_wqueue (one at a time, arrival
 * order); pure reads (hello, getHistory, getResult, getProject, listProjects) read
 * committed state directly and never wait behind a long command.
 *
 * Sandbox operations (exec, writeFile, readFile, listDir, setupProject, startDevServer,
 * killProcess, listProcesses) are execution records: pending -> running -> final, with the
 * input and, on failure, the error.  The sandbox of a project is created on first use and
 * its id kept in the project; a descriptor (envd token, domain) is cached in memory and
 * refreshed through `connect` (which also extends the sandbox's life).  When E2B says the
 * sandbox is gone, a new one is created (the generation is bumped by the store) and the
 * operation is retried once, unless a command had already started.
 *
 * Cache: exec results (success or failed) are stored at the project's generation after
 * the command; a lookup hits only at the same generation and within the TTL (the store
 * enforces both).  A hit is answered without a new record: its `id` is the record that
 * produced it, `cached` is true and `duration` is the time taken to serve it.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cc_wjson.h"
#include "cc_wmemo.h"
#include "cc_wsnap.h"
#include "cc_worker_internal.h"

/* ------------------------------------------------------------------ sandbox descriptors */

#define SBX_REFRESH_MS 10000 /* connect (and extend the lifetime) at most this often */
#define SBX_CACHE_MAX 4096

/* How the worker came by a sandbox (for getProject's sandbox.state). */
typedef enum { ORIGIN_CONNECTED = 0, ORIGIN_NEW, ORIGIN_RESTORED } sbx_origin;

struct cc_sbx_cache {
  struct sbx_item {
    cc_e2b_sandbox sb;
    int64_t refreshed_ms;
    sbx_origin origin;
    int64_t restored_from_ms; /* ORIGIN_RESTORED: the snapshot's time */
  } * items;
  size_t count, cap;
};

cc_status cc_wops_init(cc_worker *w) {
  w->sbx = calloc(1, sizeof *w->sbx);
  return w->sbx ? CC_OK : CC_INTERNAL;
}

void cc_wops_cleanup(cc_worker *w) {
  if (!w->sbx) return;
  free(w->sbx->items);
  free(w->sbx);
  w->sbx = NULL;
}

static bool sbx_lookup(cc_worker *w, const char *id, cc_e2b_sandbox *out, int64_t now) {
  bool found = false;
  pthread_mutex_lock(&w->sbx_mu);
  for (size_t i = 0; i < w->sbx->count; i++)
    if (strcmp(w->sbx->items[i].sb.id, id) == 0) {
      if (now - w->sbx->items[i].refreshed_ms < SBX_REFRESH_MS) {
        *out = w->sbx->items[i].sb;
        found = true;
      }
      break;
    }
  pthread_mutex_unlock(&w->sbx_mu);
  return found;
}

static void sbx_forget(cc_worker *w, const char *id) {
  pthread_mutex_lock(&w->sbx_mu);
  for (size_t i = 0; i < w->sbx->count; i++)
    if (strcmp(w->sbx->items[i].sb.id, id) == 0) {
      w->sbx->items[i] = w->sbx->items[--w->sbx->count];
      break;
    }
  pthread_mutex_unlock(&w->sbx_mu);
}

static void sbx_remember_as(cc_worker *w, const cc_e2b_sandbox *sb, int64_t now, sbx_origin origin,
                            int64_t restored_from_ms);

static void sbx_remember(cc_worker *w, const cc_e2b_sandbox *sb, int64_t now) {
  sbx_remember_as(w, sb, now, ORIGIN_CONNECTED, 0);
}

static void sbx_remember_as(cc_worker *w, const cc_e2b_sandbox *sb, int64_t now, sbx_origin origin,
                            int64_t restored_from_ms) {
  pthread_mutex_lock(&w->sbx_mu);
  struct cc_sbx_cache *c = w->sbx;
  size_t i = 0;
  while (i < c->count && strcmp(c->items[i].sb.id, sb->id) != 0) i++;
  bool existed = i < c->count;
  if (i == c->count) {
    if (c->count >= SBX_CACHE_MAX) c->count = 0; /* bounded: start over */
    if (c->count == c->cap) {
      size_t ncap = c->cap ? c->cap * 2 : 16;
      struct sbx_item *n = realloc(c->items, ncap * sizeof *n);
      if (!n) {
        pthread_mutex_unlock(&w->sbx_mu);
        return;
      }
      c->items = n;
      c->cap = ncap;
    }
    i = c->count++;
  }
  if (!existed || origin != ORIGIN_CONNECTED) { /* a reconnect keeps how it came to be */
    c->items[i].origin = origin;
    c->items[i].restored_from_ms = restored_from_ms;
  }
  c->items[i].sb = *sb;
  c->items[i].refreshed_ms = now;
  pthread_mutex_unlock(&w->sbx_mu);
}

/* The descriptor of sandbox id whatever its age (for facts that never change, like its
 * network). */
static bool sbx_peek(cc_worker *w, const char *id, cc_e2b_sandbox *out, sbx_origin *origin) {
  bool found = false;
  pthread_mutex_lock(&w->sbx_mu);
  for (size_t i = 0; i < w->sbx->count && !found; i++)
    if (strcmp(w->sbx->items[i].sb.id, id) == 0) {
      *out = w->sbx->items[i].sb;
      *origin = w->sbx->items[i].origin;
      found = true;
    }
  pthread_mutex_unlock(&w->sbx_mu);
  return found;
}

/* ------------------------------------------------------------------ per-call state */

typedef struct op {
  cc_wcall *call;
  cc_worker *w;
  const cc_request *req;
  const char *user;
  const char *project;
  char message[600]; /* error message of the failure being reported */
  bool sandbox_recreated;
  int64_t restored_from_ms; /* > 0: the new sandbox got the snapshot of this time */
  cc_e2b_sandbox sb;
  bool have_sb;
  bool running; /* the record was moved to running */
  int64_t t0_ms;
} op;

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Records `st`'s detailed message (never a secret) for the response and the record. */
static cc_status fail(op *o, cc_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static cc_status fail(op *o, cc_status st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(o->message, sizeof o->message, fmt, ap);
  va_end(ap);
  return st;
}

static cc_status fail_e2b(op *o, cc_status st, const cc_e2b_error *e, const char *what) {
  return fail(o, st, "%s: %s", what, e->message[0] ? e->message : cc_status_message(st));
}

/* "<verb> <path>": what a failure message starts with, so that it names the user's path
 * (forbidden, not_found, bad_request of a file op).  Long paths are cut. */
static const char *on_path(char *buf, size_t n, const char *verb, const char *path) {
  snprintf(buf, n, "%s %.300s", verb, path ? path : "");
  return buf;
}

static cc_status store_fail(op *o, cc_status st, const char *what) {
  if (st == CC_NOT_FOUND) return fail(o, st, "%s not found", what);
  char buf[256];
  cc_store_last_error(o->w->store, buf, sizeof buf);
  return fail(o, st, "%s: %s", what, st == CC_INTERNAL ? "storage error" : buf);
}

/* ------------------------------------------------------------------ sandbox access */

/* Makes o->sb the project's live sandbox: the cached descriptor, a connect to the stored
 * id, or a new sandbox (then the store bumps the generation).  `force_new` skips the
 * stored id (it was found gone). */
static cc_status ensure_sandbox(op *o, bool force_new) {
  cc_worker *w = o->w;
  cc_e2b_error err = {0};
  int64_t now = mono_ms();
  char *id = NULL;
  cc_status st = cc_store_project_sandbox(w->store, o->user, o->project, &id);
  if (st != CC_OK) return store_fail(o, st, "project");
  bool had = id != NULL;
  if (id && !force_new) {
    if (sbx_lookup(w, id, &o->sb, now)) {
      free(id);
      o->have_sb = true;
      return CC_OK;
    }
    st = cc_e2b_connect(w->e2b, id, (int)w->cfg->sandbox_timeout_s, &o->sb, &err);
    if (st == CC_OK) {
      sbx_remember(w, &o->sb, now);
      free(id);
      o->have_sb = true;
      return CC_OK;
    }
    if (!(st == CC_NOT_FOUND && err.sandbox_gone)) {
      free(id);
      return fail_e2b(o, st, &err, "connecting to the sandbox");
    }
  }
  if (id) sbx_forget(w, id);
  free(id);
  cc_e2b_kv meta[2] = {{"codecanvasUser", o->user}, {"codecanvasProject", o->project}};
  cc_e2b_create_opts co = {.metadata = meta, .metadata_count = 2};
  memset(&err, 0, sizeof err);
  st = cc_e2b_create(w->e2b, &co, &o->sb, &err);
  if (st != CC_OK) return fail_e2b(o, st, &err, "creating a sandbox");
  atomic_fetch_add(&w->metrics.sandboxes_created, 1);
  /* The project's files come back from its snapshot before anything else runs.  If that
   * fails, the new sandbox is dropped (not recorded), so the next operation tries again. */
  cc_wsnap_meta snap;
  char why[300] = "";
  st = cc_wsnap_restore(w, o->user, o->project, &o->sb, &snap, why, sizeof why);
  if (st == CC_OK) {
    o->restored_from_ms = snap.taken_ms > 0 ? snap.taken_ms : 1;
    cc_wsnap_meta_free(&snap);
  } else if (st != CC_NOT_FOUND) {
    cc_e2b_kill(w->e2b, o->sb.id, &err);
    return fail(o, st == CC_TOO_LARGE ? CC_UPSTREAM_ERROR : st,
                "restoring the project's files into a new sandbox: %s", why);
  }
  if (had) {
    atomic_fetch_add(&w->metrics.sandboxes_recreated, 1);
    o->sandbox_recreated = true;
  }
  st = cc_store_project_set_sandbox(w->store, o->user, o->project, o->sb.id, NULL);
  if (st != CC_OK) {
    cc_e2b_kill(w->e2b, o->sb.id, &err);
    return store_fail(o, st, "project");
  }
  sbx_remember_as(w, &o->sb, now, o->restored_from_ms > 0 ? ORIGIN_RESTORED : ORIGIN_NEW,
                  o->restored_from_ms);
  o->have_sb = true;
  return CC_OK;
}

/* The sandbox was reported gone (or unreachable) by an operation: forget its descriptor and
 * connect again, which resumes a sandbox E2B paused; only one that no longer exists is
 * replaced by a new one (with the project's files restored). */
static cc_status renew_sandbox(op *o) {
  sbx_forget(o->w, o->sb.id);
  o->have_sb = false;
  return ensure_sandbox(o, false);
}

/* ------------------------------------------------------------------ responses */

/* getProject's live facts, never stored:
 *   sandbox: {id, state, internet?, internetReason?}: state "paused" (E2B paused it at its
 *     timeout; the next operation resumes it), "restored" (this worker made it and put the
 *     project's files back from its snapshot), "new" (this worker made it; nothing to
 *     restore), else "running"; internet as the sandbox server reports it;
 *   snapshot: {takenAt, bytes, partial, excluded?}: the project's stored copy of its files.
 * A gone sandbox adds no "sandbox" (the next operation makes a new one). */
static void add_sandbox_facts(op *o, cJSON *project) {
  cc_wsnap_meta m;
  if (cc_wsnap_info(o->w, o->user, o->project, &m) == CC_OK) {
    cJSON *sn = cJSON_AddObjectToObject(project, "snapshot");
    cJSON_AddNumberToObject(sn, "takenAt", (double)m.taken_ms);
    cJSON_AddNumberToObject(sn, "bytes", (double)m.bytes);
    cJSON_AddBoolToObject(sn, "partial", m.partial);
    cJSON *ex = m.partial && m.excluded_json ? cJSON_Parse(m.excluded_json) : NULL;
    if (ex) cJSON_AddItemToObject(sn, "excluded", ex);
    cc_wsnap_meta_free(&m);
  }
  const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(project, "sandboxId"));
  if (!id) return;
  cc_e2b_sandbox sb;
  sbx_origin origin = ORIGIN_CONNECTED;
  bool known = sbx_peek(o->w, id, &sb, &origin);
  cc_e2b_info info;
  cc_e2b_error err = {0};
  if (cc_e2b_get_info(o->w->e2b, id, &info, &err) != CC_OK) return;
  int internet = known && sb.internet >= 0 ? sb.internet : info.internet;
  const char *why = known && sb.internet >= 0 ? sb.internet_reason : info.internet_reason;
  cJSON *s = cJSON_AddObjectToObject(project, "sandbox");
  if (!s || !cJSON_AddStringToObject(s, "id", id)) return;
  cJSON_AddStringToObject(s, "state", strcmp(info.state, "paused") == 0 ? "paused"
                                      : origin == ORIGIN_RESTORED       ? "restored"
                                      : origin == ORIGIN_NEW            ? "new"
                                                                        : "running");
  if (internet >= 0) cJSON_AddBoolToObject(s, "internet", internet);
  if (internet == 0 && why[0]) cJSON_AddStringToObject(s, "internetReason", why);
}

static cc_status generation_of(op *o, int64_t *gen) {
  *gen = -1;
  if (!o->project) return CC_OK;
  cc_status st = cc_store_project_generation(o->w->store, o->user, o->project, gen);
  if (st == CC_NOT_FOUND) *gen = -1, st = CC_OK;
  return st;
}

static cc_status bump(op *o) {
  return cc_store_project_bump_generation(o->w->store, o->user, o->project, NULL);
}

/* Encodes an ok response with `result` (borrowed) and the project's current generation. */
static cc_status respond_ok(op *o, const cJSON *result, char **response) {
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

static cc_status record_begin(op *o) {
  cJSON *in = record_input(o);
  cc_status st = cc_store_record_insert(o->w->store, o->user, o->project, NULL,
                                        cc_proto_op_name(o->req->op), in, o->call->record_id);
  cJSON_Delete(in);
  if (st != CC_OK) return store_fail(o, st, "record");
  return CC_OK;
}

/* pending -> running: called once the sandbox is ready (and, for commands, when the
 * process has started), so a running record always has its sandbox. */
static void mark_running(op *o) {
  if (o->running || !o->call->record_id[0]) return;
  o->running = true;
  cc_store_record_set_running(o->w->store, o->user, o->call->record_id);
}

static void record_end(op *o, cc_proto_record_status status, const cJSON *result, cc_status err) {
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

/* ------------------------------------------------------------------ exec */

typedef cc_status (*sbx_fn)(op *o, void *ctx, cc_e2b_error *err);
static cc_status with_sandbox(op *o, sbx_fn fn, void *ctx, const char *what);
struct write_ctx {
  const cc_proto_file *f;
};
static cc_status do_write(op *o, void *ctx, cc_e2b_error *err);

struct outbuf {
  char *p;
  size_t len, cap, max;
  bool truncated;
};

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

struct exec_run {
  op *o;
  struct outbuf out, err;
  char carry[2][4]; /* an incomplete UTF-8 sequence held back per stream */
  size_t ncarry[2];
  bool emit_failed;
  bool detach_on_start;
  uint32_t pid;
};

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
static bool emit_output(struct exec_run *x, int which, const char *data, size_t len, bool flush) {
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
      mark_running(o);
      if (x->detach_on_start) return CC_E2B_DETACH;
      if (!emit_start(o, ev->pid, false)) x->emit_failed = true;
      break;
    case CC_E2B_EVENT_STDOUT:
    case CC_E2B_EVENT_STDERR:
    case CC_E2B_EVENT_PTY: {
      int which = ev->type == CC_E2B_EVENT_STDERR;
      out_add(which ? &x->err : &x->out, ev->data, ev->len);
      if (!emit_output(x, which, ev->data, ev->len, false)) x->emit_failed = true;
      break;
    }
    default:
      break;
  }
  if (x->emit_failed || (o->call->cancel && atomic_load(o->call->cancel))) return CC_E2B_CANCEL;
  return CC_E2B_CONTINUE;
}

/* The canonical cache key of an exec: cmd, cwd, env sorted by name, stdin, as the JSON array
 * ["cmd","cwd",[["NAME","value"],...],"<stdin base64>"|null], byte for byte what cJSON printed
 * before (keys already in the store stay valid) but written without building a tree.  The
 * caller frees it with free(). */
static char *cache_key(const cc_proto_exec_args *a) {
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
    char *key = cache_key(&o->req->exec);
    if (key) cc_wmemo_remember_exec(o->w->memo, o->call->memo_epoch, o->user, o->project, key, &e);
    free(key);
  }
  free(text);
}

/* Serves a cache hit remembered under the call's epoch (cc_wmemo), without reading the
 * store.  Non-streaming calls only.  True when *response was made. */
static bool serve_remembered(op *o, const char *key, char **response) {
  cc_worker *w = o->w;
  if (o->call->emit ||
      !cc_wmemo_exec_serve(w->memo, o->call->memo_epoch, o->user, o->project, key,
                           cc_worker_now_ms(), w->cfg->cache_ttl_s * 1000, o->req->id,
                           mono_ms() - o->t0_ms, response, o->call->record_id,
                           sizeof o->call->record_id))
    return false;
  o->call->cached = true;
  atomic_fetch_add(&w->metrics.cache_hits, 1);
  return true;
}

/* Serves a cache hit: the stored result with cached:true and this call's duration. */
static cc_status serve_cached(op *o, cJSON *result, char **response) {
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
      emit_output(&x, 0, so->valuestring, strlen(so->valuestring), true);
    if (cJSON_IsString(se) && *se->valuestring)
      emit_output(&x, 1, se->valuestring, strlen(se->valuestring), true);
  }
  remember_cached(o, result, gen, created_ms);
  cJSON_ReplaceItemInObjectCaseSensitive(result, "duration",
                                         cJSON_CreateNumber((double)(mono_ms() - o->t0_ms)));
  if (gen < 0) return respond_ok(o, result, response);
  return cc_wjson_encode_ok(o->req->id, result, gen, response) == CC_OK ? CC_OK : CC_INTERNAL;
}

/* Runs one command in the project's sandbox (renewing a gone sandbox once) and fills `res`
 * and the output buffers of `x`.  Used by exec, setupProject's install and startDevServer. */
static cc_status run_command(op *o, struct exec_run *x, const cc_e2b_exec_opts *base,
                             cc_e2b_exec_result *res) {
  cc_status st = ensure_sandbox(o, false);
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
      cc_status rs = renew_sandbox(o);
      if (rs != CC_OK) return rs;
      continue;
    }
    if (st != CC_OK && st != CC_TIMEOUT) {
      if (err.sandbox_gone) sbx_forget(o->w, o->sb.id);
      return fail_e2b(o, st, &err, "running the command");
    }
    return st;
  }
}

/* After a cancel the SIGKILL has been sent; wait (at most ~2 s) until the process has left
 * the sandbox's process list, so that "canceled" means "gone". */
static void wait_gone(op *o, uint32_t pid) {
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
static cJSON *exec_result_json(op *o, struct exec_run *x, const cc_e2b_exec_result *res,
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

/* Runs `cmd` as a recorded exec and leaves the result in *result_out (caller deletes).
 * Returns the protocol status of the call (CC_OK also for a non-zero exit). */
static cc_status exec_core(op *o, const cc_proto_exec_args *a, cJSON **result_out) {
  cc_worker *w = o->w;
  *result_out = NULL;
  int64_t t0 = mono_ms();
  struct exec_run x = {.o = o};
  x.out.max = x.err.max = (size_t)w->cfg->max_output_bytes;
  cc_e2b_kv *envs = NULL;
  if (a->env_count) {
    envs = calloc(a->env_count, sizeof *envs);
    if (!envs) return fail(o, CC_INTERNAL, "out of memory");
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
    st = with_sandbox(o, do_write, &wc, "writing stdin");
    if (st == CC_OK && asprintf(&wrapped, "( %s\n) < '%s'; cc_rc=$?; rm -f '%s'; exit $cc_rc",
                                a->cmd, path, path) < 0)
      st = fail(o, CC_INTERNAL, "out of memory");
    if (st == CC_OK) {
      eo.cmd = wrapped;
      st = run_command(o, &x, &eo, &res);
    } else {
      memset(&res, 0, sizeof res);
    }
    free(wrapped);
  } else {
    st = run_command(o, &x, &eo, &res);
  }
  free(envs);
  emit_output(&x, 0, NULL, 0, true);
  emit_output(&x, 1, NULL, 0, true);
  int64_t duration = mono_ms() - t0;
  if (st == CC_OK && res.canceled && res.pid) wait_gone(o, res.pid);

  cc_proto_record_status rs;
  if (st == CC_TIMEOUT) {
    rs = CC_RECORD_TIMEOUT;
    fail(o, CC_TIMEOUT, "the command ran longer than %ld ms and was killed", timeout);
  } else if (st != CC_OK) {
    rs = CC_RECORD_ERROR;
  } else if (res.canceled) {
    rs = CC_RECORD_CANCELED;
    st = CC_SANDBOX_UNAVAILABLE;
    fail(o, st, "the command was canceled (client disconnected or worker shutting down)");
  } else if (!res.ended) {
    rs = CC_RECORD_ERROR;
    st = CC_UPSTREAM_ERROR;
    fail(o, st, "the sandbox ended the command without an exit status");
  } else {
    rs = res.exit_code == 0 ? CC_RECORD_SUCCESS : CC_RECORD_FAILED;
  }
  cJSON *result = exec_result_json(o, &x, &res, rs, duration);
  free(x.out.p);
  free(x.err.p);
  if (!result) return fail(o, CC_INTERNAL, "out of memory");
  if (res.started && !a->read_only) bump(o);
  record_end(o, rs, result, st);
  *result_out = result;
  return st;
}

static cc_status op_exec(op *o, char **response) {
  cc_worker *w = o->w;
  const cc_proto_exec_args *a = &o->req->exec;
  cc_status st;
  char *key = cache_key(a);
  if (!key) return fail(o, CC_INTERNAL, "out of memory");
  /* This request may have waited behind others that changed the project: what the memo
   * may answer is decided by the epoch now, not the one of its authentication. */
  o->call->memo_epoch = cc_wmemo_epoch(w->memo);
  if (a->use_cache && serve_remembered(o, key, response)) {
    free(key);
    return CC_OK;
  }
  if (a->use_cache) {
    bool hit = false;
    cJSON *cached = NULL;
    st = cc_store_cache_get(w->store, o->user, o->project, key, &hit, &cached);
    if (st == CC_OK && hit) {
      free(key);
      st = serve_cached(o, cached, response);
      cJSON_Delete(cached);
      return st;
    }
    cJSON_Delete(cached);
    atomic_fetch_add(&w->metrics.cache_misses, 1);
  }
  if ((st = cc_wlimit_enter(w->limit, o->user)) != CC_OK) {
    free(key);
    return fail(o, st, "more than %ld sandbox operations of this user in flight",
                w->cfg->max_inflight_per_user);
  }
  if ((st = cc_store_project_ensure(w->store, o->user, o->project, NULL)) != CC_OK ||
      (st = record_begin(o)) != CC_OK) {
    cc_wlimit_leave(w->limit, o->user);
    free(key);
    if (o->message[0] == 0) store_fail(o, st, "project");
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
  if (st == CC_OK) st = respond_ok(o, result, response);
  cJSON_Delete(result);
  return st;
}

/* ------------------------------------------------------------------ files */

/* Runs `fn` against the project's sandbox, renewing a gone sandbox once. */

static cc_status with_sandbox(op *o, sbx_fn fn, void *ctx, const char *what) {
  cc_status st = ensure_sandbox(o, false);
  if (st != CC_OK) return st;
  mark_running(o);
  for (int attempt = 0;; attempt++) {
    cc_e2b_error err = {0};
    st = fn(o, ctx, &err);
    if (st != CC_OK && err.sandbox_gone && attempt == 0) {
      cc_status rs = renew_sandbox(o);
      if (rs != CC_OK) return rs;
      continue;
    }
    if (st != CC_OK) return fail_e2b(o, st, &err, what);
    return CC_OK;
  }
}

static cc_status do_write(op *o, void *ctx, cc_e2b_error *err) {
  const cc_proto_file *f = ((struct write_ctx *)ctx)->f;
  return cc_e2b_write_file(o->w->e2b, &o->sb, f->path, f->content, f->content_len, NULL, 0, err);
}

static cc_status op_write_file(op *o, cJSON **result) {
  const cc_proto_file *f = &o->req->write_file.file;
  if (f->content_len > (size_t)o->w->cfg->max_file_bytes)
    return fail(o, CC_TOO_LARGE, "file larger than %ld bytes", o->w->cfg->max_file_bytes);
  struct write_ctx c = {f};
  char what[320];
  cc_status st = with_sandbox(o, do_write, &c, on_path(what, sizeof what, "writing", f->path));
  if (st != CC_OK) return st;
  bump(o);
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
  cc_status st = with_sandbox(o, do_read, &c, on_path(what, sizeof what, "reading", a->path));
  if (st != CC_OK) return st;
  char *text = NULL;
  size_t n;
  if (a->encoding == CC_ENC_BASE64)
    st = cc_proto_base64_encode((unsigned char *)c.data, c.len, &text, &n);
  else
    st = cc_proto_utf8_sanitize(c.data, c.len, &text, &n);
  cc_e2b_free(c.data);
  if (st != CC_OK) return fail(o, CC_INTERNAL, "out of memory");
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
  cc_status st = with_sandbox(o, do_list, &c, on_path(what, sizeof what, "listing", c.path));
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
      st = fail(o, CC_TOO_LARGE, "file %s larger than %ld bytes", a->files[i].path,
                o->w->cfg->max_file_bytes);
      break;
    }
    struct write_ctx c = {&a->files[i]};
    char what[320];
    st = with_sandbox(o, do_write, &c, on_path(what, sizeof what, "writing", a->files[i].path));
    if (st == CC_OK) cJSON_AddItemToArray(files, cJSON_CreateString(a->files[i].path));
  }
  if (a->file_count && st == CC_OK) bump(o);
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
    int64_t t0 = mono_ms();
    struct exec_run x = {.o = o};
    x.out.max = x.err.max = (size_t)o->w->cfg->max_output_bytes;
    long timeout = o->w->cfg->command_timeout_ms;
    cc_e2b_exec_opts eo = {.cmd = ea.cmd, .timeout_ms = timeout};
    cc_e2b_exec_result res = {0};
    st = run_command(o, &x, &eo, &res);
    emit_output(&x, 0, NULL, 0, true);
    emit_output(&x, 1, NULL, 0, true);
    cc_proto_record_status rs = st == CC_TIMEOUT                    ? CC_RECORD_TIMEOUT
                                : st != CC_OK                       ? CC_RECORD_ERROR
                                : res.canceled                      ? CC_RECORD_CANCELED
                                : (res.ended && res.exit_code == 0) ? CC_RECORD_SUCCESS
                                                                    : CC_RECORD_FAILED;
    if (st == CC_OK && res.canceled) {
      st = CC_SANDBOX_UNAVAILABLE;
      fail(o, st, "the install command was canceled");
    }
    if (st == CC_TIMEOUT) fail(o, st, "the install command ran longer than %ld ms", timeout);
    install = exec_result_json(o, &x, &res, rs, mono_ms() - t0);
    free(x.out.p);
    free(x.err.p);
    if (res.started) bump(o);
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
  cc_status st = run_command(o, &x, &eo, &res);
  free(x.out.p);
  free(x.err.p);
  if (st != CC_OK) return st;
  if (!res.started) return fail(o, CC_UPSTREAM_ERROR, "the dev server did not start");
  bump(o);
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
  cc_status pst = run_command(o, &px, &po, &pres);
  free(px.out.p);
  free(px.err.p);
  bool listening = pst == CC_OK && pres.ended && pres.exit_code == 0;

  char host[512];
  if (cc_e2b_host(&o->sb, a->port, host, sizeof host) != CC_OK)
    return fail(o, CC_INTERNAL, "sandbox host name too long");
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
  if (pid <= 0 || pid > 0x7fffffff) return fail(o, CC_BAD_REQUEST, "pid out of range");
  struct kill_ctx c = {(uint32_t)pid, false};
  cc_status st = with_sandbox(o, do_kill, &c, "killing the process");
  if (st != CC_OK) return st;
  if (c.killed) {
    wait_gone(o, c.pid); /* SIGKILL is asynchronous: answer once the process is gone */
    bump(o);
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
  cc_status st = with_sandbox(o, do_procs, &c, "listing processes");
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
  if (st != CC_OK) return store_fail(o, st, "project");
  if ((st = record_begin(o)) != CC_OK) return st;
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
      st = fail(o, CC_INTERNAL, "not a sandbox operation");
      break;
  }
  if (st == CC_OK && !result) st = fail(o, CC_INTERNAL, "out of memory");
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
  record_end(o, rs, record_result ? record_result : result, st);
  cc_status out = st == CC_OK ? respond_ok(o, result, response) : st;
  cJSON_Delete(result);
  cJSON_Delete(record_result);
  return out;
}

/* ------------------------------------------------------------------ project ops */

static cc_status op_delete_project(op *o, char **response) {
  cc_worker *w = o->w;
  char *id = NULL;
  cc_status st = cc_store_project_sandbox(w->store, o->user, o->project, &id);
  if (st != CC_OK) return store_fail(o, st, "project");
  if (id) {
    cc_e2b_error err = {0};
    cc_e2b_kill(w->e2b, id, &err); /* gone already is fine; unreachable leaves it to expire */
    sbx_forget(w, id);
    free(id);
  }
  cc_wsnap_forget(w, o->user, o->project); /* nothing of a deleted project comes back */
  bool deleted = false;
  st = cc_store_project_delete(w->store, o->user, o->project, &deleted);
  if (st != CC_OK) return store_fail(o, st, "project");
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
        return store_fail(o, st, "projects");
      st = cc_wjson_encode_ok(o->req->id, j, -1, response);
      cJSON_Delete(j);
      return st;
    case CC_OP_GET_RESULT:
      st = cc_store_record_get(w->store, o->user, o->req->get_result.execution_id, &j);
      if (st != CC_OK) return store_fail(o, st, "execution");
      st = cc_wjson_encode_ok(o->req->id, j, -1, response);
      cJSON_Delete(j);
      return st;
    case CC_OP_GET_PROJECT:
      if ((st = cc_store_project_get(w->store, o->user, o->project, &j)) != CC_OK)
        return store_fail(o, st, "project");
      add_sandbox_facts(o, j);
      st = respond_ok(o, j, response);
      cJSON_Delete(j);
      return st;
    case CC_OP_GET_HISTORY: {
      int64_t g;
      if ((st = cc_store_project_generation(w->store, o->user, o->project, &g)) != CC_OK)
        return store_fail(o, st, "project");
      const cc_proto_get_history_args *a = &o->req->get_history;
      char *items = NULL;
      if ((st = cc_store_history_json(w->store, o->user, o->project, a->limit, a->before, &items,
                                      &next)) != CC_OK)
        return store_fail(o, st, "history");
      /* The page is spliced in as text (the store keeps each finished record's JSON). */
      cJSON *r = cJSON_CreateObject();
      bool ok = r && cJSON_AddRawToObject(r, "items", items) &&
                (!next || cJSON_AddStringToObject(r, "next", next));
      free(items);
      free(next);
      st = ok ? cc_wjson_encode_ok(o->req->id, r, g, response) /* g: read just before the page */
              : fail(o, CC_INTERNAL, "out of memory");
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
    char *key = cache_key(&o->req->exec);
    /* Remembered since the database last changed (cc_wmemo): no store read at all. */
    if (key && serve_remembered(o, key, response)) {
      free(key);
      return CC_OK;
    }
    bool hit = false;
    cJSON *cached = NULL;
    if (key && cc_store_cache_get(w->store, o->user, o->project, key, &hit, &cached) == CC_OK &&
        hit) {
      free(key);
      st = serve_cached(o, cached, response);
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
    return fail(o, st, "canceled while waiting for an earlier operation of the project");
  bool admitted = false;
  if (is_sandbox_op(o->req->op) && o->req->op != CC_OP_EXEC) { /* exec: after a cache miss */
    if ((st = cc_wlimit_enter(w->limit, o->user)) != CC_OK) {
      cc_wqueue_leave(w->queue, &t);
      return fail(o, st, "more than %ld sandbox operations of this user in flight",
                  w->cfg->max_inflight_per_user);
    }
    admitted = true;
  }
  switch (o->req->op) {
    case CC_OP_EXEC:
      st = op_exec(o, response);
      break;
    case CC_OP_UPDATE_PROJECT:
      if ((st = cc_store_project_ensure(w->store, o->user, o->project, NULL)) != CC_OK ||
          (st = cc_store_project_patch(w->store, o->user, o->project, o->req->update_project.patch,
                                       &j)) != CC_OK) {
        if (st == CC_BAD_REQUEST || st == CC_TOO_LARGE) {
          char buf[256];
          cc_store_last_error(w->store, buf, sizeof buf);
          fail(o, st, "patch rejected: %s", buf);
        } else {
          store_fail(o, st, "project");
        }
        break;
      }
      st = respond_ok(o, j, response);
      cJSON_Delete(j);
      break;
    case CC_OP_CLEAR_CACHE: {
      int64_t g, cleared = 0;
      if ((st = cc_store_project_generation(w->store, o->user, o->project, &g)) != CC_OK ||
          (st = cc_store_cache_clear(w->store, o->user, o->project, o->req->clear_cache.cmd,
                                     &cleared)) != CC_OK) {
        store_fail(o, st, "project");
        break;
      }
      cJSON *r = cJSON_CreateObject();
      cJSON_AddNumberToObject(r, "cleared", (double)cleared);
      st = respond_ok(o, r, response);
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
  cc_wqueue_leave(w->queue, &t);
  return st;
}

cc_status cc_wops_terminal_sandbox(cc_worker *w, const char *user, const char *project,
                                   cc_e2b_sandbox *sb, bool *restored, char *why,
                                   size_t why_size) {
  *restored = false;
  cc_wqueue_ticket t = {0};
  cc_status st = cc_wqueue_enter(w->queue, user, project, NULL, &t);
  if (st != CC_OK) {
    snprintf(why, why_size, "%s", cc_status_message(st));
    return st;
  }
  op o = {.w = w, .user = user, .project = project, .t0_ms = mono_ms()};
  st = cc_store_project_ensure(w->store, user, project, NULL);
  if (st != CC_OK) store_fail(&o, st, "project");
  else st = ensure_sandbox(&o, false);
  if (st == CC_OK) {
    *sb = o.sb;
    *restored = o.restored_from_ms > 0;
  } else {
    snprintf(why, why_size, "%s", o.message);
  }
  cc_wqueue_leave(w->queue, &t);
  return st;
}

cc_status cc_wops_snapshot(cc_worker *w, const char *owner, const char *project,
                           atomic_int *cancel, char *why, size_t why_size) {
  cc_wqueue_ticket t = {0};
  /* passive: a snapshot changes nothing, so cache hits need not wait behind it */
  cc_status st = cc_wqueue_enter_passive(w->queue, owner, project, cancel, &t);
  if (st != CC_OK) {
    snprintf(why, why_size, "canceled");
    return st;
  }
  char *id = NULL;
  st = cc_store_project_sandbox(w->store, owner, project, &id);
  if (st == CC_OK && !id) st = CC_NOT_FOUND;
  cc_e2b_sandbox sb;
  if (st == CC_OK && !sbx_lookup(w, id, &sb, mono_ms())) {
    /* its descriptor is not fresh: connect (a sandbox that is gone is not snapshotted; its
     * last snapshot stays) */
    cc_e2b_error err = {0};
    st = cc_e2b_connect(w->e2b, id, (int)w->cfg->sandbox_timeout_s, &sb, &err);
    if (st == CC_OK) sbx_remember(w, &sb, mono_ms());
    else snprintf(why, why_size, "%s", err.message);
  }
  free(id);
  if (st == CC_OK) st = cc_wsnap_take(w, owner, project, &sb, why, why_size);
  cc_wqueue_leave(w->queue, &t);
  return st;
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
          .t0_ms = mono_ms()};
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
