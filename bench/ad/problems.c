/* The benchmark problems: set-up, hand-written C f and derivatives, and the
 * same f traced with ct_var. The hand-written code is what a careful user
 * would write: loops over the grid or the reaction table, compiled with the
 * project's flags. */
#include "problems.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const bench_problem_names[] = {"lotka_volterra", "robertson",
                                           "mass_action", "brusselator", NULL};

enum { MA_SPECIES = 1000, MA_REACTIONS = 3000, BR_GRID = 32 };
enum { MA_SPECIES_SMALL = 60, MA_REACTIONS_SMALL = 180, BR_GRID_SMALL = 6 };

/* ---- Seeded random numbers (splitmix64) ------------------------------------ */

static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static double rng_uniform(uint64_t *s, double a, double b) {
  return a + (b - a) * (double)(rng_next(s) >> 11) * 0x1.0p-53;
}
static int32_t rng_index(uint64_t *s, size_t n) {
  return (int32_t)(rng_next(s) % n);
}

/* ---- Set-up ------------------------------------------------------------------ */

static int alloc_vectors(bench_problem *pb) {
  pb->x = calloc(pb->n, sizeof *pb->x);
  pb->p = calloc(pb->np, sizeof *pb->p);
  pb->v = calloc(pb->n, sizeof *pb->v);
  pb->w = calloc(pb->n, sizeof *pb->w);
  return pb->x && pb->p && pb->v && pb->w ? 0 : -1;
}

int bench_problem_init(bench_problem *pb, const char *name, int small) {
  memset(pb, 0, sizeof *pb);
  uint64_t seed = 20240611;
  if (strcmp(name, "lotka_volterra") == 0) {
    pb->kind = BENCH_LOTKA_VOLTERRA;
    snprintf(pb->title, sizeof pb->title, "Lotka-Volterra, 2 states, 4 parameters");
    pb->n = 2, pb->np = 4;
  } else if (strcmp(name, "robertson") == 0) {
    pb->kind = BENCH_ROBERTSON;
    snprintf(pb->title, sizeof pb->title, "Robertson kinetics, 3 states, 3 rate constants");
    pb->n = 3, pb->np = 3;
  } else if (strcmp(name, "mass_action") == 0) {
    pb->kind = BENCH_MASS_ACTION;
    pb->n = small ? MA_SPECIES_SMALL : MA_SPECIES;
    pb->np = small ? MA_REACTIONS_SMALL : MA_REACTIONS;
    snprintf(pb->title, sizeof pb->title, "random mass-action network, %zu species, %zu reactions",
             pb->n, pb->np);
  } else if (strcmp(name, "brusselator") == 0) {
    pb->kind = BENCH_BRUSSELATOR;
    pb->grid = small ? BR_GRID_SMALL : BR_GRID;
    pb->n = 2 * pb->grid * pb->grid, pb->np = 3;
    snprintf(pb->title, sizeof pb->title, "2-D Brusselator, %zux%zu periodic grid, %zu states",
             pb->grid, pb->grid, pb->n);
  } else {
    return -1;
  }
  pb->name = name;
  if (alloc_vectors(pb) != 0) goto fail;
  switch (pb->kind) {
    case BENCH_LOTKA_VOLTERRA:
      pb->p[0] = 1.5, pb->p[1] = 1.0, pb->p[2] = 3.0, pb->p[3] = 1.0;
      pb->x[0] = 1.2, pb->x[1] = 0.8;
      break;
    case BENCH_ROBERTSON: /* a point along the classic trajectory */
      pb->p[0] = 0.04, pb->p[1] = 1e4, pb->p[2] = 3e7;
      pb->x[0] = 0.98, pb->x[1] = 3.3e-5, pb->x[2] = 0.02;
      break;
    case BENCH_MASS_ACTION:
      pb->n_rx = pb->np;
      pb->rx = calloc(pb->n_rx, sizeof *pb->rx);
      if (!pb->rx) goto fail;
      for (size_t r = 0; r < pb->n_rx; r++) {
        bench_reaction *rx = &pb->rx[r];
        rx->n_reac = (uint8_t)(1 + rng_next(&seed) % 2);
        rx->n_prod = (uint8_t)(1 + rng_next(&seed) % 2);
        for (int a = 0; a < rx->n_reac; a++) rx->reac[a] = rng_index(&seed, pb->n);
        for (int b = 0; b < rx->n_prod; b++) rx->prod[b] = rng_index(&seed, pb->n);
        pb->p[r] = rng_uniform(&seed, 0.1, 2.0);
      }
      for (size_t s = 0; s < pb->n; s++) pb->x[s] = rng_uniform(&seed, 0.5, 1.5);
      break;
    case BENCH_BRUSSELATOR: { /* SciML's parameters and initial state */
      size_t N = pb->grid;
      pb->p[0] = 3.4, pb->p[1] = 1.0, pb->p[2] = 10.0; /* A, B, alpha */
      for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < N; j++) {
          double gx = (double)i / (double)N, gy = (double)j / (double)N;
          pb->x[2 * (i * N + j)] = 22.0 * pow(gy * (1 - gy), 1.5) + 0.1;
          pb->x[2 * (i * N + j) + 1] = 27.0 * pow(gx * (1 - gx), 1.5) + 0.1;
        }
      break;
    }
  }
  for (size_t i = 0; i < pb->n; i++) {
    pb->v[i] = rng_uniform(&seed, -1, 1);
    pb->w[i] = rng_uniform(&seed, -1, 1);
  }
  return 0;
