/*
 * cc_sbx_wire: sending wire messages (both sides) and host-side decoding of what the agent
 * sends (see cc_sbx_wire.h for the format).  Compiled into cc_sandbox and, without
 * sanitizers, into codecanvas-sandbox-agent, so it depends on libc only.
 *
 * The agent runs inside the sandbox, so every byte it sends is treated as untrusted: lengths
 * are checked against the buffer, strings must be NUL-terminated where they say they end.
 * Fuzzed by tests/fuzz/fuzz_sbx_wire.c.
 *
 * Ownership: a decoded entry owns its strings (free with cc_sbx_entry_cleanup).
 */
#define _GNU_SOURCE
#include "cc_sbx_wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "cc_sbx_int.h"

int cc_sbx_wire_send(int sock, const cc_sbx_wire_hdr *h, const void *payload, size_t len,
                     const int *fds, int nfds, int flags) {
  if (nfds < 0 || nfds > CC_SBX_WIRE_MAX_FDS) return EINVAL;
  struct iovec iov[2] = {{(void *)h, sizeof *h}, {(void *)payload, len}};
  union {
    char buf[CMSG_SPACE(sizeof(int) * CC_SBX_WIRE_MAX_FDS)];
    struct cmsghdr align;
  } u;
  struct msghdr m = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
  if (nfds > 0) {
    memset(&u, 0, sizeof u);
    m.msg_control = u.buf;
    m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
  }
  ssize_t n;
  do n = sendmsg(sock, &m, MSG_NOSIGNAL | flags);
  while (n < 0 && errno == EINTR);
  return n < 0 ? errno : 0;
}

/* Go's FileMode.String() for a st_mode: type letters in Go's order "dalTLDpSugct", then
 * rwxrwxrwx ("-" when no type letter applies). */
void cc_sbx_wire_mode_string(uint32_t m, char out[16]) {
  int o = 0;
  if (S_ISDIR(m)) out[o++] = 'd';
  if (S_ISLNK(m)) out[o++] = 'L';
  if (S_ISBLK(m) || S_ISCHR(m)) out[o++] = 'D';
  if (S_ISFIFO(m)) out[o++] = 'p';
  if (S_ISSOCK(m)) out[o++] = 'S';
  if (m & S_ISUID) out[o++] = 'u';
  if (m & S_ISGID) out[o++] = 'g';
  if (S_ISCHR(m)) out[o++] = 'c';
  if (m & S_ISVTX) out[o++] = 't';
  if (o == 0) out[o++] = '-';
  static const char rwx[] = "rwxrwxrwx";
  for (int i = 0; i < 9; i++) out[o++] = (m & (1u << (8 - i))) ? rwx[i] : '-';
  out[o] = 0;
}

static void id_name(uint32_t id, char out[32], bool group) {
  if (id == 0)
    snprintf(out, 32, "root");
  else if (id == 1000)
    snprintf(out, 32, "user");
  else if (id == 65534)
    snprintf(out, 32, group ? "nogroup" : "nobody");
  else
    snprintf(out, 32, "%u", id);
}

bool cc_sbx_wire_decode_entry(const unsigned char *buf, size_t len, size_t *off, cc_sbx_entry *e) {
  memset(e, 0, sizeof *e);
  cc_sbx_wire_entry w;
  if (len - *off < sizeof w) return false;
  memcpy(&w, buf + *off, sizeof w);
  size_t need = (size_t)w.name_len + w.path_len + w.target_len;
  if (w.name_len == 0 || w.path_len == 0 || len - *off - sizeof w < need) return false;
  const char *name = (const char *)buf + *off + sizeof w;
  const char *path = name + w.name_len;
  const char *target = path + w.path_len;
  if (name[w.name_len - 1] || path[w.path_len - 1] || (w.target_len && target[w.target_len - 1]))
    return false;
  *off += sizeof w + need;
  e->name = strdup(name);
  e->path = strdup(path);
  e->symlink_target = w.target_len ? strdup(target) : NULL;
  e->type = S_ISDIR(w.tmode)   ? CC_SBX_FT_DIR
            : S_ISREG(w.tmode) ? CC_SBX_FT_FILE
                               : CC_SBX_FT_UNKNOWN;
  e->size = w.size;
  e->mode = w.tmode & 0777;
  cc_sbx_wire_mode_string(w.lmode, e->permissions);
  id_name(w.uid, e->owner, false);
  id_name(w.gid, e->group, true);
  e->mtime_sec = w.mtime_sec;
  e->mtime_nsec = w.mtime_nsec;
  if (!e->name || !e->path || (w.target_len && !e->symlink_target)) {
    cc_sbx_entry_cleanup(e);
    return false;
  }
  return true;
}

void cc_sbx_entry_cleanup(cc_sbx_entry *e) {
  if (!e) return;
  free(e->name), free(e->path), free(e->symlink_target);
  e->name = e->path = e->symlink_target = NULL;
}
