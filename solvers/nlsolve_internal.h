/* Private: what the nonlinear-solver back ends (solvers/nlsolve_kinsol.c,
 * solvers/nlsolve_snes.c) and the implicit derivatives (adjoint/implicit.c,
 * adjoint/steady.c) share. The problem itself (struct ct_nlsolve) is
 * defined in solvers/nlsolve.c; back ends reach it only through the
 * services below, so a back end never depends on its layout. */
#ifndef COTANGENT_SOLVERS_NLSOLVE_INTERNAL_H
#define COTANGENT_SOLVERS_NLSOLVE_INTERNAL_H

#include "cotangent/linsolve.h"
#include "cotangent/nlsolve.h"

/* A back end, registered by name in solvers/nlsolve.c ("kinsol", "snes").
 * solve: the contract of ct_nlsolve_solve, with `o` complete (defaults
 * filled, linear_solver resolved from "auto") and stats zeroed. On
 * failure it leaves the last iterate in x, records the message (solver,
 * iteration, max |F|, reason) and returns a negative status. */
typedef struct ct_nlsolve_backend {
  const char *name;
  int (*solve)(ct_context *ctx, ct_nlsolve *nls, const ct_nlsolve_options *o,
               const double *p, double *x, ct_nlsolve_stats *st);
} ct_nlsolve_backend;

extern const ct_nlsolve_backend ct_nlsolve_kinsol;
extern const ct_nlsolve_backend ct_nlsolve_snes;

/* ---- Services on a problem (solvers/nlsolve.c) ----------------------------- */
/* x and p as in ct_nlsolve_solve (p NULL when np = 0). Each returns CT_OK
 * or a negative status with the error recorded; a non-finite result is
 * CT_ERR_NUMERIC naming the first bad component. They count into the
 * problem's own tallies (f_evals, jac_evals, jtimes) that
 * ct_nlsolve_solve copies into the stats. Not reentrant: one solve of a
 * problem at a time. */

/* F (n) = F(x, p), or x - G(x, p) for a fixed-point problem. */
int ct_nls_residual(ct_context *ctx, ct_nlsolve *nls, const double *x,
                    const double *p, double *F);
/* For a fixed-point problem, G(x, p) itself (n). */
int ct_nls_fixed_point_map(ct_context *ctx, ct_nlsolve *nls, const double *x,
                           const double *p, double *G);
/* The pattern of F_x: n x n CSC, rows sorted, the diagonal always present. */
const ct_sparsity *ct_nls_pattern(const ct_nlsolve *nls);
/* The values of F_x at (x, p) on ct_nls_pattern's CSC order (nnz). */
int ct_nls_jacobian(ct_context *ctx, ct_nlsolve *nls, const double *x,
                    const double *p, double *vals);
/* Jv (n) = F_x(x, p) v. */
int ct_nls_jvp(ct_context *ctx, ct_nlsolve *nls, const double *x,
               const double *p, const double *v, double *Jv);
/* x_bar (n) = F_x^T w and, when p_bar is not NULL, p_bar (np) = F_p^T w,
 * both from one AD VJP. */
int ct_nls_vjp(ct_context *ctx, ct_nlsolve *nls, const double *x,
               const double *p, const double *w, double *x_bar, double *p_bar);
/* The problem's linear solver called `name` (one of ct_linsolve_names()),
 * created on ct_nls_pattern at first use and kept with the problem, so
 * that a back end that factors F_x at the final iterate hands that
 * factorization to the implicit derivatives (see ct_nls_mark_factored). */
int ct_nls_linsolve(ct_context *ctx, ct_nlsolve *nls, const char *name,
                    ct_linsolve **ls);
/* A back end says the problem's linear solver holds F_x factored at
 * exactly the x it returns (then the derivatives reuse it). */
void ct_nls_mark_factored(ct_nlsolve *nls);

/* ---- For the implicit derivatives (adjoint/implicit.c, adjoint/steady.c) ---- */

/* Fp_dp (n) = F_p(x, p) dp for one direction dp (np numbers); zero when the
 * problem has no parameters. */
int ct_nls_jvp_p(ct_context *ctx, ct_nlsolve *nls, const double *x, const double *p,
                 const double *dp, double *Fp_dp);
/* A back end says the problem's linear solver holds F_x factored at an
 * earlier iterate near the x it returns (Newton's last factorization): the
 * derivatives then solve with it by iterative refinement against exact AD
 * products at x, and factor afresh only if that does not converge. */
void ct_nls_mark_factored_stale(ct_nlsolve *nls);
/* The problem's linear solver holds no usable factorization (a factor
 * failed). */
void ct_nls_mark_unfactored(ct_nlsolve *nls);
/* 1 when the problem's linear solver holds F_x factored at the recorded
 * solution (marked by a back end or by the derivatives themselves). */
int ct_nls_is_factored(const ct_nlsolve *nls);
/* 1 after ct_nls_mark_factored_stale (and no factorization since). */
int ct_nls_is_factored_stale(const ct_nlsolve *nls);
/* The reciprocal condition estimate of the current factorization, when
 * one was remembered since it was made (returns 1), else 0. */
int ct_nls_rcond_cached(const ct_nlsolve *nls, double *rcond);
void ct_nls_rcond_remember(ct_nlsolve *nls, double rcond);
/* The last successful solve: its x (n), p (NULL when np = 0) and completed
 * options (linear_solver resolved; strategy NULL), owned by the problem
 * and valid until the next solve. CT_ERR_STATE when there is none. Also
 * makes ct_nls_linsolve apply that solve's petsc_options. */
int ct_nls_solution(ct_context *ctx, ct_nlsolve *nls, const double **x,
                    const double **p, const ct_nlsolve_options **o);

#endif /* COTANGENT_SOLVERS_NLSOLVE_INTERNAL_H */
