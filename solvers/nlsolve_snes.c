/* The PETSc SNES back end of ct_nlsolve: F(x, p) = 0 (x - G(x, p) = 0 for
 * fixed points) by any SNES method, with every derivative from the AD core
 * through the services of nlsolve_internal.h. The Newton matrix is either
 * assembled (SeqAIJ on the AD sparsity pattern, values from the colored
 * sparse Jacobian, PETSc's own LU by default) or, for linear_solver
 * "gmres", a matrix-free MatShell applying AD Jacobian-vector products
 * (GMRES without preconditioner by default). Each solve reads its own
 * options database (petsc_options), which the SNES, its KSP, PC and line
 * search share, and destroys every PETSc object it made. Serial only. */
#include <math.h>
#include <string.h>

#include <petscsnes.h>

#include "nlsolve_internal.h"
#include "petsc_util.h"

/* Everything one solve owns; snes_run_destroy releases it all. */
typedef struct snes_run {
  ct_context *ctx;
  ct_nlsolve *nls;
  const double *p;
  size_t n;
  double ftol;
  int status;          /* first failing service's status (CT_OK: none) */
  int matrix_free;
  double *x_lin;       /* n: where the matrix-free Jacobian is linearized */
  double *jac_csc;     /* nnz: F_x in ct_nls_pattern's CSC order */
  double *jac_csr;     /* nnz: the same values in CSR order */
  size_t *rowptr, *colind, *csc_pos;
  PetscInt *cols;      /* colind as PetscInt */
  long jac_setups;     /* assembled Jacobians or matrix-free linearizations */
  PetscOptions options;
  Vec X;
  Mat J;
  SNES snes;
} snes_run;

/* Remembers the first failing service's status (its message is already in
 * the context). */
static void note_failure(snes_run *r, int status) {
  if (r->status == CT_OK) r->status = status;
}

/* Sets all n entries of a to NaN, so that PETSc sees a failed evaluation. */
static void fill_nan(PetscScalar *a, size_t n) {
  for (size_t i = 0; i < n; i++) a[i] = NAN;
}

/* SNES residual callback: F = ct_nls_residual(X). A failing service sets
 * F to NaN and flags a domain error, so that the line search backtracks or
 * SNES stops with DIVERGED_FUNCTION_DOMAIN; the status is kept in r. */
static PetscErrorCode snes_residual(SNES snes, Vec X, Vec F, void *ud) {
  snes_run *r = ud;
  const PetscScalar *x = NULL;
  PetscScalar *f = NULL;
  PetscCall(VecGetArrayRead(X, &x));
  PetscCall(VecGetArray(F, &f));
  int status = ct_nls_residual(r->ctx, r->nls, x, r->p, f);
  if (status < 0) fill_nan(f, r->n);
  PetscCall(VecRestoreArray(F, &f));
  PetscCall(VecRestoreArrayRead(X, &x));
  if (status < 0) {
    note_failure(r, status);
    PetscCall(SNESSetFunctionDomainError(snes));
  }
  return 0;
}

/* Copies the CSC values of F_x into the assembled matrix P, row by row. */
static PetscErrorCode assemble_rows(snes_run *r, Mat P) {
  for (size_t q = 0; q < r->rowptr[r->n]; q++) r->jac_csr[q] = r->jac_csc[r->csc_pos[q]];
  for (size_t i = 0; i < r->n; i++) {
    PetscInt row = (PetscInt)i, count = (PetscInt)(r->rowptr[i + 1] - r->rowptr[i]);
    PetscCall(MatSetValues(P, 1, &row, count, r->cols + r->rowptr[i],
                           r->jac_csr + r->rowptr[i], INSERT_VALUES));
  }
  PetscCall(MatAssemblyBegin(P, MAT_FINAL_ASSEMBLY));
  PetscCall(MatAssemblyEnd(P, MAT_FINAL_ASSEMBLY));
  return 0;
}

/* SNES Jacobian callback for the assembled matrix: F_x at X from the AD
 * sparse Jacobian. A failing service flags a Jacobian domain error. */
static PetscErrorCode snes_jacobian_assembled(SNES snes, Vec X, Mat J, Mat P, void *ud) {
  snes_run *r = ud;
  const PetscScalar *x = NULL;
  (void)J;
  PetscCall(VecGetArrayRead(X, &x));
  int status = ct_nls_jacobian(r->ctx, r->nls, x, r->p, r->jac_csc);
  PetscCall(VecRestoreArrayRead(X, &x));
  r->jac_setups++;
  if (status < 0) {
    note_failure(r, status);
    PetscCall(SNESSetJacobianDomainError(snes));
    return 0;
  }
  return assemble_rows(r, P);
}

