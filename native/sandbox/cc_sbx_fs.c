/*
 * cc_sbx_fs: file operations and port connections in a sandbox (see cc_sbx.h "Ports" and "Files").
 *
 * Every operation is one request to the agent, which performs it inside the sandbox's
 * namespaces as uid 1000 (or root, the _as calls): the host resolves a path only as text
 * (cc_sbx_resolve_path, which refuses ".."), never through the sandbox's filesystem.  Files
 * are read and written through descriptors the agent opens and passes back; a port is a
 * socket the agent connects inside and passes back.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cc_sbx_priv.h"

/* ---- paths and payloads ------------------------------------------------------------------- */

/* Resolves a cwd or file path the way envd does (see cc_sbx.h); refuses "..". */
bool cc_sbx_resolve_path(const char *in, bool root, char *out, size_t cap) {
  char raw[CC_SBX_WIRE_PATH_MAX + 16];
  const char *home = root ? "/root" : "/home/user";
  if (!in || !in[0]) in = "~";
  if (strlen(in) >= CC_SBX_WIRE_PATH_MAX) return false;
  if (in[0] == '~') {
    if (in[1] && in[1] != '/') return false; /* ~otheruser */
    snprintf(raw, sizeof raw, "%s%s", home, in + 1);
  } else if (in[0] == '/') {
    snprintf(raw, sizeof raw, "%s", in);
  } else {
    snprintf(raw, sizeof raw, "%s/%s", home, in);
  }
  size_t o = 0;
  char *save = NULL;
  for (char *t = strtok_r(raw, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
    if (strcmp(t, ".") == 0) continue;
    if (strcmp(t, "..") == 0) return false;
    size_t n = strlen(t);
    if (o + n + 2 > cap) return false;
    out[o++] = '/';
    memcpy(out + o, t, n);
    o += n;
  }
  if (o == 0) out[o++] = '/';
  out[o] = 0;
  return true;
}

bool cc_sbx_put_str(char *buf, size_t cap, size_t *off, const char *s) {
  size_t n = strlen(s) + 1;
  if (*off + n > cap) return false;
  memcpy(buf + *off, s, n);
  *off += n;
  return true;
}

/* ---- ports ------------------------------------------------------------------------------- */

cc_status cc_sbx_connect_port(cc_sbx *sbx, uint16_t port, int *fd, cc_sbx_err *err) {
  *fd = -1;
  if (port == 0) return cc_sbx_fail(err, CC_SBX_ERR_INVALID_ARG, EINVAL, "invalid port 0");
  cc_sbx_wire_hdr h = {.op = CC_SBX_OP_CONNECT, .a = port};
  pending pd = {0};
  int e = cc_sbx_agent_call(sbx, &h, NULL, 0, NULL, 0, &pd, CC_SBX_AGENT_TIMEOUT_MS);
  int ae = pd.hdr.err;
  if (e) {
    cc_sbx_pending_cleanup(&pd);
    return cc_sbx_gone(sbx, err, e);
  }
  if (ae || pd.fd < 0) {
    cc_sbx_pending_cleanup(&pd);
    return cc_sbx_fail(err, CC_SBX_ERR_NOT_FOUND, ae ? ae : EPROTO,
                       "port %u not open in sandbox %s: %s", port, sbx->id,
                       strerror(ae ? ae : EPROTO));
  }
  *fd = pd.fd;
  pd.fd = -1;
  cc_sbx_pending_cleanup(&pd);
  return CC_OK;
}

/* ---- files ------------------------------------------------------------------------------- */

void cc_sbx_entries_free(cc_sbx_entry *list, size_t n) {
  if (!list) return;
  for (size_t i = 0; i < n; i++) cc_sbx_entry_cleanup(&list[i]);
  free(list);
}

/* Runs one file operation in the agent.  path2 only for MOVE. */
/* Who a file operation acts as: uid 1000; uid 0 (root's home for relative paths); or, for
 * what creates (mkdir, open for writing), E2B's envd: uid 1000's paths, root's rights, and
 * what it creates given to uid 1000 (where the runtime has no root inside: as uid 1000). */
enum { AS_USER = 0, AS_ROOT = 1, AS_ENVD = 2 };

static cc_status fs_call(cc_sbx *sbx, int who, uint32_t op, const char *in, const char *in2,
                         int32_t a, int32_t b, char *path, char *path2, pending *pd,
                         cc_sbx_err *err) {
  bool root = who == AS_ROOT && sbx->rt->info.root_inside;
  bool give = who == AS_ENVD && sbx->rt->info.root_inside;
  if (!cc_sbx_resolve_path(in, root, path, CC_SBX_WIRE_PATH_MAX))
    return cc_sbx_fail(
        err, CC_SBX_ERR_INVALID_PATH, EINVAL,
        "invalid path '%s': '..' components, '~user' and paths over %d bytes are refused",
        in ? in : "", CC_SBX_WIRE_PATH_MAX - 1);
  if (in2 && !cc_sbx_resolve_path(in2, root, path2, CC_SBX_WIRE_PATH_MAX))
    return cc_sbx_fail(err, CC_SBX_ERR_INVALID_PATH, EINVAL, "invalid path '%s'", in2);
  char payload[2 * CC_SBX_WIRE_PATH_MAX + 2];
  size_t off = 0;
  cc_sbx_put_str(payload, sizeof payload, &off, path);
  if (in2) cc_sbx_put_str(payload, sizeof payload, &off, path2);
  cc_sbx_wire_hdr h = {.op = op,
                       .a = a,
                       .b = b,
                       .flags = root   ? CC_SBX_AS_ROOT
                                : give ? CC_SBX_GIVE_USER
                                       : 0u};
  int e = cc_sbx_agent_call(sbx, &h, payload, off, NULL, 0, pd, CC_SBX_AGENT_TIMEOUT_MS);
  if (e) return cc_sbx_gone(sbx, err, e);
  return CC_OK;
}

static cc_status entry_reply(pending *pd, cc_sbx_entry *out, cc_sbx_err *err, const char *path) {
  if (!out) return CC_OK;
  size_t off = 0;
  if (!cc_sbx_wire_decode_entry(pd->payload, pd->len, &off, out))
    return cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, EPROTO, "cannot stat %s", path);
  return CC_OK;
}

