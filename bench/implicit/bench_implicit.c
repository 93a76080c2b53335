/* bench_implicit: gradients through a nonlinear solve, implicit adjoint
 * against the unrolled Newton iterations and forward-mode columns.
 *
 *   bench_implicit [--smoke] [--out build/bench/implicit.json] [--md PATH]
 *                  [--reps N] [--grid M]... [--method NAME]... [--columns S]
 *                  [--warmup-max M]
 *                  [--mem-limit-gb G] [--no-fork] [--perturb-reference]
 *
 * Problem (rd.h): a 2-D reaction-diffusion equation F(x, p) = 0 on an
 * m x m grid, N = m^2 unknowns and P = N parameters, traced as one AD
 * function; loss g(x) = 0.5 |x - target|^2; grids 100, 316 and 1000
 * (N = 10^4, ~10^5, 10^6). Methods (each grid, each method in a child
 * process with its own peak RSS):
 *   kinsol_<ls>  ct_nlsolve_solve (KINSOL, linear solver ls: klu, umfpack,
 *                gmres (matrix-free, m <= 316 only), petsc (KSP GMRES with
 *                GAMG)) from x = 1, then ct_nlsolve_adjoint, and the
 *                one-call ct_nlsolve_gradient; with a direct solver also
 *                ct_nlsolve_tangent columns;
 *   snes_petsc   the same through PETSc SNES, KSP GMRES with GAMG;
 *   newton_klu   plain Newton with ct_linsolve (KLU), then the implicit
 *                adjoint by hand (F_x factored at the root, one transposed
 *                solve, one VJP): the reference gradient;
 *   unrolled_klu the same Newton keeping every iterate, step and
 *                factorization, then the reverse pass through the
 *                iterations (ct_linsolve_adjoint, VJPs of F and of F_x's
 *                values);
 *   forward_klu  forward-mode columns dx/dp_j (one JVP and one solve with
 *                the factorization at the root reused), timed on --columns
 *                sampled j and extrapolated to all N.
 * Gradients are compared with newton_klu's; a central difference of the
 * loss along one direction checks newton_klu's. Times are medians of
 * --reps runs (a run over 5 s is not repeated) after one untimed warm-up
 * solve (newton_klu and the ct_nlsolve methods, grids up to --warmup-max,
 * 316 by default: at m = 1000 a solve takes minutes; not in --smoke).
 *
 * --smoke: the 100 x 100 grid once; fails (exit 1) when a gradient
 * disagrees, never on a timing. --perturb-reference shifts one component
 * of newton_klu's gradient by 1e-4 max |gradient|: the checks must fail. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cotangent/core.h"
#include "newton.h"
#include "ct_asan_mpi.h"
#include "report.h"
#include "cotangent/implicit.h"
#include "cotangent/nlsolve.h"

enum { MAX_GRIDS = 8, MAX_METHODS = 16, MAX_REPS = 31 };

/* Newton stops at max |F| <= FTOL (F_x has O(1) entries; F's rounding
 * is ~1e-15). Gradient agreement limits, relative to max |gradient|:
 * direct solvers and the unrolled iterations, iterative solvers, forward
 * columns, and the central difference of the loss (relative to the
 * directional derivative). */
static const double FTOL = 1e-12, AGREE_DIRECT = 1e-6, AGREE_ITERATIVE = 1e-4,
                    AGREE_COLUMNS = 1e-8, AGREE_CD = 1e-5;

typedef enum method_kind { M_NEWTON, M_UNROLLED, M_FORWARD, M_NLSOLVE } method_kind;

typedef struct method {
  const char *name;
  method_kind kind;
  const char *solver;        /* nlsolve's solver: "kinsol" or "snes" */
  const char *linsolve;      /* the linear solver */
  const char *petsc_options; /* or NULL */
  int iterative;             /* compared with AGREE_ITERATIVE */
  int optional;              /* a failure is reported, not counted */
  size_t max_m;              /* larger grids are skipped (0: none) */
} method;

/* Unpreconditioned GMRES needs O(m) iterations per Newton step: at m =
 * 1000 that is hours, so it stops at m = 316. */
static const method METHODS[] = {
    {"kinsol_klu", M_NLSOLVE, "kinsol", "klu", NULL, 0, 0, 0},
    {"kinsol_umfpack", M_NLSOLVE, "kinsol", "umfpack", NULL, 0, 1, 0},
    {"kinsol_gmres", M_NLSOLVE, "kinsol", "gmres", NULL, 1, 1, 316},
    {"kinsol_petsc", M_NLSOLVE, "kinsol", "petsc", "-ksp_type gmres -pc_type gamg -ksp_rtol 1e-10", 1, 1, 0},
    {"snes_petsc", M_NLSOLVE, "snes", "petsc", "-ksp_type gmres -pc_type gamg -ksp_rtol 1e-10", 1, 1, 0},
    {"newton_klu", M_NEWTON, NULL, "klu", NULL, 0, 0, 0},
    {"unrolled_klu", M_UNROLLED, NULL, "klu", NULL, 0, 0, 0},
    {"forward_klu", M_FORWARD, NULL, "klu", NULL, 0, 0, 0},
};
enum { N_METHODS = sizeof METHODS / sizeof METHODS[0] };

