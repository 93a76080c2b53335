/* Private: what forward sensitivities (sensitivity/forward.c) share with
 * the second-order adjoint's forward sensitivity (adjoint/hessian.c): a
 * model function's JVP with its inputs located. Implemented in forward.c. */
#ifndef COTANGENT_SENSITIVITY_FSA_INTERNAL_H
#define COTANGENT_SENSITIVITY_FSA_INTERNAL_H

#include "cotangent/ad.h"

/* A JVP of a model function, reduced to its tangent output, and the
 * positions of its inputs; -1 where absent. */
typedef struct ct_jvp_fun {
  ct_fun *f;
  long t, y, p, dy, dp;
} ct_jvp_fun;

/* The k-direction JVP of f with respect to `wrt` (NULL-terminated),
 * keeping only output `out`, with its inputs located; j->f is owned by the
 * caller (ct_fun_free). */
int ct_fsa_build_jvp(ct_context *ctx, const ct_fun *f, int k, const char *const *wrt,
                     const char *out, ct_jvp_fun *j);

#endif /* COTANGENT_SENSITIVITY_FSA_INTERNAL_H */
