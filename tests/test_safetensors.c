/* safetensors: a round trip through the sink and the source for every dtype (BF16,
 * BOOL, F8 too), a scalar, zero-size dimensions, typed values and a spec; the sink's
 * refusals and failures (never an output under the final name, never a temporary
 * left); a table of hostile headers, each with the code the source and the daemon's
 * probe must give.
 *
 * With `--write FILE` it only writes the round trip's file and, beside it, FILE.expect.json
 * (what the file must hold, for tests/st_oracle.py). */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dtype.h"
#include "fileio.h"
#include "json.h"
#include "pipeline.h"
#include "st.h"
#include "tap.h"
#include "testutil.h"

/* ---- an in-memory source to feed the sink ---- */

struct mem_tensor {
  const char *name;
  int dtype;
  int rank;
  int64_t dims[4];
  uint64_t nelem, nbytes;
  uint8_t *data;
};

struct mem_source {
  struct ck_source base;
  struct mem_tensor *t;
  int64_t skew; /* stream() gives tensor 1 this many bytes more (or fewer) than info() says */
};

static void mem_info(struct ck_source *s, size_t i, struct ck_tinfo *out)
{
  const struct mem_tensor *t = &((struct mem_source *)s)->t[i];

  memset(out, 0, sizeof(*out));
  out->name = t->name;
  out->nlen = strlen(t->name);
  out->dtype = t->dtype;
  out->rank = t->rank;
  out->dims = t->dims;
  out->nelem = t->nelem;
  out->nbytes = t->nbytes;
}

static int mem_stream(struct ck_source *s, size_t i, void *buf, size_t bufsize,
                      int (*fn)(void *ctx, const void *data, size_t len), void *ctx, struct ck_err *err)
{
  const struct mem_tensor *t = &((struct mem_source *)s)->t[i];
  uint64_t len = t->nbytes + (uint64_t)(i == 1 ? ((struct mem_source *)s)->skew : 0);
  int rc = 0;

  (void)err;
  for (uint64_t at = 0; at < len && rc == 0; at += bufsize) {
    size_t n = len - at < bufsize ? (size_t)(len - at) : bufsize;
    memcpy(buf, t->data + at, n);
    rc = fn(ctx, buf, n);
  }
  return rc;
}

static void mem_close(struct ck_source *s)
{
  (void)s;
}

static const struct ck_source_ops mem_ops = { mem_info, mem_stream, mem_close };

/* Element k of a tensor as a small number every dtype holds exactly. */
static double elem(uint64_t k)
{
  return (double)(int)(k % 7) - 3 + 0.5 * (double)(k % 2);
}

static uint16_t to_half(float f) /* exact for elem()'s values */
{
  uint32_t b;
  int e;

  memcpy(&b, &f, 4);
  if ((b & 0x7fffffff) == 0)
    return (uint16_t)(b >> 16);
  e = (int)((b >> 23) & 0xff) - 127 + 15;
  return (uint16_t)((b >> 16 & 0x8000) | (uint32_t)e << 10 | (b >> 13 & 0x3ff));
}

static void put_elem(uint8_t *p, int dtype, uint64_t k)
{
  double v = elem(k);
  float f = (float)v;
  uint32_t fb;
  uint16_t h;
  int64_t i = (int64_t)(k * 37) - 50;

  memcpy(&fb, &f, 4);
  switch (dtype) {
  case CK_DT_DOUBLE: memcpy(p, &v, 8); break;
  case CK_DT_FLOAT: memcpy(p, &f, 4); break;
  case CK_DT_HALF: h = to_half(f); memcpy(p, &h, 2); break;
  case CK_DT_BFLOAT16: h = (uint16_t)(fb >> 16); memcpy(p, &h, 2); break;
  case CK_DT_BOOL: p[0] = (uint8_t)(k % 3 == 0); break;
  case CK_DT_FLOAT8_E5M2: case CK_DT_FLOAT8_E4M3FN: p[0] = (uint8_t)(k * 13 + 1); break;
  default: /* integers: little-endian two's complement of i, truncated */
    for (size_t b = 0; b < ck_dtype_size(dtype); b++)
      p[b] = (uint8_t)((uint64_t)i >> (8 * b));
  }
}

