/* cotangent/dual.h: forward-mode dual numbers behind _Generic math.
 *
 * Every op is checked, at seeded random points of its domain, against an
 * analytic derivative written independently of the header (1e-13 relative),
 * a central difference (1e-7 relative plus the difference's rounding error)
 * and, where a complex counterpart exists, the complex step f(x + ih)/h with
 * h = 1e-30 (1e-13 relative). Binary ops are checked one partial per
 * direction (direction 0 seeds the first argument, 1 the second), and their
 * mixed double/dual forms must agree with the dual/dual one. Then the
 * documented conventions at kinks and singular points, the result types of the
 * dispatch, a Robertson right-hand side written once for double and ct_dual,
 * and finally that the checker itself catches wrong derivatives.
 *
 * CT_TEST_SEED in the environment replaces the default seed. */
#define CT_DUAL_N 2

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <complex.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "ct_test.h"
#include "cotangent/dual.h"

#define IS_DUAL(e) _Generic((e), ct_dual: 1, default: 0)
#define IS_DOUBLE(e) _Generic((e), double: 1, default: 0)

#define NPTS 8
#define RTOL_EXACT 1e-13 /* dual vs analytic, dual vs complex step */
#define RTOL_FD 1e-7     /* dual vs central difference */
#define CSTEP_H 1e-30

/* What a check found wrong, as bits. */
enum {
  BAD_VALUE = 1,    /* the dual's value differs from the double evaluation */
  BAD_ANALYTIC = 2, /* tangent vs the analytic derivative */
  BAD_FD = 4,       /* tangent vs the central difference */
  BAD_CSTEP = 8,    /* tangent vs the complex step */
  BAD_DIRS = 16,    /* directions mixed up, or mixed forms disagree */
  BAD_TYPES = 32    /* _Generic picked the wrong result type */
};

static long n_checks; /* comparisons made, reported at the end */
static int quiet;     /* set while the checker is tested on wrong ops */

/* ---- Seeded random points ------------------------------------------------ */

static uint64_t rng_seed = 0x5eed2024c07a9e17ULL;
static uint64_t rng_state;

static void rng_reset(void) {
  const char *s = getenv("CT_TEST_SEED");
  if (s && *s) rng_seed = strtoull(s, NULL, 0);
  rng_state = rng_seed;
}

static double rng_uniform(double lo, double hi) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL); /* splitmix64 */
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return lo + (hi - lo) * ((double)(z >> 11) * 0x1.0p-53);
}

/* ---- Comparisons --------------------------------------------------------- */

/* |got - want| <= rtol |want| + atol; NaN fails. */
static int close_to(const char *op, const char *what, double x, double y,
                    double got, double want, double rtol, double atol) {
  n_checks++;
  if (fabs(got - want) <= rtol * fabs(want) + atol) return 0;
  if (!quiet)
    print_error("%s at (%.17g, %.17g): %s: got %.17g, want %.17g "
                "(rel. error %.3g; seed %#llx)\n",
                op, x, y, what, got, want, fabs(got - want) / fabs(want),
                (unsigned long long)rng_seed);
  return 1;
}

static int same(const char *op, const char *what, double x, double got,
                double want) {
  n_checks++;
  if (got == want || (isnan(got) && isnan(want))) return 0;
  if (!quiet)
    print_error("%s at %.17g: %s: got %.17g, want exactly %.17g\n", op, x,
                what, got, want);
  return 1;
}

/* x + i h, without CMPLX (which glibc defines for GCC only). A complex is
 * laid out as double[2]. */
static double complex cstep(double x) {
  double complex z;
  ((double *)&z)[0] = x;
  ((double *)&z)[1] = CSTEP_H;
  return z;
}

/* Central difference of g along one variable at x, with the step actually
 * taken as the divisor, and the bound on its rounding error in *round. */
static double central_diff(double (*g)(double, const void *), const void *ud,
                           double x, double *round) {
  double h = 1e-5 * fmax(1.0, fabs(x));
  double xp = x + h, xm = x - h;
  double fp = g(xp, ud), fm = g(xm, ud);
  *round = 4.0 * DBL_EPSILON * (fabs(fp) + fabs(fm)) / (xp - xm);
  return (fp - fm) / (xp - xm);
}

/* ---- Unary ops ----------------------------------------------------------- */

typedef struct unary_op {
  const char *name;
  double (*f)(double);   /* ct_math_OP on a double */
  ct_dual (*fx)(ct_dual); /* ct_math_OP on a ct_dual */
  double (*df)(double);  /* analytic derivative, not taken from the header */
  double complex (*fc)(double complex); /* complex counterpart, or NULL */
  double lo, hi;         /* domain of the random points */
  int off_integers;      /* keep points 0.05 away from integers */
  int (*types)(void);    /* 1 if the dispatch gives the right types */
} unary_op;

/* The wrappers go through the ct_math_ macros, so the table tests the
 * dispatch as well as the ct_dual_ functions. */
