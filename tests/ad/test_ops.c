/* Conformance suite for every AD operation: values, first derivatives (JVP
 * and VJP) and second derivatives (Hessian-vector products) at seeded random
 * points, against analytic formulas, the complex step and central
 * differences. Built twice: for the interpreter, and with CT_TEST_JIT for
 * the JIT back end (every function is compiled before it is evaluated). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <complex.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ct_test.h"

#ifdef CT_TEST_JIT
static void prepare(ct_context *ctx, ct_fun *f) {
  assert_int_equal(ct_fun_jit(ctx, f, NULL), CT_OK);
  assert_int_equal(ct_fun_backend(f), CT_BACKEND_JIT);
}
#else
static void prepare(ct_context *ctx, ct_fun *f) {
  (void)ctx;
  (void)f;
}
#endif

/* ---- The table ------------------------------------------------------------ */

typedef ct_var (*build_fn)(const ct_var *x);
typedef double complex (*cfun)(const double complex *z);

typedef struct op_case {
  const char *name;
  int arity;
  build_fn build;
  double (*f)(const double *x);
  void (*grad)(const double *x, double *g);    /* first partials */
  void (*hess)(const double *x, double *h);    /* arity x arity, row-major */
  cfun cf;                                     /* complex extension or NULL */
  double lo, hi;                               /* sampling interval */
} op_case;

#define SQ(v) ((v) * (v))
static const double TWO_OVER_SQRT_PI = 1.1283791670955126;

/* Unary cases: f, f', f'' and the complex extension as expressions in x / z. */
#define UNARY(nm, BUILD, F, D1, D2, CF, LO, HI)                                \
  static ct_var b_##nm(const ct_var *v) { return BUILD; }                      \
  static double f_##nm(const double *p) { double x = p[0]; (void)x; return F; } \
  static void g_##nm(const double *p, double *g) {                             \
    double x = p[0];                                                           \
    (void)x;                                                                   \
    g[0] = D1;                                                                 \
  }                                                                            \
  static void h_##nm(const double *p, double *h) {                             \
    double x = p[0];                                                           \
    (void)x;                                                                   \
    h[0] = D2;                                                                 \
  }                                                                            \
  static double complex c_##nm(const double complex *q) {                      \
    double complex z = q[0];                                                   \
    (void)z;                                                                   \
    return CF;                                                                 \
  }

