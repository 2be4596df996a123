/*
 * exports.c: the whole boundary between JavaScript and the C client — the only
 * wasm-specific C file.
 *
 * Rules of this boundary (after SQLite's ext/wasm/api/sqlite3-wasm.c):
 *   - every export is marked CC_EXPORT and named cc_wasm_*; no variadic functions;
 *   - sizes and ids are 32-bit; 64-bit integers (clock, generations) travel as double;
 *   - strings are NUL-terminated UTF-8 in wasm memory, allocated by JS with the module's
 *     own malloc (exported as _malloc/_free) and freed by JS after the call returns;
 *   - every export that returns a string says who frees it (always: JS, with cc_wasm_free);
 *   - C returns codes and JSON; only the JS API layer (codecanvas-api.js) throws.
 *
 * It also holds SQLite's OS layer for this target (the module has no filesystem).
 *
 * The transport is callback based (no ASYNCIFY): cc_client asks cc_js_send (transport.js)
 * to fetch(); transport.js feeds the body back through cc_wasm_on_data per chunk and
 * cc_wasm_on_end once.  Outcomes and stream events leave through cc_js_done/cc_js_event.
 */
#include <emscripten.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "cc_client.h"
#include "cc_client_cache.h"
#include "cc_platform.h"
#include "cc_proto.h"

#define CC_EXPORT EMSCRIPTEN_KEEPALIVE

/* ------------------------------------------------------------------ SQLite OS layer
 *
 * The module has no filesystem (-sFILESYSTEM=0): the cache is a memdb image that JS keeps in
 * IndexedDB.  SQLite is built with SQLITE_OS_OTHER=1 and gets this minimal default VFS, which
 * opens no files and only supplies what memdb borrows from its base VFS: randomness, the
 * clock and sleep.  (Temporary b-trees live in memory: SQLITE_TEMP_STORE=3.) */

static int vfs_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out) {
  f->pMethods = NULL;
  return SQLITE_CANTOPEN;
}
static int vfs_delete(sqlite3_vfs *v, const char *name, int sync) { return SQLITE_IOERR_DELETE; }
static int vfs_access(sqlite3_vfs *v, const char *name, int flags, int *res) {
  *res = 0;
  return SQLITE_OK;
}
static int vfs_full_pathname(sqlite3_vfs *v, const char *name, int n, char *out) {
  sqlite3_snprintf(n, out, "%s", name);
  return SQLITE_OK;
}
static int vfs_randomness(sqlite3_vfs *v, int n, char *out) {
  return cc_platform_random(out, (size_t)n) == CC_OK ? n : 0;
}
static int vfs_sleep(sqlite3_vfs *v, int us) { return us; }
static int vfs_time64(sqlite3_vfs *v, sqlite3_int64 *t) {
  *t = (sqlite3_int64)210866760000000LL + cc_platform_now_ms(); /* Julian day in ms */
  return SQLITE_OK;
}
static int vfs_time(sqlite3_vfs *v, double *t) {
  sqlite3_int64 ms;
  vfs_time64(v, &ms);
  *t = (double)ms / 86400000.0;
  return SQLITE_OK;
}
static int vfs_last_error(sqlite3_vfs *v, int n, char *out) { return 0; }

static sqlite3_vfs cc_vfs = {
    .iVersion = 2, .szOsFile = sizeof(sqlite3_file), .mxPathname = 256, .zName = "cc-none",
    .xOpen = vfs_open, .xDelete = vfs_delete, .xAccess = vfs_access,
    .xFullPathname = vfs_full_pathname, .xRandomness = vfs_randomness, .xSleep = vfs_sleep,
    .xCurrentTime = vfs_time, .xGetLastError = vfs_last_error,
    .xCurrentTimeInt64 = vfs_time64,
};

/* Called by sqlite3_initialize() (SQLITE_OS_OTHER): registers the default VFS. */
int sqlite3_os_init(void) { return sqlite3_vfs_register(&cc_vfs, 1); }
int sqlite3_os_end(void) { return SQLITE_OK; }

/* ------------------------------------------------------------------ imports */

/* Imports, implemented in wasm/transport.js. `handle` identifies the client. */
extern int cc_js_send(uint32_t handle, uint32_t req, const char *body, uint32_t len,
                      int stream);
extern void cc_js_event(uint32_t handle, uint32_t req, const char *type, const char *data,
                        uint32_t len);
extern void cc_js_done(uint32_t handle, uint32_t req, int ok, const char *json, uint32_t len);
extern void cc_js_generation(uint32_t handle, const char *project, double generation);

typedef struct {
  cc_client_cache *cache;
  cc_client *client;
} handle;

static uint32_t handle_id(void *ctx) { return (uint32_t)(uintptr_t)ctx; }

static cc_status io_send(void *ctx, uint32_t req, const char *body, size_t len, bool stream) {
  return cc_js_send(handle_id(ctx), req, body, (uint32_t)len, stream) == 0 ? CC_OK
                                                                          : CC_INTERNAL;
}

static void io_event(void *ctx, uint32_t req, cc_proto_event_type type, const char *data,
                     size_t len) {
  cc_js_event(handle_id(ctx), req, cc_proto_event_name(type), data, (uint32_t)len);
}

static void io_done(void *ctx, uint32_t req, bool ok, const char *json, size_t len) {
  cc_js_done(handle_id(ctx), req, ok, json, (uint32_t)len);
}

static void io_generation(void *ctx, const char *project, int64_t generation) {
  cc_js_generation(handle_id(ctx), project, (double)generation);
}

/* Opens the cache from `image` (`len` bytes of a saved cache database, JS-owned, copied;
 * len 0 = a new cache) and creates a client over it.  Returns the handle (never 0) or 0 on
 * failure.  Release with cc_wasm_close. */
