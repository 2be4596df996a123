/*
 * cc_sbx_int: internal interfaces between the files of the sandbox runtime (not for C2).
 *
 * cc_sbx_cgroup.c: per-runtime parent cgroup and per-sandbox child cgroups (v1 or v2).
 * Ownership: all paths live in the caller-owned structs below; no heap.
 */
#ifndef CC_SBX_INT_H
#define CC_SBX_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cc_sbx.h"

#define CC_SBX_CG_NCTRL 4 /* v1: memory, pids, cpu, freezer; v2: dir[0] only */
#define CC_SBX_CG_PATH 512

typedef struct {
  cc_sbx_cgroup_mode mode;
  char dir[CC_SBX_CG_NCTRL][CC_SBX_CG_PATH]; /* parent dirs; "" = controller not used */
} cc_sbx_cg_root;

typedef struct {
  cc_sbx_cgroup_mode mode;
  char dir[CC_SBX_CG_NCTRL][CC_SBX_CG_PATH];
  int procs_fd[CC_SBX_CG_NCTRL]; /* cgroup.procs, opened for the pre-exec join; -1 = none */
} cc_sbx_cg;

/* Finds a writable hierarchy (v1 memory+pids preferred, else v2) and creates
 * <our cgroup>/<prefix> in it.  false + why when none is usable. */
bool cc_sbx_cg_probe(cc_sbx_cg_root *root, const char *prefix, char *why, size_t whycap);
void cc_sbx_cg_root_cleanup(cc_sbx_cg_root *root);

/* Creates the sandbox's cgroup(s) with the limits and opens their cgroup.procs. */
bool cc_sbx_cg_create(const cc_sbx_cg_root *root, const char *id, const cc_sbx_limits *lim,
                      cc_sbx_cg *cg, char *why, size_t whycap);
void cc_sbx_cg_close_fds(cc_sbx_cg *cg);

/* SIGKILLs every task in the sandbox's cgroup (freezer/cgroup.kill so none can fork away). */
void cc_sbx_cg_kill(cc_sbx_cg *cg);

/* true when no task is left in the sandbox's cgroups. */
bool cc_sbx_cg_empty(const cc_sbx_cg *cg);

/* Removes the sandbox's cgroup dirs (waiting briefly for killed tasks to leave). */
void cc_sbx_cg_destroy(cc_sbx_cg *cg);

/* cc_sbx_wire.c: decodes one entry of an agent reply at *off (advancing it).  false when the
 * bytes are malformed; then *e holds nothing to free. */
bool cc_sbx_wire_decode_entry(const unsigned char *buf, size_t len, size_t *off, cc_sbx_entry *e);

/* Go's FileMode.String() of a st_mode ("-rw-r--r--", "drwxr-xr-x", "Lrwxrwxrwx"). */
void cc_sbx_wire_mode_string(uint32_t mode, char out[16]);

/* cc_sbx_seccomp.c: the sandbox's seccomp program (struct sock_filter[], *len bytes), for
 * bwrap --seccomp.  NULL with *len = 0 on an architecture without a filter; free() it. */
void *cc_sbx_seccomp_program(size_t *len);

#endif