static void fill(struct mem_tensor *t)
{
  size_t es = ck_dtype_size(t->dtype);

  t->nelem = 1;
  for (int d = 0; d < t->rank; d++)
    t->nelem *= (uint64_t)t->dims[d];
  t->nbytes = t->nelem * es;
  t->data = malloc(t->nbytes + 1);
  for (uint64_t k = 0; k < t->nelem; k++)
    put_elem(t->data + k * es, t->dtype, k);
}

static struct mem_tensor demo_tensors[] = {
  { "model.0.weight", CK_DT_FLOAT, 2, { 3, 4 }, 0, 0, NULL },
  { "model.0.bias", CK_DT_BFLOAT16, 1, { 5 }, 0, 0, NULL },
  { "f64", CK_DT_DOUBLE, 1, { 3 }, 0, 0, NULL },
  { "f16", CK_DT_HALF, 2, { 2, 3 }, 0, 0, NULL },
  { "i64", CK_DT_INT64, 1, { 4 }, 0, 0, NULL },
  { "i32", CK_DT_INT32, 1, { 4 }, 0, 0, NULL },
  { "i16", CK_DT_INT16, 1, { 3 }, 0, 0, NULL },
  { "i8", CK_DT_INT8, 1, { 5 }, 0, 0, NULL },
  { "u64", CK_DT_UINT64, 1, { 2 }, 0, 0, NULL },
  { "u32", CK_DT_UINT32, 1, { 2 }, 0, 0, NULL },
  { "u16", CK_DT_UINT16, 1, { 3 }, 0, 0, NULL },
  { "u8", CK_DT_UINT8, 1, { 9 }, 0, 0, NULL },
  { "mask", CK_DT_BOOL, 2, { 2, 5 }, 0, 0, NULL },
  { "f8a", CK_DT_FLOAT8_E5M2, 1, { 4 }, 0, 0, NULL },
  { "f8b", CK_DT_FLOAT8_E4M3FN, 1, { 4 }, 0, 0, NULL },
  { "scalar", CK_DT_FLOAT, 0, { 0 }, 0, 0, NULL },
  { "empty", CK_DT_FLOAT, 2, { 0, 3 }, 0, 0, NULL },
  { "we\"ird\\name\n\xc3\xa9", CK_DT_INT32, 1, { 1 }, 0, 0, NULL },
};
#define NDEMO (sizeof(demo_tensors) / sizeof(demo_tensors[0]))

#define NOTE "a \"quoted\"\nstring \xc3\xa9"
static struct ck_value demo_values[] = {
  { (char *)"step", CK_VAL_INT, -9007199254740993LL, 0, NULL, 0 },
  { (char *)"optimizer.lr", CK_VAL_FLOAT, 0, 0.1, NULL, 0 },
  { (char *)"optimizer.nan", CK_VAL_FLOAT, 0, NAN, NULL, 0 },
  { (char *)"optimizer.inf", CK_VAL_FLOAT, 0, -INFINITY, NULL, 0 },
  { (char *)"flag", CK_VAL_BOOL, 1, 0, NULL, 0 },
  { (char *)"nothing", CK_VAL_NONE, 0, 0, NULL, 0 },
  { (char *)"note", CK_VAL_STR, 0, 0, (char *)NOTE, sizeof(NOTE) - 1 },
  { (char *)"digits", CK_VAL_STR, 0, 0, (char *)"42", 2 },
};
#define NVALUES (sizeof(demo_values) / sizeof(demo_values[0]))

static const char demo_spec[] = "[1, {\"type\": \"builtins.dict\", \"context\": \"[\\\"model\\\"]\", \"children_spec\": []}]";

