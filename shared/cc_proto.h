/*
 * cc_proto: the protocol v1 codec (DESIGN §4), shared by the worker and the wasm client.
 *
 * It decodes requests with full validation (types, required fields, projectId and path
 * syntax, limits), encodes requests, responses and stream events, decodes responses and
 * events, and offers small helpers (base64, UTF-8 sanitising, ExecutionResult objects) so
 * that the worker and the client never hand-build protocol JSON.  Every limit is a field
 * of cc_proto_limits, chosen by the caller at creation; passing one is a distinct error.
 *
 * Ownership (one rule for the whole API):
 *   - A decoded message (cc_request, cc_response, cc_event) lives in caller-owned storage
 *     and owns everything it points to, including its parsed cJSON document.  Release it
 *     with the matching *_cleanup(), which accepts zeroed or already-cleaned storage.
 *     Every pointer inside (strings, cJSON nodes) is valid until then; never free them.
 *   - Every `char **out` text produced by an encoder is allocated by cJSON's allocator;
 *     release it with cc_proto_free() (never plain free()).
 *   - Every `cJSON **out` tree produced here is released by the caller with cJSON_Delete().
 *   - `unsigned char **out` / `char **out` from the base64 and UTF-8 helpers are released
 *     with cc_proto_free() as well.
 *   - const cJSON * parameters are borrowed and never modified or kept.
 * No function here keeps global state; all of it is safe to call from several threads
 * on different objects.
 */
#ifndef CC_PROTO_H
#define CC_PROTO_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cc_status.h"

#define CC_PROTO_VERSION 1
#define CC_PROTO_HOME "/home/user" /* relative paths are relative to this; none escape it */

/* ---------------------------------------------------------------- limits */

/* Limits of one codec user, set once at creation (worker config, client connect). */
typedef struct {
  size_t max_body_bytes;     /* request body; default 1 MiB                      -> too_large */
  int max_depth;             /* request JSON nesting (object/array); default 32  -> too_deep */
  size_t max_string_bytes;   /* cmd, install, env values, cursors...; 64 KiB     -> too_large */
  size_t max_path_bytes;     /* a path as sent and as normalised; 4096           -> bad_path */
  size_t max_file_bytes;     /* decoded content of one file / stdin; 1 MiB       -> too_large */
  size_t max_files;          /* setupProject files[]; 1000                        -> too_large */
  size_t max_env;            /* exec env entries; 256                             -> too_large */
  int64_t max_timeout_ms;    /* exec timeoutMs upper bound; 3600000 (1 h)         -> bad_value */
  int max_list_depth;        /* listDir depth upper bound; 16                     -> bad_value */
  int max_history_limit;     /* getHistory limit upper bound; 1000                -> bad_value */
  size_t max_response_bytes; /* response / NDJSON line the client accepts; 64 MiB -> too_large */
  int max_response_depth;    /* response nesting the client accepts; 64           -> too_deep */
} cc_proto_limits;

/* The documented defaults (docs/protocol.md). */
cc_proto_limits cc_proto_limits_default(void);

/* The request-side limits as hello's `limits` object {maxBodyBytes, maxDepth,
 * maxStringBytes, maxPathBytes, maxFileBytes, maxFiles, maxEnv, maxTimeoutMs, maxListDepth,
 * maxHistoryLimit}; *out: cJSON_Delete(). */
cc_status cc_proto_limits_to_json(const cc_proto_limits *lim, cJSON **out);

#define CC_PROTO_MAX_ID_BYTES 128     /* request id, executionId, before cursor */
#define CC_PROTO_MAX_PROJECT_BYTES 64 /* projectId: [A-Za-z0-9][A-Za-z0-9._-]{0,63} */

/* ---------------------------------------------------------------- ops */

