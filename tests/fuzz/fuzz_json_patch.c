/*
 * libFuzzer target: JSON Merge Patch (shared/cc_json_patch.c), which the store applies to
 * project metadata with a patch straight from a user's updateProject request.  The input is
 * two JSON texts separated by a NUL byte: target, then patch.  Properties checked besides
 * memory safety: the inputs are never modified; a patch is idempotent (applying it to its
 * own result changes nothing); the result of an object patch is an object with no key the
 * patch set to null; depth beyond the limit is refused, never a crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cc_json_patch.h"

static char *text_of(const cJSON *v) {
  return v ? cJSON_PrintUnformatted(v) : NULL;
}

typedef struct {
  cJSON *item;
  size_t pos;
} keyed;

static int by_key(const void *x, const void *y) {
  const keyed *a = x, *b = y;
  int c = strcmp(a->item->string ? a->item->string : "", b->item->string ? b->item->string : "");
  return c ? c : (a->pos < b->pos ? -1 : a->pos > b->pos);
}

/* Sorts the members of every object by key (stable), so that two trees equal as JSON
 * values print the same: a patch may move a key it deletes and re-adds to the end. */
static void canonicalize(cJSON *v) {
  size_t n = 0;
  for (cJSON *c = v->child; c; c = c->next) n++;
  if (cJSON_IsObject(v) && n > 1) {
    keyed *k = malloc(n * sizeof *k);
    if (!k) abort();
    size_t i = 0;
    for (cJSON *c = v->child; c; c = c->next, i++) k[i] = (keyed){c, i};
    qsort(k, n, sizeof *k, by_key);
    for (i = 0; i < n; i++) {
      k[i].item->prev = i ? k[i - 1].item : k[n - 1].item; /* cJSON: child->prev = last */
      k[i].item->next = i + 1 < n ? k[i + 1].item : NULL;
    }
    v->child = k[0].item;
    free(k);
  }
  for (cJSON *c = v->child; c; c = c->next) canonicalize(c);
}

static int same(const char *a, const char *b) {
  return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *nul = memchr(data, 0, size);
  if (!nul) return 0;
  size_t tlen = (size_t)(nul - (const char *)data);
  cJSON *target = cJSON_ParseWithLength((const char *)data, tlen);
  cJSON *patch = cJSON_ParseWithLength(nul + 1, size - tlen - 1);
  if (!patch) {
    cJSON_Delete(target);
    return 0;
  }
  char *t0 = text_of(target), *p0 = text_of(patch);
  cJSON *once = NULL, *twice = NULL;
  cc_status st = cc_json_patch_apply(target, patch, &once);
  if (st != CC_OK && st != CC_BAD_REQUEST && st != CC_INTERNAL) abort();
  if (st != CC_OK && once) abort();
  char *t1 = text_of(target), *p1 = text_of(patch);
  if (!same(t0, t1) || !same(p0, p1)) abort(); /* inputs untouched */
  if (st == CC_OK) {
    if (!once) abort();
    if (cJSON_IsObject(patch)) {
      if (!cJSON_IsObject(once)) abort();
      for (const cJSON *m = patch->child; m; m = m->next) {
        const cJSON *last = NULL; /* the last occurrence of a duplicated key decides */
        for (const cJSON *n = m; n; n = n->next)
          if (n->string && m->string && strcmp(n->string, m->string) == 0) last = n;
        if (last == m && cJSON_IsNull(m) && cJSON_GetObjectItemCaseSensitive(once, m->string))
          abort();
      }
    }
    if (cc_json_patch_apply(once, patch, &twice) != CC_OK) abort();
    canonicalize(once);
    canonicalize(twice);
    char *a = text_of(once), *b = text_of(twice);
    if (!same(a, b)) abort(); /* idempotent (as JSON values; key order may differ) */
    cJSON_free(a);
    cJSON_free(b);
  }
  cJSON_Delete(once);
  cJSON_Delete(twice);
  cJSON_free(t0);
  cJSON_free(p0);
  cJSON_free(t1);
  cJSON_free(p1);
  cJSON_Delete(target);
  cJSON_Delete(patch);
  return 0;
}
