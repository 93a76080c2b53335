/* The KINSOL back end of ct_nlsolve: Newton with or without a line search,
 * Picard, and Anderson-accelerated fixed-point iteration. Direct linear
 * solves go through one custom SUNLinearSolver wrapping the problem's
 * ct_linsolve (dense, KLU, UMFPACK, CHOLMOD, PETSc) on a SUNSparseMatrix
 * holding the AD Jacobian; "gmres" is SUNDIALS' SPGMR with AD
 * Jacobian-vector products. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kinsol/kinsol.h>
#include <kinsol/kinsol_ls.h>
#include <nvector/nvector_serial.h>
#include <sundials/sundials_context.h>
#include <sundials/sundials_linearsolver.h>
#include <sunlinsol/sunlinsol_spgmr.h>
#include <sunmatrix/sunmatrix_sparse.h>

#include "nlsolve_internal.h"
#include "sun_check.h"

/* What every KINSOL callback of one solve needs (KINSOL's user data). */
typedef struct kin_run {
  ct_context *ctx;
  ct_nlsolve *nls;
  const ct_nlsolve_options *o;
  const double *p;
  size_t n;
  ct_linsolve *ls;     /* direct linear solves; NULL for gmres */
  double *jac_x;       /* n: where F_x was last evaluated */
  int factored_ok;     /* the last setup factored F_x at jac_x */
  long factorizations;
  int cb_status;       /* the first failing callback's status */
  char cause[512];     /* and its message */
  char sundials[256];  /* KINSOL's own last error message */
} kin_run;

/* Records a failing callback (the first one only) and returns KINSOL's
 * unrecoverable -1. */
static int callback_failed(kin_run *r, int status) {
  if (!r->cb_status) {
    r->cb_status = status;
    ct_errmsg_text(r->ctx, r->cause, sizeof r->cause);
  }
  return -1;
}

/* ---- KINSOL callbacks ---------------------------------------------------------- */

/* F(u) (the root problem). */
static int kin_residual(N_Vector u, N_Vector f, void *ud) {
  kin_run *r = ud;
  int rc = ct_nls_residual(r->ctx, r->nls, N_VGetArrayPointer(u), r->p,
                           N_VGetArrayPointer(f));
  return rc < 0 ? callback_failed(r, rc) : 0;
}

/* G(u) for KIN_FP: the problem's own map, or u - F(u) for a root problem. */
static int kin_fixed_point(N_Vector u, N_Vector g, void *ud) {
  kin_run *r = ud;
  double *uu = N_VGetArrayPointer(u), *gg = N_VGetArrayPointer(g);
  if (ct_nlsolve_is_fixed_point(r->nls)) {
    int rc = ct_nls_fixed_point_map(r->ctx, r->nls, uu, r->p, gg);
    return rc < 0 ? callback_failed(r, rc) : 0;
  }
  int rc = ct_nls_residual(r->ctx, r->nls, uu, r->p, gg);
  if (rc < 0) return callback_failed(r, rc);
  for (size_t i = 0; i < r->n; i++) gg[i] = uu[i] - gg[i];
  return 0;
}

/* The AD Jacobian F_x(u) into the CSC matrix J, pattern included (KINSOL
 * zeroes the matrix, index arrays too, before calling this). */
static int kin_jacobian(N_Vector u, N_Vector fu, SUNMatrix J, void *ud, N_Vector t1,
                        N_Vector t2) {
  (void)fu, (void)t1, (void)t2;
  kin_run *r = ud;
  const ct_sparsity *P = ct_nls_pattern(r->nls);
  sunindextype *colptr = SUNSparseMatrix_IndexPointers(J);
  sunindextype *rowind = SUNSparseMatrix_IndexValues(J);
  for (size_t j = 0; j <= P->ncols; j++) colptr[j] = (sunindextype)P->colptr[j];
  for (size_t q = 0; q < P->nnz; q++) rowind[q] = (sunindextype)P->rowind[q];
  memcpy(r->jac_x, N_VGetArrayPointer(u), r->n * sizeof(double));
  r->factored_ok = 0;
  int rc = ct_nls_jacobian(r->ctx, r->nls, r->jac_x, r->p, SUNSparseMatrix_Data(J));
  return rc < 0 ? callback_failed(r, rc) : 0;
}