typedef struct options {
  int smoke, fork, reps;
  int perturb; /* corrupt newton_klu's gradient a little: the checks must fail */
  size_t columns;
  size_t warmup_max; /* warm-up solves on grids up to this m */
  double mem_limit_gb;
  const char *out, *md;
  size_t grids[MAX_GRIDS], n_grids;
  const method *methods[MAX_METHODS];
  size_t n_methods;
  char grad_dir[64]; /* where the children leave their gradients */
} options;

/* What one child process runs. */
typedef struct case_arg {
  const options *o;
  size_t m;
  const method *me;
} case_arg;

/* ---- Small helpers ----------------------------------------------------------- */

/* The file a case's gradient goes to. */
static void grad_path(const options *o, size_t m, const char *method, char *buf, size_t size) {
  snprintf(buf, size, "%s/rd%zu_%s.grad", o->grad_dir, m, method);
}

static int write_grad(const case_arg *a, const double *g, size_t n) {
  char path[160];
  grad_path(a->o, a->m, a->me->name, path, sizeof path);
  FILE *f = fopen(path, "wb");
  size_t w = f ? fwrite(g, sizeof *g, n, f) : 0;
  return (f && fclose(f) == 0 && w == n) ? 0 : -1;
}

/* The gradient a case left (n numbers, malloc'd), or NULL. */
static double *read_grad(const options *o, size_t m, const char *method, size_t n) {
  char path[160];
  grad_path(o, m, method, path, sizeof path);
  FILE *f = fopen(path, "rb");
  double *g = f ? malloc(n * sizeof *g) : NULL;
  size_t r = g ? fread(g, sizeof *g, n, f) : 0;
  if (f) fclose(f);
  if (r != n) free(g), g = NULL;
  return g;
}

/* Says which call failed, with the context's message. */
static int fail(ct_context *ctx, const char *cs, const char *what, int rc) {
  fprintf(stderr, "bench_implicit: %s: %s failed (%d): %s\n", cs, what, rc, ct_errmsg(ctx));
  return rc ? rc : -1;
}

/* Whether to run the next repetition after `done` runs that took `first`
 * seconds the first time. */
static int more_reps(const options *o, int done, double first) {
  return done < o->reps && !(first > 5.0);
}

static double max_abs(const double *v, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s = fmax(s, fabs(v[i]));
  return s;
}

/* Whether the case starts with an untimed warm-up solve. */
static int warm_up(const case_arg *a) {
  return !a->o->smoke && a->m <= a->o->warmup_max;
}

/* ---- newton_klu: Newton + implicit adjoint by hand, and the central
 * difference check --------------------------------------------------------------- */

/* The loss at the root for parameters p (Newton from x = 1). */
static int loss_at(newton_ctx *nc, ct_linsolve *ls, const double *p, double *x, double *loss) {
  int iters;
  rd_guess(nc->pb, x);
  int rc = newton_solve(nc, p, x, ls, NULL, &iters);
  *loss = rd_loss(nc->pb, x, NULL);
  return rc;
}

/* Central difference of the loss along a fixed direction v against
 * grad . v; the relative error is emitted (and checked by the parent). */
static int check_cd(newton_ctx *nc, ct_linsolve *ls, const double *grad, bench_sink *k) {
  size_t n = nc->pb->n;
  double *v = malloc(n * sizeof *v), *pp = malloc(n * sizeof *pp), *x = malloc(n * sizeof *x);
  int rc = v && pp && x ? CT_OK : CT_ERR_NOMEM;
  double eps = 1e-2, lp = 0, lm = 0, ad = 0;
  for (size_t i = 0; rc == CT_OK && i < n; i++) v[i] = sin(0.37 * (double)i + 1.0), ad += grad[i] * v[i];
  for (size_t i = 0; rc == CT_OK && i < n; i++) pp[i] = nc->pb->p[i] + eps * v[i];
  if (rc == CT_OK) rc = loss_at(nc, ls, pp, x, &lp);
  for (size_t i = 0; rc == CT_OK && i < n; i++) pp[i] = nc->pb->p[i] - eps * v[i];
  if (rc == CT_OK) rc = loss_at(nc, ls, pp, x, &lm);
  if (rc == CT_OK) {
    double cd = (lp - lm) / (2 * eps);
    bench_emit(k, "cd_rel_err", fabs(cd - ad) / fmax(fabs(ad), 1e-300), "");
  }
  free(v), free(pp), free(x);
  return rc;
}

/* What the newton_klu, unrolled_klu and forward_klu cases share. */
typedef struct case_bufs {
  newton_ctx nc;
  ct_linsolve *ls; /* NULL for unrolled_klu (one solver per iteration) */
  double *x, *xb, *g;
} case_bufs;

/* The Newton functions, a solver `linsolve` (NULL: none) and three
 * vectors of n; bufs_free releases whatever was made. */
static int bufs_init(ct_context *ctx, case_bufs *b, const rd_problem *pb, const char *linsolve) {
  size_t n = pb->n;
  b->x = malloc(n * sizeof *b->x), b->xb = malloc(n * sizeof *b->xb);
  b->g = malloc(n * sizeof *b->g);
  if (!b->x || !b->xb || !b->g) return CT_ERR_NOMEM;
  int rc = newton_ctx_init(ctx, &b->nc, pb, FTOL);
  if (rc == CT_OK && linsolve) rc = ct_linsolve_create(ctx, linsolve, b->nc.pattern, &b->ls);
  return rc;
}

static void bufs_free(ct_context *ctx, case_bufs *b) {
  ct_linsolve_free(ctx, b->ls);
  newton_ctx_free(&b->nc);
  free(b->x), free(b->xb), free(b->g);
}

