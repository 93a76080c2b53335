/* Linear solves behind one ops table, the registry of built-in
 * implementations, and the derivatives of x = A^{-1} b that reuse the
 * factorization (tangent: one solve; adjoint: one transposed solve). */
#include "cotangent/linsolve.h"

#include <math.h>
#include <string.h>

/* Built-in implementations (solvers/linsolve_suitesparse.c, linsolve_dense.c,
 * linsolve_petsc.c). */
extern const ct_linsolve_ops ct_linsolve_klu;
extern const ct_linsolve_ops ct_linsolve_umfpack;
extern const ct_linsolve_ops ct_linsolve_cholmod;
extern const ct_linsolve_ops ct_linsolve_dense;
extern const ct_linsolve_ops ct_linsolve_petsc;

struct ct_linsolve {
  const ct_linsolve_ops *ops;
  void *impl;
  ct_sparsity pattern; /* owned copy */
  double *values;      /* nnz, the factored values */
  double *work;        /* n */
  int factored;        /* a factorization is current */
  int ever_factored;   /* refactor may reuse the symbolic analysis */
};

static const ct_linsolve_ops *const builtin_ops[] = {
    &ct_linsolve_klu, &ct_linsolve_umfpack, &ct_linsolve_cholmod,
    &ct_linsolve_dense, &ct_linsolve_petsc};

static const char *const builtin_names[] = {"klu",   "umfpack", "cholmod",
                                            "dense", "petsc",   NULL};

/* Looks a built-in implementation up by name; NULL when unknown. */
const ct_linsolve_ops *ct_linsolve_find(const char *name) {
  if (!name) return NULL;
  for (size_t i = 0; i < sizeof builtin_ops / sizeof builtin_ops[0]; i++)
    if (strcmp(builtin_ops[i]->name, name) == 0) return builtin_ops[i];
  return NULL;
}

/* The built-in names, NULL-terminated; static storage. */
const char *const *ct_linsolve_names(void) { return builtin_names; }

/* CT_OK when `A` is a square CSC pattern with in-range, sorted rows. */
static int check_pattern(ct_context *ctx, const ct_sparsity *A) {
  if (!A || !A->colptr || (A->nnz && !A->rowind))
    return CT_ERROR(ctx, CT_ERR_ARG, "linsolve: the matrix pattern is NULL");
  if (A->nrows != A->ncols || A->nrows == 0)
    return CT_ERROR(ctx, CT_ERR_ARG,
                    "linsolve: the matrix must be square and nonempty (%zu x %zu)",
                    A->nrows, A->ncols);
  if (A->colptr[0] != 0 || A->colptr[A->ncols] != A->nnz)
    return CT_ERROR(ctx, CT_ERR_ARG, "linsolve: colptr does not span 0..nnz");
  for (size_t j = 0; j < A->ncols; j++) {
    if (A->colptr[j + 1] < A->colptr[j])
      return CT_ERROR(ctx, CT_ERR_ARG, "linsolve: colptr decreases at column %zu", j);
    for (size_t k = A->colptr[j]; k < A->colptr[j + 1]; k++) {
      if (A->rowind[k] >= A->nrows || (k > A->colptr[j] && A->rowind[k] <= A->rowind[k - 1]))
        return CT_ERROR(ctx, CT_ERR_ARG,
                        "linsolve: row index %zu of column %zu out of range or unsorted",
                        A->rowind[k], j);
    }
  }
  return CT_OK;
}

/* Creates a solver with a built-in implementation found by name. */
int ct_linsolve_create(ct_context *ctx, const char *name, const ct_sparsity *A,
                       ct_linsolve **out) {
  const ct_linsolve_ops *ops = ct_linsolve_find(name);
  if (!ops)
    return CT_ERROR(ctx, CT_ERR_ARG,
                    "linsolve: unknown solver \"%s\" (klu, umfpack, cholmod, dense, petsc)",
                    name ? name : "(null)");
  CT_CHECK(ctx, ct_linsolve_create_ops(ctx, ops, A, out));
  return CT_OK;
}

