/* libFuzzer target: codecanvas-sandboxd's X-Metadata-* header rules (cc_sbd_meta_add_header),
 * which turn untrusted request headers into the metadata set of a /files upload.  The input is
 * lines "name:value"; every set that comes out must satisfy envd's rules: keys lowercased,
 * non-empty, at most 246 bytes, keys and values printable ASCII, no key twice, the total
 * within 4096 bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cc_sbd_meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  cc_sbd_meta *m = cc_sbd_meta_new();
  char err[300];
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line && m; line = strtok_r(NULL, "\n", &save)) {
    char *colon = strchr(line, ':');
    const char *value = colon ? colon + 1 : NULL;
    if (colon) *colon = 0;
    cc_status st = cc_sbd_meta_add_header(m, line, value, err, sizeof err);
    if (st != CC_OK && st != CC_BAD_REQUEST && st != CC_INTERNAL) __builtin_trap();
    if (st == CC_BAD_REQUEST && !err[0]) __builtin_trap();
  }
  size_t total = 0;
  for (size_t i = 0; m && i < m->n; i++) {
    const char *k = m->pairs[i].key, *v = m->pairs[i].value;
    size_t kl = strlen(k);
    if (kl == 0 || kl > CC_SBD_META_MAX_KEY) __builtin_trap();
    for (const char *p = k; *p; p++)
      if (*p < 0x20 || *p > 0x7e || (*p >= 'A' && *p <= 'Z')) __builtin_trap();
    for (const char *p = v; *p; p++)
      if (*p < 0x20 || *p > 0x7e) __builtin_trap();
    for (size_t j = 0; j < i; j++)
      if (strcmp(m->pairs[j].key, k) == 0) __builtin_trap();
    total += strlen(CC_SBD_META_PREFIX) + kl + strlen(v);
  }
  if (m && (total != m->total || total > CC_SBD_META_MAX_TOTAL)) __builtin_trap();
  cc_sbd_meta_free(m);
  free(text);
  return 0;
}
