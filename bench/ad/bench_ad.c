/* bench/ad: Cotangent's AD against hand-written C and ADOL-C.
 *
 *   bench_ad [--smoke] [--out build/bench/ad.json] [--md PATH] [--case NAME]...
 *
 * For each problem (problems.h): the time of f, JVP (1 direction), VJP
 * (1 seed), colored sparse Jacobian and Hessian-vector product, on the
 * interpreter and on the JIT, as ratios to the hand-written C f; ADOL-C's
 * VJP and sparse Jacobian on its tape; JIT compile times; peak RSS. Every
 * AD result is first checked against the hand-written derivatives (to
 * 1e-10 relative, see check()); a mismatch makes the run fail.
 *
 * Each case runs in a child process (its own peak RSS, and a crash in one
 * case does not hide the others) that sends its measurements to the parent
 * as rows; the parent prints the table and writes the JSON rows
 * {case, metric, value, unit} and a Markdown version of the table.
 *
 * --smoke: one call per measurement instead of medians of 7 samples of
 * ~50 ms; the checks are the same. Timings are never asserted. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cotangent/ad.h"
#include "peer.h"
#include "report.h"
#include "problems.h"

#define REL_TOL 1e-10

/* ---- Options ------------------------------------------------------------------- */

typedef struct options {
  int smoke;
  int fork;             /* run each case in a child process */
  int perturb;          /* corrupt the reference a little: the check must fail */
  int samples;          /* timing samples per measurement (median) */
  double sample_s;      /* target length of one sample */
  const char *out, *md;
  const char *cases[8];
  size_t n_cases;
} options;

static void usage(FILE *to) {
  fprintf(to,
          "usage: bench_ad [--smoke] [--out FILE.json] [--md FILE.md] [--case NAME]...\n"
          "                [--samples N] [--sample-ms MS] [--no-fork] [--perturb-reference]\n"
          "cases:");
  for (const char *const *c = bench_problem_names; *c; c++) fprintf(to, " %s", *c);
  fprintf(to, "\n");
}

/* ---- Rows (bench/common/report.h) ------------------------------------------------ */

/* A row from a child; non-finite values (a measurement that did not
 * happen) are left out. */
static void emit(bench_sink *k, const char *metric, double value, const char *unit) {
  if (isfinite(value)) bench_emit(k, metric, value, unit);
}

static void emitf(bench_sink *k, double value, const char *unit, const char *fmt, ...)
    CT_PRINTF_LIKE(4, 5);
static void emitf(bench_sink *k, double value, const char *unit, const char *fmt, ...) {
  char metric[64];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(metric, sizeof metric, fmt, ap);
  va_end(ap);
  emit(k, metric, value, unit);
}


/* ---- Timing ------------------------------------------------------------------------ */

typedef void (*body_fn)(void *arg, size_t reps);

/* Calls per sample so that one sample takes about `sample_s` (1 in smoke
 * mode). */
static size_t calibrate(const options *o, body_fn body, void *arg) {
  if (o->smoke) return 1;
  body(arg, 1); /* warm caches and lazy binding */
  size_t reps = 1;
  double t;
  for (;;) { /* calibrate on at least 1/10 of a sample */
    double t0 = bench_now();
    body(arg, reps);
    t = bench_now() - t0;
    if (t >= o->sample_s / 10 || reps > ((size_t)1 << 40)) break;
    reps *= t > 0 ? (size_t)fmin(100.0, fmax(2.0, o->sample_s / 10 / t * 1.2)) : 100;
  }
  return (size_t)fmax(1.0, o->sample_s / (t / (double)reps));
}

static double sample(body_fn body, void *arg, size_t reps) {
  double t0 = bench_now();
  body(arg, reps);
  return (bench_now() - t0) / (double)reps;
}

/* A reference to time against: the hand-written f, calibrated once. */
typedef struct reference {
  body_fn body;
  void *arg;
  size_t reps;
} reference;

/* Seconds per call of `body` (median over the samples) and its ratio to
 * the reference: each sample of `body` is paired with a sample of the
 * reference taken just before it, and the ratio is the median of the
 * per-pair ratios, so that a change in the machine's load between
 * measurements cancels out of the ratio. */
static double time_paired(const options *o, const reference *ref, body_fn body, void *arg,
                          double *ratio) {
  size_t reps = calibrate(o, body, arg);
  double times[64], ratios[64];
  int ns = o->smoke ? 1 : o->samples < 64 ? o->samples : 64;
  for (int s = 0; s < ns; s++) {
    double tr = sample(ref->body, ref->arg, ref->reps);
    times[s] = sample(body, arg, reps);
    ratios[s] = times[s] / tr;
  }
  *ratio = bench_median(ratios, (size_t)ns);
  return bench_median(times, (size_t)ns);
}

/* Emits <name>.time (ns per call) and <name>.ratio (to the hand f). */
static void measure(bench_sink *k, const options *o, const reference *ref, const char *name,
                    body_fn body, void *arg) {
  double ratio, t = time_paired(o, ref, body, arg, &ratio);
  emitf(k, 1e9 * t, "ns", "%s.time", name);
  emitf(k, ratio, "x hand f", "%s.ratio", name);
}

/* ---- Checks ------------------------------------------------------------------------- */

/* The relative error of `got` against `want`: max over i of
 * |got_i - want_i| / max(|want_i|, 1e-6 ||want||_inf). Entries that cancel
 * to (nearly) zero are measured against the vector's scale instead of
 * their own rounding noise; everything else elementwise. */
static double rel_error(const double *got, const double *want, size_t n) {
  double scale = 0, err = 0;
  for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
  double floor_ = scale > 0 ? 1e-6 * scale : 1e-300;
  for (size_t i = 0; i < n; i++) {
    double e = fabs(got[i] - want[i]) / fmax(fabs(want[i]), floor_);
    if (isnan(e) || isnan(want[i])) return NAN;
    if (e > err) err = e;
  }
  return err;
}

typedef struct checker {
  bench_sink *k;
  int failed;
  int perturb;
} checker;

