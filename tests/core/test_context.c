/* ct_context: errors with locations and tracebacks, status strings, logging,
 * the cache folder, and independence of contexts across threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ct_test.h"

static int inner_fails(ct_context *ctx) {
  return CT_ERROR(ctx, CT_ERR_ARG, "n must be positive, got %d", -3);
}

static int middle(ct_context *ctx) {
  CT_CHECK(ctx, inner_fails(ctx));
  return CT_OK;
}

static int outer(ct_context *ctx) {
  CT_CHECK(ctx, middle(ctx));
  return CT_OK;
}

static void test_error_location_and_traceback(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  assert_non_null(ctx);
  assert_string_equal(ct_errmsg(ctx), "no error");
  assert_int_equal(ct_errcode(ctx), CT_OK);

  assert_int_equal(outer(ctx), CT_ERR_ARG);
  assert_int_equal(ct_errcode(ctx), CT_ERR_ARG);
  const char *msg = ct_errmsg(ctx);
  assert_non_null(strstr(msg, "core/test_context.c:"));
  assert_non_null(strstr(msg, "inner_fails: n must be positive, got -3"));
  const char *from_middle = strstr(msg, "\n  from core/test_context.c:");
  assert_non_null(from_middle);
  assert_non_null(strstr(from_middle, " middle"));
  assert_non_null(strstr(msg, " outer"));
  assert_true(strstr(msg, " middle") < strstr(msg, " outer"));

  /* The message alone, without location and traceback, whole or cut. */
  char text[64], tiny[8];
  assert_string_equal(ct_errmsg_text(ctx, text, sizeof text), "n must be positive, got -3");
  assert_string_equal(ct_errmsg_text(ctx, tiny, sizeof tiny), "n must ");
  /* A message spanning lines keeps its lines. */
  CT_ERROR(ctx, CT_ERR_CONFIG, "bad expression\n  k*x +\n      ^");
  assert_string_equal(ct_errmsg_text(ctx, text, sizeof text), "bad expression\n  k*x +\n      ^");

  ct_error_clear(ctx);
  assert_string_equal(ct_errmsg(ctx), "no error");
  ct_context_free(ctx);
}

static int returns_raw_status(void) { return CT_ERR_SOLVER; }

static int passes_raw(ct_context *ctx) {
  CT_CHECK(ctx, returns_raw_status());
  return CT_OK;
}

/* A negative status from a call that recorded nothing still gets a message. */
static void test_trace_without_recorded_error(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  assert_int_equal(passes_raw(ctx), CT_ERR_SOLVER);
  assert_non_null(strstr(ct_errmsg(ctx), "passes_raw: solver failure"));
  ct_context_free(ctx);
}

