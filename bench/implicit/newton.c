/* The Newton, unrolled-adjoint, implicit-adjoint and forward-column
 * baselines of bench/implicit (newton.h). */
#include "newton.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

enum { MAX_NEWTON = 50, MAX_PORTS = 8 };

/* Evaluates fn with its inputs and outputs given by name (outputs not
 * named are skipped). CT_ERR_ARG when a name is missing. */
static int eval_named(ct_context *ctx, rd_fn *fn, const char *const *in_names,
                      const double *const *in_vals, const char *const *out_names,
                      double *const *out_vals) {
  const double *in[MAX_PORTS] = {NULL};
  double *out[MAX_PORTS] = {NULL};
  if (ct_fun_n_in(fn->f) > MAX_PORTS || ct_fun_n_out(fn->f) > MAX_PORTS) return CT_ERR_ARG;
  for (size_t i = 0; in_names[i]; i++) {
    long k = ct_fun_in_index(fn->f, in_names[i]);
    if (k < 0) return CT_ERR_ARG;
    in[k] = in_vals[i];
  }
  for (size_t i = 0; out_names[i]; i++) {
    long k = ct_fun_out_index(fn->f, out_names[i]);
    if (k < 0) return CT_ERR_ARG;
    out[k] = out_vals[i];
  }
  return rd_fn_eval(ctx, fn, in, out);
}

int newton_ctx_init(ct_context *ctx, newton_ctx *nc, const rd_problem *pb, double ftol) {
  memset(nc, 0, sizeof *nc);
  nc->ctx = ctx, nc->pb = pb, nc->ftol = ftol, nc->linsolve = "klu";
  nc->F.f = pb->F; /* borrowed: newton_ctx_free does not free it */
  static const char *const wrt_x[] = {"x", NULL};
  double t0 = bench_now();
  int rc = ct_fun_sparse_jac(ctx, pb->F, wrt_x, &nc->J.f, &nc->pattern);
  nc->jac_build_s = bench_now() - t0;
  if (rc != CT_OK) return rc;
  nc->res = malloc(pb->n * sizeof *nc->res);
  nc->vals = malloc(nc->pattern->nnz * sizeof *nc->vals);
  return nc->res && nc->vals ? CT_OK : CT_ERR_NOMEM;
}

void newton_ctx_free(newton_ctx *nc) {
  free(nc->F.work);
  rd_fn_free(&nc->J);
  rd_fn_free(&nc->vjp_F);
  rd_fn_free(&nc->vjp_J);
  rd_fn_free(&nc->jvp_F_p);
  ct_sparsity_free(nc->ctx, nc->pattern);
  free(nc->res);
  free(nc->vals);
  memset(nc, 0, sizeof *nc);
}

int newton_need_vjp_F(newton_ctx *nc) {
  if (nc->vjp_F.f) return CT_OK;
  double t0 = bench_now();
  int rc = ct_fun_vjp(nc->ctx, nc->pb->F, 1, NULL, &nc->vjp_F.f);
  nc->vjp_build_s = bench_now() - t0;
  return rc;
}

int newton_need_vjp_J(newton_ctx *nc) {
  if (nc->vjp_J.f) return CT_OK;
  double t0 = bench_now();
  int rc = ct_fun_vjp(nc->ctx, nc->J.f, 1, NULL, &nc->vjp_J.f);
  nc->vjp_J_build_s = bench_now() - t0;
  return rc;
}

int newton_need_jvp_F_p(newton_ctx *nc) {
  if (nc->jvp_F_p.f) return CT_OK;
  static const char *const wrt_p[] = {"p", NULL};
  double t0 = bench_now();
  int rc = ct_fun_jvp(nc->ctx, nc->pb->F, 1, wrt_p, &nc->jvp_F_p.f);
  nc->jvp_build_s = bench_now() - t0;
  return rc;
}

void newton_tape_free(ct_context *ctx, newton_tape *t) {
  for (int k = 0; k < t->k; k++) {
    free(t->x[k]);
    free(t->delta[k]);
    ct_linsolve_free(ctx, t->ls[k]);
  }
  free(t->x), free(t->delta), free(t->ls);
  memset(t, 0, sizeof *t);
}

/* F(x, p) into nc->res; max |F| into *fnorm. */
static int residual(newton_ctx *nc, const double *p, const double *x, double *fnorm) {
  const double *in[2] = {x, p};
  double *out[1] = {nc->res};
  int rc = rd_fn_eval(nc->ctx, &nc->F, in, out);
  double s = 0;
  for (size_t i = 0; i < nc->pb->n; i++) s = fmax(s, fabs(nc->res[i]));
  *fnorm = s;
  return rc != CT_OK ? rc : isfinite(s) ? CT_OK : CT_ERR_NUMERIC;
}

