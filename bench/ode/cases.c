/* The ODE benchmark's cases: set-up, hand-written callbacks, traced models
 * and the JSON description the SciPy peer reads. */
#include "cases.h"

#include <stdlib.h>
#include <string.h>

enum { VDP_N = 2, NETWORK_REACTIONS_PER_SPECIES = 3 };
static const uint64_t NETWORK_SEED = 20261124;

/* ---- Van der Pol: y0' = y1, y1' = mu (1 - y0^2) y1 - y0 --------------------- */

static void vdp_f(const double *y, double mu, double *f) {
  f[0] = y[1];
  f[1] = mu * (1.0 - y[0] * y[0]) * y[1] - y[0];
}

/* Column-major 2x2 Jacobian. */
static void vdp_jac(const double *y, double mu, double *J) {
  J[0] = 0.0, J[2] = 1.0;
  J[1] = -2.0 * mu * y[0] * y[1] - 1.0, J[3] = mu * (1.0 - y[0] * y[0]);
}

static int vdp_trace(ct_context *ctx, ct_fun **out) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var t, y[VDP_N], p, f[VDP_N];
  int rc = g ? CT_OK : CT_ERR_NOMEM;
  if (rc == CT_OK) rc = ct_graph_input(g, "t", 1, NULL, &t);
  if (rc == CT_OK) rc = ct_graph_input(g, "y", VDP_N, NULL, y);
  if (rc == CT_OK) rc = ct_graph_input(g, "p", 1, NULL, &p);
  if (rc == CT_OK) {
    f[0] = y[1];
    ct_var damp = ct_sub(ct_const(g, 1.0), ct_mul(y[0], y[0]));
    f[1] = ct_sub(ct_mul(ct_mul(p, damp), y[1]), y[0]);
    rc = ct_graph_output(g, "f", VDP_N, f);
  }
  if (rc == CT_OK) rc = ct_graph_finalize(g, out);
  ct_graph_free(g);
  return rc;
}

/* ---- Set-up -------------------------------------------------------------------- */

/* The hand-written sparse Jacobian's pattern: sorts the triplets of
 * bench_hand_jac into CSC (duplicates merged) and records each triplet's
 * slot. */
static int build_pattern(ode_case *c) {
  bench_problem *pb = &c->pb;
  size_t nt = bench_hand_jac(pb, pb->x, pb->p, NULL, NULL, NULL), n = c->n;
  c->n_trip = nt;
  c->trip_rows = malloc(nt * sizeof *c->trip_rows);
  c->trip_cols = malloc(nt * sizeof *c->trip_cols);
  c->trip_vals = malloc(nt * sizeof *c->trip_vals);
  c->trip_slot = malloc(nt * sizeof *c->trip_slot);
  unsigned char *dense = calloc(n * n, 1);
  c->pattern.colptr = calloc(n + 1, sizeof *c->pattern.colptr);
  if (!c->trip_rows || !c->trip_cols || !c->trip_vals || !c->trip_slot || !dense ||
      !c->pattern.colptr) {
    free(dense);
    return -1;
  }
  bench_hand_jac(pb, pb->x, pb->p, c->trip_rows, c->trip_cols, c->trip_vals);
  for (size_t q = 0; q < nt; q++) dense[c->trip_cols[q] * n + c->trip_rows[q]] = 1;
  size_t nnz = 0;
  for (size_t k = 0; k < n * n; k++) nnz += dense[k];
  c->pattern.rowind = malloc((nnz ? nnz : 1) * sizeof *c->pattern.rowind);
  size_t *slot_of = malloc(n * n * sizeof *slot_of);
  if (!c->pattern.rowind || !slot_of) {
    free(dense);
    free(slot_of);
    return -1;
  }
  c->pattern.nrows = c->pattern.ncols = n, c->pattern.nnz = nnz;
  size_t q = 0;
  for (size_t j = 0; j < n; j++) {
    c->pattern.colptr[j] = q;
    for (size_t i = 0; i < n; i++)
      if (dense[j * n + i]) slot_of[j * n + i] = q, c->pattern.rowind[q++] = i;
  }
  c->pattern.colptr[n] = q;
  for (size_t t = 0; t < nt; t++) c->trip_slot[t] = slot_of[c->trip_cols[t] * n + c->trip_rows[t]];
  free(dense);
  free(slot_of);
  return 0;
}

/* Sets the parameter counts of the gradient runs; -1 if one is 0 or > np. */
static int set_grad_np(ode_case *c, const size_t *grad_np) {
  c->n_grad_np = 0;
  if (!grad_np || !grad_np[0]) { /* all parameters */
    c->grad_np[c->n_grad_np++] = c->np;
    return 0;
  }
  for (; *grad_np && c->n_grad_np < CASE_MAX_GRAD_NP; grad_np++) {
    if (*grad_np > c->np) return -1;
    c->grad_np[c->n_grad_np++] = *grad_np;
  }
  return 0;
}

/* Van der Pol with mu = 1000 on its slow manifold, up to just before the
 * first relaxation jump (t ~ 800): stiff, and the gradient with respect to
 * mu stays well conditioned (across a jump it is dominated by the jump
 * time's sensitivity). */
