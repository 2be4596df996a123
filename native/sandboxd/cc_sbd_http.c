/*
 * cc_sbd_http: request routing, body handling, response helpers and the E2B control plane
 * (POST/GET/DELETE /sandboxes..., GET /v2/sandboxes) of codecanvas-sandboxd.
 *
 * Control-plane errors are JSON {"code":<HTTP status>,"message":...} with the numeric code the
 * SDK tests (e2b-protocol.md §1.3); no error is ever sent with an empty body.
 */
#include "cc_sbd_http.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cc_connect.h"
#include "cc_sbd_envd.h"
#include "cc_sbd_net.h"
#include "cc_sbx.h"
#include "cc_sbd_proxy.h"

/* ---------- response helpers ---------- */

enum MHD_Result cc_sbd_respond_raw(struct MHD_Connection *c, unsigned status, const char *ctype,
                                   const void *data, size_t len) {
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
  if (!resp) return MHD_NO;
  if (ctype) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  enum MHD_Result r = MHD_queue_response(c, status, resp);
  MHD_destroy_response(resp);
  return r;
}

enum MHD_Result cc_sbd_respond_empty(struct MHD_Connection *c, unsigned status) {
  return cc_sbd_respond_raw(c, status, NULL, "", 0);
}

enum MHD_Result cc_sbd_respond_json(struct MHD_Connection *c, unsigned status, cJSON *body) {
  char *s = body ? cJSON_PrintUnformatted(body) : NULL;
  cJSON_Delete(body);
  if (!s) {
    static const char oom[] = "{\"code\":500,\"message\":\"out of memory\"}";
    return cc_sbd_respond_raw(c, 500, "application/json; charset=utf-8", oom, sizeof oom - 1);
  }
  enum MHD_Result r = cc_sbd_respond_raw(c, status, "application/json; charset=utf-8", s, strlen(s));
  free(s);
  return r;
}

enum MHD_Result cc_sbd_respond_error(struct MHD_Connection *c, unsigned status, const char *fmt,
                                     ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "code", status);
  cJSON_AddStringToObject(o, "message", msg);
  return cc_sbd_respond_json(c, status, o);
}

enum MHD_Result cc_sbd_respond_connect_error(struct MHD_Connection *c, int code,
                                             const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "code", cc_connect_code_name((cc_connect_code)code));
  cJSON_AddStringToObject(o, "message", msg);
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  enum MHD_Result r = cc_sbd_respond_raw(c, (unsigned)cc_connect_code_http((cc_connect_code)code),
                                         "application/json", s ? s : "{}", s ? strlen(s) : 2);
  free(s);
  return r;
}

enum MHD_Result cc_sbd_respond_502(struct MHD_Connection *c, const char *sandbox_id, int port) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "sandboxId", sandbox_id ? sandbox_id : "");
  if (port < 0) {
    cJSON_AddStringToObject(o, "message", "The sandbox was not found");
  } else {
    cJSON_AddStringToObject(o, "message", "The sandbox is running but port is not open");
    cJSON_AddNumberToObject(o, "port", port);
  }
  cJSON_AddNumberToObject(o, "code", 502);
  return cc_sbd_respond_json(c, 502, o);
}

bool cc_sbd_req_fail(cc_sbd_req *r, unsigned status, const char *fmt, ...) {
  if (r->early_status) return false;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->early_msg, sizeof r->early_msg, fmt, ap);
  va_end(ap);
  r->early_status = status;
  return false;
}

const char *cc_sbd_header(struct MHD_Connection *c, const char *name) {
  return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

const char *cc_sbd_query(struct MHD_Connection *c, const char *name) {
  return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
}

void cc_sbd_rfc3339(int64_t ms, char *out, size_t out_size) {
  time_t s = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&s, &tm);
  char base[32];
  strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, out_size, "%s.%03dZ", base, (int)(ms % 1000));
}

/* ---------- control plane ---------- */

static bool valid_id(const char *s, size_t max) {
  size_t n = 0;
  for (; s[n]; n++) {
    if (!(islower((unsigned char)s[n]) || isdigit((unsigned char)s[n]))) return false;
  }
  return n > 0 && n <= max;
}

static bool string_map(const cJSON *o) {
  if (!cJSON_IsObject(o)) return false;
  const cJSON *it;
  cJSON_ArrayForEach(it, o) {
    if (!cJSON_IsString(it)) return false;
  }
  return true;
}

/* Network facts (sandboxd's own fields beside E2B's allowInternetAccess): whether the sandbox
 * really has egress, and why not when it has loopback only. */
static void add_network(cJSON *o, cc_sbd_sandbox *sb) {
  cc_sbx_info in = {0};
  if (sb->sbx) cc_sbx_get_info(sb->sbx, &in);
  pthread_mutex_lock(&sb->srv->mu);
  bool inet_access = sb->inet_access;
  pthread_mutex_unlock(&sb->srv->mu);
  cJSON_AddBoolToObject(o, "allowInternetAccess", inet_access);
  cJSON_AddBoolToObject(o, "internet", in.egress);
  if (!in.egress)
    cJSON_AddStringToObject(o, "internetReason",
                            !sb->srv->cfg.internet ? "sandboxd runs with --no-internet"
                            : in.egress_why[0]     ? in.egress_why
                                                   : "sandbox is not running");
}

