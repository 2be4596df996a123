/* cc_wmemo: the worker's memory of its database, valid while the database is unchanged
 * (see cc_wmemo.h for why and how). */
#define _GNU_SOURCE
#include "cc_wmemo.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cc_store.h"
#include "cc_wjson.h"

#define USER_SLOTS 256
#define EXEC_SLOTS 1024
#define WATCH_MASK (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVE_SELF | IN_DELETE_SELF)

struct user_slot {
  uint64_t epoch; /* 0 = empty */
  char hash[65];
  char user[CC_STORE_NAME_MAX + 1];
};

struct exec_slot {
  uint64_t epoch; /* 0 = empty */
  uint64_t h;
  char *block; /* one allocation: user\0project\0key\0before after */
  const char *user, *project, *key, *before, *after;
  size_t before_len, after_len;
  int64_t generation, created_ms;
  char record_id[CC_STORE_ID_LEN + 1];
};

/* SQLite's WAL-index header (sqlite.org/walformat.html, stable since 3.7.0): two copies of
 * 48 bytes at the start of the database's -shm file; iVersion is 3007000. */
#define WAL_HDR_BYTES 48
#define WAL_HDR_VERSION 3007000u
#define SHM_MAP_BYTES 4096

struct cc_wmemo {
  /* The change check, one of: the WAL-index header in shared memory (no system call), or
   * inotify (one ioctl per request) where the header cannot be mapped. */
  const volatile unsigned char *shm; /* mapping of the -shm file's first page, or NULL */
  _Atomic uint64_t shm_sig;          /* signature of the header the epoch belongs to */
  int ifd;              /* inotify descriptor, fixed after cc_wmemo_new; -1: the memo is off */
  uint64_t (*feed)(void *); /* non-NULL: the epoch comes from this change feed (cc_wsync) */
  void *feed_ctx;
  atomic_bool lost;     /* a watched file went away: off from then on (ifd stays open) */
  atomic_bool draining; /* events are being consumed and the epoch is about to move */
  pthread_mutex_t mu;
  _Atomic uint64_t epoch;
  struct user_slot users[USER_SLOTS];
  struct exec_slot execs[EXEC_SLOTS];
};

static uint64_t fnv(uint64_t h, const char *s) {
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
  return (h ^ 0xff) * 0x100000001b3ULL; /* a separator, so ("ab","c") != ("a","bc") */
}

/* A signature of the WAL-index header as it is now: 0 while a writer is between its two
 * copies (SQLite writes copy 1, then copy 0; a reader compares them, as SQLite's own do). */
static uint64_t shm_sig(const cc_wmemo *m) {
  /* word by word: the page is aligned and 48 is a multiple of 8 */
  const volatile uint64_t *w = (const volatile uint64_t *)(const volatile void *)m->shm;
  enum { WORDS = WAL_HDR_BYTES / 8 };
  uint64_t a[WORDS];
  for (size_t i = 0; i < WORDS; i++) a[i] = w[i];
  atomic_thread_fence(memory_order_acquire);
  uint64_t diff = 0, h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < WORDS; i++) {
    diff |= a[i] ^ w[WORDS + i];
    h = (h ^ a[i]) * 0x100000001b3ULL;
    h ^= h >> 29;
  }
  return diff ? 0 : h | 1;
}

/* Maps db_path-shm when it holds a WAL-index (the database is open in WAL mode by this
 * process's store, which keeps its connection for the worker's life: so the file is never
 * truncated under the mapping, SQLite truncates it only for the first connection). */
static void map_shm(cc_wmemo *m, const char *db_path) {
  char path[4096];
  snprintf(path, sizeof path, "%s-shm", db_path);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st;
  void *p = MAP_FAILED;
  if (fstat(fd, &st) == 0 && st.st_size >= SHM_MAP_BYTES)
    p = mmap(NULL, SHM_MAP_BYTES, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) return;
  uint32_t version;
  memcpy(&version, p, sizeof version);
  if (version != WAL_HDR_VERSION) {
    munmap(p, SHM_MAP_BYTES);
    return;
  }
  m->shm = p;
  atomic_init(&m->shm_sig, shm_sig(m));
}

cc_wmemo *cc_wmemo_new(const char *db_path) {
  cc_wmemo *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  pthread_mutex_init(&m->mu, NULL);
  atomic_init(&m->epoch, 1);
  atomic_init(&m->lost, false);
  atomic_init(&m->draining, false);
  m->ifd = -1;
  if (!db_path) return m; /* no file to watch: off, quietly (the caller knows why) */
  map_shm(m, db_path);
  if (m->shm) return m;
  m->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  char wal[4096];
  snprintf(wal, sizeof wal, "%s-wal", db_path);
  const char *why = NULL;
  if (m->ifd < 0)
    why = "inotify";
  else if (inotify_add_watch(m->ifd, db_path, WATCH_MASK) < 0)
    why = db_path;
  else if (inotify_add_watch(m->ifd, wal, WATCH_MASK) < 0)
    why = wal;
  if (why) {
    fprintf(stderr,
            "codecanvas-worker: cannot watch %s for changes (%s): tokens and cached results "
            "are read from the database on every request\n",
            why, strerror(errno));
    if (m->ifd >= 0) close(m->ifd);
    m->ifd = -1;
  }
  return m;
}

