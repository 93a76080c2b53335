/* ODE models from AD functions and their integration with CVODES: the
 * right-hand side, its Jacobian (dense, banded or sparse, from the colored
 * AD Jacobian) or its Jacobian-vector products (GMRES), roots, statistics,
 * and failures reported with the time reached. Models may instead come from
 * user C callbacks (ct_ode_new_callbacks), with CVODES' difference quotients
 * where a derivative callback is missing and the user allowed them. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cvodes/cvodes.h>
#include <nvector/nvector_serial.h>
#include <sundials/sundials_context.h>
#include <sunlinsol/sunlinsol_band.h>
#include <sunlinsol/sunlinsol_dense.h>
#include <sunlinsol/sunlinsol_klu.h>
#include <sunlinsol/sunlinsol_spgmr.h>
#include <sunmatrix/sunmatrix_band.h>
#include <sunmatrix/sunmatrix_dense.h>
#include <sunmatrix/sunmatrix_sparse.h>
#include <sunnonlinsol/sunnonlinsol_fixedpoint.h>

#include "model_io.h"
#include "cotangent/ode.h"
#include "ode_internal.h"

/* ---- Building a model -------------------------------------------------------- */

static int bind(ct_context *ctx, ct_fun *f, ct_bound_fun *b) {
  b->f = f;
  b->t = ct_fun_in_index(f, "t");
  b->y = ct_fun_in_index(f, "y");
  b->p = ct_fun_in_index(f, "p");
  b->dy = ct_fun_in_index(f, "d_y");
  for (size_t i = 0; i < ct_fun_n_in(f); i++) {
    const char *name = ct_fun_in_name(f, i);
    if (strcmp(name, "t") && strcmp(name, "y") && strcmp(name, "p") &&
        strcmp(name, "d_y"))
      return CT_ERROR(ctx, CT_ERR_ARG,
                      "model function input '%s' is not one of t, y, p", name);
  }
  return CT_OK;
}

/* A private copy of f with only output `out` (which must exist). */
static int own_output(ct_context *ctx, const ct_fun *f, const char *what,
                      const char *out, ct_fun **copy) {
  if (ct_fun_out_index(f, out) < 0)
    return CT_ERROR(ctx, CT_ERR_ARG, "the %s function has no output '%s'", what, out);
  const char *names[] = {out, NULL};
  return ct_fun_select_outputs(ctx, f, names, copy);
}

static void band_widths(const ct_sparsity *s, long *mu, long *ml) {
  *mu = *ml = 0;
  for (size_t j = 0; j < s->ncols; j++)
    for (size_t q = s->colptr[j]; q < s->colptr[j + 1]; q++) {
      long d = (long)j - (long)s->rowind[q];
      if (d > *mu) *mu = d;
      if (-d > *ml) *ml = -d;
    }
}

static size_t max_work(const ct_ode *m) {
  const ct_bound_fun *all[] = {&m->rhs, &m->jac, &m->jvp, &m->y0, &m->roots, &m->rhs_e};
  size_t w = 1;
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    if (all[i]->f && ct_fun_work_size(all[i]->f) > w) w = ct_fun_work_size(all[i]->f);
  return w;
}

static int ode_fill(ct_context *ctx, ct_ode *m, const ct_fun *rhs,
                    const ct_fun *y0, const ct_fun *roots) {
  if (ct_fun_out_index(rhs, "f") < 0 &&
      (ct_fun_out_index(rhs, "fe") >= 0 || ct_fun_out_index(rhs, "fi") >= 0))
    CT_CHECK(ctx, ct_ode_split_fill(ctx, m, rhs)); /* IMEX: fe, fi (arkode.c) */
  else
    CT_CHECK(ctx, own_output(ctx, rhs, "right-hand side", "f", &m->rhs.f));
  CT_CHECK(ctx, bind(ctx, m->rhs.f, &m->rhs));
  if (m->rhs.y < 0)
    return CT_ERROR(ctx, CT_ERR_ARG, "the right-hand side function has no input 'y'");
  m->n = ct_fun_in_size(m->rhs.f, (size_t)m->rhs.y);
  m->np = m->rhs.p < 0 ? 0 : ct_fun_in_size(m->rhs.f, (size_t)m->rhs.p);
  if (ct_fun_out_size(m->rhs.f, 0) != m->n)
    return CT_ERROR(ctx, CT_ERR_ARG, "output 'f' has %zu components but 'y' has %zu",
                    ct_fun_out_size(m->rhs.f, 0), m->n);
  CT_CHECK(ctx, ct_model_check_input(ctx, m->rhs.f, "right-hand side", "t", 1, 0));
  if (y0) {
    CT_CHECK(ctx, own_output(ctx, y0, "initial value", "y0", &m->y0.f));
    CT_CHECK(ctx, bind(ctx, m->y0.f, &m->y0));
    CT_CHECK(ctx, ct_model_check_input(ctx, m->y0.f, "initial value", "p", m->np, 0));
    if (ct_fun_out_size(m->y0.f, 0) != m->n)
      return CT_ERROR(ctx, CT_ERR_ARG, "output 'y0' has %zu components, expected %zu",
                      ct_fun_out_size(m->y0.f, 0), m->n);
  }
  if (roots) {
    CT_CHECK(ctx, own_output(ctx, roots, "root", "g", &m->roots.f));
    CT_CHECK(ctx, bind(ctx, m->roots.f, &m->roots));
    CT_CHECK(ctx, ct_model_check_input(ctx, m->roots.f, "root", "y", m->n, 0));
    CT_CHECK(ctx, ct_model_check_input(ctx, m->roots.f, "root", "p", m->np, 0));
    m->nroots = ct_fun_out_size(m->roots.f, 0);
  }
  const char *wrt_y[] = {"y", NULL};
  CT_CHECK(ctx, ct_fun_sparse_jac(ctx, m->rhs.f, wrt_y, &m->jac.f, &m->pattern));
  CT_CHECK(ctx, bind(ctx, m->jac.f, &m->jac));
  ct_fun *jvp_full = NULL;
  CT_CHECK(ctx, ct_fun_jvp(ctx, m->rhs.f, 1, wrt_y, &jvp_full));
  int rc = own_output(ctx, jvp_full, "jvp", m->rhs_e.f ? "d_fi" : "d_f", &m->jvp.f);
  ct_fun_free(jvp_full);
  CT_CHECK(ctx, rc);
  CT_CHECK(ctx, bind(ctx, m->jvp.f, &m->jvp));
  band_widths(m->pattern, &m->mu, &m->ml);
  m->work = max_work(m);
  return CT_OK;
}

int ct_ode_new(ct_context *ctx, const ct_fun *rhs, const ct_fun *y0,
               const ct_fun *roots, ct_ode **out) {
  *out = NULL;
  if (!rhs) return CT_ERROR(ctx, CT_ERR_ARG, "an ODE model needs a right-hand side");
  ct_ode *m = ct_calloc(ctx, 1, sizeof *m);
  if (!m) return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  m->ctx = ctx;
  int rc = ode_fill(ctx, m, rhs, y0, roots);
  if (rc < 0) {
    ct_ode_free(m);
    return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  }
  *out = m;
  return CT_OK;
}

/* ---- Compiled models ---------------------------------------------------------- */

/* Compiles f when the model is compiled (see ode_internal.h). */
int ct_model_jit_fun(ct_context *ctx, const ct_model_jit *j, ct_fun *f) {
  if (!j->on || !f) return CT_OK;
  return ct_fun_jit(ctx, f, &j->opts);
}

/* Copies opts into *j (strings included) without turning it on. */
static int jit_copy_options(ct_context *ctx, ct_model_jit *j, const ct_jit_options *opts) {
  ct_jit_options none = {0};
  const ct_jit_options *o = opts ? opts : &none;
  if (o->cc && !(j->cc = ct_strdup(ctx, o->cc))) return CT_ERR_NOMEM;
  if (o->cflags && !(j->cflags = ct_strdup(ctx, o->cflags))) return CT_ERR_NOMEM;
  j->opts.cc = j->cc;
  j->opts.cflags = j->cflags;
  j->opts.max_chunk = o->max_chunk;
  j->opts.max_ops = o->max_ops;
  return CT_OK;
}

/* Compiles the model functions fs and records the options (see
 * ode_internal.h); stops at the first one the compiler failed on (those
 * above the size limit stay interpreted, the rest are compiled). */
