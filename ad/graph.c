/* Graphs: recording operations with hash-consing, constant folding and
 * simplification; inputs, outputs and guards; finalization into ct_fun. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

static const struct {
  const char *name;
  int arity;
} op_info[] = {
#define CT_OP_INFO_(e, name, arity) {#name, arity},
    CT_OP_LIST(CT_OP_INFO_)
#undef CT_OP_INFO_
};

int ct_op_arity(int op) { return op >= 0 && op < CT_OP_COUNT ? op_info[op].arity : 0; }

const char *ct_op_name(int op) {
  return op >= 0 && op < CT_OP_COUNT ? op_info[op].name : "?";
}

int ct_op_is_boolean(int op) {
  return op >= CT_OP_LT && op <= CT_OP_NOT;
}

int ct_graph_fail(ct_graph *g, int status) {
  if (g->status >= 0) g->status = status;
  return g->status;
}

ct_graph *ct_graph_new(ct_context *ctx) {
  ct_graph *g = ct_calloc(ctx, 1, sizeof *g);
  if (!g) return NULL;
  g->ctx = ctx;
  g->table_cap = 64;
  g->table = ct_alloc(ctx, g->table_cap * sizeof *g->table);
  if (!g->table) {
    ct_free(ctx, g);
    return NULL;
  }
  memset(g->table, 0xff, g->table_cap * sizeof *g->table);
  return g;
}

static void free_ios(ct_context *ctx, ct_io *io, size_t n) {
  for (size_t i = 0; i < n; i++) {
    ct_free(ctx, io[i].name);
    ct_free(ctx, io[i].ids);
  }
  ct_free(ctx, io);
}

void ct_graph_free(ct_graph *g) {
  if (!g) return;
  ct_context *ctx = g->ctx;
  ct_free(ctx, g->nodes);
  ct_free(ctx, g->vals);
  ct_free(ctx, g->table);
  free_ios(ctx, g->in, g->n_in);
  free_ios(ctx, g->out, g->n_out);
  ct_free(ctx, g->guards);
  ct_free(ctx, g);
}

int ct_graph_status(const ct_graph *g) { return g->status; }
size_t ct_graph_n_nodes(const ct_graph *g) { return g->n_nodes; }

/* ---- Hash-consing --------------------------------------------------------- */

static uint64_t node_hash(const ct_node *n) {
  uint64_t kbits;
  memcpy(&kbits, &n->k, sizeof kbits);
  uint64_t h = 1469598103934665603ull;
  const uint64_t words[5] = {n->op, (uint32_t)n->a, (uint32_t)n->b,
                             (uint32_t)n->c, kbits};
  for (int i = 0; i < 5; i++) {
    h ^= words[i];
    h *= 1099511628211ull;
    h ^= h >> 29;
  }
  return h;
}

static int node_equal(const ct_node *x, const ct_node *y) {
  return x->op == y->op && x->a == y->a && x->b == y->b && x->c == y->c &&
         memcmp(&x->k, &y->k, sizeof x->k) == 0;
}

/* Slot of `n` in the table: where it is, or the empty slot to put it. */
static size_t table_slot(const ct_graph *g, const ct_node *n) {
  size_t mask = g->table_cap - 1, i = node_hash(n) & mask;
  while (g->table[i] >= 0 && !node_equal(&g->nodes[g->table[i]], n))
    i = (i + 1) & mask;
  return i;
}

static int table_grow(ct_graph *g) {
  size_t cap = g->table_cap * 2;
  int32_t *t = ct_alloc(g->ctx, cap * sizeof *t);
  if (!t) return CT_ERR_NOMEM;
  memset(t, 0xff, cap * sizeof *t);
  ct_free(g->ctx, g->table);
  g->table = t;
  g->table_cap = cap;
  for (size_t id = 0; id < g->n_nodes; id++)
    g->table[table_slot(g, &g->nodes[id])] = (int32_t)id;
  return CT_OK;
}

