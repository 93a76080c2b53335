/* config/model.c: a config's model compiled to AD functions — the
 * right-hand side, y0(p), observables, the DAE residual and the data misfit
 * against hand-written values; undefined names, names used where they are
 * not available, and cycles among assignments are config errors at their
 * location. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "config_internal.h"
#include "ct_test.h"

/* |a - b| <= tol, with both numbers in the failure message. */
#define assert_close(a, b, tol) check_close((a), (b), (tol), #a, __LINE__)
static void check_close(double a, double b, double tol, const char *what, int line) {
  if (!(fabs(a - b) <= tol))
    fail_msg("line %d: %s = %.17g, expected %.17g (tolerance %g)", line, what, a, b, tol);
}

/* A config parsed from text (name "test.yaml"), or NULL with the error in ctx. */
static ct_cfg *load_text(ct_context *ctx, const char *text) {
  ct_cfg_doc *doc = NULL;
  ct_cfg *cfg = NULL;
  if (ct_cfg_parse(ctx, "test.yaml", text, strlen(text), &doc) < 0) return NULL;
  if (ct_cfg_from_doc(ctx, doc, &cfg) < 0) return NULL;
  return cfg;
}

/* Evaluates f with the inputs in declaration order into out[0]. */
static void eval1(ct_context *ctx, const ct_fun *f, const double *const *in, double *out) {
  double work[4096];
  assert_true(ct_fun_work_size(f) <= 4096);
  double *outs[4] = {out, NULL, NULL, NULL};
  assert_int_equal(ct_fun_eval(ctx, f, in, outs, work), CT_OK);
}

static const char *const lv_config =
    "model:\n"
    "  name: lv\n"
    "  parameters: {a: 1.5, b: 1.0, c: 3.0, d: 1.0}\n"
    "  states: {x: 2*a - 2, y: 1.0}\n"
    "  assignments:\n"
    "    growth: a*x\n"           /* uses an assignment written later */
    "    loss: b*xy\n"
    "    xy: x*y\n"
    "  equations:\n"
    "    x: growth - loss\n"
    "    y: d*xy - c*y + if(t > 1, 0.5*sin(t), 0)\n"
    "  observables:\n"
    "    prey: x\n"
    "    ratio: x/y + xy^2\n"
    "time: {start: 0, end: 2, output: [0, 1, 2]}\n"
    "analyses: [{type: simulate}]\n";

/* The Lotka–Volterra right-hand side, with assignments in any order and a
 * branch on t, against hand-written values at two times. */
static void test_rhs_matches_hand_written(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_cfg *cfg = load_text(ctx, lv_config);
  assert_non_null(cfg);
  ct_cfg_built *b = NULL;
  assert_int_equal(ct_cfg_model_build(ctx, &cfg->model, &b), CT_OK);
  assert_int_equal(b->n, 2);
  assert_int_equal(b->np, 4);
  assert_null(b->res);
  assert_non_null(b->ode);
  double p[4] = {1.5, 1.0, 3.0, 1.0}, y[2] = {1.2, 0.7};
  for (int k = 0; k < 2; k++) {
    double t = k ? 2.0 : 0.5, f[2];
    const double *in[3] = {&t, y, p};
    eval1(ctx, b->rhs, in, f);
    double xy = y[0] * y[1];
    assert_close(f[0], p[0] * y[0] - p[1] * xy, 1e-15);
    assert_close(f[1], p[3] * xy - p[2] * y[1] + (t > 1 ? 0.5 * sin(t) : 0.0), 1e-15);
  }
  double t = 0.0, o[2];
  const double *in[3] = {&t, y, p};
  eval1(ctx, b->obs, in, o);
  assert_close(o[0], y[0], 0.0);
  assert_close(o[1], y[0] / y[1] + (y[0] * y[1]) * (y[0] * y[1]), 1e-15);
  ct_cfg_built_free(b);
  ct_cfg_free(cfg);
  ct_context_free(ctx);
}

