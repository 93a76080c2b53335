/* Cotangent AD core: traced functions and their derivatives.
 *
 * A function (ct_fun) is a DAG of scalar operations over named vector inputs
 * and outputs. It is built by tracing: C code written with ct_var handles
 * records operations on a ct_graph as it runs, so loops and branches in the
 * C code are followed as executed. Nodes are hash-consed, constants fold and
 * trivial identities simplify as they are recorded; dead nodes are dropped by
 * ct_graph_finalize, which turns the graph into an immutable ct_fun.
 *
 * Transforms (jvp, vjp, hvp, sparse Jacobians, ...) take a ct_fun and return
 * a new ct_fun in the same IR, so they compose to any order.
 *
 * Errors during tracing are sticky: an operation that fails (out of memory,
 * handles from two graphs) returns an invalid ct_var, every later operation
 * on it does too, and ct_graph_finalize reports the first failure. Tracing
 * code therefore needs no error checks of its own. */
#ifndef COTANGENT_AD_H
#define COTANGENT_AD_H

#include <stddef.h>
#include <stdint.h>

#include "cotangent/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ct_graph ct_graph;
typedef struct ct_fun ct_fun;

/* A traced scalar: a node of a graph. id < 0 marks an invalid handle. */
typedef struct ct_var {
  ct_graph *g;
  int32_t id;
} ct_var;

/* ---- Graphs (tracing) ---------------------------------------------------- */

/* A new, empty graph. NULL on no memory (error recorded in ctx). */
ct_graph *ct_graph_new(ct_context *ctx);
/* Frees a graph (NULL is a no-op). Functions finalized from it stay valid. */
void ct_graph_free(ct_graph *g);

/* Declares an input vector `name` of `n` components and writes its n
 * handles to `vars`. `values` (n numbers) gives the point the code is traced
 * at, needed only when the traced code reads values through ct_value; pass
 * NULL otherwise (ct_value then fails). Names must be unique among inputs. */
int ct_graph_input(ct_graph *g, const char *name, size_t n,
                   const double *values, ct_var *vars);
/* Declares an output vector `name` with the given n handles. */
int ct_graph_output(ct_graph *g, const char *name, size_t n,
                    const ct_var *vars);
/* Turns the graph into an immutable function: drops dead nodes, orders the
 * rest topologically and prepares the interpreter. Reports any sticky
 * tracing error. The graph may be freed afterwards. */
int ct_graph_finalize(ct_graph *g, ct_fun **out);
/* The first tracing error (CT_OK if none), message in the context. */
int ct_graph_status(const ct_graph *g);
/* Number of nodes recorded so far (after hash-consing and folding). */
size_t ct_graph_n_nodes(const ct_graph *g);

/* ---- Operations ---------------------------------------------------------- */

ct_var ct_const(ct_graph *g, double c);
/* The value of `v` at the traced point. If `v` is a comparison or a logical
 * combination of comparisons, also records a guard: evaluating the finished
 * function where this condition differs returns CT_RETRACE. NaN on an
 * invalid handle or when the inputs were declared without values. */
double ct_value(ct_var v);
/* ct_value(cond) != 0, recording the guard: for `if (ct_branch(ct_lt(x, y)))`. */
int ct_branch(ct_var cond);

ct_var ct_add(ct_var a, ct_var b);
ct_var ct_sub(ct_var a, ct_var b);
ct_var ct_mul(ct_var a, ct_var b);
ct_var ct_div(ct_var a, ct_var b);
ct_var ct_neg(ct_var a);
ct_var ct_addc(ct_var a, double c);
ct_var ct_mulc(ct_var a, double c);
ct_var ct_subc(double c, ct_var a); /* c - a */
ct_var ct_divc(double c, ct_var a); /* c / a */
ct_var ct_sqr(ct_var a);
ct_var ct_pow(ct_var a, ct_var b);  /* a^b, real exponent */
ct_var ct_powc(ct_var a, double b); /* a^b; integer b becomes ct_powi */
ct_var ct_powi(ct_var a, int n);    /* a^n, integer exponent */
ct_var ct_exp(ct_var a);
ct_var ct_log(ct_var a);
ct_var ct_log1p(ct_var a);
ct_var ct_expm1(ct_var a);
ct_var ct_sqrt(ct_var a);
ct_var ct_cbrt(ct_var a);
ct_var ct_sin(ct_var a);
ct_var ct_cos(ct_var a);
ct_var ct_tan(ct_var a);
ct_var ct_asin(ct_var a);
ct_var ct_acos(ct_var a);
ct_var ct_atan(ct_var a);
ct_var ct_atan2(ct_var y, ct_var x);
ct_var ct_sinh(ct_var a);
ct_var ct_cosh(ct_var a);
ct_var ct_tanh(ct_var a);
ct_var ct_asinh(ct_var a);
ct_var ct_acosh(ct_var a);
ct_var ct_atanh(ct_var a);
ct_var ct_erf(ct_var a);
ct_var ct_abs(ct_var a);
ct_var ct_sign(ct_var a);
ct_var ct_min(ct_var a, ct_var b);
ct_var ct_max(ct_var a, ct_var b);
ct_var ct_floor(ct_var a);
ct_var ct_ceil(ct_var a);
ct_var ct_hypot(ct_var a, ct_var b);
/* Comparisons and logic give 1.0 (true) or 0.0 (false). */
ct_var ct_lt(ct_var a, ct_var b);
ct_var ct_le(ct_var a, ct_var b);
ct_var ct_gt(ct_var a, ct_var b);
ct_var ct_ge(ct_var a, ct_var b);
ct_var ct_eq(ct_var a, ct_var b);
ct_var ct_ne(ct_var a, ct_var b);
ct_var ct_and(ct_var a, ct_var b);
ct_var ct_or(ct_var a, ct_var b);
ct_var ct_not(ct_var a);
/* cond != 0 ? a : b. Both branches are kept in the function; derivatives
 * follow only the taken branch. */
