/*
 * Unit tests of the Connect envelope stream reader with the E2B client's rules (shared/cc_envelope.c
 * set up by cc_e2b_envelope_init) and the process-event decoding of native/e2b/cc_e2b_wire.c.  The same process stream is fed in every possible
 * chunking (each fixed chunk size, every two-way split, and pseudo-random splits), and the
 * decoded events must be identical each time: envd and proxies split envelopes anywhere.
 */
#include <stdlib.h>

#include "cc_e2b_wire.h"
#include "cc_test.h"

/* ------------------------------------------------------------------ stream builder */

typedef struct {
  unsigned char b[4096];
  size_t n;
} stream;

static void put(stream *s, unsigned flags, const char *json) {
  size_t len = strlen(json);
  cc_e2b_envelope_header(s->b + s->n, flags, (uint32_t)len);
  memcpy(s->b + s->n + 5, json, len);
  s->n += 5 + len;
}

/* The canonical stream: what envd sends for `printf hello; printf oops >&2; exit 3`.
 * The stdout payload uses unpadded base64 ("aGVsbG8K" is padded-free already; "b29wcw"
 * lacks its "==") and an empty keepalive object. */
static void canonical(stream *s) {
  s->n = 0;
  put(s, 0, "{\"event\":{\"start\":{\"pid\":1234}}}");
  put(s, 0, "{\"event\":{\"data\":{\"stdout\":\"aGVsbG8K\"}}}");
  put(s, 0, "{\"event\":{\"keepalive\":{}}}");
  put(s, 0, "{\"event\":{\"data\":{\"stderr\":\"b29wcw\"}}}");
  put(s, 0,
      "{\"event\":{\"end\":{\"exitCode\":3,\"exited\":true,\"status\":\"exit status 3\","
      "\"error\":\"exit status 3\"}}}");
  put(s, CC_E2B_FLAG_END_STREAM, "{}");
}

/* ------------------------------------------------------------------ collector */

typedef struct {
  char log[2048]; /* one line per event, e.g. "start 1234" */
  size_t n;
  int envelopes;
  int stop_after; /* stop (return 1) after this many envelopes; 0 = never */
  bool eos_ok;
} collector;

static void logf_(collector *c, const char *line) {
  size_t l = strlen(line);
  if (c->n + l + 2 < sizeof c->log) {
    memcpy(c->log + c->n, line, l);
    c->n += l;
    c->log[c->n++] = '\n';
    c->log[c->n] = 0;
  }
}

static int on_env(void *ctx, unsigned flags, const uint8_t *bytes, size_t len) {
  const char *payload = (const char *)bytes;
  collector *c = ctx;
  char line[512];
  c->envelopes++;
  if (flags & CC_E2B_FLAG_END_STREAM) {
    char code[32], msg[128];
    c->eos_ok = cc_e2b_end_stream_parse(payload, len, code, sizeof code, msg, sizeof msg) == CC_OK;
    logf_(c, "eos");
  } else {
    cc_e2b_parsed_event pe;
    cc_status st = cc_e2b_event_parse(payload, len, &pe);
    if (st != CC_OK) {
      logf_(c, "bad");
    } else if (!pe.known) {
      logf_(c, "unknown");
    } else {
      switch (pe.ev.type) {
        case CC_E2B_EVENT_START:
          snprintf(line, sizeof line, "start %u", pe.ev.pid);
          break;
        case CC_E2B_EVENT_STDOUT:
          snprintf(line, sizeof line, "stdout [%.*s]", (int)pe.ev.len, pe.ev.data);
          break;
        case CC_E2B_EVENT_STDERR:
          snprintf(line, sizeof line, "stderr [%.*s]", (int)pe.ev.len, pe.ev.data);
          break;
        case CC_E2B_EVENT_PTY:
          snprintf(line, sizeof line, "pty %zu", pe.ev.len);
          break;
        case CC_E2B_EVENT_END:
          snprintf(line, sizeof line, "end %d %d [%s] [%s]", pe.ev.exit_code, pe.ev.exited,
                   pe.ev.status, pe.ev.error);
          break;
        case CC_E2B_EVENT_KEEPALIVE:
          snprintf(line, sizeof line, "keepalive");
          break;
      }
      logf_(c, line);
    }
    cc_e2b_parsed_event_cleanup(&pe);
  }
  return c->stop_after && c->envelopes >= c->stop_after;
}

static const char *expected =
    "start 1234\n"
    "stdout [hello\n]\n"
    "keepalive\n"
    "stderr [oops]\n"
    "end 3 1 [exit status 3] [exit status 3]\n"
    "eos\n";

