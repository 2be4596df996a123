/*
 * cc_multipart: incremental multipart/form-data parser (see cc_multipart.h).
 *
 * The parser keeps one bounded window of unconsumed bytes.  The window starts with a
 * virtual "\r\n" so that every delimiter, the first included, reads "\r\n--<boundary>".
 * In a part body it hands out everything except the last (delimiter length - 1) bytes,
 * which might be the start of a delimiter split across two feeds.
 */
#include "cc_multipart.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WINDOW 16384

enum state { PREAMBLE, AFTER_DELIM, HEADERS, BODY, EPILOGUE, FAILED };

struct cc_multipart {
  cc_multipart_callbacks cb;
  void *ctx;
  char delim[CC_MULTIPART_MAX_BOUNDARY + 5]; /* "\r\n--" + boundary */
  size_t dlen;
  enum state st;
  size_t parts, max_parts;
  uint8_t *buf; /* capacity WINDOW + CC_MULTIPART_MAX_HEADER + dlen */
  size_t cap, len;
};

cc_status cc_multipart_boundary(const char *ct, char *out, size_t out_size) {
  if (!ct) return CC_BAD_REQUEST;
  while (*ct == ' ') ct++;
  if (strncasecmp(ct, "multipart/form-data", 19) != 0) return CC_BAD_REQUEST;
  const char *p = ct + 19;
  while (*p) {
    while (*p == ';' || *p == ' ' || *p == '\t') p++;
    const char *key = p;
    while (*p && *p != '=' && *p != ';') p++;
    size_t klen = (size_t)(p - key);
    while (klen && (key[klen - 1] == ' ' || key[klen - 1] == '\t')) klen--;
    if (*p != '=') continue;
    p++;
    char val[CC_MULTIPART_MAX_BOUNDARY + 1];
    size_t vlen = 0;
    int too_long = 0;
    if (*p == '"') {
      p++;
      while (*p && *p != '"') {
        if (*p == '\\' && p[1]) p++;
        if (vlen < CC_MULTIPART_MAX_BOUNDARY) val[vlen++] = *p;
        else too_long = 1;
        p++;
      }
      if (*p == '"') p++;
    } else {
      while (*p && *p != ';' && *p != ' ' && *p != '\t') {
        if (vlen < CC_MULTIPART_MAX_BOUNDARY) val[vlen++] = *p;
        else too_long = 1;
        p++;
      }
    }
    val[vlen] = 0;
    if (klen == 8 && strncasecmp(key, "boundary", 8) == 0) {
      if (too_long || vlen == 0 || vlen + 1 > out_size) return CC_BAD_REQUEST;
      memcpy(out, val, vlen + 1);
      return CC_OK;
    }
  }
  return CC_BAD_REQUEST;
}

cc_multipart *cc_multipart_new(const char *boundary, size_t max_parts,
                               const cc_multipart_callbacks *cb, void *ctx) {
  size_t blen = strlen(boundary);
  if (blen == 0 || blen > CC_MULTIPART_MAX_BOUNDARY) return NULL;
  cc_multipart *mp = calloc(1, sizeof *mp);
  if (!mp) return NULL;
  mp->cb = *cb;
  mp->ctx = ctx;
  memcpy(mp->delim, "\r\n--", 4);
  memcpy(mp->delim + 4, boundary, blen + 1);
  mp->dlen = blen + 4;
  mp->max_parts = max_parts;
  mp->cap = WINDOW + CC_MULTIPART_MAX_HEADER + mp->dlen;
  mp->buf = malloc(mp->cap);
  if (!mp->buf) {
    free(mp);
    return NULL;
  }
  mp->buf[0] = '\r';
  mp->buf[1] = '\n';
  mp->len = 2;
  mp->st = PREAMBLE;
  return mp;
}

void cc_multipart_free(cc_multipart *mp) {
  if (!mp) return;
  free(mp->buf);
  free(mp);
}

size_t cc_multipart_parts(const cc_multipart *mp) {
  return mp->parts;
}

static void consume(cc_multipart *mp, size_t n) {
  memmove(mp->buf, mp->buf + n, mp->len - n);
  mp->len -= n;
}

/* Reads one parameter value (token or quoted-string) at *pp into out (truncated copy). */
static void param_value(const char **pp, const char *end, char *out, size_t out_size) {
  const char *p = *pp;
  size_t n = 0;
  if (p < end && *p == '"') {
    p++;
    while (p < end && *p != '"') {
      if (*p == '\\' && p + 1 < end) p++;
      if (n + 1 < out_size) out[n++] = *p;
      p++;
    }
    if (p < end) p++;
  } else {
    while (p < end && *p != ';') {
      if (n + 1 < out_size) out[n++] = *p;
      p++;
    }
    while (n && (out[n - 1] == ' ' || out[n - 1] == '\t')) n--;
  }
  out[n] = 0;
  *pp = p;
}

