/* Sparse derivatives: colored sparse Jacobians against dense Jacobians and
 * central differences on seeded random mass-action-like networks, banded
 * and arrowhead functions; the coloring choice (column vs row) and color
 * counts; sparse Hessians against differences of gradients and against
 * Hessian-vector products; CSC -> CSR; the coloring checks; errors and
 * fault injection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ct_test.h"
#include "../../ad/coloring.h"

/* ---- Helpers ------------------------------------------------------------------ */

/* xorshift64*: a seeded generator, state passed explicitly. */
static uint64_t rng_next(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ULL;
}
static double rng_unif(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }
static size_t rng_index(uint64_t *s, size_t n) { return (size_t)(rng_next(s) % n); }

/* What the library logged about its colorings, read through the log sink. */
typedef struct coloring_log {
  int n_col, n_row, reverse, n_star;
  int jac_msgs, hess_msgs;
} coloring_log;

static void log_sink(void *ud, ct_log_level level, const char *msg) {
  coloring_log *c = ud;
  if (level != CT_LOG_INFO) return;
  const char *p;
  char how[16] = "";
  if (strstr(msg, "sparse Jacobian") && (p = strstr(msg, "nonzeros: "))) {
    assert_int_equal(sscanf(p, "nonzeros: %d column colors, %d row colors; using %15s",
                            &c->n_col, &c->n_row, how), 3);
    c->reverse = strcmp(how, "row") == 0;
    c->jac_msgs++;
  } else if (strstr(msg, "sparse Hessian") && (p = strstr(msg, "nonzeros: "))) {
    assert_int_equal(sscanf(p, "nonzeros: %d star colors", &c->n_star), 1);
    c->hess_msgs++;
  }
}

static ct_context *new_ctx(coloring_log *log) {
  ct_context *ctx = ct_context_new(NULL);
  assert_non_null(ctx);
  if (log) {
    memset(log, 0, sizeof *log);
    ct_context_set_log_level(ctx, CT_LOG_INFO);
    ct_context_set_log_fn(ctx, log_sink, log);
  }
  return ctx;
}

static size_t total_in(const ct_fun *f) {
  size_t n = 0;
  for (size_t i = 0; i < ct_fun_n_in(f); i++) n += ct_fun_in_size(f, i);
  return n;
}
static size_t total_out(const ct_fun *f) {
  size_t n = 0;
  for (size_t o = 0; o < ct_fun_n_out(f); o++) n += ct_fun_out_size(f, o);
  return n;
}

/* Evaluates f on its inputs concatenated in `x`, writing its outputs
 * concatenated to `y`. */
static void feval(ct_context *ctx, const ct_fun *f, const double *x, double *y) {
  size_t ni = ct_fun_n_in(f), no = ct_fun_n_out(f);
  const double **in = malloc((ni + 1) * sizeof *in);
  double **out = malloc((no + 1) * sizeof *out);
  double *work = malloc((ct_fun_work_size(f) + 1) * sizeof *work);
  assert_true(in && out && work);
  for (size_t i = 0, off = 0; i < ni; off += ct_fun_in_size(f, i), i++) in[i] = x + off;
  for (size_t o = 0, off = 0; o < no; off += ct_fun_out_size(f, o), o++) out[o] = y + off;
  assert_int_equal(ct_fun_eval(ctx, f, in, out, work), CT_OK);
  free(in);
  free(out);
  free(work);
}

/* Flat input index of each selected column (inputs of f in order). */
static size_t *column_map(const ct_fun *f, const char *const *wrt, size_t *ncols) {
  size_t *map = malloc((total_in(f) + 1) * sizeof *map), n = 0;
  assert_non_null(map);
  for (size_t i = 0, off = 0; i < ct_fun_n_in(f); off += ct_fun_in_size(f, i), i++) {
    int sel = !wrt;
    for (const char *const *w = wrt; w && *w; w++) sel |= strcmp(*w, ct_fun_in_name(f, i)) == 0;
    for (size_t j = 0; sel && j < ct_fun_in_size(f, i); j++) map[n++] = off + j;
  }
  *ncols = n;
  return map;
}

/* Position of (i, j) in a CSC pattern, or -1. */
static long find_entry(const ct_sparsity *p, size_t i, size_t j) {
  for (size_t q = p->colptr[j]; q < p->colptr[j + 1]; q++)
    if (p->rowind[q] == i) return (long)q;
  return -1;
}

static int close_rel(double a, double b, double rel, double abs_tol) {
  return fabs(a - b) <= abs_tol + rel * fmax(fabs(a), fabs(b));
}

/* ---- Test functions --------------------------------------------------------- */

/* A random mass-action-like network: inputs x (nx species) and k (8 rate
 * constants); outputs y (ny rates), each a sum of 1-3 terms k_r * (product
 * of 1-3 factors: x_a, x_a^2, exp(-x_a/2), sqrt(x_a), x_a / (1 + x_b)), and
 * z (3 pair products). */
