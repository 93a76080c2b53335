/* The JIT: generated C compiled by the system compiler into a shared object,
 * cached on disk under a hash of the source text, the compiler and the
 * flags, loaded with dlopen and attached to the function. Anything that goes
 * wrong outside the library (no compiler, a compile error, an unusable cache
 * folder, dlopen) leaves the function on the interpreter with one warning. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "codegen.h"

extern char **environ;

/* The entry point's name in every compiled object. Objects are opened with
 * RTLD_LOCAL and looked up by handle, so the names never clash. */
#define JIT_ENTRY "ct_jit_fn"
/* Above JIT_O1_OPS operations the default flags are -O1; above JIT_MAX_OPS
 * (unless ct_jit_options.max_ops says otherwise) nothing is compiled. */
#define JIT_O1_OPS ((size_t)50000)
#define JIT_MAX_OPS CT_JIT_MAX_OPS_DEFAULT

/* Internal result of a step that failed softly: the reason is in the job
 * and the function stays on the interpreter. */
enum { JIT_SOFT = 1000 };

/* The state of one ct_fun_jit call; every string is owned. */
typedef struct jit_job {
  ct_context *ctx;
  char why[640];      /* reason of a soft failure */
  char *so_path;      /* the cached object */
  char *so_tmp;       /* where the compiler writes it first */
  char *tmp_dir;      /* private folder for the source and the log */
  char *src_path, *log_path;
  char *words;        /* the compiler and flags, split in place */
  char **argv;
} jit_job;

/* Records the reason of a soft failure; returns JIT_SOFT. */
static int soft(jit_job *j, const char *fmt, ...) CT_PRINTF_LIKE(2, 3);
static int soft(jit_job *j, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(j->why, sizeof j->why, fmt, ap);
  va_end(ap);
  return JIT_SOFT;
}

/* A fresh string "a" "b" "c" (b, c may be empty); NULL on no memory. */
static char *concat3(ct_context *ctx, const char *a, const char *b,
                     const char *c) {
  size_t na = strlen(a), nb = strlen(b), nc = strlen(c);
  char *s = ct_alloc(ctx, na + nb + nc + 1);
  if (!s) return NULL;
  memcpy(s, a, na);
  memcpy(s + na, b, nb);
  memcpy(s + na + nb, c, nc + 1);
  return s;
}

/* Frees what the job holds and removes its temporary files. */
static void job_free(jit_job *j) {
  ct_context *ctx = j->ctx;
  if (j->so_tmp) unlink(j->so_tmp); /* renamed away on success */
  if (j->src_path) unlink(j->src_path);
  if (j->log_path) unlink(j->log_path);
  if (j->tmp_dir) rmdir(j->tmp_dir);
  ct_free(ctx, j->so_path);
  ct_free(ctx, j->so_tmp);
  ct_free(ctx, j->tmp_dir);
  ct_free(ctx, j->src_path);
  ct_free(ctx, j->log_path);
  ct_free(ctx, j->words);
  ct_free(ctx, j->argv);
}

/* 64-bit FNV-1a over n bytes, continuing from h. */
static uint64_t hash_bytes(uint64_t h, const void *data, size_t n) {
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= UINT64_C(0x100000001b3);
  }
  return h;
}

/* The cache key: the source text, the compiler and the flags, each with its
 * terminating NUL so that the fields cannot run into each other. */
static uint64_t cache_key(const ct_codegen_text *t, const char *cc,
                          const char *cflags) {
  uint64_t h = UINT64_C(0xcbf29ce484222325);
  h = hash_bytes(h, t->c_text, t->c_len + 1);
  h = hash_bytes(h, cc, strlen(cc) + 1);
  h = hash_bytes(h, cflags, strlen(cflags) + 1);
  h ^= h >> 33; /* finalizer of MurmurHash3: spreads the last bytes */
  h *= UINT64_C(0xff51afd7ed558ccd);
  h ^= h >> 33;
  h *= UINT64_C(0xc4ceb9fe1a85ec53);
  h ^= h >> 33;
  return h;
}

