/* Second-order adjoints (ct_asa2_new, ct_asa_hvp): SUNDIALS'
 * cvsHessian_ASA_FSA reproduced (G, dG/dp and the full 2x2 Hessian from the
 * directions e1, e2), H u against central differences of adjoint gradients
 * (ct_asa_solve at p +- h u) on Lotka-Volterra with integral and final-time
 * terms and with y0(p), the symmetry u^T H v = v^T H u, bad arguments,
 * failures in either phase (partial results kept) and fault injection;
 * the same for the observation term Σ_k h(t_k, y(t_k), p, d_k). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotangent/adjoint.h"
#include "ct_test.h"
#include "ct_models.h"

/* ---- Models ------------------------------------------------------------------ */

static ct_ode *new_model(ct_context *ctx, ct_fun *rhs, ct_fun *y0) {
  ct_ode *m = NULL;
  int rc = ct_ode_new(ctx, rhs, y0, NULL, &m);
  ct_fun_free(rhs);
  ct_fun_free(y0);
  if (rc != CT_OK) fail_msg("ct_ode_new: %s", ct_errmsg(ctx));
  return m;
}

/* cvsHessian_ASA_FSA's model: y1' = -p1 y1^2 - y3, y2' = -y2,
 * y3' = -p2^2 y2 y3. */
static ct_fun *hessian_example_rhs(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var y[3], p[2], f[3];
  ct_graph_input(g, "y", 3, NULL, y);
  ct_graph_input(g, "p", 2, NULL, p);
  f[0] = ct_sub(ct_mul(ct_neg(p[0]), ct_sqr(y[0])), y[2]);
  f[1] = ct_neg(y[1]);
  f[2] = ct_mul(ct_mul(ct_neg(ct_sqr(p[1])), y[1]), y[2]);
  ct_graph_output(g, "f", 3, f);
  return ct_test_finish(g);
}

/* Its objective integrand g = (y1^2 + y2^2 + y3^2) / 2. */
static ct_fun *hessian_example_g(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var y[3];
  ct_graph_input(g, "y", 3, NULL, y);
  ct_var v = ct_mulc(ct_add(ct_add(ct_sqr(y[0]), ct_sqr(y[1])), ct_sqr(y[2])), 0.5);
  ct_graph_output(g, "g", 1, &v);
  return ct_test_finish(g);
}

/* Lotka-Volterra with p = (a, b, c, d) entering nonlinearly too:
 * x' = a x - b x y, y' = d x y - c y + 0.1 sin(a) x. With `bad_after`, the
 * first equation gets 1e-3 sqrt(bad_after - t): NaN once t > bad_after. */
static ct_fun *lv_rhs(ct_context *ctx, double bad_after) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var t, u[2], p[4], f[2];
  ct_graph_input(g, "t", 1, NULL, &t);
  ct_graph_input(g, "y", 2, NULL, u);
  ct_graph_input(g, "p", 4, NULL, p);
  ct_lotka_volterra_terms(u, p, f);
  f[1] = ct_add(f[1], ct_mulc(ct_mul(ct_sin(p[0]), u[0]), 0.1));
  if (bad_after > 0)
    f[0] = ct_add(f[0], ct_mulc(ct_sqrt(ct_addc(ct_neg(t), bad_after)), 1e-3));
  ct_graph_output(g, "f", 2, f);
  return ct_test_finish(g);
}

/* g = x^2 + b y^2 + a b x (depends on y and p, second derivatives in both). */
static ct_fun *lv_g(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var u[2], p[4];
  ct_graph_input(g, "y", 2, NULL, u);
  ct_graph_input(g, "p", 4, NULL, p);
  ct_var v = ct_add(ct_add(ct_sqr(u[0]), ct_mul(p[1], ct_sqr(u[1]))),
                    ct_mul(ct_mul(p[0], p[1]), u[0]));
  ct_graph_output(g, "g", 1, &v);
  return ct_test_finish(g);
}

/* phi = x y + c^2 x. */
static ct_fun *lv_phi(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var u[2], p[4];
  ct_graph_input(g, "y", 2, NULL, u);
  ct_graph_input(g, "p", 4, NULL, p);
  ct_var v = ct_add(ct_mul(u[0], u[1]), ct_mul(ct_sqr(p[2]), u[0]));
  ct_graph_output(g, "phi", 1, &v);
  return ct_test_finish(g);
}

/* y0(p) = (2 c / 3, a d / 1.5): nonlinear in p. */
static ct_fun *lv_y0(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var p[4], y0[2];
  ct_graph_input(g, "p", 4, NULL, p);
  y0[0] = ct_mulc(p[2], 2.0 / 3.0);
  y0[1] = ct_mulc(ct_mul(p[0], p[3]), 1.0 / 1.5);
  ct_graph_output(g, "y0", 2, y0);
  return ct_test_finish(g);
}

/* g = x^2 + sqrt(x max(t - 1, 0)): finite, but its derivative in x is
 * 0 * inf = NaN before t = 1, which only the backward phase sees. */
static ct_fun *lv_g_bad_gradient(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var t, u[2];
  ct_graph_input(g, "t", 1, NULL, &t);
  ct_graph_input(g, "y", 2, NULL, u);
  ct_var z = ct_mul(u[0], ct_max(ct_addc(t, -1.0), ct_const(g, 0.0)));
  ct_var v = ct_add(ct_sqr(u[0]), ct_sqrt(z));
  ct_graph_output(g, "g", 1, &v);
  return ct_test_finish(g);
}

/* h = (1 + 0.1 t) (x - d0)^2 + c (y - d1)^2 + 0.1 a^2 x: a data misfit
 * with second derivatives in y, p and across. */
static ct_fun *lv_h(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var t, u[2], p[4], d[2];
  ct_graph_input(g, "t", 1, NULL, &t);
  ct_graph_input(g, "y", 2, NULL, u);
  ct_graph_input(g, "p", 4, NULL, p);
  ct_graph_input(g, "d", 2, NULL, d);
  ct_var ex = ct_sub(u[0], d[0]), ey = ct_sub(u[1], d[1]);
  ct_var v = ct_mul(ct_addc(ct_mulc(t, 0.1), 1.0), ct_sqr(ex));
  v = ct_add(v, ct_mul(p[2], ct_sqr(ey)));
  v = ct_add(v, ct_mulc(ct_mul(ct_sqr(p[0]), u[0]), 0.1));
  ct_graph_output(g, "h", 1, &v);
  return ct_test_finish(g);
}

/* h = x^2 y (no data input). */
static ct_fun *lv_h_no_data(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var u[2];
  ct_graph_input(g, "y", 2, NULL, u);
  ct_var v = ct_mul(ct_sqr(u[0]), u[1]);
  ct_graph_output(g, "h", 1, &v);
  return ct_test_finish(g);
}

