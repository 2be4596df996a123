/*
 * cc_store_rules: the rules of the store that every back end shares (see cc_store_int.h):
 * validation, metadata patches, the ExecutionRecord and ProjectInfo JSON, per-thread failure
 * messages, options, and cc_store_open's choice of back end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_json_patch.h"
#include "cc_platform.h"
#include "cc_store_int.h"

const char CC_STORE_RECOVER_MESSAGE[] =
    "the worker stopped while this operation ran; it did not finish";

/* ------------------------------------------------------------------ failure messages */

struct cc_store_errmsg {
  cc_store_errmsg *prev, *next;
  cc_store_errs *owner;
  char text[CC_STORE_ERRMSG_MAX];
};

void cc_store_errs_init(cc_store_errs *e) {
  memset(e, 0, sizeof *e);
  pthread_mutex_init(&e->mu, NULL);
}

/* Destructor of a thread's buffer when the thread exits (handle still open). */
static void errmsg_free(void *p) {
  cc_store_errmsg *m = p;
  cc_store_errs *e = m->owner;
  pthread_mutex_lock(&e->mu);
  if (m->prev)
    m->prev->next = m->next;
  else
    e->list = m->next;
  if (m->next) m->next->prev = m->prev;
  pthread_mutex_unlock(&e->mu);
  free(m);
}

bool cc_store_errs_start(cc_store_errs *e) {
  if (pthread_key_create(&e->key, errmsg_free) != 0) return false;
  e->have_key = true;
  return true;
}

void cc_store_errs_destroy(cc_store_errs *e) {
  if (e->have_key) pthread_key_delete(e->key); /* no destructor runs after this */
  while (e->list) {
    cc_store_errmsg *m = e->list;
    e->list = m->next;
    free(m);
  }
  pthread_mutex_destroy(&e->mu);
}

/* The calling thread's buffer, created on first use; NULL without memory. */
static char *errbuf_of(cc_store_errs *e) {
  if (!e->have_key) return e->open_err;
  cc_store_errmsg *m = pthread_getspecific(e->key);
  if (!m) {
    if (!(m = calloc(1, sizeof *m))) return NULL;
    if (pthread_setspecific(e->key, m) != 0) {
      free(m);
      return NULL;
    }
    m->owner = e;
    pthread_mutex_lock(&e->mu);
    m->next = e->list;
    if (e->list) e->list->prev = m;
    e->list = m;
    pthread_mutex_unlock(&e->mu);
  }
  return m->text;
}

cc_status cc_store_fail(cc_store_errs *e, cc_status st, const char *fmt, ...) {
  char *buf = errbuf_of(e);
  if (!buf) return st; /* out of memory: the status still says what failed */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, CC_STORE_ERRMSG_MAX, fmt, ap);
  va_end(ap);
  return st;
}

void cc_store_errs_copy(cc_store_errs *e, char *buf, size_t len) {
  if (!buf || !len) return;
  char *mine = errbuf_of(e);
  snprintf(buf, len, "%s", mine ? mine : "store: out of memory");
}

/* ------------------------------------------------------------------ validation */

cc_status cc_store_check_name(cc_store_errs *e, const char *what, const char *v) {
  if (!v || !*v) return cc_store_fail(e, CC_BAD_REQUEST, "store: %s is empty", what);
  if (strlen(v) > CC_STORE_NAME_MAX)
    return cc_store_fail(e, CC_BAD_REQUEST, "store: %s is longer than %d bytes", what,
                         CC_STORE_NAME_MAX);
  return CC_OK;
}

cc_status cc_store_check_owner_project(cc_store_errs *e, const char *owner, const char *project) {
  cc_status rc = cc_store_check_name(e, "owner", owner);
  return rc ? rc : cc_store_check_name(e, "projectId", project);
}

cc_status cc_store_check_key(cc_store_errs *e, const char *key) {
  if (!key || !*key) return cc_store_fail(e, CC_BAD_REQUEST, "store: empty cache key");
  if (strlen(key) > CC_STORE_KEY_MAX)
    return cc_store_fail(e, CC_BAD_REQUEST, "store: cache key longer than %d bytes",
                         CC_STORE_KEY_MAX);
  return CC_OK;
}

