/* libFuzzer target: codecanvas-sandboxd's network configuration checker (cc_sbd_netcfg, the
 * `network` object of a create and the body of PUT /sandboxes/{id}/network) and the sandbox
 * runtime's address parser (cc_sbx_cidr_parse), whose output is printed into nft scripts.
 * First byte: 0 = create, 1 = update, else the rest is one raw rule string.  Promises checked:
 * an accepted configuration's every rule is a valid block whose canonical text parses back to
 * the same block, an allowed domain is lower-case name characters (a "*." only in front),
 * a refusal is 400/501 (or 500 for memory) with a message and nothing held,
 * and the canonical text of a block has only address characters (nothing nft could read as
 * syntax). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cc_sbd_netcfg.h"

static void check_block(const cc_sbx_cidr *c) {
  if ((c->family != 4 && c->family != 6) || c->prefix > (c->family == 4 ? 32 : 128)) abort();
  char t[CC_SBX_CIDR_TEXT];
  cc_sbx_cidr_format(c, t);
  if (strspn(t, "0123456789abcdef.:/") != strlen(t)) abort();
  cc_sbx_cidr back;
  if (!cc_sbx_cidr_parse(t, &back) || memcmp(&back, c, sizeof back) != 0) abort();
}

/* An allowed domain: lower-case letters, digits, '-' and '.', with "*." only in front. */
static void check_domain(const char *d) {
  if (strncmp(d, "*.", 2) == 0) d += 2;
  if (!d[0] || strspn(d, "abcdefghijklmnopqrstuvwxyz0123456789-.") != strlen(d)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  if (data[0] > 1) {
    char *s = malloc(size);
    if (!s) return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = 0;
    cc_sbx_cidr c;
    if (cc_sbx_cidr_parse(s, &c)) check_block(&c);
    free(s);
    return 0;
  }
  cJSON *j = cJSON_ParseWithLength((const char *)data + 1, size - 1);
  cc_sbd_netcfg cfg;
  char msg[512] = "";
  cc_sbd_netcfg_kind kind = data[0] == 0 ? CC_SBD_NETCFG_CREATE : CC_SBD_NETCFG_UPDATE;
  const cJSON *inet = kind == CC_SBD_NETCFG_CREATE
                          ? cJSON_GetObjectItemCaseSensitive(j, "allow_internet_access")
                          : NULL;
  unsigned st = cc_sbd_netcfg_parse(kind, j, inet, &cfg, msg, sizeof msg);
  if (st) {
    if ((st != 400 && st != 501 && st != 500) || !msg[0] || cfg.info || cfg.allow || cfg.deny ||
        cfg.domains || cfg.n_domains)
      abort();
  } else {
    for (size_t i = 0; i < cfg.n_allow; i++) check_block(&cfg.allow[i]);
    for (size_t i = 0; i < cfg.n_deny; i++) check_block(&cfg.deny[i]);
    if (cfg.n_allow > CC_SBX_EGRESS_MAX || cfg.n_deny > CC_SBX_EGRESS_MAX + 2) abort();
    for (size_t i = 0; i < cfg.n_domains; i++) check_domain(cfg.domains[i]);
    if (!cfg.allow_internet && !cc_sbd_netcfg_denies_all(&cfg) && !cfg.n_allow && !cfg.n_domains)
      abort();
    cc_sbd_netcfg_cleanup(&cfg);
  }
  cJSON_Delete(j);
  return 0;
}
