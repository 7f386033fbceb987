/* Bundle writer: rewriting the fixtures (byte-identical where TensorFlow's own writer
 * would be), every dtype, strings, zero-size and scalar tensors, partitioned
 * variables, several shards, empty bundles, atomicity of finish and abort. */
#include "config.h"

#include <dirent.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bundle.h"
#include "convert.h"
#include "ckptstate.h"
#include "dtype.h"
#include "synth.h"
#include "tap.h"
#include "testutil.h"

#define BUF (1 << 16)

struct copy_ctx {
  struct ck_bundle_writer *w;
  struct ck_err *err;
};

static int copy_chunk(void *ctx, const void *data, size_t len)
{
  struct copy_ctx *c = ctx;

  return ck_bundle_writer_append(c->w, data, len, c->err);
}

struct shard_map {
  const struct ck_bundle *src;
};

static int same_shard(void *ctx, const uint8_t *key, size_t klen)
{
  struct shard_map *m = ctx;
  const struct ck_entry *e = ck_bundle_find(m->src, key, klen);

  return e ? e->shard : 0;
}

/* Copy every data entry in data order, keeping shard assignment. */
static int rewrite(struct ck_bundle *src, const char *prefix, struct ck_err *err)
{
  struct shard_map map = { src };
  struct ck_bundle_writer_opts o = { .shard_of = same_shard, .shard_ctx = &map };
  struct ck_bundle_writer *w;
  struct copy_ctx c;
  uint8_t *buf = malloc(BUF);
  int rc = ck_bundle_writer_open(prefix, &o, &w, err);

  c.w = w;
  c.err = err;
  for (size_t i = 0; rc == 0 && i < ck_bundle_data_count(src); i++) {
    const struct ck_entry *e = ck_bundle_data_entry(src, i);
    if (e->is_slice)
      rc = ck_bundle_writer_begin_slice(w, e->full->key, e->full->key_len, e->dtype, e->full->rank,
                                        e->full->dims, e->slice.start, e->slice.length, err);
    else
      rc = ck_bundle_writer_begin(w, e->key, e->key_len, e->dtype, e->rank, e->dims, err);
    if (rc == 0)
      rc = ck_bundle_stream(src, e, buf, BUF, copy_chunk, &c, err);
    if (rc == 0)
      rc = ck_bundle_writer_end(w, err);
  }
  free(buf);
  if (rc != 0) {
    ck_bundle_writer_abort(w);
    return rc;
  }
  return ck_bundle_writer_finish(w, err);
}

/* Compare entries and stored bytes of two bundles. */
static int same_entries(struct ck_bundle *a, struct ck_bundle *b)
{
  uint8_t *ba = malloc(BUF), *bb = malloc(BUF);
  int same = ck_bundle_count(a) == ck_bundle_count(b);

  for (size_t i = 0; same && i < ck_bundle_count(a); i++) {
    const struct ck_entry *x = ck_bundle_entry(a, i), *y = ck_bundle_entry(b, i);
    same = x->key_len == y->key_len && memcmp(x->key, y->key, x->key_len) == 0 && x->dtype == y->dtype &&
           x->rank == y->rank && memcmp(x->dims, y->dims, sizeof(int64_t) * (size_t)x->rank) == 0 &&
           x->size == y->size && x->crc32c == y->crc32c && x->nslices == y->nslices;
    for (uint64_t off = 0; same && !x->nslices && off < x->size; off += BUF) {
      size_t n = x->size - off < BUF ? (size_t)(x->size - off) : BUF;
      same = ck_bundle_read(a, x, off, ba, n, NULL) == 0 && ck_bundle_read(b, y, off, bb, n, NULL) == 0 &&
             memcmp(ba, bb, n) == 0;
    }
  }
  free(ba);
  free(bb);
  return same;
}

static int only_final_files(const char *dir)
{
  DIR *d = opendir(dir);
  struct dirent *de;
  int clean = 1;

  while (d && (de = readdir(d)) != NULL)
    if (strstr(de->d_name, "ckptd-tmp"))
      clean = 0;
  if (d)
    closedir(d);
  return clean;
}

