/* Continuous adjoints of DAE models (cotangent/dae.h) through IDAS' adjoint
 * sensitivity analysis with checkpointing: the forward phase is the DAE
 * integration of solvers/dae.c (IDASolveF through its advance hook, the
 * integral objective as a forward quadrature), the backward phase runs in
 * its finish hook while IDAS is alive. Adjoint residual, its iteration
 * matrix (dense, KLU) or products with it (GMRES), the final condition of
 * phi and the gradient quadrature come from AD functions built once by
 * ct_dae_asa_new. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <idas/idas.h>
#include <nvector/nvector_serial.h>
#include <sunlinsol/sunlinsol_dense.h>
#include <sunlinsol/sunlinsol_klu.h>
#include <sunlinsol/sunlinsol_spgmr.h>
#include <sunmatrix/sunmatrix_dense.h>
#include <sunmatrix/sunmatrix_sparse.h>

#include "../solvers/dae_internal.h"
#include "../solvers/ode_internal.h" /* progress of the backward phase */
#include "cotangent/dae.h"
#include "objective.h"

/* A function turned into its one-seed VJP, with the positions of its
 * inputs and outputs; -1 where absent. */
typedef struct vjp_fun {
  ct_fun *f;
  long t, y, yp, p, bar; /* inputs; bar: the seed */
  long val, by, byp, bp; /* outputs: the value, bar_y, bar_yp, bar_p */
} vjp_fun;

/* A sparse Jacobian of F with its input positions. */
typedef struct jac_fun {
  ct_fun *f;
  ct_sparsity *pattern;
  long t, y, yp, p;
} jac_fun;

struct ct_dae_asa {
  ct_context *ctx;
  const ct_dae *dae; /* borrowed */
  size_t n, np;
  vjp_fun fy;        /* F: bar_y = F_y^T l, bar_p = F_p^T l */
  vjp_fun fyp;       /* F: bar_yp = F_y'^T l */
  vjp_fun g;         /* g: g, bar_y, bar_p; f NULL without g */
  vjp_fun phi;       /* phi: phi, bar_y, bar_p; f NULL without phi */
  vjp_fun h;         /* h: h, bar_y, bar_p; f NULL without h */
  vjp_fun y0;        /* init: bar_p = (dy0/dp)^T l; f NULL without */
  jac_fun jy, jyp;   /* dF/dy, dF/dy' */
  ct_dae_pattern merged;   /* dF/dy and dF/dy' merged (map_a, map_b) */
  ct_dae_pattern backward; /* its transpose: the backward matrix (KLU) */
  double *idb;       /* 1 where lambda_i is differential (row i of dF/dy') */
  size_t work;
};

/* ---- Building ------------------------------------------------------------------ */

/* The one-seed VJP of f's output `out` with respect to those of `wrt`
 * (NULL-terminated) that f has, keeping the value when keep_value. */
static int build_vjp(ct_context *ctx, const ct_fun *f, const char *out, int keep_value,
                     const char *const *wrt_in, vjp_fun *v) {
  const char *wrt[4] = {NULL, NULL, NULL, NULL}, *names[5] = {NULL, NULL, NULL, NULL, NULL};
  size_t nw = 0, nn = 0;
  char bars[3][16];
  if (keep_value) names[nn++] = out;
  for (size_t k = 0; wrt_in[k] && nw < 3; k++)
    if (ct_fun_in_index(f, wrt_in[k]) >= 0) {
      snprintf(bars[nw], sizeof bars[nw], "bar_%s", wrt_in[k]);
      wrt[nw] = wrt_in[k];
      names[nn++] = bars[nw];
      nw++;
    }
  CT_CHECK(ctx, ct_objective_vjp(ctx, f, out, wrt, nw, names, &v->f));
  char bar[64];
  snprintf(bar, sizeof bar, "bar_%s", out);
  v->t = ct_fun_in_index(v->f, "t");
  v->y = ct_fun_in_index(v->f, "y");
  v->yp = ct_fun_in_index(v->f, "yp");
  v->p = ct_fun_in_index(v->f, "p");
  v->bar = ct_fun_in_index(v->f, bar);
  v->val = ct_fun_out_index(v->f, out);
  v->by = ct_fun_out_index(v->f, "bar_y");
  v->byp = ct_fun_out_index(v->f, "bar_yp");
  v->bp = ct_fun_out_index(v->f, "bar_p");
  return CT_OK;
}

/* The sparse Jacobian of F with respect to `wrt` ("y" or "yp"). */
static int build_jac(ct_context *ctx, const ct_fun *F, const char *wrt, jac_fun *j) {
  const char *w[] = {wrt, NULL};
  CT_CHECK(ctx, ct_fun_sparse_jac(ctx, F, w, &j->f, &j->pattern));
  j->t = ct_fun_in_index(j->f, "t");
  j->y = ct_fun_in_index(j->f, "y");
  j->yp = ct_fun_in_index(j->f, "yp");
  j->p = ct_fun_in_index(j->f, "p");
  return CT_OK;
}

/* The backward residual leaves out the term (d/dt dF/dy')^T lambda, so it
 * is right only when dF/dy' is constant. Refuses (CT_ERR_UNSUPPORTED) a
 * model whose dF/dy' depends structurally on t, y, y' or p, rather than
 * returning a wrong gradient. */
static int require_constant_mass(ct_context *ctx, const jac_fun *jyp) {
  ct_sparsity *dep = NULL;
  CT_CHECK(ctx, ct_fun_jac_sparsity(ctx, jyp->f, NULL, &dep));
  size_t nnz = dep->nnz;
  ct_sparsity_free(ctx, dep);
  if (nnz)
    return CT_ERROR(ctx, CT_ERR_UNSUPPORTED,
                    "DAE adjoints need dF/dy' to be constant (M y' = f with a "
                    "constant M), but dF/dy' of this model depends on t, y, y' "
                    "or p");
  return CT_OK;
}

/* The VJP of an optional objective term f (output `out`, checked first),
 * or an absent one (f NULL, positions -1) when f is NULL. */
static int build_term(ct_context *ctx, const ct_fun *f, const char *what, const char *out,
                      const ct_dae_asa *a, vjp_fun *v) {
  static const char *const wy[] = {"y", "p", NULL};
  static const vjp_fun absent = {NULL, -1, -1, -1, -1, -1, -1, -1, -1, -1};
  *v = absent;
  if (!f) return CT_OK;
  CT_CHECK(ctx, ct_objective_check(ctx, f, what, out, a->n, a->np));
  return build_vjp(ctx, f, out, 1, wy, v);
}

/* The merged pattern of dF/dy and dF/dy' and its transpose, the pattern of
 * the backward matrix cj dF/dy'^T - dF/dy^T. */
static int build_backward_pattern(ct_context *ctx, ct_dae_asa *a) {
  CT_CHECK(ctx, ct_dae_pattern_merge(ctx, a->jy.pattern, a->jyp.pattern, &a->merged));
  return ct_dae_pattern_transpose(ctx, &a->merged, &a->backward);
}

/* Fills a zeroed problem: checks g and phi, builds the VJPs, Jacobians,
 * the backward pattern and the adjoint component types. */
