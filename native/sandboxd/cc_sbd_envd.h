/*
 * cc_sbd_envd: envd, the in-sandbox daemon's API, served by codecanvas-sandboxd on the host
 * for each sandbox: GET /health, GET/POST /files (with signed URLs), GET /envs, the
 * process.Process Connect service (Start/Connect streams, List, SendInput, CloseStdin,
 * SendSignal, Update) and the filesystem.Filesystem service (Stat, MakeDir, Move, ListDir,
 * Remove, and the WatchDir stream).  Everything that touches the sandbox goes through the
 * runtime (cc_sbx), which runs it inside the sandbox; this module only speaks the protocol
 * (e2b-protocol.md §2-§6).  The file API is in cc_sbd_files.c (cc_sbd_files.h); the helpers
 * below marked "shared" exist for it.
 *
 * Ownership: functions here borrow the request; streams hold their own sandbox reference.
 */
#ifndef CC_SBD_ENVD_H
#define CC_SBD_ENVD_H

#include <stdbool.h>
#include <stdint.h>

#include "cc_connect.h"
#include "cc_sbd_http.h"
#include "cc_sbx.h"

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

/* ---- shared with cc_sbd_files.c and cc_sbd_watch.c ---- */

/* envd's path mapping for display ("" and "~" → /home/user, relative → under it, cleaned
 * lexically); false for "~user" forms and paths that do not fit out. */
bool cc_sbd_envd_resolve_path(const char *in, char *out, size_t out_size);
/* The same with root's home (/root) when root. */
bool cc_sbd_envd_resolve_path_as(bool root, const char *in, char *out, size_t out_size);

/* True for the users envd accepts here: none (the default), "user" and "root". */
bool cc_sbd_envd_user_ok(const char *name);

/* The runtime's message of a failure, else the status's own (borrowed). */
const char *cc_sbd_envd_err_msg(const cc_sbx_err *e, cc_status st);

/* Base64 (standard alphabet, padded if pad) of d into a new string the caller frees. */
char *cc_sbd_envd_b64(const uint8_t *d, size_t n, bool pad);

/* The Connect code of a runtime error kind. */
cc_connect_code cc_sbd_envd_connect_code(cc_sbx_errkind k);

/* A Connect error for a runtime failure (code from e->kind, else from st). */
enum MHD_Result cc_sbd_envd_rpc_error(cc_sbd_req *r, const cc_sbx_err *e, cc_status st);

/* A unary Connect answer: 200 with msg as JSON (takes ownership of msg). */
enum MHD_Result cc_sbd_envd_rpc_ok(cc_sbd_req *r, cJSON *msg);

#endif
