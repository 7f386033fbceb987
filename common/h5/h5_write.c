/* HDF5 writer.
 *
 * Fixed-size tensors without compression are contiguous datasets whose storage is
 * allocated at creation with no fill: their bytes are then written by the caller
 * with plain pwrite at the dataset's file offset, outside HDF5's global lock.
 * Compressed tensors are chunked (CK_H5_CHUNK_DEFAULT bytes per chunk, or the
 * caller's): a stream fills whole chunks, which worker threads compress
 * (h5_chunk.c) and the calling thread stores with H5Dwrite_chunk (partitioned
 * variables too: they are assembled in row-major order); hyperslab writes
 * (ck_h5w_ds_write) go through H5Dwrite and libhdf5's filters;
 * strings and variants are variable-length uint8 sequences. The root group tracks
 * and indexes creation order so that the way back keeps the source's data order. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blocks.h"
#include "dtype.h"
#include "fileio.h"
#include "h5.h"
#include "h5_chunk.h"
#include "h5_flat.h"
#include "h5_internal.h"


struct ck_h5w {
  hid_t file;
  char *path;
  struct ck_h5_write_opts o;
  hid_t gcpl; /* for intermediate groups of the nested layout */
  /* Made once and shared by every dataset: a checkpoint of 200,000 small tensors
   * spent a third of its time making and closing property lists, types and spaces. */
  hid_t root;
  hid_t scalar;                  /* the dataspace of every attribute */
  hid_t str_type, bool_type;     /* attribute types */
  hid_t types[CK_DT_COUNT];      /* element types by dtype, made when first needed */
  hid_t dcpl_fixed, dcpl_varlen; /* contiguous datasets */
  uint64_t seq; /* data order, recorded on each dataset of the nested layout */
  struct ck_h5_codec codec; /* compressed chunks: our pipeline (shuffle + deflate, or lz4) */
  struct ck_h5_ring ring;   /* compressed chunks in flight, all of one dataset */
  int ring_on;
  struct ck_h5w_ds *ring_ds; /* the dataset they belong to */
  int wb_fd;                /* compressed chunks: for starting writeback as they are stored */
  uint64_t wb_pending;      /* bytes stored since writeback was last started */
  struct ck_h5f *flat;      /* written directly (h5_flat.c): no libhdf5 file */
};

/* Start writeback every this many bytes of stored chunks, so the final fsync
 * overlaps the conversion instead of following it (as raw copies do). */
#define WRITEBACK_STEP (8u << 20)

struct ck_h5w_ds {
  struct ck_h5w *w;
  hid_t ds;
  hid_t type; /* the writer's */
  int rank;
  uint64_t raw_offset;
  uint64_t chunk_elems; /* compressed: the block plan's bound, as make_dcpl chunked it; 0 otherwise */
  size_t chunk_bytes;   /* compressed: bytes of one (full) chunk */
  struct ck_h5_codec codec; /* compressed: the writer's, with this dataset's element size */
  struct ck_h5f_ds *flat;   /* written directly */
};

/* Bytes per compressed chunk: the caller's or the default, but small enough that a
 * slot per codec thread plus one (chunk, encoding bound, shuffle scratch: about three
 * chunks each) fits the budget, so the threads have work at the same time. */
static size_t chunk_target(const struct ck_h5w *w)
{
  size_t want = w->o.chunk_bytes ? w->o.chunk_bytes : CK_H5_CHUNK_DEFAULT;
  size_t budget = w->o.budget ? w->o.budget : CK_H5_BUDGET_DEFAULT;
  size_t fit = budget / (3 * (size_t)((w->o.threads > 0 ? w->o.threads : 0) + 1) + 1) / 4096 * 4096;

  if (want > fit)
    want = fit < 4096 ? 4096 : fit;
  return want;
}

static int shared_init(struct ck_h5w *w);
static void w_free(struct ck_h5w *w);

/* Written directly: the flat layout of fixed-size dtypes, uncompressed (the common
 * case, and the one where libhdf5's metadata work per dataset was the cost). */
static int direct(const struct ck_h5_write_opts *o)
{
  return o->fixed_only && o->layout == CK_H5_FLAT && o->compression == CK_H5_NONE && !o->cerebras05;
}

const char *ck_h5w_path(const struct ck_h5w *w)
{
  return w->path;
}

