/* ct_context: error recording, logging and settings. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context_impl.h"

/* Joins `base` and `leaf` with a '/' into a fresh string. */
static char *join_path(ct_context *ctx, const char *base, const char *leaf) {
  size_t n = strlen(base) + 1 + strlen(leaf) + 1;
  char *p = ct_alloc(ctx, n);
  if (p) snprintf(p, n, "%s/%s", base, leaf);
  return p;
}

/* $COTANGENT_CACHE, else $XDG_CACHE_HOME/cotangent, else
 * $HOME/.cache/cotangent, else /tmp/cotangent-cache. */
static char *default_cache_dir(ct_context *ctx) {
  const char *v = getenv("COTANGENT_CACHE");
  if (v && *v) return ct_strdup(ctx, v);
  v = getenv("XDG_CACHE_HOME");
  if (v && *v) return join_path(ctx, v, "cotangent");
  v = getenv("HOME");
  if (v && *v) return join_path(ctx, v, ".cache/cotangent");
  return ct_strdup(ctx, "/tmp/cotangent-cache");
}

static const char *const level_names[] = {"quiet", "error", "warning", "info",
                                          "debug"};

/* COTANGENT_LOG as a level name or digit; warning when unset or unknown. */
static ct_log_level log_level_from_env(void) {
  const char *v = getenv("COTANGENT_LOG");
  if (!v) return CT_LOG_WARNING;
  for (int i = 0; i <= CT_LOG_DEBUG; i++)
    if (strcmp(v, level_names[i]) == 0 || (v[0] == '0' + i && !v[1]))
      return (ct_log_level)i;
  return CT_LOG_WARNING;
}

ct_context *ct_context_new(const ct_allocator *alloc) {
  const ct_allocator *a = alloc ? alloc : &ct_system_allocator_;
  ct_context *ctx = a->alloc(a->ud, sizeof *ctx);
  if (!ctx) return NULL;
  memset(ctx, 0, sizeof *ctx);
  ctx->alloc = *a;
  ctx->log_level = log_level_from_env();
  ctx->cache_dir = default_cache_dir(ctx);
  if (!ctx->cache_dir) {
    a->free(a->ud, ctx);
    return NULL;
  }
  ct_error_clear(ctx);
  return ctx;
}

void ct_context_free(ct_context *ctx) {
  if (!ctx) return;
  ct_allocator a = ctx->alloc;
  ct_free(ctx, ctx->cache_dir);
  a.free(a.ud, ctx);
}

const char *ct_errmsg(const ct_context *ctx) {
  if (!ctx) return "no context (creating it failed: out of memory?)";
  return ctx->errcode ? ctx->errmsg : "no error";
}

/* The message alone: after "file:line function: ", up to the traceback
 * (lines "\n  from ..."; a message may itself span lines, such as a
 * config error quoting an expression with a caret). */
const char *ct_errmsg_text(const ct_context *ctx, char *buf, size_t size) {
  if (!buf || !size) return buf;
  const char *m = ct_errmsg(ctx), *sp = strchr(m, ' ');
  const char *colon = sp ? strstr(sp, ": ") : NULL;
  const char *start = colon ? colon + 2 : m;
  const char *trace = strstr(start, "\n  from ");
  size_t len = trace ? (size_t)(trace - start) : strlen(start);
  if (len >= size) len = size - 1;
  memcpy(buf, start, len);
  buf[len] = '\0';
  return buf;
}

int ct_errcode(const ct_context *ctx) { return ctx ? ctx->errcode : CT_OK; }

void ct_error_clear(ct_context *ctx) {
  ctx->errcode = CT_OK;
  ctx->errmsg[0] = '\0';
}

/* The last path component, so messages read "ad/graph.c:12" whatever the
 * build folder was, with at most one parent folder kept. */
static const char *short_file(const char *file) {
  const char *last = strrchr(file, '/');
  if (!last) return file;
  const char *p = last;
  while (p > file && p[-1] != '/') p--;
  return p;
}

int ct_error_set(ct_context *ctx, int status, const char *file, int line,
                 const char *func, const char *fmt, ...) {
  if (!ctx) return status;
  int n = snprintf(ctx->errmsg, CT_ERRMSG_CAP, "%s:%d %s: ", short_file(file),
                   line, func);
  if (n < 0 || n >= CT_ERRMSG_CAP) n = CT_ERRMSG_CAP - 1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx->errmsg + n, CT_ERRMSG_CAP - (size_t)n, fmt, ap);
  va_end(ap);
  ctx->errcode = status;
  return status;
}

int ct_error_trace(ct_context *ctx, int status, const char *file, int line,
                   const char *func) {
  if (!ctx) return status;
  if (ctx->errcode != status)
    return ct_error_set(ctx, status, file, line, func, "%s",
                        ct_status_str(status));
  size_t used = strlen(ctx->errmsg);
  if (used + 1 < CT_ERRMSG_CAP)
    snprintf(ctx->errmsg + used, CT_ERRMSG_CAP - used, "\n  from %s:%d %s",
             short_file(file), line, func);
  return status;
}

void ct_context_set_log_level(ct_context *ctx, ct_log_level level) {
  if (level < CT_LOG_QUIET) level = CT_LOG_QUIET;
  if (level > CT_LOG_DEBUG) level = CT_LOG_DEBUG;
  ctx->log_level = level;
}

ct_log_level ct_context_log_level(const ct_context *ctx) {
  return ctx->log_level;
}

void ct_context_set_log_fn(ct_context *ctx, ct_log_fn fn, void *ud) {
  ctx->log_fn = fn;
  ctx->log_ud = ud;
}

void ct_context_log(ct_context *ctx, ct_log_level level, const char *fmt, ...) {
  if (level == CT_LOG_QUIET || level > ctx->log_level) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (ctx->log_fn)
    ctx->log_fn(ctx->log_ud, level, msg);
  else
    fprintf(stderr, "cotangent: %s: %s\n", level_names[level], msg);
}

int ct_context_set_cache_dir(ct_context *ctx, const char *dir) {
  if (!dir || !*dir)
    return CT_ERROR(ctx, CT_ERR_ARG, "the cache folder must be a non-empty path");
  char *copy = ct_strdup(ctx, dir);
  if (!copy) return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  ct_free(ctx, ctx->cache_dir);
  ctx->cache_dir = copy;
  return CT_OK;
}

const char *ct_context_cache_dir(const ct_context *ctx) {
  return ctx->cache_dir;
}