cc_status cc_sbx_fs_stat_as(cc_sbx *sbx, bool as_root, const char *in, cc_sbx_entry *out,
                            cc_sbx_err *err) {
  char path[CC_SBX_WIRE_PATH_MAX];
  pending pd = {0};
  memset(out, 0, sizeof *out);
  cc_status st = fs_call(sbx, as_root ? AS_ROOT : AS_USER, CC_SBX_OP_STAT, in, NULL, 0, 0, path,
                         NULL, &pd, err);
  if (st == CC_OK) {
    int ae = pd.hdr.err;
    if (ae == ENOENT)
      st = cc_sbx_fail(err, CC_SBX_ERR_NOT_FOUND, ae, "file not found: %s", path);
    else if (ae)
      st = cc_sbx_err_from_errno(err, ae, "stat", path);
    else
      st = entry_reply(&pd, out, err, path);
  }
  cc_sbx_pending_cleanup(&pd);
  return st;
}

static cc_status fs_mkdir(cc_sbx *sbx, int who, const char *in, cc_sbx_entry *out,
                          cc_sbx_err *err) {
  char path[CC_SBX_WIRE_PATH_MAX];
  pending pd = {0};
  if (out) memset(out, 0, sizeof *out);
  cc_status st = fs_call(sbx, who, CC_SBX_OP_MKDIR, in, NULL, 0, 0, path, NULL, &pd, err);
  if (st == CC_OK) {
    int ae = pd.hdr.err;
    if (ae == EEXIST)
      st = cc_sbx_fail(err, CC_SBX_ERR_EXISTS, ae, "directory already exists: %s", path);
    else if (ae == ENOTDIR)
      st = cc_sbx_fail(err, CC_SBX_ERR_NOT_DIR, ae,
                       "path already exists but it is not a directory: %s", path);
    else if (ae)
      st = cc_sbx_err_from_errno(err, ae, "mkdir", path);
    else
      st = entry_reply(&pd, out, err, path);
  }
  cc_sbx_pending_cleanup(&pd);
  return st;
}

