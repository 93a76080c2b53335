/* The expression language (config/expr.c): values of parsed and emitted
 * expressions against C's math, precedence and associativity, every
 * function, derivatives through ct_fun_jvp against central differences,
 * syntax and name errors with their words and caret column, free names,
 * constant expressions, bad arguments and fault injection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ct_test.h"
#include "config_internal.h"

/* ---- Helpers ------------------------------------------------------------------ */

/* The names expressions may use in these tests, with their values. */
static const char *const var_names[] = {"x", "y", "z", "p1", "p2", "t"};
#define N_VARS 6
static const double X = 0.7, Y = -1.3, Z = 2.5, P1 = 0.04, P2 = 1.0e4, T = 3.0;

/* Where test expressions "start" in their imaginary file. */
#define LOC_LINE 3
#define LOC_COL 9

static ct_cfg_expr src_of(const char *text) {
  ct_cfg_expr s = {(char *)text, {"m.yaml", LOC_LINE, LOC_COL}};
  return s;
}

typedef struct var_scope {
  ct_var vars[N_VARS];
} var_scope;

/* Scope lookup over var_names. */
static int lookup_var(void *ud, const char *name, ct_var *out) {
  var_scope *vs = ud;
  for (int k = 0; k < N_VARS; k++)
    if (!strcmp(var_names[k], name)) return *out = vs->vars[k], 1;
  return 0;
}

/* Parses and emits `text` as the one output "f" of a function of the
 * input "v" (the N_VARS variables). */
static int build(ct_context *ctx, const char *text, ct_fun **out) {
  ct_cfg_expr s = src_of(text);
  ct_expr *e = NULL;
  *out = NULL;
  CT_CHECK(ctx, ct_expr_parse(ctx, &s, &e));
  ct_graph *g = ct_graph_new(ctx);
  if (!g) {
    ct_expr_free(e);
    return CT_ERR_NOMEM;
  }
  var_scope vs;
  int status = ct_graph_input(g, "v", N_VARS, NULL, vs.vars);
  ct_expr_scope scope = {lookup_var, &vs, var_names, N_VARS};
  ct_var r;
  if (status >= 0) status = ct_expr_emit(ctx, e, &scope, g, &r);
  if (status >= 0) status = ct_graph_output(g, "f", 1, &r);
  if (status >= 0) status = ct_graph_finalize(g, out);
  ct_graph_free(g);
  ct_expr_free(e);
  return status;
}

/* Evaluates a built function at v. */
static int eval_at(ct_context *ctx, const ct_fun *f, const double *v, double *value) {
  double *work = malloc(sizeof(double) * (ct_fun_work_size(f) + 1));
  assert_non_null(work);
  const double *in[1] = {v};
  double *out[1] = {value};
  int status = ct_fun_eval(ctx, f, in, out, work);
  free(work);
  return status;
}

/* The value of `text` at the default point; fails the test on any error. */
static double value_of(const char *text) {
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *f = NULL;
  int status = build(ctx, text, &f);
  if (status != CT_OK) fail_msg("'%s' failed: %s", text, ct_errmsg(ctx));
  const double v[N_VARS] = {X, Y, Z, P1, P2, T};
  double r = NAN;
  assert_int_equal(eval_at(ctx, f, v, &r), CT_OK);
  ct_fun_free(f);
  ct_context_free(ctx);
  return r;
}

typedef struct value_case {
  const char *text;
  double expected;
} value_case;

/* Every case's value must match to a relative 1e-14 (exact for 0/1). */
static void check_values(const value_case *cases, size_t n) {
  for (size_t i = 0; i < n; i++) {
    double got = value_of(cases[i].text), want = cases[i].expected;
    double tol = 1e-14 * fmax(1.0, fabs(want));
    if (!(fabs(got - want) <= tol))
      fail_msg("'%s' = %.17g, expected %.17g", cases[i].text, got, want);
  }
}

#define CASE(e) {#e, (e)}

/* ---- Values ------------------------------------------------------------------- */

