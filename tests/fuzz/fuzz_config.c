/* libFuzzer target for the two parsers of config files: every input is
 * fed (a) to the expression parser, then emitted into a graph whose scope
 * resolves a few names, finalized and evaluated, and (b) to the YAML
 * loader, the schema and, when those accept it, the model builder. Any
 * crash, sanitizer report or leak is a bug: bad input must only ever give
 * an error status. Built by `make fuzz` (CMake option COTANGENT_FUZZ). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

#define FUZZ_MAX_INPUT (64 * 1024)

static const char *const fuzz_names[] = {"x", "y", "t", "p1", "k_on"};
#define FUZZ_N_NAMES 5

typedef struct fuzz_scope {
  ct_var vars[FUZZ_N_NAMES];
} fuzz_scope;

/* Scope lookup over fuzz_names. */
static int fuzz_lookup(void *ud, const char *name, ct_var *out) {
  fuzz_scope *s = ud;
  for (int k = 0; k < FUZZ_N_NAMES; k++)
    if (!strcmp(fuzz_names[k], name)) return *out = s->vars[k], 1;
  return 0;
}

/* Counts the free names (exercises ct_expr_names). */
static int count_name(const char *name, ct_cfg_loc loc, void *ud) {
  (void)loc;
  *(size_t *)ud += strlen(name) > 0;
  return 0;
}

/* Evaluates f at a fixed point; the status does not matter. */
static void evaluate(ct_context *ctx, const ct_fun *f) {
  static const double point[FUZZ_N_NAMES] = {0.5, -1.25, 2.0, 0.04, 3.0};
  double *work = ct_alloc(ctx, sizeof(double) * (ct_fun_work_size(f) + 1));
  double value = 0;
  const double *in[1] = {point};
  double *out[1] = {&value};
  if (work) (void)ct_fun_eval(ctx, f, in, out, work);
  ct_free(ctx, work);
}

/* (a) The expression language: parse, walk the names, emit, evaluate; and
 * the same text as a constant expression. */
static void fuzz_expression(ct_context *ctx, char *text) {
  ct_cfg_expr src = {text, {"fuzz.yaml", 1, 5}};
  ct_expr *e = NULL;
  double c;
  (void)ct_expr_eval_const(ctx, &src, &c);
  if (ct_expr_parse(ctx, &src, &e) != CT_OK) return;
  size_t n_names = 0;
  (void)ct_expr_names(e, count_name, &n_names);
  ct_graph *g = ct_graph_new(ctx);
  fuzz_scope s;
  ct_expr_scope scope = {fuzz_lookup, &s, fuzz_names, FUZZ_N_NAMES};
  ct_var r;
  ct_fun *f = NULL;
  if (g && ct_graph_input(g, "v", FUZZ_N_NAMES, NULL, s.vars) == CT_OK &&
      ct_expr_emit(ctx, e, &scope, g, &r) == CT_OK &&
      ct_graph_output(g, "f", 1, &r) == CT_OK && ct_graph_finalize(g, &f) == CT_OK)
    evaluate(ctx, f);
  ct_fun_free(f);
  ct_graph_free(g);
  ct_expr_free(e);
}

/* (b) The YAML path: parse, check against the schema, build the model. */
static void fuzz_config(ct_context *ctx, const char *text, size_t len) {
  ct_cfg_doc *doc = NULL;
  ct_cfg *cfg = NULL;
  if (ct_cfg_parse(ctx, "fuzz.yaml", text, len, &doc) != CT_OK) return;
  if (ct_cfg_from_doc(ctx, doc, &cfg) != CT_OK) return; /* doc freed by it */
  ct_cfg_built *built = NULL;
  if (ct_cfg_model_build(ctx, &cfg->model, &built) == CT_OK) ct_cfg_built_free(built);
  ct_cfg_free(cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > FUZZ_MAX_INPUT) return 0;
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  ct_context *ctx = ct_context_new(NULL);
  if (ctx) {
    ct_context_set_log_level(ctx, CT_LOG_QUIET);
    fuzz_expression(ctx, text);
    fuzz_config(ctx, text, size);
    ct_context_free(ctx);
  }
  free(text);
  return 0;
}
