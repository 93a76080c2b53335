/* Implicit derivatives of nonlinear and linear solves (cotangent/implicit.h)
 * by the implicit function theorem: one factorization of F_x at the
 * solution (reused from the solve when a back end kept it), a condition
 * check, then one solve per tangent direction or one transposed solve and
 * one AD VJP per adjoint. With the "gmres" linear solver the systems are
 * solved matrix-free by SUNDIALS' SPGMR on AD JVPs (F_x v) and VJPs
 * (F_x^T w). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <nvector/nvector_serial.h>
#include <sundials/sundials_context.h>
#include <sundials/sundials_linearsolver.h>
#include <sunlinsol/sunlinsol_spgmr.h>

#include "cotangent/implicit.h"
#include "../solvers/nlsolve_internal.h"

/* Relative tolerance of the GMRES solves of the derivatives. */
#define IMPLICIT_GMRES_RTOL 1e-12

/* ---- F_x at the solution, factored and checked --------------------------------- */

/* Factors F_x at (x, p) into ls; an exactly singular F_x is CT_ERR_NUMERIC
 * saying the derivative would be wrong. */
static int factor_jacobian(ct_context *ctx, ct_nlsolve *nls, ct_linsolve *ls,
                           const double *x, const double *p) {
  size_t nnz = ct_nlsolve_jac_nnz(nls);
  double *vals = ct_calloc(ctx, nnz, sizeof(double));
  if (!vals) return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  ct_nls_mark_unfactored(nls);
  int rc = ct_nls_jacobian(ctx, nls, x, p, vals);
  if (rc == CT_OK) rc = ct_linsolve_factor(ctx, ls, vals);
  ct_free(ctx, vals);
  if (rc == CT_ERR_NUMERIC) {
    char why[256];
    ct_errmsg_text(ctx, why, sizeof why);
    return CT_ERROR(ctx, CT_ERR_NUMERIC, "F_x at the solution is singular (%s): the "
                    "implicit derivative would be wrong", why);
  }
  if (rc < 0) return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  ct_nls_mark_factored(nls);
  return CT_OK;
}

/* CT_ERR_NUMERIC when the factored F_x's reciprocal condition estimate is
 * below min_rcond (0: no check). The estimate is made once per
 * factorization, and not for iterative solvers: it would cost a dozen
 * Krylov solves, and a Krylov solve that does not converge already fails
 * with its reason. */
static int check_condition(ct_context *ctx, ct_nlsolve *nls, ct_linsolve *ls,
                           double min_rcond) {
  if (!(min_rcond > 0) || ct_linsolve_is_iterative(ls)) return CT_OK;
  double rcond = 0;
  if (!ct_nls_rcond_cached(nls, &rcond)) {
    CT_CHECK(ctx, ct_linsolve_rcond(ctx, ls, &rcond));
    ct_nls_rcond_remember(nls, rcond);
  }
  if (rcond < min_rcond)
    return CT_ERROR(ctx, CT_ERR_NUMERIC, "F_x at the solution is singular or "
                    "ill-conditioned (reciprocal condition estimate %.1e < min_rcond "
                    "%.1e): the implicit derivative would be wrong", rcond, min_rcond);
  return CT_OK;
}

/* The problem's linear solver `name` holding F_x factored at the recorded
 * solution (x, p), or, for a direct solver, at the last Newton iterate when
 * a back end left it so and `stale_ok` (*stale is then 1), its
 * conditioning checked against min_rcond. */
static int factored_at_solution(ct_context *ctx, ct_nlsolve *nls, const char *name,
                                const double *x, const double *p, double min_rcond,
                                int stale_ok, ct_linsolve **ls, int *stale) {
  CT_CHECK(ctx, ct_nls_linsolve(ctx, nls, name, ls));
  /* An iterative solver's "factorization" is its preconditioner: set up
   * afresh at the solution, one Krylov solve beats several refinement
   * steps of one each. */
  *stale = stale_ok && !ct_linsolve_is_iterative(*ls) && ct_nls_is_factored_stale(nls);
  if (!ct_nls_is_factored(nls) && !*stale)
    CT_CHECK(ctx, factor_jacobian(ctx, nls, *ls, x, p));
  CT_CHECK(ctx, check_condition(ctx, nls, *ls, min_rcond));
  return CT_OK;
}