/* clang-format off */
/*       enum               wire name          project  streams */
#define CC_PROTO_OP_MAP(X)                                       \
  X(HELLO,            "hello",           false,   false)         \
  X(EXEC,             "exec",            true,    true)          \
  X(WRITE_FILE,       "writeFile",       true,    false)         \
  X(READ_FILE,        "readFile",        true,    false)         \
  X(LIST_DIR,         "listDir",         true,    false)         \
  X(SETUP_PROJECT,    "setupProject",    true,    true)          \
  X(START_DEV_SERVER, "startDevServer",  true,    false)         \
  X(KILL_PROCESS,     "killProcess",     true,    false)         \
  X(LIST_PROCESSES,   "listProcesses",   true,    false)         \
  X(GET_HISTORY,      "getHistory",      true,    false)         \
  X(GET_RESULT,       "getResult",       false,   false)         \
  X(GET_PROJECT,      "getProject",      true,    false)         \
  X(UPDATE_PROJECT,   "updateProject",   true,    false)         \
  X(LIST_PROJECTS,    "listProjects",    false,   false)         \
  X(DELETE_PROJECT,   "deleteProject",   true,    false)         \
  X(CLEAR_CACHE,      "clearCache",      true,    false)
/* clang-format on */

/* clang-format off */
typedef enum {
#define CC_PROTO_OP_ENUM(name, wire, project, streams) CC_OP_##name,
  CC_PROTO_OP_MAP(CC_PROTO_OP_ENUM)
#undef CC_PROTO_OP_ENUM
  CC_OP_COUNT
} cc_proto_op;
/* clang-format on */

const char *cc_proto_op_name(cc_proto_op op); /* "exec"; "" when out of range */
bool cc_proto_op_from_name(const char *name, cc_proto_op *out);
bool cc_proto_op_needs_project(cc_proto_op op); /* project required (else optional) */
bool cc_proto_op_streams(cc_proto_op op);       /* "stream":true allowed */

/* ---------------------------------------------------------------- errors */

/* Why a message was rejected.  Each class is distinct and machine-readable (`reason` in
 * the error object).  TOO_LARGE maps to CC_TOO_LARGE (413); every other to CC_BAD_REQUEST. */
/* clang-format off */
#define CC_PROTO_REASON_MAP(X)   \
  X(NONE,          "none")          \
  X(NOT_JSON,      "not_json")      \
  X(WRONG_TYPE,    "wrong_type")    \
  X(MISSING_FIELD, "missing_field") \
  X(TOO_DEEP,      "too_deep")      \
  X(TOO_LARGE,     "too_large")     \
  X(BAD_PROJECT,   "bad_project")   \
  X(BAD_PATH,      "bad_path")      \
  X(UNKNOWN_OP,    "unknown_op")    \
  X(BAD_VERSION,   "bad_version")   \
  X(BAD_VALUE,     "bad_value")
/* clang-format on */

/* clang-format off */
typedef enum {
#define CC_PROTO_REASON_ENUM(name, wire) CC_REASON_##name,
  CC_PROTO_REASON_MAP(CC_PROTO_REASON_ENUM)
#undef CC_PROTO_REASON_ENUM
  CC_REASON_COUNT
} cc_proto_reason;
/* clang-format on */

const char *cc_proto_reason_name(cc_proto_reason r); /* "not_json"; "none" when out of range */
bool cc_proto_reason_from_name(const char *name, cc_proto_reason *out);

/* A decode failure.  Caller-owned, fixed size, nothing to free. */
typedef struct {
  cc_status status; /* CC_BAD_REQUEST or CC_TOO_LARGE; CC_INTERNAL only when out of
                     * memory (reason NONE); CC_OK when there was no error */
  cc_proto_reason reason;
  char field[64];    /* offending field as a dotted path ("args.files[2].path"), or "" */
  char message[256]; /* clear, human-readable; never contains request content */
  char id[CC_PROTO_MAX_ID_BYTES + 1]; /* the request id if it could be read, else "" */
} cc_proto_error;

/* ---------------------------------------------------------------- requests */

typedef enum { CC_ENC_UTF8 = 0, CC_ENC_BASE64 = 1 } cc_proto_encoding;
const char *cc_proto_encoding_name(cc_proto_encoding e); /* "utf8" | "base64" */

typedef struct {
  const char *name; /* [A-Za-z_][A-Za-z0-9_]* */
  const char *value;
} cc_proto_env_var;

typedef struct {
  const char *cmd;       /* non-empty */
  const char *cwd;       /* normalised absolute path, or NULL (server default) */
  cc_proto_env_var *env; /* env_count entries in the order sent */
  size_t env_count;
  int64_t timeout_ms;     /* 0 = not given (server default); else 1..max_timeout_ms */
  bool use_cache;         /* default true */
  bool read_only;         /* default false */
  const char *stdin_data; /* NULL when absent */
  size_t stdin_len;
} cc_proto_exec_args;