static int asa_fill(ct_context *ctx, ct_dae_asa *a, const ct_fun *g, const ct_fun *phi,
                    const ct_fun *h) {
  const ct_fun *F = ct_dae_res_fun(a->dae);
  const char *wy[] = {"y", "p", NULL}, *wyp[] = {"yp", NULL}, *wp[] = {"p", NULL};
  CT_CHECK(ctx, build_term(ctx, g, "integral objective", "g", a, &a->g));
  CT_CHECK(ctx, build_term(ctx, phi, "final-time term", "phi", a, &a->phi));
  CT_CHECK(ctx, build_term(ctx, h, "observation term", "h", a, &a->h));
  CT_CHECK(ctx, build_vjp(ctx, F, "F", 0, wy, &a->fy));
  CT_CHECK(ctx, build_vjp(ctx, F, "F", 0, wyp, &a->fyp));
  long oy0, oyp0;
  const ct_fun *init = ct_dae_init_fun(a->dae, &oy0, &oyp0);
  if (init && ct_fun_in_index(init, "p") >= 0)
    CT_CHECK(ctx, build_vjp(ctx, init, "y0", 0, wp, &a->y0));
  CT_CHECK(ctx, build_jac(ctx, F, "y", &a->jy));
  CT_CHECK(ctx, build_jac(ctx, F, "yp", &a->jyp));
  CT_CHECK(ctx, require_constant_mass(ctx, &a->jyp));
  CT_CHECK(ctx, build_backward_pattern(ctx, a));
  a->idb = ct_calloc(ctx, a->n ? a->n : 1, sizeof *a->idb);
  if (!a->idb) return CT_ERR_NOMEM;
  const ct_sparsity *s = a->jyp.pattern;
  for (size_t q = 0; q < s->nnz; q++) a->idb[s->rowind[q]] = 1.0;
  ct_fun *built[] = {a->fy.f, a->fyp.f, a->g.f, a->phi.f, a->h.f, a->y0.f,
                     a->jy.f, a->jyp.f};
  for (size_t i = 0; i < sizeof built / sizeof built[0]; i++) /* after ct_dae_jit */
    CT_CHECK(ctx, ct_dae_jit_fun(ctx, a->dae, built[i]));
  const ct_fun *all[] = {a->fy.f, a->fyp.f, a->g.f, a->phi.f, a->h.f, a->y0.f,
                         a->jy.f, a->jyp.f};
  a->work = 1;
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    if (all[i] && ct_fun_work_size(all[i]) > a->work) a->work = ct_fun_work_size(all[i]);
  return CT_OK;
}

/* Checks the model and objective, then builds the adjoint functions (see
 * dae.h); nothing kept on failure. */
int ct_dae_asa_new(ct_context *ctx, const ct_dae *dae, const ct_fun *g,
                   const ct_fun *phi, ct_dae_asa **out) {
  return ct_dae_asa_new_obs(ctx, dae, g, phi, NULL, out);
}

/* Checks the model and the objective terms, then builds the adjoint
 * functions (see dae.h); nothing kept on failure. */
int ct_dae_asa_new_obs(ct_context *ctx, const ct_dae *dae, const ct_fun *g,
                       const ct_fun *phi, const ct_fun *h, ct_dae_asa **out) {
  if (!out) return CT_ERROR(ctx, CT_ERR_ARG, "ct_dae_asa_new needs an output pointer");
  *out = NULL;
  if (!dae) return CT_ERROR(ctx, CT_ERR_ARG, "ct_dae_asa_new needs a model (dae is NULL)");
  if (!g && !phi && !h)
    return CT_ERROR(ctx, CT_ERR_ARG, "ct_dae_asa_new needs an objective: an integrand g, "
                    "a final-time term phi or an observation term h");
  if (ct_dae_n_roots(dae))
    return CT_ERROR(ctx, CT_ERR_ARG, "adjoints of DAE models with root functions are "
                    "not supported (the model has %zu)", ct_dae_n_roots(dae));
  ct_dae_asa *a = ct_calloc(ctx, 1, sizeof *a);
  if (!a) return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  a->ctx = ctx;
  a->dae = dae;
  a->n = ct_dae_n_states(dae);
  a->np = ct_dae_n_params(dae);
  int rc = asa_fill(ctx, a, g, phi, h);
  if (rc < 0) {
    ct_dae_asa_free(a);
    return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  }
  *out = a;
  return CT_OK;
}

/* Frees the problem (not the model). NULL is a no-op. */
void ct_dae_asa_free(ct_dae_asa *a) {
  if (!a) return;
  ct_fun_free(a->fy.f);
  ct_fun_free(a->fyp.f);
  ct_fun_free(a->g.f);
  ct_fun_free(a->phi.f);
  ct_fun_free(a->h.f);
  ct_fun_free(a->y0.f);
  ct_fun_free(a->jy.f);
  ct_fun_free(a->jyp.f);
  ct_sparsity_free(a->ctx, a->jy.pattern);
  ct_sparsity_free(a->ctx, a->jyp.pattern);
  ct_dae_pattern_free(a->ctx, &a->merged);
  ct_dae_pattern_free(a->ctx, &a->backward);
  ct_free(a->ctx, a->idb);
  ct_free(a->ctx, a);
}

/* ---- Options ------------------------------------------------------------------ */

ct_dae_asa_options ct_dae_asa_default_options(void) {
  ct_dae_asa_options o = {ct_dae_default_options(), 100, 0, 1e-6, 1e-8, 1e-6, 1e-6,
                          0, 1, 0, CT_DAE_LINSOL_AUTO, NULL, 0};
  return o;
}

/* Positive and finite. */
static int positive(double x) { return x > 0 && isfinite(x); }

/* Observation times only with h (and h only with them), increasing,
 * inside (t0, T]. */
static int check_observations(ct_context *ctx, const ct_dae_asa *a,
                              const ct_dae_asa_options *o, double t0, double T) {
  if (o->n_obs && !a->h.f)
    return CT_ERROR(ctx, CT_ERR_ARG, "%zu observation times but no observation term h "
                    "(build the problem with ct_dae_asa_new_obs)", o->n_obs);
  if (a->h.f && !o->n_obs)
    return CT_ERROR(ctx, CT_ERR_ARG, "the objective has an observation term h: pass "
                    "t_obs and n_obs");
  if (o->n_obs && !o->t_obs)
    return CT_ERROR(ctx, CT_ERR_ARG, "n_obs is %zu: pass t_obs", o->n_obs);
  for (size_t k = 0; k < o->n_obs; k++) {
    double tk = o->t_obs[k];
    if (!isfinite(tk) || !(tk > t0) || !(tk <= T) || (k && !(tk > o->t_obs[k - 1])))
      return CT_ERROR(ctx, CT_ERR_ARG, "observation times must increase inside "
                      "(t0, T] = (%g, %g], got t_obs[%zu] = %g", t0, T, k, tk);
  }
  return CT_OK;
}

/* Checks what the DAE's own check does not: the adjoint options, the time
 * span, the observation times and p. */
