/* The problems of the AD benchmark, each written three times: hand-written
 * C (f and its derivatives, the reference every AD variant is checked
 * against), traced with ct_var (problems.c), and traced with ADOL-C's
 * adouble (adolc_peer.cpp).
 *
 * Every problem is an ODE right-hand side f(x; p): states x (n numbers),
 * parameters p (np numbers), output f (n numbers). Derivatives are taken
 * with respect to the states only, as a stiff integrator needs them. */
#ifndef COTANGENT_BENCH_AD_PROBLEMS_H
#define COTANGENT_BENCH_AD_PROBLEMS_H

#include <stddef.h>
#include <stdint.h>

#include "cotangent/ad.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum bench_kind {
  BENCH_LOTKA_VOLTERRA,
  BENCH_ROBERTSON,
  BENCH_MASS_ACTION,
  BENCH_BRUSSELATOR
} bench_kind;

/* A mass-action reaction: rate k * prod(x[reac[0..n_reac)]), then
 * f[reac[a]] -= rate and f[prod[b]] += rate. */
typedef struct bench_reaction {
  int32_t reac[2], prod[2];
  uint8_t n_reac, n_prod;
} bench_reaction;

typedef struct bench_problem {
  bench_kind kind;
  const char *name;   /* case name in the JSON rows */
  char title[96];     /* one line for the table */
  size_t n, np;       /* states, parameters */
  double *x, *p;      /* the evaluation point */
  double *v;          /* the JVP / HVP direction */
  double *w;          /* the VJP seed / HVP weights */
  size_t grid;        /* Brusselator: grid points per side */
  bench_reaction *rx; /* mass action: the reaction table */
  size_t n_rx;
} bench_problem;

/* The case names, in order, NULL-terminated. */
extern const char *const bench_problem_names[];

/* Builds the named problem (seeded, so every run sees the same one). With
 * `small`, the two large problems shrink (mass action to 60 species and 180
 * reactions, the Brusselator to a 6x6 grid) so that a smoke run, JIT
 * compiles included, takes seconds; the tiny ones stay as they are.
 * Returns 0, or -1 for an unknown name or no memory. */
int bench_problem_init(bench_problem *pb, const char *name, int small);
void bench_problem_free(bench_problem *pb);

/* A seeded mass-action network for time integration (bench/ode): n_species
 * species and n_reactions reactions, each with no more products than
 * reactants (so the total amount never grows and solutions stay bounded)
 * and rate constants log-uniform in [1e-1, 1e2] (stiff). The kind is
 * BENCH_MASS_ACTION, so every hand-written and traced function applies.
 * Returns 0, or -1 for a size of 0 or no memory. */
int bench_network_init(bench_problem *pb, size_t n_species, size_t n_reactions,
                       uint64_t seed);

/* ---- Hand-written C ------------------------------------------------------- */

/* y = f(x; p). */
void bench_hand_f(const bench_problem *pb, const double *x, const double *p,
                  double *y);
/* y = f, jv = J v (J = df/dx). */
void bench_hand_jvp(const bench_problem *pb, const double *x, const double *p,
                    const double *v, double *y, double *jv);
/* y = f, g = J^T w. */
void bench_hand_vjp(const bench_problem *pb, const double *x, const double *p,
                    const double *w, double *y, double *g);
/* hv = (d^2/dx^2 w^T f) v. */
void bench_hand_hvp(const bench_problem *pb, const double *x, const double *p,
                    const double *w, const double *v, double *hv);
/* The Jacobian as triplets (row, col, value), possibly with repeated
 * positions to be summed: returns their count, and fills the arrays when
 * they are not NULL (call once with NULLs for the count). For checking
 * only: not timed. */
size_t bench_hand_jac(const bench_problem *pb, const double *x, const double *p,
                      size_t *rows, size_t *cols, double *vals);

/* ---- Traced with ct_var ---------------------------------------------------- */

/* The function with inputs "x" (n) and "p" (np) and output "f" (n). */
int bench_trace(ct_context *ctx, const bench_problem *pb, ct_fun **out);

/* The right-hand side as an ODE model wants it (cotangent/ode.h): inputs
 * "t" (1, unused), "y" (n) and "p" (n_param <= np), output "f" (n). The
 * first n_param of pb->p are the parameters; the others are folded in as
 * constants with their values in pb->p. */
int bench_trace_ode(ct_context *ctx, const bench_problem *pb, size_t n_param,
                    ct_fun **out);

#ifdef __cplusplus
}
#endif

#endif /* COTANGENT_BENCH_AD_PROBLEMS_H */
