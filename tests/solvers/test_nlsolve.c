/* Nonlinear solves (ct_nlsolve) through KINSOL with AD Jacobians: SUNDIALS'
 * kinFerTron_dns and kinRoboKin_dns reproduced (same formulation, bounds
 * through KINSOL constraints, same initial guesses and tolerances), every
 * strategy with every linear solver on one problem, the Anderson
 * fixed-point example kinAnalytic_fp, failure reports, bad arguments,
 * JIT, and fault injection. */
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
#include "cotangent/nlsolve.h"
#include "ct_asan_mpi.h"
#include "ct_test.h"
#include "ct_models.h"

#define CT_PI 3.14159265358979323846

/* ---- Models ------------------------------------------------------------------- */

#define FT_PI 3.1415926
#define FT_E 2.7182818

/* kinFerTron_dns: x = (x1, x2, l1, L1, l2, L2), p = (lb1, ub1, lb2, ub2). */
static ct_fun *fertron(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var u[6], p[4], f[6];
  ct_graph_input(g, "x", 6, NULL, u);
  ct_graph_input(g, "p", 4, NULL, p);
  ct_var x1 = u[0], x2 = u[1];
  f[0] = ct_sub(ct_sub(ct_mulc(ct_sin(ct_mul(x1, x2)), 0.5), ct_mulc(x2, 0.25 / FT_PI)),
                ct_mulc(x1, 0.5));
  f[1] = ct_sub(ct_add(ct_mulc(ct_addc(ct_exp(ct_mulc(x1, 2.0)), -FT_E), 1.0 - 0.25 / FT_PI),
                       ct_mulc(x2, FT_E / FT_PI)),
                ct_mulc(x1, 2.0 * FT_E));
  f[2] = ct_add(ct_sub(u[2], x1), p[0]);
  f[3] = ct_add(ct_sub(u[3], x1), p[1]);
  f[4] = ct_add(ct_sub(u[4], x2), p[2]);
  f[5] = ct_add(ct_sub(u[5], x2), p[3]);
  ct_graph_output(g, "F", 6, f);
  return ct_test_finish(g);
}

static const double fertron_p[4] = {0.25, 1.0, 1.5, 2.0 * FT_PI};
static const double fertron_constraints[6] = {0, 0, 1, -1, 1, -1};

/* SetInitialGuess1 (bounds) and SetInitialGuess2 (middle of the box). */
static void fertron_guess(int which, double *u) {
  const double *lb = fertron_p;
  double x1 = which == 1 ? lb[0] : 0.5 * (lb[0] + lb[1]);
  double x2 = which == 1 ? lb[2] : 0.5 * (lb[2] + lb[3]);
  double v[6] = {x1, x2, x1 - lb[0], x1 - lb[1], x2 - lb[2], x2 - lb[3]};
  memcpy(u, v, sizeof v);
}

/* kinRoboKin_dns: x (8), lower slacks l = 1 + x, upper u = 1 - x (24). */
static ct_fun *robokin(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var y[24], f[24];
  ct_graph_input(g, "x", 24, NULL, y);
  ct_var x1 = y[0], x2 = y[1], x3 = y[2], x4 = y[3], x5 = y[4], x6 = y[5], x7 = y[6],
         x8 = y[7];
  f[0] = ct_addc(ct_add(ct_add(ct_sub(ct_sub(ct_add(ct_mulc(x1, -0.1238), x7),
                                             ct_mulc(x2, 0.001637)), ct_mulc(x4, 0.9338)),
                               ct_mulc(ct_mul(x1, x3), 0.004731)),
                        ct_mulc(ct_mul(x2, x3), -0.3578)), -0.3571);
  f[1] = ct_addc(ct_add(ct_add(ct_sub(ct_sub(ct_sub(ct_mulc(x1, 0.2638), x7),
                                             ct_mulc(x2, 0.07745)), ct_mulc(x4, 0.6734)),
                               ct_mulc(ct_mul(x1, x3), 0.2238)),
                        ct_mulc(ct_mul(x2, x3), 0.7623)), -0.6022);
  f[2] = ct_add(ct_add(ct_mulc(x1, 0.3578), ct_mulc(x2, 0.004731)), ct_mul(x6, x8));
  f[3] = ct_addc(ct_add(ct_mulc(x1, -0.7623), ct_mulc(x2, 0.2238)), 0.3461);
  f[4] = ct_addc(ct_add(ct_sqr(x1), ct_sqr(x2)), -1);
  f[5] = ct_addc(ct_add(ct_sqr(x3), ct_sqr(x4)), -1);
  f[6] = ct_addc(ct_add(ct_sqr(x5), ct_sqr(x6)), -1);
  f[7] = ct_addc(ct_add(ct_sqr(x7), ct_sqr(x8)), -1);
  for (int i = 0; i < 8; i++) {
    f[8 + i] = ct_sub(ct_addc(y[8 + i], -1.0), y[i]);
    f[16 + i] = ct_add(ct_addc(y[16 + i], -1.0), y[i]);
  }
  ct_graph_output(g, "F", 24, f);
  return ct_test_finish(g);
}

