/* Continuous adjoints through CVODES' adjoint sensitivity analysis: the
 * forward phase is the ODE integration of solvers/ode.c (CVodeF through its
 * advance hook, the integral term as a forward quadrature), the backward
 * phase runs in its finish hook while CVODES is alive. Adjoint right-hand
 * side and gradient quadrature from AD VJPs built once by ct_asa_new. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cvodes/cvodes.h>
#include <nvector/nvector_serial.h>
#include <sunlinsol/sunlinsol_dense.h>
#include <sunmatrix/sunmatrix_dense.h>

#include "../solvers/ode_internal.h"
#include "cotangent/adjoint.h"
#include "objective.h"

/* A model or objective function turned into its VJP (one seed, with
 * respect to its inputs y and p where present), with the positions of its
 * inputs and outputs; -1 where absent. */
typedef struct vjp_fun {
  ct_fun *f;
  long t, y, p, bar;   /* inputs; bar: the seed */
  long val, by, bp;    /* outputs: the value, bar_y, bar_p */
} vjp_fun;

struct ct_asa {
  ct_context *ctx;
  const ct_ode *ode; /* borrowed */
  size_t n, np;
  vjp_fun rhs;       /* f: outputs bar_y = J^T l, bar_p = f_p^T l */
  vjp_fun g;         /* g: outputs g, bar_y, bar_p; f NULL without g */
  vjp_fun phi;       /* phi: outputs phi, bar_y, bar_p; f NULL without phi */
  vjp_fun h;         /* h: outputs h, bar_y, bar_p; f NULL without h */
  vjp_fun y0;        /* y0(p): output bar_p; f NULL when absent */
  size_t work;       /* doubles the largest evaluation needs */
};

/* ---- Building ------------------------------------------------------------------ */

/* Checks that the objective term `f` has output `out` of size 1 and only
 * inputs t (1), y (n), p (np). */
int ct_objective_check(ct_context *ctx, const ct_fun *f, const char *what,
                       const char *out, size_t n, size_t np) {
  long o = ct_fun_out_index(f, out);
  if (o < 0)
    return CT_ERROR(ctx, CT_ERR_ARG, "the %s has no output '%s'", what, out);
  if (ct_fun_out_size(f, (size_t)o) != 1)
    return CT_ERROR(ctx, CT_ERR_ARG, "output '%s' of the %s has %zu components, "
                    "expected 1", out, what, ct_fun_out_size(f, (size_t)o));
  for (size_t i = 0; i < ct_fun_n_in(f); i++) {
    const char *name = ct_fun_in_name(f, i);
    size_t want = !strcmp(name, "t") ? 1 : !strcmp(name, "y") ? n
                : !strcmp(name, "p") ? np : 0;
    if (!want && strcmp(name, "p"))
      return CT_ERROR(ctx, CT_ERR_ARG, "input '%s' of the %s is not one of t, y, p",
                      name, what);
    if (ct_fun_in_size(f, i) != want)
      return CT_ERROR(ctx, CT_ERR_ARG, "input '%s' of the %s has %zu components, "
                      "expected %zu", name, what, ct_fun_in_size(f, i), want);
  }
  return CT_OK;
}

/* The one-seed VJP of f with respect to its inputs y and p (those it has),
 * reduced to output `out` (when keep_value) and the input adjoints. */
static int build_vjp(ct_context *ctx, const ct_fun *f, const char *out, int keep_value,
                     vjp_fun *v) {
  const char *wrt[3] = {NULL, NULL, NULL}, *names[4] = {NULL, NULL, NULL, NULL};
  size_t nw = 0, nn = 0;
  if (keep_value) names[nn++] = out;
  if (ct_fun_in_index(f, "y") >= 0) wrt[nw++] = "y", names[nn++] = "bar_y";
  if (ct_fun_in_index(f, "p") >= 0) wrt[nw++] = "p", names[nn++] = "bar_p";
  const char *only[] = {out, NULL};
  if (nw == 0) { /* depends on t alone: no adjoints */
    CT_CHECK(ctx, ct_fun_select_outputs(ctx, f, only, &v->f));
  } else { /* f reduced to `out` first: one seed, whatever else f computes */
    ct_fun *single = NULL, *full = NULL;
    CT_CHECK(ctx, ct_fun_select_outputs(ctx, f, only, &single));
    int rc = ct_fun_vjp(ctx, single, 1, wrt, &full);
    ct_fun_free(single);
    CT_CHECK(ctx, rc);
    rc = ct_fun_select_outputs(ctx, full, names, &v->f);
    ct_fun_free(full);
    CT_CHECK(ctx, rc);
  }
  char bar[64];
  snprintf(bar, sizeof bar, "bar_%s", out);
  v->t = ct_fun_in_index(v->f, "t");
  v->y = ct_fun_in_index(v->f, "y");
  v->p = ct_fun_in_index(v->f, "p");
  v->bar = ct_fun_in_index(v->f, bar);
  v->val = ct_fun_out_index(v->f, out);
  v->by = ct_fun_out_index(v->f, "bar_y");
  v->bp = ct_fun_out_index(v->f, "bar_p");
  return CT_OK;
}