/* ---- Matrix-free solves (gmres) ------------------------------------------------- */

/* F_x (or F_x^T) at the solution as SPGMR's operator. */
typedef struct gmres_op {
  ct_context *ctx;
  ct_nlsolve *nls;
  const double *x, *p;
  int transpose;
  int status; /* the first failing product's status */
} gmres_op;

static int gmres_atimes(void *ud, N_Vector v, N_Vector z) {
  gmres_op *op = ud;
  const double *vv = N_VGetArrayPointer(v);
  double *zz = N_VGetArrayPointer(z);
  int rc = op->transpose ? ct_nls_vjp(op->ctx, op->nls, op->x, op->p, vv, zz, NULL)
                         : ct_nls_jvp(op->ctx, op->nls, op->x, op->p, vv, zz);
  if (rc < 0 && !op->status) op->status = rc;
  return rc < 0 ? -1 : 0;
}

/* The SUNDIALS objects of one GMRES solve. */
typedef struct gmres_set {
  SUNContext sun;
  N_Vector b, y;
  SUNLinearSolver LS;
} gmres_set;

static void gmres_set_free(gmres_set *g) {
  if (g->LS) SUNLinSolFree(g->LS);
  if (g->b) N_VDestroy(g->b);
  if (g->y) N_VDestroy(g->y);
  if (g->sun) SUNContext_Free(&g->sun);
}

/* Solves op y = b with restarted SPGMR to IMPLICIT_GMRES_RTOL relative;
 * non-convergence is CT_ERR_NUMERIC (F_x singular or ill-conditioned). */
static int gmres_run(ct_context *ctx, gmres_op *op, gmres_set *g, size_t n,
                     const double *b, double *y) {
  if (SUNContext_Create(NULL, &g->sun) || !(g->b = N_VNew_Serial((sunindextype)n, g->sun)) ||
      !(g->y = N_VNew_Serial((sunindextype)n, g->sun)))
    return CT_ERROR(ctx, CT_ERR_NOMEM, "implicit derivative: no memory for GMRES vectors");
  int maxl = n < 100 ? (int)n : 100;
  if (!(g->LS = SUNLinSol_SPGMR(g->y, SUN_PREC_NONE, maxl, g->sun)))
    return CT_ERROR(ctx, CT_ERR_NOMEM, "implicit derivative: SUNLinSol_SPGMR returned NULL");
  memcpy(N_VGetArrayPointer(g->b), b, n * sizeof(double));
  N_VConst(0.0, g->y);
  double bnorm = sqrt(N_VDotProd(g->b, g->b));
  if (bnorm == 0) {
    memset(y, 0, n * sizeof(double));
    return CT_OK;
  }
  SUNLinSol_SPGMRSetMaxRestarts(g->LS, 20);
  SUNLinSolSetATimes(g->LS, op, gmres_atimes);
  if (SUNLinSolInitialize(g->LS) || SUNLinSolSetup(g->LS, NULL))
    return CT_ERROR(ctx, CT_ERR_EXTERNAL, "implicit derivative: SPGMR set-up failed");
  SUNLinSolSetZeroGuess(g->LS, SUNTRUE);
  int flag = SUNLinSolSolve(g->LS, NULL, g->y, g->b, IMPLICIT_GMRES_RTOL * bnorm);
  if (op->status) return ct_error_trace(ctx, op->status, __FILE__, __LINE__, __func__);
  if (flag != SUNLS_SUCCESS)
    return CT_ERROR(ctx, CT_ERR_NUMERIC, "GMRES on F_x%s at the solution stopped at "
                    "relative residual %.1e > %.0e after %d iterations (flag %d): F_x is "
                    "singular or ill-conditioned, or unpreconditioned GMRES is too slow "
                    "for it (use a direct linear solver, or petsc with a preconditioner); "
                    "the implicit derivative would be wrong", op->transpose ? "^T" : "",
                    SUNLinSolResNorm(g->LS) / bnorm, IMPLICIT_GMRES_RTOL,
                    SUNLinSolNumIters(g->LS), flag);
  memcpy(y, N_VGetArrayPointer(g->y), n * sizeof(double));
  return CT_OK;
}

