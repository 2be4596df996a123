/*
 * cc_sbx_pty: the host side of pseudo-terminals (see cc_sbx.h "Pseudo-terminals").
 *
 * The agent opens the pty inside the sandbox (its own devpts instance, so the process's
 * ttyname() is a /dev/pts/N it can see), makes it the process's controlling terminal and
 * stdin/stdout/stderr, and sends the master to the host.  The host holds the master: output
 * is a read of it (the I/O thread pumps it like a stdout pipe, under the same subscription
 * caps, as CC_SBX_EV_PTY), input a write to it, a resize an ioctl on it.  No agent round trip
 * after the start, and nothing the sandbox can do reaches a host terminal.
 *
 * Ownership: the master belongs to the process record (cc_sbx_priv.h); this file only borrows it
 * through cc_sbx_proc_with_tty for the length of one call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "cc_sbx.h"
#include "cc_sbx_int.h"

int cc_sbx_pty_adopt(int master, int *write_fd) {
  int fl = fcntl(master, F_GETFL);
  if (fl < 0 || fcntl(master, F_SETFL, fl | O_NONBLOCK) != 0) return errno;
  int w = fcntl(master, F_DUPFD_CLOEXEC, 0);
  if (w < 0) return errno;
  *write_fd = w;
  return 0;
}

static cc_status tty_present(int master, void *ctx, cc_sbx_err *err) {
  (void)master, (void)ctx, (void)err;
  return CC_OK;
}

cc_status cc_sbx_proc_write_pty(cc_sbx *sbx, uint32_t pid, const void *data, size_t len,
                                int timeout_ms, cc_sbx_err *err) {
  /* Whether pid has a pty never changes, so checking first and then writing through the
   * process's input (its pty master, with the stdin path's locking and deadline) is exact. */
  cc_status st = cc_sbx_proc_with_tty(sbx, pid, tty_present, NULL, err);
  if (st != CC_OK) return st;
  return cc_sbx_proc_write_stdin(sbx, pid, data, len, timeout_ms, err);
}

static cc_status tty_resize(int master, void *ctx, cc_sbx_err *err) {
  const struct winsize *ws = ctx;
  /* On the master this resizes the terminal and signals SIGWINCH to its foreground group. */
  if (ioctl(master, TIOCSWINSZ, ws) == 0) return CC_OK;
  int e = errno;
  if (err) {
    err->kind = CC_SBX_ERR_SYSTEM;
    err->sys_errno = e;
    snprintf(err->msg, sizeof err->msg, "error resizing tty: %s", strerror(e));
  }
  return cc_sbx_errkind_status(CC_SBX_ERR_SYSTEM);
}

cc_status cc_sbx_proc_resize_pty(cc_sbx *sbx, uint32_t pid, uint16_t cols, uint16_t rows,
                                 cc_sbx_err *err) {
  struct winsize ws = {.ws_row = rows, .ws_col = cols};
  cc_status st = cc_sbx_proc_with_tty(sbx, pid, tty_resize, &ws, err);
  if (st == CC_OK && err) memset(err, 0, sizeof *err);
  return st;
}
