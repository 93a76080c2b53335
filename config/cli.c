/* The `cotangent` command: run, check and codegen for config files.
 * Exit statuses: 0 done, 1 an analysis failed (or an I/O error), 2 bad
 * usage or config, 130 interrupted by SIGINT (results so far written). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"
#include "cotangent/dae.h"
#include "cotangent/ode.h"

enum { EXIT_DONE = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_INTERRUPTED = 130 };

#define MAX_SETS 64

/* The command line of a subcommand. */
typedef struct cli_args {
  const char *cmd;
  const char *file;
  const char *out;          /* -o */
  const char *sets[MAX_SETS];
  size_t n_sets;
  int quiet;                /* -q */
  int jit;                  /* --jit */
  int help;
} cli_args;

static volatile sig_atomic_t interrupted;

/* SIGINT: ask the running solve to stop (its progress callback sees it). */
static void on_sigint(int sig) {
  (void)sig;
  interrupted = 1;
}

static const char *const usage_main =
    "usage: cotangent <command> FILE.yaml [options]\n"
    "\n"
    "commands:\n"
    "  run FILE.yaml [-o OUTDIR] [--set key.path=value ...] [-q] [--jit]\n"
    "                      run every analysis; results in OUTDIR\n"
    "                      (default results/<config name>/)\n"
    "  check FILE.yaml [--set key.path=value ...]\n"
    "                      validate the config and print a model summary\n"
    "  codegen FILE.yaml -o model.c [--set key.path=value ...]\n"
    "                      write standalone C for f, its JVP, VJP and sparse Jacobian\n"
    "\n"
    "  cotangent <command> --help    help for one command\n"
    "  cotangent --version           the version\n"
    "\n"
    "exit status: 0 done, 1 an analysis failed, 2 bad usage or config,\n"
    "130 interrupted (Ctrl-C; finished analyses are written)\n";

static const char *const usage_run =
    "usage: cotangent run FILE.yaml [-o OUTDIR] [--set key.path=value ...] [-q] [--jit]\n"
    "\n"
    "Runs every analysis of the config in order and writes OUTDIR/summary.json,\n"
    "trajectory.csv, sensitivities.csv, gradient.csv and SVG plots (each file\n"
    "atomically). Prints a summary table on stdout, progress on stderr.\n"
    "\n"
    "  -o OUTDIR             where results go (default results/<config name>/)\n"
    "  --set key.path=value  override a config value, e.g. --set solver.rtol=1e-8,\n"
    "                        --set analyses.0.check=none (repeatable)\n"
    "  -q                    no progress on stderr\n"
    "  --jit                 compile the model's functions to machine code with the\n"
    "                        system C compiler (cached in $COTANGENT_CACHE or\n"
    "                        ~/.cache/cotangent; the interpreter when none works)\n"
    "\n"
    "exit status: 0 done, 1 an analysis failed (results so far written),\n"
    "2 bad usage or config, 130 interrupted\n";

static const char *const usage_check =
    "usage: cotangent check FILE.yaml [--set key.path=value ...] [--jit]\n"
    "\n"
    "Validates the config (schema, expressions, names, data files) without\n"
    "running it and prints the model: states, parameters, equations, the\n"
    "Jacobian's sparsity and nonzeros, and the linear solver 'auto' picks.\n"
    "\n"
    "exit status: 0 valid, 2 bad usage or config\n";

static const char *const usage_codegen =
    "usage: cotangent codegen FILE.yaml -o model.c [--set key.path=value ...]\n"
    "\n"
    "Writes standalone C (needing only <math.h>) for the model's right-hand\n"
    "side (or DAE residual) NAME_f, its Jacobian-vector product NAME_jvp, its\n"
    "vector-Jacobian product NAME_vjp and its sparse Jacobian NAME_jac (with\n"
    "the CSC pattern NAME_jac_colptr / NAME_jac_rowind), and model.h\n"
    "declaring them. NAME is the model's name.\n"
    "\n"
    "exit status: 0 done, 2 bad usage or config, 1 the files could not be written\n";

/* The help text of a subcommand (the general one for NULL). */
static const char *usage_of(const char *cmd) {
  if (cmd && strcmp(cmd, "run") == 0) return usage_run;
  if (cmd && strcmp(cmd, "check") == 0) return usage_check;
  if (cmd && strcmp(cmd, "codegen") == 0) return usage_codegen;
  return usage_main;
}

/* Records one --set; nonzero (reported) beyond MAX_SETS. */
static int add_set(cli_args *a, const char *assignment, FILE *err) {
  if (a->n_sets == MAX_SETS) {
    fprintf(err, "cotangent %s: more than %d --set options\n", a->cmd, MAX_SETS);
    return 1;
  }
  a->sets[a->n_sets++] = assignment;
  return 0;
}

