/*
 * codecanvas-sandboxd: a local E2B-compatible sandbox server.
 *
 * One HTTP port serves the E2B control plane, envd for every sandbox and the sandboxes' own
 * ports (docs/sandboxd.md).  This file parses the command line, probes the sandbox runtime,
 * binds the port, prints the ready line and waits for SIGINT/SIGTERM.  Process-wide state
 * lives only here.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cc_sbd.h"
#include "cc_sbd_http.h"
#include "cc_sbd_tls.h"
#include "cc_sbx.h"

#define PROG "codecanvas-sandboxd"

/* cc_sbx_disk_prune's keep: id is a sandbox paused here. */
static bool paused_here(const char *id, void *ctx) {
  cc_sbd_sandbox *sb = cc_sbd_find(ctx, id);
  if (!sb) return false;
  bool paused = sb->state == CC_SBD_PAUSED;
  cc_sbd_unref(sb);
  return paused;
}

static void usage(FILE *f) {
  fprintf(f,
"Usage: " PROG " --listen HOST:PORT --state-dir DIR [options]\n"
"\n"
"A local E2B-compatible sandbox server.  One port serves the E2B control-plane API\n"
"(/sandboxes, /v2/sandboxes), envd for every sandbox (/files, /health,\n"
"/process.Process/*, /filesystem.Filesystem/*) and ports opened inside sandboxes\n"
"(Host: <port>-<sandboxId>.localhost:<PORT>).  Point the official SDK at it with\n"
"E2B_API_URL=E2B_SANDBOX_URL=http://HOST:PORT and E2B_API_KEY=<a configured key>.\n"
"Each sandbox is a bubblewrap container (own user, PID, IPC, UTS, mount and network\n"
"namespaces) with cgroup limits; see docs/sandboxd.md.\n"
"\n"
"Required:\n"
"  --listen HOST:PORT      address to listen on; PORT 0 picks a free port.  Prints\n"
"                          '" PROG ": listening on http(s)://HOST:PORT' when ready.\n"
"  --state-dir DIR         directory for runtime state (created 0700 if missing; made\n"
"                          searchable, 0711, for the writable system's mounts)\n"
"\n"
"API keys (X-API-KEY on control-plane requests; at least one is required):\n"
"  --api-key-file FILE     accepted keys, one per line (blank lines and #comments ignored)\n"
"  env CODECANVAS_SANDBOXD_API_KEYS   accepted keys, separated by commas or newlines\n"
"  --insecure-no-api-key   accept control-plane requests without a key (local testing only)\n"
"\n"
"Sandboxes:\n"
"  --template NAME         a templateID accepted by create (repeatable; default: base).\n"
"                          Every template is the same system: the host's /usr and a copy\n"
"                          of its /etc, writable per sandbox by its root (see below)\n"
"  --memory-mb N           memory limit per sandbox, including files in /home/user and\n"
"                          /tmp (default 512)\n"
"  --pids N                max processes+threads per sandbox (default 256)\n"
"  --cpu-percent N         CPU bandwidth per sandbox, 100 = one core (default 100)\n"
"  --disk-mb N             each sandbox's disk (default 1024): its /home/user and, with a\n"
"                          writable system, everything it writes to /, /usr, /root; a\n"
"                          write past it fails with ENOSPC (HTTP 507 on /files)\n"
"  --default-timeout SEC   lifetime when create sends no timeout (default 15, as E2B)\n"
"  --max-timeout SEC       largest timeout create/setTimeout/connect accept (default 86400)\n"
"  --max-sandboxes N       sandboxes alive at once; create answers 429 beyond (default 64)\n"
"  --warm-pool N           keep N sandboxes started ahead of create (default 0), so that a\n"
"                          create of the first template only hands one out\n"
"  --no-internet           never give sandboxes internet access\n"
"  --no-root               no root inside sandboxes: user \"root\" runs as \"user\" and there\n"
"                          is no sudo, and the system is read-only (default when not run\n"
"                          as root)\n"
"  --read-only-system      the host's system read-only in every sandbox, for root too\n"
"                          (default with root inside: each sandbox's own writable layer\n"
"                          over it; the start line says 'system: ...')\n"
"  --allow-no-cgroups      start even if no cgroup is writable: sandboxes then run WITHOUT\n"
"                          memory, process and CPU limits (refused by default)\n"
"  --cgroup auto|v1|v2     which cgroup hierarchy applies the limits (default auto: v1 when\n"
"                          its memory and pids controllers are mounted, else v2); the start\n"
"                          line says which one is in use\n"
"  --domain NAME           sandbox hosts are <port>-<id>.NAME:<port> (default localhost; on\n"
"                          a host with nss-myhostname every *.localhost name is 127.0.0.1)\n"
"  --tls-ca DIR            serve HTTPS with a certificate for *.NAME issued at start by a\n"
"                          local CA kept in DIR (created on first use; clients trust\n"
"                          DIR/ca.pem); NAME needs two labels or more, e.g. sandbox.localhost\n"
"  --tls-cert FILE --tls-key FILE\n"
"                          serve HTTPS with this certificate (chain) and key instead (PEM)\n"
"\n"
"Internet access: a sandbox created with allow_internet_access=true (the SDK default)\n"
"gets outbound network through slirp4netns, with the host's loopback disabled.  sandboxd\n"
"proves it at start with a probe sandbox and prints 'egress: ...' saying how, or why not\n"
"(slirp4netns missing, no /dev/net/tun, a root-only /dev/net/tun while not root,\n"
"--no-internet).  Without egress, sandboxes still start, with loopback only, and\n"
"GET /sandboxes/{id} says \"internet\": false with an \"internetReason\".\n"
"A sandbox can never reach this server's port or any other host loopback port.\n"
"Egress rules (network.allowOut/denyOut of IP addresses and CIDR blocks, updateNetwork)\n"
"are enforced by nftables in each sandbox's own network namespace, out of reach of\n"
"root inside; 'egress rules: ...' at start says how, or why not.  Domain rules are refused.\n"
"\n"
"Request limits:\n"
"  --max-body BYTES        largest JSON/RPC or proxied request body (default 8388608)\n"
"  --max-upload BYTES      largest /files upload (default 268435456)\n"
"  --max-connections N     concurrent HTTP connections (default 512)\n"
"\n"
"  -h, --help              show this help\n");
}

