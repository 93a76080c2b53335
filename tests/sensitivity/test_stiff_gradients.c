/* Gradients of stiff problems three ways: the continuous adjoint
 * (ct_asa_solve), forward sensitivities (ct_fsa_solve on the model with the
 * integral appended as a state) and central differences of plain solves
 * (ct_gradient_check). Van der Pol with mu = 1000 through a relaxation jump,
 * and a seeded mass-action network of 100 species and 200 reactions with one
 * rate constant per reaction. The objective is J = ∫ g dt + y_k(T). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotangent/adjoint.h"
#include "cotangent/sensitivity.h"
#include "ct_test.h"
#include "ct_models.h"

/* ---- Problems ------------------------------------------------------------------ */

/* A reaction of the network: rate p[r] * prod(y[reac]), moving one unit from
 * each reactant to each product (1 -> 1 or 2 -> 2: the total is conserved, so
 * solutions stay bounded). */
typedef struct reaction {
  int reac[2], prod[2], order;
} reaction;

/* A stiff problem: the model, the model with q' = g appended (state n), the
 * objective's pieces and the point. */
typedef struct problem {
  const char *name;
  size_t n, np;
  ct_ode *model, *augmented;
  ct_fun *g, *phi;
  double *p, *y0; /* np, n + 1 (q(0) = 0 appended) */
  double T;
  size_t observed; /* phi = y[observed](T) */
  ct_ode_linsol linsol;
} problem;

/* Van der Pol in Liénard-free form, p = (mu, omega):
 * y0' = y1, y1' = mu (1 - y0^2) y1 - omega y0; with `aug` also q' = y0^2. */
static ct_fun *van_der_pol(ct_context *ctx, int aug) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var y[3], p[2], f[3];
  ct_graph_input(g, "y", aug ? 3 : 2, NULL, y);
  ct_graph_input(g, "p", 2, NULL, p);
  f[0] = y[1];
  f[1] = ct_sub(ct_mul(ct_mul(p[0], ct_subc(1.0, ct_sqr(y[0]))), y[1]),
                ct_mul(p[1], y[0]));
  if (aug) f[2] = ct_sqr(y[0]);
  ct_graph_output(g, "f", aug ? 3 : 2, f);
  return ct_test_finish(g);
}

/* g = y0^2 over the Van der Pol states. */
static ct_fun *van_der_pol_g(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var y[2];
  ct_graph_input(g, "y", 2, NULL, y);
  ct_var v = ct_sqr(y[0]);
  ct_graph_output(g, "g", 1, &v);
  return ct_test_finish(g);
}

/* phi = y[k] of an n-state model. */
static ct_fun *final_state(ct_context *ctx, size_t n, size_t k) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var *y = calloc(n, sizeof *y);
  assert_non_null(y);
  ct_graph_input(g, "y", n, NULL, y);
  ct_graph_output(g, "phi", 1, &y[k]);
  free(y);
  return ct_test_finish(g);
}

/* A deterministic uniform number in [0, 1) (64-bit LCG). */
static double uniform(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (double)(*s >> 11) / 9007199254740992.0;
}

/* A seeded network: n species, n_rx reactions, half of them 1 -> 1 and half
 * 2 -> 2, with distinct species within each side. */
static reaction *network(size_t n, size_t n_rx, uint64_t seed) {
  reaction *rx = calloc(n_rx, sizeof *rx);
  assert_non_null(rx);
  for (size_t r = 0; r < n_rx; r++) {
    reaction *x = &rx[r];
    x->order = r % 2 ? 2 : 1;
    for (int side = 0; side < 2; side++) {
      int *s = side ? x->prod : x->reac;
      s[0] = (int)(uniform(&seed) * (double)n);
      do s[1] = (int)(uniform(&seed) * (double)n); while (s[1] == s[0]);
    }
  }
  return rx;
}

/* The network's f(y, p), and with `aug` q' = sum_i w_i y_i appended
 * (weights w_i = (i % 7 + 1) / 7). */
