/*
 * cc_wsnap: snapshots of a project's /home/user (see cc_wsnap.h): the directory store, the
 * debounce thread, and taking / restoring one through the E2B client.
 */
#include "cc_wsnap.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cc_worker_internal.h"
#include "cc_wtime.h"

#define SNAP_TMP "/tmp/.cc-snapshot.tgz"
#define RESTORE_TMP "/tmp/.cc-restore.tgz"
#define SNAP_TIMEOUT_MS 120000
#define SCRIPT_OUT_MAX 65536

void cc_wsnap_meta_free(cc_wsnap_meta *m) {
  if (!m) return;
  free(m->excluded_json);
  memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------------ the directory store */

typedef struct {
  cc_wsnap_store base;
  char *dir;
} dir_store;

static void dir_path(const dir_store *d, const char *key, const char *ext, char *out, size_t n) {
  snprintf(out, n, "%s/%s.%s", d->dir, key, ext);
}

/* Writes data to path through path.tmp, fsync and rename: a crash leaves old or new. */
static bool write_atomic(const char *path, const void *data, size_t len) {
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  bool ok = true;
  for (size_t off = 0; ok && off < len;) {
    ssize_t k = write(fd, (const char *)data + off, len - off);
    if (k < 0 && errno == EINTR) continue;
    ok = k > 0;
    if (ok) off += (size_t)k;
  }
  ok = ok && fsync(fd) == 0;
  ok = close(fd) == 0 && ok;
  if (ok && rename(tmp, path) != 0) ok = false;
  if (!ok) unlink(tmp);
  return ok;
}

static char *meta_to_json(const cc_wsnap_meta *m) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "takenAt", (double)m->taken_ms);
  cJSON_AddNumberToObject(o, "bytes", (double)m->bytes);
  cJSON_AddBoolToObject(o, "partial", m->partial);
  cJSON *ex = m->excluded_json ? cJSON_Parse(m->excluded_json) : NULL;
  cJSON_AddItemToObject(o, "excluded", ex ? ex : cJSON_CreateArray());
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}

static bool meta_from_json(const char *text, cc_wsnap_meta *m) {
  memset(m, 0, sizeof *m);
  cJSON *o = cJSON_Parse(text);
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "takenAt");
  const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "bytes");
  const cJSON *ex = cJSON_GetObjectItemCaseSensitive(o, "excluded");
  bool ok = cJSON_IsNumber(t) && cJSON_IsNumber(b);
  if (ok) {
    m->taken_ms = (int64_t)t->valuedouble;
    m->bytes = (uint64_t)b->valuedouble;
    m->partial = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "partial"));
    m->excluded_json = cJSON_IsArray(ex) ? cJSON_PrintUnformatted(ex) : NULL;
  }
  cJSON_Delete(o);
  return ok;
}

static char *slurp(const char *path, size_t *len, size_t max) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  struct stat st;
  char *buf = NULL;
  if (fstat(fd, &st) == 0 && (uint64_t)st.st_size <= max && (buf = malloc((size_t)st.st_size + 1))) {
    size_t off = 0;
    while (off < (size_t)st.st_size) {
      ssize_t k = read(fd, buf + off, (size_t)st.st_size - off);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) break;
      off += (size_t)k;
    }
    if (off == (size_t)st.st_size) {
      buf[off] = 0;
      *len = off;
    } else {
      free(buf);
      buf = NULL;
    }
  }
  close(fd);
  return buf;
}

static cc_status dir_info(cc_wsnap_store *s, const char *key, cc_wsnap_meta *m) {
  char p[1024];
  dir_path((dir_store *)s, key, "json", p, sizeof p);
  size_t n;
  char *text = slurp(p, &n, 1 << 20);
  if (!text) return errno == ENOENT ? CC_NOT_FOUND : CC_INTERNAL;
  bool ok = meta_from_json(text, m);
  free(text);
  return ok ? CC_OK : CC_INTERNAL;
}

static cc_status dir_get(cc_wsnap_store *s, const char *key, cc_wsnap_meta *m, char **data,
                         size_t *len) {
  cc_status st = dir_info(s, key, m);
  if (st != CC_OK) return st;
  char p[1024];
  dir_path((dir_store *)s, key, "tgz", p, sizeof p);
  *data = slurp(p, len, (size_t)1 << 32);
  if (!*data) {
    cc_wsnap_meta_free(m);
    return errno == ENOENT ? CC_NOT_FOUND : CC_INTERNAL;
  }
  return CC_OK;
}