/* Initial values are functions of the parameters: y0(p). */
static void test_initial_values_depend_on_parameters(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_cfg *cfg = load_text(ctx, lv_config);
  assert_non_null(cfg);
  ct_cfg_built *b = NULL;
  assert_int_equal(ct_cfg_model_build(ctx, &cfg->model, &b), CT_OK);
  double p[4] = {2.5, 1.0, 3.0, 1.0}, y0[2];
  const double *in[1] = {p};
  eval1(ctx, b->y0, in, y0);
  assert_close(y0[0], 2 * 2.5 - 2, 0.0);
  assert_close(y0[1], 1.0, 0.0);
  ct_cfg_built_free(b);
  ct_cfg_free(cfg);
  ct_context_free(ctx);
}

/* The misfit h = 1/2 sum w_j (o_j - d_j)^2 over a state and an observable. */
static void test_misfit(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_cfg *cfg = load_text(ctx, lv_config);
  assert_non_null(cfg);
  ct_cfg_built *b = NULL;
  assert_int_equal(ct_cfg_model_build(ctx, &cfg->model, &b), CT_OK);
  const char *names[2] = {"y", "ratio"};
  ct_fun *h = NULL;
  assert_int_equal(ct_cfg_model_misfit(ctx, b, names, 2, &h), CT_OK);
  double t = 1.0, y[2] = {1.2, 0.7}, p[4] = {1.5, 1.0, 3.0, 1.0};
  double d[4] = {0.5, 3.0, 4.0, 0.25}, v;
  const double *in[4] = {&t, y, p, d};
  eval1(ctx, h, in, &v);
  double ratio = y[0] / y[1] + (y[0] * y[1]) * (y[0] * y[1]);
  double want = 0.5 * (4.0 * (y[1] - 0.5) * (y[1] - 0.5) + 0.25 * (ratio - 3.0) * (ratio - 3.0));
  assert_close(v, want, 1e-14);
  const char *bad[1] = {"a"};
  ct_fun *h2 = NULL;
  assert_int_equal(ct_cfg_model_misfit(ctx, b, bad, 1, &h2), CT_ERR_CONFIG);
  assert_null(h2);
  ct_fun_free(h);
  ct_cfg_built_free(b);
  ct_cfg_free(cfg);
  ct_context_free(ctx);
}

/* A model with an algebraic variable: F = (y' - rhs, residual). */
static void test_dae_residual(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_cfg *cfg = load_text(ctx,
                          "model:\n"
                          "  parameters: {p1: 0.04, p2: 1.0e4, p3: 3.0e7}\n"
                          "  states: {y1: 1.0, y2: 0.0}\n"
                          "  equations:\n"
                          "    y1: -p1*y1 + p2*y2*y3\n"
                          "    y2: p1*y1 - p2*y2*y3 - p3*y2^2\n"
                          "  algebraic:\n"
                          "    y3: {residual: y1 + y2 + y3 - 1, initial: 1 - p1*0}\n"
                          "time: {start: 0, end: 1, output: [0, 1]}\n"
                          "analyses: [{type: simulate}]\n");
  assert_non_null(cfg);
  ct_cfg_built *b = NULL;
  assert_int_equal(ct_cfg_model_build(ctx, &cfg->model, &b), CT_OK);
  assert_null(b->rhs);
  assert_non_null(b->dae);
  assert_int_equal(b->n, 3);
  assert_int_equal(b->n_diff, 2);
  assert_string_equal(b->y_names[2], "y3");
  double t = 0.1, y[3] = {0.9, 2e-5, 0.1}, yp[3] = {-0.03, 1e-4, 7.0};
  double p[3] = {0.04, 1.0e4, 3.0e7}, F[3];
  const double *in[4] = {&t, y, yp, p};
  eval1(ctx, b->res, in, F);
  assert_close(F[0], yp[0] - (-p[0] * y[0] + p[1] * y[1] * y[2]), 1e-12);
  assert_close(F[1], yp[1] - (p[0] * y[0] - p[1] * y[1] * y[2] - p[2] * y[1] * y[1]),
                      1e-9);
  assert_close(F[2], y[0] + y[1] + y[2] - 1.0, 1e-15);
  double y0[3];
  const double *in0[1] = {p};
  eval1(ctx, b->y0, in0, y0);
  assert_close(y0[2], 1.0, 0.0);
  ct_cfg_model_info info;
  assert_int_equal(ct_cfg_model_summary(ctx, b, 0.0, &info), CT_OK);
  assert_int_equal(info.n_equations, 3);
  assert_int_equal(info.n_algebraic, 1);
  assert_string_equal(info.linear_solver, "dense");
  ct_cfg_built_free(b);
  ct_cfg_free(cfg);
  ct_context_free(ctx);
}

