/* The ct_linsolve conformance suite: every implementation on the same
 * systems (a nonsymmetric sparse matrix for klu/umfpack/dense/petsc, an SPD
 * one for all; petsc also with -pc_type lu and with CG + ICC): solve and
 * transposed-solve residuals, refactoring, the tangent and the adjoint
 * against central differences of the solve, the dot-product test, condition
 * estimates, options, singular matrices, bad arguments, and fault
 * injection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cotangent/linsolve.h"
#include "ct_asan_mpi.h"
#include "ct_test.h"

/* ---- Systems ----------------------------------------------------------------- */

#define N 4

/* A dense row-major description turned into a CSC pattern and values. */
typedef struct test_system {
  const char *label;
  double dense[N][N]; /* zero = structurally absent */
  size_t colptr[N + 1];
  size_t rowind[N * N];
  double values[N * N];
  ct_sparsity pattern;
} test_system;

/* Fills the CSC arrays of `s` from its dense table. */
static void system_build(test_system *s) {
  size_t nnz = 0;
  for (size_t j = 0; j < N; j++) {
    s->colptr[j] = nnz;
    for (size_t i = 0; i < N; i++)
      if (s->dense[i][j] != 0.0) {
        s->rowind[nnz] = i;
        s->values[nnz] = s->dense[i][j];
        nnz++;
      }
  }
  s->colptr[N] = nnz;
  s->pattern = (ct_sparsity){N, N, nnz, s->colptr, s->rowind};
}

static test_system nonsym = {.label = "nonsymmetric",
                             .dense = {{4, 1, 0, 0.5},
                                       {0, 3, 2, 0},
                                       {1, 0, 5, 1},
                                       {0, -1, 0, 2}}};
static test_system spd = {.label = "SPD",
                          .dense = {{4, 1, 0, 1},
                                    {1, 5, 1, 0},
                                    {0, 1, 6, 2},
                                    {1, 0, 2, 7}}};

typedef struct test_case {
  const char *solver;
  test_system *sys;
  const char *options; /* for ct_linsolve_set_options; NULL for none */
} test_case;

static const test_case cases[] = {
    {"klu", &nonsym, NULL},
    {"umfpack", &nonsym, NULL},
    {"dense", &nonsym, NULL},
    {"petsc", &nonsym, NULL},
    {"petsc", &nonsym, "-pc_type lu"},
    {"klu", &spd, NULL},
    {"umfpack", &spd, NULL},
    {"dense", &spd, NULL},
    {"cholmod", &spd, NULL},
    {"petsc", &spd, NULL},
    {"petsc", &spd, "-pc_type lu"},
    {"petsc", &spd, "-ksp_type cg -pc_type icc"},
};
#define NCASES (sizeof cases / sizeof cases[0])

static const double b_ref[N] = {1.0, -2.0, 0.5, 3.0};
static const double xbar_ref[N] = {0.3, 1.0, -0.7, 0.2};
static const double db_ref[N] = {0.4, -0.1, 0.9, 0.25};

/* A perturbation direction on the pattern, symmetric in (i, j) so that it
 * keeps an SPD matrix symmetric. */
static void direction_dA(const test_system *s, double *dA) {
  for (size_t j = 0; j < N; j++)
    for (size_t k = s->colptr[j]; k < s->colptr[j + 1]; k++) {
      size_t i = s->rowind[k], lo = i < j ? i : j, hi = i < j ? j : i;
      dA[k] = 0.3 * (double)(lo + 1) - 0.2 * (double)hi + 0.1;
    }
}

/* r = A x - b (or A^T x - b); returns max |r|. */
static double residual(const test_system *s, int transpose, const double *x,
                       const double *b) {
  double r[N], worst = 0;
  for (size_t i = 0; i < N; i++) r[i] = -b[i];
  for (size_t j = 0; j < N; j++)
    for (size_t k = s->colptr[j]; k < s->colptr[j + 1]; k++) {
      size_t i = s->rowind[k];
      if (transpose) r[j] += s->values[k] * x[i];
      else r[i] += s->values[k] * x[j];
    }
  for (size_t i = 0; i < N; i++) worst = fmax(worst, fabs(r[i]));
  return worst;
}

