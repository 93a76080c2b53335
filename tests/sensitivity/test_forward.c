/* Forward sensitivities through CVODES FSA with the sensitivity right-hand
 * side from AD JVPs: SUNDIALS' cvsRoberts_FSA_dns reproduced (simultaneous
 * and staggered1 correctors), sensitivities against central differences of
 * ct_ode_solve solutions (Lotka–Volterra, initial values depending on p)
 * and against an exact solution, every corrector and Adams, normalised
 * sensitivities, parameter subsets, roots, failures with partial results,
 * bad arguments, and fault injection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotangent/sensitivity.h"
#include "ct_test.h"
#include "ct_models.h"

/* ---- Models ------------------------------------------------------------------ */

/* ---- SUNDIALS' cvsRoberts_FSA_dns ------------------------------------------------ */

/* The same program (cvsRoberts_FSA_dns.c, SUNDIALS 6.4.1, built here) with
 * one change: its fS sums the terms of J s + df/dp_iS in the order of the
 * AD forward sweep of the traced f, instead of its own:
 *
 *   realtype dp1 = iS == 0, dp2 = iS == 1, dp3 = iS == 2;
 *   realtype n1 = -p1, tn1 = -1.0 * dp1;
 *   realtype tn2 = y1 * tn1 + n1 * s1;
 *   realtype n3 = p2 * y2, tn3 = y2 * dp2 + p2 * s2;
 *   realtype tn4 = y3 * tn3 + n3 * s3;
 *   realtype tf1 = tn2 + tn4;
 *   realtype n5 = p3 * y2, tn5 = y2 * dp3 + p3 * s2;
 *   realtype tf3 = y2 * tn5 + n5 * s2;
 *   ySdot = (tf1, -tf1 - tf3, tf3);
 *
 * Mathematically the same, rounded differently in the last bit. The
 * unchanged program built here prints every step count of the .out files,
 * the changed one this output (whitespace squeezed). */
static const char *const ad_order_sim[] = {
    "4.000e-01 3 4.881e-02 115",
    "Solution 9.8517e-01 3.3864e-05 1.4794e-02",
    "Sensitivity 1 -3.5595e-01 3.9025e-04 3.5556e-01",
    "Sensitivity 2 9.5431e-08 -2.1309e-10 -9.5218e-08",
    "Sensitivity 3 -1.5833e-11 -5.2900e-13 1.6362e-11",
    "4.000e+00 5 2.363e-01 138",
    "Solution 9.0552e-01 2.2405e-05 9.4459e-02",
    "Sensitivity 1 -1.8761e+00 1.7922e-04 1.8759e+00",
    "Sensitivity 2 2.9614e-06 -5.8305e-10 -2.9608e-06",
    "Sensitivity 3 -4.9334e-10 -2.7626e-13 4.9362e-10",
    "4.000e+01 3 1.485e+00 219",
    "Solution 7.1583e-01 9.1856e-06 2.8416e-01",
    "Sensitivity 1 -4.2475e+00 4.5913e-05 4.2475e+00",
    "Sensitivity 2 1.3731e-05 -2.3573e-10 -1.3730e-05",
    "Sensitivity 3 -2.2883e-09 -1.1380e-13 2.2884e-09",
    "4.000e+02 3 8.882e+00 331",
    "Solution 4.5052e-01 3.2229e-06 5.4947e-01",
    "Sensitivity 1 -5.9584e+00 3.5431e-06 5.9584e+00",
    "Sensitivity 2 2.2738e-05 -2.2605e-11 -2.2738e-05",
    "Sensitivity 3 -3.7896e-09 -4.9948e-14 3.7897e-09",
    "4.000e+03 3 7.881e+01 478",
    "Solution 1.8320e-01 8.9423e-07 8.1680e-01",
    "Sensitivity 1 -4.7501e+00 -5.9938e-06 4.7501e+00",
    "Sensitivity 2 1.8809e-05 2.3124e-11 -1.8809e-05",
    "Sensitivity 3 -3.1348e-09 -1.8759e-14 3.1348e-09",
    "4.000e+04 3 1.462e+03 559",
    "Solution 3.8982e-02 1.6217e-07 9.6102e-01",
    "Sensitivity 1 -1.5750e+00 -2.7623e-06 1.5750e+00",
    "Sensitivity 2 6.2878e-06 1.1005e-11 -6.2878e-06",
    "Sensitivity 3 -1.0479e-09 -4.5365e-15 1.0479e-09",
    "4.000e+05 3 1.486e+04 619",
    "Solution 4.9387e-03 1.9852e-08 9.9506e-01",
    "Sensitivity 1 -2.3639e-01 -4.5861e-07 2.3639e-01",
    "Sensitivity 2 9.4525e-07 1.8333e-12 -9.4525e-07",
    "Sensitivity 3 -1.5751e-10 -6.3628e-16 1.5751e-10",
    "4.000e+06 4 2.264e+05 669",
    "Solution 5.1684e-04 2.0684e-09 9.9948e-01",
    "Sensitivity 1 -2.5667e-02 -5.1063e-08 2.5667e-02",
    "Sensitivity 2 1.0266e-07 2.0424e-13 -1.0266e-07",
    "Sensitivity 3 -1.7111e-11 -6.8513e-17 1.7111e-11",
    "4.000e+07 3 1.683e+06 745",
    "Solution 5.2039e-05 2.0817e-10 9.9995e-01",
    "Sensitivity 1 -2.5990e-03 -5.1935e-09 2.5990e-03",
    "Sensitivity 2 1.0396e-08 2.0774e-14 -1.0396e-08",
    "Sensitivity 3 -1.7330e-12 -6.9329e-18 1.7330e-12",
    "4.000e+08 5 5.629e+06 798",
    "Solution 5.2075e-06 2.0830e-11 9.9999e-01",
    "Sensitivity 1 -2.6053e-04 -5.2139e-10 2.6053e-04",
    "Sensitivity 2 1.0421e-09 2.0856e-15 -1.0421e-09",
    "Sensitivity 3 -1.7356e-13 -6.9426e-19 1.7357e-13",
    "4.000e+09 3 4.400e+08 842",
    "Solution 5.0735e-07 2.0294e-12 1.0000e+00",
    "Sensitivity 1 -2.6074e-05 -5.4337e-11 2.6074e-05",
    "Sensitivity 2 1.0430e-10 2.1735e-16 -1.0430e-10",
    "Sensitivity 3 -1.6912e-14 -6.7646e-20 1.6912e-14",
    "4.000e+10 3 4.919e+09 867",
    "Solution 5.0208e-08 2.0083e-13 1.0000e+00",
    "Sensitivity 1 -2.6215e-06 -5.6905e-12 2.6215e-06",
    "Sensitivity 2 1.0486e-11 2.2762e-17 -1.0486e-11",
    "Sensitivity 3 -1.6736e-15 -6.6944e-21 1.6736e-15",
    "Steps = 867",
    "Error test fails = 36",
    "Last step size = 4918735510.875582",
    "RHS fn evals = 1238",
    "NLS iters = 1235",
    "NLS fails = 5",
    "LS setups = 145",
    "Jac fn evals = 20",
    "Sens fn evals = 3714",
    "Sens error test fails = 0",
    "Sens LS setups = 0",
    NULL};
static const char *const ad_order_stg1[] = {
    "4.000e-01 3 5.346e-02 105",
    "Solution 9.8517e-01 3.3864e-05 1.4794e-02",
    "Sensitivity 1 -3.5595e-01 3.9025e-04 3.5556e-01",
    "Sensitivity 2 9.5428e-08 -2.1310e-10 -9.5215e-08",
    "Sensitivity 3 -1.5833e-11 -5.2901e-13 1.6362e-11",
    "4.000e+00 4 2.676e-01 140",
    "Solution 9.0552e-01 2.2405e-05 9.4457e-02",
    "Sensitivity 1 -1.8760e+00 1.7923e-04 1.8758e+00",
    "Sensitivity 2 2.9615e-06 -5.8302e-10 -2.9610e-06",
    "Sensitivity 3 -4.9337e-10 -2.7627e-13 4.9364e-10",
    "4.000e+01 2 1.483e+00 256",
    "Solution 7.1582e-01 9.1851e-06 2.8417e-01",
    "Sensitivity 1 -4.2477e+00 4.5907e-05 4.2476e+00",
    "Sensitivity 2 1.3732e-05 -2.3569e-10 -1.3731e-05",
    "Sensitivity 3 -2.2885e-09 -1.1380e-13 2.2886e-09",
    "4.000e+02 2 8.856e+00 386",
    "Solution 4.5047e-01 3.2223e-06 5.4953e-01",
    "Sensitivity 1 -5.9588e+00 3.5358e-06 5.9588e+00",
    "Sensitivity 2 2.2740e-05 -2.2567e-11 -2.2740e-05",
    "Sensitivity 3 -3.7900e-09 -4.9944e-14 3.7901e-09",
    "4.000e+03 3 1.673e+02 533",
    "Solution 1.8317e-01 8.9408e-07 8.1683e-01",
    "Sensitivity 1 -4.7500e+00 -5.9955e-06 4.7500e+00",
    "Sensitivity 2 1.8809e-05 2.3132e-11 -1.8809e-05",
    "Sensitivity 3 -3.1348e-09 -1.8757e-14 3.1348e-09",
    "4.000e+04 3 1.994e+03 629",
    "Solution 3.8992e-02 1.6221e-07 9.6101e-01",
    "Sensitivity 1 -1.5752e+00 -2.7620e-06 1.5752e+00",
    "Sensitivity 2 6.2882e-06 1.1002e-11 -6.2882e-06",
    "Sensitivity 3 -1.0480e-09 -4.5372e-15 1.0480e-09",
    "4.000e+05 4 1.219e+04 678",
    "Solution 4.9392e-03 1.9853e-08 9.9506e-01",
    "Sensitivity 1 -2.3634e-01 -4.5834e-07 2.3634e-01",
    "Sensitivity 2 9.4507e-07 1.8324e-12 -9.4507e-07",
    "Sensitivity 3 -1.5753e-10 -6.3636e-16 1.5753e-10",
    "4.000e+06 5 9.487e+04 735",
    "Solution 5.1683e-04 2.0684e-09 9.9948e-01",
    "Sensitivity 1 -2.5661e-02 -5.1039e-08 2.5661e-02",
    "Sensitivity 2 1.0262e-07 2.0408e-13 -1.0262e-07",
    "Sensitivity 3 -1.7111e-11 -6.8512e-17 1.7111e-11",
    "4.000e+07 4 1.995e+06 788",
    "Solution 5.2060e-05 2.0825e-10 9.9995e-01",
    "Sensitivity 1 -2.5995e-03 -5.1927e-09 2.5995e-03",
    "Sensitivity 2 1.0395e-08 2.0760e-14 -1.0395e-08",
    "Sensitivity 3 -1.7340e-12 -6.9367e-18 1.7340e-12",
    "4.000e+08 5 2.372e+07 835",
    "Solution 5.2135e-06 2.0854e-11 9.9999e-01",
    "Sensitivity 1 -2.6031e-04 -5.1992e-10 2.6031e-04",
    "Sensitivity 2 1.0412e-09 2.0793e-15 -1.0412e-09",
    "Sensitivity 3 -1.7376e-13 -6.9506e-19 1.7376e-13",
    "4.000e+09 3 4.792e+08 895",
    "Solution 5.1887e-07 2.0755e-12 1.0000e+00",
    "Sensitivity 1 -2.6036e-05 -5.2257e-11 2.6036e-05",
    "Sensitivity 2 1.0415e-10 2.0906e-16 -1.0415e-10",
    "Sensitivity 3 -1.7316e-14 -6.9265e-20 1.7316e-14",
    "4.000e+10 3 1.237e+09 930",
    "Solution 5.1573e-08 2.0629e-13 1.0000e+00",
    "Sensitivity 1 -2.6619e-06 -5.4902e-12 2.6619e-06",
    "Sensitivity 2 1.0763e-11 2.2422e-17 -1.0763e-11",
    "Sensitivity 3 -1.7339e-15 -6.9354e-21 1.7339e-15",
    "Steps = 930",
    "Error test fails = 0",
    "Last step size = 1236649886.791631",
    "RHS fn evals = 2104",
    "NLS iters = 1105",
    "NLS fails = 0",
    "LS setups = 182",
    "Jac fn evals = 17",
    "Sens fn evals = 3564",
    "Sens error test fails = 66",
    "Sens NLS iters = 3555",
    "Sens stgr1 NLS iters = 1251, 1199, 1105",
    "Sens LS setups = 0",
    NULL};

