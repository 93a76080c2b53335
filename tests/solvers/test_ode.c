/* ODE integration through CVODES with AD-supplied Jacobians: SUNDIALS'
 * cvsRoberts_dns reference reproduced, every linear solver on the same
 * problems, Adams on a non-stiff problem, parameter-dependent initial values
 * against the exact solution, events, failures with the time reached and
 * partial results, bad arguments, and fault injection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotangent/ode.h"
#include "ct_test.h"
#include "ct_models.h"
#include "../../solvers/ode_internal.h" /* to check the backends of a compiled model */

/* ---- Models ------------------------------------------------------------------ */

/* 1-D Brusselator with diffusion on n cells, states interleaved (u0, v0,
 * u1, v1, ...): banded with bandwidths 2. Fixed ends. */
static ct_fun *brusselator_1d(ct_context *ctx, size_t cells) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var *y = malloc(2 * cells * sizeof *y), *f = malloc(2 * cells * sizeof *f);
  ct_graph_input(g, "y", 2 * cells, NULL, y);
  const double A = 1.0, B = 3.0, alpha = 0.02 * (double)(cells + 1) * (double)(cells + 1);
  ct_var one = ct_const(g, 1.0), three = ct_const(g, 3.0);
  for (size_t i = 0; i < cells; i++) {
    ct_var u = y[2 * i], v = y[2 * i + 1];
    ct_var ul = i ? y[2 * i - 2] : one, ur = i + 1 < cells ? y[2 * i + 2] : one;
    ct_var vl = i ? y[2 * i - 1] : three, vr = i + 1 < cells ? y[2 * i + 3] : three;
    ct_var u2v = ct_mul(ct_sqr(u), v);
    ct_var lap_u = ct_sub(ct_add(ul, ur), ct_mulc(u, 2)), lap_v = ct_sub(ct_add(vl, vr), ct_mulc(v, 2));
    f[2 * i] = ct_add(ct_sub(ct_addc(u2v, A), ct_mulc(u, B + 1)), ct_mulc(lap_u, alpha));
    f[2 * i + 1] = ct_add(ct_sub(ct_mulc(u, B), u2v), ct_mulc(lap_v, alpha));
  }
  ct_graph_output(g, "f", 2 * cells, f);
  free(y);
  free(f);
  return ct_test_finish(g);
}

/* A seeded random mass-action network: n species, 3n reactions, each
 * A + B -> C or A -> B + C with rate k A B or k A. Not banded. */
static ct_fun *network(ct_context *ctx, size_t n, unsigned seed) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var *c = malloc(n * sizeof *c), *f = malloc(n * sizeof *f);
  ct_graph_input(g, "y", n, NULL, c);
  ct_var zero = ct_const(g, 0);
  for (size_t i = 0; i < n; i++) f[i] = zero;
  for (size_t r = 0; r < 3 * n; r++) {
    size_t a = (size_t)rand_r(&seed) % n, b = (size_t)rand_r(&seed) % n, p = (size_t)rand_r(&seed) % n;
    double k = 0.1 + 2.0 * rand_r(&seed) / RAND_MAX;
    int bimolecular = rand_r(&seed) % 2;
    ct_var rate = bimolecular ? ct_mulc(ct_mul(c[a], c[b]), k) : ct_mulc(c[a], k);
    f[a] = ct_sub(f[a], rate);
    if (bimolecular) {
      f[b] = ct_sub(f[b], rate);
      f[p] = ct_add(f[p], rate);
    } else {
      f[b] = ct_add(f[b], rate);
      f[p] = ct_add(f[p], rate);
    }
  }
  ct_graph_output(g, "f", n, f);
  free(c);
  free(f);
  return ct_test_finish(g);
}

/* ---- SUNDIALS' reference --------------------------------------------------------- */

static void test_robertson_reference(void **state) {
  (void)state;
  ct_ref_line ref[32];
  int n_ref = ct_read_cvs_roberts_reference(ref, 32);
  assert_int_equal(n_ref, 14); /* 12 output times and 2 events */

  ct_context *ctx = ct_context_new(NULL);
  ct_fun *rhs = ct_robertson_rhs(ctx), *roots = ct_robertson_roots(ctx);
  ct_ode *ode = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, roots, &ode), CT_OK);
  ct_fun_free(rhs);
  ct_fun_free(roots);
  assert_int_equal(ct_ode_n_states(ode), 3);
  assert_int_equal(ct_ode_n_roots(ode), 2);
  assert_int_equal(ct_ode_jac_nnz(ode), 7);

  double tout[13] = {0, 0.4}, y0[3] = {1, 0, 0}, atol[3] = {1e-8, 1e-14, 1e-6};
  for (int k = 2; k < 13; k++) tout[k] = tout[k - 1] * 10;
  ct_ode_options o = ct_ode_default_options();
  o.linsol = CT_LINSOL_DENSE;
  o.rtol = 1e-4;
  o.atol_v = atol;
  o.stop_at_roots = 0;
  ct_ode_result *res = NULL;
  assert_int_equal(ct_ode_solve(ctx, ode, NULL, y0, tout, 13, &o, &res), CT_OK);
  assert_int_equal(res->n_out, 13);
  assert_int_equal(res->linsol, CT_LINSOL_DENSE);

  /* Every printed digit of the trajectory and the events. */
  ct_expect_cvs_roberts_reference(ref, n_ref, res, tout);
  assert_int_equal(res->roots[0].which[0], 0);
  assert_int_equal(res->roots[0].which[1], 1);
  assert_int_equal(res->roots[1].which[0], -1);
  assert_int_equal(res->roots[1].which[1], 0);
  /* The statistics SUNDIALS prints for its hand-written Jacobian. */
  assert_int_equal(res->stats.steps, 542);
  assert_int_equal(res->stats.rhs_evals, 754);
  assert_int_equal(res->stats.jac_evals, 11);
  assert_int_equal(res->stats.lin_setups, 107);
  assert_int_equal(res->stats.err_test_fails, 22);
  ct_ode_result_free(ctx, res);
  ct_ode_free(ode);
  ct_context_free(ctx);
}

/* ---- Linear solvers ----------------------------------------------------------------- */

static ct_ode_result *solve_with(ct_context *ctx, const ct_ode *ode, const double *y0,
                                 const double *tout, size_t nt, ct_ode_linsol ls,
                                 ct_ode_method method) {
  ct_ode_options o = ct_ode_default_options();
  o.linsol = ls;
  o.method = method;
  o.rtol = 1e-9;
  o.atol = 1e-11;
  o.max_steps = 100000;
  ct_ode_result *res = NULL;
  int rc = ct_ode_solve(ctx, ode, NULL, y0, tout, nt, &o, &res);
  if (rc != CT_OK) fail_msg("solve with %s: %s", ct_ode_linsol_name(ls), ct_errmsg(ctx));
  return res;
}