/* The demo source writes tensors in the order sel gives: the reverse of the table. */
static void demo_source(struct mem_source *ms, size_t *sel)
{
  memset(ms, 0, sizeof(*ms));
  ms->base.ops = &mem_ops;
  ms->base.count = NDEMO;
  ms->base.values = demo_values;
  ms->base.nvalues = NVALUES;
  ms->base.spec = (char *)demo_spec;
  ms->t = demo_tensors;
  for (size_t i = 0; i < NDEMO; i++) {
    if (demo_tensors[i].data == NULL)
      fill(&demo_tensors[i]);
    sel[i] = NDEMO - 1 - i;
  }
}

/* ---- driving a sink ---- */

struct feed {
  struct ck_sink *k;
  struct ck_err *err;
};

static int feed_chunk(void *ctx, const void *data, size_t len)
{
  struct feed *f = ctx;

  return f->k->ops->append(f->k, data, len, f->err);
}

/* What ck_convert does with a sink, through a 7-byte buffer so tensors come in pieces. */
static int run_sink(const char *dst, struct ck_source *src, const size_t *sel, size_t n,
                    const struct ck_convert_opts *co, struct ck_err *err)
{
  struct ck_sink_opts so = { co, "src.safetensors", "12:34" };
  struct ck_sink *k = NULL;
  uint8_t buf[7];
  int rc;

  if ((rc = ck_st_sink_open(dst, &so, &k, err)) != 0)
    return rc;
  rc = k->ops->begin(k, src, sel, n, err);
  for (size_t j = 0; j < n && rc == 0; j++) {
    struct ck_tinfo t;
    struct feed f = { k, err };
    src->ops->info(src, sel[j], &t);
    if ((rc = k->ops->tensor_begin(k, &t, err)) == 0 &&
        (rc = src->ops->stream(src, sel[j], buf, sizeof(buf), feed_chunk, &f, err)) == 0)
      rc = k->ops->tensor_end(k, err);
  }
  if (rc != 0) {
    k->ops->abort(k);
    return rc;
  }
  return k->ops->finish(k, err);
}

/* ---- the round trip ---- */

static int same_tensor(struct ck_source *s, size_t i, const struct mem_tensor *m)
{
  struct ck_tinfo t;
  struct tu_collect c = { malloc(m->nbytes + 1), 0 };
  uint8_t buf[5];
  int same;

  s->ops->info(s, i, &t);
  same = t.nlen == strlen(m->name) && memcmp(t.name, m->name, t.nlen) == 0 && t.dtype == m->dtype &&
         t.rank == m->rank && t.nelem == m->nelem && t.nbytes == m->nbytes && t.has_crc == 0 &&
         (t.rank == 0 || memcmp(t.dims, m->dims, (size_t)t.rank * sizeof(int64_t)) == 0) &&
         s->ops->stream(s, i, buf, sizeof(buf), tu_collect_chunk, &c, NULL) == 0 && c.len == m->nbytes &&
         (m->nbytes == 0 || memcmp(c.buf, m->data, m->nbytes) == 0);
  free(c.buf);
  return same;
}

static int same_value(const struct ck_value *a, const struct ck_value *b)
{
  if (strcmp(a->name, b->name) != 0 || a->kind != b->kind)
    return 0;
  switch (a->kind) {
  case CK_VAL_BOOL: case CK_VAL_INT: return a->i == b->i;
  case CK_VAL_FLOAT: return isnan(a->f) ? isnan(b->f) : a->f == b->f;
  case CK_VAL_STR: return a->slen == b->slen && memcmp(a->s, b->s, a->slen) == 0;
  default: return 1;
  }
}

static void check_layout(const char *path)
{
  size_t len;
  uint8_t *d = tu_read_file(path, &len);
  uint64_t n = 0;

  for (int i = 7; d && len >= 8 && i >= 0; i--)
    n = n << 8 | d[i];
  ok(d && n % 8 == 0 && n + 8 <= len && d[8] == '{', "header length %llu is a multiple of 8 (data 8-byte aligned)",
     (unsigned long long)n);
  ok(d && n >= 2 && n + 8 <= len && (d[8 + n - 1] == ' ' || d[8 + n - 1] == '}'), "the header ends in '}' and its padding");
  free(d);
}

