/* libFuzzer target: the names domain egress rules judge (native/sandbox/cc_sbx_sni.c), read
 * from the first bytes a sandbox sends on a connection, so untrusted: a TLS ClientHello's
 * server name and an HTTP/1 request's Host.  Checks: no crash, no overread (ASan), and a
 * name that is found is a plain lower-case DNS name, matched by itself as an allowed domain;
 * a parse of a prefix of the input that says "found" finds the same name in the whole. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cc_sbx_int.h"

static void check(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > CC_SBX_NAME_MAX || name[0] == '.' || name[n - 1] == '.') __builtin_trap();
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
      __builtin_trap();
  }
  char *self[] = {(char *)name};
  if (!cc_sbx_domain_match(name, self, 1)) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char a[CC_SBX_NAME_MAX + 1], b[CC_SBX_NAME_MAX + 1];
  cc_sbx_name_result (*const parse[])(const uint8_t *, size_t, char *) = {cc_sbx_tls_sni,
                                                                          cc_sbx_http_host};
  for (int k = 0; k < 2; k++) {
    cc_sbx_name_result r = parse[k](data, size, a);
    if (r == CC_SBX_NAME_FOUND) check(a);
    if (size > 1 && parse[k](data, size / 2, b) == CC_SBX_NAME_FOUND &&
        (r != CC_SBX_NAME_FOUND || strcmp(a, b) != 0))
      __builtin_trap(); /* what a prefix settles, the whole settles the same way */
  }
  return 0;
}