static int nodes_reserve(ct_graph *g) {
  if (g->n_nodes < g->cap_nodes) return CT_OK;
  if (g->n_nodes >= INT32_MAX / 2)
    return CT_ERROR(g->ctx, CT_ERR_ARG, "graph exceeds %d nodes", INT32_MAX / 2);
  size_t cap = g->cap_nodes ? 2 * g->cap_nodes : 256;
  ct_node *nodes = ct_realloc_array(g->ctx, g->nodes, cap, sizeof *nodes);
  if (!nodes) return CT_ERR_NOMEM;
  g->nodes = nodes;
  double *vals = ct_realloc_array(g->ctx, g->vals, cap, sizeof *vals);
  if (!vals) return CT_ERR_NOMEM;
  g->vals = vals;
  g->cap_nodes = cap;
  return CT_OK;
}

/* Finds or appends the node; returns its id or -1. */
static int32_t intern(ct_graph *g, ct_node n, double value) {
  if (g->status < 0) return -1;
  size_t slot = table_slot(g, &n);
  if (g->table[slot] >= 0) return g->table[slot];
  int rc = nodes_reserve(g);
  if (rc == CT_OK && 2 * (g->n_nodes + 1) > g->table_cap) {
    rc = table_grow(g);
    if (rc == CT_OK) slot = table_slot(g, &n);
  }
  if (rc < 0) {
    ct_graph_fail(g, rc);
    return -1;
  }
  int32_t id = (int32_t)g->n_nodes++;
  g->nodes[id] = n;
  g->vals[id] = value;
  g->table[slot] = id;
  return id;
}

static int32_t emit_const(ct_graph *g, double c) {
  ct_node n = {CT_OP_CONST, 0, 0, 0, c};
  return intern(g, n, c);
}

/* ---- Simplification -------------------------------------------------------- */

static int is_const(const ct_graph *g, int32_t id, double *v) {
  if (g->nodes[id].op != CT_OP_CONST) return 0;
  if (v) *v = g->nodes[id].k;
  return 1;
}

static int is_const_eq(const ct_graph *g, int32_t id, double c) {
  double v;
  return is_const(g, id, &v) && v == c;
}

static int is_commutative(int op) {
  return op == CT_OP_ADD || op == CT_OP_MUL || op == CT_OP_EQ ||
         op == CT_OP_NE || op == CT_OP_AND || op == CT_OP_OR ||
         op == CT_OP_HYPOT;
}

/* Rewrites op(a, b, c; k) into a cheaper equivalent node if one exists;
 * returns its id, or -2 when no rule applies. */
static int32_t simplify(ct_graph *g, int op, int32_t a, int32_t b, int32_t c,
                        double k) {
  switch (op) {
    case CT_OP_ADD:
      if (is_const_eq(g, a, 0)) return b;
      if (is_const_eq(g, b, 0)) return a;
      break;
    case CT_OP_SUB:
      if (is_const_eq(g, b, 0)) return a;
      if (is_const_eq(g, a, 0)) return ct_graph_emit(g, CT_OP_NEG, b, 0, 0, 0);
      break;
    case CT_OP_MUL:
      if (is_const_eq(g, a, 0) || is_const_eq(g, b, 0)) return emit_const(g, 0);
      if (is_const_eq(g, a, 1)) return b;
      if (is_const_eq(g, b, 1)) return a;
      if (is_const_eq(g, a, -1)) return ct_graph_emit(g, CT_OP_NEG, b, 0, 0, 0);
      if (is_const_eq(g, b, -1)) return ct_graph_emit(g, CT_OP_NEG, a, 0, 0, 0);
      break;
    case CT_OP_DIV:
      if (is_const_eq(g, b, 1)) return a;
      if (is_const_eq(g, b, -1)) return ct_graph_emit(g, CT_OP_NEG, a, 0, 0, 0);
      if (is_const_eq(g, a, 0)) return emit_const(g, 0);
      break;
    case CT_OP_NEG:
      if (g->nodes[a].op == CT_OP_NEG) return g->nodes[a].a;
      break;
    case CT_OP_POWI:
      if (k == 0) return emit_const(g, 1);
      if (k == 1) return a;
      if (k == 2) return ct_graph_emit(g, CT_OP_SQR, a, 0, 0, 0);
      break;
    case CT_OP_POW: {
      double e;
      if (is_const(g, b, &e) && e == floor(e) && fabs(e) < 1e9)
        return ct_graph_emit(g, CT_OP_POWI, a, 0, 0, e);
      break;
    }
    case CT_OP_SELECT: {
      double cond;
      if (is_const(g, a, &cond)) return cond != 0 ? b : c;
      if (b == c) return b;
      break;
    }
    default:
      break;
  }
  return -2;
}