static const double lv_p[4] = {1.5, 1.0, 3.0, 1.0}, lv_y0v[2] = {1.0, 1.0};
static const double lv_T = 2.0;

/* Tight tolerances everywhere: the differences below are compared at 1e-5. */
static ct_asa_options tight_options(void) {
  ct_asa_options o = ct_asa_default_options();
  o.ode.rtol = 1e-11;
  o.ode.atol = 1e-12;
  o.ode.max_steps = 100000;
  o.rtol_b = 1e-11;
  o.atol_b = 1e-12;
  o.rtol_q = 1e-11;
  o.atol_q = 1e-12;
  o.max_steps_b = 100000;
  return o;
}

/* ---- SUNDIALS' cvsHessian_ASA_FSA ------------------------------------------------ */

/* "%12.4e" of v equals the example's printed `ref`. */
static void expect_printed(const char *what, double v, const char *ref) {
  char mine[32], want[32];
  snprintf(mine, sizeof mine, "%12.4e", v);
  snprintf(want, sizeof want, "%12s", ref);
  if (strcmp(mine, want)) fail_msg("%s: got %s, the example prints %s", what, mine, want);
}

/* The example's settings: BDF, dense, rtol 1e-8 and atol 1e-8 for the
 * states, quadratures and backward problem, 100 steps between checkpoints,
 * polynomial interpolation, quadratures in the error test. */
static ct_asa_hvp_result *run_hessian_example(ct_context *ctx, const ct_asa2 *a,
                                              const double *u) {
  ct_asa_options o = ct_asa_default_options();
  o.ode.linsol = CT_LINSOL_DENSE;
  o.ode.rtol = o.ode.atol = 1e-8;
  o.rtol_q = o.atol_q = 1e-8;
  o.rtol_b = o.atol_b = 1e-8;
  o.checkpoint_steps = 100;
  o.interp = CT_ASA_POLYNOMIAL;
  o.quad_err_con = 1;
  double p[2] = {1.0, 2.0}, y0[3] = {1, 1, 1};
  ct_asa_hvp_result *r = NULL;
  if (ct_asa_hvp(ctx, a, p, y0, 0.0, 2.0, u, &o, &r) != CT_OK)
    fail_msg("ct_asa_hvp: %s", ct_errmsg(ctx));
  return r;
}

static void test_cvs_hessian_example(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_ode *m = new_model(ctx, hessian_example_rhs(ctx), NULL);
  ct_fun *g = hessian_example_g(ctx);
  ct_asa2 *a = NULL;
  assert_int_equal(ct_asa2_new(ctx, m, g, NULL, &a), CT_OK);
  ct_fun_free(g);
  static const double e[2][2] = {{1, 0}, {0, 1}};
  static const char *ys[2][3] = {{"-1.6714e-01", "0.0000e+00", "0.0000e+00"},
                                 {"2.1339e-01", "0.0000e+00", "-1.0885e-01"}};
  static const char *grad[2] = {"-1.2838e-01", "1.8036e-02"};
  static const char *hess[2][2] = {{"1.5628e-01", "-7.8678e-02"},
                                   {"-7.8678e-02", "8.9814e-02"}};
  static const char *y_T[3] = {"2.2732e-01", "1.3534e-01", "3.1472e-02"};
  for (int k = 0; k < 2; k++) {
    ct_asa_hvp_result *r = run_hessian_example(ctx, a, e[k]);
    if (getenv("CT_ASA_VERBOSE"))
      printf("u = e%d: G %.10e dG/dp %.10e %.10e Hu %.10e %.10e; fwd steps %ld "
             "ncheck %ld, bwd steps %ld nni %ld ncfn %ld setups %ld\n", k + 1, r->value, r->dJdp[0], r->dJdp[1],
             r->Hu[0], r->Hu[1], r->ode.stats.steps, r->n_checkpoints,
             r->stats_b.steps, r->stats_b.nonlin_iters, r->stats_b.nonlin_conv_fails, r->stats_b.lin_setups);
    assert_true(r->backward_done);
    expect_printed("G", r->value, "5.3088e-01");
    for (int i = 0; i < 3; i++) {
      expect_printed("y(T)", r->ode.y[3 + i], y_T[i]);
      expect_printed("yS(T)", r->s_T[i] == 0 ? 0.0 : r->s_T[i], ys[k][i]);
    }
    for (int j = 0; j < 2; j++) {
      expect_printed("dG/dp", r->dJdp[j], grad[j]);
      expect_printed("H", r->Hu[j], hess[j][k]); /* column k of H */
    }
    assert_true(r->n_checkpoints >= 1 && r->stats_b.steps > 0 && r->quad_evals_b > 0);
    assert_true(r->sens_rhs_evals > 0 && r->stats_b.jac_evals > 0);
    ct_asa_hvp_result_free(ctx, r);
  }
  ct_asa2_free(a);
  ct_ode_free(m);
  ct_context_free(ctx);
}

/* ---- Central differences of adjoint gradients ---------------------------------- */

/* dJ/dp at p + h u by ct_asa_solve with the same objective. */
static void adjoint_gradient(ct_context *ctx, const ct_asa *asa, const double *p,
                             double h, const double *u, double *grad) {
  double q[4];
  for (int j = 0; j < 4; j++) q[j] = p[j] + h * u[j];
  ct_asa_options o = tight_options();
  ct_asa_result *r = NULL;
  if (ct_asa_solve(ctx, asa, q, lv_y0v, 0.0, lv_T, &o, &r) != CT_OK)
    fail_msg("ct_asa_solve: %s", ct_errmsg(ctx));
  memcpy(grad, r->dJdp, 4 * sizeof *grad);
  ct_asa_result_free(ctx, r);
}

/* Checks H u of ct_asa_hvp against (grad(p + h u) - grad(p - h u)) / 2h,
 * to 1e-5 relative to the largest component, and dJ/dp against
 * ct_asa_solve's at p (1e-8). */
