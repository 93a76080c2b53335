/* ODE integration with ARKODE's ARKStep: explicit (ERK), diagonally
 * implicit (DIRK, Newton) and additive implicit-explicit (IMEX) Runge-Kutta
 * methods. The model, its callbacks, the AD-fed linear solvers, the result
 * and the failure reports are those of the CVODES integration (ode.c),
 * shared through ode_internal.h. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <arkode/arkode_arkstep.h>
#include <nvector/nvector_serial.h>
#include <sundials/sundials_context.h>
#include <sunlinsol/sunlinsol_band.h>
#include <sunlinsol/sunlinsol_dense.h>
#include <sunlinsol/sunlinsol_klu.h>
#include <sunlinsol/sunlinsol_spgmr.h>
#include <sunmatrix/sunmatrix_band.h>
#include <sunmatrix/sunmatrix_dense.h>
#include <sunmatrix/sunmatrix_sparse.h>

#include "cotangent/ode.h"
#include "ode_internal.h"

/* ---- Split (IMEX) models ------------------------------------------------------ */

/* Checks that output `name` of rhs has n components. */
static int check_part(ct_context *ctx, const ct_fun *rhs, const char *name, size_t n) {
  size_t k = ct_fun_out_size(rhs, (size_t)ct_fun_out_index(rhs, name));
  if (k != n)
    return CT_ERROR(ctx, CT_ERR_ARG, "output '%s' has %zu components but 'y' has %zu",
                    name, k, n);
  return CT_OK;
}

/* The split right-hand side into m->rhs_e ("fe") and m->rhs ("fi"); the
 * caller (ode.c's model building) binds m->rhs and checks its inputs. */
int ct_ode_split_fill(ct_context *ctx, ct_ode *m, const ct_fun *rhs) {
  long fe = ct_fun_out_index(rhs, "fe"), fi = ct_fun_out_index(rhs, "fi");
  if (fe < 0 || fi < 0)
    return CT_ERROR(ctx, CT_ERR_ARG, "the right-hand side has output '%s' but no '%s': "
                    "an IMEX model needs both 'fe' (explicit part) and 'fi' "
                    "(implicit part), or else a single output 'f'",
                    fe < 0 ? "fi" : "fe", fe < 0 ? "fe" : "fi");
  long y = ct_fun_in_index(rhs, "y");
  if (y < 0)
    return CT_ERROR(ctx, CT_ERR_ARG, "the right-hand side function has no input 'y'");
  size_t n = ct_fun_in_size(rhs, (size_t)y);
  CT_CHECK(ctx, check_part(ctx, rhs, "fe", n));
  CT_CHECK(ctx, check_part(ctx, rhs, "fi", n));
  const char *names_i[] = {"fi", NULL}, *names_e[] = {"fe", NULL};
  CT_CHECK(ctx, ct_fun_select_outputs(ctx, rhs, names_i, &m->rhs.f));
  CT_CHECK(ctx, ct_fun_select_outputs(ctx, rhs, names_e, &m->rhs_e.f));
  m->rhs_e.t = ct_fun_in_index(m->rhs_e.f, "t");
  m->rhs_e.y = ct_fun_in_index(m->rhs_e.f, "y");
  m->rhs_e.p = ct_fun_in_index(m->rhs_e.f, "p");
  m->rhs_e.dy = -1;
  return CT_OK;
}

/* ---- ARKStep objects and callbacks -------------------------------------------- */

/* The ARKODE objects of one solve. */
typedef struct ark_set {
  SUNContext sun;
  N_Vector y, atol;
  SUNMatrix A;
  SUNLinearSolver LS;
  void *ark;
} ark_set;

/* Frees them, ARKODE first since it refers to the others. */
static void ark_set_free(ark_set *c) {
  if (c->ark) ARKStepFree(&c->ark);
  if (c->LS) SUNLinSolFree(c->LS);
  if (c->A) SUNMatDestroy(c->A);
  if (c->y) N_VDestroy(c->y);
  if (c->atol) N_VDestroy(c->atol);
  if (c->sun) SUNContext_Free(&c->sun);
}

