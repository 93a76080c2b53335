/* Continuous adjoints through CVODES' adjoint sensitivity analysis: the
 * forward phase is the ODE integration of solvers/ode.c (CVodeF through its
 * advance hook, the integral term as a forward quadrature), the backward
 * phase runs in its finish hook while CVODES is alive. Adjoint right-hand
 * side and gradient quadrature from AD VJPs built once by ct_asa_new (or
 * a callback model's vjp and dfdp_t_w); the backward Newton solve is dense,
 * band, KLU (-(df/dy)^T scattered through the transposed pattern) or GMRES
 * (products -(df/dy)^T v). With max_checkpoints, a first plain forward
 * pass counts the steps to space the checkpoints. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cvodes/cvodes.h>
#include <nvector/nvector_serial.h>
#include <sunlinsol/sunlinsol_band.h>
#include <sunlinsol/sunlinsol_dense.h>
#include <sunlinsol/sunlinsol_klu.h>
#include <sunlinsol/sunlinsol_spgmr.h>
#include <sunmatrix/sunmatrix_band.h>
#include <sunmatrix/sunmatrix_dense.h>
#include <sunmatrix/sunmatrix_sparse.h>

#include "../solvers/ode_internal.h"
#include "asa_internal.h"
#include "cotangent/adjoint.h"
#include "objective.h"

/* A model or objective function turned into its VJP (one seed, with
 * respect to its inputs y and p where present), with the positions of its
 * inputs and outputs; -1 where absent. */
typedef struct vjp_fun {
  ct_fun *f;
  long t, y, p, d, bar; /* inputs; d: observation data; bar: the seed */
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
  int cb;            /* 1: a callback model (rhs unused: its callbacks) */
  size_t d_size;     /* components of h's input "d"; 0 without */
  /* The transposed Jacobian pattern (the CSR form of df/dy) and each
   * entry's position in the model's CSC pattern; NULL when the model has
   * no pattern (a callback model without Jacobian callback). */
  size_t *colptr_t, *rowind_t, *perm_t;
};

/* ---- Building ------------------------------------------------------------------ */

/* Checks that the objective term `f` has output `out` of size 1 and only
 * inputs t (1), y (n), p (np), and "d" (any size, into *d_size) when d_size
 * is not NULL. */
static int objective_check(ct_context *ctx, const ct_fun *f, const char *what,
                           const char *out, size_t n, size_t np, size_t *d_size) {
  long o = ct_fun_out_index(f, out);
  if (o < 0)
    return CT_ERROR(ctx, CT_ERR_ARG, "the %s has no output '%s'", what, out);
  if (ct_fun_out_size(f, (size_t)o) != 1)
    return CT_ERROR(ctx, CT_ERR_ARG, "output '%s' of the %s has %zu components, "
                    "expected 1", out, what, ct_fun_out_size(f, (size_t)o));
  for (size_t i = 0; i < ct_fun_n_in(f); i++) {
    const char *name = ct_fun_in_name(f, i);
    if (d_size && !strcmp(name, "d")) {
      *d_size = ct_fun_in_size(f, i);
      continue;
    }
    size_t want = !strcmp(name, "t") ? 1 : !strcmp(name, "y") ? n
                : !strcmp(name, "p") ? np : 0;
    if (!want && strcmp(name, "p"))
      return CT_ERROR(ctx, CT_ERR_ARG, "input '%s' of the %s is not one of t, y, p%s",
                      name, what, d_size ? ", d" : "");
    if (ct_fun_in_size(f, i) != want)
      return CT_ERROR(ctx, CT_ERR_ARG, "input '%s' of the %s has %zu components, "
                      "expected %zu", name, what, ct_fun_in_size(f, i), want);
  }
  return CT_OK;
}

/* Without a data input (see objective.h). */
int ct_objective_check(ct_context *ctx, const ct_fun *f, const char *what,
                       const char *out, size_t n, size_t np) {
  return objective_check(ctx, f, what, out, n, np, NULL);
}

/* With an optional data input "d" (see objective.h). */
int ct_objective_check_data(ct_context *ctx, const ct_fun *f, const char *what,
                            const char *out, size_t n, size_t np, size_t *d_size) {
  *d_size = 0;
  return objective_check(ctx, f, what, out, n, np, d_size);
}

/* One-seed VJP of one output (see objective.h). */
int ct_objective_vjp(ct_context *ctx, const ct_fun *f, const char *out,
                     const char *const *wrt, size_t n_wrt, const char *const *keep,
                     ct_fun **vjp) {
  const char *only[] = {out, NULL};
  if (n_wrt == 0) return ct_fun_select_outputs(ctx, f, only, vjp);
  ct_fun *single = NULL, *full = NULL;
  CT_CHECK(ctx, ct_fun_select_outputs(ctx, f, only, &single));
  int rc = ct_fun_vjp(ctx, single, 1, wrt, &full);
  ct_fun_free(single);
  CT_CHECK(ctx, rc);
  rc = ct_fun_select_outputs(ctx, full, keep, vjp);
  ct_fun_free(full);
  return rc;
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
  CT_CHECK(ctx, ct_objective_vjp(ctx, f, out, wrt, nw, names, &v->f));
  char bar[64];
  snprintf(bar, sizeof bar, "bar_%s", out);
  v->t = ct_fun_in_index(v->f, "t");
  v->y = ct_fun_in_index(v->f, "y");
  v->p = ct_fun_in_index(v->f, "p");
  v->d = ct_fun_in_index(v->f, "d");
  v->bar = ct_fun_in_index(v->f, bar);
  v->val = ct_fun_out_index(v->f, out);
  v->by = ct_fun_out_index(v->f, "bar_y");
  v->bp = ct_fun_out_index(v->f, "bar_p");
  return CT_OK;
}