static void expect_same_solution(const ct_ode_result *a, const ct_ode_result *b,
                                 double rtol, double atol, const char *what) {
  assert_int_equal(a->n_out, b->n_out);
  for (size_t i = 0; i < a->n_out * a->n; i++)
    if (fabs(a->y[i] - b->y[i]) > atol + rtol * fabs(a->y[i]))
      fail_msg("%s: component %zu differs: %.12g vs %.12g", what, i, a->y[i], b->y[i]);
}

static void check_all_solvers(ct_context *ctx, ct_fun *rhs, const double *y0,
                              ct_ode_linsol want_auto) {
  ct_ode *ode = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, NULL, &ode), CT_OK);
  double tout[] = {0, 0.5, 1, 2, 4};
  ct_ode_result *ref = solve_with(ctx, ode, y0, tout, 5, CT_LINSOL_DENSE, CT_ODE_BDF);
  const ct_ode_linsol others[] = {CT_LINSOL_BAND, CT_LINSOL_KLU, CT_LINSOL_GMRES,
                                  CT_LINSOL_AUTO};
  for (size_t i = 0; i < 4; i++) {
    ct_ode_result *r = solve_with(ctx, ode, y0, tout, 5, others[i], CT_ODE_BDF);
    expect_same_solution(ref, r, 1e-6, 1e-9, ct_ode_linsol_name(others[i]));
    if (others[i] == CT_LINSOL_AUTO) assert_int_equal(r->linsol, want_auto);
    if (others[i] == CT_LINSOL_GMRES) assert_true(r->stats.jtimes_evals > 0);
    else assert_true(r->stats.jac_evals > 0);
    ct_ode_result_free(ctx, r);
  }
  ct_ode_result_free(ctx, ref);
  ct_ode_free(ode);
}

static void test_linear_solvers_agree(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *bru = brusselator_1d(ctx, 100);
  double *y0 = malloc(200 * sizeof *y0);
  for (int i = 0; i < 100; i++) {
    y0[2 * i] = 1 + sin(6.283185307179586 * (i + 1) / 101.0);
    y0[2 * i + 1] = 3;
  }
  check_all_solvers(ctx, bru, y0, CT_LINSOL_BAND);
  ct_fun_free(bru);
  free(y0);

  ct_fun *net = network(ctx, 100, 7);
  double c0[100];
  for (int i = 0; i < 100; i++) c0[i] = 0.5 + 0.01 * i;
  check_all_solvers(ctx, net, c0, CT_LINSOL_KLU);
  ct_fun_free(net);

  ct_fun *rob = ct_robertson_rhs(ctx);
  double r0[3] = {1, 0, 0};
  ct_ode *ode = NULL;
  assert_int_equal(ct_ode_new(ctx, rob, NULL, NULL, &ode), CT_OK);
  double tout[] = {0, 1, 10};
  ct_ode_result *r = solve_with(ctx, ode, r0, tout, 3, CT_LINSOL_AUTO, CT_ODE_BDF);
  assert_int_equal(r->linsol, CT_LINSOL_DENSE);
  ct_ode_result_free(ctx, r);
  ct_ode_free(ode);
  ct_fun_free(rob);
  ct_context_free(ctx);
}

/* ---- Methods, parameters, initial values ------------------------------------------- */

/* Lotka–Volterra with parameters p = (a, b, c, d), and Adams against BDF. */
static void test_adams_nonstiff(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_graph *g = ct_graph_new(ctx);
  ct_var u[2], p[4];
  ct_graph_input(g, "y", 2, NULL, u);
  ct_graph_input(g, "p", 4, NULL, p);
  ct_var xy = ct_mul(u[0], u[1]);
  ct_var f[2] = {ct_sub(ct_mul(p[0], u[0]), ct_mul(p[1], xy)),
                 ct_sub(ct_mul(p[3], xy), ct_mul(p[2], u[1]))};
  ct_graph_output(g, "f", 2, f);
  ct_fun *rhs = ct_test_finish(g);
  ct_ode *ode = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, NULL, &ode), CT_OK);
  assert_int_equal(ct_ode_n_params(ode), 4);
  double pv[4] = {1.5, 1.0, 3.0, 1.0}, y0[2] = {1, 1}, tout[] = {0, 1, 5, 10};
  ct_ode_options o = ct_ode_default_options();
  o.rtol = 1e-10;
  o.atol = 1e-12;
  o.max_steps = 100000;
  ct_ode_result *bdf = NULL, *adams = NULL;
  assert_int_equal(ct_ode_solve(ctx, ode, pv, y0, tout, 4, &o, &bdf), CT_OK);
  o.method = CT_ODE_ADAMS;
  assert_int_equal(ct_ode_solve(ctx, ode, pv, y0, tout, 4, &o, &adams), CT_OK);
  expect_same_solution(bdf, adams, 1e-7, 1e-9, "adams vs bdf");
  assert_int_equal(adams->stats.jac_evals, 0); /* fixed point, no Jacobian */
  /* The parameters are required. */
  ct_ode_result *none = NULL;
  assert_int_equal(ct_ode_solve(ctx, ode, NULL, y0, tout, 4, &o, &none), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "4 parameters"));
  ct_ode_result_free(ctx, bdf);
  ct_ode_result_free(ctx, adams);
  ct_ode_free(ode);
  ct_fun_free(rhs);
  ct_context_free(ctx);
}

/* y' = -k y, y(0) = y0(p) = p1: exact solution p1 exp(-p0 t); t as input. */
static void test_initial_values_from_parameters(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_graph *g = ct_graph_new(ctx);
  ct_var t, y, p[2];
  ct_graph_input(g, "t", 1, NULL, &t);
  ct_graph_input(g, "y", 1, NULL, &y);
  ct_graph_input(g, "p", 2, NULL, p);
  ct_var f = ct_mul(ct_neg(p[0]), y);
  ct_graph_output(g, "f", 1, &f);
  ct_fun *rhs = ct_test_finish(g);
  g = ct_graph_new(ctx);
  ct_graph_input(g, "p", 2, NULL, p);
  ct_graph_output(g, "y0", 1, &p[1]);
  ct_fun *init = ct_test_finish(g);
  ct_ode *ode = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, init, NULL, &ode), CT_OK);
  double pv[2] = {0.7, 2.5}, tout[] = {0, 0.5, 1, 3};
  ct_ode_options o = ct_ode_default_options();
  o.rtol = 1e-10;
  o.atol = 1e-12;
  ct_ode_result *res = NULL;
  assert_int_equal(ct_ode_solve(ctx, ode, pv, NULL, tout, 4, &o, &res), CT_OK);
  for (int k = 0; k < 4; k++)
    assert_true(ct_rel_close(res->y[k], 2.5 * exp(-0.7 * tout[k]), 1e-8));
  ct_ode_result_free(ctx, res);
  ct_ode_free(ode);
  ct_fun_free(rhs);
  ct_fun_free(init);
  ct_context_free(ctx);
}

