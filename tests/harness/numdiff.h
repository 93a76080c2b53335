/* Numeric-tolerance comparison of program output with expected output
 * (SUNDIALS' .out convention): numbers match when within tolerance, all other
 * text must match exactly, except that runs of white space compare equal. */
#ifndef CT_NUMDIFF_H
#define CT_NUMDIFF_H

#include <stddef.h>

typedef struct ct_numdiff_opts {
  double rtol; /* relative tolerance on each number */
  double atol; /* absolute tolerance on each number */
} ct_numdiff_opts;

/* Compares the NUL-terminated texts. Returns 0 when they match; otherwise 1
 * with a message naming the line of each text and the two tokens in `why`. */
int ct_numdiff(const char *expected, const char *actual,
               const ct_numdiff_opts *opts, char *why, size_t why_size);

#endif
