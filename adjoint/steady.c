/* Steady states of ODE models: f(x, p) = 0 solved by Newton (ct_nlsolve)
 * from the initial values, with a fallback that integrates the model in
 * time until max |f| is small and polishes with Newton from there. Their
 * sensitivities and adjoints are the implicit derivatives of the Newton
 * problem (cotangent/implicit.h), never derivatives of the integration.
 *
 * The Newton problem needs F(x, p) = f(t0, x, p) as an AD function with
 * inputs "x", "p": it is made by replaying the model's right-hand side
 * into a new graph (ct_fun_call) with t bound to the constant t0. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../solvers/ode_internal.h"
#include "cotangent/implicit.h"

struct ct_steady {
  ct_context *ctx;
  const ct_ode *m;
  double t0;
  size_t n, np;
  ct_nlsolve *nls; /* F(x, p) = f(t0, x, p) */
  ct_ode *flow;    /* the model without its initial-value function: the
                      fallback integrates from x0, whatever y0(p) says */
  int solved;      /* the last ct_steady_solve succeeded */
};

/* ---- Building F(x, p) --------------------------------------------------------- */

/* Calls the model function b inside g with t, y, p bound to the variables
 * t, y, p; writes its single output (n variables) to out. */
static int call_bound(ct_context *ctx, ct_graph *g, const ct_bound_fun *b, const ct_var *t,
                      const ct_var *y, const ct_var *p, ct_var *out) {
  size_t n_in = ct_fun_n_in(b->f);
  const ct_var **in = ct_calloc(ctx, n_in ? n_in : 1, sizeof *in);
  if (!in) return CT_ERR_NOMEM;
  if (b->t >= 0) in[b->t] = t;
  if (b->y >= 0) in[b->y] = y;
  if (b->p >= 0) in[b->p] = p;
  ct_var *const outs[] = {out};
  int rc = ct_fun_call(g, b->f, in, outs);
  ct_free(ctx, in);
  return rc;
}

/* The model's full right-hand side (fi + fe for split models) at (t, y, p)
 * into f (n variables). */
static int call_rhs(ct_context *ctx, ct_graph *g, const ct_ode *m, const ct_var *t,
                    const ct_var *y, const ct_var *p, ct_var *f) {
  CT_CHECK(ctx, call_bound(ctx, g, &m->rhs, t, y, p, f));
  if (!m->rhs_e.f) return CT_OK;
  ct_var *fe = ct_alloc(ctx, (m->n ? m->n : 1) * sizeof *fe);
  if (!fe) return CT_ERR_NOMEM;
  int rc = call_bound(ctx, g, &m->rhs_e, t, y, p, fe);
  for (size_t i = 0; rc == CT_OK && i < m->n; i++) f[i] = ct_add(f[i], fe[i]);
  ct_free(ctx, fe);
  return rc < 0 ? rc : ct_graph_status(g);
}

/* The model's right-hand side as a new function. autonomous_at_t0 1:
 * inputs "x", "p" (when np > 0), output "F", t fixed at t0 (the Newton
 * problem); 0: inputs "t", "y", "p", output "f" (the fallback's flow). */
static int rhs_function(ct_context *ctx, const ct_ode *m, double t0, int autonomous_at_t0,
                        ct_fun **out) {
  *out = NULL;
  ct_graph *g = ct_graph_new(ctx);
  size_t n = m->n ? m->n : 1, np = m->np ? m->np : 1;
  ct_var *vars = ct_alloc(ctx, (2 * n + np) * sizeof *vars);
  if (!g || !vars) {
    ct_graph_free(g);
    ct_free(ctx, vars);
    return CT_ERR_NOMEM;
  }
  ct_var *y = vars, *f = vars + n, *p = vars + 2 * n, t = {NULL, -1};
  int rc = autonomous_at_t0 ? CT_OK : ct_graph_input(g, "t", 1, NULL, &t);
  if (rc == CT_OK)
    rc = ct_graph_input(g, autonomous_at_t0 ? "x" : "y", m->n, NULL, y);
  if (rc == CT_OK && m->np) rc = ct_graph_input(g, "p", m->np, NULL, p);
  if (rc == CT_OK && autonomous_at_t0) t = ct_const(g, t0);
  if (rc == CT_OK) rc = call_rhs(ctx, g, m, &t, y, p, f);
  if (rc == CT_OK) rc = ct_graph_output(g, autonomous_at_t0 ? "F" : "f", m->n, f);
  if (rc == CT_OK) rc = ct_graph_finalize(g, out);
  ct_graph_free(g);
  ct_free(ctx, vars);
  return rc;
}