/* y = F_x^{-1} b (transpose 0) or F_x^{-T} b at the solution, matrix-free. */
static int gmres_solve(ct_context *ctx, ct_nlsolve *nls, const double *x, const double *p,
                       int transpose, const double *b, double *y) {
  gmres_op op = {ctx, nls, x, p, transpose, 0};
  gmres_set g;
  memset(&g, 0, sizeof g);
  int rc = gmres_run(ctx, &op, &g, ct_nlsolve_n(nls), b, y);
  gmres_set_free(&g);
  if (rc < 0) return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  return CT_OK;
}

/* ---- Solves with F_x at the solution ------------------------------------------- */

/* The recorded solution and a way to solve with F_x there: ls set for a
 * direct solver (factored at x, or at the last Newton iterate when stale),
 * NULL for gmres. */
typedef struct at_solution {
  const double *x, *p;
  const ct_nlsolve_options *o;
  ct_linsolve *ls;
  int stale;
} at_solution;

static int at_solution_get(ct_context *ctx, ct_nlsolve *nls, at_solution *s) {
  CT_CHECK(ctx, ct_nls_solution(ctx, nls, &s->x, &s->p, &s->o));
  s->ls = NULL;
  s->stale = 0;
  if (strcmp(s->o->linear_solver, "gmres"))
    CT_CHECK(ctx, factored_at_solution(ctx, nls, s->o->linear_solver, s->x, s->p,
                                       s->o->min_rcond, 1, &s->ls, &s->stale));
  return CT_OK;
}

/* y = M^{-1} b or M^{-T} b with the factorization in ls. */
static int direct_solve(ct_context *ctx, ct_linsolve *ls, int transpose, const double *b,
                        double *y) {
  if (transpose) CT_CHECK(ctx, ct_linsolve_solve_transpose(ctx, ls, b, y));
  else CT_CHECK(ctx, ct_linsolve_solve(ctx, ls, b, y));
  return CT_OK;
}

static double max_abs(const double *v, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++)
    if (fabs(v[i]) > m) m = fabs(v[i]);
  return m;
}

/* The relative correction at which refinement has converged: 1e-14, or
 * what a fresh factorization would reach, 100 eps / rcond, for an
 * ill-conditioned F_x (a 10^6-point Laplacian has rcond ~ 1e-6: its
 * corrections stall near 1e-10 however good the factorization). */
#define IMPLICIT_REFINE_RTOL 1e-14
#define IMPLICIT_REFINE_MAX 10
static double refine_tolerance(const ct_nlsolve *nls) {
  double rcond = 0;
  if (!ct_nls_rcond_cached(nls, &rcond) || !(rcond > 0)) return IMPLICIT_REFINE_RTOL;
  return fmax(IMPLICIT_REFINE_RTOL, 100.0 * DBL_EPSILON / rcond);
}

/* Iterative refinement of F_x y = b (or F_x^T y = b) at the solution with
 * the stale factorization M as the approximate inverse: y <- y + M^{-1}(b -
 * F_x y), F_x y from an AD JVP (VJP). *converged is 0 when the correction
 * does not fall below refine_tolerance |y| within IMPLICIT_REFINE_MAX
 * steps or stops shrinking; r and d are n-number scratch arrays. */