int ct_model_jit_all(ct_context *ctx, ct_model_jit *j, const ct_jit_options *opts,
                     ct_fun *const *fs, size_t n) {
  if (j->on) return CT_OK;
  ct_model_jit_clear(ctx, j);
  int rc = jit_copy_options(ctx, j, opts), compiled = 1;
  for (size_t i = 0; rc == CT_OK && compiled && i < n; i++) {
    if (!fs[i]) continue;
    rc = ct_fun_jit(ctx, fs[i], &j->opts);
    size_t limit = j->opts.max_ops ? j->opts.max_ops : CT_JIT_MAX_OPS_DEFAULT;
    compiled = ct_fun_backend(fs[i]) == CT_BACKEND_JIT || ct_fun_n_nodes(fs[i]) > limit;
  }
  if (rc < 0) ct_model_jit_clear(ctx, j);
  else j->on = compiled;
  return rc;
}

/* Frees the option copies (see ode_internal.h). */
void ct_model_jit_clear(ct_context *ctx, ct_model_jit *j) {
  ct_free(ctx, j->cc);
  ct_free(ctx, j->cflags);
  memset(j, 0, sizeof *j);
}

/* Compiles an AD model's functions and resizes its workspace (see ode.h). */
int ct_ode_jit(ct_context *ctx, ct_ode *ode, const ct_jit_options *opts) {
  if (!ode) return CT_ERROR(ctx, CT_ERR_ARG, "ct_ode_jit needs a model (ode is NULL)");
  if (ode->has_cb) return CT_OK; /* user callbacks: already machine code */
  ct_fun *const fs[] = {ode->rhs.f, ode->rhs_e.f, ode->jac.f, ode->jvp.f, ode->y0.f,
                        ode->roots.f};
  int rc = ct_model_jit_all(ctx, &ode->jit, opts, fs, sizeof fs / sizeof fs[0]);
  ode->work = max_work(ode);
  if (rc < 0) return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  return CT_OK;
}

/* ---- Models from callbacks --------------------------------------------------- */

/* A private copy of the user's n x n CSC pattern, checked: sizes, column
 * pointers from 0 to nnz without decreasing, rows increasing and < n. */
static int copy_pattern(ct_context *ctx, const ct_sparsity *s, size_t n,
                        ct_sparsity *to) {
  if (!s->colptr || (s->nnz && !s->rowind))
    return CT_ERROR(ctx, CT_ERR_ARG, "jac_pattern has no colptr or rowind");
  if (s->nrows != n || s->ncols != n)
    return CT_ERROR(ctx, CT_ERR_ARG, "jac_pattern is %zu x %zu, expected %zu x %zu",
                    s->nrows, s->ncols, n, n);
  if (s->colptr[0] != 0 || s->colptr[n] != s->nnz)
    return CT_ERROR(ctx, CT_ERR_ARG, "jac_pattern's colptr must run from 0 to nnz = %zu",
                    s->nnz);
  for (size_t j = 0; j < n; j++) {
    if (s->colptr[j + 1] < s->colptr[j])
      return CT_ERROR(ctx, CT_ERR_ARG, "jac_pattern's colptr decreases at column %zu", j);
    for (size_t q = s->colptr[j]; q < s->colptr[j + 1]; q++)
      if (s->rowind[q] >= n || (q > s->colptr[j] && s->rowind[q] <= s->rowind[q - 1]))
        return CT_ERROR(ctx, CT_ERR_ARG, "jac_pattern's rows in column %zu must "
                        "increase and be below %zu", j, n);
  }
  to->nnz = s->nnz;
  to->colptr = ct_alloc(ctx, (n + 1) * sizeof *to->colptr);
  to->rowind = ct_alloc(ctx, (s->nnz ? s->nnz : 1) * sizeof *to->rowind);
  if (!to->colptr || !to->rowind) return CT_ERR_NOMEM;
  memcpy(to->colptr, s->colptr, (n + 1) * sizeof *to->colptr);
  if (s->nnz) memcpy(to->rowind, s->rowind, s->nnz * sizeof *to->rowind);
  return CT_OK;
}

/* The full n x n pattern (column-major order, as jac_dense writes it). */
static int dense_pattern(ct_context *ctx, size_t n, ct_sparsity *to) {
  to->nnz = n * n;
  to->colptr = ct_alloc(ctx, (n + 1) * sizeof *to->colptr);
  to->rowind = ct_alloc(ctx, to->nnz * sizeof *to->rowind);
  if (!to->colptr || !to->rowind) return CT_ERR_NOMEM;
  for (size_t j = 0; j <= n; j++) to->colptr[j] = j * n;
  for (size_t q = 0; q < to->nnz; q++) to->rowind[q] = q % n;
  return CT_OK;
}

/* Fills a zeroed model from checked callbacks: the copy, and the pattern
 * (the user's, the full one for jac_dense, or none — nnz n*n without index
 * arrays — when there is no Jacobian callback). */
static int callbacks_fill(ct_context *ctx, ct_ode *m, const ct_ode_callbacks *cb) {
  size_t n = cb->n;
  m->has_cb = 1;
  m->cb = *cb;
  m->n = n;
  m->np = cb->np;
  m->nroots = cb->roots ? cb->n_roots : 0;
  m->pattern = ct_calloc(ctx, 1, sizeof *m->pattern);
  if (!m->pattern) return CT_ERR_NOMEM;
  m->pattern->nrows = m->pattern->ncols = n;
  if (cb->jac_sparse) {
    CT_CHECK(ctx, copy_pattern(ctx, cb->jac_pattern, n, m->pattern));
    band_widths(m->pattern, &m->mu, &m->ml);
  } else {
    if (cb->jac_dense) CT_CHECK(ctx, dense_pattern(ctx, n, m->pattern));
    m->pattern->nnz = n * n;
    m->mu = m->ml = (long)n - 1;
  }
  m->cb.jac_pattern = m->pattern;
  m->work = 1;
  return CT_OK;
}

/* Checks the callbacks, then builds the model (see ode.h). */
int ct_ode_new_callbacks(ct_context *ctx, const ct_ode_callbacks *cb, ct_ode **out) {
  *out = NULL;
  if (!cb || !cb->f)
    return CT_ERROR(ctx, CT_ERR_ARG, "a callback model needs the right-hand side "
                    "callback f");
  if (cb->n == 0) return CT_ERROR(ctx, CT_ERR_ARG, "a callback model needs n > 0 states");
  if (cb->jac_dense && cb->jac_sparse)
    return CT_ERROR(ctx, CT_ERR_ARG, "give jac_dense or jac_sparse, not both");
  if (cb->jac_sparse && !cb->jac_pattern)
    return CT_ERROR(ctx, CT_ERR_ARG, "jac_sparse needs jac_pattern");
  if (cb->roots && cb->n_roots == 0)
    return CT_ERROR(ctx, CT_ERR_ARG, "the roots callback needs n_roots > 0");
  if (cb->jac_dense && cb->n > (SIZE_MAX / sizeof(double)) / cb->n)
    return CT_ERROR(ctx, CT_ERR_ARG, "jac_dense with n = %zu states is too large: give "
                    "jac_sparse with a pattern, or jvp for GMRES", cb->n);
  if (cb->n > (size_t)INT32_MAX)
    return CT_ERROR(ctx, CT_ERR_ARG, "n = %zu states is too many", cb->n);
  ct_ode *m = ct_calloc(ctx, 1, sizeof *m);
  if (!m) return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  m->ctx = ctx;
  int rc = callbacks_fill(ctx, m, cb);
  if (rc < 0) {
    ct_ode_free(m);
    return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  }
  *out = m;
  return CT_OK;
}

/* CT_ERR_ARG for a callback model (see ode_internal.h). */
int ct_ode_require_ad(ct_context *ctx, const ct_ode *m, const char *what,
                      const char *needs) {
  if (!m || !m->has_cb) return CT_OK;
  return CT_ERROR(ctx, CT_ERR_ARG, "%s are not supported for callback models "
                  "(ct_ode_new_callbacks): they need a model of AD functions "
                  "(ct_ode_new); the %s callbacks are not used yet", what, needs);
}

void ct_ode_free(ct_ode *m) {
  if (!m) return;
  ct_fun_free(m->rhs.f);
  ct_fun_free(m->jac.f);
  ct_fun_free(m->jvp.f);
  ct_fun_free(m->y0.f);
  ct_fun_free(m->roots.f);
  ct_fun_free(m->rhs_e.f);
  ct_model_jit_clear(m->ctx, &m->jit);
  ct_sparsity_free(m->ctx, m->pattern);
  ct_free(m->ctx, m);
}

size_t ct_ode_n_states(const ct_ode *m) { return m->n; }
size_t ct_ode_n_params(const ct_ode *m) { return m->np; }
size_t ct_ode_n_roots(const ct_ode *m) { return m->nroots; }
size_t ct_ode_jac_nnz(const ct_ode *m) { return m->pattern->nnz; }

