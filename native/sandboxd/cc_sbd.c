/*
 * cc_sbd: configuration defaults, the sandbox registry and the reaper thread that enforces
 * sandbox timeouts (see cc_sbd.h).
 */
#include "cc_sbd.h"
#include "cc_sbd_net.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "cc_sbx.h"

void cc_sbd_config_defaults(cc_sbd_config *c) {
  memset(c, 0, sizeof *c);
  c->listen_port = -1;
  c->memory_mb = 512;
  c->pids = 256;
  c->cpu_percent = 100;
  c->disk_mb = 1024;
  c->cpu_count = 1;
  c->default_timeout_s = 15;
  c->max_timeout_s = 24 * 3600;
  c->max_sandboxes = 64;
  c->max_procs_per_sandbox = 64;
  c->max_body = 8u << 20;
  c->max_upload = 256u << 20;
  c->max_connections = 512;
  c->internet = true;
}

static void free_strv(char **v, size_t n) {
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

void cc_sbd_config_cleanup(cc_sbd_config *c) {
  free(c->listen_host);
  free(c->domain_name);
  free(c->tls_cert);
  free(c->tls_key);
  free(c->tls_ca_dir);
  free(c->state_dir);
  free_strv(c->api_keys, c->n_api_keys);
  free_strv(c->templates, c->n_templates);
  memset(c, 0, sizeof *c);
}

int64_t cc_sbd_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

cc_status cc_sbd_random(char *buf, size_t n, const char *alphabet) {
  size_t alen = strlen(alphabet);
  unsigned char r[256];
  if (n == 0) return CC_OK;
  size_t want = n - 1;
  size_t done = 0;
  while (done < want) {
    size_t chunk = want - done < sizeof r ? want - done : sizeof r;
    ssize_t got = getrandom(r, chunk, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return CC_INTERNAL;
    }
    for (ssize_t i = 0; i < got; i++) {
      /* rejection sampling keeps the distribution uniform */
      if (r[i] >= 256 - (256 % alen)) continue;
      buf[done++] = alphabet[r[i] % alen];
      if (done == want) break;
    }
  }
  buf[want] = 0;
  return CC_OK;
}

void cc_sbd_ref(cc_sbd_sandbox *sb) {
  pthread_mutex_lock(&sb->srv->mu);
  sb->refs++;
  pthread_mutex_unlock(&sb->srv->mu);
}

/* The sandbox's envVars as runtime pairs (borrowed from sb->env_vars); NULL when out of
 * memory. */
static cc_sbx_env *env_pairs(const cc_sbd_sandbox *sb, size_t *n_out) {
  size_t n = (size_t)cJSON_GetArraySize(sb->env_vars);
  cc_sbx_env *envs = calloc(n ? n : 1, sizeof *envs);
  if (!envs) return NULL;
  size_t i = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, sb->env_vars) {
    envs[i].name = it->string;
    envs[i].value = it->valuestring;
    i++;
  }
  *n_out = n;
  return envs;
}

/* Starts the sandbox's runtime instance (bubblewrap + agent). */
cc_status cc_sbd_runtime_start(cc_sbd_sandbox *sb, char *msg, size_t msg_size) {
  size_t n = 0;
  cc_sbx_env *envs = env_pairs(sb, &n);
  if (!envs) return CC_INTERNAL;
  const cc_sbd_config *c = &sb->srv->cfg;
  cc_sbx_create_opts o = {
    .id = sb->id,
    .template_id = sb->template_id,
    .envs = envs,
    .n_envs = n,
    .allow_internet = sb->internet && c->internet,
    .limits = {
      .memory_bytes = (uint64_t)c->memory_mb << 20,
      .pids_max = (uint32_t)c->pids,
      .cpu_millis = (uint32_t)(c->cpu_percent * 10),
      .home_bytes = (uint64_t)c->disk_mb << 20,
    },
    .resume_disk = sb->disk_kept,
  };
  cc_sbx_err err = {0};
  cc_status st = cc_sbx_create(sb->srv->rt, &o, (cc_sbx **)&sb->sbx, &err);
  free(envs);
  if (st != CC_OK) {
    snprintf(msg, msg_size, "%s", err.msg[0] ? err.msg : cc_status_message(st));
    return st;
  }
  sb->disk_kept = false;
  /* its egress rules hold before anyone can run a command in it */
  st = cc_sbd_net_apply(sb, false, msg, msg_size);
  if (st != CC_OK) {
    cc_sbd_runtime_stop(sb, o.resume_disk); /* a resumed sandbox keeps its disk for a retry */
    st = CC_SANDBOX_UNAVAILABLE;
  }
  return st;
}