static void check(checker *c, const char *what, const double *got, const double *want,
                  size_t n) {
  double *ref = malloc((n ? n : 1) * sizeof *ref);
  if (!ref) {
    c->failed = 1;
    return;
  }
  memcpy(ref, want, n * sizeof *ref);
  if (c->perturb && n) { /* 1e-9 relative on the largest entry */
    size_t big = 0;
    for (size_t i = 1; i < n; i++)
      if (fabs(ref[i]) > fabs(ref[big])) big = i;
    ref[big] *= 1 + 1e-9;
  }
  double e = rel_error(got, ref, n);
  free(ref);
  emitf(c->k, isnan(e) ? 1e300 : e, "rel", "check.%s", what);
  if (!(e <= REL_TOL)) {
    fprintf(stderr, "bench_ad: %s: %s differs from the hand-written code: relative error %.3g > %g\n",
            c->k->cs, what, e, REL_TOL);
    c->failed = 1;
  }
}

/* Sparse matrices in coordinates, sorted by (column, row) with repeated
 * positions summed. */
typedef struct entry {
  size_t r, c;
  double v;
} entry;

typedef struct coo {
  entry *e;
  size_t n;
} coo;

static int cmp_entry(const void *a, const void *b) {
  const entry *x = a, *y = b;
  if (x->c != y->c) return x->c < y->c ? -1 : 1;
  return (x->r > y->r) - (x->r < y->r);
}

static void coo_finish(coo *m) {
  qsort(m->e, m->n, sizeof *m->e, cmp_entry);
  size_t k = 0;
  for (size_t q = 0; q < m->n; q++) {
    if (k && m->e[k - 1].r == m->e[q].r && m->e[k - 1].c == m->e[q].c)
      m->e[k - 1].v += m->e[q].v;
    else
      m->e[k++] = m->e[q];
  }
  m->n = k;
}

static int coo_from(coo *m, size_t nnz, const size_t *rows, const size_t *cols,
                    const double *vals) {
  m->n = nnz;
  m->e = malloc((nnz ? nnz : 1) * sizeof *m->e);
  if (!m->e) return -1;
  for (size_t q = 0; q < nnz; q++) m->e[q] = (entry){rows[q], cols[q], vals[q]};
  coo_finish(m);
  return 0;
}

/* The hand-written Jacobian at the problem's point. */
static int coo_hand(coo *m, const bench_problem *pb) {
  size_t n = bench_hand_jac(pb, pb->x, pb->p, NULL, NULL, NULL);
  size_t *r = malloc((n ? n : 1) * sizeof *r), *c = malloc((n ? n : 1) * sizeof *c);
  double *v = malloc((n ? n : 1) * sizeof *v);
  int rc = r && c && v ? 0 : -1;
  if (rc == 0) {
    bench_hand_jac(pb, pb->x, pb->p, r, c, v);
    rc = coo_from(m, n, r, c, v);
  }
  free(r);
  free(c);
  free(v);
  return rc;
}

/* A sparse Jacobian (entries at rows[q], cols[q]) against the hand-written
 * one: entries at the same position must match, entries only one side has
 * must be zero (so a missing nonzero fails). */
static void check_sparse(checker *c, const char *what, const coo *want, size_t nnz,
                         const size_t *rows, const size_t *cols, const double *vals) {
  coo got = {0};
  size_t cap = nnz + want->n;
  double *g = malloc((cap ? cap : 1) * sizeof *g), *w = malloc((cap ? cap : 1) * sizeof *w);
  if (!g || !w || coo_from(&got, nnz, rows, cols, vals) != 0) {
    c->failed = 1;
  } else {
    size_t i = 0, j = 0, k = 0, missing = 0;
    while (i < got.n || j < want->n) {
      int order = i == got.n ? 1 : j == want->n ? -1 : cmp_entry(&got.e[i], &want->e[j]);
      g[k] = order <= 0 ? got.e[i++].v : 0;
      w[k] = order >= 0 ? want->e[j++].v : 0;
      missing += order > 0 && w[k] != 0;
      k++;
    }
    if (missing)
      fprintf(stderr, "bench_ad: %s: %s misses %zu nonzeros of the Jacobian\n", c->k->cs,
              what, missing);
    check(c, what, g, w, k);
  }
  free(got.e);
  free(g);
  free(w);
}

/* ---- Evaluating ct_fun's by input/output names --------------------------------------- */

typedef struct named {
  const char *name;
  double *buf;
} named;

typedef struct binding {
  ct_context *ctx;
  const ct_fun *fun;
  const double **in;
  double **out;
  double *work;
} binding;

static double *find_named(const named *list, const char *name) {
  for (; list->name; list++)
    if (strcmp(list->name, name) == 0) return list->buf;
  return NULL;
}

static void unbind(binding *b) {
  free(b->in);
  free(b->out);
  free(b->work);
  memset(b, 0, sizeof *b);
}

/* Every input must be known; unknown outputs are skipped (NULL). */
static int bind(binding *b, ct_context *ctx, const ct_fun *fun, const named *ins,
                const named *outs) {
  memset(b, 0, sizeof *b);
  b->ctx = ctx, b->fun = fun;
  size_t ni = ct_fun_n_in(fun), no = ct_fun_n_out(fun);
  b->in = calloc(ni ? ni : 1, sizeof *b->in);
  b->out = calloc(no ? no : 1, sizeof *b->out);
  b->work = malloc((ct_fun_work_size(fun) + 1) * sizeof *b->work);
  if (!b->in || !b->out || !b->work) goto fail;
  for (size_t i = 0; i < ni; i++)
    if (!(b->in[i] = find_named(ins, ct_fun_in_name(fun, i)))) {
      fprintf(stderr, "bench_ad: unexpected input '%s'\n", ct_fun_in_name(fun, i));
      goto fail;
    }
  for (size_t o = 0; o < no; o++) b->out[o] = find_named(outs, ct_fun_out_name(fun, o));
  return 0;
fail:
  unbind(b);
  return -1;
}

static void body_eval(void *arg, size_t reps) {
  binding *b = arg;
  for (size_t r = 0; r < reps; r++) (void)ct_fun_eval(b->ctx, b->fun, b->in, b->out, b->work);
}

/* ---- Hand-written and ADOL-C bodies --------------------------------------------------- */

typedef struct hand_arg {
  const bench_problem *pb;
  double *y, *d;
} hand_arg;

