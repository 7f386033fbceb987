/* Bundle writer.
 *
 * Tensors stream into per-shard temporary files beside the prefix (created with
 * O_EXCL|O_NOFOLLOW); the crc32c of each is computed on the fly from its stored
 * bytes. finish() fsyncs the data files, writes the sorted index the way
 * TensorFlow's BundleWriter does, then renames data files first and the index
 * last and fsyncs the directory: a reader that sees PREFIX.index sees a whole
 * checkpoint. Any failure removes every temporary and every file renamed so far. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bundle.h"
#include "coding.h"
#include "crc32c.h"
#include "dtype.h"
#include "fileio.h"
#include "ordered_code.h"
#include "table.h"
#include "tensor_bundle.pb-c.h"
#include "tensor_crc.h"

struct wshard {
  char *tmp;
  int fd;
  struct ck_obuf ob;
  uint64_t size;
};

struct ck_bundle_writer {
  char *prefix;
  char *dir;
  struct ck_bundle_writer_opts o;
  struct wshard *shards;
  int nshards;
  int cur_shard;
  struct ck_entry *entries;
  size_t n;
  size_t cap;
  struct ck_entry *cur; /* entry being written, or NULL */
  size_t last_full;     /* 1 + index of the variable that took the last slice, or 0 */
  uint64_t expect;      /* its size for fixed-size dtypes, else UINT64_MAX */
  struct ck_tcrc tcrc;
  uint32_t last_crc;
  int failed;
};

static void entry_clear(struct ck_entry *e)
{
  free(e->dims); /* the key lives in the same block */
  for (size_t i = 0; i < e->nslices; i++)
    free(e->slices[i].start); /* length shares it */
  free(e->slices);
}

static void writer_free(struct ck_bundle_writer *w)
{
  for (int i = 0; i < w->nshards; i++) {
    if (w->shards[i].fd >= 0)
      close(w->shards[i].fd);
    ck_obuf_free(&w->shards[i].ob);
    free(w->shards[i].tmp);
  }
  for (size_t i = 0; i < w->n; i++)
    entry_clear(&w->entries[i]);
  free(w->shards);
  free(w->entries);
  free(w->prefix);
  free(w->dir);
  free(w);
}

void ck_bundle_writer_abort(struct ck_bundle_writer *w)
{
  if (w == NULL)
    return;
  for (int i = 0; i < w->nshards; i++)
    if (w->shards[i].tmp)
      unlink(w->shards[i].tmp);
  writer_free(w);
}

int ck_bundle_writer_open(const char *prefix, const struct ck_bundle_writer_opts *opts,
                          struct ck_bundle_writer **out, struct ck_err *err)
{
  struct ck_bundle_writer *w = calloc(1, sizeof(*w));

  *out = NULL;
  if (w == NULL || (w->prefix = strdup(prefix)) == NULL || (w->dir = ck_dirname(prefix)) == NULL) {
    if (w)
      writer_free(w);
    return ck_err_set(err, -ENOMEM, "out of memory");
  }
  if (opts)
    w->o = *opts;
  if (w->o.buffer_size == 0)
    w->o.buffer_size = 1u << 20;
  if (w->o.expected_entries > 0 && w->o.expected_entries < ((size_t)1 << 32) &&
      (w->entries = calloc(w->o.expected_entries, sizeof(*w->entries))) != NULL)
    w->cap = w->o.expected_entries; /* 200,000 entries: no 1.5x slack, no copy at regrowth */
  if (access(w->dir, W_OK) != 0) {
    int rc = -errno;
    ck_err_set(err, rc, "%s: cannot write to the directory: %s", w->dir, strerror(errno));
    writer_free(w);
    return rc;
  }
  *out = w;
  return 0;
}

