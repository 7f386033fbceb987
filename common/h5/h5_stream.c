/* HDF5 reader, second half: a listed tensor's bytes in TensorFlow's stored layout.
 *
 * Exact little-endian data in contiguous storage is pread at the dataset's offset
 * (checked against the file size when listed), the next piece read ahead; chunks
 * whose pipeline h5_chunk.c runs are read raw and decoded by worker threads;
 * everything else goes through H5Dread in blocks bounded by the caller's buffer.
 * Strings and variants are read element by element in batches, their memory bounded
 * (vmem). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blocks.h"
#include "coding.h"
#include "crc32c.h"
#include "dtype.h"
#include "fileio.h"
#include "h5.h"
#include "h5_chunk.h"
#include "h5_internal.h"
#include "h5_reader.h"
#include "readahead.h"
#include "util.h"

/* ---- streaming in TensorFlow's layout ---- */

/* A single string or variant element larger than this is refused: a batch holds at
 * most the caller's buffer size of element bytes, or one element up to this size. */
#define CK_H5_ELEM_MAX (64u << 20)
#define BATCH_MAX 4096

struct emitter {
  uint8_t *buf;
  size_t cap, len;
  ck_chunk_fn fn;
  void *ctx;
};

static int emit(struct emitter *e, const void *data, size_t n)
{
  const uint8_t *p = data;
  int rc;

  while (n > 0) { /* (an empty element may come with a NULL pointer) */
    size_t take = e->cap - e->len < n ? e->cap - e->len : n;
    memcpy(e->buf + e->len, p, take);
    e->len += take;
    p += take;
    n -= take;
    if (e->len == e->cap) {
      if ((rc = e->fn(e->ctx, e->buf, e->len)) != 0)
        return rc;
      e->len = 0;
    }
  }
  return 0;
}

static int emit_flush(struct emitter *e)
{
  int rc = 0;

  if (e->len > 0)
    rc = e->fn(e->ctx, e->buf, e->len);
  e->len = 0;
  return rc;
}

static int read_sel(struct ck_h5r *r, hid_t ds, int rank, const uint64_t *start, const uint64_t *count, hid_t mt,
                    hid_t dxpl, void *out)
{
  hsize_t s[CK_MAX_RANK], c[CK_MAX_RANK];
  hid_t fspace = H5Dget_space(ds), mspace;
  herr_t st;

  (void)r;
  if (rank == 0) {
    mspace = H5Screate(H5S_SCALAR);
  } else {
    for (int d = 0; d < rank; d++) {
      s[d] = start[d];
      c[d] = count[d];
    }
    H5Sselect_hyperslab(fspace, H5S_SELECT_SET, s, NULL, c, NULL);
    mspace = H5Screate_simple(rank, c, NULL);
  }
  st = H5Dread(ds, mt, mspace, fspace, dxpl, out);
  H5Sclose(mspace);
  H5Sclose(fspace);
  return st < 0 ? -1 : 0;
}

static int read_failed(struct ck_h5r *r, const struct ck_h5_tensor *t, struct ck_err *err)
{
  return ck_h5_err(err, CK_EFORMAT, "%s: %s: read failed (corrupt, truncated, or a filter is missing)", r->path,
                   t->path);
}

/* A decoded chunk goes to the caller as it is when nothing is pending and it fits
 * the caller's buffer size (callers only read the bytes): one copy fewer. */
static int emit_cb(void *ctx, const void *p, size_t n)
{
  struct emitter *e = ctx;

  if (e->len == 0 && n <= e->cap)
    return e->fn(e->ctx, p, n);
  return emit(e, p, n);
}

/* A filtered dataset whose pipeline h5_chunk.c runs: its chunks are read raw and
 * decoded by the ring's workers. 1 when it is not such a dataset (read it through
 * libhdf5), else 0 or the error. */
