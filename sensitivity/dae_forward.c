/* Forward sensitivities of DAE models (cotangent/dae.h) through IDAS: the
 * all-at-once sensitivity residual from one vector-mode AD JVP of F with
 * tangents (yS_j, ypS_j, e_j), initial sensitivities from the JVP of the
 * model's init function, attached to ct_dae_solve through its hooks. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <idas/idas.h>

#include "../solvers/dae_internal.h"
#include "cotangent/dae.h"

struct ct_dae_fsa {
  ct_context *ctx;
  const ct_dae *dae;
  size_t n, np, ns;
  size_t *params;
  ct_fun *sres;       /* JVP of F: ... d_y, d_yp, d_p -> d_F (ns * n) */
  long in[7];         /* t, y, yp, p, d_y, d_yp, d_p of sres (-1: absent) */
  ct_fun *sinit;      /* JVP of init wrt p: p, d_p -> d_y0[, d_yp0]; or NULL */
  long si_p, si_dp, so_y0, so_yp0;
  double *dp;         /* ns * np unit seeds e_{params[j]} */
  size_t work;
};

/* Checks the selection and records it (NULL: all parameters). */
static int select_params(ct_context *ctx, ct_dae_fsa *f, const size_t *params,
                         size_t n_params) {
  f->ns = params ? n_params : f->np;
  if (f->ns == 0) return CT_ERROR(ctx, CT_ERR_ARG, "no parameters selected");
  f->params = ct_alloc(ctx, f->ns * sizeof *f->params);
  f->dp = ct_calloc(ctx, f->ns * f->np, sizeof *f->dp);
  if (!f->params || !f->dp) return CT_ERR_NOMEM;
  for (size_t j = 0; j < f->ns; j++) {
    f->params[j] = params ? params[j] : j;
    if (f->params[j] >= f->np)
      return CT_ERROR(ctx, CT_ERR_ARG, "parameter index %zu out of range (the model "
                      "has %zu)", f->params[j], f->np);
    for (size_t i = 0; i < j; i++)
      if (f->params[i] == f->params[j])
        return CT_ERROR(ctx, CT_ERR_ARG, "parameter %zu selected twice", f->params[j]);
    f->dp[j * f->np + f->params[j]] = 1.0;
  }
  return CT_OK;
}

/* Builds the sensitivity residual JVP and the initial-sensitivity JVP. */
static int fsa_fill(ct_context *ctx, ct_dae_fsa *f, const size_t *params,
                    size_t n_params) {
  const ct_dae *m = f->dae;
  f->n = ct_dae_n_states(m);
  f->np = ct_dae_n_params(m);
  if (f->np == 0)
    return CT_ERROR(ctx, CT_ERR_ARG, "the DAE model has no parameters 'p'");
  CT_CHECK(ctx, select_params(ctx, f, params, n_params));
  const char *wrt[] = {"y", "yp", "p", NULL}, *outs[] = {"d_F", NULL};
  ct_fun *full = NULL;
  CT_CHECK(ctx, ct_fun_jvp(ctx, ct_dae_res_fun(m), (int)f->ns, wrt, &full));
  int rc = ct_fun_select_outputs(ctx, full, outs, &f->sres);
  ct_fun_free(full);
  CT_CHECK(ctx, rc);
  static const char *const names[7] = {"t", "y", "yp", "p", "d_y", "d_yp", "d_p"};
  for (int i = 0; i < 7; i++) f->in[i] = ct_fun_in_index(f->sres, names[i]);
  CT_CHECK(ctx, ct_dae_jit_fun(ctx, m, f->sres)); /* when ct_dae_jit ran */
  f->work = ct_fun_work_size(f->sres);
  long oy0, oyp0;
  const ct_fun *init = ct_dae_init_fun(m, &oy0, &oyp0);
  if (init && ct_fun_in_index(init, "p") >= 0) {
    const char *wrt_p[] = {"p", NULL};
    CT_CHECK(ctx, ct_fun_jvp(ctx, init, (int)f->ns, wrt_p, &f->sinit));
    CT_CHECK(ctx, ct_dae_jit_fun(ctx, m, f->sinit));
    f->si_p = ct_fun_in_index(f->sinit, "p");
    f->si_dp = ct_fun_in_index(f->sinit, "d_p");
    f->so_y0 = ct_fun_out_index(f->sinit, "d_y0");
    f->so_yp0 = ct_fun_out_index(f->sinit, "d_yp0");
    if (ct_fun_work_size(f->sinit) > f->work) f->work = ct_fun_work_size(f->sinit);
  }
  return CT_OK;
}