fail:
  bench_problem_free(pb);
  return -1;
}

/* One reaction of a bounded network: 1-2 reactants, 1..n_reac products. */
static void network_reaction(uint64_t *seed, size_t n, bench_reaction *rx) {
  rx->n_reac = (uint8_t)(1 + rng_next(seed) % 2);
  rx->n_prod = (uint8_t)(1 + rng_next(seed) % rx->n_reac);
  for (int a = 0; a < rx->n_reac; a++) rx->reac[a] = rng_index(seed, n);
  for (int b = 0; b < rx->n_prod; b++) rx->prod[b] = rng_index(seed, n);
}

int bench_network_init(bench_problem *pb, size_t n_species, size_t n_reactions,
                       uint64_t seed) {
  memset(pb, 0, sizeof *pb);
  if (n_species == 0 || n_reactions == 0) return -1;
  pb->kind = BENCH_MASS_ACTION;
  pb->name = "mass_action";
  pb->n = n_species, pb->np = pb->n_rx = n_reactions;
  snprintf(pb->title, sizeof pb->title, "bounded mass-action network, %zu species, %zu reactions",
           pb->n, pb->np);
  pb->rx = calloc(pb->n_rx, sizeof *pb->rx);
  if (!pb->rx || alloc_vectors(pb) != 0) goto fail;
  for (size_t r = 0; r < pb->n_rx; r++) {
    network_reaction(&seed, pb->n, &pb->rx[r]);
    pb->p[r] = pow(10.0, rng_uniform(&seed, -1.0, 2.0));
  }
  for (size_t s = 0; s < pb->n; s++) pb->x[s] = rng_uniform(&seed, 0.5, 1.5);
  for (size_t i = 0; i < pb->n; i++) {
    pb->v[i] = rng_uniform(&seed, -1, 1);
    pb->w[i] = rng_uniform(&seed, -1, 1);
  }
  return 0;
fail:
  bench_problem_free(pb);
  return -1;
}

void bench_problem_free(bench_problem *pb) {
  free(pb->x);
  free(pb->p);
  free(pb->v);
  free(pb->w);
  free(pb->rx);
  memset(pb, 0, sizeof *pb);
}

/* ---- Hand-written: Lotka-Volterra ----------------------------------------------
 * f0 = a x0 - b x0 x1, f1 = d x0 x1 - c x1. */

static void lv_f(const double *x, const double *p, double *y) {
  y[0] = p[0] * x[0] - p[1] * x[0] * x[1];
  y[1] = p[3] * x[0] * x[1] - p[2] * x[1];
}
static void lv_jac(const double *x, const double *p, double J[2][2]) {
  J[0][0] = p[0] - p[1] * x[1], J[0][1] = -p[1] * x[0];
  J[1][0] = p[3] * x[1], J[1][1] = p[3] * x[0] - p[2];
}