static int open_shard(struct ck_bundle_writer *w, int s, struct ck_err *err)
{
  struct wshard *sh;
  char *base;
  int rc;

  if (s >= w->nshards) {
    struct wshard *ns = realloc(w->shards, (size_t)(s + 1) * sizeof(*ns));
    if (ns == NULL)
      return ck_err_set(err, -ENOMEM, "out of memory");
    w->shards = ns;
    for (int i = w->nshards; i <= s; i++) {
      memset(&ns[i], 0, sizeof(ns[i]));
      ns[i].fd = -1;
    }
    w->nshards = s + 1;
  }
  sh = &w->shards[s];
  if (sh->tmp)
    return 0;
  if ((base = ck_asprintf("%s.data-%05d", w->prefix, s)) == NULL || (sh->tmp = ck_temp_name(base)) == NULL) {
    free(base);
    return ck_err_set(err, -ENOMEM, "out of memory");
  }
  free(base);
  if ((sh->fd = ck_create_excl(sh->tmp)) < 0) {
    rc = sh->fd;
    ck_err_set(err, rc, "%s: cannot create: %s", sh->tmp, strerror(-rc));
    free(sh->tmp);
    sh->tmp = NULL;
    return rc;
  }
  return 0;
}

/* Flush and drop the buffer of a shard we will not write again (max-bytes policy). */
static int retire_shard(struct ck_bundle_writer *w, int s, struct ck_err *err)
{
  struct wshard *sh = &w->shards[s];
  int rc;

  if (sh->ob.buf == NULL)
    return 0;
  if ((rc = ck_obuf_flush(&sh->ob)) != 0)
    return ck_err_set(err, rc, "%s: write: %s", sh->tmp, strerror(-rc));
  ck_obuf_free(&sh->ob);
  return 0;
}

static int pick_shard(struct ck_bundle_writer *w, const uint8_t *key, size_t klen, uint64_t expect,
                      struct ck_err *err)
{
  int s = w->cur_shard, rc;

  if (w->o.shard_of) {
    s = w->o.shard_of(w->o.shard_ctx, key, klen);
    if (s < 0 || s >= CK_MAX_SHARDS)
      return ck_err_set(err, CK_EINVAL, "%s: shard rule gave shard %d", key, s);
  } else if (w->o.max_shard_bytes && s < w->nshards && w->shards[s].size > 0) {
    /* Start a new shard when this tensor would overflow the current one; a
     * string tensor, whose size is unknown here, moves on once the shard is full. */
    uint64_t need = expect == UINT64_MAX ? 0 : expect;
    uint64_t have = w->shards[s].size;
    if (have >= w->o.max_shard_bytes || need > w->o.max_shard_bytes - have) {
      if ((rc = retire_shard(w, s, err)) != 0)
        return rc;
      s++;
    }
  }
  if ((rc = open_shard(w, s, err)) != 0)
    return rc;
  if (w->shards[s].ob.buf == NULL) {
    if (ck_obuf_init(&w->shards[s].ob, w->shards[s].fd, w->o.buffer_size) != 0)
      return ck_err_set(err, -ENOMEM, "out of memory");
    w->shards[s].ob.wb.keep = w->o.keep_cached;
  }
  w->cur_shard = s;
  return s;
}

static struct ck_entry *new_entry(struct ck_bundle_writer *w, const void *key, size_t klen, int dtype,
                                  int rank, const int64_t *dims)
{
  struct ck_entry *e;

  if (w->n == w->cap) {
    size_t cap = w->cap ? w->cap + w->cap / 2 : 64; /* 1.5x: less slack and a smaller copy for huge indexes */
    struct ck_entry *ne = realloc(w->entries, cap * sizeof(*ne));
    if (ne == NULL)
      return NULL;
    w->entries = ne;
    w->cap = cap;
  }
  e = &w->entries[w->n];
  memset(e, 0, sizeof(*e));
  /* one block per entry, the shape then the key: 200,000 entries, 200,000 allocations */
  if ((e->dims = calloc(1, ((size_t)rank + 1) * sizeof(int64_t) + klen + 1)) == NULL)
    return NULL;
  e->key = (uint8_t *)(e->dims + rank + 1);
  memcpy(e->key, key, klen);
  e->key[klen] = 0;
  e->key_len = klen;
  e->dtype = ck_dtype_base(dtype);
  e->rank = rank;
  if (rank)
    memcpy(e->dims, dims, (size_t)rank * sizeof(int64_t));
  w->n++;
  return e;
}

