/*
 * cc_sbd_life: a sandbox's life after create (see cc_sbd.h): pause and resume, what a paused
 * sandbox leaves on disk so that it survives a sandboxd restart, and its metrics.
 *
 * On disk, per paused sandbox: <state dir>/paused/<id>/sandbox.json (what create was given,
 * its token and lifecycle) and home.tar (its /home/user, archived by tar inside the sandbox:
 * the host never resolves a path the sandbox controls).  Written at pause (the archive
 * first, then the descriptor, each through a temporary file and rename, so a crash leaves
 * either the previous state or the new one).  At resume and at kill the directory is
 * *retired*: renamed, in one step, to <state dir>/retired/<id>.<pid>.<n>, before the answer;
 * the janitor thread deletes it afterwards (an archive can be large, and unlinking two files
 * cost ~2 ms on the resume path).  A sandboxd killed at any point therefore finds, at its
 * restart, either paused/<id> whole (the resume or kill was not answered; the sandbox is
 * still paused) or nothing (it was resumed or killed); a restart scans only paused/, and
 * the janitor's first pass empties what a dead run left in retired/.
 *
 * Locking: life_mu of the sandbox serialises pause/resume/kill; srv->mu guards the fields the
 * registry and the reaper read (state, end_ms, n_cold).
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cc_sbd.h"
#include "cc_sbd_http.h"
#include "cc_sbx.h"

#define ARCHIVE_TIMEOUT_MS 120000
#define JANITOR_DELAY_MS 200

static void paused_dir(const cc_sbd_server *srv, const char *id, char *out, size_t cap) {
  snprintf(out, cap, "%s/paused/%s", srv->cfg.state_dir, id);
}

/* ---- retiring a paused sandbox's files, and the janitor that deletes them ---- */

/* Deletes dir and the files in it (a paused or retired sandbox dir holds only files).
 * false (errno set) if dir stays. */
static bool remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d)))
      if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
        unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
  }
  return rmdir(dir) == 0 || errno == ENOENT;
}

void cc_sbd_retire_paused(cc_sbd_server *srv, const char *id) {
  char dir[600], to[700];
  paused_dir(srv, id, dir, sizeof dir);
  for (int attempt = 0; attempt < 4; attempt++) {
    pthread_mutex_lock(&srv->mu);
    unsigned long long n = ++srv->retire_seq;
    pthread_mutex_unlock(&srv->mu);
    snprintf(to, sizeof to, "%s/retired/%s.%d.%llu", srv->cfg.state_dir, id, (int)getpid(), n);
    if (rename(dir, to) == 0) {
      pthread_mutex_lock(&srv->mu);
      srv->janitor_work = true;
      if (srv->janitor_running) pthread_cond_signal(&srv->janitor_cv); /* else: next start */
      pthread_mutex_unlock(&srv->mu);
      return;
    }
    int e = errno;
    if (e == ENOENT && access(dir, F_OK) != 0) return; /* never paused: nothing on disk */
    if (e == ENOENT) { /* retired/ itself is missing: make it and try again */
      snprintf(to, sizeof to, "%s/retired", srv->cfg.state_dir);
      if (mkdir(to, 0700) != 0 && errno != EEXIST) break;
    } else if (e != EEXIST && e != ENOTEMPTY) {
      break; /* (a leftover of the same name, only possible across pid reuse: next n) */
    }
  }
  /* The rename is impossible (it should not be): delete in place, on the request path. */
  if (!remove_dir(dir))
    fprintf(stderr, "codecanvas-sandboxd: cannot remove %s: %s\n", dir, strerror(errno));
}

/* Deletes every entry of <state>/retired/. */
static void empty_retired(cc_sbd_server *srv) {
  char dir[600], sub[900];
  snprintf(dir, sizeof dir, "%s/retired", srv->cfg.state_dir);
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
    if (!remove_dir(sub) && unlink(sub) != 0 && errno != ENOENT)
      fprintf(stderr, "codecanvas-sandboxd: cannot remove %s: %s\n", sub, strerror(errno));
  }
  closedir(d);
}

