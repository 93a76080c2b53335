/* Sparse derivatives by graph coloring: colorings of sparsity patterns
 * (through ColPack, checked here), sparse and dense Jacobians and sparse
 * Hessians built as new functions, and the CSC -> CSR conversion.
 *
 * A compressed derivative replays f into a fresh graph and runs one sweep
 * per color with constant seeds (1 on the columns or rows of that color,
 * CT_ZERO elsewhere). Constants fold as they are recorded, so each
 * compressed tangent is exactly the sum of the Jacobian entries of its
 * color, and a valid coloring makes every such sum hold one entry. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "coloring.h"
#include "ir.h"

#define ZERO CT_ZERO

/* ---- Colorings -------------------------------------------------------------- */

/* CT_ERR_ARG unless the pattern's sizes fit ColPack's int indices. */
static int check_colpack_size(ct_context *ctx, const ct_sparsity *p) {
  if (p->nrows > INT_MAX || p->ncols > INT_MAX || p->nnz > INT_MAX)
    return CT_ERROR(ctx, CT_ERR_ARG,
                    "pattern %zu x %zu with %zu nonzeros is too large for ColPack",
                    p->nrows, p->ncols, p->nnz);
  return CT_OK;
}

/* The pattern row-compressed in ADOL-C format (rows[i][0] = count, then the
 * sorted column indices), in one block freed with ct_free. NULL on no
 * memory. */
static unsigned int **adolc_rows(ct_context *ctx, const ct_sparsity *p) {
  size_t m = p->nrows, head = (m ? m : 1) * sizeof(unsigned int *);
  unsigned int **rows = ct_alloc(ctx, head + (p->nnz + m + 1) * sizeof(unsigned int));
  size_t *count = ct_calloc(ctx, m + 1, sizeof *count);
  if (!rows || !count) {
    ct_free(ctx, rows);
    ct_free(ctx, count);
    return NULL;
  }
  unsigned int *data = (unsigned int *)((char *)rows + head);
  for (size_t q = 0; q < p->nnz; q++) count[p->rowind[q]]++;
  for (size_t i = 0, off = 0; i < m; i++) {
    rows[i] = data + off;
    rows[i][0] = 0;
    off += count[i] + 1;
  }
  ct_free(ctx, count);
  /* Columns in increasing order leave each row's indices sorted. */
  for (size_t j = 0; j < p->ncols; j++)
    for (size_t q = p->colptr[j]; q < p->colptr[j + 1]; q++) {
      unsigned int *r = rows[p->rowind[q]];
      r[++r[0]] = (unsigned int)j;
    }
  return rows;
}

/* 1 for each column (by_rows 0) or row (by_rows 1) with no nonzero, in
 * `empty` (room for ncols or nrows chars). */
static void mark_empty(const ct_sparsity *p, int by_rows, char *empty) {
  size_t nv = by_rows ? p->nrows : p->ncols;
  for (size_t v = 0; v < nv; v++) empty[v] = 1;
  if (by_rows) {
    for (size_t q = 0; q < p->nnz; q++) empty[p->rowind[q]] = 0;
  } else {
    for (size_t j = 0; j < p->ncols; j++) empty[j] = p->colptr[j] == p->colptr[j + 1];
  }
}

/* Renumbers ColPack's colors 0, 1, ... in order of first use, giving -1 to
 * the empty vertices. CT_ERR_INTERNAL for a color out of range. */
static int compact_colors(ct_context *ctx, const char *empty, size_t nv,
                          int *colors, int *n_colors) {
  int *map = ct_alloc(ctx, (nv ? nv : 1) * sizeof *map);
  if (!map) return CT_ERR_NOMEM;
  for (size_t c = 0; c < nv; c++) map[c] = -1;
  int k = 0, rc = CT_OK;
  for (size_t v = 0; v < nv; v++) {
    if (empty[v]) {
      colors[v] = -1;
      continue;
    }
    if (colors[v] < 0 || (size_t)colors[v] >= nv) {
      rc = CT_ERROR(ctx, CT_ERR_INTERNAL,
                    "ColPack gave vertex %zu color %d (of %zu vertices)", v,
                    colors[v], nv);
      break;
    }
    if (map[colors[v]] < 0) map[colors[v]] = k++;
    colors[v] = map[colors[v]];
  }
  ct_free(ctx, map);
  *n_colors = rc == CT_OK ? k : 0;
  return rc;
}

/* ColPack's vertex orderings tried for each coloring: greedy colorings
 * depend on the order and none is best on every pattern (natural order is
 * optimal on banded patterns, smallest-last or incidence-degree often
 * elsewhere). Star coloring also has distance-2 degree orderings. Only
 * names ColPack knows: it does not reject the others cleanly. */