static int stream_chunks(struct ck_h5r *r, hid_t ds, const struct ck_h5_tensor *t, void *buf, size_t bufsize,
                         ck_chunk_fn fn, void *ctx, struct ck_err *err)
{
  struct emitter e = { .buf = buf, .cap = bufsize, .fn = fn, .ctx = ctx };
  hsize_t chunk[H5S_MAX_RANK];
  struct ck_h5_codec c;
  hid_t dcpl = H5Dget_create_plist(ds);
  uint64_t cbytes = t->file_esize;
  int direct, rc;

  direct = dcpl >= 0 && ck_h5_codec_of_dcpl(dcpl, t->file_esize, &c) && H5Pget_chunk(dcpl, t->rank, chunk) == t->rank;
  if (dcpl >= 0)
    H5Pclose(dcpl);
  H5Eclear2(H5E_DEFAULT);
  if (!direct)
    return 1;
  if (!r->ring_on) {
    if ((rc = ck_h5_ring_init(&r->ring, r->threads, r->budget)) != 0) {
      ck_h5_ring_free(&r->ring);
      return ck_err_set(err, rc, "%s: cannot start chunk decoding: %s", r->path, ck_strerror(rc));
    }
    r->ring_on = 1;
  }
  for (int d = 0; d < t->rank; d++)
    cbytes = chunk[d] && cbytes > CK_H5_CHUNK_SLAB_MAX / chunk[d] ? CK_H5_CHUNK_SLAB_MAX + 1 : cbytes * chunk[d];
  /* chunks too large for the budget's ring: libhdf5 decodes them (one row cached) when
   * it has the filter; without it (lz4, zstd) one slot over the budget serves */
  if (t->nelem > 0 && cbytes <= CK_H5_CHUNK_SLAB_MAX && ck_h5_ring_reserve(&r->ring, &c, (size_t)cbytes, 0) == CK_ELIMIT &&
      H5Zfilter_avail((H5Z_filter_t)c.codec) > 0)
    return 1;
  rc = ck_h5_chunks_read(&r->ring, ds, &c, t->rank, t->dims, chunk, t->file_esize, r->chunk_fd, r->file_size,
                         emit_cb, &e, r->path, t->path, err);
  if (rc == 0)
    rc = emit_flush(&e);
  return rc;
}

static int stream_fixed(struct ck_h5r *r, hid_t ds, const struct ck_h5_tensor *t, void *buf, size_t bufsize,
                        ck_chunk_fn fn, void *ctx, struct ck_err *err)
{
  size_t esize = ck_dtype_size(t->dtype);
  uint64_t total = t->nelem * esize, start[CK_MAX_RANK], count[CK_MAX_RANK], off, n;
  struct ck_blocks b;
  const char *why;
  hid_t ft, mt;
  int rc = 0, exact;

  if (t->raw_offset && r->fd >= 0) {
    uint64_t bad;
    if ((rc = ck_read_range(r->fd, t->raw_offset, total, buf, bufsize, r->threads, fn, ctx, &bad)) != 0 &&
        bad != UINT64_MAX)
      ck_err_set(err, rc, "%s: %s: read at %llu: %s", r->path, t->path, (unsigned long long)bad, ck_strerror(rc));
    return rc;
  }
  if (bufsize < esize)
    return ck_err_set(err, CK_EINVAL, "buffer smaller than one element");
  ft = H5Dget_type(ds);
  mt = ck_h5_mem_type(ft, t->dtype, &exact, &why);
  H5Tclose(ft);
  if (mt < 0)
    return ck_err_set(err, CK_EUNSUP, "%s: %s: %s", r->path, t->path, why);
  if (exact && t->rank >= 1 && (rc = stream_chunks(r, ds, t, buf, bufsize, fn, ctx, err)) != 1) {
    H5Tclose(mt);
    return rc;
  }
  rc = 0;
  ck_blocks_init(&b, t->rank, t->dims, bufsize / esize);
  while (rc == 0 && ck_blocks_next(&b, start, count, &off, &n)) {
    if (read_sel(r, ds, t->rank, start, count, mt, H5P_DEFAULT, buf) != 0)
      rc = read_failed(r, t, err);
    else
      rc = fn(ctx, buf, (size_t)(n * esize));
  }
  H5Tclose(mt);
  return rc;
}

/* Variable-length memory HDF5 allocates while reading a batch: counted against the
 * batch's budget and all freed after the batch, whether the read succeeded or not. */
