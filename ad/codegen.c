/* C generation: standalone C99 source for a finalized function.
 *
 * The generated code computes the nodes in the interpreter's order, with the
 * same C expressions as ct_op_apply, so that it agrees with the interpreter
 * to the last bit. Constants are inlined as exact hexadecimal literals.
 * Large functions are split into chunk functions of at most max_chunk
 * statements; a value used outside the chunk that computes it lives in
 * work[], every other value in a local variable. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codegen.h"

/* Bumped whenever the generated text changes meaning; it is part of the
 * text, hence of the JIT cache key. */
#define CODEGEN_FORMAT 1

/* ---- A growable text buffer with a sticky error ---------------------------- */

typedef struct sbuf {
  ct_context *ctx;
  char *s;
  size_t len, cap;
  int status;
} sbuf;

/* Makes room for `extra` more bytes plus a NUL; sets the sticky error. */
static int sb_reserve(sbuf *b, size_t extra) {
  if (b->status < 0) return b->status;
  if (b->len + extra + 1 <= b->cap) return CT_OK;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + extra + 1) cap *= 2;
  char *s = ct_realloc(b->ctx, b->s, cap);
  if (!s) return b->status = CT_ERR_NOMEM;
  b->s = s;
  b->cap = cap;
  return CT_OK;
}

/* Appends n bytes of s. */
static void sb_put(sbuf *b, const char *s, size_t n) {
  if (sb_reserve(b, n) < 0) return;
  memcpy(b->s + b->len, s, n);
  b->len += n;
  b->s[b->len] = '\0';
}

/* Appends a NUL-terminated string. */
static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* Appends printf-formatted text. Only used with integers and strings, whose
 * formatting does not depend on the locale. */
static void sb_printf(sbuf *b, const char *fmt, ...) CT_PRINTF_LIKE(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
  if (b->status < 0) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) {
    b->status = CT_ERR_INTERNAL;
    return;
  }
  if (sb_reserve(b, (size_t)n) < 0) return;
  va_start(ap, fmt);
  vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

/* ---- Literals ---------------------------------------------------------------- */

/* Writes x as an exact C99 literal into buf (at least 40 bytes): a
 * hexadecimal float built from the bits (so independent of the locale and
 * of the C library), negative values parenthesized, NAN/INFINITY from
 * <math.h> for the special values (the payload of a NaN is not kept). */
static void format_double(char *buf, size_t size, double x) {
  if (isnan(x)) {
    snprintf(buf, size, "%s", signbit(x) ? "(-NAN)" : "NAN");
    return;
  }
  if (isinf(x)) {
    snprintf(buf, size, "%s", x < 0 ? "(-INFINITY)" : "INFINITY");
    return;
  }
  uint64_t bits;
  memcpy(&bits, &x, sizeof bits);
  int neg = (int)(bits >> 63);
  int biased = (int)((bits >> 52) & 0x7ff);
  uint64_t mant = bits & ((UINT64_C(1) << 52) - 1);
  char digits[14];
  int nd = 13;
  for (int i = 0; i < 13; i++)
    digits[i] = "0123456789abcdef"[(mant >> (48 - 4 * i)) & 0xf];
  while (nd > 0 && digits[nd - 1] == '0') nd--;
  digits[nd] = '\0';
  int lead = biased ? 1 : 0;
  int e = biased ? biased - 1023 : (mant ? -1022 : 0);
  snprintf(buf, size, "%s0x%d%s%sp%+d%s", neg ? "(-" : "", lead, nd ? "." : "",
           digits, e, neg ? ")" : "");
}

/* Appends `s` as a C string literal: printable ASCII kept, everything else
 * (and ", \, ?) escaped, so no trigraph or encoding can change it. */
static void sb_cstring(sbuf *b, const char *s) {
  sb_puts(b, "\"");
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\' || *p == '?')
      sb_printf(b, "\\%c", *p);
    else if (*p >= 0x20 && *p < 0x7f)
      sb_put(b, (const char *)p, 1);
    else
      sb_printf(b, "\\%03o", *p);
  }
  sb_puts(b, "\"");
}

/* 1 if `name` is a C identifier of at most 200 characters. */
static int is_identifier(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > 200) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return 0;
  }
  return 1;
}

/* ---- The statement schedule ------------------------------------------------ */

/* A statement of the generated code, in the interpreter's order: compute a
 * node, store a node to an output component, or check a guard. */
