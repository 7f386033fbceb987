/* libFuzzer target for partitioned variables: the input describes a variable and its
 * slices, which are written as a real bundle (index + data file on tmpfs), opened,
 * and assembled through a small buffer. A naive oracle (a coverage count per
 * element) says whether the slices tile the tensor exactly; the reader must accept
 * exactly those bundles, and assemble them to the reference values.
 *
 * Input: rank (1-3), dtype size selector, dims (0-7 each), slice count (1-16), then
 * per slice and dimension a start and a length byte (0xff: the whole dimension), and
 * a flags byte (bit 0: listed by the variable, bit 1: stored); slice 0 is always
 * listed. Then the buffer size (1-64 bytes). Element values are derived from their
 * position. */
#include "config.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bundle.h"
#include "crc32c.h"
#include "dtype.h"
#include "ordered_code.h"
#include "table.h"
#include "tensor_bundle.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXS 16
#define MAXE 343 /* 7^3 elements */

struct spec {
  int rank;
  size_t esize;
  int dtype;
  int64_t dims[3];
  uint64_t nelem;
  int ns;
  int64_t start[MAXS][3], len[MAXS][3]; /* len -1: whole */
  int listed[MAXS], stored[MAXS];
  size_t bufsize;
};

static char dir[64], prefix[128];

static void cleanup(void)
{
  char p[200];

  snprintf(p, sizeof(p), "%s.index", prefix);
  unlink(p);
  snprintf(p, sizeof(p), "%s.data-00000-of-00001", prefix);
  unlink(p);
  rmdir(dir);
}

