/* The baselines of bench/implicit, written with the library's parts
 * (ct_fun_sparse_jac, ct_fun_vjp, ct_fun_jvp, ct_linsolve): plain Newton,
 * optionally keeping its whole tape (every iterate, step and
 * factorization) to differentiate the unrolled iterations in reverse; the
 * implicit adjoint by hand (one transposed solve and one VJP at the root);
 * and forward-mode columns dx/dp_j = -F_x^{-1} F_p e_j. */
#ifndef COTANGENT_BENCH_IMPLICIT_NEWTON_H
#define COTANGENT_BENCH_IMPLICIT_NEWTON_H

#include "cotangent/linsolve.h"
#include "rd.h"

/* Everything the baselines evaluate; build with newton_ctx_init and the
 * newton_need_* calls (each builds its function once). */
typedef struct newton_ctx {
  ct_context *ctx;
  const rd_problem *pb;
  const char *linsolve; /* ct_linsolve name, "klu" by default */
  double ftol;          /* stop when max |F| <= ftol */
  rd_fn F, J;           /* the residual; its sparse Jacobian wrt x ("jac") */
  ct_sparsity *pattern; /* J's pattern */
  rd_fn vjp_F;          /* (x, p, bar_F) -> bar_x, bar_p */
  rd_fn vjp_J;          /* (x, p, bar_jac) -> bar_x, bar_p */
  rd_fn jvp_F_p;        /* (x, p, d_p) -> d_F */
  double *res, *vals;   /* scratch: n residuals, nnz Jacobian values */
  double jac_build_s, vjp_build_s, vjp_J_build_s, jvp_build_s;
} newton_ctx;

int newton_ctx_init(ct_context *ctx, newton_ctx *nc, const rd_problem *pb, double ftol);
void newton_ctx_free(newton_ctx *nc);
int newton_need_vjp_F(newton_ctx *nc);
int newton_need_vjp_J(newton_ctx *nc);
int newton_need_jvp_F_p(newton_ctx *nc);

/* What differentiating the unrolled iterations needs: per iteration k the
 * iterate x_k, the step delta_k = F_x(x_k)^{-1} F(x_k) and its
 * factorization (x_{k+1} = x_k - delta_k). */
typedef struct newton_tape {
  int k, cap;
  double **x, **delta;
  ct_linsolve **ls;
} newton_tape;
void newton_tape_free(ct_context *ctx, newton_tape *t);

/* Plain Newton at p from x (overwritten with the root; at most 50
 * iterations). With a tape, every iteration gets its own solver and
 * everything is kept; without, `ls` is refactored each iteration. The
 * iteration count into *iters. CT_OK, CT_ERR_SOLVER when it does not
 * converge (x is the last iterate), or a failing call's status. */
int newton_solve(newton_ctx *nc, const double *p, double *x, ct_linsolve *ls,
                 newton_tape *tape, int *iters);

/* Reverse pass through the taped iterations: p_bar (n) = d(x_bar . x_K)/dp
 * for the seed x_bar (n) of the final iterate: per iteration one
 * transposed solve (ct_linsolve_adjoint: b_bar and A_bar on J's pattern),
 * a VJP of F and a VJP of J's values. */
int newton_unrolled_adjoint(newton_ctx *nc, const double *p, const newton_tape *tape,
                            const double *x_bar, double *p_bar);

/* The implicit adjoint at the root x: factors F_x(x) in ls, lambda =
 * F_x^{-T} x_bar, p_bar = -F_p^T lambda (one VJP). */
int newton_implicit_adjoint(newton_ctx *nc, const double *p, const double *x, ct_linsolve *ls,
                            const double *x_bar, double *p_bar);

/* Forward-mode column j with ls holding F_x(x) factored: dx = -F_x^{-1}
 * (F_p e_j) (one JVP of F in p, one solve); returns x_bar . dx in *dl. */
int newton_forward_column(newton_ctx *nc, const double *p, const double *x, ct_linsolve *ls,
                          size_t j, const double *x_bar, double *dx, double *dl);

#endif /* COTANGENT_BENCH_IMPLICIT_NEWTON_H */
