/*
 * cc_wconf: loading the worker's settings from defaults, a config file, the environment
 * and the command line (see cc_wconf.h for the precedence and the file format).
 */
#include "cc_wconf.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum kind { K_STR, K_INT };

struct setting {
  enum kind kind;
  size_t offset;
  const char *key, *flag, *env, *def, *doc;
};

static const struct setting settings[] = {
#define ROW(kind, f, key, flag, env, def, doc) \
  {K_##kind, offsetof(cc_wconf, f), key, flag, env, def, doc},
    CC_WCONF_MAP(ROW)
#undef ROW
};
#define N_SETTINGS (sizeof settings / sizeof settings[0])

static void set_err(char *err, size_t errlen, const char *fmt, const char *a, const char *b) {
  if (err && errlen) snprintf(err, errlen, fmt, a, b ? b : "");
}

/* Stores `value` into the field of `s`; for `web`, appends when `append` is set. */
static cc_status assign(cc_wconf *c, const struct setting *s, const char *value, int append,
                        char *err, size_t errlen) {
  char *base = (char *)c;
  if (s->kind == K_INT) {
    char *end = NULL;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end || v < 0) {
      set_err(err, errlen, "setting %s: not a non-negative integer%s", s->key, NULL);
      return CC_BAD_REQUEST;
    }
    *(long *)(base + s->offset) = v;
    return CC_OK;
  }
  char **slot = (char **)(base + s->offset);
  char *nv;
  if (append && *slot && **slot) {
    size_t n = strlen(*slot) + strlen(value) + 2;
    nv = malloc(n);
    if (nv) snprintf(nv, n, "%s,%s", *slot, value);
  } else {
    nv = strdup(value);
  }
  if (!nv) return CC_INTERNAL;
  free(*slot);
  *slot = nv;
  return CC_OK;
}

static const struct setting *by_key(const char *key) {
  for (size_t i = 0; i < N_SETTINGS; i++)
    if (strcmp(settings[i].key, key) == 0) return &settings[i];
  return NULL;
}

static const struct setting *by_flag(const char *flag, size_t n) {
  for (size_t i = 0; i < N_SETTINGS; i++)
    if (strlen(settings[i].flag) == n && strncmp(settings[i].flag, flag, n) == 0)
      return &settings[i];
  return NULL;
}

cc_status cc_wconf_init(cc_wconf *c) {
  memset(c, 0, sizeof *c);
  for (size_t i = 0; i < N_SETTINGS; i++) {
    cc_status st = assign(c, &settings[i], settings[i].def, 0, NULL, 0);
    if (st != CC_OK) return st;
  }
  return CC_OK;
}

static void wipe_free(char *s) {
  if (!s) return;
  volatile char *p = s;
  while (*p) *p++ = 0;
  free(s);
}

void cc_wconf_cleanup(cc_wconf *c) {
  for (size_t i = 0; i < N_SETTINGS; i++) {
    if (settings[i].kind != K_STR) continue;
    char **slot = (char **)((char *)c + settings[i].offset);
    free(*slot);
    *slot = NULL;
  }
  wipe_free(c->e2b_api_key);
  c->e2b_api_key = NULL;
}

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
  return s;
}

/* Replaces the API key with `v` (trimmed of surrounding whitespace). */
static cc_status set_key(cc_wconf *c, const char *v) {
  char *k = strdup(v);
  if (!k) return CC_INTERNAL;
  char *t = trim(k);
  memmove(k, t, strlen(t) + 1);
  wipe_free(c->e2b_api_key);
  c->e2b_api_key = *k ? k : NULL;
  if (!*k) free(k);
  return CC_OK;
}

static cc_status load_file(cc_wconf *c, const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (!f) {
    set_err(err, errlen, "config file %s: %s", path, strerror(errno));
    return CC_BAD_REQUEST;
  }
  char line[4096];
  int lineno = 0;
  cc_status st = CC_OK;
  while (st == CC_OK && fgets(line, sizeof line, f)) {
    lineno++;
    char *s = trim(line);
    if (!*s || *s == '#') continue;
    char *eq = strchr(s, '=');
    if (!eq) {
      set_err(err, errlen, "config file %s: a line without '=' (%s)", path, "key = value expected");
      st = CC_BAD_REQUEST;
      break;
    }
    *eq = 0;
    char *key = trim(s), *val = trim(eq + 1);
    if (strcmp(key, "e2b_api_key") == 0) {
      st = set_key(c, val);
      continue;
    }
    const struct setting *set = by_key(key);
    if (!set) {
      set_err(err, errlen, "config file %s: unknown key %s", path, key);
      st = CC_BAD_REQUEST;
      break;
    }
    st = assign(c, set, val, 0, err, errlen);
  }
  explicit_bzero(line, sizeof line);
  fclose(f);
  return st;
}

