/* cc_wjson (native/worker): the worker's fast ok-response printer must produce JSON that
 * parses back to exactly the tree cc_proto_encode_ok would have sent. */
#include <stdlib.h>
#include <string.h>

#include "cc_proto.h"
#include "cc_test.h"
#include "cc_wjson.h"

static void same_as_proto(const char *result_json, const char *id, long long gen) {
  cJSON *result = result_json ? cJSON_Parse(result_json) : NULL;
  CHECK(!result_json || result);
  char *a = NULL, *b = NULL;
  CHECK_INT(cc_wjson_encode_ok(id, result, gen, &a), CC_OK);
  CHECK_INT(cc_proto_encode_ok(id, result, gen, &b), CC_OK);
  cJSON *ja = cJSON_Parse(a), *jb = cJSON_Parse(b);
  CHECK(ja && jb);
  CHECK(cJSON_Compare(ja, jb, 1));
  if (!cJSON_Compare(ja, jb, 1)) fprintf(stderr, "wjson: %s\nproto: %s\n", a, b);
  cJSON_Delete(ja);
  cJSON_Delete(jb);
  cc_proto_free(a);
  cc_proto_free(b);
  cJSON_Delete(result);
}

int main(void) {
  same_as_proto(NULL, "x", -1);
  same_as_proto("{}", NULL, 0);
  same_as_proto("{\"a\":1,\"b\":-2,\"c\":1.5,\"d\":1e300,\"e\":-0.000123,\"f\":9007199254740993}", "id", 7);
  same_as_proto("{\"s\":\"quote \\\" backslash \\\\ nl \\n tab \\t ctl \\u0001 \\u001f del \\u007f\"}", "q\"", 1);
  same_as_proto("{\"u\":\"h\\u00e9llo \\u2603 \\ud83d\\ude00\",\"k\\u00e9y\":[true,false,null,[],{}]}", "u", 2);
  same_as_proto("{\"items\":[{\"id\":\"a\",\"exitCode\":0,\"duration\":12,\"createdAt\":1795664375706}]}", "h", 3);
  /* exact text for the envelope and integers */
  cJSON *r = cJSON_Parse("{\"n\":1795664375706,\"m\":-3}");
  char *t = NULL;
  CHECK_INT(cc_wjson_encode_ok("i", r, 12, &t), CC_OK);
  CHECK_STR(t, "{\"v\":1,\"id\":\"i\",\"ok\":true,\"result\":{\"n\":1795664375706,\"m\":-3},\"generation\":12}");
  cc_proto_free(t);
  cJSON_Delete(r);
  printf("test_wjson: %d checks, %d failures\n", cc_test_checks, cc_test_failures);
  return cc_test_failures > 255 ? 255 : cc_test_failures;
}