/* The message of a model that fails to build (CT_ERR_CONFIG expected). */
static void expect_build_error(const char *text, const char *const *words) {
  ct_context *ctx = ct_context_new(NULL);
  ct_cfg *cfg = load_text(ctx, text);
  assert_non_null(cfg);
  ct_cfg_built *b = NULL;
  assert_int_equal(ct_cfg_model_build(ctx, &cfg->model, &b), CT_ERR_CONFIG);
  assert_null(b);
  const char *msg = ct_errmsg(ctx);
  for (; *words; words++)
    if (!strstr(msg, *words)) fail_msg("'%s' not in the message:\n%s", *words, msg);
  ct_cfg_free(cfg);
  ct_context_free(ctx);
}

#define MODEL_HEAD                          \
  "model:\n"                                \
  "  parameters: {k: 2.0}\n"                \
  "  states: {x: 1.0}\n"
#define MODEL_TAIL                          \
  "time: {start: 0, end: 1, output: [0, 1]}\n" \
  "analyses: [{type: simulate}]\n"

/* An undefined name in an equation: its location and a caret. */
static void test_undefined_name(void **state) {
  (void)state;
  expect_build_error(MODEL_HEAD "  equations:\n    x: -k*x + kk\n" MODEL_TAIL,
                     (const char *const[]){"test.yaml:5:", "kk", "^", NULL});
}

/* An undefined name in an assignment nothing uses is still an error. */
static void test_undefined_name_in_unused_assignment(void **state) {
  (void)state;
  expect_build_error(MODEL_HEAD "  assignments: {unused: zz + 1}\n"
                                "  equations:\n    x: -k*x\n" MODEL_TAIL,
                     (const char *const[]){"test.yaml:4:", "zz", NULL});
}

/* A state in an initial value (y0 depends on parameters only). */
static void test_state_in_initial_value(void **state) {
  (void)state;
  expect_build_error("model:\n"
                     "  parameters: {k: 2.0}\n"
                     "  states: {x: 1.0, z: 2*x}\n"
                     "  equations: {x: -k*x, z: x}\n" MODEL_TAIL,
                     (const char *const[]){"test.yaml:3:", "x", NULL});
}

/* Assignments that depend on each other in a cycle: the names in order,
 * at the location of the first one written. */
static void test_cycle(void **state) {
  (void)state;
  expect_build_error(MODEL_HEAD "  assignments:\n"
                                "    u: v + 1\n"
                                "    v: 2*w\n"
                                "    w: u - k\n"
                                "  equations:\n    x: -u*x\n" MODEL_TAIL,
                     (const char *const[]){"test.yaml:5:5", "cycle", "u -> v -> w -> u",
                                           NULL});
  expect_build_error(MODEL_HEAD "  assignments: {s: s*2}\n"
                                "  equations:\n    x: -s*x\n" MODEL_TAIL,
                     (const char *const[]){"test.yaml:4:", "s -> s", NULL});
}

