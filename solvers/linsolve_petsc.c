/* The PETSc KSP implementation of the ct_linsolve ops table ("petsc"): a
 * serial SeqAIJ matrix preallocated exactly from the CSC pattern (converted
 * to CSR once), GMRES with ILU(0) and relative tolerance 1e-10 by default,
 * anything else through a private PETSc options database
 * (ct_linsolve_set_options: "-ksp_type cg -pc_type icc", "-pc_type lu").
 * factor sets the values and sets the KSP up, so preconditioner failures (a
 * zero pivot) surface there; solve is KSPSolve, the transposed solve
 * KSPSolveTranspose on the same preconditioner. */
#include <string.h>

#include <petscksp.h>

#include "cotangent/linsolve.h"
#include "petsc_util.h"

/* Defaults applied before the user's options (which override them). */
#define PETSC_LS_RTOL 1e-10
#define PETSC_LS_MAX_RESTART 50

typedef struct petsc_state {
  PetscInt n;
  PetscInt *rowptr;        /* n + 1, CSR */
  PetscInt *colind;        /* nnz, CSR */
  size_t *csc_pos;         /* nnz: the CSC position of each CSR entry */
  PetscScalar *csr_values; /* nnz, the factored values in CSR order */
  Mat A;
  KSP ksp;
  Vec b;                   /* owned storage: b may alias x */
  Vec x;                   /* wraps the caller's x during a solve */
  PetscOptions options;    /* private to this solver; the KSP reads only it */
  int warn_unused;         /* warn about unread options after the next factor */
  long iterations;         /* summed over solves */
} petsc_state;

/* Frees the PETSc objects and arrays of the state, and the state. */
static void petsc_destroy(ct_context *ctx, void *impl) {
  petsc_state *s = impl;
  KSPDestroy(&s->ksp);
  MatDestroy(&s->A);
  VecDestroy(&s->b);
  VecDestroy(&s->x);
  PetscOptionsDestroy(&s->options);
  ct_free(ctx, s->rowptr);
  ct_free(ctx, s->colind);
  ct_free(ctx, s->csc_pos);
  ct_free(ctx, s->csr_values);
  ct_free(ctx, s);
}

/* Fills the CSR arrays of `s` (PetscInt indices) from the CSC pattern. */
static int build_csr(ct_context *ctx, petsc_state *s, const ct_sparsity *p) {
  size_t *rowptr = NULL, *colind = NULL;
  CT_CHECK(ctx, ct_sparsity_to_csr(ctx, p, &rowptr, &colind, &s->csc_pos));
  s->rowptr = ct_calloc(ctx, p->nrows + 1, sizeof(PetscInt));
  s->colind = ct_calloc(ctx, p->nnz ? p->nnz : 1, sizeof(PetscInt));
  s->csr_values = ct_calloc(ctx, p->nnz ? p->nnz : 1, sizeof(PetscScalar));
  int ok = s->rowptr && s->colind && s->csr_values;
  if (ok) {
    for (size_t i = 0; i <= p->nrows; i++) s->rowptr[i] = (PetscInt)rowptr[i];
    for (size_t q = 0; q < p->nnz; q++) s->colind[q] = (PetscInt)colind[q];
  }
  ct_free(ctx, rowptr);
  ct_free(ctx, colind);
  return ok ? CT_OK : CT_ERR_NOMEM;
}

/* The SeqAIJ matrix with exactly the pattern's nonzeros per row
 * preallocated, and the two work vectors. */
static int build_matrix(ct_context *ctx, petsc_state *s) {
  PetscInt *per_row = ct_calloc(ctx, (size_t)s->n, sizeof(PetscInt));
  if (!per_row) return CT_ERR_NOMEM;
  for (PetscInt i = 0; i < s->n; i++) per_row[i] = s->rowptr[i + 1] - s->rowptr[i];
  PetscErrorCode ierr = MatCreateSeqAIJ(PETSC_COMM_SELF, s->n, s->n, 0, per_row, &s->A);
  ct_free(ctx, per_row);
  if (ierr)
    return ct_petsc_error(ctx, ierr, __FILE__, __LINE__, __func__, "MatCreateSeqAIJ");
  CT_PETSC(ctx, MatSetOption(s->A, MAT_NEW_NONZERO_ALLOCATION_ERR, PETSC_TRUE));
  CT_PETSC(ctx, VecCreateSeq(PETSC_COMM_SELF, s->n, &s->b));
  CT_PETSC(ctx, VecCreateSeqWithArray(PETSC_COMM_SELF, 1, s->n, NULL, &s->x));
  return CT_OK;
}

