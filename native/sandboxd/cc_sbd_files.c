/*
 * cc_sbd_files: envd's file API for one sandbox, served by codecanvas-sandboxd: GET/POST
 * /files (download; streaming multipart upload bounded by --max-upload), the v1 signatures of
 * /files URLs (and finding the sandbox a signed URL belongs to), and the filesystem.Filesystem
 * unary RPCs (Stat, MakeDir, Move, ListDir, Remove).  As in cc_sbd_envd.c, every file
 * operation runs inside the sandbox through the runtime (cc_sbx); this module only speaks the
 * protocol (e2b-protocol.md §2.4, §5, §6).  WatchDir, a stream, lives with the other streams
 * in cc_sbd_envd.c.
 */
#include "cc_sbd_files.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cc_connect.h"
#include "cc_multipart.h"
#include "cc_sbd_envd.h"
#include "cc_sbd_gunzip.h"
#include "cc_sbd_meta.h"
#include "cc_sbx.h"

#define MAX_LIST_ENTRIES 100000

static const char *json_str(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---------- signed URLs ---------- */

void cc_sbd_files_signature(const char *path, const char *operation, const char *username,
                            const char *token, const char *expiration, char out[48]) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  size_t n = strlen(path) + strlen(operation) + strlen(username) + strlen(token) +
             (expiration ? strlen(expiration) : 0) + 5;
  char *msg = malloc(n);
  if (!msg) {
    snprintf(out, 48, "v1_");
    return;
  }
  if (expiration)
    snprintf(msg, n, "%s:%s:%s:%s:%s", path, operation, username, token, expiration);
  else
    snprintf(msg, n, "%s:%s:%s:%s", path, operation, username, token);
  SHA256((const unsigned char *)msg, strlen(msg), md);
  free(msg);
  char *b = cc_sbd_envd_b64(md, sizeof md, false);
  snprintf(out, 48, "v1_%s", b ? b : "");
  free(b);
}

typedef struct {
  const char *path, *op, *username, *signature, *expiration;
} sig_ctx;

static bool sig_matches(const cc_sbd_sandbox *sb, void *arg) {
  sig_ctx *c = arg;
  if (!sb->token[0]) return false;
  char want[48];
  cc_sbd_files_signature(c->path, c->op, c->username, sb->token, c->expiration, want);
  size_t lw = strlen(want), ls = strlen(c->signature);
  unsigned char d = (unsigned char)(lw != ls);
  for (size_t i = 0; i < lw; i++) d |= (unsigned char)(want[i] ^ c->signature[i < ls ? i : 0]);
  return d == 0;
}

static void fill_sig_ctx(cc_sbd_req *r, sig_ctx *c) {
  c->path = cc_sbd_query(r->conn, "path");
  c->op = strcmp(r->method, "GET") == 0 ? "read" : "write";
  c->username = cc_sbd_query(r->conn, "username");
  c->signature = cc_sbd_query(r->conn, "signature");
  c->expiration = cc_sbd_query(r->conn, "signature_expiration");
  if (!c->path) c->path = "";
  if (!c->username) c->username = "";
}

cc_sbd_sandbox *cc_sbd_files_find_signed(cc_sbd_req *r) {
  sig_ctx c;
  fill_sig_ctx(r, &c);
  return cc_sbd_find_matching(r->srv, sig_matches, &c);
}

/* ---------- /files ---------- */

/* envd's /files access rule: a matching X-Access-Token, else a valid signature; then the
 * user.  Returns 0 when allowed, else the HTTP status with the message in msg. */
static unsigned files_check(cc_sbd_req *r, char *msg, size_t msg_size) {
  cc_sbd_sandbox *sb = r->sb;
  const char *u = cc_sbd_query(r->conn, "username");
  if (sb->token[0]) {
    const char *tok = cc_sbd_header(r->conn, "X-Access-Token");
    if (tok) {
      if (strcmp(tok, sb->token) != 0) {
        snprintf(msg, msg_size, "access token present in header but does not match");
        return 401;
      }
    } else {
      sig_ctx c;
      fill_sig_ctx(r, &c);
      if (!c.signature) {
        snprintf(msg, msg_size, "missing signature query parameter");
        return 401;
      }
      if (!sig_matches(sb, &c)) {
        snprintf(msg, msg_size, "invalid signature");
        return 401;
      }
      if (c.expiration) {
        char *end;
        long long exp = strtoll(c.expiration, &end, 10);
        if (*end || exp < (long long)(cc_sbd_now_ms() / 1000)) {
          snprintf(msg, msg_size, "signature is already expired");
          return 401;
        }
      }
    }
  }
  if (!cc_sbd_envd_user_ok(u)) {
    snprintf(msg, msg_size, "error looking up user '%.100s': user: unknown user %.100s", u, u);
    return 401;
  }
  r->as_root = u && strcmp(u, "root") == 0 && r->srv->root_inside;
  return 0;
}

