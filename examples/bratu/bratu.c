/* The Bratu problem with sources: a nonlinear boundary-value problem solved
 * with KINSOL, and the gradient of a fit to a target profile with respect
 * to every parameter by the implicit adjoint — one transposed solve, no
 * differentiation of the Newton iterations.
 *
 *     x'' + lambda exp(x) + s(z) = 0 on (0, 1),   x(0) = x(1) = 0,
 *
 * on N interior points z_i = i h (h = 1/(N+1)), central differences:
 *
 *     F_i(x, p) = (x_{i-1} - 2 x_i + x_{i+1}) / h^2 + lambda exp(x_i) + s_i
 *
 * with parameters p = (lambda, s_1 .. s_N): N + 1 of them. The loss is
 *
 *     L(p) = 1/2 sum_i (x_i(p) - t_i)^2,   t_i = 0.3 sin(pi z_i).
 *
 * Shows, in order:
 *  1. tracing F and the loss as AD functions and building the problem
 *     (ct_nlsolve_new);
 *  2. the solve (ct_nlsolve_solve: Newton with line search, KLU with the
 *     AD sparse Jacobian) and its statistics;
 *  3. L and dL/dp in one call (ct_nlsolve_gradient);
 *  4. the same gradient from forward tangents dx/dp (ct_nlsolve_tangent,
 *     all N + 1 directions), and a few components by central differences
 *     of re-solves.
 * Exits with status 1 when a solve fails or the gradients disagree (more
 * than 1e-7 relative between adjoint and tangents, 1e-5 with
 * differences). stdout is compared with bratu.out by ctest. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cotangent.h"

#define N 199         /* interior grid points: h = 1/200 */
#define NP (N + 1)    /* lambda, then one source per point */
#define LAMBDA 1.0
#define AGREE_RTOL 1e-7
#define FD_RTOL 1e-5

static const double PI = 3.14159265358979323846;

/* F: inputs "x" (N) and "p" (NP), output "F" (N). */
static int trace_residual(ct_context *ctx, ct_fun **out) {
  ct_graph *g = ct_graph_new(ctx);
  if (!g) return ct_errcode(ctx);
  ct_var x[N], p[NP], F[N];
  ct_graph_input(g, "x", N, NULL, x);
  ct_graph_input(g, "p", NP, NULL, p);
  double inv_h2 = (N + 1.0) * (N + 1.0);
  ct_var zero = ct_const(g, 0.0);
  for (int i = 0; i < N; i++) {
    ct_var left = i > 0 ? x[i - 1] : zero, right = i < N - 1 ? x[i + 1] : zero;
    ct_var lap = ct_mulc(ct_add(ct_sub(left, ct_mulc(x[i], 2.0)), right), inv_h2);
    F[i] = ct_add(ct_add(lap, ct_mul(p[0], ct_exp(x[i]))), p[1 + i]);
  }
  ct_graph_output(g, "F", N, F);
  int rc = ct_graph_finalize(g, out); /* reports any tracing error */
  ct_graph_free(g);
  return rc;
}

/* The target profile at point i. */
static double target(int i) { return 0.3 * sin(PI * (i + 1.0) / (N + 1.0)); }

/* L: input "x" (N), output "g" (1). */
static int trace_loss(ct_context *ctx, ct_fun **out) {
  ct_graph *g = ct_graph_new(ctx);
  if (!g) return ct_errcode(ctx);
  ct_var x[N];
  ct_graph_input(g, "x", N, NULL, x);
  ct_var L = ct_const(g, 0.0);
  for (int i = 0; i < N; i++) L = ct_add(L, ct_sqr(ct_addc(x[i], -target(i))));
  L = ct_mulc(L, 0.5);
  ct_graph_output(g, "g", 1, &L);
  int rc = ct_graph_finalize(g, out);
  ct_graph_free(g);
  return rc;
}

/* The loss at a solved x, in plain C (for the difference quotients). */
static double loss_of(const double *x) {
  double L = 0.0;
  for (int i = 0; i < N; i++) L += 0.5 * (x[i] - target(i)) * (x[i] - target(i));
  return L;
}

typedef struct problem {
  ct_context *ctx;
  ct_fun *F, *loss;
  ct_nlsolve *nls;
  double p[NP], x[N], grad[NP], dxdp[(size_t)NP * N], eye[(size_t)NP * NP];
} problem;

/* Solves from x = 0 at parameters p; the loss there into *L. */
static int solve_at(problem *P, const ct_nlsolve_options *o, const double *p,
                    double *L) {
  double x[N] = {0.0};
  CT_CHECK(P->ctx, ct_nlsolve_solve(P->ctx, P->nls, o, p, x, NULL));
  *L = loss_of(x);
  return CT_OK;
}

