/* The restricted pickle VM that reads torch.save's data.pkl.
 *
 * DESIGN. This follows torch/_weights_only_unpickler.py, not pickle.py: a fixed set of
 * opcodes (those protocol 2..5 pickles of state dicts use) and a fixed set of globals
 * (containers, torch._utils._rebuild_tensor_v2 / _rebuild_parameter*, the storage
 * classes, torch.Size, torch.device, dtypes). Nothing is ever imported or called: a
 * REDUCE on an allowed global is interpreted here, and any other global is refused by
 * name when GLOBAL / STACK_GLOBAL names it, before anything could use it.
 * Objects live in one arena (vm->u->objs) and reference each other by pointer, so memo
 * sharing (BINGET) and mutation after sharing behave as in Python, and a cycle built
 * with APPEND is harmless here (the tree walk that follows caps its depth). Every
 * length is checked against the bytes left before anything is allocated; objects,
 * stack, memo and open MARKs are capped by ck_unpickle_limits; integers are 64-bit
 * (LONG1 up to 8 bytes). Persistent ids become CK_PK_STORAGE objects; the torch reader
 * maps them to zip entries. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtype.h"
#include "unpickle.h"

const struct ck_unpickle_limits ck_unpickle_default_limits = {
  .max_objects = (size_t)4 << 20, .max_stack = (size_t)1 << 20, .max_memo = (size_t)1 << 20, .max_marks = 256,
  .max_rank = 64,
};

enum { G_NONE = 0, G_TENSOR_V2, G_PARAM, G_PARAM_STATE, G_ODICT, G_SIZE, G_DEVICE, G_STORAGE, G_DTYPE };

struct vm {
  const uint8_t *p;
  size_t len, pos, op_pos;
  const struct ck_unpickle_limits *lim;
  struct ck_unpickle *u;
  struct ck_pobj **stack;
  size_t sp, stack_cap;
  size_t *marks;
  size_t nmarks;
  struct ck_pobj **memo;
  size_t memo_cap, memo_count;
  struct ck_err *err;
};

static int fail(struct vm *v, int code, const char *what)
{
  return ck_err_set(v->err, code, "at byte %zu: %s", v->op_pos, what);
}

static struct ck_pobj *new_obj(struct vm *v, int kind)
{
  struct ck_unpickle *u = v->u;
  struct ck_pobj *o;

  if (u->nobjs >= v->lim->max_objects) {
    ck_err_set(v->err, CK_ELIMIT, "at byte %zu: more than %zu objects", v->op_pos, v->lim->max_objects);
    return NULL;
  }
  if (u->nobjs == u->capobjs) {
    size_t cap = u->capobjs ? u->capobjs * 2 : 64;
    struct ck_pobj **n = realloc(u->objs, cap * sizeof(*n));
    if (n == NULL)
      goto oom;
    u->objs = n, u->capobjs = cap;
  }
  if ((o = calloc(1, sizeof(*o))) == NULL)
    goto oom;
  o->kind = kind;
  u->objs[u->nobjs++] = o;
  return o;
oom:
  ck_err_set(v->err, -ENOMEM, "out of memory");
  return NULL;
}

static int push(struct vm *v, struct ck_pobj *o)
{
  if (o == NULL)
    return v->err->code ? v->err->code : -ENOMEM;
  if (v->sp == v->stack_cap) {
    size_t cap = v->stack_cap ? v->stack_cap * 2 : 64;
    struct ck_pobj **n;
    if (v->sp >= v->lim->max_stack)
      return fail(v, CK_ELIMIT, "stack deeper than the limit");
    if (cap > v->lim->max_stack)
      cap = v->lim->max_stack;
    if ((n = realloc(v->stack, cap * sizeof(*n))) == NULL)
      return ck_err_set(v->err, -ENOMEM, "out of memory");
    v->stack = n, v->stack_cap = cap;
  }
  v->stack[v->sp++] = o;
  return 0;
}

/* The bottom of the current frame: the last MARK, or 0. */
static size_t frame_base(const struct vm *v)
{
  return v->nmarks ? v->marks[v->nmarks - 1] : 0;
}

static struct ck_pobj *pop(struct vm *v)
{
  if (v->sp <= frame_base(v)) {
    fail(v, CK_EFORMAT, "stack underflow");
    return NULL;
  }
  return v->stack[--v->sp];
}

