/*
 * cc_wws: the WebSocket wire format (see cc_wws.h).
 */
#include "cc_wws.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

bool cc_ws_accept_key(const char *key, char out[29]) {
  out[0] = 0;
  /* the key must be the base64 of 16 bytes: 24 characters ending in "==" */
  size_t n = key ? strlen(key) : 0;
  if (n != 24 || key[22] != '=' || key[23] != '=') return false;
  unsigned char raw[18];
  if (EVP_DecodeBlock(raw, (const unsigned char *)key, 24) != 18) return false;
  char buf[24 + sizeof WS_GUID];
  memcpy(buf, key, 24);
  memcpy(buf + 24, WS_GUID, sizeof WS_GUID);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (EVP_Digest(buf, 24 + sizeof WS_GUID - 1, md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20)
    return false;
  return EVP_EncodeBlock((unsigned char *)out, md, 20) == 28;
}

void cc_ws_decoder_init(cc_ws_decoder *d, size_t max_message) {
  memset(d, 0, sizeof *d);
  d->max_message = max_message;
  d->hdr_need = 2;
}

void cc_ws_decoder_free(cc_ws_decoder *d) {
  free(d->msg);
  d->msg = NULL;
}

/* Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF). */
static bool valid_utf8(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t k;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) k = 1, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) k = 2, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0) k = 3, cp = c & 0x07, min = 0x10000;
    else return false;
    if (i + k >= n) return false; /* truncated sequence */
    for (size_t j = 1; j <= k; j++) {
      if ((s[i + j] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + j] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += k + 1;
  }
  return true;
}

static int fail(cc_ws_decoder *d, int code) {
  d->close_code = code;
  return -1;
}

/* The header is complete: check it against the RFC's rules for a server. */
static int header_done(cc_ws_decoder *d) {
  uint8_t b0 = d->hdr[0], b1 = d->hdr[1];
  d->fin = (b0 & 0x80) != 0;
  d->opcode = b0 & 0x0F;
  if (b0 & 0x70) return fail(d, CC_WS_CLOSE_PROTOCOL); /* no extension was negotiated */
  if (!(b1 & 0x80)) return fail(d, CC_WS_CLOSE_PROTOCOL); /* client frames are masked */
  uint64_t len = b1 & 0x7F;
  size_t at = 2;
  if (len == 126) {
    len = ((uint64_t)d->hdr[2] << 8) | d->hdr[3];
    at = 4;
  } else if (len == 127) {
    len = 0;
    for (int i = 0; i < 8; i++) len = (len << 8) | d->hdr[2 + i];
    if (len >> 63) return fail(d, CC_WS_CLOSE_PROTOCOL);
    at = 10;
  }
  memcpy(d->mask, d->hdr + at, 4);
  d->payload_len = len;
  d->payload_got = 0;
  bool control = d->opcode & 0x8;
  if (control) {
    if (d->opcode != CC_WS_CLOSE && d->opcode != CC_WS_PING && d->opcode != CC_WS_PONG)
      return fail(d, CC_WS_CLOSE_PROTOCOL);
    if (!d->fin || len > 125) return fail(d, CC_WS_CLOSE_PROTOCOL);
    d->ctl_len = 0;
    return 0;
  }
  if (d->opcode != CC_WS_CONT && d->opcode != CC_WS_TEXT && d->opcode != CC_WS_BINARY)
    return fail(d, CC_WS_CLOSE_PROTOCOL);
  if (d->opcode == CC_WS_CONT && !d->msg_opcode) return fail(d, CC_WS_CLOSE_PROTOCOL);
  if (d->opcode != CC_WS_CONT && d->msg_opcode) return fail(d, CC_WS_CLOSE_PROTOCOL);
  if (d->opcode != CC_WS_CONT) {
    d->msg_opcode = d->opcode;
    d->msg_len = 0;
  }
  if (len > d->max_message || d->msg_len + len > d->max_message)
    return fail(d, CC_WS_CLOSE_TOO_BIG);
  if (d->msg_len + len > d->msg_cap) {
    size_t cap = d->msg_cap ? d->msg_cap : 256;
    while (cap < d->msg_len + len) cap *= 2;
    if (cap > d->max_message) cap = d->max_message;
    uint8_t *m = realloc(d->msg, cap ? cap : 1);
    if (!m) return fail(d, CC_WS_CLOSE_TOO_BIG);
    d->msg = m;
    d->msg_cap = cap;
  }
  return 0;
}

