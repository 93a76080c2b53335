/* Cotangent dual numbers: header-only forward-mode AD for generic C code.
 *
 * A ct_dual carries a value and CT_DUAL_N tangents (directional derivatives).
 * Code written with the ct_math_* macros runs unchanged on double and on
 * ct_dual: the macros dispatch with C11 _Generic, so
 *
 *     ct_math_sin(1.0)               is a double,
 *     ct_math_sin(ct_dual_var(1, 0)) is a ct_dual with d[0] = cos(1),
 *     ct_math_mul(2.0, x)            is a ct_dual when x is one.
 *
 * CT_DUAL_N (default 1) is fixed at compile time: #define it before the first
 * #include of this header. Every translation unit that passes ct_dual values
 * to another must use the same CT_DUAL_N. Nothing here allocates, keeps
 * state or needs the library: the header depends on <math.h> (link -lm).
 *
 * Derivative conventions (Cotangent's for all its AD; see docs/ad-dual.md):
 *   - abs'(0) = 0, sign' = floor' = ceil' = 0 everywhere;
 *   - min and max return their FIRST argument, value and tangent, on ties;
 *     a NaN in either argument propagates (as in the traced IR);
 *   - hypot(0, 0) and atan2(0, 0) have zero partials;
 *   - at singular points the results are IEEE ones, never a trap:
 *     log(0) = -inf with tangent +inf, x / 0 = +-inf, sqrt'(0) = +inf;
 *   - a zero tangent contributes nothing: each tangent is the sum of
 *     partial * input tangent over the inputs, and a term whose input
 *     tangent is exactly 0 is left out, so an infinite or NaN partial (such
 *     as log(x) in d pow(x, y)/dy at x <= 0, or 1/sqrt(0)) never turns the
 *     directions that do not depend on that input into NaN. Hence
 *     pow(0, 2.5) and pow(-2, 3.0) with a constant exponent have finite
 *     tangents, and sqrt of a constant 0 has tangent 0.
 *
 * The ct_math_* macros need C11 (_Generic) and are not defined in C++; the
 * ct_dual_* functions behind them are plain functions usable from both.
 * Each macro expands its arguments 2 or 3 times (only one copy is evaluated),
 * so deeply nested calls grow the preprocessed text geometrically: keep
 * intermediate results in variables. */
#ifndef COTANGENT_DUAL_H
#define COTANGENT_DUAL_H

#include <math.h>

#ifndef CT_DUAL_N
#define CT_DUAL_N 1
#endif
#if CT_DUAL_N < 1
#error "CT_DUAL_N must be a positive integer constant"
#endif

typedef struct ct_dual {
  double v;            /* the value */
  double d[CT_DUAL_N]; /* d[k]: derivative along direction k */
} ct_dual;

/* ---- Constructors ----------------------------------------------------------
 * ct_dual_const: value v, all tangents 0.
 * ct_dual_var: value v, tangent 1 in direction dir and 0 elsewhere; a dir
 *   outside [0, CT_DUAL_N) seeds nothing (the result is a constant).
 * ct_dual_make: value v, tangents copied from d[0 .. CT_DUAL_N-1]; d NULL
 *   gives zero tangents. */
static inline ct_dual ct_dual_const(double v) {
  ct_dual r;
  r.v = v;
  for (int k = 0; k < CT_DUAL_N; k++) r.d[k] = 0.0;
  return r;
}

static inline ct_dual ct_dual_var(double v, int dir) {
  ct_dual r = ct_dual_const(v);
  if (dir >= 0 && dir < CT_DUAL_N) r.d[dir] = 1.0;
  return r;
}

static inline ct_dual ct_dual_make(double v, const double *d) {
  ct_dual r = ct_dual_const(v);
  if (d)
    for (int k = 0; k < CT_DUAL_N; k++) r.d[k] = d[k];
  return r;
}

/* ---- Chain-rule kernels ----------------------------------------------------
 * ct_dual_term_(p, t) is p * t, but 0 when the tangent t is exactly 0 (the
 * "zero tangent contributes nothing" rule above). ct_dual_chain1_ builds the
 * result of a unary op from its value v and partial p; ct_dual_chain2_ that of
 * a binary op from v and the partials pa, pb with respect to a and b. */
