/* Cotangent linear solves: x = A^{-1} b behind one interface, and their
 * derivatives.
 *
 * A square matrix A is given by its pattern (a ct_sparsity in compressed
 * sparse column form, row indices sorted) and its nonzero values in that CSC
 * order. Implementations are ops tables registered by name: "klu", "umfpack"
 * (general sparse, SuiteSparse), "cholmod" (symmetric positive definite: the
 * full pattern with symmetric values; only the upper triangle is read) and
 * "dense" (LAPACK dgetrf/dgetrs). One factorization serves the solve, the
 * transposed solve, the tangent and the adjoint. */
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
 * is symmetric and solve is used). Every entry returns CT_OK or a negative
 * status with the error recorded in ctx. `values` (nnz numbers in the CSC
 * order of the pattern) is owned by the caller and stays valid and
 * unchanged until the next factor/refactor or destroy. */
typedef struct ct_linsolve_ops {
  const char *name;
  int (*create)(ct_context *ctx, const ct_sparsity *pattern, void **impl);
  int (*factor)(ct_context *ctx, void *impl, double *values);
  int (*refactor)(ct_context *ctx, void *impl, double *values);
  int (*solve)(ct_context *ctx, void *impl, const double *b, double *x);
  int (*solve_transpose)(ct_context *ctx, void *impl, const double *b,
                         double *x);
  void (*destroy)(ct_context *ctx, void *impl);
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
