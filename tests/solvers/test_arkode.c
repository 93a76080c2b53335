/* ODE integration through ARKODE (ERK, DIRK, IMEX) against tight BDF
 * solutions: Lotka-Volterra, Robertson with events, a reaction-diffusion
 * problem split as IMEX; every linear solver with DIRK; an explicit method
 * on a stiff problem running out of steps; refused models and methods; and
 * fault injection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotangent/ode.h"
#include "ct_test.h"
#include "ct_models.h"

/* ---- Models ------------------------------------------------------------------ */

/* 1-D Brusselator reaction-diffusion on `cells` cells (u, v interleaved,
 * fixed ends). split = 0: one output "f"; split = 1: "fe" the reaction
 * (explicit), "fi" the diffusion (implicit); split = 2: "fe" only. */
static ct_fun *brusselator(ct_context *ctx, size_t cells, int split) {
  ct_graph *g = ct_graph_new(ctx);
  size_t n = 2 * cells;
  ct_var *y = malloc(n * sizeof *y), *fe = malloc(n * sizeof *fe),
         *fi = malloc(n * sizeof *fi);
  ct_graph_input(g, "y", n, NULL, y);
  const double A = 1.0, B = 3.0, alpha = 0.02 * (double)(cells + 1) * (double)(cells + 1);
  ct_var one = ct_const(g, 1.0), three = ct_const(g, 3.0);
  for (size_t i = 0; i < cells; i++) {
    ct_var u = y[2 * i], v = y[2 * i + 1];
    ct_var ul = i ? y[2 * i - 2] : one, ur = i + 1 < cells ? y[2 * i + 2] : one;
    ct_var vl = i ? y[2 * i - 1] : three, vr = i + 1 < cells ? y[2 * i + 3] : three;
    ct_var u2v = ct_mul(ct_sqr(u), v);
    fe[2 * i] = ct_sub(ct_addc(u2v, A), ct_mulc(u, B + 1));
    fe[2 * i + 1] = ct_sub(ct_mulc(u, B), u2v);
    fi[2 * i] = ct_mulc(ct_sub(ct_add(ul, ur), ct_mulc(u, 2)), alpha);
    fi[2 * i + 1] = ct_mulc(ct_sub(ct_add(vl, vr), ct_mulc(v, 2)), alpha);
  }
  if (split) {
    ct_graph_output(g, "fe", n, fe);
    if (split == 1) ct_graph_output(g, "fi", n, fi);
  } else {
    for (size_t i = 0; i < n; i++) fe[i] = ct_add(fe[i], fi[i]);
    ct_graph_output(g, "f", n, fe);
  }
  free(y);
  free(fe);
  free(fi);
  return ct_test_finish(g);
}

static void brusselator_y0(size_t cells, double *y0) {
  for (size_t i = 0; i < cells; i++) {
    double x = (double)(i + 1) / (double)(cells + 1);
    y0[2 * i] = 1.0 + sin(2 * 3.14159265358979323846 * x);
    y0[2 * i + 1] = 3.0;
  }
}

static ct_ode *model(ct_context *ctx, ct_fun *rhs, ct_fun *roots) {
  ct_ode *ode = NULL;
  int rc = ct_ode_new(ctx, rhs, NULL, roots, &ode);
  if (rc != CT_OK) fail_msg("ct_ode_new: %s", ct_errmsg(ctx));
  ct_fun_free(rhs);
  ct_fun_free(roots);
  return ode;
}

/* ---- Helpers ------------------------------------------------------------------ */

static ct_ode_result *solve(ct_context *ctx, const ct_ode *ode, const double *p,
                            const double *y0, const double *tout, size_t nt,
                            ct_ode_method method, ct_ode_linsol ls, double rtol,
                            double atol) {
  ct_ode_options o = ct_ode_default_options();
  o.method = method;
  o.linsol = ls;
  o.rtol = rtol;
  o.atol = atol;
  o.max_steps = 100000;
  ct_ode_result *res = NULL;
  if (ct_ode_solve(ctx, ode, p, y0, tout, nt, &o, &res) != CT_OK)
    fail_msg("method %d, linsol %s: %s", (int)method, ct_ode_linsol_name(ls),
             ct_errmsg(ctx));
  assert_int_equal(res->status, CT_OK);
  assert_int_equal(res->n_out, nt);
  return res;
}

