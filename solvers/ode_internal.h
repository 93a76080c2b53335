/* Private: the internals of ODE models and their CVODES integration
 * (solvers/ode.c), shared with the modules that build on them — forward
 * sensitivities (sensitivity/forward.c) attach to a solve through hooks
 * instead of copying the integration loop. */
#ifndef COTANGENT_SOLVERS_ODE_INTERNAL_H
#define COTANGENT_SOLVERS_ODE_INTERNAL_H

#include <cvodes/cvodes.h>
#include <nvector/nvector_serial.h>
#include <sundials/sundials_context.h>
#include <sundials/sundials_linearsolver.h>
#include <sundials/sundials_matrix.h>
#include <sundials/sundials_nonlinearsolver.h>

#include "cotangent/ode.h"
#include "sun_check.h"

/* A model function and the positions of its named inputs "t", "y", "p"
 * (and a direction "d_y"); -1 where absent. */
typedef struct ct_bound_fun {
  ct_fun *f;
  long t, y, p, dy;
} ct_bound_fun;

/* Whether a model's functions are compiled (ct_ode_jit, ct_dae_jit) and
 * with which options; `cc` and `cflags` are the model's own copies, which
 * opts points to. Zeroed: interpreted. */
typedef struct ct_model_jit {
  int on;
  ct_jit_options opts;
  char *cc, *cflags;
} ct_model_jit;

/* Compiles f with the model's options when the model is compiled (j->on);
 * CT_OK and nothing done otherwise. For the functions that sensitivity
 * and adjoint problems build from a model, before they size their work. */
int ct_model_jit_fun(ct_context *ctx, const ct_model_jit *j, ct_fun *f);

/* Compiles the model functions fs[0..n) (NULL entries skipped) and, once
 * all are compiled, records opts (NULL: defaults) in *j. The first that
 * stays on the interpreter (no compiler: one warning) ends it: the model
 * stays interpreted, j->on 0, CT_OK. A second call does nothing. */
int ct_model_jit_all(ct_context *ctx, ct_model_jit *j, const ct_jit_options *opts,
                     ct_fun *const *fs, size_t n);

/* Frees the copies *j holds and zeroes it. */
void ct_model_jit_clear(ct_context *ctx, ct_model_jit *j);

/* The model: immutable once ct_ode_new returns (but for ct_ode_jit). */
struct ct_ode {
  ct_context *ctx;
  size_t n, np, nroots;
  ct_bound_fun rhs, jac, jvp, y0, roots;
  ct_sparsity *pattern; /* df/dy, CSC */
  long mu, ml;          /* bandwidths of the pattern */
  size_t work;          /* doubles the largest evaluation needs */
  ct_bound_fun rhs_e;   /* split (IMEX) models: "fe"; rhs is then "fi" */
  int has_cb;           /* 1: a callback model (ct_ode_new_callbacks): the
                           ct_bound_fun members are empty, cb holds it */
  ct_ode_callbacks cb;  /* its jac_pattern is `pattern` */
  ct_model_jit jit;     /* compiled by ct_ode_jit */
};

/* CT_OK for a model made of AD functions; for a callback model,
 * CT_ERR_ARG saying that `what` (e.g. "forward sensitivities") needs an AD
 * model and which callbacks a future version would use (`needs`). */
int ct_ode_require_ad(ct_context *ctx, const ct_ode *m, const char *what,
                      const char *needs);

/* What every CVODES callback of one solve needs (CVODES' user data). */
typedef struct ct_ode_run {
  ct_context *ctx;
  const ct_ode *m;
  const double *p;
  double *work;
  double *jac_vals;   /* nnz: the Jacobian's nonzeros, CSC order */
  double t_buf;
  char cause[256];    /* set by a callback that fails */
  char sundials[256]; /* SUNDIALS' own last error message */
  void *ext;          /* an extension's state (the hooks' ud), else NULL */
  struct ct_dense_stepper *dense; /* one-step driving (ode.c), else NULL */
} ct_ode_run;

