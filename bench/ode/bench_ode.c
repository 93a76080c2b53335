/* bench_ode: ODE simulation and gradients, side by side in one run.
 *
 *   bench_ode [--smoke] [--out build/bench/ode.json] [--md PATH]
 *             [--reps N] [--case NAME]... [--no-scipy] [--fsa-max NP]
 *             [--cd-max NP] [--grad-max NP] [--grad-np NP]
 *
 * 1. Simulation (CVODES BDF, same tolerances) with the AD model compiled
 *    (ct_ode_new + ct_ode_jit), the same AD model on the interpreter, a
 *    hand-written Jacobian (ct_ode_new_callbacks: dense for the small
 *    cases, CSC + KLU for the networks) and CVODES' dense
 *    difference-quotient Jacobian (f only). The final states must agree
 *    (compiled and interpreted AD: to the bit).
 * 2. Gradients of J = w^T y(T) with respect to the first np parameters,
 *    on the compiled AD model (its VJPs and JVPs compiled too): adjoint (ct_asa_solve), forward sensitivities (ct_fsa_solve, then
 *    w^T dy(T)/dp) and central differences (2 np simulations; timed on at
 *    most --cd-max parameters and scaled to np), each as time / simulation
 *    time. Adjoint and forward gradients must agree, and central
 *    differences must agree with both roughly.
 * 3. The same problems in SciPy (bench/ode/scipy_peer.py, solve_ivp BDF
 *    with the analytic Jacobian): bench_ode writes the problems to
 *    <out>-problems.json, the script writes its rows to <out>-scipy.json.
 *
 * --smoke: one repetition, tiny problems, no SciPy: checks the numbers
 * (exit status 1 on a mismatch), never the timings. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cases.h"
#include "report.h"
#include "cotangent/adjoint.h"
#include "cotangent/sensitivity.h"

#ifndef BENCH_ODE_SCIPY_PEER
#define BENCH_ODE_SCIPY_PEER "bench/ode/scipy_peer.py"
#endif

enum { MAX_CASES = 8, MAX_ROWS = 4096 };

/* Agreement limits: the three simulations (relative to max |y(T)|); adjoint
 * vs forward gradients and central differences vs adjoint (relative to the
 * largest gradient component). */
static const double SIM_AGREE = 1e-4, GRAD_AGREE = 1e-4, CD_AGREE = 5e-2;

typedef struct options {
  int smoke, no_scipy, reps;
  size_t cd_max, fsa_max, grad_max, grad_np; /* grad_np: the only count, or 0 */
  const char *out, *md;
  const char *cases[MAX_CASES];
  size_t n_cases;
} options;

typedef struct row {
  char name[48], metric[40], unit[8];
  double value;
} row;

typedef struct report {
  row rows[MAX_ROWS];
  size_t n;
  int failures;
} report;

/* ---- Small helpers ------------------------------------------------------------ */

static void add_row(report *r, const char *name, const char *metric, double value,
                    const char *unit) {
  if (r->n == MAX_ROWS) return;
  row *w = &r->rows[r->n++];
  snprintf(w->name, sizeof w->name, "%s", name);
  snprintf(w->metric, sizeof w->metric, "%s", metric);
  snprintf(w->unit, sizeof w->unit, "%s", unit);
  w->value = value;
}

/* The value of (name, metric), or NAN. */
static double get_row(const report *r, const char *name, const char *metric) {
  for (size_t i = 0; i < r->n; i++)
    if (!strcmp(r->rows[i].name, name) && !strcmp(r->rows[i].metric, metric))
      return r->rows[i].value;
  return NAN;
}

/* Records a failed check and says what it was. */
static void check(report *r, int ok, const char *name, const char *what, double got,
                  double limit) {
  if (ok) return;
  r->failures++;
  fprintf(stderr, "bench_ode: CHECK FAILED: %s: %s = %.3g (limit %.3g)\n", name, what, got,
          limit);
}

static ct_ode_options sim_options(const ode_case *c) {
  ct_ode_options o = ct_ode_default_options();
  o.rtol = c->rtol, o.atol = c->atol;
  o.linsol = ode_case_linsol(c);
  o.max_steps = 1000000;
  return o;
}

/* One simulation from 0 to T: y(T) into yT (n), statistics into st, the
 * wall time into *secs. */
