/* Token-wise comparison: numbers with tolerance, text exactly. */
#include "numdiff.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct cursor {
  const char *p;
  int line;
} cursor;

static void skip_space(cursor *c) {
  while (*c->p && isspace((unsigned char)*c->p)) {
    if (*c->p == '\n') c->line++;
    c->p++;
  }
}

/* A number starts with a digit, or a sign or '.' followed by a digit, and
 * is not glued to a preceding letter (so "y1" reads as text then 1). */
static int number_at(const char *p, const char *start, double *value,
                     const char **end) {
  const char *q = p;
  if (*q == '+' || *q == '-') q++;
  if (*q == '.') q++;
  if (!isdigit((unsigned char)*q)) {
    if (strncasecmp(q, "nan", 3) && strncasecmp(q, "inf", 3)) return 0;
  }
  if (p > start && (isalpha((unsigned char)p[-1]) || p[-1] == '_')) return 0;
  char *e;
  *value = strtod(p, &e);
  if (e == p) return 0;
  *end = e;
  return 1;
}

static int numbers_match(double a, double b, const ct_numdiff_opts *o) {
  if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
  if (isinf(a) || isinf(b)) return a == b;
  return fabs(a - b) <= o->atol + o->rtol * fmax(fabs(a), fabs(b));
}

/* Copies up to 40 characters of the token at p into out. */
static void token_text(const char *p, char *out, size_t n) {
  size_t i = 0;
  while (p[i] && !isspace((unsigned char)p[i]) && i + 1 < n && i < 40) {
    out[i] = p[i];
    i++;
  }
  out[i] = '\0';
}

static int mismatch(const cursor *e, const cursor *a, const char *what,
                    char *why, size_t why_size) {
  char te[48], ta[48];
  token_text(e->p, te, sizeof te);
  token_text(a->p, ta, sizeof ta);
  if (why_size)
    snprintf(why, why_size,
             "%s: expected line %d '%s', actual line %d '%s'", what, e->line,
             *e->p ? te : "<end>", a->line, *a->p ? ta : "<end>");
  return 1;
}

int ct_numdiff(const char *expected, const char *actual,
               const ct_numdiff_opts *opts, char *why, size_t why_size) {
  cursor e = {expected, 1}, a = {actual, 1};
  for (;;) {
    skip_space(&e);
    skip_space(&a);
    if (!*e.p || !*a.p)
      return (*e.p || *a.p) ? mismatch(&e, &a, "length differs", why, why_size)
                            : 0;
    double ve, va;
    const char *ee, *ae;
    int ne = number_at(e.p, expected, &ve, &ee);
    int na = number_at(a.p, actual, &va, &ae);
    if (ne && na) {
      if (!numbers_match(ve, va, opts))
        return mismatch(&e, &a, "number out of tolerance", why, why_size);
      e.p = ee;
      a.p = ae;
    } else if (ne != na || *e.p != *a.p) {
      return mismatch(&e, &a, "text differs", why, why_size);
    } else {
      e.p++;
      a.p++;
    }
  }
}