/* SNES Jacobian callback for the MatShell: records X as the point the
 * Jacobian-vector products linearize at. */
static PetscErrorCode snes_jacobian_shell(SNES snes, Vec X, Mat J, Mat P, void *ud) {
  snes_run *r = ud;
  const PetscScalar *x = NULL;
  (void)snes, (void)J, (void)P;
  PetscCall(VecGetArrayRead(X, &x));
  memcpy(r->x_lin, x, r->n * sizeof *r->x_lin);
  PetscCall(VecRestoreArrayRead(X, &x));
  r->jac_setups++;
  return 0;
}

/* y = F_x v (transpose: y = F_x^T v) at x_lin by one AD JVP (VJP). A
 * failing service returns NaN, which stops the Krylov solve. */
static PetscErrorCode shell_apply(Mat J, Vec v, Vec y, int transpose) {
  snes_run *r = NULL;
  const PetscScalar *va = NULL;
  PetscScalar *ya = NULL;
  PetscCall(MatShellGetContext(J, &r));
  PetscCall(VecGetArrayRead(v, &va));
  PetscCall(VecGetArray(y, &ya));
  int status = transpose ? ct_nls_vjp(r->ctx, r->nls, r->x_lin, r->p, va, ya, NULL)
                         : ct_nls_jvp(r->ctx, r->nls, r->x_lin, r->p, va, ya);
  if (status < 0) {
    note_failure(r, status);
    fill_nan(ya, r->n);
  }
  PetscCall(VecRestoreArray(y, &ya));
  PetscCall(VecRestoreArrayRead(v, &va));
  return 0;
}

/* MATOP_MULT of the shell. */
static PetscErrorCode shell_mult(Mat J, Vec v, Vec y) { return shell_apply(J, v, y, 0); }

/* MATOP_MULT_TRANSPOSE of the shell. */
static PetscErrorCode shell_mult_transpose(Mat J, Vec v, Vec y) {
  return shell_apply(J, v, y, 1);
}

/* Convergence test: converged as soon as max |F| <= ftol (KINSOL's
 * criterion), otherwise PETSc's default test (2-norm atol/rtol, step,
 * iteration and evaluation limits, all settable from the options). */
static PetscErrorCode snes_converged(SNES snes, PetscInt it, PetscReal xnorm,
                                     PetscReal snorm, PetscReal fnorm,
                                     SNESConvergedReason *reason, void *ud) {
  snes_run *r = ud;
  Vec F = NULL;
  PetscReal fmax = PETSC_MAX_REAL;
  PetscCall(SNESGetFunction(snes, &F, NULL, NULL));
  if (F && !PetscIsInfOrNanReal(fnorm)) PetscCall(VecNorm(F, NORM_INFINITY, &fmax));
  if (fmax <= r->ftol) {
    *reason = SNES_CONVERGED_FNORM_ABS;
    return 0;
  }
  return SNESConvergedDefault(snes, it, xnorm, snorm, fnorm, reason, NULL);
}

/* The CSR form of the Jacobian pattern, its PetscInt column indices, the
 * value buffers and the preallocated SeqAIJ matrix. */
static int make_assembled_jacobian(snes_run *r) {
  ct_context *ctx = r->ctx;
  const ct_sparsity *pat = ct_nls_pattern(r->nls);
  if (!pat || pat->nrows != r->n || pat->ncols != r->n)
    return CT_ERROR(ctx, CT_ERR_INTERNAL, "SNES: the problem has no n x n Jacobian pattern");
  CT_CHECK(ctx, ct_sparsity_to_csr(ctx, pat, &r->rowptr, &r->colind, &r->csc_pos));
  size_t nnz = pat->nnz ? pat->nnz : 1;
  r->cols = ct_calloc(ctx, nnz, sizeof *r->cols);
  r->jac_csc = ct_calloc(ctx, nnz, sizeof *r->jac_csc);
  r->jac_csr = ct_calloc(ctx, nnz, sizeof *r->jac_csr);
  PetscInt *row_nnz = ct_calloc(ctx, r->n, sizeof *row_nnz);
  if (!r->cols || !r->jac_csc || !r->jac_csr || !row_nnz) {
    ct_free(ctx, row_nnz);
    return CT_ERR_NOMEM;
  }
  for (size_t q = 0; q < pat->nnz; q++) r->cols[q] = (PetscInt)r->colind[q];
  for (size_t i = 0; i < r->n; i++) row_nnz[i] = (PetscInt)(r->rowptr[i + 1] - r->rowptr[i]);
  PetscErrorCode ierr = MatCreateSeqAIJ(PETSC_COMM_SELF, (PetscInt)r->n, (PetscInt)r->n, 0,
                                        row_nnz, &r->J);
  ct_free(ctx, row_nnz);
  if (ierr) return ct_petsc_error(ctx, ierr, __FILE__, __LINE__, __func__, "MatCreateSeqAIJ");
  return CT_OK;
}

