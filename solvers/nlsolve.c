/* Nonlinear problems F(x, p) = 0 and x = G(x, p) from one AD function: the
 * problem (its derivative functions, built once), the services the back
 * ends and the implicit derivatives share (nlsolve_internal.h), and
 * ct_nlsolve_solve, which completes the options and dispatches to a back
 * end by name. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cotangent/nlsolve.h"
#include "model_io.h"
#include "nlsolve_internal.h"
#include "ode_internal.h"

/* An AD function with the positions of its inputs "x", "p" and of its one
 * extra input (a direction or a seed), -1 where absent, and of up to two
 * outputs. */
typedef struct nls_fun {
  ct_fun *f;
  long x, p, extra;
  long out[2];
} nls_fun;

struct ct_nlsolve {
  ct_context *ctx;
  size_t n, np;
  int fixed_point;      /* output "G": F = x - G */
  nls_fun res;          /* F or G */
  nls_fun jac;          /* sparse Jacobian of F or G w.r.t. x ("jac") */
  nls_fun jvp_x;        /* d_F (or d_G) for one direction d_x */
  nls_fun jvp_p;        /* d_F (or d_G) for one direction d_p; f NULL if np 0 */
  nls_fun vjp;          /* bar_x, bar_p for one seed */
  ct_sparsity *jac_pattern; /* of the function's own Jacobian */
  ct_sparsity pattern;  /* F_x: jac_pattern with the diagonal added */
  size_t *jac_pos;      /* CSC position in pattern of each jac_pattern entry */
  size_t *diag_pos;     /* CSC position in pattern of each diagonal entry */
  double *jac_vals;     /* jac_pattern->nnz */
  double *tmp;          /* n */
  double *work;
  size_t work_size;
  ct_model_jit jit;
  long f_evals, jac_evals, jtimes;
  /* The linear solver kept with the problem (ct_nls_linsolve). */
  ct_linsolve *ls;
  int factored;         /* ls holds F_x at sol_x (ct_nls_mark_factored) */
  int factored_stale;   /* ls holds F_x at an earlier iterate */
  int rcond_known;      /* rcond is that of ls's current factorization */
  double rcond;
  /* The last successful solve (cotangent/implicit.h). */
  int solved;
  double *sol_x, *sol_p;
  ct_nlsolve_options sol_opts; /* strings point to the copies below */
  char sol_linear_solver[32];
  char *sol_petsc_options;
  const char *cur_petsc_options; /* during a solve: the caller's */
};

/* ---- Building a problem ------------------------------------------------------ */

/* Records the positions of f's inputs; any input other than x, p and
 * `extra` (NULL: none) is CT_ERR_ARG. */
static int bind(ct_context *ctx, ct_fun *f, const char *extra, nls_fun *b) {
  b->f = f;
  b->x = ct_fun_in_index(f, "x");
  b->p = ct_fun_in_index(f, "p");
  b->extra = extra ? ct_fun_in_index(f, extra) : -1;
  b->out[0] = b->out[1] = -1;
  for (size_t i = 0; i < ct_fun_n_in(f); i++) {
    const char *name = ct_fun_in_name(f, i);
    if (strcmp(name, "x") && strcmp(name, "p") && (!extra || strcmp(name, extra)))
      return CT_ERROR(ctx, CT_ERR_ARG,
                      "nonlinear problem: function input '%s' is not one of x, p", name);
  }
  return CT_OK;
}

/* A copy of `from` with only the outputs names[0..1] (NULL-terminated),
 * bound with the extra input `extra`. */
static int derived(ct_context *ctx, const ct_fun *from, const char *const *names,
                   const char *extra, nls_fun *b) {
  ct_fun *f = NULL;
  CT_CHECK(ctx, ct_fun_select_outputs(ctx, from, names, &f));
  int rc = bind(ctx, f, extra, b);
  for (int k = 0; rc == CT_OK && k < 2 && names[k]; k++)
    b->out[k] = ct_fun_out_index(f, names[k]);
  if (rc < 0) {
    ct_fun_free(f);
    b->f = NULL;
  }
  return rc;
}