static void expect_hvp_matches_differences(ct_context *ctx, ct_fun *y0f, const char *what) {
  ct_ode *m = new_model(ctx, lv_rhs(ctx, 0), y0f);
  ct_fun *g = lv_g(ctx), *phi = lv_phi(ctx);
  ct_asa2 *a2 = NULL;
  ct_asa *a = NULL;
  assert_int_equal(ct_asa2_new(ctx, m, g, phi, &a2), CT_OK);
  assert_int_equal(ct_asa_new(ctx, m, g, phi, &a), CT_OK);
  ct_fun_free(g);
  ct_fun_free(phi);
  static const double u[4] = {0.3, -0.7, 0.5, 1.1};
  ct_asa_options o = tight_options();
  ct_asa_hvp_result *r = NULL;
  if (ct_asa_hvp(ctx, a2, lv_p, lv_y0v, 0.0, lv_T, u, &o, &r) != CT_OK)
    fail_msg("%s: ct_asa_hvp: %s", what, ct_errmsg(ctx));
  double gp[4], gm[4], g0[4], h = 1e-4, scale = 0;
  adjoint_gradient(ctx, a, lv_p, h, u, gp);
  adjoint_gradient(ctx, a, lv_p, -h, u, gm);
  adjoint_gradient(ctx, a, lv_p, 0, u, g0);
  for (int j = 0; j < 4; j++) scale = fmax(scale, fabs(r->Hu[j]));
  assert_true(scale > 1e-3);
  for (int j = 0; j < 4; j++) {
    double fd = (gp[j] - gm[j]) / (2 * h);
    if (getenv("CT_ASA_VERBOSE"))
      printf("%s: Hu[%d] = %.12e, differences %.12e\n", what, j, r->Hu[j], fd);
    if (fabs(r->Hu[j] - fd) > 1e-5 * scale)
      fail_msg("%s: Hu[%d] = %.10e, differences %.10e", what, j, r->Hu[j], fd);
    if (!ct_rel_close(r->dJdp[j], g0[j], 1e-8))
      fail_msg("%s: dJ/dp[%d] = %.12e, ct_asa_solve %.12e", what, j, r->dJdp[j], g0[j]);
  }
  ct_asa_hvp_result_free(ctx, r);
  ct_asa2_free(a2);
  ct_asa_free(a);
  ct_ode_free(m);
}

static void test_lv_against_differences(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  expect_hvp_matches_differences(ctx, NULL, "y0 given");
  ct_context_free(ctx);
}

static void test_y0_of_p_against_differences(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  expect_hvp_matches_differences(ctx, lv_y0(ctx), "y0(p)");
  ct_context_free(ctx);
}

/* Stiff Robertson (p = (0.04, 1e4, 3e7), J = ∫_0^T y3 dt, T = 40): H u
 * along a direction relative to p against central differences of
 * ct_asa_solve gradients (1e-5 of the largest component). A stiff backward
 * phase needs the right Newton matrix: with a wrong one CVODES fails or
 * takes many more steps, so the step count is bounded too. */
static void test_robertson_against_differences(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_ode *m = new_model(ctx, ct_robertson_rhs_p(ctx), NULL);
  ct_fun *g = ct_robertson_g(ctx);
  ct_asa2 *a2 = NULL;
  ct_asa *a = NULL;
  assert_int_equal(ct_asa2_new(ctx, m, g, NULL, &a2), CT_OK);
  assert_int_equal(ct_asa_new(ctx, m, g, NULL, &a), CT_OK);
  ct_fun_free(g);
  double p[3] = {0.04, 1.0e4, 3.0e7}, y0[3] = {1, 0, 0}, T = 40.0;
  double u[3] = {0.3 * p[0], -0.5 * p[1], 0.2 * p[2]};
  ct_asa_options o = tight_options();
  o.ode.atol = 1e-14;
  o.atol_b = 1e-10;
  o.atol_q = 1e-10;
  ct_asa_hvp_result *r = NULL;
  if (ct_asa_hvp(ctx, a2, p, y0, 0.0, T, u, &o, &r) != CT_OK)
    fail_msg("ct_asa_hvp: %s", ct_errmsg(ctx));
  double grad[2][3], h = 1e-4, scale = 0;
  for (int side = 0; side < 2; side++) {
    double q[3];
    for (int j = 0; j < 3; j++) q[j] = p[j] + (side ? -h : h) * u[j];
    ct_asa_result *ra = NULL;
    if (ct_asa_solve(ctx, a, q, y0, 0.0, T, &o, &ra) != CT_OK)
      fail_msg("ct_asa_solve: %s", ct_errmsg(ctx));
    memcpy(grad[side], ra->dJdp, sizeof grad[side]);
    ct_asa_result_free(ctx, ra);
  }
  for (int j = 0; j < 3; j++) scale = fmax(scale, fabs(r->Hu[j] * p[j]));
  for (int j = 0; j < 3; j++) {
    double fd = (grad[0][j] - grad[1][j]) / (2 * h);
    if (getenv("CT_ASA_VERBOSE"))
      printf("Robertson: Hu[%d] = %.12e, differences %.12e\n", j, r->Hu[j], fd);
    if (fabs(r->Hu[j] - fd) * p[j] > 1e-5 * scale)
      fail_msg("Robertson: Hu[%d] = %.10e, differences %.10e", j, r->Hu[j], fd);
  }
  if (getenv("CT_ASA_VERBOSE"))
    printf("Robertson: fwd steps %ld, bwd steps %ld nni %ld ncfn %ld setups %ld\n",
           r->ode.stats.steps, r->stats_b.steps, r->stats_b.nonlin_iters,
           r->stats_b.nonlin_conv_fails, r->stats_b.lin_setups);
  assert_true(r->stats_b.steps < 2 * r->ode.stats.steps);
  ct_asa_hvp_result_free(ctx, r);
  ct_asa2_free(a2);
  ct_asa_free(a);
  ct_ode_free(m);
  ct_context_free(ctx);
}

/* u^T H v = v^T H u for two directions. */
static void test_symmetry(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_ode *m = new_model(ctx, lv_rhs(ctx, 0), lv_y0(ctx));
  ct_fun *g = lv_g(ctx), *phi = lv_phi(ctx);
  ct_asa2 *a = NULL;
  assert_int_equal(ct_asa2_new(ctx, m, g, phi, &a), CT_OK);
  ct_fun_free(g);
  ct_fun_free(phi);
  static const double u[4] = {0.3, -0.7, 0.5, 1.1}, v[4] = {-1.2, 0.4, 0.9, 0.2};
  ct_asa_options o = tight_options();
  ct_asa_hvp_result *hu = NULL, *hv = NULL;
  assert_int_equal(ct_asa_hvp(ctx, a, lv_p, NULL, 0.0, lv_T, u, &o, &hu), CT_OK);
  assert_int_equal(ct_asa_hvp(ctx, a, lv_p, NULL, 0.0, lv_T, v, &o, &hv), CT_OK);
  double vHu = 0, uHv = 0;
  for (int j = 0; j < 4; j++) vHu += v[j] * hu->Hu[j], uHv += u[j] * hv->Hu[j];
  if (!ct_rel_close(vHu, uHv, 1e-8)) fail_msg("v^T H u = %.12e, u^T H v = %.12e", vHu, uHv);
  assert_true(fabs(vHu) > 1e-3);
  for (int j = 0; j < 4; j++) assert_true(ct_rel_close(hu->dJdp[j], hv->dJdp[j], 1e-9));
  /* An Adams forward phase (fixed-point corrector for the sensitivity too)
   * gives the same H u. */
  ct_asa_hvp_result *ha = NULL;
  o.ode.method = CT_ODE_ADAMS;
  assert_int_equal(ct_asa_hvp(ctx, a, lv_p, NULL, 0.0, lv_T, u, &o, &ha), CT_OK);
  for (int j = 0; j < 4; j++)
    if (fabs(ha->Hu[j] - hu->Hu[j]) > 1e-7 * fabs(vHu))
      fail_msg("Adams: Hu[%d] = %.12e, BDF %.12e", j, ha->Hu[j], hu->Hu[j]);
  ct_asa_hvp_result_free(ctx, ha);
  ct_asa_hvp_result_free(ctx, hu);
  ct_asa_hvp_result_free(ctx, hv);
  ct_asa2_free(a);
  ct_ode_free(m);
  ct_context_free(ctx);
}

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