enum { ST_NODE, ST_STORE, ST_GUARD };
typedef struct stmt {
  uint8_t kind;
  uint8_t expect;  /* ST_GUARD: the traced truth */
  int32_t node;
  uint32_t o, j;   /* ST_STORE: output and component */
} stmt;

/* Everything the emitter needs to know about f's schedule. */
typedef struct plan {
  stmt *st;
  size_t n_st, max_chunk, n_chunks, n_slots;
  uint32_t *def_chunk;  /* chunk computing each node */
  size_t *slot;         /* work slot of each node crossing chunks */
  uint8_t *cross;       /* 1: used outside its chunk, lives in work[] */
  uint8_t *local_use;   /* 1: used inside its own chunk */
  uint8_t used_ops[CT_OP_COUNT];
} plan;

/* Frees the arrays of a plan. */
static void plan_free(ct_context *ctx, plan *p) {
  ct_free(ctx, p->st);
  ct_free(ctx, p->def_chunk);
  ct_free(ctx, p->slot);
  ct_free(ctx, p->cross);
  ct_free(ctx, p->local_use);
}

/* Lists the statements in the order the interpreter runs them: each node,
 * then its stores (by output, then component), then its guard. */
static int plan_statements(ct_context *ctx, const ct_fun *f, plan *p) {
  size_t n = f->n_nodes, total = 0;
  for (size_t o = 0; o < f->n_out; o++) total += f->out[o].n;
  size_t *start = ct_calloc(ctx, n + 2, sizeof *start);
  uint32_t (*sl)[2] = ct_alloc(ctx, (total ? total : 1) * sizeof *sl);
  int32_t *guard = ct_alloc(ctx, (n ? n : 1) * sizeof *guard);
  p->st = ct_alloc(ctx, (n + total + f->n_guards + 1) * sizeof *p->st);
  int rc = CT_ERR_NOMEM;
  if (!start || !sl || !guard || !p->st) goto done;
  for (size_t o = 0; o < f->n_out; o++)
    for (size_t j = 0; j < f->out[o].n; j++) start[f->out[o].ids[j] + 2]++;
  for (size_t i = 2; i < n + 2; i++) start[i] += start[i - 1];
  for (size_t o = 0; o < f->n_out; o++)
    for (size_t j = 0; j < f->out[o].n; j++) {
      size_t at = start[f->out[o].ids[j] + 1]++;
      sl[at][0] = (uint32_t)o;
      sl[at][1] = (uint32_t)j;
    }
  for (size_t i = 0; i < n; i++) guard[i] = -1;
  for (size_t g = 0; g < f->n_guards; g++)
    guard[f->guards[g].id] = f->guards[g].expected;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (f->nodes[i].op != CT_OP_CONST)
      p->st[k++] = (stmt){ST_NODE, 0, (int32_t)i, 0, 0};
    p->used_ops[f->nodes[i].op] = 1;
    for (size_t s = start[i]; s < start[i + 1]; s++)
      p->st[k++] = (stmt){ST_STORE, 0, (int32_t)i, sl[s][0], sl[s][1]};
    if (guard[i] >= 0)
      p->st[k++] = (stmt){ST_GUARD, (uint8_t)guard[i], (int32_t)i, 0, 0};
  }
  p->n_st = k;
  rc = CT_OK;
done:
  ct_free(ctx, start);
  ct_free(ctx, sl);
  ct_free(ctx, guard);
  return rc;
}

/* The nodes statement s reads (children of a computed node, or the node
 * stored or checked); returns how many were written to kids. */
static int stmt_reads(const ct_fun *f, const stmt *s, int32_t kids[3]) {
  if (s->kind != ST_NODE) {
    kids[0] = s->node;
    return 1;
  }
  const ct_node *nd = &f->nodes[s->node];
  if (nd->op == CT_OP_INPUT) return 0;
  int arity = ct_op_arity(nd->op);
  kids[0] = nd->a;
  kids[1] = nd->b;
  kids[2] = nd->c;
  return arity;
}

/* Cuts the statements into chunks, finds the values that cross chunk
 * boundaries and gives them work slots, reusing a slot once the last chunk
 * reading its value is done. */