/* pattern = jac_pattern plus the diagonal, with the maps from both. */
static int build_pattern(ct_context *ctx, ct_nlsolve *nls) {
  const ct_sparsity *J = nls->jac_pattern;
  size_t n = nls->n, cap = J->nnz + n;
  ct_sparsity *P = &nls->pattern;
  P->nrows = P->ncols = n;
  P->colptr = ct_calloc(ctx, n + 1, sizeof(size_t));
  P->rowind = ct_calloc(ctx, cap, sizeof(size_t));
  nls->jac_pos = ct_calloc(ctx, J->nnz ? J->nnz : 1, sizeof(size_t));
  nls->diag_pos = ct_calloc(ctx, n, sizeof(size_t));
  if (!P->colptr || !P->rowind || !nls->jac_pos || !nls->diag_pos)
    return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  size_t q = 0;
  for (size_t j = 0; j < n; j++) {
    P->colptr[j] = q;
    int diag_done = 0;
    for (size_t k = J->colptr[j]; k < J->colptr[j + 1]; k++) {
      size_t i = J->rowind[k];
      if (!diag_done && i >= j) {
        if (i > j) P->rowind[q++] = j;
        nls->diag_pos[j] = q - (i > j ? 1 : 0);
        diag_done = 1;
      }
      nls->jac_pos[k] = q;
      P->rowind[q++] = i;
    }
    if (!diag_done) {
      nls->diag_pos[j] = q;
      P->rowind[q++] = j;
    }
  }
  P->colptr[n] = q;
  P->nnz = q;
  return CT_OK;
}

/* The largest workspace any of the problem's functions needs, allocated. */
static int size_work(ct_context *ctx, ct_nlsolve *nls) {
  const nls_fun *all[] = {&nls->res, &nls->jac, &nls->jvp_x, &nls->jvp_p, &nls->vjp};
  size_t w = 1;
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    if (all[i]->f && ct_fun_work_size(all[i]->f) > w) w = ct_fun_work_size(all[i]->f);
  if (w <= nls->work_size && nls->work) return CT_OK;
  double *work = ct_realloc_array(ctx, nls->work, w, sizeof(double));
  if (!work) return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  nls->work = work;
  nls->work_size = w;
  return CT_OK;
}

/* The residual function: a private copy with output F or G, sizes checked. */
static int build_residual(ct_context *ctx, ct_nlsolve *nls, const ct_fun *F) {
  int has_F = ct_fun_out_index(F, "F") >= 0, has_G = ct_fun_out_index(F, "G") >= 0;
  if (has_F == has_G)
    return CT_ERROR(ctx, CT_ERR_ARG, "nonlinear problem: the function needs exactly one "
                    "of the outputs 'F' (root problem) and 'G' (fixed point)%s",
                    has_F ? ", not both" : "");
  nls->fixed_point = has_G;
  const char *out = has_G ? "G" : "F";
  const char *names[] = {out, NULL};
  CT_CHECK(ctx, derived(ctx, F, names, NULL, &nls->res));
  if (nls->res.x < 0)
    return CT_ERROR(ctx, CT_ERR_ARG, "nonlinear problem: the function has no input 'x'");
  nls->n = ct_fun_in_size(nls->res.f, (size_t)nls->res.x);
  nls->np = nls->res.p < 0 ? 0 : ct_fun_in_size(nls->res.f, (size_t)nls->res.p);
  if (nls->n == 0)
    return CT_ERROR(ctx, CT_ERR_ARG, "nonlinear problem: input 'x' has no components");
  CT_CHECK(ctx, ct_model_check_output(ctx, nls->res.f, "nonlinear problem", out, nls->n));
  return CT_OK;
}

/* The Jacobian w.r.t. x, the JVPs w.r.t. x and p and the VJP. */
static int build_derivatives(ct_context *ctx, ct_nlsolve *nls) {
  const char *wrt_x[] = {"x", NULL}, *wrt_p[] = {"p", NULL}, *wrt_xp[] = {"x", "p", NULL};
  ct_fun *jac = NULL, *t = NULL;
  CT_CHECK(ctx, ct_fun_sparse_jac(ctx, nls->res.f, wrt_x, &jac, &nls->jac_pattern));
  int rc = bind(ctx, jac, NULL, &nls->jac);
  if (rc < 0) ct_fun_free(jac), nls->jac.f = NULL;
  CT_CHECK(ctx, rc);
  const char *d_out[] = {nls->fixed_point ? "d_G" : "d_F", NULL};
  CT_CHECK(ctx, ct_fun_jvp(ctx, nls->res.f, 1, wrt_x, &t));
  rc = derived(ctx, t, d_out, "d_x", &nls->jvp_x);
  ct_fun_free(t);
  CT_CHECK(ctx, rc);
  if (nls->np) {
    CT_CHECK(ctx, ct_fun_jvp(ctx, nls->res.f, 1, wrt_p, &t));
    rc = derived(ctx, t, d_out, "d_p", &nls->jvp_p);
    ct_fun_free(t);
    CT_CHECK(ctx, rc);
  }
  const char *bar_out[] = {"bar_x", nls->np ? "bar_p" : NULL, NULL};
  CT_CHECK(ctx, ct_fun_vjp(ctx, nls->res.f, 1, nls->np ? wrt_xp : wrt_x, &t));
  rc = derived(ctx, t, bar_out, nls->fixed_point ? "bar_G" : "bar_F", &nls->vjp);
  ct_fun_free(t);
  return rc;
}

