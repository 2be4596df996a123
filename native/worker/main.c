/*
 * codecanvas-worker: command line entry point.
 *
 *   codecanvas-worker serve --listen 127.0.0.1:PORT --db FILE [--config FILE] [--web DIR]...
 *   codecanvas-worker token create --user NAME [--label TEXT] --db FILE
 *   codecanvas-worker token list   --user NAME --db FILE
 *   codecanvas-worker token revoke --user NAME --id N --db FILE
 *   codecanvas-worker migrate --from FILE --to URI [--snapshot-dir DIR]   (cc_wmigrate.c)
 *   codecanvas-worker settings-markdown      (the settings table of docs/worker.md)
 *
 * Process-wide state (signal mask, the one worker) lives only here.  `serve` blocks
 * SIGTERM/SIGINT in every thread and waits for them with sigwait, so shutdown runs on the
 * main thread in ordinary code, never in a signal handler.
 */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cc_store.h"
#include "cc_wconf.h"
#include "cc_wmigrate.h"
#include "cc_worker.h"
#include "cc_wtoken.h"

static void usage(FILE *out) {
  fprintf(
      out,
      "usage:\n"
      "  codecanvas-worker serve [--listen IP:PORT] [--db FILE] [--config FILE] [--web DIR]...\n"
      "  codecanvas-worker token create --user NAME [--label TEXT] [--db FILE]\n"
      "  codecanvas-worker token list --user NAME [--db FILE]\n"
      "  codecanvas-worker token revoke --user NAME --id N [--db FILE]\n"
      "  codecanvas-worker migrate --from FILE --to postgresql://... [--snapshot-dir DIR]\n"
      "  codecanvas-worker --help | --version\n\n"
      "`serve` prints one line `codecanvas-worker: listening on http://IP:PORT` when ready.\n"
      "`token create` prints the new token on stdout; only its SHA-256 is stored.\n"
      "`migrate` copies a stopped SQLite deployment (users, tokens, projects, cache, history\n"
      "and the snapshots in DIR, default snapshots/ beside FILE; off: none) into a PostgreSQL\n"
      "database without users, projects or snapshots, in one transaction; FILE is only read.\n\n");
  cc_wconf_usage(out);
}

static int serve(int argc, char **argv) {
  cc_wconf cfg;
  char err[512] = "";
  if (cc_wconf_init(&cfg) != CC_OK) return 1;
  if (cc_wconf_load(&cfg, argc, argv, 2, err, sizeof err) != CC_OK) {
    fprintf(stderr, "codecanvas-worker: %s\n", err);
    cc_wconf_cleanup(&cfg);
    return 2;
  }
  if (!cfg.e2b_api_key)
    fprintf(stderr,
            "codecanvas-worker: warning: no E2B API key configured (E2B_API_KEY or "
            "--e2b-api-key-file); requests to E2B carry no key\n");
  /* Large responses (a 1000-record history is ~250 KB) would otherwise be mmap'ed and
   * unmapped per request, and freed heap trimmed back to the kernel, so every request
   * paid for zeroing fresh pages.  Keep up to 64 MiB of freed memory for reuse instead. */
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  /* No fastbins: with them, every allocation above 1 KiB first consolidated the thousands
   * of small cJSON nodes a history page used to free (malloc_consolidate was 13% of its
   * profile; pages are now spliced from stored text, but requests and other responses
   * still free many small nodes).  Small blocks still come from the per-thread tcache. */
  mallopt(M_MXFAST, 0);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  cc_worker *w = NULL;
  int port = 0, rc = 1;
  if (cc_worker_new(&cfg, &w, err, sizeof err) != CC_OK ||
      cc_worker_start(w, &port, err, sizeof err) != CC_OK) {
    fprintf(stderr, "codecanvas-worker: %s\n", err);
    goto out;
  }
  char host[64];
  const char *colon = strrchr(cfg.listen, ':');
  snprintf(host, sizeof host, "%.*s", (int)(colon - cfg.listen), cfg.listen);
  printf("codecanvas-worker: listening on http://%s:%d\n", host, port);
  fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  fprintf(stderr, "codecanvas-worker: %s received, shutting down\n",
          sig == SIGTERM ? "SIGTERM" : "SIGINT");
  cc_worker_shutdown(w, cfg.shutdown_grace_ms);
  fprintf(stderr, "codecanvas-worker: stopped\n");
  rc = 0;
out:
  cc_worker_free(w);
  cc_wconf_cleanup(&cfg);
  return rc;
}

