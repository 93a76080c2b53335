/* The GPU module in a build without CUDA: no devices, GPU work unsupported. */
#include <stdio.h>

#include "cotangent/gpu.h"

int ct_gpu_compiled(void) { return 0; }

int ct_gpu_device_count(ct_context *ctx, int *count) {
  if (!count) return CT_ERROR(ctx, CT_ERR_ARG, "count must not be NULL");
  *count = 0;
  return CT_OK;
}

int ct_gpu_selftest(ct_context *ctx, size_t n) {
  (void)n;
  return CT_ERROR(ctx, CT_ERR_UNSUPPORTED,
                  "this build has no CUDA back end (configure with "
                  "-DCOTANGENT_CUDA=ON and the CUDA toolkit installed)");
}

void ct_gpu_describe(char *buf, size_t size) {
  if (size) snprintf(buf, size, "cuda: not compiled in");
}
