/* The C++ side of the AD benchmark: the problems traced on an ADOL-C tape,
 * ADOL-C's VJP and sparse Jacobian, and ColPack colorings.
 *
 * Debian's ADOL-C 2.7 is built without ColPack, so its sparse_jac() stops
 * with "can only be used if linked with ColPack". What sparse_jac does is
 * reproduced here step by step with the same calls: jac_pat for the
 * pattern, ColPack's BipartiteGraphPartialColoringInterface with
 * SMALLEST_LAST / COLUMN_PARTIAL_DISTANCE_TWO for the seed matrix, and on
 * each (repeat != 0) call fov_forward with the seed plus ColPack's
 * JacobianRecovery1D::RecoverD2Cln_CoordinateFormat (here its _usermem
 * variant, which writes into arrays allocated once). */
#include <ColPackHeaders.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <set>
#include <vector>

#include "peer.h"

#ifdef BENCH_HAVE_ADOLC
#include <adolc/adolc.h>
#include <adolc/sparse/sparsedrivers.h>
#endif

#ifndef BENCH_ADOLC_VERSION
#define BENCH_ADOLC_VERSION ""
#endif

/* ---- ColPack colorings of our patterns --------------------------------------- */

/* The pattern row-compressed in ADOL-C format: rows[i][0] is the count. */
static std::vector<std::vector<unsigned int>> crs_of(const ct_sparsity *s) {
  std::vector<std::vector<unsigned int>> rows(s->nrows, std::vector<unsigned int>(1, 0));
  for (size_t j = 0; j < s->ncols; j++)
    for (size_t q = s->colptr[j]; q < s->colptr[j + 1]; q++) {
      rows[s->rowind[q]].push_back(static_cast<unsigned int>(j));
      rows[s->rowind[q]][0]++;
    }
  return rows;
}

/* Colors of one ColPack partial distance-2 coloring, counting only the
 * non-empty columns (rows). */
static int count_colors(const ct_sparsity *pattern,
                        std::vector<std::vector<unsigned int>> &rows, int by_rows,
                        const char *ordering) {
  std::vector<unsigned int *> ptrs(rows.size() ? rows.size() : 1, nullptr);
  for (size_t i = 0; i < rows.size(); i++) ptrs[i] = rows[i].data();
  ColPack::BipartiteGraphPartialColoringInterface g(SRC_MEM_ADOLC, ptrs.data(),
                                                    static_cast<int>(pattern->nrows),
                                                    static_cast<int>(pattern->ncols));
  g.PartialDistanceTwoColoring(ordering, by_rows ? "ROW_PARTIAL_DISTANCE_TWO"
                                                 : "COLUMN_PARTIAL_DISTANCE_TWO");
  std::vector<int> colors;
  if (by_rows)
    g.GetLeftVertexColors(colors);
  else
    g.GetRightVertexColors(colors);
  std::set<int> distinct;
  for (size_t v = 0; v < colors.size(); v++) {
    bool used = by_rows ? rows[v][0] > 0 : pattern->colptr[v + 1] > pattern->colptr[v];
    if (used) distinct.insert(colors[v]);
  }
  return static_cast<int>(distinct.size());
}

extern "C" int bench_colpack_colors(const ct_sparsity *pattern, int by_rows) {
  static const char *const orderings[] = {"NATURAL", "LARGEST_FIRST", "SMALLEST_LAST",
                                          "INCIDENCE_DEGREE"};
  try {
    std::vector<std::vector<unsigned int>> rows = crs_of(pattern);
    int best = -1;
    for (const char *ordering : orderings) {
      int k = count_colors(pattern, rows, by_rows, ordering);
      if (best < 0 || k < best) best = k;
    }
    return best;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "bench: ColPack coloring failed: %s\n", e.what());
    return -1;
  } catch (...) {
    return -1;
  }
}

#ifdef BENCH_HAVE_ADOLC

/* ---- The problems on adouble --------------------------------------------------- */

