/* Forward sensitivities through CVODES' FSA: the sensitivity right-hand
 * side of all selected parameters from one vector-mode AD JVP of the
 * model's right-hand side, initial sensitivities from the JVP of y0(p),
 * attached to the ODE integration (solvers/ode.c) through its hooks. */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cvodes/cvodes.h>
#include <nvector/nvector_serial.h>
#include <sunnonlinsol/sunnonlinsol_fixedpoint.h>

#include "../solvers/ode_internal.h"
#include "cotangent/sensitivity.h"
#include "fsa_internal.h"

/* Where the sensitivity right-hand side comes from. */
typedef enum fsa_source {
  FSA_AD = 0,        /* JVPs of the model's AD functions */
  FSA_CALLBACKS = 1, /* a callback model's jvp (or Jacobian) and dfdp_v */
  FSA_CVODES_DQ = 2  /* CVODES' difference quotients of a callback model's f */
} fsa_source;

struct ct_fsa {
  ct_context *ctx;
  const ct_ode *ode; /* borrowed */
  fsa_source source;
  size_t n, np, ns;
  size_t *params;    /* ns indices into p */
  double *dp;        /* ns * np: direction j is e_{params[j]}, at [j*np, (j+1)*np) */
  ct_jvp_fun all;       /* rhs, ns directions in (y, p): output d_f (ns * n) */
  ct_jvp_fun one;       /* rhs, 1 direction (STAGGERED1); f NULL when ns == 1 */
  ct_jvp_fun y0;        /* y0(p), ns directions in p: output d_y0; f NULL: zero */
  size_t work;       /* doubles the largest of them needs */
};

/* ---- Building ------------------------------------------------------------------ */

/* The k-direction JVP of f reduced to `out` (see fsa_internal.h). */
int ct_fsa_build_jvp(ct_context *ctx, const ct_fun *f, int k, const char *const *wrt,
                     const char *out, ct_jvp_fun *j) {
  ct_fun *full = NULL;
  CT_CHECK(ctx, ct_fun_jvp(ctx, f, k, wrt, &full));
  const char *names[] = {out, NULL};
  int rc = ct_fun_select_outputs(ctx, full, names, &j->f);
  ct_fun_free(full);
  CT_CHECK(ctx, rc);
  j->t = ct_fun_in_index(j->f, "t");
  j->y = ct_fun_in_index(j->f, "y");
  j->p = ct_fun_in_index(j->f, "p");
  j->dy = ct_fun_in_index(j->f, "d_y");
  j->dp = ct_fun_in_index(j->f, "d_p");
  return CT_OK;
}

/* Checks the parameter selection against the model; `params` NULL is all. */
static int check_selection(ct_context *ctx, const ct_ode *ode, const size_t *params,
                           size_t n_params) {
  size_t np = ct_ode_n_params(ode);
  if (np == 0)
    return CT_ERROR(ctx, CT_ERR_ARG, "the model has no parameters (its right-hand "
                    "side has no input 'p'): there is nothing to differentiate "
                    "with respect to");
  if (!params) return CT_OK;
  if (n_params == 0)
    return CT_ERROR(ctx, CT_ERR_ARG, "no parameters selected (pass params NULL for all)");
  if (n_params > (size_t)INT_MAX)
    return CT_ERROR(ctx, CT_ERR_ARG, "too many parameters selected: %zu", n_params);
  for (size_t j = 0; j < n_params; j++) {
    if (params[j] >= np)
      return CT_ERROR(ctx, CT_ERR_ARG, "parameter index %zu (params[%zu]) is out of "
                      "range: the model has %zu parameters, 0 to %zu",
                      params[j], j, np, np - 1);
    for (size_t i = 0; i < j; i++)
      if (params[i] == params[j])
        return CT_ERROR(ctx, CT_ERR_ARG, "parameter %zu is selected twice "
                        "(params[%zu] and params[%zu])", params[j], i, j);
  }
  return CT_OK;
}

/* Doubles of workspace j needs (1 when absent). */
static size_t work_of(const ct_jvp_fun *j) { return j->f ? ct_fun_work_size(j->f) : 1; }

