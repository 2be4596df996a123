/*
 * cc_proto: protocol v1 codec (see cc_proto.h for the API and its ownership rule,
 * docs/protocol.md for the wire format).  Skeleton: tables and limits are final; the
 * codec functions are being filled in.
 */
#include "cc_proto.h"

#include <stdlib.h>
#include <string.h>

cc_proto_limits cc_proto_limits_default(void) {
  cc_proto_limits l = {
      .max_body_bytes = 1u << 20,
      .max_depth = 32,
      .max_string_bytes = 64u << 10,
      .max_path_bytes = 4096,
      .max_file_bytes = 1u << 20,
      .max_files = 1000,
      .max_env = 256,
      .max_timeout_ms = 3600000,
      .max_list_depth = 16,
      .max_history_limit = 1000,
      .max_response_bytes = 64u << 20,
      .max_response_depth = 64,
  };
  return l;
}

/* ---------------------------------------------------------------- tables */

static const struct {
  const char *name;
  bool project;
  bool streams;
} op_rows[CC_OP_COUNT] = {
#define OP_ROW(name, wire, project, streams) {wire, project, streams},
    CC_PROTO_OP_MAP(OP_ROW)
#undef OP_ROW
};

const char *cc_proto_op_name(cc_proto_op op) {
  return (unsigned)op < CC_OP_COUNT ? op_rows[op].name : "";
}
bool cc_proto_op_needs_project(cc_proto_op op) {
  return (unsigned)op < CC_OP_COUNT && op_rows[op].project;
}
bool cc_proto_op_streams(cc_proto_op op) {
  return (unsigned)op < CC_OP_COUNT && op_rows[op].streams;
}
bool cc_proto_op_from_name(const char *name, cc_proto_op *out) {
  if (!name) return false;
  for (int i = 0; i < CC_OP_COUNT; i++)
    if (strcmp(op_rows[i].name, name) == 0) {
      *out = (cc_proto_op)i;
      return true;
    }
  return false;
}

static const char *const reason_names[CC_REASON_COUNT] = {
#define REASON_ROW(name, wire) wire,
    CC_PROTO_REASON_MAP(REASON_ROW)
#undef REASON_ROW
};
const char *cc_proto_reason_name(cc_proto_reason r) {
  return (unsigned)r < CC_REASON_COUNT ? reason_names[r] : "none";
}
bool cc_proto_reason_from_name(const char *name, cc_proto_reason *out) {
  if (!name) return false;
  for (int i = 0; i < CC_REASON_COUNT; i++)
    if (strcmp(reason_names[i], name) == 0) {
      *out = (cc_proto_reason)i;
      return true;
    }
  return false;
}

static const char *const event_names[CC_EVENT_COUNT] = {
#define EVENT_ROW(name, wire) wire,
    CC_PROTO_EVENT_MAP(EVENT_ROW)
#undef EVENT_ROW
};
const char *cc_proto_event_name(cc_proto_event_type t) {
  return (unsigned)t < CC_EVENT_COUNT ? event_names[t] : "";
}
bool cc_proto_event_from_name(const char *name, cc_proto_event_type *out) {
  if (!name) return false;
  for (int i = 0; i < CC_EVENT_COUNT; i++)
    if (strcmp(event_names[i], name) == 0) {
      *out = (cc_proto_event_type)i;
      return true;
    }
  return false;
}

static const char *const record_status_names[CC_RECORD_STATUS_COUNT] = {
#define RS_ROW(name, wire) wire,
    CC_PROTO_RECORD_STATUS_MAP(RS_ROW)
#undef RS_ROW
};
const char *cc_proto_record_status_name(cc_proto_record_status s) {
  return (unsigned)s < CC_RECORD_STATUS_COUNT ? record_status_names[s] : "";
}
bool cc_proto_record_status_from_name(const char *name, cc_proto_record_status *out) {
  if (!name) return false;
  for (int i = 0; i < CC_RECORD_STATUS_COUNT; i++)
    if (strcmp(record_status_names[i], name) == 0) {
      *out = (cc_proto_record_status)i;
      return true;
    }
  return false;
}

const char *cc_proto_encoding_name(cc_proto_encoding e) {
  return e == CC_ENC_BASE64 ? "base64" : "utf8";
}