static int run(problem *P) {
  ct_context *ctx = P->ctx;
  P->p[0] = LAMBDA;
  for (int i = 0; i < N; i++) P->p[1 + i] = 1.0; /* a uniform source */

  /* 1. The problem. */
  CT_CHECK(ctx, trace_residual(ctx, &P->F));
  CT_CHECK(ctx, trace_loss(ctx, &P->loss));
  CT_CHECK(ctx, ct_nlsolve_new(ctx, P->F, &P->nls));
  printf("Bratu problem x'' + lambda exp(x) + s = 0, N = %d points, %d parameters\n",
         N, NP);
  printf("Jacobian F_x: %zu nonzeros\n\n", ct_nlsolve_jac_nnz(P->nls));

  /* 2. The solve. */
  ct_nlsolve_options o = ct_nlsolve_default_options();
  o.linear_solver = "klu";
  ct_nlsolve_stats st;
  CT_CHECK(ctx, ct_nlsolve_solve(ctx, P->nls, &o, P->p, P->x, &st));
  printf("Solve: %ld Newton iterations, %ld factorizations, max |F| = %s\n",
         st.iters, st.factorizations, st.fnorm < 1e-9 ? "below 1e-9" : "ABOVE 1e-9");
  printf("x at z = 1/4, 1/2, 3/4: %.8f %.8f %.8f\n\n", P->x[(N + 1) / 4 - 1],
         P->x[(N + 1) / 2 - 1], P->x[3 * (N + 1) / 4 - 1]);

  /* 3. The loss and its gradient in one call (solves again from x). */
  double L = 0.0;
  CT_CHECK(ctx, ct_nlsolve_gradient(ctx, P->nls, &o, P->loss, P->p, P->x, &L,
                                    P->grad));
  printf("L = %.10e\n", L);
  printf("dL/dlambda = %.8e\n", P->grad[0]);
  printf("dL/ds_i at z = 1/4, 1/2, 3/4: %.8e %.8e %.8e\n\n", P->grad[(N + 1) / 4],
         P->grad[(N + 1) / 2], P->grad[3 * (N + 1) / 4]);

  /* 4a. The same gradient from all NP tangents: dL/dp_j = sum_i (x_i - t_i)
   *     dx_i/dp_j. */
  for (int j = 0; j < NP; j++) P->eye[(size_t)j * NP + (size_t)j] = 1.0;
  CT_CHECK(ctx, ct_nlsolve_tangent(ctx, P->nls, NP, P->eye, P->dxdp));
  double worst = 0.0;
  for (int j = 0; j < NP; j++) {
    double gj = 0.0;
    for (int i = 0; i < N; i++) gj += (P->x[i] - target(i)) * P->dxdp[(size_t)j * N + (size_t)i];
    double err = fabs(gj - P->grad[j]) / fmax(fabs(gj), 1e-300);
    if (err > worst) worst = err;
  }
  fprintf(stderr, "adjoint vs tangents: worst relative difference %.2e\n", worst);
  printf("Adjoint and %d tangents agree to 1e-7: %s\n", NP,
         worst <= AGREE_RTOL ? "yes" : "NO");

  /* 4b. Central differences of re-solves for lambda and three sources. */
  int which[4] = {0, (N + 1) / 4, (N + 1) / 2, 3 * (N + 1) / 4};
  double worst_fd = 0.0;
  for (int k = 0; k < 4; k++) {
    double pp[NP], Lp, Lm, h = 1e-5 * fmax(1.0, fabs(P->p[which[k]]));
    for (int j = 0; j < NP; j++) pp[j] = P->p[j];
    pp[which[k]] += h;
    CT_CHECK(ctx, solve_at(P, &o, pp, &Lp));
    pp[which[k]] -= 2.0 * h;
    CT_CHECK(ctx, solve_at(P, &o, pp, &Lm));
    double fd = (Lp - Lm) / (2.0 * h), g = P->grad[which[k]];
    double err = fabs(fd - g) / fmax(fabs(g), 1e-300);
    if (err > worst_fd) worst_fd = err;
  }
  fprintf(stderr, "adjoint vs central differences: worst relative difference %.2e\n",
          worst_fd);
  printf("Central differences agree to 1e-5: %s\n", worst_fd <= FD_RTOL ? "yes" : "NO");
  return worst <= AGREE_RTOL && worst_fd <= FD_RTOL ? CT_OK : CT_ERR_NUMERIC;
}

int main(void) {
  problem *P = calloc(1, sizeof *P);
  if (!P || !(P->ctx = ct_context_new(NULL))) return 1;
  int rc = run(P);
  if (rc < 0) fprintf(stderr, "bratu: %s\n", ct_errmsg(P->ctx));
  ct_nlsolve_free(P->nls);
  ct_fun_free(P->F);
  ct_fun_free(P->loss);
  ct_context_free(P->ctx);
  free(P);
  return rc < 0 ? 1 : 0;
}