static int refine(ct_context *ctx, ct_nlsolve *nls, const at_solution *s, int transpose,
                  const double *b, double *y, double *r, double *d, int *converged) {
  size_t n = ct_nlsolve_n(nls);
  double tol = refine_tolerance(nls);
  *converged = 0;
  CT_CHECK(ctx, direct_solve(ctx, s->ls, transpose, b, y));
  double last = INFINITY;
  for (int it = 0; it < IMPLICIT_REFINE_MAX; it++) {
    if (transpose) CT_CHECK(ctx, ct_nls_vjp(ctx, nls, s->x, s->p, y, r, NULL));
    else CT_CHECK(ctx, ct_nls_jvp(ctx, nls, s->x, s->p, y, r));
    for (size_t i = 0; i < n; i++) r[i] = b[i] - r[i];
    CT_CHECK(ctx, direct_solve(ctx, s->ls, transpose, r, d));
    for (size_t i = 0; i < n; i++) y[i] += d[i];
    double step = max_abs(d, n), size = max_abs(y, n);
    if (!isfinite(step) || !isfinite(size)) return CT_OK;
    if (step <= tol * size) {
      *converged = 1;
      return CT_OK;
    }
    if (step > 0.5 * last) return CT_OK; /* not contracting: M is too far from F_x */
    last = step;
  }
  return CT_OK;
}

/* y = F_x^{-1} b, or F_x^{-T} b when transpose, at the solution. With a
 * stale factorization: refinement, and when that fails, F_x factored at
 * the solution (which s then keeps). */
static int solve_with(ct_context *ctx, ct_nlsolve *nls, at_solution *s, int transpose,
                      const double *b, double *y) {
  if (!s->ls) return gmres_solve(ctx, nls, s->x, s->p, transpose, b, y);
  if (!s->stale) return direct_solve(ctx, s->ls, transpose, b, y);
  size_t n = ct_nlsolve_n(nls);
  double *scratch = ct_calloc(ctx, 2 * n, sizeof(double));
  if (!scratch) return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  int converged = 0;
  int rc = refine(ctx, nls, s, transpose, b, y, scratch, scratch + n, &converged);
  ct_free(ctx, scratch);
  CT_CHECK(ctx, rc);
  if (converged) return CT_OK;
  s->stale = 0;
  CT_CHECK(ctx, factor_jacobian(ctx, nls, s->ls, s->x, s->p));
  CT_CHECK(ctx, check_condition(ctx, nls, s->ls, s->o->min_rcond));
  return direct_solve(ctx, s->ls, transpose, b, y);
}

/* ---- Nonlinear solves ----------------------------------------------------------- */

int ct_nlsolve_tangent(ct_context *ctx, ct_nlsolve *nls, int k, const double *dp,
                       double *dx) {
  if (!nls || k < 0 || !dx || (k > 0 && ct_nlsolve_n_params(nls) && !dp))
    return CT_ERROR(ctx, CT_ERR_ARG, "ct_nlsolve_tangent: the problem, dp or dx is NULL, "
                    "or k (%d) is negative", k);
  at_solution s;
  CT_CHECK(ctx, at_solution_get(ctx, nls, &s));
  size_t n = ct_nlsolve_n(nls), np = ct_nlsolve_n_params(nls);
  double *rhs = ct_calloc(ctx, n, sizeof(double));
  if (!rhs) return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  int rc = CT_OK;
  for (int j = 0; rc == CT_OK && j < k; j++) {
    double *dxj = dx + (size_t)j * n;
    rc = ct_nls_jvp_p(ctx, nls, s.x, s.p, np ? dp + (size_t)j * np : NULL, rhs);
    for (size_t i = 0; rc == CT_OK && i < n; i++) rhs[i] = -rhs[i];
    if (rc == CT_OK) rc = solve_with(ctx, nls, &s, 0, rhs, dxj);
  }
  ct_free(ctx, rhs);
  if (rc < 0) return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  return CT_OK;
}

/* lambda = F_x^{-T} x_bar and p_bar = -F_p^T lambda at the recorded solution;
 * lam has n numbers (caller's scratch when the caller wants no lambda). */