/* The janitor: empties retired/ JANITOR_DELAY_MS after something was put there (and once at
 * start), at the lowest CPU priority: freeing blocks is slow on some hosts (ext4 mounted with
 * `discard` here), and a resumed sandbox's first commands should not share the CPU with it. */
static void *janitor_main(void *arg) {
  cc_sbd_server *srv = arg;
  (void)!setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19); /* this thread only */
  pthread_mutex_lock(&srv->mu);
  for (;;) {
    while (!srv->janitor_work && !srv->janitor_stop) pthread_cond_wait(&srv->janitor_cv, &srv->mu);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += JANITOR_DELAY_MS * 1000000L;
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    while (!srv->janitor_stop &&
           pthread_cond_timedwait(&srv->janitor_cv, &srv->mu, &until) != ETIMEDOUT) {
    }
    bool stop = srv->janitor_stop;
    srv->janitor_work = false;
    pthread_mutex_unlock(&srv->mu);
    empty_retired(srv);
    pthread_mutex_lock(&srv->mu);
    if (stop) break;
  }
  pthread_mutex_unlock(&srv->mu);
  return NULL;
}

cc_status cc_sbd_janitor_start(cc_sbd_server *srv) {
  char dir[600];
  snprintf(dir, sizeof dir, "%s/retired", srv->cfg.state_dir);
  mkdir(dir, 0700);
  srv->janitor_work = true; /* what a run killed mid-way left */
  srv->janitor_stop = false;
  if (pthread_create(&srv->janitor, NULL, janitor_main, srv) != 0) return CC_INTERNAL;
  pthread_mutex_lock(&srv->mu);
  srv->janitor_running = true;
  pthread_mutex_unlock(&srv->mu);
  return CC_OK;
}

void cc_sbd_janitor_stop(cc_sbd_server *srv) {
  pthread_mutex_lock(&srv->mu);
  bool running = srv->janitor_running;
  srv->janitor_running = false;
  srv->janitor_stop = true;
  pthread_cond_signal(&srv->janitor_cv);
  pthread_mutex_unlock(&srv->mu);
  if (running) pthread_join(srv->janitor, NULL);
}

/* ---- /home/user in and out, through tar inside the sandbox ---- */

/* Runs tar in the sandbox: archive (stdout -> fd) or extract (fd -> stdin).  tar exit 1
 * ("file changed as we read it") still made an archive. */
static cc_status run_tar(cc_sbx *sbx, bool archive, int fd, char *msg, size_t msg_size) {
  static const char *const out_args[] = {"-C", "/home/user", "-cf", "-", "."};
  static const char *const in_args[] = {"-C", "/home/user", "--preserve-permissions", "-xf", "-"};
  cc_sbx_proc_spec spec = {.cmd = "tar",
                           .args = archive ? out_args : in_args,
                           .n_args = 5,
                           .stdin_pipe = !archive,
                           .timeout_ms = ARCHIVE_TIMEOUT_MS};
  uint32_t pid;
  cc_sbx_sub *sub = NULL;
  cc_sbx_err err = {0};
  if (cc_sbx_proc_start(sbx, &spec, &pid, &sub, &err) != CC_OK) {
    snprintf(msg, msg_size, "cannot start tar: %s", err.msg);
    return CC_INTERNAL;
  }
  bool io_ok = true;
  if (!archive) {
    char buf[65536];
    ssize_t n;
    while (io_ok && (n = read(fd, buf, sizeof buf)) > 0)
      io_ok = cc_sbx_proc_write_stdin(sbx, pid, buf, (size_t)n, ARCHIVE_TIMEOUT_MS, &err) == CC_OK;
    cc_sbx_proc_close_stdin(sbx, pid, NULL);
  }
  cc_sbx_event ev;
  char errtext[200] = "";
  size_t elen = 0;
  int code = -1;
  for (;;) {
    if (cc_sbx_sub_next(sub, ARCHIVE_TIMEOUT_MS, &ev) != CC_OK || ev.type == CC_SBX_EV_NONE) break;
    if (ev.type == CC_SBX_EV_STDOUT && archive && io_ok) {
      size_t off = 0;
      while (off < ev.len) {
        ssize_t w = write(fd, ev.data + off, ev.len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
          io_ok = false;
          snprintf(errtext, sizeof errtext, "writing the archive: %s", strerror(errno));
          break;
        }
        off += (size_t)w;
      }
    } else if (ev.type == CC_SBX_EV_STDERR && elen + 1 < sizeof errtext) {
      size_t k = ev.len < sizeof errtext - 1 - elen ? ev.len : sizeof errtext - 1 - elen;
      memcpy(errtext + elen, ev.data, k);
      errtext[elen += k] = 0;
    } else if (ev.type == CC_SBX_EV_END) {
      code = ev.exited ? ev.exit_code : -1;
      break;
    }
  }
  cc_sbx_sub_free(sub);
  if (io_ok && (code == 0 || (archive && code == 1))) return CC_OK;
  errtext[strcspn(errtext, "\n")] = 0;
  snprintf(msg, msg_size, "tar %s /home/user failed (exit %d): %s", archive ? "of" : "into",
           code, errtext[0] ? errtext : "no output");
  return CC_INTERNAL;
}

