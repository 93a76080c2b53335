/* ct_build_info: which libraries this build links, with their versions
 * (run-time versions where the library can report one). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cholmod.h>
#include <klu.h>
#include <petscsys.h>
#include <sundials/sundials_version.h>
#include <umfpack.h>
#include <yaml.h>

#include "context_impl.h"
#include "cotangent/gpu.h"

#define CT_VERSION_STRING "0.1.0"

const char *ct_version(void) { return CT_VERSION_STRING; }

typedef struct text_buf {
  char *p;
  size_t size, used;
  int overflow;
} text_buf;

static void append(text_buf *b, const char *fmt, ...) CT_PRINTF_LIKE(2, 3);
static void append(text_buf *b, const char *fmt, ...) {
  size_t room = b->used < b->size ? b->size - b->used : 0;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(room ? b->p + b->used : NULL, room, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= room) {
    b->overflow = 1;
    b->used = b->size;
  } else {
    b->used += (size_t)n;
  }
}

int ct_build_info(ct_context *ctx, char *buf, size_t size) {
  if (!buf || size == 0)
    return CT_ERROR(ctx, CT_ERR_ARG, "ct_build_info needs a buffer");
  text_buf b = {buf, size, 0, 0};
  buf[0] = '\0';
  append(&b, "cotangent %s\n", ct_version());

  char sundials[64];
  if (SUNDIALSGetVersion(sundials, (int)sizeof sundials) != 0)
    strcpy(sundials, "unknown");
  append(&b, "sundials %s (cvodes, idas, arkode, kinsol)\n", sundials);

  int major = 0, minor = 0, sub = 0, release = 0;
  PetscGetVersionNumber(&major, &minor, &sub, &release);
  append(&b, "petsc %d.%d.%d\n", major, minor, sub);

  append(&b, "suitesparse klu %d.%d.%d, umfpack %d.%d.%d, cholmod %d.%d.%d\n",
         KLU_MAIN_VERSION, KLU_SUB_VERSION, KLU_SUBSUB_VERSION,
         UMFPACK_MAIN_VERSION, UMFPACK_SUB_VERSION, UMFPACK_SUBSUB_VERSION,
         CHOLMOD_MAIN_VERSION, CHOLMOD_SUB_VERSION, CHOLMOD_SUBSUB_VERSION);
  append(&b, "libyaml %s\n", yaml_get_version_string());

  char gpu[256];
  ct_gpu_describe(gpu, sizeof gpu);
  append(&b, "%s\n", gpu);

  if (b.overflow)
    return CT_ERROR(ctx, CT_ERR_ARG,
                    "build information needs more than %zu bytes", size);
  return CT_OK;
}
