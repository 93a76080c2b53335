/* DAE integration through IDAS with AD-supplied iteration matrices:
 * SUNDIALS' idasRoberts_dns reproduced line by line (outputs, roots, step
 * counts, orders, step sizes) and its final statistics, the derived
 * differential/algebraic components, consistent initialisation, every
 * linear solver on the same problem, failures with the time reached and
 * partial results, bad arguments, and fault injection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotangent/dae.h"
#include "ct_test.h"
#include "ct_models.h"

/* ---- Models ------------------------------------------------------------------ */

/* Robertson as a DAE, in the same arithmetic order as idasRoberts_dns'
 * resrob: r0 = -0.04 y0 + 1e4 y1 y2; r1 = -r0 - 3e7 y1 y1 - yp1;
 * r0 -= yp0; r2 = y0 + y1 + y2 - 1. */
static ct_fun *robertson_res(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var y[3], yp[3], r[3];
  ct_graph_input(g, "y", 3, NULL, y);
  ct_graph_input(g, "yp", 3, NULL, yp);
  ct_var r0 = ct_add(ct_mulc(y[0], -0.04), ct_mul(ct_mulc(y[1], 1.0e4), y[2]));
  r[1] = ct_sub(ct_sub(ct_neg(r0), ct_mul(ct_mulc(y[1], 3.0e7), y[1])), yp[1]);
  r[0] = ct_sub(r0, yp[0]);
  r[2] = ct_addc(ct_add(ct_add(y[0], y[1]), y[2]), -1.0);
  ct_graph_output(g, "F", 3, r);
  return ct_test_finish(g);
}

/* y0' = -1, 0 = y1 - sqrt(y0): y0 goes negative at t = 1 and the residual
 * turns NaN. */
static ct_fun *sqrt_res(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var y[2], yp[2], r[2];
  ct_graph_input(g, "y", 2, NULL, y);
  ct_graph_input(g, "yp", 2, NULL, yp);
  r[0] = ct_addc(yp[0], 1.0);
  r[1] = ct_sub(y[1], ct_sqrt(y[0]));
  ct_graph_output(g, "F", 2, r);
  return ct_test_finish(g);
}

/* y0' = -y0, 0 = y1^2 + 1: no consistent algebraic value exists. */
static ct_fun *impossible_res(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var y[2], yp[2], r[2];
  ct_graph_input(g, "y", 2, NULL, y);
  ct_graph_input(g, "yp", 2, NULL, yp);
  r[0] = ct_add(yp[0], y[0]);
  r[1] = ct_addc(ct_sqr(y[1]), 1.0);
  ct_graph_output(g, "F", 2, r);
  return ct_test_finish(g);
}

static const double rob_atol[3] = {1.0e-8, 1.0e-6, 1.0e-6};

/* The example's 13 times: 0, then 0.4 * 10^k. */
static void rob_times(double *tout) {
  tout[0] = 0;
  tout[1] = 0.4;
  for (int k = 2; k < 13; k++) tout[k] = tout[k - 1] * 10.0;
}

/* ---- SUNDIALS' reference --------------------------------------------------------- */

/* The idasRoberts_dns run: consistent initial values given, no calc_ic,
 * roots recorded and integration continued, dense with the AD Jacobian. */
static ct_dae_result *run_roberts_on(ct_context *ctx, ct_dae_linsol ls, int jit) {
  ct_fun *res = robertson_res(ctx), *roots = ct_robertson_roots(ctx);
  ct_dae *dae = NULL;
  assert_int_equal(ct_dae_new(ctx, res, NULL, roots, &dae), CT_OK);
  if (jit) assert_int_equal(ct_dae_jit(ctx, dae, NULL), CT_OK);
  ct_fun_free(res);
  ct_fun_free(roots);
  const double y0[3] = {1, 0, 0}, yp0[3] = {-0.04, 0.04, 0};
  double tout[13];
  rob_times(tout);
  ct_dae_options o = ct_dae_default_options();
  o.linsol = ls;
  o.rtol = 1.0e-4;
  o.atol_v = rob_atol;
  o.calc_ic = 0;
  o.stop_at_roots = 0;
  ct_dae_result *r = NULL;
  int rc = ct_dae_solve(ctx, dae, NULL, y0, yp0, tout, 13, &o, &r);
  if (rc != CT_OK) fail_msg("solve failed: %s", ct_errmsg(ctx));
  ct_dae_free(dae);
  return r;
}

/* The idasRoberts_dns run on the interpreter. */
static ct_dae_result *run_roberts(ct_context *ctx, ct_dae_linsol ls) {
  return run_roberts_on(ctx, ls, 0);
}

/* The example's lines, our way: outputs and roots in time order. */
static size_t format_run(const ct_dae_result *r, char lines[][128], size_t max) {
  size_t n = 0, iroot = 0;
  for (size_t k = 1; k < r->n_out && n + 2 < max; k++) {
    while (iroot < r->n_roots_found && r->roots[iroot].t <= r->t[k] && n + 2 < max) {
      const ct_dae_root *q = &r->roots[iroot++];
      snprintf(lines[n++], 128, "%10.4e %12.4e %12.4e %12.4e | %3ld  %1d %12.4e",
               q->t, q->y[0], q->y[1], q->y[2], q->steps, q->order, q->h);
      snprintf(lines[n++], 128, "    rootsfound[] = %3d %3d", q->which[0], q->which[1]);
    }
    const double *y = r->y + k * 3;
    snprintf(lines[n++], 128, "%10.4e %12.4e %12.4e %12.4e | %3ld  %1d %12.4e",
             r->t[k], y[0], y[1], y[2], r->steps[k], r->order[k], r->h[k]);
  }
  return n;
}

