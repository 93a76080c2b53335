/* config/schema.c: good configs load with the right typed values (the
 * DESIGN.md sketch verbatim, a config using every key), --set overrides,
 * the bad-input suite of tests/config/bad/ (EXPECT says the location and
 * words of each error), and allocation failures while loading. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config_internal.h"
#include "ct_test.h"

#ifndef CT_CONFIG_TEST_DIR
#error "CT_CONFIG_TEST_DIR must name tests/config"
#endif

/* The config sketch of DESIGN.md, verbatim. */
static const char design_sketch[] =
    "model:\n"
    "  name: robertson\n"
    "  parameters: {p1: 0.04, p2: 1.0e4, p3: 3.0e7}   # name: nominal value\n"
    "  states: {y1: 1.0, y2: 0.0, y3: 0.0}             # name: initial value (number or "
    "expression)\n"
    "  equations:                                       # d(state)/dt = expression\n"
    "    y1: -p1*y1 + p2*y2*y3\n"
    "    y2: p1*y1 - p2*y2*y3 - p3*y2^2\n"
    "    y3: p3*y2^2\n"
    "  # assignments: {name: expression}   intermediate quantities\n"
    "  # observables: {name: expression}   outputs compared with data\n"
    "  # algebraic:   {name: residual}     DAE algebraic variables, 0 = residual\n"
    "solver: {method: bdf, rtol: 1.0e-6, atol: 1.0e-8, linear_solver: auto}\n"
    "time: {start: 0, end: 4.0e7, output: [0.4, 4, 40, 400, 4.0e7]}\n"
    "analyses:\n"
    "  - type: simulate\n"
    "  - type: forward_sensitivity\n"
    "    parameters: [p1, p2, p3]\n"
    "  - type: adjoint_gradient\n"
    "    objective: {integral: y3}          # or {final: expr} or {data: {file: d.csv, ...}}\n"
    "    parameters: [p1, p2, p3]\n"
    "    check: finite_difference\n";

/* A config that uses every key of the schema. */
static const char every_key[] =
    "model:\n"
    "  name: every-key\n"
    "  parameters:\n"
    "    k: {value: 0.5, lower: 0.01, upper: 10, scale: log}\n"
    "    a: .5\n"
    "    b: -2\n"
    "    c: {value: 1e-3, scale: lin}\n"
    "  states:\n"
    "    x: 2*a\n"
    "    y: \"1e-3\"\n"
    "  algebraic:\n"
    "    z: z - x*y\n"
    "    w: {residual: w + z - 1, initial: 0.5}\n"
    "  assignments:\n"
    "    rate: k*x\n"
    "  observables:\n"
    "    xo: x\n"
    "    total: x + y\n"
    "  equations:\n"
    "    x: -rate + c\n"
    "    y: rate - b*y\n"
    "solver:\n"
    "  method: adams\n"
    "  rtol: 1e-5\n"
    "  atol: {y: 1e-12}\n"
    "  linear_solver: klu\n"
    "  max_steps: 20000\n"
    "time:\n"
    "  start: 0.1\n"
    "  end: 100\n"
    "  output: {logspace: [-1, 2, 4]}\n"
    "analyses:\n"
    "  - type: simulate\n"
    "  - type: forward_sensitivity\n"
    "    name: sens\n"
    "    parameters: [k, a]\n"
    "    check: none\n"
    "  - type: adjoint_gradient\n"
    "    objective: {final: x^2}\n"
    "    check: finite_difference\n"
    "  - type: adjoint_gradient\n"
    "    objective:\n"
    "      data: {file: data/d.csv, observables: [total], sigma: 0.2}\n"
    "  - type: gradient\n"
    "    method: finite_difference\n"
    "    objective: {integral: y}\n";

/* A fresh folder for config files, and its config path. */
typedef struct tmp_config {
  char dir[64];
  char path[128];
} tmp_config;

