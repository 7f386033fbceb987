/* Bad input: each corruption gives an error that names the file and the fault,
 * with no crash and no leak (the sanitizer build checks the latter). */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bundle.h"
#include "crc32c.h"
#include "coding.h"
#include "dtype.h"
#include "ordered_code.h"
#include "table.h"
#include "tap.h"
#include "tensor_bundle.pb-c.h"
#include "testutil.h"

static char *dir;
static char good[4200];

/* A two-shard bundle with floats and a string vector. */
static void make_good(void)
{
  struct ck_bundle_writer_opts o = { .max_shard_bytes = 64 };
  struct ck_bundle_writer *w;
  struct ck_err err = { 0 };
  float f[16] = { 1, 2, 3 };
  const uint8_t *s[2] = { (const uint8_t *)"alpha", (const uint8_t *)"beta" };
  size_t l[2] = { 5, 4 }, enclen;
  uint8_t *enc;
  int64_t d16 = 16, d2 = 2;

  snprintf(good, sizeof(good), "%s/good", dir);
  ck_bundle_writer_open(good, &o, &w, &err);
  ck_bundle_writer_add(w, "weights", 7, CK_DT_FLOAT, 1, &d16, f, sizeof(f), &err);
  ck_tf_strings_encode(s, l, 2, &enc, &enclen);
  ck_bundle_writer_add(w, "vocab", 5, CK_DT_STRING, 1, &d2, enc, enclen, &err);
  free(enc);
  if (ck_bundle_writer_finish(w, &err) != 0) {
    printf("Bail out! cannot write the good bundle: %s\n", err.msg);
    exit(1);
  }
}

/* Copy the good bundle to dir/NAME; returns the new prefix. */
static const char *copy_good(const char *name)
{
  static char prefix[4200];
  char a[4300], b[4300];

  snprintf(prefix, sizeof(prefix), "%s/%s", dir, name);
  snprintf(a, sizeof(a), "%s.index", good);
  snprintf(b, sizeof(b), "%s.index", prefix);
  tu_copy_file(a, b);
  for (int i = 0; i < 2; i++) {
    snprintf(a, sizeof(a), "%s.data-%05d-of-00002", good, i);
    snprintf(b, sizeof(b), "%s.data-%05d-of-00002", prefix, i);
    tu_copy_file(a, b);
  }
  return prefix;
}

static void edit(const char *path, long off, uint8_t xor_with, long truncate_to)
{
  size_t n;
  uint8_t *d = tu_read_file(path, &n);

  if (off >= 0)
    d[off < 0 ? 0 : (size_t)off < n ? off : (long)n - 1] ^= xor_with;
  if (off < -1)
    d[n + (size_t)(off + 1)] ^= xor_with; /* -2: last byte */
  tu_write_file(path, d, truncate_to >= 0 ? (size_t)truncate_to : n);
  free(d);
}

/* Open and verify every entry, reading ahead or not. */
static int open_verify(const char *prefix, int ahead, struct ck_err *err)
{
  struct ck_bundle *b = NULL;
  uint8_t buf[64];
  int rc = ck_bundle_open(prefix, 0, &b, err);

  if (rc == 0)
    ck_bundle_set_read_ahead(b, ahead);
  for (size_t i = 0; rc == 0 && i < ck_bundle_data_count(b); i++)
    rc = ck_bundle_verify(b, ck_bundle_data_entry(b, i), buf, sizeof(buf), err);
  ck_bundle_close(b);
  return rc;
}

/* Expect failure whose message holds want and file, the same with read-ahead. */
static void expect_fail(const char *prefix, const char *want, const char *file_part, const char *what)
{
  struct ck_err err = { 0 }, ahead = { 0 };
  int rc = open_verify(prefix, 0, &err), rc2 = open_verify(prefix, 1, &ahead);

  ok(rc != 0 && strstr(err.msg, want) && strstr(err.msg, file_part) && rc2 == rc && strcmp(ahead.msg, err.msg) == 0,
     "%s: \"%s\"%s", what, err.msg, strcmp(ahead.msg, err.msg) ? " (read ahead: different)" : "");
}

