/* Tracing and the IR: hash-consing, folding, simplification, dead-node
 * removal, errors, guards; transforms on seeded random expression graphs
 * (dot-product test, vector modes, differences); batched and multi-threaded
 * evaluation; fault injection through every allocation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ct_test.h"

/* ---- Small helpers ---------------------------------------------------------- */

static double *work_for(const ct_fun *f) {
  double *w = malloc(sizeof(double) * (ct_fun_work_size(f) + 1));
  assert_non_null(w);
  return w;
}

static int eval1(ct_context *ctx, const ct_fun *f, const double *const *in,
                 double *const *out) {
  double *w = work_for(f);
  int rc = ct_fun_eval(ctx, f, in, out, w);
  free(w);
  return rc;
}

static ct_fun *finalize(ct_graph *g) {
  ct_fun *f = NULL;
  int rc = ct_graph_finalize(g, &f);
  if (rc != CT_OK) fail_msg("finalize failed with status %d", rc);
  ct_graph_free(g);
  return f;
}

/* ---- IR construction -------------------------------------------------------- */

static void test_hash_consing_and_simplification(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_graph *g = ct_graph_new(ctx);
  ct_var x[2];
  assert_int_equal(ct_graph_input(g, "x", 2, NULL, x), CT_OK);
  ct_var s1 = ct_add(x[0], x[1]), s2 = ct_add(x[1], x[0]);
  assert_int_equal(s1.id, s2.id); /* commutative ops are canonical */
  assert_int_not_equal(ct_sub(x[0], x[1]).id, ct_sub(x[1], x[0]).id);
  assert_int_equal(ct_sin(s1).id, ct_sin(s2).id);
  size_t before = ct_graph_n_nodes(g);
  assert_int_equal(ct_mul(ct_sin(s1), x[0]).id, ct_mul(x[0], ct_sin(s2)).id);
  assert_int_equal(ct_graph_n_nodes(g), before + 1);

  ct_var one = ct_const(g, 1), zero = ct_const(g, 0);
  assert_int_equal(ct_mul(x[0], one).id, x[0].id);
  assert_int_equal(ct_mul(one, x[0]).id, x[0].id);
  assert_int_equal(ct_add(x[0], zero).id, x[0].id);
  assert_int_equal(ct_sub(x[0], zero).id, x[0].id);
  assert_int_equal(ct_div(x[0], one).id, x[0].id);
  assert_int_equal(ct_mul(x[0], zero).id, zero.id);
  assert_int_equal(ct_neg(ct_neg(x[0])).id, x[0].id);
  assert_int_equal(ct_powi(x[0], 1).id, x[0].id);
  assert_int_equal(ct_powi(x[0], 0).id, one.id);
  assert_int_equal(ct_powc(x[0], 2.0).id, ct_sqr(x[0]).id);
  assert_int_equal(ct_select(one, x[0], x[1]).id, x[0].id);
  assert_int_equal(ct_select(ct_lt(x[0], x[1]), x[1], x[1]).id, x[1].id);

  /* Constants fold, whatever the op. */
  ct_var c = ct_mul(ct_add(ct_const(g, 2), ct_const(g, 3)), ct_exp(zero));
  assert_true(ct_value(c) == 5.0);
  assert_int_equal(c.id, ct_const(g, 5).id);
  assert_true(ct_value(ct_atan2(ct_const(g, 1), ct_const(g, 1))) == atan2(1, 1));
  ct_graph_free(g);
  ct_context_free(ctx);
}