/* Feeds s split at the given cut points; returns the collector. */
static cc_status feed_cuts(const stream *s, const size_t *cuts, size_t ncuts, collector *c) {
  cc_envelope_reader p;
  cc_e2b_envelope_init(&p, 1 << 16);
  size_t at = 0;
  cc_status st = CC_OK;
  for (size_t i = 0; i <= ncuts && st == CC_OK; i++) {
    size_t end = i < ncuts ? cuts[i] : s->n;
    st = cc_envelope_reader_feed(&p, s->b + at, end - at, on_env, c);
    at = end;
  }
  if (st == CC_OK && !cc_envelope_reader_idle(&p)) st = CC_UPSTREAM_ERROR;
  cc_envelope_reader_cleanup(&p);
  return st;
}

/* ------------------------------------------------------------------ tests */

static void test_whole_stream(void) {
  stream s;
  canonical(&s);
  collector c = {0};
  CHECK_INT(feed_cuts(&s, NULL, 0, &c), CC_OK);
  CHECK_STR(c.log, expected);
  CHECK(c.eos_ok);
}

static void test_every_chunk_size(void) {
  stream s;
  canonical(&s);
  for (size_t size = 1; size <= s.n; size++) {
    size_t cuts[4096], n = 0;
    for (size_t at = size; at < s.n; at += size) cuts[n++] = at;
    collector c = {0};
    cc_status st = feed_cuts(&s, cuts, n, &c);
    if (st != CC_OK || strcmp(c.log, expected) != 0) {
      fprintf(stderr, "chunk size %zu: status %d log:\n%s", size, st, c.log);
      CHECK(0);
      return;
    }
  }
  CHECK(1);
}

static void test_every_two_way_split(void) {
  stream s;
  canonical(&s);
  for (size_t a = 0; a <= s.n; a++) {
    for (size_t b = a; b <= s.n; b += 7) {
      size_t cuts[2] = {a, b};
      collector c = {0};
      cc_status st = feed_cuts(&s, cuts, 2, &c);
      if (st != CC_OK || strcmp(c.log, expected) != 0) {
        fprintf(stderr, "split %zu/%zu: status %d\n", a, b, st);
        CHECK(0);
        return;
      }
    }
  }
  CHECK(1);
}

static void test_random_splits(void) {
  stream s;
  canonical(&s);
  unsigned seed = 12345;
  for (int round = 0; round < 2000; round++) {
    size_t cuts[64], n = 0, at = 0;
    while (n < 64) {
      seed = seed * 1103515245u + 12345u;
      at += 1 + (seed >> 16) % 23;
      if (at >= s.n) break;
      cuts[n++] = at;
    }
    collector c = {0};
    if (feed_cuts(&s, cuts, n, &c) != CC_OK || strcmp(c.log, expected) != 0) {
      fprintf(stderr, "random round %d failed\n", round);
      CHECK(0);
      return;
    }
  }
  CHECK(1);
}

static void test_empty_payload_and_truncation(void) {
  stream s = {.n = 0};
  put(&s, 0, "");
  put(&s, CC_E2B_FLAG_END_STREAM, "");
  cc_envelope_reader p;
  collector c = {0};
  cc_e2b_envelope_init(&p, 100);
  CHECK_INT(cc_envelope_reader_feed(&p, s.b, s.n, on_env, &c), CC_OK);
  CHECK_INT(c.envelopes, 2);
  CHECK(p.end_seen);
  cc_envelope_reader_cleanup(&p);

  /* A stream cut inside a header or a payload is not idle (the client reports it). */
  canonical(&s);
  size_t first = 5 + strlen("{\"event\":{\"start\":{\"pid\":1234}}}");
  for (size_t cut = 1; cut < first + 20; cut++) {
    if (cut == first) continue; /* an envelope boundary is idle */
    collector c2 = {0};
    cc_e2b_envelope_init(&p, 1 << 16);
    CHECK_INT(cc_envelope_reader_feed(&p, s.b, cut, on_env, &c2), CC_OK);
    CHECK(!cc_envelope_reader_idle(&p));
    cc_envelope_reader_cleanup(&p);
  }
}