static ct_fun *network(ct_context *ctx, size_t nx, size_t ny, uint64_t seed) {
  uint64_t s = seed;
  ct_graph *g = ct_graph_new(ctx);
  assert_non_null(g);
  ct_var *x = malloc(nx * sizeof *x), *y = malloc(ny * sizeof *y), k[8], z[3];
  assert_true(x && y);
  ct_graph_input(g, "x", nx, NULL, x);
  ct_graph_input(g, "k", 8, NULL, k);
  for (size_t i = 0; i < ny; i++) {
    ct_var sum = ct_const(g, 0);
    size_t terms = 1 + rng_index(&s, 3);
    for (size_t t = 0; t < terms; t++) {
      ct_var term = k[rng_index(&s, 8)];
      size_t factors = 1 + rng_index(&s, 3);
      for (size_t f = 0; f < factors; f++) {
        ct_var a = x[rng_index(&s, nx)], b = x[rng_index(&s, nx)];
        switch (rng_index(&s, 5)) {
          case 0: term = ct_mul(term, a); break;
          case 1: term = ct_mul(term, ct_sqr(a)); break;
          case 2: term = ct_mul(term, ct_exp(ct_mulc(a, -0.5))); break;
          case 3: term = ct_mul(term, ct_sqrt(a)); break;
          default: term = ct_mul(term, ct_div(a, ct_addc(b, 1.0))); break;
        }
      }
      sum = rng_index(&s, 4) == 0 ? ct_sub(sum, term) : ct_add(sum, term);
    }
    y[i] = sum;
  }
  for (int c = 0; c < 3; c++) z[c] = ct_mul(x[rng_index(&s, nx)], x[rng_index(&s, nx)]);
  ct_graph_output(g, "y", ny, y);
  ct_graph_output(g, "z", 3, z);
  ct_fun *f = NULL;
  assert_int_equal(ct_graph_finalize(g, &f), CT_OK);
  ct_graph_free(g);
  free(x);
  free(y);
  return f;
}

enum shape { TRIDIAGONAL, DENSE_COLUMN, DENSE_ROW, ARROWHEAD };

/* Structured functions of one input x (n) with one output y (n):
 * TRIDIAGONAL y_i = x_{i-1} x_i + sin x_i - x_{i+1}^2;
 * DENSE_COLUMN y_0 = x_0^2, y_i = x_i^2 + x_0 x_i (column 0 dense);
 * DENSE_ROW y_0 = sum_j sin x_j, y_i = x_i^3 (row 0 dense);
 * ARROWHEAD both: y_0 = sum_j sin x_j, y_i = x_i^2 + x_0 x_i. */
static ct_fun *structured(ct_context *ctx, enum shape shape, size_t n) {
  ct_graph *g = ct_graph_new(ctx);
  assert_non_null(g);
  ct_var *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
  assert_true(x && y);
  ct_graph_input(g, "x", n, NULL, x);
  for (size_t i = 0; i < n; i++) {
    switch (shape) {
      case TRIDIAGONAL:
        y[i] = ct_sin(x[i]);
        if (i > 0) y[i] = ct_add(y[i], ct_mul(x[i - 1], x[i]));
        if (i + 1 < n) y[i] = ct_sub(y[i], ct_sqr(x[i + 1]));
        break;
      case DENSE_COLUMN:
        y[i] = i == 0 ? ct_sqr(x[0]) : ct_add(ct_sqr(x[i]), ct_mul(x[0], x[i]));
        break;
      case DENSE_ROW:
        y[i] = ct_powi(x[i], 3);
        break;
      case ARROWHEAD:
        y[i] = ct_add(ct_sqr(x[i]), ct_mul(x[0], x[i]));
        break;
    }
  }
  if (shape == DENSE_ROW || shape == ARROWHEAD) {
    ct_var sum = ct_const(g, 0);
    for (size_t j = 0; j < n; j++) sum = ct_add(sum, ct_sin(x[j]));
    y[0] = sum;
  }
  ct_graph_output(g, "y", n, y);
  ct_fun *f = NULL;
  assert_int_equal(ct_graph_finalize(g, &f), CT_OK);
  ct_graph_free(g);
  free(x);
  free(y);
  return f;
}

/* A point for f's inputs, components in [0.5, 1.5]. */
static double *point(const ct_fun *f, uint64_t seed) {
  size_t n = total_in(f);
  double *x = malloc((n + 1) * sizeof *x);
  assert_non_null(x);
  for (size_t i = 0; i < n; i++) x[i] = 0.5 + rng_unif(&seed);
  return x;
}

/* ---- Jacobian checks ---------------------------------------------------------- */

/* Checks the sparse Jacobian of f at x against the dense one (1e-13
 * relative, exact zeros outside the pattern) and central differences
 * (1e-6), the color counts against their bounds and the choice against
 * the cheaper coloring. Fills *log. */