/* Records in r->cause that model function `what` (e.g. "right-hand side")
 * met a guard that flipped at time t (ct_fun_eval returned CT_RETRACE): the
 * solve then stops with CT_ERR_SOLVER rather than follow a stale branch. */
void ct_ode_retrace_cause(ct_ode_run *r, const char *what, double t);

/* 0 when the n numbers v are finite; else records in r->cause that `what`
 * (e.g. "Jacobian") is NaN or infinite in which component at t, and
 * returns 1 (recoverable: CVODES retries with a smaller step). */
int ct_ode_check_finite(ct_ode_run *r, const char *what, const double *v, size_t n,
                        double t);

/* A user callback's return value `rc` for CVODES (callback models): 0
 * stays 0; otherwise r->cause names the callback `name` and the time t, and
 * a positive value stays recoverable (1), a negative one does not (-1). */
int ct_ode_user_status(ct_ode_run *r, const char *name, int rc, double t);

/* A failure's cause in plain words when the linear solver's last flag
 * `lsflag` shows a singular Newton matrix I - gamma J (conv_fail: the
 * nonlinear iteration failed; setup_fail: the linear-solver setup did) and
 * no callback failure `found` explains it; NULL otherwise. */
const char *ct_ode_singular_cause(int conv_fail, int setup_fail, long lsflag,
                                  const char *found);

/* The CVODES objects of one solve; ct_ode_solve_into frees them all,
 * including those an extension adds (sensitivity vectors, solver). */
typedef struct ct_cvode_set {
  SUNContext sun;
  N_Vector y, atol;
  SUNMatrix A;
  SUNLinearSolver LS;
  SUNNonlinearSolver NLS, NLS_sens;
  N_Vector *yS; /* n_yS vectors from N_VCloneVectorArray */
  int n_yS;
  void *cv;
  /* An extension's own objects (adjoints: quadratures, backward states
   * and their linear solver), freed after CVODES like the rest. */
  N_Vector ext_v[4];
  SUNMatrix A_b;
  SUNLinearSolver LS_b;
  /* How the integration advances to the next output time: NULL is
   * CVode(..., CV_NORMAL); an extension's setup hook may set it (adjoints:
   * CVodeF). Returns the CVODES flag, the time reached in *t. */
  int (*advance)(ct_ode_run *r, struct ct_cvode_set *c, double tout, double *t);
  /* advance's one-step form, for progress reporting (adjoints: CVodeF in
   * CV_ONE_STEP mode), on step_mem; NULL: progress is refused. */
  const struct ct_step_ops *step_ops;
  void *step_mem;
} ct_cvode_set;

/* Extension points of a solve. Each may be NULL. r->ext is `ud`.
 * - setup: after CVODES is set up (y(t0) in c->y, tolerances, linear
 *   solver), before the first step; a negative status aborts the solve.
 * - output: after each output is stored in res (its index is
 *   res->n_out - 1), including the initial one and a stopping root.
 * - finish: once integration has ended (or setup failed), while c->cv is
 *   still alive (it may be NULL), before the CVODES objects are freed. */
typedef struct ct_ode_hooks {
  void *ud;
  int (*setup)(ct_ode_run *r, ct_cvode_set *c, const ct_ode_options *o);
  int (*output)(ct_ode_run *r, ct_cvode_set *c, const ct_ode_result *res);
  void (*finish)(ct_ode_run *r, ct_cvode_set *c);
} ct_ode_hooks;


/* ct_ode_solve into a caller-provided, zeroed result (not freed here:
 * release it with ct_ode_result_clear whatever the status), with optional
 * hooks. Returns like ct_ode_solve; res->status is set for CT_OK and
 * CT_ERR_SOLVER (the result then holds everything up to the failure). */
int ct_ode_solve_into(ct_context *ctx, const ct_ode *m, const double *p,
                      const double *y0, const double *tout, size_t n_tout,
                      const ct_ode_options *opts, const ct_ode_hooks *hooks,
                      ct_ode_result *res);

/* Frees what a result holds (not the struct itself) and zeroes it. */
void ct_ode_result_clear(ct_context *ctx, ct_ode_result *res);

