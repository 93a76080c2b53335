/* Private IR of the AD core: nodes, graphs, finalized functions.
 *
 * A node is an operation with up to three child node ids (a, b, c) and a
 * number k. Node ids of a graph only grow, and a node's children always
 * have smaller ids, so id order is a topological order. */
#ifndef COTANGENT_AD_IR_H
#define COTANGENT_AD_IR_H

#include <math.h>
#include <stdint.h>

#include "cotangent/ad.h"

/* X(ENUM, name, arity): name is the ct_<name> / C spelling used in messages
 * and generated code. CONST keeps its value in k; INPUT reads component b
 * of input a; POWI raises a to the integer k. */
#define CT_OP_LIST(X)       \
  X(CONST, const, 0)        \
  X(INPUT, input, 0)        \
  X(ADD, add, 2)            \
  X(SUB, sub, 2)            \
  X(MUL, mul, 2)            \
  X(DIV, div, 2)            \
  X(NEG, neg, 1)            \
  X(SQR, sqr, 1)            \
  X(POW, pow, 2)            \
  X(POWI, powi, 1)          \
  X(EXP, exp, 1)            \
  X(LOG, log, 1)            \
  X(LOG1P, log1p, 1)        \
  X(EXPM1, expm1, 1)        \
  X(SQRT, sqrt, 1)          \
  X(CBRT, cbrt, 1)          \
  X(SIN, sin, 1)            \
  X(COS, cos, 1)            \
  X(TAN, tan, 1)            \
  X(ASIN, asin, 1)          \
  X(ACOS, acos, 1)          \
  X(ATAN, atan, 1)          \
  X(ATAN2, atan2, 2)        \
  X(SINH, sinh, 1)          \
  X(COSH, cosh, 1)          \
  X(TANH, tanh, 1)          \
  X(ASINH, asinh, 1)        \
  X(ACOSH, acosh, 1)        \
  X(ATANH, atanh, 1)        \
  X(ERF, erf, 1)            \
  X(ABS, abs, 1)            \
  X(SIGN, sign, 1)          \
  X(MIN, min, 2)            \
  X(MAX, max, 2)            \
  X(FLOOR, floor, 1)        \
  X(CEIL, ceil, 1)          \
  X(HYPOT, hypot, 2)        \
  X(LT, lt, 2)              \
  X(LE, le, 2)              \
  X(GT, gt, 2)              \
  X(GE, ge, 2)              \
  X(EQ, eq, 2)              \
  X(NE, ne, 2)              \
  X(AND, and, 2)            \
  X(OR, or, 2)              \
  X(NOT, not, 1)            \
  X(SELECT, select, 3)

typedef enum ct_op {
#define CT_OP_ENUM_(e, name, arity) CT_OP_##e,
  CT_OP_LIST(CT_OP_ENUM_)
#undef CT_OP_ENUM_
  CT_OP_COUNT
} ct_op;

typedef struct ct_node {
  uint8_t op;
  int32_t a, b, c;
  double k;
} ct_node;

/* Arity and name of an op. */
int ct_op_arity(int op);
const char *ct_op_name(int op);
/* 1 for comparisons and logical ops (whose values are 0 or 1 and whose
 * derivatives are zero). */
int ct_op_is_boolean(int op);

/* The value of one operation. min/max return the first argument on ties
 * and propagate NaN from either argument; sign(0) = 0. */
