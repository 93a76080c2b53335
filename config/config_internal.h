/* Private: the pieces of config/ (YAML configs, the expression language,
 * result writers, the `cotangent` command) and the interfaces between them.
 *
 *   diag.c     located errors, "did you mean" suggestions
 *   yaml.c     libyaml -> a node tree that remembers file:line:column
 *   schema.c   the tree -> a typed ct_cfg (every key checked, --set applied)
 *   expr.c     expression strings -> AST -> AD-core ct_var (ct_graph)
 *   model.c    ct_cfg_model -> ct_ode / ct_dae and observables functions
 *   analyses.c ct_cfg_analysis -> runs through ct_ode/ct_fsa/ct_asa/ct_steady
 *   data.c     CSV data files for objectives
 *   writers.c  atomic files, JSON (cJSON), CSV
 *   svg.c      our small SVG plot writer
 *   progress.c the progress bar / periodic lines on stderr
 *   cli.c      the `cotangent` command (run, check, codegen)
 *
 * Locations are 1-based lines and columns, as editors show them. Every
 * error about a config is recorded with CT_ERROR(ctx, CT_ERR_CONFIG, ...)
 * and its message starts with "FILE:LINE:COLUMN: " (ct_cfg_error does
 * this); an expression error adds the expression on its own line and a
 * caret under the column. */
#ifndef COTANGENT_CONFIG_INTERNAL_H
#define COTANGENT_CONFIG_INTERNAL_H

#include <signal.h>
#include <stddef.h>
#include <stdio.h>

#include "cotangent/ad.h"
#include "cotangent/core.h"

/* ---- Locations and errors (diag.c) ---------------------------------------- */

typedef struct ct_cfg_loc {
  const char *file; /* borrowed from the document (ct_cfg_doc.path) */
  int line, col;    /* 1-based; 0 when unknown */
} ct_cfg_loc;

/* Records CT_ERR_CONFIG with the message "FILE:LINE:COL: <fmt...>" in ctx
 * and returns CT_ERR_CONFIG. */
