/*
 * cc_wws: the WebSocket wire format (RFC 6455) the worker's terminal endpoint speaks: the
 * handshake's accept key, an incremental decoder of client frames (untrusted bytes: every
 * rule of the RFC that a server must enforce is enforced, with the close code to answer),
 * and the encoder of server frames.  No I/O and no allocation beyond the message buffer, so
 * that it can be fuzzed and unit-tested on its own.
 *
 * Ownership: a cc_ws_decoder owns its message buffer (cc_ws_decoder_free).
 */
#ifndef CC_WWS_H
#define CC_WWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
  CC_WS_CONT = 0x0,
  CC_WS_TEXT = 0x1,
  CC_WS_BINARY = 0x2,
  CC_WS_CLOSE = 0x8,
  CC_WS_PING = 0x9,
  CC_WS_PONG = 0xA,
};

/* Close codes a decoder error maps to. */
enum { CC_WS_CLOSE_PROTOCOL = 1002, CC_WS_CLOSE_TOO_BIG = 1009 };

/* Sec-WebSocket-Accept for a client's Sec-WebSocket-Key: base64(SHA-1(key + GUID)).
 * false when the key is not the base64 of 16 bytes. */
bool cc_ws_accept_key(const char *client_key, char out[29]);

typedef struct {
  /* limits */
  size_t max_message; /* largest reassembled data message */
  /* state of the frame being read */
  uint8_t hdr[14];
  size_t hdr_len, hdr_need;
  uint64_t payload_len, payload_got;
  uint8_t mask[4];
  int opcode;
  bool fin;
  /* the data message being reassembled (text/binary + continuations) */
  int msg_opcode; /* 0 when none */
  uint8_t *msg;
  size_t msg_len, msg_cap;
  /* the control frame being read (<= 125 bytes) */
  uint8_t ctl[125];
  size_t ctl_len;
  int close_code; /* set on a protocol error: the code to close with */
} cc_ws_decoder;

void cc_ws_decoder_init(cc_ws_decoder *d, size_t max_message);
void cc_ws_decoder_free(cc_ws_decoder *d);

/* One complete message: a whole data message (opcode TEXT or BINARY) or one control frame
 * (CLOSE, PING, PONG).  data points into the decoder, valid until the next feed. */
typedef struct {
  int opcode;
  const uint8_t *data;
  size_t len;
} cc_ws_message;

/* Consumes bytes from *in (advancing *in and *n) until one message is complete (returns 1,
 * *msg set), the input is used up (returns 0), or the client broke the protocol (returns -1;
 * d->close_code says how to close: unmasked frame, reserved bits, unknown opcode, a
 * fragmented or oversized control frame, a continuation without a start, a new message
 * inside a fragmented one, a message over max_message, invalid UTF-8 in a text message or a
 * close reason).  After -1 the decoder stays failed. */
int cc_ws_feed(cc_ws_decoder *d, const uint8_t **in, size_t *n, cc_ws_message *msg);

/* Writes the header of an unmasked, final server frame of `len` payload bytes into hdr (up
 * to 10 bytes); returns its length. */
size_t cc_ws_frame_header(int opcode, uint64_t len, uint8_t hdr[10]);

#endif
