/* Cotangent forward sensitivities: dy/dp along the solution of an ODE model
 * (cotangent/ode.h) through CVODES' forward sensitivity analysis.
 *
 * The sensitivity right-hand side J s_j + df/dp_j of all selected
 * parameters comes from one vector-mode AD Jacobian-vector product of the
 * model's right-hand side (tangent inputs: the sensitivity vectors in y and
 * the unit directions of the parameters in p), built once by ct_fsa_new;
 * initial sensitivities come from the JVP of the model's y0(p) function
 * (zero when the model has none). No difference quotients.
 *
 * Callback models (ct_ode_new_callbacks) use their callbacks instead:
 * jvp(s_j) (or the jac_dense / jac_sparse matrix times s_j) + dfdp_v(e_j);
 * without dfdp_v (or without jvp and a Jacobian), CVODES' own
 * difference-quotient sensitivity right-hand side if the model allows
 * difference quotients, else ct_fsa_new's CT_ERR_ARG names the missing
 * callback. Their initial sensitivities are zero (y0 is the caller's). */
#ifndef COTANGENT_SENSITIVITY_H
#define COTANGENT_SENSITIVITY_H

#include <stddef.h>

#include "cotangent/adjoint.h"
#include "cotangent/core.h"
#include "cotangent/ode.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A forward-sensitivity problem: a model and the parameters to
 * differentiate with respect to. Immutable once built: several threads may
 * solve with one problem at the same time, each with its own context. */
typedef struct ct_fsa ct_fsa;

/* Builds the sensitivity functions of `ode` for the parameters
 * params[0..n_params) (indices into p, distinct; params NULL: all of them,
 * in order — n_params is then ignored). The selection is fixed here
 * because the JVP's number of directions is. `ode` is borrowed: it must
 * outlive the problem. CT_ERR_ARG for a model without parameters, an index
 * out of range or repeated, or a callback model lacking the callbacks it
 * needs (see above). */
int ct_fsa_new(ct_context *ctx, const ct_ode *ode, const size_t *params,
               size_t n_params, ct_fsa **out);
void ct_fsa_free(ct_fsa *fsa);
/* Number of sensitivities (selected parameters), and the i-th one's index
 * into p (SIZE_MAX for i out of range). */
size_t ct_fsa_n_params(const ct_fsa *fsa);
size_t ct_fsa_param(const ct_fsa *fsa, size_t i);

/* How the sensitivities' nonlinear systems are corrected (CVODES' ism). */
typedef enum ct_fsa_corrector {
  CT_FSA_SIMULTANEOUS = 0, /* states and sensitivities in one system */
  CT_FSA_STAGGERED = 1,    /* states first, then all sensitivities together */
  CT_FSA_STAGGERED1 = 2    /* states first, then each sensitivity on its own
                              (the right-hand side is evaluated one
                              parameter at a time) */
} ct_fsa_corrector;

typedef struct ct_fsa_options {
  ct_ode_options ode;         /* method, linear solver, tolerances, roots... */
  ct_fsa_corrector corrector;
  int err_con;                /* 1: sensitivities take part in the error test
                                 (CVodeSetSensErrCon) */
  const double *pbar;         /* n_params positive scales of the selected
                                 parameters (CVodeSetSensParams); NULL: |p_j|,
                                 or 1 where p_j = 0 */
} ct_fsa_options;

/* ct_ode_default_options(), simultaneous corrector, error control on,
 * default scales. Sensitivity tolerances are always CVODES' estimated ones
 * (CVodeSensEEtolerances): the state tolerances scaled by 1/pbar. */
ct_fsa_options ct_fsa_default_options(void);

/* Statistics of the sensitivity part of a solve. */
typedef struct ct_fsa_stats {
  long sens_rhs_evals;    /* calls of the sensitivity right-hand side
                             (CVodeGetSensNumRhsEvals): one per call for all
                             parameters, one per parameter with STAGGERED1 */
  long rhs_evals_sens;    /* right-hand side calls for CVODES' difference
                             quotients (CVodeGetNumRhsEvalsSens): 0 except
                             for callback models without dfdp_v */
  long err_test_fails;    /* CVodeGetSensNumErrTestFails (staggered) */
  long lin_setups;        /* CVodeGetSensNumLinSolvSetups (staggered) */
  long nonlin_iters;      /* CVodeGetSensNumNonlinSolvIters (staggered) */
  long nonlin_conv_fails; /* CVodeGetSensNumNonlinSolvConvFails (staggered) */
  long *stgr_nonlin_iters; /* STAGGERED1: n_params counts, one per
                              sensitivity (CVodeGetStgrSensNumNonlinSolvIters);
                              NULL otherwise */
} ct_fsa_stats;