static void rewrite_fixtures(const char *fx, const char *tmp)
{
  DIR *d = opendir(fx);
  struct dirent *de;
  int identical = 0, equal = 0;

  while ((de = readdir(d)) != NULL) {
    char path[4200], out[4200], a[4300], bpath[4300];
    struct ck_bundle *src, *dst;
    struct ck_err err = { 0 };
    unsigned blocks, snappy;
    if (de->d_name[0] == '.' || strcmp(de->d_name, "swift_index_only") == 0 ||
        strcmp(de->d_name, "serving_bad_half_plus_two_statefile") == 0)
      continue;
    snprintf(path, sizeof(path), "%s/%s", fx, de->d_name);
    if (ck_bundle_open(path, 0, &src, &err) != 0)
      continue; /* not a checkpoint directory (MANIFEST.tsv, SOURCES.md) */
    {
      const char *base = strrchr(ck_bundle_prefix(src), '/') + 1;
      snprintf(out, sizeof(out), "%s/%s", tmp, de->d_name);
      mkdir(out, 0755);
      snprintf(out, sizeof(out), "%s/%s/%s", tmp, de->d_name, base);
    }
    if (!ok(rewrite(src, out, &err) == 0, "%s: rewritten", de->d_name)) {
      printf("# %s\n", err.msg);
      ck_bundle_close(src);
      continue;
    }
    ck_bundle_index_stats(src, &blocks, &snappy);
    if (ck_bundle_num_shards(src) == 1 && snappy == 0) {
      snprintf(a, sizeof(a), "%s.index", ck_bundle_prefix(src));
      snprintf(bpath, sizeof(bpath), "%s.index", out);
      int idx = tu_files_equal(a, bpath);
      snprintf(a, sizeof(a), "%s.data-00000-of-00001", ck_bundle_prefix(src));
      snprintf(bpath, sizeof(bpath), "%s.data-00000-of-00001", out);
      ok(idx && tu_files_equal(a, bpath), "%s: .index and .data byte-identical", de->d_name);
      identical++;
    }
    ok(ck_bundle_open(out, 0, &dst, &err) == 0 && same_entries(src, dst),
       "%s: rewritten bundle has equal entries and bytes", de->d_name);
    equal++;
    ck_bundle_close(dst);
    ck_bundle_close(src);
  }
  closedir(d);
  ok(identical >= 20 && equal >= 30, "%d fixtures byte-identical, %d equal entry by entry", identical, equal);
}