/* Parses a subcommand's arguments (argv[0] is the subcommand). Prints the
 * problem and returns EXIT_USAGE on bad usage, else EXIT_DONE. */
static int parse_args(int argc, char **argv, cli_args *a, FILE *err) {
  memset(a, 0, sizeof *a);
  a->cmd = argv[0];
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
      a->help = 1;
    } else if (strcmp(s, "-q") == 0 || strcmp(s, "--quiet") == 0) {
      a->quiet = 1;
    } else if (strcmp(s, "--jit") == 0) {
      a->jit = 1;
    } else if (strcmp(s, "-o") == 0 || strcmp(s, "--set") == 0) {
      if (i + 1 >= argc) {
        fprintf(err, "cotangent %s: %s needs a value\n", a->cmd, s);
        return EXIT_USAGE;
      }
      const char *value = argv[++i];
      if (s[1] == 'o') a->out = value;
      else if (add_set(a, value, err)) return EXIT_USAGE;
    } else if (strncmp(s, "--set=", 6) == 0) {
      if (add_set(a, s + 6, err)) return EXIT_USAGE;
    } else if (s[0] == '-' && s[1]) {
      fprintf(err, "cotangent %s: unknown option '%s' (see cotangent %s --help)\n", a->cmd,
              s, a->cmd);
      return EXIT_USAGE;
    } else if (!a->file) {
      a->file = s;
    } else {
      fprintf(err, "cotangent %s: one config file, got '%s' and '%s'\n", a->cmd, a->file, s);
      return EXIT_USAGE;
    }
  }
  if (a->help) return EXIT_DONE;
  if (!a->file) {
    fprintf(err, "cotangent %s: which config file? (see cotangent %s --help)\n", a->cmd,
            a->cmd);
    return EXIT_USAGE;
  }
  if (strcmp(a->cmd, "codegen") == 0 && !a->out) {
    fprintf(err, "cotangent codegen: -o model.c is required\n");
    return EXIT_USAGE;
  }
  if (strcmp(a->cmd, "check") == 0 && a->out) {
    fprintf(err, "cotangent check: -o does not apply (check writes nothing)\n");
    return EXIT_USAGE;
  }
  return EXIT_DONE;
}

/* Prints the context's error as users should see it: the message without
 * the library's source location and traceback. */
static void print_error(FILE *err, ct_context *ctx) {
  char msg[1024];
  fprintf(err, "cotangent: error: %s\n", ct_errmsg_text(ctx, msg, sizeof msg));
}

/* The exit status of a failure before anything ran. */
static int setup_status(int rc) {
  return rc == CT_ERR_CONFIG || rc == CT_ERR_ARG ? EXIT_USAGE : EXIT_FAILED;
}

/* A loaded config with its model compiled and its analyses planned. */
typedef struct loaded {
  ct_cfg *cfg;
  ct_cfg_built *b;
  ct_cfg_plan *plan;
} loaded;

static void loaded_free(loaded *l) {
  ct_cfg_plan_free(l->plan);
  ct_cfg_built_free(l->b);
  ct_cfg_free(l->cfg);
}

/* Loads, compiles (with --jit also to machine code: the model's functions
 * and those sensitivity and adjoint problems build from them) and plans
 * the config of the command line. */
static int load(ct_context *ctx, const cli_args *a, loaded *l) {
  memset(l, 0, sizeof *l);
  CT_CHECK(ctx, ct_cfg_load(ctx, a->file, a->sets, a->n_sets, &l->cfg));
  CT_CHECK(ctx, ct_cfg_model_build(ctx, &l->cfg->model, &l->b));
  if (a->jit && l->b->ode) CT_CHECK(ctx, ct_ode_jit(ctx, l->b->ode, NULL));
  if (a->jit && l->b->dae) CT_CHECK(ctx, ct_dae_jit(ctx, l->b->dae, NULL));
  return ct_cfg_plan_new(ctx, l->cfg, l->b, &l->plan);
}

/* results/<config file name without folder and extension>/ */
static void default_outdir(const char *file, char *buf, size_t size) {
  const char *base = strrchr(file, '/');
  base = base ? base + 1 : file;
  size_t len = strlen(base);
  const char *dot = strrchr(base, '.');
  if (dot && dot != base) len = (size_t)(dot - base);
  snprintf(buf, size, "results/%.*s", (int)len, base);
}