static int check_options(ct_context *ctx, const ct_dae_asa *a,
                         const ct_dae_asa_options *o, const double *p, double t0,
                         double T) {
  if (o->checkpoint_steps < 1)
    return CT_ERROR(ctx, CT_ERR_ARG, "checkpoint_steps must be positive, got %ld",
                    o->checkpoint_steps);
  if (o->polynomial != 0 && o->polynomial != 1)
    return CT_ERROR(ctx, CT_ERR_ARG, "polynomial must be 0 or 1, got %d", o->polynomial);
  if (!positive(o->rtol_b) || !positive(o->atol_b))
    return CT_ERROR(ctx, CT_ERR_ARG, "the backward tolerances must be positive, got "
                    "rtol_b %g, atol_b %g", o->rtol_b, o->atol_b);
  if (!positive(o->rtol_q) || !positive(o->atol_q) ||
      (o->rtol_q_b != 0 && !positive(o->rtol_q_b)))
    return CT_ERROR(ctx, CT_ERR_ARG, "the quadrature tolerances must be positive, got "
                    "rtol_q %g, atol_q %g, rtol_q_b %g", o->rtol_q, o->atol_q,
                    o->rtol_q_b);
  if ((unsigned)o->linsol_b > CT_DAE_LINSOL_GMRES)
    return CT_ERROR(ctx, CT_ERR_ARG, "unknown backward linear solver linsol_b %d",
                    (int)o->linsol_b);
  if (o->max_steps_b < 0)
    return CT_ERROR(ctx, CT_ERR_ARG, "max_steps_b must not be negative, got %ld",
                    o->max_steps_b);
  if (!isfinite(t0) || !isfinite(T) || !(T > t0))
    return CT_ERROR(ctx, CT_ERR_ARG, "the time span must be finite with T > t0, got "
                    "t0 = %g, T = %g", t0, T);
  CT_CHECK(ctx, check_observations(ctx, a, o, t0, T));
  if (a->np && !p)
    return CT_ERROR(ctx, CT_ERR_ARG, "the model has %zu parameters: pass p", a->np);
  return CT_OK;
}

/* ---- One solve ----------------------------------------------------------------- */

/* The state of one solve, reached from IDAS' callbacks: forward ones
 * through the DAE run's hook data, backward ones as their user data. */
typedef struct arun {
  ct_context *ctx;
  const ct_dae_asa *a;
  const ct_dae_asa_options *o;
  const double *p;
  double t0, T;
  ct_dae_asa_result *res;
  SUNContext sun;
  N_Vector q, yB, ypB, qB, yT, ypT, id;
  SUNMatrix AB;
  SUNLinearSolver LSB;
  ct_dae_linsol linsol_fwd;  /* the forward solve's (resolved) choice */
  double *work, *vy, *vp, *jy, *jyp;
  double *jm;        /* cj dF/dy' - dF/dy in the merged pattern */
  double *mu;        /* the final condition's multipliers of the algebraic
                        equations (0 in differential rows) */
  double *grad_T;    /* np: the jumps' boundary terms h_p - F_p^T mu (phi's
                        and h's), summed */
  double *phi_y;     /* n: d(phi or h)/dy at a jump */
  double *term_p;    /* np: d(phi or h)/dp at a jump */
  size_t n_tout;     /* forward outputs: t0, the t_obs inside (t0, T), T */
  const ct_dae_result *fwd; /* the forward outputs (y(t_k) for the jumps) */
  double *yt0, *ypt0;  /* (y, y')(t0), consistent: the first output */
  double t_buf, one;
  int which;
  int forward_done;
  int rc;            /* the backward phase's status */
  char cause[256];   /* what a backward callback found */
  char sundials[512];/* SUNDIALS' message of the backward integrator */
  ct_backward_progress bp; /* the backward phase's progress */
} arun;

/* Evaluates v at (t, y, yp, p) with seed `bar` (NULL when v has none),
 * writing the value, bar_y, bar_yp and bar_p where asked (NULL: skipped). */
static int vjp_eval(arun *s, const vjp_fun *v, double t, const double *y,
                    const double *yp, const double *bar, double *val, double *by,
                    double *byp, double *bp) {
  const double *in[5] = {0};
  double *out[4] = {0};
  s->t_buf = t;
  if (v->t >= 0) in[v->t] = &s->t_buf;
  if (v->y >= 0) in[v->y] = y;
  if (v->yp >= 0) in[v->yp] = yp;
  if (v->p >= 0) in[v->p] = s->p;
  if (v->bar >= 0) in[v->bar] = bar;
  if (v->val >= 0) out[v->val] = val;
  if (v->by >= 0) out[v->by] = by;
  if (v->byp >= 0) out[v->byp] = byp;
  if (v->bp >= 0) out[v->bp] = bp;
  return ct_fun_eval(s->ctx, v->f, in, out, s->work);
}

/* 0 when v (k numbers) is finite; else records the cause and returns 1
 * (recoverable: IDAS retries with a smaller step). */
static int check_finite(arun *s, const char *what, const double *v, size_t k,
                        double t) {
  for (size_t i = 0; i < k; i++)
    if (!isfinite(v[i])) {
      if (!*s->cause)
        snprintf(s->cause, sizeof s->cause, "the %s is %s in component %zu at "
                 "t = %.6g", what, isnan(v[i]) ? "NaN" : "infinite", i, t);
      return 1;
    }
  return 0;
}

/* IDAQuadRhsFn of the forward phase: the integrand g. */
static int quad_cb(sunrealtype t, N_Vector y, N_Vector yp, N_Vector qdot, void *ud) {
  (void)yp;
  arun *s = ct_dae_user_hook_data(ud);
  double *out = N_VGetArrayPointer(qdot);
  if (vjp_eval(s, &s->a->g, t, N_VGetArrayPointer(y), NULL, &s->one, out, NULL, NULL,
               NULL) < 0)
    return -1;
  if (!isfinite(out[0])) {
    ct_dae_user_cause(ud, "the integrand g is not finite");
    return 1;
  }
  return 0;
}

/* IDAS' step count (the backward phase's progress). */
static long ida_n_steps(void *mem) {
  long nst = 0;
  IDAGetNumSteps(mem, &nst);
  return nst;
}

/* IDAResFnB: F_y'^T lambda' - F_y^T lambda + g_y^T. */
static int res_b_cb(sunrealtype t, N_Vector y, N_Vector yp, N_Vector yB, N_Vector ypB,
                    N_Vector rrB, void *ud) {
  arun *s = ud;
  const ct_dae_asa *a = s->a;
  const double *yv = N_VGetArrayPointer(y), *ypv = N_VGetArrayPointer(yp);
  double *out = N_VGetArrayPointer(rrB);
  if (ct_backward_progress_step(&s->bp, t)) {
    snprintf(s->cause, sizeof s->cause, "interrupted");
    return -1;
  }
  if (vjp_eval(s, &a->fyp, t, yv, ypv, N_VGetArrayPointer(ypB), NULL, NULL, out,
               NULL) < 0)
    return -1;
  if (vjp_eval(s, &a->fy, t, yv, ypv, N_VGetArrayPointer(yB), NULL, s->vy, NULL,
               NULL) < 0)
    return -1;
  for (size_t i = 0; i < a->n; i++) out[i] -= s->vy[i];
  if (a->g.by >= 0) {
    if (vjp_eval(s, &a->g, t, yv, NULL, &s->one, NULL, s->vy, NULL, NULL) < 0) return -1;
    for (size_t i = 0; i < a->n; i++) out[i] += s->vy[i];
  }
  return check_finite(s, "adjoint residual", out, a->n, t);
}

/* IDAQuadRhsFnB: g_p - lambda^T F_p (its integral from t0 to T is -qB(t0)). */
static int quad_b_cb(sunrealtype t, N_Vector y, N_Vector yp, N_Vector yB, N_Vector ypB,
                     N_Vector qBdot, void *ud) {
  (void)ypB;
  arun *s = ud;
  const ct_dae_asa *a = s->a;
  const double *yv = N_VGetArrayPointer(y);
  double *out = N_VGetArrayPointer(qBdot);
  memset(out, 0, a->np * sizeof *out);
  if (a->fy.bp >= 0) {
    if (vjp_eval(s, &a->fy, t, yv, N_VGetArrayPointer(yp), N_VGetArrayPointer(yB), NULL,
                 NULL, NULL, out) < 0)
      return -1;
    for (size_t j = 0; j < a->np; j++) out[j] = -out[j];
  }
  if (a->g.bp >= 0) {
    if (vjp_eval(s, &a->g, t, yv, NULL, &s->one, NULL, NULL, NULL, s->vp) < 0) return -1;
    for (size_t j = 0; j < a->np; j++) out[j] += s->vp[j];
  }
  return check_finite(s, "gradient quadrature integrand", out, a->np, t);
}