/* The Sandbox JSON of create/connect. */
static cJSON *sandbox_json(cc_sbd_server *srv, cc_sbd_sandbox *sb) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "templateID", sb->template_id);
  cJSON_AddStringToObject(o, "sandboxID", sb->id);
  cJSON_AddStringToObject(o, "alias", sb->template_id);
  cJSON_AddStringToObject(o, "clientID", CC_SBD_CLIENT_ID);
  cJSON_AddStringToObject(o, "envdVersion", CC_SBD_ENVD_VERSION);
  if (sb->token[0]) cJSON_AddStringToObject(o, "envdAccessToken", sb->token);
  if (sb->traffic_token[0])
    cJSON_AddStringToObject(o, "trafficAccessToken", sb->traffic_token);
  else
    cJSON_AddNullToObject(o, "trafficAccessToken");
  cJSON_AddStringToObject(o, "domain", srv->domain);
  add_network(o, sb);
  return o;
}

/* SandboxDetail (detail=true) or ListedSandbox. */
static cJSON *detail_json(cc_sbd_server *srv, cc_sbd_sandbox *sb, bool detail) {
  char started[40], end[40];
  pthread_mutex_lock(&srv->mu);
  int64_t end_ms = sb->end_ms;
  pthread_mutex_unlock(&srv->mu);
  cc_sbd_rfc3339(sb->started_ms, started, sizeof started);
  cc_sbd_rfc3339(end_ms, end, sizeof end);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "templateID", sb->template_id);
  cJSON_AddStringToObject(o, "alias", sb->template_id);
  cJSON_AddStringToObject(o, "sandboxID", sb->id);
  cJSON_AddStringToObject(o, "clientID", CC_SBD_CLIENT_ID);
  cJSON_AddStringToObject(o, "startedAt", started);
  cJSON_AddStringToObject(o, "endAt", end);
  cJSON_AddNumberToObject(o, "cpuCount", (double)srv->cfg.cpu_count);
  cJSON_AddNumberToObject(o, "memoryMB", (double)srv->cfg.memory_mb);
  cJSON_AddNumberToObject(o, "diskSizeMB", (double)srv->cfg.disk_mb);
  pthread_mutex_lock(&srv->mu);
  bool paused = sb->state == CC_SBD_PAUSED, cold = sb->cold_resumed;
  pthread_mutex_unlock(&srv->mu);
  cJSON_AddStringToObject(o, "state", paused ? "paused" : "running");
  cJSON_AddStringToObject(o, "envdVersion", CC_SBD_ENVD_VERSION);
  cJSON_AddItemToObject(o, "metadata", cJSON_Duplicate(sb->metadata, 1));
  cJSON *life = cJSON_AddObjectToObject(o, "lifecycle");
  cJSON_AddStringToObject(life, "onTimeout", sb->auto_pause ? "pause" : "kill");
  cJSON_AddBoolToObject(life, "autoResume", sb->auto_resume);
  /* sandboxd's own: the last resume started it afresh (its processes did not survive) */
  if (cold) cJSON_AddTrueToObject(o, "coldResumed");
  add_network(o, sb);
  cc_sbd_net_add_json(o, sb);
  if (detail) {
    if (sb->token[0]) cJSON_AddStringToObject(o, "envdAccessToken", sb->token);
    cJSON_AddStringToObject(o, "domain", srv->domain);
  }
  return o;
}

static enum MHD_Result not_found_sandbox(struct MHD_Connection *c, const char *id) {
  return cc_sbd_respond_error(c, 404, "Sandbox \"%s\" doesn't exist or you don't have access to it",
                              id);
}

static cJSON *parse_body(cc_sbd_req *r) {
  if (!r->body || r->len == 0) return NULL;
  return cJSON_ParseWithLength(r->body, r->len);
}

/* Reads the integer `timeout` of a body; returns false (and responds 400) if invalid. */
static bool body_timeout(cc_sbd_req *r, const cJSON *body, bool required, long *out,
                         enum MHD_Result *res) {
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(body, "timeout");
  if (!t || cJSON_IsNull(t)) {
    if (required) {
      *res = cc_sbd_respond_error(r->conn, 400, "timeout is required");
      return false;
    }
    *out = r->srv->cfg.default_timeout_s;
    return true;
  }
  if (!cJSON_IsNumber(t) || t->valuedouble != (double)(long)t->valuedouble) {
    *res = cc_sbd_respond_error(r->conn, 400, "timeout must be an integer number of seconds");
    return false;
  }
  long v = (long)t->valuedouble;
  if (v <= 0) {
    *res = cc_sbd_respond_error(r->conn, 400, "Timeout must be greater than 0");
    return false;
  }
  if (v > r->srv->cfg.max_timeout_s) {
    *res = cc_sbd_respond_error(r->conn, 400, "Timeout cannot be greater than %ld seconds",
                                r->srv->cfg.max_timeout_s);
    return false;
  }
  *out = v;
  return true;
}

static bool template_allowed(cc_sbd_server *srv, const char *t) {
  for (size_t i = 0; i < srv->cfg.n_templates; i++)
    if (strcmp(srv->cfg.templates[i], t) == 0) return true;
  return false;
}

/* A create field asking for something a local server does not do, as the 501 message; NULL
 * when there is none.  (`network` is checked by cc_sbd_netcfg_parse.) */