static int simulate(ct_context *ctx, const ct_ode *ode, const ode_case *c, const double *p,
                    ct_ode_linsol ls, double *yT, ct_ode_stats *st, double *secs) {
  double tout[2] = {0.0, c->T};
  ct_ode_options o = sim_options(c);
  o.linsol = ls;
  ct_ode_result *res = NULL;
  double t0 = bench_now();
  int rc = ct_ode_solve(ctx, ode, p, c->y0, tout, 2, &o, &res);
  *secs = bench_now() - t0;
  if (rc == CT_OK) {
    memcpy(yT, res->y + c->n, c->n * sizeof *yT);
    if (st) *st = res->stats;
  } else {
    fprintf(stderr, "bench_ode: %s: %s\n", c->name, res ? res->message : ct_errmsg(ctx));
  }
  ct_ode_result_free(ctx, res);
  return rc;
}

/* J = w^T y(T). */
static double objective(const ode_case *c, const double *yT) {
  double J = 0;
  for (size_t i = 0; i < c->n; i++) J += c->w[i] * yT[i];
  return J;
}

/* ---- 1. Simulation: AD vs hand-written vs difference quotients --------------------- */

enum { M_AD, M_AD_INTERP, M_HAND, M_DQ, N_MODELS };
static const char *const model_names[N_MODELS] = {"ad", "ad_interp", "hand", "dq"};

/* The models of a case, with all parameters; the AD model compiled
 * (ct_ode_jit, its time in *jit_s: a compile, or a load from the cache). */
static int build_models(ct_context *ctx, ode_case *c, ct_ode *m[N_MODELS], double *jit_s) {
  ct_fun *rhs = NULL;
  int rc = ode_case_trace(ctx, c, c->np, &rhs);
  if (rc == CT_OK) rc = ct_ode_new(ctx, rhs, NULL, NULL, &m[M_AD]);
  if (rc == CT_OK) rc = ct_ode_new(ctx, rhs, NULL, NULL, &m[M_AD_INTERP]);
  ct_fun_free(rhs);
  double t0 = bench_now();
  if (rc == CT_OK) rc = ct_ode_jit(ctx, m[M_AD], NULL);
  *jit_s = bench_now() - t0;
  if (rc == CT_OK) rc = ode_case_hand_model(ctx, c, 0, &m[M_HAND]);
  if (rc == CT_OK) rc = ode_case_hand_model(ctx, c, 1, &m[M_DQ]);
  return rc;
}

/* Interleaved rounds (AD compiled, AD interpreted, hand, DQ) so that load
 * changes hit all; medians into the report, solutions compared. */
static int bench_simulation(ct_context *ctx, ode_case *c, const options *o, report *r) {
  ct_ode *m[N_MODELS] = {NULL, NULL, NULL, NULL};
  double *yT = calloc(N_MODELS * c->n, sizeof *yT), jit_s = NAN;
  double times[N_MODELS][32];
  ct_ode_stats st[N_MODELS];
  int reps = o->smoke ? 1 : o->reps, rc = yT ? build_models(ctx, c, m, &jit_s) : CT_ERR_NOMEM;
  if (rc != CT_OK) fprintf(stderr, "bench_ode: %s: models: %s\n", c->name, ct_errmsg(ctx));
  for (int i = 0; rc == CT_OK && !o->smoke && i < N_MODELS; i++) { /* warm-up, not timed */
    ct_ode_linsol ls = i == M_DQ ? CT_LINSOL_DENSE : ode_case_linsol(c);
    rc = simulate(ctx, m[i], c, c->p, ls, yT + i * c->n, &st[i], &times[i][0]);
  }
  for (int k = 0; rc == CT_OK && k < reps; k++)
    for (int i = 0; rc == CT_OK && i < N_MODELS; i++) {
      ct_ode_linsol ls = i == M_DQ ? CT_LINSOL_DENSE : ode_case_linsol(c);
      rc = simulate(ctx, m[i], c, c->p, ls, yT + i * c->n, &st[i], &times[i][k]);
    }
  if (rc == CT_OK) {
    char metric[40];
    for (int i = 0; i < N_MODELS; i++) {
      snprintf(metric, sizeof metric, "sim_time_%s", model_names[i]);
      add_row(r, c->name, metric, bench_median(times[i], (size_t)reps), "s");
      snprintf(metric, sizeof metric, "steps_%s", model_names[i]);
      add_row(r, c->name, metric, (double)st[i].steps, "");
      snprintf(metric, sizeof metric, "jac_evals_%s", model_names[i]);
      add_row(r, c->name, metric, (double)st[i].jac_evals, "");
    }
    add_row(r, c->name, "jit_time", jit_s, "s");
    add_row(r, c->name, "ratio_ad_over_hand",
            get_row(r, c->name, "sim_time_ad") / get_row(r, c->name, "sim_time_hand"), "x");
    add_row(r, c->name, "ratio_interp_over_jit",
            get_row(r, c->name, "sim_time_ad_interp") / get_row(r, c->name, "sim_time_ad"),
            "x");
    add_row(r, c->name, "ratio_dq_over_ad",
            get_row(r, c->name, "sim_time_dq") / get_row(r, c->name, "sim_time_ad"), "x");
    double d_hand = bench_rel_diff(yT + M_HAND * c->n, yT, c->n);
    double d_dq = bench_rel_diff(yT + M_DQ * c->n, yT, c->n);
    int same_bits = !memcmp(yT + M_AD_INTERP * c->n, yT, c->n * sizeof *yT);
    add_row(r, c->name, "yT_diff_hand_vs_ad", d_hand, "rel");
    add_row(r, c->name, "yT_diff_dq_vs_ad", d_dq, "rel");
    add_row(r, c->name, "objective", objective(c, yT), "");
    memcpy(c->yT, yT, c->n * sizeof *yT);
    check(r, d_hand <= SIM_AGREE, c->name, "y(T) hand vs AD", d_hand, SIM_AGREE);
    check(r, d_dq <= SIM_AGREE, c->name, "y(T) DQ vs AD", d_dq, SIM_AGREE);
    check(r, same_bits, c->name, "y(T) AD interpreter vs compiled, bits differ",
          bench_rel_diff(yT + M_AD_INTERP * c->n, yT, c->n), 0);
  }
  for (int i = 0; i < N_MODELS; i++) ct_ode_free(m[i]);
  free(yT);
  return rc;
}

