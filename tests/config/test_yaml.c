/* config/yaml.c: YAML text -> a located tree (maps in file order, lists,
 * scalars), anchors and aliases, duplicate keys, libyaml's syntax errors,
 * files that cannot be read, and allocation failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config_internal.h"
#include "ct_test.h"

/* Parses text into *doc, asserting success. */
static ct_cfg_doc *parse_ok(ct_context *ctx, const char *text) {
  ct_cfg_doc *doc = NULL;
  int rc = ct_cfg_parse(ctx, "t.yaml", text, strlen(text), &doc);
  if (rc != CT_OK) fail_msg("parse failed: %s", ct_errmsg(ctx));
  assert_non_null(doc);
  return doc;
}

/* Parses text expecting CT_ERR_CONFIG whose message holds every word. */
static void parse_fails(const char *text, const char *where, const char *words) {
  ct_context *ctx = ct_context_new(NULL);
  ct_cfg_doc *doc = NULL;
  assert_int_equal(ct_cfg_parse(ctx, "t.yaml", text, strlen(text), &doc), CT_ERR_CONFIG);
  assert_null(doc);
  const char *msg = ct_errmsg(ctx);
  if (!strstr(msg, where)) fail_msg("expected '%s' in: %s", where, msg);
  if (!strstr(msg, words)) fail_msg("expected '%s' in: %s", words, msg);
  ct_context_free(ctx);
}

/* Maps keep file order and 1-based locations of keys and values. */
static void test_tree_and_locations(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_cfg_doc *doc = parse_ok(ctx, "model:\n  name: lv\n  states: {x: 1, y: '2*a'}\n"
                                  "list: [1, 2.5, \"three\"]\n");
  const ct_cfg_node *root = doc->root;
  assert_int_equal(root->kind, CT_CFG_MAP);
  assert_int_equal(root->n, 2);
  assert_string_equal(root->keys[0], "model");
  assert_string_equal(root->keys[1], "list");
  assert_int_equal(root->key_locs[1].line, 4);
  assert_int_equal(root->key_locs[1].col, 1);
  const ct_cfg_node *model = ct_cfg_get(root, "model");
  const ct_cfg_node *name = ct_cfg_get(model, "name");
  assert_string_equal(name->text, "lv");
  assert_int_equal(name->loc.line, 2);
  assert_int_equal(name->loc.col, 9);
  assert_string_equal(name->loc.file, "t.yaml");
  const ct_cfg_node *y = ct_cfg_get(ct_cfg_get(model, "states"), "y");
  assert_string_equal(y->text, "2*a");
  assert_true(y->quoted);
  assert_int_equal(y->loc.col, 21);
  assert_int_equal(y->text_col, 22);
  const ct_cfg_node *list = ct_cfg_get(root, "list");
  assert_int_equal(list->kind, CT_CFG_SEQ);
  assert_int_equal(list->n, 3);
  assert_string_equal(list->items[1]->text, "2.5");
  assert_false(list->items[1]->quoted);
  assert_null(ct_cfg_get(root, "missing"));
  assert_null(ct_cfg_get(list, "model"));
  ct_cfg_doc_free(doc);
  ct_context_free(ctx);
}

/* An alias is a copy of its anchor's node (maps, lists and scalars). */
static void test_anchors_and_aliases(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_cfg_doc *doc = parse_ok(ctx, "base: &b {rtol: 1e-6, atol: &a 1e-9}\n"
                                  "copy: *b\nscalar: *a\nlist: [*a, *b]\n");
  const ct_cfg_node *copy = ct_cfg_get(doc->root, "copy");
  assert_int_equal(copy->kind, CT_CFG_MAP);
  assert_string_equal(ct_cfg_get(copy, "rtol")->text, "1e-6");
  assert_ptr_not_equal(copy, ct_cfg_get(doc->root, "base"));
  assert_int_equal(copy->loc.line, 2);
  assert_string_equal(ct_cfg_get(doc->root, "scalar")->text, "1e-9");
  const ct_cfg_node *list = ct_cfg_get(doc->root, "list");
  assert_int_equal(list->items[1]->kind, CT_CFG_MAP);
  ct_cfg_doc_free(doc);
  ct_context_free(ctx);
}

/* Empty documents have no root; block scalars keep their text. */
static void test_empty_and_block_scalars(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  ct_cfg_doc *doc = parse_ok(ctx, "# nothing but a comment\n");
  assert_null(doc->root);
  ct_cfg_doc_free(doc);
  doc = parse_ok(ctx, "e: |\n  a + b\nempty:\n");
  assert_string_equal(ct_cfg_get(doc->root, "e")->text, "a + b\n");
  assert_string_equal(ct_cfg_get(doc->root, "empty")->text, "");
  ct_cfg_doc_free(doc);
  ct_context_free(ctx);
}

