/*
 * cc_sbd_proxy: HTTP and WebSocket forwarding into sandboxes (see cc_sbd_proxy.h).
 */
#include "cc_sbd_proxy.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cc_sbd_net.h"
#include "cc_sbx.h"

#define MAX_RESPONSE_HEAD 65536
#define UPSTREAM_TIMEOUT_S 300

void cc_sbd_proxy_begin(cc_sbd_req *r) {
  (void)r; /* the body is buffered (bounded by max_body) by the HTTP layer */
}

typedef struct {
  char *buf;
  size_t len, cap;
  bool oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t nc = b->cap ? b->cap : 1024;
    while (nc < b->len + n + 1) nc *= 2;
    char *p = realloc(b->buf, nc);
    if (!p) {
      b->oom = true;
      return;
    }
    b->buf = p;
    b->cap = nc;
  }
  memcpy(b->buf + b->len, s, n);
  b->len += n;
  b->buf[b->len] = 0;
}

static void sb_str(sbuf *b, const char *s) {
  sb_add(b, s, strlen(s));
}

static bool hop_by_hop(const char *k, bool upgrade) {
  static const char *const names[] = {"connection", "keep-alive", "proxy-connection",
                                      "proxy-authorization", "te", "trailer",
                                      "transfer-encoding", "content-length",
                                      /* the sandbox's own credential stays with sandboxd */
                                      "e2b-traffic-access-token"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcasecmp(k, names[i]) == 0) return true;
  if (strcasecmp(k, "upgrade") == 0) return !upgrade;
  return false;
}

typedef struct {
  sbuf *b;
  bool upgrade;
  bool mask_host; /* the sandbox's maskRequestHost replaces the client's Host */
} hdr_ctx;

static enum MHD_Result copy_header(void *cls, enum MHD_ValueKind kind, const char *k,
                                   const char *v) {
  hdr_ctx *h = cls;
  if ((h->mask_host && strcasecmp(k, "host") == 0) || hop_by_hop(k, h->upgrade) || strchr(k, '\r') || strchr(k, '\n') || (v && (strchr(v, '\r') || strchr(v, '\n'))))
    return MHD_YES;
  sb_str(h->b, k);
  sb_str(h->b, ": ");
  sb_str(h->b, v ? v : "");
  sb_str(h->b, "\r\n");
  return MHD_YES;
}

static bool write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= (size_t)w;
  }
  return true;
}

/* The upstream response body, streamed to the client. */
typedef struct {
  int fd;
  char *pre; /* body bytes read together with the head */
  size_t pre_len, pre_off;
  cc_sbd_sandbox *sb;
} body_stream;

static ssize_t body_read(void *cls, uint64_t pos, char *buf, size_t max) {
  body_stream *b = cls;
  if (b->pre_off < b->pre_len) {
    size_t n = b->pre_len - b->pre_off;
    if (n > max) n = max;
    memcpy(buf, b->pre + b->pre_off, n);
    b->pre_off += n;
    return (ssize_t)n;
  }
  for (;;) {
    ssize_t n = recv(b->fd, buf, max, 0);
    if (n > 0) return n;
    if (n == 0) return MHD_CONTENT_READER_END_OF_STREAM;
    if (errno == EINTR) continue;
    return MHD_CONTENT_READER_END_WITH_ERROR;
  }
}

static void body_free(void *cls) {
  body_stream *b = cls;
  close(b->fd);
  free(b->pre);
  cc_sbd_unref(b->sb);
  free(b);
}

/* WebSocket relay after both sides switched protocols. */
typedef struct {
  int up;
  MHD_socket client;
  struct MHD_UpgradeResponseHandle *urh;
  char *extra;
  size_t extra_len;
  cc_sbd_sandbox *sb;
} relay;

static void *relay_main(void *arg) {
  relay *rl = arg;
  char buf[16384];
  if (rl->extra_len && !write_all(rl->up, rl->extra, rl->extra_len)) goto done;
  for (;;) {
    struct pollfd p[2] = {{.fd = rl->client, .events = POLLIN}, {.fd = rl->up, .events = POLLIN}};
    if (poll(p, 2, UPSTREAM_TIMEOUT_S * 1000) <= 0) break;
    bool stop = false;
    for (int i = 0; i < 2 && !stop; i++) {
      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = recv(p[i].fd, buf, sizeof buf, 0);
      if (n <= 0) stop = true;
      else if (!write_all(i == 0 ? rl->up : rl->client, buf, (size_t)n)) stop = true;
    }
    if (stop) break;
  }
done:
  close(rl->up);
  MHD_upgrade_action(rl->urh, MHD_UPGRADE_ACTION_CLOSE);
  cc_sbd_unref(rl->sb);
  free(rl->extra);
  free(rl);
  return NULL;
}

