/*
 * cc_wconf: the configuration of codecanvas-worker.
 *
 * Every setting has one row in CC_WCONF_MAP: its config-file key, its command-line flag,
 * its environment variable, its default and a one-line description.  The row is the only
 * place a setting is declared; --help and the table in docs/worker.md are written from it.
 * Precedence, lowest first: built-in default, config file (--config / CODECANVAS_CONFIG),
 * environment, command line.  The config file is `key = value` lines; `#` starts a comment.
 *
 * The E2B API key is a secret: it is read from E2B_API_KEY, the config key `e2b_api_key`
 * or the file named by --e2b-api-key-file, never from a flag (flags show in `ps`), and
 * cc_wconf never prints it.
 *
 * Ownership: a cc_wconf owns every string in it; cc_wconf_cleanup frees them all.
 */
#ifndef CC_WCONF_H
#define CC_WCONF_H

#include <stdio.h>

#include "cc_status.h"

// clang-format off
/* kind, field,                  key,                       flag,                       env,                           default, description */
#define CC_WCONF_MAP(X)                                                                                                   \
  X(STR, listen,                 "listen",                  "--listen",                 "CODECANVAS_LISTEN",           "127.0.0.1:8080", "address to listen on (IP:PORT; port 0 picks a free port)") \
  X(STR, db,                     "db",                      "--db",                     "CODECANVAS_DB",               "codecanvas.db", "the database (tokens, projects, records, cache): a SQLite file, or a PostgreSQL connection URI postgresql://USER@HOST:PORT/DB shared by several workers") \
  X(INT, db_connections,         "db_connections",          "--db-connections",         "CODECANVAS_DB_CONNECTIONS",   "32", "PostgreSQL: connections this worker opens at most (an operation holds one while it runs)") \
  X(STR, web,                    "web",                     "--web",                    "CODECANVAS_WEB",              "",  "static directories served for GET, comma-separated; DIR serves at /, PREFIX=DIR at PREFIX (repeat --web to add)") \
  X(STR, cors_origins,           "cors_origins",            "--cors-origins",           "CODECANVAS_CORS_ORIGINS",     "",  "origins allowed by CORS, comma-separated, or * for any (empty: no CORS headers)") \
  X(STR, access_log,             "access_log",              "--access-log",             "CODECANVAS_ACCESS_LOG",       "-", "JSON-lines access log file (- = stderr, empty = off)") \
  X(INT, access_log_flush_ms,    "access_log_flush_ms",     "--access-log-flush",       "CODECANVAS_ACCESS_LOG_FLUSH", "1000", "access log lines are buffered (64 KiB) and written at most this many ms after a request (0: each line at once)") \
  X(STR, e2b_api_key_file,       "e2b_api_key_file",        "--e2b-api-key-file",       "CODECANVAS_E2B_API_KEY_FILE", "",  "file holding the E2B API key (alternative to E2B_API_KEY)") \
  X(STR, e2b_domain,             "e2b_domain",              "--e2b-domain",             "E2B_DOMAIN",                  "e2b.app", "E2B domain (as the E2B SDK reads it)") \
  X(STR, e2b_api_url,            "e2b_api_url",             "--e2b-api-url",            "E2B_API_URL",                 "",  "E2B control-plane URL (empty: https://api.<domain>)") \
  X(STR, e2b_sandbox_url,        "e2b_sandbox_url",         "--e2b-sandbox-url",        "E2B_SANDBOX_URL",             "",  "envd URL for every sandbox (empty: https://49983-<id>.<domain>)") \
  X(STR, e2b_template,           "e2b_template",            "--e2b-template",           "CODECANVAS_E2B_TEMPLATE",     "base", "E2B template of new sandboxes") \
  X(INT, sandbox_timeout_s,      "sandbox_timeout_s",       "--sandbox-timeout",        "CODECANVAS_SANDBOX_TIMEOUT",  "300", "sandbox lifetime in seconds, renewed on use") \
  X(STR, sandbox_on_timeout,     "sandbox_on_timeout",      "--sandbox-on-timeout",     "CODECANVAS_SANDBOX_ON_TIMEOUT", "pause", "what E2B does with an idle project's sandbox at its timeout: pause (files and processes kept, resumed on the next operation) or kill") \
  X(STR, snapshot_dir,           "snapshot_dir",            "--snapshot-dir",           "CODECANVAS_SNAPSHOT_DIR",     "",  "where snapshots of projects' files are kept (empty: a snapshots/ directory beside a SQLite database, or the database itself when it is PostgreSQL; off: no snapshots)") \
  X(INT, snapshot_max_bytes,     "snapshot_max_bytes",      "--snapshot-max-bytes",     "CODECANVAS_SNAPSHOT_MAX_BYTES", "67108864", "largest snapshot of one project (bigger: heavy directories, then the largest entries, are left out and it says so)") \
  X(INT, snapshot_debounce_ms,   "snapshot_debounce_ms",    "--snapshot-debounce",      "CODECANVAS_SNAPSHOT_DEBOUNCE", "2000", "a project's files are snapshotted once it has been quiet this long (ms) after a change") \
  X(INT, cache_ttl_s,            "cache_ttl_s",             "--cache-ttl",              "CODECANVAS_CACHE_TTL",        "3600", "exec cache entry lifetime in seconds") \
  X(INT, history_limit,          "history_limit",           "--history-limit",          "CODECANVAS_HISTORY_LIMIT",    "1000", "execution records kept per project (older ones are pruned)") \
  X(INT, max_body_bytes,         "max_body_bytes",          "--max-body-bytes",         "CODECANVAS_MAX_BODY_BYTES",   "8388608", "largest request body (too_large, HTTP 413)") \
  X(INT, body_linger_ms,         "body_linger_ms",          "--body-linger",            "CODECANVAS_BODY_LINGER",      "10000", "after answering 413 to a body over max_body_bytes, how long (ms) the rest of it is read and dropped so that every client sees the answer (lingering close)") \
  X(INT, body_linger_bytes,      "body_linger_bytes",       "--body-linger-bytes",      "CODECANVAS_BODY_LINGER_BYTES", "67108864", "how many bytes past max_body_bytes are read and dropped at most; a sender past either bound is disconnected") \
  X(INT, max_file_bytes,         "max_file_bytes",          "--max-file-bytes",         "CODECANVAS_MAX_FILE_BYTES",   "4194304", "largest file written or read (too_large)") \
  X(INT, max_output_bytes,       "max_output_bytes",        "--max-output-bytes",       "CODECANVAS_MAX_OUTPUT_BYTES", "1048576", "stdout/stderr kept per stream in results and records (truncated:true)") \
  X(INT, max_inflight_per_user,  "max_inflight_per_user",   "--max-inflight-per-user",  "CODECANVAS_MAX_INFLIGHT_PER_USER", "16", "sandbox operations of one user running at once (conflict, HTTP 409)") \
  X(INT, rate_limit_per_s,       "rate_limit_per_s",        "--rate-limit",             "CODECANVAS_RATE_LIMIT",       "200", "requests per second per user, sustained (rate_limited, HTTP 429; 0 = off)") \
  X(INT, rate_limit_burst,       "rate_limit_burst",        "--rate-limit-burst",       "CODECANVAS_RATE_LIMIT_BURST", "400", "requests per user allowed in a burst") \
  X(INT, command_timeout_ms,     "command_timeout_ms",      "--command-timeout",        "CODECANVAS_COMMAND_TIMEOUT",  "60000", "default command timeout in ms (timeout, HTTP 504)") \
  X(INT, max_command_timeout_ms, "max_command_timeout_ms",  "--max-command-timeout",    "CODECANVAS_MAX_COMMAND_TIMEOUT", "600000", "largest timeoutMs a request may ask for (bad_request above it)") \
  X(INT, max_connections,        "max_connections",         "--max-connections",        "CODECANVAS_MAX_CONNECTIONS",  "1024", "HTTP connections served at once") \
  X(INT, http_threads,           "http_threads",            "--http-threads",           "CODECANVAS_HTTP_THREADS",     "0", "threads running the HTTP event loop (0: half the cores, at least one); slow operations run on their own threads") \
  X(INT, shutdown_grace_ms,      "shutdown_grace_ms",       "--shutdown-grace",         "CODECANVAS_SHUTDOWN_GRACE",   "5000", "on SIGTERM, how long in-flight work may finish before it is canceled") \
  X(STR, dev_server_cmd,         "dev_server_cmd",          "--dev-server-cmd",         "CODECANVAS_DEV_SERVER_CMD",   "python3 -m http.server {port}", "startDevServer's default command ({port} is replaced)")

