/*
 * cc_sbd_net: a sandbox's network settings in codecanvas-sandboxd: installing its egress rules
 * in the runtime (at start, at a cold resume, and for PUT /sandboxes/{id}/network, the SDK's
 * updateNetwork), showing them in GET /sandboxes/{id}, and the traffic access token that port
 * URLs need when the sandbox was created with network.allowPublicTraffic: false.
 *
 * What a configuration means and what is refused is cc_sbd_netcfg.c; how the runtime enforces
 * it is native/sandbox/cc_sbx_egress.c (docs/sandboxd.md, "Egress rules").
 */
#include "cc_sbd_net.h"

#include <stdio.h>
#include <string.h>

#include "cc_sbx.h"

cc_status cc_sbd_net_apply(cc_sbd_sandbox *sb, bool always, char *msg, size_t msg_size) {
  if (!sb->sbx || (!always && !cc_sbd_netcfg_has_rules(&sb->net))) return CC_OK;
  cc_sbx_egress rules = cc_sbd_netcfg_rules(&sb->net);
  cc_sbx_err err = {0};
  cc_status st = cc_sbx_set_egress(sb->sbx, &rules, &err);
  if (st != CC_OK) snprintf(msg, msg_size, "%s", err.msg[0] ? err.msg : cc_status_message(st));
  return st;
}

void cc_sbd_net_add_json(cJSON *o, cc_sbd_sandbox *sb) {
  pthread_mutex_lock(&sb->srv->mu);
  if (sb->net.info) cJSON_AddItemToObject(o, "network", cJSON_Duplicate(sb->net.info, 1));
  pthread_mutex_unlock(&sb->srv->mu);
}

bool cc_sbd_net_host_for(cc_sbd_sandbox *sb, int port, char *out, size_t cap) {
  pthread_mutex_lock(&sb->srv->mu);
  bool masked = cc_sbd_netcfg_host_for(&sb->net, port, out, cap);
  pthread_mutex_unlock(&sb->srv->mu);
  return masked;
}

bool cc_sbd_net_traffic_allowed(const cc_sbd_sandbox *sb, const char *token) {
  if (!sb->traffic_token[0]) return true;
  if (!token) return false;
  /* constant time in the token's length */
  size_t n = strlen(sb->traffic_token), m = strlen(token);
  unsigned char d = (unsigned char)(n != m);
  for (size_t i = 0; i < n; i++) d |= (unsigned char)(sb->traffic_token[i] ^ token[i < m ? i : 0]);
  return d == 0;
}

enum MHD_Result cc_sbd_net_handle_update(cc_sbd_req *r, cc_sbd_sandbox *sb) {
  if (strcmp(r->method, "PUT") != 0)
    return cc_sbd_respond_error(r->conn, 405, "method %s not allowed", r->method);
  cJSON *body = r->body && r->len ? cJSON_ParseWithLength(r->body, r->len) : cJSON_CreateObject();
  if (!cJSON_IsObject(body)) {
    cJSON_Delete(body);
    return cc_sbd_respond_error(r->conn, 400, "request body must be a JSON object");
  }
  char msg[512] = "";
  cc_sbd_netcfg next;
  unsigned status = cc_sbd_netcfg_parse(CC_SBD_NETCFG_UPDATE, body, NULL, &next, msg, sizeof msg);
  cJSON_Delete(body);
  if (status) return cc_sbd_respond_error(r->conn, status, "%s", msg);
  if (next.n_domains && !r->srv->domain_rules) {
    cc_sbd_netcfg_cleanup(&next);
    return cc_sbd_respond_error(r->conn, 501, "%s", CC_SBD_NO_DOMAIN_RULES);
  }

  pthread_mutex_lock(&sb->life_mu);
  cc_status st = CC_OK;
  pthread_mutex_lock(&r->srv->mu);
  bool alive = sb->alive;
  pthread_mutex_unlock(&r->srv->mu);
  if (!alive) {
    st = CC_NOT_FOUND;
  } else if (!sb->internet && !cc_sbd_netcfg_denies_all(&next)) {
    /* no network helper was attached at create; a running sandbox cannot be given one */
    st = CC_CONFLICT;
    snprintf(msg, sizeof msg,
             "sandbox %s was created with allowInternetAccess: false and has no egress path; "
             "sandboxd cannot add one to a running sandbox (create it with "
             "allowInternetAccess: true and network.denyOut: ['0.0.0.0/0'] instead)",
             sb->id);
  } else {
    /* public traffic and the host mask belong to create, not to an update of the egress
     * rules: they stay */
    next.public_traffic = sb->net.public_traffic;
    static const char *const kept[] = {"allowPublicTraffic", "maskRequestHost"};
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
      const cJSON *v = cJSON_GetObjectItemCaseSensitive(sb->net.info, kept[i]);
      if (v) cJSON_AddItemToObject(next.info, kept[i], cJSON_Duplicate(v, 1));
    }
    /* a paused sandbox without its memory has no runtime: its rules apply at resume */
    if (sb->sbx) {
      cc_sbx_egress rules = cc_sbd_netcfg_rules(&next);
      cc_sbx_err err = {0};
      st = cc_sbx_set_egress(sb->sbx, &rules, &err);
      if (st != CC_OK) snprintf(msg, sizeof msg, "could not apply the network rules: %s", err.msg);
    }
  }
  if (st == CC_OK) {
    pthread_mutex_lock(&r->srv->mu);
    cc_sbd_netcfg old = sb->net;
    sb->net = next;
    sb->inet_access = next.allow_internet;
    bool paused = sb->state == CC_SBD_PAUSED;
    pthread_mutex_unlock(&r->srv->mu);
    cc_sbd_netcfg_cleanup(&old);
    /* a paused sandbox's descriptor on disk must carry them too, or a restart before its
     * resume would bring back the previous rules */
    char dmsg[400] = "";
    if (paused && cc_sbd_save_descriptor(r->srv, sb, dmsg, sizeof dmsg) != CC_OK) {
      st = CC_INTERNAL;
      snprintf(msg, sizeof msg,
               "the new rules are in force, but could not be saved for a "
               "restart of sandboxd: %s",
               dmsg);
    }
  } else {
    cc_sbd_netcfg_cleanup(&next);
  }
  pthread_mutex_unlock(&sb->life_mu);
  switch (st) {
    case CC_OK:
      return cc_sbd_respond_empty(r->conn, 204);
    case CC_NOT_FOUND:
      return cc_sbd_respond_error(r->conn, 404,
                                  "Sandbox \"%s\" doesn't exist or you don't have "
                                  "access to it",
                                  sb->id);
    case CC_CONFLICT:
      return cc_sbd_respond_error(r->conn, 409, "%s", msg);
    case CC_SANDBOX_UNAVAILABLE:
      return cc_sbd_respond_error(r->conn, 409, "%s", msg);
    default:
      return cc_sbd_respond_error(r->conn, 500, "%s", msg);
  }
}
