/* Internal: what the DAE sensitivity and adjoint modules (sensitivity/, adjoint/)
 * need from solvers/dae.c. Not installed. */
#ifndef COTANGENT_DAE_INTERNAL_H
#define COTANGENT_DAE_INTERNAL_H

#include <nvector/nvector_serial.h>
#include <sundials/sundials_context.h>
#include <sundials/sundials_linearsolver.h>

#include "cotangent/dae.h"

/* Extension points of one solve; each may be NULL. `ud` is handed back. */
typedef struct ct_dae_hooks {
  /* After IDAS is set up, before IDACalcIC: attach more to `mem`. */
  int (*setup)(ct_context *ctx, void *ud, void *mem, SUNContext sun, N_Vector y,
               const ct_dae_options *o);
  /* After each output was stored (index res->n_out - 1). */
  int (*output)(ct_context *ctx, void *ud, void *mem, const ct_dae_result *res,
                const ct_dae_options *o);
  /* Before IDAS is freed (statistics), whatever happened. */
  void (*finish)(void *ud, void *mem);
  void *ud;
  /* Replaces IDASolve(mem, tout, t, y, yp, IDA_NORMAL) (e.g. by IDASolveF);
   * returns its flag. NULL: IDASolve. */
  int (*advance)(void *ud, void *mem, double tout, double *t, N_Vector y,
                 N_Vector yp);
  /* advance in one-step form (IDASolveF(..., IDA_ONE_STEP)), for progress
   * reporting; NULL with advance set: progress is refused. */
  int (*advance_one)(void *ud, void *mem, double tout, double *t, N_Vector y,
                     N_Vector yp);
} ct_dae_hooks;

/* ct_dae_solve with hooks (NULL: none). */
int ct_dae_solve_hooked(ct_context *ctx, const ct_dae *dae, const double *p,
                        const double *y0, const double *yp0, const double *tout,
                        size_t n_tout, const ct_dae_options *opts,
                        const ct_dae_hooks *hooks, ct_dae_result **out);

/* From IDAS' user data inside a callback: the hooks' ud and the
 * parameters; the context; a place for the callback's failure cause. */
void *ct_dae_user_hook_data(void *user_data);
const double *ct_dae_user_params(void *user_data);
/* Records `cause` (first one wins until the next output) for the failure
 * message. */
void ct_dae_user_cause(void *user_data, const char *cause);

/* A CSC pattern of n columns. From ct_dae_pattern_merge: map_a[q] and
 * map_b[q] give where entry q of the two merged patterns lands; from
 * ct_dae_pattern_transpose: map_a[q] gives where entry q of the source
 * lands (map_b NULL). */
typedef struct ct_dae_pattern {
  size_t n, nnz;
  size_t *colptr, *rowind, *map_a, *map_b;
} ct_dae_pattern;

/* The union of the n x n patterns a and b (rows sorted in each column). */
int ct_dae_pattern_merge(ct_context *ctx, const ct_sparsity *a, const ct_sparsity *b,
                         ct_dae_pattern *out);
/* The transpose of `in` (rows sorted in each column). */
int ct_dae_pattern_transpose(ct_context *ctx, const ct_dae_pattern *in,
                             ct_dae_pattern *out);
/* Frees the arrays of p (not p). */
void ct_dae_pattern_free(ct_context *ctx, ct_dae_pattern *p);

/* When the last setup of LS (dense or KLU) found its matrix singular:
 * "the iteration matrix <matrix> is singular ..." (naming the column for
 * dense) written into buf (size `size`), returned; else NULL. */
const char *ct_dae_singular_cause(SUNLinearSolver LS, const char *matrix, char *buf,
                                  size_t size);

/* Compiles f, a function built from the model (sensitivity or adjoint),
 * with the model's options when ct_dae_jit compiled the model; CT_OK and
 * nothing done otherwise. */
int ct_dae_jit_fun(ct_context *ctx, const ct_dae *dae, ct_fun *f);

/* The model's residual (output "F") and init function (NULL if none),
 * with output positions of y0/yp0 (-1: absent). */
const ct_fun *ct_dae_res_fun(const ct_dae *dae);
const ct_fun *ct_dae_init_fun(const ct_dae *dae, long *y0_out, long *yp0_out);

#endif
