/* Finalized functions: accessors, the interpreter program (registers reused
 * by liveness) and evaluation, one point or a batch. */
#include <dlfcn.h>
#include <string.h>

#include "ir.h"

void ct_fun_release_compiled(ct_fun *f) {
  if (f->dl_handle) dlclose(f->dl_handle);
  f->dl_handle = NULL;
  f->compiled = NULL;
  f->compiled_work = 0;
}

void ct_fun_free(ct_fun *f) {
  if (!f) return;
  ct_context *ctx = f->ctx;
  for (size_t i = 0; f->in && i < f->n_in; i++) {
    ct_free(ctx, f->in[i].name);
    ct_free(ctx, f->in[i].ids);
  }
  for (size_t i = 0; f->out && i < f->n_out; i++) {
    ct_free(ctx, f->out[i].name);
    ct_free(ctx, f->out[i].ids);
  }
  ct_free(ctx, f->in);
  ct_free(ctx, f->out);
  ct_free(ctx, f->nodes);
  ct_free(ctx, f->guards);
  ct_free(ctx, f->code);
  ct_fun_release_compiled(f);
  ct_free(ctx, f);
}

size_t ct_fun_n_in(const ct_fun *f) { return f->n_in; }
size_t ct_fun_n_out(const ct_fun *f) { return f->n_out; }
const char *ct_fun_in_name(const ct_fun *f, size_t i) {
  return i < f->n_in ? f->in[i].name : NULL;
}
const char *ct_fun_out_name(const ct_fun *f, size_t i) {
  return i < f->n_out ? f->out[i].name : NULL;
}
size_t ct_fun_in_size(const ct_fun *f, size_t i) {
  return i < f->n_in ? f->in[i].n : 0;
}
size_t ct_fun_out_size(const ct_fun *f, size_t i) {
  return i < f->n_out ? f->out[i].n : 0;
}

static long find_name(const ct_io *io, size_t n, const char *name) {
  for (size_t i = 0; name && i < n; i++)
    if (strcmp(io[i].name, name) == 0) return (long)i;
  return -1;
}
long ct_fun_in_index(const ct_fun *f, const char *name) {
  return find_name(f->in, f->n_in, name);
}
long ct_fun_out_index(const ct_fun *f, const char *name) {
  return find_name(f->out, f->n_out, name);
}
size_t ct_fun_n_nodes(const ct_fun *f) { return f->n_nodes; }
size_t ct_fun_n_guards(const ct_fun *f) { return f->n_guards; }

/* ---- The interpreter program ----------------------------------------------- */

/* For each node, the (output, component) pairs it is stored to, in CSR
 * form: stores of node i are sl[start[i] .. start[i+1]). */
typedef struct store_list {
  size_t *start;
  uint32_t (*sl)[2];
} store_list;

static int build_stores(ct_fun *f, store_list *s) {
  ct_context *ctx = f->ctx;
  size_t total = 0;
  for (size_t o = 0; o < f->n_out; o++) total += f->out[o].n;
  s->start = ct_calloc(ctx, f->n_nodes + 2, sizeof *s->start);
  s->sl = ct_alloc(ctx, (total ? total : 1) * sizeof *s->sl);
  if (!s->start || !s->sl) return CT_ERR_NOMEM;
  for (size_t o = 0; o < f->n_out; o++)
    for (size_t j = 0; j < f->out[o].n; j++) s->start[f->out[o].ids[j] + 2]++;
  for (size_t i = 2; i < f->n_nodes + 2; i++) s->start[i] += s->start[i - 1];
  for (size_t o = 0; o < f->n_out; o++)
    for (size_t j = 0; j < f->out[o].n; j++) {
      size_t at = s->start[f->out[o].ids[j] + 1]++;
      s->sl[at][0] = (uint32_t)o;
      s->sl[at][1] = (uint32_t)j;
    }
  return CT_OK;
}

/* Allocates registers by liveness: a node's register is released after its
 * last reader (or right after its stores and guard when nothing reads it). */
static int assign_registers(ct_fun *f, const store_list *s,
                            const uint8_t *guarded, uint32_t *reg,
                            size_t *n_code) {
  ct_context *ctx = f->ctx;
  size_t n = f->n_nodes;
  uint32_t *last = ct_alloc(ctx, (n ? n : 1) * sizeof *last);
  uint32_t *free_regs = ct_alloc(ctx, (n ? n : 1) * sizeof *free_regs);
  if (!last || !free_regs) {
    ct_free(ctx, last);
    ct_free(ctx, free_regs);
    return CT_ERR_NOMEM;
  }
  for (size_t i = 0; i < n; i++) last[i] = (uint32_t)i;
  for (size_t i = 0; i < n; i++) {
    const ct_node *nd = &f->nodes[i];
    int arity = ct_op_arity(nd->op);
    if (arity > 0) last[nd->a] = (uint32_t)i;
    if (arity > 1) last[nd->b] = (uint32_t)i;
    if (arity > 2) last[nd->c] = (uint32_t)i;
  }
  size_t n_free = 0, n_regs = 0, code = 0;
  for (size_t i = 0; i < n; i++) {
    const ct_node *nd = &f->nodes[i];
    int arity = ct_op_arity(nd->op);
    int32_t kids[3] = {nd->a, nd->b, nd->c};
    /* Release children read for the last time here; dst may reuse them. */
    for (int c = 0; c < arity; c++) {
      int dup = 0;
      for (int d = 0; d < c; d++) dup |= kids[d] == kids[c];
      if (!dup && last[kids[c]] == i) free_regs[n_free++] = reg[kids[c]];
    }
    reg[i] = n_free ? free_regs[--n_free] : (uint32_t)n_regs++;
    code += 1 + (s->start[i + 1] - s->start[i]) + guarded[i];
    if (last[i] == i) free_regs[n_free++] = reg[i];
  }
  f->n_regs = n_regs ? n_regs : 1;
  *n_code = code;
  ct_free(ctx, last);
  ct_free(ctx, free_regs);
  return CT_OK;
}

