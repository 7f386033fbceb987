/* The torch sink: writes what torch.save writes (a zip of data.pkl, one data/<k> entry per
 * tensor, byteorder, version) from any pipeline source.
 *
 * DESIGN. begin() knows every tensor's dtype and shape, so the whole pickle is built
 * then (the source's tree, or a flat dict) and written first, as torch does; tensors then
 * stream into data/0, data/1, ... in the order they come, through the zip writer's buffer,
 * with nothing held in memory but the pickle and the central directory. The archive is a
 * temporary beside the output, fsynced, marked, and renamed over the final name; any
 * failure removes it. The pickle follows CPython's Pickler as torch calls it (protocol 2,
 * memo puts, batching of SETITEMS / APPENDS by 1000) and torch's Tensor.__reduce_ex__:
 * torch._utils._rebuild_tensor_v2(persistent storage, 0, size, stride, False, OrderedDict()). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convert_internal.h"
#include "dtype.h"
#include "fileio.h"
#include "pickle_write.h"
#include "pipeline.h"
#include "spec.h"
#include "torch_dtype.h"
#include "zip_write.h"

#define PICKLE_MAX ((size_t)512 << 20)
#define BATCH 1000
#define NO_MEMO UINT32_MAX

struct tsink {
  struct ck_sink base; /* first: the pipeline sees a struct ck_sink */
  struct ck_sink_opts o;
  char *tmp, *dir, *archive;
  int fd;
  struct ck_zipw *zw;
  uint64_t *nbytes;    /* per tensor announced at begin */
  size_t n, next;      /* tensors announced; tensors begun */
  int in_tensor;
};

/* A name -> position index (tensors: j in sel; values: index in src->values). */
struct nref {
  const char *name;
  size_t nlen, pos;
};

/* Everything the pickle emission needs. */
struct pctx {
  struct ck_pkl k;
  const struct ck_source *src;
  const size_t *sel;
  struct nref *tensors, *values;
  size_t ntensors, nvalues;
  uint8_t *used;       /* tensors placed in the tree */
  char **leaves;       /* spec leaf names, in order */
  size_t nleaves, cur;
  uint32_t m_rebuild, m_storage, m_cpu, m_odict, m_class[CK_DT_COUNT];
  struct ck_err *err;
};

static int accepts(int dtype)
{
  return ck_torch_dtype_by_tf(dtype) != NULL;
}

/* ---- names ---- */

static int nref_cmp(const void *a, const void *b)
{
  const struct nref *x = a, *y = b;
  int c = memcmp(x->name, y->name, x->nlen < y->nlen ? x->nlen : y->nlen);

  return c ? c : (x->nlen > y->nlen) - (x->nlen < y->nlen);
}

static const struct nref *nref_find(const struct nref *v, size_t n, const char *name, size_t nlen)
{
  struct nref key = { name, nlen, 0 };

  return n ? bsearch(&key, v, n, sizeof(*v), nref_cmp) : NULL;
}

/* Sort; CK_EINVAL naming a duplicate. */
static int nref_sort(struct nref *v, size_t n, const char *what, struct ck_err *err)
{
  if (n)
    qsort(v, n, sizeof(*v), nref_cmp);
  for (size_t i = 1; i < n; i++)
    if (nref_cmp(&v[i - 1], &v[i]) == 0)
      return ck_err_set(err, CK_EINVAL, "two %s named %.*s", what, (int)v[i].nlen, v[i].name);
  return 0;
}

/* torch's archive name: the base name up to its last '.' ("archive" if that is empty or
 * not printable ASCII, which torch.load does not care about: any one top folder does). */
static char *archive_name(const char *dst)
{
  char *base = ck_basename(dst), *dot;

  if (base == NULL)
    return NULL;
  if ((dot = strrchr(base, '.')) != NULL)
    *dot = 0;
  for (const char *p = base; *p; p++)
    if (*p < 0x20 || *p > 0x7e || *p == '\\') {
      *base = 0;
      break;
    }
  if (*base == 0) {
    free(base);
    return strdup("archive");
  }
  return base;
}

/* ---- the pickle ---- */