static void test_stop_at_root(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *rhs = ct_robertson_rhs(ctx), *roots = ct_robertson_roots(ctx);
  ct_ode *ode = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, roots, &ode), CT_OK);
  double y0[3] = {1, 0, 0}, tout[] = {0, 0.1, 0.2, 1, 10};
  ct_ode_options o = ct_ode_default_options();
  ct_ode_result *res = NULL;
  assert_int_equal(ct_ode_solve(ctx, ode, NULL, y0, tout, 5, &o, &res), CT_OK);
  assert_int_equal(res->n_out, 4); /* 0, 0.1, 0.2 and the event */
  assert_int_equal(res->n_roots_found, 1);
  /* y3 = 0.01 defines the event; SUNDIALS prints 0.2639 at rtol 1e-4. */
  if (fabs(res->t[3] - 0.2640) > 3e-4) fail_msg("event at t = %.8g", res->t[3]);
  assert_true(fabs(res->y[3 * 3 + 2] - 0.01) < 1e-7);
  ct_ode_result_free(ctx, res);
  ct_ode_free(ode);
  ct_fun_free(rhs);
  ct_fun_free(roots);
  ct_context_free(ctx);
}

/* ---- Dense output, statistics, guards ------------------------------------------------ */

/* The cvsRoberts_dns run of the reference test, with or without dense output. */
static ct_ode_result *robertson_run(ct_context *ctx, const ct_ode *ode, const double *tout,
                                    int dense) {
  double y0[3] = {1, 0, 0}, atol[3] = {1e-8, 1e-14, 1e-6};
  ct_ode_options o = ct_ode_default_options();
  o.linsol = CT_LINSOL_DENSE;
  o.rtol = 1e-4;
  o.atol_v = atol;
  o.stop_at_roots = 0;
  o.dense_output = dense;
  ct_ode_result *res = NULL;
  assert_int_equal(ct_ode_solve(ctx, ode, NULL, y0, tout, 13, &o, &res), CT_OK);
  return res;
}

/* Dense output steps one step at a time (CV_ONE_STEP) yet takes exactly the
 * steps of CV_NORMAL: same outputs to the bit, same statistics, same events
 * in the same order; and it reproduces SUNDIALS' printed results. */
static void test_dense_output_same_steps(void **state) {
  (void)state;
  ct_ref_line ref[32];
  int n_ref = ct_read_cvs_roberts_reference(ref, 32);
  assert_int_equal(n_ref, 14);
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *rhs = ct_robertson_rhs(ctx), *roots = ct_robertson_roots(ctx);
  ct_ode *ode = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, roots, &ode), CT_OK);
  double tout[13] = {0, 0.4};
  for (int k = 2; k < 13; k++) tout[k] = tout[k - 1] * 10;
  ct_ode_result *plain = robertson_run(ctx, ode, tout, 0);
  ct_ode_result *dense = robertson_run(ctx, ode, tout, 1);
  assert_null(plain->dense);
  assert_non_null(dense->dense);
  ct_expect_cvs_roberts_reference(ref, n_ref, dense, tout);
  assert_int_equal(dense->n_out, plain->n_out);
  assert_memory_equal(dense->y, plain->y, plain->n_out * 3 * sizeof(double));
  const ct_ode_stats *a = &plain->stats, *b = &dense->stats;
  assert_int_equal(b->steps, 542);
  assert_int_equal(b->rhs_evals, 754);
  assert_int_equal(b->jac_evals, 11);
  assert_int_equal(b->lin_setups, 107);
  assert_int_equal(b->err_test_fails, 22);
  assert_int_equal(b->nonlin_iters, a->nonlin_iters);
  assert_int_equal(b->nonlin_conv_fails, a->nonlin_conv_fails);
  assert_true(b->last_step == a->last_step && b->last_order == a->last_order);
  assert_int_equal(dense->n_roots_found, plain->n_roots_found);
  for (size_t i = 0; i < plain->n_roots_found; i++) {
    assert_true(ct_rel_close(dense->roots[i].t, plain->roots[i].t, 1e-10));
    assert_memory_equal(dense->roots[i].which, plain->roots[i].which, 2 * sizeof(int));
  }
  printf("root function evaluations: %ld normal, %ld dense (SUNDIALS prints 570)\n",
         a->root_evals, b->root_evals);
  /* At the output times the interpolant gives the stored outputs. */
  for (size_t k = 0; k < dense->n_out; k++) {
    double y[3];
    assert_int_equal(ct_ode_result_eval(ctx, dense, dense->t[k], 0, y), CT_OK);
    for (int i = 0; i < 3; i++)
      if (fabs(y[i] - dense->y[k * 3 + i]) > 1e-12 * fabs(dense->y[k * 3 + i]) + 1e-300)
        fail_msg("t = %g: y%d = %.17g from the interpolant, %.17g stored", dense->t[k],
                 i + 1, y[i], dense->y[k * 3 + i]);
  }
  ct_ode_result_free(ctx, plain);
  ct_ode_result_free(ctx, dense);
  ct_ode_free(ode);
  ct_fun_free(rhs);
  ct_fun_free(roots);
  ct_context_free(ctx);
}

/* ---- Progress and interruption -------------------------------------------------- */

/* The times a progress callback saw; it asks to stop at call stop_at
 * (0: never). */
typedef struct progress_log {
  double t[4096];
  int n, stop_at;
} progress_log;

static int log_progress(double t, void *ud) {
  progress_log *l = ud;
  if (l->n < 4096) l->t[l->n] = t;
  l->n++;
  return l->stop_at && l->n >= l->stop_at;
}

/* Every statistic but the root evaluations, which stepping one step at a
 * time may count differently (as with dense output). */
static void expect_same_stats(const ct_ode_stats *a, const ct_ode_stats *b) {
  ct_ode_stats x = *a, y = *b;
  x.root_evals = y.root_evals = 0;
  assert_memory_equal(&x, &y, sizeof x);
}