int ck_h5w_create(const char *path, const struct ck_h5_write_opts *o, struct ck_h5w **out, struct ck_err *err)
{
  struct ck_h5w *w = calloc(1, sizeof(*w));
  hid_t fcpl, fapl;

  ck_h5_init();
  *out = NULL;
  if (w == NULL || (w->path = strdup(path)) == NULL) {
    free(w);
    return ck_err_set(err, -ENOMEM, "out of memory");
  }
  w->file = w->root = w->scalar = w->str_type = w->bool_type = H5I_INVALID_HID;
  w->dcpl_fixed = w->dcpl_varlen = w->gcpl = H5I_INVALID_HID;
  for (int i = 0; i < CK_DT_COUNT; i++)
    w->types[i] = H5I_INVALID_HID;
  if (o)
    w->o = *o;
  if (w->o.compression == CK_H5_GZIP) {
    w->codec = (struct ck_h5_codec){ .shuffle = 1, .shuffle_pos = 0, .codec = CK_H5F_DEFLATE, .codec_pos = 1,
                                     .level = w->o.gzip_level };
  } else if (w->o.compression == CK_H5_LZ4) {
    w->codec = (struct ck_h5_codec){ .codec = CK_H5F_LZ4 };
  }
  if (direct(&w->o)) {
    int rc = ck_h5f_create(path, &w->flat, err);
    if (rc != 0) {
      w_free(w);
      return rc;
    }
    *out = w;
    return 0;
  }
  if (w->o.compression == CK_H5_LZ4 && H5Zfilter_avail(CK_H5_LZ4_FILTER) <= 0) {
    w_free(w);
    return ck_err_set(err, CK_EUNSUP,
                      "LZ4 compression needs HDF5 filter 32004, which is not available: "
                      "install the Debian package hdf5-filter-plugin");
  }
  fcpl = H5Pcreate(H5P_FILE_CREATE);
  fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
  if (w->o.cerebras05) { /* a tree spec of a large model outgrows the 64 KiB of compact attributes */
    H5Pset_attr_phase_change(fcpl, 0, 0);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST);
  }
  w->gcpl = H5Pcreate(H5P_GROUP_CREATE);
  H5Pset_link_creation_order(w->gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
  w->file = H5Fcreate(path, H5F_ACC_EXCL, fcpl, fapl);
  H5Pclose(fcpl);
  H5Pclose(fapl);
  if (w->file < 0) {
    /* libhdf5 keeps the errno in its stack's text: ask the file system the same
     * question, so the code says why (EACCES, EROFS: a blocked job; ENOSPC: retry) */
    int fd = ck_create_excl(path), rc;
    if (fd < 0 && fd != -EEXIST) { /* (EEXIST: libhdf5 made it before failing; its stack says why) */
      rc = ck_err_set(err, fd, "%s: cannot create HDF5 file: %s", path, strerror(-fd));
    } else {
      if (fd >= 0)
        close(fd);
      unlink(path); /* our temporary's name: nobody else's file */
      rc = ck_h5_err(err, -EIO, "%s: cannot create HDF5 file", path);
    }
    w_free(w);
    return rc;
  }
  if (shared_init(w) != 0) {
    ck_h5w_abort(w);
    return ck_h5_err(err, -EIO, "%s: cannot set up the HDF5 writer", path);
  }
  *out = w;
  return 0;
}

/* For the nested layout: open (creating as needed) the parent group of a path. */
static hid_t parent_group(struct ck_h5w *w, const char *path, const char **leaf, struct ck_err *err)
{
  hid_t g = H5Iinc_ref(w->root) >= 0 ? w->root : H5I_INVALID_HID; /* (closed as any group it opens) */
  const char *p = path, *slash;

  while ((slash = strchr(p, '/')) != NULL) {
    char part[1024];
    size_t n = (size_t)(slash - p);
    hid_t next;
    if (n == 0 || n >= sizeof(part) || (n == 1 && p[0] == '.')) {
      H5Gclose(g);
      ck_err_set(err, CK_EINVAL, "%s: tensor name cannot be a nested HDF5 path (empty or '.' component)", path);
      return H5I_INVALID_HID;
    }
    memcpy(part, p, n);
    part[n] = 0;
    if (H5Lexists(g, part, H5P_DEFAULT) > 0) {
      H5O_info_t info;
      if (H5Oget_info_by_name(g, part, &info, H5P_DEFAULT) < 0 || info.type != H5O_TYPE_GROUP) {
        H5Gclose(g);
        ck_err_set(err, CK_EINVAL, "%s: '%s' is both a tensor and a group in the nested layout", path, part);
        return H5I_INVALID_HID;
      }
      next = H5Gopen2(g, part, H5P_DEFAULT);
    } else {
      next = H5Gcreate2(g, part, H5P_DEFAULT, w->gcpl, H5P_DEFAULT);
    }
    H5Gclose(g);
    if (next < 0) {
      ck_h5_err(err, -EIO, "%s: cannot create group %s", w->path, part);
      return H5I_INVALID_HID;
    }
    g = next;
    p = slash + 1;
  }
  *leaf = p;
  return g;
}