/* `cotangent run`. */
static int cmd_run(ct_context *ctx, const cli_args *a, FILE *out, FILE *err) {
  loaded l;
  int rc = load(ctx, a, &l);
  if (rc < 0) {
    print_error(err, ctx);
    loaded_free(&l);
    return setup_status(rc);
  }
  char outdir[4096];
  if (a->out) snprintf(outdir, sizeof outdir, "%s", a->out);
  else default_outdir(a->file, outdir, sizeof outdir);
  fprintf(out, "model %s: %zu states, %zu parameters, %zu analyses\n",
          l.cfg->model.name ? l.cfg->model.name : "", l.b->n, l.b->np, l.cfg->n_analyses);
  ct_progress *progress = ct_progress_new(err, a->quiet);
  interrupted = 0;
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old);
  ct_cfg_run_opts ro = {outdir, a->file, progress, &interrupted, out};
  ct_cfg_run_outcome oc;
  rc = ct_cfg_plan_run(ctx, l.plan, &ro, &oc);
  sigaction(SIGINT, &old, NULL);
  ct_progress_free(progress);
  loaded_free(&l);
  if (rc < 0) {
    print_error(err, ctx);
    return EXIT_FAILED;
  }
  if (!a->quiet) fprintf(err, "cotangent: results in %s/\n", outdir);
  if (oc.interrupted) {
    fprintf(err, "cotangent: interrupted: %s\n", oc.message);
    return EXIT_INTERRUPTED;
  }
  if (oc.n_failed) {
    fprintf(err, "cotangent: analysis failed: %s\n", oc.message);
    return EXIT_FAILED;
  }
  return EXIT_DONE;
}

/* Prints the Jacobian's pattern as a grid of '*' and '.' (small models). */
static void print_pattern(FILE *out, const ct_sparsity *s) {
  for (size_t i = 0; i < s->nrows; i++) {
    fputs("    ", out);
    for (size_t j = 0; j < s->ncols; j++) {
      int hit = 0;
      for (size_t q = s->colptr[j]; q < s->colptr[j + 1]; q++) hit |= s->rowind[q] == i;
      fputc(hit ? '*' : '.', out);
    }
    fputc('\n', out);
  }
}

/* The Jacobian's sparsity with respect to y (and y' for a DAE), merged. */
static int model_pattern(ct_context *ctx, const ct_cfg_built *b, ct_sparsity **out) {
  static const char *const wrt_y[] = {"y", NULL};
  return ct_fun_jac_sparsity(ctx, b->rhs ? b->rhs : b->res, wrt_y, out);
}

/* `cotangent check`. */
static int cmd_check(ct_context *ctx, const cli_args *a, FILE *out, FILE *err) {
  loaded l;
  int rc = load(ctx, a, &l);
  ct_cfg_model_info info;
  if (rc == CT_OK) rc = ct_cfg_model_summary(ctx, l.b, l.cfg->time.start, &info);
  ct_sparsity *pat = NULL;
  if (rc == CT_OK) rc = model_pattern(ctx, l.b, &pat);
  if (rc < 0) {
    print_error(err, ctx);
    loaded_free(&l);
    return setup_status(rc);
  }
  double density = info.n_equations ? 100.0 * (double)info.jac_nnz /
                                          ((double)info.n_equations * (double)info.n_equations)
                                    : 0.0;
  fprintf(out, "%s: config OK\n", a->file);
  fprintf(out, "model %s (%s)\n", l.cfg->model.name ? l.cfg->model.name : "",
          l.b->dae ? "DAE, IDAS" : "ODE");
  fprintf(out, "  states              %zu\n", info.n_states);
  if (info.n_algebraic) fprintf(out, "  algebraic variables %zu\n", info.n_algebraic);
  fprintf(out, "  parameters          %zu\n", info.n_params);
  fprintf(out, "  assignments         %zu\n", info.n_assignments);
  fprintf(out, "  observables         %zu\n", info.n_observables);
  fprintf(out, "  equations           %zu\n", info.n_equations);
  fprintf(out, "  operations          %zu\n", info.n_nodes);
  fprintf(out, "  Jacobian            %zu x %zu, %zu nonzeros (%.1f%%)%s\n", info.n_equations,
          info.n_equations, info.jac_nnz, density, l.b->dae ? " (dF/dy and dF/dy')" : "");
  if (pat && pat->nrows <= 40) {
    fprintf(out, "  %s pattern:\n", l.b->dae ? "dF/dy" : "df/dy");
    print_pattern(out, pat);
  }
  fprintf(out, "  linear solver auto  %s\n", info.linear_solver ? info.linear_solver : "?");
  fprintf(out, "analyses            %zu\n", l.cfg->n_analyses);
  for (size_t i = 0; i < l.cfg->n_analyses; i++)
    fprintf(out, "  %zu. %s\n", i + 1, l.cfg->analyses[i].name);
  ct_sparsity_free(ctx, pat);
  loaded_free(&l);
  return EXIT_DONE;
}