/* A 1-D reaction-diffusion root problem on NRD points (SPD Jacobian):
 * F_i = 100 h^2 (2 x_i - x_{i-1} - x_{i+1}) + (x_i^3 + x_i - p0 - p1 i / NRD) / 2. */
#define NRD 30
static ct_fun *reaction_diffusion(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var x[NRD], p[2], f[NRD];
  ct_graph_input(g, "x", NRD, NULL, x);
  ct_graph_input(g, "p", 2, NULL, p);
  double h2 = 1.0 / ((NRD + 1.0) * (NRD + 1.0));
  for (int i = 0; i < NRD; i++) {
    ct_var lap = ct_mulc(x[i], 2.0);
    if (i > 0) lap = ct_sub(lap, x[i - 1]);
    if (i < NRD - 1) lap = ct_sub(lap, x[i + 1]);
    ct_var src = ct_add(p[0], ct_mulc(p[1], (double)i / NRD));
    ct_var cubic = ct_add(ct_mul(ct_sqr(x[i]), x[i]), x[i]);
    f[i] = ct_add(ct_mulc(lap, h2 * 100.0), ct_mulc(ct_sub(cubic, src), 0.5));
  }
  ct_graph_output(g, "F", NRD, f);
  return ct_test_finish(g);
}
static const double rd_p[2] = {2.0, 3.0};

/* kinAnalytic_fp's fixed-point map G (output "G"). */
static ct_fun *analytic_fp(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var u[3], G[3];
  ct_graph_input(g, "x", 3, NULL, u);
  G[0] = ct_addc(ct_mulc(ct_cos(ct_mul(ct_addc(u[1], -1.0), u[2])), 1.0 / 3.0), 1.0 / 6.0);
  G[1] = ct_addc(ct_mulc(ct_sqrt(ct_addc(ct_add(ct_sqr(u[0]), ct_sin(u[2])), 1.06)), 1.0 / 9.0),
                 0.9);
  G[2] = ct_addc(ct_mulc(ct_exp(ct_neg(ct_mul(u[0], ct_addc(u[1], -1.0)))), -1.0 / 20.0),
                 -(10.0 * CT_PI - 3.0) / 60.0);
  ct_graph_output(g, "G", 3, G);
  return ct_test_finish(g);
}

static ct_nlsolve *new_problem(ct_context *ctx, ct_fun *(*build)(ct_context *)) {
  ct_fun *f = build(ctx);
  ct_nlsolve *nls = NULL;
  int rc = ct_nlsolve_new(ctx, f, &nls);
  ct_fun_free(f);
  if (rc != CT_OK) fail_msg("ct_nlsolve_new: %s", ct_errmsg(ctx));
  return nls;
}

/* ---- SUNDIALS references -------------------------------------------------------- */

typedef struct fertron_case {
  int guess;
  const char *strategy;
  long max_setup;
  double x1, x2; /* as printed in kinFerTron_dns.out */
  long nni;
} fertron_case;

/* kinFerTron_dns.out; "Modified Newton" is KINSOL's default of 10 setups. */
static const fertron_case fertron_cases[] = {
    {1, "newton", 1, 0.299449, 2.83693, 3},     {1, "linesearch", 1, 0.299449, 2.83693, 3},
    {1, "newton", 10, 0.299449, 2.83693, 11},   {1, "linesearch", 10, 0.299449, 2.83693, 11},
    {2, "newton", 1, 0.5, 3.14159, 5},          {2, "linesearch", 1, 0.5, 3.14159, 5},
    {2, "newton", 10, 0.500003, 3.1416, 12},    {2, "linesearch", 10, 0.500003, 3.1416, 12},
};

