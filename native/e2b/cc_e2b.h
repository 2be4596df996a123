/*
 * cc_e2b: the native E2B client (control-plane REST API + envd) over libcurl.
 *
 * Speaks the real E2B wire protocol (shared/reference/e2b-protocol.md, SDK 2.9.0 baseline):
 * the control plane (create, connect, kill, set timeout, get info) with X-API-Key, and envd
 * (process.Process Start as a Connect-JSON server stream, SendInput, SendSignal, List;
 * filesystem.Filesystem Stat, MakeDir, Move, ListDir, Remove as unary Connect-JSON; /files
 * upload and download).  codecanvas-sandboxd speaks the same protocol, so one client serves
 * both the E2B cloud and local sandboxes.
 *
 * Threading: one cc_e2b_client is meant to be shared by every thread of a program.  After
 * cc_e2b_client_new returns, every call on it is thread-safe.  Each call borrows its own
 * libcurl easy handle from a small pool in the client (handles keep their keep-alive
 * connections between calls, so repeated calls to the same host reuse TCP/TLS connections);
 * DNS and TLS sessions are shared between the pooled handles through a CURLSH.  Create the
 * client before starting threads (it runs curl_global_init once) and free it after they end.
 *
 * Errors: every function returns a cc_status (shared/cc_status.h) and, when `err` is not NULL,
 * fills a cc_e2b_error with the details of the last failure of that call.  The mapping (the
 * full table, one row per status, is docs/protocol.md "Upstream errors"):
 *   - unreachable (refused, reset, DNS, no connection in time, cut short) -> CC_SANDBOX_UNAVAILABLE;
 *     no answer in time once the request was sent -> CC_TIMEOUT; any TLS failure ->
 *     CC_UPSTREAM_ERROR
 *   - HTTP 401 from the API or envd, API 400/403 -> CC_UPSTREAM_ERROR (OUR credentials or
 *     request; never CC_UNAUTHORIZED, which in codecanvas means the end user's token)
 *   - 404 on a sandbox operation, or the proxy's 502 "sandbox was not found"
 *     -> CC_NOT_FOUND with err->sandbox_gone = true (the worker re-creates the sandbox)
 *   - envd about the user's request: not_found (file, directory, process) -> CC_NOT_FOUND
 *     with sandbox_gone = false; 403/permission_denied -> CC_FORBIDDEN; 400/invalid_argument/
 *     failed_precondition -> CC_BAD_REQUEST; 409/already_exists -> CC_CONFLICT
 *   - 429 -> CC_RATE_LIMITED; 502/503 -> CC_SANDBOX_UNAVAILABLE; 504 and deadlines -> CC_TIMEOUT
 *   - 413, 507 (no space left in the sandbox), a response or download above the configured
 *     limit -> CC_TOO_LARGE
 *   - any other status, a malformed response -> CC_UPSTREAM_ERROR
 *
 * Secrets: the API key is sent only in the X-API-Key header of control-plane requests.  It
 * never appears in an error message, a log line or a returned string (libcurl's verbose mode
 * is never enabled, and every message built from a server response is scrubbed of the key).
 * The envd access token is a per-sandbox credential; it is kept in cc_e2b_sandbox so the
 * caller can persist it, and is likewise never put in messages.
 *
 * Ownership: the config's strings are borrowed and copied by cc_e2b_client_new.  All input
 * pointers are borrowed for the duration of a call only.  Structures filled by the library
 * that own heap memory have a matching _cleanup/_free function (each accepts zeroed/NULL
 * input); cc_e2b_sandbox and cc_e2b_error are plain values with no heap memory.
 */
#ifndef CC_E2B_H
#define CC_E2B_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cc_status.h"

/* ---------------------------------------------------------------- configuration */

/* Settings, the way the official SDK reads them (reference §1.1), plus our limits.
 * Strings are borrowed; cc_e2b_client_new copies them.  NULL/0 means "the default". */
