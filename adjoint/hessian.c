/* Second-order adjoints: the Hessian-vector product H u of an adjoint
 * objective by forward-over-adjoint (Ozyurt & Barton 2005, SUNDIALS'
 * cvsHessian_ASA_FSA). The forward phase is the ODE integration of
 * solvers/ode.c with checkpoints (CVodeF through its advance hook), the
 * integral term as a forward quadrature and one forward sensitivity
 * s = (dy/dp) u, stopping at the observation times to keep y(t_k) and
 * s(t_k); the backward phase, in the finish hook, integrates (lambda, mu)
 * with the BS variants of CVODES that see s, restarted at every t_k with
 * the observation term's jumps. All second-order terms are
 * forward-over-reverse AD products built once by ct_asa2_new_obs. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cvodes/cvodes.h>
#include <nvector/nvector_serial.h>
#include <sunlinsol/sunlinsol_dense.h>
#include <sunmatrix/sunmatrix_dense.h>
#include <sunnonlinsol/sunnonlinsol_fixedpoint.h>

#include "../sensitivity/fsa_internal.h"
#include "../solvers/ode_internal.h"
#include "asa_internal.h"
#include "cotangent/adjoint.h"
#include "objective.h"


/* A scalar term w^T F(t, y, p) (w the seed "bar_<out>") turned into its
 * first-order adjoints bar_y = F_y^T w, bar_p = F_p^T w and their tangents
 * along (d_y, d_p[, d_bar]): d_bar_y = (F_yy d_y + F_yp d_p)^T w + F_y^T d_bar,
 * likewise d_bar_p. Positions of inputs and outputs; -1 where absent. */
typedef struct so_fun {
  ct_fun *f;
  long t, y, p, d, bar, dy, dp, dbar; /* inputs (d: observation data) */
  long val, by, bp, dby, dbp;      /* outputs (val: the term itself) */
} so_fun;

struct ct_asa2 {
  ct_context *ctx;
  const ct_ode *ode; /* borrowed */
  size_t n, np;
  ct_jvp_fun sens;      /* f: d_f = f_y s + f_p u */
  ct_jvp_fun sens0;     /* y0(p): d_y0 = y0_p u; f NULL without y0(p) */
  so_fun rhs;        /* lambda^T f; seed lambda, its tangent mu */
  so_fun g;          /* g (value kept); f NULL without g */
  so_fun phi;        /* phi (value kept); f NULL without phi */
  so_fun h;          /* h (value kept); f NULL without h */
  size_t d_size;     /* components of h's input "d"; 0 without */
  so_fun y0;         /* lambda^T y0(p); f NULL without y0(p) */
  so_fun jac_b;      /* d(bar_y, d_bar_y)/d(lambda, mu): output val "jac",
                        2n x 2n column-major */
  size_t work;       /* doubles the largest evaluation needs */
};

/* ---- Building ------------------------------------------------------------------ */

/* Locates the inputs and outputs of s->f by their names. */
static void so_locate(so_fun *s, const char *out, const char *bar) {
  char dbar[80];
  snprintf(dbar, sizeof dbar, "d_%s", bar);
  s->t = ct_fun_in_index(s->f, "t");
  s->y = ct_fun_in_index(s->f, "y");
  s->p = ct_fun_in_index(s->f, "p");
  s->d = ct_fun_in_index(s->f, "d");
  s->bar = ct_fun_in_index(s->f, bar);
  s->dy = ct_fun_in_index(s->f, "d_y");
  s->dp = ct_fun_in_index(s->f, "d_p");
  s->dbar = ct_fun_in_index(s->f, dbar);
  s->val = ct_fun_out_index(s->f, out);
  s->by = ct_fun_out_index(s->f, "bar_y");
  s->bp = ct_fun_out_index(s->f, "bar_p");
  s->dby = ct_fun_out_index(s->f, "d_bar_y");
  s->dbp = ct_fun_out_index(s->f, "d_bar_p");
}

/* The forward-over-reverse products of output `out` of f (see so_fun):
 * the one-seed VJP with respect to y and p (those f has), then its
 * one-direction JVP with respect to y, p and, with diff_seed, the seed.
 * Keeps `out` itself when keep_value. A term of t alone keeps its value. */
static int build_second_order(ct_context *ctx, const ct_fun *f, const char *out,
                              int keep_value, int diff_seed, so_fun *s) {
  char bar[64];
  snprintf(bar, sizeof bar, "bar_%s", out);
  const char *only[] = {out, NULL}, *wrt1[3] = {0}, *wrt2[4] = {0}, *names[6] = {0};
  size_t n1 = 0, nn = 0;
  int has_y = ct_fun_in_index(f, "y") >= 0, has_p = ct_fun_in_index(f, "p") >= 0;
  if (keep_value) names[nn++] = out;
  if (has_y) wrt1[n1++] = "y", names[nn++] = "bar_y", names[nn++] = "d_bar_y";
  if (has_p) wrt1[n1++] = "p", names[nn++] = "bar_p", names[nn++] = "d_bar_p";
  memcpy(wrt2, wrt1, sizeof wrt1);
  if (diff_seed) wrt2[n1] = bar;
  ct_fun *single = NULL, *first = NULL, *second = NULL;
  CT_CHECK(ctx, ct_fun_select_outputs(ctx, f, only, &single));
  if (n1 == 0) { /* depends on t alone: no derivatives */
    s->f = single;
    so_locate(s, out, bar);
    return CT_OK;
  }
  int rc = ct_fun_vjp(ctx, single, 1, wrt1, &first);
  if (rc == CT_OK) rc = ct_fun_jvp(ctx, first, 1, wrt2, &second);
  if (rc == CT_OK) rc = ct_fun_select_outputs(ctx, second, names, &s->f);
  ct_fun_free(single);
  ct_fun_free(first);
  ct_fun_free(second);
  CT_CHECK(ctx, rc);
  so_locate(s, out, bar);
  return CT_OK;
}

