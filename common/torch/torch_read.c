/* The torch.save (zip, PyTorch >= 1.6) pipeline source: the archive's data.pkl run
 * through the restricted unpickler, the object tree walked into tensors (named by their
 * dotted path), values, skipped leaves and a treespec; each tensor streamed from its
 * storage entry (data/<key>), contiguous views by ranged preads, other views gathered
 * in row-major order through the caller's buffer. Each storage entry's CRC-32 (the
 * zip's own; libdeflate's, as the writer's) is verified once. Tensors come in the
 * storages' data order. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libdeflate.h>

#include "dtype.h"
#include "fileio.h"
#include "pipeline.h"
#include "spec.h"
#include "torch_dtype.h"
#include "unpickle.h"
#include "zip.h"

#define PICKLE_MAX ((size_t)256 << 20)
#define TREE_DEPTH 64
/* Shared containers (BINGET) make a tree exponentially larger than its pickle: the walk
 * counts nodes and name bytes rather than trusting the pickle's size. */
#define TREE_NODES ((size_t)1 << 20)
#define NAME_MAX_LEN ((size_t)64 << 10)
#define NAME_BYTES ((size_t)256 << 20)

struct tstorage {
  const char *key;
  const struct ck_torch_dtype *dt;
  int64_t numel;
  const struct ck_zip_entry *e;
  uint64_t data;   /* offset of the entry's bytes in the file */
  int verified;
};

struct ttensor {
  char *name;
  size_t nlen;
  const struct ck_pobj *o; /* the view (during open) */
  struct tstorage *st;
  int rank;
  int64_t *dims, *stride;
  uint64_t offset, nelem, nbytes;
  int contiguous, whole;
  size_t order; /* tree order */
};

struct torch_src {
  struct ck_source base; /* first: the pipeline sees this */
  struct ck_zip *z;
  struct ck_unpickle *u;
  struct ttensor *t;
  size_t nt, capt;
  struct tstorage *st;
  size_t nst;
};

/* ---- the tree walk ---- */

struct walk {
  struct torch_src *s;
  char *name;
  size_t len, cap;
  size_t nodes, name_bytes; /* so far, against TREE_NODES and NAME_BYTES */
  struct ck_err *err;
};

static int name_push(struct walk *w, const char *part, size_t n, size_t *saved)
{
  size_t need = w->len + (w->len ? 1 : 0) + n + 1;

  *saved = w->len;
  if (need > NAME_MAX_LEN)
    return ck_err_set(w->err, CK_ELIMIT, "a leaf name longer than %zu bytes", NAME_MAX_LEN);
  if (need > w->cap) {
    size_t cap = need * 2;
    char *p = realloc(w->name, cap);
    if (p == NULL)
      return ck_err_set(w->err, -ENOMEM, "out of memory");
    w->name = p, w->cap = cap;
  }
  if (w->len)
    w->name[w->len++] = '.';
  memcpy(w->name + w->len, part, n);
  w->len += n;
  w->name[w->len] = 0;
  return 0;
}

static int add_tensor(struct walk *w, const struct ck_pobj *o)
{
  struct torch_src *s = w->s;
  struct ttensor *t;

  if (s->nt == s->capt) {
    size_t cap = s->capt ? s->capt * 2 : 16;
    struct ttensor *n = realloc(s->t, cap * sizeof(*n));
    if (n == NULL)
      return ck_err_set(w->err, -ENOMEM, "out of memory");
    s->t = n, s->capt = cap;
  }
  t = &s->t[s->nt];
  memset(t, 0, sizeof(*t));
  if ((t->name = malloc(w->len + 1)) == NULL)
    return ck_err_set(w->err, -ENOMEM, "out of memory");
  memcpy(t->name, w->name, w->len + 1);
  t->nlen = w->len;
  t->o = o;
  t->order = s->nt++;
  return 0;
}

