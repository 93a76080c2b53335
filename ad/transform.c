/* Transforms that return new functions: jvp (forward sweep), vjp (reverse
 * sweep), hvp (forward over reverse) and output selection. Each replays the
 * function into a fresh graph and records derivative nodes next to it, so
 * hash-consing shares what primal and derivative have in common. */
#include <stdio.h>
#include <string.h>

#include "ir.h"

#define ZERO CT_ZERO

int ct_graph_replay(ct_graph *g, const ct_fun *f, int32_t *const *input_ids,
                    int32_t *map) {
  for (size_t i = 0; i < f->n_nodes; i++) {
    const ct_node *n = &f->nodes[i];
    if (n->op == CT_OP_INPUT) {
      map[i] = input_ids[n->a][n->b];
      continue;
    }
    int arity = ct_op_arity(n->op);
    map[i] = ct_graph_emit(g, n->op, arity > 0 ? map[n->a] : 0,
                           arity > 1 ? map[n->b] : 0,
                           arity > 2 ? map[n->c] : 0, n->k);
    if (map[i] < 0) return g->status;
  }
  for (size_t i = 0; i < f->n_guards; i++)
    CT_CHECK(g->ctx, ct_graph_add_guard(g, map[f->guards[i].id],
                                        f->guards[i].expected));
  return g->status;
}

/* ---- Local derivative rules -------------------------------------------------- */

static int32_t E1(ct_graph *g, int op, int32_t a) {
  return ct_graph_emit(g, op, a, 0, 0, 0);
}
static int32_t E2(ct_graph *g, int op, int32_t a, int32_t b) {
  return ct_graph_emit(g, op, a, b, 0, 0);
}
static int32_t C(ct_graph *g, double v) {
  return ct_graph_emit(g, CT_OP_CONST, 0, 0, 0, v);
}

/* Ops whose derivative selects one operand's derivative: returns the
 * condition id and the two operand positions, or 0 for other ops. */
static int is_selection(ct_graph *g, const ct_node *n, const int32_t *map,
                        int32_t *cond, int *first, int *second) {
  switch (n->op) {
    case CT_OP_SELECT:
      *cond = map[n->a];
      *first = 1, *second = 2;
      return 1;
    case CT_OP_MIN: /* ties pick the first argument */
      *cond = E2(g, CT_OP_LE, map[n->a], map[n->b]);
      *first = 0, *second = 1;
      return 1;
    case CT_OP_MAX:
      *cond = E2(g, CT_OP_GE, map[n->a], map[n->b]);
      *first = 0, *second = 1;
      return 1;
    default:
      return 0;
  }
}

/* Partial derivatives of node r = op(a, b) with respect to a and b, as graph
 * ids (ZERO where the op does not depend on the operand). a, b, r are graph
 * ids of the operands and the node itself. Not for selection ops. */