static ct_fun *network_rhs(ct_context *ctx, const reaction *rx, size_t n, size_t n_rx,
                           int aug) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var *y = calloc(n + 1, sizeof *y), *p = calloc(n_rx, sizeof *p);
  ct_var *f = calloc(n + 1, sizeof *f);
  assert_true(y && p && f);
  ct_graph_input(g, "y", n + (aug ? 1 : 0), NULL, y);
  ct_graph_input(g, "p", n_rx, NULL, p);
  for (size_t i = 0; i <= n; i++) f[i] = ct_const(g, 0.0);
  for (size_t r = 0; r < n_rx; r++) {
    const reaction *x = &rx[r];
    ct_var rate = ct_mul(p[r], y[x->reac[0]]);
    if (x->order == 2) rate = ct_mul(rate, y[x->reac[1]]);
    for (int k = 0; k < x->order; k++) {
      f[x->reac[k]] = ct_sub(f[x->reac[k]], rate);
      f[x->prod[k]] = ct_add(f[x->prod[k]], rate);
    }
  }
  if (aug)
    for (size_t i = 0; i < n; i++)
      f[n] = ct_add(f[n], ct_mulc(y[i], (double)(i % 7 + 1) / 7.0));
  ct_graph_output(g, "f", n + (aug ? 1 : 0), f);
  free(y);
  free(p);
  free(f);
  return ct_test_finish(g);
}

/* g = sum_i w_i y_i, the integrand network_rhs appends. */
static ct_fun *network_g(ct_context *ctx, size_t n) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var *y = calloc(n, sizeof *y);
  assert_non_null(y);
  ct_graph_input(g, "y", n, NULL, y);
  ct_var s = ct_const(g, 0.0);
  for (size_t i = 0; i < n; i++) s = ct_add(s, ct_mulc(y[i], (double)(i % 7 + 1) / 7.0));
  ct_graph_output(g, "g", 1, &s);
  free(y);
  return ct_test_finish(g);
}

static ct_ode *model_of(ct_context *ctx, ct_fun *rhs) {
  ct_ode *m = NULL;
  int rc = ct_ode_new(ctx, rhs, NULL, NULL, &m);
  ct_fun_free(rhs);
  if (rc != CT_OK) fail_msg("ct_ode_new: %s", ct_errmsg(ctx));
  return m;
}

/* Van der Pol, mu = 1000, from (2, 0) to T = 700: the slow stiff phase up
 * to shortly before the first relaxation jump (near t = 807), where the
 * gradient has grown fivefold. Through the jump the gradient is
 * ill-conditioned (docs/adjoint.md: adjoint, forward sensitivities and
 * differences spread by a few percent at rtol 1e-10, converging as the
 * tolerances tighten); this test asks for agreement to 1e-6. phi = y0(T). */
static problem van_der_pol_problem(ct_context *ctx) {
  problem pb = {.name = "Van der Pol mu=1000", .n = 2, .np = 2, .T = 700.0,
                .observed = 0, .linsol = CT_LINSOL_DENSE};
  pb.model = model_of(ctx, van_der_pol(ctx, 0));
  pb.augmented = model_of(ctx, van_der_pol(ctx, 1));
  pb.g = van_der_pol_g(ctx);
  pb.phi = final_state(ctx, 2, 0);
  pb.p = calloc(2, sizeof(double));
  pb.y0 = calloc(3, sizeof(double));
  assert_true(pb.p && pb.y0);
  pb.p[0] = 1000.0;
  pb.p[1] = 1.0;
  pb.y0[0] = 2.0;
  return pb;
}

/* 100 species, 200 reactions, rates 10^U(-2, 3), y0 = U(0.5, 1.5), T = 5,
 * phi = y[17](T). Sparse: KLU. */
static problem network_problem(ct_context *ctx) {
  const size_t n = 100, n_rx = 200;
  problem pb = {.name = "mass-action network, 100 species", .n = n, .np = n_rx,
                .T = 5.0, .observed = 17, .linsol = CT_LINSOL_KLU};
  reaction *rx = network(n, n_rx, 20261124);
  pb.model = model_of(ctx, network_rhs(ctx, rx, n, n_rx, 0));
  pb.augmented = model_of(ctx, network_rhs(ctx, rx, n, n_rx, 1));
  free(rx);
  pb.g = network_g(ctx, n);
  pb.phi = final_state(ctx, n, pb.observed);
  pb.p = calloc(n_rx, sizeof(double));
  pb.y0 = calloc(n + 1, sizeof(double));
  assert_true(pb.p && pb.y0);
  uint64_t s = 7;
  for (size_t r = 0; r < n_rx; r++) pb.p[r] = pow(10.0, -2.0 + 5.0 * uniform(&s));
  for (size_t i = 0; i < n; i++) pb.y0[i] = 0.5 + uniform(&s);
  return pb;
}

