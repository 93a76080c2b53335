/* The PETSc SNES back end of ct_nlsolve: a small system with a known root,
 * a 2-D Bratu problem of 400 unknowns with the assembled AD Jacobian and
 * the matrix-free AD JVP (agreeing with KINSOL to 1e-8), PETSc options
 * (newtontr, a shared KSP/PC database, misspelt and invalid options), a
 * lagged Jacobian, failures that keep the last iterate (no root, a
 * non-finite residual), fixed points (Newton and Anderson), implicit
 * derivatives after an SNES solve against central differences, and a
 * fault-injection sweep. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotangent.h"
#include "ct_models.h"
#include "ct_asan_mpi.h"
#include "ct_test.h"

/* ---- Problems ---------------------------------------------------------------- */

/* F(x, p) = (x0^2 + x1^2 - p0, x0 - p1 x1): root x0 = p1 x1,
 * x1 = sqrt(p0 / (1 + p1^2)). Returns the tracing status (for the fault
 * sweep). */
static int trace_circle_line(ct_context *ctx, ct_fun **out) {
  ct_graph *g = ct_graph_new(ctx);
  if (!g) return CT_ERR_NOMEM;
  ct_var x[2], p[2], F[2];
  ct_graph_input(g, "x", 2, NULL, x);
  ct_graph_input(g, "p", 2, NULL, p);
  F[0] = ct_sub(ct_add(ct_sqr(x[0]), ct_sqr(x[1])), p[0]);
  F[1] = ct_sub(x[0], ct_mul(p[1], x[1]));
  ct_graph_output(g, "F", 2, F);
  int rc = ct_graph_finalize(g, out);
  ct_graph_free(g);
  return rc;
}

static ct_fun *circle_line(ct_context *ctx) {
  ct_fun *F = NULL;
  if (trace_circle_line(ctx, &F) != CT_OK) fail_msg("tracing failed: %s", ct_errmsg(ctx));
  return F;
}

#define BRATU_M 20
#define BRATU_N (BRATU_M * BRATU_M)

/* The 2-D Bratu problem on the unit square, m x m interior points, zero
 * boundary values: F_ij = 4u_ij - (neighbours) - h^2 p_ij exp(u_ij), with
 * one parameter (the reaction coefficient) per grid point. */
static ct_fun *bratu(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  static ct_var u[BRATU_N], p[BRATU_N], F[BRATU_N];
  const double h2 = 1.0 / ((BRATU_M + 1.0) * (BRATU_M + 1.0));
  ct_graph_input(g, "x", BRATU_N, NULL, u);
  ct_graph_input(g, "p", BRATU_N, NULL, p);
  for (int i = 0; i < BRATU_M; i++)
    for (int j = 0; j < BRATU_M; j++) {
      int k = i * BRATU_M + j;
      ct_var r = ct_mulc(u[k], 4.0);
      if (i > 0) r = ct_sub(r, u[k - BRATU_M]);
      if (i < BRATU_M - 1) r = ct_sub(r, u[k + BRATU_M]);
      if (j > 0) r = ct_sub(r, u[k - 1]);
      if (j < BRATU_M - 1) r = ct_sub(r, u[k + 1]);
      F[k] = ct_sub(r, ct_mulc(ct_mul(p[k], ct_exp(u[k])), h2));
    }
  ct_graph_output(g, "F", BRATU_N, F);
  return ct_test_finish(g);
}

/* Parameters of the Bratu problem: lambda around 5, varying in space. */
static void bratu_params(double *p) {
  for (int k = 0; k < BRATU_N; k++) p[k] = 5.0 + 0.5 * sin(0.3 * k);
}

/* F(x) = x^2 + 1: no real root. */
static ct_fun *no_root(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var x, F;
  ct_graph_input(g, "x", 1, NULL, &x);
  F = ct_addc(ct_sqr(x), 1.0);
  ct_graph_output(g, "F", 1, &F);
  return ct_test_finish(g);
}

