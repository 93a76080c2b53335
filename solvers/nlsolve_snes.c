/* The PETSc SNES back end of ct_nlsolve (being written). */
#include "nlsolve_internal.h"

/* Not built yet: CT_ERR_UNSUPPORTED. */
static int snes_solve(ct_context *ctx, ct_nlsolve *nls, const ct_nlsolve_options *o,
                      const double *p, double *x, ct_nlsolve_stats *st) {
  (void)nls, (void)o, (void)p, (void)x, (void)st;
  return CT_ERROR(ctx, CT_ERR_UNSUPPORTED, "the SNES back end is not built yet");
}

const ct_nlsolve_backend ct_nlsolve_snes = {"snes", snes_solve};