/* A chain of 150 states: the Jacobian's nonzeros and the band solver. */
static void test_summary_of_a_large_model(void **state) {
  (void)state;
  static char text[32768];
  size_t n = 150, at = 0;
  at += (size_t)snprintf(text + at, sizeof text - at, "model:\n  parameters: {k: 1.5}\n"
                                                      "  states:\n");
  for (size_t i = 1; i <= n; i++)
    at += (size_t)snprintf(text + at, sizeof text - at, "    x%zu: %d\n", i, i == 1);
  at += (size_t)snprintf(text + at, sizeof text - at, "  equations:\n    x1: -k*x1\n");
  for (size_t i = 2; i <= n; i++)
    at += (size_t)snprintf(text + at, sizeof text - at, "    x%zu: k*x%zu - k*x%zu\n", i,
                           i - 1, i);
  snprintf(text + at, sizeof text - at, MODEL_TAIL);
  ct_context *ctx = ct_context_new(NULL);
  ct_cfg *cfg = load_text(ctx, text);
  assert_non_null(cfg);
  ct_cfg_built *b = NULL;
  assert_int_equal(ct_cfg_model_build(ctx, &cfg->model, &b), CT_OK);
  ct_cfg_model_info info;
  assert_int_equal(ct_cfg_model_summary(ctx, b, 0.0, &info), CT_OK);
  assert_int_equal(info.n_states, n);
  assert_int_equal(info.jac_nnz, 2 * n - 1);
  assert_string_equal(info.linear_solver, "band");
  ct_cfg_built_free(b);
  ct_cfg_free(cfg);
  ct_context_free(ctx);
}

/* The file's contents (NULL when unreadable); free with free(). */
static char *read_text(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)len + 1);
  if (s && fread(s, 1, (size_t)len, f) != (size_t)len) len = 0;
  if (s) s[len] = 0;
  fclose(f);
  return s;
}

/* analyses[i].key.param (or analyses[i].key with param NULL) of a summary. */
static double summary_number(const cJSON *sum, int i, const char *key, const char *param) {
  const cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItem(sum, "analyses"), i);
  const cJSON *v = cJSON_GetObjectItem(a, key);
  if (param) v = cJSON_GetObjectItem(v, param);
  if (!cJSON_IsNumber(v))
    fail_msg("analyses[%d].%s%s%s is not a number", i, key, param ? "." : "", param ? param : "");
  return v->valuedouble;
}

/* Runs a config's plan into a fresh folder and returns summary.json parsed. */
static cJSON *run_config(ct_context *ctx, const char *text, const char *dir) {
  ct_cfg *cfg = load_text(ctx, text);
  if (!cfg) fail_msg("%s", ct_errmsg(ctx));
  ct_cfg_built *b = NULL;
  ct_cfg_plan *plan = NULL;
  assert_int_equal(ct_cfg_model_build(ctx, &cfg->model, &b), CT_OK);
  if (ct_cfg_plan_new(ctx, cfg, b, &plan) < 0) fail_msg("%s", ct_errmsg(ctx));
  ct_cfg_run_opts o = {dir, "test.yaml", NULL, NULL, NULL};
  ct_cfg_run_outcome oc;
  assert_int_equal(ct_cfg_plan_run(ctx, plan, &o, &oc), CT_OK);
  if (oc.n_failed) fail_msg("%s", oc.message);
  ct_cfg_plan_free(plan);
  ct_cfg_built_free(b);
  ct_cfg_free(cfg);
  char path[1024];
  snprintf(path, sizeof path, "%s/summary.json", dir);
  char *json = read_text(path);
  assert_non_null(json);
  cJSON *sum = cJSON_Parse(json);
  free(json);
  assert_non_null(sum);
  return sum;
}

/* Gradients of a data likelihood and of a final-time objective by forward
 * sensitivities, the adjoint and central differences agree; observables'
 * sensitivities follow the chain rule. */