/* Builds a sensitivity problem (see dae.h); nothing kept on failure. */
int ct_dae_fsa_new(ct_context *ctx, const ct_dae *dae, const size_t *params,
                   size_t n_params, ct_dae_fsa **out) {
  if (!out) return CT_ERROR(ctx, CT_ERR_ARG, "ct_dae_fsa_new needs an output pointer");
  *out = NULL;
  if (!dae) return CT_ERROR(ctx, CT_ERR_ARG, "ct_dae_fsa_new needs a model");
  ct_dae_fsa *f = ct_calloc(ctx, 1, sizeof *f);
  if (!f) return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  f->ctx = ctx;
  f->dae = dae;
  int rc = fsa_fill(ctx, f, params, n_params);
  if (rc < 0) {
    ct_dae_fsa_free(f);
    return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  }
  *out = f;
  return CT_OK;
}

/* Frees the problem (not the model). NULL is a no-op. */
void ct_dae_fsa_free(ct_dae_fsa *f) {
  if (!f) return;
  ct_fun_free(f->sres);
  ct_fun_free(f->sinit);
  ct_free(f->ctx, f->params);
  ct_free(f->ctx, f->dp);
  ct_free(f->ctx, f);
}

size_t ct_dae_fsa_n_params(const ct_dae_fsa *f) { return f->ns; }

ct_dae_fsa_options ct_dae_fsa_default_options(void) {
  ct_dae_fsa_options o = {ct_dae_default_options(), 0, 1, NULL};
  return o;
}

/* ---- One solve ------------------------------------------------------------- */

/* The state of one sensitivity solve, reached from IDAS' callbacks through
 * the DAE run's hook data. */
typedef struct srun {
  ct_context *ctx;
  const ct_dae_fsa *f;
  const ct_dae_fsa_options *o;
  const double *p;
  size_t n_tout;
  ct_dae_fsa_result *res;
  N_Vector *yS, *ypS;
  double *dy, *dyp, *dF, *work, *pbar;
  double t_buf;
} srun;

/* The sensitivity residual of all parameters from one JVP evaluation. */
static int res_s(int ns, sunrealtype t, N_Vector y, N_Vector yp, N_Vector rr,
                 N_Vector *yS, N_Vector *ypS, N_Vector *rS, void *ud,
                 N_Vector t1, N_Vector t2, N_Vector t3) {
  (void)rr, (void)t1, (void)t2, (void)t3;
  srun *s = ct_dae_user_hook_data(ud);
  const ct_dae_fsa *f = s->f;
  size_t n = f->n;
  for (int j = 0; j < ns; j++) {
    memcpy(s->dy + (size_t)j * n, N_VGetArrayPointer(yS[j]), n * sizeof *s->dy);
    memcpy(s->dyp + (size_t)j * n, N_VGetArrayPointer(ypS[j]), n * sizeof *s->dyp);
  }
  s->t_buf = t;
  const double *vals[7] = {&s->t_buf, N_VGetArrayPointer(y), N_VGetArrayPointer(yp),
                           s->p, s->dy, s->dyp, f->dp};
  const double *in[7] = {0};
  for (int i = 0; i < 7; i++)
    if (f->in[i] >= 0) in[f->in[i]] = vals[i];
  double *out[1] = {s->dF};
  if (ct_fun_eval(s->ctx, f->sres, in, out, s->work) < 0) return -1;
  for (int j = 0; j < ns; j++) {
    double *r = N_VGetArrayPointer(rS[j]);
    memcpy(r, s->dF + (size_t)j * n, n * sizeof *r);
    for (size_t i = 0; i < n; i++)
      if (!isfinite(r[i])) {
        char cause[160];
        snprintf(cause, sizeof cause, "the sensitivity residual is %s in component %zu "
                 "of parameter %zu at t = %.6g", isnan(r[i]) ? "NaN" : "infinite", i,
                 f->params[j], t);
        ct_dae_user_cause(ud, cause);
        return 1;
      }
  }
  return 0;
}