/* ---- Options ------------------------------------------------------------------ */

static const char *const linsol_names[] = {"auto", "dense", "band", "klu", "gmres"};

const char *ct_ode_linsol_name(ct_ode_linsol ls) {
  return (unsigned)ls < sizeof linsol_names / sizeof *linsol_names
             ? linsol_names[ls] : "unknown";
}

int ct_ode_linsol_from_name(ct_context *ctx, const char *name, ct_ode_linsol *ls) {
  for (size_t i = 0; name && i < sizeof linsol_names / sizeof *linsol_names; i++)
    if (strcmp(name, linsol_names[i]) == 0) {
      *ls = (ct_ode_linsol)i;
      return CT_OK;
    }
  return CT_ERROR(ctx, CT_ERR_ARG,
                  "unknown linear solver '%s' (expected auto, dense, band, klu or gmres)",
                  name ? name : "(null)");
}

ct_ode_options ct_ode_default_options(void) {
  ct_ode_options o = {CT_ODE_BDF, CT_LINSOL_AUTO, 1e-6, 1e-8, NULL, 0, 0, 1, 0, NULL, NULL};
  return o;
}

/* The linear solver `auto` means for this model: dense when small or
 * dense-ish, banded when the band is narrow, else KLU. */
static ct_ode_linsol pick_linsol(const ct_ode *m) {
  size_t n = m->n, nnz = m->pattern->nnz;
  if (n <= 50 || (double)nnz > 0.2 * (double)n * (double)n) return CT_LINSOL_DENSE;
  if ((size_t)(m->mu + m->ml + 1) * 4 <= n && m->mu + m->ml + 1 <= 64)
    return CT_LINSOL_BAND;
  return CT_LINSOL_KLU;
}

static int check_options(ct_context *ctx, const ct_ode *m, const ct_ode_options *o,
                         const double *tout, size_t n_tout) {
  CT_CHECK(ctx, ct_model_check_tolerances(ctx, o->rtol, o->atol, o->atol_v, m->n));
  if ((unsigned)o->linsol > CT_LINSOL_GMRES)
    return CT_ERROR(ctx, CT_ERR_ARG, "unknown linear solver %d", (int)o->linsol);
  if ((unsigned)o->method > CT_ODE_IMEX)
    return CT_ERROR(ctx, CT_ERR_ARG, "unknown method %d", (int)o->method);
  return ct_model_check_times(ctx, "ct_ode_solve", tout, n_tout);
}

/* For a callback model: CT_ERR_ARG for an ARKODE method, or when the
 * linear solver needs a derivative callback the model lacks and difference
 * quotients are not allowed; a warning when they will be used. */
static int check_callbacks(ct_context *ctx, const ct_ode *m, const ct_ode_options *o) {
  if (!m->has_cb || o->method == CT_ODE_ADAMS) return CT_OK;
  if (o->method != CT_ODE_BDF)
    return CT_ERROR(ctx, CT_ERR_ARG, "ARKODE methods (ERK, DIRK, IMEX) are not "
                    "supported for callback models: use BDF or Adams");
  const ct_ode_callbacks *cb = &m->cb;
  ct_ode_linsol ls = o->linsol == CT_LINSOL_AUTO ? pick_linsol(m) : o->linsol;
  int gmres = ls == CT_LINSOL_GMRES;
  if (gmres ? cb->jvp != NULL : (cb->jac_dense || cb->jac_sparse)) return CT_OK;
  if (ls == CT_LINSOL_KLU)
    return CT_ERROR(ctx, CT_ERR_ARG, "the klu linear solver needs a Jacobian callback "
                    "(jac_dense or jac_sparse), which the model lacks: CVODES has no "
                    "difference quotients for sparse matrices");
  if (!cb->allow_difference_quotients)
    return CT_ERROR(ctx, CT_ERR_ARG, "the %s linear solver needs the %s callback, which "
                    "the model lacks (set allow_difference_quotients in "
                    "ct_ode_callbacks to use difference quotients instead)",
                    ct_ode_linsol_name(ls), gmres ? "jvp" : "jac_dense or jac_sparse");
  ct_context_log(ctx, CT_LOG_WARNING, gmres ? "no JVP callback: using difference quotients"
                                            : "no Jacobian callback: using difference quotients");
  return CT_OK;
}

/* ---- Callbacks ------------------------------------------------------------------- */

/* What model function b is, for messages. */
static const char *bound_name(const ct_ode *m, const ct_bound_fun *b) {
  return b == &m->rhs ? "right-hand side" : b == &m->rhs_e ? "explicit right-hand side"
         : b == &m->jac ? "Jacobian" : b == &m->jvp ? "Jacobian-vector product"
         : b == &m->roots ? "root function" : "initial-value function";
}

/* Records in r->cause that `what` met a flipped guard at t: its traced
 * branch no longer holds, so its values would be wrong. */
void ct_ode_retrace_cause(ct_ode_run *r, const char *what, double t) {
  snprintf(r->cause, sizeof r->cause, "the %s took a different branch than when it "
           "was traced at t = %.6g (a guard flipped); re-trace the model at this "
           "state or make the branch smooth (ct_select)", what, t);
}

/* Evaluates b at (t, y, p[, v]) writing `out`: CT_OK, a negative status,
 * or CT_ERR_SOLVER with r->cause set when a guard flipped (CT_RETRACE). */
static int eval_at(ct_ode_run *r, const ct_bound_fun *b, double t, const double *y,
                   const double *v, double *out) {
  const double *in[4] = {0};
  r->t_buf = t;
  if (b->t >= 0) in[b->t] = &r->t_buf;
  if (b->y >= 0) in[b->y] = y;
  if (b->p >= 0) in[b->p] = r->p;
  if (b->dy >= 0) in[b->dy] = v;
  double *outs[1] = {out};
  int rc = ct_fun_eval(r->ctx, b->f, in, outs, r->work);
  if (rc != CT_RETRACE) return rc;
  ct_ode_retrace_cause(r, bound_name(r->m, b), t);
  return CT_ERR_SOLVER;
}

/* 0 when all of v is finite; else records which component and returns 1
 * (see ode_internal.h). */
int ct_ode_check_finite(ct_ode_run *r, const char *what, const double *v, size_t n,
                        double t) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(v[i])) {
      snprintf(r->cause, sizeof r->cause, "the %s is %s in component %zu at t = %.6g",
               what, isnan(v[i]) ? "NaN" : "infinite", i, t);
      return 1;
    }
  return 0;
}

/* A user callback's return value for CVODES: 0 stays 0; otherwise the
 * cause names the callback and the time, and a positive value stays
 * recoverable (1), a negative one does not (-1). */
int ct_ode_user_status(ct_ode_run *r, const char *name, int rc, double t) {
  if (rc == 0) return 0;
  snprintf(r->cause, sizeof r->cause, "the %s callback returned %d at t = %.6g",
           name, rc, t);
  return rc > 0 ? 1 : -1;
}

static int rhs_cb(sunrealtype t, N_Vector y, N_Vector ydot, void *ud) {
  ct_ode_run *r = ud;
  double *f = N_VGetArrayPointer(ydot);
  const ct_ode_callbacks *cb = &r->m->cb;
  if (r->m->has_cb) {
    int rc = ct_ode_user_status(r, "f", cb->f(t, N_VGetArrayPointer(y), r->p, f, cb->user_data), t);
    if (rc) return rc;
  } else if (eval_at(r, &r->m->rhs, t, N_VGetArrayPointer(y), NULL, f) < 0) {
    return -1;
  }
  return ct_ode_check_finite(r, "right-hand side", f, r->m->n, t);
}

static int root_cb(sunrealtype t, N_Vector y, sunrealtype *g, void *ud) {
  ct_ode_run *r = ud;
  const ct_ode_callbacks *cb = &r->m->cb;
  if (r->m->has_cb)
    return ct_ode_user_status(r, "roots", cb->roots(t, N_VGetArrayPointer(y), r->p, g,
                                             cb->user_data), t) ? -1 : 0;
  return eval_at(r, &r->m->roots, t, N_VGetArrayPointer(y), NULL, g) < 0 ? -1 : 0;
}