/* Doubles of workspace v needs (1 when absent). */
static size_t work_of(const ct_fun *f) { return f ? ct_fun_work_size(f) : 1; }

/* Fills a zeroed problem: checks the objective, builds the VJPs. */
static int asa_fill(ct_context *ctx, ct_asa *a, const ct_fun *g, const ct_fun *phi,
                    const ct_fun *h) {
  const ct_ode *m = a->ode;
  if (g) CT_CHECK(ctx, ct_objective_check(ctx, g, "integral objective g", "g", a->n, a->np));
  if (phi)
    CT_CHECK(ctx, ct_objective_check(ctx, phi, "final-time objective phi", "phi", a->n, a->np));
  if (h) CT_CHECK(ctx, ct_objective_check(ctx, h, "observation objective h", "h", a->n, a->np));
  CT_CHECK(ctx, build_vjp(ctx, m->rhs.f, "f", 0, &a->rhs));
  if (g) CT_CHECK(ctx, build_vjp(ctx, g, "g", 1, &a->g));
  if (phi) CT_CHECK(ctx, build_vjp(ctx, phi, "phi", 1, &a->phi));
  if (h) CT_CHECK(ctx, build_vjp(ctx, h, "h", 1, &a->h));
  if (m->y0.f && m->y0.p >= 0) CT_CHECK(ctx, build_vjp(ctx, m->y0.f, "y0", 0, &a->y0));
  const ct_fun *all[] = {a->rhs.f, a->g.f, a->phi.f, a->h.f, a->y0.f, m->jac.f};
  a->work = 1;
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    if (work_of(all[i]) > a->work) a->work = work_of(all[i]);
  return CT_OK;
}

/* Without observation terms (see adjoint.h). */
int ct_asa_new(ct_context *ctx, const ct_ode *ode, const ct_fun *g,
               const ct_fun *phi, ct_asa **out) {
  return ct_asa_new_obs(ctx, ode, g, phi, NULL, out);
}

/* Checks the model and objective, then builds the VJPs (see adjoint.h). */
int ct_asa_new_obs(ct_context *ctx, const ct_ode *ode, const ct_fun *g,
                   const ct_fun *phi, const ct_fun *h, ct_asa **out) {
  *out = NULL;
  if (!ode) return CT_ERROR(ctx, CT_ERR_ARG, "an adjoint problem needs a model (ode is NULL)");
  CT_CHECK(ctx, ct_ode_require_ad(ctx, ode, "adjoints", "vjp and dfdp_t_w"));
  if (!g && !phi && !h)
    return CT_ERROR(ctx, CT_ERR_ARG, "an adjoint problem needs an objective: pass g "
                    "(integral term), phi (final-time term), h (observation term) "
                    "or several");
  if (ct_ode_n_roots(ode))
    return CT_ERROR(ctx, CT_ERR_ARG, "adjoints of models with root functions are not "
                    "supported (the model has %zu)", ct_ode_n_roots(ode));
  ct_asa *a = ct_calloc(ctx, 1, sizeof *a);
  if (!a) return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  a->ctx = ctx;
  a->ode = ode;
  a->n = ct_ode_n_states(ode);
  a->np = ct_ode_n_params(ode);
  int rc = asa_fill(ctx, a, g, phi, h);
  if (rc < 0) {
    ct_asa_free(a);
    return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  }
  *out = a;
  return CT_OK;
}

/* Frees the problem (not the model). NULL is a no-op. */
void ct_asa_free(ct_asa *a) {
  if (!a) return;
  ct_fun_free(a->rhs.f);
  ct_fun_free(a->g.f);
  ct_fun_free(a->phi.f);
  ct_fun_free(a->h.f);
  ct_fun_free(a->y0.f);
  ct_free(a->ctx, a);
}