void cc_proto_free(void *p) {
  if (p) cJSON_free(p);
}

/* ---------------------------------------------------------------- stubs (in progress) */

static cc_status not_yet(cc_proto_error *err) {
  if (err) {
    memset(err, 0, sizeof *err);
    err->status = CC_INTERNAL;
    strcpy(err->message, "not implemented yet");
  }
  return CC_INTERNAL;
}

cc_status cc_proto_parse_request(const char *buf, size_t len, const cc_proto_limits *lim,
                                 cc_request *out, cc_proto_error *err) {
  memset(out, 0, sizeof *out);
  return not_yet(err);
}
void cc_request_cleanup(cc_request *req) { if (req) memset(req, 0, sizeof *req); }
cc_status cc_proto_encode_request(const char *id, cc_proto_op op, const char *project,
                                  bool stream, const cJSON *args, const cc_proto_limits *lim,
                                  char **out, cc_proto_error *err) {
  *out = NULL;
  return not_yet(err);
}
bool cc_proto_valid_project_id(const char *s) { return false; }
cc_status cc_proto_normalize_path(const char *path, size_t len, size_t max_bytes, char **out) {
  *out = NULL;
  return CC_INTERNAL;
}
cc_status cc_proto_encode_ok(const char *id, const cJSON *result, int64_t generation,
                             char **out) {
  *out = NULL;
  return CC_INTERNAL;
}
cc_status cc_proto_encode_error(const char *id, cc_status status, const char *message,
                                const char *reason, char **out) {
  *out = NULL;
  return CC_INTERNAL;
}
cc_status cc_proto_encode_decode_error(const cc_proto_error *err, char **out) {
  *out = NULL;
  return CC_INTERNAL;
}
cc_status cc_proto_parse_response(const char *buf, size_t len, const cc_proto_limits *lim,
                                  cc_response *out, cc_proto_error *err) {
  memset(out, 0, sizeof *out);
  return not_yet(err);
}
void cc_response_cleanup(cc_response *resp) { if (resp) memset(resp, 0, sizeof *resp); }
cc_status cc_proto_encode_event(const char *id, cc_proto_event_type type, const cJSON *data,
                                char **out) {
  *out = NULL;
  return CC_INTERNAL;
}
cc_status cc_proto_encode_output_event(const char *id, cc_proto_event_type type,
                                       const char *bytes, size_t len, char **out) {
  *out = NULL;
  return CC_INTERNAL;
}
cc_status cc_proto_parse_event(const char *buf, size_t len, const cc_proto_limits *lim,
                               cc_event *out, cc_proto_error *err) {
  memset(out, 0, sizeof *out);
  return not_yet(err);
}
void cc_event_cleanup(cc_event *ev) { if (ev) memset(ev, 0, sizeof *ev); }
cc_status cc_proto_parse_line(const char *buf, size_t len, const cc_proto_limits *lim,
                              cc_proto_line *out, cc_proto_error *err) {
  memset(out, 0, sizeof *out);
  return not_yet(err);
}
void cc_proto_line_cleanup(cc_proto_line *line) { if (line) memset(line, 0, sizeof *line); }
cc_status cc_proto_exec_result_to_json(const cc_proto_exec_result *r, cJSON **out) {
  *out = NULL;
  return CC_INTERNAL;
}
cc_status cc_proto_exec_result_from_json(const cJSON *obj, cc_proto_exec_result *out) {
  memset(out, 0, sizeof *out);
  return CC_INTERNAL;
}
cc_status cc_proto_base64_encode(const unsigned char *data, size_t len, char **out,
                                 size_t *out_len) {
  *out = NULL;
  return CC_INTERNAL;
}
cc_status cc_proto_base64_decode(const char *text, size_t len, unsigned char **out,
                                 size_t *out_len) {
  *out = NULL;
  return CC_INTERNAL;
}
cc_status cc_proto_utf8_sanitize(const char *bytes, size_t len, char **out, size_t *out_len) {
  *out = NULL;
  return CC_INTERNAL;
}
size_t cc_proto_utf8_complete_prefix(const char *bytes, size_t len) { return len; }