/* The fallback's flow: the model's right-hand side without initial
 * values or roots, compiled when the model is. */
static int flow_model(ct_context *ctx, const ct_ode *m, ct_ode **out) {
  ct_fun *f = NULL;
  CT_CHECK(ctx, rhs_function(ctx, m, 0.0, 0, &f));
  int rc = ct_ode_new(ctx, f, NULL, NULL, out);
  ct_fun_free(f);
  if (rc == CT_OK && m->jit.on) rc = ct_ode_jit(ctx, *out, &m->jit.opts);
  return rc;
}

int ct_steady_new(ct_context *ctx, const ct_ode *ode, double t0, ct_steady **out) {
  if (!out) return CT_ERROR(ctx, CT_ERR_ARG, "ct_steady_new: out is NULL");
  *out = NULL;
  if (!ode) return CT_ERROR(ctx, CT_ERR_ARG, "ct_steady_new: the model is NULL");
  if (!isfinite(t0)) return CT_ERROR(ctx, CT_ERR_ARG, "ct_steady_new: t0 = %g is not finite", t0);
  CT_CHECK(ctx, ct_ode_require_ad(ctx, ode, "steady states",
                                  "the right-hand side and its VJP"));
  ct_steady *s = ct_calloc(ctx, 1, sizeof *s);
  if (!s) return CT_ERR_NOMEM;
  s->ctx = ctx, s->m = ode, s->t0 = t0, s->n = ode->n, s->np = ode->np;
  ct_fun *F = NULL;
  int rc = rhs_function(ctx, ode, t0, 1, &F);
  if (rc == CT_OK) rc = ct_nlsolve_new(ctx, F, &s->nls);
  ct_fun_free(F);
  if (rc == CT_OK && ode->jit.on) rc = ct_nlsolve_jit(ctx, s->nls, &ode->jit.opts);
  if (rc == CT_OK) rc = flow_model(ctx, ode, &s->flow);
  if (rc < 0) {
    ct_steady_free(s);
    return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  }
  *out = s;
  return CT_OK;
}

void ct_steady_free(ct_steady *s) {
  if (!s) return;
  ct_nlsolve_free(s->nls);
  ct_ode_free(s->flow);
  ct_free(s->ctx, s);
}

ct_nlsolve *ct_steady_nlsolve(ct_steady *s) { return s ? s->nls : NULL; }

ct_steady_options ct_steady_default_options(void) {
  ct_steady_options o;
  memset(&o, 0, sizeof o);
  o.newton = ct_nlsolve_default_options();
  o.fallback = 1;
  o.fallback_factor = 1e3;
  o.t_max = 1e9;
  o.ode = ct_ode_default_options();
  return o;
}

void ct_steady_result_free(ct_context *ctx, ct_steady_result *r) {
  if (!r) return;
  ct_free(ctx, r->x);
  r->x = NULL;
}

/* ---- Solving --------------------------------------------------------------------- */

/* The reason of the context's last error without its "file:line func: "
 * prefix and traceback lines, into buf. */
static void last_reason(ct_context *ctx, char *buf, size_t size) {
  const char *e = ct_errmsg(ctx);
  const char *colon = strstr(e, ": ");
  snprintf(buf, size, "%s", colon ? colon + 2 : e);
  char *nl = strchr(buf, '\n');
  if (nl) *nl = '\0';
}

/* max_i |F_i(x, p)| into *fnorm (NaN propagates as NaN). */
static int residual_norm(ct_context *ctx, ct_steady *s, const double *x, const double *p,
                         double *F, double *fnorm) {
  CT_CHECK(ctx, ct_nlsolve_residual(ctx, s->nls, x, p, F));
  double m = 0.0;
  for (size_t i = 0; i < s->n; i++) {
    if (isnan(F[i])) m = NAN;
    else if (!isnan(m) && fabs(F[i]) > m) m = fabs(F[i]);
  }
  *fnorm = m;
  return CT_OK;
}

