/* The YAML tree -> a typed ct_cfg: every key checked against the schema of
 * docs/config.md, each mistake reported at its file:line:column with the
 * key path; and "--set key.path=value" overrides applied to the tree. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
/* Output times a linspace/logspace may ask for. */
#define CT_CFG_MAX_OUTPUT 1000000L
/* Output points of the default time grid (time.output not given). */
#define CT_CFG_DEFAULT_OUTPUT 101

/* The config with the context that owns its memory. */
typedef struct cfg_priv {
  ct_cfg pub;
  ct_context *ctx;
} cfg_priv;

/* ---- The schema's words ------------------------------------------------------ */

static const char *const top_keys[] = {"model", "solver", "time", "analyses"};
static const char *const model_keys[] = {"name",        "parameters",  "states",   "equations",
                                         "assignments", "observables", "algebraic"};
static const char *const param_keys[] = {"value", "lower", "upper", "scale"};
static const char *const algebraic_keys[] = {"residual", "initial"};
static const char *const solver_keys[] = {"method", "rtol", "atol", "linear_solver",
                                          "max_steps"};
static const char *const time_keys[] = {"start", "end", "output"};
static const char *const grid_keys[] = {"linspace", "logspace"};
static const char *const analysis_keys[] = {"type",  "name",   "parameters", "objective",
                                            "check", "method", "gradient",   "newton",
                                            "fallback"};
static const char *const objective_keys[] = {"integral", "final", "data"};
static const char *const data_keys[] = {"file", "observables", "sigma"};
static const char *const newton_keys[] = {"solver",        "ftol",    "max_iters",
                                           "linear_solver", "strategy", "petsc_options"};
static const char *const fallback_keys[] = {"t_max"};

static const char *const methods[] = {"bdf", "adams", "erk", "dirk"};
static const char *const linear_solvers[] = {"auto", "dense", "band", "klu", "gmres"};
static const char *const scales[] = {"lin", "log"};
static const char *const analysis_types[] = {"simulate", "forward_sensitivity",
                                             "adjoint_gradient", "gradient", "steady_state"};
static const char *const checks[] = {"none", "finite_difference"};
static const char *const gradient_methods[] = {"auto", "forward", "adjoint",
                                               "finite_difference"};
static const char *const steady_gradients[] = {"adjoint", "forward"};
static const char *const newton_solvers[] = {"auto", "dense", "klu", "umfpack", "petsc", "gmres"};
static const char *const newton_backends[] = {"kinsol", "snes"};
static const char *const newton_strategies[] = {"linesearch", "newton", "picard"};

/* The time: a name every expression may use, so no model name may take it
 * (expr.c reserves its constants, operators and function names). */
static const char time_name[] = "t";

/* Which keys each analysis type takes besides type and name. */
static int analysis_takes(ct_cfg_analysis_type type, const char *key) {
  if (!strcmp(key, "type") || !strcmp(key, "name")) return 1;
  if (type == CT_CFG_SIMULATE) return 0;
  if (!strcmp(key, "parameters") || !strcmp(key, "check")) return 1;
  if (!strcmp(key, "objective")) return type != CT_CFG_FORWARD_SENSITIVITY;
  if (!strcmp(key, "method")) return type == CT_CFG_GRADIENT;
  return type == CT_CFG_STEADY_STATE &&
         (!strcmp(key, "gradient") || !strcmp(key, "newton") || !strcmp(key, "fallback"));
}

/* ---- Small helpers -------------------------------------------------------------- */

/* The location of a scalar's text (for expression carets). */
static ct_cfg_loc text_loc(const ct_cfg_node *node) {
  ct_cfg_loc loc = node->loc;
  if (loc.line > 0 && node->text_col > 0) loc.col = node->text_col;
  return loc;
}

/* "PARENT.KEY" (or "KEY" at the top) into buf (cut short if too long). */
static void join(char *buf, size_t size, const char *parent, const char *key) {
  int w = snprintf(buf, size, "%s%s%s", parent, parent[0] ? "." : "", key);
  if (w < 0) buf[0] = '\0';
}

/* "PARENT.INDEX" into buf (cut short if too long). */
static void join_index(char *buf, size_t size, const char *parent, size_t i) {
  int w = snprintf(buf, size, "%s.%zu", parent, i);
  if (w < 0) buf[0] = '\0';
}

/* Whether a node is YAML's null (an empty or ~ or null plain value). */
static int is_null(const ct_cfg_node *node) {
  if (!node) return 1;
  if (node->kind != CT_CFG_SCALAR || node->quoted) return 0;
  const char *s = node->text;
  return !s[0] || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
         !strcmp(s, "NULL");
}

/* "'text'", "a map" or "a list": what a node is, for messages. */
static void describe(const ct_cfg_node *node, char *buf, size_t size) {
  if (node->kind == CT_CFG_MAP) snprintf(buf, size, "a map");
  else if (node->kind == CT_CFG_SEQ) snprintf(buf, size, "a list");
  else if (is_null(node)) snprintf(buf, size, "nothing");
  else snprintf(buf, size, "'%.80s%s'", node->text, strlen(node->text) > 80 ? "..." : "");
}

/* Records "PATH must be WHAT, got ..." at the node. */
static int type_error(ct_context *ctx, const ct_cfg_node *node, const char *path,
                      const char *what) {
  char got[128];
  describe(node, got, sizeof got);
  return ct_cfg_error(ctx, node->loc, "%s must be %s, got %s", path, what, got);
}

/* Whether word is one of known[0..n). */
static int is_one_of(const char *word, const char *const *known, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(word, known[i])) return 1;
  return 0;
}

/* Records "unknown key 'k' in PATH (did you mean 'x'?)" at the key. */
static int unknown_key(ct_context *ctx, const ct_cfg_node *map, size_t i, const char *path,
                       const char *const *known, size_t n_known) {
  const char *key = map->keys[i];
  const char *near = ct_cfg_closest(key, known, n_known);
  char where[300], hint[128] = "";
  if (path[0]) snprintf(where, sizeof where, "in %s", path);
  else snprintf(where, sizeof where, "at the top level");
  if (near) snprintf(hint, sizeof hint, " (did you mean '%s'?)", near);
  else if (n_known <= 8) {
    size_t used = (size_t)snprintf(hint, sizeof hint, " (known keys:");
    for (size_t k = 0; k < n_known && used < sizeof hint; k++)
      used += (size_t)snprintf(hint + used, sizeof hint - used, " %s", known[k]);
    if (used < sizeof hint) snprintf(hint + used, sizeof hint - used, ")");
  }
  return ct_cfg_error(ctx, map->key_locs[i], "unknown key '%s' %s%s", key, where, hint);
}

/* Checks that every key of map is one of known[0..n). */
static int check_keys(ct_context *ctx, const ct_cfg_node *map, const char *path,
                      const char *const *known, size_t n_known) {
  for (size_t i = 0; i < map->n; i++)
    if (!is_one_of(map->keys[i], known, n_known))
      return unknown_key(ctx, map, i, path, known, n_known);
  return CT_OK;
}

/* The value of a required key, or NULL with the error recorded. */
static const ct_cfg_node *require(ct_context *ctx, const ct_cfg_node *map, const char *key,
                                  const char *path) {
  const ct_cfg_node *v = ct_cfg_get(map, key);
  if (v) return v;
  if (path[0]) ct_cfg_error(ctx, map->loc, "missing required key '%s' in %s", key, path);
  else ct_cfg_error(ctx, map->loc, "missing required key '%s'", key);
  return NULL;
}

/* The key location of `key` in map (the map's own when absent). */
static ct_cfg_loc key_loc(const ct_cfg_node *map, const char *key) {
  for (size_t i = 0; i < map->n; i++)
    if (!strcmp(map->keys[i], key)) return map->key_locs[i];
  return map->loc;
}

/* Parses a whole scalar as a finite decimal number (1, -2, .5, 1e-3; no
 * inf, nan, hex or trailing text). Returns 1 on success. */
static int scan_number(const char *s, double *out) {
  if (!s[0]) return 0;
  for (const char *c = s; *c; c++)
    if (!isdigit((unsigned char)*c) && !strchr("+-.eE", *c)) return 0;
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end != '\0' || !isfinite(v)) return 0;
  *out = v;
  return 1;
}

/* A number at `node` (what: "a number", "a positive number"...); positive
 * asks for > 0. */
static int get_number(ct_context *ctx, const ct_cfg_node *node, const char *path,
                      int positive, double *out) {
  const char *what = positive ? "a positive number" : "a number";
  if (node->kind != CT_CFG_SCALAR || !scan_number(node->text, out))
    return type_error(ctx, node, path, what);
  if (positive && !(*out > 0)) return type_error(ctx, node, path, what);
  return CT_OK;
}

