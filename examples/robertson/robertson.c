/* Robertson's 3-species kinetics with CVODES (BDF, dense Newton), stopping
 * at two events — the problem of SUNDIALS' cvsRoberts_dns example, printed
 * in the same format so that its shipped reference output checks ours.
 *
 *   y1' = -0.04 y1 + 1e4 y2 y3
 *   y2' =  0.04 y1 - 1e4 y2 y3 - 3e7 y2^2
 *   y3' =  3e7 y2^2
 *
 * on 0 <= t <= 4e10 from y = (1, 0, 0), with events y1 = 1e-4 and
 * y3 = 0.01. The Jacobian is written by hand for now; the AD core will
 * supply it. Errors are reported through a ct_context. */
#include <stdio.h>

#include <cvodes/cvodes.h>
#include <nvector/nvector_serial.h>
#include <sunlinsol/sunlinsol_dense.h>
#include <sunmatrix/sunmatrix_dense.h>

#include "cotangent.h"

#define NEQ 3
#define NOUT 12

static int rhs(sunrealtype t, N_Vector yv, N_Vector ydot, void *ud) {
  (void)t;
  (void)ud;
  const sunrealtype *y = N_VGetArrayPointer(yv);
  sunrealtype *yd = N_VGetArrayPointer(ydot);
  yd[0] = -0.04 * y[0] + 1.0e4 * y[1] * y[2];
  yd[2] = 3.0e7 * y[1] * y[1];
  yd[1] = -yd[0] - yd[2];
  return 0;
}

static int events(sunrealtype t, N_Vector yv, sunrealtype *g, void *ud) {
  (void)t;
  (void)ud;
  const sunrealtype *y = N_VGetArrayPointer(yv);
  g[0] = y[0] - 1.0e-4;
  g[1] = y[2] - 0.01;
  return 0;
}

static int jacobian(sunrealtype t, N_Vector yv, N_Vector fy, SUNMatrix J,
                    void *ud, N_Vector t1, N_Vector t2, N_Vector t3) {
  (void)t, (void)fy, (void)ud, (void)t1, (void)t2, (void)t3;
  const sunrealtype *y = N_VGetArrayPointer(yv);
  SM_ELEMENT_D(J, 0, 0) = -0.04;
  SM_ELEMENT_D(J, 0, 1) = 1.0e4 * y[2];
  SM_ELEMENT_D(J, 0, 2) = 1.0e4 * y[1];
  SM_ELEMENT_D(J, 1, 0) = 0.04;
  SM_ELEMENT_D(J, 1, 1) = -1.0e4 * y[2] - 6.0e7 * y[1];
  SM_ELEMENT_D(J, 1, 2) = -1.0e4 * y[1];
  SM_ELEMENT_D(J, 2, 0) = 0.0;
  SM_ELEMENT_D(J, 2, 1) = 6.0e7 * y[1];
  SM_ELEMENT_D(J, 2, 2) = 0.0;
  return 0;
}

/* Turns a SUNDIALS flag into a Cotangent status with the call named. */
#define SUN_TRY(ctx, call)                                                  \
  do {                                                                      \
    int flag_ = (call);                                                     \
    if (flag_ < 0) {                                                        \
      status = CT_ERROR((ctx), CT_ERR_SOLVER, "%s failed with flag %d",     \
                        #call, flag_);                                      \
      goto done;                                                            \
    }                                                                       \
  } while (0)
#define SUN_NEW(ctx, var, expr)                                             \
  do {                                                                      \
    if (!((var) = (expr))) {                                                \
      status = CT_ERROR((ctx), CT_ERR_NOMEM, "%s returned NULL", #expr);    \
      goto done;                                                            \
    }                                                                       \
  } while (0)

static int solve(ct_context *ctx) {
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
    printf("At t = %0.4e      y =%14.6e  %14.6e  %14.6e\n", t, yy[0], yy[1],
           yy[2]);
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

int main(void) {
  ct_context *ctx = ct_context_new(NULL);
  if (!ctx) {
    fprintf(stderr, "robertson: %s\n", ct_errmsg(NULL));
    return 1;
  }
  int status = solve(ctx);
  if (status < 0) fprintf(stderr, "robertson: %s\n", ct_errmsg(ctx));
  ct_context_free(ctx);
  return status < 0 ? 1 : 0;
}
