/* The dense implementation of the ct_linsolve ops table: the CSC values are
 * scattered into a column-major matrix and factored by LAPACK's dgetrf
 * (partial pivoting); dgetrs solves with 'N' or 'T'; dgecon estimates the
 * reciprocal condition number from the factors. */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "cotangent/linsolve.h"

/* LAPACK, standard Fortran ABI. */
extern void dgetrf_(const int *m, const int *n, double *a, const int *lda,
                    int *ipiv, int *info);
extern void dgetrs_(const char *trans, const int *n, const int *nrhs,
                    const double *a, const int *lda, const int *ipiv, double *b,
                    const int *ldb, int *info, size_t trans_len);
extern void dgecon_(const char *norm, const int *n, const double *a,
                    const int *lda, const double *anorm, double *rcond,
                    double *work, int *iwork, int *info, size_t norm_len);

typedef struct dense_state {
  const ct_sparsity *pattern; /* the wrapper's copy; outlives this state */
  int n;
  double *lu; /* n*n, column-major: the LU factors */
  int *ipiv;  /* n */
  double anorm; /* ||A||_1 of the factored matrix */
  double *work; /* 4n, for dgecon */
  int *iwork;   /* n, for dgecon */
} dense_state;

/* Frees the dense state. */
static void dense_destroy(ct_context *ctx, void *impl) {
  dense_state *s = impl;
  ct_free(ctx, s->lu);
  ct_free(ctx, s->ipiv);
  ct_free(ctx, s->work);
  ct_free(ctx, s->iwork);
  ct_free(ctx, s);
}

/* Allocates the n*n factor storage. */
static int dense_create(ct_context *ctx, const ct_sparsity *p, void **impl) {
  if (p->nrows > 46340) /* n*n must fit LAPACK's int */
    return CT_ERROR(ctx, CT_ERR_UNSUPPORTED,
                    "linsolve (dense): %zu rows are too many for a dense LU", p->nrows);
  dense_state *s = ct_calloc(ctx, 1, sizeof *s);
  if (!s) return CT_ERR_NOMEM;
  s->pattern = p;
  s->n = (int)p->nrows;
  s->lu = ct_calloc(ctx, p->nrows * p->nrows, sizeof(double));
  s->ipiv = ct_calloc(ctx, p->nrows, sizeof(int));
  s->work = ct_calloc(ctx, 4 * p->nrows, sizeof(double));
  s->iwork = ct_calloc(ctx, p->nrows, sizeof(int));
  if (!s->lu || !s->ipiv || !s->work || !s->iwork) {
    dense_destroy(ctx, s);
    return CT_ERR_NOMEM;
  }
  *impl = s;
  return CT_OK;
}

/* Scatters the values, records ||A||_1 and factors with dgetrf; info > 0
 * is a zero pivot. */
static int dense_factor(ct_context *ctx, void *impl, double *values) {
  dense_state *s = impl;
  const ct_sparsity *p = s->pattern;
  size_t n = p->nrows;
  memset(s->lu, 0, n * n * sizeof(double));
  s->anorm = 0;
  for (size_t j = 0; j < p->ncols; j++) {
    double column_sum = 0;
    for (size_t k = p->colptr[j]; k < p->colptr[j + 1]; k++) {
      s->lu[j * n + p->rowind[k]] = values[k];
      column_sum += fabs(values[k]);
    }
    if (column_sum > s->anorm || isnan(column_sum)) s->anorm = column_sum;
  }
  int info = 0;
  dgetrf_(&s->n, &s->n, s->lu, &s->n, s->ipiv, &info);
  if (info > 0)
    return CT_ERROR(ctx, CT_ERR_NUMERIC,
                    "linsolve (dense): singular matrix (dgetrf: U(%d,%d) is exactly zero)",
                    info - 1, info - 1);
  if (info < 0)
    return CT_ERROR(ctx, CT_ERR_INTERNAL, "linsolve (dense): dgetrf argument %d invalid",
                    -info);
  return CT_OK;
}

/* x = A^{-1} b ('N') or A^{-T} b ('T') with dgetrs, in place on x. */
static int dense_solve_trans(ct_context *ctx, dense_state *s, char trans,
                             const double *b, double *x) {
  if (x != b) memmove(x, b, (size_t)s->n * sizeof(double));
  int one = 1, info = 0;
  dgetrs_(&trans, &s->n, &one, s->lu, &s->n, s->ipiv, x, &s->n, &info, 1);
  if (info != 0)
    return CT_ERROR(ctx, CT_ERR_INTERNAL, "linsolve (dense): dgetrs info %d", info);
  return CT_OK;
}

/* x = A^{-1} b. */
static int dense_solve(ct_context *ctx, void *impl, const double *b, double *x) {
  return dense_solve_trans(ctx, impl, 'N', b, x);
}

/* x = A^{-T} b. */
static int dense_tsolve(ct_context *ctx, void *impl, const double *b, double *x) {
  return dense_solve_trans(ctx, impl, 'T', b, x);
}

/* The reciprocal 1-norm condition estimate from the LU factors (dgecon). */
static int dense_rcond(ct_context *ctx, void *impl, double *rcond) {
  dense_state *s = impl;
  int info = 0;
  if (!isfinite(s->anorm)) {
    *rcond = 0;
    return CT_OK;
  }
  dgecon_("1", &s->n, s->lu, &s->n, &s->anorm, rcond, s->work, s->iwork, &info, 1);
  if (info != 0)
    return CT_ERROR(ctx, CT_ERR_INTERNAL, "linsolve (dense): dgecon info %d", info);
  return CT_OK;
}

const ct_linsolve_ops ct_linsolve_dense = {
    .name = "dense",
    .create = dense_create,
    .factor = dense_factor,
    .refactor = NULL,
    .solve = dense_solve,
    .solve_transpose = dense_tsolve,
    .destroy = dense_destroy,
    .rcond = dense_rcond,
};
