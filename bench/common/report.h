/* Measurement plumbing shared by the benchmarks: timers, medians and
 * relative differences (every benchmark), and for bench/implicit rows
 * {case, metric, value, unit}, peak memory, and running one case in a child
 * process that sends its rows back through a pipe (each case gets its own
 * peak RSS, and a crash in one case does not hide the others) — the scheme
 * bench/ad uses for its own rows. */
#ifndef COTANGENT_BENCH_COMMON_REPORT_H
#define COTANGENT_BENCH_COMMON_REPORT_H

#include <stddef.h>
#include <stdio.h>

typedef struct bench_row {
  char cs[48], metric[64], unit[20];
  double value;
} bench_row;

typedef struct bench_rows {
  bench_row *r;
  size_t n, cap;
  int failures; /* failed checks */
} bench_rows;

/* Appends a row (silently dropped on no memory). */
void bench_rows_add(bench_rows *s, const char *cs, const char *metric, double value,
                    const char *unit);
/* The value of (cs, metric), or NAN. */
double bench_rows_get(const bench_rows *s, const char *cs, const char *metric);
void bench_rows_free(bench_rows *s);
/* Writes the rows as a JSON list of {case, metric, value, unit}; 0 on success. */
int bench_rows_write_json(const bench_rows *s, const char *path);

/* Where a case sends its rows: a stream (the pipe to the parent) in the
 * tab-separated form bench_run_case reads back. */
typedef struct bench_sink {
  FILE *to;
  const char *cs;
} bench_sink;
void bench_emit(bench_sink *k, const char *metric, double value, const char *unit);

/* Runs case(cs, ud, sink) in a child process (or in this one when
 * fork_it is 0), adds its rows to s and returns 0 when it exited with 0. */
int bench_run_case(int fork_it, const char *cs, int (*fn)(const char *cs, void *ud, bench_sink *k),
                   void *ud, bench_rows *s);

/* Monotonic wall clock in seconds. */
double bench_now(void);
/* Median of v[0..n) (sorts v). */
double bench_median(double *v, size_t n);
/* max_i |a_i - b_i| / max_i |b_i|. */
double bench_rel_diff(const double *a, const double *b, size_t n);
/* This process's peak resident set (getrusage ru_maxrss), and its resident
 * set now (/proc/self/statm), both in KiB; NAN where unknown. */
double bench_peak_rss_kib(void);
double bench_rss_kib(void);

#endif /* COTANGENT_BENCH_COMMON_REPORT_H */