static void test_long_messages_truncate_safely(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  char big[10000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  CT_ERROR(ctx, CT_ERR_IO, "%s", big);
  for (int i = 0; i < 200; i++)
    ct_error_trace(ctx, CT_ERR_IO, __FILE__, __LINE__, __func__);
  assert_true(strlen(ct_errmsg(ctx)) < 4096);
  ct_context_free(ctx);
}

static void test_status_strings(void **state) {
  (void)state;
  assert_string_equal(ct_status_str(CT_OK), "success");
  assert_string_equal(ct_status_str(CT_ERR_NOMEM), "out of memory");
  assert_string_equal(ct_status_name(CT_ERR_NOMEM), "CT_ERR_NOMEM");
  assert_string_equal(ct_status_name(CT_RETRACE), "CT_RETRACE");
  assert_string_equal(ct_status_str(-999), "unknown status");
  assert_string_equal(ct_status_name(12345), "CT_UNKNOWN");
#define CHECK_LISTED_(name, value, message)             \
  assert_string_equal(ct_status_str(value), message); \
  assert_string_equal(ct_status_name(value), #name);  \
  assert_true((value == 0) == (name == CT_OK));
  CT_STATUS_LIST(CHECK_LISTED_)
#undef CHECK_LISTED_
}

static void test_free_null_is_noop(void **state) {
  (void)state;
  ct_context_free(NULL);
  ct_context *ctx = ct_context_new(NULL);
  ct_free(ctx, NULL);
  ct_context_free(ctx);
  assert_string_equal(ct_errmsg(NULL),
                      "no context (creating it failed: out of memory?)");
}

typedef struct log_capture {
  int calls;
  ct_log_level last_level;
  char last[256];
} log_capture;

static void capture_log(void *ud, ct_log_level level, const char *message) {
  log_capture *c = ud;
  c->calls++;
  c->last_level = level;
  snprintf(c->last, sizeof c->last, "%s", message);
}

static void test_logging_levels_and_sink(void **state) {
  (void)state;
  setenv("COTANGENT_LOG", "info", 1);
  ct_context *ctx = ct_context_new(NULL);
  unsetenv("COTANGENT_LOG");
  assert_int_equal(ct_context_log_level(ctx), CT_LOG_INFO);
  log_capture cap = {0};
  ct_context_set_log_fn(ctx, capture_log, &cap);
  ct_context_log(ctx, CT_LOG_DEBUG, "hidden %d", 1);
  assert_int_equal(cap.calls, 0);
  ct_context_log(ctx, CT_LOG_WARNING, "picked %s", "klu");
  assert_int_equal(cap.calls, 1);
  assert_int_equal(cap.last_level, CT_LOG_WARNING);
  assert_string_equal(cap.last, "picked klu");
  ct_context_set_log_level(ctx, CT_LOG_QUIET);
  ct_context_log(ctx, CT_LOG_ERROR, "silenced");
  assert_int_equal(cap.calls, 1);
  ct_context_set_log_level(ctx, (ct_log_level)99);
  assert_int_equal(ct_context_log_level(ctx), CT_LOG_DEBUG);
  ct_context_free(ctx);

  setenv("COTANGENT_LOG", "0", 1);
  ctx = ct_context_new(NULL);
  assert_int_equal(ct_context_log_level(ctx), CT_LOG_QUIET);
  ct_context_free(ctx);
  setenv("COTANGENT_LOG", "nonsense", 1);
  ctx = ct_context_new(NULL);
  assert_int_equal(ct_context_log_level(ctx), CT_LOG_WARNING);
  ct_context_free(ctx);
  unsetenv("COTANGENT_LOG");
}

static void expect_cache(const char *want) {
  ct_context *ctx = ct_context_new(NULL);
  assert_non_null(ctx);
  assert_string_equal(ct_context_cache_dir(ctx), want);
  ct_context_free(ctx);
}

static void test_cache_dir_resolution(void **state) {
  (void)state;
  char *saved = getenv("COTANGENT_CACHE") ? strdup(getenv("COTANGENT_CACHE")) : NULL;
  setenv("COTANGENT_CACHE", "/tmp/ct-a", 1);
  setenv("XDG_CACHE_HOME", "/tmp/xdg", 1);
  expect_cache("/tmp/ct-a");
  unsetenv("COTANGENT_CACHE");
  expect_cache("/tmp/xdg/cotangent");
  unsetenv("XDG_CACHE_HOME");
  setenv("HOME", "/home/someone", 1);
  expect_cache("/home/someone/.cache/cotangent");
  unsetenv("HOME");
  expect_cache("/tmp/cotangent-cache");

  ct_context *ctx = ct_context_new(NULL);
  assert_int_equal(ct_context_set_cache_dir(ctx, "/var/tmp/x"), CT_OK);
  assert_string_equal(ct_context_cache_dir(ctx), "/var/tmp/x");
  assert_int_equal(ct_context_set_cache_dir(ctx, ""), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "non-empty path"));
  assert_string_equal(ct_context_cache_dir(ctx), "/var/tmp/x");
  ct_context_free(ctx);
  if (saved) {
    setenv("COTANGENT_CACHE", saved, 1);
    free(saved);
  }
}

/* Each thread records and checks its own errors many times over: contexts
 * share no mutable state, so no message ever shows another thread's text. */
static void *error_worker(void *arg) {
  long id = (long)(intptr_t)arg;
  ct_context *ctx = ct_context_new(NULL);
  if (!ctx) return (void *)1;
  char want[64];
  snprintf(want, sizeof want, "worker %ld", id);
  for (int i = 0; i < 20000; i++) {
    CT_ERROR(ctx, CT_ERR_NUMERIC, "worker %ld", id);
    if (!strstr(ct_errmsg(ctx), want)) {
      ct_context_free(ctx);
      return (void *)1;
    }
    ct_error_clear(ctx);
  }
  ct_context_free(ctx);
  return NULL;
}

static void test_contexts_are_independent_across_threads(void **state) {
  (void)state;
  pthread_t th[4];
  for (long i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&th[i], NULL, error_worker, (void *)(intptr_t)i), 0);
  for (int i = 0; i < 4; i++) {
    void *ret = (void *)1;
    pthread_join(th[i], &ret);
    assert_null(ret);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_error_location_and_traceback),
      cmocka_unit_test(test_trace_without_recorded_error),
      cmocka_unit_test(test_long_messages_truncate_safely),
      cmocka_unit_test(test_status_strings),
      cmocka_unit_test(test_free_null_is_noop),
      cmocka_unit_test(test_logging_levels_and_sink),
      cmocka_unit_test(test_cache_dir_resolution),
      cmocka_unit_test(test_contexts_are_independent_across_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
