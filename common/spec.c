/* PyTorch tree specs: torch.utils._pytree's treespec JSON, parsed and written. */
#include "spec.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define SPEC_MAX_DEPTH 64
#define ADD_LIT(b, lit) ck_sbuf_add((b), (lit), sizeof(lit) - 1)

static const char *const type_names[] = {
  [CK_SPEC_DICT] = "builtins.dict",
  [CK_SPEC_ODICT] = "collections.OrderedDict",
  [CK_SPEC_LIST] = "builtins.list",
  [CK_SPEC_TUPLE] = "builtins.tuple",
};

struct ck_spec *ck_spec_new(int kind)
{
  struct ck_spec *s = calloc(1, sizeof(*s));

  if (s != NULL)
    s->kind = kind;
  return s;
}

int ck_spec_append(struct ck_spec *parent, const struct ck_spec_key *key, struct ck_spec *kid)
{
  if (parent->n == parent->cap) {
    size_t cap = parent->cap ? parent->cap * 2 : 4;
    struct ck_spec **k = realloc(parent->kids, cap * sizeof(*k));
    struct ck_spec_key *ks;
    if (k == NULL)
      return -ENOMEM;
    parent->kids = k;
    if ((ks = realloc(parent->keys, cap * sizeof(*ks))) == NULL)
      return -ENOMEM;
    parent->keys = ks;
    parent->cap = cap;
  }
  memset(&parent->keys[parent->n], 0, sizeof(parent->keys[0]));
  if (key != NULL) {
    parent->keys[parent->n].is_int = key->is_int;
    parent->keys[parent->n].i = key->i;
    if (!key->is_int && (parent->keys[parent->n].s = strdup(key->s ? key->s : "")) == NULL)
      return -ENOMEM;
  }
  parent->kids[parent->n++] = kid;
  return 0;
}

void ck_spec_free(struct ck_spec *s)
{
  if (s == NULL)
    return;
  for (size_t i = 0; i < s->n; i++) {
    ck_spec_free(s->kids[i]);
    free(s->keys[i].s);
  }
  free(s->kids);
  free(s->keys);
  free(s);
}

/* ---- parsing ---- */

struct sparse {
  const struct ck_json *j;
  size_t nodes, max_nodes;
  struct ck_err *err;
};

static int kind_of(const struct ck_json *j, size_t tok)
{
  if (j->t[tok].type == CK_J_NULL)
    return CK_SPEC_LEAF;
  for (int k = CK_SPEC_DICT; k <= CK_SPEC_TUPLE; k++)
    if (ck_json_streq(j, tok, type_names[k]))
      return k;
  return -1;
}

/* A dict's context: a JSON string holding a list of str / int keys. */
static int parse_keys(struct sparse *p, size_t ctx, struct ck_json *keys)
{
  char *text = NULL;
  size_t len;
  int rc;

  if ((rc = ck_json_str(p->j, ctx, 0, &text, &len)) != 0)
    return ck_err_set(p->err, rc == -ENOMEM ? rc : CK_EFORMAT, "a dict's context is not a string");
  rc = ck_json_parse(text, len, 2 * p->max_nodes + 2, 4, keys, p->err);
  if (rc == 0 && keys->t[0].type != CK_J_ARRAY) {
    ck_json_free(keys);
    rc = ck_err_set(p->err, CK_EFORMAT, "a dict's context is not a list of keys");
  }
  if (rc != 0) {
    free(text);
    return rc;
  }
  keys->s = text; /* owned from here: freed with the tokens by free_keys */
  return 0;
}

static void free_keys(struct ck_json *keys)
{
  free((char *)keys->s);
  ck_json_free(keys);
}

static int key_at(struct sparse *p, const struct ck_json *keys, size_t tok, struct ck_spec_key *k)
{
  memset(k, 0, sizeof(*k));
  if (keys->t[tok].type == CK_J_NUMBER) {
    k->is_int = 1;
    if (ck_json_i64(keys, tok, &k->i) != 0)
      return ck_err_set(p->err, CK_EFORMAT, "a dict key is not an integer or a string");
    return 0;
  }
  if (keys->t[tok].type != CK_J_STRING)
    return ck_err_set(p->err, CK_EUNSUP, "a dict key is neither an integer nor a string");
  if (ck_json_str(keys, tok, 0, &k->s, NULL) != 0)
    return ck_err_set(p->err, CK_EFORMAT, "a dict key holds NUL");
  return 0;
}

