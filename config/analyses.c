/* The analyses of a config, run in order through ct_ode / ct_dae, ct_fsa,
 * ct_asa and ct_steady: a plan prepares everything that can be wrong in the config
 * (parameters, objectives, data files) before anything runs; running
 * collects every number into summary.json and the CSV tables and plots. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "config_internal.h"
#include "cotangent/adjoint.h"
#include "cotangent/dae.h"
#include "cotangent/implicit.h"
#include "cotangent/ode.h"
#include "cotangent/sensitivity.h"

#define MAX_PLOT_SERIES 12 /* curves per plot; the rest are in the CSVs */
#define MAX_TABLE_ROWS 8   /* values per analysis in the terminal table */

/* One analysis, prepared. */
typedef struct plan_item {
  const ct_cfg_analysis *a;
  size_t *pidx, np;          /* the selected parameters (indices into p) */
  ct_fun *g, *phi, *h;       /* objective terms */
  ct_cfg_data *data;         /* DATA: the file */
  const char **names;        /* DATA: the compared states/observables */
  size_t *cols, m;           /* DATA: their columns in the file */
  double *t_obs, *obs_data;  /* DATA: distinct times, rows of (values, weights) */
  size_t n_obs;
  size_t *row_obs;           /* DATA: each file row's observation */
  double nll_const;          /* DATA: sum of log(sigma) + log(2 pi)/2 */
  ct_asa *asa;
  ct_dae_asa *dasa;
  ct_fun *obj_vjp;           /* method forward: VJP of phi or h w.r.t. y, p */
  struct ct_ode *int_ode;    /* method forward, integral: the model with q' = g */
  double *int_atol_v;        /* its per-component atol (n + 1), or NULL */
  ct_steady *steady;         /* steady_state: the problem f(x, p) = 0 at t0 */
} plan_item;

struct ct_cfg_plan {
  ct_context *ctx;
  const ct_cfg *cfg;
  const ct_cfg_built *b;
  plan_item *items;
  size_t n;
  double *p; /* nominal parameter values */
  double *atol_v; /* per-component absolute tolerances (n: the states', then
                     solver.atol for algebraic variables), or NULL */
};

/* ---- Preparing ------------------------------------------------------------------ */

/* The indices of the analysis' parameters (all when none are named). */
static int select_params(ct_context *ctx, const ct_cfg_model *m, plan_item *it) {
  const ct_cfg_analysis *a = it->a;
  it->np = a->n_parameters ? a->n_parameters : m->n_params;
  it->pidx = ct_calloc(ctx, it->np ? it->np : 1, sizeof *it->pidx);
  if (!it->pidx) return CT_ERR_NOMEM;
  for (size_t k = 0; k < it->np; k++) {
    if (!a->n_parameters) {
      it->pidx[k] = k;
      continue;
    }
    size_t j = 0;
    while (j < m->n_params && strcmp(m->params[j].name, a->parameters[k]) != 0) j++;
    if (j == m->n_params)
      return ct_cfg_error(ctx, a->loc, "analysis '%s': '%s' is not a parameter", a->name,
                          a->parameters[k]);
    it->pidx[k] = j;
  }
  if (a->type != CT_CFG_SIMULATE && it->np == 0)
    return ct_cfg_error(ctx, a->loc, "analysis '%s' needs parameters, and the model has none",
                        a->name);
  return CT_OK;
}

/* The column of data file d called `name`, or -1. */
static long data_column(const ct_cfg_data *d, const char *name) {
  for (size_t c = 0; c < d->n_cols; c++)
    if (strcmp(d->names[c], name) == 0) return (long)c;
  return -1;
}

/* Which states/observables a data objective compares: the named ones, or
 * every file column that is one. */
static int data_names(ct_context *ctx, const ct_cfg_built *b, plan_item *it) {
  const ct_cfg_objective *ob = &it->a->objective;
  const ct_cfg_data *d = it->data;
  size_t cap = ob->n_observables ? ob->n_observables : d->n_cols;
  it->names = ct_calloc(ctx, cap ? cap : 1, sizeof *it->names);
  it->cols = ct_calloc(ctx, cap ? cap : 1, sizeof *it->cols);
  if (!it->names || !it->cols) return CT_ERR_NOMEM;
  for (size_t k = 0; k < cap; k++) {
    const char *name = ob->n_observables ? ob->observables[k] : d->names[k];
    int is_obs;
    if (ct_cfg_model_lookup(b, name, &is_obs) < 0) {
      if (!ob->n_observables) continue;
      return ct_cfg_error(ctx, ob->loc, "'%s' is neither a state nor an observable", name);
    }
    long c = data_column(d, name);
    if (c < 0)
      return ct_cfg_error(ctx, ob->data_loc, "the data file %s has no column '%s'", d->path,
                          name);
    it->names[it->m] = name;
    it->cols[it->m++] = (size_t)c;
  }
  if (!it->m)
    return ct_cfg_error(ctx, ob->data_loc, "no column of %s is a state or an observable of "
                        "the model", d->path);
  return CT_OK;
}

/* Adds data row k to observation `o` of a data objective: per column, the
 * weights W = sum 1/sigma^2 and weighted sums S = sum w d, Q = sum w d^2
 * (rows at the same time merge: sum w (y - d)^2 = W (y - S/W)^2 + Q - S^2/W). */
static void data_accumulate(plan_item *it, size_t k, size_t o, double *Q) {
  const ct_cfg_data *d = it->data;
  size_t m = it->m;
  double *row = it->obs_data + o * 2 * m;
  for (size_t j = 0; j < m; j++) {
    double v = d->values[k * d->n_cols + it->cols[j]];
    if (isnan(v)) continue;
    double s = d->sigma ? d->sigma[k * d->n_cols + it->cols[j]] : NAN;
    if (!(s > 0)) s = it->a->objective.sigma > 0 ? it->a->objective.sigma : 1.0;
    double w = 1.0 / (s * s);
    row[j] += w * v; /* S until data_finish */
    row[m + j] += w;
    Q[o * m + j] += w * v * v;
    it->nll_const += log(s) + 0.5 * log(2.0 * 3.14159265358979323846);
  }
}

/* Turns the sums into the rows h sees (d = S/W, weight W) and adds the
 * merged rows' constant 1/2 (Q - S^2/W) to the objective's offset. */
static void data_finish(plan_item *it, const double *Q) {
  size_t m = it->m;
  for (size_t o = 0; o < it->n_obs; o++) {
    double *row = it->obs_data + o * 2 * m;
    for (size_t j = 0; j < m; j++) {
      if (row[m + j] <= 0.0) continue;
      double S = row[j], W = row[m + j];
      row[j] = S / W;
      it->nll_const += 0.5 * (Q[o * m + j] - S * S / W);
    }
  }
}

/* The observation times (distinct; rows at one time merged) and rows
 * (values, weights 1/sigma^2) of a data objective; every time inside
 * (start, end]. row_obs[k] is data row k's observation. */
static int data_rows(ct_context *ctx, const ct_cfg *cfg, plan_item *it) {
  const ct_cfg_data *d = it->data;
  size_t m = it->m, nr = d->n_rows ? d->n_rows : 1;
  it->t_obs = ct_calloc(ctx, nr, sizeof *it->t_obs);
  it->row_obs = ct_calloc(ctx, nr, sizeof *it->row_obs);
  it->obs_data = ct_calloc(ctx, nr * 2 * m, sizeof *it->obs_data);
  double *Q = ct_calloc(ctx, nr * m, sizeof *Q);
  int rc = it->t_obs && it->row_obs && it->obs_data && Q ? CT_OK : CT_ERR_NOMEM;
  for (size_t k = 0; rc == CT_OK && k < d->n_rows; k++) {
    ct_cfg_loc at = {d->path, d->line[k], 1};
    if (!(d->t[k] > cfg->time.start && d->t[k] <= cfg->time.end)) {
      rc = ct_cfg_error(ctx, at, "data time %g is outside the time span (%g, %g] "
                        "(time.start < t <= time.end)", d->t[k], cfg->time.start,
                        cfg->time.end);
      break;
    }
    if (!it->n_obs || d->t[k] > it->t_obs[it->n_obs - 1]) it->t_obs[it->n_obs++] = d->t[k];
    it->row_obs[k] = it->n_obs - 1;
    data_accumulate(it, k, it->n_obs - 1, Q);
  }
  if (rc == CT_OK) data_finish(it, Q);
  ct_free(ctx, Q);
  return rc;
}

/* Reads and checks a data objective's file. */
static int prepare_data(ct_context *ctx, const ct_cfg *cfg, const ct_cfg_built *b,
                        plan_item *it) {
  const ct_cfg_objective *ob = &it->a->objective;
  if (b->dae)
    return ct_cfg_error(ctx, ob->loc, "data objectives need an ODE model (this model has "
                        "algebraic variables): use integral or final");
  CT_CHECK(ctx, ct_cfg_data_read(ctx, ob->data_file, ob->data_loc, &it->data));
  CT_CHECK(ctx, data_names(ctx, b, it));
  CT_CHECK(ctx, data_rows(ctx, cfg, it));
  return ct_cfg_model_misfit(ctx, b, it->names, it->m, &it->h);
}

/* The objective's AD terms and its adjoint problem. */
static int prepare_objective(ct_context *ctx, const ct_cfg *cfg, const ct_cfg_built *b,
                             plan_item *it) {
  const ct_cfg_objective *ob = &it->a->objective;
  switch (ob->kind) {
  case CT_CFG_OBJ_INTEGRAL: CT_CHECK(ctx, ct_cfg_model_scalar(ctx, b, &ob->expr, "g", &it->g)); break;
  case CT_CFG_OBJ_FINAL: CT_CHECK(ctx, ct_cfg_model_scalar(ctx, b, &ob->expr, "phi", &it->phi)); break;
  case CT_CFG_OBJ_DATA: CT_CHECK(ctx, prepare_data(ctx, cfg, b, it)); break;
  default:
    return ct_cfg_error(ctx, it->a->loc, "analysis '%s' needs an objective "
                        "({integral: expr}, {final: expr} or {data: {...}})", it->a->name);
  }
  if (b->dae) return ct_dae_asa_new(ctx, b->dae, it->g, it->phi, &it->dasa);
  return ct_asa_new_obs(ctx, b->ode, it->g, it->phi, it->h, &it->asa);
}

/* The method that computes an analysis' gradient: "adjoint" for
 * adjoint_gradient; for gradient the one asked for, with auto meaning
 * forward for final and data objectives with at most two parameters
 * (np + 1 forward solves beat a forward and a backward pass), else the
 * adjoint. NULL for a method not known. */
static const char *gradient_method(const plan_item *it) {
  const ct_cfg_analysis *a = it->a;
  if (a->type != CT_CFG_GRADIENT) return "adjoint";
  const char *m = a->method ? a->method : "auto";
  if (strcmp(m, "auto") == 0)
    return a->objective.kind != CT_CFG_OBJ_INTEGRAL && it->np <= 2 ? "forward" : "adjoint";
  static const char *const known[] = {"adjoint", "forward", "finite_difference"};
  for (size_t i = 0; i < 3; i++)
    if (strcmp(m, known[i]) == 0) return known[i];
  return NULL;
}

/* For method forward with an integral (ODE models): the model with the
 * integrand appended as a state q' = g, q(t0) = 0, and its per-component
 * atol when the config gives one per state. */