/* Fills a zeroed problem: selection, unit directions, JVPs. */
static int fsa_fill(ct_context *ctx, ct_fsa *s, const size_t *params) {
  const ct_ode *m = s->ode;
  s->params = ct_alloc(ctx, s->ns * sizeof *s->params);
  s->dp = ct_calloc(ctx, s->ns * s->np, sizeof *s->dp);
  if (!s->params || !s->dp) return CT_ERR_NOMEM;
  for (size_t j = 0; j < s->ns; j++) {
    s->params[j] = params ? params[j] : j;
    s->dp[j * s->np + s->params[j]] = 1.0;
  }
  s->work = 1;
  if (s->source != FSA_AD) return CT_OK; /* callbacks: nothing to build */
  const char *wrt_yp[] = {"y", "p", NULL}, *wrt_p[] = {"p", NULL};
  CT_CHECK(ctx, ct_fsa_build_jvp(ctx, m->rhs.f, (int)s->ns, wrt_yp, "d_f", &s->all));
  if (s->ns > 1)
    CT_CHECK(ctx, ct_fsa_build_jvp(ctx, m->rhs.f, 1, wrt_yp, "d_f", &s->one));
  if (m->y0.f && m->y0.p >= 0)
    CT_CHECK(ctx, ct_fsa_build_jvp(ctx, m->y0.f, (int)s->ns, wrt_p, "d_y0", &s->y0));
  CT_CHECK(ctx, ct_model_jit_fun(ctx, &m->jit, s->all.f)); /* when ct_ode_jit ran */
  CT_CHECK(ctx, ct_model_jit_fun(ctx, &m->jit, s->one.f));
  CT_CHECK(ctx, ct_model_jit_fun(ctx, &m->jit, s->y0.f));
  s->work = work_of(&s->all);
  if (work_of(&s->one) > s->work) s->work = work_of(&s->one);
  if (work_of(&s->y0) > s->work) s->work = work_of(&s->y0);
  return CT_OK;
}

/* Where a model's sensitivity right-hand side comes from: AD, the callbacks
 * (dfdp_v with jvp or a Jacobian), or CVODES' difference quotients when
 * allowed; CT_ERR_ARG naming the missing callback otherwise. */
static int pick_source(ct_context *ctx, const ct_ode *m, fsa_source *source) {
  *source = FSA_AD;
  if (!m->has_cb) return CT_OK;
  const ct_ode_callbacks *cb = &m->cb;
  int has_js = cb->jvp || cb->jac_dense || cb->jac_sparse;
  *source = FSA_CALLBACKS;
  if (cb->dfdp_v && has_js) return CT_OK;
  *source = FSA_CVODES_DQ;
  if (cb->allow_difference_quotients) {
    ct_context_log(ctx, CT_LOG_WARNING, "forward sensitivities: no %s callback: using "
                   "CVODES' difference quotients", cb->dfdp_v ? "jvp or Jacobian" : "dfdp_v");
    return CT_OK;
  }
  return CT_ERROR(ctx, CT_ERR_ARG, "forward sensitivities of a callback model need the %s "
                  "callback, which the model lacks (set allow_difference_quotients in "
                  "ct_ode_callbacks to use CVODES' difference quotients instead)",
                  !cb->dfdp_v ? "dfdp_v" : "jvp (or jac_dense or jac_sparse)");
}

/* Checks the selection, then builds the JVPs (see sensitivity.h). */
int ct_fsa_new(ct_context *ctx, const ct_ode *ode, const size_t *params,
               size_t n_params, ct_fsa **out) {
  *out = NULL;
  if (!ode) return CT_ERROR(ctx, CT_ERR_ARG, "forward sensitivities need a model (ode is NULL)");
  fsa_source source;
  CT_CHECK(ctx, pick_source(ctx, ode, &source));
  CT_CHECK(ctx, check_selection(ctx, ode, params, n_params));
  ct_fsa *s = ct_calloc(ctx, 1, sizeof *s);
  if (!s) return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  s->ctx = ctx;
  s->ode = ode;
  s->source = source;
  s->n = ct_ode_n_states(ode);
  s->np = ct_ode_n_params(ode);
  s->ns = params ? n_params : s->np;
  int rc = fsa_fill(ctx, s, params);
  if (rc < 0) {
    ct_fsa_free(s);
    return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  }
  *out = s;
  return CT_OK;
}