/* ---- Options ------------------------------------------------------------------ */

ct_asa_options ct_asa_default_options(void) {
  ct_asa_options o = {ct_ode_default_options(), 100, CT_ASA_HERMITE, 1e-6, 1e-8,
                      1e-6, 1e-6, 1, 0, NULL, 0};
  return o;
}

/* Positive and finite. */
static int positive(double x) { return x > 0 && isfinite(x); }

/* Checks what the ODE's own check does not: the adjoint options, the time
 * span and p. */
static int check_options(ct_context *ctx, const ct_asa *a, const ct_asa_options *o,
                         const double *p, double t0, double T) {
  if (o->checkpoint_steps < 1)
    return CT_ERROR(ctx, CT_ERR_ARG, "checkpoint_steps must be positive, got %ld",
                    o->checkpoint_steps);
  if (o->interp != CT_ASA_HERMITE && o->interp != CT_ASA_POLYNOMIAL)
    return CT_ERROR(ctx, CT_ERR_ARG, "unknown interpolation %d (expected "
                    "CT_ASA_HERMITE or CT_ASA_POLYNOMIAL)", (int)o->interp);
  if (!positive(o->rtol_b) || !positive(o->atol_b))
    return CT_ERROR(ctx, CT_ERR_ARG, "the backward tolerances must be positive, got "
                    "rtol_b %g, atol_b %g", o->rtol_b, o->atol_b);
  if (!positive(o->rtol_q) || !positive(o->atol_q))
    return CT_ERROR(ctx, CT_ERR_ARG, "the quadrature tolerances must be positive, got "
                    "rtol_q %g, atol_q %g", o->rtol_q, o->atol_q);
  if (!isfinite(t0) || !isfinite(T) || !(T > t0))
    return CT_ERROR(ctx, CT_ERR_ARG, "the time span must be finite with T > t0, got "
                    "t0 = %g, T = %g", t0, T);
  if (a->np && !p)
    return CT_ERROR(ctx, CT_ERR_ARG, "the model has %zu parameters: pass p", a->np);
  if (o->n_obs && !a->h.f)
    return CT_ERROR(ctx, CT_ERR_ARG, "%zu observation times but no observation "
                    "objective h (build the problem with ct_asa_new_obs)", o->n_obs);
  if (o->n_obs && !o->t_obs)
    return CT_ERROR(ctx, CT_ERR_ARG, "n_obs is %zu: pass t_obs", o->n_obs);
  for (size_t k = 0; k < o->n_obs; k++) {
    double tk = o->t_obs[k];
    if (!isfinite(tk) || !(tk > t0) || !(tk <= T) || (k && !(tk > o->t_obs[k - 1])))
      return CT_ERROR(ctx, CT_ERR_ARG, "observation times must be increasing inside "
                      "(t0, T] = (%g, %g], got t_obs[%zu] = %g", t0, T, k, tk);
  }
  return CT_OK;
}

/* ---- One solve: callbacks and hooks ----------------------------------------------- */

/* The state of one solve (the hooks' ud, r->ext in callbacks). */
typedef struct asa_run {
  const ct_asa *a;
  const ct_asa_options *o;
  ct_asa_result *res;
  double t0, T;
  double *work;       /* a->work */
  double *vy, *vp;    /* n, np: VJP outputs */
  double *phi_p;      /* np: dphi/dp */
  double *obs_p;      /* np: Σ_k dh/dp(t_k) */
  size_t n_tout;      /* forward output times: t0, the t_k, T */
  double t_buf, one;
  int which;          /* the backward problem */
  int forward_done;   /* y(T) reached */
  int rc;             /* the backward phase's status */
} asa_run;

/* Evaluates v at (t, y, p) with seed `bar` (may be NULL when v has none),
 * writing the value, bar_y and bar_p where asked (NULL: skipped). */
static int vjp_eval(ct_context *ctx, asa_run *s, const vjp_fun *v, double t,
                    const double *y, const double *p, const double *bar, double *val,
                    double *by, double *bp) {
  const double *in[4] = {0};
  double *out[3] = {0};
  s->t_buf = t;
  if (v->t >= 0) in[v->t] = &s->t_buf;
  if (v->y >= 0) in[v->y] = y;
  if (v->p >= 0) in[v->p] = p;
  if (v->bar >= 0) in[v->bar] = bar;
  if (v->val >= 0) out[v->val] = val;
  if (v->by >= 0) out[v->by] = by;
  if (v->bp >= 0) out[v->bp] = bp;
  return ct_fun_eval(ctx, v->f, in, out, s->work);
}

