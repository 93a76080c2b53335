/* The JIT and C generation: compiled code must agree with the interpreter
 * bit for bit (or both give NaN) for every op of CT_OP_LIST at edge values
 * (0, -0, negative, NaN, inf, min/max ties, select both ways) and random
 * points; for jvp/vjp of random expressions; with guards (CT_RETRACE); for a
 * ~20000-node function split into chunks; in batched evaluation. Then the
 * disk cache (a second context hits it without running the compiler), the
 * fallback to the interpreter with exactly one warning (no compiler, bad
 * flag, unusable cache folder), standalone code from ct_fun_codegen compiled
 * with a driver and no library, and fault injection through every
 * allocation. Each test uses its own cache folder under /tmp.
 *
 * CT_TEST_SEED in the environment replaces the default seed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ct_test.h"
#include "../../ad/ir.h" /* CT_OP_LIST and the node layout, to check coverage */

extern char **environ;

/* ---- Helpers ------------------------------------------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng_next(void) {
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
}

/* Uniform in [lo, hi). */
static double rng_uniform(double lo, double hi) {
  return lo + (hi - lo) * (double)(rng_next() >> 11) * 0x1p-53;
}

/* Equal bits, or both NaN. */
static int same_value(double a, double b) {
  return memcmp(&a, &b, sizeof a) == 0 || (isnan(a) && isnan(b));
}

/* What the log function saw. */
typedef struct log_capture {
  int warnings, infos;
  char warning[1024], info[1024];
} log_capture;

static void capture_log(void *ud, ct_log_level level, const char *message) {
  log_capture *c = ud;
  if (level == CT_LOG_WARNING) {
    c->warnings++;
    snprintf(c->warning, sizeof c->warning, "%s", message);
  } else if (level == CT_LOG_INFO) {
    c->infos++;
    snprintf(c->info, sizeof c->info, "%s", message);
  }
}

/* Removes a folder and everything in it. */
static void remove_tree(const char *path) {
  DIR *d = opendir(path);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      char sub[1024];
      snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
      struct stat st;
      if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
        remove_tree(sub);
      else
        unlink(sub);
    }
    closedir(d);
  }
  rmdir(path);
}

/* Number of entries of a folder whose name ends with `suffix` ("" for all). */
static int count_files(const char *path, const char *suffix) {
  DIR *d = opendir(path);
  if (!d) return 0;
  int n = 0;
  struct dirent *e;
  size_t ns = strlen(suffix);
  while ((e = readdir(d))) {
    size_t len = strlen(e->d_name);
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (len >= ns && !strcmp(e->d_name + len - ns, suffix)) n++;
  }
  closedir(d);
  return n;
}

/* Runs argv (no shell) with stdout and stderr into out_path; exit status,
 * or -1 if it could not run. */
