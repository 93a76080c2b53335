/* YAML text -> a tree of maps, lists and scalars that remembers where each
 * node and key was written (libyaml's event parser; anchors and aliases are
 * resolved by copying, duplicate keys are errors). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "config_internal.h"

/* Nesting deeper than this is refused (keeps recursion bounded). */
#define CT_YAML_MAX_DEPTH 200
/* Nodes that aliases may copy in total (stops "billion laughs"). */
#define CT_YAML_MAX_ALIAS_NODES 100000
/* Config files larger than this are refused. */
#define CT_YAML_MAX_FILE_BYTES (64u << 20)

/* The document with the context that owns its memory. */
typedef struct yaml_doc {
  ct_cfg_doc pub;
  ct_context *ctx;
} yaml_doc;

/* A collection being built: its node, the capacity of its arrays and, for a
 * map, the key waiting for its value. */
typedef struct frame {
  ct_cfg_node *node;
  size_t cap;
  char *key; /* owned until the value arrives */
  ct_cfg_loc key_loc;
  ct_cfg_index keys; /* MAP: the keys so far, for duplicates */
  char *anchor; /* registered when the collection ends */
} frame;

typedef struct anchor {
  char *name;
  const ct_cfg_node *node;
} anchor;

/* The builder's state for one parse. */
typedef struct builder {
  ct_context *ctx;
  const char *file;
  frame stack[CT_YAML_MAX_DEPTH];
  int depth;
  anchor *anchors;
  size_t n_anchors, cap_anchors;
  size_t alias_nodes;
  ct_cfg_node *root;
} builder;

/* Frees a node and everything under it (NULL is fine). */
static void node_free(ct_context *ctx, ct_cfg_node *node) {
  if (!node) return;
  for (size_t i = 0; i < node->n; i++) {
    if (node->keys) ct_free(ctx, node->keys[i]);
    node_free(ctx, node->items[i]);
  }
  ct_free(ctx, node->keys);
  ct_free(ctx, node->key_locs);
  ct_free(ctx, node->items);
  ct_free(ctx, node->text);
  ct_free(ctx, node);
}

/* A libyaml mark as our 1-based location. */
static ct_cfg_loc loc_of(const builder *b, yaml_mark_t m) {
  ct_cfg_loc loc = {b->file, (int)m.line + 1, (int)m.column + 1};
  return loc;
}

/* Appends "a.b.0" (the keys and indices leading to the top frame) to buf. */
static void frame_path(const builder *b, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i + 1 < b->depth && used + 1 < size; i++) {
    const frame *f = &b->stack[i];
    const char *sep = used ? "." : "";
    int w;
    if (f->node->kind == CT_CFG_MAP)
      w = snprintf(buf + used, size - used, "%s%s", sep, f->node->keys[f->node->n - 1]);
    else
      w = snprintf(buf + used, size - used, "%s%zu", sep, f->node->n - 1);
    if (w < 0) break;
    used += (size_t)w;
  }
}

/* Records the duplicate-key error for `key` in the top frame's map. */
static int duplicate_key(builder *b, const char *key, ct_cfg_loc loc, ct_cfg_loc first) {
  char path[256];
  frame_path(b, path, sizeof path);
  if (!path[0])
    return ct_cfg_error(b->ctx, loc, "duplicate key '%s' at the top level (first at line %d)",
                        key, first.line);
  return ct_cfg_error(b->ctx, loc, "duplicate key '%s' in %s (first at line %d)", key, path,
                      first.line);
}