cc_status cc_store_check_id(cc_store_errs *e, const char *id) {
  size_t n = id ? strlen(id) : 0;
  if (n == 0 || n > CC_STORE_ID_LEN)
    return cc_store_fail(e, CC_BAD_REQUEST, "store: record id must be 1..%d characters",
                         CC_STORE_ID_LEN);
  for (size_t i = 0; i < n; i++) {
    char c = id[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
          c == '_'))
      return cc_store_fail(e, CC_BAD_REQUEST,
                           "store: record id has a character outside [A-Za-z0-9_-]");
  }
  return CC_OK;
}

cc_status cc_store_norm_hash(cc_store_errs *e, const char *hash, char buf[CC_STORE_NAME_MAX + 1]) {
  size_t n = hash ? strlen(hash) : 0;
  if (n == 0 || n > CC_STORE_NAME_MAX)
    return cc_store_fail(e, CC_BAD_REQUEST, "store: token hash must be 1..%d hex digits",
                         CC_STORE_NAME_MAX);
  for (size_t i = 0; i < n; i++) {
    char c = hash[i];
    if (c >= 'A' && c <= 'F') c = (char)(c - 'A' + 'a');
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return cc_store_fail(e, CC_BAD_REQUEST, "store: token hash is not hex");
    buf[i] = c;
  }
  buf[n] = 0;
  return CC_OK;
}

cc_status cc_store_check_finish(cc_store_errs *e, const cc_store_options *o, const char *owner,
                                const char *id, cc_proto_record_status status,
                                const char *error_code, const char *error_message) {
  cc_status rc = cc_store_check_name(e, "owner", owner);
  if (!rc) rc = cc_store_check_id(e, id);
  if (!rc && !cc_proto_record_status_is_final(status))
    rc = cc_store_fail(e, CC_BAD_REQUEST, "store: %s is not a final status",
                       cc_proto_record_status_name(status));
  if (!rc && error_code && strlen(error_code) > CC_STORE_NAME_MAX)
    rc = cc_store_fail(e, CC_BAD_REQUEST, "store: error code too long");
  if (!rc && error_message && strlen(error_message) > o->json_max_bytes)
    rc = cc_store_fail(e, CC_TOO_LARGE, "store: error message too long");
  return rc;
}

void cc_store_finish_error(const char *code_in, const char *msg_in, const char **code,
                           const char **message) {
  *code = code_in ? code_in : (msg_in ? "internal" : NULL);
  *message = msg_in ? msg_in : (code_in ? "" : NULL);
}

cc_status cc_store_to_text(cc_store_errs *e, const char *what, const cJSON *v, size_t max,
                           char **text) {
  *text = NULL;
  if (!v) return CC_OK;
  char *t = cJSON_PrintUnformatted(v);
  if (!t) return cc_store_fail(e, CC_INTERNAL, "store: cannot serialise %s", what);
  if (strlen(t) > max) {
    cJSON_free(t);
    return cc_store_fail(e, CC_TOO_LARGE, "store: %s is larger than %zu bytes", what, max);
  }
  *text = t;
  return CC_OK;
}

/* ------------------------------------------------------------------ project metadata */

/* Keys of ProjectInfo the store owns: a patch never sets them (they are ignored and listed in
 * the answer's "ignored"), so a tenant can never point a project at a sandbox.
 * "lastExecution" is the client's when it stored one (the seed's examples do), else the
 * store's newest record; that record is always "lastRecord". */
static const char *const RESERVED_KEYS[] = {"projectId", "sandboxId", "createdAt", "updatedAt",
                                            "generation", "lastRecord", "ignored"};

cc_status cc_store_patch_split(cc_store_errs *e, const cJSON *patch, cJSON **own, cJSON **ignored) {
  *own = *ignored = NULL;
  if (!cJSON_IsObject(patch)) return cc_store_fail(e, CC_BAD_REQUEST, "patch must be a JSON object");
  cJSON *o = cJSON_Duplicate(patch, 1), *ig = cJSON_CreateArray();
  if (!o || !ig) {
    cJSON_Delete(o);
    cJSON_Delete(ig);
    return cc_store_fail(e, CC_INTERNAL, "out of memory");
  }
  for (size_t i = 0; i < sizeof RESERVED_KEYS / sizeof RESERVED_KEYS[0]; i++)
    if (cJSON_GetObjectItemCaseSensitive(o, RESERVED_KEYS[i])) {
      cJSON_DeleteItemFromObjectCaseSensitive(o, RESERVED_KEYS[i]);
      cJSON_AddItemToArray(ig, cJSON_CreateString(RESERVED_KEYS[i]));
    }
  *own = o;
  *ignored = ig;
  return CC_OK;
}