/* Runs body on fresh buffers and frees them; a set-up failure is
 * reported here, the body reports its own. */
static int with_bufs(ct_context *ctx, const case_arg *a, const rd_problem *pb, bench_sink *k,
                     int use_ls,
                     int (*body)(ct_context *, const case_arg *, const rd_problem *, case_bufs *,
                                 bench_sink *)) {
  case_bufs b;
  memset(&b, 0, sizeof b);
  int rc = bufs_init(ctx, &b, pb, use_ls ? a->me->linsolve : NULL);
  if (rc != CT_OK) fail(ctx, k->cs, "set-up", rc);
  else rc = body(ctx, a, pb, &b, k);
  bufs_free(ctx, &b);
  return rc;
}

static int newton_body(ct_context *ctx, const case_arg *a, const rd_problem *pb, case_bufs *b,
                       bench_sink *k) {
  newton_ctx *nc = &b->nc;
  size_t n = pb->n;
  int rc = newton_need_vjp_F(nc);
  if (rc != CT_OK) return fail(ctx, k->cs, "VJP of F", rc);
  bench_emit(k, "jac_build_time", nc->jac_build_s, "s");
  bench_emit(k, "vjp_build_time", nc->vjp_build_s, "s");
  bench_emit(k, "jac_nnz", (double)nc->pattern->nnz, "count");
  bench_emit(k, "rss_setup", bench_rss_kib(), "KiB");
  double ts[MAX_REPS], tg[MAX_REPS];
  int reps = 0, iters = 0;
  if (warm_up(a)) { /* warm-up: KLU's symbolic analysis, first-touch memory */
    double t0 = bench_now();
    rd_guess(pb, b->x);
    rc = newton_solve(nc, pb->p, b->x, b->ls, NULL, &iters);
    bench_emit(k, "first_solve_time", bench_now() - t0, "s");
  }
  if (rc == CT_OK) do {
    rd_guess(pb, b->x);
    double t0 = bench_now();
    rc = newton_solve(nc, pb->p, b->x, b->ls, NULL, &iters);
    double t1 = bench_now();
    rd_loss(pb, b->x, b->xb);
    if (rc == CT_OK) rc = newton_implicit_adjoint(nc, pb->p, b->x, b->ls, b->xb, b->g);
    ts[reps] = t1 - t0, tg[reps] = bench_now() - t1;
  } while (rc == CT_OK && more_reps(a->o, ++reps, ts[0] + tg[0]));
  if (rc != CT_OK) return fail(ctx, k->cs, "Newton or adjoint", rc);
  double solve = bench_median(ts, (size_t)reps), grad = bench_median(tg, (size_t)reps);
  bench_emit(k, "solve_time", solve, "s");
  bench_emit(k, "adjoint_time", grad, "s");
  bench_emit(k, "gradient_time", solve + grad, "s");
  bench_emit(k, "iters", iters, "count");
  bench_emit(k, "loss", rd_loss(pb, b->x, NULL), "");
  if (a->o->perturb) b->g[n / 2] += 1e-4 * max_abs(b->g, n);
  if (write_grad(a, b->g, n) != 0) return fail(ctx, k->cs, "writing the gradient", CT_ERR_IO);
  rc = a->o->smoke ? check_cd(nc, b->ls, b->g, k) : CT_OK;
  return rc != CT_OK ? fail(ctx, k->cs, "central difference", rc) : 0;
}

static int run_newton(ct_context *ctx, const case_arg *a, const rd_problem *pb, bench_sink *k) {
  return with_bufs(ctx, a, pb, k, 1, newton_body);
}

/* ---- unrolled_klu: reverse pass through the taped Newton iterations ------ */

/* One taped Newton solve and its reverse pass: times into *ts, *tg, the
 * RSS the tape added into *tape_kib. */
static int unrolled_once(ct_context *ctx, const rd_problem *pb, case_bufs *b, int *iters,
                         double *ts, double *tg, double *tape_kib) {
  newton_tape tape = {0};
  rd_guess(pb, b->x);
  double r0 = bench_rss_kib(), t0 = bench_now();
  int rc = newton_solve(&b->nc, pb->p, b->x, NULL, &tape, iters);
  double t1 = bench_now();
  *tape_kib = bench_rss_kib() - r0;
  rd_loss(pb, b->x, b->xb);
  if (rc == CT_OK) rc = newton_unrolled_adjoint(&b->nc, pb->p, &tape, b->xb, b->g);
  *ts = t1 - t0, *tg = bench_now() - t1;
  newton_tape_free(ctx, &tape);
  return rc;
}