/* Ends every process of the sandbox and drops its runtime (under life_mu, or before the
 * sandbox is shared); keep_disk: its disk (a writable system's layer, /root, home) stays for
 * the next start (a pause without memory). */
void cc_sbd_runtime_stop(cc_sbd_sandbox *sb, bool keep_disk) {
  if (!sb->sbx) return;
  if (keep_disk) {
    cc_sbx_kill_keep_disk(sb->srv->rt, sb->id);
    sb->disk_kept = cc_sbx_disk_kept(sb->srv->rt, sb->id);
  } else {
    cc_sbx_kill(sb->srv->rt, sb->id);
  }
  cc_sbx_release(sb->sbx);
  sb->sbx = NULL;
}

void cc_sbd_sandbox_free(cc_sbd_sandbox *sb) {
  if (sb->sbx) cc_sbx_release(sb->sbx);
  cJSON_Delete(sb->metadata);
  cJSON_Delete(sb->env_vars);
  cc_sbd_netcfg_cleanup(&sb->net);
  pthread_mutex_destroy(&sb->life_mu);
  free(sb);
}

void cc_sbd_unref(cc_sbd_sandbox *sb) {
  if (!sb) return;
  pthread_mutex_lock(&sb->srv->mu);
  int left = --sb->refs;
  pthread_mutex_unlock(&sb->srv->mu);
  if (left == 0) cc_sbd_sandbox_free(sb);
}

/* Removes sb from the registry; caller holds srv->mu.  Returns whether it was there. */
static bool unlink_locked(cc_sbd_server *srv, cc_sbd_sandbox *sb) {
  for (size_t i = 0; i < srv->n_boxes; i++) {
    if (srv->boxes[i] == sb) {
      memmove(srv->boxes + i, srv->boxes + i + 1, (srv->n_boxes - i - 1) * sizeof *srv->boxes);
      srv->n_boxes--;
      sb->alive = false;
      if (sb->token[0]) {
        size_t g = srv->gone_next++ % (sizeof srv->gone / sizeof srv->gone[0]);
        memcpy(srv->gone[g].token, sb->token, sizeof sb->token);
        memcpy(srv->gone[g].id, sb->id, sizeof sb->id);
      }
      return true;
    }
  }
  return false;
}

/* cc_sbd_kill; shutdown: a paused sandbox keeps its files (the next start lists it again). */
static cc_status kill_sandbox(cc_sbd_server *srv, cc_sbd_sandbox *sb, bool shutdown) {
  pthread_mutex_lock(&sb->life_mu);
  pthread_mutex_lock(&srv->mu);
  bool was = unlink_locked(srv, sb);
  if (was && !sb->sbx && srv->n_cold) srv->n_cold--;
  bool keep_files = shutdown && sb->state == CC_SBD_PAUSED;
  pthread_mutex_unlock(&srv->mu);
  if (was) {
    /* end every process and stream now; memory goes with the last reference */
    cc_sbd_runtime_stop(sb, keep_files);
    if (!keep_files) cc_sbd_retire_paused(srv, sb->id);
    if (!keep_files) cc_sbx_disk_drop(srv->rt, sb->id);
  }
  pthread_mutex_unlock(&sb->life_mu);
  if (!was) return CC_NOT_FOUND;
  cc_sbd_unref(sb); /* the registry's reference */
  return CC_OK;
}

cc_status cc_sbd_kill(cc_sbd_server *srv, cc_sbd_sandbox *sb) {
  return kill_sandbox(srv, sb, false);
}

static cc_sbd_sandbox *sandbox_new(cc_sbd_server *srv) {
  cc_sbd_sandbox *sb = calloc(1, sizeof *sb);
  if (!sb) return NULL;
  sb->srv = srv;
  sb->inet_access = true;
  sb->net.allow_internet = sb->net.public_traffic = true; /* no network settings */
  pthread_mutex_init(&sb->life_mu, NULL);
  return sb;
}