/* Reads the output lines ("t y1 y2 y3 | nst k h" and "rootsfound") of the
 * reference; -1 without the file. */
static long read_reference(const char *path, char lines[][128], size_t max,
                           long *stats, const char *const *names, size_t n_names) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char buf[256];
  size_t n = 0;
  while (fgets(buf, sizeof buf, f)) {
    buf[strcspn(buf, "\n")] = '\0';
    double t;
    if (n < max && ((sscanf(buf, "%le", &t) == 1 && strchr(buf, '|')) ||
                    strstr(buf, "rootsfound")))
      snprintf(lines[n++], 128, "%.127s", buf);
    for (size_t i = 0; i < n_names; i++) {
      size_t len = strlen(names[i]);
      if (strncmp(buf, names[i], len) == 0 && buf[len + strspn(buf + len, " ")] == '=')
        sscanf(strchr(buf, '=') + 1, "%ld", &stats[i]);
    }
  }
  fclose(f);
  return (long)n;
}

static void test_roberts_reference(void **state) {
  (void)state;
  static const char *const names[] = {"Steps", "Error test fails", "Residual fn evals",
                                      "NLS iters", "NLS fails", "LS setups",
                                      "Jac fn evals", "Root fn evals"};
  enum { NS = sizeof names / sizeof *names };
  long ref_stats[NS];
  for (size_t i = 0; i < NS; i++) ref_stats[i] = -1;
  char ref[32][128], ours[32][128];
  long nref = read_reference(CT_SUNDIALS_EXAMPLES "/idas/serial/idasRoberts_dns.out",
                             ref, 32, ref_stats, names, NS);
  if (nref < 0) skip();
  assert_int_equal(nref, 16);
  ct_context *ctx = ct_context_new(NULL);
  ct_dae_result *r = run_roberts(ctx, CT_DAE_LINSOL_DENSE);
  assert_int_equal(r->n_out, 13);
  assert_int_equal(r->n_roots_found, 2);
  size_t n = format_run(r, ours, 32);
  assert_int_equal(n, (size_t)nref);
  for (size_t i = 0; i < n; i++) assert_string_equal(ours[i], ref[i]);
  /* Every final statistic the example prints, to the count. */
  const ct_dae_stats *s = &r->stats;
  long got[NS] = {s->steps, s->err_test_fails, s->res_evals, s->nonlin_iters,
                  s->nonlin_conv_fails, s->lin_setups, s->jac_evals, s->root_evals};
  for (size_t i = 0; i < NS; i++) {
    if (got[i] != ref_stats[i]) fail_msg("%s: %ld, reference %ld", names[i], got[i], ref_stats[i]);
  }
  ct_dae_result_free(ctx, r);
  ct_context_free(ctx);
}

/* KLU (other pivoting, so other rounding) and GMRES agree with the dense
 * solution to the tolerances. */
static void test_linear_solvers(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_dae_result *d = run_roberts(ctx, CT_DAE_LINSOL_DENSE);
  ct_dae_result *k = run_roberts(ctx, CT_DAE_LINSOL_KLU);
  assert_int_equal(k->linsol, CT_DAE_LINSOL_KLU);
  assert_int_equal(d->n_out, k->n_out);
  for (size_t i = 0; i < 3 * d->n_out; i++)
    assert_true(fabs(d->y[i] - k->y[i]) <= 1e-8 + 1e-3 * fabs(d->y[i]));
  ct_dae_result_free(ctx, k);
  ct_dae_result_free(ctx, d);

  /* GMRES: a short interval, where unpreconditioned Krylov copes. */
  ct_fun *res = robertson_res(ctx);
  ct_dae *dae = NULL;
  assert_int_equal(ct_dae_new(ctx, res, NULL, NULL, &dae), CT_OK);
  ct_fun_free(res);
  const double y0[3] = {1, 0, 0}, yp0[3] = {-0.04, 0.04, 0};
  const double tout[3] = {0, 0.4, 4.0};
  ct_dae_options o = ct_dae_default_options();
  o.rtol = 1e-8;
  o.atol_v = NULL;
  o.atol = 1e-12;
  ct_dae_result *a = NULL, *b = NULL;
  o.linsol = CT_DAE_LINSOL_DENSE;
  assert_int_equal(ct_dae_solve(ctx, dae, NULL, y0, yp0, tout, 3, &o, &a), CT_OK);
  o.linsol = CT_DAE_LINSOL_GMRES;
  assert_int_equal(ct_dae_solve(ctx, dae, NULL, y0, yp0, tout, 3, &o, &b), CT_OK);
  assert_true(b->stats.jtimes_evals > 0);
  assert_int_equal(b->stats.jac_evals, 0);
  for (size_t i = 0; i < 9; i++)
    assert_true(fabs(a->y[i] - b->y[i]) <= 1e-6 * (1e-6 + fabs(a->y[i])));
  ct_dae_result_free(ctx, a);
  ct_dae_result_free(ctx, b);
  ct_dae_free(dae);
  ct_context_free(ctx);
}

/* Component types from the structure of dF/dy'; IDACalcIC corrects an
 * inconsistent start (y3 and y1' y2' wrong) and the residual vanishes. */
