/* ct-numdiff [--rtol R] [--atol A] EXPECTED ACTUAL
 * Exit 0 when the files match within tolerance, 1 when not, 2 on bad usage
 * or unreadable files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numdiff.h"

/* Reads a whole file into a malloc'd NUL-terminated string, or NULL. */
static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  size_t n;
  while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
    len += n;
    if (cap - len <= 1) {
      char *grown = realloc(buf, cap *= 2);
      if (!grown) {
        free(buf);
        buf = NULL;
      }
      buf = grown;
    }
  }
  fclose(f);
  if (buf) buf[len] = '\0';
  return buf;
}

static int usage(void) {
  fprintf(stderr, "usage: ct-numdiff [--rtol R] [--atol A] EXPECTED ACTUAL\n");
  return 2;
}

int main(int argc, char **argv) {
  ct_numdiff_opts opts = {1e-6, 1e-14};
  int i = 1;
  for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
    char *end;
    double v = strtod(argv[i + 1], &end);
    if (*end || v < 0) return usage();
    if (strcmp(argv[i], "--rtol") == 0)
      opts.rtol = v;
    else if (strcmp(argv[i], "--atol") == 0)
      opts.atol = v;
    else
      return usage();
  }
  if (argc - i != 2) return usage();
  char *expected = slurp(argv[i]), *actual = slurp(argv[i + 1]);
  if (!expected || !actual) {
    fprintf(stderr, "ct-numdiff: cannot read %s\n",
            expected ? argv[i + 1] : argv[i]);
    free(expected);
    free(actual);
    return 2;
  }
  char why[256];
  int rc = ct_numdiff(expected, actual, &opts, why, sizeof why);
  if (rc) fprintf(stderr, "ct-numdiff: %s vs %s: %s\n", argv[i], argv[i + 1], why);
  free(expected);
  free(actual);
  return rc;
}
