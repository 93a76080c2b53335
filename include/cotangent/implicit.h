/* Cotangent implicit differentiation: derivatives of the solutions of
 * linear systems, nonlinear systems, fixed points and ODE steady states by
 * the implicit function theorem, never by differentiating the solver's
 * iterations.
 *
 * For x(p) defined by F(x(p), p) = 0:
 *   tangent  dx = -F_x^{-1} F_p dp               (one solve per direction)
 *   adjoint  lambda = F_x^{-T} x_bar,  p_bar = -F_p^T lambda
 *                                               (one transposed solve and
 *                                                one AD VJP, any np)
 * with F_x and F_p at the solution. The factorization of F_x there is
 * taken once per solve and reused by every derivative call that follows;
 * a singular or ill-conditioned F_x (reciprocal condition estimate below
 * the solve's min_rcond) is refused with CT_ERR_NUMERIC instead of giving
 * a wrong derivative. */
#ifndef COTANGENT_IMPLICIT_H
#define COTANGENT_IMPLICIT_H

#include <stddef.h>

#include "cotangent/ad.h"
#include "cotangent/core.h"
#include "cotangent/linsolve.h"
#include "cotangent/nlsolve.h"
#include "cotangent/ode.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Nonlinear solves ------------------------------------------------------ */
/* All need a successful ct_nlsolve_solve before (CT_ERR_STATE otherwise)
 * and use its solution, parameters and linear solver. */

/* k tangent directions: dp holds k*np numbers (direction j at [j*np,
 * (j+1)*np)), dx receives k*n. */
int ct_nlsolve_tangent(ct_context *ctx, ct_nlsolve *nls, int k, const double *dp,
                       double *dx);
/* The adjoint of a seed x_bar (n): p_bar (np) = -F_p^T lambda with
 * lambda = F_x^{-T} x_bar; lambda (n) is returned when not NULL. */
int ct_nlsolve_adjoint(ct_context *ctx, ct_nlsolve *nls, const double *x_bar,
                       double *p_bar, double *lambda);
/* The reciprocal condition estimate of F_x at the solution (factoring it
 * if that has not happened yet). */
int ct_nlsolve_rcond(ct_context *ctx, ct_nlsolve *nls, double *rcond);

/* ---- Solves as nodes of a reverse pass ------------------------------------- */

/* loss(p) = g(x(p), p) with x(p) the root of the problem: solves from the
 * guess x (overwritten with the solution), evaluates g and returns its
 * value and gradient dloss/dp (np numbers) in one call, with one adjoint
 * solve. g has inputs "x" (n) and optionally "p" (np) and the output "g"
 * (1). */
int ct_nlsolve_gradient(ct_context *ctx, ct_nlsolve *nls,
                        const ct_nlsolve_options *opts, const ct_fun *g,
                        const double *p, double *x, double *loss, double *grad);

/* loss(p) = g(A(p)^{-1} b(p), p) through the linear solver ls (created on
 * A's pattern): A has input "p" (np) and output "A" (the nnz values in the
 * CSC order of ls's pattern); b has input "p" and output "b" (n); either
 * may lack the input "p" (a constant); g as above, with np taken from
 * whichever of A, b, g has "p". Factors A(p), solves, and returns x (n),
 * the loss and its gradient (np) with one transposed solve and AD VJPs of
 * A, b and g. */
int ct_linsolve_gradient(ct_context *ctx, ct_linsolve *ls, const ct_fun *A,
                         const ct_fun *b, const ct_fun *g, const double *p,
                         double *x, double *loss, double *grad);

/* ---- Steady states of ODE models ------------------------------------------- */

typedef struct ct_steady ct_steady;

/* How a steady state was found. */
typedef enum ct_steady_method {
  CT_STEADY_NEWTON = 0,      /* Newton from the initial values */
  CT_STEADY_INTEGRATION = 1, /* time integration until f was small, then
                                Newton to polish */
} ct_steady_method;

typedef struct ct_steady_options {
  ct_nlsolve_options newton; /* the Newton solve (and derivatives) */
  int fallback;   /* 1 (default): when Newton fails (CT_ERR_SOLVER or
                     CT_ERR_NUMERIC), integrate in time from x0 with `ode`
                     until max |f| <= newton.ftol * fallback_factor or
                     t_max, then Newton again from there. With CVODES
                     (BDF, Adams) the integration stops at the first such
                     output (8 a decade); ARKODE methods run to t_max */
  double fallback_factor; /* default 1e3 */
  double t_max;   /* integration horizon from t0 (default 1e9) */
  ct_ode_options ode; /* the integrator for the fallback (defaults: BDF) */
} ct_steady_options;

ct_steady_options ct_steady_default_options(void);

typedef struct ct_steady_result {
  int status;          /* CT_OK, or the failure (also returned) */
  char message[512];   /* the failure: what was tried and how far it got */
  size_t n;
  double *x;           /* n: the steady state (or the last iterate) */
  double fnorm;        /* max |f| at x */
  ct_steady_method method;
  double t_reached;    /* CT_STEADY_INTEGRATION: where integration stopped */
  ct_nlsolve_stats newton;
  ct_ode_stats ode;    /* zero unless the fallback ran */
} ct_steady_result;

void ct_steady_result_free(ct_context *ctx, ct_steady_result *r);

/* A steady-state problem f(x, p) = 0 for an AD ODE model (autonomous, or
 * evaluated at t = t0; split models: fi + fe); the model must outlive it.
 * Builds the Newton problem and the fallback's integration model once
 * (compiled when the model is). Callback models, a NULL model, a
 * non-finite t0: CT_ERR_ARG. */
int ct_steady_new(ct_context *ctx, const ct_ode *ode, double t0, ct_steady **out);
void ct_steady_free(ct_steady *s);
/* Finds the steady state at p from x0 (n; NULL: the model's initial
 * values at p). opts NULL: defaults. res is filled whatever happens
 * (release it with ct_steady_result_free): on failure res->x holds the
 * last iterate, or where the fallback's integration got to, and
 * res->message (also the context's error) says what was tried, e.g.
 * "Newton from the initial values: <reason>; time integration to t = 1e+09:
 * max |f| = 0.03 still above 1e-07" (CT_ERR_SOLVER). With the fallback
 * off, Newton's own status. */
int ct_steady_solve(ct_context *ctx, ct_steady *s, const ct_steady_options *opts,
                    const double *p, const double *x0, ct_steady_result *res);
/* After a successful solve (CT_ERR_STATE otherwise): the sensitivities
 * dx/dp (n*np numbers, parameter-major: column j at [j*n, (j+1)*n)), and
 * the adjoint of a seed (as ct_nlsolve_adjoint). A singular f_x at the
 * steady state (conservation laws) is CT_ERR_NUMERIC here, when Newton
 * got there at all (with a direct solver the solve already fails). */
int ct_steady_sensitivities(ct_context *ctx, ct_steady *s, double *S);
int ct_steady_adjoint(ct_context *ctx, ct_steady *s, const double *x_bar,
                      double *p_bar, double *lambda);
/* The nonlinear problem behind s (to call the other functions above). */
ct_nlsolve *ct_steady_nlsolve(ct_steady *s);

#ifdef __cplusplus
}
#endif

#endif /* COTANGENT_IMPLICIT_H */