static int init_vdp(ode_case *c) {
  c->n = VDP_N, c->np = 1;
  c->p = malloc(sizeof *c->p);
  c->y0 = malloc(VDP_N * sizeof *c->y0);
  if (!c->p || !c->y0) return -1;
  c->p[0] = 1000.0, c->y0[0] = 2.0, c->y0[1] = 0.0;
  c->T = 500.0;
  snprintf(c->title, sizeof c->title, "Van der Pol, mu = 1000, t in [0, 500]");
  return 0;
}

/* A case built on a bench_problem: p and y0 copied from it. */
static int init_from_problem(ode_case *c) {
  c->n = c->pb.n, c->np = c->pb.np;
  c->p = malloc(c->np * sizeof *c->p);
  c->y0 = malloc(c->n * sizeof *c->y0);
  if (!c->p || !c->y0) return -1;
  memcpy(c->p, c->pb.p, c->np * sizeof *c->p);
  switch (c->kind) {
    case CASE_ROBERTSON:
      c->y0[0] = 1.0, c->y0[1] = 0.0, c->y0[2] = 0.0;
      c->T = 4e5, c->atol = 1e-10;
      snprintf(c->title, sizeof c->title, "Robertson kinetics, t in [0, 4e5]");
      break;
    case CASE_LOTKA_VOLTERRA:
      c->y0[0] = 1.0, c->y0[1] = 1.0;
      c->T = 10.0;
      snprintf(c->title, sizeof c->title, "Lotka-Volterra, t in [0, 10]");
      break;
    default:
      memcpy(c->y0, c->pb.x, c->n * sizeof *c->y0);
      c->T = 10.0;
      snprintf(c->title, sizeof c->title, "mass-action network, %zu species, %zu reactions, t in [0, 10]",
               c->n, c->np);
      return build_pattern(c);
  }
  return 0;
}

/* Which case a name is, and for networks the species count. */
static int parse_name(const char *name, ode_case_kind *kind, size_t *species) {
  if (strcmp(name, "robertson") == 0) *kind = CASE_ROBERTSON;
  else if (strcmp(name, "lotka_volterra") == 0) *kind = CASE_LOTKA_VOLTERRA;
  else if (strcmp(name, "van_der_pol") == 0) *kind = CASE_VAN_DER_POL;
  else if (strncmp(name, "network", 7) == 0) {
    char *end;
    unsigned long s = strtoul(name + 7, &end, 10);
    if (*end || s < 2) return -1;
    *kind = CASE_NETWORK, *species = s;
  } else {
    return -1;
  }
  return 0;
}

int ode_case_init(ode_case *c, const char *name, const size_t *grad_np) {
  memset(c, 0, sizeof *c);
  size_t species = 0;
  if (strlen(name) >= sizeof c->name || parse_name(name, &c->kind, &species) != 0) return -1;
  snprintf(c->name, sizeof c->name, "%s", name);
  c->rtol = 1e-6, c->atol = 1e-8;
  int rc = 0;
  switch (c->kind) {
    case CASE_ROBERTSON: rc = bench_problem_init(&c->pb, "robertson", 0); break;
    case CASE_LOTKA_VOLTERRA: rc = bench_problem_init(&c->pb, "lotka_volterra", 0); break;
    case CASE_NETWORK:
      rc = bench_network_init(&c->pb, species, NETWORK_REACTIONS_PER_SPECIES * species,
                              NETWORK_SEED);
      break;
    case CASE_VAN_DER_POL: break;
  }
  if (rc == 0) rc = c->kind == CASE_VAN_DER_POL ? init_vdp(c) : init_from_problem(c);
  if (rc == 0) c->w = malloc(c->n * sizeof *c->w), c->yT = calloc(c->n, sizeof *c->yT);
  if (rc == 0 && (!c->w || !c->yT)) rc = -1;
  if (rc == 0) /* weights 1..n over n: no conserved sum cancels out */
    for (size_t i = 0; i < c->n; i++) c->w[i] = (double)(i + 1) / (double)c->n;
  if (rc == 0) rc = set_grad_np(c, grad_np);
  if (rc != 0) ode_case_free(c);
  return rc;
}

void ode_case_free(ode_case *c) {
  if (c->kind != CASE_VAN_DER_POL) bench_problem_free(&c->pb);
  free(c->p);
  free(c->y0);
  free(c->w);
  free(c->yT);
  free(c->pattern.colptr);
  free(c->pattern.rowind);
  free(c->trip_slot);
  free(c->trip_rows);
  free(c->trip_cols);
  free(c->trip_vals);
  memset(c, 0, sizeof *c);
}

/* ---- Traced models ------------------------------------------------------------ */

int ode_case_trace(ct_context *ctx, const ode_case *c, size_t n_param, ct_fun **out) {
  if (c->kind == CASE_VAN_DER_POL) return vdp_trace(ctx, out);
  return bench_trace_ode(ctx, &c->pb, n_param, out);
}