/* The most workspace any of fs needs (see asa_internal.h). */
size_t ct_asa_max_work(const ct_fun *const *fs, size_t n) {
  size_t w = 1;
  for (size_t i = 0; i < n; i++)
    if (fs[i] && ct_fun_work_size(fs[i]) > w) w = ct_fun_work_size(fs[i]);
  return w;
}

/* A callback model's adjoint needs J^T w (vjp, or a Jacobian callback to
 * transpose) and, with parameters, (df/dp)^T w: CT_ERR_ARG naming the
 * missing callback (adjoints take no difference quotients). */
static int check_adjoint_callbacks(ct_context *ctx, const ct_ode_callbacks *cb) {
  if (!cb->vjp && !cb->jac_dense && !cb->jac_sparse)
    return CT_ERROR(ctx, CT_ERR_ARG, "adjoints of a callback model need the vjp "
                    "callback ((df/dy)^T w) or a Jacobian callback (jac_dense or "
                    "jac_sparse); the model has none (adjoints use no difference "
                    "quotients)");
  if (cb->np && !cb->dfdp_t_w)
    return CT_ERROR(ctx, CT_ERR_ARG, "adjoints of a callback model with %zu parameters "
                    "need the dfdp_t_w callback ((df/dp)^T w), which the model lacks "
                    "(adjoints use no difference quotients)", cb->np);
  return CT_OK;
}

/* Fills a zeroed problem: checks the objective and the model's callbacks,
 * builds the VJPs and the transposed Jacobian pattern. */
static int asa_fill(ct_context *ctx, ct_asa *a, const ct_fun *g, const ct_fun *phi,
                    const ct_fun *h) {
  const ct_ode *m = a->ode;
  if (g) CT_CHECK(ctx, ct_objective_check(ctx, g, "integral objective g", "g", a->n, a->np));
  if (phi)
    CT_CHECK(ctx, ct_objective_check(ctx, phi, "final-time objective phi", "phi", a->n, a->np));
  if (h)
    CT_CHECK(ctx, ct_objective_check_data(ctx, h, "observation objective h", "h", a->n,
                                          a->np, &a->d_size));
  if (a->cb)
    CT_CHECK(ctx, check_adjoint_callbacks(ctx, &m->cb));
  else
    CT_CHECK(ctx, build_vjp(ctx, m->rhs.f, "f", 0, &a->rhs));
  if (m->pattern->colptr)
    CT_CHECK(ctx, ct_sparsity_to_csr(ctx, m->pattern, &a->colptr_t, &a->rowind_t,
                                     &a->perm_t));
  if (g) CT_CHECK(ctx, build_vjp(ctx, g, "g", 1, &a->g));
  if (phi) CT_CHECK(ctx, build_vjp(ctx, phi, "phi", 1, &a->phi));
  if (h) CT_CHECK(ctx, build_vjp(ctx, h, "h", 1, &a->h));
  if (m->y0.f && m->y0.p >= 0) CT_CHECK(ctx, build_vjp(ctx, m->y0.f, "y0", 0, &a->y0));
  ct_fun *built[] = {a->rhs.f, a->g.f, a->phi.f, a->h.f, a->y0.f};
  for (size_t i = 0; i < sizeof built / sizeof built[0]; i++) /* after ct_ode_jit */
    CT_CHECK(ctx, ct_model_jit_fun(ctx, &m->jit, built[i]));
  const ct_fun *all[] = {a->rhs.f, a->g.f, a->phi.f, a->h.f, a->y0.f, m->jac.f};
  a->work = ct_asa_max_work(all, sizeof all / sizeof all[0]);
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
  a->cb = ode->has_cb;
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
  ct_free(a->ctx, a->colptr_t);
  ct_free(a->ctx, a->rowind_t);
  ct_free(a->ctx, a->perm_t);
  ct_free(a->ctx, a);
}

/* ---- Options ------------------------------------------------------------------ */

ct_asa_options ct_asa_default_options(void) {
  ct_asa_options o = {ct_ode_default_options(), 100, CT_ASA_HERMITE, 1e-6, 1e-8,
                      1e-6, 1e-6, 1, 0, NULL, 0, CT_LINSOL_AUTO, NULL, 0, 0};
  return o;
}

static ct_ode_linsol resolve_linsol_b(const ct_asa *a, const ct_asa_options *o);

/* Positive and finite. */
static int positive(double x) { return x > 0 && isfinite(x); }

/* The options both adjoints check alike (see asa_internal.h). */
int ct_asa_check_common_options(ct_context *ctx, const ct_asa_options *o, double t0,
                                double T) {
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
  return CT_OK;
}

/* The data of h: required (obs_dim values per observation) when h has an
 * input "d" (d_size components) and there are observations, refused when
 * it has none. */