static struct ck_pobj *top(struct vm *v)
{
  if (v->sp <= frame_base(v)) {
    fail(v, CK_EFORMAT, "stack underflow");
    return NULL;
  }
  return v->stack[v->sp - 1];
}

static int add_item(struct vm *v, struct ck_pobj *c, struct ck_pobj *item)
{
  if (c->n == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 4;
    struct ck_pobj **n = realloc(c->items, cap * sizeof(*n));
    if (n == NULL)
      return ck_err_set(v->err, -ENOMEM, "out of memory");
    c->items = n, c->cap = cap;
  }
  c->items[c->n++] = item;
  return 0;
}

/* Pop the stack down to the last MARK: the items are v->stack[*from .. v->sp). */
static int pop_mark(struct vm *v, size_t *from)
{
  if (v->nmarks == 0)
    return fail(v, CK_EFORMAT, "no MARK to pop to");
  *from = v->marks[--v->nmarks];
  return 0;
}

static int need(struct vm *v, size_t n, const uint8_t **p)
{
  if (n > v->len - v->pos)
    return fail(v, CK_EFORMAT, "truncated (an argument runs past the end of the pickle)");
  *p = v->p + v->pos;
  v->pos += n;
  return 0;
}

static uint64_t le(const uint8_t *p, int n)
{
  uint64_t x = 0;
  for (int i = n - 1; i >= 0; i--)
    x = x << 8 | p[i];
  return x;
}

/* Strict UTF-8 (no overlongs, no surrogates, at most U+10FFFF). */
static int utf8_ok(const uint8_t *s, size_t n)
{
  size_t i = 0;

  while (i < n) {
    uint8_t c = s[i];
    size_t k = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : 9;
    uint32_t cp = k == 0 ? c : k == 1 ? c & 0x1fu : k == 2 ? c & 0x0fu : c & 0x07u;
    if (k == 9 || k > n - i - 1)
      return 0;
    for (size_t j = 1; j <= k; j++) {
      if ((s[i + j] & 0xc0) != 0x80)
        return 0;
      cp = cp << 6 | (s[i + j] & 0x3fu);
    }
    if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return 0;
    i += k + 1;
  }
  return 1;
}

static struct ck_pobj *new_str(struct vm *v, int kind, const uint8_t *s, size_t n)
{
  struct ck_pobj *o;

  if (!utf8_ok(s, n)) {
    fail(v, CK_EFORMAT, "string is not valid UTF-8");
    return NULL;
  }
  if ((o = new_obj(v, kind)) == NULL)
    return NULL;
  if ((o->s = malloc(n + 1)) == NULL) {
    ck_err_set(v->err, -ENOMEM, "out of memory");
    return NULL;
  }
  memcpy(o->s, s, n);
  o->s[n] = 0;
  o->slen = n;
  return o;
}

static int op_unicode(struct vm *v, int lenbytes)
{
  const uint8_t *p, *s;
  uint64_t n;
  int rc;

  if ((rc = need(v, (size_t)lenbytes, &p)) != 0)
    return rc;
  n = le(p, lenbytes);
  if (n > v->len - v->pos)
    return fail(v, CK_EFORMAT, "string length runs past the end of the pickle");
  if ((rc = need(v, (size_t)n, &s)) != 0)
    return rc;
  return push(v, new_str(v, CK_PK_STR, s, (size_t)n));
}

static int push_int(struct vm *v, int kind, int64_t i)
{
  struct ck_pobj *o = new_obj(v, kind);

  if (o)
    o->i = i;
  return push(v, o);
}

static int op_int(struct vm *v, int n, int is_signed)
{
  const uint8_t *p;
  uint64_t x;
  int rc;

  if ((rc = need(v, (size_t)n, &p)) != 0)
    return rc;
  x = le(p, n);
  if (is_signed && n == 4)
    return push_int(v, CK_PK_INT, (int32_t)(uint32_t)x);
  return push_int(v, CK_PK_INT, (int64_t)x);
}

static int op_long1(struct vm *v)
{
  const uint8_t *p;
  uint64_t x;
  int rc, n;

  if ((rc = need(v, 1, &p)) != 0)
    return rc;
  n = p[0];
  if (n > 8)
    return fail(v, CK_EUNSUP, "integer wider than 64 bits");
  if ((rc = need(v, (size_t)n, &p)) != 0)
    return rc;
  x = le(p, n);
  if (n > 0 && n < 8 && (p[n - 1] & 0x80))
    x |= ~(uint64_t)0 << (8 * n); /* sign-extend */
  return push_int(v, CK_PK_INT, (int64_t)x);
}

