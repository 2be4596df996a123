/* cc_sbx skeleton: every call fails until the runtime lands. */
#include "cc_sbx.h"
#include <stdlib.h>

void cc_sbx_config_init(cc_sbx_config *cfg) {  }
cc_status cc_sbx_runtime_new(const cc_sbx_config *cfg, cc_sbx_runtime **out, cc_sbx_err *err) { return CC_INTERNAL; }
void cc_sbx_runtime_free(cc_sbx_runtime *rt) {  }
void cc_sbx_runtime_get_info(cc_sbx_runtime *rt, cc_sbx_runtime_info *out) {  }
cc_status cc_sbx_create(cc_sbx_runtime *rt, const cc_sbx_create_opts *opts, cc_sbx **out,
                        cc_sbx_err *err) { return CC_INTERNAL; }
cc_status cc_sbx_open(cc_sbx_runtime *rt, const char *id, cc_sbx **out) { return CC_INTERNAL; }
void cc_sbx_release(cc_sbx *sbx) {  }
cc_status cc_sbx_kill(cc_sbx_runtime *rt, const char *id) { return CC_INTERNAL; }
cc_status cc_sbx_get_info(cc_sbx *sbx, cc_sbx_info *out) { return CC_INTERNAL; }
cc_status cc_sbx_list_ids(cc_sbx_runtime *rt, char ***ids, size_t *n) { return CC_INTERNAL; }
void cc_sbx_ids_free(char **ids, size_t n) {  }
cc_status cc_sbx_proc_start(cc_sbx *sbx, const cc_sbx_proc_spec *spec, uint32_t *pid,
                            cc_sbx_sub **sub, cc_sbx_err *err) { return CC_INTERNAL; }
cc_status cc_sbx_proc_subscribe(cc_sbx *sbx, uint32_t pid, cc_sbx_sub **sub, cc_sbx_err *err) { return CC_INTERNAL; }
cc_status cc_sbx_proc_find_tag(cc_sbx *sbx, const char *tag, uint32_t *pid) { return CC_INTERNAL; }
cc_status cc_sbx_sub_next(cc_sbx_sub *sub, int timeout_ms, cc_sbx_event *ev) { return CC_INTERNAL; }
int cc_sbx_sub_fd(cc_sbx_sub *sub) { return -1; }
void cc_sbx_sub_free(cc_sbx_sub *sub) {  }
cc_status cc_sbx_proc_write_stdin(cc_sbx *sbx, uint32_t pid, const void *data, size_t len,
                                  int timeout_ms, cc_sbx_err *err) { return CC_INTERNAL; }
cc_status cc_sbx_proc_close_stdin(cc_sbx *sbx, uint32_t pid, cc_sbx_err *err) { return CC_INTERNAL; }
cc_status cc_sbx_proc_signal(cc_sbx *sbx, uint32_t pid, int sig, cc_sbx_err *err) { return CC_INTERNAL; }
cc_status cc_sbx_proc_list(cc_sbx *sbx, cc_sbx_proc_info **list, size_t *n) { return CC_INTERNAL; }
void cc_sbx_proc_list_free(cc_sbx_proc_info *list, size_t n) {  }
cc_status cc_sbx_connect_port(cc_sbx *sbx, uint16_t port, int *fd, cc_sbx_err *err) { return CC_INTERNAL; }
void cc_sbx_entry_cleanup(cc_sbx_entry *e) {  }
void cc_sbx_entries_free(cc_sbx_entry *list, size_t n) {  }
cc_status cc_sbx_fs_stat(cc_sbx *sbx, const char *path, cc_sbx_entry *out, cc_sbx_err *err) { return CC_INTERNAL; }
cc_status cc_sbx_fs_mkdir(cc_sbx *sbx, const char *path, cc_sbx_entry *out, cc_sbx_err *err) { return CC_INTERNAL; }
cc_status cc_sbx_fs_move(cc_sbx *sbx, const char *src, const char *dst, cc_sbx_entry *out,
                         cc_sbx_err *err) { return CC_INTERNAL; }
cc_status cc_sbx_fs_list(cc_sbx *sbx, const char *dir, uint32_t depth, size_t max_entries,
                         cc_sbx_entry **list, size_t *n, cc_sbx_err *err) { return CC_INTERNAL; }
cc_status cc_sbx_fs_remove(cc_sbx *sbx, const char *path, cc_sbx_err *err) { return CC_INTERNAL; }
cc_status cc_sbx_fs_open_read(cc_sbx *sbx, const char *path, int *fd, int64_t *size,
                              cc_sbx_err *err) { return CC_INTERNAL; }
cc_status cc_sbx_fs_open_write(cc_sbx *sbx, const char *path, int *fd, cc_sbx_err *err) { return CC_INTERNAL; }
cc_status cc_sbx_fs_read_file(cc_sbx *sbx, const char *path, size_t max_bytes, uint8_t **data,
                              size_t *len, cc_sbx_err *err) { return CC_INTERNAL; }
cc_status cc_sbx_fs_write_file(cc_sbx *sbx, const char *path, const void *data, size_t len,
                               cc_sbx_err *err) { return CC_INTERNAL; }
cc_status cc_sbx_err_from_errno(cc_sbx_err *err, int e, const char *what, const char *path) { return CC_INTERNAL; }
cc_status cc_sbx_errkind_status(cc_sbx_errkind k) { return CC_INTERNAL; }
const char *cc_sbx_errkind_name(cc_sbx_errkind k) { return "SYSTEM"; }
