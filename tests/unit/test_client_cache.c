/* The client cache: the local exec-cache rule (generation equality + maxStale), clearing,
 * documents for offline reads, row caps, and persistence of a database file across
 * reopen (what IndexedDB gives the wasm build). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cc_client_cache.h"
#include "cc_test.h"

static cc_client_cache *open_mem(void) {
  cc_client_cache *c = NULL;
  CHECK_INT(cc_client_cache_open(":memory:", NULL, &c), CC_OK);
  return c;
}

static void exec_hit_needs_seen_generation_and_age(void) {
  cc_client_cache *c = open_mem();
  char *js = NULL;
  /* Nothing seen for the project yet: no hit even with an entry. */
  CHECK_INT(cc_client_cache_exec_put(c, "p", "ls", 3, 1000, "{\"stdout\":\"a\"}"), CC_OK);
  CHECK_INT(cc_client_cache_exec_get(c, "p", "ls", 1000, 3600000, &js), CC_NOT_FOUND);
  CHECK(js == NULL);
  bool changed = false;
  CHECK_INT(cc_client_cache_seen_generation(c, "p", 3, &changed), CC_OK);
  CHECK(changed);
  CHECK_INT(cc_client_cache_exec_get(c, "p", "ls", 1000, 3600000, &js), CC_OK);
  CHECK_STR(js, "{\"stdout\":\"a\"}");
  free(js);
  /* Older than max_stale: miss; exactly at the edge: hit. */
  CHECK_INT(cc_client_cache_exec_get(c, "p", "ls", 1000 + 3600000, 3600000, &js), CC_OK);
  free(js);
  CHECK_INT(cc_client_cache_exec_get(c, "p", "ls", 1001 + 3600000, 3600000, &js), CC_NOT_FOUND);
  /* Other key, other project: miss. */
  CHECK_INT(cc_client_cache_exec_get(c, "p", "ls -l", 1000, 3600000, &js), CC_NOT_FOUND);
  CHECK_INT(cc_client_cache_exec_get(c, "q", "ls", 1000, 3600000, &js), CC_NOT_FOUND);
  /* A newer generation (a change made by anyone) makes the entry unusable. */
  CHECK_INT(cc_client_cache_seen_generation(c, "p", 4, &changed), CC_OK);
  CHECK(changed);
  CHECK_INT(cc_client_cache_exec_get(c, "p", "ls", 1000, 3600000, &js), CC_NOT_FOUND);
  /* Generations never go back. */
  CHECK_INT(cc_client_cache_seen_generation(c, "p", 3, &changed), CC_OK);
  CHECK(!changed);
  int64_t g = 0;
  CHECK_INT(cc_client_cache_generation(c, "p", &g), CC_OK);
  CHECK_INT(g, 4);
  CHECK_INT(cc_client_cache_generation(c, "nobody", &g), CC_NOT_FOUND);
  cc_client_cache_free(c);
}

static void clear_one_or_all(void) {
  cc_client_cache *c = open_mem();
  CHECK_INT(cc_client_cache_seen_generation(c, "p", 1, NULL), CC_OK);
  CHECK_INT(cc_client_cache_exec_put(c, "p", "a", 1, 0, "{}"), CC_OK);
  CHECK_INT(cc_client_cache_exec_put(c, "p", "b", 1, 0, "{}"), CC_OK);
  CHECK_INT(cc_client_cache_exec_put(c, "q", "a", 1, 0, "{}"), CC_OK);
  int n = -1;
  CHECK_INT(cc_client_cache_exec_clear(c, "p", "a", &n), CC_OK);
  CHECK_INT(n, 1);
  char *js = NULL;
  CHECK_INT(cc_client_cache_exec_get(c, "p", "a", 0, 10, &js), CC_NOT_FOUND);
  CHECK_INT(cc_client_cache_exec_get(c, "p", "b", 0, 10, &js), CC_OK);
  free(js);
  CHECK_INT(cc_client_cache_exec_clear(c, "p", NULL, &n), CC_OK);
  CHECK_INT(n, 1);
  CHECK_INT(cc_client_cache_exec_get(c, "p", "b", 0, 10, &js), CC_NOT_FOUND);
  CHECK_INT(cc_client_cache_seen_generation(c, "q", 1, NULL), CC_OK);
  CHECK_INT(cc_client_cache_exec_get(c, "q", "a", 0, 10, &js), CC_OK); /* other project kept */
  free(js);
  cc_client_cache_free(c);
}