static void partials(ct_graph *g, int op, int32_t a, int32_t b, double k,
                     int32_t r, int32_t p[2]) {
  p[0] = p[1] = ZERO;
  switch (op) {
    case CT_OP_ADD: p[0] = p[1] = C(g, 1); break;
    case CT_OP_SUB: p[0] = C(g, 1), p[1] = C(g, -1); break;
    case CT_OP_MUL: p[0] = b, p[1] = a; break;
    case CT_OP_DIV:
      p[0] = E2(g, CT_OP_DIV, C(g, 1), b);
      p[1] = E1(g, CT_OP_NEG, E2(g, CT_OP_DIV, r, b));
      break;
    case CT_OP_NEG: p[0] = C(g, -1); break;
    case CT_OP_SQR: p[0] = E2(g, CT_OP_MUL, C(g, 2), a); break;
    case CT_OP_POW:
      p[0] = E2(g, CT_OP_MUL, b, E2(g, CT_OP_POW, a, E2(g, CT_OP_SUB, b, C(g, 1))));
      p[1] = E2(g, CT_OP_MUL, E1(g, CT_OP_LOG, a), r);
      break;
    case CT_OP_POWI:
      p[0] = E2(g, CT_OP_MUL, C(g, k), ct_graph_emit(g, CT_OP_POWI, a, 0, 0, k - 1));
      break;
    case CT_OP_EXP: p[0] = r; break;
    case CT_OP_LOG: p[0] = E2(g, CT_OP_DIV, C(g, 1), a); break;
    case CT_OP_LOG1P:
      p[0] = E2(g, CT_OP_DIV, C(g, 1), E2(g, CT_OP_ADD, C(g, 1), a));
      break;
    case CT_OP_EXPM1: p[0] = E2(g, CT_OP_ADD, r, C(g, 1)); break;
    case CT_OP_SQRT: p[0] = E2(g, CT_OP_DIV, C(g, 0.5), r); break;
    case CT_OP_CBRT:
      p[0] = E2(g, CT_OP_DIV, C(g, 1.0 / 3.0), E1(g, CT_OP_SQR, r));
      break;
    case CT_OP_SIN: p[0] = E1(g, CT_OP_COS, a); break;
    case CT_OP_COS: p[0] = E1(g, CT_OP_NEG, E1(g, CT_OP_SIN, a)); break;
    case CT_OP_TAN: p[0] = E2(g, CT_OP_ADD, C(g, 1), E1(g, CT_OP_SQR, r)); break;
    case CT_OP_ASIN:
    case CT_OP_ACOS: {
      int32_t d = E2(g, CT_OP_DIV, C(g, 1),
                     E1(g, CT_OP_SQRT, E2(g, CT_OP_SUB, C(g, 1), E1(g, CT_OP_SQR, a))));
      p[0] = op == CT_OP_ASIN ? d : E1(g, CT_OP_NEG, d);
      break;
    }
    case CT_OP_ATAN:
      p[0] = E2(g, CT_OP_DIV, C(g, 1), E2(g, CT_OP_ADD, C(g, 1), E1(g, CT_OP_SQR, a)));
      break;
    case CT_OP_ATAN2: { /* atan2'(0, 0) = 0 */
      int32_t d = E2(g, CT_OP_ADD, E1(g, CT_OP_SQR, a), E1(g, CT_OP_SQR, b));
      int32_t at_zero = E2(g, CT_OP_EQ, d, C(g, 0));
      p[0] = ct_graph_emit(g, CT_OP_SELECT, at_zero, C(g, 0), E2(g, CT_OP_DIV, b, d), 0);
      p[1] = ct_graph_emit(g, CT_OP_SELECT, at_zero, C(g, 0),
                           E1(g, CT_OP_NEG, E2(g, CT_OP_DIV, a, d)), 0);
      break;
    }
    case CT_OP_SINH: p[0] = E1(g, CT_OP_COSH, a); break;
    case CT_OP_COSH: p[0] = E1(g, CT_OP_SINH, a); break;
    case CT_OP_TANH: p[0] = E2(g, CT_OP_SUB, C(g, 1), E1(g, CT_OP_SQR, r)); break;
    case CT_OP_ASINH:
      p[0] = E2(g, CT_OP_DIV, C(g, 1),
                E1(g, CT_OP_SQRT, E2(g, CT_OP_ADD, E1(g, CT_OP_SQR, a), C(g, 1))));
      break;
    case CT_OP_ACOSH:
      p[0] = E2(g, CT_OP_DIV, C(g, 1),
                E1(g, CT_OP_SQRT, E2(g, CT_OP_SUB, E1(g, CT_OP_SQR, a), C(g, 1))));
      break;
    case CT_OP_ATANH:
      p[0] = E2(g, CT_OP_DIV, C(g, 1), E2(g, CT_OP_SUB, C(g, 1), E1(g, CT_OP_SQR, a)));
      break;
    case CT_OP_ERF:
      p[0] = E2(g, CT_OP_MUL, C(g, 1.1283791670955126), /* 2/sqrt(pi) */
                E1(g, CT_OP_EXP, E1(g, CT_OP_NEG, E1(g, CT_OP_SQR, a))));
      break;
    case CT_OP_ABS: p[0] = E1(g, CT_OP_SIGN, a); break; /* abs'(0) = 0 */
    case CT_OP_HYPOT: { /* hypot'(0, 0) = 0 */
      int32_t at_zero = E2(g, CT_OP_EQ, r, C(g, 0));
      p[0] = ct_graph_emit(g, CT_OP_SELECT, at_zero, C(g, 0), E2(g, CT_OP_DIV, a, r), 0);
      p[1] = ct_graph_emit(g, CT_OP_SELECT, at_zero, C(g, 0), E2(g, CT_OP_DIV, b, r), 0);
      break;
    }
    default: /* const, input, sign, floor, ceil, comparisons, logic */
      break;
  }
}