static void check_jacobian(const ct_fun *f, const char *const *wrt,
                           const double *x, coloring_log *log) {
  ct_context *ctx = new_ctx(log);
  ct_fun *sj = NULL, *dj = NULL;
  ct_sparsity *p = NULL;
  assert_int_equal(ct_fun_sparse_jac(ctx, f, wrt, &sj, &p), CT_OK);
  assert_int_equal(log->jac_msgs, 1);
  assert_int_equal(ct_fun_dense_jac(ctx, f, wrt, &dj), CT_OK);
  size_t ncols, nrows = total_out(f);
  size_t *cmap = column_map(f, wrt, &ncols);
  assert_int_equal(p->nrows, nrows);
  assert_int_equal(p->ncols, ncols);

  /* The result functions: f's inputs, one output "jac". */
  assert_int_equal(ct_fun_n_in(sj), ct_fun_n_in(f));
  for (size_t i = 0; i < ct_fun_n_in(f); i++)
    assert_string_equal(ct_fun_in_name(sj, i), ct_fun_in_name(f, i));
  assert_int_equal(ct_fun_n_out(sj), 1);
  assert_string_equal(ct_fun_out_name(sj, 0), "jac");
  assert_int_equal(ct_fun_out_size(sj, 0), p->nnz);
  assert_int_equal(ct_fun_out_size(dj, 0), nrows * ncols);

  double *vals = malloc((p->nnz + 1) * sizeof *vals);
  double *dense = malloc((nrows * ncols + 1) * sizeof *dense);
  assert_true(vals && dense);
  feval(ctx, sj, x, vals);
  feval(ctx, dj, x, dense);

  /* Sparse == dense on the pattern, dense exactly zero off it. */
  for (size_t j = 0; j < ncols; j++) {
    size_t q = p->colptr[j];
    for (size_t i = 0; i < nrows; i++) {
      double d = dense[j * nrows + i];
      if (q < p->colptr[j + 1] && p->rowind[q] == i) {
        if (!close_rel(vals[q], d, 1e-13, 0))
          fail_msg("J(%zu, %zu): sparse %.17g, dense %.17g", i, j, vals[q], d);
        q++;
      } else if (d != 0) {
        fail_msg("J(%zu, %zu) = %g is outside the pattern", i, j, d);
      }
    }
  }

  /* Dense == central differences. */
  size_t nx = total_in(f);
  double *xp = malloc(nx * sizeof *xp), *yp = malloc(nrows * sizeof *yp),
         *ym = malloc(nrows * sizeof *ym);
  assert_true(xp && yp && ym);
  memcpy(xp, x, nx * sizeof *xp);
  for (size_t j = 0; j < ncols; j++) {
    size_t c = cmap[j];
    double h = 1e-6 * fmax(1.0, fabs(x[c]));
    xp[c] = x[c] + h;
    feval(ctx, f, xp, yp);
    xp[c] = x[c] - h;
    feval(ctx, f, xp, ym);
    xp[c] = x[c];
    for (size_t i = 0; i < nrows; i++) {
      double fd = (yp[i] - ym[i]) / (2 * h), d = dense[j * nrows + i];
      if (!close_rel(fd, d, 1e-6, 1e-6))
        fail_msg("J(%zu, %zu): dense %.12g, differences %.12g", i, j, d, fd);
    }
  }

  /* Color counts: at least the largest row (column) degree, at most one
   * more than the largest distance-2 degree (any greedy coloring). */
  size_t *rowdeg = calloc(nrows + 1, sizeof *rowdeg);
  size_t max_rowdeg = 0, max_coldeg = 0, max_d2c = 0, max_d2r = 0;
  assert_non_null(rowdeg);
  for (size_t q = 0; q < p->nnz; q++) rowdeg[p->rowind[q]]++;
  for (size_t i = 0; i < nrows; i++) max_rowdeg = rowdeg[i] > max_rowdeg ? rowdeg[i] : max_rowdeg;
  for (size_t j = 0; j < ncols; j++) {
    size_t d = p->colptr[j + 1] - p->colptr[j];
    max_coldeg = d > max_coldeg ? d : max_coldeg;
  }
  size_t *rowptr, *colind, *csc_pos;
  assert_int_equal(ct_sparsity_to_csr(ctx, p, &rowptr, &colind, &csc_pos), CT_OK);
  char *mark = calloc(ncols + nrows + 1, 1);
  assert_non_null(mark);
  for (size_t j = 0; j < ncols; j++) { /* columns sharing a row with j */
    size_t d2 = 0;
    for (size_t q = p->colptr[j]; q < p->colptr[j + 1]; q++) {
      size_t i = p->rowind[q];
      for (size_t t = rowptr[i]; t < rowptr[i + 1]; t++)
        if (colind[t] != j && !mark[colind[t]]) mark[colind[t]] = 1, d2++;
    }
    for (size_t q = p->colptr[j]; q < p->colptr[j + 1]; q++) {
      size_t i = p->rowind[q];
      for (size_t t = rowptr[i]; t < rowptr[i + 1]; t++) mark[colind[t]] = 0;
    }
    max_d2c = d2 > max_d2c ? d2 : max_d2c;
  }
  for (size_t i = 0; i < nrows; i++) { /* rows sharing a column with i */
    size_t d2 = 0;
    for (size_t t = rowptr[i]; t < rowptr[i + 1]; t++) {
      size_t j = colind[t];
      for (size_t q = p->colptr[j]; q < p->colptr[j + 1]; q++)
        if (p->rowind[q] != i && !mark[p->rowind[q]]) mark[p->rowind[q]] = 1, d2++;
    }
    for (size_t t = rowptr[i]; t < rowptr[i + 1]; t++) {
      size_t j = colind[t];
      for (size_t q = p->colptr[j]; q < p->colptr[j + 1]; q++) mark[p->rowind[q]] = 0;
    }
    max_d2r = d2 > max_d2r ? d2 : max_d2r;
  }
  assert_true((size_t)log->n_col >= max_rowdeg);
  assert_true((size_t)log->n_row >= max_coldeg);
  if (p->nnz) {
    assert_true((size_t)log->n_col <= max_d2c + 1);
    assert_true((size_t)log->n_row <= max_d2r + 1);
  }
  assert_int_equal(log->reverse, log->n_row < log->n_col);

  free(rowdeg);
  free(mark);
  ct_free(ctx, rowptr);
  ct_free(ctx, colind);
  ct_free(ctx, csc_pos);
  free(xp);
  free(yp);
  free(ym);
  free(vals);
  free(dense);
  free(cmap);
  ct_sparsity_free(ctx, p);
  ct_fun_free(sj);
  ct_fun_free(dj);
  ct_context_free(ctx);
}