static cc_status load_key_file(cc_wconf *c, const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (!f) {
    set_err(err, errlen, "e2b_api_key_file %s: %s", path, strerror(errno));
    return CC_BAD_REQUEST;
  }
  char buf[1024];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  cc_status st = set_key(c, buf);
  explicit_bzero(buf, sizeof buf);
  return st;
}

cc_status cc_wconf_load(cc_wconf *c, int argc, char **argv, int first, char *err, size_t errlen) {
  const char *cfg = getenv("CODECANVAS_CONFIG");
  for (int i = first; i < argc; i++) {
    if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
      cfg = argv[i + 1];
    else if (strncmp(argv[i], "--config=", 9) == 0)
      cfg = argv[i] + 9;
  }
  cc_status st;
  if (cfg && *cfg && (st = load_file(c, cfg, err, errlen)) != CC_OK) return st;

  for (size_t i = 0; i < N_SETTINGS; i++) {
    const char *v = getenv(settings[i].env);
    if (v && (st = assign(c, &settings[i], v, 0, err, errlen)) != CC_OK) return st;
  }
  const char *envkey = getenv("E2B_API_KEY");
  if (envkey && *envkey && (st = set_key(c, envkey)) != CC_OK) return st;

  int web_from_flags = 0;
  for (int i = first; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--", 2) != 0) {
      set_err(err, errlen, "unexpected argument %s%s", a, NULL);
      return CC_BAD_REQUEST;
    }
    const char *eq = strchr(a, '=');
    size_t n = eq ? (size_t)(eq - a) : strlen(a);
    const char *val;
    if (n == 8 && strncmp(a, "--config", 8) == 0) {
      if (!eq) i++;
      continue;
    }
    const struct setting *s = by_flag(a, n);
    if (!s) {
      if (err && errlen) snprintf(err, errlen, "unknown option %.*s", (int)n, a);
      return CC_BAD_REQUEST;
    }
    if (eq)
      val = eq + 1;
    else if (i + 1 < argc)
      val = argv[++i];
    else {
      set_err(err, errlen, "option %s needs a value%s", s->flag, NULL);
      return CC_BAD_REQUEST;
    }
    int append = 0;
    if (s->offset == offsetof(cc_wconf, web)) append = web_from_flags++ > 0;
    if ((st = assign(c, s, val, append, err, errlen)) != CC_OK) return st;
  }
  if (c->e2b_api_key_file && *c->e2b_api_key_file &&
      (st = load_key_file(c, c->e2b_api_key_file, err, errlen)) != CC_OK)
    return st;
  return CC_OK;
}

void cc_wconf_usage(FILE *out) {
  fprintf(out, "settings (flag / environment / config key, default):\n");
  for (size_t i = 0; i < N_SETTINGS; i++) {
    const struct setting *s = &settings[i];
    fprintf(out, "  %-26s %s\n  %-26s env %s, key %s, default \"%s\"\n", s->flag, s->doc, "",
            s->env, s->key, s->def);
  }
  fprintf(out,
          "  %-26s the E2B API key: env E2B_API_KEY, key e2b_api_key, or the key file;\n"
          "  %-26s never a flag, never logged\n",
          "(secret)", "");
  fprintf(out, "  %-26s config file of `key = value` lines (env CODECANVAS_CONFIG)\n",
          "--config FILE");
}

void cc_wconf_markdown(FILE *out) {
  fprintf(out, "| config key | flag | environment | default | meaning |\n|---|---|---|---|---|\n");
  for (size_t i = 0; i < N_SETTINGS; i++) {
    const struct setting *s = &settings[i];
    fprintf(out, "| `%s` | `%s` | `%s` | %s%s%s | %s |\n", s->key, s->flag, s->env,
            *s->def ? "`" : "", *s->def ? s->def : "(empty)", *s->def ? "`" : "", s->doc);
  }
  fprintf(out,
          "| `e2b_api_key` | (none: secret) | `E2B_API_KEY` | none | the E2B API key; or put it in "
          "the file named by `e2b_api_key_file` |\n");
}