/* Frees the problem (not the model). NULL is a no-op. */
void ct_fsa_free(ct_fsa *s) {
  if (!s) return;
  ct_fun_free(s->all.f);
  ct_fun_free(s->one.f);
  ct_fun_free(s->y0.f);
  ct_free(s->ctx, s->params);
  ct_free(s->ctx, s->dp);
  ct_free(s->ctx, s);
}

/* The number of selected parameters. */
size_t ct_fsa_n_params(const ct_fsa *s) { return s->ns; }

/* SIZE_MAX for i out of range. */
size_t ct_fsa_param(const ct_fsa *s, size_t i) { return i < s->ns ? s->params[i] : SIZE_MAX; }

/* ---- Options ------------------------------------------------------------------ */

ct_fsa_options ct_fsa_default_options(void) {
  ct_fsa_options o = {ct_ode_default_options(), CT_FSA_SIMULTANEOUS, 1, NULL};
  return o;
}

/* Checks the options and p, and writes the scales: the caller's pbar, or
 * |p_j| (1 where p_j = 0). */
static int check_options(ct_context *ctx, const ct_fsa *s, const ct_fsa_options *o,
                         const double *p, double *pbar) {
  if ((unsigned)o->corrector > CT_FSA_STAGGERED1)
    return CT_ERROR(ctx, CT_ERR_ARG, "unknown sensitivity corrector %d (expected "
                    "CT_FSA_SIMULTANEOUS, CT_FSA_STAGGERED or CT_FSA_STAGGERED1)",
                    (int)o->corrector);
  if (!p)
    return CT_ERROR(ctx, CT_ERR_ARG, "the model has %zu parameters: pass p", s->np);
  for (size_t j = 0; j < s->ns; j++) {
    double pj = p[s->params[j]];
    if (!isfinite(pj))
      return CT_ERROR(ctx, CT_ERR_ARG, "parameter p[%zu] is not finite (%g)",
                      s->params[j], pj);
    if (o->pbar && (!(o->pbar[j] > 0) || !isfinite(o->pbar[j])))
      return CT_ERROR(ctx, CT_ERR_ARG, "pbar[%zu] (the scale of p[%zu]) must be "
                      "positive and finite, got %g", j, s->params[j], o->pbar[j]);
    pbar[j] = o->pbar ? o->pbar[j] : pj != 0 ? fabs(pj) : 1.0;
  }
  return CT_OK;
}

/* ---- One solve: CVODES callbacks and hooks --------------------------------------- */

/* The state of one solve (the hooks' ud, r->ext in callbacks). */
typedef struct fsa_run {
  const ct_fsa *fsa;
  const ct_fsa_options *o;
  const double *p;
  double *pbar;        /* ns */
  double *work;        /* fsa->work */
  double *dy, *df;     /* ns * n: sensitivities in, their derivatives out */
  double *jac;         /* callbacks without jvp: the Jacobian's nonzeros */
  double *dfdp;        /* callbacks: n values of (df/dp) e_j */
  double *p_dq;        /* CVODES' difference quotients: p, which CVODES perturbs */
  int *plist;          /* and the selected parameters' indices */
  double *s;           /* the result's sensitivities, (n_tout + 1) * ns * n */
  ct_fsa_stats *stats;
  int sens_on;         /* CVODES' sensitivities are initialized */
  double t_buf;
} fsa_run;

/* Evaluates a JVP at (t, y, p) with directions dy (may be NULL if the JVP
 * has no d_y) and dp, writing its one output. */
static int jvp_eval(ct_context *ctx, fsa_run *s, const ct_jvp_fun *j, double t,
                    const double *y, const double *dy, const double *dp, double *out) {
  const double *in[5] = {0};
  s->t_buf = t;
  if (j->t >= 0) in[j->t] = &s->t_buf;
  if (j->y >= 0) in[j->y] = y;
  if (j->p >= 0) in[j->p] = s->p;
  if (j->dy >= 0) in[j->dy] = dy;
  if (j->dp >= 0) in[j->dp] = dp;
  double *outs[1] = {out};
  return ct_fun_eval(ctx, j->f, in, outs, s->work);
}