static void memo_global(struct pctx *c, uint32_t *idx, const char *module, const char *name)
{
  if (*idx != NO_MEMO) {
    ck_pkl_get(&c->k, *idx);
    return;
  }
  ck_pkl_global(&c->k, module, name);
  *idx = ck_pkl_put(&c->k);
}

static void memo_str(struct pctx *c, uint32_t *idx, const char *s)
{
  if (*idx != NO_MEMO) {
    ck_pkl_get(&c->k, *idx);
    return;
  }
  ck_pkl_str(&c->k, s, strlen(s));
  *idx = ck_pkl_put(&c->k);
}

/* A tuple of ints (size or stride), memoized unless empty, as CPython does. */
static void int_tuple(struct pctx *c, const int64_t *v, int n)
{
  if (n > 3)
    ck_pkl_op(&c->k, CK_PKL_MARK);
  for (int i = 0; i < n; i++)
    ck_pkl_int(&c->k, v[i]);
  ck_pkl_tuple(&c->k, (size_t)n);
  if (n > 0)
    ck_pkl_put(&c->k);
}

/* Contiguous strides as torch computes them: a zero-size dimension counts as 1. */
static void strides(const int64_t *dims, int rank, int64_t *st)
{
  int64_t acc = 1;

  for (int d = rank - 1; d >= 0; d--) {
    st[d] = acc;
    acc *= dims[d] > 1 ? dims[d] : 1;
  }
}

/* Tensor j of sel: torch._utils._rebuild_tensor_v2 applied to its storage and shape. */
static void emit_tensor(struct pctx *c, size_t j)
{
  struct ck_tinfo t;
  const struct ck_torch_dtype *td;
  int64_t st[64];
  char key[32];

  c->src->ops->info((struct ck_source *)c->src, c->sel[j], &t);
  td = ck_torch_dtype_by_tf(t.dtype); /* checked in begin */
  memo_global(c, &c->m_rebuild, "torch._utils", "_rebuild_tensor_v2");
  ck_pkl_op(&c->k, CK_PKL_MARK);
  ck_pkl_op(&c->k, CK_PKL_MARK);
  memo_str(c, &c->m_storage, "storage");
  memo_global(c, &c->m_class[t.dtype], "torch", td->storage);
  snprintf(key, sizeof(key), "%zu", j);
  ck_pkl_str(&c->k, key, strlen(key));
  ck_pkl_put(&c->k);
  memo_str(c, &c->m_cpu, "cpu");
  ck_pkl_int(&c->k, (int64_t)t.nelem);
  ck_pkl_op(&c->k, CK_PKL_TUPLE);
  ck_pkl_put(&c->k);
  ck_pkl_op(&c->k, CK_PKL_BINPERSID);
  ck_pkl_int(&c->k, 0);
  int_tuple(c, t.dims, t.rank);
  strides(t.dims, t.rank, st);
  int_tuple(c, st, t.rank);
  ck_pkl_op(&c->k, CK_PKL_NEWFALSE);
  memo_global(c, &c->m_odict, "collections", "OrderedDict");
  ck_pkl_op(&c->k, CK_PKL_EMPTY_TUPLE);
  ck_pkl_op(&c->k, CK_PKL_REDUCE);
  ck_pkl_put(&c->k);
  ck_pkl_op(&c->k, CK_PKL_TUPLE);
  ck_pkl_put(&c->k);
  ck_pkl_op(&c->k, CK_PKL_REDUCE);
  ck_pkl_put(&c->k);
}

static void emit_value(struct pctx *c, const struct ck_value *v)
{
  switch (v->kind) {
  case CK_VAL_BOOL:
    ck_pkl_op(&c->k, v->i ? CK_PKL_NEWTRUE : CK_PKL_NEWFALSE);
    break;
  case CK_VAL_INT:
    ck_pkl_int(&c->k, v->i);
    break;
  case CK_VAL_FLOAT:
    ck_pkl_float(&c->k, v->f);
    break;
  case CK_VAL_STR:
    ck_pkl_str(&c->k, v->s, v->slen);
    ck_pkl_put(&c->k);
    break;
  default:
    ck_pkl_op(&c->k, CK_PKL_NONE);
  }
}