/* What cvsRoberts_FSA_dns prints, as printed: per output time the order,
 * step and step count, the solution and the three sensitivities; the final
 * statistics by name. */
typedef struct ref_out {
  int n_out, q[12], n_stats;
  long nst[12];
  char h[12][16], y[12][3][16], s[12][3][3][16];
  char stats[64][2][64];
} ref_out;

/* Copies src into dst[size], truncated. */
static void copy_text(char *dst, size_t size, const char *src) {
  size_t n = strlen(src);
  if (n >= size) n = size - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

/* Drops trailing blanks and newlines. */
static void trim(char *s) {
  size_t n = strlen(s);
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\n')) s[--n] = '\0';
}

/* Takes one printed line: an output header, a solution or sensitivity
 * row, or a "name = value" statistic; ignores the rest. */
static void ref_add_line(ref_out *r, const char *line) {
  double t;
  int q, is;
  long nst;
  char h[16], a[16], b[16], c[16], buf[256];
  int k = r->n_out - 1;
  if (sscanf(line, "%lf %d %15s %ld", &t, &q, h, &nst) == 4 && r->n_out < 12) {
    k = r->n_out++;
    r->q[k] = q, r->nst[k] = nst;
    strcpy(r->h[k], h);
  } else if (k >= 0 && sscanf(line, " Solution %15s %15s %15s", a, b, c) == 3) {
    strcpy(r->y[k][0], a), strcpy(r->y[k][1], b), strcpy(r->y[k][2], c);
  } else if (k >= 0 && sscanf(line, " Sensitivity %d %15s %15s %15s", &is, a, b, c) == 4 &&
             is >= 1 && is <= 3) {
    strcpy(r->s[k][is - 1][0], a), strcpy(r->s[k][is - 1][1], b);
    strcpy(r->s[k][is - 1][2], c);
  } else if (strstr(line, " = ") && r->n_stats < 64) {
    copy_text(buf, sizeof buf, line);
    char *eq = strstr(buf, " = ");
    *eq = '\0';
    trim(buf);
    trim(eq + 3);
    copy_text(r->stats[r->n_stats][0], 64, buf);
    copy_text(r->stats[r->n_stats][1], 64, eq + 3);
    r->n_stats++;
  }
}

/* Parses one of SUNDIALS' .out files. */
static void read_reference_file(const char *name, ref_out *r) {
  char path[512], line[256];
  snprintf(path, sizeof path, "%s/cvodes/serial/%s", CT_SUNDIALS_EXAMPLES, name);
  FILE *f = fopen(path, "r");
  if (!f) fail_msg("cannot open %s", path);
  memset(r, 0, sizeof *r);
  while (fgets(line, sizeof line, f)) ref_add_line(r, line);
  fclose(f);
  assert_int_equal(r->n_out, 12);
}

/* Parses NULL-terminated printed lines. */
static void read_reference_lines(const char *const *lines, ref_out *r) {
  memset(r, 0, sizeof *r);
  for (; *lines; lines++) ref_add_line(r, *lines);
  assert_int_equal(r->n_out, 12);
}

static const char *ref_stat(const ref_out *r, const char *name) {
  for (int i = 0; i < r->n_stats; i++)
    if (strcmp(r->stats[i][0], name) == 0) return r->stats[i][1];
  return NULL;
}

/* v printed with `format`, leading blanks dropped, into buf[16]. */
static void fmt(char *buf, const char *format, double v) {
  char tmp[32];
  snprintf(tmp, sizeof tmp, format, v);
  const char *s = tmp;
  while (*s == ' ') s++;
  copy_text(buf, 16, s);
}

/* Appends a statistic "name = printf(format, ...)". */
static void add_stat(ref_out *r, const char *name, const char *format, ...) {
  va_list ap;
  va_start(ap, format);
  copy_text(r->stats[r->n_stats][0], 64, name);
  vsnprintf(r->stats[r->n_stats][1], 64, format, ap);
  va_end(ap);
  r->n_stats++;
}

/* Our run of the example, printed the way it prints: the order, step and
 * step count at output k are those at the end of a run to tout[k] (the run
 * does not depend on later output times). */
static void run_example(ct_fsa_corrector corrector, ref_out *mine) {
  memset(mine, 0, sizeof *mine);
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *rhs = ct_robertson_rhs_p(ctx);
  ct_ode *ode = NULL;
  ct_fsa *fsa = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, NULL, &ode), CT_OK);
  assert_int_equal(ct_fsa_new(ctx, ode, NULL, 0, &fsa), CT_OK);
  assert_int_equal(ct_fsa_n_params(fsa), 3);
  double p[3] = {0.04, 1.0e4, 3.0e7}, y0[3] = {1, 0, 0}, atol[3] = {1e-8, 1e-14, 1e-6};
  double tout[13] = {0, 0.4};
  for (int k = 2; k < 13; k++) tout[k] = tout[k - 1] * 10;
  ct_fsa_options o = ct_fsa_default_options();
  o.ode.linsol = CT_LINSOL_DENSE;
  o.ode.rtol = 1e-4;
  o.ode.atol_v = atol;
  o.corrector = corrector;
  o.err_con = 1;
  o.pbar = p; /* as the example: pbar = p (also our default) */
  ct_fsa_result *res = NULL;
  for (int k = 1; k <= 12; k++) {
    assert_int_equal(ct_fsa_solve(ctx, fsa, p, y0, tout, (size_t)k + 1, &o, &res), CT_OK);
    assert_int_equal(res->ode.n_out, k + 1);
    mine->q[k - 1] = res->ode.stats.last_order;
    mine->nst[k - 1] = res->ode.stats.steps;
    fmt(mine->h[k - 1], "%8.3e", res->ode.stats.last_step);
    for (int i = 0; i < 3; i++) {
      fmt(mine->y[k - 1][i], "%12.4e", res->ode.y[k * 3 + i]);
      for (int j = 0; j < 3; j++)
        fmt(mine->s[k - 1][j][i], "%12.4e", res->s[(k * 3 + j) * 3 + i]);
    }
    if (k < 12) ct_fsa_result_free(ctx, res);
  }
  mine->n_out = 12;
  const ct_ode_stats *st = &res->ode.stats;
  const ct_fsa_stats *ss = &res->stats;
  add_stat(mine, "Steps", "%ld", st->steps);
  add_stat(mine, "Error test fails", "%ld", st->err_test_fails);
  add_stat(mine, "Last step size", "%.16g", st->last_step);
  add_stat(mine, "RHS fn evals", "%ld", st->rhs_evals);
  add_stat(mine, "NLS iters", "%ld", st->nonlin_iters);
  add_stat(mine, "NLS fails", "%ld", st->nonlin_conv_fails);
  add_stat(mine, "LS setups", "%ld", st->lin_setups);
  add_stat(mine, "Jac fn evals", "%ld", st->jac_evals);
  /* The example's fS computes one sensitivity per call, CVODES counting
   * each; ours computes all three in one call (counted once) except with
   * STAGGERED1, where CVODES asks for them one at a time. */
  add_stat(mine, "Sens fn evals", "%ld",
           ss->sens_rhs_evals * (corrector == CT_FSA_STAGGERED1 ? 1 : 3));
  add_stat(mine, "Sens error test fails", "%ld", ss->err_test_fails);
  add_stat(mine, "Sens LS setups", "%ld", ss->lin_setups);
  assert_int_equal(ss->rhs_evals_sens, 0); /* "Sens RHS fn evals": no quotients */
  if (corrector == CT_FSA_STAGGERED1) {
    add_stat(mine, "Sens NLS iters", "%ld", ss->nonlin_iters);
    add_stat(mine, "Sens stgr1 NLS iters", "%ld, %ld, %ld", ss->stgr_nonlin_iters[0],
             ss->stgr_nonlin_iters[1], ss->stgr_nonlin_iters[2]);
  } else {
    assert_null(ss->stgr_nonlin_iters);
  }
  ct_fsa_result_free(ctx, res);
  ct_fsa_free(fsa);
  ct_ode_free(ode);
  ct_fun_free(rhs);
  ct_context_free(ctx);
}

/* Calls f(what, k, row, col, mine, ref) for every printed number of output
 * k (row -1: the order/step/count line; 0: the solution; 1-3: the
 * sensitivities). */
typedef int (*token_cmp)(const char *what, int k, int row, int col, const char *mine,
                         const char *ref);