static int prepare_forward_integral(ct_context *ctx, const ct_cfg *cfg, const ct_cfg_built *b,
                                    plan_item *it) {
  const ct_cfg_analysis *a = it->a;
  if (b->dae)
    return ct_cfg_error(ctx, a->loc, "analysis '%s': method forward with an integral "
                        "objective needs an ODE model (use adjoint or finite_difference "
                        "for a DAE)", a->name);
  CT_CHECK(ctx, ct_cfg_model_integral_ode(ctx, b, &a->objective.expr, &it->int_ode));
  if (!cfg->solver.atol_v) return CT_OK;
  it->int_atol_v = ct_calloc(ctx, b->n + 1, sizeof *it->int_atol_v);
  if (!it->int_atol_v) return CT_ERR_NOMEM;
  for (size_t i = 0; i < b->n; i++) it->int_atol_v[i] = cfg->solver.atol_v[i];
  it->int_atol_v[b->n] = cfg->solver.atol;
  return CT_OK;
}

/* For method forward: the VJP of the objective's final or data term with
 * respect to y and p, or for an integral the model with q' = g appended;
 * data objectives need an ODE model (checked before). */
static int prepare_forward(ct_context *ctx, const ct_cfg *cfg, const ct_cfg_built *b,
                           plan_item *it) {
  if (it->a->objective.kind == CT_CFG_OBJ_INTEGRAL)
    return prepare_forward_integral(ctx, cfg, b, it);
  static const char *const wrt[] = {"y", "p", NULL};
  return ct_fun_vjp(ctx, it->phi ? it->phi : it->h, 1, wrt, &it->obj_vjp);
}

/* steady_state: the steady-state problem f(x, p) = 0 at time.start and,
 * for an objective {final: phi}, phi and its VJP with respect to y and p
 * (forward_term's obj_vjp). ODE models only. */
static int prepare_steady(ct_context *ctx, const ct_cfg *cfg, const ct_cfg_built *b,
                          plan_item *it) {
  const ct_cfg_analysis *a = it->a;
  if (b->dae)
    return ct_cfg_error(ctx, a->loc, "analysis '%s': steady_state needs an ODE model (this "
                        "model has algebraic variables)", a->name);
  CT_CHECK(ctx, ct_steady_new(ctx, b->ode, cfg->time.start, &it->steady));
  if (a->objective.kind != CT_CFG_OBJ_FINAL) return CT_OK;
  CT_CHECK(ctx, ct_cfg_model_scalar(ctx, b, &a->objective.expr, "phi", &it->phi));
  static const char *const wrt[] = {"y", "p", NULL};
  return ct_fun_vjp(ctx, it->phi, 1, wrt, &it->obj_vjp);
}

/* Prepares one analysis. */
static int prepare_item(ct_context *ctx, const ct_cfg *cfg, const ct_cfg_built *b,
                        plan_item *it) {
  CT_CHECK(ctx, select_params(ctx, b->model, it));
  if (it->a->type == CT_CFG_STEADY_STATE) return prepare_steady(ctx, cfg, b, it);
  if (it->a->type != CT_CFG_ADJOINT_GRADIENT && it->a->type != CT_CFG_GRADIENT) return CT_OK;
  if (!gradient_method(it))
    return ct_cfg_error(ctx, it->a->loc, "analysis '%s': unknown method '%s' (auto, forward, "
                        "adjoint, finite_difference)", it->a->name, it->a->method);
  CT_CHECK(ctx, prepare_objective(ctx, cfg, b, it));
  if (strcmp(gradient_method(it), "forward") == 0)
    CT_CHECK(ctx, prepare_forward(ctx, cfg, b, it));
  return CT_OK;
}

static int check_solver(ct_context *ctx, ct_cfg_plan *pl);

int ct_cfg_plan_new(ct_context *ctx, const ct_cfg *cfg, const ct_cfg_built *b,
                    ct_cfg_plan **out) {
  *out = NULL;
  ct_cfg_plan *pl = ct_calloc(ctx, 1, sizeof *pl);
  if (!pl) return CT_ERR_NOMEM;
  pl->ctx = ctx, pl->cfg = cfg, pl->b = b, pl->n = cfg->n_analyses;
  pl->items = ct_calloc(ctx, pl->n ? pl->n : 1, sizeof *pl->items);
  pl->p = ct_calloc(ctx, b->np ? b->np : 1, sizeof *pl->p);
  int rc = pl->items && pl->p ? CT_OK : CT_ERR_NOMEM;
  for (size_t i = 0; rc == CT_OK && i < b->np; i++) pl->p[i] = b->model->params[i].value;
  if (rc == CT_OK && cfg->solver.atol_v) {
    pl->atol_v = ct_calloc(ctx, b->n, sizeof *pl->atol_v);
    if (!pl->atol_v) rc = CT_ERR_NOMEM;
    for (size_t i = 0; rc == CT_OK && i < b->n; i++)
      pl->atol_v[i] = i < b->n_diff ? cfg->solver.atol_v[i] : cfg->solver.atol;
  }
  if (rc == CT_OK) rc = check_solver(ctx, pl);
  for (size_t i = 0; rc == CT_OK && i < pl->n; i++) {
    pl->items[i].a = &cfg->analyses[i];
    rc = prepare_item(ctx, cfg, b, &pl->items[i]);
  }
  if (rc < 0) {
    ct_cfg_plan_free(pl);
    return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  }
  *out = pl;
  return CT_OK;
}

void ct_cfg_plan_free(ct_cfg_plan *pl) {
  if (!pl) return;
  ct_context *ctx = pl->ctx;
  for (size_t i = 0; pl->items && i < pl->n; i++) {
    plan_item *it = &pl->items[i];
    ct_free(ctx, it->pidx);
    ct_fun_free(it->g);
    ct_fun_free(it->phi);
    ct_fun_free(it->h);
    ct_cfg_data_free(it->data);
    ct_free(ctx, it->names);
    ct_free(ctx, it->cols);
    ct_free(ctx, it->t_obs);
    ct_free(ctx, it->row_obs);
    ct_free(ctx, it->obs_data);
    ct_asa_free(it->asa);
    ct_fun_free(it->obj_vjp);
    ct_ode_free(it->int_ode);
    ct_free(ctx, it->int_atol_v);
    ct_dae_asa_free(it->dasa);
    ct_steady_free(it->steady);
  }
  ct_free(ctx, pl->items);
  ct_free(ctx, pl->p);
  ct_free(ctx, pl->atol_v);
  ct_free(ctx, pl);
}

/* ---- Running --------------------------------------------------------------------- */

/* One gradient for gradient.csv and the bar chart. */
typedef struct grad_rec {
  const char *analysis;
  const plan_item *it;
  double *grad, *fd, *rel; /* it->np each; fd, rel NULL without a check */
} grad_rec;

/* A run: the plan, the options, and what the files are made of. */
typedef struct runner {
  ct_context *ctx;
  ct_cfg_plan *pl;
  const ct_cfg_run_opts *o;
  ct_cfg_run_outcome *out;
  cJSON *summary, *analyses;
  /* trajectory.csv: the first simulation */
  double *traj_t, *traj_y;
  size_t traj_n;
  const char **var_names;     /* states, algebraic variables, observables */
  size_t nv;
  /* sensitivities.csv: the first forward sensitivity analysis (sens_y:
   * dv/dp of the nv variables, sens_s: normalised) */
  const plan_item *sens_it;
  double *sens_t, *sens_y, *sens_s;
  size_t sens_n;
  grad_rec grads[16];
  size_t n_grads;
  /* steady_state.csv: the first steady_state analysis (values of the nv
   * variables, sensitivities and normalised ones, column q at q nv) */
  const plan_item *steady_it;
  double *ss_vals, *ss_sens, *ss_norm;
  const plan_item *data_it;   /* data points for the trajectory plot */
} runner;

/* Seconds of a monotonic clock. */
static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The solvers' progress callback: redraws the bar, stops on an interrupt. */
static int on_progress(double t, void *ud) {
  runner *r = ud;
  if (r->o->progress) ct_progress_update(r->o->progress, t);
  return r->o->interrupt && *r->o->interrupt ? 1 : 0;
}

/* The config's solver settings as ODE options (checked by the schema). */
static int ode_options(runner *r, ct_ode_options *o) {
  const ct_cfg_solver *s = &r->pl->cfg->solver;
  *o = ct_ode_default_options();
  const char *m = s->method ? s->method : "bdf";
  if (strcmp(m, "bdf") == 0) o->method = CT_ODE_BDF;
  else if (strcmp(m, "adams") == 0) o->method = CT_ODE_ADAMS;
  else if (strcmp(m, "erk") == 0) o->method = CT_ODE_ERK;
  else if (strcmp(m, "dirk") == 0) o->method = CT_ODE_DIRK;
  else return ct_cfg_error(r->ctx, s->loc, "unknown solver method '%s'", m);
  if (s->linear_solver)
    CT_CHECK(r->ctx, ct_ode_linsol_from_name(r->ctx, s->linear_solver, &o->linsol));
  o->rtol = s->rtol;
  o->atol = s->atol;
  o->atol_v = r->pl->atol_v;
  o->max_steps = s->max_steps;
  o->progress = on_progress;
  o->progress_ud = r;
  return CT_OK;
}

/* The config's solver settings as DAE options (IDAS is always BDF). */
static int dae_options(runner *r, ct_dae_options *o) {
  const ct_cfg_solver *s = &r->pl->cfg->solver;
  *o = ct_dae_default_options();
  const char *ls = s->linear_solver ? s->linear_solver : "auto";
  if (ct_dae_linsol_from_name(r->ctx, ls, &o->linsol) < 0)
    return ct_cfg_error(r->ctx, s->loc, "linear solver '%s' is not available for DAE models "
                        "(auto, dense, klu, gmres)", ls);
  o->rtol = s->rtol;
  o->atol = s->atol;
  o->atol_v = r->pl->atol_v;
  o->max_steps = s->max_steps;
  o->progress = on_progress;
  o->progress_ud = r;
  return CT_OK;
}

/* Solver settings the model or the analyses cannot use, as config errors
 * at solver: a linear solver IDAS lacks (DAE), an ARKODE method with
 * sensitivities or adjoints (CVODES only; steady states integrate with
 * either in their fallback). */
static int check_solver(ct_context *ctx, ct_cfg_plan *pl) {
  runner probe = {0};
  probe.ctx = ctx, probe.pl = pl;
  if (pl->b->dae) {
    ct_dae_options d;
    return dae_options(&probe, &d);
  }
  ct_ode_options o;
  CT_CHECK(ctx, ode_options(&probe, &o));
  if (o.method == CT_ODE_BDF || o.method == CT_ODE_ADAMS) return CT_OK;
  for (size_t i = 0; i < pl->n; i++)
    if (pl->cfg->analyses[i].type != CT_CFG_SIMULATE &&
        pl->cfg->analyses[i].type != CT_CFG_STEADY_STATE)
      return ct_cfg_error(ctx, pl->cfg->solver.loc, "solver.method %s (ARKODE) can only "
                          "simulate; analysis '%s' needs bdf or adams (CVODES)",
                          pl->cfg->solver.method, pl->cfg->analyses[i].name);
  return CT_OK;
}

/* A copy of n doubles (NULL on no memory, recorded). */
static double *copy_doubles(ct_context *ctx, const double *v, size_t n) {
  double *c = ct_alloc(ctx, (n ? n : 1) * sizeof *c);
  if (c && n) memcpy(c, v, n * sizeof *c);
  return c;
}

