/* Steady states of ODE models (ct_steady_*): production/degradation and a
 * Michaelis-Menten chain with closed-form steady states and sensitivities
 * (checked against the formulas and central differences of steady states),
 * the adjoint against S^T x_bar and differences, agreement with a long
 * ct_ode_solve, the time-integration fallback where Newton cannot start (a
 * singular Jacobian at x0), failures that say what was tried, bad
 * arguments and fault injection on ct_steady_new and ct_steady_solve. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotangent/implicit.h"
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

/* x' = k1 - k2 x, x(0) = 0: x* = k1 / k2. */
static ct_ode *production_degradation(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var t, x, p[2];
  ct_graph_input(g, "t", 1, NULL, &t);
  ct_graph_input(g, "y", 1, NULL, &x);
  ct_graph_input(g, "p", 2, NULL, p);
  ct_var f = ct_sub(p[0], ct_mul(p[1], x));
  ct_graph_output(g, "f", 1, &f);
  return new_model(ctx, ct_test_finish(g), NULL);
}

/* A Michaelis-Menten feed into a linear chain, p = (v0, Vm, Km, k2, k3):
 * x1' = v0 - Vm x1/(Km + x1), x2' = Vm x1/(Km + x1) - k2 x2,
 * x3' = k2 x2 - k3 x3; x(0) = (0.1, 0, 0) through y0(p). */
static ct_ode *mm_chain(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var t, x[3], p[5], f[3];
  ct_graph_input(g, "t", 1, NULL, &t);
  ct_graph_input(g, "y", 3, NULL, x);
  ct_graph_input(g, "p", 5, NULL, p);
  ct_var rate = ct_div(ct_mul(p[1], x[0]), ct_add(p[2], x[0]));
  f[0] = ct_sub(p[0], rate);
  f[1] = ct_sub(rate, ct_mul(p[3], x[1]));
  f[2] = ct_sub(ct_mul(p[3], x[1]), ct_mul(p[4], x[2]));
  ct_graph_output(g, "f", 3, f);
  ct_fun *rhs = ct_test_finish(g);
  ct_graph *h = ct_graph_new(ctx);
  ct_var q[5], y0[3];
  ct_graph_input(h, "p", 5, NULL, q);
  y0[0] = ct_add(ct_mulc(q[0], 0.0), ct_const(h, 0.1));
  y0[1] = ct_const(h, 0.0);
  y0[2] = ct_const(h, 0.0);
  ct_graph_output(h, "y0", 3, y0);
  return new_model(ctx, rhs, ct_test_finish(h));
}

static const double MM_P[5] = {1.0, 3.0, 0.5, 2.0, 0.25};

/* The chain's closed-form steady state and sensitivities (column j at
 * [3 j, 3 j + 3)). */
static void mm_closed_form(const double *p, double *x, double *S) {
  double v0 = p[0], Vm = p[1], Km = p[2], k2 = p[3], k3 = p[4], d = Vm - v0;
  x[0] = Km * v0 / d, x[1] = v0 / k2, x[2] = v0 / k3;
  memset(S, 0, 15 * sizeof *S);
  S[0] = Km * Vm / (d * d), S[1] = 1.0 / k2, S[2] = 1.0 / k3; /* v0 */
  S[3] = -Km * v0 / (d * d);                                   /* Vm */
  S[6] = v0 / d;                                               /* Km */
  S[10] = -v0 / (k2 * k2);                                     /* k2 */
  S[14] = -v0 / (k3 * k3);                                     /* k3 */
}

/* x1' = k - x1^3, x2' = x1 - x2 from x = (0, 0): f_x is singular there,
 * so Newton cannot take a step; x* = (k^(1/3), k^(1/3)). */
static ct_ode *cubic_feed(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var t, x[2], k, f[2];
  ct_graph_input(g, "t", 1, NULL, &t);
  ct_graph_input(g, "y", 2, NULL, x);
  ct_graph_input(g, "p", 1, NULL, &k);
  f[0] = ct_sub(k, ct_powi(x[0], 3));
  f[1] = ct_sub(x[0], x[1]);
  ct_graph_output(g, "f", 2, f);
  return new_model(ctx, ct_test_finish(g), NULL);
}