static void setup(void)
{
  if (prefix[0])
    return;
  snprintf(dir, sizeof(dir), "%s/ckptd-fslices.XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
  if (mkdtemp(dir) == NULL)
    abort();
  snprintf(prefix, sizeof(prefix), "%s/s", dir);
  atexit(cleanup);
}

static int decode(const uint8_t *d, size_t n, struct spec *s)
{
  static const int dtypes[4] = { CK_DT_INT8, CK_DT_INT16, CK_DT_FLOAT, CK_DT_DOUBLE };
  size_t at = 0;

#define NEXT() (at < n ? d[at++] : 0)
  memset(s, 0, sizeof(*s));
  if (n < 4)
    return -1;
  s->rank = 1 + NEXT() % 3;
  s->dtype = dtypes[NEXT() % 4];
  s->esize = ck_dtype_size(s->dtype);
  s->nelem = 1;
  for (int k = 0; k < s->rank; k++) {
    s->dims[k] = NEXT() % 8;
    s->nelem *= (uint64_t)s->dims[k];
  }
  s->ns = 1 + NEXT() % MAXS;
  for (int i = 0; i < s->ns; i++) {
    uint8_t f;
    for (int k = 0; k < s->rank; k++) {
      uint8_t a = NEXT(), l = NEXT();
      s->start[i][k] = l == 0xff ? 0 : a % 9;
      s->len[i][k] = l == 0xff ? -1 : l % 9;
    }
    f = NEXT();
    s->listed[i] = i == 0 || (f & 1);
    s->stored[i] = !(f & 2);
  }
  s->bufsize = 1 + NEXT() % 64;
#undef NEXT
  return 0;
}

static int64_t lo_of(const struct spec *s, int i, int k) { return s->len[i][k] < 0 ? 0 : s->start[i][k]; }
static int64_t hi_of(const struct spec *s, int i, int k)
{
  return s->len[i][k] < 0 ? s->dims[k] : s->start[i][k] + s->len[i][k];
}

static int same_slice(const struct spec *s, int i, int j)
{
  for (int k = 0; k < s->rank; k++)
    if (lo_of(s, i, k) != lo_of(s, j, k) || (s->len[i][k] < 0) != (s->len[j][k] < 0) ||
        s->len[i][k] != s->len[j][k])
      return 0;
  return 1;
}

/* Value of element (row-major position pos) in a given element size. */
static void value(uint64_t pos, size_t esize, uint8_t *out)
{
  for (size_t b = 0; b < esize; b++)
    out[b] = (uint8_t)(pos * 31 + b * 7 + 1);
}

/* Element index of slice i's j-th element (its own row-major order) in the full tensor. */
static uint64_t full_pos(const struct spec *s, int i, uint64_t j)
{
  uint64_t pos = 0, mult = 1;
  int64_t c[3];

  for (int k = s->rank - 1; k >= 0; k--) {
    uint64_t len = (uint64_t)(hi_of(s, i, k) - lo_of(s, i, k));
    c[k] = lo_of(s, i, k) + (int64_t)(j % len);
    j /= len;
  }
  for (int k = s->rank - 1; k >= 0; k--) {
    pos += (uint64_t)c[k] * mult;
    mult *= (uint64_t)s->dims[k];
  }
  return pos;
}

static uint64_t volume(const struct spec *s, int i)
{
  uint64_t v = 1;

  for (int k = 0; k < s->rank; k++)
    v *= (uint64_t)(hi_of(s, i, k) - lo_of(s, i, k));
  return v;
}

static int in_bounds(const struct spec *s, int i)
{
  for (int k = 0; k < s->rank; k++)
    if (s->len[i][k] >= 0 && s->start[i][k] + s->len[i][k] > s->dims[k])
      return 0;
  return 1;
}

/* The reader must accept exactly this. */
static int oracle_valid(const struct spec *s)
{
  int cover[MAXE] = { 0 };

  /* Per key: listed at most once, and listed exactly when stored (slices with one
   * key are one entry). */
  for (int i = 0; i < s->ns; i++) {
    int listed = 0, stored = 0;
    if (!s->listed[i] && !s->stored[i])
      continue; /* not in the bundle at all */
    if (!in_bounds(s, i))
      return 0;
    for (int j = 0; j < s->ns; j++) {
      if (same_slice(s, i, j)) {
        listed += s->listed[j];
        stored |= s->stored[j];
      }
    }
    if (listed > 1 || (listed == 1) != stored)
      return 0;
  }
  for (int i = 0; i < s->ns; i++)
    for (uint64_t j = 0; s->listed[i] && j < volume(s, i); j++)
      cover[full_pos(s, i, j)]++;
  for (uint64_t p = 0; p < s->nelem; p++)
    if (cover[p] != 1)
      return 0;
  return 1;
}

struct kv {
  uint8_t *key, *val;
  size_t klen, vlen;
};

static int cmp_kv(const void *pa, const void *pb)
{
  const struct kv *a = pa, *b = pb;

  return ck_key_cmp(a->key, a->klen, b->key, b->klen);
}

static void add_kv(struct kv *kv, size_t *n, uint8_t *key, size_t klen, const Tensorflow__BundleEntryProto *e)
{
  for (size_t i = 0; i < *n; i++)
    if (ck_key_cmp(kv[i].key, kv[i].klen, key, klen) == 0) {
      free(key); /* a duplicate slice: one entry per key */
      return;
    }
  kv[*n].key = key;
  kv[*n].klen = klen;
  kv[*n].val = malloc(tensorflow__bundle_entry_proto__get_packed_size(e) + 1);
  kv[*n].vlen = tensorflow__bundle_entry_proto__pack(e, kv[*n].val);
  (*n)++;
}

static uint8_t *slice_entry(const struct spec *s, int i, uint8_t *dat, size_t *nd, Tensorflow__BundleEntryProto *e,
                            Tensorflow__TensorShapeProto *sh, Tensorflow__TensorShapeProto__Dim *dim,
                            Tensorflow__TensorShapeProto__Dim **dp, size_t *klen)
{
  uint64_t vol = in_bounds(s, i) ? volume(s, i) : 0;
  size_t off = *nd;
  uint8_t *key;

  for (uint64_t j = 0; j < vol; j++, *nd += s->esize)
    value(full_pos(s, i, j), s->esize, dat + *nd);
  tensorflow__tensor_shape_proto__init(sh);
  for (int k = 0; k < s->rank; k++) {
    tensorflow__tensor_shape_proto__dim__init(&dim[k]);
    dim[k].size = s->len[i][k] < 0 ? s->dims[k] : s->len[i][k];
    dp[k] = &dim[k];
  }
  sh->n_dim = (size_t)s->rank;
  sh->dim = dp;
  e->dtype = (Tensorflow__DataType)s->dtype;
  e->shape = sh;
  e->offset = (int64_t)off;
  e->size = (int64_t)(*nd - off);
  e->crc32c = ck_crc32c_mask(ck_crc32c(dat + off, *nd - off));
  if (ck_slice_key_encode((const uint8_t *)"v", 1, s->rank, s->start[i], s->len[i], &key, klen) != 0)
    abort();
  return key;
}

static void write_bundle(const struct spec *s)
{
  static uint8_t dat[MAXS * MAXE * 8];
  Tensorflow__BundleHeaderProto h = TENSORFLOW__BUNDLE_HEADER_PROTO__INIT;
  Tensorflow__BundleEntryProto full = TENSORFLOW__BUNDLE_ENTRY_PROTO__INIT, e[MAXS];
  Tensorflow__TensorShapeProto fsh = TENSORFLOW__TENSOR_SHAPE_PROTO__INIT, sh[MAXS];
  Tensorflow__TensorShapeProto__Dim fdim[3], dim[MAXS][3], *fdp[3], *dp[MAXS][3];
  Tensorflow__TensorSliceProto sl[MAXS], *slp[MAXS];
  Tensorflow__TensorSliceProto__Extent ext[MAXS][3], *extp[MAXS][3];
  struct ck_table_builder *tb;
  struct kv kv[MAXS + 1];
  size_t nkv = 0, nd = 0;
  uint8_t hb[32];
  char path[200];
  FILE *f;
  int fd;

  for (int k = 0; k < s->rank; k++) {
    tensorflow__tensor_shape_proto__dim__init(&fdim[k]);
    fdim[k].size = s->dims[k];
    fdp[k] = &fdim[k];
  }
  fsh.n_dim = (size_t)s->rank;
  fsh.dim = fdp;
  full.dtype = (Tensorflow__DataType)s->dtype;
  full.shape = &fsh;
  full.slices = slp;
  for (int i = 0; i < s->ns; i++) {
    size_t klen;
    tensorflow__tensor_slice_proto__init(&sl[i]);
    for (int k = 0; k < s->rank; k++) {
      tensorflow__tensor_slice_proto__extent__init(&ext[i][k]);
      if (s->len[i][k] >= 0) {
        ext[i][k].start = s->start[i][k];
        ext[i][k].has_length_case = TENSORFLOW__TENSOR_SLICE_PROTO__EXTENT__HAS_LENGTH_LENGTH;
        ext[i][k].length = s->len[i][k];
      }
      extp[i][k] = &ext[i][k];
    }
    sl[i].n_extent = (size_t)s->rank;
    sl[i].extent = extp[i];
    if (s->listed[i])
      slp[full.n_slices++] = &sl[i];
    if (s->stored[i]) {
      uint8_t *key;
      tensorflow__bundle_entry_proto__init(&e[i]);
      key = slice_entry(s, i, dat, &nd, &e[i], &sh[i], dim[i], dp[i], &klen);
      add_kv(kv, &nkv, key, klen, &e[i]);
    }
  }
  add_kv(kv, &nkv, (uint8_t *)strdup("v"), 1, &full);
  qsort(kv, nkv, sizeof(kv[0]), cmp_kv);
  h.num_shards = 1;
  snprintf(path, sizeof(path), "%s.index", prefix);
  if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0 || ck_table_builder_new(fd, &tb) != 0)
    abort();
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
  if ((f = fopen(path, "wb")) == NULL)
    abort();
  fwrite(dat, 1, nd, f);
  fclose(f);
}