typedef struct {
  int up;
  cc_sbd_sandbox *sb;
  char *pre; /* upstream bytes after the 101 head */
  size_t pre_len;
} upgrade_ctx;

static void on_upgrade(void *cls, struct MHD_Connection *c, void *con_cls, const char *extra_in,
                       size_t extra_in_size, MHD_socket sock,
                       struct MHD_UpgradeResponseHandle *urh) {
  upgrade_ctx *u = cls;
  relay *rl = calloc(1, sizeof *rl);
  if (rl && u->pre_len && !write_all(sock, u->pre, u->pre_len)) {
    free(rl);
    rl = NULL;
  }
  if (rl && extra_in_size) {
    rl->extra = malloc(extra_in_size);
    if (rl->extra) {
      memcpy(rl->extra, extra_in, extra_in_size);
      rl->extra_len = extra_in_size;
    }
  }
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (rl) {
    rl->up = u->up;
    rl->client = sock;
    rl->urh = urh;
    rl->sb = u->sb;
    u->sb = NULL;
    u->up = -1;
  }
  if (!rl || pthread_create(&t, &attr, relay_main, rl) != 0) {
    if (rl) {
      close(rl->up);
      cc_sbd_unref(rl->sb);
      free(rl->extra);
      free(rl);
    }
    MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
  }
  pthread_attr_destroy(&attr);
  free(u->pre);
  if (u->up >= 0) close(u->up);
  cc_sbd_unref(u->sb);
  free(u);
}

static bool header_has_token(const char *v, const char *tok) {
  if (!v) return false;
  size_t tl = strlen(tok);
  for (const char *p = v; *p;) {
    while (*p == ' ' || *p == ',') p++;
    const char *e = p;
    while (*e && *e != ',') e++;
    const char *t = e;
    while (t > p && t[-1] == ' ') t--;
    if ((size_t)(t - p) == tl && strncasecmp(p, tok, tl) == 0) return true;
    p = e;
  }
  return false;
}

enum MHD_Result cc_sbd_proxy_handle(cc_sbd_req *r) {
  if (!r->sb) return cc_sbd_respond_502(r->conn, r->sandbox_id, -1);
  if (r->port <= 0 || r->port > 65535)
    return cc_sbd_respond_error(r->conn, 400, "invalid sandbox port");
  if (r->too_large) return cc_sbd_respond_error(r->conn, 413, "request body too large");
  bool upgrade = header_has_token(cc_sbd_header(r->conn, "Connection"), "upgrade") &&
                 cc_sbd_header(r->conn, "Upgrade");
  int fd = -1;
  cc_sbx_err err = {0};
  cc_status st = cc_sbx_connect_port(r->sb->sbx, (uint16_t)r->port, &fd, &err);
  if (st == CC_SANDBOX_UNAVAILABLE) return cc_sbd_respond_502(r->conn, r->sb->id, -1);
  if (st != CC_OK) return cc_sbd_respond_502(r->conn, r->sb->id, r->port);
  struct timeval tv = {.tv_sec = UPSTREAM_TIMEOUT_S};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