typedef struct cc_e2b_config {
  const char *api_key;        /* E2B_API_KEY; NULL/"" = send no X-API-Key header */
  const char *api_url;        /* E2B_API_URL; default "https://api.{domain}" */
  const char *domain;         /* E2B_DOMAIN; default "e2b.app" */
  const char *sandbox_url;    /* E2B_SANDBOX_URL: one envd origin for every sandbox;
                                 default "https://49983-<id>.<sandbox domain>" */
  const char *template_id;    /* default template for create; default "base" */
  const char *envd_user;      /* user for envd RPCs (Basic auth) and /files (username=);
                                 NULL = send none, envd picks its default user */
  int sandbox_timeout_s;      /* sandbox lifetime for create/connect; default 300 */
  long request_timeout_ms;    /* total time of one unary call; default 60000 */
  long connect_timeout_ms;    /* TCP+TLS connect time of every call; default 10000 */
  int keepalive_interval_s;   /* Keepalive-Ping-Interval for streams; default 50.  A stream
                                 silent for 2*interval+10 s is dropped (SANDBOX_UNAVAILABLE) */
  size_t max_response_bytes;  /* limit on one unary response body; default 4 MiB */
  size_t max_file_bytes;      /* limit on one upload or download; default 64 MiB */
  size_t max_envelope_bytes;  /* limit on one stream envelope payload; default 4 MiB */
  int pool_size;              /* idle transfers kept for reuse; default 8 */
  bool allow_internet_access; /* create's allow_internet_access; cc_e2b_config_init sets true */
  bool pause_on_timeout;      /* create's lifecycle: at its timeout the sandbox is paused, not
                                 killed (autoPause), and traffic resumes it (autoResume) */
} cc_e2b_config;

/* Fills *cfg with the defaults above (all strings NULL, allow_internet_access true). */
void cc_e2b_config_init(cc_e2b_config *cfg);

/* Overlays the SDK's environment variables onto *cfg: E2B_API_KEY, E2B_API_URL, E2B_DOMAIN,
 * E2B_SANDBOX_URL (only those that are set and non-empty).  The strings point into the
 * process environment (borrowed; do not modify the environment until the client is made). */
void cc_e2b_config_from_env(cc_e2b_config *cfg);

/* Reads an API key file: the first line, with surrounding whitespace removed.  On success
 * *key_out is a heap string the caller frees with cc_e2b_free (wipe it first if you care).
 * Returns CC_NOT_FOUND if the file cannot be opened, CC_BAD_REQUEST if it is empty,
 * CC_TOO_LARGE above 4 KiB. */
cc_status cc_e2b_read_key_file(const char *path, char **key_out);

/* Frees memory returned by this library (downloads, key files).  Accepts NULL. */
void cc_e2b_free(void *p);

/* ---------------------------------------------------------------- errors */

typedef struct cc_e2b_error {
  cc_status status;  /* same as the return value */
  int http_status;   /* HTTP status of the failing response, 0 if there was none */
  bool sandbox_gone; /* the sandbox no longer exists (404 on a sandbox op, proxy 502) */
  char code[32];     /* envd/Connect error code ("not_found", ...) when there was one */
  char message[512]; /* detailed, scrubbed message: never contains the API key */
} cc_e2b_error;

/* ---------------------------------------------------------------- client */

typedef struct cc_e2b_client cc_e2b_client;

/* Creates a client from *cfg (copied).  Returns CC_BAD_REQUEST for invalid settings (a URL
 * that is not http(s), negative limits) and CC_INTERNAL if libcurl cannot initialise.
 * Free with cc_e2b_client_free. */
cc_status cc_e2b_client_new(const cc_e2b_config *cfg, cc_e2b_client **out, cc_e2b_error *err);

/* Frees the client and its pooled handles.  No call may be in progress.  Accepts NULL. */
void cc_e2b_client_free(cc_e2b_client *c);

/* The effective control-plane base URL (no trailing slash).  Static for the client's life. */
const char *cc_e2b_client_api_url(const cc_e2b_client *c);

/* Counters since the client was made (for metrics): HTTP requests performed, and new TCP
 * connections they had to open (the rest reused a keep-alive connection). */
typedef struct cc_e2b_stats {
  unsigned long long requests;
  unsigned long long connections;
} cc_e2b_stats;
void cc_e2b_client_stats(cc_e2b_client *c, cc_e2b_stats *out);

/* ---------------------------------------------------------------- sandboxes */

/* One sandbox as create/connect describe it.  A plain value: copy it freely. */
typedef struct cc_e2b_sandbox {
  char id[64];                 /* sandboxID */
  char envd_access_token[256]; /* X-Access-Token for envd; "" if none was issued */
  char domain[256];            /* response "domain", else the configured domain */
  char envd_version[32];       /* e.g. "0.4.3" */
  char template_id[128];       /* resolved templateID from the response ("" if absent) */
  int internet;                /* outbound network as the server reports it: 1, 0, or -1 when
                                  it does not say (the E2B cloud; sandboxd says "internet") */
  char internet_reason[200];   /* internet == 0: sandboxd's "internetReason" */
  bool resumed;                /* connect found it paused and resumed it (HTTP 201) */
} cc_e2b_sandbox;