/* Everything ct_nlsolve_new builds, into the zeroed nls. */
static int nlsolve_fill(ct_context *ctx, ct_nlsolve *nls, const ct_fun *F) {
  CT_CHECK(ctx, build_residual(ctx, nls, F));
  CT_CHECK(ctx, build_derivatives(ctx, nls));
  CT_CHECK(ctx, build_pattern(ctx, nls));
  size_t n = nls->n;
  nls->jac_vals = ct_calloc(ctx, nls->jac_pattern->nnz ? nls->jac_pattern->nnz : 1,
                            sizeof(double));
  nls->tmp = ct_calloc(ctx, n, sizeof(double));
  nls->sol_x = ct_calloc(ctx, n, sizeof(double));
  nls->sol_p = ct_calloc(ctx, nls->np ? nls->np : 1, sizeof(double));
  if (!nls->jac_vals || !nls->tmp || !nls->sol_x || !nls->sol_p)
    return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  CT_CHECK(ctx, size_work(ctx, nls));
  return CT_OK;
}

int ct_nlsolve_new(ct_context *ctx, const ct_fun *F, ct_nlsolve **out) {
  if (!out) return CT_ERROR(ctx, CT_ERR_ARG, "ct_nlsolve_new: out is NULL");
  *out = NULL;
  if (!F) return CT_ERROR(ctx, CT_ERR_ARG, "ct_nlsolve_new: the function F is NULL");
  ct_nlsolve *nls = ct_calloc(ctx, 1, sizeof *nls);
  if (!nls) return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  nls->ctx = ctx;
  int rc = nlsolve_fill(ctx, nls, F);
  if (rc < 0) {
    ct_nlsolve_free(nls);
    return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  }
  *out = nls;
  return CT_OK;
}

void ct_nlsolve_free(ct_nlsolve *nls) {
  if (!nls) return;
  ct_context *ctx = nls->ctx;
  ct_fun_free(nls->res.f);
  ct_fun_free(nls->jac.f);
  ct_fun_free(nls->jvp_x.f);
  ct_fun_free(nls->jvp_p.f);
  ct_fun_free(nls->vjp.f);
  ct_sparsity_free(ctx, nls->jac_pattern);
  ct_free(ctx, nls->pattern.colptr);
  ct_free(ctx, nls->pattern.rowind);
  ct_free(ctx, nls->jac_pos);
  ct_free(ctx, nls->diag_pos);
  ct_free(ctx, nls->jac_vals);
  ct_free(ctx, nls->tmp);
  ct_free(ctx, nls->work);
  ct_model_jit_clear(ctx, &nls->jit);
  ct_linsolve_free(ctx, nls->ls);
  ct_free(ctx, nls->sol_x);
  ct_free(ctx, nls->sol_p);
  ct_free(ctx, nls->sol_petsc_options);
  ct_free(ctx, nls);
}

size_t ct_nlsolve_n(const ct_nlsolve *nls) { return nls ? nls->n : 0; }
size_t ct_nlsolve_n_params(const ct_nlsolve *nls) { return nls ? nls->np : 0; }
int ct_nlsolve_is_fixed_point(const ct_nlsolve *nls) { return nls ? nls->fixed_point : 0; }
size_t ct_nlsolve_jac_nnz(const ct_nlsolve *nls) { return nls ? nls->pattern.nnz : 0; }