static char **add_str(char **v, size_t *n, const char *s) {
  char **nv = realloc(v, (*n + 1) * sizeof *nv);
  if (!nv) return v;
  nv[*n] = strdup(s);
  if (nv[*n]) (*n)++;
  return nv;
}

/* Splits keys on commas/newlines, trims blanks, skips empty and #comment entries. */
static void add_keys(cc_sbd_config *c, const char *text, const char *seps) {
  char *copy = strdup(text);
  if (!copy) return;
  char *save = NULL;
  for (char *tok = strtok_r(copy, seps, &save); tok; tok = strtok_r(NULL, seps, &save)) {
    while (*tok == ' ' || *tok == '\t') tok++;
    size_t l = strlen(tok);
    while (l && (tok[l - 1] == ' ' || tok[l - 1] == '\t' || tok[l - 1] == '\r')) tok[--l] = 0;
    if (!l || tok[0] == '#') continue;
    c->api_keys = add_str(c->api_keys, &c->n_api_keys, tok);
  }
  free(copy);
}

static bool parse_long(const char *s, long min, long max, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || end == s || v < min || v > max) return false;
  *out = v;
  return true;
}

static int bind_listen(const char *host, int port, int *bound) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
    fprintf(stderr, PROG ": --listen needs an IPv4 address, got '%s'\n", host);
    return -1;
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd < 0) return -1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  socklen_t len = sizeof a;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 256) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
    fprintf(stderr, PROG ": cannot listen on %s:%d: %s\n", host, port, strerror(errno));
    close(fd);
    return -1;
  }
  *bound = ntohs(a.sin_port);
  return fd;
}