static const char *const d2_orderings[] = {
    "NATURAL", "LARGEST_FIRST", "SMALLEST_LAST", "INCIDENCE_DEGREE", NULL};
static const char *const star_orderings[] = {
    "NATURAL", "LARGEST_FIRST", "SMALLEST_LAST", "INCIDENCE_DEGREE",
    "DISTANCE_TWO_LARGEST_FIRST", "DISTANCE_TWO_SMALLEST_LAST",
    "DISTANCE_TWO_INCIDENCE_DEGREE", NULL};

/* The coloring with the fewest colors over the orderings above, compacted:
 * kind 0 columns, 1 rows (partial distance-2), 2 star. `rows` is the
 * pattern in ADOL-C format, `empty` marks the vertices without nonzeros. */
static int best_coloring(ct_context *ctx, const ct_sparsity *p, int kind,
                         unsigned int **rows, const char *empty, int *colors,
                         int *n_colors) {
  size_t nv = kind == 1 ? p->nrows : p->ncols;
  int *trial = ct_alloc(ctx, (nv ? nv : 1) * sizeof *trial);
  if (!trial) return CT_ERR_NOMEM;
  int rc = CT_OK, best = -1;
  const char *const *orderings = kind == 2 ? star_orderings : d2_orderings;
  for (size_t o = 0; rc == CT_OK && orderings[o]; o++) {
    if (kind == 2)
      rc = ct_colpack_star(ctx, rows, (int)nv, orderings[o], trial);
    else
      rc = ct_colpack_partial_d2(ctx, rows, (int)p->nrows, (int)p->ncols, kind,
                                 orderings[o], trial);
    int k = 0;
    if (rc == CT_OK) rc = compact_colors(ctx, empty, nv, trial, &k);
    if (rc == CT_OK && (best < 0 || k < best)) {
      best = k;
      memcpy(colors, trial, nv * sizeof *colors);
    }
  }
  ct_free(ctx, trial);
  *n_colors = rc == CT_OK ? best : 0;
  return rc;
}

/* Checks a partial distance-2 coloring: no two columns of one color share
 * a row (by_rows 0), or no two rows of one color share a column (by_rows
 * 1). CT_ERR_INTERNAL naming the conflict otherwise. */
static int check_partial_d2(ct_context *ctx, const ct_sparsity *p, int by_rows,
                            const int *colors, int n_colors) {
  int rc = CT_OK;
  if (by_rows) {
    int *stamp = ct_alloc(ctx, (n_colors ? (size_t)n_colors : 1) * sizeof *stamp);
    size_t *who = ct_alloc(ctx, (n_colors ? (size_t)n_colors : 1) * sizeof *who);
    if (!stamp || !who) rc = CT_ERR_NOMEM;
    for (int c = 0; rc == CT_OK && c < n_colors; c++) stamp[c] = -1;
    for (size_t j = 0; rc == CT_OK && j < p->ncols; j++)
      for (size_t q = p->colptr[j]; q < p->colptr[j + 1]; q++) {
        size_t i = p->rowind[q];
        int c = colors[i];
        if (c < 0 || c >= n_colors) {
          rc = CT_ERROR(ctx, CT_ERR_INTERNAL, "row %zu has a nonzero but color %d", i, c);
          break;
        }
        if (stamp[c] == (int)j) {
          rc = CT_ERROR(ctx, CT_ERR_INTERNAL,
                        "ColPack returned an invalid row coloring: rows %zu "
                        "and %zu share column %zu and color %d", who[c], i, j, c);
          break;
        }
        stamp[c] = (int)j;
        who[c] = i;
      }
    ct_free(ctx, stamp);
    ct_free(ctx, who);
    return rc;
  }
  /* Columns grouped by color: each row may be claimed once per color. */
  size_t nr = p->nrows ? p->nrows : 1, nc = p->ncols ? p->ncols : 1;
  size_t *start = ct_calloc(ctx, (size_t)n_colors + 1, sizeof *start);
  size_t *order = ct_alloc(ctx, nc * sizeof *order);
  int *claimed = ct_alloc(ctx, nr * sizeof *claimed);
  size_t *owner = ct_alloc(ctx, nr * sizeof *owner);
  if (!start || !order || !claimed || !owner) rc = CT_ERR_NOMEM;
  if (rc == CT_OK) {
    for (size_t j = 0; j < p->ncols; j++) {
      if (colors[j] >= n_colors) {
        rc = CT_ERROR(ctx, CT_ERR_INTERNAL, "column %zu has color %d of %d", j,
                      colors[j], n_colors);
        break;
      }
      if (colors[j] < 0 && p->colptr[j] != p->colptr[j + 1]) {
        rc = CT_ERROR(ctx, CT_ERR_INTERNAL, "column %zu has nonzeros but no color", j);
        break;
      }
      if (colors[j] >= 0) start[colors[j] + 1]++;
    }
  }
  if (rc == CT_OK) {
    for (int c = 0; c < n_colors; c++) start[c + 1] += start[c];
    for (size_t j = 0; j < p->ncols; j++)
      if (colors[j] >= 0) order[start[colors[j]]++] = j;
    for (int c = n_colors; c > 0; c--) start[c] = start[c - 1];
    start[0] = 0;
    for (size_t i = 0; i < p->nrows; i++) claimed[i] = -1;
  }
  for (int c = 0; rc == CT_OK && c < n_colors; c++)
    for (size_t t = start[c]; rc == CT_OK && t < start[c + 1]; t++) {
      size_t j = order[t];
      for (size_t q = p->colptr[j]; q < p->colptr[j + 1]; q++) {
        size_t i = p->rowind[q];
        if (claimed[i] == c) {
          rc = CT_ERROR(ctx, CT_ERR_INTERNAL,
                        "ColPack returned an invalid column coloring: columns "
                        "%zu and %zu share row %zu and color %d", owner[i], j, i, c);
          break;
        }
        claimed[i] = c;
        owner[i] = j;
      }
    }
  ct_free(ctx, start);
  ct_free(ctx, order);
  ct_free(ctx, claimed);
  ct_free(ctx, owner);
  return rc;
}

