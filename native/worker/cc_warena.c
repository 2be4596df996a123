/*
 * cc_warena: the per-thread bump allocator behind cJSON's hooks (see cc_warena.h).
 */
#include "cc_warena.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define ARENA_BYTES (64u * 1024u) /* a cached exec's tree takes about 1 KiB */
#define ALIGN 16u

static __thread char *arena;   /* this thread's block, made at its first scope */
static __thread size_t used;   /* bytes handed out since the scope began */
static __thread bool open_now; /* inside cc_warena_begin .. cc_warena_end */

static void *hook_malloc(size_t n) {
  if (open_now && arena) {
    size_t need = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (need >= n && need <= ARENA_BYTES - used) {
      void *p = arena + used;
      used += need;
      return p;
    }
  }
  return malloc(n);
}

static void hook_free(void *p) {
  /* Blocks of this thread's arena live until its next scope begins; the rule in cc_warena.h
   * keeps every other thread's blocks away from here. */
  if (arena && (uintptr_t)p >= (uintptr_t)arena && (uintptr_t)p < (uintptr_t)arena + ARENA_BYTES)
    return;
  free(p);
}

static pthread_key_t key; /* frees a thread's arena when the thread ends */
static bool installed;     /* the hooks are in place (else scopes do nothing) */

static void install_once(void) {
  if (pthread_key_create(&key, free) != 0) return; /* no hooks: cJSON keeps malloc */
  cJSON_Hooks h = {.malloc_fn = hook_malloc, .free_fn = hook_free};
  cJSON_InitHooks(&h);
  installed = true;
}

void cc_warena_install(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, install_once);
}

void cc_warena_begin(void) {
  if (!installed) return;
  if (!arena) { /* NULL after this: this thread's scopes use malloc */
    arena = malloc(ARENA_BYTES);
    if (arena && pthread_setspecific(key, arena) != 0) {
      free(arena);
      arena = NULL;
    }
  }
  used = 0;
  open_now = true;
}

void cc_warena_end(void) {
  open_now = false;
}
