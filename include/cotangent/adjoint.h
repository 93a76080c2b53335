/* Cotangent continuous adjoints: gradients of objectives of an ODE model's
 * solution (cotangent/ode.h) through CVODES' adjoint sensitivity analysis
 * with checkpointing.
 *
 * The objective is J = ∫_{t0}^{T} g(t, y, p) dt + phi(y(T), p)
 * + Σ_k h(t_k, y(t_k), p), each term optional (the last over observation
 * times t_k given to the solve). The adjoint right-hand side -(df/dy)^T lambda - (dg/dy)^T and
 * the gradient quadrature lambda^T df/dp + dg/dp come from AD VJPs of the
 * model's right-hand side and of the objective, built once by ct_asa_new;
 * the backward Newton iteration uses -(df/dy)^T from the model's AD Jacobian
 * (dense, band or sparse KLU) or its products with vectors (GMRES). Callback
 * models (ct_ode_new_callbacks) use their vjp, dfdp_t_w and Jacobian
 * callbacks instead. The user writes no adjoint code. */
#ifndef COTANGENT_ADJOINT_H
#define COTANGENT_ADJOINT_H

#include <stddef.h>

#include "cotangent/core.h"
#include "cotangent/ode.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An adjoint problem: a model and an objective. Immutable once built:
 * several threads may solve with one problem at the same time, each with
 * its own context. */
typedef struct ct_asa ct_asa;

/* Builds the VJPs of the adjoint problem of `ode` for the objective
 * - g: NULL, or the integrand: inputs among "t" (1), "y" (n), "p" (np);
 *   output "g" (1);
 * - phi: NULL, or the final-time term: inputs among "t", "y", "p"
 *   (evaluated at T, y(T)); output "phi" (1).
 * At least one of them. `ode` is borrowed: it must outlive the problem.
 * A callback model needs vjp (or a Jacobian callback, J^T w is then formed
 * from it) and, with parameters, dfdp_t_w; the objective stays AD functions.
 * CT_ERR_ARG for a missing or wrongly sized output or input (named in the
 * message), a missing callback (named), and for a model with root
 * functions (not supported). */
int ct_asa_new(ct_context *ctx, const ct_ode *ode, const ct_fun *g,
               const ct_fun *phi, ct_asa **out);
/* ct_asa_new with a third, discrete term Σ_k h(t_k, y(t_k), p) over the
 * observation times of ct_asa_options (t_obs):
 * - h: NULL, or inputs among "t", "y", "p" and "d" (the data of observation
 *   k, any size m: row k of ct_asa_options' obs_data); output "h" (1).
 * At least one of g, phi, h. The backward integration restarts at every
 * t_k (CVodeReInitB) with the jump (dh/dy)^T added to lambda. */
int ct_asa_new_obs(ct_context *ctx, const ct_ode *ode, const ct_fun *g,
                   const ct_fun *phi, const ct_fun *h, ct_asa **out);
void ct_asa_free(ct_asa *asa);

/* How the forward solution is interpolated between checkpoints during the
 * backward phase (CVodeAdjInit's interp). */
typedef enum ct_asa_interp {
  CT_ASA_HERMITE = 0,   /* cubic Hermite (CV_HERMITE) */
  CT_ASA_POLYNOMIAL = 1 /* variable-degree polynomial (CV_POLYNOMIAL) */
} ct_asa_interp;