/* F_x(x, p)'s values into nc->vals and factored in ls. */
static int factor_at(newton_ctx *nc, const double *p, const double *x, ct_linsolve *ls) {
  const double *in[2] = {x, p};
  double *out[1] = {nc->vals};
  int rc = rd_fn_eval(nc->ctx, &nc->J, in, out);
  return rc != CT_OK ? rc : ct_linsolve_factor(nc->ctx, ls, nc->vals);
}

/* Makes room for one more tape entry and gives it its own solver. */
static int tape_push(newton_ctx *nc, newton_tape *t, const double *x, ct_linsolve **ls) {
  size_t n = nc->pb->n;
  if (t->k == t->cap) {
    int cap = t->cap ? 2 * t->cap : 8;
    double **xs = realloc(t->x, (size_t)cap * sizeof *xs);
    if (xs) t->x = xs;
    double **ds = realloc(t->delta, (size_t)cap * sizeof *ds);
    if (ds) t->delta = ds;
    ct_linsolve **lss = realloc(t->ls, (size_t)cap * sizeof *lss);
    if (lss) t->ls = lss;
    if (!xs || !ds || !lss) return CT_ERR_NOMEM;
    t->cap = cap;
  }
  int k = t->k;
  t->x[k] = malloc(n * sizeof **t->x);
  t->delta[k] = malloc(n * sizeof **t->delta);
  t->ls[k] = NULL;
  t->k++; /* counted now so that newton_tape_free frees it */
  if (!t->x[k] || !t->delta[k]) return CT_ERR_NOMEM;
  memcpy(t->x[k], x, n * sizeof *x);
  int rc = ct_linsolve_create(nc->ctx, nc->linsolve, nc->pattern, &t->ls[k]);
  *ls = t->ls[k];
  return rc;
}

int newton_solve(newton_ctx *nc, const double *p, double *x, ct_linsolve *ls,
                 newton_tape *tape, int *iters) {
  size_t n = nc->pb->n;
  *iters = 0;
  for (int it = 0; it <= MAX_NEWTON; it++) {
    double fnorm;
    int rc = residual(nc, p, x, &fnorm);
    if (rc != CT_OK) return rc;
    if (fnorm <= nc->ftol) return CT_OK;
    if (it == MAX_NEWTON) break;
    ct_linsolve *step_ls = ls;
    if (tape && (rc = tape_push(nc, tape, x, &step_ls)) != CT_OK) return rc;
    if ((rc = factor_at(nc, p, x, step_ls)) != CT_OK) return rc;
    double *delta = tape ? tape->delta[tape->k - 1] : nc->res;
    if ((rc = ct_linsolve_solve(nc->ctx, step_ls, nc->res, delta)) != CT_OK) return rc;
    for (size_t i = 0; i < n; i++) x[i] -= delta[i];
    *iters = it + 1;
  }
  return CT_ERR_SOLVER;
}

/* acc (n) += v (n). */
static void add_to(double *acc, const double *v, size_t n) {
  for (size_t i = 0; i < n; i++) acc[i] += v[i];
}

/* x_bar += (seed-weighted VJP)_x, p_bar += (...)_p of fn at (x, p). */
static int vjp_add(newton_ctx *nc, rd_fn *fn, const char *seed_name, const double *x,
                   const double *p, const double *seed, double *x_bar, double *p_bar,
                   double *bx, double *bp) {
  const char *in_names[] = {"x", "p", seed_name, NULL};
  const double *in_vals[] = {x, p, seed};
  static const char *const out_names[] = {"bar_x", "bar_p", NULL};
  double *out_vals[] = {bx, bp};
  int rc = eval_named(nc->ctx, fn, in_names, in_vals, out_names, out_vals);
  if (rc != CT_OK) return rc;
  add_to(x_bar, bx, nc->pb->n);
  add_to(p_bar, bp, nc->pb->n);
  return CT_OK;
}

/* Scratch of the reverse pass: 5 vectors of n and one of nnz. */
typedef struct reverse_work {
  double *xb, *db, *bb, *bx, *bp, *Ab;
} reverse_work;