CC_EXPORT uint32_t cc_wasm_open(const unsigned char *image, uint32_t len, double max_stale_ms,
                                uint32_t max_in_flight) {
  handle *h = calloc(1, sizeof *h);
  if (!h) return 0;
  if (cc_client_cache_open_image(image, len, NULL, &h->cache) != CC_OK) {
    free(h);
    return 0;
  }
  cc_client_io io = {.ctx = h, .send = io_send, .event = io_event, .done = io_done,
                     .generation = io_generation};
  cc_client_options opt = {.max_stale_ms = (int64_t)max_stale_ms,
                           .max_in_flight = (int)max_in_flight};
  if (cc_client_new(h->cache, &io, &opt, &h->client) != CC_OK) {
    cc_client_cache_free(h->cache);
    free(h);
    return 0;
  }
  return (uint32_t)(uintptr_t)h;
}

/* Closes a handle: requests in flight end with a "canceled" done; the database closes. */
CC_EXPORT void cc_wasm_close(uint32_t hid) {
  handle *h = (handle *)(uintptr_t)hid;
  if (!h) return;
  cc_client_free(h->client);
  cc_client_cache_free(h->cache);
  free(h);
}

/* Starts request `req` (see cc_client_request).  Returns 0 when started or answered (an
 * answer arrives through cc_js_done, possibly before this returns); otherwise a pointer to
 * the error object JSON, which JS frees with cc_wasm_free. */
CC_EXPORT char *cc_wasm_request(uint32_t hid, uint32_t req, const char *op, const char *project,
                                const char *args_json, int stream, double now_ms) {
  handle *h = (handle *)(uintptr_t)hid;
  char *err = NULL;
  if (cc_client_request(h->client, req, op, project, args_json, stream != 0, (int64_t)now_ms,
                        &err) == CC_OK)
    return NULL;
  return err ? err : strdup("{\"code\":\"internal\",\"message\":\"out of memory\"}");
}

/* One chunk of response bytes (JS owns `bytes` and frees it after the call). */
CC_EXPORT void cc_wasm_on_data(uint32_t hid, uint32_t req, const char *bytes, uint32_t len,
                               double now_ms) {
  handle *h = (handle *)(uintptr_t)hid;
  cc_client_on_data(h->client, req, bytes, len, (int64_t)now_ms);
}

/* End of a response (see cc_client_on_end); `transport_error`/`message` may be NULL. */
CC_EXPORT void cc_wasm_on_end(uint32_t hid, uint32_t req, int http_status,
                              const char *transport_error, const char *message, double now_ms) {
  handle *h = (handle *)(uintptr_t)hid;
  cc_client_on_end(h->client, req, http_status, transport_error, message, (int64_t)now_ms);
}

/* A generation reported by another tab or instance.  Returns 1 when it was newer than the
 * one this client had seen, 0 when not, -1 when the cache failed. */
CC_EXPORT int cc_wasm_seen_generation(uint32_t hid, const char *project, double generation) {
  handle *h = (handle *)(uintptr_t)hid;
  bool changed = false;
  if (cc_client_seen_generation(h->client, project, (int64_t)generation, &changed) != CC_OK)
    return -1;
  return changed ? 1 : 0;
}

/* Decodes a request body with the worker's validation (for the protocol data files).
 * Returns JSON {"status","reason","field","id","op","project","stream","args"}; JS frees it
 * with cc_wasm_free. */
CC_EXPORT char *cc_wasm_decode_request(const char *body, uint32_t len) {
  cc_request req;
  cc_proto_error err;
  memset(&req, 0, sizeof req);
  memset(&err, 0, sizeof err);
  cc_status st = cc_proto_parse_request(body, len, NULL, &req, &err);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "status", cc_status_code(st));
  if (st == CC_OK) {
    cJSON_AddStringToObject(o, "id", req.id);
    cJSON_AddStringToObject(o, "op", cc_proto_op_name(req.op));
    if (req.project) cJSON_AddStringToObject(o, "project", req.project);
    cJSON_AddBoolToObject(o, "stream", req.stream);
    if (req.args) cJSON_AddItemToObject(o, "args", cJSON_Duplicate(req.args, true));
  } else {
    cJSON_AddStringToObject(o, "reason", cc_proto_reason_name(err.reason));
    cJSON_AddStringToObject(o, "field", err.field);
    cJSON_AddStringToObject(o, "message", err.message);
  }
  cc_request_cleanup(&req);
  char *t = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  char *out = t ? strdup(t) : NULL;
  cJSON_free(t);
  return out;
}

/* The cache's current database image, for JS to save in IndexedDB: returns a pointer into
 * the database and stores its size at *len.  Nobody frees it: it is borrowed and valid only
 * until the next call into the module, so JS copies it at once.  0 on failure. */
CC_EXPORT const unsigned char *cc_wasm_image(uint32_t hid, uint32_t *len) {
  handle *h = (handle *)(uintptr_t)hid;
  const unsigned char *data = NULL;
  size_t n = 0;
  if (cc_client_cache_image(h->cache, &data, &n) != CC_OK || n > UINT32_MAX) return NULL;
  *len = (uint32_t)n;
  return data;
}

/* Merges a cache image saved by another tab into this handle's cache: 0 done, 1 not merged. */
CC_EXPORT int cc_wasm_merge(uint32_t hid, const unsigned char *image, uint32_t len) {
  handle *h = (handle *)(uintptr_t)hid;
  return cc_client_cache_merge_image(h->cache, image, len) == CC_OK ? 0 : 1;
}

/* Frees a string returned by an export above. Accepts NULL. */
CC_EXPORT void cc_wasm_free(void *p) { free(p); }
