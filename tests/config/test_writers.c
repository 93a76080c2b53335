/* Result writers: atomic files, mkdir -p, the SVG plots (well-formed XML,
 * expected ticks and labels, a golden file) and the progress output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config_internal.h"
#include "ct_test.h"

/* ---- helpers -------------------------------------------------------------- */

/* A fresh scratch folder under /tmp (removed by remove_tree). */
static void make_scratch(char *dir, size_t size) {
  snprintf(dir, size, "/tmp/ct_writers_XXXXXX");
  assert_non_null(mkdtemp(dir));
}

/* rm -r of a scratch folder (one level of files and folders). */
static void remove_tree(const char *dir) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

/* The number of entries in a folder, "." and ".." excluded. */
static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

/* A whole file as a NUL-terminated string (caller frees). */
static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

/* How many times needle occurs in hay. */
static int count_of(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
  return n;
}

static int emit_text(FILE *f, void *ud) {
  return fputs((const char *)ud, f) < 0 ? CT_ERR_IO : CT_OK;
}

/* Writes half its text, then fails (a writer that hits an error). */
static int emit_half_then_fail(FILE *f, void *ud) {
  const char *text = ud;
  fwrite(text, 1, strlen(text) / 2, f);
  return CT_ERR_NUMERIC;
}

/* ---- atomic writes ------------------------------------------------------------ */

static void test_atomic_write_replaces_file(void **state) {
  (void)state;
  char dir[64], path[128];
  make_scratch(dir, sizeof dir);
  snprintf(path, sizeof path, "%s/out.txt", dir);
  ct_context *ctx = ct_context_new(NULL);
  assert_int_equal(ct_write_atomic(ctx, path, emit_text, "first\n"), CT_OK);
  assert_int_equal(ct_write_atomic(ctx, path, emit_text, "second\n"), CT_OK);
  char *got = slurp(path);
  assert_string_equal(got, "second\n");
  free(got);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0644);
  assert_int_equal(count_entries(dir), 1); /* no temporary file left */
  ct_context_free(ctx);
  remove_tree(dir);
}

static void test_atomic_write_failed_emit_keeps_old_file(void **state) {
  (void)state;
  char dir[64], path[128];
  make_scratch(dir, sizeof dir);
  snprintf(path, sizeof path, "%s/summary.json", dir);
  ct_context *ctx = ct_context_new(NULL);
  assert_int_equal(ct_write_atomic(ctx, path, emit_text, "{\"old\": 1}\n"), CT_OK);
  int status = ct_write_atomic(ctx, path, emit_half_then_fail, "{\"new\": 2, \"x\": 3}\n");
  assert_int_equal(status, CT_ERR_NUMERIC);
  assert_non_null(strstr(ct_errmsg(ctx), path));
  assert_non_null(strstr(ct_errmsg(ctx), "not written"));
  char *got = slurp(path);
  assert_string_equal(got, "{\"old\": 1}\n");
  free(got);
  assert_int_equal(count_entries(dir), 1);
  /* A failed first write leaves nothing at all. */
  snprintf(path, sizeof path, "%s/never.csv", dir);
  assert_int_equal(ct_write_atomic(ctx, path, emit_half_then_fail, "a,b\n1,2\n"),
                   CT_ERR_NUMERIC);
  assert_int_equal(access(path, F_OK), -1);
  assert_int_equal(count_entries(dir), 1);
  ct_context_free(ctx);
  remove_tree(dir);
}

static void test_atomic_write_unwritable_folder(void **state) {
  (void)state;
  char dir[64], path[160];
  make_scratch(dir, sizeof dir);
  ct_context *ctx = ct_context_new(NULL);
  snprintf(path, sizeof path, "%s/missing/out.svg", dir);
  assert_int_equal(ct_write_atomic(ctx, path, emit_text, "x"), CT_ERR_IO);
  assert_non_null(strstr(ct_errmsg(ctx), path));
  assert_non_null(strstr(ct_errmsg(ctx), "No such file"));
  /* A folder that is a file: */
  snprintf(path, sizeof path, "%s/plain", dir);
  assert_int_equal(ct_write_atomic(ctx, path, emit_text, "x"), CT_OK);
  snprintf(path, sizeof path, "%s/plain/out.svg", dir);
  assert_int_equal(ct_write_atomic(ctx, path, emit_text, "x"), CT_ERR_IO);
  assert_non_null(strstr(ct_errmsg(ctx), "Not a directory"));
  assert_int_equal(ct_write_atomic(ctx, NULL, emit_text, "x"), CT_ERR_ARG);
  assert_int_equal(count_entries(dir), 1);
  ct_context_free(ctx);
  remove_tree(dir);
}