/* Checked partial distance-2 coloring of columns or rows (coloring.h). */
int ct_color_partial_d2(ct_context *ctx, const ct_sparsity *pattern,
                        int by_rows, int *colors, int *n_colors) {
  *n_colors = 0;
  CT_CHECK(ctx, check_colpack_size(ctx, pattern));
  size_t nv = by_rows ? pattern->nrows : pattern->ncols;
  for (size_t v = 0; v < nv; v++) colors[v] = -1;
  if (pattern->nnz == 0) return CT_OK;
  unsigned int **rows = adolc_rows(ctx, pattern);
  char *empty = ct_alloc(ctx, nv ? nv : 1);
  int rc = rows && empty ? CT_OK : CT_ERR_NOMEM;
  if (rc == CT_OK) {
    mark_empty(pattern, by_rows, empty);
    rc = best_coloring(ctx, pattern, by_rows != 0, rows, empty, colors, n_colors);
  }
  if (rc == CT_OK) rc = check_partial_d2(ctx, pattern, by_rows, colors, *n_colors);
  ct_free(ctx, rows);
  ct_free(ctx, empty);
  if (rc < 0) {
    *n_colors = 0;
    return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  }
  return CT_OK;
}

/* tpos[q] = the CSC position of the transpose of entry q of a square
 * pattern; CT_ERR_ARG if the pattern is not symmetric. */
static int transpose_positions(ct_context *ctx, const ct_sparsity *s,
                               size_t *tpos) {
  size_t n = s->ncols;
  if (s->nrows != n)
    return CT_ERROR(ctx, CT_ERR_ARG, "a symmetric pattern must be square, got %zu x %zu",
                    s->nrows, n);
  size_t *fill = ct_alloc(ctx, (n ? n : 1) * sizeof *fill);
  if (!fill) return CT_ERR_NOMEM;
  memcpy(fill, s->colptr, n * sizeof *fill);
  int rc = CT_OK;
  /* Columns in increasing order meet the entries of each column's
   * transpose in increasing row order: exactly its sorted rows. */
  for (size_t j = 0; rc == CT_OK && j < n; j++)
    for (size_t q = s->colptr[j]; q < s->colptr[j + 1]; q++) {
      size_t i = s->rowind[q];
      if (i >= n || fill[i] >= s->colptr[i + 1] || s->rowind[fill[i]] != j) {
        rc = CT_ERROR(ctx, CT_ERR_ARG, "pattern is not symmetric at (%zu, %zu)", i, j);
        break;
      }
      tpos[q] = fill[i]++;
    }
  for (size_t i = 0; rc == CT_OK && i < n; i++)
    if (fill[i] != s->colptr[i + 1])
      rc = CT_ERROR(ctx, CT_ERR_ARG, "pattern is not symmetric in column %zu", i);
  ct_free(ctx, fill);
  return rc;
}