/* F(x) = log(x) - 1: not finite for x <= 0. */
static ct_fun *log_root(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var x, F;
  ct_graph_input(g, "x", 1, NULL, &x);
  F = ct_addc(ct_log(x), -1.0);
  ct_graph_output(g, "F", 1, &F);
  return ct_test_finish(g);
}

#define FP_N 3

/* The fixed point x = G(x, p), G_i = 0.5 cos(x_i + x_{i+1}) + p_i (a
 * contraction: |G_x| <= 0.5 per entry pair). */
static ct_fun *fixed_point(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var x[FP_N], p[FP_N], G[FP_N];
  ct_graph_input(g, "x", FP_N, NULL, x);
  ct_graph_input(g, "p", FP_N, NULL, p);
  for (int i = 0; i < FP_N; i++)
    G[i] = ct_add(ct_mulc(ct_cos(ct_add(x[i], x[(i + 1) % FP_N])), 0.5), p[i]);
  ct_graph_output(g, "G", FP_N, G);
  return ct_test_finish(g);
}

/* A problem from `build`, failing the test on error. */
static ct_nlsolve *problem(ct_context *ctx, ct_fun *(*build)(ct_context *)) {
  ct_fun *F = build(ctx);
  ct_nlsolve *nls = NULL;
  int rc = ct_nlsolve_new(ctx, F, &nls);
  ct_fun_free(F);
  if (rc != CT_OK) fail_msg("ct_nlsolve_new: %s", ct_errmsg(ctx));
  return nls;
}

/* SNES options with the given linear solver and PETSc options. */
static ct_nlsolve_options snes_options(const char *linear_solver, const char *petsc) {
  ct_nlsolve_options o = ct_nlsolve_default_options();
  o.solver = "snes";
  o.linear_solver = linear_solver;
  o.petsc_options = petsc;
  return o;
}

static double max_abs(const double *a, size_t n) {
  double m = 0.0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
  return m;
}

/* max |F| at x, recomputed through the public residual. */
static double residual_norm(ct_context *ctx, ct_nlsolve *nls, const double *x,
                            const double *p) {
  double F[BRATU_N];
  assert_int_equal(ct_nlsolve_residual(ctx, nls, x, p, F), CT_OK);
  return max_abs(F, ct_nlsolve_n(nls));
}

/* Collects the context's warnings (for the options database checks). */
typedef struct log_capture {
  char text[4096];
} log_capture;

static void capture_log(void *ud, ct_log_level level, const char *message) {
  log_capture *c = ud;
  if (level > CT_LOG_WARNING) return;
  size_t used = strlen(c->text);
  snprintf(c->text + used, sizeof c->text - used, "%s\n", message);
}

static int setup_ctx(void **state) {
  ct_context *ctx = ct_context_new(NULL);
  if (!ctx) return -1;
  *state = ctx;
  return 0;
}

static int teardown_ctx(void **state) {
  ct_context_free(*state);
  return 0;
}

/* ---- Root problems ----------------------------------------------------------- */

static void test_small_system(void **state) {
  ct_context *ctx = *state;
  ct_nlsolve *nls = problem(ctx, circle_line);
  const double p[2] = {4.0, 2.0};
  const double x1 = sqrt(4.0 / 5.0), x0 = 2.0 * x1;
  const char *solvers[] = {"dense", "klu", "gmres"};
  for (int s = 0; s < 3; s++) {
    double x[2] = {1.0, 1.0};
    ct_nlsolve_options o = snes_options(solvers[s], NULL);
    ct_nlsolve_stats st;
    int rc = ct_nlsolve_solve(ctx, nls, &o, p, x, &st);
    if (rc != CT_OK) fail_msg("%s: %s", solvers[s], ct_errmsg(ctx));
    assert_true(fabs(x[0] - x0) < 1e-10 && fabs(x[1] - x1) < 1e-10);
    assert_true(st.fnorm <= o.ftol);
    assert_true(st.iters >= 2 && st.iters < 20);
    assert_true(st.f_evals > st.iters);
    if (!strcmp(solvers[s], "gmres")) {
      assert_true(st.jtimes > 0 && st.lin_iters > 0);
    } else {
      assert_true(st.jac_evals > 0 && st.factorizations == st.jac_evals);
    }
  }
  ct_nlsolve_free(nls);
}