ct_var ct_select(ct_var cond, ct_var a, ct_var b);

/* ---- Functions ----------------------------------------------------------- */

/* Calls f inside the trace of g (function composition): in[i] holds the
 * ct_fun_in_size(f, i) variables of g for f's input i, in f's input order;
 * out[j] receives ct_fun_out_size(f, j) variables for f's output j (out or
 * out[j] NULL: skipped). f's operations are recorded into g, hash-consed
 * with what g already holds, and its guards are carried over. Returns
 * CT_OK or the graph's (sticky) error: CT_ERR_ARG for a missing input or a
 * variable of another graph. */
int ct_fun_call(ct_graph *g, const ct_fun *f, const ct_var *const *in,
                ct_var *const *out);


void ct_fun_free(ct_fun *f);
size_t ct_fun_n_in(const ct_fun *f);
size_t ct_fun_n_out(const ct_fun *f);
const char *ct_fun_in_name(const ct_fun *f, size_t i);
const char *ct_fun_out_name(const ct_fun *f, size_t i);
size_t ct_fun_in_size(const ct_fun *f, size_t i);
size_t ct_fun_out_size(const ct_fun *f, size_t i);
/* Index of the input/output called `name`, or -1. */
long ct_fun_in_index(const ct_fun *f, const char *name);
long ct_fun_out_index(const ct_fun *f, const char *name);
/* Number of operations (nodes) in the function. */
size_t ct_fun_n_nodes(const ct_fun *f);
/* Number of guards recorded while tracing. */
size_t ct_fun_n_guards(const ct_fun *f);

/* Doubles of workspace one evaluation needs (caller-provided, so that one
 * function can be evaluated from several threads at once). Ask again after
 * ct_fun_jit: compiled code may need a different amount. */
size_t ct_fun_work_size(const ct_fun *f);

/* Evaluates f: in[i] points to ct_fun_in_size(f, i) numbers, out[i] to
 * ct_fun_out_size(f, i) numbers (out[i] may be NULL to skip that output).
 * `work` holds ct_fun_work_size(f) doubles. Returns CT_OK, or CT_RETRACE
 * when a guard recorded while tracing has flipped at this point (outputs
 * are then those of the traced branch: re-trace to follow the new one). */
int ct_fun_eval(ct_context *ctx, const ct_fun *f, const double *const *in,
                double *const *out, double *work);

/* Evaluates f at `npoints` points: in[i] holds npoints consecutive input
 * vectors (point-major), out[i] likewise. `work` holds
 * ct_fun_work_size_batch(f, npoints) doubles. CT_RETRACE if a guard flips at
 * any point. */
size_t ct_fun_work_size_batch(const ct_fun *f, size_t npoints);
int ct_fun_eval_batch(ct_context *ctx, const ct_fun *f, size_t npoints,
                      const double *const *in, double *const *out,
                      double *work);

/* ---- Transforms ---------------------------------------------------------- */
/* `wrt` selects inputs by name (NULL-terminated list); NULL means all. */

/* Tangent mode with k directions. The result has f's inputs, then one
 * tangent input "d_<name>" of k*n numbers per selected input (direction j at
 * [j*n, (j+1)*n)); f's outputs, then one tangent output "d_<name>" of k*n
 * numbers per output. */
int ct_fun_jvp(ct_context *ctx, const ct_fun *f, int k,
               const char *const *wrt, ct_fun **out);

/* Adjoint mode with m seeds. The result has f's inputs, then one seed input
 * "bar_<name>" of m*n numbers per output of f; f's outputs, then one output
 * "bar_<name>" of m*n numbers per selected input: seed j times the
 * Jacobian. */
int ct_fun_vjp(ct_context *ctx, const ct_fun *f, int m,
               const char *const *wrt, ct_fun **out);

/* Hessian-vector product by forward over reverse. Inputs: f's inputs, then
 * "bar_<out>" (one weight vector per output: the Hessian is that of
 * sum_i w_i f_i), then "d_<in>" directions for the selected inputs.
 * Outputs: "hv_<in>" = H v for each selected input. */
