/*
 * cc_status: the one status enum of codecanvas.
 *
 * Every function in shared/, native/ and wasm/ that can fail returns a cc_status and
 * hands its results out through out-parameters.  The enum maps one-to-one onto the
 * protocol v1 error codes and their HTTP statuses (DESIGN §4); CC_OK is "no error".
 * All names, codes, HTTP statuses and default messages come from the X-macro below,
 * so the tables can never drift apart.
 *
 * Ownership: every string returned here is static; callers never free it.
 */
#ifndef CC_STATUS_H
#define CC_STATUS_H

#include <stdbool.h>

/*       enum name            protocol code          HTTP  retryable  default message */
#define CC_STATUS_MAP(X)                                                                   \
  X(OK,                  "ok",                  200, false, "ok")                          \
  X(BAD_REQUEST,         "bad_request",         400, false, "bad request")                 \
  X(UNAUTHORIZED,        "unauthorized",        401, false, "missing or invalid token")    \
  X(FORBIDDEN,           "forbidden",           403, false, "forbidden")                   \
  X(NOT_FOUND,           "not_found",           404, false, "not found")                   \
  X(TOO_LARGE,           "too_large",           413, false, "too large")                   \
  X(RATE_LIMITED,        "rate_limited",        429, true,  "rate limit exceeded")         \
  X(TIMEOUT,             "timeout",             504, true,  "timed out")                   \
  X(SANDBOX_UNAVAILABLE, "sandbox_unavailable", 503, true,  "sandbox unavailable")         \
  X(UPSTREAM_ERROR,      "upstream_error",      502, true,  "upstream error")              \
  X(CONFLICT,            "conflict",            409, false, "conflict")                    \
  X(INTERNAL,            "internal",            500, false, "internal error")

typedef enum {
#define CC_STATUS_ENUM(name, code, http, retry, msg) CC_##name,
  CC_STATUS_MAP(CC_STATUS_ENUM)
#undef CC_STATUS_ENUM
  CC_STATUS_COUNT
} cc_status;

/* The protocol error code ("bad_request", ...); "internal" for out-of-range values. */
const char *cc_status_code(cc_status s);

/* The HTTP status that carries this code (200 for CC_OK, 500 for out-of-range values). */
int cc_status_http(cc_status s);

/* Whether a client may retry the same request later and expect a different outcome. */
bool cc_status_retryable(cc_status s);

/* A short human-readable default message. */
const char *cc_status_message(cc_status s);

/* Parses a protocol error code. Returns true and sets *out when `code` is known. */
bool cc_status_from_code(const char *code, cc_status *out);

#endif