/* Creates a solver over `ops`; *out owns a copy of the pattern. */
int ct_linsolve_create_ops(ct_context *ctx, const ct_linsolve_ops *ops,
                           const ct_sparsity *A, ct_linsolve **out) {
  if (!out) return CT_ERROR(ctx, CT_ERR_ARG, "linsolve: out is NULL");
  *out = NULL;
  if (!ops || !ops->name || !ops->create || !ops->factor || !ops->solve ||
      !ops->destroy)
    return CT_ERROR(ctx, CT_ERR_ARG,
                    "linsolve: the ops table lacks a required entry "
                    "(name, create, factor, solve, destroy)");
  CT_CHECK(ctx, check_pattern(ctx, A));
  ct_linsolve *ls = ct_calloc(ctx, 1, sizeof *ls);
  if (!ls) return CT_ERR_NOMEM;
  ls->ops = ops;
  ls->pattern.nrows = A->nrows;
  ls->pattern.ncols = A->ncols;
  ls->pattern.nnz = A->nnz;
  ls->pattern.colptr = ct_calloc(ctx, A->ncols + 1, sizeof(size_t));
  ls->pattern.rowind = ct_calloc(ctx, A->nnz ? A->nnz : 1, sizeof(size_t));
  ls->values = ct_calloc(ctx, A->nnz ? A->nnz : 1, sizeof(double));
  ls->work = ct_calloc(ctx, A->nrows, sizeof(double));
  if (!ls->pattern.colptr || !ls->pattern.rowind || !ls->values || !ls->work) {
    ct_linsolve_free(ctx, ls);
    return CT_ERR_NOMEM;
  }
  memcpy(ls->pattern.colptr, A->colptr, (A->ncols + 1) * sizeof(size_t));
  if (A->nnz) memcpy(ls->pattern.rowind, A->rowind, A->nnz * sizeof(size_t));
  int status = ops->create(ctx, &ls->pattern, &ls->impl);
  if (status < 0) {
    ls->impl = NULL;
    ct_linsolve_free(ctx, ls);
    return ct_error_trace(ctx, status, __FILE__, __LINE__, __func__);
  }
  *out = ls;
  return CT_OK;
}

/* Frees everything the solver owns, the implementation's state included. */
void ct_linsolve_free(ct_context *ctx, ct_linsolve *ls) {
  if (!ls) return;
  if (ls->impl) ls->ops->destroy(ctx, ls->impl);
  ct_free(ctx, ls->pattern.colptr);
  ct_free(ctx, ls->pattern.rowind);
  ct_free(ctx, ls->values);
  ct_free(ctx, ls->work);
  ct_free(ctx, ls);
}

/* The implementation's registered name. */
const char *ct_linsolve_name(const ct_linsolve *ls) {
  return ls ? ls->ops->name : NULL;
}

/* The matrix pattern the solver was created with (its own copy). */
const ct_sparsity *ct_linsolve_pattern(const ct_linsolve *ls) {
  return ls ? &ls->pattern : NULL;
}

/* Copies the values and factors (first time) or refactors (same pattern). */
int ct_linsolve_factor(ct_context *ctx, ct_linsolve *ls, const double *values) {
  if (!ls || (!values && ls->pattern.nnz))
    return CT_ERROR(ctx, CT_ERR_ARG, "linsolve: solver or values NULL");
  if (ls->pattern.nnz) memcpy(ls->values, values, ls->pattern.nnz * sizeof(double));
  ls->factored = 0;
  int (*fn)(ct_context *, void *, double *) =
      ls->ever_factored && ls->ops->refactor ? ls->ops->refactor : ls->ops->factor;
  CT_CHECK(ctx, fn(ctx, ls->impl, ls->values));
  ls->factored = 1;
  ls->ever_factored = 1;
  return CT_OK;
}

/* CT_OK when `ls` is factored and the vectors are given. */
static int check_solve_args(ct_context *ctx, const ct_linsolve *ls,
                            const void *in, const void *out) {
  if (!ls || !in || !out)
    return CT_ERROR(ctx, CT_ERR_ARG, "linsolve: solver or vector NULL");
  if (!ls->factored)
    return CT_ERROR(ctx, CT_ERR_STATE,
                    "linsolve (%s): solve before a successful factor", ls->ops->name);
  return CT_OK;
}

/* x = A^{-1} b through the implementation; b and x may alias. */
int ct_linsolve_solve(ct_context *ctx, ct_linsolve *ls, const double *b,
                      double *x) {
  CT_CHECK(ctx, check_solve_args(ctx, ls, b, x));
  CT_CHECK(ctx, ls->ops->solve(ctx, ls->impl, b, x));
  return CT_OK;
}