/* The dense Jacobian of the backward right-hand side's AD part
 * (bar_y, d_bar_y) with respect to (lambda, mu) = (bar_f, d_bar_f): the
 * mu-equation is linear in both, so this is exact. */
static int build_jac_b(ct_context *ctx, ct_asa2 *a) {
  const char *rows[] = {"bar_y", "d_bar_y", NULL}, *cols[] = {"bar_f", "d_bar_f", NULL};
  ct_fun *part = NULL;
  CT_CHECK(ctx, ct_fun_select_outputs(ctx, a->rhs.f, rows, &part));
  long l = ct_fun_in_index(part, "bar_f"), m = ct_fun_in_index(part, "d_bar_f");
  int rc = l >= 0 && m > l ? CT_OK
                           : CT_ERROR(ctx, CT_ERR_INTERNAL, "the second-order adjoint "
                                      "of f lacks its inputs bar_f, d_bar_f in order");
  if (rc == CT_OK) rc = ct_fun_dense_jac(ctx, part, cols, &a->jac_b.f);
  ct_fun_free(part);
  CT_CHECK(ctx, rc);
  so_locate(&a->jac_b, "jac", "bar_f");
  return CT_OK;
}

/* Fills a zeroed problem: checks the objective, builds every product. */
static int asa2_fill(ct_context *ctx, ct_asa2 *a, const ct_fun *g, const ct_fun *phi,
                     const ct_fun *h) {
  const ct_ode *m = a->ode;
  if (g) CT_CHECK(ctx, ct_objective_check(ctx, g, "integral objective g", "g", a->n, a->np));
  if (phi)
    CT_CHECK(ctx, ct_objective_check(ctx, phi, "final-time objective phi", "phi", a->n, a->np));
  if (h)
    CT_CHECK(ctx, ct_objective_check_data(ctx, h, "observation objective h", "h", a->n,
                                          a->np, &a->d_size));
  const char *wrt_yp[] = {"y", m->rhs.p >= 0 ? "p" : NULL, NULL}, *wrt_p[] = {"p", NULL};
  CT_CHECK(ctx, ct_fsa_build_jvp(ctx, m->rhs.f, 1, wrt_yp, "d_f", &a->sens));
  CT_CHECK(ctx, build_second_order(ctx, m->rhs.f, "f", 0, 1, &a->rhs));
  CT_CHECK(ctx, build_jac_b(ctx, a));
  if (g) CT_CHECK(ctx, build_second_order(ctx, g, "g", 1, 0, &a->g));
  if (phi) CT_CHECK(ctx, build_second_order(ctx, phi, "phi", 1, 0, &a->phi));
  if (h) CT_CHECK(ctx, build_second_order(ctx, h, "h", 1, 0, &a->h));
  if (m->y0.f && m->y0.p >= 0) {
    CT_CHECK(ctx, ct_fsa_build_jvp(ctx, m->y0.f, 1, wrt_p, "d_y0", &a->sens0));
    CT_CHECK(ctx, build_second_order(ctx, m->y0.f, "y0", 0, 1, &a->y0));
  }
  ct_fun *built[] = {a->sens.f, a->sens0.f, a->rhs.f, a->g.f, a->phi.f, a->h.f,
                     a->y0.f, a->jac_b.f};
  for (size_t i = 0; i < sizeof built / sizeof built[0]; i++) /* after ct_ode_jit */
    CT_CHECK(ctx, ct_model_jit_fun(ctx, &m->jit, built[i]));
  const ct_fun *all[] = {a->sens.f, a->sens0.f, a->rhs.f, a->g.f, a->phi.f, a->h.f,
                         a->y0.f, a->jac_b.f};
  a->work = ct_asa_max_work(all, sizeof all / sizeof all[0]);
  return CT_OK;
}

/* Without an observation term (see adjoint.h). */
int ct_asa2_new(ct_context *ctx, const ct_ode *ode, const ct_fun *g, const ct_fun *phi,
                ct_asa2 **out) {
  return ct_asa2_new_obs(ctx, ode, g, phi, NULL, out);
}

/* Checks the model and objective, then builds the products (see adjoint.h). */
int ct_asa2_new_obs(ct_context *ctx, const ct_ode *ode, const ct_fun *g,
                    const ct_fun *phi, const ct_fun *h, ct_asa2 **out) {
  if (!out) return CT_ERROR(ctx, CT_ERR_ARG, "out is NULL");
  *out = NULL;
  if (!ode)
    return CT_ERROR(ctx, CT_ERR_ARG, "a second-order adjoint problem needs a model "
                    "(ode is NULL)");
  CT_CHECK(ctx, ct_ode_require_ad(ctx, ode, "second-order adjoints",
                                  "second derivatives of f"));
  if (!g && !phi && !h)
    return CT_ERROR(ctx, CT_ERR_ARG, "a second-order adjoint problem needs an objective: "
                    "pass g (integral term), phi (final-time term), h (observation "
                    "term) or several");
  if (ct_ode_n_roots(ode))
    return CT_ERROR(ctx, CT_ERR_ARG, "adjoints of models with root functions are not "
                    "supported (the model has %zu)", ct_ode_n_roots(ode));
  if (!ct_ode_n_params(ode))
    return CT_ERROR(ctx, CT_ERR_ARG, "the model has no parameters (no input 'p'): "
                    "there is no Hessian with respect to p");
  ct_asa2 *a = ct_calloc(ctx, 1, sizeof *a);
  if (!a) return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  a->ctx = ctx;
  a->ode = ode;
  a->n = ct_ode_n_states(ode);
  a->np = ct_ode_n_params(ode);
  int rc = asa2_fill(ctx, a, g, phi, h);
  if (rc < 0) {
    ct_asa2_free(a);
    return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  }
  *out = a;
  return CT_OK;
}