typedef struct ct_asa_options {
  ct_ode_options ode;     /* the forward phase (method, linear solver,
                             tolerances, max_steps per call of CVodeF) */
  long checkpoint_steps;  /* steps between checkpoints (CVodeAdjInit's Nd) */
  ct_asa_interp interp;
  double rtol_b, atol_b;  /* the adjoint states' tolerances */
  double rtol_q, atol_q;  /* the quadratures' tolerances: the integral term
                             in the forward phase, the parameter gradient in
                             the backward phase */
  int quad_err_con;       /* 1: quadratures take part in the error test */
  long max_steps_b;       /* backward step limit per checkpoint interval;
                             0: SUNDIALS' default (500) */
  const double *t_obs;    /* n_obs observation times of h, increasing,
                             inside (t0, T]; NULL with n_obs 0 */
  size_t n_obs;
  ct_ode_linsol linsol_b; /* the backward Newton solve: CT_LINSOL_AUTO is
                             the forward phase's resolved choice (GMRES for
                             a callback model without Jacobian callback);
                             dense, band (bandwidths transposed), KLU (the
                             transposed pattern) or matrix-free GMRES */
  const double *obs_data; /* n_obs x obs_dim, row-major: row k is input "d"
                             of h at t_k; NULL when h has no "d" */
  size_t obs_dim;         /* the size of h's "d" */
  long max_checkpoints;   /* 0: unbounded (checkpoint_steps apart); else a
                             first, plain forward solve counts the steps N
                             and checkpoints are ceil(N / max_checkpoints)
                             steps apart, so at most max_checkpoints */
} ct_asa_options;

/* ct_ode_default_options(), 100 steps between checkpoints, Hermite,
 * rtol_b 1e-6, atol_b 1e-8, rtol_q 1e-6, atol_q 1e-6, quadratures in the
 * error test, no observation times, backward linear solver auto, no data,
 * unbounded checkpoints. The backward phase is always BDF. */
ct_asa_options ct_asa_default_options(void);

typedef struct ct_asa_result {
  int status;            /* CT_OK, or the failure (also returned) */
  char message[512];     /* the failure: phase, time reached and cause */
  ct_ode_result ode;     /* the forward phase: y at t0 and T, its status,
                            statistics (kept when the backward phase fails) */
  size_t n, np;
  double value;          /* J = integral + final + observed */
  double integral;       /* ∫ g dt (forward quadrature), 0 without g */
  double final;          /* phi(T, y(T), p), 0 without phi */
  double observed;       /* Σ_k h(t_k, y(t_k), p), 0 without h */
  double *dJdp;          /* np: dJ/dp (through y0(p) when the model has it) */
  double *dJdy0;         /* n: dJ/dy(t0) = lambda(t0) */
  int backward_done;     /* 1 when dJdp and dJdy0 hold the gradient */
  long n_checkpoints;    /* CVodeF's ncheck */
  long quad_evals;       /* forward quadrature integrand calls */
  long quad_evals_b;     /* backward quadrature integrand calls */
  ct_ode_stats stats_b;  /* the backward integration */
  ct_ode_linsol linsol_b; /* the backward linear solver used (resolved) */
  long checkpoint_steps; /* the steps between checkpoints used (Nd) */
  long steps_counted;    /* with max_checkpoints: the counting pass's N */
} ct_asa_result;

void ct_asa_result_free(ct_context *ctx, ct_asa_result *res);

/* Integrates the model forward from t0 to T > t0 with checkpoints (y(t0)
 * from the model's y0(p), or `y0` when it has none), evaluates J, then
 * integrates the adjoint backward from T to t0 (interval by interval
 * between the observation times) and returns J with dJ/dp and
 * dJ/dy0 (with max_checkpoints, after a first plain forward pass that
 * counts the steps). A failure in either phase returns CT_ERR_SOLVER with
 * the result (message "forward phase: t = ...: <cause>" or "backward phase: ..."),
 * the forward solution kept; also recorded in the context. */
int ct_asa_solve(ct_context *ctx, const ct_asa *asa, const double *p,
                 const double *y0, double t0, double T,
                 const ct_asa_options *opts, ct_asa_result **out);

/* ==== Second-order adjoints: Hessian-vector products (h6) ==================
 * H u = (d²J/dp²) u of J = ∫ g dt + phi(y(T), p) + Σ_k h(t_k, y(t_k), p)
 * by forward-over-adjoint (Ozyurt & Barton 2005; SUNDIALS'
 * cvsHessian_ASA_FSA): one forward integration with checkpoints and the
 * forward sensitivity s = (dy/dp) u, then one backward integration of
 * (lambda, mu), mu the derivative of the adjoint lambda along u, with the
 * quadratures of dJ/dp and H u. Every second-order term is a
 * forward-over-reverse AD product built once by ct_asa2_new_obs. */

/* A second-order adjoint problem: a model and an objective. Immutable
 * once built; threads may share it. */
