/*
 * cc_sbx_seccomp: the seccomp filter every sandbox runs under (bwrap --seccomp).
 *
 * Defense in depth on top of the namespaces: a short deny list of system calls that ordinary
 * programs (shells, compilers, node, python, npm) do not need but that widen the kernel's
 * attack surface — keyrings, BPF, perf events, userfaultfd, io_uring, module and kexec
 * loading, handle-based opens, namespace switching, mounts, swap, reboot, syslog, acct.
 * They fail with EPERM (io_uring with ENOSYS, so libraries fall back to threads).  Calls
 * from another ABI than the native one (x86-64's x32 and i386 entry points) fail with
 * ENOSYS.  Everything else is allowed.
 *
 * The filter is classic BPF built from <sys/syscall.h>, so it is compiled for the host's
 * architecture; the one architecture constant is the only #if here (seccomp filters are
 * inherently per-ABI).  Ownership: the caller frees the returned program with free().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/syscall.h>

#include "cc_sbx_int.h"

#if defined(__x86_64__)
#define CC_AUDIT_ARCH AUDIT_ARCH_X86_64
#define CC_X32_BIT 0x40000000u
#elif defined(__aarch64__)
#define CC_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

static const int denied_eperm[] = {
    SYS_add_key,
    SYS_request_key,
    SYS_keyctl,
    SYS_bpf,
    SYS_perf_event_open,
    SYS_userfaultfd,
    SYS_kexec_load,
    SYS_kexec_file_load,
    SYS_open_by_handle_at,
    SYS_name_to_handle_at,
    SYS_init_module,
    SYS_finit_module,
    SYS_delete_module,
    SYS_swapon,
    SYS_swapoff,
    SYS_reboot,
    SYS_syslog,
    SYS_acct,
    SYS_quotactl,
    SYS_fanotify_init,
    SYS_mount,
    SYS_umount2,
    SYS_pivot_root,
    SYS_unshare,
    SYS_setns,
};

/* clone3: its flags are in memory a filter cannot read, so it is ENOSYS and libc falls back
 * to clone, whose CLONE_NEWUSER is refused below (no nested user namespaces, also where bwrap
 * joins a user namespace we made and its --disable-userns cannot be used). */
static const int denied_enosys[] = {SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register,
                                    SYS_clone3};

#define N_EPERM (sizeof denied_eperm / sizeof denied_eperm[0])
#define N_ENOSYS (sizeof denied_enosys / sizeof denied_enosys[0])

void *cc_sbx_seccomp_program(size_t *len) {
#ifndef CC_AUDIT_ARCH
  *len = 0;
  return NULL; /* unknown architecture: no filter (reported by the runtime) */
#else
  size_t max = 8 + 5 + N_EPERM + N_ENOSYS + 4;
  struct sock_filter *f = calloc(max, sizeof *f), *p = f;
  if (!f) return NULL;
  const unsigned ret_enosys = SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA);
  const unsigned ret_eperm = SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA);
  /* Jump offsets below are relative to the next instruction. */
  *p++ =
      (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
  *p++ = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, CC_AUDIT_ARCH, 1, 0);
  *p++ = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, ret_enosys);
  *p++ = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#ifdef CC_X32_BIT
  *p++ = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, CC_X32_BIT, 0, 1);
  *p++ = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, ret_enosys);
#endif
  /* clone with CLONE_NEWUSER in its flags (the first argument, low word) → EPERM. */
  *p++ = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 4);
  *p++ = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                      offsetof(struct seccomp_data, args)); /* low word */
  *p++ = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_NEWUSER, 0, 1);
  *p++ = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, ret_eperm);
  *p++ = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  /* nr in the EPERM list → jump to the EPERM return; in the ENOSYS list → ENOSYS return. */
  size_t n = N_EPERM + N_ENOSYS;
  for (size_t i = 0; i < n; i++) {
    unsigned nr = (unsigned)(i < N_EPERM ? denied_eperm[i] : denied_enosys[i - N_EPERM]);
    size_t left = n - 1 - i; /* comparisons after this one */
    unsigned char to_ret = (unsigned char)(i < N_EPERM ? left + 2 : left + 1);
    *p++ = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, to_ret, 0);
  }
  *p++ = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  *p++ = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, ret_enosys); /* ENOSYS list */
  *p++ = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, ret_eperm);  /* EPERM list */
  *len = (size_t)(p - f) * sizeof *f;
  return f;
#endif
}