/* Frees the problem (not the model). NULL is a no-op. */
void ct_asa2_free(ct_asa2 *a) {
  if (!a) return;
  ct_fun_free(a->sens.f);
  ct_fun_free(a->sens0.f);
  ct_fun_free(a->rhs.f);
  ct_fun_free(a->g.f);
  ct_fun_free(a->phi.f);
  ct_fun_free(a->h.f);
  ct_fun_free(a->y0.f);
  ct_fun_free(a->jac_b.f);
  ct_free(a->ctx, a);
}

/* ---- Options ------------------------------------------------------------------ */

/* Checks the adjoint options, the time span, p and u (what the ODE's own
 * check does not). */
static int check_options(ct_context *ctx, const ct_asa2 *a, const ct_asa_options *o,
                         const double *p, double t0, double T, const double *u) {
  if (!p) return CT_ERROR(ctx, CT_ERR_ARG, "the model has %zu parameters: pass p", a->np);
  if (!u)
    return CT_ERROR(ctx, CT_ERR_ARG, "the direction u is NULL: pass %zu values", a->np);
  for (size_t j = 0; j < a->np; j++)
    if (!isfinite(u[j]) || !isfinite(p[j]))
      return CT_ERROR(ctx, CT_ERR_ARG, "%s[%zu] is not finite (%g)",
                      isfinite(u[j]) ? "p" : "u", j, isfinite(u[j]) ? p[j] : u[j]);
  if (o->ode.method != CT_ODE_BDF && o->ode.method != CT_ODE_ADAMS)
    return CT_ERROR(ctx, CT_ERR_ARG, "second-order adjoints need a CVODES method "
                    "(CT_ODE_BDF or CT_ODE_ADAMS), got method %d", (int)o->ode.method);
  if (o->linsol_b != CT_LINSOL_AUTO && o->linsol_b != CT_LINSOL_DENSE)
    return CT_ERROR(ctx, CT_ERR_ARG, "second-order adjoints solve the backward Newton "
                    "systems densely: linsol_b must be auto or dense, got %s",
                    ct_ode_linsol_name(o->linsol_b));
  if (o->max_checkpoints)
    return CT_ERROR(ctx, CT_ERR_ARG, "max_checkpoints is not supported by second-order "
                    "adjoints (got %ld): set checkpoint_steps instead", o->max_checkpoints);
  CT_CHECK(ctx, ct_asa_check_common_options(ctx, o, t0, T));
  return ct_asa_check_observations(ctx, o, t0, T, a->h.f != NULL, a->d_size);
}

/* ---- One solve: callbacks and hooks ----------------------------------------------- */

/* The state of one solve (the hooks' ud, r->ext in callbacks). */
typedef struct hvp_run {
  const ct_asa2 *a;
  const ct_asa_options *o;
  ct_asa_hvp_result *res;
  const double *u;      /* np: the direction */
  double t0, T;
  double *work;         /* a->work */
  double *jac;          /* 4 n^2: the backward Jacobian's values */
  double *vy, *dvy;     /* n each: g's adjoint outputs */
  double *vp, *dvp;     /* np each: g's and y0's adjoint outputs */
  double *phi_p, *phi_dp; /* np each: dphi/dp, its tangent */
  double *obs_p, *obs_dp; /* np each: Σ_k h_p, Σ_k (h_py s(t_k) + h_pp u) */
  double *s_obs;        /* n_obs x n: s(t_k), kept by the output hook */
  size_t n_tout;        /* forward output times: t0, the t_k, T */
  double *zeros;        /* max(n, np) zeros: unused tangent inputs */
  double t_buf, one;
  int which;            /* the backward problem */
  int forward_done;     /* y(T) reached */
  int rc;               /* the backward phase's status */
  ct_cvodef_mem step;   /* CVodeF one step at a time (progress) */
  ct_backward_progress bp; /* the backward phase's progress */
} hvp_run;

/* Where a so_fun evaluation reads and writes (NULL: absent or skipped). */
typedef struct so_args {
  const double *y, *p, *d, *bar, *dy, *dp, *dbar;
  double *val, *by, *bp, *dby, *dbp;
} so_args;

/* Evaluates s at time t with the inputs and outputs of `x`; a NULL input
 * reads zeros (tangents that the outputs asked for do not need), an output
 * the function lacks is left untouched. */
static int so_eval(ct_context *ctx, hvp_run *h, const so_fun *s, double t,
                   const so_args *x) {
  const double *in[8] = {0};
  double *out[6] = {0};
  h->t_buf = t;
  if (s->t >= 0) in[s->t] = &h->t_buf;
  if (s->y >= 0) in[s->y] = x->y ? x->y : h->zeros;
  if (s->p >= 0) in[s->p] = x->p ? x->p : h->zeros;
  if (s->d >= 0) in[s->d] = x->d;
  if (s->bar >= 0) in[s->bar] = x->bar ? x->bar : h->zeros;
  if (s->dy >= 0) in[s->dy] = x->dy ? x->dy : h->zeros;
  if (s->dp >= 0) in[s->dp] = x->dp ? x->dp : h->zeros;
  if (s->dbar >= 0) in[s->dbar] = x->dbar ? x->dbar : h->zeros;
  if (s->val >= 0) out[s->val] = x->val;
  if (s->by >= 0) out[s->by] = x->by;
  if (s->bp >= 0) out[s->bp] = x->bp;
  if (s->dby >= 0) out[s->dby] = x->dby;
  if (s->dbp >= 0) out[s->dbp] = x->dbp;
  return ct_fun_eval(ctx, s->f, in, out, h->work);
}