/* ---- Hand-written: Robertson ------------------------------------------------------
 * f0 = -k1 x0 + k2 x1 x2, f1 = k1 x0 - k2 x1 x2 - k3 x1^2, f2 = k3 x1^2. */

static void rob_f(const double *x, const double *p, double *y) {
  double r1 = p[0] * x[0], r2 = p[1] * x[1] * x[2], r3 = p[2] * x[1] * x[1];
  y[0] = -r1 + r2;
  y[1] = r1 - r2 - r3;
  y[2] = r3;
}
static void rob_jac(const double *x, const double *p, double J[3][3]) {
  J[0][0] = -p[0], J[0][1] = p[1] * x[2], J[0][2] = p[1] * x[1];
  J[1][0] = p[0], J[1][1] = -p[1] * x[2] - 2 * p[2] * x[1], J[1][2] = -p[1] * x[1];
  J[2][0] = 0, J[2][1] = 2 * p[2] * x[1], J[2][2] = 0;
}

/* ---- Hand-written: mass action ------------------------------------------------------ */

static double ma_rate(const bench_reaction *rx, double k, const double *x) {
  double rate = k;
  for (int a = 0; a < rx->n_reac; a++) rate *= x[rx->reac[a]];
  return rate;
}
/* Stoichiometric update of g with `amount` for one reaction. */
static void ma_update(const bench_reaction *rx, double amount, double *g) {
  for (int a = 0; a < rx->n_reac; a++) g[rx->reac[a]] -= amount;
  for (int b = 0; b < rx->n_prod; b++) g[rx->prod[b]] += amount;
}
/* d rate / d x[reac[a]] for reactant slot a. */
static double ma_partial(const bench_reaction *rx, double k, const double *x, int a) {
  double d = k;
  for (int b = 0; b < rx->n_reac; b++)
    if (b != a) d *= x[rx->reac[b]];
  return d;
}
/* The weights summed over the reaction's stoichiometry: d(w^T f)/d rate. */
static double ma_weight(const bench_reaction *rx, const double *w) {
  double W = 0;
  for (int a = 0; a < rx->n_reac; a++) W -= w[rx->reac[a]];
  for (int b = 0; b < rx->n_prod; b++) W += w[rx->prod[b]];
  return W;
}

static void ma_f(const bench_problem *pb, const double *x, const double *k, double *y) {
  memset(y, 0, pb->n * sizeof *y);
  for (size_t r = 0; r < pb->n_rx; r++)
    ma_update(&pb->rx[r], ma_rate(&pb->rx[r], k[r], x), y);
}

/* ---- Hand-written: Brusselator -----------------------------------------------------
 * Interleaved states: u at x[2k], v at x[2k+1] for grid point k = i N + j.
 * fu = alpha/h^2 lap(u) + A + u^2 v - (B + 1) u, fv = alpha/h^2 lap(v) + B u - u^2 v
 * with the periodic 5-point Laplacian and h = 1/N. */

#define BR_AT(i, j, c) (2 * ((i) * N + (j)) + (c))

/* The Laplacian (without 1/h^2) of component c of an interleaved field at
 * column j, from row pointers to the rows above (zn), at (zc) and below (zs)
 * and the periodic neighbor columns jp, jm. */
#define BR_LAP(zs, zc, zn, j, jm, jp, c)                                          \
  ((zn)[2 * (j) + (c)] + (zs)[2 * (j) + (c)] + (zc)[2 * (jp) + (c)] +            \
   (zc)[2 * (jm) + (c)] - 4.0 * (zc)[2 * (j) + (c)])
/* Row pointers zs, zc, zn of field z at rows im, i, ip; loops over the
 * periodic grid keeping the neighbor rows (ip, im) and columns (jp, jm). */
#define BR_ROWS(z) const double *z##s = z + 2 * im * N, *z##c = z + 2 * i * N, *z##n = z + 2 * ip * N
#define BR_FOR_GRID(N)                                                            \
  for (size_t i = 0, ip = 1 % (N), im = (N) - 1; i < (N);                        \
       im = i, i++, ip = ip + 1 == (N) ? 0 : ip + 1)
