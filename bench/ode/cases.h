/* The problems of the ODE benchmark (bench/ode): each case has a traced
 * right-hand side for ct_ode_new, hand-written C callbacks (f and its
 * Jacobian, dense or CSC) for ct_ode_new_callbacks, initial values, a time
 * span and tolerances. Lotka-Volterra, Robertson and the networks reuse the
 * AD benchmark's hand-written code (bench/ad/problems.c); Van der Pol is
 * written here. */
#ifndef COTANGENT_BENCH_ODE_CASES_H
#define COTANGENT_BENCH_ODE_CASES_H

#include <stdio.h>

#include "../ad/problems.h"
#include "cotangent/ode.h"

typedef enum ode_case_kind {
  CASE_ROBERTSON,
  CASE_LOTKA_VOLTERRA,
  CASE_VAN_DER_POL,
  CASE_NETWORK
} ode_case_kind;

enum { CASE_MAX_GRAD_NP = 4 };

typedef struct ode_case {
  ode_case_kind kind;
  char name[32];       /* case name in the JSON rows */
  char title[128];     /* one line for the table */
  bench_problem pb;    /* all but Van der Pol */
  size_t n, np;        /* states, all parameters */
  double *p, *y0;      /* nominal parameters (np), initial values (n) */
  double T, rtol, atol;
  double *w;           /* objective weights: J = w^T y(T) */
  double *yT;          /* y(T) of the AD model's simulation (n), set by bench_ode */
  size_t grad_np[CASE_MAX_GRAD_NP]; /* parameter counts for the gradients */
  size_t n_grad_np;
  /* The hand-written sparse Jacobian: the CSC pattern, and for each of the
   * n_trip triplets of bench_hand_jac its position in it. */
  ct_sparsity pattern;
  size_t n_trip, *trip_slot, *trip_rows, *trip_cols;
  double *trip_vals;
} ode_case;

/* Builds a named case ("robertson", "lotka_volterra", "van_der_pol", or
 * "network<N>" for a bounded mass-action network of N species and 3N
 * reactions); `grad_np` lists the parameter counts of the gradient runs
 * (0-terminated, at most CASE_MAX_GRAD_NP, each <= the case's np). Returns
 * 0, or -1 for an unknown name, a bad count or no memory. */
int ode_case_init(ode_case *c, const char *name, const size_t *grad_np);
void ode_case_free(ode_case *c);

/* The right-hand side traced for ct_ode_new with the first n_param
 * parameters as the input "p" (the rest constants). */
int ode_case_trace(ct_context *ctx, const ode_case *c, size_t n_param, ct_fun **out);
/* J = w^T y: inputs "y" (n), output "phi" (1). */
int ode_case_objective(ct_context *ctx, const ode_case *c, ct_fun **out);

/* The hand-written model: f and the dense Jacobian (small cases, linear
 * solver dense) or the CSC Jacobian (networks, KLU); with `dq_only`, f
 * alone and CVODES' dense difference-quotient Jacobian. `c` must outlive
 * the model. */
int ode_case_hand_model(ct_context *ctx, ode_case *c, int dq_only, ct_ode **out);
/* The linear solver of the AD and hand-written models for this case. */
ct_ode_linsol ode_case_linsol(const ode_case *c);

/* Writes the case as one JSON object (for bench/ode/scipy_peer.py): kind,
 * n, p, y0, T, tolerances and, for networks, the reactions. */
void ode_case_write_json(const ode_case *c, FILE *to);

#endif /* COTANGENT_BENCH_ODE_CASES_H */