/* Evaluates the JVP j at (t, y, p) along (dy, dp) into out. */
static int jvp_eval(ct_context *ctx, hvp_run *h, const ct_jvp_fun *j, double t,
                    const double *y, const double *p, const double *dy,
                    const double *dp, double *out) {
  const double *in[5] = {0};
  double *outs[1] = {out};
  h->t_buf = t;
  if (j->t >= 0) in[j->t] = &h->t_buf;
  if (j->y >= 0) in[j->y] = y;
  if (j->p >= 0) in[j->p] = p;
  if (j->dy >= 0) in[j->dy] = dy;
  if (j->dp >= 0) in[j->dp] = dp;
  return ct_fun_eval(ctx, j->f, in, outs, h->work);
}

/* CVQuadRhsFn of the forward phase: the integrand g. */
static int quad_cb(sunrealtype t, N_Vector y, N_Vector qdot, void *ud) {
  ct_ode_run *r = ud;
  hvp_run *h = r->ext;
  double *out = N_VGetArrayPointer(qdot);
  so_args x = {.y = N_VGetArrayPointer(y), .p = r->p, .bar = &h->one, .val = out};
  if (so_eval(r->ctx, h, &h->a->g, t, &x) < 0) return -1;
  return ct_ode_check_finite(r, "integrand g", out, 1, t);
}

/* CVSensRhsFn: the one sensitivity's right-hand side f_y s + f_p u. */
static int sens_rhs_cb(int ns, sunrealtype t, N_Vector y, N_Vector ydot, N_Vector *yS,
                       N_Vector *ySdot, void *ud, N_Vector tmp1, N_Vector tmp2) {
  (void)ns, (void)ydot, (void)tmp1, (void)tmp2;
  ct_ode_run *r = ud;
  hvp_run *h = r->ext;
  double *out = N_VGetArrayPointer(ySdot[0]);
  if (jvp_eval(r->ctx, h, &h->a->sens, t, N_VGetArrayPointer(y), r->p,
               N_VGetArrayPointer(yS[0]), h->u, out) < 0)
    return -1;
  return ct_ode_check_finite(r, "sensitivity right-hand side", out, h->a->n, t);
}

/* CVRhsFnBS: lambda' = -(f_y^T lambda + g_y^T),
 * mu' = -(f_y^T mu + (f_yy s + f_yp u)^T lambda + g_yy s + g_yp u). */
static int rhs_b_cb(sunrealtype t, N_Vector y, N_Vector *yS, N_Vector yB,
                    N_Vector yBdot, void *ud) {
  ct_ode_run *r = ud;
  hvp_run *h = r->ext;
  const ct_asa2 *a = h->a;
  size_t n = a->n;
  const double *lm = N_VGetArrayPointer(yB), *s = N_VGetArrayPointer(yS[0]);
  double *out = N_VGetArrayPointer(yBdot);
  if (ct_backward_progress_step(&h->bp, t)) {
    snprintf(r->cause, sizeof r->cause, "interrupted");
    return -1;
  }
  so_args x = {.y = N_VGetArrayPointer(y), .p = r->p, .bar = lm, .dy = s, .dp = h->u,
               .dbar = lm + n, .by = out, .dby = out + n};
  if (so_eval(r->ctx, h, &a->rhs, t, &x) < 0) return -1;
  memset(h->vy, 0, n * sizeof *h->vy);
  memset(h->dvy, 0, n * sizeof *h->dvy);
  if (a->g.f) {
    so_args xg = {.y = x.y, .p = r->p, .bar = &h->one, .dy = s, .dp = h->u,
                  .by = h->vy, .dby = h->dvy};
    if (so_eval(r->ctx, h, &a->g, t, &xg) < 0) return -1;
  }
  for (size_t i = 0; i < n; i++) {
    out[i] = -(out[i] + h->vy[i]);
    out[n + i] = -(out[n + i] + h->dvy[i]);
  }
  return ct_ode_check_finite(r, "second-order adjoint right-hand side", out, 2 * n, t);
}

/* CVQuadRhsFnBS: f_p^T lambda + g_p^T, and
 * f_p^T mu + (f_py s + f_pp u)^T lambda + g_py s + g_pp u. */
static int quad_b_cb(sunrealtype t, N_Vector y, N_Vector *yS, N_Vector yB,
                     N_Vector qBdot, void *ud) {
  ct_ode_run *r = ud;
  hvp_run *h = r->ext;
  const ct_asa2 *a = h->a;
  size_t n = a->n, np = a->np;
  const double *lm = N_VGetArrayPointer(yB), *s = N_VGetArrayPointer(yS[0]);
  double *out = N_VGetArrayPointer(qBdot);
  memset(out, 0, 2 * np * sizeof *out);
  so_args x = {.y = N_VGetArrayPointer(y), .p = r->p, .bar = lm, .dy = s, .dp = h->u,
               .dbar = lm + n, .bp = out, .dbp = out + np};
  if (so_eval(r->ctx, h, &a->rhs, t, &x) < 0) return -1;
  if (a->g.f && a->g.bp >= 0) {
    so_args xg = {.y = x.y, .p = r->p, .bar = &h->one, .dy = s, .dp = h->u,
                  .bp = h->vp, .dbp = h->dvp};
    if (so_eval(r->ctx, h, &a->g, t, &xg) < 0) return -1;
    for (size_t j = 0; j < np; j++) out[j] += h->vp[j], out[np + j] += h->dvp[j];
  }
  return ct_ode_check_finite(r, "gradient and Hessian quadrature integrand", out, 2 * np, t);
}

