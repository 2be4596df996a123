/*
 * Runs every protocol data case in tests/protocol/cases/ (or the directory given as the
 * first argument) through cc_proto_case_run.  The wasm build runs the same files through
 * the same function under Node.
 *
 *   test_protocol_files [DIR]              run the cases; exit code = failures (max 255)
 *   test_protocol_files --corpus KIND OUT  write the inputs of cases of KIND into OUT/ (created
 *                                         if missing): fuzz seeds; KIND response also takes
 *                                         event and line cases
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cc_proto.h"
#include "cc_proto_cases.h"

static char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  size_t cap = 0, len = 0;
  for (;;) {
    if (len == cap) {
      cap = cap ? cap * 2 : 4096;
      char *nb = realloc(buf, cap + 1);
      if (!nb) break;
      buf = nb;
    }
    size_t r = fread(buf + len, 1, cap - len, f);
    if (r == 0) break;
    len += r;
  }
  fclose(f);
  if (buf) buf[len] = '\0';
  *n = len;
  return buf;
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted *.json names in dir; returns the count (names: free each and the array). */
static size_t list_cases(const char *dir, char ***names) {
  DIR *d = opendir(dir);
  size_t n = 0, cap = 0;
  *names = NULL;
  if (!d) return 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name);
    if (l < 6 || strcmp(e->d_name + l - 5, ".json") != 0) continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      *names = realloc(*names, cap * sizeof **names);
    }
    (*names)[n++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(*names, n, sizeof **names, by_name);
  return n;
}

int main(int argc, char **argv) {
  const char *src = getenv("CC_SOURCE_DIR");
  char dflt[4096];
  snprintf(dflt, sizeof dflt, "%s/tests/protocol/cases", src ? src : ".");
  bool corpus = argc == 4 && strcmp(argv[1], "--corpus") == 0;
  const char *dir = corpus ? dflt : argc > 1 ? argv[1] : dflt;

  if (corpus && mkdir(argv[3], 0755) != 0 && errno != EEXIST) {
    perror(argv[3]);
    return 1;
  }
  char **names;
  size_t n = list_cases(dir, &names);
  if (n == 0) {
    fprintf(stderr, "no *.json cases in %s\n", dir);
    return 1;
  }
  int failures = 0, written = 0;
  for (size_t i = 0; i < n; i++) {
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    size_t len;
    char *text = slurp(path, &len);
    if (!text) {
      fprintf(stderr, "FAIL %s: cannot read\n", names[i]);
      failures++;
    } else if (corpus) {
      const char *kind;
      char *input;
      size_t in_len;
      if (cc_proto_case_input(text, len, &kind, &input, &in_len) == 0) {
        if (strcmp(kind, argv[2]) == 0 ||
            (strcmp(argv[2], "response") == 0 && strcmp(kind, "request") != 0)) {
          char out[8192];
          snprintf(out, sizeof out, "%s/%s", argv[3], names[i]);
          FILE *f = fopen(out, "wb");
          if (f) {
            fwrite(input, 1, in_len, f);
            fclose(f);
            written++;
          }
        }
        cc_proto_free(input);
      }
    } else {
      char msg[1024];
      int rc = cc_proto_case_run(text, len, msg, sizeof msg);
      if (rc == CC_CASE_PASS) {
        printf("ok   %s\n", names[i]);
      } else {
        printf("FAIL %s: %s%s\n", names[i], rc == CC_CASE_MALFORMED ? "malformed case: " : "", msg);
        failures++;
      }
    }
    free(text);
    free(names[i]);
  }
  free(names);
  if (corpus) {
    printf("%d inputs written to %s\n", written, argv[3]);
    return 0;
  }
  printf("%zu cases, %d failed\n", n, failures);
  return failures > 255 ? 255 : failures;
}
