/* Cotangent DAE integration: F(t, y, y', p) = 0 through SUNDIALS' IDAS,
 * with every derivative the integrator needs supplied by the AD core.
 *
 * A model (ct_dae) is built from AD functions: the residual, optionally
 * initial values y0(p), y0'(p), and optionally root (event) functions.
 * Which components are differential and which algebraic is read from the
 * structure of dF/dy' (a component is differential when its column of
 * dF/dy' has a structural nonzero) and may be overridden per solve.
 * The iteration matrix dF/dy + cj dF/dy' is assembled from the colored
 * sparse Jacobians of F with respect to y and y', built once with the
 * model (dense or KLU); GMRES uses AD JVPs of F in direction (v, cj v).
 * Consistent initial values come from IDACalcIC (on by default). */
#ifndef COTANGENT_DAE_H
#define COTANGENT_DAE_H

#include <stddef.h>

#include "cotangent/ad.h"
#include "cotangent/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ct_dae ct_dae;

/* A model from AD functions (the model keeps its own copies: the caller may
 * free its functions afterwards).
 * - res: inputs "y" (n), "yp" (n), optionally "t" (1) and "p" (np);
 *   output "F" (n).
 * - init: NULL (then ct_dae_solve's y0/yp0 arguments are used), or inputs
 *   "p" (np, optional); output "y0" (n) and optionally "yp0" (n; zero when
 *   absent): initial values that depend on p.
 * - roots: NULL, or inputs like res; output "g" (any size).
 * A missing or wrongly sized input or output is a CT_ERR_ARG naming it. */
int ct_dae_new(ct_context *ctx, const ct_fun *res, const ct_fun *init,
               const ct_fun *roots, ct_dae **out);
void ct_dae_free(ct_dae *dae);
/* Compiles every function of the model (residual, dF/dy, dF/dy', JVP,
 * init, roots) with ct_fun_jit (opts NULL: defaults) and records it, so
 * that ct_dae_fsa_new, ct_dae_asa_new and ct_dae_asa_new_obs compile the
 * functions they build with the same options. Bit-identical results;
 * without a working compiler the model stays interpreted, with one
 * warning, and CT_OK is returned. Calling it again does nothing. Not
 * thread-safe: call it right after ct_dae_new, before any solve. */
int ct_dae_jit(ct_context *ctx, ct_dae *dae, const ct_jit_options *opts);
size_t ct_dae_n_states(const ct_dae *dae);
size_t ct_dae_n_params(const ct_dae *dae);
size_t ct_dae_n_roots(const ct_dae *dae);
/* Nonzeros of the structural iteration matrix (dF/dy and dF/dy' merged). */
size_t ct_dae_jac_nnz(const ct_dae *dae);
/* The derived component types: n entries, 1 differential, 0 algebraic. */
const int *ct_dae_differential(const ct_dae *dae);

typedef enum ct_dae_linsol {
  CT_DAE_LINSOL_AUTO = 0, /* dense up to 50 states or when dense-ish, else KLU */
  CT_DAE_LINSOL_DENSE,
  CT_DAE_LINSOL_KLU,
  CT_DAE_LINSOL_GMRES     /* matrix-free, AD JVPs, no preconditioner */
} ct_dae_linsol;

/* Name of a linear solver ("auto", "dense", "klu", "gmres"), and the
 * reverse (CT_ERR_ARG for an unknown name), as ct_ode_linsol_name. */
const char *ct_dae_linsol_name(ct_dae_linsol ls);
int ct_dae_linsol_from_name(ct_context *ctx, const char *name, ct_dae_linsol *ls);