/* The starting point: x0, or the model's initial values y0(p). */
static int initial_guess(ct_context *ctx, const ct_steady *s, const double *p,
                         const double *x0, double *x) {
  if (x0) {
    memcpy(x, x0, s->n * sizeof *x);
    return CT_OK;
  }
  const ct_bound_fun *b = &s->m->y0;
  if (!b->f)
    return CT_ERROR(ctx, CT_ERR_ARG, "the model has no initial-value function: pass x0");
  double *work = ct_alloc(ctx, (ct_fun_work_size(b->f) + 1) * sizeof *work);
  if (!work) return CT_ERR_NOMEM;
  const double *in[4] = {NULL, NULL, NULL, NULL};
  if (b->p >= 0 && b->p < 4) in[b->p] = p;
  double *outs[1] = {x};
  int rc = ct_fun_eval(ctx, b->f, in, outs, work);
  ct_free(ctx, work);
  return rc == CT_RETRACE ? CT_OK : rc;
}

/* Adds one Newton run's counts to the total. */
static void add_newton_stats(ct_nlsolve_stats *total, const ct_nlsolve_stats *st) {
  total->iters += st->iters;
  total->f_evals += st->f_evals;
  total->jac_evals += st->jac_evals;
  total->factorizations += st->factorizations;
  total->lin_iters += st->lin_iters;
  total->jtimes += st->jtimes;
  total->backtracks += st->backtracks;
  total->fnorm = st->fnorm;
  total->step_norm = st->step_norm;
}

/* Newton from x (overwritten with the last iterate); its counts are added
 * to res->newton. */
static int newton(ct_context *ctx, ct_steady *s, const ct_steady_options *o, const double *p,
                  double *x, ct_steady_result *res) {
  ct_nlsolve_stats st;
  memset(&st, 0, sizeof st);
  int rc = ct_nlsolve_solve(ctx, s->nls, &o->newton, p, x, &st);
  add_newton_stats(&res->newton, &st);
  return rc;
}

/* What the fallback's output hook watches: stop once max |f| <= threshold. */
typedef struct steady_watch {
  ct_steady *s;
  const double *p;
  double threshold;
  double *F;
  int reached;       /* 1: an output had max |f| <= threshold */
  double t_hit, fnorm;
  size_t k_hit;      /* that output's index */
} steady_watch;

/* Checks output k of res against the threshold (records the first hit). */
static int watch_output(ct_context *ctx, steady_watch *w, const ct_ode_result *res, size_t k) {
  double fn = NAN;
  CT_CHECK(ctx, residual_norm(ctx, w->s, res->y + k * res->n, w->p, w->F, &fn));
  w->fnorm = fn;
  if (!(fn <= w->threshold) || w->reached) return CT_OK;
  w->reached = 1, w->t_hit = res->t[k], w->k_hit = k;
  return CT_OK;
}

/* ct_ode_hooks.output: stops the integration (CT_ERR_INTERRUPTED, taken
 * as success by the caller) at the first output where f is small. */
static int watch_hook(ct_ode_run *r, ct_cvode_set *c, const ct_ode_result *res) {
  (void)c;
  steady_watch *w = r->ext;
  CT_CHECK(r->ctx, watch_output(r->ctx, w, res, res->n_out - 1));
  return w->reached ? CT_ERR_INTERRUPTED : CT_OK;
}

/* Output times from t0 to t0 + t_max, 8 a decade from t_max * 1e-12 (the
 * integrator's steps are its own; outputs are where f is checked). */
static double *fallback_times(ct_context *ctx, double t0, double t_max, size_t *n_out) {
  size_t n = 2 + 12 * 8;
  double *t = ct_alloc(ctx, n * sizeof *t);
  if (!t) return NULL;
  t[0] = t0;
  for (size_t k = 1; k < n; k++) t[k] = t0 + t_max * pow(10.0, -12.0 + (double)(k - 1) / 8.0);
  *n_out = n;
  return t;
}

/* Integrates from x until max |f| <= threshold or t_max: x gets the state
 * there. The ODE result (statistics, message) goes into ode_res. */
