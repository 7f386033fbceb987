/* Bundle reader.
 *
 * Opening parses the whole index once (entries are small) and checks each entry
 * against what it claims: a known dtype, a valid shape whose byte size does not
 * overflow and agrees with `size`, a shard that exists, and a byte range inside
 * that shard's real size. Only then can tensor bytes be read, in caller-sized
 * chunks, so a hostile index cannot make us allocate or seek past what exists. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle.h"
#include "ckptstate.h"
#include "crc32c.h"
#include "dtype.h"
#include "fileio.h"
#include "ordered_code.h"
#include "readahead.h"
#include "table.h"
#include "tensor_bundle.pb-c.h"
#include "tensor_crc.h"

struct ck_bundle {
  char *prefix;
  char *index_path;
  int index_fd;
  int num_shards;
  int producer;
  int min_consumer;
  int *shard_fds;
  char **shard_paths;
  uint64_t *shard_sizes;
  struct ck_entry *entries;
  size_t nentries;
  size_t cap;
  const struct ck_entry **data_order;
  size_t ndata;
  int have_header;
  unsigned data_blocks;
  unsigned snappy_blocks;
  int read_ahead;     /* ck_bundle_stream reads ahead (ck_read_range) */
  struct ck_err *err; /* during open */
};

static void slice_free(struct ck_slice *s)
{
  free(s->start); /* length shares it */
}

/* rank-sized start and length in one allocation: a slice costs 16 bytes per dimension. */
static int slice_alloc(struct ck_slice *s, int rank)
{
  s->start = calloc(2 * (size_t)rank + 1, sizeof(int64_t));
  s->length = s->start ? s->start + rank : NULL;
  return s->start ? 0 : -ENOMEM;
}

static void entry_free(struct ck_entry *e)
{
  free(e->key);
  free(e->dims);
  for (size_t i = 0; i < e->nslices; i++)
    slice_free(&e->slices[i]);
  free(e->slices);
  slice_free(&e->slice);
}

void ck_bundle_close(struct ck_bundle *b)
{
  if (b == NULL)
    return;
  for (size_t i = 0; i < b->nentries; i++)
    entry_free(&b->entries[i]);
  free(b->entries);
  free(b->data_order);
  for (int i = 0; b->shard_fds && i < b->num_shards; i++) {
    if (b->shard_fds[i] >= 0)
      close(b->shard_fds[i]);
    free(b->shard_paths[i]);
  }
  free(b->shard_fds);
  free(b->shard_paths);
  free(b->shard_sizes);
  if (b->index_fd >= 0)
    close(b->index_fd);
  free(b->index_path);
  free(b->prefix);
  free(b);
}

/* ---- path resolution ---- */

