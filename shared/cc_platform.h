/*
 * cc_platform: the few things shared/ needs from the platform, behind plain functions.
 *
 * One implementation file per target, chosen by shared/CMakeLists.txt:
 * cc_platform_native.c (Linux: getrandom, clock_gettime) and cc_platform_wasm.c
 * (Emscripten: getentropy, which reads crypto.getRandomValues).  Business logic calls
 * only these functions, never #ifdef on the target.
 *
 * Ownership: callers own every buffer they pass; nothing here allocates.
 */
#ifndef CC_PLATFORM_H
#define CC_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#include "cc_status.h"

/* Fills buf with len cryptographically random bytes.  CC_INTERNAL when the source fails. */
cc_status cc_platform_random(void *buf, size_t len);

/* Wall-clock milliseconds since the Unix epoch. */
int64_t cc_platform_now_ms(void);

#endif