/* The number of tokens f finds different. */
static int for_each_token(const ref_out *a, const ref_out *b, token_cmp f) {
  int bad = 0;
  char x[16], y[16];
  for (int k = 0; k < 12; k++) {
    snprintf(x, sizeof x, "%ld", a->nst[k]), snprintf(y, sizeof y, "%ld", b->nst[k]);
    bad += f("NST", k, -1, 0, x, y);
    snprintf(x, sizeof x, "%d", a->q[k]), snprintf(y, sizeof y, "%d", b->q[k]);
    bad += f("Q", k, -1, 1, x, y);
    bad += f("H", k, -1, 2, a->h[k], b->h[k]);
    for (int i = 0; i < 3; i++) {
      bad += f("y", k, 0, i, a->y[k][i], b->y[k][i]);
      for (int j = 0; j < 3; j++) bad += f("s", k, j + 1, i, a->s[k][j][i], b->s[k][j][i]);
    }
  }
  return bad;
}

/* Equal as printed; else reports and counts 1. */
static int exact(const char *what, int k, int row, int col, const char *mine,
                 const char *ref) {
  if (strcmp(mine, ref) == 0) return 0;
  print_message("output %d %s (row %d, column %d): %s, the reference prints %s\n", k + 1,
                what, row, col, mine, ref);
  return 1;
}

/* After the simultaneous runs part ways: within 20 error weights of the
 * example's tolerances (rtol 1e-4, atol_i, and atol_i / pbar_j for the
 * sensitivities, CVODES' estimated ones). */
static int within_tolerance(const char *what, int k, int row, int col, const char *mine,
                            const char *ref) {
  static const double atol[3] = {1e-8, 1e-14, 1e-6}, pbar[4] = {1, 0.04, 1e4, 3e7};
  if (k < 4) return exact(what, k, row, col, mine, ref);
  if (row < 0) return 0; /* step counts, orders, steps: their own */
  double a = atof(mine), b = atof(ref);
  double w = 1e-4 * fabs(b) + atol[col] / pbar[row];
  if (fabs(a - b) <= 20 * w) return 0;
  print_message("output %d %s (row %d, column %d): %s, SUNDIALS prints %s (%.1f weights)\n",
                k + 1, what, row, col, mine, ref, fabs(a - b) / w);
  return 1;
}

/* Staggered1: exact but at t = 4e10, where the sensitivities are at the
 * limit of what the run resolves (the unchanged example built here prints
 * -5.4900e-12, 2.6618e-06 and 2.2421e-17 where the .out has -5.4901e-12,
 * 2.6619e-06 and 2.2422e-17): one unit of the last printed digit. */
static int exact_but_last(const char *what, int k, int row, int col, const char *mine,
                          const char *ref) {
  if (k < 11 || row < 0) return exact(what, k, row, col, mine, ref);
  double a = atof(mine), b = atof(ref);
  double unit = pow(10, floor(log10(fabs(b))) - 4);
  if (fabs(a - b) <= 1.0001 * unit) return 0;
  return exact(what, k, row, col, mine, ref);
}

/* Every statistic of ours against the reference's of the same name; the
 * number that differ. */
static int compare_stats(const ref_out *mine, const ref_out *ref, int skip_last_step) {
  int bad = 0;
  for (int i = 0; i < mine->n_stats; i++) {
    const char *name = mine->stats[i][0], *v = ref_stat(ref, name);
    if (skip_last_step && strcmp(name, "Last step size") == 0) continue;
    if (!v) fail_msg("statistic '%s' is not in the reference", name);
    if (strcmp(v, mine->stats[i][1])) {
      print_message("%s: %s, the reference prints %s\n", name, mine->stats[i][1], v);
      bad++;
    }
  }
  return bad;
}

/* cvsRoberts_FSA_dns -sensi sim t. */
static void test_roberts_simultaneous(void **state) {
  (void)state;
  ref_out mine, official, ad_order;
  run_example(CT_FSA_SIMULTANEOUS, &mine);
  read_reference_file("cvsRoberts_FSA_dns_-sensi_sim_t.out", &official);
  read_reference_lines(ad_order_sim, &ad_order);
  /* Every printed number and statistic of SUNDIALS with the AD's order. */
  assert_int_equal(for_each_token(&mine, &ad_order, exact), 0);
  assert_int_equal(compare_stats(&mine, &ad_order, 0), 0);
  /* SUNDIALS' own .out: every digit, order, step and step count up to
   * t = 400 (331 steps); there the error test decides differently on a
   * last-bit difference of the sensitivity right-hand side and the runs
   * part ways (478 steps at t = 4000 instead of 457), and agree to the
   * accuracy asked for. */
  assert_int_equal(for_each_token(&mine, &official, within_tolerance), 0);
  assert_string_equal(ref_stat(&mine, "Jac fn evals"), ref_stat(&official, "Jac fn evals"));
}

/* cvsRoberts_FSA_dns -sensi stg1 t. */
static void test_roberts_staggered1(void **state) {
  (void)state;
  ref_out mine, official, ad_order;
  run_example(CT_FSA_STAGGERED1, &mine);
  read_reference_file("cvsRoberts_FSA_dns_-sensi_stg1_t.out", &official);
  read_reference_lines(ad_order_stg1, &ad_order);
  assert_int_equal(for_each_token(&mine, &ad_order, exact), 0);
  assert_int_equal(compare_stats(&mine, &ad_order, 0), 0);
  /* SUNDIALS' own .out: every statistic (930 steps, 2104 right-hand side
   * and 3564 sensitivity evaluations, 66 sensitivity error-test failures,
   * 1251/1199/1105 iterations per sensitivity, ...) and every printed
   * number, to one unit of the last digit at t = 4e10. The last step size
   * differs from the 7th digit on, as it does for the unchanged example
   * built here. */
  assert_int_equal(for_each_token(&mine, &official, exact_but_last), 0);
  assert_int_equal(compare_stats(&mine, &official, 1), 0);
}

/* ---- Against central differences ---------------------------------------------- */

static ct_ode_options tight(void) {
  ct_ode_options o = ct_ode_default_options();
  o.rtol = 1e-12;
  o.atol = 1e-14;
  o.max_steps = 1000000;
  return o;
}

/* Central differences of ct_ode_solve solutions: fd[(k * np + j) * n + i]
 * for every parameter j, step h_j = 1e-4 |p_j| (1e-4 where p_j = 0). */
static double *central_differences(ct_context *ctx, const ct_ode *ode, const double *p,
                                   const double *y0, const double *tout, size_t nt) {
  size_t n = ct_ode_n_states(ode), np = ct_ode_n_params(ode);
  double *fd = calloc(nt * np * n, sizeof *fd), pp[16];
  ct_ode_options o = tight();
  for (size_t j = 0; j < np; j++) {
    double h = p[j] != 0 ? 1e-4 * fabs(p[j]) : 1e-4;
    ct_ode_result *r[2];
    for (int side = 0; side < 2; side++) {
      memcpy(pp, p, np * sizeof *p);
      pp[j] = side ? p[j] - h : p[j] + h;
      if (ct_ode_solve(ctx, ode, pp, y0, tout, nt, &o, &r[side]) != CT_OK)
        fail_msg("solve: %s", ct_errmsg(ctx));
    }
    for (size_t k = 0; k < nt; k++)
      for (size_t i = 0; i < n; i++)
        fd[(k * np + j) * n + i] = (r[0]->y[k * n + i] - r[1]->y[k * n + i]) / (pp[j] + h - pp[j] + h);
    ct_ode_result_free(ctx, r[0]);
    ct_ode_result_free(ctx, r[1]);
  }
  return fd;
}

/* The result's sensitivities against fd (all parameters): 1e-5 relative,
 * with a floor of 1e-8 for components that vanish. */
static void expect_near_fd(const ct_fsa_result *res, const double *fd, size_t np,
                           const char *what) {
  size_t n = res->ode.n;
  for (size_t k = 0; k < res->ode.n_out; k++)
    for (size_t j = 0; j < res->n_params; j++)
      for (size_t i = 0; i < n; i++) {
        double s = res->s[(k * res->n_params + j) * n + i];
        double d = fd[(k * np + res->params[j]) * n + i];
        if (!(fabs(s - d) <= 1e-5 * fabs(d) + 1e-8))
          fail_msg("%s: t = %g, dy%zu/dp%zu = %.10g, central differences %.10g", what,
                   res->ode.t[k], i, res->params[j], s, d);
      }
}

/* Every corrector, with and without error control, every linear solver
 * and Adams, against the same central differences. */
static void test_lotka_volterra_against_differences(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *rhs = ct_lotka_volterra(ctx);
  ct_ode *ode = NULL;
  ct_fsa *fsa = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, NULL, &ode), CT_OK);
  assert_int_equal(ct_fsa_new(ctx, ode, NULL, 0, &fsa), CT_OK);
  double p[4] = {1.5, 1.0, 3.0, 1.0}, y0[2] = {1, 1}, tout[] = {0, 1, 2, 5, 10};
  double *fd = central_differences(ctx, ode, p, y0, tout, 5);
  struct {
    ct_fsa_corrector corrector;
    int err_con;
    ct_ode_method method;
    ct_ode_linsol linsol;
    const char *what;
  } runs[] = {
      {CT_FSA_SIMULTANEOUS, 1, CT_ODE_BDF, CT_LINSOL_DENSE, "simultaneous"},
      {CT_FSA_SIMULTANEOUS, 0, CT_ODE_BDF, CT_LINSOL_GMRES, "simultaneous, gmres, no error control"},
      {CT_FSA_STAGGERED, 1, CT_ODE_BDF, CT_LINSOL_DENSE, "staggered"},
      {CT_FSA_STAGGERED, 0, CT_ODE_BDF, CT_LINSOL_KLU, "staggered, klu, no error control"},
      {CT_FSA_STAGGERED1, 1, CT_ODE_BDF, CT_LINSOL_BAND, "staggered1, band"},
      {CT_FSA_SIMULTANEOUS, 1, CT_ODE_ADAMS, CT_LINSOL_AUTO, "adams, simultaneous"},
      {CT_FSA_STAGGERED, 1, CT_ODE_ADAMS, CT_LINSOL_AUTO, "adams, staggered"},
      {CT_FSA_STAGGERED1, 1, CT_ODE_ADAMS, CT_LINSOL_AUTO, "adams, staggered1"},
  };
  for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
    ct_fsa_options o = ct_fsa_default_options();
    o.ode = tight();
    o.ode.method = runs[r].method;
    o.ode.linsol = runs[r].linsol;
    o.corrector = runs[r].corrector;
    o.err_con = runs[r].err_con;
    ct_fsa_result *res = NULL;
    if (ct_fsa_solve(ctx, fsa, p, y0, tout, 5, &o, &res) != CT_OK)
      fail_msg("%s: %s", runs[r].what, ct_errmsg(ctx));
    assert_int_equal(res->ode.n_out, 5);
    assert_int_equal(res->n_params, 4);
    expect_near_fd(res, fd, 4, runs[r].what);
    assert_true(res->stats.sens_rhs_evals > 0);
    if (runs[r].corrector != CT_FSA_SIMULTANEOUS) assert_true(res->stats.nonlin_iters > 0);
    if (runs[r].corrector == CT_FSA_STAGGERED1)
      for (int j = 0; j < 4; j++) assert_true(res->stats.stgr_nonlin_iters[j] > 0);
    ct_fsa_result_free(ctx, res);
  }
  free(fd);
  ct_fsa_free(fsa);
  ct_ode_free(ode);
  ct_fun_free(rhs);
  ct_context_free(ctx);
}

