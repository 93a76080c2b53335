/* ct_build_info names every linked component with a plausible version. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "ct_test.h"

static void test_lists_components(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  char buf[2048];
  assert_int_equal(ct_build_info(ctx, buf, sizeof buf), CT_OK);
  assert_non_null(strstr(buf, "cotangent 0.1.0\n"));
  assert_string_equal(ct_version(), "0.1.0");
  assert_non_null(strstr(buf, "sundials 6."));
  assert_non_null(strstr(buf, "petsc 3."));
  assert_non_null(strstr(buf, "suitesparse klu 1."));
  assert_non_null(strstr(buf, "libyaml 0."));
  assert_non_null(strstr(buf, ct_gpu_compiled() ? "cuda runtime " : "cuda: not compiled in"));
  ct_context_free(ctx);
}

static void test_small_buffer_is_an_error(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  char buf[20];
  assert_int_equal(ct_build_info(ctx, buf, sizeof buf), CT_ERR_ARG);
  assert_true(strlen(buf) < sizeof buf);
  assert_non_null(strstr(ct_errmsg(ctx), "needs more than 20 bytes"));
  assert_int_equal(ct_build_info(ctx, NULL, 0), CT_ERR_ARG);
  ct_context_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lists_components),
      cmocka_unit_test(test_small_buffer_is_an_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