static int op_float(struct vm *v)
{
  const uint8_t *p;
  uint64_t x = 0;
  struct ck_pobj *o;
  int rc;

  if ((rc = need(v, 8, &p)) != 0)
    return rc;
  for (int i = 0; i < 8; i++)
    x = x << 8 | p[i]; /* big-endian */
  if ((o = new_obj(v, CK_PK_FLOAT)) != NULL)
    memcpy(&o->f, &x, 8);
  return push(v, o);
}

/* ---- globals ---- */

static const char *const unsupported_globals[] = {
  "torch._utils._rebuild_qtensor", "torch._utils._rebuild_sparse_tensor", "torch._utils._rebuild_sparse_csr_tensor",
  "torch._utils._rebuild_meta_tensor_no_storage", "torch._utils._rebuild_wrapper_subclass",
  "torch._utils._rebuild_device_tensor_from_numpy", "torch._utils._rebuild_nested_tensor",
  "torch._tensor._rebuild_from_type_v2", "torch._utils._rebuild_tensor", NULL,
};

/* Which allowed global module.name is (G_NONE if none); *dt for storages and dtypes. */
static int classify_global(const char *mod, const char *name, const struct ck_torch_dtype **dt)
{
  *dt = NULL;
  if (strcmp(mod, "collections") == 0 && strcmp(name, "OrderedDict") == 0)
    return G_ODICT;
  if (strcmp(mod, "torch._utils") == 0) {
    if (strcmp(name, "_rebuild_tensor_v2") == 0)
      return G_TENSOR_V2;
    if (strcmp(name, "_rebuild_parameter") == 0)
      return G_PARAM;
    if (strcmp(name, "_rebuild_parameter_with_state") == 0)
      return G_PARAM_STATE;
    return G_NONE;
  }
  if (strcmp(mod, "torch") != 0)
    return G_NONE;
  if (strcmp(name, "Size") == 0)
    return G_SIZE;
  if (strcmp(name, "device") == 0)
    return G_DEVICE;
  if (strcmp(name, "UntypedStorage") == 0) { /* bytes: torch loads it as uint8 */
    *dt = ck_torch_dtype_by_name("uint8");
    return G_STORAGE;
  }
  if ((*dt = ck_torch_dtype_by_storage(name)) != NULL)
    return G_STORAGE;
  if ((*dt = ck_torch_dtype_by_name(name)) != NULL)
    return G_DTYPE;
  return G_NONE;
}

static int push_global(struct vm *v, const char *mod, size_t mlen, const char *name, size_t nlen)
{
  char full[600];
  const struct ck_torch_dtype *dt;
  struct ck_pobj *o;
  char m[256], n[256];
  int id;

  if (mlen >= sizeof(m) || nlen >= sizeof(n))
    return fail(v, CK_EFORMAT, "global name too long");
  memcpy(m, mod, mlen), m[mlen] = 0;
  memcpy(n, name, nlen), n[nlen] = 0;
  snprintf(full, sizeof(full), "%s.%s", m, n);
  if ((id = classify_global(m, n, &dt)) == G_NONE) {
    for (int i = 0; unsupported_globals[i]; i++)
      if (strcmp(full, unsupported_globals[i]) == 0)
        return ck_err_set(v->err, CK_EUNSUP, "global '%s' (weights_only allows it) is not supported", full);
    return ck_err_set(v->err, CK_EFORMAT, "global '%s' is not allowed (weights_only)", full);
  }
  if ((o = new_str(v, CK_PK_GLOBAL, (const uint8_t *)full, strlen(full))) == NULL)
    return v->err->code;
  o->i = id;
  o->dt = dt;
  return push(v, o);
}

