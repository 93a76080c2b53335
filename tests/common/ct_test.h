/* Helpers shared by the cmocka tests. Include after <cmocka.h>. */
#ifndef CT_TEST_H
#define CT_TEST_H

#include <stdio.h>

#include "cotangent.h"

/* Fault-injection sweep: runs `fn` with a context whose allocator fails the
 * 1st, 2nd, ... allocation made by `fn`, until a run completes without an
 * injected failure. Every failing run must return a negative status, and
 * after `fn` returns and the context is freed, nothing may stay allocated.
 * `fn` must release everything it allocated, on success and failure alike.
 * Returns the number of allocations the successful run made, or -1 with
 * the reason in `why`. */
typedef int (*ct_test_fault_fn)(ct_context *ctx, void *ud);

static inline long ct_test_fault_sweep_check(ct_test_fault_fn fn, void *ud,
                                             char *why, size_t why_size) {
  for (long k = 1;; k++) {
    ct_fault_state st = {0};
    ct_allocator a = ct_fault_allocator(&st);
    ct_context *ctx = ct_context_new(&a);
    if (!ctx) {
      snprintf(why, why_size, "creating a context failed");
      return -1;
    }
    st.fail_at = st.count + k;
    int status = fn(ctx, ud);
    int injected = st.failed;
    if (injected && status >= 0) {
      snprintf(why, why_size, "allocation %ld failed but the call returned %d",
               k, status);
      ct_context_free(ctx);
      return -1;
    }
    if (!injected && status < 0) {
      snprintf(why, why_size, "call failed without an injected failure: %s",
               ct_errmsg(ctx));
      ct_context_free(ctx);
      return -1;
    }
    ct_context_free(ctx);
    if (st.live_blocks != 0) {
      snprintf(why, why_size, "failing allocation %ld leaked %ld blocks (%zu bytes)",
               k, st.live_blocks, st.live_bytes);
      return -1;
    }
    if (!injected) return k - 1;
  }
}

/* The sweep as a cmocka assertion. */
static inline long ct_test_fault_sweep(ct_test_fault_fn fn, void *ud) {
  char why[512] = "";
  long n = ct_test_fault_sweep_check(fn, ud, why, sizeof why);
  if (n < 0) fail_msg("fault sweep: %s", why);
  return n;
}

#endif
