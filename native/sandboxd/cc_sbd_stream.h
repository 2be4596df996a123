/*
 * cc_sbd_stream: the Connect server streams of envd (process.Process Start and Connect,
 * filesystem.Filesystem WatchDir) as libmicrohttpd responses: 200 application/connect+json,
 * one envelope per message, each flushed as it is produced by returning it from the MHD
 * content reader; the 0x02 end-of-stream envelope (with the error, if any) last — except when
 * the sandbox dies under the stream, when the connection is cut with neither (as E2B's edge
 * does).  What a stream relays is up to its owner: a runtime subscription (cc_sbx_sub) whose
 * events the owner's on_event turns into envelopes.
 *
 * Ownership: a stream holds its own sandbox reference; cc_sbd_stream_respond takes the stream
 * (freed with the response), cc_sbd_stream_free frees one that was never handed over.
 */
#ifndef CC_SBD_STREAM_H
#define CC_SBD_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "cc_connect.h"
#include "cc_sbd_http.h"
#include "cc_sbx.h"

typedef struct cc_sbd_stream cc_sbd_stream;

struct cc_sbd_stream {
  cc_sbd_sandbox *sb; /* reference */
  cc_sbx_sub *sub;    /* the events relayed (owned; set by the owner after _new) */
  int conn_fd;
  int keepalive_ms;
  int64_t last_sent_ms;
  int64_t deadline_ms; /* 0: none (Connect-Timeout-Ms) */
  uint8_t *out;
  size_t out_len, out_off, out_cap;
  bool done;
  bool drop; /* the sandbox died under the stream: end it without end-of-stream (E2B) */
  /* Turns one runtime event into envelopes (push_json / push_eos); required. */
  void (*on_event)(cc_sbd_stream *s, const cc_sbx_event *ev);
  /* The keepalive message to send after keepalive_ms of silence, or NULL for none (yet). */
  cJSON *(*keepalive)(cc_sbd_stream *s);
  /* Frees ext (and whatever the owner keeps alive for the stream); may be NULL. */
  void (*on_free)(cc_sbd_stream *s);
  void *ext;
};

/* A stream for request r (sandbox reference taken, keepalive from Keepalive-Ping-Interval,
 * default 90 s), or NULL when out of memory. */
cc_sbd_stream *cc_sbd_stream_new(cc_sbd_req *r);

/* Frees a stream never given to cc_sbd_stream_respond (calls on_free; NULL-safe). */
void cc_sbd_stream_free(cc_sbd_stream *s);

/* Answers r with the stream (takes ownership of s). */
enum MHD_Result cc_sbd_stream_respond(cc_sbd_req *r, cc_sbd_stream *s);

/* Answers r with a stream that carries only an end-of-stream error (errors on streams are
 * HTTP 200). */
enum MHD_Result cc_sbd_stream_error(cc_sbd_req *r, cc_connect_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The single JSON request envelope of a server-streaming call (caller frees), or NULL when
 * the body is not exactly one uncompressed JSON envelope. */
cJSON *cc_sbd_stream_request(cc_sbd_req *r);

/* Queues msg (takes ownership) as one envelope with flags; false when out of memory. */
bool cc_sbd_stream_push_json(cc_sbd_stream *s, uint8_t flags, cJSON *msg);

/* Queues the end-of-stream envelope (code CC_CONNECT_OK = success) and marks s done. */
void cc_sbd_stream_push_eos(cc_sbd_stream *s, cc_connect_code code, const char *msg);

/* The request's Connect-Timeout-Ms (0 when absent or malformed). */
long cc_sbd_stream_timeout_ms(cc_sbd_req *r);

#endif