/* A positive whole number (max_steps, point counts) no larger than max. */
static int get_count(ct_context *ctx, const ct_cfg_node *node, const char *path, long max,
                     long *out) {
  char what[96];
  snprintf(what, sizeof what, "a whole number from 1 to %ld", max);
  if (node->kind != CT_CFG_SCALAR || !node->text[0]) return type_error(ctx, node, path, what);
  for (const char *c = node->text; *c; c++)
    if (!isdigit((unsigned char)*c)) return type_error(ctx, node, path, what);
  errno = 0;
  long v = strtol(node->text, NULL, 10);
  if (errno == ERANGE || v < 1 || v > max) return type_error(ctx, node, path, what);
  *out = v;
  return CT_OK;
}

/* One of choices[0..n) at `node`, copied into *out. */
static int get_choice(ct_context *ctx, const ct_cfg_node *node, const char *path,
                      const char *const *choices, size_t n, char **out) {
  char what[160];
  size_t used = (size_t)snprintf(what, sizeof what, "one of");
  for (size_t i = 0; i < n && used < sizeof what; i++)
    used += (size_t)snprintf(what + used, sizeof what - used, "%s %s", i ? "," : "", choices[i]);
  if (node->kind != CT_CFG_SCALAR || !is_one_of(node->text, choices, n)) {
    const char *near = node->kind == CT_CFG_SCALAR ? ct_cfg_closest(node->text, choices, n) : NULL;
    char got[128];
    describe(node, got, sizeof got);
    if (near)
      return ct_cfg_error(ctx, node->loc, "%s must be %s, got %s (did you mean '%s'?)", path,
                          what, got, near);
    return ct_cfg_error(ctx, node->loc, "%s must be %s, got %s", path, what, got);
  }
  *out = ct_strdup(ctx, node->text);
  return *out ? CT_OK : CT_ERR_NOMEM;
}

/* The index of `word` in choices (which holds it). */
static int choice_index(const char *word, const char *const *choices, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(word, choices[i])) return (int)i;
  return 0;
}

/* A non-empty plain string at node (file names, model names). */
static int get_string(ct_context *ctx, const ct_cfg_node *node, const char *path, char **out) {
  if (node->kind != CT_CFG_SCALAR || is_null(node) || !node->text[0])
    return type_error(ctx, node, path, "a string");
  *out = ct_strdup(ctx, node->text);
  return *out ? CT_OK : CT_ERR_NOMEM;
}

/* An expression (a number or a formula) at node. */
static int get_expr(ct_context *ctx, const ct_cfg_node *node, const char *path,
                    ct_cfg_expr *out) {
  int blank = node->kind == CT_CFG_SCALAR && !node->text[strspn(node->text, " \t\r\n")];
  if (node->kind != CT_CFG_SCALAR || is_null(node) || blank) {
    if (node->kind == CT_CFG_SCALAR)
      return ct_cfg_error(ctx, node->loc, "%s has no value (a number or a formula)", path);
    return type_error(ctx, node, path, "an expression (a number or a formula)");
  }
  char *text = ct_strdup(ctx, node->text);
  if (!text) return CT_ERR_NOMEM;
  ct_free(ctx, out->text);
  out->text = text;
  out->loc = text_loc(node);
  return CT_OK;
}

/* An expression written in code, e.g. the default "0" of an initial guess. */
static int const_expr(ct_context *ctx, const char *text, ct_cfg_loc loc, ct_cfg_expr *out) {
  out->text = ct_strdup(ctx, text);
  out->loc = loc;
  return out->text ? CT_OK : CT_ERR_NOMEM;
}

/* Whether a map node is given (not absent or null); a non-map is an error. */
static int optional_map(ct_context *ctx, const ct_cfg_node *node, const char *path,
                        const char *what, int *given) {
  *given = 0;
  if (is_null(node)) return CT_OK;
  if (node->kind != CT_CFG_MAP) return type_error(ctx, node, path, what);
  *given = 1;
  return CT_OK;
}

/* ---- Names ---------------------------------------------------------------------------- */

/* Whether name is a reserved word of expressions: t, pi, e, and, or, not,
 * or a function name (exp, if, piecewise...). */
static int is_reserved(const char *name) {
  if (!strcmp(name, time_name) || ct_expr_is_reserved(name)) return 1;
  for (size_t i = 0; ct_expr_functions[i]; i++)
    if (!strcmp(name, ct_expr_functions[i])) return 1;
  return 0;
}

/* What a model name is (compared by address). */
static const char what_param[] = "a parameter", what_state[] = "a state",
                  what_algebraic[] = "an algebraic variable",
                  what_assignment[] = "an assignment", what_observable[] = "an observable";

/* Every model name so far, in declaration order, with what it is, where it
 * was declared and its position in its section; hashed for large models. */
typedef struct model_names {
  const char **names; /* borrowed from the model */
  const char **what;
  ct_cfg_loc *locs;
  size_t *pos;
  size_t n, cap;
  ct_cfg_index index;
} model_names;

/* Records a new name (checked by check_name first). */
static int names_add(ct_context *ctx, model_names *r, const char *name, const char *what,
                     ct_cfg_loc loc, size_t pos) {
  if (r->n == r->cap) {
    size_t cap = r->cap ? 2 * r->cap : 32;
    const char **names = ct_realloc_array(ctx, r->names, cap, sizeof *names);
    if (names) r->names = names;
    const char **whats = names ? ct_realloc_array(ctx, r->what, cap, sizeof *whats) : NULL;
    if (whats) r->what = whats;
    ct_cfg_loc *locs = whats ? ct_realloc_array(ctx, r->locs, cap, sizeof *locs) : NULL;
    if (locs) r->locs = locs;
    size_t *poss = locs ? ct_realloc_array(ctx, r->pos, cap, sizeof *poss) : NULL;
    if (!poss) return CT_ERR_NOMEM;
    r->pos = poss;
    r->cap = cap;
  }
  r->names[r->n] = name;
  r->what[r->n] = what;
  r->locs[r->n] = loc;
  r->pos[r->n] = pos;
  CT_CHECK(ctx, ct_cfg_index_add(ctx, &r->index, r->names, r->n));
  r->n++;
  return CT_OK;
}

/* Frees the registry's arrays (not the names). */
static void names_free(ct_context *ctx, model_names *r) {
  ct_free(ctx, r->names);
  ct_free(ctx, r->what);
  ct_free(ctx, r->locs);
  ct_free(ctx, r->pos);
  ct_cfg_index_free(ctx, &r->index);
}

/* What name already is (a what_* word) and its registry entry, or NULL. */
static const char *defined_as(const model_names *r, const char *name, size_t *entry) {
  long i = ct_cfg_index_find(&r->index, r->names, name);
  if (i < 0) return NULL;
  *entry = (size_t)i;
  return r->what[i];
}

/* Checks a new model name: an identifier, not reserved, not defined yet. */
static int check_name(ct_context *ctx, const model_names *r, const char *name, ct_cfg_loc loc,
                      const char *path) {
  int ok = isalpha((unsigned char)name[0]) || name[0] == '_';
  for (const char *c = name; ok && *c; c++) ok = isalnum((unsigned char)*c) || *c == '_';
  if (!ok)
    return ct_cfg_error(ctx, loc,
                        "'%s' in %s is not a valid name (letters, digits and _, not starting "
                        "with a digit)",
                        name, path);
  if (is_reserved(name))
    return ct_cfg_error(ctx, loc, "'%s' in %s is a reserved word of expressions; pick another name",
                        name, path);
  size_t first;
  const char *what = defined_as(r, name, &first);
  if (what)
    return ct_cfg_error(ctx, loc, "'%s' in %s is already defined as %s (line %d)", name, path,
                        what, r->locs[first].line);
  return CT_OK;
}

/* ---- model ------------------------------------------------------------------------------ */

