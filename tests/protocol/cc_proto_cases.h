/*
 * cc_proto_cases: runs one protocol data case (the files in tests/protocol/cases/, format in
 * tests/protocol/README.md) against the cc_proto codec.
 *
 * Plain C over cc_proto and cJSON, no I/O: the native runner (tests/unit/
 * test_protocol_files.c) and the wasm build under Node call the same function with the
 * same file text, so both builds are held to the same expectations.
 *
 * Ownership: `msg` is caller-owned storage; *input from cc_proto_case_input is freed with
 * cc_proto_free().
 */
#ifndef CC_PROTO_CASES_H
#define CC_PROTO_CASES_H

#include <stddef.h>

enum { CC_CASE_PASS = 0, CC_CASE_FAIL = 1, CC_CASE_MALFORMED = 2 };

/* Runs the case in `text` (the whole file).  Returns CC_CASE_PASS, or CC_CASE_FAIL /
 * CC_CASE_MALFORMED with a one-line reason in msg (always NUL-terminated when cap > 0). */
int cc_proto_case_run(const char *text, size_t len, char *msg, size_t cap);

/* The case's input bytes and kind ("request", "response", "event", "line"), e.g. to seed a
 * fuzzer.  Returns 0 on success; *input: cc_proto_free(); *kind is static. */
int cc_proto_case_input(const char *text, size_t len, const char **kind, char **input,
                        size_t *input_len);

#endif