UNARY(neg, ct_neg(v[0]), -x, -1, 0, -z, -3, 3)
UNARY(sqr, ct_sqr(v[0]), x * x, 2 * x, 2, z * z, -3, 3)
UNARY(powi3, ct_powi(v[0], 3), x * x * x, 3 * x * x, 6 * x, z * z * z, -2, 2)
UNARY(powim2, ct_powi(v[0], -2), 1 / (x * x), -2 / (x * x * x), 6 / SQ(x * x), 1 / (z * z), 0.3, 3)
UNARY(powc, ct_powc(v[0], 2.5), pow(x, 2.5), 2.5 * pow(x, 1.5), 3.75 * sqrt(x), cpow(z, 2.5), 0.2, 3)
UNARY(exp, ct_exp(v[0]), exp(x), exp(x), exp(x), cexp(z), -3, 3)
UNARY(log, ct_log(v[0]), log(x), 1 / x, -1 / (x * x), clog(z), 0.1, 5)
UNARY(log1p, ct_log1p(v[0]), log1p(x), 1 / (1 + x), -1 / SQ(1 + x), clog(1 + z), -0.5, 3)
UNARY(expm1, ct_expm1(v[0]), expm1(x), exp(x), exp(x), cexp(z) - 1, -3, 3)
UNARY(sqrt, ct_sqrt(v[0]), sqrt(x), 0.5 / sqrt(x), -0.25 / (x * sqrt(x)), csqrt(z), 0.1, 5)
UNARY(cbrt, ct_cbrt(v[0]), cbrt(x), 1 / (3 * SQ(cbrt(x))), -2 / (9 * pow(cbrt(x), 5)), cpow(z, 1.0 / 3), 0.1, 5)
UNARY(sin, ct_sin(v[0]), sin(x), cos(x), -sin(x), csin(z), -3, 3)
UNARY(cos, ct_cos(v[0]), cos(x), -sin(x), -cos(x), ccos(z), -3, 3)
UNARY(tan, ct_tan(v[0]), tan(x), 1 + SQ(tan(x)), 2 * tan(x) * (1 + SQ(tan(x))), ctan(z), -1.2, 1.2)
UNARY(asin, ct_asin(v[0]), asin(x), 1 / sqrt(1 - x * x), x / pow(1 - x * x, 1.5), casin(z), -0.9, 0.9)
UNARY(acos, ct_acos(v[0]), acos(x), -1 / sqrt(1 - x * x), -x / pow(1 - x * x, 1.5), cacos(z), -0.9, 0.9)
UNARY(atan, ct_atan(v[0]), atan(x), 1 / (1 + x * x), -2 * x / SQ(1 + x * x), catan(z), -3, 3)
UNARY(sinh, ct_sinh(v[0]), sinh(x), cosh(x), sinh(x), csinh(z), -3, 3)
UNARY(cosh, ct_cosh(v[0]), cosh(x), sinh(x), cosh(x), ccosh(z), -3, 3)
UNARY(tanh, ct_tanh(v[0]), tanh(x), 1 - SQ(tanh(x)), -2 * tanh(x) * (1 - SQ(tanh(x))), ctanh(z), -3, 3)
UNARY(asinh, ct_asinh(v[0]), asinh(x), 1 / sqrt(x * x + 1), -x / pow(x * x + 1, 1.5), casinh(z), -3, 3)
UNARY(acosh, ct_acosh(v[0]), acosh(x), 1 / sqrt(x * x - 1), -x / pow(x * x - 1, 1.5), cacosh(z), 1.1, 5)
UNARY(atanh, ct_atanh(v[0]), atanh(x), 1 / (1 - x * x), 2 * x / SQ(1 - x * x), catanh(z), -0.9, 0.9)
UNARY(erf, ct_erf(v[0]), erf(x), TWO_OVER_SQRT_PI * exp(-x * x), -2 * x * TWO_OVER_SQRT_PI * exp(-x * x), 0, -2, 2)
UNARY(abs, ct_abs(v[0]), fabs(x), x > 0 ? 1 : -1, 0, 0, -3, 3)
UNARY(sign, ct_sign(v[0]), x > 0 ? 1 : -1, 0, 0, 0, -3, 3)
UNARY(floor, ct_floor(v[0]), floor(x), 0, 0, 0, -3, 3)
UNARY(ceil, ct_ceil(v[0]), ceil(x), 0, 0, 0, -3, 3)

/* Binary cases: f(x, y), its gradient and Hessian. */
#define BINARY(nm, BUILD, F, DX, DY, DXX, DXY, DYY, CF, LO, HI)                \
  static ct_var b_##nm(const ct_var *v) { return BUILD; }                      \
  static double f_##nm(const double *p) {                                      \
    double x = p[0], y = p[1];                                                 \
    (void)x, (void)y;                                                          \
    return F;                                                                  \
  }                                                                            \
  static void g_##nm(const double *p, double *g) {                             \
    double x = p[0], y = p[1];                                                 \
    (void)x, (void)y;                                                          \
    g[0] = DX, g[1] = DY;                                                      \
  }                                                                            \
  static void h_##nm(const double *p, double *h) {                             \
    double x = p[0], y = p[1];                                                 \
    (void)x, (void)y;                                                          \
    h[0] = DXX, h[1] = h[2] = DXY, h[3] = DYY;                                 \
  }                                                                            \
  static double complex c_##nm(const double complex *q) {                      \
    double complex z = q[0], w = q[1];                                         \
    (void)z, (void)w;                                                          \
    return CF;                                                                 \
  }

BINARY(add, ct_add(v[0], v[1]), x + y, 1, 1, 0, 0, 0, z + w, -3, 3)
BINARY(sub, ct_sub(v[0], v[1]), x - y, 1, -1, 0, 0, 0, z - w, -3, 3)
BINARY(mul, ct_mul(v[0], v[1]), x * y, y, x, 0, 1, 0, z * w, -3, 3)
BINARY(div, ct_div(v[0], v[1]), x / y, 1 / y, -x / (y * y), 0, -1 / (y * y), 2 * x / (y * y * y), z / w, 0.5, 3)
BINARY(pow, ct_pow(v[0], v[1]), pow(x, y), y * pow(x, y - 1), log(x) * pow(x, y),
       y * (y - 1) * pow(x, y - 2), pow(x, y - 1) * (1 + y * log(x)),
       SQ(log(x)) * pow(x, y), cpow(z, w), 0.3, 2.5)
