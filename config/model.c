/* A config's model as AD functions: the right-hand side (or, with algebraic
 * variables, the DAE residual), y0(p), the observables and objective terms,
 * all emitted from the model's expressions into ct_graph's. Named
 * expressions (assignments, observables) are emitted on first use, so each
 * function gets them in dependency order; cycles are found once, up front. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"
#include "cotangent/dae.h"
#include "cotangent/ode.h"

typedef enum sym_kind { SYM_TIME, SYM_PARAM, SYM_Y, SYM_NAMED } sym_kind;

/* One name a model expression may use. */
typedef struct sym {
  const char *name;
  sym_kind kind;
  size_t index; /* PARAM: into p; Y: into y; NAMED: into named[] */
} sym;

/* A named expression (assignment or observable) and its parsed form. */
typedef struct named_expr {
  const ct_cfg_symbol *src;
  ct_expr *ast;
} named_expr;

struct ct_cfg_built_priv {
  sym *syms;           /* every name, hashed by open addressing */
  size_t cap;          /* slots (power of two) */
  const char **known;  /* the names, for "did you mean" */
  size_t n_known;
  named_expr *named;   /* assignments, then observables */
  size_t n_named;
  ct_expr **eq;        /* n: d/dt of each state, then the residuals */
  ct_expr **init;      /* n: initial values (guesses for algebraic) */
};

/* FNV-1a of a name. */
static size_t name_hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return (size_t)h;
}

/* The symbol called `name`, or NULL. */
static const sym *sym_find(const struct ct_cfg_built_priv *pv, const char *name) {
  for (size_t i = name_hash(name) & (pv->cap - 1);; i = (i + 1) & (pv->cap - 1)) {
    if (!pv->syms[i].name) return NULL;
    if (strcmp(pv->syms[i].name, name) == 0) return &pv->syms[i];
  }
}

/* Adds a name; a repeated name is a config error at `loc`. */
static int sym_add(ct_context *ctx, struct ct_cfg_built_priv *pv, const char *name,
                   sym_kind kind, size_t index, ct_cfg_loc loc) {
  if (sym_find(pv, name))
    return ct_cfg_error(ctx, loc, "'%s' is defined twice (names of parameters, states, "
                        "algebraic variables, assignments and observables must differ)",
                        name);
  size_t i = name_hash(name) & (pv->cap - 1);
  while (pv->syms[i].name) i = (i + 1) & (pv->cap - 1);
  pv->syms[i] = (sym){name, kind, index};
  pv->known[pv->n_known++] = name;
  return CT_OK;
}

/* Fills the symbol table with t, parameters, states, algebraic variables
 * and the named expressions. */
static int fill_symbols(ct_context *ctx, const ct_cfg_model *m, struct ct_cfg_built_priv *pv) {
  size_t total = 1 + m->n_params + m->n_states + m->n_algebraic + m->n_assignments +
                 m->n_observables;
  pv->cap = 16;
  while (pv->cap < 2 * total) pv->cap *= 2;
  pv->syms = ct_calloc(ctx, pv->cap, sizeof *pv->syms);
  pv->known = ct_calloc(ctx, total, sizeof *pv->known);
  if (!pv->syms || !pv->known) return CT_ERR_NOMEM;
  ct_cfg_loc none = {NULL, 0, 0};
  CT_CHECK(ctx, sym_add(ctx, pv, "t", SYM_TIME, 0, none));
  for (size_t i = 0; i < m->n_params; i++)
    CT_CHECK(ctx, sym_add(ctx, pv, m->params[i].name, SYM_PARAM, i, m->params[i].loc));
  for (size_t i = 0; i < m->n_states; i++)
    CT_CHECK(ctx, sym_add(ctx, pv, m->states[i].name, SYM_Y, i, m->states[i].loc));
  for (size_t i = 0; i < m->n_algebraic; i++)
    CT_CHECK(ctx, sym_add(ctx, pv, m->algebraic[i].name, SYM_Y, m->n_states + i,
                          m->algebraic[i].loc));
  for (size_t i = 0; i < pv->n_named; i++)
    CT_CHECK(ctx, sym_add(ctx, pv, pv->named[i].src->name, SYM_NAMED, i,
                          pv->named[i].src->loc));
  return CT_OK;
}