static inline double ct_dual_term_(double p, double t) {
  return t == 0.0 ? 0.0 : p * t;
}

static inline ct_dual ct_dual_chain1_(double v, double p, ct_dual x) {
  ct_dual r;
  r.v = v;
  for (int k = 0; k < CT_DUAL_N; k++) r.d[k] = ct_dual_term_(p, x.d[k]);
  return r;
}

static inline ct_dual ct_dual_chain2_(double v, double pa, ct_dual a,
                                      double pb, ct_dual b) {
  ct_dual r;
  r.v = v;
  for (int k = 0; k < CT_DUAL_N; k++)
    r.d[k] = ct_dual_term_(pa, a.d[k]) + ct_dual_term_(pb, b.d[k]);
  return r;
}

/* ---- Double versions of the ops libm lacks ---------------------------------
 * The ct_math_* macros use these (and libm) for double arguments, so each op
 * gives the same value on a double as on a dual (whole expressions may differ
 * in the last bits where a compiler contracts a*b + c into an fma).
 * ct_real_abs is fabs (a function of its own so that ct_math_abs(1) does not
 *   draw clang's -Wabsolute-value).
 * ct_real_sign: 1 for x > 0, -1 for x < 0, x itself for +-0 and NaN.
 * ct_real_min / ct_real_max: the first argument on ties, NaN from either
 *   argument propagated (not fmin/fmax, which drop NaN), exactly as the
 *   traced IR's min/max. */
static inline double ct_real_value(double x) { return x; }
static inline double ct_real_neg(double x) { return -x; }
static inline double ct_real_sqr(double x) { return x * x; }
static inline double ct_real_abs(double x) { return fabs(x); }
static inline double ct_real_sign(double x) {
  return x > 0.0 ? 1.0 : x < 0.0 ? -1.0 : x;
}
static inline double ct_real_powi(double x, int n) { return pow(x, (double)n); }
static inline double ct_real_add(double a, double b) { return a + b; }
static inline double ct_real_sub(double a, double b) { return a - b; }
static inline double ct_real_mul(double a, double b) { return a * b; }
static inline double ct_real_div(double a, double b) { return a / b; }
static inline double ct_real_min(double a, double b) {
  return (a <= b || a != a) ? a : b;
}
static inline double ct_real_max(double a, double b) {
  return (a >= b || a != a) ? a : b;
}

/* ---- Arithmetic on duals ---------------------------------------------------
 * ct_dual_OP(a, b) takes two duals, ct_dual_OP_dr(a, b) a dual and a double,
 * ct_dual_OP_rd(a, b) a double and a dual; a double is a constant (zero
 * tangents), and the three agree exactly with ct_dual_OP on ct_dual_const.
 * Division by zero gives IEEE infinities (or NaN for 0/0) in value and
 * tangent. */
static inline double ct_dual_value(ct_dual x) { return x.v; }

static inline ct_dual ct_dual_neg(ct_dual x) {
  ct_dual r;
  r.v = -x.v;
  for (int k = 0; k < CT_DUAL_N; k++) r.d[k] = -x.d[k];
  return r;
}

static inline ct_dual ct_dual_sqr(ct_dual x) {
  return ct_dual_chain1_(x.v * x.v, 2.0 * x.v, x);
}

static inline ct_dual ct_dual_add(ct_dual a, ct_dual b) {
  ct_dual r;
  r.v = a.v + b.v;
  for (int k = 0; k < CT_DUAL_N; k++) r.d[k] = a.d[k] + b.d[k];
  return r;
}
static inline ct_dual ct_dual_add_dr(ct_dual a, double b) {
  a.v += b;
  return a;
}
static inline ct_dual ct_dual_add_rd(double a, ct_dual b) {
  b.v = a + b.v;
  return b;
}