static void test_consistent_init(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *res = robertson_res(ctx);
  ct_dae *dae = NULL;
  assert_int_equal(ct_dae_new(ctx, res, NULL, NULL, &dae), CT_OK);
  const int *id = ct_dae_differential(dae);
  assert_int_equal(id[0], 1);
  assert_int_equal(id[1], 1);
  assert_int_equal(id[2], 0);
  assert_int_equal(ct_dae_n_states(dae), 3);
  assert_int_equal(ct_dae_jac_nnz(dae), 9); /* dF/dy is full; dF/dyp inside it */
  const double y0[3] = {1, 0, 0.3}, yp0[3] = {0.1, 0, 0};
  const double tout[3] = {0, 0.4, 4};
  ct_dae_options o = ct_dae_default_options();
  o.atol_v = rob_atol;
  o.rtol = 1e-6;
  ct_dae_result *r = NULL;
  assert_int_equal(ct_dae_solve(ctx, dae, NULL, y0, yp0, tout, 3, &o, &r), CT_OK);
  assert_true(r->y[0] == 1.0); /* differential y kept */
  assert_true(r->y[1] == 0.0);
  assert_true(fabs(r->y[2]) < 1e-12);   /* algebraic y corrected */
  /* IDACalcIC stops at its own Newton tolerance (0.0033 in WRMS). */
  assert_true(fabs(r->yp[0] + 0.04) < 1e-4);
  assert_true(fabs(r->yp[1] - 0.04) < 1e-4);
  double F[3];
  const double *in[2] = {r->y + 3, r->yp + 3};
  double *out[1] = {F};
  double *work = malloc(ct_fun_work_size(res) * sizeof *work);
  assert_int_equal(ct_fun_eval(ctx, res, in, out, work), CT_OK);
  free(work);
  for (int i = 0; i < 3; i++) assert_true(fabs(F[i]) < 1e-4); /* interpolated */
  ct_dae_result_free(ctx, r);
  /* Overriding the types: all algebraic is rejected by IDACalcIC's
   * structure only through failure; a wrong value is a CT_ERR_ARG. */
  const int bad[3] = {1, 2, 0};
  o.differential = bad;
  assert_int_equal(ct_dae_solve(ctx, dae, NULL, y0, yp0, tout, 3, &o, &r), CT_ERR_ARG);
  assert_null(r);
  ct_fun_free(res);
  ct_dae_free(dae);
  ct_context_free(ctx);
}

/* A NaN in F: the failure names it and the time reached, outputs before it
 * are kept. An impossible algebraic equation: IDACalcIC's failure. */
static void test_failures(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_context_set_log_level(ctx, CT_LOG_QUIET);
  ct_fun *res = sqrt_res(ctx);
  ct_dae *dae = NULL;
  assert_int_equal(ct_dae_new(ctx, res, NULL, NULL, &dae), CT_OK);
  ct_fun_free(res);
  const double y0[2] = {1, 1}, yp0[2] = {-1, -0.5};
  const double tout[4] = {0, 0.5, 0.9, 2.0};
  ct_dae_options o = ct_dae_default_options();
  ct_dae_result *r = NULL;
  assert_int_equal(ct_dae_solve(ctx, dae, NULL, y0, yp0, tout, 4, &o, &r), CT_ERR_SOLVER);
  assert_non_null(r);
  assert_int_equal(r->status, CT_ERR_SOLVER);
  assert_int_equal(r->n_out, 3);
  assert_true(r->t_reached > 0.9 && r->t_reached < 1.01);
  assert_non_null(strstr(r->message, "NaN"));
  assert_non_null(strstr(r->message, "t = "));
  assert_non_null(strstr(ct_errmsg(ctx), "NaN"));
  assert_true(fabs(r->y[2 * 2] - 0.1) < 1e-6);
  ct_dae_result_free(ctx, r);
  ct_dae_free(dae);

  res = impossible_res(ctx);
  assert_int_equal(ct_dae_new(ctx, res, NULL, NULL, &dae), CT_OK);
  ct_fun_free(res);
  assert_int_equal(ct_dae_differential(dae)[1], 0);
  assert_int_equal(ct_dae_solve(ctx, dae, NULL, y0, NULL, tout, 4, &o, &r), CT_ERR_SOLVER);
  assert_non_null(r);
  assert_int_equal(r->n_out, 0);
  assert_non_null(strstr(r->message, "IDACalcIC"));
  assert_non_null(strstr(r->message, "t = 0"));
  ct_dae_result_free(ctx, r);
  ct_dae_free(dae);
  ct_context_free(ctx);
}

/* x' = -x, 0 = x - exp(-t): the algebraic equation does not involve the
 * algebraic variable z (nor does anything else), so the iteration matrix
 * dF/dy + cj dF/dy' has a zero column for every cj. With `switch_off`,
 * the model is fine (0 = z - x) until t = 1, where that constraint is
 * switched off (0 = 0) and z is no longer determined. */
static ct_fun *singular_res(ct_context *ctx, int switch_off) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var t, y[2], yp[2], r[2];
  ct_graph_input(g, "t", 1, NULL, &t);
  ct_graph_input(g, "y", 2, NULL, y);
  ct_graph_input(g, "yp", 2, NULL, yp);
  r[0] = ct_add(yp[0], y[0]);
  r[1] = switch_off ? ct_select(ct_lt(t, ct_const(g, 1.0)), ct_sub(y[1], y[0]),
                                ct_const(g, 0.0))
                    : ct_sub(y[0], ct_exp(ct_neg(t)));
  ct_graph_output(g, "F", 2, r);
  return ct_test_finish(g);
}

/* Solves a singular model with linear solver ls; asserts a solver failure
 * whose message names the singular iteration matrix, and returns it. */