struct sink {
  uint8_t buf[MAXE * 8];
  size_t len;
};

static int collect(void *ctx, const void *d, size_t n)
{
  struct sink *k = ctx;

  if (n > sizeof(k->buf) - k->len)
    abort(); /* more bytes than the tensor holds */
  memcpy(k->buf + k->len, d, n);
  k->len += n;
  return 0;
}

static void dump(const struct spec *s)
{
  fprintf(stderr, "rank %d dims", s->rank);
  for (int k = 0; k < s->rank; k++)
    fprintf(stderr, " %lld", (long long)s->dims[k]);
  fprintf(stderr, "\n");
  for (int i = 0; i < s->ns; i++) {
    fprintf(stderr, "  slice %d listed %d stored %d:", i, s->listed[i], s->stored[i]);
    for (int k = 0; k < s->rank; k++)
      fprintf(stderr, " [%lld +%lld]", (long long)s->start[i][k], (long long)s->len[i][k]);
    fprintf(stderr, "\n");
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static struct spec s;
  static struct sink out;
  struct ck_bundle *b = NULL;
  uint8_t buf[64], want[8];
  int valid, rc;

  setup();
  if (decode(data, size, &s) != 0)
    return 0;
  write_bundle(&s);
  valid = oracle_valid(&s);
  rc = ck_bundle_open(prefix, 0, &b, NULL);
  if ((rc == 0) != valid) {
    fprintf(stderr, "fuzz_slices: reader %s a bundle the oracle calls %s\n", rc ? "refused" : "accepted",
            valid ? "valid" : "invalid");
    dump(&s);
    abort();
  }
  if (rc == 0) {
    const struct ck_entry *e = ck_bundle_find(b, "v", 1);
    out.len = 0;
    if (e == NULL || ck_bundle_stream_tensor(b, e, buf, s.bufsize, collect, &out, NULL) != 0 ||
        out.len != s.nelem * s.esize)
      abort();
    for (uint64_t p = 0; p < s.nelem; p++) {
      value(p, s.esize, want);
      if (memcmp(out.buf + p * s.esize, want, s.esize) != 0)
        abort();
    }
  }
  ck_bundle_close(b);
  return 0;
}