/* Duplicate keys are errors at the second one, naming the path. */
static void test_duplicate_keys(void **state) {
  (void)state;
  parse_fails("a: 1\nb: 2\na: 3\n", "t.yaml:3:1:",
              "duplicate key 'a' at the top level (first at line 1)");
  parse_fails("model:\n  states:\n    x: 1\n    x: 2\n", "t.yaml:4:5:",
              "duplicate key 'x' in model.states");
  parse_fails("l:\n  - {a: 1, a: 2}\n", "t.yaml:2:12:", "duplicate key 'a' in l.0");
}

/* libyaml's own errors come with their problem, context and location. */
static void test_syntax_errors(void **state) {
  (void)state;
  parse_fails("a: [1, 2\n", "t.yaml:2:1:", "did not find expected ',' or ']'");
  parse_fails("a: 1\n b: 2\n", "t.yaml:2:3:", "mapping values are not allowed");
  parse_fails("a: \"open\n", "t.yaml:2:1:", "found unexpected end of stream");
  parse_fails("a: *nothing\n", "t.yaml:1:4:", "alias '*nothing' refers to no anchor");
  parse_fails("a: &x [1, *x]\n", "t.yaml:1:11:", "refers to no anchor");
  parse_fails("a: 1\n---\nb: 2\n", "t.yaml:2:1:", "one YAML document");
  parse_fails("? [a, b]\n: 1\n", "t.yaml:1:3:", "a key must be a plain word");
  parse_fails("a: \"x\\0y\"\n", "t.yaml:1:4:", "NUL character");
  parse_fails("a: \xff\xfe\n", "t.yaml:1:4:", "cannot read the text");
  parse_fails("\ta: 1\n", "t.yaml:1:1:", "YAML syntax error");
}

/* Nesting and alias expansion are bounded (no crash, no blow-up). */
static void test_limits(void **state) {
  (void)state;
  char deep[1200];
  memset(deep, '[', 600);
  memset(deep + 600, ']', 600);
  deep[1199] = '\0';
  deep[1198] = ']';
  parse_fails(deep, "t.yaml:1:201:", "nesting deeper than 200");
  parse_fails("a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
              "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\n"
              "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e]\n",
              "t.yaml:", "aliases expand to more than");
}

/* Files: read and parsed with their name in locations; unreadable ones
 * are CT_ERR_CONFIG naming the file. */
static void test_files(void **state) {
  (void)state;
  ct_context *ctx = ct_context_new(NULL);
  char path[] = "/tmp/ct_test_yaml_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w");
  for (int i = 0; i < 3000; i++) fprintf(f, "key%d: %d\n", i, i);
  fclose(f);
  ct_cfg_doc *doc = NULL;
  assert_int_equal(ct_cfg_parse_file(ctx, path, &doc), CT_OK);
  assert_int_equal(doc->root->n, 3000);
  assert_string_equal(doc->root->items[2999]->text, "2999");
  assert_string_equal(doc->root->key_locs[2999].file, path);
  assert_int_equal(doc->root->key_locs[2999].line, 3000);
  ct_cfg_doc_free(doc);
  remove(path);
  assert_int_equal(ct_cfg_parse_file(ctx, path, &doc), CT_ERR_CONFIG);
  assert_non_null(strstr(ct_errmsg(ctx), path));
  assert_non_null(strstr(ct_errmsg(ctx), "cannot open the config"));
  assert_int_equal(ct_cfg_parse_file(ctx, "/tmp", &doc), CT_ERR_CONFIG);
  assert_non_null(strstr(ct_errmsg(ctx), "cannot read the config"));
  assert_null(doc);
  ct_context_free(ctx);
}

/* Parsing a document with anchors under failing allocations. */
static int parse_under_faults(ct_context *ctx, void *ud) {
  const char *text = ud;
  ct_cfg_doc *doc = NULL;
  int rc = ct_cfg_parse(ctx, "f.yaml", text, strlen(text), &doc);
  ct_cfg_doc_free(doc);
  return rc;
}

/* Every allocation failure is reported and leaks nothing. */
static void test_fault_sweep(void **state) {
  (void)state;
  const char *text = "a: &x {k: [1, 2, {z: 3}], j: v}\nb: *x\nc: [*x, *x]\nd: 'q'\n";
  assert_true(ct_test_fault_sweep(parse_under_faults, (void *)text) > 10);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tree_and_locations),
      cmocka_unit_test(test_anchors_and_aliases),
      cmocka_unit_test(test_empty_and_block_scalars),
      cmocka_unit_test(test_duplicate_keys),
      cmocka_unit_test(test_syntax_errors),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_files),
      cmocka_unit_test(test_fault_sweep),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