/* 0 when v (k numbers) is finite; else records the cause and returns 1
 * (recoverable: CVODES retries with a smaller step). */
static int check_finite(ct_ode_run *r, const char *what, const double *v, size_t k,
                        double t) {
  for (size_t i = 0; i < k; i++)
    if (!isfinite(v[i])) {
      snprintf(r->cause, sizeof r->cause, "the %s is %s in component %zu at t = %.6g",
               what, isnan(v[i]) ? "NaN" : "infinite", i, t);
      return 1;
    }
  return 0;
}

/* CVQuadRhsFn of the forward phase: the integrand g. */
static int quad_cb(sunrealtype t, N_Vector y, N_Vector qdot, void *ud) {
  ct_ode_run *r = ud;
  asa_run *s = r->ext;
  double *out = N_VGetArrayPointer(qdot);
  if (vjp_eval(r->ctx, s, &s->a->g, t, N_VGetArrayPointer(y), r->p, &s->one, out,
               NULL, NULL) < 0)
    return -1;
  return check_finite(r, "integrand g", out, 1, t);
}

/* CVRhsFnB: lambda' = -(J^T lambda + (dg/dy)^T). */
static int rhs_b_cb(sunrealtype t, N_Vector y, N_Vector yB, N_Vector yBdot, void *ud) {
  ct_ode_run *r = ud;
  asa_run *s = r->ext;
  const ct_asa *a = s->a;
  const double *yv = N_VGetArrayPointer(y);
  double *out = N_VGetArrayPointer(yBdot);
  if (vjp_eval(r->ctx, s, &a->rhs, t, yv, r->p, N_VGetArrayPointer(yB), NULL, out,
               NULL) < 0)
    return -1;
  if (a->g.f && a->g.by >= 0) {
    if (vjp_eval(r->ctx, s, &a->g, t, yv, r->p, &s->one, NULL, s->vy, NULL) < 0)
      return -1;
    for (size_t i = 0; i < a->n; i++) out[i] = -(out[i] + s->vy[i]);
  } else {
    for (size_t i = 0; i < a->n; i++) out[i] = -out[i];
  }
  return check_finite(r, "adjoint right-hand side", out, a->n, t);
}

/* CVQuadRhsFnB: lambda^T df/dp + dg/dp. */
static int quad_b_cb(sunrealtype t, N_Vector y, N_Vector yB, N_Vector qBdot, void *ud) {
  ct_ode_run *r = ud;
  asa_run *s = r->ext;
  const ct_asa *a = s->a;
  const double *yv = N_VGetArrayPointer(y);
  double *out = N_VGetArrayPointer(qBdot);
  if (a->rhs.bp >= 0) {
    if (vjp_eval(r->ctx, s, &a->rhs, t, yv, r->p, N_VGetArrayPointer(yB), NULL, NULL,
                 out) < 0)
      return -1;
  } else {
    memset(out, 0, a->np * sizeof *out);
  }
  if (a->g.f && a->g.bp >= 0) {
    if (vjp_eval(r->ctx, s, &a->g, t, yv, r->p, &s->one, NULL, NULL, s->vp) < 0)
      return -1;
    for (size_t j = 0; j < a->np; j++) out[j] += s->vp[j];
  }
  return check_finite(r, "gradient quadrature integrand", out, a->np, t);
}