/* GLOBAL: "module\nname\n" */
static int op_global(struct vm *v)
{
  const uint8_t *start = v->p + v->pos, *end = v->p + v->len, *nl1, *nl2;

  if ((nl1 = memchr(start, '\n', (size_t)(end - start))) == NULL ||
      (nl2 = memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1))) == NULL)
    return fail(v, CK_EFORMAT, "GLOBAL without its two lines");
  v->pos = (size_t)(nl2 + 1 - v->p);
  if (!utf8_ok(start, (size_t)(nl2 - start)))
    return fail(v, CK_EFORMAT, "GLOBAL name is not UTF-8");
  return push_global(v, (const char *)start, (size_t)(nl1 - start), (const char *)nl1 + 1, (size_t)(nl2 - nl1 - 1));
}

static int op_stack_global(struct vm *v)
{
  struct ck_pobj *name = pop(v), *mod = name ? pop(v) : NULL;

  if (mod == NULL)
    return v->err->code;
  if (mod->kind != CK_PK_STR || name->kind != CK_PK_STR || memchr(mod->s, 0, mod->slen) || memchr(name->s, 0, name->slen))
    return fail(v, CK_EFORMAT, "STACK_GLOBAL needs two strings");
  return push_global(v, mod->s, mod->slen, name->s, name->slen);
}

/* ---- REDUCE on the allowed callables ---- */

static int is_empty_dict(const struct ck_pobj *o)
{
  return (o->kind == CK_PK_DICT || o->kind == CK_PK_ODICT) && o->n == 0;
}

static int int_tuple(const struct ck_pobj *o)
{
  if (o->kind != CK_PK_TUPLE)
    return 0;
  for (size_t i = 0; i < o->n; i++)
    if (o->items[i]->kind != CK_PK_INT || o->items[i]->i < 0)
      return 0;
  return 1;
}

/* _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]) */
static int rebuild_tensor(struct vm *v, const struct ck_pobj *a)
{
  struct ck_pobj **x = a->items, *t;
  size_t rank;

  if (a->n < 6 || a->n > 7 || x[0]->kind != CK_PK_STORAGE || x[1]->kind != CK_PK_INT || x[1]->i < 0 ||
      !int_tuple(x[2]) || !int_tuple(x[3]) || x[2]->n != x[3]->n || x[4]->kind != CK_PK_BOOL)
    return fail(v, CK_EFORMAT, "bad arguments to _rebuild_tensor_v2");
  /* metadata (torch 2.x: torch._C._get_tensor_metadata, only when non-empty) may set bits
   * such as conj that change what the bytes mean: refused rather than ignored */
  if (!is_empty_dict(x[5]) || (a->n == 7 && x[6]->kind != CK_PK_NONE && !is_empty_dict(x[6])))
    return fail(v, CK_EUNSUP, "tensor with backward hooks or metadata");
  rank = x[2]->n;
  if (rank > (size_t)v->lim->max_rank)
    return fail(v, CK_ELIMIT, "tensor rank beyond the limit");
  if ((t = new_obj(v, CK_PK_TENSOR)) == NULL)
    return v->err->code;
  t->storage = x[0];
  t->dt = x[0]->dt;
  t->offset = x[1]->i;
  t->rank = (int)rank;
  t->size = malloc((rank ? rank : 1) * sizeof(int64_t));
  t->stride = malloc((rank ? rank : 1) * sizeof(int64_t));
  if (t->size == NULL || t->stride == NULL)
    return ck_err_set(v->err, -ENOMEM, "out of memory");
  for (size_t i = 0; i < rank; i++)
    t->size[i] = x[2]->items[i]->i, t->stride[i] = x[3]->items[i]->i;
  return push(v, t);
}

/* _rebuild_parameter(data, requires_grad, hooks), _with_state(..., state): the tensor itself. */
static int rebuild_parameter(struct vm *v, const struct ck_pobj *a, int with_state)
{
  struct ck_pobj **x = a->items;

  if (a->n != (size_t)(with_state ? 4 : 3) || x[0]->kind != CK_PK_TENSOR || x[1]->kind != CK_PK_BOOL)
    return fail(v, CK_EFORMAT, "bad arguments to _rebuild_parameter");
  if (!is_empty_dict(x[2]))
    return fail(v, CK_EUNSUP, "parameter with backward hooks");
  if (with_state && x[3]->kind != CK_PK_NONE && !is_empty_dict(x[3]) &&
      !(x[3]->kind == CK_PK_TUPLE && x[3]->n == 0))
    return fail(v, CK_EUNSUP, "parameter with Python state");
  return push(v, x[0]);
}