/* CVLsJacFnBS: the dense 2n x 2n matrix -[[f_y^T, 0], [M, f_y^T]] from the
 * AD Jacobian of the backward right-hand side (M: the mu-equation's
 * derivative with respect to lambda). */
static int jac_b_cb(sunrealtype t, N_Vector y, N_Vector *yS, N_Vector yB, N_Vector fyB,
                    SUNMatrix JB, void *ud, N_Vector t1, N_Vector t2, N_Vector t3) {
  (void)fyB, (void)t1, (void)t2, (void)t3;
  ct_ode_run *r = ud;
  hvp_run *h = r->ext;
  size_t n2 = 2 * h->a->n;
  const double *lm = N_VGetArrayPointer(yB);
  so_args x = {.y = N_VGetArrayPointer(y), .p = r->p, .bar = lm,
               .dy = N_VGetArrayPointer(yS[0]), .dp = h->u, .dbar = lm + h->a->n,
               .val = h->jac};
  if (so_eval(r->ctx, h, &h->a->jac_b, t, &x) < 0) return -1;
  if (ct_ode_check_finite(r, "backward Jacobian", h->jac, n2 * n2, t)) return 1;
  for (size_t j = 0; j < n2; j++) {
    double *col = SM_COLUMN_D(JB, (sunindextype)j);
    for (size_t i = 0; i < n2; i++) col[i] = -h->jac[j * n2 + i];
  }
  return 0;
}

/* The forward sensitivity s = (dy/dp) u: s(t0) = y0_p u (0 without y0(p)),
 * in the error test; a fixed-point corrector for Adams. */
static int forward_sensitivity(ct_ode_run *r, ct_cvode_set *c, const ct_ode_options *o) {
  ct_context *ctx = r->ctx;
  hvp_run *h = r->ext;
  CT_SUN_NEW(ctx, c->yS, N_VCloneVectorArray(1, c->y));
  c->n_yS = 1;
  double *s0 = N_VGetArrayPointer(c->yS[0]);
  memset(s0, 0, h->a->n * sizeof *s0);
  if (h->a->sens0.f) { /* evaluated where solvers/ode.c evaluates y0: t = 0 */
    CT_CHECK(ctx, jvp_eval(ctx, h, &h->a->sens0, 0, NULL, r->p, NULL, h->u, s0));
    for (size_t i = 0; i < h->a->n; i++)
      if (!isfinite(s0[i]))
        return CT_ERROR(ctx, CT_ERR_NUMERIC, "the initial sensitivity (dy0[%zu]/dp) u "
                        "is %g", i, s0[i]);
  }
  CT_SUN_CALL(ctx, CVodeSensInit(c->cv, 1, CV_SIMULTANEOUS, sens_rhs_cb, c->yS));
  CT_SUN_CALL(ctx, CVodeSensEEtolerances(c->cv));
  CT_SUN_CALL(ctx, CVodeSetSensErrCon(c->cv, SUNTRUE));
  if (o->method == CT_ODE_ADAMS) {
    CT_SUN_NEW(ctx, c->NLS_sens, SUNNonlinSol_FixedPointSens(2, c->y, 0, c->sun));
    CT_SUN_CALL(ctx, CVodeSetNonlinearSolverSensSim(c->cv, c->NLS_sens));
  }
  return CT_OK;
}

/* Setup hook: the forward quadrature, the sensitivity, CVODES' adjoint
 * memory and CVodeF as the way to advance. */
static int hvp_setup(ct_ode_run *r, ct_cvode_set *c, const ct_ode_options *o) {
  ct_context *ctx = r->ctx;
  hvp_run *h = r->ext;
  if (h->a->g.f) CT_CHECK(ctx, ct_asa_quad_init(ctx, c, quad_cb, h->o));
  CT_CHECK(ctx, forward_sensitivity(r, c, o));
  return ct_asa_adj_init(ctx, c, h->o, &h->step, &h->res->n_checkpoints);
}

/* Output hook: keeps s(t_k) at observation time t_k (output k + 1) and,
 * at T (the last output), s(T), noting that the forward phase is done. The
 * sensitivity is read at the output time itself (one-step driving leaves
 * CVODES' last return past it). */
static int hvp_output(ct_ode_run *r, ct_cvode_set *c, const ct_ode_result *res) {
  hvp_run *h = r->ext;
  size_t k = res->n_out - 1, n = h->a->n;
  if (k == 0) return CT_OK;
  CT_SUN_CALL(r->ctx, CVodeGetSensDky(c->cv, res->t[k], 0, c->yS));
  const double *s = N_VGetArrayPointer(c->yS[0]);
  if (k <= h->o->n_obs) memcpy(h->s_obs + (k - 1) * n, s, n * sizeof *s);
  if (res->n_out == h->n_tout) {
    memcpy(h->res->s_T, s, n * sizeof *s);
    h->forward_done = 1;
  }
  return CT_OK;
}

/* Evaluates h at observation k with seed 1 along (s(t_k), u): its value
 * into *val, h_y^T and its tangent into by, dby, h_p^T and its tangent into
 * bp, dbp (NULL: skipped; outputs h lacks are left untouched). */
