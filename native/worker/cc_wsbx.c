/*
 * cc_wsbx: the sandbox of a project, for codecanvas-worker's operations (DESIGN §4, §5).
 *
 * The sandbox of a project is created on first use and its id kept in the project; a
 * descriptor (envd token, domain) is cached in memory and refreshed through `connect`
 * (which also extends the sandbox's life).  When E2B says the sandbox is gone, a new one is
 * created (the generation is bumped by the store) with the project's files restored from
 * its snapshot (cc_wsnap).  Also here: getProject's live sandbox facts, the sandbox of a
 * terminal (cc_wterm) and taking a snapshot in the project's queue (cc_wsnap's thread).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_wops_int.h"
#include "cc_wsnap.h"

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

void cc_wsbx_forget(cc_worker *w, const char *id) {
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
static bool sbx_peek(cc_worker *w, const char *id, cc_e2b_sandbox *out, sbx_origin *origin,
                     int64_t *refreshed_ms) {
  bool found = false;
  pthread_mutex_lock(&w->sbx_mu);
  for (size_t i = 0; i < w->sbx->count && !found; i++)
    if (strcmp(w->sbx->items[i].sb.id, id) == 0) {
      *out = w->sbx->items[i].sb;
      *origin = w->sbx->items[i].origin;
      *refreshed_ms = w->sbx->items[i].refreshed_ms;
      found = true;
    }
  pthread_mutex_unlock(&w->sbx_mu);
  return found;
}

/* ------------------------------------------------------------------ sandbox access */

/* Makes o->sb the project's live sandbox: the cached descriptor, a connect to the stored
 * id, or a new sandbox (then the store bumps the generation).  `force_new` skips the
 * stored id (it was found gone). */
cc_status cc_wsbx_ensure(op *o, bool force_new) {
  cc_worker *w = o->w;
  cc_e2b_error err = {0};
  int64_t now = cc_wops_mono_ms();
  char *id = NULL;
  cc_status st = cc_store_project_sandbox(w->store, o->user, o->project, &id);
  if (st != CC_OK) return cc_wops_store_fail(o, st, "project");
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
      return cc_wops_fail_e2b(o, st, &err, "connecting to the sandbox");
    }
  }
  if (id) cc_wsbx_forget(w, id);
  free(id);
  cc_e2b_kv meta[2] = {{"codecanvasUser", o->user}, {"codecanvasProject", o->project}};
  cc_e2b_create_opts co = {.metadata = meta, .metadata_count = 2};
  memset(&err, 0, sizeof err);
  st = cc_e2b_create(w->e2b, &co, &o->sb, &err);
  if (st != CC_OK) return cc_wops_fail_e2b(o, st, &err, "creating a sandbox");
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
    return cc_wops_fail(o, st == CC_TOO_LARGE ? CC_UPSTREAM_ERROR : st,
                        "restoring the project's files into a new sandbox: %s", why);
  }
  if (had) {
    atomic_fetch_add(&w->metrics.sandboxes_recreated, 1);
    o->sandbox_recreated = true;
  }
  st = cc_store_project_set_sandbox(w->store, o->user, o->project, o->sb.id, NULL);
  if (st != CC_OK) {
    cc_e2b_kill(w->e2b, o->sb.id, &err);
    return cc_wops_store_fail(o, st, "project");
  }
  sbx_remember_as(w, &o->sb, now, o->restored_from_ms > 0 ? ORIGIN_RESTORED : ORIGIN_NEW,
                  o->restored_from_ms);
  o->have_sb = true;
  return CC_OK;
}

/* The sandbox was reported gone (or unreachable) by an operation: forget its descriptor and
 * connect again, which resumes a sandbox E2B paused; only one that no longer exists is
 * replaced by a new one (with the project's files restored). */
cc_status cc_wsbx_renew(op *o) {
  cc_wsbx_forget(o->w, o->sb.id);
  o->have_sb = false;
  return cc_wsbx_ensure(o, false);
}

/* ------------------------------------------------------------------ getProject */

