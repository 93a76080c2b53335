/* Cotangent ODE integration: y' = f(t, y, p) through SUNDIALS, with every
 * derivative the integrator needs supplied by the AD core.
 *
 * A model (ct_ode) is built from AD-core functions: the right-hand side,
 * optionally initial values that depend on the parameters, and optionally
 * root (event) functions. ct_ode_solve integrates it with CVODES (BDF or
 * Adams) or ARKODE (explicit, diagonally implicit or IMEX Runge-Kutta) and
 * returns the solution at requested output times with solver
 * statistics. Linear solvers for the Newton iteration get their Jacobian
 * from the same model: dense or banded from the AD Jacobian, sparse KLU from
 * the colored sparse Jacobian, matrix-free GMRES from AD JVPs. */
#ifndef COTANGENT_ODE_H
#define COTANGENT_ODE_H

#include <stddef.h>

#include "cotangent/ad.h"
#include "cotangent/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ct_ode ct_ode;

/* A model from AD functions (the model keeps its own references: the
 * caller may free its functions afterwards).
 * - rhs: inputs "t" (1), "y" (n), and optionally "p" (np); output "f" (n),
 *   or, for CT_ODE_IMEX only, outputs "fe" and "fi" (n each) with f = fe + fi.
 * - y0: NULL (then initial values come from ct_ode_solve's `y0` argument), or
 *   inputs "p" (np); output "y0" (n): initial values that depend on p.
 * - roots: NULL, or inputs like rhs; output "g" (any size): the integration
 *   stops where a component of g changes sign.
 * Inputs and outputs are matched by name; a missing or wrongly sized one is
 * a CT_ERR_ARG naming it. The Jacobian functions are built here, once. */
int ct_ode_new(ct_context *ctx, const ct_fun *rhs, const ct_fun *y0,
               const ct_fun *roots, ct_ode **out);
void ct_ode_free(ct_ode *ode);

/* Compiles every function of an AD model (right-hand side or its split
 * parts, Jacobian, JVP, y0, roots) with ct_fun_jit (opts NULL: defaults)
 * and records it, so that ct_fsa_new, ct_asa_new, ct_asa_new_obs and
 * ct_asa2_new compile the functions they build with the same options.
 * Results are bit-identical to the interpreter. Without a working compiler
 * the model stays interpreted, with one warning, and CT_OK is returned. A
 * callback model: CT_OK, nothing to do. Calling it again does nothing.
 * Not thread-safe: call it right after ct_ode_new, before the model is
 * used by a solve or shared with sensitivity or adjoint problems. */
int ct_ode_jit(ct_context *ctx, ct_ode *ode, const ct_jit_options *opts);

/* A model from user C callbacks, for codes with their own kernels. Every
 * callback gets the user data `ud` and returns 0 on success; a positive
 * value is a recoverable failure (CVODES retries with a smaller step), a
 * negative one stops the integration. Either way the solve's failure
 * message names the callback and the time. Arrays are column-major / CSC.
 * Only `f` is required; a missing derivative is an error at solve time
 * unless allow_difference_quotients lets CVODES use difference quotients
 * (logged at warning level). */