typedef struct ct_asa2 ct_asa2;

/* Like ct_asa_new (same g and phi, at least one; `ode` borrowed, AD model,
 * no root functions), plus: the model must have parameters. Builds the
 * forward-over-reverse products of lambda^T f + g, phi and y0(p), the JVPs
 * of f and y0(p) for the forward sensitivity, and the dense Jacobian of the
 * backward right-hand side. CT_ERR_ARG naming what is wrong. */
int ct_asa2_new(ct_context *ctx, const ct_ode *ode, const ct_fun *g,
                const ct_fun *phi, ct_asa2 **out);
/* ct_asa2_new with the observation term Σ_k h(t_k, y(t_k), p[, d_k]) of
 * ct_asa_new_obs (h: NULL, or inputs among "t", "y", "p", "d"; output "h"
 * (1)); at least one of g, phi, h. The forward phase stops at every t_k
 * to keep y(t_k) and s(t_k); the backward phase restarts there
 * (CVodeReInitB, CVodeQuadReInitB) with the jumps lambda += h_y^T and
 * mu += h_yy s(t_k) + h_yp u, and h_p and h_py s(t_k) + h_pp u are added
 * to dJ/dp and H u. */
int ct_asa2_new_obs(ct_context *ctx, const ct_ode *ode, const ct_fun *g,
                    const ct_fun *phi, const ct_fun *h, ct_asa2 **out);
void ct_asa2_free(ct_asa2 *asa2);

typedef struct ct_asa_hvp_result {
  int status;            /* CT_OK, or the failure (also returned) */
  char message[512];     /* the failure: phase, time reached and cause */
  ct_ode_result ode;     /* the forward phase: y at t0, the t_k and T,
                            statistics */
  size_t n, np;
  double value;          /* J = integral + final + observed */
  double integral;       /* ∫ g dt (forward quadrature), 0 without g */
  double final;          /* phi(T, y(T), p), 0 without phi */
  double observed;       /* Σ_k h(t_k, y(t_k), p), 0 without h */
  double *s_T;           /* n: the forward sensitivity (dy(T)/dp) u */
  double *dJdp;          /* np: dJ/dp (through y0(p) when the model has it) */
  double *Hu;            /* np: (d²J/dp²) u */
  double *dJdy0;         /* n: dJ/dy(t0) = lambda(t0) */
  double *dJdy0_u;       /* n: its derivative along u, mu(t0) */
  int backward_done;     /* 1 when dJdp, Hu, dJdy0, dJdy0_u are filled */
  long n_checkpoints;    /* CVodeF's ncheck */
  long sens_rhs_evals;   /* forward sensitivity right-hand side calls */
  long quad_evals;       /* forward quadrature integrand calls */
  long quad_evals_b;     /* backward quadrature integrand calls */
  ct_ode_stats stats_b;  /* the backward integration (size 2n), summed
                            over the intervals between observations */
} ct_asa_hvp_result;

void ct_asa_hvp_result_free(ct_context *ctx, ct_asa_hvp_result *res);

/* J, dJ/dp and H u for the direction u (np values) in one forward and one
 * backward integration from t0 to T > t0 (y(t0) from the model's y0(p), or
 * `y0`). Options as for ct_asa_solve (NULL: ct_asa_default_options()),
 * observation times t_obs and data obs_data checked alike (t_obs needs a
 * problem with h; obs_data exactly when h has "d"); the forward method must
 * be BDF or Adams, linsol_b auto or dense, no max_checkpoints. The forward sensitivity is in the error test (tolerances
 * CVodeSensEEtolerances). A failure in either phase returns CT_ERR_SOLVER
 * with the result ("forward phase: t = ...: <cause>" or "backward phase:
 * ..."), what was computed kept; also recorded in the context. */
int ct_asa_hvp(ct_context *ctx, const ct_asa2 *asa2, const double *p,
               const double *y0, double t0, double T, const double *u,
               const ct_asa_options *opts, ct_asa_hvp_result **out);
/* ==== End of second-order adjoints ======================================== */

#ifdef __cplusplus
}
#endif

#endif /* COTANGENT_ADJOINT_H */