static int check_obs_data(ct_context *ctx, size_t d_size, const ct_asa_options *o) {
  if (!d_size) {
    if (o->obs_data)
      return CT_ERROR(ctx, CT_ERR_ARG, "obs_data is set but the observation objective "
                      "h has no input 'd'");
    return CT_OK;
  }
  if (o->n_obs && !o->obs_data)
    return CT_ERROR(ctx, CT_ERR_ARG, "the observation objective h has an input 'd' "
                    "(%zu values) but obs_data is NULL: pass the data of the %zu "
                    "observations", d_size, o->n_obs);
  if (o->obs_data && o->obs_dim != d_size)
    return CT_ERROR(ctx, CT_ERR_ARG, "obs_dim is %zu but input 'd' of the observation "
                    "objective h has %zu components", o->obs_dim, d_size);
  return CT_OK;
}

/* The observation times and data (see asa_internal.h). */
int ct_asa_check_observations(ct_context *ctx, const ct_asa_options *o, double t0,
                              double T, int has_h, size_t d_size) {
  if (o->n_obs && !has_h)
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
  return check_obs_data(ctx, d_size, o);
}

/* A known backward linear solver that the model can feed: a matrix needs a
 * Jacobian (a callback model's jac_dense or jac_sparse). */
static int check_linsol_b(ct_context *ctx, const ct_asa *a, const ct_asa_options *o) {
  if ((unsigned)o->linsol_b > CT_LINSOL_GMRES)
    return CT_ERROR(ctx, CT_ERR_ARG, "unknown backward linear solver linsol_b %d",
                    (int)o->linsol_b);
  ct_ode_linsol ls = resolve_linsol_b(a, o);
  if (ls != CT_LINSOL_GMRES && !a->colptr_t)
    return CT_ERROR(ctx, CT_ERR_ARG, "the %s backward linear solver needs a Jacobian "
                    "callback (jac_dense or jac_sparse), which the model lacks: use "
                    "linsol_b = CT_LINSOL_GMRES (with the vjp callback)",
                    ct_ode_linsol_name(ls));
  return CT_OK;
}

/* Checks what the ODE's own check does not: the adjoint options, the time
 * span and p. */
static int check_options(ct_context *ctx, const ct_asa *a, const ct_asa_options *o,
                         const double *p, double t0, double T) {
  CT_CHECK(ctx, ct_asa_check_common_options(ctx, o, t0, T));
  if (a->np && !p)
    return CT_ERROR(ctx, CT_ERR_ARG, "the model has %zu parameters: pass p", a->np);
  CT_CHECK(ctx, ct_asa_check_observations(ctx, o, t0, T, a->h.f != NULL, a->d_size));
  if (o->max_checkpoints < 0)
    return CT_ERROR(ctx, CT_ERR_ARG, "max_checkpoints must be 0 (unbounded) or positive, "
                    "got %ld", o->max_checkpoints);
  return check_linsol_b(ctx, a, o);
}

/* The backward linear solver: linsol_b, or with CT_LINSOL_AUTO the forward
 * phase's (the model's pick_linsol when that is auto too), except GMRES for
 * a callback model without Jacobian callback. */
static ct_ode_linsol resolve_linsol_b(const ct_asa *a, const ct_asa_options *o) {
  const ct_ode *m = a->ode;
  if (o->linsol_b != CT_LINSOL_AUTO) return o->linsol_b;
  if (m->has_cb && !m->cb.jac_dense && !m->cb.jac_sparse) return CT_LINSOL_GMRES;
  if (o->ode.linsol != CT_LINSOL_AUTO) return o->ode.linsol;
  ct_ode_shared sh;
  ct_ode_shared_get(&sh);
  return sh.pick_linsol(m);
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
  const double *d_row; /* the data of the observation h is evaluated at */
  double t_buf, one;
  int which;          /* the backward problem */
  int forward_done;   /* y(T) reached */
  int over_bound;     /* more checkpoints than max_checkpoints: redo */
  int rc;             /* the backward phase's status */
  ct_cvodef_mem step; /* CVodeF one step at a time (progress) */
  ct_backward_progress bp; /* the backward phase's progress */
} asa_run;

/* Evaluates v at (t, y, p) with seed `bar` (may be NULL when v has none),
 * writing the value, bar_y and bar_p where asked (NULL: skipped). */
static int vjp_eval(ct_context *ctx, asa_run *s, const vjp_fun *v, double t,
                    const double *y, const double *p, const double *bar, double *val,
                    double *by, double *bp) {
  const double *in[5] = {0};
  double *out[3] = {0};
  s->t_buf = t;
  if (v->t >= 0) in[v->t] = &s->t_buf;
  if (v->y >= 0) in[v->y] = y;
  if (v->p >= 0) in[v->p] = p;
  if (v->d >= 0) in[v->d] = s->d_row;
  if (v->bar >= 0) in[v->bar] = bar;
  if (v->val >= 0) out[v->val] = val;
  if (v->by >= 0) out[v->by] = by;
  if (v->bp >= 0) out[v->bp] = bp;
  return ct_fun_eval(ctx, v->f, in, out, s->work);
}

/* CVQuadRhsFn of the forward phase: the integrand g. */
static int quad_cb(sunrealtype t, N_Vector y, N_Vector qdot, void *ud) {
  ct_ode_run *r = ud;
  asa_run *s = r->ext;
  double *out = N_VGetArrayPointer(qdot);
  if (vjp_eval(r->ctx, s, &s->a->g, t, N_VGetArrayPointer(y), r->p, &s->one, out,
               NULL, NULL) < 0)
    return -1;
  return ct_ode_check_finite(r, "integrand g", out, 1, t);
}

/* A user callback's status for CVODES: the cause names the callback and
 * the time; positive stays recoverable (1), negative is not (-1). */
