/* Config errors with their location, and "did you mean" suggestions. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config_internal.h"

int ct_cfg_error(ct_context *ctx, ct_cfg_loc loc, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  const char *file = loc.file ? loc.file : "<config>";
  if (loc.line > 0)
    return CT_ERROR(ctx, CT_ERR_CONFIG, "%s:%d:%d: %s", file, loc.line, loc.col, msg);
  return CT_ERROR(ctx, CT_ERR_CONFIG, "%s: %s", file, msg);
}

/* Levenshtein distance of a and b, capped at cap + 1 (rows of at most 64). */
static size_t edit_distance(const char *a, const char *b, size_t cap) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 63 || lb > 63) return cap + 1;
  if ((la > lb ? la - lb : lb - la) > cap) return cap + 1;
  size_t row[64];
  for (size_t j = 0; j <= lb; j++) row[j] = j;
  for (size_t i = 1; i <= la; i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t up = row[j];
      size_t sub = diag + (a[i - 1] != b[j - 1]);
      size_t best = up + 1 < row[j - 1] + 1 ? up + 1 : row[j - 1] + 1;
      row[j] = sub < best ? sub : best;
      diag = up;
    }
  }
  return row[lb];
}

const char *ct_cfg_closest(const char *word, const char *const *known, size_t n_known) {
  if (!word || !known) return NULL;
  size_t cap = strlen(word) <= 4 ? 1 : 2, best = cap + 1;
  const char *pick = NULL;
  for (size_t i = 0; i < n_known; i++) {
    if (!known[i]) continue;
    size_t d = edit_distance(word, known[i], cap);
    if (d < best) best = d, pick = known[i];
  }
  return pick;
}