static void documents_replace_and_drop(void) {
  cc_client_cache *c = open_mem();
  CHECK_INT(cc_client_cache_doc_put(c, CC_DOC_PROJECT, "p", "", 5, "{\"name\":\"a\"}"), CC_OK);
  CHECK_INT(cc_client_cache_doc_put(c, CC_DOC_PROJECT, "p", "", 6, "{\"name\":\"b\"}"), CC_OK);
  CHECK_INT(cc_client_cache_doc_put(c, CC_DOC_HISTORY, "p", "limit=50", 7, "{\"items\":[]}"),
            CC_OK);
  char *js = NULL;
  int64_t at = 0;
  CHECK_INT(cc_client_cache_doc_get(c, CC_DOC_PROJECT, "p", "", &js, &at), CC_OK);
  CHECK_STR(js, "{\"name\":\"b\"}");
  CHECK_INT(at, 6);
  free(js);
  CHECK_INT(cc_client_cache_doc_get(c, CC_DOC_HISTORY, "p", "limit=10", &js, NULL),
            CC_NOT_FOUND);
  CHECK_INT(cc_client_cache_drop_project(c, "p"), CC_OK);
  CHECK_INT(cc_client_cache_doc_get(c, CC_DOC_PROJECT, "p", "", &js, NULL), CC_NOT_FOUND);
  CHECK_INT(cc_client_cache_doc_get(c, CC_DOC_HISTORY, "p", "limit=50", &js, NULL),
            CC_NOT_FOUND);
  cc_client_cache_free(c);
}

static void caps_prune_oldest(void) {
  cc_client_cache_limits lim = {.max_exec_entries = 10, .max_docs = 10, .max_value_bytes = 64};
  cc_client_cache *c = NULL;
  CHECK_INT(cc_client_cache_open(":memory:", &lim, &c), CC_OK);
  CHECK_INT(cc_client_cache_seen_generation(c, "p", 1, NULL), CC_OK);
  char key[32];
  for (int i = 0; i < 200; i++) {
    snprintf(key, sizeof key, "k%d", i);
    CHECK_INT(cc_client_cache_exec_put(c, "p", key, 1, i, "{}"), CC_OK);
    CHECK_INT(cc_client_cache_doc_put(c, CC_DOC_RECORD, "", key, i, "{}"), CC_OK);
  }
  char *js = NULL;
  int hits = 0;
  for (int i = 0; i < 200; i++) {
    snprintf(key, sizeof key, "k%d", i);
    if (cc_client_cache_exec_get(c, "p", key, 0, 1000, &js) == CC_OK) hits++, free(js);
  }
  CHECK(hits >= 10 && hits < 10 + 32); /* cap plus the prune interval */
  CHECK_INT(cc_client_cache_exec_get(c, "p", "k199", 0, 1000, &js), CC_OK); /* newest kept */
  free(js);
  CHECK_INT(cc_client_cache_doc_get(c, CC_DOC_RECORD, "", "k0", &js, NULL), CC_NOT_FOUND);
  /* Too-large values are not stored (and are not an error). */
  char big[100];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  CHECK_INT(cc_client_cache_doc_put(c, CC_DOC_RECORD, "", "big", 1000, big), CC_OK);
  CHECK_INT(cc_client_cache_doc_get(c, CC_DOC_RECORD, "", "big", &js, NULL), CC_NOT_FOUND);
  cc_client_cache_free(c);
}