static void emit_code(ct_fun *f, const store_list *s, const uint8_t *guarded,
                      const uint8_t *guard_expect, const uint32_t *reg) {
  size_t pc = 0;
  for (size_t i = 0; i < f->n_nodes; i++) {
    const ct_node *nd = &f->nodes[i];
    ct_instr in = {nd->op, reg[i], 0, 0, 0, nd->k};
    int arity = ct_op_arity(nd->op);
    if (nd->op == CT_OP_INPUT) {
      in.op = CT_INSTR_LOAD;
      in.a = (uint32_t)nd->a;
      in.b = (uint32_t)nd->b;
    } else {
      if (arity > 0) in.a = reg[nd->a];
      if (arity > 1) in.b = reg[nd->b];
      if (arity > 2) in.c = reg[nd->c];
    }
    f->code[pc++] = in;
    for (size_t k = s->start[i]; k < s->start[i + 1]; k++)
      f->code[pc++] = (ct_instr){CT_INSTR_STORE, s->sl[k][0], reg[i],
                                 s->sl[k][1], 0, 0};
    if (guarded[i])
      f->code[pc++] = (ct_instr){CT_INSTR_GUARD, 0, reg[i], 0, 0,
                                 guard_expect[i]};
  }
  f->n_code = pc;
}

int ct_fun_build_code(ct_fun *f) {
  ct_context *ctx = f->ctx;
  size_t n = f->n_nodes ? f->n_nodes : 1;
  store_list s = {0};
  uint8_t *guarded = ct_calloc(ctx, n, 1), *expect = ct_calloc(ctx, n, 1);
  uint32_t *reg = ct_alloc(ctx, n * sizeof *reg);
  size_t n_code = 0;
  int rc = CT_ERR_NOMEM;
  if (!guarded || !expect || !reg) goto done;
  for (size_t i = 0; i < f->n_guards; i++) {
    guarded[f->guards[i].id] = 1;
    expect[f->guards[i].id] = f->guards[i].expected;
  }
  rc = build_stores(f, &s);
  if (rc == CT_OK) rc = assign_registers(f, &s, guarded, reg, &n_code);
  if (rc == CT_OK) {
    f->code = ct_alloc(ctx, (n_code ? n_code : 1) * sizeof *f->code);
    if (!f->code) rc = CT_ERR_NOMEM;
  }
  if (rc == CT_OK) emit_code(f, &s, guarded, expect, reg);
done:
  ct_free(ctx, s.start);
  ct_free(ctx, s.sl);
  ct_free(ctx, guarded);
  ct_free(ctx, expect);
  ct_free(ctx, reg);
  return rc;
}

/* ---- Evaluation ------------------------------------------------------------ */

size_t ct_fun_work_size(const ct_fun *f) {
  return f->compiled && f->compiled_work > f->n_regs ? f->compiled_work
                                                     : f->n_regs;
}

/* Runs the program at one point; returns the number of flipped guards. */
static size_t interpret(const ct_fun *f, const double *const *in,
                        double *const *out, double *r) {
  size_t flips = 0;
  const ct_instr *code = f->code, *end = code + f->n_code;
  for (const ct_instr *p = code; p < end; p++) {
    switch (p->op) {
      case CT_INSTR_LOAD: r[p->dst] = in[p->a][p->b]; break;
      case CT_INSTR_STORE:
        if (out[p->dst]) out[p->dst][p->b] = r[p->a];
        break;
      case CT_INSTR_GUARD: flips += (r[p->a] != 0) != (p->k != 0); break;
      case CT_OP_ADD: r[p->dst] = r[p->a] + r[p->b]; break;
      case CT_OP_SUB: r[p->dst] = r[p->a] - r[p->b]; break;
      case CT_OP_MUL: r[p->dst] = r[p->a] * r[p->b]; break;
      case CT_OP_DIV: r[p->dst] = r[p->a] / r[p->b]; break;
      case CT_OP_NEG: r[p->dst] = -r[p->a]; break;
      case CT_OP_SQR: r[p->dst] = r[p->a] * r[p->a]; break;
      case CT_OP_CONST: r[p->dst] = p->k; break;
      default:
        r[p->dst] = ct_op_apply(p->op, r[p->a], r[p->b], r[p->c], p->k);
        break;
    }
  }
  return flips;
}