/* The explicit part "fe" of a split model (r->ext is ode.c's table). */
static int fe_cb(sunrealtype t, N_Vector y, N_Vector ydot, void *ud) {
  ct_ode_run *r = ud;
  const ct_ode_shared *sh = r->ext;
  double *f = N_VGetArrayPointer(ydot);
  if (sh->eval_at(r, &r->m->rhs_e, t, N_VGetArrayPointer(y), NULL, f) < 0) return -1;
  return sh->check_finite(r, "explicit right-hand side", f, r->m->n, t);
}

/* The Newton iteration's linear solver, fed by the AD Jacobian of the
 * implicit part (dense, band, KLU) or its JVPs (GMRES). */
static int attach_linear_solver(ct_ode_run *r, ark_set *c, ct_ode_linsol ls) {
  ct_context *ctx = r->ctx;
  const ct_ode *m = r->m;
  const ct_ode_shared *sh = r->ext;
  sunindextype n = (sunindextype)m->n;
  switch (ls) {
    case CT_LINSOL_DENSE:
      CT_SUN_NEW(ctx, c->A, SUNDenseMatrix(n, n, c->sun));
      CT_SUN_NEW(ctx, c->LS, SUNLinSol_Dense(c->y, c->A, c->sun));
      break;
    case CT_LINSOL_BAND:
      CT_SUN_NEW(ctx, c->A, SUNBandMatrix(n, (sunindextype)m->mu, (sunindextype)m->ml, c->sun));
      CT_SUN_NEW(ctx, c->LS, SUNLinSol_Band(c->y, c->A, c->sun));
      break;
    case CT_LINSOL_KLU:
      CT_SUN_NEW(ctx, c->A, SUNSparseMatrix(n, n, (sunindextype)(m->pattern->nnz ? m->pattern->nnz : 1),
                                         CSC_MAT, c->sun));
      CT_SUN_NEW(ctx, c->LS, SUNLinSol_KLU(c->y, c->A, c->sun));
      break;
    default: /* GMRES, matrix-free, no preconditioner */
      CT_SUN_NEW(ctx, c->LS, SUNLinSol_SPGMR(c->y, SUN_PREC_NONE, 0, c->sun));
      CT_SUN_CALL(ctx, ARKStepSetLinearSolver(c->ark, c->LS, NULL));
      CT_SUN_CALL(ctx, ARKStepSetJacTimes(c->ark, NULL, sh->jtimes));
      return CT_OK;
  }
  CT_SUN_CALL(ctx, ARKStepSetLinearSolver(c->ark, c->LS, c->A));
  CT_SUN_CALL(ctx, ARKStepSetJacFn(c->ark, sh->jac));
  return CT_OK;
}

/* Creates ARKStep for the method: ERK f explicit, DIRK f implicit, IMEX
 * fe explicit and fi implicit. */
static int ark_setup(ct_ode_run *r, ark_set *c, const ct_ode_options *o, double t0,
                     const double *y0, ct_ode_linsol ls) {
  ct_context *ctx = r->ctx;
  const ct_ode *m = r->m;
  const ct_ode_shared *sh = r->ext;
  CT_SUN_CALL(ctx, SUNContext_Create(NULL, &c->sun));
  CT_SUN_NEW(ctx, c->y, N_VNew_Serial((sunindextype)m->n, c->sun));
  memcpy(N_VGetArrayPointer(c->y), y0, m->n * sizeof *y0);
  ARKRhsFn fe = o->method == CT_ODE_ERK ? sh->rhs : o->method == CT_ODE_IMEX ? fe_cb : NULL;
  ARKRhsFn fi = o->method == CT_ODE_ERK ? NULL : sh->rhs;
  CT_SUN_NEW(ctx, c->ark, ARKStepCreate(fe, fi, t0, c->y, c->sun));
  CT_SUN_CALL(ctx, ARKStepSetErrHandlerFn(c->ark, sh->error, r));
  CT_SUN_CALL(ctx, ARKStepSetUserData(c->ark, r));
  if (o->atol_v) {
    CT_SUN_NEW(ctx, c->atol, N_VNew_Serial((sunindextype)m->n, c->sun));
    memcpy(N_VGetArrayPointer(c->atol), o->atol_v, m->n * sizeof *o->atol_v);
    CT_SUN_CALL(ctx, ARKStepSVtolerances(c->ark, o->rtol, c->atol));
  } else {
    CT_SUN_CALL(ctx, ARKStepSStolerances(c->ark, o->rtol, o->atol));
  }
  if (o->max_steps) CT_SUN_CALL(ctx, ARKStepSetMaxNumSteps(c->ark, o->max_steps));
  if (o->max_step > 0) CT_SUN_CALL(ctx, ARKStepSetMaxStep(c->ark, o->max_step));
  if (m->nroots) CT_SUN_CALL(ctx, ARKStepRootInit(c->ark, (int)m->nroots, sh->root));
  if (o->method == CT_ODE_ERK) return CT_OK;
  return attach_linear_solver(r, c, ls);
}

