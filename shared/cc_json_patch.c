/* cc_json_patch: RFC 7386 merge patch, the algorithm of RFC 7386 §2 over copies. */
#include "cc_json_patch.h"

#include <stdbool.h>
#include <string.h>

/* Deletes every member named `name` of obj after the first (cJSON keeps duplicate keys;
 * a key the patch touches ends up once, so applying a patch twice changes nothing). */
static void drop_duplicates(cJSON *obj, const char *name) {
  cJSON *first = NULL, *next;
  for (cJSON *c = obj->child; c; c = next) {
    next = c->next;
    if (!c->string || strcmp(c->string, name) != 0) continue;
    if (!first)
      first = c;
    else
      cJSON_Delete(cJSON_DetachItemViaPointer(obj, c));
  }
}

/* Applies an object patch to the object obj in place, keeping the position of keys that
 * stay; depth is the nesting level of patch. */
static cc_status merge_object(cJSON *obj, const cJSON *patch, int depth) {
  if (depth > CC_JSON_PATCH_MAX_DEPTH) return CC_BAD_REQUEST;
  for (const cJSON *m = patch->child; m; m = m->next) {
    if (!m->string) return CC_BAD_REQUEST;
    drop_duplicates(obj, m->string);
    if (cJSON_IsNull(m)) {
      cJSON_DeleteItemFromObjectCaseSensitive(obj, m->string);
      continue;
    }
    cJSON *cur = cJSON_GetObjectItemCaseSensitive(obj, m->string);
    if (cur && cJSON_IsObject(cur) && cJSON_IsObject(m)) {
      cc_status st = merge_object(cur, m, depth + 1);
      if (st != CC_OK) return st;
      continue;
    }
    /* Replacement: a copy of a scalar/array, or the patch object merged into {} (which
     * drops its null members, as RFC 7386 does). */
    cJSON *val;
    if (cJSON_IsObject(m)) {
      if (!(val = cJSON_CreateObject())) return CC_INTERNAL;
      cc_status st = merge_object(val, m, depth + 1);
      if (st != CC_OK) {
        cJSON_Delete(val);
        return st;
      }
    } else if (!(val = cJSON_Duplicate(m, 1))) {
      return CC_INTERNAL;
    }
    bool ok = cur ? cJSON_ReplaceItemInObjectCaseSensitive(obj, m->string, val)
                  : cJSON_AddItemToObject(obj, m->string, val);
    if (!ok) {
      cJSON_Delete(val);
      return CC_INTERNAL;
    }
  }
  return CC_OK;
}

cc_status cc_json_patch_apply(const cJSON *target, const cJSON *patch, cJSON **out) {
  *out = NULL;
  if (!patch) return CC_BAD_REQUEST;
  if (!cJSON_IsObject(patch)) {
    *out = cJSON_Duplicate(patch, 1);
    return *out ? CC_OK : CC_INTERNAL;
  }
  cJSON *doc = cJSON_IsObject(target) ? cJSON_Duplicate(target, 1) : cJSON_CreateObject();
  if (!doc) return CC_INTERNAL;
  cc_status st = merge_object(doc, patch, 1);
  if (st != CC_OK) {
    cJSON_Delete(doc);
    return st;
  }
  *out = doc;
  return CC_OK;
}
