/* ODE models from user C callbacks: SUNDIALS' cvsRoberts_dns reproduced
 * with a hand-written dense Jacobian, difference quotients only where
 * allowed (else a clear error), GMRES with a JVP callback, KLU with a sparse
 * Jacobian callback, failing callbacks reported with the time reached,
 * refusals (ARKODE, sensitivities without dfdp_v, adjoints), bad arguments,
 * and fault injection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotangent.h"
#include "ct_test.h"
#include "ct_models.h"

/* ---- Robertson, written as in SUNDIALS' cvsRoberts_dns ------------------------ */

/* What the callbacks count and when they fail (fail_after: the f or jac
 * callback returns `fail_rc` for t > fail_after; 0 never fails). */
typedef struct rob_ud {
  long f_calls, jac_calls, jvp_calls;
  double fail_after;
  int fail_rc, fail_jac;
} rob_ud;

static int rob_f(double t, const double *y, const double *p, double *ydot, void *ud) {
  (void)p;
  rob_ud *u = ud;
  u->f_calls++;
  if (u->fail_after > 0 && !u->fail_jac && t > u->fail_after) return u->fail_rc;
  double yd1 = -0.04 * y[0] + 1.0e4 * y[1] * y[2];
  double yd3 = 3.0e7 * y[1] * y[1];
  ydot[0] = yd1;
  ydot[1] = -yd1 - yd3;
  ydot[2] = yd3;
  return 0;
}

/* Column-major J[i + 3j] = df_i/dy_j. */
static int rob_jac(double t, const double *y, const double *p, double *J, void *ud) {
  (void)p;
  rob_ud *u = ud;
  u->jac_calls++;
  if (u->fail_after > 0 && u->fail_jac && t > u->fail_after) return u->fail_rc;
  J[0 + 0 * 3] = -0.04;
  J[0 + 1 * 3] = 1.0e4 * y[2];
  J[0 + 2 * 3] = 1.0e4 * y[1];
  J[1 + 0 * 3] = 0.04;
  J[1 + 1 * 3] = -1.0e4 * y[2] - 6.0e7 * y[1];
  J[1 + 2 * 3] = -1.0e4 * y[1];
  J[2 + 1 * 3] = 6.0e7 * y[1];
  return 0;
}

/* The 7 structural nonzeros, CSC: column 0 rows 0,1; column 1 rows 0,1,2;
 * column 2 rows 0,1. */
static size_t rob_colptr[4] = {0, 2, 5, 7}, rob_rowind[7] = {0, 1, 0, 1, 2, 0, 1};
static const ct_sparsity rob_pattern = {3, 3, 7, rob_colptr, rob_rowind};

static int rob_jac_sparse(double t, const double *y, const double *p, double *v, void *ud) {
  double J[9] = {0};
  int rc = rob_jac(t, y, p, J, ud);
  for (size_t j = 0; j < 3; j++)
    for (size_t q = rob_colptr[j]; q < rob_colptr[j + 1]; q++) v[q] = J[rob_rowind[q] + 3 * j];
  return rc;
}

static int rob_jvp(double t, const double *y, const double *p, const double *v,
                   double *Jv, void *ud) {
  (void)t, (void)p;
  rob_ud *u = ud;
  u->jvp_calls++;
  double a = -0.04 * v[0] + 1.0e4 * y[2] * v[1] + 1.0e4 * y[1] * v[2];
  double c = 6.0e7 * y[1] * v[1];
  Jv[0] = a;
  Jv[1] = -a - c;
  Jv[2] = c;
  return 0;
}

static int rob_roots(double t, const double *y, const double *p, double *g, void *ud) {
  (void)t, (void)p, (void)ud;
  g[0] = y[0] - 1.0e-4;
  g[1] = y[2] - 0.01;
  return 0;
}

static ct_ode_callbacks rob_callbacks(rob_ud *u) {
  ct_ode_callbacks cb = {0};
  cb.n = 3;
  cb.user_data = u;
  cb.f = rob_f;
  return cb;
}

