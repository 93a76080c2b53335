/* Cotangent GPU module: device discovery and the CUDA back end.
 *
 * CUDA support is optional at build time (COTANGENT_CUDA=AUTO|ON|OFF).
 * A build with CUDA runs on machines without a GPU: the functions below then
 * report zero devices, and GPU work fails with CT_ERR_UNSUPPORTED. */
#ifndef COTANGENT_GPU_H
#define COTANGENT_GPU_H

#include <stddef.h>

#include "cotangent/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when this build includes the CUDA back end, else 0. */
int ct_gpu_compiled(void);

/* Number of usable CUDA devices in *count: 0 when the build has no CUDA,
 * when no driver is installed or when no device is present (the reason is
 * logged at info level). Always CT_OK unless an argument is NULL. */
int ct_gpu_device_count(ct_context *ctx, int *count);

/* Runs y = a*x + y on `n` elements on device 0 and checks the result
 * against the CPU: a smoke test of the compiled kernels, the driver and
 * memory transfers. CT_ERR_UNSUPPORTED without CUDA or without a device. */
int ct_gpu_selftest(ct_context *ctx, size_t n);

/* One line describing the CUDA build and the devices found, e.g.
 * "cuda runtime 13.0, 1 device: NVIDIA H100 (sm_90)" or
 * "cuda: not compiled in". Always NUL-terminates `buf`. */
void ct_gpu_describe(char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* COTANGENT_GPU_H */