/* tangent += partial * d (ZERO-aware). */
static int32_t accumulate(ct_graph *g, int32_t acc, int32_t partial, int32_t d) {
  if (partial == ZERO || d == ZERO) return acc;
  int32_t term = E2(g, CT_OP_MUL, partial, d);
  return acc == ZERO ? term : E2(g, CT_OP_ADD, acc, term);
}

/* partial * adj for the reverse sweep. An adjoint that is select(c, u, 0)
 * (or select(c, 0, u)) came through one branch of a select; the product is
 * kept inside the select, select(c, partial * u, 0), so that a NaN or inf
 * partial in the untaken branch (sqrt(x) at x < 0, say) contributes 0
 * rather than 0 * NaN: reverse mode differentiates only the taken branch,
 * like forward mode. */
static int32_t adjoint_term(ct_graph *g, int32_t partial, int32_t adj) {
  const ct_node *n = &g->nodes[adj];
  if (n->op == CT_OP_SELECT) {
    int32_t cond = n->a, u = n->b, v = n->c;
    int u_zero = g->nodes[u].op == CT_OP_CONST && g->nodes[u].k == 0;
    int v_zero = g->nodes[v].op == CT_OP_CONST && g->nodes[v].k == 0;
    if (v_zero && !u_zero)
      return ct_graph_emit(g, CT_OP_SELECT, cond, adjoint_term(g, partial, u), v, 0);
    if (u_zero && !v_zero)
      return ct_graph_emit(g, CT_OP_SELECT, cond, u, adjoint_term(g, partial, v), 0);
  }
  return E2(g, CT_OP_MUL, partial, adj);
}

static int32_t add_zero_aware(ct_graph *g, int32_t acc, int32_t term) {
  if (term == ZERO) return acc;
  return acc == ZERO ? term : E2(g, CT_OP_ADD, acc, term);
}

/* select(cond, x, y) where either may be ZERO. */
static int32_t select_zero_aware(ct_graph *g, int32_t cond, int32_t x, int32_t y) {
  if (x == ZERO && y == ZERO) return ZERO;
  return ct_graph_emit(g, CT_OP_SELECT, cond, x == ZERO ? C(g, 0) : x,
                       y == ZERO ? C(g, 0) : y, 0);
}

/* Forward sweep (declared in ir.h): tan[d*n + i] is the tangent (graph id or ZERO) of f's node
 * i in direction d; on entry set for INPUT nodes, on return for all. */
int ct_forward_sweep(ct_graph *g, const ct_fun *f, const int32_t *map,
                         int k, int32_t *tan) {
  size_t n = f->n_nodes;
  for (size_t i = 0; i < n; i++) {
    const ct_node *nd = &f->nodes[i];
    int arity = ct_op_arity(nd->op);
    if (nd->op == CT_OP_INPUT) continue;
    for (int d = 0; d < k; d++) tan[d * n + i] = ZERO;
    if (arity == 0 || ct_op_is_boolean(nd->op)) continue;
    int32_t kids[3] = {nd->a, nd->b, nd->c};
    int any = 0;
    for (int d = 0; d < k; d++)
      for (int c = 0; c < arity; c++) any |= tan[d * n + kids[c]] != ZERO;
    if (!any) continue;
    int32_t cond;
    int s1, s2;
    if (is_selection(g, nd, map, &cond, &s1, &s2)) {
      for (int d = 0; d < k; d++)
        tan[d * n + i] = select_zero_aware(g, cond, tan[d * n + kids[s1]],
                                           tan[d * n + kids[s2]]);
    } else {
      int32_t p[2];
      partials(g, nd->op, map[nd->a], arity > 1 ? map[nd->b] : 0, nd->k, map[i], p);
      for (int d = 0; d < k; d++) {
        int32_t t = accumulate(g, ZERO, p[0], tan[d * n + nd->a]);
        if (arity > 1) t = accumulate(g, t, p[1], tan[d * n + nd->b]);
        tan[d * n + i] = t;
      }
    }
    if (g->status < 0) return g->status;
  }
  return g->status;
}