/* Creates `dir` and its missing parents with mode 0700. */
static int make_dirs(jit_job *j, const char *dir) {
  char *p = ct_strdup(j->ctx, dir);
  if (!p) return CT_ERR_NOMEM;
  int rc = CT_OK;
  for (char *s = p + (*p != '\0');; s++) {
    if (*s != '/' && *s != '\0') continue;
    char saved = *s;
    *s = '\0';
    if (*p && mkdir(p, 0700) != 0 && errno != EEXIST) {
      rc = soft(j, "cannot create the cache folder %s: %s", p, strerror(errno));
      break;
    }
    *s = saved;
    if (!saved) break;
  }
  struct stat st;
  if (rc == CT_OK && (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)))
    rc = soft(j, "the cache folder %s is not a folder", dir);
  ct_free(j->ctx, p);
  return rc;
}

/* Splits the compiler and the flags at blanks (no quoting: no shell is
 * involved) and builds argv: cc, flags, -fPIC -shared -o OUT SRC -lm. */
static int build_argv(jit_job *j, const char *cc, const char *cflags) {
  static const char *const blanks = " \t\n";
  j->words = concat3(j->ctx, cc, " ", cflags);
  if (!j->words) return CT_ERR_NOMEM;
  size_t n = 0;
  for (const char *s = j->words; *s;) {
    s += strspn(s, blanks);
    if (!*s) break;
    n++;
    s += strcspn(s, blanks);
  }
  if (cc[strspn(cc, blanks)] == '\0') return soft(j, "the compiler name is empty");
  j->argv = ct_calloc(j->ctx, n + 8, sizeof *j->argv);
  if (!j->argv) return CT_ERR_NOMEM;
  size_t k = 0;
  for (char *s = j->words; *s;) {
    s += strspn(s, blanks);
    if (!*s) break;
    j->argv[k++] = s;
    s += strcspn(s, blanks);
    if (*s) *s++ = '\0';
  }
  j->argv[k++] = "-fPIC";
  j->argv[k++] = "-shared";
  j->argv[k++] = "-o";
  j->argv[k++] = j->so_tmp;
  j->argv[k++] = j->src_path;
  j->argv[k++] = "-lm";
  j->argv[k] = NULL;
  return CT_OK;
}

/* The most telling line of the compiler's log (the first mentioning an
 * error, else the first non-empty one), at most `size` - 1 characters. */
static void log_excerpt(const char *path, char *out, size_t size) {
  char buf[8192];
  out[0] = '\0';
  FILE *fp = fopen(path, "r");
  if (!fp) return;
  size_t n = fread(buf, 1, sizeof buf - 1, fp);
  fclose(fp);
  buf[n] = '\0';
  const char *pick = NULL;
  for (const char *line = buf; *line;) {
    size_t len = strcspn(line, "\n");
    int blank = strspn(line, " \t") >= len;
    if (!pick && !blank) pick = line;
    const char *e = strstr(line, "error");
    if (e && e < line + len) {
      pick = line;
      break;
    }
    line += len + (line[len] == '\n');
  }
  if (!pick) return;
  size_t len = strcspn(pick, "\n");
  if (len >= size) len = size - 1;
  memcpy(out, pick, len);
  out[len] = '\0';
}

/* Runs argv (no shell) with stdin from /dev/null and stdout and stderr into
 * the log; soft failure unless it exits with status 0. */