/* 0 when the k sensitivity derivatives in v (k * n, the first for
 * sensitivity `first`) are finite; else records where in r->cause and
 * returns 1 (recoverable: CVODES retries with a smaller step). */
static int check_finite(ct_ode_run *r, const fsa_run *s, const double *v, size_t k,
                        size_t first, double t) {
  size_t n = s->fsa->n;
  for (size_t q = 0; q < k * n; q++)
    if (!isfinite(v[q])) {
      snprintf(r->cause, sizeof r->cause, "the sensitivity right-hand side is %s in "
               "component %zu of dy/dp[%zu] at t = %.6g", isnan(v[q]) ? "NaN" : "infinite",
               q % n, s->fsa->params[first + q / n], t);
      return 1;
    }
  return 0;
}

/* A JVP evaluation's non-zero status for CVODES: -1 (unrecoverable), with
 * r->cause saying so when a guard flipped (CT_RETRACE). */
static int eval_failed(ct_ode_run *r, int rc, double t) {
  if (rc == CT_RETRACE) ct_ode_retrace_cause(r, "sensitivity right-hand side", t);
  return -1;
}

/* ---- Callback models ---- */

/* The Jacobian's nonzeros (the model's pattern, CSC; column-major for
 * jac_dense) from the user's callback into s->jac. */
static int cb_jacobian(ct_ode_run *r, fsa_run *s, double t, const double *y) {
  const ct_ode *m = s->fsa->ode;
  const ct_ode_callbacks *cb = &m->cb;
  memset(s->jac, 0, m->pattern->nnz * sizeof *s->jac);
  if (cb->jac_dense)
    return ct_ode_user_status(r, "jac_dense", cb->jac_dense(t, y, r->p, s->jac,
                                                             cb->user_data), t);
  return ct_ode_user_status(r, "jac_sparse", cb->jac_sparse(t, y, r->p, s->jac,
                                                             cb->user_data), t);
}

/* out = (df/dy) v from the jvp callback, or from s->jac (filled by the
 * caller) when the model has none. */
static int cb_jv(ct_ode_run *r, fsa_run *s, double t, const double *y, const double *v,
                 double *out) {
  const ct_ode *m = s->fsa->ode;
  const ct_ode_callbacks *cb = &m->cb;
  if (cb->jvp)
    return ct_ode_user_status(r, "jvp", cb->jvp(t, y, r->p, v, out, cb->user_data), t);
  const ct_sparsity *pat = m->pattern;
  memset(out, 0, m->n * sizeof *out);
  for (size_t j = 0; j < pat->ncols; j++)
    for (size_t q = pat->colptr[j]; q < pat->colptr[j + 1]; q++)
      out[pat->rowind[q]] += s->jac[q] * v[j];
  return 0;
}

/* out = (df/dy) s_j + (df/dp) e_j for sensitivity j of a callback model
 * (s->jac filled first when the model has no jvp). */
static int cb_sens_one(ct_ode_run *r, fsa_run *s, double t, const double *y,
                       const double *sj, size_t j, double *out) {
  const ct_fsa *fsa = s->fsa;
  const ct_ode_callbacks *cb = &fsa->ode->cb;
  int rc = cb_jv(r, s, t, y, sj, out);
  if (rc) return rc;
  rc = ct_ode_user_status(r, "dfdp_v", cb->dfdp_v(t, y, r->p, fsa->dp + j * fsa->np,
                                                  s->dfdp, cb->user_data), t);
  if (rc) return rc;
  for (size_t i = 0; i < fsa->n; i++) out[i] += s->dfdp[i];
  return check_finite(r, s, out, 1, j, t);
}