/* Solves the Bratu problem with SNES (given linear solver and options) and
 * KINSOL and checks they agree to 1e-8. */
static void bratu_against_kinsol(ct_context *ctx, const char *linear_solver,
                                 const char *petsc, ct_nlsolve_stats *st) {
  ct_nlsolve *nls = problem(ctx, bratu);
  static double p[BRATU_N], x[BRATU_N], xk[BRATU_N];
  bratu_params(p);
  /* From zero (KINSOL's own step bound, 1000 |x0|, once stalled there),
   * but for PETSc's trust region, whose first radius scales with |x0|. */
  double x0 = petsc && strstr(petsc, "newtontr") ? 0.05 : 0.0;
  for (int k = 0; k < BRATU_N; k++) x[k] = xk[k] = x0;
  ct_nlsolve_options o = snes_options(linear_solver, petsc);
  int rc = ct_nlsolve_solve(ctx, nls, &o, p, x, st);
  if (rc != CT_OK) fail_msg("SNES (%s, %s): %s", linear_solver, petsc ? petsc : "",
                            ct_errmsg(ctx));
  assert_true(st->fnorm <= o.ftol);
  assert_true(residual_norm(ctx, nls, x, p) <= o.ftol);
  ct_nlsolve_options ok = ct_nlsolve_default_options();
  ok.linear_solver = "klu";
  rc = ct_nlsolve_solve(ctx, nls, &ok, p, xk, NULL);
  if (rc != CT_OK) fail_msg("KINSOL: %s", ct_errmsg(ctx));
  double diff = 0.0;
  for (int k = 0; k < BRATU_N; k++) diff = fmax(diff, fabs(x[k] - xk[k]));
  if (!(diff <= 1e-8)) fail_msg("SNES and KINSOL differ by %.3e", diff);
  assert_true(max_abs(x, BRATU_N) > 0.1); /* a nontrivial solution */
  print_message("Bratu %d unknowns, SNES %s %s: %ld iterations, %ld residuals, %ld "
                "Jacobians, %ld JVPs, %ld linear iterations; max |x_snes - x_kinsol| = "
                "%.1e\n", BRATU_N, linear_solver, petsc ? petsc : "", st->iters,
                st->f_evals, st->jac_evals, st->jtimes, st->lin_iters, diff);
  ct_nlsolve_free(nls);
}

static void test_bratu_assembled(void **state) {
  ct_nlsolve_stats st;
  bratu_against_kinsol(*state, "klu", NULL, &st);
  assert_true(st.jac_evals > 0 && st.jtimes == 0);
  assert_int_equal(st.lin_iters, st.iters); /* preonly + LU: one per step */
}

static void test_bratu_matrix_free(void **state) {
  ct_nlsolve_stats st;
  bratu_against_kinsol(*state, "gmres", "-ksp_rtol 1e-10", &st);
  assert_int_equal(st.jac_evals, 0);
  assert_true(st.jtimes >= st.lin_iters && st.lin_iters > st.iters);
}

static void test_bratu_lagged_jacobian(void **state) {
  ct_context *ctx = *state;
  ct_nlsolve *nls = problem(ctx, bratu);
  static double p[BRATU_N], x[BRATU_N];
  bratu_params(p);
  ct_nlsolve_options o = snes_options("klu", NULL);
  o.max_setup = 3;
  ct_nlsolve_stats st;
  int rc = ct_nlsolve_solve(ctx, nls, &o, p, x, &st);
  if (rc != CT_OK) fail_msg("%s", ct_errmsg(ctx));
  assert_true(st.fnorm <= o.ftol);
  assert_true(st.jac_evals < st.iters); /* modified Newton reuses F_x */
  ct_nlsolve_free(nls);
}