static void test_bad_frames(void) {
  cc_envelope_reader p;
  collector c = {0};
  stream s = {.n = 0};

  put(&s, CC_E2B_FLAG_COMPRESSED, "{}"); /* compression is never negotiated */
  cc_e2b_envelope_init(&p, 100);
  CHECK_INT(cc_envelope_reader_feed(&p, s.b, s.n, on_env, &c), CC_UPSTREAM_ERROR);
  CHECK_INT(c.envelopes, 0);
  CHECK_INT(cc_envelope_reader_feed(&p, s.b, s.n, on_env, &c), CC_UPSTREAM_ERROR); /* stays failed */
  cc_envelope_reader_cleanup(&p);

  s.n = 0;
  put(&s, 0x80, "{}");
  cc_e2b_envelope_init(&p, 100);
  CHECK_INT(cc_envelope_reader_feed(&p, s.b, s.n, on_env, &c), CC_UPSTREAM_ERROR);
  cc_envelope_reader_cleanup(&p);

  /* A length above the limit is refused from the header alone, before any allocation. */
  unsigned char big[5];
  cc_e2b_envelope_header(big, 0, 0xFFFFFFFFu);
  cc_e2b_envelope_init(&p, 1 << 20);
  CHECK_INT(cc_envelope_reader_feed(&p, big, 5, on_env, &c), CC_TOO_LARGE);
  cc_envelope_reader_cleanup(&p);

  /* Nothing may follow end-of-stream. */
  s.n = 0;
  put(&s, CC_E2B_FLAG_END_STREAM, "{}");
  put(&s, 0, "{}");
  c = (collector){0};
  cc_e2b_envelope_init(&p, 100);
  CHECK_INT(cc_envelope_reader_feed(&p, s.b, s.n, on_env, &c), CC_UPSTREAM_ERROR);
  CHECK_INT(c.envelopes, 1);
  cc_envelope_reader_cleanup(&p);
}

static void test_stop_from_callback(void) {
  stream s;
  canonical(&s);
  collector c = {.stop_after = 2};
  cc_envelope_reader p;
  cc_e2b_envelope_init(&p, 1 << 16);
  /* Feed byte by byte: after the second envelope nothing more is delivered. */
  for (size_t i = 0; i < s.n; i++)
    CHECK_INT(cc_envelope_reader_feed(&p, s.b + i, 1, on_env, &c), CC_OK);
  CHECK(p.stopped);
  CHECK_INT(c.envelopes, 2);
  CHECK_STR(c.log, "start 1234\nstdout [hello\n]\n");
  cc_envelope_reader_cleanup(&p);
}

static void test_events(void) {
  cc_e2b_parsed_event pe;
  const char *j;

  /* Signal kill: exitCode -1, exited omitted (false), envd's field spelling. */
  j = "{\"event\":{\"end\":{\"exitCode\":-1,\"status\":\"signal: killed\",\"error\":\"signal: "
      "killed\"}}}";
  CHECK_INT(cc_e2b_event_parse(j, strlen(j), &pe), CC_OK);
  CHECK(pe.known && pe.ev.type == CC_E2B_EVENT_END);
  CHECK_INT(pe.ev.exit_code, -1);
  CHECK(!pe.ev.exited);
  CHECK_STR(pe.ev.status, "signal: killed");
  cc_e2b_parsed_event_cleanup(&pe);

  /* exit 0: every default field omitted. */
  j = "{\"event\":{\"end\":{\"exited\":true,\"status\":\"exit status 0\"}}}";
  CHECK_INT(cc_e2b_event_parse(j, strlen(j), &pe), CC_OK);
  CHECK_INT(pe.ev.exit_code, 0);
  CHECK(pe.ev.exited);
  CHECK_STR(pe.ev.error, "");
  cc_e2b_parsed_event_cleanup(&pe);

  /* snake_case and a string number are accepted too. */
  j = "{\"event\":{\"end\":{\"exit_code\":\"7\"}}}";
  CHECK_INT(cc_e2b_event_parse(j, strlen(j), &pe), CC_OK);
  CHECK_INT(pe.ev.exit_code, 7);
  cc_e2b_parsed_event_cleanup(&pe);

  /* Binary data with a NUL, URL-safe alphabet, no padding: bytes 00 ff fe -> "AP_-". */
  j = "{\"event\":{\"data\":{\"stdout\":\"AP_-\"}}}";
  CHECK_INT(cc_e2b_event_parse(j, strlen(j), &pe), CC_OK);
  CHECK_INT(pe.ev.len, 3);
  CHECK(memcmp(pe.ev.data, "\x00\xff\xfe", 3) == 0);
  cc_e2b_parsed_event_cleanup(&pe);

  /* start with pid 0 omitted (proto3 default). */
  j = "{\"event\":{\"start\":{}}}";
  CHECK_INT(cc_e2b_event_parse(j, strlen(j), &pe), CC_OK);
  CHECK(pe.known && pe.ev.type == CC_E2B_EVENT_START && pe.ev.pid == 0);
  cc_e2b_parsed_event_cleanup(&pe);

  /* Unknown kinds are ignored, not errors (newer servers may add events). */
  j = "{\"event\":{\"somethingNew\":{}}}";
  CHECK_INT(cc_e2b_event_parse(j, strlen(j), &pe), CC_OK);
  CHECK(!pe.known);
  cc_e2b_parsed_event_cleanup(&pe);

  /* Malformed: not JSON, bad base64, pid out of range. */
  const char *bad[] = {"{\"event\":",
                       "{\"event\":{\"data\":{\"stdout\":\"a$b\"}}}",
                       "{\"event\":{\"data\":{\"stdout\":\"abcde\"}}}",
                       "{\"event\":{\"start\":{\"pid\":-1}}}",
                       "[1]",
                       "{\"event\":{\"start\":{\"pid\":\"12x\"}}}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK_INT(cc_e2b_event_parse(bad[i], strlen(bad[i]), &pe), CC_UPSTREAM_ERROR);
    cc_e2b_parsed_event_cleanup(&pe);
  }
}