/* The agreement expected of a solve: rounding for direct solvers, the
 * Krylov tolerance (rtol 1e-10) for petsc without an exact preconditioner. */
static double solve_tolerance(const test_case *c) {
  int iterative = strcmp(c->solver, "petsc") == 0 &&
                  !(c->options && strstr(c->options, "-pc_type lu"));
  return iterative ? 1e-9 : 1e-13;
}

/* The central-difference step and the agreement expected of it: the
 * solve's error divided by the step adds to the truncation error, so the
 * iterative solver takes a larger step and a looser tolerance. */
static double fd_step(const test_case *c) {
  return solve_tolerance(c) > 1e-13 ? 1e-4 : 1e-6;
}
static double fd_tolerance(const test_case *c) {
  return solve_tolerance(c) > 1e-13 ? 2e-5 : 1e-7;
}

/* Creates and factors a solver for case c with values `values`. */
static ct_linsolve *open_case(ct_context *ctx, const test_case *c,
                              const double *values) {
  ct_linsolve *ls = NULL;
  if (ct_linsolve_create(ctx, c->solver, &c->sys->pattern, &ls) != CT_OK)
    fail_msg("%s/%s: create: %s", c->solver, c->sys->label, ct_errmsg(ctx));
  if (ct_linsolve_set_options(ctx, ls, c->options) != CT_OK)
    fail_msg("%s/%s: options %s: %s", c->solver, c->sys->label, c->options,
             ct_errmsg(ctx));
  if (ct_linsolve_factor(ctx, ls, values) != CT_OK)
    fail_msg("%s/%s: factor: %s", c->solver, c->sys->label, ct_errmsg(ctx));
  return ls;
}

/* x = A(h)^{-1} b(h) with A(h) = A + h dA, b(h) = b + h db, from scratch. */
static void solve_perturbed(ct_context *ctx, const test_case *c, double h,
                            const double *dA, const double *db, double *x) {
  const test_system *s = c->sys;
  double vals[N * N], b[N];
  for (size_t k = 0; k < s->pattern.nnz; k++) vals[k] = s->values[k] + h * dA[k];
  for (size_t i = 0; i < N; i++) b[i] = b_ref[i] + h * db[i];
  ct_linsolve *ls = open_case(ctx, c, vals);
  assert_int_equal(ct_linsolve_solve(ctx, ls, b, x), CT_OK);
  ct_linsolve_free(ctx, ls);
}

static int setup_systems(void **state) {
  (void)state;
  system_build(&nonsym);
  system_build(&spd);
  return 0;
}

/* ---- Conformance ------------------------------------------------------------- */

/* Solve and transposed solve leave residuals at rounding level, also after
 * a refactor with new values and with b and x aliased. */
static void test_solve_residuals(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  for (size_t c = 0; c < NCASES; c++) {
    const test_case *tc = &cases[c];
    test_system *s = tc->sys;
    ct_linsolve *ls = open_case(ctx, tc, s->values);
    assert_string_equal(ct_linsolve_name(ls), tc->solver);
    double x[N], xt[N];
    assert_int_equal(ct_linsolve_solve(ctx, ls, b_ref, x), CT_OK);
    assert_int_equal(ct_linsolve_solve_transpose(ctx, ls, b_ref, xt), CT_OK);
    double tol = solve_tolerance(tc);
    if (residual(s, 0, x, b_ref) > tol || residual(s, 1, xt, b_ref) > tol)
      fail_msg("%s/%s (%s): residual %g, transposed %g", tc->solver, s->label,
               tc->options ? tc->options : "", residual(s, 0, x, b_ref),
               residual(s, 1, xt, b_ref));
    /* Refactor with 2A: the solution halves. */
    double twice[N * N], y[N];
    for (size_t k = 0; k < s->pattern.nnz; k++) twice[k] = 2 * s->values[k];
    assert_int_equal(ct_linsolve_factor(ctx, ls, twice), CT_OK);
    memcpy(y, b_ref, sizeof y);
    assert_int_equal(ct_linsolve_solve(ctx, ls, y, y), CT_OK);
    for (size_t i = 0; i < N; i++) assert_true(fabs(2 * y[i] - x[i]) < tol);
    ct_linsolve_free(ctx, ls);
  }
  ct_context_free(ctx);
}