/* The defaults (GMRES, ILU, rtol 1e-10), then the options database. */
static PetscErrorCode configure_ksp(KSP ksp, PetscInt n) {
  PC pc;
  PetscInt restart = n < PETSC_LS_MAX_RESTART ? n : PETSC_LS_MAX_RESTART;
  PetscCall(KSPSetType(ksp, KSPGMRES));
  PetscCall(KSPGMRESSetRestart(ksp, restart > 0 ? restart : 1));
  PetscCall(KSPGetPC(ksp, &pc));
  PetscCall(PCSetType(pc, PCILU));
  PetscCall(KSPSetTolerances(ksp, PETSC_LS_RTOL, PETSC_DEFAULT, PETSC_DEFAULT,
                             PETSC_DEFAULT));
  PetscCall(KSPSetFromOptions(ksp));
  return 0;
}

/* CT_ERR_ARG when `options` sets the type option `name` ("-ksp_type") to a
 * type missing from `list`: checked before KSPSetFromOptions, which leaks
 * its options block when it fails on an unknown type. */
static int check_type_option(ct_context *ctx, PetscOptions options, const char *name,
                             PetscFunctionList list, const char *text) {
  char type[256] = "";
  PetscBool set = PETSC_FALSE;
  void (*constructor)(void) = NULL;
  CT_PETSC(ctx, PetscOptionsGetString(options, NULL, name, type, sizeof type, &set));
  if (!set) return CT_OK;
  CT_PETSC(ctx, PetscFunctionListFind(list, type, &constructor));
  if (!constructor)
    return CT_ERROR(ctx, CT_ERR_ARG,
                    "linsolve (petsc): the options \"%s\" are not valid: unknown %s \"%s\"",
                    text ? text : "", name, type);
  return CT_OK;
}

/* A new KSP reading only `options` (which it must not outlive), with the
 * defaults overridden by those options. Options PETSc rejects (an unknown
 * -ksp_type) are CT_ERR_ARG quoting `text` and PETSc's message. */
static int new_ksp(ct_context *ctx, PetscOptions options, PetscInt n,
                   const char *text, KSP *out) {
  KSP ksp = NULL;
  *out = NULL;
  CT_PETSC(ctx, KSPInitializePackage());
  CT_PETSC(ctx, PCInitializePackage());
  CT_CHECK(ctx, check_type_option(ctx, options, "-ksp_type", KSPList, text));
  CT_CHECK(ctx, check_type_option(ctx, options, "-pc_type", PCList, text));
  CT_PETSC(ctx, KSPCreate(PETSC_COMM_SELF, &ksp));
  PetscErrorCode ierr = PetscObjectSetOptions((PetscObject)ksp, options);
  if (ierr) {
    KSPDestroy(&ksp);
    return ct_petsc_error(ctx, ierr, __FILE__, __LINE__, __func__, "PetscObjectSetOptions");
  }
  ierr = configure_ksp(ksp, n);
  if (ierr) {
    const char *generic = NULL;
    char *specific = NULL;
    PetscErrorMessage(ierr, &generic, &specific);
    KSPDestroy(&ksp);
    return CT_ERROR(ctx, CT_ERR_ARG,
                    "linsolve (petsc): the options \"%s\" are not valid: %s (PETSc error %d)",
                    text ? text : "", specific && *specific ? specific
                                      : generic ? generic : "unknown PETSc error",
                    (int)ierr);
  }
  *out = ksp;
  return CT_OK;
}

/* Converts the pattern, creates the matrix, vectors, an empty private
 * options database and the default KSP. */