/* Adds sb to the registry (caller holds srv->mu).  false when out of memory. */
static bool insert_locked(cc_sbd_server *srv, cc_sbd_sandbox *sb) {
  if (srv->n_boxes == srv->cap_boxes) {
    size_t nc = srv->cap_boxes ? srv->cap_boxes * 2 : 16;
    cc_sbd_sandbox **nb = realloc(srv->boxes, nc * sizeof *nb);
    if (!nb) return false;
    srv->boxes = nb;
    srv->cap_boxes = nc;
  }
  sb->alive = true;
  srv->boxes[srv->n_boxes++] = sb;
  return true;
}

cc_status cc_sbd_register_cold(cc_sbd_server *srv, cc_sbd_sandbox *sb) {
  pthread_mutex_lock(&srv->mu);
  sb->seq = ++srv->next_seq;
  bool ok = insert_locked(srv, sb);
  if (ok) {
    srv->n_cold++;
    sb->refs = 1; /* the registry's */
  }
  pthread_mutex_unlock(&srv->mu);
  return ok ? CC_OK : CC_INTERNAL;
}

cc_sbd_sandbox *cc_sbd_sandbox_alloc(cc_sbd_server *srv) {
  return sandbox_new(srv);
}

cc_status cc_sbd_create(cc_sbd_server *srv, const cc_sbd_create_opts *o, cc_sbd_sandbox **out,
                        char *msg, size_t msg_size) {
  *out = NULL;
  cc_sbd_sandbox *sb = sandbox_new(srv);
  if (!sb) return CC_INTERNAL;
  sb->metadata = o->metadata ? cJSON_Duplicate(o->metadata, 1) : cJSON_CreateObject();
  sb->env_vars = o->env_vars ? cJSON_Duplicate(o->env_vars, 1) : cJSON_CreateObject();
  snprintf(sb->template_id, sizeof sb->template_id, "%s", o->template_id);
  sb->internet = o->internet;
  sb->inet_access = o->inet_access;
  if (o->net) {
    sb->net = *o->net;
    memset(o->net, 0, sizeof *o->net);
  }
  sb->auto_pause = o->auto_pause;
  sb->auto_pause_memory = o->auto_pause_memory;
  sb->auto_resume = o->auto_resume;
  sb->timeout_s = o->timeout_s;
  sb->id[0] = 'i';
  if (!sb->metadata || !sb->env_vars ||
      cc_sbd_random(sb->id + 1, CC_SBD_ID_LEN, "abcdefghijklmnopqrstuvwxyz0123456789") != CC_OK ||
      (o->secure && cc_sbd_random(sb->token, sizeof sb->token, "0123456789abcdef") != CC_OK) ||
      (!sb->net.public_traffic &&
       cc_sbd_random(sb->traffic_token, sizeof sb->traffic_token, "0123456789abcdef") != CC_OK)) {
    cc_sbd_sandbox_free(sb);
    snprintf(msg, msg_size, "out of memory or randomness");
    return CC_INTERNAL;
  }

  /* the slot is taken before the runtime starts, so concurrent creates never exceed the
   * limit, not even for a moment */
  pthread_mutex_lock(&srv->mu);
  if (srv->stopping ||
      (long)(srv->n_boxes - srv->n_cold + srv->n_starting) >= srv->cfg.max_sandboxes) {
    pthread_mutex_unlock(&srv->mu);
    cc_sbd_sandbox_free(sb);
    snprintf(msg, msg_size, "maximum number of sandboxes (%ld) reached",
             srv->cfg.max_sandboxes);
    return CC_RATE_LIMITED;
  }
  srv->n_starting++;
  sb->seq = ++srv->next_seq;
  pthread_mutex_unlock(&srv->mu);

  /* a sandbox started ahead by the warm pool takes the place of a bwrap start */
  cc_sbd_sandbox *pooled = cc_sbd_pool_take(srv, o);
  cc_status st;
  if (pooled) {
    memcpy(sb->id, pooled->id, sizeof sb->id);
    if (o->secure) memcpy(sb->token, pooled->token, sizeof sb->token);
    sb->sbx = pooled->sbx;
    pooled->sbx = NULL;
    cc_sbd_sandbox_free(pooled);
    size_t n = 0;
    cc_sbx_env *envs = env_pairs(sb, &n);
    st = envs ? cc_sbx_add_envs(sb->sbx, envs, n) : CC_INTERNAL;
    free(envs);
    if (st != CC_OK) snprintf(msg, msg_size, "out of memory");
    else if ((st = cc_sbd_net_apply(sb, false, msg, msg_size)) != CC_OK)
      st = CC_SANDBOX_UNAVAILABLE;
  } else {
    st = cc_sbd_runtime_start(sb, msg, msg_size);
  }

  pthread_mutex_lock(&srv->mu);
  srv->n_starting--;
  if (st == CC_OK && srv->stopping) {
    st = CC_SANDBOX_UNAVAILABLE;
    snprintf(msg, msg_size, "sandboxd is shutting down");
  }
  if (st != CC_OK) {
    pthread_mutex_unlock(&srv->mu);
    cc_sbd_runtime_stop(sb, false);
    cc_sbd_sandbox_free(sb);
    return st == CC_SANDBOX_UNAVAILABLE || st == CC_RATE_LIMITED ? st : CC_INTERNAL;
  }
  sb->started_ms = cc_sbd_now_ms();
  sb->end_ms = sb->started_ms + (int64_t)o->timeout_s * 1000;
  if (!insert_locked(srv, sb)) {
    pthread_mutex_unlock(&srv->mu);
    cc_sbd_runtime_stop(sb, false);
    cc_sbd_sandbox_free(sb);
    snprintf(msg, msg_size, "out of memory");
    return CC_INTERNAL;
  }
  sb->refs = 2; /* registry + caller */
  pthread_cond_signal(&srv->reaper_cv);
  pthread_mutex_unlock(&srv->mu);
  *out = sb;
  return CC_OK;
}