/* H u with a progress callback: the same gradient, H u, s(T) and
 * statistics to the bit; forward calls rise to T, backward calls fall to
 * t0; stopping in either phase is CT_ERR_INTERRUPTED naming the phase. */
static void test_progress(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_ode *m = new_model(ctx, lv_rhs(ctx, 0), lv_y0(ctx));
  ct_fun *g = lv_g(ctx), *phi = lv_phi(ctx);
  ct_asa2 *a = NULL;
  assert_int_equal(ct_asa2_new(ctx, m, g, phi, &a), CT_OK);
  ct_fun_free(g);
  ct_fun_free(phi);
  static const double u[4] = {0.3, -0.7, 0.5, 1.1};
  ct_asa_options o = tight_options();
  ct_asa_hvp_result *r0 = NULL, *r1 = NULL, *cut = NULL;
  assert_int_equal(ct_asa_hvp(ctx, a, lv_p, NULL, 0.0, lv_T, u, &o, &r0), CT_OK);
  static progress_log log;
  memset(&log, 0, sizeof log);
  o.ode.progress = log_progress;
  o.ode.progress_ud = &log;
  assert_int_equal(ct_asa_hvp(ctx, a, lv_p, NULL, 0.0, lv_T, u, &o, &r1), CT_OK);
  assert_memory_equal(r1->Hu, r0->Hu, 4 * sizeof(double));
  assert_memory_equal(r1->dJdp, r0->dJdp, 4 * sizeof(double));
  assert_memory_equal(r1->s_T, r0->s_T, 2 * sizeof(double));
  assert_true(r1->value == r0->value);
  assert_memory_equal(&r1->ode.stats, &r0->ode.stats, sizeof r0->ode.stats);
  assert_memory_equal(&r1->stats_b, &r0->stats_b, sizeof r0->stats_b);
  int nf = (int)r1->ode.stats.steps, total = log.n;
  assert_true(total > nf + 10);
  for (int i = 1; i < nf; i++) assert_true(log.t[i] > log.t[i - 1]);
  assert_true(log.t[nf - 1] == lv_T);
  for (int i = nf + 1; i < total; i++) assert_true(log.t[i] <= log.t[i - 1]);
  assert_true(log.t[total - 1] == 0.0);
  memset(&log, 0, sizeof log);
  log.stop_at = nf / 2;
  assert_int_equal(ct_asa_hvp(ctx, a, lv_p, NULL, 0.0, lv_T, u, &o, &cut),
                   CT_ERR_INTERRUPTED);
  assert_int_equal(cut->status, CT_ERR_INTERRUPTED);
  assert_true(strncmp(cut->message, "forward phase: t = ", 19) == 0);
  assert_non_null(strstr(cut->message, ": interrupted"));
  assert_false(cut->backward_done);
  ct_asa_hvp_result_free(ctx, cut);
  memset(&log, 0, sizeof log);
  log.stop_at = (nf + total) / 2;
  assert_int_equal(ct_asa_hvp(ctx, a, lv_p, NULL, 0.0, lv_T, u, &o, &cut),
                   CT_ERR_INTERRUPTED);
  char want[96];
  snprintf(want, sizeof want, "backward phase: t = %.6g: interrupted", log.t[log.n - 1]);
  assert_string_equal(cut->message, want);
  assert_int_equal(cut->ode.status, CT_OK);
  assert_false(cut->backward_done);
  ct_asa_hvp_result_free(ctx, cut);
  ct_asa_hvp_result_free(ctx, r0);
  ct_asa_hvp_result_free(ctx, r1);
  ct_asa2_free(a);
  ct_ode_free(m);
  ct_context_free(ctx);
}

/* ---- Bad arguments and failures ---------------------------------------------------- */

static void expect_arg_error(ct_context *ctx, int rc, const char *text) {
  assert_int_equal(rc, CT_ERR_ARG);
  if (!strstr(ct_errmsg(ctx), text))
    fail_msg("expected '%s' in the message, got: %s", text, ct_errmsg(ctx));
}

