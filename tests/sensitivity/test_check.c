/* The gradient check: a known gradient passes with a small error, a wrong
 * component is named as the worst, an adjoint problem's gradient checks to
 * 1e-5, bad arguments and failing objectives are reported, and fault
 * injection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cotangent/adjoint.h"
#include "cotangent/sensitivity.h"
#include "ct_test.h"
#include "ct_models.h"

/* J(p) = Σ p_j^2 sin(p_j) + p_0 p_1 exp(p_2 / 4). */
static int objective(ct_context *ctx, const double *p, void *ud, double *value) {
  (void)ctx;
  size_t np = *(const size_t *)ud;
  double s = 0;
  for (size_t j = 0; j < np; j++) s += p[j] * p[j] * sin(p[j]);
  *value = s + p[0] * p[1] * exp(p[2] / 4);
  return CT_OK;
}

static void gradient(const double *p, size_t np, double *g) {
  for (size_t j = 0; j < np; j++) g[j] = 2 * p[j] * sin(p[j]) + p[j] * p[j] * cos(p[j]);
  double e = exp(p[2] / 4);
  g[0] += p[1] * e;
  g[1] += p[0] * e;
  g[2] += p[0] * p[1] * e / 4;
}

static void test_known_gradient_passes(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  size_t np = 4;
  double p[4] = {0.7, -1.3, 2.0, 0.0}, g[4];
  gradient(p, np, g);
  ct_gradcheck_result res;
  assert_int_equal(ct_gradient_check(ctx, objective, &np, p, np, g, NULL, &res), CT_OK);
  assert_int_equal(res.np, 4);
  assert_true(res.passed);
  assert_true(res.worst_rel_err < 1e-8);
  assert_int_equal(res.n_evals, 8);
  for (size_t j = 0; j < np; j++) {
    assert_true(fabs(res.fd[j] - g[j]) <= 1e-8 * fmax(1, fabs(g[j])));
    assert_true(res.grad[j] == g[j]);
    assert_true(res.rel_err[j] <= res.worst_rel_err);
    /* h_j = eps^(1/3) max(|p_j|, 1) */
    assert_true(fabs(res.step[j] - cbrt(2.220446049250313e-16) * fmax(fabs(p[j]), 1)) <
                1e-20);
  }
  ct_gradcheck_result_clear(ctx, &res);
  ct_context_free(ctx);
}

static void test_wrong_component_is_worst(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  size_t np = 4;
  double p[4] = {0.7, -1.3, 2.0, 0.5}, g[4];
  gradient(p, np, g);
  g[2] *= 1.01;
  ct_gradcheck_options o = ct_gradcheck_default_options();
  double typical[4] = {1, 1, 10, 1};
  o.typical = typical;
  ct_gradcheck_result res;
  assert_int_equal(ct_gradient_check(ctx, objective, &np, p, np, g, &o, &res), CT_OK);
  assert_false(res.passed);
  assert_int_equal(res.worst, 2);
  assert_true(fabs(res.worst_rel_err - 0.01 / 1.01) < 1e-6);
  assert_true(res.rel_err[0] < 1e-8 && res.rel_err[1] < 1e-8 && res.rel_err[3] < 1e-8);
  assert_true(fabs(res.step[2] - 10 * res.step[0]) < 1e-18); /* from typical[2] */
  ct_gradcheck_result_clear(ctx, &res);
  ct_context_free(ctx);
}

/* ---- An adjoint problem ------------------------------------------------------ */