/* Compiles every function of the problem (see nlsolve.h). */
int ct_nlsolve_jit(ct_context *ctx, ct_nlsolve *nls, const ct_jit_options *opts) {
  if (!nls) return CT_ERROR(ctx, CT_ERR_ARG, "ct_nlsolve_jit: the problem is NULL");
  ct_fun *const fs[] = {nls->res.f, nls->jac.f, nls->jvp_x.f, nls->jvp_p.f, nls->vjp.f};
  int rc = ct_model_jit_all(ctx, &nls->jit, opts, fs, sizeof fs / sizeof fs[0]);
  if (rc == CT_OK) rc = size_work(ctx, nls);
  if (rc < 0) return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  return CT_OK;
}

/* ---- Services (nlsolve_internal.h) ------------------------------------------- */

/* Evaluates b at (x, p) with the extra input `extra` into out0 (and out1,
 * the second output, when b has one). A guard that flipped is CT_ERR_STATE
 * naming `what`. */
static int eval(ct_context *ctx, ct_nlsolve *nls, const nls_fun *b, const char *what,
                const double *x, const double *p, const double *extra, double *out0,
                double *out1) {
  const double *in[3] = {NULL, NULL, NULL};
  double *out[2] = {NULL, NULL};
  static const double no_p = 0.0;
  if (b->x >= 0) in[b->x] = x;
  if (b->p >= 0) in[b->p] = p ? p : &no_p;
  if (b->extra >= 0) in[b->extra] = extra;
  if (b->out[0] >= 0) out[b->out[0]] = out0;
  if (b->out[1] >= 0) out[b->out[1]] = out1;
  if (b->out[0] < 0) out[0] = out0; /* the Jacobian: its only output */
  int rc = ct_fun_eval(ctx, b->f, in, out, nls->work);
  if (rc < 0) return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  if (rc == CT_RETRACE)
    return CT_ERROR(ctx, CT_ERR_STATE, "nonlinear problem: the %s met a branch that "
                    "differs from the traced one at this x (re-trace the function)", what);
  return CT_OK;
}

/* CT_OK when v[0..n) is finite, else CT_ERR_NUMERIC naming `what` and the
 * first bad component. */
static int check_finite(ct_context *ctx, const char *what, const double *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(v[i]))
      return CT_ERROR(ctx, CT_ERR_NUMERIC, "nonlinear problem: the %s is %s in "
                      "component %zu", what, isnan(v[i]) ? "NaN" : "infinite", i);
  return CT_OK;
}

int ct_nls_fixed_point_map(ct_context *ctx, ct_nlsolve *nls, const double *x,
                           const double *p, double *G) {
  if (!nls->fixed_point)
    return CT_ERROR(ctx, CT_ERR_STATE, "nonlinear problem: not a fixed-point problem");
  nls->f_evals++;
  CT_CHECK(ctx, eval(ctx, nls, &nls->res, "fixed-point map G", x, p, NULL, G, NULL));
  CT_CHECK(ctx, check_finite(ctx, "fixed-point map G", G, nls->n));
  return CT_OK;
}

int ct_nls_residual(ct_context *ctx, ct_nlsolve *nls, const double *x,
                    const double *p, double *F) {
  nls->f_evals++;
  CT_CHECK(ctx, eval(ctx, nls, &nls->res, "residual", x, p, NULL, F, NULL));
  if (nls->fixed_point)
    for (size_t i = 0; i < nls->n; i++) F[i] = x[i] - F[i];
  CT_CHECK(ctx, check_finite(ctx, "residual", F, nls->n));
  return CT_OK;
}

const ct_sparsity *ct_nls_pattern(const ct_nlsolve *nls) { return &nls->pattern; }

int ct_nls_jacobian(ct_context *ctx, ct_nlsolve *nls, const double *x,
                    const double *p, double *vals) {
  nls->jac_evals++;
  CT_CHECK(ctx, eval(ctx, nls, &nls->jac, "Jacobian", x, p, NULL, nls->jac_vals, NULL));
  CT_CHECK(ctx, check_finite(ctx, "Jacobian", nls->jac_vals, nls->jac_pattern->nnz));
  double sign = nls->fixed_point ? -1.0 : 1.0;
  memset(vals, 0, nls->pattern.nnz * sizeof(double));
  for (size_t k = 0; k < nls->jac_pattern->nnz; k++)
    vals[nls->jac_pos[k]] = sign * nls->jac_vals[k];
  if (nls->fixed_point)
    for (size_t j = 0; j < nls->n; j++) vals[nls->diag_pos[j]] += 1.0;
  return CT_OK;
}