/* Which side each Hessian nonzero is recovered from (coloring.h). */
int ct_star_direct(ct_context *ctx, const ct_sparsity *sym, const int *colors,
                   int n_colors, unsigned char *direct) {
  size_t nnz = sym->nnz ? sym->nnz : 1;
  size_t *tpos = ct_alloc(ctx, nnz * sizeof *tpos);
  unsigned char *alone = ct_alloc(ctx, nnz);
  int *count = ct_calloc(ctx, n_colors > 0 ? (size_t)n_colors : 1, sizeof *count);
  int rc = tpos && alone && count ? CT_OK : CT_ERR_NOMEM;
  if (rc == CT_OK) rc = transpose_positions(ctx, sym, tpos);
  for (size_t j = 0; rc == CT_OK && j < sym->ncols; j++)
    for (size_t q = sym->colptr[j]; q < sym->colptr[j + 1]; q++)
      if (colors[sym->rowind[q]] < 0 || colors[sym->rowind[q]] >= n_colors) {
        rc = CT_ERROR(ctx, CT_ERR_INTERNAL, "vertex %zu has a nonzero but color %d",
                      sym->rowind[q], colors[sym->rowind[q]]);
        break;
      }
  /* Row r holds the same indices as column r. alone[p] for entry p = (r, k):
   * k is the only index of row r with color(k). */
  for (size_t r = 0; rc == CT_OK && r < sym->ncols; r++) {
    for (size_t q = sym->colptr[r]; q < sym->colptr[r + 1]; q++)
      count[colors[sym->rowind[q]]]++;
    for (size_t q = sym->colptr[r]; q < sym->colptr[r + 1]; q++)
      alone[tpos[q]] = count[colors[sym->rowind[q]]] == 1;
    for (size_t q = sym->colptr[r]; q < sym->colptr[r + 1]; q++)
      count[colors[sym->rowind[q]]] = 0;
  }
  for (size_t j = 0; rc == CT_OK && j < sym->ncols; j++)
    for (size_t q = sym->colptr[j]; q < sym->colptr[j + 1]; q++) {
      if (alone[q]) {
        direct[q] = 1;
      } else if (alone[tpos[q]]) {
        direct[q] = 0;
      } else {
        rc = CT_ERROR(ctx, CT_ERR_INTERNAL,
                      "ColPack returned an invalid star coloring: H(%zu, %zu) "
                      "cannot be recovered directly", sym->rowind[q], j);
        break;
      }
    }
  ct_free(ctx, tpos);
  ct_free(ctx, alone);
  ct_free(ctx, count);
  if (rc < 0) return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  return CT_OK;
}

/* Checked star coloring of a symmetric pattern (coloring.h). */
int ct_color_star(ct_context *ctx, const ct_sparsity *sym, int *colors,
                  int *n_colors) {
  *n_colors = 0;
  CT_CHECK(ctx, check_colpack_size(ctx, sym));
  size_t n = sym->ncols, nnz = sym->nnz ? sym->nnz : 1;
  if (sym->nrows != n)
    return CT_ERROR(ctx, CT_ERR_ARG, "a symmetric pattern must be square, got %zu x %zu",
                    sym->nrows, n);
  for (size_t v = 0; v < n; v++) colors[v] = -1;
  if (sym->nnz == 0) return CT_OK;
  size_t *tpos = ct_alloc(ctx, nnz * sizeof *tpos);
  unsigned char *direct = ct_alloc(ctx, nnz);
  char *empty = ct_alloc(ctx, n);
  unsigned int **rows = adolc_rows(ctx, sym);
  int rc = tpos && direct && empty && rows ? CT_OK : CT_ERR_NOMEM;
  /* ColPack assumes symmetry: check it before handing the pattern over. */
  if (rc == CT_OK) rc = transpose_positions(ctx, sym, tpos);
  if (rc == CT_OK) {
    mark_empty(sym, 0, empty);
    rc = best_coloring(ctx, sym, 2, rows, empty, colors, n_colors);
  }
  if (rc == CT_OK) rc = ct_star_direct(ctx, sym, colors, *n_colors, direct);
  ct_free(ctx, tpos);
  ct_free(ctx, direct);
  ct_free(ctx, empty);
  ct_free(ctx, rows);
  if (rc < 0) {
    *n_colors = 0;
    return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  }
  return CT_OK;
}

/* ---- Compressed derivatives ------------------------------------------------ */