/* ---- 2. Gradients: adjoint, forward sensitivities, central differences ------------ */

typedef struct grad_run {
  ct_context *ctx;
  const ode_case *c;
  const options *o;
  size_t np;
  ct_ode *ode;
  double sim_s, adj_s, fsa_s, cd_s;
  double *g_adj, *g_fsa, *g_cd; /* np each; g_cd only for the first n_cd */
  size_t n_cd;
  int fsa_done;
} grad_run;

/* Repetitions for a method whose first run took `first` seconds: none more
 * past 5 s, so that the full run stays within minutes. */
static int more_reps(const options *o, double first) {
  if (o->smoke || first > 5.0) return 0;
  return o->reps - 1;
}

static int time_adjoint(grad_run *g) {
  ct_fun *phi = NULL;
  ct_asa *asa = NULL;
  int rc = ode_case_objective(g->ctx, g->c, &phi);
  if (rc == CT_OK) rc = ct_asa_new(g->ctx, g->ode, NULL, phi, &asa);
  ct_asa_options ao = ct_asa_default_options();
  ao.ode = sim_options(g->c);
  ao.max_steps_b = 1000000;
#ifdef BENCH_ODE_HAVE_LINSOL_B
  ao.linsol_b = CT_LINSOL_AUTO; /* the forward phase's: KLU for the networks */
#endif
  double times[32];
  int n = 0;
  do {
    ct_asa_result *res = NULL;
    double t0 = bench_now();
    rc = ct_asa_solve(g->ctx, asa, g->c->p, g->c->y0, 0.0, g->c->T, &ao, &res);
    times[n++] = bench_now() - t0;
    if (rc == CT_OK) memcpy(g->g_adj, res->dJdp, g->np * sizeof *g->g_adj);
    else fprintf(stderr, "bench_ode: %s adjoint: %s\n", g->c->name, res ? res->message : ct_errmsg(g->ctx));
    ct_asa_result_free(g->ctx, res);
  } while (rc == CT_OK && n <= more_reps(g->o, times[0]) && n < 32);
  if (rc == CT_OK) g->adj_s = bench_median(times, (size_t)n);
  ct_asa_free(asa);
  ct_fun_free(phi);
  return rc;
}

/* w^T dy(T)/dp_j from the sensitivities at the last output. */
static void fsa_gradient(const grad_run *g, const ct_fsa_result *res) {
  const double *s = res->s + (res->ode.n_out - 1) * g->np * g->c->n;
  for (size_t j = 0; j < g->np; j++) {
    double d = 0;
    for (size_t i = 0; i < g->c->n; i++) d += g->c->w[i] * s[j * g->c->n + i];
    g->g_fsa[j] = d;
  }
}