int ode_case_objective(ct_context *ctx, const ode_case *c, ct_fun **out) {
  ct_graph *g = ct_graph_new(ctx);
  ct_var *y = malloc(c->n * sizeof *y), phi;
  int rc = g && y ? CT_OK : CT_ERR_NOMEM;
  if (rc == CT_OK) rc = ct_graph_input(g, "y", c->n, NULL, y);
  if (rc == CT_OK) {
    phi = ct_mulc(y[0], c->w[0]);
    for (size_t i = 1; i < c->n; i++) phi = ct_add(phi, ct_mulc(y[i], c->w[i]));
    rc = ct_graph_output(g, "phi", 1, &phi);
  }
  if (rc == CT_OK) rc = ct_graph_finalize(g, out);
  ct_graph_free(g);
  free(y);
  return rc;
}

/* ---- Hand-written callbacks ------------------------------------------------------ */

static int hand_f(double t, const double *y, const double *p, double *ydot, void *ud) {
  (void)t;
  ode_case *c = ud;
  if (c->kind == CASE_VAN_DER_POL) vdp_f(y, p[0], ydot);
  else bench_hand_f(&c->pb, y, p, ydot);
  return 0;
}

/* Dense: J arrives zeroed; triplets may repeat, so they are summed. */
static int hand_jac_dense(double t, const double *y, const double *p, double *J, void *ud) {
  (void)t;
  ode_case *c = ud;
  if (c->kind == CASE_VAN_DER_POL) {
    vdp_jac(y, p[0], J);
    return 0;
  }
  size_t rows[9], cols[9];
  double vals[9];
  size_t nt = bench_hand_jac(&c->pb, y, p, rows, cols, vals);
  for (size_t q = 0; q < nt; q++) J[rows[q] + cols[q] * c->n] += vals[q];
  return 0;
}

/* CSC: the triplets into preallocated buffers, then summed into their slots. */
static int hand_jac_sparse(double t, const double *y, const double *p, double *vals,
                           void *ud) {
  (void)t;
  ode_case *c = ud;
  bench_hand_jac(&c->pb, y, p, c->trip_rows, c->trip_cols, c->trip_vals);
  memset(vals, 0, c->pattern.nnz * sizeof *vals);
  for (size_t q = 0; q < c->n_trip; q++) vals[c->trip_slot[q]] += c->trip_vals[q];
  return 0;
}

ct_ode_linsol ode_case_linsol(const ode_case *c) {
  return c->kind == CASE_NETWORK ? CT_LINSOL_KLU : CT_LINSOL_DENSE;
}

int ode_case_hand_model(ct_context *ctx, ode_case *c, int dq_only, ct_ode **out) {
  ct_ode_callbacks cb;
  memset(&cb, 0, sizeof cb);
  cb.n = c->n, cb.np = c->np, cb.user_data = c, cb.f = hand_f;
  if (dq_only) cb.allow_difference_quotients = 1;
  else if (c->kind == CASE_NETWORK) cb.jac_sparse = hand_jac_sparse, cb.jac_pattern = &c->pattern;
  else cb.jac_dense = hand_jac_dense;
  return ct_ode_new_callbacks(ctx, &cb, out);
}

/* ---- JSON for the SciPy peer ------------------------------------------------------- */

static void write_array(FILE *to, const char *key, const double *v, size_t n) {
  fprintf(to, "\"%s\": [", key);
  for (size_t i = 0; i < n; i++) fprintf(to, "%s%.17g", i ? ", " : "", v[i]);
  fprintf(to, "]");
}

static const char *kind_name(ode_case_kind k) {
  switch (k) {
    case CASE_ROBERTSON: return "robertson";
    case CASE_LOTKA_VOLTERRA: return "lotka_volterra";
    case CASE_VAN_DER_POL: return "van_der_pol";
    case CASE_NETWORK: return "network";
  }
  return "?";
}

void ode_case_write_json(const ode_case *c, FILE *to) {
  fprintf(to, "{\"case\": \"%s\", \"kind\": \"%s\", \"n\": %zu, \"T\": %.17g, "
              "\"rtol\": %.17g, \"atol\": %.17g, ",
          c->name, kind_name(c->kind), c->n, c->T, c->rtol, c->atol);
  write_array(to, "p", c->p, c->np);
  fprintf(to, ", ");
  write_array(to, "y0", c->y0, c->n);
  if (c->kind == CASE_NETWORK) { /* [[reactants], [products]] per reaction */
    fprintf(to, ", \"reactions\": [");
    for (size_t r = 0; r < c->pb.n_rx; r++) {
      const bench_reaction *rx = &c->pb.rx[r];
      fprintf(to, "%s[[", r ? ", " : "");
      for (int a = 0; a < rx->n_reac; a++) fprintf(to, "%s%d", a ? ", " : "", (int)rx->reac[a]);
      fprintf(to, "], [");
      for (int b = 0; b < rx->n_prod; b++) fprintf(to, "%s%d", b ? ", " : "", (int)rx->prod[b]);
      fprintf(to, "]]");
    }
    fprintf(to, "]");
  }
  fprintf(to, "}");
}