/* A dataset creation property list: no fill (variable-length types need their
 * empty one) and no timestamps (h5py's default; the same input then gives the
 * same bytes). */
static hid_t dcpl_base(int varlen)
{
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);

  if (dcpl >= 0 && !varlen)
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
  if (dcpl >= 0)
    H5Pset_obj_track_times(dcpl, 0);
  return dcpl;
}

static int shared_init(struct ck_h5w *w)
{
  w->root = H5Gopen2(w->file, "/", H5P_DEFAULT);
  w->scalar = H5Screate(H5S_SCALAR);
  w->str_type = ck_h5_str_type();
  w->bool_type = ck_h5_bool_type();
  if ((w->dcpl_fixed = dcpl_base(0)) >= 0) {
    H5Pset_layout(w->dcpl_fixed, H5D_CONTIGUOUS);
    H5Pset_alloc_time(w->dcpl_fixed, H5D_ALLOC_TIME_EARLY);
  }
  if ((w->dcpl_varlen = dcpl_base(1)) >= 0)
    H5Pset_layout(w->dcpl_varlen, H5D_CONTIGUOUS);
  return w->root < 0 || w->scalar < 0 || w->str_type < 0 || w->bool_type < 0 || w->dcpl_fixed < 0 ||
                 w->dcpl_varlen < 0
             ? -1
             : 0;
}

static hid_t elem_type(struct ck_h5w *w, int dtype)
{
  if (dtype <= 0 || dtype >= CK_DT_COUNT)
    return H5I_INVALID_HID;
  if (w->types[dtype] < 0)
    w->types[dtype] = ck_h5_type_for(dtype);
  return w->types[dtype];
}

/* The dataset's creation property list: the writer's own for contiguous storage
 * (*owned = 0), else a chunked one for the caller to close. */
static hid_t make_dcpl(const struct ck_h5w *w, int dtype, int rank, const int64_t *dims, uint64_t nelem,
                       uint64_t *chunk_elems, int *owned)
{
  size_t esize = ck_dtype_size(dtype) ? ck_dtype_size(dtype) : 16;
  hid_t dcpl;

  *owned = 0;
  /* variable-length data cannot go through filters; scalars and empties cannot be chunked */
  if (ck_dtype_is_varlen(dtype))
    return w->dcpl_varlen;
  if (w->o.compression == CK_H5_NONE || rank == 0 || nelem == 0)
    return w->dcpl_fixed;
  if ((dcpl = dcpl_base(0)) >= 0) {
    struct ck_blocks b;
    hsize_t chunk[CK_MAX_RANK];
    *chunk_elems = chunk_target(w) / esize ? chunk_target(w) / esize : 1;
    ck_blocks_init(&b, rank, dims, *chunk_elems);
    for (int d = 0; d < rank; d++)
      chunk[d] = d < b.split ? 1 : d == b.split ? (b.run < (uint64_t)dims[d] ? b.run : (hsize_t)dims[d])
                                                : (hsize_t)dims[d];
    H5Pset_chunk(dcpl, rank, chunk);
    if (w->o.compression == CK_H5_GZIP) {
      H5Pset_shuffle(dcpl);
      H5Pset_deflate(dcpl, (unsigned)w->o.gzip_level);
    } else {
      H5Pset_filter(dcpl, CK_H5_LZ4_FILTER, H5Z_FLAG_MANDATORY, 0, NULL);
    }
    *owned = 1;
  }
  return dcpl;
}