/* Grows the top frame's arrays so one more entry fits. */
static int frame_reserve(builder *b, frame *f) {
  ct_cfg_node *n = f->node;
  if (n->n < f->cap) return CT_OK;
  size_t cap = f->cap ? 2 * f->cap : 4;
  ct_cfg_node **items = ct_realloc_array(b->ctx, n->items, cap, sizeof *items);
  if (!items) return CT_ERR_NOMEM;
  n->items = items;
  if (n->kind == CT_CFG_MAP) {
    char **keys = ct_realloc_array(b->ctx, n->keys, cap, sizeof *keys);
    if (!keys) return CT_ERR_NOMEM;
    n->keys = keys;
    ct_cfg_loc *locs = ct_realloc_array(b->ctx, n->key_locs, cap, sizeof *locs);
    if (!locs) return CT_ERR_NOMEM;
    n->key_locs = locs;
  }
  f->cap = cap;
  return CT_OK;
}

/* Hangs `node` under the top frame (as the pending key's value or as the
 * next item), or makes it the root. Takes ownership of node either way. */
static int attach(builder *b, ct_cfg_node *node) {
  if (b->depth == 0) {
    b->root = node;
    return CT_OK;
  }
  frame *f = &b->stack[b->depth - 1];
  int rc = frame_reserve(b, f);
  if (rc < 0) {
    node_free(b->ctx, node);
    return rc;
  }
  ct_cfg_node *parent = f->node;
  size_t pos = parent->n;
  parent->items[parent->n++] = node;
  if (parent->kind != CT_CFG_MAP) return CT_OK;
  parent->keys[pos] = f->key;
  parent->key_locs[pos] = f->key_loc;
  f->key = NULL;
  return ct_cfg_index_add(b->ctx, &f->keys, (const char *const *)parent->keys, pos);
}

/* Takes a scalar's text as the top map's pending key (refusing duplicates). */
static int take_key(builder *b, const char *text, size_t len, ct_cfg_loc loc) {
  frame *f = &b->stack[b->depth - 1];
  if (memchr(text, '\0', len))
    return ct_cfg_error(b->ctx, loc, "a key contains a NUL character");
  long first = ct_cfg_index_find(&f->keys, (const char *const *)f->node->keys, text);
  if (first >= 0) return duplicate_key(b, text, loc, f->node->key_locs[first]);
  char *key = ct_alloc(b->ctx, len + 1);
  if (!key) return CT_ERR_NOMEM;
  memcpy(key, text, len);
  key[len] = '\0';
  f->key = key;
  f->key_loc = loc;
  return CT_OK;
}

/* Whether the top frame is a map waiting for a key (not a value). */
static int wants_key(const builder *b) {
  if (b->depth == 0) return 0;
  const frame *f = &b->stack[b->depth - 1];
  return f->node->kind == CT_CFG_MAP && f->key == NULL;
}

/* Remembers `node` under the anchor name (a later anchor of the same name
 * wins, as YAML says). */
static int add_anchor(builder *b, const char *name, const ct_cfg_node *node) {
  if (b->n_anchors == b->cap_anchors) {
    size_t cap = b->cap_anchors ? 2 * b->cap_anchors : 8;
    anchor *a = ct_realloc_array(b->ctx, b->anchors, cap, sizeof *a);
    if (!a) return CT_ERR_NOMEM;
    b->anchors = a;
    b->cap_anchors = cap;
  }
  char *copy = ct_strdup(b->ctx, name);
  if (!copy) return CT_ERR_NOMEM;
  b->anchors[b->n_anchors].name = copy;
  b->anchors[b->n_anchors].node = node;
  b->n_anchors++;
  return CT_OK;
}

/* The node of the latest anchor called `name`, or NULL. */
static const ct_cfg_node *find_anchor(const builder *b, const char *name) {
  for (size_t i = b->n_anchors; i-- > 0;)
    if (strcmp(b->anchors[i].name, name) == 0) return b->anchors[i].node;
  return NULL;
}

/* A new empty node of `kind` at `loc`. */
static ct_cfg_node *node_new(ct_context *ctx, ct_cfg_kind kind, ct_cfg_loc loc) {
  ct_cfg_node *node = ct_calloc(ctx, 1, sizeof *node);
  if (!node) return NULL;
  node->kind = kind;
  node->loc = loc;
  return node;
}

