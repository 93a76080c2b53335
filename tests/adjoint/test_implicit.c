/* Implicit derivatives of nonlinear and linear solves: tangents and
 * adjoints against central differences of re-solves (dense, KLU, GMRES,
 * a fixed point), the dot-product test, the implicit gradient against the
 * VJP of an unrolled (traced) Newton iteration, singular and
 * ill-conditioned Jacobians refused, and the one-call gradients of
 * ct_nlsolve_gradient and ct_linsolve_gradient against central
 * differences of the loss. */
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
#include "ct_asan_mpi.h"
#include "ct_test.h"
#include "ct_models.h"

#define CT_PI 3.14159265358979323846

/* ---- Problems ----------------------------------------------------------------- */

/* 1-D reaction-diffusion, NRD points, two parameters (SPD Jacobian). */
#define NRD 12
static ct_fun *reaction_diffusion(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var x[NRD], p[2], f[NRD];
  ct_graph_input(g, "x", NRD, NULL, x);
  ct_graph_input(g, "p", 2, NULL, p);
  for (int i = 0; i < NRD; i++) {
    ct_var lap = ct_mulc(x[i], 2.0);
    if (i > 0) lap = ct_sub(lap, x[i - 1]);
    if (i < NRD - 1) lap = ct_sub(lap, x[i + 1]);
    ct_var src = ct_add(ct_exp(ct_mulc(p[0], 0.5)), ct_mulc(p[1], (double)i / NRD));
    f[i] = ct_add(lap, ct_mulc(ct_sub(ct_mul(ct_sqr(x[i]), x[i]), src), 0.3));
  }
  ct_graph_output(g, "F", NRD, f);
  return ct_test_finish(g);
}
static const double rd_p[2] = {1.2, 3.0};

/* kinAnalytic_fp's map with its constants as parameters: a fixed point. */
static ct_fun *analytic_fp(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var u[3], p[3], G[3];
  ct_graph_input(g, "x", 3, NULL, u);
  ct_graph_input(g, "p", 3, NULL, p);
  G[0] = ct_add(ct_mulc(ct_cos(ct_mul(ct_addc(u[1], -1.0), u[2])), 1.0 / 3.0), p[0]);
  G[1] = ct_add(ct_mulc(ct_sqrt(ct_addc(ct_add(ct_sqr(u[0]), ct_sin(u[2])), 1.06)), 1.0 / 9.0),
                p[1]);
  G[2] = ct_sub(ct_mulc(ct_exp(ct_neg(ct_mul(u[0], ct_addc(u[1], -1.0)))), -1.0 / 20.0), p[2]);
  ct_graph_output(g, "G", 3, G);
  return ct_test_finish(g);
}
static const double fp_p[3] = {1.0 / 6.0, 0.9, (10.0 * CT_PI - 3.0) / 60.0};

/* F = (3 x0 + x1^2 - p0, x0 x1 + 4 x1 - p1): root (1, 1) at p = (4, 5). */
static void small_residual(const ct_var *x, const ct_var *p, ct_var *f) {
  f[0] = ct_sub(ct_add(ct_mulc(x[0], 3.0), ct_sqr(x[1])), p[0]);
  f[1] = ct_sub(ct_add(ct_mul(x[0], x[1]), ct_mulc(x[1], 4.0)), p[1]);
}
static ct_fun *small(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var x[2], p[2], f[2];
  ct_graph_input(g, "x", 2, NULL, x);
  ct_graph_input(g, "p", 2, NULL, p);
  small_residual(x, p, f);
  ct_graph_output(g, "F", 2, f);
  return ct_test_finish(g);
}
static const double small_p[2] = {4.3, 5.2};

/* The loss of the small problem: g = x0^2 + 3 x1 + p0 x1. */
static ct_var small_loss(const ct_var *x, const ct_var *p) {
  return ct_add(ct_add(ct_sqr(x[0]), ct_mulc(x[1], 3.0)), ct_mul(p[0], x[1]));
}
static ct_fun *small_g(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var x[2], p[2];
  ct_graph_input(g, "x", 2, NULL, x);
  ct_graph_input(g, "p", 2, NULL, p);
  ct_var l = small_loss(x, p);
  ct_graph_output(g, "g", 1, &l);
  return ct_test_finish(g);
}