static void test_gradient_methods_agree(void **state) {
  (void)state;
  char dir[] = "/tmp/ct-config-model-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char csv[600], text[4096];
  snprintf(csv, sizeof csv, "%s/data.csv", dir);
  FILE *f = fopen(csv, "w");
  assert_non_null(f);
  fputs("t,prey,predators\n1,2.91,0.54\n2,5.47,3.25\n2,5.1,\n4,1.41,0.26\n6,2.03,4.31\n", f);
  fclose(f);
  snprintf(text, sizeof text,
           "model:\n"
           "  parameters: {a: 1.5, b: 1.0, c: 3.0, d: 1.0}\n"
           "  states: {x: 1.0, y: 1.0}\n"
           "  equations: {x: a*x - b*x*y, y: d*x*y - c*y}\n"
           "  observables: {prey: x, predators: y, both: x*y}\n"
           "solver: {rtol: 1.0e-10, atol: 1.0e-12, max_steps: 100000}\n"
           "time: {start: 0, end: 6, output: [0, 3, 6]}\n"
           "analyses:\n"
           "  - {type: forward_sensitivity, name: fs}\n"
           "  - {type: gradient, name: fwd, method: forward, objective: {data: {file: %s, sigma: 0.5}}}\n"
           "  - {type: gradient, name: adj, method: adjoint, objective: {data: {file: %s, sigma: 0.5}}}\n"
           "  - {type: gradient, name: fd, method: finite_difference, objective: {data: {file: %s, sigma: 0.5}}}\n"
           "  - {type: gradient, name: ffwd, method: forward, objective: {final: x^2*y + a}}\n"
           "  - {type: adjoint_gradient, name: fadj, objective: {final: x^2*y + a}, check: finite_difference}\n"
           "  - {type: adjoint_gradient, name: iadj, objective: {integral: both + a*x^2}}\n"
           "  - {type: gradient, name: ifwd, method: forward, objective: {integral: both + a*x^2}}\n"
           "  - {type: gradient, name: ifwd2, method: forward, parameters: [c], objective: {integral: both + a*x^2}}\n",
           csv, csv, csv);
  ct_context *ctx = ct_context_new(NULL);
  char out[600];
  snprintf(out, sizeof out, "%s/out", dir);
  cJSON *sum = run_config(ctx, text, out);
  const char *names[4] = {"a", "b", "c", "d"};
  for (int j = 0; j < 4; j++) {
    double fwd = summary_number(sum, 1, "gradient", names[j]);
    double adj = summary_number(sum, 2, "gradient", names[j]);
    double fd = summary_number(sum, 3, "gradient", names[j]);
    assert_close(fwd, adj, 1e-6 * fabs(adj));
    assert_close(fd, adj, 1e-4 * fabs(adj));
    double ffwd = summary_number(sum, 4, "gradient", names[j]);
    double fadj = summary_number(sum, 5, "gradient", names[j]);
    assert_close(ffwd, fadj, 1e-6 * fabs(fadj));
    /* an integral by forward sensitivities of the model with q' = g */
    double iadj = summary_number(sum, 6, "gradient", names[j]);
    assert_close(summary_number(sum, 7, "gradient", names[j]), iadj, 1e-6 * fabs(iadj));
  }
  assert_close(summary_number(sum, 8, "gradient", "c"), summary_number(sum, 6, "gradient", "c"),
               1e-6 * fabs(summary_number(sum, 6, "gradient", "c")));
  double iobj = summary_number(sum, 6, "objective", NULL);
  assert_close(summary_number(sum, 7, "objective", NULL), iobj, 1e-8 * fabs(iobj));
  /* the likelihood is the same whichever method computed it */
  double nll = summary_number(sum, 2, "negative_log_likelihood", NULL);
  assert_close(summary_number(sum, 1, "negative_log_likelihood", NULL), nll, 1e-8 * nll);
  assert_close(summary_number(sum, 3, "negative_log_likelihood", NULL), nll, 1e-8 * nll);
  /* observables' sensitivities: prey = x, d(x y)/dp = y dx/dp + x dy/dp */
  const cJSON *fs = cJSON_GetArrayItem(cJSON_GetObjectItem(sum, "analyses"), 0);
  const cJSON *sens = cJSON_GetObjectItem(fs, "sensitivities");
  const cJSON *vals = cJSON_GetObjectItem(fs, "values");
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(fs, "times")), 3);
  double x = cJSON_GetArrayItem(cJSON_GetObjectItem(vals, "x"), 2)->valuedouble;
  double y = cJSON_GetArrayItem(cJSON_GetObjectItem(vals, "y"), 2)->valuedouble;
  for (int j = 0; j < 4; j++) {
    const cJSON *pj = cJSON_GetObjectItem(sens, names[j]);
    double sx = cJSON_GetArrayItem(cJSON_GetObjectItem(pj, "x"), 2)->valuedouble;
    double sy = cJSON_GetArrayItem(cJSON_GetObjectItem(pj, "y"), 2)->valuedouble;
    double sb = cJSON_GetArrayItem(cJSON_GetObjectItem(pj, "both"), 2)->valuedouble;
    double sp = cJSON_GetArrayItem(cJSON_GetObjectItem(pj, "prey"), 2)->valuedouble;
    assert_close(sp, sx, 0.0);
    assert_close(sb, y * sx + x * sy, 1e-12 * (fabs(y * sx) + fabs(x * sy)));
  }
  cJSON_Delete(sum);
  ct_context_free(ctx);
  static const char *const files[] = {"summary.json", "sensitivities.csv", "sensitivities.svg",
                                      "gradient.csv", "gradient.svg"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", out, files[i]);
    remove(path);
  }
  remove(out);
  remove(csv);
  remove(dir);
}