/* The cvsRoberts_dns run with a progress callback: the same outputs to the
 * bit, the same statistics and events, and one call per step with
 * increasing times ending at the last output time. */
static void test_progress_same_results(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *rhs = ct_robertson_rhs(ctx), *roots = ct_robertson_roots(ctx);
  ct_ode *ode = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, roots, &ode), CT_OK);
  double tout[13] = {0, 0.4}, y0[3] = {1, 0, 0}, atol[3] = {1e-8, 1e-14, 1e-6};
  for (int k = 2; k < 13; k++) tout[k] = tout[k - 1] * 10;
  ct_ode_result *plain = robertson_run(ctx, ode, tout, 0);
  ct_ode_options o = ct_ode_default_options();
  o.linsol = CT_LINSOL_DENSE;
  o.rtol = 1e-4;
  o.atol_v = atol;
  o.stop_at_roots = 0;
  static progress_log log;
  memset(&log, 0, sizeof log);
  o.progress = log_progress;
  o.progress_ud = &log;
  ct_ode_result *res = NULL;
  assert_int_equal(ct_ode_solve(ctx, ode, NULL, y0, tout, 13, &o, &res), CT_OK);
  assert_int_equal(res->n_out, plain->n_out);
  assert_memory_equal(res->t, plain->t, plain->n_out * sizeof(double));
  assert_memory_equal(res->y, plain->y, plain->n_out * 3 * sizeof(double));
  expect_same_stats(&plain->stats, &res->stats);
  assert_int_equal(res->n_roots_found, plain->n_roots_found);
  assert_null(res->dense);
  assert_int_equal(log.n, res->stats.steps);
  for (int i = 1; i < log.n; i++)
    if (!(log.t[i] > log.t[i - 1])) fail_msg("call %d: t = %g after %g", i, log.t[i], log.t[i - 1]);
  assert_true(log.t[0] > 0);
  assert_true(log.t[log.n - 1] == tout[12]);
  ct_ode_result_free(ctx, plain);
  ct_ode_result_free(ctx, res);
  ct_ode_free(ode);
  ct_fun_free(rhs);
  ct_fun_free(roots);
  ct_context_free(ctx);
}

/* Returning 1 at the 60th call stops the solve there: CT_ERR_INTERRUPTED,
 * the message, the outputs reached so far (those of a full solve), 60
 * steps; with dense output too, whose interpolants end where it stopped. */
static void test_progress_interrupts(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *rhs = ct_robertson_rhs(ctx);
  ct_ode *ode = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, NULL, &ode), CT_OK);
  double tout[13] = {0, 0.4}, y0[3] = {1, 0, 0};
  for (int k = 2; k < 13; k++) tout[k] = tout[k - 1] * 10;
  ct_ode_options o = ct_ode_default_options();
  ct_ode_result *full = NULL;
  assert_int_equal(ct_ode_solve(ctx, ode, NULL, y0, tout, 13, &o, &full), CT_OK);
  for (int dense = 0; dense <= 1; dense++) {
    progress_log log = {.stop_at = 60};
    o.progress = log_progress;
    o.progress_ud = &log;
    o.dense_output = dense;
    ct_ode_result *res = NULL;
    assert_int_equal(ct_ode_solve(ctx, ode, NULL, y0, tout, 13, &o, &res),
                     CT_ERR_INTERRUPTED);
    assert_non_null(res);
    assert_int_equal(ct_errcode(ctx), CT_ERR_INTERRUPTED);
    assert_int_equal(res->status, CT_ERR_INTERRUPTED);
    assert_int_equal(log.n, 60);
    assert_int_equal(res->stats.steps, 60);
    assert_true(res->t_reached == log.t[59]);
    char want[64];
    snprintf(want, sizeof want, "t = %.6g: interrupted", log.t[59]);
    assert_string_equal(res->message, want);
    assert_non_null(strstr(ct_errmsg(ctx), want));
    assert_true(res->n_out >= 2 && res->n_out < 13);
    assert_true(res->t[res->n_out - 1] <= res->t_reached);
    assert_memory_equal(res->y, full->y, res->n_out * 3 * sizeof(double));
    if (dense) {
      double y[3];
      assert_int_equal(ct_ode_result_eval(ctx, res, res->t_reached, 0, y), CT_OK);
      assert_int_equal(ct_ode_result_eval(ctx, res, res->t_reached * 1.01, 0, y), CT_ERR_ARG);
    }
    ct_ode_result_free(ctx, res);
  }
  ct_ode_result_free(ctx, full);
  ct_ode_free(ode);
  ct_fun_free(rhs);
  ct_context_free(ctx);
}

/* Lotka–Volterra f at y with p = (1.5, 1, 3, 1). */
static void lv_f(const double *y, double *f) {
  f[0] = 1.5 * y[0] - y[0] * y[1];
  f[1] = y[0] * y[1] - 3.0 * y[1];
}

/* Between output times the interpolant matches a tight-tolerance solve to
 * about the integrator's tolerance, and its first derivative matches f; it
 * is CVODES' own interpolant: the same as the outputs of a normal solve at
 * all those times (same first output, hence the same steps). */
static void expect_dense_accurate(ct_context *ctx, const ct_ode *ode, ct_ode_method method) {
  double p[4] = {1.5, 1.0, 3.0, 1.0}, y0[2] = {1, 1}, tout[] = {0, 0.025, 10};
  enum { NREF = 401 };
  double tref[NREF];
  for (int i = 0; i < NREF; i++) tref[i] = 10.0 * i / (NREF - 1);
  ct_ode_options o = ct_ode_default_options();
  o.method = method;
  o.rtol = 1e-12;
  o.atol = 1e-14;
  o.max_steps = 100000;
  ct_ode_result *ref = NULL, *res = NULL, *plain = NULL;
  assert_int_equal(ct_ode_solve(ctx, ode, p, y0, tref, NREF, &o, &ref), CT_OK);
  o.rtol = 1e-6;
  o.atol = 1e-8;
  assert_int_equal(ct_ode_solve(ctx, ode, p, y0, tref, NREF, &o, &plain), CT_OK);
  o.dense_output = 1;
  assert_int_equal(ct_ode_solve(ctx, ode, p, y0, tout, 3, &o, &res), CT_OK);
  assert_int_equal(res->stats.steps, plain->stats.steps);
  double worst = 0, worst_d = 0;
  for (int i = 0; i < NREF; i++) {
    double y[2], dy[2], f[2];
    assert_int_equal(ct_ode_result_eval(ctx, res, tref[i], 0, y), CT_OK);
    assert_int_equal(ct_ode_result_eval(ctx, res, tref[i], 1, dy), CT_OK);
    lv_f(y, f);
    for (int c = 0; c < 2; c++)
      if (!ct_rel_close(y[c], plain->y[i * 2 + c], 1e-11))
        fail_msg("t = %g: y%d = %.17g dense, %.17g from CV_NORMAL", tref[i], c,
                 y[c], plain->y[i * 2 + c]);
    for (int c = 0; c < 2; c++) {
      double e = fabs(y[c] - ref->y[i * 2 + c]) / (1e-6 * fabs(ref->y[i * 2 + c]) + 1e-8);
      double ed = fabs(dy[c] - f[c]) / (1e-6 * fabs(f[c]) + 1e-8);
      if (e > worst) worst = e;
      if (ed > worst_d) worst_d = ed;
    }
  }
  printf("method %d: %ld steps; worst error between outputs %.3g x (rtol |y| + atol), "
         "of y' %.3g x\n", (int)method, res->stats.steps, worst, worst_d);
  if (worst > 100) fail_msg("dense output off by %g tolerances", worst);
  if (worst_d > 1e4) fail_msg("dense y' off by %g tolerances", worst_d);
  ct_ode_result_free(ctx, ref);
  ct_ode_result_free(ctx, res);
  ct_ode_result_free(ctx, plain);
}