/* y1' = -p0 y1 y2 + sin t, y2' = p0 y1 - p1 y2; y(0) = (p2^2, p1 exp(p3)). */
static void initial_value_model(ct_context *ctx, ct_fun **rhs, ct_fun **init) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var t, y[2], p[4];
  ct_graph_input(g, "t", 1, NULL, &t);
  ct_graph_input(g, "y", 2, NULL, y);
  ct_graph_input(g, "p", 4, NULL, p);
  ct_var f[2] = {ct_add(ct_neg(ct_mul(ct_mul(p[0], y[0]), y[1])), ct_sin(t)),
                 ct_sub(ct_mul(p[0], y[0]), ct_mul(p[1], y[1]))};
  ct_graph_output(g, "f", 2, f);
  *rhs = ct_test_finish(g);
  g = ct_graph_new(ctx);
  ct_graph_input(g, "p", 4, NULL, p);
  ct_var v[2] = {ct_sqr(p[2]), ct_mul(p[1], ct_exp(p[3]))};
  ct_graph_output(g, "y0", 2, v);
  *init = ct_test_finish(g);
}

/* Initial sensitivities from the JVP of y0(p), exactly, and the run
 * against central differences. */
static void test_initial_values_against_differences(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *rhs, *init;
  initial_value_model(ctx, &rhs, &init);
  ct_ode *ode = NULL;
  ct_fsa *fsa = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, init, NULL, &ode), CT_OK);
  assert_int_equal(ct_fsa_new(ctx, ode, NULL, 0, &fsa), CT_OK);
  double p[4] = {0.7, 0.3, 1.2, -0.5}, tout[] = {0, 0.5, 1, 3, 6};
  double *fd = central_differences(ctx, ode, p, NULL, tout, 5);
  ct_fsa_options o = ct_fsa_default_options();
  o.ode = tight();
  ct_fsa_result *res = NULL;
  assert_int_equal(ct_fsa_solve(ctx, fsa, p, NULL, tout, 5, &o, &res), CT_OK);
  /* dy0/dp exactly: (0, 0, 2 p2, 0) and (0, exp(p3), 0, p1 exp(p3)). */
  const double want0[4][2] = {{0, 0}, {0, exp(p[3])}, {2 * p[2], 0}, {0, p[1] * exp(p[3])}};
  for (int j = 0; j < 4; j++)
    for (int i = 0; i < 2; i++) assert_true(res->s[j * 2 + i] == want0[j][i]);
  expect_near_fd(res, fd, 4, "initial values from p");
  ct_fsa_result_free(ctx, res);
  free(fd);
  ct_fsa_free(fsa);
  ct_ode_free(ode);
  ct_fun_free(rhs);
  ct_fun_free(init);
  ct_context_free(ctx);
}

/* y' = -p0 y, y(0) = p1 - c: y = (p1 - c) e^{-p0 t}. */
static ct_ode *decay_model(ct_context *ctx, double c) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var t, y, p[2];
  ct_graph_input(g, "t", 1, NULL, &t);
  ct_graph_input(g, "y", 1, NULL, &y);
  ct_graph_input(g, "p", 2, NULL, p);
  ct_var f = ct_mul(ct_neg(p[0]), y);
  ct_graph_output(g, "f", 1, &f);
  ct_fun *rhs = ct_test_finish(g);
  g = ct_graph_new(ctx);
  ct_graph_input(g, "p", 2, NULL, p);
  ct_var v = ct_addc(p[1], -c);
  ct_graph_output(g, "y0", 1, &v);
  ct_fun *init = ct_test_finish(g);
  ct_ode *ode = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, init, NULL, &ode), CT_OK);
  ct_fun_free(rhs);
  ct_fun_free(init);
  return ode;
}

/* |a - b| <= rtol max(|a|, |b|). */
static int rel_close(double a, double b, double rtol) {
  return fabs(a - b) <= rtol * fmax(fabs(a), fabs(b)) + 1e-300;
}

/* The exact solution, and normalised sensitivities: -p0 t and 1. */
static void test_exact_and_normalised(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_ode *ode = decay_model(ctx, 0);
  ct_fsa *fsa = NULL;
  assert_int_equal(ct_fsa_new(ctx, ode, NULL, 0, &fsa), CT_OK);
  double p[2] = {0.7, 2.5}, tout[] = {0, 0.5, 1, 3};
  ct_fsa_options o = ct_fsa_default_options();
  o.ode = tight();
  ct_fsa_result *res = NULL;
  assert_int_equal(ct_fsa_solve(ctx, fsa, p, NULL, tout, 4, &o, &res), CT_OK);
  for (int k = 0; k < 4; k++) {
    double t = tout[k], e = exp(-p[0] * t);
    assert_true(rel_close(res->ode.y[k], p[1] * e, 1e-10));
    if (!rel_close(res->s[k * 2 + 0], -t * p[1] * e, 1e-9) ||
        !rel_close(res->s[k * 2 + 1], e, 1e-9))
      fail_msg("t = %g: s = %.12g %.12g", t, res->s[k * 2], res->s[k * 2 + 1]);
    assert_true(fabs(res->s_norm[k * 2 + 0] + p[0] * t) <= 1e-9);
    assert_true(rel_close(res->s_norm[k * 2 + 1], 1, 1e-9));
  }
  ct_fsa_result_free(ctx, res);
  ct_fsa_free(fsa);
  ct_ode_free(ode);

  /* y = 0 throughout (p1 = c) while dy/dp1 = e^{-p0 t}: normalised 0. */
  ode = decay_model(ctx, 2.5);
  assert_int_equal(ct_fsa_new(ctx, ode, NULL, 0, &fsa), CT_OK);
  assert_int_equal(ct_fsa_solve(ctx, fsa, p, NULL, tout, 4, &o, &res), CT_OK);
  for (int k = 0; k < 4; k++) {
    assert_true(res->ode.y[k] == 0);
    assert_true(rel_close(res->s[k * 2 + 1], exp(-p[0] * tout[k]), 1e-9));
    assert_true(res->s_norm[k * 2 + 0] == 0 && res->s_norm[k * 2 + 1] == 0);
  }
  ct_fsa_result_free(ctx, res);
  ct_fsa_free(fsa);
  ct_ode_free(ode);
  ct_context_free(ctx);
}

/* Normalised sensitivities of a stiff run against the raw ones. */
static void test_normalised_consistent(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *rhs = ct_robertson_rhs_p(ctx);
  ct_ode *ode = NULL;
  ct_fsa *fsa = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, NULL, &ode), CT_OK);
  assert_int_equal(ct_fsa_new(ctx, ode, NULL, 0, &fsa), CT_OK);
  double p[3] = {0.04, 1.0e4, 3.0e7}, y0[3] = {1, 0, 0}, tout[] = {0, 0.4, 4, 40, 400};
  ct_fsa_result *res = NULL;
  assert_int_equal(ct_fsa_solve(ctx, fsa, p, y0, tout, 5, NULL, &res), CT_OK);
  size_t zeros = 0;
  for (size_t k = 0; k < res->ode.n_out; k++)
    for (size_t j = 0; j < 3; j++)
      for (size_t i = 0; i < 3; i++) {
        size_t q = (k * 3 + j) * 3 + i;
        double y = res->ode.y[k * 3 + i], sn = res->s_norm[q];
        assert_false(isnan(sn));
        if (y == 0) {
          assert_true(sn == 0);
          zeros++;
        } else if (!rel_close(sn, p[j] / y * res->s[q], 1e-14)) {
          fail_msg("k %zu, j %zu, i %zu: %.17g vs %.17g", k, j, i, sn, p[j] / y * res->s[q]);
        }
      }
  assert_int_equal(zeros, 6); /* y2 = y3 = 0 at t = 0 */
  ct_fsa_result_free(ctx, res);
  ct_fsa_free(fsa);
  ct_ode_free(ode);
  ct_fun_free(rhs);
  ct_context_free(ctx);
}

/* |a - b| <= rtol |b| + atol for the selected columns of `all`. */
static void expect_columns(const ct_fsa_result *sub, const ct_fsa_result *all,
                           double rtol, double atol, const char *what) {
  size_t n = all->ode.n;
  assert_int_equal(sub->ode.n_out, all->ode.n_out);
  for (size_t k = 0; k < all->ode.n_out; k++)
    for (size_t j = 0; j < sub->n_params; j++)
      for (size_t i = 0; i < n; i++) {
        double a = sub->s[(k * sub->n_params + j) * n + i];
        double b = all->s[(k * all->n_params + sub->params[j]) * n + i];
        if (!(fabs(a - b) <= rtol * fabs(b) + atol))
          fail_msg("%s: t = %g, dy%zu/dp%zu = %.12g, with all parameters %.12g", what,
                   all->ode.t[k], i, sub->params[j], a, b);
      }
}

/* A subset of the parameters, in any order, gives the columns of the full
 * run (to the accuracy asked: CVODES couples the sensitivities through
 * norms and convergence rates, so the numbers are not bit-identical). */
