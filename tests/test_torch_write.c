/* The torch sink (common/torch/torch_write.c, zip_write.c, pickle_write.c): files written
 * from an in-memory source, then read back by Python's zipfile and by torch itself
 * (tests/torch_check.py with Debian's /usr/bin/python3) against an expected description
 * this test writes beside each file; the pickle encodings; the failure paths. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dtype.h"
#include "json.h"
#include "pickle_write.h"
#include "pipeline.h"
#include "spec.h"
#include "tap.h"
#include "testutil.h"
#include "zip_write.h"

#ifndef CK_TEST_SRCDIR
#define CK_TEST_SRCDIR "."
#endif

/* ---- an in-memory source ---- */

struct ften {
  char *name;
  int dtype, rank;
  int64_t dims[8];
  uint64_t nelem, nbytes;
  uint8_t *data;
};

struct fsrc {
  struct ck_source base;
  struct ften t[1100];
  size_t cap_values;
};

static void f_info(struct ck_source *s, size_t i, struct ck_tinfo *out)
{
  struct ften *t = &((struct fsrc *)s)->t[i];

  memset(out, 0, sizeof(*out));
  out->name = t->name;
  out->nlen = strlen(t->name);
  out->dtype = t->dtype;
  out->rank = t->rank;
  out->dims = t->dims;
  out->nelem = t->nelem;
  out->nbytes = t->nbytes;
}

/* Small odd chunks, so entries are built from many appends. */
static int f_stream(struct ck_source *s, size_t i, void *buf, size_t bufsize,
                    int (*fn)(void *ctx, const void *data, size_t len), void *ctx, struct ck_err *err)
{
  struct ften *t = &((struct fsrc *)s)->t[i];
  int rc = 0;

  (void)err;
  for (uint64_t off = 0; off < t->nbytes && rc == 0; off += 7) {
    size_t n = t->nbytes - off < 7 ? (size_t)(t->nbytes - off) : 7;
    memcpy(buf, t->data + off, n < bufsize ? n : bufsize);
    rc = fn(ctx, buf, n);
  }
  return rc;
}

static void f_close(struct ck_source *s)
{
  struct fsrc *f = (struct fsrc *)s;

  for (size_t i = 0; i < f->base.count; i++) {
    free(f->t[i].name);
    free(f->t[i].data);
  }
  for (size_t i = 0; i < f->base.nvalues; i++) {
    free(f->base.values[i].name);
    free(f->base.values[i].s);
  }
  free(f->base.values);
  free(f->base.spec);
  free(f);
}

static const struct ck_source_ops f_ops = { f_info, f_stream, f_close };

static struct fsrc *fsrc_new(void)
{
  struct fsrc *f = calloc(1, sizeof(*f));

  f->base.ops = &f_ops;
  f->base.format = CK_FMT_TORCH;
  return f;
}

/* A tensor of bytes that differ per tensor (bools 0/1). */
static void add_tensor(struct fsrc *f, const char *name, int dtype, int rank, const int64_t *dims)
{
  struct ften *t = &f->t[f->base.count];
  size_t es = ck_dtype_size(dtype) ? ck_dtype_size(dtype) : 1;

  t->name = strdup(name);
  t->dtype = dtype;
  t->rank = rank;
  t->nelem = 1;
  for (int d = 0; d < rank; d++) {
    t->dims[d] = dims[d];
    t->nelem *= (uint64_t)dims[d];
  }
  t->nbytes = t->nelem * es;
  t->data = malloc(t->nbytes + 1);
  for (uint64_t i = 0; i < t->nbytes; i++)
    t->data[i] = dtype == CK_DT_BOOL ? (uint8_t)(i % 3 == 0) : (uint8_t)(i * 37 + f->base.count * 11 + 1);
  f->base.count++;
}