/* A deep copy of src (counting copied nodes against the alias budget);
 * NULL when out of memory or over budget (*over set). */
static ct_cfg_node *node_copy(builder *b, const ct_cfg_node *src, int *over) {
  if (++b->alias_nodes > CT_YAML_MAX_ALIAS_NODES) {
    *over = 1;
    return NULL;
  }
  ct_cfg_node *dst = node_new(b->ctx, src->kind, src->loc);
  if (!dst) return NULL;
  dst->quoted = src->quoted;
  dst->text_col = src->text_col;
  if (src->text && !(dst->text = ct_strdup(b->ctx, src->text))) goto fail;
  if (src->n == 0) return dst;
  dst->items = ct_calloc(b->ctx, src->n, sizeof *dst->items);
  if (!dst->items) goto fail;
  if (src->kind == CT_CFG_MAP) {
    dst->keys = ct_calloc(b->ctx, src->n, sizeof *dst->keys);
    dst->key_locs = ct_calloc(b->ctx, src->n, sizeof *dst->key_locs);
    if (!dst->keys || !dst->key_locs) goto fail;
  }
  for (size_t i = 0; i < src->n; i++) {
    dst->n = i + 1;
    if (src->keys) {
      dst->key_locs[i] = src->key_locs[i];
      if (!(dst->keys[i] = ct_strdup(b->ctx, src->keys[i]))) goto fail;
    }
    if (!(dst->items[i] = node_copy(b, src->items[i], over))) goto fail;
  }
  return dst;
fail:
  node_free(b->ctx, dst);
  return NULL;
}

/* A scalar event: a key of the top map or a value. */
static int on_scalar(builder *b, const yaml_event_t *ev) {
  ct_cfg_loc loc = loc_of(b, ev->start_mark);
  const char *text = (const char *)ev->data.scalar.value;
  size_t len = ev->data.scalar.length;
  if (wants_key(b)) {
    int rc = take_key(b, text, len, loc);
    if (rc < 0 || !ev->data.scalar.anchor) return rc;
    return ct_cfg_error(b->ctx, loc, "anchors on keys are not supported");
  }
  if (memchr(text, '\0', len))
    return ct_cfg_error(b->ctx, loc, "a value contains a NUL character");
  ct_cfg_node *node = node_new(b->ctx, CT_CFG_SCALAR, loc);
  if (!node) return CT_ERR_NOMEM;
  node->text = ct_alloc(b->ctx, len + 1);
  if (!node->text) {
    node_free(b->ctx, node);
    return CT_ERR_NOMEM;
  }
  memcpy(node->text, text, len);
  node->text[len] = '\0';
  yaml_scalar_style_t style = ev->data.scalar.style;
  node->quoted = style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                 style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
  node->text_col = loc.col + (node->quoted ? 1 : 0);
  int rc = attach(b, node);
  if (rc < 0 || !ev->data.scalar.anchor) return rc;
  return add_anchor(b, (const char *)ev->data.scalar.anchor, node);
}

/* An alias event: a copy of the anchored node (a key only when scalar). */
static int on_alias(builder *b, const yaml_event_t *ev) {
  ct_cfg_loc loc = loc_of(b, ev->start_mark);
  const char *name = (const char *)ev->data.alias.anchor;
  const ct_cfg_node *target = find_anchor(b, name);
  if (!target)
    return ct_cfg_error(b->ctx, loc, "alias '*%s' refers to no anchor defined before it", name);
  if (wants_key(b)) {
    if (target->kind != CT_CFG_SCALAR)
      return ct_cfg_error(b->ctx, loc, "a key must be a plain word, not a map or a list");
    return take_key(b, target->text, strlen(target->text), loc);
  }
  int over = 0;
  ct_cfg_node *copy = node_copy(b, target, &over);
  if (over)
    return ct_cfg_error(b->ctx, loc, "aliases expand to more than %d nodes",
                        CT_YAML_MAX_ALIAS_NODES);
  if (!copy) return CT_ERR_NOMEM;
  copy->loc = loc;
  return attach(b, copy);
}