struct vmem {
  struct vblk *head;
  size_t used, limit;
  int over;
};

struct vblk {
  struct vblk *prev, *next;
  max_align_t align[];
};

static void *vmem_alloc(size_t size, void *info)
{
  struct vmem *m = info;
  struct vblk *b;

  if (size > m->limit - m->used) {
    m->over = 1;
    return NULL;
  }
  if ((b = malloc(sizeof(*b) + size)) == NULL)
    return NULL;
  m->used += size;
  b->prev = NULL;
  b->next = m->head;
  if (m->head)
    m->head->prev = b;
  m->head = b;
  return b->align;
}

static void vmem_free(void *p, void *info)
{
  struct vmem *m = info;
  struct vblk *b;

  if (p == NULL)
    return;
  b = (struct vblk *)((char *)p - offsetof(struct vblk, align));
  if (b->prev)
    b->prev->next = b->next;
  else
    m->head = b->next;
  if (b->next)
    b->next->prev = b->prev;
  free(b);
}

static void vmem_reset(struct vmem *m)
{
  while (m->head) {
    struct vblk *b = m->head;
    m->head = b->next;
    free(b);
  }
  m->used = 0;
  m->over = 0;
}

/* One pass over all elements in bounded batches; cb gets each element. */
typedef int (*elem_fn)(void *ctx, const uint8_t *p, size_t len);

struct velems {
  struct ck_h5r *r;
  const struct ck_h5_tensor *t;
  hid_t ds, mt, dxpl;
  size_t each;        /* bytes per element in the batch array */
  size_t fixed_size;  /* fixed-length strings */
  size_t bufsize;
  uint64_t batch, fit; /* planned and currently fitting elements per read */
  void *raw;          /* hvl_t[], char*[], or fixed-size strings: BATCH_MAX elements at most */
  struct vmem mem;
  elem_fn cb;
  void *ctx;
  struct ck_err *err;
};

static void velem(const struct velems *v, size_t i, const uint8_t **p, size_t *len)
{
  if (v->t->kind == CK_H5K_VLEN_BYTES) {
    const hvl_t *h = (const hvl_t *)v->raw + i;
    *p = h->p;
    *len = h->len;
  } else if (v->t->kind == CK_H5K_VLEN_STR) {
    const char *s = ((char *const *)v->raw)[i];
    *p = (const uint8_t *)(s ? s : "");
    *len = s ? strlen(s) : 0;
  } else {
    const uint8_t *s = (const uint8_t *)v->raw + i * v->fixed_size;
    size_t n = v->fixed_size;
    while (n > 0 && s[n - 1] == 0) /* numpy 'S' semantics: trailing NULs are padding */
      n--;
    *p = s;
    *len = n;
  }
}

static int box_read(struct velems *v, const uint64_t *start, const uint64_t *count, uint64_t n);

/* Read a box in sub-boxes of at most m elements, in order. */
static int box_split(struct velems *v, const uint64_t *start, const uint64_t *count, uint64_t m)
{
  uint64_t s[CK_MAX_RANK], c[CK_MAX_RANK], off, k;
  int64_t dims[CK_MAX_RANK];
  struct ck_blocks b;
  int rc = 0;

  for (int d = 0; d < v->t->rank; d++)
    dims[d] = (int64_t)count[d];
  ck_blocks_init(&b, v->t->rank, dims, m);
  while (rc == 0 && ck_blocks_next(&b, s, c, &off, &k)) {
    for (int d = 0; d < v->t->rank; d++)
      s[d] += start[d];
    rc = box_read(v, s, c, k);
  }
  return rc;
}

/* A batch whose elements overflow the budget is read again in halves, and later
 * batches start from the size that fitted (v->fit), growing back while they fit easily. */
