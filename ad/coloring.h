/* Private: graph colorings of sparsity patterns for compressed derivatives.
 *
 * The colorings themselves come from ColPack, through the thin C++ shim in
 * ad/coloring_colpack.cpp (ct_colpack_*). The ct_color_* functions (in
 * ad/sparse_jac.c) convert a ct_sparsity to ColPack's input, call the shim,
 * renumber the colors and check the result before anyone relies on it.
 *
 * Color arrays hold one int per column (or row): a color in [0, n_colors)
 * for every column (row) that has at least one nonzero, -1 for those with
 * none (they need no seed). */
#ifndef COTANGENT_AD_COLORING_H
#define COTANGENT_AD_COLORING_H

#include "cotangent/ad.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- The ColPack shim (C++; every exception becomes CT_ERR_EXTERNAL) ------ */

/* Partial distance-2 coloring of the bipartite graph of an nrows x ncols
 * pattern given row-compressed in ADOL-C format (rows[i][0] is the count of
 * row i, rows[i][1..] its column indices). Colors the columns (by_rows 0) or
 * the rows (by_rows 1) greedily in ColPack's vertex `ordering` ("NATURAL",
 * "LARGEST_FIRST", "SMALLEST_LAST", "INCIDENCE_DEGREE", ...) and writes one
 * color per column (row) to `colors`, as ColPack numbers them. */
int ct_colpack_partial_d2(ct_context *ctx, unsigned int **rows, int nrows,
                          int ncols, int by_rows, const char *ordering,
                          int *colors);

/* Star coloring of the adjacency graph of a symmetric n x n pattern given
 * row-compressed in ADOL-C format (diagonal entries are ignored), in
 * ColPack's vertex `ordering`. Writes one color per vertex. */
int ct_colpack_star(ct_context *ctx, unsigned int **rows, int n,
                    const char *ordering, int *colors);

/* ---- Colorings of ct_sparsity patterns (C) --------------------------------- */

/* Partial distance-2 coloring of the columns (by_rows 0: no two columns of
 * one color share a row) or of the rows (by_rows 1: no two rows of one
 * color share a column): the fewest colors ColPack finds over several
 * vertex orderings. `colors` has room for ncols (nrows) ints. The result
 * is checked: CT_ERR_INTERNAL if ColPack returned an invalid one. */
int ct_color_partial_d2(ct_context *ctx, const ct_sparsity *pattern,
                        int by_rows, int *colors, int *n_colors);

/* Star coloring of a symmetric pattern (both triangles stored; CT_ERR_ARG
 * if it is not symmetric), the fewest colors ColPack finds over several
 * vertex orderings. `colors` has room for n ints. The result is
 * checked against the direct recovery rule of ct_star_direct:
 * CT_ERR_INTERNAL if some nonzero cannot be recovered. */
int ct_color_star(ct_context *ctx, const ct_sparsity *sym, int *colors,
                  int *n_colors);

/* Direct recovery from a star coloring. For each nonzero q = (i, j) of the
 * symmetric pattern (CSC order) writes direct[q] = 1 when H(i, j) is the
 * only term of color(j) in row i (read it from compressed column color(j)
 * at row i), 0 when H(j, i) is the only term of color(i) in row j (read
 * compressed column color(i) at row j). CT_ERR_INTERNAL if neither holds;
 * CT_ERR_ARG if the pattern is not symmetric. */
int ct_star_direct(ct_context *ctx, const ct_sparsity *sym, const int *colors,
                   int n_colors, unsigned char *direct);

#ifdef __cplusplus
}
#endif

#endif /* COTANGENT_AD_COLORING_H */