/* getProject's live facts, never stored:
 *   sandbox: {id, state, internet?, internetReason?}: state "paused" (E2B paused it at its
 *     timeout; the next operation resumes it), "restored" (this worker made it and put the
 *     project's files back from its snapshot), "new" (this worker made it; nothing to
 *     restore), else "running"; internet as the sandbox server reports it;
 *   snapshot: {takenAt?, bytes?, partial?, excluded?, pending}: the project's stored copy of
 *     its files; pending: files changed since and the next copy is not stored yet.
 * A gone sandbox adds no "sandbox" (the next operation makes a new one). */
void cc_wsbx_add_facts(op *o, cJSON *project) {
  cc_wsnap_meta m;
  bool stored = cc_wsnap_info(o->w, o->user, o->project, &m) == CC_OK;
  bool pending = cc_wsnap_pending(o->w, o->user, o->project);
  cJSON *sn = stored || pending ? cJSON_AddObjectToObject(project, "snapshot") : NULL;
  if (stored) {
    cJSON_AddNumberToObject(sn, "takenAt", (double)m.taken_ms);
    cJSON_AddNumberToObject(sn, "bytes", (double)m.bytes);
    cJSON_AddBoolToObject(sn, "partial", m.partial);
    cJSON *ex = m.partial && m.excluded_json ? cJSON_Parse(m.excluded_json) : NULL;
    if (ex) cJSON_AddItemToObject(sn, "excluded", ex);
    cc_wsnap_meta_free(&m);
  }
  if (sn) cJSON_AddBoolToObject(sn, "pending", pending);
  const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(project, "sandboxId"));
  if (!id) return;
  cc_e2b_sandbox sb;
  sbx_origin origin = ORIGIN_CONNECTED;
  int64_t refreshed = 0;
  bool known = sbx_peek(o->w, id, &sb, &origin, &refreshed);
  /* Connected less than its timeout ago (and within the refresh window): it cannot have
   * been paused at its timeout yet, so no request to E2B; else ask. */
  int64_t window = o->w->cfg->sandbox_timeout_s * 1000;
  if (window > SBX_REFRESH_MS) window = SBX_REFRESH_MS;
  cc_e2b_info info = {.internet = -1};
  if (!known || cc_wops_mono_ms() - refreshed >= window) {
    cc_e2b_error err = {0};
    if (cc_e2b_get_info(o->w->e2b, id, &info, &err) != CC_OK) return;
  }
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

/* ------------------------------------------------------------------ terminal, snapshots */

cc_status cc_wops_terminal_sandbox(cc_worker *w, const char *user, const char *project,
                                   cc_e2b_sandbox *sb, bool *restored, char *why, size_t why_size) {
  *restored = false;
  cc_wqueue_ticket t = {0};
  cc_status st = cc_wqueue_enter(w->queue, user, project, NULL, &t);
  if (st != CC_OK) {
    snprintf(why, why_size, "%s", cc_status_message(st));
    return st;
  }
  op o = {.w = w, .user = user, .project = project, .t0_ms = cc_wops_mono_ms()};
  st = cc_store_project_ensure(w->store, user, project, NULL);
  if (st != CC_OK)
    cc_wops_store_fail(&o, st, "project");
  else
    st = cc_wsbx_ensure(&o, false);
  if (st == CC_OK) {
    *sb = o.sb;
    *restored = o.restored_from_ms > 0;
  } else {
    snprintf(why, why_size, "%s", o.message);
  }
  cc_wqueue_leave(w->queue, &t);
  return st;
}

cc_status cc_wops_snapshot(cc_worker *w, const char *owner, const char *project, atomic_int *cancel,
                           char *why, size_t why_size) {
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
  if (st == CC_OK && !sbx_lookup(w, id, &sb, cc_wops_mono_ms())) {
    /* its descriptor is not fresh: connect (a sandbox that is gone is not snapshotted; its
     * last snapshot stays) */
    cc_e2b_error err = {0};
    st = cc_e2b_connect(w->e2b, id, (int)w->cfg->sandbox_timeout_s, &sb, &err);
    if (st == CC_OK)
      sbx_remember(w, &sb, cc_wops_mono_ms());
    else snprintf(why, why_size, "%s", err.message);
  }
  free(id);
  if (st == CC_OK) st = cc_wsnap_take(w, owner, project, &sb, why, why_size);
  cc_wqueue_leave(w->queue, &t);
  return st;
}