/* Takes `--name value` out of argv (compacting it); returns the value or NULL. */
static const char *take(int *argc, char **argv, const char *name) {
  size_t n = strlen(name);
  for (int i = 3; i < *argc; i++) {
    const char *v = NULL;
    int used = 0;
    if (strcmp(argv[i], name) == 0 && i + 1 < *argc)
      v = argv[i + 1], used = 2;
    else if (strncmp(argv[i], name, n) == 0 && argv[i][n] == '=')
      v = argv[i] + n + 1, used = 1;
    if (!used) continue;
    memmove(&argv[i], &argv[i + used], (size_t)(*argc - i - used + 1) * sizeof *argv);
    *argc -= used;
    return v;
  }
  return NULL;
}

static int token_cmd(int argc, char **argv) {
  if (argc < 3) {
    usage(stderr);
    return 2;
  }
  const char *sub = argv[2];
  const char *user = take(&argc, argv, "--user");
  const char *label = take(&argc, argv, "--label");
  const char *id = take(&argc, argv, "--id");
  cc_wconf cfg;
  char err[512] = "";
  if (cc_wconf_init(&cfg) != CC_OK) return 1;
  if (cc_wconf_load(&cfg, argc, argv, 3, err, sizeof err) != CC_OK) {
    fprintf(stderr, "codecanvas-worker: %s\n", err);
    cc_wconf_cleanup(&cfg);
    return 2;
  }
  if (!user || !*user) {
    fprintf(stderr, "codecanvas-worker: token %s needs --user NAME\n", sub);
    cc_wconf_cleanup(&cfg);
    return 2;
  }
  cc_store_options so;
  cc_store_options_init(&so);
  so.path = cfg.db;
  cc_store *s = NULL;
  int rc = 1;
  cc_status st = cc_store_open(&so, &s, err, sizeof err);
  if (st != CC_OK) {
    char shown[512];
    cc_store_display_name(cfg.db, shown, sizeof shown);
    fprintf(stderr, "codecanvas-worker: cannot open %s: %s\n", shown, err);
    goto out;
  }
  if (strcmp(sub, "create") == 0) {
    char tok[CC_WTOKEN_LEN + 1], hex[CC_WTOKEN_HASH_LEN + 1];
    if ((st = cc_store_user_ensure(s, user, NULL)) != CC_OK || (st = cc_wtoken_new(tok)) != CC_OK ||
        (st = cc_wtoken_hash(tok, strlen(tok), hex)) != CC_OK ||
        (st = cc_store_token_add(s, user, hex, label ? label : "", NULL)) != CC_OK) {
      cc_store_last_error(s, err, sizeof err);
      fprintf(stderr, "codecanvas-worker: token create: %s (%s)\n", cc_status_message(st), err);
      goto out;
    }
    printf("%s\n", tok);
    rc = 0;
  } else if (strcmp(sub, "list") == 0) {
    cJSON *list = NULL;
    if ((st = cc_store_token_list(s, user, &list)) != CC_OK) {
      fprintf(stderr, "codecanvas-worker: token list: %s\n", cc_status_message(st));
      goto out;
    }
    char *text = cJSON_Print(list);
    printf("%s\n", text ? text : "[]");
    free(text);
    cJSON_Delete(list);
    rc = 0;
  } else if (strcmp(sub, "revoke") == 0) {
    char *end = NULL;
    long long n = id ? strtoll(id, &end, 10) : 0;
    if (!id || *end || n <= 0) {
      fprintf(stderr, "codecanvas-worker: token revoke needs --id N (see token list)\n");
      rc = 2;
      goto out;
    }
    if ((st = cc_store_token_revoke(s, user, n)) != CC_OK) {
      fprintf(stderr, "codecanvas-worker: token revoke: %s\n", cc_status_message(st));
      goto out;
    }
    printf("revoked token %lld of %s\n", n, user);
    rc = 0;
  } else {
    usage(stderr);
    rc = 2;
  }
out:
  cc_store_close(s);
  cc_wconf_cleanup(&cfg);
  return rc;
}