/* Parses every expression of the model. */
static int parse_all(ct_context *ctx, const ct_cfg_model *m, struct ct_cfg_built_priv *pv) {
  size_t n = m->n_states + m->n_algebraic;
  pv->eq = ct_calloc(ctx, n ? n : 1, sizeof *pv->eq);
  pv->init = ct_calloc(ctx, n ? n : 1, sizeof *pv->init);
  if (!pv->eq || !pv->init) return CT_ERR_NOMEM;
  for (size_t i = 0; i < n; i++) {
    const ct_cfg_symbol *s = i < m->n_states ? &m->states[i] : &m->algebraic[i - m->n_states];
    CT_CHECK(ctx, ct_expr_parse(ctx, &s->rhs, &pv->eq[i]));
    CT_CHECK(ctx, ct_expr_parse(ctx, &s->expr, &pv->init[i]));
  }
  for (size_t i = 0; i < pv->n_named; i++)
    CT_CHECK(ctx, ct_expr_parse(ctx, &pv->named[i].src->expr, &pv->named[i].ast));
  return CT_OK;
}

/* ---- Cycles among named expressions ---------------------------------------------- */

typedef struct cycle_walk {
  ct_context *ctx;
  struct ct_cfg_built_priv *pv;
  char *color;   /* per named: 0 unvisited, 1 on the stack, 2 done */
  size_t *stack; /* the path being explored */
  size_t depth;
  int status;
} cycle_walk;

static int visit_named(cycle_walk *w, size_t i);

/* Reports the cycle that closes at named[i]: the names on the stack from
 * i, at the location of the one written first. */
static int report_cycle(cycle_walk *w, size_t i) {
  size_t from = 0;
  while (w->stack[from] != i) from++;
  size_t first = i;
  char names[768] = "";
  size_t used = 0;
  for (size_t k = from; k <= w->depth; k++) {
    size_t j = k < w->depth ? w->stack[k] : i;
    if (j < first) first = j;
    int len = snprintf(names + used, sizeof names - used, "%s%s", k > from ? " -> " : "",
                       w->pv->named[j].src->name);
    if (len < 0 || (size_t)len >= sizeof names - used) break;
    used += (size_t)len;
  }
  return ct_cfg_error(w->ctx, w->pv->named[first].src->loc,
                      "'%s' depends on itself: the named expressions form a cycle "
                      "(%s)", w->pv->named[first].src->name, names);
}

/* ct_expr_names callback: follows a name to the named expression it is. */
static int visit_name(const char *name, ct_cfg_loc loc, void *ud) {
  (void)loc;
  cycle_walk *w = ud;
  const sym *s = sym_find(w->pv, name);
  if (!s || s->kind != SYM_NAMED) return 0;
  return visit_named(w, s->index);
}

/* Depth-first search from named[i]; nonzero (the status) on a cycle. */
static int visit_named(cycle_walk *w, size_t i) {
  if (w->color[i] == 2) return 0;
  if (w->color[i] == 1) return w->status = report_cycle(w, i);
  w->color[i] = 1;
  w->stack[w->depth++] = i;
  int rc = ct_expr_names(w->pv->named[i].ast, visit_name, w);
  w->depth--;
  w->color[i] = 2;
  return rc;
}

/* CT_ERR_CONFIG when assignments or observables depend on themselves. */
static int check_cycles(ct_context *ctx, struct ct_cfg_built_priv *pv) {
  if (!pv->n_named) return CT_OK;
  cycle_walk w = {ctx, pv, ct_calloc(ctx, pv->n_named, 1),
                  ct_calloc(ctx, pv->n_named + 1, sizeof(size_t)), 0, CT_OK};
  int rc = !w.color || !w.stack ? CT_ERR_NOMEM : CT_OK;
  for (size_t i = 0; rc == CT_OK && i < pv->n_named; i++)
    if (visit_named(&w, i)) rc = w.status ? w.status : CT_ERR_CONFIG;
  ct_free(ctx, w.color);
  ct_free(ctx, w.stack);
  return rc;
}