static const char *unsupported_create_field(const cJSON *body) {
  const cJSON *mcp = cJSON_GetObjectItemCaseSensitive(body, "mcp");
  const cJSON *vol = cJSON_GetObjectItemCaseSensitive(body, "volumeMounts");
  if (mcp && !cJSON_IsNull(mcp)) return "the MCP gateway (mcp) is not supported by codecanvas-sandboxd";
  if (cJSON_IsArray(vol) && cJSON_GetArraySize(vol) > 0)
    return "volumes (volumeMounts) are not supported by codecanvas-sandboxd";
  return NULL;
}

/* POST /sandboxes (legacy: secure only when asked) and POST /v2/sandboxes (secure unless
 * "secure": false; today's SDK no longer sends the field and expects an access token). */
static enum MHD_Result handle_create(cc_sbd_req *r, bool v2) {
  enum MHD_Result res;
  cJSON *body = parse_body(r);
  if (!cJSON_IsObject(body)) {
    cJSON_Delete(body);
    return cc_sbd_respond_error(r->conn, 400, "request body must be a JSON object");
  }
  const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(body, "templateID");
  const cJSON *meta = cJSON_GetObjectItemCaseSensitive(body, "metadata");
  const cJSON *envs = cJSON_GetObjectItemCaseSensitive(body, "envVars");
  const cJSON *secure = cJSON_GetObjectItemCaseSensitive(body, "secure");
  const cJSON *inet = cJSON_GetObjectItemCaseSensitive(body, "allow_internet_access");
  const cJSON *autop = cJSON_GetObjectItemCaseSensitive(body, "autoPause");
  const cJSON *autopm = cJSON_GetObjectItemCaseSensitive(body, "autoPauseMemory");
  const cJSON *autor = cJSON_GetObjectItemCaseSensitive(body, "autoResume");
  const char *unsupported = unsupported_create_field(body);
  bool secure_on = v2 ? !cJSON_IsFalse(secure) : cJSON_IsTrue(secure);
  char netmsg[512] = "";
  cc_sbd_netcfg net;
  unsigned netst = cc_sbd_netcfg_parse(CC_SBD_NETCFG_CREATE,
                                       cJSON_GetObjectItemCaseSensitive(body, "network"), inet,
                                       &net, netmsg, sizeof netmsg);
  long timeout;
  if (!cJSON_IsString(tpl) || !tpl->valuestring[0]) {
    res = cc_sbd_respond_error(r->conn, 400, "templateID is required");
  } else if (!template_allowed(r->srv, tpl->valuestring)) {
    res = cc_sbd_respond_error(r->conn, 404, "template '%.200s' not found", tpl->valuestring);
  } else if ((meta && !cJSON_IsNull(meta) && !string_map(meta)) ||
             (envs && !cJSON_IsNull(envs) && !string_map(envs))) {
    res = cc_sbd_respond_error(r->conn, 400, "metadata and envVars must map strings to strings");
  } else if (unsupported) {
    res = cc_sbd_respond_error(r->conn, 501, "%s", unsupported);
  } else if (netst) {
    res = cc_sbd_respond_error(r->conn, netst, "%s", netmsg);
  } else if (net.n_domains && !r->srv->domain_rules) {
    res = cc_sbd_respond_error(r->conn, 501, "%s", CC_SBD_NO_DOMAIN_RULES);
  } else if (!net.public_traffic && !secure_on) {
    res = cc_sbd_respond_error(r->conn, 400, "network.allowPublicTraffic: false needs a secure "
                               "sandbox (secure: true)");
  } else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(autor, "enabled")) &&
             !cJSON_IsTrue(autop)) {
    res = cc_sbd_respond_error(r->conn, 400, "autoResume needs autoPause (onTimeout: pause)");
  } else if (body_timeout(r, body, false, &timeout, &res)) {
    cc_sbd_create_opts o = {
      .template_id = tpl->valuestring,
      .timeout_s = timeout,
      .metadata = cJSON_IsObject(meta) ? meta : NULL,
      .env_vars = cJSON_IsObject(envs) ? envs : NULL,
      .secure = secure_on,
      /* allowInternetAccess: false with allowOut entries is E2B's "deny all but these": the
       * sandbox needs its network helper, and the rules do the rest */
      .internet = net.allow_internet || net.n_allow > 0 || net.n_domains > 0,
      .inet_access = net.allow_internet,
      .net = &net,
      .auto_pause = cJSON_IsTrue(autop),
      .auto_pause_memory = !cJSON_IsFalse(autopm),
      .auto_resume = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(autor, "enabled")),
    };
    cc_sbd_sandbox *sb = NULL;
    char msg[512] = "";
    cc_status st = cc_sbd_create(r->srv, &o, &sb, msg, sizeof msg);
    if (st == CC_OK) {
      res = cc_sbd_respond_json(r->conn, 201, sandbox_json(r->srv, sb));
      cc_sbd_unref(sb);
    } else if (st == CC_RATE_LIMITED) {
      res = cc_sbd_respond_error(r->conn, 429, "%s", msg);
    } else if (st == CC_SANDBOX_UNAVAILABLE) {
      res = cc_sbd_respond_error(r->conn, 503, "could not start sandbox: %s", msg);
    } else {
      res = cc_sbd_respond_error(r->conn, 500, "could not start sandbox: %s", msg);
    }
  }
  cc_sbd_netcfg_cleanup(&net);
  cJSON_Delete(body);
  return res;
}

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* Percent-decodes [s, s+n) into a new string. */
static char *pct_decode(const char *s, size_t n) {
  char *out = malloc(n + 1);
  if (!out) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
      out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
      i += 2;
    } else if (s[i] == '+') {
      out[o++] = ' ';
    } else {
      out[o++] = s[i];
    }
  }
  out[o] = 0;
  return out;
}

