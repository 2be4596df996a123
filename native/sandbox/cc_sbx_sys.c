/*
 * cc_sbx_sys: the writable system of a sandbox with root inside (docs/sandboxd.md "A writable
 * system").
 *
 * At runtime start (as root) we make, under <state dir>/sys (a private mount):
 *   base/   a tmpfs holding the top-level skeleton (merged-/usr symlinks, empty /home /root
 *           /tmp /run /proc /dev ...), a copy of the host's /etc and of apt's and debconf's
 *           state (world-readable entries only; our own passwd, group, hostname), and, under
 *           base/usr and base/var/lib/dpkg, a whiteout for every entry of the host's tree that
 *           an ordinary user cannot read (so that it stays hidden from root inside, too);
 *   lower/  base, mounted read-only and ID-mapped through a user namespace mapped like every
 *           sandbox's (host 0 -> the sandbox's root, host 1000 -> its user);
 *   usr/, dpkg/  the host's /usr and /var/lib/dpkg (the "host trees"), mounted the same way.
 * Per sandbox, disks/<id>/d is a tmpfs of the sandbox's disk size holding its /home/user and
 * the upper and work dirs of one overlay per tree: / (lower: lower/), /usr (lowers:
 * lower/usr, then usr/) and /var/lib/dpkg (likewise), mounted at disks/<id>/d/m/<tree>; bwrap
 * binds them.  Whatever the sandbox writes to its system lands in that tmpfs: counted in its
 * size and in the sandbox's memory cgroup, never in a host file.  The mounts live in the
 * host's mount namespace, so that a sandbox paused without its memory keeps them.  A thread
 * keeps spare disks ready (disks/.spare.<n>, renamed to disks/<id> by a create), and a drop
 * renames a disk away (disks/.gone.*) and leaves its unmount to a thread of its own: mounts
 * and unmounts (an RCU grace period each) stay off the create and kill paths.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "cc_sbx_int.h"

#define WALK_DEPTH_MAX 64

/* ---- small helpers ------------------------------------------------------------------------- */

static int fail(char *why, size_t cap, const char *what, const char *path) {
  int e = errno;
  snprintf(why, cap, "%s %.200s: %s", what, path, strerror(e));
  return -1;
}