/* ---- codegen ---- */

/* The generated pieces: one function per entry, concatenated. */
typedef struct gen_piece {
  char suffix[16];
  ct_fun *f;
  char *c_text, *h_text;
} gen_piece;

typedef struct gen_job {
  ct_context *ctx;
  char name[128];
  gen_piece pieces[4];
  size_t n;
  ct_sparsity *pattern;
} gen_job;

/* Reads a whole file into a new string (NULL on failure, error recorded). */
static char *slurp(ct_context *ctx, const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    CT_ERROR(ctx, CT_ERR_IO, "cannot read %s", path);
    return NULL;
  }
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = len >= 0 ? ct_alloc(ctx, (size_t)len + 1) : NULL;
  if (s && fread(s, 1, (size_t)len, f) != (size_t)len) {
    ct_free(ctx, s);
    s = NULL;
    CT_ERROR(ctx, CT_ERR_IO, "cannot read %s", path);
  }
  if (s) s[len] = 0;
  fclose(f);
  return s;
}

/* Generates one piece's C through ct_fun_codegen into temporary files next
 * to `out_c`, read back into memory. */
static int gen_piece_text(gen_job *j, gen_piece *p, const char *out_c) {
  char cfn[4200], hfn[4200], fname[160];
  snprintf(cfn, sizeof cfn, "%s.%s.tmp.c", out_c, p->suffix);
  snprintf(hfn, sizeof hfn, "%s.%s.tmp.h", out_c, p->suffix);
  snprintf(fname, sizeof fname, "%s_%s", j->name, p->suffix);
  int rc = ct_fun_codegen(j->ctx, p->f, fname, cfn, hfn);
  if (rc == CT_OK) {
    p->c_text = slurp(j->ctx, cfn);
    p->h_text = slurp(j->ctx, hfn);
    if (!p->c_text || !p->h_text) rc = CT_ERR_IO;
  }
  remove(cfn);
  remove(hfn);
  return rc;
}

/* emit: the .c file, every piece and the Jacobian's pattern. */
static int emit_gen_c(FILE *f, void *ud) {
  gen_job *j = ud;
  for (size_t i = 0; i < j->n; i++) fputs(j->pieces[i].c_text, f);
  const ct_sparsity *s = j->pattern;
  fprintf(f, "\n/* The sparse Jacobian's pattern (CSC, %zu x %zu, %zu nonzeros). */\n",
          s->nrows, s->ncols, s->nnz);
  fprintf(f, "const size_t %s_jac_nnz = %zu;\nconst size_t %s_jac_colptr[%zu] = {", j->name,
          s->nnz, j->name, s->ncols + 1);
  for (size_t c = 0; c <= s->ncols; c++) fprintf(f, "%s%zu", c ? ", " : "", s->colptr[c]);
  fprintf(f, "};\nconst size_t %s_jac_rowind[%zu] = {", j->name, s->nnz ? s->nnz : 1);
  for (size_t q = 0; q < s->nnz; q++) fprintf(f, "%s%zu", q ? ", " : "", s->rowind[q]);
  fprintf(f, "%s};\n", s->nnz ? "" : "0");
  return CT_OK;
}

/* emit: the .h file. */
static int emit_gen_h(FILE *f, void *ud) {
  gen_job *j = ud;
  for (size_t i = 0; i < j->n; i++) fputs(j->pieces[i].h_text, f);
  fprintf(f, "\n#include <stddef.h>\n/* The sparse Jacobian's pattern (CSC): column c's rows "
             "are\n * %s_jac_rowind[%s_jac_colptr[c] .. %s_jac_colptr[c+1]). */\n"
             "extern const size_t %s_jac_nnz;\nextern const size_t %s_jac_colptr[];\n"
             "extern const size_t %s_jac_rowind[];\n",
          j->name, j->name, j->name, j->name, j->name, j->name);
  return CT_OK;
}

/* The model's name as a C identifier. */
static void c_identifier(const char *name, char *buf, size_t size) {
  size_t k = 0;
  if (!name || !name[0]) name = "model";
  if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z')))
    buf[k++] = 'm';
  for (; *name && k + 1 < size && k < 100; name++) {
    char c = *name;
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    buf[k++] = ok ? c : '_';
  }
  buf[k] = 0;
}

/* Builds f, its JVP and VJP (with respect to y and p) and its sparse
 * Jacobian (with respect to y) and writes them. */
