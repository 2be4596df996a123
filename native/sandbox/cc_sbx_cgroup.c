/*
 * cc_sbx_cgroup: the cgroup part of the sandbox runtime (v1 memory/pids/cpu/freezer, or v2).
 *
 * One parent cgroup per runtime (<our cgroup>/<prefix>) and one child per sandbox.  Processes
 * join a sandbox's cgroups by writing their own pid to the child's cgroup.procs between fork
 * and exec (fds opened beforehand), so every task of the sandbox — bwrap, the agent, every
 * command and slirp4netns — is counted and can be killed as a set.
 *
 * The v1 freezer hold: the kernel enables its global `freezer_active` static key when the
 * first v1 cgroup starts freezing and disables it when the last one thaws, and each flip
 * patches kernel text on every CPU (measured here: 1.2-1.4 ms per FROZEN or THAWED write,
 * against 0.04 ms while another cgroup stays frozen).  So a v1 runtime keeps one empty cgroup,
 * <prefix>/.freezer-hold, FROZEN for its whole life: pause, resume and kill then never flip
 * the key.  Nothing runs in it; a dead runtime's hold is removed with its other cgroups.
 *
 * Ownership: paths live in caller-owned structs (cc_sbx_cg_root, cc_sbx_cg); no heap.
 */
#define _GNU_SOURCE
#include "cc_sbx_int.h"