/* Jv = F_x(u) v for SPGMR. */
static int kin_jtimes(N_Vector v, N_Vector Jv, N_Vector u, booleantype *new_u, void *ud) {
  (void)new_u;
  kin_run *r = ud;
  int rc = ct_nls_jvp(r->ctx, r->nls, N_VGetArrayPointer(u), r->p, N_VGetArrayPointer(v),
                      N_VGetArrayPointer(Jv));
  return rc < 0 ? callback_failed(r, rc) : 0;
}

/* Keeps KINSOL's error messages for the failure report instead of printing. */
static void kin_error(int code, const char *module, const char *function, char *msg,
                      void *ud) {
  (void)code;
  kin_run *r = ud;
  snprintf(r->sundials, sizeof r->sundials, "%s %s: %s", module, function, msg);
}

/* ---- The ct_linsolve as a SUNLinearSolver ---------------------------------------- */

static SUNLinearSolver_Type wrap_type(SUNLinearSolver S) {
  (void)S;
  return SUNLINEARSOLVER_DIRECT;
}

/* Factors the Jacobian values of A (first time factor, then refactor). */
static int wrap_setup(SUNLinearSolver S, SUNMatrix A) {
  kin_run *r = S->content;
  int rc = ct_linsolve_factor(r->ctx, r->ls, SUNSparseMatrix_Data(A));
  if (rc < 0) { /* a singular F_x on the way is the solve's failure */
    callback_failed(r, rc == CT_ERR_NUMERIC ? CT_ERR_SOLVER : rc);
    return SUNLS_PACKAGE_FAIL_UNREC;
  }
  r->factorizations++;
  r->factored_ok = 1;
  return SUNLS_SUCCESS;
}

static int wrap_solve(SUNLinearSolver S, SUNMatrix A, N_Vector x, N_Vector b, realtype tol) {
  (void)A, (void)tol;
  kin_run *r = S->content;
  int rc = ct_linsolve_solve(r->ctx, r->ls, N_VGetArrayPointer(b), N_VGetArrayPointer(x));
  if (rc < 0) {
    callback_failed(r, rc);
    return SUNLS_PACKAGE_FAIL_UNREC;
  }
  return SUNLS_SUCCESS;
}

/* The content is the run (not owned): only the shell is freed. */
static int wrap_free(SUNLinearSolver S) {
  if (!S) return SUNLS_SUCCESS;
  S->content = NULL;
  SUNLinSolFreeEmpty(S);
  return SUNLS_SUCCESS;
}

/* A SUNLinearSolver over r->ls, or NULL on no memory. */
static SUNLinearSolver wrap_new(SUNContext sun, kin_run *r) {
  SUNLinearSolver S = SUNLinSolNewEmpty(sun);
  if (!S) return NULL;
  S->ops->gettype = wrap_type;
  S->ops->setup = wrap_setup;
  S->ops->solve = wrap_solve;
  S->ops->free = wrap_free;
  S->content = r;
  return S;
}

/* ---- One solve ------------------------------------------------------------------- */

/* The SUNDIALS objects of one solve, freed together. */
typedef struct kin_set {
  SUNContext sun;
  N_Vector u, scale, constraints;
  SUNMatrix J;
  SUNLinearSolver LS;
  void *kin;
} kin_set;

static void kin_set_free(kin_set *k) {
  if (k->kin) KINFree(&k->kin);
  if (k->LS) SUNLinSolFree(k->LS);
  if (k->J) SUNMatDestroy(k->J);
  if (k->u) N_VDestroy(k->u);
  if (k->scale) N_VDestroy(k->scale);
  if (k->constraints) N_VDestroy(k->constraints);
  if (k->sun) SUNContext_Free(&k->sun);
}


/* KINSOL's strategy constant for the option's name; -1 if unknown. */
static int strategy_of(const char *name) {
  static const struct { const char *name; int value; } all[] = {
      {"linesearch", KIN_LINESEARCH}, {"newton", KIN_NONE},
      {"picard", KIN_PICARD}, {"fixed_point", KIN_FP}};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    if (!strcmp(all[i].name, name)) return all[i].value;
  return -1;
}

/* The linear solver: the wrapped ct_linsolve on a sparse matrix with the
 * AD Jacobian, or SPGMR with AD Jacobian-vector products. */