/* Reverse sweep: adj[s*n + i] is the adjoint of f's node i for seed s; on
 * entry set for outputs (ZERO elsewhere), on return propagated to all. */
int ct_reverse_sweep(ct_graph *g, const ct_fun *f, const int32_t *map,
                         int m, int32_t *adj) {
  size_t n = f->n_nodes;
  for (size_t i = n; i-- > 0;) {
    const ct_node *nd = &f->nodes[i];
    int arity = ct_op_arity(nd->op);
    if (arity == 0 || ct_op_is_boolean(nd->op)) continue;
    int any = 0;
    for (int s = 0; s < m; s++) any |= adj[s * n + i] != ZERO;
    if (!any) continue;
    int32_t kids[3] = {nd->a, nd->b, nd->c};
    int32_t cond;
    int s1, s2;
    if (is_selection(g, nd, map, &cond, &s1, &s2)) {
      for (int s = 0; s < m; s++) {
        int32_t a = adj[s * n + i];
        if (a == ZERO) continue;
        int32_t *x = &adj[s * n + kids[s1]], *y = &adj[s * n + kids[s2]];
        *x = add_zero_aware(g, *x, select_zero_aware(g, cond, a, ZERO));
        *y = add_zero_aware(g, *y, select_zero_aware(g, cond, ZERO, a));
      }
    } else {
      int32_t p[2];
      partials(g, nd->op, map[nd->a], arity > 1 ? map[nd->b] : 0, nd->k, map[i], p);
      for (int s = 0; s < m; s++) {
        int32_t a = adj[s * n + i];
        if (a == ZERO) continue;
        for (int c = 0; c < arity && c < 2; c++)
          if (p[c] != ZERO)
            adj[s * n + kids[c]] = add_zero_aware(g, adj[s * n + kids[c]],
                                                  adjoint_term(g, p[c], a));
      }
    }
    if (g->status < 0) return g->status;
  }
  return g->status;
}

/* ---- Building transformed functions ---------------------------------------- */

int ct_wrt_selected(const char *const *wrt, const char *name) {
  if (!wrt) return 1;
  for (; *wrt; wrt++)
    if (strcmp(*wrt, name) == 0) return 1;
  return 0;
}

int ct_wrt_check(ct_context *ctx, const ct_fun *f, const char *const *wrt) {
  for (; wrt && *wrt; wrt++)
    if (ct_fun_in_index(f, *wrt) < 0)
      return CT_ERROR(ctx, CT_ERR_ARG, "'%s' is not an input of the function", *wrt);
  return CT_OK;
}

void ct_replay_free(ct_context *ctx, ct_replay *r) {
  for (size_t i = 0; r->in_ids && i < r->f->n_in; i++) ct_free(ctx, r->in_ids[i]);
  ct_free(ctx, r->in_ids);
  ct_free(ctx, r->map);
  ct_free(ctx, r->in_node);
  ct_free(ctx, r->in_off);
  ct_graph_free(r->g);
}