/* What a compressed build reads. Rows are f's outputs concatenated, columns
 * its selected inputs concatenated. Forward: direction d seeds the columns
 * with seed[j] == d and entry q is the tangent of row row[q] in direction
 * dir[q]. Reverse: direction d seeds the rows with seed[i] == d and entry q
 * is the adjoint of column col[q] for seed dir[q]. dir[q] < 0: zero. */
typedef struct compressed {
  int reverse;
  int n_dirs;
  const int *seed;     /* per column (forward) or row (reverse), -1: none */
  size_t n_entries;
  const size_t *row;   /* forward only */
  const size_t *col;   /* reverse only */
  const int *dir;
} compressed;

/* Number of rows (outputs concatenated) and columns (selected inputs). */
static void jac_dims(const ct_fun *f, const char *const *wrt, size_t *nrows,
                     size_t *ncols) {
  *nrows = *ncols = 0;
  for (size_t o = 0; o < f->n_out; o++) *nrows += f->out[o].n;
  for (size_t i = 0; i < f->n_in; i++)
    if (ct_wrt_selected(wrt, f->in[i].name)) *ncols += f->in[i].n;
}

/* Groups the indices v < n with key[v] in [0, k) by key: the ones with key
 * d are order[start[d] .. start[d+1]). */
static int bucket(ct_context *ctx, const int *key, size_t n, int k,
                  size_t **start, size_t **order) {
  *start = ct_calloc(ctx, (size_t)k + 2, sizeof **start);
  *order = ct_alloc(ctx, (n ? n : 1) * sizeof **order);
  if (!*start || !*order) return CT_ERR_NOMEM;
  for (size_t v = 0; v < n; v++)
    if (key[v] >= 0 && key[v] < k) (*start)[key[v] + 1]++;
  for (int d = 0; d < k; d++) (*start)[d + 1] += (*start)[d];
  for (size_t v = 0; v < n; v++)
    if (key[v] >= 0 && key[v] < k) (*order)[(*start)[key[v]]++] = v;
  for (int d = k; d > 0; d--) (*start)[d] = (*start)[d - 1];
  (*start)[0] = 0;
  return CT_OK;
}

/* Working state of one compressed build. */
typedef struct build {
  ct_replay r;
  int32_t *sweep;          /* f->n_nodes tangents or adjoints */
  int32_t *row_node;       /* f node of each row */
  int32_t *col_node;       /* f node of each column, -1 if dead */
  int32_t *ids;            /* graph id of each entry */
  size_t *seed_start, *seed_order, *entry_start, *entry_order;
} build;

/* Frees what a build holds (any field may be NULL). */
static void build_free(ct_context *ctx, build *b) {
  ct_free(ctx, b->sweep);
  ct_free(ctx, b->row_node);
  ct_free(ctx, b->col_node);
  ct_free(ctx, b->ids);
  ct_free(ctx, b->seed_start);
  ct_free(ctx, b->seed_order);
  ct_free(ctx, b->entry_start);
  ct_free(ctx, b->entry_order);
  ct_replay_free(ctx, &b->r);
}

/* Runs the sweeps of `c` over the replay in b and records each entry's
 * graph id in b->ids. */
static int run_sweeps(build *b, const compressed *c) {
  ct_graph *g = b->r.g;
  const ct_fun *f = b->r.f;
  size_t n = f->n_nodes;
  int32_t one = ct_graph_emit(g, CT_OP_CONST, 0, 0, 0, 1.0);
  if (one < 0) return g->status;
  for (size_t q = 0; q < c->n_entries; q++) b->ids[q] = ZERO;
  if (!c->reverse)
    for (size_t i = 0; i < n; i++)
      if (f->nodes[i].op == CT_OP_INPUT) b->sweep[i] = ZERO;
  for (int d = 0; d < c->n_dirs; d++) {
    size_t s0 = b->seed_start[d], s1 = b->seed_start[d + 1];
    if (!c->reverse) {
      for (size_t t = s0; t < s1; t++) {
        int32_t node = b->col_node[b->seed_order[t]];
        if (node >= 0) b->sweep[node] = one;
      }
      CT_CHECK(g->ctx, ct_forward_sweep(g, f, b->r.map, 1, b->sweep));
      for (size_t t = b->entry_start[d]; t < b->entry_start[d + 1]; t++) {
        size_t q = b->entry_order[t];
        b->ids[q] = b->sweep[b->row_node[c->row[q]]];
      }
      for (size_t t = s0; t < s1; t++) {
        int32_t node = b->col_node[b->seed_order[t]];
        if (node >= 0) b->sweep[node] = ZERO;
      }
    } else {
      for (size_t i = 0; i < n; i++) b->sweep[i] = ZERO;
      for (size_t t = s0; t < s1; t++) {
        int32_t *a = &b->sweep[b->row_node[b->seed_order[t]]];
        *a = *a == ZERO ? one : ct_graph_emit(g, CT_OP_ADD, *a, one, 0, 0);
      }
      CT_CHECK(g->ctx, ct_reverse_sweep(g, f, b->r.map, 1, b->sweep));
      for (size_t t = b->entry_start[d]; t < b->entry_start[d + 1]; t++) {
        size_t q = b->entry_order[t];
        int32_t node = b->col_node[c->col[q]];
        b->ids[q] = node < 0 ? ZERO : b->sweep[node];
      }
    }
    if (g->status < 0) return g->status;
  }
  return g->status;
}