static void round_trip(const char *dir)
{
  struct mem_source ms;
  size_t sel[NDEMO];
  struct ck_source *s = NULL;
  struct ck_convert_opts co = { .buffer_size = 4096, .output_mode = 0640 };
  char path[4200];
  struct ck_err err = { 0 };
  struct stat st;
  int rc, same = 1;

  demo_source(&ms, sel);
  snprintf(path, sizeof(path), "%s/rt.safetensors", dir);
  rc = run_sink(path, &ms.base, sel, NDEMO, &co, &err);
  ok(rc == 0, "round trip: the sink writes %zu tensors (%s)", NDEMO, err.msg);
  ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0640, "the output has the configured mode");
  ok(tu_count_dir(dir) == 1, "no temporary left beside the output");
  check_layout(path);
  ok(ck_st_probe(path, &err) == 0, "the probe calls it complete (%s)", err.msg);
  rc = ck_st_source_open(path, 1 << 20, &s, &err);
  ok(rc == 0 && s->count == NDEMO && s->format == CK_FMT_SAFETENSORS, "the source opens it (%s)", err.msg);
  if (rc != 0)
    return;
  for (size_t j = 0; j < NDEMO; j++)
    if (!same_tensor(s, j, &demo_tensors[sel[j]])) {
      same = 0;
      printf("# tensor %zu (%s) differs\n", j, demo_tensors[sel[j]].name);
      break;
    }
  ok(same, "every dtype, the scalar and the zero-size tensor come back in data order, bytes equal");
  same = s->nvalues == NVALUES;
  for (size_t i = 0; same && i < NVALUES; i++)
    same = same_value(&s->values[i], &demo_values[i]);
  ok(same, "values come back typed: int, float (NaN, -inf), bool, None, strings (%zu)", s->nvalues);
  ok(s->spec && strcmp(s->spec, demo_spec) == 0, "the spec comes back");
  ok(s->source_name && strcmp(s->source_name, "rt.safetensors") == 0 && strchr(s->source_id, ':'),
     "source name %s, id %s", s->source_name, s->source_id);
  s->ops->close(s); /* ck_source_close once pipeline.c is on main */
}

/* ---- the sink's refusals and failures ---- */

static void sink_refusals(const char *dir)
{
  struct ck_sink *k = NULL;
  char path[4200];
  int r;

  snprintf(path, sizeof(path), "%s/refuse.safetensors", dir);
  r = ck_st_sink_open(path, NULL, &k, NULL);
  ok(r == 0 && !k->ops->accepts(CK_DT_STRING) && !k->ops->accepts(CK_DT_VARIANT) &&
     !k->ops->accepts(CK_DT_COMPLEX64) && !k->ops->accepts(CK_DT_RESOURCE) && k->ops->accepts(CK_DT_BFLOAT16) &&
     k->ops->accepts(CK_DT_BOOL) && k->ops->accepts(CK_DT_FLOAT8_E4M3FN),
     "accepts: no strings, variants or complex; BF16, BOOL, F8 yes");
  if (r == 0)
    k->ops->abort(k);
  ok(tu_count_dir(dir) == 0, "abort right after open leaves nothing");
}

