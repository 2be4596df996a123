/*
 * cc_sbd_watch: envd's filesystem.Filesystem/WatchDir for codecanvas-sandboxd.  The runtime
 * offers no inotify of its own, so the stream relays the lines of a small python3 program run
 * inside the sandbox (as the requesting user, in the sandbox's view of the files) through the
 * runtime's process machinery, and turns them into envd's messages (e2b-protocol.md §6).
 */
#include "cc_sbd_watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_sbd_envd.h"
#include "cc_sbd_files.h"
#include "cc_sbd_stream.h"
#include "cc_sbx.h"

/* What a WatchDir stream keeps besides the stream: the helper and its partial output. */
typedef struct {
  bool started;  /* READY seen: the watches are set, the start message sent */
  bool include_entry; /* events of entries that still exist carry their EntryInfo (0.6.3) */
  bool as_root;
  char root[4096]; /* the watched directory, resolved */
  uint32_t pid;  /* the helper, 0 once it ended */
  char line[8192];
  size_t line_len;
  char err[512];
  size_t err_len;
} watch;

static const char *json_str(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The directory watcher: the runtime offers no inotify, so WatchDir runs this small python3
 * program inside the sandbox (as the requesting user, in the sandbox's view of the files) and
 * relays its lines: "READY" once the watches are set, then "<TYPE> <JSON name>" per event,
 * named like fsnotify's (a moved-in file is CREATE, a moved-out one RENAME), relative to the
 * watched directory.  Unless network mounts are allowed (argv[3] "1", envd 0.6.4) it first
 * checks the directory's file system as envd does (statfs: NFS, CIFS, SMB, SMB2, FUSE) and
 * prints "NETMOUNT" instead of watching one.  Without python3 in the sandbox WatchDir is
 * unimplemented. */
static const char watch_program[] =
    "import ctypes, json, os, struct, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "root, rec = sys.argv[1], sys.argv[2] == \"1\"\n"
    "if sys.argv[3] != \"1\":\n"
    "    sf = ctypes.create_string_buffer(512)\n"
    "    NET = (0x6969, 0xFF534D42, 0x517B, 0xFE534D42, 0x65735546)\n"
    "    if libc.statfs(root.encode(), sf) == 0 and struct.unpack_from(\"l\", sf)[0] & 0xFFFFFFFF in NET:\n"
    "        print(\"NETMOUNT\", flush=True)\n"
    "        sys.exit(0)\n"
    "fd = libc.inotify_init1(os.O_CLOEXEC)\n"
    "MASK = 0x100 | 0x2 | 0x200 | 0x40 | 0x80 | 0x4\n"
    "wds = {}\n"
    "def add(d):\n"
    "    wd = libc.inotify_add_watch(fd, d.encode(), MASK)\n"
    "    if wd >= 0:\n"
    "        wds[wd] = d\n"
    "add(root)\n"
    "if rec:\n"
    "    for dp, dns, _ in os.walk(root):\n"
    "        for dn in dns:\n"
    "            add(os.path.join(dp, dn))\n"
    "print(\"READY\", flush=True)\n"
    "KINDS = ((0x100, \"CREATE\"), (0x80, \"CREATE\"), (0x2, \"WRITE\"), (0x200, \"REMOVE\"), (0x40, \"RENAME\"), (0x4, \"CHMOD\"))\n"
    "while True:\n"
    "    buf = os.read(fd, 65536)\n"
    "    i = 0\n"
    "    while i + 16 <= len(buf):\n"
    "        wd, mask, cookie, ln = struct.unpack_from(\"iIII\", buf, i)\n"
    "        name = buf[i + 16:i + 16 + ln].rstrip(b\"\\0\").decode(errors=\"replace\")\n"
    "        i += 16 + ln\n"
    "        d = wds.get(wd)\n"
    "        if d is None:\n"
    "            continue\n"
    "        full = os.path.join(d, name) if name else d\n"
    "        rel = os.path.relpath(full, root)\n"
    "        out = [k + \" \" + json.dumps(rel) for bit, k in KINDS if mask & bit]\n"
    "        if out:\n"
    "            print(\"\\n\".join(out), flush=True)\n"
    "        if rec and mask & 0x40000000 and mask & (0x100 | 0x80):\n"
    "            add(full)\n";


/* The EntryInfo of an event's entry, for the types whose entry still exists at its path
 * (CREATE, WRITE, CHMOD: envd never attaches one to REMOVE or RENAME, whose path may already
 * hold a different entry), stat'ed inside the sandbox as the watching user; NULL when the
 * entry is gone meanwhile or cannot be read (best effort, as envd). */
static cJSON *event_entry(cc_sbd_stream *s, const watch *w, const char *type, const char *rel) {
  if (strcmp(type, "EVENT_TYPE_CREATE") != 0 && strcmp(type, "EVENT_TYPE_WRITE") != 0 &&
      strcmp(type, "EVENT_TYPE_CHMOD") != 0)
    return NULL;
  char path[8200];
  if (strcmp(rel, ".") == 0) snprintf(path, sizeof path, "%s", w->root);
  else snprintf(path, sizeof path, "%s/%s", strcmp(w->root, "/") ? w->root : "", rel);
  cc_sbx_err err = {0};
  cc_sbx_entry e = {0};
  cJSON *o = NULL;
  if (cc_sbx_fs_stat_as(s->sb->sbx, w->as_root, path, &e, &err) == CC_OK)
    o = cc_sbd_files_entry_json(&e);
  cc_sbx_entry_cleanup(&e);
  return o;
}

/* One line of the WatchDir helper: "READY" or "<TYPE> <JSON string name>". */
static void watch_line(cc_sbd_stream *s, watch *w, const char *line) {
  if (strcmp(line, "READY") == 0) {
    if (!w->started) {
      w->started = true;
      cJSON *o = cJSON_CreateObject();
      cJSON_AddObjectToObject(o, "start");
      cc_sbd_stream_push_json(s, 0, o);
    }
    return;
  }
  if (strcmp(line, "NETMOUNT") == 0 && !w->started) {
    char msg[4200];
    snprintf(msg, sizeof msg, "cannot watch path on network filesystem: %s", w->root);
    cc_sbd_stream_push_eos(s, CC_CONNECT_INVALID_ARGUMENT, msg);
    return;
  }
  const char *sp = strchr(line, ' ');
  if (!sp || !w->started) return;
  cJSON *name = cJSON_Parse(sp + 1);
  if (cJSON_IsString(name)) {
    char type[48];
    snprintf(type, sizeof type, "EVENT_TYPE_%.*s", (int)(sp - line), line);
    cJSON *o = cJSON_CreateObject();
    cJSON *ev = cJSON_AddObjectToObject(o, "filesystem");
    cJSON_AddStringToObject(ev, "name", name->valuestring);
    cJSON_AddStringToObject(ev, "type", type);
    cJSON *entry = w->include_entry ? event_entry(s, w, type, name->valuestring) : NULL;
    if (entry) cJSON_AddItemToObject(ev, "entry", entry);
    cc_sbd_stream_push_json(s, 0, o);
  }
  cJSON_Delete(name);
}

/* Turns a runtime event of the WatchDir helper into envelopes. */
static void watch_event(cc_sbd_stream *s, const cc_sbx_event *ev) {
  watch *w = s->ext;
  switch (ev->type) {
  case CC_SBX_EV_STDOUT:
    for (size_t i = 0; i < ev->len; i++) {
      char ch = (char)ev->data[i];
      if (ch == '\n') {
        w->line[w->line_len] = 0;
        watch_line(s, w, w->line);
        w->line_len = 0;
      } else if (w->line_len + 1 < sizeof w->line) {
        w->line[w->line_len++] = ch;
      }
    }
    break;
  case CC_SBX_EV_STDERR: {
    size_t n = ev->len < sizeof w->err - 1 - w->err_len ? ev->len : sizeof w->err - 1 - w->err_len;
    memcpy(w->err + w->err_len, ev->data, n);
    w->err_len += n;
    w->err[w->err_len] = 0;
    break;
  }
  case CC_SBX_EV_END:
    w->pid = 0;
    if (ev->sandbox_gone) { /* as for a process stream */
      s->done = s->drop = true;
      break;
    }
    if (w->started) cc_sbd_stream_push_eos(s, CC_CONNECT_OK, NULL);
    else cc_sbd_stream_push_eos(s, CC_CONNECT_INTERNAL, w->err_len ? w->err : "the directory watcher ended");
    break;
  default:
    break;
  }
}

static cJSON *watch_keepalive(cc_sbd_stream *s) {
  watch *w = s->ext;
  if (!w->started) return NULL;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddObjectToObject(o, "keepalive");
  return o;
}

static void watch_free(cc_sbd_stream *s) {
  watch *w = s->ext;
  if (!w) return;
  if (w->pid) cc_sbx_proc_signal(s->sb->sbx, w->pid, 9, NULL);
  free(w);
  s->ext = NULL;
}

enum MHD_Result cc_sbd_watch_dir(cc_sbd_req *r, const cJSON *msg) {
  const char *path = json_str(msg, "path");
  bool recursive = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(msg, "recursive"));
  char abs[4096];
  if (!cc_sbd_envd_resolve_path_as(r->as_root, path ? path : "", abs, sizeof abs))
    return cc_sbd_stream_error(r, CC_CONNECT_INVALID_ARGUMENT, "invalid path %s", path ? path : "");
  cc_sbx_err err = {0};
  cc_sbx_entry e = {0};
  cc_status st = cc_sbx_fs_stat_as(r->sb->sbx, r->as_root, abs, &e, &err);
  cc_sbx_filetype type = e.type;
  cc_sbx_entry_cleanup(&e);
  if (st == CC_NOT_FOUND || err.kind == CC_SBX_ERR_NOT_FOUND)
    return cc_sbd_stream_error(r, CC_CONNECT_NOT_FOUND, "path %s not found: %s", abs, cc_sbd_envd_err_msg(&err, st));
  if (st != CC_OK) return cc_sbd_stream_error(r, cc_sbd_envd_connect_code(err.kind), "%s", cc_sbd_envd_err_msg(&err, st));
  if (type != CC_SBX_FT_DIR)
    return cc_sbd_stream_error(r, CC_CONNECT_INVALID_ARGUMENT, "path %s not a directory", abs);
  bool include_entry = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(msg, "includeEntry"));
  bool allow_net = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(msg, "allowNetworkMounts"));
  const char *args[] = {"-c", watch_program, abs, recursive ? "1" : "0", allow_net ? "1" : "0"};
  long t = cc_sbd_stream_timeout_ms(r);
  cc_sbx_proc_spec spec = {
    .cmd = "python3",
    .args = args,
    .n_args = 5,
    .tag = CC_SBD_WATCH_TAG,
    .stdin_pipe = false,
    .timeout_ms = t > 0 ? (uint64_t)t + 1000 : 0,
    .as_root = r->as_root,
  };
  cc_sbd_stream *s = cc_sbd_stream_new(r);
  watch *w = s ? calloc(1, sizeof *w) : NULL;
  if (!w) {
    cc_sbd_stream_free(s);
    return cc_sbd_stream_error(r, CC_CONNECT_INTERNAL, "out of memory");
  }
  w->include_entry = include_entry;
  w->as_root = r->as_root;
  snprintf(w->root, sizeof w->root, "%s", abs);
  s->ext = w;
  s->on_event = watch_event;
  s->keepalive = watch_keepalive;
  s->on_free = watch_free;
  st = cc_sbx_proc_start(r->sb->sbx, &spec, &w->pid, &s->sub, &err);
  if (st != CC_OK) {
    w->pid = 0;
    cc_sbd_stream_free(s);
    if (err.kind == CC_SBX_ERR_NOT_FOUND)
      return cc_sbd_stream_error(r, CC_CONNECT_UNIMPLEMENTED,
                          "WatchDir needs python3 inside the sandbox: %s", cc_sbd_envd_err_msg(&err, st));
    return cc_sbd_stream_error(r, cc_sbd_envd_connect_code(err.kind), "%s", cc_sbd_envd_err_msg(&err, st));
  }
  if (t > 0) s->deadline_ms = cc_sbd_now_ms() + t;
  return cc_sbd_stream_respond(r, s);
}