static void file_survives_reopen(void) {
  char path[] = "/tmp/cc-client-cache-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  close(fd);
  unlink(path);
  cc_client_cache *c = NULL;
  CHECK_INT(cc_client_cache_open(path, NULL, &c), CC_OK);
  CHECK_INT(cc_client_cache_seen_generation(c, "p", 9, NULL), CC_OK);
  CHECK_INT(cc_client_cache_exec_put(c, "p", "ls", 9, 10, "{\"x\":1}"), CC_OK);
  cc_client_cache_free(c);
  CHECK_INT(cc_client_cache_open(path, NULL, &c), CC_OK);
  char *js = NULL;
  CHECK_INT(cc_client_cache_exec_get(c, "p", "ls", 10, 10, &js), CC_OK);
  CHECK_STR(js, "{\"x\":1}");
  free(js);
  cc_client_cache_free(c);
  unlink(path);
  char journal[sizeof path + 8];
  snprintf(journal, sizeof journal, "%s-journal", path);
  unlink(journal);
}

/* The wasm form: an in-memory database whose image JS keeps in IndexedDB. */
static void image_round_trip_and_corrupt_image(void) {
  cc_client_cache *c = NULL;
  CHECK_INT(cc_client_cache_open_image(NULL, 0, NULL, &c), CC_OK);
  CHECK_INT(cc_client_cache_seen_generation(c, "p", 4, NULL), CC_OK);
  CHECK_INT(cc_client_cache_exec_put(c, "p", "ls", 4, 10, "{\"x\":2}"), CC_OK);
  CHECK_INT(cc_client_cache_doc_put(c, CC_DOC_PROJECT, "p", "", 10, "{\"name\":\"n\"}"), CC_OK);
  const unsigned char *img = NULL;
  size_t len = 0;
  CHECK_INT(cc_client_cache_image(c, &img, &len), CC_OK);
  CHECK(len >= 4096 && memcmp(img, "SQLite format 3", 16) == 0);
  unsigned char *copy = malloc(len);
  memcpy(copy, img, len);
  cc_client_cache_free(c);

  CHECK_INT(cc_client_cache_open_image(copy, len, NULL, &c), CC_OK);
  char *js = NULL;
  CHECK_INT(cc_client_cache_exec_get(c, "p", "ls", 10, 10, &js), CC_OK);
  CHECK_STR(js, "{\"x\":2}");
  free(js);
  CHECK_INT(cc_client_cache_doc_get(c, CC_DOC_PROJECT, "p", "", &js, NULL), CC_OK);
  free(js);
  /* Writes after loading an image grow it; the new image has them. */
  CHECK_INT(cc_client_cache_doc_put(c, CC_DOC_RECORD, "", "e1", 11, "{\"id\":\"e1\"}"), CC_OK);
  CHECK_INT(cc_client_cache_image(c, &img, &len), CC_OK);
  unsigned char *copy2 = malloc(len);
  memcpy(copy2, img, len);
  size_t len2 = len;
  cc_client_cache_free(c);
  CHECK_INT(cc_client_cache_open_image(copy2, len2, NULL, &c), CC_OK);
  CHECK_INT(cc_client_cache_doc_get(c, CC_DOC_RECORD, "", "e1", &js, NULL), CC_OK);
  free(js);
  cc_client_cache_free(c);

  /* A damaged image is dropped: the cache opens empty instead of failing. */
  memset(copy, 'x', 100);
  CHECK_INT(cc_client_cache_open_image(copy, len, NULL, &c), CC_OK);
  CHECK_INT(cc_client_cache_exec_get(c, "p", "ls", 10, 10, &js), CC_NOT_FOUND);
  CHECK_INT(cc_client_cache_exec_put(c, "p", "ls", 4, 10, "{}"), CC_OK);
  cc_client_cache_free(c);
  free(copy);
  free(copy2);

  /* A file cache has no image. */
  CHECK_INT(cc_client_cache_open(":memory:", NULL, &c), CC_OK);
  CHECK_INT(cc_client_cache_image(c, &img, &len), CC_INTERNAL);
  cc_client_cache_free(c);
}