static int adjoint_into(ct_context *ctx, ct_nlsolve *nls, at_solution *s,
                        const double *x_bar, double *p_bar, double *lam) {
  size_t n = ct_nlsolve_n(nls), np = ct_nlsolve_n_params(nls);
  CT_CHECK(ctx, solve_with(ctx, nls, s, 1, x_bar, lam));
  double *xb = ct_calloc(ctx, n, sizeof(double));
  if (!xb) return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  int rc = ct_nls_vjp(ctx, nls, s->x, s->p, lam, xb, np ? p_bar : NULL);
  ct_free(ctx, xb);
  CT_CHECK(ctx, rc);
  for (size_t j = 0; j < np; j++) p_bar[j] = -p_bar[j];
  return CT_OK;
}

int ct_nlsolve_adjoint(ct_context *ctx, ct_nlsolve *nls, const double *x_bar,
                       double *p_bar, double *lambda) {
  if (!nls || !x_bar || (ct_nlsolve_n_params(nls) && !p_bar))
    return CT_ERROR(ctx, CT_ERR_ARG, "ct_nlsolve_adjoint: the problem, x_bar or p_bar "
                    "is NULL");
  at_solution s;
  CT_CHECK(ctx, at_solution_get(ctx, nls, &s));
  double *lam = lambda ? lambda : ct_calloc(ctx, ct_nlsolve_n(nls), sizeof(double));
  if (!lam) return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  int rc = adjoint_into(ctx, nls, &s, x_bar, p_bar, lam);
  if (lam != lambda) ct_free(ctx, lam);
  if (rc < 0) return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  return CT_OK;
}

int ct_nlsolve_rcond(ct_context *ctx, ct_nlsolve *nls, double *rcond) {
  if (!nls || !rcond)
    return CT_ERROR(ctx, CT_ERR_ARG, "ct_nlsolve_rcond: the problem or rcond is NULL");
  *rcond = 0;
  const double *x, *p;
  const ct_nlsolve_options *o;
  CT_CHECK(ctx, ct_nls_solution(ctx, nls, &x, &p, &o));
  /* gmres factors nothing: estimate with KLU on the same Jacobian. */
  const char *name = strcmp(o->linear_solver, "gmres") ? o->linear_solver : "klu";
  ct_linsolve *ls = NULL;
  int stale = 0;
  CT_CHECK(ctx, factored_at_solution(ctx, nls, name, x, p, 0.0, 0, &ls, &stale));
  if (!ct_nls_rcond_cached(nls, rcond)) {
    CT_CHECK(ctx, ct_linsolve_rcond(ctx, ls, rcond));
    ct_nls_rcond_remember(nls, *rcond);
  }
  return CT_OK;
}

/* ---- One-call gradients ---------------------------------------------------------- */

/* An input or output of an AD function by name. */
typedef struct named_arg {
  const char *name;
  const double *in;
  double *out;
} named_arg;

/* Evaluates f with the inputs and outputs found by name in args (inputs
 * must all be there; outputs not listed are skipped). */
static int eval_named(ct_context *ctx, const ct_fun *f, const named_arg *args, size_t nargs) {
  const double *in[8] = {NULL};
  double *out[8] = {NULL};
  if (ct_fun_n_in(f) > 8 || ct_fun_n_out(f) > 8)
    return CT_ERROR(ctx, CT_ERR_INTERNAL, "implicit gradient: too many inputs/outputs");
  for (size_t a = 0; a < nargs; a++) {
    long i = ct_fun_in_index(f, args[a].name), o = ct_fun_out_index(f, args[a].name);
    if (i >= 0 && args[a].in) in[i] = args[a].in;
    if (o >= 0 && args[a].out) out[o] = args[a].out;
  }
  for (size_t i = 0; i < ct_fun_n_in(f); i++)
    if (!in[i])
      return CT_ERROR(ctx, CT_ERR_INTERNAL, "implicit gradient: input '%s' not bound",
                      ct_fun_in_name(f, i));
  double *work = ct_calloc(ctx, ct_fun_work_size(f) + 1, sizeof(double));
  if (!work) return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  int rc = ct_fun_eval(ctx, f, in, out, work);
  ct_free(ctx, work);
  if (rc < 0) return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  if (rc == CT_RETRACE)
    return CT_ERROR(ctx, CT_ERR_STATE, "implicit gradient: a function met a branch that "
                    "differs from the traced one (re-trace it)");
  return CT_OK;
}

