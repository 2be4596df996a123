/*
 * libFuzzer target: every JSON response the E2B client parses (native/e2b/cc_e2b_wire.c):
 * create/connect Sandbox, SandboxDetail, EntryInfo and lists, ProcessInfo lists, the upload
 * answer, single events, end-of-stream payloads and error bodies with their status mapping.
 * Properties checked besides memory safety: a parsed sandbox never carries bytes that would
 * break a header or URL, and an error message is always NUL-terminated and scrubbed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cc_e2b_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *j = (const char *)data;

  cc_e2b_sandbox sb;
  if (cc_e2b_sandbox_parse(j, size, "e2b.app", &sb) == CC_OK) {
    for (const char *p = sb.envd_access_token; *p; p++)
      if ((unsigned char)*p < 0x20) abort();
    for (const char *p = sb.id; *p; p++)
      if (*p == '/' || *p == '.' || (unsigned char)*p <= 0x20) abort();
  }

  cc_e2b_info info;
  cc_e2b_info_parse(j, size, &info);

  cc_e2b_entry e;
  cc_e2b_entry_parse(j, size, &e);
  cc_e2b_entry_cleanup(&e);

  cc_e2b_entry_list l;
  cc_e2b_entries_parse(j, size, 1000, &l);
  cc_e2b_entry_list_cleanup(&l);

  cc_e2b_process_list pl;
  cc_e2b_processes_parse(j, size, &pl);
  cc_e2b_process_list_cleanup(&pl);

  char path[64];
  cc_e2b_upload_parse(j, size, path, sizeof path);

  cc_e2b_parsed_event pe;
  cc_e2b_event_parse(j, size, &pe);
  cc_e2b_parsed_event_cleanup(&pe);

  char code[32], msg[128];
  cc_e2b_end_stream_parse(j, size, code, sizeof code, msg, sizeof msg);

  cc_e2b_error err;
  int http = size ? 400 + data[0] % 200 : 502;
  cc_e2b_error_from_response(http, j, size, size & 1, size & 2, "fuzz", &err);
  cc_e2b_scrub(err.message, sizeof err.message, "e2b_secret");
  if (!memchr(err.message, 0, sizeof err.message) || strstr(err.message, "e2b_secret")) abort();
  return 0;
}