static void test_dead_nodes_dropped(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_graph *g = ct_graph_new(ctx);
  ct_var x[3];
  ct_graph_input(g, "x", 3, NULL, x);
  for (int i = 0; i < 50; i++) (void)ct_sin(ct_mulc(x[2], i + 2.0)); /* unused */
  ct_var y = ct_mul(x[0], x[1]);
  ct_graph_output(g, "y", 1, &y);
  assert_true(ct_graph_n_nodes(g) > 100);
  ct_fun *f = finalize(g);
  assert_int_equal(ct_fun_n_nodes(f), 3); /* x0, x1, x0*x1 */
  assert_int_equal(ct_fun_n_in(f), 1);
  assert_int_equal(ct_fun_in_size(f, 0), 3);
  assert_string_equal(ct_fun_in_name(f, 0), "x");
  assert_string_equal(ct_fun_out_name(f, 0), "y");
  assert_int_equal(ct_fun_in_index(f, "x"), 0);
  assert_int_equal(ct_fun_out_index(f, "nope"), -1);
  assert_null(ct_fun_in_name(f, 7));
  double xv[3] = {2, 3, 4}, yv;
  const double *in[1] = {xv};
  double *out[1] = {&yv};
  assert_int_equal(eval1(ctx, f, in, out), CT_OK);
  assert_true(yv == 6);
  ct_fun_free(f);
  ct_fun_free(NULL);
  ct_graph_free(NULL);
  ct_context_free(ctx);
}

static void test_tracing_errors(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_graph *g = ct_graph_new(ctx), *h = ct_graph_new(ctx);
  ct_var x, z;
  ct_graph_input(g, "x", 1, NULL, &x);
  assert_int_equal(ct_graph_input(g, "x", 1, NULL, &z), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "input 'x' is declared twice"));
  assert_int_equal(ct_graph_status(g), CT_ERR_ARG);
  ct_fun *f = (ct_fun *)1;
  assert_int_equal(ct_graph_finalize(g, &f), CT_ERR_ARG);
  assert_null(f);
  ct_graph_free(g);

  /* Operands from two graphs: sticky error, reported at finalize. */
  g = ct_graph_new(ctx);
  ct_graph_input(g, "x", 1, NULL, &x);
  ct_graph_input(h, "z", 1, NULL, &z);
  ct_var bad = ct_add(x, z);
  assert_true(bad.id < 0);
  ct_var worse = ct_sin(ct_mul(bad, x)); /* propagates, no crash */
  assert_true(worse.id < 0);
  assert_int_equal(ct_graph_output(g, "y", 1, &worse), CT_ERR_ARG);
  assert_int_equal(ct_graph_finalize(g, &f), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "different graphs"));
  ct_graph_free(g);
  ct_graph_free(h);

  /* ct_value of a condition needs input values. */
  g = ct_graph_new(ctx);
  ct_graph_input(g, "x", 1, NULL, &x);
  assert_true(isnan(ct_value(ct_lt(x, ct_const(g, 0)))));
  assert_int_equal(ct_graph_finalize(g, &f), CT_ERR_STATE);
  assert_non_null(strstr(ct_errmsg(ctx), "needs input values"));
  ct_graph_free(g);

  /* Unnamed vectors, unknown wrt names, bad k. */
  g = ct_graph_new(ctx);
  assert_int_equal(ct_graph_input(g, "", 1, NULL, &x), CT_ERR_ARG);
  ct_graph_free(g);
  g = ct_graph_new(ctx);
  ct_graph_input(g, "x", 1, NULL, &x);
  ct_graph_output(g, "y", 1, &x);
  f = finalize(g);
  ct_fun *d = NULL;
  const char *wrt[] = {"p", NULL};
  assert_int_equal(ct_fun_jvp(ctx, f, 1, wrt, &d), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "'p' is not an input"));
  assert_int_equal(ct_fun_vjp(ctx, f, 0, NULL, &d), CT_ERR_ARG);
  assert_int_equal(ct_fun_jvp(ctx, f, 0, NULL, &d), CT_ERR_ARG);
  const char *outs[] = {"nope", NULL};
  assert_int_equal(ct_fun_select_outputs(ctx, f, outs, &d), CT_ERR_ARG);
  double xv = 1, yv;
  const double *in[1] = {&xv};
  double *out[1] = {&yv};
  assert_int_equal(ct_fun_eval(ctx, f, in, out, NULL), CT_ERR_ARG);
  ct_fun_free(f);
  assert_true(ct_const(NULL, 1).id < 0);
  ct_context_free(ctx);
}

/* ---- Guards --------------------------------------------------------------- */

/* y = x0 < x1 ? x0 * x1 : sin(x0), written with a C branch on a traced
 * comparison: the trace follows one side and records a guard. */