/* The VJP (one seed) of f with respect to those of "x", "p" it has. */
static int vjp_of(ct_context *ctx, const ct_fun *f, ct_fun **vjp) {
  const char *wrt[3] = {NULL, NULL, NULL};
  int k = 0;
  if (ct_fun_in_index(f, "x") >= 0) wrt[k++] = "x";
  if (ct_fun_in_index(f, "p") >= 0) wrt[k++] = "p";
  *vjp = NULL;
  if (!k) return CT_OK;
  CT_CHECK(ctx, ct_fun_vjp(ctx, f, 1, wrt, vjp));
  return CT_OK;
}

/* g's inputs and output: "x" (n), optional "p" (np), "g" (1). */
static int check_loss(ct_context *ctx, const ct_fun *g, size_t n, size_t np) {
  long ix = ct_fun_in_index(g, "x"), ip = ct_fun_in_index(g, "p"), og = ct_fun_out_index(g, "g");
  if (ix < 0 || ct_fun_in_size(g, (size_t)ix) != n)
    return CT_ERROR(ctx, CT_ERR_ARG, "the loss function g needs an input 'x' of %zu "
                    "components", n);
  if (ip >= 0 && ct_fun_in_size(g, (size_t)ip) != np)
    return CT_ERROR(ctx, CT_ERR_ARG, "input 'p' of the loss function g has %zu "
                    "components, expected %zu", ct_fun_in_size(g, (size_t)ip), np);
  if (og < 0 || ct_fun_out_size(g, (size_t)og) != 1)
    return CT_ERROR(ctx, CT_ERR_ARG, "the loss function g needs an output 'g' of one "
                    "component");
  for (size_t i = 0; i < ct_fun_n_in(g); i++)
    if (strcmp(ct_fun_in_name(g, i), "x") && strcmp(ct_fun_in_name(g, i), "p"))
      return CT_ERROR(ctx, CT_ERR_ARG, "the loss function g has input '%s' (only x, p)",
                      ct_fun_in_name(g, i));
  return CT_OK;
}

/* loss = g(x, p), x_bar = g_x, grad += g_p (np numbers), with g's VJP. */
static int loss_and_partials(ct_context *ctx, const ct_fun *g, const double *x,
                             const double *p, double *loss, double *x_bar, double *grad,
                             size_t np) {
  ct_fun *vjp = NULL;
  CT_CHECK(ctx, vjp_of(ctx, g, &vjp));
  static const double one = 1.0, zero = 0.0;
  double *g_p = ct_calloc(ctx, np ? np : 1, sizeof(double));
  int rc = g_p ? CT_OK : CT_ERR_NOMEM;
  named_arg args[] = {{"x", x, NULL}, {"p", p ? p : &zero, NULL}, {"bar_g", &one, NULL},
                      {"g", NULL, loss}, {"bar_x", NULL, x_bar}, {"bar_p", NULL, g_p}};
  if (rc == CT_OK) rc = eval_named(ctx, vjp, args, sizeof args / sizeof args[0]);
  for (size_t j = 0; rc == CT_OK && j < np; j++) grad[j] += g_p[j];
  ct_free(ctx, g_p);
  ct_fun_free(vjp);
  if (rc < 0) return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  return CT_OK;
}