static enum MHD_Result files_download(cc_sbd_req *r) {
  const char *path = cc_sbd_query(r->conn, "path");
  char abs[4096];
  if (!cc_sbd_envd_resolve_path_as(r->as_root, path, abs, sizeof abs))
    return cc_sbd_respond_error(r->conn, 400, "invalid path '%s'", path ? path : "");
  int fd = -1;
  int64_t size = 0;
  cc_sbx_err err = {0};
  cc_status st = cc_sbx_fs_open_read_as(r->sb->sbx, r->as_root, abs, &fd, &size, &err);
  if (st != CC_OK) {
    switch (err.kind) {
      case CC_SBX_ERR_NOT_FOUND:
        return cc_sbd_respond_error(r->conn, 404, "path '%s' does not exist", abs);
      case CC_SBX_ERR_IS_DIR:
        return cc_sbd_respond_error(r->conn, 400, "path '%s' is a directory", abs);
      case CC_SBX_ERR_INVALID_PATH:
      case CC_SBX_ERR_INVALID_ARG:
      case CC_SBX_ERR_NOT_DIR:
      case CC_SBX_ERR_LOOP:
        return cc_sbd_respond_error(r->conn, 400, "%s", cc_sbd_envd_err_msg(&err, st));
      case CC_SBX_ERR_PERMISSION:
        return cc_sbd_respond_error(r->conn, 403, "%s", cc_sbd_envd_err_msg(&err, st));
      case CC_SBX_ERR_GONE:
        return cc_sbd_respond_502(r->conn, r->sb->id, -1);
      default:
        return cc_sbd_respond_error(r->conn, 500, "%s", cc_sbd_envd_err_msg(&err, st));
    }
  }
  struct MHD_Response *resp = MHD_create_response_from_fd((uint64_t)size, fd);
  if (!resp) {
    close(fd);
    return cc_sbd_respond_error(r->conn, 500, "out of memory");
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
  enum MHD_Result res = MHD_queue_response(r->conn, 200, resp);
  MHD_destroy_response(resp);
  return res;
}

/* One POST /files: a multipart body (each "file" part is a file) or, with Content-Type
 * application/octet-stream, the body is the one file at ?path= (envd >= 0.5.7); either may be
 * gzip-encoded (Content-Encoding: gzip).  Every file written gets the request's X-Metadata-*
 * set as its whole metadata (envd >= 0.6.2).  The body streams through: gzip decoder (if
 * any) -> multipart parser (if any) -> the file's fd. */
typedef struct {
  cc_sbd_req *r;
  cc_multipart *mp;  /* NULL for a raw (octet-stream) body */
  cc_sbd_gunzip *gz; /* NULL unless Content-Encoding: gzip */
  cc_sbd_meta *meta; /* the X-Metadata-* set (possibly empty) */
  cc_status inner;   /* the first failure behind the gzip decoder */
  const char *qpath;
  int fd;
  bool skipping;
  char cur[4096];
  size_t written, max;
  cJSON *result;
  unsigned err_status;
  char fail_msg[600];
} upload;

static cc_status upload_fail(upload *u, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static cc_status upload_fail(upload *u, unsigned status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(u->fail_msg, sizeof u->fail_msg, fmt, ap);
  va_end(ap);
  u->err_status = status;
  return CC_BAD_REQUEST;
}

static cc_status up_begin(void *ctx, const char *name, const char *filename, const char *ctype) {
  (void)ctype;
  upload *u = ctx;
  u->skipping = !name || strcmp(name, "file") != 0;
  if (u->skipping) return CC_OK;
  const char *p = u->qpath ? u->qpath : filename;
  if (!p) return upload_fail(u, 400, "missing path: no path parameter and no filename");
  if (!cc_sbd_envd_resolve_path_as(u->r->as_root, p, u->cur, sizeof u->cur))
    return upload_fail(u, 400, "invalid path '%s'", p);
  const cJSON *it;
  cJSON_ArrayForEach(it, u->result) {
    const char *seen = json_str(it, "path");
    if (seen && strcmp(seen, u->cur) == 0)
      return upload_fail(u, 400,
                         "you cannot upload multiple files to the same path '%s' in one upload "
                         "request, only the first specified file was uploaded",
                         u->cur);
  }
  cc_sbx_err err = {0};
  /* as E2B's envd: root's rights, and the file (and any directory made for it) given to the
   * requesting user */
  cc_status st = u->r->as_root ? cc_sbx_fs_open_write_as(u->r->sb->sbx, true, u->cur, &u->fd, &err)
                               : cc_sbx_fs_open_write_given(u->r->sb->sbx, u->cur, &u->fd, &err);
  if (st != CC_OK) {
    u->fd = -1;
    switch (err.kind) {
      case CC_SBX_ERR_IS_DIR:
        return upload_fail(u, 400, "path is a directory: %s", u->cur);
      case CC_SBX_ERR_NO_SPACE:
        return upload_fail(u, 507, "not enough disk space available");
      case CC_SBX_ERR_NOT_DIR:
      case CC_SBX_ERR_INVALID_PATH:
      case CC_SBX_ERR_INVALID_ARG:
      case CC_SBX_ERR_LOOP:
        return upload_fail(u, 400, "%s", cc_sbd_envd_err_msg(&err, st));
      case CC_SBX_ERR_PERMISSION:
        return upload_fail(u, 403, "%s", cc_sbd_envd_err_msg(&err, st));
      default:
        return upload_fail(u, 500, "error opening file: %s", cc_sbd_envd_err_msg(&err, st));
    }
  }
  return CC_OK;
}

static cc_status up_data(void *ctx, const uint8_t *d, size_t n) {
  upload *u = ctx;
  if (u->skipping) return CC_OK;
  u->written += n;
  if (u->written > u->max)
    return upload_fail(u, 413, "upload larger than the limit of %zu bytes", u->max);
  while (n > 0) {
    ssize_t w = write(u->fd, d, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOSPC || errno == EDQUOT)
        return upload_fail(u, 507, "attempted to write %zu bytes: not enough disk space available",
                           n);
      return upload_fail(u, 500, "error writing file %s: %s", u->cur, strerror(errno));
    }
    d += w;
    n -= (size_t)w;
  }
  return CC_OK;
}

/* The file is written: its metadata becomes the request's set (an upload without
 * X-Metadata-* headers clears what an earlier one left: O_TRUNC keeps attributes), then the
 * entry reports what the file really holds. */
static cc_status up_end(void *ctx) {
  upload *u = ctx;
  if (u->skipping) return CC_OK;
  int fd = u->fd;
  u->fd = -1;
  int me = cc_sbd_meta_write_fd(fd, u->meta);
  bool asked = u->meta && u->meta->n > 0;
  cJSON *md = me == 0 ? cc_sbd_meta_read_fd(fd) : NULL;
  if (close(fd) != 0 && (errno == ENOSPC || errno == EDQUOT) && !me) me = ENOSPC;
  if (me == ENOSPC || me == EDQUOT) {
    cJSON_Delete(md);
    return upload_fail(u, 507, "not enough space for file metadata: %s", u->cur);
  }
  if ((me == ENOTSUP || me == EOPNOTSUPP) && asked)
    return upload_fail(u, 400,
                       "file metadata cannot be stored at %s: its file system keeps no extended "
                       "attributes (the file was written without it)",
                       u->cur);
  if (me && me != ENOTSUP && me != EOPNOTSUPP)
    return upload_fail(u, 500, "error writing file metadata of %s: %s", u->cur, strerror(me));
  const char *base = strrchr(u->cur, '/');
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "name", base ? base + 1 : u->cur);
  cJSON_AddStringToObject(o, "type", "file");
  cJSON_AddStringToObject(o, "path", u->cur);
  if (md) cJSON_AddItemToObject(o, "metadata", md);
  cJSON_AddItemToArray(u->result, o);
  return CC_OK;
}