/* ---- Emission ------------------------------------------------------------------- */

/* The inputs of one function being traced and the named expressions
 * emitted into it so far. */
typedef struct emitter {
  ct_context *ctx;
  const ct_cfg_built *b;
  ct_graph *g;
  int has_t, has_y, has_p;
  ct_var t, *y, *yp, *p, *d;
  ct_var *named;  /* per named expression, once emitted */
  char *done;     /* per named expression: 1 emitted */
  int failed;     /* the status of a failed nested emission */
  ct_expr_scope scope;
} emitter;

/* ct_expr_scope lookup: inputs by name; a named expression is emitted on
 * first use (a nested failure is kept in e->failed, its message in ctx). */
static int emitter_lookup(void *ud, const char *name, ct_var *out) {
  emitter *e = ud;
  const sym *s = sym_find(e->b->priv, name);
  if (!s) return 0;
  switch (s->kind) {
  case SYM_TIME: if (!e->has_t) return 0; *out = e->t; return 1;
  case SYM_PARAM: if (!e->has_p) return 0; *out = e->p[s->index]; return 1;
  case SYM_Y: if (!e->has_y) return 0; *out = e->y[s->index]; return 1;
  case SYM_NAMED: break;
  }
  if (!e->done[s->index]) {
    int rc = ct_expr_emit(e->ctx, e->b->priv->named[s->index].ast, &e->scope, e->g,
                          &e->named[s->index]);
    if (rc < 0 && !e->failed) e->failed = rc;
    if (rc < 0) e->named[s->index] = ct_const(e->g, 0.0);
    e->done[s->index] = 1;
  }
  *out = e->named[s->index];
  return 1;
}

/* A new graph with the inputs asked for ("t", "y" of n + n_extra_y, "yp",
 * "p", "d" of n_d), ready to emit expressions into; y's extra components
 * (appended states such as an integral's q) are no model names. */
static int emitter_open_ext(ct_context *ctx, const ct_cfg_built *b, int t, int y, int yp,
                            int p, size_t n_d, size_t n_extra_y, emitter *e) {
  memset(e, 0, sizeof *e);
  e->ctx = ctx, e->b = b, e->has_t = t, e->has_y = y, e->has_p = p && b->np > 0;
  size_t nn = b->priv->n_named ? b->priv->n_named : 1, ny = b->n + n_extra_y;
  e->g = ct_graph_new(ctx);
  e->y = ct_calloc(ctx, ny ? 2 * ny : 1, sizeof *e->y);
  e->yp = e->y + ny;
  e->p = ct_calloc(ctx, b->np ? b->np : 1, sizeof *e->p);
  e->d = ct_calloc(ctx, n_d ? n_d : 1, sizeof *e->d);
  e->named = ct_calloc(ctx, nn, sizeof *e->named);
  e->done = ct_calloc(ctx, nn, 1);
  if (!e->g || !e->y || !e->p || !e->d || !e->named || !e->done) return CT_ERR_NOMEM;
  e->scope = (ct_expr_scope){emitter_lookup, e, b->priv->known, b->priv->n_known};
  if (t) CT_CHECK(ctx, ct_graph_input(e->g, "t", 1, NULL, &e->t));
  if (y) CT_CHECK(ctx, ct_graph_input(e->g, "y", ny, NULL, e->y));
  if (yp) CT_CHECK(ctx, ct_graph_input(e->g, "yp", ny, NULL, e->yp));
  if (e->has_p) CT_CHECK(ctx, ct_graph_input(e->g, "p", b->np, NULL, e->p));
  if (n_d) CT_CHECK(ctx, ct_graph_input(e->g, "d", n_d, NULL, e->d));
  return CT_OK;
}