static int integrate_until_small(ct_context *ctx, ct_steady *s, const ct_steady_options *o,
                                 const double *p, double *x, steady_watch *w,
                                 ct_ode_result *ode_res) {
  size_t n_out = 0;
  double *tout = fallback_times(ctx, s->t0, o->t_max, &n_out);
  if (!tout) return CT_ERR_NOMEM;
  int cvodes = o->ode.method == CT_ODE_BDF || o->ode.method == CT_ODE_ADAMS;
  ct_ode_hooks hooks = {w, NULL, watch_hook, NULL};
  int rc = ct_ode_solve_into(ctx, s->flow, p, x, tout, n_out, &o->ode,
                             cvodes ? &hooks : NULL, ode_res);
  ct_free(ctx, tout);
  if (rc == CT_ERR_INTERRUPTED && w->reached) {
    ct_error_clear(ctx);
    rc = CT_OK;
  }
  for (size_t k = 0; rc == CT_OK && !cvodes && k < ode_res->n_out && !w->reached; k++)
    rc = watch_output(ctx, w, ode_res, k);
  if (ode_res->n_out) {
    size_t k = w->reached ? w->k_hit : ode_res->n_out - 1;
    memcpy(x, ode_res->y + k * s->n, s->n * sizeof *x);
  }
  return rc;
}

/* The fallback: integrates from x, then Newton from where f got small.
 * On failure res->message says what both tries gave (newton_why: the
 * first Newton's reason). */
static int fallback(ct_context *ctx, ct_steady *s, const ct_steady_options *o,
                    const double *p, const char *newton_why, ct_steady_result *res) {
  double threshold = o->newton.ftol * o->fallback_factor;
  steady_watch w = {s, p, threshold, NULL, 0, 0.0, NAN, 0};
  w.F = ct_alloc(ctx, (s->n ? s->n : 1) * sizeof *w.F);
  if (!w.F) return CT_ERR_NOMEM;
  ct_ode_result ode_res;
  memset(&ode_res, 0, sizeof ode_res);
  int rc = integrate_until_small(ctx, s, o, p, res->x, &w, &ode_res);
  res->ode = ode_res.stats;
  res->t_reached = w.reached ? w.t_hit : ode_res.t_reached;
  res->method = CT_STEADY_INTEGRATION;
  char why[384];
  if (rc < 0) {
    last_reason(ctx, why, sizeof why);
    snprintf(res->message, sizeof res->message, "Newton from the initial values: %.200s; "
             "time integration failed: %.250s", newton_why,
             ode_res.message[0] ? ode_res.message : why);
  } else if (!w.reached) {
    res->fnorm = w.fnorm;
    snprintf(res->message, sizeof res->message, "Newton from the initial values: %.250s; "
             "time integration to t = %g: max |f| = %.3g still above %.3g", newton_why,
             res->t_reached, w.fnorm, threshold);
    rc = CT_ERR_SOLVER;
  } else if ((rc = newton(ctx, s, o, p, res->x, res)) < 0) {
    res->fnorm = res->newton.fnorm;
    last_reason(ctx, why, sizeof why);
    snprintf(res->message, sizeof res->message, "Newton from the initial values: %.200s; "
             "Newton after time integration to t = %g (max |f| = %.3g): %.200s", newton_why,
             res->t_reached, w.fnorm, why);
  }
  ct_ode_result_clear(ctx, &ode_res);
  ct_free(ctx, w.F);
  if (rc < 0) return CT_ERROR(ctx, rc == CT_ERR_INTERRUPTED ? rc : CT_ERR_SOLVER, "%s",
                              res->message);
  return CT_OK;
}

/* Newton from the start, then (when allowed, and Newton itself failed:
 * CT_ERR_SOLVER or CT_ERR_NUMERIC) the fallback. */
static int find_steady(ct_context *ctx, ct_steady *s, const ct_steady_options *o,
                       const double *p, const double *x_start, ct_steady_result *res) {
  int rc = newton(ctx, s, o, p, res->x, res);
  res->fnorm = res->newton.fnorm;
  if (rc == CT_OK) return CT_OK;
  char why[256];
  last_reason(ctx, why, sizeof why);
  if (rc != CT_ERR_SOLVER && rc != CT_ERR_NUMERIC) return rc; /* not Newton's failure */
  if (!o->fallback) {
    snprintf(res->message, sizeof res->message, "Newton from the initial values: %s", why);
    return CT_ERROR(ctx, rc, "%s", res->message);
  }
  memcpy(res->x, x_start, s->n * sizeof *res->x);
  return fallback(ctx, s, o, p, why, res);
}

