/* The output comparison itself: tolerance, text, length, and a wrong
 * number must all be caught. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "numdiff.h"

static const ct_numdiff_opts tol = {1e-6, 1e-14};

static int cmp(const char *e, const char *a, char *why) {
  return ct_numdiff(e, a, &tol, why, 256);
}

static void test_equal_within_tolerance(void **state) {
  (void)state;
  char why[256];
  assert_int_equal(cmp("At t = 4.0000e-01  y = 9.851641e-01\n",
                       "At t = 4.0000e-01  y = 9.8516410001e-01\n", why), 0);
  assert_int_equal(cmp("a  1\n\n b", "a 1 b", why), 0); /* white space runs */
  assert_int_equal(cmp("y1 = 0", "y1 = 1e-15", why), 0); /* absolute floor */
  assert_int_equal(cmp("x = nan inf -inf", "x = nan inf -inf", why), 0);
}

static void test_wrong_number_fails(void **state) {
  (void)state;
  char why[256];
  assert_int_equal(cmp("At t = 4.0000e-01  y = 9.851641e-01\n",
                       "At t = 4.0000e-01  y = 9.851651e-01\n", why), 1);
  assert_non_null(strstr(why, "number out of tolerance"));
  assert_non_null(strstr(why, "9.851641e-01"));
  assert_int_equal(cmp("steps = 542", "steps = 543", why), 1);
  assert_int_equal(cmp("v = 1", "v = nan", why), 1);
  assert_int_equal(cmp("v = inf", "v = -inf", why), 1);
}

static void test_text_and_length_must_match(void **state) {
  (void)state;
  char why[256];
  assert_int_equal(cmp("rootsfound", "rootsFound", why), 1);
  assert_non_null(strstr(why, "text differs"));
  assert_int_equal(cmp("a 1 2", "a 1", why), 1);
  assert_non_null(strstr(why, "length differs"));
  assert_int_equal(cmp("a 1", "a 1 2", why), 1);
  assert_int_equal(cmp("x 1", "x y", why), 1);
}

static void test_reports_lines(void **state) {
  (void)state;
  char why[256];
  assert_int_equal(cmp("a\nb\nc 3\n", "a\nb\nc 4\n", why), 1);
  assert_non_null(strstr(why, "expected line 3"));
  assert_non_null(strstr(why, "actual line 3"));
}

/* Identifiers with digits read as text then a number on both sides; a
 * number glued to letters is not split into a sign and digits. */
static void test_identifiers(void **state) {
  (void)state;
  char why[256];
  assert_int_equal(cmp("y1 y2 y3", "y1 y2 y3", why), 0);
  assert_int_equal(cmp("y1", "y2", why), 1);
  assert_int_equal(cmp("sm_90", "sm_80", why), 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_equal_within_tolerance),
      cmocka_unit_test(test_wrong_number_fails),
      cmocka_unit_test(test_text_and_length_must_match),
      cmocka_unit_test(test_reports_lines),
      cmocka_unit_test(test_identifiers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