/* CVSensRhsFn for callback models: each sensitivity from the callbacks. */
static int sens_rhs_cb_all(int ns, sunrealtype t, N_Vector y, N_Vector ydot, N_Vector *yS,
                           N_Vector *ySdot, void *ud, N_Vector tmp1, N_Vector tmp2) {
  (void)ydot, (void)tmp1, (void)tmp2;
  ct_ode_run *r = ud;
  fsa_run *s = r->ext;
  const double *yv = N_VGetArrayPointer(y);
  int rc = s->fsa->ode->cb.jvp ? 0 : cb_jacobian(r, s, t, yv);
  for (int j = 0; j < ns && !rc; j++)
    rc = cb_sens_one(r, s, t, yv, N_VGetArrayPointer(yS[j]), (size_t)j,
                     N_VGetArrayPointer(ySdot[j]));
  return rc;
}

/* CVSensRhs1Fn (STAGGERED1) for callback models: sensitivity `is` alone. */
static int sens_rhs_cb_one(int ns, sunrealtype t, N_Vector y, N_Vector ydot, int is,
                           N_Vector yS, N_Vector ySdot, void *ud, N_Vector tmp1,
                           N_Vector tmp2) {
  (void)ns, (void)ydot, (void)tmp1, (void)tmp2;
  ct_ode_run *r = ud;
  fsa_run *s = r->ext;
  const double *yv = N_VGetArrayPointer(y);
  int rc = s->fsa->ode->cb.jvp ? 0 : cb_jacobian(r, s, t, yv);
  if (rc) return rc;
  return cb_sens_one(r, s, t, yv, N_VGetArrayPointer(yS), (size_t)is,
                     N_VGetArrayPointer(ySdot));
}

/* ---- AD models ---- */

/* CVSensRhsFn: all sensitivities in one vector-mode JVP. */
static int sens_rhs_all(int ns, sunrealtype t, N_Vector y, N_Vector ydot, N_Vector *yS,
                        N_Vector *ySdot, void *ud, N_Vector tmp1, N_Vector tmp2) {
  (void)ydot, (void)tmp1, (void)tmp2;
  ct_ode_run *r = ud;
  fsa_run *s = r->ext;
  size_t n = s->fsa->n;
  for (int j = 0; j < ns; j++)
    memcpy(s->dy + (size_t)j * n, N_VGetArrayPointer(yS[j]), n * sizeof *s->dy);
  int rc = jvp_eval(r->ctx, s, &s->fsa->all, t, N_VGetArrayPointer(y), s->dy,
                    s->fsa->dp, s->df);
  if (rc) return eval_failed(r, rc, t);
  for (int j = 0; j < ns; j++)
    memcpy(N_VGetArrayPointer(ySdot[j]), s->df + (size_t)j * n, n * sizeof *s->df);
  return check_finite(r, s, s->df, (size_t)ns, 0, t);
}

/* CVSensRhs1Fn (STAGGERED1): sensitivity `is` alone, one-direction JVP. */
static int sens_rhs_one(int ns, sunrealtype t, N_Vector y, N_Vector ydot, int is,
                        N_Vector yS, N_Vector ySdot, void *ud, N_Vector tmp1,
                        N_Vector tmp2) {
  (void)ns, (void)ydot, (void)tmp1, (void)tmp2;
  ct_ode_run *r = ud;
  fsa_run *s = r->ext;
  const ct_jvp_fun *j = s->fsa->one.f ? &s->fsa->one : &s->fsa->all;
  double *out = N_VGetArrayPointer(ySdot);
  int rc = jvp_eval(r->ctx, s, j, t, N_VGetArrayPointer(y), N_VGetArrayPointer(yS),
                    s->fsa->dp + (size_t)is * s->fsa->np, out);
  if (rc) return eval_failed(r, rc, t);
  return check_finite(r, s, out, 1, (size_t)is, t);
}

/* Initial sensitivities into s->dy: dy0/dp from the JVP of y0(p), or 0.
 * Evaluated where solvers/ode.c evaluates y0 (t = 0 should y0 read t). */