static ct_steady *new_steady(ct_context *ctx, const ct_ode *m) {
  ct_steady *s = NULL;
  if (ct_steady_new(ctx, m, 0.0, &s) != CT_OK) fail_msg("ct_steady_new: %s", ct_errmsg(ctx));
  return s;
}

/* Solves and fails the test on error. */
static void solve_ok(ct_context *ctx, ct_steady *s, const ct_steady_options *o,
                     const double *p, const double *x0, ct_steady_result *r) {
  int rc = ct_steady_solve(ctx, s, o, p, x0, r);
  if (rc != CT_OK) fail_msg("ct_steady_solve: %s (%s)", ct_errmsg(ctx), r->message);
}

static void assert_rel(double got, double want, double rtol, double atol) {
  if (!(fabs(got - want) <= rtol * fabs(want) + atol))
    fail_msg("got %.15g, want %.15g (rtol %g)", got, want, rtol);
}

/* ---- Closed forms -------------------------------------------------------------- */

static void test_production_degradation(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_ode *m = production_degradation(ctx);
  ct_steady *s = new_steady(ctx, m);
  double p[2] = {3.0, 0.7}, x0 = 0.0, S[2], pbar[2], lambda;
  ct_steady_result r;
  solve_ok(ctx, s, NULL, p, &x0, &r);
  assert_int_equal(r.method, CT_STEADY_NEWTON);
  assert_rel(r.x[0], 3.0 / 0.7, 1e-12, 0);
  assert_true(r.fnorm <= 1e-10);
  assert_int_equal(ct_steady_sensitivities(ctx, s, S), CT_OK);
  assert_rel(S[0], 1.0 / 0.7, 1e-10, 0);
  assert_rel(S[1], -3.0 / (0.7 * 0.7), 1e-10, 0);
  /* J = xs^2 (xs the steady state): dJ/dp = 2 xs S, lambda = -2 xs / k2. */
  double xbar = 2.0 * r.x[0];
  assert_int_equal(ct_steady_adjoint(ctx, s, &xbar, pbar, &lambda), CT_OK);
  assert_rel(pbar[0], xbar * S[0], 1e-10, 0);
  assert_rel(pbar[1], xbar * S[1], 1e-10, 0);
  assert_rel(lambda, -xbar / 0.7, 1e-10, 0);
  ct_steady_result_free(ctx, &r);
  ct_steady_free(s);
  ct_ode_free(m);
  ct_context_free(ctx);
}

static void test_mm_chain_closed_form(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_ode *m = mm_chain(ctx);
  ct_steady *s = new_steady(ctx, m);
  double x[3], Sc[15], S[15];
  mm_closed_form(MM_P, x, Sc);
  ct_steady_result r;
  solve_ok(ctx, s, NULL, MM_P, NULL, &r); /* from y0(p) */
  assert_int_equal(r.n, 3);
  for (int i = 0; i < 3; i++) assert_rel(r.x[i], x[i], 1e-10, 1e-12);
  assert_int_equal(ct_steady_sensitivities(ctx, s, S), CT_OK);
  for (int k = 0; k < 15; k++) assert_rel(S[k], Sc[k], 1e-8, 1e-12);
  ct_steady_result_free(ctx, &r);
  ct_steady_free(s);
  ct_ode_free(m);
  ct_context_free(ctx);
}

/* Sensitivities and the adjoint of J = sum_i w_i x_i* against central
 * differences of steady states. */