static int petsc_create(ct_context *ctx, const ct_sparsity *p, void **impl) {
  if (p->nnz > (size_t)PETSC_MAX_INT || p->nrows > (size_t)PETSC_MAX_INT)
    return CT_ERROR(ctx, CT_ERR_UNSUPPORTED,
                    "linsolve (petsc): %zu nonzeros exceed PETSc's %zu-byte indices", p->nnz,
                    sizeof(PetscInt));
  CT_CHECK(ctx, ct_petsc_init(ctx));
  petsc_state *s = ct_calloc(ctx, 1, sizeof *s);
  if (!s) return CT_ERR_NOMEM;
  s->n = (PetscInt)p->nrows;
  int status = build_csr(ctx, s, p);
  if (status >= 0) status = build_matrix(ctx, s);
  if (status >= 0) status = ct_petsc_options_new(ctx, NULL, &s->options);
  if (status >= 0) status = new_ksp(ctx, s->options, s->n, "", &s->ksp);
  if (status < 0) {
    petsc_destroy(ctx, s);
    return status;
  }
  *impl = s;
  return CT_OK;
}

/* Replaces the options database and the KSP by ones built from `options`;
 * on failure the previous ones stay. The caller factors again. */
static int petsc_set_options(ct_context *ctx, void *impl, const char *options) {
  petsc_state *s = impl;
  PetscOptions fresh = NULL;
  KSP ksp = NULL;
  CT_CHECK(ctx, ct_petsc_options_new(ctx, options, &fresh));
  int status = new_ksp(ctx, fresh, s->n, options, &ksp);
  if (status < 0) {
    PetscOptionsDestroy(&fresh);
    return status;
  }
  KSPDestroy(&s->ksp);
  PetscOptionsDestroy(&s->options);
  s->ksp = ksp;
  s->options = fresh;
  s->warn_unused = 1;
  return CT_OK;
}

/* Copies `values` (CSC order) into the matrix row by row and assembles. */
static int set_matrix_values(ct_context *ctx, petsc_state *s, const double *values) {
  for (PetscInt q = 0; q < s->rowptr[s->n]; q++) s->csr_values[q] = values[s->csc_pos[q]];
  for (PetscInt i = 0; i < s->n; i++) {
    PetscInt start = s->rowptr[i], count = s->rowptr[i + 1] - start;
    CT_PETSC(ctx, MatSetValues(s->A, 1, &i, count, s->colind + start,
                               s->csr_values + start, INSERT_VALUES));
  }
  CT_PETSC(ctx, MatAssemblyBegin(s->A, MAT_FINAL_ASSEMBLY));
  CT_PETSC(ctx, MatAssemblyEnd(s->A, MAT_FINAL_ASSEMBLY));
  return CT_OK;
}

/* Sets the KSP up on the assembled matrix; a preconditioner that fails (a
 * zero pivot in ILU/LU/ICC) is CT_ERR_NUMERIC naming PETSc's reason. */
static int setup_ksp(ct_context *ctx, petsc_state *s) {
  PC pc;
  PCFailedReason reason = PC_NOERROR;
  CT_PETSC(ctx, KSPSetOperators(s->ksp, s->A, s->A));
  PetscErrorCode ierr = KSPSetUp(s->ksp);
  if (ierr == PETSC_ERR_MAT_LU_ZRPVT || ierr == PETSC_ERR_MAT_CH_ZRPVT)
    return CT_ERROR(ctx, CT_ERR_NUMERIC,
                    "linsolve (petsc): singular matrix (zero pivot in the preconditioner "
                    "set-up, PETSc error %d)", (int)ierr);
  if (ierr) return ct_petsc_error(ctx, ierr, __FILE__, __LINE__, __func__, "KSPSetUp");
  CT_PETSC(ctx, KSPGetPC(s->ksp, &pc));
  CT_PETSC(ctx, PCGetFailedReason(pc, &reason));
  if (reason == PC_FACTOR_STRUCT_ZEROPIVOT || reason == PC_FACTOR_NUMERIC_ZEROPIVOT)
    return CT_ERROR(ctx, CT_ERR_NUMERIC,
                    "linsolve (petsc): singular matrix (the preconditioner's factorization "
                    "failed: %s)", PCFailedReasons[reason]);
  if (reason != PC_NOERROR)
    return CT_ERROR(ctx, CT_ERR_SOLVER, "linsolve (petsc): preconditioner set-up failed (%s)",
                    PCFailedReasons[reason]);
  return CT_OK;
}