static int user_failure(ct_ode_run *r, const char *name, int rc, double t) {
  snprintf(r->cause, sizeof r->cause, "the %s callback returned %d at t = %.6g", name,
           rc, t);
  return rc > 0 ? 1 : -1;
}

/* The model's Jacobian nonzeros at (t, y) into r->jac_vals, in the CSC
 * order of its pattern: the AD Jacobian, or the user's jac_dense or
 * jac_sparse. 0, or a CVODES callback status with the cause recorded. */
static int jac_values_b(ct_ode_run *r, asa_run *s, double t, const double *y) {
  const ct_ode *m = r->m;
  size_t nnz = m->pattern->nnz;
  if (m->has_cb) {
    const ct_ode_callbacks *cb = &m->cb;
    memset(r->jac_vals, 0, nnz * sizeof *r->jac_vals);
    int rc = cb->jac_dense ? cb->jac_dense(t, y, r->p, r->jac_vals, cb->user_data)
                           : cb->jac_sparse(t, y, r->p, r->jac_vals, cb->user_data);
    if (rc) return user_failure(r, cb->jac_dense ? "jac_dense" : "jac_sparse", rc, t);
  } else {
    const double *in[3] = {0};
    double *out[1] = {r->jac_vals};
    s->t_buf = t;
    if (m->jac.t >= 0) in[m->jac.t] = &s->t_buf;
    if (m->jac.y >= 0) in[m->jac.y] = y;
    if (m->jac.p >= 0) in[m->jac.p] = r->p;
    if (ct_fun_eval(r->ctx, m->jac.f, in, out, s->work) < 0) return -1;
  }
  return ct_ode_check_finite(r, "Jacobian", r->jac_vals, nnz, t);
}

/* out = (df/dy)^T w at (t, y): the model's AD VJP, the user's vjp, or the
 * user's Jacobian transposed. 0 or a CVODES callback status. */
static int jac_t_times(ct_ode_run *r, asa_run *s, double t, const double *y,
                       const double *w, double *out) {
  const ct_ode *m = r->m;
  if (!m->has_cb)
    return vjp_eval(r->ctx, s, &s->a->rhs, t, y, r->p, w, NULL, out, NULL) < 0 ? -1 : 0;
  const ct_ode_callbacks *cb = &m->cb;
  if (cb->vjp) {
    int rc = cb->vjp(t, y, r->p, w, out, cb->user_data);
    return rc ? user_failure(r, "vjp", rc, t) : 0;
  }
  int rc = jac_values_b(r, s, t, y);
  if (rc) return rc;
  const ct_sparsity *sp = m->pattern;
  for (size_t j = 0; j < sp->ncols; j++) {
    double acc = 0;
    for (size_t q = sp->colptr[j]; q < sp->colptr[j + 1]; q++)
      acc += r->jac_vals[q] * w[sp->rowind[q]];
    out[j] = acc;
  }
  return 0;
}

/* out = (df/dp)^T w at (t, y) (np values): the model's AD VJP or the
 * user's dfdp_t_w (required with parameters). 0 or a callback status. */
static int dfdp_t_times(ct_ode_run *r, asa_run *s, double t, const double *y,
                        const double *w, double *out) {
  const ct_ode *m = r->m;
  const ct_asa *a = s->a;
  if (m->has_cb) {
    int rc = m->cb.dfdp_t_w(t, y, r->p, w, out, m->cb.user_data);
    return rc ? user_failure(r, "dfdp_t_w", rc, t) : 0;
  }
  if (a->rhs.bp < 0) {
    memset(out, 0, a->np * sizeof *out);
    return 0;
  }
  return vjp_eval(r->ctx, s, &a->rhs, t, y, r->p, w, NULL, NULL, out) < 0 ? -1 : 0;
}

/* CVRhsFnB: lambda' = -(J^T lambda + (dg/dy)^T). */
static int rhs_b_cb(sunrealtype t, N_Vector y, N_Vector yB, N_Vector yBdot, void *ud) {
  ct_ode_run *r = ud;
  asa_run *s = r->ext;
  const ct_asa *a = s->a;
  if (ct_backward_progress_step(&s->bp, t)) {
    snprintf(r->cause, sizeof r->cause, "interrupted");
    return -1;
  }
  const double *yv = N_VGetArrayPointer(y);
  double *out = N_VGetArrayPointer(yBdot);
  int rc = jac_t_times(r, s, t, yv, N_VGetArrayPointer(yB), out);
  if (rc) return rc;
  if (a->g.f && a->g.by >= 0) {
    if (vjp_eval(r->ctx, s, &a->g, t, yv, r->p, &s->one, NULL, s->vy, NULL) < 0)
      return -1;
    for (size_t i = 0; i < a->n; i++) out[i] = -(out[i] + s->vy[i]);
  } else {
    for (size_t i = 0; i < a->n; i++) out[i] = -out[i];
  }
  return ct_ode_check_finite(r, "adjoint right-hand side", out, a->n, t);
}

/* CVQuadRhsFnB: lambda^T df/dp + dg/dp. */
static int quad_b_cb(sunrealtype t, N_Vector y, N_Vector yB, N_Vector qBdot, void *ud) {
  ct_ode_run *r = ud;
  asa_run *s = r->ext;
  const ct_asa *a = s->a;
  const double *yv = N_VGetArrayPointer(y);
  double *out = N_VGetArrayPointer(qBdot);
  int rc = dfdp_t_times(r, s, t, yv, N_VGetArrayPointer(yB), out);
  if (rc) return rc;
  if (a->g.f && a->g.bp >= 0) {
    if (vjp_eval(r->ctx, s, &a->g, t, yv, r->p, &s->one, NULL, NULL, s->vp) < 0)
      return -1;
    for (size_t j = 0; j < a->np; j++) out[j] += s->vp[j];
  }
  return ct_ode_check_finite(r, "gradient quadrature integrand", out, a->np, t);
}

