/* The GPU module with CUDA: device discovery and a kernel smoke test. */
#include <cuda_runtime.h>

#include <math.h>
#include <stdio.h>

#include "cotangent/gpu.h"

extern "C" int ct_gpu_compiled(void) { return 1; }

/* Device count, or 0 with the runtime's reason in *why when none is usable
 * (no driver, no device, driver too old). */
static int usable_devices(const char **why) {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    *why = cudaGetErrorString(err);
    (void)cudaGetLastError(); /* clear the sticky error */
    return 0;
  }
  *why = n ? "" : "no CUDA device present";
  return n;
}

extern "C" int ct_gpu_device_count(ct_context *ctx, int *count) {
  if (!count) return CT_ERROR(ctx, CT_ERR_ARG, "count must not be NULL");
  const char *why = "";
  *count = usable_devices(&why);
  if (*count == 0) ct_context_log(ctx, CT_LOG_INFO, "no usable GPU: %s", why);
  return CT_OK;
}

__global__ static void axpy_kernel(size_t n, double a, const double *x,
                                   double *y) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] += a * x[i];
}

/* Records a CUDA failure in ctx; returns the status. */
static int cuda_fail(ct_context *ctx, cudaError_t err, const char *what,
                     const char *file, int line, const char *func) {
  return ct_error_set(ctx, CT_ERR_EXTERNAL, file, line, func, "%s: %s", what,
                      cudaGetErrorString(err));
}
#define CUDA_TRY(ctx, call)                                                \
  do {                                                                     \
    cudaError_t e_ = (call);                                               \
    if (e_ != cudaSuccess) {                                               \
      status = cuda_fail((ctx), e_, #call, __FILE__, __LINE__, __func__); \
      goto done;                                                           \
    }                                                                      \
  } while (0)

extern "C" int ct_gpu_selftest(ct_context *ctx, size_t n) {
  const char *why = "";
  if (usable_devices(&why) == 0)
    return CT_ERROR(ctx, CT_ERR_UNSUPPORTED, "no usable GPU: %s", why);
  if (n == 0) return CT_ERROR(ctx, CT_ERR_ARG, "n must be positive");
  int status = CT_OK;
  double *x = (double *)ct_alloc(ctx, n * sizeof(double));
  double *y = (double *)ct_alloc(ctx, n * sizeof(double));
  double *dx = NULL, *dy = NULL;
  const double a = 0.5;
  if (!x || !y) {
    status = CT_ERR_NOMEM;
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    x[i] = (double)i;
    y[i] = 1.0 - (double)i;
  }
  CUDA_TRY(ctx, cudaMalloc((void **)&dx, n * sizeof(double)));
  CUDA_TRY(ctx, cudaMalloc((void **)&dy, n * sizeof(double)));
  CUDA_TRY(ctx, cudaMemcpy(dx, x, n * sizeof(double), cudaMemcpyHostToDevice));
  CUDA_TRY(ctx, cudaMemcpy(dy, y, n * sizeof(double), cudaMemcpyHostToDevice));
  axpy_kernel<<<(unsigned)((n + 255) / 256), 256>>>(n, a, dx, dy);
  CUDA_TRY(ctx, cudaGetLastError());
  CUDA_TRY(ctx, cudaMemcpy(y, dy, n * sizeof(double), cudaMemcpyDeviceToHost));
  for (size_t i = 0; i < n; i++) {
    double want = 1.0 - (double)i + a * (double)i;
    if (fabs(y[i] - want) > 1e-12 * (1.0 + fabs(want))) {
      status = CT_ERROR(ctx, CT_ERR_INTERNAL,
                        "GPU axpy wrong at %zu: %.17g, expected %.17g", i,
                        y[i], want);
      break;
    }
  }
done:
  cudaFree(dx);
  cudaFree(dy);
  ct_free(ctx, x);
  ct_free(ctx, y);
  return status;
}

extern "C" void ct_gpu_describe(char *buf, size_t size) {
  if (!size) return;
  int rt = 0;
  cudaRuntimeGetVersion(&rt);
  const char *why = "";
  int n = usable_devices(&why);
  if (n == 0) {
    snprintf(buf, size, "cuda runtime %d.%d, no usable device (%s)",
             rt / 1000, (rt % 1000) / 10, why);
    return;
  }
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
    snprintf(buf, size, "cuda runtime %d.%d, %d device(s)", rt / 1000,
             (rt % 1000) / 10, n);
    return;
  }
  snprintf(buf, size, "cuda runtime %d.%d, %d device(s): %s (sm_%d%d)",
           rt / 1000, (rt % 1000) / 10, n, prop.name, prop.major,
           prop.minor);
}