/* ARKStep's statistics in ct_ode_stats' terms: right-hand side evaluations
 * count fe and fi; linear-solver counts only for implicit methods (asking
 * an explicit ARKStep for them is an error). */
static void collect_stats(void *ark, int implicit, ct_ode_stats *s) {
  long nfe = 0, nfi = 0;
  ARKStepGetNumSteps(ark, &s->steps);
  ARKStepGetNumRhsEvals(ark, &nfe, &nfi);
  s->rhs_evals = nfe + nfi;
  ARKStepGetNumErrTestFails(ark, &s->err_test_fails);
  ARKStepGetNumGEvals(ark, &s->root_evals);
  ARKStepGetLastStep(ark, &s->last_step);
  ARKStepGetActualInitStep(ark, &s->init_step);
  ARKStepGetCurrentTime(ark, &s->current_time);
  ARKStepGetCurrentStep(ark, &s->current_step);
  ARKodeButcherTable Bi = NULL, Be = NULL;
  if (ARKStepGetCurrentButcherTables(ark, &Bi, &Be) == ARK_SUCCESS)
    s->last_order = Bi ? Bi->q : Be ? Be->q : 0;
  if (!implicit) return;
  ARKStepGetNumLinSolvSetups(ark, &s->lin_setups);
  ARKStepGetNumNonlinSolvIters(ark, &s->nonlin_iters);
  ARKStepGetNumNonlinSolvConvFails(ark, &s->nonlin_conv_fails);
  ARKStepGetNumJacEvals(ark, &s->jac_evals);
  ARKStepGetNumJtimesEvals(ark, &s->jtimes_evals);
  ARKStepGetNumLinIters(ark, &s->lin_iters);
}

/* The cause of an ARKStepEvolve failure in words. */
static const char *failure_cause(int flag, const ct_ode_options *o) {
  switch (flag) {
    case ARK_TOO_MUCH_WORK:
      return o->max_steps ? "too much work: the step limit (max_steps) was reached"
                          : "too much work: 500 steps without reaching the next "
                            "output time (raise max_steps)";
    case ARK_TOO_MUCH_ACC: return "too much accuracy requested for machine precision";
    case ARK_ERR_FAILURE:
      return "error test failed repeatedly or the step size underflowed";
    case ARK_CONV_FAILURE:
      return "the nonlinear iteration failed to converge repeatedly (singular or "
             "ill-conditioned iteration matrix?)";
    case ARK_LSETUP_FAIL: return "the linear solver setup failed";
    case ARK_LSOLVE_FAIL: return "the linear solve failed";
    case ARK_RHSFUNC_FAIL:
    case ARK_FIRST_RHSFUNC_ERR:
    case ARK_REPTD_RHSFUNC_ERR:
    case ARK_UNREC_RHSFUNC_ERR: return "the right-hand side failed";
    case ARK_RTFUNC_FAIL: return "the root function failed";
    default: return "the integrator failed";
  }
}