static inline ct_dual ct_dual_sub(ct_dual a, ct_dual b) {
  ct_dual r;
  r.v = a.v - b.v;
  for (int k = 0; k < CT_DUAL_N; k++) r.d[k] = a.d[k] - b.d[k];
  return r;
}
static inline ct_dual ct_dual_sub_dr(ct_dual a, double b) {
  a.v -= b;
  return a;
}
static inline ct_dual ct_dual_sub_rd(double a, ct_dual b) {
  ct_dual r;
  r.v = a - b.v;
  for (int k = 0; k < CT_DUAL_N; k++) r.d[k] = 0.0 - b.d[k];
  return r;
}

static inline ct_dual ct_dual_mul(ct_dual a, ct_dual b) {
  return ct_dual_chain2_(a.v * b.v, b.v, a, a.v, b);
}
static inline ct_dual ct_dual_mul_dr(ct_dual a, double b) {
  return ct_dual_chain1_(a.v * b, b, a);
}
static inline ct_dual ct_dual_mul_rd(double a, ct_dual b) {
  return ct_dual_chain1_(a * b.v, a, b);
}

/* d(a/b) = (da - (a/b) db) / b, one direction at a time; 0 when da and db
 * are both 0 (else 0/0 = NaN when b = 0). The three forms share it, so they
 * agree exactly. */
static inline double ct_dual_div_tangent_(double da, double q, double db,
                                          double b) {
  return (da == 0.0 && db == 0.0) ? 0.0 : (da - ct_dual_term_(q, db)) / b;
}

static inline ct_dual ct_dual_div(ct_dual a, ct_dual b) {
  ct_dual r;
  r.v = a.v / b.v;
  for (int k = 0; k < CT_DUAL_N; k++)
    r.d[k] = ct_dual_div_tangent_(a.d[k], r.v, b.d[k], b.v);
  return r;
}
static inline ct_dual ct_dual_div_dr(ct_dual a, double b) {
  ct_dual r;
  r.v = a.v / b;
  for (int k = 0; k < CT_DUAL_N; k++)
    r.d[k] = ct_dual_div_tangent_(a.d[k], r.v, 0.0, b);
  return r;
}
static inline ct_dual ct_dual_div_rd(double a, ct_dual b) {
  ct_dual r;
  r.v = a / b.v;
  for (int k = 0; k < CT_DUAL_N; k++)
    r.d[k] = ct_dual_div_tangent_(0.0, r.v, b.d[k], b.v);
  return r;
}

/* ---- Powers ----------------------------------------------------------------
 * ct_dual_pow(x, y) = x^y with a real exponent: d/dx = y x^(y-1) (0 when
 * y == 0), d/dy = log(x) x^y (0 where x^y == 0, e.g. x = 0 with y > 0; NaN
 * for x < 0, where x^y is not differentiable in y — and left out when the
 * y-tangent is 0, so pow(-2, 3.0) is fine). ct_dual_powi(x, n): integer
 * exponent, value pow(x, n), d/dx = n x^(n-1) (0 for n == 0). */
static inline double ct_dual_pow_dx_(double x, double y) {
  return y == 0.0 ? 0.0 : y * pow(x, y - 1.0);
}
static inline double ct_dual_pow_dy_(double x, double z) {
  return z == 0.0 ? 0.0 : log(x) * z;
}

static inline ct_dual ct_dual_pow(ct_dual x, ct_dual y) {
  double z = pow(x.v, y.v);
  return ct_dual_chain2_(z, ct_dual_pow_dx_(x.v, y.v), x,
                         ct_dual_pow_dy_(x.v, z), y);
}
static inline ct_dual ct_dual_pow_dr(ct_dual x, double y) {
  return ct_dual_chain1_(pow(x.v, y), ct_dual_pow_dx_(x.v, y), x);
}
static inline ct_dual ct_dual_pow_rd(double x, ct_dual y) {
  double z = pow(x, y.v);
  return ct_dual_chain1_(z, ct_dual_pow_dy_(x, z), y);
}
static inline ct_dual ct_dual_powi(ct_dual x, int n) {
  return ct_dual_chain1_(pow(x.v, (double)n),
                         n == 0 ? 0.0 : (double)n * pow(x.v, (double)(n - 1)),
                         x);
}

