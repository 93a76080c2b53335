/* DAE models F(t, y, y', p) = 0 from AD functions and their integration
 * with IDAS: the residual, the iteration matrix dF/dy + cj dF/dy' from the
 * colored sparse AD Jacobians (dense or KLU) or JVPs (GMRES), consistent
 * initial values (IDACalcIC), roots, statistics, and failures reported
 * with the time reached. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <idas/idas.h>
#include <nvector/nvector_serial.h>
#include <sundials/sundials_context.h>
#include <sunlinsol/sunlinsol_dense.h>
#include <sunlinsol/sunlinsol_klu.h>
#include <sunlinsol/sunlinsol_spgmr.h>
#include <sunmatrix/sunmatrix_dense.h>
#include <sunmatrix/sunmatrix_sparse.h>

#include "model_io.h"
#include "cotangent/dae.h"
#include "dae_internal.h"
#include "ode_internal.h" /* step-by-step driving and dense output (ode.c) */


static const char *const dae_linsol_names[] = {"auto", "dense", "klu", "gmres"};

const char *ct_dae_linsol_name(ct_dae_linsol ls) {
  return (unsigned)ls < sizeof dae_linsol_names / sizeof *dae_linsol_names
             ? dae_linsol_names[ls] : "unknown";
}

int ct_dae_linsol_from_name(ct_context *ctx, const char *name, ct_dae_linsol *ls) {
  for (size_t i = 0; name && i < sizeof dae_linsol_names / sizeof *dae_linsol_names; i++)
    if (strcmp(name, dae_linsol_names[i]) == 0) {
      *ls = (ct_dae_linsol)i;
      return CT_OK;
    }
  return CT_ERROR(ctx, CT_ERR_ARG,
                  "unknown linear solver '%s' for DAE models (expected auto, dense, klu or "
                  "gmres)", name ? name : "(null)");
}

/* A model function with the positions of its inputs (-1: absent). */
typedef struct bound {
  ct_fun *f;
  long t, y, yp, p, dy, dyp;
} bound;

struct ct_dae {
  ct_context *ctx;
  size_t n, np, nroots;
  bound res, jy, jyp, jvp, init, roots;
  long init_y0, init_yp0;     /* outputs of init (-1: absent) */
  ct_sparsity *py, *pyp;      /* patterns of dF/dy and dF/dy' */
  ct_dae_pattern pat;         /* merged, CSC; map_a / map_b: entry of py /
                                 pyp -> merged entry */
  int *id;                    /* 1 differential, 0 algebraic */
  size_t work;
  ct_model_jit jit;           /* compiled by ct_dae_jit */
};

/* ---- Building a model ------------------------------------------------------ */

/* Records the input positions of f; an input other than t, y, yp, p and
 * their tangents is a CT_ERR_ARG. */
static int bind(ct_context *ctx, ct_fun *f, bound *b) {
  static const char *const known[] = {"t", "y", "yp", "p", "d_y", "d_yp"};
  b->f = f;
  b->t = ct_fun_in_index(f, "t");
  b->y = ct_fun_in_index(f, "y");
  b->yp = ct_fun_in_index(f, "yp");
  b->p = ct_fun_in_index(f, "p");
  b->dy = ct_fun_in_index(f, "d_y");
  b->dyp = ct_fun_in_index(f, "d_yp");
  for (size_t i = 0; i < ct_fun_n_in(f); i++) {
    const char *name = ct_fun_in_name(f, i);
    int ok = 0;
    for (size_t k = 0; k < sizeof known / sizeof *known; k++)
      ok |= strcmp(name, known[k]) == 0;
    if (!ok)
      return CT_ERROR(ctx, CT_ERR_ARG,
                      "DAE model function input '%s' is not one of t, y, yp, p", name);
  }
  return CT_OK;
}

/* A private copy of f with only the outputs `names` (NULL-terminated). */
static int own(ct_context *ctx, const ct_fun *f, const char *const *names,
               bound *b) {
  CT_CHECK(ctx, ct_fun_select_outputs(ctx, f, names, &b->f));
  return bind(ctx, b->f, b);
}

/* The union of the patterns a and b (see dae_internal.h). */
int ct_dae_pattern_merge(ct_context *ctx, const ct_sparsity *a, const ct_sparsity *b,
                         ct_dae_pattern *m) {
  size_t n = a->ncols, cap = a->nnz + b->nnz;
  m->n = n;
  m->colptr = ct_alloc(ctx, (n + 1) * sizeof *m->colptr);
  m->rowind = ct_alloc(ctx, (cap ? cap : 1) * sizeof *m->rowind);
  m->map_a = ct_alloc(ctx, (a->nnz ? a->nnz : 1) * sizeof *m->map_a);
  m->map_b = ct_alloc(ctx, (b->nnz ? b->nnz : 1) * sizeof *m->map_b);
  if (!m->colptr || !m->rowind || !m->map_a || !m->map_b) return CT_ERR_NOMEM;
  size_t q = 0;
  for (size_t j = 0; j < n; j++) {
    m->colptr[j] = q;
    size_t ia = a->colptr[j], ib = b->colptr[j];
    while (ia < a->colptr[j + 1] || ib < b->colptr[j + 1]) {
      size_t ra = ia < a->colptr[j + 1] ? a->rowind[ia] : (size_t)-1;
      size_t rb = ib < b->colptr[j + 1] ? b->rowind[ib] : (size_t)-1;
      size_t r = ra < rb ? ra : rb;
      if (ra == r) m->map_a[ia++] = q;
      if (rb == r) m->map_b[ib++] = q;
      m->rowind[q++] = r;
    }
  }
  m->colptr[n] = q;
  m->nnz = q;
  return CT_OK;
}