/* Checks the metadata after a patch: name string, port integer 1..65535, settings object. */
static cc_status check_metadata(cc_store_errs *e, const cJSON *meta) {
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(meta, "name");
  const cJSON *port = cJSON_GetObjectItemCaseSensitive(meta, "port");
  const cJSON *settings = cJSON_GetObjectItemCaseSensitive(meta, "settings");
  if (name && !cJSON_IsString(name)) return cc_store_fail(e, CC_BAD_REQUEST, "name must be a string");
  /* Range first: converting an out-of-range double to int is undefined behaviour. */
  if (port && (!cJSON_IsNumber(port) || !(port->valuedouble >= 1 && port->valuedouble <= 65535) ||
               port->valuedouble != (double)(int)port->valuedouble))
    return cc_store_fail(e, CC_BAD_REQUEST, "port must be an integer from 1 to 65535");
  if (settings && !cJSON_IsObject(settings))
    return cc_store_fail(e, CC_BAD_REQUEST, "settings must be an object");
  return CC_OK;
}

cc_status cc_store_patch_metadata(cc_store_errs *e, const char *stored, const cJSON *own,
                                  size_t max, char **text) {
  *text = NULL;
  cJSON *meta = stored ? cJSON_Parse(stored) : cJSON_CreateObject(), *next = NULL;
  if (!meta) return cc_store_fail(e, CC_INTERNAL, "store: corrupt JSON in database");
  cc_status rc = cc_json_patch_apply(meta, own, &next);
  if (rc)
    cc_store_fail(e, rc, "store: cannot apply the merge patch (too deep?)");
  else if (!(rc = check_metadata(e, next)))
    rc = cc_store_to_text(e, "project metadata", next, max, text);
  cJSON_Delete(meta);
  cJSON_Delete(next);
  return rc;
}

/* Replaces (or adds) obj[name] with item, which it takes; false when out of memory. */
static bool put(cJSON *obj, const char *name, cJSON *item) {
  if (!item) return false;
  cJSON_DeleteItemFromObjectCaseSensitive(obj, name);
  if (!cJSON_AddItemToObject(obj, name, item)) {
    cJSON_Delete(item);
    return false;
  }
  return true;
}

cc_status cc_store_build_info(cc_store_errs *e, const cc_store_project_row *row, cJSON **out) {
  *out = NULL;
  cJSON *meta = cJSON_Parse(row->metadata ? row->metadata : "{}");
  if (!meta) return cc_store_fail(e, CC_INTERNAL, "store: corrupt JSON in database");
  cJSON *info = cJSON_CreateObject();
  bool ok = info && cJSON_AddStringToObject(info, "projectId", row->project);
  /* Metadata keys (name, port, settings, free-form) after projectId. */
  while (ok && cJSON_IsObject(meta) && meta->child) {
    cJSON *m = cJSON_DetachItemViaPointer(meta, meta->child);
    cJSON_AddItemToObject(info, m->string, m);
  }
  if (ok && row->sandbox_id) ok = put(info, "sandboxId", cJSON_CreateString(row->sandbox_id));
  if (ok && row->last) {
    cJSON *l = cJSON_CreateObject();
    ok = l && cJSON_AddStringToObject(l, "id", row->last->id) &&
         cJSON_AddStringToObject(l, "op", row->last->op) &&
         cJSON_AddStringToObject(l, "status", row->last->status) &&
         cJSON_AddNumberToObject(l, "createdAt", (double)row->last->created_at);
    if (ok && !cJSON_GetObjectItemCaseSensitive(info, "lastExecution"))
      ok = cJSON_AddItemReferenceToObject(info, "lastExecution", l);
    if (ok)
      ok = put(info, "lastRecord", l);
    else
      cJSON_Delete(l);
  }
  if (ok) ok = put(info, "createdAt", cJSON_CreateNumber((double)row->created_at));
  if (ok) ok = put(info, "updatedAt", cJSON_CreateNumber((double)row->updated_at));
  if (ok) ok = put(info, "generation", cJSON_CreateNumber((double)row->generation));
  cJSON_Delete(meta);
  if (!ok) {
    cJSON_Delete(info);
    return cc_store_fail(e, CC_INTERNAL, "store: out of memory");
  }
  *out = info;
  return CC_OK;
}