/* CVLsJacFnB: the dense matrix -J^T from the model's sparse AD Jacobian. */
static int jac_b_cb(sunrealtype t, N_Vector y, N_Vector yB, N_Vector fyB, SUNMatrix JB,
                    void *ud, N_Vector t1, N_Vector t2, N_Vector t3) {
  (void)yB, (void)fyB, (void)t1, (void)t2, (void)t3;
  ct_ode_run *r = ud;
  asa_run *s = r->ext;
  const ct_ode *m = r->m;
  const ct_sparsity *sp = m->pattern;
  const double *in[3] = {0};
  double *out[1] = {r->jac_vals};
  s->t_buf = t;
  if (m->jac.t >= 0) in[m->jac.t] = &s->t_buf;
  if (m->jac.y >= 0) in[m->jac.y] = N_VGetArrayPointer(y);
  if (m->jac.p >= 0) in[m->jac.p] = r->p;
  if (ct_fun_eval(r->ctx, m->jac.f, in, out, s->work) < 0) return -1;
  if (check_finite(r, "Jacobian", r->jac_vals, sp->nnz, t)) return 1;
  SUNMatZero(JB);
  for (size_t j = 0; j < sp->ncols; j++)
    for (size_t q = sp->colptr[j]; q < sp->colptr[j + 1]; q++)
      SM_ELEMENT_D(JB, (sunindextype)j, (sunindextype)sp->rowind[q]) = -r->jac_vals[q];
  return 0;
}

/* Keeps SUNDIALS' message of the backward integrator for the report. */
static void sundials_error_b(int code, const char *module, const char *function,
                             char *msg, void *ud) {
  ct_ode_run *r = ud;
  snprintf(r->sundials, sizeof r->sundials, "%s %s (%d): %s", module, function, code,
           msg);
}

/* Advance hook: CVodeF, which records checkpoints. */
static int advance_f(ct_ode_run *r, ct_cvode_set *c, double tout, double *t) {
  asa_run *s = r->ext;
  int ncheck = 0;
  int flag = CVodeF(c->cv, tout, c->y, t, CV_NORMAL, &ncheck);
  if (flag >= 0) s->res->n_checkpoints = ncheck;
  return flag;
}

/* Setup hook: the forward quadrature of g and CVODES' adjoint memory. */
static int asa_setup(ct_ode_run *r, ct_cvode_set *c, const ct_ode_options *o) {
  (void)o;
  ct_context *ctx = r->ctx;
  asa_run *s = r->ext;
  if (s->a->g.f) {
    CT_SUN_NEW(ctx, c->ext_v[0], N_VNew_Serial(1, c->sun));
    N_VConst(0.0, c->ext_v[0]);
    CT_SUN_CALL(ctx, CVodeQuadInit(c->cv, quad_cb, c->ext_v[0]));
    CT_SUN_CALL(ctx, CVodeQuadSStolerances(c->cv, s->o->rtol_q, s->o->atol_q));
    CT_SUN_CALL(ctx, CVodeSetQuadErrCon(c->cv, s->o->quad_err_con ? SUNTRUE : SUNFALSE));
  }
  CT_SUN_CALL(ctx, CVodeAdjInit(c->cv, s->o->checkpoint_steps,
                                s->o->interp == CT_ASA_POLYNOMIAL ? CV_POLYNOMIAL
                                                                  : CV_HERMITE));
  c->advance = advance_f;
  return CT_OK;
}

/* Output hook: notes that y(T) was reached (the last output). */
static int asa_output(ct_ode_run *r, ct_cvode_set *c, const ct_ode_result *res) {
  (void)c;
  asa_run *s = r->ext;
  if (res->n_out == s->n_tout) s->forward_done = 1;
  return CT_OK;
}

/* The objective's value at the end of the forward phase, and lambda(T),
 * dphi/dp from the final-time term. */
static int objective_at_end(ct_ode_run *r, ct_cvode_set *c, asa_run *s, double *lambda) {
  const ct_asa *a = s->a;
  ct_asa_result *res = s->res;
  memset(lambda, 0, a->n * sizeof *lambda);
  if (a->g.f) {
    double t;
    CT_SUN_CALL(r->ctx, CVodeGetQuad(c->cv, &t, c->ext_v[0]));
    res->integral = N_VGetArrayPointer(c->ext_v[0])[0];
    CVodeGetQuadNumRhsEvals(c->cv, &res->quad_evals);
  }
  if (a->phi.f) {
    CT_CHECK(r->ctx, vjp_eval(r->ctx, s, &a->phi, s->T, N_VGetArrayPointer(c->y), r->p,
                              &s->one, &res->final, a->phi.by >= 0 ? lambda : NULL,
                              a->phi.bp >= 0 ? s->phi_p : NULL));
  }
  for (size_t k = 0; k < s->o->n_obs; k++) { /* y(t_k): output k + 1 */
    double hk = 0;
    CT_CHECK(r->ctx, vjp_eval(r->ctx, s, &a->h, s->o->t_obs[k],
                              res->ode.y + (k + 1) * a->n, r->p, &s->one, &hk, NULL,
                              a->h.bp >= 0 ? s->vp : NULL));
    res->observed += hk;
    if (a->h.bp >= 0)
      for (size_t j = 0; j < a->np; j++) s->obs_p[j] += s->vp[j];
  }
  res->value = res->integral + res->final + res->observed;
  return CT_OK;
}

