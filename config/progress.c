/* Progress of a run: a redrawn bar on a terminal, plain lines every few
 * seconds otherwise, nothing when quiet. COTANGENT_PROGRESS=tty|plain|off
 * in the environment overrides the terminal test (tests and logs use it). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config_internal.h"

enum { MODE_OFF = 0, MODE_PLAIN = 1, MODE_TTY = 2, BAR_WIDTH = 20 };

static const double TTY_INTERVAL_S = 0.1;  /* redraws at most 10 times a second */
static const double PLAIN_INTERVAL_S = 5;  /* a plain line at most every 5 s */
static const double LOG_DECADES = 3;       /* log-time progress beyond 3 decades */

struct ct_progress {
  FILE *out;
  int mode;
  int active;       /* between begin and end */
  char what[128];
  double t0, t1;
  int scale;        /* -1 undecided, 0 linear in t, 1 linear in log10(t) */
  double ref;       /* the log scale's start (a positive time) */
  double started;   /* monotonic seconds at begin */
  double last_draw; /* monotonic seconds of the last output */
  double t;         /* the last time reached */
  size_t drawn;     /* characters of the bar line on screen */
};

/* Seconds on the monotonic clock. */
static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The output mode: quiet, else COTANGENT_PROGRESS, else whether out is a
 * terminal. */
static int pick_mode(FILE *out, int quiet) {
  if (quiet || !out) return MODE_OFF;
  const char *env = getenv("COTANGENT_PROGRESS");
  if (env && strcmp(env, "tty") == 0) return MODE_TTY;
  if (env && strcmp(env, "plain") == 0) return MODE_PLAIN;
  if (env && strcmp(env, "off") == 0) return MODE_OFF;
  return isatty(fileno(out)) ? MODE_TTY : MODE_PLAIN;
}

ct_progress *ct_progress_new(FILE *out, int quiet) {
  ct_progress *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->out = out;
  p->mode = pick_mode(out, quiet);
  return p;
}

/* Decides linear or log-time progress once the first time past t0 is
 * known: log when t0 > 0 and t1 / t0 spans LOG_DECADES, or when that first
 * time is that many decades below the span (a stiff run from t0 = 0). */
static void decide_scale(ct_progress *p, double t) {
  double span = p->t1 - p->t0;
  if (p->t0 > 0 && log10(p->t1 / p->t0) >= LOG_DECADES) {
    p->scale = 1, p->ref = p->t0;
  } else if (p->t0 == 0 && t > 0 && span > 0 && log10(span / t) >= LOG_DECADES) {
    p->scale = 1, p->ref = t;
  } else if (t > p->t0 || p->t0 != 0) {
    p->scale = 0;
  }
}

/* The fraction of the phase done, in [0, 1]. */
static double fraction(const ct_progress *p) {
  double f = 0;
  if (p->scale == 1 && p->t > 0)
    f = (log10(p->t) - log10(p->ref)) / (log10(p->t1) - log10(p->ref));
  else if (p->scale == 0 && p->t1 != p->t0)
    f = (p->t - p->t0) / (p->t1 - p->t0);
  return isfinite(f) ? fmin(1, fmax(0, f)) : 0;
}

/* "ETA 3 s", "ETA 2 min 5 s", "ETA 1 h 4 min" from the rate so far, or
 * "ETA ?" before there is a rate worth extrapolating. */
static void format_eta(char *buf, size_t size, double elapsed, double frac) {
  if (frac < 0.01 || elapsed < 0.3 || frac >= 1) {
    snprintf(buf, size, frac >= 1 ? "ETA 0 s" : "ETA ?");
    return;
  }
  double left = elapsed * (1 - frac) / frac;
  long s = left > 1e8 ? 100000000L : (long)(left + 0.5);
  if (s < 60) snprintf(buf, size, "ETA %ld s", s);
  else if (s < 3600) snprintf(buf, size, "ETA %ld min %ld s", s / 60, s % 60);
  else snprintf(buf, size, "ETA %ld h %ld min", s / 3600, (s % 3600) / 60);
}

/* The status text: "forward_sensitivity 2/3  t = 1.2e+03 / 4e+07  ETA 3 s
 * (log t)". */