/* The transpose of `in` by counting sort (see dae_internal.h). */
int ct_dae_pattern_transpose(ct_context *ctx, const ct_dae_pattern *in,
                             ct_dae_pattern *t) {
  size_t n = in->n, nnz = in->nnz ? in->nnz : 1;
  t->n = n;
  t->nnz = in->nnz;
  t->colptr = ct_calloc(ctx, n + 1, sizeof *t->colptr);
  t->rowind = ct_alloc(ctx, nnz * sizeof *t->rowind);
  t->map_a = ct_alloc(ctx, nnz * sizeof *t->map_a);
  t->map_b = NULL;
  if (!t->colptr || !t->rowind || !t->map_a) return CT_ERR_NOMEM;
  for (size_t q = 0; q < in->nnz; q++) t->colptr[in->rowind[q] + 1]++;
  for (size_t j = 0; j < n; j++) t->colptr[j + 1] += t->colptr[j];
  for (size_t j = 0; j < n; j++) /* columns in order: rows of t come sorted */
    for (size_t q = in->colptr[j]; q < in->colptr[j + 1]; q++) {
      size_t dst = t->colptr[in->rowind[q]]++;
      t->rowind[dst] = j;
      t->map_a[q] = dst;
    }
  for (size_t j = n; j > 0; j--) t->colptr[j] = t->colptr[j - 1];
  t->colptr[0] = 0;
  return CT_OK;
}

void ct_dae_pattern_free(ct_context *ctx, ct_dae_pattern *p) {
  ct_free(ctx, p->colptr);
  ct_free(ctx, p->rowind);
  ct_free(ctx, p->map_a);
  ct_free(ctx, p->map_b);
  memset(p, 0, sizeof *p);
}

/* The largest workspace any of the model's functions needs. */
static size_t max_work(const ct_dae *m) {
  const bound *all[] = {&m->res, &m->jy, &m->jyp, &m->jvp, &m->init, &m->roots};
  size_t w = 1;
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    if (all[i]->f && ct_fun_work_size(all[i]->f) > w) w = ct_fun_work_size(all[i]->f);
  return w;
}

/* Fills a zeroed model: copies and checks the functions, builds the
 * Jacobians, the JVP, the merged pattern and the component types. */
static int dae_fill(ct_context *ctx, ct_dae *m, const ct_fun *res,
                    const ct_fun *init, const ct_fun *roots) {
  if (ct_fun_in_index(res, "y") < 0)
    return CT_ERROR(ctx, CT_ERR_ARG, "the residual function has no input 'y'");
  m->n = ct_fun_in_size(res, (size_t)ct_fun_in_index(res, "y"));
  CT_CHECK(ctx, ct_model_check_input(ctx, res, "residual", "yp", m->n, 1));
  CT_CHECK(ctx, ct_model_check_input(ctx, res, "residual", "t", 1, 0));
  CT_CHECK(ctx, ct_model_check_output(ctx, res, "residual", "F", m->n));
  const char *out_f[] = {"F", NULL};
  CT_CHECK(ctx, own(ctx, res, out_f, &m->res));
  m->np = m->res.p < 0 ? 0 : ct_fun_in_size(m->res.f, (size_t)m->res.p);
  if (init) {
    CT_CHECK(ctx, ct_model_check_output(ctx, init, "initial value", "y0", m->n));
    int has_yp0 = ct_fun_out_index(init, "yp0") >= 0;
    if (has_yp0) CT_CHECK(ctx, ct_model_check_output(ctx, init, "initial value", "yp0", m->n));
    const char *outs[] = {"y0", has_yp0 ? "yp0" : NULL, NULL};
    CT_CHECK(ctx, own(ctx, init, outs, &m->init));
    if (m->init.t >= 0 || m->init.y >= 0 || m->init.yp >= 0)
      return CT_ERROR(ctx, CT_ERR_ARG, "the initial value function may only take 'p'");
    CT_CHECK(ctx, ct_model_check_input(ctx, m->init.f, "initial value", "p", m->np, 0));
    m->init_y0 = ct_fun_out_index(m->init.f, "y0");
    m->init_yp0 = ct_fun_out_index(m->init.f, "yp0");
  }
  if (roots) {
    if (ct_fun_out_index(roots, "g") < 0)
      return CT_ERROR(ctx, CT_ERR_ARG, "the root function has no output 'g'");
    const char *out_g[] = {"g", NULL};
    CT_CHECK(ctx, own(ctx, roots, out_g, &m->roots));
    CT_CHECK(ctx, ct_model_check_input(ctx, m->roots.f, "root", "y", m->n, 0));
    CT_CHECK(ctx, ct_model_check_input(ctx, m->roots.f, "root", "yp", m->n, 0));
    CT_CHECK(ctx, ct_model_check_input(ctx, m->roots.f, "root", "t", 1, 0));
    CT_CHECK(ctx, ct_model_check_input(ctx, m->roots.f, "root", "p", m->np, 0));
    m->nroots = ct_fun_out_size(m->roots.f, 0);
  }
  const char *wrt_y[] = {"y", NULL}, *wrt_yp[] = {"yp", NULL};
  const char *wrt_both[] = {"y", "yp", NULL};
  CT_CHECK(ctx, ct_fun_sparse_jac(ctx, m->res.f, wrt_y, &m->jy.f, &m->py));
  CT_CHECK(ctx, bind(ctx, m->jy.f, &m->jy));
  CT_CHECK(ctx, ct_fun_sparse_jac(ctx, m->res.f, wrt_yp, &m->jyp.f, &m->pyp));
  CT_CHECK(ctx, bind(ctx, m->jyp.f, &m->jyp));
  ct_fun *jvp_full = NULL;
  CT_CHECK(ctx, ct_fun_jvp(ctx, m->res.f, 1, wrt_both, &jvp_full));
  const char *out_df[] = {"d_F", NULL};
  int rc = own(ctx, jvp_full, out_df, &m->jvp);
  ct_fun_free(jvp_full);
  CT_CHECK(ctx, rc);
  CT_CHECK(ctx, ct_dae_pattern_merge(ctx, m->py, m->pyp, &m->pat));
  m->id = ct_calloc(ctx, m->n ? m->n : 1, sizeof *m->id);
  if (!m->id) return CT_ERR_NOMEM;
  for (size_t j = 0; j < m->n; j++) m->id[j] = m->pyp->colptr[j + 1] > m->pyp->colptr[j];
  m->work = max_work(m);
  return CT_OK;
}

