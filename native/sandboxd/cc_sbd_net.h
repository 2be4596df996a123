/*
 * cc_sbd_net: a sandbox's network settings in codecanvas-sandboxd (egress rules installed in
 * its runtime, PUT /sandboxes/{id}/network, the network info of GET /sandboxes/{id}, and the
 * traffic access token of port URLs).  The sandbox's cc_sbd_netcfg (sb->net) is replaced
 * under its life_mu and read under the server's lock.
 */
#ifndef CC_SBD_NET_H
#define CC_SBD_NET_H

#include <stdbool.h>
#include <stddef.h>

#include "cc_sbd_http.h"

/* The header port URLs need when a sandbox was created with allowPublicTraffic: false. */
#define CC_SBD_TRAFFIC_HEADER "e2b-traffic-access-token"

/* Installs sb->net's egress rules in the sandbox's runtime.  always = false: nothing to do
 * when it has no rules (a fresh runtime has none).  Caller holds life_mu or the sandbox is not
 * shared yet.  CC_OK, or the runtime's status with msg saying why (the sandbox must then not
 * be handed out: its rules are not in force). */
cc_status cc_sbd_net_apply(cc_sbd_sandbox *sb, bool always, char *msg, size_t msg_size);

/* Adds E2B's "network" object ({allowOut, denyOut, allowPublicTraffic} as set) to o, when the
 * sandbox has one. */
void cc_sbd_net_add_json(cJSON *o, cc_sbd_sandbox *sb);

/* The Host header to send to the sandbox's `port` when it was created with
 * network.maskRequestHost (${PORT} replaced), into out; false: the client's own Host. */
bool cc_sbd_net_host_for(cc_sbd_sandbox *sb, int port, char *out, size_t cap);

/* Whether a request to one of the sandbox's port URLs may pass: always when its public traffic
 * is allowed, else only with its traffic access token (compared in constant time). */
bool cc_sbd_net_traffic_allowed(const cc_sbd_sandbox *sb, const char *token);

/* PUT /sandboxes/{id}/network: replaces the egress rules (fields left out are cleared, as on
 * E2B) of a running or paused sandbox; 204, or 400/501 (cc_sbd_netcfg_parse), 409 (a sandbox
 * created without internet access cannot be given egress), 500 (the rules could not be
 * installed; the previous ones still hold). */
enum MHD_Result cc_sbd_net_handle_update(cc_sbd_req *r, cc_sbd_sandbox *sb);

#endif