static void test_mm_chain_differences(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_ode *m = mm_chain(ctx);
  ct_steady *s = new_steady(ctx, m);
  ct_steady_options o = ct_steady_default_options();
  o.newton.ftol = 1e-13;
  ct_steady_result r;
  solve_ok(ctx, s, &o, MM_P, NULL, &r);
  double S[15], w[3] = {1.0, -2.0, 0.5}, pbar[5], lambda[3];
  assert_int_equal(ct_steady_sensitivities(ctx, s, S), CT_OK);
  assert_int_equal(ct_steady_adjoint(ctx, s, w, pbar, lambda), CT_OK);
  ct_steady_result_free(ctx, &r);
  for (int j = 0; j < 5; j++) {
    double pp[5], h = 1e-5 * MM_P[j], xp[3], xm[3];
    ct_steady_result rp, rm;
    memcpy(pp, MM_P, sizeof pp);
    pp[j] = MM_P[j] + h;
    solve_ok(ctx, s, &o, pp, NULL, &rp);
    memcpy(xp, rp.x, sizeof xp);
    pp[j] = MM_P[j] - h;
    solve_ok(ctx, s, &o, pp, NULL, &rm);
    memcpy(xm, rm.x, sizeof xm);
    ct_steady_result_free(ctx, &rp);
    ct_steady_result_free(ctx, &rm);
    double dJ = 0.0;
    for (int i = 0; i < 3; i++) {
      double fd = (xp[i] - xm[i]) / (2.0 * h);
      assert_rel(S[j * 3 + i], fd, 1e-6, 1e-9);
      dJ += w[i] * fd;
    }
    assert_rel(pbar[j], dJ, 1e-6, 1e-9);
  }
  /* the derivatives need the last solve to have succeeded */
  ct_steady_options bad = ct_steady_default_options();
  bad.fallback = 0;
  bad.newton.max_iters = 1;
  double far[3] = {50.0, 50.0, 50.0};
  ct_steady_result rb;
  assert_true(ct_steady_solve(ctx, s, &bad, MM_P, far, &rb) < 0);
  ct_steady_result_free(ctx, &rb);
  assert_int_equal(ct_steady_sensitivities(ctx, s, S), CT_ERR_STATE);
  ct_steady_free(s);
  ct_ode_free(m);
  ct_context_free(ctx);
}

/* The steady state is where a long integration ends. */
static void test_agrees_with_long_integration(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_ode *m = mm_chain(ctx);
  ct_steady *s = new_steady(ctx, m);
  ct_steady_result r;
  solve_ok(ctx, s, NULL, MM_P, NULL, &r);
  double tout[2] = {0.0, 1e4};
  ct_ode_options oo = ct_ode_default_options();
  oo.rtol = 1e-10, oo.atol = 1e-12, oo.max_steps = 100000;
  ct_ode_result *res = NULL;
  assert_int_equal(ct_ode_solve(ctx, m, MM_P, NULL, tout, 2, &oo, &res), CT_OK);
  for (int i = 0; i < 3; i++) assert_rel(res->y[3 + i], r.x[i], 1e-7, 1e-10);
  ct_ode_result_free(ctx, res);
  ct_steady_result_free(ctx, &r);
  ct_steady_free(s);
  ct_ode_free(m);
  ct_context_free(ctx);
}

/* ---- The fallback ---------------------------------------------------------------- */

static void test_fallback_integration(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_context_set_log_level(ctx, CT_LOG_QUIET);
  ct_ode *m = cubic_feed(ctx);
  ct_steady *s = new_steady(ctx, m);
  double k = 8.0, x0[2] = {0.0, 0.0}, S[2];
  ct_steady_options o = ct_steady_default_options();
  o.newton.linear_solver = "dense";
  ct_steady_result r;
  solve_ok(ctx, s, &o, &k, x0, &r);
  assert_int_equal(r.method, CT_STEADY_INTEGRATION);
  assert_rel(r.x[0], 2.0, 1e-10, 0);
  assert_rel(r.x[1], 2.0, 1e-10, 0);
  assert_true(r.t_reached > 0.0 && r.t_reached < o.t_max);
  assert_true(r.ode.steps > 0);
  assert_int_equal(ct_steady_sensitivities(ctx, s, S), CT_OK);
  double dx = 1.0 / (3.0 * pow(k, 2.0 / 3.0)); /* d k^(1/3) / dk */
  assert_rel(S[0], dx, 1e-8, 0);
  assert_rel(S[1], dx, 1e-8, 0);
  ct_steady_result_free(ctx, &r);
  /* fallback off: Newton's own reason */
  o.fallback = 0;
  int rc = ct_steady_solve(ctx, s, &o, &k, x0, &r);
  assert_true(rc < 0);
  assert_int_equal(r.status, rc);
  if (strncmp(r.message, "Newton from the initial values: ", 32) != 0)
    fail_msg("message: %s", r.message);
  if (getenv("CT_STEADY_VERBOSE")) printf("fallback off: %s\n", r.message);
  assert_non_null(strstr(ct_errmsg(ctx), "Newton from the initial values"));
  assert_non_null(r.x);
  ct_steady_result_free(ctx, &r);
  /* an integration too short: both tries in the message */
  o.fallback = 1;
  o.t_max = 1e-3;
  rc = ct_steady_solve(ctx, s, &o, &k, x0, &r);
  assert_int_equal(rc, CT_ERR_SOLVER);
  assert_int_equal(r.method, CT_STEADY_INTEGRATION);
  assert_non_null(strstr(r.message, "Newton from the initial values: "));
  assert_non_null(strstr(r.message, "time integration to t = 0.001: max |f| = "));
  assert_non_null(strstr(r.message, "still above 1e-07"));
  if (getenv("CT_STEADY_VERBOSE")) printf("short t_max: %s\n", r.message);
  assert_true(r.x[0] > 0.0); /* the partial result: where integration got to */
  ct_steady_result_free(ctx, &r);
  ct_steady_free(s);
  ct_ode_free(m);
  ct_context_free(ctx);
}