typedef struct {
  const char *path;             /* normalised absolute path, never CC_PROTO_HOME itself */
  const unsigned char *content; /* decoded bytes (base64 already decoded); NUL-terminated */
  size_t content_len;
  cc_proto_encoding encoding; /* as sent (default utf8) */
} cc_proto_file;

typedef struct {
  cc_proto_file file;
} cc_proto_write_file_args;
typedef struct {
  const char *path;
  cc_proto_encoding encoding;
} cc_proto_read_file_args;
typedef struct {
  const char *path;
  int depth;
} cc_proto_list_dir_args; /* path default HOME, depth 1 */
typedef struct {
  cc_proto_file *files; /* file_count entries, may be 0 */
  size_t file_count;
  const char *install; /* NULL when absent */
} cc_proto_setup_project_args;
typedef struct {
  int port;
  const char *cmd;
  const char *cwd;
} cc_proto_start_dev_server_args;
typedef struct {
  int64_t pid;
} cc_proto_kill_process_args;
typedef struct {
  int limit;
  const char *before;
} cc_proto_get_history_args; /* 50, NULL */
typedef struct {
  const char *execution_id;
} cc_proto_get_result_args;
typedef struct {
  const cJSON *patch;
} cc_proto_update_project_args; /* a JSON object */
typedef struct {
  const char *cmd;
} cc_proto_clear_cache_args; /* NULL = whole project */

/* A validated request.  Strings are NUL-terminated UTF-8 without NUL inside. */
typedef struct {
  int v;          /* always 1 */
  const char *id; /* 1..128 bytes */
  cc_proto_op op;
  const char *project; /* valid projectId, or NULL when absent (optional ops) */
  bool stream;         /* only ever true for exec and setupProject */
  const cJSON *args;   /* args object as sent (empty object when absent): the `input` */
  union {              /* the member named after `op`; ops without args have none */
    cc_proto_exec_args exec;
    cc_proto_write_file_args write_file;
    cc_proto_read_file_args read_file;
    cc_proto_list_dir_args list_dir;
    cc_proto_setup_project_args setup_project;
    cc_proto_start_dev_server_args start_dev_server;
    cc_proto_kill_process_args kill_process;
    cc_proto_get_history_args get_history;
    cc_proto_get_result_args get_result;
    cc_proto_update_project_args update_project;
    cc_proto_clear_cache_args clear_cache;
  };
  /* private */
  cJSON *root_;
  void *heap_; /* owned allocations (normalised paths, decoded content, arrays) */
} cc_request;

/*
 * Decodes and validates one request body of `len` bytes (not NUL-terminated necessarily).
 * Size is checked before anything else, nesting depth by a bracket pre-scan before cJSON
 * runs (so no input can exhaust the stack), then JSON, then fields in a fixed order
 * (v, id, op, project, stream, args).  On CC_OK, *out holds the request; release it with
 * cc_request_cleanup().  On failure, *out is left cleaned (safe to clean again), `err`
 * (if not NULL) says why, and the return value is err->status.  `lim` NULL = defaults.
 */
cc_status cc_proto_parse_request(const char *buf, size_t len, const cc_proto_limits *lim,
                                 cc_request *out, cc_proto_error *err);
void cc_request_cleanup(cc_request *req);

/*
 * Encodes a request (client side).  `project` may be NULL for ops that take none; `args`
 * may be NULL (sent as {}).  The result is validated with cc_proto_parse_request() under
 * `lim` before it is handed out, so a client rejects locally exactly what the worker would
 * reject; on failure nothing is allocated and `err` says why.  *out: cc_proto_free().
 */
cc_status cc_proto_encode_request(const char *id, cc_proto_op op, const char *project, bool stream,
                                  const cJSON *args, const cc_proto_limits *lim, char **out,
                                  cc_proto_error *err);

/* Syntax checks used by the decoder, exposed for the worker, client and tests. */
bool cc_proto_valid_project_id(const char *s);
/*
 * Normalises `path` (len bytes) lexically: relative paths are taken relative to
 * CC_PROTO_HOME, "." and empty segments are dropped, ".." removes one segment.  The result
 * must be CC_PROTO_HOME or inside it, contain no NUL, and be at most `max_bytes` long
 * (input too).  Returns CC_OK with *out (cc_proto_free()) or CC_BAD_REQUEST.
 */