#define BR_FOR_ROW(N)                                                             \
  for (size_t j = 0, jp = 1 % (N), jm = (N) - 1; j < (N);                        \
       jm = j, j++, jp = jp + 1 == (N) ? 0 : jp + 1)

static void br_f(size_t N, const double *x, const double *p, double *y) {
  double A = p[0], B = p[1], B1 = B + 1.0, D = p[2] * (double)(N * N);
  BR_FOR_GRID(N) {
    BR_ROWS(x);
    double *yc = y + 2 * i * N;
    BR_FOR_ROW(N) {
      double u = xc[2 * j], v = xc[2 * j + 1];
      double uuv = u * u * v;
      yc[2 * j] = D * BR_LAP(xs, xc, xn, j, jm, jp, 0) + A + uuv - B1 * u;
      yc[2 * j + 1] = D * BR_LAP(xs, xc, xn, j, jm, jp, 1) + B * u - uuv;
    }
  }
}

/* ---- Hand-written: dispatch ------------------------------------------------------------ */

void bench_hand_f(const bench_problem *pb, const double *x, const double *p,
                  double *y) {
  switch (pb->kind) {
    case BENCH_LOTKA_VOLTERRA: lv_f(x, p, y); break;
    case BENCH_ROBERTSON: rob_f(x, p, y); break;
    case BENCH_MASS_ACTION: ma_f(pb, x, p, y); break;
    case BENCH_BRUSSELATOR: br_f(pb->grid, x, p, y); break;
  }
}

void bench_hand_jvp(const bench_problem *pb, const double *x, const double *p,
                    const double *v, double *y, double *jv) {
  switch (pb->kind) {
    case BENCH_LOTKA_VOLTERRA: {
      double dxy = v[0] * x[1] + x[0] * v[1];
      lv_f(x, p, y);
      jv[0] = p[0] * v[0] - p[1] * dxy;
      jv[1] = p[3] * dxy - p[2] * v[1];
      break;
    }
    case BENCH_ROBERTSON: {
      double dr1 = p[0] * v[0], dr2 = p[1] * (v[1] * x[2] + x[1] * v[2]);
      double dr3 = 2 * p[2] * x[1] * v[1];
      rob_f(x, p, y);
      jv[0] = -dr1 + dr2;
      jv[1] = dr1 - dr2 - dr3;
      jv[2] = dr3;
      break;
    }
    case BENCH_MASS_ACTION:
      memset(y, 0, pb->n * sizeof *y);
      memset(jv, 0, pb->n * sizeof *jv);
      for (size_t r = 0; r < pb->n_rx; r++) {
        const bench_reaction *rx = &pb->rx[r];
        double drate = 0;
        for (int a = 0; a < rx->n_reac; a++)
          drate += ma_partial(rx, p[r], x, a) * v[rx->reac[a]];
        ma_update(rx, ma_rate(rx, p[r], x), y);
        ma_update(rx, drate, jv);
      }
      break;
    case BENCH_BRUSSELATOR: {
      size_t N = pb->grid;
      double A = p[0], B = p[1], B1 = B + 1.0, D = p[2] * (double)(N * N);
      BR_FOR_GRID(N) {
        BR_ROWS(x);
        BR_ROWS(v);
        double *yc = y + 2 * i * N, *jc = jv + 2 * i * N;
        BR_FOR_ROW(N) {
          double u = xc[2 * j], vv = xc[2 * j + 1], du = vc[2 * j], dv = vc[2 * j + 1];
          double uu = u * u, uuv = uu * vv, duuv = 2 * u * vv * du + uu * dv;
          yc[2 * j] = D * BR_LAP(xs, xc, xn, j, jm, jp, 0) + A + uuv - B1 * u;
          yc[2 * j + 1] = D * BR_LAP(xs, xc, xn, j, jm, jp, 1) + B * u - uuv;
          jc[2 * j] = D * BR_LAP(vs, vc, vn, j, jm, jp, 0) + duuv - B1 * du;
          jc[2 * j + 1] = D * BR_LAP(vs, vc, vn, j, jm, jp, 1) + B * du - duuv;
        }
      }
      break;
    }
  }
}