static int box_read(struct velems *v, const uint64_t *start, const uint64_t *count, uint64_t n)
{
  int rc = 0;

  if (n > v->fit)
    return box_split(v, start, count, v->fit);
  v->mem.limit = n == 1 ? (v->bufsize > CK_H5_ELEM_MAX ? v->bufsize : CK_H5_ELEM_MAX) : v->bufsize;
  memset(v->raw, 0, (size_t)n * v->each);
  if (read_sel(v->r, v->ds, v->t->rank, start, count, v->mt, v->dxpl, v->raw) != 0) {
    int over = v->mem.over;
    vmem_reset(&v->mem);
    if (over && n > 1) {
      H5Eclear2(H5E_DEFAULT);
      v->fit = n / 2;
      return box_split(v, start, count, v->fit);
    }
    if (over)
      return ck_err_set(v->err, CK_ELIMIT, "%s: %s: an element is larger than the %u MiB limit", v->r->path,
                        v->t->path, CK_H5_ELEM_MAX >> 20);
    return read_failed(v->r, v->t, v->err);
  }
  if (n == v->fit && v->mem.used <= v->bufsize / 4 && v->fit < v->batch)
    v->fit = v->fit * 2 < v->batch ? v->fit * 2 : v->batch;
  for (size_t i = 0; i < n && rc == 0; i++) {
    const uint8_t *p;
    size_t len;
    velem(v, i, &p, &len);
    rc = v->cb(v->ctx, p, len);
  }
  vmem_reset(&v->mem);
  return rc;
}

static hid_t vlen_memtype(hid_t ds, int kind, size_t *fixed_size)
{
  hid_t ft = H5Dget_type(ds), mt;

  if (kind == CK_H5K_VLEN_BYTES) {
    mt = H5Tvlen_create(H5T_NATIVE_UINT8);
  } else {
    mt = H5Tcopy(H5T_C_S1);
    H5Tset_cset(mt, H5Tget_cset(ft));
    if (kind == CK_H5K_VLEN_STR) {
      H5Tset_size(mt, H5T_VARIABLE);
    } else {
      *fixed_size = H5Tget_size(ft);
      H5Tset_size(mt, *fixed_size);
      H5Tset_strpad(mt, H5T_STR_NULLPAD);
    }
  }
  H5Tclose(ft);
  return mt;
}

static int each_element(struct ck_h5r *r, hid_t ds, const struct ck_h5_tensor *t, size_t bufsize, elem_fn cb,
                        void *ctx, struct ck_err *err)
{
  struct velems v = { .r = r, .t = t, .ds = ds, .bufsize = bufsize, .cb = cb, .ctx = ctx, .err = err };
  uint64_t start[CK_MAX_RANK], count[CK_MAX_RANK], off, n, batch;
  struct ck_blocks b;
  int rc = 0;

  v.mt = vlen_memtype(ds, t->kind, &v.fixed_size);
  v.each = t->kind == CK_H5K_VLEN_BYTES ? sizeof(hvl_t) : t->kind == CK_H5K_VLEN_STR ? sizeof(char *) : v.fixed_size;
  if (t->kind == CK_H5K_FIXED_STR && (v.fixed_size == 0 || v.fixed_size > CK_H5_ELEM_MAX)) {
    H5Tclose(v.mt);
    return ck_err_set(err, CK_ELIMIT, "%s: %s: fixed string size %zu not supported (limit %u MiB)", r->path, t->path,
                      v.fixed_size, CK_H5_ELEM_MAX >> 20);
  }
  /* the batch array and, for fixed strings, its bytes stay within the buffer size */
  batch = bufsize / v.each;
  batch = batch < 1 ? 1 : batch > BATCH_MAX ? BATCH_MAX : batch;
  v.dxpl = H5Pcreate(H5P_DATASET_XFER);
  if (v.dxpl < 0 || H5Pset_vlen_mem_manager(v.dxpl, vmem_alloc, &v.mem, vmem_free, &v.mem) < 0 ||
      (v.raw = malloc((size_t)batch * v.each)) == NULL) {
    rc = ck_err_set(err, -ENOMEM, "out of memory");
    goto out;
  }
  v.batch = v.fit = batch;
  ck_blocks_init(&b, t->rank, t->dims, batch);
  while (rc == 0 && ck_blocks_next(&b, start, count, &off, &n))
    rc = box_read(&v, start, count, n);
out:
  vmem_reset(&v.mem);
  free(v.raw);
  if (v.dxpl >= 0)
    H5Pclose(v.dxpl);
  H5Tclose(v.mt);
  return rc;
}