static void body_hand_f(void *arg, size_t reps) {
  hand_arg *h = arg;
  for (size_t r = 0; r < reps; r++) bench_hand_f(h->pb, h->pb->x, h->pb->p, h->y);
}
static void body_hand_jvp(void *arg, size_t reps) {
  hand_arg *h = arg;
  for (size_t r = 0; r < reps; r++)
    bench_hand_jvp(h->pb, h->pb->x, h->pb->p, h->pb->v, h->y, h->d);
}
static void body_hand_vjp(void *arg, size_t reps) {
  hand_arg *h = arg;
  for (size_t r = 0; r < reps; r++)
    bench_hand_vjp(h->pb, h->pb->x, h->pb->p, h->pb->w, h->y, h->d);
}
static void body_hand_hvp(void *arg, size_t reps) {
  hand_arg *h = arg;
  for (size_t r = 0; r < reps; r++)
    bench_hand_hvp(h->pb, h->pb->x, h->pb->p, h->pb->w, h->pb->v, h->d);
}

typedef struct adolc_arg {
  bench_adolc *a;
  const bench_problem *pb;
  double *y, *g;
} adolc_arg;

static void body_adolc_f(void *arg, size_t reps) {
  adolc_arg *h = arg;
  for (size_t r = 0; r < reps; r++) bench_adolc_f(h->a, h->pb->x, h->y);
}
static void body_adolc_vjp(void *arg, size_t reps) {
  adolc_arg *h = arg;
  for (size_t r = 0; r < reps; r++) bench_adolc_vjp(h->a, h->pb->x, h->pb->w, h->g);
}
static void body_adolc_jac(void *arg, size_t reps) {
  adolc_arg *h = arg;
  for (size_t r = 0; r < reps; r++) bench_adolc_sparse_jac(h->a, h->pb->x);
}

/* ---- Logging: pick the coloring out of ct_fun_sparse_jac's info line ------------------ */

typedef struct log_state {
  char sparse_line[512];
} log_state;

static void log_fn(void *ud, ct_log_level level, const char *message) {
  log_state *s = ud;
  if (strstr(message, "sparse Jacobian") && strstr(message, "colors") && !s->sparse_line[0])
    snprintf(s->sparse_line, sizeof s->sparse_line, "%s", message);
  if (level <= CT_LOG_WARNING) fprintf(stderr, "cotangent: %s\n", message);
}

/* The number written just before `word` in `s`, or -1. */
static int number_before(const char *s, const char *word) {
  const char *at = strstr(s, word);
  if (!at) return -1;
  const char *p = at;
  while (p > s && p[-1] >= '0' && p[-1] <= '9') p--;
  return p == at ? -1 : atoi(p);
}

/* ---- A scratch JIT cache, so that compile times are compile times ------------------- */

static void remove_tree(const char *path) {
  DIR *d = opendir(path);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d))) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      char sub[4096];
      snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
      struct stat st;
      if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
        remove_tree(sub);
      else
        unlink(sub);
    }
    closedir(d);
  }
  rmdir(path);
}

/* ---- One case ----------------------------------------------------------------------- */

enum { V_F, V_JVP, V_VJP, V_JAC, V_HVP, NV };
static const char *const vname[NV] = {"f", "jvp", "vjp", "sparse_jac", "hvp"};
enum { B_INTERP, B_JIT, NB };
static const char *const bname[NB] = {"interp", "jit"};

/* jit.status / sparse_jac.status / adolc.status codes. */
enum { ST_OK = 0, ST_MISSING = 1, ST_STAYED = 2, ST_ERROR = 3 };

typedef struct case_state {
  const options *o;
  const bench_problem *pb;
  ct_context *ctx;
  bench_sink *k;
  checker chk;
  ct_fun *fun[NB][NV];
  ct_sparsity *pattern;
  size_t *pat_rows, *pat_cols; /* coordinates of the pattern's CSC entries */
  double *hand_y, *hand_jv, *hand_g, *hand_hv;
  coo hand_jac;
} case_state;

static int build_fun(case_state *cs, int v, ct_fun **out) {
  static const char *const wrt_x[] = {"x", NULL};
  ct_context *ctx = cs->ctx;
  ct_fun *f = NULL;
  int rc;
  *out = NULL;
  if (v == V_F) return bench_trace(ctx, cs->pb, out);
  rc = bench_trace(ctx, cs->pb, &f);
  if (rc != CT_OK) return rc;
  switch (v) {
    case V_JVP: rc = ct_fun_jvp(ctx, f, 1, wrt_x, out); break;
    case V_VJP: rc = ct_fun_vjp(ctx, f, 1, wrt_x, out); break;
    case V_HVP: rc = ct_fun_hvp(ctx, f, wrt_x, out); break;
    case V_JAC: {
      ct_sparsity *pat = NULL;
      rc = ct_fun_sparse_jac(ctx, f, wrt_x, out, &pat);
      if (rc == CT_OK && !cs->pattern)
        cs->pattern = pat;
      else
        ct_sparsity_free(ctx, pat);
      break;
    }
  }
  ct_fun_free(f);
  return rc;
}

/* Evaluates fun once at the problem's point and checks it. */
static int check_fun(case_state *cs, int b, int v, binding *bd, double *y, double *d) {
  const bench_problem *pb = cs->pb;
  char what[64];
  int rc = ct_fun_eval(cs->ctx, bd->fun, bd->in, bd->out, bd->work);
  if (rc != CT_OK) {
    fprintf(stderr, "bench_ad: %s: %s %s: evaluation failed: %s\n", pb->name, bname[b],
            vname[v], ct_errmsg(cs->ctx));
    cs->chk.failed = 1;
    return -1;
  }
  snprintf(what, sizeof what, "%s.%s", bname[b], vname[v]);
  switch (v) {
    case V_F: check(&cs->chk, what, y, cs->hand_y, pb->n); break;
    case V_JVP: check(&cs->chk, what, d, cs->hand_jv, pb->n); break;
    case V_VJP: check(&cs->chk, what, d, cs->hand_g, pb->n); break;
    case V_HVP: check(&cs->chk, what, d, cs->hand_hv, pb->n); break;
    case V_JAC:
      check_sparse(&cs->chk, what, &cs->hand_jac, cs->pattern->nnz, cs->pat_rows,
                   cs->pat_cols, d);
      break;
  }
  if (v == V_JVP || v == V_VJP) { /* their primal output too */
    snprintf(what, sizeof what, "%s.%s.f", bname[b], vname[v]);
    check(&cs->chk, what, y, cs->hand_y, pb->n);
  }
  return 0;
}

static void progress(const case_state *cs, const char *what) {
  if (!cs->o->smoke) fprintf(stderr, "bench_ad: %s: %s\n", cs->pb->name, what);
}

