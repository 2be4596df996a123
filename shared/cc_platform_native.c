/* cc_platform for native Linux builds: getrandom(2) and CLOCK_REALTIME. */
#include <errno.h>
#include <sys/random.h>
#include <time.h>

#include "cc_platform.h"

cc_status cc_platform_random(void *buf, size_t len) {
  unsigned char *p = buf;
  while (len > 0) {
    ssize_t n = getrandom(p, len, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return CC_INTERNAL;
    }
    p += n;
    len -= (size_t)n;
  }
  return CC_OK;
}

int64_t cc_platform_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
