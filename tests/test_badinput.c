/* Bad input: each corruption gives an error that names the file and the fault,
 * with no crash and no leak (the sanitizer build checks the latter). */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bundle.h"
#include "crc32c.h"
#include "coding.h"
#include "dtype.h"
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

/* Open (and verify every entry); expect failure whose message holds want and file. */
static void expect_fail(const char *prefix, const char *want, const char *file_part, const char *what)
{
  struct ck_bundle *b = NULL;
  struct ck_err err = { 0 };
  uint8_t buf[64];
  int rc = ck_bundle_open(prefix, 0, &b, &err);

  for (size_t i = 0; rc == 0 && i < ck_bundle_data_count(b); i++)
    rc = ck_bundle_verify(b, ck_bundle_data_entry(b, i), buf, sizeof(buf), &err);
  ck_bundle_close(b);
  ok(rc != 0 && strstr(err.msg, want) && strstr(err.msg, file_part), "%s: \"%s\"", what, err.msg);
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

  p = copy_good("strflip");
  snprintf(path, sizeof(path), "%s.data-00001-of-00002", p);
  edit(path, 3, 0x01, -1); /* inside the 4-byte length checksum after two 1-byte lengths */
  expect_fail(p, "string length checksum mismatch", "strflip.data-00001-of-00002", "a corrupt string length checksum");

  p = copy_good("nothing");
  snprintf(path, sizeof(path), "%s.index", p);
  unlink(path);
  expect_fail(p, "No such file", "nothing.index", "no index at all");

  crafted_entries();
  tu_rmtree(dir);
  free(dir);
  return tap_done();
}