/* A map or list starts: a new frame whose node is already in the tree. */
static int on_start(builder *b, const yaml_event_t *ev, ct_cfg_kind kind) {
  ct_cfg_loc loc = loc_of(b, ev->start_mark);
  if (wants_key(b))
    return ct_cfg_error(b->ctx, loc, "a key must be a plain word, not a map or a list");
  if (b->depth == CT_YAML_MAX_DEPTH)
    return ct_cfg_error(b->ctx, loc, "nesting deeper than %d levels", CT_YAML_MAX_DEPTH);
  const yaml_char_t *anchor_name = kind == CT_CFG_MAP ? ev->data.mapping_start.anchor
                                                      : ev->data.sequence_start.anchor;
  char *anchor_copy = NULL;
  if (anchor_name && !(anchor_copy = ct_strdup(b->ctx, (const char *)anchor_name)))
    return CT_ERR_NOMEM;
  ct_cfg_node *node = node_new(b->ctx, kind, loc);
  if (!node) {
    ct_free(b->ctx, anchor_copy);
    return CT_ERR_NOMEM;
  }
  int rc = attach(b, node);
  if (rc < 0) {
    ct_free(b->ctx, anchor_copy);
    return rc;
  }
  frame f = {node, 0, NULL, {0}, {0}, anchor_copy};
  b->stack[b->depth++] = f;
  return CT_OK;
}

/* A map or list ends: registers its anchor now that it is complete. */
static int on_end(builder *b) {
  frame *f = &b->stack[--b->depth];
  ct_cfg_index_free(b->ctx, &f->keys);
  char *anchor_name = f->anchor;
  f->anchor = NULL;
  if (!anchor_name) return CT_OK;
  int rc = add_anchor(b, anchor_name, f->node);
  ct_free(b->ctx, anchor_name);
  return rc;
}

/* Frees what the builder holds besides the tree. */
static void builder_release(builder *b) {
  for (int i = 0; i < b->depth; i++) {
    ct_free(b->ctx, b->stack[i].key);
    ct_free(b->ctx, b->stack[i].anchor);
    ct_cfg_index_free(b->ctx, &b->stack[i].keys);
  }
  b->depth = 0;
  for (size_t i = 0; i < b->n_anchors; i++) ct_free(b->ctx, b->anchors[i].name);
  ct_free(b->ctx, b->anchors);
  b->anchors = NULL;
  b->n_anchors = b->cap_anchors = 0;
}

/* The 1-based line and column of byte `offset` of text. */
static ct_cfg_loc loc_at_offset(const char *file, const char *text, size_t len, size_t offset) {
  ct_cfg_loc loc = {file, 1, 1};
  for (size_t i = 0; i < offset && i < len; i++) {
    if (text[i] == '\n') loc.line++, loc.col = 1;
    else loc.col++;
  }
  return loc;
}

/* Records libyaml's error (problem, context and their marks). */
static int syntax_error(builder *b, const yaml_parser_t *p, const char *text, size_t len) {
  if (p->error == YAML_MEMORY_ERROR)
    return CT_ERROR(b->ctx, CT_ERR_NOMEM, "libyaml: out of memory");
  const char *problem = p->problem ? p->problem : "unknown error";
  if (p->error == YAML_READER_ERROR)
    return ct_cfg_error(b->ctx, loc_at_offset(b->file, text, len, p->problem_offset),
                        "cannot read the text: %s (byte 0x%02x)", problem,
                        (unsigned)p->problem_value & 0xffu);
  ct_cfg_loc loc = loc_of(b, p->problem_mark);
  if (p->context)
    return ct_cfg_error(b->ctx, loc, "YAML syntax error: %s (%s at line %d, column %d)",
                        problem, p->context, (int)p->context_mark.line + 1,
                        (int)p->context_mark.column + 1);
  return ct_cfg_error(b->ctx, loc, "YAML syntax error: %s", problem);
}