static int run_program(char *const argv[], const char *out_path) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  int status;
  if (waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Writes `text` to `path`. */
static void write_text(const char *path, const char *text) {
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  fputs(text, fp);
  assert_int_equal(fclose(fp), 0);
}

/* Seconds since an arbitrary origin. */
static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Per-test state: a scratch folder with the cache inside, a context using
 * it, and the captured log. */
typedef struct fixture {
  char dir[64];
  char cache[128];
  ct_context *ctx;
  log_capture log;
} fixture;

static int setup(void **state) {
  fixture *fx = calloc(1, sizeof *fx);
  if (!fx) return -1;
  snprintf(fx->dir, sizeof fx->dir, "/tmp/ct-test-jit-XXXXXX");
  if (!mkdtemp(fx->dir)) return -1;
  snprintf(fx->cache, sizeof fx->cache, "%s/cache/nested", fx->dir);
  fx->ctx = ct_context_new(NULL);
  if (!fx->ctx || ct_context_set_cache_dir(fx->ctx, fx->cache) != CT_OK) return -1;
  ct_context_set_log_fn(fx->ctx, capture_log, &fx->log);
  ct_context_set_log_level(fx->ctx, CT_LOG_INFO);
  *state = fx;
  return 0;
}

static int teardown(void **state) {
  fixture *fx = *state;
  ct_context_free(fx->ctx);
  remove_tree(fx->dir);
  free(fx);
  return 0;
}

/* Finalizes and frees g; fails the test on an error. */
static ct_fun *finalize(ct_context *ctx, ct_graph *g) {
  ct_fun *f = NULL;
  int rc = ct_graph_finalize(g, &f);
  if (rc != CT_OK) fail_msg("finalize failed: %s", ct_errmsg(ctx));
  ct_graph_free(g);
  return f;
}

static size_t total_in(const ct_fun *f) {
  size_t n = 0;
  for (size_t i = 0; i < ct_fun_n_in(f); i++) n += ct_fun_in_size(f, i);
  return n;
}

static size_t total_out(const ct_fun *f) {
  size_t n = 0;
  for (size_t i = 0; i < ct_fun_n_out(f); i++) n += ct_fun_out_size(f, i);
  return n;
}

/* Evaluates f at each of npts points (pts: npts rows of all inputs
 * concatenated) into vals (npts rows of all outputs) and status[p]. */
static void eval_points(ct_context *ctx, const ct_fun *f, size_t npts,
                        const double *pts, double *vals, int *status) {
  size_t ti = total_in(f), to = total_out(f), ni = ct_fun_n_in(f), no = ct_fun_n_out(f);
  const double **in = calloc(ni + 1, sizeof *in);
  double **out = calloc(no + 1, sizeof *out);
  double *work = malloc(sizeof(double) * (ct_fun_work_size(f) + 1));
  assert_true(in && out && work);
  for (size_t p = 0; p < npts; p++) {
    size_t off = 0;
    for (size_t i = 0; i < ni; i++, off += ct_fun_in_size(f, i - 1)) in[i] = pts + p * ti + off;
    off = 0;
    for (size_t o = 0; o < no; o++, off += ct_fun_out_size(f, o - 1)) out[o] = vals + p * to + off;
    status[p] = ct_fun_eval(ctx, f, (const double *const *)in, out, work);
    assert_true(status[p] == CT_OK || status[p] == CT_RETRACE);
  }
  free(in);
  free(out);
  free(work);
}

/* Compares two rows of outputs; fails with the first difference. */
static void assert_same_rows(const ct_fun *f, size_t npts, const double *pts,
                             const double *want, const double *got,
                             const char *what) {
  size_t ti = total_in(f), to = total_out(f);
  for (size_t p = 0; p < npts; p++)
    for (size_t k = 0; k < to; k++) {
      double a = want[p * to + k], b = got[p * to + k];
      if (!same_value(a, b)) {
        char inputs[256] = "";
        for (size_t i = 0; i < ti && i < 4; i++) {
          size_t len = strlen(inputs);
          snprintf(inputs + len, sizeof inputs - len, " %a", pts[p * ti + i]);
        }
        fail_msg("%s: point %zu (inputs%s), output component %zu: interpreter "
                 "%a, compiled %a", what, p, inputs, k, a, b);
      }
    }
}

/* The heart of most tests: evaluates f with the interpreter, compiles it
 * with `opts`, and checks that the compiled code gives the same bits and
 * statuses, one point at a time and batched. */
static void check_jit_matches(fixture *fx, ct_fun *f, size_t npts, const double *pts,
                              const ct_jit_options *opts) {
  size_t ti = total_in(f), to = total_out(f), ni = ct_fun_n_in(f), no = ct_fun_n_out(f);
  double *want = malloc(sizeof(double) * (npts * to + 1));
  double *got = malloc(sizeof(double) * (npts * to + 1));
  int *st_want = malloc(sizeof(int) * (npts + 1)), *st_got = malloc(sizeof(int) * (npts + 1));
  assert_true(want && got && st_want && st_got);
  assert_int_equal(ct_fun_backend(f), CT_BACKEND_INTERPRETER);
  eval_points(fx->ctx, f, npts, pts, want, st_want);

  int warnings = fx->log.warnings;
  assert_int_equal(ct_fun_jit(fx->ctx, f, opts), CT_OK);
  if (ct_fun_backend(f) != CT_BACKEND_JIT)
    fail_msg("the JIT did not attach: %s", fx->log.warning);
  assert_int_equal(fx->log.warnings, warnings);

  memset(got, 0xff, sizeof(double) * (npts * to + 1));
  eval_points(fx->ctx, f, npts, pts, got, st_got);
  int any_retrace = 0;
  for (size_t p = 0; p < npts; p++) {
    assert_int_equal(st_got[p], st_want[p]);
    any_retrace |= st_want[p] == CT_RETRACE;
  }
  assert_same_rows(f, npts, pts, want, got, "single-point evaluation");

  /* Batched: in[i] holds npts consecutive vectors of input i. */
  double **bin = calloc(ni + 1, sizeof *bin), **bout = calloc(no + 1, sizeof *bout);
  assert_true(bin && bout);
  size_t off = 0;
  for (size_t i = 0; i < ni; i++) {
    size_t n = ct_fun_in_size(f, i);
    bin[i] = malloc(sizeof(double) * (npts * n + 1));
    for (size_t p = 0; p < npts; p++)
      memcpy(bin[i] + p * n, pts + p * ti + off, n * sizeof(double));
    off += n;
  }
  for (size_t o = 0; o < no; o++)
    bout[o] = malloc(sizeof(double) * (npts * ct_fun_out_size(f, o) + 1));
  double *work = malloc(sizeof(double) * (ct_fun_work_size_batch(f, npts) + 1));
  int rc = ct_fun_eval_batch(fx->ctx, f, npts, (const double *const *)bin, bout, work);
  assert_int_equal(rc, any_retrace ? CT_RETRACE : CT_OK);
  off = 0;
  for (size_t o = 0; o < no; o++) {
    size_t n = ct_fun_out_size(f, o);
    for (size_t p = 0; p < npts; p++)
      memcpy(got + p * to + off, bout[o] + p * n, n * sizeof(double));
    off += n;
  }
  assert_same_rows(f, npts, pts, want, got, "batched evaluation");
  for (size_t i = 0; i < ni; i++) free(bin[i]);
  for (size_t o = 0; o < no; o++) free(bout[o]);
  free(bin);
  free(bout);
  free(work);
  free(want);
  free(got);
  free(st_want);
  free(st_got);
}

/* Checks that f contains a node of every op of CT_OP_LIST. */
static void assert_covers_all_ops(const ct_fun *f) {
  int seen[CT_OP_COUNT] = {0};
  for (size_t i = 0; i < f->n_nodes; i++) seen[f->nodes[i].op] = 1;
  for (int op = 0; op < CT_OP_COUNT; op++)
    if (!seen[op]) fail_msg("op %s is not covered", ct_op_name(op));
}

/* ---- Every op ----------------------------------------------------------------- */

/* f(a, b, c) with one output component per case, covering every op, some
 * with constant operands, and a second output "z". */
static ct_fun *build_all_ops(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  assert_non_null(g);
  ct_var a, b, c;
  assert_int_equal(ct_graph_input(g, "a", 1, NULL, &a), CT_OK);
  assert_int_equal(ct_graph_input(g, "b", 1, NULL, &b), CT_OK);
  assert_int_equal(ct_graph_input(g, "c", 1, NULL, &c), CT_OK);
  ct_var y[] = {
      ct_const(g, 0.1), ct_const(g, -0.0), ct_const(g, NAN), ct_const(g, -INFINITY),
      ct_const(g, 0x1p-1070), a,
      ct_add(a, b), ct_sub(a, b), ct_mul(a, b), ct_div(a, b), ct_neg(a), ct_sqr(a),
      ct_addc(a, 1.5), ct_mulc(a, -3.25), ct_subc(-0.0, a), ct_divc(7.0, a),
      ct_pow(a, b), ct_powc(a, 0.5), ct_powc(a, -1.5), ct_pow(ct_const(g, 2.0), a),
      ct_pow(ct_const(g, -8.0), b), ct_powc(a, 1e10),
      ct_powi(a, -1), ct_powi(a, 3), ct_powi(a, -3), ct_powi(a, 7), ct_powi(a, -2),
      ct_exp(a), ct_log(a), ct_log1p(a), ct_expm1(a), ct_sqrt(a), ct_cbrt(a),
      ct_sin(a), ct_cos(a), ct_tan(a), ct_asin(a), ct_acos(a), ct_atan(a),
      ct_atan2(a, b), ct_atan2(ct_const(g, -0.0), a), ct_sinh(a), ct_cosh(a),
      ct_tanh(a), ct_asinh(a), ct_acosh(a), ct_atanh(a), ct_erf(a), ct_abs(a),
      ct_sign(a), ct_min(a, b), ct_max(a, b), ct_min(b, a), ct_max(b, a),
      ct_min(a, ct_const(g, 0.0)), ct_max(ct_const(g, -0.0), a),
      ct_min(a, ct_const(g, NAN)), ct_max(ct_const(g, NAN), a),
      ct_floor(a), ct_ceil(a), ct_hypot(a, b), ct_hypot(a, ct_const(g, 0.0)),
      ct_lt(a, b), ct_le(a, b), ct_gt(a, b), ct_ge(a, b), ct_eq(a, b), ct_ne(a, b),
      ct_lt(a, ct_const(g, 0.5)), ct_and(a, b), ct_or(a, b), ct_not(a),
      ct_and(ct_lt(a, b), ct_ge(b, c)), ct_or(ct_not(a), ct_eq(b, c)),
      ct_select(a, b, c), ct_select(ct_lt(a, b), b, c),
      ct_select(c, ct_const(g, 1.0), ct_sin(b)),
  };
  ct_var z[] = {ct_mul(ct_sin(a), ct_exp(b)), ct_select(ct_ne(c, c), a, ct_neg(b))};
  assert_int_equal(ct_graph_output(g, "y", sizeof y / sizeof *y, y), CT_OK);
  assert_int_equal(ct_graph_output(g, "z", 2, z), CT_OK);
  ct_fun *f = finalize(ctx, g);
  assert_non_null(f);
  assert_covers_all_ops(f);
  return f;
}

/* The edge values every pair of (a, b) is drawn from. */
static const double edge_values[] = {
    0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, 0.7, 2.0, -0.999999, 1e-310, -1e300,
    1e300, 710.0, 0.3333333333333333, 7.5, NAN, INFINITY, -INFINITY, -NAN};
enum { N_EDGE = sizeof edge_values / sizeof *edge_values };

/* Points for build_all_ops: all pairs of edge values (c cycling through
 * them too), then random points. */
static double *all_ops_points(size_t *npts) {
  size_t nrand = 400, n = N_EDGE * N_EDGE + nrand;
  double *pts = malloc(3 * n * sizeof *pts);
  assert_non_null(pts);
  size_t p = 0;
  for (size_t i = 0; i < N_EDGE; i++)
    for (size_t j = 0; j < N_EDGE; j++, p++) {
      pts[3 * p] = edge_values[i];
      pts[3 * p + 1] = edge_values[j];
      pts[3 * p + 2] = edge_values[(i + 3 * j) % N_EDGE];
    }
  for (; p < n; p++)
    for (int k = 0; k < 3; k++) {
      double scale = (rng_next() & 3) == 0 ? 40.0 : 2.0;
      pts[3 * p + k] = rng_uniform(-scale, scale);
      if ((rng_next() & 15) == 0) pts[3 * p + k] = floor(pts[3 * p + k]); /* ties */
    }
  /* Some random points with a == b exactly: ties for min/max/comparisons. */
  for (size_t q = N_EDGE * N_EDGE; q < n; q += 7) pts[3 * q + 1] = pts[3 * q];
  *npts = n;
  return pts;
}

static void test_all_ops_match_interpreter(void **state) {
  fixture *fx = *state;
  size_t npts;
  double *pts = all_ops_points(&npts);
  ct_fun *f = build_all_ops(fx->ctx);
  check_jit_matches(fx, f, npts, pts, NULL);
  assert_non_null(strstr(fx->log.info, "compiled"));

  /* out[o] == NULL skips that output and leaves nothing else out. */
  double work[4096], y[256], zs[2] = {42, 43};
  assert_true(ct_fun_work_size(f) <= 4096 && ct_fun_out_size(f, 0) <= 256);
  const double *in[3] = {&pts[0], &pts[1], &pts[2]};
  double *out[2] = {NULL, zs};
  assert_int_equal(ct_fun_eval(fx->ctx, f, in, out, work), CT_OK);
  out[0] = y;
  out[1] = NULL;
  zs[0] = 42;
  assert_int_equal(ct_fun_eval(fx->ctx, f, in, out, work), CT_OK);
  assert_true(zs[0] == 42 && zs[1] != 43);

  /* A second call is harmless: nothing compiled, nothing logged. */
  int infos = fx->log.infos;
  assert_int_equal(ct_fun_jit(fx->ctx, f, NULL), CT_OK);
  assert_int_equal(ct_fun_backend(f), CT_BACKEND_JIT);
  assert_int_equal(fx->log.infos, infos);
  assert_int_equal(fx->log.warnings, 0);
  ct_fun_free(f);
  free(pts);
}

/* Tiny chunks: nearly every value crosses a chunk boundary and lives in
 * work[], whose slots are reused; and one chunk however large the function.
 * The first build uses no optimization flags at all. */
static void test_all_ops_tiny_chunks(void **state) {
  fixture *fx = *state;
  size_t npts;
  double *pts = all_ops_points(&npts);
  size_t chunks[] = {1, 2, 7, 50, SIZE_MAX};
  for (size_t k = 0; k < sizeof chunks / sizeof *chunks; k++) {
    ct_jit_options opts = {NULL, k == 0 ? "" : NULL, chunks[k], 0}; /* "": no -O2 */
    ct_fun *f = build_all_ops(fx->ctx);
    check_jit_matches(fx, f, npts, pts, &opts);
    ct_fun_free(f);
  }
  free(pts);
}

/* Compilers rewrite pow(x, -1.0) as 1.0 / x and pow(2.0, x) as exp2(x)
 * (GCC and clang at -O2, no fast-math needed); both differ from the C
 * library's pow in the last bit at about one point in a thousand, so the
 * generated code must keep real pow calls. Many points, to catch that. */
static void test_pow_not_rewritten(void **state) {
  fixture *fx = *state;
  ct_graph *g = ct_graph_new(fx->ctx);
  ct_var a;
  assert_int_equal(ct_graph_input(g, "a", 1, NULL, &a), CT_OK);
  ct_var y[] = {ct_powi(a, -1), ct_pow(ct_const(g, 2.0), a), ct_powc(a, 0.5),
                ct_powi(a, 3), ct_pow(ct_const(g, 10.0), a), ct_powc(a, -0.5)};
  assert_int_equal(ct_graph_output(g, "y", sizeof y / sizeof *y, y), CT_OK);
  ct_fun *f = finalize(fx->ctx, g);
  size_t npts = 100000;
  double *pts = malloc(npts * sizeof *pts);
  assert_non_null(pts);
  for (size_t p = 0; p < npts; p++) pts[p] = rng_uniform(-3, 3);
  check_jit_matches(fx, f, npts, pts, NULL);
  ct_fun_free(f);
  free(pts);
}

/* ---- Derivatives ---------------------------------------------------------------- */

/* A seeded random expression of x[3] with two outputs, from smooth ops
 * plus a few kinks. */
static ct_fun *build_random_expression(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var pool[64];
  assert_int_equal(ct_graph_input(g, "x", 3, NULL, pool), CT_OK);
  size_t n = 3;
  while (n < 64) {
    ct_var a = pool[rng_next() % n], b = pool[rng_next() % n], r;
    switch (rng_next() % 16) {
      case 0: r = ct_add(a, b); break;
      case 1: r = ct_sub(a, b); break;
      case 2: r = ct_mul(a, b); break;
      case 3: r = ct_div(a, ct_addc(ct_sqr(b), 1.0)); break;
      case 4: r = ct_sin(a); break;
      case 5: r = ct_exp(ct_neg(ct_sqr(a))); break;
      case 6: r = ct_tanh(a); break;
      case 7: r = ct_atan2(a, ct_addc(ct_abs(b), 0.5)); break;
      case 8: r = ct_sqrt(ct_addc(ct_sqr(a), 1.0)); break;
      case 9: r = ct_log1p(ct_sqr(a)); break;
      case 10: r = ct_powi(a, (int)(rng_next() % 5) - 2); break;
      case 11: r = ct_hypot(a, b); break;
      case 12: r = ct_max(a, b); break;
      case 13: r = ct_erf(a); break;
      case 14: r = ct_pow(ct_addc(ct_sqr(a), 0.5), ct_cos(b)); break;
      default: r = ct_select(ct_lt(a, b), ct_cbrt(a), ct_mulc(b, 0.3)); break;
    }
    pool[n++] = r;
  }
  ct_var y[2] = {ct_add(pool[62], pool[40]), ct_mul(pool[63], pool[50])};
  assert_int_equal(ct_graph_output(g, "y", 2, y), CT_OK);
  return finalize(ctx, g);
}

/* Random points for f: every input component uniform in [-2, 2). */
static double *random_points(const ct_fun *f, size_t npts) {
  size_t ti = total_in(f);
  double *pts = malloc(sizeof(double) * (npts * ti + 1));
  assert_non_null(pts);
  for (size_t k = 0; k < npts * ti; k++) pts[k] = rng_uniform(-2, 2);
  return pts;
}

static void test_jvp_vjp_match_interpreter(void **state) {
  fixture *fx = *state;
  for (int rep = 0; rep < 3; rep++) {
    ct_fun *f = build_random_expression(fx->ctx), *jf = NULL, *vf = NULL;
    assert_int_equal(ct_fun_jvp(fx->ctx, f, 2, NULL, &jf), CT_OK);
    assert_int_equal(ct_fun_vjp(fx->ctx, f, 2, NULL, &vf), CT_OK);
    ct_fun *fs[3] = {f, jf, vf};
    for (int k = 0; k < 3; k++) {
      double *pts = random_points(fs[k], 200);
      check_jit_matches(fx, fs[k], 200, pts, NULL);
      free(pts);
    }
    /* Transforms of a compiled function work as before. */
    ct_fun *jf2 = NULL;
    assert_int_equal(ct_fun_jvp(fx->ctx, f, 1, NULL, &jf2), CT_OK);
    assert_int_equal(ct_fun_backend(jf2), CT_BACKEND_INTERPRETER);
    ct_fun_free(jf2);
    for (int k = 0; k < 3; k++) ct_fun_free(fs[k]);
  }
}

/* ---- Guards ----------------------------------------------------------------------- */

static void test_guards_retrace(void **state) {
  fixture *fx = *state;
  ct_graph *g = ct_graph_new(fx->ctx);
  ct_var x[2];
  const double at[2] = {1.0, 2.0};
  assert_int_equal(ct_graph_input(g, "x", 2, at, x), CT_OK);
  ct_var y = ct_branch(ct_lt(x[0], x[1])) ? ct_mul(x[0], x[1]) : ct_add(x[0], x[1]);
  if (ct_branch(ct_gt(x[0], ct_const(g, 5.0)))) y = ct_neg(y);
  assert_int_equal(ct_graph_output(g, "y", 1, &y), CT_OK);
  ct_fun *f = finalize(fx->ctx, g);
  assert_int_equal(ct_fun_n_guards(f), 2);

  const double pts[] = {1.0, 2.0, 3.0, 2.0, 6.0, 7.0, 2.0, 2.0, -1.0, 0.5, NAN, 1.0};
  size_t npts = sizeof pts / sizeof pts[0] / 2;
  check_jit_matches(fx, f, npts, pts, NULL);

  double yv, work[64];
  assert_true(ct_fun_work_size(f) <= 64);
  double *out[1] = {&yv};
  const double *in[1] = {pts};
  assert_int_equal(ct_fun_eval(fx->ctx, f, in, out, work), CT_OK);
  assert_true(yv == 2.0);
  in[0] = pts + 2; /* 3 < 2 flips the first guard: the traced branch is kept */
  assert_int_equal(ct_fun_eval(fx->ctx, f, in, out, work), CT_RETRACE);
  assert_true(yv == 6.0);
  in[0] = pts + 4; /* 6 < 7 holds, 6 > 5 flips the second */
  assert_int_equal(ct_fun_eval(fx->ctx, f, in, out, work), CT_RETRACE);
  ct_fun_free(f);
}

/* ---- A big function in chunks -------------------------------------------------------- */

/* About 20000 nodes: a long recurrence over x[64] with values kept from far
 * back (crossing many chunks) and a guard at the start. */
static ct_fun *build_big(ct_context *ctx, size_t steps) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var x[64], keep[256], outs[256];
  double at[64];
  for (int i = 0; i < 64; i++) at[i] = 0.01 * i;
  assert_int_equal(ct_graph_input(g, "x", 64, at, x), CT_OK);
  ct_var s = x[0];
  size_t nkeep = 0, nout = 0;
  if (ct_branch(ct_lt(x[0], x[1]))) s = ct_add(s, x[1]);
  for (size_t k = 0; k < steps; k++) {
    ct_var xi = x[k % 64];
    double ck = 1.0 + 1e-3 * (double)k;
    switch (k % 4) {
      case 0: s = ct_mul(ct_sin(s), ct_addc(xi, ck)); break;
      case 1: s = ct_add(s, ct_mulc(xi, ck)); break;
      case 2: s = ct_sub(ct_mulc(ct_sqr(s), 0.5), xi); break;
      default: s = ct_add(ct_tanh(s), ct_div(xi, ct_addc(ct_sqr(s), ck))); break;
    }
    if (k % 97 == 0 && nkeep < 256) keep[nkeep++] = s;
    if (k % 61 == 0 && nout < 255) outs[nout++] = s;
  }
  ct_var sum = s;
  for (size_t i = 0; i < nkeep; i++) sum = ct_add(sum, ct_mulc(keep[i], 1.0 / (double)(i + 1)));
  outs[nout++] = sum;
  assert_int_equal(ct_graph_output(g, "y", nout, outs), CT_OK);
  assert_int_equal(ct_graph_output(g, "early", 3, keep), CT_OK);
  return finalize(ctx, g);
}