static ct_dae_result *solve_singular(ct_context *ctx, int switch_off, int calc_ic,
                                     ct_dae_linsol ls) {
  ct_fun *res = singular_res(ctx, switch_off);
  ct_dae *dae = NULL;
  assert_int_equal(ct_dae_new(ctx, res, NULL, NULL, &dae), CT_OK);
  ct_fun_free(res);
  assert_int_equal(ct_dae_differential(dae)[1], 0);
  const double y0[2] = {1, 1}, yp0[2] = {-1, 0}, tout[4] = {0, 0.5, 0.9, 20.0};
  ct_dae_options o = ct_dae_default_options();
  o.linsol = ls;
  o.calc_ic = calc_ic;
  ct_dae_result *r = NULL;
  int rc = ct_dae_solve(ctx, dae, NULL, y0, yp0, tout, 4, &o, &r);
  ct_dae_free(dae);
  printf("%s, %s: %s\n", ls == CT_DAE_LINSOL_KLU ? "KLU" : "dense",
         switch_off ? "switched off at t = 1" : "singular everywhere",
         r ? r->message : ct_errmsg(ctx));
  assert_int_equal(rc, CT_ERR_SOLVER);
  assert_non_null(r);
  assert_int_equal(r->status, CT_ERR_SOLVER);
  assert_non_null(strstr(r->message, "t = "));
  assert_non_null(strstr(r->message, "iteration matrix"));
  assert_non_null(strstr(r->message, "is singular"));
  assert_non_null(strstr(ct_errmsg(ctx), "is singular"));
  return r;
}

/* A singular iteration matrix, dense and KLU: in IDACalcIC (no outputs,
 * t = 0), from the first step (the initial output kept), and after t = 1
 * (the outputs before it kept and right). */
static void test_singular_matrix(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_context_set_log_level(ctx, CT_LOG_QUIET);
  const ct_dae_linsol solvers[2] = {CT_DAE_LINSOL_DENSE, CT_DAE_LINSOL_KLU};
  for (int k = 0; k < 2; k++) {
    ct_dae_result *r = solve_singular(ctx, 0, 1, solvers[k]);
    assert_int_equal(r->n_out, 0);
    assert_non_null(strstr(r->message, "IDACalcIC"));
    assert_non_null(strstr(r->message, "t = 0:"));
    if (solvers[k] == CT_DAE_LINSOL_DENSE) assert_non_null(strstr(r->message, "component 1"));
    ct_dae_result_free(ctx, r);
    r = solve_singular(ctx, 0, 0, solvers[k]);
    assert_int_equal(r->n_out, 1);
    assert_true(r->t_reached < 0.5);
    ct_dae_result_free(ctx, r);
    r = solve_singular(ctx, 1, 1, solvers[k]);
    assert_int_equal(r->n_out, 3);
    /* IDAS reuses the last (regular) matrix until a new one is needed: the
     * failure comes at the first setup after t = 1, before the last output */
    assert_true(r->t_reached >= 1.0 && r->t_reached < 20.0);
    assert_true(fabs(r->y[2 * 2] - exp(-0.9)) < 1e-5);
    assert_true(fabs(r->y[2 * 2 + 1] - exp(-0.9)) < 1e-5);
    ct_dae_result_free(ctx, r);
  }
  ct_context_free(ctx);
}

/* Initial values from an init(p) function; the model's parameters. */
static void test_init_function(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  /* y' = -p0 y, y(0) = p1: y = p1 exp(-p0 t); 0 = z - 2 y. */
  ct_graph *g = ct_graph_new(ctx);
  ct_var y[2], yp[2], p[2], r[2];
  ct_graph_input(g, "y", 2, NULL, y);
  ct_graph_input(g, "yp", 2, NULL, yp);
  ct_graph_input(g, "p", 2, NULL, p);
  r[0] = ct_add(yp[0], ct_mul(p[0], y[0]));
  r[1] = ct_sub(y[1], ct_mulc(y[0], 2));
  ct_graph_output(g, "F", 2, r);
  ct_fun *res = ct_test_finish(g);
  g = ct_graph_new(ctx);
  ct_var q[2], y0[2];
  ct_graph_input(g, "p", 2, NULL, q);
  y0[0] = q[1];
  y0[1] = ct_const(g, 0);
  ct_graph_output(g, "y0", 2, y0);
  ct_fun *init = ct_test_finish(g);
  ct_dae *dae = NULL;
  assert_int_equal(ct_dae_new(ctx, res, init, NULL, &dae), CT_OK);
  assert_int_equal(ct_dae_n_params(dae), 2);
  const double pv[2] = {0.7, 3.0}, tout[3] = {0, 1, 2};
  ct_dae_options o = ct_dae_default_options();
  o.rtol = 1e-9;
  o.atol = 1e-12;
  ct_dae_result *out = NULL;
  assert_int_equal(ct_dae_solve(ctx, dae, NULL, NULL, NULL, tout, 3, &o, &out), CT_ERR_ARG);
  assert_int_equal(ct_dae_solve(ctx, dae, pv, NULL, NULL, tout, 3, &o, &out), CT_OK);
  for (int k = 0; k < 3; k++) {
    double e = 3.0 * exp(-0.7 * tout[k]);
    assert_true(fabs(out->y[2 * k] - e) < 1e-6);
    assert_true(fabs(out->y[2 * k + 1] - 2 * e) < 1e-6);
  }
  ct_dae_result_free(ctx, out);
  ct_dae_free(dae);
  ct_fun_free(res);
  ct_fun_free(init);
  ct_context_free(ctx);
}

