/* Private: what the first-order CVODES adjoint (adjoint/asa.c) and the
 * second-order one (adjoint/hessian.c) share — option checks, the forward
 * phase's CVodeF and quadrature, and how a phase's failure is reported.
 * Implemented in asa.c. */
#ifndef COTANGENT_ADJOINT_ASA_INTERNAL_H
#define COTANGENT_ADJOINT_ASA_INTERNAL_H

#include <cvodes/cvodes.h>

#include "../solvers/ode_internal.h"
#include "cotangent/adjoint.h"

/* Checks the options both adjoints read the same way — checkpoint_steps,
 * interp, the backward and quadrature tolerances — and the time span
 * (finite, T > t0): CT_ERR_ARG naming the first one wrong. */
int ct_asa_check_common_options(ct_context *ctx, const ct_asa_options *o, double t0,
                                double T);

/* Checks the observation term's options against the problem (has_h: it
 * has an observation objective h, d_size: the size of h's input "d", 0
 * without): t_obs increasing inside (t0, T], obs_data given exactly when h
 * has "d", obs_dim its size. CT_ERR_ARG naming the first one wrong. */
int ct_asa_check_observations(ct_context *ctx, const ct_asa_options *o, double t0,
                              double T, int has_h, size_t d_size);

/* The data of observation k (row k of o->obs_data), NULL without data. */
static inline const double *ct_asa_obs_row(const ct_asa_options *o, size_t k) {
  return o->obs_data ? o->obs_data + k * o->obs_dim : NULL;
}

/* Adds the statistics of backward problem cvb since its last
 * (re)initialisation (CVodeReInitB resets CVODES' counters) to *st, its
 * quadrature right-hand side calls to *quad_evals_b; the last step and
 * order are replaced. */
void ct_asa_add_stats_b(void *cvb, ct_ode_stats *st, long *quad_evals_b);

/* After CVodeInit: CVODES' adjoint memory (o's checkpoint_steps and
 * interp) and CVodeF as the way to advance, normally and one step at a
 * time (through *step, which must live as long as the solve), the
 * checkpoint count kept in *n_checkpoints. */
int ct_asa_adj_init(ct_context *ctx, ct_cvode_set *c, const ct_asa_options *o,
                    ct_cvodef_mem *step, long *n_checkpoints);

/* Sets up the forward quadrature of the integral term (one component,
 * from 0) with rhs, o's rtol_q, atol_q and quad_err_con. */
int ct_asa_quad_init(ct_context *ctx, ct_cvode_set *c, CVQuadRhsFn rhs,
                     const ct_asa_options *o);

/* CVODES' error handler of a backward problem (ud: its ct_ode_run): keeps
 * SUNDIALS' message in r->sundials for the report. */
void ct_asa_sundials_error_b(int code, const char *module, const char *function,
                             char *msg, void *ud);

/* After CVodeB failed with `flag` in backward problem cvb (started at
 * t_start): writes "backward phase: t = <t>: <cause> (CVodeB flag ..)" (or
 * "...: interrupted") into message (size bytes) and records it in the
 * context; returns CT_ERR_SOLVER (CT_ERR_INTERRUPTED). */
int ct_asa_backward_failure(ct_ode_run *r, void *cvb, double t_start, int interrupted,
                            int flag, char *message, size_t size);

/* The status of a whole adjoint solve from the forward integration's rc
 * (its message ode_message) and the backward phase's backward_rc: a
 * stopped forward phase becomes "forward phase: <ode_message>" in message
 * and the context; else a backward failure (already reported), else rc. */
int ct_asa_solve_status(ct_context *ctx, int rc, int backward_rc, const char *ode_message,
                        char *message, size_t size);

/* The most workspace any of fs[0..n) needs (NULL entries: 1); at least 1. */
size_t ct_asa_max_work(const ct_fun *const *fs, size_t n);

#endif /* COTANGENT_ADJOINT_ASA_INTERNAL_H */