static void test_big_function_in_chunks(void **state) {
  fixture *fx = *state;
  ct_fun *f = build_big(fx->ctx, 5000);
  size_t nodes = ct_fun_n_nodes(f);
  assert_true(nodes > 18000 && nodes < 24000);
  double *pts = malloc(sizeof(double) * 64 * 6);
  assert_non_null(pts);
  for (int p = 0; p < 6; p++)
    for (int i = 0; i < 64; i++) pts[p * 64 + i] = (p == 5 ? -1 : 1) * rng_uniform(0, 0.05) + 0.01 * i;
  ct_jit_options opts = {NULL, NULL, 1000, 0};
  double t0 = now_s();
  check_jit_matches(fx, f, 6, pts, &opts);
  double t_jit = now_s() - t0;
  assert_non_null(strstr(fx->log.info, "chunk functions"));
  print_message("big function: %zu nodes; check with max_chunk = 1000 took %.2f s "
                "(%s)\n", nodes, t_jit, fx->log.info);

  /* The standalone code (default chunk of 5000 statements) is split too. */
  char c_path[256], h_path[256];
  snprintf(c_path, sizeof c_path, "%s/big.c", fx->dir);
  snprintf(h_path, sizeof h_path, "%s/big.h", fx->dir);
  assert_int_equal(ct_fun_codegen(fx->ctx, f, "big", c_path, h_path), CT_OK);
  FILE *fp = fopen(c_path, "r");
  assert_non_null(fp);
  char line[512];
  int chunks = 0;
  while (fgets(line, sizeof line, fp))
    if (!strncmp(line, "static int big_chunk", 20)) chunks++;
  fclose(fp);
  assert_true(chunks >= 4 && chunks <= 8);
  ct_fun_free(f);
  free(pts);
}