static void test_bad_arguments(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_context_set_log_level(ctx, CT_LOG_QUIET);
  ct_ode *m = new_model(ctx, lv_rhs(ctx, 0), NULL);
  ct_fun *g = lv_g(ctx), *wrong = hessian_example_g(ctx); /* y of 3, not 2 */
  ct_asa2 *a = NULL;
  expect_arg_error(ctx, ct_asa2_new(ctx, NULL, g, NULL, &a), "ode is NULL");
  expect_arg_error(ctx, ct_asa2_new(ctx, m, NULL, NULL, &a), "needs an objective");
  expect_arg_error(ctx, ct_asa2_new(ctx, m, wrong, NULL, &a), "input 'y'");
  assert_null(a);
  ct_ode *no_p = new_model(ctx, ct_robertson_rhs(ctx), NULL);
  ct_fun *rg = ct_robertson_g(ctx);
  expect_arg_error(ctx, ct_asa2_new(ctx, no_p, rg, NULL, &a), "no parameters");
  assert_int_equal(ct_asa2_new(ctx, m, g, NULL, &a), CT_OK);
  static const double u[4] = {1, 0, 0, 0};
  ct_asa_options o = ct_asa_default_options();
  ct_asa_hvp_result *r = NULL;
  expect_arg_error(ctx, ct_asa_hvp(ctx, a, lv_p, lv_y0v, 0, 1, NULL, &o, &r),
                   "direction u is NULL");
  expect_arg_error(ctx, ct_asa_hvp(ctx, NULL, lv_p, lv_y0v, 0, 1, u, &o, &r),
                   "asa2 is NULL");
  expect_arg_error(ctx, ct_asa_hvp(ctx, a, NULL, lv_y0v, 0, 1, u, &o, &r), "pass p");
  expect_arg_error(ctx, ct_asa_hvp(ctx, a, lv_p, lv_y0v, 1, 1, u, &o, &r), "T > t0");
  double nan_u[4] = {0, NAN, 0, 0};
  expect_arg_error(ctx, ct_asa_hvp(ctx, a, lv_p, lv_y0v, 0, 1, nan_u, &o, &r),
                   "u[1] is not finite");
  double t_obs[1] = {0.5};
  o.t_obs = t_obs;
  o.n_obs = 1;
  expect_arg_error(ctx, ct_asa_hvp(ctx, a, lv_p, lv_y0v, 0, 1, u, &o, &r),
                   "no observation objective h");
  o = ct_asa_default_options();
  o.ode.method = CT_ODE_ERK;
  expect_arg_error(ctx, ct_asa_hvp(ctx, a, lv_p, lv_y0v, 0, 1, u, &o, &r),
                   "CVODES method");
  o = ct_asa_default_options();
  o.linsol_b = CT_LINSOL_GMRES;
  expect_arg_error(ctx, ct_asa_hvp(ctx, a, lv_p, lv_y0v, 0, 1, u, &o, &r), "linsol_b");
  o = ct_asa_default_options();
  o.max_checkpoints = 3;
  expect_arg_error(ctx, ct_asa_hvp(ctx, a, lv_p, lv_y0v, 0, 1, u, &o, &r),
                   "max_checkpoints");
  o = ct_asa_default_options();
  o.rtol_b = 0;
  expect_arg_error(ctx, ct_asa_hvp(ctx, a, lv_p, lv_y0v, 0, 1, u, &o, &r),
                   "backward tolerances");
  expect_arg_error(ctx, ct_asa_hvp(ctx, a, lv_p, NULL, 0, 1, u, NULL, &r), "pass y0");
  assert_null(r);
  ct_asa2_free(a);
  ct_asa2_free(NULL);
  ct_asa_hvp_result_free(ctx, NULL);
  ct_fun_free(g);
  ct_fun_free(wrong);
  ct_fun_free(rg);
  ct_ode_free(m);
  ct_ode_free(no_p);
  ct_context_free(ctx);
}

/* Solves a failing problem (Adams: the forward phase never sees df/dy):
 * CT_ERR_SOLVER with the result, its message starting with `prefix` and
 * the time in it within [lo, hi]. */
static ct_asa_hvp_result *solve_failing(ct_context *ctx, const ct_asa2 *a, double T,
                                        const char *prefix, double lo, double hi) {
  ct_asa_options o = ct_asa_default_options();
  o.ode.method = CT_ODE_ADAMS;
  static const double u[4] = {1, 1, 0, 0};
  ct_asa_hvp_result *r = NULL;
  assert_int_equal(ct_asa_hvp(ctx, a, lv_p, lv_y0v, 0.0, T, u, &o, &r), CT_ERR_SOLVER);
  assert_non_null(r);
  assert_int_equal(r->status, CT_ERR_SOLVER);
  assert_false(r->backward_done);
  size_t k = strlen(prefix);
  double t = -1;
  if (strncmp(r->message, prefix, k) || sscanf(r->message + k, "%lf", &t) != 1 ||
      !(t >= lo && t <= hi))
    fail_msg("expected '%s<t in [%g, %g]>...', got: %s", prefix, lo, hi, r->message);
  if (!strstr(ct_errmsg(ctx), prefix)) fail_msg("context: %s", ct_errmsg(ctx));
  return r;
}

static void test_forward_phase_failure(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_context_set_log_level(ctx, CT_LOG_QUIET);
  ct_ode *m = new_model(ctx, lv_rhs(ctx, 1.0), NULL);
  ct_fun *g = lv_g(ctx);
  ct_asa2 *a = NULL;
  assert_int_equal(ct_asa2_new(ctx, m, g, NULL, &a), CT_OK);
  ct_fun_free(g);
  ct_asa_hvp_result *r = solve_failing(ctx, a, 2.0, "forward phase: t = ", 0.5, 1.0);
  assert_int_equal(r->ode.status, CT_ERR_SOLVER);
  assert_true(r->ode.n_out >= 1);
  assert_true(r->ode.y[0] == lv_y0v[0] && r->ode.y[1] == lv_y0v[1]);
  assert_true(r->ode.t_reached > 0.5 && r->ode.t_reached <= 1.0);
  assert_true(r->ode.stats.steps > 0);
  ct_asa_hvp_result_free(ctx, r);
  ct_asa2_free(a);
  ct_ode_free(m);
  ct_context_free(ctx);
}

static void test_backward_phase_failure(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_context_set_log_level(ctx, CT_LOG_QUIET);
  ct_ode *m = new_model(ctx, lv_rhs(ctx, 0), NULL);
  ct_fun *g = lv_g_bad_gradient(ctx);
  ct_asa2 *a = NULL;
  assert_int_equal(ct_asa2_new(ctx, m, g, NULL, &a), CT_OK);
  ct_fun_free(g);
  ct_asa_hvp_result *r = solve_failing(ctx, a, 2.0, "backward phase: t = ", 0.9, 1.1);
  if (!strstr(r->message, "NaN")) fail_msg("no cause: %s", r->message);
  /* The forward phase completed: y(T), s(T), the objective, statistics. */
  assert_int_equal(r->ode.status, CT_OK);
  assert_int_equal(r->ode.n_out, 2);
  assert_true(r->ode.t[1] == 2.0);
  assert_true(isfinite(r->value) && r->value > 0 && r->value == r->integral);
  assert_true(r->s_T[0] != 0 && isfinite(r->s_T[0]));
  assert_true(r->ode.stats.steps > 0 && r->stats_b.steps > 0);
  ct_asa_hvp_result_free(ctx, r);
  ct_asa2_free(a);
  ct_ode_free(m);
  ct_context_free(ctx);
}

/* ---- Fault injection -------------------------------------------------------------- */