#define DEFINE_UNARY(op)                                                  \
  static double op##_r(double x) { return ct_math_##op(x); }              \
  static ct_dual op##_x(ct_dual x) { return ct_math_##op(x); }            \
  static int op##_types(void) {                                           \
    double r = 0.5;                                                       \
    const ct_dual x = ct_dual_const(0.5);                                 \
    return IS_DOUBLE(ct_math_##op(r)) && IS_DUAL(ct_math_##op(x)) &&      \
           IS_DOUBLE(ct_math_##op(1)) && IS_DOUBLE(ct_math_##op(0.5f)) && \
           IS_DUAL(ct_math_##op(ct_math_##op(x)));                        \
  }

DEFINE_UNARY(neg)
DEFINE_UNARY(sqr)
DEFINE_UNARY(exp)
DEFINE_UNARY(log)
DEFINE_UNARY(log1p)
DEFINE_UNARY(expm1)
DEFINE_UNARY(sqrt)
DEFINE_UNARY(cbrt)
DEFINE_UNARY(sin)
DEFINE_UNARY(cos)
DEFINE_UNARY(tan)
DEFINE_UNARY(asin)
DEFINE_UNARY(acos)
DEFINE_UNARY(atan)
DEFINE_UNARY(sinh)
DEFINE_UNARY(cosh)
DEFINE_UNARY(tanh)
DEFINE_UNARY(asinh)
DEFINE_UNARY(acosh)
DEFINE_UNARY(atanh)
DEFINE_UNARY(erf)
DEFINE_UNARY(abs)
DEFINE_UNARY(sign)
DEFINE_UNARY(floor)
DEFINE_UNARY(ceil)

/* Analytic derivatives, in forms other than the header's where there is one. */
static double d_neg(double x) { (void)x; return -1.0; }
static double d_sqr(double x) { return x + x; }
static double d_exp(double x) { return exp(x); }
static double d_log(double x) { return 1.0 / x; }
static double d_log1p(double x) { return 1.0 / (x + 1.0); }
static double d_expm1(double x) { return expm1(x) + 1.0; }
static double d_sqrt(double x) { return sqrt(x) / (2.0 * x); }
static double d_cbrt(double x) { return cbrt(x) / (3.0 * x); }
static double d_sin(double x) { return cos(x); }
static double d_cos(double x) { return -sin(x); }
static double d_tan(double x) { return 1.0 / (cos(x) * cos(x)); }
static double d_asin(double x) { return 1.0 / sqrt(1.0 - x * x); }
static double d_acos(double x) { return -1.0 / sqrt(1.0 - x * x); }
static double d_atan(double x) { return 1.0 / (x * x + 1.0); }
static double d_sinh(double x) { return cosh(x); }
static double d_cosh(double x) { return sinh(x); }
static double d_tanh(double x) { double t = tanh(x); return 1.0 - t * t; }
static double d_asinh(double x) { return 1.0 / sqrt(x * x + 1.0); }
static double d_acosh(double x) { return 1.0 / sqrt(x * x - 1.0); }
static double d_atanh(double x) { return 1.0 / (1.0 - x * x); }
static double d_erf(double x) { return 2.0 * exp(-x * x) / sqrt(acos(-1.0)); }
static double d_one(double x) { (void)x; return 1.0; }
static double d_minus_one(double x) { (void)x; return -1.0; }
static double d_zero(double x) { (void)x; return 0.0; }

/* Complex counterparts for the complex step. */
static double complex c_neg(double complex z) { return -z; }
static double complex c_sqr(double complex z) { return z * z; }
static double complex c_log1p(double complex z) { return clog(1.0 + z); }
static double complex c_expm1(double complex z) { return cexp(z) - 1.0; }
static double complex c_cbrt(double complex z) {
  return creal(z) < 0 ? -cpow(-z, 1.0 / 3.0) : cpow(z, 1.0 / 3.0);
}
static double complex c_ident(double complex z) { return z; }
static double complex c_negate(double complex z) { return -z; }

#define U(op, label, fc, lo, hi, offint) \
  {#op label, op##_r, op##_x, d_##op, fc, lo, hi, offint, op##_types}
#define U_D(op, label, df, fc, lo, hi, offint) \
  {#op label, op##_r, op##_x, df, fc, lo, hi, offint, op##_types}

static const unary_op unary_ops[] = {
    U(neg, "", c_neg, -3, 3, 0),
    U(sqr, "", c_sqr, -3, 3, 0),
    U(exp, "", cexp, -5, 5, 0),
    U(log, "", clog, 0.1, 10, 0),
    U(log1p, "", c_log1p, -0.9, 5, 0),
    U(expm1, "", c_expm1, -5, 5, 0),
    U(sqrt, "", csqrt, 0.1, 10, 0),
    U(cbrt, "(+)", c_cbrt, 0.1, 8, 0),
    U(cbrt, "(-)", c_cbrt, -8, -0.1, 0),
    U(sin, "", csin, -4, 4, 0),
    U(cos, "", ccos, -4, 4, 0),
    U(tan, "", ctan, -1.4, 1.4, 0),
    U(asin, "", casin, -0.9, 0.9, 0),
    U(acos, "", cacos, -0.9, 0.9, 0),
    U(atan, "", catan, -5, 5, 0),
    U(sinh, "", csinh, -4, 4, 0),
    U(cosh, "", ccosh, -4, 4, 0),
    U(tanh, "", ctanh, -3, 3, 0),
    U(asinh, "", casinh, -5, 5, 0),
    U(acosh, "", cacosh, 1.1, 6, 0),
    U(atanh, "", catanh, -0.9, 0.9, 0),
    U(erf, "", NULL, -3, 3, 0),
    U_D(abs, "(+)", d_one, c_ident, 0.1, 3, 0),
    U_D(abs, "(-)", d_minus_one, c_negate, -3, -0.1, 0),
    U_D(sign, "(+)", d_zero, NULL, 0.1, 3, 0),
    U_D(sign, "(-)", d_zero, NULL, -3, -0.1, 0),
    U_D(floor, "", d_zero, NULL, -5, 5, 1),
    U_D(ceil, "", d_zero, NULL, -5, 5, 1),
};

static double unary_eval(double x, const void *ud) {
  return ((const unary_op *)ud)->f(x);
}

/* Checks one op at NPTS points; returns the BAD_ bits of what failed. */
static int check_unary(const unary_op *op) {
  int bad = 0;
  const char *n = op->name;
  n_checks++;
  if (!op->types()) {
    if (!quiet) print_error("%s: wrong result type from dispatch\n", n);
    bad |= BAD_TYPES;
  }
  for (int i = 0; i < NPTS; i++) {
    double x = rng_uniform(op->lo, op->hi);
    if (op->off_integers) x = floor(x) + 0.05 + 0.9 * (x - floor(x));
    /* Direction 0 seeded with 1, direction 1 with -0.5. */
    ct_dual r = op->fx(ct_dual_make(x, (const double[]){1.0, -0.5}));
    double d = r.d[0];
    if (same(n, "value", x, r.v, op->f(x))) bad |= BAD_VALUE;
    if (same(n, "direction 1 = -0.5 * direction 0", x, r.d[1], -0.5 * d))
      bad |= BAD_DIRS;
    if (close_to(n, "tangent vs analytic", x, 0, d, op->df(x), RTOL_EXACT,
                 1e-300))
      bad |= BAD_ANALYTIC;
    double round, fd = central_diff(unary_eval, op, x, &round);
    if (close_to(n, "tangent vs central difference", x, 0, d, fd, RTOL_FD,
                 round))
      bad |= BAD_FD;
    if (op->fc) {
      double cs = cimag(op->fc(cstep(x))) / CSTEP_H;
      if (close_to(n, "tangent vs complex step", x, 0, d, cs, RTOL_EXACT,
                   1e-300))
        bad |= BAD_CSTEP;
    }
  }
  return bad;
}

static void test_unary_ops(void **state) {
  (void)state;
  rng_reset();
  int failed = 0;
  for (size_t i = 0; i < sizeof unary_ops / sizeof unary_ops[0]; i++)
    if (check_unary(&unary_ops[i])) failed++;
  assert_int_equal(failed, 0);
}

/* ct_math_powi: integer exponents, both signs of the base. The complex
 * counterpart is repeated multiplication (cpow loses the tiny imaginary part
 * of a negative base in its argument). */
static int powi_n;
static double powi_r(double x) { return ct_math_powi(x, powi_n); }
static ct_dual powi_x(ct_dual x) { return ct_math_powi(x, powi_n); }
static double d_powi(double x) {
  return powi_n == 0 ? 0.0 : powi_n * pow(x, powi_n) / x;
}
static double complex c_powi(double complex z) {
  double complex p = 1.0;
  for (int k = 0; k < abs(powi_n); k++) p *= z;
  return powi_n < 0 ? 1.0 / p : p;
}
static int powi_types(void) {
  ct_dual x = ct_dual_const(2.0);
  return IS_DOUBLE(ct_math_powi(2.0, 3)) && IS_DOUBLE(ct_math_powi(2, 3)) &&
         IS_DUAL(ct_math_powi(x, 3));
}

static void test_powi(void **state) {
  (void)state;
  rng_reset();
  static const int ns[] = {-3, -2, -1, 0, 1, 2, 3, 7};
  int failed = 0;
  for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
    powi_n = ns[i];
    const unary_op pos = {"powi(+)", powi_r, powi_x, d_powi, c_powi,
                          0.2, 2.0, 0, powi_types};
    const unary_op neg = {"powi(-)", powi_r, powi_x, d_powi, c_powi,
                          -2.0, -0.2, 0, powi_types};
    if (check_unary(&pos) || check_unary(&neg)) {
      print_error("powi failed with n = %d\n", powi_n);
      failed++;
    }
  }
  assert_int_equal(failed, 0);
}

/* ---- Binary ops ---------------------------------------------------------- */

typedef struct binary_op {
  const char *name;
  double (*f)(double, double);     /* ct_math_OP(double, double) */
  ct_dual (*fxx)(ct_dual, ct_dual); /* ct_math_OP(ct_dual, ct_dual) */
  ct_dual (*fxr)(ct_dual, double);  /* ct_math_OP(ct_dual, double) */
  ct_dual (*frx)(double, ct_dual);  /* ct_math_OP(double, ct_dual) */
  double (*da)(double, double);    /* analytic partials */
  double (*db)(double, double);
  double complex (*ca)(double complex, double); /* complex in a, or NULL */
  double complex (*cb)(double, double complex); /* complex in b, or NULL */
  double alo, ahi, blo, bhi;
  int (*types)(void);
} binary_op;

#define DEFINE_BINARY(op)                                                    \
  static double op##_rr(double a, double b) { return ct_math_##op(a, b); }   \
  static ct_dual op##_xx(ct_dual a, ct_dual b) { return ct_math_##op(a, b); } \
  static ct_dual op##_xr(ct_dual a, double b) { return ct_math_##op(a, b); } \
  static ct_dual op##_rx(double a, ct_dual b) { return ct_math_##op(a, b); } \
  static int op##_types(void) {                                              \
    double r = 0.5;                                                          \
    const ct_dual x = ct_dual_const(0.75);                                   \
    return IS_DOUBLE(ct_math_##op(r, r)) && IS_DUAL(ct_math_##op(x, x)) &&   \
           IS_DUAL(ct_math_##op(x, r)) && IS_DUAL(ct_math_##op(r, x)) &&     \
           IS_DUAL(ct_math_##op(x, 2)) && IS_DUAL(ct_math_##op(1.5f, x)) &&  \
           IS_DOUBLE(ct_math_##op(1, 2)) && IS_DOUBLE(ct_math_##op(r, 2.0f)); \
  }

DEFINE_BINARY(add)
DEFINE_BINARY(sub)
DEFINE_BINARY(mul)
DEFINE_BINARY(div)
DEFINE_BINARY(pow)
DEFINE_BINARY(atan2)
DEFINE_BINARY(hypot)
DEFINE_BINARY(min)
DEFINE_BINARY(max)

static double da_add(double a, double b) { (void)a; (void)b; return 1.0; }
static double db_add(double a, double b) { (void)a; (void)b; return 1.0; }
static double da_sub(double a, double b) { (void)a; (void)b; return 1.0; }
static double db_sub(double a, double b) { (void)a; (void)b; return -1.0; }
static double da_mul(double a, double b) { (void)a; return b; }
static double db_mul(double a, double b) { (void)b; return a; }
static double da_div(double a, double b) { (void)a; return 1.0 / b; }
static double db_div(double a, double b) { return -a / (b * b); }
static double da_pow(double a, double b) { return b * pow(a, b) / a; }
static double db_pow(double a, double b) { return pow(a, b) * log(a); }
static double da_atan2(double a, double b) { return b / (a * a + b * b); }
static double db_atan2(double a, double b) { return -a / (a * a + b * b); }
static double da_hypot(double a, double b) { return a / sqrt(a * a + b * b); }
static double db_hypot(double a, double b) { return b / sqrt(a * a + b * b); }
static double da_min(double a, double b) { return a <= b ? 1.0 : 0.0; }
static double db_min(double a, double b) { return a <= b ? 0.0 : 1.0; }
static double da_max(double a, double b) { return a >= b ? 1.0 : 0.0; }
static double db_max(double a, double b) { return a >= b ? 0.0 : 1.0; }

static double complex ca_add(double complex z, double b) { return z + b; }
static double complex cb_add(double a, double complex z) { return a + z; }
static double complex ca_sub(double complex z, double b) { return z - b; }
static double complex cb_sub(double a, double complex z) { return a - z; }
static double complex ca_mul(double complex z, double b) { return z * b; }
static double complex cb_mul(double a, double complex z) { return a * z; }
static double complex ca_div(double complex z, double b) { return z / b; }
static double complex cb_div(double a, double complex z) { return a / z; }
static double complex ca_pow(double complex z, double b) { return cpow(z, b); }
static double complex cb_pow(double a, double complex z) { return cpow(a, z); }
/* atan(y/x) differs from atan2(y, x) by a constant, which the step ignores. */
static double complex ca_atan2(double complex z, double b) { return catan(z / b); }
static double complex cb_atan2(double a, double complex z) { return catan(a / z); }
static double complex ca_hypot(double complex z, double b) {
  return csqrt(z * z + b * b);
}
static double complex cb_hypot(double a, double complex z) {
  return csqrt(a * a + z * z);
}
static double complex ca_min(double complex z, double b) {
  return b < creal(z) ? b : z;
}
static double complex cb_min(double a, double complex z) {
  return creal(z) < a ? z : a;
}
static double complex ca_max(double complex z, double b) {
  return b > creal(z) ? b : z;
}
static double complex cb_max(double a, double complex z) {
  return creal(z) > a ? z : a;
}

#define B(op, label, alo, ahi, blo, bhi)                                   \
  {#op label, op##_rr, op##_xx, op##_xr, op##_rx, da_##op, db_##op,       \
   ca_##op, cb_##op, alo, ahi, blo, bhi, op##_types}

static const binary_op binary_ops[] = {
    B(add, "", -3, 3, -3, 3),
    B(sub, "", -3, 3, -3, 3),
    B(mul, "", -3, 3, -3, 3),
    B(div, "(b>0)", -3, 3, 0.5, 3),
    B(div, "(b<0)", -3, 3, -3, -0.5),
    B(pow, "", 0.1, 3, -3, 3),
    B(atan2, "(x>0)", -3, 3, 0.2, 3),
    B(atan2, "(x<0)", 0.2, 3, -3, -0.2),
    B(atan2, "(x<0,y<0)", -3, -0.2, -3, -0.2),
    B(hypot, "", -3, 3, 0.1, 3),
    B(min, "", -3, 3, -3, 3),
    B(max, "", -3, 3, -3, 3),
};

struct partial_ud {
  const binary_op *op;
  double other;
  int which; /* 0: vary a, 1: vary b */
};

static double binary_eval(double x, const void *ud) {
  const struct partial_ud *p = ud;
  return p->which == 0 ? p->op->f(x, p->other) : p->op->f(p->other, x);
}

static int check_binary(const binary_op *op) {
  int bad = 0;
  const char *n = op->name;
  n_checks++;
  if (!op->types()) {
    if (!quiet) print_error("%s: wrong result type from dispatch\n", n);
    bad |= BAD_TYPES;
  }
  for (int i = 0; i < NPTS; i++) {
    double a, b;
    do { /* keep min and max away from their kink */
      a = rng_uniform(op->alo, op->ahi);
      b = rng_uniform(op->blo, op->bhi);
    } while (fabs(a - b) < 1e-3);
    ct_dual r = op->fxx(ct_dual_var(a, 0), ct_dual_var(b, 1));
    ct_dual rxr = op->fxr(ct_dual_var(a, 0), b);
    ct_dual rrx = op->frx(a, ct_dual_var(b, 1));
    double v = op->f(a, b);
    if (same(n, "value (dual, dual)", a, r.v, v) |
        same(n, "value (dual, double)", a, rxr.v, v) |
        same(n, "value (double, dual)", a, rrx.v, v))
      bad |= BAD_VALUE;
    /* The mixed forms treat the double as a constant. */
    if (same(n, "d/da of (dual, double)", a, rxr.d[0], r.d[0]) |
        same(n, "d/db of (dual, double)", a, rxr.d[1], 0.0) |
        same(n, "d/da of (double, dual)", a, rrx.d[0], 0.0) |
        same(n, "d/db of (double, dual)", a, rrx.d[1], r.d[1]))
      bad |= BAD_DIRS;

    double want_a = op->da(a, b), want_b = op->db(a, b);
    if (close_to(n, "d/da vs analytic", a, b, r.d[0], want_a, RTOL_EXACT,
                 1e-300) |
        close_to(n, "d/db vs analytic", a, b, r.d[1], want_b, RTOL_EXACT,
                 1e-300))
      bad |= BAD_ANALYTIC;

    double ra, rb;
    struct partial_ud pa = {op, b, 0}, pb = {op, a, 1};
    double fda = central_diff(binary_eval, &pa, a, &ra);
    double fdb = central_diff(binary_eval, &pb, b, &rb);
    if (close_to(n, "d/da vs central difference", a, b, r.d[0], fda, RTOL_FD,
                 ra) |
        close_to(n, "d/db vs central difference", a, b, r.d[1], fdb, RTOL_FD,
                 rb))
      bad |= BAD_FD;

    double csa = cimag(op->ca(cstep(a), b)) / CSTEP_H;
    double csb = cimag(op->cb(a, cstep(b))) / CSTEP_H;
    if (close_to(n, "d/da vs complex step", a, b, r.d[0], csa, RTOL_EXACT,
                 1e-300) |
        close_to(n, "d/db vs complex step", a, b, r.d[1], csb, RTOL_EXACT,
                 1e-300))
      bad |= BAD_CSTEP;
  }
  return bad;
}

static void test_binary_ops(void **state) {
  (void)state;
  rng_reset();
  int failed = 0;
  for (size_t i = 0; i < sizeof binary_ops / sizeof binary_ops[0]; i++)
    if (check_binary(&binary_ops[i])) failed++;
  assert_int_equal(failed, 0);
}

/* ---- Constructors and dispatch ------------------------------------------- */

static void test_constructors(void **state) {
  (void)state;
  ct_dual c = ct_dual_const(3.5);
  assert_true(c.v == 3.5 && c.d[0] == 0.0 && c.d[1] == 0.0);
  ct_dual v = ct_dual_var(-2.0, 1);
  assert_true(v.v == -2.0 && v.d[0] == 0.0 && v.d[1] == 1.0);
  ct_dual out = ct_dual_var(1.0, 2); /* no direction 2: seeds nothing */
  assert_true(out.d[0] == 0.0 && out.d[1] == 0.0);
  out = ct_dual_var(1.0, -1);
  assert_true(out.d[0] == 0.0 && out.d[1] == 0.0);
  ct_dual m = ct_dual_make(4.0, (const double[]){0.25, -7.0});
  assert_true(m.v == 4.0 && m.d[0] == 0.25 && m.d[1] == -7.0);
  ct_dual z = ct_dual_make(4.0, NULL);
  assert_true(z.v == 4.0 && z.d[0] == 0.0 && z.d[1] == 0.0);
  assert_int_equal(CT_DUAL_N, 2);
  assert_int_equal(sizeof(ct_dual), 3 * sizeof(double));
}

static void test_dispatch(void **state) {
  (void)state;
  ct_dual x = ct_dual_var(0.5, 0);
  double r = 0.5;
  float f = 0.5f;
  assert_true(IS_DOUBLE(ct_math_value(r)) && IS_DOUBLE(ct_math_value(x)));
  assert_true(ct_math_value(x) == 0.5 && ct_math_value(r) == 0.5);
  assert_true(ct_math_value(ct_math_sin(x)) == sin(0.5));
  /* Nesting: a dual anywhere makes the whole expression dual. */
  assert_true(IS_DUAL(ct_math_add(ct_math_mul(2, x), f)));
  assert_true(IS_DOUBLE(ct_math_add(ct_math_mul(2, r), f)));
  assert_true(IS_DUAL(ct_math_pow(r, ct_math_exp(x))));
  /* The argument is evaluated once even though the macro names it twice. */
  int calls = 0;
  ct_dual xs[2] = {ct_dual_var(1.0, 0), ct_dual_var(2.0, 1)};
  ct_dual *p = xs;
  ct_dual y = ct_math_mul(*p++, (calls++, 3.0));
  assert_int_equal(calls, 1);
  assert_ptr_equal(p, xs + 1);
  assert_true(y.v == 3.0 && y.d[0] == 3.0 && y.d[1] == 0.0);
}

/* ---- Conventions --------------------------------------------------------- */

static void expect(const char *what, ct_dual r, double v, double d0,
                   double d1) {
  if (same(what, "value", 0, r.v, v) | same(what, "d[0]", 0, r.d[0], d0) |
      same(what, "d[1]", 0, r.d[1], d1))
    fail_msg("%s: got (%g; %g, %g), want (%g; %g, %g)", what, r.v, r.d[0],
             r.d[1], v, d0, d1);
}

static void test_kinks(void **state) {
  (void)state;
  expect("abs(+0)", ct_math_abs(ct_dual_var(0.0, 0)), 0.0, 0.0, 0.0);
  expect("abs(-0)", ct_math_abs(ct_dual_var(-0.0, 0)), 0.0, 0.0, 0.0);
  expect("abs(-2)", ct_math_abs(ct_dual_var(-2.0, 0)), 2.0, -1.0, 0.0);
  assert_true(signbit(ct_math_abs(ct_dual_var(-0.0, 0)).v) == 0);
  expect("sign(0)", ct_math_sign(ct_dual_var(0.0, 0)), 0.0, 0.0, 0.0);
  expect("sign(-3)", ct_math_sign(ct_dual_var(-3.0, 0)), -1.0, 0.0, 0.0);
  expect("sign(5)", ct_math_sign(ct_dual_var(5.0, 1)), 1.0, 0.0, 0.0);
  assert_true(ct_math_sign(0.0) == 0.0 && ct_math_sign(-7.0) == -1.0);
  expect("floor(2)", ct_math_floor(ct_dual_var(2.0, 0)), 2.0, 0.0, 0.0);
  expect("floor(-0.5)", ct_math_floor(ct_dual_var(-0.5, 0)), -1.0, 0.0, 0.0);
  expect("ceil(2)", ct_math_ceil(ct_dual_var(2.0, 0)), 2.0, 0.0, 0.0);
  expect("ceil(-0.5)", ct_math_ceil(ct_dual_var(-0.5, 1)), -0.0, 0.0, 0.0);

  /* Ties: the first argument, value and tangent, in every form. */
  ct_dual a = ct_dual_var(1.0, 0), b = ct_dual_var(1.0, 1);
  expect("min(a, b) tie", ct_math_min(a, b), 1.0, 1.0, 0.0);
  expect("min(b, a) tie", ct_math_min(b, a), 1.0, 0.0, 1.0);
  expect("max(a, b) tie", ct_math_max(a, b), 1.0, 1.0, 0.0);
  expect("max(b, a) tie", ct_math_max(b, a), 1.0, 0.0, 1.0);
  expect("min(a, 1.0) tie", ct_math_min(a, 1.0), 1.0, 1.0, 0.0);
  expect("min(1.0, a) tie", ct_math_min(1.0, a), 1.0, 0.0, 0.0);
  expect("max(a, 1.0) tie", ct_math_max(a, 1.0), 1.0, 1.0, 0.0);
  expect("max(1.0, a) tie", ct_math_max(1.0, a), 1.0, 0.0, 0.0);
  assert_true(IS_DUAL(ct_math_min(1.0, a)));
  expect("min(a, 0.5)", ct_math_min(a, 0.5), 0.5, 0.0, 0.0);
  expect("max(0.5, a)", ct_math_max(0.5, a), 1.0, 1.0, 0.0);
  /* A NaN in either argument propagates, as in the traced IR. */
  expect("min(a, nan)", ct_math_min(a, ct_dual_var(NAN, 1)), NAN, 0.0, 1.0);
  expect("max(nan, b)", ct_math_max(ct_dual_var(NAN, 0), b), NAN, 1.0, 0.0);
  assert_true(isnan(ct_math_min(1.0, NAN)) && isnan(ct_math_max(NAN, 1.0)));
  assert_true(signbit(ct_math_min(0.0, -0.0)) == 0);

  expect("hypot(0, 0)", ct_math_hypot(ct_dual_var(0, 0), ct_dual_var(0, 1)),
         0.0, 0.0, 0.0);
  expect("hypot(0, 0.0)", ct_math_hypot(ct_dual_var(0, 0), 0.0), 0.0, 0.0, 0.0);
  expect("hypot(0.0, 0)", ct_math_hypot(0.0, ct_dual_var(0, 1)), 0.0, 0.0, 0.0);
  expect("hypot(3, 4)", ct_math_hypot(ct_dual_var(3, 0), ct_dual_var(4, 1)),
         5.0, 0.6, 0.8);
  expect("atan2(0, 0)", ct_math_atan2(ct_dual_var(0, 0), ct_dual_var(0, 1)),
         0.0, 0.0, 0.0);
}

static void test_ieee_singular_points(void **state) {
  (void)state;
  const double inf = INFINITY;
  expect("log(0)", ct_math_log(ct_dual_var(0.0, 0)), -inf, inf, 0.0);
  expect("log(const 0)", ct_math_log(ct_dual_const(0.0)), -inf, 0.0, 0.0);
  assert_true(isnan(ct_math_log(ct_dual_var(-1.0, 0)).v));
  expect("sqrt(0)", ct_math_sqrt(ct_dual_var(0.0, 0)), 0.0, inf, 0.0);
  expect("sqrt(const 0)", ct_math_sqrt(ct_dual_const(0.0)), 0.0, 0.0, 0.0);
  expect("cbrt(0)", ct_math_cbrt(ct_dual_var(0.0, 1)), 0.0, 0.0, inf);
  expect("asin(1)", ct_math_asin(ct_dual_var(1.0, 0)), asin(1.0), inf, 0.0);
  expect("atanh(1)", ct_math_atanh(ct_dual_var(1.0, 0)), inf, inf, 0.0);
  expect("acosh(1)", ct_math_acosh(ct_dual_var(1.0, 0)), 0.0, inf, 0.0);
  expect("exp(1000)", ct_math_exp(ct_dual_var(1000.0, 0)), inf, inf, 0.0);

  /* Division by zero, in each form. */
  expect("1.0 / x(0)", ct_math_div(1.0, ct_dual_var(0.0, 0)), inf, -inf, 0.0);
  expect("x(1) / 0.0", ct_math_div(ct_dual_var(1.0, 0), 0.0), inf, inf, 0.0);
  expect("x(1) / const 0",
         ct_math_div(ct_dual_var(1.0, 0), ct_dual_const(0.0)), inf, inf, 0.0);
  expect("const 1 / x(0)",
         ct_math_div(ct_dual_const(1.0), ct_dual_var(0.0, 1)), inf, 0.0, -inf);
  assert_true(isnan(ct_math_div(ct_dual_var(0.0, 0), 0.0).v));
  /* Multiplying by an infinite constant leaves other directions at 0. */
  expect("x(2) * inf", ct_math_mul(ct_dual_var(2.0, 0), inf), inf, inf, 0.0);

  /* pow with a real exponent: no log term when the exponent is constant. */
  expect("pow(x(0), 2.5)", ct_math_pow(ct_dual_var(0.0, 0), 2.5), 0.0, 0.0, 0.0);
  expect("pow(x(-2), 3.0)", ct_math_pow(ct_dual_var(-2.0, 0), 3.0), -8.0, 12.0,
         0.0);
  expect("pow(x(-2), const 3)",
         ct_math_pow(ct_dual_var(-2.0, 0), ct_dual_const(3.0)), -8.0, 12.0, 0.0);
  expect("pow(x(0), 0.0)", ct_math_pow(ct_dual_var(0.0, 0), 0.0), 1.0, 0.0, 0.0);
  expect("pow(x(0), 1.0)", ct_math_pow(ct_dual_var(0.0, 0), 1.0), 0.0, 1.0, 0.0);
  expect("pow(x(0), 0.5)", ct_math_pow(ct_dual_var(0.0, 0), 0.5), 0.0, inf, 0.0);
  expect("pow(0.0, y(2))", ct_math_pow(0.0, ct_dual_var(2.0, 1)), 0.0, 0.0, 0.0);
  ct_dual p = ct_math_pow(ct_dual_var(2.0, 0), ct_dual_var(3.0, 1));
  assert_true(p.v == 8.0 && p.d[0] == 12.0 && fabs(p.d[1] - 8.0 * log(2.0)) <
                                                  1e-14);
  /* A varying exponent on a negative base: the y-partial is NaN, the
   * x-partial is not affected. */
  p = ct_math_pow(ct_dual_var(-2.0, 0), ct_dual_var(3.0, 1));
  assert_true(p.v == -8.0 && p.d[0] == 12.0 && isnan(p.d[1]));
  expect("powi(x(0), -1)", ct_math_powi(ct_dual_var(0.0, 0), -1), inf, -inf,
         0.0);
  expect("powi(x(0), 0)", ct_math_powi(ct_dual_var(0.0, 0), 0), 1.0, 0.0, 0.0);
  expect("powi(x(0), 1)", ct_math_powi(ct_dual_var(0.0, 0), 1), 0.0, 1.0, 0.0);
}

/* ---- Generic code: Robertson's right-hand side, written once -------------- */

/* f(y) of Robertson's kinetics, for any T that the ct_math_ macros accept. */
#define ROBERTSON_RHS(T, y, f)                                \
  do {                                                        \
    T r1_ = ct_math_mul(0.04, (y)[0]);                        \
    T r2_ = ct_math_mul(1.0e4, ct_math_mul((y)[1], (y)[2]));  \
    T r3_ = ct_math_mul(3.0e7, ct_math_sqr((y)[1]));          \
    (f)[0] = ct_math_add(ct_math_neg(r1_), r2_);              \
    (f)[1] = ct_math_sub(ct_math_sub(r1_, r2_), r3_);         \
    (f)[2] = r3_;                                             \
  } while (0)

static void robertson_real(const double y[3], double f[3]) {
  ROBERTSON_RHS(double, y, f);
}
static void robertson_dual(const ct_dual y[3], ct_dual f[3]) {
  ROBERTSON_RHS(ct_dual, y, f);
}

static void robertson_jacobian(const double y[3], double J[3][3]) {
  J[0][0] = -0.04, J[0][1] = 1.0e4 * y[2], J[0][2] = 1.0e4 * y[1];
  J[1][0] = 0.04, J[1][1] = -1.0e4 * y[2] - 6.0e7 * y[1],
  J[1][2] = -1.0e4 * y[1];
  J[2][0] = 0.0, J[2][1] = 6.0e7 * y[1], J[2][2] = 0.0;
}

static void test_robertson_generic(void **state) {
  (void)state;
  rng_reset();
  double states[4][3] = {{1.0, 0.0, 0.0}, {0.9, 2.0e-5, 0.1}, {0, 0, 0}, {0, 0, 0}};
  for (int s = 2; s < 4; s++)
    for (int i = 0; i < 3; i++) states[s][i] = rng_uniform(0.0, i == 1 ? 1e-4 : 1.0);
  int bad = 0;
  for (int s = 0; s < 4; s++) {
    const double *y = states[s];
    double f[3], J[3][3], Jd[3][3];
    robertson_real(y, f);
    robertson_jacobian(y, J);
    /* Two passes of two directions: columns 0 and 1, then column 2. */
    ct_dual yd[3] = {ct_dual_var(y[0], 0), ct_dual_var(y[1], 1),
                     ct_dual_const(y[2])};
    ct_dual fd[3];
    robertson_dual(yd, fd);
    for (int i = 0; i < 3; i++) {
      /* Not bit for bit: a compiler may contract a*b + c differently. */
      bad |= close_to("robertson", "f value", y[0], y[1], fd[i].v, f[i],
                      RTOL_EXACT, 1e-300);
      Jd[i][0] = fd[i].d[0];
      Jd[i][1] = fd[i].d[1];
    }
    yd[0] = ct_dual_const(y[0]);
    yd[1] = ct_dual_const(y[1]);
    yd[2] = ct_dual_var(y[2], 0);
    robertson_dual(yd, fd);
    for (int i = 0; i < 3; i++) {
      Jd[i][2] = fd[i].d[0];
      bad |= same("robertson", "unused direction", y[0], fd[i].d[1], 0.0);
    }
    for (int i = 0; i < 3; i++)
      for (int j = 0; j < 3; j++)
        bad |= close_to("robertson", "Jacobian entry", i, j, Jd[i][j], J[i][j],
                        RTOL_EXACT, 0.0);
    /* Column 1 of the Jacobian, whatever the state. */
    bad |= same("robertson", "J[0][0]", y[0], Jd[0][0], -0.04) |
           same("robertson", "J[1][0]", y[0], Jd[1][0], 0.04) |
           same("robertson", "J[2][0]", y[0], Jd[2][0], 0.0);
  }
  assert_int_equal(bad, 0);
}

/* ---- The checker catches wrong derivatives -------------------------------- */

static ct_dual sin_scaled(ct_dual x) { /* tangent off by 1e-10 relative */
  ct_dual r = ct_math_sin(x);
  for (int k = 0; k < CT_DUAL_N; k++) r.d[k] *= 1.0 + 1e-10;
  return r;
}
static ct_dual sin_flipped(ct_dual x) { /* tangent of the wrong sign */
  return ct_math_neg(ct_math_sub(ct_math_sin(x), 2.0 * sin(x.v)));
}
static ct_dual sin_shifted(ct_dual x) { /* value off by one ulp */
  ct_dual r = ct_math_sin(x);
  r.v = nextafter(r.v, INFINITY);
  return r;
}
static ct_dual sin_one_direction(ct_dual x) { /* drops direction 1 */
  ct_dual r = ct_math_sin(x);
  r.d[1] = 0.0;
  return r;
}
static int types_wrong(void) { return 0; }
static ct_dual mul_wrong_b(ct_dual a, ct_dual b) { /* d/db off by 1e-6 */
  ct_dual r = ct_math_mul(a, b);
  r.d[1] *= 1.0 + 1e-6;
  return r;
}

static void test_checker_catches_errors(void **state) {
  (void)state;
  quiet = 1;
  rng_reset();
  unary_op op = {"sin", sin_r, sin_scaled, d_sin, csin, -4, 4, 0, sin_types};
  assert_int_equal(check_unary(&op), BAD_ANALYTIC | BAD_CSTEP);
  op.fx = sin_flipped;
  assert_int_equal(check_unary(&op) & (BAD_ANALYTIC | BAD_FD | BAD_CSTEP),
                   BAD_ANALYTIC | BAD_FD | BAD_CSTEP);
  op.fx = sin_shifted;
  assert_int_equal(check_unary(&op), BAD_VALUE);
  op.fx = sin_one_direction;
  assert_int_equal(check_unary(&op), BAD_DIRS);
  op.fx = sin_x;
  op.types = types_wrong;
  assert_int_equal(check_unary(&op), BAD_TYPES);
  op.types = sin_types;
  op.df = d_cos; /* a wrong analytic derivative is caught too */
  assert_true(check_unary(&op) & BAD_ANALYTIC);

  binary_op bop = binary_ops[2]; /* mul */
  assert_string_equal(bop.name, "mul");
  assert_int_equal(check_binary(&bop), 0);
  bop.fxx = mul_wrong_b;
  assert_int_equal(check_binary(&bop), BAD_ANALYTIC | BAD_FD | BAD_CSTEP |
                                           BAD_DIRS);
  quiet = 0;
}

static int report_checks(void **state) {
  (void)state;
  printf("ad.dual: %ld comparisons\n", n_checks);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_constructors),
      cmocka_unit_test(test_dispatch),
      cmocka_unit_test(test_unary_ops),
      cmocka_unit_test(test_powi),
      cmocka_unit_test(test_binary_ops),
      cmocka_unit_test(test_kinks),
      cmocka_unit_test(test_ieee_singular_points),
      cmocka_unit_test(test_robertson_generic),
      cmocka_unit_test(test_checker_catches_errors),
  };
  return cmocka_run_group_tests(tests, NULL, report_checks);
}