static void upload_free(void *state) {
  upload *u = state;
  if (!u) return;
  if (u->fd >= 0) close(u->fd);
  cc_multipart_free(u->mp);
  cc_sbd_gunzip_free(u->gz);
  cc_sbd_meta_free(u->meta);
  cJSON_Delete(u->result);
  free(u);
}

/* Decoded body bytes: into the multipart parser, or straight into the one file. */
static cc_status body_bytes(void *ctx, const uint8_t *d, size_t n) {
  upload *u = ctx;
  cc_status st = u->mp ? cc_multipart_feed(u->mp, d, n) : up_data(u, d, n);
  if (st != CC_OK && u->inner == CC_OK) u->inner = st;
  return st;
}

/* Records the failure of status st (from the decoder or behind it) on r; always false. */
static bool upload_failed(cc_sbd_req *r, upload *u, cc_status st) {
  if (u->err_status) return cc_sbd_req_fail(r, u->err_status, "%s", u->fail_msg);
  if (u->gz && u->inner == CC_OK)
    return cc_sbd_req_fail(r, st == CC_INTERNAL ? 500 : 400,
                           "error decompressing request body: not valid gzip data");
  if (st == CC_TOO_LARGE)
    return cc_sbd_req_fail(r, 400, "multipart headers too large or too many parts");
  if (st == CC_INTERNAL) return cc_sbd_req_fail(r, 500, "out of memory");
  return cc_sbd_req_fail(r, 400, "error parsing multipart request");
}