BINARY(atan2, ct_atan2(v[0], v[1]), atan2(x, y), y / (x * x + y * y), -x / (x * x + y * y),
       -2 * x * y / SQ(x * x + y * y), (x * x - y * y) / SQ(x * x + y * y),
       2 * x * y / SQ(x * x + y * y), catan(z / w), 0.3, 3)
BINARY(hypot, ct_hypot(v[0], v[1]), hypot(x, y), x / hypot(x, y), y / hypot(x, y),
       y * y / pow(hypot(x, y), 3), -x * y / pow(hypot(x, y), 3),
       x * x / pow(hypot(x, y), 3), csqrt(z * z + w * w), 0.3, 3)
BINARY(min, ct_min(v[0], v[1]), fmin(x, y), x <= y, x > y, 0, 0, 0, 0, -3, 3)
BINARY(max, ct_max(v[0], v[1]), fmax(x, y), x >= y, x < y, 0, 0, 0, 0, -3, 3)
/* Compositions exercise shared subexpressions and second-order cross terms. */
BINARY(sin_xy, ct_sin(ct_mul(v[0], v[1])), sin(x * y), y * cos(x * y), x * cos(x * y),
       -y * y * sin(x * y), cos(x * y) - x * y * sin(x * y), -x * x * sin(x * y),
       csin(z * w), -2, 2)
BINARY(select_lt, ct_select(ct_lt(v[0], v[1]), ct_mul(v[0], v[0]), ct_exp(v[1])),
       x < y ? x * x : exp(y), x < y ? 2 * x : 0, x < y ? 0 : exp(y),
       x < y ? 2 : 0, 0, x < y ? 0 : exp(y), 0, -2, 2)

#define CASE(nm, arity, lo, hi, has_c) \
  {#nm, arity, b_##nm, f_##nm, g_##nm, h_##nm, has_c ? c_##nm : NULL, lo, hi}

static const op_case cases[] = {
    CASE(neg, 1, -3, 3, 1),      CASE(sqr, 1, -3, 3, 1),
    CASE(powi3, 1, -2, 2, 1),    CASE(powim2, 1, 0.3, 3, 1),
    CASE(powc, 1, 0.2, 3, 1),    CASE(exp, 1, -3, 3, 1),
    CASE(log, 1, 0.1, 5, 1),     CASE(log1p, 1, -0.5, 3, 1),
    CASE(expm1, 1, -3, 3, 1),    CASE(sqrt, 1, 0.1, 5, 1),
    CASE(cbrt, 1, 0.1, 5, 1),    CASE(sin, 1, -3, 3, 1),
    CASE(cos, 1, -3, 3, 1),      CASE(tan, 1, -1.2, 1.2, 1),
    CASE(asin, 1, -0.9, 0.9, 1), CASE(acos, 1, -0.9, 0.9, 1),
    CASE(atan, 1, -3, 3, 1),     CASE(sinh, 1, -3, 3, 1),
    CASE(cosh, 1, -3, 3, 1),     CASE(tanh, 1, -3, 3, 1),
    CASE(asinh, 1, -3, 3, 1),    CASE(acosh, 1, 1.1, 5, 1),
    CASE(atanh, 1, -0.9, 0.9, 1), CASE(erf, 1, -2, 2, 0),
    CASE(abs, 1, -3, 3, 0),      CASE(sign, 1, -3, 3, 0),
    CASE(floor, 1, -3, 3, 0),    CASE(ceil, 1, -3, 3, 0),
    CASE(add, 2, -3, 3, 1),      CASE(sub, 2, -3, 3, 1),
    CASE(mul, 2, -3, 3, 1),      CASE(div, 2, 0.5, 3, 1),
    CASE(pow, 2, 0.3, 2.5, 1),   CASE(atan2, 2, 0.3, 3, 1),
    CASE(hypot, 2, 0.3, 3, 1),   CASE(min, 2, -3, 3, 0),
    CASE(max, 2, -3, 3, 0),      CASE(sin_xy, 2, -2, 2, 1),
    CASE(select_lt, 2, -2, 2, 0),
};
enum { N_CASES = sizeof cases / sizeof cases[0], N_POINTS = 6 };

/* ---- Evaluation helpers ------------------------------------------------------ */

static ct_fun *trace_case(ct_context *ctx, const op_case *c) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var x[2];
  assert_int_equal(ct_graph_input(g, "x", (size_t)c->arity, NULL, x), CT_OK);
  ct_var y = c->build(x);
  assert_int_equal(ct_graph_output(g, "y", 1, &y), CT_OK);
  ct_fun *f = NULL;
  assert_int_equal(ct_graph_finalize(g, &f), CT_OK);
  ct_graph_free(g);
  prepare(ctx, f);
  return f;
}