static void add_value(struct fsrc *f, const char *name, int kind, int64_t i, double d, const char *s)
{
  struct ck_value *v;

  if (f->base.nvalues == f->cap_values) {
    f->cap_values = f->cap_values ? 2 * f->cap_values : 8;
    f->base.values = realloc(f->base.values, f->cap_values * sizeof(*v));
  }
  v = &f->base.values[f->base.nvalues++];
  memset(v, 0, sizeof(*v));
  v->name = strdup(name);
  v->kind = kind;
  v->i = i;
  v->f = d;
  if (s) {
    v->s = strdup(s);
    v->slen = strlen(s);
  }
}

/* ---- driving a sink as ck_convert does ---- */

static int drive(const char *dst, struct fsrc *f, const size_t *sel, size_t n, int keep_foreign, struct ck_err *err)
{
  struct ck_convert_opts conv = { .buffer_size = 1u << 20, .keep_foreign = keep_foreign };
  struct ck_sink_opts o = { .conv = &conv, .mark_name = "src", .mark_id = "1:2" };
  struct ck_sink *k;
  uint8_t buf[64];
  int rc;

  if ((rc = ck_torch_sink_open(dst, &o, &k, err)) != 0)
    return rc;
  if ((rc = k->ops->begin(k, &f->base, sel, n, err)) != 0)
    goto fail;
  for (size_t j = 0; j < n; j++) {
    struct ck_tinfo t;
    f->base.ops->info(&f->base, sel[j], &t);
    if ((rc = k->ops->tensor_begin(k, &t, err)) != 0)
      goto fail;
    for (uint64_t off = 0; off < t.nbytes; off += 7) {
      size_t m = t.nbytes - off < 7 ? (size_t)(t.nbytes - off) : 7;
      memcpy(buf, f->t[sel[j]].data + off, m);
      if ((rc = k->ops->append(k, buf, m, err)) != 0)
        goto fail;
    }
    if ((rc = k->ops->tensor_end(k, err)) != 0)
      goto fail;
  }
  return k->ops->finish(k, err);
fail:
  k->ops->abort(k);
  return rc;
}

/* ---- the expected description ---- */

static const char *torch_name(int dtype)
{
  switch (dtype) {
  case CK_DT_FLOAT: return "float32";
  case CK_DT_DOUBLE: return "float64";
  case CK_DT_HALF: return "float16";
  case CK_DT_BFLOAT16: return "bfloat16";
  case CK_DT_INT64: return "int64";
  case CK_DT_INT32: return "int32";
  case CK_DT_INT16: return "int16";
  case CK_DT_INT8: return "int8";
  case CK_DT_UINT8: return "uint8";
  case CK_DT_BOOL: return "bool";
  case CK_DT_COMPLEX64: return "complex64";
  case CK_DT_COMPLEX128: return "complex128";
  default: return "?";
  }
}

static void desc_tensor(struct ck_sbuf *b, const struct ften *t)
{
  ck_sbuf_addf(b, "{\"t\": \"tensor\", \"dtype\": \"%s\", \"shape\": [", torch_name(t->dtype));
  for (int d = 0; d < t->rank; d++)
    ck_sbuf_addf(b, "%s%lld", d ? ", " : "", (long long)t->dims[d]);
  ck_sbuf_add(b, "], \"hex\": \"", 11);
  for (uint64_t i = 0; i < t->nbytes; i++)
    ck_sbuf_addf(b, "%02x", t->data[i]);
  ck_sbuf_add(b, "\"}", 2);
}

static void desc_value(struct ck_sbuf *b, const struct ck_value *v)
{
  static const char *kinds[] = { "none", "bool", "int", "float", "str" };

  ck_sbuf_addf(b, "{\"t\": \"%s\", \"v\": ", kinds[v->kind]);
  if (v->kind == CK_VAL_BOOL)
    ck_sbuf_addf(b, "%s", v->i ? "true" : "false");
  else if (v->kind == CK_VAL_INT)
    ck_sbuf_addf(b, "%lld", (long long)v->i);
  else if (v->kind == CK_VAL_FLOAT)
    ck_sbuf_json_double(b, v->f);
  else if (v->kind == CK_VAL_STR)
    ck_sbuf_json_str(b, v->s, v->slen);
  else
    ck_sbuf_add(b, "null", 4);
  ck_sbuf_add(b, "}", 1);
}