static bool upload_feed(cc_sbd_req *r, const char *data, size_t n) {
  upload *u = r->sink_state;
  cc_status st = u->gz ? cc_sbd_gunzip_feed(u->gz, (const uint8_t *)data, n)
                       : body_bytes(u, (const uint8_t *)data, n);
  return st == CC_OK ? true : upload_failed(r, u, st);
}

static const cc_sbd_body_sink upload_sink = {upload_feed, upload_free};

typedef struct {
  cc_sbd_meta *meta;
  cc_status st;
  char err[300];
} meta_scan;

static enum MHD_Result meta_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value) {
  (void)kind;
  meta_scan *m = cls;
  m->st = cc_sbd_meta_add_header(m->meta, key, value, m->err, sizeof m->err);
  return m->st == CC_OK ? MHD_YES : MHD_NO;
}

/* The media type of a Content-Type value (before any ';', trimmed) into out, lowercased. */
static void media_type(const char *ct, char *out, size_t out_size) {
  size_t o = 0;
  if (ct)
    for (; *ct && *ct != ';' && o + 1 < out_size; ct++)
      if (*ct != ' ' && *ct != '\t') out[o++] = (char)(*ct >= 'A' && *ct <= 'Z' ? *ct + 32 : *ct);
  out[o] = 0;
}

