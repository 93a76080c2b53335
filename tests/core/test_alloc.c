/* The allocator hooks: fault injection, overflow checks, failure recording,
 * and the fault sweep every later module uses for its leak tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "ct_test.h"

static void test_fault_allocator_fails_nth(void **state) {
  (void)state;
  ct_fault_state st = {.fail_at = 3};
  ct_allocator a = ct_fault_allocator(&st);
  void *p1 = a.alloc(a.ud, 10);
  void *p2 = a.alloc(a.ud, 20);
  void *p3 = a.alloc(a.ud, 30);
  void *p4 = a.alloc(a.ud, 40);
  assert_non_null(p1);
  assert_non_null(p2);
  assert_null(p3);
  assert_non_null(p4);
  assert_true(st.failed);
  assert_int_equal(st.count, 4);
  assert_int_equal(st.live_blocks, 3);
  assert_int_equal(st.live_bytes, 70);
  p1 = a.realloc(a.ud, p1, 100);
  assert_int_equal(st.live_bytes, 160);
  a.free(a.ud, p1);
  a.free(a.ud, p2);
  a.free(a.ud, p4);
  a.free(a.ud, NULL);
  assert_int_equal(st.live_blocks, 0);
  assert_int_equal(st.live_bytes, 0);
}

static void test_context_allocation_helpers(void **state) {
  (void)state;
  ct_fault_state st = {0};
  ct_allocator a = ct_fault_allocator(&st);
  ct_context *ctx = ct_context_new(&a);
  assert_non_null(ctx);

  double *v = ct_calloc(ctx, 8, sizeof *v);
  assert_non_null(v);
  for (int i = 0; i < 8; i++) assert_true(v[i] == 0.0);

  assert_null(ct_calloc(ctx, SIZE_MAX / 2, 4));
  assert_int_equal(ct_errcode(ctx), CT_ERR_NOMEM);
  assert_non_null(strstr(ct_errmsg(ctx), "overflows"));
  ct_error_clear(ctx);
  assert_null(ct_realloc_array(ctx, v, SIZE_MAX / 4, 8));
  assert_int_equal(ct_errcode(ctx), CT_ERR_NOMEM);

  st.fail_at = st.count + 1;
  assert_null(ct_realloc(ctx, v, 1024));
  assert_non_null(strstr(ct_errmsg(ctx), "reallocating to 1024 bytes failed"));
  v[7] = 1.5; /* still valid after a failed realloc */
  v = ct_realloc_array(ctx, v, 16, sizeof *v);
  assert_non_null(v);
  assert_true(v[7] == 1.5);

  char *s = ct_strdup(ctx, "cvodes");
  assert_string_equal(s, "cvodes");
  ct_free(ctx, s);
  ct_free(ctx, v);
  ct_context_free(ctx);
  assert_int_equal(st.live_blocks, 0);
}

/* Creating a context fails cleanly at each of its allocations. */
static void test_context_creation_under_faults(void **state) {
  (void)state;
  for (long k = 1; k <= 3; k++) {
    ct_fault_state st = {.fail_at = k};
    ct_allocator a = ct_fault_allocator(&st);
    ct_context *ctx = ct_context_new(&a);
    if (st.failed) assert_null(ctx);
    ct_context_free(ctx);
    assert_int_equal(st.live_blocks, 0);
  }
}

static int builds_three_buffers(ct_context *ctx, void *ud) {
  (void)ud;
  char *a = ct_alloc(ctx, 8), *b = NULL, *c = NULL;
  int status = CT_ERR_NOMEM;
  if (!a || !(b = ct_alloc(ctx, 16)) || !(c = ct_strdup(ctx, "x"))) goto done;
  status = ct_context_set_cache_dir(ctx, "/tmp/elsewhere");
done:
  ct_free(ctx, a);
  ct_free(ctx, b);
  ct_free(ctx, c);
  return status;
}

/* Forgets its first buffer when the second allocation fails; the buffer is
 * handed to the test through `ud` so that the test can release it. */
static int leaks_on_failure(ct_context *ctx, void *ud) {
  void **kept = ud;
  *kept = ct_alloc(ctx, 8);
  if (!*kept) return CT_ERR_NOMEM;
  void *second = ct_alloc(ctx, 8);
  if (!second) return CT_ERR_NOMEM; /* the bug: *kept is not freed */
  ct_free(ctx, *kept);
  ct_free(ctx, second);
  *kept = NULL;
  return CT_OK;
}

static void test_fault_sweep(void **state) {
  (void)state;
  assert_int_equal(ct_test_fault_sweep(builds_three_buffers, NULL), 4);
}

/* The sweep itself must catch a leak on an error path. */
static void test_fault_sweep_catches_leak(void **state) {
  (void)state;
  void *kept = NULL;
  char why[512];
  assert_int_equal(ct_test_fault_sweep_check(leaks_on_failure, &kept, why, sizeof why), -1);
  assert_non_null(strstr(why, "failing allocation 2 leaked 1 blocks (8 bytes)"));
  ct_fault_state dummy = {0};
  ct_allocator a = ct_fault_allocator(&dummy);
  a.free(a.ud, kept); /* the block the faulty function leaked */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fault_allocator_fails_nth),
      cmocka_unit_test(test_context_allocation_helpers),
      cmocka_unit_test(test_context_creation_under_faults),
      cmocka_unit_test(test_fault_sweep),
      cmocka_unit_test(test_fault_sweep_catches_leak),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