static int ends_with(const char *s, const char *suffix)
{
  size_t ls = strlen(s), lx = strlen(suffix);

  return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

/* A directory without a `checkpoint` file: use its only *.index (SavedModel variables/). */
static int single_index_in(const char *dir, char **prefix, struct ck_err *err)
{
  struct dirent **list;
  char *found = NULL;
  int n = 0, cnt = scandir(dir, &list, NULL, alphasort);

  if (cnt < 0)
    return ck_err_set(err, -errno, "%s: cannot list directory: %s", dir, strerror(errno));
  for (int i = 0; i < cnt; i++) {
    const char *name = list[i]->d_name;
    if (name[0] != '.' && ends_with(name, ".index")) {
      n++;
      free(found);
      found = strndup(name, strlen(name) - strlen(".index"));
    }
    free(list[i]);
  }
  free(list);
  if (n != 1) {
    free(found);
    if (n == 0)
      return ck_err_set(err, CK_ENOTFOUND, "%s: no `checkpoint` file and no *.index in the directory", dir);
    return ck_err_set(err, CK_ENOTFOUND,
                      "%s: no `checkpoint` file and %d *.index files; name the prefix", dir, n);
  }
  *prefix = found ? ck_path_join(dir, found) : NULL;
  free(found);
  return *prefix ? 0 : -ENOMEM;
}

static int prefix_from_dir(const char *dir, char **prefix, struct ck_err *err)
{
  struct ck_ckptstate cs;
  char *p, *idx;
  int rc;

  rc = ck_ckptstate_read(dir, &cs, err);
  if (rc == CK_ENOTFOUND)
    return single_index_in(dir, prefix, err);
  if (rc != 0)
    return rc;
  if (cs.model_checkpoint_path == NULL || cs.model_checkpoint_path[0] == '\0') {
    ck_ckptstate_free(&cs);
    return ck_err_set(err, CK_ENOTFOUND, "%s/checkpoint: no model_checkpoint_path", dir);
  }
  p = ck_path_join(dir, cs.model_checkpoint_path);
  idx = p ? ck_asprintf("%s.index", p) : NULL;
  if (idx && access(idx, F_OK) != 0 && cs.model_checkpoint_path[0] == '/') {
    /* An absolute path from another machine: try the same name in this directory. */
    char *base = ck_basename(cs.model_checkpoint_path);
    char *alt = base ? ck_path_join(dir, base) : NULL;
    free(base);
    if (alt) {
      free(p);
      p = alt;
    }
  }
  free(idx);
  ck_ckptstate_free(&cs);
  if (p == NULL)
    return -ENOMEM;
  *prefix = p;
  return 0;
}

static int resolve_prefix(const char *path, char **prefix, struct ck_err *err)
{
  struct stat st;
  const char *data;

  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
    return prefix_from_dir(path, prefix, err);
  if (ends_with(path, ".index"))
    *prefix = strndup(path, strlen(path) - strlen(".index"));
  else if ((data = strstr(path, ".data-")) != NULL && strlen(data) == strlen(".data-00000-of-00000"))
    *prefix = strndup(path, (size_t)(data - path));
  else
    *prefix = strdup(path);
  return *prefix ? 0 : -ENOMEM;
}

/* ---- index parsing ---- */

static int parse_header(struct ck_bundle *b, const uint8_t *val, size_t vlen)
{
  Tensorflow__BundleHeaderProto *h = tensorflow__bundle_header_proto__unpack(NULL, vlen, val);
  int rc = 0;

  if (h == NULL)
    return ck_err_set(b->err, CK_EFORMAT, "%s: header entry is not a BundleHeaderProto", b->index_path);
  if (h->endianness != TENSORFLOW__BUNDLE_HEADER_PROTO__ENDIANNESS__LITTLE) {
    rc = ck_err_set(b->err, CK_EUNSUP,
                    "%s: big-endian bundle: byte swapping is not implemented (convert it on a big-endian host)",
                    b->index_path);
  } else if (h->num_shards < 1 || h->num_shards > CK_MAX_SHARDS) {
    rc = ck_err_set(b->err, CK_EFORMAT, "%s: header: num_shards %d out of range 1..%d",
                    b->index_path, h->num_shards, CK_MAX_SHARDS);
  } else if (h->version) {
    b->producer = h->version->producer;
    b->min_consumer = h->version->min_consumer;
    /* TensorFlow's CheckVersions with our consumer version 1 and min producer 0. */
    if (h->version->producer < 0 || h->version->min_consumer > 1)
      rc = ck_err_set(b->err, CK_EUNSUP, "%s: bundle version producer %d min_consumer %d is newer than this reader",
                      b->index_path, h->version->producer, h->version->min_consumer);
    for (size_t i = 0; rc == 0 && i < h->version->n_bad_consumers; i++)
      if (h->version->bad_consumers[i] == 1)
        rc = ck_err_set(b->err, CK_EUNSUP, "%s: bundle marks consumer version 1 as bad", b->index_path);
  }
  if (rc == 0)
    b->num_shards = h->num_shards;
  tensorflow__bundle_header_proto__free_unpacked(h, NULL);
  return rc;
}

static int copy_slice(struct ck_bundle *b, const char *key, int rank, const Tensorflow__TensorSliceProto *sp,
                      const int64_t *dims, struct ck_slice *out)
{
  if ((int)sp->n_extent != rank)
    return ck_err_set(b->err, CK_EFORMAT, "%s: %s: slice has %zu extents for rank %d",
                      b->index_path, key, sp->n_extent, rank);
  if (slice_alloc(out, rank) != 0)
    return ck_err_set(b->err, -ENOMEM, "out of memory");
  for (int d = 0; d < rank; d++) {
    const Tensorflow__TensorSliceProto__Extent *x = sp->extent[d];
    int has_len = x->has_length_case == TENSORFLOW__TENSOR_SLICE_PROTO__EXTENT__HAS_LENGTH_LENGTH;
    out->start[d] = has_len ? x->start : 0;
    out->length[d] = has_len ? x->length : -1;
    if (has_len && (x->start < 0 || x->length < 0 || x->start > dims[d] || x->length > dims[d] - x->start))
      return ck_err_set(b->err, CK_EFORMAT, "%s: %s: slice extent %d [%lld, +%lld) outside dimension %lld",
                        b->index_path, key, d, (long long)x->start, (long long)x->length, (long long)dims[d]);
  }
  return 0;
}

static int fill_shape(struct ck_bundle *b, struct ck_entry *e, const Tensorflow__TensorShapeProto *sh)
{
  size_t esize = ck_dtype_size(e->dtype);
  uint64_t n = 1;

  if (sh == NULL)
    return 0; /* rank 0 */
  if (sh->unknown_rank)
    return ck_err_set(b->err, CK_EFORMAT, "%s: %s: shape of unknown rank", b->index_path, e->key);
  if (sh->n_dim > CK_MAX_RANK)
    return ck_err_set(b->err, CK_ELIMIT, "%s: %s: rank %zu exceeds %d", b->index_path, e->key,
                      sh->n_dim, CK_MAX_RANK);
  e->rank = (int)sh->n_dim;
  if ((e->dims = calloc(sh->n_dim + 1, sizeof(int64_t))) == NULL)
    return ck_err_set(b->err, -ENOMEM, "out of memory");
  for (size_t i = 0; i < sh->n_dim; i++) {
    int64_t d = sh->dim[i]->size;
    if (d < 0)
      return ck_err_set(b->err, CK_EFORMAT, "%s: %s: dimension %zu is %lld", b->index_path, e->key, i, (long long)d);
    e->dims[i] = d;
    if (d != 0 && n > (uint64_t)INT64_MAX / (uint64_t)d)
      return ck_err_set(b->err, CK_EFORMAT, "%s: %s: element count of the shape overflows", b->index_path, e->key);
    n *= (uint64_t)d;
  }
  if (esize && n > (uint64_t)INT64_MAX / esize)
    return ck_err_set(b->err, CK_EFORMAT, "%s: %s: byte size of the shape overflows", b->index_path, e->key);
  e->nelem = n;
  return 0;
}

static int check_entry_fields(struct ck_bundle *b, struct ck_entry *e, const Tensorflow__BundleEntryProto *p)
{
  if (!ck_dtype_storable(e->dtype))
    return ck_err_set(b->err, CK_EUNSUP, "%s: %s: unsupported dtype %d", b->index_path, e->key, (int)p->dtype);
  if (p->offset < 0 || p->size < 0)
    return ck_err_set(b->err, CK_EFORMAT, "%s: %s: negative offset or size", b->index_path, e->key);
  if (p->shard_id < 0 || p->shard_id >= b->num_shards)
    return ck_err_set(b->err, CK_EFORMAT, "%s: %s: shard %d outside 0..%d", b->index_path, e->key,
                      p->shard_id, b->num_shards - 1);
  if (p->n_slices > 0)
    return 0;
  if (!ck_dtype_is_varlen(e->dtype) && e->size != e->nelem * ck_dtype_size(e->dtype))
    return ck_err_set(b->err, CK_EFORMAT,
                      "%s: %s: size %llu disagrees with %s of %llu elements (%llu bytes)",
                      b->index_path, e->key, (unsigned long long)e->size, ck_dtype_name(e->dtype),
                      (unsigned long long)e->nelem, (unsigned long long)(e->nelem * ck_dtype_size(e->dtype)));
  /* Every string or variant element takes at least one length byte. */
  if (ck_dtype_is_varlen(e->dtype) && e->size > 0 && e->nelem > e->size)
    return ck_err_set(b->err, CK_EFORMAT, "%s: %s: %llu elements cannot fit in %llu bytes",
                      b->index_path, e->key, (unsigned long long)e->nelem, (unsigned long long)e->size);
  return 0;
}

static int parse_entry(struct ck_bundle *b, struct ck_entry *e, const uint8_t *val, size_t vlen)
{
  Tensorflow__BundleEntryProto *p = tensorflow__bundle_entry_proto__unpack(NULL, vlen, val);
  int rc;

  if (p == NULL)
    return ck_err_set(b->err, CK_EFORMAT, "%s: entry %s is not a BundleEntryProto", b->index_path, e->key);
  e->dtype = ck_dtype_base((int)p->dtype);
  e->shard = p->shard_id;
  e->offset = (uint64_t)p->offset;
  e->size = (uint64_t)p->size;
  e->crc32c = p->crc32c;
  if ((rc = fill_shape(b, e, p->shape)) == 0 && (rc = check_entry_fields(b, e, p)) == 0 && p->n_slices) {
    if ((e->slices = calloc(p->n_slices, sizeof(*e->slices))) == NULL)
      rc = ck_err_set(b->err, -ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < p->n_slices; i++) {
      e->nslices++;
      rc = copy_slice(b, (const char *)e->key, e->rank, p->slices[i], e->dims, &e->slices[i]);
    }
  }
  tensorflow__bundle_entry_proto__free_unpacked(p, NULL);
  return rc;
}

static int visit(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
  struct ck_bundle *b = ctx;
  struct ck_entry *e;

  if (!b->have_header) {
    if (klen != 0)
      return ck_err_set(b->err, CK_EFORMAT, "%s: first entry is not the bundle header", b->index_path);
    b->have_header = 1;
    return parse_header(b, val, vlen);
  }
  if (b->nentries == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 64;
    struct ck_entry *ne = realloc(b->entries, cap * sizeof(*ne));
    if (ne == NULL)
      return ck_err_set(b->err, -ENOMEM, "out of memory");
    b->entries = ne;
    b->cap = cap;
  }
  e = &b->entries[b->nentries];
  memset(e, 0, sizeof(*e));
  if ((e->key = malloc(klen + 1)) == NULL)
    return ck_err_set(b->err, -ENOMEM, "out of memory");
  memcpy(e->key, key, klen);
  e->key[klen] = 0;
  e->key_len = klen;
  b->nentries++;
  return parse_entry(b, e, val, vlen);
}

static int open_index(struct ck_bundle *b)
{
  struct ck_table *t = NULL;
  struct stat st;
  int rc;

  b->index_fd = open(b->index_path, O_RDONLY | O_CLOEXEC);
  if (b->index_fd < 0)
    return ck_err_set(b->err, errno == ENOENT ? CK_ENOTFOUND : -errno, "%s: %s", b->index_path,
                      strerror(errno));
  if (fstat(b->index_fd, &st) != 0)
    return ck_err_set(b->err, -errno, "%s: %s", b->index_path, strerror(errno));
  if ((rc = ck_table_open_fd(b->index_fd, (uint64_t)st.st_size, b->index_path, &t, b->err)) != 0)
    return rc;
  rc = ck_table_foreach(t, visit, b, b->err);
  b->data_blocks = ck_table_stats(t)->data_blocks;
  b->snappy_blocks = ck_table_stats(t)->snappy_blocks;
  ck_table_free(t);
  if (rc == 0 && !b->have_header)
    rc = ck_err_set(b->err, CK_EFORMAT, "%s: no bundle header entry", b->index_path);
  return rc;
}

/* ---- shards, slices and data order ---- */

static int open_shards(struct ck_bundle *b)
{
  b->shard_fds = malloc(sizeof(int) * (size_t)b->num_shards);
  b->shard_paths = calloc((size_t)b->num_shards, sizeof(char *));
  b->shard_sizes = calloc((size_t)b->num_shards, sizeof(uint64_t));
  if (!b->shard_fds || !b->shard_paths || !b->shard_sizes)
    return ck_err_set(b->err, -ENOMEM, "out of memory");
  for (int i = 0; i < b->num_shards; i++)
    b->shard_fds[i] = -1;
  for (int i = 0; i < b->num_shards; i++) {
    struct stat st;
    b->shard_paths[i] = ck_asprintf("%s.data-%05d-of-%05d", b->prefix, i, b->num_shards);
    if (b->shard_paths[i] == NULL)
      return ck_err_set(b->err, -ENOMEM, "out of memory");
    b->shard_fds[i] = open(b->shard_paths[i], O_RDONLY | O_CLOEXEC);
    if (b->shard_fds[i] < 0 || fstat(b->shard_fds[i], &st) != 0)
      return ck_err_set(b->err, errno == ENOENT ? CK_ENOTFOUND : -errno, "%s: missing shard %d of %d: %s",
                        b->shard_paths[i], i, b->num_shards, strerror(errno));
    b->shard_sizes[i] = (uint64_t)st.st_size;
  }
  return 0;
}

static int check_ranges(struct ck_bundle *b)
{
  for (size_t i = 0; i < b->nentries; i++) {
    const struct ck_entry *e = &b->entries[i];
    uint64_t have = b->shard_sizes[e->shard];
    if (e->nslices)
      continue;
    if (e->offset > have || e->size > have - e->offset)
      return ck_err_set(b->err, CK_ETRUNC,
                        "%s: %s: bytes [%llu, %llu) lie past the end of %s (%llu bytes)", b->index_path,
                        e->key, (unsigned long long)e->offset, (unsigned long long)(e->offset + e->size),
                        b->shard_paths[e->shard], (unsigned long long)have);
  }
  return 0;
}

static int find_index(const struct ck_bundle *b, const void *key, size_t klen)
{
  size_t lo = 0, hi = b->nentries;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = ck_key_cmp(b->entries[mid].key, b->entries[mid].key_len, key, klen);
    if (c == 0)
      return (int)mid;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

/* Tie each slice entry (key starting with 0x00) to its partitioned variable. */
static int link_slices(struct ck_bundle *b)
{
  for (size_t i = 0; i < b->nentries; i++) {
    struct ck_entry *e = &b->entries[i], *full;
    int64_t start[CK_MAX_RANK], length[CK_MAX_RANK];
    uint8_t *name;
    size_t nlen;
    int rank, fi, rc;

    if (e->key_len == 0 || e->key[0] != 0x00)
      continue;
    rc = ck_slice_key_decode(e->key, e->key_len, CK_MAX_RANK, &name, &nlen, &rank, start, length);
    if (rc != 0)
      return ck_err_set(b->err, rc, "%s: entry %zu: malformed slice key", b->index_path, i);
    if (slice_alloc(&e->slice, rank) != 0) {
      free(name);
      return ck_err_set(b->err, -ENOMEM, "out of memory");
    }
    memcpy(e->slice.start, start, (size_t)rank * sizeof(int64_t));
    memcpy(e->slice.length, length, (size_t)rank * sizeof(int64_t));
    fi = find_index(b, name, nlen);
    if (fi < 0 || b->entries[fi].nslices == 0) {
      rc = ck_err_set(b->err, CK_EFORMAT, "%s: slice of %s has no partitioned-variable entry",
                      b->index_path, name);
      free(name);
      return rc;
    }
    full = &b->entries[fi];
    if (full->rank != rank || full->dtype != e->dtype) {
      rc = ck_err_set(b->err, CK_EFORMAT, "%s: slice of %s disagrees with its rank or dtype", b->index_path, name);
      free(name);
      return rc;
    }
    free(name);
    e->is_slice = 1;
    e->full = full;
  }
  return 0;
}

/* Slice i of full must have its data entry, holding as many bytes as its extent needs. */
static int check_slice_data(struct ck_bundle *b, const struct ck_entry *full, size_t i, uint8_t *seen)
{
  const struct ck_slice *s = &full->slices[i];
  size_t esize = ck_dtype_size(full->dtype), klen;
  uint64_t vol = 1;
  uint8_t *key;
  int fi;

  if (ck_slice_key_encode(full->key, full->key_len, full->rank, s->start, s->length, &key, &klen) != 0)
    return ck_err_set(b->err, -ENOMEM, "out of memory");
  fi = find_index(b, key, klen);
  free(key);
  if (fi < 0 || b->entries[fi].full != full)
    return ck_err_set(b->err, CK_EFORMAT, "%s: %s: slice %zu of %zu has no data entry", b->index_path,
                      full->key, i, full->nslices);
  if (seen[fi])
    return ck_err_set(b->err, CK_EFORMAT, "%s: %s: slice %zu is listed twice", b->index_path, full->key, i);
  seen[fi] = 1;
  for (int d = 0; d < full->rank; d++)
    vol *= s->length[d] < 0 ? (uint64_t)full->dims[d] : (uint64_t)s->length[d];
  if (esize && b->entries[fi].size != vol * esize)
    return ck_err_set(b->err, CK_EFORMAT, "%s: %s: slice %zu holds %llu bytes, its extent needs %llu",
                      b->index_path, full->key, i, (unsigned long long)b->entries[fi].size,
                      (unsigned long long)(vol * esize));
  return 0;
}

/* Every partitioned variable: each listed slice has its data, the slices tile the
 * tensor exactly once, and no slice entry is left unlisted. Otherwise a reader would
 * drop the variable or assemble it wrong. */
static int check_partitions(struct ck_bundle *b)
{
  uint8_t *seen = calloc(b->nentries + 1, 1);
  int rc = seen ? 0 : ck_err_set(b->err, -ENOMEM, "out of memory");

  for (size_t i = 0; rc == 0 && i < b->nentries; i++) {
    const struct ck_entry *full = &b->entries[i];
    for (size_t k = 0; rc == 0 && k < full->nslices; k++)
      rc = check_slice_data(b, full, k, seen);
    if (rc == 0 && full->nslices)
      rc = ck_slices_check_cover(full, b->index_path, b->err);
  }
  for (size_t i = 0; rc == 0 && i < b->nentries; i++)
    if (b->entries[i].is_slice && !seen[i])
      rc = ck_err_set(b->err, CK_EFORMAT, "%s: %s: a slice entry is not listed by the variable",
                      b->index_path, b->entries[i].full->key);
  free(seen);
  return rc;
}

static int cmp_data(const void *pa, const void *pb)
{
  const struct ck_entry *a = *(const struct ck_entry *const *)pa;
  const struct ck_entry *b = *(const struct ck_entry *const *)pb;

  if (a->shard != b->shard)
    return a->shard < b->shard ? -1 : 1;
  if (a->offset != b->offset)
    return a->offset < b->offset ? -1 : 1;
  /* TensorFlow writes in Add() order: an empty tensor shares its offset with the
   * tensor added after it, so at one offset the empty ones came first. Their order
   * among themselves is lost; key order is the guess. */
  if ((a->size == 0) != (b->size == 0))
    return a->size == 0 ? -1 : 1;
  return ck_key_cmp(a->key, a->key_len, b->key, b->key_len);
}

static int build_data_order(struct ck_bundle *b)
{
  if ((b->data_order = malloc(sizeof(*b->data_order) * (b->nentries + 1))) == NULL)
    return ck_err_set(b->err, -ENOMEM, "out of memory");
  for (size_t i = 0; i < b->nentries; i++)
    if (b->entries[i].nslices == 0)
      b->data_order[b->ndata++] = &b->entries[i];
  qsort(b->data_order, b->ndata, sizeof(*b->data_order), cmp_data);
  return 0;
}

int ck_bundle_open(const char *path, int flags, struct ck_bundle **out, struct ck_err *err)
{
  struct ck_bundle *b = calloc(1, sizeof(*b));
  int rc;

  *out = NULL;
  if (b == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  b->index_fd = -1;
  b->err = err;
  if ((rc = resolve_prefix(path, &b->prefix, err)) != 0)
    goto fail;
  if ((b->index_path = ck_asprintf("%s.index", b->prefix)) == NULL) {
    rc = ck_err_set(err, -ENOMEM, "out of memory");
    goto fail;
  }
  if ((rc = open_index(b)) != 0 || (rc = link_slices(b)) != 0 ||
      (rc = check_partitions(b)) != 0 || (rc = build_data_order(b)) != 0)
    goto fail;
  if (!(flags & CK_BUNDLE_INDEX_ONLY) && ((rc = open_shards(b)) != 0 || (rc = check_ranges(b)) != 0))
    goto fail;
  b->err = NULL;
  *out = b;
  return 0;
fail:
  ck_bundle_close(b);
  return rc;
}

/* ---- accessors ---- */

const char *ck_bundle_prefix(const struct ck_bundle *b) { return b->prefix; }
int ck_bundle_num_shards(const struct ck_bundle *b) { return b->num_shards; }
size_t ck_bundle_count(const struct ck_bundle *b) { return b->nentries; }
size_t ck_bundle_data_count(const struct ck_bundle *b) { return b->ndata; }

void ck_bundle_version(const struct ck_bundle *b, int *producer, int *min_consumer)
{
  *producer = b->producer;
  *min_consumer = b->min_consumer;
}

const struct ck_entry *ck_bundle_entry(const struct ck_bundle *b, size_t i)
{
  return i < b->nentries ? &b->entries[i] : NULL;
}

const struct ck_entry *ck_bundle_data_entry(const struct ck_bundle *b, size_t i)
{
  return i < b->ndata ? b->data_order[i] : NULL;
}

const struct ck_entry *ck_bundle_find(const struct ck_bundle *b, const void *key, size_t klen)
{
  int i = find_index(b, key, klen);

  return i < 0 ? NULL : &b->entries[i];
}

void ck_bundle_index_stats(const struct ck_bundle *b, unsigned *data_blocks, unsigned *snappy_blocks)
{
  *data_blocks = b->data_blocks;
  *snappy_blocks = b->snappy_blocks;
}

const char *ck_bundle_shard_path(const struct ck_bundle *b, int shard)
{
  if (b->shard_paths == NULL || shard < 0 || shard >= b->num_shards)
    return NULL;
  return b->shard_paths[shard];
}

uint64_t ck_entry_tensor_bytes(const struct ck_entry *e)
{
  if (e->nslices)
    return e->nelem * ck_dtype_size(e->dtype);
  return e->size;
}

void ck_entry_shape_str(const struct ck_entry *e, char *buf, size_t len)
{
  size_t n = 0;

  if (len == 0)
    return;
  buf[0] = 0;
  if (e->rank == 0) {
    snprintf(buf, len, "scalar");
    return;
  }
  for (int d = 0; d < e->rank && n < len; d++)
    n += (size_t)snprintf(buf + n, len - n, d ? "x%lld" : "%lld", (long long)e->dims[d]);
}

void ck_entry_key_str(const struct ck_entry *e, char *buf, size_t len)
{
  const uint8_t *k = e->key;
  size_t klen = e->key_len, n = 0;

  if (len == 0)
    return;
  if (e->is_slice) {
    k = e->full->key;
    klen = e->full->key_len;
  }
  for (size_t i = 0; i < klen && n + 5 < len; i++) {
    if (k[i] >= 0x20 && k[i] < 0x7f && k[i] != '\\')
      buf[n++] = (char)k[i];
    else
      n += (size_t)snprintf(buf + n, len - n, "\\x%02x", k[i]);
  }
  buf[n] = 0;
  if (e->is_slice) {
    for (int d = 0; d < e->full->rank && n + 2 < len; d++) {
      if (e->slice.length[d] < 0)
        n += (size_t)snprintf(buf + n, len - n, "%s-", d ? "," : "[");
      else
        n += (size_t)snprintf(buf + n, len - n, "%s%lld:%lld", d ? "," : "[", (long long)e->slice.start[d],
                              (long long)e->slice.length[d]);
    }
    if (n + 2 < len)
      snprintf(buf + n, len - n, "]");
  }
}

/* ---- data ---- */

/* Whether [off, off + len) of entry e's stored bytes can be read: 0 or the error. */
static int readable(const struct ck_bundle *b, const struct ck_entry *e, uint64_t off, uint64_t len,
                    struct ck_err *err)
{
  if (b->shard_fds == NULL)
    return ck_err_set(err, CK_EINVAL, "%s: opened index-only", b->index_path);
  if (e->nslices || off > e->size || len > e->size - off)
    return ck_err_set(err, CK_EINVAL, "%s: read outside entry %s", b->index_path, e->key);
  return 0;
}

/* A read of entry e's bytes failed with rc at file offset at. */
static int read_failed(const struct ck_bundle *b, const struct ck_entry *e, uint64_t at, int rc, struct ck_err *err)
{
  return ck_err_set(err, rc, "%s: %s: read at %llu: %s", b->shard_paths[e->shard], e->key, (unsigned long long)at,
                    ck_strerror(rc));
}

int ck_bundle_read(struct ck_bundle *b, const struct ck_entry *e, uint64_t off, void *buf, size_t len,
                   struct ck_err *err)
{
  int rc = readable(b, e, off, len, err);

  if (rc == 0 && (rc = ck_pread_full(b->shard_fds[e->shard], buf, len, e->offset + off)) != 0)
    return read_failed(b, e, e->offset + off, rc, err);
  return rc;
}

void ck_bundle_set_read_ahead(struct ck_bundle *b, int on)
{
  b->read_ahead = on;
}

struct stream {
  const struct ck_bundle *b;
  const struct ck_entry *e;
  struct ck_tcrc crc;
  ck_chunk_fn fn;
  void *ctx;
  struct ck_err *err;
};

static int stream_piece(void *p, const void *data, size_t n)
{
  struct stream *s = p;
  int rc = ck_tcrc_update(&s->crc, data, n);

  if (rc != 0)
    return ck_err_set(s->err, rc, "%s: %s: %s", s->b->shard_paths[s->e->shard], s->e->key, s->crc.why);
  return s->fn ? s->fn(s->ctx, data, n) : 0;
}

int ck_bundle_stream(struct ck_bundle *b, const struct ck_entry *e, void *buf, size_t bufsize,
                     ck_chunk_fn fn, void *ctx, struct ck_err *err)
{
  struct stream s = { .b = b, .e = e, .fn = fn, .ctx = ctx, .err = err };
  uint64_t bad;
  uint32_t crc;
  int rc;

  if (bufsize == 0)
    return ck_err_set(err, CK_EINVAL, "zero-sized buffer");
  if ((rc = readable(b, e, 0, e->size, err)) != 0)
    return rc;
  ck_tcrc_init(&s.crc, e->dtype, e->nelem);
  rc = ck_read_range(b->shard_fds[e->shard], e->offset, e->size, buf, bufsize, b->read_ahead ? 2 : 1, stream_piece,
                     &s, &bad);
  if (rc != 0)
    return bad != UINT64_MAX ? read_failed(b, e, bad, rc, err) : rc;
  if ((rc = ck_tcrc_final(&s.crc, &crc)) != 0)
    return ck_err_set(err, rc, "%s: %s: %s", b->shard_paths[e->shard], e->key, s.crc.why);
  if (ck_crc32c_mask(crc) != e->crc32c)
    return ck_err_set(err, CK_ECHECKSUM, "%s: %s: crc32c mismatch (stored %08x, computed %08x)",
                      b->shard_paths[e->shard], e->key, e->crc32c, ck_crc32c_mask(crc));
  return 0;
}

int ck_bundle_verify(struct ck_bundle *b, const struct ck_entry *e, void *buf, size_t bufsize,
                     struct ck_err *err)
{
  return ck_bundle_stream(b, e, buf, bufsize, NULL, NULL, err);
}
