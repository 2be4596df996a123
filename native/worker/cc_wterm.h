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
enum MHD_Result cc_wterm_handle(struct cc_worker *w, struct MHD_Connection *c, char *user_out,
                                size_t user_cap, int *http_out);

#endif
