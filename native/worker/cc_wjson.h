/*
 * cc_wjson: a fast JSON writer for the worker's ok responses.
 *
 * cJSON prints every number with sprintf("%1.15g") and checks it with sscanf, which made
 * a 1000-record getHistory spend most of its time formatting numbers.  This writer emits the
 * same envelope as cc_proto_encode_ok ({"v":1,"id":..,"ok":true,"result":..,"generation":N})
 * in one pass over the cJSON tree: integral numbers through an integer formatter, others
 * with "%.17g", strings escaped as cJSON does (quote, backslash, control characters; UTF-8
 * passed through).  The message shape stays cc_proto's; only the printing differs.
 *
 * Ownership: the returned text is malloc'd, which is what cJSON_free releases in this
 * program (no cJSON hooks are installed); free it with cc_proto_free.
 */
#ifndef CC_WJSON_H
#define CC_WJSON_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "cc_status.h"

/* Encodes the ok envelope; result NULL = {}; generation < 0 omits the field. */
cc_status cc_wjson_encode_ok(const char *id, const cJSON *result, int64_t generation, char **out);

#endif