/* What resume (or a restarted sandboxd) needs to bring the sandbox back. */
static cJSON *descriptor(const cc_sbd_sandbox *sb) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "sandboxID", sb->id);
  cJSON_AddStringToObject(o, "envdAccessToken", sb->token);
  cJSON_AddStringToObject(o, "templateID", sb->template_id);
  cJSON_AddItemToObject(o, "metadata", cJSON_Duplicate(sb->metadata, 1));
  cJSON_AddItemToObject(o, "envVars", cJSON_Duplicate(sb->env_vars, 1));
  cJSON_AddBoolToObject(o, "internet", sb->internet);
  /* the network settings as create or the last update gave them: the rules are checked
   * again at load, and a sandbox whose rules cannot be is not brought back without them */
  pthread_mutex_lock(&sb->srv->mu);
  cJSON_AddBoolToObject(o, "allowInternetAccess", sb->inet_access);
  if (sb->net.info) cJSON_AddItemToObject(o, "network", cJSON_Duplicate(sb->net.info, 1));
  pthread_mutex_unlock(&sb->srv->mu);
  cJSON_AddStringToObject(o, "trafficAccessToken", sb->traffic_token);
  cJSON_AddBoolToObject(o, "autoPause", sb->auto_pause);
  cJSON_AddBoolToObject(o, "autoPauseMemory", sb->auto_pause_memory);
  cJSON_AddBoolToObject(o, "autoResume", sb->auto_resume);
  cJSON_AddNumberToObject(o, "timeout", (double)sb->timeout_s);
  cJSON_AddNumberToObject(o, "startedMs", (double)sb->started_ms);
  cJSON_AddNumberToObject(o, "pausedMs", (double)sb->paused_ms);
  return o;
}

static bool write_all_file(const char *path, const char *data, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  bool ok = true;
  for (size_t off = 0; ok && off < len;) {
    ssize_t w = write(fd, data + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    ok = w > 0;
    if (ok) off += (size_t)w;
  }
  ok = ok && fsync(fd) == 0;
  close(fd);
  return ok;
}

/* Writes sandbox.json into the sandbox's paused dir (a temporary file, then a rename). */
static cc_status write_descriptor(const cc_sbd_sandbox *sb, const char *dir, char *msg,
                                  size_t msg_size) {
  char tmp[700], fin[700];
  cJSON *d = descriptor(sb);
  char *text = d ? cJSON_PrintUnformatted(d) : NULL;
  cJSON_Delete(d);
  snprintf(tmp, sizeof tmp, "%s/sandbox.json.tmp", dir);
  snprintf(fin, sizeof fin, "%s/sandbox.json", dir);
  bool ok = text && write_all_file(tmp, text, strlen(text)) && rename(tmp, fin) == 0;
  free(text);
  if (!ok) {
    snprintf(msg, msg_size, "cannot write %s: %s", fin, strerror(errno));
    unlink(tmp);
    return CC_INTERNAL;
  }
  return CC_OK;
}

/* Archives the home and writes the descriptor under the state dir. */
static cc_status save_to_disk(cc_sbd_server *srv, cc_sbd_sandbox *sb, char *msg, size_t msg_size) {
  char dir[600], tmp[700], fin[700];
  snprintf(dir, sizeof dir, "%s/paused", srv->cfg.state_dir);
  mkdir(dir, 0700);
  paused_dir(srv, sb->id, dir, sizeof dir);
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    snprintf(msg, msg_size, "cannot create %s: %s", dir, strerror(errno));
    return CC_INTERNAL;
  }
  snprintf(tmp, sizeof tmp, "%s/home.tar.tmp", dir);
  snprintf(fin, sizeof fin, "%s/home.tar", dir);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    snprintf(msg, msg_size, "cannot write %s: %s", tmp, strerror(errno));
    return CC_INTERNAL;
  }
  cc_status st = run_tar(sb->sbx, true, fd, msg, msg_size);
  if (st == CC_OK && fsync(fd) != 0) {
    snprintf(msg, msg_size, "cannot write %s: %s", tmp, strerror(errno));
    st = CC_INTERNAL;
  }
  close(fd);
  if (st == CC_OK && rename(tmp, fin) != 0) {
    snprintf(msg, msg_size, "cannot rename %s: %s", tmp, strerror(errno));
    st = CC_INTERNAL;
  }
  if (st != CC_OK) {
    unlink(tmp);
    return st;
  }
  return write_descriptor(sb, dir, msg, msg_size);
}