typedef struct cc_e2b_kv {
  const char *key;
  const char *value;
} cc_e2b_kv;

typedef struct cc_e2b_create_opts {
  const char *template_id;   /* NULL = the config's template */
  int timeout_s;             /* 0 = the config's sandbox_timeout_s */
  const cc_e2b_kv *metadata; /* sent as "metadata" if count > 0 */
  size_t metadata_count;
  const cc_e2b_kv *env_vars; /* sent as "envVars" if count > 0 */
  size_t env_vars_count;
} cc_e2b_create_opts;

/* POST /v2/sandboxes (what today's SDK sends) with secure:true, the config's
 * allow_internet_access and, with pause_on_timeout, autoPause:true and autoResume {enabled}.
 * opts may be NULL.  Fills *out.  A missing sandboxID/envdVersion is CC_UPSTREAM_ERROR;
 * a 404 (unknown template) is CC_UPSTREAM_ERROR too (a configuration error, not the user's). */
cc_status cc_e2b_create(cc_e2b_client *c, const cc_e2b_create_opts *opts, cc_e2b_sandbox *out,
                        cc_e2b_error *err);

/* POST /sandboxes/{id}/connect {"timeout":timeout_s} (0 = config default): extends the
 * lifetime of a running sandbox (resumes a paused one) and fills *out (including a fresh
 * access token and domain).  404 -> CC_NOT_FOUND with err->sandbox_gone. */
cc_status cc_e2b_connect(cc_e2b_client *c, const char *sandbox_id, int timeout_s,
                         cc_e2b_sandbox *out, cc_e2b_error *err);

/* DELETE /sandboxes/{id}.  404 -> CC_NOT_FOUND with err->sandbox_gone (callers that only
 * want it gone may treat that as success). */
cc_status cc_e2b_kill(cc_e2b_client *c, const char *sandbox_id, cc_e2b_error *err);

/* POST /sandboxes/{id}/timeout {"timeout":timeout_s}: expiry = now + timeout (may shorten).
 * 404 -> CC_NOT_FOUND with err->sandbox_gone. */
cc_status cc_e2b_set_timeout(cc_e2b_client *c, const char *sandbox_id, int timeout_s,
                             cc_e2b_error *err);

typedef struct cc_e2b_info {
  char id[64];
  char template_id[128];
  char alias[128];
  char state[16];      /* "running" | "paused" */
  char started_at[40]; /* RFC 3339 */
  char end_at[40];     /* RFC 3339 */
  char envd_version[32];
  int cpu_count;
  int memory_mb;
  int internet;              /* as in cc_e2b_sandbox: 1, 0, -1 = not said */
  char internet_reason[200];
} cc_e2b_info;

/* GET /sandboxes/{id}.  404 -> CC_NOT_FOUND with err->sandbox_gone. */
cc_status cc_e2b_get_info(cc_e2b_client *c, const char *sandbox_id, cc_e2b_info *out,
                          cc_e2b_error *err);

/* getHost semantics (no request): writes "<port>-<id>.<domain>" into buf.  Returns
 * CC_TOO_LARGE if it does not fit in n bytes (buf then holds ""). */
cc_status cc_e2b_host(const cc_e2b_sandbox *sb, int port, char *buf, size_t n);

/* GET {envd}/health: CC_OK on 204/200; a gone sandbox -> CC_NOT_FOUND/sandbox_gone. */
cc_status cc_e2b_health(cc_e2b_client *c, const cc_e2b_sandbox *sb, cc_e2b_error *err);

/* ---------------------------------------------------------------- processes */

typedef enum {
  CC_E2B_EVENT_START,  /* pid is set; always the first event */
  CC_E2B_EVENT_STDOUT, /* data/len: decoded bytes (any split, even inside UTF-8) */
  CC_E2B_EVENT_STDERR,
  CC_E2B_EVENT_PTY,
  CC_E2B_EVENT_END, /* exit_code, exited, status, error are set */
  CC_E2B_EVENT_KEEPALIVE
} cc_e2b_event_type;

typedef struct cc_e2b_event {
  cc_e2b_event_type type;
  uint32_t pid;     /* START */
  const char *data; /* STDOUT/STDERR/PTY; valid only during the callback */
  size_t len;
  int exit_code;      /* END: -1 when killed by a signal */
  bool exited;        /* END: true if the process exited (not signalled) */
  const char *status; /* END: "exit status 3", "signal: killed"; never NULL */
  const char *error;  /* END: error text or "" */
} cc_e2b_event;