/* One parameter: a number, or {value, lower, upper, scale}. */
static int parse_param(ct_context *ctx, const ct_cfg_node *node, const char *path,
                       ct_cfg_param *p) {
  p->lower = -INFINITY;
  p->upper = INFINITY;
  if (node->kind != CT_CFG_MAP)
    return node->kind == CT_CFG_SCALAR
               ? get_number(ctx, node, path, 0, &p->value)
               : type_error(ctx, node, path, "a number or a map with value, lower, upper, scale");
  char sub[300];
  CT_CHECK(ctx, check_keys(ctx, node, path, param_keys, N_OF(param_keys)));
  join(sub, sizeof sub, path, "value");
  const ct_cfg_node *v = require(ctx, node, "value", path);
  if (!v) return CT_ERR_CONFIG;
  CT_CHECK(ctx, get_number(ctx, v, sub, 0, &p->value));
  if ((v = ct_cfg_get(node, "lower"))) {
    join(sub, sizeof sub, path, "lower");
    CT_CHECK(ctx, get_number(ctx, v, sub, 0, &p->lower));
  }
  if ((v = ct_cfg_get(node, "upper"))) {
    join(sub, sizeof sub, path, "upper");
    CT_CHECK(ctx, get_number(ctx, v, sub, 0, &p->upper));
  }
  if ((v = ct_cfg_get(node, "scale"))) {
    char *scale = NULL;
    join(sub, sizeof sub, path, "scale");
    CT_CHECK(ctx, get_choice(ctx, v, sub, scales, N_OF(scales), &scale));
    p->log_scale = !strcmp(scale, "log");
    ct_free(ctx, scale);
  }
  const ct_cfg_node *at = ct_cfg_get(node, "value");
  if (!(p->lower <= p->upper))
    return ct_cfg_error(ctx, ct_cfg_get(node, "upper")->loc,
                        "%s.upper (%g) must not be below %s.lower (%g)", path, p->upper, path,
                        p->lower);
  if (p->value < p->lower || p->value > p->upper)
    return ct_cfg_error(ctx, at->loc, "%s.value (%g) must lie within [lower, upper] = [%g, %g]",
                        path, p->value, p->lower, p->upper);
  if (p->log_scale && !(p->value > 0 && (p->lower > 0 || isinf(p->lower))))
    return ct_cfg_error(ctx, at->loc, "%s has scale: log, so its value and lower bound must be "
                        "positive", path);
  return CT_OK;
}

/* model.parameters: name -> number | {value, lower, upper, scale}. */
static int parse_params(ct_context *ctx, const ct_cfg_node *node, ct_cfg_model *m,
                        model_names *r) {
  int given;
  CT_CHECK(ctx, optional_map(ctx, node, "model.parameters", "a map of name: value", &given));
  if (!given) return CT_OK;
  m->params = ct_calloc(ctx, node->n ? node->n : 1, sizeof *m->params);
  if (!m->params) return CT_ERR_NOMEM;
  for (size_t i = 0; i < node->n; i++) {
    char path[300];
    join(path, sizeof path, "model.parameters", node->keys[i]);
    CT_CHECK(ctx, check_name(ctx, r, node->keys[i], node->key_locs[i], "model.parameters"));
    ct_cfg_param *p = &m->params[m->n_params];
    if (!(p->name = ct_strdup(ctx, node->keys[i]))) return CT_ERR_NOMEM;
    p->loc = node->key_locs[i];
    CT_CHECK(ctx, names_add(ctx, r, p->name, what_param, p->loc, m->n_params++));
    CT_CHECK(ctx, parse_param(ctx, node->items[i], path, p));
  }
  return CT_OK;
}

/* The value of an algebraic variable: a residual, or {residual, initial}. */
static int parse_algebraic_value(ct_context *ctx, const ct_cfg_node *node, const char *path,
                                 ct_cfg_loc key, ct_cfg_symbol *s) {
  if (node->kind != CT_CFG_MAP) {
    CT_CHECK(ctx, get_expr(ctx, node, path, &s->rhs));
    return const_expr(ctx, "0", key, &s->expr);
  }
  char sub[300];
  CT_CHECK(ctx, check_keys(ctx, node, path, algebraic_keys, N_OF(algebraic_keys)));
  const ct_cfg_node *v = require(ctx, node, "residual", path);
  if (!v) return CT_ERR_CONFIG;
  join(sub, sizeof sub, path, "residual");
  CT_CHECK(ctx, get_expr(ctx, v, sub, &s->rhs));
  if (!(v = ct_cfg_get(node, "initial"))) return const_expr(ctx, "0", key, &s->expr);
  join(sub, sizeof sub, path, "initial");
  return get_expr(ctx, v, sub, &s->expr);
}

/* A section of named expressions (states, assignments, observables,
 * algebraic) into *out / *n. */
static int parse_symbols(ct_context *ctx, const ct_cfg_node *node, const char *path,
                         model_names *r, const char *what, ct_cfg_symbol **out, size_t *n) {
  int given;
  CT_CHECK(ctx, optional_map(ctx, node, path, "a map of name: expression", &given));
  if (!given) return CT_OK;
  *out = ct_calloc(ctx, node->n ? node->n : 1, sizeof **out);
  if (!*out) return CT_ERR_NOMEM;
  for (size_t i = 0; i < node->n; i++) {
    char sub[300];
    join(sub, sizeof sub, path, node->keys[i]);
    CT_CHECK(ctx, check_name(ctx, r, node->keys[i], node->key_locs[i], path));
    ct_cfg_symbol *s = &(*out)[*n];
    if (!(s->name = ct_strdup(ctx, node->keys[i]))) return CT_ERR_NOMEM;
    s->loc = node->key_locs[i];
    CT_CHECK(ctx, names_add(ctx, r, s->name, what, s->loc, (*n)++));
    if (what == what_algebraic)
      CT_CHECK(ctx, parse_algebraic_value(ctx, node->items[i], sub, s->loc, s));
    else
      CT_CHECK(ctx, get_expr(ctx, node->items[i], sub, &s->expr));
  }
  return CT_OK;
}

/* The names of a symbol list, for "did you mean" (borrowed strings). */
static const char **symbol_names(ct_context *ctx, const ct_cfg_symbol *s, size_t n) {
  const char **names = ct_calloc(ctx, n ? n : 1, sizeof *names);
  if (names)
    for (size_t i = 0; i < n; i++) names[i] = s[i].name;
  return names;
}

/* The state called name, or NULL. */
static ct_cfg_symbol *find_state(ct_cfg_model *m, const model_names *r, const char *name) {
  size_t entry;
  if (defined_as(r, name, &entry) != what_state) return NULL;
  return &m->states[r->pos[entry]];
}

/* Records the error for an equation whose key is not a state. */
static int equation_not_state(ct_context *ctx, const ct_cfg_model *m, const model_names *r,
                              const char *key, ct_cfg_loc loc) {
  size_t first;
  const char *what = defined_as(r, key, &first);
  if (what == what_algebraic)
    return ct_cfg_error(ctx, loc, "'%s' is an algebraic variable: its residual goes in "
                        "model.algebraic, not model.equations", key);
  if (what)
    return ct_cfg_error(ctx, loc, "model.equations has an equation for '%s', which is %s, "
                        "not a state", key, what);
  const char **names = symbol_names(ctx, m->states, m->n_states);
  if (!names) return CT_ERR_NOMEM;
  const char *near = ct_cfg_closest(key, names, m->n_states);
  int rc = near ? ct_cfg_error(ctx, loc, "model.equations has an equation for unknown state "
                               "'%s' (did you mean '%s'?)", key, near)
                : ct_cfg_error(ctx, loc, "model.equations has an equation for unknown state "
                               "'%s'", key);
  ct_free(ctx, names);
  return rc;
}

/* model.equations: one right-hand side per state, none for anything else. */
static int parse_equations(ct_context *ctx, const ct_cfg_node *node, ct_cfg_model *m,
                           const model_names *r) {
  if (node->kind != CT_CFG_MAP)
    return type_error(ctx, node, "model.equations", "a map of state: expression");
  for (size_t i = 0; i < node->n; i++) {
    ct_cfg_symbol *s = find_state(m, r, node->keys[i]);
    if (!s) return equation_not_state(ctx, m, r, node->keys[i], node->key_locs[i]);
    char path[300];
    join(path, sizeof path, "model.equations", node->keys[i]);
    CT_CHECK(ctx, get_expr(ctx, node->items[i], path, &s->rhs));
  }
  for (size_t i = 0; i < m->n_states; i++)
    if (!m->states[i].rhs.text)
      return ct_cfg_error(ctx, node->loc, "model.equations has no equation for state '%s' "
                          "(declared at line %d)", m->states[i].name, m->states[i].loc.line);
  return CT_OK;
}

/* The model's name: model.name, else the config file's name without its
 * folder and extension. Letters, digits, _ - . (it names a folder). */