static int reduce_device(struct vm *v, const struct ck_pobj *a)
{
  struct ck_pobj *o;

  if (a->n < 1 || a->n > 2 || a->items[0]->kind != CK_PK_STR)
    return fail(v, CK_EFORMAT, "bad arguments to torch.device");
  if ((o = new_str(v, CK_PK_OTHER, (const uint8_t *)"torch.device", 12)) == NULL)
    return v->err->code;
  return push(v, o);
}

static int op_reduce(struct vm *v)
{
  struct ck_pobj *args = pop(v), *fn = args ? pop(v) : NULL, *o;

  if (fn == NULL)
    return v->err->code;
  if (fn->kind != CK_PK_GLOBAL || args->kind != CK_PK_TUPLE)
    return fail(v, CK_EFORMAT, "REDUCE needs a global and an argument tuple");
  switch (fn->i) {
  case G_ODICT:
    if (args->n != 0)
      return fail(v, CK_EUNSUP, "OrderedDict built from arguments");
    return push(v, new_obj(v, CK_PK_ODICT));
  case G_TENSOR_V2: return rebuild_tensor(v, args);
  case G_PARAM: return rebuild_parameter(v, args, 0);
  case G_PARAM_STATE: return rebuild_parameter(v, args, 1);
  case G_DEVICE: return reduce_device(v, args);
  case G_SIZE:
    if (args->n != 1 || !int_tuple(args->items[0]))
      return fail(v, CK_EFORMAT, "bad arguments to torch.Size");
    return push(v, args->items[0]);
  default:
    o = fn;
    return ck_err_set(v->err, CK_EFORMAT, "at byte %zu: global '%s' cannot be called", v->op_pos, o->s);
  }
}

/* BINPERSID: ('storage', StorageType, key, location, numel) */
static int op_persid(struct vm *v)
{
  struct ck_pobj *t = pop(v), *s, **x;

  if (t == NULL)
    return v->err->code;
  x = t->items;
  if (t->kind != CK_PK_TUPLE || t->n != 5 || x[0]->kind != CK_PK_STR || strcmp(x[0]->s, "storage") != 0 ||
      x[1]->kind != CK_PK_GLOBAL || x[1]->i != G_STORAGE || x[2]->kind != CK_PK_STR || x[3]->kind != CK_PK_STR ||
      x[4]->kind != CK_PK_INT || x[4]->i < 0)
    return fail(v, CK_EFORMAT, "persistent id is not ('storage', type, key, location, numel)");
  if (x[2]->slen == 0 || x[2]->slen > 64 || strchr(x[2]->s, '/') || memchr(x[2]->s, 0, x[2]->slen) ||
      strcmp(x[2]->s, ".") == 0 || strcmp(x[2]->s, "..") == 0)
    return fail(v, CK_EFORMAT, "bad storage key");
  if ((s = new_obj(v, CK_PK_STORAGE)) == NULL)
    return v->err->code;
  if ((s->s = strdup(x[2]->s)) == NULL)
    return ck_err_set(v->err, -ENOMEM, "out of memory");
  s->slen = x[2]->slen;
  s->dt = x[1]->dt;
  s->numel = x[4]->i;
  return push(v, s);
}

static int op_build(struct vm *v)
{
  struct ck_pobj *state = pop(v), *target = state ? top(v) : NULL;

  if (target == NULL)
    return v->err->code;
  if (state->kind == CK_PK_NONE || is_empty_dict(state) || (state->kind == CK_PK_TUPLE && state->n == 0))
    return 0;
  /* Module.state_dict() is an OrderedDict with a _metadata attribute (per-module version
   * numbers), set by BUILD: weights_only allows it (__dict__.update); the attributes are
   * not items of the tree and are dropped */
  if (target->kind == CK_PK_ODICT && (state->kind == CK_PK_DICT || state->kind == CK_PK_ODICT))
    return 0;
  return fail(v, CK_EUNSUP, "BUILD with object state");
}

/* ---- containers ---- */

