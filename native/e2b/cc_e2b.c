/*
 * cc_e2b: the libcurl E2B client (skeleton: every call returns CC_INTERNAL until implemented).
 */
#include "cc_e2b.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cc_status not_yet(cc_e2b_error *err) {
  if (err) {
    memset(err, 0, sizeof *err);
    err->status = CC_INTERNAL;
    snprintf(err->message, sizeof err->message, "cc_e2b: not implemented yet");
  }
  return CC_INTERNAL;
}

void cc_e2b_config_init(cc_e2b_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->allow_internet_access = true;
}
void cc_e2b_config_from_env(cc_e2b_config *cfg) { (void)cfg; }
cc_status cc_e2b_read_key_file(const char *path, char **key_out) { *key_out = NULL; return CC_INTERNAL; }
void cc_e2b_free(void *p) { free(p); }
cc_status cc_e2b_client_new(const cc_e2b_config *cfg, cc_e2b_client **out, cc_e2b_error *err) {
  *out = NULL;
  return not_yet(err);
}
void cc_e2b_client_free(cc_e2b_client *c) { (void)c; }
const char *cc_e2b_client_api_url(const cc_e2b_client *c) { return ""; }
cc_status cc_e2b_create(cc_e2b_client *c, const cc_e2b_create_opts *opts, cc_e2b_sandbox *out,
                        cc_e2b_error *err) { return not_yet(err); }
cc_status cc_e2b_connect(cc_e2b_client *c, const char *sandbox_id, int timeout_s,
                         cc_e2b_sandbox *out, cc_e2b_error *err) { return not_yet(err); }
cc_status cc_e2b_kill(cc_e2b_client *c, const char *sandbox_id, cc_e2b_error *err) { return not_yet(err); }
cc_status cc_e2b_set_timeout(cc_e2b_client *c, const char *sandbox_id, int timeout_s,
                             cc_e2b_error *err) { return not_yet(err); }
cc_status cc_e2b_get_info(cc_e2b_client *c, const char *sandbox_id, cc_e2b_info *out,
                          cc_e2b_error *err) { return not_yet(err); }
cc_status cc_e2b_host(const cc_e2b_sandbox *sb, int port, char *buf, size_t n) {
  int w = snprintf(buf, n, "%d-%s.%s", port, sb->id, sb->domain);
  if (w < 0 || (size_t)w >= n) { if (n) buf[0] = 0; return CC_TOO_LARGE; }
  return CC_OK;
}
cc_status cc_e2b_health(cc_e2b_client *c, const cc_e2b_sandbox *sb, cc_e2b_error *err) { return not_yet(err); }
cc_status cc_e2b_exec(cc_e2b_client *c, const cc_e2b_sandbox *sb, const cc_e2b_exec_opts *opts,
                      cc_e2b_exec_result *res, cc_e2b_error *err) { return not_yet(err); }
cc_status cc_e2b_send_input(cc_e2b_client *c, const cc_e2b_sandbox *sb, uint32_t pid,
                            const void *data, size_t len, cc_e2b_error *err) { return not_yet(err); }
cc_status cc_e2b_send_signal(cc_e2b_client *c, const cc_e2b_sandbox *sb, uint32_t pid, int signal,
                             cc_e2b_error *err) { return not_yet(err); }
cc_status cc_e2b_list_processes(cc_e2b_client *c, const cc_e2b_sandbox *sb,
                                cc_e2b_process_list *out, cc_e2b_error *err) { return not_yet(err); }
void cc_e2b_process_list_cleanup(cc_e2b_process_list *l) { (void)l; }
void cc_e2b_entry_cleanup(cc_e2b_entry *e) { (void)e; }
void cc_e2b_entry_list_cleanup(cc_e2b_entry_list *l) { (void)l; }
cc_status cc_e2b_stat(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *path,
                      cc_e2b_entry *out, cc_e2b_error *err) { return not_yet(err); }
cc_status cc_e2b_make_dir(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *path,
                          cc_e2b_entry *out, cc_e2b_error *err) { return not_yet(err); }
cc_status cc_e2b_move(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *source,
                      const char *destination, cc_e2b_entry *out, cc_e2b_error *err) { return not_yet(err); }
cc_status cc_e2b_list_dir(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *path,
                          int depth, cc_e2b_entry_list *out, cc_e2b_error *err) { return not_yet(err); }
cc_status cc_e2b_remove(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *path,
                        cc_e2b_error *err) { return not_yet(err); }
cc_status cc_e2b_write_file(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *path,
                            const void *data, size_t len, char *out_path, size_t out_path_n,
                            cc_e2b_error *err) { return not_yet(err); }
cc_status cc_e2b_read_file(cc_e2b_client *c, const cc_e2b_sandbox *sb, const char *path,
                           size_t max_bytes, char **data_out, size_t *len_out, cc_e2b_error *err) { return not_yet(err); }