/* {"spec": ..., "order": [names], "leaves": {name: desc}, flags}: the selected tensors and
 * the values; a leaf of the spec missing here must load as None. */
static int write_expect(const char *path, struct fsrc *f, const size_t *sel, size_t n, const char *flags)
{
  struct ck_sbuf b = { 0 };
  int rc;

  ck_sbuf_add(&b, "{\"spec\": ", 9);
  if (f->base.spec)
    ck_sbuf_json_str(&b, f->base.spec, strlen(f->base.spec));
  else
    ck_sbuf_add(&b, "null", 4);
  ck_sbuf_add(&b, ", \"order\": [", 12);
  for (size_t j = 0; j < n + f->base.nvalues; j++) {
    const char *name = j < n ? f->t[sel[j]].name : f->base.values[j - n].name;
    if (j)
      ck_sbuf_add(&b, ", ", 2);
    ck_sbuf_json_str(&b, name, strlen(name));
  }
  ck_sbuf_add(&b, "], \"leaves\": {", 14);
  for (size_t j = 0; j < n + f->base.nvalues; j++) {
    const char *name = j < n ? f->t[sel[j]].name : f->base.values[j - n].name;
    if (j)
      ck_sbuf_add(&b, ", ", 2);
    ck_sbuf_json_str(&b, name, strlen(name));
    ck_sbuf_add(&b, ": ", 2);
    if (j < n)
      desc_tensor(&b, &f->t[sel[j]]);
    else
      desc_value(&b, &f->base.values[j - n]);
  }
  ck_sbuf_addf(&b, "}, %s}\n", flags);
  rc = b.oom ? -1 : tu_write_file(path, b.p, b.len);
  free(b.p);
  return rc;
}

static int have_torch(void)
{
  static int have = -1;

  if (have < 0)
    have = system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0;
  return have;
}

/* Write f through the sink as dir/name.pt and check it with torch_check.py. */
static void check_file(const char *dir, const char *name, struct fsrc *f, const size_t *sel, size_t n,
                       const char *flags)
{
  char path[4096], exp[4096], cmd[12288];
  struct ck_err err = { 0 };
  int rc;

  snprintf(path, sizeof(path), "%s/%s.pt", dir, name);
  snprintf(exp, sizeof(exp), "%s/%s.json", dir, name);
  rc = drive(path, f, sel, n, 0, &err);
  ok(rc == 0, "%s: written (%s)", name, rc ? err.msg : "ok");
  ok(write_expect(exp, f, sel, n, flags) == 0, "%s: expectation written", name);
  if (!have_torch()) {
    tap_skip("%s: /usr/bin/python3 has no torch (Debian: python3-torch)", name);
    return;
  }
  snprintf(cmd, sizeof(cmd), "out=$(/usr/bin/python3 %s/tests/torch_check.py '%s' '%s' 2>&1); st=$?; "
           "printf '%%s\\n' \"$out\" | sed 's/^/# /'; exit $st", CK_TEST_SRCDIR, path, exp);
  ok(system(cmd) == 0, "%s: zipfile and torch.load read back every value (torch_check.py)", name);
}

/* ---- cases ---- */

static const int all_dtypes[] = { CK_DT_FLOAT, CK_DT_DOUBLE, CK_DT_HALF, CK_DT_BFLOAT16, CK_DT_INT64,
                                  CK_DT_INT32, CK_DT_INT16, CK_DT_INT8, CK_DT_UINT8, CK_DT_BOOL,
                                  CK_DT_COMPLEX64, CK_DT_COMPLEX128 };

