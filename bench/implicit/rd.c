/* The reaction-diffusion problem of bench/implicit (rd.h). */
#include "rd.h"

#include <math.h>
#include <stdlib.h>

#include "report.h"

enum { RD_K = 1 };
static const double RD_PI = 3.14159265358979323846;

/* x at grid point (r, c), or no term outside the grid (Dirichlet zero). */
static int inside(long r, long c, size_t m) {
  return r >= 0 && c >= 0 && (size_t)r < m && (size_t)c < m;
}

/* Traces F: one residual per grid point. */
static int trace_F(ct_context *ctx, const rd_problem *pb, ct_fun **out) {
  size_t m = pb->m, n = pb->n;
  double h = 1.0 / (double)(m + 1), h2 = h * h;
  ct_graph *g = ct_graph_new(ctx);
  ct_var *x = malloc(n * sizeof *x), *p = malloc(n * sizeof *p), *F = malloc(n * sizeof *F);
  int rc = g && x && p && F ? CT_OK : CT_ERR_NOMEM;
  if (rc == CT_OK) rc = ct_graph_input(g, "x", n, NULL, x);
  if (rc == CT_OK) rc = ct_graph_input(g, "p", n, NULL, p);
  static const long dr[4] = {-1, 1, 0, 0}, dc[4] = {0, 0, -1, 1};
  for (size_t i = 0; rc == CT_OK && i < n; i++) {
    long r = (long)(i / m), c = (long)(i % m);
    ct_var lap = ct_mulc(x[i], -4.0);
    for (int d = 0; d < 4; d++)
      if (inside(r + dr[d], c + dc[d], m)) lap = ct_add(lap, x[(size_t)(r + dr[d]) * m + (size_t)(c + dc[d])]);
    ct_var react = ct_sub(p[i], ct_mulc(ct_powi(x[i], 3), (double)RD_K));
    F[i] = ct_add(lap, ct_mulc(react, h2));
  }
  if (rc == CT_OK) rc = ct_graph_output(g, "F", n, F);
  if (rc == CT_OK) rc = ct_graph_finalize(g, out);
  ct_graph_free(g);
  free(x), free(p), free(F);
  return rc;
}

/* Traces g(x) = 0.5 sum (x - target)^2. */
static int trace_g(ct_context *ctx, const rd_problem *pb, ct_fun **out) {
  size_t n = pb->n;
  ct_graph *g = ct_graph_new(ctx);
  ct_var *x = malloc(n * sizeof *x);
  int rc = g && x ? CT_OK : CT_ERR_NOMEM;
  if (rc == CT_OK) rc = ct_graph_input(g, "x", n, NULL, x);
  ct_var sum = ct_const(g, 0.0);
  for (size_t i = 0; rc == CT_OK && i < n; i++)
    sum = ct_add(sum, ct_sqr(ct_addc(x[i], -pb->target[i])));
  sum = ct_mulc(sum, 0.5);
  if (rc == CT_OK) rc = ct_graph_output(g, "g", 1, &sum);
  if (rc == CT_OK) rc = ct_graph_finalize(g, out);
  ct_graph_free(g);
  free(x);
  return rc;
}

int rd_problem_init(ct_context *ctx, rd_problem *pb, size_t m) {
  pb->m = m, pb->n = m * m;
  pb->p = malloc(pb->n * sizeof *pb->p);
  pb->target = malloc(pb->n * sizeof *pb->target);
  pb->F = pb->g = NULL;
  if (!pb->p || !pb->target) return -1;
  double h = 1.0 / (double)(m + 1);
  for (size_t i = 0; i < pb->n; i++) {
    double s = (double)(i % m + 1) * h, t = (double)(i / m + 1) * h;
    pb->p[i] = 100.0 * (1.0 + 0.5 * sin(2 * RD_PI * s) * cos(3 * RD_PI * t));
    pb->target[i] = 4.0 * sin(RD_PI * s) * sin(RD_PI * t);
  }
  double t0 = bench_now();
  if (trace_F(ctx, pb, &pb->F) != CT_OK || trace_g(ctx, pb, &pb->g) != CT_OK) return -1;
  pb->trace_s = bench_now() - t0;
  return 0;
}

void rd_problem_free(rd_problem *pb) {
  ct_fun_free(pb->F);
  ct_fun_free(pb->g);
  free(pb->p);
  free(pb->target);
  pb->F = pb->g = NULL, pb->p = pb->target = NULL;
}

void rd_guess(const rd_problem *pb, double *x) {
  for (size_t i = 0; i < pb->n; i++) x[i] = 1.0;
}

double rd_loss(const rd_problem *pb, const double *x, double *x_bar) {
  double s = 0;
  for (size_t i = 0; i < pb->n; i++) {
    double d = x[i] - pb->target[i];
    s += d * d;
    if (x_bar) x_bar[i] = d;
  }
  return 0.5 * s;
}

int rd_fn_eval(ct_context *ctx, rd_fn *fn, const double *const *in, double *const *out) {
  if (!fn->work) {
    fn->work = malloc((ct_fun_work_size(fn->f) + 1) * sizeof *fn->work);
    if (!fn->work) return CT_ERR_NOMEM;
  }
  return ct_fun_eval(ctx, fn->f, in, out, fn->work);
}

void rd_fn_free(rd_fn *fn) {
  ct_fun_free(fn->f);
  free(fn->work);
  fn->f = NULL, fn->work = NULL;
}
