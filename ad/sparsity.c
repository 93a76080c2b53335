/* Structural sparsity: which selected inputs each output depends on
 * (index sets pushed forward through the nodes), and Hessian sparsity as the
 * Jacobian sparsity of the gradient function. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

typedef struct index_set {
  uint32_t *idx; /* sorted */
  uint32_t len;
} index_set;

void ct_sparsity_free(ct_context *ctx, ct_sparsity *s) {
  if (!s) return;
  ct_free(ctx, s->colptr);
  ct_free(ctx, s->rowind);
  ct_free(ctx, s);
}

static ct_sparsity *sparsity_new(ct_context *ctx, size_t nrows, size_t ncols,
                                 size_t nnz) {
  ct_sparsity *s = ct_calloc(ctx, 1, sizeof *s);
  if (!s) return NULL;
  s->nrows = nrows;
  s->ncols = ncols;
  s->nnz = nnz;
  s->colptr = ct_calloc(ctx, ncols + 1, sizeof *s->colptr);
  s->rowind = ct_alloc(ctx, (nnz ? nnz : 1) * sizeof *s->rowind);
  if (!s->colptr || !s->rowind) {
    ct_sparsity_free(ctx, s);
    return NULL;
  }
  return s;
}

/* Merges the sorted sets of up to three children into `dst`, using
 * `scratch` (room for the sum of their lengths). */
static int merge_sets(ct_context *ctx, index_set *dst, const index_set *srcs[3],
                      int n_src, uint32_t *scratch) {
  uint32_t len = 0, pos[3] = {0, 0, 0};
  for (;;) {
    uint32_t best = UINT32_MAX;
    for (int s = 0; s < n_src; s++)
      if (pos[s] < srcs[s]->len && srcs[s]->idx[pos[s]] < best)
        best = srcs[s]->idx[pos[s]];
    if (best == UINT32_MAX) break;
    scratch[len++] = best;
    for (int s = 0; s < n_src; s++)
      if (pos[s] < srcs[s]->len && srcs[s]->idx[pos[s]] == best) pos[s]++;
  }
  dst->len = len;
  if (!len) return CT_OK;
  dst->idx = ct_alloc(ctx, len * sizeof *dst->idx);
  if (!dst->idx) return CT_ERR_NOMEM;
  memcpy(dst->idx, scratch, len * sizeof *scratch);
  return CT_OK;
}

/* The operands a node's derivative depends on (none for piecewise-constant
 * ops; the two branches, not the condition, for select). */
static int dependent_operands(const ct_node *n, int32_t kids[3]) {
  int arity = ct_op_arity(n->op);
  if (ct_op_is_boolean(n->op) || n->op == CT_OP_SIGN || n->op == CT_OP_FLOOR ||
      n->op == CT_OP_CEIL)
    return 0;
  if (n->op == CT_OP_SELECT) {
    kids[0] = n->b, kids[1] = n->c;
    return 2;
  }
  kids[0] = n->a, kids[1] = n->b, kids[2] = n->c;
  return arity;
}

static int propagate(ct_context *ctx, const ct_fun *f, const size_t *col_off,
                     const char *sel, index_set *sets, uint32_t *scratch) {
  for (size_t i = 0; i < f->n_nodes; i++) {
    const ct_node *n = &f->nodes[i];
    if (n->op == CT_OP_INPUT) {
      if (!sel[n->a]) continue;
      sets[i].idx = ct_alloc(ctx, sizeof *sets[i].idx);
      if (!sets[i].idx) return CT_ERR_NOMEM;
      sets[i].idx[0] = (uint32_t)(col_off[n->a] + (size_t)n->b);
      sets[i].len = 1;
      continue;
    }
    int32_t kids[3];
    int nk = dependent_operands(n, kids);
    const index_set *srcs[3];
    for (int c = 0; c < nk; c++) srcs[c] = &sets[kids[c]];
    CT_CHECK(ctx, merge_sets(ctx, &sets[i], srcs, nk, scratch));
  }
  return CT_OK;
}

/* CSC pattern from the row sets of the outputs. */
static int pattern_from_rows(ct_context *ctx, const ct_fun *f,
                             const index_set *sets, size_t ncols,
                             ct_sparsity **out) {
  size_t nrows = 0, nnz = 0;
  for (size_t o = 0; o < f->n_out; o++)
    for (size_t j = 0; j < f->out[o].n; j++, nrows++)
      nnz += sets[f->out[o].ids[j]].len;
  ct_sparsity *s = sparsity_new(ctx, nrows, ncols, nnz);
  if (!s) return CT_ERR_NOMEM;
  size_t row = 0;
  for (size_t o = 0; o < f->n_out; o++)
    for (size_t j = 0; j < f->out[o].n; j++, row++) {
      const index_set *r = &sets[f->out[o].ids[j]];
      for (uint32_t q = 0; q < r->len; q++) s->colptr[r->idx[q] + 1]++;
    }
  for (size_t c = 0; c < ncols; c++) s->colptr[c + 1] += s->colptr[c];
  size_t *fill = ct_alloc(ctx, (ncols ? ncols : 1) * sizeof *fill);
  if (!fill) {
    ct_sparsity_free(ctx, s);
    return CT_ERR_NOMEM;
  }
  memcpy(fill, s->colptr, ncols * sizeof *fill);
  row = 0; /* rows are visited in order, so each column comes out sorted */
  for (size_t o = 0; o < f->n_out; o++)
    for (size_t j = 0; j < f->out[o].n; j++, row++) {
      const index_set *r = &sets[f->out[o].ids[j]];
      for (uint32_t q = 0; q < r->len; q++) s->rowind[fill[r->idx[q]]++] = row;
    }
  ct_free(ctx, fill);
  *out = s;
  return CT_OK;
}