static inline double ct_op_apply(int op, double a, double b, double c,
                                 double k) {
  switch (op) {
    case CT_OP_CONST: return k;
    case CT_OP_ADD: return a + b;
    case CT_OP_SUB: return a - b;
    case CT_OP_MUL: return a * b;
    case CT_OP_DIV: return a / b;
    case CT_OP_NEG: return -a;
    case CT_OP_SQR: return a * a;
    case CT_OP_POW: return pow(a, b);
    case CT_OP_POWI: return pow(a, k);
    case CT_OP_EXP: return exp(a);
    case CT_OP_LOG: return log(a);
    case CT_OP_LOG1P: return log1p(a);
    case CT_OP_EXPM1: return expm1(a);
    case CT_OP_SQRT: return sqrt(a);
    case CT_OP_CBRT: return cbrt(a);
    case CT_OP_SIN: return sin(a);
    case CT_OP_COS: return cos(a);
    case CT_OP_TAN: return tan(a);
    case CT_OP_ASIN: return asin(a);
    case CT_OP_ACOS: return acos(a);
    case CT_OP_ATAN: return atan(a);
    case CT_OP_ATAN2: return atan2(a, b);
    case CT_OP_SINH: return sinh(a);
    case CT_OP_COSH: return cosh(a);
    case CT_OP_TANH: return tanh(a);
    case CT_OP_ASINH: return asinh(a);
    case CT_OP_ACOSH: return acosh(a);
    case CT_OP_ATANH: return atanh(a);
    case CT_OP_ERF: return erf(a);
    case CT_OP_ABS: return fabs(a);
    case CT_OP_SIGN: return a > 0 ? 1.0 : a < 0 ? -1.0 : a; /* keeps 0, NaN */
    case CT_OP_MIN: return (a <= b || a != a) ? a : b;
    case CT_OP_MAX: return (a >= b || a != a) ? a : b;
    case CT_OP_FLOOR: return floor(a);
    case CT_OP_CEIL: return ceil(a);
    case CT_OP_HYPOT: return hypot(a, b);
    case CT_OP_LT: return a < b;
    case CT_OP_LE: return a <= b;
    case CT_OP_GT: return a > b;
    case CT_OP_GE: return a >= b;
    case CT_OP_EQ: return a == b;
    case CT_OP_NE: return a != b;
    case CT_OP_AND: return a != 0 && b != 0;
    case CT_OP_OR: return a != 0 || b != 0;
    case CT_OP_NOT: return a == 0;
    case CT_OP_SELECT: return a != 0 ? b : c;
    default: return NAN;
  }
}

/* A named input or output vector: its node ids. */
typedef struct ct_io {
  char *name;
  size_t n;
  int32_t *ids;
} ct_io;

/* A guard: node `id` (a boolean) had value `expected` when traced. */
typedef struct ct_guard {
  int32_t id;
  uint8_t expected;
} ct_guard;

struct ct_graph {
  ct_context *ctx;
  ct_node *nodes;
  size_t n_nodes, cap_nodes;
  double *vals;        /* value of each node at the traced point (or NaN) */
  int32_t *table;      /* open-addressing hash table of node ids, -1 empty */
  size_t table_cap;    /* power of two */
  ct_io *in, *out;
  size_t n_in, n_out;
  ct_guard *guards;
  size_t n_guards, cap_guards;
  int status;          /* sticky: first error while tracing */
};

/* One interpreter instruction: dst = op(a, b, c; k) on registers. LOAD
 * reads component b of input a; STORE writes register a to component b of
 * output dst; GUARD checks register a against k. */
enum { CT_INSTR_LOAD = CT_OP_COUNT, CT_INSTR_STORE, CT_INSTR_GUARD };
typedef struct ct_instr {
  uint8_t op;
  uint32_t dst, a, b, c;
  double k;
} ct_instr;

/* Compiled code attached by a back end (the JIT). Evaluates all outputs at
 * one point; returns the number of flipped guards. */
typedef int (*ct_compiled_fn)(const double *const *in, double *const *out,
                              double *work);

struct ct_fun {
  ct_context *ctx;     /* the creator's allocator; freed through it */
  ct_node *nodes;      /* live nodes in topological order, ids renumbered */
  size_t n_nodes;
  ct_io *in, *out;
  size_t n_in, n_out;
  ct_guard *guards;
  size_t n_guards;
  ct_instr *code;      /* interpreter program */
  size_t n_code, n_regs;
  ct_compiled_fn compiled; /* NULL: interpreter */
  size_t compiled_work;    /* doubles the compiled code needs */
  void *dl_handle;         /* dlopen handle of compiled code */
};