static int parse_node(struct sparse *p, size_t tok, unsigned depth, struct ck_spec **out);

static int parse_children(struct sparse *p, struct ck_spec *s, size_t kids, const struct ck_json *keys,
                          unsigned depth)
{
  size_t k = kids + 1, key = keys ? 1 : 0;
  int rc;

  if (keys && keys->t[0].size != p->j->t[kids].size)
    return ck_err_set(p->err, CK_EFORMAT, "a dict has %u keys but %u children", keys->t[0].size,
                      p->j->t[kids].size);
  for (uint32_t i = 0; i < p->j->t[kids].size; i++) {
    struct ck_spec *kid = NULL;
    struct ck_spec_key ky;
    if ((rc = parse_node(p, k, depth + 1, &kid)) != 0)
      return rc;
    if (keys) {
      if ((rc = key_at(p, keys, key, &ky)) != 0) {
        ck_spec_free(kid);
        return rc;
      }
      key = keys->t[key].next;
    }
    rc = ck_spec_append(s, keys ? &ky : NULL, kid);
    if (keys)
      free(ky.s);
    if (rc != 0) {
      ck_spec_free(kid);
      return ck_err_set(p->err, rc, "out of memory");
    }
    k = p->j->t[k].next;
  }
  return 0;
}

static int parse_node(struct sparse *p, size_t tok, unsigned depth, struct ck_spec **out)
{
  const struct ck_json *j = p->j;
  struct ck_json keys = { 0 };
  struct ck_spec *s = NULL;
  size_t type, ctx, kids;
  int kind, rc;

  *out = NULL;
  if (depth > SPEC_MAX_DEPTH)
    return ck_err_set(p->err, CK_ELIMIT, "tree spec nested deeper than %d", SPEC_MAX_DEPTH);
  if (++p->nodes > p->max_nodes)
    return ck_err_set(p->err, CK_ELIMIT, "tree spec has more than %zu nodes", p->max_nodes);
  if (j->t[tok].type != CK_J_OBJECT || (type = ck_json_get(j, tok, "type")) == 0 ||
      (ctx = ck_json_get(j, tok, "context")) == 0 || (kids = ck_json_get(j, tok, "children_spec")) == 0 ||
      j->t[kids].type != CK_J_ARRAY)
    return ck_err_set(p->err, CK_EFORMAT, "tree spec node is not {type, context, children_spec}");
  if ((kind = kind_of(j, type)) < 0)
    return ck_err_set(p->err, CK_EUNSUP, "tree spec node type %.*s is not supported",
                      (int)(j->t[type].end - j->t[type].start), j->s + j->t[type].start);
  if (kind == CK_SPEC_LEAF && j->t[kids].size != 0)
    return ck_err_set(p->err, CK_EFORMAT, "tree spec leaf has children");
  if ((kind == CK_SPEC_DICT || kind == CK_SPEC_ODICT) && (rc = parse_keys(p, ctx, &keys)) != 0)
    return rc;
  if ((s = ck_spec_new(kind)) == NULL) {
    rc = ck_err_set(p->err, -ENOMEM, "out of memory");
    goto out;
  }
  rc = parse_children(p, s, kids, keys.t ? &keys : NULL, depth);
out:
  if (keys.t)
    free_keys(&keys);
  if (rc != 0)
    ck_spec_free(s);
  else
    *out = s;
  return rc;
}

int ck_spec_parse(const char *json, size_t len, size_t max_nodes, struct ck_spec **out, struct ck_err *err)
{
  struct ck_json j;
  struct sparse p = { .j = &j, .max_nodes = max_nodes, .err = err };
  int64_t proto;
  int rc;

  *out = NULL;
  if ((rc = ck_json_parse(json, len, 8 * max_nodes + 16, 3 * SPEC_MAX_DEPTH + 8, &j, err)) != 0)
    return rc;
  if (j.t[0].type != CK_J_ARRAY || j.t[0].size != 2 || ck_json_i64(&j, 1, &proto) != 0) {
    rc = ck_err_set(err, CK_EFORMAT, "tree spec is not [protocol, node]");
    goto out;
  }
  if (proto != 1) {
    rc = ck_err_set(err, CK_EUNSUP, "tree spec protocol %" PRId64 " is not supported (only 1)", proto);
    goto out;
  }
  rc = parse_node(&p, j.t[1].next, 0, out);
out:
  ck_json_free(&j);
  return rc;
}