static void test_dense_output_between_outputs(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *rhs = ct_lotka_volterra(ctx);
  ct_ode *ode = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, NULL, &ode), CT_OK);
  expect_dense_accurate(ctx, ode, CT_ODE_BDF);
  expect_dense_accurate(ctx, ode, CT_ODE_ADAMS);
  ct_ode_free(ode);
  ct_fun_free(rhs);
  ct_context_free(ctx);
}

/* Out-of-range times, bad orders and results without dense output. */
static void test_dense_output_bad_arguments(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *rhs = ct_lotka_volterra(ctx);
  ct_ode *ode = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, NULL, &ode), CT_OK);
  double p[4] = {1.5, 1.0, 3.0, 1.0}, y0[2] = {1, 1}, tout[] = {1, 3}, y[2];
  ct_ode_options o = ct_ode_default_options();
  ct_ode_result *res = NULL;
  assert_int_equal(ct_ode_solve(ctx, ode, p, y0, tout, 2, &o, &res), CT_OK);
  assert_int_equal(ct_ode_result_eval(ctx, res, 2, 0, y), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "dense_output = 1"));
  ct_ode_result_free(ctx, res);
  o.dense_output = 1;
  assert_int_equal(ct_ode_solve(ctx, ode, p, y0, tout, 2, &o, &res), CT_OK);
  assert_int_equal(ct_ode_result_eval(ctx, res, 1, 0, y), CT_OK);
  assert_true(fabs(y[0] - 1) < 1e-13 && fabs(y[1] - 1) < 1e-13);
  assert_int_equal(ct_ode_result_eval(ctx, res, 3, 0, y), CT_OK);
  assert_true(ct_rel_close(y[0], res->y[2], 1e-12) && ct_rel_close(y[1], res->y[3], 1e-12));
  assert_int_equal(ct_ode_result_eval(ctx, res, 3, 9, y), CT_OK); /* past the order */
  assert_true(y[0] == 0 && y[1] == 0);
  assert_int_equal(ct_ode_result_eval(ctx, res, 1 - 1e-9, 0, y), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "outside the solved interval"));
  assert_int_equal(ct_ode_result_eval(ctx, res, 3 + 1e-9, 0, y), CT_ERR_ARG);
  assert_int_equal(ct_ode_result_eval(ctx, res, NAN, 0, y), CT_ERR_ARG);
  assert_int_equal(ct_ode_result_eval(ctx, res, 2, -1, y), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "negative"));
  assert_int_equal(ct_ode_result_eval(ctx, NULL, 2, 0, y), CT_ERR_ARG);
  ct_ode_result_free(ctx, res);
  ct_ode_free(ode);
  ct_fun_free(rhs);
  ct_context_free(ctx);
}

/* A failed solve keeps its dense output up to the time reached; the step
 * limit is per output interval as with CV_NORMAL. */
static void test_dense_output_failures(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *rhs = ct_robertson_rhs(ctx);
  ct_ode *ode = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, NULL, &ode), CT_OK);
  double r0[3] = {1, 0, 0}, rt[] = {0, 1e5}, y[3];
  ct_ode_options o = ct_ode_default_options();
  o.max_steps = 20;
  o.dense_output = 1;
  ct_ode_result *res = NULL;
  assert_int_equal(ct_ode_solve(ctx, ode, NULL, r0, rt, 2, &o, &res), CT_ERR_SOLVER);
  assert_non_null(strstr(res->message, "too much work"));
  assert_int_equal(res->stats.steps, 20);
  assert_true(res->stats.current_time == res->t_reached);
  assert_int_equal(ct_ode_result_eval(ctx, res, res->t_reached, 0, y), CT_OK);
  assert_true(fabs(y[0] + y[1] + y[2] - 1) < 1e-6); /* mass is conserved */
  assert_int_equal(ct_ode_result_eval(ctx, res, 0.5 * res->t_reached, 0, y), CT_OK);
  assert_int_equal(ct_ode_result_eval(ctx, res, 2 * res->t_reached, 0, y), CT_ERR_ARG);
  ct_ode_result_free(ctx, res);
  ct_ode_free(ode);
  ct_fun_free(rhs);
  ct_context_free(ctx);
}

/* The initial step attempted, the current time and step. */
static void test_stats_steps_and_time(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *rhs = ct_robertson_rhs(ctx);
  ct_ode *ode = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, NULL, &ode), CT_OK);
  double y0[3] = {1, 0, 0}, tout[] = {0, 0.4, 4};
  ct_ode_options o = ct_ode_default_options();
  ct_ode_result *res = NULL;
  assert_int_equal(ct_ode_solve(ctx, ode, NULL, y0, tout, 3, &o, &res), CT_OK);
  const ct_ode_stats *s = &res->stats;
  printf("init_step %.6g, current_time %.6g, current_step %.6g, last_step %.6g\n",
         s->init_step, s->current_time, s->current_step, s->last_step);
  assert_true(s->init_step > 0 && s->init_step < 0.4);
  assert_true(s->current_time >= 4 && s->current_time <= 4 + s->last_step);
  assert_true(s->current_step > 0);
  ct_ode_result_free(ctx, res);
  o.max_step = 1e-6; /* bounds the initial step too */
  o.max_steps = 100000;
  double short_out[] = {0, 1e-3};
  assert_int_equal(ct_ode_solve(ctx, ode, NULL, y0, short_out, 2, &o, &res), CT_OK);
  assert_true(res->stats.init_step > 0 && res->stats.init_step <= 1e-6);
  assert_true(res->stats.current_step <= 1e-6);
  ct_ode_result_free(ctx, res);
  ct_ode_free(ode);
  ct_fun_free(rhs);
  ct_context_free(ctx);
}