/* ---- Elementary functions --------------------------------------------------
 * Value from libm, tangent = f'(x) * dx. Outside the domain the value is
 * libm's (NaN, +-inf) and so is the partial; at the domain's edges the partial
 * is the IEEE limit (sqrt'(0) = cbrt'(0) = +inf, asin'(+-1) = +inf,
 * atanh'(+-1) = +inf, acosh'(1) = +inf, log'(0) = +inf). */
static inline ct_dual ct_dual_exp(ct_dual x) {
  double e = exp(x.v);
  return ct_dual_chain1_(e, e, x);
}
static inline ct_dual ct_dual_log(ct_dual x) {
  return ct_dual_chain1_(log(x.v), 1.0 / x.v, x);
}
static inline ct_dual ct_dual_log1p(ct_dual x) {
  return ct_dual_chain1_(log1p(x.v), 1.0 / (1.0 + x.v), x);
}
static inline ct_dual ct_dual_expm1(ct_dual x) {
  return ct_dual_chain1_(expm1(x.v), exp(x.v), x);
}
static inline ct_dual ct_dual_sqrt(ct_dual x) {
  double s = sqrt(x.v);
  return ct_dual_chain1_(s, 0.5 / s, x);
}
static inline ct_dual ct_dual_cbrt(ct_dual x) {
  double c = cbrt(x.v);
  return ct_dual_chain1_(c, 1.0 / (3.0 * c * c), x);
}
static inline ct_dual ct_dual_sin(ct_dual x) {
  return ct_dual_chain1_(sin(x.v), cos(x.v), x);
}
static inline ct_dual ct_dual_cos(ct_dual x) {
  return ct_dual_chain1_(cos(x.v), -sin(x.v), x);
}
static inline ct_dual ct_dual_tan(ct_dual x) {
  double t = tan(x.v);
  return ct_dual_chain1_(t, 1.0 + t * t, x);
}
/* 1 - x^2 as (1 - x)(1 + x): accurate near |x| = 1. */
static inline ct_dual ct_dual_asin(ct_dual x) {
  return ct_dual_chain1_(asin(x.v), 1.0 / sqrt((1.0 - x.v) * (1.0 + x.v)), x);
}
static inline ct_dual ct_dual_acos(ct_dual x) {
  return ct_dual_chain1_(acos(x.v), -1.0 / sqrt((1.0 - x.v) * (1.0 + x.v)), x);
}
static inline ct_dual ct_dual_atan(ct_dual x) {
  return ct_dual_chain1_(atan(x.v), 1.0 / (1.0 + x.v * x.v), x);
}
static inline ct_dual ct_dual_sinh(ct_dual x) {
  return ct_dual_chain1_(sinh(x.v), cosh(x.v), x);
}
static inline ct_dual ct_dual_cosh(ct_dual x) {
  return ct_dual_chain1_(cosh(x.v), sinh(x.v), x);
}
/* 1/cosh^2 rather than 1 - tanh^2, which cancels for large |x|. */
static inline ct_dual ct_dual_tanh(ct_dual x) {
  double c = cosh(x.v);
  return ct_dual_chain1_(tanh(x.v), 1.0 / (c * c), x);
}
static inline ct_dual ct_dual_asinh(ct_dual x) {
  return ct_dual_chain1_(asinh(x.v), 1.0 / hypot(x.v, 1.0), x);
}
static inline ct_dual ct_dual_acosh(ct_dual x) {
  return ct_dual_chain1_(acosh(x.v), 1.0 / sqrt((x.v - 1.0) * (x.v + 1.0)), x);
}
static inline ct_dual ct_dual_atanh(ct_dual x) {
  return ct_dual_chain1_(atanh(x.v), 1.0 / ((1.0 - x.v) * (1.0 + x.v)), x);
}
/* erf'(x) = 2/sqrt(pi) exp(-x^2). */
static inline ct_dual ct_dual_erf(ct_dual x) {
  return ct_dual_chain1_(erf(x.v), 1.1283791670955126 * exp(-x.v * x.v), x);
}

/* ---- Non-smooth functions --------------------------------------------------
 * abs: partial sign(x), 0 at +-0. sign, floor, ceil: zero tangents. min, max:
 * the first argument (value and tangents) unless the second is strictly
 * smaller / greater. */