static int time_fsa(grad_run *g) {
  if (g->np > g->o->fsa_max) return CT_OK; /* reported as skipped */
  ct_fsa *fsa = NULL;
  int rc = ct_fsa_new(g->ctx, g->ode, NULL, 0, &fsa);
  ct_fsa_options fo = ct_fsa_default_options();
  fo.ode = sim_options(g->c);
  fo.corrector = CT_FSA_STAGGERED;
  double tout[2] = {0.0, g->c->T}, times[32];
  int n = 0;
  while (rc == CT_OK) {
    ct_fsa_result *res = NULL;
    double t0 = bench_now();
    rc = ct_fsa_solve(g->ctx, fsa, g->c->p, g->c->y0, tout, 2, &fo, &res);
    times[n++] = bench_now() - t0;
    if (rc == CT_OK) fsa_gradient(g, res);
    else fprintf(stderr, "bench_ode: %s forward sensitivities: %s\n", g->c->name,
                 res ? res->ode.message : ct_errmsg(g->ctx));
    ct_fsa_result_free(g->ctx, res);
    if (n > more_reps(g->o, times[0]) || n == 32) break;
  }
  if (rc == CT_OK) g->fsa_s = bench_median(times, (size_t)n), g->fsa_done = 1;
  ct_fsa_free(fsa);
  return rc;
}

/* Central differences on the first n_cd parameters, step 1e-3 |p_j|
 * (about rtol^(1/2): the solves' own error, ~rtol J, then costs ~1e-3 of the
 * derivative, the truncation ~1e-6). The time is scaled to all np. */
static int time_central_differences(grad_run *g) {
  size_t np = g->np, n = g->c->n;
  g->n_cd = np < g->o->cd_max ? np : g->o->cd_max;
  double *p = malloc(np * sizeof *p), *yT = malloc(n * sizeof *yT), secs, total = 0;
  int rc = p && yT ? CT_OK : CT_ERR_NOMEM;
  if (p) memcpy(p, g->c->p, np * sizeof *p);
  for (size_t j = 0; rc == CT_OK && j < g->n_cd; j++) {
    double h = 1e-3 * fabs(g->c->p[j]), J[2];
    for (int s = 0; rc == CT_OK && s < 2; s++) {
      p[j] = g->c->p[j] + (s ? -h : h);
      rc = simulate(g->ctx, g->ode, g->c, p, ode_case_linsol(g->c), yT, NULL, &secs);
      J[s] = objective(g->c, yT);
      total += secs;
    }
    p[j] = g->c->p[j];
    g->g_cd[j] = (J[0] - J[1]) / (2 * h);
  }
  if (rc == CT_OK) g->cd_s = total * (double)np / (double)g->n_cd;
  free(p);
  free(yT);
  return rc;
}

static int time_simulation(grad_run *g) {
  double *yT = malloc(g->c->n * sizeof *yT), times[32];
  int n = 0, rc = yT ? CT_OK : CT_ERR_NOMEM;
  while (rc == CT_OK) {
    rc = simulate(g->ctx, g->ode, g->c, g->c->p, ode_case_linsol(g->c), yT, NULL, &times[n++]);
    if (n > more_reps(g->o, times[0]) || n == 32) break;
  }
  if (rc == CT_OK) g->sim_s = bench_median(times, (size_t)n);
  free(yT);
  return rc;
}

/* The rows and checks of one gradient run. */
static void report_gradients(const grad_run *g, report *r) {
  char name[48];
  snprintf(name, sizeof name, "%s/np=%zu", g->c->name, g->np);
  add_row(r, name, "np", (double)g->np, "");
  add_row(r, name, "sim_time", g->sim_s, "s");
  add_row(r, name, "adjoint_time", g->adj_s, "s");
  add_row(r, name, "adjoint_over_sim", g->adj_s / g->sim_s, "x");
  add_row(r, name, "cd_time", g->cd_s, "s");
  add_row(r, name, "cd_over_sim", g->cd_s / g->sim_s, "x");
  add_row(r, name, "cd_params_timed", (double)g->n_cd, "");
  double scale = 0, cd_err = 0;
  for (size_t j = 0; j < g->np; j++) scale = fmax(scale, fabs(g->g_adj[j]));
  for (size_t j = 0; j < g->n_cd; j++) cd_err = fmax(cd_err, fabs(g->g_cd[j] - g->g_adj[j]));
  cd_err /= fmax(scale, 1e-300);
  add_row(r, name, "grad_err_cd_vs_adjoint", cd_err, "rel");
  check(r, cd_err <= CD_AGREE, name, "gradient: central differences vs adjoint", cd_err, CD_AGREE);
  if (!g->fsa_done) {
    add_row(r, name, "fsa_skipped", 1, "");
    return;
  }
  double fsa_err = bench_rel_diff(g->g_adj, g->g_fsa, g->np);
  add_row(r, name, "fsa_time", g->fsa_s, "s");
  add_row(r, name, "fsa_over_sim", g->fsa_s / g->sim_s, "x");
  add_row(r, name, "grad_err_adjoint_vs_fsa", fsa_err, "rel");
  check(r, fsa_err <= GRAD_AGREE, name, "gradient: adjoint vs forward sensitivities", fsa_err,
        GRAD_AGREE);
}

