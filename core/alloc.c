/* The system allocator, the fault-injecting test allocator, and the
 * context-level allocation helpers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "context_impl.h"

static void *system_alloc(void *ud, size_t size) {
  (void)ud;
  return malloc(size);
}

static void *system_realloc(void *ud, void *ptr, size_t new_size) {
  (void)ud;
  return realloc(ptr, new_size);
}

static void system_free(void *ud, void *ptr) {
  (void)ud;
  free(ptr);
}

const ct_allocator ct_system_allocator_ = {system_alloc, system_realloc,
                                           system_free, NULL};

/* Each fault-allocator block carries its size in a header so that live
 * bytes can be counted; the header keeps max_align_t alignment. */
typedef union fault_header {
  size_t size;
  max_align_t align;
} fault_header;

static int fault_should_fail(ct_fault_state *st) {
  st->count++;
  if (st->fail_at > 0 && st->count == st->fail_at) {
    st->failed = 1;
    return 1;
  }
  return 0;
}

static void *fault_alloc(void *ud, size_t size) {
  ct_fault_state *st = ud;
  if (fault_should_fail(st) || size > SIZE_MAX - sizeof(fault_header))
    return NULL;
  fault_header *h = malloc(sizeof *h + size);
  if (!h) return NULL;
  h->size = size;
  st->live_blocks++;
  st->live_bytes += size;
  return h + 1;
}

static void fault_free(void *ud, void *ptr) {
  ct_fault_state *st = ud;
  if (!ptr) return;
  fault_header *h = (fault_header *)ptr - 1;
  st->live_blocks--;
  st->live_bytes -= h->size;
  free(h);
}

static void *fault_realloc(void *ud, void *ptr, size_t new_size) {
  ct_fault_state *st = ud;
  if (!ptr) return fault_alloc(ud, new_size);
  if (fault_should_fail(st) || new_size > SIZE_MAX - sizeof(fault_header))
    return NULL;
  fault_header *h = (fault_header *)ptr - 1;
  size_t old_size = h->size;
  fault_header *n = realloc(h, sizeof *n + new_size);
  if (!n) return NULL;
  n->size = new_size;
  st->live_bytes = st->live_bytes - old_size + new_size;
  return n + 1;
}

ct_allocator ct_fault_allocator(ct_fault_state *state) {
  ct_allocator a = {fault_alloc, fault_realloc, fault_free, state};
  return a;
}

void *ct_alloc(ct_context *ctx, size_t size) {
  void *p = ctx->alloc.alloc(ctx->alloc.ud, size ? size : 1);
  if (!p) CT_ERROR(ctx, CT_ERR_NOMEM, "allocating %zu bytes failed", size);
  return p;
}

void *ct_calloc(ct_context *ctx, size_t count, size_t size) {
  if (size && count > SIZE_MAX / size) {
    CT_ERROR(ctx, CT_ERR_NOMEM, "allocation of %zu x %zu bytes overflows",
             count, size);
    return NULL;
  }
  void *p = ct_alloc(ctx, count * size);
  if (p) memset(p, 0, count * size);
  return p;
}

void *ct_realloc(ct_context *ctx, void *ptr, size_t new_size) {
  void *p = ctx->alloc.realloc(ctx->alloc.ud, ptr, new_size ? new_size : 1);
  if (!p)
    CT_ERROR(ctx, CT_ERR_NOMEM, "reallocating to %zu bytes failed", new_size);
  return p;
}

void *ct_realloc_array(ct_context *ctx, void *ptr, size_t count, size_t size) {
  if (size && count > SIZE_MAX / size) {
    CT_ERROR(ctx, CT_ERR_NOMEM, "allocation of %zu x %zu bytes overflows",
             count, size);
    return NULL;
  }
  return ct_realloc(ctx, ptr, count * size);
}

void ct_free(ct_context *ctx, void *ptr) {
  if (ptr) ctx->alloc.free(ctx->alloc.ud, ptr);
}

char *ct_strdup(ct_context *ctx, const char *s) {
  size_t n = strlen(s) + 1;
  char *d = ct_alloc(ctx, n);
  if (d) memcpy(d, s, n);
  return d;
}