int ct_nlsolve_gradient(ct_context *ctx, ct_nlsolve *nls, const ct_nlsolve_options *opts,
                        const ct_fun *g, const double *p, double *x, double *loss,
                        double *grad) {
  size_t n = ct_nlsolve_n(nls), np = ct_nlsolve_n_params(nls);
  if (!nls || !g || !x || !loss || (np && !grad))
    return CT_ERROR(ctx, CT_ERR_ARG, "ct_nlsolve_gradient: the problem, g, x, loss or "
                    "grad is NULL");
  CT_CHECK(ctx, check_loss(ctx, g, n, np));
  CT_CHECK(ctx, ct_nlsolve_solve(ctx, nls, opts, p, x, NULL));
  double *x_bar = ct_calloc(ctx, n, sizeof(double));
  double *p_bar = ct_calloc(ctx, np ? np : 1, sizeof(double));
  int rc = x_bar && p_bar ? CT_OK : CT_ERR_NOMEM;
  for (size_t j = 0; j < np; j++) grad[j] = 0;
  if (rc == CT_OK) rc = loss_and_partials(ctx, g, x, p, loss, x_bar, grad, np);
  if (rc == CT_OK) rc = ct_nlsolve_adjoint(ctx, nls, x_bar, np ? p_bar : NULL, NULL);
  for (size_t j = 0; rc == CT_OK && j < np; j++) grad[j] += p_bar[j];
  ct_free(ctx, x_bar);
  ct_free(ctx, p_bar);
  if (rc < 0) return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  return CT_OK;
}

/* ---- Linear solves as nodes ------------------------------------------------------ */

/* The sizes of ct_linsolve_gradient's functions: nnz of A, n of b, np. */
typedef struct lin_sizes {
  size_t nnz, n, np;
} lin_sizes;

/* Checks A ("A", input p optional), b ("b", p optional), g, and finds np. */
static int check_linear(ct_context *ctx, const ct_fun *A, const ct_fun *b, const ct_fun *g,
                        lin_sizes *z) {
  long oA = ct_fun_out_index(A, "A"), ob = ct_fun_out_index(b, "b");
  if (oA < 0 || ob < 0)
    return CT_ERROR(ctx, CT_ERR_ARG, "ct_linsolve_gradient: A needs the output 'A' and b "
                    "the output 'b'");
  z->nnz = ct_fun_out_size(A, (size_t)oA);
  z->n = ct_fun_out_size(b, (size_t)ob);
  z->np = 0;
  const ct_fun *fs[] = {A, b, g};
  const char *names[] = {"A", "b", "g"};
  for (int i = 0; i < 3; i++) {
    long ip = ct_fun_in_index(fs[i], "p");
    if (ip < 0) continue;
    size_t m = ct_fun_in_size(fs[i], (size_t)ip);
    if (z->np && m != z->np)
      return CT_ERROR(ctx, CT_ERR_ARG, "ct_linsolve_gradient: input 'p' of %s has %zu "
                      "components, another function's has %zu", names[i], m, z->np);
    z->np = m;
  }
  for (int i = 0; i < 2; i++)
    for (size_t k = 0; k < ct_fun_n_in(fs[i]); k++)
      if (strcmp(ct_fun_in_name(fs[i], k), "p"))
        return CT_ERROR(ctx, CT_ERR_ARG, "ct_linsolve_gradient: %s has input '%s' (only p)",
                        names[i], ct_fun_in_name(fs[i], k));
  CT_CHECK(ctx, check_loss(ctx, g, z->n, z->np));
  return CT_OK;
}

/* grad += (d out/dp)^T seed for f with output `out`, by its VJP; nothing
 * when f has no input "p". */