/* Handles one event; *done is set at the end of the stream. */
static int on_event(builder *b, const yaml_event_t *ev, int *documents, int *done) {
  switch (ev->type) {
  case YAML_DOCUMENT_START_EVENT:
    if (++*documents > 1)
      return ct_cfg_error(b->ctx, loc_of(b, ev->start_mark),
                          "a config holds one YAML document; a second one starts here");
    return CT_OK;
  case YAML_SCALAR_EVENT: return on_scalar(b, ev);
  case YAML_ALIAS_EVENT: return on_alias(b, ev);
  case YAML_SEQUENCE_START_EVENT: return on_start(b, ev, CT_CFG_SEQ);
  case YAML_MAPPING_START_EVENT: return on_start(b, ev, CT_CFG_MAP);
  case YAML_SEQUENCE_END_EVENT:
  case YAML_MAPPING_END_EVENT: return b->depth > 0 ? on_end(b) : CT_OK;
  case YAML_STREAM_END_EVENT: *done = 1; return CT_OK;
  default: return CT_OK;
  }
}

/* Runs libyaml over text and builds b->root. */
static int build(builder *b, const char *text, size_t len) {
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser))
    return CT_ERROR(b->ctx, CT_ERR_NOMEM, "libyaml: cannot create a parser");
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  int rc = CT_OK, documents = 0, done = 0;
  while (!done && rc >= 0) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&parser, &ev)) {
      rc = syntax_error(b, &parser, text, len);
      break;
    }
    rc = on_event(b, &ev, &documents, &done);
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&parser);
  builder_release(b);
  return rc;
}

int ct_cfg_parse(ct_context *ctx, const char *name, const char *text, size_t len,
                 ct_cfg_doc **out) {
  if (!ctx || !out) return CT_ERR_ARG;
  *out = NULL;
  if (!text && len) return CT_ERROR(ctx, CT_ERR_ARG, "ct_cfg_parse: text is NULL");
  yaml_doc *doc = ct_calloc(ctx, 1, sizeof *doc);
  if (!doc) return CT_ERR_NOMEM;
  doc->ctx = ctx;
  doc->pub.path = ct_strdup(ctx, name ? name : "<config>");
  if (!doc->pub.path) {
    ct_free(ctx, doc);
    return CT_ERR_NOMEM;
  }
  builder *b = ct_calloc(ctx, 1, sizeof *b);
  if (!b) {
    ct_cfg_doc_free(&doc->pub);
    return CT_ERR_NOMEM;
  }
  b->ctx = ctx;
  b->file = doc->pub.path;
  int rc = build(b, text ? text : "", len);
  doc->pub.root = b->root;
  ct_free(ctx, b);
  if (rc < 0) {
    ct_cfg_doc_free(&doc->pub);
    return rc;
  }
  *out = &doc->pub;
  return CT_OK;
}