/* -J^T into a dense or band matrix (its bandwidths those of J swapped):
 * entry (i, j) of J goes to (j, i). */
static void scatter_neg_transpose(const ct_sparsity *sp, const double *v, SUNMatrix JB) {
  int band = SUNMatGetID(JB) == SUNMATRIX_BAND;
  SUNMatZero(JB);
  for (size_t j = 0; j < sp->ncols; j++)
    for (size_t q = sp->colptr[j]; q < sp->colptr[j + 1]; q++) {
      sunindextype row = (sunindextype)j, col = (sunindextype)sp->rowind[q];
      if (band)
        SM_ELEMENT_B(JB, row, col) = -v[q];
      else
        SM_ELEMENT_D(JB, row, col) = -v[q];
    }
}

/* -J^T into a CSC matrix through the transposed pattern; SUNDIALS zeroes
 * the index arrays before each call, so they are written every time. */
static void scatter_neg_transpose_sparse(const ct_asa *a, const double *v, SUNMatrix JB) {
  sunindextype *colptr = SUNSparseMatrix_IndexPointers(JB);
  sunindextype *rowval = SUNSparseMatrix_IndexValues(JB);
  double *data = SUNSparseMatrix_Data(JB);
  size_t n = a->n, nnz = a->ode->pattern->nnz;
  for (size_t j = 0; j <= n; j++) colptr[j] = (sunindextype)a->colptr_t[j];
  for (size_t q = 0; q < nnz; q++) {
    rowval[q] = (sunindextype)a->rowind_t[q];
    data[q] = -v[a->perm_t[q]];
  }
}

/* CVLsJacFnB: the matrix -J^T (dense, band or sparse) from the model's
 * Jacobian (AD, or the user's Jacobian callback). */
static int jac_b_cb(sunrealtype t, N_Vector y, N_Vector yB, N_Vector fyB, SUNMatrix JB,
                    void *ud, N_Vector t1, N_Vector t2, N_Vector t3) {
  (void)yB, (void)fyB, (void)t1, (void)t2, (void)t3;
  ct_ode_run *r = ud;
  asa_run *s = r->ext;
  int rc = jac_values_b(r, s, t, N_VGetArrayPointer(y));
  if (rc) return rc;
  if (SUNMatGetID(JB) == SUNMATRIX_SPARSE)
    scatter_neg_transpose_sparse(s->a, r->jac_vals, JB);
  else
    scatter_neg_transpose(r->m->pattern, r->jac_vals, JB);
  return 0;
}

/* CVLsJacTimesVecFnB for GMRES: Jv = -J^T v, matrix-free. */
static int jtimes_b_cb(N_Vector v, N_Vector Jv, sunrealtype t, N_Vector y, N_Vector yB,
                       N_Vector fyB, void *ud, N_Vector tmp) {
  (void)yB, (void)fyB, (void)tmp;
  ct_ode_run *r = ud;
  asa_run *s = r->ext;
  double *out = N_VGetArrayPointer(Jv);
  int rc = jac_t_times(r, s, t, N_VGetArrayPointer(y), N_VGetArrayPointer(v), out);
  if (rc) return rc;
  for (size_t i = 0; i < s->a->n; i++) out[i] = -out[i];
  return ct_ode_check_finite(r, "adjoint Jacobian-vector product", out, s->a->n, t);
}

/* Keeps SUNDIALS' message of the backward integrator (see asa_internal.h). */
void ct_asa_sundials_error_b(int code, const char *module, const char *function,
                             char *msg, void *ud) {
  ct_ode_run *r = ud;
  snprintf(r->sundials, sizeof r->sundials, "%s %s (%d): %s", module, function, code,
           msg);
}

/* Advance hook: CVodeF, which records checkpoints; their count goes where
 * the one-step driver's (c->step_mem, a ct_cvodef_mem) goes. */
static int advance_f(ct_ode_run *r, ct_cvode_set *c, double tout, double *t) {
  (void)r;
  const ct_cvodef_mem *step = c->step_mem;
  int ncheck = 0;
  int flag = CVodeF(c->cv, tout, c->y, t, CV_NORMAL, &ncheck);
  if (flag >= 0) *step->n_checkpoints = ncheck;
  return flag;
}

/* CVODES' adjoint memory and CVodeF as the way to advance (see
 * asa_internal.h). */
int ct_asa_adj_init(ct_context *ctx, ct_cvode_set *c, const ct_asa_options *o,
                    ct_cvodef_mem *step, long *n_checkpoints) {
  CT_SUN_CALL(ctx, CVodeAdjInit(c->cv, o->checkpoint_steps,
                                o->interp == CT_ASA_POLYNOMIAL ? CV_POLYNOMIAL
                                                               : CV_HERMITE));
  c->advance = advance_f;
  step->cv = c->cv;
  step->n_checkpoints = n_checkpoints;
  c->step_ops = &ct_cvodef_step_ops;
  c->step_mem = step;
  return CT_OK;
}