/* Builds a model (see dae.h); on failure nothing is kept. */
int ct_dae_new(ct_context *ctx, const ct_fun *res, const ct_fun *init,
               const ct_fun *roots, ct_dae **out) {
  if (!out) return CT_ERROR(ctx, CT_ERR_ARG, "ct_dae_new needs an output pointer");
  *out = NULL;
  if (!res) return CT_ERROR(ctx, CT_ERR_ARG, "a DAE model needs a residual function");
  ct_dae *m = ct_calloc(ctx, 1, sizeof *m);
  if (!m) return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  m->ctx = ctx;
  m->init_y0 = m->init_yp0 = -1;
  int rc = dae_fill(ctx, m, res, init, roots);
  if (rc < 0) {
    ct_dae_free(m);
    return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  }
  *out = m;
  return CT_OK;
}

/* Frees the model. NULL is a no-op. */
void ct_dae_free(ct_dae *m) {
  if (!m) return;
  const bound *all[] = {&m->res, &m->jy, &m->jyp, &m->jvp, &m->init, &m->roots};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ct_fun_free(all[i]->f);
  ct_model_jit_clear(m->ctx, &m->jit);
  ct_sparsity_free(m->ctx, m->py);
  ct_sparsity_free(m->ctx, m->pyp);
  ct_dae_pattern_free(m->ctx, &m->pat);
  ct_free(m->ctx, m->id);
  ct_free(m->ctx, m);
}

/* Compiles the model's functions and resizes its workspace (see dae.h). */
int ct_dae_jit(ct_context *ctx, ct_dae *dae, const ct_jit_options *opts) {
  if (!dae) return CT_ERROR(ctx, CT_ERR_ARG, "ct_dae_jit needs a model (dae is NULL)");
  ct_fun *const fs[] = {dae->res.f, dae->jy.f, dae->jyp.f, dae->jvp.f, dae->init.f,
                        dae->roots.f};
  int rc = ct_model_jit_all(ctx, &dae->jit, opts, fs, sizeof fs / sizeof fs[0]);
  dae->work = max_work(dae);
  if (rc < 0) return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  return CT_OK;
}

/* Compiles f like the model (see dae_internal.h). */
int ct_dae_jit_fun(ct_context *ctx, const ct_dae *dae, ct_fun *f) {
  return ct_model_jit_fun(ctx, &dae->jit, f);
}

size_t ct_dae_n_states(const ct_dae *m) { return m->n; }
size_t ct_dae_n_params(const ct_dae *m) { return m->np; }
size_t ct_dae_n_roots(const ct_dae *m) { return m->nroots; }
size_t ct_dae_jac_nnz(const ct_dae *m) { return m->pat.nnz; }
const int *ct_dae_differential(const ct_dae *m) { return m->id; }

/* ---- Options ------------------------------------------------------------------ */

ct_dae_options ct_dae_default_options(void) {
  ct_dae_options o = {CT_DAE_LINSOL_AUTO, 1e-6, 1e-8, NULL, 0, 0, 1, NULL, 1, 0,
                      NULL, NULL};
  return o;
}

/* Dense when small or dense-ish, else KLU. */
static ct_dae_linsol pick_linsol(const ct_dae *m) {
  if (m->n <= 50 || (double)m->pat.nnz > 0.2 * (double)m->n * (double)m->n)
    return CT_DAE_LINSOL_DENSE;
  return CT_DAE_LINSOL_KLU;
}

/* CT_ERR_ARG naming the first bad option or output time. */
static int check_options(ct_context *ctx, const ct_dae *m, const ct_dae_options *o,
                         const double *tout, size_t n_tout) {
  CT_CHECK(ctx, ct_model_check_tolerances(ctx, o->rtol, o->atol, o->atol_v, m->n));
  if ((unsigned)o->linsol > CT_DAE_LINSOL_GMRES)
    return CT_ERROR(ctx, CT_ERR_ARG, "unknown linear solver %d", (int)o->linsol);
  for (size_t i = 0; o->differential && i < m->n; i++)
    if (o->differential[i] != 0 && o->differential[i] != 1)
      return CT_ERROR(ctx, CT_ERR_ARG, "differential[%zu] must be 0 or 1, got %d", i,
                      o->differential[i]);
  return ct_model_check_times(ctx, "ct_dae_solve", tout, n_tout);
}

/* ---- Callbacks ------------------------------------------------------------------- */

/* What one solve needs in the callbacks. */
typedef struct run {
  ct_context *ctx;
  const ct_dae *m;
  const double *p;
  double *work, *jy, *jyp, *jac, *cjv;
  double t_buf;
  char cause[256];
  char sundials[512];
  const ct_dae_hooks *h;
  ct_dense_stepper *st; /* with dense output or progress: the stepping */
} run;

void *ct_dae_user_hook_data(void *user_data) { return ((run *)user_data)->h->ud; }
const double *ct_dae_user_params(void *user_data) { return ((run *)user_data)->p; }
void ct_dae_user_cause(void *user_data, const char *cause) {
  run *r = user_data;
  if (!*r->cause) snprintf(r->cause, sizeof r->cause, "%s", cause);
}
const ct_fun *ct_dae_res_fun(const ct_dae *m) { return m->res.f; }
const ct_fun *ct_dae_init_fun(const ct_dae *m, long *y0_out, long *yp0_out) {
  *y0_out = m->init_y0;
  *yp0_out = m->init_yp0;
  return m->init.f;
}

/* Evaluates b at (t, y, yp, p[, dy, dyp]) into out[0..]. */
static int eval_at(run *r, const bound *b, double t, const double *y,
                   const double *yp, const double *dy, const double *dyp,
                   double *const *out) {
  const double *in[6] = {0};
  r->t_buf = t;
  if (b->t >= 0) in[b->t] = &r->t_buf;
  if (b->y >= 0) in[b->y] = y;
  if (b->yp >= 0) in[b->yp] = yp;
  if (b->p >= 0) in[b->p] = r->p;
  if (b->dy >= 0) in[b->dy] = dy;
  if (b->dyp >= 0) in[b->dyp] = dyp;
  return ct_fun_eval(r->ctx, b->f, in, out, r->work);
}

