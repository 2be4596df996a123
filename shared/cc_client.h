/*
 * cc_client: the transport-independent core of the wasm client.
 *
 * It turns an API call (op, project, args) into a protocol v1 request with cc_proto,
 * answers exec calls from the local cache when the exec-cache rule allows (no request is
 * sent then), hands the body to a transport, reads the response — a single JSON message or
 * an NDJSON stream cut into chunks at arbitrary byte positions — and keeps the local cache
 * (cc_client_cache) up to date: generations, exec results, records, history pages and
 * project info.  When the worker cannot be reached, reads are answered from the cache and
 * marked "stale": true.
 *
 * The transport and the outcome sink are a struct of function pointers (cc_client_io):
 * wasm/exports.c plugs in fetch(); the native unit test plugs in a scripted fake.
 * Every started request ends with exactly one io->done call.
 *
 * Ownership: the cc_client borrows the cache (the caller closes it after cc_client_free);
 * strings passed in are copied; strings passed to callbacks are valid only during the call.
 */
#ifndef CC_CLIENT_H
#define CC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cc_client_cache.h"
#include "cc_proto.h"
#include "cc_status.h"

typedef struct cc_client cc_client;

typedef struct {
  void *ctx;
  /* Starts sending `body` (len bytes) for request `req`; `stream` says the response is
   * NDJSON.  The response must come back later through cc_client_on_data/cc_client_on_end.
   * A non-OK return means nothing was started. */
  cc_status (*send)(void *ctx, uint32_t req, const char *body, size_t len, bool stream);
  /* A stream event of request `req`: stdout/stderr text, or the start event's data as JSON. */
  void (*event)(void *ctx, uint32_t req, cc_proto_event_type type, const char *data,
                size_t len);
  /* The outcome of request `req`: ok -> `json` is the result object; !ok -> `json` is an
   * error object {"code","message","retryable"}.  Called exactly once per request. */
  void (*done)(void *ctx, uint32_t req, bool ok, const char *json, size_t len);
  /* The seen generation of `project` grew because of a response (for other tabs). May be NULL. */
  void (*generation)(void *ctx, const char *project, int64_t generation);
} cc_client_io;

typedef struct {
  int64_t max_stale_ms; /* local exec hits younger than this; default 3600000 (1 h); 0 = none */
  int max_in_flight;    /* requests started and not yet ended; default 64 */
  cc_proto_limits proto; /* zeroed = cc_proto_limits_default() */
} cc_client_options;

/* Creates a client over `cache` (borrowed) and `io` (copied).  `opt` NULL = defaults. */
cc_status cc_client_new(cc_client_cache *cache, const cc_client_io *io,
                        const cc_client_options *opt, cc_client **out);

/* Frees the client.  Requests still in flight end with done(!ok, "canceled").  Accepts NULL. */
void cc_client_free(cc_client *c);

/*
 * Starts request `req` (an id unique among this client's requests in flight): op name,
 * project (NULL or "" for ops without one), args as JSON object text (NULL = {}).
 * An exec with useCache (default true) and no stdin that hits the local cache is answered
 * at once through io->done with "cached": true and "local": true, and nothing is sent.
 * Returns CC_OK when the request was started or already answered; otherwise (bad op,
 * invalid args, too many in flight) io->done was NOT called and *err_json (caller frees
 * with free()) holds the error object.
 */
cc_status cc_client_request(cc_client *c, uint32_t req, const char *op, const char *project,
                            const char *args_json, bool stream, int64_t now_ms,
                            char **err_json);

/* Feeds `len` response bytes of request `req` (any chunking); stream lines complete in them
 * are handled at once (events, and the final response with the clock now_ms).  Unknown
 * ids are ignored. */
void cc_client_on_data(cc_client *c, uint32_t req, const char *bytes, size_t len,
                       int64_t now_ms);

/*
 * Ends request `req`.  http_status > 0: the worker answered with that status (the body
 * came through on_data).  http_status <= 0: the transport failed; `transport_error` is
 * "unreachable", "timeout" or "canceled" (anything else counts as "unreachable") and
 * `message` a human-readable detail (may be NULL).  Exactly one io->done follows.
 */
void cc_client_on_end(cc_client *c, uint32_t req, int http_status, const char *transport_error,
                      const char *message, int64_t now_ms);

/* Another tab/instance reports a generation for `project` (BroadcastChannel).  *changed
 * (may be NULL) tells whether it was newer than what this client had seen. */
cc_status cc_client_seen_generation(cc_client *c, const char *project, int64_t generation,
                                    bool *changed);

#endif