/* The frame's payload is complete: a message to hand out (1), or not yet (0). */
static int frame_done(cc_ws_decoder *d, cc_ws_message *msg) {
  d->hdr_len = 0;
  d->hdr_need = 2;
  if (d->opcode & 0x8) {
    if (d->opcode == CC_WS_CLOSE) {
      if (d->ctl_len == 1) return fail(d, CC_WS_CLOSE_PROTOCOL);
      if (d->ctl_len >= 2) {
        unsigned code = ((unsigned)d->ctl[0] << 8) | d->ctl[1];
        bool ok = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                  (code >= 3000 && code <= 4999);
        if (!ok || !valid_utf8(d->ctl + 2, d->ctl_len - 2)) return fail(d, CC_WS_CLOSE_PROTOCOL);
      }
    }
    *msg = (cc_ws_message){d->opcode, d->ctl, d->ctl_len};
    return 1;
  }
  if (!d->fin) return 0;
  if (d->msg_opcode == CC_WS_TEXT && !valid_utf8(d->msg, d->msg_len))
    return fail(d, CC_WS_CLOSE_PROTOCOL);
  *msg = (cc_ws_message){d->msg_opcode, d->msg, d->msg_len};
  d->msg_opcode = 0; /* the buffer stays valid until the next feed reuses it */
  return 1;
}

int cc_ws_feed(cc_ws_decoder *d, const uint8_t **in, size_t *n, cc_ws_message *msg) {
  if (d->close_code) return -1;
  while (*n > 0) {
    if (d->hdr_len < d->hdr_need) {
      d->hdr[d->hdr_len++] = **in;
      (*in)++, (*n)--;
      if (d->hdr_len == 2) {
        /* refuse an unmasked or reserved-bit frame now, not after bytes that never come */
        if (!(d->hdr[1] & 0x80) || (d->hdr[0] & 0x70)) return fail(d, CC_WS_CLOSE_PROTOCOL);
        uint8_t l = d->hdr[1] & 0x7F;
        d->hdr_need = 2 + (l == 126 ? 2 : l == 127 ? 8 : 0) + 4;
      }
      if (d->hdr_len == d->hdr_need) {
        if (header_done(d) < 0) return -1;
        if (d->payload_len == 0) {
          int r = frame_done(d, msg);
          if (r) return r;
        }
      }
      continue;
    }
    /* payload bytes: unmask into the control buffer or the message */
    uint64_t left = d->payload_len - d->payload_got;
    size_t k = *n < left ? *n : (size_t)left;
    uint8_t *dst = d->opcode & 0x8 ? d->ctl + d->ctl_len : d->msg + d->msg_len;
    for (size_t i = 0; i < k; i++) dst[i] = (*in)[i] ^ d->mask[(d->payload_got + i) & 3];
    if (d->opcode & 0x8)
      d->ctl_len += k;
    else
      d->msg_len += k;
    d->payload_got += k;
    *in += k;
    *n -= k;
    if (d->payload_got == d->payload_len) {
      int r = frame_done(d, msg);
      if (r) return r;
    }
  }
  return 0;
}

size_t cc_ws_frame_header(int opcode, uint64_t len, uint8_t hdr[10]) {
  hdr[0] = (uint8_t)(0x80 | (opcode & 0x0F));
  if (len < 126) {
    hdr[1] = (uint8_t)len;
    return 2;
  }
  if (len <= 0xFFFF) {
    hdr[1] = 126;
    hdr[2] = (uint8_t)(len >> 8);
    hdr[3] = (uint8_t)len;
    return 4;
  }
  hdr[1] = 127;
  for (int i = 0; i < 8; i++) hdr[2 + i] = (uint8_t)(len >> (56 - 8 * i));
  return 10;
}