/* ------------------------------------------------------------------ execution records */

cc_status cc_store_record_text(cc_store_errs *e, const cJSON *result,
                               const cc_store_record_fields *f, char **out) {
  *out = NULL;
  cJSON *own = cJSON_CreateObject(), *rest = cJSON_CreateObject();
  char *a = NULL, *b = NULL;
  bool ok = own && rest && cJSON_AddStringToObject(own, "id", f->id) &&
            cJSON_AddStringToObject(own, "projectId", f->project) &&
            cJSON_AddStringToObject(own, "op", f->op) &&
            cJSON_AddStringToObject(own, "status", f->status);
  if (ok && f->input) ok = cJSON_AddRawToObject(own, "input", f->input) != NULL;
  if (ok && f->error_code) {
    cJSON *eo = cJSON_AddObjectToObject(own, "error");
    ok = eo && cJSON_AddStringToObject(eo, "code", f->error_code) &&
         cJSON_AddStringToObject(eo, "message", f->error_message ? f->error_message : "");
  }
  if (ok) ok = cJSON_AddNumberToObject(own, "createdAt", (double)f->created_at) != NULL;
  if (ok && f->finished_at >= 0)
    ok = cJSON_AddNumberToObject(own, "finishedAt", (double)f->finished_at) != NULL;
  /* The result's other fields, by reference (nothing is copied). */
  if (cJSON_IsObject(result))
    for (const cJSON *c = result->child; ok && c; c = c->next)
      if (c->string && !cJSON_GetObjectItemCaseSensitive(own, c->string))
        ok = cJSON_AddItemReferenceToObject(rest, c->string, (cJSON *)c);
  if (ok) ok = (a = cJSON_PrintUnformatted(rest)) && (b = cJSON_PrintUnformatted(own));
  if (ok) { /* "{A}" + "{B}" -> "{A,B}" ("{B}" when A is empty) */
    size_t la = strlen(a), lb = strlen(b);
    size_t keep = la > 2 ? la - 1 : 1; /* "{A" or "{" */
    char *t = malloc(keep + (la > 2) + lb);
    if ((ok = t != NULL)) {
      memcpy(t, a, keep);
      if (la > 2) t[keep] = ',';
      memcpy(t + keep + (la > 2), b + 1, lb); /* B's fields, "}" and the NUL */
      *out = t;
    }
  }
  cJSON_free(a);
  cJSON_free(b);
  cJSON_Delete(own);
  cJSON_Delete(rest);
  return ok ? CC_OK : cc_store_fail(e, CC_INTERNAL, "store: out of memory");
}

cc_status cc_store_record_text_from_row(cc_store_errs *e, const cc_store_record_fields *f,
                                        char **out) {
  cJSON *result = NULL;
  *out = NULL;
  if (f->result && !(result = cJSON_Parse(f->result)))
    return cc_store_fail(e, CC_INTERNAL, "store: corrupt JSON in database");
  cc_status rc = cc_store_record_text(e, result, f, out);
  cJSON_Delete(result);
  return rc;
}

cc_status cc_store_history_tree(cc_store_errs *e, cc_status rc, char *text, cJSON **items,
                                char **next) {
  *items = NULL;
  if (rc) {
    free(text);
    return rc;
  }
  *items = cJSON_Parse(text);
  free(text);
  if (*items) return CC_OK;
  if (next) {
    free(*next);
    *next = NULL;
  }
  return cc_store_fail(e, CC_INTERNAL, "store: corrupt JSON in database");
}

/* ------------------------------------------------------------------ small things */

bool cc_store_textbuf_put(cc_store_textbuf *b, const char *t, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return false;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, t, n);
  b->len += n;
  b->p[b->len] = 0;
  return true;
}

char *cc_store_dup(const char *v) {
  if (!v) return NULL;
  size_t n = strlen(v) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, v, n);
  return d;
}

int64_t cc_store_now(const cc_store_options *o) {
  return o->now_ms ? o->now_ms(o->clock_ctx) : cc_platform_now_ms();
}