cc_status cc_sbx_fs_mkdir_as(cc_sbx *sbx, bool as_root, const char *in, cc_sbx_entry *out,
                             cc_sbx_err *err) {
  return fs_mkdir(sbx, as_root ? AS_ROOT : AS_USER, in, out, err);
}

cc_status cc_sbx_fs_mkdir_given(cc_sbx *sbx, const char *in, cc_sbx_entry *out, cc_sbx_err *err) {
  return fs_mkdir(sbx, AS_ENVD, in, out, err);
}

cc_status cc_sbx_fs_move_as(cc_sbx *sbx, bool as_root, const char *src, const char *dst,
                            cc_sbx_entry *out, cc_sbx_err *err) {
  char path[CC_SBX_WIRE_PATH_MAX], path2[CC_SBX_WIRE_PATH_MAX];
  pending pd = {0};
  if (out) memset(out, 0, sizeof *out);
  cc_status st = fs_call(sbx, as_root ? AS_ROOT : AS_USER, CC_SBX_OP_MOVE, src, dst ? dst : "", 0,
                         0, path, path2, &pd, err);
  if (st == CC_OK) {
    int ae = pd.hdr.err;
    if (ae == ENOENT && pd.hdr.a == 1)
      st = cc_sbx_fail(err, CC_SBX_ERR_NOT_FOUND, ae, "source file not found: %s", path);
    else if (ae)
      st = cc_sbx_err_from_errno(err, ae, "move", path2);
    else
      st = entry_reply(&pd, out, err, path2);
  }
  cc_sbx_pending_cleanup(&pd);
  return st;
}

cc_status cc_sbx_fs_list_as(cc_sbx *sbx, bool as_root, const char *dir, uint32_t depth,
                            size_t max_entries, cc_sbx_entry **list, size_t *n, cc_sbx_err *err) {
  char path[CC_SBX_WIRE_PATH_MAX];
  pending pd = {0};
  *list = NULL;
  *n = 0;
  if (max_entries == 0 || max_entries > 1000000) max_entries = 100000;
  if (depth == 0) depth = 1;
  if (depth > 64) depth = 64;
  cc_status st = fs_call(sbx, as_root ? AS_ROOT : AS_USER, CC_SBX_OP_LIST, dir, NULL,
                         (int32_t)depth, (int32_t)max_entries, path, NULL, &pd, err);
  if (st != CC_OK) goto out;
  int ae = pd.hdr.err;
  if (ae == ENOENT) {
    st = cc_sbx_fail(err, CC_SBX_ERR_NOT_FOUND, ae, "path not found: %s", path);
  } else if (ae == ENOTDIR) {
    st = cc_sbx_fail(err, CC_SBX_ERR_NOT_DIR, ae, "path is not a directory: %s", path);
  } else if (ae == E2BIG) {
    st = cc_sbx_fail(err, CC_SBX_ERR_LIMIT, ae, "directory listing of %s exceeds %zu entries", path,
                     max_entries);
  } else if (ae) {
    st = cc_sbx_err_from_errno(err, ae, "list", path);
  } else if (pd.fd < 0 || pd.hdr.a < 0 || (size_t)pd.hdr.a > max_entries) {
    st = cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, EPROTO, "bad listing of %s", path);
  } else {
    struct stat sb;
    size_t count = (size_t)pd.hdr.a;
    if (fstat(pd.fd, &sb) != 0 || sb.st_size < 0 || sb.st_size > (64 << 20)) {
      st = cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, EPROTO, "bad listing of %s", path);
      goto out;
    }
    size_t len = (size_t)sb.st_size;
    unsigned char *buf = malloc(len ? len : 1);
    cc_sbx_entry *v = calloc(count + 1, sizeof *v);
    size_t got = 0;
    while (buf && got < len) {
      ssize_t k = pread(pd.fd, buf + got, len - got, (off_t)got);
      if (k <= 0) break;
      got += (size_t)k;
    }
    size_t off = 0, i = 0;
    if (buf && v && got == len)
      for (; i < count && cc_sbx_wire_decode_entry(buf, len, &off, &v[i]); i++) {
      }
    free(buf);
    if (!v || i != count) {
      cc_sbx_entries_free(v, i);
      st = cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, EPROTO, "bad listing of %s", path);
    } else {
      *list = v;
      *n = count;
    }
  }
