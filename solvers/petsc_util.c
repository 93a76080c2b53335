/* PETSc set-up shared by the PETSc back ends: one initialization per
 * process, errors as codes with PETSc's messages, private options
 * databases (see petsc_util.h). */
#include "petsc_util.h"

#include <pthread.h>
#include <string.h>

static pthread_once_t petsc_once = PTHREAD_ONCE_INIT;
static PetscErrorCode petsc_init_status;

/* Starts PETSc unless the program already has, then stops it printing
 * errors and catching signals (the program's own handlers stay). */
static void petsc_start(void) {
  PetscBool started = PETSC_FALSE;
  petsc_init_status = PetscInitialized(&started);
  if (petsc_init_status || started) return;
  petsc_init_status = PetscInitializeNoArguments();
  if (petsc_init_status) return;
  petsc_init_status = PetscPushErrorHandler(PetscReturnErrorHandler, NULL);
  if (petsc_init_status) return;
  petsc_init_status = PetscPopSignalHandler();
}

/* Initializes PETSc once per process (see petsc_util.h). */
int ct_petsc_init(ct_context *ctx) {
  pthread_once(&petsc_once, petsc_start);
  if (petsc_init_status)
    return ct_petsc_error(ctx, petsc_init_status, __FILE__, __LINE__, __func__,
                          "PetscInitializeNoArguments()");
  return CT_OK;
}

/* Records a PETSc failure with PETSc's message (see petsc_util.h). */
int ct_petsc_error(ct_context *ctx, PetscErrorCode ierr, const char *file,
                   int line, const char *func, const char *what) {
  const char *text = NULL;
  char *specific = NULL;
  if (PetscErrorMessage(ierr, &text, &specific) || !text) text = "unknown PETSc error";
  return ct_error_set(ctx, CT_ERR_EXTERNAL, file, line, func,
                      "PETSc: %s failed: %s%s%s (error %d)", what, text,
                      specific && *specific ? ": " : "", specific ? specific : "",
                      (int)ierr);
}

/* A private options database holding `options` (see petsc_util.h). */
int ct_petsc_options_new(ct_context *ctx, const char *options, PetscOptions *out) {
  *out = NULL;
  CT_CHECK(ctx, ct_petsc_init(ctx));
  const char *first = options ? options + strspn(options, " \t\n") : "";
  if (*first && *first != '-')
    return CT_ERROR(ctx, CT_ERR_ARG,
                    "PETSc options must start with an option name such as -ksp_type "
                    "(got \"%s\")", options);
  PetscOptions o = NULL;
  CT_PETSC(ctx, PetscOptionsCreate(&o));
  if (options && *options && PetscOptionsInsertString(o, options)) {
    PetscOptionsDestroy(&o);
    return CT_ERROR(ctx, CT_ERR_ARG, "PETSc cannot read the options \"%s\"", options);
  }
  *out = o;
  return CT_OK;
}

/* Warns about options nobody read (see petsc_util.h). */
void ct_petsc_options_warn_unused(ct_context *ctx, PetscOptions opts,
                                  const char *who) {
  PetscInt n = 0;
  char **names = NULL, **values = NULL;
  if (!opts || PetscOptionsLeftGet(opts, &n, &names, &values)) return;
  for (PetscInt i = 0; i < n; i++)
    ct_context_log(ctx, CT_LOG_WARNING, "%s: the PETSc option -%s%s%s was not used",
                   who, names[i], values[i] ? " " : "", values[i] ? values[i] : "");
  PetscOptionsLeftRestore(opts, &n, &names, &values);
}