/* The tangent against central differences of the solve in the direction
 * (dA, db), to 1e-7 (2e-5 for an iterative solve). */
static void test_tangent_fd(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  for (size_t c = 0; c < NCASES; c++) {
    const test_case *tc = &cases[c];
    const double h = fd_step(tc), tol = fd_tolerance(tc);
    double dA[N * N], x[N], dx[N], xp[N], xm[N];
    direction_dA(tc->sys, dA);
    ct_linsolve *ls = open_case(ctx, tc, tc->sys->values);
    assert_int_equal(ct_linsolve_solve(ctx, ls, b_ref, x), CT_OK);
    assert_int_equal(ct_linsolve_tangent(ctx, ls, x, dA, db_ref, dx), CT_OK);
    ct_linsolve_free(ctx, ls);
    solve_perturbed(ctx, tc, h, dA, db_ref, xp);
    solve_perturbed(ctx, tc, -h, dA, db_ref, xm);
    for (size_t i = 0; i < N; i++) {
      double fd = (xp[i] - xm[i]) / (2 * h);
      if (fabs(fd - dx[i]) > tol * fmax(1.0, fabs(fd)))
        fail_msg("%s/%s: dx[%zu] = %.12g, central difference %.12g", tc->solver,
                 tc->sys->label, i, dx[i], fd);
    }
  }
  ct_context_free(ctx);
}

/* The adjoint against central differences: each b_bar_i and (for the LU
 * solvers, which read every entry) each A_bar_k is d<x_bar, x>/d(entry);
 * for all solvers the directional derivative along a symmetric dA matches
 * <b_bar, db> + <A_bar, dA>. */
static void test_adjoint_fd(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  for (size_t c = 0; c < NCASES; c++) {
    const test_case *tc = &cases[c];
    const double h = fd_step(tc), tol = fd_tolerance(tc);
    const test_system *s = tc->sys;
    size_t nnz = s->pattern.nnz;
    double x[N], bbar[N], Abar[N * N], xp[N], xm[N], zeroA[N * N] = {0};
    double zerob[N] = {0};
    ct_linsolve *ls = open_case(ctx, tc, s->values);
    assert_int_equal(ct_linsolve_solve(ctx, ls, b_ref, x), CT_OK);
    assert_int_equal(ct_linsolve_adjoint(ctx, ls, x, xbar_ref, bbar, Abar), CT_OK);
    ct_linsolve_free(ctx, ls);
    /* d<x_bar, x>/db_i. */
    for (size_t i = 0; i < N; i++) {
      double e[N] = {0};
      e[i] = 1;
      solve_perturbed(ctx, tc, h, zeroA, e, xp);
      solve_perturbed(ctx, tc, -h, zeroA, e, xm);
      double fd = 0;
      for (size_t r = 0; r < N; r++) fd += xbar_ref[r] * (xp[r] - xm[r]) / (2 * h);
      if (fabs(fd - bbar[i]) > tol * fmax(1.0, fabs(fd)))
        fail_msg("%s/%s: b_bar[%zu] = %.12g, central difference %.12g", tc->solver,
                 s->label, i, bbar[i], fd);
    }
    /* d<x_bar, x>/dA_k, entry by entry (not cholmod: it reads one triangle). */
    if (strcmp(tc->solver, "cholmod") != 0)
      for (size_t k = 0; k < nnz; k++) {
        double e[N * N] = {0};
        e[k] = 1;
        solve_perturbed(ctx, tc, h, e, zerob, xp);
        solve_perturbed(ctx, tc, -h, e, zerob, xm);
        double fd = 0;
        for (size_t r = 0; r < N; r++) fd += xbar_ref[r] * (xp[r] - xm[r]) / (2 * h);
        if (fabs(fd - Abar[k]) > tol * fmax(1.0, fabs(fd)))
          fail_msg("%s/%s: A_bar[%zu] = %.12g, central difference %.12g",
                   tc->solver, s->label, k, Abar[k], fd);
      }
    /* Along the symmetric direction. */
    double dA[N * N];
    direction_dA(s, dA);
    solve_perturbed(ctx, tc, h, dA, db_ref, xp);
    solve_perturbed(ctx, tc, -h, dA, db_ref, xm);
    double fd = 0, adj = 0;
    for (size_t r = 0; r < N; r++) fd += xbar_ref[r] * (xp[r] - xm[r]) / (2 * h);
    for (size_t i = 0; i < N; i++) adj += bbar[i] * db_ref[i];
    for (size_t k = 0; k < nnz; k++) adj += Abar[k] * dA[k];
    if (fabs(fd - adj) > tol * fmax(1.0, fabs(fd)))
      fail_msg("%s/%s: directional adjoint %.12g, central difference %.12g",
               tc->solver, s->label, adj, fd);
  }
  ct_context_free(ctx);
}

