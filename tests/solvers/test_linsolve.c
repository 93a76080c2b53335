/* The ct_linsolve conformance suite: every implementation on the same
 * systems (a nonsymmetric sparse matrix for klu/umfpack/dense, an SPD one for
 * all four): solve and transposed-solve residuals, refactoring, the tangent
 * and the adjoint against central differences of the solve, the dot-product
 * test, singular matrices, bad arguments, and fault injection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cotangent/linsolve.h"
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
} test_case;

static const test_case cases[] = {
    {"klu", &nonsym},     {"umfpack", &nonsym}, {"dense", &nonsym},
    {"klu", &spd},        {"umfpack", &spd},    {"dense", &spd},
    {"cholmod", &spd},
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

/* Creates and factors a solver for case c with values `values`. */
static ct_linsolve *open_case(ct_context *ctx, const test_case *c,
                              const double *values) {
  ct_linsolve *ls = NULL;
  if (ct_linsolve_create(ctx, c->solver, &c->sys->pattern, &ls) != CT_OK)
    fail_msg("%s/%s: create: %s", c->solver, c->sys->label, ct_errmsg(ctx));
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
    if (residual(s, 0, x, b_ref) > 1e-13 || residual(s, 1, xt, b_ref) > 1e-13)
      fail_msg("%s/%s: residual %g, transposed %g", tc->solver, s->label,
               residual(s, 0, x, b_ref), residual(s, 1, xt, b_ref));
    /* Refactor with 2A: the solution halves. */
    double twice[N * N], y[N];
    for (size_t k = 0; k < s->pattern.nnz; k++) twice[k] = 2 * s->values[k];
    assert_int_equal(ct_linsolve_factor(ctx, ls, twice), CT_OK);
    memcpy(y, b_ref, sizeof y);
    assert_int_equal(ct_linsolve_solve(ctx, ls, y, y), CT_OK);
    for (size_t i = 0; i < N; i++) assert_true(fabs(2 * y[i] - x[i]) < 1e-13);
    ct_linsolve_free(ctx, ls);
  }
  ct_context_free(ctx);
}

/* The tangent against central differences of the solve in the direction
 * (dA, db), to 1e-7. */
static void test_tangent_fd(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  const double h = 1e-6;
  for (size_t c = 0; c < NCASES; c++) {
    const test_case *tc = &cases[c];
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
      if (fabs(fd - dx[i]) > 1e-7 * fmax(1.0, fabs(fd)))
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
  const double h = 1e-6;
  for (size_t c = 0; c < NCASES; c++) {
    const test_case *tc = &cases[c];
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
      if (fabs(fd - bbar[i]) > 1e-7 * fmax(1.0, fabs(fd)))
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
        if (fabs(fd - Abar[k]) > 1e-7 * fmax(1.0, fabs(fd)))
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
    if (fabs(fd - adj) > 1e-7 * fmax(1.0, fabs(fd)))
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
    if (fabs(lhs - rhs) > 1e-13 * fmax(1.0, fabs(lhs)))
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
  const char *names[] = {"klu", "umfpack", "cholmod", "dense"};
  ct_context *ctx = ct_context_new(NULL);
  for (size_t i = 0; i < 4; i++) {
    ct_linsolve *ls = NULL;
    assert_int_equal(ct_linsolve_create(ctx, names[i], &sing.pattern, &ls), CT_OK);
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
    assert_true(residual(&sing, 0, x, b_ref) < 1e-13);
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
  assert_null(ct_linsolve_names()[4]);
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
  if ((st = ct_linsolve_factor(ctx, ls, s->values)) < 0 ||
      (st = ct_linsolve_factor(ctx, ls, s->values)) < 0 ||
      (st = ct_linsolve_solve(ctx, ls, b_ref, x)) < 0 ||
      (st = ct_linsolve_tangent(ctx, ls, x, dA, db_ref, dx)) < 0 ||
      (st = ct_linsolve_adjoint(ctx, ls, x, xbar_ref, bbar, Abar)) < 0) {
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
      cmocka_unit_test(test_fault_sweep),
  };
  return cmocka_run_group_tests(tests, setup_systems, NULL);
}