/* A source whose tensor `bad` misbehaves as `how` says; the sink must fail and leave nothing. */
static void sink_failure(const char *dir, const char *what, int dtype, int64_t extra_bytes, int64_t skew, int expect)
{
  struct mem_tensor t[2] = { { "ok", CK_DT_FLOAT, 1, { 3 }, 0, 0, NULL }, { "bad", dtype, 1, { 2 }, 0, 0, NULL } };
  struct mem_source ms = { .base = { .ops = &mem_ops, .count = 2 }, .t = t, .skew = skew };
  size_t sel[2] = { 0, 1 };
  struct ck_err err = { 0 };
  char path[4200];
  int rc;

  fill(&t[0]);
  t[1].dtype = ck_dtype_size(dtype) ? dtype : CK_DT_INT8;
  fill(&t[1]);
  t[1].dtype = dtype;
  t[1].nbytes += (uint64_t)extra_bytes;
  t[1].data = realloc(t[1].data, t[1].nbytes + (skew > 0 ? (uint64_t)skew : 0) + 1);
  memset(t[1].data, 0, t[1].nbytes + (skew > 0 ? (uint64_t)skew : 0));
  snprintf(path, sizeof(path), "%s/fail.safetensors", dir);
  rc = run_sink(path, &ms.base, sel, 2, NULL, &err);
  ok(rc == expect && access(path, F_OK) != 0 && tu_count_dir(dir) == 0, "sink: %s: code %d (%s), nothing left", what,
     rc, err.msg);
  free(t[0].data);
  free(t[1].data);
}

static void sink_keep_foreign(const char *dir)
{
  struct mem_source ms;
  size_t sel[NDEMO];
  struct ck_convert_opts co = { .keep_foreign = 1 };
  struct ck_err err = { 0 };
  char path[4200];
  size_t len = 0;
  uint8_t *d;
  int rc;

  demo_source(&ms, sel);
  snprintf(path, sizeof(path), "%s/foreign.safetensors", dir);
  tu_write_file(path, "trainer's", 9);
  rc = run_sink(path, &ms.base, sel, NDEMO, &co, &err);
  d = tu_read_file(path, &len);
  ok(rc == -EEXIST && d && len == 9 && tu_count_dir(dir) == 1, "keep_foreign: a file that is not ours stays (%s)",
     err.msg);
  free(d);
  unlink(path);
}

/* ---- hostile headers ---- */

struct hostile {
  const char *what;
  const char *json;   /* the header */
  long long n;        /* -1: the header's length */
  size_t data;        /* zero bytes of data after it */
  long long size;     /* >= 0: truncate to this; -1 - k: drop the last k bytes */
  int code, probe;    /* from the source; from the probe */
  const char *msg;    /* part of the message, or NULL */
};