/* true when path is the root of a mount (the tmpfs or an overlay of a sandbox). */
static bool is_mount_root(const char *path) {
  struct statx sx;
  if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx) != 0) return false;
  return (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
         (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

/* Detaches every mount stacked on path (bounded). */
static void unmount_all(const char *path) {
  for (int i = 0; i < 16 && umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) == 0; i++) {
  }
}

/* Readable (and, for a directory, searchable) by someone who is neither owner nor group:
 * what every sandbox user gets from the host today, and all root inside may get through the
 * ID-mapped layers. */
static bool world_readable(const struct stat *st) {
  if (S_ISLNK(st->st_mode)) return true;
  if (S_ISDIR(st->st_mode)) return (st->st_mode & (S_IROTH | S_IXOTH)) == (S_IROTH | S_IXOTH);
  return S_ISREG(st->st_mode) && (st->st_mode & S_IROTH);
}

/* A copy in progress: the source's filesystem, entries made, and failures (an entry that
 * vanished under us is not one). */
typedef struct {
  dev_t dev;
  size_t made, failed;
  int first_errno;
} copying;

static void copy_failed(copying *c) {
  if (errno == ENOENT) return;
  if (!c->failed++) c->first_errno = errno;
}

static void copy_file(copying *c, int sfd, const char *name, int dfd, const struct stat *st) {
  int in = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (in < 0) return copy_failed(c);
  int out = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  bool ok = out >= 0;
  /* sendfile, not copy_file_range: the host's /etc and the base's tmpfs are two filesystems
   * of different types, which copy_file_range refuses (EXDEV) since Linux 5.19 */
  for (off_t left = st->st_size; ok && left > 0;) {
    ssize_t k = sendfile(out, in, NULL, (size_t)left);
    if (k == 0) break; /* the file shrank under us: keep what was copied */
    ok = k > 0;
    left -= k;
  }
  ok = ok && fchmod(out, st->st_mode & 0777) == 0;
  if (ok)
    c->made++;
  else
    copy_failed(c);
  if (out >= 0) close(out);
  close(in);
}

/* Copies the world-readable part of sfd into dfd (both directories): directories, regular
 * files (content and permission bits; owner: host root), symlinks.  Anything else (devices,
 * sockets, FIFOs) and anything an ordinary user could not read is left out, as are other
 * filesystems mounted below.  skip: a name left out at this level (NULL: none). */
static void copy_tree(copying *c, int sfd, int dfd, const char *skip, int depth) {
  DIR *d = fdopendir(dup(sfd));
  if (!d) return copy_failed(c);
  for (struct dirent *e; (e = readdir(d));) {
    const char *nm = e->d_name;
    if (!strcmp(nm, ".") || !strcmp(nm, "..") || (skip && !strcmp(nm, skip))) continue;
    struct stat st;
    if (fstatat(sfd, nm, &st, AT_SYMLINK_NOFOLLOW) != 0 || !world_readable(&st)) continue;
    if (S_ISDIR(st.st_mode)) {
      if (st.st_dev != c->dev || depth >= WALK_DEPTH_MAX) continue;
      if (mkdirat(dfd, nm, 0700) != 0 && errno != EEXIST) {
        copy_failed(c);
        continue;
      }
      int s2 = openat(sfd, nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      int d2 = openat(dfd, nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (s2 >= 0 && d2 >= 0)
        c->made++, copy_tree(c, s2, d2, NULL, depth + 1);
      else
        copy_failed(c);
      if (d2 >= 0) fchmod(d2, st.st_mode & 07777), close(d2);
      if (s2 >= 0) close(s2);
    } else if (S_ISLNK(st.st_mode)) {
      char t[4096];
      ssize_t k = readlinkat(sfd, nm, t, sizeof t - 1);
      if (k > 0) t[k] = 0;
      if (k > 0 && symlinkat(t, dfd, nm) == 0)
        c->made++;
      else
        copy_failed(c);
    } else {
      copy_file(c, sfd, nm, dfd, &st);
    }
  }
  closedir(d);
}

/* ---- the masks over the host trees ------------------------------------------------------- */

/* The host trees: ID-mapped, each the lowest layer of an overlay of its own per sandbox. */
static const struct {
  const char *path; /* on the host and inside */
  const char *name; /* of its mount under sys/ and of its layer dirs on a disk */
} TREES[] = {{"/usr", "usr"}, {"/var/lib/dpkg", "dpkg"}};
#define N_TREES (sizeof TREES / sizeof TREES[0])

typedef struct {
  int mask;  /* base/<tree> */
  int host;  /* the host's tree */
  dev_t dev; /* its filesystem */
  size_t masked;
} mask_walk;

/* Makes <mask>/<rel> (rel: "a/b/c", no leading slash), each new directory with the mode and
 * owner of the host's, and returns an fd of it (or -1). */
static int mask_dir(mask_walk *w, const char *rel) {
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", rel);
  int fd = dup(w->mask);
  for (char *save = NULL, *t = strtok_r(buf, "/", &save); fd >= 0 && t;
       t = strtok_r(NULL, "/", &save)) {
    size_t upto = (size_t)(t - buf) + strlen(t);
    char hostrel[4096];
    snprintf(hostrel, sizeof hostrel, "%.*s", (int)upto, rel);
    if (mkdirat(fd, t, 0700) == 0) {
      struct stat st;
      if (fstatat(w->host, hostrel, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        fchownat(fd, t, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
        fchmodat(fd, t, st.st_mode & 07777, 0);
      }
    }
    int next = openat(fd, t, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    close(fd);
    fd = next;
  }
  return fd;
}

static void whiteout(mask_walk *w, const char *rel_dir, const char *name) {
  int fd = mask_dir(w, rel_dir);
  if (fd < 0) return;
  if (mknodat(fd, name, S_IFCHR | 0, makedev(0, 0)) == 0) w->masked++;
  close(fd);
}

/* Walks the host tree's directory fd (= <tree>/<rel>) and whiteouts whatever an ordinary user
 * could not read, and any other filesystem mounted below (the ID-mapped clone would show
 * what is under its mount point instead). */
static void mask_walk_dir(mask_walk *w, int fd, const char *rel, int depth) {
  DIR *d = fdopendir(dup(fd));
  if (!d) return;
  for (struct dirent *e; (e = readdir(d));) {
    const char *nm = e->d_name;
    if (!strcmp(nm, ".") || !strcmp(nm, "..") || e->d_type == DT_LNK) continue;
    struct stat st;
    if (fstatat(fd, nm, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    bool dir = S_ISDIR(st.st_mode);
    if (!world_readable(&st) || (dir && (st.st_dev != w->dev || depth >= WALK_DEPTH_MAX))) {
      whiteout(w, rel, nm);
    } else if (dir) {
      char sub[4096];
      if (snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", nm) >= (int)sizeof sub) {
        whiteout(w, rel, nm);
        continue;
      }
      int s2 = openat(fd, nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (s2 >= 0) mask_walk_dir(w, s2, sub, depth + 1), close(s2);
    }
  }
  closedir(d);
}

/* base/<tree> with the host tree's mode and a whiteout for each entry to hide. */
static bool mask_tree(cc_sbx_sys *s, int base, const char *path, char *why, size_t cap) {
  mask_walk w = {.mask = -1, .host = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)};
  struct stat st;
  if (w.host < 0 || fstat(w.host, &st) != 0 || !world_readable(&st)) {
    if (w.host >= 0) close(w.host);
    return fail(why, cap, "cannot use", path), false;
  }
  w.dev = st.st_dev;
  const char *rel = path + 1;
  mkdirat(base, rel, 0755);
  fchmodat(base, rel, st.st_mode & 07777, 0);
  w.mask = openat(base, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (w.mask >= 0) mask_walk_dir(&w, w.host, "", 0);
  /* As on E2B, root's `pip install` goes to the system (/usr/local): Debian's PEP 668 marker
   * (lib/python3.X/EXTERNALLY-MANAGED) is hidden in the sandbox's /usr, not on the host. */
  DIR *lib = w.mask >= 0 && !strcmp(path, "/usr") ? opendir("/usr/lib") : NULL;
  for (struct dirent *e; lib && (e = readdir(lib));) {
    char rel_dir[300], marker[600];
    snprintf(rel_dir, sizeof rel_dir, "lib/%s", e->d_name);
    snprintf(marker, sizeof marker, "/usr/%s/EXTERNALLY-MANAGED", rel_dir);
    if (!strncmp(e->d_name, "python3", 7) && access(marker, F_OK) == 0)
      whiteout(&w, rel_dir, "EXTERNALLY-MANAGED");
  }
  if (lib) closedir(lib);
  if (w.mask >= 0) close(w.mask);
  close(w.host);
  s->masked += w.masked;
  return w.mask >= 0 || (fail(why, cap, "mkdir", rel), false);
}

/* ---- the base ------------------------------------------------------------------------------ */

static bool write_file(int dfd, const char *name, const char *data, mode_t mode) {
  unlinkat(dfd, name, 0);
  int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return false;
  size_t len = strlen(data);
  bool ok = write(fd, data, len) == (ssize_t)len && fchmod(fd, mode) == 0;
  close(fd);
  return ok;
}

/* etc/<name> (a copy of the host's passwd or group): the host's accounts (dpkg wants the
 * system users and groups its statoverrides name) with any uid/gid-1000 or "user" entry
 * replaced by `mine` (the sandbox user's line).  Where the host has none, `fallback`. */
/* etc/<name> into buf[cap], NUL-terminated: its length, or -1 when it is missing, empty or
 * does not fit. */
static ssize_t read_small(int etc, const char *name, char *buf, size_t cap) {
  ssize_t k = -1;
  int fd = openat(etc, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) k = read(fd, buf, cap - 1), close(fd);
  if (k <= 0 || k == (ssize_t)cap - 1) return -1;
  buf[k] = 0;
  return k;
}

static bool adopt_ids(int etc, const char *name, const char *mine, const char *fallback) {
  char buf[256 << 10];
  ssize_t k = read_small(etc, name, buf, sizeof buf);
  if (k < 0) return write_file(etc, name, fallback, 0644);
  size_t cap = (size_t)k + strlen(mine) + 2, o = 0;
  char *out = malloc(cap);
  if (!out) return false;
  for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
    const char *c1 = strchr(l, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c1 || !c2) continue;
    bool ours = (c1 - l == 4 && !strncmp(l, "user", 4)) || !strncmp(c2 + 1, "1000:", 5);
    if (ours) continue;
    o += (size_t)snprintf(out + o, cap - o, "%s\n", l);
  }
  o += (size_t)snprintf(out + o, cap - o, "%s", mine);
  bool ok = write_file(etc, name, out, 0644);
  free(out);
  return ok;
}

/* etc/<out>: a shadow file of the sandbox's own for the names in etc/<from> (its passwd or
 * group), every password locked (`fmt` gets the name): as on E2B the system has one, 0600 to
 * root, so that tools that read or update it (passwd, useradd, sudo's lecture) find it, and
 * none of the host's hashes is in it. */
static bool own_shadow(int etc, const char *from, const char *out, const char *fmt) {
  char buf[256 << 10];
  ssize_t k = read_small(etc, from, buf, sizeof buf);
  if (k < 0) return false;
  size_t cap = 2 * (size_t)k + 64, o = 0;
  char *text = malloc(cap);
  if (!text) return false;
  for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
    size_t n = strcspn(l, ":");
    if (n == 0 || n > 64 || !l[n]) continue;
    l[n] = 0;
    o += (size_t)snprintf(text + o, cap - o, fmt, l);
    if (o >= cap) break;
  }
  bool ok = o < cap && write_file(etc, out, text, 0600);
  free(text);
  return ok;
}

static void mkdir_mode(int dfd, const char *name, mode_t mode) {
  mkdirat(dfd, name, mode);
  fchmodat(dfd, name, mode, 0);
}

/* Copies host /<src> into base/<src> when the host has it (parents must exist). */
static void copy_host(copying *c, int base, const char *src, const char *skip) {
  char path[256];
  snprintf(path, sizeof path, "/%s", src);
  int s = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (s < 0) return;
  struct stat st;
  if (fstat(s, &st) == 0 && world_readable(&st)) {
    mkdir_mode(base, src, st.st_mode & 07777);
    int d = openat(base, src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    c->dev = st.st_dev;
    if (d >= 0)
      copy_tree(c, s, d, skip, 0), close(d);
    else
      copy_failed(c);
  }
  close(s);
}

static bool build_base(cc_sbx_sys *s, int base, const char *passwd, const char *group, char *why,
                       size_t cap) {
  /* the top level: merged /usr only (a real /bin would need overlays of its own) */
  static const char *const links[] = {"bin", "sbin", "lib", "lib32", "lib64", "libx32"};
  for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
    char p[32], t[256];
    snprintf(p, sizeof p, "/%s", links[i]);
    struct stat st;
    if (lstat(p, &st) != 0) continue;
    ssize_t k = S_ISLNK(st.st_mode) ? readlink(p, t, sizeof t - 1) : -1;
    if (k <= 0) {
      snprintf(why, cap, "the host's %s is not a symlink into /usr (merged /usr is needed)", p);
      return false;
    }
    t[k] = 0;
    if (symlinkat(t, base, links[i]) != 0) return fail(why, cap, "symlink", p), false;
  }
  static const struct {
    const char *name;
    mode_t mode;
  } dirs[] = {{"home", 0755},
              {"home/user", 0755},
              {"root", 0700},
              {"tmp", 01777},
              {"run", 0755},
              {"proc", 0555},
              {"dev", 0755},
              {"opt", 0755},
              {"srv", 0755},
              {"mnt", 0755},
              {"media", 0755},
              {"var", 0755},
              {"var/lib", 0755},
              {"var/cache", 0755},
              {"var/log", 0755},
              {"var/log/apt", 0755},
              {"var/tmp", 01777},
              {"var/spool", 0755},
              {"var/mail", 0755},
              {"var/opt", 0755},
              {"var/local", 0755},
              {"var/backups", 0755},
              {"var/lib/apt", 0755},
              {"var/cache/apt", 0755},
              {"var/cache/apt/archives", 0755}};
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
    mkdir_mode(base, dirs[i].name, dirs[i].mode);
  if (symlinkat("/run", base, "var/run") != 0 || symlinkat("/run/lock", base, "var/lock") != 0)
    return fail(why, cap, "symlink", "var/run"), false;
  /* /etc and apt's and debconf's state: copies of what an ordinary user can read (apt's
   * package lists are left out, as in container images: `apt-get update` fetches them) */
  copying c = {0};
  copy_host(&c, base, "etc", NULL);
  copy_host(&c, base, "var/lib/apt", "lists");
  copy_host(&c, base, "var/lib/ucf", NULL);
  copy_host(&c, base, "var/cache/debconf", NULL);
  if (c.failed || !c.made) {
    errno = c.failed ? c.first_errno : ENOENT;
    snprintf(why, cap, "cannot copy %zu entries of /etc and /var into the base: %s", c.failed,
             strerror(errno));
    return false;
  }
  mkdir_mode(base, "var/lib/apt/lists", 0755);
  mkdir_mode(base, "var/lib/apt/lists/partial", 0700);
  mkdir_mode(base, "var/cache/apt/archives/partial", 0700);
  int etc = openat(base, "etc", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  bool ok = etc >= 0 &&
            adopt_ids(etc, "passwd", "user:x:1000:1000:user:/home/user:/bin/bash\n", passwd) &&
            adopt_ids(etc, "group", "user:x:1000:\n", group) &&
            own_shadow(etc, "passwd", "shadow", "%s:*:20000:0:99999:7:::\n") &&
            own_shadow(etc, "group", "gshadow", "%s:*::\n") &&
            write_file(etc, "hostname", "e2b\n", 0644);
  /* apt's download methods drop to _apt, a uid the sandbox's user namespace does not map
   * (setresuid fails: "Method http has died unexpectedly"): they run as the sandbox's root,
   * as in a container.  `sudo apt-get install` then works wherever the sandbox has egress. */
  int aptconf = etc >= 0 ? openat(etc, "apt/apt.conf.d", O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                                                            O_CLOEXEC)
                         : -1;
  ok = ok && aptconf >= 0 &&
       write_file(aptconf, "00codecanvas-sandbox", "APT::Sandbox::User \"root\";\n", 0644);
  if (aptconf >= 0) close(aptconf);
  if (etc >= 0) close(etc);
  /* the agent's mount point, so that bwrap does not create it in each sandbox's layer */
  ok = ok && write_file(base, ".cc-agent", "", 0555);
  if (!ok) return fail(why, cap, "cannot write", "base/etc"), false;
  s->copied = c.made;
  for (size_t i = 0; i < N_TREES; i++)
    if (!mask_tree(s, base, TREES[i].path, why, cap)) return false;
  return true;
}

/* An ID-mapped, read-only clone of src (this mount only) attached at dst. */
static bool idmapped(const char *src, const char *dst, int userns_fd, char *why, size_t cap) {
  int fd = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (fd < 0) return fail(why, cap, "open_tree", src), false;
  struct mount_attr a = {
      .attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
      .userns_fd = (uint64_t)userns_fd};
  bool ok = mount_setattr(fd, "", AT_EMPTY_PATH, &a, sizeof a) == 0;
  if (!ok)
    fail(why, cap, "ID-mapped mount of", src);
  else if (!(ok = move_mount(fd, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH) == 0))
    fail(why, cap, "move_mount to", dst);
  close(fd);
  return ok;
}

/* ---- the runtime's part -------------------------------------------------------------------- */

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* Unmounts (lazily: the tmpfs and the overlays below it, in one call) and removes a disk's
 * container (<container>/d is the tmpfs): one renamed out of the way (disks/.gone.*), a spare,
 * or one that could not be made. */
static void remove_gone(const char *gone) {
  char d[1300];
  snprintf(d, sizeof d, "%s/d", gone);
  unmount_all(d);
  rmdir(d);
  rmdir(gone);
}

/* The layers a previous run left: its base mounts, and its disks' overlays (they name the old
 * base); the disks themselves are kept, but for those it was dropping (.gone.*). */
static void unmount_layers(const cc_sbx_sys *s) {
  char p[600];
  snprintf(p, sizeof p, "%s/disks", s->dir);
  DIR *d = opendir(p);
  for (struct dirent *e; d && (e = readdir(d));) {
    if (e->d_name[0] == '.' && (!e->d_name[1] || e->d_name[1] == '.')) continue;
    char m[1200];
    snprintf(m, sizeof m, "%s/%s", p, e->d_name);
    if (!strncmp(e->d_name, ".gone.", 6) || !strncmp(e->d_name, ".spare.", 7)) {
      remove_gone(m);
      continue;
    }
    for (size_t i = 0; i < N_TREES; i++) {
      snprintf(m, sizeof m, "%s/%s/d/m/%s", p, e->d_name, TREES[i].name);
      unmount_all(m);
    }
    snprintf(m, sizeof m, "%s/%s/d/m/root", p, e->d_name);
    unmount_all(m);
  }
  if (d) closedir(d);
  const char *mine[] = {"lower", "base", TREES[0].name, TREES[1].name};
  for (size_t i = 0; i < sizeof mine / sizeof mine[0]; i++) {
    snprintf(p, sizeof p, "%s/%s", s->dir, mine[i]);
    unmount_all(p);
  }
}

bool cc_sbx_sys_init(cc_sbx_sys *s, const char *state_dir, uint32_t host_uid, int userns_fd,
                     const char *passwd, const char *group) {
  double t0 = now_ms();
  memset(s, 0, sizeof *s);
  s->host_uid = host_uid;
  char *why = s->why;
  size_t cap = sizeof s->why;
  if (strpbrk(state_dir, ",:\\ \t\n")) {
    snprintf(why, cap, "the state dir's path has a character overlayfs options cannot carry");
    return false;
  }
  if (snprintf(s->dir, sizeof s->dir, "%s/sys", state_dir) >= (int)sizeof s->dir - 100) {
    snprintf(why, cap, "the state dir's path is too long");
    s->dir[0] = 0;
    return false;
  }
  /* bwrap runs as the sandbox's host uid and must reach sys/disks/<id>/m/...: the state dir
   * and sys are searchable by others (not listable); everything else below stays 0700 */
  struct stat st;
  if (stat(state_dir, &st) != 0 || chmod(state_dir, (st.st_mode & 07777) | 0011) != 0)
    return fail(why, cap, "chmod", state_dir), false;
  if (mkdir(s->dir, 0711) != 0 && errno != EEXIST) return fail(why, cap, "mkdir", s->dir), false;
  chmod(s->dir, 0711);
  /* a private mount, so that nothing mounted below propagates anywhere */
  if (!is_mount_root(s->dir) && mount(s->dir, s->dir, NULL, MS_BIND, NULL) != 0)
    return fail(why, cap, "bind mount", s->dir), false;
  if (mount(NULL, s->dir, NULL, MS_PRIVATE, NULL) != 0)
    return fail(why, cap, "make private", s->dir), false;
  unmount_layers(s);
  char p[600], src[600];
  const char *dirs[] = {"disks", "base", "lower", TREES[0].name, TREES[1].name};
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
    snprintf(p, sizeof p, "%s/%s", s->dir, dirs[i]);
    if (mkdir(p, i == 0 ? 0711 : 0700) != 0 && errno != EEXIST)
      return fail(why, cap, "mkdir", p), false;
  }
  /* the base: a tmpfs (fast to fill; a few MiB of RAM), read-only once built */
  snprintf(src, sizeof src, "%s/base", s->dir);
  if (mount("tmpfs", src, "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=0755") != 0)
    return fail(why, cap, "tmpfs mount at", src), false;
  int base = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  bool ok = base >= 0 && build_base(s, base, passwd, group, why, cap);
  if (base >= 0) close(base);
  ok = ok && mount(NULL, src, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) == 0;
  snprintf(p, sizeof p, "%s/lower", s->dir);
  ok = ok && idmapped(src, p, userns_fd, why, cap);
  for (size_t i = 0; ok && i < N_TREES; i++) {
    snprintf(p, sizeof p, "%s/%s", s->dir, TREES[i].name);
    ok = idmapped(TREES[i].path, p, userns_fd, why, cap);
  }
  s->build_ms = now_ms() - t0;
  if (!ok) {
    cc_sbx_sys_cleanup(s);
    return false;
  }
  s->on = true;
  return true;
}

static void spares_stop(cc_sbx_sys *s);

void cc_sbx_sys_cleanup(cc_sbx_sys *s) {
  s->on = false;
  if (!s->dir[0]) return;
  spares_stop(s);
  /* the drops still under way use s (bounded: each is one unmount) */
  for (int i = 0; i < 500 && __atomic_load_n(&s->dropping, __ATOMIC_ACQUIRE); i++) usleep(10000);
  unmount_layers(s);
  /* No disk kept (for a paused sandbox): nothing of ours is left mounted, or on disk. */
  char p[600];
  snprintf(p, sizeof p, "%s/disks", s->dir);
  if (rmdir(p) != 0 && errno != ENOENT) return;
  const char *dirs[] = {"base", "lower", TREES[0].name, TREES[1].name};
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
    snprintf(p, sizeof p, "%s/%s", s->dir, dirs[i]);
    rmdir(p);
  }
  unmount_all(s->dir);
  rmdir(s->dir);
}

size_t cc_sbx_sys_trees(const char *const **paths, const char *const **names) {
  /* the same strings as TREES (a constant initializer cannot read TREES' members) */
  static const char *const p[] = {"/usr", "/var/lib/dpkg"};
  static const char *const n[] = {"usr", "dpkg"};
  _Static_assert(N_TREES == 2, "the arrays above list every tree");
  *paths = p;
  *names = n;
  return N_TREES;
}

/* ---- a sandbox's disk ---------------------------------------------------------------------- */

void cc_sbx_sys_disk_path(const cc_sbx_sys *s, const char *id, const char *sub, char *out,
                          size_t cap) {
  snprintf(out, cap, "%s/disks/%s/d%s%s", s->dir, id, sub && sub[0] ? "/" : "", sub ? sub : "");
}

static bool overlay(const char *disk, const char *layer, const char *lowers, char *why,
                    size_t cap) {
  char target[700], opts[4096];
  snprintf(target, sizeof target, "%s/m/%s", disk, layer);
  if (is_mount_root(target)) return true; /* kept from before a pause */
  snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s/up/%s,workdir=%s/wk/%s", lowers, disk, layer,
           disk, layer);
  if (mount("overlay", target, "overlay", MS_NOSUID | MS_NODEV, opts) != 0)
    return fail(why, cap, "overlay mount at", target), false;
  return true;
}

/* Lays out a fresh disk (fd): up/<layer> is the root of each merged tree (its owner and mode
 * are what the tree's top shows: root's, 0755), wk/<layer> its work dir, m/<layer> where it is
 * mounted; home becomes /home/user. */
static bool lay_out(const cc_sbx_sys *s, int fd) {
  uint32_t root = s->host_uid + 1, user = s->host_uid;
  bool ok = mkdirat(fd, "up", 0700) == 0 && mkdirat(fd, "wk", 0700) == 0 &&
            mkdirat(fd, "m", 0711) == 0 && mkdirat(fd, "home", 0755) == 0 &&
            fchownat(fd, "home", user, user, 0) == 0;
  const char *layers[N_TREES + 1] = {"root", TREES[0].name, TREES[1].name};
  for (size_t i = 0; ok && i < N_TREES + 1; i++) {
    char up[64], wk[64], m[64];
    snprintf(up, sizeof up, "up/%s", layers[i]);
    snprintf(wk, sizeof wk, "wk/%s", layers[i]);
    snprintf(m, sizeof m, "m/%s", layers[i]);
    ok = mkdirat(fd, up, 0755) == 0 && fchownat(fd, up, root, root, 0) == 0 &&
         mkdirat(fd, wk, 0700) == 0 && mkdirat(fd, m, 0755) == 0;
  }
  return ok;
}

/* Makes (or completes) the disk at `disk` (<container>/d): the tmpfs with its layout, then
 * the overlays (those already mounted are kept).  false with why; the caller drops what is
 * left. */
static bool make_disk(const cc_sbx_sys *s, const char *disk, uint64_t bytes, char *why,
                      size_t cap) {
  char lowers[1300];
  if (!is_mount_root(disk)) {
    /* <container> holds the mount point d, so that a drop can rename it away at once */
    char container[600];
    snprintf(container, sizeof container, "%s", disk);
    *strrchr(container, '/') = 0;
    if ((mkdir(container, 0711) != 0 && errno != EEXIST) ||
        (mkdir(disk, 0700) != 0 && errno != EEXIST))
      return fail(why, cap, "mkdir", disk), false;
    /* One inode per KiB of its size at most: inodes cost kernel memory beyond size=.  Mode
     * 0710, group the host gid of the sandbox's root (bwrap sets its mounts up as root of the
     * sandbox's namespace, gid 0 = host host_uid + 1): bwrap reaches the trees it binds, no
     * other host user can look into a sandbox's files. */
    char o[160];
    snprintf(o, sizeof o, "size=%llu,nr_inodes=%llu,mode=0710,gid=%u", (unsigned long long)bytes,
             (unsigned long long)(bytes / 1024 + 64), s->host_uid + 1);
    if (mount("tmpfs", disk, "tmpfs", MS_NOSUID | MS_NODEV, o) != 0)
      return fail(why, cap, "tmpfs mount at", disk), false;
    int fd = open(disk, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bool ok = fd >= 0 && lay_out(s, fd);
    if (fd >= 0) close(fd);
    if (!ok) return fail(why, cap, "cannot lay out", disk), false;
  }
  snprintf(lowers, sizeof lowers, "%s/lower", s->dir);
  bool ok = overlay(disk, "root", lowers, why, cap);
  for (size_t i = 0; ok && i < N_TREES; i++) {
    snprintf(lowers, sizeof lowers, "%s/lower%s:%s/%s", s->dir, TREES[i].path, s->dir,
             TREES[i].name);
    ok = overlay(disk, TREES[i].name, lowers, why, cap);
  }
  return ok;
}

/* ---- spare disks ---------------------------------------------------------------------------- */

/* A fresh disk costs two mounts, a layout and three overlay mounts (0.4-1.4 ms here, with the
 * load): a thread keeps CC_SBX_SYS_SPARES of them ready as disks/.spare.<n>, and a create
 * takes one with a rename. */

static void spare_path(const cc_sbx_sys *s, unsigned n, const char *sub, char *out, size_t cap) {
  snprintf(out, cap, "%s/disks/.spare.%u%s", s->dir, n, sub);
}

static void *spare_main(void *arg) {
  cc_sbx_sys *s = arg;
  pthread_mutex_lock(&s->spare_mu);
  while (!s->spare_stop) {
    if (s->n_spare >= CC_SBX_SYS_SPARES) {
      pthread_cond_wait(&s->spare_cv, &s->spare_mu);
      continue;
    }
    unsigned n = s->spare_seq++;
    uint64_t bytes = s->spare_bytes;
    pthread_mutex_unlock(&s->spare_mu);
    char disk[600], container[600], why[300];
    spare_path(s, n, "/d", disk, sizeof disk);
    spare_path(s, n, "", container, sizeof container);
    bool ok = make_disk(s, disk, bytes, why, sizeof why);
    if (!ok) remove_gone(container);
    pthread_mutex_lock(&s->spare_mu);
    if (ok)
      s->spare[s->n_spare++] = n;
    else /* (a full host, say): creates make their own disks and say why if they fail too */
      pthread_cond_wait(&s->spare_cv, &s->spare_mu);
  }
  pthread_mutex_unlock(&s->spare_mu);
  return NULL;
}

void cc_sbx_sys_spares_start(cc_sbx_sys *s, uint64_t bytes) {
  pthread_mutex_init(&s->spare_mu, NULL);
  pthread_cond_init(&s->spare_cv, NULL);
  s->spare_bytes = bytes;
  s->spare_thread_on = pthread_create(&s->spare_thread, NULL, spare_main, s) == 0;
}

static void spares_stop(cc_sbx_sys *s) {
  if (!s->spare_thread_on) return;
  pthread_mutex_lock(&s->spare_mu);
  s->spare_stop = true;
  pthread_cond_signal(&s->spare_cv);
  pthread_mutex_unlock(&s->spare_mu);
  pthread_join(s->spare_thread, NULL);
  s->spare_thread_on = false;
  for (size_t i = 0; i < s->n_spare; i++) {
    char container[600];
    spare_path(s, s->spare[i], "", container, sizeof container);
    remove_gone(container);
  }
  s->n_spare = 0;
  pthread_mutex_destroy(&s->spare_mu);
  pthread_cond_destroy(&s->spare_cv);
}

void cc_sbx_sys_spares_refill(cc_sbx_sys *s) {
  if (!s->spare_thread_on) return;
  pthread_mutex_lock(&s->spare_mu);
  pthread_cond_signal(&s->spare_cv);
  pthread_mutex_unlock(&s->spare_mu);
}

/* Renames a spare of `bytes` to disks/<id>; false when there is none. */
static bool take_spare(cc_sbx_sys *s, const char *id, uint64_t bytes) {
  if (!s->spare_thread_on) return false;
  pthread_mutex_lock(&s->spare_mu);
  bool have = s->n_spare > 0 && s->spare_bytes == bytes;
  unsigned n = have ? s->spare[--s->n_spare] : 0;
  pthread_mutex_unlock(&s->spare_mu); /* the refill waits for cc_sbx_sys_spares_refill */
  if (!have) return false;
  char from[600], to[600];
  spare_path(s, n, "", from, sizeof from);
  snprintf(to, sizeof to, "%s/disks/%s", s->dir, id);
  if (rename(from, to) == 0) return true;
  remove_gone(from);
  return false;
}

bool cc_sbx_sys_disk_mount(cc_sbx_sys *s, const char *id, uint64_t bytes, char *why, size_t cap) {
  char disk[600];
  cc_sbx_sys_disk_path(s, id, NULL, disk, sizeof disk);
  if (!is_mount_root(disk) && take_spare(s, id, bytes)) return true;
  bool ok = make_disk(s, disk, bytes, why, cap);
  if (!ok) cc_sbx_sys_disk_drop(s, id);
  return ok;
}

bool cc_sbx_sys_disk_exists(const cc_sbx_sys *s, const char *id) {
  char disk[600];
  cc_sbx_sys_disk_path(s, id, NULL, disk, sizeof disk);
  return is_mount_root(disk);
}

static void *drop_main(void *arg) {
  struct drop {
    cc_sbx_sys *s;
    char path[];
  } *d = arg;
  remove_gone(d->path);
  __atomic_fetch_sub(&d->s->dropping, 1, __ATOMIC_RELEASE);
  free(d);
  return NULL;
}

void cc_sbx_sys_disk_drop(cc_sbx_sys *s, const char *id) {
  /* Every unmount waits for an RCU grace period (2-5 ms here): the disk is renamed out of the
   * way at once (its id is free again) and unmounted, with the overlays below it, in one lazy
   * call by a short-lived thread.  Its pages go with the last user of the sandbox's mounts. */
  char dir[600], gone[700];
  snprintf(dir, sizeof dir, "%s/disks/%s", s->dir, id);
  snprintf(gone, sizeof gone, "%s/disks/.gone.%s.%u", s->dir, id,
           __atomic_fetch_add(&s->gone_seq, 1, __ATOMIC_RELAXED));
  if (rename(dir, gone) != 0) return; /* none */
  struct drop {
    cc_sbx_sys *s;
    char path[];
  } *d = malloc(sizeof *d + strlen(gone) + 1);
  pthread_t t;
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  if (d) {
    d->s = s;
    strcpy(d->path, gone);
    __atomic_fetch_add(&s->dropping, 1, __ATOMIC_ACQ_REL);
  }
  if (!d || pthread_create(&t, &a, drop_main, d) != 0) {
    if (d) __atomic_fetch_sub(&s->dropping, 1, __ATOMIC_RELEASE), free(d);
    remove_gone(gone);
  }
  pthread_attr_destroy(&a);
}

bool cc_sbx_sys_disk_usage(const cc_sbx_sys *s, const char *id, uint64_t *used, uint64_t *total) {
  char p[600];
  cc_sbx_sys_disk_path(s, id, NULL, p, sizeof p);
  struct statvfs v;
  if (!is_mount_root(p) || statvfs(p, &v) != 0) return false;
  *total = (uint64_t)v.f_blocks * v.f_frsize;
  *used = (uint64_t)(v.f_blocks - v.f_bfree) * v.f_frsize;
  return true;
}