static ct_ode *new_model(ct_context *ctx, const ct_ode_callbacks *cb) {
  ct_ode *ode = NULL;
  if (ct_ode_new_callbacks(ctx, cb, &ode) != CT_OK) fail_msg("model: %s", ct_errmsg(ctx));
  return ode;
}

/* ---- SUNDIALS' reference ------------------------------------------------------ */

static const double y_init[3] = {1, 0, 0};

/* The reference run's first nt times: 0, 0.4, 4, ..., 4e10 (nt <= 13). */
static void reference_times(double *tout, int nt) {
  tout[0] = 0;
  tout[1] = 0.4;
  for (int k = 2; k < nt; k++) tout[k] = tout[k - 1] * 10;
}

static void test_robertson_reference(void **state) {
  (void)state;
  ct_ref_line ref[32];
  int n_ref = ct_read_cvs_roberts_reference(ref, 32);
  assert_int_equal(n_ref, 14);

  ct_context *ctx = ct_context_new(NULL);
  rob_ud u = {0};
  ct_ode_callbacks cb = rob_callbacks(&u);
  cb.jac_dense = rob_jac;
  cb.n_roots = 2;
  cb.roots = rob_roots;
  ct_ode *ode = new_model(ctx, &cb);
  assert_int_equal(ct_ode_n_states(ode), 3);
  assert_int_equal(ct_ode_n_params(ode), 0);
  assert_int_equal(ct_ode_n_roots(ode), 2);
  assert_int_equal(ct_ode_jac_nnz(ode), 9);

  double tout[13], atol[3] = {1e-8, 1e-14, 1e-6};
  reference_times(tout, 13);
  ct_ode_options o = ct_ode_default_options();
  o.linsol = CT_LINSOL_DENSE;
  o.rtol = 1e-4;
  o.atol_v = atol;
  o.stop_at_roots = 0;
  ct_ode_result *res = NULL;
  assert_int_equal(ct_ode_solve(ctx, ode, NULL, y_init, tout, 13, &o, &res), CT_OK);
  assert_int_equal(res->n_out, 13);

  ct_expect_cvs_roberts_reference(ref, n_ref, res, tout);
  assert_int_equal(res->roots[0].which[1], 1);
  assert_int_equal(res->roots[1].which[0], -1);
  /* The statistics SUNDIALS prints for its hand-written Jacobian. */
  assert_int_equal(res->stats.steps, 542);
  assert_int_equal(res->stats.rhs_evals, 754);
  assert_int_equal(res->stats.jac_evals, 11);
  assert_int_equal(res->stats.lin_setups, 107);
  assert_int_equal(res->stats.err_test_fails, 22);
  assert_int_equal(u.jac_calls, 11);
  ct_ode_result_free(ctx, res);
  ct_ode_free(ode);
  ct_context_free(ctx);
}

/* ---- Missing derivatives --------------------------------------------------------- */

/* Robertson to t = 4e4 at tight tolerances with the given linear solver. */
static int solve_rob(ct_context *ctx, const ct_ode *ode, ct_ode_linsol ls,
                     ct_ode_result **res) {
  double tout[7];
  reference_times(tout, 7);
  ct_ode_options o = ct_ode_default_options();
  o.linsol = ls;
  o.rtol = 1e-8;
  o.atol = 1e-12;
  o.max_steps = 100000;
  return ct_ode_solve(ctx, ode, NULL, y_init, tout, 7, &o, res);
}

static void expect_same(const ct_ode_result *a, const ct_ode_result *b, double rtol) {
  assert_int_equal(a->n_out, b->n_out);
  for (size_t i = 0; i < a->n_out * 3; i++)
    if (fabs(a->y[i] - b->y[i]) > rtol * fmax(fabs(a->y[i]), fabs(b->y[i])) + 1e-10)
      fail_msg("component %zu: %.10e vs %.10e", i, a->y[i], b->y[i]);
}