/* Builds the function with f's inputs and one output `name` holding the
 * entries of `c`, computed by one constant-seeded sweep per direction. */
static int compressed_build(ct_context *ctx, const ct_fun *f,
                            const char *const *wrt, const compressed *c,
                            const char *name, ct_fun **out) {
  *out = NULL;
  size_t nrows, ncols;
  jac_dims(f, wrt, &nrows, &ncols);
  build b;
  memset(&b, 0, sizeof b);
  int rc = ct_replay_start(ctx, f, &b.r);
  size_t nn = f->n_nodes ? f->n_nodes : 1;
  if (rc == CT_OK) {
    b.sweep = ct_alloc(ctx, nn * sizeof *b.sweep);
    b.row_node = ct_alloc(ctx, (nrows ? nrows : 1) * sizeof *b.row_node);
    b.col_node = ct_alloc(ctx, (ncols ? ncols : 1) * sizeof *b.col_node);
    b.ids = ct_alloc(ctx, (c->n_entries ? c->n_entries : 1) * sizeof *b.ids);
    if (!b.sweep || !b.row_node || !b.col_node || !b.ids) rc = CT_ERR_NOMEM;
  }
  if (rc == CT_OK)
    rc = bucket(ctx, c->seed, c->reverse ? nrows : ncols, c->n_dirs,
                &b.seed_start, &b.seed_order);
  if (rc == CT_OK)
    rc = bucket(ctx, c->dir, c->n_entries, c->n_dirs, &b.entry_start, &b.entry_order);
  if (rc == CT_OK) {
    size_t row = 0, col = 0;
    for (size_t o = 0; o < f->n_out; o++)
      for (size_t j = 0; j < f->out[o].n; j++) b.row_node[row++] = f->out[o].ids[j];
    for (size_t i = 0; i < f->n_in; i++) {
      if (!ct_wrt_selected(wrt, f->in[i].name)) continue;
      for (size_t j = 0; j < f->in[i].n; j++)
        b.col_node[col++] = b.r.in_node[b.r.in_off[i] + j];
    }
    rc = run_sweeps(&b, c);
  }
  if (rc == CT_OK) {
    ct_graph *g = b.r.g;
    int32_t zero = ct_graph_emit(g, CT_OP_CONST, 0, 0, 0, 0.0);
    for (size_t q = 0; q < c->n_entries; q++)
      if (b.ids[q] == ZERO) b.ids[q] = zero;
    rc = ct_graph_add_output(g, name, c->n_entries, b.ids);
  }
  if (rc == CT_OK) rc = ct_graph_finalize(b.r.g, out);
  build_free(ctx, &b);
  if (rc < 0) return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  return CT_OK;
}

