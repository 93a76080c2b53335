/* CSV data files for data-misfit objectives: a header with a time column
 * and named columns (value columns and optional sigma columns), '#'
 * comments, blank lines, empty cells for missing values, CRLF and a UTF-8
 * byte order mark tolerated. Every error names FILE:LINE:COLUMN. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_internal.h"

/* One cell of a line: its text (not NUL-terminated) and 1-based column. */
typedef struct cell {
  const char *text;
  size_t len;
  int col;
} cell;

/* The reader's state: the file's text and the table being built. */
typedef struct reader {
  ct_context *ctx;
  const char *path;
  char *buf; /* the whole file, NUL-terminated */
  size_t len;
  cell *cells; /* the cells of the current line */
  size_t n_cells, cap_cells;
  size_t n_file_cols;  /* cells per line (the header's) */
  int *role;           /* per file column: -1 time, k value column k,
                          -(2 + k) sigma of value column k */
  char **file_names;   /* per file column: its name (messages) */
  int has_sigma;       /* some column is a sigma column */
  size_t cap_rows;
  ct_cfg_data *d;
} reader;

/* The location of a cell (or column) on a line of the data file. */
static ct_cfg_loc at(const reader *r, int line, int col) {
  ct_cfg_loc loc = {r->path, line, col};
  return loc;
}

/* Reads the whole file into r->buf; missing or unreadable files are
 * reported at `from` (the config key that names the file). */
static int read_all(reader *r, ct_cfg_loc from) {
  FILE *f = fopen(r->path, "rb");
  if (!f)
    return ct_cfg_error(r->ctx, from, "cannot read the data file '%s': %s", r->path,
                        strerror(errno));
  size_t cap = 4096, len = 0;
  char *buf = ct_alloc(r->ctx, cap);
  while (buf) {
    len += fread(buf + len, 1, cap - 1 - len, f);
    if (len < cap - 1) break;
    char *bigger = cap > ((size_t)-1) / 2 ? NULL : ct_realloc(r->ctx, buf, cap * 2);
    if (!bigger) {
      ct_free(r->ctx, buf);
      buf = NULL;
      break;
    }
    buf = bigger, cap *= 2;
  }
  int failed = ferror(f);
  fclose(f);
  if (!buf) return CT_ERR_NOMEM;
  buf[len] = '\0';
  r->buf = buf, r->len = len;
  if (failed) return ct_cfg_error(r->ctx, from, "error reading the data file '%s'", r->path);
  return CT_OK;
}

/* Appends a cell to the current line's list. */
static int push_cell(reader *r, const char *text, size_t len, int col) {
  if (r->n_cells == r->cap_cells) {
    size_t cap = r->cap_cells ? 2 * r->cap_cells : 16;
    cell *c = ct_realloc_array(r->ctx, r->cells, cap, sizeof *c);
    if (!c) return CT_ERR_NOMEM;
    r->cells = c, r->cap_cells = cap;
  }
  cell c = {text, len, col};
  r->cells[r->n_cells++] = c;
  return CT_OK;
}

/* Splits line (len bytes, no newline) into trimmed cells at commas; a cell
 * in double quotes may hold commas and "" for a quote (the quotes are kept
 * in the text and removed by cell_string). */
static int split_line(reader *r, const char *line, size_t len, int lineno) {
  r->n_cells = 0;
  size_t i = 0;
  for (;;) {
    while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
    size_t start = i;
    if (i < len && line[i] == '"') {
      for (i++;; i++) {
        if (i >= len)
          return ct_cfg_error(r->ctx, at(r, lineno, (int)start + 1),
                              "unterminated quote in this cell");
        if (line[i] == '"' && i + 1 < len && line[i + 1] == '"') i++;
        else if (line[i] == '"') break;
      }
      i++;
    }
    while (i < len && line[i] != ',') i++;
    size_t end = i;
    while (end > start && (line[end - 1] == ' ' || line[end - 1] == '\t')) end--;
    int status = push_cell(r, line + start, end - start, (int)start + 1);
    if (status) return status;
    if (i >= len) return CT_OK;
    i++; /* the comma */
  }
}

/* A cell's text as a new string, without surrounding quotes ("" -> "). */
static char *cell_string(reader *r, const cell *c) {
  const char *s = c->text;
  size_t n = c->len;
  int quoted = n >= 2 && s[0] == '"' && s[n - 1] == '"';
  if (quoted) s++, n -= 2;
  char *out = ct_alloc(r->ctx, n + 1);
  if (!out) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    out[k++] = s[i];
    if (quoted && s[i] == '"' && i + 1 < n && s[i + 1] == '"') i++;
  }
  out[k] = '\0';
  return out;
}