int ct_fun_jac_sparsity(ct_context *ctx, const ct_fun *f,
                        const char *const *wrt, ct_sparsity **out) {
  *out = NULL;
  CT_CHECK(ctx, ct_wrt_check(ctx, f, wrt));
  size_t nn = f->n_nodes ? f->n_nodes : 1, ncols = 0;
  index_set *sets = ct_calloc(ctx, nn, sizeof *sets);
  size_t *col_off = ct_alloc(ctx, (f->n_in + 1) * sizeof *col_off);
  char *sel = ct_calloc(ctx, f->n_in + 1, 1);
  int rc = sets && col_off && sel ? CT_OK : CT_ERR_NOMEM;
  for (size_t i = 0; rc == CT_OK && i < f->n_in; i++) {
    sel[i] = (char)ct_wrt_selected(wrt, f->in[i].name);
    col_off[i] = ncols;
    if (sel[i]) ncols += f->in[i].n;
  }
  if (ncols >= UINT32_MAX) rc = CT_ERROR(ctx, CT_ERR_ARG, "too many columns");
  uint32_t *scratch = rc < 0 ? NULL : ct_alloc(ctx, (3 * ncols + 1) * sizeof *scratch);
  if (rc == CT_OK && !scratch) rc = CT_ERR_NOMEM;
  if (rc == CT_OK) rc = propagate(ctx, f, col_off, sel, sets, scratch);
  if (rc == CT_OK) rc = pattern_from_rows(ctx, f, sets, ncols, out);
  for (size_t i = 0; sets && i < f->n_nodes; i++) ct_free(ctx, sets[i].idx);
  ct_free(ctx, sets);
  ct_free(ctx, col_off);
  ct_free(ctx, sel);
  ct_free(ctx, scratch);
  if (rc < 0) return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  return CT_OK;
}

static int compare_size(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return (x > y) - (x < y);
}

/* s + s^T for a square pattern, in time linear in its nonzeros (plus the
 * sort of each column). */
static int symmetrize(ct_context *ctx, const ct_sparsity *s, ct_sparsity **out) {
  size_t n = s->ncols, cap = 2 * s->nnz;
  size_t *start = ct_calloc(ctx, n + 2, sizeof *start);
  size_t *entries = ct_alloc(ctx, (cap ? cap : 1) * sizeof *entries);
  size_t *stamp = ct_alloc(ctx, (n ? n : 1) * sizeof *stamp);
  ct_sparsity *t = sparsity_new(ctx, n, n, cap);
  int rc = start && entries && stamp && t ? CT_OK : CT_ERR_NOMEM;
  if (rc == CT_OK) {
    /* Column j of s + s^T: the rows of column j and the columns of row j. */
    for (size_t j = 0; j < n; j++)
      for (size_t q = s->colptr[j]; q < s->colptr[j + 1]; q++) {
        start[j + 2]++;
        start[s->rowind[q] + 2]++;
      }
    for (size_t j = 0; j < n; j++) start[j + 2] += start[j + 1];
    for (size_t j = 0; j < n; j++)
      for (size_t q = s->colptr[j]; q < s->colptr[j + 1]; q++) {
        entries[start[j + 1]++] = s->rowind[q];
        entries[start[s->rowind[q] + 1]++] = j;
      }
    /* Now column j's candidates are entries[start[j] .. start[j+1]). */
    size_t nnz = 0;
    for (size_t i = 0; i < n; i++) stamp[i] = SIZE_MAX;
    for (size_t j = 0; j < n; j++) {
      t->colptr[j] = nnz;
      for (size_t q = start[j]; q < start[j + 1]; q++)
        if (stamp[entries[q]] != j) {
          stamp[entries[q]] = j;
          t->rowind[nnz++] = entries[q];
        }
      qsort(t->rowind + t->colptr[j], nnz - t->colptr[j], sizeof(size_t),
            compare_size);
    }
    t->colptr[n] = nnz;
    t->nnz = nnz;
    *out = t;
    t = NULL;
  }
  ct_sparsity_free(ctx, t);
  ct_free(ctx, start);
  ct_free(ctx, entries);
  ct_free(ctx, stamp);
  return rc;
}

int ct_fun_hess_sparsity(ct_context *ctx, const ct_fun *f,
                         const char *const *wrt, ct_sparsity **out) {
  *out = NULL;
  ct_fun *grad = NULL, *only = NULL;
  ct_sparsity *jac = NULL;
  size_t n_sel = 0;
  char **plain = ct_wrt_names(ctx, f, wrt, "", &n_sel);
  char **bars = ct_wrt_names(ctx, f, wrt, "bar_", &n_sel);
  int rc = plain && bars ? CT_OK : CT_ERR_NOMEM;
  if (rc == CT_OK) rc = ct_fun_vjp(ctx, f, 1, wrt, &grad);
  if (rc == CT_OK)
    rc = ct_fun_select_outputs(ctx, grad, (const char *const *)bars, &only);
  if (rc == CT_OK)
    rc = ct_fun_jac_sparsity(ctx, only, (const char *const *)plain, &jac);
  if (rc == CT_OK) rc = symmetrize(ctx, jac, out);
  ct_sparsity_free(ctx, jac);
  ct_fun_free(grad);
  ct_fun_free(only);
  ct_free(ctx, plain);
  ct_free(ctx, bars);
  if (rc < 0) return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  return CT_OK;
}