/* 0 when all of v is finite; else records which component and returns 1
 * (a recoverable failure: IDAS retries with a smaller step). */
static int check_finite(run *r, const char *what, const double *v, size_t n, double t) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(v[i])) {
      snprintf(r->cause, sizeof r->cause, "the %s is %s in component %zu at t = %.6g",
               what, isnan(v[i]) ? "NaN" : "infinite", i, t);
      return 1;
    }
  return 0;
}

static int res_cb(sunrealtype t, N_Vector y, N_Vector yp, N_Vector rr, void *ud) {
  run *r = ud;
  double *out[1] = {N_VGetArrayPointer(rr)};
  if (eval_at(r, &r->m->res, t, N_VGetArrayPointer(y), N_VGetArrayPointer(yp),
              NULL, NULL, out) < 0)
    return -1;
  return check_finite(r, "residual", out[0], r->m->n, t);
}

static int root_cb(sunrealtype t, N_Vector y, N_Vector yp, sunrealtype *g, void *ud) {
  run *r = ud;
  double *out[1] = {g};
  return eval_at(r, &r->m->roots, t, N_VGetArrayPointer(y), N_VGetArrayPointer(yp),
                 NULL, NULL, out) < 0 ? -1 : 0;
}

/* dF/dy + cj dF/dy' in the merged pattern's CSC order, into r->jac. */
static int jac_values(run *r, double t, double cj, N_Vector y, N_Vector yp) {
  const ct_dae *m = r->m;
  double *oy[1] = {r->jy}, *oyp[1] = {r->jyp};
  const double *yv = N_VGetArrayPointer(y), *ypv = N_VGetArrayPointer(yp);
  if (eval_at(r, &m->jy, t, yv, ypv, NULL, NULL, oy) < 0) return -1;
  if (eval_at(r, &m->jyp, t, yv, ypv, NULL, NULL, oyp) < 0) return -1;
  memset(r->jac, 0, (m->pat.nnz ? m->pat.nnz : 1) * sizeof *r->jac);
  for (size_t q = 0; q < m->py->nnz; q++) r->jac[m->pat.map_a[q]] = r->jy[q];
  for (size_t q = 0; q < m->pyp->nnz; q++) r->jac[m->pat.map_b[q]] += cj * r->jyp[q];
  return check_finite(r, "Jacobian", r->jac, m->pat.nnz, t);
}

/* IDAS' Jacobian callback for the dense and sparse matrices. */
static int jac_cb(sunrealtype t, sunrealtype cj, N_Vector y, N_Vector yp, N_Vector rr,
                  SUNMatrix J, void *ud, N_Vector t1, N_Vector t2, N_Vector t3) {
  (void)rr, (void)t1, (void)t2, (void)t3;
  run *r = ud;
  const ct_dae *m = r->m;
  int rc = jac_values(r, t, cj, y, yp);
  if (rc) return rc;
  if (SUNMatGetID(J) == SUNMATRIX_DENSE) {
    double *a = SUNDenseMatrix_Data(J);
    memset(a, 0, m->n * m->n * sizeof *a);
    for (size_t j = 0; j < m->n; j++)
      for (size_t q = m->pat.colptr[j]; q < m->pat.colptr[j + 1]; q++)
        a[j * m->n + m->pat.rowind[q]] = r->jac[q];
    return 0;
  }
  if (SUNMatGetID(J) != SUNMATRIX_SPARSE) return -1;
  sunindextype *cp = SUNSparseMatrix_IndexPointers(J);
  sunindextype *ri = SUNSparseMatrix_IndexValues(J);
  double *data = SUNSparseMatrix_Data(J);
  for (size_t j = 0; j <= m->n; j++) cp[j] = (sunindextype)m->pat.colptr[j];
  for (size_t q = 0; q < m->pat.nnz; q++) {
    ri[q] = (sunindextype)m->pat.rowind[q];
    data[q] = r->jac[q];
  }
  return 0;
}

/* J v = dF/dy v + dF/dy' (cj v), one AD JVP. */
static int jtimes_cb(sunrealtype t, N_Vector y, N_Vector yp, N_Vector rr, N_Vector v,
                     N_Vector Jv, sunrealtype cj, void *ud, N_Vector t1, N_Vector t2) {
  (void)rr, (void)t1, (void)t2;
  run *r = ud;
  const double *vv = N_VGetArrayPointer(v);
  for (size_t i = 0; i < r->m->n; i++) r->cjv[i] = cj * vv[i];
  double *out[1] = {N_VGetArrayPointer(Jv)};
  if (eval_at(r, &r->m->jvp, t, N_VGetArrayPointer(y), N_VGetArrayPointer(yp), vv,
              r->cjv, out) < 0)
    return -1;
  return check_finite(r, "Jacobian-vector product", out[0], r->m->n, t);
}

/* Keeps SUNDIALS' message for the failure report instead of printing it. */
static void sundials_error(int code, const char *module, const char *function,
                           char *msg, void *ud) {
  run *r = ud;
  snprintf(r->sundials, sizeof r->sundials, "%s %s (%d): %s", module, function,
           code, msg);
}

/* ---- Integration ---------------------------------------------------------------- */

/* The IDAS objects of one solve. */
typedef struct ida_set {
  SUNContext sun;
  void *mem;
  N_Vector y, yp, atol, id;
  SUNMatrix A;
  SUNLinearSolver LS;
} ida_set;

/* Frees the IDAS objects; IDAS first, since it refers to the others. */
static void ida_set_free(ida_set *c) {
  if (c->mem) IDAFree(&c->mem);
  if (c->LS) SUNLinSolFree(c->LS);
  if (c->A) SUNMatDestroy(c->A);
  if (c->y) N_VDestroy(c->y);
  if (c->yp) N_VDestroy(c->yp);
  if (c->atol) N_VDestroy(c->atol);
  if (c->id) N_VDestroy(c->id);
  if (c->sun) SUNContext_Free(&c->sun);
}