static int obs_eval(ct_ode_run *r, hvp_run *h, size_t k, double *val, double *by,
                    double *dby, double *bp, double *dbp) {
  size_t n = h->a->n;
  so_args x = {.y = h->res->ode.y + (k + 1) * n, .p = r->p,
               .d = ct_asa_obs_row(h->o, k), .bar = &h->one, .dy = h->s_obs + k * n,
               .dp = h->u, .val = val, .by = by, .bp = bp, .dby = dby, .dbp = dbp};
  return so_eval(r->ctx, h, &h->a->h, h->o->t_obs[k], &x);
}

/* The observation term's value and direct parameter terms: Σ_k h into the
 * result, Σ_k h_p and Σ_k (h_py s(t_k) + h_pp u) into obs_p, obs_dp. */
static int observed_terms(ct_ode_run *r, hvp_run *h) {
  size_t np = h->a->np;
  for (size_t k = 0; k < h->o->n_obs; k++) {
    double hk = 0;
    memset(h->vp, 0, 2 * np * sizeof *h->vp); /* vp, dvp */
    CT_CHECK(r->ctx, obs_eval(r, h, k, &hk, NULL, NULL, h->vp, h->dvp));
    h->res->observed += hk;
    for (size_t j = 0; j < np; j++) h->obs_p[j] += h->vp[j], h->obs_dp[j] += h->dvp[j];
  }
  return CT_OK;
}

/* Adds the jumps of observation k to (lambda, mu) = lm: lambda += h_y^T,
 * mu += h_yy s(t_k) + h_yp u. */
static int add_jump(ct_ode_run *r, hvp_run *h, size_t k, double *lm) {
  size_t n = h->a->n;
  if (h->a->h.by < 0) return CT_OK; /* h does not depend on y */
  memset(h->vy, 0, 2 * n * sizeof *h->vy); /* vy, dvy */
  CT_CHECK(r->ctx, obs_eval(r, h, k, NULL, h->vy, h->dvy, NULL, NULL));
  for (size_t i = 0; i < n; i++) lm[i] += h->vy[i], lm[n + i] += h->dvy[i];
  return CT_OK;
}

/* The objective's value at the end of the forward phase, the final
 * conditions lambda(T) = phi_y^T, mu(T) = phi_yy s(T) + phi_yp u with
 * phi_p and its tangent phi_py s(T) + phi_pp u, and the observation term's
 * direct parameter terms (observed_terms). */
static int objective_at_end(ct_ode_run *r, ct_cvode_set *c, hvp_run *h, double *lm) {
  const ct_asa2 *a = h->a;
  ct_asa_hvp_result *res = h->res;
  memset(lm, 0, 2 * a->n * sizeof *lm);
  if (a->g.f) { /* at T itself, as above */
    CT_SUN_CALL(r->ctx, CVodeGetQuadDky(c->cv, h->T, 0, c->ext_v[0]));
    res->integral = N_VGetArrayPointer(c->ext_v[0])[0];
    CVodeGetQuadNumRhsEvals(c->cv, &res->quad_evals);
  }
  if (a->phi.f) {
    so_args x = {.y = N_VGetArrayPointer(c->y), .p = r->p, .bar = &h->one,
                 .dy = res->s_T, .dp = h->u, .val = &res->final, .by = lm,
                 .bp = h->phi_p, .dby = lm + a->n, .dbp = h->phi_dp};
    CT_CHECK(r->ctx, so_eval(r->ctx, h, &a->phi, h->T, &x));
  }
  if (a->h.f) CT_CHECK(r->ctx, observed_terms(r, h));
  res->value = res->integral + res->final + res->observed;
  return CT_OK;
}

/* The backward problem of size 2n (BS variants: its right-hand side sees
 * the forward sensitivity), its dense linear solver with the AD Jacobian,
 * the 2 np quadratures. */
static int backward_setup(ct_ode_run *r, ct_cvode_set *c, hvp_run *h) {
  ct_context *ctx = r->ctx;
  const ct_asa_options *o = h->o;
  sunindextype n2 = (sunindextype)(2 * h->a->n);
  void *cv = c->cv;
  CT_SUN_CALL(ctx, CVodeCreateB(cv, CV_BDF, &h->which));
  CVodeSetErrHandlerFn(CVodeGetAdjCVodeBmem(cv, h->which), ct_asa_sundials_error_b, r);
  CT_SUN_CALL(ctx, CVodeInitBS(cv, h->which, rhs_b_cb, h->T, c->ext_v[1]));
  h->bp.mem = CVodeGetAdjCVodeBmem(cv, h->which);
  CT_SUN_CALL(ctx, CVodeSStolerancesB(cv, h->which, o->rtol_b, o->atol_b));
  CT_SUN_CALL(ctx, CVodeSetUserDataB(cv, h->which, r));
  if (o->max_steps_b) CT_SUN_CALL(ctx, CVodeSetMaxNumStepsB(cv, h->which, o->max_steps_b));
  CT_SUN_NEW(ctx, c->A_b, SUNDenseMatrix(n2, n2, c->sun));
  CT_SUN_NEW(ctx, c->LS_b, SUNLinSol_Dense(c->ext_v[1], c->A_b, c->sun));
  CT_SUN_CALL(ctx, CVodeSetLinearSolverB(cv, h->which, c->LS_b, c->A_b));
  CT_SUN_CALL(ctx, CVodeSetJacFnBS(cv, h->which, jac_b_cb));
  CT_SUN_CALL(ctx, CVodeQuadInitBS(cv, h->which, quad_b_cb, c->ext_v[2]));
  CT_SUN_CALL(ctx, CVodeSetQuadErrConB(cv, h->which, o->quad_err_con ? SUNTRUE : SUNFALSE));
  CT_SUN_CALL(ctx, CVodeQuadSStolerancesB(cv, h->which, o->rtol_q, o->atol_q));
  return CT_OK;
}