static int plan_chunks(ct_context *ctx, const ct_fun *f, plan *p) {
  size_t n = f->n_nodes ? f->n_nodes : 1;
  p->n_chunks = p->n_st / p->max_chunk + (p->n_st % p->max_chunk != 0);
  if (p->n_chunks == 0) p->n_chunks = 1;
  p->def_chunk = ct_calloc(ctx, n, sizeof *p->def_chunk);
  p->slot = ct_calloc(ctx, n, sizeof *p->slot);
  p->cross = ct_calloc(ctx, n, 1);
  p->local_use = ct_calloc(ctx, n, 1);
  uint32_t *last = ct_calloc(ctx, n, sizeof *last);
  size_t *rel_start = ct_calloc(ctx, p->n_chunks + 1, sizeof *rel_start);
  int32_t *rel = ct_alloc(ctx, n * sizeof *rel);
  size_t *free_slots = ct_alloc(ctx, n * sizeof *free_slots);
  int rc = CT_ERR_NOMEM;
  if (!p->def_chunk || !p->slot || !p->cross || !p->local_use || !last ||
      !rel_start || !rel || !free_slots)
    goto done;
  for (size_t s = 0; s < p->n_st; s++)
    if (p->st[s].kind == ST_NODE)
      p->def_chunk[p->st[s].node] = (uint32_t)(s / p->max_chunk);
  for (size_t s = 0; s < p->n_st; s++) {
    uint32_t c = (uint32_t)(s / p->max_chunk);
    int32_t kids[3];
    int nk = stmt_reads(f, &p->st[s], kids);
    for (int q = 0; q < nk; q++) {
      int32_t u = kids[q];
      if (f->nodes[u].op == CT_OP_CONST) continue;
      if (p->def_chunk[u] == c) {
        p->local_use[u] = 1;
      } else {
        p->cross[u] = 1;
        if (c > last[u]) last[u] = c;
      }
    }
  }
  /* Crossing nodes grouped by the last chunk that reads them. */
  for (size_t i = 0; i < f->n_nodes; i++)
    if (p->cross[i]) rel_start[last[i] + 1]++;
  for (size_t c = 1; c <= p->n_chunks; c++) rel_start[c] += rel_start[c - 1];
  for (size_t i = 0; i < f->n_nodes; i++)
    if (p->cross[i]) rel[rel_start[last[i]]++] = (int32_t)i;
  for (size_t c = p->n_chunks; c > 0; c--) rel_start[c] = rel_start[c - 1];
  rel_start[0] = 0;
  size_t n_free = 0, s = 0;
  for (size_t c = 0; c < p->n_chunks; c++) {
    /* Slots whose last reader was an earlier chunk are free again. */
    if (c > 0)
      for (size_t r = rel_start[c - 1]; r < rel_start[c]; r++)
        free_slots[n_free++] = p->slot[rel[r]];
    for (; s < p->n_st && s / p->max_chunk == c; s++) {
      const stmt *st = &p->st[s];
      if (st->kind != ST_NODE || !p->cross[st->node]) continue;
      p->slot[st->node] = n_free ? free_slots[--n_free] : p->n_slots++;
    }
  }
  rc = CT_OK;
done:
  ct_free(ctx, last);
  ct_free(ctx, rel_start);
  ct_free(ctx, rel);
  ct_free(ctx, free_slots);
  return rc;
}

/* ---- Emission ---------------------------------------------------------------- */

enum { REF_CAP = 48 };

/* How chunk c refers to node u: a literal, its local, or its work slot. */
static void node_ref(const ct_fun *f, const plan *p, int32_t u, size_t c,
                     char buf[REF_CAP]) {
  const ct_node *nd = &f->nodes[u];
  if (nd->op == CT_OP_CONST)
    format_double(buf, REF_CAP, nd->k);
  else if (p->def_chunk[u] == c)
    snprintf(buf, REF_CAP, "t%ld", (long)u);
  else
    snprintf(buf, REF_CAP, "w[%zu]", p->slot[u]);
}