int ct_fun_hvp(ct_context *ctx, const ct_fun *f, const char *const *wrt,
               ct_fun **out);

/* The function with only the named outputs (NULL-terminated), dead nodes
 * dropped. */
int ct_fun_select_outputs(ct_context *ctx, const ct_fun *f,
                          const char *const *names, ct_fun **out);

/* ---- Sparsity and sparse derivatives ------------------------------------- */

/* A sparsity pattern in compressed sparse column form: the row indices of
 * column j are rowind[colptr[j] .. colptr[j+1]), sorted. */
typedef struct ct_sparsity {
  size_t nrows, ncols, nnz;
  size_t *colptr; /* ncols + 1 */
  size_t *rowind; /* nnz */
} ct_sparsity;

void ct_sparsity_free(ct_context *ctx, ct_sparsity *s);

/* Structural Jacobian sparsity: rows are all outputs of f concatenated in
 * order, columns the selected inputs concatenated. */
int ct_fun_jac_sparsity(ct_context *ctx, const ct_fun *f,
                        const char *const *wrt, ct_sparsity **out);
/* Structural sparsity of the Hessian of sum_i f_i with respect to the
 * selected inputs (symmetric, both triangles). */
int ct_fun_hess_sparsity(ct_context *ctx, const ct_fun *f,
                         const char *const *wrt, ct_sparsity **out);

/* Jacobian of f (all outputs concatenated, by rows) with respect to the
 * selected inputs (concatenated, by columns), by graph coloring: column
 * coloring with compressed JVPs or row coloring with compressed VJPs,
 * whichever needs fewer colors (the choice is logged at info level). The
 * seeds are constants folded into the IR. `jac` has f's inputs and one
 * output "jac" with the nonzeros in the CSC order of `pattern`. */
int ct_fun_sparse_jac(ct_context *ctx, const ct_fun *f,
                      const char *const *wrt, ct_fun **jac,
                      ct_sparsity **pattern);
/* The dense Jacobian: output "jac" of nrows*ncols numbers, column-major. */
int ct_fun_dense_jac(ct_context *ctx, const ct_fun *f,
                     const char *const *wrt, ct_fun **jac);
/* Hessian of sum_i w_i f_i with respect to the selected inputs, by star
 * coloring and compressed Hessian-vector products. `hess` has f's inputs,
 * then "bar_<out>" weights, and one output "hess" with the nonzeros (both
 * triangles) in the CSC order of `pattern`. */
int ct_fun_sparse_hess(ct_context *ctx, const ct_fun *f,
                       const char *const *wrt, ct_fun **hess,
                       ct_sparsity **pattern);
/* The same pattern in compressed sparse row form: row i's column indices
 * are colind[rowptr[i] .. rowptr[i+1]), and csc_pos[q] is the CSC position
 * of the q-th CSR entry (to read values stored in CSC order). Arrays are
 * allocated through the context; free them with ct_free. */
int ct_sparsity_to_csr(ct_context *ctx, const ct_sparsity *s, size_t **rowptr,
                       size_t **colind, size_t **csc_pos);

/* ---- Back ends ------------------------------------------------------------ */

typedef enum ct_backend { CT_BACKEND_INTERPRETER = 0, CT_BACKEND_JIT = 1 } ct_backend;

typedef struct ct_jit_options {
  const char *cc;       /* compiler; NULL: $CC, else "cc" */
  const char *cflags;   /* NULL: "-O2", or "-O1" for functions of more than
                           50,000 operations (half the compile time at about
                           the same speed); -fPIC -shared are always added */
  size_t max_chunk;     /* statements per generated C function; 0: 5000 */
  size_t max_ops;       /* functions with more operations stay on the
                           interpreter (logged at info level): the system
                           compiler's time and memory grow faster than the
                           code; 0: CT_JIT_MAX_OPS_DEFAULT */
} ct_jit_options;
#define CT_JIT_MAX_OPS_DEFAULT ((size_t)250000)

/* Compiles f to machine code through generated C and the system compiler
 * and attaches it, so that ct_fun_eval runs it. The shared object is cached
 * in the context's cache folder under a hash of the IR, the compiler and
 * the flags. If no compiler is found or compiling fails, f stays on the
 * interpreter, one warning is logged and CT_OK is returned: check
 * ct_fun_backend. Not thread-safe against concurrent evaluation of f. */
int ct_fun_jit(ct_context *ctx, ct_fun *f, const ct_jit_options *opts);
ct_backend ct_fun_backend(const ct_fun *f);

/* Writes standalone C for f: `c_path` defines `int NAME(const double *const
 * *in, double *const *out, double *work)` and `size_t NAME_work_size(void)`
 * (and the input/output names and sizes as static tables), `h_path` declares
 * them. The code needs only <math.h>: users ship it without the library. */
int ct_fun_codegen(ct_context *ctx, const ct_fun *f, const char *name,
                   const char *c_path, const char *h_path);

#ifdef __cplusplus
}
#endif

#endif /* COTANGENT_AD_H */