/* Creates the graph with f's inputs (same names) and replays f into it. */
int ct_replay_start(ct_context *ctx, const ct_fun *f, ct_replay *r) {
  memset(r, 0, sizeof *r);
  r->f = f;
  size_t nn = f->n_nodes ? f->n_nodes : 1, total = 0;
  r->g = ct_graph_new(ctx);
  r->in_ids = ct_calloc(ctx, f->n_in ? f->n_in : 1, sizeof *r->in_ids);
  r->map = ct_alloc(ctx, nn * sizeof *r->map);
  r->in_off = ct_alloc(ctx, (f->n_in + 1) * sizeof *r->in_off);
  if (!r->g || !r->in_ids || !r->map || !r->in_off) return CT_ERR_NOMEM;
  for (size_t i = 0; i < f->n_in; i++) {
    r->in_off[i] = total;
    total += f->in[i].n;
    r->in_ids[i] = ct_alloc(ctx, (f->in[i].n ? f->in[i].n : 1) * sizeof(int32_t));
    if (!r->in_ids[i]) return CT_ERR_NOMEM;
    CT_CHECK(ctx, ct_graph_add_input(r->g, f->in[i].name, f->in[i].n, r->in_ids[i]));
  }
  r->in_off[f->n_in] = total;
  r->in_node = ct_alloc(ctx, (total ? total : 1) * sizeof *r->in_node);
  if (!r->in_node) return CT_ERR_NOMEM;
  for (size_t j = 0; j < total; j++) r->in_node[j] = -1;
  for (size_t i = 0; i < f->n_nodes; i++)
    if (f->nodes[i].op == CT_OP_INPUT)
      r->in_node[r->in_off[f->nodes[i].a] + (size_t)f->nodes[i].b] = (int32_t)i;
  return ct_graph_replay(r->g, f, r->in_ids, r->map);
}

/* Adds f's outputs (same names) to the graph. */
int ct_replay_add_outputs(ct_replay *r, int32_t *tmp) {
  const ct_fun *f = r->f;
  for (size_t o = 0; o < f->n_out; o++) {
    for (size_t j = 0; j < f->out[o].n; j++) tmp[j] = r->map[f->out[o].ids[j]];
    CT_CHECK(r->g->ctx, ct_graph_add_output(r->g, f->out[o].name, f->out[o].n, tmp));
  }
  return CT_OK;
}

size_t ct_fun_max_io_size(const ct_fun *f) {
  size_t m = 1;
  for (size_t i = 0; i < f->n_in; i++) m = f->in[i].n > m ? f->in[i].n : m;
  for (size_t o = 0; o < f->n_out; o++) m = f->out[o].n > m ? f->out[o].n : m;
  return m;
}

/* Writes prefix + name into buf (names are truncated at 255 bytes). */
static const char *prefixed(char *buf, size_t size, const char *prefix,
                            const char *name) {
  snprintf(buf, size, "%s%s", prefix, name);
  return buf;
}

/* Builds one sweep's result with `count` directions or seeds into a
 * replay of f and finalizes it. The builder gets count * n_nodes ids of
 * sweep state and count * (largest io size) ids of scratch. */
typedef int (*sweep_builder)(ct_replay *r, int count, const char *const *wrt,
                             int32_t *state, int32_t *tmp);

static int sweep_transform(ct_context *ctx, const ct_fun *f, int count,
                           const char *const *wrt, sweep_builder build,
                           ct_fun **out) {
  CT_CHECK(ctx, ct_wrt_check(ctx, f, wrt));
  ct_replay r;
  int rc = ct_replay_start(ctx, f, &r);
  size_t n = f->n_nodes ? f->n_nodes : 1;
  int32_t *state = rc < 0 ? NULL : ct_alloc(ctx, (size_t)count * n * sizeof *state);
  int32_t *tmp = rc < 0 ? NULL
                        : ct_alloc(ctx, (size_t)count * ct_fun_max_io_size(f) * sizeof *tmp);
  if (rc == CT_OK && (!state || !tmp)) rc = CT_ERR_NOMEM;
  if (rc == CT_OK) rc = build(&r, count, wrt, state, tmp);
  if (rc == CT_OK) rc = ct_graph_finalize(r.g, out);
  ct_free(ctx, state);
  ct_free(ctx, tmp);
  ct_replay_free(ctx, &r);
  if (rc < 0) return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  return CT_OK;
}