/* Evaluates the sparse Jacobian j at (t, y, yp, p) into vals. */
static int jac_eval(arun *s, const jac_fun *j, double t, const double *y,
                    const double *yp, double *vals) {
  const double *in[4] = {0};
  double *out[1] = {vals};
  s->t_buf = t;
  if (j->t >= 0) in[j->t] = &s->t_buf;
  if (j->y >= 0) in[j->y] = y;
  if (j->yp >= 0) in[j->yp] = yp;
  if (j->p >= 0) in[j->p] = s->p;
  return ct_fun_eval(s->ctx, j->f, in, out, s->work);
}

/* cj dF/dy' - dF/dy at (t, y, y') in the merged pattern, into s->jm;
 * its transpose is the backward iteration matrix. 0, 1 (not finite:
 * recoverable) or -1. */
static int merged_values(arun *s, double t, double cj, const double *y,
                         const double *yp) {
  const ct_dae_asa *a = s->a;
  const ct_sparsity *py = a->jy.pattern, *pyp = a->jyp.pattern;
  if (jac_eval(s, &a->jy, t, y, yp, s->jy) < 0) return -1;
  if (jac_eval(s, &a->jyp, t, y, yp, s->jyp) < 0) return -1;
  if (check_finite(s, "Jacobian dF/dy", s->jy, py->nnz, t)) return 1;
  if (check_finite(s, "Jacobian dF/dy'", s->jyp, pyp->nnz, t)) return 1;
  memset(s->jm, 0, (a->merged.nnz ? a->merged.nnz : 1) * sizeof *s->jm);
  for (size_t q = 0; q < py->nnz; q++) s->jm[a->merged.map_a[q]] = -s->jy[q];
  for (size_t q = 0; q < pyp->nnz; q++) s->jm[a->merged.map_b[q]] += cj * s->jyp[q];
  return 0;
}

/* IDALsJacFnB: the matrix cjB F_y'^T - F_y^T (dense or CSC) from the sparse
 * AD Jacobians. */
static int jac_b_cb(sunrealtype t, sunrealtype cjB, N_Vector y, N_Vector yp,
                    N_Vector yB, N_Vector ypB, N_Vector rrB, SUNMatrix JB, void *ud,
                    N_Vector t1, N_Vector t2, N_Vector t3) {
  (void)yB, (void)ypB, (void)rrB, (void)t1, (void)t2, (void)t3;
  arun *s = ud;
  const ct_dae_pattern *m = &s->a->merged, *b = &s->a->backward;
  int rc = merged_values(s, t, cjB, N_VGetArrayPointer(y), N_VGetArrayPointer(yp));
  if (rc) return rc;
  if (SUNMatGetID(JB) == SUNMATRIX_DENSE) {
    SUNMatZero(JB);
    for (size_t j = 0; j < m->n; j++) /* entry (row r, column j) -> (j, r) */
      for (size_t q = m->colptr[j]; q < m->colptr[j + 1]; q++)
        SM_ELEMENT_D(JB, (sunindextype)j, (sunindextype)m->rowind[q]) = s->jm[q];
    return 0;
  }
  if (SUNMatGetID(JB) != SUNMATRIX_SPARSE) return -1;
  sunindextype *cp = SUNSparseMatrix_IndexPointers(JB);
  sunindextype *ri = SUNSparseMatrix_IndexValues(JB);
  double *data = SUNSparseMatrix_Data(JB);
  for (size_t j = 0; j <= b->n; j++) cp[j] = (sunindextype)b->colptr[j];
  for (size_t q = 0; q < b->nnz; q++) ri[q] = (sunindextype)b->rowind[q];
  for (size_t q = 0; q < m->nnz; q++) data[b->map_a[q]] = s->jm[q];
  return 0;
}

/* IDALsJacTimesVecFnB (GMRES): Jv = cjB F_y'^T v - F_y^T v from two AD VJPs
 * with seed v. */
static int jtimes_b_cb(sunrealtype t, N_Vector y, N_Vector yp, N_Vector yB,
                       N_Vector ypB, N_Vector rrB, N_Vector v, N_Vector Jv,
                       sunrealtype cjB, void *ud, N_Vector t1, N_Vector t2) {
  (void)yB, (void)ypB, (void)rrB, (void)t1, (void)t2;
  arun *s = ud;
  const ct_dae_asa *a = s->a;
  const double *yv = N_VGetArrayPointer(y), *ypv = N_VGetArrayPointer(yp);
  const double *vv = N_VGetArrayPointer(v);
  double *out = N_VGetArrayPointer(Jv);
  if (vjp_eval(s, &a->fyp, t, yv, ypv, vv, NULL, NULL, out, NULL) < 0) return -1;
  if (vjp_eval(s, &a->fy, t, yv, ypv, vv, NULL, s->vy, NULL, NULL) < 0) return -1;
  for (size_t i = 0; i < a->n; i++) out[i] = cjB * out[i] - s->vy[i];
  return check_finite(s, "backward Jacobian-vector product", out, a->n, t);
}

/* Keeps SUNDIALS' message of the backward integrator for the report. */
static void sundials_error_b(int code, const char *module, const char *function,
                             char *msg, void *ud) {
  arun *s = ud;
  snprintf(s->sundials, sizeof s->sundials, "%s %s (%d): %s", module, function, code,
           msg);
}

/* Advance hook: IDASolveF, which records checkpoints. */
static int advance_f(void *ud, void *mem, double tout, double *t, N_Vector y,
                     N_Vector yp) {
  arun *s = ud;
  int ncheck = 0;
  int flag = IDASolveF(mem, tout, t, y, yp, IDA_NORMAL, &ncheck);
  if (flag >= 0) s->res->n_checkpoints = ncheck;
  return flag;
}

/* advance_f one step at a time (IDA_ONE_STEP), for progress reporting. */
static int advance_one_f(void *ud, void *mem, double tout, double *t, N_Vector y,
                         N_Vector yp) {
  arun *s = ud;
  int ncheck = 0;
  int flag = IDASolveF(mem, tout, t, y, yp, IDA_ONE_STEP, &ncheck);
  if (flag >= 0) s->res->n_checkpoints = ncheck;
  return flag;
}

/* Setup hook: the forward quadrature of g (if any) and IDAS' adjoint
 * memory. */
static int setup_hook(ct_context *ctx, void *ud, void *mem, SUNContext sun, N_Vector y,
                      const ct_dae_options *o) {
  (void)y, (void)o;
  arun *s = ud;
  s->sun = sun;
  if (!(s->q = N_VNew_Serial(1, sun)))
    return CT_ERROR(ctx, CT_ERR_NOMEM, "N_VNew_Serial returned NULL");
  N_VConst(0.0, s->q);
  int flag = 0;
  if (s->a->g.f) {
    flag = IDAQuadInit(mem, quad_cb, s->q);
    if (flag >= 0) flag = IDAQuadSStolerances(mem, s->o->rtol_q, s->o->atol_q);
    if (flag >= 0) flag = IDASetQuadErrCon(mem, s->o->quad_err_con ? SUNTRUE : SUNFALSE);
  }
  if (flag >= 0)
    flag = IDAAdjInit(mem, s->o->checkpoint_steps,
                      s->o->polynomial ? IDA_POLYNOMIAL : IDA_HERMITE);
  if (flag < 0)
    return CT_ERROR(ctx, CT_ERR_EXTERNAL, "setting up the IDAS adjoint failed with "
                    "flag %d", flag);
  return CT_OK;
}