static inline ct_dual ct_dual_abs(ct_dual x) {
  return ct_dual_chain1_(fabs(x.v), ct_real_sign(x.v), x);
}
static inline ct_dual ct_dual_sign(ct_dual x) {
  return ct_dual_const(ct_real_sign(x.v));
}
static inline ct_dual ct_dual_floor(ct_dual x) {
  return ct_dual_const(floor(x.v));
}
static inline ct_dual ct_dual_ceil(ct_dual x) {
  return ct_dual_const(ceil(x.v));
}
static inline ct_dual ct_dual_min(ct_dual a, ct_dual b) {
  return (a.v <= b.v || a.v != a.v) ? a : b;
}
static inline ct_dual ct_dual_min_dr(ct_dual a, double b) {
  return (a.v <= b || a.v != a.v) ? a : ct_dual_const(b);
}
static inline ct_dual ct_dual_min_rd(double a, ct_dual b) {
  return (a <= b.v || a != a) ? ct_dual_const(a) : b;
}
static inline ct_dual ct_dual_max(ct_dual a, ct_dual b) {
  return (a.v >= b.v || a.v != a.v) ? a : b;
}
static inline ct_dual ct_dual_max_dr(ct_dual a, double b) {
  return (a.v >= b || a.v != a.v) ? a : ct_dual_const(b);
}
static inline ct_dual ct_dual_max_rd(double a, ct_dual b) {
  return (a >= b.v || a != a) ? ct_dual_const(a) : b;
}

/* ---- Two-argument functions ------------------------------------------------
 * atan2(y, x): d/dy = x/(x^2+y^2), d/dx = -y/(x^2+y^2), both 0 at (0, 0).
 * hypot(a, b): d/da = a/h, d/db = b/h, both 0 at (0, 0). Written with
 * h = hypot so that large arguments do not overflow. */
static inline void ct_dual_atan2_partials_(double y, double x, double *py,
                                           double *px) {
  double h = hypot(y, x);
  *py = h == 0.0 ? 0.0 : (x / h) / h;
  *px = h == 0.0 ? 0.0 : (-y / h) / h;
}
static inline ct_dual ct_dual_atan2(ct_dual y, ct_dual x) {
  double py, px;
  ct_dual_atan2_partials_(y.v, x.v, &py, &px);
  return ct_dual_chain2_(atan2(y.v, x.v), py, y, px, x);
}
static inline ct_dual ct_dual_atan2_dr(ct_dual y, double x) {
  double py, px;
  ct_dual_atan2_partials_(y.v, x, &py, &px);
  return ct_dual_chain1_(atan2(y.v, x), py, y);
}
static inline ct_dual ct_dual_atan2_rd(double y, ct_dual x) {
  double py, px;
  ct_dual_atan2_partials_(y, x.v, &py, &px);
  return ct_dual_chain1_(atan2(y, x.v), px, x);
}

static inline ct_dual ct_dual_hypot(ct_dual a, ct_dual b) {
  double h = hypot(a.v, b.v);
  return ct_dual_chain2_(h, h == 0.0 ? 0.0 : a.v / h, a,
                         h == 0.0 ? 0.0 : b.v / h, b);
}
static inline ct_dual ct_dual_hypot_dr(ct_dual a, double b) {
  double h = hypot(a.v, b);
  return ct_dual_chain1_(h, h == 0.0 ? 0.0 : a.v / h, a);
}
static inline ct_dual ct_dual_hypot_rd(double a, ct_dual b) {
  double h = hypot(a, b.v);
  return ct_dual_chain1_(h, h == 0.0 ? 0.0 : b.v / h, b);
}

/* ---- Generic dispatch ------------------------------------------------------
 * ct_math_F(x) is F of a double (any other arithmetic type is converted to
 * double) or of a ct_dual, of the same type. ct_math_F(a, b) takes any mix;
 * the result is a ct_dual if either argument is. ct_math_value(x) is the
 * value (primal) of either. ct_math_powi(x, n) takes an int exponent. */
#ifndef __cplusplus