static void test_values_against_c(void **state) {
  (void)state;
  const double x = X, y = Y, z = Z, p1 = P1, p2 = P2, t = T;
  value_case cases[] = {
      CASE(x + y * z),
      CASE(x - y / z),
      CASE(-p1 * x + p2 * y * z),
      CASE((x + y) * (z - t)),
      CASE(x / (y - z) / t),
      CASE(1.5e-3 * x),
      CASE(2.5E+2 - .5 * y),
      CASE(sin(x) * cos(y) + tan(z / 4)),
      CASE(exp(-t * p1) * sqrt(z)),
      CASE(log(z) + log1p(x) - expm1(y)),
      CASE(atan2(y, x) + hypot(x, y)),
      CASE(pow(z, x) + pow(z, 3)),
      CASE(cosh(y) - sinh(x) * tanh(z)),
      CASE(asinh(y) + acosh(z) + atanh(x / 2)),
      CASE(asin(x) + acos(x / 2) + atan(y)),
      CASE(cbrt(y) + erf(x) * floor(y) + ceil(z)),
      {"x^2 + y^3 - z^-1", x * x + y * y * y - 1 / z},
      {"z^x", pow(z, x)},
      {"z^1.5", pow(z, 1.5)},
      {"abs(y) * sign(y)", y},
      {"min(x, y) + max(x, z)", fmin(x, y) + fmax(x, z)},
      {"2*pi", 2 * 3.14159265358979323846},
      {"e^2", exp(2.0)},
      {"log(e)", 1.0},
      {"p2 * t", p2 * t},
      {"1e0 + 2. + 0.5e1", 8.0},
      {"x\t+\ny", x + y},
      {"((((x))))", x},
      {"0.1 + 0.2", 0.1 + 0.2},
      {"1e-300 * 1e-300", 0.0},
  };
  check_values(cases, sizeof cases / sizeof cases[0]);
}

static void test_precedence_and_associativity(void **state) {
  (void)state;
  const double x = X, y = Y, z = Z;
  value_case cases[] = {
      {"-x^2", -(x * x)},
      {"-2^2", -4},
      {"(-2)^2", 4},
      {"2^3^2", 512},
      {"(2^3)^2", 64},
      {"2^-1", 0.5},
      {"2^2^-1", sqrt(2.0)},
      {"x^-2", 1 / (x * x)},
      {"2 * 3 ^ 2", 18},
      {"x - y - z", (x - y) - z},
      {"x / y / z", (x / y) / z},
      {"8 / 2 / 2", 2},
      {"1 - 2 - 3", -4},
      {"x - y + z", (x - y) + z},
      {"x / y * z", (x / y) * z},
      {"- -x", x},
      {"--x", x},
      {"-+-x", x},
      {"+x", x},
      {"2*-x", -2 * x},
      {"1 - -1", 2},
      {"-x*y", -x * y},
      {"x + y * z", x + y * z},
      {"1 + 2 < 4", 1},
      {"1 + 2 < 3", 0},
      {"2 * 2 >= 4", 1},
      {"3 == 3", 1},
      {"3 != 3", 0},
      {"1 <= 0", 0},
      {"2 > 1", 1},
      {"1 < 2 and 3 < 2", 0},
      {"1 < 2 or 3 < 2", 1},
      {"1 or 0 and 0", 1},      /* and binds tighter than or */
      {"not 1 and 0", 0},       /* not binds tighter than and */
      {"not 0 or 1", 1},
      {"not 1 < 2", 0},         /* comparisons bind tighter than not */
      {"not not 1", 1},
      {"not (1 and 0)", 1},
      {"(x < y) + (y < x)", 1},
      {"-x < 0", 1},
  };
  check_values(cases, sizeof cases / sizeof cases[0]);
}