static int generate(ct_context *ctx, const ct_cfg_built *b, const char *out_c, gen_job *j) {
  static const char *const wrt_yp[] = {"y", "p", NULL};
  static const char *const wrt_y[] = {"y", NULL};
  const char *const *wrt = b->np ? wrt_yp : wrt_y;
  const ct_fun *f = b->rhs ? b->rhs : b->res;
  snprintf(j->pieces[0].suffix, 16, "f");
  snprintf(j->pieces[1].suffix, 16, "jvp");
  snprintf(j->pieces[2].suffix, 16, "vjp");
  snprintf(j->pieces[3].suffix, 16, "jac");
  j->n = 4;
  CT_CHECK(ctx, ct_fun_select_outputs(ctx, f, (const char *const[]){b->rhs ? "f" : "F", NULL},
                                      &j->pieces[0].f));
  CT_CHECK(ctx, ct_fun_jvp(ctx, f, 1, wrt, &j->pieces[1].f));
  CT_CHECK(ctx, ct_fun_vjp(ctx, f, 1, wrt, &j->pieces[2].f));
  CT_CHECK(ctx, ct_fun_sparse_jac(ctx, f, wrt_y, &j->pieces[3].f, &j->pattern));
  char dir[4200];
  snprintf(dir, sizeof dir, "%s", out_c);
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = 0;
    CT_CHECK(ctx, ct_make_dirs(ctx, dir));
  }
  for (size_t i = 0; i < j->n; i++) CT_CHECK(ctx, gen_piece_text(j, &j->pieces[i], out_c));
  char h_path[4200];
  size_t len = strlen(out_c);
  if (len > 2 && strcmp(out_c + len - 2, ".c") == 0)
    snprintf(h_path, sizeof h_path, "%.*s.h", (int)(len - 2), out_c);
  else
    snprintf(h_path, sizeof h_path, "%s.h", out_c);
  CT_CHECK(ctx, ct_write_atomic(ctx, out_c, emit_gen_c, j));
  return ct_write_atomic(ctx, h_path, emit_gen_h, j);
}

/* `cotangent codegen`. */
static int cmd_codegen(ct_context *ctx, const cli_args *a, FILE *out, FILE *err) {
  loaded l;
  int rc = load(ctx, a, &l);
  if (rc < 0) {
    print_error(err, ctx);
    loaded_free(&l);
    return setup_status(rc);
  }
  gen_job j;
  memset(&j, 0, sizeof j);
  j.ctx = ctx;
  c_identifier(l.cfg->model.name, j.name, sizeof j.name);
  rc = generate(ctx, l.b, a->out, &j);
  for (size_t i = 0; i < 4; i++) {
    ct_fun_free(j.pieces[i].f);
    ct_free(ctx, j.pieces[i].c_text);
    ct_free(ctx, j.pieces[i].h_text);
  }
  ct_sparsity_free(ctx, j.pattern);
  loaded_free(&l);
  if (rc < 0) {
    print_error(err, ctx);
    return EXIT_FAILED;
  }
  fprintf(out, "wrote %s: %s_f, %s_jvp, %s_vjp, %s_jac\n", a->out, j.name, j.name, j.name,
          j.name);
  return EXIT_DONE;
}

int ct_cli_main(int argc, char **argv, FILE *out, FILE *err) {
  if (argc < 2) {
    fputs(usage_main, err);
    return EXIT_USAGE;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
    fputs(usage_of(argc > 2 ? argv[2] : NULL), out);
    return EXIT_DONE;
  }
  if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
    fprintf(out, "cotangent %s\n", ct_version());
    return EXIT_DONE;
  }
  if (strcmp(cmd, "run") != 0 && strcmp(cmd, "check") != 0 && strcmp(cmd, "codegen") != 0) {
    fprintf(err, "cotangent: unknown command '%s' (run, check, codegen; see cotangent "
                 "--help)\n", cmd);
    return EXIT_USAGE;
  }
  cli_args a;
  int st = parse_args(argc - 1, argv + 1, &a, err);
  if (st != EXIT_DONE) return st;
  if (a.help) {
    fputs(usage_of(cmd), out);
    return EXIT_DONE;
  }
  ct_context *ctx = ct_context_new(NULL);
  if (!ctx) {
    fprintf(err, "cotangent: out of memory\n");
    return EXIT_FAILED;
  }
  if (strcmp(cmd, "run") == 0) st = cmd_run(ctx, &a, out, err);
  else if (strcmp(cmd, "check") == 0) st = cmd_check(ctx, &a, out, err);
  else st = cmd_codegen(ctx, &a, out, err);
  ct_context_free(ctx);
  return st;
}