static void problem_free(problem *pb) {
  ct_ode_free(pb->model);
  ct_ode_free(pb->augmented);
  ct_fun_free(pb->g);
  ct_fun_free(pb->phi);
  free(pb->p);
  free(pb->y0);
}

/* Tight tolerances for every phase. */
static ct_asa_options tight(const problem *pb) {
  ct_asa_options o = ct_asa_default_options();
  o.ode.linsol = pb->linsol;
  o.ode.rtol = 1e-10;
  o.ode.atol = 1e-12;
  o.ode.max_steps = 1000000;
  o.rtol_b = 1e-10;
  o.atol_b = 1e-12;
  o.rtol_q = 1e-10;
  o.atol_q = 1e-12;
  o.max_steps_b = 1000000;
  return o;
}

/* ---- The three gradients ----------------------------------------------------------- */

/* dJ/dp by the adjoint; returns J. */
static double adjoint_gradient(ct_context *ctx, const problem *pb, double *grad) {
  ct_asa *a = NULL;
  if (ct_asa_new(ctx, pb->model, pb->g, pb->phi, &a) != CT_OK) fail_msg("%s", ct_errmsg(ctx));
  ct_asa_options o = tight(pb);
  ct_asa_result *r = NULL;
  if (ct_asa_solve(ctx, a, pb->p, pb->y0, 0.0, pb->T, &o, &r) != CT_OK)
    fail_msg("%s: adjoint: %s", pb->name, ct_errmsg(ctx));
  assert_true(r->backward_done);
  memcpy(grad, r->dJdp, pb->np * sizeof *grad);
  double J = r->value;
  ct_asa_result_free(ctx, r);
  ct_asa_free(a);
  return J;
}

/* dJ/dp = dq/dp(T) + dy_k/dp(T) from forward sensitivities of the augmented
 * model; returns J = q(T) + y_k(T). */
static double forward_gradient(ct_context *ctx, const problem *pb, double *grad) {
  ct_fsa *fsa = NULL;
  if (ct_fsa_new(ctx, pb->augmented, NULL, 0, &fsa) != CT_OK) fail_msg("%s", ct_errmsg(ctx));
  ct_fsa_options o = ct_fsa_default_options();
  o.ode = tight(pb).ode;
  o.corrector = CT_FSA_STAGGERED;
  double tout[2] = {0.0, pb->T};
  ct_fsa_result *r = NULL;
  if (ct_fsa_solve(ctx, fsa, pb->p, pb->y0, tout, 2, &o, &r) != CT_OK)
    fail_msg("%s: forward sensitivities: %s", pb->name, ct_errmsg(ctx));
  size_t m = pb->n + 1;
  for (size_t j = 0; j < pb->np; j++) {
    const double *s = r->s + (1 * pb->np + j) * m;
    grad[j] = s[pb->n] + s[pb->observed];
  }
  double J = r->ode.y[m + pb->n] + r->ode.y[m + pb->observed];
  ct_fsa_result_free(ctx, r);
  ct_fsa_free(fsa);
  return J;
}

/* The objective restricted to some parameters: J(p with p[idx[i]] = q[i]). */
typedef struct subset {
  const problem *pb;
  const size_t *idx;
  size_t k;
  double *p; /* the full parameter vector, modified in place */
} subset;

/* J(p) = q(T) + y_k(T) by a plain solve of the augmented model, for
 * ct_gradient_check over a subset of the parameters. */
static int objective(ct_context *ctx, const double *q, void *ud, double *value) {
  subset *sub = ud;
  const problem *pb = sub->pb;
  for (size_t i = 0; i < sub->k; i++) sub->p[sub->idx[i]] = q[i];
  ct_ode_options o = tight(pb).ode;
  double tout[2] = {0.0, pb->T};
  ct_ode_result *r = NULL;
  int rc = ct_ode_solve(ctx, pb->augmented, sub->p, pb->y0, tout, 2, &o, &r);
  if (rc == CT_OK) *value = r->y[pb->n + 1 + pb->n] + r->y[pb->n + 1 + pb->observed];
  ct_ode_result_free(ctx, r);
  return rc;
}

/* The adjoint gradient's components idx[0..k) against central differences
 * (tol relative, denominators at least floor). */