/* CT_OK when the options make sense; else CT_ERR_ARG naming the bad one. */
static int check_options(ct_context *ctx, const ct_steady_options *o) {
  if (!(o->t_max > 0.0) || !isfinite(o->t_max))
    return CT_ERROR(ctx, CT_ERR_ARG, "steady state: t_max = %g must be positive and finite",
                    o->t_max);
  if (!(o->fallback_factor >= 1.0) || !isfinite(o->fallback_factor))
    return CT_ERROR(ctx, CT_ERR_ARG, "steady state: fallback_factor = %g must be >= 1",
                    o->fallback_factor);
  return CT_OK;
}

int ct_steady_solve(ct_context *ctx, ct_steady *s, const ct_steady_options *opts,
                    const double *p, const double *x0, ct_steady_result *res) {
  if (!s || !res) return CT_ERROR(ctx, CT_ERR_ARG, "ct_steady_solve: s and res are required");
  memset(res, 0, sizeof *res);
  s->solved = 0;
  ct_steady_options o = opts ? *opts : ct_steady_default_options();
  CT_CHECK(ctx, check_options(ctx, &o));
  if (s->np && !p)
    return CT_ERROR(ctx, CT_ERR_ARG, "the model has %zu parameters: pass p", s->np);
  res->n = s->n;
  res->x = ct_alloc(ctx, (s->n ? s->n : 1) * sizeof *res->x);
  double *start = ct_alloc(ctx, (s->n ? s->n : 1) * sizeof *start);
  int rc = res->x && start ? CT_OK : CT_ERR_NOMEM;
  if (rc == CT_OK) rc = initial_guess(ctx, s, p, x0, start);
  if (rc == CT_OK) {
    memcpy(res->x, start, s->n * sizeof *start);
    rc = find_steady(ctx, s, &o, p, start, res);
  }
  if (rc == CT_OK) rc = residual_norm(ctx, s, res->x, p, start, &res->fnorm);
  ct_free(ctx, start);
  res->status = rc;
  s->solved = rc == CT_OK;
  return rc < 0 ? ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__) : CT_OK;
}

/* ---- Derivatives ---------------------------------------------------------------- */

/* CT_ERR_STATE unless the last solve succeeded. */
static int require_solved(ct_context *ctx, const ct_steady *s, const char *what) {
  if (!s) return CT_ERROR(ctx, CT_ERR_ARG, "%s: the steady-state problem is NULL", what);
  if (!s->solved)
    return CT_ERROR(ctx, CT_ERR_STATE, "%s needs a successful ct_steady_solve first", what);
  return CT_OK;
}

int ct_steady_sensitivities(ct_context *ctx, ct_steady *s, double *S) {
  CT_CHECK(ctx, require_solved(ctx, s, "ct_steady_sensitivities"));
  if (!S) return CT_ERROR(ctx, CT_ERR_ARG, "ct_steady_sensitivities: S is NULL");
  if (!s->np) return CT_OK;
  double *dp = ct_calloc(ctx, s->np * s->np, sizeof *dp);
  if (!dp) return CT_ERR_NOMEM;
  for (size_t j = 0; j < s->np; j++) dp[j * s->np + j] = 1.0;
  int rc = ct_nlsolve_tangent(ctx, s->nls, (int)s->np, dp, S);
  ct_free(ctx, dp);
  return rc < 0 ? ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__) : CT_OK;
}

int ct_steady_adjoint(ct_context *ctx, ct_steady *s, const double *x_bar, double *p_bar,
                      double *lambda) {
  CT_CHECK(ctx, require_solved(ctx, s, "ct_steady_adjoint"));
  if (!x_bar) return CT_ERROR(ctx, CT_ERR_ARG, "ct_steady_adjoint: x_bar is NULL");
  CT_CHECK(ctx, ct_nlsolve_adjoint(ctx, s->nls, x_bar, p_bar, lambda));
  return CT_OK;
}