int32_t ct_graph_emit(ct_graph *g, int op, int32_t a, int32_t b, int32_t c,
                      double k) {
  if (g->status < 0) return -1;
  int arity = ct_op_arity(op);
  int32_t kids[3] = {a, b, c};
  int all_const = arity > 0;
  for (int i = 0; i < 3; i++) {
    if (i >= arity) {
      kids[i] = 0;
      continue;
    }
    if (kids[i] < 0 || (size_t)kids[i] >= g->n_nodes) {
      ct_graph_fail(g, CT_ERROR(g->ctx, CT_ERR_ARG,
                                "%s: invalid operand (from a failed operation "
                                "or another graph)", ct_op_name(op)));
      return -1;
    }
    if (!is_const(g, kids[i], NULL)) all_const = 0;
  }
  if (arity == 0) k = op == CT_OP_CONST ? k : 0;
  if (all_const)
    return emit_const(g, ct_op_apply(op, g->nodes[kids[0]].k,
                                     g->nodes[kids[1]].k,
                                     g->nodes[kids[2]].k, k));
  int32_t s = simplify(g, op, kids[0], kids[1], kids[2], k);
  if (s != -2) return s;
  if (is_commutative(op) && kids[0] > kids[1]) {
    int32_t t = kids[0];
    kids[0] = kids[1];
    kids[1] = t;
  }
  ct_node n = {(uint8_t)op, kids[0], kids[1], kids[2], k};
  double va = g->vals[kids[0]], vb = arity > 1 ? g->vals[kids[1]] : 0;
  double v = ct_op_apply(op, va, vb, arity > 2 ? g->vals[kids[2]] : 0, k);
  /* A comparison of unknown (NaN) values is unknown, not false. */
  if (ct_op_is_boolean(op) && (va != va || vb != vb)) v = NAN;
  return intern(g, n, v);
}

/* ---- Inputs, outputs, guards ---------------------------------------------- */

static int find_io(const ct_io *io, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(io[i].name, name) == 0) return (int)i;
  return -1;
}

/* Appends a named vector of `n` ids (copied if `ids` is given, else left
 * for the caller to fill) to *list; returns its slot or a negative status. */
static int add_io(ct_graph *g, ct_io **list, size_t *count, const char *name,
                  size_t n, const int32_t *ids, const char *kind) {
  if (!name || !*name)
    return ct_graph_fail(g, CT_ERROR(g->ctx, CT_ERR_ARG, "%s needs a name", kind));
  if (find_io(*list, *count, name) >= 0)
    return ct_graph_fail(g, CT_ERROR(g->ctx, CT_ERR_ARG,
                                     "%s '%s' is declared twice", kind, name));
  ct_io *grown = ct_realloc_array(g->ctx, *list, *count + 1, sizeof *grown);
  if (!grown) return ct_graph_fail(g, CT_ERR_NOMEM);
  *list = grown;
  ct_io io = {ct_strdup(g->ctx, name), n, ct_calloc(g->ctx, n ? n : 1, sizeof(int32_t))};
  if (!io.name || !io.ids) {
    ct_free(g->ctx, io.name);
    ct_free(g->ctx, io.ids);
    return ct_graph_fail(g, CT_ERR_NOMEM);
  }
  if (ids) memcpy(io.ids, ids, n * sizeof *ids);
  grown[*count] = io;
  return (int)(*count)++;
}