static int run_case(const char *name, void *ud, bench_sink *k) {
  const options *o = ud;
  bench_problem pb;
  if (bench_problem_init(&pb, name, o->smoke) != 0) {
    fprintf(stderr, "bench_ad: cannot set up case '%s'\n", name);
    return 1;
  }
  case_state cs = {.o = o, .pb = &pb, .k = k};
  cs.chk = (checker){k, 0, o->perturb};
  log_state logs = {{0}};
  char cache_dir[] = "/tmp/cotangent-bench-jit-XXXXXX";
  int have_cache_dir = 0, rc = 0;
  size_t n = pb.n;
  double *y[NB][NV] = {{0}}, *d[NB][NV] = {{0}};
  binding bd[NB][NV];
  memset(bd, 0, sizeof bd);
  bench_adolc *adolc = NULL;
  size_t *arows = NULL, *acols = NULL;

  cs.ctx = ct_context_new(NULL);
  if (!cs.ctx) return 1;
  ct_context_set_log_level(cs.ctx, CT_LOG_INFO);
  ct_context_set_log_fn(cs.ctx, log_fn, &logs);
  if (!o->smoke) { /* a fresh cache: compile times are real compiles */
    if (mkdtemp(cache_dir)) {
      have_cache_dir = 1;
      ct_context_set_cache_dir(cs.ctx, cache_dir);
    }
  }

  /* The hand-written reference. */
  cs.hand_y = calloc(n, sizeof(double));
  cs.hand_jv = calloc(n, sizeof(double));
  cs.hand_g = calloc(n, sizeof(double));
  cs.hand_hv = calloc(n, sizeof(double));
  double *scratch_y = calloc(n, sizeof(double)), *scratch_d = calloc(n, sizeof(double));
  if (!cs.hand_y || !cs.hand_jv || !cs.hand_g || !cs.hand_hv || coo_hand(&cs.hand_jac, &pb) != 0 || !scratch_y ||
      !scratch_d) {
    rc = 1;
    goto done;
  }
  bench_hand_f(&pb, pb.x, pb.p, cs.hand_y);
  bench_hand_jvp(&pb, pb.x, pb.p, pb.v, scratch_y, cs.hand_jv);
  bench_hand_vjp(&pb, pb.x, pb.p, pb.w, scratch_y, cs.hand_g);
  bench_hand_hvp(&pb, pb.x, pb.p, pb.w, pb.v, cs.hand_hv);

  /* Build every function twice: one set stays on the interpreter, the
   * other is compiled. */
  progress(&cs, "tracing and transforming");
  int jac_status = ST_OK;
  for (int b = 0; b < NB; b++)
    for (int v = 0; v < NV; v++) {
      if (v == V_JAC && jac_status != ST_OK) continue;
      double t0 = bench_now();
      int r = build_fun(&cs, v, &cs.fun[b][v]);
      if (r != CT_OK) {
        fprintf(stderr, "bench_ad: %s: building %s failed: %s\n", name, vname[v],
                ct_errmsg(cs.ctx));
        cs.chk.failed = 1;
        if (v == V_JAC) {
          jac_status = ST_ERROR;
          continue;
        }
        rc = 1;
        goto done;
      }
      if (b == B_INTERP) {
        emitf(k, bench_now() - t0, "s", "build.%s", vname[v]);
        emitf(k, (double)ct_fun_n_nodes(cs.fun[b][v]), "count", "nodes.%s", vname[v]);
      }
    }
  emit(k, "sparse_jac.status", jac_status, "code");

  /* The coloring: the library's own count from its info line, else the
   * same ColPack colorings recomputed here. */
  if (cs.pattern) {
    const ct_sparsity *p = cs.pattern;
    cs.pat_rows = malloc((p->nnz ? p->nnz : 1) * sizeof(size_t));
    cs.pat_cols = malloc((p->nnz ? p->nnz : 1) * sizeof(size_t));
    if (!cs.pat_rows || !cs.pat_cols) {
      rc = 1;
      goto done;
    }
    for (size_t j = 0; j < p->ncols; j++)
      for (size_t q = p->colptr[j]; q < p->colptr[j + 1]; q++)
        cs.pat_rows[q] = p->rowind[q], cs.pat_cols[q] = j;
    int col = number_before(logs.sparse_line, " column colors");
    int row = number_before(logs.sparse_line, " row colors");
    int from_log = col >= 0 && row >= 0;
    if (!from_log) {
      col = bench_colpack_colors(p, 0);
      row = bench_colpack_colors(p, 1);
    }
    int by_rows = from_log ? strstr(logs.sparse_line, "using row") != NULL : row < col;
    emit(k, "jac.nnz", (double)p->nnz, "count");
    emit(k, "colors", by_rows ? row : col, "count");
    emit(k, "colors.column", col, "count");
    emit(k, "colors.row", row, "count");
    emit(k, "colors.by_rows", by_rows, "bool");
    emit(k, "colors.from_library_log", from_log, "bool");
  }

  /* JIT each function of the second set; one that stays on the
   * interpreter gets no JIT numbers, only its status. */
  int jit_status[NV];
  progress(&cs, "JIT compiling");
  for (int v = 0; v < NV; v++) {
    ct_fun *f = cs.fun[B_JIT][v];
    jit_status[v] = ST_MISSING;
    if (!f) {
      if (f) emitf(k, ST_MISSING, "code", "jit.%s.status", vname[v]);
      continue;
    }
    double t0 = bench_now();
    int r = ct_fun_jit(cs.ctx, f, NULL);
    double t = bench_now() - t0;
    if (r != CT_OK) {
      fprintf(stderr, "bench_ad: %s: ct_fun_jit(%s) failed: %s\n", name, vname[v],
              ct_errmsg(cs.ctx));
      jit_status[v] = ST_ERROR;
      cs.chk.failed = 1;
    } else if (ct_fun_backend(f) != CT_BACKEND_JIT) {
      fprintf(stderr, "bench_ad: %s: %s stayed on the interpreter after ct_fun_jit\n", name,
              vname[v]);
      jit_status[v] = ST_STAYED;
    } else {
      jit_status[v] = ST_OK;
      emitf(k, t, "s", "jit.%s.compile", vname[v]);
    }
    emitf(k, jit_status[v], "code", "jit.%s.status", vname[v]);
  }

  /* Bind and check every function. */
  progress(&cs, "checking against the hand-written derivatives");
  for (int b = 0; b < NB; b++)
    for (int v = 0; v < NV; v++) {
      ct_fun *f = cs.fun[b][v];
      if (!f || (b == B_JIT && jit_status[v] != ST_OK)) continue;
      size_t dn = v == V_JAC ? cs.pattern->nnz : n;
      y[b][v] = calloc(n, sizeof(double));
      d[b][v] = calloc(dn ? dn : 1, sizeof(double));
      if (!y[b][v] || !d[b][v]) {
        rc = 1;
        goto done;
      }
      named ins[] = {{"x", pb.x}, {"p", pb.p}, {"d_x", pb.v}, {"bar_f", pb.w}, {NULL, NULL}};
      named outs[] = {{"f", y[b][v]},    {"d_f", d[b][v]}, {"bar_x", d[b][v]},
                      {"hv_x", d[b][v]}, {"jac", d[b][v]}, {NULL, NULL}};
      if (bind(&bd[b][v], cs.ctx, f, ins, outs) != 0) {
        rc = 1;
        goto done;
      }
      check_fun(&cs, b, v, &bd[b][v], y[b][v], d[b][v]);
    }

  /* ADOL-C, checked the same way. */
  char err[256] = "";
  if (bench_adolc_available()) adolc = bench_adolc_new(&pb, 1, err, sizeof err);
  int adolc_status = !bench_adolc_available() ? ST_MISSING : adolc ? ST_OK : ST_ERROR;
  if (adolc_status == ST_ERROR) {
    fprintf(stderr, "bench_ad: %s: ADOL-C: %s\n", name, err);
    cs.chk.failed = 1;
  }
  emit(k, "adolc.status", adolc_status, "code");
  adolc_arg aa = {adolc, &pb, scratch_y, scratch_d};
  if (adolc) {
    emit(k, "adolc.tape_ops", (double)bench_adolc_tape_ops(adolc), "count");
    emit(k, "adolc.colors", bench_adolc_colors(adolc), "count");
    emit(k, "adolc.jac.nnz", (double)bench_adolc_nnz(adolc), "count");
    bench_adolc_f(adolc, pb.x, scratch_y);
    check(&cs.chk, "adolc.f", scratch_y, cs.hand_y, n);
    bench_adolc_vjp(adolc, pb.x, pb.w, scratch_d);
    check(&cs.chk, "adolc.vjp", scratch_d, cs.hand_g, n);
    bench_adolc_sparse_jac(adolc, pb.x);
    const unsigned int *ar, *ac;
    const double *av;
    bench_adolc_entries(adolc, &ar, &ac, &av);
    size_t annz = bench_adolc_nnz(adolc);
    arows = malloc((annz ? annz : 1) * sizeof *arows);
    acols = malloc((annz ? annz : 1) * sizeof *acols);
    if (!arows || !acols) {
      rc = 1;
      goto done;
    }
    for (size_t q = 0; q < annz; q++) arows[q] = ar[q], acols[q] = ac[q];
    check_sparse(&cs.chk, "adolc.sparse_jac", &cs.hand_jac, annz, arows, acols, av);
  }

  /* Timings, each paired with the hand-written f. */
  progress(&cs, "timing");
  hand_arg ha = {&pb, scratch_y, scratch_d};
  reference ref = {body_hand_f, &ha, calibrate(o, body_hand_f, &ha)};
  measure(k, o, &ref, "hand.f", body_hand_f, &ha);
  measure(k, o, &ref, "hand.jvp", body_hand_jvp, &ha);
  measure(k, o, &ref, "hand.vjp", body_hand_vjp, &ha);
  measure(k, o, &ref, "hand.hvp", body_hand_hvp, &ha);
  for (int v = 0; v < NV; v++)
    for (int b = 0; b < NB; b++)
      if (bd[b][v].fun) {
        char what[64];
        snprintf(what, sizeof what, "%s.%s", bname[b], vname[v]);
        measure(k, o, &ref, what, body_eval, &bd[b][v]);
      }
  if (adolc) {
    measure(k, o, &ref, "adolc.f", body_adolc_f, &aa);
    measure(k, o, &ref, "adolc.vjp", body_adolc_vjp, &aa);
    measure(k, o, &ref, "adolc.sparse_jac", body_adolc_jac, &aa);
  }

done:
  bench_adolc_free(adolc);
  free(arows);
  free(acols);
  for (int b = 0; b < NB; b++)
    for (int v = 0; v < NV; v++) {
      unbind(&bd[b][v]);
      free(y[b][v]);
      free(d[b][v]);
      ct_fun_free(cs.fun[b][v]);
    }
  ct_sparsity_free(cs.ctx, cs.pattern);
  free(cs.pat_rows);
  free(cs.pat_cols);
  free(cs.hand_y);
  free(cs.hand_jv);
  free(cs.hand_g);
  free(cs.hand_hv);
  free(cs.hand_jac.e);
  free(scratch_y);
  free(scratch_d);
  ct_context_free(cs.ctx);
  if (have_cache_dir) remove_tree(cache_dir);
  bench_problem_free(&pb);

  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) == 0) emit(k, "peak_rss", (double)ru.ru_maxrss, "KiB");
  if (getrusage(RUSAGE_CHILDREN, &ru) == 0 && ru.ru_maxrss > 0)
    emit(k, "compiler.peak_rss", (double)ru.ru_maxrss, "KiB");
  emit(k, "checks.failed", cs.chk.failed, "bool");
  return rc || cs.chk.failed;
}