/* Lotka-Volterra with J = ∫ (u - 1)^2 v dt + u(T) v(T). */
static void test_adjoint_gradient_checks(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *rhs = ct_lotka_volterra(ctx);
  ct_graph *gr = ct_graph_new(ctx);
  ct_var y[2];
  ct_graph_input(gr, "y", 2, NULL, y);
  ct_var gv = ct_mul(ct_sqr(ct_addc(y[0], -1)), y[1]);
  ct_graph_output(gr, "g", 1, &gv);
  ct_fun *g = ct_test_finish(gr);
  gr = ct_graph_new(ctx);
  ct_graph_input(gr, "y", 2, NULL, y);
  ct_var phi = ct_mul(y[0], y[1]);
  ct_graph_output(gr, "phi", 1, &phi);
  ct_fun *fphi = ct_test_finish(gr);
  ct_ode *ode = NULL;
  ct_asa *asa = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, NULL, &ode), CT_OK);
  if (ct_asa_new(ctx, ode, g, fphi, &asa) != CT_OK) fail_msg("%s", ct_errmsg(ctx));
  ct_fun_free(rhs);
  ct_fun_free(g);
  ct_fun_free(fphi);

  double pv[4] = {1.5, 1.0, 3.0, 1.0}, y0[2] = {1, 1};
  ct_asa_options ao = ct_asa_default_options();
  ao.ode.rtol = 1e-12;
  ao.ode.atol = 1e-12;
  ao.ode.max_steps = 100000;
  ao.rtol_b = ao.rtol_q = 1e-12;
  ao.atol_b = ao.atol_q = 1e-12;
  ao.max_steps_b = 100000;
  ct_gradcheck_options o = ct_gradcheck_default_options();
  o.eps = 1e-12; /* the objective is as accurate as the solves */
  ct_gradcheck_result res;
  if (ct_asa_gradient_check(ctx, asa, pv, y0, 0, 2, &ao, &o, &res) != CT_OK)
    fail_msg("%s", ct_errmsg(ctx));
  assert_int_equal(res.np, 4);
  assert_int_equal(res.n_evals, 8);
  assert_true(res.value > 0);
  if (!(res.worst_rel_err <= 1e-5))
    fail_msg("worst relative error %g at p[%zu]: fd %.10g, adjoint %.10g",
             res.worst_rel_err, res.worst, res.fd[res.worst], res.grad[res.worst]);
  assert_true(res.passed);
  print_message("adjoint gradient check: worst relative error %.2e at p[%zu]\n",
                res.worst_rel_err, res.worst);
  ct_gradcheck_result_clear(ctx, &res);

  /* A failing adjoint solve is returned as it is. */
  ao.ode.max_steps = 3;
  assert_int_equal(ct_asa_gradient_check(ctx, asa, pv, y0, 0, 2, &ao, &o, &res),
                   CT_ERR_SOLVER);
  ct_gradcheck_result_clear(ctx, &res);
  ct_asa_free(asa);
  ct_ode_free(ode);
  ct_context_free(ctx);
}

/* ---- Arguments and failures ------------------------------------------------------ */

/* Fails when p[0] > 1. */
static int fragile(ct_context *ctx, const double *p, void *ud, double *value) {
  (void)ud;
  if (p[0] > 1) return CT_ERROR(ctx, CT_ERR_SOLVER, "too large");
  *value = p[0];
  return CT_OK;
}

static void test_bad_arguments_and_failures(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  size_t np = 3;
  double p[3] = {1, 2, 3}, g[3] = {0};
  ct_gradcheck_result res;
  assert_int_equal(ct_gradient_check(ctx, NULL, NULL, p, np, g, NULL, &res), CT_ERR_ARG);
  assert_int_equal(ct_gradient_check(ctx, objective, &np, p, 0, g, NULL, &res), CT_ERR_ARG);
  assert_int_equal(ct_gradient_check(ctx, objective, &np, p, np, NULL, NULL, &res),
                   CT_ERR_ARG);
  ct_gradcheck_options o = ct_gradcheck_default_options();
  o.eps = 0;
  assert_int_equal(ct_gradient_check(ctx, objective, &np, p, np, g, &o, &res), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "eps"));
  o = ct_gradcheck_default_options();
  double typical[3] = {1, -1, 1};
  o.typical = typical;
  assert_int_equal(ct_gradient_check(ctx, objective, &np, p, np, g, &o, &res), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "typical[1]"));
  ct_gradcheck_result_clear(ctx, &res);
  /* The objective's failure, naming the parameter. */
  double q[1] = {1};
  assert_int_equal(ct_gradient_check(ctx, fragile, NULL, q, 1, g, NULL, &res),
                   CT_ERR_SOLVER);
  assert_non_null(strstr(ct_errmsg(ctx), "p[0]"));
  assert_non_null(strstr(ct_errmsg(ctx), "too large"));
  ct_gradcheck_result_clear(ctx, &res);
  ct_context_free(ctx);
}

static int check_once(ct_context *ctx, void *ud) {
  (void)ud;
  size_t np = 3;
  double p[3] = {0.1, 0.2, 0.3}, g[3];
  gradient(p, np, g);
  ct_gradcheck_result res;
  int rc = ct_gradient_check(ctx, objective, &np, p, np, g, NULL, &res);
  ct_gradcheck_result_clear(ctx, &res);
  return rc;
}

static void test_fault_injection(void **state) {
  (void)state;
  assert_true(ct_test_fault_sweep(check_once, NULL) >= 5);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_known_gradient_passes),
      cmocka_unit_test(test_wrong_component_is_worst),
      cmocka_unit_test(test_adjoint_gradient_checks),
      cmocka_unit_test(test_bad_arguments_and_failures),
      cmocka_unit_test(test_fault_injection),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
