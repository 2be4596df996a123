/*
 * cc_sbd_proxy: reaching ports inside a sandbox.  A request whose Host is
 * `<port>-<id>.localhost:<sandboxd port>` (or that carries E2b-Sandbox-Id with another
 * E2b-Sandbox-Port) is forwarded to 127.0.0.1:<port> inside that sandbox over a socket the
 * runtime connects for us (cc_sbx_connect_port), so the host network is never involved.
 * Plain HTTP is forwarded as HTTP/1.0 (one request per upstream connection, response body
 * streamed back); a WebSocket upgrade becomes a byte relay after the upstream's 101.
 * A missing sandbox or a closed port answers 502 JSON as E2B's edge proxy does.
 */
#ifndef CC_SBD_PROXY_H
#define CC_SBD_PROXY_H

#include "cc_sbd_http.h"

/* First callback of a proxied request (headers known, body not yet read). */
void cc_sbd_proxy_begin(cc_sbd_req *r);

/* Forwards the request (body fully buffered) and queues the streamed response. */
enum MHD_Result cc_sbd_proxy_handle(cc_sbd_req *r);

#endif
