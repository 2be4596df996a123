/*
 * test_ws: the WebSocket wire format of the worker's terminal endpoint (native/worker/cc_wws):
 * RFC 6455's own examples (the accept key, a masked "Hello", fragments), every rule a server
 * enforces on client frames, and byte-at-a-time feeding.
 */
#include <string.h>

#include "cc_test.h"
#include "cc_wws.h"

/* Masks payload with key into a client frame (FIN set unless !fin). */
static size_t client_frame(uint8_t *out, int opcode, bool fin, const void *payload, size_t len,
                           const uint8_t key[4]) {
  size_t n = 0;
  out[n++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
  if (len < 126) {
    out[n++] = (uint8_t)(0x80 | len);
  } else if (len <= 0xFFFF) {
    out[n++] = 0x80 | 126;
    out[n++] = (uint8_t)(len >> 8);
    out[n++] = (uint8_t)len;
  } else {
    out[n++] = 0x80 | 127;
    for (int i = 0; i < 8; i++) out[n++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
  }
  memcpy(out + n, key, 4);
  n += 4;
  for (size_t i = 0; i < len; i++) out[n + i] = ((const uint8_t *)payload)[i] ^ key[i & 3];
  return n + len;
}

static const uint8_t KEY[4] = {0x37, 0xfa, 0x21, 0x3d};

static int feed_all(cc_ws_decoder *d, const uint8_t *buf, size_t len, cc_ws_message *m) {
  const uint8_t *p = buf;
  size_t n = len;
  return cc_ws_feed(d, &p, &n, m);
}

static void rfc_examples(void) {
  char acc[29];
  CHECK(cc_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", acc));
  CHECK_STR(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  CHECK(!cc_ws_accept_key("short", acc));
  CHECK(!cc_ws_accept_key(NULL, acc));
  /* RFC 6455 5.7: a masked "Hello" */
  const uint8_t hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  cc_ws_decoder d;
  cc_ws_decoder_init(&d, 1 << 20);
  cc_ws_message m;
  CHECK_INT(feed_all(&d, hello, sizeof hello, &m), 1);
  CHECK_INT(m.opcode, CC_WS_TEXT);
  CHECK(m.len == 5 && memcmp(m.data, "Hello", 5) == 0);
  /* fragments "Hel" + "lo" with a ping in between, fed one byte at a time */
  uint8_t buf[256];
  size_t n = client_frame(buf, CC_WS_TEXT, false, "Hel", 3, KEY);
  n += client_frame(buf + n, CC_WS_PING, true, "p", 1, KEY);
  n += client_frame(buf + n, CC_WS_CONT, true, "lo", 2, KEY);
  int got = 0;
  const uint8_t *p = buf;
  size_t left = n;
  while (left > 0) {
    size_t one = 1;
    const uint8_t *q = p;
    int r = cc_ws_feed(&d, &q, &one, &m);
    p++, left--;
    CHECK(r >= 0);
    if (r == 1) {
      if (got == 0) CHECK(m.opcode == CC_WS_PING && m.len == 1 && m.data[0] == 'p');
      if (got == 1) CHECK(m.opcode == CC_WS_TEXT && m.len == 5 && !memcmp(m.data, "Hello", 5));
      got++;
    }
  }
  CHECK_INT(got, 2);
  /* 16-bit and 64-bit lengths, binary */
  static uint8_t big[70000], frame[70100];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)i;
  n = client_frame(frame, CC_WS_BINARY, true, big, 300, KEY);
  CHECK_INT(feed_all(&d, frame, n, &m), 1);
  CHECK(m.opcode == CC_WS_BINARY && m.len == 300 && !memcmp(m.data, big, 300));
  n = client_frame(frame, CC_WS_BINARY, true, big, sizeof big, KEY);
  CHECK_INT(feed_all(&d, frame, n, &m), 1);
  CHECK(m.len == sizeof big && !memcmp(m.data, big, sizeof big));
  /* two messages in one buffer: one at a time */
  n = client_frame(buf, CC_WS_TEXT, true, "a", 1, KEY);
  n += client_frame(buf + n, CC_WS_TEXT, true, "b", 1, KEY);
  p = buf;
  left = n;
  CHECK_INT(cc_ws_feed(&d, &p, &left, &m), 1);
  CHECK(m.len == 1 && m.data[0] == 'a');
  CHECK_INT(cc_ws_feed(&d, &p, &left, &m), 1);
  CHECK(m.len == 1 && m.data[0] == 'b' && left == 0);
  cc_ws_decoder_free(&d);
  /* the server's headers */
  uint8_t h[10];
  CHECK_INT(cc_ws_frame_header(CC_WS_BINARY, 5, h), 2);
  CHECK(h[0] == 0x82 && h[1] == 5);
  CHECK_INT(cc_ws_frame_header(CC_WS_TEXT, 300, h), 4);
  CHECK(h[1] == 126 && h[2] == 1 && h[3] == 44);
  CHECK_INT(cc_ws_frame_header(CC_WS_TEXT, 70000, h), 10);
  CHECK(h[1] == 127 && h[7] == 0x01 && h[8] == 0x11 && h[9] == 0x70);
}

/* Every rule: the frame is refused with the right close code, and the decoder stays failed. */
static void protocol_errors(void) {
  struct {
    const char *what;
    uint8_t bytes[16];
    size_t len;
    int code;
  } bad[] = {
      {"unmasked", {0x81, 0x01, 'x'}, 3, CC_WS_CLOSE_PROTOCOL},
      {"reserved bit", {0xC1, 0x81, 1, 2, 3, 4, 'x'}, 7, CC_WS_CLOSE_PROTOCOL},
      {"unknown opcode", {0x83, 0x80, 1, 2, 3, 4}, 6, CC_WS_CLOSE_PROTOCOL},
      {"fragmented ping", {0x09, 0x80, 1, 2, 3, 4}, 6, CC_WS_CLOSE_PROTOCOL},
      {"long ping", {0x89, 0xFE, 0, 126, 1, 2, 3, 4}, 8, CC_WS_CLOSE_PROTOCOL},
      {"continuation first", {0x80, 0x80, 1, 2, 3, 4}, 6, CC_WS_CLOSE_PROTOCOL},
      {"64-bit length MSB", {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}, 14,
       CC_WS_CLOSE_PROTOCOL},
      {"over the limit", {0x82, 0xFE, 0x10, 0x00, 1, 2, 3, 4}, 8, CC_WS_CLOSE_TOO_BIG},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cc_ws_decoder d;
    cc_ws_decoder_init(&d, 1024);
    cc_ws_message m;
    int r = feed_all(&d, bad[i].bytes, bad[i].len, &m);
    if (r != -1 || d.close_code != bad[i].code) printf("  case: %s\n", bad[i].what);
    CHECK_INT(r, -1);
    CHECK_INT(d.close_code, bad[i].code);
    uint8_t ok[16];
    size_t n = client_frame(ok, CC_WS_TEXT, true, "x", 1, KEY);
    CHECK_INT(feed_all(&d, ok, n, &m), -1); /* stays failed */
    cc_ws_decoder_free(&d);
  }
  /* a new message inside a fragmented one; invalid UTF-8 text; bad close frames */
  cc_ws_decoder d;
  cc_ws_message m;
  uint8_t buf[64];
  size_t n;
  cc_ws_decoder_init(&d, 1024);
  n = client_frame(buf, CC_WS_TEXT, false, "a", 1, KEY);
  n += client_frame(buf + n, CC_WS_TEXT, true, "b", 1, KEY);
  CHECK_INT(feed_all(&d, buf, n, &m), -1);
  cc_ws_decoder_free(&d);
  const char *bad_text[] = {"\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xE2\x82"};
  for (size_t i = 0; i < 4; i++) {
    cc_ws_decoder_init(&d, 1024);
    n = client_frame(buf, CC_WS_TEXT, true, bad_text[i], strlen(bad_text[i]), KEY);
    CHECK_INT(feed_all(&d, buf, n, &m), -1);
    cc_ws_decoder_free(&d);
  }
  cc_ws_decoder_init(&d, 1024);
  n = client_frame(buf, CC_WS_TEXT, true, "\xE2\x82\xAC", 3, KEY); /* the euro sign is fine */
  CHECK_INT(feed_all(&d, buf, n, &m), 1);
  cc_ws_decoder_free(&d);
  const uint8_t close1[] = {0x03}, close_code[] = {0x03, 0xED}, close_ok[] = {0x03, 0xE8, 'b'};
  cc_ws_decoder_init(&d, 1024);
  n = client_frame(buf, CC_WS_CLOSE, true, close1, 1, KEY);
  CHECK_INT(feed_all(&d, buf, n, &m), -1);
  cc_ws_decoder_free(&d);
  cc_ws_decoder_init(&d, 1024);
  n = client_frame(buf, CC_WS_CLOSE, true, close_code, 2, KEY); /* 1005 may not be sent */
  CHECK_INT(feed_all(&d, buf, n, &m), -1);
  cc_ws_decoder_free(&d);
  cc_ws_decoder_init(&d, 1024);
  n = client_frame(buf, CC_WS_CLOSE, true, close_ok, 3, KEY);
  CHECK_INT(feed_all(&d, buf, n, &m), 1);
  CHECK(m.opcode == CC_WS_CLOSE && m.len == 3);
  cc_ws_decoder_free(&d);
}

int main(void) {
  RUN(rfc_examples);
  RUN(protocol_errors);
  return CC_TEST_DONE();
}
