/* Unit tests: the egress rule parser of the sandbox runtime (cc_sbx_cidr_parse / _format) and
 * codecanvas-sandboxd's network settings (cc_sbd_netcfg_parse): what is accepted, what each
 * refusal answers (400 malformed, 501 not enforced here), and the effective rules (E2B's
 * allowInternetAccess: false = denyOut 0.0.0.0/0). */
#include <stdlib.h>

#include "cc_sbd_netcfg.h"
#include "cc_test.h"

static const char *canon(const char *s) {
  static char out[CC_SBX_CIDR_TEXT];
  cc_sbx_cidr c;
  if (!cc_sbx_cidr_parse(s, &c)) return "(refused)";
  cc_sbx_cidr_format(&c, out);
  return out;
}

static void test_cidr(void) {
  CHECK_STR(canon("10.1.2.3"), "10.1.2.3/32");
  CHECK_STR(canon("10.1.2.3/8"), "10.0.0.0/8"); /* host bits cleared */
  CHECK_STR(canon("0.0.0.0/0"), "0.0.0.0/0");
  CHECK_STR(canon("8.8.8.0/24"), "8.8.8.0/24");
  CHECK_STR(canon("2001:DB8::1"), "2001:db8::1/128");
  CHECK_STR(canon("2001:db8::1/32"), "2001:db8::/32");
  CHECK_STR(canon("::/0"), "::/0");
  CHECK_STR(canon("::ffff:10.0.0.1/128"), "::ffff:10.0.0.1/128");
  static const char *const bad[] = {
      "",          "10.1.2.3/33", "10.1.2.3/",  "10.1.2.3/08", "10.1.2.3/+8", "10.1.2.3/ 8",
      " 10.1.2.3", "10.1.2.3 ",   "10.1.2",     "10.1.2.256",  "010.1.2.3",   "example.com",
      "::/129",    "1.2.3.4/-1",  "1.2.3.4/1x", "1.2.3.4//8",  "1.2.3.4/8/8", "fe80::1%lo",
      "10.1.2.3;", "{10.1.2.3}",  "*",          "1.2.3.4/0000"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cc_sbx_cidr c;
    if (cc_sbx_cidr_parse(bad[i], &c)) fprintf(stderr, "accepted: '%s'\n", bad[i]);
    CHECK(!cc_sbx_cidr_parse(bad[i], &c));
  }
}

/* Parses JSON text as a create's network (kind 0) or an update body (kind 1). */
static unsigned parse(int kind, const char *json, const char *inet, cc_sbd_netcfg *out, char *msg) {
  cJSON *j = json ? cJSON_Parse(json) : NULL;
  cJSON *i = inet ? cJSON_Parse(inet) : NULL;
  unsigned st =
      cc_sbd_netcfg_parse(kind ? CC_SBD_NETCFG_UPDATE : CC_SBD_NETCFG_CREATE, j, i, out, msg, 512);
  cJSON_Delete(j);
  cJSON_Delete(i);
  return st;
}