static void check_differences(ct_context *ctx, const problem *pb, const double *ga,
                              const size_t *idx, size_t k, double floor, double tol) {
  double *p = malloc(pb->np * sizeof *p), q[16], g[16];
  assert_true(p && k <= 16);
  memcpy(p, pb->p, pb->np * sizeof *p);
  for (size_t i = 0; i < k; i++) q[i] = pb->p[idx[i]], g[i] = ga[idx[i]];
  subset sub = {pb, idx, k, p};
  ct_gradcheck_options co = ct_gradcheck_default_options();
  co.eps = 1e-10;
  co.floor = floor;
  co.tol = tol;
  ct_gradcheck_result cr = {0};
  if (ct_gradient_check(ctx, objective, &sub, q, k, g, &co, &cr) != CT_OK)
    fail_msg("%s: %s", pb->name, ct_errmsg(ctx));
  if (getenv("CT_TEST_VERBOSE"))
    printf("%s: adjoint vs central differences worst %.2e at p[%zu]\n", pb->name,
           cr.worst_rel_err, idx[cr.worst]);
  if (!cr.passed)
    fail_msg("%s: dJ/dp[%zu] = %.12e, central differences %.12e (%.2e relative)", pb->name,
             idx[cr.worst], cr.grad[cr.worst], cr.fd[cr.worst], cr.worst_rel_err);
  ct_gradcheck_result_clear(ctx, &cr);
  free(p);
}

/* Relative distance of a and b scaled by the gradient's largest entry. */
static double scaled_error(double a, double b, double scale) {
  return fabs(a - b) / fmax(fmax(fabs(a), fabs(b)), 1e-8 * scale);
}

/* The adjoint gradient against forward sensitivities (rtol_fsa, every
 * component) and central differences (ct_gradient_check, tol_fd). */
static void check_problem(problem *pb, double rtol_fsa, double tol_fd) {
  ct_context *ctx = ct_context_new(NULL);
  double *ga = calloc(pb->np, sizeof *ga), *gf = calloc(pb->np, sizeof *gf);
  assert_true(ga && gf);
  double Ja = adjoint_gradient(ctx, pb, ga);
  double Jf = forward_gradient(ctx, pb, gf);
  if (!ct_rel_close(Ja, Jf, 1e-8)) fail_msg("%s: J = %.12e (adjoint), %.12e (FSA)", pb->name, Ja, Jf);
  double scale = 0, worst = 0;
  size_t jw = 0;
  for (size_t j = 0; j < pb->np; j++) scale = fmax(scale, fabs(gf[j]));
  for (size_t j = 0; j < pb->np; j++) {
    double e = scaled_error(ga[j], gf[j], scale);
    if (e > worst) worst = e, jw = j;
  }
  if (getenv("CT_TEST_VERBOSE"))
    printf("%s: J = %.10e, adjoint vs FSA worst %.2e at p[%zu], largest |dJ/dp| %.3e\n",
           pb->name, Ja, worst, jw, scale);
  if (worst > rtol_fsa)
    fail_msg("%s: dJ/dp[%zu] = %.12e (adjoint), %.12e (FSA): %.2e relative", pb->name, jw,
             ga[jw], gf[jw], worst);
  /* Differences on at most 12 parameters spread over p (each costs two
   * tight solves). Their accuracy is limited by the solves' (about
   * 1e-10 |J| / h, h = 1e-10^(1/3) max(|p_j|, 1)): components below 1e-3
   * of the largest are compared to 1e-8 of it, absolutely. */
  size_t idx[12], k = 0;
  for (size_t j = 0; j < pb->np && k < 12; j += (pb->np + 11) / 12) idx[k++] = j;
  check_differences(ctx, pb, ga, idx, k, 1e-3 * scale, tol_fd);
  free(ga);
  free(gf);
  ct_context_free(ctx);
}

static void test_van_der_pol_mu_1000(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  problem pb = van_der_pol_problem(ctx);
  /* dJ/dmu is 1e-3 of dJ/domega: its differences (h = 0.46) carry ~1e-5. */
  check_problem(&pb, 1e-6, 3e-5);
  problem_free(&pb);
  ct_context_free(ctx);
}

static void test_network_100_species(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  problem pb = network_problem(ctx);
  check_problem(&pb, 1e-6, 1e-5);
  problem_free(&pb);
  ct_context_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_van_der_pol_mu_1000),
      cmocka_unit_test(test_network_100_species),
  };
  return cmocka_run_group_tests_name("sensitivity.stiff_gradients", tests, NULL, NULL);
}