/* What an event callback asks for next. */
typedef enum {
  CC_E2B_CONTINUE = 0, /* keep streaming */
  CC_E2B_CANCEL = 1,   /* stop, and SIGKILL the process in the sandbox */
  CC_E2B_DETACH = 2    /* stop reading but leave the process running (background start) */
} cc_e2b_action;

typedef cc_e2b_action (*cc_e2b_event_fn)(void *ctx, const cc_e2b_event *ev);

typedef struct cc_e2b_exec_opts {
  const char *cmd;         /* required.  With args == NULL it runs as the SDK does:
                              /bin/bash -l -c <cmd>.  Otherwise cmd is the program. */
  const char *const *args; /* argv after the program, or NULL */
  size_t args_count;
  const cc_e2b_kv *envs; /* per-process environment, or NULL */
  size_t envs_count;
  const char *cwd;          /* NULL = envd's default (the user's home) */
  const char *tag;          /* optional process tag, NULL = none */
  bool stdin_enabled;       /* true: stdin is a pipe you feed with cc_e2b_send_input */
  long timeout_ms;          /* Connect-Timeout-Ms: envd SIGKILLs the process at this
                               deadline; the call returns CC_TIMEOUT.  0 = no deadline */
  atomic_int *cancel;       /* optional; set non-zero from any thread to cancel (the
                               process is SIGKILLed); polled every 100 ms */
  atomic_int *detach;       /* optional; set non-zero from any thread to stop watching and
                               leave the process running (res->detached); seen within ~1 s */
  uint16_t pty_cols, pty_rows; /* > 0: run on a pseudo-terminal of that size; its output
                               arrives as CC_E2B_EVENT_PTY (stdin is the terminal) */
  cc_e2b_event_fn on_event; /* optional; called on the calling thread, in order, as each
                               event arrives */
  void *ctx;
} cc_e2b_exec_opts;

typedef struct cc_e2b_exec_result {
  uint32_t pid; /* 0 if the process never started */
  bool started;
  bool ended; /* an end event arrived */
  int exit_code;
  bool exited;
  bool canceled;    /* stopped by CC_E2B_CANCEL or *cancel; the process was
                       SIGKILLed and its end confirmed before returning */
  bool detached;    /* stopped by CC_E2B_DETACH (process still running) */
  bool kill_failed; /* canceled, but the SIGKILL failed or its end was not seen */
  bool timed_out;   /* the timeout_ms deadline passed (the call returns CC_TIMEOUT) */
  char status[64];
  char error[256];
} cc_e2b_exec_result;

/* Runs POST /process.Process/Start as a Connect-JSON server stream and delivers every
 * event to opts->on_event as it arrives (so callers can stream output to their client).
 * Returns CC_OK once the stream ended normally (res->ended; any exit code), or after a
 * cancel (res->canceled) or detach (res->detached).  Returns CC_TIMEOUT when the
 * Connect-Timeout-Ms deadline passed (the process was killed by envd), CC_BAD_REQUEST for
 * a spawn failure such as a missing cwd (end-stream invalid_argument), and the mapping in
 * the file comment otherwise.  There is no total timeout on the transfer apart from
 * timeout_ms + a grace period; a connection silent for 2*keepalive+10 s is dropped, and the
 * start event must arrive within request_timeout_ms.  res may be NULL. */
cc_status cc_e2b_exec(cc_e2b_client *c, const cc_e2b_sandbox *sb, const cc_e2b_exec_opts *opts,
                      cc_e2b_exec_result *res, cc_e2b_error *err);

/* Connect: re-attaches to the running process `pid` and streams its live events exactly as
 * cc_e2b_exec does (a start event, then output produced from now on, then end).  Only
 * opts->on_event, ctx, cancel and timeout_ms are used; timeout_ms > 0 is a client-side limit
 * (CC_TIMEOUT, the process keeps running).  CC_E2B_CANCEL SIGKILLs the process, DETACH just
 * stops watching.  Unknown pid -> CC_NOT_FOUND.  opts and res may be NULL (then it simply
 * waits for the process to end). */
cc_status cc_e2b_attach(cc_e2b_client *c, const cc_e2b_sandbox *sb, uint32_t pid,
                        const cc_e2b_exec_opts *opts, cc_e2b_exec_result *res, cc_e2b_error *err);

/* SendInput: writes len bytes to the stdin of pid.  Unknown pid -> CC_NOT_FOUND. */
cc_status cc_e2b_send_input(cc_e2b_client *c, const cc_e2b_sandbox *sb, uint32_t pid,
                            const void *data, size_t len, cc_e2b_error *err);