/* The Jacobian's nonzeros (CSC order of the pattern) into r->jac_vals. */
static int jac_values(ct_ode_run *r, double t, N_Vector y) {
  const ct_ode_callbacks *cb = &r->m->cb;
  if (r->m->has_cb) {
    memset(r->jac_vals, 0, r->m->pattern->nnz * sizeof *r->jac_vals);
    int rc = cb->jac_dense
                 ? ct_ode_user_status(r, "jac_dense", cb->jac_dense(t, N_VGetArrayPointer(y), r->p,
                                                             r->jac_vals, cb->user_data), t)
                 : ct_ode_user_status(r, "jac_sparse", cb->jac_sparse(t, N_VGetArrayPointer(y), r->p,
                                                               r->jac_vals, cb->user_data), t);
    if (rc) return rc;
  } else if (eval_at(r, &r->m->jac, t, N_VGetArrayPointer(y), NULL, r->jac_vals) < 0) {
    return -1;
  }
  return ct_ode_check_finite(r, "Jacobian", r->jac_vals, r->m->pattern->nnz, t);
}

/* The Jacobian's nonzeros (CSC order of the pattern) into SUNDIALS'
 * dense, band or sparse matrix. */
static void scatter_dense(const ct_sparsity *s, const double *v, SUNMatrix J) {
  size_t n = s->nrows;
  double *a = SUNDenseMatrix_Data(J);
  memset(a, 0, n * s->ncols * sizeof *a);
  for (size_t j = 0; j < s->ncols; j++)
    for (size_t q = s->colptr[j]; q < s->colptr[j + 1]; q++)
      a[j * n + s->rowind[q]] = v[q];
}

static void scatter_band(const ct_sparsity *s, const double *v, SUNMatrix J) {
  SUNMatZero(J);
  for (size_t j = 0; j < s->ncols; j++)
    for (size_t q = s->colptr[j]; q < s->colptr[j + 1]; q++)
      SM_ELEMENT_B(J, (sunindextype)s->rowind[q], (sunindextype)j) = v[q];
}

/* SUNDIALS zeroes a sparse matrix, index arrays included, before each
 * Jacobian call, so the pattern is written every time. */
static void scatter_sparse(const ct_sparsity *s, const double *v, SUNMatrix J) {
  sunindextype *colptr = SUNSparseMatrix_IndexPointers(J);
  sunindextype *rowval = SUNSparseMatrix_IndexValues(J);
  double *data = SUNSparseMatrix_Data(J);
  for (size_t j = 0; j <= s->ncols; j++) colptr[j] = (sunindextype)s->colptr[j];
  for (size_t q = 0; q < s->nnz; q++) {
    rowval[q] = (sunindextype)s->rowind[q];
    data[q] = v[q];
  }
}

/* CVODES' Jacobian callback for every matrix linear solver. */
static int jac_cb(sunrealtype t, N_Vector y, N_Vector fy, SUNMatrix J, void *ud,
                  N_Vector t1, N_Vector t2, N_Vector t3) {
  (void)fy, (void)t1, (void)t2, (void)t3;
  ct_ode_run *r = ud;
  int rc = jac_values(r, t, y);
  if (rc) return rc;
  switch (SUNMatGetID(J)) {
    case SUNMATRIX_DENSE: scatter_dense(r->m->pattern, r->jac_vals, J); break;
    case SUNMATRIX_BAND: scatter_band(r->m->pattern, r->jac_vals, J); break;
    case SUNMATRIX_SPARSE: scatter_sparse(r->m->pattern, r->jac_vals, J); break;
    default: return -1;
  }
  return 0;
}

static int jtimes_cb(N_Vector v, N_Vector Jv, sunrealtype t, N_Vector y,
                     N_Vector fy, void *ud, N_Vector tmp) {
  (void)fy, (void)tmp;
  ct_ode_run *r = ud;
  double *out = N_VGetArrayPointer(Jv);
  const ct_ode_callbacks *cb = &r->m->cb;
  if (r->m->has_cb) {
    int rc = ct_ode_user_status(r, "jvp", cb->jvp(t, N_VGetArrayPointer(y), r->p,
                                           N_VGetArrayPointer(v), out, cb->user_data), t);
    if (rc) return rc;
  } else if (eval_at(r, &r->m->jvp, t, N_VGetArrayPointer(y), N_VGetArrayPointer(v),
                     out) < 0) {
    return -1;
  }
  return ct_ode_check_finite(r, "Jacobian-vector product", out, r->m->n, t);
}

/* Keeps SUNDIALS' message for the failure report instead of printing it. */
static void sundials_error(int code, const char *module, const char *function,
                           char *msg, void *ud) {
  ct_ode_run *r = ud;
  snprintf(r->sundials, sizeof r->sundials, "%s %s (%d): %s", module, function,
           code, msg);
}

/* ---- Integration ---------------------------------------------------------------- */

/* Frees the CVODES objects of a solve, those of extensions included; CVODES
 * first, since it refers to the others. */
static void cvode_set_free(ct_cvode_set *c) {
  if (c->cv) CVodeFree(&c->cv);
  if (c->LS) SUNLinSolFree(c->LS);
  if (c->NLS) SUNNonlinSolFree(c->NLS);
  if (c->NLS_sens) SUNNonlinSolFree(c->NLS_sens);
  if (c->yS) N_VDestroyVectorArray(c->yS, c->n_yS);
  if (c->LS_b) SUNLinSolFree(c->LS_b);
  if (c->A_b) SUNMatDestroy(c->A_b);
  for (size_t i = 0; i < sizeof c->ext_v / sizeof c->ext_v[0]; i++)
    if (c->ext_v[i]) N_VDestroy(c->ext_v[i]);
  if (c->A) SUNMatDestroy(c->A);
  if (c->y) N_VDestroy(c->y);
  if (c->atol) N_VDestroy(c->atol);
  if (c->sun) SUNContext_Free(&c->sun);
}

static int attach_linear_solver(ct_ode_run *r, ct_cvode_set *c, ct_ode_linsol ls) {
  ct_context *ctx = r->ctx;
  const ct_ode *m = r->m;
  sunindextype n = (sunindextype)m->n;
  int has_jac = !m->has_cb || m->cb.jac_dense || m->cb.jac_sparse; /* else DQ */
  switch (ls) {
    case CT_LINSOL_DENSE:
      CT_SUN_NEW(ctx, c->A, SUNDenseMatrix(n, n, c->sun));
      CT_SUN_NEW(ctx, c->LS, SUNLinSol_Dense(c->y, c->A, c->sun));
      CT_SUN_CALL(ctx, CVodeSetLinearSolver(c->cv, c->LS, c->A));
      if (has_jac) CT_SUN_CALL(ctx, CVodeSetJacFn(c->cv, jac_cb));
      break;
    case CT_LINSOL_BAND:
      CT_SUN_NEW(ctx, c->A, SUNBandMatrix(n, (sunindextype)m->mu, (sunindextype)m->ml, c->sun));
      CT_SUN_NEW(ctx, c->LS, SUNLinSol_Band(c->y, c->A, c->sun));
      CT_SUN_CALL(ctx, CVodeSetLinearSolver(c->cv, c->LS, c->A));
      if (has_jac) CT_SUN_CALL(ctx, CVodeSetJacFn(c->cv, jac_cb));
      break;
    case CT_LINSOL_KLU:
      CT_SUN_NEW(ctx, c->A, SUNSparseMatrix(n, n, (sunindextype)(m->pattern->nnz ? m->pattern->nnz : 1),
                                         CSC_MAT, c->sun));
      CT_SUN_NEW(ctx, c->LS, SUNLinSol_KLU(c->y, c->A, c->sun));
      CT_SUN_CALL(ctx, CVodeSetLinearSolver(c->cv, c->LS, c->A));
      if (has_jac) CT_SUN_CALL(ctx, CVodeSetJacFn(c->cv, jac_cb));
      break;
    default: /* GMRES, matrix-free, no preconditioner */
      CT_SUN_NEW(ctx, c->LS, SUNLinSol_SPGMR(c->y, SUN_PREC_NONE, 0, c->sun));
      CT_SUN_CALL(ctx, CVodeSetLinearSolver(c->cv, c->LS, NULL));
      if (!m->has_cb || m->cb.jvp) CT_SUN_CALL(ctx, CVodeSetJacTimes(c->cv, NULL, jtimes_cb));
      break;
  }
  return CT_OK;
}

