/* CSV data files for data-misfit objectives: good files in their variants
 * (comments, blank lines, missing cells, both sigma namings, CRLF, BOM,
 * quotes) and the broken files of tests/config/bad_data/, each with the
 * location and words of its message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_internal.h"
#include "ct_test.h"

#define BAD_DATA CT_CONFIG_TEST_DIR "/bad_data/"

static const ct_cfg_loc FROM = {"model.yaml", 12, 9};

/* Writes text (len bytes) to a fresh temporary file; its path into path. */
static void write_temp(char *path, size_t size, const char *text, size_t len) {
  snprintf(path, size, "/tmp/ct_data_XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, len), (ssize_t)len);
  close(fd);
}

/* Reads data from text; asserts success. */
static ct_cfg_data *read_text(ct_context *ctx, const char *text, size_t len) {
  char path[64];
  write_temp(path, sizeof path, text, len);
  ct_cfg_data *d = NULL;
  int status = ct_cfg_data_read(ctx, path, FROM, &d);
  unlink(path);
  if (status) fail_msg("reading failed: %s", ct_errmsg(ctx));
  return d;
}

static void test_good_file_with_comments_blanks_and_missing_cells(void **state) {
  (void)state;
  static const char text[] = "# observations of the Lotka-Volterra model\n"
                             "\n"
                             "t, prey , predator\n"
                             "0, 10, 5\n"
                             "  # a comment between rows\n"
                             "0.5,,4.5\n"
                             "\n"
                             "1e0 ,12.25, \n"
                             "1, -3.5e-1, .5\n";
  ct_context *ctx = ct_context_new(NULL);
  ct_cfg_data *d = read_text(ctx, text, sizeof text - 1);
  assert_int_equal(d->n_rows, 4);
  assert_int_equal(d->n_cols, 2);
  assert_string_equal(d->names[0], "prey");
  assert_string_equal(d->names[1], "predator");
  assert_null(d->sigma);
  double t[4] = {0, 0.5, 1, 1};
  int line[4] = {4, 6, 8, 9};
  for (int i = 0; i < 4; i++) {
    assert_true(d->t[i] == t[i]);
    assert_int_equal(d->line[i], line[i]);
  }
  assert_true(d->values[0] == 10 && d->values[1] == 5);
  assert_true(isnan(d->values[2]) && d->values[3] == 4.5);
  assert_true(d->values[4] == 12.25 && isnan(d->values[5]));
  assert_true(d->values[6] == -0.35 && d->values[7] == 0.5);
  assert_non_null(strstr(d->path, "/tmp/ct_data_"));
  ct_cfg_data_free(d);
  ct_context_free(ctx);
}

static void test_sigma_columns_both_namings(void **state) {
  (void)state;
  static const char text[] = "time,x,sigma_x,y,z,y_sigma\n"
                             "0,1,0.1,2,3,0.2\n"
                             "1,1.5,,2.5,3.5,0.25\n";
  ct_context *ctx = ct_context_new(NULL);
  ct_cfg_data *d = read_text(ctx, text, sizeof text - 1);
  assert_int_equal(d->n_cols, 3);
  assert_string_equal(d->names[0], "x");
  assert_string_equal(d->names[1], "y");
  assert_string_equal(d->names[2], "z");
  assert_non_null(d->sigma);
  assert_true(d->sigma[0] == 0.1 && d->sigma[1] == 0.2 && isnan(d->sigma[2]));
  assert_true(isnan(d->sigma[3]) && d->sigma[4] == 0.25 && isnan(d->sigma[5]));
  assert_true(d->values[3] == 1.5 && d->values[4] == 2.5 && d->values[5] == 3.5);
  ct_cfg_data_free(d);
  /* "sigma_w" with no column w is an ordinary column. */
  static const char text2[] = "t,sigma_w\n0,1\n";
  d = read_text(ctx, text2, sizeof text2 - 1);
  assert_int_equal(d->n_cols, 1);
  assert_string_equal(d->names[0], "sigma_w");
  assert_null(d->sigma);
  ct_cfg_data_free(d);
  ct_context_free(ctx);
}

static void test_crlf_bom_and_quotes(void **state) {
  (void)state;
  static const char text[] = "\xEF\xBB\xBF\"t\",\"a,b\",\"say \"\"hi\"\"\"\r\n"
                             "0,\"1.5\",2\r\n"
                             "# comment\r\n"
                             "\r\n"
                             "1,3,4"; /* no final newline */
  ct_context *ctx = ct_context_new(NULL);
  ct_cfg_data *d = read_text(ctx, text, sizeof text - 1);
  assert_int_equal(d->n_rows, 2);
  assert_string_equal(d->names[0], "a,b");
  assert_string_equal(d->names[1], "say \"hi\"");
  assert_true(d->values[0] == 1.5 && d->values[3] == 4);
  assert_int_equal(d->line[1], 5);
  ct_cfg_data_free(d);
  /* Columns count from the line's start, after the BOM; CRLF is no cell. */
  char path[64];
  static const char bad[] = "\xEF\xBB\xBFt,x\r\n0,1\r\n1,2x\r\n";
  write_temp(path, sizeof path, bad, sizeof bad - 1);
  ct_cfg_data *none = NULL;
  assert_int_equal(ct_cfg_data_read(ctx, path, FROM, &none), CT_ERR_CONFIG);
  char want[128];
  snprintf(want, sizeof want, "%s:3:3: malformed number '2x'", path);
  assert_non_null(strstr(ct_errmsg(ctx), want));
  assert_null(none);
  unlink(path);
  ct_context_free(ctx);
}

/* A broken file, where its error is and words its message must hold. */
typedef struct bad_case {
  const char *file;
  int line, col; /* 0: the error is at the config location FROM */
  const char *words[3];
} bad_case;

static const bad_case BAD[] = {
    {"malformed_number.csv", 7, 12, {"malformed number '4.3e'", "column 'predator'"}},
    {"too_few_cells.csv", 3, 4, {"this row has 2 cells", "header has 3 columns"}},
    {"too_many_cells.csv", 3, 7, {"this row has 4 cells", "header has 3 columns"}},
    {"nan_value.csv", 3, 3, {"'NaN' is not allowed", "column 'x'", "leave the cell empty"}},
    {"inf_value.csv", 3, 3, {"'-inf' is not allowed"}},
    {"na_word.csv", 3, 3, {"malformed number 'NA'"}},
    {"out_of_range.csv", 2, 3, {"'1e999'", "out of range"}},
    {"decreasing_time.csv", 4, 1, {"time 1 is before the time 2 of line 3",
                                   "must not decrease"}},
    {"negative_sigma.csv", 3, 5, {"sigma must be positive", "'sigma_x'", "'-0.5'"}},
    {"zero_sigma.csv", 2, 5, {"sigma must be positive", "'x_sigma'", "'0'"}},
    {"empty.csv", 1, 1, {"the data file is empty", "header"}},
    {"comments_only.csv", 3, 1, {"the data file is empty"}},
    {"no_time_column.csv", 1, 1, {"first column must be the time", "'t' or 'time'",
                                  "not 'x'"}},
    {"duplicate_columns.csv", 1, 7, {"duplicate column name 'x'", "also column 2"}},
    {"header_only.csv", 2, 1, {"header but no rows of data"}},
    {"missing_time.csv", 3, 2, {"missing value for the time column"}},
    {"only_time.csv", 1, 1, {"only the time column", "no data columns"}},
    {"two_sigma_columns.csv", 1, 13, {"two sigma columns for 'x'", "'sigma_x'",
                                      "'x_sigma'"}},
    {"unterminated_quote.csv", 1, 3, {"unterminated quote"}},
    {"sigma_of_sigma.csv", 1, 13, {"'sigma_sigma_x'", "sigma of 'sigma_x'",
                                   "a sigma column itself"}},
    {"nul_byte.csv", 3, 4, {"NUL byte", "not a text"}},
    {"unnamed_column.csv", 1, 3, {"column 2 of the header has no name"}},
    {"does_not_exist.csv", 0, 0, {"cannot read the data file", "does_not_exist.csv",
                                  "No such file"}},
};

static void test_bad_data_files(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  for (size_t k = 0; k < sizeof BAD / sizeof BAD[0]; k++) {
    const bad_case *c = &BAD[k];
    char path[512], where[600];
    snprintf(path, sizeof path, BAD_DATA "%s", c->file);
    ct_cfg_data *d = (ct_cfg_data *)&d; /* must be reset to NULL */
    int status = ct_cfg_data_read(ctx, path, FROM, &d);
    const char *msg = ct_errmsg(ctx);
    if (status != CT_ERR_CONFIG) fail_msg("%s: status %d (%s)", c->file, status, msg);
    assert_null(d);
    if (c->line) snprintf(where, sizeof where, "%s:%d:%d: ", path, c->line, c->col);
    else snprintf(where, sizeof where, "%s:%d:%d: ", FROM.file, FROM.line, FROM.col);
    if (!strstr(msg, where)) fail_msg("%s: expected '%s' in: %s", c->file, where, msg);
    for (int w = 0; w < 3 && c->words[w]; w++)
      if (!strstr(msg, c->words[w]))
        fail_msg("%s: expected '%s' in: %s", c->file, c->words[w], msg);
  }
  ct_context_free(ctx);
}

static void test_bad_arguments(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  assert_int_equal(ct_cfg_data_read(ctx, BAD_DATA "empty.csv", FROM, NULL), CT_ERR_ARG);
  ct_cfg_data *d = NULL;
  assert_int_equal(ct_cfg_data_read(ctx, "", FROM, &d), CT_ERR_CONFIG);
  assert_non_null(strstr(ct_errmsg(ctx), "model.yaml:12:9: the data file name is empty"));
  /* A folder is not a data file. */
  assert_int_equal(ct_cfg_data_read(ctx, "/tmp", FROM, &d), CT_ERR_CONFIG);
  assert_null(d);
  ct_cfg_data_free(NULL);
  ct_context_free(ctx);
}

/* A file big enough for the row arrays to grow several times. */
static void test_many_rows(void **state) {
  (void)state;
  size_t cap = 1 << 20, len = 0;
  char *text = malloc(cap);
  assert_non_null(text);
  len += (size_t)snprintf(text, cap, "t,a,b,a_sigma\n");
  for (int i = 0; i < 5000; i++)
    len += (size_t)snprintf(text + len, cap - len, "%d,%d.5,%d,0.%d1\n", i, i, -i, i % 10);
  ct_context *ctx = ct_context_new(NULL);
  ct_cfg_data *d = read_text(ctx, text, len);
  assert_int_equal(d->n_rows, 5000);
  assert_true(d->values[2 * 4999] == 4999.5 && d->values[2 * 4999 + 1] == -4999);
  assert_true(fabs(d->sigma[2 * 4999] - 0.91) < 1e-15 && isnan(d->sigma[2 * 4999 + 1]));
  assert_int_equal(d->line[4999], 5001);
  ct_cfg_data_free(d);
  ct_context_free(ctx);
  free(text);
}

typedef struct sweep_case {
  const char *path;
  int expect; /* the status without injected failures */
} sweep_case;

/* Reads a data file (for the fault sweep): success must free nothing
 * early, failure must leak nothing. */
static int read_for_sweep(ct_context *ctx, void *ud) {
  const sweep_case *c = ud;
  ct_cfg_data *d = NULL;
  int status = ct_cfg_data_read(ctx, c->path, FROM, &d);
  ct_cfg_data_free(d);
  if (status == c->expect) return CT_OK;
  return status ? status : CT_ERR_INTERNAL;
}

static void test_fault_sweep(void **state) {
  (void)state;
  static const char text[] = "t,x,sigma_x,y\n0,1,0.1,2\n1,2,0.2,3\n2,3,,4\n";
  char path[64];
  write_temp(path, sizeof path, text, sizeof text - 1);
  sweep_case good = {path, CT_OK};
  assert_true(ct_test_fault_sweep(read_for_sweep, &good) >= 5);
  unlink(path);
  sweep_case bad = {BAD_DATA "negative_sigma.csv", CT_ERR_CONFIG};
  assert_true(ct_test_fault_sweep(read_for_sweep, &bad) >= 3);
  sweep_case dup = {BAD_DATA "duplicate_columns.csv", CT_ERR_CONFIG};
  assert_true(ct_test_fault_sweep(read_for_sweep, &dup) >= 3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good_file_with_comments_blanks_and_missing_cells),
      cmocka_unit_test(test_sigma_columns_both_namings),
      cmocka_unit_test(test_crlf_bom_and_quotes),
      cmocka_unit_test(test_bad_data_files),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_many_rows),
      cmocka_unit_test(test_fault_sweep),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