static int unrolled_body(ct_context *ctx, const case_arg *a, const rd_problem *pb, case_bufs *b,
                         bench_sink *k) {
  newton_ctx *nc = &b->nc;
  int rc = newton_need_vjp_F(nc);
  if (rc == CT_OK) rc = newton_need_vjp_J(nc);
  if (rc != CT_OK) return fail(ctx, k->cs, "VJPs of F and J", rc);
  bench_emit(k, "jac_build_time", nc->jac_build_s, "s");
  bench_emit(k, "vjp_build_time", nc->vjp_build_s + nc->vjp_J_build_s, "s");
  bench_emit(k, "vjp_J_nodes", (double)ct_fun_n_nodes(nc->vjp_J.f), "count");
  bench_emit(k, "rss_setup", bench_rss_kib(), "KiB");
  double ts[MAX_REPS], tg[MAX_REPS], tape_kib[MAX_REPS];
  int reps = 0, iters = 0;
  do rc = unrolled_once(ctx, pb, b, &iters, &ts[reps], &tg[reps], &tape_kib[reps]);
  while (rc == CT_OK && more_reps(a->o, ++reps, ts[0] + tg[0]));
  if (rc != CT_OK) return fail(ctx, k->cs, "taped Newton or its reverse pass", rc);
  double solve = bench_median(ts, (size_t)reps), grad = bench_median(tg, (size_t)reps);
  bench_emit(k, "solve_time", solve, "s");
  bench_emit(k, "adjoint_time", grad, "s");
  bench_emit(k, "gradient_time", solve + grad, "s");
  bench_emit(k, "iters", iters, "count");
  /* the first run's growth: later runs reuse the memory freed before */
  bench_emit(k, "tape_rss", tape_kib[0], "KiB");
  if (write_grad(a, b->g, pb->n) != 0) return fail(ctx, k->cs, "writing the gradient", CT_ERR_IO);
  return 0;
}

static int run_unrolled(ct_context *ctx, const case_arg *a, const rd_problem *pb, bench_sink *k) {
  return with_bufs(ctx, a, pb, k, 0, unrolled_body);
}

/* ---- forward_klu: forward-mode columns, sampled and extrapolated -------- */

/* The j of sample s of S, spread over the grid. */
static size_t sample_column(size_t s, size_t S, size_t n) {
  return (s * n) / S + (s * 7919) % (n / S > 0 ? n / S : 1);
}

/* S sampled columns with ls holding F_x at the root: times into tc, the
 * worst disagreement with the adjoint gradient g into *worst. */
static int forward_columns(const rd_problem *pb, case_bufs *b, size_t S, double *dx, double *tc,
                           double *worst) {
  size_t n = pb->n;
  double gmax = max_abs(b->g, n);
  *worst = 0;
  for (size_t s = 0; s < S; s++) {
    size_t j = sample_column(s, S, n);
    double dl, t1 = bench_now();
    int rc = newton_forward_column(&b->nc, pb->p, b->x, b->ls, j, b->xb, dx, &dl);
    tc[s] = bench_now() - t1;
    if (rc != CT_OK) return rc;
    *worst = fmax(*worst, fabs(dl - b->g[j]) / fmax(gmax, 1e-300));
  }
  return CT_OK;
}

static int forward_body(ct_context *ctx, const case_arg *a, const rd_problem *pb, case_bufs *b,
                        bench_sink *k) {
  size_t n = pb->n, S = a->o->columns < n ? a->o->columns : n;
  int iters, rc = newton_need_jvp_F_p(&b->nc);
  if (rc != CT_OK) return fail(ctx, k->cs, "JVP of F", rc);
  bench_emit(k, "jac_build_time", b->nc.jac_build_s, "s");
  bench_emit(k, "jvp_build_time", b->nc.jvp_build_s, "s");
  bench_emit(k, "rss_setup", bench_rss_kib(), "KiB");
  rd_guess(pb, b->x);
  double t0 = bench_now();
  rc = newton_solve(&b->nc, pb->p, b->x, b->ls, NULL, &iters);
  double solve = bench_now() - t0, worst = 0;
  rd_loss(pb, b->x, b->xb);
  /* the reference gradient; it leaves F_x(x) factored in ls */
  if (rc == CT_OK) rc = newton_implicit_adjoint(&b->nc, pb->p, b->x, b->ls, b->xb, b->g);
  double *dx = malloc(n * sizeof *dx), *tc = malloc((S ? S : 1) * sizeof *tc);
  if (rc == CT_OK) rc = dx && tc ? forward_columns(pb, b, S, dx, tc, &worst) : CT_ERR_NOMEM;
  double col = rc == CT_OK ? bench_median(tc, S) : NAN;
  free(dx), free(tc);
  if (rc != CT_OK) return fail(ctx, k->cs, "solve or forward columns", rc);
  bench_emit(k, "solve_time", solve, "s");
  bench_emit(k, "column_time", col, "s");
  bench_emit(k, "columns_timed", (double)S, "count");
  bench_emit(k, "adjoint_time", col * (double)n, "s"); /* extrapolated */
  bench_emit(k, "gradient_time", solve + col * (double)n, "s");
  bench_emit(k, "iters", iters, "count");
  bench_emit(k, "columns_rel_err", worst, "");
  return 0;
}

static int run_forward(ct_context *ctx, const case_arg *a, const rd_problem *pb, bench_sink *k) {
  return with_bufs(ctx, a, pb, k, 1, forward_body);
}

/* ---- kinsol_*: ct_nlsolve and the implicit derivatives ------------------- */

static ct_nlsolve_options nl_options(const method *me) {
  ct_nlsolve_options o = ct_nlsolve_default_options();
  o.solver = me->solver;
  o.linear_solver = me->linsolve;
  o.petsc_options = me->petsc_options;
  o.ftol = FTOL;
  return o;
}

static void emit_stats(bench_sink *k, const ct_nlsolve_stats *st) {
  bench_emit(k, "iters", (double)st->iters, "count");
  bench_emit(k, "factorizations", (double)st->factorizations, "count");
  bench_emit(k, "lin_iters", (double)st->lin_iters, "count");
  bench_emit(k, "fnorm", st->fnorm, "");
}