static int cvode_setup(ct_ode_run *r, ct_cvode_set *c, const ct_ode_options *o,
                       double t0, const double *y0, ct_ode_linsol ls) {
  ct_context *ctx = r->ctx;
  const ct_ode *m = r->m;
  CT_SUN_CALL(ctx, SUNContext_Create(NULL, &c->sun));
  CT_SUN_NEW(ctx, c->y, N_VNew_Serial((sunindextype)m->n, c->sun));
  memcpy(N_VGetArrayPointer(c->y), y0, m->n * sizeof *y0);
  CT_SUN_NEW(ctx, c->cv, CVodeCreate(o->method == CT_ODE_ADAMS ? CV_ADAMS : CV_BDF, c->sun));
  CT_SUN_CALL(ctx, CVodeSetErrHandlerFn(c->cv, sundials_error, r));
  CT_SUN_CALL(ctx, CVodeInit(c->cv, rhs_cb, t0, c->y));
  CT_SUN_CALL(ctx, CVodeSetUserData(c->cv, r));
  if (o->atol_v) {
    CT_SUN_NEW(ctx, c->atol, N_VNew_Serial((sunindextype)m->n, c->sun));
    memcpy(N_VGetArrayPointer(c->atol), o->atol_v, m->n * sizeof *o->atol_v);
    CT_SUN_CALL(ctx, CVodeSVtolerances(c->cv, o->rtol, c->atol));
  } else {
    CT_SUN_CALL(ctx, CVodeSStolerances(c->cv, o->rtol, o->atol));
  }
  if (o->max_steps) CT_SUN_CALL(ctx, CVodeSetMaxNumSteps(c->cv, o->max_steps));
  if (o->max_step > 0) CT_SUN_CALL(ctx, CVodeSetMaxStep(c->cv, o->max_step));
  if (m->nroots) CT_SUN_CALL(ctx, CVodeRootInit(c->cv, (int)m->nroots, root_cb));
  if (o->method == CT_ODE_ADAMS) { /* non-stiff: fixed-point iteration */
    CT_SUN_NEW(ctx, c->NLS, SUNNonlinSol_FixedPoint(c->y, 0, c->sun));
    CT_SUN_CALL(ctx, CVodeSetNonlinearSolver(c->cv, c->NLS));
    return CT_OK;
  }
  return attach_linear_solver(r, c, ls);
}

static void collect_stats(void *cv, ct_ode_stats *s) {
  CVodeGetNumSteps(cv, &s->steps);
  CVodeGetNumRhsEvals(cv, &s->rhs_evals);
  CVodeGetNumLinSolvSetups(cv, &s->lin_setups);
  CVodeGetNumErrTestFails(cv, &s->err_test_fails);
  CVodeGetNumNonlinSolvIters(cv, &s->nonlin_iters);
  CVodeGetNumNonlinSolvConvFails(cv, &s->nonlin_conv_fails);
  CVodeGetNumGEvals(cv, &s->root_evals);
  CVodeGetNumJacEvals(cv, &s->jac_evals);
  CVodeGetNumJtimesEvals(cv, &s->jtimes_evals);
  CVodeGetNumLinIters(cv, &s->lin_iters);
  CVodeGetLastStep(cv, &s->last_step);
  CVodeGetLastOrder(cv, &s->last_order);
  CVodeGetActualInitStep(cv, &s->init_step);
  CVodeGetCurrentTime(cv, &s->current_time);
  CVodeGetCurrentStep(cv, &s->current_step);
}

/* The cause of a CVode failure in words. */
static const char *failure_cause(int flag, const ct_ode_options *o) {
  switch (flag) {
    case CV_TOO_MUCH_WORK:
      return o->max_steps ? "too much work: the step limit (max_steps) was reached"
                          : "too much work: 500 steps without reaching the next "
                            "output time (raise max_steps)";
    case CV_TOO_MUCH_ACC: return "too much accuracy requested for machine precision";
    case CV_ERR_FAILURE:
      return "error test failed repeatedly or the step size underflowed";
    case CV_CONV_FAILURE:
      return "the nonlinear iteration failed to converge repeatedly (singular or "
             "ill-conditioned iteration matrix?)";
    case CV_LSETUP_FAIL: return "the linear solver setup failed";
    case CV_LSOLVE_FAIL: return "the linear solve failed";
    case CV_RHSFUNC_FAIL:
    case CV_FIRST_RHSFUNC_ERR:
    case CV_REPTD_RHSFUNC_ERR:
    case CV_UNREC_RHSFUNC_ERR: return "the right-hand side failed";
    case CV_RTFUNC_FAIL: return "the root function failed";
    case CV_SRHSFUNC_FAIL:
    case CV_FIRST_SRHSFUNC_ERR:
    case CV_REPTD_SRHSFUNC_ERR:
    case CV_UNREC_SRHSFUNC_ERR: return "the sensitivity right-hand side failed";
    default: return "the integrator failed";
  }
}

/* A convergence or linear-setup failure in plain words when the linear
 * solver's last flag (CVodeGetLastLinFlag, ARKStepGetLastLinFlag) shows a
 * singular Newton matrix — a zero pivot in the dense or band LU
 * (SUNLS_LUFACT_FAIL), a failed KLU factorization — and no callback failure
 * (`found`) explains it; NULL otherwise. */
const char *ct_ode_singular_cause(int conv_fail, int setup_fail, long lsflag,
                                  const char *found) {
  if (*found) return NULL;
  int singular = lsflag == SUNLS_LUFACT_FAIL || lsflag == SUNLS_PACKAGE_FAIL_REC ||
                 lsflag == SUNLS_PACKAGE_FAIL_UNREC;
  if (conv_fail && singular)
    return "the nonlinear iteration failed to converge repeatedly: the Newton "
           "iteration matrix I - gamma J is singular";
  if (setup_fail && singular)
    return "the linear solver setup failed: the Newton iteration matrix "
           "I - gamma J is singular (it could not be factored)";
  return NULL;
}

/* failure_cause, or the singular-matrix cause when that is what happened. */
static const char *cvode_cause(void *cv, int flag, const ct_ode_options *o,
                               const char *found) {
  long lsflag = 0;
  if (cv) CVodeGetLastLinFlag(cv, &lsflag);
  const char *singular = ct_ode_singular_cause(flag == CV_CONV_FAILURE,
                                               flag == CV_LSETUP_FAIL, lsflag, found);
  return singular ? singular : failure_cause(flag, o);
}

/* Room for `cap` outputs in a zeroed result. */
static int result_init(ct_context *ctx, const ct_ode *m, size_t cap,
                       ct_ode_result *res) {
  res->n = m->n;
  res->t = ct_alloc(ctx, cap * sizeof *res->t);
  res->y = ct_alloc(ctx, cap * (m->n ? m->n : 1) * sizeof *res->y);
  if (!res->t || !res->y) return CT_ERR_NOMEM;
  return CT_OK;
}

static void store_output(ct_ode_result *res, double t, const double *y) {
  res->t[res->n_out] = t;
  memcpy(res->y + res->n_out * res->n, y, res->n * sizeof *y);
  res->n_out++;
}

static int record_root(ct_ode_run *r, ct_cvode_set *c, ct_ode_result *res, double t) {
  ct_ode_root *roots = ct_realloc_array(r->ctx, res->roots, res->n_roots_found + 1,
                                        sizeof *roots);
  if (!roots) return CT_ERR_NOMEM;
  res->roots = roots;
  ct_ode_root *root = &roots[res->n_roots_found];
  root->t = t;
  root->which = ct_calloc(r->ctx, r->m->nroots, sizeof *root->which);
  if (!root->which) return CT_ERR_NOMEM;
  res->n_roots_found++;
  CT_SUN_CALL(r->ctx, CVodeGetRootInfo(c->cv, root->which));
  return CT_OK;
}

/* ---- Dense output ---------------------------------------------------------------- */

typedef struct ct_ode_dense ct_ode_dense;

/* The interpolant of every step of a solve (ct_ode_result.dense): step i
 * ends at t_end[i] and y(t) = sum_k D_k (t - t_end[i])^k / k! on it, its
 * D_0..D_degree[i] (n each) at coef + first[i]. */
struct ct_ode_dense {
  size_t n, n_steps, cap_steps, n_coef, cap_coef;
  double t0;
  double *y0;     /* n: y(t0), for a result without steps */
  double *t_end;  /* n_steps */
  size_t *first;  /* n_steps */
  int *degree;    /* n_steps */
  double *coef;   /* n_coef doubles */
};

/* The stepping state of one solve driven step by step (r->dense): for
 * dense output, a progress callback, or both. */
typedef struct ct_dense_stepper {
  ct_context *ctx;
  const ct_step_ops *ops;
  void *mem;
  ct_ode_dense *d;    /* NULL: steps are not recorded */
  N_Vector tmp;       /* a derivative from ops->dky */
  N_Vector y_root;    /* a root found past an output time, returned later */
  double t_root;
  int pending_root;   /* y_root/t_root hold a root not returned yet */
  int after_root;     /* the last return was a root */
  long max_steps;     /* per output interval (<= 0: none) */
  long taken;         /* steps since the last return */
  long nst;           /* ops->n_steps when last looked */
  int (*progress)(double t, void *ud);
  void *progress_ud;
  double t_final;     /* reported times are capped here */
  char *cause, *sundials; /* where failures are described */
  size_t cause_size, sundials_size;
} ct_dense_stepper;