/* Gradients with respect to the first np parameters of the case. */
static int bench_gradients(ct_context *ctx, const ode_case *c, size_t np, const options *o,
                           report *r) {
  grad_run g = {ctx, c, o, np, NULL, 0, 0, 0, 0, NULL, NULL, NULL, 0, 0};
  ct_fun *rhs = NULL;
  g.g_adj = calloc(np, sizeof *g.g_adj);
  g.g_fsa = calloc(np, sizeof *g.g_fsa);
  g.g_cd = calloc(np, sizeof *g.g_cd);
  int rc = g.g_adj && g.g_fsa && g.g_cd ? ode_case_trace(ctx, c, np, &rhs) : CT_ERR_NOMEM;
  if (rc == CT_OK) rc = ct_ode_new(ctx, rhs, NULL, NULL, &g.ode);
  if (rc == CT_OK) rc = ct_ode_jit(ctx, g.ode, NULL);
  if (rc == CT_OK) rc = time_simulation(&g);
  if (rc == CT_OK) rc = time_adjoint(&g);
  if (rc == CT_OK) rc = time_fsa(&g);
  if (rc == CT_OK) rc = time_central_differences(&g);
  if (rc == CT_OK) report_gradients(&g, r);
  else fprintf(stderr, "bench_ode: %s np=%zu: %s\n", c->name, np, ct_errmsg(ctx));
  ct_ode_free(g.ode);
  ct_fun_free(rhs);
  free(g.g_adj);
  free(g.g_fsa);
  free(g.g_cd);
  return rc;
}

/* ---- 3. SciPy ------------------------------------------------------------------------ */

/* Path with its ".json" replaced by `suffix`. */
static void sibling(const char *path, const char *suffix, char *buf, size_t size) {
  size_t len = strlen(path);
  if (len > 5 && !strcmp(path + len - 5, ".json")) len -= 5;
  snprintf(buf, size, "%.*s%s", (int)len, path, suffix);
}

static int write_problems(ode_case *cases, size_t n, const char *path) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  fprintf(f, "[\n");
  for (size_t i = 0; i < n; i++) {
    ode_case_write_json(&cases[i], f);
    fprintf(f, "%s\n", i + 1 < n ? "," : "");
  }
  fprintf(f, "]\n");
  return fclose(f);
}

/* The case named `name`, or NULL. */
static ode_case *find_case(ode_case *cases, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(cases[i].name, name)) return &cases[i];
  return NULL;
}

/* Reads the peer's rows, one JSON object per line in a fixed key order.
 * y(T) rows (scipy_yT[i]) are not kept: each case gets the difference
 * scipy_yT_diff_vs_ad to its AD simulation's y(T). */
static int read_peer_rows(const char *path, ode_case *cases, size_t n_cases, report *r) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char line[512];
  int n = 0;
  double *scale = calloc(n_cases, sizeof *scale), *diff = calloc(n_cases, sizeof *diff);
  while (scale && diff && fgets(line, sizeof line, f)) {
    row w = {{0}, {0}, {0}, 0};
    size_t i;
    if (sscanf(line, " {\"case\": \"%47[^\"]\", \"metric\": \"%39[^\"]\", \"value\": %lf, "
                     "\"unit\": \"%7[^\"]\"}",
               w.name, w.metric, &w.value, w.unit) != 4)
      continue;
    n++;
    ode_case *c = find_case(cases, n_cases, w.name);
    if (c && sscanf(w.metric, "scipy_yT[%zu]", &i) == 1 && i < c->n) {
      size_t k = (size_t)(c - cases);
      diff[k] = fmax(diff[k], fabs(w.value - c->yT[i]));
      scale[k] = fmax(scale[k], fabs(c->yT[i]));
    } else {
      add_row(r, w.name, w.metric, w.value, w.unit);
    }
  }
  for (size_t k = 0; scale && diff && k < n_cases; k++)
    add_row(r, cases[k].name, "scipy_yT_diff_vs_ad", diff[k] / fmax(scale[k], 1e-300), "rel");
  free(scale);
  free(diff);
  fclose(f);
  return n;
}