/* y' = y - 2 while y > 0 else -y - 2, from y(0) = 1: y = 2 - e^t reaches 0
 * at t = ln 2. Traced with ct_branch (guarded) or ct_select (smooth). */
static ct_ode *kink_model(ct_context *ctx, int guarded) {
  ct_graph *g = ct_graph_new(ctx);
  double at = 1;
  ct_var y;
  ct_graph_input(g, "y", 1, &at, &y);
  ct_var pos = ct_gt(y, ct_const(g, 0)), up = ct_addc(y, -2), down = ct_addc(ct_neg(y), -2);
  ct_var f = guarded ? (ct_branch(pos) ? up : down) : ct_select(pos, up, down);
  ct_graph_output(g, "f", 1, &f);
  ct_fun *rhs = ct_test_finish(g);
  ct_ode *ode = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, NULL, &ode), CT_OK);
  ct_fun_free(rhs);
  return ode;
}

/* A guard flipping mid-solve stops it, results kept; ct_select integrates. */
static void test_retrace_stops_the_solve(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  double y0 = 1, tout[] = {0, 0.25, 0.5, 1, 2};
  ct_ode_options o = ct_ode_default_options();
  ct_ode *ode = kink_model(ctx, 1);
  for (int dense = 0; dense < 2; dense++) {
    o.dense_output = dense;
    ct_ode_result *res = NULL;
    assert_int_equal(ct_ode_solve(ctx, ode, NULL, &y0, tout, 5, &o, &res), CT_ERR_SOLVER);
    assert_int_equal(res->status, CT_ERR_SOLVER);
    assert_int_equal(res->n_out, 3);
    assert_true(fabs(res->y[2] - (2 - exp(0.5))) < 1e-5);
    assert_true(res->t_reached >= 0.5 && res->t_reached <= log(2.0));
    assert_non_null(strstr(res->message, "the right-hand side took a different branch"));
    assert_non_null(strstr(res->message, "re-trace the model"));
    assert_non_null(strstr(ct_errmsg(ctx), "a guard flipped"));
    if (dense) printf("%s\n", res->message);
    ct_ode_result_free(ctx, res);
  }
  ct_ode_free(ode);
  ode = kink_model(ctx, 0);
  o.rtol = 1e-8;
  o.atol = 1e-10;
  ct_ode_result *res = NULL;
  assert_int_equal(ct_ode_solve(ctx, ode, NULL, &y0, tout, 5, &o, &res), CT_OK);
  double exact = -2 + 2 * exp(-(2 - log(2.0)));
  if (fabs(res->y[4] - exact) > 1e-5) fail_msg("y(2) = %.8g, exact %.8g", res->y[4], exact);
  ct_ode_result_free(ctx, res);
  ct_ode_free(ode);
  ct_context_free(ctx);
}

/* ---- Failures ------------------------------------------------------------------------ */

static ct_ode *scalar_model(ct_context *ctx, int which) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var t, y, f;
  ct_graph_input(g, "t", 1, NULL, &t);
  ct_graph_input(g, "y", 1, NULL, &y);
  if (which == 0)
    f = ct_mul(ct_sqrt(ct_subc(1.0, t)), y); /* NaN for t > 1 */
  else
    f = ct_sqr(y); /* y' = y^2 from 1 blows up at t = 1 */
  ct_graph_output(g, "f", 1, &f);
  ct_fun *rhs = ct_test_finish(g);
  ct_ode *ode = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, NULL, &ode), CT_OK);
  ct_fun_free(rhs);
  return ode;
}

static void test_failures_keep_results(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_ode_options o = ct_ode_default_options();
  double y0 = 1, tout[] = {0, 0.5, 0.9, 2};

  /* NaN from the right-hand side past t = 1. */
  ct_ode *ode = scalar_model(ctx, 0);
  ct_ode_result *res = NULL;
  assert_int_equal(ct_ode_solve(ctx, ode, NULL, &y0, tout, 4, &o, &res), CT_ERR_SOLVER);
  assert_non_null(res);
  assert_int_equal(res->status, CT_ERR_SOLVER);
  assert_int_equal(res->n_out, 3); /* 0, 0.5, 0.9 kept */
  assert_true(res->t_reached >= 0.9 && res->t_reached <= 1.0 + 1e-9);
  assert_non_null(strstr(res->message, "t = "));
  assert_non_null(strstr(res->message, "NaN in component 0"));
  assert_non_null(strstr(ct_errmsg(ctx), res->message));
  ct_ode_result_free(ctx, res);
  ct_ode_free(ode);

  /* Blow-up: the step size collapses before t = 1. */
  ode = scalar_model(ctx, 1);
  assert_true(ct_ode_solve(ctx, ode, NULL, &y0, tout, 4, &o, &res) < 0);
  assert_int_equal(res->n_out, 3);
  assert_true(res->t_reached > 0.9 && res->t_reached < 1.0);
  assert_true(strncmp(res->message, "t = 0.9", 7) == 0 || strncmp(res->message, "t = 1", 5) == 0);
  ct_ode_result_free(ctx, res);
  ct_ode_free(ode);

  /* Too much work. */
  ct_fun *rhs = ct_robertson_rhs(ctx);
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, NULL, &ode), CT_OK);
  double r0[3] = {1, 0, 0}, rt[] = {0, 1e5};
  o.max_steps = 20;
  assert_int_equal(ct_ode_solve(ctx, ode, NULL, r0, rt, 2, &o, &res), CT_ERR_SOLVER);
  assert_non_null(strstr(res->message, "too much work"));
  assert_int_equal(res->n_out, 1);
  assert_true(res->t_reached > 0 && res->t_reached < 1e5);
  assert_int_equal(res->stats.steps, 20);
  ct_ode_result_free(ctx, res);
  ct_ode_free(ode);
  ct_fun_free(rhs);
  ct_context_free(ctx);
}