/* The dot-product test <dx, x_bar> = <db, b_bar> + <dA, A_bar> to rounding,
 * with one factorization serving both. */
static void test_dot_product(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  for (size_t c = 0; c < NCASES; c++) {
    const test_case *tc = &cases[c];
    const test_system *s = tc->sys;
    double dA[N * N], x[N], dx[N], bbar[N], Abar[N * N];
    direction_dA(s, dA);
    ct_linsolve *ls = open_case(ctx, tc, s->values);
    assert_int_equal(ct_linsolve_solve(ctx, ls, b_ref, x), CT_OK);
    assert_int_equal(ct_linsolve_tangent(ctx, ls, x, dA, db_ref, dx), CT_OK);
    assert_int_equal(ct_linsolve_adjoint(ctx, ls, x, xbar_ref, bbar, Abar), CT_OK);
    ct_linsolve_free(ctx, ls);
    double lhs = 0, rhs = 0;
    for (size_t i = 0; i < N; i++) lhs += dx[i] * xbar_ref[i];
    for (size_t i = 0; i < N; i++) rhs += db_ref[i] * bbar[i];
    for (size_t k = 0; k < s->pattern.nnz; k++) rhs += dA[k] * Abar[k];
    if (fabs(lhs - rhs) > solve_tolerance(tc) * fmax(1.0, fabs(lhs)))
      fail_msg("%s/%s: <dx, x_bar> = %.17g but <db, b_bar> + <dA, A_bar> = %.17g",
               tc->solver, s->label, lhs, rhs);
  }
  ct_context_free(ctx);
}

/* ---- Errors ------------------------------------------------------------------ */

/* A singular (for cholmod: not positive definite) matrix is CT_ERR_NUMERIC
 * naming the solver; the solver is then unfactored; a good matrix after it
 * factors again. */