static void all_dtypes(const char *tmp)
{
  static const int types[] = { CK_DT_FLOAT, CK_DT_DOUBLE, CK_DT_INT8, CK_DT_INT16, CK_DT_INT32, CK_DT_INT64,
                               CK_DT_UINT8, CK_DT_UINT16, CK_DT_UINT32, CK_DT_UINT64, CK_DT_BOOL, CK_DT_HALF,
                               CK_DT_BFLOAT16, CK_DT_COMPLEX64, CK_DT_COMPLEX128 };
  size_t nt = sizeof(types) / sizeof(types[0]);
  char prefix[4200];
  struct ck_bundle_writer *w;
  struct ck_bundle *b;
  struct ck_err err = { 0 };
  uint8_t data[3 * 5 * 16], got[sizeof(data)];
  int64_t dims[2] = { 3, 5 };
  int rc = 0, good = 0;

  snprintf(prefix, sizeof(prefix), "%s/dtypes", tmp);
  mkdir(prefix, 0755);
  snprintf(prefix, sizeof(prefix), "%s/dtypes/model.ckpt-1", tmp);
  rc = ck_bundle_writer_open(prefix, NULL, &w, &err);
  for (size_t i = 0; rc == 0 && i < nt; i++) {
    char key[32];
    size_t n = 15 * ck_dtype_size(types[i]);
    snprintf(key, sizeof(key), "t/%s", ck_dtype_name(types[i]));
    ck_synth_fill(data, n, 42, i, 0);
    if (types[i] == CK_DT_BOOL)
      for (size_t k = 0; k < n; k++)
        data[k] &= 1;
    rc = ck_bundle_writer_add(w, key, strlen(key), types[i], 2, dims, data, n, &err);
  }
  ok(rc == 0 && ck_bundle_writer_finish(w, &err) == 0, "%zu dtypes written %s", nt, err.msg);
  ok(ck_bundle_open(prefix, 0, &b, &err) == 0, "read back");
  for (size_t i = 0; b && i < nt; i++) {
    char key[32];
    size_t n = 15 * ck_dtype_size(types[i]);
    const struct ck_entry *e;
    snprintf(key, sizeof(key), "t/%s", ck_dtype_name(types[i]));
    e = ck_bundle_find(b, key, strlen(key));
    ck_synth_fill(data, n, 42, i, 0);
    if (types[i] == CK_DT_BOOL)
      for (size_t k = 0; k < n; k++)
        data[k] &= 1;
    if (e && e->dtype == types[i] && e->rank == 2 && e->dims[0] == 3 && e->dims[1] == 5 && e->size == n &&
        ck_bundle_verify(b, e, got, sizeof(got), &err) == 0 && ck_bundle_read(b, e, 0, got, n, &err) == 0 &&
        memcmp(got, data, n) == 0)
      good++;
    else
      printf("# %s differs\n", key);
  }
  ok(good == (int)nt, "all %zu fixed-size dtypes read back equal, checksums verify", nt);
  ck_bundle_close(b);
}

static void strings_and_shapes(const char *tmp)
{
  char prefix[4200];
  struct ck_bundle_writer *w;
  struct ck_bundle *b = NULL;
  struct ck_err err = { 0 };
  size_t big = 300000, enclen;
  uint8_t *long_str = malloc(big), *enc;
  const uint8_t *strs[4] = { (const uint8_t *)"", long_str, (const uint8_t *)"\xff\xfe\x00\x80", (const uint8_t *)"ok" };
  size_t lens[4] = { 0, big, 4, 2 };
  int64_t sdims[1] = { 4 }, zdims[2] = { 0, 7 }, one = 1;
  float scalar = 3.5f;
  int rc;

  for (size_t i = 0; i < big; i++)
    long_str[i] = (uint8_t)(i * 31 + 7);
  snprintf(prefix, sizeof(prefix), "%s/strings", tmp);
  rc = ck_bundle_writer_open(prefix, NULL, &w, &err);
  ck_tf_strings_encode(strs, lens, 4, &enc, &enclen);
  rc |= ck_bundle_writer_add(w, "s/vec", 5, CK_DT_STRING, 1, sdims, enc, enclen, &err);
  free(enc);
  ck_tf_strings_encode(strs + 3, lens + 3, 1, &enc, &enclen);
  rc |= ck_bundle_writer_add(w, "s/scalar", 8, CK_DT_STRING, 0, NULL, enc, enclen, &err);
  free(enc);
  ck_tf_strings_encode(NULL, NULL, 0, &enc, &enclen);
  rc |= ck_bundle_writer_add(w, "s/empty", 7, CK_DT_STRING, 1, (int64_t[]){ 0 }, enc, enclen, &err);
  free(enc);
  rc |= ck_bundle_writer_add(w, "zero", 4, CK_DT_FLOAT, 2, zdims, NULL, 0, &err);
  rc |= ck_bundle_writer_add(w, "scalar", 6, CK_DT_FLOAT, 0, NULL, &scalar, 4, &err);
  rc |= ck_bundle_writer_add(w, "one", 3, CK_DT_FLOAT, 1, &one, &scalar, 4, &err);
  ok(rc == 0 && ck_bundle_writer_finish(w, &err) == 0, "strings, zero-size and scalar tensors written %s", err.msg);
  ok(ck_bundle_open(prefix, 0, &b, &err) == 0, "read back %s", err.msg);
  if (b) {
    const struct ck_entry *v = ck_bundle_find(b, "s/vec", 5), *z = ck_bundle_find(b, "zero", 4);
    const struct ck_entry *s = ck_bundle_find(b, "scalar", 6), *e = ck_bundle_find(b, "s/empty", 7);
    uint8_t *got = malloc(v ? v->size : 1);
    float f = 0;
    int verified = 1;
    for (size_t i = 0; i < ck_bundle_data_count(b); i++)
      verified &= ck_bundle_verify(b, ck_bundle_data_entry(b, i), got, 1000, &err) == 0;
    ok(verified, "string checksums verify through a 1000-byte buffer");
    ok(v && v->nelem == 4 && ck_bundle_read(b, v, 0, got, v->size, NULL) == 0 &&
       memcmp(got + v->size - 2, "ok", 2) == 0 && memcmp(got + v->size - 6, "\xff\xfe\x00\x80", 4) == 0 &&
       memcmp(got + v->size - 6 - big, long_str, big) == 0,
       "string vector (empty, 300 KB, non-UTF-8 with NUL, short) stored as TensorFlow lays it out");
    ok(z && z->size == 0 && z->rank == 2 && z->dims[0] == 0 && z->dims[1] == 7, "zero-size tensor keeps its shape");
    ok(s && s->rank == 0 && ck_bundle_read(b, s, 0, &f, 4, NULL) == 0 && f == 3.5f, "scalar reads back 3.5");
    ok(e && e->size == 4 && e->nelem == 0, "empty string vector stores only its 4-byte length checksum");
    free(got);
  }
  ck_bundle_close(b);
  free(long_str);
}