// clang-format on

typedef struct cc_wconf {
#define CC_WCONF_FIELD_STR(f) char *f;
#define CC_WCONF_FIELD_INT(f) long f;
#define CC_WCONF_FIELD(kind, f, key, flag, env, def, doc) CC_WCONF_FIELD_##kind(f)
  CC_WCONF_MAP(CC_WCONF_FIELD)
#undef CC_WCONF_FIELD
#undef CC_WCONF_FIELD_STR
#undef CC_WCONF_FIELD_INT
  char *e2b_api_key; /* secret; NULL when none was given */
} cc_wconf;

/* Fills `c` with the built-in defaults.  Every string is heap-owned by `c`. */
cc_status cc_wconf_init(cc_wconf *c);

/* Frees every string of `c` (and wipes the API key).  Accepts a zeroed struct. */
void cc_wconf_cleanup(cc_wconf *c);

/*
 * Applies, in order: the config file (the value of --config in argv, else
 * CODECANVAS_CONFIG), the environment, then argv[first..argc-1] (`--flag value` or
 * `--flag=value`; --web accumulates).  Finally reads the API key (E2B_API_KEY, config key
 * e2b_api_key, or the key file).  On failure returns CC_BAD_REQUEST and writes one line
 * naming the setting (never its value) into err[errlen].
 */
cc_status cc_wconf_load(cc_wconf *c, int argc, char **argv, int first, char *err, size_t errlen);

/* Writes the settings table for --help. */
void cc_wconf_usage(FILE *out);

/* Writes the settings table as Markdown (docs/worker.md is generated from it). */
void cc_wconf_markdown(FILE *out);

#endif