static int attach_linear_solver(ct_context *ctx, kin_run *r, kin_set *k) {
  const ct_nlsolve_options *o = r->o;
  if (!strcmp(o->linear_solver, "gmres")) {
    int maxl = r->n < 100 ? (int)r->n : 100;
    CT_SUN_NEW(ctx, k->LS, SUNLinSol_SPGMR(k->u, SUN_PREC_NONE, maxl, k->sun));
    CT_SUN_CALL(ctx, KINSetLinearSolver(k->kin, k->LS, NULL));
    CT_SUN_CALL(ctx, KINSetJacTimesVecFn(k->kin, kin_jtimes));
    return CT_OK;
  }
  CT_CHECK(ctx, ct_nls_linsolve(ctx, r->nls, o->linear_solver, &r->ls));
  const ct_sparsity *P = ct_nls_pattern(r->nls);
  CT_SUN_NEW(ctx, k->J, SUNSparseMatrix((sunindextype)r->n, (sunindextype)r->n,
                                     (sunindextype)P->nnz, CSC_MAT, k->sun));
  CT_SUN_NEW(ctx, k->LS, wrap_new(k->sun, r));
  CT_SUN_CALL(ctx, KINSetLinearSolver(k->kin, k->LS, k->J));
  CT_SUN_CALL(ctx, KINSetJacFn(k->kin, kin_jacobian));
  return CT_OK;
}

/* Creates and configures KINSOL for the run, x the initial guess. */
/* KINSOL's largest Newton step (a scaled 2-norm) for the guess x: its own
 * default, 1000 |x|, falls to 1 for a zero guess, which stalls problems
 * with many unknowns (KIN_MXNEWT_5X_EXCEEDED after five capped steps);
 * 1000 max(|x|, sqrt(n)) keeps the guard against runaway steps. */
static double max_newton_step(const double *x, size_t n) {
  double sum = 0.0;
  for (size_t i = 0; i < n; i++) sum += x[i] * x[i];
  return 1000.0 * fmax(sqrt(sum), sqrt((double)n));
}

static int kin_setup(ct_context *ctx, kin_run *r, kin_set *k, const double *x) {
  const ct_nlsolve_options *o = r->o;
  int strategy = strategy_of(o->strategy);
  CT_SUN_CALL(ctx, SUNContext_Create(NULL, &k->sun));
  CT_SUN_NEW(ctx, k->u, N_VNew_Serial((sunindextype)r->n, k->sun));
  CT_SUN_NEW(ctx, k->scale, N_VNew_Serial((sunindextype)r->n, k->sun));
  memcpy(N_VGetArrayPointer(k->u), x, r->n * sizeof(double));
  N_VConst(1.0, k->scale);
  CT_SUN_NEW(ctx, k->kin, KINCreate(k->sun));
  CT_SUN_CALL(ctx, KINSetErrHandlerFn(k->kin, kin_error, r));
  CT_SUN_CALL(ctx, KINSetUserData(k->kin, r));
  if (strategy == KIN_FP) CT_SUN_CALL(ctx, KINSetMAA(k->kin, o->anderson_m));
  CT_SUN_CALL(ctx, KINInit(k->kin, strategy == KIN_FP ? kin_fixed_point : kin_residual, k->u));
  CT_SUN_CALL(ctx, KINSetFuncNormTol(k->kin, o->ftol));
  CT_SUN_CALL(ctx, KINSetScaledStepTol(k->kin, o->steptol));
  CT_SUN_CALL(ctx, KINSetNumMaxIters(k->kin, o->max_iters));
  CT_SUN_CALL(ctx, KINSetMaxNewtonStep(k->kin, max_newton_step(x, r->n)));
  if (strategy == KIN_FP || strategy == KIN_PICARD) {
    if (o->anderson_m > 0 && strategy == KIN_FP)
      CT_SUN_CALL(ctx, KINSetDampingAA(k->kin, o->damping));
    else
      CT_SUN_CALL(ctx, KINSetDamping(k->kin, o->damping));
  }
  if (o->constraints) {
    CT_SUN_NEW(ctx, k->constraints, N_VNew_Serial((sunindextype)r->n, k->sun));
    memcpy(N_VGetArrayPointer(k->constraints), o->constraints, r->n * sizeof(double));
    CT_SUN_CALL(ctx, KINSetConstraints(k->kin, k->constraints));
  }
  if (strategy != KIN_FP) {
    CT_SUN_CALL(ctx, KINSetMaxSetupCalls(k->kin, o->max_setup));
    CT_CHECK(ctx, attach_linear_solver(ctx, r, k));
  }
  return CT_OK;
}