/* ---- Hessian checks ----------------------------------------------------------- */

/* Checks the sparse Hessian of sum_i w_i f_i at x against central
 * differences of the gradient (1e-6, and ~0 off the pattern), its symmetry
 * and Hessian-vector products with unit vectors (1e-12). Fills *log. */
static void check_hessian(const ct_fun *f, const char *const *wrt,
                          const double *x, uint64_t seed, coloring_log *log) {
  ct_context *ctx = new_ctx(log);
  ct_fun *sh = NULL, *grad = NULL, *hvp = NULL;
  ct_sparsity *p = NULL;
  assert_int_equal(ct_fun_sparse_hess(ctx, f, wrt, &sh, &p), CT_OK);
  assert_int_equal(log->hess_msgs, 1);
  assert_int_equal(ct_fun_vjp(ctx, f, 1, wrt, &grad), CT_OK);
  assert_int_equal(ct_fun_hvp(ctx, f, wrt, &hvp), CT_OK);
  size_t n, nx = total_in(f), nout = total_out(f);
  size_t *cmap = column_map(f, wrt, &n);
  assert_int_equal(p->nrows, n);
  assert_int_equal(p->ncols, n);

  /* Inputs of the Hessian function: f's inputs, then bar_<out>. */
  assert_int_equal(ct_fun_n_in(sh), ct_fun_n_in(f) + ct_fun_n_out(f));
  for (size_t o = 0; o < ct_fun_n_out(f); o++) {
    char want[64];
    snprintf(want, sizeof want, "bar_%s", ct_fun_out_name(f, o));
    assert_string_equal(ct_fun_in_name(sh, ct_fun_n_in(f) + o), want);
  }
  assert_int_equal(ct_fun_n_out(sh), 1);
  assert_string_equal(ct_fun_out_name(sh, 0), "hess");
  assert_int_equal(ct_fun_out_size(sh, 0), p->nnz);

  /* xw: f's inputs then the weights; hvp's input adds the direction. */
  double *xw = malloc((nx + nout + n + 1) * sizeof *xw);
  assert_non_null(xw);
  memcpy(xw, x, nx * sizeof *xw);
  for (size_t i = 0; i < nout; i++) xw[nx + i] = 2 * rng_unif(&seed) - 1;
  double *h = malloc((p->nnz + 1) * sizeof *h);
  assert_non_null(h);
  feval(ctx, sh, xw, h);

  /* Symmetry (both triangles stored). */
  for (size_t j = 0; j < n; j++)
    for (size_t q = p->colptr[j]; q < p->colptr[j + 1]; q++) {
      long t = find_entry(p, j, p->rowind[q]);
      assert_true(t >= 0);
      if (!close_rel(h[q], h[t], 1e-12, 1e-300))
        fail_msg("H(%zu, %zu) = %.17g but H(%zu, %zu) = %.17g", p->rowind[q], j,
                 h[q], j, p->rowind[q], h[t]);
    }

  /* Central differences of the gradient outputs bar_<in>. */
  size_t gout = total_out(grad);
  double *gp = malloc(gout * sizeof *gp), *gm = malloc(gout * sizeof *gm);
  double *xp = malloc((nx + nout) * sizeof *xp);
  assert_true(gp && gm && xp);
  memcpy(xp, xw, (nx + nout) * sizeof *xp);
  for (size_t j = 0; j < n; j++) {
    size_t c = cmap[j];
    double step = 1e-6 * fmax(1.0, fabs(x[c]));
    xp[c] = x[c] + step;
    feval(ctx, grad, xp, gp);
    xp[c] = x[c] - step;
    feval(ctx, grad, xp, gm);
    xp[c] = x[c];
    for (size_t i = 0; i < n; i++) {
      double fd = (gp[nout + i] - gm[nout + i]) / (2 * step);
      long q = find_entry(p, i, j);
      double v = q >= 0 ? h[q] : 0.0;
      if (!close_rel(fd, v, 1e-6, 1e-6))
        fail_msg("H(%zu, %zu): sparse %.12g, differences %.12g", i, j, v, fd);
    }
  }

  /* Hessian-vector products with unit vectors: column j of H. */
  double *hv = malloc(n * sizeof *hv);
  assert_non_null(hv);
  for (size_t j = 0; j < n; j++) xw[nx + nout + j] = 0;
  for (size_t j = 0; j < n; j++) {
    xw[nx + nout + j] = 1;
    feval(ctx, hvp, xw, hv);
    xw[nx + nout + j] = 0;
    for (size_t i = 0; i < n; i++) {
      long q = find_entry(p, i, j);
      double v = q >= 0 ? h[q] : 0.0;
      if (!close_rel(hv[i], v, 1e-12, 1e-300))
        fail_msg("H(%zu, %zu): sparse %.17g, hvp %.17g", i, j, v, hv[i]);
    }
  }

  free(hv);
  free(gp);
  free(gm);
  free(xp);
  free(h);
  free(xw);
  free(cmap);
  ct_sparsity_free(ctx, p);
  ct_fun_free(sh);
  ct_fun_free(grad);
  ct_fun_free(hvp);
  ct_context_free(ctx);
}

