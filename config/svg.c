/* Our small SVG 1.1 plot writer: line plots (linear or log axes, round
 * 1-2-5 ticks, a legend, colors that differ in lightness plus dash patterns
 * and marker shapes, NaN gaps) and horizontal bar charts. Numbers are
 * written with '.' whatever the locale; text is escaped for XML. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "config_internal.h"

enum {
  PLOT_W = 720,   /* the plot area plus the margins, in px */
  MARGIN_L = 78,  /* room for the y tick labels and label */
  MARGIN_R = 190, /* room for the legend */
  MARGIN_T = 40,  /* the title */
  MARGIN_B = 56,  /* x tick labels and label */
  AREA_H = 320,   /* the plot area's height */
  LEGEND_ROW = 18,
  MAX_TICKS = 24
};

/* Okabe-Ito colors (distinct for color-blind readers), ordered so that
 * neighbours differ in lightness too; with the dashes and markers below
 * the series stay apart in grayscale. */
static const char *const COLORS[] = {"#000000", "#E69F00", "#0072B2", "#D55E00",
                                     "#56B4E9", "#009E73", "#CC79A7"};
static const char *const DASHES[] = {"", "7,3", "2,2", "9,3,2,3", "4,4"};
enum { N_COLORS = 7, N_DASHES = 5, N_MARKERS = 4 };

/* An axis: the data range it shows and its ticks. */
typedef struct axis {
  double lo, hi;  /* the shown range (log10 of it on a log axis) */
  int log;
  double ticks[MAX_TICKS]; /* tick values (not log10) */
  int n_ticks;
  int decimals;   /* fixed decimals of the tick labels, or -1: %g */
  int digits;     /* significant digits of %g labels */
} axis;

/* Writes text with &, <, >, quotes escaped; control characters other than
 * tab and newline, and bytes that are not UTF-8, become '?'. */
static void put_escaped(FILE *f, const char *s) {
  const unsigned char *p = (const unsigned char *)(s ? s : "");
  while (*p) {
    unsigned c = *p;
    int extra = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2
                : (c & 0xF8) == 0xF0 ? 3 : -1;
    int ok = extra >= 0 && !(extra == 1 && c < 0xC2) && !(extra == 3 && c > 0xF4);
    for (int k = 1; ok && k <= extra; k++) ok = (p[k] & 0xC0) == 0x80;
    if (!ok) {
      fputc('?', f), p++;
      continue;
    }
    if (extra > 0) {
      fwrite(p, 1, (size_t)extra + 1, f), p += extra + 1;
      continue;
    }
    if (c == '&') fputs("&amp;", f);
    else if (c == '<') fputs("&lt;", f);
    else if (c == '>') fputs("&gt;", f);
    else if (c == '"') fputs("&quot;", f);
    else if (c == '\'') fputs("&apos;", f);
    else if (c < 0x20 && c != '\t' && c != '\n') fputc('?', f);
    else fputc((int)c, f);
    p++;
  }
}

/* A coordinate with two decimals and no trailing zeros ("12.5", "3"). */
static void put_coord(FILE *f, double v) {
  char buf[48];
  if (!isfinite(v) || fabs(v) > 1e7) v = v > 0 ? 1e7 : -1e7;
  ct_fmt_num(buf, sizeof buf, "%.2f", v);
  char *end = buf + strlen(buf);
  while (end > buf && end[-1] == '0') *--end = '\0';
  if (end > buf && end[-1] == '.') *--end = '\0';
  fputs(strcmp(buf, "-0") == 0 ? "0" : buf, f);
}

/* The tick label of value v on axis a. */
static void tick_label(char *buf, size_t size, const axis *a, double v) {
  if (a->log) {
    int e = (int)lround(log10(v));
    double mant = v / pow(10.0, e);
    if (fabs(mant - 1) < 1e-9 && (e < -3 || e > 4)) snprintf(buf, size, "1e%d", e);
    else ct_fmt_num(buf, size, "%.6g", v);
    return;
  }
  if (fabs(v) < 1e-12 * (fabs(a->hi) + fabs(a->lo))) v = 0;
  char fmt[16];
  if (a->decimals >= 0) snprintf(fmt, sizeof fmt, "%%.%df", a->decimals);
  else snprintf(fmt, sizeof fmt, "%%.%dg", a->digits > 0 ? a->digits : 4);
  ct_fmt_num(buf, size, fmt, v);
}