/* What a KINSOL return flag means, in plain words. */
static const char *flag_reason(int flag, const ct_nlsolve_options *o) {
  switch (flag) {
  case KIN_STEP_LT_STPTOL:
    return "the scaled step fell below steptol before max |F| <= ftol (x may be a "
           "local minimum of |F|, or steptol is too large)";
  case KIN_LINESEARCH_NONCONV:
    return "the line search could not reduce |F| (a poor initial guess, or a local "
           "minimum of |F|)";
  case KIN_MAXITER_REACHED:
    return "max_iters reached before max |F| <= ftol";
  case KIN_MXNEWT_5X_EXCEEDED:
    return "five steps in a row of maximum length: x may be diverging";
  case KIN_LINESEARCH_BCFAIL:
    return "the line search could not satisfy the beta condition";
  case KIN_LINSOLV_NO_RECOVERY:
  case KIN_LSOLVE_FAIL:
    return !strcmp(o->linear_solver, "gmres")
               ? "GMRES could not solve the Newton system"
               : "the linear solve of the Newton step failed";
  case KIN_LSETUP_FAIL:
    return "the Jacobian F_x could not be factored (singular?)";
  case KIN_SUCCESS:
  case KIN_INITIAL_GUESS_OK:
    return "KINSOL stopped on its own norm, but max |F| at the returned x exceeds ftol";
  default:
    return "KINSOL stopped";
  }
}

/* max_i |F_i| at x, or NaN if F cannot be evaluated there. */
static double max_abs_residual(ct_context *ctx, ct_nlsolve *nls, const double *x,
                               const double *p, double *F) {
  if (ct_nls_residual(ctx, nls, x, p, F) < 0) {
    ct_error_clear(ctx);
    return NAN;
  }
  double m = 0;
  for (size_t i = 0; i < ct_nlsolve_n(nls); i++)
    if (fabs(F[i]) > m) m = fabs(F[i]);
  return m;
}

/* Statistics from KINSOL into st. */
static void read_stats(kin_run *r, kin_set *k, ct_nlsolve_stats *st) {
  long v = 0;
  double d = 0;
  if (KINGetNumNonlinSolvIters(k->kin, &v) == KIN_SUCCESS) st->iters = v;
  if (KINGetNumBacktrackOps(k->kin, &v) == KIN_SUCCESS) st->backtracks = v;
  if (KINGetStepLength(k->kin, &d) == KIN_SUCCESS) st->step_norm = d;
  if (k->LS && KINGetNumLinIters(k->kin, &v) == KIN_SUCCESS) st->lin_iters = v;
  st->factorizations = r->factorizations;
}

/* The name of a KINSOL return flag. */
static const char *flag_name(int flag) {
  static const struct { int flag; const char *name; } all[] = {
      {KIN_SUCCESS, "KIN_SUCCESS"}, {KIN_INITIAL_GUESS_OK, "KIN_INITIAL_GUESS_OK"},
      {KIN_STEP_LT_STPTOL, "KIN_STEP_LT_STPTOL"}, {KIN_WARNING, "KIN_WARNING"},
      {KIN_MEM_NULL, "KIN_MEM_NULL"}, {KIN_ILL_INPUT, "KIN_ILL_INPUT"},
      {KIN_NO_MALLOC, "KIN_NO_MALLOC"}, {KIN_MEM_FAIL, "KIN_MEM_FAIL"},
      {KIN_LINESEARCH_NONCONV, "KIN_LINESEARCH_NONCONV"},
      {KIN_MAXITER_REACHED, "KIN_MAXITER_REACHED"},
      {KIN_MXNEWT_5X_EXCEEDED, "KIN_MXNEWT_5X_EXCEEDED"},
      {KIN_LINESEARCH_BCFAIL, "KIN_LINESEARCH_BCFAIL"},
      {KIN_LINSOLV_NO_RECOVERY, "KIN_LINSOLV_NO_RECOVERY"},
      {KIN_LINIT_FAIL, "KIN_LINIT_FAIL"}, {KIN_LSETUP_FAIL, "KIN_LSETUP_FAIL"},
      {KIN_LSOLVE_FAIL, "KIN_LSOLVE_FAIL"}, {KIN_SYSFUNC_FAIL, "KIN_SYSFUNC_FAIL"},
      {KIN_FIRST_SYSFUNC_ERR, "KIN_FIRST_SYSFUNC_ERR"},
      {KIN_REPTD_SYSFUNC_ERR, "KIN_REPTD_SYSFUNC_ERR"},
      {KIN_VECTOROP_ERR, "KIN_VECTOROP_ERR"}, {KIN_CONTEXT_ERR, "KIN_CONTEXT_ERR"}};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    if (all[i].flag == flag) return all[i].name;
  return "an unknown flag";
}

