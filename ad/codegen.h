/* Private interface between C generation (codegen.c) and the JIT (jit.c). */
#ifndef COTANGENT_AD_CODEGEN_H
#define COTANGENT_AD_CODEGEN_H

#include <stddef.h>

#include "ir.h"

/* Statements per generated C function when the caller gives 0. */
#define CT_CODEGEN_DEFAULT_CHUNK 5000

/* Generated C for one function: the .c and .h texts (NUL-terminated,
 * allocated through the context), the doubles of work the code needs and
 * the number of chunk functions. */
typedef struct ct_codegen_text {
  char *c_text;
  size_t c_len;
  char *h_text;
  size_t h_len;
  size_t work;
  size_t n_chunks;
} ct_codegen_text;

/* Generates C for f with entry point `name` (a C identifier) and at most
 * `max_chunk` statements per C function (0: the default). On failure
 * nothing is left allocated in *out. */
int ct_codegen_generate(ct_context *ctx, const ct_fun *f, const char *name,
                        size_t max_chunk, ct_codegen_text *out);
/* Frees the texts of *t and zeroes it. */
void ct_codegen_text_free(ct_context *ctx, ct_codegen_text *t);

/* Writes `len` bytes to `path` atomically: into a fresh temporary file in
 * the same folder, then renamed over `path`. CT_ERR_IO with the reason. */
int ct_write_file_atomic(ct_context *ctx, const char *path, const char *data,
                         size_t len);

#endif /* COTANGENT_AD_CODEGEN_H */