/* The C function called for each unary op (the same as ct_op_apply). */
static const char *unary_call(int op) {
  switch (op) {
    case CT_OP_EXP: return "exp";
    case CT_OP_LOG: return "log";
    case CT_OP_LOG1P: return "log1p";
    case CT_OP_EXPM1: return "expm1";
    case CT_OP_SQRT: return "sqrt";
    case CT_OP_CBRT: return "cbrt";
    case CT_OP_SIN: return "sin";
    case CT_OP_COS: return "cos";
    case CT_OP_TAN: return "tan";
    case CT_OP_ASIN: return "asin";
    case CT_OP_ACOS: return "acos";
    case CT_OP_ATAN: return "atan";
    case CT_OP_SINH: return "sinh";
    case CT_OP_COSH: return "cosh";
    case CT_OP_TANH: return "tanh";
    case CT_OP_ASINH: return "asinh";
    case CT_OP_ACOSH: return "acosh";
    case CT_OP_ATANH: return "atanh";
    case CT_OP_ERF: return "erf";
    case CT_OP_ABS: return "fabs";
    case CT_OP_FLOOR: return "floor";
    case CT_OP_CEIL: return "ceil";
    default: return NULL;
  }
}

/* The C operator of each binary arithmetic or comparison op. */
static const char *binary_operator(int op) {
  switch (op) {
    case CT_OP_ADD: return "+";
    case CT_OP_SUB: return "-";
    case CT_OP_MUL: return "*";
    case CT_OP_DIV: return "/";
    case CT_OP_LT: return "<";
    case CT_OP_LE: return "<=";
    case CT_OP_GT: return ">";
    case CT_OP_GE: return ">=";
    case CT_OP_EQ: return "==";
    case CT_OP_NE: return "!=";
    default: return NULL;
  }
}

/* Appends the C expression of node i as computed in chunk c. */
static int emit_expr(sbuf *b, const ct_fun *f, const plan *p, const char *name,
                     int32_t i, size_t c) {
  const ct_node *nd = &f->nodes[i];
  char ra[REF_CAP] = "", rb[REF_CAP] = "", rc[REF_CAP] = "", rk[REF_CAP];
  int arity = ct_op_arity(nd->op);
  if (nd->op == CT_OP_INPUT) {
    sb_printf(b, "in[%ld][%ld]", (long)nd->a, (long)nd->b);
    return CT_OK;
  }
  if (arity > 0) node_ref(f, p, nd->a, c, ra);
  if (arity > 1) node_ref(f, p, nd->b, c, rb);
  if (arity > 2) node_ref(f, p, nd->c, c, rc);
  const char *fn = unary_call(nd->op), *bop = binary_operator(nd->op);
  if (fn) {
    sb_printf(b, "%s(%s)", fn, ra);
  } else if (bop && ct_op_is_boolean(nd->op)) {
    sb_printf(b, "(%s %s %s ? 1.0 : 0.0)", ra, bop, rb);
  } else if (bop) {
    sb_printf(b, "%s %s %s", ra, bop, rb);
  } else {
    switch (nd->op) {
      case CT_OP_NEG: sb_printf(b, "-%s", ra); break;
      case CT_OP_SQR: sb_printf(b, "%s * %s", ra, ra); break;
      case CT_OP_POW: sb_printf(b, "%s_pow_(%s, %s)", name, ra, rb); break;
      case CT_OP_POWI:
        format_double(rk, sizeof rk, nd->k);
        sb_printf(b, "%s_pow_(%s, %s)", name, ra, rk);
        break;
      case CT_OP_ATAN2: sb_printf(b, "atan2(%s, %s)", ra, rb); break;
      case CT_OP_HYPOT: sb_printf(b, "hypot(%s, %s)", ra, rb); break;
      case CT_OP_SIGN: sb_printf(b, "%s_sign_(%s)", name, ra); break;
      case CT_OP_MIN: sb_printf(b, "%s_min_(%s, %s)", name, ra, rb); break;
      case CT_OP_MAX: sb_printf(b, "%s_max_(%s, %s)", name, ra, rb); break;
      case CT_OP_AND:
        sb_printf(b, "(%s != 0 && %s != 0 ? 1.0 : 0.0)", ra, rb);
        break;
      case CT_OP_OR:
        sb_printf(b, "(%s != 0 || %s != 0 ? 1.0 : 0.0)", ra, rb);
        break;
      case CT_OP_NOT: sb_printf(b, "(%s == 0 ? 1.0 : 0.0)", ra); break;
      case CT_OP_SELECT: sb_printf(b, "(%s != 0 ? %s : %s)", ra, rb, rc); break;
      default:
        return CT_ERROR(b->ctx, CT_ERR_INTERNAL, "codegen: unknown op %d",
                        (int)nd->op);
    }
  }
  return CT_OK;
}