static void test_parameter_subset(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *rhs = ct_lotka_volterra(ctx);
  ct_ode *ode = NULL;
  ct_fsa *all = NULL, *sub = NULL, *one = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, NULL, &ode), CT_OK);
  const size_t pick[2] = {3, 1}, single[1] = {2};
  assert_int_equal(ct_fsa_new(ctx, ode, NULL, 0, &all), CT_OK);
  assert_int_equal(ct_fsa_new(ctx, ode, pick, 2, &sub), CT_OK);
  assert_int_equal(ct_fsa_new(ctx, ode, single, 1, &one), CT_OK);
  assert_int_equal(ct_fsa_n_params(all), 4);
  assert_int_equal(ct_fsa_n_params(sub), 2);
  assert_int_equal(ct_fsa_param(sub, 0), 3);
  assert_int_equal(ct_fsa_param(sub, 1), 1);
  assert_true(ct_fsa_param(sub, 2) == SIZE_MAX);
  double p[4] = {1.5, 1.0, 3.0, 1.0}, y0[2] = {1, 1}, tout[] = {0, 1, 2, 5};
  ct_fsa_options o = ct_fsa_default_options();
  o.ode = tight();
  const ct_fsa_corrector correctors[3] = {CT_FSA_SIMULTANEOUS, CT_FSA_STAGGERED,
                                          CT_FSA_STAGGERED1};
  for (int c = 0; c < 3; c++) {
    o.corrector = correctors[c];
    ct_fsa_result *ra = NULL, *rs = NULL, *r1 = NULL;
    assert_int_equal(ct_fsa_solve(ctx, all, p, y0, tout, 4, &o, &ra), CT_OK);
    assert_int_equal(ct_fsa_solve(ctx, sub, p, y0, tout, 4, &o, &rs), CT_OK);
    assert_int_equal(ct_fsa_solve(ctx, one, p, y0, tout, 4, &o, &r1), CT_OK);
    assert_int_equal(rs->n_params, 2);
    assert_int_equal(rs->params[0], 3);
    assert_int_equal(rs->params[1], 1);
    assert_int_equal(r1->params[0], 2);
    expect_columns(rs, ra, 1e-8, 1e-10, "params {3, 1}");
    expect_columns(r1, ra, 1e-8, 1e-10, "params {2}");
    if (correctors[c] == CT_FSA_STAGGERED1) {
      assert_non_null(rs->stats.stgr_nonlin_iters);
      assert_true(rs->stats.stgr_nonlin_iters[1] > 0);
    }
    ct_fsa_result_free(ctx, ra);
    ct_fsa_result_free(ctx, rs);
    ct_fsa_result_free(ctx, r1);
  }
  /* Without error control the states do not see the sensitivities: the
   * same steps and the same solution, bit for bit. */
  o.err_con = 0;
  o.corrector = CT_FSA_STAGGERED;
  ct_fsa_result *ra = NULL, *rs = NULL;
  assert_int_equal(ct_fsa_solve(ctx, all, p, y0, tout, 4, &o, &ra), CT_OK);
  assert_int_equal(ct_fsa_solve(ctx, sub, p, y0, tout, 4, &o, &rs), CT_OK);
  assert_int_equal(rs->ode.stats.steps, ra->ode.stats.steps);
  assert_memory_equal(rs->ode.y, ra->ode.y, 4 * 2 * sizeof *ra->ode.y);
  expect_columns(rs, ra, 1e-6, 1e-8, "params {3, 1}, no error control");
  ct_fsa_result_free(ctx, ra);
  ct_fsa_result_free(ctx, rs);
  ct_fsa_free(all);
  ct_fsa_free(sub);
  ct_fsa_free(one);
  ct_ode_free(ode);
  ct_fun_free(rhs);
  ct_context_free(ctx);
}

/* ---- Roots ----------------------------------------------------------------------- */

/* A stopping root keeps the sensitivities at its time: those of a run to
 * that fixed time. */
static void test_stopping_root(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *rhs = ct_lotka_volterra(ctx);
  ct_graph *g = ct_graph_new(ctx);
  ct_var u[2], p[4];
  ct_graph_input(g, "y", 2, NULL, u);
  ct_graph_input(g, "p", 4, NULL, p);
  ct_var r = ct_addc(u[0], -2.5);
  ct_graph_output(g, "g", 1, &r);
  ct_fun *roots = ct_test_finish(g);
  ct_ode *with = NULL, *without = NULL;
  ct_fsa *fw = NULL, *fo = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, roots, &with), CT_OK);
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, NULL, &without), CT_OK);
  assert_int_equal(ct_fsa_new(ctx, with, NULL, 0, &fw), CT_OK);
  assert_int_equal(ct_fsa_new(ctx, without, NULL, 0, &fo), CT_OK);
  double pv[4] = {1.5, 1.0, 3.0, 1.0}, y0[2] = {1, 1}, tout[] = {0, 0.5, 1, 2, 5, 10};
  ct_fsa_options o = ct_fsa_default_options();
  o.ode = tight();
  ct_fsa_result *res = NULL, *ref = NULL;
  assert_int_equal(ct_fsa_solve(ctx, fw, pv, y0, tout, 6, &o, &res), CT_OK);
  assert_int_equal(res->ode.n_roots_found, 1);
  size_t last = res->ode.n_out - 1;
  assert_true(last >= 1 && last < 5);
  double t_root = res->ode.t[last];
  assert_true(t_root == res->ode.roots[0].t);
  assert_true(fabs(res->ode.y[last * 2] - 2.5) < 1e-9);
  double t2[8];
  memcpy(t2, tout, last * sizeof *t2);
  t2[last] = t_root;
  assert_int_equal(ct_fsa_solve(ctx, fo, pv, y0, t2, last + 1, &o, &ref), CT_OK);
  for (size_t q = 0; q < 4 * 2; q++)
    if (!rel_close(res->s[last * 8 + q], ref->s[last * 8 + q], 1e-7))
      fail_msg("at the root, s[%zu] = %.12g, run to t = %.12g: %.12g", q,
               res->s[last * 8 + q], t_root, ref->s[last * 8 + q]);
  ct_fsa_result_free(ctx, res);
  ct_fsa_result_free(ctx, ref);
  ct_fsa_free(fw);
  ct_fsa_free(fo);
  ct_ode_free(with);
  ct_ode_free(without);
  ct_fun_free(rhs);
  ct_fun_free(roots);
  ct_context_free(ctx);
}

/* ---- Failures and bad arguments ---------------------------------------------------- */

/* y' = p0 sqrt(1 - t) y: NaN past t = 1 (kind 0); y' = -sqrt(p0) y, whose
 * derivative in p0 is infinite at p0 = 0 while f is finite (kind 1). */
static ct_ode *failing_model(ct_context *ctx, int kind) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var t, y, p, f;
  ct_graph_input(g, "t", 1, NULL, &t);
  ct_graph_input(g, "y", 1, NULL, &y);
  ct_graph_input(g, "p", 1, NULL, &p);
  f = kind == 0 ? ct_mul(ct_mul(p, ct_sqrt(ct_subc(1.0, t))), y) : ct_mul(ct_neg(ct_sqrt(p)), y);
  ct_graph_output(g, "f", 1, &f);
  ct_fun *rhs = ct_test_finish(g);
  ct_ode *ode = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, NULL, &ode), CT_OK);
  ct_fun_free(rhs);
  return ode;
}

/* Failures return the outputs before them, sensitivities included, with
 * the cause in the message. */
static void test_failure_keeps_sensitivities(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_ode *ode = failing_model(ctx, 0);
  ct_fsa *fsa = NULL;
  assert_int_equal(ct_fsa_new(ctx, ode, NULL, 0, &fsa), CT_OK);
  double p = 0.8, y0 = 1, tout[] = {0, 0.5, 0.9, 2};
  ct_fsa_options o = ct_fsa_default_options();
  o.ode.rtol = 1e-10;
  o.ode.atol = 1e-12;
  ct_fsa_result *res = NULL;
  assert_int_equal(ct_fsa_solve(ctx, fsa, &p, &y0, tout, 4, &o, &res), CT_ERR_SOLVER);
  assert_non_null(res);
  assert_int_equal(res->ode.status, CT_ERR_SOLVER);
  assert_int_equal(res->ode.n_out, 3); /* 0, 0.5, 0.9 kept */
  assert_non_null(strstr(res->ode.message, "NaN"));
  assert_non_null(strstr(ct_errmsg(ctx), res->ode.message));
  for (int k = 0; k < 3; k++) { /* y = exp(p g(t)), g = 2/3 (1 - (1 - t)^1.5) */
    double gt = 2.0 / 3.0 * (1 - pow(1 - tout[k], 1.5)), y = exp(p * gt);
    assert_true(rel_close(res->ode.y[k], y, 1e-8));
    if (!rel_close(res->s[k], gt * y, 1e-7) && !(k == 0 && res->s[0] == 0))
      fail_msg("t = %g: dy/dp = %.12g, exact %.12g", tout[k], res->s[k], gt * y);
    assert_true(k == 0 || rel_close(res->s_norm[k], p * gt, 1e-7));
  }
  ct_fsa_result_free(ctx, res);
  ct_fsa_free(fsa);
  ct_ode_free(ode);

  /* The sensitivity right-hand side itself is infinite from the start. */
  ode = failing_model(ctx, 1);
  assert_int_equal(ct_fsa_new(ctx, ode, NULL, 0, &fsa), CT_OK);
  p = 0;
  assert_int_equal(ct_fsa_solve(ctx, fsa, &p, &y0, tout, 4, NULL, &res), CT_ERR_SOLVER);
  assert_int_equal(res->ode.n_out, 1);
  assert_true(res->s[0] == 0);
  assert_non_null(strstr(res->ode.message,
                         "sensitivity right-hand side is infinite in component 0 of dy/dp[0]"));
  ct_fsa_result_free(ctx, res);
  ct_fsa_free(fsa);
  ct_ode_free(ode);
  ct_context_free(ctx);
}

/* rc is CT_ERR_ARG and the message contains text. */
static void expect_arg_error(ct_context *ctx, int rc, const char *text) {
  assert_int_equal(rc, CT_ERR_ARG);
  if (!strstr(ct_errmsg(ctx), text))
    fail_msg("expected '%s' in: %s", text, ct_errmsg(ctx));
}