/* Integrates the backward problem to tout and reads (lambda, mu) and the
 * quadratures there into c->ext_v[1], c->ext_v[2]; a failure is
 * CT_ERR_SOLVER with the message in the result. */
static int backward_to(ct_ode_run *r, ct_cvode_set *c, hvp_run *h, double tout) {
  ct_context *ctx = r->ctx;
  ct_asa_hvp_result *res = h->res;
  r->cause[0] = r->sundials[0] = '\0';
  h->bp.tout = tout;
  int flag = CVodeB(c->cv, tout, CV_NORMAL);
  void *cvb = CVodeGetAdjCVodeBmem(c->cv, h->which);
  ct_asa_add_stats_b(cvb, &res->stats_b, &res->quad_evals_b);
  if (flag < 0)
    return ct_asa_backward_failure(r, cvb, h->T, h->bp.interrupted, flag, res->message,
                                   sizeof res->message);
  double t;
  CT_SUN_CALL(ctx, CVodeGetB(c->cv, h->which, &t, c->ext_v[1]));
  CT_SUN_CALL(ctx, CVodeGetQuadB(c->cv, h->which, &t, c->ext_v[2]));
  return CT_OK;
}

/* The results from (lambda, mu)(t0) and the quadratures qB:
 * dJ/dp = -qB[0..np) + phi_p + Σ_k h_p + y0_p^T lambda0,
 * H u = -qB[np..2np) + phi_py s(T) + phi_pp u + Σ_k (h_py s(t_k) + h_pp u)
 *       + y0_p^T mu0 + (y0_pp u)^T lambda0. */
static int gradient_and_hvp(ct_ode_run *r, hvp_run *h, const double *lm,
                            const double *qB) {
  const ct_asa2 *a = h->a;
  ct_asa_hvp_result *res = h->res;
  size_t n = a->n, np = a->np;
  memcpy(res->dJdy0, lm, n * sizeof *lm);
  memcpy(res->dJdy0_u, lm + n, n * sizeof *lm);
  for (size_t j = 0; j < np; j++) {
    res->dJdp[j] = -qB[j] + h->phi_p[j] + h->obs_p[j];
    res->Hu[j] = -qB[np + j] + h->phi_dp[j] + h->obs_dp[j];
  }
  if (a->y0.f) { /* evaluated where solvers/ode.c evaluates y0: t = 0 */
    memset(h->vp, 0, np * sizeof *h->vp);
    memset(h->dvp, 0, np * sizeof *h->dvp);
    so_args x = {.p = r->p, .bar = lm, .dp = h->u, .dbar = lm + n, .bp = h->vp,
                 .dbp = h->dvp};
    CT_CHECK(r->ctx, so_eval(r->ctx, h, &a->y0, 0, &x));
    for (size_t j = 0; j < np; j++) res->dJdp[j] += h->vp[j], res->Hu[j] += h->dvp[j];
  }
  res->backward_done = 1;
  return CT_OK;
}

/* The backward phase, after a successful forward phase: from T to t0,
 * restarted (CVodeReInitB, CVodeQuadReInitB) at every observation time
 * inside (t0, T) with its jumps. */
static int backward(ct_ode_run *r, ct_cvode_set *c, hvp_run *h) {
  ct_context *ctx = r->ctx;
  size_t n = h->a->n, np = h->a->np, m = h->o->n_obs;
  const double *t_obs = h->o->t_obs;
  CT_SUN_NEW(ctx, c->ext_v[1], N_VNew_Serial((sunindextype)(2 * n), c->sun));
  CT_SUN_NEW(ctx, c->ext_v[2], N_VNew_Serial((sunindextype)(2 * np), c->sun));
  N_VConst(0.0, c->ext_v[2]);
  double *lm = N_VGetArrayPointer(c->ext_v[1]);
  CT_CHECK(ctx, objective_at_end(r, c, h, lm));
  if (m && t_obs[m - 1] == h->T) CT_CHECK(ctx, add_jump(r, h, --m, lm));
  CT_CHECK(ctx, backward_setup(r, c, h));
  while (m--) { /* observation m, at t_m < T */
    CT_CHECK(ctx, backward_to(r, c, h, t_obs[m]));
    CT_CHECK(ctx, add_jump(r, h, m, lm));
    CT_SUN_CALL(ctx, CVodeReInitB(c->cv, h->which, t_obs[m], c->ext_v[1]));
    h->bp.nst = 0; /* CVodeReInitB restarts the step count */
    CT_SUN_CALL(ctx, CVodeQuadReInitB(c->cv, h->which, c->ext_v[2]));
  }
  CT_CHECK(ctx, backward_to(r, c, h, h->t0));
  if (h->o->ode.progress) /* the end of the backward phase; too late to stop */
    (void)h->o->ode.progress(h->t0, h->o->ode.progress_ud);
  return gradient_and_hvp(r, h, lm, N_VGetArrayPointer(c->ext_v[2]));
}

/* Finish hook: the sensitivity statistics, then the backward phase while
 * CVODES is alive. */
static void hvp_finish(ct_ode_run *r, ct_cvode_set *c) {
  hvp_run *h = r->ext;
  if (!c->cv) return;
  if (c->yS) CVodeGetSensNumRhsEvals(c->cv, &h->res->sens_rhs_evals);
  if (h->forward_done) h->rc = backward(r, c, h);
}