cc_status cc_sbd_save_descriptor(cc_sbd_server *srv, cc_sbd_sandbox *sb, char *msg,
                                 size_t msg_size) {
  char dir[600];
  struct stat st;
  paused_dir(srv, sb->id, dir, sizeof dir);
  if (stat(dir, &st) != 0) return CC_OK; /* not paused on disk */
  return write_descriptor(sb, dir, msg, msg_size);
}

/* ---- pause / resume ---- */

/* Takes the sandbox's life_mu and reads what the registry guards. */
static void lock_life(cc_sbd_server *srv, cc_sbd_sandbox *sb, bool *alive, bool *paused,
                      int64_t *end_ms) {
  pthread_mutex_lock(&sb->life_mu);
  pthread_mutex_lock(&srv->mu);
  *alive = sb->alive;
  *paused = sb->state == CC_SBD_PAUSED;
  *end_ms = sb->end_ms;
  pthread_mutex_unlock(&srv->mu);
}

cc_status cc_sbd_pause(cc_sbd_server *srv, cc_sbd_sandbox *sb, bool keep_memory,
                       bool only_if_expired, char *msg, size_t msg_size) {
  bool alive, paused;
  int64_t end_ms;
  lock_life(srv, sb, &alive, &paused, &end_ms);
  bool expired = end_ms <= cc_sbd_now_ms();
  cc_status st = CC_OK;
  if (!alive) {
    snprintf(msg, msg_size, "sandbox %s is gone", sb->id);
    st = CC_NOT_FOUND;
  } else if (paused) {
    snprintf(msg, msg_size, "sandbox %s is already paused", sb->id);
    st = CC_CONFLICT;
  } else if (only_if_expired && !expired) {
    st = CC_OK; /* a connect extended it meanwhile */
  } else if (!sb->sbx) {
    snprintf(msg, msg_size, "sandbox %s has no runtime", sb->id);
    st = CC_INTERNAL;
  } else {
    sb->paused_ms = cc_sbd_now_ms();
    st = save_to_disk(srv, sb, msg, msg_size);
    bool frozen = false;
    if (st == CC_OK && keep_memory) {
      cc_sbx_err e = {0};
      frozen = cc_sbx_freeze(sb->sbx, true, &e) == CC_OK;
      if (!frozen)
        fprintf(stderr, "codecanvas-sandboxd: sandbox %s: %s; pausing with its files only\n",
                sb->id, e.msg);
    }
    if (st == CC_OK && !frozen) cc_sbd_runtime_stop(sb, true);
    if (st == CC_OK) {
      pthread_mutex_lock(&srv->mu);
      sb->state = CC_SBD_PAUSED;
      sb->memory_kept = frozen;
      if (!frozen) srv->n_cold++;
      pthread_cond_signal(&srv->reaper_cv);
      pthread_mutex_unlock(&srv->mu);
    }
  }
  pthread_mutex_unlock(&sb->life_mu);
  return st;
}

