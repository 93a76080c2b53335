/* SuiteSparse implementations of the ct_linsolve ops table: KLU and UMFPACK
 * (general sparse LU) and CHOLMOD (sparse Cholesky, symmetric positive
 * definite, upper triangle read). All three take int CSC indices, so the
 * pattern is converted once at create. */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <cholmod.h>
#include <klu.h>
#include <umfpack.h>

#include "cotangent/linsolve.h"

/* The pattern as int arrays for SuiteSparse's int interfaces. */
typedef struct int_csc {
  int n;
  int *colptr; /* n + 1 */
  int *rowind; /* nnz */
} int_csc;

/* Fills `c` from `p` through the context's allocator; CT_ERR_UNSUPPORTED
 * when the sizes exceed int. */
static int int_csc_init(ct_context *ctx, const ct_sparsity *p, int_csc *c) {
  if (p->nnz > (size_t)INT_MAX || p->ncols > (size_t)INT_MAX)
    return CT_ERROR(ctx, CT_ERR_UNSUPPORTED,
                    "linsolve: %zu nonzeros exceed the int indices of SuiteSparse",
                    p->nnz);
  c->n = (int)p->ncols;
  c->colptr = ct_calloc(ctx, p->ncols + 1, sizeof(int));
  c->rowind = ct_calloc(ctx, p->nnz ? p->nnz : 1, sizeof(int));
  if (!c->colptr || !c->rowind) return CT_ERR_NOMEM;
  for (size_t j = 0; j <= p->ncols; j++) c->colptr[j] = (int)p->colptr[j];
  for (size_t k = 0; k < p->nnz; k++) c->rowind[k] = (int)p->rowind[k];
  return CT_OK;
}

/* Frees the arrays of `c` (not `c`). */
static void int_csc_free(ct_context *ctx, int_csc *c) {
  ct_free(ctx, c->colptr);
  ct_free(ctx, c->rowind);
}

/* ---- KLU ------------------------------------------------------------------ */

typedef struct klu_state {
  int_csc A;
  double *values; /* the factored values (owned by the caller) */
  klu_common common;
  klu_symbolic *symbolic;
  klu_numeric *numeric;
} klu_state;

/* Frees the KLU state and its factorization. */
static void klu_state_destroy(ct_context *ctx, void *impl) {
  klu_state *s = impl;
  if (s->numeric) klu_free_numeric(&s->numeric, &s->common);
  if (s->symbolic) klu_free_symbolic(&s->symbolic, &s->common);
  int_csc_free(ctx, &s->A);
  ct_free(ctx, s);
}

/* Converts the pattern and orders it (klu_analyze). */
static int klu_state_create(ct_context *ctx, const ct_sparsity *p, void **impl) {
  klu_state *s = ct_calloc(ctx, 1, sizeof *s);
  if (!s) return CT_ERR_NOMEM;
  int status = int_csc_init(ctx, p, &s->A);
  if (status < 0) {
    klu_state_destroy(ctx, s);
    return status;
  }
  klu_defaults(&s->common);
  s->symbolic = klu_analyze(s->A.n, s->A.colptr, s->A.rowind, &s->common);
  if (!s->symbolic) {
    status = s->common.status == KLU_OUT_OF_MEMORY
                 ? CT_ERROR(ctx, CT_ERR_NOMEM, "linsolve (klu): out of memory in klu_analyze")
                 : CT_ERROR(ctx, CT_ERR_EXTERNAL, "linsolve (klu): klu_analyze failed (status %d)",
                            s->common.status);
    klu_state_destroy(ctx, s);
    return status;
  }
  *impl = s;
  return CT_OK;
}

/* Maps a failed KLU factorization to a status naming the singular column. */
static int klu_failure(ct_context *ctx, const klu_state *s, const char *what) {
  if (s->common.status == KLU_SINGULAR)
    return CT_ERROR(ctx, CT_ERR_NUMERIC,
                    "linsolve (klu): singular matrix in %s (zero pivot in column %d)",
                    what, s->common.singular_col);
  if (s->common.status == KLU_OUT_OF_MEMORY)
    return CT_ERROR(ctx, CT_ERR_NOMEM, "linsolve (klu): out of memory in %s", what);
  return CT_ERROR(ctx, CT_ERR_EXTERNAL, "linsolve (klu): %s failed (status %d)",
                  what, s->common.status);
}