/* Every output of a equals b to |a - b| <= rtol |b| + atol. */
static void assert_agree(const ct_ode_result *a, const ct_ode_result *b, double rtol,
                         double atol, const char *what) {
  assert_int_equal(a->n_out, b->n_out);
  for (size_t k = 0; k < a->n_out * a->n; k++)
    if (!(fabs(a->y[k] - b->y[k]) <= rtol * fabs(b->y[k]) + atol))
      fail_msg("%s: output %zu, component %zu: %.10g vs %.10g", what, k / a->n,
               k % a->n, a->y[k], b->y[k]);
}

/* ---- Tests --------------------------------------------------------------------- */

static void test_lotka_volterra_erk_dirk(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_ode *ode = model(ctx, ct_lotka_volterra(ctx), NULL);
  double p[4] = {1.5, 1.0, 3.0, 1.0}, y0[2] = {1, 1}, tout[] = {0, 1, 2, 5, 10};
  ct_ode_result *ref = solve(ctx, ode, p, y0, tout, 5, CT_ODE_BDF, CT_LINSOL_DENSE, 1e-12, 1e-14);
  ct_ode_result *erk = solve(ctx, ode, p, y0, tout, 5, CT_ODE_ERK, CT_LINSOL_AUTO, 1e-9, 1e-12);
  ct_ode_result *dirk = solve(ctx, ode, p, y0, tout, 5, CT_ODE_DIRK, CT_LINSOL_DENSE, 1e-9, 1e-12);
  assert_agree(erk, ref, 1e-6, 1e-9, "ERK");
  assert_agree(dirk, ref, 1e-6, 1e-9, "DIRK");
  /* Statistics: ERK does no linear algebra, DIRK does. */
  assert_int_equal(erk->linsol, CT_LINSOL_AUTO);
  assert_true(erk->stats.steps > 0 && erk->stats.rhs_evals > erk->stats.steps);
  assert_int_equal(erk->stats.jac_evals, 0);
  assert_int_equal(dirk->linsol, CT_LINSOL_DENSE);
  assert_true(dirk->stats.steps > 0 && dirk->stats.rhs_evals > dirk->stats.steps);
  assert_true(dirk->stats.jac_evals > 0 && dirk->stats.lin_setups >= dirk->stats.jac_evals);
  assert_true(dirk->stats.nonlin_iters > 0 && dirk->stats.last_order > 0);
  ct_ode_result_free(ctx, ref);
  ct_ode_result_free(ctx, erk);
  ct_ode_result_free(ctx, dirk);
  ct_ode_free(ode);
  ct_context_free(ctx);
}

static void test_robertson_dirk_with_events(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_ode *ode = model(ctx, ct_robertson_rhs(ctx), ct_robertson_roots(ctx));
  /* Up to t = 40: further on, ARKODE's default nonlinear tolerance makes
   * the DIRK error test fail repeatedly on this problem (see docs/ode.md). */
  double tout[4] = {0, 0.4, 4, 40}, y0[3] = {1, 0, 0}, atol[3] = {1e-10, 1e-14, 1e-10};
  ct_ode_options o = ct_ode_default_options();
  o.stop_at_roots = 0;
  o.atol_v = atol;
  o.max_steps = 100000;
  o.rtol = 1e-10;
  ct_ode_result *ref = NULL, *dirk = NULL;
  assert_int_equal(ct_ode_solve(ctx, ode, NULL, y0, tout, 4, &o, &ref), CT_OK);
  o.method = CT_ODE_DIRK;
  o.rtol = 1e-6;
  if (ct_ode_solve(ctx, ode, NULL, y0, tout, 4, &o, &dirk) != CT_OK)
    fail_msg("Robertson DIRK: %s", ct_errmsg(ctx));
  assert_int_equal(dirk->n_out, 4);
  for (size_t k = 0; k < 4 * 3; k++)
    if (!(fabs(dirk->y[k] - ref->y[k]) <= 1e-4 * fabs(ref->y[k]) + 1e-11))
      fail_msg("Robertson DIRK: output %zu, y%zu = %.8e vs BDF %.8e", k / 3,
               k % 3 + 1, dirk->y[k], ref->y[k]);
  /* The event y3 = 0.01 (y1 = 1e-4 comes only at t ~ 2e7), at BDF's time. */
  assert_int_equal(ref->n_roots_found, 1);
  assert_int_equal(dirk->n_roots_found, 1);
  for (size_t i = 0; i < ref->n_roots_found; i++) {
    assert_true(fabs(dirk->roots[i].t - ref->roots[i].t) <= 1e-4 * ref->roots[i].t);
    assert_int_equal(dirk->roots[i].which[0], ref->roots[i].which[0]);
    assert_int_equal(dirk->roots[i].which[1], ref->roots[i].which[1]);
  }
  assert_true(dirk->stats.root_evals > 0);
  ct_ode_result_free(ctx, ref);
  ct_ode_result_free(ctx, dirk);
  ct_ode_free(ode);
  ct_context_free(ctx);
}