/* The small problem's loss through NEWTON_ITERS Newton steps from (0.5,
 * 0.5), traced: x_{k+1} = x_k - J^{-1} F with the 2x2 solve by Cramer's
 * rule, J = [[3, 2 x1], [x1, x0 + 4]]. Input p, output "g". */
#define NEWTON_ITERS 12
static ct_fun *unrolled_newton(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var p[2], x[2], f[2];
  ct_graph_input(g, "p", 2, NULL, p);
  x[0] = ct_const(g, 0.5);
  x[1] = ct_const(g, 0.5);
  for (int k = 0; k < NEWTON_ITERS; k++) {
    small_residual(x, p, f);
    ct_var a = ct_const(g, 3.0), b = ct_mulc(x[1], 2.0), c = x[1], d = ct_addc(x[0], 4.0);
    ct_var det = ct_sub(ct_mul(a, d), ct_mul(b, c));
    ct_var dx0 = ct_div(ct_sub(ct_mul(d, f[0]), ct_mul(b, f[1])), det);
    ct_var dx1 = ct_div(ct_sub(ct_mul(a, f[1]), ct_mul(c, f[0])), det);
    x[0] = ct_sub(x[0], dx0);
    x[1] = ct_sub(x[1], dx1);
  }
  ct_var l = small_loss(x, p);
  ct_graph_output(g, "g", 1, &l);
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

/* ---- Central differences of the solve ------------------------------------------- */

/* The strategy (NULL: default) and ftol of solve_at. */
static const char *solve_strategy = NULL;
static double solve_ftol = 1e-13;

/* Solves at p from x0 with linear solver `ls`. */
static void solve_at(ct_context *ctx, ct_nlsolve *nls, const char *ls, const double *p,
                     const double *x0, double *x) {
  ct_nlsolve_options o = ct_nlsolve_default_options();
  o.ftol = solve_ftol;
  o.strategy = solve_strategy;
  o.anderson_m = 3;
  o.linear_solver = ls;
  memcpy(x, x0, ct_nlsolve_n(nls) * sizeof(double));
  if (ct_nlsolve_solve(ctx, nls, &o, p, x, NULL) != CT_OK)
    fail_msg("solve (%s): %s", ls, ct_errmsg(ctx));
}

/* dx/dp dp by central differences (step h along dp) from x0. */
static void fd_tangent(ct_context *ctx, ct_nlsolve *nls, const char *ls, const double *p,
                       const double *dp, const double *x0, double *dx) {
  size_t n = ct_nlsolve_n(nls), np = ct_nlsolve_n_params(nls);
  double pp[8], xp[64], xm[64], h = 1e-5;
  for (size_t j = 0; j < np; j++) pp[j] = p[j] + h * dp[j];
  solve_at(ctx, nls, ls, pp, x0, xp);
  for (size_t j = 0; j < np; j++) pp[j] = p[j] - h * dp[j];
  solve_at(ctx, nls, ls, pp, x0, xm);
  for (size_t i = 0; i < n; i++) dx[i] = (xp[i] - xm[i]) / (2 * h);
}

/* Checks tangents (two directions), the adjoint and the dot-product test
 * of one problem and linear solver against central differences. */
static void check_derivatives(ct_context *ctx, ct_nlsolve *nls, const char *ls,
                              const double *p, const double *x0) {
  size_t n = ct_nlsolve_n(nls), np = ct_nlsolve_n_params(nls);
  double x[64], dp[16], dx[128], fd[64], xbar[64], pbar[8], lam[64];
  for (size_t j = 0; j < 2 * np; j++) dp[j] = (j < np) ? (j == 0 ? 1.0 : 0.0) : 0.3 + 0.2 * (double)j;
  solve_at(ctx, nls, ls, p, x0, x);
  if (ct_nlsolve_tangent(ctx, nls, 2, dp, dx) != CT_OK)
    fail_msg("tangent (%s): %s", ls, ct_errmsg(ctx));
  for (int k = 0; k < 2; k++) {
    fd_tangent(ctx, nls, ls, p, dp + k * np, x0, fd);
    for (size_t i = 0; i < n; i++)
      if (fabs(dx[k * n + i] - fd[i]) > 1e-6 * (1 + fabs(fd[i])))
        fail_msg("%s: tangent %d [%zu] = %.12g, central difference %.12g", ls, k, i,
                 dx[k * n + i], fd[i]);
  }
  /* The solve is done again by fd_tangent: re-solve at p for the adjoint. */
  solve_at(ctx, nls, ls, p, x0, x);
  for (size_t i = 0; i < n; i++) xbar[i] = 1.0 + 0.1 * (double)i;
  if (ct_nlsolve_adjoint(ctx, nls, xbar, pbar, lam) != CT_OK)
    fail_msg("adjoint (%s): %s", ls, ct_errmsg(ctx));
  if (ct_nlsolve_tangent(ctx, nls, 2, dp, dx) != CT_OK)
    fail_msg("tangent (%s): %s", ls, ct_errmsg(ctx));
  for (int k = 0; k < 2; k++) {
    double lhs = 0, rhs = 0;
    for (size_t i = 0; i < n; i++) lhs += xbar[i] * dx[k * n + i];
    for (size_t j = 0; j < np; j++) rhs += pbar[j] * dp[k * np + j];
    if (fabs(lhs - rhs) > 1e-10 * (1 + fabs(lhs)))
      fail_msg("%s: dot-product test %d: x_bar . dx = %.15g, p_bar . dp = %.15g", ls, k,
               lhs, rhs);
  }
  /* p_bar against central differences of x_bar . x(p). */
  for (size_t j = 0; j < np; j++) {
    double e[8] = {0};
    e[j] = 1.0;
    fd_tangent(ctx, nls, ls, p, e, x0, fd);
    double d = 0;
    for (size_t i = 0; i < n; i++) d += xbar[i] * fd[i];
    if (fabs(pbar[j] - d) > 1e-6 * (1 + fabs(d)))
      fail_msg("%s: p_bar[%zu] = %.12g, central difference %.12g", ls, j, pbar[j], d);
  }
}

static void test_tangent_adjoint_root(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_nlsolve *nls = new_problem(ctx, reaction_diffusion);
  double x0[NRD] = {0};
  const char *solvers[] = {"dense", "klu", "umfpack", "gmres", "petsc"};
  for (size_t s = 0; s < sizeof solvers / sizeof solvers[0]; s++)
    check_derivatives(ctx, nls, solvers[s], rd_p, x0);
  ct_nlsolve_free(nls);
  ct_context_free(ctx);
}

static void test_tangent_adjoint_fixed_point(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_nlsolve *nls = new_problem(ctx, analytic_fp);
  double x0[3] = {0.1, 0.1, -0.1};
  /* Anderson-accelerated iteration, then Newton on x - G. */
  solve_ftol = 1e-12;
  check_derivatives(ctx, nls, "dense", fp_p, x0);
  check_derivatives(ctx, nls, "gmres", fp_p, x0);
  solve_strategy = "linesearch";
  solve_ftol = 1e-13;
  check_derivatives(ctx, nls, "klu", fp_p, x0);
  solve_strategy = NULL;
  /* The adjoint with lambda: (I - G_x)^T lambda = x_bar. */
  double x[3], xbar[3] = {1, -2, 0.5}, pbar[3], lam[3];
  solve_at(ctx, nls, "dense", fp_p, x0, x);
  assert_int_equal(ct_nlsolve_adjoint(ctx, nls, xbar, pbar, lam), CT_OK);
  /* p_bar = G_p^T lambda and G_p = I (G = ... + p0, + p1, - p2). */
  assert_true(fabs(pbar[0] - lam[0]) < 1e-14 && fabs(pbar[1] - lam[1]) < 1e-14 &&
              fabs(pbar[2] + lam[2]) < 1e-14);
  ct_nlsolve_free(nls);
  ct_context_free(ctx);
}

/* The adjoint from Newton's last factorization (refined against exact AD
 * products at the solution) equals the one from F_x factored afresh there
 * (ct_nlsolve_rcond factors at the solution). */
static void test_stale_factorization_reuse(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_nlsolve *nls = new_problem(ctx, reaction_diffusion);
  const char *solvers[] = {"dense", "klu"};
  for (size_t s = 0; s < 2; s++) {
    double x0[NRD] = {0}, x[NRD], xbar[NRD], pb_reused[2], pb_fresh[2], dx_r[NRD], dx_f[NRD];
    double dp[2] = {0.3, -1.0}, rcond;
    for (int i = 0; i < NRD; i++) xbar[i] = sin(1.0 + i);
    solve_at(ctx, nls, solvers[s], rd_p, x0, x);
    assert_int_equal(ct_nlsolve_adjoint(ctx, nls, xbar, pb_reused, NULL), CT_OK);
    assert_int_equal(ct_nlsolve_tangent(ctx, nls, 1, dp, dx_r), CT_OK);
    assert_int_equal(ct_nlsolve_rcond(ctx, nls, &rcond), CT_OK);
    assert_int_equal(ct_nlsolve_adjoint(ctx, nls, xbar, pb_fresh, NULL), CT_OK);
    assert_int_equal(ct_nlsolve_tangent(ctx, nls, 1, dp, dx_f), CT_OK);
    for (int j = 0; j < 2; j++)
      if (fabs(pb_reused[j] - pb_fresh[j]) > 1e-12 * (1 + fabs(pb_fresh[j])))
        fail_msg("%s: p_bar[%d] = %.16g reused, %.16g fresh", solvers[s], j, pb_reused[j],
                 pb_fresh[j]);
    for (int i = 0; i < NRD; i++)
      assert_true(fabs(dx_r[i] - dx_f[i]) <= 1e-12 * (1 + fabs(dx_f[i])));
  }
  ct_nlsolve_free(nls);
  ct_context_free(ctx);
}

/* ---- Against the unrolled Newton iteration --------------------------------------- */

static void test_gradient_vs_unrolled_newton(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_nlsolve *nls = new_problem(ctx, small);
  ct_fun *g = small_g(ctx), *unrolled = unrolled_newton(ctx), *vjp = NULL;
  const char *wrt[] = {"p", NULL};
  assert_int_equal(ct_fun_vjp(ctx, unrolled, 1, wrt, &vjp), CT_OK);
  double one = 1.0, loss_u = 0, grad_u[2] = {0};
  const double *in[] = {small_p, &one};
  double *out[] = {&loss_u, grad_u};
  double *work = calloc(ct_fun_work_size(vjp) + 1, sizeof(double));
  assert_int_equal(ct_fun_eval(ctx, vjp, in, out, work), CT_OK);
  free(work);
  const char *solvers[] = {"dense", "klu", "gmres"};
  for (size_t s = 0; s < 3; s++) {
    ct_nlsolve_options o = ct_nlsolve_default_options();
    o.linear_solver = solvers[s];
    o.ftol = 1e-12;
    double x[2] = {0.5, 0.5}, loss = 0, grad[2];
    if (ct_nlsolve_gradient(ctx, nls, &o, g, small_p, x, &loss, grad) != CT_OK)
      fail_msg("%s: %s", solvers[s], ct_errmsg(ctx));
    assert_true(fabs(loss - loss_u) < 1e-12);
    for (int j = 0; j < 2; j++)
      if (fabs(grad[j] - grad_u[j]) > 1e-10 * (1 + fabs(grad_u[j])))
        fail_msg("%s: implicit gradient[%d] = %.15g, unrolled Newton %.15g", solvers[s], j,
                 grad[j], grad_u[j]);
  }
  /* The reciprocal condition of F_x = [[3, 2 x1], [x1, x0 + 4]] near (1, 1). */
  double rcond = 0;
  assert_int_equal(ct_nlsolve_rcond(ctx, nls, &rcond), CT_OK);
  assert_true(rcond > 0.2 && rcond < 0.4);
  ct_fun_free(vjp);
  ct_fun_free(unrolled);
  ct_fun_free(g);
  ct_nlsolve_free(nls);
  ct_context_free(ctx);
}

/* ---- One-call gradients against central differences ------------------------------- */

static double loss_at(ct_context *ctx, ct_nlsolve *nls, const ct_fun *g, const double *p) {
  ct_nlsolve_options o = ct_nlsolve_default_options();
  o.ftol = 1e-13;
  double x[2] = {0.5, 0.5}, loss = 0, grad[2];
  if (ct_nlsolve_gradient(ctx, nls, &o, g, p, x, &loss, grad) != CT_OK)
    fail_msg("%s", ct_errmsg(ctx));
  return loss;
}

static void test_nlsolve_gradient_fd(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_nlsolve *nls = new_problem(ctx, small);
  ct_fun *g = small_g(ctx);
  double x[2] = {0.5, 0.5}, loss, grad[2];
  assert_int_equal(ct_nlsolve_gradient(ctx, nls, NULL, g, small_p, x, &loss, grad), CT_OK);
  for (int j = 0; j < 2; j++) {
    double pp[2] = {small_p[0], small_p[1]}, h = 1e-6;
    pp[j] += h;
    double lp = loss_at(ctx, nls, g, pp);
    pp[j] -= 2 * h;
    double lm = loss_at(ctx, nls, g, pp);
    double fd = (lp - lm) / (2 * h);
    if (fabs(grad[j] - fd) > 1e-7 * (1 + fabs(fd)))
      fail_msg("grad[%d] = %.12g, central difference %.12g", j, grad[j], fd);
  }
  /* A loss with the wrong x size is refused. */
  ct_fun *bad = reaction_diffusion(ctx);
  assert_int_equal(ct_nlsolve_gradient(ctx, nls, NULL, bad, small_p, x, &loss, grad),
                   CT_ERR_ARG);
  ct_fun_free(bad);
  ct_fun_free(g);
  ct_nlsolve_free(nls);
  ct_context_free(ctx);
}

/* A(p) on a 3x3 pattern, b(p), g(x, p) for ct_linsolve_gradient. */
static ct_fun *lin_A(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var p[3], a[7];
  ct_graph_input(g, "p", 3, NULL, p);
  a[0] = ct_addc(p[0], 4.0);
  a[1] = p[1];
  a[2] = ct_const(g, 1.0);
  a[3] = ct_const(g, 3.0);
  a[4] = ct_const(g, 1.0);
  a[5] = ct_mul(p[0], p[1]);
  a[6] = ct_addc(ct_sqr(p[2]), 5.0);
  ct_graph_output(g, "A", 7, a);
  return ct_test_finish(g);
}
static ct_fun *lin_b(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var p[3], b[3];
  ct_graph_input(g, "p", 3, NULL, p);
  b[0] = ct_const(g, 1.0);
  b[1] = p[2];
  b[2] = ct_subc(2.0, p[0]);
  ct_graph_output(g, "b", 3, b);
  return ct_test_finish(g);
}
static ct_fun *lin_g(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var x[3], p[3];
  ct_graph_input(g, "x", 3, NULL, x);
  ct_graph_input(g, "p", 3, NULL, p);
  ct_var l = ct_add(ct_add(ct_sqr(x[0]), ct_mul(x[1], x[2])), ct_mul(p[1], x[2]));
  ct_graph_output(g, "g", 1, &l);
  return ct_test_finish(g);
}

static void test_linsolve_gradient_fd(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  size_t colptr[4] = {0, 2, 5, 7}, rowind[7] = {0, 1, 0, 1, 2, 1, 2};
  ct_sparsity pattern = {3, 3, 7, colptr, rowind};
  ct_fun *A = lin_A(ctx), *b = lin_b(ctx), *g = lin_g(ctx);
  const double p[3] = {0.7, -1.3, 0.4};
  const char *solvers[] = {"dense", "klu", "umfpack"};
  for (size_t s = 0; s < 3; s++) {
    ct_linsolve *ls = NULL;
    assert_int_equal(ct_linsolve_create(ctx, solvers[s], &pattern, &ls), CT_OK);
    double x[3], loss, grad[3];
    if (ct_linsolve_gradient(ctx, ls, A, b, g, p, x, &loss, grad) != CT_OK)
      fail_msg("%s: %s", solvers[s], ct_errmsg(ctx));
    for (int j = 0; j < 3; j++) {
      double pp[3] = {p[0], p[1], p[2]}, h = 1e-6, lp, lm, gd[3];
      pp[j] += h;
      assert_int_equal(ct_linsolve_gradient(ctx, ls, A, b, g, pp, x, &lp, gd), CT_OK);
      pp[j] -= 2 * h;
      assert_int_equal(ct_linsolve_gradient(ctx, ls, A, b, g, pp, x, &lm, gd), CT_OK);
      double fd = (lp - lm) / (2 * h);
      if (fabs(grad[j] - fd) > 1e-7 * (1 + fabs(fd)))
        fail_msg("%s: grad[%d] = %.12g, central difference %.12g", solvers[s], j, grad[j], fd);
    }
    ct_linsolve_free(ctx, ls);
  }
  /* A constant b (no input p) is accepted. */
  ct_graph *gb = ct_graph_new(ctx);
  ct_var one[3];
  one[0] = one[1] = one[2] = ct_const(gb, 1.0);
  ct_graph_output(gb, "b", 3, one);
  ct_fun *b_const = ct_test_finish(gb);
  ct_linsolve *ls = NULL;
  assert_int_equal(ct_linsolve_create(ctx, "klu", &pattern, &ls), CT_OK);
  double x[3], loss, grad[3];
  assert_int_equal(ct_linsolve_gradient(ctx, ls, A, b_const, g, p, x, &loss, grad), CT_OK);
  /* A b of the wrong kind is refused. */
  assert_int_equal(ct_linsolve_gradient(ctx, ls, A, g, g, p, x, &loss, grad), CT_ERR_ARG);
  ct_linsolve_free(ctx, ls);
  /* A solver on another pattern (the dense 3 x 3 one) is refused by size. */
  size_t full_colptr[4] = {0, 3, 6, 9}, full_rows[9] = {0, 1, 2, 0, 1, 2, 0, 1, 2};
  ct_sparsity full = {3, 3, 9, full_colptr, full_rows};
  assert_int_equal(ct_linsolve_create(ctx, "klu", &full, &ls), CT_OK);
  assert_int_equal(ct_linsolve_gradient(ctx, ls, A, b_const, g, p, x, &loss, grad),
                   CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "but the solver's matrix is 3 x 3 with 9 nonzeros"));
  ct_linsolve_free(ctx, ls);
  ct_fun_free(b_const);
  ct_fun_free(A);
  ct_fun_free(b);
  ct_fun_free(g);
  ct_context_free(ctx);
}

