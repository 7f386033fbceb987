/* Direct chunk I/O for filtered HDF5 datasets: see h5_chunk.h. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "h5_chunk.h"
#include "h5_internal.h"

#define RING_SLOTS_MAX 18

static void *ctx_new(void) { return ck_h5_codec_ctx_new(); }
static void ctx_free(void *x) { ck_h5_codec_ctx_free(x); }

int ck_h5_ring_init(struct ck_h5_ring *r, int threads, size_t budget)
{
  memset(r, 0, sizeof(*r));
  r->threads = threads < 0 ? 0 : threads > RING_SLOTS_MAX - 2 ? RING_SLOTS_MAX - 2 : threads;
  r->budget = budget;
  r->nslots = r->threads + 2; /* one per worker, one being filled, one being written */
  if ((r->slots = calloc((size_t)r->nslots, sizeof(*r->slots))) == NULL)
    return -ENOMEM;
  return ck_workq_start(&r->q, r->threads, ctx_new, ctx_free);
}

static void slots_release(struct ck_h5_ring *r)
{
  for (int i = 0; i < r->nslots; i++) {
    free(r->slots[i].data);
    free(r->slots[i].raw);
    free(r->slots[i].scratch);
    r->slots[i].data = r->slots[i].raw = r->slots[i].scratch = NULL;
  }
  r->data_cap = r->raw_cap = r->scratch_cap = 0;
}

int ck_h5_ring_reserve(struct ck_h5_ring *r, const struct ck_h5_codec *c, size_t data_bytes, int at_least_one)
{
  size_t raw = ck_h5_codec_bound(c, data_bytes), scratch = c->shuffle && c->codec ? data_bytes : 0;
  size_t cost, n;

  if (raw < data_bytes) /* an unfiltered chunk is stored as it is */
    raw = data_bytes;
  /* slots for this chunk size, decided before anything is freed or kept */
  cost = data_bytes + raw + scratch;
  n = cost ? r->budget / cost : (size_t)r->nslots;
  if (n == 0 && !at_least_one)
    return CK_ELIMIT;
  r->active = n == 0 ? 1 : n < (size_t)r->nslots ? (int)n : r->nslots;
  /* buffers too small, or large ones from an earlier dataset that would now exceed the budget */
  if (data_bytes > r->data_cap || raw > r->raw_cap || scratch > r->scratch_cap ||
      (r->data_cap + r->raw_cap + r->scratch_cap) * (size_t)r->active > (n ? r->budget : cost)) {
    slots_release(r);
    r->data_cap = data_bytes;
    r->raw_cap = raw;
    r->scratch_cap = scratch;
  }
  for (int i = 0; i < r->active; i++) {
    struct ck_h5_slot *s = &r->slots[i];
    if ((s->data == NULL && (s->data = malloc(r->data_cap ? r->data_cap : 1)) == NULL) ||
        (s->raw == NULL && (s->raw = malloc(r->raw_cap ? r->raw_cap : 1)) == NULL) ||
        (r->scratch_cap && s->scratch == NULL && (s->scratch = malloc(r->scratch_cap)) == NULL)) {
      slots_release(r);
      return -ENOMEM;
    }
    s->raw_cap = r->raw_cap;
  }
  r->head = 0;
  return 0;
}

struct ck_h5_slot *ck_h5_ring_free_slot(struct ck_h5_ring *r)
{
  if (r->inflight >= r->active)
    return NULL;
  return &r->slots[(r->head + r->inflight) % r->active];
}

static void slot_run(struct ck_workq_job *j, void *tctx)
{
  struct ck_h5_slot *s = (struct ck_h5_slot *)j;

  if (!s->encode && s->fd >= 0 && ck_pread_full(s->fd, s->raw, s->raw_len, s->addr) != 0) {
    s->rc = CK_EFORMAT;
    s->why = "cannot read the stored chunk (truncated file?)";
    return;
  }
  if (s->encode)
    s->rc = ck_h5_codec_encode(tctx, s->codec, s->data, s->data_len, s->scratch, s->raw, s->raw_cap, &s->raw_len);
  else
    s->rc = ck_h5_codec_decode(tctx, s->codec, s->mask, s->raw, s->raw_len, s->scratch, s->data, s->data_len,
                               &s->why);
}

void ck_h5_ring_push(struct ck_h5_ring *r, struct ck_h5_slot *s)
{
  s->job.fn = slot_run;
  s->rc = 0;
  s->why = NULL;
  r->inflight++;
  ck_workq_push(r->q, &s->job);
}

struct ck_h5_slot *ck_h5_ring_oldest(struct ck_h5_ring *r)
{
  struct ck_h5_slot *s;

  if (r->inflight == 0)
    return NULL;
  s = &r->slots[r->head];
  ck_workq_wait(r->q, &s->job);
  return s;
}

void ck_h5_ring_pop(struct ck_h5_ring *r)
{
  if (r->inflight == 0)
    return;
  r->head = (r->head + 1) % r->active;
  r->inflight--;
}

