/*
 * cc_test: the tiny assertion harness of the C unit tests.
 *
 * Each tests/unit/test_*.c is one executable registered with ctest.  CHECK records a
 * failure with file and line and goes on; the runner's exit code is the failure count
 * (capped at 255), so ctest reports the file as failed when any check failed.
 */
#ifndef CC_TEST_H
#define CC_TEST_H

#include <stdio.h>
#include <string.h>

#ifdef CC_TEST_SHARED_COUNTS
/* A test executable of several files: one of them defines the counters, all count there. */
extern int cc_test_failures;
extern int cc_test_checks;
#else
static int cc_test_failures;
static int cc_test_checks;
#endif

#define CHECK(cond)                                                               \
  do {                                                                            \
    cc_test_checks++;                                                             \
    if (!(cond)) {                                                                \
      cc_test_failures++;                                                         \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);    \
    }                                                                             \
  } while (0)

#define CHECK_STR(a, b)                                                           \
  do {                                                                            \
    const char *cc_a_ = (a), *cc_b_ = (b);                                        \
    cc_test_checks++;                                                             \
    if (!cc_a_ || !cc_b_ || strcmp(cc_a_, cc_b_) != 0) {                          \
      cc_test_failures++;                                                         \
      fprintf(stderr, "%s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__,             \
              cc_a_ ? cc_a_ : "(null)", cc_b_ ? cc_b_ : "(null)");                \
    }                                                                             \
  } while (0)

#define CHECK_INT(a, b)                                                           \
  do {                                                                            \
    long long cc_a_ = (long long)(a), cc_b_ = (long long)(b);                     \
    cc_test_checks++;                                                             \
    if (cc_a_ != cc_b_) {                                                         \
      cc_test_failures++;                                                         \
      fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__,    \
              #a, cc_a_, cc_b_);                                                  \
    }                                                                             \
  } while (0)

#define RUN(test)                                                                 \
  do {                                                                            \
    int before_ = cc_test_failures;                                               \
    test();                                                                       \
    printf("%s %s\n", cc_test_failures == before_ ? "ok  " : "FAIL", #test);      \
  } while (0)

#define CC_TEST_DONE()                                                            \
  (printf("%d checks, %d failed\n", cc_test_checks, cc_test_failures),            \
   cc_test_failures > 255 ? 255 : cc_test_failures)

#endif