/* The leaf called name: a tensor, else a value, else None (a leaf the source skipped or
 * the converter left out: a dtype torch cannot hold). */
static void emit_leaf(struct pctx *c, const char *name, size_t nlen)
{
  const struct nref *r;

  if ((r = nref_find(c->tensors, c->ntensors, name, nlen)) != NULL) {
    c->used[r->pos] = 1;
    emit_tensor(c, r->pos);
  } else if ((r = nref_find(c->values, c->nvalues, name, nlen)) != NULL) {
    emit_value(c, &c->src->values[r->pos]);
  } else {
    ck_pkl_op(&c->k, CK_PKL_NONE);
  }
}

/* CPython's batching around item i of n: exact dicts and lists write one item with
 * SETITEM / APPEND, else MARK ... SETITEMS / APPENDS per 1000 (an exact dict of a multiple
 * of 1000 items ends with an empty batch); an OrderedDict (items from an iterator)
 * writes a lone last item with SETITEM. */
static int batch_lone(int kind, size_t i, size_t n)
{
  return n == 1 || (kind == CK_SPEC_ODICT && i % BATCH == 0 && i == n - 1);
}

static void batch_before(struct pctx *c, int kind, size_t i, size_t n)
{
  if (i % BATCH == 0 && !batch_lone(kind, i, n))
    ck_pkl_op(&c->k, CK_PKL_MARK);
}

static void batch_after(struct pctx *c, int kind, size_t i, size_t n)
{
  int list = kind == CK_SPEC_LIST;

  if (batch_lone(kind, i, n)) {
    ck_pkl_op(&c->k, list ? CK_PKL_APPEND : CK_PKL_SETITEM);
    return;
  }
  if ((i + 1) % BATCH == 0 || i == n - 1)
    ck_pkl_op(&c->k, list ? CK_PKL_APPENDS : CK_PKL_SETITEMS);
  if (kind == CK_SPEC_DICT && i == n - 1 && n % BATCH == 0) {
    ck_pkl_op(&c->k, CK_PKL_MARK);
    ck_pkl_op(&c->k, CK_PKL_SETITEMS);
  }
}

static void emit_key(struct pctx *c, const struct ck_spec_key *key)
{
  if (key->is_int) {
    ck_pkl_int(&c->k, key->i);
    return;
  }
  ck_pkl_str(&c->k, key->s, strlen(key->s));
  ck_pkl_put(&c->k);
}

static int emit_node(struct pctx *c, const struct ck_spec *s);

static int emit_children(struct pctx *c, const struct ck_spec *s)
{
  int rc = 0;

  for (size_t i = 0; i < s->n && rc == 0; i++) {
    if (s->kind != CK_SPEC_TUPLE)
      batch_before(c, s->kind, i, s->n);
    if (s->kind == CK_SPEC_DICT || s->kind == CK_SPEC_ODICT)
      emit_key(c, &s->keys[i]);
    rc = emit_node(c, s->kids[i]);
    if (s->kind != CK_SPEC_TUPLE)
      batch_after(c, s->kind, i, s->n);
  }
  return rc;
}

static int emit_node(struct pctx *c, const struct ck_spec *s)
{
  int rc;

  switch (s->kind) {
  case CK_SPEC_LEAF:
    if (c->cur >= c->nleaves)
      return ck_err_set(c->err, CK_EFORMAT, "spec: more leaves than named");
    emit_leaf(c, c->leaves[c->cur], strlen(c->leaves[c->cur]));
    c->cur++;
    return 0;
  case CK_SPEC_DICT:
  case CK_SPEC_LIST:
    ck_pkl_op(&c->k, s->kind == CK_SPEC_DICT ? CK_PKL_EMPTY_DICT : CK_PKL_EMPTY_LIST);
    ck_pkl_put(&c->k);
    return emit_children(c, s);
  case CK_SPEC_ODICT:
    memo_global(c, &c->m_odict, "collections", "OrderedDict");
    ck_pkl_op(&c->k, CK_PKL_EMPTY_TUPLE);
    ck_pkl_op(&c->k, CK_PKL_REDUCE);
    ck_pkl_put(&c->k);
    return emit_children(c, s);
  case CK_SPEC_TUPLE:
    if (s->n > 3)
      ck_pkl_op(&c->k, CK_PKL_MARK);
    if ((rc = emit_children(c, s)) != 0)
      return rc;
    ck_pkl_tuple(&c->k, s->n);
    if (s->n > 0)
      ck_pkl_put(&c->k);
    return 0;
  default:
    return ck_err_set(c->err, CK_EFORMAT, "spec: node kind %d", s->kind);
  }
}

