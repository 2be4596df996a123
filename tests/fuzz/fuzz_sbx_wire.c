/* libFuzzer target: the host's decoder of what the sandbox agent sends (directory entries of
 * stat/mkdir/move replies and listings), native/sandbox/cc_sbx_wire.c.  The agent runs inside
 * the sandbox, so these bytes are untrusted.  Checks: no crash, no leak, every decoded entry
 * has NUL-terminated strings and a consumed length within the input. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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
    cc_sbx_entry_cleanup(&e);
  }
  return 0;
}