/* Each bad argument: CT_ERR_ARG with a message that names it, no result. */
static void test_bad_arguments(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  /* A model without parameters. */
  ct_graph *g = ct_graph_new(ctx);
  ct_var y, f;
  ct_graph_input(g, "y", 1, NULL, &y);
  f = ct_neg(y);
  ct_graph_output(g, "f", 1, &f);
  ct_fun *rhs = ct_test_finish(g);
  ct_ode *ode = NULL;
  ct_fsa *fsa = (ct_fsa *)1;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, NULL, &ode), CT_OK);
  expect_arg_error(ctx, ct_fsa_new(ctx, ode, NULL, 0, &fsa), "the model has no parameters");
  assert_null(fsa);
  ct_ode_free(ode);
  ct_fun_free(rhs);
  expect_arg_error(ctx, ct_fsa_new(ctx, NULL, NULL, 0, &fsa), "need a model");

  rhs = ct_lotka_volterra(ctx);
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, NULL, &ode), CT_OK);
  const size_t out_of_range[2] = {0, 4}, twice[3] = {1, 2, 1};
  expect_arg_error(ctx, ct_fsa_new(ctx, ode, out_of_range, 2, &fsa),
                   "parameter index 4 (params[1]) is out of range: the model has 4 "
                   "parameters, 0 to 3");
  expect_arg_error(ctx, ct_fsa_new(ctx, ode, twice, 3, &fsa),
                   "parameter 1 is selected twice (params[0] and params[2])");
  expect_arg_error(ctx, ct_fsa_new(ctx, ode, twice, 0, &fsa), "no parameters selected");
  assert_int_equal(ct_fsa_new(ctx, ode, NULL, 0, &fsa), CT_OK);

  double p[4] = {1.5, 1.0, 3.0, 1.0}, y0[2] = {1, 1}, tout[] = {0, 1}, bad_t[] = {0, 2, 1};
  ct_fsa_result *res = (ct_fsa_result *)1;
  ct_fsa_options o = ct_fsa_default_options();
  expect_arg_error(ctx, ct_fsa_solve(ctx, fsa, NULL, y0, tout, 2, &o, &res), "pass p");
  assert_null(res);
  double zero_bar[4] = {1, 0, 1, 1};
  o.pbar = zero_bar;
  expect_arg_error(ctx, ct_fsa_solve(ctx, fsa, p, y0, tout, 2, &o, &res),
                   "pbar[1] (the scale of p[1]) must be positive and finite, got 0");
  o = ct_fsa_default_options();
  o.corrector = (ct_fsa_corrector)7;
  expect_arg_error(ctx, ct_fsa_solve(ctx, fsa, p, y0, tout, 2, &o, &res),
                   "unknown sensitivity corrector 7");
  o = ct_fsa_default_options();
  double p_nan[4] = {1.5, 1.0, NAN, 1.0};
  expect_arg_error(ctx, ct_fsa_solve(ctx, fsa, p_nan, y0, tout, 2, &o, &res),
                   "parameter p[2] is not finite");
  expect_arg_error(ctx, ct_fsa_solve(ctx, fsa, p, y0, bad_t, 3, &o, &res),
                   "output times must increase");
  o.ode.rtol = -1;
  expect_arg_error(ctx, ct_fsa_solve(ctx, fsa, p, y0, tout, 2, &o, &res),
                   "rtol must be positive");
  expect_arg_error(ctx, ct_fsa_solve(ctx, NULL, p, y0, tout, 2, &o, &res), "fsa is NULL");
  assert_null(res);
  ct_fsa_free(fsa);
  ct_fsa_free(NULL);
  ct_fsa_result_free(ctx, NULL);
  ct_ode_free(ode);
  ct_fun_free(rhs);
  ct_context_free(ctx);
}

/* ---- Threads ---------------------------------------------------------------------- */

typedef struct thread_job {
  ct_context *ctx; /* the job's own */
  const ct_fsa *fsa;
  double p[4];
  ct_fsa_result *res;
  int rc;
} thread_job;

/* ---- Callback models, dense output, guards ----------------------------------------- */

/* Lotka–Volterra as C callbacks, p = (a, b, c, d), u = (x, y). */
static int lv_f(double t, const double *u, const double *p, double *f, void *ud) {
  (void)t, (void)ud;
  f[0] = p[0] * u[0] - p[1] * u[0] * u[1];
  f[1] = p[3] * u[0] * u[1] - p[2] * u[1];
  return 0;
}

static int lv_jac(double t, const double *u, const double *p, double *J, void *ud) {
  (void)t, (void)ud;
  J[0] = p[0] - p[1] * u[1]; /* column-major */
  J[1] = p[3] * u[1];
  J[2] = -p[1] * u[0];
  J[3] = p[3] * u[0] - p[2];
  return 0;
}

static int lv_jvp(double t, const double *u, const double *p, const double *v,
                  double *Jv, void *ud) {
  double J[4];
  lv_jac(t, u, p, J, ud);
  Jv[0] = J[0] * v[0] + J[2] * v[1];
  Jv[1] = J[1] * v[0] + J[3] * v[1];
  return 0;
}

/* (df/dp) v: the columns are (x, 0), (-xy, 0), (0, -y), (0, xy). */
static int lv_dfdp_v(double t, const double *u, const double *p, const double *v,
                     double *out, void *ud) {
  (void)t, (void)p, (void)ud;
  out[0] = u[0] * v[0] - u[0] * u[1] * v[1];
  out[1] = -u[1] * v[2] + u[0] * u[1] * v[3];
  return 0;
}

/* A callback model with f and the derivative callbacks asked for. */
static ct_ode *lv_callback_model(ct_context *ctx, int jvp, int jac, int dfdp, int dq) {
  ct_ode_callbacks cb = {0};
  cb.n = 2;
  cb.np = 4;
  cb.f = lv_f;
  if (jvp) cb.jvp = lv_jvp;
  if (jac) cb.jac_dense = lv_jac;
  if (dfdp) cb.dfdp_v = lv_dfdp_v;
  cb.allow_difference_quotients = dq;
  ct_ode *ode = NULL;
  assert_int_equal(ct_ode_new_callbacks(ctx, &cb, &ode), CT_OK);
  return ode;
}

/* Forward sensitivities of `ode` for params (NULL: all), or fail. */
static ct_fsa_result *fsa_run_lv_tol(ct_context *ctx, const ct_ode *ode,
                                     const size_t *params, size_t n_params,
                                     ct_fsa_corrector corrector, const double *tout,
                                     size_t nt, double rtol) {
  double p[4] = {1.5, 1.0, 3.0, 1.0}, y0[2] = {1, 1};
  ct_fsa *fsa = NULL;
  if (ct_fsa_new(ctx, ode, params, n_params, &fsa) != CT_OK)
    fail_msg("ct_fsa_new: %s", ct_errmsg(ctx));
  ct_fsa_options o = ct_fsa_default_options();
  o.ode.rtol = rtol;
  o.ode.atol = 1e-2 * rtol;
  o.ode.max_steps = 100000;
  o.corrector = corrector;
  ct_fsa_result *res = NULL;
  if (ct_fsa_solve(ctx, fsa, p, y0, tout, nt, &o, &res) != CT_OK)
    fail_msg("ct_fsa_solve: %s", ct_errmsg(ctx));
  ct_fsa_free(fsa);
  return res;
}

/* fsa_run_lv_tol at rtol 1e-10. */
static ct_fsa_result *fsa_run_lv(ct_context *ctx, const ct_ode *ode, const size_t *params,
                                 size_t n_params, ct_fsa_corrector corrector,
                                 const double *tout, size_t nt) {
  return fsa_run_lv_tol(ctx, ode, params, n_params, corrector, tout, nt, 1e-10);
}

/* Every sensitivity of `got` equals `all`'s for the same parameter (`all`
 * has each of got's) to |a - b| <= rtol |b| + atol. */
static void expect_same_sens(const ct_fsa_result *got, const ct_fsa_result *all,
                             double rtol, double atol, const char *what) {
  size_t n = got->ode.n;
  assert_int_equal(got->ode.n_out, all->ode.n_out);
  double worst = 0;
  for (size_t k = 0; k < got->ode.n_out; k++)
    for (size_t j = 0; j < got->n_params; j++)
      for (size_t i = 0; i < n; i++) {
        size_t jj = 0;
        while (all->params[jj] != got->params[j]) jj++;
        double a = got->s[(k * got->n_params + j) * n + i];
        double b = all->s[(k * all->n_params + jj) * n + i];
        double e = fabs(a - b) / (rtol * fabs(b) + atol);
        if (e > worst) worst = e;
        if (e > 1)
          fail_msg("%s: t = %g, dy%zu/dp%zu = %.12g, AD model %.12g", what,
                   got->ode.t[k], i, got->params[j], a, b);
      }
  printf("%s: worst difference %.3g x (%.0e |s| + %.0e)\n", what, worst, rtol, atol);
}

/* A callback model's sensitivities from jvp (or its Jacobian) and dfdp_v
 * equal the AD model's; from CVODES' difference quotients they are close;
 * without dfdp_v and difference quotients, a clear error. */
static void test_callback_model_sensitivities(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *rhs = ct_lotka_volterra(ctx);
  ct_ode *ad = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, NULL, &ad), CT_OK);
  double tout[] = {0, 1, 2, 5, 10};
  ct_fsa_result *ref = fsa_run_lv(ctx, ad, NULL, 0, CT_FSA_SIMULTANEOUS, tout, 5);

  ct_ode *with_jvp = lv_callback_model(ctx, 1, 1, 1, 0);
  ct_fsa_result *res = fsa_run_lv(ctx, with_jvp, NULL, 0, CT_FSA_SIMULTANEOUS, tout, 5);
  expect_same_sens(res, ref, 1e-8, 1e-10, "callbacks jvp + dfdp_v, simultaneous");
  assert_int_equal(res->stats.rhs_evals_sens, 0);
  ct_fsa_result_free(ctx, res);
  res = fsa_run_lv(ctx, with_jvp, NULL, 0, CT_FSA_STAGGERED1, tout, 5);
  expect_same_sens(res, ref, 1e-8, 1e-10, "callbacks jvp + dfdp_v, staggered1");
  ct_fsa_result_free(ctx, res);
  size_t sub[2] = {3, 1}; /* fewer sensitivities in the error test: other steps */
  ct_fsa_result *ref_sub = fsa_run_lv(ctx, ad, sub, 2, CT_FSA_STAGGERED, tout, 5);
  res = fsa_run_lv(ctx, with_jvp, sub, 2, CT_FSA_STAGGERED, tout, 5);
  expect_same_sens(res, ref_sub, 1e-8, 1e-10, "callbacks jvp + dfdp_v, p3 and p1");
  ct_fsa_result_free(ctx, res);
  ct_fsa_result_free(ctx, ref_sub);
  ct_ode *with_jac = lv_callback_model(ctx, 0, 1, 1, 0);
  res = fsa_run_lv(ctx, with_jac, NULL, 0, CT_FSA_STAGGERED, tout, 5);
  expect_same_sens(res, ref, 1e-8, 1e-10, "callbacks jac_dense + dfdp_v, staggered");
  ct_fsa_result_free(ctx, res);

  ct_ode *dq = lv_callback_model(ctx, 0, 0, 0, 1);
  res = fsa_run_lv_tol(ctx, dq, NULL, 0, CT_FSA_SIMULTANEOUS, tout, 5, 1e-7);
  expect_same_sens(res, ref, 1e-4, 1e-6, "CVODES' difference quotients");
  assert_true(res->stats.rhs_evals_sens > 0);
  ct_fsa_result_free(ctx, res);

  ct_fsa *fsa = NULL;
  ct_ode *bare = lv_callback_model(ctx, 0, 0, 0, 0);
  assert_int_equal(ct_fsa_new(ctx, bare, NULL, 0, &fsa), CT_ERR_ARG);
  assert_null(fsa);
  assert_non_null(strstr(ct_errmsg(ctx), "need the dfdp_v callback"));
  assert_non_null(strstr(ct_errmsg(ctx), "allow_difference_quotients"));
  ct_ode *no_jv = lv_callback_model(ctx, 0, 0, 1, 0);
  assert_int_equal(ct_fsa_new(ctx, no_jv, NULL, 0, &fsa), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "need the jvp (or jac_dense or jac_sparse)"));
  ct_ode_free(no_jv);
  ct_ode_free(bare);
  ct_ode_free(dq);
  ct_ode_free(with_jac);
  ct_ode_free(with_jvp);
  ct_fsa_result_free(ctx, ref);
  ct_ode_free(ad);
  ct_fun_free(rhs);
  ct_context_free(ctx);
}

