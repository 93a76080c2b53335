/* Robertson's kinetics with CVODES, derivatives from the AD core: the
 * right-hand side is traced once into a ct_fun, and CVODES' dense Jacobian
 * comes from its vector-mode JVP (all three columns in one evaluation) —
 * no hand-written derivative. The output must match SUNDIALS' own
 * cvsRoberts_dns reference, which uses a hand-written Jacobian.
 *
 * Shows: tracing with ct_var, ct_graph_finalize, ct_fun_jvp with k
 * directions, ct_fun_jit (with the interpreter as fallback), evaluation with
 * caller-provided workspace, and error reporting through the context. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cvodes/cvodes.h>
#include <nvector/nvector_serial.h>
#include <sunlinsol/sunlinsol_dense.h>
#include <sunmatrix/sunmatrix_dense.h>

#include "cotangent.h"

#define NEQ 3
#define NOUT 12

/* The model, written once with traced operations. */
static int trace_rhs(ct_context *ctx, ct_fun **rhs) {
  ct_graph *g = ct_graph_new(ctx);
  if (!g) return ct_errcode(ctx);
  ct_var y[NEQ], ydot[NEQ];
  ct_graph_input(g, "y", NEQ, NULL, y);
  /* The same operations in the same order as SUNDIALS' hand-written f, so
   * that values agree to the last bit: this problem at rtol 1e-4 amplifies
   * rounding differences into visibly different trajectories late on. */
  ydot[0] = ct_add(ct_mulc(y[0], -0.04), ct_mul(ct_mulc(y[1], 1.0e4), y[2]));
  ydot[2] = ct_mul(ct_mulc(y[1], 3.0e7), y[1]);
  ydot[1] = ct_sub(ct_neg(ydot[0]), ydot[2]);
  ct_graph_output(g, "ydot", NEQ, ydot);
  int rc = ct_graph_finalize(g, rhs); /* reports any tracing error */
  ct_graph_free(g);
  return rc;
}

/* What the CVODES callbacks need: the context, f, its JVP and workspace. */
typedef struct model {
  ct_context *ctx;
  ct_fun *f, *jvp;
  double *work;
} model;

static int rhs(sunrealtype t, N_Vector y, N_Vector ydot, void *ud) {
  (void)t;
  model *m = ud;
  const double *in[1] = {N_VGetArrayPointer(y)};
  double *out[1] = {N_VGetArrayPointer(ydot)};
  return ct_fun_eval(m->ctx, m->f, in, out, m->work) < 0 ? -1 : 0;
}

/* J = df/dy: the JVP with the identity as its three directions gives the
 * columns one after the other, which is SUNDIALS' column-major layout. */
static int jacobian(sunrealtype t, N_Vector y, N_Vector fy, SUNMatrix J,
                    void *ud, N_Vector t1, N_Vector t2, N_Vector t3) {
  (void)t, (void)fy, (void)t1, (void)t2, (void)t3;
  model *m = ud;
  static const double identity[NEQ * NEQ] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
  const double *in[2] = {N_VGetArrayPointer(y), identity};
  double *out[2] = {NULL, SUNDenseMatrix_Data(J)};
  return ct_fun_eval(m->ctx, m->jvp, in, out, m->work) < 0 ? -1 : 0;
}

static int events(sunrealtype t, N_Vector yv, sunrealtype *g, void *ud) {
  (void)t, (void)ud;
  const sunrealtype *y = N_VGetArrayPointer(yv);
  g[0] = y[0] - 1.0e-4;
  g[1] = y[2] - 0.01;
  return 0;
}

