/* Cotangent core: context, status codes, allocator, build information.
 *
 * Every library call takes a ct_context. The context carries the allocator,
 * the last error message, the log level and the JIT cache folder; there is no
 * mutable global state, so two threads with two contexts never interfere. */
#ifndef COTANGENT_CORE_H
#define COTANGENT_CORE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CT_PRINTF_LIKE(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define CT_PRINTF_LIKE(fmt, args)
#endif

/* Status codes: 0 success, positive information, negative failure.
 * X(name, value, message) — the one list both the enum and ct_status_str use. */
#define CT_STATUS_LIST(X)                                                        \
  X(CT_OK, 0, "success")                                                         \
  X(CT_RETRACE, 1, "a traced branch condition changed; the function must be re-traced") \
  X(CT_ERR_NOMEM, -1, "out of memory")                                           \
  X(CT_ERR_ARG, -2, "invalid argument")                                          \
  X(CT_ERR_STATE, -3, "object used in the wrong state")                          \
  X(CT_ERR_IO, -4, "input/output error")                                         \
  X(CT_ERR_UNSUPPORTED, -5, "not supported by this build")                       \
  X(CT_ERR_SOLVER, -6, "solver failure")                                         \
  X(CT_ERR_CONFIG, -7, "invalid configuration")                                  \
  X(CT_ERR_NUMERIC, -8, "non-finite or out-of-range value")                      \
  X(CT_ERR_EXTERNAL, -9, "external library error")                               \
  X(CT_ERR_INTERNAL, -10, "internal error (please report)")                     \
  X(CT_ERR_INTERRUPTED, -11, "interrupted")

enum ct_status {
#define CT_STATUS_ENUM_(name, value, message) name = value,
  CT_STATUS_LIST(CT_STATUS_ENUM_)
#undef CT_STATUS_ENUM_
};

/* The message of a status code; "unknown status" for codes not in the list. */
const char *ct_status_str(int status);
/* The enumerator name of a status code ("CT_ERR_NOMEM"), or "CT_UNKNOWN". */
const char *ct_status_name(int status);

/* A pluggable allocator. All three functions are required; `ud` is passed
 * back unchanged. Sizes are never zero; realloc(ud, NULL, n) must allocate
 * and free(ud, NULL) must do nothing. */
typedef struct ct_allocator {
  void *(*alloc)(void *ud, size_t size);
  void *(*realloc)(void *ud, void *ptr, size_t new_size);
  void (*free)(void *ud, void *ptr);
  void *ud;
} ct_allocator;

/* Fault injection for tests: an allocator that fails the `fail_at`-th
 * allocation (1-based; 0 never fails) and counts what is live. Wraps the
 * system allocator. */
typedef struct ct_fault_state {
  long fail_at;       /* which allocation fails; 0 = none */
  long count;         /* allocations attempted so far */
  long live_blocks;   /* blocks allocated and not yet freed */
  size_t live_bytes;  /* bytes allocated and not yet freed */
  int failed;         /* 1 once the injected failure has happened */
} ct_fault_state;

ct_allocator ct_fault_allocator(ct_fault_state *state);

typedef struct ct_context ct_context;

/* Creates a context. `alloc` may be NULL for the system allocator; it is
 * copied. Reads COTANGENT_CACHE / XDG_CACHE_HOME / HOME once, here, to pick
 * the cache folder, and COTANGENT_LOG for the log level. NULL on no memory. */
ct_context *ct_context_new(const ct_allocator *alloc);
/* Frees the context. NULL is a no-op. */
void ct_context_free(ct_context *ctx);

/* The last error, as "file:line function: message" followed by one
 * "  from file:line function" line per CT_CHECK that passed it up.
 * "no error" when none is recorded. Valid until the next failing call. */
const char *ct_errmsg(const ct_context *ctx);
/* The last error's message alone, as users should read it: without the
 * "file:line function: " of where it was recorded and the traceback lines
 * (it may span lines itself, e.g. a config error quoting an expression
 * under a caret), copied into buf (truncated to size - 1 characters).
 * Returns buf. */