/* ---- Internal graph API used by transforms -------------------------------- */

/* Records op(a, b, c; k) with hash-consing, folding and simplification;
 * returns the node id or -1 (sticky error set). Children are node ids. */
int32_t ct_graph_emit(ct_graph *g, int op, int32_t a, int32_t b, int32_t c,
                      double k);
/* Adds an input vector without values and writes its node ids. */
int ct_graph_add_input(ct_graph *g, const char *name, size_t n, int32_t *ids);
/* Adds an output vector from node ids (copied). */
int ct_graph_add_output(ct_graph *g, const char *name, size_t n,
                        const int32_t *ids);
/* Adds a guard on node id. */
int ct_graph_add_guard(ct_graph *g, int32_t id, int expected);
/* Sets the sticky error (keeps the first). Returns the graph's status. */
int ct_graph_fail(ct_graph *g, int status);

/* Replays f's nodes into g. `input_ids[i]` gives the graph node ids to use
 * for f's input i (its components). Writes the graph id of each of f's
 * nodes to map (f->n_nodes entries). Copies f's guards. */
int ct_graph_replay(ct_graph *g, const ct_fun *f, int32_t *const *input_ids,
                    int32_t *map);

/* Unloads compiled code attached to f (by the JIT), if any. */
void ct_fun_release_compiled(ct_fun *f);

/* ---- Derivative sweeps, shared by the transforms --------------------------- */

#define CT_ZERO (-1) /* a structurally zero tangent or adjoint */

/* Is input `name` selected by the NULL-terminated list `wrt` (NULL: all)? */
int ct_wrt_selected(const char *const *wrt, const char *name);
/* CT_ERR_ARG naming the first entry of `wrt` that is not an input of f. */
int ct_wrt_check(ct_context *ctx, const ct_fun *f, const char *const *wrt);

/* "<prefix><name>" for each selected input, in order, as a NULL-terminated
 * array allocated in one block (free with ct_free); *count gets their
 * number. NULL on no memory. */
char **ct_wrt_names(ct_context *ctx, const ct_fun *f, const char *const *wrt,
                    const char *prefix, size_t *count);

/* A graph holding a replay of f, with f's inputs under the same names. */
typedef struct ct_replay {
  ct_graph *g;
  const ct_fun *f;
  int32_t **in_ids;  /* graph ids of f's input components */
  int32_t *map;      /* f node -> graph id */
  int32_t *in_node;  /* f node of each input component (flat index), -1 if dead */
  size_t *in_off;    /* flat offset of each input; in_off[n_in] = total */
} ct_replay;

int ct_replay_start(ct_context *ctx, const ct_fun *f, ct_replay *r);
void ct_replay_free(ct_context *ctx, ct_replay *r);
/* Adds f's outputs, under their names, to the replay graph. tmp has room
 * for ct_fun_max_io_size(f) ids. */
int ct_replay_add_outputs(ct_replay *r, int32_t *tmp);
/* Largest input or output size of f (at least 1). */
size_t ct_fun_max_io_size(const ct_fun *f);

/* Forward sweep over f replayed into g (map: f node -> graph id):
 * tan[d*n + i] (n = f->n_nodes) is the tangent of f's node i in direction d
 * as a graph id or CT_ZERO. On entry it must be set for INPUT nodes (graph
 * inputs or constants as seeds); on return it is set for all nodes. */
int ct_forward_sweep(ct_graph *g, const ct_fun *f, const int32_t *map, int k,
                     int32_t *tan);
/* Reverse sweep: adj[s*n + i] is the adjoint of f's node i for seed s. On
 * entry set for the nodes that outputs seed (CT_ZERO elsewhere); on return
 * accumulated into every node, INPUT nodes included. */
int ct_reverse_sweep(ct_graph *g, const ct_fun *f, const int32_t *map, int m,
                     int32_t *adj);

/* Builds the interpreter program of a function whose nodes, inputs, outputs
 * and guards are set. */
int ct_fun_build_code(ct_fun *f);

#endif /* COTANGENT_AD_IR_H */