static void partitioned(const char *tmp)
{
  char prefix[4200];
  struct ck_bundle_writer *w;
  struct ck_bundle *b = NULL;
  struct ck_err err = { 0 };
  int64_t dims[2] = { 6, 4 };
  int32_t full[24], got[24];
  int rc;

  for (int i = 0; i < 24; i++)
    full[i] = i * 10;
  snprintf(prefix, sizeof(prefix), "%s/part", tmp);
  rc = ck_bundle_writer_open(prefix, NULL, &w, &err);
  /* rows 0-1 and 4-5 along dim 0; rows 2-3 split along dim 1 into two slices */
  {
    int64_t s1[2] = { 0, 0 }, l1[2] = { 2, -1 };
    int64_t s2[2] = { 4, 0 }, l2[2] = { 2, -1 };
    int64_t s3[2] = { 2, 0 }, l3[2] = { 2, 3 };
    int64_t s4[2] = { 2, 3 }, l4[2] = { 2, 1 };
    int32_t p3[6] = { 80, 90, 100, 120, 130, 140 }, p4[2] = { 110, 150 };
    rc |= ck_bundle_writer_begin_slice(w, "emb", 3, CK_DT_INT32, 2, dims, s1, l1, &err);
    rc |= ck_bundle_writer_append(w, full, 32, &err) | ck_bundle_writer_end(w, &err);
    rc |= ck_bundle_writer_begin_slice(w, "emb", 3, CK_DT_INT32, 2, dims, s2, l2, &err);
    rc |= ck_bundle_writer_append(w, full + 16, 32, &err) | ck_bundle_writer_end(w, &err);
    rc |= ck_bundle_writer_begin_slice(w, "emb", 3, CK_DT_INT32, 2, dims, s3, l3, &err);
    rc |= ck_bundle_writer_append(w, p3, sizeof(p3), &err) | ck_bundle_writer_end(w, &err);
    rc |= ck_bundle_writer_begin_slice(w, "emb", 3, CK_DT_INT32, 2, dims, s4, l4, &err);
    rc |= ck_bundle_writer_append(w, p4, sizeof(p4), &err) | ck_bundle_writer_end(w, &err);
    /* a slice covering the whole tensor becomes a plain entry */
    int64_t s5[1] = { 0 }, l5[1] = { -1 }, d5[1] = { 2 };
    rc |= ck_bundle_writer_begin_slice(w, "bias", 4, CK_DT_INT32, 1, d5, s5, l5, &err);
    rc |= ck_bundle_writer_append(w, full, 8, &err) | ck_bundle_writer_end(w, &err);
  }
  ok(rc == 0 && ck_bundle_writer_finish(w, &err) == 0, "partitioned variable written as 4 slices %s", err.msg);
  ok(ck_bundle_open(prefix, 0, &b, &err) == 0, "read back %s", err.msg);
  if (b) {
    const struct ck_entry *e = ck_bundle_find(b, "emb", 3), *bias = ck_bundle_find(b, "bias", 4);
    struct tu_collect c = { (uint8_t *)got, 0 };
    uint8_t small[16];
    ok(ck_bundle_count(b) == 6, "index holds the variable, its 4 slices and bias (%zu)", ck_bundle_count(b));
    ok(e && e->nslices == 4 && e->size == 0, "partitioned entry lists 4 slices and holds no data");
    ok(bias && bias->nslices == 0 && bias->size == 8, "whole-tensor slice stored as a plain entry");
    ok(e && ck_bundle_stream_tensor(b, e, small, sizeof(small), tu_collect_chunk, &c, &err) == 0 && c.len == 96 &&
       memcmp(got, full, 96) == 0, "assembled through a 16-byte buffer, row-major and equal %s", err.msg);
    if (ck_bundle_count(b) > 0) {
      const struct ck_entry *s = ck_bundle_entry(b, 0);
      char key[256];
      ck_entry_key_str(s, key, sizeof(key));
      ok(s->is_slice && s->key[0] == 0 && strncmp(key, "emb[", 4) == 0, "slice keys are OrderedCode, first in order (%s)", key);
    }
  }
  ck_bundle_close(b);
}