/* The fallback with an ARKODE method (no hooks: outputs checked after). */
static void test_fallback_arkode(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_context_set_log_level(ctx, CT_LOG_QUIET);
  ct_ode *m = cubic_feed(ctx);
  ct_steady *s = new_steady(ctx, m);
  double k = 27.0, x0[2] = {0.0, 0.0};
  ct_steady_options o = ct_steady_default_options();
  o.newton.linear_solver = "dense";
  o.ode.method = CT_ODE_DIRK;
  o.t_max = 1e3;
  ct_steady_result r;
  solve_ok(ctx, s, &o, &k, x0, &r);
  assert_int_equal(r.method, CT_STEADY_INTEGRATION);
  assert_rel(r.x[0], 3.0, 1e-10, 0);
  ct_steady_result_free(ctx, &r);
  ct_steady_free(s);
  ct_ode_free(m);
  ct_context_free(ctx);
}

/* A <-> B alone conserves A + B: f_x is singular at every steady state, and
 * the solve says so instead of returning one of them. */
static void test_conservation_law(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_context_set_log_level(ctx, CT_LOG_QUIET);
  ct_graph *g = ct_graph_new(ctx);
  ct_var t, x[2], k[2], f[2];
  ct_graph_input(g, "t", 1, NULL, &t);
  ct_graph_input(g, "y", 2, NULL, x);
  ct_graph_input(g, "p", 2, NULL, k);
  f[0] = ct_sub(ct_mul(k[1], x[1]), ct_mul(k[0], x[0]));
  f[1] = ct_neg(f[0]);
  ct_graph_output(g, "f", 2, f);
  ct_ode *m = new_model(ctx, ct_test_finish(g), NULL);
  ct_steady *s = new_steady(ctx, m);
  double p[2] = {2.0, 1.0}, x0[2] = {1.0, 0.0}, S[4];
  ct_steady_result r;
  int rc = ct_steady_solve(ctx, s, NULL, p, x0, &r);
  if (getenv("CT_STEADY_VERBOSE")) printf("conservation law: %d %s\n", rc, r.message);
  assert_true(rc < 0);
  assert_non_null(strstr(r.message, "singular"));
  assert_int_equal(ct_steady_sensitivities(ctx, s, S), CT_ERR_STATE);
  ct_steady_result_free(ctx, &r);
  ct_steady_free(s);
  ct_ode_free(m);
  ct_context_free(ctx);
}

/* ---- Bad input and faults ---------------------------------------------------------- */

static int cb_rhs(double t, const double *y, const double *p, double *f, void *ud) {
  (void)t, (void)p, (void)ud;
  f[0] = -y[0];
  return 0;
}