/* Attaches the linear solver `ls` with the AD Jacobian or JVP. */
static int attach_linear_solver(run *r, ida_set *c, ct_dae_linsol ls) {
  ct_context *ctx = r->ctx;
  sunindextype n = (sunindextype)r->m->n;
  sunindextype nnz = (sunindextype)(r->m->pat.nnz ? r->m->pat.nnz : 1);
  switch (ls) {
    case CT_DAE_LINSOL_DENSE:
      CT_SUN_NEW(ctx, c->A, SUNDenseMatrix(n, n, c->sun));
      CT_SUN_NEW(ctx, c->LS, SUNLinSol_Dense(c->y, c->A, c->sun));
      break;
    case CT_DAE_LINSOL_KLU:
      CT_SUN_NEW(ctx, c->A, SUNSparseMatrix(n, n, nnz, CSC_MAT, c->sun));
      CT_SUN_NEW(ctx, c->LS, SUNLinSol_KLU(c->y, c->A, c->sun));
      break;
    default:
      CT_SUN_NEW(ctx, c->LS, SUNLinSol_SPGMR(c->y, SUN_PREC_NONE, 0, c->sun));
      CT_SUN_CALL(ctx, IDASetLinearSolver(c->mem, c->LS, NULL));
      CT_SUN_CALL(ctx, IDASetJacTimes(c->mem, NULL, jtimes_cb));
      return CT_OK;
  }
  CT_SUN_CALL(ctx, IDASetLinearSolver(c->mem, c->LS, c->A));
  CT_SUN_CALL(ctx, IDASetJacFn(c->mem, jac_cb));
  return CT_OK;
}

/* Creates IDAS with the initial values, tolerances, roots, component types
 * (with calc_ic) and linear solver. */
static int ida_setup(run *r, ida_set *c, const ct_dae_options *o, double t0,
                     const double *y0, const double *yp0, ct_dae_linsol ls) {
  ct_context *ctx = r->ctx;
  const ct_dae *m = r->m;
  sunindextype n = (sunindextype)m->n;
  CT_SUN_CALL(ctx, SUNContext_Create(NULL, &c->sun));
  CT_SUN_NEW(ctx, c->y, N_VNew_Serial(n, c->sun));
  CT_SUN_NEW(ctx, c->yp, N_VNew_Serial(n, c->sun));
  memcpy(N_VGetArrayPointer(c->y), y0, m->n * sizeof *y0);
  memcpy(N_VGetArrayPointer(c->yp), yp0, m->n * sizeof *yp0);
  CT_SUN_NEW(ctx, c->mem, IDACreate(c->sun));
  CT_SUN_CALL(ctx, IDASetErrHandlerFn(c->mem, sundials_error, r));
  CT_SUN_CALL(ctx, IDAInit(c->mem, res_cb, t0, c->y, c->yp));
  CT_SUN_CALL(ctx, IDASetUserData(c->mem, r));
  if (o->atol_v) {
    CT_SUN_NEW(ctx, c->atol, N_VNew_Serial(n, c->sun));
    memcpy(N_VGetArrayPointer(c->atol), o->atol_v, m->n * sizeof *o->atol_v);
    CT_SUN_CALL(ctx, IDASVtolerances(c->mem, o->rtol, c->atol));
  } else {
    CT_SUN_CALL(ctx, IDASStolerances(c->mem, o->rtol, o->atol));
  }
  if (o->max_steps) CT_SUN_CALL(ctx, IDASetMaxNumSteps(c->mem, o->max_steps));
  if (o->max_step > 0) CT_SUN_CALL(ctx, IDASetMaxStep(c->mem, o->max_step));
  if (m->nroots) CT_SUN_CALL(ctx, IDARootInit(c->mem, (int)m->nroots, root_cb));
  if (o->calc_ic) {
    CT_SUN_NEW(ctx, c->id, N_VNew_Serial(n, c->sun));
    double *id = N_VGetArrayPointer(c->id);
    for (size_t i = 0; i < m->n; i++)
      id[i] = (o->differential ? o->differential[i] : m->id[i]) ? 1.0 : 0.0;
    CT_SUN_CALL(ctx, IDASetId(c->mem, c->id));
  }
  return attach_linear_solver(r, c, ls);
}

static void collect_stats(void *mem, ct_dae_stats *s) {
  IDAGetNumSteps(mem, &s->steps);
  IDAGetNumResEvals(mem, &s->res_evals);
  IDAGetNumLinSolvSetups(mem, &s->lin_setups);
  IDAGetNumErrTestFails(mem, &s->err_test_fails);
  IDAGetNumNonlinSolvIters(mem, &s->nonlin_iters);
  IDAGetNumNonlinSolvConvFails(mem, &s->nonlin_conv_fails);
  IDAGetNumGEvals(mem, &s->root_evals);
  IDAGetNumJacEvals(mem, &s->jac_evals);
  IDAGetNumJtimesEvals(mem, &s->jtimes_evals);
  IDAGetNumLinIters(mem, &s->lin_iters);
  IDAGetNumLinResEvals(mem, &s->lin_res_evals);
  IDAGetNumBacktrackOps(mem, &s->ic_backtracks);
  IDAGetActualInitStep(mem, &s->first_step);
  IDAGetLastStep(mem, &s->last_step);
  IDAGetLastOrder(mem, &s->last_order);
  IDAGetCurrentTime(mem, &s->current_time);
  IDAGetCurrentStep(mem, &s->current_step);
  IDAGetCurrentOrder(mem, &s->current_order);
}