cc_sbd_sandbox *cc_sbd_find(cc_sbd_server *srv, const char *id) {
  cc_sbd_sandbox *found = NULL;
  pthread_mutex_lock(&srv->mu);
  for (size_t i = 0; i < srv->n_boxes; i++) {
    if (strcmp(srv->boxes[i]->id, id) == 0) {
      found = srv->boxes[i];
      found->refs++;
      break;
    }
  }
  pthread_mutex_unlock(&srv->mu);
  return found;
}

/* Constant-time comparison of two NUL-terminated strings of which `b` is secret. */
static bool secret_eq(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  unsigned char diff = (unsigned char)(la != lb);
  for (size_t i = 0; i < lb; i++) diff |= (unsigned char)(a[i < la ? i : 0] ^ b[i]);
  return diff == 0;
}

cc_sbd_sandbox *cc_sbd_find_by_token(cc_sbd_server *srv, const char *token) {
  cc_sbd_sandbox *found = NULL;
  if (!token || !token[0]) return NULL;
  pthread_mutex_lock(&srv->mu);
  for (size_t i = 0; i < srv->n_boxes; i++) {
    cc_sbd_sandbox *sb = srv->boxes[i];
    if (sb->token[0] && secret_eq(token, sb->token) && !found) {
      found = sb;
      found->refs++;
    }
  }
  pthread_mutex_unlock(&srv->mu);
  return found;
}

bool cc_sbd_gone_token(cc_sbd_server *srv, const char *token, char id_out[CC_SBD_ID_LEN + 1]) {
  bool hit = false;
  if (!token || !token[0]) return false;
  pthread_mutex_lock(&srv->mu);
  for (size_t i = 0; i < sizeof srv->gone / sizeof srv->gone[0]; i++) {
    if (srv->gone[i].token[0] && secret_eq(token, srv->gone[i].token)) {
      memcpy(id_out, srv->gone[i].id, CC_SBD_ID_LEN + 1);
      hit = true;
    }
  }
  pthread_mutex_unlock(&srv->mu);
  return hit;
}

cc_sbd_sandbox *cc_sbd_find_matching(cc_sbd_server *srv,
                                     bool (*check)(const cc_sbd_sandbox *, void *), void *ctx) {
  cc_sbd_sandbox *found = NULL;
  pthread_mutex_lock(&srv->mu);
  for (size_t i = 0; i < srv->n_boxes && !found; i++) {
    if (check(srv->boxes[i], ctx)) {
      found = srv->boxes[i];
      found->refs++;
    }
  }
  pthread_mutex_unlock(&srv->mu);
  return found;
}

void cc_sbd_set_timeout(cc_sbd_server *srv, cc_sbd_sandbox *sb, long timeout_s,
                        bool extend_only) {
  int64_t end = cc_sbd_now_ms() + (int64_t)timeout_s * 1000;
  pthread_mutex_lock(&srv->mu);
  if (!extend_only || end > sb->end_ms) sb->end_ms = end;
  pthread_cond_signal(&srv->reaper_cv);
  pthread_mutex_unlock(&srv->mu);
}