cc_wmemo *cc_wmemo_new_fed(uint64_t (*epoch)(void *ctx), void *ctx) {
  cc_wmemo *m = cc_wmemo_new(NULL);
  if (m) {
    m->feed = epoch;
    m->feed_ctx = ctx;
  }
  return m;
}

static void exec_clear(struct exec_slot *x) {
  free(x->block);
  memset(x, 0, sizeof *x);
}

void cc_wmemo_free(cc_wmemo *m) {
  if (!m) return;
  if (m->shm) munmap((void *)m->shm, SHM_MAP_BYTES);
  if (m->ifd >= 0) close(m->ifd);
  for (size_t i = 0; i < EXEC_SLOTS; i++) exec_clear(&m->execs[i]);
  pthread_mutex_destroy(&m->mu);
  free(m);
}

/* The epoch from the WAL-index header: every commit changes it (its transaction counter,
 * frame count and checksums) before the commit is visible to any reader, so a request that
 * starts after a commit sees a new signature.  The epoch moves before the signature is
 * published (release/acquire), so a thread that sees the new signature sees the new epoch. */
static uint64_t shm_epoch(cc_wmemo *m) {
  uint64_t sig = shm_sig(m);
  if (sig && sig == atomic_load_explicit(&m->shm_sig, memory_order_acquire))
    return atomic_load(&m->epoch);
  pthread_mutex_lock(&m->mu);
  if (!sig || sig != atomic_load(&m->shm_sig)) { /* changed, or changing: a new epoch */
    atomic_fetch_add(&m->epoch, 1);
    atomic_store_explicit(&m->shm_sig, sig, memory_order_release);
  }
  uint64_t e = atomic_load(&m->epoch);
  pthread_mutex_unlock(&m->mu);
  return e;
}

uint64_t cc_wmemo_epoch(cc_wmemo *m) {
  if (m && m->feed) return m->feed(m->feed_ctx); /* a shared database's change feed */
  if (m && m->shm) return shm_epoch(m);
  if (!m || m->ifd < 0 || atomic_load_explicit(&m->lost, memory_order_acquire)) return 0;
  /* No pending event and nobody consuming some: the epoch stands.  (A thread that finds the
   * queue empty because another one is consuming it must wait for that one's new epoch:
   * hence `draining`, set before the events are read and cleared after the epoch moved.) */
  int pending = 0;
  if (ioctl(m->ifd, FIONREAD, &pending) == 0 && pending == 0 && !atomic_load(&m->draining))
    return atomic_load(&m->epoch);
  /* Something changed (or the ioctl failed): consume the events, then start a new epoch, so
   * that whatever is remembered under it was read after every consumed change. */
  pthread_mutex_lock(&m->mu);
  atomic_store(&m->draining, true);
  bool lost = false;
  char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
  for (;;) {
    ssize_t n = read(m->ifd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (char *p = buf; p < buf + n;) {
      const struct inotify_event *ev = (const struct inotify_event *)p;
      if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) lost = true;
      p += sizeof *ev + ev->len;
    }
  }
  if (lost && !atomic_load(&m->lost)) { /* changes can no longer be seen: stop for good */
    fprintf(stderr,
            "codecanvas-worker: the database file was moved or deleted; tokens and "
            "cached results are read from it on every request from now on\n");
    atomic_store_explicit(&m->lost, true, memory_order_release);
  }
  uint64_t e = atomic_fetch_add(&m->epoch, 1) + 1;
  atomic_store(&m->draining, false);
  pthread_mutex_unlock(&m->mu);
  return atomic_load(&m->lost) ? 0 : e;
}

const char *cc_wmemo_how(const cc_wmemo *m) {
  if (!m) return "off";
  if (m->feed) return "change feed";
  if (m->shm) return "WAL-index header";
  return m->ifd >= 0 && !atomic_load(&m->lost) ? "inotify" : "off";
}

