/*
 * cc_sbd_watch: envd's filesystem.Filesystem/WatchDir server stream for cc_sbd_envd, which
 * routes the request here.
 *
 * Ownership: borrows the request and the message; the stream holds its own references.
 */
#ifndef CC_SBD_WATCH_H
#define CC_SBD_WATCH_H

#include <cjson/cJSON.h>

#include "cc_sbd_http.h"

/* The name WatchDir's helper process is tagged with (hidden from process.Process/List). */
#define CC_SBD_WATCH_TAG "cc-sandboxd-watch"

/* Answers WatchDir for the JSON request msg (borrowed): a stream of filesystem events below
 * msg.path, or a stream carrying only the error. */
enum MHD_Result cc_sbd_watch_dir(cc_sbd_req *r, const cJSON *msg);

#endif