/* Frees the interpolants (see ode_internal.h). */
void ct_dense_free(ct_context *ctx, ct_ode_dense *d) {
  if (!d) return;
  ct_free(ctx, d->y0);
  ct_free(ctx, d->t_end);
  ct_free(ctx, d->first);
  ct_free(ctx, d->degree);
  ct_free(ctx, d->coef);
  ct_free(ctx, d);
}

/* Room for one more step of `len` coefficients; the arrays grow by half. */
static int dense_reserve(ct_context *ctx, ct_ode_dense *d, size_t len) {
  if (d->n_steps == d->cap_steps) {
    size_t cap = d->cap_steps ? d->cap_steps + d->cap_steps / 2 : 64;
    double *t_end = ct_realloc_array(ctx, d->t_end, cap, sizeof *t_end);
    if (t_end) d->t_end = t_end;
    size_t *first = ct_realloc_array(ctx, d->first, cap, sizeof *first);
    if (first) d->first = first;
    int *degree = ct_realloc_array(ctx, d->degree, cap, sizeof *degree);
    if (degree) d->degree = degree;
    if (!t_end || !first || !degree) return CT_ERR_NOMEM;
    d->cap_steps = cap;
  }
  if (d->n_coef + len > d->cap_coef) {
    size_t cap = d->cap_coef + d->cap_coef / 2 + len;
    double *coef = ct_realloc_array(ctx, d->coef, cap, sizeof *coef);
    if (!coef) return CT_ERR_NOMEM;
    d->coef = coef;
    d->cap_coef = cap;
  }
  return CT_OK;
}

/* 1 when the n values of v are all 0. */
static int all_zero(const double *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (v[i] != 0) return 0;
  return 1;
}

/* Appends the step just taken: its end time and the derivatives of its
 * interpolant there, D_0..D_q from ops->dky (trailing zero derivatives
 * dropped: ARKODE answers 0 past its interpolant's degree). */
static int dense_record_step(ct_dense_stepper *st) {
  ct_ode_dense *d = st->d;
  double tn = st->ops->current_time(st->mem);
  int q = st->ops->degree(st->mem);
  if (q < 0) q = 0;
  CT_CHECK(st->ctx, dense_reserve(st->ctx, d, (size_t)(q + 1) * d->n));
  double *at = d->coef + d->n_coef;
  for (int k = 0; k <= q; k++) {
    if (st->ops->dky(st->mem, tn, k, st->tmp) < 0) { /* past the degree */
      q = k - 1;
      break;
    }
    memcpy(at + (size_t)k * d->n, N_VGetArrayPointer(st->tmp), d->n * sizeof *at);
  }
  while (q > 0 && all_zero(at + (size_t)q * d->n, d->n)) q--; /* past the degree */
  d->t_end[d->n_steps] = tn;
  d->first[d->n_steps] = d->n_coef;
  d->degree[d->n_steps] = q;
  d->n_steps++;
  d->n_coef += (size_t)(q + 1) * d->n;
  return CT_OK;
}

/* A new interpolant store holding y(t0) (n values of y). */
static int dense_new(ct_context *ctx, double t0, N_Vector y, size_t n,
                     ct_ode_dense **out) {
  ct_ode_dense *d = ct_calloc(ctx, 1, sizeof *d);
  if (!d) return CT_ERR_NOMEM;
  *out = d;
  d->n = n;
  d->t0 = t0;
  d->y0 = ct_alloc(ctx, (n ? n : 1) * sizeof *d->y0);
  if (!d->y0) return CT_ERR_NOMEM;
  memcpy(d->y0, N_VGetArrayPointer(y), n * sizeof *d->y0);
  return CT_OK;
}

/* Starts step-by-step driving (see ode_internal.h). */
int ct_stepper_new(ct_context *ctx, const ct_step_setup *s, ct_ode_dense **dense,
                   ct_dense_stepper **out) {
  *out = NULL;
  size_t n = (size_t)N_VGetLength(s->y);
  if (dense) CT_CHECK(ctx, dense_new(ctx, s->ops->current_time(s->mem), s->y, n, dense));
  ct_dense_stepper *st = ct_calloc(ctx, 1, sizeof *st);
  if (!st) return CT_ERR_NOMEM;
  *out = st;
  st->ctx = ctx;
  st->ops = s->ops;
  st->mem = s->mem;
  st->d = dense ? *dense : NULL;
  st->max_steps = s->max_steps ? s->max_steps : 500; /* SUNDIALS' default */
  st->progress = s->progress;
  st->progress_ud = s->progress_ud;
  st->t_final = s->t_final;
  st->cause = s->cause;
  st->cause_size = s->cause_size;
  st->sundials = s->sundials;
  st->sundials_size = s->sundials_size;
  st->tmp = N_VClone(s->y);
  st->y_root = N_VClone(s->y);
  if (!st->tmp || !st->y_root) return CT_ERR_NOMEM;
  return CT_OK;
}

/* Frees the stepping state (see ode_internal.h). */
void ct_stepper_free(ct_dense_stepper *st) {
  if (!st) return;
  if (st->tmp) N_VDestroy(st->tmp);
  if (st->y_root) N_VDestroy(st->y_root);
  ct_free(st->ctx, st);
}

/* Starts the stepping of an ODE solve (see ode_internal.h). */
int ct_ode_dense_start(ct_ode_run *r, ct_ode_result *res, const ct_step_ops *ops,
                       void *mem, const ct_ode_options *o, N_Vector y, double t_final) {
  if (!o->dense_output && !o->progress) return CT_OK;
  ct_step_setup s = {ops, mem, y, o->max_steps, o->progress, o->progress_ud, t_final,
                     r->cause, sizeof r->cause, r->sundials, sizeof r->sundials};
  return ct_stepper_new(r->ctx, &s, o->dense_output ? &res->dense : NULL, &r->dense);
}

/* Ends the solve's stepping (see ode_internal.h). */
void ct_ode_dense_stop(ct_ode_run *r) {
  ct_stepper_free(r->dense);
  r->dense = NULL;
}

/* y(tout) from the current step's interpolant: an output, as the normal
 * mode returns it (ops->output where the integrator has its own). */
static int dense_output_at(ct_dense_stepper *st, double tout, N_Vector y, double *t) {
  int flag = st->ops->output ? st->ops->output(st->mem, tout, y)
                             : st->ops->dky(st->mem, tout, 0, y);
  if (flag < 0) return flag;
  *t = tout;
  st->taken = 0;
  return 0;
}

/* Tells the progress callback the time reached (capped at the final
 * output time); CT_STEP_INTERRUPTED when it asks to stop. */
static int report_progress(ct_dense_stepper *st) {
  if (!st->progress) return 0;
  double tn = st->ops->current_time(st->mem);
  if (st->progress(tn < st->t_final ? tn : st->t_final, st->progress_ud) == 0) return 0;
  snprintf(st->cause, st->cause_size, "interrupted");
  return CT_STEP_INTERRUPTED;
}

/* One step, recorded and reported when the integrator took one (it may
 * return without stepping, after a root). */
static int dense_one_step(ct_dense_stepper *st, double tout, N_Vector y, double *t) {
  int flag = st->ops->one_step(st->mem, tout, y, t);
  st->after_root = 0;
  long nst = st->ops->n_steps(st->mem);
  if (nst > st->nst) {
    st->nst = nst;
    st->taken++;
    if (st->d && dense_record_step(st) < 0) {
      snprintf(st->cause, st->cause_size, "out of memory storing the dense output");
      return -20; /* CV_MEM_FAIL, ARK_MEM_FAIL, IDA_MEM_FAIL */
    }
    if (flag >= 0 && report_progress(st)) return CT_STEP_INTERRUPTED;
  }
  return flag;
}

/* Returns the root kept back for after the outputs before it, or the next
 * output before it. */
static int dense_pending(ct_dense_stepper *st, double tout, N_Vector y, double *t) {
  if (st->t_root > tout) return dense_output_at(st, tout, y, t);
  N_VScale(1.0, st->y_root, y);
  if (st->ops->output) st->ops->output(st->mem, st->t_root, y);
  *t = st->t_root;
  st->pending_root = 0;
  st->after_root = 1;
  st->taken = 0;
  return 2; /* CV_ROOT_RETURN, ARK_ROOT_RETURN, IDA_ROOT_RETURN */
}