/* Initial sensitivities: the JVP of init(p), or zero. */
static int initial_sens(srun *s) {
  const ct_dae_fsa *f = s->f;
  size_t n = f->n, ns = f->ns;
  memset(s->dy, 0, ns * n * sizeof *s->dy);
  memset(s->dyp, 0, ns * n * sizeof *s->dyp);
  if (f->sinit) {
    const double *in[2] = {0};
    in[f->si_p] = s->p;
    in[f->si_dp] = f->dp;
    double *out[4] = {0};
    if (f->so_y0 >= 0) out[f->so_y0] = s->dy;
    if (f->so_yp0 >= 0) out[f->so_yp0] = s->dyp;
    CT_CHECK(s->ctx, ct_fun_eval(s->ctx, f->sinit, in, out, s->work));
  }
  for (size_t j = 0; j < ns; j++) {
    memcpy(N_VGetArrayPointer(s->yS[j]), s->dy + j * n, n * sizeof *s->dy);
    memcpy(N_VGetArrayPointer(s->ypS[j]), s->dyp + j * n, n * sizeof *s->dyp);
  }
  return CT_OK;
}

/* Setup hook: sensitivity vectors, IDASensInit with res_s, tolerances,
 * error control and scales. */
static int setup_hook(ct_context *ctx, void *ud, void *mem, SUNContext sun,
                      N_Vector y, const ct_dae_options *o) {
  (void)sun, (void)o;
  srun *s = ud;
  const ct_dae_fsa *f = s->f;
  int ns = (int)f->ns;
  if (!(s->yS = N_VCloneVectorArray(ns, y)) || !(s->ypS = N_VCloneVectorArray(ns, y)))
    return CT_ERROR(ctx, CT_ERR_NOMEM, "N_VCloneVectorArray returned NULL");
  CT_CHECK(ctx, initial_sens(s));
  int ism = s->o->staggered ? IDA_STAGGERED : IDA_SIMULTANEOUS;
  int flag = IDASensInit(mem, ns, ism, res_s, s->yS, s->ypS);
  if (flag >= 0) flag = IDASensEEtolerances(mem);
  if (flag >= 0) flag = IDASetSensErrCon(mem, s->o->err_con ? SUNTRUE : SUNFALSE);
  for (size_t j = 0; j < f->ns; j++)
    s->pbar[j] = s->o->pbar ? s->o->pbar[j]
                            : (s->p[f->params[j]] != 0 ? fabs(s->p[f->params[j]]) : 1.0);
  if (flag >= 0) flag = IDASetSensParams(mem, NULL, s->pbar, NULL);
  if (flag < 0)
    return CT_ERROR(ctx, CT_ERR_EXTERNAL, "setting up IDAS sensitivities failed "
                    "with flag %d", flag);
  return CT_OK;
}

/* Output hook: the sensitivities at the output just stored (at t0 the
 * consistent ones when IDACalcIC ran). */
static int output_hook(ct_context *ctx, void *ud, void *mem, const ct_dae_result *r,
                       const ct_dae_options *o) {
  srun *s = ud;
  size_t k = r->n_out - 1, n = s->f->n, ns = s->f->ns;
  int flag = 0;
  if (k == 0) {
    if (o->calc_ic && s->n_tout > 1) flag = IDAGetSensConsistentIC(mem, s->yS, s->ypS);
  } else {
    double t = r->t[k];
    flag = IDAGetSensDky(mem, t, 0, s->yS);
    if (flag >= 0) flag = IDAGetSensDky(mem, t, 1, s->ypS);
  }
  if (flag < 0)
    return CT_ERROR(ctx, CT_ERR_EXTERNAL, "reading IDAS sensitivities failed with "
                    "flag %d", flag);
  for (size_t j = 0; j < ns; j++) {
    memcpy(s->res->s + (k * ns + j) * n, N_VGetArrayPointer(s->yS[j]), n * sizeof(double));
    memcpy(s->res->sp + (k * ns + j) * n, N_VGetArrayPointer(s->ypS[j]), n * sizeof(double));
  }
  return CT_OK;
}

