/*
 * cc_wlog: the worker's access log.  One JSON object per request and line.  It holds the user
 * name, never the bearer token; the E2B key is never known to this file at all.  Built by
 * hand, without printf (printf was a tenth of a request's CPU).
 *
 * Buffered like nginx's `access_log ... buffer= flush=`: lines are collected in memory and
 * written when 64 KiB have gathered or access_log_flush_ms after the oldest one, and at
 * shutdown.  One write(2) per line cost a third of a cached exec's CPU (an ext4 append,
 * measured in docs/benchmarks.md).  A crash loses at most the last access_log_flush_ms of
 * lines; access_log_flush_ms = 0 writes each line at once.  Lines are written whole and in
 * the order they were completed: a buffer is swapped out and written under `wmu`, taken
 * while `mu` is still held.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cc_wfront.h"
#include "cc_wtime.h"

#define LOG_BUFFER (64u << 10)

struct cc_wlog {
  int fd;
  bool close_fd;
  long flush_ms;
  pthread_mutex_t mu;  /* cur, len */
  pthread_mutex_t wmu; /* out, and the order of writes */
  pthread_cond_t tick;
  char *cur, *out;
  size_t len;
  bool stop;
  pthread_t th;
  bool started;
};

static void write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t k = write(fd, p, n);
    if (k <= 0) return; /* a log that cannot be written must not stop the server */
    p += k;
    n -= (size_t)k;
  }
}

/* Writes what is buffered.  Called with mu held; returns with it released. */
static void flush_locked(cc_wlog *l) {
  pthread_mutex_lock(&l->wmu);
  char *full = l->cur;
  size_t n = l->len;
  l->cur = l->out;
  l->out = full;
  l->len = 0;
  pthread_mutex_unlock(&l->mu);
  write_all(l->fd, full, n);
  pthread_mutex_unlock(&l->wmu);
}

static void append(cc_wlog *l, const char *line, size_t n) {
  if (l->flush_ms <= 0) {
    write_all(l->fd, line, n); /* one write per line: lines never interleave */
    return;
  }
  pthread_mutex_lock(&l->mu);
  /* A loop: mu is let go during the flush, and other threads may append meanwhile; the room
   * is only known once mu is held again (n <= LOG_BUFFER: lines are at most 4 KiB). */
  while (l->len + n > LOG_BUFFER) {
    flush_locked(l);
    pthread_mutex_lock(&l->mu);
  }
  bool first = l->len == 0;
  memcpy(l->cur + l->len, line, n);
  l->len += n;
  if (first) pthread_cond_signal(&l->tick); /* the flusher's clock starts now */
  pthread_mutex_unlock(&l->mu);
}

static void *flusher_main(void *arg) {
  cc_wlog *l = arg;
  pthread_mutex_lock(&l->mu);
  while (!l->stop) {
    if (l->len == 0) {
      pthread_cond_wait(&l->tick, &l->mu);
      continue;
    }
    struct timespec until;
    cc_wtime_deadline(&until, CLOCK_REALTIME, l->flush_ms);
    while (!l->stop && pthread_cond_timedwait(&l->tick, &l->mu, &until) == 0) {
    }
    if (l->len) {
      flush_locked(l);
      pthread_mutex_lock(&l->mu);
    }
  }
  pthread_mutex_unlock(&l->mu);
  return NULL;
}

cc_wlog *cc_wlog_new(int fd, bool close_fd, long flush_ms) {
  cc_wlog *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  l->fd = fd;
  l->close_fd = close_fd;
  l->flush_ms = flush_ms;
  pthread_mutex_init(&l->mu, NULL);
  pthread_mutex_init(&l->wmu, NULL);
  pthread_cond_init(&l->tick, NULL);
  if (flush_ms > 0) {
    l->cur = malloc(LOG_BUFFER);
    l->out = malloc(LOG_BUFFER);
    if (!l->cur || !l->out || pthread_create(&l->th, NULL, flusher_main, l) != 0) {
      l->flush_ms = 0;
      cc_wlog_free(l);
      return NULL;
    }
    l->started = true;
  }
  return l;
}

void cc_wlog_free(cc_wlog *l) {
  if (!l) return;
  if (l->started) {
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_signal(&l->tick);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->th, NULL);
  }
  if (l->len) {
    pthread_mutex_lock(&l->mu);
    flush_locked(l);
  }
  if (l->close_fd) close(l->fd);
  pthread_mutex_destroy(&l->mu);
  pthread_mutex_destroy(&l->wmu);
  pthread_cond_destroy(&l->tick);
  free(l->cur);
  free(l->out);
  free(l);
}

/* A bounded line for the access log; everything past `end` is dropped (and flagged). */
struct line {
  char *p, *end;
  bool full;
};