void bench_hand_vjp(const bench_problem *pb, const double *x, const double *p,
                    const double *w, double *y, double *g) {
  switch (pb->kind) {
    case BENCH_LOTKA_VOLTERRA:
      lv_f(x, p, y);
      g[0] = w[0] * (p[0] - p[1] * x[1]) + w[1] * p[3] * x[1];
      g[1] = w[1] * (p[3] * x[0] - p[2]) - w[0] * p[1] * x[0];
      break;
    case BENCH_ROBERTSON: { /* weights of the three rates in w^T f */
      double W1 = w[1] - w[0], W2 = w[0] - w[1], W3 = w[2] - w[1];
      rob_f(x, p, y);
      g[0] = W1 * p[0];
      g[1] = W2 * p[1] * x[2] + W3 * 2 * p[2] * x[1];
      g[2] = W2 * p[1] * x[1];
      break;
    }
    case BENCH_MASS_ACTION:
      memset(y, 0, pb->n * sizeof *y);
      memset(g, 0, pb->n * sizeof *g);
      for (size_t r = 0; r < pb->n_rx; r++) {
        const bench_reaction *rx = &pb->rx[r];
        double W = ma_weight(rx, w);
        ma_update(rx, ma_rate(rx, p[r], x), y);
        for (int a = 0; a < rx->n_reac; a++)
          g[rx->reac[a]] += W * ma_partial(rx, p[r], x, a);
      }
      break;
    case BENCH_BRUSSELATOR: { /* the periodic Laplacian is symmetric */
      size_t N = pb->grid;
      double A = p[0], B = p[1], B1 = B + 1.0, D = p[2] * (double)(N * N);
      BR_FOR_GRID(N) {
        BR_ROWS(x);
        BR_ROWS(w);
        double *yc = y + 2 * i * N, *gc = g + 2 * i * N;
        BR_FOR_ROW(N) {
          double u = xc[2 * j], vv = xc[2 * j + 1], wu = wc[2 * j], wv = wc[2 * j + 1];
          double uu = u * u, uuv = uu * vv, s = wu - wv;
          yc[2 * j] = D * BR_LAP(xs, xc, xn, j, jm, jp, 0) + A + uuv - B1 * u;
          yc[2 * j + 1] = D * BR_LAP(xs, xc, xn, j, jm, jp, 1) + B * u - uuv;
          gc[2 * j] = D * BR_LAP(ws, wc, wn, j, jm, jp, 0) + 2 * u * vv * s - B1 * wu + B * wv;
          gc[2 * j + 1] = D * BR_LAP(ws, wc, wn, j, jm, jp, 1) + uu * s;
        }
      }
      break;
    }
  }
}

void bench_hand_hvp(const bench_problem *pb, const double *x, const double *p,
                    const double *w, const double *v, double *hv) {
  switch (pb->kind) {
    case BENCH_LOTKA_VOLTERRA: { /* only d2/dx0 dx1 = d w1 - b w0 */
      double s = p[3] * w[1] - p[1] * w[0];
      hv[0] = s * v[1];
      hv[1] = s * v[0];
      break;
    }
    case BENCH_ROBERTSON: {
      double s12 = p[1] * (w[0] - w[1]), s11 = 2 * p[2] * (w[2] - w[1]);
      hv[0] = 0;
      hv[1] = s11 * v[1] + s12 * v[2];
      hv[2] = s12 * v[1];
      break;
    }
    case BENCH_MASS_ACTION:
      memset(hv, 0, pb->n * sizeof *hv);
      for (size_t r = 0; r < pb->n_rx; r++) {
        const bench_reaction *rx = &pb->rx[r];
        if (rx->n_reac < 2) continue; /* linear rates have no curvature */
        double s = ma_weight(rx, w) * p[r];
        hv[rx->reac[0]] += s * v[rx->reac[1]];
        hv[rx->reac[1]] += s * v[rx->reac[0]];
      }
      break;
    case BENCH_BRUSSELATOR: { /* only u^2 v is nonlinear */
      size_t N = pb->grid;
      for (size_t k = 0; k < N * N; k++) {
        double u = x[2 * k], vv = x[2 * k + 1], s = w[2 * k] - w[2 * k + 1];
        hv[2 * k] = s * (2 * vv * v[2 * k] + 2 * u * v[2 * k + 1]);
        hv[2 * k + 1] = s * 2 * u * v[2 * k];
      }
      break;
    }
  }
}

