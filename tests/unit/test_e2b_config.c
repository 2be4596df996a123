/*
 * Unit tests of the E2B client's configuration (native/e2b/cc_e2b.c), no network: defaults
 * and the SDK's environment variables, the API key file, validation in cc_e2b_client_new
 * (which must never echo the key), the derived API URL and getHost.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cc_e2b.h"
#include "cc_test.h"

static void test_defaults_and_env(void) {
  cc_e2b_config cfg;
  cc_e2b_config_init(&cfg);
  CHECK(cfg.api_key == NULL && cfg.api_url == NULL && cfg.sandbox_url == NULL);
  CHECK_INT(cfg.sandbox_timeout_s, 300);
  CHECK_INT(cfg.request_timeout_ms, 60000);
  CHECK_INT(cfg.keepalive_interval_s, 50);
  CHECK(cfg.allow_internet_access);

  setenv("E2B_API_KEY", "e2b_from_env", 1);
  setenv("E2B_DOMAIN", "example.test", 1);
  setenv("E2B_SANDBOX_URL", "", 1); /* empty = unset, as in the SDK */
  unsetenv("E2B_API_URL");
  cc_e2b_config_from_env(&cfg);
  CHECK_STR(cfg.api_key, "e2b_from_env");
  CHECK_STR(cfg.domain, "example.test");
  CHECK(cfg.sandbox_url == NULL);
  CHECK(cfg.api_url == NULL);

  /* api_url defaults to https://api.{domain}. */
  cc_e2b_client *c;
  cc_e2b_error e;
  CHECK_INT(cc_e2b_client_new(&cfg, &c, &e), CC_OK);
  if (c) CHECK_STR(cc_e2b_client_api_url(c), "https://api.example.test");
  cc_e2b_stats st;
  if (c) {
    cc_e2b_client_stats(c, &st);
    CHECK_INT(st.requests, 0);
  }
  cc_e2b_client_free(c);

  cfg.domain = NULL;
  CHECK_INT(cc_e2b_client_new(&cfg, &c, &e), CC_OK);
  if (c) CHECK_STR(cc_e2b_client_api_url(c), "https://api.e2b.app");
  cc_e2b_client_free(c);

  /* An explicit URL wins; a trailing slash is dropped. */
  cfg.api_url = "http://127.0.0.1:9/";
  CHECK_INT(cc_e2b_client_new(&cfg, &c, &e), CC_OK);
  if (c) CHECK_STR(cc_e2b_client_api_url(c), "http://127.0.0.1:9");
  cc_e2b_client_free(c);
  unsetenv("E2B_API_KEY");
  unsetenv("E2B_DOMAIN");
  unsetenv("E2B_SANDBOX_URL");
}

static void test_validation(void) {
  cc_e2b_config cfg;
  cc_e2b_client *c;
  cc_e2b_error e;
  cc_e2b_config_init(&cfg);
  cfg.api_key = "e2b_secret_value_123";
  cfg.api_url = "ftp://x";
  CHECK_INT(cc_e2b_client_new(&cfg, &c, &e), CC_BAD_REQUEST);
  CHECK(c == NULL);
  CHECK(strstr(e.message, "e2b_secret") == NULL);
  cfg.api_url = NULL;
  cfg.sandbox_url = "localhost:1234"; /* no scheme */
  CHECK_INT(cc_e2b_client_new(&cfg, &c, &e), CC_BAD_REQUEST);
  cfg.sandbox_url = NULL;
  cfg.domain = "evil.com/x";
  CHECK_INT(cc_e2b_client_new(&cfg, &c, &e), CC_BAD_REQUEST);
  cfg.domain = NULL;
  cfg.api_key = "e2b_bad\r\nX-Injected: 1";
  CHECK_INT(cc_e2b_client_new(&cfg, &c, &e), CC_BAD_REQUEST);
  CHECK(strstr(e.message, "e2b_bad") == NULL);
  cfg.api_key = NULL;
  cfg.envd_user = "a:b";
  CHECK_INT(cc_e2b_client_new(&cfg, &c, &e), CC_BAD_REQUEST);
  cfg.envd_user = NULL;
  cfg.request_timeout_ms = -1;
  CHECK_INT(cc_e2b_client_new(&cfg, &c, &e), CC_BAD_REQUEST);
  cfg.request_timeout_ms = 0; /* 0 = default */
  CHECK_INT(cc_e2b_client_new(&cfg, &c, &e), CC_OK);

  /* Calls validate their inputs before any request. */
  cc_e2b_sandbox sb = {0};
  CHECK_INT(cc_e2b_connect(c, "../etc", 10, &sb, &e), CC_BAD_REQUEST);
  CHECK_INT(cc_e2b_kill(c, "", &e), CC_BAD_REQUEST);
  CHECK_INT(cc_e2b_set_timeout(c, "i1", 0, &e), CC_BAD_REQUEST);
  cc_e2b_exec_opts o = {.cmd = "true"};
  CHECK_INT(cc_e2b_exec(c, &sb, &o, NULL, &e), CC_BAD_REQUEST); /* empty sandbox */
  snprintf(sb.id, sizeof sb.id, "i1");
  snprintf(sb.domain, sizeof sb.domain, "e2b.app");
  cc_e2b_exec_opts none = {0};
  CHECK_INT(cc_e2b_exec(c, &sb, &none, NULL, &e), CC_BAD_REQUEST);
  CHECK_INT(cc_e2b_send_signal(c, &sb, 1, 2, &e), CC_BAD_REQUEST);
  char *data;
  size_t len;
  CHECK_INT(cc_e2b_read_file(c, &sb, "", 0, &data, &len, &e), CC_BAD_REQUEST);
  cc_e2b_client_free(c);
  cc_e2b_client_free(NULL);
}

static void test_key_file(void) {
  char path[] = "/tmp/cc_e2b_keyXXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd < 0) return;
  FILE *f = fdopen(fd, "w");
  fputs("  e2b_abc123  \nsecond line ignored\n", f);
  fclose(f);
  char *key = NULL;
  CHECK_INT(cc_e2b_read_key_file(path, &key), CC_OK);
  CHECK_STR(key, "e2b_abc123");
  cc_e2b_free(key);

  f = fopen(path, "w");
  fputs("\n", f);
  fclose(f);
  CHECK_INT(cc_e2b_read_key_file(path, &key), CC_BAD_REQUEST);
  CHECK(key == NULL);

  f = fopen(path, "w");
  for (int i = 0; i < 5000; i++) fputc('k', f);
  fclose(f);
  CHECK_INT(cc_e2b_read_key_file(path, &key), CC_TOO_LARGE);
  unlink(path);
  CHECK_INT(cc_e2b_read_key_file(path, &key), CC_NOT_FOUND);
}

int main(void) {
  RUN(test_defaults_and_env);
  RUN(test_validation);
  RUN(test_key_file);
  return CC_TEST_DONE();
}