static cc_status dir_put(cc_wsnap_store *s, const char *key, const cc_wsnap_meta *m,
                         const void *data, size_t len) {
  char p[1024];
  dir_path((dir_store *)s, key, "tgz", p, sizeof p);
  char *json = meta_to_json(m);
  bool ok = json && write_atomic(p, data, len);
  /* the archive first: a crash between the two leaves the new archive with the old meta,
   * which only misreports its time and size */
  dir_path((dir_store *)s, key, "json", p, sizeof p);
  ok = ok && write_atomic(p, json, strlen(json));
  free(json);
  return ok ? CC_OK : CC_INTERNAL;
}

static cc_status dir_del(cc_wsnap_store *s, const char *key) {
  char p[1024];
  dir_path((dir_store *)s, key, "json", p, sizeof p);
  unlink(p);
  dir_path((dir_store *)s, key, "tgz", p, sizeof p);
  unlink(p);
  return CC_OK;
}

static void dir_free(cc_wsnap_store *s) {
  if (!s) return;
  free(((dir_store *)s)->dir);
  free(s);
}

cc_status cc_wsnap_dir_store(const char *dir, cc_wsnap_store **out) {
  *out = NULL;
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) return CC_INTERNAL;
  dir_store *d = calloc(1, sizeof *d);
  if (!d || !(d->dir = strdup(dir))) {
    free(d);
    return CC_INTERNAL;
  }
  d->base = (cc_wsnap_store){dir_put, dir_get, dir_info, dir_del, dir_free};
  *out = &d->base;
  return CC_OK;
}

/* ------------------------------------------------------------------ keys and pending work */

static void key_of(const char *owner, const char *project, char out[65]) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  static const char zero = 0;
  if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
      EVP_DigestUpdate(ctx, owner, strlen(owner)) == 1 && EVP_DigestUpdate(ctx, &zero, 1) == 1 &&
      EVP_DigestUpdate(ctx, project, strlen(project)) == 1 &&
      EVP_DigestFinal_ex(ctx, md, &n) == 1 && n == 32) {
    for (unsigned i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
  } else {
    out[0] = 0;
  }
  EVP_MD_CTX_free(ctx);
}

typedef struct pending {
  struct pending *next;
  char *owner, *project;
  int64_t first_ms, last_ms;
} pending;