/* TUPLE, LIST, DICT: the items since the last MARK; TUPLE1..3: the top n. */
static int op_collect(struct vm *v, int kind, size_t n_top)
{
  struct ck_pobj *o;
  size_t from;
  int rc;

  if (n_top) {
    if (v->sp - frame_base(v) < n_top)
      return fail(v, CK_EFORMAT, "stack underflow");
    from = v->sp - n_top;
  } else if ((rc = pop_mark(v, &from)) != 0) {
    return rc;
  }
  if (kind == CK_PK_DICT && (v->sp - from) % 2 != 0)
    return fail(v, CK_EFORMAT, "DICT with an odd number of items");
  if ((o = new_obj(v, kind)) == NULL)
    return v->err->code;
  for (size_t i = from; i < v->sp; i++)
    if ((rc = add_item(v, o, v->stack[i])) != 0)
      return rc;
  v->sp = from;
  return push(v, o);
}

/* APPEND, APPENDS, SETITEM, SETITEMS onto the list / dict below the items. */
static int op_add(struct vm *v, int dict, int marked)
{
  size_t from;
  struct ck_pobj *c;
  int rc;

  if (marked) {
    if ((rc = pop_mark(v, &from)) != 0)
      return rc;
  } else {
    from = v->sp >= (size_t)(dict ? 2 : 1) ? v->sp - (dict ? 2 : 1) : 0;
    if (v->sp - frame_base(v) < (size_t)(dict ? 2 : 1))
      return fail(v, CK_EFORMAT, "stack underflow");
  }
  if (from <= frame_base(v) || (dict && (v->sp - from) % 2 != 0))
    return fail(v, CK_EFORMAT, "APPEND / SETITEM without a container or with odd items");
  c = v->stack[from - 1];
  if (dict ? (c->kind != CK_PK_DICT && c->kind != CK_PK_ODICT) : c->kind != CK_PK_LIST)
    return fail(v, CK_EFORMAT, dict ? "SETITEM on something not a dict" : "APPEND on something not a list");
  for (size_t i = from; i < v->sp; i++)
    if ((rc = add_item(v, c, v->stack[i])) != 0)
      return rc;
  v->sp = from;
  return 0;
}

static int op_mark(struct vm *v)
{
  if (v->nmarks >= v->lim->max_marks)
    return fail(v, CK_ELIMIT, "MARKs nested deeper than the limit");
  v->marks[v->nmarks++] = v->sp;
  return 0;
}

/* ---- memo ---- */

static int memo_put(struct vm *v, uint64_t idx)
{
  struct ck_pobj *o = top(v);

  if (o == NULL)
    return v->err->code;
  if (idx >= v->lim->max_memo)
    return fail(v, CK_ELIMIT, "memo index beyond the limit");
  if (idx >= v->memo_cap) {
    size_t cap = v->memo_cap ? v->memo_cap : 64;
    struct ck_pobj **n;
    while (cap <= idx)
      cap *= 2;
    if (cap > v->lim->max_memo)
      cap = v->lim->max_memo;
    if ((n = realloc(v->memo, cap * sizeof(*n))) == NULL)
      return ck_err_set(v->err, -ENOMEM, "out of memory");
    memset(n + v->memo_cap, 0, (cap - v->memo_cap) * sizeof(*n));
    v->memo = n, v->memo_cap = cap;
  }
  if (v->memo[idx] == NULL)
    v->memo_count++;
  v->memo[idx] = o;
  return 0;
}

static int memo_arg(struct vm *v, int n, uint64_t *idx)
{
  const uint8_t *p;
  int rc = need(v, (size_t)n, &p);

  if (rc == 0)
    *idx = le(p, n);
  return rc;
}

static int memo_get(struct vm *v, int n)
{
  uint64_t idx;
  int rc = memo_arg(v, n, &idx);

  if (rc != 0)
    return rc;
  if (idx >= v->memo_cap || v->memo[idx] == NULL)
    return fail(v, CK_EFORMAT, "memo key not set");
  return push(v, v->memo[idx]);
}

static int memo_put_arg(struct vm *v, int n)
{
  uint64_t idx;
  int rc = memo_arg(v, n, &idx);

  return rc ? rc : memo_put(v, idx);
}

/* ---- the loop ---- */

static int op_frame_proto(struct vm *v, uint8_t op)
{
  const uint8_t *p;
  int rc = need(v, op == 0x80 ? 1 : 8, &p);

  if (rc != 0)
    return rc;
  if (op == 0x80 && (p[0] < 2 || p[0] > 5))
    return fail(v, CK_EUNSUP, "pickle protocol other than 2..5");
  if (op == 0x95 && le(p, 8) > v->len - v->pos)
    return fail(v, CK_EFORMAT, "FRAME runs past the end of the pickle");
  return 0;
}

