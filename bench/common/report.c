/* The benchmarks' shared timers, medians, rows and child processes (report.h). */
#include "report.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void bench_rows_add(bench_rows *s, const char *cs, const char *metric, double value,
                    const char *unit) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 256;
    bench_row *r = realloc(s->r, cap * sizeof *r);
    if (!r) return;
    s->r = r, s->cap = cap;
  }
  bench_row *w = &s->r[s->n++];
  snprintf(w->cs, sizeof w->cs, "%s", cs);
  snprintf(w->metric, sizeof w->metric, "%s", metric);
  snprintf(w->unit, sizeof w->unit, "%s", unit);
  w->value = value;
}

double bench_rows_get(const bench_rows *s, const char *cs, const char *metric) {
  for (size_t i = 0; i < s->n; i++)
    if (!strcmp(s->r[i].cs, cs) && !strcmp(s->r[i].metric, metric)) return s->r[i].value;
  return NAN;
}

void bench_rows_free(bench_rows *s) {
  free(s->r);
  s->r = NULL, s->n = s->cap = 0;
}

/* NAN and infinities are not JSON: they become null. */
int bench_rows_write_json(const bench_rows *s, const char *path) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  fprintf(f, "[\n");
  for (size_t i = 0; i < s->n; i++) {
    const bench_row *w = &s->r[i];
    char v[32];
    if (isfinite(w->value)) snprintf(v, sizeof v, "%.10g", w->value);
    else snprintf(v, sizeof v, "null");
    fprintf(f, "  {\"case\": \"%s\", \"metric\": \"%s\", \"value\": %s, \"unit\": \"%s\"}%s\n",
            w->cs, w->metric, v, w->unit, i + 1 < s->n ? "," : "");
  }
  fprintf(f, "]\n");
  return fclose(f);
}

void bench_emit(bench_sink *k, const char *metric, double value, const char *unit) {
  fprintf(k->to, "%s\t%s\t%.17g\t%s\n", k->cs, metric, value, unit);
  fflush(k->to);
}

/* Reads the tab-separated rows bench_emit wrote. */
static int read_rows(FILE *from, bench_rows *s) {
  char line[256];
  while (fgets(line, sizeof line, from)) {
    char *cs = strtok(line, "\t"), *metric = strtok(NULL, "\t");
    char *value = strtok(NULL, "\t"), *unit = strtok(NULL, "\t\n");
    if (!cs || !metric || !value) return -1;
    bench_rows_add(s, cs, metric, strtod(value, NULL), unit ? unit : "");
  }
  return 0;
}

/* The case in this process, its rows through a temporary file. */
static int run_here(const char *cs, int (*fn)(const char *, void *, bench_sink *), void *ud,
                    bench_rows *s) {
  FILE *tmp = tmpfile();
  if (!tmp) return 1;
  bench_sink k = {tmp, cs};
  int rc = fn(cs, ud, &k);
  rewind(tmp);
  if (read_rows(tmp, s) != 0) rc = 1;
  fclose(tmp);
  return rc;
}

int bench_run_case(int fork_it, const char *cs, int (*fn)(const char *, void *, bench_sink *),
                   void *ud, bench_rows *s) {
  fflush(stdout);
  fflush(stderr);
  if (!fork_it) return run_here(cs, fn, ud, s);
  int fds[2];
  if (pipe(fds) != 0) return 1;
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    close(fds[0]);
    FILE *to = fdopen(fds[1], "w");
    bench_sink k = {to, cs};
    int rc = to ? fn(cs, ud, &k) : 1;
    if (to) fclose(to);
    exit(rc ? 1 : 0); /* not _exit: LeakSanitizer checks the child at exit */
  }
  close(fds[1]);
  FILE *from = fdopen(fds[0], "r");
  int rc = from ? read_rows(from, s) : 1;
  if (from) fclose(from);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) continue;
  if (WIFSIGNALED(status)) {
    fprintf(stderr, "bench: case %s was killed by signal %d\n", cs, WTERMSIG(status));
    return 1;
  }
  return rc || !WIFEXITED(status) || WEXITSTATUS(status) != 0;
}

double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double bench_median(double *v, size_t n) {
  if (n == 0) return NAN;
  qsort(v, n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double bench_rel_diff(const double *a, const double *b, size_t n) {
  double d = 0, s = 0;
  for (size_t i = 0; i < n; i++) {
    d = fmax(d, fabs(a[i] - b[i]));
    s = fmax(s, fabs(b[i]));
  }
  return d / fmax(s, 1e-300);
}

double bench_peak_rss_kib(void) {
  struct rusage ru;
  return getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss : NAN;
}

double bench_rss_kib(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long size = 0, resident = 0;
  int ok = f && fscanf(f, "%ld %ld", &size, &resident) == 2;
  if (f) fclose(f);
  return ok ? (double)resident * (double)sysconf(_SC_PAGESIZE) / 1024.0 : NAN;
}