out:
  cc_sbx_pending_cleanup(&pd);
  return st;
}

cc_status cc_sbx_fs_remove_as(cc_sbx *sbx, bool as_root, const char *in, cc_sbx_err *err) {
  char path[CC_SBX_WIRE_PATH_MAX];
  pending pd = {0};
  cc_status st = fs_call(sbx, as_root ? AS_ROOT : AS_USER, CC_SBX_OP_REMOVE, in, NULL, 0, 0, path,
                         NULL, &pd, err);
  if (st == CC_OK && pd.hdr.err) st = cc_sbx_err_from_errno(err, pd.hdr.err, "remove", path);
  cc_sbx_pending_cleanup(&pd);
  return st;
}

static cc_status open_errors(cc_sbx_err *err, int ae, const char *path) {
  if (ae == ENOENT) return cc_sbx_fail(err, CC_SBX_ERR_NOT_FOUND, ae, "file not found: %s", path);
  if (ae == EISDIR) return cc_sbx_fail(err, CC_SBX_ERR_IS_DIR, ae, "path is a directory: %s", path);
  if (ae == EINVAL)
    return cc_sbx_fail(err, CC_SBX_ERR_INVALID_ARG, ae, "not a regular file: %s", path);
  return cc_sbx_err_from_errno(err, ae, "open", path);
}

cc_status cc_sbx_fs_open_read_as(cc_sbx *sbx, bool as_root, const char *in, int *fd, int64_t *size,
                                 cc_sbx_err *err) {
  char path[CC_SBX_WIRE_PATH_MAX];
  pending pd = {0};
  *fd = -1;
  if (size) *size = 0;
  cc_status st = fs_call(sbx, as_root ? AS_ROOT : AS_USER, CC_SBX_OP_OPEN_READ, in, NULL, 0, 0,
                         path, NULL, &pd, err);
  if (st == CC_OK) {
    if (pd.hdr.err) {
      st = open_errors(err, pd.hdr.err, path);
    } else if (pd.fd < 0 || pd.len != sizeof(int64_t)) {
      st = cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, EPROTO, "cannot open %s", path);
    } else {
      if (size) memcpy(size, pd.payload, sizeof *size);
      *fd = pd.fd;
      pd.fd = -1;
    }
  }
  cc_sbx_pending_cleanup(&pd);
  return st;
}

static cc_status fs_open_write(cc_sbx *sbx, int who, const char *in, int *fd, cc_sbx_err *err) {
  char path[CC_SBX_WIRE_PATH_MAX];
  pending pd = {0};
  *fd = -1;
  cc_status st = fs_call(sbx, who, CC_SBX_OP_OPEN_WRITE, in, NULL, 0, 0, path, NULL, &pd, err);
  if (st == CC_OK) {
    if (pd.hdr.err)
      st = open_errors(err, pd.hdr.err, path);
    else if (pd.fd < 0)
      st = cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, EPROTO, "cannot open %s", path);
    else
      *fd = pd.fd, pd.fd = -1;
  }
  cc_sbx_pending_cleanup(&pd);
  return st;
}

cc_status cc_sbx_fs_open_write_as(cc_sbx *sbx, bool as_root, const char *in, int *fd,
                                  cc_sbx_err *err) {
  return fs_open_write(sbx, as_root ? AS_ROOT : AS_USER, in, fd, err);
}

cc_status cc_sbx_fs_open_write_given(cc_sbx *sbx, const char *in, int *fd, cc_sbx_err *err) {
  return fs_open_write(sbx, AS_ENVD, in, fd, err);
}