typedef struct triplets {
  size_t n, *rows, *cols;
  double *vals;
} triplets;

static void jac_add(triplets *t, size_t i, size_t j, double v) {
  if (t->rows) t->rows[t->n] = i, t->cols[t->n] = j, t->vals[t->n] = v;
  t->n++;
}

size_t bench_hand_jac(const bench_problem *pb, const double *x, const double *p,
                      size_t *rows, size_t *cols, double *vals) {
  triplets t = {0, rows, cols, vals};
#define JAC(i, j, v) jac_add(&t, (size_t)(i), (size_t)(j), (v))
  switch (pb->kind) {
    case BENCH_LOTKA_VOLTERRA: {
      double J[2][2];
      lv_jac(x, p, J);
      for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) JAC(i, j, J[i][j]);
      break;
    }
    case BENCH_ROBERTSON: {
      double J[3][3];
      rob_jac(x, p, J);
      for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) JAC(i, j, J[i][j]);
      break;
    }
    case BENCH_MASS_ACTION:
      for (size_t r = 0; r < pb->n_rx; r++) {
        const bench_reaction *rx = &pb->rx[r];
        for (int a = 0; a < rx->n_reac; a++) {
          double d = ma_partial(rx, p[r], x, a);
          int32_t col = rx->reac[a];
          for (int b = 0; b < rx->n_reac; b++) JAC(rx->reac[b], col, -d);
          for (int b = 0; b < rx->n_prod; b++) JAC(rx->prod[b], col, d);
        }
      }
      break;
    case BENCH_BRUSSELATOR: {
      size_t N = pb->grid;
      double B = p[1], D = p[2] * (double)(N * N);
      for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < N; j++) {
          size_t ip = i + 1 == N ? 0 : i + 1, im = i == 0 ? N - 1 : i - 1;
          size_t jp = j + 1 == N ? 0 : j + 1, jm = j == 0 ? N - 1 : j - 1;
          double u = x[BR_AT(i, j, 0)], vv = x[BR_AT(i, j, 1)];
          for (int c = 0; c < 2; c++) {
            size_t row = BR_AT(i, j, c);
            JAC(row, BR_AT(ip, j, c), D);
            JAC(row, BR_AT(im, j, c), D);
            JAC(row, BR_AT(i, jp, c), D);
            JAC(row, BR_AT(i, jm, c), D);
            JAC(row, row, -4 * D);
          }
          JAC(BR_AT(i, j, 0), BR_AT(i, j, 0), 2 * u * vv - (B + 1.0));
          JAC(BR_AT(i, j, 0), BR_AT(i, j, 1), u * u);
          JAC(BR_AT(i, j, 1), BR_AT(i, j, 0), B - 2 * u * vv);
          JAC(BR_AT(i, j, 1), BR_AT(i, j, 1), -u * u);
        }
      break;
    }
  }
#undef JAC
  return t.n;
}

/* ---- Traced with ct_var: the same code, operation for operation ------------------- */