#define T1 "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"
static const struct hostile hostile[] = {
  { "a valid file", T1 "}", -1, 8, -1, 0, 0, NULL },
  { "a valid empty file", "{}", -1, 0, -1, 0, 0, NULL },
  { "empty file", "", 0, 0, 0, CK_ETRUNC, CK_EINCOMPLETE, "shorter than the 8-byte" },
  { "5 bytes", T1 "}", -1, 8, 5, CK_ETRUNC, CK_EINCOMPLETE, NULL },
  { "header length 0", "", 0, 0, -1, CK_EFORMAT, CK_EFORMAT, NULL },
  { "header length over 100 MB", T1 "}", 100000001, 8, -1, CK_EFORMAT, CK_EFORMAT, "100,000,000" },
  { "header length past the file", T1 "}", 4000, 8, -1, CK_ETRUNC, CK_EINCOMPLETE, "only" },
  { "data cut short", T1 "}", -1, 8, -5, CK_ETRUNC, CK_EINCOMPLETE, "need 8 bytes of data" },
  { "header not an object", "[1,2]", -1, 0, -1, CK_EFORMAT, CK_EFORMAT, "not a JSON object" },
  { "header not JSON", "{\"a\":}", -1, 0, -1, CK_EFORMAT, CK_EFORMAT, NULL },
  { "trailing garbage after the JSON", T1 "}x", -1, 8, -1, CK_EFORMAT, CK_EFORMAT, NULL },
  { "trailing bytes after the data", T1 "}", -1, 12, -1, CK_EFORMAT, CK_EFORMAT, "4 bytes after" },
  { "overlapping offsets", T1 ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", -1, 12, -1,
    CK_EFORMAT, CK_EFORMAT, "overlapping" },
  { "a gap", T1 ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", -1, 20, -1, CK_EFORMAT,
    CK_EFORMAT, "gap" },
  { "not starting at 0", "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,3]}}", -1, 3, -1, CK_EFORMAT,
    CK_EFORMAT, "gap" },
  { "wrong size", "{\"a.b\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", -1, 12, -1, CK_EFORMAT,
    CK_EFORMAT, "tensor \"a.b\": data_offsets [0, 12] hold 12 bytes, dtype F32 shape [2, 2] needs 16" },
  { "end before begin", "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[3,0]}}", -1, 0, -1, CK_EFORMAT,
    CK_EFORMAT, "end before" },
  { "offsets past 2^64", "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,18446744073709551616]}}", -1, 0,
    -1, CK_EFORMAT, CK_EFORMAT, NULL },
  { "unknown dtype", "{\"a\":{\"dtype\":\"C64\",\"shape\":[1],\"data_offsets\":[0,8]}}", -1, 8, -1, CK_EUNSUP,
    CK_EUNSUP, "dtype \"C64\"" },
  { "dtype not a string", "{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", -1, 4, -1, CK_EFORMAT,
    CK_EFORMAT, NULL },
  { "negative dimension", "{\"a\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,0]}}", -1, 0, -1, CK_EFORMAT,
    CK_EFORMAT, "non-negative" },
  { "fractional dimension", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1.0],\"data_offsets\":[0,1]}}", -1, 1, -1,
    CK_EFORMAT, CK_EFORMAT, NULL },
  { "element count overflow",
    "{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", -1, 0, -1, CK_EFORMAT,
    CK_EFORMAT, "overflows" },
  { "byte size overflow", "{\"a\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}}", -1, 0,
    -1, CK_EFORMAT, CK_EFORMAT, "overflows" },
  { "missing field", "{\"a\":{\"dtype\":\"U8\",\"shape\":[0]}}", -1, 0, -1, CK_EFORMAT, CK_EFORMAT, "lacks" },
  { "extra field", "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0],\"x\":1}}", -1, 0, -1, CK_EFORMAT,
    CK_EFORMAT, "other than" },
  { "a field twice", "{\"a\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}", -1, 0, -1,
    CK_EFORMAT, CK_EFORMAT, "twice" },
  { "duplicate tensor names", T1 ",\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", -1, 16, -1,
    CK_EFORMAT, CK_EFORMAT, "appears twice" },
  { "duplicate names once unescaped", T1 ",\"\\u0061\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", -1,
    16, -1, CK_EFORMAT, CK_EFORMAT, "appears twice" },
  { "a NUL in a name", "{\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}", -1, 0, -1,
    CK_EFORMAT, CK_EFORMAT, "NUL" },
  { "invalid UTF-8", "{\"\xff\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}", -1, 0, -1, CK_EFORMAT,
    CK_EFORMAT, NULL },
  { "non-string metadata", "{\"__metadata__\":{\"step\":1}}", -1, 0, -1, CK_EFORMAT, CK_EFORMAT, "not a string" },
  { "metadata not an object", "{\"__metadata__\":[\"a\"]}", -1, 0, -1, CK_EFORMAT, CK_EFORMAT, NULL },
  { "metadata twice", "{\"__metadata__\":{},\"__metadata__\":{}}", -1, 0, -1, CK_EFORMAT, CK_EFORMAT, "twice" },
  { "duplicate metadata keys", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", -1, 0, -1, CK_EFORMAT, CK_EFORMAT,
    "appears twice" },
  { "metadata null", "{\"__metadata__\":null}", -1, 0, -1, 0, 0, NULL },
  { "a tensor not an object", "{\"a\":[1]}", -1, 0, -1, CK_EFORMAT, CK_EFORMAT, "not an object" },
  { "deep nesting", "{\"a\":{\"dtype\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}",
    -1, 0, -1, CK_ELIMIT, CK_ELIMIT, NULL },
  { "a bad value kind", "{\"__metadata__\":{\"s\":\"x\",\"__ckptd_values__\":\"{\\\"s\\\":\\\"int\\\"}\"}}", -1, 0,
    -1, CK_EFORMAT, 0, "kind int" }, /* the probe reads no values */
  { "a value list not an object", "{\"__metadata__\":{\"__ckptd_values__\":\"[]\"}}", -1, 0, -1, CK_EFORMAT, 0,
    NULL },
};