/* Adds input vector slot and its INPUT nodes, with values when given. */
static int add_input(ct_graph *g, const char *name, size_t n,
                     const double *values, int32_t *ids) {
  if (g->status < 0) return g->status;
  int slot = add_io(g, &g->in, &g->n_in, name, n, NULL, "input");
  if (slot < 0) return slot;
  for (size_t j = 0; j < n; j++) {
    ct_node node = {CT_OP_INPUT, slot, (int32_t)j, 0, 0};
    int32_t id = intern(g, node, values ? values[j] : NAN);
    if (id < 0) return g->status;
    g->in[slot].ids[j] = id;
    if (ids) ids[j] = id;
  }
  return CT_OK;
}

int ct_graph_add_input(ct_graph *g, const char *name, size_t n, int32_t *ids) {
  return add_input(g, name, n, NULL, ids);
}

int ct_graph_input(ct_graph *g, const char *name, size_t n,
                   const double *values, ct_var *vars) {
  int rc = add_input(g, name, n, values, NULL);
  if (rc < 0) {
    for (size_t j = 0; vars && j < n; j++) vars[j] = (ct_var){g, -1};
    return rc;
  }
  const ct_io *io = &g->in[g->n_in - 1];
  for (size_t j = 0; vars && j < n; j++) vars[j] = (ct_var){g, io->ids[j]};
  return CT_OK;
}

int ct_graph_add_output(ct_graph *g, const char *name, size_t n,
                        const int32_t *ids) {
  if (g->status < 0) return g->status;
  for (size_t j = 0; j < n; j++)
    if (ids[j] < 0 || (size_t)ids[j] >= g->n_nodes)
      return ct_graph_fail(g, CT_ERROR(g->ctx, CT_ERR_ARG,
                                       "output '%s'[%zu] is not a valid node",
                                       name ? name : "?", j));
  int slot = add_io(g, &g->out, &g->n_out, name, n, ids, "output");
  return slot < 0 ? slot : CT_OK;
}

int ct_graph_output(ct_graph *g, const char *name, size_t n,
                    const ct_var *vars) {
  if (g->status < 0) return g->status;
  int32_t *ids = ct_alloc(g->ctx, (n ? n : 1) * sizeof *ids);
  if (!ids) return ct_graph_fail(g, CT_ERR_NOMEM);
  for (size_t j = 0; j < n; j++)
    ids[j] = vars[j].g == g ? vars[j].id : -1;
  int rc = ct_graph_add_output(g, name, n, ids);
  ct_free(g->ctx, ids);
  return rc;
}

int ct_graph_add_guard(ct_graph *g, int32_t id, int expected) {
  if (g->status < 0) return g->status;
  if (is_const(g, id, NULL)) return CT_OK; /* cannot flip */
  for (size_t i = 0; i < g->n_guards; i++)
    if (g->guards[i].id == id) return CT_OK;
  if (g->n_guards == g->cap_guards) {
    size_t cap = g->cap_guards ? 2 * g->cap_guards : 8;
    ct_guard *gs = ct_realloc_array(g->ctx, g->guards, cap, sizeof *gs);
    if (!gs) return ct_graph_fail(g, CT_ERR_NOMEM);
    g->guards = gs;
    g->cap_guards = cap;
  }
  g->guards[g->n_guards++] = (ct_guard){id, (uint8_t)(expected != 0)};
  return CT_OK;
}

/* ---- Finalization ----------------------------------------------------------- */

