/* Private: checks of the named inputs and outputs of the AD functions a
 * model (ODE, DAE) is built from, with messages that name the function. */
#ifndef COTANGENT_MODEL_IO_H
#define COTANGENT_MODEL_IO_H

#include <stddef.h>

#include "cotangent/ad.h"

/* Input `name` of f, if present, must have n components; a missing one is
 * an error only when `required`. `what` names f in messages ("root"). */
int ct_model_check_input(ct_context *ctx, const ct_fun *f, const char *what,
                         const char *name, size_t n, int required);
/* f must have output `name` with n components. */
int ct_model_check_output(ct_context *ctx, const ct_fun *f, const char *what,
                          const char *name, size_t n);

/* rtol and atol (or every atol_v[i], i < n, when atol_v is given) must be
 * positive and finite. */
int ct_model_check_tolerances(ct_context *ctx, double rtol, double atol,
                              const double *atol_v, size_t n);
/* Output times: at least one (the initial time), finite and increasing.
 * `solver` names the call in the message ("ct_ode_solve"). */
int ct_model_check_times(ct_context *ctx, const char *solver,
                         const double *tout, size_t n_tout);

#endif