static void test_fertron(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_nlsolve *nls = new_problem(ctx, fertron);
  assert_int_equal(ct_nlsolve_n(nls), 6);
  assert_int_equal(ct_nlsolve_n_params(nls), 4);
  for (size_t c = 0; c < sizeof fertron_cases / sizeof fertron_cases[0]; c++) {
    const fertron_case *fc = &fertron_cases[c];
    ct_nlsolve_options o = ct_nlsolve_default_options();
    o.ftol = 1e-5;
    o.steptol = 1e-5;
    o.strategy = fc->strategy;
    o.max_setup = fc->max_setup;
    o.linear_solver = "dense";
    o.constraints = fertron_constraints;
    double u[6];
    fertron_guess(fc->guess, u);
    ct_nlsolve_stats st;
    int rc = ct_nlsolve_solve(ctx, nls, &o, fertron_p, u, &st);
    if (rc != CT_OK) fail_msg("case %zu: %s", c, ct_errmsg(ctx));
    char got[64], want[64];
    snprintf(got, sizeof got, "%9.6g %9.6g", u[0], u[1]);
    snprintf(want, sizeof want, "%9.6g %9.6g", fc->x1, fc->x2);
    if (strcmp(got, want))
      fail_msg("case %zu: [x1,x2] = %s, kinFerTron_dns.out has %s", c, got, want);
    /* KINSOL's example uses its difference-quotient Jacobian; ours is exact. */
    if (labs(st.iters - fc->nni) > 1)
      fail_msg("case %zu: %ld iterations, the reference %ld", c, st.iters, fc->nni);
    assert_true(st.fnorm <= 1e-5);
    assert_true(u[2] >= 0 && u[3] <= 0 && u[4] >= 0 && u[5] <= 0);
  }
  ct_nlsolve_free(nls);
  ct_context_free(ctx);
}

static void test_robokin(void **state) {
  (void)state;
  static const double ref[8] = {0.671554, 0.740955, 0.951893, -0.306431,
                                0.963811, -0.266587, 0.404641, 0.914475};
  ct_context *ctx = ct_context_new(NULL);
  ct_nlsolve *nls = new_problem(ctx, robokin);
  double y[24], c[24];
  for (int i = 0; i < 24; i++) {
    y[i] = i < 8 ? sqrt(2.0) / 2.0 : 1.0;
    c[i] = i < 8 ? 0.0 : 1.0;
  }
  ct_nlsolve_options o = ct_nlsolve_default_options();
  o.ftol = 1e-5;
  o.steptol = 1e-5;
  o.linear_solver = "dense";
  o.constraints = c;
  ct_nlsolve_stats st;
  int rc = ct_nlsolve_solve(ctx, nls, &o, NULL, y, &st);
  if (rc != CT_OK) fail_msg("%s", ct_errmsg(ctx));
  for (int i = 0; i < 8; i++) {
    char got[32], want[32];
    snprintf(got, sizeof got, "%g", y[i]);
    snprintf(want, sizeof want, "%g", ref[i]);
    if (strcmp(got, want)) fail_msg("x%d = %s, kinRoboKin_dns.out has %s", i + 1, got, want);
    assert_true(y[8 + i] >= 0 && y[16 + i] >= 0);
  }
  assert_int_equal(st.iters, 6); /* "Nonlinear iters = 6" */
  assert_true(st.jac_evals >= 6 && st.factorizations == st.jac_evals);
  ct_nlsolve_free(nls);
  ct_context_free(ctx);
}

/* ---- Every strategy with every linear solver -------------------------------------- */

/* x solved to ftol 1e-12 from zero, with the given strategy and solver. */
static int solve_rd(ct_context *ctx, ct_nlsolve *nls, const char *strategy,
                    const char *linear_solver, double *x, ct_nlsolve_stats *st) {
  ct_nlsolve_options o = ct_nlsolve_default_options();
  o.ftol = 1e-12;
  o.strategy = strategy;
  o.linear_solver = linear_solver;
  for (int i = 0; i < NRD; i++) x[i] = 1.0;
  return ct_nlsolve_solve(ctx, nls, &o, rd_p, x, st);
}

