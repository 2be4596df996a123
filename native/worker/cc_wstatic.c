/*
 * cc_wstatic: GET/HEAD of static files for the demo page (web/) and the built wasm client
 * (build/web/).  Roots come from --web: `DIR` serves at `/`, `PREFIX=DIR` at PREFIX; roots
 * are tried in the order given, so `--web web --web build/web` lets the page and the
 * client sit side by side at `/`.  A path with a `..` segment, a NUL or a backslash is
 * refused; the resolved file must lie inside its root (symlinks are resolved first), and
 * a directory serves its index.html.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cc_worker_internal.h"

static const char *mime_of(const char *path) {
  static const struct {
    const char *ext, *type;
  } types[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".wasm", "application/wasm"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".map", "application/json"},
      {".ts", "text/plain; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".txt", "text/plain; charset=utf-8"},
      {".md", "text/plain; charset=utf-8"},
  };
  const char *dot = strrchr(path, '.');
  const char *slash = strrchr(path, '/');
  if (dot && (!slash || dot > slash))
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
      if (strcasecmp(dot, types[i].ext) == 0) return types[i].type;
  return "application/octet-stream";
}

static bool safe_rel(const char *rel) {
  if (strchr(rel, '\\')) return false;
  for (const char *p = rel; *p;) {
    const char *e = strchr(p, '/');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n == 2 && p[0] == '.' && p[1] == '.') return false;
    if (!e) break;
    p = e + 1;
  }
  return true;
}

/* Opens root/rel (or its index.html) if it resolves inside root.  Returns an fd or -1. */
static int open_in_root(const char *root, const char *rel, struct stat *st, char *resolved_out) {
  char path[PATH_MAX];
  if ((size_t)snprintf(path, sizeof path, "%s/%s", root, rel) >= sizeof path) return -1;
  char *real = realpath(path, NULL);
  if (!real) return -1;
  size_t rl = strlen(root);
  if (strncmp(real, root, rl) != 0 || (real[rl] != '/' && real[rl] != 0)) {
    free(real);
    return -1;
  }
  if (stat(real, st) == 0 && S_ISDIR(st->st_mode)) {
    char idx[PATH_MAX];
    if ((size_t)snprintf(idx, sizeof idx, "%s/index.html", real) >= sizeof idx) {
      free(real);
      return -1;
    }
    free(real);
    return open_in_root(root, idx + rl + 1, st, resolved_out);
  }
  int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd >= 0 && (fstat(fd, st) != 0 || !S_ISREG(st->st_mode))) {
    close(fd);
    fd = -1;
  }
  if (fd >= 0) snprintf(resolved_out, PATH_MAX, "%s", real);
  free(real);
  return fd;
}

int cc_wstatic_serve(cc_worker *w, struct MHD_Connection *conn, const char *url,
                     struct MHD_Response **out) {
  (void)conn;
  *out = NULL;
  if (!url || url[0] != '/' || !safe_rel(url)) return 404;
  for (int i = 0; i < w->n_web; i++) {
    const char *prefix = w->web_prefix[i];
    size_t pl = strlen(prefix);
    const char *rel;
    if (strncmp(url, prefix, pl) == 0)
      rel = url + pl;
    else if (strlen(url) + 1 == pl && strncmp(url, prefix, pl - 1) == 0)
      rel = "";
    else
      continue;
    struct stat st;
    char resolved[PATH_MAX];
    int fd = open_in_root(w->web_dir[i], rel, &st, resolved);
    if (fd < 0) continue;
    struct MHD_Response *resp = MHD_create_response_from_fd((size_t)st.st_size, fd);
    if (!resp) {
      close(fd);
      return 500;
    }
    MHD_add_response_header(resp, "Content-Type", mime_of(resolved));
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    *out = resp;
    return 200;
  }
  return 404;
}