/* The smallest round step (1, 2 or 5 times a power of ten) of at least
 * span / target: at most `target` intervals. */
static double nice_step(double span, int target) {
  double raw = span / target;
  double mag = pow(10.0, floor(log10(raw)));
  double m = raw / mag;
  return (m <= 1 + 1e-9 ? 1 : m <= 2 + 1e-9 ? 2 : m <= 5 + 1e-9 ? 5 : 10) * mag;
}

/* A linear axis over [lo, hi] (finite) with round ticks at its ends. */
static void linear_axis(axis *a, double lo, double hi, int target) {
  if (!(hi > lo)) {
    double pad = lo == 0 ? 1 : fabs(lo) * 0.1;
    lo -= pad, hi += pad;
  }
  a->log = 0;
  double step = nice_step(hi - lo, target);
  a->lo = floor(lo / step) * step;
  a->hi = ceil(hi / step) * step;
  if (!isfinite(step) || !isfinite(a->lo) || !isfinite(a->hi) || !(a->hi > a->lo)) {
    a->lo = lo, a->hi = hi, a->n_ticks = 2, a->decimals = -1, a->digits = 4;
    a->ticks[0] = lo, a->ticks[1] = hi;
    return;
  }
  int e = (int)floor(log10(step) + 1e-9);
  double biggest = fmax(fabs(a->lo), fabs(a->hi));
  a->decimals = (biggest >= 1e6 || e < -5) ? -1 : e < 0 ? -e : 0;
  int lead = biggest > 0 ? (int)floor(log10(biggest)) : e;
  a->digits = lead - e + 1 < 1 ? 1 : lead - e + 1 > 15 ? 15 : lead - e + 1;
  a->n_ticks = 0;
  for (int k = 0; k < MAX_TICKS; k++) {
    double v = a->lo + k * step;
    if (v > a->hi + step * 1e-6) break;
    a->ticks[a->n_ticks++] = v;
  }
}

/* A log axis over [lo, hi] (positive): whole decades, a tick every k-th
 * decade (at most 10 ticks; the axis ends on one), with 2 and 5 between
 * when it spans one decade. */
static void log_axis(axis *a, double lo, double hi) {
  a->log = 1, a->decimals = -1;
  a->lo = floor(log10(lo) + 1e-9);
  a->hi = ceil(log10(hi) - 1e-9);
  if (!(a->hi > a->lo)) a->hi = a->lo + 1;
  int decades = (int)(a->hi - a->lo);
  int every = (decades + 9) / 10;
  decades = (decades + every - 1) / every * every;
  a->hi = a->lo + decades;
  a->n_ticks = 0;
  for (int d = 0; d <= decades && a->n_ticks < MAX_TICKS; d += every) {
    double base = pow(10.0, a->lo + d);
    a->ticks[a->n_ticks++] = base;
    if (decades == 1 && d == 0) {
      a->ticks[a->n_ticks++] = 2 * base;
      a->ticks[a->n_ticks++] = 5 * base;
    }
  }
}

/* Whether v can be drawn on axis a (finite; positive on a log axis). */
static int drawable(const axis *a, double v) { return isfinite(v) && (!a->log || v > 0); }

/* The position of v along an axis of `len` px, from its low end. */
static double axis_pos(const axis *a, double v, double len) {
  double x = a->log ? log10(v) : v;
  return (x - a->lo) / (a->hi - a->lo) * len;
}

/* Fits an axis to the x (which = 0) or y values of every series. */
static void fit_axis(axis *a, const ct_svg_plot *plot, int which, int log) {
  double lo = INFINITY, hi = -INFINITY;
  axis probe = {.log = log};
  for (size_t s = 0; s < plot->n_series; s++) {
    const ct_svg_series *se = &plot->series[s];
    const double *v = which == 0 ? se->x : se->y;
    for (size_t i = 0; v && se->x && se->y && i < se->n; i++) {
      if (!isfinite(se->x[i]) || !isfinite(se->y[i])) continue;
      if (!drawable(&probe, v[i])) continue;
      lo = fmin(lo, v[i]), hi = fmax(hi, v[i]);
    }
  }
  if (!(lo <= hi)) lo = log ? 1 : 0, hi = log ? 10 : 1;
  if (log) log_axis(a, lo, hi);
  else linear_axis(a, lo, hi, 6);
}