static int run_compiler(jit_job *j) {
  posix_spawn_file_actions_t fa;
  if (posix_spawn_file_actions_init(&fa) != 0)
    return soft(j, "posix_spawn_file_actions_init failed");
  int rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (rc == 0)
    rc = posix_spawn_file_actions_addopen(&fa, 2, j->log_path,
                                          O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (rc == 0) rc = posix_spawn_file_actions_adddup2(&fa, 2, 1);
  pid_t pid = -1;
  if (rc == 0) rc = posix_spawnp(&pid, j->argv[0], &fa, NULL, j->argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return soft(j, "cannot run the compiler '%s': %s", j->argv[0], strerror(rc));
  int status = 0;
  pid_t w;
  do w = waitpid(pid, &status, 0);
  while (w < 0 && errno == EINTR);
  if (w < 0) return soft(j, "waiting for the compiler failed: %s", strerror(errno));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return CT_OK;
  char excerpt[400];
  log_excerpt(j->log_path, excerpt, sizeof excerpt);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && !excerpt[0])
    return soft(j, "cannot run the compiler '%s'", j->argv[0]);
  if (WIFEXITED(status))
    return soft(j, "the compiler '%s' exited with status %d%s%s", j->argv[0],
                WEXITSTATUS(status), excerpt[0] ? ": " : "", excerpt);
  return soft(j, "the compiler '%s' was killed by signal %d", j->argv[0],
              WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* Opens the object at so_path and attaches it to f if it is the code of `t`
 * (its work size must agree). Soft failure otherwise. */
static int load_object(jit_job *j, ct_fun *f, const ct_codegen_text *t) {
  void *h = dlopen(j->so_path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *e = dlerror();
    return soft(j, "dlopen failed: %s", e ? e : "unknown error");
  }
  void *entry = dlsym(h, JIT_ENTRY), *work = dlsym(h, JIT_ENTRY "_work_size");
  if (!entry || !work) {
    dlclose(h);
    return soft(j, "%s lacks the entry points of generated code", j->so_path);
  }
  ct_compiled_fn fn;
  size_t (*work_size)(void);
  memcpy(&fn, &entry, sizeof fn); /* object to function pointer, as POSIX allows */
  memcpy(&work_size, &work, sizeof work_size);
  size_t need = work_size();
  if (need != t->work) {
    dlclose(h);
    return soft(j, "%s needs %zu doubles of work, expected %zu", j->so_path, need,
                t->work);
  }
  f->compiled = fn;
  f->compiled_work = need;
  f->dl_handle = h;
  return CT_OK;
}

/* Compiles `t` into the cache: the source and the log in a private temporary
 * folder, the object under a temporary name in the cache folder, renamed to
 * so_path once complete, so no process ever opens a partial object. */
static int compile_object(jit_job *j, const ct_codegen_text *t, const char *dir,
                          const char *cc, const char *cflags, double *seconds) {
  ct_context *ctx = j->ctx;
  const char *tmp = getenv("TMPDIR");
  j->tmp_dir = concat3(ctx, tmp && *tmp ? tmp : "/tmp", "/cotangent-jit-", "XXXXXX");
  if (!j->tmp_dir) return CT_ERR_NOMEM;
  if (!mkdtemp(j->tmp_dir)) {
    int err = errno;
    ct_free(ctx, j->tmp_dir);
    j->tmp_dir = NULL;
    return soft(j, "cannot create a temporary folder: %s", strerror(err));
  }
  j->src_path = concat3(ctx, j->tmp_dir, "/", JIT_ENTRY ".c");
  j->log_path = concat3(ctx, j->tmp_dir, "/", "cc.log");
  j->so_tmp = concat3(ctx, j->so_path, ".tmp-", "XXXXXX");
  if (!j->src_path || !j->log_path || !j->so_tmp) return CT_ERR_NOMEM;
  int fd = mkstemp(j->so_tmp);
  if (fd < 0) {
    int err = errno;
    ct_free(ctx, j->so_tmp);
    j->so_tmp = NULL;
    return soft(j, "cannot create a file in the cache folder %s: %s", dir,
                strerror(err));
  }
  close(fd);
  FILE *fp = fopen(j->src_path, "w");
  if (!fp) return soft(j, "cannot write %s: %s", j->src_path, strerror(errno));
  int bad = fwrite(t->c_text, 1, t->c_len, fp) != t->c_len;
  bad |= fclose(fp) != 0;
  if (bad) return soft(j, "cannot write %s", j->src_path);
  int rc = build_argv(j, cc, cflags);
  if (rc != CT_OK) return rc;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  rc = run_compiler(j);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  *seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
  if (rc != CT_OK) return rc;
  if (rename(j->so_tmp, j->so_path) != 0)
    return soft(j, "cannot rename %s to %s: %s", j->so_tmp, j->so_path,
                strerror(errno));
  ct_free(ctx, j->so_tmp);
  j->so_tmp = NULL;
  return CT_OK;
}

/* Everything ct_fun_jit does once f's text is generated. */
static int jit_attach(jit_job *j, ct_fun *f, const ct_codegen_text *t,
                      const ct_jit_options *opts) {
  ct_context *ctx = j->ctx;
  const char *env_cc = getenv("CC");
  const char *cc = opts && opts->cc && *opts->cc ? opts->cc
                   : env_cc && *env_cc         ? env_cc
                                               : "cc";
  const char *cflags = opts && opts->cflags ? opts->cflags
                       : f->n_nodes > JIT_O1_OPS ? "-O1"
                                                 : "-O2";
  const char *dir = ct_context_cache_dir(ctx);
  char leaf[40];
  snprintf(leaf, sizeof leaf, "/ct-%016llx.so",
           (unsigned long long)cache_key(t, cc, cflags));
  j->so_path = concat3(ctx, dir, leaf, "");
  if (!j->so_path) return CT_ERR_NOMEM;
  int rc = make_dirs(j, dir);
  if (rc != CT_OK) return rc;
  if (access(j->so_path, F_OK) == 0) {
    rc = load_object(j, f, t);
    if (rc == CT_OK) {
      ct_context_log(ctx, CT_LOG_INFO, "jit: %zu operations loaded from the cache (%s)",
                     f->n_nodes, j->so_path);
      return CT_OK;
    }
    ct_context_log(ctx, CT_LOG_DEBUG, "jit: cached object unusable (%s); recompiling",
                   j->why);
  }
  double seconds = 0;
  rc = compile_object(j, t, dir, cc, cflags, &seconds);
  if (rc != CT_OK) return rc;
  rc = load_object(j, f, t);
  if (rc != CT_OK) return rc;
  ct_context_log(ctx, CT_LOG_INFO,
                 "jit: compiled %zu operations (%zu chunk functions, %zu bytes of C) "
                 "with '%s%s%s' in %.3f s, cached as %s",
                 f->n_nodes, t->n_chunks, t->c_len, cc, *cflags ? " " : "", cflags,
                 seconds, j->so_path);
  return CT_OK;
}

int ct_fun_jit(ct_context *ctx, ct_fun *f, const ct_jit_options *opts) {
  if (!f) return CT_ERROR(ctx, CT_ERR_ARG, "ct_fun_jit needs a function");
  if (f->compiled) {
    ct_context_log(ctx, CT_LOG_DEBUG, "jit: function already compiled");
    return CT_OK;
  }
  size_t max_ops = opts && opts->max_ops ? opts->max_ops : JIT_MAX_OPS;
  if (f->n_nodes > max_ops) {
    ct_context_log(ctx, CT_LOG_INFO,
                   "jit: %zu operations are above the compile limit of %zu "
                   "(ct_jit_options.max_ops); staying on the interpreter",
                   f->n_nodes, max_ops);
    return CT_OK;
  }
  ct_codegen_text t;
  CT_CHECK(ctx, ct_codegen_generate(ctx, f, JIT_ENTRY, opts ? opts->max_chunk : 0, &t));
  jit_job j;
  memset(&j, 0, sizeof j);
  j.ctx = ctx;
  int rc = jit_attach(&j, f, &t, opts);
  job_free(&j);
  ct_codegen_text_free(ctx, &t);
  if (rc == JIT_SOFT) {
    ct_context_log(ctx, CT_LOG_WARNING, "jit: %s; staying on the interpreter", j.why);
    return CT_OK;
  }
  if (rc < 0) return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  return CT_OK;
}

ct_backend ct_fun_backend(const ct_fun *f) {
  return f && f->compiled ? CT_BACKEND_JIT : CT_BACKEND_INTERPRETER;
}