static int initial_sensitivities(ct_ode_run *r, fsa_run *s) {
  const ct_fsa *fsa = s->fsa;
  size_t total = fsa->ns * fsa->n;
  if (!fsa->y0.f) {
    memset(s->dy, 0, total * sizeof *s->dy);
    return CT_OK;
  }
  int rc = jvp_eval(r->ctx, s, &fsa->y0, 0, NULL, NULL, fsa->dp, s->dy);
  if (rc == CT_RETRACE)
    return CT_ERROR(r->ctx, CT_ERR_ARG, "initial sensitivities: the initial-value "
                    "function took a different branch than when it was traced (a "
                    "guard flipped at this p); re-trace it at this p");
  CT_CHECK(r->ctx, rc);
  for (size_t q = 0; q < total; q++)
    if (!isfinite(s->dy[q]))
      return CT_ERROR(r->ctx, CT_ERR_NUMERIC, "the initial sensitivity dy0[%zu]/dp[%zu] "
                      "is %g", q % fsa->n, fsa->params[q / fsa->n], s->dy[q]);
  return CT_OK;
}

/* A fixed-point solver for the sensitivities (Adams), as each corrector
 * wants it. */
static int attach_fixed_point(ct_context *ctx, ct_cvode_set *c, ct_fsa_corrector k,
                              int ns) {
  switch (k) {
    case CT_FSA_SIMULTANEOUS:
      CT_SUN_NEW(ctx, c->NLS_sens, SUNNonlinSol_FixedPointSens(ns + 1, c->y, 0, c->sun));
      CT_SUN_CALL(ctx, CVodeSetNonlinearSolverSensSim(c->cv, c->NLS_sens));
      break;
    case CT_FSA_STAGGERED:
      CT_SUN_NEW(ctx, c->NLS_sens, SUNNonlinSol_FixedPointSens(ns, c->y, 0, c->sun));
      CT_SUN_CALL(ctx, CVodeSetNonlinearSolverSensStg(c->cv, c->NLS_sens));
      break;
    default:
      CT_SUN_NEW(ctx, c->NLS_sens, SUNNonlinSol_FixedPoint(c->y, 0, c->sun));
      CT_SUN_CALL(ctx, CVodeSetNonlinearSolverSensStg1(c->cv, c->NLS_sens));
      break;
  }
  return CT_OK;
}

/* Hook: CVODES' sensitivities on top of the set-up integrator. */
static int fsa_setup(ct_ode_run *r, ct_cvode_set *c, const ct_ode_options *o) {
  ct_context *ctx = r->ctx;
  fsa_run *s = r->ext;
  const ct_fsa *fsa = s->fsa;
  int ns = (int)fsa->ns;
  CT_CHECK(ctx, initial_sensitivities(r, s));
  CT_SUN_NEW(ctx, c->yS, N_VCloneVectorArray(ns, c->y));
  c->n_yS = ns;
  for (int j = 0; j < ns; j++)
    memcpy(N_VGetArrayPointer(c->yS[j]), s->dy + (size_t)j * fsa->n, fsa->n * sizeof *s->dy);
  ct_fsa_corrector k = s->o->corrector;
  int cb = fsa->source == FSA_CALLBACKS, dq = fsa->source == FSA_CVODES_DQ;
  CVSensRhs1Fn one = dq ? NULL : cb ? sens_rhs_cb_one : sens_rhs_one;
  CVSensRhsFn all = dq ? NULL : cb ? sens_rhs_cb_all : sens_rhs_all;
  if (k == CT_FSA_STAGGERED1)
    CT_SUN_CALL(ctx, CVodeSensInit1(c->cv, ns, CV_STAGGERED1, one, c->yS));
  else
    CT_SUN_CALL(ctx, CVodeSensInit(c->cv, ns, k == CT_FSA_STAGGERED ? CV_STAGGERED
                                                                    : CV_SIMULTANEOUS,
                                   all, c->yS));
  s->sens_on = 1;
  CT_SUN_CALL(ctx, CVodeSensEEtolerances(c->cv));
  CT_SUN_CALL(ctx, CVodeSetSensErrCon(c->cv, s->o->err_con ? SUNTRUE : SUNFALSE));
  /* Difference quotients perturb p[plist[j]] (the run's copy) in place. */
  CT_SUN_CALL(ctx, CVodeSetSensParams(c->cv, dq ? s->p_dq : NULL, s->pbar,
                                      dq ? s->plist : NULL));
  if (o->method == CT_ODE_ADAMS) CT_CHECK(ctx, attach_fixed_point(ctx, c, k, ns));
  return CT_OK;
}