static int reverse_work_alloc(reverse_work *w, size_t n, size_t nnz) {
  w->xb = malloc(n * sizeof *w->xb);
  w->db = malloc(n * sizeof *w->db);
  w->bb = malloc(n * sizeof *w->bb);
  w->bx = malloc(n * sizeof *w->bx);
  w->bp = malloc(n * sizeof *w->bp);
  w->Ab = malloc(nnz * sizeof *w->Ab);
  return w->xb && w->db && w->bb && w->bx && w->bp && w->Ab ? CT_OK : CT_ERR_NOMEM;
}

static void reverse_work_free(reverse_work *w) {
  free(w->xb), free(w->db), free(w->bb), free(w->bx), free(w->bp), free(w->Ab);
}

int newton_unrolled_adjoint(newton_ctx *nc, const double *p, const newton_tape *tape,
                            const double *x_bar, double *p_bar) {
  size_t n = nc->pb->n;
  reverse_work w;
  int rc = reverse_work_alloc(&w, n, nc->pattern->nnz);
  if (rc == CT_OK) rc = newton_need_vjp_F(nc);
  if (rc == CT_OK) rc = newton_need_vjp_J(nc);
  if (rc == CT_OK) {
    memcpy(w.xb, x_bar, n * sizeof *x_bar);
    memset(p_bar, 0, n * sizeof *p_bar);
  }
  /* x_{k+1} = x_k - delta_k, delta_k = J_k^{-1} F_k: x_bar_k = x_bar_{k+1}
   * + F_x^T F_bar + (dJ/dx)^T J_bar with F_bar = J_k^{-T} delta_bar,
   * J_bar = -F_bar delta_k^T, delta_bar = -x_bar_{k+1}. */
  for (int k = tape->k - 1; rc == CT_OK && k >= 0; k--) {
    for (size_t i = 0; i < n; i++) w.db[i] = -w.xb[i];
    rc = ct_linsolve_adjoint(nc->ctx, tape->ls[k], tape->delta[k], w.db, w.bb, w.Ab);
    if (rc == CT_OK)
      rc = vjp_add(nc, &nc->vjp_F, "bar_F", tape->x[k], p, w.bb, w.xb, p_bar, w.bx, w.bp);
    if (rc == CT_OK)
      rc = vjp_add(nc, &nc->vjp_J, "bar_jac", tape->x[k], p, w.Ab, w.xb, p_bar, w.bx, w.bp);
  }
  reverse_work_free(&w);
  return rc;
}

int newton_implicit_adjoint(newton_ctx *nc, const double *p, const double *x, ct_linsolve *ls,
                            const double *x_bar, double *p_bar) {
  size_t n = nc->pb->n;
  double *lambda = malloc(n * sizeof *lambda), *bx = malloc(n * sizeof *bx);
  int rc = lambda && bx ? newton_need_vjp_F(nc) : CT_ERR_NOMEM;
  if (rc == CT_OK) rc = factor_at(nc, p, x, ls);
  if (rc == CT_OK) rc = ct_linsolve_solve_transpose(nc->ctx, ls, x_bar, lambda);
  if (rc == CT_OK) {
    static const char *const in_names[] = {"x", "p", "bar_F", NULL};
    const double *in_vals[] = {x, p, lambda};
    static const char *const out_names[] = {"bar_x", "bar_p", NULL};
    double *out_vals[] = {bx, p_bar};
    rc = eval_named(nc->ctx, &nc->vjp_F, in_names, in_vals, out_names, out_vals);
  }
  for (size_t i = 0; rc == CT_OK && i < n; i++) p_bar[i] = -p_bar[i];
  free(lambda), free(bx);
  return rc;
}

int newton_forward_column(newton_ctx *nc, const double *p, const double *x, ct_linsolve *ls,
                          size_t j, const double *x_bar, double *dx, double *dl) {
  size_t n = nc->pb->n;
  double *dp = calloc(n, sizeof *dp);
  int rc = dp ? newton_need_jvp_F_p(nc) : CT_ERR_NOMEM;
  if (rc == CT_OK) {
    dp[j] = 1.0;
    static const char *const in_names[] = {"x", "p", "d_p", NULL};
    const double *in_vals[] = {x, p, dp};
    static const char *const out_names[] = {"d_F", NULL};
    double *out_vals[] = {nc->res};
    rc = eval_named(nc->ctx, &nc->jvp_F_p, in_names, in_vals, out_names, out_vals);
  }
  if (rc == CT_OK) rc = ct_linsolve_solve(nc->ctx, ls, nc->res, dx);
  double s = 0;
  for (size_t i = 0; rc == CT_OK && i < n; i++) {
    dx[i] = -dx[i];
    s += x_bar[i] * dx[i];
  }
  *dl = s;
  free(dp);
  return rc;
}