/* The normal mode one step at a time (see ode_internal.h). A root found
 * past tout is kept back until tout has been returned, as the normal mode
 * (whose root search stops at tout) would order them. */
int ct_stepper_advance(ct_dense_stepper *st, double tout, N_Vector y, double *t) {
  if (st->pending_root) return dense_pending(st, tout, y, t);
  for (;;) {
    if (!st->after_root && st->nst > 0 && st->ops->current_time(st->mem) >= tout)
      return dense_output_at(st, tout, y, t);
    if (st->max_steps > 0 && st->taken >= st->max_steps) {
      snprintf(st->sundials, st->sundials_size, "%s: at t = %.6g, %ld steps taken "
               "before reaching tout", st->ops->name, st->ops->current_time(st->mem),
               st->max_steps);
      return -1; /* CV_TOO_MUCH_WORK, ARK_TOO_MUCH_WORK, IDA_TOO_MUCH_WORK */
    }
    int flag = dense_one_step(st, tout, y, t);
    if (flag < 0) return flag;
    if (flag == 2 && *t > tout) { /* a root past tout: tout first */
      N_VScale(1.0, y, st->y_root);
      st->t_root = *t;
      st->pending_root = 1;
      return dense_output_at(st, tout, y, t);
    }
    if (flag == 2) {
      st->after_root = 1;
      st->taken = 0;
      return flag;
    }
  }
}

/* CV_NORMAL / ARK_NORMAL one step at a time for an ODE solve. */
int ct_ode_dense_advance(ct_ode_run *r, double tout, N_Vector y, double *t) {
  return ct_stepper_advance(r->dense, tout, y, t);
}

/* The step covering t: the first whose end is >= t. */
static size_t dense_find(const ct_ode_dense *d, double t) {
  size_t lo = 0, hi = d->n_steps - 1;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (d->t_end[mid] >= t) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/* The k-th derivative of step i's polynomial at t, by Horner's rule on
 * sum_{j >= k} D_j dt^(j-k) / (j-k)!. */
static void dense_poly(const ct_ode_dense *d, size_t i, double t, int k, double *y) {
  const double *D = d->coef + d->first[i];
  int q = d->degree[i];
  double dt = t - d->t_end[i];
  for (size_t c = 0; c < d->n; c++) {
    double acc = 0;
    for (int j = q; j >= k; j--) acc = acc * dt / (double)(j - k + 1) + D[(size_t)j * d->n + c];
    y[c] = k > q ? 0.0 : acc;
  }
}

/* y^(k)(t) from stored interpolants (see ode_internal.h). */
int ct_dense_eval(ct_context *ctx, const ct_ode_dense *d, double t_reached, double t,
                  int k, double *y) {
  if (!d)
    return CT_ERROR(ctx, CT_ERR_ARG, "the result has no dense output: solve with "
                    "options.dense_output = 1");
  if (!y) return CT_ERROR(ctx, CT_ERR_ARG, "dense output evaluation needs y");
  if (k < 0) return CT_ERROR(ctx, CT_ERR_ARG, "derivative order k = %d is negative", k);
  /* After an ARKODE failure t_reached is the failing stage's time, past the
   * last step: the interpolants end with the steps. */
  double end = d->n_steps ? fmin(t_reached, d->t_end[d->n_steps - 1]) : d->t0;
  if (!(t >= d->t0 && t <= end))
    return CT_ERROR(ctx, CT_ERR_ARG, "t = %.17g is outside the solved interval [%.17g, "
                    "%.17g]", t, d->t0, end);
  if (d->n_steps == 0) {
    if (k > 0)
      return CT_ERROR(ctx, CT_ERR_ARG, "no step was taken: only y(t0) is known, not "
                      "its derivative");
    memcpy(y, d->y0, d->n * sizeof *y);
    return CT_OK;
  }
  dense_poly(d, dense_find(d, t), t, k, y);
  return CT_OK;
}

/* y^(k)(t) from the stored interpolants (see ode.h). */
int ct_ode_result_eval(ct_context *ctx, const ct_ode_result *res, double t, int k,
                       double *y) {
  if (!res || !y) return CT_ERROR(ctx, CT_ERR_ARG, "ct_ode_result_eval needs a result and y");
  return ct_dense_eval(ctx, res->dense, res->t_reached, t, k, y);
}

/* Writes "t = <reached>: <what our callback found> (then: <CVODES' failure>);
 * <SUNDIALS' message>" into the result: the callback's finding (a NaN, say)
 * is the cause, CVODES' flag only its consequence. Empty parts are left out. */
static void append(char *buf, size_t size, const char *fmt, const char *text) {
  size_t len = strlen(buf);
  if (*text && len + 1 < size) snprintf(buf + len, size - len, fmt, text);
}

static void describe_failure(ct_ode_result *res, const char *flag_cause,
                             const char *found, const char *sundials) {
  snprintf(res->message, sizeof res->message, "t = %.6g: %s", res->t_reached,
           *found ? found : flag_cause);
  if (*found) append(res->message, sizeof res->message, " (then: %s)", flag_cause);
  append(res->message, sizeof res->message, "; %s", sundials);
}

/* CVODES as dense output drives it (see ct_step_ops). */
static int cv_one_step(void *cv, double tout, N_Vector y, double *t) {
  return CVode(cv, tout, y, t, CV_ONE_STEP);
}
static int cv_dky(void *cv, double t, int k, N_Vector out) {
  return CVodeGetDky(cv, t, k, out);
}
static long cv_n_steps(void *cv) {
  long nst = 0;
  CVodeGetNumSteps(cv, &nst);
  return nst;
}
static double cv_current_time(void *cv) {
  double t = 0;
  CVodeGetCurrentTime(cv, &t);
  return t;
}
static int cv_degree(void *cv) { /* the order of the step just taken */
  int q = 0;
  CVodeGetLastOrder(cv, &q);
  return q;
}
static const ct_step_ops cv_step_ops = {cv_one_step, cv_dky, cv_n_steps,
                                        cv_current_time, cv_degree, "CVODES CVode", NULL};

/* CVodeF as step-by-step driving works it (see ode_internal.h). */
static int cvf_one_step(void *mem, double tout, N_Vector y, double *t) {
  ct_cvodef_mem *f = mem;
  int ncheck = 0;
  int flag = CVodeF(f->cv, tout, y, t, CV_ONE_STEP, &ncheck);
  if (flag >= 0) *f->n_checkpoints = ncheck;
  return flag;
}
static int cvf_dky(void *mem, double t, int k, N_Vector out) {
  return cv_dky(((ct_cvodef_mem *)mem)->cv, t, k, out);
}
static long cvf_n_steps(void *mem) { return cv_n_steps(((ct_cvodef_mem *)mem)->cv); }
static double cvf_current_time(void *mem) {
  return cv_current_time(((ct_cvodef_mem *)mem)->cv);
}
static int cvf_degree(void *mem) { return cv_degree(((ct_cvodef_mem *)mem)->cv); }
const ct_step_ops ct_cvodef_step_ops = {cvf_one_step, cvf_dky, cvf_n_steps,
                                        cvf_current_time, cvf_degree, "CVODES CVodeF",
                                        NULL};

/* Reports a completed backward step (see ode_internal.h). */
int ct_backward_progress_step(ct_backward_progress *bp, double t) {
  double tb = bp->t_rhs;
  bp->t_rhs = t;
  if (!bp->progress || !bp->mem) return 0;
  long nst = bp->n_steps ? bp->n_steps(bp->mem) : cv_n_steps(bp->mem);
  if (nst <= bp->nst) return 0;
  bp->nst = nst;
  if (bp->progress(tb > bp->tout ? tb : bp->tout, bp->ud) == 0) return 0;
  bp->interrupted = 1;
  return -1;
}

/* Runs CVode through the output times, filling res; a failure is recorded
 * in res (message with the time reached) and returned. */
static int integrate(ct_ode_run *r, ct_cvode_set *c, const ct_ode_options *o,
                     const ct_ode_hooks *h, const double *tout, size_t n_tout,
                     ct_ode_result *res) {
  double *y = N_VGetArrayPointer(c->y);
  store_output(res, tout[0], y);
  res->t_reached = tout[0];
  if (h->output) CT_CHECK(r->ctx, h->output(r, c, res));
  for (size_t k = 1; k < n_tout;) {
    double t = tout[0];
    int flag = r->dense ? ct_ode_dense_advance(r, tout[k], c->y, &t)
               : c->advance ? c->advance(r, c, tout[k], &t)
                            : CVode(c->cv, tout[k], c->y, &t, CV_NORMAL);
    res->t_reached = t;
    if (flag == CV_ROOT_RETURN) {
      CT_CHECK(r->ctx, record_root(r, c, res, t));
      if (o->stop_at_roots) {
        store_output(res, t, y);
        if (h->output) CT_CHECK(r->ctx, h->output(r, c, res));
        return CT_OK;
      }
      continue;
    }
    if (flag == CT_STEP_INTERRUPTED) {
      CVodeGetCurrentTime(c->cv, &res->t_reached);
      return ct_interrupted(r->ctx, res->message, sizeof res->message, res->t_reached);
    }
    if (flag < 0) {
      CVodeGetCurrentTime(c->cv, &res->t_reached);
      describe_failure(res, cvode_cause(c->cv, flag, o, r->cause), r->cause, r->sundials);
      return CT_ERROR(r->ctx, CT_ERR_SOLVER, "%s", res->message);
    }
    store_output(res, t, y);
    if (h->output) CT_CHECK(r->ctx, h->output(r, c, res));
    r->cause[0] = '\0'; /* anything found so far was recovered from */
    k++;
  }
  return CT_OK;
}

/* Initial values: the model's y0(p), or the caller's. */
static int initial_values(ct_ode_run *r, const double *y0, double *out) {
  const ct_ode *m = r->m;
  if (!m->y0.f) {
    if (!y0)
      return CT_ERROR(r->ctx, CT_ERR_ARG,
                      "the model has no initial-value function: pass y0");
    memcpy(out, y0, m->n * sizeof *out);
    return CT_OK;
  }
  int rc = eval_at(r, &m->y0, 0, NULL, NULL, out);
  if (rc == CT_ERR_SOLVER) /* a flipped guard */
    return CT_ERROR(r->ctx, CT_ERR_ARG, "initial values: %s", r->cause);
  CT_CHECK(r->ctx, rc);
  return CT_OK;
}

/* Sets CVODES up, lets the hooks add to it, integrates and collects the
 * statistics; frees the CVODES objects whatever happens. */
static int solve_run(ct_ode_run *r, const ct_ode_options *o, const ct_ode_hooks *h,
                     const double *y0, const double *tout, size_t n_tout,
                     ct_ode_result *res) {
  ct_context *ctx = r->ctx;
  const ct_ode *m = r->m;
  double *y_init = ct_alloc(ctx, (m->n ? m->n : 1) * sizeof *y_init);
  if (!y_init) return CT_ERR_NOMEM;
  ct_cvode_set c = {0};
  int rc = initial_values(r, y0, y_init);
  ct_ode_linsol ls = o->linsol == CT_LINSOL_AUTO ? pick_linsol(m) : o->linsol;
  res->linsol = o->method == CT_ODE_ADAMS ? CT_LINSOL_AUTO : ls;
  if (rc == CT_OK && o->linsol == CT_LINSOL_AUTO && o->method == CT_ODE_BDF)
    ct_context_log(ctx, CT_LOG_INFO,
                   "linear solver auto: %s (%zu states, %zu Jacobian nonzeros, "
                   "bandwidths %ld/%ld)", ct_ode_linsol_name(ls), m->n,
                   m->pattern->nnz, m->mu, m->ml);
  if (rc == CT_OK) rc = cvode_setup(r, &c, o, tout[0], y_init, ls);
  if (rc == CT_OK && h->setup) rc = h->setup(r, &c, o);
  if (rc == CT_OK && o->dense_output && c.advance)
    rc = CT_ERROR(ctx, CT_ERR_ARG, "dense output is not available for adjoint solves "
                  "(their forward pass keeps its own checkpoints)");
  if (rc == CT_OK && o->progress && c.advance && !c.step_ops)
    rc = CT_ERROR(ctx, CT_ERR_ARG, "a progress callback is not available for this "
                  "kind of solve");
  if (rc == CT_OK)
    rc = ct_ode_dense_start(r, res, c.step_ops ? c.step_ops : &cv_step_ops,
                            c.step_ops ? c.step_mem : c.cv, o, c.y, tout[n_tout - 1]);
  if (rc == CT_OK) rc = integrate(r, &c, o, h, tout, n_tout, res);
  ct_ode_dense_stop(r);
  if (c.cv) collect_stats(c.cv, &res->stats);
  if (h->finish) h->finish(r, &c);
  cvode_set_free(&c);
  ct_free(ctx, y_init);
  return rc;
}

/* ct_ode_solve into a caller's result, with hooks (see ode_internal.h). */
int ct_ode_solve_into(ct_context *ctx, const ct_ode *m, const double *p,
                      const double *y0, const double *tout, size_t n_tout,
                      const ct_ode_options *opts, const ct_ode_hooks *hooks,
                      ct_ode_result *res) {
  ct_ode_hooks none = {0};
  const ct_ode_hooks *h = hooks ? hooks : &none;
  ct_ode_options o = opts ? *opts : ct_ode_default_options();
  CT_CHECK(ctx, check_options(ctx, m, &o, tout, n_tout));
  CT_CHECK(ctx, check_callbacks(ctx, m, &o));
  if (m->np && !p)
    return CT_ERROR(ctx, CT_ERR_ARG, "the model has %zu parameters: pass p", m->np);
  if (o.method >= CT_ODE_ERK || m->rhs_e.f) /* ARKODE (arkode.c) */
    return ct_arkode_solve_into(ctx, m, p, y0, tout, n_tout, &o, hooks, res);
  ct_ode_run r = {ctx, m, p, NULL, NULL, 0, "", "", h->ud, NULL};
  int rc = result_init(ctx, m, n_tout + 1, res);
  r.work = rc < 0 ? NULL : ct_alloc(ctx, m->work * sizeof *r.work);
  size_t n_vals = m->pattern->nnz && m->pattern->colptr ? m->pattern->nnz : 1;
  r.jac_vals = rc < 0 ? NULL : ct_alloc(ctx, n_vals * sizeof *r.jac_vals);
  if (rc == CT_OK && (!r.work || !r.jac_vals)) rc = CT_ERR_NOMEM;
  if (rc == CT_OK) rc = solve_run(&r, &o, h, y0, tout, n_tout, res);
  ct_free(ctx, r.work);
  ct_free(ctx, r.jac_vals);
  if (rc == CT_OK || CT_SOLVE_STOPPED(rc)) res->status = rc;
  return rc < 0 ? ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__) : CT_OK;
}