/* Output hook: keeps (y, y')(t0) for the gradient and (y, y')(T) (the
 * last output) for the final values; sums h at the observation times. */
static int output_hook(ct_context *ctx, void *ud, void *mem, const ct_dae_result *r,
                       const ct_dae_options *o) {
  (void)mem, (void)o;
  arun *s = ud;
  size_t n = s->a->n, k = r->n_out - 1;
  s->linsol_fwd = r->linsol;
  s->fwd = r;
  if (k == 0) {
    memcpy(s->yt0, r->y, n * sizeof(double));
    memcpy(s->ypt0, r->yp, n * sizeof(double));
    return CT_OK;
  }
  if (k <= s->o->n_obs) { /* output k is y(t_obs[k - 1]) */
    double hk = 0;
    CT_CHECK(ctx, vjp_eval(s, &s->a->h, s->o->t_obs[k - 1], r->y + k * n, NULL, &s->one,
                           &hk, NULL, NULL, NULL));
    s->res->observed += hk;
  }
  if (k + 1 < s->n_tout) return CT_OK;
  if (!(s->yT = N_VNew_Serial((sunindextype)n, s->sun)) ||
      !(s->ypT = N_VNew_Serial((sunindextype)n, s->sun)))
    return CT_ERROR(ctx, CT_ERR_NOMEM, "N_VNew_Serial returned NULL");
  memcpy(N_VGetArrayPointer(s->yT), r->y + k * n, n * sizeof(double));
  memcpy(N_VGetArrayPointer(s->ypT), r->yp + k * n, n * sizeof(double));
  s->forward_done = 1;
  return CT_OK;
}

/* The backward linear solver: linsol_b, or the forward's choice (auto);
 * dense and KLU with jac_b_cb, GMRES with jtimes_b_cb. */
static int attach_linear_solver_b(arun *s, void *mem) {
  ct_context *ctx = s->ctx;
  sunindextype n = (sunindextype)s->a->n;
  ct_dae_linsol ls = s->o->linsol_b == CT_DAE_LINSOL_AUTO ? s->linsol_fwd : s->o->linsol_b;
  s->res->linsol_b = ls;
  if (ls == CT_DAE_LINSOL_GMRES) {
    if (!(s->LSB = SUNLinSol_SPGMR(s->yB, SUN_PREC_NONE, 0, s->sun)))
      return CT_ERROR(ctx, CT_ERR_NOMEM, "the backward GMRES solver could not be created");
    CT_SUN_CALL(ctx, IDASetLinearSolverB(mem, s->which, s->LSB, NULL));
    CT_SUN_CALL(ctx, IDASetJacTimesB(mem, s->which, NULL, jtimes_b_cb));
    return CT_OK;
  }
  if (ls == CT_DAE_LINSOL_KLU) {
    sunindextype nnz = (sunindextype)(s->a->backward.nnz ? s->a->backward.nnz : 1);
    if (!(s->AB = SUNSparseMatrix(n, n, nnz, CSC_MAT, s->sun)) ||
        !(s->LSB = SUNLinSol_KLU(s->yB, s->AB, s->sun)))
      return CT_ERROR(ctx, CT_ERR_NOMEM, "the backward KLU solver could not be created");
  } else if (!(s->AB = SUNDenseMatrix(n, n, s->sun)) ||
             !(s->LSB = SUNLinSol_Dense(s->yB, s->AB, s->sun))) {
    return CT_ERROR(ctx, CT_ERR_NOMEM, "the backward dense solver could not be created");
  }
  CT_SUN_CALL(ctx, IDASetLinearSolverB(mem, s->which, s->LSB, s->AB));
  CT_SUN_CALL(ctx, IDASetJacFnB(mem, s->which, jac_b_cb));
  return CT_OK;
}

/* A point of the forward solution where lambda jumps: t, y(t), y'(t). */
typedef struct jump_at {
  double t;
  const double *y, *yp;
} jump_at;

/* The right-hand side of the consistency system at x:
 * F_y^T lambda_d - g_y^T (lambda zero in the algebraic rows). */
static int consistency_rhs(arun *s, const jump_at *x, const double *lam, double *rhs) {
  const ct_dae_asa *a = s->a;
  if (vjp_eval(s, &a->fy, x->t, x->y, x->yp, lam, NULL, rhs, NULL, NULL) < 0) return -1;
  if (a->g.by >= 0) {
    if (vjp_eval(s, &a->g, x->t, x->y, NULL, &s->one, NULL, s->vy, NULL, NULL) < 0)
      return -1;
    for (size_t i = 0; i < a->n; i++) rhs[i] -= s->vy[i];
  }
  return 0;
}

/* With the LU of B^T (Bt, dense) at x: B^T w = term_y^T gives the jump of
 * lambda_d, w_d (added to lam's differential rows), and mu = w_a; the
 * adjoint residual there, F_y'^T lambda' - F_y^T lambda + g_y^T = 0, is
 * then B^T z = F_y^T lambda_d - g_y^T with lambda'_d = z_d, lambda_a =
 * -z_a (lambda'_a = 0): consistent values without IDACalcICB. Returns 0,
 * the 1-based column of a zero pivot, or -1 on another failure. */
static int jump_solves(arun *s, const jump_at *x, SUNMatrix Bt, const double *term_y,
                       double *lam, double *lamp) {
  const ct_dae_asa *a = s->a;
  size_t n = a->n;
  N_Vector b = N_VNew_Serial((sunindextype)n, s->sun);
  N_Vector w = N_VNew_Serial((sunindextype)n, s->sun);
  SUNLinearSolver LS = b ? SUNLinSol_Dense(b, Bt, s->sun) : NULL;
  int rc = b && w && LS && SUNLinSolInitialize(LS) == 0 ? 0 : -1;
  if (rc == 0 && SUNLinSolSetup(LS, Bt) != 0) rc = (int)SUNLinSolLastFlag(LS);
  double *bv = b ? N_VGetArrayPointer(b) : NULL, *wv = w ? N_VGetArrayPointer(w) : NULL;
  if (rc == 0) {
    memcpy(bv, term_y, n * sizeof *bv);
    if (SUNLinSolSolve(LS, Bt, w, b, 0.0) != 0) rc = -1;
  }
  for (size_t i = 0; rc == 0 && i < n; i++) {
    int diff = a->idb[i] != 0.0;
    lam[i] = diff ? lam[i] + wv[i] : 0.0;
    s->mu[i] = diff ? 0.0 : wv[i];
  }
  if (rc == 0) rc = consistency_rhs(s, x, lam, bv);
  if (rc == 0 && SUNLinSolSolve(LS, Bt, w, b, 0.0) != 0) rc = -1;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    int diff = a->idb[i] != 0.0;
    lamp[i] = diff ? wv[i] : 0.0;
    if (!diff) lam[i] = -wv[i];
  }
  if (LS) SUNLinSolFree(LS);
  if (b) N_VDestroy(b);
  if (w) N_VDestroy(w);
  return rc;
}

/* B^T at x, dense: B's row i is row i of dF/dy' where lambda_i is
 * differential, row i of dF/dy where it is algebraic. */