typedef struct ct_fsa_result {
  ct_ode_result ode;    /* everything ct_ode_solve returns: status, message,
                           t, y, roots, t_reached, linsol, stats */
  size_t n_params;      /* sensitivities at each output time */
  size_t *params;       /* their indices into p */
  double *s;            /* ode.n_out * n_params * n values: dy_i/dp_j at
                           output k is s[(k * n_params + j) * n + i] */
  double *s_norm;       /* same layout: (p_j / y_i) dy_i/dp_j, and 0 where
                           y_i = 0 (never NaN) */
  ct_fsa_stats stats;
} ct_fsa_result;

void ct_fsa_result_free(ct_context *ctx, ct_fsa_result *res);

/* Integrates the model and its sensitivities with respect to the problem's
 * parameters from t0 = tout[0] (arguments as ct_ode_solve), and returns
 * the solution and dy/dp at every output time. Roots are handled as in
 * ct_ode_solve; at a root that stops the run the sensitivities are those of
 * y at that (fixed) time — the event time's own dependence on p is not
 * included. On a solver failure the result is still returned with
 * everything up to the failure (sensitivities included): status negative,
 * message "t = ...: <cause>", also returned and recorded in the context. */
int ct_fsa_solve(ct_context *ctx, const ct_fsa *fsa, const double *p,
                 const double *y0, const double *tout, size_t n_tout,
                 const ct_fsa_options *opts, ct_fsa_result **out);

/* ---- Gradient check (sensitivity/check.c) ---- */

/* A scalar objective J(p) (np values): *value = J(p); CT_OK or a negative
 * status (with the context's message). */
typedef int (*ct_objective_fn)(ct_context *ctx, const double *p, void *ud,
                               double *value);

typedef struct ct_gradcheck_options {
  double eps;            /* relative accuracy of J's values (> 0): the step
                            is h_j = eps^(1/3) max(|p_j|, typical_j) */
  const double *typical; /* np positive typical magnitudes of p; NULL: 1 */
  double floor;          /* the relative error's smallest denominator (>= 0):
                            |fd - g| / max(|fd|, |g|, floor) */
  double tol;            /* passed when the worst relative error <= tol */
} ct_gradcheck_options;

/* eps DBL_EPSILON, typical 1, floor 1e-10, tol 1e-5. */
ct_gradcheck_options ct_gradcheck_default_options(void);

typedef struct ct_gradcheck_result {
  size_t np;
  double *fd;       /* np central differences (J(p + h e_j) - J(p - h e_j)) / 2h */
  double *grad;     /* np: the gradient checked (a copy) */
  double *rel_err;  /* np relative errors */
  double *step;     /* np steps h_j */
  double worst_rel_err;
  size_t worst;     /* the index of the worst relative error */
  int passed;       /* worst_rel_err <= tol */
  long n_evals;     /* objective evaluations (2 np) */
  double value;     /* J(p) where the check computed it (ct_asa_gradient_check),
                       else 0 */
} ct_gradcheck_result;

/* Frees what the result holds (not the struct) and zeroes it. */
void ct_gradcheck_result_clear(ct_context *ctx, ct_gradcheck_result *res);

/* Checks grad (np values) against central differences of J at p, into a
 * caller's result (zeroed here; release it with ct_gradcheck_result_clear
 * whatever the status). A failed check is CT_OK with res->passed 0: the
 * result says which component is worst. CT_ERR_ARG for bad arguments; an
 * objective's failure is returned as it is, naming the parameter. */
int ct_gradient_check(ct_context *ctx, ct_objective_fn J, void *ud,
                      const double *p, size_t np, const double *grad,
                      const ct_gradcheck_options *opts, ct_gradcheck_result *res);

/* The gradient dJ/dp of an adjoint problem (ct_asa_solve with the given
 * arguments) checked against central differences of its objective value,
 * each from a ct_asa_solve at a perturbed p: the adjoint gradient is
 * res->grad, J(p) is res->value. The objective's values are only as
 * accurate as the solves' tolerances: set opts->eps to about them (and the
 * tolerances tight) for a meaningful check. */
int ct_asa_gradient_check(ct_context *ctx, const ct_asa *asa, const double *p,
                          const double *y0, double t0, double T,
                          const ct_asa_options *asa_opts,
                          const ct_gradcheck_options *opts,
                          ct_gradcheck_result *res);

#ifdef __cplusplus
}
#endif

#endif /* COTANGENT_SENSITIVITY_H */