static ct_fun *trace_branchy(ct_context *ctx, const double *at) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var x[2], y;
  ct_graph_input(g, "x", 2, at, x);
  if (ct_branch(ct_lt(x[0], x[1])))
    y = ct_mul(x[0], x[1]);
  else
    y = ct_sin(x[0]);
  if (ct_value(ct_lt(ct_const(g, 1), ct_const(g, 2)))) /* constant: no guard */
    y = ct_addc(y, 1);
  ct_graph_output(g, "y", 1, &y);
  return finalize(g);
}

static void test_guards(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  double a[2] = {1, 2}, b[2] = {3, 2}, y;
  ct_fun *f = trace_branchy(ctx, a);
  assert_int_equal(ct_fun_n_guards(f), 1);
  const double *in_a[1] = {a}, *in_b[1] = {b};
  double *out[1] = {&y};
  assert_int_equal(eval1(ctx, f, in_a, out), CT_OK);
  assert_true(y == 3);
  double c[2] = {0.5, 7};
  const double *in_c[1] = {c};
  assert_int_equal(eval1(ctx, f, in_c, out), CT_OK); /* same side */
  assert_true(y == 4.5);
  assert_int_equal(eval1(ctx, f, in_b, out), CT_RETRACE);

  /* Guards survive transforms: the derivative is that of the traced path. */
  ct_fun *jvp = NULL;
  assert_int_equal(ct_fun_jvp(ctx, f, 1, NULL, &jvp), CT_OK);
  assert_int_equal(ct_fun_n_guards(jvp), 1);
  double dir[2] = {1, 0}, dy;
  const double *jin[2] = {b, dir};
  double *jout[2] = {&y, &dy};
  assert_int_equal(eval1(ctx, jvp, jin, jout), CT_RETRACE);
  ct_fun_free(jvp);

  /* Re-tracing at the new point follows the other branch. */
  ct_fun_free(f);
  f = trace_branchy(ctx, b);
  assert_int_equal(eval1(ctx, f, in_b, out), CT_OK);
  assert_true(y == sin(3.0) + 1);
  assert_int_equal(ct_fun_vjp(ctx, f, 1, NULL, &jvp), CT_OK);
  double one = 1, grad[2];
  const double *vin[2] = {b, &one};
  double *vout[2] = {&y, grad};
  assert_int_equal(eval1(ctx, jvp, vin, vout), CT_OK);
  assert_true(grad[0] == cos(3.0) && grad[1] == 0);
  ct_fun_free(jvp);
  ct_fun_free(f);
  ct_context_free(ctx);
}

/* ---- Random expression graphs ------------------------------------------------ */

enum { RIN = 6, RNODES = 80, ROUT = 4 };

/* A seeded random smooth function of RIN inputs with ROUT outputs, built
 * from a pool of values so that subexpressions are shared. */
static ct_fun *random_fun(ct_context *ctx, unsigned seed) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var pool[RIN + RNODES];
  ct_graph_input(g, "x", RIN, NULL, pool);
  int n = RIN;
  while (n < RIN + RNODES) {
    ct_var a = pool[rand_r(&seed) % n], b = pool[rand_r(&seed) % n], r;
    switch (rand_r(&seed) % 12) {
      case 0: r = ct_add(a, b); break;
      case 1: r = ct_sub(a, b); break;
      case 2: r = ct_mul(a, b); break;
      case 3: r = ct_div(a, ct_addc(ct_sqr(b), 1)); break;
      case 4: r = ct_sin(a); break;
      case 5: r = ct_exp(ct_tanh(a)); break;
      case 6: r = ct_log(ct_addc(ct_sqr(a), 1)); break;
      case 7: r = ct_atan(ct_mul(a, b)); break;
      case 8: r = ct_hypot(ct_addc(a, 2), b); break;
      case 9: r = ct_powi(ct_tanh(a), 3); break;
      case 10: r = ct_sqrt(ct_addc(ct_sqr(a), 0.5)); break;
      default: r = ct_mulc(ct_cos(b), 0.5); break;
    }
    pool[n++] = r;
  }
  ct_var y[ROUT];
  for (int i = 0; i < ROUT; i++) y[i] = ct_add(pool[n - 1 - i], pool[RIN + rand_r(&seed) % RNODES]);
  ct_graph_output(g, "y", ROUT, y);
  return finalize(g);
}