static void test_imex_reaction_diffusion(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  const size_t cells = 40, n = 2 * cells;
  ct_ode *whole = model(ctx, brusselator(ctx, cells, 0), NULL);
  ct_ode *split = model(ctx, brusselator(ctx, cells, 1), NULL);
  assert_int_equal(ct_ode_n_states(split), n);
  /* The Jacobian is that of the diffusion: tridiagonal in each species. */
  assert_int_equal(ct_ode_jac_nnz(split), 3 * n - 4);
  double y0[80], tout[] = {0, 0.5, 1, 2, 5};
  brusselator_y0(cells, y0);
  ct_ode_result *ref = solve(ctx, whole, NULL, y0, tout, 5, CT_ODE_BDF, CT_LINSOL_BAND, 1e-11, 1e-13);
  ct_ode_linsol all[] = {CT_LINSOL_AUTO, CT_LINSOL_DENSE, CT_LINSOL_BAND, CT_LINSOL_KLU,
                         CT_LINSOL_GMRES};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
    ct_ode_result *imex = solve(ctx, split, NULL, y0, tout, 5, CT_ODE_IMEX, all[i], 1e-8, 1e-11);
    char what[64];
    snprintf(what, sizeof what, "IMEX %s", ct_ode_linsol_name(all[i]));
    assert_agree(imex, ref, 1e-5, 1e-8, what);
    assert_true(imex->stats.rhs_evals > imex->stats.steps);
    ct_ode_result_free(ctx, imex);
  }
  ct_ode_result_free(ctx, ref);
  ct_ode_free(whole);
  ct_ode_free(split);
  ct_context_free(ctx);
}

static void test_dirk_linear_solvers_agree(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  const size_t cells = 40;
  ct_ode *ode = model(ctx, brusselator(ctx, cells, 0), NULL);
  double y0[80], tout[] = {0, 0.5, 1, 2, 5};
  brusselator_y0(cells, y0);
  ct_ode_result *ref = solve(ctx, ode, NULL, y0, tout, 5, CT_ODE_BDF, CT_LINSOL_BAND, 1e-11, 1e-13);
  ct_ode_linsol all[] = {CT_LINSOL_AUTO, CT_LINSOL_DENSE, CT_LINSOL_BAND, CT_LINSOL_KLU,
                         CT_LINSOL_GMRES};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
    ct_ode_result *dirk = solve(ctx, ode, NULL, y0, tout, 5, CT_ODE_DIRK, all[i], 1e-8, 1e-11);
    char what[64];
    snprintf(what, sizeof what, "DIRK %s", ct_ode_linsol_name(all[i]));
    assert_agree(dirk, ref, 1e-5, 1e-8, what);
    if (all[i] == CT_LINSOL_GMRES)
      assert_true(dirk->stats.jtimes_evals > 0 && dirk->stats.lin_iters > 0);
    else
      assert_true(dirk->stats.jac_evals > 0);
    if (all[i] == CT_LINSOL_AUTO) assert_int_equal(dirk->linsol, CT_LINSOL_BAND);
    ct_ode_result_free(ctx, dirk);
  }
  ct_ode_result_free(ctx, ref);
  ct_ode_free(ode);
  ct_context_free(ctx);
}