static void test_every_function(void **state) {
  (void)state;
  const double x = X, y = Y, z = Z;
  value_case cases[] = {
      {"exp(x)", exp(x)},        {"log(z)", log(z)},          {"log1p(x)", log1p(x)},
      {"expm1(y)", expm1(y)},    {"sqrt(z)", sqrt(z)},        {"cbrt(y)", cbrt(y)},
      {"sin(x)", sin(x)},        {"cos(y)", cos(y)},          {"tan(x)", tan(x)},
      {"asin(x)", asin(x)},      {"acos(x)", acos(x)},        {"atan(y)", atan(y)},
      {"sinh(y)", sinh(y)},      {"cosh(y)", cosh(y)},        {"tanh(z)", tanh(z)},
      {"asinh(y)", asinh(y)},    {"acosh(z)", acosh(z)},      {"atanh(x)", atanh(x)},
      {"erf(y)", erf(y)},        {"abs(y)", fabs(y)},         {"sign(y)", -1},
      {"floor(y)", floor(y)},    {"ceil(y)", ceil(y)},        {"atan2(y, x)", atan2(y, x)},
      {"hypot(y, z)", hypot(y, z)}, {"min(x, y)", fmin(x, y)}, {"max(x, y)", fmax(x, y)},
      {"min(z, x, y)", y},       {"max(y, z, x)", z},         {"pow(z, x)", pow(z, x)},
      {"pow(y, 3)", y * y * y},  {"pow(y, 2)", y * y},
      {"if(x > 0, z, y)", z},    {"if(x < 0, z, y)", y},
      {"piecewise(1, x < 0, 2, x < 1, 3)", 2},
      {"piecewise(1, x < 0, 2, x > 1, 3)", 3},
      {"piecewise(z, 1 > 0, 5)", z},
      {"piecewise(7)", 7},
  };
  check_values(cases, sizeof cases / sizeof cases[0]);
  /* every function ct_expr_emit knows is among the cases above */
  for (size_t k = 0; ct_expr_functions[k]; k++) {
    char call[32];
    snprintf(call, sizeof call, "%s(", ct_expr_functions[k]);
    int seen = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
      seen |= !strncmp(cases[i].text, call, strlen(call));
    if (!seen) fail_msg("function '%s' is not tested", ct_expr_functions[k]);
  }
}

/* ---- Derivatives ------------------------------------------------------------- */

/* The JVP of the emitted `text` along direction dv equals the central
 * difference of its values. */
static void check_jvp(const char *text, const double *v, const double *dv) {
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *f = NULL, *jf = NULL;
  if (build(ctx, text, &f) != CT_OK) fail_msg("'%s': %s", text, ct_errmsg(ctx));
  assert_int_equal(ct_fun_jvp(ctx, f, 1, NULL, &jf), CT_OK);
  long i_d = ct_fun_in_index(jf, "d_v"), o_d = ct_fun_out_index(jf, "d_f");
  assert_true(i_d == 1 && o_d == 1);
  double *work = malloc(sizeof(double) * (ct_fun_work_size(jf) + 1));
  double value = 0, tangent = 0;
  const double *in[2] = {v, dv};
  double *out[2] = {&value, &tangent};
  assert_int_equal(ct_fun_eval(ctx, jf, in, out, work), CT_OK);
  free(work);
  const double h = 1e-6;
  double vp[N_VARS], vm[N_VARS], fp = 0, fm = 0;
  for (int k = 0; k < N_VARS; k++) vp[k] = v[k] + h * dv[k], vm[k] = v[k] - h * dv[k];
  assert_int_equal(eval_at(ctx, f, vp, &fp), CT_OK);
  assert_int_equal(eval_at(ctx, f, vm, &fm), CT_OK);
  double fd = (fp - fm) / (2 * h);
  if (!(fabs(tangent - fd) <= 1e-7 * fmax(1.0, fabs(fd))))
    fail_msg("'%s': jvp %.12g, central difference %.12g", text, tangent, fd);
  if (!(fabs(tangent) > 1e-3)) fail_msg("'%s': a trivial derivative %.12g", text, tangent);
  ct_fun_free(jf);
  ct_fun_free(f);
  ct_context_free(ctx);
}