/* `migrate --from FILE --to URI [--snapshot-dir DIR]`: prints one summary line.  Exit 0 when
 * copied, 1 when refused or failed (nothing written), 2 for a usage error.  Messages name the
 * target only through cc_store_display_name (never its password). */
static int migrate_cmd(int argc, char **argv) {
  static const char *const names[] = {"--from", "--to", "--snapshot-dir"};
  const char *vals[3] = {NULL, NULL, NULL};
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 0;
    }
    int k = -1;
    for (int j = 0; j < 3 && k < 0; j++) {
      size_t n = strlen(names[j]);
      if (strcmp(argv[i], names[j]) == 0 && i + 1 < argc)
        vals[k = j] = argv[++i];
      else if (strncmp(argv[i], names[j], n) == 0 && argv[i][n] == '=')
        vals[k = j] = argv[i] + n + 1;
    }
    if (k < 0) { /* the name only: a mistyped --to=URI must not print its password */
      fprintf(stderr, "codecanvas-worker: migrate: unknown argument %.*s\n",
              (int)strcspn(argv[i], "="), argv[i]);
      return 2;
    }
  }
  if (!vals[0] || !vals[1]) {
    fprintf(stderr, "codecanvas-worker: migrate needs --from FILE and --to postgresql://...\n");
    return 2;
  }
  cc_wmigrate_options mo = {.from = vals[0], .to = vals[1], .snapshot_dir = vals[2]};
  cc_wmigrate_counts n;
  char err[1024] = "", shown[512];
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  cc_status st = cc_wmigrate_run(&mo, &n, err, sizeof err);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if (st != CC_OK) {
    fprintf(stderr, "codecanvas-worker: migrate: %s\n", err);
    return 1;
  }
  cc_store_display_name(mo.to, shown, sizeof shown);
  char skipped[96] = "";
  if (n.snapshots_skipped)
    snprintf(skipped, sizeof skipped, ", %lld left out (no archive or unreadable metadata)",
             (long long)n.snapshots_skipped);
  printf(
      "codecanvas-worker: migrated %s to %s: %lld users, %lld tokens (%lld revoked), %lld "
      "projects, %lld cache entries, %lld records (%lld interrupted, now error/internal), "
      "%lld snapshots (%llu bytes%s) in %.1f s\n",
      mo.from, shown, (long long)n.users, (long long)n.tokens, (long long)n.revoked_tokens,
      (long long)n.projects, (long long)n.cache_entries, (long long)n.records,
      (long long)n.interrupted_records, (long long)n.snapshots,
      (unsigned long long)n.snapshot_bytes, skipped,
      (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
      strcmp(argv[1], "help") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("codecanvas-worker 0.1.0 (protocol 1)\n");
    return 0;
  }
  if (strcmp(argv[1], "serve") == 0) {
    for (int i = 2; i < argc; i++)
      if (strcmp(argv[i], "--help") == 0) {
        usage(stdout);
        return 0;
      }
    return serve(argc, argv);
  }
  if (strcmp(argv[1], "token") == 0) return token_cmd(argc, argv);
  if (strcmp(argv[1], "migrate") == 0) return migrate_cmd(argc, argv);
  if (strcmp(argv[1], "settings-markdown") == 0) {
    cc_wconf_markdown(stdout);
    return 0;
  }
  usage(stderr);
  return 2;
}