/* The cause of an IDASolve or IDACalcIC failure in words. */
static const char *failure_cause(int flag, const ct_dae_options *o) {
  switch (flag) {
    case IDA_TOO_MUCH_WORK:
      return o->max_steps ? "too much work: the step limit (max_steps) was reached"
                          : "too much work: 500 steps without reaching the next "
                            "output time (raise max_steps)";
    case IDA_TOO_MUCH_ACC: return "too much accuracy requested for machine precision";
    case IDA_ERR_FAIL: return "error test failed repeatedly or the step size underflowed";
    case IDA_CONV_FAIL:
      return "the nonlinear iteration failed to converge repeatedly (singular or "
             "ill-conditioned iteration matrix? index higher than 1?)";
    case IDA_LSETUP_FAIL: return "the linear solver setup failed (singular iteration matrix?)";
    case IDA_LSOLVE_FAIL: return "the linear solve failed";
    case IDA_RES_FAIL:
    case IDA_REP_RES_ERR:
    case IDA_FIRST_RES_FAIL: return "the residual failed";
    case IDA_RTFUNC_FAIL: return "the root function failed";
    case IDA_LINESEARCH_FAIL: return "the line search of the initial-condition solve failed";
    case IDA_NO_RECOVERY: return "the residual or linear solver failed recoverably and "
                                 "could not recover";
    case IDA_BAD_EWT: return "a component of the error weights became non-positive";
    case IDA_SRES_FAIL:
    case IDA_REP_SRES_ERR: return "the sensitivity residual failed";
    default: return "the integrator failed";
  }
}

/* See dae_internal.h: the dense solver's last setup flag is the 1-based
 * column of a zero pivot; KLU's is a package failure when klu_factor
 * found the matrix singular (or its condition number too large). */
const char *ct_dae_singular_cause(SUNLinearSolver LS, const char *matrix, char *buf,
                                  size_t size) {
  if (!LS) return NULL;
  sunindextype last = SUNLinSolLastFlag(LS);
  SUNLinearSolver_ID id = SUNLinSolGetID(LS);
  if (id == SUNLINEARSOLVER_DENSE && last > 0) {
    snprintf(buf, size, "the iteration matrix %s is singular (zero pivot in column %ld "
             "of the LU factorization: component %ld)", matrix, (long)last,
             (long)last - 1);
    return buf;
  }
  if (id == SUNLINEARSOLVER_KLU &&
      (last == SUNLS_PACKAGE_FAIL_REC || last == SUNLS_PACKAGE_FAIL_UNREC)) {
    snprintf(buf, size, "the iteration matrix %s is singular or numerically singular "
             "(KLU could not factor it)", matrix);
    return buf;
  }
  return NULL;
}

/* Records a singular iteration matrix as the cause of a failure, unless a
 * callback already recorded one. */
static void note_singular(run *r, ida_set *c) {
  char buf[256];
  if (!*r->cause && ct_dae_singular_cause(c->LS, "dF/dy + cj dF/dy'", buf, sizeof buf))
    snprintf(r->cause, sizeof r->cause, "%s", buf);
}

/* Room for `cap` outputs in a zeroed result. */
static int result_init(ct_context *ctx, const ct_dae *m, size_t cap, ct_dae_result *res) {
  size_t n = m->n ? m->n : 1;
  res->n = m->n;
  res->t = ct_alloc(ctx, cap * sizeof *res->t);
  res->y = ct_alloc(ctx, cap * n * sizeof *res->y);
  res->yp = ct_alloc(ctx, cap * n * sizeof *res->yp);
  res->steps = ct_alloc(ctx, cap * sizeof *res->steps);
  res->order = ct_alloc(ctx, cap * sizeof *res->order);
  res->h = ct_alloc(ctx, cap * sizeof *res->h);
  if (!res->t || !res->y || !res->yp || !res->steps || !res->order || !res->h)
    return CT_ERR_NOMEM;
  return CT_OK;
}

/* Appends an output with the integrator's current step count, order and
 * last step. */
static void store_output(ct_dae_result *res, void *mem, double t, const double *y,
                         const double *yp) {
  size_t k = res->n_out++;
  res->t[k] = t;
  memcpy(res->y + k * res->n, y, res->n * sizeof *y);
  memcpy(res->yp + k * res->n, yp, res->n * sizeof *yp);
  res->steps[k] = 0;
  res->order[k] = 0;
  res->h[k] = 0;
  IDAGetNumSteps(mem, &res->steps[k]);
  IDAGetLastOrder(mem, &res->order[k]);
  IDAGetLastStep(mem, &res->h[k]);
}

/* store_output, then the output hook. */
static int output(run *r, ida_set *c, const ct_dae_options *o, ct_dae_result *res,
                  double t) {
  store_output(res, c->mem, t, N_VGetArrayPointer(c->y), N_VGetArrayPointer(c->yp));
  if (r->h->output) CT_CHECK(r->ctx, r->h->output(r->ctx, r->h->ud, c->mem, res, o));
  return CT_OK;
}

/* Appends the root IDAS just returned, with the state there. */
static int record_root(run *r, ida_set *c, ct_dae_result *res, double t) {
  ct_dae_root *roots = ct_realloc_array(r->ctx, res->roots, res->n_roots_found + 1,
                                        sizeof *roots);
  if (!roots) return CT_ERR_NOMEM;
  res->roots = roots;
  ct_dae_root *root = &roots[res->n_roots_found];
  memset(root, 0, sizeof *root);
  root->t = t;
  root->which = ct_calloc(r->ctx, r->m->nroots, sizeof *root->which);
  root->y = ct_alloc(r->ctx, (r->m->n ? r->m->n : 1) * sizeof *root->y);
  res->n_roots_found++; /* counted now so that the result frees it */
  if (!root->which || !root->y) return CT_ERR_NOMEM;
  memcpy(root->y, N_VGetArrayPointer(c->y), r->m->n * sizeof *root->y);
  IDAGetNumSteps(c->mem, &root->steps);
  IDAGetLastOrder(c->mem, &root->order);
  IDAGetLastStep(c->mem, &root->h);
  CT_SUN_CALL(r->ctx, IDAGetRootInfo(c->mem, root->which));
  return CT_OK;
}

/* Appends fmt(text) to buf when text is not empty. */
static void append(char *buf, size_t size, const char *fmt, const char *text) {
  size_t len = strlen(buf);
  if (*text && len + 1 < size) snprintf(buf + len, size - len, fmt, text);
}

/* "t = <reached>: <what our callback found> (then: <IDAS' failure>);
 * <SUNDIALS' message>", empty parts left out; recorded in the context. */