struct str_ctx {
  struct emitter *e;
  uint32_t crc;
};

static int str_len_cb(void *ctx, const uint8_t *p, size_t len)
{
  struct str_ctx *s = ctx;
  uint8_t v[CK_VARINT64_MAX], f[8];

  (void)p;
  if (len <= UINT32_MAX) {
    ck_put_fixed32(f, (uint32_t)len);
    s->crc = ck_crc32c_extend(s->crc, f, 4);
  } else {
    ck_put_fixed64(f, len);
    s->crc = ck_crc32c_extend(s->crc, f, 8);
  }
  return emit(s->e, v, ck_put_varint64(v, len));
}

static int str_body_cb(void *ctx, const uint8_t *p, size_t len)
{
  struct str_ctx *s = ctx;

  return emit(s->e, p, len);
}

static int var_cb(void *ctx, const uint8_t *p, size_t len)
{
  struct str_ctx *s = ctx;
  uint8_t v[CK_VARINT64_MAX], f[8];
  int rc;

  ck_put_fixed64(f, len);
  s->crc = ck_crc32c_extend(s->crc, f, 8);
  s->crc = ck_crc32c_extend(s->crc, p, len);
  if ((rc = emit(s->e, v, ck_put_varint64(v, len))) != 0 || (rc = emit(s->e, p, len)) != 0)
    return rc;
  ck_put_fixed32(f, ck_crc32c_mask(s->crc));
  s->crc = ck_crc32c_extend(s->crc, f, 4);
  return emit(s->e, f, 4);
}

/* Open with a chunk cache that holds a row of filtered chunks: each is inflated once. */
static hid_t open_dataset(struct ck_h5r *r, const struct ck_h5_tensor *t)
{
  hid_t ds = H5Dopen2(r->file, t->path, H5P_DEFAULT), dapl;

  if (ds < 0 || (dapl = ck_h5_dapl_for(ds, t->kind)) == H5P_DEFAULT)
    return ds;
  H5Dclose(ds);
  ds = dapl < 0 ? H5I_INVALID_HID : H5Dopen2(r->file, t->path, dapl);
  if (dapl >= 0)
    H5Pclose(dapl);
  return ds;
}

int ck_h5r_stream_tf(struct ck_h5r *r, const struct ck_h5_tensor *t, void *buf, size_t bufsize, ck_chunk_fn fn,
                     void *ctx, struct ck_err *err)
{
  struct emitter e = { .buf = buf, .cap = bufsize, .fn = fn, .ctx = ctx };
  struct str_ctx s = { .e = &e };
  hid_t ds;
  int rc;

  if (bufsize == 0)
    return ck_err_set(err, CK_EINVAL, "zero-sized buffer");
  if (t->kind == CK_H5K_FIXED && t->raw_offset && r->fd >= 0) /* contiguous, unfiltered: no dataset to open */
    return stream_fixed(r, -1, t, buf, bufsize, fn, ctx, err);
  if ((ds = open_dataset(r, t)) < 0)
    return ck_h5_err(err, CK_EFORMAT, "%s: %s: cannot open dataset", r->path, t->path);
  if (t->kind == CK_H5K_FIXED) {
    rc = stream_fixed(r, ds, t, buf, bufsize, fn, ctx, err);
  } else if (t->dtype == CK_DT_VARIANT) {
    rc = each_element(r, ds, t, bufsize, var_cb, &s, err);
    if (rc == 0)
      rc = emit_flush(&e);
  } else {
    uint8_t f[4];
    /* lengths, their checksum, then the bytes: two passes keep memory bounded */
    rc = each_element(r, ds, t, bufsize, str_len_cb, &s, err);
    ck_put_fixed32(f, ck_crc32c_mask(s.crc));
    if (rc == 0)
      rc = emit(&e, f, 4);
    if (rc == 0)
      rc = each_element(r, ds, t, bufsize, str_body_cb, &s, err);
    if (rc == 0)
      rc = emit_flush(&e);
  }
  H5Dclose(ds);
  return rc;
}