static void test_strategies_and_linear_solvers(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_nlsolve *nls = new_problem(ctx, reaction_diffusion);
  assert_int_equal(ct_nlsolve_jac_nnz(nls), 3 * NRD - 2);
  double ref[NRD], x[NRD], F[NRD];
  ct_nlsolve_stats st;
  assert_int_equal(solve_rd(ctx, nls, "linesearch", "dense", ref, &st), CT_OK);
  assert_int_equal(ct_nlsolve_residual(ctx, nls, ref, rd_p, F), CT_OK);
  for (int i = 0; i < NRD; i++) assert_true(fabs(F[i]) <= 1e-12);
  const char *strategies[] = {"linesearch", "newton", "picard"};
  const char *solvers[] = {"dense", "klu", "umfpack", "cholmod", "petsc", "gmres", "auto"};
  for (size_t s = 0; s < 3; s++)
    for (size_t l = 0; l < sizeof solvers / sizeof solvers[0]; l++) {
      if (!strcmp(solvers[l], "petsc") && !ct_linsolve_find("petsc"))
        continue;
      if (!strcmp(strategies[s], "picard") && !strcmp(solvers[l], "gmres")) {
        assert_int_equal(solve_rd(ctx, nls, "picard", "gmres", x, &st), CT_ERR_ARG);
        continue;
      }
      int rc = solve_rd(ctx, nls, strategies[s], solvers[l], x, &st);
      if (rc != CT_OK) fail_msg("%s/%s: %s", strategies[s], solvers[l], ct_errmsg(ctx));
      for (int i = 0; i < NRD; i++)
        if (fabs(x[i] - ref[i]) > 1e-9)
          fail_msg("%s/%s: x[%d] = %.15g, reference %.15g", strategies[s], solvers[l], i,
                   x[i], ref[i]);
      assert_true(st.iters > 0 && st.f_evals > st.iters && st.fnorm <= 1e-12);
      if (!strcmp(solvers[l], "gmres")) assert_true(st.jtimes > 0 && st.lin_iters > 0);
      else if (strcmp(solvers[l], "petsc")) assert_true(st.factorizations > 0);
    }
  ct_nlsolve_free(nls);
  ct_context_free(ctx);
}

/* ---- Fixed points ------------------------------------------------------------------ */

static void test_fixed_point_anderson(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_nlsolve *nls = new_problem(ctx, analytic_fp);
  assert_true(ct_nlsolve_is_fixed_point(nls));
  const double exact[3] = {0.5, 1.0, -CT_PI / 6.0};
  struct { int m; double damping; const char *strategy; } cases[] = {
      {3, 1.0, NULL}, {0, 1.0, "fixed_point"}, {2, 0.7, "fixed_point"},
      {0, 1.0, "linesearch"}, {0, 1.0, "newton"}};
  long plain_iters = 0, aa_iters = 0;
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    ct_nlsolve_options o = ct_nlsolve_default_options();
    o.anderson_m = cases[c].m;
    o.damping = cases[c].damping;
    o.strategy = cases[c].strategy;
    o.ftol = 1e-11;
    double u[3] = {0.1, 0.1, -0.1}; /* kinAnalytic_fp's initial guess */
    ct_nlsolve_stats st;
    int rc = ct_nlsolve_solve(ctx, nls, &o, NULL, u, &st);
    if (rc != CT_OK) fail_msg("case %zu: %s", c, ct_errmsg(ctx));
    assert_true(st.fnorm <= o.ftol);
    for (int i = 0; i < 3; i++)
      if (fabs(u[i] - exact[i]) > 1e-9)
        fail_msg("case %zu: u[%d] = %.15g, exact %.15g", c, i, u[i], exact[i]);
    if (c == 0) aa_iters = st.iters;
    if (c == 1) plain_iters = st.iters;
  }
  assert_true(aa_iters < plain_iters); /* Anderson accelerates */
  ct_nlsolve_free(nls);
  ct_context_free(ctx);
}

/* ---- Failures ---------------------------------------------------------------------- */

static void test_failure_max_iters(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_nlsolve *nls = new_problem(ctx, robokin);
  double y[24], y0[24];
  for (int i = 0; i < 24; i++) y[i] = y0[i] = i < 8 ? sqrt(2.0) / 2.0 : 1.0;
  ct_nlsolve_options o = ct_nlsolve_default_options();
  o.max_iters = 2;
  ct_nlsolve_stats st;
  assert_int_equal(ct_nlsolve_solve(ctx, nls, &o, NULL, y, &st), CT_ERR_SOLVER);
  const char *msg = ct_errmsg(ctx);
  if (!strstr(msg, "KINSOL: KIN_MAXITER_REACHED at iteration 2, max |F| = ") ||
      !strstr(msg, "max_iters"))
    fail_msg("message: %s", msg);
  assert_int_equal(st.iters, 2);
  assert_true(st.fnorm > 0 && isfinite(st.fnorm));
  assert_true(memcmp(y, y0, sizeof y) != 0); /* the last iterate */
  /* No derivatives after a failed solve. */
  double xb[24] = {1}, lam[24];
  assert_int_equal(ct_nlsolve_adjoint(ctx, nls, xb, NULL, lam), CT_ERR_STATE);
  ct_nlsolve_free(nls);
  ct_context_free(ctx);
}

