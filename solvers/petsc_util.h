/* Private: PETSc set-up shared by the PETSc back ends (the "petsc" linear
 * solver in solvers/linsolve_petsc.c, SNES in solvers/nlsolve_snes.c).
 *
 * PETSc keeps process-wide state; Cotangent initializes it once, on first
 * use, never finalizes it (PETSc cannot be initialized twice), and keeps
 * each solve's options in a private options database so that two solvers
 * never see each other's options. */
#ifndef COTANGENT_SOLVERS_PETSC_UTIL_H
#define COTANGENT_SOLVERS_PETSC_UTIL_H

#include <petscsys.h>

#include "cotangent/core.h"

/* Initializes PETSc (and MPI, when the program has not) once per process,
 * with PETSc's error printing and signal handlers off so that failures
 * come back as codes. CT_ERR_EXTERNAL if PETSc cannot start. */
int ct_petsc_init(ct_context *ctx);

/* Records the PETSc error `ierr` of the call described by `what` as
 * CT_ERR_EXTERNAL with PETSc's own message; returns CT_ERR_EXTERNAL. */
int ct_petsc_error(ct_context *ctx, PetscErrorCode ierr, const char *file,
                   int line, const char *func, const char *what);

/* Evaluates a PETSc call; on an error records it (with the call's text)
 * and returns CT_ERR_EXTERNAL from the enclosing function. */
#define CT_PETSC(ctx, call)                                                    \
  do {                                                                         \
    PetscErrorCode ct_petsc_ierr_ = (call);                                    \
    if (ct_petsc_ierr_)                                                        \
      return ct_petsc_error((ctx), ct_petsc_ierr_, __FILE__, __LINE__,         \
                            __func__, #call);                                  \
  } while (0)

/* A private options database holding `options` ("-ksp_type gmres
 * -pc_type ilu"; NULL or "" for none), for PetscObjectSetOptions. A
 * string PETSc cannot parse is CT_ERR_ARG quoting it. Destroy with
 * PetscOptionsDestroy. */
int ct_petsc_options_new(ct_context *ctx, const char *options,
                         PetscOptions *out);

/* Logs a warning for every option of `opts` that no PETSc object read
 * (a misspelt -ksp_typ is otherwise silently ignored); `who` names the
 * solver in the message. */
void ct_petsc_options_warn_unused(ct_context *ctx, PetscOptions opts,
                                  const char *who);

#endif /* COTANGENT_SOLVERS_PETSC_UTIL_H */