static void test_singular(void **state) {
  (void)state;
  test_system sing = {.label = "singular",
                      .dense = {{1, 2, 0, 0}, {2, 4, 0, 0}, {0, 0, 3, 0}, {0, 0, 0, 1}}};
  system_build(&sing);
  const char *names[] = {"klu", "umfpack", "cholmod", "dense", "petsc", "petsc"};
  const char *options[] = {NULL, NULL, NULL, NULL, NULL, "-pc_type lu"};
  ct_context *ctx = ct_context_new(NULL);
  for (size_t i = 0; i < 6; i++) {
    ct_linsolve *ls = NULL;
    assert_int_equal(ct_linsolve_create(ctx, names[i], &sing.pattern, &ls), CT_OK);
    assert_int_equal(ct_linsolve_set_options(ctx, ls, options[i]), CT_OK);
    int st = ct_linsolve_factor(ctx, ls, sing.values);
    if (st != CT_ERR_NUMERIC) fail_msg("%s: factor returned %d", names[i], st);
    const char *msg = ct_errmsg(ctx);
    assert_non_null(strstr(msg, names[i]));
    assert_true(strstr(msg, "singular") || strstr(msg, "positive definite"));
    double x[N];
    assert_int_equal(ct_linsolve_solve(ctx, ls, b_ref, x), CT_ERR_STATE);
    /* Recovers with nonsingular values on the same pattern. */
    double good[N * N];
    memcpy(good, sing.values, sizeof good);
    good[0] = 5; /* A(0,0) = 5: det of the 2x2 block is 16 */
    assert_int_equal(ct_linsolve_factor(ctx, ls, good), CT_OK);
    assert_int_equal(ct_linsolve_solve(ctx, ls, b_ref, x), CT_OK);
    memcpy(sing.values, good, sizeof good);
    assert_true(residual(&sing, 0, x, b_ref) < 1e-9);
    sing.values[0] = 1;
    ct_linsolve_free(ctx, ls);
  }
  ct_context_free(ctx);
}

/* Bad arguments are errors, not crashes. */
static void test_bad_arguments(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_linsolve *ls = NULL;
  assert_int_equal(ct_linsolve_create(ctx, "superlu", &nonsym.pattern, &ls), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "superlu"));
  assert_null(ls);
  assert_int_equal(ct_linsolve_create(ctx, NULL, &nonsym.pattern, &ls), CT_ERR_ARG);
  assert_int_equal(ct_linsolve_create(ctx, "klu", NULL, &ls), CT_ERR_ARG);
  ct_sparsity rect = nonsym.pattern;
  rect.nrows = 3;
  assert_int_equal(ct_linsolve_create(ctx, "dense", &rect, &ls), CT_ERR_ARG);
  size_t badrows[N * N];
  memcpy(badrows, nonsym.rowind, sizeof badrows);
  badrows[0] = 99;
  ct_sparsity bad = nonsym.pattern;
  bad.rowind = badrows;
  assert_int_equal(ct_linsolve_create(ctx, "klu", &bad, &ls), CT_ERR_ARG);
  ct_linsolve_ops incomplete = {.name = "half"};
  assert_int_equal(ct_linsolve_create_ops(ctx, &incomplete, &nonsym.pattern, &ls),
                   CT_ERR_ARG);
  assert_null(ct_linsolve_find("nope"));
  assert_non_null(ct_linsolve_find("umfpack"));
  assert_string_equal(ct_linsolve_names()[3], "dense");
  assert_string_equal(ct_linsolve_names()[4], "petsc");
  assert_null(ct_linsolve_names()[5]);
  /* Solve before factor, NULL vectors. */
  double x[N];
  assert_int_equal(ct_linsolve_create(ctx, "klu", &nonsym.pattern, &ls), CT_OK);
  assert_int_equal(ct_linsolve_solve(ctx, ls, b_ref, x), CT_ERR_STATE);
  assert_int_equal(ct_linsolve_factor(ctx, ls, NULL), CT_ERR_ARG);
  assert_int_equal(ct_linsolve_factor(ctx, ls, nonsym.values), CT_OK);
  assert_int_equal(ct_linsolve_solve(ctx, ls, NULL, x), CT_ERR_ARG);
  assert_int_equal(ct_linsolve_adjoint(ctx, ls, NULL, xbar_ref, x, x), CT_ERR_ARG);
  ct_linsolve_free(ctx, ls);
  ct_linsolve_free(ctx, NULL);
  ct_context_free(ctx);
}

/* ---- Condition estimate, options, statistics ----------------------------------- */

/* The solvers that take any square matrix / only SPD ones. */
static const char *const general_solvers[] = {"klu", "umfpack", "dense", "petsc"};
static const char *const all_solvers[] = {"klu", "umfpack", "dense", "petsc", "cholmod"};
#define NGENERAL (sizeof general_solvers / sizeof general_solvers[0])
#define NALL (sizeof all_solvers / sizeof all_solvers[0])