/* The matrix-free Jacobian: a MatShell whose products are AD JVPs/VJPs at
 * x_lin. */
static int make_shell_jacobian(snes_run *r) {
  ct_context *ctx = r->ctx;
  r->x_lin = ct_calloc(ctx, r->n, sizeof *r->x_lin);
  if (!r->x_lin) return CT_ERR_NOMEM;
  PetscInt n = (PetscInt)r->n;
  CT_PETSC(ctx, MatCreateShell(PETSC_COMM_SELF, n, n, n, n, r, &r->J));
  CT_PETSC(ctx, MatShellSetOperation(r->J, MATOP_MULT, (void (*)(void))shell_mult));
  CT_PETSC(ctx, MatShellSetOperation(r->J, MATOP_MULT_TRANSPOSE,
                                     (void (*)(void))shell_mult_transpose));
  return CT_OK;
}

/* Gives the SNES and the KSP, PC and line search it owns the solve's
 * private options database, so that none reads PETSc's global one (PETSc
 * 3.18 passes the SNES's database on to the KSP and PC it creates; set on
 * all four so that this never depends on it). */
static int share_options(snes_run *r, KSP *ksp, PC *pc) {
  ct_context *ctx = r->ctx;
  SNESLineSearch ls = NULL;
  CT_PETSC(ctx, PetscObjectSetOptions((PetscObject)r->snes, r->options));
  CT_PETSC(ctx, SNESGetKSP(r->snes, ksp));
  CT_PETSC(ctx, PetscObjectSetOptions((PetscObject)*ksp, r->options));
  CT_PETSC(ctx, KSPGetPC(*ksp, pc));
  CT_PETSC(ctx, PetscObjectSetOptions((PetscObject)*pc, r->options));
  CT_PETSC(ctx, SNESGetLineSearch(r->snes, &ls));
  CT_PETSC(ctx, PetscObjectSetOptions((PetscObject)ls, r->options));
  return CT_OK;
}

/* CT_ERR_ARG when `scratch` sets the type option `name` ("-snes_type") to
 * a name missing from `list`. */
static int check_type_option(ct_context *ctx, PetscOptions scratch, const char *name,
                             PetscFunctionList list, const char *text) {
  char type[256] = "";
  PetscBool set = PETSC_FALSE;
  void (*constructor)(void) = NULL;
  CT_PETSC(ctx, PetscOptionsGetString(scratch, NULL, name, type, sizeof type, &set));
  if (!set) return CT_OK;
  CT_PETSC(ctx, PetscFunctionListFind(list, type, &constructor));
  if (!constructor)
    return CT_ERROR(ctx, CT_ERR_ARG, "SNES: the PETSc options \"%s\" are not valid: "
                    "unknown %s \"%s\"", text ? text : "", name, type);
  return CT_OK;
}

/* Checks every type option the SNES, KSP, PC and line search read, before
 * SNESSetFromOptions (which leaks its options block when it fails on an
 * unknown type). Reads a scratch copy of the options, so that the solve's
 * own database still tells which options nothing used. */
static int check_type_options(ct_context *ctx, const char *text) {
  static const char *const names[] = {"-snes_type", "-snes_linesearch_type", "-ksp_type",
                                      "-pc_type"};
  PetscOptions scratch = NULL;
  CT_CHECK(ctx, ct_petsc_init(ctx));
  CT_PETSC(ctx, SNESInitializePackage());
  CT_PETSC(ctx, KSPInitializePackage());
  CT_PETSC(ctx, PCInitializePackage());
  const PetscFunctionList lists[] = {SNESList, SNESLineSearchList, KSPList, PCList};
  CT_CHECK(ctx, ct_petsc_options_new(ctx, text, &scratch));
  int status = CT_OK;
  for (size_t i = 0; i < 4 && status == CT_OK; i++)
    status = check_type_option(ctx, scratch, names[i], lists[i], text);
  PetscOptionsDestroy(&scratch);
  return status;
}

/* Creates the SNES with Cotangent's defaults (newtonls; LU on the assembled
 * Jacobian or unpreconditioned GMRES on the shell; our tolerances), then
 * lets the options database override them. A value PETSc rejects (e.g. a
 * number that is not one) is CT_ERR_ARG quoting the options. */