/* Appends one statement of chunk c. */
static int emit_stmt(sbuf *b, const ct_fun *f, const plan *p, const char *name,
                     const stmt *st, size_t c) {
  char ref[REF_CAP];
  int32_t i = st->node;
  switch (st->kind) {
    case ST_NODE:
      if (!p->local_use[i] && !p->cross[i]) { /* read by nothing */
        sb_puts(b, "  (void)(");
        CT_CHECK(b->ctx, emit_expr(b, f, p, name, i, c));
        sb_puts(b, ");\n");
      } else if (p->local_use[i]) {
        sb_printf(b, "  const double t%ld = ", (long)i);
        CT_CHECK(b->ctx, emit_expr(b, f, p, name, i, c));
        sb_puts(b, ";\n");
        if (p->cross[i]) sb_printf(b, "  w[%zu] = t%ld;\n", p->slot[i], (long)i);
      } else {
        sb_printf(b, "  w[%zu] = ", p->slot[i]);
        CT_CHECK(b->ctx, emit_expr(b, f, p, name, i, c));
        sb_puts(b, ";\n");
      }
      break;
    case ST_STORE:
      node_ref(f, p, i, c, ref);
      sb_printf(b, "  if (out[%lu]) out[%lu][%lu] = %s;\n", (unsigned long)st->o,
                (unsigned long)st->o, (unsigned long)st->j, ref);
      break;
    default:
      node_ref(f, p, i, c, ref);
      sb_printf(b, "  if (%s %s 0) flips++;\n", ref, st->expect ? "==" : "!=");
      break;
  }
  return CT_OK;
}

/* Appends the helpers the code uses: functions for sign/min/max written as
 * in ct_op_apply, and pow through a volatile pointer so that compilers
 * cannot rewrite pow(x, -1.0) as 1.0 / x or pow(2.0, x) as exp2(x), which
 * differ from the C library's pow in the last bit. */
static void emit_helpers(sbuf *b, const plan *p, const char *name) {
  if (p->used_ops[CT_OP_POW] || p->used_ops[CT_OP_POWI])
    sb_printf(b, "static double (*const volatile %s_pow_)(double, double) = pow;\n",
              name);
  if (p->used_ops[CT_OP_SIGN])
    sb_printf(b, "static double %s_sign_(double a) {\n"
                 "  return a > 0 ? 1.0 : a < 0 ? -1.0 : a;\n}\n", name);
  if (p->used_ops[CT_OP_MIN])
    sb_printf(b, "static double %s_min_(double a, double b) {\n"
                 "  return (a <= b || a != a) ? a : b;\n}\n", name);
  if (p->used_ops[CT_OP_MAX])
    sb_printf(b, "static double %s_max_(double a, double b) {\n"
                 "  return (a >= b || a != a) ? a : b;\n}\n", name);
}

/* Appends the name and size tables of f's inputs or outputs and their
 * accessors NAME_n_<kind>, NAME_<kind>_name, NAME_<kind>_size. */
static void emit_io_tables(sbuf *b, const char *name, const char *kind,
                           const ct_io *io, size_t n) {
  sb_printf(b, "static const char *const %s_%s_names_[%zu] = {", name, kind,
            n ? n : 1);
  for (size_t i = 0; i < n; i++) {
    sb_puts(b, i ? ", " : "");
    sb_cstring(b, io[i].name);
  }
  sb_printf(b, "%s};\n", n ? "" : "0");
  sb_printf(b, "static const size_t %s_%s_sizes_[%zu] = {", name, kind, n ? n : 1);
  for (size_t i = 0; i < n; i++) sb_printf(b, "%s%zu", i ? ", " : "", io[i].n);
  sb_printf(b, "%s};\n", n ? "" : "0");
  sb_printf(b, "size_t %s_n_%s(void) { return %zu; }\n", name, kind, n);
  if (n) {
    sb_printf(b, "const char *%s_%s_name(size_t i) {\n"
                 "  return i < %zu ? %s_%s_names_[i] : NULL;\n}\n",
              name, kind, n, name, kind);
    sb_printf(b, "size_t %s_%s_size(size_t i) {\n"
                 "  return i < %zu ? %s_%s_sizes_[i] : 0;\n}\n",
              name, kind, n, name, kind);
  } else {
    sb_printf(b, "const char *%s_%s_name(size_t i) {\n"
                 "  (void)i;\n  (void)%s_%s_names_;\n  return NULL;\n}\n",
              name, kind, name, kind);
    sb_printf(b, "size_t %s_%s_size(size_t i) {\n"
                 "  (void)i;\n  (void)%s_%s_sizes_;\n  return 0;\n}\n",
              name, kind, name, kind);
  }
}