/* F = (x0^2 + p0, x1 - 1): no root for p0 > 0. */
static ct_fun *no_root(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var x[2], p[1], f[2];
  ct_graph_input(g, "x", 2, NULL, x);
  ct_graph_input(g, "p", 1, NULL, p);
  f[0] = ct_add(ct_sqr(x[0]), p[0]);
  f[1] = ct_addc(x[1], -1.0);
  ct_graph_output(g, "F", 2, f);
  return ct_test_finish(g);
}

/* F = (log(x0) - p0, x1): NaN for x0 < 0. */
static ct_fun *log_root(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var x[2], p[1], f[2];
  ct_graph_input(g, "x", 2, NULL, x);
  ct_graph_input(g, "p", 1, NULL, p);
  f[0] = ct_sub(ct_log(x[0]), p[0]);
  f[1] = x[1];
  ct_graph_output(g, "F", 2, f);
  return ct_test_finish(g);
}

static void test_failure_no_root(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_nlsolve *nls = new_problem(ctx, no_root);
  double p = 1.0, x[2] = {1.0, 0.0};
  ct_nlsolve_stats st;
  int rc = ct_nlsolve_solve(ctx, nls, NULL, &p, x, &st);
  assert_int_equal(rc, CT_ERR_SOLVER);
  const char *msg = ct_errmsg(ctx);
  /* Newton from x0 = 1 lands on x0 = 0, where F_x is singular. */
  if (!strstr(msg, "KINSOL: KIN_LSETUP_FAIL at iteration ") || !strstr(msg, "max |F| = ") ||
      !strstr(msg, "singular"))
    fail_msg("message: %s", msg);
  assert_true(isfinite(x[0]) && st.fnorm >= 1.0);
  ct_nlsolve_free(nls);
  ct_context_free(ctx);
}

static void test_failure_nonfinite(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_nlsolve *nls = new_problem(ctx, log_root);
  double p = 0.0, x[2] = {-1.0, 0.0};
  assert_int_equal(ct_nlsolve_solve(ctx, nls, NULL, &p, x, NULL), CT_ERR_NUMERIC);
  const char *msg = ct_errmsg(ctx);
  if (!strstr(msg, "KINSOL: ") || !strstr(msg, "at iteration 0") ||
      !strstr(msg, "the residual is NaN in component 0"))
    fail_msg("message: %s", msg);
  /* The same problem solves from a good guess. */
  double x2[2] = {2.0, 1.0};
  assert_int_equal(ct_nlsolve_solve(ctx, nls, NULL, &p, x2, NULL), CT_OK);
  assert_true(fabs(x2[0] - 1.0) < 1e-10 && fabs(x2[1]) < 1e-10);
  ct_nlsolve_free(nls);
  ct_context_free(ctx);
}

/* ---- Bad arguments ------------------------------------------------------------------ */

static ct_fun *bad_function(ct_context *ctx, int kind) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var x[2], f[3];
  ct_graph_input(g, kind == 0 ? "y" : "x", 2, NULL, x);
  f[0] = ct_sqr(x[0]);
  f[1] = ct_sqr(x[1]);
  f[2] = x[0];
  if (kind == 1) ct_graph_output(g, "F", 3, f);       /* wrong size */
  else if (kind == 2) ct_graph_output(g, "H", 2, f);  /* no F, no G */
  else if (kind == 3) {                               /* both */
    ct_graph_output(g, "F", 2, f);
    ct_graph_output(g, "G", 2, f);
  } else ct_graph_output(g, "F", 2, f);
  return ct_test_finish(g);
}

