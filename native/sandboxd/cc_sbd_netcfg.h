/*
 * cc_sbd_netcfg: E2B's sandbox network configuration, checked into the egress rules that
 * codecanvas-sandboxd enforces.  Two inputs: create's `network` object with its
 * `allow_internet_access`, and the body of PUT /sandboxes/{id}/network (updateNetwork).
 *
 * What is enforced (E2B's semantics): destinations in allowOut are reachable, else those in
 * denyOut are not, else everything is; allowInternetAccess: false is denyOut 0.0.0.0/0 (and
 * ::/0).  Entries are IP addresses and CIDR blocks, and in allowOut domain names
 * ("example.com", "*.example.com": every name below it), which hold for HTTP (port 80, Host
 * header) and TLS (port 443, server name) as in E2B.  Create's maskRequestHost (the Host
 * header the port proxy sends into the sandbox) and allowPublicTraffic are kept too.  Refused,
 * never ignored: `rules`, `egressProxy`, `httpsPorts` and unknown
 * fields (501, not enforced here), domain names in denyOut and malformed entries (400, as
 * E2B).
 *
 * Ownership: a cc_sbd_netcfg owns its info and rule arrays; cc_sbd_netcfg_cleanup frees them
 * (and accepts a zeroed struct).  Inputs are only read.
 */
#ifndef CC_SBD_NETCFG_H
#define CC_SBD_NETCFG_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "cc_sbx.h"

typedef struct {
  cJSON *info;         /* E2B's network info for GET /sandboxes/{id} ({allowOut?, denyOut?,
                          allowPublicTraffic?, maskRequestHost?}, as given); NULL when none
                          was given */
  bool allow_internet; /* allowInternetAccess (default true) */
  bool public_traffic; /* allowPublicTraffic (default true); false: port URLs need the
                          sandbox's traffic access token */
  cc_sbx_cidr *allow;  /* the effective rules: allowOut, and denyOut plus 0.0.0.0/0 and ::/0
                          when !allow_internet */
  cc_sbx_cidr *deny;
  size_t n_allow, n_deny;
  char **domains;      /* allowOut's domain names, lower-cased ("*.example.com" kept so) */
  size_t n_domains;
} cc_sbd_netcfg;

typedef enum {
  CC_SBD_NETCFG_CREATE, /* `network` = create's network object, `inet` = its
                           allow_internet_access (either may be NULL or JSON null) */
  CC_SBD_NETCFG_UPDATE, /* `network` = the whole PUT body ({allowOut, denyOut,
                           allow_internet_access, ...}); `inet` is ignored */
} cc_sbd_netcfg_kind;

/* Checks a network configuration into *out (zeroed first).  Returns 0 on success, else the
 * HTTP status to answer, 400 (malformed: not an object, an entry that is neither an address,
 * a CIDR block nor a domain name, a domain in denyOut, more than CC_SBX_EGRESS_MAX entries)
 * or 501 (a feature sandboxd does not enforce, named), with the message in msg; *out then
 * holds nothing to free. */
unsigned cc_sbd_netcfg_parse(cc_sbd_netcfg_kind kind, const cJSON *network, const cJSON *inet,
                             cc_sbd_netcfg *out, char *msg, size_t msg_size);

/* The 501 message where domain names cannot be enforced (an unprivileged sandboxd). */
#define CC_SBD_NO_DOMAIN_RULES                                                                 \
  "domain names in allowOut need codecanvas-sandboxd to run as root (it runs a filtering "     \
  "proxy in each sandbox's network namespace); use IP addresses or CIDR blocks, or see "       \
  "docs/sandboxd.md, \"Egress rules\""

#define CC_SBD_MASK_MAX 255 /* longest maskRequestHost */

/* The Host header the port proxy sends for `port`: maskRequestHost with each ${PORT}
 * replaced, into out (cut at cap).  false when there is no mask (send the client's Host). */
bool cc_sbd_netcfg_host_for(const cc_sbd_netcfg *c, int port, char *out, size_t cap);

/* True when there is any rule to install. */
bool cc_sbd_netcfg_has_rules(const cc_sbd_netcfg *c);

/* True when the rules let nothing out over IPv4 (no allow entry, a deny entry of /0). */
bool cc_sbd_netcfg_denies_all(const cc_sbd_netcfg *c);

/* The runtime's view of the rules (pointers into c). */
cc_sbx_egress cc_sbd_netcfg_rules(const cc_sbd_netcfg *c);

void cc_sbd_netcfg_cleanup(cc_sbd_netcfg *c);

#endif