/* Tangent columns e_j through ct_nlsolve_tangent (after a solve); time per
 * column and the worst disagreement of x_bar . dx with grad_j. */
static int nl_tangent(ct_context *ctx, const case_arg *a, ct_nlsolve *nls, const double *xb,
                      const double *g, bench_sink *k) {
  size_t n = ct_nlsolve_n(nls), S = a->o->columns < n ? a->o->columns : n;
  double *dp = calloc(S * n, sizeof *dp), *dx = malloc(S * n * sizeof *dx);
  int rc = dp && dx ? CT_OK : CT_ERR_NOMEM;
  for (size_t s = 0; rc == CT_OK && s < S; s++) dp[s * n + sample_column(s, S, n)] = 1.0;
  double t0 = bench_now();
  if (rc == CT_OK) rc = ct_nlsolve_tangent(ctx, nls, (int)S, dp, dx);
  double t = bench_now() - t0, worst = 0, gmax = max_abs(g, n);
  for (size_t s = 0; rc == CT_OK && s < S; s++) {
    double dl = 0;
    for (size_t i = 0; i < n; i++) dl += xb[i] * dx[s * n + i];
    worst = fmax(worst, fabs(dl - g[sample_column(s, S, n)]) / fmax(gmax, 1e-300));
  }
  if (rc == CT_OK) {
    bench_emit(k, "tangent_column_time", t / (double)S, "s");
    bench_emit(k, "tangent_rel_err", worst, "");
  }
  free(dp), free(dx);
  return rc;
}

/* One solve from x = 1 and (with the implicit module) the adjoint right
 * after it: times into *ts, *ta. */
static int nl_solve_adjoint(ct_context *ctx, ct_nlsolve *nls, const ct_nlsolve_options *opts,
                            const rd_problem *pb, double *x, double *xb, double *g,
                            ct_nlsolve_stats *st, double *ts, double *ta) {
  rd_guess(pb, x);
  double t0 = bench_now();
  int rc = ct_nlsolve_solve(ctx, nls, opts, pb->p, x, st);
  double t1 = bench_now();
  *ts = t1 - t0, *ta = NAN;
  rd_loss(pb, x, xb);
  if (rc == CT_OK) rc = ct_nlsolve_adjoint(ctx, nls, xb, g, NULL);
  *ta = bench_now() - t1;
  return rc;
}

/* The timed part of a kinsol_* / snes_* case on the problem nls, with
 * three vectors of n (x, xb, g). */
static int nl_body(ct_context *ctx, const case_arg *a, const rd_problem *pb, ct_nlsolve *nls,
                   double *x, double *xb, double *g, bench_sink *k) {
  size_t n = pb->n;
  ct_nlsolve_options opts = nl_options(a->me);
  ct_nlsolve_stats st;
  int rc = CT_OK;
  bench_emit(k, "jac_nnz", (double)ct_nlsolve_jac_nnz(nls), "count");
  bench_emit(k, "rss_setup", bench_rss_kib(), "KiB");
  ct_fun *g_vjp = NULL; /* what ct_nlsolve_gradient builds on every call */
  double t0 = bench_now();
  if (ct_fun_vjp(ctx, pb->g, 1, NULL, &g_vjp) == CT_OK)
    bench_emit(k, "g_vjp_build_time", bench_now() - t0, "s");
  ct_fun_free(g_vjp);
  double ts[MAX_REPS], ta[MAX_REPS], tg[MAX_REPS];
  int reps = 0;
  if (warm_up(a)) { /* warm-up: PETSc, the linear solver's symbolic analysis */
    rc = nl_solve_adjoint(ctx, nls, &opts, pb, x, xb, g, &st, &ts[0], &ta[0]);
    bench_emit(k, "first_solve_time", ts[0], "s");
  }
  if (rc == CT_OK) do rc = nl_solve_adjoint(ctx, nls, &opts, pb, x, xb, g, &st, &ts[reps], &ta[reps]);
  while (rc == CT_OK && more_reps(a->o, ++reps, ts[0]));
  if (rc != CT_OK) return fail(ctx, k->cs, "ct_nlsolve_solve / ct_nlsolve_adjoint", rc);
  emit_stats(k, &st);
  double solve = bench_median(ts, (size_t)reps);
  bench_emit(k, "solve_time", solve, "s");
  bench_emit(k, "adjoint_time", bench_median(ta, (size_t)reps), "s");
  double loss;
  int greps = 0;
  do {
    rd_guess(pb, x);
    double t1 = bench_now();
    rc = ct_nlsolve_gradient(ctx, nls, &opts, pb->g, pb->p, x, &loss, g);
    tg[greps] = bench_now() - t1;
  } while (rc == CT_OK && more_reps(a->o, ++greps, tg[0]));
  if (rc != CT_OK) return fail(ctx, k->cs, "ct_nlsolve_gradient", rc);
  bench_emit(k, "gradient_time", bench_median(tg, (size_t)greps), "s");
  bench_emit(k, "loss", loss, "");
  if (write_grad(a, g, n) != 0) return fail(ctx, k->cs, "writing the gradient", CT_ERR_IO);
  if (!a->me->iterative && a->o->columns > 0) {
    rd_loss(pb, x, xb);
    rc = nl_tangent(ctx, a, nls, xb, g, k);
    if (rc != CT_OK) fail(ctx, k->cs, "ct_nlsolve_tangent", rc), rc = CT_OK; /* reported only */
  }
  return rc;
}