/* SendInput to a process started with a PTY: len bytes typed into its terminal. */
cc_status cc_e2b_send_pty_input(cc_e2b_client *c, const cc_e2b_sandbox *sb, uint32_t pid,
                                const void *data, size_t len, cc_e2b_error *err);

/* Update: resizes the PTY of pid (the program gets SIGWINCH). */
cc_status cc_e2b_pty_resize(cc_e2b_client *c, const cc_e2b_sandbox *sb, uint32_t pid,
                            uint16_t cols, uint16_t rows, cc_e2b_error *err);

/* SendSignal: signal is 9 (SIGKILL) or 15 (SIGTERM); others -> CC_BAD_REQUEST without a
 * request.  Unknown pid -> CC_NOT_FOUND. */
cc_status cc_e2b_send_signal(cc_e2b_client *c, const cc_e2b_sandbox *sb, uint32_t pid, int signal,
                             cc_e2b_error *err);

typedef struct cc_e2b_process {
  uint32_t pid;
  char *tag; /* NULL if none */
  char *cmd;
  char **args;
  size_t args_count;
  char *cwd; /* NULL if none */
} cc_e2b_process;

typedef struct cc_e2b_process_list {
  cc_e2b_process *items;
  size_t count;
} cc_e2b_process_list;

/* List: running processes.  Free *out with cc_e2b_process_list_cleanup. */
cc_status cc_e2b_list_processes(cc_e2b_client *c, const cc_e2b_sandbox *sb,
                                cc_e2b_process_list *out, cc_e2b_error *err);
void cc_e2b_process_list_cleanup(cc_e2b_process_list *l);

/* ---------------------------------------------------------------- filesystem */

typedef enum {
  CC_E2B_FILE_UNKNOWN = 0,
  CC_E2B_FILE_FILE = 1,
  CC_E2B_FILE_DIR = 2,
  CC_E2B_FILE_SYMLINK = 3
} cc_e2b_file_type;

typedef struct cc_e2b_entry {
  char *name;
  char *path;
  cc_e2b_file_type type;
  int64_t size;
  uint32_t mode;        /* permission bits */
  char *permissions;    /* "-rw-r--r--"; "" if absent */
  char *owner;          /* "" if absent */
  char *group;          /* "" if absent */
  char *modified_time;  /* RFC 3339; "" if absent */
  char *symlink_target; /* NULL unless a symlink */
} cc_e2b_entry;

typedef struct cc_e2b_entry_list {
  cc_e2b_entry *items;
  size_t count;
} cc_e2b_entry_list;

void cc_e2b_entry_cleanup(cc_e2b_entry *e);
void cc_e2b_entry_list_cleanup(cc_e2b_entry_list *l);

/* Stat.  Missing -> CC_NOT_FOUND.  out may be NULL (an existence check). */
cc_status cc_e2b_stat(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *path,
                      cc_e2b_entry *out, cc_e2b_error *err);

/* MakeDir (mkdir -p).  Already a directory -> CC_CONFLICT.  out may be NULL. */
cc_status cc_e2b_make_dir(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *path,
                          cc_e2b_entry *out, cc_e2b_error *err);

/* Move source to destination (creates parents).  Missing source -> CC_NOT_FOUND. */
cc_status cc_e2b_move(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *source,
                      const char *destination, cc_e2b_entry *out, cc_e2b_error *err);

/* ListDir up to depth levels (depth < 1 is treated as 1).  Missing -> CC_NOT_FOUND,
 * not a directory -> CC_BAD_REQUEST.  Free *out with cc_e2b_entry_list_cleanup. */
cc_status cc_e2b_list_dir(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *path, int depth,
                          cc_e2b_entry_list *out, cc_e2b_error *err);

/* Remove recursively.  A missing path is not an error (envd semantics). */
cc_status cc_e2b_remove(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *path,
                        cc_e2b_error *err);

/* POST /files?path=<path> (multipart, one "file" part): creates parents, overwrites.
 * If out_path is not NULL it receives the absolute path envd reports (truncated to n). */
cc_status cc_e2b_write_file(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *path,
                            const void *data, size_t len, char *out_path, size_t out_path_n,
                            cc_e2b_error *err);

/* GET /files?path=<path>: the raw bytes.  On success *data_out is a heap buffer of *len_out
 * bytes plus a terminating NUL (not counted), freed with cc_e2b_free.  Missing ->
 * CC_NOT_FOUND; a directory -> CC_BAD_REQUEST; larger than max_bytes (0 = the config's
 * max_file_bytes) -> CC_TOO_LARGE. */
cc_status cc_e2b_read_file(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *path,
                           size_t max_bytes, char **data_out, size_t *len_out, cc_e2b_error *err);

#endif