/* Dense output of a sensitivity solve: the states between outputs, with
 * the same steps, states and sensitivities at the outputs as without. */
static void test_dense_output(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *rhs = ct_lotka_volterra(ctx);
  ct_ode *ode = NULL;
  ct_fsa *fsa = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, NULL, &ode), CT_OK);
  assert_int_equal(ct_fsa_new(ctx, ode, NULL, 0, &fsa), CT_OK);
  double p[4] = {1.5, 1.0, 3.0, 1.0}, y0[2] = {1, 1}, tout[] = {0, 1, 2, 5, 10};
  ct_fsa_options o = ct_fsa_default_options();
  ct_fsa_result *plain = NULL, *dense = NULL;
  assert_int_equal(ct_fsa_solve(ctx, fsa, p, y0, tout, 5, &o, &plain), CT_OK);
  o.ode.dense_output = 1;
  assert_int_equal(ct_fsa_solve(ctx, fsa, p, y0, tout, 5, &o, &dense), CT_OK);
  assert_null(plain->ode.dense);
  assert_int_equal(dense->ode.stats.steps, plain->ode.stats.steps);
  assert_memory_equal(dense->ode.y, plain->ode.y, 5 * 2 * sizeof(double));
  assert_memory_equal(dense->s, plain->s, 5 * 4 * 2 * sizeof(double));
  double y[2];
  for (size_t k = 0; k < 5; k++) {
    assert_int_equal(ct_ode_result_eval(ctx, &dense->ode, tout[k], 0, y), CT_OK);
    for (int i = 0; i < 2; i++)
      assert_true(fabs(y[i] - dense->ode.y[k * 2 + i]) <= 1e-12 * fabs(y[i]) + 1e-15);
  }
  assert_int_equal(ct_ode_result_eval(ctx, &dense->ode, 7.5, 0, y), CT_OK);
  assert_int_equal(ct_ode_result_eval(ctx, &dense->ode, 11, 0, y), CT_ERR_ARG);
  ct_fsa_result_free(ctx, plain);
  ct_fsa_result_free(ctx, dense);
  ct_fsa_free(fsa);
  ct_ode_free(ode);
  ct_fun_free(rhs);
  ct_context_free(ctx);
}

/* The times a progress callback saw; it asks to stop at call stop_at
 * (0: never). */
typedef struct progress_log {
  double t[4096];
  int n, stop_at;
} progress_log;

static int log_progress(double t, void *ud) {
  progress_log *l = ud;
  if (l->n < 4096) l->t[l->n] = t;
  l->n++;
  return l->stop_at && l->n >= l->stop_at;
}

/* A progress callback on a sensitivity solve: the same states,
 * sensitivities and statistics to the bit, one call per step with
 * increasing times ending at T; returning 1 halfway stops there
 * with CT_ERR_INTERRUPTED, the outputs and sensitivities reached kept. */
static void test_progress(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *rhs = ct_lotka_volterra(ctx);
  ct_ode *ode = NULL;
  ct_fsa *fsa = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, NULL, &ode), CT_OK);
  assert_int_equal(ct_fsa_new(ctx, ode, NULL, 0, &fsa), CT_OK);
  double p[4] = {1.5, 1.0, 3.0, 1.0}, y0[2] = {1, 1}, tout[] = {0, 1, 2, 5, 10};
  ct_fsa_options o = ct_fsa_default_options();
  ct_fsa_result *plain = NULL, *res = NULL, *cut = NULL;
  assert_int_equal(ct_fsa_solve(ctx, fsa, p, y0, tout, 5, &o, &plain), CT_OK);
  progress_log log = {.stop_at = 0};
  o.ode.progress = log_progress;
  o.ode.progress_ud = &log;
  assert_int_equal(ct_fsa_solve(ctx, fsa, p, y0, tout, 5, &o, &res), CT_OK);
  assert_memory_equal(res->ode.y, plain->ode.y, 5 * 2 * sizeof(double));
  assert_memory_equal(res->s, plain->s, 5 * 4 * 2 * sizeof(double));
  assert_memory_equal(&res->ode.stats, &plain->ode.stats, sizeof res->ode.stats);
  assert_int_equal(res->stats.sens_rhs_evals, plain->stats.sens_rhs_evals);
  assert_int_equal(res->stats.err_test_fails, plain->stats.err_test_fails);
  assert_int_equal(log.n, res->ode.stats.steps);
  for (int i = 1; i < log.n; i++) assert_true(log.t[i] > log.t[i - 1]);
  assert_true(log.t[log.n - 1] == 10.0);
  int stop = log.n / 2;
  log.n = 0;
  log.stop_at = stop;
  assert_int_equal(ct_fsa_solve(ctx, fsa, p, y0, tout, 5, &o, &cut), CT_ERR_INTERRUPTED);
  assert_non_null(cut);
  assert_int_equal(cut->ode.status, CT_ERR_INTERRUPTED);
  assert_int_equal(cut->ode.stats.steps, stop);
  assert_non_null(strstr(cut->ode.message, ": interrupted"));
  size_t k = cut->ode.n_out;
  assert_true(k >= 2 && k < 5);
  assert_memory_equal(cut->ode.y, plain->ode.y, k * 2 * sizeof(double));
  assert_memory_equal(cut->s, plain->s, k * 4 * 2 * sizeof(double));
  ct_fsa_result_free(ctx, plain);
  ct_fsa_result_free(ctx, res);
  ct_fsa_result_free(ctx, cut);
  ct_fsa_free(fsa);
  ct_ode_free(ode);
  ct_fun_free(rhs);
  ct_context_free(ctx);
}

/* y' = p y - 2 while y > 0 (else -y - 2), traced with ct_branch at y = 1:
 * from y(0) = 1 and p = 1, y = 2 - e^t crosses 0 at t = ln 2, where the
 * guard flips: the sensitivity solve stops there, results kept. */
static void test_guard_flip_stops(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_graph *g = ct_graph_new(ctx);
  double at_y = 1, at_p = 1;
  ct_var y, p;
  ct_graph_input(g, "y", 1, &at_y, &y);
  ct_graph_input(g, "p", 1, &at_p, &p);
  ct_var f = ct_branch(ct_gt(y, ct_const(g, 0))) ? ct_addc(ct_mul(p, y), -2)
                                                 : ct_addc(ct_neg(y), -2);
  ct_graph_output(g, "f", 1, &f);
  ct_fun *rhs = ct_test_finish(g);
  ct_ode *ode = NULL;
  ct_fsa *fsa = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, NULL, &ode), CT_OK);
  assert_int_equal(ct_fsa_new(ctx, ode, NULL, 0, &fsa), CT_OK);
  double y0 = 1, tout[] = {0, 0.5, 1, 2};
  ct_fsa_result *res = NULL;
  assert_int_equal(ct_fsa_solve(ctx, fsa, &at_p, &y0, tout, 4, NULL, &res), CT_ERR_SOLVER);
  assert_int_equal(res->ode.n_out, 2);
  assert_true(res->ode.t_reached >= 0.5 && res->ode.t_reached <= log(2.0));
  assert_non_null(strstr(res->ode.message, "took a different branch"));
  /* dy/dp at t = 0.5: s' = p s + y, s(0) = 0, y = 2 - e^t: s = 2(e^t - 1) - t e^t. */
  double s = 2 * (exp(0.5) - 1) - 0.5 * exp(0.5);
  assert_true(fabs(res->s[1] - s) < 1e-5);
  ct_fsa_result_free(ctx, res);
  ct_fsa_free(fsa);
  ct_ode_free(ode);
  ct_fun_free(rhs);
  ct_context_free(ctx);
}

/* Solves five times with the job's context; the last result is kept. */
static void *solve_worker(void *ud) {
  thread_job *job = ud;
  double y0[2] = {1, 1}, tout[] = {0, 1, 2, 5, 10};
  ct_fsa_options o = ct_fsa_default_options();
  o.ode.rtol = 1e-9;
  o.ode.atol = 1e-11;
  o.ode.max_steps = 100000;
  for (int rep = 0; rep < 5 && job->rc == CT_OK; rep++) {
    ct_fsa_result_free(job->ctx, job->res);
    job->res = NULL;
    job->rc = ct_fsa_solve(job->ctx, job->fsa, job->p, y0, tout, 5, &o, &job->res);
  }
  return NULL;
}

/* One problem solved from four threads at once, with different parameters:
 * each result equals the one computed alone, bit for bit. */