/* A fresh numeric factorization (klu_factor), replacing any previous one. */
static int klu_state_factor(ct_context *ctx, void *impl, double *values) {
  klu_state *s = impl;
  s->values = values;
  if (s->numeric) klu_free_numeric(&s->numeric, &s->common);
  s->numeric = klu_factor(s->A.colptr, s->A.rowind, values, s->symbolic, &s->common);
  if (!s->numeric) return klu_failure(ctx, s, "klu_factor");
  return CT_OK;
}

/* klu_refactor with the previous pivot order; a fresh factor if none. */
static int klu_state_refactor(ct_context *ctx, void *impl, double *values) {
  klu_state *s = impl;
  if (!s->numeric) return klu_state_factor(ctx, impl, values);
  s->values = values;
  if (!klu_refactor(s->A.colptr, s->A.rowind, values, s->symbolic, s->numeric,
                    &s->common)) {
    int status = klu_failure(ctx, s, "klu_refactor");
    klu_free_numeric(&s->numeric, &s->common);
    return status;
  }
  return CT_OK;
}

/* x = A^{-1} b (klu_solve, in place on x). */
static int klu_state_solve(ct_context *ctx, void *impl, const double *b, double *x) {
  klu_state *s = impl;
  if (x != b) memmove(x, b, (size_t)s->A.n * sizeof(double));
  if (!klu_solve(s->symbolic, s->numeric, s->A.n, 1, x, &s->common))
    return klu_failure(ctx, s, "klu_solve");
  return CT_OK;
}

/* x = A^{-T} b (klu_tsolve, in place on x). */
static int klu_state_tsolve(ct_context *ctx, void *impl, const double *b, double *x) {
  klu_state *s = impl;
  if (x != b) memmove(x, b, (size_t)s->A.n * sizeof(double));
  if (!klu_tsolve(s->symbolic, s->numeric, s->A.n, 1, x, &s->common))
    return klu_failure(ctx, s, "klu_tsolve");
  return CT_OK;
}

/* 1/condest from klu_condest (Hager/Higham on the KLU factors). */
static int klu_state_rcond(ct_context *ctx, void *impl, double *rcond) {
  klu_state *s = impl;
  if (!klu_condest(s->A.colptr, s->values, s->symbolic, s->numeric, &s->common))
    return klu_failure(ctx, s, "klu_condest");
  double cond = s->common.condest;
  *rcond = cond > 0 && isfinite(cond) ? 1.0 / cond : 0.0;
  return CT_OK;
}

const ct_linsolve_ops ct_linsolve_klu = {
    .name = "klu",
    .create = klu_state_create,
    .factor = klu_state_factor,
    .refactor = klu_state_refactor,
    .solve = klu_state_solve,
    .solve_transpose = klu_state_tsolve,
    .destroy = klu_state_destroy,
    .rcond = klu_state_rcond,
};

/* ---- UMFPACK -------------------------------------------------------------- */

typedef struct umf_state {
  int_csc A;
  double *values; /* the factored values (owned by the caller) */
  double *work;   /* n: a copy of b when b and x alias */
  void *symbolic;
  void *numeric;
} umf_state;

/* Frees the UMFPACK state and its factorization. */
static void umf_state_destroy(ct_context *ctx, void *impl) {
  umf_state *s = impl;
  if (s->numeric) umfpack_di_free_numeric(&s->numeric);
  if (s->symbolic) umfpack_di_free_symbolic(&s->symbolic);
  int_csc_free(ctx, &s->A);
  ct_free(ctx, s->work);
  ct_free(ctx, s);
}

/* Converts the pattern; the symbolic analysis needs values and waits for
 * the first factor. */
static int umf_state_create(ct_context *ctx, const ct_sparsity *p, void **impl) {
  umf_state *s = ct_calloc(ctx, 1, sizeof *s);
  if (!s) return CT_ERR_NOMEM;
  int status = int_csc_init(ctx, p, &s->A);
  if (status >= 0) {
    s->work = ct_calloc(ctx, p->nrows, sizeof(double));
    if (!s->work) status = CT_ERR_NOMEM;
  }
  if (status < 0) {
    umf_state_destroy(ctx, s);
    return status;
  }
  *impl = s;
  return CT_OK;
}