static int set_attrs(const struct ck_h5w *w, hid_t ds, int dtype, uint32_t crc)
{
  static const char *h5type = "NumpyArrayH5Type";
  const char *name = ck_dtype_name(dtype);
  int8_t yes = 1;
  int rc = ck_h5_attr_new(ds, "__H5_TYPE__", w->str_type, w->scalar, &h5type);

  rc |= ck_h5_attr_new(ds, "tf_dtype", w->str_type, w->scalar, &name);
  rc |= ck_h5_attr_new(ds, "tf_crc32c", H5T_STD_U32LE, w->scalar, &crc);
  if (dtype == CK_DT_BFLOAT16)
    rc |= ck_h5_attr_new(ds, "is_bfloat16", w->bool_type, w->scalar, &yes);
  if (w->o.layout == CK_H5_NESTED) /* groups scatter the data order; keep it for the way back */
    rc |= ck_h5_attr_new(ds, "ckptd_order", H5T_STD_U64LE, w->scalar, &w->seq);
  return rc;
}

int ck_h5w_dataset(struct ck_h5w *w, const uint8_t *name, size_t nlen, int dtype, int rank, const int64_t *dims,
                   uint32_t tf_crc32c, struct ck_h5w_ds **out, struct ck_err *err)
{
  struct ck_h5w_ds *ds = calloc(1, sizeof(*ds));
  hsize_t hd[CK_MAX_RANK];
  uint64_t nelem = 1;
  hid_t space, dcpl, parent = H5I_INVALID_HID;
  const char *leaf;
  char *dsname = NULL;
  int rc = 0, own_dcpl;

  *out = NULL;
  if (ds == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  ds->w = w;
  ds->ds = H5I_INVALID_HID;
  ds->rank = rank;
  dtype = ck_dtype_base(dtype);
  if ((ds->type = elem_type(w, dtype)) < 0) {
    free(ds);
    return ck_err_set(err, CK_EUNSUP, "%.*s: %s has no HDF5 mapping", (int)nlen, name, ck_dtype_name(dtype));
  }
  for (int d = 0; d < rank; d++) {
    hd[d] = (hsize_t)dims[d];
    nelem *= (uint64_t)dims[d];
  }
  if (w->flat) {
    if (ck_dtype_is_varlen(dtype))
      rc = ck_err_set(err, CK_EUNSUP, "%.*s: %s: the direct writer takes fixed-size dtypes only", (int)nlen, name,
                      ck_dtype_name(dtype));
    else if ((dsname = ck_h5_quote(name, nlen)) == NULL)
      rc = ck_err_set(err, -ENOMEM, "out of memory");
    else if ((rc = ck_h5f_dataset(w->flat, dsname, dtype, rank, dims, tf_crc32c, &ds->flat, err)) == 0)
      ds->raw_offset = ck_h5f_ds_raw_offset(ds->flat);
    goto out;
  }
  if (w->o.layout == CK_H5_NESTED) {
    if (memchr(name, 0, nlen) != NULL || (dsname = strndup((const char *)name, nlen)) == NULL) {
      rc = ck_err_set(err, CK_EINVAL, "%.*s: a name holding NUL bytes needs the flat layout", (int)nlen, name);
      goto out;
    }
    if ((parent = parent_group(w, dsname[0] == '/' ? dsname + 1 : dsname, &leaf, err)) < 0) {
      rc = err ? err->code : CK_EINVAL;
      goto out;
    }
  } else {
    if ((dsname = ck_h5_quote(name, nlen)) == NULL) {
      rc = ck_err_set(err, -ENOMEM, "out of memory");
      goto out;
    }
    leaf = dsname;
  }
  if (parent < 0)
    parent = H5Iinc_ref(w->root) >= 0 ? w->root : H5I_INVALID_HID;
  space = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, hd, NULL);
  dcpl = make_dcpl(w, dtype, rank, dims, nelem, &ds->chunk_elems, &own_dcpl);
  ds->ds = H5Dcreate2(parent, leaf, ds->type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (ds->ds < 0) { /* HDF5's reason first, before any other call clears its error stack */
    rc = ck_h5_err(err, -EIO, "%s: cannot create dataset %s", w->path, leaf);
    /* a name taken: looked up only now, as a lookup per dataset cost 4% of a
     * 200,000-tensor conversion (quoting is one-to-one, so flat names collide
     * only when the source names a tensor twice) */
    if (H5Lexists(parent, leaf, H5P_DEFAULT) > 0)
      rc = ck_err_set(err, CK_EINVAL, "%s: two tensors map to the HDF5 name %s", w->path, leaf);
    H5Eclear2(H5E_DEFAULT);
  }
  H5Sclose(space);
  if (ds->ds >= 0 && H5Pget_layout(dcpl) == H5D_CONTIGUOUS && !ck_dtype_is_varlen(dtype) && nelem > 0) {
    haddr_t off = H5Dget_offset(ds->ds);
    ds->raw_offset = off == HADDR_UNDEF ? 0 : (uint64_t)off;
  }
  if (ds->chunk_elems) {
    hsize_t chunk[CK_MAX_RANK];
    ds->chunk_bytes = ck_dtype_size(dtype);
    ds->codec = w->codec;
    ds->codec.esize = ck_dtype_size(dtype);
    H5Pget_chunk(dcpl, rank, chunk);
    for (int d = 0; d < rank; d++)
      ds->chunk_bytes *= chunk[d];
  }
  if (own_dcpl)
    H5Pclose(dcpl);
  if (rc != 0)
    goto out;
  if (set_attrs(w, ds->ds, dtype, tf_crc32c) != 0)
    rc = ck_h5_err(err, -EIO, "%s: %s: cannot write attributes", w->path, leaf);
  w->seq++;
out:
  if (parent >= 0)
    H5Gclose(parent);
  free(dsname);
  if (rc != 0) {
    ck_h5w_ds_close(ds);
    return rc;
  }
  *out = ds;
  return 0;
}

uint64_t ck_h5w_ds_raw_offset(const struct ck_h5w_ds *ds)
{
  return ds->raw_offset;
}

static int write_sel(struct ck_h5w_ds *ds, const uint64_t *start, const uint64_t *count, hid_t memtype,
                     const void *data, struct ck_err *err)
{
  hsize_t s[CK_MAX_RANK], c[CK_MAX_RANK];
  hid_t fspace, mspace;
  herr_t st;

  if (ds->flat) /* (its callers write through the raw offset) */
    return ck_err_set(err, CK_EUNSUP, "%s: the direct writer takes bytes at the raw offset only", ds->w->path);
  fspace = H5Dget_space(ds->ds);
  if (ds->rank == 0) {
    mspace = H5Screate(H5S_SCALAR);
  } else {
    for (int d = 0; d < ds->rank; d++) {
      s[d] = start[d];
      c[d] = count[d];
    }
    H5Sselect_hyperslab(fspace, H5S_SELECT_SET, s, NULL, c, NULL);
    mspace = H5Screate_simple(ds->rank, c, NULL);
  }
  int rc = 0;

  st = H5Dwrite(ds->ds, memtype, mspace, fspace, H5P_DEFAULT, data);
  if (st < 0)
    rc = ck_h5_err(err, -EIO, "%s: write failed", ds->w->path);
  H5Sclose(mspace);
  H5Sclose(fspace);
  return rc;
}

int ck_h5w_ds_write(struct ck_h5w_ds *ds, const uint64_t *start, const uint64_t *count, const void *data,
                    struct ck_err *err)
{
  return write_sel(ds, start, count, ds->type, data, err);
}

int ck_h5w_ds_write_vlen(struct ck_h5w_ds *ds, const uint64_t *start, const uint64_t *count, size_t n,
                         const uint8_t *const *ptrs, const size_t *lens, struct ck_err *err)
{
  hvl_t *v = calloc(n ? n : 1, sizeof(*v));
  int rc;

  if (v == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    v[i].len = lens[i];
    v[i].p = (void *)(uintptr_t)ptrs[i];
  }
  rc = write_sel(ds, start, count, ds->type, v, err);
  free(v);
  return rc;
}

static void stream_next_block(struct ck_h5w_stream *s)
{
  uint64_t off, n;

  s->block_bytes = ck_blocks_next(&s->blocks, s->start, s->count, &off, &n) ? n * s->esize : 0;
}

void ck_h5w_stream_init(struct ck_h5w_stream *s, struct ck_h5w_ds *ds, int raw_fd, uint64_t raw_off, int dtype,
                        int rank, const int64_t *dims, void *stage, size_t stage_cap, const char *path)
{
  s->ds = ds;
  s->raw_fd = raw_fd;
  s->raw_off = raw_off;
  s->pos = 0;
  ck_wb_init(&s->wb, raw_off);
  s->esize = ck_dtype_size(dtype);
  s->stage = stage;
  s->stage_len = 0;
  s->block_bytes = 0;
  s->slot = NULL;
  s->path = path;
  if (raw_off == 0 && s->esize > 0) {
    /* compressed: blocks are exactly the chunks (same plan as make_dcpl's) */
    ck_blocks_init(&s->blocks, rank, dims, ds && ds->chunk_elems ? ds->chunk_elems : stage_cap / s->esize);
    stream_next_block(s);
  }
}

/* Store the oldest compressed chunk in flight. */
static int ring_retire(struct ck_h5w *w, struct ck_err *err)
{
  struct ck_h5_slot *s = ck_h5_ring_oldest(&w->ring);
  int rc = 0;

  if (s == NULL)
    return 0;
  if (s->rc != 0)
    rc = ck_err_set(err, s->rc, "%s: cannot compress a chunk", w->path);
  else if (H5Dwrite_chunk(w->ring_ds->ds, H5P_DEFAULT, 0, s->off, s->raw_len, s->raw) < 0)
    rc = ck_h5_err(err, -EIO, "%s: cannot write a chunk (disk full?)", w->path);
  else if ((w->wb_pending += s->raw_len) >= WRITEBACK_STEP && w->wb_fd >= 0) {
    sync_file_range(w->wb_fd, 0, 0, SYNC_FILE_RANGE_WRITE); /* (a hint: errors show at fsync) */
    w->wb_pending = 0;
  }
  ck_h5_ring_pop(&w->ring);
  return rc;
}

/* Forget what is in flight (after an error: nothing more is written). */
static void ring_drop(struct ck_h5w *w)
{
  if (!w->ring_on)
    return;
  while (ck_h5_ring_oldest(&w->ring) != NULL)
    ck_h5_ring_pop(&w->ring);
  w->ring_ds = NULL;
}

/* A free slot for a chunk of ds: the ring started on first use, older chunks stored. */
static int ring_slot(struct ck_h5w_ds *ds, struct ck_h5_slot **out, struct ck_err *err)
{
  struct ck_h5w *w = ds->w;
  int rc;

  if (!w->ring_on) {
    size_t budget = w->o.budget ? w->o.budget : CK_H5_BUDGET_DEFAULT, one = 3 * chunk_target(w) + (64u << 10);
    /* (a budget under 16 KiB still gets one slot of the smallest chunk) */
    if ((rc = ck_h5_ring_init(&w->ring, w->o.threads, budget > one ? budget : one)) != 0 ||
        (rc = ck_h5_ring_reserve(&w->ring, &w->codec, chunk_target(w), 1)) != 0) {
      ck_h5_ring_free(&w->ring);
      return ck_err_set(err, rc, "%s: cannot set up chunk compression: %s", w->path, ck_strerror(rc));
    }
    w->ring_on = 1;
    w->wb_fd = open(w->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  }
  while (w->ring_ds != ds && ck_h5_ring_oldest(&w->ring) != NULL) /* (drained at each dataset's end) */
    if ((rc = ring_retire(w, err)) != 0)
      return rc;
  w->ring_ds = ds;
  while ((*out = ck_h5_ring_free_slot(&w->ring)) == NULL)
    if ((rc = ring_retire(w, err)) != 0)
      return rc;
  return 0;
}

/* The current block is a whole chunk: pad an edge chunk, compress it in the ring;
 * after the dataset's last chunk, store everything in flight. */
static int chunk_full(struct ck_h5w_stream *s, struct ck_err *err)
{
  struct ck_h5_slot *slot = s->slot;
  struct ck_h5w *w = s->ds->w;
  int rc = 0;

  memset(slot->data + s->stage_len, 0, s->ds->chunk_bytes - s->stage_len);
  for (int d = 0; d < s->ds->rank; d++)
    slot->off[d] = s->start[d];
  slot->data_len = s->ds->chunk_bytes;
  slot->codec = &s->ds->codec;
  slot->encode = 1;
  slot->fd = -1;
  ck_h5_ring_push(&w->ring, slot);
  s->slot = NULL;
  s->stage_len = 0;
  stream_next_block(s);
  while (rc == 0 && s->block_bytes == 0 && ck_h5_ring_oldest(&w->ring) != NULL)
    rc = ring_retire(w, err);
  return rc;
}

/* The current block is whole and uncompressed: one hyperslab through H5Dwrite. */
static int block_full(struct ck_h5w_stream *s, struct ck_err *err)
{
  int rc = ck_h5w_ds_write(s->ds, s->start, s->count, s->stage, err);

  s->stage_len = 0;
  stream_next_block(s);
  return rc;
}

int ck_h5w_stream_write(struct ck_h5w_stream *s, const void *data, size_t len, struct ck_err *err)
{
  const uint8_t *p = data;
  int chunked = s->ds && s->ds->chunk_elems, rc;

  if (s->raw_off) {
    if ((rc = ck_pwrite_full(s->raw_fd, data, len, s->raw_off + s->pos)) != 0 ||
        (rc = ck_wb_wrote(&s->wb, s->raw_fd, s->raw_off + s->pos + len)) != 0)
      return ck_err_set(err, rc, "%s: write: %s", s->path, strerror(-rc));
    s->pos += len;
    return 0;
  }
  /* stage a block (compressed: a chunk, in a slot of the ring), then hand it on */
  while (len > 0) {
    size_t take = s->block_bytes - s->stage_len < len ? (size_t)(s->block_bytes - s->stage_len) : len;
    if (s->block_bytes == 0)
      return ck_err_set(err, CK_EFORMAT, "%s: more bytes than the dataset holds", s->path);
    if (chunked && s->slot == NULL && (rc = ring_slot(s->ds, &s->slot, err)) != 0)
      return rc;
    memcpy((chunked ? s->slot->data : s->stage) + s->stage_len, p, take);
    s->stage_len += take;
    p += take;
    len -= take;
    s->pos += take;
    if (s->stage_len == s->block_bytes && (rc = chunked ? chunk_full(s, err) : block_full(s, err)) != 0)
      return rc;
  }
  return 0;
}

int ck_h5w_ds_set_crc(struct ck_h5w_ds *ds, uint32_t tf_crc32c, struct ck_err *err)
{
  if (ds->flat) {
    ck_h5f_ds_set_crc(ds->flat, tf_crc32c);
    return 0;
  }
  if (ck_h5_attr_u32(ds->ds, "tf_crc32c", tf_crc32c) != 0)
    return ck_h5_err(err, -EIO, "%s: cannot write tf_crc32c", ds->w->path);
  return 0;
}

void ck_h5w_ds_close(struct ck_h5w_ds *ds)
{
  if (ds == NULL)
    return;
  if (ds->flat)
    ck_h5f_ds_close(ds->flat, NULL); /* (an error is the writer's: ck_h5w_finish reports it) */
  if (ds->w->ring_ds == ds) /* chunks of a stream that failed: never stored */
    ring_drop(ds->w);
  if (ds->ds >= 0)
    H5Dclose(ds->ds);
  free(ds);
}

/* Close what shared_init made (and the element types). Before H5Fclose: an open
 * group keeps the file open, and its close would then neither flush nor fail. */
static void shared_free(struct ck_h5w *w)
{
  hid_t *own[] = { &w->root, &w->scalar, &w->str_type, &w->bool_type, &w->dcpl_fixed, &w->dcpl_varlen };

  for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
    if (*own[i] >= 0)
      H5Idec_ref(*own[i]);
    *own[i] = H5I_INVALID_HID;
  }
  for (int i = 0; i < CK_DT_COUNT; i++) {
    if (w->types[i] >= 0)
      H5Tclose(w->types[i]);
    w->types[i] = H5I_INVALID_HID;
  }
}

static void w_free(struct ck_h5w *w)
{
  if (w->ring_on) {
    ck_h5_ring_free(&w->ring);
    if (w->wb_fd >= 0)
      close(w->wb_fd);
  }
  shared_free(w);
  if (w->gcpl >= 0)
    H5Pclose(w->gcpl);
  free(w->path);
  free(w);
}

/* Close a file we are discarding. Its space is released first: HDF5 flushes its
 * metadata on close, and when that flush fails (a full disk) libhdf5 1.10 leaves a
 * half-closed file behind that crashes it at exit. */
static void discard(struct ck_h5w *w)
{
  if (truncate(w->path, 0) != 0) {
    /* nothing more to do: the close below may then fail, and the caller removes the file */
  }
  shared_free(w);
  H5Fclose(w->file);
  H5Eclear2(H5E_DEFAULT);
  w->file = H5I_INVALID_HID;
}

int ck_h5w_root_attr(struct ck_h5w *w, const char *name, const char *value, struct ck_err *err)
{
  if (w->flat)
    return ck_h5f_root_str(w->flat, name, value, err);
  if (ck_h5_attr_str(w->root, name, value) != 0)
    return ck_h5_err(err, -EIO, "%s: cannot write root attribute %s", w->path, name);
  return 0;
}

static int root_i32(struct ck_h5w *w, const char *name, int32_t value, struct ck_err *err)
{
  if (w->flat)
    return ck_h5f_root_i32(w->flat, name, value, err);
  if (ck_h5_attr_i32(w->root, name, value) != 0)
    return ck_h5_err(err, -EIO, "%s: cannot write root attribute %s", w->path, name);
  return 0;
}

static int root_bool(struct ck_h5w *w, const char *name, int value, struct ck_err *err)
{
  if (w->flat)
    return ck_h5f_root_bool(w->flat, name, value, err);
  if (ck_h5_attr_bool(w->root, name, value) != 0)
    return ck_h5_err(err, -EIO, "%s: cannot write root attribute %s", w->path, name);
  return 0;
}

/* The root attributes of every file ckptd writes, but __SUCCESS__ (written last). */
static int root_attrs(struct ck_h5w *w, struct ck_err *err)
{
  int rc;

  if ((rc = root_i32(w, "tf_version_producer", 1, err)) != 0 ||
      (rc = root_i32(w, "tf_version_min_consumer", 0, err)) != 0 ||
      (rc = ck_h5w_root_attr(w, "ckptd_version", PACKAGE_VERSION, err)) != 0 ||
      (rc = ck_h5w_root_attr(w, "ckptd_source", w->o.source_name ? w->o.source_name : "", err)) != 0 ||
      (w->o.source_id && (rc = ck_h5w_root_attr(w, "ckptd_source_id", w->o.source_id, err)) != 0) ||
      (w->o.cerebras05 && (rc = ck_h5w_root_attr(w, "__version__", "0.5", err)) != 0))
    return rc;
  return 0;
}

/* The direct writer's finish: its superblock last, nothing before it is a file. */
static int finish_flat(struct ck_h5w *w, struct ck_err *err)
{
  int rc = root_attrs(w, err);

  if (rc == 0)
    rc = root_bool(w, "__SUCCESS__", 1, err);
  if (rc == 0)
    rc = ck_h5f_finish(w->flat, err);
  else
    ck_h5f_abort(w->flat);
  w->flat = NULL;
  w_free(w);
  return rc;
}

int ck_h5w_finish(struct ck_h5w *w, struct ck_err *err)
{
  int rc, fd;

  if (w->flat)
    return finish_flat(w, err);
  rc = root_attrs(w, err);
  /* Everything else must be on disk before __SUCCESS__ is. */
  if (rc == 0 && H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0)
    rc = ck_h5_err(err, -EIO, "%s: flush failed (disk full?)", w->path);
  if (rc == 0)
    rc = root_bool(w, "__SUCCESS__", 1, err);
  /* a flush that can fail here leaves the close below nothing to fail on */
  if (rc == 0 && H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0)
    rc = ck_h5_err(err, -EIO, "%s: flush failed (disk full?)", w->path);
  if (rc != 0) {
    discard(w);
  } else {
    shared_free(w);
    if (H5Fclose(w->file) < 0)
      rc = ck_h5_err(err, -EIO, "%s: close failed (disk full?)", w->path);
    w->file = H5I_INVALID_HID;
  }
  if (rc == 0) {
    fd = open(w->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0)
      rc = ck_err_set(err, -errno, "%s: fsync: %s", w->path, strerror(errno));
    if (fd >= 0)
      close(fd);
  }
  w_free(w);
  return rc;
}

void ck_h5w_abort(struct ck_h5w *w)
{
  if (w == NULL)
    return;
  if (w->flat)
    ck_h5f_abort(w->flat);
  else
    discard(w);
  w_free(w);
}