/* Builds the problem and solves once; releases everything either way. */
static int build_and_solve(ct_context *ctx, void *ud) {
  (void)ud;
  ct_context_set_log_level(ctx, CT_LOG_QUIET);
  ct_fun *rhs = NULL, *g = NULL;
  ct_graph *gr = ct_graph_new(ctx);
  ct_var y[3], p[2], f[3];
  int rc = gr ? CT_OK : CT_ERR_NOMEM;
  if (rc == CT_OK) {
    ct_graph_input(gr, "y", 3, NULL, y);
    ct_graph_input(gr, "p", 2, NULL, p);
    f[0] = ct_sub(ct_mul(ct_neg(p[0]), ct_sqr(y[0])), y[2]);
    f[1] = ct_neg(y[1]);
    f[2] = ct_mul(ct_mul(ct_neg(ct_sqr(p[1])), y[1]), y[2]);
    ct_graph_output(gr, "f", 3, f);
    rc = ct_graph_finalize(gr, &rhs);
  }
  ct_graph_free(gr);
  gr = rc == CT_OK ? ct_graph_new(ctx) : NULL;
  if (rc == CT_OK && !gr) rc = CT_ERR_NOMEM;
  if (rc == CT_OK) {
    ct_graph_input(gr, "y", 3, NULL, y);
    ct_var v = ct_add(ct_sqr(y[0]), y[2]);
    ct_graph_output(gr, "g", 1, &v);
    rc = ct_graph_finalize(gr, &g);
  }
  ct_graph_free(gr);
  ct_ode *m = NULL;
  ct_asa2 *a = NULL;
  ct_asa_hvp_result *r = NULL;
  if (rc == CT_OK) rc = ct_ode_new(ctx, rhs, NULL, NULL, &m);
  if (rc == CT_OK) rc = ct_asa2_new(ctx, m, g, NULL, &a);
  double pv[2] = {1.0, 2.0}, y0[3] = {1, 1, 1}, u[2] = {1, -1};
  if (rc == CT_OK) rc = ct_asa_hvp(ctx, a, pv, y0, 0.0, 0.5, u, NULL, &r);
  ct_asa_hvp_result_free(ctx, r);
  ct_asa2_free(a);
  ct_ode_free(m);
  ct_fun_free(rhs);
  ct_fun_free(g);
  return rc;
}

static void test_fault_injection(void **state) {
  (void)state;
  long n = ct_test_fault_sweep(build_and_solve, NULL);
  if (getenv("CT_ASA_VERBOSE")) printf("fault sweep: %ld allocations\n", n);
  assert_true(n > 50);
}

/* ---- The observation term --------------------------------------------------- */

#define N_OBS 15

/* N_OBS observation times in (0, lv_T], the last at T when at_T (else
 * at 0.95 T), and synthetic data rows d_k near the orbit. */
static void observation_options(ct_asa_options *o, double *t_obs, double *data, int at_T) {
  double last = at_T ? lv_T : 0.95 * lv_T;
  for (int k = 0; k < N_OBS; k++) {
    t_obs[k] = last * (k + 1) / N_OBS;
    data[2 * k] = 1.0 + 0.3 * sin(k);
    data[2 * k + 1] = 0.8 + 0.2 * cos(k);
  }
  o->t_obs = t_obs;
  o->n_obs = N_OBS;
  o->obs_data = data;
  o->obs_dim = 2;
}

/* The objective of an observation test: which terms, y0(p) or not. */
typedef struct obs_case {
  const char *what;
  int with_g, with_phi, y0_of_p, at_T;
} obs_case;

/* Checks ct_asa_hvp with the observation term against ct_asa_solve: H u
 * against central differences of its gradients (1e-5 of the largest
 * component), dJ/dp to 1e-10 and J to 1e-10; returns H u into hu_out
 * (may be NULL) for direction u. */
static void expect_obs_hvp(ct_context *ctx, const obs_case *oc, const double *u,
                           double *hu_out) {
  ct_ode *m = new_model(ctx, lv_rhs(ctx, 0), oc->y0_of_p ? lv_y0(ctx) : NULL);
  ct_fun *g = oc->with_g ? lv_g(ctx) : NULL, *phi = oc->with_phi ? lv_phi(ctx) : NULL;
  ct_fun *h = lv_h(ctx);
  ct_asa2 *a2 = NULL;
  ct_asa *a = NULL;
  if (ct_asa2_new_obs(ctx, m, g, phi, h, &a2) != CT_OK)
    fail_msg("%s: ct_asa2_new_obs: %s", oc->what, ct_errmsg(ctx));
  assert_int_equal(ct_asa_new_obs(ctx, m, g, phi, h, &a), CT_OK);
  ct_fun_free(g);
  ct_fun_free(phi);
  ct_fun_free(h);
  ct_asa_options o = tight_options();
  double t_obs[N_OBS], data[2 * N_OBS];
  observation_options(&o, t_obs, data, oc->at_T);
  const double *y0 = oc->y0_of_p ? NULL : lv_y0v;
  ct_asa_hvp_result *r = NULL;
  if (ct_asa_hvp(ctx, a2, lv_p, y0, 0.0, lv_T, u, &o, &r) != CT_OK)
    fail_msg("%s: ct_asa_hvp: %s", oc->what, ct_errmsg(ctx));
  assert_true(r->backward_done && r->observed != 0);
  assert_int_equal(r->ode.n_out, 1 + N_OBS + !oc->at_T);
  double grad[3][4], h_step = 1e-4, scale = 0, value0 = 0;
  for (int side = 0; side < 3; side++) { /* p + h u, p - h u, p */
    double q[4], sign = side == 0 ? 1 : side == 1 ? -1 : 0;
    for (int j = 0; j < 4; j++) q[j] = lv_p[j] + sign * h_step * u[j];
    ct_asa_result *ra = NULL;
    if (ct_asa_solve(ctx, a, q, y0, 0.0, lv_T, &o, &ra) != CT_OK)
      fail_msg("%s: ct_asa_solve: %s", oc->what, ct_errmsg(ctx));
    memcpy(grad[side], ra->dJdp, sizeof grad[side]);
    if (side == 2) value0 = ra->value;
    ct_asa_result_free(ctx, ra);
  }
  if (!ct_rel_close(r->value, value0, 1e-8))
    fail_msg("%s: J = %.14e, ct_asa_solve %.14e", oc->what, r->value, value0);
  for (int j = 0; j < 4; j++) scale = fmax(scale, fabs(r->Hu[j]));
  assert_true(scale > 1e-3);
  for (int j = 0; j < 4; j++) {
    double fd = (grad[0][j] - grad[1][j]) / (2 * h_step);
    if (getenv("CT_ASA_VERBOSE"))
      printf("%s: Hu[%d] = %.12e, differences %.12e; dJ/dp %.14e, ct_asa_solve %.14e\n",
             oc->what, j, r->Hu[j], fd, r->dJdp[j], grad[2][j]);
    if (fabs(r->Hu[j] - fd) > 1e-5 * scale)
      fail_msg("%s: Hu[%d] = %.10e, differences %.10e", oc->what, j, r->Hu[j], fd);
    if (!ct_rel_close(r->dJdp[j], grad[2][j], 1e-8))
      fail_msg("%s: dJ/dp[%d] = %.14e, ct_asa_solve %.14e", oc->what, j, r->dJdp[j],
               grad[2][j]);
  }
  if (hu_out) memcpy(hu_out, r->Hu, 4 * sizeof *hu_out);
  ct_asa_hvp_result_free(ctx, r);
  ct_asa2_free(a2);
  ct_asa_free(a);
  ct_ode_free(m);
}