static int leaf(struct walk *w, const struct ck_pobj *o)
{
  struct ck_source *b = &w->s->base;
  int rc;

  switch (o->kind) {
  case CK_PK_TENSOR: return add_tensor(w, o);
  case CK_PK_NONE: rc = ck_source_add_value(b, w->name, CK_VAL_NONE, 0, 0, NULL, 0); break;
  case CK_PK_BOOL: rc = ck_source_add_value(b, w->name, CK_VAL_BOOL, o->i, 0, NULL, 0); break;
  case CK_PK_INT: rc = ck_source_add_value(b, w->name, CK_VAL_INT, o->i, 0, NULL, 0); break;
  case CK_PK_FLOAT: rc = ck_source_add_value(b, w->name, CK_VAL_FLOAT, 0, o->f, NULL, 0); break;
  case CK_PK_STR: rc = ck_source_add_value(b, w->name, CK_VAL_STR, 0, 0, o->s, o->slen); break;
  default: rc = ck_source_skip(b, w->name, o->kind == CK_PK_STORAGE ? "a bare storage" : o->s ? o->s : "an object"); break;
  }
  return rc ? ck_err_set(w->err, rc, "out of memory") : 0;
}

static int walk(struct walk *w, const struct ck_pobj *o, int depth, struct ck_spec **out);

/* One child of a container: its key extends the name, its subtree is appended. */
static int walk_child(struct walk *w, struct ck_spec *node, const struct ck_pobj *key, size_t index,
                      const struct ck_pobj *val, int depth)
{
  struct ck_spec_key k = { 0 };
  struct ck_spec *kid = NULL;
  char num[32];
  size_t saved;
  int rc;

  if (key && key->kind == CK_PK_STR) {
    if (memchr(key->s, 0, key->slen))
      return ck_err_set(w->err, CK_EUNSUP, "%s: dict key holding a NUL", w->len ? w->name : "(root)");
    k.s = key->s;
  } else if (key && key->kind == CK_PK_INT) {
    k.is_int = 1, k.i = key->i;
  } else if (key) {
    return ck_err_set(w->err, CK_EUNSUP, "%s: dict key that is not a string or an int", w->len ? w->name : "(root)");
  }
  if (k.s == NULL)
    snprintf(num, sizeof(num), "%lld", key ? (long long)k.i : (long long)index);
  if ((rc = name_push(w, k.s ? k.s : num, k.s ? key->slen : strlen(num), &saved)) != 0)
    return rc;
  if ((rc = walk(w, val, depth + 1, &kid)) == 0 && ck_spec_append(node, key ? &k : NULL, kid) != 0) {
    ck_spec_free(kid);
    rc = ck_err_set(w->err, -ENOMEM, "out of memory");
  }
  w->len = saved;
  w->name[saved] = 0;
  return rc;
}

static int walk(struct walk *w, const struct ck_pobj *o, int depth, struct ck_spec **out)
{
  int kind = o->kind == CK_PK_DICT ? CK_SPEC_DICT : o->kind == CK_PK_ODICT ? CK_SPEC_ODICT
             : o->kind == CK_PK_LIST ? CK_SPEC_LIST : o->kind == CK_PK_TUPLE ? CK_SPEC_TUPLE : CK_SPEC_LEAF;
  int dict = kind == CK_SPEC_DICT || kind == CK_SPEC_ODICT, rc = 0;
  struct ck_spec *node;

  *out = NULL;
  if (depth > TREE_DEPTH)
    return ck_err_set(w->err, CK_ELIMIT, "%s: nested deeper than %d (or a cycle)", w->name, TREE_DEPTH);
  if (++w->nodes > TREE_NODES || (w->name_bytes += w->len) > NAME_BYTES)
    return ck_err_set(w->err, CK_ELIMIT, "the tree has more than %zu nodes or %zu bytes of names (shared containers?)",
                      TREE_NODES, NAME_BYTES);
  if ((node = ck_spec_new(kind)) == NULL)
    return ck_err_set(w->err, -ENOMEM, "out of memory");
  if (kind == CK_SPEC_LEAF)
    rc = leaf(w, o);
  for (size_t i = 0; kind != CK_SPEC_LEAF && rc == 0 && i < (dict ? o->n / 2 : o->n); i++)
    rc = dict ? walk_child(w, node, o->items[2 * i], i, o->items[2 * i + 1], depth)
              : walk_child(w, node, NULL, i, o->items[i], depth);
  if (rc != 0)
    ck_spec_free(node);
  else
    *out = node;
  return rc;
}