static double urand(unsigned *s) { return 2.0 * rand_r(s) / RAND_MAX - 1.0; }

static void test_random_graphs(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  for (unsigned seed = 1; seed <= 25; seed++) {
    ct_fun *f = random_fun(ctx, seed), *jvp = NULL, *jvp3 = NULL, *vjp = NULL,
           *vjp2 = NULL, *hvp = NULL;
    assert_int_equal(ct_fun_jvp(ctx, f, 1, NULL, &jvp), CT_OK);
    assert_int_equal(ct_fun_jvp(ctx, f, 3, NULL, &jvp3), CT_OK);
    assert_int_equal(ct_fun_vjp(ctx, f, 1, NULL, &vjp), CT_OK);
    assert_int_equal(ct_fun_vjp(ctx, f, 2, NULL, &vjp2), CT_OK);
    assert_int_equal(ct_fun_hvp(ctx, f, NULL, &hvp), CT_OK);
    unsigned s = seed * 7919u;
    double x[RIN], v[3 * RIN], w[2 * ROUT], y[ROUT], jv[3 * ROUT], wj[2 * RIN];
    for (int i = 0; i < RIN; i++) x[i] = urand(&s);
    for (int i = 0; i < 3 * RIN; i++) v[i] = urand(&s);
    for (int i = 0; i < 2 * ROUT; i++) w[i] = urand(&s);

    /* Vector-mode JVP equals three single JVPs. */
    const double *in3[2] = {x, v};
    double *out3[2] = {y, jv};
    assert_int_equal(eval1(ctx, jvp3, in3, out3), CT_OK);
    for (int d = 0; d < 3; d++) {
      double jd[ROUT];
      const double *in1[2] = {x, v + d * RIN};
      double *out1[2] = {y, jd};
      assert_int_equal(eval1(ctx, jvp, in1, out1), CT_OK);
      for (int i = 0; i < ROUT; i++) assert_true(jd[i] == jv[d * ROUT + i]);
    }
    /* Two-seed VJP, and the dot-product test w'(J v) = (J'w)'v. */
    const double *vin[2] = {x, w};
    double *vout[2] = {y, wj};
    assert_int_equal(eval1(ctx, vjp2, vin, vout), CT_OK);
    for (int sd = 0; sd < 2; sd++)
      for (int d = 0; d < 3; d++) {
        double lhs = 0, rhs = 0, scale = 0;
        for (int i = 0; i < ROUT; i++) {
          lhs += w[sd * ROUT + i] * jv[d * ROUT + i];
          scale += fabs(w[sd * ROUT + i] * jv[d * ROUT + i]);
        }
        for (int j = 0; j < RIN; j++) rhs += wj[sd * RIN + j] * v[d * RIN + j];
        if (fabs(lhs - rhs) > 1e-12 * fmax(scale, 1e-300))
          fail_msg("seed %u: w'Jv = %.17g but (J'w)'v = %.17g", seed, lhs, rhs);
      }
    /* JVP against central differences. */
    double h = 1e-6, xp[RIN], xm[RIN], yp[ROUT], ym[ROUT];
    for (int j = 0; j < RIN; j++) {
      xp[j] = x[j] + h * v[j];
      xm[j] = x[j] - h * v[j];
    }
    const double *pin[1] = {xp}, *min[1] = {xm};
    double *pout[1] = {yp}, *mout[1] = {ym};
    eval1(ctx, f, pin, pout);
    eval1(ctx, f, min, mout);
    for (int i = 0; i < ROUT; i++) {
      double fd = (yp[i] - ym[i]) / (2 * h);
      if (fabs(fd - jv[i]) > 1e-6 * fmax(1, fabs(fd)))
        fail_msg("seed %u: jvp %.17g vs central difference %.17g", seed, jv[i], fd);
    }
    /* HVP against central differences of the gradient. */
    double hv[RIN], gp[RIN], gm[RIN];
    const double *hin[3] = {x, w, v};
    double *hout[1] = {hv};
    assert_int_equal(eval1(ctx, hvp, hin, hout), CT_OK);
    const double *gpin[2] = {xp, w}, *gmin[2] = {xm, w};
    double *gpout[2] = {yp, gp}, *gmout[2] = {ym, gm};
    eval1(ctx, vjp, gpin, gpout);
    eval1(ctx, vjp, gmin, gmout);
    for (int j = 0; j < RIN; j++) {
      double fd = (gp[j] - gm[j]) / (2 * h);
      if (fabs(fd - hv[j]) > 1e-5 * fmax(1, fabs(fd)))
        fail_msg("seed %u: hvp %.17g vs difference of gradients %.17g", seed, hv[j], fd);
    }
    ct_fun_free(f);
    ct_fun_free(jvp);
    ct_fun_free(jvp3);
    ct_fun_free(vjp);
    ct_fun_free(vjp2);
    ct_fun_free(hvp);
  }
  ct_context_free(ctx);
}