static void test_bad_arguments(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  const char *expect[] = {"input 'y' is not one of x, p", "has 3 components",
                          "exactly one of the outputs", "not both"};
  for (int k = 0; k < 4; k++) {
    ct_fun *f = bad_function(ctx, k);
    ct_nlsolve *nls = (ct_nlsolve *)1;
    assert_int_equal(ct_nlsolve_new(ctx, f, &nls), CT_ERR_ARG);
    assert_null(nls);
    if (!strstr(ct_errmsg(ctx), expect[k])) fail_msg("case %d: %s", k, ct_errmsg(ctx));
    ct_fun_free(f);
  }
  ct_nlsolve *nls = NULL;
  assert_int_equal(ct_nlsolve_new(ctx, NULL, &nls), CT_ERR_ARG);
  nls = new_problem(ctx, no_root);
  double p = 1.0, x[2] = {0, 0};
  ct_nlsolve_options o = ct_nlsolve_default_options();
  o.strategy = "bisection";
  assert_int_equal(ct_nlsolve_solve(ctx, nls, &o, &p, x, NULL), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "unknown strategy 'bisection'"));
  o = ct_nlsolve_default_options();
  o.linear_solver = "lu";
  assert_int_equal(ct_nlsolve_solve(ctx, nls, &o, &p, x, NULL), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "unknown linear solver 'lu'"));
  o = ct_nlsolve_default_options();
  o.solver = "newton-krylov";
  assert_int_equal(ct_nlsolve_solve(ctx, nls, &o, &p, x, NULL), CT_ERR_ARG);
  o = ct_nlsolve_default_options();
  o.damping = 0;
  assert_int_equal(ct_nlsolve_solve(ctx, nls, &o, &p, x, NULL), CT_ERR_ARG);
  assert_int_equal(ct_nlsolve_solve(ctx, nls, NULL, NULL, x, NULL), CT_ERR_ARG);
  x[0] = NAN;
  assert_int_equal(ct_nlsolve_solve(ctx, nls, NULL, &p, x, NULL), CT_ERR_ARG);
  ct_nlsolve_free(nls);
  ct_nlsolve_free(NULL);
  ct_context_free(ctx);
}

/* ---- JIT and fault injection --------------------------------------------------------- */

static void test_jit_bit_identical(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_nlsolve *a = new_problem(ctx, reaction_diffusion);
  ct_nlsolve *b = new_problem(ctx, reaction_diffusion);
  assert_int_equal(ct_nlsolve_jit(ctx, b, NULL), CT_OK);
  double xa[NRD], xb[NRD];
  ct_nlsolve_stats sa, sb;
  assert_int_equal(solve_rd(ctx, a, "linesearch", "klu", xa, &sa), CT_OK);
  assert_int_equal(solve_rd(ctx, b, "linesearch", "klu", xb, &sb), CT_OK);
  assert_memory_equal(xa, xb, sizeof xa);
  assert_int_equal(sa.iters, sb.iters);
  ct_nlsolve_free(a);
  ct_nlsolve_free(b);
  ct_context_free(ctx);
}

/* Only ct_nlsolve_new and the solve run under the failing allocator: the
 * function is traced with a normal context first. */
typedef struct sweep_data {
  ct_fun *f;
} sweep_data;

static int new_and_solve(ct_context *ctx, void *ud) {
  sweep_data *d = ud;
  ct_nlsolve *nls = NULL;
  int rc = ct_nlsolve_new(ctx, d->f, &nls);
  if (rc < 0) return rc;
  double x[NRD];
  rc = solve_rd(ctx, nls, "linesearch", "klu", x, NULL);
  if (rc == CT_OK) {
    double xb[NRD], pb[2];
    for (int i = 0; i < NRD; i++) xb[i] = 1.0;
    rc = ct_nlsolve_adjoint(ctx, nls, xb, pb, NULL);
  }
  ct_nlsolve_free(nls);
  return rc;
}

static void test_fault_injection(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  sweep_data d = {reaction_diffusion(ctx)};
  long n = ct_test_fault_sweep(new_and_solve, &d);
  assert_true(n > 10);
  ct_fun_free(d.f);
  ct_context_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fertron),
      cmocka_unit_test(test_robokin),
      cmocka_unit_test(test_strategies_and_linear_solvers),
      cmocka_unit_test(test_fixed_point_anderson),
      cmocka_unit_test(test_failure_max_iters),
      cmocka_unit_test(test_failure_no_root),
      cmocka_unit_test(test_failure_nonfinite),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_jit_bit_identical),
      cmocka_unit_test(test_fault_injection),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
