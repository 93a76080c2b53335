/* Lotka–Volterra predator–prey model: simulation, forward sensitivities and
 * the gradient of a data misfit by the continuous adjoint — everything from
 * one traced right-hand side, no derivative written by hand.
 *
 *     prey      x' = a x - b x y
 *     predators y' = d x y - c y,        x(0) = y(0) = 1
 *
 * with parameters p = (a, b, c, d) and observations (t_k, xd_k, yd_k),
 * k = 1..6, and the least-squares objective
 *
 *     J(p) = Σ_k (x(t_k) - xd_k)^2 + (y(t_k) - yd_k)^2.
 *
 * Shows, in order:
 *  1. tracing the model into a ct_fun and building a ct_ode (ct_ode_new);
 *  2. the solution at the observation times (ct_ode_solve);
 *  3. dx/dp and dy/dp at those times (ct_fsa_new, ct_fsa_solve);
 *  4. dJ/dp by the continuous adjoint with observation times
 *     (ct_asa_new_obs with the misfit term h, ct_asa_solve with t_obs): the
 *     data enter h through t, as a lookup traced with ct_select;
 *  5. the same gradient from the forward sensitivities,
 *     dJ/dp_j = Σ_k 2 (x - xd_k) dx/dp_j + 2 (y - yd_k) dy/dp_j,
 *     and the two compared;
 *  6. the adjoint gradient checked against central differences of J
 *     (ct_asa_gradient_check).
 * Exits with status 1 when a solve fails, when the adjoint and forward
 * gradients differ by more than 1e-6 relative, or when the check's worst
 * relative error is above 1e-6. The exact errors go to stderr (they depend
 * on roundoff); stdout is compared with lotka_volterra.out by ctest. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cotangent.h"

#define NS 2   /* states: prey, predators */
#define NP 4   /* parameters: a, b, c, d */
#define NOBS 6 /* observations */

static const char *const param_names[NP] = {"a", "b", "c", "d"};
static const double p_nominal[NP] = {1.5, 1.0, 3.0, 1.0};
static const double y_initial[NS] = {1.0, 1.0};
static const double t_obs[NOBS] = {1.0, 2.0, 3.0, 4.0, 5.0, 6.0};
/* Observed prey and predators (illustrative numbers, two digits, roughly
 * the model's shape with noise). Replace them with your measurements. */
static const double prey_data[NOBS] = {2.91, 5.47, 0.43, 1.41, 4.19, 2.03};
static const double pred_data[NOBS] = {0.54, 3.25, 2.78, 0.26, 0.82, 4.31};

/* Agreement demanded between the adjoint and the forward-sensitivity
 * gradients, and of the adjoint gradient with central differences. */
#define AGREE_RTOL 1e-6
#define CHECK_TOL 1e-6

/* The right-hand side: inputs "y" (2) and "p" (4), output "f" (2). */
static int trace_rhs(ct_context *ctx, ct_fun **out) {
  ct_graph *g = ct_graph_new(ctx);
  if (!g) return ct_errcode(ctx);
  ct_var u[NS], p[NP];
  ct_graph_input(g, "y", NS, NULL, u);
  ct_graph_input(g, "p", NP, NULL, p);
  ct_var xy = ct_mul(u[0], u[1]);
  ct_var f[NS] = {ct_sub(ct_mul(p[0], u[0]), ct_mul(p[1], xy)),
                  ct_sub(ct_mul(p[3], xy), ct_mul(p[2], u[1]))};
  ct_graph_output(g, "f", NS, f);
  int rc = ct_graph_finalize(g, out); /* reports any tracing error */
  ct_graph_free(g);
  return rc;
}

/* The observation at time t: data[k] for the t_k nearest t, traced as a
 * chain of ct_select on the midpoints between observation times. The
 * result does not depend on y or p, so it adds nothing to derivatives. */
static ct_var data_at(ct_graph *g, ct_var t, const double *data) {
  ct_var v = ct_const(g, data[NOBS - 1]);
  for (int k = NOBS - 2; k >= 0; k--) {
    ct_var before = ct_lt(t, ct_const(g, 0.5 * (t_obs[k] + t_obs[k + 1])));
    v = ct_select(before, ct_const(g, data[k]), v);
  }
  return v;
}