static void test_derivatives_against_central_differences(void **state) {
  (void)state;
  const double v[N_VARS] = {X, Y, Z, P1, P2, T};
  const double dv[N_VARS] = {0.3, -0.7, 0.5, 0.2, 1e-4, 0.9};
  static const char *const exprs[] = {
      "-p1*x + p2*x*y*z^2 / 1e4",
      "x^2*sin(y) + exp(x*y)/z",
      "atan2(y, x) + hypot(x, z) - sqrt(z)*log(z)",
      "z^x + x^-3 + pow(z, 0.5*t)",
      "piecewise(x^2, y > 0, sin(z)*x, x < 1, z)",
      "if(x > 0 and not (y > 0), tanh(x*z), cosh(y)) + max(x, y, z)",
      "erf(x) * asinh(y) + cbrt(z) - acos(x/2) + atanh(x/3)",
  };
  for (size_t i = 0; i < sizeof exprs / sizeof exprs[0]; i++) check_jvp(exprs[i], v, dv);
}

/* ---- Errors ------------------------------------------------------------------- */

typedef struct error_case {
  const char *text;
  const char *words[2]; /* expected in the message (NULL: none) */
  int offset;           /* byte offset of the caret in text; -1: any */
} error_case;

/* ct_errmsg without the traceback lines CT_CHECK appends ("\n  from ..."). */
static const char *error_text(ct_context *ctx) {
  static char buf[4096];
  snprintf(buf, sizeof buf, "%s", ct_errmsg(ctx));
  char *trace = strstr(buf, "\n  from ");
  if (trace) *trace = '\0';
  return buf;
}

/* The last line of msg (the caret line) and the one before (the text). */
static void caret_lines(const char *msg, const char **text_line, size_t *text_len,
                        const char **caret_line) {
  const char *last = strrchr(msg, '\n');
  assert_non_null(last);
  const char *prev = last - 1;
  while (prev > msg && *prev != '\n') prev--;
  assert_true(*prev == '\n');
  *text_line = prev + 1;
  *text_len = (size_t)(last - prev - 1);
  *caret_line = last + 1;
}

/* `text` fails with CT_ERR_CONFIG, its message has the location
 * m.yaml:LINE:COL, the words, and a caret under `offset`. */
static void check_error(const error_case *c) {
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *f = NULL;
  int status = build(ctx, c->text, &f);
  if (status != CT_ERR_CONFIG) fail_msg("'%s' gave status %d, not CT_ERR_CONFIG", c->text, status);
  assert_null(f);
  const char *msg = error_text(ctx);
  for (int k = 0; k < 2; k++)
    if (c->words[k] && !strstr(msg, c->words[k]))
      fail_msg("'%s': message lacks \"%s\":\n%s", c->text, c->words[k], msg);
  if (c->offset >= 0) {
    char where[64];
    snprintf(where, sizeof where, "m.yaml:%d:%d: ", LOC_LINE, LOC_COL + c->offset);
    if (!strstr(msg, where)) fail_msg("'%s': message lacks \"%s\":\n%s", c->text, where, msg);
    const char *text_line, *caret_line;
    size_t text_len;
    caret_lines(msg, &text_line, &text_len, &caret_line);
    assert_true(text_len >= 2 && !strncmp(text_line, "  ", 2));
    assert_memory_equal(text_line + 2, c->text, strlen(c->text));
    if (strcspn(caret_line, "^") != (size_t)(2 + c->offset) || strcmp(caret_line + 2 + c->offset, "^"))
      fail_msg("'%s': caret not at offset %d:\n%s", c->text, c->offset, msg);
  }
  ct_context_free(ctx);
}