/* x = A^{-T} b; a symmetric implementation (no solve_transpose) solves. */
int ct_linsolve_solve_transpose(ct_context *ctx, ct_linsolve *ls,
                                const double *b, double *x) {
  CT_CHECK(ctx, check_solve_args(ctx, ls, b, x));
  if (ls->ops->solve_transpose)
    CT_CHECK(ctx, ls->ops->solve_transpose(ctx, ls->impl, b, x));
  else
    CT_CHECK(ctx, ls->ops->solve(ctx, ls->impl, b, x));
  return CT_OK;
}

/* dx = A^{-1} (db - dA x): builds the right-hand side in work, one solve. */
int ct_linsolve_tangent(ct_context *ctx, ct_linsolve *ls, const double *x,
                        const double *dA, const double *db, double *dx) {
  CT_CHECK(ctx, check_solve_args(ctx, ls, x, dx));
  const ct_sparsity *p = &ls->pattern;
  for (size_t i = 0; i < p->nrows; i++) ls->work[i] = db ? db[i] : 0.0;
  if (dA)
    for (size_t j = 0; j < p->ncols; j++)
      for (size_t k = p->colptr[j]; k < p->colptr[j + 1]; k++)
        ls->work[p->rowind[k]] -= dA[k] * x[j];
  CT_CHECK(ctx, ct_linsolve_solve(ctx, ls, ls->work, dx));
  return CT_OK;
}

/* b_bar = A^{-T} x_bar (one transposed solve); A_bar_k = -b_bar_i x_j. */
int ct_linsolve_adjoint(ct_context *ctx, ct_linsolve *ls, const double *x,
                        const double *x_bar, double *b_bar, double *A_bar) {
  CT_CHECK(ctx, check_solve_args(ctx, ls, x_bar, b_bar));
  if (A_bar && !x)
    return CT_ERROR(ctx, CT_ERR_ARG, "linsolve: A_bar needs the solution x");
  CT_CHECK(ctx, ct_linsolve_solve_transpose(ctx, ls, x_bar, b_bar));
  if (!A_bar) return CT_OK;
  const ct_sparsity *p = &ls->pattern;
  for (size_t j = 0; j < p->ncols; j++)
    for (size_t k = p->colptr[j]; k < p->colptr[j + 1]; k++)
      A_bar[k] = -b_bar[p->rowind[k]] * x[j];
  return CT_OK;
}

/* ||A||_1, the largest column sum of |values| over the stored pattern. */
static double matrix_norm1(const ct_linsolve *ls) {
  const ct_sparsity *p = &ls->pattern;
  double worst = 0;
  for (size_t j = 0; j < p->ncols; j++) {
    double sum = 0;
    for (size_t k = p->colptr[j]; k < p->colptr[j + 1]; k++) sum += fabs(ls->values[k]);
    if (sum > worst || isnan(sum)) worst = sum;
  }
  return worst;
}

/* The sum of |v_i|. */
static double vector_norm1(const double *v, size_t n) {
  double sum = 0;
  for (size_t i = 0; i < n; i++) sum += fabs(v[i]);
  return sum;
}

/* The first index of the largest |v_i|. */
static size_t argmax_abs(const double *v, size_t n) {
  size_t best = 0;
  for (size_t i = 1; i < n; i++)
    if (fabs(v[i]) > fabs(v[best])) best = i;
  return best;
}

/* Writes sign(y) (+1 for zero) into sign; returns 1 when it did not change
 * (LAPACK dlacn2's convergence test). */
static int update_signs(const double *y, double *sign, size_t n) {
  int same = 1;
  for (size_t i = 0; i < n; i++) {
    double s = y[i] >= 0 ? 1.0 : -1.0;
    if (s != sign[i]) same = 0;
    sign[i] = s;
  }
  return same;
}

/* ||A^{-1}||_1 estimated by Hager's method with Higham's refinements (the
 * algorithm of LAPACK dlacn2, at most 5 iterations plus the alternating-sign
 * test vector): solves with A and A^T on the current factorization. `w`
 * holds 3n doubles of workspace. */