static int step(struct vm *v, uint8_t op)
{
  switch (op) {
  case 0x80: case 0x95: return op_frame_proto(v, op);
  case '(': return op_mark(v);
  case '}': return push(v, new_obj(v, CK_PK_DICT));
  case ']': return push(v, new_obj(v, CK_PK_LIST));
  case ')': return push(v, new_obj(v, CK_PK_TUPLE));
  case 't': return op_collect(v, CK_PK_TUPLE, 0);
  case 0x85: return op_collect(v, CK_PK_TUPLE, 1);
  case 0x86: return op_collect(v, CK_PK_TUPLE, 2);
  case 0x87: return op_collect(v, CK_PK_TUPLE, 3);
  case 'l': return op_collect(v, CK_PK_LIST, 0);
  case 'd': return op_collect(v, CK_PK_DICT, 0);
  case 'a': return op_add(v, 0, 0);
  case 'e': return op_add(v, 0, 1);
  case 's': return op_add(v, 1, 0);
  case 'u': return op_add(v, 1, 1);
  case 'X': return op_unicode(v, 4);
  case 0x8d: return op_unicode(v, 8);
  case 0x8c: return op_unicode(v, 1);
  case 'J': return op_int(v, 4, 1);
  case 'K': return op_int(v, 1, 0);
  case 'M': return op_int(v, 2, 0);
  case 0x8a: return op_long1(v);
  case 'G': return op_float(v);
  case 0x88: return push_int(v, CK_PK_BOOL, 1);
  case 0x89: return push_int(v, CK_PK_BOOL, 0);
  case 'N': return push(v, new_obj(v, CK_PK_NONE));
  case 'q': return memo_put_arg(v, 1);
  case 'r': return memo_put_arg(v, 4);
  case 0x94: return memo_put(v, v->memo_count);
  case 'h': return memo_get(v, 1);
  case 'j': return memo_get(v, 4);
  case 'c': return op_global(v);
  case 0x93: return op_stack_global(v);
  case 'R': return op_reduce(v);
  case 'b': return op_build(v);
  case 'Q': return op_persid(v);
  case '0': return pop(v) ? 0 : v->err->code;
  default: {
    char what[64];
    snprintf(what, sizeof(what), "opcode 0x%02x is not supported", op);
    return fail(v, CK_EUNSUP, what);
  }
  }
}

static int run(struct vm *v)
{
  int rc;

  while (v->pos < v->len) {
    uint8_t op = v->p[v->pos];
    v->op_pos = v->pos++;
    if (op == '.') {
      if (v->sp != 1 || v->nmarks != 0)
        return fail(v, CK_EFORMAT, "STOP with other than one object on the stack");
      v->u->root = v->stack[0];
      return 0;
    }
    if ((rc = step(v, op)) != 0)
      return rc;
  }
  v->op_pos = v->len;
  return fail(v, CK_EFORMAT, "no STOP");
}

int ck_unpickle(const uint8_t *data, size_t len, const struct ck_unpickle_limits *lim, struct ck_unpickle **out,
                struct ck_err *err)
{
  struct ck_err local;
  struct vm v = { .p = data, .len = len, .lim = lim ? lim : &ck_unpickle_default_limits, .err = err ? err : &local };
  int rc;

  *out = NULL;
  v.err->code = 0;
  v.u = calloc(1, sizeof(*v.u));
  v.marks = malloc((v.lim->max_marks ? v.lim->max_marks : 1) * sizeof(*v.marks));
  if (v.u == NULL || v.marks == NULL) {
    rc = ck_err_set(err, -ENOMEM, "out of memory");
    goto out;
  }
  if ((rc = run(&v)) != 0)
    goto out;
  *out = v.u;
  v.u = NULL;
out:
  ck_unpickle_free(v.u);
  free(v.stack);
  free(v.marks);
  free(v.memo);
  return rc;
}

void ck_unpickle_free(struct ck_unpickle *u)
{
  if (u == NULL)
    return;
  for (size_t i = 0; i < u->nobjs; i++) {
    struct ck_pobj *o = u->objs[i];
    free(o->s);
    free(o->items);
    free(o->size);
    free(o->stride);
    free(o);
  }
  free(u->objs);
  free(u);
}