#define SUN_TRY(ctx, call)                                                 \
  do {                                                                     \
    int flag_ = (call);                                                    \
    if (flag_ < 0) {                                                       \
      status = CT_ERROR((ctx), CT_ERR_SOLVER, "%s failed with flag %d",    \
                        #call, flag_);                                     \
      goto done;                                                           \
    }                                                                      \
  } while (0)
#define SUN_NEW(ctx, var, expr)                                            \
  do {                                                                     \
    if (!((var) = (expr))) {                                               \
      status = CT_ERROR((ctx), CT_ERR_NOMEM, "%s returned NULL", #expr);   \
      goto done;                                                           \
    }                                                                      \
  } while (0)

static int integrate(model *m) {
  ct_context *ctx = m->ctx;
  int status = CT_OK;
  SUNContext sun = NULL;
  N_Vector y = NULL, atol = NULL;
  SUNMatrix A = NULL;
  SUNLinearSolver LS = NULL;
  void *cv = NULL;

  SUN_TRY(ctx, SUNContext_Create(NULL, &sun));
  SUN_NEW(ctx, y, N_VNew_Serial(NEQ, sun));
  SUN_NEW(ctx, atol, N_VNew_Serial(NEQ, sun));
  sunrealtype *yy = N_VGetArrayPointer(y), *aa = N_VGetArrayPointer(atol);
  yy[0] = 1.0, yy[1] = 0.0, yy[2] = 0.0;
  aa[0] = 1.0e-8, aa[1] = 1.0e-14, aa[2] = 1.0e-6;
  SUN_NEW(ctx, cv, CVodeCreate(CV_BDF, sun));
  SUN_TRY(ctx, CVodeInit(cv, rhs, 0.0, y));
  SUN_TRY(ctx, CVodeSetUserData(cv, m));
  SUN_TRY(ctx, CVodeSVtolerances(cv, 1.0e-4, atol));
  SUN_TRY(ctx, CVodeRootInit(cv, 2, events));
  SUN_NEW(ctx, A, SUNDenseMatrix(NEQ, NEQ, sun));
  SUN_NEW(ctx, LS, SUNLinSol_Dense(y, A, sun));
  SUN_TRY(ctx, CVodeSetLinearSolver(cv, LS, A));
  SUN_TRY(ctx, CVodeSetJacFn(cv, jacobian));

  printf(" \n3-species kinetics problem\n\n");
  sunrealtype t = 0.0, tout = 0.4;
  for (int iout = 0; iout < NOUT;) {
    int flag = CVode(cv, tout, y, &t, CV_NORMAL);
    printf("At t = %0.4e      y =%14.6e  %14.6e  %14.6e\n", t, yy[0], yy[1], yy[2]);
    if (flag == CV_ROOT_RETURN) {
      int roots[2];
      SUN_TRY(ctx, CVodeGetRootInfo(cv, roots));
      printf("    rootsfound[] = %3d %3d\n", roots[0], roots[1]);
    } else if (flag < 0) {
      status = CT_ERROR(ctx, CT_ERR_SOLVER, "CVode failed at t = %g: %s", t,
                        CVodeGetReturnFlagName(flag));
      goto done;
    } else {
      iout++;
      tout *= 10.0;
    }
  }
  printf("\nFinal Statistics:\n");
  SUN_TRY(ctx, CVodePrintAllStats(cv, stdout, SUN_OUTPUTFORMAT_TABLE));
done:
  N_VDestroy(y);
  N_VDestroy(atol);
  CVodeFree(&cv);
  SUNLinSolFree(LS);
  SUNMatDestroy(A);
  if (sun) SUNContext_Free(&sun);
  return status;
}

static int run(model *m, int use_jit) {
  CT_CHECK(m->ctx, trace_rhs(m->ctx, &m->f));
  CT_CHECK(m->ctx, ct_fun_jvp(m->ctx, m->f, NEQ, NULL, &m->jvp));
  if (use_jit) {
    CT_CHECK(m->ctx, ct_fun_jit(m->ctx, m->f, NULL));
    CT_CHECK(m->ctx, ct_fun_jit(m->ctx, m->jvp, NULL));
  }
  size_t nw = ct_fun_work_size(m->f) > ct_fun_work_size(m->jvp)
                  ? ct_fun_work_size(m->f) : ct_fun_work_size(m->jvp);
  m->work = ct_alloc(m->ctx, nw * sizeof *m->work);
  if (!m->work) return ct_errcode(m->ctx);
  CT_CHECK(m->ctx, integrate(m));
  return CT_OK;
}

int main(int argc, char **argv) {
  int use_jit = argc > 1 && strcmp(argv[1], "--jit") == 0;
  model m = {ct_context_new(NULL), NULL, NULL, NULL};
  if (!m.ctx) {
    fprintf(stderr, "robertson_ad: %s\n", ct_errmsg(NULL));
    return 1;
  }
  int status = run(&m, use_jit);
  if (status < 0) fprintf(stderr, "robertson_ad: %s\n", ct_errmsg(m.ctx));
  ct_free(m.ctx, m.work);
  ct_fun_free(m.f);
  ct_fun_free(m.jvp);
  ct_context_free(m.ctx);
  return status < 0 ? 1 : 0;
}