/* Adds the jump (dh/dy(t_k, y(t_k), p))^T of observation k to lambda. */
static int add_jump(ct_ode_run *r, asa_run *s, size_t k, double *lambda) {
  const ct_asa *a = s->a;
  if (a->h.by < 0) return CT_OK;
  CT_CHECK(r->ctx, vjp_eval(r->ctx, s, &a->h, s->o->t_obs[k],
                            s->res->ode.y + (k + 1) * a->n, r->p, &s->one, NULL, s->vy,
                            NULL));
  for (size_t i = 0; i < a->n; i++) lambda[i] += s->vy[i];
  return CT_OK;
}

/* The backward problem: adjoint states, their dense linear solver, the
 * gradient quadrature. */
static int backward_setup(ct_ode_run *r, ct_cvode_set *c, asa_run *s) {
  ct_context *ctx = r->ctx;
  const ct_asa_options *o = s->o;
  sunindextype n = (sunindextype)s->a->n;
  void *cv = c->cv;
  CT_SUN_CALL(ctx, CVodeCreateB(cv, CV_BDF, &s->which));
  CVodeSetErrHandlerFn(CVodeGetAdjCVodeBmem(cv, s->which), sundials_error_b, r);
  CT_SUN_CALL(ctx, CVodeInitB(cv, s->which, rhs_b_cb, s->T, c->ext_v[1]));
  CT_SUN_CALL(ctx, CVodeSStolerancesB(cv, s->which, o->rtol_b, o->atol_b));
  CT_SUN_CALL(ctx, CVodeSetUserDataB(cv, s->which, r));
  if (o->max_steps_b) CT_SUN_CALL(ctx, CVodeSetMaxNumStepsB(cv, s->which, o->max_steps_b));
  CT_SUN_NEW(ctx, c->A_b, SUNDenseMatrix(n, n, c->sun));
  CT_SUN_NEW(ctx, c->LS_b, SUNLinSol_Dense(c->ext_v[1], c->A_b, c->sun));
  CT_SUN_CALL(ctx, CVodeSetLinearSolverB(cv, s->which, c->LS_b, c->A_b));
  CT_SUN_CALL(ctx, CVodeSetJacFnB(cv, s->which, jac_b_cb));
  if (s->a->np) {
    CT_SUN_CALL(ctx, CVodeQuadInitB(cv, s->which, quad_b_cb, c->ext_v[2]));
    CT_SUN_CALL(ctx, CVodeSetQuadErrConB(cv, s->which,
                                         o->quad_err_con ? SUNTRUE : SUNFALSE));
    CT_SUN_CALL(ctx, CVodeQuadSStolerancesB(cv, s->which, o->rtol_q, o->atol_q));
  }
  return CT_OK;
}

/* Adds the backward statistics of one interval (CVodeReInitB resets
 * CVODES' counters) to the result's. */
static void collect_stats_b(void *cvb, ct_asa_result *res) {
  ct_ode_stats *st = &res->stats_b, one = {0};
  long nq = 0;
  CVodeGetNumSteps(cvb, &one.steps);
  CVodeGetNumRhsEvals(cvb, &one.rhs_evals);
  CVodeGetNumLinSolvSetups(cvb, &one.lin_setups);
  CVodeGetNumErrTestFails(cvb, &one.err_test_fails);
  CVodeGetNumNonlinSolvIters(cvb, &one.nonlin_iters);
  CVodeGetNumNonlinSolvConvFails(cvb, &one.nonlin_conv_fails);
  CVodeGetNumJacEvals(cvb, &one.jac_evals);
  CVodeGetLastStep(cvb, &st->last_step);
  CVodeGetLastOrder(cvb, &st->last_order);
  CVodeGetQuadNumRhsEvals(cvb, &nq);
  st->steps += one.steps;
  st->rhs_evals += one.rhs_evals;
  st->lin_setups += one.lin_setups;
  st->err_test_fails += one.err_test_fails;
  st->nonlin_iters += one.nonlin_iters;
  st->nonlin_conv_fails += one.nonlin_conv_fails;
  st->jac_evals += one.jac_evals;
  res->quad_evals_b += nq;
}