/* Selected inputs only: the subfunction "derivative with respect to p". */
static void test_wrt_subset(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_graph *g = ct_graph_new(ctx);
  ct_var x[2], p[1];
  ct_graph_input(g, "x", 2, NULL, x);
  ct_graph_input(g, "p", 1, NULL, p);
  ct_var y = ct_mul(ct_sin(x[0]), ct_exp(ct_mul(p[0], x[1])));
  ct_graph_output(g, "y", 1, &y);
  ct_fun *f = finalize(g), *jp = NULL, *vp = NULL;
  const char *wrt[] = {"p", NULL};
  assert_int_equal(ct_fun_jvp(ctx, f, 1, wrt, &jp), CT_OK);
  assert_int_equal(ct_fun_n_in(jp), 3);
  assert_string_equal(ct_fun_in_name(jp, 2), "d_p");
  assert_int_equal(ct_fun_vjp(ctx, f, 1, wrt, &vp), CT_OK);
  assert_int_equal(ct_fun_n_out(vp), 2);
  assert_string_equal(ct_fun_out_name(vp, 1), "bar_p");
  double xv[2] = {0.3, 0.7}, pv = 1.1, dp = 1, yv, dy, one = 1, gp;
  const double *jin[3] = {xv, &pv, &dp};
  double *jout[2] = {&yv, &dy};
  eval1(ctx, jp, jin, jout);
  double want = sin(0.3) * 0.7 * exp(1.1 * 0.7);
  assert_true(fabs(dy - want) < 1e-15);
  const double *vin[3] = {xv, &pv, &one};
  double *vout[2] = {&yv, &gp};
  eval1(ctx, vp, vin, vout);
  assert_true(fabs(gp - want) < 1e-15);

  ct_sparsity *s = NULL;
  assert_int_equal(ct_fun_jac_sparsity(ctx, f, wrt, &s), CT_OK);
  assert_int_equal(s->nrows, 1);
  assert_int_equal(s->ncols, 1);
  assert_int_equal(s->nnz, 1);
  ct_sparsity_free(ctx, s);
  assert_int_equal(ct_fun_hess_sparsity(ctx, f, NULL, &s), CT_OK);
  assert_int_equal(s->ncols, 3);
  assert_int_equal(s->nnz, 9); /* every pair interacts */
  ct_sparsity_free(ctx, s);
  ct_fun_free(f);
  ct_fun_free(jp);
  ct_fun_free(vp);
  ct_context_free(ctx);
}

/* Sparsity of y0 = x0*x1, y1 = sin(x2), y2 = x3 + 2 x4 (linear): Jacobian
 * pattern exact, Hessian only the nonlinear pairs. */