static void write_hostile(const char *path, const struct hostile *h)
{
  size_t jl = strlen(h->json);
  uint64_t n = h->n < 0 ? jl : (uint64_t)h->n;
  size_t total = 8 + jl + h->data;
  uint8_t *d = calloc(1, total + 1);

  for (int i = 0; i < 8; i++)
    d[i] = (uint8_t)(n >> (8 * i));
  memcpy(d + 8, h->json, jl);
  tu_write_file(path, d, h->size >= 0 ? (size_t)h->size : total - (size_t)(-1 - h->size));
  free(d);
}

static void hostile_headers(const char *dir)
{
  char path[4200];

  snprintf(path, sizeof(path), "%s/hostile.safetensors", dir);
  for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
    const struct hostile *h = &hostile[i];
    struct ck_source *s = NULL;
    struct ck_err err = { 0 }, perr = { 0 };
    int rc, prc;
    write_hostile(path, h);
    rc = ck_st_source_open(path, 1 << 20, &s, &err);
    prc = ck_st_probe(path, &perr);
    ok(rc == h->code && prc == h->probe && (rc == 0 || (s == NULL && strncmp(err.msg, path, strlen(path)) == 0)) &&
       (h->msg == NULL || strstr(err.msg, h->msg) != NULL),
       "hostile: %s: source %d, probe %d (%s)", h->what, rc, prc, err.msg);
    if (s)
      s->ops->close(s);
  }
  unlink(path);
}

/* A file ckptd did not write: every metadata key is a string value, __spec__ aside. */
static void foreign_metadata(const char *dir)
{
  static const struct hostile h = { "foreign", "{\"__metadata__\":{\"format\":\"pt\",\"lr\":\"0.1\",\"__spec__\":\"[1]\"}}",
                                    -1, 0, -1, 0, 0, NULL };
  struct ck_source *s = NULL;
  char path[4200];
  int rc;

  snprintf(path, sizeof(path), "%s/foreign-meta.safetensors", dir);
  write_hostile(path, &h);
  rc = ck_st_source_open(path, 1 << 20, &s, NULL);
  ok(rc == 0 && s->count == 0 && s->nvalues == 2 && s->values[0].kind == CK_VAL_STR &&
     strcmp(s->values[0].name, "format") == 0 && strcmp(s->values[0].s, "pt") == 0 &&
     s->values[1].kind == CK_VAL_STR && strcmp(s->values[1].s, "0.1") == 0 && s->spec && strcmp(s->spec, "[1]") == 0,
     "a foreign file's metadata: string values (format too) and the spec");
  if (s)
    s->ops->close(s);
  unlink(path);
}

/* The budget caps tokens: a header of many small tensors needs more than a tiny budget gives. */
static void budget_cap(const char *dir)
{
  struct ck_sbuf b = { 0 };
  struct ck_st_header h;
  struct ck_err err = { 0 };
  int rc;

  (void)dir;
  ck_sbuf_add(&b, "{", 1);
  for (int i = 0; i < 2000; i++)
    ck_sbuf_addf(&b, "%s\"t%d\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[%d,%d]}", i ? "," : "", i, i, i + 1);
  ck_sbuf_add(&b, "}", 1);
  rc = ck_st_header_parse(b.p, b.len, 2000, 1 << 20, "many", &h, &err);
  ok(rc == 0 && h.n == 2000 && h.t[1999].begin == 1999, "2000 tensors parse within a 1 MiB budget");
  ck_st_header_free(&h);
  rc = ck_st_header_parse(b.p, b.len, 2000, 1000, "many", &h, &err);
  ok(rc == CK_ELIMIT, "and a tiny budget refuses them: %s", err.msg);
  free(b.p);
}

/* ---- --write FILE: a file and its expectations for st_oracle.py ---- */