static int check_shape(int dtype, int rank, const int64_t *dims, uint64_t *nelem, struct ck_err *err,
                       const char *key)
{
  uint64_t n = 1;
  size_t esize = ck_dtype_size(dtype);

  if (!ck_dtype_storable(dtype))
    return ck_err_set(err, CK_EINVAL, "%s: dtype %d cannot be stored in a bundle", key, dtype);
  if (rank < 0 || rank > CK_MAX_RANK)
    return ck_err_set(err, CK_EINVAL, "%s: rank %d out of range", key, rank);
  for (int d = 0; d < rank; d++) {
    if (dims[d] < 0)
      return ck_err_set(err, CK_EINVAL, "%s: negative dimension", key);
    if (dims[d] != 0 && n > (uint64_t)INT64_MAX / (uint64_t)dims[d])
      return ck_err_set(err, CK_EINVAL, "%s: element count overflows", key);
    n *= (uint64_t)dims[d];
  }
  if (esize && n > (uint64_t)INT64_MAX / esize)
    return ck_err_set(err, CK_EINVAL, "%s: byte size overflows", key);
  *nelem = n;
  return 0;
}

static int begin_data(struct ck_bundle_writer *w, const void *key, size_t klen, int dtype, int rank,
                      const int64_t *dims, uint64_t nelem, struct ck_err *err)
{
  uint64_t expect = ck_dtype_size(dtype) ? nelem * ck_dtype_size(dtype) : UINT64_MAX;
  struct ck_entry *e;
  int s = pick_shard(w, key, klen, expect, err);

  if (s < 0)
    return s;
  if ((e = new_entry(w, key, klen, dtype, rank, dims)) == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  e->nelem = nelem;
  e->shard = s;
  e->offset = w->shards[s].size;
  w->cur = e;
  w->expect = expect;
  ck_tcrc_init(&w->tcrc, dtype, nelem);
  return 0;
}

int ck_bundle_writer_begin(struct ck_bundle_writer *w, const void *key, size_t klen, int dtype, int rank,
                           const int64_t *dims, struct ck_err *err)
{
  uint64_t nelem;
  int rc;

  if (w->cur || w->failed)
    return ck_err_set(err, CK_EINVAL, "writer busy or failed");
  if (klen == 0 || ((const uint8_t *)key)[0] == 0x00)
    return ck_err_set(err, CK_EINVAL, "tensor keys must be non-empty and not start with a NUL byte");
  if ((rc = check_shape(dtype, rank, dims, &nelem, err, key)) != 0)
    return rc;
  return begin_data(w, key, klen, dtype, rank, dims, nelem, err);
}

static int is_full(const struct ck_entry *e, const void *key, size_t klen)
{
  return e->nslices && ck_key_cmp(e->key, e->key_len, key, klen) == 0;
}

/* Slices of one variable come one after another: try the last variable first, so
 * writing n slices costs n, not n^2. */
static struct ck_entry *find_full(struct ck_bundle_writer *w, const void *key, size_t klen)
{
  if (w->last_full > 0 && is_full(&w->entries[w->last_full - 1], key, klen))
    return &w->entries[w->last_full - 1];
  for (size_t i = 0; i < w->n; i++)
    if (is_full(&w->entries[i], key, klen)) {
      w->last_full = i + 1;
      return &w->entries[i];
    }
  return NULL;
}

static int add_slice_spec(struct ck_entry *full, int rank, const int64_t *start, const int64_t *length)
{
  size_t n = full->nslices;
  struct ck_slice *s;

  if ((n & (n - 1)) == 0) { /* capacity doubles at powers of two */
    struct ck_slice *ns = realloc(full->slices, (n ? 2 * n : 1) * sizeof(*ns));
    if (ns == NULL)
      return -ENOMEM;
    full->slices = ns;
  }
  s = &full->slices[n];
  if ((s->start = calloc(2 * (size_t)rank, sizeof(int64_t))) == NULL)
    return -ENOMEM;
  s->length = s->start + rank;
  for (int d = 0; d < rank; d++) {
    s->start[d] = length[d] < 0 ? 0 : start[d];
    s->length[d] = length[d] < 0 ? -1 : length[d];
  }
  full->nslices++;
  return 0;
}

int ck_bundle_writer_begin_slice(struct ck_bundle_writer *w, const void *key, size_t klen, int dtype,
                                 int rank, const int64_t *dims, const int64_t *start, const int64_t *length,
                                 struct ck_err *err)
{
  int64_t sdims[CK_MAX_RANK];
  uint64_t nelem, snelem;
  struct ck_entry *full;
  uint8_t *skey;
  size_t sklen;
  int whole = 1, rc;

  if (w->cur || w->failed)
    return ck_err_set(err, CK_EINVAL, "writer busy or failed");
  if ((rc = check_shape(dtype, rank, dims, &nelem, err, key)) != 0)
    return rc;
  if (rank < 1 || ck_dtype_size(dtype) == 0)
    return ck_err_set(err, CK_EINVAL, "%s: slices need rank >= 1 and a fixed-size dtype", (const char *)key);
  for (int d = 0; d < rank; d++) {
    if (length[d] >= 0 && (start[d] < 0 || start[d] > dims[d] || length[d] > dims[d] - start[d]))
      return ck_err_set(err, CK_EINVAL, "%s: slice outside the tensor in dimension %d", (const char *)key, d);
    sdims[d] = length[d] < 0 ? dims[d] : length[d];
    if (sdims[d] != dims[d])
      whole = 0;
  }
  if (whole)
    return ck_bundle_writer_begin(w, key, klen, dtype, rank, dims, err);
  if ((full = find_full(w, key, klen)) == NULL) {
    if ((full = new_entry(w, key, klen, dtype, rank, dims)) == NULL)
      return ck_err_set(err, -ENOMEM, "out of memory");
    w->last_full = (size_t)(full - w->entries) + 1;
    full->nelem = nelem;
  } else if (full->dtype != ck_dtype_base(dtype) || full->rank != rank ||
             memcmp(full->dims, dims, (size_t)rank * sizeof(int64_t)) != 0) {
    return ck_err_set(err, CK_EINVAL, "%s: slice disagrees with earlier slices' dtype or shape", (const char *)key);
  }
  if (add_slice_spec(full, rank, start, length) != 0 ||
      ck_slice_key_encode(key, klen, rank, start, length, &skey, &sklen) != 0)
    return ck_err_set(err, -ENOMEM, "out of memory");
  check_shape(dtype, rank, sdims, &snelem, NULL, key);
  rc = begin_data(w, skey, sklen, dtype, rank, sdims, snelem, err);
  free(skey);
  return rc;
}

int ck_bundle_writer_append(struct ck_bundle_writer *w, const void *data, size_t len, struct ck_err *err)
{
  struct ck_entry *e = w->cur;
  struct wshard *sh;
  int rc;

  if (e == NULL)
    return ck_err_set(err, CK_EINVAL, "append without begin");
  sh = &w->shards[e->shard];
  if (w->expect != UINT64_MAX && len > w->expect - e->size) {
    w->failed = 1;
    return ck_err_set(err, CK_EINVAL, "%s: more than the %llu bytes of its dtype and shape", e->key,
                      (unsigned long long)w->expect);
  }
  if ((rc = ck_tcrc_update(&w->tcrc, data, len)) != 0) {
    w->failed = 1;
    return ck_err_set(err, rc, "%s: %s", e->key, w->tcrc.why);
  }
  if ((rc = ck_obuf_append(&sh->ob, data, len)) != 0) {
    w->failed = 1;
    return ck_err_set(err, rc, "%s: write: %s", sh->tmp, strerror(-rc));
  }
  e->size += len;
  sh->size += len; /* (ck_obuf starts writeback as bytes reach the file) */
  return 0;
}

int ck_bundle_writer_end(struct ck_bundle_writer *w, struct ck_err *err)
{
  struct ck_entry *e = w->cur;
  uint32_t crc;
  int rc;

  if (e == NULL)
    return ck_err_set(err, CK_EINVAL, "end without begin");
  w->cur = NULL;
  if (w->expect != UINT64_MAX && e->size != w->expect) {
    w->failed = 1;
    return ck_err_set(err, CK_EINVAL, "%s: %llu bytes written, its dtype and shape need %llu", e->key,
                      (unsigned long long)e->size, (unsigned long long)w->expect);
  }
  if ((rc = ck_tcrc_final(&w->tcrc, &crc)) != 0) {
    w->failed = 1;
    return ck_err_set(err, rc, "%s: %s", e->key, w->tcrc.why);
  }
  e->crc32c = ck_crc32c_mask(crc);
  w->last_crc = e->crc32c;
  return 0;
}

uint32_t ck_bundle_writer_last_crc(const struct ck_bundle_writer *w)
{
  return w->last_crc;
}

int ck_bundle_writer_add(struct ck_bundle_writer *w, const void *key, size_t klen, int dtype, int rank,
                         const int64_t *dims, const void *data, size_t len, struct ck_err *err)
{
  int rc = ck_bundle_writer_begin(w, key, klen, dtype, rank, dims, err);

  if (rc == 0)
    rc = ck_bundle_writer_append(w, data, len, err);
  if (rc == 0)
    rc = ck_bundle_writer_end(w, err);
  return rc;
}

/* ---- finish ---- */

static int cmp_key(const void *pa, const void *pb)
{
  const struct ck_entry *a = *(const struct ck_entry *const *)pa;
  const struct ck_entry *b = *(const struct ck_entry *const *)pb;

  return ck_key_cmp(a->key, a->key_len, b->key, b->key_len);
}

static int pack_entry(const struct ck_entry *e, uint8_t **out, size_t *outlen)
{
  Tensorflow__BundleEntryProto p = TENSORFLOW__BUNDLE_ENTRY_PROTO__INIT;
  Tensorflow__TensorShapeProto shape = TENSORFLOW__TENSOR_SHAPE_PROTO__INIT;
  Tensorflow__TensorShapeProto__Dim *dims = calloc((size_t)e->rank + 1, sizeof(*dims));
  Tensorflow__TensorShapeProto__Dim **dimp = calloc((size_t)e->rank + 1, sizeof(*dimp));
  Tensorflow__TensorSliceProto *sl = calloc(e->nslices + 1, sizeof(*sl));
  Tensorflow__TensorSliceProto **slp = calloc(e->nslices + 1, sizeof(*slp));
  Tensorflow__TensorSliceProto__Extent *ext = calloc(e->nslices * (size_t)e->rank + 1, sizeof(*ext));
  Tensorflow__TensorSliceProto__Extent **extp = calloc(e->nslices * (size_t)e->rank + 1, sizeof(*extp));
  int rc = -ENOMEM;

  if (!dims || !dimp || !sl || !slp || !ext || !extp)
    goto out;
  for (int d = 0; d < e->rank; d++) {
    tensorflow__tensor_shape_proto__dim__init(&dims[d]);
    dims[d].size = e->dims[d];
    dimp[d] = &dims[d];
  }
  shape.n_dim = (size_t)e->rank;
  shape.dim = dimp;
  p.dtype = (Tensorflow__DataType)e->dtype;
  p.shape = &shape;
  p.shard_id = e->nslices ? 0 : e->shard;
  p.offset = e->nslices ? 0 : (int64_t)e->offset;
  p.size = e->nslices ? 0 : (int64_t)e->size;
  p.crc32c = e->nslices ? 0 : e->crc32c;
  for (size_t i = 0; i < e->nslices; i++) {
    tensorflow__tensor_slice_proto__init(&sl[i]);
    sl[i].n_extent = (size_t)e->rank;
    sl[i].extent = &extp[i * (size_t)e->rank];
    for (int d = 0; d < e->rank; d++) {
      Tensorflow__TensorSliceProto__Extent *x = &ext[i * (size_t)e->rank + (size_t)d];
      tensorflow__tensor_slice_proto__extent__init(x);
      if (e->slices[i].length[d] >= 0) {
        x->start = e->slices[i].start[d];
        x->has_length_case = TENSORFLOW__TENSOR_SLICE_PROTO__EXTENT__HAS_LENGTH_LENGTH;
        x->length = e->slices[i].length[d];
      }
      extp[i * (size_t)e->rank + (size_t)d] = x;
    }
    slp[i] = &sl[i];
  }
  p.n_slices = e->nslices;
  p.slices = slp;
  *outlen = tensorflow__bundle_entry_proto__get_packed_size(&p);
  if ((*out = malloc(*outlen + 1)) != NULL) {
    tensorflow__bundle_entry_proto__pack(&p, *out);
    rc = 0;
  }
out:
  free(dims);
  free(dimp);
  free(sl);
  free(slp);
  free(ext);
  free(extp);
  return rc;
}

static int write_index(struct ck_bundle_writer *w, int fd, struct ck_err *err)
{
  Tensorflow__BundleHeaderProto h = TENSORFLOW__BUNDLE_HEADER_PROTO__INIT;
  Tensorflow__VersionDef v = TENSORFLOW__VERSION_DEF__INIT;
  struct ck_table_builder *tb = NULL;
  const struct ck_entry **order = malloc((w->n + 1) * sizeof(*order));
  uint8_t hbuf[64];
  size_t hlen;
  int rc;

  if (order == NULL || ck_table_builder_new(fd, &tb) != 0) {
    free(order);
    return ck_err_set(err, -ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < w->n; i++)
    order[i] = &w->entries[i];
  qsort(order, w->n, sizeof(*order), cmp_key);
  v.producer = 1;
  h.num_shards = w->nshards;
  h.version = &v;
  hlen = tensorflow__bundle_header_proto__pack(&h, hbuf);
  rc = ck_table_builder_add(tb, "", 0, hbuf, hlen);
  for (size_t i = 0; rc == 0 && i < w->n; i++) {
    uint8_t *val;
    size_t vlen;
    if (i > 0 && cmp_key(&order[i - 1], &order[i]) == 0) {
      rc = ck_err_set(err, CK_EINVAL, "%s: duplicate tensor key", order[i]->key);
      break;
    }
    if ((rc = pack_entry(order[i], &val, &vlen)) != 0)
      break;
    rc = ck_table_builder_add(tb, order[i]->key, order[i]->key_len, val, vlen);
    free(val);
  }
  if (rc == 0)
    rc = ck_table_builder_finish(tb);
  ck_table_builder_free(tb);
  free(order);
  if (rc != 0 && err && err->code != rc)
    ck_err_set(err, rc, "%s.index: write: %s", w->prefix, ck_strerror(rc));
  return rc;
}

static int close_shards(struct ck_bundle_writer *w, struct ck_err *err)
{
  int rc;

  if (w->nshards == 0 && (rc = open_shard(w, 0, err)) != 0)
    return rc; /* an empty bundle still has one (empty) data file */
  for (int i = 0; i < w->nshards; i++) {
    struct wshard *sh = &w->shards[i];
    if (sh->tmp == NULL && (rc = open_shard(w, i, err)) != 0)
      return rc;
    if (sh->ob.buf && (rc = ck_obuf_flush(&sh->ob)) != 0)
      return ck_err_set(err, rc, "%s: write: %s", sh->tmp, strerror(-rc));
    if ((rc = ck_fsync_drop(sh->fd, w->o.keep_cached)) != 0 || close(sh->fd) != 0) {
      rc = rc ? rc : -errno;
      sh->fd = -1;
      return ck_err_set(err, rc, "%s: fsync: %s", sh->tmp, strerror(-rc));
    }
    sh->fd = -1;
  }
  return 0;
}

/* Rename data files, then the index. On failure undo the renames done. */
static int publish(struct ck_bundle_writer *w, const char *index_tmp, struct ck_err *err)
{
  char *index_final = ck_asprintf("%s.index", w->prefix);
  int done = 0, rc = 0;
  char **finals = calloc((size_t)w->nshards, sizeof(char *));

  if (!index_final || !finals) {
    rc = ck_err_set(err, -ENOMEM, "out of memory");
    goto out;
  }
  if (w->o.mark_name && w->o.mark_id) /* best effort: file systems without user xattrs keep none */
    for (int i = -1; i < w->nshards; i++) /* -1: the index; data files too, so each is known as ours */
      ck_mark_set(i < 0 ? index_tmp : w->shards[i].tmp, w->o.mark_name, w->o.mark_id);
  for (int i = -1; i < w->nshards && (w->o.mode || w->o.chgrp); i++) /* -1: the index */
    if ((rc = ck_set_owner(i < 0 ? index_tmp : w->shards[i].tmp, w->o.mode, w->o.chgrp, w->o.gid)) != 0) {
      ck_err_set(err, rc, "%s: cannot set the outputs' mode or group: %s", w->prefix, strerror(-rc));
      goto out;
    }
  for (; done < w->nshards; done++) {
    finals[done] = ck_asprintf("%s.data-%05d-of-%05d", w->prefix, done, w->nshards);
    if (finals[done] == NULL ||
        (rc = ck_publish_rename(w->shards[done].tmp, finals[done], w->o.keep_foreign)) != 0) {
      rc = finals[done] ? rc : -ENOMEM;
      ck_err_set(err, rc, "%s: %s", finals[done] ? finals[done] : "data file", ck_publish_error(rc));
      goto out;
    }
    free(w->shards[done].tmp);
    w->shards[done].tmp = NULL;
  }
  if ((rc = ck_publish_rename(index_tmp, index_final, w->o.keep_foreign)) != 0) {
    ck_err_set(err, rc, "%s: %s", index_final, ck_publish_error(rc));
    goto out;
  }
  if ((rc = ck_fsync_dir(w->dir)) != 0)
    ck_err_set(err, rc, "%s: fsync: %s", w->dir, strerror(-rc));
out:
  for (int i = 0; i < w->nshards && finals; i++) {
    if (rc != 0 && i < done && finals[i])
      unlink(finals[i]);
    free(finals[i]);
  }
  free(finals);
  free(index_final);
  return rc;
}

int ck_bundle_writer_finish(struct ck_bundle_writer *w, struct ck_err *err)
{
  char *index_base = ck_asprintf("%s.index", w->prefix);
  char *index_tmp = index_base ? ck_temp_name(index_base) : NULL;
  int fd = -1, rc;

  if (index_tmp == NULL) {
    rc = ck_err_set(err, -ENOMEM, "out of memory");
    goto out;
  }
  if (w->cur || w->failed) {
    rc = ck_err_set(err, CK_EINVAL, "%s: a tensor was left unfinished or failed", w->prefix);
    goto out;
  }
  if ((rc = close_shards(w, err)) != 0)
    goto out;
  if ((fd = ck_create_excl(index_tmp)) < 0) {
    rc = ck_err_set(err, fd, "%s: cannot create: %s", index_tmp, strerror(-fd));
    goto out;
  }
  if ((rc = write_index(w, fd, err)) != 0)
    goto out;
  if (fsync(fd) != 0) {
    rc = ck_err_set(err, -errno, "%s: fsync: %s", index_tmp, strerror(errno));
    goto out;
  }
  close(fd);
  fd = -1;
  rc = publish(w, index_tmp, err);
out:
  if (fd >= 0)
    close(fd);
  if (rc != 0 && index_tmp)
    unlink(index_tmp);
  free(index_tmp);
  free(index_base);
  if (rc != 0)
    ck_bundle_writer_abort(w);
  else
    writer_free(w);
  return rc;
}

int ck_tf_strings_encode(const uint8_t *const *strs, const size_t *lens, size_t n, uint8_t **out,
                         size_t *outlen)
{
  size_t total = 4, pos = 0;
  uint32_t crc = 0;
  uint8_t *p, tmp[8];

  for (size_t i = 0; i < n; i++) {
    if (lens[i] > SIZE_MAX - total - CK_VARINT64_MAX)
      return CK_ELIMIT;
    total += CK_VARINT64_MAX + lens[i];
  }
  if ((p = malloc(total)) == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    pos += ck_put_varint64(p + pos, lens[i]);
    if (lens[i] <= UINT32_MAX) {
      ck_put_fixed32(tmp, (uint32_t)lens[i]);
      crc = ck_crc32c_extend(crc, tmp, 4);
    } else {
      ck_put_fixed64(tmp, lens[i]);
      crc = ck_crc32c_extend(crc, tmp, 8);
    }
  }
  ck_put_fixed32(p + pos, ck_crc32c_mask(crc));
  pos += 4;
  for (size_t i = 0; i < n; i++) {
    if (lens[i])
      memcpy(p + pos, strs[i], lens[i]);
    pos += lens[i];
  }
  *out = p;
  *outlen = pos;
  return 0;
}