typedef struct ct_dae_options {
  ct_dae_linsol linsol;
  double rtol;            /* relative tolerance (> 0) */
  double atol;            /* scalar absolute tolerance (> 0), unless ... */
  const double *atol_v;   /* ... per-component absolute tolerances (n) */
  long max_steps;         /* per output interval; 0: SUNDIALS' default (500) */
  double max_step;        /* largest step; 0: unlimited */
  int calc_ic;            /* 1: IDACalcIC(IDA_YA_YDP_INIT) towards tout[1]
                             corrects the algebraic y and the differential y'
                             before integrating */
  const int *differential;/* n entries (1/0) overriding the derived ones */
  int stop_at_roots;      /* 1: a root ends the integration */
  int dense_output;       /* 1: keep IDAS' interpolant of every internal step
                             in the result, for ct_dae_result_eval (costs
                             memory per step) */
  /* Progress and interruption, as in ct_ode_options: called after every
   * internal step with the time reached (capped at the last output time);
   * a nonzero return stops the solve with CT_ERR_INTERRUPTED, message
   * "t = ...: interrupted", everything up to there kept. The solve then
   * steps with IDA_ONE_STEP: the same steps, outputs and statistics. */
  int (*progress)(double t, void *ud);
  void *progress_ud;
} ct_dae_options;

/* Auto linear solver, rtol 1e-6, atol 1e-8, calc_ic on, derived
 * component types, stop at roots, no dense output, no progress callback. */
ct_dae_options ct_dae_default_options(void);

typedef struct ct_dae_stats {
  long steps, res_evals, jac_evals, lin_setups, err_test_fails;
  long nonlin_iters, nonlin_conv_fails, root_evals;
  long jtimes_evals, lin_iters, lin_res_evals; /* GMRES */
  long ic_backtracks;   /* IDAGetNumBacktrackops */
  double first_step, last_step; /* first_step: IDAGetActualInitStep */
  int last_order;
  double current_time;  /* where IDAS' internal state is (may be past the
                           last output time) */
  double current_step;  /* the step size it would try next */
  int current_order;    /* the order it would try next */
} ct_dae_stats;

/* An event: its time, which components crossed (+1 rising, -1 falling, 0),
 * the state there, and the integrator's step count, order and last step. */
typedef struct ct_dae_root {
  double t;
  int *which;  /* n_roots entries */
  double *y;   /* n entries */
  long steps;
  int order;
  double h;
} ct_dae_root;

typedef struct ct_dae_result {
  int status;           /* CT_OK, or the failure (also returned) */
  char message[512];    /* the failure: time reached and cause */
  size_t n, n_out;      /* states; output times filled */
  double *t;            /* n_out times (a root that stops the run adds it) */
  double *y, *yp;       /* n_out * n values each, time-major; the first
                           output holds the consistent initial values */
  long *steps;          /* n_out: steps taken when the output was reached */
  int *order;           /* n_out: the last order used */
  double *h;            /* n_out: the last step size */
  double t_reached;
  ct_dae_root *roots;
  size_t n_roots_found;
  ct_dae_linsol linsol; /* resolved from auto */
  ct_dae_stats stats;
  struct ct_ode_dense *dense; /* with options.dense_output: the interpolant
                                 of every step (private; read it through
                                 ct_dae_result_eval), else NULL */
} ct_dae_result;

void ct_dae_result_free(ct_context *ctx, ct_dae_result *r);

/* The k-th time derivative (k >= 0) of y at t, anywhere in [t0,
 * t_reached], from IDAS' own interpolant of the step that covers t (as
 * IDAGetDky), into y (n values). Needs a result solved with dense_output =
 * 1. CT_ERR_ARG for a result without dense output, t outside [t0,
 * t_reached] (or NaN), or k < 0; derivatives above the step's order are 0. */
int ct_dae_result_eval(ct_context *ctx, const ct_dae_result *res, double t, int k,
                       double *y);

/* Integrates from t0 = tout[0] with (y, y')(t0) from the model's init
 * function, or from y0 and yp0 (n values each; yp0 NULL means zero) when
 * it has none, and returns the solution at tout[0..n_tout) (increasing).
 * With calc_ic and n_tout >= 2 the initial values are first made
 * consistent (a failure of IDACalcIC is a CT_ERR_SOLVER naming it; with a
 * single output time nothing is integrated and no correction is made). On a
 * solver failure the result is still returned with everything up to the
 * failure: status negative, message "t = ...: <cause>", also returned and
 * recorded in the context. */
int ct_dae_solve(ct_context *ctx, const ct_dae *dae, const double *p,
                 const double *y0, const double *yp0, const double *tout,
                 size_t n_tout, const ct_dae_options *opts,
                 ct_dae_result **out);

/* ---- Forward sensitivities (sensitivity/dae_forward.c) ------------------- */