/* Copies io vectors, remapping ids through `map` when ids are kept. */
static int copy_ios(ct_context *ctx, const ct_io *src, size_t n, ct_io **dst,
                    const int32_t *map, int keep_ids) {
  *dst = ct_calloc(ctx, n ? n : 1, sizeof **dst);
  if (!*dst) return CT_ERR_NOMEM;
  for (size_t i = 0; i < n; i++) {
    ct_io *d = &(*dst)[i];
    d->n = src[i].n;
    d->name = ct_strdup(ctx, src[i].name);
    if (!d->name) return CT_ERR_NOMEM;
    if (!keep_ids) continue;
    d->ids = ct_alloc(ctx, (d->n ? d->n : 1) * sizeof *d->ids);
    if (!d->ids) return CT_ERR_NOMEM;
    for (size_t j = 0; j < d->n; j++) d->ids[j] = map[src[i].ids[j]];
  }
  return CT_OK;
}

static int fun_fill(ct_fun *f, const ct_graph *g, int32_t *map) {
  ct_context *ctx = g->ctx;
  /* Mark what outputs and guards need, children before parents. */
  char *live = ct_calloc(ctx, g->n_nodes ? g->n_nodes : 1, 1);
  if (!live) return CT_ERR_NOMEM;
  for (size_t i = 0; i < g->n_out; i++)
    for (size_t j = 0; j < g->out[i].n; j++) live[g->out[i].ids[j]] = 1;
  for (size_t i = 0; i < g->n_guards; i++) live[g->guards[i].id] = 1;
  for (size_t id = g->n_nodes; id-- > 0;) {
    if (!live[id]) continue;
    const ct_node *n = &g->nodes[id];
    int arity = ct_op_arity(n->op);
    if (arity > 0) live[n->a] = 1;
    if (arity > 1) live[n->b] = 1;
    if (arity > 2) live[n->c] = 1;
  }
  size_t n_live = 0;
  for (size_t id = 0; id < g->n_nodes; id++)
    map[id] = live[id] ? (int32_t)n_live++ : -1;
  ct_free(ctx, live);

  f->nodes = ct_alloc(ctx, (n_live ? n_live : 1) * sizeof *f->nodes);
  if (!f->nodes) return CT_ERR_NOMEM;
  for (size_t id = 0; id < g->n_nodes; id++) {
    if (map[id] < 0) continue;
    ct_node n = g->nodes[id];
    int arity = ct_op_arity(n.op);
    if (arity > 0) n.a = map[n.a];
    if (arity > 1) n.b = map[n.b];
    if (arity > 2) n.c = map[n.c];
    f->nodes[f->n_nodes++] = n;
  }
  f->n_in = g->n_in;
  f->n_out = g->n_out;
  CT_CHECK(ctx, copy_ios(ctx, g->in, g->n_in, &f->in, map, 0));
  CT_CHECK(ctx, copy_ios(ctx, g->out, g->n_out, &f->out, map, 1));
  f->guards = ct_alloc(ctx, (g->n_guards ? g->n_guards : 1) * sizeof *f->guards);
  if (!f->guards) return CT_ERR_NOMEM;
  for (size_t i = 0; i < g->n_guards; i++)
    f->guards[i] = (ct_guard){map[g->guards[i].id], g->guards[i].expected};
  f->n_guards = g->n_guards;
  return ct_fun_build_code(f);
}

int ct_graph_finalize(ct_graph *g, ct_fun **out) {
  *out = NULL;
  if (g->status < 0)
    return ct_error_trace(g->ctx, g->status, __FILE__, __LINE__, __func__);
  ct_fun *f = ct_calloc(g->ctx, 1, sizeof *f);
  int32_t *map = ct_alloc(g->ctx, (g->n_nodes ? g->n_nodes : 1) * sizeof *map);
  if (!f || !map) {
    ct_free(g->ctx, f);
    ct_free(g->ctx, map);
    return CT_ERR_NOMEM;
  }
  f->ctx = g->ctx;
  int rc = fun_fill(f, g, map);
  ct_free(g->ctx, map);
  if (rc < 0) {
    ct_fun_free(f);
    return ct_error_trace(g->ctx, rc, __FILE__, __LINE__, __func__);
  }
  *out = f;
  return CT_OK;
}

/* ---- Public operations ------------------------------------------------------ */

/* The graph ids of f's input i from the caller's variables, or -1 when one
 * is not a live variable of g (recorded in g). */
