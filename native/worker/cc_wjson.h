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

/* The same writer for texts built piece by piece (the exec cache key, remembered responses).
 * Start from a zeroed buffer; a failed allocation makes every later call a no-op and
 * cc_wjson_buf_finish return NULL.  The finished text is malloc'd (free / cc_proto_free) and
 * NUL-terminated; b->len is its length. */
typedef struct cc_wjson_buf {
  char *p;
  size_t len, cap;
  int failed;
} cc_wjson_buf;

void cc_wjson_buf_put(cc_wjson_buf *b, const char *s, size_t n); /* raw bytes */
void cc_wjson_buf_str(cc_wjson_buf *b, const char *s); /* a JSON string, escaped as cJSON does */
void cc_wjson_buf_int(cc_wjson_buf *b, int64_t v);
void cc_wjson_buf_item(cc_wjson_buf *b, const cJSON *item); /* any value, as encode_ok prints it */
char *cc_wjson_buf_finish(cc_wjson_buf *b);

#endif