typedef struct ct_ode_callbacks {
  size_t n, np;    /* states, parameters */
  void *user_data; /* passed as `ud` to every callback */
  /* ydot = f(t, y, p) (n values). Required. */
  int (*f)(double t, const double *y, const double *p, double *ydot, void *ud);
  /* Dense Jacobian df/dy: J[i + j*n] = df_i/dy_j, zeroed before the call. */
  int (*jac_dense)(double t, const double *y, const double *p, double *J, void *ud);
  /* Sparse Jacobian: the nnz values of jac_pattern (n x n, CSC), in its
   * order. Give jac_dense or jac_sparse, not both. */
  int (*jac_sparse)(double t, const double *y, const double *p, double *vals,
                    void *ud);
  const ct_sparsity *jac_pattern; /* copied by ct_ode_new_callbacks */
  /* Jv = (df/dy) v: for GMRES. */
  int (*jvp)(double t, const double *y, const double *p, const double *v,
             double *Jv, void *ud);
  /* JTw = (df/dy)^T w: for adjoints (adjoint right-hand side and backward
   * GMRES; without it, formed from the Jacobian callback). */
  int (*vjp)(double t, const double *y, const double *p, const double *w,
             double *JTw, void *ud);
  /* out = (df/dp) v, v of np values, out of n: for forward sensitivities
   * (ct_fsa_solve; with jvp or a Jacobian callback for the (df/dy) s part). */
  int (*dfdp_v)(double t, const double *y, const double *p, const double *v,
                double *out, void *ud);
  /* out = (df/dp)^T w, w of n values, out of np: for adjoints (the
   * gradient quadrature; required there when np > 0). */
  int (*dfdp_t_w)(double t, const double *y, const double *p, const double *w,
                  double *out, void *ud);
  /* Optional root functions: g (n_roots values), like ct_ode_new's roots. */
  size_t n_roots;
  int (*roots)(double t, const double *y, const double *p, double *g, void *ud);
  /* 1: a missing Jacobian or JVP callback falls back to CVODES' difference
   * quotients (dense, band, GMRES; KLU always needs a Jacobian callback). */
  int allow_difference_quotients;
} ct_ode_callbacks;

/* A model from callbacks (the struct is copied; user_data is not owned).
 * CT_ERR_ARG for a missing f, n = 0, a bad pattern, or jac_dense and
 * jac_sparse both set. ct_ode_jac_nnz is the pattern's nnz, or n*n.
 * Initial values come from ct_ode_solve's y0. Methods: BDF and Adams
 * (ARKODE methods refuse these models with CT_ERR_ARG; forward
 * sensitivities use jvp or the Jacobian callback with dfdp_v, see
 * cotangent/sensitivity.h; adjoints use vjp or the Jacobian callback with
 * dfdp_t_w, see cotangent/adjoint.h). */
int ct_ode_new_callbacks(ct_context *ctx, const ct_ode_callbacks *cb, ct_ode **out);
size_t ct_ode_n_states(const ct_ode *ode);
size_t ct_ode_n_params(const ct_ode *ode);
size_t ct_ode_n_roots(const ct_ode *ode);
/* Nonzeros of the structural Jacobian df/dy. */
size_t ct_ode_jac_nnz(const ct_ode *ode);

typedef enum ct_ode_method {
  CT_ODE_BDF = 0,   /* CVODES BDF with Newton: stiff problems */
  CT_ODE_ADAMS = 1, /* CVODES Adams-Moulton with fixed point: non-stiff */
  CT_ODE_ERK = 2,   /* ARKODE explicit Runge-Kutta: non-stiff */
  CT_ODE_DIRK = 3,  /* ARKODE diagonally implicit RK with Newton: stiff */
  CT_ODE_IMEX = 4   /* ARKODE additive RK: a model with outputs "fe"
                       (explicit) and "fi" (implicit, its Jacobian used) */
} ct_ode_method;

typedef enum ct_ode_linsol {
  CT_LINSOL_AUTO = 0, /* picked from size and sparsity; logged at info level */
  CT_LINSOL_DENSE,
  CT_LINSOL_BAND,     /* bandwidths from the sparsity pattern */
  CT_LINSOL_KLU,      /* sparse direct, colored sparse Jacobian */
  CT_LINSOL_GMRES     /* matrix-free, AD Jacobian-vector products */
} ct_ode_linsol;

/* Name of a linear solver ("auto", "dense", "band", "klu", "gmres"), and
 * the reverse (CT_ERR_ARG for an unknown name). */
const char *ct_ode_linsol_name(ct_ode_linsol ls);
int ct_ode_linsol_from_name(ct_context *ctx, const char *name, ct_ode_linsol *ls);