static void test_difference_quotients(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  rob_ud u = {0};
  ct_ode_callbacks cb = rob_callbacks(&u);
  cb.jac_dense = rob_jac;
  ct_ode *exact = new_model(ctx, &cb);
  ct_ode_result *ref = NULL, *res = NULL;
  assert_int_equal(solve_rob(ctx, exact, CT_LINSOL_DENSE, &ref), CT_OK);

  /* No Jacobian, quotients not allowed: a clear error, nothing computed. */
  cb.jac_dense = NULL;
  ct_ode *bare = new_model(ctx, &cb);
  assert_int_equal(ct_ode_jac_nnz(bare), 9);
  u.f_calls = 0;
  assert_int_equal(solve_rob(ctx, bare, CT_LINSOL_DENSE, &res), CT_ERR_ARG);
  assert_null(res);
  assert_int_equal(u.f_calls, 0);
  assert_non_null(strstr(ct_errmsg(ctx), "jac_dense or jac_sparse"));
  assert_non_null(strstr(ct_errmsg(ctx), "allow_difference_quotients"));
  assert_int_equal(solve_rob(ctx, bare, CT_LINSOL_AUTO, &res), CT_ERR_ARG);
  assert_int_equal(solve_rob(ctx, bare, CT_LINSOL_GMRES, &res), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "the gmres linear solver needs the jvp callback"));
  assert_int_equal(solve_rob(ctx, bare, CT_LINSOL_KLU, &res), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "no difference quotients for sparse"));
  ct_ode_free(bare);

  /* Allowed: CVODES' quotients, same solution to the tolerance. */
  cb.allow_difference_quotients = 1;
  ct_ode *dq = new_model(ctx, &cb);
  const ct_ode_linsol solvers[] = {CT_LINSOL_DENSE, CT_LINSOL_BAND, CT_LINSOL_GMRES};
  for (size_t i = 0; i < 3; i++) {
    assert_int_equal(solve_rob(ctx, dq, solvers[i], &res), CT_OK);
    assert_int_equal(res->linsol, solvers[i]);
    expect_same(ref, res, 1e-5);
    ct_ode_result_free(ctx, res);
    res = NULL;
  }
  assert_int_equal(solve_rob(ctx, dq, CT_LINSOL_KLU, &res), CT_ERR_ARG);
  ct_ode_free(dq);
  ct_ode_result_free(ctx, ref);
  ct_ode_free(exact);
  ct_context_free(ctx);
}

/* ---- GMRES and KLU ---------------------------------------------------------------- */

static void test_jvp_and_sparse(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  rob_ud u = {0};
  ct_ode_callbacks cb = rob_callbacks(&u);
  cb.jac_dense = rob_jac;
  ct_ode *dense = new_model(ctx, &cb);
  ct_ode_result *ref = NULL, *res = NULL;
  assert_int_equal(solve_rob(ctx, dense, CT_LINSOL_DENSE, &ref), CT_OK);
  /* The full pattern serves band and KLU too. */
  assert_int_equal(solve_rob(ctx, dense, CT_LINSOL_KLU, &res), CT_OK);
  expect_same(ref, res, 1e-6);
  ct_ode_result_free(ctx, res);

  cb.jac_dense = NULL;
  cb.jvp = rob_jvp;
  ct_ode *mf = new_model(ctx, &cb);
  assert_int_equal(solve_rob(ctx, mf, CT_LINSOL_GMRES, &res), CT_OK);
  assert_true(u.jvp_calls > 0);
  assert_int_equal(res->stats.jtimes_evals, u.jvp_calls);
  expect_same(ref, res, 1e-5);
  ct_ode_result_free(ctx, res);

  cb.jvp = NULL;
  cb.jac_sparse = rob_jac_sparse;
  cb.jac_pattern = &rob_pattern;
  ct_ode *sp = new_model(ctx, &cb);
  assert_int_equal(ct_ode_jac_nnz(sp), 7);
  const ct_ode_linsol solvers[] = {CT_LINSOL_KLU, CT_LINSOL_DENSE, CT_LINSOL_BAND};
  for (size_t i = 0; i < 3; i++) {
    assert_int_equal(solve_rob(ctx, sp, solvers[i], &res), CT_OK);
    expect_same(ref, res, 1e-6);
    ct_ode_result_free(ctx, res);
  }
  ct_ode_free(sp);
  ct_ode_free(mf);
  ct_ode_result_free(ctx, ref);
  ct_ode_free(dense);
  ct_context_free(ctx);
}