/* dy/dp along the solution through IDAS' forward sensitivity analysis. The
 * sensitivity residual dF/dy s_j + dF/dy' s_j' + dF/dp_j of all selected
 * parameters comes from ONE vector-mode AD JVP of F (tangents (s_j, s_j',
 * e_j)), built once here; initial sensitivities from the JVP of the init
 * function (zero without one), made consistent by IDACalcIC with calc_ic.
 * `dae` is borrowed and must outlive the problem; params as ct_fsa_new
 * (NULL: all, in order). CT_ERR_ARG for a model without parameters or a
 * bad index. */
typedef struct ct_dae_fsa ct_dae_fsa;
int ct_dae_fsa_new(ct_context *ctx, const ct_dae *dae, const size_t *params,
                   size_t n_params, ct_dae_fsa **out);
void ct_dae_fsa_free(ct_dae_fsa *fsa);
size_t ct_dae_fsa_n_params(const ct_dae_fsa *fsa);

typedef struct ct_dae_fsa_options {
  ct_dae_options dae;
  int staggered;        /* 0: IDA_SIMULTANEOUS, 1: IDA_STAGGERED */
  int err_con;          /* IDASetSensErrCon */
  const double *pbar;   /* n_params scales; NULL: |p_j| (1 where p_j = 0) */
} ct_dae_fsa_options;

/* ct_dae_default_options(), simultaneous, error control on, default
 * scales; sensitivity tolerances are IDASensEEtolerances'. */
ct_dae_fsa_options ct_dae_fsa_default_options(void);

typedef struct ct_dae_fsa_result {
  ct_dae_result *dae;   /* the state solution, status and message */
  size_t n_params;
  double *s, *sp;       /* dae->n_out * n_params * n: dy_i/dp_j (and dy'_i/dp_j)
                           at output k is s[(k * n_params + j) * n + i] */
  long sens_res_evals;  /* IDAGetSensNumResEvals: calls for all parameters */
  long res_evals_sens;  /* IDAGetNumResEvalsSens: 0, no difference quotients */
  long sens_err_test_fails, sens_nonlin_iters, sens_nonlin_conv_fails;
} ct_dae_fsa_result;

void ct_dae_fsa_result_free(ct_context *ctx, ct_dae_fsa_result *r);

/* ct_dae_solve with sensitivities; on a solver failure the result is kept
 * with everything up to it (sensitivities included). */
int ct_dae_fsa_solve(ct_context *ctx, const ct_dae_fsa *fsa, const double *p,
                     const double *y0, const double *yp0, const double *tout,
                     size_t n_tout, const ct_dae_fsa_options *opts,
                     ct_dae_fsa_result **out);

/* ---- Adjoint sensitivities (adjoint/dae_asa.c) ---------------------------- */

/* Gradients of J = ∫_{t0}^{T} g(t, y, p) dt + phi(T, y(T), p) through
 * IDAS' adjoint sensitivity analysis with checkpointing. The adjoint
 * residual (dF/dy')^T lambda' - (dF/dy)^T lambda + (dg/dy)^T and the
 * gradient integrand g_p - lambda^T dF/dp come from AD VJPs of F and g, the
 * backward iteration matrix cj (dF/dy')^T - (dF/dy)^T from sparse AD
 * Jacobians (dense or KLU) or VJPs (GMRES), all built once by
 * ct_dae_asa_new (immutable afterwards: one problem may be solved from
 * several threads, each with its own context).
 * The adjoint residual assumes dF/dy' constant along the solution
 * (M y' = f(t, y, p) with a constant M, semi-explicit index-1 DAEs); the
 * term (d/dt (dF/dy'))^T lambda is not formed. phi may depend on
 * algebraic variables: its final condition eliminates them through the
 * algebraic equations (index 1 needed). No models with root functions.
 * - g: NULL, or inputs among "t" (1), "y" (n), "p" (np); output "g" (1).
 * - phi: NULL, or inputs among "t", "y", "p" (at T, y(T)); output "phi" (1).
 * At least one of them. `dae` is borrowed and must outlive the problem. */
typedef struct ct_dae_asa ct_dae_asa;
int ct_dae_asa_new(ct_context *ctx, const ct_dae *dae, const ct_fun *g,
                   const ct_fun *phi, ct_dae_asa **out);
