/*
 * cc_wterm: the interactive terminal endpoint, GET /v1/terminal (a WebSocket; see
 * cc_wterm.c for the protocol).
 */
#ifndef CC_WTERM_H
#define CC_WTERM_H

#include <microhttpd.h>
#include <stddef.h>

struct cc_worker;

/* Answers a GET /v1/terminal: a refusal (400/401/404/...) or the upgrade (101), after which
 * the connection is the terminal's.  *http_out is the status queued (0 if none); user_out
 * gets the authenticated user for the access log.  Needs MHD_ALLOW_UPGRADE. */
struct cc_wreq;
/* GET /v1/terminal: checks the handshake, then opens the session on the worker's pool. */
enum MHD_Result cc_wterm_handle(struct cc_worker *w, struct MHD_Connection *c,
                                struct cc_wreq *r);

#endif