/* The exact 1-norm condition number of the dense N x N matrix `a`, through
 * its inverse by Gauss-Jordan elimination with partial pivoting. */
static double exact_cond1(const double a[N][N]) {
  double m[N][2 * N];
  for (size_t i = 0; i < N; i++)
    for (size_t j = 0; j < N; j++) {
      m[i][j] = a[i][j];
      m[i][N + j] = i == j;
    }
  for (size_t c = 0; c < N; c++) {
    size_t piv = c;
    for (size_t r = c + 1; r < N; r++)
      if (fabs(m[r][c]) > fabs(m[piv][c])) piv = r;
    for (size_t j = 0; j < 2 * N; j++) {
      double t = m[c][j];
      m[c][j] = m[piv][j];
      m[piv][j] = t;
    }
    double d = m[c][c];
    for (size_t j = 0; j < 2 * N; j++) m[c][j] /= d;
    for (size_t r = 0; r < N; r++)
      if (r != c) {
        double f = m[r][c];
        for (size_t j = 0; j < 2 * N; j++) m[r][j] -= f * m[c][j];
      }
  }
  double norm_a = 0, norm_inv = 0;
  for (size_t j = 0; j < N; j++) {
    double sa = 0, si = 0;
    for (size_t i = 0; i < N; i++) {
      sa += fabs(a[i][j]);
      si += fabs(m[i][N + j]);
    }
    norm_a = fmax(norm_a, sa);
    norm_inv = fmax(norm_inv, si);
  }
  return norm_a * norm_inv;
}

/* ct_linsolve_rcond of `sys` factored by `solver`. */
static double rcond_of(ct_context *ctx, const char *solver, const test_system *sys) {
  test_case tc = {solver, (test_system *)sys, NULL};
  ct_linsolve *ls = open_case(ctx, &tc, sys->values);
  double rcond = -1;
  if (ct_linsolve_rcond(ctx, ls, &rcond) != CT_OK)
    fail_msg("%s/%s: rcond: %s", solver, sys->label, ct_errmsg(ctx));
  ct_linsolve_free(ctx, ls);
  return rcond;
}

/* The estimate never undershoots the exact rcond (it bounds ||A^-1||_1 from
 * below) and, on these small systems, is within 1e-12 of it. */
static void check_rcond(ct_context *ctx, const char *solver, const test_system *sys,
                        double tolerance) {
  double exact = 1.0 / exact_cond1(sys->dense);
  double est = rcond_of(ctx, solver, sys);
  if (est < exact * (1 - tolerance) || est > exact * (1 + tolerance))
    fail_msg("%s/%s: rcond %.17g, exact %.17g", solver, sys->label, est, exact);
}

/* Known condition numbers: a diagonal matrix (cond 1000), the conformance
 * systems against their exact cond from a dense inverse, a nearly singular
 * matrix giving rcond below 1e-10, and CT_ERR_STATE before a factor. */
static void test_rcond(void **state) {
  (void)state;
  test_system diag = {.label = "diagonal",
                      .dense = {{10, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1000, 0}, {0, 0, 0, 100}}};
  test_system near = {.label = "near-singular",
                      .dense = {{1, 2, 0, 0}, {2, 4 + 1e-12, 0, 0}, {0, 0, 3, 0}, {0, 0, 0, 1}}};
  system_build(&diag);
  system_build(&near);
  ct_context *ctx = ct_context_new(NULL);
  for (size_t i = 0; i < NALL; i++) {
    const char *name = all_solvers[i];
    double r = rcond_of(ctx, name, &diag);
    if (fabs(r - 1e-3) > 1e-12) fail_msg("%s: diagonal rcond %.17g, not 1e-3", name, r);
    double tol = strcmp(name, "petsc") == 0 ? 1e-8 : 1e-12;
    check_rcond(ctx, name, &spd, tol);
    if (i < NGENERAL) check_rcond(ctx, name, &nonsym, tol);
    r = rcond_of(ctx, name, &near);
    if (!(r >= 0 && r < 1e-10)) fail_msg("%s: near-singular rcond %g", name, r);
    ct_linsolve *ls = NULL;
    assert_int_equal(ct_linsolve_create(ctx, name, &spd.pattern, &ls), CT_OK);
    assert_int_equal(ct_linsolve_rcond(ctx, ls, &r), CT_ERR_STATE);
    assert_non_null(strstr(ct_errmsg(ctx), name));
    assert_int_equal(ct_linsolve_rcond(ctx, ls, NULL), CT_ERR_ARG);
    ct_linsolve_free(ctx, ls);
  }
  ct_context_free(ctx);
}

