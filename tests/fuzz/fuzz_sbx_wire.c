/* libFuzzer target: the host's decoder of what the sandbox agent sends (directory entries of
 * stat/mkdir/move replies and listings, with their metadata), native/sandbox/cc_sbx_entry.c.
 * The agent runs inside the sandbox, so these bytes are untrusted.  Checks: no crash, no
 * leak, every decoded entry has NUL-terminated strings and a consumed length within the
 * input, and only metadata pairs with a non-empty valid UTF-8 key and a valid UTF-8 value. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cc_proto.h"
#include "cc_sbx_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t off = 0;
  for (int i = 0; i < 1000 && off < size; i++) {
    cc_sbx_entry e;
    size_t before = off;
    if (!cc_sbx_wire_decode_entry(data, size, &off, &e)) break;
    if (off <= before || off > size) __builtin_trap();
    if (strlen(e.name) + strlen(e.path) > size) __builtin_trap();
    if (e.permissions[0] == 0 || e.owner[0] == 0) __builtin_trap();
    for (size_t k = 0; k < e.n_meta; k++) {
      size_t kl = strlen(e.meta_keys[k]), vl = strlen(e.meta_values[k]);
      if (kl == 0 || kl + vl > CC_SBX_META_MAX) __builtin_trap();
      if (!cc_proto_utf8_valid(e.meta_keys[k], kl) || !cc_proto_utf8_valid(e.meta_values[k], vl))
        __builtin_trap();
    }
    cc_sbx_entry_cleanup(&e);
  }
  return 0;
}