int ct_cfg_error(ct_context *ctx, ct_cfg_loc loc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* The known word closest to `word` (edit distance at most 2, or 1 for words
 * of up to 4 letters), or NULL: for "did you mean 'rtol'?". */
const char *ct_cfg_closest(const char *word, const char *const *known, size_t n_known);

/* ---- The YAML tree (yaml.c) -------------------------------------------------- */

typedef enum ct_cfg_kind {
  CT_CFG_SCALAR = 0, /* text (a number, a word, an expression...) */
  CT_CFG_MAP = 1,    /* keys -> values, in file order, keys unique */
  CT_CFG_SEQ = 2     /* items */
} ct_cfg_kind;

typedef struct ct_cfg_node {
  ct_cfg_kind kind;
  ct_cfg_loc loc;             /* where the node starts */
  char *text;                 /* SCALAR: its text (plain or unquoted) */
  int quoted;                 /* SCALAR: it was written in quotes */
  int text_col;               /* SCALAR: column of the text's first character
                                 (after a quote), for carets in expressions */
  size_t n;                   /* MAP: pairs; SEQ: items */
  char **keys;                /* MAP: n keys */
  ct_cfg_loc *key_locs;       /* MAP: where each key is */
  struct ct_cfg_node **items; /* MAP: n values; SEQ: n items */
} ct_cfg_node;

/* A parsed document: owns every node and string, allocated through the
 * context it was parsed with (which must outlive it; edit it only with
 * that context). */
typedef struct ct_cfg_doc {
  char *path; /* as given (for messages) */
  ct_cfg_node *root; /* NULL for an empty document */
} ct_cfg_doc;

/* Parses YAML text (one document; anchors and aliases are resolved, a
 * duplicate key is an error at the second one) into a tree. `name` is the
 * file name used in messages. Syntax errors: CT_ERR_CONFIG with libyaml's
 * problem and its location. */
int ct_cfg_parse(ct_context *ctx, const char *name, const char *text, size_t len,
                 ct_cfg_doc **out);
/* Reads and parses a file (CT_ERR_CONFIG naming the file when it cannot be
 * read: the command exits 2 for it). */
int ct_cfg_parse_file(ct_context *ctx, const char *path, ct_cfg_doc **out);
void ct_cfg_doc_free(ct_cfg_doc *doc);
/* A map's value for `key`, or NULL. */
const ct_cfg_node *ct_cfg_get(const ct_cfg_node *map, const char *key);

/* A hash index of positions in a caller's array of strings, for finding
 * names and duplicates in O(1) in large maps and models (zero-initialise;
 * the strings stay the caller's and must not change while indexed). */
typedef struct ct_cfg_index {
  size_t *slots; /* 0 empty, else position + 1 */
  size_t cap;    /* a power of two, or 0 */
  size_t n;
} ct_cfg_index;
/* The position of `name` in strings, or -1 when it is not indexed. */
long ct_cfg_index_find(const ct_cfg_index *ix, const char *const *strings, const char *name);
/* Indexes strings[pos] (growing the index as needed). */
int ct_cfg_index_add(ct_context *ctx, ct_cfg_index *ix, const char *const *strings, size_t pos);
void ct_cfg_index_free(ct_context *ctx, ct_cfg_index *ix);

/* ---- The typed config (schema.c) ---------------------------------------------- */

/* An expression as written, with where its text starts (the caret's
 * reference). A number written as a number is an expression too. */
typedef struct ct_cfg_expr {
  char *text;
  ct_cfg_loc loc;
} ct_cfg_expr;

typedef struct ct_cfg_param {
  char *name;
  ct_cfg_loc loc;
  double value;         /* nominal */
  double lower, upper;  /* bounds; -inf / +inf when not given */
  int log_scale;        /* scale: log */
} ct_cfg_param;

/* A named expression: a state (expr: its initial value, rhs: its equation),
 * an assignment or observable (expr), an algebraic variable (expr: its
 * initial guess, rhs: the residual). */
typedef struct ct_cfg_symbol {
  char *name;
  ct_cfg_loc loc;
  ct_cfg_expr expr;
  ct_cfg_expr rhs;
} ct_cfg_symbol;

typedef struct ct_cfg_model {
  char *name;
  ct_cfg_param *params;
  size_t n_params;
  ct_cfg_symbol *states;      /* expr = initial value, rhs = d/dt */
  size_t n_states;
  ct_cfg_symbol *assignments; /* expr */
  size_t n_assignments;
  ct_cfg_symbol *observables; /* expr */
  size_t n_observables;
  ct_cfg_symbol *algebraic;   /* expr = initial guess, rhs = residual (0 = rhs) */
  size_t n_algebraic;
} ct_cfg_model;

typedef struct ct_cfg_solver {
  char *method;        /* "bdf" (default), "adams", "erk", "dirk" */
  char *linear_solver; /* "auto" (default), "dense", "band", "klu", "gmres" */
  double rtol, atol;   /* defaults 1e-6, 1e-8 */
  double *atol_v;      /* per state (n_states), or NULL */
  long max_steps;      /* 0: SUNDIALS' default */
  ct_cfg_loc loc;
} ct_cfg_solver;

typedef struct ct_cfg_time {
  double start, end;
  double *output;      /* increasing, within [start, end]; start and end
                          included (added when missing) */
  size_t n_output;
  ct_cfg_loc loc;
} ct_cfg_time;

typedef enum ct_cfg_analysis_type {
  CT_CFG_SIMULATE = 0,
  CT_CFG_FORWARD_SENSITIVITY,
  CT_CFG_ADJOINT_GRADIENT,
  CT_CFG_GRADIENT,
  CT_CFG_STEADY_STATE
} ct_cfg_analysis_type;

typedef enum ct_cfg_objective_kind {
  CT_CFG_OBJ_NONE = 0,
  CT_CFG_OBJ_INTEGRAL, /* {integral: expr} */
  CT_CFG_OBJ_FINAL,    /* {final: expr} */
  CT_CFG_OBJ_DATA      /* {data: {file, observables, sigma}} */
} ct_cfg_objective_kind;

typedef struct ct_cfg_objective {
  ct_cfg_objective_kind kind;
  ct_cfg_expr expr;      /* INTEGRAL, FINAL */
  char *data_file;       /* DATA: resolved relative to the config's folder */
  ct_cfg_loc data_loc;
  char **observables;    /* DATA: columns compared (default: every
                            observable with a column in the file) */
  size_t n_observables;
  double sigma;          /* DATA: a constant sigma (default 1) unless the
                            file has sigma columns */
  ct_cfg_loc loc;
} ct_cfg_objective;

/* steady_state: how the steady state is found (newton: {...},
 * fallback: {...}); 0 / NULL where not given (the library's defaults). */
typedef struct ct_cfg_steady {
  double ftol;          /* newton.ftol */
  long max_iters;       /* newton.max_iters */
  char *linear_solver;  /* newton.linear_solver */
  char *strategy;       /* newton.strategy */
  char *solver;         /* newton.solver: kinsol or snes */
  char *petsc_options;  /* newton.petsc_options (snes, petsc) */
  double t_max;         /* fallback.t_max */
  ct_cfg_loc loc;       /* the analysis */
} ct_cfg_steady;

typedef struct ct_cfg_analysis {
  ct_cfg_analysis_type type;
  ct_cfg_loc loc;
  char *name;            /* optional "name:", else "<type>" or "<type>_<k>" */
  char **parameters;     /* default: all */
  size_t n_parameters;
  ct_cfg_objective objective;
  int check_fd;          /* check: finite_difference */
  char *method;          /* gradient: "forward", "adjoint",
                            "finite_difference", "auto"; steady_state's
                            gradient: "adjoint" (default) or "forward" */
  ct_cfg_steady steady;  /* steady_state */
} ct_cfg_analysis;

typedef struct ct_cfg {
  ct_cfg_doc *doc;       /* the tree after --set (owned) */
  char *dir;             /* the config's folder (for data files) */
  ct_cfg_model model;
  ct_cfg_solver solver;
  ct_cfg_time time;
  ct_cfg_analysis *analyses;
  size_t n_analyses;
} ct_cfg;

/* Applies "key.path=value" overrides to a tree (a path through maps, with
 * numeric indices into sequences: "analyses.0.check=none"; the value is
 * parsed as YAML, so "time.output=[1, 2, 3]" works). An unknown path is
 * CT_ERR_CONFIG naming the --set and suggesting the closest key. */
int ct_cfg_apply_set(ct_context *ctx, ct_cfg_doc *doc, const char *assignment);

/* Validates the tree against the schema (docs/config.md) and builds the
 * typed config: unknown keys (with the closest known one), wrong types,
 * missing required keys, duplicate or undefined names, negative
 * tolerances, bad time spans — each CT_ERR_CONFIG at its location. Takes
 * ownership of `doc` (freed on failure too). Expressions are not parsed
 * here (model.c does that). */
int ct_cfg_from_doc(ct_context *ctx, ct_cfg_doc *doc, ct_cfg **out);
/* parse_file + apply_set for each of sets[0..n_sets) + from_doc. */
int ct_cfg_load(ct_context *ctx, const char *path, const char *const *sets,
                size_t n_sets, ct_cfg **out);
void ct_cfg_free(ct_cfg *cfg);

/* ---- Expressions (expr.c) --------------------------------------------------------- */

typedef struct ct_expr ct_expr; /* a parsed expression (AST) */

/* Parses src->text: numbers (1, 2.5, 1e-3, .5), names, + - * / ^ (right
 * associative, binding tighter than unary minus: -x^2 = -(x^2)), unary
 * minus and plus, parentheses, calls f(a, b), comparisons < <= > >= == !=,
 * `and`, `or`, `not`, if(cond, a, b), piecewise(v1, c1, v2, c2, ..., v_else).
 * Syntax errors: CT_ERR_CONFIG "FILE:LINE:COL: <what>\n  <text>\n  <caret>"
 * with the column of the offending character. */
int ct_expr_parse(ct_context *ctx, const ct_cfg_expr *src, ct_expr **out);
void ct_expr_free(ct_expr *e);

/* Calls fn(name, loc, ud) for every free name the expression uses (not the
 * function names of calls), in order of appearance, with repeats. fn
 * returning nonzero stops the walk and is returned. */
int ct_expr_names(const ct_expr *e,
                  int (*fn)(const char *name, ct_cfg_loc loc, void *ud), void *ud);

/* What a name means when an expression is emitted: look it up (1 found and
 * *out set, 0 unknown). `t` is just a name the caller binds. */
typedef struct ct_expr_scope {
  int (*lookup)(void *ud, const char *name, ct_var *out);
  void *ud;
  const char *const *known; /* for "did you mean" on unknown names; may be NULL */
  size_t n_known;
} ct_expr_scope;

/* Emits the expression into graph g (names resolved through scope,
 * functions: every AD-core function by its name without "ct_": exp, log,
 * sin, ..., pow, atan2, min, max, hypot, abs, sign, floor, ceil, erf...).
 * Unknown names or functions, wrong argument counts: CT_ERR_CONFIG with
 * the caret at the name. */
int ct_expr_emit(ct_context *ctx, const ct_expr *e, const ct_expr_scope *scope,
                 ct_graph *g, ct_var *out);
/* Names of the functions ct_expr_emit knows (NULL-terminated). */
extern const char *const ct_expr_functions[];

/* Evaluates a constant expression (numbers, functions and the constants
 * pi and e; no other names) to a finite number, e.g. "1e-3" or "2*pi". */
int ct_expr_eval_const(ct_context *ctx, const ct_cfg_expr *src, double *out);
/* 1 for the words a model may not use as a name: the constants pi and e
 * (ct_expr_emit never asks the scope about them, ct_expr_names skips them)
 * and the operators and, or, not. */
int ct_expr_is_reserved(const char *name);

/* ---- The model as AD functions (model.c) ------------------------------------------- */

/* A config's model compiled to AD functions and a solver model. The state
 * vector y is the states in file order, then the algebraic variables. */
typedef struct ct_cfg_built {
  ct_context *ctx;
  const ct_cfg_model *model; /* borrowed: must outlive this */
  size_t n, n_diff, np, n_obs; /* y's size, its differential part, p, observables */
  const char **y_names;      /* n names (borrowed from the model) */
  ct_fun *rhs;  /* ODE: "t", "y", "p" -> "f"; NULL for a DAE */
  ct_fun *res;  /* DAE: "t", "y", "yp", "p" -> "F" (F = yp - rhs for states,
                   the residual for algebraic variables); NULL for an ODE */
  ct_fun *y0;   /* "p" -> "y0" (n: initial values and algebraic guesses) */
  ct_fun *obs;  /* "t", "y", "p" -> "obs" (n_obs); NULL without observables */
  struct ct_ode *ode; /* the ODE model (NULL for a DAE) */
  struct ct_dae *dae; /* the DAE model (NULL for an ODE) */
  struct ct_cfg_built_priv *priv;
} ct_cfg_built;

/* Parses every expression, checks names (undefined names with a caret,
 * names defined twice) and cycles among assignments and observables (the
 * names in the cycle, at the first one's location), emits the functions
 * (named expressions in dependency order) and makes the ct_ode / ct_dae.
 * `m` is borrowed. */
int ct_cfg_model_build(ct_context *ctx, const ct_cfg_model *m, ct_cfg_built **out);
void ct_cfg_built_free(ct_cfg_built *b);
/* A scalar function of the model's symbols: inputs "t", "y", "p"; output
 * `out_name` (for objectives: "g", "phi"). */
int ct_cfg_model_scalar(ct_context *ctx, const ct_cfg_built *b, const ct_cfg_expr *src,
                        const char *out_name, ct_fun **out);
/* The ODE model with an integral objective's integrand g appended as one
 * more state q' = g(t, y, p), q(t0) = 0 (n + 1 states; ODE models only), so
 * that forward sensitivities give dJ/dp = dq(T)/dp. */
int ct_cfg_model_integral_ode(ct_context *ctx, const ct_cfg_built *b, const ct_cfg_expr *src,
                              struct ct_ode **out);
/* Where a state/algebraic variable (its index into y) or an observable (its
 * index into "obs", *is_observable = 1) called `name` is; -1 otherwise. */
long ct_cfg_model_lookup(const ct_cfg_built *b, const char *name, int *is_observable);
/* The data misfit h(t, y, p, d) = 1/2 sum_j d[m+j] (o_j - d[j])^2 over the
 * named states or observables o_j (d: m values, then m weights 1/sigma^2,
 * 0 for a missing value); output "h". */
int ct_cfg_model_misfit(ct_context *ctx, const ct_cfg_built *b, const char *const *names,
                        size_t m, ct_fun **out);

/* What `cotangent check` prints about a model. */
typedef struct ct_cfg_model_info {
  size_t n_states, n_algebraic, n_params, n_assignments, n_observables;
  size_t n_equations, n_nodes, jac_nnz;
  const char *linear_solver; /* what "auto" picks */
} ct_cfg_model_info;
/* Fills info (the linear solver from a solve with the single time t0). */
int ct_cfg_model_summary(ct_context *ctx, const ct_cfg_built *b, double t0,
                         ct_cfg_model_info *info);

/* ---- Running the analyses (analyses.c) --------------------------------------------- */

/* The analyses of a config, prepared: parameters resolved, objective
 * functions built, data files read and checked (times inside the span,
 * columns present). Everything wrong in a config is found here, before
 * anything runs. */
typedef struct ct_cfg_plan ct_cfg_plan;
/* cfg and b are borrowed and must outlive the plan. */
int ct_cfg_plan_new(ct_context *ctx, const ct_cfg *cfg, const ct_cfg_built *b,
                    ct_cfg_plan **out);
void ct_cfg_plan_free(ct_cfg_plan *plan);

typedef struct ct_cfg_run_opts {
  const char *outdir;        /* the result files go here (created) */
  const char *config_path;   /* for summary.json */
  struct ct_progress *progress; /* NULL: no progress */
  volatile sig_atomic_t *interrupt; /* nonzero stops the run (SIGINT); may be NULL */
  FILE *table;               /* the summary table (stdout); NULL: none */
} ct_cfg_run_opts;

typedef struct ct_cfg_run_outcome {
  size_t n_done, n_failed;   /* analyses finished; failed (0 or 1: a failure
                                stops the run) */
  int interrupted;           /* the failure was an interruption */
  char message[1024];        /* "<analysis>: t = ...: <cause>" */
} ct_cfg_run_outcome;

/* Runs the analyses in order until one fails or is interrupted, then writes
 * what was computed into OUTDIR (summary.json, trajectory.csv,
 * sensitivities.csv, steady_state.csv, gradient.csv and their SVG plots)
 * atomically. CT_OK when the files were written (out says whether an
 * analysis failed); negative for an I/O error. */
int ct_cfg_plan_run(ct_context *ctx, ct_cfg_plan *plan, const ct_cfg_run_opts *o,
                    ct_cfg_run_outcome *out);

/* ---- The command (cli.c) ------------------------------------------------------------ */

/* `cotangent run|check|codegen ...`: returns the exit status (0 done, 1 an
 * analysis failed, 2 bad usage or config, 130 interrupted). */
int ct_cli_main(int argc, char **argv, FILE *out, FILE *err);

/* ---- Writers (writers.c, svg.c) ------------------------------------------------------ */

/* Writes `path` atomically: emit(f, ud) writes into a temporary file in the
 * same folder, which is flushed, fsync'ed and renamed over `path` only when
 * emit returns CT_OK and every write succeeded; otherwise it is removed and
 * `path` is left as it was. CT_ERR_IO naming the file and errno's text. */
int ct_write_atomic(ct_context *ctx, const char *path,
                    int (*emit)(FILE *f, void *ud), void *ud);
/* mkdir -p. CT_ERR_IO naming the folder. */
int ct_make_dirs(ct_context *ctx, const char *path);
/* snprintf(buf, size, fmt, v) for a format of one double ("%.6g",
 * "%.2f"), always with '.' as the decimal point whatever the locale. */
void ct_fmt_num(char *buf, size_t size, const char *fmt, double v);

/* One curve of a plot. */
typedef struct ct_svg_series {
  const char *label;
  const double *x, *y;
  size_t n;
  int markers;   /* 1: points (data), 0: a line */
} ct_svg_series;

typedef struct ct_svg_plot {
  const char *title, *xlabel, *ylabel;
  const ct_svg_series *series;
  size_t n_series;
  int log_x, log_y; /* logarithmic axes (non-positive values skipped) */
} ct_svg_plot;

/* A line plot (axes with round ticks, legend, colors that survive
 * grayscale printing), standalone SVG 1.1 that any browser opens. NaN/Inf
 * points are gaps. */
int ct_svg_line_plot(FILE *f, const ct_svg_plot *plot);
/* A horizontal bar chart of values[i] labelled labels[i] (signed values:
 * bars to the left for negatives). */
int ct_svg_bar_chart(FILE *f, const char *title, const char *const *labels,
                     const double *values, size_t n);

/* ---- Data files (data.c) ---------------------------------------------------------- */

/* A data table: a time column and named value columns, plus optional
 * sigma columns ("sigma_<name>" or "<name>_sigma"). Missing values (an
 * empty cell) are NaN in `values` and skipped by objectives. */
typedef struct ct_cfg_data {
  char *path;
  size_t n_rows, n_cols;   /* rows of data; value columns (time excluded) */
  char **names;            /* n_cols column names */
  double *t;               /* n_rows times, nondecreasing */
  double *values;          /* n_rows * n_cols, row-major */
  double *sigma;           /* n_rows * n_cols, or NULL when no sigma columns;
                              NaN where a row or column gives no sigma */
  int *line;               /* n_rows: the file line of each row (messages) */
  ct_context *ctx;         /* the context that allocated it (for _free) */
} ct_cfg_data;

/* Reads a CSV data file (comma separated, a header line, first column
 * "t" or "time", '#' comment lines, blank lines ignored). Errors are
 * CT_ERR_CONFIG "FILE:LINE:COL: ..." for a missing file (at the config
 * location `from`), a malformed number, a wrong number of cells, NaN or
 * Inf written in the file, decreasing times, a non-positive sigma. */
int ct_cfg_data_read(ct_context *ctx, const char *path, ct_cfg_loc from,
                     ct_cfg_data **out);
void ct_cfg_data_free(ct_cfg_data *d);

/* ---- Progress (progress.c) ---------------------------------------------------------- */

/* Progress of a run on stderr: a redrawn bar with the analysis, the
 * integration time reached and an ETA when stderr is a terminal, plain
 * lines at most every few seconds otherwise, nothing when quiet. */
typedef struct ct_progress ct_progress;
ct_progress *ct_progress_new(FILE *out, int quiet);
/* A new phase: "forward_sensitivity (2/3)" integrating from t0 to t1. */
void ct_progress_begin(ct_progress *p, const char *what, double t0, double t1);
/* The integration reached t (cheap: redraws at most ~10 times a second). */
void ct_progress_update(ct_progress *p, double t);
/* The phase ended: its outcome ("done", "failed at t = ...") on its own line. */
void ct_progress_end(ct_progress *p, const char *outcome);
void ct_progress_free(ct_progress *p);

#endif /* COTANGENT_CONFIG_INTERNAL_H */