/* ---- Report --------------------------------------------------------------------------- */

static void fmt_time(char *buf, size_t size, double ns) {
  if (!isfinite(ns))
    snprintf(buf, size, "-");
  else if (ns < 1e3)
    snprintf(buf, size, "%.1f ns", ns);
  else if (ns < 1e6)
    snprintf(buf, size, "%.2f us", ns / 1e3);
  else if (ns < 1e9)
    snprintf(buf, size, "%.2f ms", ns / 1e6);
  else
    snprintf(buf, size, "%.2f s", ns / 1e9);
}

static void fmt_ratio(char *buf, size_t size, double r) {
  if (!isfinite(r))
    snprintf(buf, size, "-");
  else
    snprintf(buf, size, r < 10 ? "%.2fx" : r < 100 ? "%.1fx" : "%.0fx", r);
}

static const char *status_text(int code, const char *what) {
  static char buf[160];
  switch (code) {
    case ST_MISSING: snprintf(buf, sizeof buf, "%s: not in this build", what); break;
    case ST_STAYED:
      snprintf(buf, sizeof buf,
               "%s: ct_fun_jit left some functions on the interpreter (\"interp!\"): no JIT numbers for them",
               what);
      break;
    case ST_ERROR: snprintf(buf, sizeof buf, "%s: failed", what); break;
    default: snprintf(buf, sizeof buf, "%s: ok", what); break;
  }
  return buf;
}

