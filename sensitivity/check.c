/* Gradient check: a gradient against central finite differences of a
 * scalar objective J(p) given as a callback, per parameter and worst; and
 * the same for an adjoint problem's gradient in one call. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cotangent/adjoint.h"
#include "cotangent/sensitivity.h"

ct_gradcheck_options ct_gradcheck_default_options(void) {
  ct_gradcheck_options o = {DBL_EPSILON, NULL, 1e-10, 1e-5};
  return o;
}

/* Frees what the result holds and zeroes it. */
void ct_gradcheck_result_clear(ct_context *ctx, ct_gradcheck_result *res) {
  if (!res) return;
  ct_free(ctx, res->fd);
  ct_free(ctx, res->grad);
  ct_free(ctx, res->rel_err);
  ct_free(ctx, res->step);
  memset(res, 0, sizeof *res);
}

/* CT_ERR_ARG for arguments the check cannot use. */
static int check_args(ct_context *ctx, ct_objective_fn J, const double *p, size_t np,
                      const double *grad, const ct_gradcheck_options *o) {
  if (!J) return CT_ERROR(ctx, CT_ERR_ARG, "the gradient check needs an objective");
  if (!np || !p || !grad)
    return CT_ERROR(ctx, CT_ERR_ARG, "the gradient check needs p and the gradient "
                    "(np > 0), got np = %zu", np);
  if (!(o->eps > 0) || !isfinite(o->eps))
    return CT_ERROR(ctx, CT_ERR_ARG, "eps must be positive, got %g", o->eps);
  if (!(o->floor >= 0) || !isfinite(o->floor))
    return CT_ERROR(ctx, CT_ERR_ARG, "floor must be non-negative, got %g", o->floor);
  if (!(o->tol >= 0))
    return CT_ERROR(ctx, CT_ERR_ARG, "tol must be non-negative, got %g", o->tol);
  for (size_t j = 0; j < np; j++) {
    if (!isfinite(p[j]))
      return CT_ERROR(ctx, CT_ERR_ARG, "p[%zu] is not finite", j);
    if (o->typical && (!(o->typical[j] > 0) || !isfinite(o->typical[j])))
      return CT_ERROR(ctx, CT_ERR_ARG, "typical[%zu] must be positive, got %g", j,
                      o->typical[j]);
  }
  return CT_OK;
}

/* J at q with q[j] = x; a failure names the parameter. */
static int eval_shifted(ct_context *ctx, ct_objective_fn J, void *ud, double *q,
                        size_t j, double x, double *value) {
  double saved = q[j];
  q[j] = x;
  int rc = J(ctx, q, ud, value);
  q[j] = saved;
  if (rc < 0) {
    char cause[512];
    snprintf(cause, sizeof cause, "%s", ct_errmsg(ctx));
    return CT_ERROR(ctx, rc, "the objective failed at p[%zu] = %.17g (gradient "
                    "check): %s", j, x, cause);
  }
  if (!isfinite(*value))
    return CT_ERROR(ctx, CT_ERR_ARG, "the objective is not finite at p[%zu] = %.17g "
                    "(gradient check)", j, x);
  return CT_OK;
}

/* Central differences with representable steps into res, then the relative
 * errors and the worst. */
static int differences(ct_context *ctx, ct_objective_fn J, void *ud, double *q,
                       const ct_gradcheck_options *o, ct_gradcheck_result *res) {
  double root = cbrt(o->eps);
  for (size_t j = 0; j < res->np; j++) {
    double pj = q[j], typ = o->typical ? o->typical[j] : 1.0;
    double h = root * fmax(fabs(pj), typ);
    volatile double up = pj + h, down = pj - h; /* steps exact in floating point */
    double jp = 0, jm = 0;
    CT_CHECK(ctx, eval_shifted(ctx, J, ud, q, j, up, &jp));
    CT_CHECK(ctx, eval_shifted(ctx, J, ud, q, j, down, &jm));
    res->n_evals += 2;
    res->step[j] = h;
    res->fd[j] = (jp - jm) / (up - down);
    double g = res->grad[j], fd = res->fd[j];
    double denom = fmax(fmax(fabs(fd), fabs(g)), o->floor);
    res->rel_err[j] = denom > 0 ? fabs(fd - g) / denom : (fd == g ? 0 : INFINITY);
    if (!(res->rel_err[j] <= res->worst_rel_err) || j == 0) {
      res->worst_rel_err = res->rel_err[j];
      res->worst = j;
    }
  }
  res->passed = res->worst_rel_err <= o->tol;
  return CT_OK;
}