static void test_erk_stiff_too_much_work(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_ode *ode = model(ctx, ct_robertson_rhs(ctx), NULL);
  double y0[3] = {1, 0, 0}, tout[] = {0, 1e-3, 40};
  ct_ode_options o = ct_ode_default_options();
  o.method = CT_ODE_ERK;
  o.max_steps = 200;
  ct_ode_result *res = NULL;
  assert_int_equal(ct_ode_solve(ctx, ode, NULL, y0, tout, 3, &o, &res), CT_ERR_SOLVER);
  assert_non_null(res);
  assert_int_equal(res->status, CT_ERR_SOLVER);
  assert_non_null(strstr(res->message, "too much work"));
  assert_non_null(strstr(ct_errmsg(ctx), "too much work"));
  /* The partial result: the initial value and t = 1e-3; stopped short of 40. */
  assert_int_equal(res->n_out, 2);
  assert_true(res->t_reached > 1e-3 && res->t_reached < 40);
  assert_true(fabs(res->y[3] + res->y[4] + res->y[5] - 1) < 1e-6);
  assert_true(res->stats.steps >= 200);
  ct_ode_result_free(ctx, res);
  ct_ode_free(ode);
  ct_context_free(ctx);
}

static void test_refused(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_ode *ode = NULL;
  /* A split right-hand side without "fi". */
  ct_fun *fe_only = brusselator(ctx, 4, 2);
  assert_int_equal(ct_ode_new(ctx, fe_only, NULL, NULL, &ode), CT_ERR_ARG);
  assert_null(ode);
  assert_non_null(strstr(ct_errmsg(ctx), "no 'fi'"));
  ct_fun_free(fe_only);

  double y0[8], tout[] = {0, 1};
  brusselator_y0(4, y0);
  ct_ode *whole = model(ctx, brusselator(ctx, 4, 0), NULL);
  ct_ode *split = model(ctx, brusselator(ctx, 4, 1), NULL);
  ct_ode_options o = ct_ode_default_options();
  ct_ode_result *res = NULL;
  /* IMEX on a model with a single "f". */
  o.method = CT_ODE_IMEX;
  assert_int_equal(ct_ode_solve(ctx, whole, NULL, y0, tout, 2, &o, &res), CT_ERR_ARG);
  assert_null(res);
  assert_non_null(strstr(ct_errmsg(ctx), "'fe'"));
  /* Anything but IMEX on a split model. */
  ct_ode_method others[] = {CT_ODE_BDF, CT_ODE_ADAMS, CT_ODE_ERK, CT_ODE_DIRK};
  for (size_t i = 0; i < 4; i++) {
    o.method = others[i];
    assert_int_equal(ct_ode_solve(ctx, split, NULL, y0, tout, 2, &o, &res), CT_ERR_ARG);
    assert_null(res);
    assert_non_null(strstr(ct_errmsg(ctx), "CT_ODE_IMEX"));
  }
  o.method = (ct_ode_method)7;
  assert_int_equal(ct_ode_solve(ctx, whole, NULL, y0, tout, 2, &o, &res), CT_ERR_ARG);
  ct_ode_free(whole);
  ct_ode_free(split);
  ct_context_free(ctx);
}

/* ---- Dense output and statistics ------------------------------------------------- */

/* A solve of `ode` with the options, failing the test on error. */
static ct_ode_result *solve_opts(ct_context *ctx, const ct_ode *ode, const double *p,
                                 const double *y0, const double *tout, size_t nt,
                                 const ct_ode_options *o) {
  ct_ode_result *res = NULL;
  if (ct_ode_solve(ctx, ode, p, y0, tout, nt, o, &res) != CT_OK)
    fail_msg("method %d: %s", (int)o->method, ct_errmsg(ctx));
  return res;
}