static int add_parameter_vjp(ct_context *ctx, const ct_fun *f, const char *out,
                             const double *p, const double *seed, double *grad, size_t np) {
  if (ct_fun_in_index(f, "p") < 0 || !np) return CT_OK;
  ct_fun *vjp = NULL;
  CT_CHECK(ctx, vjp_of(ctx, f, &vjp));
  char bar[16];
  snprintf(bar, sizeof bar, "bar_%s", out);
  double *pb = ct_calloc(ctx, np, sizeof(double));
  int rc = pb ? CT_OK : CT_ERR_NOMEM;
  named_arg args[] = {{"p", p, NULL}, {bar, seed, NULL}, {"bar_p", NULL, pb}};
  if (rc == CT_OK) rc = eval_named(ctx, vjp, args, 3);
  for (size_t j = 0; rc == CT_OK && j < np; j++) grad[j] += pb[j];
  ct_free(ctx, pb);
  ct_fun_free(vjp);
  if (rc < 0) return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  return CT_OK;
}

/* The work of ct_linsolve_gradient with its buffers: vals (nnz), b, x_bar,
 * b_bar (n), A_bar (nnz). */
static int linear_gradient(ct_context *ctx, ct_linsolve *ls, const ct_fun *A,
                           const ct_fun *b, const ct_fun *g, const double *p, double *x,
                           double *loss, double *grad, const lin_sizes *z, double *buf) {
  static const double zero = 0.0;
  const double *pp = p ? p : &zero;
  double *vals = buf, *bv = vals + z->nnz, *x_bar = bv + z->n, *b_bar = x_bar + z->n;
  double *A_bar = b_bar + z->n;
  named_arg a_args[] = {{"p", pp, NULL}, {"A", NULL, vals}};
  named_arg b_args[] = {{"p", pp, NULL}, {"b", NULL, bv}};
  CT_CHECK(ctx, eval_named(ctx, A, a_args, 2));
  CT_CHECK(ctx, eval_named(ctx, b, b_args, 2));
  CT_CHECK(ctx, ct_linsolve_factor(ctx, ls, vals));
  CT_CHECK(ctx, ct_linsolve_solve(ctx, ls, bv, x));
  for (size_t j = 0; j < z->np; j++) grad[j] = 0;
  CT_CHECK(ctx, loss_and_partials(ctx, g, x, p, loss, x_bar, grad, z->np));
  CT_CHECK(ctx, ct_linsolve_adjoint(ctx, ls, x, x_bar, b_bar, A_bar));
  CT_CHECK(ctx, add_parameter_vjp(ctx, A, "A", pp, A_bar, grad, z->np));
  CT_CHECK(ctx, add_parameter_vjp(ctx, b, "b", pp, b_bar, grad, z->np));
  return CT_OK;
}

int ct_linsolve_gradient(ct_context *ctx, ct_linsolve *ls, const ct_fun *A,
                         const ct_fun *b, const ct_fun *g, const double *p, double *x,
                         double *loss, double *grad) {
  if (!ls || !A || !b || !g || !x || !loss)
    return CT_ERROR(ctx, CT_ERR_ARG, "ct_linsolve_gradient: ls, A, b, g, x or loss is NULL");
  lin_sizes z = {0, 0, 0};
  CT_CHECK(ctx, check_linear(ctx, A, b, g, &z));
  const ct_sparsity *pat = ct_linsolve_pattern(ls);
  if (z.nnz != pat->nnz || z.n != pat->nrows)
    return CT_ERROR(ctx, CT_ERR_ARG, "ct_linsolve_gradient: A has %zu values and b %zu, "
                    "but the solver's matrix is %zu x %zu with %zu nonzeros", z.nnz, z.n,
                    pat->nrows, pat->ncols, pat->nnz);
  if (z.np && (!p || !grad))
    return CT_ERROR(ctx, CT_ERR_ARG, "ct_linsolve_gradient: p or grad is NULL but there "
                    "are %zu parameters", z.np);
  double *buf = ct_calloc(ctx, 2 * z.nnz + 3 * z.n + 1, sizeof(double));
  if (!buf) return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  int rc = linear_gradient(ctx, ls, A, b, g, p, x, loss, grad, &z, buf);
  ct_free(ctx, buf);
  if (rc < 0) return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  return CT_OK;
}