/* Whether a file column named `name` is a sigma column: "sigma_<x>" or
 * "<x>_sigma" (x not empty); *off and *len get where x is in name. Whether
 * x names another column is for the caller to check. */
static int sigma_base(const char *name, size_t *off, size_t *len) {
  size_t n = strlen(name);
  if (n > 6 && strncmp(name, "sigma_", 6) == 0) return *off = 6, *len = n - 6, 1;
  if (n > 6 && strcmp(name + n - 6, "_sigma") == 0) return *off = 0, *len = n - 6, 1;
  return 0;
}

/* The index of the header name equal to text[0..len) other than `self`,
 * or -1. */
static long find_name(char *const *names, size_t n, size_t self, const char *text,
                      size_t len) {
  for (size_t k = 0; k < n; k++)
    if (k != self && strlen(names[k]) == len && memcmp(names[k], text, len) == 0)
      return (long)k;
  return -1;
}

/* Checks the header's names: the first is t or time, none empty, no
 * duplicates. */
static int check_header_names(reader *r, char **names, int lineno) {
  size_t n = r->n_file_cols;
  if (strcasecmp(names[0], "t") != 0 && strcasecmp(names[0], "time") != 0)
    return ct_cfg_error(r->ctx, at(r, lineno, r->cells[0].col),
                        "the first column must be the time, named 't' or 'time', "
                        "not '%s'",
                        names[0]);
  for (size_t k = 0; k < n; k++) {
    if (!names[k][0])
      return ct_cfg_error(r->ctx, at(r, lineno, r->cells[k].col),
                          "column %zu of the header has no name", k + 1);
    long first = find_name(names, k, k, names[k], strlen(names[k]));
    if (first >= 0)
      return ct_cfg_error(r->ctx, at(r, lineno, r->cells[k].col),
                          "duplicate column name '%s' (also column %ld)", names[k],
                          first + 1);
  }
  if (n < 2)
    return ct_cfg_error(r->ctx, at(r, lineno, 1),
                        "the header has only the time column: no data columns");
  return CT_OK;
}

/* Whether file column k is the sigma of another (value) column. */
static int is_sigma_column(char *const *names, size_t n, size_t k) {
  size_t off, len;
  return sigma_base(names[k], &off, &len) && find_name(names, n, k, names[k] + off, len) > 0;
}

/* Assigns each file column its role (time, value column k, sigma of k)
 * and copies the value columns' names into d->names. */
static int assign_roles(reader *r, char **names, int lineno) {
  size_t n = r->n_file_cols;
  ct_cfg_data *d = r->d;
  r->role = ct_calloc(r->ctx, n, sizeof *r->role);
  d->names = ct_calloc(r->ctx, n, sizeof *d->names);
  if (!r->role || !d->names) return CT_ERR_NOMEM;
  r->role[0] = -1;
  for (size_t k = 1; k < n; k++) {
    if (is_sigma_column(names, n, k)) continue;
    if (!(d->names[d->n_cols] = ct_strdup(r->ctx, names[k]))) return CT_ERR_NOMEM;
    r->role[k] = (int)d->n_cols++;
  }
  size_t off = 0, len = 0;
  for (size_t k = 1; k < n; k++) {
    if (!is_sigma_column(names, n, k)) continue;
    sigma_base(names[k], &off, &len);
    long base = find_name(d->names, d->n_cols, (size_t)-1, names[k] + off, len);
    if (base < 0)
      return ct_cfg_error(r->ctx, at(r, lineno, r->cells[k].col),
                          "'%s' would be the sigma of '%.*s', which is a sigma column "
                          "itself",
                          names[k], (int)len, names[k] + off);
    r->role[k] = -(2 + (int)base);
    r->has_sigma = 1;
  }
  return CT_OK;
}

/* Reports the second sigma column of the same value column. */
static int check_sigma_unique(reader *r, char **names, int lineno) {
  size_t n = r->n_file_cols;
  for (size_t k = 1; k < n; k++)
    for (size_t j = 1; j < k; j++)
      if (r->role[k] <= -2 && r->role[k] == r->role[j])
        return ct_cfg_error(r->ctx, at(r, lineno, r->cells[k].col),
                            "two sigma columns for '%s': '%s' and '%s'",
                            r->d->names[-(r->role[k] + 2)], names[j], names[k]);
  return CT_OK;
}

/* Reads the header line: names (kept in r->file_names), roles, sigma
 * columns. */