/* A Python that imports SciPy: $BENCH_PYTHON, else python3 from PATH, else
 * Debian's /usr/bin/python3 (where python3-scipy installs, when PATH has
 * another Python first); NULL if none. */
static const char *pick_python(void) {
  static char cmd[600];
  const char *env = getenv("BENCH_PYTHON");
  const char *candidates[] = {env, "python3", "/usr/bin/python3"};
  for (size_t i = 0; i < 3; i++) {
    if (!candidates[i] || strlen(candidates[i]) > 500 || strchr(candidates[i], '\'')) continue;
    snprintf(cmd, sizeof cmd, "'%s' -c 'import numpy, scipy' >/dev/null 2>&1", candidates[i]);
    if (system(cmd) == 0) return candidates[i];
  }
  return NULL;
}

/* Runs the SciPy peer on every case; a missing SciPy is said and skipped. */
static void bench_scipy(ode_case *cases, size_t n, const options *o, report *r) {
  if (o->no_scipy || o->smoke) return;
  const char *python = pick_python();
  if (!python) {
    fprintf(stderr, "bench_ode: SciPy not found (Debian python3-scipy; scripts/install-deps "
                    "--bench installs it): no SciPy column\n");
    add_row(r, "scipy", "available", 0, "");
    return;
  }
  char problems[1024], rows[1024], cmd[3200];
  sibling(o->out, "-problems.json", problems, sizeof problems);
  sibling(o->out, "-scipy.json", rows, sizeof rows);
  if (write_problems(cases, n, problems) != 0) {
    fprintf(stderr, "bench_ode: cannot write %s\n", problems);
    return;
  }
  snprintf(cmd, sizeof cmd, "%s '%s' '%s' '%s' --reps %d", python, BENCH_ODE_SCIPY_PEER, problems,
           rows, o->reps);
  fprintf(stderr, "bench_ode: %s\n", cmd);
  if (system(cmd) != 0 || read_peer_rows(rows, cases, n, r) <= 0) {
    fprintf(stderr, "bench_ode: the SciPy peer failed: no SciPy column\n");
    add_row(r, "scipy", "available", 0, "");
    return;
  }
  add_row(r, "scipy", "available", 1, "");
  for (size_t i = 0; i < n; i++) {
    const char *name = cases[i].name;
    double sp = get_row(r, name, "scipy_sim_time"), ad = get_row(r, name, "sim_time_ad");
    double d = get_row(r, name, "scipy_yT_diff_vs_ad");
    add_row(r, name, "ratio_scipy_over_ad", sp / ad, "x");
    check(r, !(d > 1e-3), name, "y(T) SciPy vs AD", d, 1e-3);
  }
}

/* ---- Output ---------------------------------------------------------------------------- */

static int write_json(const report *r, const char *path) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  fprintf(f, "[\n");
  for (size_t i = 0; i < r->n; i++)
    fprintf(f, "  {\"case\": \"%s\", \"metric\": \"%s\", \"value\": %.6g, \"unit\": \"%s\"}%s\n",
            r->rows[i].name, r->rows[i].metric, r->rows[i].value, r->rows[i].unit,
            i + 1 < r->n ? "," : "");
  fprintf(f, "]\n");
  return fclose(f);
}

/* A cell: the value with its unit, or "-" for NAN. */
static void cell(char *buf, size_t size, double v, const char *fmt) {
  if (isnan(v)) snprintf(buf, size, "-");
  else snprintf(buf, size, fmt, v);
}

