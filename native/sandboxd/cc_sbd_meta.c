/*
 * cc_sbd_meta: envd's file metadata headers and their extended attributes (see
 * cc_sbd_meta.h for the rules and who owns what).
 */
#include "cc_sbd_meta.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/xattr.h>

#include "cc_proto.h"

#define PREFIX_LEN (sizeof CC_SBD_META_PREFIX - 1)
#define HEADER_LEN (sizeof CC_SBD_META_HEADER - 1)
#define LIST_MAX 65536 /* the kernel's XATTR_LIST_MAX */
#define VALUE_MAX 65536 /* the kernel's XATTR_SIZE_MAX */

cc_sbd_meta *cc_sbd_meta_new(void) { return calloc(1, sizeof(cc_sbd_meta)); }

void cc_sbd_meta_free(cc_sbd_meta *m) {
  if (!m) return;
  for (size_t i = 0; i < m->n; i++) free(m->pairs[i].key), free(m->pairs[i].value);
  free(m->pairs);
  free(m);
}

static cc_status refuse(char *err, size_t err_size, const char *fmt, const char *a, int b) {
  if (err_size) snprintf(err, err_size, fmt, a, b);
  return CC_BAD_REQUEST;
}

/* The offset of the first byte outside printable US-ASCII, or -1. */
static long bad_byte(const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p < 0x20 || *p > 0x7e) return (long)(p - (const unsigned char *)s);
  return -1;
}

cc_status cc_sbd_meta_add_header(cc_sbd_meta *m, const char *name, const char *value, char *err,
                                 size_t err_size) {
  if (!name || strncasecmp(name, CC_SBD_META_HEADER, HEADER_LEN) != 0) return CC_OK;
  const char *key = name + HEADER_LEN;
  if (!value) value = "";
  size_t kl = strlen(key), vl = strlen(value);
  if (kl == 0) return refuse(err, err_size, "invalid metadata: metadata key must not be empty%s", "", 0);
  if (kl > CC_SBD_META_MAX_KEY)
    return refuse(err, err_size, "invalid metadata: metadata key %.64s... exceeds %d bytes", key,
                  CC_SBD_META_MAX_KEY);
  long bk = bad_byte(key), bv = bad_byte(value);
  if (bk >= 0)
    return refuse(err, err_size,
                  "invalid metadata: metadata key %.64s contains a non-printable-ASCII byte at "
                  "offset %d",
                  key, (int)bk);
  if (bv >= 0)
    return refuse(err, err_size,
                  "invalid metadata: metadata value for key %.64s contains a non-printable-ASCII "
                  "byte at offset %d",
                  key, (int)bv);
  char *lk = strdup(key);
  if (!lk) return CC_INTERNAL;
  for (char *p = lk; *p; p++)
    if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
  for (size_t i = 0; i < m->n; i++)
    if (strcmp(m->pairs[i].key, lk) == 0) {
      cc_status st = refuse(err, err_size, "invalid metadata: metadata key %.64s given twice", lk, 0);
      free(lk);
      return st;
    }
  size_t total = m->total + PREFIX_LEN + kl + vl;
  if (total > CC_SBD_META_MAX_TOTAL || m->n >= CC_SBD_META_MAX_ENTRIES) {
    free(lk);
    return refuse(err, err_size, "invalid metadata: total metadata size exceeds %s%d bytes", "",
                  CC_SBD_META_MAX_TOTAL);
  }
  cc_sbd_meta_pair *np = realloc(m->pairs, (m->n + 1) * sizeof *np);
  char *v = strdup(value);
  if (!np || !v) {
    if (np) m->pairs = np;
    free(lk), free(v);
    return CC_INTERNAL;
  }
  m->pairs = np;
  m->pairs[m->n].key = lk;
  m->pairs[m->n].value = v;
  m->n++;
  m->total = total;
  return CC_OK;
}

/* The attribute names of fd into a new buffer (*len bytes of NUL-terminated names); NULL with
 * errno set on failure.  Retries once when the list grew between the two calls. */
static char *list_names(int fd, ssize_t *len) {
  for (int attempt = 0; attempt < 2; attempt++) {
    ssize_t n = flistxattr(fd, NULL, 0);
    if (n < 0) return NULL;
    char *buf = malloc((size_t)n + 1);
    if (!buf) return NULL;
    ssize_t got = n ? flistxattr(fd, buf, (size_t)n) : 0;
    if (got >= 0) {
      buf[got] = 0; /* a list the kernel cut could otherwise end inside a name */
      *len = got;
      return buf;
    }
    free(buf);
    if (errno != ERANGE) return NULL;
  }
  errno = ERANGE;
  return NULL;
}

static bool wanted(const cc_sbd_meta *m, const char *key) {
  for (size_t i = 0; m && i < m->n; i++)
    if (strcmp(m->pairs[i].key, key) == 0) return true;
  return false;
}

int cc_sbd_meta_write_fd(int fd, const cc_sbd_meta *m) {
  ssize_t len = 0;
  char *names = list_names(fd, &len);
  if (!names) return errno ? errno : ENOMEM;
  int e = 0;
  for (ssize_t off = 0; off < len && !e; off += (ssize_t)strlen(names + off) + 1) {
    const char *nm = names + off;
    if (strncmp(nm, CC_SBD_META_PREFIX, PREFIX_LEN) != 0 || wanted(m, nm + PREFIX_LEN)) continue;
    if (fremovexattr(fd, nm) != 0 && errno != ENODATA) e = errno;
  }
  free(names);
  for (size_t i = 0; m && i < m->n && !e; i++) {
    char nm[PREFIX_LEN + CC_SBD_META_MAX_KEY + 1];
    snprintf(nm, sizeof nm, "%s%s", CC_SBD_META_PREFIX, m->pairs[i].key);
    if (fsetxattr(fd, nm, m->pairs[i].value, strlen(m->pairs[i].value), 0) != 0) e = errno;
  }
  return e;
}

cJSON *cc_sbd_meta_read_fd(int fd) {
  ssize_t len = 0;
  char *names = list_names(fd, &len);
  if (!names) return NULL;
  cJSON *o = NULL;
  char *val = NULL; /* allocated at the first attribute of ours: most files have none */
  for (ssize_t off = 0; off < len; off += (ssize_t)strlen(names + off) + 1) {
    const char *nm = names + off;
    if (strncmp(nm, CC_SBD_META_PREFIX, PREFIX_LEN) != 0) continue;
    if (!val && !(val = malloc(VALUE_MAX + 1))) break;
    const char *key = nm + PREFIX_LEN;
    ssize_t vl = fgetxattr(fd, nm, val, VALUE_MAX);
    if (vl < 0 || !cc_proto_utf8_valid(key, strlen(key)) || !cc_proto_utf8_valid(val, (size_t)vl))
      continue;
    val[vl] = 0;
    if (!o && !(o = cJSON_CreateObject())) break;
    cJSON_AddStringToObject(o, key, val);
  }
  free(val);
  free(names);
  return o;
}
