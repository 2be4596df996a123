/*
 * cc_sbd_envd: envd, the in-sandbox daemon's API, served by codecanvas-sandboxd on the host
 * for each sandbox: GET /health, GET/POST /files (with signed URLs), GET /envs, the
 * process.Process Connect service (Start/Connect streams, List, SendInput, CloseStdin,
 * SendSignal, Update) and the filesystem.Filesystem service (Stat, MakeDir, Move, ListDir,
 * Remove, and the WatchDir stream).  Everything that touches the sandbox goes through the
 * runtime (cc_sbx), which runs it inside the sandbox; this module only speaks the protocol
 * (e2b-protocol.md §2-§6).
 *
 * Ownership: functions here borrow the request; streams hold their own sandbox reference.
 */
#ifndef CC_SBD_ENVD_H
#define CC_SBD_ENVD_H

#include <stdbool.h>

#include "cc_sbd_http.h"

/* True for the paths envd serves (/files, /health, /envs, /process.Process/..., ...). */
bool cc_sbd_envd_path(const char *url);

/* Picks the sandbox of an envd request that names none (no Host form, no E2b-Sandbox-Id):
 * by X-Access-Token, then by a /files URL signature, then the newest sandbox without a token
 * (secure:false).  Sets r->sb (a reference) and r->sandbox_id, or leaves r->sb NULL. */
void cc_sbd_envd_route_by_credentials(cc_sbd_req *r);

/* Called on the first callback of an envd request (headers known, body not yet read):
 * checks access and installs the upload sink for POST /files.  Errors are recorded with
 * cc_sbd_req_fail and answered once the body has been read. */
void cc_sbd_envd_begin(cc_sbd_req *r);

/* Answers an envd request once its body has been read. */
enum MHD_Result cc_sbd_envd_handle(cc_sbd_req *r);

/* The `v1_` signature of a /files URL: base64 (no padding) of SHA-256 of
 * "path:operation:username:token[:expiration]".  out must hold 48 bytes. */
void cc_sbd_envd_signature(const char *path, const char *operation, const char *username,
                           const char *token, const char *expiration, char out[48]);

#endif