int ct_nls_jvp(ct_context *ctx, ct_nlsolve *nls, const double *x, const double *p,
               const double *v, double *Jv) {
  nls->jtimes++;
  CT_CHECK(ctx, eval(ctx, nls, &nls->jvp_x, "Jacobian-vector product", x, p, v, Jv, NULL));
  if (nls->fixed_point)
    for (size_t i = 0; i < nls->n; i++) Jv[i] = v[i] - Jv[i];
  CT_CHECK(ctx, check_finite(ctx, "Jacobian-vector product", Jv, nls->n));
  return CT_OK;
}

int ct_nls_vjp(ct_context *ctx, ct_nlsolve *nls, const double *x, const double *p,
               const double *w, double *x_bar, double *p_bar) {
  double *xb = x_bar ? x_bar : nls->tmp;
  double *pb = nls->np ? p_bar : NULL;
  CT_CHECK(ctx, eval(ctx, nls, &nls->vjp, "vector-Jacobian product", x, p, w, xb, pb));
  if (nls->fixed_point) {
    for (size_t i = 0; i < nls->n; i++) xb[i] = w[i] - xb[i];
    for (size_t j = 0; pb && j < nls->np; j++) pb[j] = -pb[j];
  }
  CT_CHECK(ctx, check_finite(ctx, "vector-Jacobian product", xb, nls->n));
  if (pb) CT_CHECK(ctx, check_finite(ctx, "vector-Jacobian product (p)", pb, nls->np));
  return CT_OK;
}

/* F_p dp (n) at (x, p) for one direction dp (np); zero when np = 0. For
 * the tangents of cotangent/implicit.h. */
int ct_nls_jvp_p(ct_context *ctx, ct_nlsolve *nls, const double *x, const double *p,
                 const double *dp, double *Fp_dp) {
  if (!nls->np) {
    memset(Fp_dp, 0, nls->n * sizeof(double));
    return CT_OK;
  }
  CT_CHECK(ctx, eval(ctx, nls, &nls->jvp_p, "parameter Jacobian-vector product", x, p,
                     dp, Fp_dp, NULL));
  if (nls->fixed_point)
    for (size_t i = 0; i < nls->n; i++) Fp_dp[i] = -Fp_dp[i];
  CT_CHECK(ctx, check_finite(ctx, "parameter Jacobian-vector product", Fp_dp, nls->n));
  return CT_OK;
}

int ct_nls_linsolve(ct_context *ctx, ct_nlsolve *nls, const char *name,
                    ct_linsolve **ls) {
  *ls = NULL;
  if (nls->ls && !strcmp(ct_linsolve_name(nls->ls), name)) {
    *ls = nls->ls;
    return CT_OK;
  }
  ct_linsolve_free(ctx, nls->ls);
  nls->ls = NULL;
  nls->factored = nls->factored_stale = nls->rcond_known = 0;
  ct_linsolve *made = NULL;
  CT_CHECK(ctx, ct_linsolve_create(ctx, name, &nls->pattern, &made));
  const char *popts = nls->cur_petsc_options;
  if (!strcmp(name, "petsc") && popts && *popts) {
    int rc = ct_linsolve_set_options(ctx, made, popts);
    if (rc < 0) {
      ct_linsolve_free(ctx, made);
      return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
    }
  }
  *ls = nls->ls = made;
  return CT_OK;
}

void ct_nls_mark_factored(ct_nlsolve *nls) {
  nls->factored = 1;
  nls->factored_stale = nls->rcond_known = 0;
}

void ct_nls_mark_factored_stale(ct_nlsolve *nls) {
  nls->factored_stale = 1;
  nls->factored = nls->rcond_known = 0;
}

void ct_nls_mark_unfactored(ct_nlsolve *nls) {
  nls->factored = nls->factored_stale = nls->rcond_known = 0;
}

int ct_nls_is_factored(const ct_nlsolve *nls) { return nls->factored && nls->ls; }

int ct_nls_is_factored_stale(const ct_nlsolve *nls) {
  return nls->factored_stale && nls->ls;
}

int ct_nls_rcond_cached(const ct_nlsolve *nls, double *rcond) {
  if (nls->rcond_known) *rcond = nls->rcond;
  return nls->rcond_known;
}

void ct_nls_rcond_remember(ct_nlsolve *nls, double rcond) {
  nls->rcond = rcond;
  nls->rcond_known = 1;
}

