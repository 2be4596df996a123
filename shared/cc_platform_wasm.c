/* cc_platform for the Emscripten build: getentropy (crypto.getRandomValues underneath,
 * at most 256 bytes per call) and the JS clock through clock_gettime. */
#include <time.h>
#include <unistd.h>

#include "cc_platform.h"

cc_status cc_platform_random(void *buf, size_t len) {
  unsigned char *p = buf;
  while (len > 0) {
    size_t n = len > 256 ? 256 : len;
    if (getentropy(p, n) != 0) return CC_INTERNAL;
    p += n;
    len -= n;
  }
  return CC_OK;
}

int64_t cc_platform_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