/* Builds the metadata filter of GET /v2/sandboxes: "k=v&k2=v2" with each part encoded. */
static cJSON *metadata_filter(const char *q) {
  cJSON *f = cJSON_CreateObject();
  const char *p = q;
  while (f && *p) {
    const char *amp = strchr(p, '&');
    size_t n = amp ? (size_t)(amp - p) : strlen(p);
    const char *eq = memchr(p, '=', n);
    if (eq) {
      char *k = pct_decode(p, (size_t)(eq - p));
      char *v = pct_decode(eq + 1, n - (size_t)(eq - p) - 1);
      if (k && v) cJSON_AddStringToObject(f, k, v);
      free(k);
      free(v);
    }
    p += n;
    if (*p == '&') p++;
  }
  return f;
}

static bool metadata_matches(const cc_sbd_sandbox *sb, const cJSON *filter) {
  const cJSON *it;
  cJSON_ArrayForEach(it, filter) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(sb->metadata, it->string);
    if (!cJSON_IsString(v) || strcmp(v->valuestring, it->valuestring) != 0) return false;
  }
  return true;
}

static bool digits(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (!isdigit((unsigned char)s[i])) return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

/* Parses an RFC 3339 date-time ("2026-12-06T09:47:20.123Z", "2026-12-06T10:47:20+01:00";
 * fractions of any length, 't'/'z' in lower case) into milliseconds since the epoch.  A space
 * stands for the offset's '+', which an unencoded query string turns into one.  Returns false
 * for anything else, including dates that do not exist and leap seconds. */
static bool parse_rfc3339(const char *s, int64_t *ms) {
  int y, mo, d, h, mi, se;
  if (strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
      s[7] != '-' || !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
      !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
      !digits(s + 17, 2, &se) || y < 1970 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 ||
      se > 59)
    return false;
  const char *p = s + 19;
  int frac = 0, kept = 0;
  if (*p == '.') {
    const char *f = ++p;
    for (; isdigit((unsigned char)*p); p++)
      if (kept < 3) frac = frac * 10 + (*p - '0'), kept++;
    if (p == f) return false;
    for (; kept < 3; kept++) frac *= 10;
  }
  int off_min = 0;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-' || *p == ' ') {
    int oh, om;
    if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
      return false;
    off_min = (oh * 60 + om) * (*p == '-' ? -1 : 1);
    p += 6;
  } else {
    return false;
  }
  if (*p) return false;
  struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                  .tm_hour = h, .tm_min = mi, .tm_sec = se};
  time_t t = timegm(&tm);
  if (t == (time_t)-1 || tm.tm_mday != d || tm.tm_mon != mo - 1) return false; /* Feb 30 */
  *ms = ((int64_t)t - (int64_t)off_min * 60) * 1000 + frac;
  return true;
}

/* One sandbox of a listing, with the sort key read under the registry lock. */
typedef struct {
  cc_sbd_sandbox *sb;
  int64_t started_ms;
  uint64_t seq;
} listed;