static int parse_header(reader *r, int lineno) {
  size_t n = r->n_cells;
  char **names = r->file_names = ct_calloc(r->ctx, n, sizeof *names);
  if (!names) return CT_ERR_NOMEM;
  r->n_file_cols = n;
  int status = CT_OK;
  for (size_t k = 0; k < n && !status; k++)
    if (!(names[k] = cell_string(r, &r->cells[k]))) status = CT_ERR_NOMEM;
  if (!status) status = check_header_names(r, names, lineno);
  if (!status) status = assign_roles(r, names, lineno);
  if (!status) status = check_sigma_unique(r, names, lineno);
  return status;
}

/* The words a data file may not use for a number. */
static int is_nonfinite_word(const char *s) {
  if (*s == '+' || *s == '-') s++;
  return strcasecmp(s, "nan") == 0 || strcasecmp(s, "inf") == 0 ||
         strcasecmp(s, "infinity") == 0;
}

/* Parses a cell as a finite number; an empty cell gives NaN (missing)
 * unless `required`. `what` names the column in messages. */
static int parse_number(reader *r, const cell *c, int lineno, const char *what,
                        int required, double *out) {
  char text[64];
  ct_cfg_loc loc = at(r, lineno, c->col);
  cell unquoted = *c;
  if (c->len >= 2 && c->text[0] == '"' && c->text[c->len - 1] == '"')
    unquoted.text++, unquoted.len -= 2, c = &unquoted;
  if (c->len == 0) {
    if (required) return ct_cfg_error(r->ctx, loc, "missing value for %s", what);
    *out = NAN;
    return CT_OK;
  }
  int plain = c->len < sizeof text;
  for (size_t i = 0; plain && i < c->len; i++)
    plain = strchr("0123456789+-.eE", c->text[i]) != NULL && c->text[i] != '\0';
  size_t n = c->len < sizeof text ? c->len : sizeof text - 1;
  memcpy(text, c->text, n);
  text[n] = '\0';
  if (!plain && c->len < sizeof text && is_nonfinite_word(text))
    return ct_cfg_error(r->ctx, loc,
                        "'%s' is not allowed in %s: write a finite number, or leave "
                        "the cell empty for a missing value",
                        text, what);
  char *end = NULL;
  errno = 0;
  double v = plain ? strtod(text, &end) : 0;
  if (!plain || end != text + n)
    return ct_cfg_error(r->ctx, loc, "malformed number '%.*s' in %s",
                        (int)(c->len > 40 ? 40 : c->len), c->text, what);
  if (!isfinite(v))
    return ct_cfg_error(r->ctx, loc, "number '%s' in %s is out of range", text, what);
  *out = v;
  return CT_OK;
}

/* Makes room for one more row in the table. */
static int grow_rows(reader *r) {
  ct_cfg_data *d = r->d;
  if (d->n_rows < r->cap_rows) return CT_OK;
  size_t cap = r->cap_rows ? 2 * r->cap_rows : 64;
  size_t w = d->n_cols;
  double *t = ct_realloc_array(r->ctx, d->t, cap, sizeof *t);
  if (t) d->t = t;
  int *line = t ? ct_realloc_array(r->ctx, d->line, cap, sizeof *line) : NULL;
  if (line) d->line = line;
  double *v = line ? ct_realloc_array(r->ctx, d->values, cap, w * sizeof *v) : NULL;
  if (v) d->values = v;
  if (!v) return CT_ERR_NOMEM;
  if (r->has_sigma) {
    double *s = ct_realloc_array(r->ctx, d->sigma, cap, w * sizeof *s);
    if (!s) return CT_ERR_NOMEM;
    d->sigma = s;
  }
  r->cap_rows = cap;
  return CT_OK;
}

/* Reads the time cell of a row and checks that times do not decrease. */
static int parse_time(reader *r, int lineno, double *t) {
  ct_cfg_data *d = r->d;
  int status = parse_number(r, &r->cells[0], lineno, "the time column", 1, t);
  if (status) return status;
  if (d->n_rows > 0 && *t < d->t[d->n_rows - 1]) {
    char now[32], before[32];
    ct_fmt_num(now, sizeof now, "%.6g", *t);
    ct_fmt_num(before, sizeof before, "%.6g", d->t[d->n_rows - 1]);
    return ct_cfg_error(r->ctx, at(r, lineno, r->cells[0].col),
                        "time %s is before the time %s of line %d: times must "
                        "not decrease",
                        now, before, d->line[d->n_rows - 1]);
  }
  return CT_OK;
}