/* The .c text. */
static int emit_source(sbuf *b, const ct_fun *f, const plan *p, const char *name) {
  sb_printf(b,
            "/* Generated by Cotangent (C generation format %d): function %s.\n"
            " * %zu operations, %zu guards, %zu doubles of work, %zu chunk "
            "functions.\n"
            " * Standalone C99 that needs only <math.h>; do not edit, "
            "regenerate. */\n"
            "#include <math.h>\n#include <stddef.h>\n\n"
            "/* Each operation rounds on its own, as in the interpreter: no fused\n"
            " * multiply-add, even where the target has one. */\n"
            "#if defined(__clang__)\n#pragma STDC FP_CONTRACT OFF\n"
            "#elif defined(__GNUC__)\n#pragma GCC optimize (\"fp-contract=off\")\n"
            "#endif\n\n",
            CODEGEN_FORMAT, name, f->n_nodes, f->n_guards, p->n_slots,
            p->n_chunks);
  emit_helpers(b, p, name);
  emit_io_tables(b, name, "in", f->in, f->n_in);
  emit_io_tables(b, name, "out", f->out, f->n_out);
  sb_printf(b, "size_t %s_n_guards(void) { return %zu; }\n", name, f->n_guards);
  sb_printf(b, "size_t %s_work_size(void) { return %zu; }\n", name, p->n_slots);
  size_t s = 0;
  for (size_t c = 0; c < p->n_chunks; c++) {
    size_t end = (c + 1) * p->max_chunk < p->n_st ? (c + 1) * p->max_chunk : p->n_st;
    sb_printf(b,
              "\n/* Statements %zu to %zu of %zu. */\n"
              "static int %s_chunk%zu(const double *const *in, double *const *out,"
              " double *w) {\n"
              "  int flips = 0;\n  (void)in;\n  (void)out;\n  (void)w;\n",
              end > s ? s + 1 : 0, end, p->n_st, name, c);
    for (; s < p->n_st && s / p->max_chunk == c; s++)
      CT_CHECK(b->ctx, emit_stmt(b, f, p, name, &p->st[s], c));
    sb_puts(b, "  return flips;\n}\n");
  }
  sb_printf(b, "\nint %s(const double *const *in, double *const *out, "
               "double *work) {\n  int flips = 0;\n", name);
  for (size_t c = 0; c < p->n_chunks; c++)
    sb_printf(b, "  flips += %s_chunk%zu(in, out, work);\n", name, c);
  sb_puts(b, "  return flips;\n}\n");
  return b->status;
}

/* The .h text. */
static int emit_header(sbuf *b, const ct_fun *f, const plan *p, const char *name) {
  sb_printf(b,
            "/* Generated by Cotangent (C generation format %d): declarations "
            "of %s. */\n",
            CODEGEN_FORMAT, name);
  sb_printf(b,
            "#ifndef %s_GENERATED_H\n#define %s_GENERATED_H\n\n"
            "#include <stddef.h>\n\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n"
            "/* Evaluates the function: in[i] points to %s_in_size(i) numbers,\n"
            " * out[i] to %s_out_size(i) numbers (out[i] NULL skips that output),\n"
            " * work to %s_work_size() doubles (NULL when that is 0). Returns the\n"
            " * number of branch conditions that differ from the traced ones\n"
            " * (0: the outputs are exact; otherwise re-trace). */\n"
            "int %s(const double *const *in, double *const *out, double *work);\n"
            "/* Doubles of work one evaluation needs (%zu). */\n"
            "size_t %s_work_size(void);\n"
            "/* Number of input vectors (%zu); name and length of input i (NULL "
            "and 0\n * when i is out of range). */\n"
            "size_t %s_n_in(void);\n"
            "const char *%s_in_name(size_t i);\n"
            "size_t %s_in_size(size_t i);\n"
            "/* Number of output vectors (%zu); name and length of output i. */\n"
            "size_t %s_n_out(void);\n"
            "const char *%s_out_name(size_t i);\n"
            "size_t %s_out_size(size_t i);\n"
            "/* Number of branch conditions recorded while tracing (%zu). */\n"
            "size_t %s_n_guards(void);\n\n"
            "#ifdef __cplusplus\n}\n#endif\n\n#endif\n",
            name, name, name, name, name, name, p->n_slots, name, f->n_in, name,
            name, name, f->n_out, name, name, name, f->n_guards, name);
  return b->status;
}