/* The gradient from lambda(t0) and the quadrature: dJ/dy0 = lambda(t0),
 * dJ/dp = -qB(t0) + dphi/dp + Σ_k dh/dp + (dy0/dp)^T lambda(t0). */
static int gradient(ct_ode_run *r, asa_run *s, const double *lambda0, const double *qB) {
  const ct_asa *a = s->a;
  ct_asa_result *res = s->res;
  memcpy(res->dJdy0, lambda0, a->n * sizeof *lambda0);
  for (size_t j = 0; j < a->np; j++) res->dJdp[j] = -qB[j] + s->phi_p[j] + s->obs_p[j];
  if (a->y0.f) { /* evaluated where solvers/ode.c evaluates y0: t = 0 */
    CT_CHECK(r->ctx, vjp_eval(r->ctx, s, &a->y0, 0, NULL, r->p, lambda0, NULL, NULL,
                              s->vp));
    for (size_t j = 0; j < a->np; j++) res->dJdp[j] += s->vp[j];
  }
  res->backward_done = 1;
  return CT_OK;
}

/* Integrates the backward problem to tout, then reads lambda and qB there
 * into c->ext_v[1], c->ext_v[2]; a failure is CT_ERR_SOLVER with the
 * message in the result. */
static int backward_to(ct_ode_run *r, ct_cvode_set *c, asa_run *s, double tout) {
  ct_context *ctx = r->ctx;
  ct_asa_result *res = s->res;
  r->cause[0] = r->sundials[0] = '\0';
  int flag = CVodeB(c->cv, tout, CV_NORMAL);
  void *cvb = CVodeGetAdjCVodeBmem(c->cv, s->which);
  collect_stats_b(cvb, res);
  if (flag < 0) {
    double tb = s->T;
    CVodeGetCurrentTime(cvb, &tb);
    if (snprintf(res->message, sizeof res->message, "backward phase: t = %.6g: %s "
                 "(CVodeB flag %d)%s%s", tb,
                 *r->cause ? r->cause : "the adjoint integration failed", flag,
                 *r->sundials ? "; " : "", r->sundials) < 0)
      res->message[0] = '\0';
    return CT_ERROR(ctx, CT_ERR_SOLVER, "%s", res->message);
  }
  double t;
  CT_SUN_CALL(ctx, CVodeGetB(c->cv, s->which, &t, c->ext_v[1]));
  if (s->a->np) CT_SUN_CALL(ctx, CVodeGetQuadB(c->cv, s->which, &t, c->ext_v[2]));
  return CT_OK;
}

/* The backward phase, after a successful forward phase: from T to t0,
 * restarted at every observation time inside (t0, T) with its jump. */
static int backward(ct_ode_run *r, ct_cvode_set *c, asa_run *s) {
  ct_context *ctx = r->ctx;
  size_t n = s->a->n, np = s->a->np, m = s->o->n_obs;
  CT_SUN_NEW(ctx, c->ext_v[1], N_VNew_Serial((sunindextype)n, c->sun));
  CT_SUN_NEW(ctx, c->ext_v[2], N_VNew_Serial((sunindextype)(np ? np : 1), c->sun));
  N_VConst(0.0, c->ext_v[2]);
  double *lambda = N_VGetArrayPointer(c->ext_v[1]);
  CT_CHECK(ctx, objective_at_end(r, c, s, lambda));
  if (m && s->o->t_obs[m - 1] == s->T) CT_CHECK(ctx, add_jump(r, s, --m, lambda));
  CT_CHECK(ctx, backward_setup(r, c, s));
  while (m--) { /* observation m, at t_m < T */
    double tk = s->o->t_obs[m];
    CT_CHECK(ctx, backward_to(r, c, s, tk));
    CT_CHECK(ctx, add_jump(r, s, m, lambda));
    CT_SUN_CALL(ctx, CVodeReInitB(c->cv, s->which, tk, c->ext_v[1]));
    if (np) CT_SUN_CALL(ctx, CVodeQuadReInitB(c->cv, s->which, c->ext_v[2]));
  }
  CT_CHECK(ctx, backward_to(r, c, s, s->t0));
  return gradient(r, s, lambda, N_VGetArrayPointer(c->ext_v[2]));
}