/* emitter_open_ext without extra components of y. */
static int emitter_open(ct_context *ctx, const ct_cfg_built *b, int t, int y, int yp,
                        int p, size_t n_d, emitter *e) {
  return emitter_open_ext(ctx, b, t, y, yp, p, n_d, 0, e);
}

/* Emits one expression through the emitter's scope. */
static int emit(emitter *e, const ct_expr *ast, ct_var *out) {
  int rc = ct_expr_emit(e->ctx, ast, &e->scope, e->g, out);
  if (e->failed) return e->failed;
  return rc;
}

/* Emits every named expression (so that an error in an unused one is still
 * reported). */
static int emit_all_named(emitter *e) {
  for (size_t i = 0; i < e->b->priv->n_named && !e->failed; i++) {
    ct_var v;
    emitter_lookup(e, e->b->priv->named[i].src->name, &v);
  }
  return e->failed;
}

/* Finalizes the graph into *out (NULL on failure) and frees the emitter. */
static int emitter_close(emitter *e, int rc, ct_fun **out) {
  *out = NULL;
  if (rc == CT_OK) rc = ct_graph_finalize(e->g, out);
  ct_graph_free(e->g);
  ct_free(e->ctx, e->y);
  ct_free(e->ctx, e->p);
  ct_free(e->ctx, e->d);
  ct_free(e->ctx, e->named);
  ct_free(e->ctx, e->done);
  return rc;
}

/* Emits exprs[0..n) as the output `name` (n values). */
static int emit_vector(emitter *e, ct_expr *const *exprs, size_t n, const char *name) {
  ct_var *v = ct_calloc(e->ctx, n ? n : 1, sizeof *v);
  if (!v) return CT_ERR_NOMEM;
  int rc = CT_OK;
  for (size_t i = 0; rc == CT_OK && i < n; i++) rc = emit(e, exprs[i], &v[i]);
  if (rc == CT_OK) rc = ct_graph_output(e->g, name, n, v);
  ct_free(e->ctx, v);
  return rc;
}

/* The ODE right-hand side: "t", "y", "p" -> "f". */
static int build_rhs(ct_context *ctx, ct_cfg_built *b) {
  emitter e;
  int rc = emitter_open(ctx, b, 1, 1, 0, 1, 0, &e);
  if (rc == CT_OK) rc = emit_vector(&e, b->priv->eq, b->n, "f");
  if (rc == CT_OK) rc = emit_all_named(&e);
  return emitter_close(&e, rc, &b->rhs);
}

/* The DAE residual: "t", "y", "yp", "p" -> "F", with F_i = yp_i - rhs_i for
 * the states and the residual expressions for the algebraic variables. */
static int build_residual(ct_context *ctx, ct_cfg_built *b) {
  emitter e;
  int rc = emitter_open(ctx, b, 1, 1, 1, 1, 0, &e);
  ct_var *F = rc == CT_OK ? ct_calloc(ctx, b->n, sizeof *F) : NULL;
  if (rc == CT_OK && !F) rc = CT_ERR_NOMEM;
  for (size_t i = 0; rc == CT_OK && i < b->n; i++) {
    rc = emit(&e, b->priv->eq[i], &F[i]);
    if (i < b->n_diff) F[i] = ct_sub(e.yp[i], F[i]);
  }
  if (rc == CT_OK) rc = ct_graph_output(e.g, "F", b->n, F);
  if (rc == CT_OK) rc = emit_all_named(&e);
  ct_free(ctx, F);
  return emitter_close(&e, rc, &b->res);
}

/* Initial values: "p" -> "y0" (states, then algebraic guesses). */
static int build_y0(ct_context *ctx, ct_cfg_built *b) {
  emitter e;
  int rc = emitter_open(ctx, b, 0, 0, 0, 1, 0, &e);
  if (rc == CT_OK) rc = emit_vector(&e, b->priv->init, b->n, "y0");
  return emitter_close(&e, rc, &b->y0);
}