/* Starts a runtime for a sandbox paused with its files only and puts its home back. */
static cc_status cold_start(cc_sbd_server *srv, cc_sbd_sandbox *sb, char *msg, size_t msg_size) {
  pthread_mutex_lock(&srv->mu);
  bool full = (long)(srv->n_boxes - srv->n_cold + srv->n_starting) >= srv->cfg.max_sandboxes;
  pthread_mutex_unlock(&srv->mu);
  if (full) {
    snprintf(msg, msg_size, "maximum number of sandboxes (%ld) reached", srv->cfg.max_sandboxes);
    return CC_RATE_LIMITED;
  }
  /* A kept disk holds the home as it was: the archive is for when the disk is gone (a host
   * restart; a sandboxd without a writable system) */
  bool had_disk = sb->disk_kept;
  cc_status st = cc_sbd_runtime_start(sb, msg, msg_size);
  if (st != CC_OK || had_disk) return st;
  char path[700];
  paused_dir(srv, sb->id, path, sizeof path);
  strncat(path, "/home.tar", sizeof path - strlen(path) - 1);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(msg, msg_size, "its files are gone (%s: %s)", path, strerror(errno));
    st = CC_INTERNAL;
  } else {
    st = run_tar(sb->sbx, false, fd, msg, msg_size);
    close(fd);
  }
  if (st != CC_OK) cc_sbd_runtime_stop(sb, true);
  return st;
}

cc_status cc_sbd_resume(cc_sbd_server *srv, cc_sbd_sandbox *sb, long timeout_s, bool reboot,
                        bool *resumed, char *msg, size_t msg_size) {
  *resumed = false;
  bool alive, paused;
  int64_t end_ms;
  lock_life(srv, sb, &alive, &paused, &end_ms);
  cc_status st = CC_OK;
  if (!alive) {
    snprintf(msg, msg_size, "sandbox %s is gone", sb->id);
    st = CC_NOT_FOUND;
  } else if (paused) {
    bool cold = !sb->memory_kept || !sb->sbx || reboot;
    if (!cold) {
      cc_sbx_err e = {0};
      if (cc_sbx_freeze(sb->sbx, false, &e) != CC_OK) {
        snprintf(msg, msg_size, "cannot thaw: %s", e.msg);
        st = CC_INTERNAL;
      }
    } else {
      bool had_runtime = sb->sbx != NULL;
      cc_sbd_runtime_stop(sb, true); /* reboot: its processes end; its files come back */
      pthread_mutex_lock(&srv->mu);
      if (had_runtime) srv->n_cold++;
      sb->memory_kept = false;
      pthread_mutex_unlock(&srv->mu);
      st = cold_start(srv, sb, msg, msg_size);
    }
    if (st == CC_OK) {
      cc_sbd_retire_paused(srv, sb->id); /* the commit: a restart no longer sees it paused */
      pthread_mutex_lock(&srv->mu);
      if (cold) srv->n_cold--;
      sb->state = CC_SBD_RUNNING;
      sb->cold_resumed = cold;
      sb->memory_kept = false;
      sb->end_ms = cc_sbd_now_ms() + (int64_t)timeout_s * 1000;
      sb->sample_ms = 0;
      pthread_cond_signal(&srv->reaper_cv);
      pthread_mutex_unlock(&srv->mu);
      *resumed = true;
    }
  } else {
    cc_sbd_set_timeout(srv, sb, timeout_s, true);
  }
  pthread_mutex_unlock(&sb->life_mu);
  return st;
}

cc_status cc_sbd_ensure_running(cc_sbd_server *srv, cc_sbd_sandbox *sb, char *msg,
                                size_t msg_size) {
  pthread_mutex_lock(&srv->mu);
  bool paused = sb->state == CC_SBD_PAUSED, autoresume = sb->auto_resume;
  long t = sb->timeout_s;
  pthread_mutex_unlock(&srv->mu);
  if (!paused) return CC_OK;
  if (!autoresume) {
    snprintf(msg, msg_size,
             "sandbox %s is paused; resume it with Sandbox.connect() (or create it with "
             "lifecycle.autoResume)",
             sb->id);
    return CC_CONFLICT;
  }
  bool resumed;
  return cc_sbd_resume(srv, sb, t, false, &resumed, msg, msg_size);
}