static void test_make_dirs(void **state) {
  (void)state;
  char dir[64], path[200];
  make_scratch(dir, sizeof dir);
  ct_context *ctx = ct_context_new(NULL);
  snprintf(path, sizeof path, "%s/results//robertson/plots/", dir);
  assert_int_equal(ct_make_dirs(ctx, path), CT_OK);
  assert_int_equal(ct_make_dirs(ctx, path), CT_OK); /* exists: fine */
  struct stat st;
  snprintf(path, sizeof path, "%s/results/robertson/plots", dir);
  assert_int_equal(stat(path, &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  snprintf(path, sizeof path, "%s/results/robertson/file", dir);
  assert_int_equal(ct_write_atomic(ctx, path, emit_text, "x"), CT_OK);
  snprintf(path, sizeof path, "%s/results/robertson/file/sub", dir);
  assert_int_equal(ct_make_dirs(ctx, path), CT_ERR_IO);
  assert_non_null(strstr(ct_errmsg(ctx), "cannot create the folder"));
  assert_non_null(strstr(ct_errmsg(ctx), path));
  assert_int_equal(ct_make_dirs(ctx, ""), CT_ERR_ARG);
  ct_context_free(ctx);
  remove_tree(dir);
}

typedef struct sweep_paths {
  char file[128], dirs[160];
} sweep_paths;

/* Writes a file and creates folders (for the fault sweep). */
static int write_and_mkdir(ct_context *ctx, void *ud) {
  sweep_paths *p = ud;
  int status = ct_write_atomic(ctx, p->file, emit_text, "contents\n");
  if (status) return status;
  return ct_make_dirs(ctx, p->dirs);
}

static void test_writers_fault_sweep(void **state) {
  (void)state;
  char dir[64];
  make_scratch(dir, sizeof dir);
  sweep_paths p;
  snprintf(p.file, sizeof p.file, "%s/a.txt", dir);
  snprintf(p.dirs, sizeof p.dirs, "%s/x/y/z", dir);
  long n = ct_test_fault_sweep(write_and_mkdir, &p);
  assert_true(n >= 2);
  assert_int_equal(count_entries(dir), 2); /* a.txt and x */
  remove_tree(dir);
}

static void test_fmt_num(void **state) {
  (void)state;
  char buf[32];
  ct_fmt_num(buf, sizeof buf, "%.2f", 3.14159);
  assert_string_equal(buf, "3.14");
  ct_fmt_num(buf, sizeof buf, "%.6g", 4e7);
  assert_string_equal(buf, "4e+07");
  ct_fmt_num(buf, 4, "%.6g", 1234.5);
  assert_string_equal(buf, "123");
}

/* ---- SVG ------------------------------------------------------------------------ */

/* The fixed plot of the golden file: two curves (one with a NaN gap and a
 * label to escape) and a data series with markers. */
typedef struct fixed_plot {
  double x[11], y1[11], y2[11], dx[4], dy[4];
  ct_svg_series series[3];
  ct_svg_plot plot;
} fixed_plot;

static void make_fixed_plot(fixed_plot *fp) {
  for (int i = 0; i <= 10; i++) {
    fp->x[i] = i;
    fp->y1[i] = exp(-0.3 * i);
    fp->y2[i] = i == 5 ? NAN : 0.1 * i;
  }
  const double dx[4] = {1, 3, 6, 9}, dy[4] = {0.72, 0.43, 0.15, 0.1};
  memcpy(fp->dx, dx, sizeof dx), memcpy(fp->dy, dy, sizeof dy);
  ct_svg_series s[3] = {{"x1", fp->x, fp->y1, 11, 0},
                        {"x2 <b> & \"c\"", fp->x, fp->y2, 11, 0},
                        {"x1 (data)", fp->dx, fp->dy, 4, 1}};
  memcpy(fp->series, s, sizeof s);
  ct_svg_plot plot = {"Decay & growth", "time t", "state", fp->series, 3, 0, 0};
  fp->plot = plot;
}

static int emit_fixed_plot(FILE *f, void *ud) { return ct_svg_line_plot(f, ud); }

/* Parses an SVG file with python3's xml.etree and returns what it prints:
 * the root tag, then every <text>'s content, '|'-separated (caller frees);
 * NULL when python3 is missing. The parse failing fails the test. */
static char *svg_texts(const char *path) {
  char cmd[1024], out[128];
  snprintf(out, sizeof out, "%s.texts", path);
  snprintf(cmd, sizeof cmd,
           "python3 -c 'import sys, xml.etree.ElementTree as E\n"
           "r = E.parse(sys.argv[1]).getroot()\n"
           "ns = \"{http://www.w3.org/2000/svg}\"\n"
           "t = [e.text or \"\" for e in r.iter(ns + \"text\")]\n"
           "print(r.tag + \"|\" + \"|\".join(t) + \"|\", end=\"\")' '%s' > '%s'",
           path, out);
  if (system("python3 -c 'import xml.etree' 2>/dev/null") != 0) return NULL;
  int rc = system(cmd);
  if (rc != 0) fail_msg("%s is not well-formed XML (python3 exit %d)", path, rc);
  char *texts = slurp(out);
  unlink(out);
  return texts;
}

static void test_svg_line_plot_parses_and_has_labels(void **state) {
  (void)state;
  char dir[64], path[128];
  make_scratch(dir, sizeof dir);
  snprintf(path, sizeof path, "%s/plot.svg", dir);
  fixed_plot fp;
  make_fixed_plot(&fp);
  ct_context *ctx = ct_context_new(NULL);
  assert_int_equal(ct_write_atomic(ctx, path, emit_fixed_plot, &fp.plot), CT_OK);
  char *svg = slurp(path);
  assert_non_null(strstr(svg, "x2 &lt;b&gt; &amp; &quot;c&quot;"));
  assert_non_null(strstr(svg, "Decay &amp; growth"));
  /* The NaN at x = 5 splits the second curve into two pieces. */
  const char *s1 = strstr(svg, "id=\"series-1\"");
  assert_non_null(s1);
  const char *end1 = strstr(s1, "</g>");
  int moves = 0;
  for (const char *p = s1; (p = strstr(p, "M")) && p < end1; p++) moves++;
  assert_int_equal(moves, 2);
  /* Four data markers of the third series, and dashes for the second. */
  const char *s2 = strstr(svg, "id=\"series-2\"");
  assert_non_null(s2);
  assert_int_equal(count_of(s2, "<polygon") >= 4, 1);
  assert_non_null(strstr(s1, "stroke-dasharray"));
  free(svg);
  char *texts = svg_texts(path);
  if (texts) {
    assert_non_null(strstr(texts, "{http://www.w3.org/2000/svg}svg|"));
    assert_non_null(strstr(texts, "|Decay & growth|"));
    assert_non_null(strstr(texts, "|x2 <b> & \"c\"|"));
    /* x ticks 0, 2, ..., 10; y ticks 0.0, 0.2, ..., 1.0; then the legend */
    assert_non_null(strstr(texts, "|0|2|4|6|8|10|time t|"));
    assert_non_null(strstr(texts, "|0.0|0.2|0.4|0.6|0.8|1.0|state|"));
    assert_non_null(strstr(texts, "|state|x1|x2 <b> & \"c\"|x1 (data)|"));
    free(texts);
  }
  ct_context_free(ctx);
  remove_tree(dir);
}

static void test_svg_golden(void **state) {
  (void)state;
  fixed_plot fp;
  make_fixed_plot(&fp);
  char *got = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&got, &len);
  assert_non_null(f);
  assert_int_equal(ct_svg_line_plot(f, &fp.plot), CT_OK);
  fclose(f);
  const char *golden = CT_CONFIG_TEST_DIR "/golden/line_plot.svg";
  if (getenv("CT_UPDATE_GOLDEN")) {
    FILE *g = fopen(golden, "wb");
    assert_non_null(g);
    fwrite(got, 1, len, g);
    fclose(g);
  }
  char *want = slurp(golden);
  assert_non_null(want);
  if (strcmp(want, got) != 0)
    fail_msg("the SVG differs from %s (CT_UPDATE_GOLDEN=1 rewrites it)", golden);
  free(want);
  free(got);
}

static void test_svg_log_axes_and_degenerate_input(void **state) {
  (void)state;
  char dir[64], path[128];
  make_scratch(dir, sizeof dir);
  snprintf(path, sizeof path, "%s/log.svg", dir);
  double x[6] = {0, 1e-4, 1e-2, 1, 1e2, 4e4}, y[6] = {1, 0.9, 0.5, -1, 1e-3, 1e-5};
  ct_svg_series s = {"y1", x, y, 6, 0};
  ct_svg_plot plot = {"log", "t", "y", &s, 1, 1, 1};
  ct_context *ctx = ct_context_new(NULL);
  assert_int_equal(ct_write_atomic(ctx, path, emit_fixed_plot, &plot), CT_OK);
  char *texts = svg_texts(path);
  if (texts) {
    assert_non_null(strstr(texts, "|1e-4|0.001|0.01|0.1|1|10|100|1000|10000|1e5|"));
    assert_non_null(strstr(texts, "|1e-5|1e-4|0.001|0.01|0.1|1|"));
    free(texts);
  }
  /* Large values: %g labels with the digits the step needs. */
  double bx[2] = {0, 1}, by[2] = {1e6, 3e6};
  ct_svg_series big = {"big", bx, by, 2, 0};
  ct_svg_plot bp = {"big", "t", "y", &big, 1, 0, 0};
  assert_int_equal(ct_write_atomic(ctx, path, emit_fixed_plot, &bp), CT_OK);
  texts = svg_texts(path);
  if (texts) {
    assert_non_null(strstr(texts, "|1e+06|1.5e+06|2e+06|2.5e+06|3e+06|"));
    free(texts);
  }
  /* No data, one point, all NaN, huge values: still a valid plot. */
  double nan2[2] = {NAN, NAN}, one = 3, huge[2] = {-1e308, 1e308};
  ct_svg_series odd[3] = {{"nan", nan2, nan2, 2, 0}, {"one", &one, &one, 1, 1},
                          {"huge", huge, huge, 2, 0}};
  for (size_t k = 0; k <= 3; k++) {
    ct_svg_plot p = {NULL, NULL, NULL, k ? odd + k - 1 : NULL, k ? 1 : 0, 0, (int)k & 1};
    assert_int_equal(ct_write_atomic(ctx, path, emit_fixed_plot, &p), CT_OK);
    free(svg_texts(path));
  }
  assert_int_equal(ct_svg_line_plot(NULL, &plot), CT_ERR_ARG);
  ct_context_free(ctx);
  remove_tree(dir);
}

typedef struct bars {
  const char *const *labels;
  const double *values;
  size_t n;
} bars;

static int emit_bars(FILE *f, void *ud) {
  bars *b = ud;
  return ct_svg_bar_chart(f, "dJ/dp", b->labels, b->values, b->n);
}

static void test_svg_bar_chart(void **state) {
  (void)state;
  char dir[64], path[128];
  make_scratch(dir, sizeof dir);
  snprintf(path, sizeof path, "%s/bars.svg", dir);
  const char *labels[4] = {"p1", "p2 & p3", "k_long_parameter_name", "nan"};
  double values[4] = {0.35, -0.8, 0.05, NAN};
  bars b = {labels, values, 4};
  ct_context *ctx = ct_context_new(NULL);
  assert_int_equal(ct_write_atomic(ctx, path, emit_bars, &b), CT_OK);
  char *svg = slurp(path);
  assert_int_equal(count_of(svg, "class=\"bar\""), 3);
  assert_int_equal(count_of(svg, "#D55E00"), 1); /* the negative bar */
  free(svg);
  char *texts = svg_texts(path);
  if (texts) {
    assert_non_null(strstr(texts, "|dJ/dp|"));
    assert_non_null(strstr(texts, "|-1.0|-0.5|0.0|0.5|p1|0.35|"));
    assert_non_null(strstr(texts, "|p2 & p3|-0.8|"));
    assert_non_null(strstr(texts, "|nan|nan|"));
    free(texts);
  }
  b.n = 0;
  assert_int_equal(ct_write_atomic(ctx, path, emit_bars, &b), CT_OK);
  free(svg_texts(path));
  ct_context_free(ctx);
  remove_tree(dir);
}

/* ---- progress -------------------------------------------------------------------- */

/* Everything written to a temporary FILE so far (caller frees). */
static char *captured(FILE *f) {
  fflush(f);
  long n = ftell(f);
  rewind(f);
  char *buf = calloc(1, (size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  fseek(f, 0, SEEK_END);
  return buf;
}

static void sleep_s(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
  nanosleep(&ts, NULL);
}

static void test_progress_plain_when_not_a_terminal(void **state) {
  (void)state;
  unsetenv("COTANGENT_PROGRESS");
  FILE *f = tmpfile();
  assert_non_null(f);
  ct_progress *p = ct_progress_new(f, 0);
  assert_non_null(p);
  ct_progress_begin(p, "simulate", 0, 10);
  for (int i = 1; i <= 100; i++) ct_progress_update(p, 0.1 * i);
  ct_progress_end(p, "done");
  char *out = captured(f);
  assert_non_null(strstr(out, "simulate: integrating from t = 0 to 10\n"));
  assert_non_null(strstr(out, "simulate: done ("));
  assert_null(strchr(out, '\r'));        /* no redraws */
  assert_int_equal(count_of(out, "\n"), 2); /* updates within 5 s print nothing */
  free(out);
  ct_progress_free(p);
  fclose(f);
}

static void test_progress_bar_when_forced_tty(void **state) {
  (void)state;
  setenv("COTANGENT_PROGRESS", "tty", 1);
  FILE *f = tmpfile();
  ct_progress *p = ct_progress_new(f, 0);
  ct_progress_begin(p, "forward_sensitivity 2/3", 0, 10);
  sleep_s(0.12);
  ct_progress_update(p, 5);
  char *out = captured(f);
  assert_non_null(strstr(out, "\r[....................] forward_sensitivity 2/3  t = 0 / 10  ETA ?"));
  assert_non_null(strstr(out, "\r[##########..........] forward_sensitivity 2/3  t = 5 / 10"));
  assert_null(strstr(out, "(log t)"));
  free(out);
  ct_progress_update(p, 6); /* within 0.1 s: no redraw */
  out = captured(f);
  assert_null(strstr(out, "t = 6 /"));
  free(out);
  ct_progress_end(p, "done");
  out = captured(f);
  assert_non_null(strstr(out, "\rforward_sensitivity 2/3: done ("));
  free(out);
  /* A stiff run from 0 to 4e7 whose first step is tiny: log-time. */
  ct_progress_begin(p, "simulate", 0, 4e7);
  ct_progress_update(p, 0.4);
  sleep_s(0.12);
  ct_progress_update(p, 4e3);
  out = captured(f);
  assert_non_null(strstr(out, "[##########..........] simulate  t = 4e+03 / 4e+07"));
  assert_non_null(strstr(out, "(log t)"));
  free(out);
  ct_progress_free(p); /* mid-phase: clears the bar */
  fclose(f);
  unsetenv("COTANGENT_PROGRESS");
}

static void test_progress_quiet_and_off(void **state) {
  (void)state;
  FILE *f = tmpfile();
  ct_progress *p = ct_progress_new(f, 1);
  ct_progress_begin(p, "simulate", 0, 1);
  ct_progress_update(p, 0.5);
  ct_progress_end(p, "done");
  ct_progress_free(p);
  setenv("COTANGENT_PROGRESS", "off", 1);
  p = ct_progress_new(f, 0);
  ct_progress_begin(p, "simulate", 0, 1);
  ct_progress_end(p, "failed at t = 0.5");
  ct_progress_free(p);
  unsetenv("COTANGENT_PROGRESS");
  assert_int_equal(ftell(f), 0);
  fclose(f);
  /* NULL is a quiet no-op everywhere. */
  ct_progress_begin(NULL, "x", 0, 1);
  ct_progress_update(NULL, 1);
  ct_progress_end(NULL, "done");
  ct_progress_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_atomic_write_replaces_file),
      cmocka_unit_test(test_atomic_write_failed_emit_keeps_old_file),
      cmocka_unit_test(test_atomic_write_unwritable_folder),
      cmocka_unit_test(test_make_dirs),
      cmocka_unit_test(test_writers_fault_sweep),
      cmocka_unit_test(test_fmt_num),
      cmocka_unit_test(test_svg_line_plot_parses_and_has_labels),
      cmocka_unit_test(test_svg_golden),
      cmocka_unit_test(test_svg_log_axes_and_degenerate_input),
      cmocka_unit_test(test_svg_bar_chart),
      cmocka_unit_test(test_progress_plain_when_not_a_terminal),
      cmocka_unit_test(test_progress_bar_when_forced_tty),
      cmocka_unit_test(test_progress_quiet_and_off),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