/* Write an index whose header and entries we choose. */
static void craft_key(const char *prefix, int num_shards, int big_endian, const char *key, size_t klen,
                      Tensorflow__BundleEntryProto *e)
{
  Tensorflow__BundleHeaderProto h = TENSORFLOW__BUNDLE_HEADER_PROTO__INIT;
  Tensorflow__VersionDef v = TENSORFLOW__VERSION_DEF__INIT;
  struct ck_table_builder *tb;
  char path[4300];
  uint8_t hb[64], eb[512];
  int fd;

  v.producer = 1;
  h.num_shards = num_shards;
  h.endianness = big_endian ? TENSORFLOW__BUNDLE_HEADER_PROTO__ENDIANNESS__BIG
                            : TENSORFLOW__BUNDLE_HEADER_PROTO__ENDIANNESS__LITTLE;
  h.version = &v;
  snprintf(path, sizeof(path), "%s.index", prefix);
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ck_table_builder_new(fd, &tb);
  ck_table_builder_add(tb, "", 0, hb, tensorflow__bundle_header_proto__pack(&h, hb));
  if (key)
    ck_table_builder_add(tb, key, klen, eb, tensorflow__bundle_entry_proto__pack(e, eb));
  ck_table_builder_finish(tb);
  ck_table_builder_free(tb);
  close(fd);
  snprintf(path, sizeof(path), "%s.data-00000-of-00001", prefix);
  tu_write_file(path, "\0\0\0\0\0\0\0\0\0\0\0\0", 12);
}

static void craft(const char *prefix, int num_shards, int big_endian, const char *key,
                  Tensorflow__BundleEntryProto *e)
{
  craft_key(prefix, num_shards, big_endian, key, key ? strlen(key) : 0, e);
}

static void crafted_entries(void)
{
  Tensorflow__BundleEntryProto e = TENSORFLOW__BUNDLE_ENTRY_PROTO__INIT;
  Tensorflow__TensorShapeProto sh = TENSORFLOW__TENSOR_SHAPE_PROTO__INIT;
  Tensorflow__TensorShapeProto__Dim d[2] = { TENSORFLOW__TENSOR_SHAPE_PROTO__DIM__INIT,
                                             TENSORFLOW__TENSOR_SHAPE_PROTO__DIM__INIT };
  Tensorflow__TensorShapeProto__Dim *dp[2] = { &d[0], &d[1] };
  char prefix[4200];

  e.dtype = TENSORFLOW__DATA_TYPE__DT_FLOAT;
  e.shape = &sh;
  sh.dim = dp;

  snprintf(prefix, sizeof(prefix), "%s/overflow", dir);
  sh.n_dim = 2;
  d[0].size = 1ll << 40;
  d[1].size = 1ll << 40;
  e.size = 4;
  craft(prefix, 1, 0, "w", &e);
  expect_fail(prefix, "element count of the shape overflows", "overflow.index", "shape overflow");

  snprintf(prefix, sizeof(prefix), "%s/size", dir);
  sh.n_dim = 1;
  d[0].size = 3;
  e.size = 8;
  craft(prefix, 1, 0, "w", &e);
  expect_fail(prefix, "size 8 disagrees with DT_FLOAT of 3 elements (12 bytes)", "size.index", "size vs dtype");

  snprintf(prefix, sizeof(prefix), "%s/pastend", dir);
  e.size = 12;
  e.offset = 4;
  craft(prefix, 1, 0, "w", &e);
  expect_fail(prefix, "lie past the end of", "pastend.data-00000-of-00001", "entry past the end of its shard");

  snprintf(prefix, sizeof(prefix), "%s/dtype", dir);
  e.offset = 0;
  e.dtype = 99;
  craft(prefix, 1, 0, "w", &e);
  expect_fail(prefix, "unsupported dtype 99", "dtype.index", "unknown dtype");

  snprintf(prefix, sizeof(prefix), "%s/shardid", dir);
  e.dtype = TENSORFLOW__DATA_TYPE__DT_FLOAT;
  e.shard_id = 3;
  craft(prefix, 1, 0, "w", &e);
  expect_fail(prefix, "shard 3 outside 0..0", "shardid.index", "shard id out of range");

  snprintf(prefix, sizeof(prefix), "%s/negdim", dir);
  e.shard_id = 0;
  d[0].size = -3;
  craft(prefix, 1, 0, "w", &e);
  expect_fail(prefix, "dimension 0 is -3", "negdim.index", "negative dimension");

  snprintf(prefix, sizeof(prefix), "%s/bigendian", dir);
  craft(prefix, 1, 1, NULL, NULL);
  expect_fail(prefix, "big-endian bundle", "bigendian.index", "big-endian header");

  snprintf(prefix, sizeof(prefix), "%s/zeroshards", dir);
  craft(prefix, 0, 0, NULL, NULL);
  expect_fail(prefix, "num_shards 0 out of range", "zeroshards.index", "zero shards");

  snprintf(prefix, sizeof(prefix), "%s/orphan", dir);
  d[0].size = 3;
  craft_key(prefix, 1, 0, "\x00\x01x", 3, &e);
  expect_fail(prefix, "malformed slice key", "orphan.index", "malformed slice key");
}