/* ---- PETSc options ----------------------------------------------------------- */

static void test_trust_region_and_shared_database(void **state) {
  ct_context *ctx = *state;
  log_capture log = {""};
  ct_context_set_log_fn(ctx, capture_log, &log);
  ct_context_set_log_level(ctx, CT_LOG_WARNING);
  ct_nlsolve_stats st;
  /* The KSP and PC of the SNES read the same private database: ILU-GMRES
   * instead of the default LU, and no option is reported unused. */
  bratu_against_kinsol(ctx, "klu",
                       "-snes_type newtontr -ksp_type gmres -pc_type ilu -ksp_rtol 1e-12", &st);
  assert_true(st.lin_iters > st.iters);
  assert_null(strstr(log.text, "was not used"));
  ct_context_set_log_fn(ctx, NULL, NULL);
}

static void test_misspelt_option_is_reported(void **state) {
  ct_context *ctx = *state;
  log_capture log = {""};
  ct_context_set_log_fn(ctx, capture_log, &log);
  ct_context_set_log_level(ctx, CT_LOG_WARNING);
  ct_nlsolve *nls = problem(ctx, circle_line);
  const double p[2] = {4.0, 2.0};
  double x[2] = {1.0, 1.0};
  ct_nlsolve_options o = snes_options("dense", "-ksp_typ gmres");
  assert_int_equal(ct_nlsolve_solve(ctx, nls, &o, p, x, NULL), CT_OK);
  assert_non_null(strstr(log.text, "-ksp_typ"));
  ct_context_set_log_fn(ctx, NULL, NULL);
  ct_nlsolve_free(nls);
}

static void test_bad_options(void **state) {
  ct_context *ctx = *state;
  ct_nlsolve *nls = problem(ctx, circle_line);
  const double p[2] = {4.0, 2.0};
  const char *bad[] = {"-snes_type no_such_method", "-ksp_type no_such_krylov",
                       "-pc_type no_such_pc", "-snes_linesearch_type no_such_search",
#ifndef __SANITIZE_ADDRESS__
                       /* PETSc 3.18 leaks its options block when it rejects
                        * a value inside SNESSetFromOptions: not under LSan. */
                       "-snes_max_it many",
#endif
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    double x[2] = {1.0, 1.0};
    ct_nlsolve_options o = snes_options("dense", bad[i]);
    int rc = ct_nlsolve_solve(ctx, nls, &o, p, x, NULL);
    if (rc != CT_ERR_ARG) fail_msg("'%s' gave %d: %s", bad[i], rc, ct_errmsg(ctx));
    assert_non_null(strstr(ct_errmsg(ctx), bad[i]));
  }
  ct_nlsolve_free(nls);
}

/* ---- Failures ---------------------------------------------------------------- */

static void test_no_root_keeps_last_iterate(void **state) {
  ct_context *ctx = *state;
  ct_nlsolve *nls = problem(ctx, no_root);
  const char *solvers[] = {"dense", "gmres"};
  for (int s = 0; s < 2; s++) {
    double x = 2.0;
    ct_nlsolve_options o = snes_options(solvers[s], NULL);
    ct_nlsolve_stats st;
    int rc = ct_nlsolve_solve(ctx, nls, &o, NULL, &x, &st);
    assert_int_equal(rc, CT_ERR_SOLVER);
    const char *msg = ct_errmsg(ctx);
    assert_non_null(strstr(msg, "SNES: DIVERGED_"));
    assert_non_null(strstr(msg, "at iteration"));
    /* x is the last iterate: its residual is the one the message names. */
    assert_true(isfinite(x) && x != 2.0);
    assert_true(fabs(st.fnorm - (x * x + 1.0)) <= 1e-12 * st.fnorm);
    char expect[64];
    snprintf(expect, sizeof expect, "max |F| = %.3e", st.fnorm);
    assert_non_null(strstr(msg, expect));
  }
  ct_nlsolve_free(nls);
}

