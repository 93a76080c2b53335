/* Checks of the named inputs and outputs of model functions. */
#include "model_io.h"

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