/* With dense output ARKODE steps one step at a time (ARK_ONE_STEP) yet
 * takes the steps of ARK_NORMAL: same statistics, outputs and events; and
 * between the outputs the interpolant is ARKODE's own (ARKStepGetDky): the
 * outputs of a normal solve at 200 more times (same first output time, so
 * the same initial step) agree with it. */
static void expect_dense_like_normal(ct_context *ctx, const ct_ode *ode, const double *p,
                                     const double *y0, const double *tout, size_t nt,
                                     ct_ode_options o) {
  enum { NFINE = 202 };
  double fine[NFINE] = {tout[0], tout[1]};
  for (int i = 2; i < NFINE; i++)
    fine[i] = tout[1] + (tout[nt - 1] - tout[1]) * (i - 1) / (NFINE - 2);
  o.dense_output = 0;
  ct_ode_result *plain = solve_opts(ctx, ode, p, y0, tout, nt, &o);
  ct_ode_result *many = solve_opts(ctx, ode, p, y0, fine, NFINE, &o);
  o.dense_output = 1;
  ct_ode_result *dense = solve_opts(ctx, ode, p, y0, tout, nt, &o);
  size_t n = plain->n;
  assert_int_equal(dense->n_out, plain->n_out);
  assert_memory_equal(dense->y, plain->y, plain->n_out * n * sizeof(double));
  assert_int_equal(dense->stats.steps, plain->stats.steps);
  assert_int_equal(dense->stats.rhs_evals, plain->stats.rhs_evals);
  assert_int_equal(dense->stats.err_test_fails, plain->stats.err_test_fails);
  assert_int_equal(dense->stats.nonlin_iters, plain->stats.nonlin_iters);
  assert_int_equal(many->stats.steps, plain->stats.steps);
  assert_int_equal(dense->n_roots_found, plain->n_roots_found);
  for (size_t i = 0; i < plain->n_roots_found; i++)
    assert_true(fabs(dense->roots[i].t - plain->roots[i].t) <= 1e-10 * plain->roots[i].t);
  double *y = malloc(n * sizeof *y);
  for (int i = 0; i < NFINE; i++) {
    assert_int_equal(ct_ode_result_eval(ctx, dense, fine[i], 0, y), CT_OK);
    for (size_t c = 0; c < n; c++)
      if (!(fabs(y[c] - many->y[i * n + c]) <= 1e-10 * fabs(many->y[i * n + c]) + 1e-15))
        fail_msg("method %d, t = %g: y%zu = %.17g dense, %.17g normal", (int)o.method,
                 fine[i], c, y[c], many->y[i * n + c]);
  }
  /* Statistics: the initial step, the current time and step. */
  const ct_ode_stats *s = &dense->stats;
  assert_true(s->init_step > 0 && s->init_step <= tout[1] - tout[0]);
  assert_true(s->current_time >= tout[nt - 1] && s->current_step > 0);
  assert_true(plain->stats.init_step == s->init_step);
  free(y);
  ct_ode_result_free(ctx, plain);
  ct_ode_result_free(ctx, many);
  ct_ode_result_free(ctx, dense);
}

/* y' = y - 2 while y > 0 (else -y - 2), traced with ct_branch at y = 1:
 * from y(0) = 1 the guard flips at t = ln 2 and every method stops there. */