/* Maps an UMFPACK status to a Cotangent status. */
static int umf_failure(ct_context *ctx, int status, const char *what) {
  if (status == UMFPACK_WARNING_singular_matrix)
    return CT_ERROR(ctx, CT_ERR_NUMERIC,
                    "linsolve (umfpack): singular matrix in %s (a zero pivot)", what);
  if (status == UMFPACK_ERROR_out_of_memory)
    return CT_ERROR(ctx, CT_ERR_NOMEM, "linsolve (umfpack): out of memory in %s", what);
  return CT_ERROR(ctx, CT_ERR_EXTERNAL, "linsolve (umfpack): %s failed (status %d)",
                  what, status);
}

/* Symbolic analysis on first use, then a numeric factorization. */
static int umf_state_factor(ct_context *ctx, void *impl, double *values) {
  umf_state *s = impl;
  s->values = values;
  if (s->numeric) umfpack_di_free_numeric(&s->numeric);
  if (!s->symbolic) {
    int st = umfpack_di_symbolic(s->A.n, s->A.n, s->A.colptr, s->A.rowind, values,
                                 &s->symbolic, NULL, NULL);
    if (st != UMFPACK_OK) {
      s->symbolic = NULL;
      return umf_failure(ctx, st, "umfpack_di_symbolic");
    }
  }
  int st = umfpack_di_numeric(s->A.colptr, s->A.rowind, values, s->symbolic,
                              &s->numeric, NULL, NULL);
  if (st != UMFPACK_OK) {
    if (s->numeric) umfpack_di_free_numeric(&s->numeric);
    s->numeric = NULL;
    return umf_failure(ctx, st, "umfpack_di_numeric");
  }
  return CT_OK;
}

/* x = A^{-1} b (sys UMFPACK_A) or A^{-T} b (UMFPACK_At). */
static int umf_state_solve_sys(ct_context *ctx, umf_state *s, int sys,
                               const double *b, double *x) {
  if (x == b) {
    memcpy(s->work, b, (size_t)s->A.n * sizeof(double));
    b = s->work;
  }
  int st = umfpack_di_solve(sys, s->A.colptr, s->A.rowind, s->values, x, b,
                            s->numeric, NULL, NULL);
  if (st != UMFPACK_OK) return umf_failure(ctx, st, "umfpack_di_solve");
  return CT_OK;
}

/* x = A^{-1} b. */
static int umf_state_solve(ct_context *ctx, void *impl, const double *b, double *x) {
  return umf_state_solve_sys(ctx, impl, UMFPACK_A, b, x);
}

/* x = A^{-T} b (real matrices: UMFPACK_At is the plain transpose). */
static int umf_state_tsolve(ct_context *ctx, void *impl, const double *b, double *x) {
  return umf_state_solve_sys(ctx, impl, UMFPACK_At, b, x);
}

const ct_linsolve_ops ct_linsolve_umfpack = {
    .name = "umfpack",
    .create = umf_state_create,
    .factor = umf_state_factor,
    .refactor = NULL, /* factor reuses the symbolic analysis */
    .solve = umf_state_solve,
    .solve_transpose = umf_state_tsolve,
    .destroy = umf_state_destroy,
};

/* ---- CHOLMOD -------------------------------------------------------------- */

typedef struct chol_state {
  cholmod_common common;
  int started;
  cholmod_sparse *A; /* CHOLMOD's own copy, stype = 1 (upper triangle) */
  cholmod_factor *L;
  size_t nnz;
} chol_state;

/* Frees the CHOLMOD state, its matrix and factor, and finishes CHOLMOD. */
static void chol_state_destroy(ct_context *ctx, void *impl) {
  chol_state *s = impl;
  if (s->started) {
    if (s->L) cholmod_free_factor(&s->L, &s->common);
    if (s->A) cholmod_free_sparse(&s->A, &s->common);
    cholmod_finish(&s->common);
  }
  ct_free(ctx, s);
}