static void test_step_stop_above_ftol_fails(void **state) {
  ct_context *ctx = *state;
  ct_nlsolve *nls = problem(ctx, circle_line);
  const double p[2] = {4.0, 2.0};
  double x[2] = {1.0, 1.0};
  /* A huge relative step tolerance stops SNES after one step, with |F|
   * still large: reported as a failure, not a solution. */
  ct_nlsolve_options o = snes_options("dense", "-snes_stol 0.9");
  int rc = ct_nlsolve_solve(ctx, nls, &o, p, x, NULL);
  assert_int_equal(rc, CT_ERR_SOLVER);
  assert_non_null(strstr(ct_errmsg(ctx), "CONVERGED_SNORM_RELATIVE"));
  assert_non_null(strstr(ct_errmsg(ctx), "above ftol"));
  ct_nlsolve_free(nls);
}

static void test_non_finite_residual(void **state) {
  ct_context *ctx = *state;
  ct_nlsolve *nls = problem(ctx, log_root);
  double x = -1.0;
  ct_nlsolve_options o = snes_options("dense", NULL);
  assert_int_equal(ct_nlsolve_solve(ctx, nls, &o, NULL, &x, NULL), CT_ERR_NUMERIC);
  assert_true(x == -1.0);
  /* From a good start the same problem solves (x = e). */
  x = 1.0;
  assert_int_equal(ct_nlsolve_solve(ctx, nls, &o, NULL, &x, NULL), CT_OK);
  assert_true(fabs(x - exp(1.0)) < 1e-10);
  ct_nlsolve_free(nls);
}

/* ---- Fixed points ------------------------------------------------------------ */

static void test_fixed_point(void **state) {
  ct_context *ctx = *state;
  ct_nlsolve *nls = problem(ctx, fixed_point);
  const double p[FP_N] = {0.1, -0.2, 0.3};
  const char *petsc[] = {NULL, "-snes_type anderson -snes_anderson_m 3"};
  double ref[FP_N] = {0};
  for (int s = 0; s < 2; s++) {
    double x[FP_N] = {0};
    ct_nlsolve_options o = snes_options("dense", petsc[s]);
    ct_nlsolve_stats st;
    int rc = ct_nlsolve_solve(ctx, nls, &o, p, x, &st);
    if (rc != CT_OK) fail_msg("%s: %s", petsc[s] ? petsc[s] : "newtonls", ct_errmsg(ctx));
    for (int i = 0; i < FP_N; i++) {
      double G = 0.5 * cos(x[i] + x[(i + 1) % FP_N]) + p[i];
      assert_true(fabs(x[i] - G) <= 1e-10);
    }
    if (s == 0) memcpy(ref, x, sizeof ref);
    else
      for (int i = 0; i < FP_N; i++) assert_true(fabs(x[i] - ref[i]) < 1e-9);
  }
  ct_nlsolve_free(nls);
}

/* ---- Implicit derivatives after an SNES solve -------------------------------- */

/* loss = sum_k w_k x_k with w_k = 1 + k/n: the adjoint of the seed w
 * after an SNES solve with `linear_solver`, against central differences of
 * SNES re-solves with exact Newton steps (LU, so that the re-solved x are
 * accurate far below the difference step). */
