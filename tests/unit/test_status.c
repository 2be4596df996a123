/* The status table: every enum value has a distinct protocol code and the HTTP status
 * DESIGN §4 gives it, and parsing a code gives back the same value. */
#include "cc_status.h"
#include "cc_test.h"

static void codes_round_trip_and_are_distinct(void) {
  for (int i = 0; i < CC_STATUS_COUNT; i++) {
    cc_status back;
    CHECK(cc_status_from_code(cc_status_code((cc_status)i), &back));
    CHECK_INT(back, i);
    for (int j = 0; j < i; j++) CHECK(strcmp(cc_status_code(i), cc_status_code(j)) != 0);
  }
  cc_status dummy;
  CHECK(!cc_status_from_code("no_such_code", &dummy));
  CHECK(!cc_status_from_code(NULL, &dummy));
}

static void http_statuses_match_design(void) {
  static const struct { const char *code; int http; } want[] = {
      {"bad_request", 400},  {"unauthorized", 401},        {"forbidden", 403},
      {"not_found", 404},    {"too_large", 413},           {"rate_limited", 429},
      {"timeout", 504},      {"sandbox_unavailable", 503}, {"upstream_error", 502},
      {"conflict", 409},     {"internal", 500},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    cc_status s;
    CHECK(cc_status_from_code(want[i].code, &s));
    CHECK_INT(cc_status_http(s), want[i].http);
  }
  CHECK_INT(cc_status_http(CC_OK), 200);
  CHECK_STR(cc_status_code((cc_status)999), "internal");
}

int main(void) {
  RUN(codes_round_trip_and_are_distinct);
  RUN(http_statuses_match_design);
  return CC_TEST_DONE();
}
