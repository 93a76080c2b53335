/* The benchmark problem of bench/implicit: a 2-D nonlinear
 * reaction-diffusion equation on the m x m interior points of the unit
 * square (h = 1/(m+1), zero Dirichlet boundary), one parameter per point:
 *
 *   F_i(x, p) = (sum of the 4 neighbours of x_i) - 4 x_i + h^2 (p_i - k x_i^3)
 *
 * (the 5-point Laplacian scaled by h^2, so that F_x has O(1) entries), with
 * k = 1 and a nominal source p_i = 100 (1 + 0.5 sin(2 pi s) cos(3 pi t)) at
 * the point (s, t): F_x = L - 3 h^2 k diag(x^2) is symmetric negative
 * definite, so the root is unique and Newton from x = 0 converges. The
 * loss is g(x) = 0.5 sum_i (x_i - target_i)^2 with
 * target_i = 4 sin(pi s) sin(pi t).
 *
 * F is traced as ONE AD function (inputs "x" (N), "p" (N), output "F"
 * (N), N = m^2); g as another (input "x", output "g" (1)). */
#ifndef COTANGENT_BENCH_IMPLICIT_RD_H
#define COTANGENT_BENCH_IMPLICIT_RD_H

#include <stddef.h>

#include "cotangent/ad.h"

typedef struct rd_problem {
  size_t m, n;     /* grid side, unknowns = parameters = m^2 */
  double *p;       /* nominal parameters (n) */
  double *target;  /* the loss's target (n) */
  ct_fun *F, *g;   /* traced residual and loss */
  double trace_s;  /* seconds to trace and finalize F and g */
} rd_problem;

/* Traces F and g for an m x m grid. 0 on success, -1 with the context's
 * message otherwise. */
int rd_problem_init(ct_context *ctx, rd_problem *pb, size_t m);
void rd_problem_free(rd_problem *pb);

/* The initial guess of every solve: x_i = 1. (Not 0: KINSOL's default
 * maximum Newton step is 1000 |x0|, clamped below to 1, so x0 = 0 caps
 * every step at norm 1.) */
void rd_guess(const rd_problem *pb, double *x);

/* The loss at x and its gradient x_bar = x - target (n; NULL to skip). */
double rd_loss(const rd_problem *pb, const double *x, double *x_bar);

/* A function with its own evaluation workspace (allocated at the first
 * evaluation, so that large functions do not allocate on every call). */
typedef struct rd_fn {
  ct_fun *f;
  double *work;
} rd_fn;
/* ct_fun_eval of fn->f; CT_OK or its status. */
int rd_fn_eval(ct_context *ctx, rd_fn *fn, const double *const *in, double *const *out);
/* Frees the function and its workspace. */
void rd_fn_free(rd_fn *fn);

#endif /* COTANGENT_BENCH_IMPLICIT_RD_H */
