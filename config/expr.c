/* The expression language of configs: a hand-written precedence-climbing
 * parser from text to a flat AST, and its emission into an AD-core graph.
 *
 * The AST is one array of nodes in which every node comes after its
 * operands (the parser creates a node once its operands are parsed), so
 * emitting, walking and freeing are plain loops: only the parser recurses,
 * and its depth is bounded. Leaves appear in the array in text order.
 *
 * Grammar, loosest binding first:
 *   or  ->  and  ->  not (prefix)  ->  comparison (< <= > >= == !=, no
 *   chains)  ->  + - (left)  ->  * / (left)  ->  unary - +  ->  ^ (right;
 *   its exponent may carry a sign: x^-2)  ->  number, name, call, ( ). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

#define EXPR_MAX_DEPTH 200
#define EXPR_MAX_LENGTH ((size_t)1 << 20)
#define EXPR_SHOWN_LINE 100 /* bytes of a long line shown around the caret */
#define EXPR_POWI_MAX 1024  /* |n| up to which x^n becomes ct_powi */

typedef enum node_kind { N_NUM, N_NAME, N_UNARY, N_BINARY, N_CALL } node_kind;

typedef enum expr_op {
  OP_NONE = 0,
  OP_NEG, OP_PLUS, OP_NOT,
  OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_POW,
  OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ, OP_NE,
  OP_AND, OP_OR
} expr_op;

typedef struct expr_node {
  node_kind kind;
  expr_op op;       /* UNARY, BINARY */
  int32_t a, b;     /* operands; CALL: a = first argument (-1: none) */
  int32_t next;     /* the next argument of the enclosing call, or -1 */
  int32_t n_args;   /* CALL */
  size_t off;       /* byte offset of the token that made the node */
  double num;       /* NUM */
  const char *name; /* NAME, CALL: NUL-terminated, in the pool */
} expr_node;

struct ct_expr {
  ct_context *ctx;
  char *text;      /* a copy of the source */
  ct_cfg_loc loc;  /* where the text starts (file borrowed) */
  expr_node *nodes;
  size_t n, cap;
  char *pool;      /* names */
  size_t pool_used, pool_cap;
  int32_t root;
};

/* ---- Errors with a caret ------------------------------------------------------ */

/* Number of characters (UTF-8 code points) in s[0..n). */
static int count_chars(const char *s, size_t n) {
  int c = 0;
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)s[i] & 0xC0) != 0x80) c++;
  return c;
}

/* The file location of byte `off` of `text`, which starts at `loc`; the
 * offset where off's line starts in *line_start. Lines after the first
 * keep the first one's indentation, as YAML block scalars do. */
static ct_cfg_loc loc_at(const char *text, ct_cfg_loc loc, size_t off, size_t *line_start) {
  size_t start = 0;
  int line_idx = 0;
  for (size_t i = 0; i < off; i++)
    if (text[i] == '\n') line_idx++, start = i + 1;
  if (loc.line > 0) {
    loc.line += line_idx;
    loc.col = (loc.col > 0 ? loc.col : 1) + count_chars(text + start, off - start);
  }
  *line_start = start;
  return loc;
}

/* Records CT_ERR_CONFIG at byte `off` of `text` (which starts at `loc`):
 * the message, then the offending line of the text and a caret under `off`
 * (a window of it when the line is long). Returns CT_ERR_CONFIG. */