static void test_bad_arguments(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_dae *dae = NULL;
  assert_int_equal(ct_dae_new(ctx, NULL, NULL, NULL, &dae), CT_ERR_ARG);
  /* Linear solver names both ways; band is an ODE-only solver. */
  ct_dae_linsol ls = CT_DAE_LINSOL_AUTO;
  assert_int_equal(ct_dae_linsol_from_name(ctx, "klu", &ls), CT_OK);
  assert_int_equal(ls, CT_DAE_LINSOL_KLU);
  assert_string_equal(ct_dae_linsol_name(CT_DAE_LINSOL_GMRES), "gmres");
  assert_int_equal(ct_dae_linsol_from_name(ctx, "band", &ls), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "unknown linear solver 'band' for DAE models"));
  assert_string_equal(ct_dae_linsol_name((ct_dae_linsol)9), "unknown");
  /* No yp input. */
  ct_graph *g = ct_graph_new(ctx);
  ct_var y[2];
  ct_graph_input(g, "y", 2, NULL, y);
  ct_graph_output(g, "F", 2, y);
  ct_fun *f = ct_test_finish(g);
  assert_int_equal(ct_dae_new(ctx, f, NULL, NULL, &dae), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "'yp'"));
  ct_fun_free(f);
  /* Wrong output name and size. */
  g = ct_graph_new(ctx);
  ct_var yp[2];
  ct_graph_input(g, "y", 2, NULL, y);
  ct_graph_input(g, "yp", 2, NULL, yp);
  ct_graph_output(g, "f", 2, y);
  f = ct_test_finish(g);
  assert_int_equal(ct_dae_new(ctx, f, NULL, NULL, &dae), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "'F'"));
  ct_fun_free(f);
  g = ct_graph_new(ctx);
  ct_graph_input(g, "y", 2, NULL, y);
  ct_graph_input(g, "yp", 2, NULL, yp);
  ct_graph_output(g, "F", 1, y);
  f = ct_test_finish(g);
  assert_int_equal(ct_dae_new(ctx, f, NULL, NULL, &dae), CT_ERR_ARG);
  ct_fun_free(f);
  /* Solve arguments. */
  f = robertson_res(ctx);
  assert_int_equal(ct_dae_new(ctx, f, NULL, NULL, &dae), CT_OK);
  const double y0[3] = {1, 0, 0}, tout[2] = {0, 1}, back[2] = {1, 0};
  ct_dae_result *r = NULL;
  ct_dae_options o = ct_dae_default_options();
  assert_int_equal(ct_dae_solve(ctx, dae, NULL, NULL, NULL, tout, 2, &o, &r), CT_ERR_ARG);
  assert_int_equal(ct_dae_solve(ctx, dae, NULL, y0, NULL, back, 2, &o, &r), CT_ERR_ARG);
  assert_int_equal(ct_dae_solve(ctx, dae, NULL, y0, NULL, tout, 0, &o, &r), CT_ERR_ARG);
  o.rtol = -1;
  assert_int_equal(ct_dae_solve(ctx, dae, NULL, y0, NULL, tout, 2, &o, &r), CT_ERR_ARG);
  o = ct_dae_default_options();
  o.linsol = (ct_dae_linsol)42;
  assert_int_equal(ct_dae_solve(ctx, dae, NULL, y0, NULL, tout, 2, &o, &r), CT_ERR_ARG);
  assert_null(r);
  ct_dae_free(dae);
  ct_fun_free(f);
  ct_context_free(ctx);
}

/* ---- Dense output, progress and interruption ------------------------------------- */

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

/* The idasRoberts_dns run (as run_roberts) with dense output and a
 * progress callback as given, to times tout[0..nt). */
static ct_dae_result *run_roberts_with(ct_context *ctx, const double *tout, size_t nt,
                                       double rtol, int dense, progress_log *log) {
  ct_fun *res = robertson_res(ctx), *roots = ct_robertson_roots(ctx);
  ct_dae *dae = NULL;
  assert_int_equal(ct_dae_new(ctx, res, NULL, roots, &dae), CT_OK);
  ct_fun_free(res);
  ct_fun_free(roots);
  const double y0[3] = {1, 0, 0}, yp0[3] = {-0.04, 0.04, 0};
  ct_dae_options o = ct_dae_default_options();
  o.linsol = CT_DAE_LINSOL_DENSE;
  o.rtol = rtol;
  o.atol_v = rob_atol;
  o.calc_ic = 0;
  o.stop_at_roots = 0;
  o.max_steps = 100000;
  o.dense_output = dense;
  o.progress = log ? log_progress : NULL;
  o.progress_ud = log;
  ct_dae_result *r = NULL;
  int rc = ct_dae_solve(ctx, dae, NULL, y0, yp0, tout, nt, &o, &r);
  ct_dae_free(dae);
  if (log && log->stop_at) {
    assert_int_equal(rc, CT_ERR_INTERRUPTED);
    return r;
  }
  if (rc != CT_OK) fail_msg("solve failed: %s", ct_errmsg(ctx));
  return r;
}

/* Everything of b equals a's: outputs, their step counts, orders and
 * steps, roots, statistics (root evaluations aside: IDA_ONE_STEP searches
 * roots over whole steps). */
static void expect_same_run(const ct_dae_result *a, const ct_dae_result *b) {
  assert_int_equal(b->n_out, a->n_out);
  size_t m = a->n_out;
  assert_memory_equal(b->t, a->t, m * sizeof(double));
  assert_memory_equal(b->y, a->y, m * 3 * sizeof(double));
  assert_memory_equal(b->yp, a->yp, m * 3 * sizeof(double));
  assert_memory_equal(b->steps, a->steps, m * sizeof(long));
  assert_memory_equal(b->order, a->order, m * sizeof(int));
  assert_memory_equal(b->h, a->h, m * sizeof(double));
  assert_int_equal(b->n_roots_found, a->n_roots_found);
  for (size_t i = 0; i < a->n_roots_found; i++)
    assert_true(fabs(b->roots[i].t - a->roots[i].t) <= 1e-10 * a->roots[i].t);
  ct_dae_stats x = a->stats, y = b->stats;
  x.root_evals = y.root_evals = 0;
  assert_memory_equal(&x, &y, sizeof x);
}

/* Dense output and a progress callback step with IDA_ONE_STEP yet take the
 * steps of IDA_NORMAL: the same outputs to the bit, the same statistics,
 * the idasRoberts_dns lines unchanged; the interpolant gives the outputs
 * (and y' the stored y') at the output times; the callback sees one call
 * per step, increasing, ending at the last output time. */