/* The SVG header, background and title. */
static void put_header(FILE *f, int width, int height, const char *title) {
  fprintf(f,
          "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
          "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" "
          "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"Helvetica, Arial, "
          "sans-serif\" font-size=\"12\">\n",
          width, height, width, height);
  fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", width,
          height);
  if (title && *title) {
    fprintf(f, "<text class=\"title\" x=\"%d\" y=\"24\" text-anchor=\"middle\" "
               "font-size=\"15\" font-weight=\"bold\">", width / 2);
    put_escaped(f, title);
    fputs("</text>\n", f);
  }
}

/* The x axis (ticks, grid lines, labels) under the plot area. */
static void put_x_axis(FILE *f, const axis *a, int x0, int y0, int w, int h,
                       const char *label) {
  char buf[64];
  fputs("<g class=\"x-axis\" stroke=\"#000000\">\n", f);
  for (int k = 0; k < a->n_ticks; k++) {
    double x = x0 + axis_pos(a, a->ticks[k], w);
    fputs("<line x1=\"", f), put_coord(f, x), fprintf(f, "\" y1=\"%d\" x2=\"", y0);
    put_coord(f, x), fprintf(f, "\" y2=\"%d\" stroke=\"#dddddd\"/>\n", y0 + h);
    fputs("<line x1=\"", f), put_coord(f, x), fprintf(f, "\" y1=\"%d\" x2=\"", y0 + h);
    put_coord(f, x), fprintf(f, "\" y2=\"%d\"/>\n", y0 + h + 5);
    tick_label(buf, sizeof buf, a, a->ticks[k]);
    fputs("<text class=\"tick\" stroke=\"none\" x=\"", f), put_coord(f, x);
    fprintf(f, "\" y=\"%d\" text-anchor=\"middle\">", y0 + h + 19);
    put_escaped(f, buf), fputs("</text>\n", f);
  }
  fputs("</g>\n", f);
  if (!label || !*label) return;
  fprintf(f, "<text class=\"xlabel\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">",
          x0 + w / 2, y0 + h + 42);
  put_escaped(f, label), fputs("</text>\n", f);
}

/* The y axis (ticks, grid lines, labels) left of the plot area. */
static void put_y_axis(FILE *f, const axis *a, int x0, int y0, int w, int h,
                       const char *label) {
  char buf[64];
  fputs("<g class=\"y-axis\" stroke=\"#000000\">\n", f);
  for (int k = 0; k < a->n_ticks; k++) {
    double y = y0 + h - axis_pos(a, a->ticks[k], h);
    fprintf(f, "<line x1=\"%d\" y1=\"", x0), put_coord(f, y);
    fprintf(f, "\" x2=\"%d\" y2=\"", x0 + w), put_coord(f, y);
    fputs("\" stroke=\"#dddddd\"/>\n", f);
    fprintf(f, "<line x1=\"%d\" y1=\"", x0 - 5), put_coord(f, y);
    fprintf(f, "\" x2=\"%d\" y2=\"", x0), put_coord(f, y), fputs("\"/>\n", f);
    tick_label(buf, sizeof buf, a, a->ticks[k]);
    fprintf(f, "<text class=\"tick\" stroke=\"none\" x=\"%d\" y=\"", x0 - 8);
    put_coord(f, y + 4), fputs("\" text-anchor=\"end\">", f);
    put_escaped(f, buf), fputs("</text>\n", f);
  }
  fputs("</g>\n", f);
  if (!label || !*label) return;
  fprintf(f, "<text class=\"ylabel\" x=\"16\" y=\"%d\" text-anchor=\"middle\" "
             "transform=\"rotate(-90 16 %d)\">", y0 + h / 2, y0 + h / 2);
  put_escaped(f, label), fputs("</text>\n", f);
}