static void test_bad_arguments(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *rhs = ct_robertson_rhs(ctx);
  ct_ode *ode = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, NULL, &ode), CT_OK);
  double y0[3] = {1, 0, 0}, tout[] = {0, 1}, bad_t[] = {0, 2, 1};
  ct_ode_options o = ct_ode_default_options();
  ct_ode_result *res = (ct_ode_result *)1;
  o.rtol = -1;
  assert_int_equal(ct_ode_solve(ctx, ode, NULL, y0, tout, 2, &o, &res), CT_ERR_ARG);
  assert_null(res);
  assert_non_null(strstr(ct_errmsg(ctx), "rtol must be positive"));
  o = ct_ode_default_options();
  double atol[3] = {1e-8, 0, 1e-8};
  o.atol_v = atol;
  assert_int_equal(ct_ode_solve(ctx, ode, NULL, y0, tout, 2, &o, &res), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "atol[1] must be positive"));
  o = ct_ode_default_options();
  assert_int_equal(ct_ode_solve(ctx, ode, NULL, y0, bad_t, 3, &o, &res), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "output times must increase"));
  assert_int_equal(ct_ode_solve(ctx, ode, NULL, NULL, tout, 2, &o, &res), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "pass y0"));
  ct_ode_linsol ls;
  assert_int_equal(ct_ode_linsol_from_name(ctx, "klu", &ls), CT_OK);
  assert_int_equal(ls, CT_LINSOL_KLU);
  assert_int_equal(ct_ode_linsol_from_name(ctx, "lu", &ls), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "unknown linear solver 'lu'"));
  ct_ode_free(ode);

  /* Models with the wrong inputs or outputs. */
  ct_graph *g = ct_graph_new(ctx);
  ct_var x[2];
  ct_graph_input(g, "x", 2, NULL, x);
  ct_graph_output(g, "f", 2, x);
  ct_fun *wrong = ct_test_finish(g);
  assert_int_equal(ct_ode_new(ctx, wrong, NULL, NULL, &ode), CT_ERR_ARG);
  assert_null(ode);
  assert_non_null(strstr(ct_errmsg(ctx), "'x' is not one of t, y, p"));
  ct_fun_free(wrong);
  g = ct_graph_new(ctx);
  ct_graph_input(g, "y", 2, NULL, x);
  ct_graph_output(g, "rate", 2, x);
  wrong = ct_test_finish(g);
  assert_int_equal(ct_ode_new(ctx, wrong, NULL, NULL, &ode), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "no output 'f'"));
  ct_fun_free(wrong);
  g = ct_graph_new(ctx);
  ct_graph_input(g, "y", 2, NULL, x);
  ct_graph_output(g, "f", 1, x);
  wrong = ct_test_finish(g);
  assert_int_equal(ct_ode_new(ctx, wrong, NULL, NULL, &ode), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "output 'f' has 1 components but 'y' has 2"));
  ct_fun_free(wrong);
  ct_ode_free(NULL);
  ct_ode_result_free(ctx, NULL);
  ct_fun_free(rhs);
  ct_context_free(ctx);
}

/* ---- Fault injection ------------------------------------------------------------------ */

static int build_and_solve(ct_context *ctx, void *ud) {
  const ct_fun *rhs = ud;
  ct_ode *ode = NULL;
  ct_ode_result *res = NULL;
  double y0[3] = {1, 0, 0}, tout[] = {0, 0.4, 4};
  int rc = ct_ode_new(ctx, rhs, NULL, NULL, &ode);
  if (rc == CT_OK) rc = ct_ode_solve(ctx, ode, NULL, y0, tout, 3, NULL, &res);
  ct_ode_result_free(ctx, res);
  ct_ode_free(ode);
  return rc;
}

/* build_and_solve with dense output, evaluated between the outputs. */
static int build_and_solve_dense(ct_context *ctx, void *ud) {
  const ct_fun *rhs = ud;
  ct_ode *ode = NULL;
  ct_ode_result *res = NULL;
  double y0[3] = {1, 0, 0}, tout[] = {0, 0.4, 40}, y[3];
  ct_ode_options o = ct_ode_default_options();
  o.dense_output = 1;
  int rc = ct_ode_new(ctx, rhs, NULL, NULL, &ode);
  if (rc == CT_OK) rc = ct_ode_solve(ctx, ode, NULL, y0, tout, 3, &o, &res);
  if (rc == CT_OK) rc = ct_ode_result_eval(ctx, res, 20, 0, y);
  ct_ode_result_free(ctx, res);
  ct_ode_free(ode);
  return rc;
}

/* build_and_solve with a progress callback and dense output. */
static int build_and_solve_progress(ct_context *ctx, void *ud) {
  const ct_fun *rhs = ud;
  ct_ode *ode = NULL;
  ct_ode_result *res = NULL;
  double y0[3] = {1, 0, 0}, tout[] = {0, 0.4, 40};
  progress_log log = {.stop_at = 0};
  ct_ode_options o = ct_ode_default_options();
  o.dense_output = 1;
  o.progress = log_progress;
  o.progress_ud = &log;
  int rc = ct_ode_new(ctx, rhs, NULL, NULL, &ode);
  if (rc == CT_OK) rc = ct_ode_solve(ctx, ode, NULL, y0, tout, 3, &o, &res);
  ct_ode_result_free(ctx, res);
  ct_ode_free(ode);
  return rc;
}

/* ---- Compiled models (ct_ode_jit) --------------------------------------------- */

/* Counts the warnings logged (ct_context_set_log_fn). */
/* A callback right-hand side f = -y (ct_ode_jit has nothing to compile). */
static int lv_cb_f(double t, const double *y, const double *p, double *f, void *ud) {
  (void)t, (void)p, (void)ud;
  f[0] = -y[0];
  return 0;
}

static void count_warnings(void *ud, ct_log_level level, const char *message) {
  (void)message;
  if (level == CT_LOG_WARNING) ++*(int *)ud;
}

/* Two results of the same run are the same to the bit: times, states,
 * statistics. */
static void expect_bitwise_same(const ct_ode_result *a, const ct_ode_result *b, size_t n) {
  assert_int_equal(a->n_out, b->n_out);
  assert_memory_equal(a->t, b->t, a->n_out * sizeof *a->t);
  assert_memory_equal(a->y, b->y, a->n_out * n * sizeof *a->y);
  assert_memory_equal(&a->stats, &b->stats, sizeof a->stats);
}

/* The cvsRoberts_dns run on a compiled model: every function is compiled,
 * SUNDIALS' printed digits and statistics are reproduced, and the result is
 * bitwise the interpreter's, with the dense Jacobian and with GMRES (JVP). */