static int collect_leaf(void *ctx, const char *name, size_t len)
{
  struct pctx *c = ctx;

  if ((c->leaves[c->nleaves] = malloc(len + 1)) == NULL)
    return -ENOMEM;
  memcpy(c->leaves[c->nleaves], name, len);
  c->leaves[c->nleaves++][len] = 0;
  return 0;
}

/* The source's tree; every tensor and value must be one of its leaves. */
static int emit_tree(struct pctx *c, struct ck_err *err)
{
  const char *js = c->src->spec;
  size_t max_nodes = 4 * (c->src->count + c->src->nvalues + c->src->nskipped) + 65536;
  struct ck_spec *spec = NULL;
  int rc;

  if ((rc = ck_spec_parse(js, strlen(js), max_nodes, &spec, err)) != 0)
    goto out;
  c->nleaves = ck_spec_count_leaves(spec);
  if ((c->leaves = calloc(c->nleaves ? c->nleaves : 1, sizeof(char *))) == NULL) {
    rc = ck_err_set(err, -ENOMEM, "out of memory");
    goto out;
  }
  c->nleaves = 0;
  if ((rc = ck_spec_leaves(spec, collect_leaf, c)) != 0) {
    rc = ck_err_set(err, rc, "out of memory");
    goto out;
  }
  if ((rc = emit_node(c, spec)) != 0)
    goto out;
  for (size_t j = 0; j < c->ntensors; j++)
    if (!c->used[j]) {
      struct ck_tinfo t;
      c->src->ops->info((struct ck_source *)c->src, c->sel[j], &t);
      rc = ck_err_set(err, CK_EINVAL, "%s: tensor is not a leaf of the source's tree", t.name);
      goto out;
    }
out:
  for (size_t i = 0; c->leaves && i < c->nleaves; i++)
    free(c->leaves[i]);
  free(c->leaves);
  c->leaves = NULL;
  ck_spec_free(spec);
  return rc;
}

/* No tree: a dict name -> tensor in sel order, then the values. */
static void emit_flat(struct pctx *c)
{
  size_t n = c->ntensors + c->src->nvalues;

  ck_pkl_op(&c->k, CK_PKL_EMPTY_DICT);
  ck_pkl_put(&c->k);
  for (size_t i = 0; i < n; i++) {
    batch_before(c, CK_SPEC_DICT, i, n);
    if (i < c->ntensors) {
      struct ck_tinfo t;
      c->src->ops->info((struct ck_source *)c->src, c->sel[i], &t);
      ck_pkl_str(&c->k, t.name, t.nlen);
      ck_pkl_put(&c->k);
      emit_tensor(c, i);
    } else {
      const struct ck_value *v = &c->src->values[i - c->ntensors];
      ck_pkl_str(&c->k, v->name, strlen(v->name));
      ck_pkl_put(&c->k);
      emit_value(c, v);
    }
    batch_after(c, CK_SPEC_DICT, i, n);
  }
}

/* ---- begin: check, index, pickle ---- */

