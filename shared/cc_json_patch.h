/*
 * cc_json_patch: JSON Merge Patch (RFC 7386) on cJSON trees.
 *
 * Used by the store for project metadata (updateProject).  The rules: a patch that is an
 * object merges key by key into the target (turning a non-object target into {}); a null
 * member deletes that key; an object member merges recursively; every other member
 * (string, number, bool, array) replaces the target's value.  A patch that is not an
 * object replaces the whole target.
 *
 * Ownership: inputs are borrowed and never modified; *out is a new tree owned by the
 * caller (cJSON_Delete).
 */
#ifndef CC_JSON_PATCH_H
#define CC_JSON_PATCH_H

#include <cjson/cJSON.h>

#include "cc_status.h"

/* Deepest object nesting of a patch that is followed (deeper: CC_BAD_REQUEST). */
#define CC_JSON_PATCH_MAX_DEPTH 64

/* Sets *out to MergePatch(target, patch) as a new tree.  target may be NULL (treated as
 * absent).  Returns CC_BAD_REQUEST when patch is NULL or nests objects deeper than
 * CC_JSON_PATCH_MAX_DEPTH, CC_INTERNAL when memory runs out; *out is NULL then. */
cc_status cc_json_patch_apply(const cJSON *target, const cJSON *patch, cJSON **out);

#endif