static void check_adjoint_after_snes(ct_context *ctx, const char *linear_solver) {
  ct_nlsolve *nls = problem(ctx, bratu);
  static double p[BRATU_N], x[BRATU_N], w[BRATU_N], p_bar[BRATU_N], xs[BRATU_N];
  bratu_params(p);
  memset(x, 0, sizeof x);
  for (int k = 0; k < BRATU_N; k++) w[k] = 1.0 + (double)k / BRATU_N;
  ct_nlsolve_options o = snes_options(linear_solver, NULL);
  o.ftol = 1e-13;
  if (ct_nlsolve_solve(ctx, nls, &o, p, x, NULL) != CT_OK) fail_msg("%s", ct_errmsg(ctx));
  int rc = ct_nlsolve_adjoint(ctx, nls, w, p_bar, NULL);
  if (rc != CT_OK) fail_msg("adjoint (%s): %s", linear_solver, ct_errmsg(ctx));
  const int probe[] = {0, 37, 210, BRATU_N - 1};
  const double h = 1e-5;
  o.linear_solver = "klu";
  for (int t = 0; t < 4; t++) {
    double loss[2];
    for (int side = 0; side < 2; side++) {
      int k = probe[t];
      double keep = p[k];
      p[k] = keep + (side ? -h : h);
      memcpy(xs, x, sizeof xs);
      if (ct_nlsolve_solve(ctx, nls, &o, p, xs, NULL) != CT_OK) fail_msg("%s", ct_errmsg(ctx));
      p[k] = keep;
      loss[side] = 0.0;
      for (int i = 0; i < BRATU_N; i++) loss[side] += w[i] * xs[i];
    }
    double fd = (loss[0] - loss[1]) / (2 * h);
    if (!(fabs(fd - p_bar[probe[t]]) <= 1e-6 * fmax(1.0, fabs(fd))))
      fail_msg("%s: dloss/dp[%d] adjoint %.10e, central differences %.10e", linear_solver,
               probe[t], p_bar[probe[t]], fd);
  }
  ct_nlsolve_free(nls);
}

static void test_adjoint_after_snes(void **state) {
  check_adjoint_after_snes(*state, "klu");
  check_adjoint_after_snes(*state, "gmres");
}

/* ---- Fault injection --------------------------------------------------------- */

/* One SNES solve of the small system, with every allocation allowed to
 * fail. */
static int small_solve_under_faults(ct_context *ctx, void *ud) {
  const char *linear_solver = ud;
  ct_fun *F = NULL;
  ct_nlsolve *nls = NULL;
  int rc = trace_circle_line(ctx, &F);
  if (rc < 0) return rc;
  rc = ct_nlsolve_new(ctx, F, &nls);
  ct_fun_free(F);
  if (rc < 0) return rc;
  const double p[2] = {4.0, 2.0};
  double x[2] = {1.0, 1.0};
  ct_nlsolve_options o = snes_options(linear_solver, "-snes_linesearch_type bt");
  rc = ct_nlsolve_solve(ctx, nls, &o, p, x, NULL);
  ct_nlsolve_free(nls);
  return rc;
}

static void test_fault_injection(void **state) {
  (void)state;
  assert_true(ct_test_fault_sweep(small_solve_under_faults, "dense") > 0);
  assert_true(ct_test_fault_sweep(small_solve_under_faults, "gmres") > 0);
}


int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_small_system),
      cmocka_unit_test(test_bratu_assembled),
      cmocka_unit_test(test_bratu_matrix_free),
      cmocka_unit_test(test_bratu_lagged_jacobian),
      cmocka_unit_test(test_trust_region_and_shared_database),
      cmocka_unit_test(test_misspelt_option_is_reported),
      cmocka_unit_test(test_bad_options),
      cmocka_unit_test(test_no_root_keeps_last_iterate),
      cmocka_unit_test(test_step_stop_above_ftol_fails),
      cmocka_unit_test(test_non_finite_residual),
      cmocka_unit_test(test_fixed_point),
      cmocka_unit_test(test_adjoint_after_snes),
      cmocka_unit_test(test_fault_injection),
  };
  return cmocka_run_group_tests(tests, setup_ctx, teardown_ctx);
}
