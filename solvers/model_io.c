/* Checks of the named inputs and outputs of model functions. */
#include "model_io.h"

#include <math.h>

int ct_model_check_input(ct_context *ctx, const ct_fun *f, const char *what,
                         const char *name, size_t n, int required) {
  long i = ct_fun_in_index(f, name);
  if (i < 0) {
    if (!required) return CT_OK;
    return CT_ERROR(ctx, CT_ERR_ARG, "the %s function has no input '%s'", what, name);
  }
  if (ct_fun_in_size(f, (size_t)i) != n)
    return CT_ERROR(ctx, CT_ERR_ARG, "input '%s' of the %s function has %zu "
                    "components, expected %zu", name, what,
                    ct_fun_in_size(f, (size_t)i), n);
  return CT_OK;
}

int ct_model_check_output(ct_context *ctx, const ct_fun *f, const char *what,
                          const char *name, size_t n) {
  long i = ct_fun_out_index(f, name);
  if (i < 0)
    return CT_ERROR(ctx, CT_ERR_ARG, "the %s function has no output '%s'", what, name);
  if (ct_fun_out_size(f, (size_t)i) != n)
    return CT_ERROR(ctx, CT_ERR_ARG, "output '%s' of the %s function has %zu "
                    "components, expected %zu", name, what,
                    ct_fun_out_size(f, (size_t)i), n);
  return CT_OK;
}

int ct_model_check_tolerances(ct_context *ctx, double rtol, double atol,
                              const double *atol_v, size_t n) {
  if (!(rtol > 0) || !isfinite(rtol))
    return CT_ERROR(ctx, CT_ERR_ARG, "rtol must be positive, got %g", rtol);
  if (!atol_v && (!(atol > 0) || !isfinite(atol)))
    return CT_ERROR(ctx, CT_ERR_ARG, "atol must be positive, got %g", atol);
  for (size_t i = 0; atol_v && i < n; i++)
    if (!(atol_v[i] > 0) || !isfinite(atol_v[i]))
      return CT_ERROR(ctx, CT_ERR_ARG, "atol[%zu] must be positive, got %g", i, atol_v[i]);
  return CT_OK;
}

int ct_model_check_times(ct_context *ctx, const char *solver,
                         const double *tout, size_t n_tout) {
  if (n_tout < 1 || !tout)
    return CT_ERROR(ctx, CT_ERR_ARG, "%s needs at least the initial time in tout", solver);
  for (size_t k = 0; k < n_tout; k++) {
    if (!isfinite(tout[k]))
      return CT_ERROR(ctx, CT_ERR_ARG, "output time %zu is not finite", k);
    if (k && !(tout[k] > tout[k - 1]))
      return CT_ERROR(ctx, CT_ERR_ARG, "output times must increase: tout[%zu] = %g "
                      "after %g", k, tout[k], tout[k - 1]);
  }
  return CT_OK;
}