cc_status cc_proto_normalize_path(const char *path, size_t len, size_t max_bytes, char **out);

/* ---------------------------------------------------------------- responses */

/* Encodes {"v":1,"id":..,"ok":true,"result":..,"generation":N}.  `result` NULL = {};
 * generation < 0 omits the field (ops without a project).  *out: cc_proto_free(). */
cc_status cc_proto_encode_ok(const char *id, const cJSON *result, int64_t generation, char **out);

/* Encodes {"v":1,"id":..,"ok":false,"error":{"code","message","retryable","reason"?}}.
 * `id` NULL -> "id":null (the request id was unreadable).  `message` NULL -> the status's
 * default message; `reason` NULL omits it.  `status` must not be CC_OK. *out: cc_proto_free(). */
cc_status cc_proto_encode_error(const char *id, cc_status status, const char *message,
                                const char *reason, char **out);
/* The same for a decode failure: status, reason and message from `err`, id from err->id. */
cc_status cc_proto_encode_decode_error(const cc_proto_error *err, char **out);

typedef struct {
  cc_status status; /* from "code"; CC_INTERNAL if the code is unknown */
  const char *code; /* as sent */
  const char *message;
  bool retryable;
  const char *reason; /* NULL when absent */
} cc_proto_error_info;

typedef struct {
  int v;
  const char *id; /* NULL when "id":null */
  bool ok;
  const cJSON *result;       /* ok: the result object */
  int64_t generation;        /* -1 when absent */
  cc_proto_error_info error; /* !ok */
  cJSON *root_;              /* private */
} cc_response;

/* Decodes a response message under lim->max_response_bytes / max_response_depth.
 * Release with cc_response_cleanup(). */
cc_status cc_proto_parse_response(const char *buf, size_t len, const cc_proto_limits *lim,
                                  cc_response *out, cc_proto_error *err);
void cc_response_cleanup(cc_response *resp);

/* ---------------------------------------------------------------- stream events */

/* clang-format off */
#define CC_PROTO_EVENT_MAP(X) \
  X(START,  "start")          \
  X(STDOUT, "stdout")         \
  X(STDERR, "stderr")
/* clang-format on */

/* clang-format off */
typedef enum {
#define CC_PROTO_EVENT_ENUM(name, wire) CC_EVENT_##name,
  CC_PROTO_EVENT_MAP(CC_PROTO_EVENT_ENUM)
#undef CC_PROTO_EVENT_ENUM
  CC_EVENT_COUNT
} cc_proto_event_type;
/* clang-format on */

const char *cc_proto_event_name(cc_proto_event_type t);
bool cc_proto_event_from_name(const char *name, cc_proto_event_type *out);

/* Encodes one NDJSON event line WITHOUT the trailing newline:
 * {"id":..,"event":"stdout","data":"..."}.  For stdout/stderr `data` must be a string node
 * (use cc_proto_encode_output_event for raw bytes); for start it is an object such as
 * {"executionId":..,"pid":..} (NULL = {}).  *out: cc_proto_free(). */
cc_status cc_proto_encode_event(const char *id, cc_proto_event_type type, const cJSON *data,
                                char **out);
/* Same for raw output bytes: they are made valid UTF-8 first (cc_proto_utf8_sanitize). */
cc_status cc_proto_encode_output_event(const char *id, cc_proto_event_type type, const char *bytes,
                                       size_t len, char **out);

typedef struct {
  const char *id;
  cc_proto_event_type type;
  const char *text;  /* stdout/stderr data, else NULL */
  const cJSON *data; /* data as sent (string for output events, object for start) */
  cJSON *root_;      /* private */
} cc_event;

cc_status cc_proto_parse_event(const char *buf, size_t len, const cc_proto_limits *lim,
                               cc_event *out, cc_proto_error *err);
void cc_event_cleanup(cc_event *ev);

/* One line of an NDJSON stream: an event, or the final response. */
typedef struct {
  bool is_event;
  cc_event event;       /* is_event */
  cc_response response; /* !is_event */
} cc_proto_line;