static int estimate_inverse_norm1(ct_context *ctx, ct_linsolve *ls, double *w,
                                  double *est) {
  size_t n = ls->pattern.nrows;
  double *x = w, *y = w + n, *sign = w + 2 * n;
  for (size_t i = 0; i < n; i++) x[i] = 1.0 / (double)n;
  CT_CHECK(ctx, ct_linsolve_solve(ctx, ls, x, y));
  *est = vector_norm1(y, n);
  if (n > 1) {
    update_signs(y, sign, n);
    CT_CHECK(ctx, ct_linsolve_solve_transpose(ctx, ls, sign, x));
    size_t j = argmax_abs(x, n);
    for (int iter = 2;; iter++) {
      memset(x, 0, n * sizeof *x);
      x[j] = 1.0;
      CT_CHECK(ctx, ct_linsolve_solve(ctx, ls, x, y));
      double previous = *est;
      *est = vector_norm1(y, n);
      if (update_signs(y, sign, n) || *est <= previous) {
        *est = fmax(*est, previous);
        break;
      }
      CT_CHECK(ctx, ct_linsolve_solve_transpose(ctx, ls, sign, x));
      size_t last = j;
      j = argmax_abs(x, n);
      if (x[last] == fabs(x[j]) || iter >= 5) break;
    }
    /* The alternating-sign vector catches matrices that fool the iteration. */
    for (size_t i = 0; i < n; i++)
      x[i] = (i % 2 ? -1.0 : 1.0) * (1.0 + (double)i / (double)(n - 1));
    CT_CHECK(ctx, ct_linsolve_solve(ctx, ls, x, y));
    *est = fmax(*est, 2.0 * vector_norm1(y, n) / (3.0 * (double)n));
  }
  return CT_OK;
}

/* 1/(||A||_1 est(||A^{-1}||_1)) with the generic estimator; 0 when either
 * norm is zero, infinite or not a number. */
static int generic_rcond(ct_context *ctx, ct_linsolve *ls, double *rcond) {
  size_t n = ls->pattern.nrows;
  double *w = ct_calloc(ctx, 3 * n, sizeof(double));
  if (!w) return CT_ERROR(ctx, CT_ERR_NOMEM, "linsolve: no memory for the rcond estimate");
  double inv_norm = 0;
  int status = estimate_inverse_norm1(ctx, ls, w, &inv_norm);
  ct_free(ctx, w);
  if (status < 0) return ct_error_trace(ctx, status, __FILE__, __LINE__, __func__);
  double product = matrix_norm1(ls) * inv_norm;
  *rcond = product > 0 && isfinite(product) ? 1.0 / product : 0.0;
  return CT_OK;
}

/* The reciprocal 1-norm condition estimate of the factored matrix: the
 * implementation's own estimate when it has one, the generic one else. */
int ct_linsolve_rcond(ct_context *ctx, ct_linsolve *ls, double *rcond) {
  if (!ls || !rcond) return CT_ERROR(ctx, CT_ERR_ARG, "linsolve: solver or rcond NULL");
  *rcond = 0;
  if (!ls->factored)
    return CT_ERROR(ctx, CT_ERR_STATE,
                    "linsolve (%s): rcond before a successful factor", ls->ops->name);
  if (ls->ops->rcond) CT_CHECK(ctx, ls->ops->rcond(ctx, ls->impl, rcond));
  else CT_CHECK(ctx, generic_rcond(ctx, ls, rcond));
  if (!(*rcond >= 0)) *rcond = 0; /* NaN from a broken factorization */
  if (*rcond > 1) *rcond = 1;
  return CT_OK;
}

/* Hands non-empty options to the implementation, which may rebuild its
 * solver: the solver is unfactored until the next factor. NULL and "" are
 * no-ops. */
int ct_linsolve_set_options(ct_context *ctx, ct_linsolve *ls, const char *options) {
  if (!ls) return CT_ERROR(ctx, CT_ERR_ARG, "linsolve: solver NULL");
  if (!options || !*options) return CT_OK;
  if (!ls->ops->set_options)
    return CT_ERROR(ctx, CT_ERR_ARG,
                    "linsolve (%s): this solver takes no options (got \"%s\")",
                    ls->ops->name, options);
  CT_CHECK(ctx, ls->ops->set_options(ctx, ls->impl, options));
  ls->factored = 0;
  return CT_OK;
}

/* Iterative: the implementation counts Krylov iterations. */
int ct_linsolve_is_iterative(const ct_linsolve *ls) {
  return ls && ls->ops->iterations != NULL;
}

/* Krylov iterations over all solves; 0 without an iterations entry. */
long ct_linsolve_iterations(const ct_linsolve *ls) {
  if (!ls || !ls->ops->iterations) return 0;
  return ls->ops->iterations(ls->impl);
}