static int run_nlsolve(ct_context *ctx, const case_arg *a, const rd_problem *pb, bench_sink *k) {
  size_t n = pb->n;
  ct_nlsolve *nls = NULL;
  double *x = malloc(n * sizeof *x), *xb = malloc(n * sizeof *xb), *g = malloc(n * sizeof *g);
  double t0 = bench_now();
  int rc = x && xb && g ? ct_nlsolve_new(ctx, pb->F, &nls) : CT_ERR_NOMEM;
  if (rc != CT_OK) {
    fail(ctx, k->cs, "ct_nlsolve_new", rc);
  } else {
    bench_emit(k, "nlsolve_new_time", bench_now() - t0, "s");
    rc = nl_body(ctx, a, pb, nls, x, xb, g, k);
  }
  ct_nlsolve_free(nls);
  free(x), free(xb), free(g);
  return rc;
}

/* ---- One case in its child process ------------------------------------------ */

/* Caps the address space so that a case too large for the machine fails
 * an allocation instead of waking the OOM killer. */
static void limit_memory(double gb) {
  if (!(gb > 0)) return;
  struct rlimit rl = {(rlim_t)(gb * 1073741824.0), (rlim_t)(gb * 1073741824.0)};
  setrlimit(RLIMIT_AS, &rl);
}

static int run_case(const char *cs, void *ud, bench_sink *k) {
  const case_arg *a = ud;
  limit_memory(a->o->mem_limit_gb);
  ct_context *ctx = ct_context_new(NULL);
  rd_problem pb;
  if (!ctx) return 1;
  fprintf(stderr, "bench_implicit: %s ...\n", cs);
  double t0 = bench_now();
  int rc = rd_problem_init(ctx, &pb, a->m);
  if (rc != 0) {
    fail(ctx, cs, "tracing", rc);
  } else {
    bench_emit(k, "trace_time", pb.trace_s, "s");
    bench_emit(k, "F_nodes", (double)ct_fun_n_nodes(pb.F), "count");
    switch (a->me->kind) {
    case M_NEWTON: rc = run_newton(ctx, a, &pb, k); break;
    case M_UNROLLED: rc = run_unrolled(ctx, a, &pb, k); break;
    case M_FORWARD: rc = run_forward(ctx, a, &pb, k); break;
    case M_NLSOLVE: rc = run_nlsolve(ctx, a, &pb, k); break;
    }
  }
  bench_emit(k, "peak_rss", bench_peak_rss_kib(), "KiB");
  bench_emit(k, "ok", rc == 0, "bool");
  fprintf(stderr, "bench_implicit: %s %s in %.1f s\n", cs, rc == 0 ? "done" : "FAILED",
          bench_now() - t0);
  rd_problem_free(&pb);
  ct_context_free(ctx);
  return rc != 0;
}

/* ---- Checks across cases ---------------------------------------------------- */

/* Records a failed check and says what it was. */
static void check(bench_rows *r, int ok, const char *cs, const char *what, double got,
                  double limit) {
  if (ok) return;
  r->failures++;
  fprintf(stderr, "bench_implicit: CHECK FAILED: %s: %s = %.3g (limit %.3g)\n", cs, what, got,
          limit);
}

/* Each method's gradient against newton_klu's, and the in-case checks. */
static void compare_grid(const options *o, size_t m, bench_rows *r) {
  size_t n = m * m;
  double *ref = read_grad(o, m, "newton_klu", n);
  char cs[48];
  for (size_t i = 0; i < o->n_methods; i++) {
    const method *me = o->methods[i];
    snprintf(cs, sizeof cs, "rd%zu/%s", m, me->name);
    double cd = bench_rows_get(r, cs, "cd_rel_err");
    if (!isnan(cd)) check(r, cd <= AGREE_CD, cs, "central difference vs adjoint", cd, AGREE_CD);
    double col = bench_rows_get(r, cs, "columns_rel_err");
    if (!isnan(col)) check(r, col <= AGREE_COLUMNS, cs, "forward columns vs adjoint", col, AGREE_COLUMNS);
    double tan = bench_rows_get(r, cs, "tangent_rel_err");
    if (!isnan(tan)) check(r, tan <= AGREE_COLUMNS, cs, "ct_nlsolve_tangent vs adjoint", tan, AGREE_COLUMNS);
    double *g = ref && me->kind != M_NEWTON ? read_grad(o, m, me->name, n) : NULL;
    if (g) {
      double d = bench_rel_diff(g, ref, n), lim = me->iterative ? AGREE_ITERATIVE : AGREE_DIRECT;
      bench_rows_add(r, cs, "grad_rel_diff_vs_newton_klu", d, "");
      check(r, d <= lim, cs, "gradient vs newton_klu's implicit gradient", d, lim);
    }
    free(g);
  }
  free(ref);
}

/* ---- Table ------------------------------------------------------------------ */

/* A time cell: "-" for NAN. */
static void cell_time(char *buf, size_t size, double s) {
  if (isnan(s)) snprintf(buf, size, "-");
  else if (s < 1) snprintf(buf, size, "%.1f ms", s * 1e3);
  else snprintf(buf, size, "%.2f s", s);
}

static void cell(char *buf, size_t size, double v, const char *fmt) {
  if (isnan(v)) snprintf(buf, size, "-");
  else snprintf(buf, size, fmt, v);
}