/* A marker of shape k (circle, square, triangle, diamond) centred at x, y. */
static void put_marker(FILE *f, int k, double x, double y, const char *color) {
  if (k == 0) {
    fputs("<circle cx=\"", f), put_coord(f, x), fputs("\" cy=\"", f), put_coord(f, y);
    fprintf(f, "\" r=\"3.5\" fill=\"%s\"/>\n", color);
    return;
  }
  static const double shapes[3][8] = {{-3.2, -3.2, 3.2, -3.2, 3.2, 3.2, -3.2, 3.2},
                                      {0, -4.2, 4, 3, -4, 3, 0, -4.2},
                                      {0, -4.5, 4.5, 0, 0, 4.5, -4.5, 0}};
  const double *s = shapes[(k - 1) % 3];
  fputs("<polygon points=\"", f);
  for (int i = 0; i < 4; i++) {
    if (i) fputc(' ', f);
    put_coord(f, x + s[2 * i]), fputc(',', f), put_coord(f, y + s[2 * i + 1]);
  }
  fprintf(f, "\" fill=\"%s\"/>\n", color);
}

/* One series: a path broken at undrawable points, or markers. */
static void put_series(FILE *f, const ct_svg_series *se, size_t s, const axis *ax,
                       const axis *ay, int x0, int y0, int w, int h) {
  const char *color = COLORS[s % N_COLORS];
  fprintf(f, "<g class=\"series\" id=\"series-%zu\">\n", s);
  int pen_down = 0, open = 0;
  for (size_t i = 0; se->x && se->y && i < se->n; i++) {
    if (!drawable(ax, se->x[i]) || !drawable(ay, se->y[i])) {
      pen_down = 0;
      continue;
    }
    double x = x0 + axis_pos(ax, se->x[i], w), y = y0 + h - axis_pos(ay, se->y[i], h);
    if (se->markers) {
      put_marker(f, (int)(s % N_MARKERS), x, y, color);
      continue;
    }
    fputs(pen_down ? " L" : open ? " M" : "<path fill=\"none\" stroke-width=\"1.8\" d=\"M", f);
    open = 1;
    put_coord(f, x), fputc(' ', f), put_coord(f, y);
    pen_down = 1;
  }
  if (open) {
    fprintf(f, "\" stroke=\"%s\"", color);
    const char *dash = DASHES[s % N_DASHES];
    if (*dash) fprintf(f, " stroke-dasharray=\"%s\"", dash);
    fputs("/>\n", f);
  }
  fputs("</g>\n", f);
}

/* The legend right of the plot area: a sample of each series and its label. */
static void put_legend(FILE *f, const ct_svg_plot *plot, int x, int y) {
  fputs("<g class=\"legend\">\n", f);
  for (size_t s = 0; s < plot->n_series; s++) {
    int row = y + (int)s * LEGEND_ROW;
    const char *color = COLORS[s % N_COLORS];
    if (plot->series[s].markers) {
      put_marker(f, (int)(s % N_MARKERS), x + 12, row, color);
    } else {
      fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" "
                 "stroke-width=\"1.8\"", x, row, x + 24, row, color);
      const char *dash = DASHES[s % N_DASHES];
      if (*dash) fprintf(f, " stroke-dasharray=\"%s\"", dash);
      fputs("/>\n", f);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\">", x + 30, row + 4);
    put_escaped(f, plot->series[s].label ? plot->series[s].label : "");
    fputs("</text>\n", f);
  }
  fputs("</g>\n", f);
}