static int fail(run *r, ct_dae_result *res, const char *flag_cause) {
  snprintf(res->message, sizeof res->message, "t = %.6g: %.200s", res->t_reached,
           *r->cause ? r->cause : flag_cause);
  if (*r->cause) append(res->message, sizeof res->message, " (then: %.200s)", flag_cause);
  append(res->message, sizeof res->message, "; %.200s", r->sundials);
  return CT_ERROR(r->ctx, CT_ERR_SOLVER, "%s", res->message);
}

/* IDAS as step-by-step driving works it (see ct_step_ops), on the solve's
 * objects: the run's advance hook in one-step form (IDASolveF for
 * adjoints) or IDASolve, y' kept in c->yp; outputs y and y' from
 * IDAGetDky. */
typedef struct ida_stepping {
  run *r;
  ida_set *c;
} ida_stepping;

static int ida_one_step(void *mem, double tout, N_Vector y, double *t) {
  ida_stepping *w = mem;
  const ct_dae_hooks *h = w->r->h;
  if (h->advance_one) return h->advance_one(h->ud, w->c->mem, tout, t, y, w->c->yp);
  return IDASolve(w->c->mem, tout, t, y, w->c->yp, IDA_ONE_STEP);
}
static int ida_dky(void *mem, double t, int k, N_Vector out) {
  return IDAGetDky(((ida_stepping *)mem)->c->mem, t, k, out);
}
static long ida_n_steps(void *mem) {
  long nst = 0;
  IDAGetNumSteps(((ida_stepping *)mem)->c->mem, &nst);
  return nst;
}
static double ida_current_time(void *mem) {
  double t = 0;
  IDAGetCurrentTime(((ida_stepping *)mem)->c->mem, &t);
  return t;
}
static int ida_degree(void *mem) { /* the order of the step just taken */
  int q = 0;
  IDAGetLastOrder(((ida_stepping *)mem)->c->mem, &q);
  return q;
}
static int ida_output(void *mem, double t, N_Vector y) {
  ida_stepping *w = mem;
  int flag = IDAGetDky(w->c->mem, t, 0, y);
  return flag < 0 ? flag : IDAGetDky(w->c->mem, t, 1, w->c->yp);
}
static const ct_step_ops ida_step_ops = {ida_one_step, ida_dky, ida_n_steps,
                                         ida_current_time, ida_degree, "IDAS IDASolve",
                                         ida_output};

/* Starts step-by-step driving (r->st) when the options ask for dense
 * output or progress, from the consistent y(t0) in c->y. */
static int stepping_start(run *r, ida_set *c, ida_stepping *w, const ct_dae_options *o,
                          const double *tout, size_t n_tout, ct_dae_result *res) {
  if (!o->dense_output && !o->progress) return CT_OK;
  if (r->h->advance && !r->h->advance_one)
    return CT_ERROR(r->ctx, CT_ERR_ARG, "dense output and progress are not available "
                    "for this kind of solve");
  if (o->dense_output && r->h->advance)
    return CT_ERROR(r->ctx, CT_ERR_ARG, "dense output is not available for adjoint "
                    "solves (their forward pass keeps its own checkpoints)");
  w->r = r;
  w->c = c;
  ct_step_setup s = {&ida_step_ops, w, c->y, o->max_steps, o->progress, o->progress_ud,
                     tout[n_tout - 1], r->cause, sizeof r->cause, r->sundials,
                     sizeof r->sundials};
  return ct_stepper_new(r->ctx, &s, o->dense_output ? &res->dense : NULL, &r->st);
}

/* Makes the initial values consistent (with calc_ic), then runs IDASolve
 * through the output times, filling res; a failure is recorded in res
 * (message with the time reached) and returned. */
static int integrate(run *r, ida_set *c, const ct_dae_options *o, const double *tout,
                     size_t n_tout, ct_dae_result *res) {
  res->t_reached = tout[0];
  if (o->calc_ic && n_tout > 1) {
    int flag = IDACalcIC(c->mem, IDA_YA_YDP_INIT, tout[1]);
    if (flag < 0) {
      note_singular(r, c);
      char cause[256];
      snprintf(cause, sizeof cause, "consistent initial values could not be "
               "computed (IDACalcIC: %s)", failure_cause(flag, o));
      return fail(r, res, cause);
    }
    CT_SUN_CALL(r->ctx, IDAGetConsistentIC(c->mem, c->y, c->yp));
  }
  ida_stepping w;
  CT_CHECK(r->ctx, stepping_start(r, c, &w, o, tout, n_tout, res));
  CT_CHECK(r->ctx, output(r, c, o, res, tout[0]));
  for (size_t k = 1; k < n_tout;) {
    double t = tout[0];
    int flag = r->st ? ct_stepper_advance(r->st, tout[k], c->y, &t)
               : r->h->advance ? r->h->advance(r->h->ud, c->mem, tout[k], &t, c->y, c->yp)
                               : IDASolve(c->mem, tout[k], &t, c->y, c->yp, IDA_NORMAL);
    res->t_reached = t;
    if (flag == CT_STEP_INTERRUPTED) {
      IDAGetCurrentTime(c->mem, &res->t_reached);
      return ct_interrupted(r->ctx, res->message, sizeof res->message, res->t_reached);
    }
    if (flag == IDA_ROOT_RETURN) {
      CT_CHECK(r->ctx, record_root(r, c, res, t));
      if (o->stop_at_roots) {
        return output(r, c, o, res, t);
      }
      continue;
    }
    if (flag < 0) {
      IDAGetCurrentTime(c->mem, &res->t_reached);
      note_singular(r, c);
      return fail(r, res, failure_cause(flag, o));
    }
    CT_CHECK(r->ctx, output(r, c, o, res, t));
    r->cause[0] = '\0'; /* anything found so far was recovered from */
    k++;
  }
  return CT_OK;
}

