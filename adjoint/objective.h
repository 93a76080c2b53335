/* Private: the checks of objective terms shared by the ODE and DAE adjoints. */
#ifndef COTANGENT_ADJOINT_OBJECTIVE_H
#define COTANGENT_ADJOINT_OBJECTIVE_H

#include <stddef.h>

#include "cotangent/ad.h"

/* The objective term f must have output `out` of size 1 and only inputs t
 * (1), y (n), p (np); `what` names it in messages ("integral objective"). */
int ct_objective_check(ct_context *ctx, const ct_fun *f, const char *what,
                       const char *out, size_t n, size_t np);
/* ct_objective_check that also accepts an input "d" (observation data, any
 * size): its size into *d_size, 0 when f has none. */
int ct_objective_check_data(ct_context *ctx, const ct_fun *f, const char *what,
                            const char *out, size_t n, size_t np, size_t *d_size);

/* The one-seed VJP of f's output `out` (f reduced to that output first, so
 * whatever else f computes does not matter) with respect to the inputs
 * wrt[0..n_wrt), reduced to the outputs `keep` (NULL-terminated: `out`
 * and/or "bar_<input>"); with n_wrt 0, just f reduced to `out`. */
int ct_objective_vjp(ct_context *ctx, const ct_fun *f, const char *out,
                     const char *const *wrt, size_t n_wrt, const char *const *keep,
                     ct_fun **vjp);

#endif