/* ---- Dense output (ode.c), for CVODES and ARKODE ---- */

/* How step-by-step driving (dense output, progress) works an integrator:
 * one internal step toward tout (CV_ONE_STEP, ARK_ONE_STEP, IDA_ONE_STEP),
 * the interpolant's k-th derivative at t, the step count, the current
 * time, and the degree of the last step's interpolant. Flags are CVODES'
 * (ARKODE's and IDAS' coincide: 0 success, 2 root, negative failure).
 * `output`, when set, gives an output at t as the normal mode does (IDAS:
 * IDAGetSolution, y and y'); else dky with k = 0 does. */
typedef struct ct_step_ops {
  int (*one_step)(void *mem, double tout, N_Vector y, double *t);
  int (*dky)(void *mem, double t, int k, N_Vector out);
  long (*n_steps)(void *mem);
  double (*current_time)(void *mem);
  int (*degree)(void *mem);
  const char *name; /* "CVODES CVode" or "ARKODE ARKStepEvolve", for messages */
  int (*output)(void *mem, double t, N_Vector y);
} ct_step_ops;

/* The flag ct_stepper_advance returns when the progress callback asked to
 * stop (the cause then reads "interrupted"); no SUNDIALS flag is this low. */
#define CT_STEP_INTERRUPTED (-1000)
/* 1 for the statuses after which a solve keeps its partial result. */
#define CT_SOLVE_STOPPED(rc) ((rc) == CT_ERR_SOLVER || (rc) == CT_ERR_INTERRUPTED)

typedef struct ct_ode_dense ct_ode_dense;
typedef struct ct_dense_stepper ct_dense_stepper;

/* What step-by-step driving needs: the integrator (ops, mem), y(t0) in y
 * (also the template of work vectors), the per-interval step limit (0:
 * SUNDIALS' 500), the progress callback (NULL: none) told min(t_n,
 * t_final) after each step, and the buffers failures are described in. */
typedef struct ct_step_setup {
  const ct_step_ops *ops;
  void *mem;
  N_Vector y;
  long max_steps;
  int (*progress)(double t, void *ud);
  void *progress_ud;
  double t_final;
  char *cause;
  size_t cause_size;
  char *sundials;
  size_t sundials_size;
} ct_step_setup;

/* Starts driving an integrator one step at a time; with `dense` non-NULL
 * every step's interpolant is recorded into a new *dense (owned by the
 * caller, free it with ct_dense_free) that starts with y(t0). *out is set
 * as soon as it exists, also on failure: free it with ct_stepper_free. */
int ct_stepper_new(ct_context *ctx, const ct_step_setup *s, ct_ode_dense **dense,
                   ct_dense_stepper **out);
/* Does what the normal mode would — the same steps, outputs, roots in
 * order, and per-call step limit — one step at a time, recording and
 * reporting each step; CT_STEP_INTERRUPTED when the progress callback says
 * stop. Returns the integrator's flag, the time returned in *t. */
int ct_stepper_advance(ct_dense_stepper *st, double tout, N_Vector y, double *t);
void ct_stepper_free(ct_dense_stepper *st);
/* The k-th derivative at t from interpolants d of a solve that reached
 * t_reached (see ct_ode_result_eval); CT_ERR_ARG for no d, bad t or k. */
int ct_dense_eval(ct_context *ctx, const ct_ode_dense *d, double t_reached, double t,
                  int k, double *y);
void ct_dense_free(ct_context *ctx, ct_ode_dense *d);

/* Starts step-by-step driving of a solve (r->dense) when o->dense_output
 * or o->progress is set: res->dense gets y(t0) from y and every step with
 * dense output. CT_OK and nothing done when both are off. */
int ct_ode_dense_start(ct_ode_run *r, ct_ode_result *res, const ct_step_ops *ops,
                       void *mem, const ct_ode_options *o, N_Vector y, double t_final);
/* ct_stepper_advance for the solve's r->dense. */
int ct_ode_dense_advance(ct_ode_run *r, double tout, N_Vector y, double *t);
/* Ends the solve's stepping (frees r->dense; the result keeps the data). */
void ct_ode_dense_stop(ct_ode_run *r);