typedef struct ct_ode_options {
  ct_ode_method method;
  ct_ode_linsol linsol;
  double rtol;          /* relative tolerance (> 0) */
  double atol;          /* scalar absolute tolerance (> 0), unless ... */
  const double *atol_v; /* ... per-component absolute tolerances (n), if set */
  long max_steps;       /* per output interval; 0: SUNDIALS' default (500) */
  double max_step;      /* largest step; 0: unlimited */
  int stop_at_roots;    /* 1: a root ends the integration (else it is
                           recorded and integration continues) */
  int dense_output;     /* 1: keep the integrator's interpolant of every
                           internal step in the result, for
                           ct_ode_result_eval (costs memory per step) */
  /* Progress and interruption: when set, called after every internal step
   * with the time reached (capped at the last output time, so the final
   * call reports it), progress_ud passed back. The solve then steps one
   * step at a time with the same steps, outputs and statistics. A nonzero
   * return stops it with CT_ERR_INTERRUPTED, message "t = ...:
   * interrupted", everything up to there kept as for a solver failure. */
  int (*progress)(double t, void *ud);
  void *progress_ud;
} ct_ode_options;

/* BDF, auto linear solver, rtol 1e-6, atol 1e-8, stop at roots, no
 * dense output, no progress callback. */
ct_ode_options ct_ode_default_options(void);

typedef struct ct_ode_stats {
  long steps, rhs_evals, jac_evals, lin_setups, err_test_fails;
  long nonlin_iters, nonlin_conv_fails, root_evals;
  long jtimes_evals, lin_iters; /* GMRES */
  double last_step;
  int last_order;
  double init_step;    /* the initial step actually attempted */
  double current_time; /* where the integrator's internal state is (may be
                          past the last output time) */
  double current_step; /* the step size it would try next */
} ct_ode_stats;

/* An event found during integration. */
typedef struct ct_ode_root {
  double t;
  int *which; /* n_roots entries: +1 rising, -1 falling, 0 none */
} ct_ode_root;

typedef struct ct_ode_result {
  int status;           /* CT_OK, or the failure (also returned) */
  char message[512];    /* the failure: time reached and cause */
  size_t n, n_out;      /* states; output times filled */
  double *t;            /* n_out times (a root that stops the run adds it) */
  double *y;            /* n_out * n values, time-major */
  double t_reached;     /* where the integration got to */
  ct_ode_root *roots;   /* events in the order found */
  size_t n_roots_found;
  ct_ode_linsol linsol; /* the linear solver used (resolved from auto) */
  ct_ode_stats stats;
  struct ct_ode_dense *dense; /* with options.dense_output: the interpolant
                                 of every step (private; read it through
                                 ct_ode_result_eval), else NULL */
} ct_ode_result;

void ct_ode_result_free(ct_context *ctx, ct_ode_result *r);

/* The k-th time derivative (k >= 0; 0: the solution itself) of y at t,
 * anywhere in [t0, t_reached], from the integrator's own interpolant of the
 * step that covers t (CVODES: its Nordsieck polynomial, as CVodeGetDky;
 * ARKODE: its Hermite interpolant, as ARKStepGetDky), into y (n values).
 * Needs a result solved with dense_output = 1. CT_ERR_ARG for a result
 * without dense output, t outside [t0, t_reached] (or NaN), or k < 0. */
int ct_ode_result_eval(ct_context *ctx, const ct_ode_result *res, double t, int k,
                       double *y);

/* Integrates from t0 = tout[0] with y(t0) from the model's y0 function, or
 * from `y0` (n values) when the model has none, and returns the solution at
 * tout[0..n_tout) (increasing). On a solver failure the result is still
 * returned, with everything up to the failure: status negative, message
 * "t = ...: <cause>", also returned and recorded in the context (an
 * interruption by options.progress is CT_ERR_INTERRUPTED, kept the same
 * way). A model
 * traced with guards (ct_branch) whose guard flips during the solve stops it
 * the same way, with CT_ERR_SOLVER and a message saying so: its traced
 * branch no longer holds there. */
int ct_ode_solve(ct_context *ctx, const ct_ode *ode, const double *p,
                 const double *y0, const double *tout, size_t n_tout,
                 const ct_ode_options *opts, ct_ode_result **out);

#ifdef __cplusplus
}
#endif

#endif /* COTANGENT_ODE_H */