/* ---- Failures ---------------------------------------------------------------------- */

static void test_failing_callbacks(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  rob_ud u = {0};
  ct_ode_callbacks cb = rob_callbacks(&u);
  cb.jac_dense = rob_jac;
  ct_ode *ode = new_model(ctx, &cb);
  ct_ode_result *res = NULL;

  /* f fails for t > 1: the result keeps t = 0 and 0.4, the message names
   * the callback, its return value and the time reached. */
  u.fail_after = 1.0;
  u.fail_rc = -3;
  assert_int_equal(solve_rob(ctx, ode, CT_LINSOL_DENSE, &res), CT_ERR_SOLVER);
  assert_non_null(res);
  assert_int_equal(res->status, CT_ERR_SOLVER);
  assert_int_equal(res->n_out, 2);
  assert_true(res->t_reached >= 0.4 && res->t_reached <= 4);
  assert_non_null(strstr(res->message, "the f callback returned -3 at t = "));
  assert_true(strncmp(res->message, "t = ", 4) == 0);
  assert_non_null(strstr(ct_errmsg(ctx), "the f callback returned -3"));
  ct_ode_result_free(ctx, res);

  /* The Jacobian callback fails unrecoverably. */
  u.fail_jac = 1;
  assert_int_equal(solve_rob(ctx, ode, CT_LINSOL_DENSE, &res), CT_ERR_SOLVER);
  assert_non_null(strstr(res->message, "the jac_dense callback returned -3"));
  assert_true(res->t_reached >= 0.4);
  ct_ode_result_free(ctx, res);

  /* A recoverable (positive) failure of f every time past t = 1: CVODES
   * gives up and the cause still names f. */
  u.fail_jac = 0;
  u.fail_rc = 1;
  assert_int_equal(solve_rob(ctx, ode, CT_LINSOL_DENSE, &res), CT_ERR_SOLVER);
  assert_non_null(strstr(res->message, "the f callback returned 1"));
  ct_ode_result_free(ctx, res);
  ct_ode_free(ode);
  ct_context_free(ctx);
}

/* ---- Refusals and bad arguments ----------------------------------------------------- */