/* Appends the root just found (ARKStep's root info) to the result. */
static int record_root(ct_ode_run *r, ark_set *c, ct_ode_result *res, double t) {
  ct_ode_root *roots = ct_realloc_array(r->ctx, res->roots, res->n_roots_found + 1,
                                        sizeof *roots);
  if (!roots) return CT_ERR_NOMEM;
  res->roots = roots;
  ct_ode_root *root = &roots[res->n_roots_found];
  root->t = t;
  root->which = ct_calloc(r->ctx, r->m->nroots, sizeof *root->which);
  if (!root->which) return CT_ERR_NOMEM;
  res->n_roots_found++;
  CT_SUN_CALL(r->ctx, ARKStepGetRootInfo(c->ark, root->which));
  return CT_OK;
}

/* ARKStep as dense output drives it (see ct_step_ops). */
static int ark_one_step(void *ark, double tout, N_Vector y, double *t) {
  return ARKStepEvolve(ark, tout, y, t, ARK_ONE_STEP);
}
static int ark_dky(void *ark, double t, int k, N_Vector out) {
  return ARKStepGetDky(ark, t, k, out);
}
static long ark_n_steps(void *ark) {
  long nst = 0;
  ARKStepGetNumSteps(ark, &nst);
  return nst;
}
static double ark_current_time(void *ark) {
  double t = 0;
  ARKStepGetCurrentTime(ark, &t);
  return t;
}
static int ark_degree(void *ark) { /* ARKODE's interpolants: degree at most 5 */
  (void)ark;
  return 5;
}
static const ct_step_ops ark_step_ops = {ark_one_step, ark_dky, ark_n_steps,
                                         ark_current_time, ark_degree,
                                         "ARKODE ARKStepEvolve", NULL};

/* Runs ARKStepEvolve through the output times, filling res; a failure is
 * recorded in res (message with the time reached) and returned. */
static int integrate(ct_ode_run *r, ark_set *c, const ct_ode_options *o,
                     const double *tout, size_t n_tout, ct_ode_result *res) {
  const ct_ode_shared *sh = r->ext;
  double *y = N_VGetArrayPointer(c->y);
  sh->store_output(res, tout[0], y);
  res->t_reached = tout[0];
  for (size_t k = 1; k < n_tout;) {
    double t = tout[0];
    int flag = r->dense ? ct_ode_dense_advance(r, tout[k], c->y, &t)
                        : ARKStepEvolve(c->ark, tout[k], c->y, &t, ARK_NORMAL);
    res->t_reached = t;
    if (flag == ARK_ROOT_RETURN) {
      CT_CHECK(r->ctx, record_root(r, c, res, t));
      if (o->stop_at_roots) {
        sh->store_output(res, t, y);
        return CT_OK;
      }
      continue;
    }
    if (flag == CT_STEP_INTERRUPTED) {
      ARKStepGetCurrentTime(c->ark, &res->t_reached);
      return ct_interrupted(r->ctx, res->message, sizeof res->message, res->t_reached);
    }
    if (flag < 0) {
      ARKStepGetCurrentTime(c->ark, &res->t_reached);
      long lsflag = 0;
      if (o->method != CT_ODE_ERK) ARKStepGetLastLinFlag(c->ark, &lsflag);
      const char *singular = ct_ode_singular_cause(flag == ARK_CONV_FAILURE,
                                                   flag == ARK_LSETUP_FAIL, lsflag, r->cause);
      sh->describe_failure(res, singular ? singular : failure_cause(flag, o), r->cause,
                           r->sundials);
      return CT_ERROR(r->ctx, CT_ERR_SOLVER, "%s", res->message);
    }
    sh->store_output(res, t, y);
    r->cause[0] = '\0'; /* anything found so far was recovered from */
    k++;
  }
  return CT_OK;
}

/* Sets ARKStep up, integrates and collects the statistics; frees the
 * ARKODE objects whatever happens. */