/* Colored sparse Jacobian, column or row coloring, whichever is cheaper. */
int ct_fun_sparse_jac(ct_context *ctx, const ct_fun *f, const char *const *wrt,
                      ct_fun **jac, ct_sparsity **pattern) {
  *jac = NULL;
  if (pattern) *pattern = NULL;
  CT_CHECK(ctx, ct_wrt_check(ctx, f, wrt));
  ct_sparsity *p = NULL;
  CT_CHECK(ctx, ct_fun_jac_sparsity(ctx, f, wrt, &p));
  int n_col = 0, n_row = 0;
  int *col_colors = ct_alloc(ctx, (p->ncols ? p->ncols : 1) * sizeof *col_colors);
  int *row_colors = ct_alloc(ctx, (p->nrows ? p->nrows : 1) * sizeof *row_colors);
  size_t *cols = ct_alloc(ctx, (p->nnz ? p->nnz : 1) * sizeof *cols);
  int *dirs = ct_alloc(ctx, (p->nnz ? p->nnz : 1) * sizeof *dirs);
  int rc = col_colors && row_colors && cols && dirs ? CT_OK : CT_ERR_NOMEM;
  if (rc == CT_OK) rc = ct_color_partial_d2(ctx, p, 0, col_colors, &n_col);
  if (rc == CT_OK) rc = ct_color_partial_d2(ctx, p, 1, row_colors, &n_row);
  if (rc == CT_OK) {
    int reverse = n_row < n_col; /* ties go to the forward sweeps */
    ct_context_log(ctx, CT_LOG_INFO,
                   "sparse Jacobian %zu x %zu, %zu nonzeros: %d column colors, "
                   "%d row colors; using %s coloring (%s sweeps)",
                   p->nrows, p->ncols, p->nnz, n_col, n_row,
                   reverse ? "row" : "column", reverse ? "reverse" : "forward");
    for (size_t j = 0; j < p->ncols; j++)
      for (size_t q = p->colptr[j]; q < p->colptr[j + 1]; q++) {
        cols[q] = j;
        dirs[q] = reverse ? row_colors[p->rowind[q]] : col_colors[j];
      }
    compressed c = {reverse, reverse ? n_row : n_col,
                    reverse ? row_colors : col_colors,
                    p->nnz, p->rowind, cols, dirs};
    rc = compressed_build(ctx, f, wrt, &c, "jac", jac);
  }
  ct_free(ctx, col_colors);
  ct_free(ctx, row_colors);
  ct_free(ctx, cols);
  ct_free(ctx, dirs);
  if (rc == CT_OK && pattern)
    *pattern = p;
  else
    ct_sparsity_free(ctx, p);
  if (rc < 0) return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  return CT_OK;
}

/* Dense column-major Jacobian: one direction per column (or per row). */
int ct_fun_dense_jac(ct_context *ctx, const ct_fun *f, const char *const *wrt,
                     ct_fun **jac) {
  *jac = NULL;
  CT_CHECK(ctx, ct_wrt_check(ctx, f, wrt));
  size_t nrows, ncols;
  jac_dims(f, wrt, &nrows, &ncols);
  int reverse = nrows < ncols;
  size_t n_dirs = reverse ? nrows : ncols;
  if (n_dirs > INT_MAX || (nrows && ncols > SIZE_MAX / nrows))
    return CT_ERROR(ctx, CT_ERR_ARG, "dense Jacobian %zu x %zu is too large", nrows, ncols);
  size_t n = nrows * ncols, nseed = reverse ? nrows : ncols;
  int *seed = ct_alloc(ctx, (nseed ? nseed : 1) * sizeof *seed);
  size_t *rows = ct_alloc(ctx, (n ? n : 1) * sizeof *rows);
  size_t *cols = ct_alloc(ctx, (n ? n : 1) * sizeof *cols);
  int *dirs = ct_alloc(ctx, (n ? n : 1) * sizeof *dirs);
  int rc = seed && rows && cols && dirs ? CT_OK : CT_ERR_NOMEM;
  if (rc == CT_OK) {
    /* One direction per column (or per row): column-major entries. */
    for (size_t v = 0; v < nseed; v++) seed[v] = (int)v;
    for (size_t j = 0; j < ncols; j++)
      for (size_t i = 0; i < nrows; i++) {
        size_t q = j * nrows + i;
        rows[q] = i;
        cols[q] = j;
        dirs[q] = (int)(reverse ? i : j);
      }
    compressed c = {reverse, (int)n_dirs, seed, n, rows, cols, dirs};
    rc = compressed_build(ctx, f, wrt, &c, "jac", jac);
  }
  ct_free(ctx, seed);
  ct_free(ctx, rows);
  ct_free(ctx, cols);
  ct_free(ctx, dirs);
  if (rc < 0) return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  return CT_OK;
}