void ck_h5_ring_free(struct ck_h5_ring *r)
{
  if (r->slots == NULL && r->q == NULL)
    return;
  while (ck_h5_ring_oldest(r) != NULL)
    ck_h5_ring_pop(r);
  ck_workq_stop(r->q);
  if (r->slots)
    slots_release(r);
  free(r->slots);
  memset(r, 0, sizeof(*r));
}

int ck_h5_codec_of_dcpl(hid_t dcpl, size_t esize, struct ck_h5_codec *c)
{
  int n = H5Pget_nfilters(dcpl);
  unsigned opts = 0;

  memset(c, 0, sizeof(*c));
  c->esize = esize;
  if (n < 1 || n > 2 || H5Pget_layout(dcpl) != H5D_CHUNKED || H5Pget_chunk_opts(dcpl, &opts) < 0 ||
      (opts & H5D_CHUNK_DONT_FILTER_PARTIAL_CHUNKS)) {
    H5Eclear2(H5E_DEFAULT);
    return 0;
  }
  for (int i = 0; i < n; i++) {
    unsigned flags = 0, cd[8] = { 0 }, config = 0;
    size_t ncd = 8;
    H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, 0, NULL, &config);

    if (ncd > 8)
      return 0;
    if (id == H5Z_FILTER_SHUFFLE && i == 0) {
      /* set_local stores the element size; a different one would not invert ours */
      if (ncd >= 1 && cd[0] != esize)
        return 0;
      c->shuffle = 1;
      c->shuffle_pos = i;
    } else if (id == H5Z_FILTER_DEFLATE && c->codec == 0) {
      c->codec = CK_H5F_DEFLATE;
      c->level = ncd >= 1 && cd[0] <= 9 ? (int)cd[0] : 6;
      c->codec_pos = i;
    } else if (id == CK_H5F_LZ4 && c->codec == 0) {
      c->codec = CK_H5F_LZ4;
      c->lz4_block = ncd >= 1 ? cd[0] : 0;
      c->codec_pos = i;
    } else if (id == CK_H5F_ZSTD && c->codec == 0) {
      c->codec = CK_H5F_ZSTD;
      c->level = ncd >= 1 && cd[0] >= 1 && cd[0] <= 22 ? (int)cd[0] : 3;
      c->codec_pos = i;
    } else {
      return 0; /* fletcher32, szip, two codecs, a shuffle after the codec ... */
    }
  }
  return 1;
}

static int read_error(struct ck_err *err, int code, const char *file, const char *path, int rank, const hsize_t *off,
                      const char *what)
{
  char at[128] = "";
  size_t n = 0;

  for (int d = 0; d < rank && n < sizeof(at) - 24; d++)
    n += (size_t)snprintf(at + n, sizeof(at) - n, "%s%llu", d ? "," : "", (unsigned long long)off[d]);
  if (code == -EIO)
    return ck_h5_err(err, CK_EFORMAT, "%s: %s: chunk at (%s): %s", file, path, at, what);
  return ck_err_set(err, code, "%s: %s: chunk at (%s): %s", file, path, at, what);
}

/* Copy a decoded chunk's valid part into the slab of its chunk row. */
static void scatter(uint8_t *slab, const int64_t *dims, int rank, const hsize_t *chunk, const hsize_t *off,
                    const uint8_t *data, size_t esize)
{
  uint64_t ext[H5S_MAX_RANK], sstride[H5S_MAX_RANK], cstride[H5S_MAX_RANK], i[H5S_MAX_RANK] = { 0 };

  for (int d = rank - 1; d >= 0; d--) {
    ext[d] = (uint64_t)dims[d] - off[d] < chunk[d] ? (uint64_t)dims[d] - off[d] : chunk[d];
    cstride[d] = d == rank - 1 ? esize : cstride[d + 1] * chunk[d + 1];
    sstride[d] = d == rank - 1 ? esize : sstride[d + 1] * (uint64_t)dims[d + 1];
  }
  for (;;) {
    uint64_t so = 0, co = 0;
    int d;
    for (d = 0; d < rank - 1; d++) {
      co += i[d] * cstride[d];
      so += (d == 0 ? i[d] : i[d] + off[d]) * sstride[d];
    }
    so += off[rank - 1] * esize;
    memcpy(slab + so, data + co, ext[rank - 1] * esize);
    for (d = rank - 2; d >= 0; d--) {
      if (++i[d] < ext[d])
        break;
      i[d] = 0;
    }
    if (d < 0)
      break;
  }
}

int ck_h5_chunks_read(struct ck_h5_ring *r, hid_t ds, const struct ck_h5_codec *c, int rank, const int64_t *dims,
                      const hsize_t *chunk, size_t esize, int fd, uint64_t file_size,
                      int (*emit)(void *ctx, const void *p, size_t n), void *ctx, const char *file, const char *path,
                      struct ck_err *err)
{
  uint64_t grid[H5S_MAX_RANK], idx[H5S_MAX_RANK] = { 0 }, total = 1, per_row, next = 0, done = 0;
  uint64_t cbytes = esize, rowbytes = esize, slab_rows = 0;
  uint8_t *slab = NULL;
  int contig = 1, k = 0, rc = 0;