static int call_input_ids(ct_graph *g, const ct_fun *f, size_t i, const ct_var *vars,
                          int32_t *ids) {
  if (!vars)
    return ct_graph_fail(g, CT_ERROR(g->ctx, CT_ERR_ARG, "ct_fun_call: no variables "
                                     "for input '%s'", f->in[i].name));
  for (size_t k = 0; k < f->in[i].n; k++) {
    if (vars[k].g != g || vars[k].id < 0 || (size_t)vars[k].id >= g->n_nodes)
      return ct_graph_fail(g, CT_ERROR(g->ctx, CT_ERR_ARG, "ct_fun_call: input '%s'[%zu] "
                                       "is not a variable of this graph", f->in[i].name, k));
    ids[k] = vars[k].id;
  }
  return CT_OK;
}

int ct_fun_call(ct_graph *g, const ct_fun *f, const ct_var *const *in,
                ct_var *const *out) {
  if (!g) return CT_ERR_ARG;
  if (g->status < 0) return g->status;
  if (!f || (f->n_in && !in))
    return ct_graph_fail(g, CT_ERROR(g->ctx, CT_ERR_ARG, "ct_fun_call: the function or "
                                     "its inputs are NULL"));
  size_t n_ids = 0;
  for (size_t i = 0; i < f->n_in; i++) n_ids += f->in[i].n;
  int32_t **in_ids = ct_calloc(g->ctx, f->n_in ? f->n_in : 1, sizeof *in_ids);
  int32_t *ids = ct_alloc(g->ctx, (n_ids ? n_ids : 1) * sizeof *ids);
  int32_t *map = ct_alloc(g->ctx, (f->n_nodes ? f->n_nodes : 1) * sizeof *map);
  int rc = in_ids && ids && map ? CT_OK : ct_graph_fail(g, CT_ERR_NOMEM);
  for (size_t i = 0, at = 0; rc == CT_OK && i < f->n_in; at += f->in[i].n, i++) {
    in_ids[i] = ids + at;
    rc = call_input_ids(g, f, i, in[i], in_ids[i]);
  }
  if (rc == CT_OK) rc = ct_graph_replay(g, f, in_ids, map);
  for (size_t j = 0; rc == CT_OK && out && j < f->n_out; j++)
    for (size_t k = 0; out[j] && k < f->out[j].n; k++)
      out[j][k] = (ct_var){g, map[f->out[j].ids[k]]};
  ct_free(g->ctx, in_ids);
  ct_free(g->ctx, ids);
  ct_free(g->ctx, map);
  return rc < 0 ? rc : g->status;
}

static ct_var invalid(ct_graph *g) { return (ct_var){g, -1}; }

/* Checks that all handles are from one graph; returns it or NULL. */
static ct_graph *common_graph(int n, const ct_var *v) {
  ct_graph *g = v[0].g;
  if (!g) return NULL;
  for (int i = 1; i < n; i++)
    if (v[i].g != g) {
      if (v[i].g)
        ct_graph_fail(g, CT_ERROR(g->ctx, CT_ERR_ARG,
                                  "operands come from different graphs"));
      else
        ct_graph_fail(g, CT_ERROR(g->ctx, CT_ERR_ARG, "operand has no graph"));
      return NULL;
    }
  return g;
}

static ct_var op1(int op, ct_var a, double k) {
  if (!a.g) return (ct_var){NULL, -1};
  return (ct_var){a.g, ct_graph_emit(a.g, op, a.id, 0, 0, k)};
}

static ct_var op2(int op, ct_var a, ct_var b) {
  ct_var v[2] = {a, b};
  ct_graph *g = common_graph(2, v);
  if (!g) return invalid(a.g ? a.g : b.g);
  return (ct_var){g, ct_graph_emit(g, op, a.id, b.id, 0, 0)};
}

ct_var ct_const(ct_graph *g, double c) {
  return (ct_var){g, g ? emit_const(g, c) : -1};
}