static void test_end_stream(void) {
  char code[32], msg[128];
  const char *j = "{}";
  CHECK_INT(cc_e2b_end_stream_parse(j, 2, code, sizeof code, msg, sizeof msg), CC_OK);
  j = "{\"metadata\":{\"k\":[\"v\"]}}";
  CHECK_INT(cc_e2b_end_stream_parse(j, strlen(j), code, sizeof code, msg, sizeof msg), CC_OK);
  j = "{\"error\":{\"code\":\"invalid_argument\",\"message\":\"cwd '/nope' does not exist\"}}";
  CHECK_INT(cc_e2b_end_stream_parse(j, strlen(j), code, sizeof code, msg, sizeof msg),
            CC_BAD_REQUEST);
  CHECK_STR(code, "invalid_argument");
  CHECK_STR(msg, "cwd '/nope' does not exist");
  j = "{\"error\":{\"code\":\"deadline_exceeded\",\"message\":\"x\"}}";
  CHECK_INT(cc_e2b_end_stream_parse(j, strlen(j), code, sizeof code, msg, sizeof msg), CC_TIMEOUT);
  j = "{\"error\":{\"code\":\"unavailable\"}}";
  CHECK_INT(cc_e2b_end_stream_parse(j, strlen(j), code, sizeof code, msg, sizeof msg),
            CC_SANDBOX_UNAVAILABLE);
  j = "{\"error\":{}}";
  CHECK_INT(cc_e2b_end_stream_parse(j, strlen(j), code, sizeof code, msg, sizeof msg),
            CC_UPSTREAM_ERROR);
  CHECK_INT(cc_e2b_end_stream_parse("nope", 4, code, sizeof code, msg, sizeof msg),
            CC_UPSTREAM_ERROR);
}

static void test_base64(void) {
  unsigned char out[64];
  size_t n;
  CHECK(cc_e2b_base64_decode("aGVsbG8=", 8, out, &n) && n == 5 && memcmp(out, "hello", 5) == 0);
  CHECK(cc_e2b_base64_decode("aGVsbG8", 7, out, &n) && n == 5 && memcmp(out, "hello", 5) == 0);
  CHECK(cc_e2b_base64_decode("", 0, out, &n) && n == 0);
  CHECK(!cc_e2b_base64_decode("a", 1, out, &n));
  CHECK(!cc_e2b_base64_decode("aGV sbG8", 8, out, &n));
  for (size_t len = 0; len < 40; len++) {
    unsigned char src[40];
    for (size_t i = 0; i < len; i++) src[i] = (unsigned char)(i * 37 + 11);
    char *enc = cc_e2b_base64_encode(src, len);
    CHECK(enc != NULL);
    size_t el = strlen(enc);
    CHECK_INT(el % 4, 0);
    /* Round trip, with and without the padding. */
    CHECK(cc_e2b_base64_decode(enc, el, out, &n) && n == len && memcmp(out, src, len) == 0);
    while (el && enc[el - 1] == '=') el--;
    CHECK(cc_e2b_base64_decode(enc, el, out, &n) && n == len && memcmp(out, src, len) == 0);
    free(enc);
  }
}

int main(void) {
  RUN(test_whole_stream);
  RUN(test_every_chunk_size);
  RUN(test_every_two_way_split);
  RUN(test_random_splits);
  RUN(test_empty_payload_and_truncation);
  RUN(test_bad_frames);
  RUN(test_stop_from_callback);
  RUN(test_events);
  RUN(test_end_stream);
  RUN(test_base64);
  return CC_TEST_DONE();
}