static int make_snes(snes_run *r, const ct_nlsolve_options *o) {
  ct_context *ctx = r->ctx;
  KSP ksp = NULL;
  PC pc = NULL;
  CT_PETSC(ctx, SNESCreate(PETSC_COMM_SELF, &r->snes));
  CT_PETSC(ctx, SNESSetType(r->snes, SNESNEWTONLS));
  CT_CHECK(ctx, share_options(r, &ksp, &pc));
  CT_PETSC(ctx, SNESSetFunction(r->snes, NULL, snes_residual, r));
  CT_PETSC(ctx, SNESSetJacobian(r->snes, r->J, r->J,
                                r->matrix_free ? snes_jacobian_shell : snes_jacobian_assembled,
                                r));
  CT_PETSC(ctx, SNESSetTolerances(r->snes, o->ftol, 0.0, o->steptol,
                                  (PetscInt)(o->max_iters > PETSC_MAX_INT ? PETSC_MAX_INT
                                                                          : o->max_iters),
                                  PETSC_DEFAULT));
  CT_PETSC(ctx, SNESSetConvergenceTest(r->snes, snes_converged, r, NULL));
  if (o->max_setup > 1)
    CT_PETSC(ctx, SNESSetLagJacobian(r->snes, (PetscInt)(o->max_setup > PETSC_MAX_INT
                                                             ? PETSC_MAX_INT
                                                             : o->max_setup)));
  CT_PETSC(ctx, KSPSetType(ksp, r->matrix_free ? KSPGMRES : KSPPREONLY));
  CT_PETSC(ctx, PCSetType(pc, r->matrix_free ? PCNONE : PCLU));
  PetscErrorCode ierr = SNESSetFromOptions(r->snes);
  if (ierr) {
    const char *text = NULL;
    if (PetscErrorMessage(ierr, &text, NULL) || !text) text = "unknown PETSc error";
    return CT_ERROR(ctx, CT_ERR_ARG, "SNES: the PETSc options \"%s\" are not valid: %s",
                    o->petsc_options ? o->petsc_options : "", text);
  }
  return CT_OK;
}

/* Sets up everything a solve needs around x (which becomes the SNES's
 * solution vector, so iterates land there directly). */
static int snes_setup(snes_run *r, const ct_nlsolve_options *o, double *x) {
  ct_context *ctx = r->ctx;
  if (r->n > (size_t)PETSC_MAX_INT)
    return CT_ERROR(ctx, CT_ERR_ARG, "SNES: %zu unknowns exceed PETSc's index range", r->n);
  r->matrix_free = o->linear_solver && strcmp(o->linear_solver, "gmres") == 0;
  CT_CHECK(ctx, check_type_options(ctx, o->petsc_options));
  CT_CHECK(ctx, ct_petsc_options_new(ctx, o->petsc_options, &r->options));
  CT_PETSC(ctx, VecCreateSeqWithArray(PETSC_COMM_SELF, 1, (PetscInt)r->n, x, &r->X));
  CT_CHECK(ctx, r->matrix_free ? make_shell_jacobian(r) : make_assembled_jacobian(r));
  CT_CHECK(ctx, make_snes(r, o));
  return CT_OK;
}

/* Releases every PETSc object and buffer of the run. */
static void snes_run_destroy(snes_run *r) {
  ct_context *ctx = r->ctx;
  SNESDestroy(&r->snes);
  MatDestroy(&r->J);
  VecDestroy(&r->X);
  PetscOptionsDestroy(&r->options);
  ct_free(ctx, r->x_lin);
  ct_free(ctx, r->jac_csc);
  ct_free(ctx, r->jac_csr);
  ct_free(ctx, r->cols);
  ct_free(ctx, r->rowptr);
  ct_free(ctx, r->colind);
  ct_free(ctx, r->csc_pos);
}

/* fmax = max_i |F_i| at x. */
static int max_residual(snes_run *r, const double *x, double *fmax) {
  ct_context *ctx = r->ctx;
  double *f = ct_calloc(ctx, r->n ? r->n : 1, sizeof *f);
  if (!f) return CT_ERR_NOMEM;
  int status = ct_nls_residual(ctx, r->nls, x, r->p, f);
  *fmax = 0.0;
  for (size_t i = 0; i < r->n; i++) *fmax = *fmax > fabs(f[i]) ? *fmax : fabs(f[i]);
  ct_free(ctx, f);
  return status;
}

/* Whether the PC factors the matrix (then each assembled Jacobian is one
 * numeric factorization). */