/* ---- Tests ---------------------------------------------------------------------- */

static void test_random_networks(void **state) {
  (void)state;
  static const size_t sizes[][2] = {{50, 60}, {200, 150}, {500, 500}};
  static const char *const only_x[] = {"x", NULL};
  static const char *const only_k[] = {"k", NULL};
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
    ct_context *ctx = new_ctx(NULL);
    ct_fun *f = network(ctx, sizes[s][0], sizes[s][1], 1234 + s);
    double *x = point(f, 99 + s);
    coloring_log all, xs, ks, hx, hall;
    check_jacobian(f, NULL, x, &all);
    check_jacobian(f, only_x, x, &xs);
    check_jacobian(f, only_k, x, &ks);
    print_message("network %zu x %zu: columns x,k %d/%d rows; x only %d/%d; "
                  "k only %d/%d\n", sizes[s][0], sizes[s][1], all.n_col,
                  all.n_row, xs.n_col, xs.n_row, ks.n_col, ks.n_row);
    check_hessian(f, only_x, x, 7 + s, &hx);
    if (sizes[s][0] <= 200) check_hessian(f, NULL, x, 8 + s, &hall);
    print_message("network %zu x %zu: star colors x only %d\n", sizes[s][0],
                  sizes[s][1], hx.n_star);
    free(x);
    ct_fun_free(f);
    ct_context_free(ctx);
  }
}

static void test_tridiagonal(void **state) {
  (void)state;
  ct_context *ctx = new_ctx(NULL);
  ct_fun *f = structured(ctx, TRIDIAGONAL, 100);
  double *x = point(f, 5);
  coloring_log j, h;
  check_jacobian(f, NULL, x, &j);
  assert_int_equal(j.n_col, 3);
  assert_int_equal(j.n_row, 3);
  assert_false(j.reverse); /* a tie goes to the forward sweeps */
  check_hessian(f, NULL, x, 6, &h);
  assert_true(h.n_star >= 3);
  print_message("tridiagonal: %d column, %d row, %d star colors\n", j.n_col,
                j.n_row, h.n_star);
  free(x);
  ct_fun_free(f);
  ct_context_free(ctx);
}

/* A dense column makes every row share it (row coloring needs n colors)
 * while the other columns share rows only with it (column coloring needs
 * 2): columns win. A dense row is the transpose: rows win. With both,
 * both need n; the tie goes to columns. */
static void test_dense_column_row_arrowhead(void **state) {
  (void)state;
  const size_t n = 60;
  ct_context *ctx = new_ctx(NULL);
  coloring_log j, h;

  ct_fun *f = structured(ctx, DENSE_COLUMN, n);
  double *x = point(f, 11);
  check_jacobian(f, NULL, x, &j);
  assert_int_equal(j.n_col, 2);
  assert_int_equal(j.n_row, (int)n);
  assert_false(j.reverse);
  check_hessian(f, NULL, x, 12, &h); /* an arrowhead Hessian: a star graph */
  assert_int_equal(h.n_star, 2);
  print_message("dense column: %d column, %d row, %d star colors\n", j.n_col,
                j.n_row, h.n_star);
  free(x);
  ct_fun_free(f);

  f = structured(ctx, DENSE_ROW, n);
  x = point(f, 13);
  check_jacobian(f, NULL, x, &j);
  assert_int_equal(j.n_col, (int)n);
  assert_int_equal(j.n_row, 2);
  assert_true(j.reverse);
  check_hessian(f, NULL, x, 14, &h); /* diagonal */
  assert_int_equal(h.n_star, 1);
  print_message("dense row: %d column, %d row, %d star colors\n", j.n_col,
                j.n_row, h.n_star);
  free(x);
  ct_fun_free(f);

  f = structured(ctx, ARROWHEAD, n);
  x = point(f, 15);
  check_jacobian(f, NULL, x, &j);
  assert_int_equal(j.n_col, (int)n);
  assert_int_equal(j.n_row, (int)n);
  assert_false(j.reverse);
  check_hessian(f, NULL, x, 16, &h);
  print_message("arrowhead: %d column, %d row, %d star colors\n", j.n_col,
                j.n_row, h.n_star);
  free(x);
  ct_fun_free(f);
  ct_context_free(ctx);
}