static void test_sparsity_patterns(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_graph *g = ct_graph_new(ctx);
  ct_var x[5], y[3];
  ct_graph_input(g, "x", 5, NULL, x);
  y[0] = ct_mul(x[0], x[1]);
  y[1] = ct_sin(x[2]);
  y[2] = ct_add(x[3], ct_mulc(x[4], 2));
  ct_graph_output(g, "y", 3, y);
  ct_fun *f = finalize(g);
  ct_sparsity *j = NULL, *h = NULL;
  assert_int_equal(ct_fun_jac_sparsity(ctx, f, NULL, &j), CT_OK);
  const size_t colptr[] = {0, 1, 2, 3, 4, 5}, rows[] = {0, 0, 1, 2, 2};
  assert_int_equal(j->nnz, 5);
  assert_memory_equal(j->colptr, colptr, sizeof colptr);
  assert_memory_equal(j->rowind, rows, sizeof rows);
  assert_int_equal(ct_fun_hess_sparsity(ctx, f, NULL, &h), CT_OK);
  const size_t hcol[] = {0, 1, 2, 3, 3, 3}, hrow[] = {1, 0, 2};
  assert_int_equal(h->nnz, 3);
  assert_memory_equal(h->colptr, hcol, sizeof hcol);
  assert_memory_equal(h->rowind, hrow, sizeof hrow);
  ct_sparsity_free(ctx, j);
  ct_sparsity_free(ctx, h);
  ct_sparsity_free(ctx, NULL);
  ct_fun_free(f);
  ct_context_free(ctx);
}

/* ---- Batched and concurrent evaluation -------------------------------------- */

static void test_batch_matches_single(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *f = random_fun(ctx, 99), *vjp = NULL;
  assert_int_equal(ct_fun_vjp(ctx, f, 1, NULL, &vjp), CT_OK);
  enum { NP = 150 };
  double *x = malloc(sizeof(double) * NP * RIN), *w = malloc(sizeof(double) * NP * ROUT);
  double *y = malloc(sizeof(double) * NP * ROUT), *gx = malloc(sizeof(double) * NP * RIN);
  unsigned s = 5;
  for (int i = 0; i < NP * RIN; i++) x[i] = urand(&s);
  for (int i = 0; i < NP * ROUT; i++) w[i] = urand(&s);
  double *work = malloc(sizeof(double) * ct_fun_work_size_batch(vjp, NP));
  const double *in[2] = {x, w};
  double *out[2] = {y, gx};
  assert_int_equal(ct_fun_eval_batch(ctx, vjp, NP, in, out, work), CT_OK);
  for (int p = 0; p < NP; p++) {
    double y1[ROUT], g1[RIN];
    const double *in1[2] = {x + p * RIN, w + p * ROUT};
    double *out1[2] = {y1, g1};
    eval1(ctx, vjp, in1, out1);
    assert_memory_equal(y1, y + p * ROUT, sizeof y1);
    assert_memory_equal(g1, gx + p * RIN, sizeof g1);
  }
  free(x), free(w), free(y), free(gx), free(work);
  ct_fun_free(f);
  ct_fun_free(vjp);
  ct_context_free(ctx);
}

typedef struct worker_arg {
  const ct_fun *f;
  const double *x, *w, *want;
  int ok;
} worker_arg;

/* Evaluates the shared function many times with its own context and work. */
static void *eval_worker(void *p) {
  worker_arg *a = p;
  ct_context *ctx = ct_context_new(NULL);
  double *work = malloc(sizeof(double) * ct_fun_work_size(a->f));
  double y[ROUT], g[RIN];
  a->ok = ctx && work;
  for (int it = 0; it < 2000 && a->ok; it++) {
    const double *in[2] = {a->x, a->w};
    double *out[2] = {y, g};
    a->ok = ct_fun_eval(ctx, a->f, in, out, work) == CT_OK &&
            memcmp(g, a->want, sizeof g) == 0;
  }
  free(work);
  ct_context_free(ctx);
  return NULL;
}