static void test_netcfg(void) {
  cc_sbd_netcfg c;
  char msg[512];
  /* nothing given: no rules, public traffic, internet on, no info to show */
  CHECK_INT(parse(0, NULL, NULL, &c, msg), 0);
  CHECK(c.allow_internet && c.public_traffic && !c.info && !cc_sbd_netcfg_has_rules(&c));
  cc_sbd_netcfg_cleanup(&c);

  /* rules as given, shown as given */
  CHECK_INT(parse(0,
                  "{\"allowOut\":[\"10.1.2.3\"],\"denyOut\":[\"0.0.0.0/0\"],"
                  "\"allowPublicTraffic\":false}",
                  "true", &c, msg),
            0);
  CHECK_INT(c.n_allow, 1);
  CHECK_INT(c.n_deny, 1);
  CHECK(!c.public_traffic && c.allow_internet && !cc_sbd_netcfg_denies_all(&c));
  char *info = cJSON_PrintUnformatted(c.info);
  CHECK_STR(info,
            "{\"allowOut\":[\"10.1.2.3\"],\"denyOut\":[\"0.0.0.0/0\"],"
            "\"allowPublicTraffic\":false}");
  free(info);
  cc_sbd_netcfg_cleanup(&c);

  /* allowInternetAccess false = deny 0.0.0.0/0 and ::/0 (and allowOut still wins) */
  CHECK_INT(parse(0, "{}", "false", &c, msg), 0);
  CHECK_INT(c.n_deny, 2);
  CHECK(cc_sbd_netcfg_denies_all(&c));
  cc_sbd_netcfg_cleanup(&c);
  CHECK_INT(parse(1, "{\"allow_internet_access\":false,\"allowOut\":[\"1.1.1.1\"]}", NULL, &c, msg),
            0);
  CHECK(!c.allow_internet && c.n_allow == 1 && c.n_deny == 2 && !cc_sbd_netcfg_denies_all(&c));
  cc_sbd_netcfg_cleanup(&c);
  /* domain names in allowOut: kept lower-cased beside the addresses; they count as rules and
   * as something allowed */
  CHECK_INT(parse(0,
                  "{\"allowOut\":[\"Example.COM\",\"10.9.8.7\",\"*.pypi.org\"],"
                  "\"denyOut\":[\"0.0.0.0/0\"]}",
                  NULL, &c, msg),
            0);
  CHECK_INT(c.n_allow, 1);
  CHECK_INT(c.n_domains, 2);
  CHECK_STR(c.domains[0], "example.com");
  CHECK_STR(c.domains[1], "*.pypi.org");
  cc_sbx_egress eg = cc_sbd_netcfg_rules(&c);
  CHECK(eg.n_domains == 2 && eg.domains[1] == c.domains[1]);
  cc_sbd_netcfg_cleanup(&c);
  CHECK_INT(parse(1, "{\"allowOut\":[\"example.com\"],\"denyOut\":[\"0.0.0.0/0\"]}", NULL, &c, msg),
            0);
  CHECK(cc_sbd_netcfg_has_rules(&c) && !cc_sbd_netcfg_denies_all(&c));
  cc_sbd_netcfg_cleanup(&c);
  CHECK_INT(parse(1, "{\"denyOut\":[\"10.0.0.0/8\",\"0.0.0.0/0\"]}", NULL, &c, msg), 0);
  CHECK(c.allow_internet && cc_sbd_netcfg_denies_all(&c));
  cc_sbd_netcfg_cleanup(&c);

  /* refusals: status and what the message names */
  static const struct {
    int kind;
    const char *json, *inet;
    unsigned status;
    const char *says;
  } bad[] = {
      {0, "{\"allowOut\":[\"exa mple.com\"]}", NULL, 400, "invalid network.allowOut entry"},
      {0, "{\"allowOut\":[\"*example.com\"]}", NULL, 400, "invalid network.allowOut entry"},
      {0, "{\"allowOut\":[\"a.*.example.com\"]}", NULL, 400, "invalid network.allowOut"},
      {1, "{\"allowOut\":[\"example..com\"]}", NULL, 400, "invalid allowOut entry"},
      {1, "{\"allowOut\":[\"example.com\",\"1.2.3.4/40\"]}", NULL, 400, "'1.2.3.4/40'"},
      {0, "{\"denyOut\":[\"example.com\"]}", NULL, 400, "not supported for deny rules"},
      {0, "{\"denyOut\":[\"10.0.0.0/33\"]}", NULL, 400, "invalid network.denyOut entry"},
      {0, "{\"denyOut\":[\"a b\"]}", NULL, 400, "invalid network.denyOut entry 'a b'"},
      {0, "{\"denyOut\":[7]}", NULL, 400, "entries must be strings"},
      {0, "{\"denyOut\":\"10.0.0.0/8\"}", NULL, 400, "must be an array"},
      {0, "[]", NULL, 400, "network must be a JSON object"},
      {0, "{\"allowPublicTraffic\":\"no\"}", NULL, 400, "allowPublicTraffic must be a boolean"},
      {0, "{}", "1", 400, "allow_internet_access must be a boolean"},
      {0, "{\"rules\":{\"a.com\":[{}]}}", NULL, 501, "network.rules"},
      {0, "{\"egressProxy\":{\"address\":\"x:1\"}}", NULL, 501, "egressProxy"},
      {0, "{\"maskRequestHost\":\"a b\"}", NULL, 400, "maskRequestHost must be a host name"},
      {0, "{\"maskRequestHost\":\"\"}", NULL, 400, "maskRequestHost must be a host name"},
      {0, "{\"maskRequestHost\":\"a\\r\\nX: y\"}", NULL, 400, "maskRequestHost"},
      {0, "{\"maskRequestHost\":7}", NULL, 400, "maskRequestHost"},
      {1, "{\"maskRequestHost\":\"x\"}", NULL, 501, "maskRequestHost is not supported"},
      {0, "{\"httpsPorts\":[3000]}", NULL, 501, "httpsPorts"},
      {0, "{\"newThing\":1}", NULL, 501, "network.newThing is not supported"},
      {1, "{\"allowPublicTraffic\":false}", NULL, 501, "allowPublicTraffic is not supported"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    msg[0] = 0;
    unsigned st = parse(bad[i].kind, bad[i].json, bad[i].inet, &c, msg);
    if (st != bad[i].status || !strstr(msg, bad[i].says))
      fprintf(stderr, "case %zu: %u '%s'\n", i, st, msg);
    CHECK_INT(st, bad[i].status);
    CHECK(strstr(msg, bad[i].says) != NULL);
    CHECK(!c.info && !c.allow && !c.deny && !c.domains && !c.n_domains);
  }
  /* maskRequestHost: the Host the proxy sends, ${PORT} replaced */
  char host[300];
  CHECK_INT(parse(0, "{\"maskRequestHost\":\"p${PORT}.x:${PORT}\"}", NULL, &c, msg), 0);
  CHECK(cc_sbd_netcfg_host_for(&c, 8080, host, sizeof host));
  CHECK_STR(host, "p8080.x:8080");
  cc_sbd_netcfg_cleanup(&c);
  CHECK_INT(parse(0, "{}", NULL, &c, msg), 0);
  CHECK(!cc_sbd_netcfg_host_for(&c, 8080, host, sizeof host));
  cc_sbd_netcfg_cleanup(&c);

  /* empty values of the unsupported fields ask for nothing */
  CHECK_INT(parse(0, "{\"rules\":{},\"httpsPorts\":[],\"egressProxy\":null}", NULL, &c, msg), 0);
  cc_sbd_netcfg_cleanup(&c);

  /* the list limit */
  size_t cap = 20 * (CC_SBX_EGRESS_MAX + 2);
  char *big = malloc(cap), *p = big;
  p += sprintf(p, "{\"denyOut\":[");
  for (int i = 0; i <= CC_SBX_EGRESS_MAX; i++)
    p += sprintf(p, "%s\"10.%d.%d.0/24\"", i ? "," : "", i / 256, i % 256);
  sprintf(p, "]}");
  CHECK_INT(parse(0, big, NULL, &c, msg), 400);
  CHECK(strstr(msg, "at most 1024") != NULL);
  free(big);
}

int main(void) {
  RUN(test_cidr);
  RUN(test_netcfg);
  return CC_TEST_DONE();
}