static void test_dense_output_same_steps(void **state) {
  (void)state;
  char ref[32][128], ours[32][128];
  long ref_stats[1] = {-1};
  static const char *const names[] = {"Steps"};
  long nref = read_reference(CT_SUNDIALS_EXAMPLES "/idas/serial/idasRoberts_dns.out",
                             ref, 32, ref_stats, names, 1);
  ct_context *ctx = ct_context_new(NULL);
  double tout[13];
  rob_times(tout);
  static progress_log log;
  memset(&log, 0, sizeof log);
  ct_dae_result *plain = run_roberts_with(ctx, tout, 13, 1e-4, 0, NULL);
  ct_dae_result *dense = run_roberts_with(ctx, tout, 13, 1e-4, 1, &log);
  assert_null(plain->dense);
  assert_non_null(dense->dense);
  expect_same_run(plain, dense);
  if (nref >= 0) {
    assert_int_equal(format_run(dense, ours, 32), (size_t)nref);
    for (long i = 0; i < nref; i++) assert_string_equal(ours[i], ref[i]);
    assert_int_equal(dense->stats.steps, ref_stats[0]);
  }
  assert_int_equal(log.n, dense->stats.steps);
  for (int i = 1; i < log.n; i++) assert_true(log.t[i] > log.t[i - 1]);
  assert_true(log.t[log.n - 1] == tout[12]);
  for (size_t k = 0; k < dense->n_out; k++) {
    double y[3], yp[3];
    assert_int_equal(ct_dae_result_eval(ctx, dense, dense->t[k], 0, y), CT_OK);
    assert_int_equal(ct_dae_result_eval(ctx, dense, dense->t[k], 1, yp), CT_OK);
    for (int i = 0; i < 3; i++) {
      double want = dense->y[k * 3 + i], want_p = dense->yp[k * 3 + i];
      if (fabs(y[i] - want) > 1e-12 * fabs(want) + 1e-300)
        fail_msg("t = %g: y%d = %.17g interpolated, %.17g stored", dense->t[k], i, y[i], want);
      if (k > 0 && fabs(yp[i] - want_p) > 1e-10 * fabs(want_p) + 1e-300)
        fail_msg("t = %g: y%d' = %.17g interpolated, %.17g stored", dense->t[k], i,
                 yp[i], want_p);
    }
  }
  /* Statistics like ct_ode_stats': where IDAS is, its next step and order. */
  const ct_dae_stats *st = &dense->stats;
  assert_true(st->current_time >= tout[12] && st->current_time > 0);
  assert_true(st->current_step > 0 && st->first_step > 0 && st->first_step < 0.4);
  assert_true(st->current_order >= 1 && st->current_order <= 5);
  printf("dense DAE output: %ld steps, %zu doubles\n", dense->stats.steps,
         (size_t)dense->stats.steps * 3 * 6);
  ct_dae_result_free(ctx, plain);
  ct_dae_result_free(ctx, dense);
  ct_context_free(ctx);
}

/* Between outputs the interpolant is IDAS' own (the outputs of a normal
 * solve at 300 more times, same first output so the same steps, agree with
 * it) and accurate (a solve at rtol 1e-10 agrees to about the tolerance). */
static void test_dense_output_between_outputs(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  enum { NF = 302 };
  double tout[] = {0, 0.4, 40}, fine[NF] = {0, 0.4};
  for (int i = 2; i < NF; i++) fine[i] = 0.4 + (40 - 0.4) * (i - 1) / (NF - 2);
  ct_dae_result *dense = run_roberts_with(ctx, tout, 3, 1e-6, 1, NULL);
  ct_dae_result *many = run_roberts_with(ctx, fine, NF, 1e-6, 0, NULL);
  ct_dae_result *tight = run_roberts_with(ctx, fine, NF, 1e-10, 0, NULL);
  assert_int_equal(many->stats.steps, dense->stats.steps);
  double worst = 0;
  for (int i = 0; i < NF; i++) {
    double y[3];
    assert_int_equal(ct_dae_result_eval(ctx, dense, fine[i], 0, y), CT_OK);
    for (int c = 0; c < 3; c++) {
      double normal = many->y[i * 3 + c], ref = tight->y[i * 3 + c];
      if (fabs(y[c] - normal) > 1e-10 * fabs(normal) + 1e-18)
        fail_msg("t = %g: y%d = %.17g dense, %.17g normal", fine[i], c, y[c], normal);
      double e = fabs(y[c] - ref) / (1e-6 * fabs(ref) + rob_atol[c]);
      if (e > worst) worst = e;
    }
  }
  printf("dense DAE output: worst error %.3g x (rtol |y| + atol)\n", worst);
  if (worst > 100) fail_msg("dense output off by %g tolerances", worst);
  /* Out of range, negative k, no dense output. */
  double y[3];
  assert_int_equal(ct_dae_result_eval(ctx, dense, 40.5, 0, y), CT_ERR_ARG);
  assert_int_equal(ct_dae_result_eval(ctx, dense, -1e-3, 0, y), CT_ERR_ARG);
  assert_int_equal(ct_dae_result_eval(ctx, dense, NAN, 0, y), CT_ERR_ARG);
  assert_int_equal(ct_dae_result_eval(ctx, dense, 1, -1, y), CT_ERR_ARG);
  assert_int_equal(ct_dae_result_eval(ctx, many, 1, 0, y), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "dense_output = 1"));
  ct_dae_result_free(ctx, dense);
  ct_dae_result_free(ctx, many);
  ct_dae_result_free(ctx, tight);
  ct_context_free(ctx);
}