/* The targets of the issue, per case. */
enum { T_JVP, T_VJP, T_JAC, T_INTERP, T_ADOLC, NT };
static const char *const tname[NT] = {"jit_jvp", "jit_vjp", "jit_sparse_jac", "interp_vs_jit",
                                      "vjp_vs_adolc"};
static const char *const tdesc[NT] = {
    "JIT JVP <= 1.5x hand f", "JIT VJP <= 2.5x hand f",
    "JIT sparse Jacobian <= (colors+1)x hand f", "interpreter <= 5x JIT (worst op)",
    "JIT VJP >= 5x faster than ADOL-C"};

typedef struct target {
  double value, limit;
  int known, pass;
  char what[48]; /* for interp_vs_jit: which op is the worst */
} target;

/* Derived metrics: interpreter over JIT, ours over ADOL-C (from the median
 * times); and the targets, from the paired ratios to the hand-written f.
 * Added to the rows. */
static void derive(bench_rows *rows, const char *cs, target t[NT]) {
  char m[64];
  memset(t, 0, NT * sizeof *t);
  t[T_INTERP].value = -1;
  for (int v = 0; v < NV; v++) {
    double ti = NAN, tj = NAN;
    for (int b = 0; b < NB; b++) {
      snprintf(m, sizeof m, "%s.%s.time", bname[b], vname[v]);
      double tv = bench_rows_get(rows, cs, m);
      if (b == B_INTERP) ti = tv; else tj = tv;
    }
    snprintf(m, sizeof m, "interp_over_jit.%s", vname[v]);
    if (isfinite(ti) && isfinite(tj)) {
      bench_rows_add(rows, cs, m, ti / tj, "x");
      if (ti / tj > t[T_INTERP].value) {
        t[T_INTERP].value = ti / tj;
        t[T_INTERP].known = 1;
        snprintf(t[T_INTERP].what, sizeof t[T_INTERP].what, "%s", vname[v]);
      }
    }
  }
  for (int v = 0; v < NV; v++) {
    if (v != V_F && v != V_VJP && v != V_JAC) continue;
    const char *am = v == V_F ? "adolc.f.time" : v == V_VJP ? "adolc.vjp.time" : "adolc.sparse_jac.time";
    double ta = bench_rows_get(rows, cs, am);
    if (!isfinite(ta)) continue;
    for (int b = 0; b < NB; b++) {
      snprintf(m, sizeof m, "%s.%s.time", bname[b], vname[v]);
      double tv = bench_rows_get(rows, cs, m);
      snprintf(m, sizeof m, "%s.%s.over_adolc", bname[b], vname[v]);
      if (isfinite(tv)) bench_rows_add(rows, cs, m, tv / ta, "x ADOL-C");
    }
  }
  double colors = bench_rows_get(rows, cs, "colors");
  t[T_JVP].value = bench_rows_get(rows, cs, "jit.jvp.ratio"), t[T_JVP].limit = 1.5;
  t[T_VJP].value = bench_rows_get(rows, cs, "jit.vjp.ratio"), t[T_VJP].limit = 2.5;
  t[T_JAC].value = bench_rows_get(rows, cs, "jit.sparse_jac.ratio"), t[T_JAC].limit = colors + 1;
  t[T_INTERP].limit = 5;
  /* ADOL-C time over ours: at least 5. */
  t[T_ADOLC].value = bench_rows_get(rows, cs, "adolc.vjp.time") / bench_rows_get(rows, cs, "jit.vjp.time");
  t[T_ADOLC].limit = 5;
  for (int i = 0; i < NT; i++) {
    if (i != T_INTERP) t[i].known = isfinite(t[i].value) && isfinite(t[i].limit);
    if (!t[i].known) continue;
    t[i].pass = i == T_ADOLC ? t[i].value >= t[i].limit : t[i].value <= t[i].limit;
    snprintf(m, sizeof m, "target.%s", tname[i]);
    bench_rows_add(rows, cs, m, t[i].value, i == T_ADOLC ? "x (ADOL-C/ours)" : i == T_INTERP ? "x" : "x hand f");
    snprintf(m, sizeof m, "target.%s.limit", tname[i]);
    bench_rows_add(rows, cs, m, t[i].limit, i == T_ADOLC ? "min" : "max");
    snprintf(m, sizeof m, "target.%s.pass", tname[i]);
    bench_rows_add(rows, cs, m, t[i].pass, "bool");
  }
}

static void target_cell(char *buf, size_t size, const target *t, int md) {
  char v[32];
  if (!t->known) {
    snprintf(buf, size, "n/a");
    return;
  }
  fmt_ratio(v, sizeof v, t->value);
  const char *verdict = t->pass ? "PASS" : "MISS";
  if (md && !t->pass) verdict = "**MISS**";
  if (t->what[0])
    snprintf(buf, size, "%s (%s) %s", v, t->what, verdict);
  else
    snprintf(buf, size, "%s %s", v, verdict);
}