static void md_simulation(FILE *f, const report *r, ode_case *cases, size_t n) {
  fprintf(f, "### Simulation (CVODES BDF): AD Jacobian vs hand-written vs difference quotients\n\n"
             "AD: the model compiled by ct_ode_jit (JIT: its compile or cache-load time, once); "
             "AD (interpreter): the same model not compiled.\n\n"
             "| case | n | AD | AD (interpreter) | JIT | hand | DQ (dense) | AD/hand | DQ/AD | steps | y(T) diff hand, DQ | SciPy BDF | SciPy/AD |\n"
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (size_t i = 0; i < n; i++) {
    const char *c = cases[i].name;
    char v[11][32];
    cell(v[0], 32, get_row(r, c, "sim_time_ad") * 1e3, "%.2f ms");
    cell(v[1], 32, get_row(r, c, "sim_time_hand") * 1e3, "%.2f ms");
    cell(v[2], 32, get_row(r, c, "sim_time_dq") * 1e3, "%.2f ms");
    cell(v[3], 32, get_row(r, c, "ratio_ad_over_hand"), "%.2fx");
    cell(v[4], 32, get_row(r, c, "ratio_dq_over_ad"), "%.2fx");
    cell(v[5], 32, get_row(r, c, "yT_diff_hand_vs_ad"), "%.1e");
    cell(v[6], 32, get_row(r, c, "yT_diff_dq_vs_ad"), "%.1e");
    cell(v[7], 32, get_row(r, c, "scipy_sim_time") * 1e3, "%.1f ms");
    cell(v[8], 32, get_row(r, c, "ratio_scipy_over_ad"), "%.1fx");
    cell(v[9], 32, get_row(r, c, "sim_time_ad_interp") * 1e3, "%.2f ms");
    cell(v[10], 32, get_row(r, c, "jit_time"), "%.2f s");
    fprintf(f, "| %s | %zu | %s | %s | %s | %s | %s | %s | %s | %.0f | %s, %s | %s | %s |\n", c,
            cases[i].n, v[0], v[9], v[10], v[1], v[2], v[3], v[4], get_row(r, c, "steps_ad"),
            v[5], v[6], v[7], v[8]);
  }
}

static void md_gradients(FILE *f, const report *r, ode_case *cases, size_t n) {
  fprintf(f, "\n### Gradient cost of J = w^T y(T): time / simulation time\n\n"
             "| case | np | simulation | adjoint | forward sens. | central diff. | cheapest | adjoint vs FSA | CD vs adjoint |\n"
             "|---|---:|---:|---:|---:|---:|---|---:|---:|\n");
  for (size_t i = 0; i < n; i++)
    for (size_t k = 0; k < cases[i].n_grad_np; k++) {
      char c[48], v[6][32];
      snprintf(c, sizeof c, "%s/np=%zu", cases[i].name, cases[i].grad_np[k]);
      double adj = get_row(r, c, "adjoint_over_sim"), fsa = get_row(r, c, "fsa_over_sim");
      double cd = get_row(r, c, "cd_over_sim");
      cell(v[0], 32, get_row(r, c, "sim_time") * 1e3, "%.2f ms");
      cell(v[1], 32, adj, "%.2fx");
      cell(v[2], 32, fsa, "%.2fx");
      cell(v[3], 32, cd, "%.1fx");
      cell(v[4], 32, get_row(r, c, "grad_err_adjoint_vs_fsa"), "%.1e");
      cell(v[5], 32, get_row(r, c, "grad_err_cd_vs_adjoint"), "%.1e");
      const char *best = !(fsa < adj) ? "adjoint" : "forward";
      if (cd < adj && !(fsa < cd)) best = "central diff.";
      fprintf(f, "| %s | %zu | %s | %s | %s | %s | %s | %s | %s |\n", cases[i].name,
              cases[i].grad_np[k], v[0], v[1], v[2], v[3], best, v[4], v[5]);
    }
}

static int write_md(const report *r, ode_case *cases, size_t n, const char *path) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  md_simulation(f, r, cases, n);
  md_gradients(f, r, cases, n);
  return fclose(f);
}

/* ---- Main ------------------------------------------------------------------------------ */

static void usage(FILE *to) {
  fprintf(to, "usage: bench_ode [--smoke] [--out FILE.json] [--md FILE.md] [--reps N]\n"
              "                 [--case NAME]... [--no-scipy] [--fsa-max NP] [--cd-max NP]\n"
              "                 [--grad-max NP] [--grad-np NP]\n"
              "cases: robertson lotka_volterra van_der_pol network<N>\n");
}

/* The parameter counts of the gradient runs of a case. */
static void default_grad_np(const char *name, int smoke, size_t grad_max,
                            size_t out[CASE_MAX_GRAD_NP + 1]) {
  memset(out, 0, (CASE_MAX_GRAD_NP + 1) * sizeof *out);
  if (strncmp(name, "network", 7) != 0) return; /* all parameters */
  size_t species = strtoul(name + 7, NULL, 10), k = 0, total = 3 * species;
  static const size_t full[] = {10, 100, 1000}, tiny[] = {3, 30};
  const size_t *list = smoke ? tiny : full;
  size_t len = smoke ? 2 : 3;
  for (size_t i = 0; i < len; i++)
    if (list[i] <= total && list[i] <= grad_max) out[k++] = list[i];
}