/* ---- The cache -------------------------------------------------------------------- */

/* Lines in a file (0 if it does not exist). */
static int count_lines(const char *path) {
  FILE *fp = fopen(path, "r");
  if (!fp) return 0;
  int n = 0, ch;
  while ((ch = fgetc(fp)) != EOF) n += ch == '\n';
  fclose(fp);
  return n;
}

/* A function above max_ops is not compiled: CT_OK, the interpreter, an
 * info line naming the limit, and no object in the cache. */
static void test_size_limit_stays_interpreted(void **state) {
  fixture *fx = *state;
  ct_fun *f = build_big(fx->ctx, 200);
  size_t nodes = ct_fun_n_nodes(f);
  ct_jit_options small = {NULL, NULL, 0, nodes - 1};
  assert_int_equal(ct_fun_jit(fx->ctx, f, &small), CT_OK);
  assert_int_equal(ct_fun_backend(f), CT_BACKEND_INTERPRETER);
  assert_non_null(strstr(fx->log.info, "above the compile limit"));
  assert_int_equal(count_files(fx->cache, ".so"), 0);
  ct_jit_options enough = {NULL, NULL, 0, nodes};
  assert_int_equal(ct_fun_jit(fx->ctx, f, &enough), CT_OK);
  assert_int_equal(ct_fun_backend(f), CT_BACKEND_JIT);
  ct_fun_free(f);
}