template <class T>
static void problem_body(const bench_problem *pb, const T *x, const double *p, T *y) {
  switch (pb->kind) {
    case BENCH_LOTKA_VOLTERRA:
      y[0] = p[0] * x[0] - p[1] * x[0] * x[1];
      y[1] = p[3] * x[0] * x[1] - p[2] * x[1];
      break;
    case BENCH_ROBERTSON: {
      T r1 = p[0] * x[0], r2 = p[1] * x[1] * x[2], r3 = p[2] * x[1] * x[1];
      y[0] = -r1 + r2;
      y[1] = r1 - r2 - r3;
      y[2] = r3;
      break;
    }
    case BENCH_MASS_ACTION:
      for (size_t s = 0; s < pb->n; s++) y[s] = 0.0;
      for (size_t r = 0; r < pb->n_rx; r++) {
        const bench_reaction *rx = &pb->rx[r];
        T rate = p[r] * x[rx->reac[0]];
        if (rx->n_reac > 1) rate *= x[rx->reac[1]];
        for (int a = 0; a < rx->n_reac; a++) y[rx->reac[a]] -= rate;
        for (int b = 0; b < rx->n_prod; b++) y[rx->prod[b]] += rate;
      }
      break;
    case BENCH_BRUSSELATOR: {
      size_t N = pb->grid;
      double A = p[0], B = p[1], D = p[2] * static_cast<double>(N * N);
      auto at = [N](size_t i, size_t j, int c) { return 2 * (i * N + j) + static_cast<size_t>(c); };
      for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < N; j++) {
          size_t ip = i + 1 == N ? 0 : i + 1, im = i == 0 ? N - 1 : i - 1;
          size_t jp = j + 1 == N ? 0 : j + 1, jm = j == 0 ? N - 1 : j - 1;
          T lu = x[at(ip, j, 0)] + x[at(im, j, 0)] + x[at(i, jp, 0)] + x[at(i, jm, 0)] -
                 4.0 * x[at(i, j, 0)];
          T lv = x[at(ip, j, 1)] + x[at(im, j, 1)] + x[at(i, jp, 1)] + x[at(i, jm, 1)] -
                 4.0 * x[at(i, j, 1)];
          const T &u = x[at(i, j, 0)], &v = x[at(i, j, 1)];
          T uuv = u * u * v;
          y[at(i, j, 0)] = D * lu + A + uuv - (B + 1.0) * u;
          y[at(i, j, 1)] = D * lv + B * u - uuv;
        }
      break;
    }
  }
}

struct bench_adolc {
  short tag;
  int m, n;
  size_t ops;
  std::vector<unsigned int *> JP;      /* the pattern, ADOL-C format (malloc'd rows) */
  ColPack::BipartiteGraphPartialColoringInterface *g = nullptr;
  ColPack::JacobianRecovery1D recovery;
  double **seed = nullptr;             /* n x p, owned by g */
  int p = 0;
  double **B = nullptr;                /* m x p compressed Jacobian */
  std::vector<double> y;
  std::vector<unsigned int> rind, cind;
  std::vector<double> values;
};

extern "C" int bench_adolc_available(void) { return 1; }
extern "C" const char *bench_adolc_version(void) { return BENCH_ADOLC_VERSION; }