static int solve_run(ct_ode_run *r, const ct_ode_options *o, const double *y0,
                     const double *tout, size_t n_tout, ct_ode_result *res) {
  ct_context *ctx = r->ctx;
  const ct_ode *m = r->m;
  const ct_ode_shared *sh = r->ext;
  double *y_init = ct_alloc(ctx, (m->n ? m->n : 1) * sizeof *y_init);
  if (!y_init) return CT_ERR_NOMEM;
  ark_set c = {0};
  int implicit = o->method != CT_ODE_ERK;
  int rc = sh->initial_values(r, y0, y_init);
  ct_ode_linsol ls = o->linsol == CT_LINSOL_AUTO ? sh->pick_linsol(m) : o->linsol;
  res->linsol = implicit ? ls : CT_LINSOL_AUTO;
  if (rc == CT_OK && implicit && o->linsol == CT_LINSOL_AUTO)
    ct_context_log(ctx, CT_LOG_INFO,
                   "linear solver auto: %s (%zu states, %zu Jacobian nonzeros, "
                   "bandwidths %ld/%ld)", ct_ode_linsol_name(ls), m->n,
                   m->pattern->nnz, m->mu, m->ml);
  if (rc == CT_OK) rc = ark_setup(r, &c, o, tout[0], y_init, ls);
  if (rc == CT_OK) rc = ct_ode_dense_start(r, res, &ark_step_ops, c.ark, o, c.y,
                                         tout[n_tout - 1]);
  if (rc == CT_OK) rc = integrate(r, &c, o, tout, n_tout, res);
  ct_ode_dense_stop(r);
  if (c.ark) collect_stats(c.ark, implicit, &res->stats);
  ark_set_free(&c);
  ct_free(ctx, y_init);
  return rc;
}

/* The method's name for messages. */
static const char *method_name(ct_ode_method method) {
  return method == CT_ODE_ERK ? "CT_ODE_ERK" : method == CT_ODE_DIRK ? "CT_ODE_DIRK"
         : method == CT_ODE_IMEX ? "CT_ODE_IMEX" : "a CVODES method";
}

/* ct_ode_solve_into for ARKODE methods and split models (see
 * ode_internal.h): the method must fit the model, and no hooks. */
int ct_arkode_solve_into(ct_context *ctx, const ct_ode *m, const double *p,
                         const double *y0, const double *tout, size_t n_tout,
                         const ct_ode_options *o, const ct_ode_hooks *hooks,
                         ct_ode_result *res) {
  if (hooks && (hooks->setup || hooks->output || hooks->finish))
    return CT_ERROR(ctx, CT_ERR_ARG, "%s: sensitivities and adjoints need a CVODES "
                    "method (CT_ODE_BDF or CT_ODE_ADAMS)", method_name(o->method));
  if (m->rhs_e.f && o->method != CT_ODE_IMEX)
    return CT_ERROR(ctx, CT_ERR_ARG, "the model's right-hand side is split into 'fe' "
                    "and 'fi': solve it with CT_ODE_IMEX, not %s", method_name(o->method));
  if (!m->rhs_e.f && o->method == CT_ODE_IMEX)
    return CT_ERROR(ctx, CT_ERR_ARG, "CT_ODE_IMEX needs a model whose right-hand side "
                    "has outputs 'fe' (explicit part) and 'fi' (implicit part); this "
                    "one has a single output 'f'");
  ct_ode_shared sh;
  ct_ode_shared_get(&sh);
  ct_ode_run r = {ctx, m, p, NULL, NULL, 0, "", "", &sh, NULL};
  int rc = sh.result_init(ctx, m, n_tout + 1, res);
  r.work = rc < 0 ? NULL : ct_alloc(ctx, m->work * sizeof *r.work);
  r.jac_vals = rc < 0 ? NULL
                      : ct_alloc(ctx, (m->pattern->nnz ? m->pattern->nnz : 1) *
                                          sizeof *r.jac_vals);
  if (rc == CT_OK && (!r.work || !r.jac_vals)) rc = CT_ERR_NOMEM;
  if (rc == CT_OK) rc = solve_run(&r, o, y0, tout, n_tout, res);
  ct_free(ctx, r.work);
  ct_free(ctx, r.jac_vals);
  if (rc == CT_OK || CT_SOLVE_STOPPED(rc)) res->status = rc;
  return rc < 0 ? ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__) : CT_OK;
}