/* Writes text as DIR/NAME in a new temporary folder. */
static void write_config(tmp_config *t, const char *name, const char *text) {
  snprintf(t->dir, sizeof t->dir, "/tmp/ct_test_schema_XXXXXX");
  assert_non_null(mkdtemp(t->dir));
  snprintf(t->path, sizeof t->path, "%s/%s", t->dir, name);
  FILE *f = fopen(t->path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* Removes the file and its folder. */
static void remove_config(tmp_config *t) {
  remove(t->path);
  rmdir(t->dir);
}

/* Loads text (with sets) from a temporary file, asserting success. */
static ct_cfg *load_ok(ct_context *ctx, const char *text, const char *const *sets,
                       size_t n_sets, tmp_config *t) {
  write_config(t, "config.yaml", text);
  ct_cfg *cfg = NULL;
  int rc = ct_cfg_load(ctx, t->path, sets, n_sets, &cfg);
  if (rc != CT_OK) fail_msg("load failed: %s", ct_errmsg(ctx));
  return cfg;
}

/* The DESIGN.md sketch loads with every value as written. */
static void test_design_sketch(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  tmp_config t;
  ct_cfg *cfg = load_ok(ctx, design_sketch, NULL, 0, &t);
  const ct_cfg_model *m = &cfg->model;
  assert_string_equal(m->name, "robertson");
  assert_int_equal(m->n_params, 3);
  assert_string_equal(m->params[1].name, "p2");
  assert_true(m->params[0].value == 0.04);
  assert_true(m->params[1].value == 1.0e4);
  assert_true(m->params[2].value == 3.0e7);
  assert_true(isinf(m->params[0].lower) && m->params[0].lower < 0);
  assert_true(isinf(m->params[0].upper) && m->params[0].upper > 0);
  assert_int_equal(m->params[0].log_scale, 0);
  assert_int_equal(m->n_states, 3);
  assert_string_equal(m->states[0].expr.text, "1.0");
  assert_string_equal(m->states[1].rhs.text, "p1*y1 - p2*y2*y3 - p3*y2^2");
  assert_int_equal(m->states[1].rhs.loc.line, 7);
  assert_int_equal(m->states[1].rhs.loc.col, 9);
  assert_int_equal(m->states[0].loc.line, 4);
  assert_int_equal(m->states[0].loc.col, 12);
  assert_int_equal(m->n_assignments + m->n_observables + m->n_algebraic, 0);
  assert_string_equal(cfg->solver.method, "bdf");
  assert_string_equal(cfg->solver.linear_solver, "auto");
  assert_true(cfg->solver.rtol == 1e-6 && cfg->solver.atol == 1e-8);
  assert_null(cfg->solver.atol_v);
  assert_int_equal(cfg->solver.max_steps, 0);
  assert_true(cfg->time.start == 0 && cfg->time.end == 4.0e7);
  const double want[] = {0, 0.4, 4, 40, 400, 4.0e7};
  assert_int_equal(cfg->time.n_output, 6);
  for (size_t i = 0; i < 6; i++) assert_true(cfg->time.output[i] == want[i]);
  assert_int_equal(cfg->n_analyses, 3);
  assert_int_equal(cfg->analyses[0].type, CT_CFG_SIMULATE);
  assert_string_equal(cfg->analyses[0].name, "simulate");
  assert_int_equal(cfg->analyses[1].type, CT_CFG_FORWARD_SENSITIVITY);
  assert_int_equal(cfg->analyses[1].n_parameters, 3);
  assert_string_equal(cfg->analyses[1].parameters[2], "p3");
  const ct_cfg_analysis *adj = &cfg->analyses[2];
  assert_int_equal(adj->type, CT_CFG_ADJOINT_GRADIENT);
  assert_string_equal(adj->name, "adjoint_gradient");
  assert_int_equal(adj->objective.kind, CT_CFG_OBJ_INTEGRAL);
  assert_string_equal(adj->objective.expr.text, "y3");
  assert_int_equal(adj->check_fd, 1);
  assert_string_equal(cfg->dir, t.dir);
  ct_cfg_free(cfg);
  remove_config(&t);
  ct_context_free(ctx);
}

/* The model section of the every-key config. */
static void check_every_key_model(const ct_cfg_model *m) {
  assert_string_equal(m->name, "every-key");
  assert_int_equal(m->n_params, 4);
  assert_true(m->params[0].value == 0.5 && m->params[0].lower == 0.01);
  assert_true(m->params[0].upper == 10 && m->params[0].log_scale == 1);
  assert_true(m->params[1].value == 0.5 && m->params[2].value == -2);
  assert_true(m->params[3].value == 1e-3 && m->params[3].log_scale == 0);
  assert_string_equal(m->states[0].expr.text, "2*a");
  assert_string_equal(m->states[1].expr.text, "1e-3");
  assert_int_equal(m->states[1].expr.loc.col, 9); /* after the quote */
  assert_string_equal(m->states[0].rhs.text, "-rate + c");
  assert_int_equal(m->n_algebraic, 2);
  assert_string_equal(m->algebraic[0].rhs.text, "z - x*y");
  assert_string_equal(m->algebraic[0].expr.text, "0");
  assert_string_equal(m->algebraic[1].rhs.text, "w + z - 1");
  assert_string_equal(m->algebraic[1].expr.text, "0.5");
  assert_int_equal(m->n_assignments, 1);
  assert_string_equal(m->assignments[0].expr.text, "k*x");
  assert_int_equal(m->n_observables, 2);
  assert_string_equal(m->observables[1].name, "total");
}

/* The analyses of the every-key config (default names, objectives, data
 * file resolved against the config's folder). */
static void check_every_key_analyses(const ct_cfg *cfg, const char *dir) {
  assert_int_equal(cfg->n_analyses, 5);
  assert_string_equal(cfg->analyses[0].name, "simulate");
  assert_string_equal(cfg->analyses[1].name, "sens");
  assert_int_equal(cfg->analyses[1].n_parameters, 2);
  assert_int_equal(cfg->analyses[1].check_fd, 0);
  const ct_cfg_analysis *a = &cfg->analyses[2];
  assert_string_equal(a->name, "adjoint_gradient_1");
  assert_int_equal(a->n_parameters, 4);
  assert_string_equal(a->parameters[3], "c");
  assert_int_equal(a->objective.kind, CT_CFG_OBJ_FINAL);
  assert_string_equal(a->objective.expr.text, "x^2");
  a = &cfg->analyses[3];
  assert_string_equal(a->name, "adjoint_gradient_2");
  assert_int_equal(a->objective.kind, CT_CFG_OBJ_DATA);
  char want[200];
  snprintf(want, sizeof want, "%s/data/d.csv", dir);
  assert_string_equal(a->objective.data_file, want);
  assert_int_equal(a->objective.n_observables, 1);
  assert_string_equal(a->objective.observables[0], "total");
  assert_true(a->objective.sigma == 0.2);
  assert_int_equal(a->objective.data_loc.line, 43);
  a = &cfg->analyses[4];
  assert_int_equal(a->type, CT_CFG_GRADIENT);
  assert_string_equal(a->method, "finite_difference");
  assert_int_equal(a->objective.kind, CT_CFG_OBJ_INTEGRAL);
}

/* A config using every key loads with the right typed values. */
static void test_every_key(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  tmp_config t;
  ct_cfg *cfg = load_ok(ctx, every_key, NULL, 0, &t);
  check_every_key_model(&cfg->model);
  assert_string_equal(cfg->solver.method, "adams");
  assert_string_equal(cfg->solver.linear_solver, "klu");
  assert_true(cfg->solver.rtol == 1e-5);
  assert_int_equal(cfg->solver.max_steps, 20000);
  assert_non_null(cfg->solver.atol_v);
  assert_true(cfg->solver.atol_v[0] == 1e-8 && cfg->solver.atol_v[1] == 1e-12);
  /* logspace [-1, 2, 4]: 0.1 (= start), 1, 10, 100 (= end) */
  const double want[] = {0.1, 1, 10, 100};
  assert_int_equal(cfg->time.n_output, 4);
  for (size_t i = 0; i < 4; i++)
    assert_true(fabs(cfg->time.output[i] - want[i]) <= 1e-12 * want[i]);
  assert_true(cfg->time.output[0] == cfg->time.start && cfg->time.output[3] == cfg->time.end);
  check_every_key_analyses(cfg, t.dir);
  ct_cfg_free(cfg);
  remove_config(&t);
  ct_context_free(ctx);
}

/* time.output defaults and linspace; the model name defaults to the file's. */
static void test_time_grids(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  tmp_config t;
  const char *text = "model: {states: {x: 1}, equations: {x: -x}}\n"
                     "time: {end: 2}\nanalyses: [{type: simulate}, {type: simulate}]\n";
  ct_cfg *cfg = load_ok(ctx, text, NULL, 0, &t);
  assert_string_equal(cfg->model.name, "config");
  assert_int_equal(cfg->time.n_output, 101);
  assert_true(cfg->time.output[0] == 0 && cfg->time.output[100] == 2);
  assert_true(fabs(cfg->time.output[50] - 1) < 1e-15);
  assert_string_equal(cfg->analyses[1].name, "simulate_2");
  ct_cfg_free(cfg);
  remove_config(&t);
  const char *sets[] = {"time.output={linspace: [0.5, 1.5, 3]}"};
  cfg = load_ok(ctx, text, sets, 1, &t);
  const double want[] = {0, 0.5, 1, 1.5, 2};
  assert_int_equal(cfg->time.n_output, 5);
  for (size_t i = 0; i < 5; i++) assert_true(cfg->time.output[i] == want[i]);
  ct_cfg_free(cfg);
  remove_config(&t);
  ct_context_free(ctx);
}

/* --set replaces values (parsed as YAML), walks list indices and creates
 * known keys. */
static void test_set_overrides(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  tmp_config t;
  const char *sets[] = {"solver.rtol=1e-4",         "time.output=[1, 2, 3]",
                        "analyses.2.check=none",    "model.parameters.p1=0.5",
                        "solver.max_steps=100",     "analyses.1.parameters=[p2]",
                        "model.states.y1=2*p1"};
  ct_cfg *cfg = load_ok(ctx, design_sketch, sets, 7, &t);
  assert_true(cfg->solver.rtol == 1e-4);
  assert_int_equal(cfg->time.n_output, 5);
  assert_true(cfg->time.output[3] == 3);
  assert_int_equal(cfg->analyses[2].check_fd, 0);
  assert_true(cfg->model.params[0].value == 0.5);
  assert_int_equal(cfg->solver.max_steps, 100);
  assert_int_equal(cfg->analyses[1].n_parameters, 1);
  assert_string_equal(cfg->analyses[1].parameters[0], "p2");
  assert_string_equal(cfg->model.states[0].expr.text, "2*p1");
  assert_string_equal(cfg->model.states[0].expr.loc.file, "--set");
  ct_cfg_free(cfg);
  remove_config(&t);
  /* a section that is not in the file is created */
  const char *text = "model: {states: {x: 1}, equations: {x: -x}}\n"
                     "time: {end: 2}\nanalyses: [{type: simulate}]\n";
  const char *create[] = {"solver.method=adams"};
  cfg = load_ok(ctx, text, create, 1, &t);
  assert_string_equal(cfg->solver.method, "adams");
  ct_cfg_free(cfg);
  remove_config(&t);
  ct_context_free(ctx);
}

/* Loads the sketch with one --set expecting CT_ERR_CONFIG with words. */
static void set_fails(const char *set, const char *words) {
  ct_context *ctx = ct_context_new(NULL);
  tmp_config t;
  write_config(&t, "config.yaml", design_sketch);
  ct_cfg *cfg = NULL;
  assert_int_equal(ct_cfg_load(ctx, t.path, &set, 1, &cfg), CT_ERR_CONFIG);
  assert_null(cfg);
  if (!strstr(ct_errmsg(ctx), words)) fail_msg("expected '%s' in: %s", words, ct_errmsg(ctx));
  remove_config(&t);
  ct_context_free(ctx);
}

/* Bad --set: unknown keys suggest the closest, bad indices and values say so. */
static void test_set_errors(void **state) {
  (void)state;
  set_fails("solver.rtl=1", "'solver.rtl=1': no key 'rtl' in solver (did you mean 'rtol'?)");
  set_fails("model.parameters.p4=1", "no key 'p4' in model.parameters (did you mean 'p1'?)");
  set_fails("analyses.7.check=none", "analyses is a list of 3 items; '7' is not an index");
  set_fails("solver.rtol.x=1", "solver.rtol is a single value");
  set_fails("solver.rtol", "'solver.rtol' must be written key.path=value");
  set_fails("=1", "must be written key.path=value");
  set_fails("solver..rtol=1", "the key path has an empty part");
  set_fails("solver.rtol=abc", "--set: solver.rtol must be a positive number, got 'abc'");
  set_fails("solver.rtol=[1", "--set:2:1: YAML syntax error");
  set_fails("solver.rtol=", "solver.rtol must be a positive number, got nothing");
}

/* One EXPECT line split into its fields (pointers into the line). */
typedef struct expect_case {
  char *stage, *file, *where, *words;
} expect_case;

/* Splits "STAGE FILE LINE:COL WORDS"; 0 for comments and blank lines. */
static int split_expect(char *line, expect_case *c) {
  line[strcspn(line, "\r\n")] = '\0';
  if (line[0] == '#' || !line[strspn(line, " \t")]) return 0;
  char *save = NULL;
  c->stage = strtok_r(line, " \t", &save);
  c->file = strtok_r(NULL, " \t", &save);
  c->where = strtok_r(NULL, " \t", &save);
  c->words = save ? save + strspn(save, " \t") : NULL;
  if (!c->stage || !c->file || !c->where || !c->words || !c->words[0])
    fail_msg("malformed EXPECT line: %s", line);
  return 1;
}

/* Checks one "load" case: CT_ERR_CONFIG at the location with the words.
 * Returns 0 when it holds, 1 (after printing why) when not. */
static int check_load_case(const expect_case *c) {
  char path[512], loc[300];
  snprintf(path, sizeof path, "%s/bad/%s", CT_CONFIG_TEST_DIR, c->file);
  ct_context *ctx = ct_context_new(NULL);
  ct_cfg *cfg = NULL;
  int rc = ct_cfg_load(ctx, path, NULL, 0, &cfg), bad = 0;
  const char *msg = ct_errmsg(ctx);
  if (rc != CT_ERR_CONFIG || cfg) {
    print_error("%s: expected CT_ERR_CONFIG, got %d: %s\n", c->file, rc, msg);
    bad = 1;
  }
  snprintf(loc, sizeof loc, "%s:%s: ", c->file, c->where);
  if (!bad && strcmp(c->where, "-") != 0 && !strstr(msg, loc)) {
    print_error("%s: expected location '%s' in: %s\n", c->file, loc, msg);
    bad = 1;
  }
  char words[1024];
  snprintf(words, sizeof words, "%s", c->words);
  char *save = NULL;
  for (char *w = strtok_r(words, "|", &save); w && !bad; w = strtok_r(NULL, "|", &save)) {
    while (*w == ' ') w++;
    size_t n = strlen(w);
    while (n && w[n - 1] == ' ') w[--n] = '\0';
    if (!strstr(msg, w)) {
      print_error("%s: expected '%s' in: %s\n", c->file, w, msg);
      bad = 1;
    }
  }
  ct_cfg_free(cfg);
  ct_context_free(ctx);
  return bad;
}

/* Every "load" case of tests/config/bad/EXPECT fails as it says; there are
 * at least 40 of them. */
static void test_bad_suite(void **state) {
  (void)state;
  FILE *f = fopen(CT_CONFIG_TEST_DIR "/bad/EXPECT", "r");
  assert_non_null(f);
  char line[1024];
  int n_load = 0, n_bad = 0;
  while (fgets(line, sizeof line, f)) {
    expect_case c;
    if (!split_expect(line, &c) || strcmp(c.stage, "load") != 0) continue;
    n_bad += check_load_case(&c);
    n_load++;
  }
  fclose(f);
  assert_int_equal(n_bad, 0);
  assert_true(n_load >= 40);
}

/* ct_cfg_load of the every-key config (with --set) under failing allocations. */
static int load_under_faults(ct_context *ctx, void *ud) {
  const char *path = ud;
  const char *sets[] = {"solver.rtol=1e-7", "analyses.0.name=first", "time.output=[1, 2]"};
  ct_cfg *cfg = NULL;
  int rc = ct_cfg_load(ctx, path, sets, 3, &cfg);
  if (rc == CT_OK && cfg->time.n_output != 4) rc = CT_ERR_INTERNAL;
  ct_cfg_free(cfg);
  return rc;
}

/* Every allocation failure while loading is reported and leaks nothing. */
static void test_fault_sweep(void **state) {
  (void)state;
  tmp_config t;
  write_config(&t, "config.yaml", every_key);
  long n = ct_test_fault_sweep(load_under_faults, t.path);
  assert_true(n > 100);
  remove_config(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_design_sketch), cmocka_unit_test(test_every_key),
      cmocka_unit_test(test_time_grids),    cmocka_unit_test(test_set_overrides),
      cmocka_unit_test(test_set_errors),    cmocka_unit_test(test_bad_suite),
      cmocka_unit_test(test_fault_sweep),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