/* Every dtype, a scalar, zero-size dimensions, rank 5, values of every kind but float. */
static struct fsrc *flat_source(size_t *sel, size_t *n)
{
  struct fsrc *f = fsrc_new();
  int64_t d23[] = { 2, 3 }, d0[] = { 0, 3 }, d202[] = { 2, 0, 2 }, d5[] = { 2, 1, 3, 1, 2 };
  char name[64];

  for (size_t i = 0; i < sizeof(all_dtypes) / sizeof(all_dtypes[0]); i++) {
    snprintf(name, sizeof(name), "layer.%s", torch_name(all_dtypes[i]));
    add_tensor(f, name, all_dtypes[i], 2, d23);
  }
  add_tensor(f, "scalar", CK_DT_FLOAT, 0, NULL);
  add_tensor(f, "empty", CK_DT_BFLOAT16, 2, d0);
  add_tensor(f, "empty3", CK_DT_BOOL, 3, d202);
  add_tensor(f, "rank5", CK_DT_INT64, 5, d5);
  add_tensor(f, "unselected", CK_DT_FLOAT, 2, d23);
  add_value(f, "step", CK_VAL_INT, 300, 0, NULL);
  add_value(f, "big", CK_VAL_INT, 5000000000LL, 0, NULL);
  add_value(f, "neg", CK_VAL_INT, -7, 0, NULL);
  add_value(f, "min", CK_VAL_INT, INT64_MIN, 0, NULL);
  add_value(f, "name", CK_VAL_STR, 0, 0, "r\xc3\xa9sum\xc3\xa9");
  add_value(f, "ok", CK_VAL_BOOL, 1, 0, NULL);
  add_value(f, "nothing", CK_VAL_NONE, 0, 0, NULL);
  /* the selection: not the source's order, and not every tensor */
  *n = 0;
  for (size_t i = f->base.count - 1; i-- > 0;)
    sel[(*n)++] = i;
  return f;
}

static struct ck_spec *kid(struct ck_spec *p, const char *key, int64_t ikey, struct ck_spec *k)
{
  struct ck_spec_key sk = { key == NULL, ikey, (char *)key };

  ck_spec_append(p, p->kind == CK_SPEC_LIST || p->kind == CK_SPEC_TUPLE ? NULL : &sk, k);
  return k;
}

#define LEAF ck_spec_new(CK_SPEC_LEAF)

/* {"model": OrderedDict{"0.weight", "0.bias"}, "opt": {"state": {0: {"step", "exp_avg"}},
 *  "param_groups": [{"lr"?, "params": [0, 1]}]}, "extra": (t, "s", skipped, True, 4, words)} */
static struct fsrc *tree_source(int with_float, size_t *sel, size_t *n)
{
  struct fsrc *f = fsrc_new();
  struct ck_spec *root = ck_spec_new(CK_SPEC_DICT), *model, *opt, *st, *s0, *pg, *g, *params, *ex;
  int64_t d43[] = { 4, 3 }, d4[] = { 4 };