/* Initial values: the model's init(p), or the caller's (yp0 NULL: zero). */
static int initial_values(run *r, const double *y0, const double *yp0, double *y,
                          double *yp) {
  const ct_dae *m = r->m;
  memset(yp, 0, m->n * sizeof *yp);
  if (!m->init.f) {
    if (!y0)
      return CT_ERROR(r->ctx, CT_ERR_ARG,
                      "the model has no initial-value function: pass y0");
    memcpy(y, y0, m->n * sizeof *y);
    if (yp0) memcpy(yp, yp0, m->n * sizeof *yp);
    return CT_OK;
  }
  double *out[2] = {NULL, NULL};
  out[m->init_y0] = y;
  if (m->init_yp0 >= 0) out[m->init_yp0] = yp;
  CT_CHECK(r->ctx, eval_at(r, &m->init, 0, NULL, NULL, NULL, NULL, out));
  return CT_OK;
}

/* Sets IDAS up, integrates and collects the statistics; frees the IDAS
 * objects whatever happens. */
static int solve_run(run *r, const ct_dae_options *o, const double *y0,
                     const double *yp0, const double *tout, size_t n_tout,
                     ct_dae_result *res) {
  ct_context *ctx = r->ctx;
  const ct_dae *m = r->m;
  double *init = ct_alloc(ctx, 2 * (m->n ? m->n : 1) * sizeof *init);
  if (!init) return CT_ERR_NOMEM;
  ida_set c = {0};
  int rc = initial_values(r, y0, yp0, init, init + m->n);
  ct_dae_linsol ls = o->linsol == CT_DAE_LINSOL_AUTO ? pick_linsol(m) : o->linsol;
  res->linsol = ls;
  if (rc == CT_OK) rc = ida_setup(r, &c, o, tout[0], init, init + m->n, ls);
  if (rc == CT_OK && r->h->setup) rc = r->h->setup(ctx, r->h->ud, c.mem, c.sun, c.y, o);
  if (rc == CT_OK) rc = integrate(r, &c, o, tout, n_tout, res);
  ct_stepper_free(r->st);
  r->st = NULL;
  if (c.mem) collect_stats(c.mem, &res->stats);
  if (c.mem && r->h->finish) r->h->finish(r->h->ud, c.mem);
  ida_set_free(&c);
  ct_free(ctx, init);
  return rc;
}

/* Integrates the model (see dae.h). */
int ct_dae_solve(ct_context *ctx, const ct_dae *m, const double *p,
                 const double *y0, const double *yp0, const double *tout,
                 size_t n_tout, const ct_dae_options *opts, ct_dae_result **out) {
  int rc = ct_dae_solve_hooked(ctx, m, p, y0, yp0, tout, n_tout, opts, NULL, out);
  return rc < 0 ? ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__) : CT_OK;
}

/* ct_dae_solve with extension hooks (see dae_internal.h). */
int ct_dae_solve_hooked(ct_context *ctx, const ct_dae *m, const double *p,
                        const double *y0, const double *yp0, const double *tout,
                        size_t n_tout, const ct_dae_options *opts,
                        const ct_dae_hooks *hooks, ct_dae_result **out) {
  static const ct_dae_hooks none = {0};
  if (!out) return CT_ERROR(ctx, CT_ERR_ARG, "ct_dae_solve needs an output pointer");
  *out = NULL;
  if (!m) return CT_ERROR(ctx, CT_ERR_ARG, "ct_dae_solve needs a model");
  ct_dae_options o = opts ? *opts : ct_dae_default_options();
  CT_CHECK(ctx, check_options(ctx, m, &o, tout, n_tout));
  if (m->np && !p)
    return CT_ERROR(ctx, CT_ERR_ARG, "the model has %zu parameters: pass p", m->np);
  ct_dae_result *res = ct_calloc(ctx, 1, sizeof *res);
  if (!res) return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  size_t n = m->n ? m->n : 1, nnz = m->pat.nnz ? m->pat.nnz : 1;
  run r = {ctx, m, p, NULL, NULL, NULL, NULL, NULL, 0, "", "", hooks ? hooks : &none,
           NULL};
  int rc = result_init(ctx, m, n_tout + 1, res);
  if (rc == CT_OK) {
    r.work = ct_alloc(ctx, m->work * sizeof *r.work);
    r.jy = ct_alloc(ctx, (m->py->nnz ? m->py->nnz : 1) * sizeof *r.jy);
    r.jyp = ct_alloc(ctx, (m->pyp->nnz ? m->pyp->nnz : 1) * sizeof *r.jyp);
    r.jac = ct_alloc(ctx, nnz * sizeof *r.jac);
    r.cjv = ct_alloc(ctx, n * sizeof *r.cjv);
    if (!r.work || !r.jy || !r.jyp || !r.jac || !r.cjv) rc = CT_ERR_NOMEM;
  }
  if (rc == CT_OK) rc = solve_run(&r, &o, y0, yp0, tout, n_tout, res);
  ct_free(ctx, r.work);
  ct_free(ctx, r.jy);
  ct_free(ctx, r.jyp);
  ct_free(ctx, r.jac);
  ct_free(ctx, r.cjv);
  if (rc < 0 && !CT_SOLVE_STOPPED(rc)) {
    ct_dae_result_free(ctx, res);
    return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  }
  res->status = rc;
  *out = res; /* a solver failure keeps what was computed */
  return rc < 0 ? ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__) : CT_OK;
}

/* Frees the result. NULL is a no-op. */
void ct_dae_result_free(ct_context *ctx, ct_dae_result *r) {
  if (!r) return;
  for (size_t i = 0; i < r->n_roots_found; i++) {
    ct_free(ctx, r->roots[i].which);
    ct_free(ctx, r->roots[i].y);
  }
  ct_free(ctx, r->roots);
  ct_free(ctx, r->t);
  ct_free(ctx, r->y);
  ct_free(ctx, r->yp);
  ct_free(ctx, r->steps);
  ct_free(ctx, r->order);
  ct_free(ctx, r->h);
  ct_dense_free(ctx, r->dense);
  ct_free(ctx, r);
}

/* y^(k)(t) from the stored interpolants (see dae.h). */
int ct_dae_result_eval(ct_context *ctx, const ct_dae_result *res, double t, int k,
                       double *y) {
  if (!res || !y) return CT_ERROR(ctx, CT_ERR_ARG, "ct_dae_result_eval needs a result and y");
  return ct_dense_eval(ctx, res->dense, res->t_reached, t, k, y);
}
