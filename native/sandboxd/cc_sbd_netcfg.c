/*
 * cc_sbd_netcfg: E2B's network configuration checked into egress rules (see cc_sbd_netcfg.h).
 */
#include "cc_sbd_netcfg.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A host name as E2B's allowOut takes them: labels of letters, digits and '-', an optional
 * leading "*." wildcard, at least one letter (so a malformed address is not taken for one). */
static bool domain_like(const char *s) {
  if (strncmp(s, "*.", 2) == 0) s += 2;
  size_t n = strlen(s), label = 0;
  bool letter = false;
  if (n == 0 || n > 253) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '.') {
      if (label == 0) return false;
      label = 0;
    } else if (isalnum(ch) || ch == '-') {
      if (++label > 63) return false;
      letter |= isalpha(ch) != 0;
    } else {
      return false;
    }
  }
  return letter && (label > 0 || n > 1);
}

/* A maskRequestHost value: it becomes a request's Host header, so visible ASCII only. */
static bool host_mask_ok(const cJSON *m) {
  if (!cJSON_IsString(m)) return false;
  size_t n = strlen(m->valuestring);
  if (n == 0 || n > CC_SBD_MASK_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)m->valuestring[i];
    if (ch <= 0x20 || ch >= 0x7f || ch == ',') return false;
  }
  return true;
}

static void drop_list(cc_sbx_cidr **v, size_t *n, char ***dom, size_t *n_dom) {
  free(*v);
  *v = NULL;
  *n = 0;
  if (!dom) return;
  for (size_t i = 0; i < *n_dom; i++) free((*dom)[i]);
  free(*dom);
  *dom = NULL;
  *n_dom = 0;
}

/* One list (allowOut / denyOut) into *v, *n (and allowOut's domain names, lower-cased, into
 * *dom, *n_dom); 0 or the HTTP status with msg. */
static unsigned parse_list(const cJSON *list, const char *where, bool deny, cc_sbx_cidr **v,
                           size_t *n, char ***dom, size_t *n_dom, char *msg, size_t cap) {
  *v = NULL;
  *n = 0;
  if (dom) *dom = NULL, *n_dom = 0;
  if (!list || cJSON_IsNull(list)) return 0;
  if (!cJSON_IsArray(list)) {
    snprintf(msg, cap, "%s must be an array of IP addresses or CIDR blocks", where);
    return 400;
  }
  int count = cJSON_GetArraySize(list);
  if (count > CC_SBX_EGRESS_MAX) {
    snprintf(msg, cap, "%s has %d entries; at most %d are accepted", where, count,
             CC_SBX_EGRESS_MAX);
    return 400;
  }
  *v = calloc((size_t)count + 1, sizeof **v);
  if (dom) *dom = calloc((size_t)count + 1, sizeof **dom);
  if (!*v || (dom && !*dom)) {
    free(*v);
    *v = NULL;
    snprintf(msg, cap, "out of memory");
    return 500;
  }
  const cJSON *it;
  cJSON_ArrayForEach(it, list) {
    const char *s = cJSON_IsString(it) ? it->valuestring : NULL;
    if (s && cc_sbx_cidr_parse(s, &(*v)[*n])) {
      (*n)++;
      continue;
    }
    if (s && dom && domain_like(s)) {
      char *d = strdup(s);
      if (!d) break;
      for (char *c = d; *c; c++) *c = (char)tolower((unsigned char)*c);
      (*dom)[(*n_dom)++] = d;
      continue;
    }
    unsigned status = 400;
    if (!s)
      snprintf(msg, cap, "%s entries must be strings", where);
    else if (domain_like(s) && deny)
      snprintf(msg, cap,
               "%s: domain names are not supported for deny rules ('%.100s'); use IP "
               "addresses or CIDR blocks",
               where, s);
    else
      snprintf(msg, cap, "invalid %s entry '%.100s': not an IP address, CIDR block or domain name",
               where, s);
    drop_list(v, n, dom, n_dom);
    return status;
  }
  if (it) { /* stopped early: out of memory */
    drop_list(v, n, dom, n_dom);
    snprintf(msg, cap, "out of memory");
    return 500;
  }
  return 0;
}