/* ---- partitioned variables ---- */

/* One slice of the crafted variable "emb": listed by the variable and/or stored. */
struct pslice {
  int64_t start[2], len[2];
  int listed, stored;
};

struct kv {
  uint8_t *key, *val;
  size_t klen, vlen;
};

static int cmp_kv(const void *pa, const void *pb)
{
  const struct kv *a = pa, *b = pb;

  return ck_key_cmp(a->key, a->klen, b->key, b->klen);
}

static struct kv pack_kv(const uint8_t *key, size_t klen, const Tensorflow__BundleEntryProto *e)
{
  struct kv x = { malloc(klen + 1), malloc(tensorflow__bundle_entry_proto__get_packed_size(e) + 1), klen, 0 };

  memcpy(x.key, key, klen);
  x.vlen = tensorflow__bundle_entry_proto__pack(e, x.val);
  return x;
}

/* Write PREFIX: a float32 variable "emb" of shape rows x cols whose element (i, j)
 * holds i * cols + j, partitioned as the slices say, in one shard. */
static void craft_partitioned(const char *prefix, int64_t rows, int64_t cols, const struct pslice *s, int ns)
{
  Tensorflow__BundleEntryProto full = TENSORFLOW__BUNDLE_ENTRY_PROTO__INIT;
  Tensorflow__TensorShapeProto sh[9], fsh = TENSORFLOW__TENSOR_SHAPE_PROTO__INIT;
  Tensorflow__TensorShapeProto__Dim dim[20], *dp[20];
  Tensorflow__TensorSliceProto sl[9], *slp[9];
  Tensorflow__TensorSliceProto__Extent ext[18], *extp[18];
  Tensorflow__BundleHeaderProto h = TENSORFLOW__BUNDLE_HEADER_PROTO__INIT;
  struct kv kv[10];
  struct ck_table_builder *tb;
  uint8_t hb[64];
  float data[256];
  size_t nkv = 0, nd = 0;
  char path[4300];
  int fd;

  for (int i = 0; i < 20; i++) {
    tensorflow__tensor_shape_proto__dim__init(&dim[i]);
    dp[i] = &dim[i];
  }
  dim[0].size = rows;
  dim[1].size = cols;
  fsh.n_dim = 2;
  fsh.dim = dp;
  full.dtype = TENSORFLOW__DATA_TYPE__DT_FLOAT;
  full.shape = &fsh;
  full.slices = slp;
  for (int i = 0; i < ns; i++) {
    Tensorflow__BundleEntryProto e = TENSORFLOW__BUNDLE_ENTRY_PROTO__INIT;
    int64_t off = (int64_t)nd;
    uint8_t *key;
    size_t klen;
    tensorflow__tensor_slice_proto__init(&sl[i]);
    for (int d = 0; d < 2; d++) {
      tensorflow__tensor_slice_proto__extent__init(&ext[2 * i + d]);
      ext[2 * i + d].start = s[i].start[d];
      ext[2 * i + d].has_length_case = TENSORFLOW__TENSOR_SLICE_PROTO__EXTENT__HAS_LENGTH_LENGTH;
      ext[2 * i + d].length = s[i].len[d];
      extp[2 * i + d] = &ext[2 * i + d];
    }
    sl[i].n_extent = 2;
    sl[i].extent = &extp[2 * i];
    if (s[i].listed)
      slp[full.n_slices++] = &sl[i];
    if (!s[i].stored)
      continue;
    for (int64_t r = s[i].start[0]; r < s[i].start[0] + s[i].len[0]; r++)
      for (int64_t c = s[i].start[1]; c < s[i].start[1] + s[i].len[1]; c++)
        data[nd++] = (float)(r * cols + c);
    tensorflow__tensor_shape_proto__init(&sh[i]);
    sh[i].n_dim = 2;
    sh[i].dim = &dp[2 + 2 * i];
    dim[2 + 2 * i].size = s[i].len[0];
    dim[3 + 2 * i].size = s[i].len[1];
    e.dtype = TENSORFLOW__DATA_TYPE__DT_FLOAT;
    e.shape = &sh[i];
    e.offset = off * 4;
    e.size = ((int64_t)nd - off) * 4;
    e.crc32c = ck_crc32c_mask(ck_crc32c(data + off, (size_t)e.size));
    ck_slice_key_encode((const uint8_t *)"emb", 3, 2, s[i].start, s[i].len, &key, &klen);
    kv[nkv++] = pack_kv(key, klen, &e);
    free(key);
  }
  kv[nkv++] = pack_kv((const uint8_t *)"emb", 3, &full);
  qsort(kv, nkv, sizeof(kv[0]), cmp_kv);
  h.num_shards = 1;
  snprintf(path, sizeof(path), "%s.index", prefix);
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ck_table_builder_new(fd, &tb);
  ck_table_builder_add(tb, "", 0, hb, tensorflow__bundle_header_proto__pack(&h, hb));
  for (size_t i = 0; i < nkv; i++) {
    ck_table_builder_add(tb, kv[i].key, kv[i].klen, kv[i].val, kv[i].vlen);
    free(kv[i].key);
    free(kv[i].val);
  }
  ck_table_builder_finish(tb);
  ck_table_builder_free(tb);
  close(fd);
  snprintf(path, sizeof(path), "%s.data-00000-of-00001", prefix);
  tu_write_file(path, data, nd * 4);
}