static void test_threads(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *rhs = ct_lotka_volterra(ctx);
  ct_ode *ode = NULL;
  ct_fsa *fsa = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, NULL, &ode), CT_OK);
  assert_int_equal(ct_fsa_new(ctx, ode, NULL, 0, &fsa), CT_OK);
  thread_job alone[4], together[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    thread_job job = {NULL, fsa, {1.5 + 0.1 * i, 1.0, 3.0 - 0.2 * i, 1.0}, NULL, CT_OK};
    alone[i] = together[i] = job;
    alone[i].ctx = ct_context_new(NULL);
    together[i].ctx = ct_context_new(NULL);
    solve_worker(&alone[i]);
    assert_int_equal(alone[i].rc, CT_OK);
  }
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&th[i], NULL, solve_worker, &together[i]), 0);
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(together[i].rc, CT_OK);
    const ct_fsa_result *a = alone[i].res, *b = together[i].res;
    assert_int_equal(a->ode.n_out, b->ode.n_out);
    assert_memory_equal(a->ode.y, b->ode.y, a->ode.n_out * 2 * sizeof *a->ode.y);
    assert_memory_equal(a->s, b->s, a->ode.n_out * 4 * 2 * sizeof *a->s);
    assert_int_equal(a->stats.sens_rhs_evals, b->stats.sens_rhs_evals);
    ct_fsa_result_free(alone[i].ctx, alone[i].res);
    ct_fsa_result_free(together[i].ctx, together[i].res);
    ct_context_free(alone[i].ctx);
    ct_context_free(together[i].ctx);
  }
  ct_fsa_free(fsa);
  ct_ode_free(ode);
  ct_fun_free(rhs);
  ct_context_free(ctx);
}

/* ---- Compiled models (ct_ode_jit) ------------------------------------------------------ */

/* Counts the JIT's info lines ("jit: ... compiled" or "loaded from the
 * cache"): one per function compiled. */
static void count_jit_lines(void *ud, ct_log_level level, const char *message) {
  if (level == CT_LOG_INFO && strncmp(message, "jit: ", 5) == 0) ++*(int *)ud;
}

/* Forward sensitivities of a model (rhs, init) on the interpreter or
 * compiled (jit); *n_jit counts the functions ct_fsa_new compiled. */
static ct_fsa_result *fsa_run_model(ct_context *ctx, const ct_fun *rhs, const ct_fun *init,
                                    int jit, ct_fsa_corrector corrector, int *n_jit) {
  int lines = 0;
  ct_context_set_log_fn(ctx, count_jit_lines, &lines);
  ct_context_set_log_level(ctx, CT_LOG_INFO);
  ct_ode *ode = NULL;
  ct_fsa *fsa = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, init, NULL, &ode), CT_OK);
  if (jit) assert_int_equal(ct_ode_jit(ctx, ode, NULL), CT_OK);
  int before = lines;
  assert_int_equal(ct_fsa_new(ctx, ode, NULL, 0, &fsa), CT_OK);
  *n_jit = lines - before;
  double p[4] = {0.04, 1.0e4, 3.0e7, 0}, y0[3] = {1, 0, 0}, atol[3] = {1e-8, 1e-14, 1e-6};
  double tout[13] = {0, 0.4}, tout_init[5] = {0, 0.5, 1, 3, 6};
  for (int k = 2; k < 13; k++) tout[k] = tout[k - 1] * 10;
  ct_fsa_options o = ct_fsa_default_options();
  o.corrector = corrector;
  if (!init) o.ode.rtol = 1e-4, o.ode.atol_v = atol;
  else p[0] = 0.7, p[1] = 0.3, p[2] = 1.2, p[3] = -0.5;
  ct_fsa_result *res = NULL;
  int rc = init ? ct_fsa_solve(ctx, fsa, p, NULL, tout_init, 5, &o, &res)
                : ct_fsa_solve(ctx, fsa, p, y0, tout, 13, &o, &res);
  assert_int_equal(rc, CT_OK);
  ct_fsa_free(fsa);
  ct_ode_free(ode);
  ct_context_set_log_fn(ctx, NULL, NULL);
  ct_context_set_log_level(ctx, CT_LOG_WARNING);
  return res;
}

/* The same run, interpreted and compiled, is the same to the bit. */
static void expect_same_fsa_bits(const ct_fsa_result *a, const ct_fsa_result *b, size_t n) {
  size_t ns = a->n_params;
  assert_int_equal(a->ode.n_out, b->ode.n_out);
  assert_int_equal(a->n_params, b->n_params);
  assert_memory_equal(a->ode.y, b->ode.y, a->ode.n_out * n * sizeof *a->ode.y);
  assert_memory_equal(a->s, b->s, a->ode.n_out * ns * n * sizeof *a->s);
  assert_memory_equal(&a->ode.stats, &b->ode.stats, sizeof a->ode.stats);
  assert_int_equal(a->stats.sens_rhs_evals, b->stats.sens_rhs_evals);
  assert_int_equal(a->stats.nonlin_iters, b->stats.nonlin_iters);
}

/* cvsRoberts_FSA_dns (both correctors) and a model with y0(p) on compiled
 * models: ct_fsa_new compiles its JVPs too, and every sensitivity is the
 * interpreter's to the bit. */
static void test_jit_bitwise(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *rob = ct_robertson_rhs_p(ctx), *rhs, *init;
  initial_value_model(ctx, &rhs, &init);
  const ct_fsa_corrector corr[2] = {CT_FSA_SIMULTANEOUS, CT_FSA_STAGGERED1};
  for (int c = 0; c < 2; c++) {
    int n0, n1;
    ct_fsa_result *a = fsa_run_model(ctx, rob, NULL, 0, corr[c], &n0);
    ct_fsa_result *b = fsa_run_model(ctx, rob, NULL, 1, corr[c], &n1);
    assert_int_equal(n0, 0);
    assert_int_equal(n1, 2); /* all 3 directions, and 1 (STAGGERED1) */
    expect_same_fsa_bits(a, b, 3);
    ct_fsa_result_free(ctx, a);
    ct_fsa_result_free(ctx, b);
  }
  int n0, n1;
  ct_fsa_result *a = fsa_run_model(ctx, rhs, init, 0, CT_FSA_SIMULTANEOUS, &n0);
  ct_fsa_result *b = fsa_run_model(ctx, rhs, init, 1, CT_FSA_SIMULTANEOUS, &n1);
  assert_int_equal(n1, 3); /* all 4 directions, 1, and the JVP of y0(p) */
  expect_same_fsa_bits(a, b, 2);
  ct_fsa_result_free(ctx, a);
  ct_fsa_result_free(ctx, b);
  ct_fun_free(rob);
  ct_fun_free(rhs);
  ct_fun_free(init);
  ct_context_free(ctx);
}

/* ---- Fault injection ------------------------------------------------------------------ */

typedef struct sweep_case {
  const ct_fun *rhs, *init;
  ct_fsa_corrector corrector;
  int jit; /* compile the model (ct_ode_jit) */
} sweep_case;

/* Builds a model with y0(p), its problem and solves; frees everything. */
static int build_and_solve(ct_context *ctx, void *ud) {
  const sweep_case *c = ud;
  ct_ode *ode = NULL;
  ct_fsa *fsa = NULL;
  ct_fsa_result *res = NULL;
  const size_t pick[3] = {0, 2, 3};
  double p[4] = {0.7, 0.3, 1.2, -0.5}, tout[] = {0, 0.5, 1};
  ct_fsa_options o = ct_fsa_default_options();
  o.corrector = c->corrector;
  int rc = ct_ode_new(ctx, c->rhs, c->init, NULL, &ode);
  if (rc == CT_OK && c->jit) rc = ct_ode_jit(ctx, ode, NULL);
  if (rc == CT_OK)
    rc = ct_fsa_new(ctx, ode, c->corrector == CT_FSA_STAGGERED1 ? pick : NULL, 3, &fsa);
  if (rc == CT_OK) rc = ct_fsa_solve(ctx, fsa, p, NULL, tout, 3, &o, &res);
  ct_fsa_result_free(ctx, res);
  ct_fsa_free(fsa);
  ct_ode_free(ode);
  return rc;
}

/* A callback model (ud: 0 jvp + dfdp_v, 1 difference quotients) built
 * and solved with dense output. */
static int build_and_solve_callbacks(ct_context *ctx, void *ud) {
  int dq = *(const int *)ud;
  ct_ode_callbacks cb = {0};
  cb.n = 2;
  cb.np = 4;
  cb.f = lv_f;
  cb.jvp = dq ? NULL : lv_jvp;
  cb.dfdp_v = dq ? NULL : lv_dfdp_v;
  cb.allow_difference_quotients = dq;
  ct_ode *ode = NULL;
  ct_fsa *fsa = NULL;
  ct_fsa_result *res = NULL;
  double p[4] = {1.5, 1.0, 3.0, 1.0}, y0[2] = {1, 1}, tout[] = {0, 0.5, 1};
  ct_fsa_options o = ct_fsa_default_options();
  o.ode.dense_output = 1;
  o.ode.linsol = CT_LINSOL_GMRES;
  int rc = ct_ode_new_callbacks(ctx, &cb, &ode);
  if (rc == CT_OK) rc = ct_fsa_new(ctx, ode, NULL, 0, &fsa);
  if (rc == CT_OK) rc = ct_fsa_solve(ctx, fsa, p, y0, tout, 3, &o, &res);
  ct_fsa_result_free(ctx, res);
  ct_fsa_free(fsa);
  ct_ode_free(ode);
  return rc;
}

/* Every allocation failure, simultaneous and staggered1 with a subset. */
static void test_fault_injection(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  sweep_case c = {NULL, NULL, CT_FSA_SIMULTANEOUS, 0};
  ct_fun *rhs, *init;
  initial_value_model(ctx, &rhs, &init);
  c.rhs = rhs, c.init = init;
  assert_true(ct_test_fault_sweep(build_and_solve, &c) > 30);
  c.corrector = CT_FSA_STAGGERED1;
  assert_true(ct_test_fault_sweep(build_and_solve, &c) > 30);
  c.jit = 1; /* a compiled model: its JVPs compiled too */
  assert_true(ct_test_fault_sweep(build_and_solve, &c) > 30);
  for (int dq = 0; dq < 2; dq++)
    assert_true(ct_test_fault_sweep(build_and_solve_callbacks, &dq) > 5);
  ct_fun_free(rhs);
  ct_fun_free(init);
  ct_context_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roberts_simultaneous),
      cmocka_unit_test(test_roberts_staggered1),
      cmocka_unit_test(test_jit_bitwise),
      cmocka_unit_test(test_lotka_volterra_against_differences),
      cmocka_unit_test(test_initial_values_against_differences),
      cmocka_unit_test(test_exact_and_normalised),
      cmocka_unit_test(test_normalised_consistent),
      cmocka_unit_test(test_parameter_subset),
      cmocka_unit_test(test_stopping_root),
      cmocka_unit_test(test_failure_keeps_sensitivities),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_callback_model_sensitivities),
      cmocka_unit_test(test_dense_output),
      cmocka_unit_test(test_progress),
      cmocka_unit_test(test_guard_flip_stops),
      cmocka_unit_test(test_threads),
      cmocka_unit_test(test_fault_injection),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
