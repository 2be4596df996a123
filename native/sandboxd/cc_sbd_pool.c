/*
 * cc_sbd_pool: the warm pool (--warm-pool N, see cc_sbd.h).  A thread keeps N sandboxes
 * started ahead of any create: each already has its id, its access token and a running
 * runtime (bubblewrap + agent, and egress when sandboxd gives it), of the first configured
 * template.  A create that fits takes one instead of starting bubblewrap and adds its
 * envVars; the thread then starts a replacement.  Pooled sandboxes are not in the registry
 * (not listed, not counted against --max-sandboxes) until a create takes them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_sbd.h"

/* Makes one started sandbox for the pool; NULL (and a log line) on failure. */
static cc_sbd_sandbox *prestart(cc_sbd_server *srv) {
  cc_sbd_sandbox *sb = cc_sbd_sandbox_alloc(srv);
  if (!sb) return NULL;
  sb->metadata = cJSON_CreateObject();
  sb->env_vars = cJSON_CreateObject();
  snprintf(sb->template_id, sizeof sb->template_id, "%s", srv->cfg.templates[0]);
  sb->internet = srv->cfg.internet;
  sb->id[0] = 'i';
  char msg[512] = "";
  if (!sb->metadata || !sb->env_vars ||
      cc_sbd_random(sb->id + 1, CC_SBD_ID_LEN, "abcdefghijklmnopqrstuvwxyz0123456789") != CC_OK ||
      cc_sbd_random(sb->token, sizeof sb->token, "0123456789abcdef") != CC_OK ||
      cc_sbd_runtime_start(sb, msg, sizeof msg) != CC_OK) {
    fprintf(stderr, "codecanvas-sandboxd: warm pool: could not start a sandbox: %s\n",
            msg[0] ? msg : "out of memory");
    cc_sbd_runtime_stop(sb, false);
    cc_sbd_sandbox_free(sb);
    return NULL;
  }
  return sb;
}

static void *pool_main(void *arg) {
  cc_sbd_server *srv = arg;
  int failures = 0;
  pthread_mutex_lock(&srv->mu);
  while (srv->pool_running) {
    if ((long)srv->n_pool >= srv->cfg.warm_pool) {
      pthread_cond_wait(&srv->pool_cv, &srv->mu);
      continue;
    }
    pthread_mutex_unlock(&srv->mu);
    cc_sbd_sandbox *sb = prestart(srv);
    pthread_mutex_lock(&srv->mu);
    if (!sb) {
      /* do not spin on a machine that cannot start sandboxes: back off, up to 30 s */
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_sec += failures < 5 ? 1 << failures : 30;
      failures++;
      if (srv->pool_running) pthread_cond_timedwait(&srv->pool_cv, &srv->mu, &ts);
      continue;
    }
    failures = 0;
    if (!srv->pool_running) {
      pthread_mutex_unlock(&srv->mu);
      cc_sbd_runtime_stop(sb, false);
      cc_sbd_sandbox_free(sb);
      pthread_mutex_lock(&srv->mu);
      break;
    }
    srv->pool[srv->n_pool++] = sb;
  }
  pthread_mutex_unlock(&srv->mu);
  return NULL;
}

cc_status cc_sbd_pool_start(cc_sbd_server *srv) {
  if (srv->cfg.warm_pool <= 0) return CC_OK;
  srv->pool = calloc((size_t)srv->cfg.warm_pool, sizeof *srv->pool);
  if (!srv->pool) return CC_INTERNAL;
  pthread_cond_init(&srv->pool_cv, NULL);
  srv->pool_running = true;
  if (pthread_create(&srv->pool_thread, NULL, pool_main, srv) != 0) {
    srv->pool_running = false;
    return CC_INTERNAL;
  }
  return CC_OK;
}

void cc_sbd_pool_stop(cc_sbd_server *srv) {
  if (!srv->pool) return;
  pthread_mutex_lock(&srv->mu);
  bool was = srv->pool_running;
  srv->pool_running = false;
  pthread_cond_broadcast(&srv->pool_cv);
  pthread_mutex_unlock(&srv->mu);
  if (was) pthread_join(srv->pool_thread, NULL);
  for (size_t i = 0; i < srv->n_pool; i++) {
    cc_sbd_runtime_stop(srv->pool[i], false);
    cc_sbd_sandbox_free(srv->pool[i]);
  }
  srv->n_pool = 0;
  free(srv->pool);
  srv->pool = NULL;
  pthread_cond_destroy(&srv->pool_cv);
}

cc_sbd_sandbox *cc_sbd_pool_take(cc_sbd_server *srv, const cc_sbd_create_opts *o) {
  if (!srv->pool || strcmp(o->template_id, srv->cfg.templates[0]) != 0 ||
      o->internet != srv->cfg.internet)
    return NULL;
  cc_sbd_sandbox *sb = NULL;
  pthread_mutex_lock(&srv->mu);
  if (srv->n_pool) {
    sb = srv->pool[0]; /* the oldest */
    memmove(srv->pool, srv->pool + 1, --srv->n_pool * sizeof *srv->pool);
    pthread_cond_signal(&srv->pool_cv);
  }
  pthread_mutex_unlock(&srv->mu);
  return sb;
}