/* Hook: the sensitivities at the output just stored. */
static int fsa_output(ct_ode_run *r, ct_cvode_set *c, const ct_ode_result *res) {
  fsa_run *s = r->ext;
  size_t n = s->fsa->n, k = res->n_out - 1;
  double *dst = s->s + k * s->fsa->ns * n;
  if (k > 0) /* the first is the initial value, before any step; with dense
                output, CVODES' last return may be a step past this output */
    CT_SUN_CALL(r->ctx, CVodeGetSensDky(c->cv, res->t[k], 0, c->yS));
  for (size_t j = 0; j < s->fsa->ns; j++)
    memcpy(dst + j * n, N_VGetArrayPointer(c->yS[j]), n * sizeof *dst);
  return CT_OK;
}

/* Hook: the sensitivity statistics, while CVODES is alive. */
static void fsa_finish(ct_ode_run *r, ct_cvode_set *c) {
  fsa_run *s = r->ext;
  ct_fsa_stats *st = s->stats;
  if (!c->cv || !s->sens_on) return;
  CVodeGetSensNumRhsEvals(c->cv, &st->sens_rhs_evals);
  CVodeGetNumRhsEvalsSens(c->cv, &st->rhs_evals_sens);
  CVodeGetSensNumErrTestFails(c->cv, &st->err_test_fails);
  CVodeGetSensNumLinSolvSetups(c->cv, &st->lin_setups);
  if (s->o->corrector != CT_FSA_SIMULTANEOUS) {
    CVodeGetSensNumNonlinSolvIters(c->cv, &st->nonlin_iters);
    CVodeGetSensNumNonlinSolvConvFails(c->cv, &st->nonlin_conv_fails);
  }
  if (st->stgr_nonlin_iters) CVodeGetStgrSensNumNonlinSolvIters(c->cv, st->stgr_nonlin_iters);
}

/* ---- Solving ------------------------------------------------------------------- */

/* (p_j s_ij) / y_i, 0 where y_i = 0, for the n_out outputs filled. */
static int normalise(ct_context *ctx, const ct_fsa *fsa, const double *p,
                     ct_fsa_result *res) {
  size_t n = fsa->n, ns = fsa->ns, n_out = res->ode.n_out, total = n_out * ns * n;
  res->s_norm = ct_alloc(ctx, (total ? total : 1) * sizeof *res->s_norm);
  if (!res->s_norm) return CT_ERR_NOMEM;
  for (size_t k = 0; k < n_out; k++)
    for (size_t j = 0; j < ns; j++)
      for (size_t i = 0; i < n; i++) {
        size_t q = (k * ns + j) * n + i;
        double y = res->ode.y[k * n + i];
        res->s_norm[q] = y == 0 ? 0.0 : p[fsa->params[j]] * res->s[q] / y;
      }
  return CT_OK;
}

/* A callback model's buffers: the Jacobian and (df/dp) e_j, or for
 * CVODES' difference quotients a copy of p it may perturb and plist. */
static int allocate_callbacks(ct_context *ctx, const ct_fsa *fsa, fsa_run *s) {
  const ct_ode *m = fsa->ode;
  if (fsa->source == FSA_CALLBACKS) {
    s->dfdp = ct_alloc(ctx, fsa->n * sizeof *s->dfdp);
    s->jac = ct_alloc(ctx, (m->pattern->nnz ? m->pattern->nnz : 1) * sizeof *s->jac);
    if (!s->dfdp || !s->jac) return CT_ERR_NOMEM;
  } else if (fsa->source == FSA_CVODES_DQ) {
    s->p_dq = ct_alloc(ctx, fsa->np * sizeof *s->p_dq);
    s->plist = ct_alloc(ctx, fsa->ns * sizeof *s->plist);
    if (!s->p_dq || !s->plist) return CT_ERR_NOMEM;
    memcpy(s->p_dq, s->p, fsa->np * sizeof *s->p_dq);
    for (size_t j = 0; j < fsa->ns; j++) s->plist[j] = (int)fsa->params[j];
  }
  return CT_OK;
}