static int parse_model_name(ct_context *ctx, const ct_cfg_node *node, const char *file,
                            ct_cfg_model *m) {
  if (node) {
    CT_CHECK(ctx, get_string(ctx, node, "model.name", &m->name));
    int ok = m->name[0] != '.';
    for (const char *c = m->name; ok && *c; c++)
      ok = isalnum((unsigned char)*c) || strchr("_-.", *c);
    if (!ok)
      return ct_cfg_error(ctx, node->loc, "model.name '%s' names the results folder: use "
                          "letters, digits, _ - and . (not first)", m->name);
    return CT_OK;
  }
  const char *base = strrchr(file, '/');
  base = base ? base + 1 : file;
  size_t len = strcspn(base, ".");
  if (len == 0) len = strlen(base);
  if (!(m->name = ct_alloc(ctx, len + 2))) return CT_ERR_NOMEM;
  for (size_t i = 0; i < len; i++)
    m->name[i] = isalnum((unsigned char)base[i]) || base[i] == '-' ? base[i] : '_';
  if (len == 0) m->name[len++] = 'm';
  m->name[len] = '\0';
  return CT_OK;
}

/* The model's sections after its name, with the names registry. */
static int parse_model_sections(ct_context *ctx, const ct_cfg_node *node, ct_cfg_model *m,
                                model_names *r) {
  CT_CHECK(ctx, parse_params(ctx, ct_cfg_get(node, "parameters"), m, r));
  const ct_cfg_node *states = require(ctx, node, "states", "model");
  if (!states) return CT_ERR_CONFIG;
  CT_CHECK(ctx, parse_symbols(ctx, states, "model.states", r, what_state, &m->states,
                              &m->n_states));
  if (m->n_states == 0)
    return ct_cfg_error(ctx, states->loc, "model.states is empty: a model needs at least one "
                        "state");
  CT_CHECK(ctx, parse_symbols(ctx, ct_cfg_get(node, "algebraic"), "model.algebraic", r,
                              what_algebraic, &m->algebraic, &m->n_algebraic));
  CT_CHECK(ctx, parse_symbols(ctx, ct_cfg_get(node, "assignments"), "model.assignments", r,
                              what_assignment, &m->assignments, &m->n_assignments));
  CT_CHECK(ctx, parse_symbols(ctx, ct_cfg_get(node, "observables"), "model.observables", r,
                              what_observable, &m->observables, &m->n_observables));
  const ct_cfg_node *eqs = require(ctx, node, "equations", "model");
  if (!eqs) return CT_ERR_CONFIG;
  return parse_equations(ctx, eqs, m, r);
}

/* The model section. */
static int parse_model(ct_context *ctx, const ct_cfg_node *node, const char *file,
                       ct_cfg_model *m) {
  if (node->kind != CT_CFG_MAP) return type_error(ctx, node, "model", "a map");
  CT_CHECK(ctx, check_keys(ctx, node, "model", model_keys, N_OF(model_keys)));
  CT_CHECK(ctx, parse_model_name(ctx, ct_cfg_get(node, "name"), file, m));
  model_names r = {0};
  int rc = parse_model_sections(ctx, node, m, &r);
  names_free(ctx, &r);
  return rc;
}

/* ---- solver ------------------------------------------------------------------------------ */

/* solver.atol given per state: {state: number}; unlisted states keep the
 * scalar atol. */
static int parse_atol_map(ct_context *ctx, const ct_cfg_node *node, const ct_cfg_model *m,
                          ct_cfg_solver *s) {
  s->atol_v = ct_calloc(ctx, m->n_states, sizeof *s->atol_v);
  if (!s->atol_v) return CT_ERR_NOMEM;
  for (size_t i = 0; i < m->n_states; i++) s->atol_v[i] = s->atol;
  for (size_t i = 0; i < node->n; i++) {
    size_t k = 0;
    while (k < m->n_states && strcmp(m->states[k].name, node->keys[i])) k++;
    if (k == m->n_states) {
      const char **names = symbol_names(ctx, m->states, m->n_states);
      if (!names) return CT_ERR_NOMEM;
      const char *near = ct_cfg_closest(node->keys[i], names, m->n_states);
      char hint[128] = "";
      if (near) snprintf(hint, sizeof hint, " (did you mean '%s'?)", near);
      ct_free(ctx, names);
      return ct_cfg_error(ctx, node->key_locs[i], "solver.atol names '%s', which is not a "
                          "state%s", node->keys[i], hint);
    }
    char path[300];
    join(path, sizeof path, "solver.atol", node->keys[i]);
    CT_CHECK(ctx, get_number(ctx, node->items[i], path, 1, &s->atol_v[k]));
  }
  return CT_OK;
}

/* The solver section (optional; every key has a default). */
static int parse_solver(ct_context *ctx, const ct_cfg_node *node, const ct_cfg_model *m,
                        ct_cfg_solver *s) {
  s->rtol = 1e-6;
  s->atol = 1e-8;
  const ct_cfg_node *v;
  int given;
  CT_CHECK(ctx, optional_map(ctx, node, "solver", "a map", &given));
  if (given) {
    s->loc = node->loc;
    CT_CHECK(ctx, check_keys(ctx, node, "solver", solver_keys, N_OF(solver_keys)));
  }
  if (given && (v = ct_cfg_get(node, "method")))
    CT_CHECK(ctx, get_choice(ctx, v, "solver.method", methods, N_OF(methods), &s->method));
  else if (!(s->method = ct_strdup(ctx, "bdf"))) return CT_ERR_NOMEM;
  if (given && (v = ct_cfg_get(node, "linear_solver")))
    CT_CHECK(ctx, get_choice(ctx, v, "solver.linear_solver", linear_solvers,
                             N_OF(linear_solvers), &s->linear_solver));
  else if (!(s->linear_solver = ct_strdup(ctx, "auto"))) return CT_ERR_NOMEM;
  if (!given) return CT_OK;
  if ((v = ct_cfg_get(node, "rtol"))) CT_CHECK(ctx, get_number(ctx, v, "solver.rtol", 1, &s->rtol));
  if ((v = ct_cfg_get(node, "max_steps")))
    CT_CHECK(ctx, get_count(ctx, v, "solver.max_steps", LONG_MAX, &s->max_steps));
  if (!(v = ct_cfg_get(node, "atol"))) return CT_OK;
  if (v->kind == CT_CFG_MAP) return parse_atol_map(ctx, v, m, s);
  if (v->kind == CT_CFG_SEQ)
    return type_error(ctx, v, "solver.atol", "a positive number or a map of state: number");
  return get_number(ctx, v, "solver.atol", 1, &s->atol);
}

/* ---- time ---------------------------------------------------------------------------------- */

/* Appends v to the time grid being built (capacity *cap). */
static int push_time(ct_context *ctx, ct_cfg_time *t, size_t *cap, double v) {
  if (t->n_output == *cap) {
    size_t grown = *cap ? 2 * *cap : 16;
    double *o = ct_realloc_array(ctx, t->output, grown, sizeof *o);
    if (!o) return CT_ERR_NOMEM;
    t->output = o;
    *cap = grown;
  }
  t->output[t->n_output++] = v;
  return CT_OK;
}

/* Checks one output time against the span and the previous one (nodes
 * locate the error), snapping values within rounding of an end to it. */
static int check_time(ct_context *ctx, const ct_cfg_time *t, const ct_cfg_node *at,
                      const char *path, double *v) {
  double tol = 1e-12 * (fabs(t->start) + fabs(t->end));
  if (fabs(*v - t->start) <= tol) *v = t->start;
  if (fabs(*v - t->end) <= tol) *v = t->end;
  if (*v < t->start || *v > t->end)
    return ct_cfg_error(ctx, at->loc, "%s: output time %g lies outside the time span [%g, %g]",
                        path, *v, t->start, t->end);
  if (t->n_output && !(*v > t->output[t->n_output - 1]))
    return ct_cfg_error(ctx, at->loc, "%s: output times must increase, but %g follows %g", path,
                        *v, t->output[t->n_output - 1]);
  return CT_OK;
}

/* time.output as {linspace: [a, b, n]} or {logspace: [a, b, n]} (10^a..10^b). */
static int parse_grid(ct_context *ctx, const ct_cfg_node *node, ct_cfg_time *t, size_t *cap) {
  CT_CHECK(ctx, check_keys(ctx, node, "time.output", grid_keys, N_OF(grid_keys)));
  if (node->n != 1)
    return ct_cfg_error(ctx, node->loc, "time.output takes one of linspace or logspace, got %zu "
                        "keys", node->n);
  int log_grid = !strcmp(node->keys[0], "logspace");
  char path[64];
  snprintf(path, sizeof path, "time.output.%s", node->keys[0]);
  const ct_cfg_node *abn = node->items[0];
  if (abn->kind != CT_CFG_SEQ || abn->n != 3)
    return type_error(ctx, abn, path, "a list [first, last, count]");
  double a, b;
  long n;
  char sub[96];
  join_index(sub, sizeof sub, path, 0);
  CT_CHECK(ctx, get_number(ctx, abn->items[0], sub, 0, &a));
  join_index(sub, sizeof sub, path, 1);
  CT_CHECK(ctx, get_number(ctx, abn->items[1], sub, 0, &b));
  join_index(sub, sizeof sub, path, 2);
  CT_CHECK(ctx, get_count(ctx, abn->items[2], sub, CT_CFG_MAX_OUTPUT, &n));
  if (n < 2 || !(b > a))
    return ct_cfg_error(ctx, abn->loc, "%s needs first < last and a count of at least 2", path);
  for (long i = 0; i < n; i++) {
    double x = i == n - 1 ? b : a + (b - a) * (double)i / (double)(n - 1);
    double v = log_grid ? pow(10.0, x) : x;
    CT_CHECK(ctx, check_time(ctx, t, abn, path, &v));
    CT_CHECK(ctx, push_time(ctx, t, cap, v));
  }
  return CT_OK;
}

