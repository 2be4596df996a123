/*
 * cc_sbx_wire: host-side decoding of what the agent sends (see cc_sbx_wire.h for the format).
 *
 * The agent runs inside the sandbox, so every byte it sends is treated as untrusted: lengths
 * are checked against the buffer, strings must be NUL-terminated where they say they end.
 * Fuzzed by tests/fuzz/fuzz_sbx_wire.c.
 *
 * Ownership: a decoded entry owns its strings (free with cc_sbx_entry_cleanup).
 */
#define _GNU_SOURCE
#include "cc_sbx_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cc_sbx_int.h"

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