/* Adds an array of n numbers, or null when it cannot be made. */
static void json_numbers(cJSON *obj, const char *key, const double *v, size_t n) {
  cJSON *a = cJSON_AddArrayToObject(obj, key);
  for (size_t i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
}

/* The integrator's statistics. */
static void json_ode_stats(cJSON *obj, const char *key, const ct_ode_stats *s,
                           ct_ode_linsol ls) {
  cJSON *j = cJSON_AddObjectToObject(obj, key);
  cJSON_AddNumberToObject(j, "steps", (double)s->steps);
  cJSON_AddNumberToObject(j, "rhs_evals", (double)s->rhs_evals);
  cJSON_AddNumberToObject(j, "jac_evals", (double)s->jac_evals);
  cJSON_AddNumberToObject(j, "lin_setups", (double)s->lin_setups);
  cJSON_AddNumberToObject(j, "err_test_fails", (double)s->err_test_fails);
  cJSON_AddNumberToObject(j, "nonlin_iters", (double)s->nonlin_iters);
  cJSON_AddNumberToObject(j, "nonlin_conv_fails", (double)s->nonlin_conv_fails);
  cJSON_AddNumberToObject(j, "lin_iters", (double)s->lin_iters);
  cJSON_AddNumberToObject(j, "last_step", s->last_step);
  cJSON_AddNumberToObject(j, "last_order", s->last_order);
  cJSON_AddStringToObject(j, "linear_solver", ct_ode_linsol_name(ls));
}

/* IDAS' statistics. */
static void json_dae_stats(cJSON *obj, const char *key, const ct_dae_stats *s) {
  cJSON *j = cJSON_AddObjectToObject(obj, key);
  cJSON_AddNumberToObject(j, "steps", (double)s->steps);
  cJSON_AddNumberToObject(j, "res_evals", (double)s->res_evals);
  cJSON_AddNumberToObject(j, "jac_evals", (double)s->jac_evals);
  cJSON_AddNumberToObject(j, "lin_setups", (double)s->lin_setups);
  cJSON_AddNumberToObject(j, "err_test_fails", (double)s->err_test_fails);
  cJSON_AddNumberToObject(j, "nonlin_iters", (double)s->nonlin_iters);
  cJSON_AddNumberToObject(j, "nonlin_conv_fails", (double)s->nonlin_conv_fails);
  cJSON_AddNumberToObject(j, "last_step", s->last_step);
  cJSON_AddNumberToObject(j, "last_order", s->last_order);
}

/* {name: [values over time]} of y (n_out x n, time-major), for y's names. */
static void json_series(cJSON *obj, const char *key, const char *const *names, size_t n,
                        const double *y, size_t n_out) {
  cJSON *j = cJSON_AddObjectToObject(obj, key);
  for (size_t i = 0; j && i < n; i++) {
    cJSON *a = cJSON_AddArrayToObject(j, names[i]);
    for (size_t k = 0; a && k < n_out; k++)
      cJSON_AddItemToArray(a, cJSON_CreateNumber(y[k * n + i]));
  }
}

/* Evaluates the observables at (t, y, p) into o (n_obs values). */
static int eval_observables(ct_context *ctx, const ct_cfg_built *b, double t, const double *y,
                            const double *p, double *o, double *work) {
  const double *in[3] = {NULL, NULL, NULL};
  for (size_t i = 0; i < ct_fun_n_in(b->obs); i++) {
    const char *nm = ct_fun_in_name(b->obs, i);
    in[i] = strcmp(nm, "t") == 0 ? &t : strcmp(nm, "y") == 0 ? y : p;
  }
  double *outs[1] = {o};
  int rc = ct_fun_eval(ctx, b->obs, in, outs, work);
  return rc == CT_RETRACE ? CT_OK : rc;
}

/* The observables along a trajectory (n_out x n_obs), or NULL without
 * observables (or on no memory). */
static double *observables_along(runner *r, const double *t, const double *y, size_t n_out) {
  const ct_cfg_built *b = r->pl->b;
  if (!b->obs || !n_out) return NULL;
  double *o = ct_calloc(r->ctx, n_out * b->n_obs, sizeof *o);
  double *work = ct_calloc(r->ctx, ct_fun_work_size(b->obs) + 1, sizeof *work);
  for (size_t k = 0; o && work && k < n_out; k++)
    if (eval_observables(r->ctx, b, t[k], y + k * b->n, r->pl->p, o + k * b->n_obs, work) < 0)
      o[k * b->n_obs] = NAN;
  ct_free(r->ctx, work);
  return o;
}

/* Names of the observables. */
static const char **observable_names(runner *r) {
  const ct_cfg_model *m = r->pl->b->model;
  const char **nm = ct_calloc(r->ctx, m->n_observables + 1, sizeof *nm);
  for (size_t i = 0; nm && i < m->n_observables; i++) nm[i] = m->observables[i].name;
  return nm;
}

/* Records a trajectory (the first one) for trajectory.csv and its JSON. */
static void keep_trajectory(runner *r, cJSON *aj, const double *t, const double *y,
                            size_t n_out) {
  const ct_cfg_built *b = r->pl->b;
  json_numbers(aj, "times", t, n_out);
  json_series(aj, "states", b->y_names, b->n, y, n_out);
  double *o = observables_along(r, t, y, n_out);
  const char **on = observable_names(r);
  if (o && on) json_series(aj, "observables", on, b->n_obs, o, n_out);
  ct_free(r->ctx, o);
  ct_free(r->ctx, (void *)on);
  if (r->traj_t) return;
  r->traj_t = copy_doubles(r->ctx, t, n_out);
  r->traj_y = copy_doubles(r->ctx, y, n_out * b->n);
  r->traj_n = r->traj_t && r->traj_y ? n_out : 0;
}

/* Prints "  name = value" rows (at most MAX_TABLE_ROWS of them). */
static void table_values(runner *r, const char *fmt_name, const char *const *names,
                         const double *v, size_t n) {
  FILE *f = r->o->table;
  if (!f) return;
  for (size_t i = 0; i < n && i < MAX_TABLE_ROWS; i++) {
    char label[96];
    snprintf(label, sizeof label, fmt_name, names[i]);
    fprintf(f, "  %-28s %15.8e\n", label, v[i]);
  }
  if (n > MAX_TABLE_ROWS) fprintf(f, "  ... %zu more in summary.json\n", n - MAX_TABLE_ROWS);
}

/* Simulation of an ODE model. */
static int run_simulate_ode(runner *r, const plan_item *it, cJSON *aj, char *msg) {
  (void)it;
  const ct_cfg *cfg = r->pl->cfg;
  ct_ode_options o;
  CT_CHECK(r->ctx, ode_options(r, &o));
  ct_ode_result *res = NULL;
  int rc = ct_ode_solve(r->ctx, r->pl->b->ode, r->pl->p, NULL, cfg->time.output,
                        cfg->time.n_output, &o, &res);
  if (!res) return rc;
  keep_trajectory(r, aj, res->t, res->y, res->n_out);
  json_ode_stats(aj, "stats", &res->stats, res->linsol);
  if (res->status < 0) snprintf(msg, 512, "%s", res->message);
  else if (res->n_out)
    table_values(r, "%s(end)", r->pl->b->y_names, res->y + (res->n_out - 1) * res->n, res->n);
  ct_ode_result_free(r->ctx, res);
  return rc;
}

/* Simulation of a DAE model. */
static int run_simulate_dae(runner *r, const plan_item *it, cJSON *aj, char *msg) {
  (void)it;
  const ct_cfg *cfg = r->pl->cfg;
  ct_dae_options o;
  CT_CHECK(r->ctx, dae_options(r, &o));
  ct_dae_result *res = NULL;
  int rc = ct_dae_solve(r->ctx, r->pl->b->dae, r->pl->p, NULL, NULL, cfg->time.output,
                        cfg->time.n_output, &o, &res);
  if (!res) return rc;
  keep_trajectory(r, aj, res->t, res->y, res->n_out);
  json_dae_stats(aj, "stats", &res->stats);
  if (res->status < 0) snprintf(msg, 512, "%s", res->message);
  else if (res->n_out)
    table_values(r, "%s(end)", r->pl->b->y_names, res->y + (res->n_out - 1) * res->n, res->n);
  ct_dae_result_free(r->ctx, res);
  return rc;
}

/* An input of fun_eval_named. */
typedef struct named_in {
  const char *name;
  const double *v;
} named_in;

/* Evaluates f with each input taken by name from ins[0..n_ins) and the
 * outputs into outs (f's output order; NULL skips one). A flipped guard
 * (CT_RETRACE) keeps the traced branch's values. */
static int fun_eval_named(ct_context *ctx, const ct_fun *f, const named_in *ins, size_t n_ins,
                          double *const *outs) {
  const double *in[8] = {NULL};
  size_t n_in = ct_fun_n_in(f);
  if (n_in > 8) return CT_ERROR(ctx, CT_ERR_INTERNAL, "a model function with %zu inputs", n_in);
  for (size_t i = 0; i < n_in; i++)
    for (size_t k = 0; k < n_ins; k++)
      if (strcmp(ct_fun_in_name(f, i), ins[k].name) == 0) in[i] = ins[k].v;
  double *work = ct_calloc(ctx, ct_fun_work_size(f) + 1, sizeof *work);
  if (!work) return CT_ERR_NOMEM;
  int rc = ct_fun_eval(ctx, f, in, outs, work);
  ct_free(ctx, work);
  return rc == CT_RETRACE ? CT_OK : rc;
}

/* The observables' sensitivities d o/d p = o_y s + o_p at every output
 * (layout of ct_fsa: (k * np + q) * n_obs + i) from one JVP of the
 * observables with the np directions (s_q, e_q); NULL on failure. */
static double *observable_sens(runner *r, const plan_item *it, const double *t,
                               const double *y, const double *s, size_t n_out) {
  const ct_cfg_built *b = r->pl->b;
  static const char *const wrt[] = {"y", "p", NULL};
  ct_fun *jvp = NULL;
  if (ct_fun_jvp(r->ctx, b->obs, (int)it->np, wrt, &jvp) < 0) return NULL;
  double *os = ct_calloc(r->ctx, n_out * it->np * b->n_obs + 1, sizeof *os);
  double *dp = ct_calloc(r->ctx, it->np * b->np + 1, sizeof *dp);
  double *o = ct_calloc(r->ctx, b->n_obs, sizeof *o);
  int rc = os && dp && o ? CT_OK : CT_ERR_NOMEM;
  for (size_t q = 0; q < it->np && dp; q++) dp[q * b->np + it->pidx[q]] = 1.0;
  for (size_t k = 0; rc == CT_OK && k < n_out; k++) {
    named_in ins[5] = {{"t", &t[k]}, {"y", y + k * b->n}, {"p", r->pl->p},
                       {"d_y", s + k * it->np * b->n}, {"d_p", dp}};
    double *outs[2] = {o, os + k * it->np * b->n_obs};
    rc = fun_eval_named(r->ctx, jvp, ins, 5, outs);
  }
  ct_fun_free(jvp);
  ct_free(r->ctx, dp);
  ct_free(r->ctx, o);
  if (rc < 0) {
    ct_free(r->ctx, os);
    return NULL;
  }
  return os;
}

/* {parameter: {variable: [values over time]}} of s (ct_fsa's layout with
 * r->nv variables). */
static void json_sens(runner *r, cJSON *aj, const char *key, const plan_item *it,
                      const double *s, size_t n_out) {
  cJSON *j = cJSON_AddObjectToObject(aj, key);
  size_t nv = r->nv;
  for (size_t q = 0; j && q < it->np; q++) {
    cJSON *pj = cJSON_AddObjectToObject(j, r->pl->b->model->params[it->pidx[q]].name);
    for (size_t i = 0; pj && i < nv; i++) {
      cJSON *a = cJSON_AddArrayToObject(pj, r->var_names[i]);
      for (size_t k = 0; a && k < n_out; k++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(s[(k * it->np + q) * nv + i]));
    }
  }
}

/* States and observables side by side: values (n_out x nv) and
 * sensitivities ((k * np + q) * nv + i). CT_ERR_NOMEM or a JVP failure. */
static int with_observables(runner *r, const plan_item *it, const double *t, const double *y,
                            const double *s, size_t n_out, double **vals, double **sens) {
  const ct_cfg_built *b = r->pl->b;
  size_t nv = r->nv, np = it->np;
  *vals = ct_calloc(r->ctx, n_out * nv + 1, sizeof **vals);
  *sens = ct_calloc(r->ctx, n_out * np * nv + 1, sizeof **sens);
  double *o = b->n_obs ? observables_along(r, t, y, n_out) : NULL;
  double *os = b->n_obs ? observable_sens(r, it, t, y, s, n_out) : NULL;
  int rc = *vals && *sens && (!b->n_obs || (o && os)) ? CT_OK : CT_ERR_NOMEM;
  for (size_t k = 0; rc == CT_OK && k < n_out; k++) {
    for (size_t i = 0; i < nv; i++)
      (*vals)[k * nv + i] = i < b->n ? y[k * b->n + i] : o[k * b->n_obs + i - b->n];
    for (size_t q = 0; q < np; q++)
      for (size_t i = 0; i < nv; i++)
        (*sens)[(k * np + q) * nv + i] = i < b->n ? s[(k * np + q) * b->n + i]
                                                  : os[(k * np + q) * b->n_obs + i - b->n];
  }
  ct_free(r->ctx, o);
  ct_free(r->ctx, os);
  return rc;
}

/* Prints d y_i(end)/d p_q for the first states and parameters. */
static void table_sens(runner *r, const plan_item *it, const double *s, size_t n_out) {
  const ct_cfg_built *b = r->pl->b;
  if (!r->o->table || !n_out) return;
  size_t rows = 0;
  for (size_t q = 0; q < it->np; q++)
    for (size_t i = 0; i < b->n && rows < MAX_TABLE_ROWS; i++, rows++) {
      char label[96];
      snprintf(label, sizeof label, "d %s(end)/d %s", b->y_names[i],
               b->model->params[it->pidx[q]].name);
      fprintf(r->o->table, "  %-28s %15.8e\n", label, s[((n_out - 1) * it->np + q) * r->nv + i]);
    }
  if (it->np * r->nv > rows)
    fprintf(r->o->table, "  ... %zu more in summary.json\n", it->np * r->nv - rows);
}

/* Sensitivities of states and observables into the JSON (absolute and
 * normalised (p/v) dv/dp, 0 where v = 0) and the table; the first
 * analysis' ones are kept for sensitivities.csv. */
static int keep_sens(runner *r, const plan_item *it, cJSON *aj, const double *t,
                     const double *y, const double *s, size_t n_out) {
  double *vals = NULL, *sa = NULL;
  int rc = with_observables(r, it, t, y, s, n_out, &vals, &sa);
  double *sn = rc == CT_OK ? ct_calloc(r->ctx, n_out * it->np * r->nv + 1, sizeof *sn) : NULL;
  if (rc == CT_OK && !sn) rc = CT_ERR_NOMEM;
  for (size_t k = 0; rc == CT_OK && k < n_out; k++)
    for (size_t q = 0; q < it->np; q++)
      for (size_t i = 0; i < r->nv; i++) {
        double v = vals[k * r->nv + i], pv = r->pl->p[it->pidx[q]];
        size_t at = (k * it->np + q) * r->nv + i;
        sn[at] = v != 0.0 ? pv / v * sa[at] : 0.0;
      }
  if (rc == CT_OK) {
    json_series(aj, "values", r->var_names, r->nv, vals, n_out);
    json_sens(r, aj, "sensitivities", it, sa, n_out);
    json_sens(r, aj, "normalised", it, sn, n_out);
    table_sens(r, it, sa, n_out);
  }
  if (rc == CT_OK && !r->sens_it) {
    r->sens_it = it;
    r->sens_t = copy_doubles(r->ctx, t, n_out);
    r->sens_y = sa, sa = NULL;
    r->sens_s = sn, sn = NULL;
    r->sens_n = r->sens_t ? n_out : 0;
  }
  ct_free(r->ctx, vals);
  ct_free(r->ctx, sa);
  ct_free(r->ctx, sn);
  return rc;
}

/* Forward sensitivities of an ODE model. */
static int run_fsa_ode(runner *r, const plan_item *it, cJSON *aj, char *msg) {
  const ct_cfg *cfg = r->pl->cfg;
  ct_fsa_options o = ct_fsa_default_options();
  CT_CHECK(r->ctx, ode_options(r, &o.ode));
  ct_fsa *fsa = NULL;
  CT_CHECK(r->ctx, ct_fsa_new(r->ctx, r->pl->b->ode, it->pidx, it->np, &fsa));
  ct_fsa_result *res = NULL;
  int rc = ct_fsa_solve(r->ctx, fsa, r->pl->p, NULL, cfg->time.output, cfg->time.n_output,
                        &o, &res);
  if (res) {
    json_numbers(aj, "times", res->ode.t, res->ode.n_out);
    int krc = keep_sens(r, it, aj, res->ode.t, res->ode.y, res->s, res->ode.n_out);
    if (rc == CT_OK) rc = krc;
    json_ode_stats(aj, "stats", &res->ode.stats, res->ode.linsol);
    cJSON_AddNumberToObject(aj, "sens_rhs_evals", (double)res->stats.sens_rhs_evals);
    if (res->ode.status < 0) snprintf(msg, 512, "%s", res->ode.message);
  }
  ct_fsa_result_free(r->ctx, res);
  ct_fsa_free(fsa);
  return rc;
}

/* Forward sensitivities of a DAE model. */
static int run_fsa_dae(runner *r, const plan_item *it, cJSON *aj, char *msg) {
  const ct_cfg *cfg = r->pl->cfg;
  ct_dae_fsa_options o = ct_dae_fsa_default_options();
  CT_CHECK(r->ctx, dae_options(r, &o.dae));
  ct_dae_fsa *fsa = NULL;
  CT_CHECK(r->ctx, ct_dae_fsa_new(r->ctx, r->pl->b->dae, it->pidx, it->np, &fsa));
  ct_dae_fsa_result *res = NULL;
  int rc = ct_dae_fsa_solve(r->ctx, fsa, r->pl->p, NULL, NULL, cfg->time.output,
                            cfg->time.n_output, &o, &res);
  if (res && res->dae) {
    json_numbers(aj, "times", res->dae->t, res->dae->n_out);
    int krc = keep_sens(r, it, aj, res->dae->t, res->dae->y, res->s, res->dae->n_out);
    if (rc == CT_OK) rc = krc;
    json_dae_stats(aj, "stats", &res->dae->stats);
    if (res->dae->status < 0) snprintf(msg, 512, "%s", res->dae->message);
  }
  ct_dae_fsa_result_free(r->ctx, res);
  ct_dae_fsa_free(fsa);
  return rc;
}

/* The adjoint options of an ODE run (tolerances of every phase from the
 * config's, the data objective's observations). */
static int asa_options(runner *r, const plan_item *it, ct_asa_options *o) {
  *o = ct_asa_default_options();
  CT_CHECK(r->ctx, ode_options(r, &o->ode));
  o->rtol_b = o->rtol_q = o->ode.rtol;
  o->atol_b = o->atol_q = o->ode.atol;
  o->max_steps_b = o->ode.max_steps;
  o->t_obs = it->n_obs ? it->t_obs : NULL;
  o->n_obs = it->n_obs;
  o->obs_data = it->n_obs ? it->obs_data : NULL;
  o->obs_dim = it->n_obs ? 2 * it->m : 0;
  return CT_OK;
}

/* The DAE adjoint options. */
static int dae_asa_options(runner *r, ct_dae_asa_options *o) {
  *o = ct_dae_asa_default_options();
  CT_CHECK(r->ctx, dae_options(r, &o->dae));
  o->rtol_b = o->rtol_q = o->dae.rtol;
  o->atol_b = o->atol_q = o->dae.atol;
  o->max_steps_b = o->dae.max_steps;
  return CT_OK;
}

/* What an objective evaluation for finite differences needs. */
typedef struct objective_ud {
  runner *r;
  const plan_item *it;
} objective_ud;

/* The steady-state options of a steady_state analysis: its newton and
 * fallback keys over the library's defaults, the config's solver for the
 * fallback's integration. */
static int steady_options(runner *r, const plan_item *it, ct_steady_options *o) {
  const ct_cfg_steady *st = &it->a->steady;
  *o = ct_steady_default_options();
  CT_CHECK(r->ctx, ode_options(r, &o->ode));
  if (st->ftol > 0.0) o->newton.ftol = st->ftol;
  if (st->max_iters > 0) o->newton.max_iters = st->max_iters;
  if (st->linear_solver) o->newton.linear_solver = st->linear_solver;
  if (st->strategy) o->newton.strategy = st->strategy;
  if (st->solver) o->newton.solver = st->solver;
  if (st->petsc_options) o->newton.petsc_options = st->petsc_options;
  if (st->t_max > 0.0) o->t_max = st->t_max;
  return CT_OK;
}

/* phi(t0, x, p) of a steady_state objective into *value. */
static int steady_phi(runner *r, const plan_item *it, const double *x, const double *p,
                      double *value) {
  double t0 = r->pl->cfg->time.start;
  named_in ins[3] = {{"t", &t0}, {"y", x}, {"p", p}};
  double *outs[1] = {value};
  return fun_eval_named(r->ctx, it->phi, ins, 3, outs);
}

/* A steady_state objective at p: a steady-state solve, then phi there. */
static int steady_objective(runner *r, const plan_item *it, const double *p, double *value) {
  ct_steady_options o;
  CT_CHECK(r->ctx, steady_options(r, it, &o));
  ct_steady_result res;
  int rc = ct_steady_solve(r->ctx, it->steady, &o, p, NULL, &res);
  *value = NAN;
  if (rc == CT_OK) rc = steady_phi(r, it, res.x, p, value);
  ct_steady_result_free(r->ctx, &res);
  return rc;
}

/* J(p) from one adjoint solve (ODE or DAE), for ct_gradient_check. */
static int objective_value(ct_context *ctx, const double *p, void *ud, double *value) {
  objective_ud *u = ud;
  const ct_cfg *cfg = u->r->pl->cfg;
  int rc;
  if (u->it->steady) return steady_objective(u->r, u->it, p, value);
  if (u->it->asa) {
    ct_asa_options o;
    CT_CHECK(ctx, asa_options(u->r, u->it, &o));
    ct_asa_result *res = NULL;
    rc = ct_asa_solve(ctx, u->it->asa, p, NULL, cfg->time.start, cfg->time.end, &o, &res);
    *value = res ? res->value : NAN;
    ct_asa_result_free(ctx, res);
  } else {
    ct_dae_asa_options o;
    CT_CHECK(ctx, dae_asa_options(u->r, &o));
    ct_dae_asa_result *res = NULL;
    rc = ct_dae_asa_solve(ctx, u->it->dasa, p, NULL, NULL, cfg->time.start, cfg->time.end,
                          &o, &res);
    *value = res ? res->value : NAN;
    ct_dae_asa_result_free(ctx, res);
  }
  return rc;
}

/* The sum of squared residuals of a data objective, from a simulation at
 * the data times. */
static double data_sum_of_squares(runner *r, const plan_item *it) {
  const ct_cfg_built *b = r->pl->b;
  double *tout = ct_calloc(r->ctx, it->n_obs + 1, sizeof *tout);
  if (!tout) return NAN;
  tout[0] = r->pl->cfg->time.start;
  memcpy(tout + 1, it->t_obs, it->n_obs * sizeof *tout);
  ct_ode_options o;
  ct_ode_result *res = NULL;
  double ssq = NAN;
  if (ode_options(r, &o) == CT_OK &&
      ct_ode_solve(r->ctx, b->ode, r->pl->p, NULL, tout, it->n_obs + 1, &o, &res) == CT_OK) {
    double *ob = observables_along(r, res->t + 1, res->y + b->n, it->n_obs);
    ssq = 0.0;
    const ct_cfg_data *d = it->data;
    for (size_t k = 0; k < d->n_rows; k++)
      for (size_t j = 0; j < it->m; j++) {
        double v = d->values[k * d->n_cols + it->cols[j]];
        if (isnan(v)) continue;
        size_t o = it->row_obs[k];
        int is_obs;
        long at = ct_cfg_model_lookup(b, it->names[j], &is_obs);
        double model = is_obs ? (ob ? ob[o * b->n_obs + (size_t)at] : NAN)
                              : res->y[(o + 1) * b->n + (size_t)at];
        ssq += (model - v) * (model - v);
      }
    ct_free(r->ctx, ob);
  }
  ct_ode_result_free(r->ctx, res);
  ct_free(r->ctx, tout);
  return ssq;
}

/* The objective's value(s) into the JSON and the table. */
static void report_objective(runner *r, const plan_item *it, cJSON *aj, double value) {
  FILE *f = r->o->table;
  if (it->a->objective.kind == CT_CFG_OBJ_DATA) {
    double ssq = data_sum_of_squares(r, it);
    cJSON_AddNumberToObject(aj, "objective", value + it->nll_const);
    cJSON_AddNumberToObject(aj, "negative_log_likelihood", value + it->nll_const);
    cJSON_AddNumberToObject(aj, "weighted_sum_of_squares", 2.0 * value);
    cJSON_AddNumberToObject(aj, "sum_of_squares", ssq);
    cJSON_AddNumberToObject(aj, "n_observations", (double)it->n_obs);
    if (f) {
      fprintf(f, "  %-28s %15.8e\n", "negative log-likelihood", value + it->nll_const);
      fprintf(f, "  %-28s %15.8e\n", "sum of squares", ssq);
    }
    return;
  }
  cJSON_AddNumberToObject(aj, "objective", value);
  if (f) fprintf(f, "  %-28s %15.8e\n", "objective", value);
}

/* {parameter: value} of the selected parameters' entries of v (np of p). */
static void json_by_param(runner *r, cJSON *aj, const char *key, const plan_item *it,
                          const double *v) {
  cJSON *j = cJSON_AddObjectToObject(aj, key);
  for (size_t q = 0; j && q < it->np; q++)
    cJSON_AddNumberToObject(j, r->pl->b->model->params[it->pidx[q]].name, v[it->pidx[q]]);
}

/* Records a gradient for gradient.csv and prints it. */
static void keep_gradient(runner *r, const plan_item *it, cJSON *aj, const double *grad,
                          const ct_gradcheck_result *chk, double tol) {
  const ct_cfg_model *m = r->pl->b->model;
  json_by_param(r, aj, "gradient", it, grad);
  if (chk) {
    cJSON *cj = cJSON_AddObjectToObject(aj, "check");
    cJSON_AddStringToObject(cj, "method", "finite_difference");
    json_by_param(r, cj, "finite_difference", it, chk->fd);
    json_by_param(r, cj, "relative_error", it, chk->rel_err);
    json_by_param(r, cj, "step", it, chk->step);
    double worst = 0.0;
    for (size_t q = 0; q < it->np; q++)
      if (chk->rel_err[it->pidx[q]] > worst) worst = chk->rel_err[it->pidx[q]];
    cJSON_AddNumberToObject(cj, "worst_relative_error", worst);
    cJSON_AddNumberToObject(cj, "tolerance", tol);
    cJSON_AddBoolToObject(cj, "passed", worst <= tol);
    cJSON_AddNumberToObject(cj, "objective_evaluations", (double)chk->n_evals);
  }
  for (size_t q = 0; r->o->table && q < it->np && q < MAX_TABLE_ROWS; q++) {
    char label[96];
    snprintf(label, sizeof label, "dJ/d %s", m->params[it->pidx[q]].name);
    fprintf(r->o->table, "  %-28s %15.8e\n", label, grad[it->pidx[q]]);
  }
  if (r->o->table && it->np > MAX_TABLE_ROWS)
    fprintf(r->o->table, "  ... %zu more in summary.json\n", it->np - MAX_TABLE_ROWS);
  if (r->n_grads == sizeof r->grads / sizeof r->grads[0]) return;
  grad_rec *g = &r->grads[r->n_grads++];
  g->analysis = it->a->name;
  g->it = it;
  g->grad = copy_doubles(r->ctx, grad, m->n_params);
  g->fd = chk ? copy_doubles(r->ctx, chk->fd, m->n_params) : NULL;
  g->rel = chk ? copy_doubles(r->ctx, chk->rel_err, m->n_params) : NULL;
}

/* The check's tolerance: central differences of solves at relative
 * tolerance rtol carry truncation and solver noise of about rtol^(2/3)
 * times the objective's curvature; 1e-2 at rtol 1e-6, scaling as
 * rtol^(1/3), within [1e-5, 5e-2]. A wrong gradient is off by O(1). */
static double check_tolerance(double rtol) {
  double tol = 1e-2 * cbrt(rtol / 1e-6);
  return tol < 1e-5 ? 1e-5 : tol > 5e-2 ? 5e-2 : tol;
}

/* Central-difference options for the objective: relative accuracy rtol
 * (the solves'), steps relative to |p_j| (typical magnitudes, 1 where
 * p_j = 0; *typical is allocated here). */
static int fd_options(runner *r, ct_gradcheck_options *go, double **typical) {
  size_t np = r->pl->b->np;
  *go = ct_gradcheck_default_options();
  go->eps = r->pl->cfg->solver.rtol;
  go->tol = check_tolerance(go->eps);
  *typical = ct_calloc(r->ctx, np ? np : 1, sizeof **typical);
  if (!*typical) return CT_ERR_NOMEM;
  for (size_t j = 0; j < np; j++) (*typical)[j] = r->pl->p[j] != 0.0 ? fabs(r->pl->p[j]) : 1.0;
  go->typical = *typical;
  return CT_OK;
}

/* Central differences of the objective against `grad` (np of p); a check
 * that fails makes the analysis fail. */
static int run_check(runner *r, const plan_item *it, cJSON *aj, const double *grad,
                     char *msg) {
  size_t np = r->pl->b->np;
  ct_gradcheck_options go;
  double *typical = NULL;
  CT_CHECK(r->ctx, fd_options(r, &go, &typical));
  for (size_t j = 0; j < np; j++) /* components tiny next to the largest: noise */
    if (1e-4 * fabs(grad[j]) > go.floor) go.floor = 1e-4 * fabs(grad[j]);
  ct_gradcheck_result chk = {0};
  objective_ud ud = {r, it};
  int rc = ct_gradient_check(r->ctx, objective_value, &ud, r->pl->p, np, grad, &go, &chk);
  if (rc == CT_OK) {
    keep_gradient(r, it, aj, grad, &chk, go.tol);
    double worst = cJSON_GetObjectItem(cJSON_GetObjectItem(aj, "check"),
                                       "worst_relative_error")->valuedouble;
    if (r->o->table)
      fprintf(r->o->table, "  finite-difference check     %s\n",
              worst <= go.tol ? "passed" : "FAILED");
    if (worst > go.tol) {
      snprintf(msg, 512, "the gradient check failed: worst relative error %.3g > %.3g",
               worst, go.tol);
      rc = CT_ERR_NUMERIC;
    }
  }
  ct_gradcheck_result_clear(r->ctx, &chk);
  ct_free(r->ctx, typical);
  return rc;
}

/* An adjoint gradient of an ODE model, into grad (np of p). */
static int adjoint_ode(runner *r, const plan_item *it, cJSON *aj, double *grad, double *value,
                       char *msg) {
  const ct_cfg *cfg = r->pl->cfg;
  ct_asa_options o;
  CT_CHECK(r->ctx, asa_options(r, it, &o));
  ct_asa_result *res = NULL;
  int rc = ct_asa_solve(r->ctx, it->asa, r->pl->p, NULL, cfg->time.start, cfg->time.end, &o,
                        &res);
  if (!res) return rc;
  *value = res->value;
  if (res->backward_done) memcpy(grad, res->dJdp, res->np * sizeof *grad);
  json_ode_stats(aj, "stats_forward", &res->ode.stats, res->ode.linsol);
  json_ode_stats(aj, "stats_backward", &res->stats_b, res->linsol_b);
  cJSON_AddNumberToObject(aj, "checkpoints", (double)res->n_checkpoints);
  json_numbers(aj, "dJdy0", res->dJdy0 ? res->dJdy0 : grad, res->dJdy0 ? res->n : 0);
  if (res->status < 0) snprintf(msg, 512, "%s", res->message);
  ct_asa_result_free(r->ctx, res);
  return rc;
}

/* An adjoint gradient of a DAE model, into grad (np of p). */
static int adjoint_dae(runner *r, const plan_item *it, cJSON *aj, double *grad, double *value,
                       char *msg) {
  const ct_cfg *cfg = r->pl->cfg;
  ct_dae_asa_options o;
  CT_CHECK(r->ctx, dae_asa_options(r, &o));
  ct_dae_asa_result *res = NULL;
  int rc = ct_dae_asa_solve(r->ctx, it->dasa, r->pl->p, NULL, NULL, cfg->time.start,
                            cfg->time.end, &o, &res);
  if (!res) return rc;
  *value = res->value;
  if (res->backward_done) memcpy(grad, res->dJdp, res->np * sizeof *grad);
  if (res->dae) json_dae_stats(aj, "stats_forward", &res->dae->stats);
  json_dae_stats(aj, "stats_backward", &res->stats_b);
  cJSON_AddNumberToObject(aj, "checkpoints", (double)res->n_checkpoints);
  if (res->status < 0) snprintf(msg, 512, "%s", res->message);
  ct_dae_asa_result_free(r->ctx, res);
  return rc;
}

/* The gradient by central differences of the objective (2 np adjoint
 * solves' values), into grad (np of p). */
static int fd_gradient(runner *r, const plan_item *it, cJSON *aj, double *grad) {
  objective_ud ud = {r, it};
  double value = NAN;
  CT_CHECK(r->ctx, objective_value(r->ctx, r->pl->p, &ud, &value));
  report_objective(r, it, aj, value);
  size_t np = r->pl->b->np;
  ct_gradcheck_options go;
  double *typical = NULL;
  CT_CHECK(r->ctx, fd_options(r, &go, &typical));
  ct_gradcheck_result chk = {0};
  int rc = ct_gradient_check(r->ctx, objective_value, &ud, r->pl->p, np, grad, &go, &chk);
  if (rc == CT_OK) {
    memcpy(grad, chk.fd, np * sizeof *grad);
    keep_gradient(r, it, aj, grad, NULL, 0.0);
    cJSON_AddNumberToObject(aj, "objective_evaluations", (double)chk.n_evals);
  }
  ct_gradcheck_result_clear(r->ctx, &chk);
  ct_free(r->ctx, typical);
  return rc;
}

/* Adds output k's term of the objective to *value and its derivative
 * (dphi/dy) s_q + dphi/dp_q to grad[pidx[q]]: one VJP of phi (or h, with
 * the data row d) at (t, y). s holds the np sensitivities at k. */
static int forward_term(runner *r, const plan_item *it, double t, const double *y,
                        const double *s, const double *d, double *grad, double *value) {
  const ct_cfg_built *b = r->pl->b;
  const ct_fun *f = it->obj_vjp;
  double one = 1.0, term = 0.0;
  double *bar_y = ct_calloc(r->ctx, b->n + b->np + 1, sizeof *bar_y);
  if (!bar_y) return CT_ERR_NOMEM;
  double *bar_p = bar_y + b->n;
  named_in ins[6] = {{"t", &t}, {"y", y}, {"p", r->pl->p}, {"d", d}, {"bar_phi", &one},
                     {"bar_h", &one}};
  double *outs[3] = {NULL, NULL, NULL};
  for (size_t o = 0; o < ct_fun_n_out(f) && o < 3; o++) {
    const char *nm = ct_fun_out_name(f, o);
    outs[o] = strcmp(nm, "bar_y") == 0 ? bar_y : strcmp(nm, "bar_p") == 0 ? bar_p : &term;
  }
  int rc = fun_eval_named(r->ctx, f, ins, 6, outs);
  for (size_t q = 0; rc == CT_OK && q < it->np; q++) {
    double g = bar_p[it->pidx[q]];
    for (size_t i = 0; i < b->n; i++) g += bar_y[i] * s[q * b->n + i];
    grad[it->pidx[q]] += g;
  }
  *value += term;
  ct_free(r->ctx, bar_y);
  return rc;
}

/* The gradient from forward sensitivities (method forward), ODE or DAE:
 * the objective's terms at the end time (final) or at the data times,
 * chained with dy/dp there. */
static int forward_gradient(runner *r, const plan_item *it, cJSON *aj, double *grad,
                            double *value, char *msg) {
  const ct_cfg *cfg = r->pl->cfg;
  const ct_cfg_built *b = r->pl->b;
  size_t n_t = it->n_obs ? it->n_obs + 1 : 2;
  double *tout = ct_calloc(r->ctx, n_t, sizeof *tout);
  if (!tout) return CT_ERR_NOMEM;
  tout[0] = cfg->time.start;
  if (it->n_obs) memcpy(tout + 1, it->t_obs, it->n_obs * sizeof *tout);
  else tout[1] = cfg->time.end;
  int rc;
  const double *t = NULL, *y = NULL, *s = NULL;
  size_t n_out = 0;
  ct_fsa *fsa = NULL;
  ct_fsa_result *res = NULL;
  ct_dae_fsa *dfsa = NULL;
  ct_dae_fsa_result *dres = NULL;
  if (b->ode) {
    ct_fsa_options o = ct_fsa_default_options();
    rc = ode_options(r, &o.ode);
    if (rc == CT_OK) rc = ct_fsa_new(r->ctx, b->ode, it->pidx, it->np, &fsa);
    if (rc == CT_OK) rc = ct_fsa_solve(r->ctx, fsa, r->pl->p, NULL, tout, n_t, &o, &res);
    if (res) t = res->ode.t, y = res->ode.y, s = res->s, n_out = res->ode.n_out;
    if (res && res->ode.status < 0) snprintf(msg, 512, "%s", res->ode.message);
    if (res) json_ode_stats(aj, "stats", &res->ode.stats, res->ode.linsol);
  } else {
    ct_dae_fsa_options o = ct_dae_fsa_default_options();
    rc = dae_options(r, &o.dae);
    if (rc == CT_OK) rc = ct_dae_fsa_new(r->ctx, b->dae, it->pidx, it->np, &dfsa);
    if (rc == CT_OK)
      rc = ct_dae_fsa_solve(r->ctx, dfsa, r->pl->p, NULL, NULL, tout, n_t, &o, &dres);
    if (dres && dres->dae) t = dres->dae->t, y = dres->dae->y, s = dres->s, n_out = dres->dae->n_out;
    if (dres && dres->dae && dres->dae->status < 0) snprintf(msg, 512, "%s", dres->dae->message);
    if (dres && dres->dae) json_dae_stats(aj, "stats", &dres->dae->stats);
  }
  *value = 0.0;
  for (size_t k = 1; rc == CT_OK && k < n_out; k++)
    rc = forward_term(r, it, t[k], y + k * b->n, s + k * it->np * b->n,
                      it->n_obs ? it->obs_data + (k - 1) * 2 * it->m : NULL, grad, value);
  ct_fsa_result_free(r->ctx, res);
  ct_fsa_free(fsa);
  ct_dae_fsa_result_free(r->ctx, dres);
  ct_dae_fsa_free(dfsa);
  ct_free(r->ctx, tout);
  return rc;
}

/* The gradient of an integral from forward sensitivities (method forward):
 * J = q(T) and dJ/dp = dq(T)/dp of the model with q' = g appended. */
static int forward_integral(runner *r, const plan_item *it, cJSON *aj, double *grad,
                            double *value, char *msg) {
  const ct_cfg *cfg = r->pl->cfg;
  size_t nq = r->pl->b->n, ny = nq + 1;
  double tout[2] = {cfg->time.start, cfg->time.end};
  ct_fsa_options o = ct_fsa_default_options();
  int rc = ode_options(r, &o.ode);
  o.ode.atol_v = it->int_atol_v;
  ct_fsa *fsa = NULL;
  ct_fsa_result *res = NULL;
  if (rc == CT_OK) rc = ct_fsa_new(r->ctx, it->int_ode, it->pidx, it->np, &fsa);
  if (rc == CT_OK) rc = ct_fsa_solve(r->ctx, fsa, r->pl->p, NULL, tout, 2, &o, &res);
  if (res && res->ode.status < 0) snprintf(msg, 512, "%s", res->ode.message);
  if (res) json_ode_stats(aj, "stats", &res->ode.stats, res->ode.linsol);
  if (rc == CT_OK && res->ode.n_out < 2)
    rc = CT_ERROR(r->ctx, CT_ERR_SOLVER, "the integral state did not reach t = %g", tout[1]);
  if (rc == CT_OK) *value = res->ode.y[ny + nq];
  for (size_t q = 0; rc == CT_OK && q < it->np; q++)
    grad[it->pidx[q]] = res->s[(it->np + q) * ny + nq];
  ct_fsa_result_free(r->ctx, res);
  ct_fsa_free(fsa);
  return rc;
}

/* adjoint_gradient, and gradient with methods adjoint, forward, finite_difference and auto. */
static int run_gradient(runner *r, const plan_item *it, cJSON *aj, char *msg) {
  size_t np = r->pl->b->np;
  double *grad = ct_calloc(r->ctx, np, sizeof *grad);
  if (!grad) return CT_ERR_NOMEM;
  double value = NAN;
  const char *method = gradient_method(it);
  cJSON_AddStringToObject(aj, "method", method);
  int rc;
  if (strcmp(method, "finite_difference") == 0) {
    rc = fd_gradient(r, it, aj, grad);
  } else {
    if (it->int_ode) rc = forward_integral(r, it, aj, grad, &value, msg);
    else if (strcmp(method, "forward") == 0) rc = forward_gradient(r, it, aj, grad, &value, msg);
    else if (it->asa) rc = adjoint_ode(r, it, aj, grad, &value, msg);
    else rc = adjoint_dae(r, it, aj, grad, &value, msg);
    if (rc == CT_OK) report_objective(r, it, aj, value);
    if (rc == CT_OK && !it->a->check_fd) keep_gradient(r, it, aj, grad, NULL, 0.0);
    if (rc == CT_OK && it->a->check_fd) rc = run_check(r, it, aj, grad, msg);
  }
  if (it->a->objective.kind == CT_CFG_OBJ_DATA && !r->data_it) r->data_it = it;
  ct_free(r->ctx, grad);
  return rc;
}

/* ---- Steady states ---------------------------------------------------------------- */

/* How the steady state was found, its residual and the solvers' counts. */
static void steady_json_solution(runner *r, cJSON *aj, const ct_steady_result *res) {
  cJSON_AddStringToObject(aj, "method_used", res->method == CT_STEADY_NEWTON ? "newton"
                                                                             : "integration");
  cJSON_AddNumberToObject(aj, "fnorm", res->fnorm);
  if (res->method == CT_STEADY_INTEGRATION) cJSON_AddNumberToObject(aj, "t_reached", res->t_reached);
  cJSON *st = cJSON_AddObjectToObject(aj, "stats");
  cJSON *nj = cJSON_AddObjectToObject(st, "newton");
  cJSON_AddNumberToObject(nj, "iters", (double)res->newton.iters);
  cJSON_AddNumberToObject(nj, "f_evals", (double)res->newton.f_evals);
  cJSON_AddNumberToObject(nj, "jac_evals", (double)res->newton.jac_evals);
  cJSON_AddNumberToObject(nj, "factorizations", (double)res->newton.factorizations);
  cJSON_AddNumberToObject(nj, "lin_iters", (double)res->newton.lin_iters);
  cJSON_AddNumberToObject(nj, "backtracks", (double)res->newton.backtracks);
  if (res->method == CT_STEADY_INTEGRATION)
    json_ode_stats(st, "integration", &res->ode, ct_steady_default_options().ode.linsol);
  (void)r;
}

/* {names[i]: v[i]} for i < n. */
static void json_by_name(cJSON *obj, const char *key, const char *const *names,
                         const double *v, size_t n) {
  cJSON *j = cJSON_AddObjectToObject(obj, key);
  for (size_t i = 0; j && i < n; i++) cJSON_AddNumberToObject(j, names[i], v[i]);
}

/* {variable: value} for the nv states and observables. */
static void json_by_var(runner *r, cJSON *obj, const char *key, const double *v) {
  json_by_name(obj, key, r->var_names, v, r->nv);
}

/* {parameter: {variable: value}} of s (column q at [q nv, (q + 1) nv)). */
static void json_steady_sens(runner *r, cJSON *aj, const char *key, const plan_item *it,
                             const double *s) {
  cJSON *j = cJSON_AddObjectToObject(aj, key);
  for (size_t q = 0; j && q < it->np; q++)
    json_by_var(r, j, r->pl->b->model->params[it->pidx[q]].name, s + q * r->nv);
}

/* dx*_i/dp_q for the analysis' parameters (column q at [q n, (q + 1) n)):
 * one implicit tangent solve with the unit directions of the selected
 * parameters. */
static int steady_state_sens(runner *r, const plan_item *it, double *S) {
  size_t np = r->pl->b->np;
  double *dp = ct_calloc(r->ctx, it->np * np + 1, sizeof *dp);
  if (!dp) return CT_ERR_NOMEM;
  for (size_t q = 0; q < it->np; q++) dp[q * np + it->pidx[q]] = 1.0;
  int rc = ct_nlsolve_tangent(r->ctx, ct_steady_nlsolve(it->steady), (int)it->np, dp, S);
  ct_free(r->ctx, dp);
  return rc;
}

/* Prints the steady state and its first sensitivities. */
static void table_steady(runner *r, const plan_item *it, const double *vals, const double *sens) {
  table_values(r, "%s(steady)", r->var_names, vals, r->nv);
  FILE *f = r->o->table;
  size_t rows = 0;
  for (size_t q = 0; f && q < it->np; q++)
    for (size_t i = 0; i < r->nv && rows < MAX_TABLE_ROWS; i++, rows++) {
      char label[96];
      snprintf(label, sizeof label, "d %s/d %s", r->var_names[i],
               r->pl->b->model->params[it->pidx[q]].name);
      fprintf(f, "  %-28s %15.8e\n", label, sens[q * r->nv + i]);
    }
  if (f && it->np * r->nv > rows)
    fprintf(f, "  ... %zu more in summary.json\n", it->np * r->nv - rows);
}

/* The steady state with its observables and their sensitivities (absolute
 * and normalised (p/v) dv/dp, 0 where v = 0) into the JSON and the table;
 * the first steady_state analysis' ones are kept for steady_state.csv. */
static int keep_steady(runner *r, const plan_item *it, cJSON *aj, const double *x,
                       const double *S) {
  double t0 = r->pl->cfg->time.start, *vals = NULL, *sa = NULL;
  int rc = with_observables(r, it, &t0, x, S, 1, &vals, &sa);
  double *sn = rc == CT_OK ? ct_calloc(r->ctx, it->np * r->nv + 1, sizeof *sn) : NULL;
  if (rc == CT_OK && !sn) rc = CT_ERR_NOMEM;
  for (size_t q = 0; rc == CT_OK && q < it->np; q++)
    for (size_t i = 0; i < r->nv; i++) {
      double v = vals[i], pv = r->pl->p[it->pidx[q]];
      sn[q * r->nv + i] = v != 0.0 ? pv / v * sa[q * r->nv + i] : 0.0;
    }
  if (rc == CT_OK) {
    json_by_var(r, aj, "steady_state", vals);
    json_steady_sens(r, aj, "sensitivities", it, sa);
    json_steady_sens(r, aj, "normalised", it, sn);
    table_steady(r, it, vals, sa);
  }
  if (rc == CT_OK && !r->steady_it) {
    r->steady_it = it;
    r->ss_vals = vals, vals = NULL;
    r->ss_sens = sa, sa = NULL;
    r->ss_norm = sn, sn = NULL;
  }
  ct_free(r->ctx, vals);
  ct_free(r->ctx, sa);
  ct_free(r->ctx, sn);
  return rc;
}

/* The objective phi(t0, x*, p) and its gradient (np of p): adjoint,
 * dJ/dp = phi_p + ct_steady_adjoint(phi_x) (one transposed solve, every
 * parameter); forward, phi_p + phi_x S for the selected parameters (S:
 * their sensitivities, one tangent solve each). */
static int steady_gradient(runner *r, const plan_item *it, const double *x, const double *S,
                           double *grad, double *value) {
  const ct_cfg_built *b = r->pl->b;
  if (strcmp(it->a->method, "forward") == 0) {
    *value = 0.0;
    return forward_term(r, it, r->pl->cfg->time.start, x, S, NULL, grad, value);
  }
  double t0 = r->pl->cfg->time.start, one = 1.0;
  double *bar = ct_calloc(r->ctx, b->n + 2 * b->np + 1, sizeof *bar);
  if (!bar) return CT_ERR_NOMEM;
  double *bar_y = bar, *bar_p = bar + b->n, *p_bar = bar + b->n + b->np;
  named_in ins[4] = {{"t", &t0}, {"y", x}, {"p", r->pl->p}, {"bar_phi", &one}};
  double *outs[3] = {NULL, NULL, NULL};
  for (size_t o = 0; o < ct_fun_n_out(it->obj_vjp) && o < 3; o++) {
    const char *nm = ct_fun_out_name(it->obj_vjp, o);
    outs[o] = strcmp(nm, "bar_y") == 0 ? bar_y : strcmp(nm, "bar_p") == 0 ? bar_p : value;
  }
  int rc = fun_eval_named(r->ctx, it->obj_vjp, ins, 4, outs);
  if (rc == CT_OK) rc = ct_steady_adjoint(r->ctx, it->steady, bar_y, p_bar, NULL);
  for (size_t j = 0; rc == CT_OK && j < b->np; j++) grad[j] = bar_p[j] + p_bar[j];
  ct_free(r->ctx, bar);
  return rc;
}

/* The objective's gradient into the JSON, the table, gradient.csv, and
 * the finite-difference check when asked. */
static int steady_objective_report(runner *r, const plan_item *it, cJSON *aj, const double *x,
                                   const double *S, char *msg) {
  double *grad = ct_calloc(r->ctx, r->pl->b->np + 1, sizeof *grad), value = NAN;
  if (!grad) return CT_ERR_NOMEM;
  cJSON_AddStringToObject(aj, "gradient_method", it->a->method);
  int rc = steady_gradient(r, it, x, S, grad, &value);
  if (rc == CT_OK) report_objective(r, it, aj, value);
  if (rc == CT_OK && !it->a->check_fd) keep_gradient(r, it, aj, grad, NULL, 0.0);
  if (rc == CT_OK && it->a->check_fd) rc = run_check(r, it, aj, grad, msg);
  ct_free(r->ctx, grad);
  return rc;
}

/* steady_state: the steady state from the model's initial values, its
 * sensitivities and, with an objective, the objective's gradient. */
static int run_steady(runner *r, const plan_item *it, cJSON *aj, char *msg) {
  ct_steady_options o;
  CT_CHECK(r->ctx, steady_options(r, it, &o));
  ct_steady_result res;
  int rc = ct_steady_solve(r->ctx, it->steady, &o, r->pl->p, NULL, &res);
  steady_json_solution(r, aj, &res);
  if (rc < 0) snprintf(msg, 512, "%s", res.message);
  if (rc < 0 && res.x) /* the partial result: where Newton or the integration got to */
    json_by_name(aj, "last_iterate", r->pl->b->y_names, res.x, res.n);
  double *S = ct_calloc(r->ctx, it->np * r->pl->b->n + 1, sizeof *S);
  if (rc == CT_OK && !S) rc = CT_ERR_NOMEM;
  if (rc == CT_OK) rc = steady_state_sens(r, it, S);
  if (rc == CT_OK) rc = keep_steady(r, it, aj, res.x, S);
  if (rc == CT_OK && it->phi) rc = steady_objective_report(r, it, aj, res.x, S, msg);
  ct_free(r->ctx, S);
  ct_steady_result_free(r->ctx, &res);
  return rc;
}

/* Runs one analysis into its JSON object; msg gets the failure. */
static int run_item(runner *r, const plan_item *it, cJSON *aj, char *msg) {
  int dae = r->pl->b->dae != NULL;
  switch (it->a->type) {
  case CT_CFG_SIMULATE: return dae ? run_simulate_dae(r, it, aj, msg) : run_simulate_ode(r, it, aj, msg);
  case CT_CFG_FORWARD_SENSITIVITY: return dae ? run_fsa_dae(r, it, aj, msg) : run_fsa_ode(r, it, aj, msg);
  case CT_CFG_ADJOINT_GRADIENT:
  case CT_CFG_GRADIENT: return run_gradient(r, it, aj, msg);
  case CT_CFG_STEADY_STATE: return run_steady(r, it, aj, msg);
  }
  return CT_ERR_INTERNAL;
}

static const char *const type_names[] = {"simulate", "forward_sensitivity",
                                         "adjoint_gradient", "gradient", "steady_state"};

/* Runs analysis i: progress, table heading, JSON entry with status and
 * wall time. Returns the analysis' status. */
static int run_one(runner *r, size_t i) {
  const plan_item *it = &r->pl->items[i];
  char what[160], msg[512] = "";
  snprintf(what, sizeof what, "%s (%zu/%zu)", it->a->name, i + 1, r->pl->n);
  if (r->o->table) fprintf(r->o->table, "== %s: %s\n", it->a->name, type_names[it->a->type]);
  cJSON *aj = cJSON_CreateObject();
  cJSON_AddItemToArray(r->analyses, aj);
  cJSON_AddStringToObject(aj, "name", it->a->name);
  cJSON_AddStringToObject(aj, "type", type_names[it->a->type]);
  if (r->o->progress) ct_progress_begin(r->o->progress, what, r->pl->cfg->time.start,
                                        r->pl->cfg->time.end);
  double t0 = now_s();
  int rc = run_item(r, it, aj, msg);
  double wall = now_s() - t0;
  if (rc < 0 && !msg[0]) {
    ct_errmsg_text(r->ctx, msg, sizeof msg);
  }
  cJSON_AddStringToObject(aj, "status", rc == CT_OK ? "ok" : rc == CT_ERR_INTERRUPTED
                                                            ? "interrupted" : "failed");
  if (rc < 0) cJSON_AddStringToObject(aj, "message", msg);
  cJSON_AddNumberToObject(aj, "wall_time_s", wall);
  if (r->o->progress) ct_progress_end(r->o->progress, rc == CT_OK ? "done" : msg);
  if (rc < 0 && r->o->table) fprintf(r->o->table, "  %s: %s\n",
                                     rc == CT_ERR_INTERRUPTED ? "INTERRUPTED" : "FAILED", msg);
  if (rc < 0 && !r->out->message[0])
    snprintf(r->out->message, sizeof r->out->message, "%.200s: %.511s", it->a->name, msg);
  return rc;
}

/* ---- Files ------------------------------------------------------------------------- */

/* emit for ct_write_atomic: a cJSON document. */
static int emit_json(FILE *f, void *ud) {
  char *text = cJSON_Print(ud);
  if (!text) return CT_ERR_NOMEM;
  int ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF;
  cJSON_free(text);
  return ok ? CT_OK : CT_ERR_IO;
}

/* emit: trajectory.csv (time, states, observables). */
static int emit_trajectory(FILE *f, void *ud) {
  runner *r = ud;
  const ct_cfg_built *b = r->pl->b;
  double *o = observables_along(r, r->traj_t, r->traj_y, r->traj_n);
  fprintf(f, "time");
  for (size_t i = 0; i < b->n; i++) fprintf(f, ",%s", b->y_names[i]);
  for (size_t i = 0; o && i < b->n_obs; i++) fprintf(f, ",%s", b->model->observables[i].name);
  fputc('\n', f);
  for (size_t k = 0; k < r->traj_n; k++) {
    fprintf(f, "%.10g", r->traj_t[k]);
    for (size_t i = 0; i < b->n; i++) fprintf(f, ",%.10g", r->traj_y[k * b->n + i]);
    for (size_t i = 0; o && i < b->n_obs; i++) fprintf(f, ",%.10g", o[k * b->n_obs + i]);
    fputc('\n', f);
  }
  ct_free(r->ctx, o);
  return CT_OK;
}

/* emit: sensitivities.csv, long format. */
static int emit_sensitivities(FILE *f, void *ud) {
  runner *r = ud;
  const plan_item *it = r->sens_it;
  fprintf(f, "time,variable,parameter,value,normalised\n");
  for (size_t k = 0; k < r->sens_n; k++)
    for (size_t q = 0; q < it->np; q++)
      for (size_t i = 0; i < r->nv; i++) {
        size_t at = (k * it->np + q) * r->nv + i;
        fprintf(f, "%.10g,%s,%s,%.10g,%.10g\n", r->sens_t[k], r->var_names[i],
                r->pl->b->model->params[it->pidx[q]].name, r->sens_y[at], r->sens_s[at]);
      }
  return CT_OK;
}

/* emit: steady_state.csv, long format: each variable's steady value
 * (parameter empty), then its sensitivity to each parameter. */
static int emit_steady(FILE *f, void *ud) {
  runner *r = ud;
  const plan_item *it = r->steady_it;
  fprintf(f, "variable,parameter,value,normalised\n");
  for (size_t i = 0; i < r->nv; i++) fprintf(f, "%s,,%.10g,\n", r->var_names[i], r->ss_vals[i]);
  for (size_t q = 0; q < it->np; q++)
    for (size_t i = 0; i < r->nv; i++)
      fprintf(f, "%s,%s,%.10g,%.10g\n", r->var_names[i],
              r->pl->b->model->params[it->pidx[q]].name, r->ss_sens[q * r->nv + i] + 0.0,
              r->ss_norm[q * r->nv + i] + 0.0); /* + 0.0: no "-0" */
  return CT_OK;
}

/* emit: gradient.csv, one row per analysis and parameter. */
static int emit_gradients(FILE *f, void *ud) {
  runner *r = ud;
  const ct_cfg_model *m = r->pl->b->model;
  fprintf(f, "analysis,parameter,gradient,finite_difference,relative_error\n");
  for (size_t g = 0; g < r->n_grads; g++) {
    const grad_rec *gr = &r->grads[g];
    for (size_t q = 0; gr->grad && q < gr->it->np; q++) {
      size_t j = gr->it->pidx[q];
      fprintf(f, "%s,%s,%.10g", gr->analysis, m->params[j].name, gr->grad[j]);
      if (gr->fd && gr->rel) fprintf(f, ",%.10g,%.3g\n", gr->fd[j], gr->rel[j]);
      else fprintf(f, ",,\n");
    }
  }
  return CT_OK;
}

/* A logarithmic time axis when the output times span more than three
 * decades (stiff problems): the first positive one below end / 1000. */
static int log_time_axis(const ct_cfg_time *tm) {
  for (size_t k = 0; k < tm->n_output; k++)
    if (tm->output[k] > 0.0) return tm->output[k] * 1000.0 < tm->end;
  return 0;
}

/* emit: trajectory.svg, the states (at most MAX_PLOT_SERIES) and the data. */
static int emit_trajectory_svg(FILE *f, void *ud) {
  runner *r = ud;
  const ct_cfg_built *b = r->pl->b;
  ct_svg_series s[2 * MAX_PLOT_SERIES];
  double *ys = ct_calloc(r->ctx, r->traj_n * b->n + 1, sizeof *ys);
  if (!ys) return CT_ERR_NOMEM;
  size_t ns = 0;
  for (size_t i = 0; i < b->n && i < MAX_PLOT_SERIES; i++) {
    for (size_t k = 0; k < r->traj_n; k++) ys[i * r->traj_n + k] = r->traj_y[k * b->n + i];
    s[ns++] = (ct_svg_series){b->y_names[i], r->traj_t, ys + i * r->traj_n, r->traj_n, 0};
  }
  const plan_item *it = r->data_it;
  const ct_cfg_data *d = it ? it->data : NULL;
  double *dv = d ? ct_calloc(r->ctx, d->n_rows * it->m + 1, sizeof *dv) : NULL;
  char labels[MAX_PLOT_SERIES][80];
  for (size_t j = 0; dv && j < it->m && j < MAX_PLOT_SERIES; j++) {
    for (size_t k = 0; k < d->n_rows; k++)
      dv[j * d->n_rows + k] = d->values[k * d->n_cols + it->cols[j]];
    snprintf(labels[j], sizeof labels[j], "%s (data)", it->names[j]);
    s[ns++] = (ct_svg_series){labels[j], d->t, dv + j * d->n_rows, d->n_rows, 1};
  }
  ct_svg_plot plot = {"Trajectories", "time", "value", s, ns,
                      log_time_axis(&r->pl->cfg->time), 0};
  int rc = ct_svg_line_plot(f, &plot);
  ct_free(r->ctx, ys);
  ct_free(r->ctx, dv);
  return rc;
}

/* emit: sensitivities.svg, normalised sensitivities of the first rows. */
static int emit_sensitivities_svg(FILE *f, void *ud) {
  runner *r = ud;
  const plan_item *it = r->sens_it;
  ct_svg_series s[MAX_PLOT_SERIES];
  char labels[MAX_PLOT_SERIES][96];
  double *v = ct_calloc(r->ctx, MAX_PLOT_SERIES * r->sens_n + 1, sizeof *v);
  if (!v) return CT_ERR_NOMEM;
  size_t ns = 0;
  for (size_t q = 0; q < it->np && ns < MAX_PLOT_SERIES; q++)
    for (size_t i = 0; i < r->nv && ns < MAX_PLOT_SERIES; i++, ns++) {
      for (size_t k = 0; k < r->sens_n; k++)
        v[ns * r->sens_n + k] = r->sens_s[(k * it->np + q) * r->nv + i];
      snprintf(labels[ns], sizeof labels[ns], "%s / %s", r->var_names[i],
               r->pl->b->model->params[it->pidx[q]].name);
      s[ns] = (ct_svg_series){labels[ns], r->sens_t, v + ns * r->sens_n, r->sens_n, 0};
    }
  ct_svg_plot plot = {"Normalised sensitivities (p/v) dv/dp", "time", "normalised", s, ns,
                      log_time_axis(&r->pl->cfg->time), 0};
  int rc = ct_svg_line_plot(f, &plot);
  ct_free(r->ctx, v);
  return rc;
}

/* emit: gradient.svg, the first gradient as a bar chart. */
static int emit_gradient_svg(FILE *f, void *ud) {
  runner *r = ud;
  const grad_rec *g = &r->grads[0];
  const ct_cfg_model *m = r->pl->b->model;
  const char **labels = ct_calloc(r->ctx, g->it->np + 1, sizeof *labels);
  double *v = ct_calloc(r->ctx, g->it->np + 1, sizeof *v);
  int rc = labels && v ? CT_OK : CT_ERR_NOMEM;
  for (size_t q = 0; rc == CT_OK && q < g->it->np; q++) {
    labels[q] = m->params[g->it->pidx[q]].name;
    v[q] = g->grad[g->it->pidx[q]];
  }
  char title[160];
  snprintf(title, sizeof title, "Gradient dJ/dp (%s)", g->analysis);
  if (rc == CT_OK) rc = ct_svg_bar_chart(f, title, labels, v, g->it->np);
  ct_free(r->ctx, (void *)labels);
  ct_free(r->ctx, v);
  return rc;
}

/* OUTDIR/name through ct_write_atomic. */
static int write_file(runner *r, const char *name, int (*emit)(FILE *, void *), void *ud) {
  size_t len = strlen(r->o->outdir) + strlen(name) + 2;
  char *path = ct_alloc(r->ctx, len);
  if (!path) return CT_ERR_NOMEM;
  snprintf(path, len, "%s/%s", r->o->outdir, name);
  int rc = ct_write_atomic(r->ctx, path, emit, ud);
  ct_free(r->ctx, path);
  return rc;
}

/* Every result file for what was computed. */
static int write_outputs(runner *r) {
  CT_CHECK(r->ctx, ct_make_dirs(r->ctx, r->o->outdir));
  if (r->traj_n) {
    CT_CHECK(r->ctx, write_file(r, "trajectory.csv", emit_trajectory, r));
    CT_CHECK(r->ctx, write_file(r, "trajectory.svg", emit_trajectory_svg, r));
  }
  if (r->sens_n) {
    CT_CHECK(r->ctx, write_file(r, "sensitivities.csv", emit_sensitivities, r));
    CT_CHECK(r->ctx, write_file(r, "sensitivities.svg", emit_sensitivities_svg, r));
  }
  if (r->steady_it) CT_CHECK(r->ctx, write_file(r, "steady_state.csv", emit_steady, r));
  if (r->n_grads) {
    CT_CHECK(r->ctx, write_file(r, "gradient.csv", emit_gradients, r));
    CT_CHECK(r->ctx, write_file(r, "gradient.svg", emit_gradient_svg, r));
  }
  return write_file(r, "summary.json", emit_json, r->summary);
}

/* A config tree as JSON: numbers where a scalar reads as one. */
static cJSON *tree_json(const ct_cfg_node *n) {
  if (!n) return cJSON_CreateNull();
  if (n->kind == CT_CFG_SCALAR) {
    char *end = NULL;
    double v = n->text ? strtod(n->text, &end) : 0.0;
    if (n->text && !n->quoted && end != n->text && *end == 0 && isfinite(v))
      return cJSON_CreateNumber(v);
    return cJSON_CreateString(n->text ? n->text : "");
  }
  cJSON *j = n->kind == CT_CFG_MAP ? cJSON_CreateObject() : cJSON_CreateArray();
  for (size_t i = 0; j && i < n->n; i++) {
    if (n->kind == CT_CFG_MAP) cJSON_AddItemToObject(j, n->keys[i], tree_json(n->items[i]));
    else cJSON_AddItemToArray(j, tree_json(n->items[i]));
  }
  return j;
}

/* The summary's head: versions, the config, the model. */
static void summary_head(runner *r) {
  const ct_cfg *cfg = r->pl->cfg;
  const ct_cfg_built *b = r->pl->b;
  cJSON_AddStringToObject(r->summary, "cotangent_version", ct_version());
  cJSON_AddStringToObject(r->summary, "config_file", r->o->config_path ? r->o->config_path : "");
  cJSON *mj = cJSON_AddObjectToObject(r->summary, "model");
  cJSON_AddStringToObject(mj, "name", b->model->name ? b->model->name : "");
  cJSON *sn = cJSON_AddArrayToObject(mj, "states");
  for (size_t i = 0; i < b->n; i++) cJSON_AddItemToArray(sn, cJSON_CreateString(b->y_names[i]));
  cJSON *pj = cJSON_AddObjectToObject(mj, "parameters");
  for (size_t i = 0; i < b->np; i++)
    cJSON_AddNumberToObject(pj, b->model->params[i].name, r->pl->p[i]);
  cJSON_AddItemToObject(r->summary, "config", tree_json(cfg->doc ? cfg->doc->root : NULL));
  cJSON *rj = cJSON_AddObjectToObject(r->summary, "resolved");
  cJSON_AddStringToObject(rj, "model_kind", b->dae ? "dae" : "ode");
  cJSON_AddStringToObject(rj, "method", b->dae ? "bdf (IDAS)" : cfg->solver.method ? cfg->solver.method : "bdf");
  cJSON_AddStringToObject(rj, "linear_solver", cfg->solver.linear_solver ? cfg->solver.linear_solver : "auto");
  cJSON_AddNumberToObject(rj, "rtol", cfg->solver.rtol);
  if (cfg->solver.atol_v) json_numbers(rj, "atol", cfg->solver.atol_v, b->model->n_states);
  else cJSON_AddNumberToObject(rj, "atol", cfg->solver.atol);
  cJSON_AddNumberToObject(rj, "max_steps", (double)cfg->solver.max_steps);
  cJSON_AddNumberToObject(rj, "start", cfg->time.start);
  cJSON_AddNumberToObject(rj, "end", cfg->time.end);
  json_numbers(rj, "output", cfg->time.output, cfg->time.n_output);
}

/* Frees what a runner kept for the files. */
static void runner_clear(runner *r) {
  ct_free(r->ctx, r->traj_t);
  ct_free(r->ctx, r->traj_y);
  ct_free(r->ctx, r->sens_t);
  ct_free(r->ctx, r->sens_y);
  ct_free(r->ctx, r->sens_s);
  ct_free(r->ctx, r->ss_vals);
  ct_free(r->ctx, r->ss_sens);
  ct_free(r->ctx, r->ss_norm);
  for (size_t g = 0; g < r->n_grads; g++) {
    ct_free(r->ctx, r->grads[g].grad);
    ct_free(r->ctx, r->grads[g].fd);
    ct_free(r->ctx, r->grads[g].rel);
  }
  cJSON_Delete(r->summary);
  ct_free(r->ctx, (void *)r->var_names);
}

int ct_cfg_plan_run(ct_context *ctx, ct_cfg_plan *pl, const ct_cfg_run_opts *o,
                    ct_cfg_run_outcome *out) {
  memset(out, 0, sizeof *out);
  runner r = {0};
  r.ctx = ctx, r.pl = pl, r.o = o, r.out = out;
  r.summary = cJSON_CreateObject();
  r.nv = pl->b->n + pl->b->n_obs;
  r.var_names = ct_calloc(ctx, r.nv + 1, sizeof *r.var_names);
  if (!r.summary || !r.var_names) {
    cJSON_Delete(r.summary);
    ct_free(ctx, (void *)r.var_names);
    return CT_ERROR(ctx, CT_ERR_NOMEM, "no memory for summary.json");
  }
  for (size_t i = 0; i < r.nv; i++)
    r.var_names[i] = i < pl->b->n ? pl->b->y_names[i]
                                  : pl->b->model->observables[i - pl->b->n].name;
  summary_head(&r);
  r.analyses = cJSON_AddArrayToObject(r.summary, "analyses");
  double t0 = now_s();
  for (size_t i = 0; i < pl->n; i++) {
    int rc = run_one(&r, i);
    if (rc == CT_OK) {
      out->n_done++;
      continue;
    }
    out->n_failed++;
    out->interrupted = rc == CT_ERR_INTERRUPTED || (o->interrupt && *o->interrupt);
    break;
  }
  cJSON_AddNumberToObject(r.summary, "wall_time_s", now_s() - t0);
  cJSON_AddStringToObject(r.summary, "status", out->n_failed ? (out->interrupted ? "interrupted"
                                                                                 : "failed")
                                                             : "ok");
  if (out->n_failed) cJSON_AddStringToObject(r.summary, "message", out->message);
  int rc = write_outputs(&r);
  runner_clear(&r);
  return rc;
}