const char *ct_errmsg_text(const ct_context *ctx, char *buf, size_t size);
/* The status code of the last recorded error, CT_OK when none. */
int ct_errcode(const ct_context *ctx);
/* Forgets the recorded error. */
void ct_error_clear(ct_context *ctx);

/* Records an error in `ctx` and returns `status` (which must be negative).
 * Used through CT_ERROR; public so that user callbacks can report errors
 * the same way. */
int ct_error_set(ct_context *ctx, int status, const char *file, int line,
                 const char *func, const char *fmt, ...) CT_PRINTF_LIKE(6, 7);
/* Appends a traceback line for a failure passing through `func`; returns
 * `status`. If nothing was recorded yet, records the status message. */
int ct_error_trace(ct_context *ctx, int status, const char *file, int line,
                   const char *func);

#define CT_ERROR(ctx, status, ...) \
  ct_error_set((ctx), (status), __FILE__, __LINE__, __func__, __VA_ARGS__)

/* Evaluates `call`; if it returns a negative status, adds this location to
 * the context's traceback and returns the status from the enclosing
 * function (PETSc's PetscCall). */
#define CT_CHECK(ctx, call)                                                   \
  do {                                                                        \
    int ct_check_status_ = (call);                                            \
    if (ct_check_status_ < 0)                                                 \
      return ct_error_trace((ctx), ct_check_status_, __FILE__, __LINE__,      \
                            __func__);                                        \
  } while (0)

/* Logging. Messages at or below the context's level are passed to the log
 * function (default: stderr, prefixed "cotangent: <level>: "). */
typedef enum ct_log_level {
  CT_LOG_QUIET = 0,
  CT_LOG_ERROR = 1,
  CT_LOG_WARNING = 2,
  CT_LOG_INFO = 3,
  CT_LOG_DEBUG = 4
} ct_log_level;

typedef void (*ct_log_fn)(void *ud, ct_log_level level, const char *message);

void ct_context_set_log_level(ct_context *ctx, ct_log_level level);
ct_log_level ct_context_log_level(const ct_context *ctx);
/* Replaces the log sink; fn NULL restores the default (stderr). */
void ct_context_set_log_fn(ct_context *ctx, ct_log_fn fn, void *ud);
void ct_context_log(ct_context *ctx, ct_log_level level, const char *fmt, ...)
    CT_PRINTF_LIKE(3, 4);

/* The folder for cached JIT objects. The setter copies `dir`. */
int ct_context_set_cache_dir(ct_context *ctx, const char *dir);
const char *ct_context_cache_dir(const ct_context *ctx);

/* Allocation through the context's allocator. On failure these record
 * CT_ERR_NOMEM in the context and return NULL (ct_realloc leaves `ptr`
 * valid); count*size overflow is a failure. ct_free(ctx, NULL) is a no-op. */
void *ct_alloc(ct_context *ctx, size_t size);
void *ct_calloc(ct_context *ctx, size_t count, size_t size);
void *ct_realloc(ct_context *ctx, void *ptr, size_t new_size);
void *ct_realloc_array(ct_context *ctx, void *ptr, size_t count, size_t size);
void ct_free(ct_context *ctx, void *ptr);
/* A NUL-terminated copy of `s` (NULL on failure, error recorded). */
char *ct_strdup(ct_context *ctx, const char *s);

/* Version of Cotangent ("MAJOR.MINOR.PATCH"). */
const char *ct_version(void);

/* Writes one line per component this build links (Cotangent, SUNDIALS,
 * PETSc, SuiteSparse KLU/UMFPACK/CHOLMOD, libyaml, CUDA) with its version,
 * into `buf` of `size` bytes, NUL-terminated. Returns CT_OK, or
 * CT_ERR_ARG if it does not fit (the text is then truncated). */
int ct_build_info(ct_context *ctx, char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* COTANGENT_CORE_H */