/* The observables: "t", "y", "p" -> "obs". */
static int build_observables(ct_context *ctx, ct_cfg_built *b) {
  if (!b->n_obs) return CT_OK;
  emitter e;
  int rc = emitter_open(ctx, b, 1, 1, 0, 1, 0, &e);
  ct_var *o = rc == CT_OK ? ct_calloc(ctx, b->n_obs, sizeof *o) : NULL;
  if (rc == CT_OK && !o) rc = CT_ERR_NOMEM;
  size_t first = b->model->n_assignments;
  for (size_t i = 0; rc == CT_OK && i < b->n_obs; i++)
    rc = emitter_lookup(&e, b->priv->named[first + i].src->name, &o[i]) ? e.failed
                                                                       : CT_ERR_INTERNAL;
  if (rc == CT_OK) rc = ct_graph_output(e.g, "obs", b->n_obs, o);
  ct_free(ctx, o);
  return emitter_close(&e, rc, &b->obs);
}

/* The ct_ode or ct_dae of the built functions. */
static int build_solver_model(ct_context *ctx, ct_cfg_built *b) {
  if (b->res) return ct_dae_new(ctx, b->res, b->y0, NULL, &b->dae);
  return ct_ode_new(ctx, b->rhs, b->y0, NULL, &b->ode);
}

/* Lists the named expressions: assignments, then observables. */
static int list_named(ct_context *ctx, const ct_cfg_model *m, struct ct_cfg_built_priv *pv) {
  pv->n_named = m->n_assignments + m->n_observables;
  pv->named = ct_calloc(ctx, pv->n_named ? pv->n_named : 1, sizeof *pv->named);
  if (!pv->named) return CT_ERR_NOMEM;
  for (size_t i = 0; i < m->n_assignments; i++) pv->named[i].src = &m->assignments[i];
  for (size_t i = 0; i < m->n_observables; i++)
    pv->named[m->n_assignments + i].src = &m->observables[i];
  return CT_OK;
}

/* Everything ct_cfg_model_build does after allocating b. */
static int build(ct_context *ctx, const ct_cfg_model *m, ct_cfg_built *b) {
  b->n = m->n_states + m->n_algebraic;
  b->n_diff = m->n_states;
  b->np = m->n_params;
  b->n_obs = m->n_observables;
  b->priv = ct_calloc(ctx, 1, sizeof *b->priv);
  b->y_names = ct_calloc(ctx, b->n ? b->n : 1, sizeof *b->y_names);
  if (!b->priv || !b->y_names) return CT_ERR_NOMEM;
  for (size_t i = 0; i < b->n; i++)
    b->y_names[i] = i < m->n_states ? m->states[i].name : m->algebraic[i - m->n_states].name;
  CT_CHECK(ctx, list_named(ctx, m, b->priv));
  CT_CHECK(ctx, fill_symbols(ctx, m, b->priv));
  CT_CHECK(ctx, parse_all(ctx, m, b->priv));
  CT_CHECK(ctx, check_cycles(ctx, b->priv));
  if (m->n_algebraic)
    CT_CHECK(ctx, build_residual(ctx, b));
  else
    CT_CHECK(ctx, build_rhs(ctx, b));
  CT_CHECK(ctx, build_y0(ctx, b));
  CT_CHECK(ctx, build_observables(ctx, b));
  return build_solver_model(ctx, b);
}

int ct_cfg_model_build(ct_context *ctx, const ct_cfg_model *m, ct_cfg_built **out) {
  *out = NULL;
  if (!m || !m->n_states)
    return CT_ERROR(ctx, CT_ERR_CONFIG, "the model has no states");
  ct_cfg_built *b = ct_calloc(ctx, 1, sizeof *b);
  if (!b) return CT_ERR_NOMEM;
  b->ctx = ctx;
  b->model = m;
  int rc = build(ctx, m, b);
  if (rc < 0) {
    ct_cfg_built_free(b);
    return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  }
  *out = b;
  return CT_OK;
}