/* ---- writing ---- */

static void dump_node(struct ck_sbuf *b, const struct ck_spec *s)
{
  if (s->kind == CK_SPEC_LEAF) {
    ADD_LIT(b, "{\"type\": null, \"context\": null, \"children_spec\": []}");
    return;
  }
  ADD_LIT(b, "{\"type\": \"");
  ck_sbuf_add(b, type_names[s->kind], strlen(type_names[s->kind]));
  ADD_LIT(b, "\", \"context\": ");
  if (s->kind == CK_SPEC_DICT || s->kind == CK_SPEC_ODICT) {
    struct ck_sbuf ctx = { 0 };
    ADD_LIT(&ctx, "[");
    for (size_t i = 0; i < s->n; i++) {
      if (i)
        ADD_LIT(&ctx, ", ");
      if (s->keys[i].is_int)
        ck_sbuf_addf(&ctx, "%" PRId64, s->keys[i].i);
      else
        ck_sbuf_json_str(&ctx, s->keys[i].s, strlen(s->keys[i].s));
    }
    ADD_LIT(&ctx, "]");
    if (ctx.oom)
      b->oom = 1;
    else
      ck_sbuf_json_str(b, ctx.p, ctx.len);
    free(ctx.p);
  } else {
    ADD_LIT(b, "\"null\"");
  }
  ADD_LIT(b, ", \"children_spec\": [");
  for (size_t i = 0; i < s->n; i++) {
    if (i)
      ADD_LIT(b, ", ");
    dump_node(b, s->kids[i]);
  }
  ADD_LIT(b, "]}");
}

char *ck_spec_dumps(const struct ck_spec *s)
{
  struct ck_sbuf b = { 0 };

  ADD_LIT(&b, "[1, ");
  dump_node(&b, s);
  ADD_LIT(&b, "]");
  if (b.oom) {
    free(b.p);
    return NULL;
  }
  return b.p;
}

/* ---- leaves ---- */

struct walk {
  struct ck_sbuf name;
  int (*fn)(void *ctx, const char *name, size_t len);
  void *ctx;
};

static int walk_node(struct walk *w, const struct ck_spec *s)
{
  size_t mark = w->name.len;
  int rc = 0;

  if (s->kind == CK_SPEC_LEAF)
    return w->name.oom ? -ENOMEM : w->fn(w->ctx, w->name.p ? w->name.p : "", w->name.len);
  for (size_t i = 0; i < s->n && rc == 0; i++) {
    if (mark > 0)
      ck_sbuf_add(&w->name, ".", 1);
    if (s->kind == CK_SPEC_LIST || s->kind == CK_SPEC_TUPLE)
      ck_sbuf_addf(&w->name, "%zu", i);
    else if (s->keys[i].is_int)
      ck_sbuf_addf(&w->name, "%" PRId64, s->keys[i].i);
    else
      ck_sbuf_add(&w->name, s->keys[i].s, strlen(s->keys[i].s));
    rc = walk_node(w, s->kids[i]);
    w->name.len = mark;
    if (w->name.p)
      w->name.p[mark] = 0;
  }
  return rc;
}

int ck_spec_leaves(const struct ck_spec *s, int (*fn)(void *ctx, const char *name, size_t len), void *ctx)
{
  struct walk w = { .fn = fn, .ctx = ctx };
  int rc = walk_node(&w, s);

  free(w.name.p);
  return rc;
}

size_t ck_spec_count_leaves(const struct ck_spec *s)
{
  size_t n = 0;

  if (s->kind == CK_SPEC_LEAF)
    return 1;
  for (size_t i = 0; i < s->n; i++)
    n += ck_spec_count_leaves(s->kids[i]);
  return n;
}