/* New values and KSPSetUp (the preconditioner is rebuilt); the first
 * factor after new options warns about options nobody read. A failed
 * set-up leaves PETSc's failure flags set in the PC, so the KSP is then
 * replaced by a fresh one with the same options for the next factor. */
static int petsc_factor(ct_context *ctx, void *impl, double *values) {
  petsc_state *s = impl;
  CT_CHECK(ctx, set_matrix_values(ctx, s, values));
  int status = setup_ksp(ctx, s);
  if (status < 0) {
    KSP fresh = NULL;
    ct_context_log(ctx, CT_LOG_DEBUG, "linsolve (petsc): rebuilding the KSP after a failure");
    if (new_ksp(ctx, s->options, s->n, "", &fresh) == CT_OK) {
      KSPDestroy(&s->ksp);
      s->ksp = fresh;
    }
    return ct_error_trace(ctx, status, __FILE__, __LINE__, __func__);
  }
  if (s->warn_unused) {
    ct_petsc_options_warn_unused(ctx, s->options, "linsolve (petsc)");
    s->warn_unused = 0;
  }
  return CT_OK;
}

/* KSPSolve or KSPSolveTranspose of b into x (which may alias b); a KSP
 * that does not converge is CT_ERR_SOLVER with PETSc's reason and the
 * iteration count. */
static int petsc_solve_dir(ct_context *ctx, petsc_state *s, int transpose,
                           const double *b, double *x) {
  PetscScalar *bb;
  CT_PETSC(ctx, VecGetArray(s->b, &bb));
  memcpy(bb, b, (size_t)s->n * sizeof *bb);
  CT_PETSC(ctx, VecRestoreArray(s->b, &bb));
  CT_PETSC(ctx, VecPlaceArray(s->x, x));
  PetscErrorCode ierr = transpose ? KSPSolveTranspose(s->ksp, s->b, s->x)
                                  : KSPSolve(s->ksp, s->b, s->x);
  PetscErrorCode reset = VecResetArray(s->x);
  if (ierr)
    return ct_petsc_error(ctx, ierr, __FILE__, __LINE__, __func__,
                          transpose ? "KSPSolveTranspose" : "KSPSolve");
  CT_PETSC(ctx, reset);
  KSPConvergedReason reason;
  PetscInt its = 0;
  CT_PETSC(ctx, KSPGetConvergedReason(s->ksp, &reason));
  CT_PETSC(ctx, KSPGetIterationNumber(s->ksp, &its));
  s->iterations += its;
  if (reason < 0)
    return CT_ERROR(ctx, CT_ERR_SOLVER,
                    "linsolve (petsc): %s did not converge: %s after %d iterations",
                    transpose ? "KSPSolveTranspose" : "KSPSolve",
                    KSPConvergedReasons[reason], (int)its);
  return CT_OK;
}

/* x = A^{-1} b. */
static int petsc_solve(ct_context *ctx, void *impl, const double *b, double *x) {
  return petsc_solve_dir(ctx, impl, 0, b, x);
}

/* x = A^{-T} b. */
static int petsc_tsolve(ct_context *ctx, void *impl, const double *b, double *x) {
  return petsc_solve_dir(ctx, impl, 1, b, x);
}

/* Krylov iterations summed over every solve. */
static long petsc_iterations(void *impl) { return ((petsc_state *)impl)->iterations; }

/* rcond is left to the generic estimator (a few KSP solves). */
const ct_linsolve_ops ct_linsolve_petsc = {
    .name = "petsc",
    .create = petsc_create,
    .factor = petsc_factor,
    .refactor = NULL,
    .solve = petsc_solve,
    .solve_transpose = petsc_tsolve,
    .destroy = petsc_destroy,
    .rcond = NULL,
    .set_options = petsc_set_options,
    .iterations = petsc_iterations,
};