int ct_nls_solution(ct_context *ctx, ct_nlsolve *nls, const double **x,
                    const double **p, const ct_nlsolve_options **o) {
  if (!nls->solved)
    return CT_ERROR(ctx, CT_ERR_STATE, "nonlinear problem: no successful "
                    "ct_nlsolve_solve yet (the implicit derivatives start from one)");
  *x = nls->sol_x;
  *p = nls->np ? nls->sol_p : NULL;
  *o = &nls->sol_opts;
  nls->cur_petsc_options = nls->sol_petsc_options;
  return CT_OK;
}

/* ---- Solving ----------------------------------------------------------------- */

ct_nlsolve_options ct_nlsolve_default_options(void) {
  ct_nlsolve_options o;
  memset(&o, 0, sizeof o);
  o.solver = "kinsol";
  o.linear_solver = "auto";
  o.ftol = 1e-10;
  o.steptol = 1e-13;
  o.max_iters = 200;
  o.max_setup = 1;
  o.anderson_m = 5;
  o.damping = 1.0;
  o.min_rcond = 1e-14;
  return o;
}

/* The back ends by name. */
static const ct_nlsolve_backend *find_backend(const char *name) {
  const ct_nlsolve_backend *all[] = {&ct_nlsolve_kinsol, &ct_nlsolve_snes};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    if (!strcmp(all[i]->name, name)) return all[i];
  return NULL;
}

/* 1 when `name` is a linear solver a nonlinear solve accepts. */
static int known_linear_solver(const char *name) {
  if (!strcmp(name, "gmres")) return 1;
  return ct_linsolve_find(name) != NULL;
}

/* The caller's options (NULL: defaults) completed: defaults for NULL
 * strings, "auto" resolved; CT_ERR_ARG naming a bad value. */
static int complete_options(ct_context *ctx, const ct_nlsolve *nls,
                            const ct_nlsolve_options *in, ct_nlsolve_options *o) {
  *o = in ? *in : ct_nlsolve_default_options();
  if (!o->solver) o->solver = "kinsol";
  if (!find_backend(o->solver))
    return CT_ERROR(ctx, CT_ERR_ARG, "nonlinear solve: unknown solver '%s' (kinsol, snes)",
                    o->solver);
  if (!o->strategy) o->strategy = nls->fixed_point ? "fixed_point" : "linesearch";
  if (!o->linear_solver || !strcmp(o->linear_solver, "auto"))
    o->linear_solver = nls->n <= 100 ? "dense" : "klu";
  if (!known_linear_solver(o->linear_solver) || strlen(o->linear_solver) >= 32)
    return CT_ERROR(ctx, CT_ERR_ARG, "nonlinear solve: unknown linear solver '%s' "
                    "(auto, gmres, or a ct_linsolve name: dense, klu, umfpack, cholmod, "
                    "petsc)", o->linear_solver);
  if (!(o->ftol > 0) || !isfinite(o->ftol) || !(o->steptol >= 0) || !isfinite(o->steptol))
    return CT_ERROR(ctx, CT_ERR_ARG, "nonlinear solve: ftol (%g) must be positive and "
                    "steptol (%g) non-negative, both finite", o->ftol, o->steptol);
  if (o->max_iters <= 0 || o->max_setup <= 0 || o->anderson_m < 0)
    return CT_ERROR(ctx, CT_ERR_ARG, "nonlinear solve: max_iters (%ld) and max_setup "
                    "(%ld) must be positive, anderson_m (%d) non-negative",
                    o->max_iters, o->max_setup, o->anderson_m);
  if (!(o->damping > 0 && o->damping <= 1))
    return CT_ERROR(ctx, CT_ERR_ARG, "nonlinear solve: damping %g is not in (0, 1]",
                    o->damping);
  if (!(o->min_rcond >= 0))
    return CT_ERROR(ctx, CT_ERR_ARG, "nonlinear solve: min_rcond %g is negative",
                    o->min_rcond);
  return CT_OK;
}