  model = kid(root, "model", 0, ck_spec_new(CK_SPEC_ODICT));
  kid(model, "0.weight", 0, LEAF);
  kid(model, "0.bias", 0, LEAF);
  opt = kid(root, "opt", 0, ck_spec_new(CK_SPEC_DICT));
  st = kid(opt, "state", 0, ck_spec_new(CK_SPEC_DICT));
  s0 = kid(st, NULL, 0, ck_spec_new(CK_SPEC_DICT));
  kid(s0, "step", 0, LEAF);
  kid(s0, "exp_avg", 0, LEAF);
  pg = kid(opt, "param_groups", 0, ck_spec_new(CK_SPEC_LIST));
  g = kid(pg, NULL, 0, ck_spec_new(CK_SPEC_DICT));
  if (with_float)
    kid(g, "lr", 0, LEAF);
  params = kid(g, "params", 0, ck_spec_new(CK_SPEC_LIST));
  kid(params, NULL, 0, LEAF);
  kid(params, NULL, 0, LEAF);
  ex = kid(root, "extra", 0, ck_spec_new(CK_SPEC_TUPLE));
  for (int i = 0; i < 6; i++)
    kid(ex, NULL, 0, LEAF);
  f->base.spec = ck_spec_dumps(root);
  ck_spec_free(root);
  add_tensor(f, "model.0.weight", CK_DT_BFLOAT16, 2, d43);
  add_tensor(f, "extra.5", CK_DT_STRING, 1, d4); /* the converter leaves it out: None */
  add_tensor(f, "model.0.bias", CK_DT_FLOAT, 1, d4);
  add_tensor(f, "opt.state.0.exp_avg", CK_DT_FLOAT, 2, d43);
  add_tensor(f, "extra.0", CK_DT_BOOL, 1, d4);
  add_value(f, "opt.state.0.step", CK_VAL_INT, 12, 0, NULL);
  if (with_float)
    add_value(f, "opt.param_groups.0.lr", CK_VAL_FLOAT, 0.001, 0, NULL);
  add_value(f, "opt.param_groups.0.params.0", CK_VAL_INT, 0, 0, NULL);
  add_value(f, "opt.param_groups.0.params.1", CK_VAL_INT, 1, 0, NULL);
  add_value(f, "extra.1", CK_VAL_STR, 0, 0, "s");
  add_value(f, "extra.3", CK_VAL_BOOL, 1, 0, NULL);
  add_value(f, "extra.4", CK_VAL_INT, 4, 0, NULL); /* extra.2: skipped by the source, None */
  sel[0] = 0;
  sel[1] = 2;
  sel[2] = 3;
  sel[3] = 4;
  *n = 4;
  return f;
}

/* 1000 one-element tensors: an exact multiple of CPython's SETITEMS batch. */
static struct fsrc *many_source(size_t count, size_t *sel, size_t *n)
{
  struct fsrc *f = fsrc_new();
  int64_t d1[] = { 1 };
  char name[32];

  for (size_t i = 0; i < count; i++) {
    snprintf(name, sizeof(name), "p%zu", i);
    add_tensor(f, name, CK_DT_INT32, 1, d1);
    sel[i] = i;
  }
  *n = count;
  return f;
}

static void test_files(const char *dir)
{
  static size_t sel[1100];
  size_t n;
  struct fsrc *f;

  f = flat_source(sel, &n);
  check_file(dir, "flat", f, sel, n, "\"weights_only\": true, \"floats\": false, \"zip64\": false, \"same_pickle\": true");
  ck_zipw_set_zip64_limit(200); /* zip64 sizes and offsets: Python's zipfile reads them */
  check_file(dir, "zip64_limit", f, sel, n, "\"weights_only\": true, \"floats\": false, \"zip64\": true, \"same_pickle\": true, \"torch\": false");
  ck_zipw_set_zip64_limit(0);
  ck_zipw_set_test_hole((4ull << 30) + 4099); /* a 4 GiB hole: torch reads zip64 past it */
  check_file(dir, "zip64_hole", f, sel, n, "\"weights_only\": true, \"floats\": false, \"zip64\": true, \"same_pickle\": true, \"hole\": true");
  ck_zipw_set_test_hole(0);
  f_close(&f->base);
  f = tree_source(0, sel, &n);
  check_file(dir, "tree", f, sel, n, "\"weights_only\": true, \"floats\": false, \"zip64\": false, \"same_pickle\": false");
  f_close(&f->base);
  f = tree_source(1, sel, &n);
  check_file(dir, "tree_float", f, sel, n, "\"weights_only\": false, \"floats\": true, \"zip64\": false, \"same_pickle\": false");
  f_close(&f->base);
  f = many_source(1000, sel, &n);
  check_file(dir, "many1000", f, sel, n, "\"weights_only\": true, \"floats\": false, \"zip64\": false, \"same_pickle\": true");
  f_close(&f->base);
  f = many_source(1001, sel, &n);
  check_file(dir, "many1001", f, sel, n, "\"weights_only\": true, \"floats\": false, \"zip64\": false, \"same_pickle\": true");
  f_close(&f->base);
}