void cc_store_options_init(cc_store_options *o) {
  memset(o, 0, sizeof *o);
  o->cache_ttl_ms = CC_STORE_DEFAULT_CACHE_TTL_MS;
  o->history_keep = CC_STORE_DEFAULT_HISTORY_KEEP;
  o->cache_entries_per_project = CC_STORE_DEFAULT_CACHE_ENTRIES;
  o->projects_per_owner = CC_STORE_DEFAULT_PROJECTS;
  o->json_max_bytes = CC_STORE_DEFAULT_JSON_MAX;
  o->metadata_max_bytes = CC_STORE_DEFAULT_METADATA_MAX;
  o->busy_timeout_ms = CC_STORE_DEFAULT_BUSY_TIMEOUT_MS;
}

bool cc_store_options_normalise(cc_store_options *o) {
  cc_store_options d;
  cc_store_options_init(&d);
  if (o->cache_ttl_ms < 0 || o->history_keep < 0 || o->cache_entries_per_project < 0 ||
      o->projects_per_owner < 0 || o->busy_timeout_ms < 0)
    return false;
  if (!o->cache_ttl_ms) o->cache_ttl_ms = d.cache_ttl_ms;
  if (!o->history_keep) o->history_keep = d.history_keep;
  if (!o->cache_entries_per_project) o->cache_entries_per_project = d.cache_entries_per_project;
  if (!o->projects_per_owner) o->projects_per_owner = d.projects_per_owner;
  if (!o->json_max_bytes) o->json_max_bytes = d.json_max_bytes;
  if (!o->metadata_max_bytes) o->metadata_max_bytes = d.metadata_max_bytes;
  if (!o->busy_timeout_ms) o->busy_timeout_ms = d.busy_timeout_ms;
  return true;
}

cc_status cc_store_new_id(char out[CC_STORE_ID_LEN + 1]) {
  unsigned char raw[CC_STORE_ID_LEN / 2];
  static const char hex[] = "0123456789abcdef";
  out[0] = 0;
  if (cc_platform_random(raw, sizeof raw) != CC_OK) return CC_INTERNAL;
  for (size_t i = 0; i < sizeof raw; i++) {
    out[2 * i] = hex[raw[i] >> 4];
    out[2 * i + 1] = hex[raw[i] & 15];
  }
  out[CC_STORE_ID_LEN] = 0;
  return CC_OK;
}

bool cc_store_is_postgresql(const char *where) {
  return where && (strncmp(where, "postgresql://", 13) == 0 || strncmp(where, "postgres://", 11) == 0);
}

void cc_store_display_name(const char *where, char *buf, size_t len) {
  if (!buf || !len) return;
  buf[0] = 0;
  if (!where) return;
  size_t o = 0;
  const char *p = where;
  const char *scheme = cc_store_is_postgresql(where) ? strstr(where, "://") : NULL;
  const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
  const char *slash = scheme ? strchr(scheme + 3, '/') : NULL;
  if (at && slash && slash < at) at = NULL; /* an '@' in the path is not userinfo */
  while (*p && o + 1 < len) {
    if (at && p > scheme + 2 && p < at && *p == ':') { /* user:PASSWORD@ */
      const char *mask = ":***";
      for (; *mask && o + 1 < len; mask++) buf[o++] = *mask;
      p = at;
      continue;
    }
    if (scheme && strncmp(p, "password=", 9) == 0 && (p[-1] == '?' || p[-1] == '&')) {
      const char *mask = "password=***";
      for (; *mask && o + 1 < len; mask++) buf[o++] = *mask;
      p += 9;
      while (*p && *p != '&') p++;
      continue;
    }
    buf[o++] = *p++;
  }
  buf[o] = 0;
}

cc_status cc_store_open(const cc_store_options *opts, cc_store **out, char *errbuf, size_t errlen) {
  if (opts && cc_store_is_postgresql(opts->path)) {
#ifdef CC_STORE_HAVE_PG
    return cc_store_pg_open(opts, out, errbuf, errlen);
#else
    *out = NULL;
    if (errbuf) snprintf(errbuf, errlen, "store: this build has no PostgreSQL back end");
    return CC_BAD_REQUEST;
#endif
  }
  return cc_store_sqlite_open(opts, out, errbuf, errlen);
}

void cc_store_close(cc_store *s) {
  if (!s) return;
  s->ops->close(s->ctx);
  free(s);
}