static void test_concurrent_evaluation(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *f = random_fun(ctx, 3), *vjp = NULL;
  assert_int_equal(ct_fun_vjp(ctx, f, 1, NULL, &vjp), CT_OK);
  double x[RIN] = {0.1, -0.2, 0.3, 0.4, -0.5, 0.6}, w[ROUT] = {1, 2, 3, 4};
  double y[ROUT], want[RIN];
  const double *in[2] = {x, w};
  double *out[2] = {y, want};
  eval1(ctx, vjp, in, out);
  pthread_t th[4];
  worker_arg args[4];
  for (int i = 0; i < 4; i++) {
    args[i] = (worker_arg){vjp, x, w, want, 0};
    assert_int_equal(pthread_create(&th[i], NULL, eval_worker, &args[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    assert_true(args[i].ok);
  }
  ct_fun_free(f);
  ct_fun_free(vjp);
  ct_context_free(ctx);
}

/* ---- Fault injection ----------------------------------------------------------- */

/* Traces, finalizes and transforms a small function; releases everything. */
static int build_and_transform(ct_context *ctx, void *ud) {
  (void)ud;
  ct_graph *g = ct_graph_new(ctx);
  if (!g) return CT_ERR_NOMEM;
  ct_var x[3], p[1];
  double at[3] = {0.5, 1.5, 2.5};
  ct_graph_input(g, "x", 3, at, x);
  ct_graph_input(g, "p", 1, NULL, p);
  ct_var y[2];
  y[0] = ct_mul(ct_sin(x[0]), ct_exp(ct_mul(p[0], x[1])));
  y[1] = ct_branch(ct_lt(x[1], x[2])) ? ct_hypot(x[2], x[0]) : x[2];
  for (int i = 0; i < 40; i++) y[1] = ct_add(y[1], ct_mulc(ct_cos(ct_mul(y[0], x[i % 3])), 0.1));
  ct_graph_output(g, "y", 2, y);
  ct_fun *f = NULL, *jvp = NULL, *vjp = NULL, *hvp = NULL;
  ct_sparsity *js = NULL, *hs = NULL;
  int rc = ct_graph_finalize(g, &f);
  ct_graph_free(g);
  if (rc == CT_OK) rc = ct_fun_jvp(ctx, f, 2, NULL, &jvp);
  if (rc == CT_OK) rc = ct_fun_vjp(ctx, f, 2, NULL, &vjp);
  if (rc == CT_OK) rc = ct_fun_hvp(ctx, f, NULL, &hvp);
  if (rc == CT_OK) rc = ct_fun_jac_sparsity(ctx, f, NULL, &js);
  if (rc == CT_OK) rc = ct_fun_hess_sparsity(ctx, f, NULL, &hs);
  ct_fun_free(f);
  ct_fun_free(jvp);
  ct_fun_free(vjp);
  ct_fun_free(hvp);
  ct_sparsity_free(ctx, js);
  ct_sparsity_free(ctx, hs);
  return rc;
}

/* ct_fun_call: h(x, y) = g(f(x), y) traced by calling f and g inside one
 * graph equals evaluating f then g; its VJP equals the chain rule through
 * the VJPs of f and g; foreign variables and missing inputs are errors. */
static ct_fun *trace_inner(ct_context *ctx) { /* f: x (2) -> u (2) */
  ct_graph *g = ct_graph_new(ctx);
  ct_var x[2];
  ct_graph_input(g, "x", 2, NULL, x);
  ct_var u[2] = {ct_mul(ct_sin(x[0]), x[1]), ct_exp(ct_sub(x[0], x[1]))};
  ct_graph_output(g, "u", 2, u);
  return finalize(g);
}

static ct_fun *trace_outer(ct_context *ctx) { /* g: u (2), y (1) -> v (1), w (1) */
  ct_graph *g = ct_graph_new(ctx);
  ct_var u[2], y;
  ct_graph_input(g, "u", 2, NULL, u);
  ct_graph_input(g, "y", 1, NULL, &y);
  ct_var v = ct_add(ct_mul(u[0], u[1]), ct_sqr(y)), w = ct_log1p(ct_sqr(u[1]));
  ct_graph_output(g, "v", 1, &v);
  ct_graph_output(g, "w", 1, &w);
  return finalize(g);
}

static void test_function_call(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *f = trace_inner(ctx), *gf = trace_outer(ctx);
  ct_graph *g = ct_graph_new(ctx);
  ct_var x[2], y, u[2], v;
  ct_graph_input(g, "x", 2, NULL, x);
  ct_graph_input(g, "y", 1, NULL, &y);
  const ct_var *fin[] = {x};
  ct_var *const fout[] = {u};
  assert_int_equal(ct_fun_call(g, f, fin, fout), CT_OK);
  const ct_var *gin[] = {u, &y};
  ct_var *const gout[] = {&v, NULL}; /* w skipped */
  assert_int_equal(ct_fun_call(g, gf, gin, gout), CT_OK);
  ct_graph_output(g, "v", 1, &v);
  ct_fun *h = finalize(g);

  const double xv[2] = {0.7, -0.4}, yv = 1.3;
  double uv[2], vv, hv, wv;
  const double *fi[] = {xv}, *gi[] = {uv, &yv}, *hi[] = {xv, &yv};
  double *fo[] = {uv}, *go[] = {&vv, &wv}, *ho[] = {&hv};
  assert_int_equal(eval1(ctx, f, fi, fo), CT_OK);
  assert_int_equal(eval1(ctx, gf, gi, go), CT_OK);
  assert_int_equal(eval1(ctx, h, hi, ho), CT_OK);
  assert_true(fabs(hv - vv) <= 1e-15 * fabs(vv));

  /* dh/dx by the VJP of h against the chain rule (u_bar = dv/du, then f's VJP). */
  ct_fun *hb = NULL, *fb = NULL, *gb = NULL;
  assert_int_equal(ct_fun_vjp(ctx, h, 1, NULL, &hb), CT_OK);
  assert_int_equal(ct_fun_vjp(ctx, f, 1, NULL, &fb), CT_OK);
  assert_int_equal(ct_fun_vjp(ctx, gf, 1, NULL, &gb), CT_OK);
  const double one = 1.0, zero = 0.0;
  double hx[2], hy, ub[2], gy, fx[2], dummy_v, dummy_w, dummy_u[2];
  const double *hbi[] = {xv, &yv, &one}, *gbi[] = {uv, &yv, &one, &zero};
  double *hbo[] = {&hv, hx, &hy}, *gbo[] = {&dummy_v, &dummy_w, ub, &gy};
  assert_int_equal(eval1(ctx, hb, hbi, hbo), CT_OK);
  assert_int_equal(eval1(ctx, gb, gbi, gbo), CT_OK);
  const double *fbi[] = {xv, ub};
  double *fbo[] = {dummy_u, fx};
  assert_int_equal(eval1(ctx, fb, fbi, fbo), CT_OK);
  for (int i = 0; i < 2; i++) assert_true(fabs(hx[i] - fx[i]) <= 1e-14 * (1 + fabs(fx[i])));
  assert_true(fabs(hy - gy) <= 1e-14 * (1 + fabs(gy)));

  /* A variable of another graph, and a missing input, are refused. */
  ct_graph *other = ct_graph_new(ctx), *g2 = ct_graph_new(ctx);
  ct_var ox[2];
  ct_graph_input(other, "x", 2, NULL, ox);
  const ct_var *bad[] = {ox};
  assert_int_equal(ct_fun_call(g2, f, bad, NULL), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "is not a variable of this graph"));
  ct_graph *g3 = ct_graph_new(ctx);
  const ct_var *missing[] = {NULL};
  assert_int_equal(ct_fun_call(g3, f, missing, NULL), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "no variables for input 'x'"));
  ct_graph_free(other);
  ct_graph_free(g2);
  ct_graph_free(g3);
  ct_fun_free(hb);
  ct_fun_free(fb);
  ct_fun_free(gb);
  ct_fun_free(h);
  ct_fun_free(f);
  ct_fun_free(gf);
  ct_context_free(ctx);
}

static void test_fault_injection(void **state) {
  (void)state;
  long n = ct_test_fault_sweep(build_and_transform, NULL);
  assert_true(n > 50); /* the sweep really went through many allocations */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hash_consing_and_simplification),
      cmocka_unit_test(test_dead_nodes_dropped),
      cmocka_unit_test(test_tracing_errors),
      cmocka_unit_test(test_guards),
      cmocka_unit_test(test_random_graphs),
      cmocka_unit_test(test_wrt_subset),
      cmocka_unit_test(test_sparsity_patterns),
      cmocka_unit_test(test_batch_matches_single),
      cmocka_unit_test(test_concurrent_evaluation),
      cmocka_unit_test(test_function_call),
      cmocka_unit_test(test_fault_injection),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