/* The result's own arrays and the solve's buffers. */
static int allocate(ct_context *ctx, const ct_fsa *fsa, size_t n_tout, fsa_run *s,
                    ct_fsa_result *res) {
  size_t n = fsa->n ? fsa->n : 1, ns = fsa->ns;
  res->n_params = ns;
  res->params = ct_alloc(ctx, ns * sizeof *res->params);
  res->s = ct_alloc(ctx, (n_tout + 1) * ns * n * sizeof *res->s);
  s->work = ct_alloc(ctx, fsa->work * sizeof *s->work);
  s->dy = ct_alloc(ctx, ns * n * sizeof *s->dy);
  s->df = ct_alloc(ctx, ns * n * sizeof *s->df);
  if (!res->params || !res->s || !s->work || !s->dy || !s->df) return CT_ERR_NOMEM;
  CT_CHECK(ctx, allocate_callbacks(ctx, fsa, s));
  if (s->o->corrector == CT_FSA_STAGGERED1) {
    res->stats.stgr_nonlin_iters = ct_calloc(ctx, ns, sizeof *res->stats.stgr_nonlin_iters);
    if (!res->stats.stgr_nonlin_iters) return CT_ERR_NOMEM;
  }
  memcpy(res->params, fsa->params, ns * sizeof *res->params);
  s->s = res->s;
  s->stats = &res->stats;
  return CT_OK;
}

/* Checks the options, runs ct_ode_solve_into with the sensitivity hooks
 * and normalises (see sensitivity.h). */
int ct_fsa_solve(ct_context *ctx, const ct_fsa *fsa, const double *p,
                 const double *y0, const double *tout, size_t n_tout,
                 const ct_fsa_options *opts, ct_fsa_result **out) {
  *out = NULL;
  if (!fsa) return CT_ERROR(ctx, CT_ERR_ARG, "no sensitivity problem (fsa is NULL)");
  ct_fsa_options o = opts ? *opts : ct_fsa_default_options();
  double *pbar = ct_alloc(ctx, fsa->ns * sizeof *pbar);
  if (!pbar) return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  int rc = check_options(ctx, fsa, &o, p, pbar);
  ct_fsa_result *res = rc < 0 ? NULL : ct_calloc(ctx, 1, sizeof *res);
  if (rc == CT_OK && !res) rc = CT_ERR_NOMEM;
  fsa_run s = {.fsa = fsa, .o = &o, .p = p, .pbar = pbar};
  if (rc == CT_OK) rc = allocate(ctx, fsa, n_tout, &s, res);
  if (rc == CT_OK) {
    ct_ode_hooks hooks = {&s, fsa_setup, fsa_output, fsa_finish};
    rc = ct_ode_solve_into(ctx, fsa->ode, s.p_dq ? s.p_dq : p, y0, tout, n_tout, &o.ode,
                           &hooks, &res->ode);
  }
  ct_free(ctx, s.jac);
  ct_free(ctx, s.dfdp);
  ct_free(ctx, s.p_dq);
  ct_free(ctx, s.plist);
  ct_free(ctx, s.work);
  ct_free(ctx, s.dy);
  ct_free(ctx, s.df);
  ct_free(ctx, pbar);
  if (rc == CT_OK || CT_SOLVE_STOPPED(rc)) {
    int nrc = normalise(ctx, fsa, p, res);
    if (nrc < 0) rc = nrc;
  }
  if (rc < 0 && !CT_SOLVE_STOPPED(rc)) {
    ct_fsa_result_free(ctx, res);
    return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  }
  *out = res; /* a solver failure keeps what was computed */
  return rc < 0 ? ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__) : CT_OK;
}

/* Frees the result and everything in it. NULL is a no-op. */
void ct_fsa_result_free(ct_context *ctx, ct_fsa_result *res) {
  if (!res) return;
  ct_ode_result_clear(ctx, &res->ode);
  ct_free(ctx, res->params);
  ct_free(ctx, res->s);
  ct_free(ctx, res->s_norm);
  ct_free(ctx, res->stats.stgr_nonlin_iters);
  ct_free(ctx, res);
}
