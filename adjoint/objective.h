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

#endif