struct cc_wsnap {
  cc_wsnap_store *store;
  long max_bytes, debounce_ms;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pending *list;
  pending *taking; /* the one being taken now (out of list) */
  bool stop;
  atomic_int cancel; /* set at cleanup: a snapshot in progress stops */
  pthread_t thread;
  bool started;
};

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cc_wsnap_touch(cc_worker *w, const char *owner, const char *project) {
  struct cc_wsnap *s = w->snap;
  if (!s) return;
  int64_t now = mono_ms();
  pthread_mutex_lock(&s->mu);
  pending *p = s->list;
  while (p && !(strcmp(p->owner, owner) == 0 && strcmp(p->project, project) == 0)) p = p->next;
  if (!p && (p = calloc(1, sizeof *p)) && (p->owner = strdup(owner)) &&
      (p->project = strdup(project))) {
    p->first_ms = now;
    p->next = s->list;
    s->list = p;
  } else if (p && !p->project) {
    free(p->owner);
    free(p);
    p = NULL;
  }
  if (p) p->last_ms = now;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

static void pending_free(pending *p) {
  free(p->owner);
  free(p->project);
  free(p);
}

static void drop_pending(struct cc_wsnap *s, const char *owner, const char *project) {
  pthread_mutex_lock(&s->mu);
  for (pending **pp = &s->list; *pp; pp = &(*pp)->next)
    if (strcmp((*pp)->owner, owner) == 0 && strcmp((*pp)->project, project) == 0) {
      pending *p = *pp;
      *pp = p->next;
      pending_free(p);
      break;
    }
  pthread_mutex_unlock(&s->mu);
}

void cc_wsnap_forget(cc_worker *w, const char *owner, const char *project) {
  struct cc_wsnap *s = w->snap;
  if (!s) return;
  drop_pending(s, owner, project);
  char key[65];
  key_of(owner, project, key);
  if (key[0]) s->store->del(s->store, key);
}

static bool same(const pending *p, const char *owner, const char *project) {
  return p && strcmp(p->owner, owner) == 0 && strcmp(p->project, project) == 0;
}

bool cc_wsnap_pending(cc_worker *w, const char *owner, const char *project) {
  struct cc_wsnap *s = w->snap;
  if (!s) return false;
  pthread_mutex_lock(&s->mu);
  bool yes = same(s->taking, owner, project);
  for (const pending *p = s->list; p && !yes; p = p->next) yes = same(p, owner, project);
  pthread_mutex_unlock(&s->mu);
  return yes;
}

cc_status cc_wsnap_info(cc_worker *w, const char *owner, const char *project,
                        cc_wsnap_meta *out) {
  memset(out, 0, sizeof *out);
  struct cc_wsnap *s = w->snap;
  if (!s) return CC_NOT_FOUND;
  char key[65];
  key_of(owner, project, key);
  return key[0] ? s->store->info(s->store, key, out) : CC_INTERNAL;
}

/* The debounce thread: a project is due once quiet for debounce_ms, or dirty for ten times
 * that (so a project in constant use is still saved).  Each is taken in the project's
 * queue by cc_wops_snapshot; a failure is logged and waits for the next change. */
static void *snap_main(void *arg) {
  cc_worker *w = arg;
  struct cc_wsnap *s = w->snap;
  pthread_mutex_lock(&s->mu);
  while (!s->stop) {
    int64_t now = mono_ms(), next = now + 60000;
    pending *due = NULL;
    for (pending **pp = &s->list; *pp; pp = &(*pp)->next) {
      pending *p = *pp;
      int64_t at = p->last_ms + s->debounce_ms;
      if (p->first_ms + 10 * s->debounce_ms < at) at = p->first_ms + 10 * s->debounce_ms;
      if (at <= now) {
        *pp = p->next;
        due = p;
        break;
      }
      if (at < next) next = at;
    }
    if (due) {
      s->taking = due;
      pthread_mutex_unlock(&s->mu);
      char why[300] = "";
      cc_status st = cc_wops_snapshot(w, due->owner, due->project, &s->cancel, why, sizeof why);
      if (st != CC_OK && st != CC_NOT_FOUND)
        fprintf(stderr, CC_WORKER_NAME ": snapshot of a project of user %s failed: %s\n",
                due->owner, why);
      pthread_mutex_lock(&s->mu);
      s->taking = NULL;
      pending_free(due);
      continue;
    }
    struct timespec ts;
    cc_wtime_deadline(&ts, CLOCK_MONOTONIC, next - now);
    pthread_cond_timedwait(&s->cv, &s->mu, &ts);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

cc_status cc_wsnap_init(cc_worker *w) {
  const cc_wconf *c = w->cfg;
  w->snap = NULL;
  if (strcmp(c->snapshot_dir, "off") == 0) return CC_OK;
  /* Several workers on PostgreSQL: a project's snapshot must be where every worker finds it. */
  bool in_db = !c->snapshot_dir[0] && cc_store_is_postgresql(c->db);
  char dir[1024];
  if (c->snapshot_dir[0]) {
    snprintf(dir, sizeof dir, "%s", c->snapshot_dir);
  } else if (!in_db) { /* beside the SQLite file */
    char db[1024];
    snprintf(db, sizeof db, "%s", c->db);
    snprintf(dir, sizeof dir, "%s/snapshots", dirname(db));
  }
  struct cc_wsnap *s = calloc(1, sizeof *s);
  if (!s) return CC_INTERNAL;
  if (in_db) {
    if (cc_wsnap_pg_store(c->db, &s->store) != CC_OK) {
      fprintf(stderr, CC_WORKER_NAME ": cannot keep snapshots in the database\n");
      free(s);
      return CC_INTERNAL;
    }
  } else if (cc_wsnap_dir_store(dir, &s->store) != CC_OK) {
    fprintf(stderr, CC_WORKER_NAME ": cannot use snapshot dir %s: %s\n", dir, strerror(errno));
    free(s);
    return CC_INTERNAL;
  }
  s->max_bytes = c->snapshot_max_bytes;
  s->debounce_ms = c->snapshot_debounce_ms > 0 ? c->snapshot_debounce_ms : 1;
  pthread_mutex_init(&s->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->cv, &ca);
  pthread_condattr_destroy(&ca);
  w->snap = s;
  if (pthread_create(&s->thread, NULL, snap_main, w) != 0) {
    cc_wsnap_cleanup(w);
    return CC_INTERNAL;
  }
  s->started = true;
  return CC_OK;
}

void cc_wsnap_cleanup(cc_worker *w) {
  struct cc_wsnap *s = w->snap;
  if (!s) return;
  pthread_mutex_lock(&s->mu);
  s->stop = true;
  atomic_store(&s->cancel, 1);
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
  if (s->started) pthread_join(s->thread, NULL);
  while (s->list) {
    pending *p = s->list;
    s->list = p->next;
    pending_free(p);
  }
  s->store->free(s->store);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
  free(s);
  w->snap = NULL;
}

/* ------------------------------------------------------------------ take and restore */

/* Archives /home/user into SNAP_TMP under $1 bytes: as is; else without heavy directories;
 * else also without the largest top-level entries (at most 20).  Prints "excluded <path>"
 * per path left out and "size <bytes>". */
static const char SNAP_SCRIPT[] =
    "set -u\n"
    "out=" SNAP_TMP "; list=/tmp/.cc-snapshot.exclude; max=$1\n"
    "cd /home/user || exit 3\n"
    ": > \"$list\"\n"
    "snap() { tar -czf \"$out\" --no-wildcards --exclude-from=\"$list\" . 2>/dev/null; "
    "[ $? -le 1 ]; }\n"
    "size() { stat -c %s \"$out\"; }\n"
    "snap || exit 4\n"
    "if [ \"$(size)\" -gt \"$max\" ]; then\n"
    "  find . -mindepth 1 -type d \\( -name node_modules -o -name .venv -o -name venv -o "
    "-name __pycache__ -o -name .cache -o -name .npm -o -name .next -o -name target -o -name "
    ".git \\) -prune -print 2>/dev/null | head -n 100 >> \"$list\"\n"
    "  snap || exit 4\n"
    "  n=0\n"
    "  while [ \"$(size)\" -gt \"$max\" ] && [ $n -lt 20 ]; do\n"
    "    big=$(find . -mindepth 1 -maxdepth 1 2>/dev/null | grep -vxF -f \"$list\" | "
    "while IFS= read -r p; do printf '%s\\t%s\\n' \"$(du -s -B1 --apparent-size -- \"$p\" "
    "2>/dev/null | cut -f1)\" \"$p\"; done | sort -rn | head -n1 | cut -f2-)\n"
    "    [ -n \"$big\" ] || break\n"
    "    printf '%s\\n' \"$big\" >> \"$list\"\n"
    "    snap || exit 4\n"
    "    n=$((n+1))\n"
    "  done\n"
    "fi\n"
    "while IFS= read -r p; do printf 'excluded %s\\n' \"${p#./}\"; done < \"$list\"\n"
    "rm -f \"$list\"\n"
    "printf 'size %s\\n' \"$(size)\"\n";

typedef struct {
  char *buf;
  size_t len;
} outbuf;

static cc_e2b_action collect(void *ctx, const cc_e2b_event *ev) {
  outbuf *o = ctx;
  if (ev->type != CC_E2B_EVENT_STDOUT || o->len >= SCRIPT_OUT_MAX) return CC_E2B_CONTINUE;
  size_t k = ev->len < SCRIPT_OUT_MAX - o->len ? ev->len : SCRIPT_OUT_MAX - o->len;
  memcpy(o->buf + o->len, ev->data, k);
  o->len += k;
  o->buf[o->len] = 0;
  return CC_E2B_CONTINUE;
}

/* Runs a bash script with arguments; stdout into out (bounded); the exit code. */
static cc_status run_script(cc_worker *w, const cc_e2b_sandbox *sb, const char *script,
                            const char *arg, outbuf *out, int *exit_code, char *why,
                            size_t why_size) {
  const char *args[] = {"-c", script, "cc-snapshot", arg};
  cc_e2b_exec_opts eo = {.cmd = "/bin/bash",
                         .args = args,
                         .args_count = arg ? 4 : 3,
                         .timeout_ms = SNAP_TIMEOUT_MS,
                         .cancel = w->snap ? &w->snap->cancel : NULL,
                         .on_event = collect,
                         .ctx = out};
  cc_e2b_exec_result res;
  cc_e2b_error err = {0};
  cc_status st = cc_e2b_exec(w->e2b, sb, &eo, &res, &err);
  if (st != CC_OK) {
    snprintf(why, why_size, "%s", err.message[0] ? err.message : cc_status_message(st));
    return st;
  }
  *exit_code = res.exited ? res.exit_code : -1;
  return CC_OK;
}

cc_status cc_wsnap_take(cc_worker *w, const char *owner, const char *project,
                        const cc_e2b_sandbox *sb, char *why, size_t why_size) {
  struct cc_wsnap *s = w->snap;
  if (!s) return CC_NOT_FOUND;
  char key[65];
  key_of(owner, project, key);
  if (!key[0]) return CC_INTERNAL;
  outbuf out = {malloc(SCRIPT_OUT_MAX + 1), 0};
  if (!out.buf) return CC_INTERNAL;
  out.buf[0] = 0;
  char max[32];
  snprintf(max, sizeof max, "%ld", s->max_bytes);
  int code = -1;
  cc_status st = run_script(w, sb, SNAP_SCRIPT, max, &out, &code, why, why_size);
  cJSON *excluded = cJSON_CreateArray();
  unsigned long long size = 0;
  for (char *line = out.buf, *nl; st == CC_OK && line && *line; line = nl ? nl + 1 : NULL) {
    nl = strchr(line, '\n');
    if (nl) *nl = 0;
    if (strncmp(line, "excluded ", 9) == 0) cJSON_AddItemToArray(excluded, cJSON_CreateString(line + 9));
    else if (strncmp(line, "size ", 5) == 0) size = strtoull(line + 5, NULL, 10);
  }
  free(out.buf);
  if (st == CC_OK && code != 0) {
    snprintf(why, why_size, "the archive of /home/user failed (exit %d)", code);
    st = CC_UPSTREAM_ERROR;
  }
  if (st == CC_OK && size > (unsigned long long)s->max_bytes) {
    snprintf(why, why_size, "/home/user is over %ld bytes even without its largest entries",
             s->max_bytes);
    st = CC_TOO_LARGE;
  }
  char *data = NULL;
  size_t len = 0;
  if (st == CC_OK) {
    cc_e2b_error err = {0};
    st = cc_e2b_read_file(w->e2b, sb, SNAP_TMP, (size_t)s->max_bytes, &data, &len, &err);
    if (st != CC_OK) snprintf(why, why_size, "reading the archive: %s", err.message);
  }
  cc_e2b_error rerr = {0};
  cc_e2b_remove(w->e2b, sb, SNAP_TMP, &rerr);
  if (st == CC_OK) {
    /* a project deleted meanwhile keeps nothing */
    int64_t g;
    if (cc_store_project_generation(w->store, owner, project, &g) != CC_OK) {
      st = CC_NOT_FOUND;
      snprintf(why, why_size, "the project is gone");
    }
  }
  if (st == CC_OK) {
    cc_wsnap_meta m = {.taken_ms = cc_worker_now_ms(),
                       .bytes = len,
                       .partial = cJSON_GetArraySize(excluded) > 0,
                       .excluded_json = cJSON_PrintUnformatted(excluded)};
    st = s->store->put(s->store, key, &m, data, len);
    if (st != CC_OK) snprintf(why, why_size, "storing the snapshot failed");
    cc_wsnap_meta_free(&m);
  }
  cc_e2b_free(data);
  cJSON_Delete(excluded);
  return st;
}

static const char RESTORE_SCRIPT[] =
    "tar -xzf " RESTORE_TMP " -C /home/user 2>&1 | head -c 400; rc=${PIPESTATUS[0]}; "
    "rm -f " RESTORE_TMP "; exit $rc\n";

cc_status cc_wsnap_restore(cc_worker *w, const char *owner, const char *project,
                           const cc_e2b_sandbox *sb, cc_wsnap_meta *meta, char *why,
                           size_t why_size) {
  memset(meta, 0, sizeof *meta);
  struct cc_wsnap *s = w->snap;
  if (!s) return CC_NOT_FOUND;
  char key[65];
  key_of(owner, project, key);
  if (!key[0]) return CC_INTERNAL;
  char *data = NULL;
  size_t len = 0;
  cc_status st = s->store->get(s->store, key, meta, &data, &len);
  if (st != CC_OK) {
    if (st != CC_NOT_FOUND) snprintf(why, why_size, "the stored snapshot cannot be read");
    return st;
  }
  cc_e2b_error err = {0};
  st = cc_e2b_write_file(w->e2b, sb, RESTORE_TMP, data, len, NULL, 0, &err);
  free(data);
  if (st != CC_OK) {
    snprintf(why, why_size, "uploading the snapshot: %s", err.message);
    cc_wsnap_meta_free(meta);
    return st;
  }
  outbuf out = {malloc(SCRIPT_OUT_MAX + 1), 0};
  if (!out.buf) {
    cc_wsnap_meta_free(meta);
    return CC_INTERNAL;
  }
  out.buf[0] = 0;
  int code = -1;
  st = run_script(w, sb, RESTORE_SCRIPT, NULL, &out, &code, why, why_size);
  if (st == CC_OK && code != 0) {
    snprintf(why, why_size, "extracting the snapshot failed (exit %d): %.200s", code, out.buf);
    st = CC_UPSTREAM_ERROR;
  }
  free(out.buf);
  if (st != CC_OK) cc_wsnap_meta_free(meta);
  return st;
}