static int walk_tree(struct torch_src *s, struct ck_err *err)
{
  struct walk w = { .s = s, .err = err };
  struct ck_spec *root = NULL;
  int k = s->u->root->kind, rc;

  if (k != CK_PK_DICT && k != CK_PK_ODICT && k != CK_PK_LIST && k != CK_PK_TUPLE)
    return ck_err_set(err, CK_EUNSUP, "data.pkl: the saved object is not a dict, list or tuple");
  if ((w.name = calloc(1, 64)) == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  w.cap = 64;
  if ((rc = walk(&w, s->u->root, 0, &root)) == 0 && (s->base.spec = ck_spec_dumps(root)) == NULL)
    rc = ck_err_set(err, -ENOMEM, "out of memory");
  ck_spec_free(root);
  free(w.name);
  return rc;
}

/* ---- storages and views ---- */

static int cmp_key(const void *a, const void *b)
{
  const struct ttensor *x = *(struct ttensor *const *)a, *y = *(struct ttensor *const *)b;
  return strcmp(x->o->storage->s, y->o->storage->s);
}

/* One storage: its zip entry holds exactly numel elements of its dtype. */
static int bind_storage(struct torch_src *s, const char *prefix, const struct ck_pobj *o, struct tstorage *st,
                        struct ck_err *err)
{
  char *name = ck_asprintf("%s/data/%s", prefix, o->s);
  int rc = 0;

  st->key = o->s, st->dt = o->dt, st->numel = o->numel;
  if (name == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  if ((st->e = ck_zip_find(s->z, name)) == NULL) {
    rc = ck_err_set(err, CK_EFORMAT, "%s: storage '%s' has no zip entry %s", s->base.path, o->s, name);
    goto out;
  }
  if ((uint64_t)o->numel > UINT64_MAX / o->dt->size || st->e->size != (uint64_t)o->numel * o->dt->size) {
    rc = ck_err_set(err, CK_EFORMAT, "%s: entry %s holds %llu bytes, not %lld elements of %s", s->base.path, name,
                    (unsigned long long)st->e->size, (long long)o->numel, o->dt->dtype);
    goto out;
  }
  rc = ck_zip_data_offset(s->z, st->e, &st->data, err);
out:
  free(name);
  return rc;
}

/* Group the tensors by storage key; tensors of one key must agree on its type and size. */
static int bind_storages(struct torch_src *s, const char *prefix, struct ck_err *err)
{
  struct ttensor **v = malloc((s->nt ? s->nt : 1) * sizeof(*v));
  int rc = 0;

  s->st = calloc(s->nt ? s->nt : 1, sizeof(*s->st));
  if (v == NULL || s->st == NULL) {
    free(v);
    return ck_err_set(err, -ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < s->nt; i++)
    v[i] = &s->t[i];
  qsort(v, s->nt, sizeof(*v), cmp_key);
  for (size_t i = 0; i < s->nt && rc == 0; i++) {
    const struct ck_pobj *o = v[i]->o->storage;
    struct tstorage *prev = s->nst ? &s->st[s->nst - 1] : NULL;
    if (prev && strcmp(prev->key, o->s) == 0) {
      if (prev->dt != o->dt || prev->numel != o->numel)
        rc = ck_err_set(err, CK_EFORMAT, "%s: storage '%s' is declared with two types or sizes", s->base.path, o->s);
      v[i]->st = prev;
      continue;
    }
    rc = bind_storage(s, prefix, o, &s->st[s->nst], err);
    v[i]->st = &s->st[s->nst++];
  }
  free(v);
  return rc;
}

/* Shape, element count, contiguity, and the view inside its storage (overflow-checked). */
static int check_view(struct torch_src *s, struct ttensor *t, struct ck_err *err)
{
  const struct ck_pobj *o = t->o;
  uint64_t nelem = 1, last = (uint64_t)o->offset, expect = 1;
  size_t esize = t->st->dt->size;

  t->rank = o->rank, t->dims = o->size, t->stride = o->stride, t->offset = (uint64_t)o->offset;
  for (int i = 0; i < o->rank; i++) {
    uint64_t n = (uint64_t)o->size[i];
    if (n && nelem > UINT64_MAX / n)
      goto range;
    nelem *= n;
  }
  for (int i = 0; nelem && i < o->rank; i++) {
    uint64_t step = (uint64_t)o->size[i] - 1, st = (uint64_t)o->stride[i];
    if (st && step > (UINT64_MAX - last) / st)
      goto range;
    last += step * st;
  }
  if (nelem > UINT64_MAX / esize || (nelem ? last >= (uint64_t)o->storage->numel : t->offset > (uint64_t)o->storage->numel))
    goto range;
  t->nelem = nelem, t->nbytes = nelem * esize;
  t->contiguous = 1;
  for (int i = o->rank - 1; i >= 0; i--) {
    if (o->size[i] != 1 && (uint64_t)o->stride[i] != expect)
      t->contiguous = 0;
    expect *= (uint64_t)o->size[i];
  }
  t->whole = t->contiguous && t->offset == 0 && nelem == (uint64_t)o->storage->numel;
  return 0;
range:
  return ck_err_set(err, CK_EFORMAT, "%s: tensor '%s': view (offset %lld) lies outside its storage '%s' of %lld elements",
                    s->base.path, t->name, (long long)o->offset, o->storage->s, (long long)o->storage->numel);
}

/* The storages' data order; within a storage by offset, then tree order. */
static int cmp_data(const void *a, const void *b)
{
  const struct ttensor *x = a, *y = b;

  if (x->st->data != y->st->data)
    return x->st->data < y->st->data ? -1 : 1;
  if (x->offset != y->offset)
    return x->offset < y->offset ? -1 : 1;
  return x->order < y->order ? -1 : x->order > y->order;
}

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Two leaves flattening to one name ({"a.b": x, "a": {"b": y}}) cannot be told apart. */
static int check_names(struct torch_src *s, struct ck_err *err)
{
  size_t n = s->nt + s->base.nvalues, k = 0;
  const char **v = malloc((n ? n : 1) * sizeof(*v));
  int rc = 0;

  if (v == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  for (size_t i = 0; i < s->nt; i++)
    v[k++] = s->t[i].name;
  for (size_t i = 0; i < s->base.nvalues; i++)
    v[k++] = s->base.values[i].name;
  qsort(v, n, sizeof(*v), cmp_str);
  for (size_t i = 1; i < n && rc == 0; i++)
    if (strcmp(v[i - 1], v[i]) == 0)
      rc = ck_err_set(err, CK_EFORMAT, "%s: two leaves are named '%s'", s->base.path, v[i]);
  free(v);
  return rc;
}

/* ---- streaming ---- */

typedef int (*chunk_fn)(void *ctx, const void *data, size_t len);

static int read_at(struct torch_src *s, const struct tstorage *st, void *buf, size_t len, uint64_t off,
                   struct ck_err *err)
{
  int rc = ck_zip_pread(s->z, buf, len, st->data + off);

  return rc ? ck_err_set(err, rc, "%s: reading entry %s: %s", s->base.path, st->e->name, ck_strerror(rc)) : 0;
}

/* libFuzzer builds (fuzz-zip) skip CRC-32 mismatches, or nearly every mutant would stop
 * there and the pickle, walk and gathers behind would go unfuzzed. */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define CRC_DIFFERS(a, b) ((void)(a), (void)(b), 0)
#else
#define CRC_DIFFERS(a, b) ((a) != (b))
#endif

static int crc_result(struct torch_src *s, struct tstorage *st, uint32_t crc, struct ck_err *err)
{
  if (CRC_DIFFERS(crc, st->e->crc32))
    return ck_err_set(err, CK_ECHECKSUM, "%s: zip entry %s: CRC-32 %08x, the directory says %08x", s->base.path,
                      st->e->name, crc, st->e->crc32);
  st->verified = 1;
  return 0;
}

/* A storage's CRC-32 in a pass of its own (views that do not cover it exactly). */
static int verify_storage(struct torch_src *s, struct tstorage *st, void *buf, size_t bufsize, struct ck_err *err)
{
  uint32_t crc = 0;
  int rc;

  for (uint64_t off = 0; off < st->e->size;) {
    size_t n = st->e->size - off < bufsize ? (size_t)(st->e->size - off) : bufsize;
    if ((rc = read_at(s, st, buf, n, off, err)) != 0)
      return rc;
    crc = libdeflate_crc32(crc, buf, n);
    off += n;
  }
  return crc_result(s, st, crc, err);
}

static int stream_contiguous(struct torch_src *s, struct ttensor *t, uint8_t *buf, size_t bufsize, chunk_fn fn,
                             void *ctx, struct ck_err *err)
{
  uint64_t base = t->offset * t->st->dt->size;
  int check = t->whole && !t->st->verified, rc;
  uint32_t crc = 0;

  for (uint64_t done = 0; done < t->nbytes;) {
    size_t n = t->nbytes - done < bufsize ? (size_t)(t->nbytes - done) : bufsize;
    if ((rc = read_at(s, t->st, buf, n, base + done, err)) != 0)
      return rc;
    if (check)
      crc = libdeflate_crc32(crc, buf, n);
    if ((rc = fn(ctx, buf, n)) != 0)
      return rc;
    done += n;
  }
  return check ? crc_result(s, t->st, crc, err) : 0;
}

/* Next row-major index; *off follows in the storage (unsigned: wraps are undone). */
static void advance(const struct ttensor *t, int64_t *idx, uint64_t *off)
{
  for (int d = t->rank - 1; d >= 0; d--) {
    *off += (uint64_t)t->stride[d];
    if (++idx[d] < t->dims[d])
      return;
    *off -= (uint64_t)t->stride[d] * (uint64_t)t->dims[d];
    idx[d] = 0;
  }
}

/* Elements k of the chunk from the window [w, w + n) of the storage (read into in) into
 * out; idx / off are left past the chunk. */
static int sweep_window(struct torch_src *s, struct ttensor *t, int64_t *idx, uint64_t *off, uint64_t k,
                        uint64_t w, uint64_t n, uint8_t *in, uint8_t *out, int64_t *scratch, struct ck_err *err)
{
  size_t es = t->st->dt->size;
  uint64_t o = *off;
  int rc = read_at(s, t->st, in, (size_t)(n * es), w * es, err);

  if (rc != 0)
    return rc;
  memcpy(scratch, idx, (size_t)t->rank * sizeof(*idx));
  for (uint64_t j = 0; j < k; j++, advance(t, scratch, &o))
    if (o >= w && o - w < n)
      memcpy(out + j * es, in + (o - w) * es, es);
  return 0;
}

/* Per run of storage-adjacent elements, one pread straight into out. */
static int gather_runs(struct torch_src *s, struct ttensor *t, int64_t *idx, uint64_t *off, uint64_t k, uint8_t *out,
                       struct ck_err *err)
{
  size_t es = t->st->dt->size;
  uint64_t run_off = *off, run_len = 0;
  int rc;

  for (uint64_t j = 0; j < k; j++, advance(t, idx, off)) {
    if (run_len && *off != run_off + run_len) {
      if ((rc = read_at(s, t->st, out + (j - run_len) * es, (size_t)(run_len * es), run_off * es, err)) != 0)
        return rc;
      run_len = 0;
    }
    if (run_len == 0)
      run_off = *off;
    run_len++;
  }
  return read_at(s, t->st, out + (k - run_len) * es, (size_t)(run_len * es), run_off * es, err);
}

/* k elements from (idx, off) into out, in row-major order; idx / off advance past them.
 * The storage span they touch is read through `in` (incap bytes) window by window, each
 * window picked over once per chunk (a transpose: a few sequential reads), unless one
 * pread per run of adjacent elements is cheaper (few long runs, or a span far larger than
 * the chunk). Estimated costs: ~1 us a pread, ~0.2 ns a byte read, ~2 ns an element visit. */
static int gather(struct torch_src *s, struct ttensor *t, int64_t *idx, uint64_t *off, uint64_t k, uint8_t *in,
                  uint8_t *out, size_t incap, int64_t *scratch, struct ck_err *err)
{
  size_t es = t->st->dt->size;
  uint64_t lo = *off, hi = *off, o = *off, prev = 0, runs = 0, per = incap / es, span;
  double windows, cost_runs, cost_sweep;
  int rc = 0;

  memcpy(scratch, idx, (size_t)t->rank * sizeof(*idx));
  for (uint64_t j = 0; j < k; prev = o, j++, advance(t, scratch, &o)) {
    lo = o < lo ? o : lo, hi = o > hi ? o : hi;
    runs += j == 0 || o != prev + 1;
  }
  span = hi - lo + 1;
  windows = per ? (double)((span + per - 1) / per) : 0;
  cost_runs = (double)runs * 1000;
  cost_sweep = (double)span * (double)es * 0.2 + windows * (double)k * 2 + windows * 1000;
  if (per == 0 || (span > per && cost_runs < cost_sweep))
    return gather_runs(s, t, idx, off, k, out, err);
  for (uint64_t w = lo; w <= hi && rc == 0; w += per)
    rc = sweep_window(s, t, idx, off, k, w, hi - w + 1 < per ? hi - w + 1 : per, in, out, scratch, err);
  for (uint64_t j = 0; j < k && rc == 0; j++)
    advance(t, idx, off);
  return rc;
}

static int stream_strided(struct torch_src *s, struct ttensor *t, uint8_t *buf, size_t bufsize, chunk_fn fn,
                          void *ctx, struct ck_err *err)
{
  size_t es = t->st->dt->size, incap = bufsize / 2 >= es ? bufsize / 2 : 0; /* no room: runs only */
  int64_t *idx = calloc((size_t)t->rank + 1, sizeof(*idx) * 2);
  uint64_t off = t->offset, per = (bufsize - incap) / es;
  int rc = 0;

  if (idx == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  if (per == 0) {
    rc = ck_err_set(err, CK_EINVAL, "%s: buffer of %zu bytes is too small", s->base.path, bufsize);
    goto out;
  }
  if (!t->st->verified && (rc = verify_storage(s, t->st, buf, bufsize, err)) != 0)
    goto out;
  for (uint64_t done = 0; done < t->nelem && rc == 0;) {
    uint64_t k = t->nelem - done < per ? t->nelem - done : per;
    if ((rc = gather(s, t, idx, &off, k, buf, buf + incap, incap, idx + t->rank + 1, err)) == 0)
      rc = fn(ctx, buf + incap, (size_t)(k * es));
    done += k;
  }
out:
  free(idx);
  return rc;
}

static int torch_stream(struct ck_source *b, size_t i, void *buf, size_t bufsize, chunk_fn fn, void *ctx,
                        struct ck_err *err)
{
  struct torch_src *s = (struct torch_src *)b;
  struct ttensor *t = &s->t[i];
  int rc;

  if (bufsize == 0)
    return ck_err_set(err, CK_EINVAL, "%s: empty buffer", b->path);
  if (t->contiguous) {
    if (!t->whole && !t->st->verified && (rc = verify_storage(s, t->st, buf, bufsize, err)) != 0)
      return rc;
    return stream_contiguous(s, t, buf, bufsize, fn, ctx, err);
  }
  return stream_strided(s, t, buf, bufsize, fn, ctx, err);
}

static void torch_info(struct ck_source *b, size_t i, struct ck_tinfo *out)
{
  const struct ttensor *t = &((struct torch_src *)b)->t[i];

  memset(out, 0, sizeof(*out));
  out->name = t->name;
  out->nlen = t->nlen;
  out->dtype = t->st->dt->tf;
  out->rank = t->rank;
  out->dims = t->dims;
  out->nelem = t->nelem;
  out->nbytes = t->nbytes;
  out->has_crc = 0; /* the zip's CRC-32 is verified here; has_crc is for TF's crc32c */
}

static void torch_close(struct ck_source *b)
{
  struct torch_src *s = (struct torch_src *)b;

  if (s == NULL)
    return;
  for (size_t i = 0; i < s->nt; i++)
    free(s->t[i].name);
  free(s->t);
  free(s->st);
  ck_unpickle_free(s->u);
  ck_zip_close(s->z);
  ck_source_free_common(b);
  free(s);
}

static const struct ck_source_ops torch_ops = { torch_info, torch_stream, torch_close };

/* ---- opening ---- */

/* A legacy torch.save file (before 1.6: pickles, the first a PROTO 2 magic number) is
 * refused by name rather than as "not a zip". */
static int check_legacy(const char *path, struct ck_err *err)
{
  uint8_t h[2] = { 0, 0 };
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t got = fd >= 0 ? pread(fd, h, 2, 0) : -1;

  if (fd < 0)
    return ck_err_set(err, -errno, "%s: %s", path, strerror(errno));
  close(fd);
  if (got == 2 && h[0] == 0x80 && h[1] >= 2 && h[1] <= 5)
    return ck_err_set(err, CK_EUNSUP,
                      "%s: legacy torch.save format (before PyTorch 1.6) is not supported; re-save with a newer torch", path);
  return 0;
}

/* The archive's top folder (torch names it after the file): the first entry's up to '/'. */
static int find_prefix(struct torch_src *s, char **prefix, struct ck_err *err)
{
  const char *first = s->z->n ? s->z->e[0].name : "", *slash = strchr(first, '/');

  if (slash == NULL)
    return ck_err_set(err, CK_EFORMAT, "%s: not a torch.save archive (no top folder)", s->base.path);
  if ((*prefix = strndup(first, (size_t)(slash - first))) == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  return 0;
}

/* Entry <prefix>/<name> read whole into a new buffer of at most max bytes. */
static int read_entry(struct torch_src *s, const char *prefix, const char *name, size_t max, uint8_t **out,
                      size_t *len, struct ck_err *err)
{
  char *full = ck_asprintf("%s/%s", prefix, name);
  const struct ck_zip_entry *e;
  uint64_t off;
  int rc;

  *out = NULL, *len = 0;
  if (full == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  if ((e = ck_zip_find(s->z, full)) == NULL) {
    rc = ck_err_set(err, CK_ENOTFOUND, "%s: no entry %s", s->base.path, full);
    goto out;
  }
  if (e->size > max) {
    rc = ck_err_set(err, CK_ELIMIT, "%s: %s: %llu bytes, beyond the limit of %zu (min(buffer budget, 256 MiB))",
                    s->base.path, name, (unsigned long long)e->size, max);
    goto out;
  }
  if ((rc = ck_zip_data_offset(s->z, e, &off, err)) != 0)
    goto out;
  if ((*out = malloc(e->size ? (size_t)e->size : 1)) == NULL) {
    rc = ck_err_set(err, -ENOMEM, "out of memory");
    goto out;
  }
  *len = (size_t)e->size;
  if ((rc = ck_zip_pread(s->z, *out, *len, off)) != 0)
    rc = ck_err_set(err, rc, "%s: reading %s", s->base.path, full);
  rc = rc ? rc : !CRC_DIFFERS(libdeflate_crc32(0, *out, *len), e->crc32) ? 0
              : ck_err_set(err, CK_ECHECKSUM, "%s: zip entry %s: CRC-32 mismatch", s->base.path, full);
out:
  free(full);
  return rc;
}

static int check_byteorder(struct torch_src *s, const char *prefix, struct ck_err *err)
{
  uint8_t *b = NULL;
  size_t n;
  int rc = read_entry(s, prefix, "byteorder", 16, &b, &n, err);

  if (rc == CK_ENOTFOUND) { /* older writers: little-endian */
    ck_err_clear(err);
    rc = 0;
  } else if (rc == 0 && n == 3 && memcmp(b, "big", 3) == 0) {
    rc = ck_err_set(err, CK_EUNSUP, "%s: big-endian torch files (byteorder \"big\") are not supported", s->base.path);
  } else if (rc == 0 && !(n == 6 && memcmp(b, "little", 6) == 0)) {
    rc = ck_err_set(err, CK_EFORMAT, "%s: byteorder is neither \"little\" nor \"big\"", s->base.path);
  }
  free(b);
  return rc;
}

static int load_pickle(struct torch_src *s, const char *prefix, size_t budget, struct ck_err *err)
{
  size_t max = budget && budget < PICKLE_MAX ? budget : PICKLE_MAX, n;
  uint8_t *p = NULL;
  int rc = read_entry(s, prefix, "data.pkl", max, &p, &n, err);

  if (rc == 0 && (rc = ck_unpickle(p, n, NULL, &s->u, err)) != 0)
    ck_err_prefix(err, "%s: data.pkl", s->base.path);
  free(p);
  return rc;
}

static int index_tensors(struct torch_src *s, const char *prefix, struct ck_err *err)
{
  int rc;

  if ((rc = walk_tree(s, err)) != 0) {
    ck_err_prefix(err, "%s", s->base.path);
    return rc;
  }
  if ((rc = bind_storages(s, prefix, err)) != 0)
    return rc;
  for (size_t i = 0; i < s->nt; i++)
    if ((rc = check_view(s, &s->t[i], err)) != 0)
      return rc;
  if ((rc = check_names(s, err)) != 0)
    return rc;
  if (s->nt > 1) /* s->t is NULL without tensors */
    qsort(s->t, s->nt, sizeof(*s->t), cmp_data);
  s->base.count = s->nt;
  return 0;
}

int ck_torch_source_open(const char *path, size_t budget, struct ck_source **out, struct ck_err *err)
{
  const char *files[2] = { path, NULL };
  struct torch_src *s = calloc(1, sizeof(*s));
  char *prefix = NULL;
  int rc;

  *out = NULL;
  if (s == NULL || (s->base.path = strdup(path)) == NULL || (s->base.source_name = ck_basename(path)) == NULL) {
    rc = ck_err_set(err, -ENOMEM, "out of memory");
    goto out;
  }
  s->base.ops = &torch_ops;
  s->base.format = CK_FMT_TORCH;
  if ((rc = check_legacy(path, err)) != 0 ||
      (rc = ck_zip_open(path, budget && budget < PICKLE_MAX ? budget : PICKLE_MAX, &s->z, err)) != 0)
    goto out;
  if ((rc = find_prefix(s, &prefix, err)) != 0 || (rc = check_byteorder(s, prefix, err)) != 0 ||
      (rc = load_pickle(s, prefix, budget, err)) != 0 || (rc = index_tensors(s, prefix, err)) != 0 ||
      (rc = ck_source_set_id(&s->base, files, err)) != 0)
    goto out;
  *out = &s->base;
  s = NULL;
out:
  free(prefix);
  if (s)
    torch_close(&s->base);
  return rc;
}