/* Reads the whole file into a NUL-terminated buffer. */
static int read_file(ct_context *ctx, const char *path, char **text, size_t *len) {
  ct_cfg_loc loc = {path, 0, 0};
  FILE *f = fopen(path, "rb");
  if (!f) return ct_cfg_error(ctx, loc, "cannot open the config: %s", strerror(errno));
  size_t cap = 4096, n = 0;
  char *buf = ct_alloc(ctx, cap);
  int rc = buf ? CT_OK : CT_ERR_NOMEM;
  while (rc == CT_OK) {
    if (n + 1 == cap) {
      char *bigger = cap >= CT_YAML_MAX_FILE_BYTES ? NULL : ct_realloc(ctx, buf, 2 * cap);
      if (!bigger) {
        rc = cap >= CT_YAML_MAX_FILE_BYTES
                 ? ct_cfg_error(ctx, loc, "the config is larger than %u bytes",
                                CT_YAML_MAX_FILE_BYTES)
                 : CT_ERR_NOMEM;
        break;
      }
      buf = bigger, cap *= 2;
    }
    size_t got = fread(buf + n, 1, cap - 1 - n, f);
    n += got;
    if (got == 0) {
      if (ferror(f)) rc = ct_cfg_error(ctx, loc, "cannot read the config: %s", strerror(errno));
      break;
    }
  }
  fclose(f);
  if (rc < 0) {
    ct_free(ctx, buf);
    return rc;
  }
  buf[n] = '\0';
  *text = buf;
  *len = n;
  return CT_OK;
}

int ct_cfg_parse_file(ct_context *ctx, const char *path, ct_cfg_doc **out) {
  if (!ctx || !out) return CT_ERR_ARG;
  *out = NULL;
  if (!path) return CT_ERROR(ctx, CT_ERR_ARG, "ct_cfg_parse_file: path is NULL");
  char *text = NULL;
  size_t len = 0;
  int rc = read_file(ctx, path, &text, &len);
  if (rc < 0) return rc;
  rc = ct_cfg_parse(ctx, path, text, len, out);
  ct_free(ctx, text);
  return rc;
}

void ct_cfg_doc_free(ct_cfg_doc *pub) {
  if (!pub) return;
  yaml_doc *doc = (yaml_doc *)pub;
  node_free(doc->ctx, pub->root);
  ct_free(doc->ctx, pub->path);
  ct_free(doc->ctx, doc);
}

const ct_cfg_node *ct_cfg_get(const ct_cfg_node *map, const char *key) {
  if (!map || !key || map->kind != CT_CFG_MAP) return NULL;
  for (size_t i = 0; i < map->n; i++)
    if (strcmp(map->keys[i], key) == 0) return map->items[i];
  return NULL;
}

/* FNV-1a: the index's hash of a name. */
static size_t hash_name(const char *s) {
  uint64_t h = 14695981039346656037u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
  return (size_t)h;
}

long ct_cfg_index_find(const ct_cfg_index *ix, const char *const *strings, const char *name) {
  if (!ix->cap) return -1;
  size_t mask = ix->cap - 1;
  for (size_t i = hash_name(name) & mask;; i = (i + 1) & mask) {
    size_t entry = ix->slots[i];
    if (!entry) return -1;
    if (!strcmp(strings[entry - 1], name)) return (long)(entry - 1);
  }
}

/* Puts an entry (position + 1) into the first free slot of its chain. */
static void index_place(size_t *slots, size_t cap, const char *const *strings, size_t entry) {
  size_t mask = cap - 1, i = hash_name(strings[entry - 1]) & mask;
  while (slots[i]) i = (i + 1) & mask;
  slots[i] = entry;
}

int ct_cfg_index_add(ct_context *ctx, ct_cfg_index *ix, const char *const *strings, size_t pos) {
  if (2 * (ix->n + 1) > ix->cap) {
    size_t cap = ix->cap ? 2 * ix->cap : 16;
    size_t *slots = ct_calloc(ctx, cap, sizeof *slots);
    if (!slots) return CT_ERR_NOMEM;
    for (size_t i = 0; i < ix->cap; i++)
      if (ix->slots[i]) index_place(slots, cap, strings, ix->slots[i]);
    ct_free(ctx, ix->slots);
    ix->slots = slots;
    ix->cap = cap;
  }
  index_place(ix->slots, ix->cap, strings, pos + 1);
  ix->n++;
  return CT_OK;
}

void ct_cfg_index_free(ct_context *ctx, ct_cfg_index *ix) {
  ct_free(ctx, ix->slots);
  ix->slots = NULL;
  ix->cap = ix->n = 0;
}