/* ---- Solving ------------------------------------------------------------------- */

/* The result's arrays and the solve's buffers. */
static int allocate(ct_context *ctx, const ct_asa2 *a, hvp_run *h,
                    ct_asa_hvp_result *res) {
  size_t n = a->n ? a->n : 1, np = a->np;
  res->n = a->n;
  res->np = np;
  res->s_T = ct_calloc(ctx, n, sizeof *res->s_T);
  res->dJdp = ct_calloc(ctx, np, sizeof *res->dJdp);
  res->Hu = ct_calloc(ctx, np, sizeof *res->Hu);
  res->dJdy0 = ct_calloc(ctx, n, sizeof *res->dJdy0);
  res->dJdy0_u = ct_calloc(ctx, n, sizeof *res->dJdy0_u);
  h->work = ct_alloc(ctx, a->work * sizeof *h->work);
  h->jac = ct_alloc(ctx, 4 * n * n * sizeof *h->jac);
  h->vy = ct_alloc(ctx, 2 * n * sizeof *h->vy);
  h->vp = ct_alloc(ctx, 4 * np * sizeof *h->vp);
  h->zeros = ct_calloc(ctx, n > np ? n : np, sizeof *h->zeros);
  h->obs_p = ct_calloc(ctx, 2 * np, sizeof *h->obs_p);
  h->s_obs = ct_calloc(ctx, (h->o->n_obs ? h->o->n_obs : 1) * n, sizeof *h->s_obs);
  if (!h->obs_p || !h->s_obs || !h->zeros || !res->s_T || !res->dJdp || !res->Hu || !res->dJdy0 || !res->dJdy0_u || !h->work ||
      !h->jac || !h->vy || !h->vp)
    return CT_ERR_NOMEM;
  h->dvy = h->vy + n;
  h->dvp = h->vp + np;
  h->phi_p = h->vp + 2 * np;
  h->phi_dp = h->vp + 3 * np;
  h->obs_dp = h->obs_p + np;
  memset(h->phi_p, 0, 2 * np * sizeof *h->phi_p);
  return CT_OK;
}

/* Frees the solve's buffers (not the result). */
static void release(ct_context *ctx, hvp_run *h) {
  ct_free(ctx, h->work);
  ct_free(ctx, h->jac);
  ct_free(ctx, h->vy);
  ct_free(ctx, h->vp);
  ct_free(ctx, h->zeros);
  ct_free(ctx, h->obs_p);
  ct_free(ctx, h->s_obs);
}

/* Runs the forward phase with the hooks (the backward phase runs in the
 * finish hook) and reports either phase's failure (see adjoint.h). */
int ct_asa_hvp(ct_context *ctx, const ct_asa2 *a, const double *p, const double *y0,
               double t0, double T, const double *u, const ct_asa_options *opts,
               ct_asa_hvp_result **out) {
  if (!out) return CT_ERROR(ctx, CT_ERR_ARG, "out is NULL");
  *out = NULL;
  if (!a) return CT_ERROR(ctx, CT_ERR_ARG, "no second-order adjoint problem (asa2 is NULL)");
  ct_asa_options o = opts ? *opts : ct_asa_default_options();
  CT_CHECK(ctx, check_options(ctx, a, &o, p, t0, T, u));
  ct_asa_hvp_result *res = ct_calloc(ctx, 1, sizeof *res);
  if (!res) return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  hvp_run h = {.a = a, .o = &o, .res = res, .u = u, .t0 = t0, .T = T, .one = 1.0,
               .which = -1, .rc = CT_OK, .bp = {.progress = o.ode.progress, .ud = o.ode.progress_ud}};
  /* Output times: t0, the observation times, T (unless the last is T). */
  h.n_tout = 2 + o.n_obs - (o.n_obs && o.t_obs[o.n_obs - 1] == T);
  double *tout = ct_alloc(ctx, h.n_tout * sizeof *tout);
  int rc = tout ? allocate(ctx, a, &h, res) : CT_ERR_NOMEM;
  if (rc == CT_OK) {
    tout[0] = t0;
    if (o.n_obs) memcpy(tout + 1, o.t_obs, o.n_obs * sizeof *tout);
    tout[h.n_tout - 1] = T;
    ct_ode_hooks hooks = {&h, hvp_setup, hvp_output, hvp_finish};
    rc = ct_ode_solve_into(ctx, a->ode, p, y0, tout, h.n_tout, &o.ode, &hooks,
                           &res->ode);
    rc = ct_asa_solve_status(ctx, rc, h.rc, res->ode.message, res->message,
                             sizeof res->message);
  }
  release(ctx, &h);
  ct_free(ctx, tout);
  if (rc < 0 && !CT_SOLVE_STOPPED(rc)) {
    ct_asa_hvp_result_free(ctx, res);
    return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  }
  res->status = rc;
  *out = res; /* a solver failure keeps what was computed */
  return rc < 0 ? ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__) : CT_OK;
}

/* Frees the result and everything in it. NULL is a no-op. */
void ct_asa_hvp_result_free(ct_context *ctx, ct_asa_hvp_result *res) {
  if (!res) return;
  ct_ode_result_clear(ctx, &res->ode);
  ct_free(ctx, res->s_T);
  ct_free(ctx, res->dJdp);
  ct_free(ctx, res->Hu);
  ct_free(ctx, res->dJdy0);
  ct_free(ctx, res->dJdy0_u);
  ct_free(ctx, res);
}