static void test_obs_against_differences(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  static const double u[4] = {0.3, -0.7, 0.5, 1.1};
  obs_case oc = {"h alone, last t_k = T", 0, 0, 0, 1};
  expect_obs_hvp(ctx, &oc, u, NULL);
  ct_context_free(ctx);
}

/* g + phi + h with y0(p), the last observation before T; and the symmetry
 * u^T H v = v^T H u of that objective. */
static void test_obs_combined_and_symmetry(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  static const double u[4] = {0.3, -0.7, 0.5, 1.1}, v[4] = {-1.2, 0.4, 0.9, 0.2};
  double hu[4], hv[4], vHu = 0, uHv = 0;
  obs_case oc = {"g + phi + h, y0(p)", 1, 1, 1, 0};
  expect_obs_hvp(ctx, &oc, u, hu);
  expect_obs_hvp(ctx, &oc, v, hv);
  for (int j = 0; j < 4; j++) vHu += v[j] * hu[j], uHv += u[j] * hv[j];
  if (getenv("CT_ASA_VERBOSE")) printf("v^T H u = %.14e, u^T H v = %.14e\n", vHu, uHv);
  if (!ct_rel_close(vHu, uHv, 1e-8)) fail_msg("v^T H u = %.12e, u^T H v = %.12e", vHu, uHv);
  assert_true(fabs(vHu) > 1e-3);
  ct_context_free(ctx);
}

/* dJ/dp and J of ct_asa_hvp equal ct_asa_solve's to 1e-10 (g + phi + h,
 * y0(p)) once both integrate so tightly (rtol 1e-13) that their different
 * step sequences (the forward sensitivity is in ct_asa_hvp's error test)
 * no longer matter. */
static void test_obs_gradient_equals_first_order(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_ode *m = new_model(ctx, lv_rhs(ctx, 0), lv_y0(ctx));
  ct_fun *g = lv_g(ctx), *phi = lv_phi(ctx), *h = lv_h(ctx);
  ct_asa2 *a2 = NULL;
  ct_asa *a = NULL;
  assert_int_equal(ct_asa2_new_obs(ctx, m, g, phi, h, &a2), CT_OK);
  assert_int_equal(ct_asa_new_obs(ctx, m, g, phi, h, &a), CT_OK);
  ct_fun_free(g);
  ct_fun_free(phi);
  ct_fun_free(h);
  ct_asa_options o = tight_options();
  o.ode.rtol = o.rtol_b = o.rtol_q = 1e-13;
  o.ode.atol = o.atol_b = o.atol_q = 1e-14;
  double t_obs[N_OBS], data[2 * N_OBS];
  observation_options(&o, t_obs, data, 0);
  static const double u[4] = {0.3, -0.7, 0.5, 1.1};
  ct_asa_hvp_result *r = NULL;
  ct_asa_result *ra = NULL;
  assert_int_equal(ct_asa_hvp(ctx, a2, lv_p, NULL, 0.0, lv_T, u, &o, &r), CT_OK);
  assert_int_equal(ct_asa_solve(ctx, a, lv_p, NULL, 0.0, lv_T, &o, &ra), CT_OK);
  if (getenv("CT_ASA_VERBOSE"))
    printf("J %.15e %.15e\n", r->value, ra->value);
  if (!ct_rel_close(r->value, ra->value, 1e-10))
    fail_msg("J = %.15e, ct_asa_solve %.15e", r->value, ra->value);
  assert_true(r->observed == ra->observed || ct_rel_close(r->observed, ra->observed, 1e-10));
  for (int j = 0; j < 4; j++) {
    if (getenv("CT_ASA_VERBOSE"))
      printf("dJ/dp[%d] %.15e %.15e\n", j, r->dJdp[j], ra->dJdp[j]);
    if (!ct_rel_close(r->dJdp[j], ra->dJdp[j], 1e-10))
      fail_msg("dJ/dp[%d] = %.15e, ct_asa_solve %.15e", j, r->dJdp[j], ra->dJdp[j]);
  }
  for (int i = 0; i < 2; i++) assert_true(ct_rel_close(r->dJdy0[i], ra->dJdy0[i], 1e-10));
  ct_asa_hvp_result_free(ctx, r);
  ct_asa_result_free(ctx, ra);
  ct_asa2_free(a2);
  ct_asa_free(a);
  ct_ode_free(m);
  ct_context_free(ctx);
}

/* The observation options checked as ct_asa_solve checks them. */
static void test_obs_bad_arguments(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_context_set_log_level(ctx, CT_LOG_QUIET);
  ct_ode *m = new_model(ctx, lv_rhs(ctx, 0), NULL);
  ct_fun *h = lv_h(ctx), *plain = lv_h_no_data(ctx), *g = lv_g(ctx);
  ct_asa2 *a = NULL, *a_plain = NULL, *a_g = NULL;
  expect_arg_error(ctx, ct_asa2_new_obs(ctx, m, NULL, NULL, NULL, &a), "needs an objective");
  expect_arg_error(ctx, ct_asa2_new_obs(ctx, m, NULL, NULL, g, &a), "output 'h'");
  assert_null(a);
  assert_int_equal(ct_asa2_new_obs(ctx, m, NULL, NULL, h, &a), CT_OK);
  assert_int_equal(ct_asa2_new_obs(ctx, m, NULL, NULL, plain, &a_plain), CT_OK);
  assert_int_equal(ct_asa2_new(ctx, m, g, NULL, &a_g), CT_OK);
  static const double u[4] = {1, 0, 0, 0};
  double t_obs[N_OBS], data[2 * N_OBS];
  ct_asa_options o = ct_asa_default_options();
  observation_options(&o, t_obs, data, 1);
  ct_asa_hvp_result *r = NULL;
  expect_arg_error(ctx, ct_asa_hvp(ctx, a_g, lv_p, lv_y0v, 0, lv_T, u, &o, &r),
                   "no observation objective h");
  expect_arg_error(ctx, ct_asa_hvp(ctx, a_plain, lv_p, lv_y0v, 0, lv_T, u, &o, &r),
                   "has no input 'd'");
  o.obs_dim = 3;
  expect_arg_error(ctx, ct_asa_hvp(ctx, a, lv_p, lv_y0v, 0, lv_T, u, &o, &r),
                   "obs_dim is 3");
  o.obs_dim = 2;
  o.obs_data = NULL;
  expect_arg_error(ctx, ct_asa_hvp(ctx, a, lv_p, lv_y0v, 0, lv_T, u, &o, &r),
                   "obs_data is NULL");
  o.obs_data = data;
  o.t_obs = NULL;
  expect_arg_error(ctx, ct_asa_hvp(ctx, a, lv_p, lv_y0v, 0, lv_T, u, &o, &r),
                   "pass t_obs");
  o.t_obs = t_obs;
  t_obs[3] = t_obs[2];
  expect_arg_error(ctx, ct_asa_hvp(ctx, a, lv_p, lv_y0v, 0, lv_T, u, &o, &r),
                   "t_obs[3]");
  observation_options(&o, t_obs, data, 1);
  expect_arg_error(ctx, ct_asa_hvp(ctx, a, lv_p, lv_y0v, 0, 0.5 * lv_T, u, &o, &r),
                   "increasing inside (t0, T]");
  assert_null(r);
  /* Without observations a problem with h is well posed: J = 0. */
  o.t_obs = NULL;
  o.n_obs = 0;
  o.obs_data = NULL;
  assert_int_equal(ct_asa_hvp(ctx, a, lv_p, lv_y0v, 0, lv_T, u, &o, &r), CT_OK);
  assert_true(r->value == 0 && r->Hu[0] == 0 && r->dJdp[0] == 0);
  ct_asa_hvp_result_free(ctx, r);
  ct_asa2_free(a);
  ct_asa2_free(a_plain);
  ct_asa2_free(a_g);
  ct_fun_free(h);
  ct_fun_free(plain);
  ct_fun_free(g);
  ct_ode_free(m);
  ct_context_free(ctx);
}