static void test_cache_hit_skips_compiler(void **state) {
  fixture *fx = *state;
  /* A compiler wrapper that counts its runs. */
  char wrapper[256], counter[256], script[1024];
  snprintf(wrapper, sizeof wrapper, "%s/counting-cc", fx->dir);
  snprintf(counter, sizeof counter, "%s/runs", fx->dir);
  snprintf(script, sizeof script, "#!/bin/sh\necho run >> '%s'\nexec cc \"$@\"\n", counter);
  write_text(wrapper, script);
  assert_int_equal(chmod(wrapper, 0755), 0);

  ct_jit_options opts = {wrapper, NULL, 0, 0};
  uint64_t seed = rng_state;
  ct_fun *f1 = build_random_expression(fx->ctx);
  uint64_t after = rng_state;
  double *pts = random_points(f1, 50);
  check_jit_matches(fx, f1, 50, pts, &opts);
  assert_non_null(strstr(fx->log.info, "compiled"));
  assert_int_equal(count_lines(counter), 1);
  assert_int_equal(count_files(fx->cache, ".so"), 1);
  assert_int_equal(count_files(fx->cache, ""), 1); /* no temporary left */
  struct stat st;
  char parent[256];
  snprintf(parent, sizeof parent, "%s/cache", fx->dir);
  assert_int_equal(stat(parent, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0700);
  assert_int_equal(stat(fx->cache, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0700);

  /* A fresh context: the same function is found in the cache, so the
   * compiler, now gone, never runs. */
  assert_int_equal(unlink(wrapper), 0);
  ct_context *ctx2 = ct_context_new(NULL);
  assert_non_null(ctx2);
  fixture fx2 = {{0}, {0}, ctx2, {0, 0, "", ""}};
  assert_int_equal(ct_context_set_cache_dir(ctx2, fx->cache), CT_OK);
  ct_context_set_log_fn(ctx2, capture_log, &fx2.log);
  ct_context_set_log_level(ctx2, CT_LOG_INFO);
  rng_state = seed;
  ct_fun *f2 = build_random_expression(ctx2);
  assert_true(rng_state == after);
  check_jit_matches(&fx2, f2, 50, pts, &opts);
  assert_int_equal(fx2.log.warnings, 0);
  assert_non_null(strstr(fx2.log.info, "from the cache"));
  assert_int_equal(count_lines(counter), 1);
  assert_int_equal(count_files(fx->cache, ""), 1);

  /* The flags are part of the key: -O1 misses, and with no compiler the
   * function stays on the interpreter. */
  rng_state = seed;
  ct_fun *f3 = build_random_expression(ctx2);
  ct_jit_options o1 = {wrapper, "-O1", 0, 0};
  assert_int_equal(ct_fun_jit(ctx2, f3, &o1), CT_OK);
  assert_int_equal(ct_fun_backend(f3), CT_BACKEND_INTERPRETER);
  assert_int_equal(fx2.log.warnings, 1);
  assert_int_equal(count_lines(counter), 1);
  assert_int_equal(count_files(fx->cache, ""), 1);

  /* So is the compiler: a different name misses as well. */
  ct_fun_free(f3);
  rng_state = seed;
  f3 = build_random_expression(ctx2);
  ct_jit_options other = {"/nonexistent/cc", NULL, 0, 0};
  assert_int_equal(ct_fun_jit(ctx2, f3, &other), CT_OK);
  assert_int_equal(ct_fun_backend(f3), CT_BACKEND_INTERPRETER);
  assert_int_equal(fx2.log.warnings, 2);

  /* The cached object outlives the function and the context. */
  ct_fun_free(f1);
  ct_fun_free(f2);
  ct_fun_free(f3);
  ct_context_free(ctx2);
  assert_int_equal(count_files(fx->cache, ".so"), 1);
  free(pts);
}

/* A truncated object in the cache is not trusted: it is rebuilt. */
static void test_cache_corrupt_object_rebuilt(void **state) {
  fixture *fx = *state;
  uint64_t seed = rng_state;
  ct_fun *f = build_random_expression(fx->ctx);
  double *pts = random_points(f, 20);
  check_jit_matches(fx, f, 20, pts, NULL);
  ct_fun_free(f);
  DIR *d = opendir(fx->cache);
  assert_non_null(d);
  struct dirent *e;
  char so[512] = "";
  while ((e = readdir(d)))
    if (strstr(e->d_name, ".so")) snprintf(so, sizeof so, "%s/%s", fx->cache, e->d_name);
  closedir(d);
  assert_true(so[0] != '\0');
  write_text(so, "not an ELF object");
  rng_state = seed;
  f = build_random_expression(fx->ctx);
  int infos = fx->log.infos;
  check_jit_matches(fx, f, 20, pts, NULL);
  assert_true(fx->log.infos > infos);
  assert_non_null(strstr(fx->log.info, "compiled"));
  assert_int_equal(fx->log.warnings, 0);
  ct_fun_free(f);
  free(pts);
}

/* Several threads, each with its own context, compile the same function
 * into one cache folder at once: each gets working code, and the folder
 * ends with one complete object and no temporaries. */
typedef struct race_arg {
  const char *cache;
  pthread_barrier_t *barrier;
  int ok;
  double y;
} race_arg;

static void *race_thread(void *p) {
  race_arg *r = p;
  ct_context *ctx = ct_context_new(NULL);
  ct_graph *g = ctx ? ct_graph_new(ctx) : NULL;
  ct_fun *f = NULL;
  r->ok = 0;
  pthread_barrier_wait(r->barrier);
  if (!g || ct_context_set_cache_dir(ctx, r->cache) != CT_OK) goto done;
  ct_context_set_log_level(ctx, CT_LOG_QUIET);
  ct_var x[2];
  ct_graph_input(g, "x", 2, NULL, x);
  ct_var y = ct_atan2(ct_sinh(x[0]), ct_powi(x[1], -1));
  for (int i = 0; i < 300; i++) y = ct_add(ct_mulc(y, 0.5), ct_cos(ct_addc(y, i)));
  ct_graph_output(g, "y", 1, &y);
  if (ct_graph_finalize(g, &f) != CT_OK) goto done;
  if (ct_fun_jit(ctx, f, NULL) != CT_OK || ct_fun_backend(f) != CT_BACKEND_JIT) goto done;
  double xv[2] = {0.25, 3.0}, work[512];
  const double *in[1] = {xv};
  double *out[1] = {&r->y};
  r->ok = ct_fun_work_size(f) <= 512 && ct_fun_eval(ctx, f, in, out, work) == CT_OK;
done:
  ct_fun_free(f);
  ct_graph_free(g);
  ct_context_free(ctx);
  return NULL;
}

static void test_concurrent_compiles(void **state) {
  fixture *fx = *state;
  enum { N = 4 };
  pthread_t th[N];
  race_arg args[N];
  pthread_barrier_t barrier;
  pthread_barrier_init(&barrier, NULL, N);
  for (int i = 0; i < N; i++) {
    args[i] = (race_arg){fx->cache, &barrier, 0, 0};
    assert_int_equal(pthread_create(&th[i], NULL, race_thread, &args[i]), 0);
  }
  for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
  pthread_barrier_destroy(&barrier);
  for (int i = 0; i < N; i++) {
    assert_true(args[i].ok);
    assert_true(same_value(args[i].y, args[0].y));
  }
  assert_int_equal(count_files(fx->cache, ".so"), 1);
  assert_int_equal(count_files(fx->cache, ""), 1);
}

/* ---- Fallback ------------------------------------------------------------------------ */

/* ct_fun_jit with `opts` must return CT_OK, leave f on the interpreter, log
 * exactly one warning containing `expect`, and leave no object behind. */
static void check_fallback(fixture *fx, const ct_jit_options *opts, const char *expect) {
  ct_fun *f = build_all_ops(fx->ctx);
  int warnings = fx->log.warnings;
  assert_int_equal(ct_fun_jit(fx->ctx, f, opts), CT_OK);
  assert_int_equal(ct_fun_backend(f), CT_BACKEND_INTERPRETER);
  assert_int_equal(fx->log.warnings, warnings + 1);
  if (!strstr(fx->log.warning, expect))
    fail_msg("warning '%s' does not mention '%s'", fx->log.warning, expect);
  assert_int_equal(count_files(fx->cache, ".so"), 0);
  assert_int_equal(count_files(fx->cache, ""), 0);
  /* Still works, on the interpreter. */
  double work[4096], y[256], z[2];
  const double a = 0.5, b = 2.0, c = -1.0;
  const double *in[3] = {&a, &b, &c};
  double *out[2] = {y, z};
  assert_true(ct_fun_work_size(f) <= 4096);
  assert_int_equal(ct_fun_eval(fx->ctx, f, in, out, work), CT_OK);
  assert_true(z[0] == sin(0.5) * exp(2.0));
  ct_fun_free(f);
}

static void test_fallback_without_compiler(void **state) {
  fixture *fx = *state;
  ct_jit_options opts = {"/nonexistent/cc", NULL, 0, 0};
  check_fallback(fx, &opts, "/nonexistent/cc");
  ct_jit_options blank = {"  ", NULL, 0, 0};
  check_fallback(fx, &blank, "compiler");
}

static void test_fallback_bad_flag(void **state) {
  fixture *fx = *state;
  ct_jit_options opts = {"cc", "-O2 --no-such-flag-for-cotangent", 0, 0};
  check_fallback(fx, &opts, "no-such-flag-for-cotangent");
  ct_jit_options werr = {"cc", "-O2 -Werror -Wfloat-equal", 0, 0};
  check_fallback(fx, &werr, "exited with status");
}

static void test_fallback_bad_cache_folder(void **state) {
  fixture *fx = *state;
  char file[256], bad[300];
  snprintf(file, sizeof file, "%s/a-file", fx->dir);
  write_text(file, "x");
  snprintf(bad, sizeof bad, "%s/sub", file);
  assert_int_equal(ct_context_set_cache_dir(fx->ctx, bad), CT_OK);
  check_fallback(fx, NULL, "cache folder");
  assert_int_equal(ct_context_set_cache_dir(fx->ctx, file), CT_OK);
  check_fallback(fx, NULL, "not a folder");
}

/* $CC picks the compiler when opts->cc is NULL. */
static void test_cc_from_environment(void **state) {
  fixture *fx = *state;
  const char *old = getenv("CC");
  char *saved = old ? strdup(old) : NULL;
  setenv("CC", "/nonexistent/env-cc", 1);
  check_fallback(fx, NULL, "/nonexistent/env-cc");
  if (saved) {
    setenv("CC", saved, 1);
    free(saved);
  } else {
    unsetenv("CC");
  }
}

/* ---- Standalone C ---------------------------------------------------------------- */

/* A C99 literal for x in a driver's source. */
static void c_literal(char *buf, size_t size, double x) {
  if (isnan(x))
    snprintf(buf, size, "%s", signbit(x) ? "(-NAN)" : "NAN");
  else if (isinf(x))
    snprintf(buf, size, "%s", x < 0 ? "(-INFINITY)" : "INFINITY");
  else
    snprintf(buf, size, "%a", x);
}

static void test_codegen_standalone(void **state) {
  fixture *fx = *state;
  ct_fun *f = build_all_ops(fx->ctx);
  size_t npts;
  double *pts = all_ops_points(&npts);
  npts = npts > 200 ? 200 : npts;
  char model_c[256], model_h[256], driver[256], exe[256], outp[256];
  snprintf(model_c, sizeof model_c, "%s/model.c", fx->dir);
  snprintf(model_h, sizeof model_h, "%s/model.h", fx->dir);
  snprintf(driver, sizeof driver, "%s/driver.c", fx->dir);
  snprintf(exe, sizeof exe, "%s/driver", fx->dir);
  snprintf(outp, sizeof outp, "%s/driver.out", fx->dir);
  assert_int_equal(ct_fun_codegen(fx->ctx, f, "model", model_c, model_h), CT_OK);
  assert_int_equal(count_files(fx->dir, ""), 2); /* model.c, model.h: no temporaries */

  /* The driver: names and sizes, then each point's status and outputs. */
  size_t cap = 64 * 1024 + npts * 200;
  char *src = malloc(cap);
  assert_non_null(src);
  size_t len = (size_t)snprintf(src, cap,
      "#include <math.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
      "#include \"model.h\"\n"
      "static const double pts[%zu][3] = {\n", npts);
  for (size_t p = 0; p < npts; p++) {
    char a[48], b[48], c[48];
    c_literal(a, sizeof a, pts[3 * p]);
    c_literal(b, sizeof b, pts[3 * p + 1]);
    c_literal(c, sizeof c, pts[3 * p + 2]);
    len += (size_t)snprintf(src + len, cap - len, "  {%s, %s, %s},\n", a, b, c);
  }
  len += (size_t)snprintf(src + len, cap - len,
      "};\n"
      "int main(void) {\n"
      "  size_t i, j, p;\n"
      "  double *work = malloc(sizeof(double) * (model_work_size() + 1));\n"
      "  double *out[2];\n"
      "  out[0] = malloc(sizeof(double) * model_out_size(0));\n"
      "  out[1] = malloc(sizeof(double) * model_out_size(1));\n"
      "  printf(\"in %%u:\", (unsigned)model_n_in());\n"
      "  for (i = 0; i < model_n_in(); i++)\n"
      "    printf(\" %%s[%%u]\", model_in_name(i), (unsigned)model_in_size(i));\n"
      "  printf(\" out %%u:\", (unsigned)model_n_out());\n"
      "  for (i = 0; i < model_n_out(); i++)\n"
      "    printf(\" %%s[%%u]\", model_out_name(i), (unsigned)model_out_size(i));\n"
      "  printf(\" guards %%u %%d %%d\\n\", (unsigned)model_n_guards(),\n"
      "         model_in_name(3) == NULL, (int)model_out_size(2));\n"
      "  for (p = 0; p < %zu; p++) {\n"
      "    const double *in[3];\n"
      "    in[0] = &pts[p][0]; in[1] = &pts[p][1]; in[2] = &pts[p][2];\n"
      "    printf(\"%%d\\n\", model(in, out, work));\n"
      "    for (i = 0; i < 2; i++)\n"
      "      for (j = 0; j < model_out_size(i); j++) printf(\"%%a\\n\", out[i][j]);\n"
      "  }\n"
      "  free(work); free(out[0]); free(out[1]);\n"
      "  return 0;\n"
      "}\n", npts);
  assert_true(len < cap);
  write_text(driver, src);
  free(src);

  size_t to = total_out(f);
  double *want = malloc(sizeof(double) * npts * to);
  int *status = malloc(sizeof(int) * npts);
  eval_points(fx->ctx, f, npts, pts, want, status);

  /* Compiled with the strictest warnings, without the library, by cc and
   * by clang when there is one. */
  char *compilers[] = {"cc", "clang"};
  for (size_t ci = 0; ci < sizeof compilers / sizeof *compilers; ci++) {
    char *version[] = {compilers[ci], "--version", NULL};
    if (ci > 0 && run_program(version, "/dev/null") != 0) continue;
    char *argv[] = {compilers[ci], "-std=c99", "-O2", "-Wall", "-Wextra", "-Wpedantic",
                    "-Werror", "-o", exe, driver, model_c, "-lm", NULL};
    int rc = run_program(argv, outp);
    if (rc != 0) {
      char msg[2048] = "";
      FILE *fp = fopen(outp, "r");
      if (fp) {
        msg[fread(msg, 1, sizeof msg - 1, fp)] = '\0';
        fclose(fp);
      }
      fail_msg("%s: compiling the generated code failed (%d):\n%s", compilers[ci], rc, msg);
    }
    char *run[] = {exe, NULL};
    assert_int_equal(run_program(run, outp), 0);

    /* Its results are the interpreter's. */
    FILE *fp = fopen(outp, "r");
    assert_non_null(fp);
    char line[512], expect[512];
    assert_non_null(fgets(line, sizeof line, fp));
    snprintf(expect, sizeof expect, "in 3: a[1] b[1] c[1] out 2: y[%zu] z[2] guards 0 1 0\n",
             ct_fun_out_size(f, 0));
    assert_string_equal(line, expect);
    for (size_t p = 0; p < npts; p++) {
      assert_non_null(fgets(line, sizeof line, fp));
      assert_int_equal(atoi(line), 0);
      for (size_t k = 0; k < to; k++) {
        assert_non_null(fgets(line, sizeof line, fp));
        double v = strtod(line, NULL);
        if (!same_value(v, want[p * to + k]))
          fail_msg("%s: standalone code, point %zu, output %zu: %a, interpreter %a",
                   compilers[ci], p, k, v, want[p * to + k]);
      }
    }
    assert_null(fgets(line, sizeof line, fp));
    fclose(fp);
  }
  free(want);
  free(status);
  free(pts);
  ct_fun_free(f);
}

static void test_codegen_errors(void **state) {
  fixture *fx = *state;
  ct_fun *f = build_all_ops(fx->ctx);
  char path[256];
  snprintf(path, sizeof path, "%s/x.c", fx->dir);
  assert_int_equal(ct_fun_codegen(fx->ctx, f, "not an identifier", path, NULL), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(fx->ctx), "not a C identifier"));
  assert_int_equal(ct_fun_codegen(fx->ctx, f, "9lives", path, NULL), CT_ERR_ARG);
  assert_int_equal(ct_fun_codegen(fx->ctx, f, "m", NULL, NULL), CT_ERR_ARG);
  assert_int_equal(ct_fun_codegen(fx->ctx, NULL, "m", path, NULL), CT_ERR_ARG);
  snprintf(path, sizeof path, "%s/no/such/folder/x.c", fx->dir);
  assert_int_equal(ct_fun_codegen(fx->ctx, f, "m", path, NULL), CT_ERR_IO);
  assert_non_null(strstr(ct_errmsg(fx->ctx), "no/such/folder"));
  assert_int_equal(ct_fun_jit(fx->ctx, NULL, NULL), CT_ERR_ARG);
  assert_int_equal(ct_fun_backend(NULL), CT_BACKEND_INTERPRETER);
  /* Nothing half-written is left behind. */
  assert_int_equal(count_files(fx->dir, ""), 0);
  ct_fun_free(f);
}

/* Names are escaped in the tables and an empty function still compiles. */
static void test_codegen_odd_names_and_empty(void **state) {
  fixture *fx = *state;
  ct_graph *g = ct_graph_new(fx->ctx);
  ct_var x[2];
  assert_int_equal(ct_graph_input(g, "x \"q\"?\?=\\*/", 2, NULL, x), CT_OK);
  ct_var y = ct_hypot(x[0], x[1]);
  assert_int_equal(ct_graph_output(g, "\xc3\xa9t\xc3\xa9\n", 1, &y), CT_OK);
  ct_fun *f = finalize(fx->ctx, g);
  double pts[] = {3, 4, -0.0, 0.0, NAN, INFINITY};
  check_jit_matches(fx, f, 3, pts, NULL);
  ct_fun_free(f);

  g = ct_graph_new(fx->ctx);
  f = finalize(fx->ctx, g);
  assert_int_equal(ct_fun_jit(fx->ctx, f, NULL), CT_OK);
  assert_int_equal(ct_fun_backend(f), CT_BACKEND_JIT);
  double work[1];
  assert_int_equal(ct_fun_eval(fx->ctx, f, NULL, NULL, work), CT_OK);
  ct_fun_free(f);
}

/* ---- Fault injection ---------------------------------------------------------------- */

/* Builds, generates and compiles a small function in `ctx`, the cache in
 * the folder `ud`; releases everything. */
static int jit_under_faults(ct_context *ctx, void *ud) {
  const fixture *fx = ud;
  int rc = ct_context_set_cache_dir(ctx, fx->cache);
  if (rc < 0) return rc;
  ct_context_set_log_level(ctx, CT_LOG_QUIET);
  ct_graph *g = ct_graph_new(ctx);
  if (!g) return CT_ERR_NOMEM;
  ct_var x[3];
  ct_graph_input(g, "x", 3, NULL, x);
  ct_var y[2] = {ct_mul(ct_sin(x[0]), ct_powi(x[1], -1)), ct_max(x[2], ct_hypot(x[0], x[1]))};
  ct_graph_output(g, "y", 2, y);
  ct_fun *f = NULL, *jf = NULL;
  rc = ct_graph_finalize(g, &f);
  ct_graph_free(g);
  if (rc < 0) return rc;
  char path[256];
  snprintf(path, sizeof path, "%s/fault.c", fx->dir);
  rc = ct_fun_codegen(ctx, f, "fault", path, NULL);
  if (rc >= 0) rc = ct_fun_vjp(ctx, f, 1, NULL, &jf);
  ct_jit_options opts = {NULL, NULL, 3, 0};
  if (rc >= 0) rc = ct_fun_jit(ctx, jf, &opts);
  if (rc >= 0 && ct_fun_backend(jf) != CT_BACKEND_JIT) rc = CT_ERR_INTERNAL;
  if (rc >= 0) {
    double work[256], xv[3] = {0.3, 2.0, -1.0}, bar[2] = {1.0, -0.5}, yv[2], gx[3];
    const double *in[2] = {xv, bar};
    double *out[2] = {yv, gx};
    rc = ct_fun_eval(ctx, jf, in, out, work);
  }
  ct_fun_free(f);
  ct_fun_free(jf);
  return rc;
}

static void test_fault_injection(void **state) {
  fixture *fx = *state;
  long n = ct_test_fault_sweep(jit_under_faults, fx);
  assert_true(n > 10);
  assert_int_equal(count_files(fx->cache, ".so"), 1);
  assert_int_equal(count_files(fx->cache, ""), 1);
}

/* ---- Registration ------------------------------------------------------------------- */

/* 1 if `cc` runs here (the JIT tests need a C compiler). */
static int have_compiler(void) {
  char *argv[] = {"cc", "--version", NULL};
  return run_program(argv, "/dev/null") == 0;
}

int main(void) {
  const char *seed = getenv("CT_TEST_SEED");
  if (seed && *seed) rng_state = strtoull(seed, NULL, 0) | 1;
  if (!have_compiler()) {
    printf("no C compiler ('cc') here: skipping the JIT tests\n");
    return 77;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_all_ops_match_interpreter, setup, teardown),
      cmocka_unit_test_setup_teardown(test_all_ops_tiny_chunks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pow_not_rewritten, setup, teardown),
      cmocka_unit_test_setup_teardown(test_jvp_vjp_match_interpreter, setup, teardown),
      cmocka_unit_test_setup_teardown(test_guards_retrace, setup, teardown),
      cmocka_unit_test_setup_teardown(test_big_function_in_chunks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cache_hit_skips_compiler, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cache_corrupt_object_rebuilt, setup, teardown),
      cmocka_unit_test_setup_teardown(test_concurrent_compiles, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fallback_without_compiler, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fallback_bad_flag, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fallback_bad_cache_folder, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cc_from_environment, setup, teardown),
      cmocka_unit_test_setup_teardown(test_codegen_standalone, setup, teardown),
      cmocka_unit_test_setup_teardown(test_codegen_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_codegen_odd_names_and_empty, setup, teardown),
      cmocka_unit_test_setup_teardown(test_size_limit_stays_interpreted, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fault_injection, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
