/* The ColPack shim: plain C entry points over ColPack's C++ coloring
 * interfaces. Nothing else in Cotangent sees C++: every exception is caught
 * here and reported as CT_ERR_EXTERNAL. The inputs are allocated by the C
 * side through the context; only ColPack's own objects use new/delete. */
#include <ColPackHeaders.h>

#include <exception>
#include <new>
#include <vector>

#include "coloring.h"

/* Copies ColPack's colors to `colors`; CT_ERR_EXTERNAL if it returned the
 * wrong number of them or a negative one. */
static int copy_colors(ct_context *ctx, const std::vector<int> &got, int n,
                       int *colors, const char *what) {
  if (got.size() != static_cast<size_t>(n))
    return CT_ERROR(ctx, CT_ERR_EXTERNAL,
                    "ColPack %s coloring returned %zu colors for %d vertices",
                    what, got.size(), n);
  for (int v = 0; v < n; v++) {
    if (got[static_cast<size_t>(v)] < 0)
      return CT_ERROR(ctx, CT_ERR_EXTERNAL,
                      "ColPack %s coloring left vertex %d uncolored", what, v);
    colors[v] = got[static_cast<size_t>(v)];
  }
  return CT_OK;
}

/* Called inside a catch block: reports the exception in flight as
 * CT_ERR_EXTERNAL, located at `func`, and returns that status. */
static int report_exception(ct_context *ctx, const char *what,
                            const char *func) {
  try {
    throw;
  } catch (const std::bad_alloc &) {
    return ct_error_set(ctx, CT_ERR_EXTERNAL, __FILE__, __LINE__, func,
                        "ColPack %s coloring: out of memory", what);
  } catch (const std::exception &e) {
    return ct_error_set(ctx, CT_ERR_EXTERNAL, __FILE__, __LINE__, func,
                        "ColPack %s coloring: %s", what, e.what());
  } catch (...) {
    return ct_error_set(ctx, CT_ERR_EXTERNAL, __FILE__, __LINE__, func,
                        "ColPack %s coloring: unknown C++ exception", what);
  }
}

/* Partial distance-2 coloring of columns or rows (see coloring.h). */
extern "C" int ct_colpack_partial_d2(ct_context *ctx, unsigned int **rows,
                                     int nrows, int ncols, int by_rows,
                                     const char *ordering, int *colors) {
  const char *what = by_rows ? "row partial distance-2" : "column partial distance-2";
  try {
    ColPack::BipartiteGraphPartialColoringInterface g(SRC_MEM_ADOLC, rows,
                                                      nrows, ncols);
    /* The serial greedy coloring: PartialDistanceTwoColoring() runs the
     * OpenMP one, whose result depends on thread timing. */
    if (g.OrderVertices(ordering, by_rows ? "ROW_PARTIAL_DISTANCE_TWO"
                                          : "COLUMN_PARTIAL_DISTANCE_TWO") != _TRUE)
      return CT_ERROR(ctx, CT_ERR_EXTERNAL, "ColPack %s: ordering %s failed", what,
                      ordering);
    int ok = by_rows ? g.PartialDistanceTwoRowColoring_serial()
                     : g.PartialDistanceTwoColumnColoring_serial();
    if (ok != _TRUE)
      return CT_ERROR(ctx, CT_ERR_EXTERNAL, "ColPack %s coloring failed", what);
    std::vector<int> got;
    if (by_rows)
      g.GetLeftVertexColors(got);
    else
      g.GetRightVertexColors(got);
    return copy_colors(ctx, got, by_rows ? nrows : ncols, colors, what);
  } catch (...) {
    return report_exception(ctx, what, __func__);
  }
}

/* Star coloring of a symmetric pattern's adjacency graph (see coloring.h). */
extern "C" int ct_colpack_star(ct_context *ctx, unsigned int **rows, int n,
                               const char *ordering, int *colors) {
  try {
    ColPack::GraphColoringInterface g(SRC_MEM_ADOLC, rows, n);
    if (g.Coloring(ordering, "STAR") != _TRUE)
      return CT_ERROR(ctx, CT_ERR_EXTERNAL, "ColPack star coloring (%s ordering) failed",
                      ordering);
    std::vector<int> got;
    g.GetVertexColors(got);
    return copy_colors(ctx, got, n, colors, "star");
  } catch (...) {
    return report_exception(ctx, "star", __func__);
  }
}