static void test_guard_flip_stops(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_graph *g = ct_graph_new(ctx);
  double at = 1;
  ct_var y;
  ct_graph_input(g, "y", 1, &at, &y);
  ct_var f = ct_branch(ct_gt(y, ct_const(g, 0))) ? ct_addc(y, -2) : ct_addc(ct_neg(y), -2);
  ct_graph_output(g, "f", 1, &f);
  ct_ode *ode = model(ctx, ct_test_finish(g), NULL);
  double y0 = 1, tout[] = {0, 0.5, 1, 2};
  ct_ode_method methods[] = {CT_ODE_ERK, CT_ODE_DIRK};
  for (int i = 0; i < 2; i++) {
    ct_ode_options o = ct_ode_default_options();
    o.method = methods[i];
    o.dense_output = i;
    ct_ode_result *res = NULL;
    assert_int_equal(ct_ode_solve(ctx, ode, NULL, &y0, tout, 4, &o, &res), CT_ERR_SOLVER);
    assert_int_equal(res->n_out, 2);
    assert_true(fabs(res->y[1] - (2 - exp(0.5))) < 1e-5);
    printf("%s: %s\n", i ? "DIRK" : "ERK", res->message);
    /* ARKODE's current time after a failure is that of the failing stage. */
    assert_true(res->t_reached >= 0.5 && res->t_reached < 1);
    assert_non_null(strstr(res->message, "the right-hand side took a different branch"));
    double yt[1];
    if (i) { /* the dense output ends with the last step, before the kink */
      assert_int_equal(ct_ode_result_eval(ctx, res, 0.6, 0, yt), CT_OK);
      assert_true(fabs(yt[0] - (2 - exp(0.6))) < 1e-4);
      assert_int_equal(ct_ode_result_eval(ctx, res, log(2.0) + 1e-3, 0, yt), CT_ERR_ARG);
    }
    ct_ode_result_free(ctx, res);
  }
  ct_ode_free(ode);
  ct_context_free(ctx);
}

static void test_dense_output(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_ode *lv = model(ctx, ct_lotka_volterra(ctx), NULL);
  double p[4] = {1.5, 1.0, 3.0, 1.0}, y0[2] = {1, 1}, tout[] = {0, 0.05, 4, 10};
  ct_ode_options o = ct_ode_default_options();
  o.max_steps = 100000;
  o.method = CT_ODE_ERK;
  expect_dense_like_normal(ctx, lv, p, y0, tout, 4, o);
  o.method = CT_ODE_DIRK;
  expect_dense_like_normal(ctx, lv, p, y0, tout, 4, o);
  ct_ode *rob = model(ctx, ct_robertson_rhs(ctx), ct_robertson_roots(ctx));
  double r0[3] = {1, 0, 0}, rt[] = {0, 0.4, 4, 40}, atol[3] = {1e-10, 1e-14, 1e-10};
  o.stop_at_roots = 0;
  o.atol_v = atol;
  expect_dense_like_normal(ctx, rob, NULL, r0, rt, 4, o);
  ct_ode_free(lv);
  ct_ode_free(rob);
  ct_context_free(ctx);
}

/* ---- Progress and interruption -------------------------------------------------- */

/* The times a progress callback saw; it asks to stop at call stop_at
 * (0: never). */
typedef struct progress_log {
  double t[8192];
  int n, stop_at;
} progress_log;

static int log_progress(double t, void *ud) {
  progress_log *l = ud;
  if (l->n < 8192) l->t[l->n] = t;
  l->n++;
  return l->stop_at && l->n >= l->stop_at;
}

/* ERK, DIRK and IMEX with a progress callback: the outputs of a solve
 * without it to the bit, the same statistics, one call per step with
 * increasing times ending at T; returning 1 at the 25th call stops there
 * with CT_ERR_INTERRUPTED and the outputs reached. */
static void expect_progress(ct_context *ctx, const ct_ode *ode, const double *p,
                            const double *y0, const double *tout, size_t nt,
                            ct_ode_options o) {
  static progress_log log;
  ct_ode_result *plain = solve_opts(ctx, ode, p, y0, tout, nt, &o);
  memset(&log, 0, sizeof log);
  o.progress = log_progress;
  o.progress_ud = &log;
  ct_ode_result *res = solve_opts(ctx, ode, p, y0, tout, nt, &o);
  size_t n = plain->n;
  assert_int_equal(res->n_out, plain->n_out);
  assert_memory_equal(res->y, plain->y, plain->n_out * n * sizeof(double));
  ct_ode_stats a = plain->stats, b = res->stats;
  a.root_evals = b.root_evals = 0;
  assert_memory_equal(&a, &b, sizeof a);
  assert_int_equal(log.n, res->stats.steps);
  for (int i = 1; i < log.n; i++) assert_true(log.t[i] > log.t[i - 1]);
  assert_true(log.t[log.n - 1] == tout[nt - 1]);
  memset(&log, 0, sizeof log);
  log.stop_at = 25;
  ct_ode_result *cut = NULL;
  assert_int_equal(ct_ode_solve(ctx, ode, p, y0, tout, nt, &o, &cut), CT_ERR_INTERRUPTED);
  assert_int_equal(cut->status, CT_ERR_INTERRUPTED);
  assert_int_equal(cut->stats.steps, 25);
  assert_true(cut->t_reached == log.t[24]);
  assert_non_null(strstr(cut->message, ": interrupted"));
  assert_true(cut->n_out >= 1 && cut->n_out < nt);
  assert_memory_equal(cut->y, plain->y, cut->n_out * n * sizeof(double));
  ct_ode_result_free(ctx, plain);
  ct_ode_result_free(ctx, res);
  ct_ode_result_free(ctx, cut);
}