/* The misfit at one observation: inputs "t" (1), "y" (2); output "h" (1). */
static int trace_misfit(ct_context *ctx, ct_fun **out) {
  ct_graph *g = ct_graph_new(ctx);
  if (!g) return ct_errcode(ctx);
  ct_var t, u[NS];
  ct_graph_input(g, "t", 1, NULL, &t);
  ct_graph_input(g, "y", NS, NULL, u);
  ct_var h = ct_add(ct_sqr(ct_sub(u[0], data_at(g, t, prey_data))),
                    ct_sqr(ct_sub(u[1], data_at(g, t, pred_data))));
  ct_graph_output(g, "h", 1, &h);
  int rc = ct_graph_finalize(g, out);
  ct_graph_free(g);
  return rc;
}

/* Tolerances for every phase: tight, so that the printed digits are
 * settled and the difference quotients of the check are meaningful. */
static ct_asa_options tight_options(void) {
  ct_asa_options o = ct_asa_default_options();
  o.ode.rtol = 1e-11;
  o.ode.atol = 1e-12;
  o.ode.max_steps = 100000;
  o.rtol_b = o.rtol_q = 1e-11;
  o.atol_b = o.atol_q = 1e-12;
  o.max_steps_b = 100000;
  o.t_obs = t_obs;
  o.n_obs = NOBS;
  return o;
}

typedef struct problem {
  ct_context *ctx;
  ct_fun *rhs, *misfit;
  ct_ode *ode;
  ct_fsa *fsa;
  ct_asa *asa;
  ct_ode_result *sim;
  ct_fsa_result *sens;
  ct_asa_result *adj;
  ct_gradcheck_result check;
} problem;