static int jump_matrix(arun *s, const jump_at *x, SUNMatrix Bt) {
  const ct_dae_asa *a = s->a;
  const ct_sparsity *py = a->jy.pattern, *pyp = a->jyp.pattern;
  if (jac_eval(s, &a->jy, x->t, x->y, x->yp, s->jy) < 0) return -1;
  if (jac_eval(s, &a->jyp, x->t, x->y, x->yp, s->jyp) < 0) return -1;
  SUNMatZero(Bt);
  for (size_t c = 0; c < py->ncols; c++)
    for (size_t q = py->colptr[c]; q < py->colptr[c + 1]; q++)
      if (a->idb[py->rowind[q]] == 0.0)
        SM_ELEMENT_D(Bt, (sunindextype)c, (sunindextype)py->rowind[q]) = s->jy[q];
  for (size_t c = 0; c < pyp->ncols; c++)
    for (size_t q = pyp->colptr[c]; q < pyp->colptr[c + 1]; q++)
      SM_ELEMENT_D(Bt, (sunindextype)c, (sunindextype)pyp->rowind[q]) = s->jyp[q];
  return 0;
}

/* A singular jump matrix: CT_ERR_SOLVER with the reason in the result. */
static int fail_jump(arun *s, const char *what, double t, int column) {
  snprintf(s->res->message, sizeof s->res->message, "backward phase: t = %.6g: the "
           "adjoint condition of %s cannot be formed: the matrix of the differential rows "
           "of dF/dy' and the algebraic rows of dF/dy is singular there (zero pivot in "
           "column %d: is the DAE of index higher than 1?)", t, what, column);
  return CT_ERROR(s->ctx, CT_ERR_SOLVER, "%s", s->res->message);
}

/* The jump of the adjoint at x from the objective term `term` (phi at T,
 * or h at an observation time; its value into *value when not NULL): lambda
 * and lambda' in yB, ypB made consistent after it (jump_solves), and
 * grad_T += term_p - F_p^T mu, since mu^T dF/dy s = -mu^T dF/dp on the
 * algebraic rows eliminates the term's dependence on the algebraic
 * variables from the boundary term (term_y - lambda^T F_y') s. */
static int add_jump(arun *s, const vjp_fun *term, const char *what, const jump_at *x,
                    double *value) {
  ct_context *ctx = s->ctx;
  const ct_dae_asa *a = s->a;
  size_t n = a->n;
  memset(s->phi_y, 0, (n ? n : 1) * sizeof *s->phi_y);
  memset(s->term_p, 0, (a->np ? a->np : 1) * sizeof *s->term_p);
  CT_CHECK(ctx, vjp_eval(s, term, x->t, x->y, NULL, &s->one, value, s->phi_y, NULL,
                         s->term_p));
  SUNMatrix Bt = SUNDenseMatrix((sunindextype)n, (sunindextype)n, s->sun);
  if (!Bt) return CT_ERROR(ctx, CT_ERR_NOMEM, "SUNDenseMatrix returned NULL");
  int rc = jump_matrix(s, x, Bt);
  if (rc == 0)
    rc = jump_solves(s, x, Bt, s->phi_y, N_VGetArrayPointer(s->yB),
                     N_VGetArrayPointer(s->ypB));
  SUNMatDestroy(Bt);
  if (rc < 0) return CT_ERROR(ctx, CT_ERR_EXTERNAL, "the adjoint condition of %s could "
                              "not be solved (evaluation or dense solver failure)", what);
  if (rc > 0) return fail_jump(s, what, x->t, rc);
  for (size_t j = 0; j < a->np; j++) s->grad_T[j] += s->term_p[j];
  if (a->fy.bp >= 0) {
    CT_CHECK(ctx, vjp_eval(s, &a->fy, x->t, x->y, x->yp, s->mu, NULL, NULL, NULL, s->vp));
    for (size_t j = 0; j < a->np; j++) s->grad_T[j] -= s->vp[j];
  }
  return CT_OK;
}

/* The forward solution at observation k (output k + 1). */
static jump_at obs_point(const arun *s, size_t k) {
  size_t n = s->a->n;
  jump_at x = {s->o->t_obs[k], s->fwd->y + (k + 1) * n, s->fwd->yp + (k + 1) * n};
  return x;
}

/* The jumps at T: phi's, and h's when the last observation is at T.
 * Returns how many were applied. */
static int final_jumps(arun *s, int *count) {
  const ct_dae_asa *a = s->a;
  jump_at x = {s->T, N_VGetArrayPointer(s->yT), N_VGetArrayPointer(s->ypT)};
  size_t m = s->o->n_obs;
  *count = 0;
  if (a->phi.f) {
    CT_CHECK(s->ctx, add_jump(s, &a->phi, "phi", &x, &s->res->final));
    ++*count;
  }
  if (m && s->o->t_obs[m - 1] == s->T) {
    CT_CHECK(s->ctx, add_jump(s, &a->h, "h", &x, NULL));
    ++*count;
  }
  return CT_OK;
}

/* The backward problem: consistent adjoint states at T from the jumps
 * there (without any: zero, made consistent later by IDACalcICB; *jumps
 * says how many), its linear solver and the quadrature. */
static int backward_setup(arun *s, void *mem, int *jumps) {
  ct_context *ctx = s->ctx;
  const ct_dae_asa_options *o = s->o;
  sunindextype n = (sunindextype)s->a->n, np = (sunindextype)s->a->np;
  if (!(s->yB = N_VNew_Serial(n, s->sun)) || !(s->ypB = N_VNew_Serial(n, s->sun)) ||
      !(s->qB = N_VNew_Serial(np ? np : 1, s->sun)) || !(s->id = N_VNew_Serial(n, s->sun)))
    return CT_ERROR(ctx, CT_ERR_NOMEM, "N_VNew_Serial returned NULL");
  N_VConst(0.0, s->yB);
  N_VConst(0.0, s->ypB);
  N_VConst(0.0, s->qB);
  memcpy(N_VGetArrayPointer(s->id), s->a->idb, s->a->n * sizeof(double));
  CT_CHECK(ctx, final_jumps(s, jumps));
  CT_SUN_CALL(ctx, IDACreateB(mem, &s->which));
  IDASetErrHandlerFn(IDAGetAdjIDABmem(mem, s->which), sundials_error_b, s);
  CT_SUN_CALL(ctx, IDAInitB(mem, s->which, res_b_cb, s->T, s->yB, s->ypB));
  s->bp.mem = IDAGetAdjIDABmem(mem, s->which);
  s->bp.n_steps = ida_n_steps;
  CT_SUN_CALL(ctx, IDASStolerancesB(mem, s->which, o->rtol_b, o->atol_b));
  CT_SUN_CALL(ctx, IDASetUserDataB(mem, s->which, s));
  if (o->max_steps_b) CT_SUN_CALL(ctx, IDASetMaxNumStepsB(mem, s->which, o->max_steps_b));
  CT_CHECK(ctx, attach_linear_solver_b(s, mem));
  if (np) {
    CT_SUN_CALL(ctx, IDAQuadInitB(mem, s->which, quad_b_cb, s->qB));
    CT_SUN_CALL(ctx, IDAQuadSStolerancesB(mem, s->which,
                                       o->rtol_q_b ? o->rtol_q_b : o->rtol_b, o->atol_q));
    CT_SUN_CALL(ctx, IDASetQuadErrConB(mem, s->which, o->quad_err_con ? SUNTRUE : SUNFALSE));
  }
  CT_SUN_CALL(ctx, IDASetIdB(mem, s->which, s->id));
  return CT_OK;
}