/* time.output as a list of numbers. */
static int parse_output_list(ct_context *ctx, const ct_cfg_node *node, ct_cfg_time *t,
                             size_t *cap) {
  if (node->n == 0) return ct_cfg_error(ctx, node->loc, "time.output is an empty list");
  for (size_t i = 0; i < node->n; i++) {
    char path[64];
    double v;
    join_index(path, sizeof path, "time.output", i);
    CT_CHECK(ctx, get_number(ctx, node->items[i], path, 0, &v));
    CT_CHECK(ctx, check_time(ctx, t, node->items[i], path, &v));
    CT_CHECK(ctx, push_time(ctx, t, cap, v));
  }
  return CT_OK;
}

/* Adds start and end to the grid when missing. */
static int close_grid(ct_context *ctx, ct_cfg_time *t, size_t *cap) {
  if (t->output[0] > t->start) {
    CT_CHECK(ctx, push_time(ctx, t, cap, t->start));
    memmove(t->output + 1, t->output, (t->n_output - 1) * sizeof *t->output);
    t->output[0] = t->start;
  }
  if (t->output[t->n_output - 1] < t->end) CT_CHECK(ctx, push_time(ctx, t, cap, t->end));
  return CT_OK;
}

/* The time section: start (default 0), end, output (default 101 points). */
static int parse_time(ct_context *ctx, const ct_cfg_node *node, ct_cfg_time *t) {
  if (node->kind != CT_CFG_MAP)
    return type_error(ctx, node, "time", "a map with start, end, output");
  t->loc = node->loc;
  CT_CHECK(ctx, check_keys(ctx, node, "time", time_keys, N_OF(time_keys)));
  const ct_cfg_node *v = ct_cfg_get(node, "start");
  if (v) CT_CHECK(ctx, get_number(ctx, v, "time.start", 0, &t->start));
  if (!(v = require(ctx, node, "end", "time"))) return CT_ERR_CONFIG;
  CT_CHECK(ctx, get_number(ctx, v, "time.end", 0, &t->end));
  if (!(t->end > t->start))
    return ct_cfg_error(ctx, v->loc, "time.end (%g) must be greater than time.start (%g)", t->end,
                        t->start);
  size_t cap = 0;
  v = ct_cfg_get(node, "output");
  if (!v || is_null(v)) {
    for (int i = 0; i < CT_CFG_DEFAULT_OUTPUT; i++) {
      double x = i == CT_CFG_DEFAULT_OUTPUT - 1
                     ? t->end
                     : t->start + (t->end - t->start) * i / (CT_CFG_DEFAULT_OUTPUT - 1);
      CT_CHECK(ctx, push_time(ctx, t, &cap, x));
    }
    return CT_OK;
  }
  if (v->kind == CT_CFG_SEQ) CT_CHECK(ctx, parse_output_list(ctx, v, t, &cap));
  else if (v->kind == CT_CFG_MAP) CT_CHECK(ctx, parse_grid(ctx, v, t, &cap));
  else return type_error(ctx, v, "time.output", "a list of times or {linspace: [a, b, n]}");
  return close_grid(ctx, t, &cap);
}

/* ---- analyses ------------------------------------------------------------------------------ */

/* A list of names, each one of known[0..n_known) and none twice. */
static int parse_name_list(ct_context *ctx, const ct_cfg_node *node, const char *path,
                           const char *const *known, size_t n_known, const char *kind,
                           char ***out, size_t *n_out) {
  if (node->kind != CT_CFG_SEQ) return type_error(ctx, node, path, "a list of names");
  if (node->n == 0) return ct_cfg_error(ctx, node->loc, "%s is an empty list", path);
  *out = ct_calloc(ctx, node->n, sizeof **out);
  if (!*out) return CT_ERR_NOMEM;
  for (size_t i = 0; i < node->n; i++) {
    const ct_cfg_node *item = node->items[i];
    char sub[300];
    join_index(sub, sizeof sub, path, i);
    if (item->kind != CT_CFG_SCALAR || is_null(item)) return type_error(ctx, item, sub, "a name");
    if (!is_one_of(item->text, known, n_known)) {
      const char *near = ct_cfg_closest(item->text, known, n_known);
      char hint[128] = "";
      if (near) snprintf(hint, sizeof hint, " (did you mean '%s'?)", near);
      return ct_cfg_error(ctx, item->loc, "%s names unknown %s '%s'%s", path, kind, item->text,
                          hint);
    }
    for (size_t k = 0; k < i; k++)
      if (!strcmp((*out)[k], item->text))
        return ct_cfg_error(ctx, item->loc, "%s names '%s' twice", path, item->text);
    if (!((*out)[i] = ct_strdup(ctx, item->text))) return CT_ERR_NOMEM;
    *n_out = i + 1;
  }
  return CT_OK;
}

/* {data: {file, observables, sigma}}; the file is resolved against dir. */
static int parse_data(ct_context *ctx, const ct_cfg_node *node, const char *path,
                      const ct_cfg_model *m, const char *dir, ct_cfg_objective *o) {
  if (node->kind != CT_CFG_MAP)
    return type_error(ctx, node, path, "a map with file, observables, sigma");
  CT_CHECK(ctx, check_keys(ctx, node, path, data_keys, N_OF(data_keys)));
  char sub[300];
  o->sigma = 1.0;
  const ct_cfg_node *v = require(ctx, node, "file", path);
  if (!v) return CT_ERR_CONFIG;
  join(sub, sizeof sub, path, "file");
  char *file = NULL;
  CT_CHECK(ctx, get_string(ctx, v, sub, &file));
  o->data_loc = v->loc;
  int relative = file[0] != '/' && strcmp(dir, ".") != 0;
  size_t len = strlen(dir) + strlen(file) + 2;
  o->data_file = ct_alloc(ctx, len);
  if (o->data_file)
    snprintf(o->data_file, len, "%s%s%s", relative ? dir : "", relative ? "/" : "", file);
  ct_free(ctx, file);
  if (!o->data_file) return CT_ERR_NOMEM;
  if (m->n_observables == 0)
    return ct_cfg_error(ctx, node->loc, "%s compares observables with data, but the model has no "
                        "model.observables", path);
  if ((v = ct_cfg_get(node, "observables"))) {
    const char **names = symbol_names(ctx, m->observables, m->n_observables);
    if (!names) return CT_ERR_NOMEM;
    join(sub, sizeof sub, path, "observables");
    int rc = parse_name_list(ctx, v, sub, names, m->n_observables, "observable",
                             &o->observables, &o->n_observables);
    ct_free(ctx, names);
    CT_CHECK(ctx, rc);
  }
  if ((v = ct_cfg_get(node, "sigma"))) {
    join(sub, sizeof sub, path, "sigma");
    CT_CHECK(ctx, get_number(ctx, v, sub, 1, &o->sigma));
  }
  return CT_OK;
}

/* objective: exactly one of {integral: expr}, {final: expr}, {data: ...}. */
static int parse_objective(ct_context *ctx, const ct_cfg_node *node, const char *path,
                           const ct_cfg_model *m, const char *dir, ct_cfg_objective *o) {
  if (node->kind != CT_CFG_MAP)
    return type_error(ctx, node, path, "a map with one of integral, final, data");
  o->loc = node->loc;
  CT_CHECK(ctx, check_keys(ctx, node, path, objective_keys, N_OF(objective_keys)));
  if (node->n == 0)
    return ct_cfg_error(ctx, node->loc, "%s needs one of integral, final, data", path);
  if (node->n > 1)
    return ct_cfg_error(ctx, node->key_locs[1], "%s takes one of integral, final, data; got both "
                        "'%s' and '%s'", path, node->keys[0], node->keys[1]);
  char sub[300];
  join(sub, sizeof sub, path, node->keys[0]);
  if (!strcmp(node->keys[0], "data")) {
    o->kind = CT_CFG_OBJ_DATA;
    return parse_data(ctx, node->items[0], sub, m, dir, o);
  }
  o->kind = !strcmp(node->keys[0], "integral") ? CT_CFG_OBJ_INTEGRAL : CT_CFG_OBJ_FINAL;
  return get_expr(ctx, node->items[0], sub, &o->expr);
}

