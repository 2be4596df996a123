/*
 * cc_sbx_wire: sending wire messages, on both sides (see cc_sbx_wire.h for the format).
 * Compiled into cc_sandbox and, without sanitizers, into codecanvas-sandbox-agent, so it
 * depends on libc only.  The host's decoding of what the agent sends is cc_sbx_entry.c.
 */
#define _GNU_SOURCE
#include "cc_sbx_wire.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

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