static int pc_factors(SNES snes) {
  KSP ksp = NULL;
  PC pc = NULL;
  PetscBool yes = PETSC_FALSE;
  if (SNESGetKSP(snes, &ksp) || KSPGetPC(ksp, &pc)) return 0;
  if (PetscObjectTypeCompareAny((PetscObject)pc, &yes, PCLU, PCCHOLESKY, PCILU, PCICC, ""))
    return 0;
  return yes == PETSC_TRUE;
}

/* Copies the solution into x when the SNES's solution vector is not the
 * one wrapping x, and fills the statistics SNES knows. */
static int collect_results(snes_run *r, double *x, ct_nlsolve_stats *st) {
  ct_context *ctx = r->ctx;
  Vec sol = NULL;
  PetscInt its = 0, lits = 0;
  PetscReal ynorm = 0.0;
  CT_PETSC(ctx, SNESGetSolution(r->snes, &sol));
  if (sol && sol != r->X) {
    const PetscScalar *s = NULL;
    CT_PETSC(ctx, VecGetArrayRead(sol, &s));
    memcpy(x, s, r->n * sizeof *x);
    CT_PETSC(ctx, VecRestoreArrayRead(sol, &s));
  }
  CT_PETSC(ctx, SNESGetIterationNumber(r->snes, &its));
  CT_PETSC(ctx, SNESGetLinearSolveIterations(r->snes, &lits));
  CT_PETSC(ctx, SNESGetUpdateNorm(r->snes, &ynorm));
  st->iters = its;
  st->lin_iters = lits;
  st->step_norm = ynorm;
  if (!r->matrix_free && pc_factors(r->snes)) st->factorizations = r->jac_setups;
  return CT_OK;
}

/* Turns SNES's outcome into a status: a PETSc error, a divergence, or a
 * stop with max |F| still above ftol. */
static int judge_outcome(snes_run *r, PetscErrorCode solve_ierr,
                         SNESConvergedReason reason, const ct_nlsolve_stats *st) {
  ct_context *ctx = r->ctx;
  if (solve_ierr)
    return ct_petsc_error(ctx, solve_ierr, __FILE__, __LINE__, __func__, "SNESSolve");
  if (reason < 0)
    return CT_ERROR(ctx, CT_ERR_SOLVER, "SNES: %s at iteration %ld, max |F| = %.3e",
                    SNESConvergedReasons[reason], st->iters, st->fnorm);
  if (!(st->fnorm <= r->ftol))
    return CT_ERROR(ctx, CT_ERR_SOLVER,
                    "SNES: stopped on %s at iteration %ld with max |F| = %.3e above "
                    "ftol = %.3e",
                    SNESConvergedReasons[reason], st->iters, st->fnorm, r->ftol);
  return CT_OK;
}

/* Runs SNESSolve on the set-up run and judges the outcome; x holds the
 * last iterate whatever happens. A service that failed inside a callback
 * gives its own status (and message) unless SNES recovered from it (a
 * line-search trial point outside the domain) and converged. */
static int snes_run_solve(snes_run *r, double *x, ct_nlsolve_stats *st) {
  ct_context *ctx = r->ctx;
  SNESConvergedReason reason = SNES_CONVERGED_ITERATING;
  PetscErrorCode ierr = SNESSolve(r->snes, NULL, r->X);
  CT_CHECK(ctx, collect_results(r, x, st));
  CT_PETSC(ctx, SNESGetConvergedReason(r->snes, &reason));
  ct_petsc_options_warn_unused(ctx, r->options, "SNES");
  if (r->status < 0 && (ierr || reason <= 0)) {
    st->fnorm = NAN;
    return ct_error_trace(ctx, r->status, __FILE__, __LINE__, __func__);
  }
  if (r->status < 0) ct_error_clear(ctx);
  CT_CHECK(ctx, max_residual(r, x, &st->fnorm));
  return judge_outcome(r, ierr, reason, st);
}

/* The back end's solve (contract in nlsolve_internal.h). */
static int snes_solve(ct_context *ctx, ct_nlsolve *nls, const ct_nlsolve_options *o,
                      const double *p, double *x, ct_nlsolve_stats *st) {
  snes_run r = {.ctx = ctx, .nls = nls, .p = p, .n = ct_nlsolve_n(nls), .ftol = o->ftol};
  int status = snes_setup(&r, o, x);
  if (status == CT_OK) status = snes_run_solve(&r, x, st);
  snes_run_destroy(&r);
  return status;
}

const ct_nlsolve_backend ct_nlsolve_snes = {"snes", snes_solve};