/* Checks an analysis name: it names output files. */
static int check_analysis_name(ct_context *ctx, const ct_cfg_node *node, const char *name) {
  int ok = name[0] != '.';
  for (const char *c = name; ok && *c; c++) ok = isalnum((unsigned char)*c) || strchr("_-.", *c);
  if (ok) return CT_OK;
  return ct_cfg_error(ctx, node->loc, "analysis name '%s' names output files: use letters, "
                      "digits, _ - and . (not first)", name);
}

/* The parameters an analysis covers: its list, or every parameter. */
static int parse_analysis_params(ct_context *ctx, const ct_cfg_node *node, const char *path,
                                 const ct_cfg_model *m, ct_cfg_analysis *a) {
  if (m->n_params == 0)
    return ct_cfg_error(ctx, node->loc, "%s (%s) differentiates with respect to parameters, but "
                        "model.parameters is empty", path, analysis_types[a->type]);
  const char **names = ct_calloc(ctx, m->n_params, sizeof *names);
  if (!names) return CT_ERR_NOMEM;
  for (size_t i = 0; i < m->n_params; i++) names[i] = m->params[i].name;
  const ct_cfg_node *v = ct_cfg_get(node, "parameters");
  char sub[300];
  join(sub, sizeof sub, path, "parameters");
  int rc = CT_OK;
  if (v) {
    rc = parse_name_list(ctx, v, sub, names, m->n_params, "parameter", &a->parameters,
                         &a->n_parameters);
  } else if ((a->parameters = ct_calloc(ctx, m->n_params, sizeof *a->parameters))) {
    for (size_t i = 0; i < m->n_params && rc == CT_OK; i++) {
      if (!(a->parameters[i] = ct_strdup(ctx, names[i]))) rc = CT_ERR_NOMEM;
      else a->n_parameters = i + 1;
    }
  } else {
    rc = CT_ERR_NOMEM;
  }
  ct_free(ctx, names);
  return rc;
}

/* steady_state's newton: {solver, ftol, max_iters, linear_solver, strategy,
 * petsc_options}. */
static int parse_newton(ct_context *ctx, const ct_cfg_node *node, const char *path,
                        ct_cfg_steady *st) {
  int given;
  CT_CHECK(ctx, optional_map(ctx, node, path, "a map with solver, ftol, max_iters, "
                             "linear_solver, strategy, petsc_options", &given));
  if (!given) return CT_OK;
  CT_CHECK(ctx, check_keys(ctx, node, path, newton_keys, N_OF(newton_keys)));
  char sub[300];
  const ct_cfg_node *v;
  if ((v = ct_cfg_get(node, "solver"))) {
    join(sub, sizeof sub, path, "solver");
    CT_CHECK(ctx, get_choice(ctx, v, sub, newton_backends, N_OF(newton_backends),
                             &st->solver));
  }
  if ((v = ct_cfg_get(node, "petsc_options"))) {
    join(sub, sizeof sub, path, "petsc_options");
    CT_CHECK(ctx, get_string(ctx, v, sub, &st->petsc_options));
  }
  if ((v = ct_cfg_get(node, "ftol"))) {
    join(sub, sizeof sub, path, "ftol");
    CT_CHECK(ctx, get_number(ctx, v, sub, 1, &st->ftol));
  }
  if ((v = ct_cfg_get(node, "max_iters"))) {
    join(sub, sizeof sub, path, "max_iters");
    CT_CHECK(ctx, get_count(ctx, v, sub, 1000000, &st->max_iters));
  }
  if ((v = ct_cfg_get(node, "linear_solver"))) {
    join(sub, sizeof sub, path, "linear_solver");
    CT_CHECK(ctx, get_choice(ctx, v, sub, newton_solvers, N_OF(newton_solvers),
                             &st->linear_solver));
  }
  if ((v = ct_cfg_get(node, "strategy"))) {
    join(sub, sizeof sub, path, "strategy");
    CT_CHECK(ctx, get_choice(ctx, v, sub, newton_strategies, N_OF(newton_strategies),
                             &st->strategy));
  }
  return CT_OK;
}

/* steady_state's fallback: {t_max}. */
static int parse_fallback(ct_context *ctx, const ct_cfg_node *node, const char *path,
                          ct_cfg_steady *st) {
  int given;
  CT_CHECK(ctx, optional_map(ctx, node, path, "a map with t_max", &given));
  if (!given) return CT_OK;
  CT_CHECK(ctx, check_keys(ctx, node, path, fallback_keys, N_OF(fallback_keys)));
  const ct_cfg_node *v = ct_cfg_get(node, "t_max");
  if (!v) return CT_OK;
  char sub[300];
  join(sub, sizeof sub, path, "t_max");
  return get_number(ctx, v, sub, 1, &st->t_max);
}

/* The keys only steady_state takes: gradient, newton, fallback; an
 * objective must be {final: expr} (an expression of the steady state). */
static int parse_steady(ct_context *ctx, const ct_cfg_node *node, const char *path,
                        ct_cfg_analysis *a) {
  char sub[300];
  const ct_cfg_node *v;
  a->steady.loc = a->loc;
  join(sub, sizeof sub, path, "gradient");
  if ((v = ct_cfg_get(node, "gradient")))
    CT_CHECK(ctx, get_choice(ctx, v, sub, steady_gradients, N_OF(steady_gradients), &a->method));
  else if (!(a->method = ct_strdup(ctx, "adjoint"))) return CT_ERR_NOMEM;
  join(sub, sizeof sub, path, "newton");
  CT_CHECK(ctx, parse_newton(ctx, ct_cfg_get(node, "newton"), sub, &a->steady));
  join(sub, sizeof sub, path, "fallback");
  CT_CHECK(ctx, parse_fallback(ctx, ct_cfg_get(node, "fallback"), sub, &a->steady));
  if (a->objective.kind != CT_CFG_OBJ_NONE && a->objective.kind != CT_CFG_OBJ_FINAL)
    return ct_cfg_error(ctx, a->objective.loc, "%s.objective of a steady_state is {final: "
                        "expr}, an expression of the steady state", path);
  if (a->check_fd && a->objective.kind == CT_CFG_OBJ_NONE)
    return ct_cfg_error(ctx, key_loc(node, "check"), "%s.check checks the gradient of an "
                        "objective: add objective: {final: expr}", path);
  if ((v = ct_cfg_get(node, "gradient")) && a->objective.kind == CT_CFG_OBJ_NONE)
    return ct_cfg_error(ctx, key_loc(node, "gradient"), "%s.gradient is the method for an "
                        "objective's gradient: add objective: {final: expr}", path);
  return CT_OK;
}

/* One entry of analyses. */
static int parse_analysis(ct_context *ctx, const ct_cfg_node *node, const char *path,
                          const ct_cfg_model *m, const char *dir, ct_cfg_analysis *a) {
  if (node->kind != CT_CFG_MAP) return type_error(ctx, node, path, "a map with a type");
  a->loc = node->loc;
  CT_CHECK(ctx, check_keys(ctx, node, path, analysis_keys, N_OF(analysis_keys)));
  const ct_cfg_node *v = require(ctx, node, "type", path);
  if (!v) return CT_ERR_CONFIG;
  char sub[300], *word = NULL;
  join(sub, sizeof sub, path, "type");
  CT_CHECK(ctx, get_choice(ctx, v, sub, analysis_types, N_OF(analysis_types), &word));
  a->type = (ct_cfg_analysis_type)choice_index(word, analysis_types, N_OF(analysis_types));
  ct_free(ctx, word);
  for (size_t i = 0; i < node->n; i++)
    if (!analysis_takes(a->type, node->keys[i]))
      return ct_cfg_error(ctx, node->key_locs[i], "key '%s' does not apply to %s (%s)",
                          node->keys[i], path, analysis_types[a->type]);
  if ((v = ct_cfg_get(node, "name"))) {
    join(sub, sizeof sub, path, "name");
    CT_CHECK(ctx, get_string(ctx, v, sub, &a->name));
    CT_CHECK(ctx, check_analysis_name(ctx, v, a->name));
  }
  if (a->type == CT_CFG_SIMULATE) return CT_OK;
  CT_CHECK(ctx, parse_analysis_params(ctx, node, path, m, a));
  if ((v = ct_cfg_get(node, "check"))) {
    join(sub, sizeof sub, path, "check");
    CT_CHECK(ctx, get_choice(ctx, v, sub, checks, N_OF(checks), &word));
    a->check_fd = !strcmp(word, "finite_difference");
    ct_free(ctx, word);
  }
  if (a->type == CT_CFG_GRADIENT) {
    join(sub, sizeof sub, path, "method");
    if ((v = ct_cfg_get(node, "method")))
      CT_CHECK(ctx, get_choice(ctx, v, sub, gradient_methods, N_OF(gradient_methods), &a->method));
    else if (!(a->method = ct_strdup(ctx, "auto"))) return CT_ERR_NOMEM;
  }
  if (a->type == CT_CFG_FORWARD_SENSITIVITY) return CT_OK;
  if (a->type == CT_CFG_STEADY_STATE) {
    join(sub, sizeof sub, path, "objective");
    if ((v = ct_cfg_get(node, "objective")))
      CT_CHECK(ctx, parse_objective(ctx, v, sub, m, dir, &a->objective));
    return parse_steady(ctx, node, path, a);
  }
  if (!(v = require(ctx, node, "objective", path))) return CT_ERR_CONFIG;
  join(sub, sizeof sub, path, "objective");
  return parse_objective(ctx, v, sub, m, dir, &a->objective);
}