/* Two tabs of one user each keep an image of the same cache: merging keeps both tabs' entries,
 * the newer one of a key, the higher generation; a foreign image changes nothing. */
static void images_of_two_tabs_merge(void) {
  cc_client_cache *a = NULL, *b = NULL;
  CHECK_INT(cc_client_cache_open_image(NULL, 0, NULL, &a), CC_OK);
  CHECK_INT(cc_client_cache_open_image(NULL, 0, NULL, &b), CC_OK);
  if (!a || !b) return;
  bool changed;
  cc_client_cache_seen_generation(a, "p", 3, &changed);
  cc_client_cache_seen_generation(b, "p", 5, &changed);
  CHECK_INT(cc_client_cache_exec_put(a, "p", "echo a", 5, 100, "{\"stdout\":\"a\"}"), CC_OK);
  CHECK_INT(cc_client_cache_exec_put(b, "p", "echo b", 5, 100, "{\"stdout\":\"b\"}"), CC_OK);
  CHECK_INT(cc_client_cache_exec_put(a, "p", "ls", 5, 200, "{\"stdout\":\"newer\"}"), CC_OK);
  CHECK_INT(cc_client_cache_exec_put(b, "p", "ls", 5, 150, "{\"stdout\":\"older\"}"), CC_OK);
  CHECK_INT(cc_client_cache_doc_put(a, CC_DOC_PROJECT, "p", "", 300, "{\"name\":\"A\"}"), CC_OK);
  CHECK_INT(cc_client_cache_doc_put(b, CC_DOC_PROJECT, "p", "", 100, "{\"name\":\"B\"}"), CC_OK);
  const unsigned char *img;
  size_t n;
  CHECK_INT(cc_client_cache_image(a, &img, &n), CC_OK);
  unsigned char *copy = malloc(n);
  memcpy(copy, img, n);
  CHECK_INT(cc_client_cache_merge_image(b, copy, n), CC_OK);
  char *js = NULL;
  int64_t g = 0, at = 0;
  CHECK_INT(cc_client_cache_generation(b, "p", &g), CC_OK);
  CHECK_INT(g, 5); /* the higher one */
  CHECK_INT(cc_client_cache_exec_get(b, "p", "echo a", 100, 1000, &js), CC_OK); /* A's */
  CHECK_STR(js, "{\"stdout\":\"a\"}");
  free(js);
  CHECK_INT(cc_client_cache_exec_get(b, "p", "echo b", 100, 1000, &js), CC_OK); /* its own */
  free(js);
  CHECK_INT(cc_client_cache_exec_get(b, "p", "ls", 200, 1000, &js), CC_OK);
  CHECK_STR(js, "{\"stdout\":\"newer\"}");
  free(js);
  CHECK_INT(cc_client_cache_doc_get(b, CC_DOC_PROJECT, "p", "", &js, &at), CC_OK);
  CHECK_STR(js, "{\"name\":\"A\"}");
  CHECK_INT(at, 300);
  free(js);
  /* merging again changes nothing; a foreign image is refused and changes nothing */
  CHECK_INT(cc_client_cache_merge_image(b, copy, n), CC_OK);
  static const unsigned char junk[] = "not a database at all, just some bytes that are not SQLite";
  CHECK_INT(cc_client_cache_merge_image(b, junk, sizeof junk), CC_INTERNAL);
  CHECK_INT(cc_client_cache_exec_get(b, "p", "echo a", 100, 1000, &js), CC_OK);
  free(js);
  free(copy);
  cc_client_cache_free(a);
  cc_client_cache_free(b);
}

int main(void) {
  RUN(image_round_trip_and_corrupt_image);
  RUN(images_of_two_tabs_merge);
  RUN(exec_hit_needs_seen_generation_and_age);
  RUN(clear_one_or_all);
  RUN(documents_replace_and_drop);
  RUN(caps_prune_oldest);
  RUN(file_survives_reopen);
  return CC_TEST_DONE();
}