/* Tensor j's dtype, shape and size against what torch can hold; its nbytes. */
static int check_tensor(const struct ck_tinfo *t, uint64_t *nbytes, struct ck_err *err)
{
  const struct ck_torch_dtype *td = ck_torch_dtype_by_tf(t->dtype);
  uint64_t n = 1;

  if (td == NULL)
    return ck_err_set(err, CK_EUNSUP, "%s: %s has no PyTorch type", t->name,
                      ck_dtype_name(t->dtype) ? ck_dtype_name(t->dtype) : "this dtype");
  if (t->rank < 0 || t->rank > 64)
    return ck_err_set(err, CK_EINVAL, "%s: rank %d", t->name, t->rank);
  for (int d = 0; d < t->rank; d++) {
    if (t->dims[d] < 0 || (t->dims[d] > 0 && n > UINT64_MAX / (uint64_t)t->dims[d]))
      return ck_err_set(err, CK_ELIMIT, "%s: bad or too large shape", t->name);
    n *= (uint64_t)t->dims[d];
  }
  if (n != t->nelem || n > (uint64_t)INT64_MAX / td->size || t->nbytes != n * td->size)
    return ck_err_set(err, CK_EINVAL, "%s: %llu bytes for %llu elements of %zu bytes", t->name,
                      (unsigned long long)t->nbytes, (unsigned long long)t->nelem, td->size);
  *nbytes = t->nbytes;
  return 0;
}

/* Python's unpickler decodes BINUNICODE as strict UTF-8 (surrogates aside). */
static int utf8_ok(const char *s, size_t n)
{
  const uint8_t *p = (const uint8_t *)s, *end = p + n;

  while (p < end) {
    int len = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 0;
    if (len == 0 || end - p < len)
      return 0;
    for (int i = 1; i < len; i++)
      if ((p[i] & 0xC0) != 0x80)
        return 0;
    p += len;
  }
  return 1;
}

/* Strings the pickle will hold: flat names (a tree's keys come from its JSON) and str values. */
static int check_strings(const struct pctx *c, struct ck_err *err)
{
  for (size_t j = 0; j < c->ntensors && !c->src->spec; j++)
    if (!utf8_ok(c->tensors[j].name, c->tensors[j].nlen))
      return ck_err_set(err, CK_EINVAL, "a tensor name is not UTF-8: %.*s", (int)c->tensors[j].nlen,
                        c->tensors[j].name);
  for (size_t i = 0; i < c->nvalues; i++) {
    const struct ck_value *v = &c->src->values[i];
    if ((!c->src->spec && !utf8_ok(v->name, strlen(v->name))) || (v->kind == CK_VAL_STR && !utf8_ok(v->s, v->slen)))
      return ck_err_set(err, CK_EINVAL, "%s: a value's name or text is not UTF-8", v->name);
  }
  return 0;
}

static int index_names(struct tsink *k, struct pctx *c, struct ck_err *err)
{
  int rc;

  c->tensors = calloc(c->ntensors ? c->ntensors : 1, sizeof(*c->tensors));
  c->values = calloc(c->nvalues ? c->nvalues : 1, sizeof(*c->values));
  c->used = calloc(c->ntensors ? c->ntensors : 1, 1);
  k->nbytes = calloc(c->ntensors ? c->ntensors : 1, sizeof(*k->nbytes));
  if (!c->tensors || !c->values || !c->used || !k->nbytes)
    return ck_err_set(err, -ENOMEM, "out of memory");
  for (size_t j = 0; j < c->ntensors; j++) {
    struct ck_tinfo t;
    c->src->ops->info((struct ck_source *)c->src, c->sel[j], &t);
    if ((rc = check_tensor(&t, &k->nbytes[j], err)) != 0)
      return rc;
    c->tensors[j] = (struct nref){ t.name, t.nlen, j };
  }
  for (size_t i = 0; i < c->nvalues; i++)
    c->values[i] = (struct nref){ c->src->values[i].name, strlen(c->src->values[i].name), i };
  if ((rc = check_strings(c, err)) != 0 || (rc = nref_sort(c->tensors, c->ntensors, "tensors", err)) != 0)
    return rc;
  return nref_sort(c->values, c->nvalues, "values", err);
}