/* Prints one case's table (text, or Markdown when md). */
static void print_case(FILE *to, const options *o, const bench_rows *rows, const char *cs,
                       const target t[NT], int md) {
  bench_problem pb;
  char title[96];
  snprintf(title, sizeof title, "%s", cs);
  if (bench_problem_init(&pb, cs, o->smoke) == 0) {
    snprintf(title, sizeof title, "%s", pb.title);
    bench_problem_free(&pb);
  }
  char a[32], b[32], c[32], e[32], f[32], g[32], h[32];
  double hf = bench_rows_get(rows, cs, "hand.f.time");
  int jit = ST_OK; /* the worst per-op JIT status */
  for (int v = 0; v < NV; v++) {
    char m[64];
    snprintf(m, sizeof m, "jit.%s.status", vname[v]);
    double st = bench_rows_get(rows, cs, m);
    if (isfinite(st) && (int)st != ST_OK && (jit == ST_OK || (int)st == ST_STAYED)) jit = (int)st;
  }
  int jac = (int)bench_rows_get(rows, cs, "sparse_jac.status");
  int adolc = (int)bench_rows_get(rows, cs, "adolc.status");
  fmt_time(a, sizeof a, hf);
  if (md)
    fprintf(to, "\n### %s — %s\n\n", cs, title);
  else
    fprintf(to, "\n== %s: %s\n", cs, title);
  fprintf(to, "%shand-written f: %s per call; f has %.0f nodes", md ? "" : "   ", a,
          bench_rows_get(rows, cs, "nodes.f"));
  if (isfinite(bench_rows_get(rows, cs, "jac.nnz")))
    fprintf(to, "; Jacobian %.0f nonzeros, %.0f colors (%s; column %.0f, row %.0f%s)",
            bench_rows_get(rows, cs, "jac.nnz"), bench_rows_get(rows, cs, "colors"),
            bench_rows_get(rows, cs, "colors.by_rows") > 0 ? "rows" : "columns",
            bench_rows_get(rows, cs, "colors.column"), bench_rows_get(rows, cs, "colors.row"),
            bench_rows_get(rows, cs, "colors.from_library_log") > 0 ? "" : ", recomputed by the bench");
  if (adolc == ST_OK)
    fprintf(to, "; ADOL-C tape %.0f ops, Jacobian %.0f nonzeros, %.0f colors",
            bench_rows_get(rows, cs, "adolc.tape_ops"), bench_rows_get(rows, cs, "adolc.jac.nnz"),
            bench_rows_get(rows, cs, "adolc.colors"));
  fprintf(to, "%s", md ? ".\n" : "\n");
  double failed = bench_rows_get(rows, cs, "checks.failed");
  if (!isfinite(failed))
    fprintf(to, "%sTHE CASE DID NOT COMPLETE (see the messages above)\n", md ? "\n" : "   ");
  else if (failed > 0)
    fprintf(to, "%sCHECKS FAILED: some result differs from the hand-written code\n",
            md ? "\n" : "   ");
  if (jit != ST_OK) fprintf(to, "%s%s\n", md ? "\n" : "   ", status_text(jit, "JIT"));
  if (jac != ST_OK) fprintf(to, "%s%s\n", md ? "\n" : "   ", status_text(jac, "sparse Jacobian"));
  if (adolc != ST_OK) fprintf(to, "%s%s\n", md ? "\n" : "   ", status_text(adolc, "ADOL-C"));
  if (md)
    fprintf(to, "\n| op | hand-written | ratio | interpreter | ratio | JIT | ratio | interp/JIT | "
                "JIT compile | ADOL-C | ratio | interp/ADOL-C | JIT/ADOL-C |\n"
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  else
    fprintf(to, "\n   %-11s %10s %7s  %10s %7s  %10s %7s  %10s %9s  %10s %7s  %8s %8s\n",
            "op", "hand", "/hand f", "interp", "/hand f", "JIT", "/hand f", "interp/JIT",
            "compile", "ADOL-C", "/hand f", "int/ADC", "JIT/ADC");
  for (int v = 0; v < NV; v++) {
    char m[64], hr[32];
    snprintf(m, sizeof m, "hand.%s.time", vname[v]);
    fmt_time(a, sizeof a, bench_rows_get(rows, cs, m));
    snprintf(m, sizeof m, "hand.%s.ratio", vname[v]);
    fmt_ratio(hr, sizeof hr, bench_rows_get(rows, cs, m));
    snprintf(m, sizeof m, "interp.%s.time", vname[v]);
    fmt_time(b, sizeof b, bench_rows_get(rows, cs, m));
    snprintf(m, sizeof m, "interp.%s.ratio", vname[v]);
    fmt_ratio(c, sizeof c, bench_rows_get(rows, cs, m));
    snprintf(m, sizeof m, "jit.%s.time", vname[v]);
    fmt_time(e, sizeof e, bench_rows_get(rows, cs, m));
    snprintf(m, sizeof m, "jit.%s.status", vname[v]);
    double jst = bench_rows_get(rows, cs, m);
    if (isfinite(jst) && (int)jst != ST_OK)
      snprintf(e, sizeof e, "%s", (int)jst == ST_STAYED ? "interp!" : (int)jst == ST_MISSING ? "no JIT" : "failed");
    snprintf(m, sizeof m, "jit.%s.ratio", vname[v]);
    fmt_ratio(f, sizeof f, bench_rows_get(rows, cs, m));
    snprintf(m, sizeof m, "interp_over_jit.%s", vname[v]);
    fmt_ratio(g, sizeof g, bench_rows_get(rows, cs, m));
    snprintf(m, sizeof m, "jit.%s.compile", vname[v]);
    double comp = bench_rows_get(rows, cs, m);
    if (isfinite(comp))
      snprintf(h, sizeof h, "%.2f s", comp);
    else
      snprintf(h, sizeof h, "-");
    char ad[32], adr[32], ia[32], ja[32];
    snprintf(m, sizeof m, "adolc.%s.time", vname[v]);
    fmt_time(ad, sizeof ad, bench_rows_get(rows, cs, m));
    snprintf(m, sizeof m, "adolc.%s.ratio", vname[v]);
    fmt_ratio(adr, sizeof adr, bench_rows_get(rows, cs, m));
    snprintf(m, sizeof m, "interp.%s.over_adolc", vname[v]);
    fmt_ratio(ia, sizeof ia, bench_rows_get(rows, cs, m));
    snprintf(m, sizeof m, "jit.%s.over_adolc", vname[v]);
    fmt_ratio(ja, sizeof ja, bench_rows_get(rows, cs, m));
    if (md)
      fprintf(to, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
              vname[v], a, hr, b, c, e, f, g, h, ad, adr, ia, ja);
    else
      fprintf(to, "   %-11s %10s %7s  %10s %7s  %10s %7s  %10s %9s  %10s %7s  %8s %8s\n",
              vname[v], a, hr, b, c, e, f, g, h, ad, adr, ia, ja);
  }
  double rss = bench_rows_get(rows, cs, "peak_rss"), crss = bench_rows_get(rows, cs, "compiler.peak_rss");
  fprintf(to, "%speak RSS %.1f MiB", md ? "\n" : "\n   ", rss / 1024);
  if (isfinite(crss)) fprintf(to, " (largest compiler process %.1f MiB)", crss / 1024);
  fprintf(to, "%s", md ? ".\n" : "\n");
  if (!md) {
    for (int i = 0; i < NT; i++) {
      char cell[96];
      target_cell(cell, sizeof cell, &t[i], 0);
      char lim[32];
      if (t[i].known) snprintf(lim, sizeof lim, "%s %.4gx", i == T_ADOLC ? ">=" : "<=", t[i].limit);
      else snprintf(lim, sizeof lim, "-");
      fprintf(to, "   target %-42s %-10s %s\n", tdesc[i], lim, cell);
    }
  }
}

/* "CPU model (family F model M), N cores, YYYY-MM-DD HH:MM UTC". */
static void describe_machine(char *buf, size_t size) {
  char model[128] = "unknown CPU", line[256];
  int family = -1, mdl = -1;
  FILE *f = fopen("/proc/cpuinfo", "r");
  while (f && fgets(line, sizeof line, f)) {
    char *colon = strchr(line, ':');
    if (!colon) continue;
    char *val = colon + 1 + (colon[1] == ' ');
    val[strcspn(val, "\n")] = 0;
    if (strncmp(line, "model name", 10) == 0 && strcmp(model, "unknown CPU") == 0)
      snprintf(model, sizeof model, "%s", val);
    else if (strncmp(line, "cpu family", 10) == 0 && family < 0)
      family = atoi(val);
    else if (strncmp(line, "model\t", 6) == 0 && mdl < 0)
      mdl = atoi(val);
  }
  if (f) fclose(f);
  time_t now = time(NULL);
  char date[32];
  strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
  snprintf(buf, size, "%s (family %d, model %d), %ld cores, %s", model, family, mdl,
           sysconf(_SC_NPROCESSORS_ONLN), date);
}

/* mkdir -p of the folder holding `path`. */
static void make_parent_dirs(const char *path) {
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      mkdir(buf, 0755);
      *p = '/';
    }
}