/* Copies the pattern into a symmetric (upper) CHOLMOD matrix and runs the
 * symbolic analysis. */
static int chol_state_create(ct_context *ctx, const ct_sparsity *p, void **impl) {
  if (p->nnz > (size_t)INT_MAX)
    return CT_ERROR(ctx, CT_ERR_UNSUPPORTED,
                    "linsolve: %zu nonzeros exceed the int indices of CHOLMOD", p->nnz);
  chol_state *s = ct_calloc(ctx, 1, sizeof *s);
  if (!s) return CT_ERR_NOMEM;
  cholmod_start(&s->common);
  s->started = 1;
  s->common.print = 0; /* errors are reported through the context */
  s->nnz = p->nnz;
  s->A = cholmod_allocate_sparse(p->nrows, p->ncols, p->nnz, 1, 1, 1, CHOLMOD_REAL,
                                 &s->common);
  if (!s->A) {
    chol_state_destroy(ctx, s);
    return CT_ERROR(ctx, CT_ERR_NOMEM, "linsolve (cholmod): out of memory");
  }
  int *Ap = s->A->p, *Ai = s->A->i;
  for (size_t j = 0; j <= p->ncols; j++) Ap[j] = (int)p->colptr[j];
  for (size_t k = 0; k < p->nnz; k++) Ai[k] = (int)p->rowind[k];
  s->L = cholmod_analyze(s->A, &s->common);
  if (!s->L) {
    int status = CT_ERROR(ctx, CT_ERR_EXTERNAL,
                          "linsolve (cholmod): cholmod_analyze failed (status %d)",
                          s->common.status);
    chol_state_destroy(ctx, s);
    return status;
  }
  *impl = s;
  return CT_OK;
}

/* Numeric Cholesky factorization into the analysed factor. */
static int chol_state_factor(ct_context *ctx, void *impl, double *values) {
  chol_state *s = impl;
  if (s->nnz) memcpy(s->A->x, values, s->nnz * sizeof(double));
  int ok = cholmod_factorize(s->A, s->L, &s->common);
  if (ok && s->common.status == CHOLMOD_NOT_POSDEF)
    return CT_ERROR(ctx, CT_ERR_NUMERIC,
                    "linsolve (cholmod): matrix not positive definite "
                    "(factorization failed at column %zu)", s->L->minor);
  if (!ok || s->common.status < CHOLMOD_OK)
    return CT_ERROR(ctx, s->common.status == CHOLMOD_OUT_OF_MEMORY ? CT_ERR_NOMEM
                                                                    : CT_ERR_EXTERNAL,
                    "linsolve (cholmod): cholmod_factorize failed (status %d)",
                    s->common.status);
  return CT_OK;
}

/* x = A^{-1} b; A is symmetric, so this is also the transposed solve. */
static int chol_state_solve(ct_context *ctx, void *impl, const double *b, double *x) {
  chol_state *s = impl;
  cholmod_dense B = {0};
  B.nrow = B.d = s->A->nrow;
  B.ncol = 1;
  B.nzmax = s->A->nrow;
  B.x = (void *)(uintptr_t)b; /* read only by cholmod_solve */
  B.xtype = CHOLMOD_REAL;
  B.dtype = CHOLMOD_DOUBLE;
  cholmod_dense *X = cholmod_solve(CHOLMOD_A, s->L, &B, &s->common);
  if (!X)
    return CT_ERROR(ctx, s->common.status == CHOLMOD_OUT_OF_MEMORY ? CT_ERR_NOMEM
                                                                    : CT_ERR_EXTERNAL,
                    "linsolve (cholmod): cholmod_solve failed (status %d)",
                    s->common.status);
  memcpy(x, X->x, s->A->nrow * sizeof(double));
  cholmod_free_dense(&X, &s->common);
  return CT_OK;
}

const ct_linsolve_ops ct_linsolve_cholmod = {
    .name = "cholmod",
    .create = chol_state_create,
    .factor = chol_state_factor,
    .refactor = NULL,
    .solve = chol_state_solve,
    .solve_transpose = NULL, /* symmetric */
    .destroy = chol_state_destroy,
};
