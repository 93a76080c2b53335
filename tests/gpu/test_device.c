/* The GPU module. Without a GPU (or without CUDA in the build) discovery
 * reports zero devices and GPU work fails with a clear CT_ERR_UNSUPPORTED;
 * with a GPU the kernel smoke test must pass. Run with the argument
 * "selftest" this program is the GPU test proper: it exits 77 (skipped)
 * with a message when there is no GPU. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "ct_test.h"

static void test_discovery(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  int n = -1;
  assert_int_equal(ct_gpu_device_count(ctx, &n), CT_OK);
  assert_true(n >= 0);
  assert_int_equal(ct_gpu_device_count(ctx, NULL), CT_ERR_ARG);
  char line[256];
  ct_gpu_describe(line, sizeof line);
  if (!ct_gpu_compiled())
    assert_string_equal(line, "cuda: not compiled in");
  else if (n == 0)
    assert_non_null(strstr(line, "no usable device"));
  else
    assert_non_null(strstr(line, "device(s)"));
  ct_context_free(ctx);
}

static void test_no_gpu_is_a_clear_error(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  int n = 0;
  ct_gpu_device_count(ctx, &n);
  if (n == 0) {
    assert_int_equal(ct_gpu_selftest(ctx, 1000), CT_ERR_UNSUPPORTED);
    assert_non_null(strstr(ct_errmsg(ctx), ct_gpu_compiled() ? "no usable GPU"
                                                             : "no CUDA back end"));
  }
  ct_context_free(ctx);
}

static void test_selftest(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  int rc = ct_gpu_selftest(ctx, 1 << 20);
  if (rc != CT_OK) fail_msg("%s", ct_errmsg(ctx));
  assert_int_equal(ct_gpu_selftest(ctx, 0), CT_ERR_ARG);
  ct_context_free(ctx);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "selftest") == 0) {
    ct_context *ctx = ct_context_new(NULL);
    int n = 0;
    ct_gpu_device_count(ctx, &n);
    ct_context_free(ctx);
    if (n == 0) {
      char line[256];
      ct_gpu_describe(line, sizeof line);
      printf("skipped: no GPU on this machine (%s)\n", line);
      return 77;
    }
    const struct CMUnitTest gpu[] = {cmocka_unit_test(test_selftest)};
    return cmocka_run_group_tests(gpu, NULL, NULL);
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_discovery),
      cmocka_unit_test(test_no_gpu_is_a_clear_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