/* A field of the network object sandboxd does not enforce, as the 501 message; NULL if none. */
static const char *unsupported_field(const cJSON *it) {
  static const struct {
    const char *name, *what;
  } fields[] = {
      {"rules", "network.rules (per-domain request transforms)"},
      {"egressProxy", "network.egressProxy (a SOCKS5 proxy for egress)"},
      {"httpsPorts", "network.httpsPorts"},
  };
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    if (strcmp(it->string, fields[i].name) != 0) continue;
    /* an empty value asks for nothing */
    if (cJSON_IsNull(it) || ((cJSON_IsArray(it) || cJSON_IsObject(it)) && !it->child)) return "";
    return fields[i].what;
  }
  return NULL;
}

static bool known(const char *name, cc_sbd_netcfg_kind kind) {
  if (strcmp(name, "allowOut") == 0 || strcmp(name, "denyOut") == 0) return true;
  if (kind == CC_SBD_NETCFG_CREATE)
    return strcmp(name, "allowPublicTraffic") == 0 || strcmp(name, "maskRequestHost") == 0;
  return strcmp(name, "allow_internet_access") == 0 || strcmp(name, "allowInternetAccess") == 0;
}

unsigned cc_sbd_netcfg_parse(cc_sbd_netcfg_kind kind, const cJSON *network, const cJSON *inet,
                             cc_sbd_netcfg *out, char *msg, size_t msg_size) {
  memset(out, 0, sizeof *out);
  out->allow_internet = out->public_traffic = true;
  if (network && cJSON_IsNull(network)) network = NULL;
  if (network && !cJSON_IsObject(network)) {
    snprintf(msg, msg_size, "%s must be a JSON object",
             kind == CC_SBD_NETCFG_CREATE ? "network" : "request body");
    return 400;
  }
  const char *prefix = kind == CC_SBD_NETCFG_CREATE ? "network." : "";
  const cJSON *it;
  cJSON_ArrayForEach(it, network) {
    const char *what = unsupported_field(it);
    if (what && !what[0]) continue;
    if (what) {
      snprintf(msg, msg_size, "%s is not supported by codecanvas-sandboxd", what);
      return 501;
    }
    if (!known(it->string, kind)) {
      snprintf(msg, msg_size, "%s%.60s is not supported by codecanvas-sandboxd", prefix,
               it->string);
      return 501;
    }
  }
  if (kind == CC_SBD_NETCFG_UPDATE) {
    inet = cJSON_GetObjectItemCaseSensitive(network, "allow_internet_access");
    if (!inet) inet = cJSON_GetObjectItemCaseSensitive(network, "allowInternetAccess");
  }
  if (inet && !cJSON_IsNull(inet) && !cJSON_IsBool(inet)) {
    snprintf(msg, msg_size, "allow_internet_access must be a boolean");
    return 400;
  }
  const cJSON *pub = cJSON_GetObjectItemCaseSensitive(network, "allowPublicTraffic");
  if (pub && !cJSON_IsNull(pub) && !cJSON_IsBool(pub)) {
    snprintf(msg, msg_size, "network.allowPublicTraffic must be a boolean");
    return 400;
  }
  const cJSON *mask = cJSON_GetObjectItemCaseSensitive(network, "maskRequestHost");
  if (mask && !cJSON_IsNull(mask) && !host_mask_ok(mask)) {
    snprintf(msg, msg_size,
             "network.maskRequestHost must be a host name (1 to %d visible ASCII "
             "characters, no spaces or commas; ${PORT} stands for the port)",
             CC_SBD_MASK_MAX);
    return 400;
  }
  char where[32];
  cc_sbx_cidr *deny = NULL;
  size_t n_deny = 0;
  snprintf(where, sizeof where, "%sallowOut", prefix);
  unsigned st = parse_list(cJSON_GetObjectItemCaseSensitive(network, "allowOut"), where, false,
                           &out->allow, &out->n_allow, &out->domains, &out->n_domains, msg,
                           msg_size);
  snprintf(where, sizeof where, "%sdenyOut", prefix);
  if (st == 0)
    st = parse_list(cJSON_GetObjectItemCaseSensitive(network, "denyOut"), where, true, &deny,
                    &n_deny, NULL, NULL, msg, msg_size);
  if (st != 0) {
    cc_sbd_netcfg_cleanup(out);
    return st;
  }
  out->allow_internet = !cJSON_IsFalse(inet);
  out->public_traffic = !cJSON_IsFalse(pub);
  /* allowInternetAccess: false is denyOut 0.0.0.0/0 (E2B); ::/0 too, for completeness */
  size_t extra = out->allow_internet ? 0 : 2;
  out->deny = calloc(n_deny + extra + 1, sizeof *out->deny);
  if (out->deny) {
    if (n_deny) memcpy(out->deny, deny, n_deny * sizeof *deny);
    out->n_deny = n_deny;
    if (extra) {
      cc_sbx_cidr_parse("0.0.0.0/0", &out->deny[out->n_deny++]);
      cc_sbx_cidr_parse("::/0", &out->deny[out->n_deny++]);
    }
  }
  free(deny);
  if (network) {
    out->info = cJSON_CreateObject();
    static const char *const keep[] = {"allowOut", "denyOut", "allowPublicTraffic",
                                       "maskRequestHost"};
    for (size_t i = 0; out->info && i < sizeof keep / sizeof keep[0]; i++) {
      const cJSON *v = cJSON_GetObjectItemCaseSensitive(network, keep[i]);
      if (v && !cJSON_IsNull(v)) cJSON_AddItemToObject(out->info, keep[i], cJSON_Duplicate(v, 1));
    }
  }
  if (!out->deny || (network && !out->info)) {
    cc_sbd_netcfg_cleanup(out);
    snprintf(msg, msg_size, "out of memory");
    return 500;
  }
  return 0;
}