/* Options: NULL and "" are accepted everywhere; the direct solvers refuse
 * anything else naming themselves; they count no iterations. */
static void test_options_and_iterations(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  for (size_t i = 0; i < NALL; i++) {
    const char *name = all_solvers[i];
    if (strcmp(name, "petsc") == 0) continue; /* test_petsc_options */
    test_case tc = {name, &spd, NULL};
    ct_linsolve *ls = NULL;
    assert_int_equal(ct_linsolve_create(ctx, name, &spd.pattern, &ls), CT_OK);
    assert_int_equal(ct_linsolve_set_options(ctx, ls, NULL), CT_OK);
    assert_int_equal(ct_linsolve_set_options(ctx, ls, ""), CT_OK);
    assert_int_equal(ct_linsolve_set_options(ctx, ls, "-ksp_type cg"), CT_ERR_ARG);
    assert_non_null(strstr(ct_errmsg(ctx), name));
    assert_non_null(strstr(ct_errmsg(ctx), "-ksp_type cg"));
    ct_linsolve_free(ctx, ls);
    ls = open_case(ctx, &tc, spd.values);
    double x[N];
    assert_int_equal(ct_linsolve_solve(ctx, ls, b_ref, x), CT_OK);
    assert_int_equal(ct_linsolve_iterations(ls), 0);
    assert_int_equal(ct_linsolve_is_iterative(ls), 0);
    ct_linsolve_free(ctx, ls);
  }
  assert_int_equal(ct_linsolve_iterations(NULL), 0);
  assert_int_equal(ct_linsolve_set_options(ctx, NULL, ""), CT_ERR_ARG);
  ct_context_free(ctx);
}

/* Collects logged warnings (concatenated) for the options test. */
static void log_to_buffer(void *ud, ct_log_level level, const char *message) {
  char *buf = ud;
  if (level == CT_LOG_WARNING && strlen(buf) + strlen(message) + 2 < 1024) {
    strcat(buf, message);
    strcat(buf, "\n");
  }
}

/* petsc options: a bogus -ksp_type is CT_ERR_ARG quoting it and keeps the
 * previous solver; new options unfactor until the next factor; iterations
 * add up; a misspelt option is logged; a KSP that runs out of iterations is
 * CT_ERR_SOLVER with PETSc's reason and the count. */