/* Reads one data row (its cells already split) into the table. */
static int parse_row(reader *r, int lineno) {
  ct_cfg_data *d = r->d;
  if (r->n_cells != r->n_file_cols) {
    const cell *last = &r->cells[r->n_cells - 1];
    int col = r->n_cells < r->n_file_cols ? last->col + (int)last->len
                                          : r->cells[r->n_file_cols].col;
    return ct_cfg_error(r->ctx, at(r, lineno, col),
                        "this row has %zu cells but the header has %zu columns",
                        r->n_cells, r->n_file_cols);
  }
  int status = grow_rows(r);
  double t = 0;
  if (!status) status = parse_time(r, lineno, &t);
  size_t row = d->n_rows, w = d->n_cols;
  for (size_t j = 0; j < w && !status; j++) {
    d->values[row * w + j] = NAN;
    if (d->sigma) d->sigma[row * w + j] = NAN;
  }
  char what[96];
  for (size_t k = 1; k < r->n_file_cols && !status; k++) {
    int role = r->role[k];
    int is_sigma = role <= -2;
    size_t j = (size_t)(is_sigma ? -(role + 2) : role);
    snprintf(what, sizeof what, "column '%.80s'", r->file_names[k]);
    double v;
    status = parse_number(r, &r->cells[k], lineno, what, 0, &v);
    if (!status && is_sigma && !(v > 0) && !isnan(v))
      status = ct_cfg_error(r->ctx, at(r, lineno, r->cells[k].col),
                            "sigma must be positive in %s, not '%.*s'", what,
                            (int)r->cells[k].len, r->cells[k].text);
    if (!status) (is_sigma ? d->sigma : d->values)[row * w + j] = v;
  }
  if (status) return status;
  d->t[row] = t;
  d->line[row] = lineno;
  d->n_rows++;
  return CT_OK;
}

/* Whether a line holds nothing but spaces, or is a '#' comment. */
static int is_skipped(const char *line, size_t len) {
  size_t i = 0;
  while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
  return i == len || line[i] == '#';
}

/* Walks the file's lines: the header, then the rows. */
static int parse_lines(reader *r) {
  const char *p = r->buf, *end = r->buf + r->len;
  if (r->len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;
  const char *nul = memchr(p, '\0', (size_t)(end - p));
  int lineno = 0, have_header = 0, status = CT_OK;
  while (p < end && !status) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t len = (size_t)((nl ? nl : end) - p);
    lineno++;
    if (nul && nul < p + len) {
      return ct_cfg_error(r->ctx, at(r, lineno, (int)(nul - p) + 1),
                          "a NUL byte: this is not a text (CSV) file");
    }
    if (len > 0 && p[len - 1] == '\r') len--;
    if (!is_skipped(p, len)) {
      status = split_line(r, p, len, lineno);
      if (!status) status = have_header ? parse_row(r, lineno) : parse_header(r, lineno);
      have_header = 1;
    }
    p = nl ? nl + 1 : end;
  }
  if (status) return status;
  if (!have_header)
    return ct_cfg_error(r->ctx, at(r, lineno > 0 ? lineno : 1, 1),
                        "the data file is empty: expected a header line such as "
                        "'t,x,y'");
  if (r->d->n_rows == 0)
    return ct_cfg_error(r->ctx, at(r, lineno, 1),
                        "the data file has a header but no rows of data");
  return CT_OK;
}

int ct_cfg_data_read(ct_context *ctx, const char *path, ct_cfg_loc from,
                     ct_cfg_data **out) {
  if (!out) return CT_ERROR(ctx, CT_ERR_ARG, "ct_cfg_data_read: out is NULL");
  *out = NULL;
  if (!path || !*path) return ct_cfg_error(ctx, from, "the data file name is empty");
  reader r = {.ctx = ctx, .path = path};
  r.d = ct_calloc(ctx, 1, sizeof *r.d);
  if (!r.d) return CT_ERR_NOMEM;
  r.d->ctx = ctx;
  int status = (r.d->path = ct_strdup(ctx, path)) ? CT_OK : CT_ERR_NOMEM;
  if (!status) status = read_all(&r, from);
  if (!status) status = parse_lines(&r);
  for (size_t k = 0; r.file_names && k < r.n_file_cols; k++) ct_free(ctx, r.file_names[k]);
  ct_free(ctx, r.file_names);
  ct_free(ctx, r.buf);
  ct_free(ctx, r.cells);
  ct_free(ctx, r.role);
  if (status) {
    ct_cfg_data_free(r.d);
    return status;
  }
  *out = r.d;
  return CT_OK;
}

void ct_cfg_data_free(ct_cfg_data *d) {
  if (!d) return;
  ct_context *ctx = d->ctx;
  for (size_t k = 0; d->names && k < d->n_cols; k++) ct_free(ctx, d->names[k]);
  ct_free(ctx, d->names);
  ct_free(ctx, d->path);
  ct_free(ctx, d->t);
  ct_free(ctx, d->values);
  ct_free(ctx, d->sigma);
  ct_free(ctx, d->line);
  ct_free(ctx, d);
}