static void test_syntax_and_name_errors(void **state) {
  (void)state;
  const error_case cases[] = {
      {"-p1*y + )", {"unexpected ')'", NULL}, 8},
      {"", {"empty expression", NULL}, 0},
      {"   ", {"empty expression", NULL}, 3},
      {"(x + y", {"missing ')'", "'(' at column 9"}, 6},
      {"x + * y", {"unexpected '*'", NULL}, 4},
      {"x y", {"unexpected name 'y'", "missing operator"}, 2},
      {"x + 1)", {"unexpected ')'", "no '(' to close"}, 5},
      {"2x", {"right after the number '2'", "missing '*'"}, 1},
      {"1e", {"malformed number '1e'", "exponent has no digits"}, 0},
      {"3 * 1e+", {"exponent has no digits", NULL}, 4},
      {"1.2.3", {"malformed number", "second '.'"}, 3},
      {"1e999 * x", {"too large", "infinity"}, 0},
      {"x ** 2", {"'**' is not an operator", "'^'"}, 2},
      {"x && y", {"'&&'", "'and'"}, 2},
      {"x || y", {"'||'", "'or'"}, 2},
      {"!x", {"'!'", "'not'"}, 0},
      {"x = y", {"'='", "'=='"}, 2},
      {"x < y < z", {"do not chain", NULL}, 6},
      {"x $ y", {"unexpected character '$'", NULL}, 2},
      {"x + \xc3\xa9", {"unexpected byte 0xc3", NULL}, 4},
      {"x^", {"unexpected end of the expression", NULL}, 2},
      {"x + not y", {"unexpected 'not'", NULL}, 4},
      {"sin(x,)", {"unexpected ')'", NULL}, 6},
      {"sin(x y)", {"in the call of 'sin'", "expected ',' or ')'"}, 6},
      {"sin(x", {"missing ')' to close the call of 'sin'", NULL}, 5},
      {"sinn(x)", {"unknown function 'sinn'", "did you mean 'sin'?"}, 0},
      {"y + foo(x)", {"unknown function 'foo'", NULL}, 4},
      {"x + atan2(x)", {"'atan2' takes 2 arguments, got 1", NULL}, 4},
      {"exp(x, y)", {"'exp' takes 1 argument, got 2", NULL}, 0},
      {"if(x, y)", {"'if' takes 3 arguments, got 2", NULL}, 0},
      {"min(x)", {"'min' takes at least 2 arguments, got 1", NULL}, 0},
      {"piecewise(1, x > 0)", {"'piecewise'", "odd number"}, 0},
      {"p4*x", {"unknown name 'p4'", "did you mean 'p1'?"}, 0},
      {"x + zeta", {"unknown name 'zeta'", NULL}, 4},
      {"X * y", {"unknown name 'X' (did you mean 'x'?)", NULL}, 0},
      {"x * w", {"unknown name 'w'", NULL}, 4},
      {"sin + x", {"'sin' is a function", "sin(...)"}, 0},
      {"pi(2)", {"'pi' is not a function", NULL}, 0},
      {"2 * x(2)", {"'x' is not a function", "'x*(...)'"}, 4},
      {".", {"unexpected character '.'", NULL}, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_error(&cases[i]);
}

/* Past 200 levels of nesting: an error, not a stack overflow; 150 is fine. */
static void test_nesting_limit(void **state) {
  (void)state;
  const char *wraps[] = {"(", "-", "not ", "sin(", "2^"};
  for (size_t w = 0; w < sizeof wraps / sizeof wraps[0]; w++) {
    static const int depths[] = {150, 201, 100000};
    for (size_t di = 0; di < 3; di++) {
      int depth = depths[di];
      size_t wl = strlen(wraps[w]), n = (size_t)depth * (wl + 1) + 8;
      char *text = malloc(n);
      size_t k = 0;
      for (int d = 0; d < depth; d++) memcpy(text + k, wraps[w], wl), k += wl;
      text[k++] = 'x';
      for (int d = 0; d < depth; d++)
        if (wraps[w][wl - 1] == '(') text[k++] = ')';
      text[k] = '\0';
      ct_context *ctx = ct_context_new(NULL);
      ct_fun *f = NULL;
      int status = build(ctx, text, &f);
      if (depth == 150 && status != CT_OK) fail_msg("depth 150 of '%s': %s", wraps[w], ct_errmsg(ctx));
      if (depth > 150) {
        assert_int_equal(status, CT_ERR_CONFIG);
        assert_non_null(strstr(ct_errmsg(ctx), "nested too deeply"));
      }
      ct_fun_free(f);
      ct_context_free(ctx);
      free(text);
    }
  }
}

/* A long sum parses and emits without recursion (100,000 terms). */
static void test_long_flat_expression(void **state) {
  (void)state;
  size_t terms = 100000;
  char *text = malloc(terms * 4 + 1);
  for (size_t k = 0; k < terms; k++) memcpy(text + 4 * k, k ? "+x*1" : "x*1 ", 4);
  text[terms * 4] = '\0';
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *f = NULL;
  assert_int_equal(build(ctx, text, &f), CT_OK);
  const double v[N_VARS] = {X, Y, Z, P1, P2, T};
  double r = 0;
  assert_int_equal(eval_at(ctx, f, v, &r), CT_OK);
  assert_true(fabs(r - (double)terms * X) < 1e-8 * terms);
  ct_fun_free(f);
  ct_context_free(ctx);
  free(text);
}

/* Errors in the second line of a multi-line text and far into a long line. */
static void test_error_locations_multiline_and_long(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_fun *f = NULL;
  assert_int_equal(build(ctx, "x +\ny * )", &f), CT_ERR_CONFIG);
  const char *msg = error_text(ctx), *text_line, *caret_line;
  size_t text_len;
  assert_non_null(strstr(msg, "m.yaml:4:13: unexpected ')'"));
  caret_lines(msg, &text_line, &text_len, &caret_line);
  assert_int_equal(text_len, 2 + strlen("y * )"));
  assert_string_equal(caret_line, "      ^");

  /* a 400-character line: a window of it, the caret under the ')' */
  char text[512];
  size_t n = 0;
  while (n < 390) memcpy(text + n, "x + ", 4), n += 4;
  memcpy(text + n, ")", 2);
  assert_int_equal(build(ctx, text, &f), CT_ERR_CONFIG);
  msg = error_text(ctx);
  char where[64];
  snprintf(where, sizeof where, "m.yaml:%d:%d: unexpected ')'", LOC_LINE, LOC_COL + (int)n);
  assert_non_null(strstr(msg, where));
  caret_lines(msg, &text_line, &text_len, &caret_line);
  assert_true(text_len < 120);
  assert_memory_equal(text_line, "  ...", 5);
  size_t caret = strcspn(caret_line, "^");
  assert_true(caret < text_len);
  assert_int_equal(text_line[caret], ')');
  ct_context_free(ctx);
}

/* ---- Names, constants, arguments ---------------------------------------------- */

typedef struct names_seen {
  char names[8][8];
  int cols[8];
  int n;
} names_seen;

static int collect_name(const char *name, ct_cfg_loc loc, void *ud) {
  names_seen *s = ud;
  if (s->n == 8) return 7;
  snprintf(s->names[s->n], 8, "%s", name);
  s->cols[s->n++] = loc.col;
  return 0;
}

static void test_free_names(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_cfg_expr s = src_of("p1*x + sin(y) - pi*x + e");
  ct_expr *e = NULL;
  assert_int_equal(ct_expr_parse(ctx, &s, &e), CT_OK);
  names_seen seen = {0};
  assert_int_equal(ct_expr_names(e, collect_name, &seen), 0);
  assert_int_equal(seen.n, 4);
  const char *want[] = {"p1", "x", "y", "x"};
  const int cols[] = {0, 3, 11, 19};
  for (int k = 0; k < 4; k++) {
    assert_string_equal(seen.names[k], want[k]);
    assert_int_equal(seen.cols[k], LOC_COL + cols[k]);
  }
  ct_expr_free(e);
  /* a nonzero return stops the walk and is returned */
  s = src_of("a+b+c+d+f+g+h+i+j+k");
  assert_int_equal(ct_expr_parse(ctx, &s, &e), CT_OK);
  memset(&seen, 0, sizeof seen);
  assert_int_equal(ct_expr_names(e, collect_name, &seen), 7);
  assert_int_equal(seen.n, 8);
  ct_expr_free(e);
  assert_true(ct_expr_is_reserved("pi") && ct_expr_is_reserved("e") &&
              ct_expr_is_reserved("not"));
  assert_false(ct_expr_is_reserved("x") || ct_expr_is_reserved("exp") ||
               ct_expr_is_reserved(NULL));
  ct_context_free(ctx);
}

/* Scope lookup that also resolves "e" (a model defining a reserved name). */
static int lookup_with_e(void *ud, const char *name, ct_var *out) {
  if (!strcmp(name, "e")) return *out = *(ct_var *)ud, 1;
  return 0;
}

static void test_reserved_constant_shadowed(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_graph *g = ct_graph_new(ctx);
  ct_var v, r;
  assert_int_equal(ct_graph_input(g, "v", 1, NULL, &v), CT_OK);
  ct_expr_scope scope = {lookup_with_e, &v, NULL, 0};
  ct_cfg_expr s = src_of("2*e");
  ct_expr *e = NULL;
  assert_int_equal(ct_expr_parse(ctx, &s, &e), CT_OK);
  assert_int_equal(ct_expr_emit(ctx, e, &scope, g, &r), CT_ERR_CONFIG);
  assert_non_null(strstr(ct_errmsg(ctx), "m.yaml:3:11: 'e' is the constant 2.718"));
  assert_non_null(strstr(ct_errmsg(ctx), "reserved"));
  ct_expr_free(e);
  ct_graph_free(g);
  ct_context_free(ctx);
}

static void test_constant_expressions(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  struct { const char *text; double value; } ok[] = {
      {"1e-3", 1e-3}, {"2*pi", 2 * 3.14159265358979323846}, {"-3", -3},
      {"10^-2", 0.01}, {"exp(1) - e", 0}, {"max(1, 2) * 1.0e4", 2e4}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    ct_cfg_expr s = src_of(ok[i].text);
    double v = NAN;
    if (ct_expr_eval_const(ctx, &s, &v) != CT_OK) fail_msg("%s: %s", ok[i].text, ct_errmsg(ctx));
    assert_true(fabs(v - ok[i].value) <= 1e-15 * fmax(1, fabs(ok[i].value)));
  }
  struct { const char *text; const char *words; } bad[] = {
      {"log(0)", "is -inf"}, {"sqrt(-1)", "is NaN"}, {"1/0", "is inf"},
      {"2*kappa", "a constant expression may use only numbers"}, {"2*ppi", "did you mean 'pi'?"},
      {"1 +", "unexpected end"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ct_cfg_expr s = src_of(bad[i].text);
    double v = 42;
    assert_int_equal(ct_expr_eval_const(ctx, &s, &v), CT_ERR_CONFIG);
    assert_true(v == 42);
    if (!strstr(ct_errmsg(ctx), bad[i].words))
      fail_msg("%s: message lacks \"%s\": %s", bad[i].text, bad[i].words, ct_errmsg(ctx));
    assert_non_null(strstr(ct_errmsg(ctx), "m.yaml:3:"));
  }
  /* no location known: the message still names the file */
  ct_cfg_expr s = {(char *)"1 +", {"m.yaml", 0, 0}};
  double v;
  assert_int_equal(ct_expr_eval_const(ctx, &s, &v), CT_ERR_CONFIG);
  assert_non_null(strstr(ct_errmsg(ctx), "m.yaml: unexpected end"));
  ct_context_free(ctx);
}

static void test_bad_arguments(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_expr *e = (ct_expr *)1;
  ct_cfg_expr none = {NULL, {"m.yaml", 1, 1}};
  assert_int_equal(ct_expr_parse(ctx, NULL, &e), CT_ERR_ARG);
  assert_int_equal(ct_expr_parse(ctx, &none, &e), CT_ERR_ARG);
  ct_cfg_expr s = src_of("x");
  assert_int_equal(ct_expr_parse(ctx, &s, NULL), CT_ERR_ARG);
  assert_int_equal(ct_expr_parse(ctx, &s, &e), CT_OK);
  ct_var r;
  assert_int_equal(ct_expr_emit(ctx, e, NULL, NULL, &r), CT_ERR_ARG);
  assert_int_equal(ct_expr_emit(ctx, NULL, NULL, NULL, &r), CT_ERR_ARG);
  assert_int_equal(ct_expr_names(NULL, collect_name, NULL), 0);
  assert_int_equal(ct_expr_eval_const(ctx, &s, NULL), CT_ERR_ARG);
  ct_expr_free(e);
  ct_expr_free(NULL);
  ct_context_free(ctx);
}

/* ---- The bad-input suite's expression cases ---------------------------------------- */

#ifdef CT_CONFIG_TEST_DIR
/* One "model  expr_*.yaml  LINE:COL  WORDS" line of tests/config/bad/EXPECT:
 * loading and building the model fails with the location and the words.
 * Returns 1 when the line was such a case. */
static int check_bad_case(char *line) {
  char stage[16], file[128], where[32];
  int used = 0;
  if (sscanf(line, "%15s %127s %31s %n", stage, file, where, &used) != 3) return 0;
  if (strcmp(stage, "model") || strncmp(file, "expr_", 5)) return 0;
  char *words = line + used;
  words[strcspn(words, "\n")] = '\0';
  char path[512], loc[192];
  snprintf(path, sizeof path, "%s/bad/%s", CT_CONFIG_TEST_DIR, file);
  snprintf(loc, sizeof loc, "%s:%s: ", file, where);
  ct_context *ctx = ct_context_new(NULL);
  ct_cfg *cfg = NULL;
  ct_cfg_built *built = NULL;
  int status = ct_cfg_load(ctx, path, NULL, 0, &cfg);
  if (status == CT_OK) status = ct_cfg_model_build(ctx, &cfg->model, &built);
  if (status != CT_ERR_CONFIG) fail_msg("%s: status %d: %s", file, status, ct_errmsg(ctx));
  const char *msg = error_text(ctx);
  if (!strstr(msg, loc)) fail_msg("%s: message lacks \"%s\":\n%s", file, loc, msg);
  for (char *piece = strtok(words, "|"); piece; piece = strtok(NULL, "|")) {
    while (*piece == ' ') piece++;
    size_t n = strlen(piece);
    while (n && piece[n - 1] == ' ') piece[--n] = '\0';
    if (!strstr(msg, piece)) fail_msg("%s: message lacks \"%s\":\n%s", file, piece, msg);
  }
  assert_non_null(strstr(msg, "\n  ")); /* the expression and its caret */
  assert_non_null(strchr(strrchr(msg, '\n'), '^'));
  ct_cfg_built_free(built);
  ct_cfg_free(cfg);
  ct_context_free(ctx);
  return 1;
}

static void test_bad_suite_expression_cases(void **state) {
  (void)state;
  FILE *f = fopen(CT_CONFIG_TEST_DIR "/bad/EXPECT", "r");
  assert_non_null(f);
  char line[1024];
  int checked = 0;
  while (fgets(line, sizeof line, f))
    if (line[0] != '#') checked += check_bad_case(line);
  fclose(f);
  assert_true(checked >= 15);
}
#endif

/* ---- Fault injection -------------------------------------------------------------- */

static int parse_emit_eval(ct_context *ctx, void *ud) {
  (void)ud;
  ct_fun *f = NULL;
  int status = build(ctx, "piecewise(x^2, y > 0, sin(z)*x, x < 1, z) + max(x, y, p1) * e^t", &f);
  ct_fun_free(f);
  if (status < 0) return status;
  ct_cfg_expr s = src_of("2*pi + log(10)");
  double v;
  CT_CHECK(ctx, ct_expr_eval_const(ctx, &s, &v));
  s = src_of("(x + ");
  status = build(ctx, s.text, &f);
  return status == CT_ERR_CONFIG ? CT_OK : status;
}

static void test_fault_injection(void **state) {
  (void)state;
  long n = ct_test_fault_sweep(parse_emit_eval, NULL);
  assert_true(n > 5);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_values_against_c),
      cmocka_unit_test(test_precedence_and_associativity),
      cmocka_unit_test(test_every_function),
      cmocka_unit_test(test_derivatives_against_central_differences),
      cmocka_unit_test(test_syntax_and_name_errors),
      cmocka_unit_test(test_nesting_limit),
      cmocka_unit_test(test_long_flat_expression),
      cmocka_unit_test(test_error_locations_multiline_and_long),
      cmocka_unit_test(test_free_names),
      cmocka_unit_test(test_reserved_constant_shadowed),
      cmocka_unit_test(test_constant_expressions),
      cmocka_unit_test(test_bad_arguments),
#ifdef CT_CONFIG_TEST_DIR
      cmocka_unit_test(test_bad_suite_expression_cases),
#endif
      cmocka_unit_test(test_fault_injection),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
