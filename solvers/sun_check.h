/* Private: checks for SUNDIALS calls, shared by every module that drives
 * a SUNDIALS solver (CVODES, ARKODE, IDAS, KINSOL). */
#ifndef COTANGENT_SOLVERS_SUN_CHECK_H
#define COTANGENT_SOLVERS_SUN_CHECK_H

#include "cotangent/core.h"

/* A SUNDIALS call that returns a flag: a negative flag is CT_ERR_EXTERNAL
 * naming the call. */
#define CT_SUN_CALL(ctx, call)                                                \
  do {                                                                        \
    int flag_ = (call);                                                       \
    if (flag_ < 0)                                                            \
      return CT_ERROR((ctx), CT_ERR_EXTERNAL, "%s failed with flag %d", #call, \
                      flag_);                                                 \
  } while (0)
/* A SUNDIALS constructor: NULL is CT_ERR_NOMEM naming it. */
#define CT_SUN_NEW(ctx, var, expr)                                            \
  do {                                                                        \
    if (!((var) = (expr)))                                                    \
      return CT_ERROR((ctx), CT_ERR_NOMEM, "%s returned NULL", #expr);        \
  } while (0)

#endif /* COTANGENT_SOLVERS_SUN_CHECK_H */