/* CVodeF one step at a time (CV_ONE_STEP), for adjoints' forward phase:
 * ct_cvodef_step_ops on a ct_cvodef_mem, which stores CVodeF's checkpoint
 * count in *n_checkpoints after each step. */
typedef struct ct_cvodef_mem {
  void *cv;
  long *n_checkpoints;
} ct_cvodef_mem;
extern const ct_step_ops ct_cvodef_step_ops;

/* Progress of a backward phase (CVodeB, IDASolveB), reported from the
 * backward right-hand side or residual: ct_backward_progress_step(bp, t)
 * at the start of each call (at time t) tells `progress` about a step
 * completed since the last call. BDF evaluates f only at a step's new
 * time, so the previous call's time is where that step ended; capped at
 * tout (the backward integrator may step past it and interpolate). Set
 * mem (the backward integrator's memory) once it exists, tout before each
 * backward solve, nst = 0 after each reinitialisation; n_steps NULL reads
 * CVODES' step count. Returns 0, or -1 (stop, interrupted set) when the
 * callback says stop. */
typedef struct ct_backward_progress {
  int (*progress)(double t, void *ud);
  void *ud;
  void *mem;
  long (*n_steps)(void *mem);
  long nst;
  double t_rhs, tout;
  int interrupted;
} ct_backward_progress;
int ct_backward_progress_step(ct_backward_progress *bp, double t);

/* Writes "t = <t>: interrupted" into `message` and records it in the
 * context as CT_ERR_INTERRUPTED, which it returns. */
int ct_interrupted(ct_context *ctx, char *message, size_t size, double t);

/* ---- Shared with the ARKODE integration (solvers/arkode.c) ---- */

/* ode.c's pieces that ARKODE reuses: its callbacks have CVODES'
 * signatures, which are ARKODE's too. ct_ode_shared_get fills the table. */
typedef struct ct_ode_shared {
  ct_ode_linsol (*pick_linsol)(const ct_ode *m);
  int (*initial_values)(ct_ode_run *r, const double *y0, double *out);
  int (*result_init)(ct_context *ctx, const ct_ode *m, size_t cap, ct_ode_result *res);
  void (*store_output)(ct_ode_result *res, double t, const double *y);
  void (*describe_failure)(ct_ode_result *res, const char *flag_cause,
                           const char *found, const char *sundials);
  int (*eval_at)(ct_ode_run *r, const ct_bound_fun *b, double t, const double *y,
                 const double *v, double *out);
  int (*check_finite)(ct_ode_run *r, const char *what, const double *v, size_t n,
                      double t);
  int (*rhs)(sunrealtype t, N_Vector y, N_Vector ydot, void *ud);
  int (*root)(sunrealtype t, N_Vector y, sunrealtype *g, void *ud);
  int (*jac)(sunrealtype t, N_Vector y, N_Vector fy, SUNMatrix J, void *ud,
             N_Vector t1, N_Vector t2, N_Vector t3);
  int (*jtimes)(N_Vector v, N_Vector Jv, sunrealtype t, N_Vector y, N_Vector fy,
                void *ud, N_Vector tmp);
  void (*error)(int code, const char *module, const char *function, char *msg,
                void *ud);
} ct_ode_shared;
void ct_ode_shared_get(ct_ode_shared *out);

/* A split right-hand side (outputs "fe", "fi") into m->rhs_e and m->rhs
 * (then "fi"); CT_ERR_ARG naming what is missing or wrongly sized. */
int ct_ode_split_fill(ct_context *ctx, ct_ode *m, const ct_fun *rhs);

/* ct_ode_solve_into for the ARKODE methods and split models, with options
 * already checked; hooks (sensitivities, adjoints) are refused. */
int ct_arkode_solve_into(ct_context *ctx, const ct_ode *m, const double *p,
                         const double *y0, const double *tout, size_t n_tout,
                         const ct_ode_options *o, const ct_ode_hooks *hooks,
                         ct_ode_result *res);

#endif /* COTANGENT_SOLVERS_ODE_INTERNAL_H */