  for (int d = 0; d < rank; d++) {
    if (dims[d] == 0)
      return 0; /* nothing stored, nothing to emit */
    if (chunk[d] == 0 || dims[d] < 0)
      return ck_err_set(err, CK_EFORMAT, "%s: %s: a chunk dimension of 0", file, path);
    /* (bounds before products: a chunk dimension may exceed the dataset's) */
    if (chunk[d] > CK_H5_CHUNK_SLAB_MAX / cbytes)
      return ck_err_set(err, CK_ELIMIT, "%s: %s: chunks over %u MiB", file, path, CK_H5_CHUNK_SLAB_MAX >> 20);
    cbytes *= chunk[d];
    grid[d] = ((uint64_t)dims[d] + chunk[d] - 1) / chunk[d];
    total *= grid[d];
    if (d > 0)
      rowbytes *= (uint64_t)dims[d];
  }
  /* contiguous chunks: [1, .., 1, m, whole, .., whole] */
  while (k < rank - 1 && chunk[k] == 1)
    k++;
  for (int d = k + 1; d < rank; d++)
    contig &= chunk[d] == (uint64_t)dims[d];
  per_row = total / grid[0];
  if (!contig) {
    if (chunk[0] > CK_H5_CHUNK_SLAB_MAX / rowbytes)
      return ck_err_set(err, CK_ELIMIT, "%s: %s: a row of chunks holds over %u MiB", file, path,
                        CK_H5_CHUNK_SLAB_MAX >> 20);
    if ((slab = malloc(chunk[0] * rowbytes)) == NULL)
      return ck_err_set(err, -ENOMEM, "out of memory");
  }
  if ((rc = ck_h5_ring_reserve(r, c, cbytes, 1)) != 0) {
    rc = ck_err_set(err, rc, "%s: %s: no memory for %llu-byte chunks within the buffer budget", file, path,
                    (unsigned long long)cbytes);
    goto out;
  }
  while (rc == 0 && done < total) {
    struct ck_h5_slot *s;
    while (next < total && (s = ck_h5_ring_free_slot(r)) != NULL) {
      hsize_t stored = 0;
      haddr_t addr = HADDR_UNDEF;
      unsigned mask = 0;
      uint32_t mask32 = 0;
      for (int d = 0; d < rank; d++)
        s->off[d] = idx[d] * chunk[d];
      if ((fd >= 0 ? H5Dget_chunk_info_by_coord(ds, s->off, &mask, &addr, &stored)
                   : H5Dget_chunk_storage_size(ds, s->off, &stored)) < 0) {
        rc = read_error(err, -EIO, file, path, rank, s->off, "cannot find its storage");
        break;
      }
      if (stored == 0 || stored > s->raw_cap) {
        rc = read_error(err, CK_EFORMAT, file, path, rank, s->off,
                        stored ? "stored size exceeds what its codec can produce: corrupt" : "not stored");
        break;
      }
      if (fd >= 0 && (addr == HADDR_UNDEF || addr > file_size || stored > file_size - addr)) {
        rc = read_error(err, CK_EFORMAT, file, path, rank, s->off, "stored past the end of the file: corrupt");
        break;
      }
      s->fd = fd;
      s->addr = (uint64_t)addr;
      if (fd < 0 && H5Dread_chunk(ds, H5P_DEFAULT, s->off, &mask32, s->raw) < 0) {
        rc = read_error(err, -EIO, file, path, rank, s->off, "read failed");
        break;
      }
      if (fd < 0)
        mask = mask32;
      s->raw_len = (size_t)stored;
      s->mask = mask;
      s->codec = c;
      s->encode = 0;
      s->data_len = (size_t)cbytes;
      ck_h5_ring_push(r, s);
      next++;
      for (int d = rank - 1; d >= 0; d--) {
        if (++idx[d] < grid[d])
          break;
        idx[d] = 0;
      }
    }
    if (rc != 0 || (s = ck_h5_ring_oldest(r)) == NULL)
      break;
    if (s->rc != 0) {
      rc = read_error(err, s->rc, file, path, rank, s->off, s->why ? s->why : "cannot decode");
    } else if (contig) {
      uint64_t ext = (uint64_t)dims[k] - s->off[k] < chunk[k] ? (uint64_t)dims[k] - s->off[k] : chunk[k];
      rc = emit(ctx, s->data, (size_t)(cbytes / chunk[k] * ext));
    } else {
      scatter(slab, dims, rank, chunk, s->off, s->data, esize);
      slab_rows = (uint64_t)dims[0] - s->off[0] < chunk[0] ? (uint64_t)dims[0] - s->off[0] : chunk[0];
      if ((done + 1) % per_row == 0)
        rc = emit(ctx, slab, (size_t)(slab_rows * rowbytes));
    }
    ck_h5_ring_pop(r);
    done++;
  }
out:
  while (ck_h5_ring_oldest(r) != NULL) /* after an error: nothing of this tensor stays in flight */
    ck_h5_ring_pop(r);
  free(slab);
  H5Eclear2(H5E_DEFAULT);
  return rc;
}