/* Sets up the streaming upload of POST /files (see the upload struct). */
static void upload_begin(cc_sbd_req *r) {
  const char *ctype = cc_sbd_header(r->conn, "Content-Type");
  const char *cenc = cc_sbd_header(r->conn, "Content-Encoding");
  char mt[128], enc[64];
  media_type(ctype, mt, sizeof mt);
  media_type(cenc, enc, sizeof enc);
  bool raw = strcmp(mt, "application/octet-stream") == 0;
  bool gzip = strcmp(enc, "gzip") == 0;
  if (enc[0] && !gzip && strcmp(enc, "identity") != 0) {
    cc_sbd_req_fail(r, 400, "unsupported Content-Encoding: %s, supported: [gzip]", cenc);
    return;
  }
  if (!raw && strncmp(mt, "multipart/", 10) != 0) {
    cc_sbd_req_fail(r, 400,
                    "unsupported content type: %s, expected multipart/form-data or "
                    "application/octet-stream",
                    ctype ? ctype : "");
    return;
  }
  char boundary[CC_MULTIPART_MAX_BOUNDARY + 1];
  if (!raw && cc_multipart_boundary(ctype, boundary, sizeof boundary) != CC_OK) {
    cc_sbd_req_fail(r, 400, "request must be multipart/form-data with a boundary");
    return;
  }
  const char *qpath = cc_sbd_query(r->conn, "path");
  if (raw && !qpath) {
    cc_sbd_req_fail(r, 400, "path query parameter is required for raw body upload");
    return;
  }
  meta_scan ms = {.meta = cc_sbd_meta_new()};
  if (!ms.meta) {
    cc_sbd_req_fail(r, 500, "out of memory");
    return;
  }
  MHD_get_connection_values(r->conn, MHD_HEADER_KIND, meta_header, &ms);
  if (ms.st != CC_OK) {
    cc_sbd_meta_free(ms.meta);
    cc_sbd_req_fail(r, ms.st == CC_BAD_REQUEST ? 400 : 500, "%s",
                    ms.st == CC_BAD_REQUEST ? ms.err : "out of memory");
    return;
  }
  upload *u = calloc(1, sizeof *u);
  if (!u) {
    cc_sbd_meta_free(ms.meta);
    cc_sbd_req_fail(r, 500, "out of memory");
    return;
  }
  static const cc_multipart_callbacks cb = {up_begin, up_data, up_end};
  u->r = r;
  u->fd = -1;
  u->max = r->srv->cfg.max_upload;
  u->qpath = qpath;
  u->meta = ms.meta;
  u->result = cJSON_CreateArray();
  u->mp = raw ? NULL : cc_multipart_new(boundary, 1000, &cb, u);
  u->gz = gzip ? cc_sbd_gunzip_new(body_bytes, u) : NULL;
  if ((!raw && !u->mp) || (gzip && !u->gz) || !u->result) {
    upload_free(u);
    cc_sbd_req_fail(r, 500, "out of memory");
    return;
  }
  r->sink = &upload_sink;
  r->sink_state = u;
  if (raw && up_begin(u, "file", NULL, NULL) != CC_OK) upload_failed(r, u, CC_BAD_REQUEST);
}

static enum MHD_Result upload_finish(cc_sbd_req *r) {
  upload *u = r->sink_state;
  if (!u) return cc_sbd_respond_error(r->conn, 400, "missing body");
  cc_status st = u->gz ? cc_sbd_gunzip_finish(u->gz) : CC_OK;
  if (st != CC_OK) {
    if (u->err_status) return cc_sbd_respond_error(r->conn, u->err_status, "%s", u->fail_msg);
    if (u->inner == CC_OK)
      return cc_sbd_respond_error(r->conn, 400,
                                  "error decompressing request body: unexpected end of gzip data");
  }
  if (st == CC_OK && u->mp) {
    st = cc_multipart_finish(u->mp);
    if (st != CC_OK) return cc_sbd_respond_error(r->conn, 400, "incomplete multipart body");
  } else if (st == CC_OK) {
    st = up_end(u);
  }
  if (st != CC_OK)
    return u->err_status ? cc_sbd_respond_error(r->conn, u->err_status, "%s", u->fail_msg)
                         : cc_sbd_respond_error(r->conn, 400, "error parsing multipart request");
  cJSON *res = u->result;
  u->result = NULL;
  return cc_sbd_respond_json(r->conn, 200, res);
}

void cc_sbd_files_begin_upload(cc_sbd_req *r) {
  char msg[256];
  unsigned status = files_check(r, msg, sizeof msg);
  if (status) {
    cc_sbd_req_fail(r, status, "%s", msg);
    return;
  }
  upload_begin(r);
}

enum MHD_Result cc_sbd_files_handle(cc_sbd_req *r) {
  if (strcmp(r->method, "POST") == 0) return upload_finish(r);
  if (strcmp(r->method, "GET") != 0)
    return cc_sbd_respond_error(r->conn, 405, "method %s not allowed", r->method);
  char msg[256];
  unsigned status = files_check(r, msg, sizeof msg);
  return status ? cc_sbd_respond_error(r->conn, status, "%s", msg) : files_download(r);
}

/* ---------- filesystem.Filesystem (unary) ---------- */

static const char *filetype_name(cc_sbx_filetype t) {
  switch (t) {
    case CC_SBX_FT_FILE:
      return "FILE_TYPE_FILE";
    case CC_SBX_FT_DIR:
      return "FILE_TYPE_DIRECTORY";
    default:
      return "FILE_TYPE_UNSPECIFIED";
  }
}