void ct_cfg_built_free(ct_cfg_built *b) {
  if (!b) return;
  ct_context *ctx = b->ctx;
  struct ct_cfg_built_priv *pv = b->priv;
  if (pv) {
    for (size_t i = 0; pv->eq && i < b->n; i++) ct_expr_free(pv->eq[i]);
    for (size_t i = 0; pv->init && i < b->n; i++) ct_expr_free(pv->init[i]);
    for (size_t i = 0; pv->named && i < pv->n_named; i++) ct_expr_free(pv->named[i].ast);
    ct_free(ctx, pv->eq);
    ct_free(ctx, pv->init);
    ct_free(ctx, pv->named);
    ct_free(ctx, pv->syms);
    ct_free(ctx, pv->known);
    ct_free(ctx, pv);
  }
  ct_ode_free(b->ode);
  ct_dae_free(b->dae);
  ct_fun_free(b->rhs);
  ct_fun_free(b->res);
  ct_fun_free(b->y0);
  ct_fun_free(b->obs);
  ct_free(ctx, b->y_names);
  ct_free(ctx, b);
}

int ct_cfg_model_scalar(ct_context *ctx, const ct_cfg_built *b, const ct_cfg_expr *src,
                        const char *out_name, ct_fun **out) {
  *out = NULL;
  ct_expr *ast = NULL;
  CT_CHECK(ctx, ct_expr_parse(ctx, src, &ast));
  emitter e;
  ct_var v;
  int rc = emitter_open(ctx, b, 1, 1, 0, 1, 0, &e);
  if (rc == CT_OK) rc = emit(&e, ast, &v);
  if (rc == CT_OK) rc = ct_graph_output(e.g, out_name, 1, &v);
  ct_expr_free(ast);
  return emitter_close(&e, rc, out);
}

/* The right-hand side with the integrand appended: "t", "y" (n + 1), "p" ->
 * "f" = (f(t, y, p), g(t, y, p)). */
static int build_rhs_with_integral(ct_context *ctx, const ct_cfg_built *b, const ct_expr *g,
                                   ct_fun **out) {
  emitter e;
  int rc = emitter_open_ext(ctx, b, 1, 1, 0, 1, 0, 1, &e);
  ct_var *f = rc == CT_OK ? ct_calloc(ctx, b->n + 1, sizeof *f) : NULL;
  if (rc == CT_OK && !f) rc = CT_ERR_NOMEM;
  for (size_t i = 0; rc == CT_OK && i < b->n; i++) rc = emit(&e, b->priv->eq[i], &f[i]);
  if (rc == CT_OK) rc = emit(&e, g, &f[b->n]);
  if (rc == CT_OK) rc = ct_graph_output(e.g, "f", b->n + 1, f);
  ct_free(ctx, f);
  return emitter_close(&e, rc, out);
}

/* Initial values with q(t0) = 0 appended: "p" -> "y0" (n + 1). */
static int build_y0_with_integral(ct_context *ctx, const ct_cfg_built *b, ct_fun **out) {
  emitter e;
  int rc = emitter_open(ctx, b, 0, 0, 0, 1, 0, &e);
  ct_var *v = rc == CT_OK ? ct_calloc(ctx, b->n + 1, sizeof *v) : NULL;
  if (rc == CT_OK && !v) rc = CT_ERR_NOMEM;
  for (size_t i = 0; rc == CT_OK && i < b->n; i++) rc = emit(&e, b->priv->init[i], &v[i]);
  if (rc == CT_OK) v[b->n] = ct_const(e.g, 0.0);
  if (rc == CT_OK) rc = ct_graph_output(e.g, "y0", b->n + 1, v);
  ct_free(ctx, v);
  return emitter_close(&e, rc, out);
}