/* Sparse Hessian: star coloring over the gradient function. */
int ct_fun_sparse_hess(ct_context *ctx, const ct_fun *f, const char *const *wrt,
                       ct_fun **hess, ct_sparsity **pattern) {
  *hess = NULL;
  if (pattern) *pattern = NULL;
  CT_CHECK(ctx, ct_wrt_check(ctx, f, wrt));
  ct_sparsity *p = NULL;
  ct_fun *grad = NULL, *only = NULL;
  size_t n_sel = 0;
  char **plain = ct_wrt_names(ctx, f, wrt, "", &n_sel);
  char **bars = ct_wrt_names(ctx, f, wrt, "bar_", &n_sel);
  int rc = plain && bars ? CT_OK : CT_ERR_NOMEM;
  if (rc == CT_OK) rc = ct_fun_hess_sparsity(ctx, f, wrt, &p);
  /* The gradient function with only the gradient outputs: its Jacobian
   * with respect to the selected inputs is the Hessian. */
  if (rc == CT_OK) rc = ct_fun_vjp(ctx, f, 1, wrt, &grad);
  if (rc == CT_OK) rc = ct_fun_select_outputs(ctx, grad, (const char *const *)bars, &only);
  size_t nnz = p && p->nnz ? p->nnz : 1, n = p && p->ncols ? p->ncols : 1;
  int *colors = rc < 0 ? NULL : ct_alloc(ctx, n * sizeof *colors);
  unsigned char *direct = rc < 0 ? NULL : ct_alloc(ctx, nnz);
  size_t *rows = rc < 0 ? NULL : ct_alloc(ctx, nnz * sizeof *rows);
  int *dirs = rc < 0 ? NULL : ct_alloc(ctx, nnz * sizeof *dirs);
  if (rc == CT_OK && (!colors || !direct || !rows || !dirs)) rc = CT_ERR_NOMEM;
  int k = 0;
  if (rc == CT_OK) rc = ct_color_star(ctx, p, colors, &k);
  if (rc == CT_OK) rc = ct_star_direct(ctx, p, colors, k, direct);
  if (rc == CT_OK) {
    ct_context_log(ctx, CT_LOG_INFO,
                   "sparse Hessian %zu x %zu, %zu nonzeros: %d star colors",
                   p->nrows, p->ncols, p->nnz, k);
    /* H(i, j) is compressed column color(j) at row i when direct, else
     * compressed column color(i) at row j. */
    for (size_t j = 0; j < p->ncols; j++)
      for (size_t q = p->colptr[j]; q < p->colptr[j + 1]; q++) {
        size_t i = p->rowind[q];
        rows[q] = direct[q] ? i : j;
        dirs[q] = direct[q] ? colors[j] : colors[i];
      }
    compressed c = {0, k, colors, p->nnz, rows, NULL, dirs};
    rc = compressed_build(ctx, only, (const char *const *)plain, &c, "hess", hess);
  }
  ct_free(ctx, colors);
  ct_free(ctx, direct);
  ct_free(ctx, rows);
  ct_free(ctx, dirs);
  ct_free(ctx, plain);
  ct_free(ctx, bars);
  ct_fun_free(grad);
  ct_fun_free(only);
  if (rc == CT_OK && pattern)
    *pattern = p;
  else
    ct_sparsity_free(ctx, p);
  if (rc < 0) return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  return CT_OK;
}

/* ---- Layouts ---------------------------------------------------------------- */

/* CSR copy of a CSC pattern, with each entry's CSC position. */
int ct_sparsity_to_csr(ct_context *ctx, const ct_sparsity *s, size_t **rowptr,
                       size_t **colind, size_t **csc_pos) {
  if (!s || !rowptr || !colind || !csc_pos)
    return CT_ERROR(ctx, CT_ERR_ARG, "ct_sparsity_to_csr: NULL argument");
  *rowptr = *colind = *csc_pos = NULL;
  for (size_t q = 0; q < s->nnz; q++)
    if (s->rowind[q] >= s->nrows)
      return CT_ERROR(ctx, CT_ERR_ARG, "row index %zu at position %zu is out of range (%zu rows)",
                      s->rowind[q], q, s->nrows);
  size_t nnz = s->nnz ? s->nnz : 1;
  size_t *rp = ct_calloc(ctx, s->nrows + 1, sizeof *rp);
  size_t *ci = ct_alloc(ctx, nnz * sizeof *ci);
  size_t *cp = ct_alloc(ctx, nnz * sizeof *cp);
  size_t *fill = ct_alloc(ctx, (s->nrows ? s->nrows : 1) * sizeof *fill);
  if (!rp || !ci || !cp || !fill) {
    ct_free(ctx, rp);
    ct_free(ctx, ci);
    ct_free(ctx, cp);
    ct_free(ctx, fill);
    return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  }
  for (size_t q = 0; q < s->nnz; q++) rp[s->rowind[q] + 1]++;
  for (size_t i = 0; i < s->nrows; i++) rp[i + 1] += rp[i];
  memcpy(fill, rp, s->nrows * sizeof *fill);
  /* Columns in increasing order leave each row's columns sorted. */
  for (size_t j = 0; j < s->ncols; j++)
    for (size_t q = s->colptr[j]; q < s->colptr[j + 1]; q++) {
      size_t at = fill[s->rowind[q]]++;
      ci[at] = j;
      cp[at] = q;
    }
  ct_free(ctx, fill);
  *rowptr = rp;
  *colind = ci;
  *csc_pos = cp;
  return CT_OK;
}