double ct_value(ct_var v) {
  if (!v.g || v.id < 0 || (size_t)v.id >= v.g->n_nodes) return NAN;
  double x = v.g->vals[v.id];
  if (ct_op_is_boolean(v.g->nodes[v.id].op)) {
    if (x != x) {
      ct_graph_fail(v.g, CT_ERROR(v.g->ctx, CT_ERR_STATE,
                                  "ct_value of a condition needs input values "
                                  "(pass them to ct_graph_input; a NaN input "
                                  "value also leaves the condition unknown)"));
      return NAN;
    }
    ct_graph_add_guard(v.g, v.id, x != 0);
  }
  return x;
}

int ct_branch(ct_var cond) { return ct_value(cond) != 0; }

#define CT_UNARY_(e, name)                                       \
  ct_var ct_##name(ct_var a) { return op1(CT_OP_##e, a, 0); }
#define CT_BINARY_(e, name)                                      \
  ct_var ct_##name(ct_var a, ct_var b) { return op2(CT_OP_##e, a, b); }

CT_BINARY_(ADD, add)
CT_BINARY_(SUB, sub)
CT_BINARY_(MUL, mul)
CT_BINARY_(DIV, div)
CT_BINARY_(POW, pow)
CT_BINARY_(ATAN2, atan2)
CT_BINARY_(MIN, min)
CT_BINARY_(MAX, max)
CT_BINARY_(HYPOT, hypot)
CT_BINARY_(LT, lt)
CT_BINARY_(LE, le)
CT_BINARY_(GT, gt)
CT_BINARY_(GE, ge)
CT_BINARY_(EQ, eq)
CT_BINARY_(NE, ne)
CT_BINARY_(AND, and)
CT_BINARY_(OR, or)
CT_UNARY_(NEG, neg)
CT_UNARY_(SQR, sqr)
CT_UNARY_(EXP, exp)
CT_UNARY_(LOG, log)
CT_UNARY_(LOG1P, log1p)
CT_UNARY_(EXPM1, expm1)
CT_UNARY_(SQRT, sqrt)
CT_UNARY_(CBRT, cbrt)
CT_UNARY_(SIN, sin)
CT_UNARY_(COS, cos)
CT_UNARY_(TAN, tan)
CT_UNARY_(ASIN, asin)
CT_UNARY_(ACOS, acos)
CT_UNARY_(ATAN, atan)
CT_UNARY_(SINH, sinh)
CT_UNARY_(COSH, cosh)
CT_UNARY_(TANH, tanh)
CT_UNARY_(ASINH, asinh)
CT_UNARY_(ACOSH, acosh)
CT_UNARY_(ATANH, atanh)
CT_UNARY_(ERF, erf)
CT_UNARY_(ABS, abs)
CT_UNARY_(SIGN, sign)
CT_UNARY_(FLOOR, floor)
CT_UNARY_(CEIL, ceil)
CT_UNARY_(NOT, not)
#undef CT_UNARY_
#undef CT_BINARY_

ct_var ct_powi(ct_var a, int n) { return op1(CT_OP_POWI, a, (double)n); }

ct_var ct_addc(ct_var a, double c) { return ct_add(a, ct_const(a.g, c)); }
ct_var ct_mulc(ct_var a, double c) { return ct_mul(a, ct_const(a.g, c)); }
ct_var ct_subc(double c, ct_var a) { return ct_sub(ct_const(a.g, c), a); }
ct_var ct_divc(double c, ct_var a) { return ct_div(ct_const(a.g, c), a); }
ct_var ct_powc(ct_var a, double b) { return ct_pow(a, ct_const(a.g, b)); }

ct_var ct_select(ct_var cond, ct_var a, ct_var b) {
  ct_var v[3] = {cond, a, b};
  ct_graph *g = common_graph(3, v);
  if (!g) return invalid(cond.g ? cond.g : a.g);
  return (ct_var){g, ct_graph_emit(g, CT_OP_SELECT, cond.id, a.id, b.id, 0)};
}