static void test_petsc_options(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  char warnings[1024] = "";
  ct_context_set_log_fn(ctx, log_to_buffer, warnings);
  test_case tc = {"petsc", &nonsym, NULL};
  ct_linsolve *ls = open_case(ctx, &tc, nonsym.values);
  double x[N];
  assert_int_equal(ct_linsolve_set_options(ctx, ls, NULL), CT_OK);
  assert_int_equal(ct_linsolve_set_options(ctx, ls, ""), CT_OK);
  assert_int_equal(ct_linsolve_solve(ctx, ls, b_ref, x), CT_OK);
  assert_int_equal(ct_linsolve_is_iterative(ls), 1);
  long first = ct_linsolve_iterations(ls);
  assert_true(first >= 1 && first <= N);
  /* A bogus KSP type: a clear error, the old solver still solves. */
  assert_int_equal(ct_linsolve_set_options(ctx, ls, "-ksp_type bogus"), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "petsc"));
  assert_non_null(strstr(ct_errmsg(ctx), "-ksp_type bogus"));
  assert_int_equal(ct_linsolve_solve(ctx, ls, b_ref, x), CT_OK);
  assert_true(residual(&nonsym, 0, x, b_ref) < 1e-9);
  assert_true(ct_linsolve_iterations(ls) > first);
  /* BiCGStab + Jacobi, with a misspelt option that must be reported. */
  assert_int_equal(ct_linsolve_set_options(ctx, ls, "-ksp_type bcgs -pc_type jacobi -ksp_typo 1"),
                   CT_OK);
  assert_int_equal(ct_linsolve_solve(ctx, ls, b_ref, x), CT_ERR_STATE);
  assert_int_equal(ct_linsolve_factor(ctx, ls, nonsym.values), CT_OK);
  assert_non_null(strstr(warnings, "ksp_typo"));
  assert_null(strstr(warnings, "pc_type"));
  assert_int_equal(ct_linsolve_solve_transpose(ctx, ls, b_ref, x), CT_OK);
  assert_true(residual(&nonsym, 1, x, b_ref) < 1e-9);
  /* Two Richardson steps without preconditioner cannot converge. */
  assert_int_equal(ct_linsolve_set_options(
                       ctx, ls, "-ksp_type richardson -pc_type none -ksp_max_it 2"),
                   CT_OK);
  assert_int_equal(ct_linsolve_factor(ctx, ls, nonsym.values), CT_OK);
  assert_int_equal(ct_linsolve_solve(ctx, ls, b_ref, x), CT_ERR_SOLVER);
  assert_non_null(strstr(ct_errmsg(ctx), "DIVERGED_ITS"));
  assert_non_null(strstr(ct_errmsg(ctx), "2 iterations"));
  /* Options PETSc cannot read (no leading dash). */
  assert_int_equal(ct_linsolve_set_options(ctx, ls, "ksp_type gmres"), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "ksp_type gmres"));
  ct_linsolve_free(ctx, ls);
  ct_context_free(ctx);
}

/* ---- Fault injection --------------------------------------------------------- */

/* Create, factor, refactor, solve, tangent, adjoint and free for one case. */
static int run_case(ct_context *ctx, void *ud) {
  const test_case *tc = ud;
  const test_system *s = tc->sys;
  ct_linsolve *ls = NULL;
  double x[N], dx[N], bbar[N], Abar[N * N], dA[N * N];
  direction_dA(s, dA);
  int st = ct_linsolve_create(ctx, tc->solver, &s->pattern, &ls);
  if (st < 0) return st;
  if ((st = ct_linsolve_set_options(ctx, ls, tc->options)) < 0 ||
      (st = ct_linsolve_factor(ctx, ls, s->values)) < 0 ||
      (st = ct_linsolve_factor(ctx, ls, s->values)) < 0 ||
      (st = ct_linsolve_solve(ctx, ls, b_ref, x)) < 0 ||
      (st = ct_linsolve_tangent(ctx, ls, x, dA, db_ref, dx)) < 0 ||
      (st = ct_linsolve_adjoint(ctx, ls, x, xbar_ref, bbar, Abar)) < 0 ||
      (st = ct_linsolve_rcond(ctx, ls, &dx[0])) < 0) {
    ct_linsolve_free(ctx, ls);
    return st;
  }
  ct_linsolve_free(ctx, ls);
  return CT_OK;
}

/* Every allocation through the context can fail without a leak or crash. */
static void test_fault_sweep(void **state) {
  (void)state;
  for (size_t c = 0; c < NCASES; c++) {
    long n = ct_test_fault_sweep(run_case, (void *)&cases[c]);
    assert_true(n >= 5); /* the wrapper alone makes five */
  }
}


int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_solve_residuals), cmocka_unit_test(test_tangent_fd),
      cmocka_unit_test(test_adjoint_fd),      cmocka_unit_test(test_dot_product),
      cmocka_unit_test(test_singular),        cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_rcond),           cmocka_unit_test(test_options_and_iterations),
      cmocka_unit_test(test_petsc_options),
      cmocka_unit_test(test_fault_sweep),
  };
  return cmocka_run_group_tests(tests, setup_systems, NULL);
}