static int listed_cmp(const void *a, const void *b) {
  const listed *x = a, *y = b;
  if (x->started_ms != y->started_ms) return x->started_ms < y->started_ms ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/*
 * GET /v2/sandboxes (paged=true) and GET /sandboxes (legacy, running only, unpaged).
 * Filters (all combined with AND): `state` (comma list), `metadata`, `template` (the template
 * ID or alias it was created from), `startedAfter` (RFC 3339; started at or after it).  The
 * result is sorted by start time (then creation order), `order=desc` (the default: newest
 * first) or `asc`, across the whole result before paging.  The page cursor (`nextToken`, sent
 * as `X-Next-Token`) is "<startedMs>-<seq>" of the last sandbox sent: the next page lists
 * those after it in the same order.  Bad values are 400s naming the parameter.
 */
static enum MHD_Result handle_list(cc_sbd_req *r, bool paged) {
  const char *state = cc_sbd_query(r->conn, "state");
  const char *meta = cc_sbd_query(r->conn, "metadata");
  const char *limit_s = cc_sbd_query(r->conn, "limit");
  const char *next_s = cc_sbd_query(r->conn, "nextToken");
  const char *order = paged ? cc_sbd_query(r->conn, "order") : NULL;
  const char *after_s = paged ? cc_sbd_query(r->conn, "startedAfter") : NULL;
  const char *tmpl = paged ? cc_sbd_query(r->conn, "template") : NULL;
  long limit = 100;
  bool asc = false, have_cursor = false;
  int64_t started_after = 0, cur_ms = 0;
  unsigned long long cur_seq = 0;
  if (paged && limit_s) {
    char *end;
    limit = strtol(limit_s, &end, 10);
    if (*end || limit < 1 || limit > 100)
      return cc_sbd_respond_error(r->conn, 400, "limit must be between 1 and 100");
  }
  if (order && order[0]) {
    if (strcmp(order, "asc") == 0) asc = true;
    else if (strcmp(order, "desc") != 0)
      return cc_sbd_respond_error(r->conn, 400, "invalid order '%.64s': must be asc or desc",
                                  order);
  }
  if (after_s && after_s[0] && !parse_rfc3339(after_s, &started_after))
    return cc_sbd_respond_error(r->conn, 400,
                                "invalid startedAfter '%.64s': must be an RFC 3339 date-time "
                                "such as 2026-01-02T15:04:05Z", after_s);
  if (tmpl && strlen(tmpl) >= sizeof ((cc_sbd_sandbox *)0)->template_id)
    return cc_sbd_respond_error(r->conn, 400, "template is too long");
  if (paged && next_s && next_s[0]) {
    long long ms;
    int used = 0;
    if (sscanf(next_s, "%lld-%llu%n", &ms, &cur_seq, &used) != 2 || next_s[used] || ms < 0 ||
        cur_seq == 0 || !isdigit((unsigned char)next_s[0]))
      return cc_sbd_respond_error(r->conn, 400, "invalid nextToken");
    cur_ms = ms;
    have_cursor = true;
  }
  /* unset: both on /v2 (E2B's default), running only on the legacy list */
  bool want_running = true, want_paused = paged;
  if (state && state[0]) {
    want_running = want_paused = false;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", state);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
      if (strcmp(tok, "running") == 0) want_running = true;
      else if (strcmp(tok, "paused") == 0) want_paused = true;
      else return cc_sbd_respond_error(r->conn, 400, "invalid state '%s'", tok);
    }
  }
  /* the SDK encodes keys and values, then the whole parameter once more (e2b-protocol §1.4) */
  char *meta_once = meta ? pct_decode(meta, strlen(meta)) : NULL;
  cJSON *filter = meta_once ? metadata_filter(meta_once) : NULL;
  free(meta_once);
  cc_sbd_sandbox **arr;
  size_t n;
  if (cc_sbd_list(r->srv, &arr, &n) != CC_OK) {
    cJSON_Delete(filter);
    return cc_sbd_respond_error(r->conn, 500, "out of memory");
  }
  listed *sel = malloc((n ? n : 1) * sizeof *sel);
  size_t m = 0;
  for (size_t i = 0; sel && i < n; i++) {
    cc_sbd_sandbox *sb = arr[i];
    pthread_mutex_lock(&r->srv->mu);
    bool paused = sb->state == CC_SBD_PAUSED;
    int64_t started = sb->started_ms;
    pthread_mutex_unlock(&r->srv->mu);
    if (!(paused ? want_paused : want_running) || started < started_after ||
        (tmpl && tmpl[0] && strcmp(sb->template_id, tmpl) != 0) ||
        (filter && !metadata_matches(sb, filter)))
      continue;
    sel[m++] = (listed){sb, started, sb->seq};
  }
  cJSON *out = sel ? cJSON_CreateArray() : NULL;
  long count = 0;
  bool more = false;
  listed last = {0};
  if (out) {
    qsort(sel, m, sizeof *sel, listed_cmp);
    for (size_t k = 0; k < m; k++) {
      const listed *l = &sel[asc ? k : m - 1 - k];
      if (have_cursor) {
        int c = listed_cmp(l, &(listed){NULL, cur_ms, cur_seq});
        if (asc ? c <= 0 : c >= 0) continue; /* on an earlier page */
      }
      if (paged && count == limit) {
        more = true; /* the next page lists those after the last one sent */
        break;
      }
      cJSON_AddItemToArray(out, detail_json(r->srv, l->sb, false));
      last = *l;
      count++;
    }
  }
  free(sel);
  for (size_t i = 0; i < n; i++) cc_sbd_unref(arr[i]);
  free(arr);
  cJSON_Delete(filter);
  if (!out) return cc_sbd_respond_error(r->conn, 500, "out of memory");
  char *s = cJSON_PrintUnformatted(out);
  cJSON_Delete(out);
  if (!s) return cc_sbd_respond_error(r->conn, 500, "out of memory");
  struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
  if (!resp) {
    free(s);
    return MHD_NO;
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json; charset=utf-8");
  if (more) {
    char tok[48];
    snprintf(tok, sizeof tok, "%lld-%llu", (long long)last.started_ms,
             (unsigned long long)last.seq);
    MHD_add_response_header(resp, "X-Next-Token", tok);
  }
  enum MHD_Result res = MHD_queue_response(r->conn, 200, resp);
  MHD_destroy_response(resp);
  return res;
}

/* The status of a lifecycle failure. */
static unsigned life_status(cc_status st) {
  switch (st) {
    case CC_NOT_FOUND: return 404;
    case CC_CONFLICT: return 409;
    case CC_RATE_LIMITED: return 429;
    default: return 500;
  }
}

/* connect (v2: timeout optional, default 300 s; legacy: required), resume (deprecated). */
static enum MHD_Result handle_connect(cc_sbd_req *r, cc_sbd_sandbox *sb, bool v2, bool resume) {
  enum MHD_Result res;
  cJSON *body = parse_body(r);
  long t = 300;
  if (!body && v2) body = cJSON_CreateObject();
  if (!cJSON_IsObject(body)) {
    res = cc_sbd_respond_error(r->conn, 400, "request body must be a JSON object");
  } else if (body_timeout(r, body, !v2 && !resume, &t, &res)) {
    if (t == 0) t = 300;
    const cJSON *mem = cJSON_GetObjectItemCaseSensitive(body, "memory");
    bool resumed = false;
    char msg[512] = "";
    pthread_mutex_lock(&r->srv->mu);
    bool paused = sb->state == CC_SBD_PAUSED;
    pthread_mutex_unlock(&r->srv->mu);
    cc_status st;
    if (resume && !paused) {
      st = CC_CONFLICT;
      snprintf(msg, sizeof msg, "sandbox %s is already running", sb->id);
    } else {
      st = cc_sbd_resume(r->srv, sb, t, cJSON_IsFalse(mem), &resumed, msg, sizeof msg);
    }
    res = st == CC_OK ? cc_sbd_respond_json(r->conn, resumed ? 201 : 200, sandbox_json(r->srv, sb))
                      : cc_sbd_respond_error(r->conn, life_status(st), "%s", msg);
  }
  cJSON_Delete(body);
  return res;
}

/* Query parameter NAME as Unix seconds (decimal digits only, at most 12 of them) into *out;
 * absent leaves *out alone.  False, with the 400 queued in *res, for anything else. */
static bool query_seconds(cc_sbd_req *r, const char *name, int64_t *out, enum MHD_Result *res) {
  const char *v = cc_sbd_query(r->conn, name);
  if (!v) return true;
  size_t n = strspn(v, "0123456789");
  if (n == 0 || n > 12 || v[n]) {
    *res = cc_sbd_respond_error(r->conn, 400,
                                "invalid %s '%.40s': must be a Unix time in seconds (an integer >= 0)",
                                name, v);
    return false;
  }
  *out = (int64_t)strtoll(v, NULL, 10);
  return true;
}

/* GET /sandboxes/{id}/metrics[?start=&end=]: the range is in Unix seconds, both ends included
 * (E2B's query parameters); sandboxd answers with the sample it takes now when now lies in
 * it, else [] (it keeps no history).  400 for a malformed bound or start after end. */
static enum MHD_Result handle_metrics(cc_sbd_req *r, cc_sbd_sandbox *sb) {
  enum MHD_Result res;
  int64_t from = 0, to = INT64_MAX;
  if (!query_seconds(r, "start", &from, &res) || !query_seconds(r, "end", &to, &res)) return res;
  if (from > to)
    return cc_sbd_respond_error(r->conn, 400, "start (%lld) must not be after end (%lld)",
                                (long long)from, (long long)to);
  return cc_sbd_respond_json(r->conn, 200, cc_sbd_metrics_json(r->srv, sb, from, to));
}

static enum MHD_Result handle_sandbox(cc_sbd_req *r, const char *id, const char *action,
                                      bool v2) {
  const char *m = r->method;
  if (!valid_id(id, 63)) return cc_sbd_respond_error(r->conn, 400, "Invalid sandbox ID");
  if (action && (strcmp(action, "snapshots") == 0 || strcmp(action, "fork") == 0))
    return cc_sbd_respond_error(r->conn, 501, "%s are not supported by codecanvas-sandboxd",
                                action[0] == 's' ? "snapshots" : "sandbox forks");
  cc_sbd_sandbox *sb = cc_sbd_find(r->srv, id);
  enum MHD_Result res;
  if (!sb) return not_found_sandbox(r->conn, id);
  if (v2 && (!action || strcmp(action, "connect") != 0)) {
    res = cc_sbd_respond_error(r->conn, 404, "no such endpoint");
  } else if (!action) {
    if (strcmp(m, "GET") == 0) {
      res = cc_sbd_respond_json(r->conn, 200, detail_json(r->srv, sb, true));
    } else if (strcmp(m, "DELETE") == 0) {
      res = cc_sbd_kill(r->srv, sb) == CC_OK ? cc_sbd_respond_empty(r->conn, 204)
                                              : not_found_sandbox(r->conn, id);
    } else {
      res = cc_sbd_respond_error(r->conn, 405, "method %s not allowed", m);
    }
  } else if (strcmp(action, "network") == 0) {
    res = cc_sbd_net_handle_update(r, sb);
  } else if (strcmp(action, "metrics") == 0) {
    res = strcmp(m, "GET") == 0 ? handle_metrics(r, sb)
                                : cc_sbd_respond_error(r->conn, 405, "method %s not allowed", m);
  } else if (strcmp(m, "POST") != 0) {
    res = cc_sbd_respond_error(r->conn, 405, "method %s not allowed", m);
  } else if (strcmp(action, "timeout") == 0) {
    cJSON *body = parse_body(r);
    long t;
    if (!cJSON_IsObject(body)) {
      res = cc_sbd_respond_error(r->conn, 400, "request body must be a JSON object");
    } else if (body_timeout(r, body, true, &t, &res)) {
      cc_sbd_set_timeout(r->srv, sb, t, false);
      res = cc_sbd_respond_empty(r->conn, 204);
    }
    cJSON_Delete(body);
  } else if (strcmp(action, "connect") == 0 || strcmp(action, "resume") == 0) {
    res = handle_connect(r, sb, v2, action[0] == 'r');
  } else if (strcmp(action, "pause") == 0) {
    cJSON *body = parse_body(r);
    const cJSON *mem = cJSON_GetObjectItemCaseSensitive(body, "memory");
    char msg[512] = "";
    cc_status st = cc_sbd_pause(r->srv, sb, !cJSON_IsFalse(mem), false, msg, sizeof msg);
    res = st == CC_OK ? cc_sbd_respond_empty(r->conn, 204)
                      : cc_sbd_respond_error(r->conn, life_status(st), "%s", msg);
    cJSON_Delete(body);
  } else {
    res = cc_sbd_respond_error(r->conn, 404, "no such endpoint");
  }
  cc_sbd_unref(sb);
  return res;
}

/* E2B API areas a local server does not offer: a clear 501 naming the feature. */
static const char *unsupported_area(const char *url) {
  static const struct {
    const char *prefix, *feature;
  } areas[] = {
      {"/templates", "templates (build, tags, aliases)"},
      {"/v2/templates", "templates (build, tags, aliases)"},
      {"/v3/templates", "templates (build, tags, aliases)"},
      {"/snapshots", "snapshots"},
      {"/volumes", "volumes"},
      {"/volumecontent", "volumes"},
      {"/secrets", "secrets"},
  };
  for (size_t i = 0; i < sizeof areas / sizeof areas[0]; i++) {
    size_t n = strlen(areas[i].prefix);
    if (strncmp(url, areas[i].prefix, n) == 0 && (url[n] == 0 || url[n] == '/'))
      return areas[i].feature;
  }
  return NULL;
}

/* Constant-time check of the X-API-KEY header against the configured keys. */
static bool api_key_ok(cc_sbd_server *srv, const char *key) {
  if (srv->cfg.no_api_key) return true;
  if (!key) return false;
  size_t kl = strlen(key);
  bool ok = false;
  for (size_t i = 0; i < srv->cfg.n_api_keys; i++) {
    const char *k = srv->cfg.api_keys[i];
    size_t l = strlen(k);
    unsigned char d = (unsigned char)(l != kl);
    for (size_t j = 0; j < l; j++) d |= (unsigned char)(k[j] ^ key[j < kl ? j : 0]);
    ok |= d == 0;
  }
  return ok;
}

static enum MHD_Result handle_control(cc_sbd_req *r) {
  const char *url = r->url;
  if (strcmp(url, "/health") == 0) return cc_sbd_respond_raw(r->conn, 200, "text/plain", "ok", 2);
  if (!api_key_ok(r->srv, cc_sbd_header(r->conn, "X-API-KEY")))
    return cc_sbd_respond_error(r->conn, 401, "Invalid API key");
  if (r->too_large) return cc_sbd_respond_error(r->conn, 413, "request body too large");
  if (strcmp(url, "/sandboxes") == 0) {
    if (strcmp(r->method, "POST") == 0) return handle_create(r, false);
    if (strcmp(r->method, "GET") == 0) return handle_list(r, false);
    return cc_sbd_respond_error(r->conn, 405, "method %s not allowed", r->method);
  }
  if (strcmp(url, "/v2/sandboxes") == 0) {
    if (strcmp(r->method, "GET") == 0) return handle_list(r, true);
    if (strcmp(r->method, "POST") == 0) return handle_create(r, true);
    return cc_sbd_respond_error(r->conn, 405, "method %s not allowed", r->method);
  }
  const char *feature = unsupported_area(url);
  if (feature)
    return cc_sbd_respond_error(r->conn, 501, "%s: not supported by codecanvas-sandboxd", feature);
  bool v2 = strncmp(url, "/v2/sandboxes/", 14) == 0;
  if (strncmp(url, "/sandboxes/", 11) == 0 || v2) {
    char id[128];
    const char *rest = url + (v2 ? 14 : 11);
    const char *slash = strchr(rest, '/');
    size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
    if (n == 0 || n >= sizeof id) return cc_sbd_respond_error(r->conn, 400, "Invalid sandbox ID");
    memcpy(id, rest, n);
    id[n] = 0;
    const char *action = slash ? slash + 1 : NULL;
    if (action && (!*action || strchr(action, '/')))
      return cc_sbd_respond_error(r->conn, 404, "no such endpoint");
    return handle_sandbox(r, id, action, v2);
  }
  return cc_sbd_respond_error(r->conn, 404, "no such endpoint: %s %s", r->method, url);
}

/* ---------- routing and MHD glue ---------- */

/* Parses Host "<port>-<id>.<rest>"; returns true and fills port/id. */
static bool host_route(const char *host, int *port, char *id, size_t id_size) {
  if (!host) return false;
  const char *dash = strchr(host, '-');
  const char *dot = strchr(host, '.');
  if (!dash || !dot || dash > dot || dash == host) return false;
  long p = 0;
  for (const char *q = host; q < dash; q++) {
    if (!isdigit((unsigned char)*q)) return false;
    p = p * 10 + (*q - '0');
    if (p > 65535) return false;
  }
  size_t n = (size_t)(dot - dash - 1);
  if (n == 0 || n >= id_size) return false;
  for (size_t i = 0; i < n; i++) {
    char ch = dash[1 + i];
    if (!(islower((unsigned char)ch) || isdigit((unsigned char)ch))) return false;
  }
  memcpy(id, dash + 1, n);
  id[n] = 0;
  *port = (int)p;
  return true;
}

/* Traffic to a paused sandbox resumes it (lifecycle autoResume) or is refused (502). */
static void ensure_running(cc_sbd_req *r) {
  char msg[300];
  if (!r->sb || cc_sbd_ensure_running(r->srv, r->sb, msg, sizeof msg) == CC_OK) return;
  cc_sbd_unref(r->sb);
  r->sb = NULL;
  cc_sbd_req_fail(r, 502, "%s", msg);
}

static void route(cc_sbd_req *r) {
  int port = CC_SBD_ENVD_PORT;
  if (host_route(cc_sbd_header(r->conn, "Host"), &port, r->sandbox_id, sizeof r->sandbox_id)) {
    r->route = port == CC_SBD_ENVD_PORT ? CC_SBD_ROUTE_ENVD : CC_SBD_ROUTE_PROXY;
  } else if (cc_sbd_header(r->conn, "E2b-Sandbox-Id")) {
    const char *id = cc_sbd_header(r->conn, "E2b-Sandbox-Id");
    const char *ps = cc_sbd_header(r->conn, "E2b-Sandbox-Port");
    snprintf(r->sandbox_id, sizeof r->sandbox_id, "%s", valid_id(id, 63) ? id : "");
    if (ps) {
      char *end;
      long p = strtol(ps, &end, 10);
      port = (*end || p <= 0 || p > 65535) ? -1 : (int)p;
    }
    r->route = port == CC_SBD_ENVD_PORT ? CC_SBD_ROUTE_ENVD : CC_SBD_ROUTE_PROXY;
  } else if (cc_sbd_envd_path(r->url) &&
             (strcmp(r->url, "/health") != 0 || cc_sbd_header(r->conn, "X-Access-Token"))) {
    r->route = CC_SBD_ROUTE_ENVD;
    r->port = CC_SBD_ENVD_PORT;
    cc_sbd_envd_route_by_credentials(r);
    ensure_running(r);
    return;
  } else {
    r->route = CC_SBD_ROUTE_CONTROL;
    return;
  }
  r->port = port;
  if (r->sandbox_id[0]) r->sb = cc_sbd_find(r->srv, r->sandbox_id);
  /* A sandbox created with allowPublicTraffic: false serves its ports only to requests that
   * carry its traffic access token (envd has its own token); checked before an auto-resume,
   * so a stranger's request cannot wake it. */
  if (r->sb && r->route == CC_SBD_ROUTE_PROXY &&
      !cc_sbd_net_traffic_allowed(r->sb, cc_sbd_header(r->conn, CC_SBD_TRAFFIC_HEADER))) {
    cc_sbd_req_fail(r, 403, "sandbox %s does not allow public traffic: requests to its ports "
                    "need its trafficAccessToken in the " CC_SBD_TRAFFIC_HEADER " header",
                    r->sb->id);
    cc_sbd_unref(r->sb);
    r->sb = NULL;
    return;
  }
  ensure_running(r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
  cc_sbd_server *srv = cls;
  cc_sbd_req *r = *con_cls;
  if (!r) return MHD_NO; /* on_uri failed to allocate */
  if (!r->started) {
    r->started = true;
    r->srv = srv;
    r->conn = conn;
    r->url = url;
    r->method = method;
    route(r);
    if (r->route == CC_SBD_ROUTE_ENVD) cc_sbd_envd_begin(r);
    else if (r->route == CC_SBD_ROUTE_PROXY) cc_sbd_proxy_begin(r);
    return MHD_YES;
  }
  if (*upload_data_size) {
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    if (r->early_status || r->too_large) {
      /* discard the rest of a refused body, but not forever */
      r->discarded += n;
      return r->discarded > srv->cfg.max_upload + srv->cfg.max_body ? MHD_NO : MHD_YES;
    }
    if (r->sink) {
      r->sink->feed(r, upload_data, n); /* on failure the sink recorded an early error */
      return MHD_YES;
    }
    if (r->len + n > srv->cfg.max_body) {
      r->too_large = true;
      free(r->body);
      r->body = NULL;
      r->len = r->cap = 0;
      return MHD_YES;
    }
    if (r->len + n + 1 > r->cap) {
      size_t nc = r->cap ? r->cap : 4096;
      while (nc < r->len + n + 1) nc *= 2;
      char *nb = realloc(r->body, nc);
      if (!nb) return MHD_NO;
      r->body = nb;
      r->cap = nc;
    }
    memcpy(r->body + r->len, upload_data, n);
    r->len += n;
    r->body[r->len] = 0;
    return MHD_YES;
  }
  if (r->responded) return MHD_YES;
  r->responded = true;
  if (r->early_status) return cc_sbd_respond_error(conn, r->early_status, "%s", r->early_msg);
  switch (r->route) {
  case CC_SBD_ROUTE_ENVD: return cc_sbd_envd_handle(r);
  case CC_SBD_ROUTE_PROXY: return cc_sbd_proxy_handle(r);
  default: return handle_control(r);
  }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  cc_sbd_req *r = *con_cls;
  if (!r) return;
  if (r->sink && r->sink->free) r->sink->free(r->sink_state);
  cc_sbd_unref(r->sb);
  free(r->body);
  free(r->raw_uri);
  free(r);
  *con_cls = NULL;
}

/* Called once per request before headers are parsed: allocates the request and keeps the
 * raw request target, which the proxy forwards unchanged. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn) {
  cc_sbd_req *r = calloc(1, sizeof *r);
  if (r) r->raw_uri = strdup(uri);
  return r;
}

struct MHD_Daemon *cc_sbd_http_start(cc_sbd_server *srv, int listen_fd) {
  unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                   MHD_USE_ERROR_LOG | MHD_ALLOW_UPGRADE | MHD_USE_POLL;
  /* HTTPS (GnuTLS inside libmicrohttpd) with the certificate of cc_sbd_tls.c */
  bool tls = srv->tls_cert_pem && srv->tls_key_pem;
  struct MHD_OptionItem tls_opts[] = {
      {tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, srv->tls_cert_pem},
      {MHD_OPTION_HTTPS_MEM_KEY, 0, srv->tls_key_pem},
      {MHD_OPTION_END, 0, NULL},
  };
  if (tls) flags |= MHD_USE_TLS;
  return MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_LISTEN_SOCKET, listen_fd,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
      MHD_OPTION_CONNECTION_LIMIT,
      (unsigned)srv->cfg.max_connections, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600,
      MHD_OPTION_ARRAY, tls_opts, MHD_OPTION_END);
}