static void test_bad_arguments(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_ode *m = production_degradation(ctx);
  ct_steady *s = NULL;
  assert_int_equal(ct_steady_new(ctx, NULL, 0.0, &s), CT_ERR_ARG);
  assert_int_equal(ct_steady_new(ctx, m, NAN, &s), CT_ERR_ARG);
  assert_null(s);
  ct_ode_callbacks cb = {0};
  cb.n = 1, cb.f = cb_rhs;
  ct_ode *mc = NULL;
  assert_int_equal(ct_ode_new_callbacks(ctx, &cb, &mc), CT_OK);
  assert_int_equal(ct_steady_new(ctx, mc, 0.0, &s), CT_ERR_ARG);
  ct_ode_free(mc);
  s = new_steady(ctx, m);
  double S[2], p[2] = {1.0, 2.0}, x0 = 0.0;
  assert_int_equal(ct_steady_sensitivities(ctx, s, S), CT_ERR_STATE);
  ct_steady_result r;
  assert_int_equal(ct_steady_solve(ctx, s, NULL, NULL, &x0, &r), CT_ERR_ARG);
  ct_steady_result_free(ctx, &r);
  assert_int_equal(ct_steady_solve(ctx, s, NULL, p, NULL, &r), CT_ERR_ARG); /* no y0 */
  assert_non_null(strstr(ct_errmsg(ctx), "pass x0"));
  ct_steady_result_free(ctx, &r);
  ct_steady_options o = ct_steady_default_options();
  o.t_max = -1.0;
  assert_int_equal(ct_steady_solve(ctx, s, &o, p, &x0, &r), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "t_max"));
  ct_steady_result_free(ctx, &r);
  assert_null(ct_steady_nlsolve(NULL));
  assert_non_null(ct_steady_nlsolve(s));
  ct_steady_free(s);
  ct_steady_free(NULL);
  ct_ode_free(m);
  ct_context_free(ctx);
}

/* Builds a steady-state problem, solves it with the fallback and takes
 * its derivatives, releasing everything. */
static int build_and_solve(ct_context *ctx, void *ud) {
  (void)ud;
  ct_graph *g = ct_graph_new(ctx);
  if (!g) return CT_ERR_NOMEM;
  ct_var t, x[2], k, f[2];
  ct_graph_input(g, "t", 1, NULL, &t);
  ct_graph_input(g, "y", 2, NULL, x);
  ct_graph_input(g, "p", 1, NULL, &k);
  f[0] = ct_sub(k, ct_powi(x[0], 3));
  f[1] = ct_sub(x[0], x[1]);
  ct_graph_output(g, "f", 2, f);
  ct_fun *rhs = NULL;
  int rc = ct_graph_finalize(g, &rhs);
  ct_graph_free(g);
  ct_ode *m = NULL;
  ct_steady *s = NULL;
  if (rc == CT_OK) rc = ct_ode_new(ctx, rhs, NULL, NULL, &m);
  ct_fun_free(rhs);
  if (rc == CT_OK) rc = ct_steady_new(ctx, m, 0.0, &s);
  double kv = 8.0, x0[2] = {0.0, 0.0}, S[2], xbar[2] = {1.0, 1.0}, pbar;
  ct_steady_options o = ct_steady_default_options();
  o.newton.linear_solver = "dense";
  ct_steady_result r;
  memset(&r, 0, sizeof r);
  if (rc == CT_OK) rc = ct_steady_solve(ctx, s, &o, &kv, x0, &r);
  if (rc == CT_OK) rc = ct_steady_sensitivities(ctx, s, S);
  if (rc == CT_OK) rc = ct_steady_adjoint(ctx, s, xbar, &pbar, NULL);
  ct_steady_result_free(ctx, &r);
  ct_steady_free(s);
  ct_ode_free(m);
  return rc;
}

static void test_fault_injection(void **state) {
  (void)state;
  long n = ct_test_fault_sweep(build_and_solve, NULL);
  assert_true(n > 20);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_production_degradation),
      cmocka_unit_test(test_mm_chain_closed_form),
      cmocka_unit_test(test_mm_chain_differences),
      cmocka_unit_test(test_agrees_with_long_integration),
      cmocka_unit_test(test_fallback_integration),
      cmocka_unit_test(test_fallback_arkode),
      cmocka_unit_test(test_conservation_law),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_fault_injection),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