/* Returning 1 at the 40th call stops the solve there: CT_ERR_INTERRUPTED,
 * the message, the outputs of a full solve up to there, 40 steps; the
 * dense output ends where it stopped. */
static void test_progress_interrupts(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  double tout[13];
  rob_times(tout);
  ct_dae_result *full = run_roberts_with(ctx, tout, 13, 1e-4, 0, NULL);
  progress_log log = {.stop_at = 40};
  ct_dae_result *r = run_roberts_with(ctx, tout, 13, 1e-4, 1, &log);
  assert_non_null(r);
  assert_int_equal(r->status, CT_ERR_INTERRUPTED);
  assert_int_equal(ct_errcode(ctx), CT_ERR_INTERRUPTED);
  assert_int_equal(r->stats.steps, 40);
  assert_true(r->t_reached == log.t[39]);
  char want[64];
  snprintf(want, sizeof want, "t = %.6g: interrupted", log.t[39]);
  assert_string_equal(r->message, want);
  assert_true(r->n_out >= 2 && r->n_out < 13);
  assert_memory_equal(r->y, full->y, r->n_out * 3 * sizeof(double));
  double y[3];
  assert_int_equal(ct_dae_result_eval(ctx, r, r->t_reached, 0, y), CT_OK);
  assert_int_equal(ct_dae_result_eval(ctx, r, r->t_reached * 1.01, 0, y), CT_ERR_ARG);
  ct_dae_result_free(ctx, r);
  ct_dae_result_free(ctx, full);
  ct_context_free(ctx);
}

/* ---- Compiled models (ct_dae_jit) ---------------------------------------------- */

/* Robertson with its rates as parameters p (0.04, 1e4, 3e7), in the order
 * of robertson_res. */
static ct_fun *robertson_res_p(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var y[3], yp[3], p[3], r[3];
  ct_graph_input(g, "y", 3, NULL, y);
  ct_graph_input(g, "yp", 3, NULL, yp);
  ct_graph_input(g, "p", 3, NULL, p);
  ct_var r0 = ct_add(ct_mul(y[0], ct_neg(p[0])), ct_mul(ct_mul(y[1], p[1]), y[2]));
  r[1] = ct_sub(ct_sub(ct_neg(r0), ct_mul(ct_mul(y[1], p[2]), y[1])), yp[1]);
  r[0] = ct_sub(r0, yp[0]);
  r[2] = ct_addc(ct_add(ct_add(y[0], y[1]), y[2]), -1.0);
  ct_graph_output(g, "F", 3, r);
  return ct_test_finish(g);
}

/* Counts the JIT's info lines: one per function compiled or loaded. */
static void count_jit_lines(void *ud, ct_log_level level, const char *message) {
  if (level == CT_LOG_INFO && strncmp(message, "jit: ", 5) == 0) ++*(int *)ud;
}

/* Two runs of the same problem are the same to the bit. */
static void expect_same_dae_bits(const ct_dae_result *a, const ct_dae_result *b) {
  assert_int_equal(a->n_out, b->n_out);
  assert_memory_equal(a->t, b->t, a->n_out * sizeof *a->t);
  assert_memory_equal(a->y, b->y, a->n_out * a->n * sizeof *a->y);
  assert_memory_equal(a->yp, b->yp, a->n_out * a->n * sizeof *a->yp);
  assert_memory_equal(&a->stats, &b->stats, sizeof a->stats);
}

/* idasRoberts_dns on a compiled model (dense, KLU): the
 * interpreter's run to the bit, so SUNDIALS' printed lines too. */
static void test_jit_roberts_bitwise(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  const ct_dae_linsol ls[2] = {CT_DAE_LINSOL_DENSE, CT_DAE_LINSOL_KLU};
  for (int k = 0; k < 2; k++) {
    ct_dae_result *a = run_roberts_on(ctx, ls[k], 0), *b = run_roberts_on(ctx, ls[k], 1);
    expect_same_dae_bits(a, b);
    ct_dae_result_free(ctx, a);
    ct_dae_result_free(ctx, b);
  }
  assert_int_equal(ct_dae_jit(ctx, NULL, NULL), CT_ERR_ARG);
  ct_context_free(ctx);
}

/* DAE forward sensitivities and the DAE adjoint of ∫ y3 dt on a compiled
 * model: the functions ct_dae_fsa_new and ct_dae_asa_new build are
 * compiled too, and the results are the interpreter's to the bit. */