bool cc_sbd_netcfg_host_for(const cc_sbd_netcfg *c, int port, char *out, size_t cap) {
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(c->info, "maskRequestHost");
  if (!cJSON_IsString(m)) return false;
  size_t o = 0;
  for (const char *p = m->valuestring; *p && o + 1 < cap;) {
    if (strncmp(p, "${PORT}", 7) == 0) {
      int k = snprintf(out + o, cap - o, "%d", port);
      if (k < 0 || (size_t)k >= cap - o) break;
      o += (size_t)k;
      p += 7;
    } else {
      out[o++] = *p++;
    }
  }
  out[o] = 0;
  return true;
}

bool cc_sbd_netcfg_has_rules(const cc_sbd_netcfg *c) {
  return c->n_allow > 0 || c->n_deny > 0 || c->n_domains > 0;
}

bool cc_sbd_netcfg_denies_all(const cc_sbd_netcfg *c) {
  if (c->n_allow || c->n_domains) return false;
  for (size_t i = 0; i < c->n_deny; i++)
    if (c->deny[i].family == 4 && c->deny[i].prefix == 0) return true;
  return false;
}

cc_sbx_egress cc_sbd_netcfg_rules(const cc_sbd_netcfg *c) {
  return (cc_sbx_egress){.allow = c->allow,
                         .n_allow = c->n_allow,
                         .deny = c->deny,
                         .n_deny = c->n_deny,
                         .domains = (const char *const *)c->domains,
                         .n_domains = c->n_domains};
}

void cc_sbd_netcfg_cleanup(cc_sbd_netcfg *c) {
  cJSON_Delete(c->info);
  for (size_t i = 0; i < c->n_domains; i++) free(c->domains[i]);
  free(c->domains);
  free(c->allow);
  free(c->deny);
  memset(c, 0, sizeof *c);
}