extern "C" bench_adolc *bench_adolc_new(const bench_problem *pb, short tag, char *err,
                                        size_t errlen) {
  bench_adolc *a = nullptr;
  try {
    a = new bench_adolc;
    a->tag = tag;
    a->m = a->n = static_cast<int>(pb->n);
    a->y.resize(pb->n);
    {
      std::vector<adouble> ax(pb->n), ay(pb->n);
      trace_on(tag);
      for (size_t i = 0; i < pb->n; i++) ax[i] <<= pb->x[i];
      problem_body<adouble>(pb, ax.data(), pb->p, ay.data());
      for (size_t i = 0; i < pb->n; i++) ay[i] >>= a->y[i];
      trace_off();
    }
    size_t stats[STAT_SIZE];
    tapestats(tag, stats);
    a->ops = stats[NUM_OPERATIONS];
    if (stats[OP_FILE_ACCESS] || stats[LOC_FILE_ACCESS] || stats[VAL_FILE_ACCESS])
      std::fprintf(stderr, "bench: warning: ADOL-C tape %d went to files\n", tag);

    /* Pattern (options: index domains, safe mode, automatic direction). */
    a->JP.assign(pb->n, nullptr);
    int opts[4] = {0, 0, 0, 0};
    if (jac_pat(tag, a->m, a->n, pb->x, a->JP.data(), opts) < 0) {
      std::snprintf(err, errlen, "ADOL-C jac_pat failed");
      bench_adolc_free(a);
      return nullptr;
    }
    size_t nnz = 0;
    for (int i = 0; i < a->m; i++) nnz += a->JP[static_cast<size_t>(i)][0];
    a->g = new ColPack::BipartiteGraphPartialColoringInterface(SRC_MEM_ADOLC, a->JP.data(),
                                                               a->m, a->n);
    int seed_rows = 0;
    a->g->GenerateSeedJacobian(&a->seed, &seed_rows, &a->p, "SMALLEST_LAST",
                               "COLUMN_PARTIAL_DISTANCE_TWO");
    a->B = myalloc2(static_cast<size_t>(a->m), static_cast<size_t>(a->p));
    a->rind.resize(nnz);
    a->cind.resize(nnz);
    a->values.resize(nnz);
    return a;
  } catch (const std::exception &e) {
    std::snprintf(err, errlen, "ADOL-C set-up failed: %s", e.what());
  } catch (...) {
    std::snprintf(err, errlen, "ADOL-C set-up failed (unknown exception)");
  }
  bench_adolc_free(a);
  return nullptr;
}

extern "C" void bench_adolc_free(bench_adolc *a) {
  if (!a) return;
  delete a->g; /* frees the seed matrix */
  if (a->B) myfree2(a->B);
  for (unsigned int *row : a->JP) std::free(row);
  delete a;
}

extern "C" int bench_adolc_f(bench_adolc *a, const double *x, double *y) {
  return zos_forward(a->tag, a->m, a->n, 0, x, y);
}

extern "C" int bench_adolc_vjp(bench_adolc *a, const double *x, const double *w, double *g) {
  return vec_jac(a->tag, a->m, a->n, 0, const_cast<double *>(x), const_cast<double *>(w), g);
}

extern "C" int bench_adolc_sparse_jac(bench_adolc *a, const double *x) {
  int rc = fov_forward(a->tag, a->m, a->n, a->p, x, a->seed, a->y.data(), a->B);
  unsigned int *r = a->rind.data(), *c = a->cind.data();
  double *v = a->values.data();
  a->recovery.RecoverD2Cln_CoordinateFormat_usermem(a->g, a->B, a->JP.data(), &r, &c, &v);
  return rc;
}

extern "C" size_t bench_adolc_nnz(const bench_adolc *a) { return a->values.size(); }

extern "C" void bench_adolc_entries(const bench_adolc *a, const unsigned int **rows,
                                    const unsigned int **cols, const double **values) {
  *rows = a->rind.data();
  *cols = a->cind.data();
  *values = a->values.data();
}

extern "C" int bench_adolc_colors(const bench_adolc *a) { return a->p; }
extern "C" size_t bench_adolc_tape_ops(const bench_adolc *a) { return a->ops; }

#else /* no ADOL-C */

extern "C" int bench_adolc_available(void) { return 0; }
extern "C" const char *bench_adolc_version(void) { return ""; }
extern "C" bench_adolc *bench_adolc_new(const bench_problem *, short, char *err,
                                        size_t errlen) {
  std::snprintf(err, errlen, "built without ADOL-C");
  return nullptr;
}
extern "C" void bench_adolc_free(bench_adolc *) {}
extern "C" int bench_adolc_f(bench_adolc *, const double *, double *) { return -1; }
extern "C" int bench_adolc_vjp(bench_adolc *, const double *, const double *, double *) {
  return -1;
}
extern "C" int bench_adolc_sparse_jac(bench_adolc *, const double *) { return -1; }
extern "C" size_t bench_adolc_nnz(const bench_adolc *) { return 0; }
extern "C" void bench_adolc_entries(const bench_adolc *, const unsigned int **rows,
                                    const unsigned int **cols, const double **values) {
  *rows = nullptr;
  *cols = nullptr;
  *values = nullptr;
}
extern "C" int bench_adolc_colors(const bench_adolc *) { return 0; }
extern "C" size_t bench_adolc_tape_ops(const bench_adolc *) { return 0; }

#endif