cJSON *cc_sbd_files_entry_json(const cc_sbx_entry *e) {
  cJSON *o = cJSON_CreateObject();
  char size[32], ts[64], base[40];
  cJSON_AddStringToObject(o, "name", e->name ? e->name : "");
  cJSON_AddStringToObject(o, "type", filetype_name(e->type));
  cJSON_AddStringToObject(o, "path", e->path ? e->path : "");
  snprintf(size, sizeof size, "%" PRId64, e->size);
  cJSON_AddStringToObject(o, "size", size);
  cJSON_AddNumberToObject(o, "mode", e->mode);
  cJSON_AddStringToObject(o, "permissions", e->permissions);
  cJSON_AddStringToObject(o, "owner", e->owner);
  cJSON_AddStringToObject(o, "group", e->group);
  time_t sec = (time_t)e->mtime_sec;
  struct tm tm;
  gmtime_r(&sec, &tm);
  strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(ts, sizeof ts, "%s.%09dZ", base, (int)e->mtime_nsec);
  cJSON_AddStringToObject(o, "modifiedTime", ts);
  if (e->symlink_target) cJSON_AddStringToObject(o, "symlinkTarget", e->symlink_target);
  if (e->n_meta) {
    cJSON *md = cJSON_AddObjectToObject(o, "metadata");
    for (size_t i = 0; md && i < e->n_meta; i++)
      cJSON_AddStringToObject(md, e->meta_keys[i], e->meta_values[i]);
  }
  return o;
}

static enum MHD_Result fs_entry_result(cc_sbd_req *r, cc_status st, cc_sbx_entry *e,
                                       const cc_sbx_err *err) {
  if (st != CC_OK) {
    cc_sbx_entry_cleanup(e);
    return cc_sbd_envd_rpc_error(r, err, st);
  }
  cJSON *o = cJSON_CreateObject();
  cJSON_AddItemToObject(o, "entry", cc_sbd_files_entry_json(e));
  cc_sbx_entry_cleanup(e);
  return cc_sbd_envd_rpc_ok(r, o);
}

enum MHD_Result cc_sbd_files_rpc(cc_sbd_req *r, const char *method, cJSON *msg) {
  cc_sbx *sbx = r->sb->sbx;
  cc_sbx_err err = {0};
  cc_sbx_entry e = {0};
  const char *path = json_str(msg, "path");
  if (!path) path = "";
  bool root = r->as_root;
  if (strcmp(method, "Stat") == 0)
    return fs_entry_result(r, cc_sbx_fs_stat_as(sbx, root, path, &e, &err), &e, &err);
  if (strcmp(method, "MakeDir") == 0)
    return fs_entry_result(r,
                           root ? cc_sbx_fs_mkdir_as(sbx, true, path, &e, &err)
                                : cc_sbx_fs_mkdir_given(sbx, path, &e, &err),
                           &e, &err);
  if (strcmp(method, "Move") == 0) {
    const char *src = json_str(msg, "source"), *dst = json_str(msg, "destination");
    return fs_entry_result(
        r, cc_sbx_fs_move_as(sbx, root, src ? src : "", dst ? dst : "", &e, &err), &e, &err);
  }
  if (strcmp(method, "Remove") == 0) {
    cc_status st = cc_sbx_fs_remove_as(sbx, root, path, &err);
    return st == CC_OK ? cc_sbd_envd_rpc_ok(r, cJSON_CreateObject())
                       : cc_sbd_envd_rpc_error(r, &err, st);
  }
  if (strcmp(method, "ListDir") == 0) {
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(msg, "depth");
    uint32_t depth = cJSON_IsNumber(d) && d->valuedouble > 0 ? (uint32_t)d->valuedouble : 1;
    cc_sbx_entry *list = NULL;
    size_t n = 0;
    cc_status st = cc_sbx_fs_list_as(sbx, root, path, depth, MAX_LIST_ENTRIES, &list, &n, &err);
    if (st != CC_OK) return cc_sbd_envd_rpc_error(r, &err, st);
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "entries");
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, cc_sbd_files_entry_json(&list[i]));
    cc_sbx_entries_free(list, n);
    return cc_sbd_envd_rpc_ok(r, o);
  }
  return cc_sbd_respond_connect_error(r->conn, CC_CONNECT_UNIMPLEMENTED,
                                      "filesystem.Filesystem/%s is not implemented by "
                                      "codecanvas-sandboxd",
                                      method);
}