/* Paths are bounded by CC_SBX_CG_PATH; a cut path simply fails to open or create, which is
 * reported, so truncation warnings add nothing here. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const v1_ctrl[CC_SBX_CG_NCTRL] = {"memory", "pids", "cpu", "freezer"};

static int write_file(const char *dir, const char *name, const char *value) {
  char p[CC_SBX_CG_PATH + 64];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  int fd = open(p, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t n = write(fd, value, strlen(value));
  int e = n < 0 ? errno : 0;
  close(fd);
  return e;
}

static int read_file(const char *dir, const char *name, char *buf, size_t cap) {
  char p[CC_SBX_CG_PATH + 64];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t off = 0;
  ssize_t n;
  while (off + 1 < cap && (n = read(fd, buf + off, cap - 1 - off)) > 0) off += (size_t)n;
  close(fd);
  buf[off] = 0;
  return (int)off;
}

static bool file_exists(const char *dir, const char *name) {
  char p[CC_SBX_CG_PATH + 64];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return access(p, F_OK) == 0;
}

/* The mount point of the v1 hierarchy carrying `ctrl`, or of cgroup2 when ctrl is NULL. */
static bool find_mount(const char *ctrl, char *out, size_t cap) {
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (!f) return false;
  char line[4096];
  bool found = false;
  while (!found && fgets(line, sizeof line, f)) {
    char *dash = strstr(line, " - ");
    if (!dash) continue;
    char mnt[1024], fstype[64], src[256], opts[1024];
    if (sscanf(line, "%*s %*s %*s %*s %1023s", mnt) != 1) continue;
    if (sscanf(dash + 3, "%63s %255s %1023s", fstype, src, opts) != 3) continue;
    if (ctrl == NULL) {
      if (strcmp(fstype, "cgroup2") == 0) found = true;
    } else if (strcmp(fstype, "cgroup") == 0) {
      char *save = NULL;
      for (char *t = strtok_r(opts, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (strcmp(t, ctrl) == 0) found = true;
    }
    if (found) snprintf(out, cap, "%s", mnt);
  }
  fclose(f);
  return found;
}

/* Our own cgroup path for a v1 controller (or v2 when ctrl is NULL), from /proc/self/cgroup. */
static void own_path(const char *ctrl, char *out, size_t cap) {
  snprintf(out, cap, "/");
  FILE *f = fopen("/proc/self/cgroup", "re");
  if (!f) return;
  char line[4096];
  while (fgets(line, sizeof line, f)) {
    char *c1 = strchr(line, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2) continue;
    *c2 = 0;
    char *path = c2 + 1;
    path[strcspn(path, "\n")] = 0;
    bool match = false;
    if (ctrl == NULL) {
      match = strncmp(line, "0:", 2) == 0 && c1[1] == 0;
    } else {
      char *save = NULL;
      for (char *t = strtok_r(c1 + 1, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (strcmp(t, ctrl) == 0) match = true;
    }
    if (match) {
      snprintf(out, cap, "%s", path);
      break;
    }
  }
  fclose(f);
}

/* mount + own path, falling back to the mount root when the own path is not visible (a
 * cgroup namespace or a container that mounted only its own subtree). */
static void base_dir(const char *mnt, const char *own, char *out, size_t cap) {
  char p[CC_SBX_CG_PATH];
  snprintf(p, sizeof p, "%s%s", mnt, strcmp(own, "/") ? own : "");
  struct stat st;
  if (stat(p, &st) == 0 && S_ISDIR(st.st_mode))
    snprintf(out, cap, "%s", p);
  else
    snprintf(out, cap, "%s", mnt);
}

/* Removes what a runtime that died without cleaning up (sandboxd SIGKILLed) left in base:
 * "codecanvas-<pid>" dirs whose pid is gone, and their (by then empty) sandbox dirs. */
static int kill_listed(const char *dir);
static void nap_ms(long ms);

/* Removes the cgroups a dead sandboxd left.  Its sandboxes were told to die with it
 * (PDEATHSIG), but a frozen (paused) one takes no signal until thawed: thaw, kill what is
 * left, and wait briefly for the tasks to go. */
static void remove_stale(const char *base) {
  DIR *d = opendir(base);
  if (!d) return;
  struct dirent *de;
  while ((de = readdir(d))) {
    int pid;
    char tail;
    if (sscanf(de->d_name, "codecanvas-%d%c", &pid, &tail) != 1 || pid <= 0) continue;
    if (kill(pid, 0) == 0 || errno != ESRCH) continue;
    char dir[CC_SBX_CG_PATH];
    snprintf(dir, sizeof dir, "%s/%s", base, de->d_name);
    DIR *sd = opendir(dir);
    if (sd) {
      struct dirent *se;
      while ((se = readdir(sd)))
        if (se->d_type == DT_DIR && strcmp(se->d_name, ".") && strcmp(se->d_name, "..")) {
          char sub[CC_SBX_CG_PATH];
          snprintf(sub, sizeof sub, "%s/%s", dir, se->d_name);
          write_file(sub, "freezer.state", "THAWED"); /* v1 freezer hierarchy only */
          write_file(sub, "cgroup.freeze", "0");      /* v2 only */
          kill_listed(sub);
          /* fails (EBUSY) while a task still lives there: then it stays */
          for (int t = 0; t < 200 && rmdir(sub) != 0 && errno == EBUSY; t++) nap_ms(2);
        }
      closedir(sd);
    }
    rmdir(dir);
  }
  closedir(d);
}

/* Creates and freezes the v1 hold cgroup (see the top of this file).  Best effort: without it
 * freezing works the same, only slower. */
static void hold_freezer(cc_sbx_cg_root *root) {
  if (!root->dir[3][0]) return;
  snprintf(root->hold, sizeof root->hold, "%s/.freezer-hold", root->dir[3]);
  if ((mkdir(root->hold, 0755) != 0 && errno != EEXIST) ||
      write_file(root->hold, "freezer.state", "FROZEN") != 0) {
    rmdir(root->hold);
    root->hold[0] = 0;
  }
}

static bool make_dir(const char *p, char *why, size_t whycap) {
  if (mkdir(p, 0755) == 0 || errno == EEXIST) return true;
  snprintf(why, whycap, "cannot create %s: %s", p, strerror(errno));
  return false;
}

bool cc_sbx_cg_probe(cc_sbx_cg_root *root, cc_sbx_cgroup_mode want, const char *prefix,
                     char *why, size_t whycap) {
  memset(root, 0, sizeof *root);
  char mnt[CC_SBX_CG_PATH], own[CC_SBX_CG_PATH], base[CC_SBX_CG_PATH];
  char why1[512] = "", why2[512] = "";
  /* v1: memory and pids are required; cpu and freezer are used when present. */
  bool v1 = want != CC_SBX_CGROUP_V2;
  if (!v1) snprintf(why1, sizeof why1, "cgroup v1 not asked for");
  for (int i = 0; i < CC_SBX_CG_NCTRL && v1; i++) {
    if (!find_mount(v1_ctrl[i], mnt, sizeof mnt)) {
      if (i < 2) {
        snprintf(why1, sizeof why1, "cgroup v1 '%s' controller not mounted", v1_ctrl[i]);
        v1 = false;
      }
      continue;
    }
    own_path(v1_ctrl[i], own, sizeof own);
    base_dir(mnt, own, base, sizeof base);
    remove_stale(base);
    int n = snprintf(root->dir[i], sizeof root->dir[i], "%s/%s", base, prefix);
    if (n >= (int)sizeof root->dir[i] || !make_dir(root->dir[i], why1, sizeof why1)) {
      v1 = false;
      for (int j = 0; j < CC_SBX_CG_NCTRL; j++)
        if (root->dir[j][0]) rmdir(root->dir[j]), root->dir[j][0] = 0;
    }
  }
  if (v1) {
    root->mode = CC_SBX_CGROUP_V1;
    hold_freezer(root);
    return true;
  }
  memset(root, 0, sizeof *root);
  /* v2: needs memory and pids in the controllers available to our cgroup. */
  if (want == CC_SBX_CGROUP_V1) {
    snprintf(why2, sizeof why2, "cgroup v2 not asked for");
  } else if (find_mount(NULL, mnt, sizeof mnt)) {
    own_path(NULL, own, sizeof own);
    base_dir(mnt, own, base, sizeof base);
    remove_stale(base);
    char ctl[512];
    if (read_file(base, "cgroup.controllers", ctl, sizeof ctl) < 0 || !strstr(ctl, "memory") ||
        !strstr(ctl, "pids")) {
      snprintf(why2, sizeof why2, "cgroup v2 at %s lacks the memory/pids controllers", base);
    } else {
      /* Enabling controllers for children needs a cgroup without processes of its own
       * (the "no internal processes" rule): if ours has some, move this process into a leaf
       * "<ours>/sandboxd" first. */
      const char *want =
          strstr(ctl, "cpu ") || strstr(ctl, "cpu\n") ? "+memory +pids +cpu" : "+memory +pids";
      int e = write_file(base, "cgroup.subtree_control", want);
      if (e == EBUSY) {
        char leaf[CC_SBX_CG_PATH];
        snprintf(leaf, sizeof leaf, "%s/sandboxd", base);
        char pid[32];
        snprintf(pid, sizeof pid, "%d", (int)getpid());
        if (make_dir(leaf, why2, sizeof why2) && write_file(leaf, "cgroup.procs", pid) == 0)
          e = write_file(base, "cgroup.subtree_control", want);
      }
      int n = snprintf(root->dir[0], sizeof root->dir[0], "%s/%s", base, prefix);
      if (e != 0) {
        snprintf(why2, sizeof why2, "cannot enable controllers in %s: %s", base, strerror(e));
      } else if (n < (int)sizeof root->dir[0] && make_dir(root->dir[0], why2, sizeof why2) &&
                 (e = write_file(root->dir[0], "cgroup.subtree_control", want)) == 0) {
        root->mode = CC_SBX_CGROUP_V2;
        return true;
      } else if (!why2[0]) {
        snprintf(why2, sizeof why2, "cannot enable controllers in %s: %s", root->dir[0],
                 strerror(e));
      }
      if (root->dir[0][0]) rmdir(root->dir[0]);
    }
  } else {
    snprintf(why2, sizeof why2, "no cgroup2 mount");
  }
  memset(root, 0, sizeof *root);
  snprintf(why, whycap, "no writable cgroup for memory/pids/CPU limits (%s; %s)", why1, why2);
  return false;
}

void cc_sbx_cg_root_cleanup(cc_sbx_cg_root *root) {
  if (root->hold[0]) rmdir(root->hold); /* an empty cgroup goes even while frozen */
  for (int i = 0; i < CC_SBX_CG_NCTRL; i++)
    if (root->dir[i][0]) rmdir(root->dir[i]);
  memset(root, 0, sizeof *root);
}

bool cc_sbx_cg_create(const cc_sbx_cg_root *root, const char *id, const cc_sbx_limits *lim,
                      cc_sbx_cg *cg, char *why, size_t whycap) {
  memset(cg, 0, sizeof *cg);
  for (int i = 0; i < CC_SBX_CG_NCTRL; i++) cg->procs_fd[i] = -1;
  cg->mode = root->mode;
  if (root->mode == CC_SBX_CGROUP_NONE) return true;
  char v[64];
  int e = 0;
  for (int i = 0; i < CC_SBX_CG_NCTRL; i++) {
    if (!root->dir[i][0]) continue;
    snprintf(cg->dir[i], sizeof cg->dir[i], "%s/%s", root->dir[i], id);
    if (mkdir(cg->dir[i], 0755) != 0) {
      snprintf(why, whycap, "cannot create cgroup %s: %s", cg->dir[i], strerror(errno));
      cg->dir[i][0] = 0;
      goto fail;
    }
  }
  if (root->mode == CC_SBX_CGROUP_V1) {
    snprintf(v, sizeof v, "%llu", (unsigned long long)lim->memory_bytes);
    if ((e = write_file(cg->dir[0], "memory.limit_in_bytes", v))) goto fail_e;
    if (file_exists(cg->dir[0], "memory.memsw.limit_in_bytes"))
      write_file(cg->dir[0], "memory.memsw.limit_in_bytes", v); /* no swap beyond the limit */
    snprintf(v, sizeof v, "%u", lim->pids_max);
    if ((e = write_file(cg->dir[1], "pids.max", v))) goto fail_e;
    if (cg->dir[2][0]) {
      write_file(cg->dir[2], "cpu.cfs_period_us", "100000");
      snprintf(v, sizeof v, "%u", lim->cpu_millis * 100u);
      if ((e = write_file(cg->dir[2], "cpu.cfs_quota_us", v))) goto fail_e;
    }
  } else {
    snprintf(v, sizeof v, "%llu", (unsigned long long)lim->memory_bytes);
    if ((e = write_file(cg->dir[0], "memory.max", v))) goto fail_e;
    if (file_exists(cg->dir[0], "memory.swap.max")) write_file(cg->dir[0], "memory.swap.max", "0");
    snprintf(v, sizeof v, "%u", lim->pids_max);
    if ((e = write_file(cg->dir[0], "pids.max", v))) goto fail_e;
    if (file_exists(cg->dir[0], "cpu.max")) {
      snprintf(v, sizeof v, "%u 100000", lim->cpu_millis * 100u);
      if ((e = write_file(cg->dir[0], "cpu.max", v))) goto fail_e;
    }
  }
  for (int i = 0; i < CC_SBX_CG_NCTRL; i++) {
    if (!cg->dir[i][0]) continue;
    char p[CC_SBX_CG_PATH + 32];
    snprintf(p, sizeof p, "%s/cgroup.procs", cg->dir[i]);
    cg->procs_fd[i] = open(p, O_WRONLY | O_CLOEXEC);
    if (cg->procs_fd[i] < 0) {
      snprintf(why, whycap, "cannot open %s: %s", p, strerror(errno));
      goto fail;
    }
  }
  return true;
fail_e:
  snprintf(why, whycap, "cannot set a limit in cgroup %s: %s", cg->dir[0], strerror(e));
fail:
  cc_sbx_cg_destroy(cg);
  return false;
}

void cc_sbx_cg_close_fds(cc_sbx_cg *cg) {
  for (int i = 0; i < CC_SBX_CG_NCTRL; i++)
    if (cg->procs_fd[i] >= 0) close(cg->procs_fd[i]), cg->procs_fd[i] = -1;
}

static void nap_ms(long ms) {
  struct timespec ts = {0, ms * 1000000L};
  nanosleep(&ts, NULL);
}

/* SIGKILLs every pid listed in dir/cgroup.procs; returns how many were listed. */
static int kill_listed(const char *dir) {
  char buf[65536];
  if (read_file(dir, "cgroup.procs", buf, sizeof buf) <= 0) return 0;
  int n = 0;
  for (char *s = buf; *s;) {
    char *end;
    long pid = strtol(s, &end, 10);
    if (end == s) break;
    if (pid > 1) kill((pid_t)pid, SIGKILL), n++;
    s = end;
    while (*s == '\n') s++;
  }
  return n;
}

void cc_sbx_cg_kill(cc_sbx_cg *cg) {
  if (cg->mode == CC_SBX_CGROUP_V1) {
    /* Freeze so nothing can fork while we kill, kill every task, thaw so the kills land. */
    const char *fz = cg->dir[3];
    if (fz[0] && write_file(fz, "freezer.state", "FROZEN") == 0) {
      char st[64];
      for (int i = 0; i < 1000; i++) {
        if (read_file(fz, "freezer.state", st, sizeof st) < 0 || strncmp(st, "FROZEN", 6) == 0)
          break;
        nap_ms(1);
      }
      kill_listed(fz);
      write_file(fz, "freezer.state", "THAWED");
    } else {
      for (int i = 0; i < 100 && kill_listed(cg->dir[1]) > 0; i++) nap_ms(1);
    }
  } else if (cg->mode == CC_SBX_CGROUP_V2) {
    if (write_file(cg->dir[0], "cgroup.kill", "1") != 0) {
      write_file(cg->dir[0], "cgroup.freeze", "1");
      kill_listed(cg->dir[0]);
      write_file(cg->dir[0], "cgroup.freeze", "0");
    }
  }
}

bool cc_sbx_cg_freeze(const cc_sbx_cg *cg, bool frozen) {
  const char *dir = cg->mode == CC_SBX_CGROUP_V1 ? cg->dir[3] : cg->dir[0];
  if (cg->mode == CC_SBX_CGROUP_NONE || !dir[0]) return false;
  bool v1 = cg->mode == CC_SBX_CGROUP_V1;
  if (write_file(dir, v1 ? "freezer.state" : "cgroup.freeze",
                 v1 ? (frozen ? "FROZEN" : "THAWED") : (frozen ? "1" : "0")) != 0)
    return false;
  /* v1 thaws synchronously (the write returns with every task thawed and the state THAWED),
   * which saves the read-back on the resume path. */
  if (v1 && !frozen) return true;
  /* The kernel stops tasks asynchronously; wait (bounded, 2 s) until it says they are. */
  char st[256];
  for (int i = 0; i < 2000; i++) {
    if (v1) {
      if (read_file(dir, "freezer.state", st, sizeof st) < 0) return false;
      if (strncmp(st, frozen ? "FROZEN" : "THAWED", 6) == 0) return true;
    } else {
      if (read_file(dir, "cgroup.events", st, sizeof st) < 0) return false;
      const char *f = strstr(st, "frozen ");
      if (f && (f[7] == '1') == frozen) return true;
    }
    nap_ms(1);
  }
  return false;
}

/* Sums CPU time (ticks) of the processes listed in dir/cgroup.procs: their own time and that
 * of the children they reaped, so that every finished descendant counts once. */
static uint64_t cpu_ticks_of(const char *dir) {
  char path[CC_SBX_CG_PATH + 32];
  snprintf(path, sizeof path, "%s/cgroup.procs", dir);
  FILE *f = fopen(path, "re");
  if (!f) return 0;
  uint64_t total = 0;
  long pid;
  while (fscanf(f, "%ld", &pid) == 1) {
    char sp[64], buf[1024];
    snprintf(sp, sizeof sp, "/proc/%ld/stat", pid);
    int fd = open(sp, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) continue;
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
    unsigned long long ut, st, cut, cst;
    if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu",
                    &ut, &st, &cut, &cst) == 4)
      total += ut + st + cut + cst;
  }
  fclose(f);
  return total;
}

bool cc_sbx_cg_usage(const cc_sbx_cg *cg, uint64_t *cpu_ns, uint64_t *mem_bytes) {
  char buf[64];
  *cpu_ns = *mem_bytes = 0;
  if (cg->mode == CC_SBX_CGROUP_V1) {
    if (read_file(cg->dir[0], "memory.usage_in_bytes", buf, sizeof buf) > 0)
      *mem_bytes = strtoull(buf, NULL, 10);
    long hz = sysconf(_SC_CLK_TCK);
    *cpu_ns = cpu_ticks_of(cg->dir[0]) * (uint64_t)(1000000000L / (hz > 0 ? hz : 100));
    return true;
  }
  if (cg->mode == CC_SBX_CGROUP_V2) {
    if (read_file(cg->dir[0], "memory.current", buf, sizeof buf) > 0)
      *mem_bytes = strtoull(buf, NULL, 10);
    char st[512];
    const char *u;
    if (read_file(cg->dir[0], "cpu.stat", st, sizeof st) > 0 && (u = strstr(st, "usage_usec ")))
      *cpu_ns = strtoull(u + 11, NULL, 10) * 1000u;
    return true;
  }
  return false;
}

bool cc_sbx_cg_empty(const cc_sbx_cg *cg) {
  char buf[64];
  for (int i = 0; i < CC_SBX_CG_NCTRL; i++)
    if (cg->dir[i][0] && read_file(cg->dir[i], "cgroup.procs", buf, sizeof buf) > 0) return false;
  return true;
}

void cc_sbx_cg_destroy(cc_sbx_cg *cg) {
  cc_sbx_cg_close_fds(cg);
  for (int i = 0; i < CC_SBX_CG_NCTRL; i++) {
    if (!cg->dir[i][0]) continue;
    /* Tasks that were just killed leave the cgroup asynchronously; give them a moment. */
    for (int t = 0; t < 2000 && rmdir(cg->dir[i]) != 0 && errno == EBUSY; t++) {
      if (t % 50 == 49) cc_sbx_cg_kill(cg);
      nap_ms(1);
    }
    cg->dir[i][0] = 0;
  }
}
