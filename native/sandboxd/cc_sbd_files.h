/*
 * cc_sbd_files: envd's file API (GET/POST /files, signed /files URLs, the
 * filesystem.Filesystem unary RPCs) for cc_sbd_envd, which routes envd requests here.
 *
 * Ownership: functions borrow the request; cc_sbd_files_find_signed returns a reference.
 */
#ifndef CC_SBD_FILES_H
#define CC_SBD_FILES_H

#include <cjson/cJSON.h>

#include "cc_sbd_http.h"
#include "cc_sbx.h"

/* The sandbox whose envd token validates the request's /files URL signature (path,
 * operation, username, signature_expiration), as a reference the caller gives back with
 * cc_sbd_unref; NULL if none does. */
cc_sbd_sandbox *cc_sbd_files_find_signed(cc_sbd_req *r);

/* First callback of POST /files (r->sb set): checks the token or signature and the user, then
 * installs the streaming multipart sink; failures are recorded with cc_sbd_req_fail. */
void cc_sbd_files_begin_upload(cc_sbd_req *r);

/* Answers /files once the body has been read: the upload's result, or the download
 * (GET, after the same access check), or 405. */
enum MHD_Result cc_sbd_files_handle(cc_sbd_req *r);

/* Answers filesystem.Filesystem/<method> (Stat, MakeDir, Move, ListDir, Remove; anything
 * else is unimplemented) for the JSON request msg (borrowed). */
enum MHD_Result cc_sbd_files_rpc(cc_sbd_req *r, const char *method, cJSON *msg);

/* envd's EntryInfo of e as protojson (size as a string, modifiedTime RFC 3339, metadata as a
 * map when there is some); caller frees. */
cJSON *cc_sbd_files_entry_json(const cc_sbx_entry *e);

/* The `v1_` signature of a /files URL: base64 (no padding) of SHA-256 of
 * "path:operation:username:token[:expiration]".  out must hold 48 bytes. */
void cc_sbd_files_signature(const char *path, const char *operation, const char *username,
                            const char *token, const char *expiration, char out[48]);

#endif