/* A backward failure: CT_ERR_SOLVER with "backward phase: t = ...: cause"
 * in the result (CT_ERR_INTERRUPTED, "...: interrupted", when the progress
 * callback stopped it). */
static int fail_b(arun *s, void *mem, const char *what, int flag) {
  double tb = s->T;
  void *memb = IDAGetAdjIDABmem(mem, s->which);
  if (memb) IDAGetCurrentTime(memb, &tb);
  if (s->bp.interrupted) {
    snprintf(s->res->message, sizeof s->res->message, "backward phase: t = %.6g: "
             "interrupted", tb);
    return CT_ERROR(s->ctx, CT_ERR_INTERRUPTED, "%s", s->res->message);
  }
  char singular[256];
  if (!*s->cause && ct_dae_singular_cause(s->LSB, "cjB dF/dy'^T - dF/dy^T", singular,
                                          sizeof singular))
    snprintf(s->cause, sizeof s->cause, "%s", singular);
  if (snprintf(s->res->message, sizeof s->res->message, "backward phase: t = %.6g: %s "
               "(%s flag %d)%s%.300s", tb, *s->cause ? s->cause : "the adjoint "
               "integration failed", what, flag, *s->sundials ? "; " : "",
               s->sundials) < 0)
    s->res->message[0] = '\0';
  return CT_ERROR(s->ctx, CT_ERR_SOLVER, "%s", s->res->message);
}

/* Adds the backward statistics of one interval between observation times
 * (IDAReInitB resets IDAS' counters); the first step is the first
 * interval's, the last step and order the latest's. */
static void collect_stats_b(void *memb, ct_dae_asa_result *res, int first) {
  ct_dae_stats i = {0};
  long quad = 0;
  IDAGetNumSteps(memb, &i.steps);
  IDAGetNumResEvals(memb, &i.res_evals);
  IDAGetNumLinSolvSetups(memb, &i.lin_setups);
  IDAGetNumErrTestFails(memb, &i.err_test_fails);
  IDAGetNumNonlinSolvIters(memb, &i.nonlin_iters);
  IDAGetNumNonlinSolvConvFails(memb, &i.nonlin_conv_fails);
  IDAGetNumJacEvals(memb, &i.jac_evals);
  IDAGetNumJtimesEvals(memb, &i.jtimes_evals);
  IDAGetNumLinIters(memb, &i.lin_iters);
  IDAGetNumLinResEvals(memb, &i.lin_res_evals);
  IDAGetNumBacktrackOps(memb, &i.ic_backtracks);
  IDAGetActualInitStep(memb, &i.first_step);
  IDAGetLastStep(memb, &i.last_step);
  IDAGetLastOrder(memb, &i.last_order);
  if (res->np) IDAGetQuadNumRhsEvals(memb, &quad);
  ct_dae_stats *st = &res->stats_b;
  st->steps += i.steps;
  st->res_evals += i.res_evals;
  st->lin_setups += i.lin_setups;
  st->err_test_fails += i.err_test_fails;
  st->nonlin_iters += i.nonlin_iters;
  st->nonlin_conv_fails += i.nonlin_conv_fails;
  st->jac_evals += i.jac_evals;
  st->jtimes_evals += i.jtimes_evals;
  st->lin_iters += i.lin_iters;
  st->lin_res_evals += i.lin_res_evals;
  st->ic_backtracks += i.ic_backtracks;
  if (first) st->first_step = i.first_step;
  st->last_step = i.last_step;
  st->last_order = i.last_order;
  res->quad_evals_b += quad;
}

/* IDASolveB to tout, its statistics added, lambda (and the quadrature)
 * there into yB, ypB, qB. */
static int solve_interval(arun *s, void *mem, double tout, int first) {
  ct_context *ctx = s->ctx;
  double t;
  s->cause[0] = s->sundials[0] = '\0';
  s->bp.tout = tout;
  int flag = IDASolveB(mem, tout, IDA_NORMAL);
  void *memb = IDAGetAdjIDABmem(mem, s->which);
  if (memb) collect_stats_b(memb, s->res, first);
  if (flag < 0) return fail_b(s, mem, "IDASolveB", flag);
  CT_SUN_CALL(ctx, IDAGetB(mem, s->which, &t, s->yB, s->ypB));
  if (s->a->np) CT_SUN_CALL(ctx, IDAGetQuadB(mem, s->which, &t, s->qB));
  return CT_OK;
}

/* Backward from T to t0, restarting at each observation time inside
 * (t0, T) with h's jump (IDAReInitB, IDAQuadReInitB). */
static int backward_intervals(arun *s, void *mem) {
  ct_context *ctx = s->ctx;
  size_t m = s->o->n_obs;
  if (m && s->o->t_obs[m - 1] == s->T) m--; /* applied at T */
  for (size_t k = m; k-- > 0;) {
    CT_CHECK(ctx, solve_interval(s, mem, s->o->t_obs[k], k + 1 == m));
    jump_at x = obs_point(s, k);
    CT_CHECK(ctx, add_jump(s, &s->a->h, "h", &x, NULL));
    CT_SUN_CALL(ctx, IDAReInitB(mem, s->which, x.t, s->yB, s->ypB));
    s->bp.nst = 0; /* IDAReInitB restarts the step count */
    if (s->a->np) CT_SUN_CALL(ctx, IDAQuadReInitB(mem, s->which, s->qB));
  }
  return solve_interval(s, mem, s->t0, m == 0);
}

/* The gradient from lambda(t0) and the quadrature: dJ/dy0 = F_y'^T lambda,
 * dJ/dp = -qB(t0) + (dy0/dp)^T dJ/dy0. */
static int gradient(arun *s, const double *y0, const double *yp0) {
  const ct_dae_asa *a = s->a;
  ct_dae_asa_result *res = s->res;
  const double *qB = N_VGetArrayPointer(s->qB);
  memcpy(res->lambda0, N_VGetArrayPointer(s->yB), a->n * sizeof(double));
  memcpy(res->lambdap0, N_VGetArrayPointer(s->ypB), a->n * sizeof(double));
  CT_CHECK(s->ctx, vjp_eval(s, &a->fyp, s->t0, y0, yp0, res->lambda0, NULL, NULL,
                            res->dJdy0, NULL));
  for (size_t j = 0; j < a->np; j++) res->dJdp[j] = -qB[j] + s->grad_T[j];
  if (a->y0.f && a->y0.bp >= 0) { /* evaluated as solvers/dae.c evaluates init */
    CT_CHECK(s->ctx, vjp_eval(s, &a->y0, 0, NULL, NULL, res->dJdy0, NULL, NULL, NULL,
                              s->vp));
    for (size_t j = 0; j < a->np; j++) res->dJdp[j] += s->vp[j];
  }
  res->backward_done = 1;
  return CT_OK;
}

/* The backward phase after a successful forward phase: J, consistent
 * lambda(T), IDASolveB to t0 (restarted at the observation times), the
 * gradient. */