/* A backward failure after the observation restarts: the forward phase's
 * outputs at every t_k are kept and the message names the time. */
static void test_obs_backward_failure(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_context_set_log_level(ctx, CT_LOG_QUIET);
  ct_ode *m = new_model(ctx, lv_rhs(ctx, 0), NULL);
  ct_fun *g = lv_g_bad_gradient(ctx), *h = lv_h(ctx);
  ct_asa2 *a = NULL;
  assert_int_equal(ct_asa2_new_obs(ctx, m, g, NULL, h, &a), CT_OK);
  ct_fun_free(g);
  ct_fun_free(h);
  ct_asa_options o = ct_asa_default_options();
  o.ode.method = CT_ODE_ADAMS;
  double t_obs[N_OBS], data[2 * N_OBS];
  observation_options(&o, t_obs, data, 1);
  static const double u[4] = {1, 1, 0, 0};
  ct_asa_hvp_result *r = NULL;
  assert_int_equal(ct_asa_hvp(ctx, a, lv_p, lv_y0v, 0.0, lv_T, u, &o, &r), CT_ERR_SOLVER);
  double t = -1;
  if (strncmp(r->message, "backward phase: t = ", 20) ||
      sscanf(r->message + 20, "%lf", &t) != 1 || !(t >= 0.9 && t <= 1.1))
    fail_msg("got: %s", r->message);
  assert_int_equal(r->ode.n_out, 1 + N_OBS);
  assert_false(r->backward_done);
  assert_true(isfinite(r->observed) && r->observed > 0);
  assert_true(r->value == r->integral + r->observed);
  ct_asa_hvp_result_free(ctx, r);
  ct_asa2_free(a);
  ct_ode_free(m);
  ct_context_free(ctx);
}

/* Builds a Lotka-Volterra problem with an observation term (data) and
 * solves once over 3 observations; releases everything either way. */
static int build_and_solve_obs(ct_context *ctx, void *ud) {
  (void)ud;
  ct_context_set_log_level(ctx, CT_LOG_QUIET);
  ct_fun *rhs = NULL, *h = NULL;
  ct_graph *gr = ct_graph_new(ctx);
  ct_var u[2], p[4], f[2], d[2];
  int rc = gr ? CT_OK : CT_ERR_NOMEM;
  if (rc == CT_OK) {
    ct_graph_input(gr, "y", 2, NULL, u);
    ct_graph_input(gr, "p", 4, NULL, p);
    ct_lotka_volterra_terms(u, p, f);
    ct_graph_output(gr, "f", 2, f);
    rc = ct_graph_finalize(gr, &rhs);
  }
  ct_graph_free(gr);
  gr = rc == CT_OK ? ct_graph_new(ctx) : NULL;
  if (rc == CT_OK && !gr) rc = CT_ERR_NOMEM;
  if (rc == CT_OK) {
    ct_graph_input(gr, "y", 2, NULL, u);
    ct_graph_input(gr, "p", 4, NULL, p);
    ct_graph_input(gr, "d", 2, NULL, d);
    ct_var v = ct_add(ct_sqr(ct_sub(u[0], d[0])), ct_mul(p[1], ct_sqr(ct_sub(u[1], d[1]))));
    ct_graph_output(gr, "h", 1, &v);
    rc = ct_graph_finalize(gr, &h);
  }
  ct_graph_free(gr);
  ct_ode *m = NULL;
  ct_asa2 *a = NULL;
  ct_asa_hvp_result *r = NULL;
  if (rc == CT_OK) rc = ct_ode_new(ctx, rhs, NULL, NULL, &m);
  if (rc == CT_OK) rc = ct_asa2_new_obs(ctx, m, NULL, NULL, h, &a);
  double t_obs[3] = {0.2, 0.4, 0.5}, data[6] = {1, 1, 0.9, 1.1, 0.8, 1.2};
  double dir[4] = {1, -1, 0.5, 0};
  ct_asa_options o = ct_asa_default_options();
  o.t_obs = t_obs;
  o.n_obs = 3;
  o.obs_data = data;
  o.obs_dim = 2;
  if (rc == CT_OK) rc = ct_asa_hvp(ctx, a, lv_p, lv_y0v, 0.0, 0.6, dir, &o, &r);
  ct_asa_hvp_result_free(ctx, r);
  ct_asa2_free(a);
  ct_ode_free(m);
  ct_fun_free(rhs);
  ct_fun_free(h);
  return rc;
}

static void test_obs_fault_injection(void **state) {
  (void)state;
  long n = ct_test_fault_sweep(build_and_solve_obs, NULL);
  if (getenv("CT_ASA_VERBOSE")) printf("fault sweep (observations): %ld allocations\n", n);
  assert_true(n > 50);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cvs_hessian_example),
      cmocka_unit_test(test_lv_against_differences),
      cmocka_unit_test(test_y0_of_p_against_differences),
      cmocka_unit_test(test_robertson_against_differences),
      cmocka_unit_test(test_symmetry),
      cmocka_unit_test(test_progress),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_forward_phase_failure),
      cmocka_unit_test(test_backward_phase_failure),
      cmocka_unit_test(test_fault_injection),
      cmocka_unit_test(test_obs_against_differences),
      cmocka_unit_test(test_obs_combined_and_symmetry),
      cmocka_unit_test(test_obs_gradient_equals_first_order),
      cmocka_unit_test(test_obs_bad_arguments),
      cmocka_unit_test(test_obs_backward_failure),
      cmocka_unit_test(test_obs_fault_injection),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
