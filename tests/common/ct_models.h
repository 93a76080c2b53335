/* Models and helpers shared by the solver, sensitivity and adjoint tests.
 * Include after <cmocka.h> (and "ct_test.h"). The Robertson models are
 * traced in SUNDIALS' arithmetic order: the tests reproduce SUNDIALS'
 * printed outputs to the last digit, so do not reorder operations. */
#ifndef CT_MODELS_H
#define CT_MODELS_H

#include <math.h>
#include <stdio.h>

#include "cotangent.h"

#ifndef CT_SUNDIALS_EXAMPLES
#define CT_SUNDIALS_EXAMPLES "/usr/share/doc/libsundials-dev/examples"
#endif

/* Finalizes `g` into a function, frees `g`, and fails the test on error. */
static inline ct_fun *ct_test_finish(ct_graph *g) {
  ct_fun *f = NULL;
  int rc = ct_graph_finalize(g, &f);
  ct_graph_free(g);
  if (rc != CT_OK) fail_msg("tracing failed: %d", rc);
  return f;
}

/* Robertson f(y) with the rates as constants, in cvsRoberts_dns' order:
 * yd1 = -0.04*y1 + 1e4*y2*y3, yd3 = 3e7*y2*y2, yd2 = -yd1 - yd3. */
static inline ct_fun *ct_robertson_rhs(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var y[3], f[3];
  ct_graph_input(g, "y", 3, NULL, y);
  f[0] = ct_add(ct_mulc(y[0], -0.04), ct_mul(ct_mulc(y[1], 1.0e4), y[2]));
  f[2] = ct_mul(ct_mulc(y[1], 3.0e7), y[1]);
  f[1] = ct_sub(ct_neg(f[0]), f[2]);
  ct_graph_output(g, "f", 3, f);
  return ct_test_finish(g);
}

/* Robertson f(y, p) with p = (p1, p2, p3) as an input, in the order of
 * cvsRoberts_FSA_dns / cvsRoberts_ASAi_dns: yd1 = -p1*y1 + p2*y2*y3,
 * yd3 = p3*y2*y2, yd2 = -yd1 - yd3. */
static inline ct_fun *ct_robertson_rhs_p(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var y[3], p[3], f[3];
  ct_graph_input(g, "y", 3, NULL, y);
  ct_graph_input(g, "p", 3, NULL, p);
  f[0] = ct_add(ct_mul(ct_neg(p[0]), y[0]), ct_mul(ct_mul(p[1], y[1]), y[2]));
  f[2] = ct_mul(ct_mul(p[2], y[1]), y[1]);
  f[1] = ct_sub(ct_neg(f[0]), f[2]);
  ct_graph_output(g, "f", 3, f);
  return ct_test_finish(g);
}

/* Robertson's event functions g(y) = (y1 - 1e-4, y3 - 0.01), as in
 * cvsRoberts_dns and idasRoberts_dns. */
static inline ct_fun *ct_robertson_roots(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var y[3], r[2];
  ct_graph_input(g, "y", 3, NULL, y);
  r[0] = ct_addc(y[0], -1.0e-4);
  r[1] = ct_addc(y[2], -0.01);
  ct_graph_output(g, "g", 2, r);
  return ct_test_finish(g);
}

/* The Robertson adjoint examples' objective integrand g(y) = y3. */
static inline ct_fun *ct_robertson_g(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var y[3];
  ct_graph_input(g, "y", 3, NULL, y);
  ct_graph_output(g, "g", 1, &y[2]);
  return ct_test_finish(g);
}

/* Lotka–Volterra terms, p = (a, b, c, d): f0 = a x - b x y, f1 = d x y - c y
 * for u = (x, y). */
static inline void ct_lotka_volterra_terms(const ct_var *u, const ct_var *p, ct_var *f) {
  ct_var xy = ct_mul(u[0], u[1]);
  f[0] = ct_sub(ct_mul(p[0], u[0]), ct_mul(p[1], xy));
  f[1] = ct_sub(ct_mul(p[3], xy), ct_mul(p[2], u[1]));
}

/* Lotka–Volterra f(y, p) with inputs "y" (2) and "p" (4), output "f". */
static inline ct_fun *ct_lotka_volterra(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var u[2], p[4], f[2];
  ct_graph_input(g, "y", 2, NULL, u);
  ct_graph_input(g, "p", 4, NULL, p);
  ct_lotka_volterra_terms(u, p, f);
  ct_graph_output(g, "f", 2, f);
  return ct_test_finish(g);
}

/* One "At t = ... y = ..." line of cvsRoberts_dns.out. */
typedef struct ct_ref_line {
  double t, y[3];
} ct_ref_line;

/* Reads up to `max` "At t = ... y = ..." lines of cvsRoberts_dns.out;
 * returns how many, or -1 when the file cannot be opened. */
static inline int ct_read_cvs_roberts_reference(ct_ref_line *lines, int max) {
  FILE *f = fopen(CT_SUNDIALS_EXAMPLES "/cvodes/serial/cvsRoberts_dns.out", "r");
  if (!f) return -1;
  char buf[256];
  int n = 0;
  while (n < max && fgets(buf, sizeof buf, f))
    if (sscanf(buf, "At t = %lf y = %lf %lf %lf", &lines[n].t, &lines[n].y[0],
               &lines[n].y[1], &lines[n].y[2]) == 4)
      n++;
  fclose(f);
  return n;
}

/* 1 when |a - b| <= rtol max(|a|, |b|) (+ 1e-300), else 0. */
static inline int ct_rel_close(double a, double b, double rtol) {
  return fabs(a - b) <= rtol * fmax(fabs(a), fabs(b)) + 1e-300;
}

/* Checks a cvsRoberts_dns-style run (outputs at tout[1..], roots recorded
 * and integration continued) against the n_ref reference lines: each event
 * time within 1e-4, each printed y within 5e-7 (relative), and 2 events. */
static inline void ct_expect_cvs_roberts_reference(const ct_ref_line *ref, int n_ref,
                                                   const ct_ode_result *res,
                                                   const double *tout) {
  int k = 1, roots_seen = 0;
  for (int i = 0; i < n_ref; i++) {
    if (!ct_rel_close(ref[i].t, tout[k], 1e-4)) {
      assert_true(roots_seen < (int)res->n_roots_found);
      assert_true(ct_rel_close(res->roots[roots_seen].t, ref[i].t, 1e-4));
      roots_seen++;
      continue;
    }
    for (int j = 0; j < 3; j++)
      if (!ct_rel_close(res->y[k * 3 + j], ref[i].y[j], 5e-7))
        fail_msg("t = %g, y%d = %.7e, SUNDIALS prints %.6e", tout[k], j + 1,
                 res->y[k * 3 + j], ref[i].y[j]);
    k++;
  }
  assert_int_equal(roots_seen, 2);
}

#endif