/* Derived rows: the ratios of the table. */
static void add_ratios(const options *o, bench_rows *r) {
  char cs[48];
  for (size_t g = 0; g < o->n_grids; g++)
    for (size_t i = 0; i < o->n_methods; i++) {
      snprintf(cs, sizeof cs, "rd%zu/%s", o->grids[g], o->methods[i]->name);
      double s = bench_rows_get(r, cs, "solve_time");
      bench_rows_add(r, cs, "adjoint_over_solve", bench_rows_get(r, cs, "adjoint_time") / s, "x");
      bench_rows_add(r, cs, "gradient_over_solve", bench_rows_get(r, cs, "gradient_time") / s, "x");
    }
}

static void write_table(FILE *f, const options *o, const bench_rows *r) {
  fprintf(f, "| grid | N = P | method | Newton its | solve | adjoint after solve | adjoint/solve | "
             "gradient (solve + adjoint) | gradient/solve | peak RSS | RSS after set-up | "
             "grad. diff vs newton_klu |\n"
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  char cs[48], v[9][32];
  for (size_t g = 0; g < o->n_grids; g++)
    for (size_t i = 0; i < o->n_methods; i++) {
      const method *me = o->methods[i];
      size_t m = o->grids[g];
      snprintf(cs, sizeof cs, "rd%zu/%s", m, me->name);
      if (me->max_m && m > me->max_m) {
        fprintf(f, "| %zux%zu | %zu | %s | not run (m > %zu) |||||||||\n", m, m, m * m, me->name, me->max_m);
        continue;
      }
      if (!(bench_rows_get(r, cs, "ok") > 0)) {
        fprintf(f, "| %zux%zu | %zu | %s | failed (see the log) |||||||||\n", m, m, m * m, me->name);
        continue;
      }
      int fwd = me->kind == M_FORWARD;
      cell_time(v[0], 32, bench_rows_get(r, cs, "solve_time"));
      cell_time(v[1], 32, bench_rows_get(r, cs, "adjoint_time"));
      cell(v[2], 32, bench_rows_get(r, cs, "adjoint_over_solve"), fwd ? "%.0fx (extrap.)" : "%.2fx");
      cell_time(v[3], 32, bench_rows_get(r, cs, "gradient_time"));
      cell(v[4], 32, bench_rows_get(r, cs, "gradient_over_solve"), fwd ? "%.0fx (extrap.)" : "%.2fx");
      cell(v[5], 32, bench_rows_get(r, cs, "peak_rss") / 1024, "%.0f MiB");
      cell(v[6], 32, bench_rows_get(r, cs, "rss_setup") / 1024, "%.0f MiB");
      cell(v[7], 32, bench_rows_get(r, cs, "grad_rel_diff_vs_newton_klu"), "%.1e");
      cell(v[8], 32, bench_rows_get(r, cs, "iters"), "%.0f");
      fprintf(f, "| %zux%zu | %zu | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", m, m,
              m * m, me->name, v[8], v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
    }
}

/* The set-up costs: tracing, Jacobian and VJP construction. */
static void write_setup_table(FILE *f, const options *o, const bench_rows *r) {
  fprintf(f, "\n| grid | F nodes | trace F, g | sparse Jacobian | VJP(s) | JVP | ct_nlsolve_new | "
             "VJP of g | tape RSS (unrolled) | forward column | ct_nlsolve_tangent column |\n"
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  char a[48], b[48], c[48], d[48], v[10][32];
  for (size_t g = 0; g < o->n_grids; g++) {
    size_t m = o->grids[g];
    snprintf(a, sizeof a, "rd%zu/newton_klu", m);
    snprintf(b, sizeof b, "rd%zu/unrolled_klu", m);
    snprintf(c, sizeof c, "rd%zu/forward_klu", m);
    snprintf(d, sizeof d, "rd%zu/kinsol_klu", m);
    cell(v[0], 32, bench_rows_get(r, a, "F_nodes"), "%.0f");
    cell_time(v[1], 32, bench_rows_get(r, a, "trace_time"));
    cell_time(v[2], 32, bench_rows_get(r, a, "jac_build_time"));
    cell_time(v[3], 32, bench_rows_get(r, b, "vjp_build_time"));
    cell_time(v[4], 32, bench_rows_get(r, c, "jvp_build_time"));
    cell_time(v[5], 32, bench_rows_get(r, d, "nlsolve_new_time"));
    cell(v[6], 32, bench_rows_get(r, b, "tape_rss") / 1024, "%.0f MiB");
    cell_time(v[7], 32, bench_rows_get(r, c, "column_time"));
    cell_time(v[8], 32, bench_rows_get(r, d, "tangent_column_time"));
    cell_time(v[9], 32, bench_rows_get(r, d, "g_vjp_build_time"));
    fprintf(f, "| %zux%zu | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", m, m, v[0],
            v[1], v[2], v[3], v[4], v[5], v[9], v[6], v[7], v[8]);
  }
}

static int write_md(const options *o, const bench_rows *r, const char *path) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  write_table(f, o, r);
  write_setup_table(f, o, r);
  return fclose(f);
}

/* ---- Main ------------------------------------------------------------------- */

static void usage(FILE *to) {
  fprintf(to, "usage: bench_implicit [--smoke] [--out FILE.json] [--md FILE.md] [--reps N]\n"
              "                      [--grid M]... [--method NAME]... [--columns S] [--warmup-max M]\n"
              "                      [--mem-limit-gb G] [--no-fork] [--perturb-reference]\n"
              "methods:");
  for (size_t i = 0; i < N_METHODS; i++) fprintf(to, " %s", METHODS[i].name);
  fprintf(to, "\n");
}

static const method *find_method(const char *name) {
  for (size_t i = 0; i < N_METHODS; i++)
    if (!strcmp(METHODS[i].name, name)) return &METHODS[i];
  return NULL;
}

static int parse_args(int argc, char **argv, options *o) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int more = i + 1 < argc;
    if (!strcmp(a, "--smoke")) o->smoke = 1;
    else if (!strcmp(a, "--no-fork")) o->fork = 0;
    else if (!strcmp(a, "--perturb-reference")) o->perturb = 1;
    else if (!strcmp(a, "--out") && more) o->out = argv[++i];
    else if (!strcmp(a, "--md") && more) o->md = argv[++i];
    else if (!strcmp(a, "--reps") && more) o->reps = atoi(argv[++i]);
    else if (!strcmp(a, "--columns") && more) o->columns = strtoul(argv[++i], NULL, 10);
    else if (!strcmp(a, "--warmup-max") && more) o->warmup_max = strtoul(argv[++i], NULL, 10);
    else if (!strcmp(a, "--mem-limit-gb") && more) o->mem_limit_gb = atof(argv[++i]);
    else if (!strcmp(a, "--grid") && more && o->n_grids < MAX_GRIDS)
      o->grids[o->n_grids++] = strtoul(argv[++i], NULL, 10);
    else if (!strcmp(a, "--method") && more && o->n_methods < MAX_METHODS) {
      if (!(o->methods[o->n_methods++] = find_method(argv[++i]))) {
        fprintf(stderr, "bench_implicit: unknown method %s\n", argv[i]);
        return -1;
      }
    } else {
      usage(stderr);
      return -1;
    }
  }
  for (size_t g = 0; g < o->n_grids; g++)
    if (o->grids[g] < 3 || o->grids[g] > 4000) return usage(stderr), -1;
  if (o->reps < 1 || o->reps > MAX_REPS) return usage(stderr), -1;
  if (o->smoke) o->reps = 1;
  if (o->n_grids == 0) {
    static const size_t full[] = {100, 316, 1000};
    o->n_grids = o->smoke ? 1 : 3;
    memcpy(o->grids, full, o->n_grids * sizeof *full);
  }
  if (o->n_methods == 0) /* newton_klu first: the others compare with it */
    for (size_t i = 0; i < N_METHODS; i++)
      o->methods[o->n_methods++] = &METHODS[(i + 5) % N_METHODS];
  return 0;
}