static void test_jit_robertson_reference(void **state) {
  (void)state;
  ct_ref_line ref[32];
  int n_ref = ct_read_cvs_roberts_reference(ref, 32);
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *rhs = ct_robertson_rhs(ctx), *roots = ct_robertson_roots(ctx);
  ct_ode *interp = NULL, *jit = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, roots, &interp), CT_OK);
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, roots, &jit), CT_OK);
  ct_fun_free(rhs);
  ct_fun_free(roots);
  assert_int_equal(ct_ode_jit(ctx, jit, NULL), CT_OK);
  assert_int_equal(ct_ode_jit(ctx, jit, NULL), CT_OK); /* again: nothing to do */
  assert_true(jit->jit.on);
  const ct_fun *fs[] = {jit->rhs.f, jit->jac.f, jit->jvp.f, jit->roots.f};
  for (size_t i = 0; i < 4; i++) assert_int_equal(ct_fun_backend(fs[i]), CT_BACKEND_JIT);
  assert_int_equal(ct_fun_backend(interp->jac.f), CT_BACKEND_INTERPRETER);
  assert_true(jit->work >= ct_fun_work_size(jit->jac.f));
  assert_true(jit->work >= ct_fun_work_size(jit->rhs.f));

  double tout[13] = {0, 0.4};
  for (int k = 2; k < 13; k++) tout[k] = tout[k - 1] * 10;
  ct_ode_result *a = robertson_run(ctx, interp, tout, 0), *b = robertson_run(ctx, jit, tout, 0);
  ct_expect_cvs_roberts_reference(ref, n_ref, b, tout);
  assert_int_equal(b->stats.steps, 542);
  assert_int_equal(b->stats.rhs_evals, 754);
  assert_int_equal(b->stats.jac_evals, 11);
  assert_int_equal(b->stats.lin_setups, 107);
  assert_int_equal(b->stats.err_test_fails, 22);
  expect_bitwise_same(a, b, 3);
  ct_ode_result_free(ctx, a);
  ct_ode_result_free(ctx, b);

  double y0[3] = {1, 0, 0};
  a = solve_with(ctx, interp, y0, tout, 8, CT_LINSOL_GMRES, CT_ODE_BDF);
  b = solve_with(ctx, jit, y0, tout, 8, CT_LINSOL_GMRES, CT_ODE_BDF);
  expect_bitwise_same(a, b, 3);
  ct_ode_result_free(ctx, a);
  ct_ode_result_free(ctx, b);
  ct_ode_free(interp);
  ct_ode_free(jit);
  ct_context_free(ctx);
}

/* ct_ode_jit's arguments and fallbacks: NULL model, a callback model
 * (nothing to do), and a compiler that cannot run: one warning, the model
 * stays interpreted and still solves. */
static void test_jit_fallbacks(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  int warnings = 0;
  ct_context_set_log_fn(ctx, count_warnings, &warnings);
  assert_int_equal(ct_ode_jit(ctx, NULL, NULL), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "ode is NULL"));

  ct_ode_callbacks cb = {0};
  cb.n = 1;
  cb.f = lv_cb_f;
  ct_ode *cbm = NULL;
  assert_int_equal(ct_ode_new_callbacks(ctx, &cb, &cbm), CT_OK);
  assert_int_equal(ct_ode_jit(ctx, cbm, NULL), CT_OK);
  ct_ode_free(cbm);

  ct_fun *rhs = ct_robertson_rhs(ctx);
  ct_ode *ode = NULL;
  assert_int_equal(ct_ode_new(ctx, rhs, NULL, NULL, &ode), CT_OK);
  ct_jit_options bad = {"/nonexistent/cotangent-cc", NULL, 0, 0};
  assert_int_equal(ct_ode_jit(ctx, ode, &bad), CT_OK);
  assert_int_equal(warnings, 1); /* one warning for the model, not one per function */
  assert_false(ode->jit.on);
  assert_int_equal(ct_fun_backend(ode->jac.f), CT_BACKEND_INTERPRETER);
  double tout[3] = {0, 0.4, 4}, y0[3] = {1, 0, 0};
  ct_ode_result *res = solve_with(ctx, ode, y0, tout, 3, CT_LINSOL_DENSE, CT_ODE_BDF);
  assert_int_equal(res->n_out, 3);
  ct_ode_result_free(ctx, res);
  ct_ode_free(ode);
  ct_fun_free(rhs);
  ct_context_free(ctx);
}

/* Builds, compiles and solves a small Robertson run (fault sweep). */
static int build_jit_and_solve(ct_context *ctx, void *ud) {
  ct_ode *ode = NULL;
  ct_ode_result *res = NULL;
  double tout[3] = {0, 0.4, 4}, y0[3] = {1, 0, 0};
  ct_ode_options o = ct_ode_default_options();
  ct_jit_options jo = {NULL, "-O1", 0, 0};
  int rc = ct_ode_new(ctx, ud, NULL, NULL, &ode);
  if (rc == CT_OK) rc = ct_ode_jit(ctx, ode, &jo);
  if (rc == CT_OK) rc = ct_ode_solve(ctx, ode, NULL, y0, tout, 3, &o, &res);
  ct_ode_result_free(ctx, res);
  ct_ode_free(ode);
  return rc;
}

static void test_fault_injection(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *rhs = ct_robertson_rhs(ctx);
  assert_true(ct_test_fault_sweep(build_and_solve, rhs) > 20);
  assert_true(ct_test_fault_sweep(build_and_solve_dense, rhs) > 20);
  assert_true(ct_test_fault_sweep(build_and_solve_progress, rhs) > 20);
  assert_true(ct_test_fault_sweep(build_jit_and_solve, rhs) > 20);
  ct_fun_free(rhs);
  ct_context_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_robertson_reference),
      cmocka_unit_test(test_linear_solvers_agree),
      cmocka_unit_test(test_adams_nonstiff),
      cmocka_unit_test(test_initial_values_from_parameters),
      cmocka_unit_test(test_stop_at_root),
      cmocka_unit_test(test_failures_keep_results),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_dense_output_same_steps),
      cmocka_unit_test(test_dense_output_between_outputs),
      cmocka_unit_test(test_dense_output_bad_arguments),
      cmocka_unit_test(test_dense_output_failures),
      cmocka_unit_test(test_stats_steps_and_time),
      cmocka_unit_test(test_retrace_stops_the_solve),
      cmocka_unit_test(test_progress_same_results),
      cmocka_unit_test(test_progress_interrupts),
      cmocka_unit_test(test_jit_robertson_reference),
      cmocka_unit_test(test_jit_fallbacks),
      cmocka_unit_test(test_fault_injection),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