static void test_progress(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_ode *lv = model(ctx, ct_lotka_volterra(ctx), NULL);
  double p[4] = {1.5, 1.0, 3.0, 1.0}, y0[2] = {1, 1}, tout[] = {0, 0.05, 4, 10};
  ct_ode_options o = ct_ode_default_options();
  o.max_steps = 100000;
  o.method = CT_ODE_ERK;
  expect_progress(ctx, lv, p, y0, tout, 4, o);
  o.method = CT_ODE_DIRK;
  expect_progress(ctx, lv, p, y0, tout, 4, o);
  enum { CELLS = 20 };
  ct_ode *bz = model(ctx, brusselator(ctx, CELLS, 1), NULL);
  double b0[2 * CELLS], bt[] = {0, 0.5, 2};
  brusselator_y0(CELLS, b0);
  o.method = CT_ODE_IMEX;
  expect_progress(ctx, bz, NULL, b0, bt, 3, o);
  ct_ode_free(lv);
  ct_ode_free(bz);
  ct_context_free(ctx);
}

/* One DIRK solve with a fallible allocator: every failure is reported and
 * nothing leaks. */
static int build_and_solve(ct_context *ctx, void *ud) {
  (void)ud;
  ct_graph *g = ct_graph_new(ctx);
  if (!g) return CT_ERR_NOMEM;
  ct_var y[2], p[4];
  ct_graph_input(g, "y", 2, NULL, y);
  ct_graph_input(g, "p", 4, NULL, p);
  ct_var uv = ct_mul(y[0], y[1]);
  ct_var f[2] = {ct_sub(ct_mul(p[0], y[0]), ct_mul(p[1], uv)),
                 ct_sub(ct_mul(p[3], uv), ct_mul(p[2], y[1]))};
  ct_graph_output(g, "f", 2, f);
  ct_fun *rhs = NULL;
  int rc = ct_graph_finalize(g, &rhs);
  ct_graph_free(g);
  if (rc < 0) return rc;
  ct_ode *ode = NULL;
  rc = ct_ode_new(ctx, rhs, NULL, NULL, &ode);
  ct_fun_free(rhs);
  if (rc < 0) return rc;
  double pv[4] = {1.5, 1.0, 3.0, 1.0}, y0[2] = {1, 1}, tout[] = {0, 1, 2};
  ct_ode_options o = ct_ode_default_options();
  o.method = CT_ODE_DIRK;
  ct_ode_result *res = NULL;
  rc = ct_ode_solve(ctx, ode, pv, y0, tout, 3, &o, &res);
  ct_ode_result_free(ctx, res);
  ct_ode_free(ode);
  return rc;
}

static void test_fault_injection(void **state) {
  (void)state;
  assert_true(ct_test_fault_sweep(build_and_solve, NULL) > 10);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lotka_volterra_erk_dirk),
      cmocka_unit_test(test_robertson_dirk_with_events),
      cmocka_unit_test(test_imex_reaction_diffusion),
      cmocka_unit_test(test_dirk_linear_solvers_agree),
      cmocka_unit_test(test_erk_stiff_too_much_work),
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_dense_output),
      cmocka_unit_test(test_guard_flip_stops),
      cmocka_unit_test(test_progress),
      cmocka_unit_test(test_fault_injection),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