/* out with its extension replaced by `ext`. */
static void sibling(const char *out, const char *ext, char *buf, size_t size) {
  snprintf(buf, size, "%s", out);
  char *dot = strrchr(buf, '.'), *slash = strrchr(buf, '/');
  if (dot && (!slash || dot > slash)) *dot = '\0';
  size_t len = strlen(buf);
  snprintf(buf + len, size - len, "%s", ext);
}

/* Removes the gradient files and their folder. */
static void remove_grads(const options *o) {
  char path[160];
  for (size_t g = 0; g < o->n_grids; g++)
    for (size_t i = 0; i < o->n_methods; i++) {
      grad_path(o, o->grids[g], o->methods[i]->name, path, sizeof path);
      remove(path);
    }
  rmdir(o->grad_dir);
}

/* Runs every method on one grid and compares the gradients. */
static void run_grid(const options *o, size_t m, bench_rows *r) {
  for (size_t i = 0; i < o->n_methods; i++) {
    case_arg a = {o, m, o->methods[i]};
    if (a.me->max_m && m > a.me->max_m) continue;
    char cs[48];
    snprintf(cs, sizeof cs, "rd%zu/%s", m, a.me->name);
    int rc = bench_run_case(o->fork, cs, run_case, &a, r);
    if (rc != 0 && !a.me->optional) r->failures++;
    if (rc != 0 && a.me->optional)
      fprintf(stderr, "bench_implicit: %s failed: reported, not counted (optional method)\n", cs);
  }
  compare_grid(o, m, r);
}

int main(int argc, char **argv) {
  options o = {.fork = 1, .reps = 3, .columns = 20, .warmup_max = 316, .out = "build/bench/implicit.json"};
  if (parse_args(argc, argv, &o) != 0) return 2;
  char md[1024];
  if (!o.md) sibling(o.out, ".md", md, sizeof md), o.md = md;
  snprintf(o.grad_dir, sizeof o.grad_dir, "/tmp/bench_implicit.XXXXXX");
  if (!mkdtemp(o.grad_dir)) {
    perror("bench_implicit: mkdtemp");
    return 1;
  }
  bench_rows r = {0};
  for (size_t g = 0; g < o.n_grids; g++) run_grid(&o, o.grids[g], &r);
  remove_grads(&o);
  add_ratios(&o, &r);
  if (bench_rows_write_json(&r, o.out) != 0 || write_md(&o, &r, o.md) != 0) {
    fprintf(stderr, "bench_implicit: cannot write %s or %s\n", o.out, o.md);
    r.failures++;
  }
  write_table(stdout, &o, &r);
  write_setup_table(stdout, &o, &r);
  printf("\nbench_implicit: %d failed check(s); rows in %s\n", r.failures, o.out);
  int status = r.failures ? 1 : 0;
  bench_rows_free(&r);
  return status;
}