static int check_args(ct_context *ctx, const ct_fun *f, const void *in,
                      const void *out, const void *work) {
  if (!f || (!in && f->n_in) || (!out && f->n_out) || !work)
    return CT_ERROR(ctx, CT_ERR_ARG,
                    "ct_fun_eval needs the function, inputs, outputs and work");
  return CT_OK;
}

int ct_fun_eval(ct_context *ctx, const ct_fun *f, const double *const *in,
                double *const *out, double *work) {
  CT_CHECK(ctx, check_args(ctx, f, in, out, work));
  size_t flips = f->compiled ? (size_t)f->compiled(in, out, work)
                             : interpret(f, in, out, work);
  return flips ? CT_RETRACE : CT_OK;
}

enum { BATCH_BLOCK = 64 };

size_t ct_fun_work_size_batch(const ct_fun *f, size_t npoints) {
  if (f->compiled) return ct_fun_work_size(f);
  size_t block = npoints < BATCH_BLOCK ? npoints : BATCH_BLOCK;
  return f->n_regs * (block ? block : 1);
}

/* Runs the program over a block of `nb` points at once, each instruction
 * looping over the block (register r of point p lives at r*nb + p), which
 * spreads the dispatch cost over the block and lets the loops vectorize. */
static size_t interpret_block(const ct_fun *f, size_t p0, size_t nb,
                              const double *const *in, double *const *out,
                              double *w) {
  size_t flips = 0;
  const ct_instr *code = f->code, *end = code + f->n_code;
  for (const ct_instr *p = code; p < end; p++) {
    double *d = w + (size_t)p->dst * nb;
    const double *a = w + (size_t)p->a * nb, *b = w + (size_t)p->b * nb;
    switch (p->op) {
      case CT_INSTR_LOAD: {
        const double *x = in[p->a] + p0 * f->in[p->a].n + p->b;
        size_t stride = f->in[p->a].n;
        for (size_t q = 0; q < nb; q++) d[q] = x[q * stride];
        break;
      }
      case CT_INSTR_STORE:
        if (out[p->dst]) {
          size_t stride = f->out[p->dst].n;
          double *y = out[p->dst] + p0 * stride + p->b;
          for (size_t q = 0; q < nb; q++) y[q * stride] = a[q];
        }
        break;
      case CT_INSTR_GUARD:
        for (size_t q = 0; q < nb; q++) flips += (a[q] != 0) != (p->k != 0);
        break;
      case CT_OP_ADD: for (size_t q = 0; q < nb; q++) d[q] = a[q] + b[q]; break;
      case CT_OP_SUB: for (size_t q = 0; q < nb; q++) d[q] = a[q] - b[q]; break;
      case CT_OP_MUL: for (size_t q = 0; q < nb; q++) d[q] = a[q] * b[q]; break;
      case CT_OP_DIV: for (size_t q = 0; q < nb; q++) d[q] = a[q] / b[q]; break;
      case CT_OP_NEG: for (size_t q = 0; q < nb; q++) d[q] = -a[q]; break;
      case CT_OP_SQR: for (size_t q = 0; q < nb; q++) d[q] = a[q] * a[q]; break;
      case CT_OP_CONST: for (size_t q = 0; q < nb; q++) d[q] = p->k; break;
      default: {
        const double *c = w + (size_t)p->c * nb;
        for (size_t q = 0; q < nb; q++)
          d[q] = ct_op_apply(p->op, a[q], b[q], c[q], p->k);
        break;
      }
    }
  }
  return flips;
}

int ct_fun_eval_batch(ct_context *ctx, const ct_fun *f, size_t npoints,
                      const double *const *in, double *const *out,
                      double *work) {
  CT_CHECK(ctx, check_args(ctx, f, in, out, work));
  size_t flips = 0;
  if (f->compiled) {
    /* Compiled code runs point by point through offset pointer tables. */
    const double **pin = ct_alloc(ctx, (f->n_in + 1) * sizeof *pin);
    double **pout = ct_alloc(ctx, (f->n_out + 1) * sizeof *pout);
    if (!pin || !pout) {
      ct_free(ctx, (void *)pin);
      ct_free(ctx, pout);
      return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
    }
    for (size_t p = 0; p < npoints; p++) {
      for (size_t i = 0; i < f->n_in; i++) pin[i] = in[i] + p * f->in[i].n;
      for (size_t o = 0; o < f->n_out; o++)
        pout[o] = out[o] ? out[o] + p * f->out[o].n : NULL;
      flips += (size_t)f->compiled(pin, pout, work);
    }
    ct_free(ctx, (void *)pin);
    ct_free(ctx, pout);
  } else {
    for (size_t p0 = 0; p0 < npoints; p0 += BATCH_BLOCK) {
      size_t nb = npoints - p0 < BATCH_BLOCK ? npoints - p0 : BATCH_BLOCK;
      flips += interpret_block(f, p0, nb, in, out, work);
    }
  }
  return flips ? CT_RETRACE : CT_OK;
}