/* ct_dae_asa_new with a third, discrete term Σ_k h(t_k, y(t_k), p) over the
 * observation times of ct_dae_asa_options (t_obs):
 * - h: NULL, or inputs among "t", "y", "p"; output "h" (1).
 * At least one of g, phi, h. The backward integration restarts at every
 * t_k (IDAReInitB) with the jump of lambda that h's term gives (the same
 * condition as phi's, at t_k). */
int ct_dae_asa_new_obs(ct_context *ctx, const ct_dae *dae, const ct_fun *g,
                       const ct_fun *phi, const ct_fun *h, ct_dae_asa **out);
void ct_dae_asa_free(ct_dae_asa *asa);

typedef struct ct_dae_asa_options {
  ct_dae_options dae;     /* the forward phase (max_steps per IDASolveF call) */
  long checkpoint_steps;  /* IDAAdjInit's Nd */
  int polynomial;         /* 0: IDA_HERMITE, 1: IDA_POLYNOMIAL */
  double rtol_b, atol_b;  /* adjoint states */
  double rtol_q, atol_q;  /* forward quadrature of g; backward gradient
                             quadrature (relative tolerance rtol_b there, as
                             SUNDIALS' examples do, when rtol_q_b is 0) */
  double rtol_q_b;        /* backward quadrature's relative tolerance; 0:
                             rtol_b */
  int quad_err_con;       /* quadratures in the error test */
  long max_steps_b;       /* 0: SUNDIALS' default (500) */
  ct_dae_linsol linsol_b; /* backward linear solver; AUTO: the forward
                             phase's (resolved) choice */
  const double *t_obs;    /* n_obs observation times of h, increasing,
                             inside (t0, T]; NULL with n_obs 0 */
  size_t n_obs;
} ct_dae_asa_options;

/* ct_dae_default_options(), 100 steps between checkpoints, Hermite,
 * rtol_b 1e-6, atol_b 1e-8, rtol_q 1e-6, atol_q 1e-6, rtol_q_b 0,
 * quadratures in the error test, linsol_b auto, no observation times. */
ct_dae_asa_options ct_dae_asa_default_options(void);

typedef struct ct_dae_asa_result {
  int status;             /* CT_OK, or the failure (also returned) */
  char message[512];      /* "forward phase: ..." or "backward phase: ..." */
  ct_dae_result *dae;     /* the forward solution at t0 and T */
  size_t n, np;
  double value;           /* J = integral + final + observed */
  double integral;        /* ∫ g dt (forward quadrature), 0 without g */
  double final;           /* phi(T, y(T), p), 0 without phi */
  double observed;        /* Σ_k h(t_k, y(t_k), p), 0 without h */
  double *dJdp;           /* np: dJ/dp, through y0(p) when the model has it */
  double *lambda0;        /* n: lambda(t0) */
  double *lambdap0;       /* n: lambda'(t0) */
  double *dJdy0;          /* n: (dF/dy')^T lambda at t0: dJ/dy0 of the
                             differential components (0 for algebraic) */
  int backward_done;      /* 1 when the gradient is filled */
  long n_checkpoints, quad_evals, quad_evals_b;
  ct_dae_stats stats_b;   /* the backward integration (steps and
                             evaluations summed over the intervals between
                             observation times) */
  ct_dae_linsol linsol_b; /* the backward linear solver used */
} ct_dae_asa_result;

void ct_dae_asa_result_free(ct_context *ctx, ct_dae_asa_result *res);

/* Integrates forward from t0 to T > t0 with checkpoints (initial values as
 * ct_dae_solve), then the adjoint backward from T, where lambda(T) is made
 * consistent by IDACalcICB (differential components of lambda zero) or,
 * with phi or an observation at T, by the final condition, to t0
 * (restarted at each observation time with h's jump).
 * A failure of either phase is CT_ERR_SOLVER with the result kept. */
int ct_dae_asa_solve(ct_context *ctx, const ct_dae_asa *asa, const double *p,
                     const double *y0, const double *yp0, double t0, double T,
                     const ct_dae_asa_options *opts, ct_dae_asa_result **out);

#ifdef __cplusplus
}
#endif

#endif /* COTANGENT_DAE_H */