/* Builds the LV model with a context whose allocations fail in turn. */
static int build_lv(ct_context *ctx, void *ud) {
  (void)ud;
  ct_cfg_doc *doc = NULL;
  ct_cfg *cfg = NULL;
  int rc = ct_cfg_parse(ctx, "test.yaml", lv_config, strlen(lv_config), &doc);
  if (rc == CT_OK) rc = ct_cfg_from_doc(ctx, doc, &cfg);
  ct_cfg_built *b = NULL;
  if (rc == CT_OK) rc = ct_cfg_model_build(ctx, &cfg->model, &b);
  ct_cfg_built_free(b);
  ct_cfg_free(cfg);
  return rc;
}

/* Builds the LV model and plans analyses with objectives (a final-time
 * term with forward sensitivities, an integral with the adjoint). */
static int plan_lv(ct_context *ctx, void *ud) {
  (void)ud;
  static const char *const text =
      "model:\n"
      "  parameters: {a: 1.5, b: 1.0, c: 3.0, d: 1.0}\n"
      "  states: {x: 1.0, y: 1.0}\n"
      "  assignments: {xy: x*y}\n"
      "  equations: {x: a*x - b*xy, y: d*xy - c*y}\n"
      "time: {start: 0, end: 2, output: [0, 1, 2]}\n"
      "analyses:\n"
      "  - {type: gradient, method: forward, objective: {final: x^2 + a}}\n"
      "  - {type: adjoint_gradient, objective: {integral: xy}}\n"
      "  - {type: gradient, method: forward, objective: {integral: xy + a}}\n";
  ct_cfg_doc *doc = NULL;
  ct_cfg *cfg = NULL;
  ct_cfg_built *b = NULL;
  ct_cfg_plan *plan = NULL;
  int rc = ct_cfg_parse(ctx, "test.yaml", text, strlen(text), &doc);
  if (rc == CT_OK) rc = ct_cfg_from_doc(ctx, doc, &cfg);
  if (rc == CT_OK) rc = ct_cfg_model_build(ctx, &cfg->model, &b);
  if (rc == CT_OK) rc = ct_cfg_plan_new(ctx, cfg, b, &plan);
  ct_cfg_plan_free(plan);
  ct_cfg_built_free(b);
  ct_cfg_free(cfg);
  return rc;
}

/* No leak and an error whichever allocation fails. */
static void test_fault_injection(void **state) {
  (void)state;
  assert_true(ct_test_fault_sweep(build_lv, NULL) > 0);
  assert_true(ct_test_fault_sweep(plan_lv, NULL) > 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rhs_matches_hand_written),
      cmocka_unit_test(test_initial_values_depend_on_parameters),
      cmocka_unit_test(test_misfit),
      cmocka_unit_test(test_dae_residual),
      cmocka_unit_test(test_undefined_name),
      cmocka_unit_test(test_undefined_name_in_unused_assignment),
      cmocka_unit_test(test_state_in_initial_value),
      cmocka_unit_test(test_cycle),
      cmocka_unit_test(test_summary_of_a_large_model),
      cmocka_unit_test(test_gradient_methods_agree),
      cmocka_unit_test(test_fault_injection),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