/* An empty tensor shares its offset with the tensor added after it: TensorFlow wrote
 * it first, so data order (and a TF -> HDF5 -> TF round trip) must keep it first. */
static void empty_tensor_order(const char *tmp)
{
  char prefix[4200], h5[4300], back[4300], a[4400], b[4400];
  struct ck_bundle_writer *w;
  struct ck_bundle *bu = NULL;
  struct ck_err err = { 0 };
  int64_t d2 = 2, d1 = 1, dz[2] = { 0, 3 };
  float f[2] = { 1, 2 };
  int rc;

  snprintf(prefix, sizeof(prefix), "%s/empty", tmp);
  rc = ck_bundle_writer_open(prefix, NULL, &w, &err);
  rc |= ck_bundle_writer_add(w, "b", 1, CK_DT_FLOAT, 1, &d2, f, 8, &err);
  rc |= ck_bundle_writer_add(w, "z", 1, CK_DT_FLOAT, 2, dz, NULL, 0, &err);
  rc |= ck_bundle_writer_add(w, "a", 1, CK_DT_FLOAT, 1, &d1, f, 4, &err);
  rc |= ck_bundle_writer_add(w, "y", 1, CK_DT_FLOAT, 2, dz, NULL, 0, &err);
  ok(rc == 0 && ck_bundle_writer_finish(w, &err) == 0, "b, empty z, a, empty y written in that order %s", err.msg);
  ok(ck_bundle_open(prefix, 0, &bu, &err) == 0 && ck_bundle_data_count(bu) == 4, "read back %s", err.msg);
  if (bu) {
    char order[8] = { 0 };
    for (size_t i = 0; i < 4; i++)
      order[i] = (char)ck_bundle_data_entry(bu, i)->key[0];
    ok(strcmp(order, "bzay") == 0 && ck_bundle_find(bu, "z", 1)->offset == 8 && ck_bundle_find(bu, "a", 1)->offset == 8,
       "data order puts the empty tensor before the one sharing its offset: %s", order);
  }
  ck_bundle_close(bu);
  snprintf(h5, sizeof(h5), "%s.h5", prefix);
  snprintf(back, sizeof(back), "%s/emptyback", tmp);
  rc = ck_convert_tf_to_h5(prefix, h5, &(struct ck_convert_opts){ .buffer_size = 4096 }, NULL, &err);
  if (rc == 0)
    rc = ck_convert_h5_to_tf(h5, back, &(struct ck_convert_opts){ .buffer_size = 4096, .no_checkpoint_file = 1 },
                             NULL, &err);
  snprintf(a, sizeof(a), "%s.index", prefix);
  snprintf(b, sizeof(b), "%s.index", back);
  ok(rc == 0 && tu_files_equal(a, b), "TF -> HDF5 -> TF with empty tensors: .index byte-identical %s", err.msg);
}