  sbuf req = {0};
  sb_str(&req, r->method);
  sb_str(&req, " ");
  sb_str(&req, r->raw_uri ? r->raw_uri : r->url);
  sb_str(&req, upgrade ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n");
  char mask[CC_SBD_MASK_MAX + 16];
  hdr_ctx hc = {&req, upgrade, cc_sbd_net_host_for(r->sb, r->port, mask, sizeof mask)};
  if (hc.mask_host) {
    sb_str(&req, "Host: ");
    sb_str(&req, mask);
    sb_str(&req, "\r\n");
  }
  MHD_get_connection_values(r->conn, MHD_HEADER_KIND, copy_header, &hc);
  if (upgrade) sb_str(&req, "Connection: Upgrade\r\n");
  else sb_str(&req, "Connection: close\r\n");
  if (r->len || (strcmp(r->method, "POST") == 0 || strcmp(r->method, "PUT") == 0 ||
                 strcmp(r->method, "PATCH") == 0)) {
    char cl[48];
    snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", r->len);
    sb_str(&req, cl);
  }
  sb_str(&req, "\r\n");
  bool ok = !req.oom && write_all(fd, req.buf, req.len) && (!r->len || write_all(fd, r->body, r->len));
  free(req.buf);
  if (!ok) {
    close(fd);
    return cc_sbd_respond_502(r->conn, r->sb->id, r->port);
  }

  /* read the response head */
  char *head = malloc(MAX_RESPONSE_HEAD + 1);
  size_t hl = 0;
  char *end = NULL;
  while (head && hl < MAX_RESPONSE_HEAD) {
    ssize_t n = recv(fd, head + hl, MAX_RESPONSE_HEAD - hl, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    hl += (size_t)n;
    head[hl] = 0;
    end = memmem(head, hl, "\r\n\r\n", 4);
    if (end) break;
  }
  int status = 0;
  if (!end || sscanf(head, "HTTP/%*d.%*d %d", &status) != 1 || status < 100 || status > 999) {
    free(head);
    close(fd);
    return cc_sbd_respond_error(r->conn, 502, "the server in the sandbox sent an invalid response");
  }
  size_t body_off = (size_t)(end - head) + 4;
  struct MHD_Response *resp = NULL;
  long long content_length = -1;
  upgrade_ctx *uc = NULL;
  body_stream *bs = NULL;
  if (status == 101 && upgrade) {
    uc = calloc(1, sizeof *uc);
    if (uc) {
      uc->up = fd;
      uc->sb = r->sb;
      cc_sbd_ref(r->sb);
      uc->pre_len = hl - body_off;
      uc->pre = malloc(uc->pre_len ? uc->pre_len : 1);
      if (uc->pre) memcpy(uc->pre, head + body_off, uc->pre_len);
      resp = MHD_create_response_for_upgrade(on_upgrade, uc);
    }
  } else {
    /* find Content-Length first */
    for (char *line = strstr(head, "\r\n") + 2; line < end; line = strstr(line, "\r\n") + 2) {
      if (strncasecmp(line, "content-length:", 15) == 0) content_length = strtoll(line + 15, NULL, 10);
    }
    bs = calloc(1, sizeof *bs);
    if (bs) {
      bs->fd = fd;
      bs->sb = r->sb;
      cc_sbd_ref(r->sb);
      bs->pre_len = hl - body_off;
      bs->pre = malloc(bs->pre_len ? bs->pre_len : 1);
      if (bs->pre) memcpy(bs->pre, head + body_off, bs->pre_len);
      else bs->pre_len = 0;
      bool no_body = strcmp(r->method, "HEAD") == 0 || status == 204 || status == 304;
      resp = MHD_create_response_from_callback(
          no_body ? 0 : content_length >= 0 ? (uint64_t)content_length : MHD_SIZE_UNKNOWN,
          32 * 1024, body_read, bs, body_free);
      if (!resp) {
        body_free(bs);
        fd = -1;
      }
    }
  }
  if (!resp) {
    free(head);
    if (uc) {
      free(uc->pre);
      cc_sbd_unref(uc->sb);
      free(uc);
    }
    if (fd >= 0 && !bs) close(fd);
    return cc_sbd_respond_error(r->conn, 500, "out of memory");
  }
  /* copy the upstream headers */
  for (char *line = strstr(head, "\r\n") + 2; line < end;) {
    char *eol = strstr(line, "\r\n");
    *eol = 0;
    char *colon = strchr(line, ':');
    if (colon) {
      *colon = 0;
      char *v = colon + 1;
      while (*v == ' ' || *v == '\t') v++;
      bool skip = hop_by_hop(line, status == 101);
      if (status == 101 && strcasecmp(line, "upgrade") == 0) skip = false;
      if (!skip) MHD_add_response_header(resp, line, v);
    }
    line = eol + 2;
  }
  if (status == 101) MHD_add_response_header(resp, "Connection", "Upgrade");
  free(head);
  enum MHD_Result res = MHD_queue_response(r->conn, (unsigned)status, resp);
  MHD_destroy_response(resp);
  return res;
}