static int parse_args(int argc, char **argv, options *o) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int more = i + 1 < argc;
    if (!strcmp(a, "--smoke")) o->smoke = 1;
    else if (!strcmp(a, "--no-scipy")) o->no_scipy = 1;
    else if (!strcmp(a, "--out") && more) o->out = argv[++i];
    else if (!strcmp(a, "--md") && more) o->md = argv[++i];
    else if (!strcmp(a, "--reps") && more) o->reps = atoi(argv[++i]);
    else if (!strcmp(a, "--fsa-max") && more) o->fsa_max = strtoul(argv[++i], NULL, 10);
    else if (!strcmp(a, "--grad-np") && more) o->grad_np = strtoul(argv[++i], NULL, 10);
    else if (!strcmp(a, "--grad-max") && more) o->grad_max = strtoul(argv[++i], NULL, 10);
    else if (!strcmp(a, "--cd-max") && more) o->cd_max = strtoul(argv[++i], NULL, 10);
    else if (!strcmp(a, "--case") && more && o->n_cases < MAX_CASES) o->cases[o->n_cases++] = argv[++i];
    else {
      usage(stderr);
      return -1;
    }
  }
  if (o->reps < 1 || o->reps > 31 || o->cd_max < 1) {
    usage(stderr);
    return -1;
  }
  if (o->n_cases == 0) {
    static const char *full[] = {"robertson", "van_der_pol", "lotka_volterra", "network100",
                                 "network1000"};
    static const char *tiny[] = {"robertson", "van_der_pol", "lotka_volterra", "network12"};
    const char **list = o->smoke ? tiny : full;
    o->n_cases = o->smoke ? 4 : 5;
    for (size_t i = 0; i < o->n_cases; i++) o->cases[i] = list[i];
  }
  return 0;
}

/* Runs every part on one case. */
static void run_case(ct_context *ctx, ode_case *c, const options *o, report *r) {
  fprintf(stderr, "bench_ode: %s: %s\n", c->name, c->title);
  double t0 = bench_now();
  if (bench_simulation(ctx, c, o, r) != CT_OK) r->failures++;
  for (size_t k = 0; k < c->n_grad_np; k++)
    if (bench_gradients(ctx, c, c->grad_np[k], o, r) != CT_OK) r->failures++;
  fprintf(stderr, "bench_ode: %s done in %.1f s\n", c->name, bench_now() - t0);
}

int main(int argc, char **argv) {
  options o = {0, 0, 3, 10, 100, 1000, 0, "build/bench/ode.json", NULL, {NULL}, 0};
  if (parse_args(argc, argv, &o) != 0) return 2;
  if (o.smoke) o.cd_max = o.cd_max < 3 ? o.cd_max : 3;
  char md[1024];
  if (!o.md) sibling(o.out, ".md", md, sizeof md), o.md = md;
  ct_context *ctx = ct_context_new(NULL);
  report *r = calloc(1, sizeof *r);
  ode_case *cases = calloc(o.n_cases, sizeof *cases);
  if (!ctx || !r || !cases) return 1;
  size_t n = 0;
  for (size_t i = 0; i < o.n_cases; i++) {
    size_t grad_np[CASE_MAX_GRAD_NP + 1];
    default_grad_np(o.cases[i], o.smoke, o.grad_max, grad_np);
    if (o.grad_np) grad_np[0] = o.grad_np, grad_np[1] = 0;
    if (ode_case_init(&cases[n], o.cases[i], grad_np) != 0) {
      fprintf(stderr, "bench_ode: unknown case or no memory: %s\n", o.cases[i]);
      r->failures++;
      continue;
    }
    run_case(ctx, &cases[n++], &o, r);
  }
  bench_scipy(cases, n, &o, r);
  if (write_json(r, o.out) != 0 || write_md(r, cases, n, o.md) != 0) {
    fprintf(stderr, "bench_ode: cannot write %s or %s\n", o.out, o.md);
    r->failures++;
  }
  FILE *md_in = fopen(o.md, "r");
  for (int ch; md_in && (ch = fgetc(md_in)) != EOF;) putchar(ch);
  if (md_in) fclose(md_in);
  printf("\nbench_ode: %d failed check(s); rows in %s\n", r->failures, o.out);
  int status = r->failures ? 1 : 0;
  for (size_t i = 0; i < n; i++) ode_case_free(&cases[i]);
  free(cases);
  free(r);
  ct_context_free(ctx);
  return status;
}