static int run(problem *P) {
  ct_context *ctx = P->ctx;
  const double *p = p_nominal;
  double tout[NOBS + 1] = {0.0};
  for (int k = 0; k < NOBS; k++) tout[k + 1] = t_obs[k];
  ct_asa_options ao = tight_options();

  /* 1. The model. */
  CT_CHECK(ctx, trace_rhs(ctx, &P->rhs));
  CT_CHECK(ctx, trace_misfit(ctx, &P->misfit));
  CT_CHECK(ctx, ct_ode_new(ctx, P->rhs, NULL, NULL, &P->ode));
  printf("Lotka-Volterra: x' = a x - b x y, y' = d x y - c y\n");
  printf("p = (a, b, c, d) = (%.3f, %.3f, %.3f, %.3f), x(0) = %.3f, y(0) = %.3f\n\n",
         p[0], p[1], p[2], p[3], y_initial[0], y_initial[1]);

  /* 2. The solution at the observation times. */
  CT_CHECK(ctx, ct_ode_solve(ctx, P->ode, p, y_initial, tout, NOBS + 1, &ao.ode,
                             &P->sim));
  printf("Solution and data\n");
  printf("%6s %14s %8s %14s %8s\n", "t", "prey x", "data", "predators y", "data");
  double J_sim = 0.0;
  for (size_t k = 0; k < P->sim->n_out; k++) {
    const double *u = P->sim->y + NS * k;
    if (k == 0) {
      printf("%6.2f %14.6e %8s %14.6e %8s\n", P->sim->t[k], u[0], "", u[1], "");
      continue;
    }
    double ex = u[0] - prey_data[k - 1], ey = u[1] - pred_data[k - 1];
    J_sim += ex * ex + ey * ey;
    printf("%6.2f %14.6e %8.2f %14.6e %8.2f\n", P->sim->t[k], u[0], prey_data[k - 1],
           u[1], pred_data[k - 1]);
  }
  printf("misfit J = %.6e\n\n", J_sim);

  /* 3. Forward sensitivities at the same times (all four parameters). */
  ct_fsa_options fo = ct_fsa_default_options();
  fo.ode = ao.ode;
  CT_CHECK(ctx, ct_fsa_new(ctx, P->ode, NULL, 0, &P->fsa));
  CT_CHECK(ctx, ct_fsa_solve(ctx, P->fsa, p, y_initial, tout, NOBS + 1, &fo,
                             &P->sens));
  printf("Forward sensitivities dx/dp, dy/dp\n");
  printf("%6s %5s %14s %14s %14s %14s\n", "t", "", "d/da", "d/db", "d/dc", "d/dd");
  const ct_fsa_result *S = P->sens;
  for (size_t k = 1; k < S->ode.n_out; k++) {
    for (int i = 0; i < NS; i++) {
      if (i == 0)
        printf("%6.2f %5s", S->ode.t[k], "x");
      else
        printf("%6s %5s", "", "y");
      for (size_t j = 0; j < S->n_params; j++)
        printf(" %14.6e", S->s[(k * S->n_params + j) * NS + (size_t)i]);
      printf("\n");
    }
  }
  printf("\n");

  /* 4. dJ/dp by the continuous adjoint: h summed over the observations. */
  CT_CHECK(ctx, ct_asa_new_obs(ctx, P->ode, NULL, NULL, P->misfit, &P->asa));
  CT_CHECK(ctx, ct_asa_solve(ctx, P->asa, p, y_initial, 0.0, t_obs[NOBS - 1], &ao,
                             &P->adj));

  /* 5. The same gradient from the forward sensitivities. */
  double grad_fsa[NP] = {0.0}, J_fsa = 0.0;
  for (size_t k = 1; k < S->ode.n_out; k++) {
    const double *u = S->ode.y + NS * k;
    double ex = u[0] - prey_data[k - 1], ey = u[1] - pred_data[k - 1];
    J_fsa += ex * ex + ey * ey;
    for (size_t j = 0; j < S->n_params; j++) {
      const double *s = S->s + (k * S->n_params + j) * NS;
      grad_fsa[j] += 2.0 * ex * s[0] + 2.0 * ey * s[1];
    }
  }
  printf("Gradient of J (J = %.6e by the adjoint, %.6e forward)\n", P->adj->value, J_fsa);
  printf("%5s %16s %16s\n", "", "adjoint", "forward sens.");
  double worst_agree = 0.0;
  for (int j = 0; j < NP; j++) {
    double ga = P->adj->dJdp[j], gf = grad_fsa[j];
    double scale = fmax(fabs(ga), fabs(gf));
    double rel = scale > 0 ? fabs(ga - gf) / scale : 0.0;
    if (!(rel <= worst_agree)) worst_agree = rel;
    printf("dJ/d%s %16.6e %16.6e\n", param_names[j], ga, gf);
  }
  int agree = worst_agree <= AGREE_RTOL;
  fprintf(stderr, "lotka_volterra: adjoint vs forward gradient: %.3e relative\n",
          worst_agree);
  printf("adjoint and forward gradients agree to 1e-6 relative: %s\n",
         agree ? "yes" : "NO");
  printf("\n");

  /* 6. The adjoint gradient against central differences of J. */
  ct_gradcheck_options go = ct_gradcheck_default_options();
  /* The step is eps^(1/3) |p_j|. The solves' errors (tolerances 1e-11)
   * vary smoothly with p, so J's differences are more accurate than J
   * itself: eps 1e-13 (step 5e-5 |p_j|) balances truncation and noise here
   * (worst relative error about 1e-7; 2e-6 with eps 1e-11). */
  go.eps = 1e-13;
  go.tol = CHECK_TOL;
  CT_CHECK(ctx, ct_asa_gradient_check(ctx, P->asa, p, y_initial, 0.0,
                                      t_obs[NOBS - 1], &ao, &go, &P->check));
  printf("Gradient check (central differences, %ld solves): worst relative error "
         "%s 1e-6\n",
         P->check.n_evals, P->check.passed ? "below" : "ABOVE");
  fprintf(stderr, "lotka_volterra: gradient check worst relative error %.3e (dJ/d%s)\n",
          P->check.worst_rel_err, param_names[P->check.worst]);
  return agree && P->check.passed ? CT_OK : 1;
}

int main(void) {
  problem P = {0};
  P.ctx = ct_context_new(NULL);
  if (!P.ctx) {
    fprintf(stderr, "lotka_volterra: %s\n", ct_errmsg(NULL));
    return 1;
  }
  int status = run(&P);
  if (status < 0) fprintf(stderr, "lotka_volterra: %s\n", ct_errmsg(P.ctx));
  ct_gradcheck_result_clear(P.ctx, &P.check);
  ct_asa_result_free(P.ctx, P.adj);
  ct_fsa_result_free(P.ctx, P.sens);
  ct_ode_result_free(P.ctx, P.sim);
  ct_asa_free(P.asa);
  ct_fsa_free(P.fsa);
  ct_ode_free(P.ode);
  ct_fun_free(P.misfit);
  ct_fun_free(P.rhs);
  ct_context_free(P.ctx);
  return status == CT_OK ? 0 : 1;
}