/* Keeps x, p and the options of a successful solve for the derivatives. */
static int record_solution(ct_context *ctx, ct_nlsolve *nls, const ct_nlsolve_options *o,
                           const double *p, const double *x) {
  char *popts = NULL;
  if (o->petsc_options && !(popts = ct_strdup(ctx, o->petsc_options)))
    return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  ct_free(ctx, nls->sol_petsc_options);
  nls->sol_petsc_options = popts;
  memcpy(nls->sol_x, x, nls->n * sizeof(double));
  if (nls->np) memcpy(nls->sol_p, p, nls->np * sizeof(double));
  nls->sol_opts = *o;
  snprintf(nls->sol_linear_solver, sizeof nls->sol_linear_solver, "%s", o->linear_solver);
  nls->sol_opts.linear_solver = nls->sol_linear_solver;
  nls->sol_opts.petsc_options = popts;
  nls->sol_opts.solver = find_backend(o->solver)->name;
  nls->sol_opts.strategy = NULL;
  nls->solved = 1;
  return CT_OK;
}

/* Checks the arguments of a solve: x finite, p present when np > 0. */
static int check_solve_args(ct_context *ctx, const ct_nlsolve *nls, const double *p,
                            const double *x) {
  if (!nls || !x)
    return CT_ERROR(ctx, CT_ERR_ARG, "ct_nlsolve_solve: the problem or x is NULL");
  if (nls->np && !p)
    return CT_ERROR(ctx, CT_ERR_ARG, "ct_nlsolve_solve: p is NULL but the problem has "
                    "%zu parameters", nls->np);
  for (size_t i = 0; i < nls->n; i++)
    if (!isfinite(x[i]))
      return CT_ERROR(ctx, CT_ERR_ARG, "ct_nlsolve_solve: the initial guess x[%zu] is "
                      "not finite", i);
  return CT_OK;
}

/* 1 when the initial guess already meets the tolerance (max |F| <= ftol,
 * into *fnorm): KINSOL demands 0.01 ftol of an initial guess and would
 * then fail its line search on a solution it was handed (a re-solve at
 * unchanged parameters), so the solve returns it with no iteration. A
 * failing evaluation returns 0 with its status in *rc. */
static int guess_is_solution(ct_context *ctx, ct_nlsolve *nls, const double *p,
                             const double *x, double ftol, double *fnorm, int *rc) {
  *rc = ct_nls_residual(ctx, nls, x, p, nls->tmp);
  if (*rc < 0) return 0;
  double m = 0.0;
  for (size_t i = 0; i < nls->n; i++) m = fmax(m, fabs(nls->tmp[i]));
  *fnorm = m;
  return m <= ftol;
}

int ct_nlsolve_solve(ct_context *ctx, ct_nlsolve *nls, const ct_nlsolve_options *opts,
                     const double *p, double *x, ct_nlsolve_stats *stats) {
  ct_nlsolve_stats local;
  ct_nlsolve_stats *st = stats ? stats : &local;
  memset(st, 0, sizeof *st);
  CT_CHECK(ctx, check_solve_args(ctx, nls, p, x));
  ct_nlsolve_options o;
  CT_CHECK(ctx, complete_options(ctx, nls, opts, &o));
  nls->solved = 0;
  nls->factored = nls->factored_stale = nls->rcond_known = 0;
  nls->f_evals = nls->jac_evals = nls->jtimes = 0;
  nls->cur_petsc_options = o.petsc_options;
  int rc = CT_OK;
  if (!guess_is_solution(ctx, nls, p, x, o.ftol, &st->fnorm, &rc)) {
    if (rc == CT_ERR_NUMERIC) { /* the back end reports it, with its context */
      ct_error_clear(ctx);
      rc = CT_OK;
    }
    if (rc == CT_OK) rc = find_backend(o.solver)->solve(ctx, nls, &o, p, x, st);
  }
  nls->cur_petsc_options = NULL;
  st->f_evals = nls->f_evals;
  st->jac_evals = nls->jac_evals;
  st->jtimes = nls->jtimes;
  if (rc < 0) {
    nls->factored = nls->factored_stale = 0;
    return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  }
  CT_CHECK(ctx, record_solution(ctx, nls, &o, p, x));
  return CT_OK;
}

int ct_nlsolve_residual(ct_context *ctx, ct_nlsolve *nls, const double *x,
                        const double *p, double *F) {
  if (!nls || !x || !F)
    return CT_ERROR(ctx, CT_ERR_ARG, "ct_nlsolve_residual: the problem, x or F is NULL");
  if (nls->np && !p)
    return CT_ERROR(ctx, CT_ERR_ARG, "ct_nlsolve_residual: p is NULL but the problem has "
                    "%zu parameters", nls->np);
  CT_CHECK(ctx, ct_nls_residual(ctx, nls, x, p, F));
  return CT_OK;
}