static void test_refusals(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  rob_ud u = {0};
  ct_ode_callbacks cb = rob_callbacks(&u);
  cb.jac_dense = rob_jac;
  cb.jvp = rob_jvp;
  ct_ode *ode = new_model(ctx, &cb);

  ct_fsa *fsa = NULL;
  assert_int_equal(ct_fsa_new(ctx, ode, NULL, 0, &fsa), CT_ERR_ARG);
  assert_null(fsa);
  assert_non_null(strstr(ct_errmsg(ctx), "forward sensitivities of a callback model "
                                         "need the dfdp_v callback"));
  ct_graph *g = ct_graph_new(ctx);
  ct_var y[3];
  ct_graph_input(g, "y", 3, NULL, y);
  ct_graph_output(g, "phi", 1, &y[0]);
  ct_fun *phi = NULL;
  assert_int_equal(ct_graph_finalize(g, &phi), CT_OK);
  ct_graph_free(g);
  ct_asa *asa = NULL; /* adjoints of callback models are tested in tests/adjoint */
  if (ct_asa_new(ctx, ode, NULL, phi, &asa) != CT_OK) assert_null(asa);
  ct_asa_free(asa);
  ct_fun_free(phi);

  /* ARKODE methods; Adams needs no derivative. */
  ct_ode_result *res = NULL;
  double tout[] = {0, 0.4};
  ct_ode_options o = ct_ode_default_options();
  o.method = CT_ODE_DIRK;
  assert_int_equal(ct_ode_solve(ctx, ode, NULL, y_init, tout, 2, &o, &res), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "ARKODE methods"));
  o.method = CT_ODE_ADAMS;
  o.max_steps = 100000;
  double t_short[] = {0, 1e-3};
  assert_int_equal(ct_ode_solve(ctx, ode, NULL, y_init, t_short, 2, &o, &res), CT_OK);
  ct_ode_result_free(ctx, res);
  res = NULL;
  /* Initial values are the caller's. */
  o.method = CT_ODE_BDF;
  assert_int_equal(ct_ode_solve(ctx, ode, NULL, NULL, tout, 2, &o, &res), CT_ERR_ARG);
  ct_ode_free(ode);

  ct_ode *bad = NULL;
  assert_int_equal(ct_ode_new_callbacks(ctx, NULL, &bad), CT_ERR_ARG);
  ct_ode_callbacks c2 = cb;
  c2.f = NULL;
  assert_int_equal(ct_ode_new_callbacks(ctx, &c2, &bad), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "callback f"));
  c2 = cb;
  c2.n = 0;
  assert_int_equal(ct_ode_new_callbacks(ctx, &c2, &bad), CT_ERR_ARG);
  c2 = cb;
  c2.jac_sparse = rob_jac_sparse;
  c2.jac_pattern = &rob_pattern;
  assert_int_equal(ct_ode_new_callbacks(ctx, &c2, &bad), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "not both"));
  c2.jac_dense = NULL;
  c2.jac_pattern = NULL;
  assert_int_equal(ct_ode_new_callbacks(ctx, &c2, &bad), CT_ERR_ARG);
  size_t colptr[4] = {0, 2, 5, 7}, rowind[7] = {0, 1, 0, 1, 3, 0, 1};
  ct_sparsity wrong = {3, 3, 7, colptr, rowind};
  c2.jac_pattern = &wrong;
  assert_int_equal(ct_ode_new_callbacks(ctx, &c2, &bad), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "column 1"));
  wrong.nrows = 4;
  assert_int_equal(ct_ode_new_callbacks(ctx, &c2, &bad), CT_ERR_ARG);
  c2 = cb;
  c2.roots = rob_roots;
  assert_int_equal(ct_ode_new_callbacks(ctx, &c2, &bad), CT_ERR_ARG);
  assert_null(bad);
  ct_context_free(ctx);
}

/* ---- Fault injection ------------------------------------------------------------------ */

static int build_and_solve(ct_context *ctx, void *ud) {
  (void)ud;
  rob_ud u = {0};
  ct_ode_callbacks cb = rob_callbacks(&u);
  cb.jac_sparse = rob_jac_sparse;
  cb.jac_pattern = &rob_pattern;
  cb.n_roots = 2;
  cb.roots = rob_roots;
  ct_ode *ode = NULL;
  ct_ode_result *res = NULL;
  double tout[] = {0, 0.4, 4};
  int rc = ct_ode_new_callbacks(ctx, &cb, &ode);
  if (rc == CT_OK) rc = ct_ode_solve(ctx, ode, NULL, y_init, tout, 3, NULL, &res);
  ct_ode_result_free(ctx, res);
  ct_ode_free(ode);
  return rc;
}

static void test_fault_injection(void **state) {
  (void)state;
  assert_true(ct_test_fault_sweep(build_and_solve, NULL) > 5);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_robertson_reference),
      cmocka_unit_test(test_difference_quotients),
      cmocka_unit_test(test_jvp_and_sparse),
      cmocka_unit_test(test_failing_callbacks),
      cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_fault_injection),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