cc_status cc_sbx_fs_read_file(cc_sbx *sbx, const char *path, size_t max_bytes, uint8_t **data,
                              size_t *len, cc_sbx_err *err) {
  *data = NULL;
  *len = 0;
  int fd;
  int64_t size;
  cc_status st = cc_sbx_fs_open_read(sbx, path, &fd, &size, err);
  if (st != CC_OK) return st;
  size_t cap = 4096, n = 0;
  uint8_t *buf = malloc(cap + 1);
  for (;;) {
    if (!buf) {
      st = cc_sbx_fail(err, CC_SBX_ERR_SYSTEM, ENOMEM, "out of memory");
      break;
    }
    if (n == cap) {
      if (cap > max_bytes) {
        st = cc_sbx_fail(err, CC_SBX_ERR_LIMIT, EFBIG, "file %s is larger than %zu bytes", path,
                         max_bytes);
        break;
      }
      cap *= 2;
      uint8_t *nb = realloc(buf, cap + 1);
      if (!nb) {
        free(buf);
        buf = NULL;
        continue;
      }
      buf = nb;
    }
    ssize_t k = read(fd, buf + n, cap - n);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) {
      st = cc_sbx_err_from_errno(err, errno, "read", path);
      break;
    }
    if (k == 0) break;
    n += (size_t)k;
    if (n > max_bytes) {
      st = cc_sbx_fail(err, CC_SBX_ERR_LIMIT, EFBIG, "file %s is larger than %zu bytes", path,
                       max_bytes);
      break;
    }
  }
  close(fd);
  if (st != CC_OK) {
    free(buf);
    return st;
  }
  buf[n] = 0;
  *data = buf;
  *len = n;
  return CC_OK;
}

cc_status cc_sbx_fs_write_file(cc_sbx *sbx, const char *path, const void *data, size_t len,
                               cc_sbx_err *err) {
  int fd;
  cc_status st = cc_sbx_fs_open_write(sbx, path, &fd, err);
  if (st != CC_OK) return st;
  size_t done = 0;
  while (done < len) {
    ssize_t k = write(fd, (const char *)data + done, len - done);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) {
      st = cc_sbx_err_from_errno(err, errno, "write", path);
      break;
    }
    done += (size_t)k;
  }
  if (close(fd) != 0 && st == CC_OK) st = cc_sbx_err_from_errno(err, errno, "write", path);
  return st;
}

/* ---- as uid 1000, the default ------------------------------------------------------------ */

cc_status cc_sbx_fs_stat(cc_sbx *sbx, const char *path, cc_sbx_entry *out, cc_sbx_err *err) {
  return cc_sbx_fs_stat_as(sbx, false, path, out, err);
}

cc_status cc_sbx_fs_mkdir(cc_sbx *sbx, const char *path, cc_sbx_entry *out, cc_sbx_err *err) {
  return cc_sbx_fs_mkdir_as(sbx, false, path, out, err);
}

cc_status cc_sbx_fs_move(cc_sbx *sbx, const char *src, const char *dst, cc_sbx_entry *out,
                         cc_sbx_err *err) {
  return cc_sbx_fs_move_as(sbx, false, src, dst, out, err);
}

cc_status cc_sbx_fs_list(cc_sbx *sbx, const char *dir, uint32_t depth, size_t max_entries,
                         cc_sbx_entry **list, size_t *n, cc_sbx_err *err) {
  return cc_sbx_fs_list_as(sbx, false, dir, depth, max_entries, list, n, err);
}

cc_status cc_sbx_fs_remove(cc_sbx *sbx, const char *path, cc_sbx_err *err) {
  return cc_sbx_fs_remove_as(sbx, false, path, err);
}

cc_status cc_sbx_fs_open_read(cc_sbx *sbx, const char *path, int *fd, int64_t *size,
                              cc_sbx_err *err) {
  return cc_sbx_fs_open_read_as(sbx, false, path, fd, size, err);
}

cc_status cc_sbx_fs_open_write(cc_sbx *sbx, const char *path, int *fd, cc_sbx_err *err) {
  return cc_sbx_fs_open_write_as(sbx, false, path, fd, err);
}