static int backward(arun *s, void *mem) {
  ct_context *ctx = s->ctx;
  ct_dae_asa_result *res = s->res;
  if (s->a->g.f) {
    /* at T itself: stepping one step at a time leaves IDAS' last return
       time at the step past T (IDAGetQuad would read there) */
    CT_SUN_CALL(ctx, IDAGetQuadDky(mem, s->T, 0, s->q));
    res->integral = N_VGetArrayPointer(s->q)[0];
    IDAGetQuadNumRhsEvals(mem, &res->quad_evals);
  }
  res->value = res->integral + res->observed;
  int jumps = 0;
  CT_CHECK(ctx, backward_setup(s, mem, &jumps));
  res->value = res->integral + res->final + res->observed;
  if (!jumps) { /* lambda_d(T) = 0: IDACalcICB, as SUNDIALS' examples */
    double t1 = s->T - 0.01 * (s->T - s->t0);
    int flag = IDACalcICB(mem, s->which, t1, s->yT, s->ypT);
    if (flag < 0) return fail_b(s, mem, "IDACalcICB", flag);
    CT_SUN_CALL(ctx, IDAGetConsistentICB(mem, s->which, s->yB, s->ypB));
  }
  CT_CHECK(ctx, backward_intervals(s, mem));
  if (s->bp.progress) /* the end of the backward phase; too late to stop */
    (void)s->bp.progress(s->t0, s->bp.ud);
  return gradient(s, s->yt0, s->ypt0);
}

/* Finish hook: runs the backward phase while IDAS is alive. */
static void finish_hook(void *ud, void *mem) {
  arun *s = ud;
  if (!s->forward_done) return;
  s->rc = backward(s, mem);
}

/* ---- Solving ------------------------------------------------------------------- */

/* The result's arrays and the solve's buffers. */
static int allocate(ct_context *ctx, const ct_dae_asa *a, arun *s,
                    ct_dae_asa_result *res) {
  size_t n = a->n ? a->n : 1, np = a->np ? a->np : 1;
  res->n = a->n;
  res->np = a->np;
  res->dJdp = ct_calloc(ctx, np, sizeof *res->dJdp);
  res->lambda0 = ct_calloc(ctx, n, sizeof *res->lambda0);
  res->lambdap0 = ct_calloc(ctx, n, sizeof *res->lambdap0);
  res->dJdy0 = ct_calloc(ctx, n, sizeof *res->dJdy0);
  s->work = ct_alloc(ctx, a->work * sizeof *s->work);
  s->vy = ct_alloc(ctx, n * sizeof *s->vy);
  s->vp = ct_alloc(ctx, np * sizeof *s->vp);
  s->jy = ct_alloc(ctx, (a->jy.pattern->nnz ? a->jy.pattern->nnz : 1) * sizeof *s->jy);
  s->jyp = ct_alloc(ctx, (a->jyp.pattern->nnz ? a->jyp.pattern->nnz : 1) * sizeof *s->jyp);
  s->jm = ct_alloc(ctx, (a->merged.nnz ? a->merged.nnz : 1) * sizeof *s->jm);
  s->mu = ct_calloc(ctx, n, sizeof *s->mu);
  s->grad_T = ct_calloc(ctx, np, sizeof *s->grad_T);
  s->phi_y = ct_calloc(ctx, n, sizeof *s->phi_y);
  s->term_p = ct_calloc(ctx, np, sizeof *s->term_p);
  s->yt0 = ct_alloc(ctx, n * sizeof *s->yt0);
  s->ypt0 = ct_alloc(ctx, n * sizeof *s->ypt0);
  if (!res->dJdp || !res->lambda0 || !res->lambdap0 || !res->dJdy0 || !s->work ||
      !s->vy || !s->vp || !s->jy || !s->jyp || !s->jm || !s->mu || !s->grad_T ||
      !s->phi_y || !s->term_p || !s->yt0 || !s->ypt0)
    return CT_ERR_NOMEM;
  return CT_OK;
}

/* Frees the solve's buffers and SUNDIALS objects. */
static void release(arun *s) {
  ct_context *ctx = s->ctx;
  if (s->LSB) SUNLinSolFree(s->LSB);
  if (s->AB) SUNMatDestroy(s->AB);
  N_Vector v[] = {s->q, s->yB, s->ypB, s->qB, s->yT, s->ypT, s->id};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
    if (v[i]) N_VDestroy(v[i]);
  ct_free(ctx, s->work);
  ct_free(ctx, s->vy);
  ct_free(ctx, s->vp);
  ct_free(ctx, s->jy);
  ct_free(ctx, s->jyp);
  ct_free(ctx, s->jm);
  ct_free(ctx, s->mu);
  ct_free(ctx, s->grad_T);
  ct_free(ctx, s->phi_y);
  ct_free(ctx, s->term_p);
  ct_free(ctx, s->yt0);
  ct_free(ctx, s->ypt0);
}

/* Runs the forward phase with the adjoint hooks (the backward phase runs in
 * the finish hook) and reports either phase's failure (see dae.h). */
int ct_dae_asa_solve(ct_context *ctx, const ct_dae_asa *a, const double *p,
                     const double *y0, const double *yp0, double t0, double T,
                     const ct_dae_asa_options *opts, ct_dae_asa_result **out) {
  if (!out) return CT_ERROR(ctx, CT_ERR_ARG, "ct_dae_asa_solve needs an output pointer");
  *out = NULL;
  if (!a) return CT_ERROR(ctx, CT_ERR_ARG, "no adjoint problem (asa is NULL)");
  ct_dae_asa_options o = opts ? *opts : ct_dae_asa_default_options();
  CT_CHECK(ctx, check_options(ctx, a, &o, p, t0, T));
  ct_dae_asa_result *res = ct_calloc(ctx, 1, sizeof *res);
  if (!res) return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  arun s;
  memset(&s, 0, sizeof s);
  s.ctx = ctx;
  s.a = a;
  s.o = &o;
  s.bp.progress = o.dae.progress;
  s.bp.ud = o.dae.progress_ud;
  s.p = p;
  s.t0 = t0;
  s.T = T;
  s.res = res;
  s.one = 1.0;
  s.which = -1;
  s.n_tout = 2 + o.n_obs - (o.n_obs && o.t_obs[o.n_obs - 1] == T);
  double *tout = ct_alloc(ctx, s.n_tout * sizeof *tout);
  int rc = tout ? allocate(ctx, a, &s, res) : CT_ERR_NOMEM;
  if (rc == CT_OK) {
    tout[0] = t0;
    if (o.n_obs) memcpy(tout + 1, o.t_obs, o.n_obs * sizeof *tout);
    tout[s.n_tout - 1] = T;
    ct_dae_hooks h = {setup_hook, output_hook, finish_hook, &s, advance_f, advance_one_f};
    rc = ct_dae_solve_hooked(ctx, a->dae, p, y0, yp0, tout, s.n_tout, &o.dae, &h,
                             &res->dae);
    if (rc == CT_ERR_SOLVER || rc == CT_ERR_INTERRUPTED) {
      if (snprintf(res->message, sizeof res->message, "forward phase: %s",
                   res->dae ? res->dae->message : "") < 0)
        res->message[0] = '\0';
      rc = CT_ERROR(ctx, rc, "%s", res->message);
    } else if (rc == CT_OK && s.rc < 0) {
      rc = s.rc; /* the backward phase's failure */
    }
  }
  release(&s);
  ct_free(ctx, tout);
  if (rc < 0 && rc != CT_ERR_SOLVER && rc != CT_ERR_INTERRUPTED) {
    ct_dae_asa_result_free(ctx, res);
    return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  }
  res->status = rc;
  *out = res; /* a solver failure keeps what was computed */
  return rc < 0 ? ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__) : CT_OK;
}

/* Frees the result and everything in it. NULL is a no-op. */
void ct_dae_asa_result_free(ct_context *ctx, ct_dae_asa_result *res) {
  if (!res) return;
  ct_dae_result_free(ctx, res->dae);
  ct_free(ctx, res->dJdp);
  ct_free(ctx, res->lambda0);
  ct_free(ctx, res->lambdap0);
  ct_free(ctx, res->dJdy0);
  ct_free(ctx, res);
}
