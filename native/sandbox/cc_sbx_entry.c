/*
 * cc_sbx_entry: the host's decoding of the directory entries the agent sends (stat, mkdir and
 * move replies, listings; format in cc_sbx_wire.h) into cc_sbx_entry, envd's EntryInfo.
 *
 * The agent runs inside the sandbox, so every byte it sends is treated as untrusted: lengths
 * are checked against the buffer, strings must be NUL-terminated where they say they end,
 * metadata must be valid UTF-8.  Fuzzed by tests/fuzz/fuzz_sbx_wire.c.
 *
 * Ownership: a decoded entry owns its strings (free with cc_sbx_entry_cleanup).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cc_proto.h"
#include "cc_sbx_int.h"
#include "cc_sbx_wire.h"

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

/* Decodes the metadata block of an entry into e (pairs that are not valid UTF-8 without NUL
 * are skipped, as envd skips them).  false when the block is malformed or out of memory. */
static bool decode_meta(const unsigned char *p, size_t len, cc_sbx_entry *e) {
  if (len == 0) return true;
  if (len > CC_SBX_META_MAX) return false;
  size_t max = len / 4;
  e->meta_keys = calloc(max, sizeof *e->meta_keys);
  e->meta_values = calloc(max, sizeof *e->meta_values);
  if (!e->meta_keys || !e->meta_values) return false;
  size_t off = 0;
  while (off < len) {
    uint16_t kl, vl;
    if (len - off < 4) return false;
    memcpy(&kl, p + off, 2);
    memcpy(&vl, p + off + 2, 2);
    off += 4;
    if (len - off < (size_t)kl + vl) return false;
    const char *k = (const char *)p + off, *v = k + kl;
    off += (size_t)kl + vl;
    if (kl == 0 || !cc_proto_utf8_valid(k, kl) || !cc_proto_utf8_valid(v, vl)) continue;
    char *ks = strndup(k, kl), *vs = strndup(v, vl);
    if (!ks || !vs) {
      free(ks), free(vs);
      return false;
    }
    e->meta_keys[e->n_meta] = ks;
    e->meta_values[e->n_meta++] = vs;
  }
  return true;
}

bool cc_sbx_wire_decode_entry(const unsigned char *buf, size_t len, size_t *off, cc_sbx_entry *e) {
  memset(e, 0, sizeof *e);
  cc_sbx_wire_entry w;
  if (len - *off < sizeof w) return false;
  memcpy(&w, buf + *off, sizeof w);
  size_t need = (size_t)w.name_len + w.path_len + w.target_len + w.meta_len;
  if (w.name_len == 0 || w.path_len == 0 || len - *off - sizeof w < need) return false;
  const char *name = (const char *)buf + *off + sizeof w;
  const char *path = name + w.name_len;
  const char *target = path + w.path_len;
  const unsigned char *meta = (const unsigned char *)target + w.target_len;
  if (name[w.name_len - 1] || path[w.path_len - 1] || (w.target_len && target[w.target_len - 1]))
    return false;
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
  if (!e->name || !e->path || (w.target_len && !e->symlink_target) ||
      !decode_meta(meta, w.meta_len, e)) {
    cc_sbx_entry_cleanup(e);
    return false;
  }
  *off += sizeof w + need;
  return true;
}

void cc_sbx_entry_cleanup(cc_sbx_entry *e) {
  if (!e) return;
  free(e->name), free(e->path), free(e->symlink_target);
  e->name = e->path = e->symlink_target = NULL;
  for (size_t i = 0; i < e->n_meta; i++) free(e->meta_keys[i]), free(e->meta_values[i]);
  free(e->meta_keys), free(e->meta_values);
  e->meta_keys = e->meta_values = NULL;
  e->n_meta = 0;
}