bool cc_wmemo_user(cc_wmemo *m, uint64_t epoch, const char *token_hash, char *user, size_t n) {
  if (!m || epoch == 0) return false;
  struct user_slot *s = &m->users[fnv(0xcbf29ce484222325ULL, token_hash) % USER_SLOTS];
  bool hit = false;
  pthread_mutex_lock(&m->mu);
  if (s->epoch == epoch && strcmp(s->hash, token_hash) == 0 && strlen(s->user) < n) {
    memcpy(user, s->user, strlen(s->user) + 1);
    hit = true;
  }
  pthread_mutex_unlock(&m->mu);
  return hit;
}

void cc_wmemo_remember_user(cc_wmemo *m, uint64_t epoch, const char *token_hash, const char *user) {
  if (!m || epoch == 0 || strlen(token_hash) >= sizeof m->users[0].hash ||
      strlen(user) >= sizeof m->users[0].user)
    return;
  struct user_slot *s = &m->users[fnv(0xcbf29ce484222325ULL, token_hash) % USER_SLOTS];
  pthread_mutex_lock(&m->mu);
  s->epoch = epoch;
  snprintf(s->hash, sizeof s->hash, "%s", token_hash);
  snprintf(s->user, sizeof s->user, "%s", user);
  pthread_mutex_unlock(&m->mu);
}

static uint64_t exec_hash(const char *user, const char *project, const char *key) {
  return fnv(fnv(fnv(0xcbf29ce484222325ULL, user), project), key);
}

bool cc_wmemo_exec_serve(cc_wmemo *m, uint64_t epoch, const char *user, const char *project,
                         const char *key, int64_t now_ms, int64_t ttl_ms, const char *id,
                         int64_t duration_ms, char **response, char *record_id, size_t rn) {
  *response = NULL;
  if (!m || epoch == 0) return false;
  uint64_t h = exec_hash(user, project, key);
  struct exec_slot *s = &m->execs[h % EXEC_SLOTS];
  cc_wjson_buf b = {0};
  pthread_mutex_lock(&m->mu);
  bool hit = s->epoch == epoch && s->h == h && now_ms - s->created_ms < ttl_ms &&
             strcmp(s->key, key) == 0 && strcmp(s->user, user) == 0 &&
             strcmp(s->project, project) == 0;
  if (hit) {
    /* the envelope cc_wjson_encode_ok prints, around the remembered result */
    cc_wjson_buf_put(&b, "{\"v\":1,\"id\":", 12);
    if (id)
      cc_wjson_buf_str(&b, id);
    else
      cc_wjson_buf_put(&b, "null", 4);
    cc_wjson_buf_put(&b, ",\"ok\":true,\"result\":", 20);
    cc_wjson_buf_put(&b, s->before, s->before_len);
    cc_wjson_buf_int(&b, duration_ms);
    cc_wjson_buf_put(&b, s->after, s->after_len);
    cc_wjson_buf_put(&b, ",\"generation\":", 14);
    cc_wjson_buf_int(&b, s->generation);
    cc_wjson_buf_put(&b, "}", 1);
    size_t l = strlen(s->record_id);
    if (l >= rn) l = rn - 1;
    memcpy(record_id, s->record_id, l);
    record_id[l] = 0;
  }
  pthread_mutex_unlock(&m->mu);
  if (!hit) return false;
  *response = cc_wjson_buf_finish(&b);
  return *response != NULL;
}

void cc_wmemo_remember_exec(cc_wmemo *m, uint64_t epoch, const char *user, const char *project,
                            const char *key, const cc_wmemo_exec *e) {
  if (!m || epoch == 0) return;
  size_t lu = strlen(user), lp = strlen(project), lk = strlen(key);
  size_t total = lu + lp + lk + 3 + e->before_len + e->after_len;
  if (e->before_len + e->after_len > CC_WMEMO_MAX_ENTRY_BYTES || lk > CC_WMEMO_MAX_ENTRY_BYTES ||
      strlen(e->record_id) > CC_STORE_ID_LEN)
    return;
  char *block = malloc(total);
  if (!block) return;
  char *p = block;
  struct exec_slot n = {.epoch = epoch,
                        .h = exec_hash(user, project, key),
                        .block = block,
                        .before_len = e->before_len,
                        .after_len = e->after_len,
                        .generation = e->generation,
                        .created_ms = e->created_ms};
  n.user = memcpy(p, user, lu + 1), p += lu + 1;
  n.project = memcpy(p, project, lp + 1), p += lp + 1;
  n.key = memcpy(p, key, lk + 1), p += lk + 1;
  n.before = memcpy(p, e->before, e->before_len), p += e->before_len;
  n.after = memcpy(p, e->after, e->after_len);
  memcpy(n.record_id, e->record_id, strlen(e->record_id) + 1);
  struct exec_slot *s = &m->execs[n.h % EXEC_SLOTS];
  pthread_mutex_lock(&m->mu);
  char *old = s->block;
  *s = n;
  pthread_mutex_unlock(&m->mu);
  free(old);
}
