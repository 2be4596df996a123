/*
 * cc_sbd_stream: envd's Connect server streams as libmicrohttpd responses (see
 * cc_sbd_stream.h): the envelope queue, the content reader that waits for the next runtime
 * event, a deadline, a keepalive or the client hanging up, and the one-envelope request
 * reader.  What the events mean is the owner's (cc_sbd_envd.c: processes; cc_sbd_watch.c:
 * WatchDir).
 */
#include "cc_sbd_stream.h"

#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool push_envelope(cc_sbd_stream *s, uint8_t flags, const char *payload) {
  size_t n = strlen(payload);
  if (s->out_len + n + 5 > s->out_cap) {
    size_t nc = s->out_cap ? s->out_cap : 1024;
    while (nc < s->out_len + n + 5) nc *= 2;
    uint8_t *nb = realloc(s->out, nc);
    if (!nb) return false;
    s->out = nb;
    s->out_cap = nc;
  }
  cc_connect_envelope_header(s->out + s->out_len, flags, (uint32_t)n);
  memcpy(s->out + s->out_len + 5, payload, n);
  s->out_len += n + 5;
  return true;
}

bool cc_sbd_stream_push_json(cc_sbd_stream *s, uint8_t flags, cJSON *msg) {
  char *p = cJSON_PrintUnformatted(msg);
  cJSON_Delete(msg);
  if (!p) return false;
  bool ok = push_envelope(s, flags, p);
  free(p);
  return ok;
}

/* Queues the end-of-stream envelope; code 0 = success. */
void cc_sbd_stream_push_eos(cc_sbd_stream *s, cc_connect_code code, const char *msg) {
  cJSON *o = cJSON_CreateObject();
  if (code != CC_CONNECT_OK) {
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "code", cc_connect_code_name(code));
    cJSON_AddStringToObject(e, "message", msg);
  }
  if (!cc_sbd_stream_push_json(s, CC_CONNECT_FLAG_END_STREAM, o)) push_envelope(s, CC_CONNECT_FLAG_END_STREAM, "{}");
  s->done = true;
}


static bool client_gone(int fd) {
  if (fd < 0) return false;
  struct pollfd p = {.fd = fd, .events = POLLRDHUP};
  return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* MHD content reader: blocks until the next envelope exists, returns it (so each envelope
 * is written and flushed on its own), then END_OF_STREAM after the 0x02 envelope. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
  cc_sbd_stream *s = cls;
  for (;;) {
    if (s->out_off < s->out_len) {
      size_t n = s->out_len - s->out_off;
      if (n > max) n = max;
      memcpy(buf, s->out + s->out_off, n);
      s->out_off += n;
      s->last_sent_ms = cc_sbd_now_ms();
      return (ssize_t)n;
    }
    if (s->done) return s->drop ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
    s->out_len = s->out_off = 0;
    int64_t now = cc_sbd_now_ms();
    if (s->deadline_ms && now >= s->deadline_ms) {
      cc_sbd_stream_push_eos(s, CC_CONNECT_DEADLINE_EXCEEDED, "context deadline exceeded");
      continue;
    }
    int64_t wait = s->last_sent_ms + s->keepalive_ms - now;
    if (wait > 1000) wait = 1000;
    if (wait < 0) wait = 0;
    if (s->deadline_ms && s->deadline_ms - now < wait) wait = s->deadline_ms - now;
    /* wait for an event or for the client to hang up, whichever comes first */
    int sub_fd = cc_sbx_sub_fd(s->sub);
    if (sub_fd >= 0 && s->conn_fd >= 0) {
      struct pollfd p[2] = {{.fd = sub_fd, .events = POLLIN}, {.fd = s->conn_fd, .events = POLLRDHUP}};
      if (poll(p, 2, (int)wait) > 0 && (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR)))
        return MHD_CONTENT_READER_END_WITH_ERROR;
      wait = 0;
    }
    cc_sbx_event ev;
    cc_status st = cc_sbx_sub_next(s->sub, (int)wait, &ev);
    if (st == CC_NOT_FOUND) {
      cc_sbd_stream_push_eos(s, CC_CONNECT_OK, NULL);
      continue;
    }
    if (st != CC_OK) {
      cc_sbd_stream_push_eos(s, CC_CONNECT_UNAVAILABLE, "sandbox is not running anymore");
      continue;
    }
    if (ev.type != CC_SBX_EV_NONE) {
      s->on_event(s, &ev);
      continue;
    }
    if (client_gone(s->conn_fd)) return MHD_CONTENT_READER_END_WITH_ERROR;
    if (cc_sbd_now_ms() - s->last_sent_ms >= s->keepalive_ms && s->keepalive) {
      cJSON *k = s->keepalive(s);
      if (k) cc_sbd_stream_push_json(s, 0, k);
    }
  }
}