int main(int argc, char **argv) {
  options o = {.fork = 1, .samples = 7, .sample_s = 0.05, .out = "build/bench/ad.json"};
  char md_default[4096];
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--smoke") == 0) o.smoke = 1;
    else if (strcmp(a, "--no-fork") == 0) o.fork = 0;
    else if (strcmp(a, "--perturb-reference") == 0) o.perturb = 1;
    else if (strcmp(a, "--out") == 0 && i + 1 < argc) o.out = argv[++i];
    else if (strcmp(a, "--md") == 0 && i + 1 < argc) o.md = argv[++i];
    else if (strcmp(a, "--samples") == 0 && i + 1 < argc) o.samples = atoi(argv[++i]);
    else if (strcmp(a, "--sample-ms") == 0 && i + 1 < argc) o.sample_s = atof(argv[++i]) / 1e3;
    else if (strcmp(a, "--case") == 0 && i + 1 < argc && o.n_cases < 8) o.cases[o.n_cases++] = argv[++i];
    else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else {
      usage(stderr);
      return 2;
    }
  }
  if (o.samples < 1) o.samples = 1;
  if (!o.md) {
    size_t len = strlen(o.out);
    if (len > 5 && strcmp(o.out + len - 5, ".json") == 0) len -= 5;
    snprintf(md_default, sizeof md_default, "%.*s.md", (int)len, o.out);
    o.md = md_default;
  }
  if (o.n_cases == 0)
    for (const char *const *c = bench_problem_names; *c && o.n_cases < 8; c++) o.cases[o.n_cases++] = *c;
  for (size_t i = 0; i < o.n_cases; i++) {
    bench_problem pb;
    if (bench_problem_init(&pb, o.cases[i], 1) != 0) {
      fprintf(stderr, "bench_ad: unknown case '%s'\n", o.cases[i]);
      usage(stderr);
      return 2;
    }
    bench_problem_free(&pb);
  }

  bench_rows rows = {0};
  int failed = 0;
  target t[8][NT];
  for (size_t i = 0; i < o.n_cases; i++) {
    if (bench_run_case(o.fork, o.cases[i], run_case, &o, &rows) != 0) {
      fprintf(stderr, "bench_ad: case %s FAILED\n", o.cases[i]);
      failed = 1;
    }
    derive(&rows, o.cases[i], t[i]);
  }
  double peak = 0;
  for (size_t i = 0; i < o.n_cases; i++) peak = fmax(peak, bench_rows_get(&rows, o.cases[i], "peak_rss"));
  bench_rows_add(&rows, "all", "peak_rss", peak, "KiB");

  char machine[256];
  describe_machine(machine, sizeof machine);
  printf("bench/ad: Cotangent AD vs hand-written C and ADOL-C %s%s\n",
         bench_adolc_available() ? bench_adolc_version() : "(not built)",
         o.smoke ? " [smoke: one call per measurement, small mass_action and brusselator;"
                   " timings meaningless]"
                 : "");
  printf("%s\ntimes per call: median of %d samples of ~%.0f ms; ratios are to the hand-written f\n",
         machine, o.smoke ? 1 : o.samples, o.smoke ? 0 : o.sample_s * 1e3);
  for (size_t i = 0; i < o.n_cases; i++) print_case(stdout, &o, &rows, o.cases[i], t[i], 0);

  make_parent_dirs(o.out);
  if (bench_rows_write_json(&rows, o.out) != 0) {
    fprintf(stderr, "bench_ad: cannot write %s: %s\n", o.out, strerror(errno));
    failed = 1;
  } else {
    printf("\nwrote %s", o.out);
  }
  make_parent_dirs(o.md);
  FILE *md = fopen(o.md, "w");
  if (md) {
    fprintf(md, "%s; median of %d samples of ~%.0f ms per time%s.\n\n", machine,
            o.smoke ? 1 : o.samples, o.smoke ? 0 : o.sample_s * 1e3,
            o.smoke ? " (smoke run: one call per time, meaningless)" : "");
    fprintf(md, "| case |");
    for (int i = 0; i < NT; i++) fprintf(md, " %s |", tdesc[i]);
    fprintf(md, "\n|---|");
    for (int i = 0; i < NT; i++) fprintf(md, "---|");
    fprintf(md, "\n");
    for (size_t c = 0; c < o.n_cases; c++) {
      fprintf(md, "| %s |", o.cases[c]);
      for (int i = 0; i < NT; i++) {
        char cell[96];
        target_cell(cell, sizeof cell, &t[c][i], 1);
        fprintf(md, " %s |", cell);
      }
      fprintf(md, "\n");
    }
    for (size_t c = 0; c < o.n_cases; c++) print_case(md, &o, &rows, o.cases[c], t[c], 1);
    fclose(md);
    printf(" and %s\n", o.md);
  } else {
    printf("\n");
  }
  if (failed) fprintf(stderr, "bench_ad: FAILED (see above)\n");
  bench_rows_free(&rows);
  return failed;
}