/* Tests only (ck_zipw_set_test_hole): a first entry of zeros left as a hole. */
static int test_hole(struct tsink *k, struct ck_err *err)
{
  uint64_t len = ck_zipw_test_hole();
  char *name = ck_asprintf("%s/.data/test_hole", k->archive);
  int rc;

  if (name == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  if ((rc = ck_zipw_entry_begin(k->zw, name, strlen(name), len, err)) == 0 &&
      (rc = ck_zipw_entry_skip(k->zw, len, err)) == 0)
    rc = ck_zipw_entry_end(k->zw, err);
  free(name);
  return rc;
}

static int write_records(struct tsink *k, struct ck_pkl *p, struct ck_err *err)
{
  static const char *const names[] = { "data.pkl", "byteorder" };
  int rc = 0;

  if (ck_zipw_test_hole() && (rc = test_hole(k, err)) != 0)
    return rc;
  for (int i = 0; i < 2 && rc == 0; i++) {
    char *name = ck_asprintf("%s/%s", k->archive, names[i]);
    if (name == NULL)
      return ck_err_set(err, -ENOMEM, "out of memory");
    rc = i == 0 ? ck_zipw_add(k->zw, name, p->p, p->len, err) : ck_zipw_add(k->zw, name, "little", 6, err);
    free(name);
  }
  return rc;
}

static int begin(struct ck_sink *base, const struct ck_source *src, const size_t *sel, size_t n,
                 struct ck_err *err)
{
  struct tsink *k = (struct tsink *)base;
  struct pctx c = { .src = src, .sel = sel, .ntensors = n, .nvalues = src->nvalues, .err = err };
  int rc;

  memset(c.m_class, 0xff, sizeof(c.m_class));
  c.m_rebuild = c.m_storage = c.m_cpu = c.m_odict = NO_MEMO;
  ck_pkl_init(&c.k, PICKLE_MAX);
  if ((rc = index_names(k, &c, err)) != 0)
    goto out;
  k->n = n;
  if (src->spec)
    rc = emit_tree(&c, err);
  else
    emit_flat(&c);
  if (rc != 0)
    goto out;
  if ((rc = ck_pkl_stop(&c.k)) != 0) {
    ck_err_set(err, rc, "data.pkl: %s", rc == CK_ELIMIT ? "larger than 512 MiB" : "out of memory");
    goto out;
  }
  rc = write_records(k, &c.k, err);
out:
  if (rc != 0)
    ck_err_prefix(err, "%s", k->base.path);
  ck_pkl_free(&c.k);
  free(c.tensors);
  free(c.values);
  free(c.used);
  return rc;
}

/* ---- tensors ---- */

static int tensor_begin(struct ck_sink *base, const struct ck_tinfo *t, struct ck_err *err)
{
  struct tsink *k = (struct tsink *)base;
  char *name;
  int rc;

  if (k->in_tensor || k->next >= k->n)
    return ck_err_set(err, CK_EINVAL, "%s: tensor %s beyond the %zu announced", k->base.path, t->name, k->n);
  if (t->nbytes != k->nbytes[k->next])
    return ck_err_set(err, CK_EINVAL, "%s: %s: %llu bytes, %llu announced", k->base.path, t->name,
                      (unsigned long long)t->nbytes, (unsigned long long)k->nbytes[k->next]);
  if ((name = ck_asprintf("%s/data/%zu", k->archive, k->next)) == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  rc = ck_zipw_entry_begin(k->zw, name, strlen(name), t->nbytes, err);
  free(name);
  if (rc != 0) {
    ck_err_prefix(err, "%s", k->base.path);
    return rc;
  }
  k->in_tensor = 1;
  return 0;
}

static int append(struct ck_sink *base, const void *data, size_t len, struct ck_err *err)
{
  struct tsink *k = (struct tsink *)base;
  int rc = ck_zipw_entry_append(k->zw, data, len, err);

  if (rc != 0)
    ck_err_prefix(err, "%s", k->base.path);
  return rc;
}

static int tensor_end(struct ck_sink *base, struct ck_err *err)
{
  struct tsink *k = (struct tsink *)base;
  int rc = ck_zipw_entry_end(k->zw, err);

  if (rc != 0) {
    ck_err_prefix(err, "%s", k->base.path);
    return rc;
  }
  k->in_tensor = 0;
  k->next++;
  return 0;
}

/* ---- the end ---- */

static void sink_free(struct tsink *k)
{
  if (k->fd >= 0)
    close(k->fd);
  ck_zipw_free(k->zw);
  free(k->nbytes);
  free(k->tmp);
  free(k->dir);
  free(k->archive);
  free(k->base.path);
  free(k);
}

static void sink_abort(struct ck_sink *base)
{
  struct tsink *k = (struct tsink *)base;

  if (k == NULL)
    return;
  if (k->tmp)
    unlink(k->tmp);
  sink_free(k);
}

/* The version record, the central directory, fsync. */
static int seal(struct tsink *k, struct ck_err *err)
{
  char *name = ck_asprintf("%s/version", k->archive);
  int rc;

  if (name == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  rc = ck_zipw_add(k->zw, name, "3\n", 2, err);
  free(name);
  if (rc != 0 || (rc = ck_zipw_finish(k->zw, err)) != 0)
    return rc;
  if ((rc = ck_fsync_drop(k->fd, k->o.conv && k->o.conv->verify)) != 0 || close(k->fd) != 0) {
    rc = rc ? rc : -errno;
    k->fd = -1;
    return ck_err_set(err, rc, "%s: fsync: %s", k->tmp, strerror(-rc));
  }
  k->fd = -1;
  return 0;
}

/* The one publish path of single-file outputs (mark, mode and group, rename honouring
 * keep_foreign, directory fsync). */
static int publish(struct tsink *k, struct ck_err *err)
{
  static const struct ck_convert_opts none = { 0 };
  int rc = ck_publish_file(k->tmp, k->base.path, k->o.mark_id ? k->o.mark_name : NULL, k->o.mark_id,
                           k->o.conv ? k->o.conv : &none, err);

  if (rc == 0 || access(k->tmp, F_OK) != 0) {
    free(k->tmp);
    k->tmp = NULL; /* published: nothing to remove any more */
  }
  return rc;
}

static int finish(struct ck_sink *base, struct ck_err *err)
{
  struct tsink *k = (struct tsink *)base;
  int rc;

  if (k->in_tensor || k->next != k->n)
    rc = ck_err_set(err, CK_EINVAL, "%s: %zu of %zu tensors written", k->base.path, k->next, k->n);
  else if ((rc = seal(k, err)) != 0)
    ck_err_prefix(err, "%s", k->base.path);
  else
    rc = publish(k, err); /* its messages name the output */
  if (rc != 0) {
    sink_abort(base);
    return rc;
  }
  sink_free(k);
  return 0;
}

static const struct ck_sink_ops torch_ops = {
  .accepts = accepts,
  .begin = begin,
  .tensor_begin = tensor_begin,
  .append = append,
  .tensor_end = tensor_end,
  .finish = finish,
  .abort = sink_abort,
};

/* The zip writer's buffer gathers headers and small tensors; the converter's chunks
 * (4 MiB) are larger and go straight to the file: buffering them into a bigger buffer
 * made every write a cache-cold copy (bench-formats). */
static size_t write_buffer(const struct ck_sink_opts *o)
{
  (void)o;
  return 1u << 20;
}

int ck_torch_sink_open(const char *dst, const struct ck_sink_opts *o, struct ck_sink **out, struct ck_err *err)
{
  struct tsink *k = calloc(1, sizeof(*k));
  int rc = 0;

  *out = NULL;
  if (k == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  k->fd = -1;
  k->base.ops = &torch_ops;
  k->base.format = CK_FMT_TORCH;
  if (o)
    k->o = *o;
  if ((k->base.path = strdup(dst)) == NULL || (k->dir = ck_dirname(dst)) == NULL ||
      (k->archive = archive_name(dst)) == NULL || (k->tmp = ck_temp_name(dst)) == NULL) {
    rc = ck_err_set(err, -ENOMEM, "out of memory");
    goto out;
  }
  if ((k->fd = ck_create_excl(k->tmp)) < 0) {
    rc = ck_err_set(err, k->fd, "%s: cannot create: %s", k->tmp, strerror(-k->fd));
    free(k->tmp);
    k->tmp = NULL;
    goto out;
  }
  rc = ck_zipw_open(k->fd, write_buffer(o), k->o.conv && k->o.conv->verify, &k->zw, err);
out:
  if (rc != 0) {
    sink_abort(&k->base);
    return rc;
  }
  *out = &k->base;
  return 0;
}