/* Gives unnamed analyses "<type>" (or "<type>_<k>" when the type repeats)
 * and refuses two analyses of the same name. */
static int name_analyses(ct_context *ctx, const ct_cfg_node *list, ct_cfg *cfg) {
  for (size_t i = 0; i < cfg->n_analyses; i++) {
    ct_cfg_analysis *a = &cfg->analyses[i];
    if (a->name) continue;
    size_t same = 0, k = 0;
    for (size_t j = 0; j < cfg->n_analyses; j++)
      if (cfg->analyses[j].type == a->type) same++, k += j <= i;
    char name[64];
    if (same > 1) snprintf(name, sizeof name, "%s_%zu", analysis_types[a->type], k);
    else snprintf(name, sizeof name, "%s", analysis_types[a->type]);
    if (!(a->name = ct_strdup(ctx, name))) return CT_ERR_NOMEM;
  }
  for (size_t i = 0; i < cfg->n_analyses; i++)
    for (size_t j = 0; j < i; j++)
      if (!strcmp(cfg->analyses[i].name, cfg->analyses[j].name))
        return ct_cfg_error(ctx, list->items[i]->loc, "analyses.%zu is named '%s' like "
                            "analyses.%zu; analysis names must differ", i,
                            cfg->analyses[i].name, j);
  return CT_OK;
}

/* The analyses section: a non-empty list. */
static int parse_analyses(ct_context *ctx, const ct_cfg_node *node, ct_cfg *cfg) {
  if (node->kind != CT_CFG_SEQ)
    return type_error(ctx, node, "analyses", "a list of analyses (- type: simulate ...)");
  if (node->n == 0)
    return ct_cfg_error(ctx, node->loc, "analyses is an empty list: add at least one "
                        "(- type: simulate)");
  cfg->analyses = ct_calloc(ctx, node->n, sizeof *cfg->analyses);
  if (!cfg->analyses) return CT_ERR_NOMEM;
  for (size_t i = 0; i < node->n; i++) {
    char path[64];
    join_index(path, sizeof path, "analyses", i);
    cfg->n_analyses = i + 1;
    CT_CHECK(ctx, parse_analysis(ctx, node->items[i], path, &cfg->model, cfg->dir,
                                 &cfg->analyses[i]));
  }
  return name_analyses(ctx, node, cfg);
}

/* ---- The whole config ------------------------------------------------------------------- */

/* The folder of path ("." when it has none). */
static char *folder_of(ct_context *ctx, const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return ct_strdup(ctx, ".");
  size_t len = slash == path ? 1 : (size_t)(slash - path);
  char *dir = ct_alloc(ctx, len + 1);
  if (!dir) return NULL;
  memcpy(dir, path, len);
  dir[len] = '\0';
  return dir;
}

/* The top level: model, solver, time, analyses. */
static int parse_top(ct_context *ctx, const ct_cfg_doc *doc, ct_cfg *cfg) {
  const ct_cfg_node *root = doc->root;
  ct_cfg_loc start = {doc->path, 1, 1};
  if (!root || is_null(root))
    return ct_cfg_error(ctx, start, "the config is empty: it needs model, time and analyses");
  if (root->kind != CT_CFG_MAP)
    return type_error(ctx, root, "the config", "a map with model, time and analyses");
  CT_CHECK(ctx, check_keys(ctx, root, "", top_keys, N_OF(top_keys)));
  const ct_cfg_node *model = require(ctx, root, "model", "");
  if (!model) return CT_ERR_CONFIG;
  CT_CHECK(ctx, parse_model(ctx, model, doc->path, &cfg->model));
  cfg->solver.loc = key_loc(root, "solver");
  CT_CHECK(ctx, parse_solver(ctx, ct_cfg_get(root, "solver"), &cfg->model, &cfg->solver));
  const ct_cfg_node *time = require(ctx, root, "time", "");
  if (!time) return CT_ERR_CONFIG;
  CT_CHECK(ctx, parse_time(ctx, time, &cfg->time));
  const ct_cfg_node *analyses = require(ctx, root, "analyses", "");
  if (!analyses) return CT_ERR_CONFIG;
  return parse_analyses(ctx, analyses, cfg);
}

int ct_cfg_from_doc(ct_context *ctx, ct_cfg_doc *doc, ct_cfg **out) {
  if (!ctx || !out || !doc) {
    ct_cfg_doc_free(doc);
    return ctx ? CT_ERROR(ctx, CT_ERR_ARG, "ct_cfg_from_doc: NULL argument") : CT_ERR_ARG;
  }
  *out = NULL;
  cfg_priv *priv = ct_calloc(ctx, 1, sizeof *priv);
  if (!priv) {
    ct_cfg_doc_free(doc);
    return CT_ERR_NOMEM;
  }
  priv->ctx = ctx;
  ct_cfg *cfg = &priv->pub;
  cfg->doc = doc;
  int rc = (cfg->dir = folder_of(ctx, doc->path)) ? parse_top(ctx, doc, cfg) : CT_ERR_NOMEM;
  if (rc < 0) {
    ct_cfg_free(cfg);
    return rc;
  }
  *out = cfg;
  return CT_OK;
}

/* Frees a symbol array's strings and the array. */
static void free_symbols(ct_context *ctx, ct_cfg_symbol *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    ct_free(ctx, s[i].name);
    ct_free(ctx, s[i].expr.text);
    ct_free(ctx, s[i].rhs.text);
  }
  ct_free(ctx, s);
}

/* Frees a list of strings and the list. */
static void free_strings(ct_context *ctx, char **s, size_t n) {
  for (size_t i = 0; i < n; i++) ct_free(ctx, s[i]);
  ct_free(ctx, s);
}

/* Frees what one analysis owns. */
static void free_analysis(ct_context *ctx, ct_cfg_analysis *a) {
  ct_free(ctx, a->name);
  ct_free(ctx, a->method);
  ct_free(ctx, a->steady.linear_solver);
  ct_free(ctx, a->steady.strategy);
  ct_free(ctx, a->steady.solver);
  ct_free(ctx, a->steady.petsc_options);
  free_strings(ctx, a->parameters, a->n_parameters);
  ct_free(ctx, a->objective.expr.text);
  ct_free(ctx, a->objective.data_file);
  free_strings(ctx, a->objective.observables, a->objective.n_observables);
}

void ct_cfg_free(ct_cfg *cfg) {
  if (!cfg) return;
  ct_context *ctx = ((cfg_priv *)cfg)->ctx;
  ct_cfg_model *m = &cfg->model;
  ct_free(ctx, m->name);
  for (size_t i = 0; i < m->n_params; i++) ct_free(ctx, m->params[i].name);
  ct_free(ctx, m->params);
  free_symbols(ctx, m->states, m->n_states);
  free_symbols(ctx, m->assignments, m->n_assignments);
  free_symbols(ctx, m->observables, m->n_observables);
  free_symbols(ctx, m->algebraic, m->n_algebraic);
  ct_free(ctx, cfg->solver.method);
  ct_free(ctx, cfg->solver.linear_solver);
  ct_free(ctx, cfg->solver.atol_v);
  ct_free(ctx, cfg->time.output);
  for (size_t i = 0; i < cfg->n_analyses; i++) free_analysis(ctx, &cfg->analyses[i]);
  ct_free(ctx, cfg->analyses);
  ct_free(ctx, cfg->dir);
  ct_cfg_doc_free(cfg->doc);
  ct_free(ctx, cfg);
}