/* ---- a restart: paused sandboxes come back, with their files ---- */

static const char *jstr(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool valid_id(const char *id) {
  size_t n = id ? strlen(id) : 0;
  if (n == 0 || n > CC_SBD_ID_LEN) return false;
  for (size_t i = 0; i < n; i++)
    if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9'))) return false;
  return true;
}

/* One paused sandbox from its descriptor; NULL (and a message) if it is unusable. */
static cc_sbd_sandbox *load_one(cc_sbd_server *srv, const char *dir_id) {
  char path[700];
  paused_dir(srv, dir_id, path, sizeof path);
  strncat(path, "/sandbox.json", sizeof path - strlen(path) - 1);
  FILE *f = fopen(path, "re");
  if (!f) return NULL;
  char *text = NULL;
  size_t cap = 0;
  ssize_t n = getdelim(&text, &cap, '\0', f);
  fclose(f);
  cJSON *d = n > 0 ? cJSON_ParseWithLength(text, (size_t)n) : NULL;
  free(text);
  const char *id = jstr(d, "sandboxID"), *tok = jstr(d, "envdAccessToken"),
             *tpl = jstr(d, "templateID");
  const cJSON *meta = cJSON_GetObjectItemCaseSensitive(d, "metadata");
  const cJSON *envs = cJSON_GetObjectItemCaseSensitive(d, "envVars");
  cc_sbd_sandbox *sb = NULL;
  if (id && strcmp(id, dir_id) == 0 && valid_id(id) && tok && strlen(tok) <= CC_SBD_TOKEN_LEN &&
      tpl && strlen(tpl) < sizeof sb->template_id && cJSON_IsObject(meta) &&
      cJSON_IsObject(envs) && (sb = cc_sbd_sandbox_alloc(srv))) {
    snprintf(sb->id, sizeof sb->id, "%s", id);
    snprintf(sb->token, sizeof sb->token, "%s", tok);
    snprintf(sb->template_id, sizeof sb->template_id, "%s", tpl);
    sb->metadata = cJSON_Duplicate(meta, 1);
    sb->env_vars = cJSON_Duplicate(envs, 1);
    sb->internet = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "internet"));
    const cJSON *inet = cJSON_GetObjectItemCaseSensitive(d, "allowInternetAccess");
    const char *traffic = jstr(d, "trafficAccessToken");
    char nmsg[512];
    cc_sbd_netcfg_cleanup(&sb->net);
    unsigned nst = cc_sbd_netcfg_parse(CC_SBD_NETCFG_CREATE,
                                       cJSON_GetObjectItemCaseSensitive(d, "network"),
                                       inet ? inet : cJSON_GetObjectItemCaseSensitive(d, "internet"),
                                       &sb->net, nmsg, sizeof nmsg);
    sb->inet_access = sb->net.allow_internet;
    if (traffic && strlen(traffic) <= CC_SBD_TOKEN_LEN)
      snprintf(sb->traffic_token, sizeof sb->traffic_token, "%s", traffic);
    if (nst || (!sb->net.public_traffic && !sb->traffic_token[0])) {
      fprintf(stderr, "codecanvas-sandboxd: paused sandbox %s not restored: its network "
              "settings are unusable (%s)\n", id, nst ? nmsg : "no traffic access token");
      cc_sbd_sandbox_free(sb);
      cJSON_Delete(d);
      return NULL;
    }
    sb->auto_pause = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "autoPause"));
    sb->auto_pause_memory = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "autoPauseMemory"));
    sb->auto_resume = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "autoResume"));
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(d, "timeout");
    sb->timeout_s = cJSON_IsNumber(t) && t->valuedouble >= 1 ? (long)t->valuedouble : 300;
    const cJSON *s0 = cJSON_GetObjectItemCaseSensitive(d, "startedMs");
    const cJSON *p0 = cJSON_GetObjectItemCaseSensitive(d, "pausedMs");
    sb->started_ms = cJSON_IsNumber(s0) ? (int64_t)s0->valuedouble : cc_sbd_now_ms();
    sb->paused_ms = cJSON_IsNumber(p0) ? (int64_t)p0->valuedouble : cc_sbd_now_ms();
    sb->end_ms = sb->paused_ms;
    sb->state = CC_SBD_PAUSED;
    sb->memory_kept = false; /* processes do not survive a host-side restart */
    if (!sb->metadata || !sb->env_vars) {
      cc_sbd_sandbox_free(sb);
      sb = NULL;
    }
  }
  cJSON_Delete(d);
  return sb;
}

