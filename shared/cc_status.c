/* cc_status: tables generated from CC_STATUS_MAP (see cc_status.h). */
#include "cc_status.h"

#include <string.h>

struct row {
  const char *code;
  int http;
  bool retryable;
  const char *message;
};

static const struct row rows[CC_STATUS_COUNT] = {
#define CC_STATUS_ROW(name, code, http, retry, msg) {code, http, retry, msg},
    CC_STATUS_MAP(CC_STATUS_ROW)
#undef CC_STATUS_ROW
};

static const struct row *row_of(cc_status s) {
  return ((unsigned)s < CC_STATUS_COUNT) ? &rows[s] : &rows[CC_INTERNAL];
}

const char *cc_status_code(cc_status s) { return row_of(s)->code; }
int cc_status_http(cc_status s) { return row_of(s)->http; }
bool cc_status_retryable(cc_status s) { return row_of(s)->retryable; }
const char *cc_status_message(cc_status s) { return row_of(s)->message; }

bool cc_status_from_code(const char *code, cc_status *out) {
  if (!code) return false;
  for (int i = 0; i < CC_STATUS_COUNT; i++) {
    if (strcmp(rows[i].code, code) == 0) {
      *out = (cc_status)i;
      return true;
    }
  }
  return false;
}