/* "t = <t>: interrupted" as the failure (see ode_internal.h). */
int ct_interrupted(ct_context *ctx, char *message, size_t size, double t) {
  snprintf(message, size, "t = %.6g: interrupted", t);
  return CT_ERROR(ctx, CT_ERR_INTERRUPTED, "%s", message);
}

/* A fresh result around ct_ode_solve_into; kept on a solver failure. */
int ct_ode_solve(ct_context *ctx, const ct_ode *m, const double *p,
                 const double *y0, const double *tout, size_t n_tout,
                 const ct_ode_options *opts, ct_ode_result **out) {
  *out = NULL;
  ct_ode_result *res = ct_calloc(ctx, 1, sizeof *res);
  if (!res) return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  int rc = ct_ode_solve_into(ctx, m, p, y0, tout, n_tout, opts, NULL, res);
  if (rc < 0 && !CT_SOLVE_STOPPED(rc)) {
    ct_ode_result_free(ctx, res);
    return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  }
  *out = res; /* a solver failure keeps what was computed */
  return rc < 0 ? ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__) : CT_OK;
}

/* Frees what the result holds and zeroes it (see ode_internal.h). */
void ct_ode_result_clear(ct_context *ctx, ct_ode_result *r) {
  for (size_t i = 0; i < r->n_roots_found; i++) ct_free(ctx, r->roots[i].which);
  ct_free(ctx, r->roots);
  ct_free(ctx, r->t);
  ct_free(ctx, r->y);
  ct_dense_free(ctx, r->dense);
  memset(r, 0, sizeof *r);
}

/* Frees the result. NULL is a no-op. */
void ct_ode_result_free(ct_context *ctx, ct_ode_result *r) {
  if (!r) return;
  ct_ode_result_clear(ctx, r);
  ct_free(ctx, r);
}

/* Fills the table of ode.c's pieces that ARKODE reuses (see ode_internal.h). */
void ct_ode_shared_get(ct_ode_shared *out) {
  out->pick_linsol = pick_linsol;
  out->initial_values = initial_values;
  out->result_init = result_init;
  out->store_output = store_output;
  out->describe_failure = describe_failure;
  out->eval_at = eval_at;
  out->check_finite = ct_ode_check_finite;
  out->rhs = rhs_cb;
  out->root = root_cb;
  out->jac = jac_cb;
  out->jtimes = jtimes_cb;
  out->error = sundials_error;
}