size_t cc_sbd_load_paused(cc_sbd_server *srv) {
  char dir[600];
  snprintf(dir, sizeof dir, "%s/paused", srv->cfg.state_dir);
  DIR *d = opendir(dir);
  if (!d) return 0;
  size_t count = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    cc_sbd_sandbox *sb = valid_id(e->d_name) ? load_one(srv, e->d_name) : NULL;
    if (!sb) {
      fprintf(stderr, "codecanvas-sandboxd: %s/%s: not a usable paused sandbox; left alone\n",
              dir, e->d_name);
      continue;
    }
    sb->disk_kept = cc_sbx_disk_kept(srv->rt, sb->id);
    cc_sbx_runtime_info ri;
    cc_sbx_runtime_get_info(srv->rt, &ri);
    if (ri.writable_system && !sb->disk_kept)
      fprintf(stderr,
              "codecanvas-sandboxd: paused sandbox %s: its disk (system layer, /root) is gone "
              "(a host restart?); it resumes with its home only\n",
              sb->id);
    if (cc_sbd_register_cold(srv, sb) == CC_OK)
      count++;
    else
      cc_sbd_sandbox_free(sb);
  }
  closedir(d);
  return count;
}

/* ---- metrics ---- */

cJSON *cc_sbd_metrics_json(cc_sbd_server *srv, cc_sbd_sandbox *sb, int64_t from_s, int64_t to_s) {
  cJSON *arr = cJSON_CreateArray();
  cc_sbx_usage u;
  int64_t now = cc_sbd_now_ms();
  if (now / 1000 < from_s || now / 1000 > to_s) return arr;
  pthread_mutex_lock(&sb->life_mu);
  bool running = sb->state == CC_SBD_RUNNING && sb->sbx;
  bool ok = running && cc_sbx_get_usage(sb->sbx, &u) == CC_OK;
  pthread_mutex_unlock(&sb->life_mu);
  if (!ok || !arr) return arr;
  pthread_mutex_lock(&srv->mu);
  /* CPU use since the previous sample (or since the sandbox started) */
  int64_t t0 = sb->sample_ms ? sb->sample_ms : sb->started_ms;
  uint64_t c0 = sb->sample_ms ? sb->sample_cpu_ns : 0;
  sb->sample_ms = now;
  sb->sample_cpu_ns = u.cpu_ns;
  pthread_mutex_unlock(&srv->mu);
  double wall_ns = (double)(now > t0 ? now - t0 : 1) * 1e6;
  long cpus = srv->cfg.cpu_count > 0 ? srv->cfg.cpu_count : 1;
  double pct = u.cpu_ns > c0 ? (double)(u.cpu_ns - c0) / wall_ns / (double)cpus * 100.0 : 0.0;
  if (pct > 100.0) pct = 100.0;
  char ts[40];
  cc_sbd_rfc3339(now, ts, sizeof ts);
  cJSON *m = cJSON_CreateObject();
  cJSON_AddStringToObject(m, "timestamp", ts);
  cJSON_AddNumberToObject(m, "timestampUnix", (double)(now / 1000));
  cJSON_AddNumberToObject(m, "cpuCount", (double)cpus);
  cJSON_AddNumberToObject(m, "cpuUsedPct", (double)((long)(pct * 100.0 + 0.5)) / 100.0);
  cJSON_AddNumberToObject(m, "memUsed", (double)u.mem_bytes);
  cJSON_AddNumberToObject(m, "memTotal", (double)u.mem_limit);
  cJSON_AddNumberToObject(m, "diskUsed", (double)u.disk_bytes);
  cJSON_AddNumberToObject(m, "diskTotal", (double)u.disk_total);
  cJSON_AddItemToArray(arr, m);
  return arr;
}