/* Outputs that do not depend on the inputs: an empty pattern, no colors. */
static void test_empty_pattern(void **state) {
  (void)state;
  coloring_log log;
  ct_context *ctx = new_ctx(&log);
  ct_graph *g = ct_graph_new(ctx);
  ct_var x[3], y[2];
  ct_graph_input(g, "x", 3, NULL, x);
  y[0] = ct_const(g, 2);
  y[1] = ct_floor(x[1]);
  ct_graph_output(g, "y", 2, y);
  ct_fun *f = NULL, *jac = NULL, *hess = NULL;
  assert_int_equal(ct_graph_finalize(g, &f), CT_OK);
  ct_graph_free(g);
  ct_sparsity *p = NULL;
  assert_int_equal(ct_fun_sparse_jac(ctx, f, NULL, &jac, &p), CT_OK);
  assert_int_equal(p->nnz, 0);
  assert_int_equal(ct_fun_out_size(jac, 0), 0);
  assert_int_equal(log.n_col, 0);
  assert_int_equal(log.n_row, 0);
  ct_sparsity_free(ctx, p);
  assert_int_equal(ct_fun_sparse_hess(ctx, f, NULL, &hess, &p), CT_OK);
  assert_int_equal(p->nnz, 0);
  assert_int_equal(log.n_star, 0);
  ct_sparsity_free(ctx, p);
  ct_fun_free(jac);
  ct_fun_free(hess);
  ct_fun_free(f);
  ct_context_free(ctx);
}

/* Rows that are an input, a constant or empty, an unused column, and a
 * second output vector. */
static void test_corner_rows_and_columns(void **state) {
  (void)state;
  ct_context *ctx = new_ctx(NULL);
  ct_graph *g = ct_graph_new(ctx);
  ct_var x[5], y[4], z[2];
  ct_graph_input(g, "x", 5, NULL, x);
  y[0] = x[0];                                /* identity row */
  y[1] = ct_const(g, 2.0);                    /* empty row */
  y[2] = ct_mul(x[0], x[2]);
  y[3] = ct_exp(ct_mul(x[3], x[4]));
  z[0] = ct_floor(x[2]);                      /* piecewise constant: empty */
  z[1] = ct_sub(ct_sqr(x[4]), x[0]);          /* x[1] is used nowhere */
  ct_graph_output(g, "y", 4, y);
  ct_graph_output(g, "z", 2, z);
  ct_fun *f = NULL;
  assert_int_equal(ct_graph_finalize(g, &f), CT_OK);
  ct_graph_free(g);
  double *x0 = point(f, 21);
  coloring_log j, h;
  check_jacobian(f, NULL, x0, &j);
  check_hessian(f, NULL, x0, 22, &h);
  print_message("corner cases: %d column, %d row, %d star colors\n", j.n_col,
                j.n_row, h.n_star);
  free(x0);
  ct_fun_free(f);
  ct_context_free(ctx);
}

/* Branches taken while tracing stay guarded in the derivative functions:
 * evaluating them where the branch flips asks for a re-trace. */
static void test_guards_carry_over(void **state) {
  (void)state;
  ct_context *ctx = new_ctx(NULL);
  ct_graph *g = ct_graph_new(ctx);
  ct_var x[2], y[2];
  const double at[2] = {2.0, 3.0};
  ct_graph_input(g, "x", 2, at, x);
  if (ct_branch(ct_gt(x[0], ct_const(g, 1.0)))) {
    y[0] = ct_mul(x[0], x[1]);
  } else {
    y[0] = ct_sqr(x[1]);
  }
  y[1] = ct_sin(x[0]);
  ct_graph_output(g, "y", 2, y);
  ct_fun *f = NULL, *jac = NULL, *hess = NULL;
  assert_int_equal(ct_graph_finalize(g, &f), CT_OK);
  ct_graph_free(g);
  ct_sparsity *p = NULL, *ph = NULL;
  assert_int_equal(ct_fun_sparse_jac(ctx, f, NULL, &jac, &p), CT_OK);
  assert_int_equal(ct_fun_sparse_hess(ctx, f, NULL, &hess, &ph), CT_OK);
  assert_true(ct_fun_n_guards(jac) >= 1);
  assert_true(ct_fun_n_guards(hess) >= 1);
  double vals[8], work_j[64], work_h[64];
  assert_true(ct_fun_work_size(jac) <= 64 && ct_fun_work_size(hess) <= 64);
  double xin[2] = {2.0, 3.0}, w[2] = {1.0, 1.0};
  const double *in[2] = {xin, w};
  double *out[1] = {vals};
  assert_int_equal(ct_fun_eval(ctx, jac, in, out, work_j), CT_OK);
  assert_int_equal(p->nnz, 3); /* dy0/dx0 = x1, dy0/dx1 = x0, dy1/dx0 */
  assert_true(vals[0] == 3.0 || vals[1] == 3.0);
  assert_int_equal(ct_fun_eval(ctx, hess, in, out, work_h), CT_OK);
  xin[0] = 0.5;
  assert_int_equal(ct_fun_eval(ctx, jac, in, out, work_j), CT_RETRACE);
  assert_int_equal(ct_fun_eval(ctx, hess, in, out, work_h), CT_RETRACE);
  ct_sparsity_free(ctx, p);
  ct_sparsity_free(ctx, ph);
  ct_fun_free(jac);
  ct_fun_free(hess);
  ct_fun_free(f);
  ct_context_free(ctx);
}