int main(int argc, char **argv) {
  static cc_sbd_server srv; /* process-wide state lives in main.c */
  cc_sbd_config *c = &srv.cfg;
  cc_sbd_config_defaults(c);
  bool allow_no_cgroups = false;
  cc_sbx_cgroup_mode cgroup = CC_SBX_CGROUP_NONE; /* auto */
  enum {
    O_LISTEN = 256, O_STATE, O_KEYFILE, O_NOKEY, O_TEMPLATE, O_MEM, O_PIDS, O_CPU, O_DISK,
    O_DEFTO, O_MAXTO, O_MAXSB, O_NOINET, O_NOROOT, O_ROSYS, O_NOCG, O_CGROUP, O_POOL, O_MAXBODY,
    O_MAXUP, O_MAXCONN, O_DOMAIN, O_TLSCERT, O_TLSKEY, O_TLSCA
  };
  static const struct option opts[] = {
    {"listen", required_argument, 0, O_LISTEN},
    {"state-dir", required_argument, 0, O_STATE},
    {"api-key-file", required_argument, 0, O_KEYFILE},
    {"insecure-no-api-key", no_argument, 0, O_NOKEY},
    {"template", required_argument, 0, O_TEMPLATE},
    {"memory-mb", required_argument, 0, O_MEM},
    {"pids", required_argument, 0, O_PIDS},
    {"cpu-percent", required_argument, 0, O_CPU},
    {"disk-mb", required_argument, 0, O_DISK},
    {"default-timeout", required_argument, 0, O_DEFTO},
    {"max-timeout", required_argument, 0, O_MAXTO},
    {"max-sandboxes", required_argument, 0, O_MAXSB},
    {"no-internet", no_argument, 0, O_NOINET},
    {"no-root", no_argument, 0, O_NOROOT},
    {"read-only-system", no_argument, 0, O_ROSYS},
    {"allow-no-cgroups", no_argument, 0, O_NOCG},
    {"cgroup", required_argument, 0, O_CGROUP},
    {"warm-pool", required_argument, 0, O_POOL},
    {"max-body", required_argument, 0, O_MAXBODY},
    {"max-upload", required_argument, 0, O_MAXUP},
    {"max-connections", required_argument, 0, O_MAXCONN},
    {"domain", required_argument, 0, O_DOMAIN},
    {"tls-cert", required_argument, 0, O_TLSCERT},
    {"tls-key", required_argument, 0, O_TLSKEY},
    {"tls-ca", required_argument, 0, O_TLSCA},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
  };
  int ch;
  long v;
  const char *listen = NULL;
#define NUM(field, min, max, name)                                                  \
  do {                                                                              \
    if (!parse_long(optarg, min, max, &v)) {                                        \
      fprintf(stderr, PROG ": --%s needs an integer in [%ld, %ld]\n", name,         \
              (long)(min), (long)(max));                                            \
      return 2;                                                                     \
    }                                                                               \
    field = v;                                                                      \
  } while (0)
  while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (ch) {
    case O_LISTEN: listen = optarg; break;
    case O_STATE: free(c->state_dir); c->state_dir = strdup(optarg); break;
    case O_KEYFILE: {
      FILE *f = fopen(optarg, "r");
      if (!f) {
        fprintf(stderr, PROG ": cannot read --api-key-file %s: %s\n", optarg, strerror(errno));
        return 2;
      }
      char line[4096];
      while (fgets(line, sizeof line, f)) add_keys(c, line, "\n");
      fclose(f);
      break;
    }
    case O_NOKEY: c->no_api_key = true; break;
    case O_TEMPLATE: c->templates = add_str(c->templates, &c->n_templates, optarg); break;
    case O_MEM: NUM(c->memory_mb, 16, 1 << 20, "memory-mb"); break;
    case O_PIDS: NUM(c->pids, 8, 1 << 20, "pids"); break;
    case O_CPU: NUM(c->cpu_percent, 1, 100000, "cpu-percent"); break;
    case O_DISK: NUM(c->disk_mb, 1, 1 << 24, "disk-mb"); break;
    case O_DEFTO: NUM(c->default_timeout_s, 1, 30L * 86400, "default-timeout"); break;
    case O_MAXTO: NUM(c->max_timeout_s, 1, 365L * 86400, "max-timeout"); break;
    case O_MAXSB: NUM(c->max_sandboxes, 1, 100000, "max-sandboxes"); break;
    case O_NOINET: c->internet = false; break;
    case O_NOROOT: c->no_root = true; break;
    case O_ROSYS: c->read_only_system = true; break;
    case O_NOCG: allow_no_cgroups = true; break;
    case O_POOL: NUM(c->warm_pool, 0, 64, "warm-pool"); break;
    case O_CGROUP:
      if (strcmp(optarg, "auto") == 0) cgroup = CC_SBX_CGROUP_NONE;
      else if (strcmp(optarg, "v1") == 0) cgroup = CC_SBX_CGROUP_V1;
      else if (strcmp(optarg, "v2") == 0) cgroup = CC_SBX_CGROUP_V2;
      else {
        fprintf(stderr, PROG ": --cgroup needs auto, v1 or v2, got '%s'\n", optarg);
        return 2;
      }
      break;
    case O_MAXBODY: NUM(c->max_body, 1024, 1L << 32, "max-body"); break;
    case O_MAXUP: NUM(c->max_upload, 1, 1L << 40, "max-upload"); break;
    case O_MAXCONN: NUM(c->max_connections, 4, 100000, "max-connections"); break;
    case O_DOMAIN:
      if (!cc_sbd_tls_domain_ok(optarg)) {
        fprintf(stderr, PROG ": --domain needs a lower-case DNS name, got '%s'\n", optarg);
        return 2;
      }
      free(c->domain_name);
      c->domain_name = strdup(optarg);
      break;
    case O_TLSCERT: free(c->tls_cert); c->tls_cert = strdup(optarg); break;
    case O_TLSKEY: free(c->tls_key); c->tls_key = strdup(optarg); break;
    case O_TLSCA: free(c->tls_ca_dir); c->tls_ca_dir = strdup(optarg); break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  const char *env_keys = getenv("CODECANVAS_SANDBOXD_API_KEYS");
  if (env_keys) add_keys(c, env_keys, ",\n");
  if (!listen || !c->state_dir) {
    fprintf(stderr, PROG ": --listen and --state-dir are required (see --help)\n");
    return 2;
  }
  if (!c->n_api_keys && !c->no_api_key) {
    fprintf(stderr, PROG ": no API key configured: use --api-key-file, "
                    "CODECANVAS_SANDBOXD_API_KEYS or --insecure-no-api-key\n");
    return 2;
  }
  if (!c->n_templates) c->templates = add_str(c->templates, &c->n_templates, "base");
  const char *colon = strrchr(listen, ':');
  long port;
  if (!colon || !parse_long(colon + 1, 0, 65535, &port)) {
    fprintf(stderr, PROG ": --listen needs HOST:PORT, got '%s'\n", listen);
    return 2;
  }
  c->listen_host = strndup(listen, (size_t)(colon - listen));
  c->listen_port = (int)port;
  if (!c->domain_name) c->domain_name = strdup("localhost");
  if (c->tls_cert || c->tls_key || c->tls_ca_dir) {
    char terr[512];
    if ((c->tls_cert || c->tls_key) && c->tls_ca_dir) {
      fprintf(stderr, PROG ": --tls-ca or --tls-cert/--tls-key, not both\n");
      return 2;
    }
    if (cc_sbd_tls_setup(c->tls_cert, c->tls_key, c->tls_ca_dir, c->domain_name,
                         &srv.tls_cert_pem, &srv.tls_key_pem, terr, sizeof terr) != CC_OK) {
      fprintf(stderr, PROG ": TLS: %s\n", terr);
      return 2;
    }
  }
  if (mkdir(c->state_dir, 0700) != 0 && errno != EEXIST) {
    fprintf(stderr, PROG ": cannot create --state-dir %s: %s\n", c->state_dir, strerror(errno));
    return 1;
  }

  /* every thread inherits this mask; the main thread waits for the signals below */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  cc_sbx_config sc;
  cc_sbx_config_init(&sc);
  sc.state_dir = c->state_dir;
  sc.allow_no_cgroups = allow_no_cgroups;
  sc.cgroup = cgroup;
  if (!c->internet) sc.slirp_path = "";
  sc.no_root_inside = c->no_root;
  sc.read_only_system = c->read_only_system;
  sc.limits.memory_bytes = (uint64_t)c->memory_mb << 20;
  sc.limits.pids_max = (uint32_t)c->pids;
  sc.limits.cpu_millis = (uint32_t)(c->cpu_percent * 10);
  sc.limits.home_bytes = (uint64_t)c->disk_mb << 20;
  cc_sbx_err err = {0};
  if (cc_sbx_runtime_new(&sc, (cc_sbx_runtime **)&srv.rt, &err) != CC_OK) {
    fprintf(stderr, PROG ": cannot start the sandbox runtime: %s\n",
            err.msg[0] ? err.msg : "unknown error");
    return 1;
  }
  cc_sbx_runtime_info info;
  cc_sbx_runtime_get_info(srv.rt, &info);
  srv.root_inside = info.root_inside;
  srv.domain_rules = info.root;
  fprintf(stderr, PROG ": %s\n", info.report);
  if (info.cgroup == CC_SBX_CGROUP_NONE)
    fprintf(stderr, PROG ": WARNING: no cgroup limits: sandboxes have no memory, process or "
                    "CPU limits (--allow-no-cgroups)\n");

  int fd = bind_listen(c->listen_host, c->listen_port, &srv.port);
  if (fd < 0) {
    cc_sbx_runtime_free(srv.rt);
    return 1;
  }
  snprintf(srv.domain, sizeof srv.domain, "%s:%d", c->domain_name, srv.port);
  if (cc_sbd_server_init(&srv) != CC_OK) {
    fprintf(stderr, PROG ": cannot start the reaper and janitor threads\n");
    return 1;
  }
  if (cc_sbd_pool_start(&srv) != CC_OK) {
    fprintf(stderr, PROG ": cannot start the warm pool\n");
    return 1;
  }
  size_t kept = cc_sbd_load_paused(&srv);
  /* disks a previous run kept for sandboxes that are not paused any more */
  cc_sbx_disk_prune(srv.rt, paused_here, &srv);
  if (kept)
    fprintf(stderr, PROG ": %zu paused sandbox%s kept in %s/paused (files only: their processes "
                    "did not survive the restart)\n",
            kept, kept == 1 ? "" : "es", c->state_dir);
  struct MHD_Daemon *d = cc_sbd_http_start(&srv, fd);
  if (!d) {
    fprintf(stderr, PROG ": cannot start the HTTP server\n");
    return 1;
  }
  printf(PROG ": listening on %s://%s:%d\n", srv.tls_cert_pem ? "https" : "http", c->listen_host,
         srv.port);
  fflush(stdout);

  int sig = 0;
  sigwait(&set, &sig);
  fprintf(stderr, PROG ": %s, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  cc_sbd_pool_stop(&srv);
  cc_sbd_server_stop(&srv); /* kills every sandbox, which ends open streams */
  MHD_stop_daemon(d);
  close(fd);
  cc_sbd_server_cleanup(&srv);
  cc_sbx_runtime_free(srv.rt);
  cc_sbd_config_cleanup(c);
  if (srv.tls_key_pem) OPENSSL_cleanse(srv.tls_key_pem, strlen(srv.tls_key_pem));
  free(srv.tls_key_pem);
  free(srv.tls_cert_pem);
  return 0;
}