static int jvp_build(ct_replay *r, int k, const char *const *wrt, int32_t *tan,
                     int32_t *tmp) {
  ct_graph *g = r->g;
  const ct_fun *f = r->f;
  size_t n = f->n_nodes;
  char name[256];
  for (size_t i = 0; i < f->n_in; i++) {
    size_t ni = f->in[i].n;
    int sel = ct_wrt_selected(wrt, f->in[i].name);
    if (sel)
      CT_CHECK(g->ctx, ct_graph_add_input(g, prefixed(name, sizeof name, "d_", f->in[i].name),
                                          (size_t)k * ni, tmp));
    for (size_t j = 0; j < ni; j++) {
      int32_t node = r->in_node[r->in_off[i] + j];
      if (node < 0) continue;
      for (int d = 0; d < k; d++) tan[d * n + node] = sel ? tmp[d * ni + j] : ZERO;
    }
  }
  CT_CHECK(g->ctx, ct_forward_sweep(g, f, r->map, k, tan));
  CT_CHECK(g->ctx, ct_replay_add_outputs(r, tmp));
  for (size_t o = 0; o < f->n_out; o++) {
    size_t no = f->out[o].n;
    for (int d = 0; d < k; d++)
      for (size_t j = 0; j < no; j++) {
        int32_t t = tan[d * n + f->out[o].ids[j]];
        tmp[d * no + j] = t == ZERO ? C(g, 0) : t;
      }
    CT_CHECK(g->ctx, ct_graph_add_output(g, prefixed(name, sizeof name, "d_", f->out[o].name),
                                         (size_t)k * no, tmp));
  }
  return g->status;
}

int ct_fun_jvp(ct_context *ctx, const ct_fun *f, int k, const char *const *wrt,
               ct_fun **out) {
  *out = NULL;
  if (k < 1) return CT_ERROR(ctx, CT_ERR_ARG, "jvp needs k >= 1 directions, got %d", k);
  return sweep_transform(ctx, f, k, wrt, jvp_build, out);
}

static int vjp_build(ct_replay *r, int m, const char *const *wrt, int32_t *adj,
                     int32_t *tmp) {
  ct_graph *g = r->g;
  const ct_fun *f = r->f;
  size_t n = f->n_nodes;
  char name[256];
  for (size_t i = 0; i < (size_t)m * n; i++) adj[i] = ZERO;
  for (size_t o = 0; o < f->n_out; o++) {
    size_t no = f->out[o].n;
    CT_CHECK(g->ctx, ct_graph_add_input(g, prefixed(name, sizeof name, "bar_", f->out[o].name),
                                        (size_t)m * no, tmp));
    for (int s = 0; s < m; s++)
      for (size_t j = 0; j < no; j++) {
        int32_t *a = &adj[s * n + f->out[o].ids[j]];
        *a = add_zero_aware(g, *a, tmp[s * no + j]);
      }
  }
  CT_CHECK(g->ctx, ct_reverse_sweep(g, f, r->map, m, adj));
  CT_CHECK(g->ctx, ct_replay_add_outputs(r, tmp));
  for (size_t i = 0; i < f->n_in; i++) {
    if (!ct_wrt_selected(wrt, f->in[i].name)) continue;
    size_t ni = f->in[i].n;
    for (int s = 0; s < m; s++)
      for (size_t j = 0; j < ni; j++) {
        int32_t node = r->in_node[r->in_off[i] + j];
        int32_t a = node < 0 ? ZERO : adj[s * n + node];
        tmp[s * ni + j] = a == ZERO ? C(g, 0) : a;
      }
    CT_CHECK(g->ctx, ct_graph_add_output(g, prefixed(name, sizeof name, "bar_", f->in[i].name),
                                         (size_t)m * ni, tmp));
  }
  return g->status;
}

int ct_fun_vjp(ct_context *ctx, const ct_fun *f, int m, const char *const *wrt,
               ct_fun **out) {
  *out = NULL;
  if (m < 1) return CT_ERROR(ctx, CT_ERR_ARG, "vjp needs m >= 1 seeds, got %d", m);
  return sweep_transform(ctx, f, m, wrt, vjp_build, out);
}