static void status_text(const ct_progress *p, char *buf, size_t size, double frac) {
  char t[32], t1[32], eta[48];
  ct_fmt_num(t, sizeof t, "%.3g", p->t);
  ct_fmt_num(t1, sizeof t1, "%.3g", p->t1);
  format_eta(eta, sizeof eta, now_s() - p->started, frac);
  snprintf(buf, size, "%s  t = %s / %s  %s%s", p->what, t, t1, eta,
           p->scale == 1 ? " (log t)" : "");
}

/* Redraws the bar line in place (terminal mode). */
static void draw_bar(ct_progress *p) {
  char status[256], line[320];
  double frac = fraction(p);
  int filled = (int)(frac * BAR_WIDTH + 1e-9);
  char bar[BAR_WIDTH + 1];
  for (int i = 0; i < BAR_WIDTH; i++) bar[i] = i < filled ? '#' : '.';
  bar[BAR_WIDTH] = '\0';
  status_text(p, status, sizeof status, frac);
  int n = snprintf(line, sizeof line, "[%s] %s", bar, status);
  size_t len = n < 0 ? 0 : (size_t)n >= sizeof line ? sizeof line - 1 : (size_t)n;
  fprintf(p->out, "\r%s", line);
  for (size_t i = len; i < p->drawn; i++) fputc(' ', p->out);
  p->drawn = len;
  fflush(p->out);
}

/* Writes one plain progress line. */
static void print_plain(ct_progress *p) {
  char status[256], pct[16];
  double frac = fraction(p);
  status_text(p, status, sizeof status, frac);
  snprintf(pct, sizeof pct, "%d%%", (int)(100 * frac));
  fprintf(p->out, "%s  (%s)\n", status, pct);
  fflush(p->out);
}

/* Clears the bar line (terminal mode) so that a line can replace it. */
static void clear_bar(ct_progress *p) {
  if (p->mode != MODE_TTY || p->drawn == 0) return;
  fputc('\r', p->out);
  for (size_t i = 0; i < p->drawn; i++) fputc(' ', p->out);
  fputc('\r', p->out);
  p->drawn = 0;
}

void ct_progress_begin(ct_progress *p, const char *what, double t0, double t1) {
  if (!p || p->mode == MODE_OFF) return;
  if (p->active) ct_progress_end(p, "interrupted");
  snprintf(p->what, sizeof p->what, "%s", what ? what : "");
  p->t0 = t0, p->t1 = t1, p->t = t0;
  p->scale = -1;
  decide_scale(p, t0);
  p->active = 1;
  p->started = p->last_draw = now_s();
  if (p->mode == MODE_TTY) {
    draw_bar(p);
  } else {
    char a[32], b[32];
    ct_fmt_num(a, sizeof a, "%.3g", t0);
    ct_fmt_num(b, sizeof b, "%.3g", t1);
    fprintf(p->out, "%s: integrating from t = %s to %s\n", p->what, a, b);
    fflush(p->out);
  }
}

void ct_progress_update(ct_progress *p, double t) {
  if (!p || p->mode == MODE_OFF || !p->active || !isfinite(t)) return;
  p->t = t;
  if (p->scale < 0) decide_scale(p, t);
  double now = now_s();
  double interval = p->mode == MODE_TTY ? TTY_INTERVAL_S : PLAIN_INTERVAL_S;
  if (now - p->last_draw < interval) return;
  p->last_draw = now;
  if (p->mode == MODE_TTY) draw_bar(p);
  else print_plain(p);
}

void ct_progress_end(ct_progress *p, const char *outcome) {
  if (!p || p->mode == MODE_OFF || !p->active) return;
  clear_bar(p);
  char wall[32];
  ct_fmt_num(wall, sizeof wall, "%.3g", now_s() - p->started);
  fprintf(p->out, "%s: %s (%s s)\n", p->what, outcome ? outcome : "done", wall);
  fflush(p->out);
  p->active = 0;
}

void ct_progress_free(ct_progress *p) {
  if (!p) return;
  if (p->active && p->mode == MODE_TTY) {
    clear_bar(p);
    fflush(p->out);
  }
  free(p);
}