static void put(struct line *l, const char *s, size_t n) {
  if ((size_t)(l->end - l->p) < n) {
    l->full = true;
    return;
  }
  memcpy(l->p, s, n);
  l->p += n;
}

#define PUT_LIT(l, lit) put((l), (lit), sizeof(lit) - 1)

/* s as the inside of a JSON string: quote and backslash escaped, control characters and
 * non-ASCII bytes as \u00XX (so the log stays ASCII whatever a client sent). */
static void put_esc(struct line *l, const char *s) {
  static const char hex[] = "0123456789abcdef";
  for (; s && *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      put(l, e, 2);
    } else if (c < 0x20 || c >= 0x7f) {
      char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      put(l, e, 6);
    } else {
      put(l, (const char *)&c, 1);
    }
  }
}

/* Unsigned decimal, zero-padded to `width` digits. */
static void put_uint(struct line *l, unsigned long long v, int width) {
  char tmp[24];
  int k = 0;
  do tmp[k++] = (char)('0' + v % 10);
  while ((v /= 10) || k < width);
  char out[24];
  for (int i = 0; i < k; i++) out[i] = tmp[k - 1 - i];
  put(l, out, (size_t)k);
}
void cc_wlog_request(cc_worker *w, const cc_wreq *r, bool completed) {
  if (!w->log) return;
  char buf[4096]; /* every field escaped at its own limit still fits */
  struct line l = {buf, buf + sizeof buf, false};
  /* UTC date from the epoch by arithmetic (days to civil date, H. Hinnant's algorithm):
   * gmtime_r takes glibc's global time-zone lock on every call. */
  long long t = (long long)time(NULL), days = t / 86400, sod = t % 86400;
  long long z = days + 719468, era = z / 146097, doe = z - era * 146097;
  long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
  long long mday = doy - (153 * mp + 2) / 5 + 1, mon = mp < 10 ? mp + 3 : mp - 9;
  long long year = yoe + era * 400 + (mon <= 2);
  PUT_LIT(&l, "{\"ts\":\"");
  put_uint(&l, (unsigned long long)year, 4);
  PUT_LIT(&l, "-");
  put_uint(&l, (unsigned long long)mon, 2);
  PUT_LIT(&l, "-");
  put_uint(&l, (unsigned long long)mday, 2);
  PUT_LIT(&l, "T");
  put_uint(&l, (unsigned long long)(sod / 3600), 2);
  PUT_LIT(&l, ":");
  put_uint(&l, (unsigned long long)(sod / 60 % 60), 2);
  PUT_LIT(&l, ":");
  put_uint(&l, (unsigned long long)(sod % 60), 2);
  PUT_LIT(&l, "Z\",\"remote\":\"");
  put_esc(&l, r->remote);
  PUT_LIT(&l, "\",\"method\":\"");
  put_esc(&l, r->method);
  PUT_LIT(&l, "\",\"path\":\"");
  put_esc(&l, r->path);
  PUT_LIT(&l, "\",\"status\":");
  put_uint(&l, r->http > 0 ? (unsigned)r->http : 0, 1);
  int64_t us = cc_wfront_mono_us() - r->t0_us;
  PUT_LIT(&l, ",\"durationMs\":");
  put_uint(&l, us > 0 ? (unsigned long long)us / 1000 : 0, 1);
  PUT_LIT(&l, ".");
  put_uint(&l, us > 0 ? (unsigned long long)us % 1000 : 0, 3);
  PUT_LIT(&l, ",\"bytesIn\":");
  put_uint(&l, r->len, 1);
  PUT_LIT(&l, ",\"bytesOut\":");
  put_uint(&l, r->bytes_out, 1);
  if (r->is_rpc) {
    PUT_LIT(&l, ",\"op\":\"");
    put_esc(&l, cc_metrics_op_name(r->mop));
    PUT_LIT(&l, "\",\"code\":\"");
    put_esc(&l, cc_status_code(r->code));
    PUT_LIT(&l, "\",\"user\":\"");
    put_esc(&l, r->user);
    PUT_LIT(&l, "\",\"id\":\"");
    put_esc(&l, r->id);
    PUT_LIT(&l, "\",\"project\":\"");
    put_esc(&l, r->project);
    PUT_LIT(&l, "\",\"record\":\"");
    put_esc(&l, r->record);
    PUT_LIT(&l, "\",\"cached\":");
    if (r->cached)
      PUT_LIT(&l, "true");
    else
      PUT_LIT(&l, "false");
  }
  PUT_LIT(&l, ",\"completed\":");
  if (completed)
    PUT_LIT(&l, "true}\n");
  else
    PUT_LIT(&l, "false}\n");
  if (l.full) return; /* cannot happen with the fields' own limits; never log half a line */
  append(w->log, buf, (size_t)(l.p - buf));
}