/* CSR from CSC and back gives the same pattern; csc_pos points at the same
 * (row, column). */
static void test_csr_round_trip(void **state) {
  (void)state;
  ct_context *ctx = new_ctx(NULL);
  ct_fun *f = network(ctx, 80, 70, 4242);
  ct_sparsity *p = NULL;
  assert_int_equal(ct_fun_jac_sparsity(ctx, f, NULL, &p), CT_OK);
  size_t *rowptr, *colind, *csc_pos;
  assert_int_equal(ct_sparsity_to_csr(ctx, p, &rowptr, &colind, &csc_pos), CT_OK);
  assert_int_equal(rowptr[0], 0);
  assert_int_equal(rowptr[p->nrows], p->nnz);
  char *seen = calloc(p->nnz + 1, 1);
  size_t *colptr = calloc(p->ncols + 1, sizeof *colptr);
  size_t *rowind = malloc((p->nnz + 1) * sizeof *rowind);
  assert_true(seen && colptr && rowind);
  for (size_t i = 0; i < p->nrows; i++)
    for (size_t t = rowptr[i]; t < rowptr[i + 1]; t++) {
      if (t > rowptr[i]) assert_true(colind[t - 1] < colind[t]);
      size_t q = csc_pos[t], j = colind[t];
      assert_true(q >= p->colptr[j] && q < p->colptr[j + 1]);
      assert_int_equal(p->rowind[q], i);
      assert_false(seen[q]);
      seen[q] = 1;
      colptr[j + 1]++;
    }
  /* Back to CSC: rows visited in order come out sorted in each column. */
  for (size_t j = 0; j < p->ncols; j++) colptr[j + 1] += colptr[j];
  for (size_t i = 0; i < p->nrows; i++)
    for (size_t t = rowptr[i]; t < rowptr[i + 1]; t++) rowind[colptr[colind[t]]++] = i;
  for (size_t j = p->ncols; j > 0; j--) colptr[j] = colptr[j - 1];
  colptr[0] = 0;
  assert_memory_equal(colptr, p->colptr, (p->ncols + 1) * sizeof *colptr);
  assert_memory_equal(rowind, p->rowind, p->nnz * sizeof *rowind);
  free(seen);
  free(colptr);
  free(rowind);
  ct_free(ctx, rowptr);
  ct_free(ctx, colind);
  ct_free(ctx, csc_pos);
  ct_sparsity_free(ctx, p);
  ct_fun_free(f);
  ct_context_free(ctx);
}

/* The checks behind the colorings reject invalid ones. */
static void test_coloring_checks(void **state) {
  (void)state;
  ct_context *ctx = new_ctx(NULL);
  /* The path 0-1-2-3 with its diagonal: 0 1 0 1 is a distance-1 coloring
   * but not a star coloring (the path uses 2 colors). */
  size_t colptr[] = {0, 2, 5, 8, 10};
  size_t rowind[] = {0, 1, 0, 1, 2, 1, 2, 3, 2, 3};
  ct_sparsity path = {4, 4, 10, colptr, rowind};
  unsigned char direct[10];
  int bad[] = {0, 1, 0, 1};
  assert_int_equal(ct_star_direct(ctx, &path, bad, 2, direct), CT_ERR_INTERNAL);
  assert_non_null(strstr(ct_errmsg(ctx), "invalid star coloring"));
  int good[] = {0, 1, 0, 2};
  assert_int_equal(ct_star_direct(ctx, &path, good, 3, direct), CT_OK);
  int colors[4], k = 0;
  assert_int_equal(ct_color_star(ctx, &path, colors, &k), CT_OK);
  assert_true(k >= 3);
  assert_int_equal(ct_star_direct(ctx, &path, colors, k, direct), CT_OK);
  /* Not symmetric: (0, 1) without (1, 0). */
  size_t colptr2[] = {0, 1, 3, 4, 5};
  size_t rowind2[] = {0, 0, 1, 2, 3};
  ct_sparsity upper = {4, 4, 5, colptr2, rowind2};
  assert_int_equal(ct_color_star(ctx, &upper, colors, &k), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "not symmetric"));
  /* Partial distance-2 on the path pattern: 3 colors either way. */
  assert_int_equal(ct_color_partial_d2(ctx, &path, 0, colors, &k), CT_OK);
  assert_int_equal(k, 3);
  assert_int_equal(ct_color_partial_d2(ctx, &path, 1, colors, &k), CT_OK);
  assert_int_equal(k, 3);
  ct_context_free(ctx);
}

