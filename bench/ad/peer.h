/* C entry points of the C++ side of the AD benchmark (adolc_peer.cpp):
 * ADOL-C's tape for the same problems, and ColPack colorings. */
#ifndef COTANGENT_BENCH_AD_PEER_H
#define COTANGENT_BENCH_AD_PEER_H

#include <stddef.h>

#include "problems.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when the benchmark was built with ADOL-C. */
int bench_adolc_available(void);
/* ADOL-C's version, or "" without it. */
const char *bench_adolc_version(void);

typedef struct bench_adolc bench_adolc;

/* Traces the problem with adouble on tape `tag` (the parameters are
 * passive: constants on the tape), computes the Jacobian pattern (jac_pat)
 * and its column coloring (ColPack, smallest-last, partial distance-2: what
 * ADOL-C's sparse_jac does). NULL with a message in `err` on failure. */
bench_adolc *bench_adolc_new(const bench_problem *pb, short tag, char *err,
                             size_t errlen);
void bench_adolc_free(bench_adolc *a);

/* y = f(x) by a zero-order forward sweep (zos_forward). */
int bench_adolc_f(bench_adolc *a, const double *x, double *y);
/* g = w^T J by vec_jac (forward sweep keeping Taylors, then fos_reverse). */
int bench_adolc_vjp(bench_adolc *a, const double *x, const double *w, double *g);
/* The sparse Jacobian, the repeat != 0 path of ADOL-C's sparse_jac:
 * fov_forward with the seed matrix, then ColPack's recovery. */
int bench_adolc_sparse_jac(bench_adolc *a, const double *x);
/* The entries of the last sparse Jacobian, coordinate format. */
size_t bench_adolc_nnz(const bench_adolc *a);
void bench_adolc_entries(const bench_adolc *a, const unsigned int **rows,
                         const unsigned int **cols, const double **values);
/* Colors of the seed matrix (columns of the compressed Jacobian). */
int bench_adolc_colors(const bench_adolc *a);
/* Operations on the tape. */
size_t bench_adolc_tape_ops(const bench_adolc *a);

/* Colors of a ColPack partial distance-2 coloring of the columns (by_rows
 * 0) or rows (by_rows 1) of a pattern, the best of the NATURAL,
 * LARGEST_FIRST, SMALLEST_LAST and INCIDENCE_DEGREE orderings (what
 * ct_fun_sparse_jac tries), counting only the colors of non-empty columns
 * (rows). -1 on failure. Used only when the library's info line is not
 * found. */
int bench_colpack_colors(const ct_sparsity *pattern, int by_rows);

#ifdef __cplusplus
}
#endif

#endif /* COTANGENT_BENCH_AD_PEER_H */