/* ---- Singular and ill-conditioned Jacobians ---------------------------------------- */

/* F = (x0 - p0, (x1 - 1) x0): F_x = [[1, 0], [x1 - 1, x0]], singular at
 * x0 = 0 and ill-conditioned for tiny x0. */
static ct_fun *degenerate(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var x[2], p[1], f[2];
  ct_graph_input(g, "x", 2, NULL, x);
  ct_graph_input(g, "p", 1, NULL, p);
  f[0] = ct_sub(x[0], p[0]);
  f[1] = ct_mul(ct_addc(x[1], -1.0), x[0]);
  ct_graph_output(g, "F", 2, f);
  return ct_test_finish(g);
}

static void test_singular_jacobian(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_nlsolve *nls = new_problem(ctx, degenerate);
  const char *solvers[] = {"dense", "klu"};
  for (size_t s = 0; s < 2; s++) {
    ct_nlsolve_options o = ct_nlsolve_default_options();
    o.linear_solver = solvers[s];
    double p = 0.0, x[2] = {1.0, 2.0}, xbar[2] = {1, 1}, pbar[1], dp = 1, dx[2];
    int rc = ct_nlsolve_solve(ctx, nls, &o, &p, x, NULL);
    if (rc != CT_OK) fail_msg("%s: %s", solvers[s], ct_errmsg(ctx));
    assert_int_equal(ct_nlsolve_adjoint(ctx, nls, xbar, pbar, NULL), CT_ERR_NUMERIC);
    if (!strstr(ct_errmsg(ctx), "F_x at the solution is singular") ||
        !strstr(ct_errmsg(ctx), "the implicit derivative would be wrong"))
      fail_msg("%s: %s", solvers[s], ct_errmsg(ctx));
    assert_int_equal(ct_nlsolve_tangent(ctx, nls, 1, &dp, dx), CT_ERR_NUMERIC);
    /* Ill-conditioned: x0 = 1e-16. */
    p = 1e-16;
    x[0] = 1.0, x[1] = 2.0;
    assert_int_equal(ct_nlsolve_solve(ctx, nls, &o, &p, x, NULL), CT_OK);
    assert_int_equal(ct_nlsolve_adjoint(ctx, nls, xbar, pbar, NULL), CT_ERR_NUMERIC);
    const char *msg = ct_errmsg(ctx);
    if (!strstr(msg, "F_x at the solution is singular or ill-conditioned (reciprocal "
                     "condition estimate ") || !strstr(msg, "< min_rcond 1.0e-14"))
      fail_msg("%s: %s", solvers[s], msg);
    /* With the check off, the (huge) derivative is returned. */
    o.min_rcond = 0;
    x[0] = 1.0, x[1] = 2.0;
    assert_int_equal(ct_nlsolve_solve(ctx, nls, &o, &p, x, NULL), CT_OK);
    assert_int_equal(ct_nlsolve_adjoint(ctx, nls, xbar, pbar, NULL), CT_OK);
    assert_true(fabs(pbar[0]) > 1e10);
  }
  /* GMRES cannot converge on the exactly singular system. */
  ct_nlsolve_options o = ct_nlsolve_default_options();
  o.linear_solver = "gmres";
  double p = 0.0, x[2] = {1.0, 2.0}, xbar[2] = {1, 1}, pbar[1];
  assert_int_equal(ct_nlsolve_solve(ctx, nls, &o, &p, x, NULL), CT_OK);
  assert_int_equal(ct_nlsolve_adjoint(ctx, nls, xbar, pbar, NULL), CT_ERR_NUMERIC);
  assert_non_null(strstr(ct_errmsg(ctx), "singular or ill-conditioned"));
  ct_nlsolve_free(nls);
  ct_context_free(ctx);
}

