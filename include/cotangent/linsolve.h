/* Cotangent linear solves: x = A^{-1} b behind one interface, and their
 * derivatives.
 *
 * A square matrix A is given by its pattern (a ct_sparsity in compressed
 * sparse column form, row indices sorted) and its nonzero values in that CSC
 * order. Implementations are ops tables registered by name: "klu", "umfpack"
 * (general sparse, SuiteSparse), "cholmod" (symmetric positive definite: the
 * full pattern with symmetric values; only the upper triangle is read) and
 * "dense" (LAPACK dgetrf/dgetrs) and "petsc" (PETSc KSP, iterative: GMRES
 * with ILU by default, any KSP/PC through ct_linsolve_set_options). One
 * factorization serves the solve, the transposed solve, the tangent and the
 * adjoint. */
#ifndef COTANGENT_LINSOLVE_H
#define COTANGENT_LINSOLVE_H

#include <stddef.h>

#include "cotangent/ad.h"
#include "cotangent/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An implementation. Required: name, create, factor, solve, destroy.
 * Optional: refactor (NULL: factor again), solve_transpose (NULL: the matrix
 * is symmetric and solve is used), rcond (NULL: Hager/Higham's 1-norm
 * estimator through solve and solve_transpose), set_options (NULL: the
 * implementation takes no options), iterations (NULL: a direct solver, 0).
 * Every int entry returns CT_OK or a negative status with the error
 * recorded in ctx. `values` (nnz numbers in the CSC order of the pattern)
 * is owned by the caller and stays valid and unchanged until the next
 * factor/refactor or destroy. rcond is called only on a current
 * factorization; set_options gets a non-empty string and is called before
 * or between factorizations (the next factor applies it). */
typedef struct ct_linsolve_ops {
  const char *name;
  int (*create)(ct_context *ctx, const ct_sparsity *pattern, void **impl);
  int (*factor)(ct_context *ctx, void *impl, double *values);
  int (*refactor)(ct_context *ctx, void *impl, double *values);
  int (*solve)(ct_context *ctx, void *impl, const double *b, double *x);
  int (*solve_transpose)(ct_context *ctx, void *impl, const double *b,
                         double *x);
  void (*destroy)(ct_context *ctx, void *impl);
  int (*rcond)(ct_context *ctx, void *impl, double *rcond);
  int (*set_options)(ct_context *ctx, void *impl, const char *options);
  long (*iterations)(void *impl);
} ct_linsolve_ops;

/* The built-in implementation called `name`, or NULL. */
const ct_linsolve_ops *ct_linsolve_find(const char *name);
/* The names of the built-in implementations, NULL-terminated. */
const char *const *ct_linsolve_names(void);

typedef struct ct_linsolve ct_linsolve;

/* Creates a solver for matrices with the square pattern `A` (copied) using
 * the built-in implementation `name`. CT_ERR_ARG for an unknown name or a
 * bad pattern. */
int ct_linsolve_create(ct_context *ctx, const char *name, const ct_sparsity *A,
                       ct_linsolve **out);
/* The same with a user-supplied ops table (kept by pointer, not copied). */
int ct_linsolve_create_ops(ct_context *ctx, const ct_linsolve_ops *ops,
                           const ct_sparsity *A, ct_linsolve **out);
/* Frees the solver. NULL is a no-op. */
void ct_linsolve_free(ct_context *ctx, ct_linsolve *ls);
/* The implementation's name. */
const char *ct_linsolve_name(const ct_linsolve *ls);
/* The pattern of A the solver was created with (owned by the solver). */
const ct_sparsity *ct_linsolve_pattern(const ct_linsolve *ls);

/* Factors A with nnz `values` (copied); later calls refactor with the same
 * pattern. A singular (or, for cholmod, not positive definite) matrix is
 * CT_ERR_NUMERIC naming the solver and the column where known; the solver
 * is then unfactored. */
int ct_linsolve_factor(ct_context *ctx, ct_linsolve *ls, const double *values);
/* x = A^{-1} b, and x = A^{-T} b. b and x have n numbers and may alias.
 * CT_ERR_STATE before a successful factor. */
int ct_linsolve_solve(ct_context *ctx, ct_linsolve *ls, const double *b,
                      double *x);
int ct_linsolve_solve_transpose(ct_context *ctx, ct_linsolve *ls,
                                const double *b, double *x);

/* The reciprocal 1-norm condition estimate 1/(||A||_1 ||A^{-1}||_1) of the
 * factored matrix, in [0, 1]: near 1 well conditioned, near machine epsilon
 * (or 0) numerically singular. ||A^{-1}||_1 is estimated (LAPACK dgecon for
 * "dense", klu_condest for "klu", Hager/Higham's estimator with a few
 * solves and transposed solves otherwise), so rcond may exceed the true
 * value by a small factor, never by much in practice. CT_ERR_STATE before a
 * successful factor. */
int ct_linsolve_rcond(ct_context *ctx, ct_linsolve *ls, double *rcond);

/* Passes implementation options, e.g. "-ksp_type cg -pc_type icc" for
 * "petsc"; they apply from the next factor on, and after them the solver
 * is unfactored (solving is CT_ERR_STATE until ct_linsolve_factor; on an
 * error the previous options and factorization stay). NULL or "" is accepted by
 * every implementation; a non-empty string for one that takes no options
 * is CT_ERR_ARG naming it; options the implementation cannot parse are
 * CT_ERR_ARG quoting them. */
int ct_linsolve_set_options(ct_context *ctx, ct_linsolve *ls,
                            const char *options);
/* Krylov iterations summed over all solves so far (0 for direct solvers
 * and for NULL). */
long ct_linsolve_iterations(const ct_linsolve *ls);
/* 1 when the implementation solves iteratively (it has an iterations
 * entry, as "petsc" does), 0 for direct solvers. */
int ct_linsolve_is_iterative(const ct_linsolve *ls);

/* Tangent of x = A^{-1} b: dx = A^{-1} (db - dA x), with x the solution for
 * the factored A, dA nnz numbers in CSC order (NULL: zero) and db n numbers
 * (NULL: zero). */
int ct_linsolve_tangent(ct_context *ctx, ct_linsolve *ls, const double *x,
                        const double *dA, const double *db, double *dx);
/* Adjoint: b_bar = A^{-T} x_bar and A_bar = -b_bar x^T on A's pattern (nnz
 * numbers in CSC order; NULL to skip). */
int ct_linsolve_adjoint(ct_context *ctx, ct_linsolve *ls, const double *x,
                        const double *x_bar, double *b_bar, double *A_bar);

#ifdef __cplusplus
}
#endif

#endif /* COTANGENT_LINSOLVE_H */