/* The check into a zeroed result; arrays allocated here. */
static int check_into(ct_context *ctx, ct_objective_fn J, void *ud, const double *p,
                      size_t np, const double *grad, const ct_gradcheck_options *o,
                      ct_gradcheck_result *res) {
  res->np = np;
  res->fd = ct_calloc(ctx, np, sizeof *res->fd);
  res->grad = ct_alloc(ctx, np * sizeof *res->grad);
  res->rel_err = ct_calloc(ctx, np, sizeof *res->rel_err);
  res->step = ct_calloc(ctx, np, sizeof *res->step);
  double *q = ct_alloc(ctx, np * sizeof *q);
  int rc = CT_OK;
  if (!res->fd || !res->grad || !res->rel_err || !res->step || !q) {
    rc = ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  } else {
    memcpy(res->grad, grad, np * sizeof *grad);
    memcpy(q, p, np * sizeof *p);
    rc = differences(ctx, J, ud, q, o, res);
  }
  ct_free(ctx, q);
  return rc;
}

/* Checks grad against central differences of J (see sensitivity.h). */
int ct_gradient_check(ct_context *ctx, ct_objective_fn J, void *ud,
                      const double *p, size_t np, const double *grad,
                      const ct_gradcheck_options *opts, ct_gradcheck_result *res) {
  memset(res, 0, sizeof *res);
  ct_gradcheck_options o = opts ? *opts : ct_gradcheck_default_options();
  CT_CHECK(ctx, check_args(ctx, J, p, np, grad, &o));
  CT_CHECK(ctx, check_into(ctx, J, ud, p, np, grad, &o, res));
  return CT_OK;
}

/* ---- Adjoint problems ------------------------------------------------------ */

/* What the adjoint objective needs besides p. */
typedef struct asa_objective {
  const ct_asa *asa;
  const double *y0;
  double t0, T;
  const ct_asa_options *opts;
} asa_objective;

/* J(p): the value of one adjoint solve (its gradient is not used). */
static int asa_value(ct_context *ctx, const double *p, void *ud, double *value) {
  const asa_objective *a = ud;
  ct_asa_result *r = NULL;
  int rc = ct_asa_solve(ctx, a->asa, p, a->y0, a->t0, a->T, a->opts, &r);
  if (rc == CT_OK) *value = r->value;
  ct_asa_result_free(ctx, r);
  return rc;
}

/* Solves the adjoint problem at p, then checks its dJ/dp (see
 * sensitivity.h). */
int ct_asa_gradient_check(ct_context *ctx, const ct_asa *asa, const double *p,
                          const double *y0, double t0, double T,
                          const ct_asa_options *asa_opts,
                          const ct_gradcheck_options *opts,
                          ct_gradcheck_result *res) {
  memset(res, 0, sizeof *res);
  if (!asa) return CT_ERROR(ctx, CT_ERR_ARG, "the gradient check needs an adjoint problem");
  ct_asa_result *r = NULL;
  int rc = ct_asa_solve(ctx, asa, p, y0, t0, T, asa_opts, &r);
  if (rc < 0) {
    ct_asa_result_free(ctx, r);
    return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  }
  asa_objective a = {asa, y0, t0, T, asa_opts};
  double value = r->value;
  rc = ct_gradient_check(ctx, asa_value, &a, p, r->np, r->dJdp, opts, res);
  ct_asa_result_free(ctx, r);
  CT_CHECK(ctx, rc);
  res->value = value;
  return CT_OK;
}
