/* JSON Merge Patch (RFC 7386): every example of RFC 7386 Appendix A, plus what the store
 * relies on: an absent target, inputs left untouched, key order kept, a depth limit. */
#include <stdlib.h>

#include "cc_json_patch.h"
#include "cc_test.h"

/* Applies patch to target (JSON texts; "" = absent target) and compares with want. */
static void expect(const char *target, const char *patch, const char *want) {
  cJSON *t = *target ? cJSON_Parse(target) : NULL;
  cJSON *p = cJSON_Parse(patch), *w = cJSON_Parse(want), *out = NULL;
  CHECK(p && w && (t || !*target));
  CHECK_INT(cc_json_patch_apply(t, p, &out), CC_OK);
  if (!cJSON_Compare(out, w, 1)) {
    char *got = cJSON_PrintUnformatted(out);
    fprintf(stderr, "patch %s on %s: got %s, want %s\n", patch, target, got ? got : "(null)", want);
    cJSON_free(got);
    CHECK(0);
  }
  cJSON_Delete(t);
  cJSON_Delete(p);
  cJSON_Delete(w);
  cJSON_Delete(out);
}

static void rfc7386_appendix_a(void) {
  expect("{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}");
  expect("{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}");
  expect("{\"a\":\"b\"}", "{\"a\":null}", "{}");
  expect("{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}");
  expect("{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}");
  expect("{\"a\":\"c\"}", "{\"a\":[\"b\"]}", "{\"a\":[\"b\"]}");
  expect("{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}", "{\"a\":{\"b\":\"d\"}}");
  expect("{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}");
  expect("[\"a\",\"b\"]", "[\"c\",\"d\"]", "[\"c\",\"d\"]");
  expect("{\"a\":\"b\"}", "[\"c\"]", "[\"c\"]");
  expect("{\"a\":\"foo\"}", "null", "null");
  expect("{\"a\":\"foo\"}", "\"bar\"", "\"bar\"");
  expect("{\"e\":null}", "{\"a\":1}", "{\"e\":null,\"a\":1}");
  expect("[1,2]", "{\"a\":\"b\",\"c\":null}", "{\"a\":\"b\"}");
  expect("{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}");
}

static void nested_merge_null_delete_array_replace(void) {
  const char *meta =
      "{\"name\":\"demo\",\"port\":3000,\"settings\":{\"theme\":\"dark\",\"editor\":"
      "{\"tabs\":2,\"wrap\":true},\"langs\":[\"js\",\"py\"]}}";
  expect(meta,
         "{\"port\":null,\"settings\":{\"editor\":{\"tabs\":4},\"langs\":[\"c\"],\"theme\":null}}",
         "{\"name\":\"demo\",\"settings\":{\"editor\":{\"tabs\":4,\"wrap\":true},"
         "\"langs\":[\"c\"]}}");
  /* An object replaces a scalar; a scalar replaces an object. */
  expect("{\"a\":1}", "{\"a\":{\"b\":null,\"c\":2}}", "{\"a\":{\"c\":2}}");
  expect("{\"a\":{\"b\":1}}", "{\"a\":true}", "{\"a\":true}");
  /* An empty patch changes nothing. */
  expect(meta, "{}", meta);
}

/* cJSON keeps duplicate keys; a key the patch touches ends up once (so patches stay
 * idempotent), keys it does not touch are left alone. */
static void duplicate_keys(void) {
  expect("{\"a\":1,\"a\":2,\"b\":0}", "{\"a\":null}", "{\"b\":0}");
  expect("{\"a\":1,\"a\":2}", "{\"a\":3}", "{\"a\":3}");
  expect("{\"a\":{\"x\":1},\"a\":{\"y\":2}}", "{\"a\":{\"z\":3}}", "{\"a\":{\"x\":1,\"z\":3}}");
  /* In a patch, later members win. */
  expect("{}", "{\"a\":1,\"a\":null}", "{}");
  expect("{}", "{\"a\":null,\"a\":1}", "{\"a\":1}");
}

static void absent_target(void) {
  expect("", "{\"a\":{\"b\":null,\"c\":1}}", "{\"a\":{\"c\":1}}");
  expect("", "[1]", "[1]");
}

static void inputs_untouched_and_order_kept(void) {
  cJSON *t = cJSON_Parse("{\"x\":1,\"y\":{\"z\":2},\"w\":3}");
  cJSON *p = cJSON_Parse("{\"y\":{\"z\":5},\"x\":null,\"n\":7}");
  char *t_before = cJSON_PrintUnformatted(t), *p_before = cJSON_PrintUnformatted(p);
  cJSON *out = NULL;
  CHECK_INT(cc_json_patch_apply(t, p, &out), CC_OK);
  char *t_after = cJSON_PrintUnformatted(t), *p_after = cJSON_PrintUnformatted(p);
  char *o = cJSON_PrintUnformatted(out);
  CHECK_STR(t_after, t_before);
  CHECK_STR(p_after, p_before);
  CHECK_STR(o, "{\"y\":{\"z\":5},\"w\":3,\"n\":7}"); /* kept keys keep their place */
  cJSON_free(t_before);
  cJSON_free(p_before);
  cJSON_free(t_after);
  cJSON_free(p_after);
  cJSON_free(o);
  cJSON_Delete(t);
  cJSON_Delete(p);
  cJSON_Delete(out);
}

static void too_deep_and_null_patch(void) {
  /* Build {"a":{"a":...}} nested one level deeper than allowed. */
  cJSON *p = cJSON_CreateObject(), *cur = p;
  for (int i = 0; i < CC_JSON_PATCH_MAX_DEPTH; i++) cur = cJSON_AddObjectToObject(cur, "a");
  cJSON *out = (cJSON *)1;
  CHECK_INT(cc_json_patch_apply(NULL, p, &out), CC_BAD_REQUEST);
  CHECK(out == NULL);
  cJSON_Delete(p);
  /* Exactly at the limit is accepted. */
  p = cJSON_CreateObject();
  cur = p;
  for (int i = 0; i < CC_JSON_PATCH_MAX_DEPTH - 1; i++) cur = cJSON_AddObjectToObject(cur, "a");
  CHECK_INT(cc_json_patch_apply(NULL, p, &out), CC_OK);
  /* (cJSON_Compare is exponential in depth; compare the texts.) */
  char *a = cJSON_PrintUnformatted(out), *b = cJSON_PrintUnformatted(p);
  CHECK_STR(a, b);
  cJSON_free(a);
  cJSON_free(b);
  cJSON_Delete(out);
  cJSON_Delete(p);
  CHECK_INT(cc_json_patch_apply(NULL, NULL, &out), CC_BAD_REQUEST);
}

int main(void) {
  RUN(rfc7386_appendix_a);
  RUN(nested_merge_null_delete_array_replace);
  RUN(duplicate_keys);
  RUN(absent_target);
  RUN(inputs_untouched_and_order_kept);
  RUN(too_deep_and_null_patch);
  return CC_TEST_DONE();
}