/* The error for KINSOL's failure `flag` (or a stop on the step with
 * max |F| > ftol): solver, flag, iteration, max |F| and the reason. */
static int report_failure(ct_context *ctx, kin_run *r, int flag, const ct_nlsolve_stats *st) {
  char fnorm[64];
  if (isnan(st->fnorm)) snprintf(fnorm, sizeof fnorm, "not finite");
  else snprintf(fnorm, sizeof fnorm, "%.1e", st->fnorm);
  int status = r->cb_status ? r->cb_status : CT_ERR_SOLVER;
  const char *reason = r->cb_status ? r->cause : flag_reason(flag, r->o);
  if (!r->cb_status && r->sundials[0] && (flag == KIN_ILL_INPUT || flag == KIN_MEM_FAIL))
    reason = r->sundials;
  int rc = CT_ERROR(ctx, status, "KINSOL: %s at iteration %ld, max |F| = %s: %s%s%s%s",
                    flag_name(flag), st->iters, fnorm, reason,
                    flag == KIN_MAXITER_REACHED ? " (" : "",
                    flag == KIN_MAXITER_REACHED ? "raise max_iters" : "",
                    flag == KIN_MAXITER_REACHED ? ")" : "");
  return rc;
}

/* KINSOL on the run from x; the last iterate in x whatever happens. */
static int kin_run_solve(ct_context *ctx, kin_run *r, kin_set *k, double *x,
                         ct_nlsolve_stats *st) {
  CT_CHECK(ctx, kin_setup(ctx, r, k, x));
  int strategy = strategy_of(r->o->strategy);
  int flag = KINSol(k->kin, k->u, strategy, k->scale, k->scale);
  memcpy(x, N_VGetArrayPointer(k->u), r->n * sizeof(double));
  read_stats(r, k, st);
  double *F = N_VGetArrayPointer(k->scale); /* scratch: KINSOL is done */
  st->fnorm = max_abs_residual(ctx, r->nls, x, r->p, F);
  int converged = flag >= 0 && flag != KIN_WARNING && st->fnorm <= r->o->ftol;
  if (!converged) return report_failure(ctx, r, flag, st);
  if (r->ls && r->factored_ok) {
    if (!memcmp(r->jac_x, x, r->n * sizeof(double))) ct_nls_mark_factored(r->nls);
    else ct_nls_mark_factored_stale(r->nls);
  }
  return CT_OK;
}

/* The back end's solve (see nlsolve_internal.h). */
static int kinsol_solve(ct_context *ctx, ct_nlsolve *nls, const ct_nlsolve_options *o,
                        const double *p, double *x, ct_nlsolve_stats *st) {
  if (strategy_of(o->strategy) < 0)
    return CT_ERROR(ctx, CT_ERR_ARG, "KINSOL: unknown strategy '%s' (linesearch, newton, "
                    "picard, fixed_point)", o->strategy);
  if (strategy_of(o->strategy) == KIN_PICARD && !strcmp(o->linear_solver, "gmres"))
    return CT_ERROR(ctx, CT_ERR_ARG, "KINSOL: the picard strategy needs a matrix (a "
                    "direct linear solver), not gmres");
  kin_run r;
  memset(&r, 0, sizeof r);
  r.ctx = ctx;
  r.nls = nls;
  r.o = o;
  r.p = p;
  r.n = ct_nlsolve_n(nls);
  r.jac_x = ct_calloc(ctx, r.n, sizeof(double));
  if (!r.jac_x) return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  kin_set k;
  memset(&k, 0, sizeof k);
  int rc = kin_run_solve(ctx, &r, &k, x, st);
  kin_set_free(&k);
  ct_free(ctx, r.jac_x);
  if (rc < 0) return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  return CT_OK;
}

const ct_nlsolve_backend ct_nlsolve_kinsol = {"kinsol", kinsol_solve};