cc_status cc_sbd_list(cc_sbd_server *srv, cc_sbd_sandbox ***out, size_t *n) {
  pthread_mutex_lock(&srv->mu);
  size_t cnt = srv->n_boxes;
  cc_sbd_sandbox **arr = malloc((cnt ? cnt : 1) * sizeof *arr);
  if (!arr) {
    pthread_mutex_unlock(&srv->mu);
    return CC_INTERNAL;
  }
  for (size_t i = 0; i < cnt; i++) {
    arr[i] = srv->boxes[cnt - 1 - i]; /* newest first */
    arr[i]->refs++;
  }
  pthread_mutex_unlock(&srv->mu);
  *out = arr;
  *n = cnt;
  return CC_OK;
}

/*
 * The reaper: kills sandboxes whose expiry passed, then sleeps until the next expiry (at most
 * one second, and woken early whenever an expiry changes).  Process deadlines
 * (Connect-Timeout-Ms) are enforced by the runtime.
 */
static void *reaper_main(void *arg) {
  cc_sbd_server *srv = arg;
  pthread_mutex_lock(&srv->mu);
  while (!srv->stopping) {
    int64_t now = cc_sbd_now_ms();
    int64_t next = now + 1000;
    cc_sbd_sandbox *expired = NULL;
    for (size_t i = 0; i < srv->n_boxes; i++) {
      cc_sbd_sandbox *sb = srv->boxes[i];
      if (sb->state == CC_SBD_PAUSED) continue; /* a paused sandbox's clock is stopped */
      if (sb->end_ms <= now) {
        expired = sb;
        sb->refs++;
        break;
      }
      if (sb->end_ms < next) next = sb->end_ms;
    }
    if (expired) {
      bool pause = expired->auto_pause;
      pthread_mutex_unlock(&srv->mu);
      /* lifecycle.onTimeout = pause: pause instead of killing (kill if that fails) */
      char msg[256];
      cc_status ps = pause ? cc_sbd_pause(srv, expired, expired->auto_pause_memory, true, msg,
                                          sizeof msg)
                           : CC_INTERNAL;
      if (pause && ps != CC_OK)
        fprintf(stderr, "codecanvas-sandboxd: sandbox %s: pause at timeout failed (%s); "
                        "killing it\n", expired->id, msg);
      if (ps != CC_OK) cc_sbd_kill(srv, expired);
      cc_sbd_unref(expired);
      pthread_mutex_lock(&srv->mu);
      continue;
    }
    if (next <= now) continue;
    struct timespec ts;
    ts.tv_sec = next / 1000;
    ts.tv_nsec = (next % 1000) * 1000000;
    pthread_cond_timedwait(&srv->reaper_cv, &srv->mu, &ts);
  }
  pthread_mutex_unlock(&srv->mu);
  return NULL;
}

cc_status cc_sbd_server_init(cc_sbd_server *srv) {
  pthread_mutex_init(&srv->mu, NULL);
  pthread_cond_init(&srv->reaper_cv, NULL);
  pthread_cond_init(&srv->janitor_cv, NULL);
  srv->stopping = false;
  if (pthread_create(&srv->reaper, NULL, reaper_main, srv) != 0) return CC_INTERNAL;
  return cc_sbd_janitor_start(srv);
}

void cc_sbd_server_stop(cc_sbd_server *srv) {
  pthread_mutex_lock(&srv->mu);
  if (srv->stopping) {
    pthread_mutex_unlock(&srv->mu);
    return;
  }
  srv->stopping = true;
  pthread_cond_signal(&srv->reaper_cv);
  pthread_mutex_unlock(&srv->mu);
  pthread_join(srv->reaper, NULL);
  for (;;) {
    pthread_mutex_lock(&srv->mu);
    cc_sbd_sandbox *sb = srv->n_boxes ? srv->boxes[0] : NULL;
    if (sb) sb->refs++;
    pthread_mutex_unlock(&srv->mu);
    if (!sb) break;
    kill_sandbox(srv, sb, true);
    cc_sbd_unref(sb);
  }
  cc_sbd_janitor_stop(srv);
}

void cc_sbd_server_cleanup(cc_sbd_server *srv) {
  free(srv->boxes);
  srv->boxes = NULL;
  pthread_cond_destroy(&srv->reaper_cv);
  pthread_cond_destroy(&srv->janitor_cv);
  pthread_mutex_destroy(&srv->mu);
}