static void test_unknown_wrt(void **state) {
  (void)state;
  ct_context *ctx = new_ctx(NULL);
  ct_fun *f = structured(ctx, TRIDIAGONAL, 5), *out = NULL;
  ct_sparsity *p = NULL;
  const char *const wrt[] = {"x", "no_such_input", NULL};
  assert_int_equal(ct_fun_sparse_jac(ctx, f, wrt, &out, &p), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "'no_such_input'"));
  assert_null(out);
  assert_null(p);
  ct_error_clear(ctx);
  assert_int_equal(ct_fun_dense_jac(ctx, f, wrt, &out), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "'no_such_input'"));
  ct_error_clear(ctx);
  assert_int_equal(ct_fun_sparse_hess(ctx, f, wrt, &out, &p), CT_ERR_ARG);
  assert_non_null(strstr(ct_errmsg(ctx), "'no_such_input'"));
  assert_null(out);
  assert_null(p);
  ct_fun_free(f);
  ct_context_free(ctx);
}

/* ---- Fault injection ------------------------------------------------------------ */

/* Traces a small two-input function in ctx; NULL on failure. */
static ct_fun *small_fun(ct_context *ctx) {
  ct_graph *g = ct_graph_new(ctx);
  if (!g) return NULL;
  ct_var x[6], k[2], y[6];
  ct_graph_input(g, "x", 6, NULL, x);
  ct_graph_input(g, "k", 2, NULL, k);
  for (int i = 0; i < 6; i++) {
    y[i] = ct_mul(k[i % 2], ct_sin(x[i]));
    if (i > 0) y[i] = ct_add(y[i], ct_mul(x[i - 1], x[i]));
    if (i < 5) y[i] = ct_sub(y[i], ct_exp(x[i + 1]));
  }
  y[5] = ct_add(y[5], ct_mul(x[0], x[5]));
  ct_graph_output(g, "y", 6, y);
  ct_fun *f = NULL;
  ct_graph_finalize(g, &f);
  ct_graph_free(g);
  return f;
}

static int fault_sparse_jac(ct_context *ctx, void *ud) {
  (void)ud;
  ct_fun *f = small_fun(ctx), *jac = NULL;
  if (!f) return ct_errcode(ctx) < 0 ? ct_errcode(ctx) : CT_ERR_NOMEM;
  ct_sparsity *p = NULL;
  int rc = ct_fun_sparse_jac(ctx, f, NULL, &jac, &p);
  if (rc == CT_OK) assert_true(jac && p);
  ct_sparsity_free(ctx, p);
  ct_fun_free(jac);
  ct_fun_free(f);
  return rc;
}

static int fault_sparse_hess(ct_context *ctx, void *ud) {
  (void)ud;
  ct_fun *f = small_fun(ctx), *hess = NULL;
  if (!f) return ct_errcode(ctx) < 0 ? ct_errcode(ctx) : CT_ERR_NOMEM;
  ct_sparsity *p = NULL;
  int rc = ct_fun_sparse_hess(ctx, f, NULL, &hess, &p);
  ct_sparsity_free(ctx, p);
  ct_fun_free(hess);
  ct_fun_free(f);
  return rc;
}

static int fault_dense_and_csr(ct_context *ctx, void *ud) {
  (void)ud;
  ct_fun *f = small_fun(ctx), *jac = NULL;
  if (!f) return ct_errcode(ctx) < 0 ? ct_errcode(ctx) : CT_ERR_NOMEM;
  ct_sparsity *p = NULL;
  size_t *rowptr = NULL, *colind = NULL, *csc_pos = NULL;
  int rc = ct_fun_dense_jac(ctx, f, NULL, &jac);
  if (rc == CT_OK) rc = ct_fun_jac_sparsity(ctx, f, NULL, &p);
  if (rc == CT_OK) rc = ct_sparsity_to_csr(ctx, p, &rowptr, &colind, &csc_pos);
  ct_free(ctx, rowptr);
  ct_free(ctx, colind);
  ct_free(ctx, csc_pos);
  ct_sparsity_free(ctx, p);
  ct_fun_free(jac);
  ct_fun_free(f);
  return rc;
}

static void test_fault_injection(void **state) {
  (void)state;
  long n = ct_test_fault_sweep(fault_sparse_jac, NULL);
  assert_true(n > 0);
  long m = ct_test_fault_sweep(fault_sparse_hess, NULL);
  assert_true(m > 0);
  long d = ct_test_fault_sweep(fault_dense_and_csr, NULL);
  assert_true(d > 0);
  print_message("fault sweep: %ld (sparse jac), %ld (sparse hess), %ld (dense, csr) "
                "allocations\n", n, m, d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_random_networks),
      cmocka_unit_test(test_tridiagonal),
      cmocka_unit_test(test_dense_column_row_arrowhead),
      cmocka_unit_test(test_empty_pattern),
      cmocka_unit_test(test_corner_rows_and_columns),
      cmocka_unit_test(test_guards_carry_over),
      cmocka_unit_test(test_csr_round_trip),
      cmocka_unit_test(test_coloring_checks),
      cmocka_unit_test(test_unknown_wrt),
      cmocka_unit_test(test_fault_injection),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