#define CT_DUAL_GENERIC1_(f, real_f, x) \
  _Generic((x), ct_dual: ct_dual_##f, default: real_f)(x)

#define CT_DUAL_GENERIC2_(f, real_f, a, b)                                   \
  _Generic((a),                                                              \
      ct_dual: _Generic((b), ct_dual: ct_dual_##f, default: ct_dual_##f##_dr), \
      default: _Generic((b), ct_dual: ct_dual_##f##_rd, default: real_f))(   \
      (a), (b))

#define ct_math_value(x) \
  _Generic((x), ct_dual: ct_dual_value, default: ct_real_value)(x)

#define ct_math_neg(x) CT_DUAL_GENERIC1_(neg, ct_real_neg, x)
#define ct_math_sqr(x) CT_DUAL_GENERIC1_(sqr, ct_real_sqr, x)
#define ct_math_exp(x) CT_DUAL_GENERIC1_(exp, exp, x)
#define ct_math_log(x) CT_DUAL_GENERIC1_(log, log, x)
#define ct_math_log1p(x) CT_DUAL_GENERIC1_(log1p, log1p, x)
#define ct_math_expm1(x) CT_DUAL_GENERIC1_(expm1, expm1, x)
#define ct_math_sqrt(x) CT_DUAL_GENERIC1_(sqrt, sqrt, x)
#define ct_math_cbrt(x) CT_DUAL_GENERIC1_(cbrt, cbrt, x)
#define ct_math_sin(x) CT_DUAL_GENERIC1_(sin, sin, x)
#define ct_math_cos(x) CT_DUAL_GENERIC1_(cos, cos, x)
#define ct_math_tan(x) CT_DUAL_GENERIC1_(tan, tan, x)
#define ct_math_asin(x) CT_DUAL_GENERIC1_(asin, asin, x)
#define ct_math_acos(x) CT_DUAL_GENERIC1_(acos, acos, x)
#define ct_math_atan(x) CT_DUAL_GENERIC1_(atan, atan, x)
#define ct_math_sinh(x) CT_DUAL_GENERIC1_(sinh, sinh, x)
#define ct_math_cosh(x) CT_DUAL_GENERIC1_(cosh, cosh, x)
#define ct_math_tanh(x) CT_DUAL_GENERIC1_(tanh, tanh, x)
#define ct_math_asinh(x) CT_DUAL_GENERIC1_(asinh, asinh, x)
#define ct_math_acosh(x) CT_DUAL_GENERIC1_(acosh, acosh, x)
#define ct_math_atanh(x) CT_DUAL_GENERIC1_(atanh, atanh, x)
#define ct_math_erf(x) CT_DUAL_GENERIC1_(erf, erf, x)
#define ct_math_abs(x) CT_DUAL_GENERIC1_(abs, ct_real_abs, x)
#define ct_math_sign(x) CT_DUAL_GENERIC1_(sign, ct_real_sign, x)
#define ct_math_floor(x) CT_DUAL_GENERIC1_(floor, floor, x)
#define ct_math_ceil(x) CT_DUAL_GENERIC1_(ceil, ceil, x)

#define ct_math_powi(x, n) \
  _Generic((x), ct_dual: ct_dual_powi, default: ct_real_powi)((x), (n))

#define ct_math_add(a, b) CT_DUAL_GENERIC2_(add, ct_real_add, a, b)
#define ct_math_sub(a, b) CT_DUAL_GENERIC2_(sub, ct_real_sub, a, b)
#define ct_math_mul(a, b) CT_DUAL_GENERIC2_(mul, ct_real_mul, a, b)
#define ct_math_div(a, b) CT_DUAL_GENERIC2_(div, ct_real_div, a, b)
#define ct_math_pow(a, b) CT_DUAL_GENERIC2_(pow, pow, a, b)
#define ct_math_atan2(a, b) CT_DUAL_GENERIC2_(atan2, atan2, a, b)
#define ct_math_hypot(a, b) CT_DUAL_GENERIC2_(hypot, hypot, a, b)
#define ct_math_min(a, b) CT_DUAL_GENERIC2_(min, ct_real_min, a, b)
#define ct_math_max(a, b) CT_DUAL_GENERIC2_(max, ct_real_max, a, b)

#endif /* !__cplusplus */

#endif /* COTANGENT_DUAL_H */
