/* cc_wjson: one-pass JSON printing of cJSON trees (see cc_wjson.h). */
#include "cc_wjson.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int grow(cc_wjson_buf *o, size_t need) {
  if (o->failed) return 0;
  if (o->len + need <= o->cap) return 1;
  size_t ncap = o->cap ? o->cap : 1024;
  while (ncap < o->len + need) ncap *= 2;
  char *np = realloc(o->p, ncap);
  if (!np) {
    o->failed = 1;
    return 0;
  }
  o->p = np;
  o->cap = ncap;
  return 1;
}

static void put(cc_wjson_buf *o, const char *s, size_t n) {
  if (!grow(o, n)) return;
  memcpy(o->p + o->len, s, n);
  o->len += n;
}

static void put_str(cc_wjson_buf *o, const char *s) {
  static const char hex[] = "0123456789abcdef";
  size_t n = strlen(s);
  if (!grow(o, n + 2)) return;
  o->p[o->len++] = '"';
  const unsigned char *u = (const unsigned char *)s;
  size_t run = 0; /* bytes that need no escaping are copied in runs */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = u[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    put(o, s + run, i - run);
    run = i + 1;
    char e[6] = {'\\', 0};
    size_t el = 2;
    switch (c) {
      case '"':
        e[1] = '"';
        break;
      case '\\':
        e[1] = '\\';
        break;
      case '\b':
        e[1] = 'b';
        break;
      case '\f':
        e[1] = 'f';
        break;
      case '\n':
        e[1] = 'n';
        break;
      case '\r':
        e[1] = 'r';
        break;
      case '\t':
        e[1] = 't';
        break;
      default:
        e[1] = 'u', e[2] = '0', e[3] = '0', e[4] = hex[c >> 4], e[5] = hex[c & 15];
        el = 6;
    }
    put(o, e, el);
  }
  put(o, s + run, n - run);
  put(o, "\"", 1);
}

static void put_num(cc_wjson_buf *o, double d) {
  char buf[32];
  int n;
  if (isnan(d) || isinf(d)) {
    put(o, "null", 4);
    return;
  }
  if (d == (double)(long long)d && fabs(d) < 9007199254740992.0) {
    long long v = (long long)d;
    char tmp[24];
    int k = 0;
    unsigned long long u = v < 0 ? (unsigned long long)(-v) : (unsigned long long)v;
    do tmp[k++] = (char)('0' + u % 10);
    while ((u /= 10));
    if (v < 0) tmp[k++] = '-';
    for (n = 0; n < k; n++) buf[n] = tmp[k - 1 - n];
  } else {
    n = snprintf(buf, sizeof buf, "%.17g", d);
  }
  put(o, buf, (size_t)n);
}

static void put_item(cc_wjson_buf *o, const cJSON *it, int depth) {
  if (depth > 1000) {
    o->failed = 1;
    return;
  }
  switch (it->type & 0xff) {
    case cJSON_False:
      put(o, "false", 5);
      break;
    case cJSON_True:
      put(o, "true", 4);
      break;
    case cJSON_NULL:
      put(o, "null", 4);
      break;
    case cJSON_Number:
      put_num(o, it->valuedouble);
      break;
    case cJSON_String:
      put_str(o, it->valuestring ? it->valuestring : "");
      break;
    case cJSON_Raw:
      if (it->valuestring) put(o, it->valuestring, strlen(it->valuestring));
      break;
    case cJSON_Array:
    case cJSON_Object: {
      int obj = (it->type & 0xff) == cJSON_Object;
      put(o, obj ? "{" : "[", 1);
      for (const cJSON *c = it->child; c; c = c->next) {
        if (c != it->child) put(o, ",", 1);
        if (obj) {
          put_str(o, c->string ? c->string : "");
          put(o, ":", 1);
        }
        put_item(o, c, depth + 1);
      }
      put(o, obj ? "}" : "]", 1);
      break;
    }
    default:
      put(o, "null", 4);
  }
}

cc_status cc_wjson_encode_ok(const char *id, const cJSON *result, int64_t generation, char **out) {
  *out = NULL;
  cc_wjson_buf o = {0};
  put(&o, "{\"v\":1,\"id\":", 12);
  if (id)
    put_str(&o, id);
  else
    put(&o, "null", 4);
  put(&o, ",\"ok\":true,\"result\":", 20);
  if (result)
    put_item(&o, result, 0);
  else
    put(&o, "{}", 2);
  if (generation >= 0) {
    put(&o, ",\"generation\":", 14);
    put_num(&o, (double)generation);
  }
  put(&o, "}", 1);
  if (o.failed) {
    free(o.p);
    return CC_INTERNAL;
  }
  put(&o, "", 1); /* the terminating NUL */
  if (o.failed) {
    free(o.p);
    return CC_INTERNAL;
  }
  *out = o.p; /* malloc'd: cJSON_free is free() (nothing installs cJSON hooks) */
  return CC_OK;
}

void cc_wjson_buf_put(cc_wjson_buf *b, const char *s, size_t n) {
  put(b, s, n);
}

void cc_wjson_buf_str(cc_wjson_buf *b, const char *s) {
  put_str(b, s ? s : "");
}

void cc_wjson_buf_int(cc_wjson_buf *b, int64_t v) {
  char tmp[24];
  int k = 0;
  unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
  do tmp[k++] = (char)('0' + u % 10);
  while ((u /= 10));
  if (v < 0) tmp[k++] = '-';
  if (!grow(b, (size_t)k)) return;
  while (k) b->p[b->len++] = tmp[--k];
}

void cc_wjson_buf_item(cc_wjson_buf *b, const cJSON *item) {
  if (item)
    put_item(b, item, 0);
  else
    put(b, "null", 4);
}

char *cc_wjson_buf_finish(cc_wjson_buf *b) {
  put(b, "", 1);
  if (b->failed) {
    free(b->p);
    b->p = NULL;
    return NULL;
  }
  b->len--; /* the NUL is not part of the text */
  return b->p;
}