static int located_error(ct_context *ctx, const char *text, ct_cfg_loc loc,
                         size_t off, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
static int located_error(ct_context *ctx, const char *text, ct_cfg_loc loc,
                         size_t off, const char *fmt, ...) {
  char msg[512], shown[EXPR_SHOWN_LINE + 8], caret[EXPR_SHOWN_LINE + 8];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  size_t len = strlen(text);
  if (off > len) off = len;
  size_t line_start;
  loc = loc_at(text, loc, off, &line_start);
  size_t line_end = line_start;
  while (line_end < len && text[line_end] != '\n') line_end++;
  size_t from = line_start;
  if (line_end - line_start > EXPR_SHOWN_LINE && off - line_start > EXPR_SHOWN_LINE / 2)
    from = off - EXPR_SHOWN_LINE / 2;
  while (from > line_start && ((unsigned char)text[from] & 0xC0) == 0x80) from--;
  size_t to = line_end - from > EXPR_SHOWN_LINE ? from + EXPR_SHOWN_LINE : line_end;
  while (to > from && to < line_end && ((unsigned char)text[to] & 0xC0) == 0x80) to--;
  size_t ns = 0, nc = 0;
  if (from > line_start) {
    memcpy(shown, "...", 3), memcpy(caret, "   ", 3);
    ns = nc = 3;
  }
  for (size_t i = from; i < to; i++) {
    unsigned char ch = (unsigned char)text[i];
    int control = ch < 0x20 || ch == 0x7f;
    shown[ns++] = control && ch != '\t' ? ' ' : (char)ch;
    if (i < off && (ch & 0xC0) != 0x80) caret[nc++] = ch == '\t' ? '\t' : ' ';
  }
  if (to < line_end) memcpy(shown + ns, "...", 3), ns += 3;
  shown[ns] = '\0';
  caret[nc] = '\0';
  return ct_cfg_error(ctx, loc, "%s\n  %s\n  %s^", msg, shown, caret);
}

/* ---- Tokens ------------------------------------------------------------------- */

typedef enum tok_kind { T_END, T_NUM, T_NAME, T_OP, T_LPAREN, T_RPAREN, T_COMMA } tok_kind;

typedef struct token {
  tok_kind kind;
  expr_op op;    /* T_OP */
  size_t off, len;
  double num;    /* T_NUM */
} token;

typedef struct parser {
  ct_context *ctx;
  ct_expr *e;
  const char *s;
  size_t len, pos;
  token tok;
  int depth;
  int status;
} parser;

/* A syntax error at byte `off`; remembers the status so parsing unwinds. */
static int syntax_error(parser *p, size_t off, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int syntax_error(parser *p, size_t off, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (p->status >= 0) p->status = located_error(p->ctx, p->s, p->e->loc, off, "%s", msg);
  return p->status;
}

static int is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_name_char(char c) { return is_name_start(c) || is_digit(c); }

/* Scans a number at p->pos into p->tok: digits, an optional fraction and
 * an optional exponent; a name or a second '.' right after it is an error,
 * as is a value that overflows to infinity. */
static int lex_number(parser *p) {
  const char *s = p->s;
  size_t i = p->pos, start = i;
  while (is_digit(s[i])) i++;
  if (s[i] == '.') {
    i++;
    while (is_digit(s[i])) i++;
  }
  if (s[i] == 'e' || s[i] == 'E') {
    size_t j = i + 1;
    if (s[j] == '+' || s[j] == '-') j++;
    if (!is_digit(s[j]))
      return syntax_error(p, start, "malformed number '%.*s': the exponent has no digits",
                          (int)(j - start > 40 ? 40 : j - start), s + start);
    while (is_digit(s[j])) j++;
    i = j;
  }
  if (s[i] == '.') return syntax_error(p, i, "malformed number: a second '.'");
  if (is_name_char(s[i]))
    return syntax_error(p, i, "unexpected '%c' right after the number '%.*s' (missing '*'?)",
                        s[i], (int)(i - start > 40 ? 40 : i - start), s + start);
  errno = 0;
  char *end = NULL;
  double v = strtod(s + start, &end);
  if (end != s + i)
    return syntax_error(p, start, "malformed number '%.*s'",
                        (int)(i - start > 40 ? 40 : i - start), s + start);
  if (isinf(v) || (errno == ERANGE && fabs(v) > 1))
    return syntax_error(p, start, "the number '%.*s' is too large (it overflows to infinity)",
                        (int)(i - start > 40 ? 40 : i - start), s + start);
  p->tok = (token){.kind = T_NUM, .off = start, .len = i - start, .num = v};
  return CT_OK;
}

/* Scans a name or one of the words and, or, not. */
static void lex_name(parser *p) {
  size_t i = p->pos;
  while (is_name_char(p->s[i])) i++;
  size_t n = i - p->pos;
  token t = {.kind = T_NAME, .off = p->pos, .len = n};
  const char *w = p->s + p->pos;
  if (n == 3 && !memcmp(w, "and", 3)) t.kind = T_OP, t.op = OP_AND;
  if (n == 2 && !memcmp(w, "or", 2)) t.kind = T_OP, t.op = OP_OR;
  if (n == 3 && !memcmp(w, "not", 3)) t.kind = T_OP, t.op = OP_NOT;
  p->tok = t;
}

/* Operators other languages spell differently: an error that names ours. */
static int lex_foreign_operator(parser *p) {
  const char *s = p->s + p->pos;
  if (s[0] == '*' && s[1] == '*')
    return syntax_error(p, p->pos, "'**' is not an operator: write '^' for a power");
  if (s[0] == '&')
    return syntax_error(p, p->pos, "'%.*s' is not an operator: write 'and'", s[1] == '&' ? 2 : 1, s);
  if (s[0] == '|')
    return syntax_error(p, p->pos, "'%.*s' is not an operator: write 'or'", s[1] == '|' ? 2 : 1, s);
  if (s[0] == '!')
    return syntax_error(p, p->pos, "'!' is not an operator: write 'not'");
  if (s[0] == '=')
    return syntax_error(p, p->pos, "'=' is not an operator: write '==' to compare");
  unsigned char c = (unsigned char)s[0];
  if (c >= 0x20 && c < 0x7f)
    return syntax_error(p, p->pos, "unexpected character '%c'", c);
  return syntax_error(p, p->pos, "unexpected byte 0x%02x (expressions are ASCII)", c);
}

/* Scans the two-character comparisons <= >= == != and the one-character
 * operators and punctuation; 0 when s does not start with one. */
static int lex_symbol(token *t, const char *s) {
  static const struct { const char *text; tok_kind kind; expr_op op; } symbols[] = {
      {"<=", T_OP, OP_LE}, {">=", T_OP, OP_GE}, {"==", T_OP, OP_EQ}, {"!=", T_OP, OP_NE},
      {"<", T_OP, OP_LT},  {">", T_OP, OP_GT},  {"+", T_OP, OP_ADD}, {"-", T_OP, OP_SUB},
      {"/", T_OP, OP_DIV}, {"^", T_OP, OP_POW}, {"(", T_LPAREN, OP_NONE},
      {")", T_RPAREN, OP_NONE}, {",", T_COMMA, OP_NONE}};
  if (s[0] == '*') {
    if (s[1] == '*') return 0;
    t->kind = T_OP, t->op = OP_MUL, t->len = 1;
    return 1;
  }
  for (size_t k = 0; k < sizeof symbols / sizeof symbols[0]; k++) {
    size_t n = strlen(symbols[k].text);
    if (!strncmp(s, symbols[k].text, n)) {
      t->kind = symbols[k].kind, t->op = symbols[k].op, t->len = n;
      return 1;
    }
  }
  return 0;
}

/* Moves to the next token (p->tok); an error for a character that starts
 * none. */
static int advance(parser *p) {
  if (p->status < 0) return p->status;
  p->pos += p->tok.len;
  while (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' ||
         p->s[p->pos] == '\r')
    p->pos++;
  char c = p->s[p->pos];
  if (c == '\0') {
    p->tok = (token){.kind = T_END, .off = p->pos};
    return CT_OK;
  }
  if (is_digit(c) || (c == '.' && is_digit(p->s[p->pos + 1]))) return lex_number(p);
  if (is_name_start(c)) {
    lex_name(p);
    return CT_OK;
  }
  token t = {.off = p->pos};
  if (!lex_symbol(&t, p->s + p->pos)) return lex_foreign_operator(p);
  p->tok = t;
  return CT_OK;
}

/* ---- AST construction ----------------------------------------------------------- */

/* Appends a node; its index, or -1 (out of memory, status set). */
static int32_t add_node(parser *p, expr_node nd) {
  ct_expr *e = p->e;
  if (p->status < 0) return -1;
  if (e->n == e->cap) {
    size_t cap = e->cap ? 2 * e->cap : 16;
    expr_node *nodes = ct_realloc_array(p->ctx, e->nodes, cap, sizeof *nodes);
    if (!nodes) {
      p->status = CT_ERR_NOMEM;
      return -1;
    }
    e->nodes = nodes, e->cap = cap;
  }
  nd.next = -1;
  e->nodes[e->n] = nd;
  return (int32_t)e->n++;
}

/* A NUL-terminated copy of the current token's text in the name pool. */
static const char *pool_name(parser *p) {
  ct_expr *e = p->e;
  char *dst = e->pool + e->pool_used;
  memcpy(dst, p->s + p->tok.off, p->tok.len);
  dst[p->tok.len] = '\0';
  e->pool_used += p->tok.len + 1;
  return dst;
}

static int32_t make_unary(parser *p, expr_op op, size_t off, int32_t a) {
  if (a < 0) return -1;
  return add_node(p, (expr_node){.kind = N_UNARY, .op = op, .a = a, .b = -1, .off = off});
}

static int32_t make_binary(parser *p, expr_op op, size_t off, int32_t a, int32_t b) {
  if (a < 0 || b < 0) return -1;
  return add_node(p, (expr_node){.kind = N_BINARY, .op = op, .a = a, .b = b, .off = off});
}

/* Enters one level of nesting; an error past EXPR_MAX_DEPTH. */
static int enter(parser *p) {
  if (++p->depth > EXPR_MAX_DEPTH)
    return syntax_error(p, p->tok.off, "the expression is nested too deeply (more than %d levels)",
                        EXPR_MAX_DEPTH);
  return CT_OK;
}

/* The column, in the file when known, of byte `off` of the text. */
static int column_of(const parser *p, size_t off) {
  size_t line_start;
  ct_cfg_loc loc = loc_at(p->s, p->e->loc, off, &line_start);
  return loc.line > 0 ? loc.col : count_chars(p->s + line_start, off - line_start) + 1;
}

/* How a token reads in "unexpected ..." messages. */
static void describe_token(const parser *p, char *buf, size_t size) {
  const token *t = &p->tok;
  if (t->kind == T_END)
    snprintf(buf, size, "end of the expression");
  else if (t->kind == T_NAME)
    snprintf(buf, size, "name '%.*s'", (int)(t->len > 40 ? 40 : t->len), p->s + t->off);
  else if (t->kind == T_NUM)
    snprintf(buf, size, "number '%.*s'", (int)(t->len > 40 ? 40 : t->len), p->s + t->off);
  else
    snprintf(buf, size, "'%.*s'", (int)t->len, p->s + t->off);
}

static int32_t parse_or(parser *p);
static int32_t parse_unary(parser *p);

/* The arguments of a call after its '(' (the current token): the call
 * node. */
static int32_t parse_call_args(parser *p, const char *fname, size_t name_off, size_t open_off) {
  int32_t first = -1, last = -1, n = 0;
  if (advance(p) < 0) return -1;
  if (p->tok.kind != T_RPAREN) {
    for (;;) {
      int32_t arg = parse_or(p);
      if (arg < 0) return -1;
      if (last >= 0) p->e->nodes[last].next = arg;
      else first = arg;
      last = arg, n++;
      if (p->tok.kind == T_RPAREN) break;
      if (p->tok.kind == T_END) {
        syntax_error(p, p->tok.off, "missing ')' to close the call of '%.40s' at column %d",
                     fname, column_of(p, open_off));
        return -1;
      }
      if (p->tok.kind != T_COMMA) {
        char what[64];
        describe_token(p, what, sizeof what);
        syntax_error(p, p->tok.off, "unexpected %s in the call of '%.40s' (expected ',' or ')')",
                     what, fname);
        return -1;
      }
      if (advance(p) < 0) return -1;
    }
  }
  if (advance(p) < 0) return -1;
  return add_node(p, (expr_node){.kind = N_CALL, .a = first, .b = -1, .n_args = n,
                                 .off = name_off, .name = fname});
}

/* A parenthesized expression, the current token being '('. */
static int32_t parse_parens(parser *p) {
  size_t open = p->tok.off;
  if (advance(p) < 0) return -1;
  int32_t inner = parse_or(p);
  if (inner < 0) return -1;
  if (p->tok.kind != T_RPAREN) {
    char what[64];
    describe_token(p, what, sizeof what);
    if (p->tok.kind == T_END)
      syntax_error(p, p->tok.off, "missing ')' to close the '(' at column %d",
                   column_of(p, open));
    else
      syntax_error(p, p->tok.off, "unexpected %s (expected ')' to close the '(' at column %d)",
                   what, column_of(p, open));
    return -1;
  }
  if (advance(p) < 0) return -1;
  return inner;
}

/* number | name | name '(' args ')' | '(' expr ')'. */
static int32_t parse_primary(parser *p) {
  token t = p->tok;
  if (t.kind == T_NUM) {
    int32_t k = add_node(p, (expr_node){.kind = N_NUM, .a = -1, .b = -1, .off = t.off, .num = t.num});
    return advance(p) < 0 ? -1 : k;
  }
  if (t.kind == T_NAME) {
    const char *name = pool_name(p);
    if (advance(p) < 0) return -1;
    if (p->tok.kind == T_LPAREN) return parse_call_args(p, name, t.off, p->tok.off);
    return add_node(p, (expr_node){.kind = N_NAME, .a = -1, .b = -1, .off = t.off, .name = name});
  }
  if (t.kind == T_LPAREN) return parse_parens(p);
  char what[64];
  describe_token(p, what, sizeof what);
  if (t.kind == T_END && strspn(p->s, " \t\r\n") == p->len)
    syntax_error(p, t.off, "empty expression");
  else
    syntax_error(p, t.off, "unexpected %s", what);
  return -1;
}

/* primary ['^' unary]: right associative through parse_unary. */
static int32_t parse_power(parser *p) {
  int32_t base = parse_primary(p);
  if (base < 0 || p->tok.kind != T_OP || p->tok.op != OP_POW) return base;
  size_t off = p->tok.off;
  if (advance(p) < 0) return -1;
  int32_t exponent = parse_unary(p);
  return make_binary(p, OP_POW, off, base, exponent);
}

/* ('-' | '+') unary | power. */
static int32_t parse_unary(parser *p) {
  if (enter(p) < 0) return -1;
  int32_t r;
  if (p->tok.kind == T_OP && (p->tok.op == OP_SUB || p->tok.op == OP_ADD)) {
    expr_op op = p->tok.op == OP_SUB ? OP_NEG : OP_PLUS;
    size_t off = p->tok.off;
    r = advance(p) < 0 ? -1 : make_unary(p, op, off, parse_unary(p));
  } else {
    r = parse_power(p);
  }
  p->depth--;
  return r;
}

/* A left-associative chain of the operators in ops[0..n_ops) over `sub`. */
static int32_t parse_left_chain(parser *p, int32_t (*sub)(parser *), const expr_op *ops,
                                size_t n_ops) {
  int32_t left = sub(p);
  while (left >= 0 && p->tok.kind == T_OP) {
    size_t k = 0;
    while (k < n_ops && ops[k] != p->tok.op) k++;
    if (k == n_ops) break;
    size_t off = p->tok.off;
    if (advance(p) < 0) return -1;
    left = make_binary(p, ops[k], off, left, sub(p));
  }
  return left;
}

static int32_t parse_multiplicative(parser *p) {
  static const expr_op ops[] = {OP_MUL, OP_DIV};
  return parse_left_chain(p, parse_unary, ops, 2);
}

static int32_t parse_additive(parser *p) {
  static const expr_op ops[] = {OP_ADD, OP_SUB};
  return parse_left_chain(p, parse_multiplicative, ops, 2);
}

static int is_comparison(const token *t) {
  return t->kind == T_OP && t->op >= OP_LT && t->op <= OP_NE;
}

/* additive [comparison additive]; a second comparison is an error. */
static int32_t parse_comparison(parser *p) {
  int32_t left = parse_additive(p);
  if (left < 0 || !is_comparison(&p->tok)) return left;
  expr_op op = p->tok.op;
  size_t off = p->tok.off;
  if (advance(p) < 0) return -1;
  int32_t r = make_binary(p, op, off, left, parse_additive(p));
  if (r >= 0 && is_comparison(&p->tok)) {
    syntax_error(p, p->tok.off,
                 "comparisons do not chain: write 'a < b and b < c' instead of 'a < b < c'");
    return -1;
  }
  return r;
}

/* 'not' not | comparison. */
static int32_t parse_not(parser *p) {
  if (p->tok.kind != T_OP || p->tok.op != OP_NOT) return parse_comparison(p);
  if (enter(p) < 0) return -1;
  size_t off = p->tok.off;
  int32_t r = advance(p) < 0 ? -1 : make_unary(p, OP_NOT, off, parse_not(p));
  p->depth--;
  return r;
}

static int32_t parse_and(parser *p) {
  static const expr_op ops[] = {OP_AND};
  return parse_left_chain(p, parse_not, ops, 1);
}

/* The loosest level; also the entry of every nested expression (whose
 * depth parse_unary counts: every recursion passes through it or
 * parse_not). */
static int32_t parse_or(parser *p) {
  static const expr_op ops[] = {OP_OR};
  return parse_left_chain(p, parse_and, ops, 1);
}

/* What is left after a complete expression: an error naming it. */
static int trailing_error(parser *p) {
  char what[64];
  describe_token(p, what, sizeof what);
  if (p->tok.kind == T_RPAREN)
    return syntax_error(p, p->tok.off, "unexpected ')' (no '(' to close)");
  if (p->tok.kind == T_NAME || p->tok.kind == T_NUM || p->tok.kind == T_LPAREN)
    return syntax_error(p, p->tok.off, "unexpected %s (missing operator?)", what);
  return syntax_error(p, p->tok.off, "unexpected %s", what);
}

void ct_expr_free(ct_expr *e) {
  if (!e) return;
  ct_context *ctx = e->ctx;
  ct_free(ctx, e->nodes);
  ct_free(ctx, e->pool);
  ct_free(ctx, e->text);
  ct_free(ctx, e);
}

/* A new, empty AST owning a copy of the source text. */
static ct_expr *expr_new(ct_context *ctx, const ct_cfg_expr *src, size_t len) {
  ct_expr *e = ct_calloc(ctx, 1, sizeof *e);
  if (!e) return NULL;
  e->ctx = ctx;
  e->loc = src->loc;
  e->root = -1;
  e->text = ct_strdup(ctx, src->text);
  e->pool_cap = 2 * len + 2; /* every name and its NUL fit */
  e->pool = e->text ? ct_alloc(ctx, e->pool_cap) : NULL;
  if (!e->pool) {
    ct_expr_free(e);
    return NULL;
  }
  return e;
}

int ct_expr_parse(ct_context *ctx, const ct_cfg_expr *src, ct_expr **out) {
  if (!out || !src || !src->text)
    return CT_ERROR(ctx, CT_ERR_ARG, "ct_expr_parse: NULL expression or output");
  *out = NULL;
  size_t len = strlen(src->text);
  if (len > EXPR_MAX_LENGTH)
    return ct_cfg_error(ctx, src->loc, "the expression is too long (%zu characters, at most %zu)",
                        len, EXPR_MAX_LENGTH);
  ct_expr *e = expr_new(ctx, src, len);
  if (!e) return CT_ERR_NOMEM;
  parser p = {.ctx = ctx, .e = e, .s = e->text, .len = len, .tok = {.kind = T_END}};
  int32_t root = advance(&p) < 0 ? -1 : parse_or(&p);
  if (root >= 0 && p.tok.kind != T_END) trailing_error(&p);
  if (p.status < 0 || root < 0) {
    int status = p.status < 0 ? p.status : CT_ERROR(ctx, CT_ERR_INTERNAL, "parse failed silently");
    ct_expr_free(e);
    return status;
  }
  e->root = root;
  *out = e;
  return CT_OK;
}

int ct_expr_names(const ct_expr *e, int (*fn)(const char *name, ct_cfg_loc loc, void *ud),
                  void *ud) {
  if (!e || !fn) return 0;
  for (size_t i = 0; i < e->n; i++) {
    const expr_node *nd = &e->nodes[i];
    if (nd->kind != N_NAME || !strcmp(nd->name, "pi") || !strcmp(nd->name, "e")) continue;
    size_t line_start;
    int r = fn(nd->name, loc_at(e->text, e->loc, nd->off, &line_start), ud);
    if (r) return r;
  }
  return 0;
}

/* ---- Emission ------------------------------------------------------------------- */

/* The functions by name. arity: the exact number of arguments, or -k for
 * "at least k". f1/f2: the AD-core operation; neither for the special
 * forms (pow, if, piecewise), handled by name. */
typedef struct fn_def {
  const char *name;
  int arity;
  ct_var (*f1)(ct_var);
  ct_var (*f2)(ct_var, ct_var);
} fn_def;

static const fn_def fn_table[] = {
    {"exp", 1, ct_exp, NULL},     {"log", 1, ct_log, NULL},     {"log1p", 1, ct_log1p, NULL},
    {"expm1", 1, ct_expm1, NULL}, {"sqrt", 1, ct_sqrt, NULL},   {"cbrt", 1, ct_cbrt, NULL},
    {"sin", 1, ct_sin, NULL},     {"cos", 1, ct_cos, NULL},     {"tan", 1, ct_tan, NULL},
    {"asin", 1, ct_asin, NULL},   {"acos", 1, ct_acos, NULL},   {"atan", 1, ct_atan, NULL},
    {"sinh", 1, ct_sinh, NULL},   {"cosh", 1, ct_cosh, NULL},   {"tanh", 1, ct_tanh, NULL},
    {"asinh", 1, ct_asinh, NULL}, {"acosh", 1, ct_acosh, NULL}, {"atanh", 1, ct_atanh, NULL},
    {"erf", 1, ct_erf, NULL},     {"abs", 1, ct_abs, NULL},     {"sign", 1, ct_sign, NULL},
    {"floor", 1, ct_floor, NULL}, {"ceil", 1, ct_ceil, NULL},   {"atan2", 2, NULL, ct_atan2},
    {"hypot", 2, NULL, ct_hypot}, {"min", -2, NULL, ct_min},    {"max", -2, NULL, ct_max},
    {"pow", 2, NULL, NULL},       {"if", 3, NULL, NULL},        {"piecewise", -1, NULL, NULL}};

#define N_FUNCTIONS (sizeof fn_table / sizeof fn_table[0])

const char *const ct_expr_functions[] = {
    "exp",  "log",   "log1p", "expm1", "sqrt",  "cbrt", "sin",  "cos",   "tan",  "asin",
    "acos", "atan",  "sinh",  "cosh",  "tanh",  "asinh", "acosh", "atanh", "erf", "abs",
    "sign", "floor", "ceil",  "atan2", "hypot", "min",  "max",  "pow",   "if",   "piecewise",
    NULL};

static const fn_def *find_function(const char *name) {
  for (size_t k = 0; k < N_FUNCTIONS; k++)
    if (!strcmp(fn_table[k].name, name)) return &fn_table[k];
  return NULL;
}

/* The constant a name stands for (pi, e): 1 and *value set, else 0. */
static int builtin_constant(const char *name, double *value) {
  if (!strcmp(name, "pi")) return *value = 3.14159265358979323846, 1;
  if (!strcmp(name, "e")) return *value = 2.71828182845904523536, 1;
  return 0;
}

typedef struct emitter {
  ct_context *ctx;
  const ct_expr *e;
  const ct_expr_scope *scope;
  ct_graph *g;
  ct_var *v; /* one per node */
} emitter;

/* The exponent node as an integer literal (n, -n, +n): 1 and *n set. */
static int integer_literal(const ct_expr *e, int32_t k, int *n) {
  double sign = 1;
  while (e->nodes[k].kind == N_UNARY && (e->nodes[k].op == OP_NEG || e->nodes[k].op == OP_PLUS)) {
    if (e->nodes[k].op == OP_NEG) sign = -sign;
    k = e->nodes[k].a;
  }
  if (e->nodes[k].kind != N_NUM) return 0;
  double x = e->nodes[k].num;
  if (x != floor(x) || x > EXPR_POWI_MAX) return 0;
  *n = (int)(sign * x);
  return 1;
}

/* base ^ exponent: ct_sqr for 2, ct_powi for other integer literals,
 * ct_pow otherwise. */
static ct_var emit_power(const emitter *em, ct_var base, int32_t exponent) {
  int n;
  if (integer_literal(em->e, exponent, &n)) return n == 2 ? ct_sqr(base) : ct_powi(base, n);
  return ct_pow(base, em->v[exponent]);
}

/* Whether `name` is something the scope knows (to tell "x(...)" apart). */
static int scope_knows(const ct_expr_scope *scope, const char *name) {
  if (!scope) return 0;
  for (size_t k = 0; scope->known && k < scope->n_known; k++)
    if (scope->known[k] && !strcmp(scope->known[k], name)) return 1;
  return 0;
}

/* The known name (or constant) to suggest for an unknown one; for a
 * one-letter name only the same letter in the other case. */
static const char *closest_name(const ct_expr_scope *sc, const char *name) {
  static const char *const constants[] = {"pi", "e"};
  if (strlen(name) == 1) {
    for (size_t k = 0; sc && sc->known && k < sc->n_known; k++)
      if (sc->known[k] && strlen(sc->known[k]) == 1 && (sc->known[k][0] ^ name[0]) == 0x20 &&
          is_name_start(name[0]) && name[0] != '_')
        return sc->known[k];
    return NULL;
  }
  const char *near = sc ? ct_cfg_closest(name, sc->known, sc->n_known) : NULL;
  return near ? near : ct_cfg_closest(name, constants, 2);
}

/* Resolves a name node: a built-in constant, else the scope. */
static int emit_name(const emitter *em, const expr_node *nd, ct_var *out) {
  double c;
  const ct_expr_scope *sc = em->scope;
  const char *text = em->e->text;
  ct_var shadow;
  if (builtin_constant(nd->name, &c)) {
    if (sc && sc->lookup && sc->lookup(sc->ud, nd->name, &shadow))
      return located_error(em->ctx, text, em->e->loc, nd->off,
                           "'%s' is the constant %.17g here, but the model defines '%s' too: "
                           "rename it (pi and e are reserved)", nd->name, c, nd->name);
    return *out = ct_const(em->g, c), CT_OK;
  }
  if (sc && sc->lookup && sc->lookup(sc->ud, nd->name, out)) return CT_OK;
  if (find_function(nd->name))
    return located_error(em->ctx, text, em->e->loc, nd->off,
                         "'%s' is a function: call it as %s(...)", nd->name, nd->name);
  const char *near = closest_name(sc, nd->name);
  if (near)
    return located_error(em->ctx, text, em->e->loc, nd->off,
                         "unknown name '%.64s' (did you mean '%.64s'?)", nd->name, near);
  if (!sc || !sc->lookup)
    return located_error(em->ctx, text, em->e->loc, nd->off,
                         "unknown name '%.64s' (a constant expression may use only numbers, "
                         "pi and e)", nd->name);
  return located_error(em->ctx, text, em->e->loc, nd->off, "unknown name '%.64s'", nd->name);
}

/* "unknown function" with a suggestion, or "not a function" for a name. */
static int unknown_function(const emitter *em, const expr_node *nd) {
  const char *text = em->e->text;
  double c;
  if (builtin_constant(nd->name, &c) || scope_knows(em->scope, nd->name))
    return located_error(em->ctx, text, em->e->loc, nd->off,
                         "'%.64s' is not a function (write '%.64s*(...)' to multiply)",
                         nd->name, nd->name);
  const char *near = ct_cfg_closest(nd->name, ct_expr_functions, N_FUNCTIONS);
  if (near)
    return located_error(em->ctx, text, em->e->loc, nd->off,
                         "unknown function '%.64s' (did you mean '%s'?)", nd->name, near);
  return located_error(em->ctx, text, em->e->loc, nd->off, "unknown function '%.64s'",
                       nd->name);
}

/* Checks a call's argument count against the function's. */
static int check_arity(const emitter *em, const expr_node *nd, const fn_def *fn) {
  int n = nd->n_args;
  const char *text = em->e->text;
  if (fn->arity > 0 && n != fn->arity)
    return located_error(em->ctx, text, em->e->loc, nd->off,
                         "'%s' takes %d argument%s, got %d", fn->name, fn->arity,
                         fn->arity == 1 ? "" : "s", n);
  if (fn->arity < 0 && n < -fn->arity)
    return located_error(em->ctx, text, em->e->loc, nd->off,
                         "'%s' takes at least %d argument%s, got %d", fn->name, -fn->arity,
                         fn->arity == -1 ? "" : "s", n);
  if (!strcmp(fn->name, "piecewise") && n % 2 == 0)
    return located_error(em->ctx, text, em->e->loc, nd->off,
                         "'piecewise' takes value, condition pairs and a final value (an odd "
                         "number of arguments), got %d", n);
  return CT_OK;
}

/* piecewise(v1, c1, v2, c2, ..., v_else) = c1 ? v1 : (c2 ? v2 : ... v_else),
 * built from the last pair outwards. */
static int emit_piecewise(const emitter *em, const expr_node *nd, ct_var *out) {
  const expr_node *nodes = em->e->nodes;
  int32_t n = nd->n_args, k = nd->a;
  int32_t *idx = ct_alloc(em->ctx, sizeof(int32_t) * (size_t)n);
  if (!idx) return CT_ERR_NOMEM;
  for (int32_t i = 0; i < n; i++, k = nodes[k].next) idx[i] = k;
  ct_var r = em->v[idx[n - 1]];
  for (int32_t i = n - 3; i >= 0; i -= 2) r = ct_select(em->v[idx[i + 1]], em->v[idx[i]], r);
  ct_free(em->ctx, idx);
  *out = r;
  return CT_OK;
}

/* A call node; its arguments are already emitted. */
static int emit_call(const emitter *em, const expr_node *nd, ct_var *out) {
  const fn_def *fn = find_function(nd->name);
  if (!fn) return unknown_function(em, nd);
  CT_CHECK(em->ctx, check_arity(em, nd, fn));
  const expr_node *nodes = em->e->nodes;
  const ct_var *v = em->v;
  int32_t a = nd->a, b = nd->n_args > 1 ? nodes[a].next : -1;
  if (fn->f1) {
    *out = fn->f1(v[a]);
  } else if (fn->f2) { /* min and max fold over all their arguments */
    ct_var r = fn->f2(v[a], v[b]);
    for (int32_t k = nodes[b].next; k >= 0; k = nodes[k].next) r = fn->f2(r, v[k]);
    *out = r;
  } else if (!strcmp(fn->name, "pow")) {
    *out = emit_power(em, v[a], b);
  } else if (!strcmp(fn->name, "if")) {
    *out = ct_select(v[a], v[b], v[nodes[b].next]);
  } else {
    return emit_piecewise(em, nd, out);
  }
  return CT_OK;
}

static ct_var emit_binary(const emitter *em, const expr_node *nd) {
  ct_var a = em->v[nd->a], b = em->v[nd->b];
  switch (nd->op) {
    case OP_ADD: return ct_add(a, b);
    case OP_SUB: return ct_sub(a, b);
    case OP_MUL: return ct_mul(a, b);
    case OP_DIV: return ct_div(a, b);
    case OP_POW: return emit_power(em, a, nd->b);
    case OP_LT: return ct_lt(a, b);
    case OP_LE: return ct_le(a, b);
    case OP_GT: return ct_gt(a, b);
    case OP_GE: return ct_ge(a, b);
    case OP_EQ: return ct_eq(a, b);
    case OP_NE: return ct_ne(a, b);
    case OP_AND: return ct_and(a, b);
    case OP_OR: return ct_or(a, b);
    default: return (ct_var){em->g, -1};
  }
}

static ct_var emit_unary(const emitter *em, const expr_node *nd) {
  ct_var a = em->v[nd->a];
  if (nd->op == OP_NEG) return ct_neg(a);
  if (nd->op == OP_NOT) return ct_not(a);
  return a;
}

/* Emits node i (its operands are emitted already). */
static int emit_node(const emitter *em, size_t i) {
  const expr_node *nd = &em->e->nodes[i];
  ct_var *out = &em->v[i];
  switch (nd->kind) {
    case N_NUM: *out = ct_const(em->g, nd->num); return CT_OK;
    case N_NAME: return emit_name(em, nd, out);
    case N_UNARY: *out = emit_unary(em, nd); return CT_OK;
    case N_BINARY: *out = emit_binary(em, nd); return CT_OK;
    case N_CALL: return emit_call(em, nd, out);
  }
  return CT_ERR_INTERNAL;
}

int ct_expr_emit(ct_context *ctx, const ct_expr *e, const ct_expr_scope *scope, ct_graph *g,
                 ct_var *out) {
  if (!e || !g || !out || e->root < 0)
    return CT_ERROR(ctx, CT_ERR_ARG, "ct_expr_emit: NULL expression, graph or output");
  *out = (ct_var){g, -1};
  ct_var *v = ct_calloc(ctx, e->n, sizeof *v);
  if (!v) return CT_ERR_NOMEM;
  emitter em = {ctx, e, scope, g, v};
  int status = CT_OK;
  for (size_t i = 0; i < e->n && status >= 0; i++) status = emit_node(&em, i);
  if (status >= 0) *out = v[e->root];
  ct_free(ctx, v);
  if (status < 0) return status;
  if (out->id < 0) {
    status = ct_graph_status(g);
    return status < 0 ? status : CT_ERROR(ctx, CT_ERR_INTERNAL, "emitting an expression failed");
  }
  return CT_OK;
}

/* ---- Constant expressions ---------------------------------------------------------- */

/* Evaluates a finished function with no inputs and one output. */
static int eval_no_inputs(ct_context *ctx, const ct_fun *f, double *value) {
  double *work = ct_alloc(ctx, sizeof(double) * (ct_fun_work_size(f) + 1));
  if (!work) return CT_ERR_NOMEM;
  const double *in[1] = {NULL};
  double *outs[1] = {value};
  int status = ct_fun_eval(ctx, f, in, outs, work);
  ct_free(ctx, work);
  return status;
}

/* Emits the parsed constant expression into a fresh graph and evaluates
 * it. */
static int eval_parsed(ct_context *ctx, const ct_expr *e, double *value) {
  ct_graph *g = ct_graph_new(ctx);
  if (!g) return CT_ERR_NOMEM;
  ct_var v;
  ct_fun *f = NULL;
  int status = ct_expr_emit(ctx, e, NULL, g, &v);
  if (status >= 0) status = ct_graph_output(g, "value", 1, &v);
  if (status >= 0) status = ct_graph_finalize(g, &f);
  ct_graph_free(g);
  if (status >= 0) status = eval_no_inputs(ctx, f, value);
  ct_fun_free(f);
  return status;
}

int ct_expr_eval_const(ct_context *ctx, const ct_cfg_expr *src, double *out) {
  if (!out) return CT_ERROR(ctx, CT_ERR_ARG, "ct_expr_eval_const: NULL output");
  ct_expr *e = NULL;
  CT_CHECK(ctx, ct_expr_parse(ctx, src, &e));
  double value = NAN;
  int status = eval_parsed(ctx, e, &value);
  if (status >= 0 && !isfinite(value))
    status = located_error(ctx, e->text, e->loc, 0, "the value of this expression is %s",
                           isnan(value) ? "NaN" : value > 0 ? "inf" : "-inf");
  ct_expr_free(e);
  if (status < 0) return status;
  *out = value;
  return CT_OK;
}

int ct_expr_is_reserved(const char *name) {
  static const char *const reserved[] = {"pi", "e", "and", "or", "not"};
  for (size_t k = 0; name && k < sizeof reserved / sizeof reserved[0]; k++)
    if (!strcmp(name, reserved[k])) return 1;
  return 0;
}