/* Evaluates f with the given inputs; writes output `which` to res. */
static void eval(ct_context *ctx, const ct_fun *f, const double *const *in,
                 size_t which, double *res) {
  double *outs[8] = {0};
  double scratch[8][8];
  for (size_t o = 0; o < ct_fun_n_out(f); o++) outs[o] = scratch[o];
  outs[which] = res;
  double *work = malloc(sizeof(double) * (ct_fun_work_size(f) + 1));
  int rc = ct_fun_eval(ctx, f, in, outs, work);
  free(work);
  assert_true(rc >= 0);
}

static int close_to(double got, double want, double tol) {
  if (isnan(want)) return isnan(got);
  if (isinf(want)) return got == want;
  return fabs(got - want) <= tol * fmax(1.0, fabs(want));
}

static void expect_close(const char *what, const op_case *c, const double *x,
                         double got, double want, double tol) {
  if (!close_to(got, want, tol))
    fail_msg("%s of %s at (%.17g, %.17g): got %.17g, want %.17g (tol %g)",
             what, c->name, x[0], c->arity > 1 ? x[1] : 0.0, got, want, tol);
}

static double sample(const op_case *c, unsigned *seed) {
  for (;;) {
    double u = (double)rand_r(seed) / RAND_MAX;
    double x = c->lo + (c->hi - c->lo) * u;
    /* Keep away from kinks and jumps, where one-sided formulas differ. */
    if (fabs(x) > 1e-3 && fabs(x - round(x)) > 1e-3) return x;
  }
}

/* Central difference of f along coordinate i. */
static double central(const op_case *c, const double *x, int i, double h) {
  double xp[2] = {x[0], c->arity > 1 ? x[1] : 0}, xm[2] = {xp[0], xp[1]};
  xp[i] += h;
  xm[i] -= h;
  return (c->f(xp) - c->f(xm)) / (2 * h);
}

/* Complex-step derivative along coordinate i. */
static double complex_step(const op_case *c, const double *x, int i) {
  const double h = 1e-30;
  double complex z[2] = {x[0], c->arity > 1 ? x[1] : 0};
  z[i] += I * h;
  return cimag(c->cf(z)) / h;
}

/* ---- The checks ---------------------------------------------------------------- */

static void check_case(ct_context *ctx, const op_case *c, unsigned seed) {
  ct_fun *f = trace_case(ctx, c), *jvp = NULL, *vjp = NULL, *hvp = NULL;
  assert_int_equal(ct_fun_jvp(ctx, f, c->arity, NULL, &jvp), CT_OK);
  assert_int_equal(ct_fun_vjp(ctx, f, 1, NULL, &vjp), CT_OK);
  assert_int_equal(ct_fun_hvp(ctx, f, NULL, &hvp), CT_OK);
  prepare(ctx, jvp);
  prepare(ctx, vjp);
  prepare(ctx, hvp);
  int n = c->arity;
  for (int p = 0; p < N_POINTS; p++) {
    double x[2];
    for (int i = 0; i < n; i++) x[i] = sample(c, &seed);
    if (c->build == b_min || c->build == b_max)
      if (fabs(x[0] - x[1]) < 1e-3) continue;

    double y;
    const double *in1[1] = {x};
    eval(ctx, f, in1, 0, &y);
    expect_close("value", c, x, y, c->f(x), 1e-15);

    double grad[2], hess[4];
    c->grad(x, grad);
    c->hess(x, hess);

    /* JVP with identity directions: all partials in one vector-mode call. */
    double seeds[4] = {1, 0, 0, 1}, dir1[1] = {1}, jv[2];
    const double *jin[2] = {x, n == 1 ? dir1 : seeds};
    eval(ctx, jvp, jin, 1, jv);

    /* VJP with seed 1: the gradient. */
    double one = 1, vj[2];
    const double *vin[2] = {x, &one};
    eval(ctx, vjp, vin, 1, vj);

    for (int i = 0; i < n; i++) {
      expect_close("jvp vs analytic", c, x, jv[i], grad[i], 1e-13);
      expect_close("vjp vs analytic", c, x, vj[i], grad[i], 1e-13);
      double h = 1e-6 * fmax(1.0, fabs(x[i]));
      expect_close("jvp vs central difference", c, x, jv[i], central(c, x, i, h), 1e-6);
      if (c->cf)
        expect_close("jvp vs complex step", c, x, jv[i], complex_step(c, x, i), 1e-13);
    }

    /* HVP with unit directions: the Hessian column by column. */
    for (int j = 0; j < n; j++) {
      double dir[2] = {0, 0}, hv[2];
      dir[j] = 1;
      const double *hin[3] = {x, &one, dir};
      eval(ctx, hvp, hin, 0, hv);
      for (int i = 0; i < n; i++) {
        expect_close("hvp vs analytic", c, x, hv[i], hess[i * n + j], 1e-12);
        /* Central difference of the AD gradient. */
        double step = 1e-5 * fmax(1.0, fabs(x[j])), xp[2] = {x[0], x[1]}, xm[2] = {x[0], x[1]};
        xp[j] += step;
        xm[j] -= step;
        double gp[2], gm[2];
        const double *pin[2] = {xp, &one}, *min[2] = {xm, &one};
        eval(ctx, vjp, pin, 1, gp);
        eval(ctx, vjp, min, 1, gm);
        int kinked = c->build == b_select_lt && fabs(x[0] - x[1]) < 2 * step;
        if (!kinked)
          expect_close("hvp vs central difference of gradient", c, x, hv[i],
                       (gp[i] - gm[i]) / (2 * step), 1e-6);
      }
    }
  }
  ct_fun_free(f);
  ct_fun_free(jvp);
  ct_fun_free(vjp);
  ct_fun_free(hvp);
}

