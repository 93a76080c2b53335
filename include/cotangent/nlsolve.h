/* Cotangent nonlinear solves: F(x, p) = 0 and fixed points x = G(x, p)
 * through KINSOL or PETSc SNES, with every derivative the solver needs
 * supplied by the AD core.
 *
 * A problem (ct_nlsolve) is built from one AD function. Its Jacobian F_x
 * comes from the same function: dense from the AD Jacobian, sparse (KLU,
 * UMFPACK, PETSc AIJ) from the colored sparse Jacobian, matrix-free
 * (GMRES, PETSc -snes_mf style) from AD Jacobian-vector products. The
 * problem keeps the solution of its last successful solve and, where the
 * linear solver allows, the factorization of F_x there: the implicit
 * derivatives of cotangent/implicit.h start from both. */
#ifndef COTANGENT_NLSOLVE_H
#define COTANGENT_NLSOLVE_H

#include <stddef.h>

#include "cotangent/ad.h"
#include "cotangent/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ct_nlsolve ct_nlsolve;

/* A problem from an AD function (the problem keeps its own copy: the
 * caller may free F afterwards). F has the input "x" (n) and optionally
 * "p" (np), and one of the outputs
 * - "F" (n): the root problem F(x, p) = 0;
 * - "G" (n): the fixed-point problem x = G(x, p), solved as
 *   F(x, p) = x - G(x, p) = 0 (so F_x = I - G_x everywhere below).
 * A missing or wrongly sized input or output is a CT_ERR_ARG naming it.
 * The Jacobian functions are built here, once. */
int ct_nlsolve_new(ct_context *ctx, const ct_fun *F, ct_nlsolve **out);
/* Frees the problem. NULL is a no-op. */
void ct_nlsolve_free(ct_nlsolve *nls);
size_t ct_nlsolve_n(const ct_nlsolve *nls);
size_t ct_nlsolve_n_params(const ct_nlsolve *nls);
/* 1 for a fixed-point problem (output "G"), 0 for a root problem. */
int ct_nlsolve_is_fixed_point(const ct_nlsolve *nls);
/* Nonzeros of the structural Jacobian F_x (the diagonal always included). */
size_t ct_nlsolve_jac_nnz(const ct_nlsolve *nls);
/* Compiles every function of the problem with ct_fun_jit (opts NULL:
 * defaults), as ct_ode_jit does for ODE models: results are bit-identical,
 * and without a compiler the problem stays interpreted with CT_OK. */
int ct_nlsolve_jit(ct_context *ctx, ct_nlsolve *nls, const ct_jit_options *opts);

typedef struct ct_nlsolve_options {
  /* "kinsol" (default; NULL means it) or "snes" (PETSc). */
  const char *solver;
  /* KINSOL's strategy: "linesearch" (Newton with a line search, the
   * default for root problems), "newton" (plain Newton), "picard", or
   * "fixed_point" (Anderson-accelerated fixed-point iteration, the default
   * for problems with output "G"). NULL: the default. SNES takes its
   * method from petsc_options (-snes_type, -snes_linesearch_type). */
  const char *strategy;
  /* The linear solver of the Newton steps and of the implicit
   * derivatives: "auto" (NULL: dense up to 100 unknowns, else klu),
   * any name of ct_linsolve_names() ("dense", "klu", "umfpack",
   * "cholmod", "petsc"), or "gmres" (matrix-free with AD Jacobian-vector
   * products; for SNES: a MatShell, preconditioning from petsc_options). */
  const char *linear_solver;
  double ftol;     /* stop when max_i |F_i| <= ftol (default 1e-10) */
  double steptol;  /* or when the scaled step is below it (default 1e-13);
                      a stop on the step with |F| > ftol is a failure */
  long max_iters;  /* nonlinear iterations (default 200) */
  long max_setup;  /* Newton iterations between Jacobian updates: 1 (the
                      default) is full Newton, more is modified Newton */
  int anderson_m;  /* fixed point: Anderson acceleration depth (default 5;
                      0: plain iteration) */
  double damping;  /* fixed point: damping in (0, 1] (default 1: none) */
  /* PETSc options (for "snes" and the "petsc" linear solver), e.g.
   * "-snes_type newtontr -ksp_type gmres -pc_type ilu"; applied under a
   * prefix private to this solve, so they never leak into other solves.
   * NULL: none. */
  const char *petsc_options;
  /* The implicit derivatives refuse (CT_ERR_NUMERIC) a Jacobian F_x at
   * the solution whose reciprocal condition estimate is below this
   * (default 1e-14; 0 disables the check). */
  double min_rcond;
  /* KINSOL only: bounds on x in KINSOL's convention, n numbers (NULL:
   * none): 0 free, 1 x_i >= 0, -1 x_i <= 0, 2 x_i > 0, -2 x_i < 0; the
   * initial guess must satisfy them. Steps are cut to keep x inside. */
  const double *constraints;
} ct_nlsolve_options;

/* KINSOL, default strategy, linear solver auto, the defaults above. */
ct_nlsolve_options ct_nlsolve_default_options(void);

typedef struct ct_nlsolve_stats {
  long iters;        /* nonlinear iterations */
  long f_evals;      /* residual evaluations */
  long jac_evals;    /* Jacobian evaluations */
  long factorizations; /* numeric factorizations of F_x */
  long lin_iters;    /* Krylov iterations (gmres, petsc) */
  long jtimes;       /* AD Jacobian-vector products */
  long backtracks;   /* line-search reductions */
  double fnorm;      /* max_i |F_i| at the returned x */
  double step_norm;  /* the last step's scaled norm */
} ct_nlsolve_stats;

/* Solves the problem at parameters p (np numbers; NULL when np = 0) from
 * the initial guess x (n numbers), which is overwritten with the solution.
 * opts NULL: defaults. stats NULL: not returned. On failure x holds the
 * last iterate (the partial result), stats are filled as far as they got,
 * and the error message names the solver, the iteration reached, max |F|
 * there and the reason (e.g. "KINSOL: the line search failed to reduce
 * |F| at iteration 12 (max |F| = 3.2e-03)"); the status is
 * CT_ERR_SOLVER, CT_ERR_NUMERIC for a non-finite residual, or a failing
 * call's status. After a successful solve, the problem records x, p and
 * the options for cotangent/implicit.h. */
int ct_nlsolve_solve(ct_context *ctx, ct_nlsolve *nls,
                     const ct_nlsolve_options *opts, const double *p, double *x,
                     ct_nlsolve_stats *stats);

/* The residual F(x, p) (for a fixed-point problem x - G(x, p)) into F (n). */
int ct_nlsolve_residual(ct_context *ctx, ct_nlsolve *nls, const double *x,
                        const double *p, double *F);

#ifdef __cplusplus
}
#endif

#endif /* COTANGENT_NLSOLVE_H */