static void trace_body(ct_graph *g, const bench_problem *pb, const ct_var *x,
                       const ct_var *p, ct_var *y) {
  switch (pb->kind) {
    case BENCH_LOTKA_VOLTERRA:
      y[0] = ct_sub(ct_mul(p[0], x[0]), ct_mul(ct_mul(p[1], x[0]), x[1]));
      y[1] = ct_sub(ct_mul(ct_mul(p[3], x[0]), x[1]), ct_mul(p[2], x[1]));
      break;
    case BENCH_ROBERTSON: {
      ct_var r1 = ct_mul(p[0], x[0]);
      ct_var r2 = ct_mul(ct_mul(p[1], x[1]), x[2]);
      ct_var r3 = ct_mul(ct_mul(p[2], x[1]), x[1]);
      y[0] = ct_add(ct_neg(r1), r2);
      y[1] = ct_sub(ct_sub(r1, r2), r3);
      y[2] = r3;
      break;
    }
    case BENCH_MASS_ACTION: {
      ct_var zero = ct_const(g, 0.0);
      for (size_t s = 0; s < pb->n; s++) y[s] = zero;
      for (size_t r = 0; r < pb->n_rx; r++) {
        const bench_reaction *rx = &pb->rx[r];
        ct_var rate = p[r];
        for (int a = 0; a < rx->n_reac; a++) rate = ct_mul(rate, x[rx->reac[a]]);
        for (int a = 0; a < rx->n_reac; a++) y[rx->reac[a]] = ct_sub(y[rx->reac[a]], rate);
        for (int b = 0; b < rx->n_prod; b++) y[rx->prod[b]] = ct_add(y[rx->prod[b]], rate);
      }
      break;
    }
    case BENCH_BRUSSELATOR: {
      size_t N = pb->grid;
      ct_var A = p[0], B = p[1], D = ct_mulc(p[2], (double)(N * N));
      ct_var B1 = ct_addc(B, 1.0);
      for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < N; j++) {
          size_t ip = i + 1 == N ? 0 : i + 1, im = i == 0 ? N - 1 : i - 1;
          size_t jp = j + 1 == N ? 0 : j + 1, jm = j == 0 ? N - 1 : j - 1;
          ct_var lap[2];
          for (int c = 0; c < 2; c++)
            lap[c] = ct_sub(ct_add(ct_add(ct_add(x[BR_AT(ip, j, c)], x[BR_AT(im, j, c)]),
                                          x[BR_AT(i, jp, c)]),
                                   x[BR_AT(i, jm, c)]),
                            ct_mulc(x[BR_AT(i, j, c)], 4.0));
          ct_var u = x[BR_AT(i, j, 0)], v = x[BR_AT(i, j, 1)];
          ct_var uuv = ct_mul(ct_mul(u, u), v);
          y[BR_AT(i, j, 0)] =
              ct_sub(ct_add(ct_add(ct_mul(D, lap[0]), A), uuv), ct_mul(B1, u));
          y[BR_AT(i, j, 1)] = ct_sub(ct_add(ct_mul(D, lap[1]), ct_mul(B, u)), uuv);
        }
      break;
    }
  }
}

int bench_trace(ct_context *ctx, const bench_problem *pb, ct_fun **out) {
  *out = NULL;
  ct_graph *g = ct_graph_new(ctx);
  ct_var *x = malloc(pb->n * sizeof *x), *p = malloc(pb->np * sizeof *p);
  ct_var *y = malloc(pb->n * sizeof *y);
  int rc = g && x && p && y ? CT_OK : CT_ERR_NOMEM;
  if (rc == CT_OK) rc = ct_graph_input(g, "x", pb->n, NULL, x);
  if (rc == CT_OK) rc = ct_graph_input(g, "p", pb->np, NULL, p);
  if (rc == CT_OK) {
    trace_body(g, pb, x, p, y);
    rc = ct_graph_output(g, "f", pb->n, y);
  }
  if (rc == CT_OK) rc = ct_graph_finalize(g, out);
  ct_graph_free(g);
  free(x);
  free(p);
  free(y);
  return rc;
}

int bench_trace_ode(ct_context *ctx, const bench_problem *pb, size_t n_param,
                    ct_fun **out) {
  *out = NULL;
  if (n_param > pb->np) return CT_ERR_ARG;
  ct_graph *g = ct_graph_new(ctx);
  ct_var *x = malloc(pb->n * sizeof *x), *p = malloc(pb->np * sizeof *p);
  ct_var *y = malloc(pb->n * sizeof *y), t;
  int rc = g && x && p && y ? CT_OK : CT_ERR_NOMEM;
  if (rc == CT_OK) rc = ct_graph_input(g, "t", 1, NULL, &t);
  if (rc == CT_OK) rc = ct_graph_input(g, "y", pb->n, NULL, x);
  if (rc == CT_OK && n_param > 0) rc = ct_graph_input(g, "p", n_param, NULL, p);
  if (rc == CT_OK) {
    for (size_t j = n_param; j < pb->np; j++) p[j] = ct_const(g, pb->p[j]);
    trace_body(g, pb, x, p, y);
    rc = ct_graph_output(g, "f", pb->n, y);
  }
  if (rc == CT_OK) rc = ct_graph_finalize(g, out);
  ct_graph_free(g);
  free(x);
  free(p);
  free(y);
  return rc;
}