int ct_codegen_generate(ct_context *ctx, const ct_fun *f, const char *name,
                        size_t max_chunk, ct_codegen_text *out) {
  memset(out, 0, sizeof *out);
  if (!f || !name)
    return CT_ERROR(ctx, CT_ERR_ARG, "C generation needs a function and a name");
  if (!is_identifier(name))
    return CT_ERROR(ctx, CT_ERR_ARG,
                    "'%s' is not a C identifier (letters, digits, _; at most "
                    "200 characters)", name);
  plan p = {0};
  p.max_chunk = max_chunk ? max_chunk : CT_CODEGEN_DEFAULT_CHUNK;
  sbuf c = {ctx, NULL, 0, 0, CT_OK}, h = {ctx, NULL, 0, 0, CT_OK};
  int rc = plan_statements(ctx, f, &p);
  if (rc == CT_OK) rc = plan_chunks(ctx, f, &p);
  if (rc == CT_OK) rc = emit_source(&c, f, &p, name);
  if (rc == CT_OK) rc = emit_header(&h, f, &p, name);
  if (rc == CT_OK) {
    out->c_text = c.s;
    out->c_len = c.len;
    out->h_text = h.s;
    out->h_len = h.len;
    out->work = p.n_slots;
    out->n_chunks = p.n_chunks;
  } else {
    ct_free(ctx, c.s);
    ct_free(ctx, h.s);
  }
  plan_free(ctx, &p);
  if (rc < 0) return ct_error_trace(ctx, rc, __FILE__, __LINE__, __func__);
  return CT_OK;
}

void ct_codegen_text_free(ct_context *ctx, ct_codegen_text *t) {
  ct_free(ctx, t->c_text);
  ct_free(ctx, t->h_text);
  memset(t, 0, sizeof *t);
}

/* ---- Files --------------------------------------------------------------------- */

/* Writes all `len` bytes to fd, retrying on short writes and EINTR. */
static int write_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

int ct_write_file_atomic(ct_context *ctx, const char *path, const char *data,
                         size_t len) {
  size_t cap = strlen(path) + 64;
  char *tmp = ct_alloc(ctx, cap);
  if (!tmp) return ct_error_trace(ctx, CT_ERR_NOMEM, __FILE__, __LINE__, __func__);
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int fd = -1;
  for (unsigned attempt = 0; fd < 0 && attempt < 100; attempt++) {
    snprintf(tmp, cap, "%s.tmp-%ld-%lx-%u", path, (long)getpid(),
             (unsigned long)now.tv_nsec, attempt);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    int err = errno;
    ct_free(ctx, tmp);
    return CT_ERROR(ctx, CT_ERR_IO, "cannot create a temporary file beside %s: %s",
                    path, strerror(err));
  }
  int failed = write_all(fd, data, len) != 0;
  int err = errno;
  if (close(fd) != 0 && !failed) {
    failed = 1;
    err = errno;
  }
  if (!failed && rename(tmp, path) != 0) {
    failed = 1;
    err = errno;
  }
  if (failed) {
    unlink(tmp);
    ct_free(ctx, tmp);
    return CT_ERROR(ctx, CT_ERR_IO, "cannot write %s: %s", path, strerror(err));
  }
  ct_free(ctx, tmp);
  return CT_OK;
}

int ct_fun_codegen(ct_context *ctx, const ct_fun *f, const char *name,
                   const char *c_path, const char *h_path) {
  if (!c_path)
    return CT_ERROR(ctx, CT_ERR_ARG, "ct_fun_codegen needs the path of the .c file");
  ct_codegen_text t;
  CT_CHECK(ctx, ct_codegen_generate(ctx, f, name, 0, &t));
  int rc = ct_write_file_atomic(ctx, c_path, t.c_text, t.c_len);
  if (rc == CT_OK && h_path) rc = ct_write_file_atomic(ctx, h_path, t.h_text, t.h_len);
  ct_codegen_text_free(ctx, &t);
  CT_CHECK(ctx, rc);
  return CT_OK;
}