/* The forward quadrature of the integral term (see asa_internal.h). */
int ct_asa_quad_init(ct_context *ctx, ct_cvode_set *c, CVQuadRhsFn rhs,
                     const ct_asa_options *o) {
  CT_SUN_NEW(ctx, c->ext_v[0], N_VNew_Serial(1, c->sun));
  N_VConst(0.0, c->ext_v[0]);
  CT_SUN_CALL(ctx, CVodeQuadInit(c->cv, rhs, c->ext_v[0]));
  CT_SUN_CALL(ctx, CVodeQuadSStolerances(c->cv, o->rtol_q, o->atol_q));
  CT_SUN_CALL(ctx, CVodeSetQuadErrCon(c->cv, o->quad_err_con ? SUNTRUE : SUNFALSE));
  return CT_OK;
}

/* Setup hook of the counting pass (max_checkpoints): the forward
 * quadrature of g alone, which takes part in the step control as in the
 * adjoint's forward phase. */
static int quad_setup(ct_ode_run *r, ct_cvode_set *c, const ct_ode_options *o) {
  (void)o;
  asa_run *s = r->ext;
  if (s->a->g.f) CT_CHECK(r->ctx, ct_asa_quad_init(r->ctx, c, quad_cb, s->o));
  return CT_OK;
}

/* Setup hook: the forward quadrature of g and CVODES' adjoint memory. */
static int asa_setup(ct_ode_run *r, ct_cvode_set *c, const ct_ode_options *o) {
  ct_context *ctx = r->ctx;
  asa_run *s = r->ext;
  CT_CHECK(ctx, quad_setup(r, c, o));
  return ct_asa_adj_init(ctx, c, s->o, &s->step, &s->res->n_checkpoints);
}

/* Output hook: notes that y(T) was reached (the last output). */
static int asa_output(ct_ode_run *r, ct_cvode_set *c, const ct_ode_result *res) {
  (void)c;
  asa_run *s = r->ext;
  if (res->n_out == s->n_tout) s->forward_done = 1;
  return CT_OK;
}

/* The data of observation k (row k of obs_data), or NULL without data. */
static const double *obs_row(const asa_run *s, size_t k) {
  return ct_asa_obs_row(s->o, k);
}

/* The objective's value at the end of the forward phase, and lambda(T),
 * dphi/dp from the final-time term. */