static void expect_tensor(FILE *f, const struct mem_tensor *t)
{
  fprintf(f, "  {\"name\": ");
  {
    struct ck_sbuf b = { 0 };
    ck_sbuf_json_str(&b, t->name, strlen(t->name));
    fprintf(f, "%s", b.p);
    free(b.p);
  }
  fprintf(f, ", \"dtype\": \"%s\", \"shape\": [", ck_st_dtype_name(t->dtype));
  for (int d = 0; d < t->rank; d++)
    fprintf(f, "%s%lld", d ? ", " : "", (long long)t->dims[d]);
  fprintf(f, "], \"hex\": \"");
  for (uint64_t k = 0; k < t->nbytes; k++)
    fprintf(f, "%02x", t->data[k]);
  fprintf(f, "\", \"values\": [");
  for (uint64_t k = 0; k < t->nelem; k++) {
    if (t->dtype == CK_DT_BOOL)
      fprintf(f, "%s%s", k ? ", " : "", k % 3 == 0 ? "true" : "false");
    else if (t->dtype == CK_DT_DOUBLE || t->dtype == CK_DT_FLOAT || t->dtype == CK_DT_HALF ||
             t->dtype == CK_DT_BFLOAT16)
      fprintf(f, "%s%g", k ? ", " : "", elem(k));
    else if (ck_dtype_size(t->dtype) > 1 || t->dtype == CK_DT_INT8 || t->dtype == CK_DT_UINT8)
      fprintf(f, "%s%lld", k ? ", " : "", (long long)(k * 37) - 50); /* the oracle wraps to the dtype */
  }
  fprintf(f, "]}");
}

static int write_demo(const char *path)
{
  struct mem_source ms;
  size_t sel[NDEMO];
  struct ck_err err = { 0 };
  char epath[4200];
  FILE *f;

  demo_source(&ms, sel);
  unlink(path);
  if (run_sink(path, &ms.base, sel, NDEMO, NULL, &err) != 0) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  snprintf(epath, sizeof(epath), "%s.expect.json", path);
  if ((f = fopen(epath, "w")) == NULL)
    return 1;
  fprintf(f, "{\"tensors\": [\n");
  for (size_t j = 0; j < NDEMO; j++) {
    expect_tensor(f, &demo_tensors[sel[j]]);
    fprintf(f, "%s\n", j + 1 < NDEMO ? "," : "");
  }
  fprintf(f, "], \"metadata\": {\"step\": \"-9007199254740993\", \"optimizer.lr\": \"0.1\", \"optimizer.nan\": \"NaN\","
             " \"optimizer.inf\": \"-Infinity\", \"flag\": \"true\", \"nothing\": \"null\","
             " \"note\": \"a \\\"quoted\\\"\\nstring \\u00e9\", \"digits\": \"42\", \"format\": \"pt\"}}\n");
  return fclose(f) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
  char *dir, path[4200];

  if (argc == 3 && strcmp(argv[1], "--write") == 0)
    return write_demo(argv[2]);
  dir = tu_tmpdir();
  round_trip(dir);
  snprintf(path, sizeof(path), "%s/rt.safetensors", dir);
  unlink(path);
  sink_refusals(dir);
  sink_failure(dir, "a string tensor", CK_DT_STRING, 0, 0, CK_EINVAL);
  sink_failure(dir, "a complex tensor", CK_DT_COMPLEX64, 0, 0, CK_EINVAL);
  sink_failure(dir, "a size its dtype and shape do not give", CK_DT_FLOAT, 4, 0, CK_EINVAL);
  sink_failure(dir, "a tensor streams more bytes than announced", CK_DT_FLOAT, 0, 3, CK_EINVAL);
  sink_failure(dir, "a tensor streams fewer bytes than announced", CK_DT_FLOAT, 0, -3, CK_EINVAL);
  sink_keep_foreign(dir);
  hostile_headers(dir);
  foreign_metadata(dir);
  budget_cap(dir);
  for (size_t i = 0; i < NDEMO; i++)
    free(demo_tensors[i].data);
  tu_rmtree(dir);
  free(dir);
  return tap_done();
}