/* ---- pickle encodings (bytes from CPython's pickle.dumps(v, 2)) ---- */

static int pkl_is(int64_t v, const char *want, size_t wlen)
{
  struct ck_pkl k;
  int same;

  ck_pkl_init(&k, 1024);
  ck_pkl_int(&k, v);
  ck_pkl_stop(&k);
  same = k.len == wlen && memcmp(k.p, want, wlen) == 0;
  ck_pkl_free(&k);
  return same;
}

static void test_pickle(void)
{
  struct ck_pkl k;

  ok(pkl_is(0, "\x80\x02K\x00.", 5), "0: BININT1");
  ok(pkl_is(255, "\x80\x02K\xff.", 5), "255: BININT1");
  ok(pkl_is(256, "\x80\x02M\x00\x01.", 6), "256: BININT2");
  ok(pkl_is(-1, "\x80\x02J\xff\xff\xff\xff.", 8), "-1: BININT");
  ok(pkl_is(2147483648LL, "\x80\x02\x8a\x05\x00\x00\x00\x80\x00.", 10), "2**31: LONG1 of 5 bytes");
  ok(pkl_is(-2147483649LL, "\x80\x02\x8a\x05\xff\xff\xff\x7f\xff.", 10), "-2**31-1: LONG1 of 5 bytes");
  ok(pkl_is(INT64_MIN, "\x80\x02\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80.", 13), "-2**63: LONG1 of 8 bytes");
  ck_pkl_init(&k, 16);
  ck_pkl_str(&k, "0123456789abcdef", 16);
  ok(ck_pkl_stop(&k) == CK_ELIMIT, "a pickle beyond its cap: CK_ELIMIT");
  ck_pkl_free(&k);
  ck_pkl_init(&k, 4096);
  for (int i = 0; i < 300; i++)
    ck_pkl_put(&k);
  ok(k.len == 2 + 256 * 2 + 44 * 5 && k.p[2 + 256 * 2] == 'r', "memo 256 and up: LONG_BINPUT");
  ck_pkl_free(&k);
}

/* ---- failures leave nothing ---- */

static struct ck_sink *open_begun(const char *dst, struct fsrc *f, const size_t *sel, size_t n,
                                  const struct ck_sink_opts *o, struct ck_err *err)
{
  struct ck_sink *k;

  if (ck_torch_sink_open(dst, o, &k, err) != 0)
    return NULL;
  if (k->ops->begin(k, &f->base, sel, n, err) != 0) {
    k->ops->abort(k);
    return NULL;
  }
  return k;
}