static void test_all_ops(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  for (int i = 0; i < N_CASES; i++) check_case(ctx, &cases[i], 1234u + (unsigned)i);
  ct_context_free(ctx);
}

/* ---- Documented conventions at singular and non-differentiable points ---- */

/* d/dx_i of y = build(x) at x, through the VJP. */
static double partial_at(ct_context *ctx, ct_var (*build)(const ct_var *),
                         int arity, const double *x, int i, double *value) {
  op_case c = {"convention", arity, build, NULL, NULL, NULL, NULL, 0, 0};
  ct_fun *f = trace_case(ctx, &c), *vjp = NULL;
  assert_int_equal(ct_fun_vjp(ctx, f, 1, NULL, &vjp), CT_OK);
  prepare(ctx, vjp);
  double one = 1, g[2], y;
  const double *in[2] = {x, &one};
  double *out[2] = {&y, g};
  double work[256];
  assert_true(ct_fun_work_size(vjp) <= 256);
  assert_true(ct_fun_eval(ctx, vjp, in, out, work) >= 0);
  ct_fun_free(f);
  ct_fun_free(vjp);
  if (value) *value = y;
  return g[i];
}

static ct_var b_sqrt_if_positive(const ct_var *v) {
  return ct_select(ct_gt(v[0], ct_const(v[0].g, 0)), ct_sqrt(v[0]), ct_const(v[0].g, 0));
}

static void test_conventions(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  double v, zero[2] = {0, 0}, tie[2] = {1.5, 1.5}, neg[1] = {-1};
  assert_true(partial_at(ctx, b_abs, 1, zero, 0, &v) == 0);          /* abs'(0) = 0 */
  assert_true(partial_at(ctx, b_min, 2, tie, 0, &v) == 1);           /* ties: first */
  assert_true(partial_at(ctx, b_min, 2, tie, 1, &v) == 0);
  assert_true(partial_at(ctx, b_max, 2, tie, 0, &v) == 1);
  assert_true(partial_at(ctx, b_max, 2, tie, 1, &v) == 0);
  double two[1] = {2.0};
  assert_true(partial_at(ctx, b_floor, 1, two, 0, &v) == 0 && v == 2); /* floor' = 0 */
  assert_true(partial_at(ctx, b_hypot, 2, zero, 0, &v) == 0 && v == 0);
  assert_true(partial_at(ctx, b_atan2, 2, zero, 1, &v) == 0 && v == 0);
  /* select differentiates the taken branch only: no NaN from sqrt(-1). */
  assert_true(partial_at(ctx, b_sqrt_if_positive, 1, neg, 0, &v) == 0 && v == 0);
  /* IEEE results at singular points, no trap. */
  double d = partial_at(ctx, b_log, 1, zero, 0, &v);
  assert_true(isinf(v) && v < 0 && isinf(d) && d > 0);
  double one_zero[2] = {1, 0};
  d = partial_at(ctx, b_div, 2, one_zero, 0, &v);
  assert_true(isinf(v) && isinf(d));
  ct_context_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_all_ops),
      cmocka_unit_test(test_conventions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