static void stream_free_cb(void *cls) {
  cc_sbd_stream *s = cls;
  if (s->on_free) s->on_free(s);
  cc_sbx_sub_free(s->sub);
  cc_sbd_unref(s->sb);
  free(s->out);
  free(s);
}

void cc_sbd_stream_free(cc_sbd_stream *s) {
  if (s) stream_free_cb(s);
}

cc_sbd_stream *cc_sbd_stream_new(cc_sbd_req *r) {
  cc_sbd_stream *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->sb = r->sb;
  cc_sbd_ref(r->sb);
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  s->conn_fd = ci ? ci->connect_fd : -1;
  const char *ka = cc_sbd_header(r->conn, "Keepalive-Ping-Interval");
  long kas = 90;
  if (ka) {
    char *end;
    long v = strtol(ka, &end, 10);
    if (!*end && v > 0 && v < 86400) kas = v;
  }
  s->keepalive_ms = (int)(kas * 1000);
  s->last_sent_ms = cc_sbd_now_ms();
  return s;
}

/* Sends the stream response (takes ownership of s). */
enum MHD_Result cc_sbd_stream_respond(cc_sbd_req *r, cc_sbd_stream *s) {
  struct MHD_Response *resp =
      MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_read, s, stream_free_cb);
  if (!resp) {
    cc_sbd_stream_free(s);
    return MHD_NO;
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/connect+json");
  enum MHD_Result res = MHD_queue_response(r->conn, 200, resp);
  MHD_destroy_response(resp);
  return res;
}

/* A stream that carries only an end-of-stream error (errors on streams are HTTP 200). */
enum MHD_Result cc_sbd_stream_error(cc_sbd_req *r, cc_connect_code code, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  cc_sbd_stream s = {0};
  cc_sbd_stream_push_eos(&s, code, msg);
  enum MHD_Result res =
      cc_sbd_respond_raw(r->conn, 200, "application/connect+json", s.out, s.out_len);
  free(s.out);
  return res;
}

typedef struct {
  cJSON *msg;
  int count;
  bool bad; /* a compressed, second or non-JSON envelope */
} envelope_ctx;

/* Takes the one request envelope; anything else marks the request bad and stops reading. */
static int take_envelope(void *ctx, unsigned flags, const uint8_t *p, size_t n) {
  envelope_ctx *e = ctx;
  if ((flags & CC_CONNECT_FLAG_COMPRESSED) || e->count++ > 0) {
    e->bad = true;
    return 1;
  }
  e->msg = cJSON_ParseWithLength((const char *)p, n);
  e->bad = !e->msg;
  return e->bad;
}

/* Parses the single request envelope of a server-streaming call. */
cJSON *cc_sbd_stream_request(cc_sbd_req *r) {
  cc_envelope_reader rd;
  envelope_ctx e = {0};
  cc_connect_reader_init(&rd, r->srv->cfg.max_body);
  cc_status st = cc_envelope_reader_feed(&rd, r->body, r->len, take_envelope, &e);
  bool complete = cc_envelope_reader_idle(&rd);
  cc_envelope_reader_cleanup(&rd);
  if (st != CC_OK || e.bad || !complete || e.count != 1) {
    cJSON_Delete(e.msg);
    return NULL;
  }
  return e.msg;
}

long cc_sbd_stream_timeout_ms(cc_sbd_req *r) {
  const char *t = cc_sbd_header(r->conn, "Connect-Timeout-Ms");
  if (!t) return 0;
  char *end;
  long v = strtol(t, &end, 10);
  return (*end || v < 0) ? 0 : v;
}