static void test_jit_sensitivities_bitwise(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *res = robertson_res_p(ctx), *g = ct_robertson_g(ctx);
  const double p[3] = {0.04, 1e4, 3e7}, y0[3] = {1, 0, 0}, yp0[3] = {-0.04, 0.04, 0};
  const double tout[4] = {0, 0.4, 4, 40};
  ct_dae_fsa_result *fr[2] = {NULL, NULL};
  ct_dae_asa_result *ar[2] = {NULL, NULL};
  for (int k = 0; k < 2; k++) {
    ct_dae *dae = NULL;
    ct_dae_fsa *fsa = NULL;
    ct_dae_asa *asa = NULL;
    assert_int_equal(ct_dae_new(ctx, res, NULL, NULL, &dae), CT_OK);
    if (k) assert_int_equal(ct_dae_jit(ctx, dae, NULL), CT_OK);
    int lines = 0;
    ct_context_set_log_fn(ctx, count_jit_lines, &lines);
    ct_context_set_log_level(ctx, CT_LOG_INFO);
    assert_int_equal(ct_dae_fsa_new(ctx, dae, NULL, 0, &fsa), CT_OK);
    assert_int_equal(lines, k ? 1 : 0); /* the sensitivity residual */
    assert_int_equal(ct_dae_asa_new(ctx, dae, g, NULL, &asa), CT_OK);
    assert_int_equal(lines, k ? 6 : 0); /* F's two VJPs, g's, dF/dy, dF/dy' */
    ct_context_set_log_fn(ctx, NULL, NULL);
    ct_context_set_log_level(ctx, CT_LOG_WARNING);
    ct_dae_fsa_options fo = ct_dae_fsa_default_options();
    fo.dae.rtol = 1e-6;
    fo.dae.atol_v = rob_atol;
    assert_int_equal(ct_dae_fsa_solve(ctx, fsa, p, y0, yp0, tout, 4, &fo, &fr[k]), CT_OK);
    ct_dae_asa_options ao = ct_dae_asa_default_options();
    ao.dae.rtol = 1e-6;
    ao.dae.atol_v = rob_atol;
    ao.dae.calc_ic = 0;
    ao.dae.max_steps = 2500;
    ao.max_steps_b = 1000;
    if (ct_dae_asa_solve(ctx, asa, p, y0, yp0, 0, 40, &ao, &ar[k]) != CT_OK)
      fail_msg("adjoint: %s", ct_errmsg(ctx));
    ct_dae_fsa_free(fsa);
    ct_dae_asa_free(asa);
    ct_dae_free(dae);
  }
  expect_same_dae_bits(fr[0]->dae, fr[1]->dae);
  size_t ns = 4 * 3 * 3;
  assert_memory_equal(fr[0]->s, fr[1]->s, ns * sizeof *fr[0]->s);
  assert_memory_equal(fr[0]->sp, fr[1]->sp, ns * sizeof *fr[0]->sp);
  assert_int_equal(fr[0]->sens_res_evals, fr[1]->sens_res_evals);
  assert_true(ar[0]->backward_done && ar[1]->backward_done);
  assert_memory_equal(&ar[0]->value, &ar[1]->value, sizeof ar[0]->value);
  assert_memory_equal(ar[0]->dJdp, ar[1]->dJdp, 3 * sizeof *ar[0]->dJdp);
  assert_memory_equal(ar[0]->lambda0, ar[1]->lambda0, 3 * sizeof *ar[0]->lambda0);
  assert_memory_equal(&ar[0]->stats_b, &ar[1]->stats_b, sizeof ar[0]->stats_b);
  for (int k = 0; k < 2; k++) {
    ct_dae_fsa_result_free(ctx, fr[k]);
    ct_dae_asa_result_free(ctx, ar[k]);
  }
  ct_fun_free(res);
  ct_fun_free(g);
  ct_context_free(ctx);
}

/* Builds both functions before the sweep so that only the model and the
 * solve see injected failures. */
typedef struct fault_funs {
  ct_fun *res, *roots;
  int jit; /* compile the model (ct_dae_jit) */
} fault_funs;

static int fault_solve(ct_context *ctx, void *ud) {
  fault_funs *f = ud;
  ct_dae *dae = NULL;
  int rc = ct_dae_new(ctx, f->res, NULL, f->roots, &dae);
  if (rc == CT_OK && f->jit) rc = ct_dae_jit(ctx, dae, NULL);
  if (rc < 0) {
    ct_dae_free(dae);
    return rc;
  }
  const double y0[3] = {1, 0, 0}, tout[3] = {0, 0.4, 4};
  ct_dae_options o = ct_dae_default_options();
  o.stop_at_roots = 0;
  ct_dae_result *r = NULL;
  rc = ct_dae_solve(ctx, dae, NULL, y0, NULL, tout, 3, &o, &r);
  ct_dae_result_free(ctx, r);
  ct_dae_free(dae);
  return rc;
}

/* fault_solve with dense output and a progress callback. */
static int fault_solve_dense(ct_context *ctx, void *ud) {
  fault_funs *f = ud;
  ct_dae *dae = NULL;
  int rc = ct_dae_new(ctx, f->res, NULL, f->roots, &dae);
  if (rc < 0) return rc;
  const double y0[3] = {1, 0, 0}, tout[3] = {0, 0.4, 4};
  progress_log log = {.stop_at = 0};
  ct_dae_options o = ct_dae_default_options();
  o.stop_at_roots = 0;
  o.dense_output = 1;
  o.progress = log_progress;
  o.progress_ud = &log;
  ct_dae_result *r = NULL;
  double y[3];
  rc = ct_dae_solve(ctx, dae, NULL, y0, NULL, tout, 3, &o, &r);
  if (rc == CT_OK) rc = ct_dae_result_eval(ctx, r, 2.0, 0, y);
  ct_dae_result_free(ctx, r);
  ct_dae_free(dae);
  return rc;
}

static void test_fault_injection(void **state) {
  (void)state;
  ct_context *fctx = ct_context_new(NULL);
  fault_funs f = {robertson_res(fctx), ct_robertson_roots(fctx), 0};
  long n = ct_test_fault_sweep(fault_solve, &f);
  assert_true(n > 10);
  assert_true(ct_test_fault_sweep(fault_solve_dense, &f) > n);
  f.jit = 1;
  assert_true(ct_test_fault_sweep(fault_solve, &f) > n);
  ct_fun_free(f.res);
  ct_fun_free(f.roots);
  ct_context_free(fctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roberts_reference),
      cmocka_unit_test(test_linear_solvers),
      cmocka_unit_test(test_consistent_init),
      cmocka_unit_test(test_failures),
      cmocka_unit_test(test_singular_matrix),
      cmocka_unit_test(test_init_function),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_dense_output_same_steps),
      cmocka_unit_test(test_dense_output_between_outputs),
      cmocka_unit_test(test_progress_interrupts),
      cmocka_unit_test(test_jit_roberts_bitwise),
      cmocka_unit_test(test_jit_sensitivities_bitwise),
      cmocka_unit_test(test_fault_injection),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