static void test_state_and_arguments(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_nlsolve *nls = new_problem(ctx, small);
  double xbar[2] = {1, 0}, pbar[2], dp[2] = {1, 0}, dx[2], rcond;
  assert_int_equal(ct_nlsolve_adjoint(ctx, nls, xbar, pbar, NULL), CT_ERR_STATE);
  assert_non_null(strstr(ct_errmsg(ctx), "no successful ct_nlsolve_solve"));
  assert_int_equal(ct_nlsolve_tangent(ctx, nls, 1, dp, dx), CT_ERR_STATE);
  assert_int_equal(ct_nlsolve_rcond(ctx, nls, &rcond), CT_ERR_STATE);
  assert_int_equal(ct_nlsolve_adjoint(ctx, nls, NULL, pbar, NULL), CT_ERR_ARG);
  assert_int_equal(ct_nlsolve_tangent(ctx, nls, -1, dp, dx), CT_ERR_ARG);
  ct_nlsolve_free(nls);
  ct_context_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tangent_adjoint_root),
      cmocka_unit_test(test_tangent_adjoint_fixed_point),
      cmocka_unit_test(test_stale_factorization_reuse),
      cmocka_unit_test(test_gradient_vs_unrolled_newton),
      cmocka_unit_test(test_nlsolve_gradient_fd),
      cmocka_unit_test(test_linsolve_gradient_fd),
      cmocka_unit_test(test_singular_jacobian),
      cmocka_unit_test(test_state_and_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