/* Parses the header block [h, h+n) and calls part_begin. */
static cc_status begin_part(cc_multipart *mp, const char *h, size_t n) {
  char name[256], filename[4096], ctype[256];
  int have_name = 0, have_filename = 0;
  ctype[0] = 0;
  const char *end = h + n;
  while (h < end) {
    const char *eol = memmem(h, (size_t)(end - h), "\r\n", 2);
    if (!eol) eol = end;
    const char *colon = memchr(h, ':', (size_t)(eol - h));
    if (colon) {
      size_t klen = (size_t)(colon - h);
      const char *v = colon + 1;
      while (v < eol && (*v == ' ' || *v == '\t')) v++;
      if (klen == 19 && strncasecmp(h, "content-disposition", 19) == 0) {
        const char *p = v;
        while (p < eol) {
          while (p < eol && (*p == ';' || *p == ' ' || *p == '\t')) p++;
          const char *key = p;
          while (p < eol && *p != '=' && *p != ';') p++;
          size_t kl = (size_t)(p - key);
          while (kl && (key[kl - 1] == ' ' || key[kl - 1] == '\t')) kl--;
          if (p >= eol || *p != '=') continue;
          p++;
          while (p < eol && (*p == ' ' || *p == '\t')) p++;
          char val[4096];
          param_value(&p, eol, val, sizeof val);
          if (kl == 4 && strncasecmp(key, "name", 4) == 0) {
            size_t vl = strnlen(val, sizeof name - 1);
            memcpy(name, val, vl);
            name[vl] = 0;
            have_name = 1;
          } else if (kl == 8 && strncasecmp(key, "filename", 8) == 0) {
            snprintf(filename, sizeof filename, "%s", val);
            have_filename = 1;
          }
        }
      } else if (klen == 12 && strncasecmp(h, "content-type", 12) == 0) {
        size_t vl = (size_t)(eol - v);
        if (vl >= sizeof ctype) vl = sizeof ctype - 1;
        memcpy(ctype, v, vl);
        ctype[vl] = 0;
      }
    }
    h = eol + (eol < end ? 2 : 0);
  }
  if (++mp->parts > mp->max_parts) return CC_TOO_LARGE;
  if (!mp->cb.part_begin) return CC_OK;
  return mp->cb.part_begin(mp->ctx, have_name ? name : NULL, have_filename ? filename : NULL,
                           ctype[0] ? ctype : NULL);
}

/* Consumes as much of the window as the current state allows. */
static cc_status process(cc_multipart *mp) {
  for (;;) {
    switch (mp->st) {
    case PREAMBLE: {
      uint8_t *d = memmem(mp->buf, mp->len, mp->delim, mp->dlen);
      if (d) {
        consume(mp, (size_t)(d - mp->buf) + mp->dlen);
        mp->st = AFTER_DELIM;
        continue;
      }
      if (mp->len >= mp->dlen) consume(mp, mp->len - (mp->dlen - 1));
      return CC_OK;
    }
    case AFTER_DELIM: {
      size_t skip = 0;
      while (skip < mp->len && (mp->buf[skip] == ' ' || mp->buf[skip] == '\t')) skip++;
      if (skip) consume(mp, skip);
      if (mp->len < 2) return CC_OK;
      if (mp->buf[0] == '-' && mp->buf[1] == '-') {
        mp->st = EPILOGUE;
        continue;
      }
      if (mp->buf[0] == '\r' && mp->buf[1] == '\n') {
        consume(mp, 2);
        mp->st = HEADERS;
        continue;
      }
      return CC_BAD_REQUEST;
    }
    case HEADERS: {
      size_t hlen, skip;
      if (mp->len >= 2 && mp->buf[0] == '\r' && mp->buf[1] == '\n') {
        hlen = 0;
        skip = 2;
      } else {
        uint8_t *e = memmem(mp->buf, mp->len, "\r\n\r\n", 4);
        if (!e) {
          if (mp->len > CC_MULTIPART_MAX_HEADER) return CC_TOO_LARGE;
          return CC_OK;
        }
        hlen = (size_t)(e - mp->buf);
        skip = hlen + 4;
        if (hlen > CC_MULTIPART_MAX_HEADER) return CC_TOO_LARGE;
      }
      cc_status st = begin_part(mp, (const char *)mp->buf, hlen);
      if (st != CC_OK) return st;
      consume(mp, skip);
      mp->st = BODY;
      continue;
    }
    case BODY: {
      uint8_t *d = memmem(mp->buf, mp->len, mp->delim, mp->dlen);
      size_t emit = d ? (size_t)(d - mp->buf)
                      : (mp->len >= mp->dlen ? mp->len - (mp->dlen - 1) : 0);
      if (emit && mp->cb.part_data) {
        cc_status st = mp->cb.part_data(mp->ctx, mp->buf, emit);
        if (st != CC_OK) return st;
      }
      if (!d) {
        if (emit) consume(mp, emit);
        return CC_OK;
      }
      consume(mp, emit + mp->dlen);
      if (mp->cb.part_end) {
        cc_status st = mp->cb.part_end(mp->ctx);
        if (st != CC_OK) return st;
      }
      mp->st = AFTER_DELIM;
      continue;
    }
    case EPILOGUE:
      mp->len = 0;
      return CC_OK;
    case FAILED:
      return CC_BAD_REQUEST;
    }
  }
}

cc_status cc_multipart_feed(cc_multipart *mp, const uint8_t *data, size_t n) {
  if (mp->st == FAILED) return CC_BAD_REQUEST;
  while (n > 0) {
    if (mp->st == EPILOGUE) return CC_OK;
    size_t room = mp->cap - mp->len;
    if (room == 0) {
      mp->st = FAILED;
      return CC_TOO_LARGE;
    }
    size_t take = n < room ? n : room;
    memcpy(mp->buf + mp->len, data, take);
    mp->len += take;
    data += take;
    n -= take;
    cc_status st = process(mp);
    if (st != CC_OK) {
      mp->st = FAILED;
      return st;
    }
  }
  return CC_OK;
}

cc_status cc_multipart_finish(cc_multipart *mp) {
  return mp->st == EPILOGUE ? CC_OK : CC_BAD_REQUEST;
}