static double now_s(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A variable partitioned on its last axis into 30,000 one-column slices: 240,000
 * runs of one element. Assembly used to scan every slice per run (minutes); now it
 * is a heap merge, well under the bound even with sanitizers. */
static void many_slices(const char *tmp)
{
  enum { ROWS = 8, COLS = 30000 };
  char prefix[4200];
  struct ck_bundle_writer *w;
  struct ck_bundle *b = NULL;
  struct ck_err err = { 0 };
  int64_t dims[2] = { ROWS, COLS };
  float col[ROWS], *got = malloc(sizeof(float) * ROWS * COLS);
  uint8_t buf[4096];
  double t0, dt;
  int rc, same;

  snprintf(prefix, sizeof(prefix), "%s/lastaxis", tmp);
  rc = ck_bundle_writer_open(prefix, NULL, &w, &err);
  for (int64_t j = 0; rc == 0 && j < COLS; j++) {
    int64_t start[2] = { 0, j }, len[2] = { -1, 1 };
    for (int i = 0; i < ROWS; i++)
      col[i] = (float)(i * COLS + j);
    rc = ck_bundle_writer_begin_slice(w, "emb", 3, CK_DT_FLOAT, 2, dims, start, len, &err);
    rc = rc ? rc : ck_bundle_writer_append(w, col, sizeof(col), &err);
    rc = rc ? rc : ck_bundle_writer_end(w, &err);
  }
  ok(rc == 0 && ck_bundle_writer_finish(w, &err) == 0, "30,000 last-axis slices written %s", err.msg);
  t0 = now_s();
  rc = ck_bundle_open(prefix, 0, &b, &err);
  if (rc == 0) {
    struct tu_collect c = { (uint8_t *)got, 0 };
    rc = ck_bundle_stream_tensor(b, ck_bundle_find(b, "emb", 3), buf, sizeof(buf), tu_collect_chunk, &c, &err);
    same = rc == 0 && c.len == sizeof(float) * ROWS * COLS;
    for (size_t i = 0; same && i < (size_t)ROWS * COLS; i++)
      same = got[i] == (float)i;
    ok(same, "assembled row-major and equal %s", err.msg);
  }
  dt = now_s() - t0;
  ok(rc == 0 && dt < 20, "open and assembly take %.2f s (bound 20 s)", dt);
  ck_bundle_close(b);
  free(got);
}

static int by_name(void *ctx, const uint8_t *key, size_t klen)
{
  (void)ctx;
  return klen > 0 && key[0] == 'b' ? 1 : 0;
}

static void shards_and_atomicity(const char *tmp)
{
  char prefix[4200], path[4300], dir[4200];
  struct ck_synth_opts so = { .total_bytes = 4 << 20, .tensors = 40, .spread = 10, .seed = 3,
                              .max_shard_bytes = 1 << 20 };
  struct ck_bundle *b = NULL;
  struct ck_err err = { 0 };
  struct ck_bundle_writer *w;
  struct ck_bundle_writer_opts o = { .shard_of = by_name };
  float v = 1;
  int rc;

  snprintf(dir, sizeof(dir), "%s/shards", tmp);
  mkdir(dir, 0755);
  snprintf(prefix, sizeof(prefix), "%s/model.ckpt-5", dir);
  ok(ck_synth_tf(prefix, &so, &err) == 0, "4 MiB in 1 MiB shards written %s", err.msg);
  ok(ck_bundle_open(prefix, 0, &b, &err) == 0 && ck_bundle_num_shards(b) >= 4, "read back with %d shards",
     b ? ck_bundle_num_shards(b) : 0);
  if (b) {
    int rc2 = 0;
    uint8_t *buf = malloc(BUF);
    for (size_t i = 0; i < ck_bundle_data_count(b) && rc2 == 0; i++)
      rc2 = ck_bundle_verify(b, ck_bundle_data_entry(b, i), buf, BUF, &err);
    ok(rc2 == 0, "every tensor verifies across shards");
    free(buf);
  }
  ck_bundle_close(b);
  ok(only_final_files(dir), "no temporaries left after finish");

  snprintf(prefix, sizeof(prefix), "%s/rule", dir);
  rc = ck_bundle_writer_open(prefix, &o, &w, &err);
  rc |= ck_bundle_writer_add(w, "a", 1, CK_DT_FLOAT, 0, NULL, &v, 4, &err);
  rc |= ck_bundle_writer_add(w, "b", 1, CK_DT_FLOAT, 0, NULL, &v, 4, &err);
  rc |= ck_bundle_writer_add(w, "c", 1, CK_DT_FLOAT, 0, NULL, &v, 4, &err);
  ok(rc == 0 && ck_bundle_writer_finish(w, &err) == 0, "name-to-shard rule written");
  ok(ck_bundle_open(prefix, 0, &b, &err) == 0 && ck_bundle_num_shards(b) == 2 &&
     ck_bundle_find(b, "b", 1)->shard == 1 && ck_bundle_find(b, "c", 1)->shard == 0 &&
     ck_bundle_find(b, "c", 1)->offset == 4, "rule put b in shard 1, a and c in shard 0");
  ck_bundle_close(b);

  /* abort leaves nothing */
  snprintf(dir, sizeof(dir), "%s/aborted", tmp);
  mkdir(dir, 0755);
  snprintf(prefix, sizeof(prefix), "%s/x", dir);
  ck_bundle_writer_open(prefix, NULL, &w, &err);
  ck_bundle_writer_add(w, "a", 1, CK_DT_FLOAT, 0, NULL, &v, 4, &err);
  ck_bundle_writer_abort(w);
  ok(tu_count_dir(dir) == 0, "abort removes every temporary");
  /* a size that disagrees with dtype and shape fails, and finish then leaves nothing */
  ck_bundle_writer_open(prefix, NULL, &w, &err);
  rc = ck_bundle_writer_add(w, "a", 1, CK_DT_DOUBLE, 0, NULL, &v, 4, &err);
  ok(rc != 0 && strstr(err.msg, "need 8"), "short tensor refused: %s", err.msg);
  ok(ck_bundle_writer_finish(w, &err) != 0 && tu_count_dir(dir) == 0, "finish after a failure publishes nothing");

  /* empty bundle: one empty data file, as TensorFlow writes it */
  snprintf(prefix, sizeof(prefix), "%s/empty", dir);
  ck_bundle_writer_open(prefix, NULL, &w, &err);
  ok(ck_bundle_writer_finish(w, &err) == 0 && ck_bundle_open(prefix, 0, &b, &err) == 0 &&
     ck_bundle_count(b) == 0 && ck_bundle_num_shards(b) == 1, "empty bundle round-trips");
  ck_bundle_close(b);
  snprintf(path, sizeof(path), "%s.data-00000-of-00001", prefix);
  ok(access(path, F_OK) == 0, "empty bundle has its data file");
}

int main(void)
{
  const char *fx = tap_fixtures();
  char *tmp = tu_tmpdir();

  if (fx)
    rewrite_fixtures(fx, tmp);
  all_dtypes(tmp);
  strings_and_shapes(tmp);
  partitioned(tmp);
  empty_tensor_order(tmp);
  many_slices(tmp);
  shards_and_atomicity(tmp);
  tu_rmtree(tmp);
  free(tmp);
  return tap_done();
}