int ct_cfg_model_integral_ode(ct_context *ctx, const ct_cfg_built *b, const ct_cfg_expr *src,
                              struct ct_ode **out) {
  *out = NULL;
  if (!b->ode) return CT_ERROR(ctx, CT_ERR_ARG, "an integral state needs an ODE model");
  ct_expr *g = NULL;
  CT_CHECK(ctx, ct_expr_parse(ctx, src, &g));
  ct_fun *rhs = NULL, *y0 = NULL;
  int rc = build_rhs_with_integral(ctx, b, g, &rhs);
  if (rc == CT_OK) rc = build_y0_with_integral(ctx, b, &y0);
  if (rc == CT_OK) rc = ct_ode_new(ctx, rhs, y0, NULL, out);
  ct_fun_free(rhs);
  ct_fun_free(y0);
  ct_expr_free(g);
  return rc;
}

long ct_cfg_model_lookup(const ct_cfg_built *b, const char *name, int *is_observable) {
  const sym *s = sym_find(b->priv, name);
  *is_observable = 0;
  if (s && s->kind == SYM_Y) return (long)s->index;
  if (s && s->kind == SYM_NAMED && s->index >= b->model->n_assignments) {
    *is_observable = 1;
    return (long)(s->index - b->model->n_assignments);
  }
  return -1;
}

int ct_cfg_model_misfit(ct_context *ctx, const ct_cfg_built *b, const char *const *names,
                        size_t m, ct_fun **out) {
  *out = NULL;
  emitter e;
  int rc = emitter_open(ctx, b, 1, 1, 0, 1, 2 * m, &e);
  ct_var h = rc == CT_OK ? ct_const(e.g, 0.0) : (ct_var){NULL, -1};
  for (size_t j = 0; rc == CT_OK && j < m; j++) {
    int is_obs;
    ct_var o;
    if (ct_cfg_model_lookup(b, names[j], &is_obs) < 0)
      rc = CT_ERROR(ctx, CT_ERR_CONFIG, "'%s' is neither a state nor an observable", names[j]);
    else if (!emitter_lookup(&e, names[j], &o) || e.failed)
      rc = e.failed ? e.failed : CT_ERR_INTERNAL;
    else
      h = ct_add(h, ct_mulc(ct_mul(e.d[m + j], ct_sqr(ct_sub(o, e.d[j]))), 0.5));
  }
  if (rc == CT_OK) rc = ct_graph_output(e.g, "h", 1, &h);
  return emitter_close(&e, rc, out);
}

int ct_cfg_model_summary(ct_context *ctx, const ct_cfg_built *b, double t0,
                         ct_cfg_model_info *info) {
  memset(info, 0, sizeof *info);
  const ct_cfg_model *m = b->model;
  info->n_states = m->n_states;
  info->n_algebraic = m->n_algebraic;
  info->n_params = m->n_params;
  info->n_assignments = m->n_assignments;
  info->n_observables = m->n_observables;
  info->n_equations = b->n;
  info->n_nodes = ct_fun_n_nodes(b->rhs ? b->rhs : b->res);
  double *p = ct_calloc(ctx, b->np ? b->np : 1, sizeof *p);
  if (!p) return CT_ERR_NOMEM;
  for (size_t i = 0; i < b->np; i++) p[i] = m->params[i].value;
  int rc = CT_OK;
  if (b->ode) {
    info->jac_nnz = ct_ode_jac_nnz(b->ode);
    ct_ode_result *r = NULL;
    rc = ct_ode_solve(ctx, b->ode, p, NULL, &t0, 1, NULL, &r);
    if (r) info->linear_solver = ct_ode_linsol_name(r->linsol);
    ct_ode_result_free(ctx, r);
  } else {
    info->jac_nnz = ct_dae_jac_nnz(b->dae);
    ct_dae_result *r = NULL;
    ct_dae_options o = ct_dae_default_options();
    o.calc_ic = 0;
    rc = ct_dae_solve(ctx, b->dae, p, NULL, NULL, &t0, 1, &o, &r);
    if (r) info->linear_solver = ct_dae_linsol_name(r->linsol);
    ct_dae_result_free(ctx, r);
  }
  ct_free(ctx, p);
  return rc;
}