int ct_svg_line_plot(FILE *f, const ct_svg_plot *plot) {
  if (!f || !plot || (plot->n_series && !plot->series)) return CT_ERR_ARG;
  axis ax, ay;
  fit_axis(&ax, plot, 0, plot->log_x);
  fit_axis(&ay, plot, 1, plot->log_y);
  int x0 = MARGIN_L, y0 = MARGIN_T, w = PLOT_W - MARGIN_L - MARGIN_R, h = AREA_H;
  size_t legend_h = plot->n_series * LEGEND_ROW + MARGIN_T + 10;
  int height = y0 + h + MARGIN_B;
  if (legend_h > (size_t)height) height = legend_h > 100000 ? 100000 : (int)legend_h;
  put_header(f, PLOT_W, height, plot->title);
  fprintf(f, "<defs><clipPath id=\"area\"><rect x=\"%d\" y=\"%d\" width=\"%d\" "
             "height=\"%d\"/></clipPath></defs>\n", x0 - 5, y0 - 5, w + 10, h + 10);
  put_x_axis(f, &ax, x0, y0, w, h, plot->xlabel);
  put_y_axis(f, &ay, x0, y0, w, h, plot->ylabel);
  fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
             "stroke=\"#000000\"/>\n", x0, y0, w, h);
  fputs("<g clip-path=\"url(#area)\">\n", f);
  for (size_t s = 0; s < plot->n_series; s++)
    put_series(f, &plot->series[s], s, &ax, &ay, x0, y0, w, h);
  fputs("</g>\n", f);
  put_legend(f, plot, x0 + w + 16, y0 + 8);
  fputs("</svg>\n", f);
  return ferror(f) ? CT_ERR_IO : CT_OK;
}

/* The width in px that the longest label needs (about 7 px a character,
 * at most 240). */
static int label_width(const char *const *labels, size_t n) {
  size_t longest = 4;
  for (size_t i = 0; i < n; i++)
    if (labels && labels[i] && strlen(labels[i]) > longest) longest = strlen(labels[i]);
  return longest > 34 ? 240 : (int)longest * 7;
}

/* One bar: from zero to values[i], with the value written at its end. */
static void put_bar(FILE *f, const axis *a, double value, const char *label, int i,
                    int x0, int y0, int w) {
  int row = y0 + 8 + i * 24;
  fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", x0 - 8, row + 13);
  put_escaped(f, label ? label : ""), fputs("</text>\n", f);
  char buf[48];
  ct_fmt_num(buf, sizeof buf, "%.4g", value);
  if (!isfinite(value)) {
    fprintf(f, "<text x=\"%d\" y=\"%d\">%s</text>\n", x0 + 4, row + 13, buf);
    return;
  }
  double zero = x0 + axis_pos(a, 0, w), end = x0 + axis_pos(a, value, w);
  double left = fmin(zero, end), len = fabs(end - zero);
  fputs("<rect class=\"bar\" x=\"", f), put_coord(f, left);
  fprintf(f, "\" y=\"%d\" width=\"", row), put_coord(f, len);
  fprintf(f, "\" height=\"18\" fill=\"%s\"/>\n", value < 0 ? "#D55E00" : "#0072B2");
  fputs("<text class=\"value\" x=\"", f), put_coord(f, value < 0 ? left - 4 : left + len + 4);
  fprintf(f, "\" y=\"%d\" text-anchor=\"%s\" font-size=\"10\">%s</text>\n", row + 13,
          value < 0 ? "end" : "start", buf);
}

int ct_svg_bar_chart(FILE *f, const char *title, const char *const *labels,
                     const double *values, size_t n) {
  if (!f || (n && !values)) return CT_ERR_ARG;
  if (n > 4000) n = 4000; /* a chart nobody could read; keeps sizes in int */
  double lo = 0, hi = 0;
  for (size_t i = 0; i < n; i++)
    if (isfinite(values[i])) lo = fmin(lo, values[i]), hi = fmax(hi, values[i]);
  axis a;
  linear_axis(&a, lo, hi, 5);
  int x0 = 20 + label_width(labels, n), y0 = MARGIN_T, w = 420;
  int h = (int)n * 24 + 16, width = x0 + w + 80;
  put_header(f, width, y0 + h + 36, title);
  put_x_axis(f, &a, x0, y0, w, h, NULL);
  fputs("<g class=\"bars\">\n", f);
  for (size_t i = 0; i < n; i++)
    put_bar(f, &a, values[i], labels ? labels[i] : NULL, (int)i, x0, y0, w);
  fputs("</g>\n", f);
  double zero = x0 + axis_pos(&a, 0, w);
  fputs("<line x1=\"", f), put_coord(f, zero);
  fprintf(f, "\" y1=\"%d\" x2=\"", y0), put_coord(f, zero);
  fprintf(f, "\" y2=\"%d\" stroke=\"#000000\"/>\n", y0 + h);
  fputs("</svg>\n", f);
  return ferror(f) ? CT_ERR_IO : CT_OK;
}
