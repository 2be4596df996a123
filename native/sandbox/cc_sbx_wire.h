/*
 * cc_sbx_wire: the messages between the host runtime (cc_sbx*.c) and the agent (agent.c).
 *
 * Transport: a SOCK_SEQPACKET socketpair, fd 3 in the agent.  One message = one packet of at
 * most CC_SBX_WIRE_MAX bytes: a fixed header followed by a payload.  File descriptors travel
 * as SCM_RIGHTS on the same packet.  Requests carry an id > 0 and get exactly one REPLY with
 * that id; id 0 means "no reply wanted".  The agent sends HELLO once at start and EXIT
 * whenever a process it spawned ends.  Both sides treat every field as untrusted: lengths are
 * checked against the packet size, strings must be NUL-terminated inside the payload.
 *
 * Payload of SPAWN: "cwd\0" then argc strings then envc strings (a = argc, b = envc,
 * flags bit 0 = a stdin pipe fd is attached).  Fds: [stdin?] stdout stderr.  With
 * CC_SBX_SPAWN_PTY in flags instead, no fds are attached, one more string "COLSxROWS"
 * (decimal, each 0..65535) follows the environment, the agent opens a pseudo-terminal inside
 * the sandbox for the process, and the REPLY carries its master.
 * Payload of the file ops: one path, or "src\0dst\0" for MOVE.  LIST: a = depth, b = max.
 * REPLY: err = errno (0 = ok), a/b op-specific (SPAWN: a = pid, b = failing stage;
 * OPEN_READ: size in the payload as int64), payload = encoded entries for STAT/MKDIR/MOVE;
 * LIST replies with a memfd holding the encoded entries (a = count).
 *
 * Both sides send with cc_sbx_wire_send (cc_sbx_wire.c is compiled into the agent too).
 *
 * Ownership: no state; cc_sbx_wire_send never takes ownership of the fds it sends.
 */
#ifndef CC_SBX_WIRE_H
#define CC_SBX_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define CC_SBX_WIRE_MAX 65536
#define CC_SBX_WIRE_PATH_MAX 4096
#define CC_SBX_WIRE_SOCK_FD 3

enum {
  CC_SBX_OP_HELLO = 1, /* agent → host, once */
  CC_SBX_OP_EXIT,      /* agent → host: a = pid, b = wait status */
  CC_SBX_OP_REPLY,     /* agent → host */
  CC_SBX_OP_SPAWN,     /* host → agent */
  CC_SBX_OP_SIGNAL,    /* a = pid, b = signal; sent to the process group of pid */
  CC_SBX_OP_CONNECT,   /* a = port; reply carries the connected socket */
  CC_SBX_OP_STAT,
  CC_SBX_OP_MKDIR,
  CC_SBX_OP_MOVE,
  CC_SBX_OP_LIST,
  CC_SBX_OP_REMOVE,
  CC_SBX_OP_OPEN_READ,
  CC_SBX_OP_OPEN_WRITE,
};

typedef struct {
  uint32_t op;
  uint32_t id;
  int32_t err;
  int32_t a;
  int32_t b;
  uint32_t flags;
} cc_sbx_wire_hdr;

/* One directory entry: this fixed part, then name, path and target (each NUL-terminated,
 * lengths include the NUL; target_len 0 = not a symlink), then meta_len bytes of metadata:
 * pairs of {uint16 key length, uint16 value length, key bytes, value bytes} (no NULs, key
 * without the "user.e2b." prefix; at most CC_SBX_META_MAX bytes in all). */
typedef struct {
  uint32_t lmode; /* lstat st_mode (type + permissions of the entry itself) */
  uint32_t tmode; /* stat st_mode of the target (0 = broken link) */
  uint32_t uid;
  uint32_t gid;
  int64_t size; /* lstat size */
  int64_t mtime_sec;
  int32_t mtime_nsec;
  uint16_t name_len;
  uint16_t path_len;
  uint16_t target_len;
  uint16_t meta_len;
  uint32_t pad2; /* explicit: the struct is 48 bytes on every ABI we build for */
} cc_sbx_wire_entry;

#define CC_SBX_WIRE_MAX_FDS 4 /* most fds one message carries */

/*
 * Sends one message on the SOCK_SEQPACKET socket sock: header h, then len payload bytes
 * (payload may be NULL when len is 0), with nfds (0..CC_SBX_WIRE_MAX_FDS) descriptors as
 * SCM_RIGHTS.  flags are added to MSG_NOSIGNAL (e.g. MSG_DONTWAIT).  Retries on EINTR.
 * Returns 0, or the errno of the failure (EINVAL for too many fds).  The fds stay open and
 * owned by the caller.
 */
int cc_sbx_wire_send(int sock, const cc_sbx_wire_hdr *h, const void *payload, size_t len,
                     const int *fds, int nfds, int flags);

#define CC_SBX_SPAWN_PTY 2u /* SPAWN flags: run on a new pty (see above) */
#define CC_SBX_AS_ROOT 4u   /* SPAWN and file operations: as uid 0 (else uid 1000) */
#define CC_SBX_GIVE_USER 8u /* MKDIR, OPEN_WRITE: with uid 0's rights, and every directory and
                               the file they create or write given to uid/gid 1000 */

#define CC_SBX_STAGE_CWD 1  /* SPAWN failed: cwd missing */
#define CC_SBX_STAGE_EXEC 2 /* SPAWN failed: exec failed */
#define CC_SBX_STAGE_FORK 3 /* SPAWN failed: fork failed (pids limit) */
#define CC_SBX_STAGE_PTY 4  /* SPAWN failed: no pseudo-terminal could be opened */

#endif