static int objective_at_end(ct_ode_run *r, ct_cvode_set *c, asa_run *s, double *lambda) {
  const ct_asa *a = s->a;
  ct_asa_result *res = s->res;
  memset(lambda, 0, a->n * sizeof *lambda);
  if (a->g.f) {
    /* at T itself: stepping one step at a time leaves CVODES' last
       return time at the step past T (CVodeGetQuad would read there) */
    CT_SUN_CALL(r->ctx, CVodeGetQuadDky(c->cv, s->T, 0, c->ext_v[0]));
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
    s->d_row = obs_row(s, k);
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
  s->d_row = obs_row(s, k);
  CT_CHECK(r->ctx, vjp_eval(r->ctx, s, &a->h, s->o->t_obs[k],
                            s->res->ode.y + (k + 1) * a->n, r->p, &s->one, NULL, s->vy,
                            NULL));
  for (size_t i = 0; i < a->n; i++) lambda[i] += s->vy[i];
  return CT_OK;
}

/* The backward Newton solve of kind ls on the adjoint states c->ext_v[1]:
 * -(df/dy)^T as a dense, band (J's bandwidths swapped) or sparse matrix
 * (the transposed pattern) through CVodeSetJacFnB, or matrix-free GMRES
 * without preconditioner through CVodeSetJacTimesB. */
static int attach_linsol_b(ct_ode_run *r, ct_cvode_set *c, asa_run *s, ct_ode_linsol ls) {
  ct_context *ctx = r->ctx;
  const ct_ode *m = r->m;
  sunindextype n = (sunindextype)s->a->n;
  sunindextype nnz = (sunindextype)(m->pattern->nnz ? m->pattern->nnz : 1);
  N_Vector yB = c->ext_v[1];
  switch (ls) {
    case CT_LINSOL_DENSE:
      CT_SUN_NEW(ctx, c->A_b, SUNDenseMatrix(n, n, c->sun));
      CT_SUN_NEW(ctx, c->LS_b, SUNLinSol_Dense(yB, c->A_b, c->sun));
      break;
    case CT_LINSOL_BAND:
      CT_SUN_NEW(ctx, c->A_b, SUNBandMatrix(n, (sunindextype)m->ml, (sunindextype)m->mu,
                                            c->sun));
      CT_SUN_NEW(ctx, c->LS_b, SUNLinSol_Band(yB, c->A_b, c->sun));
      break;
    case CT_LINSOL_KLU:
      CT_SUN_NEW(ctx, c->A_b, SUNSparseMatrix(n, n, nnz, CSC_MAT, c->sun));
      CT_SUN_NEW(ctx, c->LS_b, SUNLinSol_KLU(yB, c->A_b, c->sun));
      break;
    default:
      CT_SUN_NEW(ctx, c->LS_b, SUNLinSol_SPGMR(yB, SUN_PREC_NONE, 0, c->sun));
      CT_SUN_CALL(ctx, CVodeSetLinearSolverB(c->cv, s->which, c->LS_b, NULL));
      CT_SUN_CALL(ctx, CVodeSetJacTimesB(c->cv, s->which, NULL, jtimes_b_cb));
      return CT_OK;
  }
  CT_SUN_CALL(ctx, CVodeSetLinearSolverB(c->cv, s->which, c->LS_b, c->A_b));
  CT_SUN_CALL(ctx, CVodeSetJacFnB(c->cv, s->which, jac_b_cb));
  return CT_OK;
}

/* The backward problem: adjoint states, their linear solver, the
 * gradient quadrature. */
static int backward_setup(ct_ode_run *r, ct_cvode_set *c, asa_run *s) {
  ct_context *ctx = r->ctx;
  const ct_asa_options *o = s->o;
  void *cv = c->cv;
  CT_SUN_CALL(ctx, CVodeCreateB(cv, CV_BDF, &s->which));
  CVodeSetErrHandlerFn(CVodeGetAdjCVodeBmem(cv, s->which), ct_asa_sundials_error_b, r);
  CT_SUN_CALL(ctx, CVodeInitB(cv, s->which, rhs_b_cb, s->T, c->ext_v[1]));
  s->bp.mem = CVodeGetAdjCVodeBmem(cv, s->which);
  CT_SUN_CALL(ctx, CVodeSStolerancesB(cv, s->which, o->rtol_b, o->atol_b));
  CT_SUN_CALL(ctx, CVodeSetUserDataB(cv, s->which, r));
  if (o->max_steps_b) CT_SUN_CALL(ctx, CVodeSetMaxNumStepsB(cv, s->which, o->max_steps_b));
  CT_CHECK(ctx, attach_linsol_b(r, c, s, s->res->linsol_b));
  if (s->a->np) {
    CT_SUN_CALL(ctx, CVodeQuadInitB(cv, s->which, quad_b_cb, c->ext_v[2]));
    CT_SUN_CALL(ctx, CVodeSetQuadErrConB(cv, s->which,
                                         o->quad_err_con ? SUNTRUE : SUNFALSE));
    CT_SUN_CALL(ctx, CVodeQuadSStolerancesB(cv, s->which, o->rtol_q, o->atol_q));
  }
  return CT_OK;
}

/* Adds the backward statistics of one interval (see asa_internal.h). */
void ct_asa_add_stats_b(void *cvb, ct_ode_stats *st, long *quad_evals_b) {
  ct_ode_stats one = {0};
  long nq = 0;
  CVodeGetNumSteps(cvb, &one.steps);
  CVodeGetNumRhsEvals(cvb, &one.rhs_evals);
  CVodeGetNumLinSolvSetups(cvb, &one.lin_setups);
  CVodeGetNumErrTestFails(cvb, &one.err_test_fails);
  CVodeGetNumNonlinSolvIters(cvb, &one.nonlin_iters);
  CVodeGetNumNonlinSolvConvFails(cvb, &one.nonlin_conv_fails);
  CVodeGetNumJacEvals(cvb, &one.jac_evals);
  CVodeGetNumJtimesEvals(cvb, &one.jtimes_evals);
  CVodeGetNumLinIters(cvb, &one.lin_iters);
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
  st->jtimes_evals += one.jtimes_evals;
  st->lin_iters += one.lin_iters;
  *quad_evals_b += nq;
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

/* Reports a failed CVodeB (see asa_internal.h). */
int ct_asa_backward_failure(ct_ode_run *r, void *cvb, double t_start, int interrupted,
                            int flag, char *message, size_t size) {
  double tb = t_start;
  CVodeGetCurrentTime(cvb, &tb);
  if (interrupted) {
    snprintf(message, size, "backward phase: t = %.6g: interrupted", tb);
    return CT_ERROR(r->ctx, CT_ERR_INTERRUPTED, "%s", message);
  }
  if (snprintf(message, size, "backward phase: t = %.6g: %s (CVodeB flag %d)%s%s", tb,
               *r->cause ? r->cause : "the adjoint integration failed", flag,
               *r->sundials ? "; " : "", r->sundials) < 0)
    message[0] = '\0';
  return CT_ERROR(r->ctx, CT_ERR_SOLVER, "%s", message);
}

/* The status of a whole adjoint solve (see asa_internal.h). */
int ct_asa_solve_status(ct_context *ctx, int rc, int backward_rc, const char *ode_message,
                        char *message, size_t size) {
  if (CT_SOLVE_STOPPED(rc)) {
    if (snprintf(message, size, "forward phase: %s", ode_message) < 0) message[0] = '\0';
    return CT_ERROR(ctx, rc, "%s", message); /* the phase, in ctx too */
  }
  if (rc == CT_OK && backward_rc < 0) return backward_rc; /* message already in res */
  return rc;
}

/* Integrates the backward problem to tout, then reads lambda and qB there
 * into c->ext_v[1], c->ext_v[2]; a failure is CT_ERR_SOLVER with the
 * message in the result. */
static int backward_to(ct_ode_run *r, ct_cvode_set *c, asa_run *s, double tout) {
  ct_context *ctx = r->ctx;
  ct_asa_result *res = s->res;
  r->cause[0] = r->sundials[0] = '\0';
  s->bp.tout = tout;
  int flag = CVodeB(c->cv, tout, CV_NORMAL);
  void *cvb = CVodeGetAdjCVodeBmem(c->cv, s->which);
  ct_asa_add_stats_b(cvb, &res->stats_b, &res->quad_evals_b);
  if (flag < 0)
    return ct_asa_backward_failure(r, cvb, s->T, s->bp.interrupted, flag, res->message,
                                   sizeof res->message);
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
    s->bp.nst = 0; /* CVodeReInitB restarts the step count */
    if (np) CT_SUN_CALL(ctx, CVodeQuadReInitB(c->cv, s->which, c->ext_v[2]));
  }
  CT_CHECK(ctx, backward_to(r, c, s, s->t0));
  if (s->o->ode.progress) /* the end of the backward phase; too late to stop */
    (void)s->o->ode.progress(s->t0, s->o->ode.progress_ud);
  return gradient(r, s, lambda, N_VGetArrayPointer(c->ext_v[2]));
}

/* Finish hook: runs the backward phase while CVODES is alive. */
static void asa_finish(ct_ode_run *r, ct_cvode_set *c) {
  asa_run *s = r->ext;
  if (!c->cv || !s->forward_done) return;
  long bound = s->o->max_checkpoints;
  if (bound && s->res->n_checkpoints > bound) {
    s->over_bound = 1; /* ct_asa_solve redoes the forward phase */
    return;
  }
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

/* With max_checkpoints: a plain forward solve (with the integral's
 * quadrature, so that its steps are those of the adjoint's forward phase)
 * counts the steps N, and checkpoints go ceil(N / max_checkpoints) steps
 * apart (o->checkpoint_steps), which stores at most max_checkpoints. A
 * failure is the forward phase's, the partial solution kept in res->ode. */
static int space_checkpoints(ct_context *ctx, asa_run *s, ct_asa_options *o,
                             const double *p, const double *y0, const double *tout) {
  ct_asa_result *res = s->res;
  ct_ode_hooks hooks = {s, quad_setup, NULL, NULL};
  int rc = ct_ode_solve_into(ctx, s->a->ode, p, y0, tout, s->n_tout, &o->ode, &hooks,
                             &res->ode);
  if (rc < 0) return rc;
  long steps = res->ode.stats.steps, k = o->max_checkpoints;
  res->steps_counted = steps;
  o->checkpoint_steps = steps / k + (steps % k != 0);
  if (o->checkpoint_steps < 1) o->checkpoint_steps = 1;
  ct_ode_result_clear(ctx, &res->ode);
  return CT_OK;
}

/* The forward phase with checkpoints, the backward phase in its finish
 * hook. CVODES forces a Jacobian update at each checkpoint, so the steps
 * can differ from the counting pass's: a forward phase over max_checkpoints
 * is redone (at most 4 times) with checkpoints spread over its own steps. */
static int adjoint_passes(ct_context *ctx, asa_run *s, ct_asa_options *o,
                          const double *p, const double *y0, const double *tout) {
  ct_asa_result *res = s->res;
  ct_ode_hooks hooks = {s, asa_setup, asa_output, asa_finish};
  for (int attempt = 0;; attempt++) {
    res->checkpoint_steps = o->checkpoint_steps;
    int rc = ct_ode_solve_into(ctx, s->a->ode, p, y0, tout, s->n_tout, &o->ode, &hooks,
                               &res->ode);
    if (rc < 0 || !s->over_bound) return rc;
    if (attempt == 4) {
      if (snprintf(res->ode.message, sizeof res->ode.message, "t = %.6g: %ld checkpoints "
                   "%ld steps apart exceed max_checkpoints = %ld", res->ode.t_reached,
                   res->n_checkpoints, o->checkpoint_steps, o->max_checkpoints) < 0)
        res->ode.message[0] = '\0';
      return CT_ERR_SOLVER; /* reported by the caller as the forward phase's */
    }
    long steps = res->ode.stats.steps, k = o->max_checkpoints;
    long nd = steps / k + (steps % k != 0);
    o->checkpoint_steps = nd > o->checkpoint_steps ? nd : o->checkpoint_steps + 1;
    s->over_bound = s->forward_done = 0;
    ct_ode_result_clear(ctx, &res->ode);
  }
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
  asa_run s = {a, &o, res, t0, T, NULL, NULL, NULL, NULL, NULL, 0, NULL, 0, 1.0, -1, 0,
               0, CT_OK, {NULL, NULL}, {o.ode.progress, o.ode.progress_ud, NULL, NULL, 0, 0.0, 0.0, 0}};
  /* Output times: t0, the observation times, T (unless the last is T). */
  s.n_tout = 2 + o.n_obs - (o.n_obs && o.t_obs[o.n_obs - 1] == T);
  double *tout = ct_alloc(ctx, s.n_tout * sizeof *tout);
  int rc = tout ? allocate(ctx, a, &s, res) : CT_ERR_NOMEM;
  if (rc == CT_OK) {
    tout[0] = t0;
    if (o.n_obs) memcpy(tout + 1, o.t_obs, o.n_obs * sizeof *tout);
    tout[s.n_tout - 1] = T;
    res->linsol_b = resolve_linsol_b(a, &o);
    if (o.max_checkpoints) rc = space_checkpoints(ctx, &s, &o, p, y0, tout);
    if (rc == CT_OK) rc = adjoint_passes(ctx, &s, &o, p, y0, tout);
    rc = ct_asa_solve_status(ctx, rc, s.rc, res->ode.message, res->message,
                             sizeof res->message);
  }
  ct_free(ctx, s.work);
  ct_free(ctx, s.vy);
  ct_free(ctx, s.vp);
  ct_free(ctx, s.phi_p);
  ct_free(ctx, s.obs_p);
  ct_free(ctx, tout);
  if (rc < 0 && !CT_SOLVE_STOPPED(rc)) {
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