/* Decodes one stream line (a trailing "\n" or "\r\n" is allowed). Release with
 * cc_proto_line_cleanup(). */
cc_status cc_proto_parse_line(const char *buf, size_t len, const cc_proto_limits *lim,
                              cc_proto_line *out, cc_proto_error *err);
void cc_proto_line_cleanup(cc_proto_line *line);

/* ---------------------------------------------------------------- results */

/* Record status lifecycle (DESIGN §4): pending -> running -> success|failed|error|timeout|canceled.
 */
/* clang-format off */
#define CC_PROTO_RECORD_STATUS_MAP(X) \
  X(PENDING,  "pending")              \
  X(RUNNING,  "running")              \
  X(SUCCESS,  "success")              \
  X(FAILED,   "failed")               \
  X(ERROR,    "error")                \
  X(TIMEOUT,  "timeout")              \
  X(CANCELED, "canceled")
/* clang-format on */

/* clang-format off */
typedef enum {
#define CC_PROTO_RS_ENUM(name, wire) CC_RECORD_##name,
  CC_PROTO_RECORD_STATUS_MAP(CC_PROTO_RS_ENUM)
#undef CC_PROTO_RS_ENUM
  CC_RECORD_STATUS_COUNT
} cc_proto_record_status;
/* clang-format on */

const char *cc_proto_record_status_name(cc_proto_record_status s);
bool cc_proto_record_status_from_name(const char *name, cc_proto_record_status *out);
/* True for the final statuses: success, failed, error, timeout, canceled. */
bool cc_proto_record_status_is_final(cc_proto_record_status s);

/* ExecutionResult {id, stdout, stderr, exitCode, duration, cached, status, truncated?,
 * sandboxRecreated?, sandboxRestored?, restoredFrom?}.  Strings are borrowed (builder) or point into the parsed tree (parser). */
typedef struct {
  const char *id;
  const char *stdout_text; /* valid UTF-8 (see cc_proto_utf8_sanitize) */
  const char *stderr_text;
  int exit_code; /* -1 when the command did not run to an exit */
  int64_t duration_ms;
  bool cached;
  cc_proto_record_status status;
  bool truncated;         /* emitted only when true */
  bool sandbox_recreated; /* emitted only when true */
  int64_t restored_from_ms; /* > 0: the new sandbox got the project's files back from the
                               snapshot taken then (ms since the epoch); emitted as
                               sandboxRestored: true, restoredFrom */
} cc_proto_exec_result;

/* Builds the JSON object; *out: cJSON_Delete(). */
cc_status cc_proto_exec_result_to_json(const cc_proto_exec_result *r, cJSON **out);
/* Reads one from `obj` (borrowed; strings point into it). CC_BAD_REQUEST if malformed. */
cc_status cc_proto_exec_result_from_json(const cJSON *obj, cc_proto_exec_result *out);

/* ---------------------------------------------------------------- helpers */

/* Frees text produced by this module (cJSON's allocator). Accepts NULL. */
void cc_proto_free(void *p);

/* Standard base64 (RFC 4648 §4) with padding. *out is NUL-terminated; cc_proto_free(). */
cc_status cc_proto_base64_encode(const unsigned char *data, size_t len, char **out,
                                 size_t *out_len);
/* Strict decode: padding required, no whitespace, no other alphabet.  CC_BAD_REQUEST when
 * malformed.  *out is NUL-terminated (not counted in *out_len); cc_proto_free(). */
cc_status cc_proto_base64_decode(const char *text, size_t len, unsigned char **out,
                                 size_t *out_len);

/* True when `len` bytes are valid UTF-8 without NUL (what a JSON or protobuf string carries
 * unchanged). */
bool cc_proto_utf8_valid(const char *bytes, size_t len);
/* Copies `len` bytes into valid UTF-8 text: invalid sequences and NUL become U+FFFD.
 * *out is NUL-terminated; cc_proto_free(). */
cc_status cc_proto_utf8_sanitize(const char *bytes, size_t len, char **out, size_t *out_len);
/* Length of the longest prefix of `bytes` that does not end inside a multi-byte sequence
 * that more bytes could complete: stream output in chunks and carry the rest over. */
size_t cc_proto_utf8_complete_prefix(const char *bytes, size_t len);

#endif