/* Finish hook: runs the backward phase while CVODES is alive. */
static void asa_finish(ct_ode_run *r, ct_cvode_set *c) {
  asa_run *s = r->ext;
  if (!c->cv || !s->forward_done) return;
  s->rc = backward(r, c, s);
}

/* ---- Solving ------------------------------------------------------------------- */

/* The result's arrays and the solve's buffers. */
static int allocate(ct_context *ctx, const ct_asa *a, asa_run *s, ct_asa_result *res) {
  size_t n = a->n ? a->n : 1, np = a->np ? a->np : 1;
  res->n = a->n;
  res->np = a->np;
  res->dJdp = ct_calloc(ctx, np, sizeof *res->dJdp);
  res->dJdy0 = ct_calloc(ctx, n, sizeof *res->dJdy0);
  s->work = ct_alloc(ctx, a->work * sizeof *s->work);
  s->vy = ct_alloc(ctx, n * sizeof *s->vy);
  s->vp = ct_alloc(ctx, np * sizeof *s->vp);
  s->phi_p = ct_calloc(ctx, np, sizeof *s->phi_p);
  s->obs_p = ct_calloc(ctx, np, sizeof *s->obs_p);
  if (!res->dJdp || !res->dJdy0 || !s->work || !s->vy || !s->vp || !s->phi_p ||
      !s->obs_p)
    return CT_ERR_NOMEM;
  return CT_OK;
}

/* Runs the forward phase with the adjoint hooks (the backward phase runs in
 * the finish hook) and reports either phase's failure (see adjoint.h). */
int ct_asa_solve(ct_context *ctx, const ct_asa *a, const double *p, const double *y0,
                 double t0, double T, const ct_asa_options *opts, ct_asa_result **out) {
  *out = NULL;
  if (!a) return CT_ERROR(ctx, CT_ERR_ARG, "no adjoint problem (asa is NULL)");
  ct_asa_options o = opts ? *opts : ct_asa_default_options();
  CT_CHECK(ctx, check_options(ctx, a, &o, p, t0, T));
  ct_asa_result *res = ct_calloc(ctx, 1, sizeof *res);
  if (!res) return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  asa_run s = {a, &o, res, t0, T, NULL, NULL, NULL, NULL, NULL, 0, 0, 1.0, -1, 0, CT_OK};
  /* Output times: t0, the observation times, T (unless the last is T). */
  s.n_tout = 2 + o.n_obs - (o.n_obs && o.t_obs[o.n_obs - 1] == T);
  double *tout = ct_alloc(ctx, s.n_tout * sizeof *tout);
  int rc = tout ? allocate(ctx, a, &s, res) : CT_ERR_NOMEM;
  if (rc == CT_OK) {
    tout[0] = t0;
    if (o.n_obs) memcpy(tout + 1, o.t_obs, o.n_obs * sizeof *tout);
    tout[s.n_tout - 1] = T;
    ct_ode_hooks hooks = {&s, asa_setup, asa_output, asa_finish};
    rc = ct_ode_solve_into(ctx, a->ode, p, y0, tout, s.n_tout, &o.ode, &hooks,
                           &res->ode);
    if (rc == CT_ERR_SOLVER) {
      if (snprintf(res->message, sizeof res->message, "forward phase: %s",
                   res->ode.message) < 0)
        res->message[0] = '\0';
      rc = CT_ERROR(ctx, CT_ERR_SOLVER, "%s", res->message); /* the phase, in ctx too */
    } else if (rc == CT_OK && s.rc < 0) {
      rc = s.rc; /* the backward phase's failure, message already in res */
    }
  }
  ct_free(ctx, s.work);
  ct_free(ctx, s.vy);
  ct_free(ctx, s.vp);
  ct_free(ctx, s.phi_p);
  ct_free(ctx, s.obs_p);
  ct_free(ctx, tout);
  if (rc < 0 && rc != CT_ERR_SOLVER) {
    ct_asa_result_free(ctx, res);
    return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  }
  res->status = rc;
  *out = res; /* a solver failure keeps what was computed */
  return rc < 0 ? ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__) : CT_OK;
}

/* Frees the result and everything in it. NULL is a no-op. */
void ct_asa_result_free(ct_context *ctx, ct_asa_result *res) {
  if (!res) return;
  ct_ode_result_clear(ctx, &res->ode);
  ct_free(ctx, res->dJdp);
  ct_free(ctx, res->dJdy0);
  ct_free(ctx, res);
}