/* Replays f keeping only the outputs listed in `names`, renamed to
 * `renames` (or kept as they are when renames is NULL). */
static int select_renamed(ct_context *ctx, const ct_fun *f, size_t count,
                          const char *const *names, const char *const *renames,
                          ct_fun **out) {
  *out = NULL;
  for (size_t i = 0; i < count; i++)
    if (ct_fun_out_index(f, names[i]) < 0)
      return CT_ERROR(ctx, CT_ERR_ARG, "'%s' is not an output of the function", names[i]);
  ct_replay r;
  int rc = ct_replay_start(ctx, f, &r);
  int32_t *tmp = rc < 0 ? NULL : ct_alloc(ctx, ct_fun_max_io_size(f) * sizeof *tmp);
  if (rc == CT_OK && !tmp) rc = CT_ERR_NOMEM;
  for (size_t i = 0; rc == CT_OK && i < count; i++) {
    const ct_io *o = &f->out[ct_fun_out_index(f, names[i])];
    for (size_t j = 0; j < o->n; j++) tmp[j] = r.map[o->ids[j]];
    rc = ct_graph_add_output(r.g, renames ? renames[i] : names[i], o->n, tmp);
  }
  if (rc == CT_OK) rc = ct_graph_finalize(r.g, out);
  ct_free(ctx, tmp);
  ct_replay_free(ctx, &r);
  if (rc < 0) return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  return CT_OK;
}

int ct_fun_select_outputs(ct_context *ctx, const ct_fun *f,
                          const char *const *names, ct_fun **out) {
  size_t count = 0;
  while (names && names[count]) count++;
  return select_renamed(ctx, f, count, names, NULL, out);
}

char **ct_wrt_names(ct_context *ctx, const ct_fun *f, const char *const *wrt,
                    const char *prefix, size_t *count) {
  size_t n = 0, bytes = 0;
  for (size_t i = 0; i < f->n_in; i++)
    if (ct_wrt_selected(wrt, f->in[i].name)) {
      n++;
      bytes += strlen(prefix) + strlen(f->in[i].name) + 1;
    }
  char **names = ct_alloc(ctx, (n + 1) * sizeof *names + bytes);
  if (!names) return NULL;
  char *p = (char *)(names + n + 1);
  size_t k = 0;
  for (size_t i = 0; i < f->n_in; i++)
    if (ct_wrt_selected(wrt, f->in[i].name)) {
      names[k++] = p;
      p += sprintf(p, "%s%s", prefix, f->in[i].name) + 1;
    }
  names[k] = NULL;
  *count = n;
  return names;
}

int ct_fun_hvp(ct_context *ctx, const ct_fun *f, const char *const *wrt,
               ct_fun **out) {
  *out = NULL;
  CT_CHECK(ctx, ct_wrt_check(ctx, f, wrt));
  ct_fun *grad = NULL, *tangent = NULL;
  size_t n_sel = 0;
  char **plain = ct_wrt_names(ctx, f, wrt, "", &n_sel);
  char **from = ct_wrt_names(ctx, f, wrt, "d_bar_", &n_sel);
  char **to = ct_wrt_names(ctx, f, wrt, "hv_", &n_sel);
  int rc = plain && from && to ? CT_OK : CT_ERR_NOMEM;
  if (rc == CT_OK) rc = ct_fun_vjp(ctx, f, 1, wrt, &grad);
  if (rc == CT_OK) rc = ct_fun_jvp(ctx, grad, 1, (const char *const *)plain, &tangent);
  if (rc == CT_OK)
    rc = select_renamed(ctx, tangent, n_sel, (const char *const *)from,
                        (const char *const *)to, out);
  ct_fun_free(grad);
  ct_fun_free(tangent);
  ct_free(ctx, plain);
  ct_free(ctx, from);
  ct_free(ctx, to);
  if (rc < 0) return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  return CT_OK;
}