/* ---- --set ------------------------------------------------------------------------------- */

/* Where values given with --set say they come from. */
static const char set_file[] = "--set";

/* Whether key is a word of the schema (so --set may create it). */
static int is_schema_key(const char *key) {
  static const struct {
    const char *const *keys;
    size_t n;
  } lists[] = {{top_keys, N_OF(top_keys)},           {model_keys, N_OF(model_keys)},
               {param_keys, N_OF(param_keys)},       {algebraic_keys, N_OF(algebraic_keys)},
               {solver_keys, N_OF(solver_keys)},     {time_keys, N_OF(time_keys)},
               {grid_keys, N_OF(grid_keys)},         {analysis_keys, N_OF(analysis_keys)},
               {objective_keys, N_OF(objective_keys)}, {data_keys, N_OF(data_keys)},
               {newton_keys, N_OF(newton_keys)},     {fallback_keys, N_OF(fallback_keys)}};
  for (size_t i = 0; i < N_OF(lists); i++)
    if (is_one_of(key, lists[i].keys, lists[i].n)) return 1;
  return 0;
}

/* Marks a node (and what it holds) as coming from --set. */
static void mark_from_set(ct_cfg_node *node) {
  ct_cfg_loc loc = {set_file, 0, 0};
  node->loc = loc;
  node->text_col = 0;
  for (size_t i = 0; i < node->n; i++) {
    if (node->key_locs) node->key_locs[i] = loc;
    mark_from_set(node->items[i]);
  }
}

/* Adds key -> value to a map; value belongs to the map only on success. */
static int map_append(ct_context *ctx, ct_cfg_node *map, const char *key, ct_cfg_node *value) {
  char *k = ct_strdup(ctx, key);
  if (!k) return CT_ERR_NOMEM;
  size_t n = map->n + 1;
  ct_cfg_node **items = ct_realloc_array(ctx, map->items, n, sizeof *items);
  if (items) map->items = items;
  char **keys = items ? ct_realloc_array(ctx, map->keys, n, sizeof *keys) : NULL;
  if (keys) map->keys = keys;
  ct_cfg_loc *locs = keys ? ct_realloc_array(ctx, map->key_locs, n, sizeof *locs) : NULL;
  if (!locs) {
    ct_free(ctx, k);
    return CT_ERR_NOMEM;
  }
  map->key_locs = locs;
  ct_cfg_loc loc = {set_file, 0, 0};
  map->keys[map->n] = k;
  map->key_locs[map->n] = loc;
  map->items[map->n++] = value;
  return CT_OK;
}

/* The error for a --set path step that does not exist in map. */
static int set_no_key(ct_context *ctx, const ct_cfg_node *map, const char *assignment,
                      const char *prefix, const char *key) {
  const char *near = ct_cfg_closest(key, (const char *const *)map->keys, map->n);
  char hint[128] = "";
  if (near) snprintf(hint, sizeof hint, " (did you mean '%s'?)", near);
  ct_cfg_loc loc = {set_file, 0, 0};
  return ct_cfg_error(ctx, loc, "'%s': no key '%s' in %s%s", assignment, key,
                      prefix[0] ? prefix : "the top level", hint);
}

/* A sequence index written in decimal, below n; -1 when it is not one. */
static long seq_index(const char *part, size_t n) {
  if (!part[0] || strlen(part) > 9) return -1;
  for (const char *c = part; *c; c++)
    if (!isdigit((unsigned char)*c)) return -1;
  long i = strtol(part, NULL, 10);
  return (size_t)i < n ? i : -1;
}

/* One step of a --set path: *slot is where the value of `part` lives in
 * node (created when missing: an empty map, or the value itself when last). */
static int set_step(ct_context *ctx, ct_cfg_node *node, const char *part, int last,
                    ct_cfg_node **value, const char *assignment, const char *prefix,
                    ct_cfg_node ***slot) {
  ct_cfg_loc loc = {set_file, 0, 0};
  if (node->kind == CT_CFG_SEQ) {
    long i = seq_index(part, node->n);
    if (i < 0)
      return ct_cfg_error(ctx, loc, "'%s': %s is a list of %zu items; '%s' is not an index "
                          "from 0 to %zu", assignment, prefix, node->n, part,
                          node->n ? node->n - 1 : 0);
    *slot = &node->items[i];
    return CT_OK;
  }
  if (node->kind != CT_CFG_MAP)
    return ct_cfg_error(ctx, loc, "'%s': %s is a single value, not a map or a list", assignment,
                        prefix);
  for (size_t i = 0; i < node->n; i++)
    if (!strcmp(node->keys[i], part)) return *slot = &node->items[i], CT_OK;
  if (!is_schema_key(part)) return set_no_key(ctx, node, assignment, prefix, part);
  ct_cfg_node *fresh = last ? *value : ct_calloc(ctx, 1, sizeof *fresh);
  if (!fresh) return CT_ERR_NOMEM;
  if (!last) fresh->kind = CT_CFG_MAP, fresh->loc = loc;
  int rc = map_append(ctx, node, part, fresh);
  if (rc < 0) {
    if (!last) ct_free(ctx, fresh);
    return rc;
  }
  if (last) *value = NULL;
  *slot = &node->items[node->n - 1];
  return CT_OK;
}

/* Walks doc along the dotted path and puts *value there (taking it). */
static int set_path(ct_context *ctx, ct_cfg_doc *doc, char *path, ct_cfg_node **value,
                    const char *assignment) {
  ct_cfg_loc loc = {set_file, 0, 0};
  ct_cfg_node **slot = &doc->root;
  char prefix[256] = "";
  for (char *part = path, *dot;; part = dot + 1) {
    dot = strchr(part, '.');
    if (dot) *dot = '\0';
    if (!part[0]) return ct_cfg_error(ctx, loc, "'%s': the key path has an empty part", assignment);
    if (!*slot) { /* an empty document: --set starts its top-level map */
      if (!(*slot = ct_calloc(ctx, 1, sizeof **slot))) return CT_ERR_NOMEM;
      (*slot)->kind = CT_CFG_MAP;
      (*slot)->loc = loc;
    }
    ct_cfg_node **next = NULL;
    CT_CHECK(ctx, set_step(ctx, *slot, part, !dot, value, assignment, prefix, &next));
    size_t used = strlen(prefix);
    snprintf(prefix + used, sizeof prefix - used, "%s%s", used ? "." : "", part);
    slot = next;
    if (!dot) break;
  }
  if (*value) { /* replace: swap contents so the old node is freed with the value doc */
    ct_cfg_node tmp = **slot;
    **slot = **value;
    **value = tmp;
  }
  return CT_OK;
}

int ct_cfg_apply_set(ct_context *ctx, ct_cfg_doc *doc, const char *assignment) {
  if (!ctx || !doc || !assignment)
    return ctx ? CT_ERROR(ctx, CT_ERR_ARG, "ct_cfg_apply_set: NULL argument") : CT_ERR_ARG;
  ct_cfg_loc loc = {set_file, 0, 0};
  const char *eq = strchr(assignment, '=');
  if (!eq || eq == assignment)
    return ct_cfg_error(ctx, loc, "'%s' must be written key.path=value", assignment);
  size_t len = (size_t)(eq - assignment);
  char *path = ct_alloc(ctx, len + 1);
  if (!path) return CT_ERR_NOMEM;
  memcpy(path, assignment, len);
  path[len] = '\0';
  ct_cfg_doc *value = NULL;
  int rc = ct_cfg_parse(ctx, set_file, eq + 1, strlen(eq + 1), &value);
  if (rc == CT_OK && !value->root) {
    value->root = ct_calloc(ctx, 1, sizeof *value->root);
    if (!value->root || !(value->root->text = ct_strdup(ctx, ""))) rc = CT_ERR_NOMEM;
  }
  if (rc == CT_OK) {
    mark_from_set(value->root);
    rc = set_path(ctx, doc, path, &value->root, assignment);
  }
  ct_cfg_doc_free(value);
  ct_free(ctx, path);
  return rc;
}

int ct_cfg_load(ct_context *ctx, const char *path, const char *const *sets, size_t n_sets,
                ct_cfg **out) {
  if (!ctx || !out) return CT_ERR_ARG;
  *out = NULL;
  ct_cfg_doc *doc = NULL;
  CT_CHECK(ctx, ct_cfg_parse_file(ctx, path, &doc));
  for (size_t i = 0; i < n_sets; i++) {
    int rc = ct_cfg_apply_set(ctx, doc, sets[i]);
    if (rc < 0) {
      ct_cfg_doc_free(doc);
      return rc;
    }
  }
  return ct_cfg_from_doc(ctx, doc, out);
}