/* Finish hook: the sensitivity statistics. */
static void finish_hook(void *ud, void *mem) {
  srun *s = ud;
  ct_dae_fsa_result *r = s->res;
  IDAGetSensNumResEvals(mem, &r->sens_res_evals);
  IDAGetNumResEvalsSens(mem, &r->res_evals_sens);
  IDAGetSensNumErrTestFails(mem, &r->sens_err_test_fails);
  IDAGetSensNumNonlinSolvIters(mem, &r->sens_nonlin_iters);
  IDAGetSensNumNonlinSolvConvFails(mem, &r->sens_nonlin_conv_fails);
}

/* Frees the result. NULL is a no-op. */
void ct_dae_fsa_result_free(ct_context *ctx, ct_dae_fsa_result *r) {
  if (!r) return;
  ct_dae_result_free(ctx, r->dae);
  ct_free(ctx, r->s);
  ct_free(ctx, r->sp);
  ct_free(ctx, r);
}

/* Integrates the model with sensitivities (see dae.h). */
int ct_dae_fsa_solve(ct_context *ctx, const ct_dae_fsa *f, const double *p,
                     const double *y0, const double *yp0, const double *tout,
                     size_t n_tout, const ct_dae_fsa_options *opts,
                     ct_dae_fsa_result **out) {
  if (!out) return CT_ERROR(ctx, CT_ERR_ARG, "ct_dae_fsa_solve needs an output pointer");
  *out = NULL;
  if (!f) return CT_ERROR(ctx, CT_ERR_ARG, "ct_dae_fsa_solve needs a problem");
  if (!p) return CT_ERROR(ctx, CT_ERR_ARG, "the model has %zu parameters: pass p", f->np);
  if (!tout || n_tout < 1)
    return CT_ERROR(ctx, CT_ERR_ARG, "ct_dae_fsa_solve needs at least the initial time");
  ct_dae_fsa_options o = opts ? *opts : ct_dae_fsa_default_options();
  for (size_t j = 0; o.pbar && j < f->ns; j++)
    if (!(o.pbar[j] > 0) || !isfinite(o.pbar[j]))
      return CT_ERROR(ctx, CT_ERR_ARG, "pbar[%zu] must be positive, got %g", j, o.pbar[j]);
  size_t n = f->n ? f->n : 1, block = (n_tout + 1) * f->ns * n;
  ct_dae_fsa_result *res = ct_calloc(ctx, 1, sizeof *res);
  srun s = {ctx, f, &o, p, n_tout, res, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0};
  int rc = res ? CT_OK : CT_ERR_NOMEM;
  if (rc == CT_OK) {
    res->n_params = f->ns;
    res->s = ct_calloc(ctx, block, sizeof *res->s);
    res->sp = ct_calloc(ctx, block, sizeof *res->sp);
    s.dy = ct_alloc(ctx, f->ns * n * sizeof *s.dy);
    s.dyp = ct_alloc(ctx, f->ns * n * sizeof *s.dyp);
    s.dF = ct_alloc(ctx, f->ns * n * sizeof *s.dF);
    s.work = ct_alloc(ctx, (f->work ? f->work : 1) * sizeof *s.work);
    s.pbar = ct_alloc(ctx, f->ns * sizeof *s.pbar);
    if (!res->s || !res->sp || !s.dy || !s.dyp || !s.dF || !s.work || !s.pbar)
      rc = CT_ERR_NOMEM;
  }
  if (rc == CT_OK) {
    ct_dae_hooks h = {setup_hook, output_hook, finish_hook, &s, NULL, NULL};
    rc = ct_dae_solve_hooked(ctx, f->dae, p, y0, yp0, tout, n_tout, &o.dae, &h, &res->dae);
  }
  if (s.yS) N_VDestroyVectorArray(s.yS, (int)f->ns);
  if (s.ypS) N_VDestroyVectorArray(s.ypS, (int)f->ns);
  ct_free(ctx, s.dy);
  ct_free(ctx, s.dyp);
  ct_free(ctx, s.dF);
  ct_free(ctx, s.work);
  ct_free(ctx, s.pbar);
  if (rc < 0 && rc != CT_ERR_SOLVER && rc != CT_ERR_INTERRUPTED) {
    ct_dae_fsa_result_free(ctx, res);
    return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  }
  *out = res;
  return rc < 0 ? ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__) : CT_OK;
}