/* Exit status of a command run through the shell, or -1 if it did not exit. */
static int run(const char *cmd)
{
  int st = system(cmd);

  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* `ckpt diff A B` with an unreadable A exits 2 naming the fault, and frees what it
 * opened (a leak shows as LeakSanitizer's report and exit 1). todo: why a failure
 * is expected until a fix outside this module lands, or NULL. */
static void diff_fails_cleanly(const char *a, const char *b, const char *what, const char *want, const char *todo)
{
  char cmd[9000], out[4300], *msg;
  size_t n;
  int rc, good_exit;

  if (access("tools/ckpt", X_OK) != 0) {
    tap_skip("tools not built beside the tests");
    return;
  }
  snprintf(out, sizeof(out), "%s.diff-err", a);
  snprintf(cmd, sizeof(cmd), "tools/ckpt diff %s %s >/dev/null 2>%s", a, b, out);
  rc = run(cmd);
  msg = (char *)tu_read_file(out, &n);
  if (msg)
    msg[n ? n - 1 : 0] = 0;
  good_exit = rc == 2 && msg && strstr(msg, want) && !strstr(msg, "LeakSanitizer");
  if (msg && strchr(msg, '\n'))
    *strchr(msg, '\n') = 0; /* one TAP line */
  ok(good_exit, "%s: `ckpt diff` exits 2 (%d) without a leak: %.200s%s%s", what, rc, msg ? msg : "",
     todo && !good_exit ? " # TODO " : "", todo && !good_exit ? todo : "");
  free(msg);
}

/* Every tool must refuse the bundle with exit 1 naming the variable (a silent exit 0
 * used to drop it); under ASan a leak on the error path shows as another status. */
static void tools_refuse(const char *prefix, const char *what)
{
  static const char *const cmds[] = { "tools/ckpt ls ", "tools/ckpt verify ", "tools/tensorflow-to-h5 --quiet " };
  char cmd[9000], out[4300];

  if (access("tools/ckpt", X_OK) != 0 || access("tools/tensorflow-to-h5", X_OK) != 0) {
    tap_skip("tools not built beside the tests");
    return;
  }
  snprintf(out, sizeof(out), "%s.err", prefix);
  for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
    char c[4400], *msg;
    size_t n;
    int rc;
    snprintf(c, sizeof(c), "%s%s%s%s", cmds[i], prefix, i == 2 ? " " : "", i == 2 ? prefix : "");
    if (i == 2)
      strcat(c, ".h5");
    snprintf(cmd, sizeof(cmd), "%s >/dev/null 2>%s", c, out);
    rc = run(cmd);
    msg = (char *)tu_read_file(out, &n);
    if (msg)
      msg[n ? n - 1 : 0] = 0;
    ok(rc == 1 && msg && strstr(msg, "emb") && strstr(msg, ".index"), "%s: `%.40s` exits 1 (%d): %s", what, c, rc,
       msg ? msg : "");
    free(msg);
  }
  snprintf(cmd, sizeof(cmd), "%s.h5", prefix);
  ok(access(cmd, F_OK) != 0, "%s: no .h5 left behind", what);
  diff_fails_cleanly(prefix, good, what, "emb", NULL);
}

static void partitioned_coverage(void)
{
  char prefix[4200];
  struct ck_bundle *b = NULL;
  struct ck_err err = { 0 };

  /* rows [0,2) and [2,4) listed, the second's data missing */
  struct pslice missing[] = { { { 0, 0 }, { 2, 3 }, 1, 1 }, { { 2, 0 }, { 2, 3 }, 1, 0 } };
  snprintf(prefix, sizeof(prefix), "%s/pmissing", dir);
  craft_partitioned(prefix, 4, 3, missing, 2);
  expect_fail(prefix, "emb: slice 1 of 2 has no data entry", "pmissing.index", "partitioned: slice data missing");
  ok(ck_bundle_open(prefix, CK_BUNDLE_INDEX_ONLY, &b, &err) != 0 && strstr(err.msg, "no data entry"),
     "partitioned: refused index-only too (ckpt ls): %s", err.msg);
  tools_refuse(prefix, "missing slice");

  /* no slice stored at all: tensorflow-to-h5 used to leave the variable out, exit 0 */
  struct pslice none[] = { { { 0, 0 }, { 2, 3 }, 1, 0 }, { { 2, 0 }, { 2, 3 }, 1, 0 } };
  snprintf(prefix, sizeof(prefix), "%s/pnone", dir);
  craft_partitioned(prefix, 4, 3, none, 2);
  expect_fail(prefix, "emb: slice 0 of 2 has no data entry", "pnone.index", "partitioned: no slice stored");
  tools_refuse(prefix, "no slice stored");

  struct pslice gap[] = { { { 0, 0 }, { 2, 3 }, 1, 1 }, { { 3, 0 }, { 1, 3 }, 1, 1 } };
  snprintf(prefix, sizeof(prefix), "%s/pgap", dir);
  craft_partitioned(prefix, 4, 3, gap, 2);
  expect_fail(prefix, "emb: its 2 slices leave elements in no slice (9 elements listed for 12)", "pgap.index",
              "partitioned: a gap between slices");
  tools_refuse(prefix, "gap");

  struct pslice overlap[] = { { { 0, 0 }, { 3, 3 }, 1, 1 }, { { 2, 0 }, { 2, 3 }, 1, 1 } };
  snprintf(prefix, sizeof(prefix), "%s/poverlap", dir);
  craft_partitioned(prefix, 4, 3, overlap, 2);
  expect_fail(prefix, "emb: its 2 slices overlap (15 elements listed for 12)", "poverlap.index",
              "partitioned: overlapping slices");

  /* 4x4 in three boxes of 8 + 4 + 4 elements: the volumes add up, yet (1, 2..3)
   * is covered twice and (3, 2..3) not at all */
  struct pslice both[] = { { { 0, 0 }, { 2, 4 }, 1, 1 }, { { 2, 0 }, { 2, 2 }, 1, 1 },
                           { { 1, 2 }, { 2, 2 }, 1, 1 } };
  snprintf(prefix, sizeof(prefix), "%s/pboth", dir);
  craft_partitioned(prefix, 4, 4, both, 3);
  expect_fail(prefix, "emb: its 3 slices overlap and leave elements in no slice (16 elements listed for 16)",
              "pboth.index", "partitioned: overlap and gap with equal volume (two axes)");

  struct pslice stray[] = { { { 0, 0 }, { 4, 3 }, 1, 1 }, { { 0, 0 }, { 2, 3 }, 0, 1 } };
  snprintf(prefix, sizeof(prefix), "%s/pstray", dir);
  craft_partitioned(prefix, 4, 3, stray, 2);
  expect_fail(prefix, "emb: a slice entry is not listed by the variable", "pstray.index",
              "partitioned: a stored slice the variable does not list");

  /* the good case: a 2-axis tiling, assembled in order through a tiny buffer */
  struct pslice tiles[] = { { { 2, 0 }, { 2, 2 }, 1, 1 }, { { 0, 0 }, { 2, 4 }, 1, 1 },
                            { { 2, 2 }, { 2, 2 }, 1, 1 } };
  snprintf(prefix, sizeof(prefix), "%s/ptiles", dir);
  craft_partitioned(prefix, 4, 4, tiles, 3);
  {
    float got[16];
    uint8_t small[12];
    struct tu_collect c = { (uint8_t *)got, 0 };
    int same;
    err.msg[0] = 0;
    same = ck_bundle_open(prefix, 0, &b, &err) == 0;
    ok(same, "partitioned: an exact 2-axis tiling opens %s", err.msg);
    same = same && ck_bundle_stream_tensor(b, ck_bundle_find(b, "emb", 3), small, sizeof(small), tu_collect_chunk,
                                           &c, &err) == 0 && c.len == 64;
    for (int i = 0; same && i < 16; i++)
      same = got[i] == (float)i;
    ok(same, "partitioned: assembled row-major through a 12-byte buffer %s", err.msg);
    ck_bundle_close(b);
  }
}

int main(void)
{
  char path[4300];
  const char *p;
  size_t n;

  dir = tu_tmpdir();
  make_good();
  {
    struct ck_bundle *b;
    struct ck_err err = { 0 };
    ok(ck_bundle_open(good, 0, &b, &err) == 0 && ck_bundle_num_shards(b) == 2, "the good bundle has 2 shards");
    ck_bundle_close(b);
  }

  p = copy_good("trunc");
  snprintf(path, sizeof(path), "%s.index", p);
  free(tu_read_file(path, &n));
  edit(path, -1, 0, (long)n - 10);
  expect_fail(p, "bad table magic", "trunc.index", "truncated index (last 10 bytes cut)");
  edit(path, -1, 0, 20);
  expect_fail(p, "too short for a table footer", "trunc.index", "truncated index (20 bytes)");
  edit(path, -1, 0, 0);
  expect_fail(p, "too short for a table footer", "trunc.index", "empty index");

  p = copy_good("flip");
  snprintf(path, sizeof(path), "%s.index", p);
  edit(path, 12, 0x40, -1);
  expect_fail(p, "bad block checksum", "flip.index", "a flipped byte in the data block");

  p = copy_good("magic");
  snprintf(path, sizeof(path), "%s.index", p);
  edit(path, -2, 0x01, -1);
  expect_fail(p, "bad table magic", "magic.index", "wrong magic");

  p = copy_good("text");
  snprintf(path, sizeof(path), "%s.index", p);
  tu_write_file(path, "model_checkpoint_path: \"x\"\nthis is not an index file at all, just text\n", 70);
  expect_fail(p, "not a TensorFlow index file", "text.index", "a text file as index");

  p = copy_good("shortdata");
  snprintf(path, sizeof(path), "%s.data-00000-of-00002", p);
  free(tu_read_file(path, &n));
  edit(path, -1, 0, (long)n - 1);
  expect_fail(p, "lie past the end of", "shortdata.data-00000-of-00002", "a shard one byte short");

  p = copy_good("missing");
  snprintf(path, sizeof(path), "%s.data-00001-of-00002", p);
  unlink(path);
  expect_fail(p, "missing shard 1 of 2", "missing.data-00001-of-00002", "a missing shard");

  p = copy_good("dataflip");
  snprintf(path, sizeof(path), "%s.data-00000-of-00002", p);
  edit(path, 5, 0x01, -1);
  expect_fail(p, "crc32c mismatch", "dataflip.data-00000-of-00002", "a flipped byte in tensor data");
  diff_fails_cleanly(p, good, "a flipped byte in tensor data", "crc32c mismatch",
                     "tools/ckpt.c cmd_diff leaves its sources open when collect() fails");

  p = copy_good("strflip");
  snprintf(path, sizeof(path), "%s.data-00001-of-00002", p);
  edit(path, 3, 0x01, -1); /* inside the 4-byte length checksum after two 1-byte lengths */
  expect_fail(p, "string length checksum mismatch", "strflip.data-00001-of-00002", "a corrupt string length checksum");

  p = copy_good("nothing");
  snprintf(path, sizeof(path), "%s.index", p);
  unlink(path);
  expect_fail(p, "No such file", "nothing.index", "no index at all");

  crafted_entries();
  partitioned_coverage();
  tu_rmtree(dir);
  free(dir);
  return tap_done();
}