static void test_failures(const char *dir)
{
  char dst[4096], sub[4096];
  struct ck_err err = { 0 };
  struct ck_sink *k;
  struct ck_tinfo t;
  struct ck_sink_opts o = { 0 };
  size_t sel[4], n;
  struct fsrc *f = tree_source(0, sel, &n);
  const struct ck_sink_ops *ops;
  int rc;

  snprintf(sub, sizeof(sub), "%s/fail", dir);
  mkdir(sub, 0755);
  snprintf(dst, sizeof(dst), "%s/out.pt", sub);
  if ((k = open_begun(dst, f, sel, n, &o, &err)) == NULL) {
    ok(0, "sink opens: %s", err.msg);
    f_close(&f->base);
    return;
  }
  ops = k->ops;
  ok(ops->accepts(CK_DT_FLOAT) && ops->accepts(CK_DT_BFLOAT16) && ops->accepts(CK_DT_BOOL) &&
     ops->accepts(CK_DT_COMPLEX128), "accepts float32, bfloat16, bool, complex128");
  ok(!ops->accepts(CK_DT_STRING) && !ops->accepts(CK_DT_VARIANT) && !ops->accepts(CK_DT_UINT16) &&
     !ops->accepts(CK_DT_UINT32) && !ops->accepts(CK_DT_UINT64) && !ops->accepts(CK_DT_FLOAT8_E4M3FN) &&
     !ops->accepts(CK_DT_RESOURCE), "refuses string, variant, uint16/32/64, float8, resource");
  f->base.ops->info(&f->base, sel[0], &t);
  ok(ops->tensor_begin(k, &t, &err) == 0 && ops->append(k, f->t[sel[0]].data, 5, &err) == 0, "a tensor starts");
  rc = ops->tensor_end(k, &err);
  ok(rc == CK_EINVAL && strstr(err.msg, "5 bytes of 24"), "tensor_end checks the byte count (%s)", err.msg);
  ops->abort(k);
  ok(tu_count_dir(sub) == 0, "abort leaves nothing in the directory");

  k = open_begun(dst, f, sel, n, &o, &err);
  ok(k && ops->tensor_begin(k, &t, &err) == 0, "again");
  ok(k && ops->append(k, f->t[sel[0]].data, (size_t)t.nbytes + 1, &err) == CK_EINVAL, "more bytes than the tensor has: refused");
  if (k)
    ops->abort(k);
  k = open_begun(dst, f, sel, n, &o, &err);
  rc = k ? ops->finish(k, &err) : -1;
  ok(rc == CK_EINVAL && access(dst, F_OK) != 0 && tu_count_dir(sub) == 0,
     "finish before every tensor came: an error, nothing left (%s)", err.msg);

  free(f->t[sel[1]].name);
  f->t[sel[1]].name = strdup(f->t[sel[0]].name);
  k = open_begun(dst, f, sel, n, &o, &err);
  ok(k == NULL && strstr(err.msg, "two tensors named") && tu_count_dir(sub) == 0, "duplicate names: refused (%s)", err.msg);
  free(f->t[sel[1]].name);
  f->t[sel[1]].name = strdup("not.in.tree");
  k = open_begun(dst, f, sel, n, &o, &err);
  ok(k == NULL && strstr(err.msg, "not a leaf") && tu_count_dir(sub) == 0, "a tensor no leaf names: refused (%s)", err.msg);
  free(f->t[sel[1]].name);
  f->t[sel[1]].name = strdup("model.0.bias");
  f->t[sel[1]].nbytes--;
  k = open_begun(dst, f, sel, n, &o, &err);
  ok(k == NULL && tu_count_dir(sub) == 0, "bytes that do not fit the shape: refused (%s)", err.msg);
  f->t[sel[1]].nbytes++;
  f->base.values[3].s[0] = (char)0xff; /* "extra.1" */
  k = open_begun(dst, f, sel, n, &o, &err);
  ok(k == NULL && strstr(err.msg, "not UTF-8") && tu_count_dir(sub) == 0, "a str value that is not UTF-8: refused (%s)", err.msg);
  f->base.values[3].s[0] = 's';

  tu_write_file(dst, "foreign", 7);
  rc = drive(dst, f, sel, n, 1, &err);
  {
    size_t len = 0;
    uint8_t *b = tu_read_file(dst, &len);
    ok(rc == -EEXIST && b && len == 7 && memcmp(b, "foreign", 7) == 0 && tu_count_dir(sub) == 1,
       "keep_foreign: a foreign file at the final name stays, no temporary left (%s)", err.msg);
    free(b);
  }
  f_close(&f->base);
}

int main(void)
{
  char *dir = tu_tmpdir();

  test_pickle();
  test_files(dir);
  test_failures(dir);
  if (getenv("CK_KEEP_TMP") == NULL)
    tu_rmtree(dir);
  else
    printf("# kept %s\n", dir);
  free(dir);
  return tap_done();
}
