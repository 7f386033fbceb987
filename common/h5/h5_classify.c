/* What the HDF5 reader accepts of a dataset: its element type (mapped to a TensorFlow
 * dtype and to the memory type that yields TensorFlow's bytes), and its storage.
 *
 * DESIGN. Every rule here exists because a file may be hostile:
 * - storage must live in this file: external raw storage and virtual datasets name
 *   other files, which a converter running as a service must never read;
 * - filters decode bytes with whatever plugin the machine has: only the lossless
 *   filters a checkpoint needs are allowed (scaleoffset and nbit are refused too,
 *   as they change values);
 * - a dataset must have the storage its shape declares (unwritten data is not a
 *   tensor, and 2^40 declared elements in a 1 KB file must not become 4 TiB of output);
 * - bytes are copied raw only when the stored type is exactly TensorFlow's
 *   little-endian layout; otherwise HDF5 converts them when that is exact (byte order,
 *   integer precision/offset, narrower float fields), else the dataset is refused. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "dtype.h"
#include "h5.h"
#include "h5_chunk.h"
#include "h5_internal.h"

static int float_fields(hid_t t, size_t f[5])
{
  return H5Tget_fields(t, &f[0], &f[1], &f[2], &f[3], &f[4]) >= 0;
}

/* bfloat16 stored as a 2-byte HDF5 float (sign 15, exponent 7..14, mantissa 0..6). */
static int is_bf16(hid_t t)
{
  size_t f[5];

  return H5Tget_size(t) == 2 && float_fields(t, f) && f[0] == 15 && f[1] == 7 && f[2] == 8 && f[3] == 0 &&
         f[4] == 7 && H5Tget_ebias(t) == 127;
}

static int complex_of(hid_t t)
{
  hid_t m0, m1;
  int dt = -1;

  if (H5Tget_nmembers(t) != 2)
    return -1;
  {
    char *n0 = H5Tget_member_name(t, 0), *n1 = H5Tget_member_name(t, 1);
    int named = n0 && n1 && strcmp(n0, "r") == 0 && strcmp(n1, "i") == 0;
    H5free_memory(n0);
    H5free_memory(n1);
    if (!named)
      return -1;
  }
  m0 = H5Tget_member_type(t, 0);
  m1 = H5Tget_member_type(t, 1);
  if (H5Tget_class(m0) == H5T_FLOAT && H5Tget_class(m1) == H5T_FLOAT && H5Tget_size(m0) == H5Tget_size(m1)) {
    if (H5Tget_size(m0) == 4)
      dt = CK_DT_COMPLEX64;
    else if (H5Tget_size(m0) == 8)
      dt = CK_DT_COMPLEX128;
  }
  H5Tclose(m0);
  H5Tclose(m1);
  return dt;
}

static int bool_enum(hid_t t)
{
  int8_t v;
  char name[8];

  if (H5Tget_size(t) != 1 || H5Tget_nmembers(t) != 2)
    return 0;
  v = 0;
  if (H5Tenum_nameof(t, &v, name, sizeof(name)) < 0 || strcmp(name, "FALSE") != 0)
    return 0;
  v = 1;
  return H5Tenum_nameof(t, &v, name, sizeof(name)) >= 0 && strcmp(name, "TRUE") == 0;
}

const char *ck_h5_class_name(int c)
{
  switch (c) {
  case H5T_INTEGER: return "integer";
  case H5T_FLOAT: return "float";
  case H5T_TIME: return "time";
  case H5T_STRING: return "string";
  case H5T_BITFIELD: return "bitfield";
  case H5T_OPAQUE: return "opaque";
  case H5T_COMPOUND: return "compound";
  case H5T_REFERENCE: return "reference";
  case H5T_ENUM: return "enum";
  case H5T_VLEN: return "variable-length sequence";
  case H5T_ARRAY: return "array";
  default: return "unknown";
  }
}

int ck_h5_dtype_of_type(hid_t t, int *kind, size_t *esize)
{
  H5T_class_t c = H5Tget_class(t);
  size_t sz = H5Tget_size(t);

  *kind = CK_H5K_FIXED;
  *esize = sz;
  switch (c) {
  case H5T_INTEGER: {
    int s = H5Tget_sign(t) == H5T_SGN_2;
    switch (sz) {
    case 1: return s ? CK_DT_INT8 : CK_DT_UINT8;
    case 2: return s ? CK_DT_INT16 : CK_DT_UINT16;
    case 4: return s ? CK_DT_INT32 : CK_DT_UINT32;
    case 8: return s ? CK_DT_INT64 : CK_DT_UINT64;
    default: return -1;
    }
  }
  case H5T_FLOAT:
    if (sz == 4)
      return CK_DT_FLOAT;
    if (sz == 8)
      return CK_DT_DOUBLE;
    if (is_bf16(t))
      return CK_DT_BFLOAT16;
    return sz == 2 ? CK_DT_HALF : -1; /* a non-IEEE half is converted or refused later */
  case H5T_ENUM:
    return bool_enum(t) ? CK_DT_BOOL : -1;
  case H5T_COMPOUND:
    return complex_of(t);
  case H5T_VLEN: {
    hid_t base = H5Tget_super(t);
    int ok = H5Tget_class(base) == H5T_INTEGER && H5Tget_size(base) == 1;
    H5Tclose(base);
    *kind = CK_H5K_VLEN_BYTES;
    return ok ? CK_DT_STRING : -1;
  }
  case H5T_STRING:
    *kind = H5Tis_variable_str(t) > 0 ? CK_H5K_VLEN_STR : CK_H5K_FIXED_STR;
    return CK_DT_STRING;
  default:
    return -1;
  }
}

static int signed_dtype(int dt)
{
  return dt == CK_DT_INT8 || dt == CK_DT_INT16 || dt == CK_DT_INT32 || dt == CK_DT_INT64 || dt == CK_DT_QINT8 ||
         dt == CK_DT_QINT16 || dt == CK_DT_QINT32;
}

int ck_h5_dtype_fits(int dtype, hid_t ft, int kind)
{
  H5T_class_t c = H5Tget_class(ft);
  size_t sz = H5Tget_size(ft);
  dtype = ck_dtype_base(dtype);
  if (kind != CK_H5K_FIXED)
    return dtype == CK_DT_STRING || dtype == CK_DT_VARIANT;
  if (ck_dtype_size(dtype) != sz)
    return 0;
  switch (dtype) {
  case CK_DT_FLOAT: case CK_DT_DOUBLE: case CK_DT_HALF:
    return c == H5T_FLOAT && !is_bf16(ft);
  case CK_DT_BFLOAT16: /* ckptd and Cerebras store bfloat16 bits as a 16-bit integer */
    return c == H5T_INTEGER || (c == H5T_FLOAT && is_bf16(ft));
  case CK_DT_FLOAT8_E5M2: case CK_DT_FLOAT8_E4M3FN:
    return c == H5T_INTEGER;
  case CK_DT_BOOL:
    return c == H5T_ENUM && bool_enum(ft);
  case CK_DT_COMPLEX64: case CK_DT_COMPLEX128:
    return c == H5T_COMPOUND && complex_of(ft) == dtype;
  case CK_DT_INT8: case CK_DT_INT16: case CK_DT_INT32: case CK_DT_INT64: case CK_DT_QINT8: case CK_DT_QINT16:
  case CK_DT_QINT32: case CK_DT_UINT8: case CK_DT_UINT16: case CK_DT_UINT32: case CK_DT_UINT64:
  case CK_DT_QUINT8: case CK_DT_QUINT16:
    return c == H5T_INTEGER && (H5Tget_sign(ft) == H5T_SGN_2) == signed_dtype(dtype);
  default:
    return 0;
  }
}

/* HDF5 converts a float exactly when the target has at least as many exponent and
 * mantissa bits (values then round-trip; h5py reads them the same way). */
static int float_widens(hid_t from, hid_t to, const char **why)
{
  size_t a[5], b[5];

  if (!float_fields(from, a) || !float_fields(to, b) || H5Tget_norm(from) == H5T_NORM_ERROR ||
      a[2] > b[2] || a[4] > b[4]) {
    *why = "its float layout does not fit TensorFlow's without rounding";
    return 0;
  }
  return 1;
}

static hid_t int_le(hid_t ft)
{
  int s = H5Tget_sign(ft) == H5T_SGN_2;

  switch (H5Tget_size(ft)) {
  case 1: return H5Tcopy(s ? H5T_STD_I8LE : H5T_STD_U8LE);
  case 2: return H5Tcopy(s ? H5T_STD_I16LE : H5T_STD_U16LE);
  case 4: return H5Tcopy(s ? H5T_STD_I32LE : H5T_STD_U32LE);
  case 8: return H5Tcopy(s ? H5T_STD_I64LE : H5T_STD_U64LE);
  default: return H5I_INVALID_HID;
  }
}

hid_t ck_h5_mem_type(hid_t ft, int dtype, int *exact, const char **why)
{
  H5T_class_t c = H5Tget_class(ft);
  hid_t mt;
  int ok = 1;

  *exact = 0;
  *why = "its element type cannot be converted";
  if (c == H5T_INTEGER) {
    /* the stored sign, not the dtype's: bfloat16 bits in a uint16 must not be clipped */
    mt = int_le(ft);
  } else if (c == H5T_FLOAT && ck_dtype_base(dtype) == CK_DT_BFLOAT16) {
    mt = H5Tcopy(ft);
    H5Tset_order(mt, H5T_ORDER_LE);
  } else {
    mt = ck_h5_type_for(dtype);
  }
  if (mt < 0)
    return H5I_INVALID_HID;
  if (H5Tequal(ft, mt) > 0) {
    *exact = 1;
    return mt;
  }
  if (c == H5T_FLOAT) {
    ok = float_widens(ft, mt, why);
  } else if (c == H5T_COMPOUND) {
    for (int i = 0; i < 2 && ok; i++) {
      hid_t fm = H5Tget_member_type(ft, (unsigned)i), mm = H5Tget_member_type(mt, (unsigned)i);
      ok = float_widens(fm, mm, why);
      H5Tclose(fm);
      H5Tclose(mm);
    }
  }
  if (!ok) {
    H5Tclose(mt);
    return H5I_INVALID_HID;
  }
  return mt;
}

/* ---- storage ---- */

struct filter_rule {
  int id;
  const char *name;
  const char *package; /* Debian package providing it; NULL if not allowed */
};

static const struct filter_rule filters[] = {
  { H5Z_FILTER_DEFLATE, "deflate", "libhdf5 (built in)" },
  { H5Z_FILTER_SHUFFLE, "shuffle", "libhdf5 (built in)" },
  { H5Z_FILTER_FLETCHER32, "fletcher32", "libhdf5 (built in)" },
  { H5Z_FILTER_SZIP, "szip", "libhdf5 built with libaec (libsz2)" },
  { 32004, "lz4", "hdf5-filter-plugin" },
  { 32015, "zstd", "python3-hdf5plugin (set HDF5_PLUGIN_PATH to its plugin directory)" },
  { 32008, "bitshuffle", "hdf5-filter-plugin" },
  { 32001, "blosc", "hdf5-filter-plugin-blosc-serial" },
  { H5Z_FILTER_NBIT, "nbit: it changes stored values", NULL },
  { H5Z_FILTER_SCALEOFFSET, "scaleoffset: it can change values", NULL },
  { 307, "bzip2", NULL },
  { 32000, "lzf", NULL },
  { 32013, "zfp: lossy", NULL },
  { 32017, "sz: lossy", NULL },
};

static const struct filter_rule *filter_rule(int id)
{
  for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++)
    if (filters[i].id == id)
      return &filters[i];
  return NULL;
}

/* A filter need not be installed when ckptd decodes the pipeline itself
 * (h5_chunk.c: shuffle, deflate, lz4, zstd in native byte order). */
static int check_filters(hid_t ds, hid_t dcpl, const char *file, const char *path, int kind, size_t esize,
                         struct ck_err *err)
{
  int n = H5Pget_nfilters(dcpl);
  struct ck_h5_codec c;
  hid_t ft = H5Dget_type(ds);
  /* (a big-endian type goes through libhdf5's conversion, and so through its filters) */
  int direct = kind == CK_H5K_FIXED && ft >= 0 && (H5Tget_size(ft) == 1 || H5Tget_order(ft) == H5T_ORDER_LE) &&
               ck_h5_codec_of_dcpl(dcpl, esize, &c);

  if (ft >= 0)
    H5Tclose(ft);

  for (int i = 0; i < n; i++) {
    unsigned flags = 0, config = 0;
    size_t nelem = 0;
    char name[64] = "";
    int id = (int)H5Pget_filter2(dcpl, (unsigned)i, &flags, &nelem, NULL, sizeof(name), name, &config);
    const struct filter_rule *fr = filter_rule(id);

    if (fr == NULL || fr->package == NULL)
      return ck_err_set(err, CK_EUNSUP, "%s: dataset %s uses HDF5 filter %d (%s), which ckptd does not allow", file,
                        path, id, fr ? fr->name : name[0] ? name : "unknown");
    if (!direct && H5Zfilter_avail((H5Z_filter_t)id) <= 0) { /* (probing dlopens every plugin) */
      H5Eclear2(H5E_DEFAULT);
      return ck_err_set(err, CK_EUNSUP, "%s: dataset %s needs HDF5 filter %d (%s), which is not installed (Debian: %s)",
                        file, path, id, fr->name, fr->package);
    }
  }
  return 0;
}

/* Chunked data must have every chunk stored; a filtered dataset's row of chunks
 * (what the chunk cache holds while streaming) must stay under CK_H5_CHUNK_SLAB_MAX. */
static int check_chunks(hid_t ds, hid_t dcpl, const char *file, const char *path, int filtered, size_t esize,
                        struct ck_err *err)
{
  hsize_t dims[H5S_MAX_RANK], chunk[H5S_MAX_RANK], stored = 0;
  hid_t space = H5Dget_space(ds);
  int rank = H5Sget_simple_extent_ndims(space), rc = 0;
  uint64_t need = 1;
  uint64_t slab = 0;

  if (rank < 1 || rank > H5S_MAX_RANK || H5Pget_chunk(dcpl, rank, chunk) != rank ||
      H5Sget_simple_extent_dims(space, dims, NULL) != rank) {
    rc = ck_h5_err(err, CK_EFORMAT, "%s: dataset %s: cannot read its chunk layout", file, path);
    goto out;
  }
  slab = ck_h5_chunk_slab(rank, dims, chunk, esize);
  for (int d = 0; d < rank; d++)
    need *= chunk[d] ? (dims[d] + chunk[d] - 1) / chunk[d] : 0; /* <= elements, no overflow */
  if (filtered && slab > CK_H5_CHUNK_SLAB_MAX) {
    rc = ck_err_set(err, CK_ELIMIT, "%s: dataset %s: a row of its compressed chunks holds %llu bytes, over the %u MiB limit",
                    file, path, (unsigned long long)slab, CK_H5_CHUNK_SLAB_MAX >> 20);
  } else if (H5Dget_num_chunks(ds, space, &stored) < 0) {
    rc = ck_h5_err(err, CK_EFORMAT, "%s: dataset %s: cannot count its chunks", file, path);
  } else if (stored < need) {
    rc = ck_err_set(err, CK_EFORMAT, "%s: dataset %s declares %llu chunks but only %llu are stored (data never written)",
                    file, path, (unsigned long long)need, (unsigned long long)stored);
  }
out:
  H5Sclose(space);
  return rc;
}

uint64_t ck_h5_chunk_slab(int rank, const hsize_t *dims, const hsize_t *chunk, size_t esize)
{
  uint64_t slab = esize && chunk[0] > UINT64_MAX / esize ? UINT64_MAX : chunk[0] * (uint64_t)esize;

  for (int d = 1; d < rank; d++) {
    uint64_t span = chunk[d] ? (dims[d] + chunk[d] - 1) / chunk[d] * chunk[d] : 0;
    slab = span && slab > UINT64_MAX / span ? UINT64_MAX : slab * span;
  }
  return slab;
}

static int check_contiguous(hid_t ds, const char *file, const char *path, uint64_t logical, struct ck_err *err)
{
  hsize_t stored = H5Dget_storage_size(ds);

  if (stored < logical)
    return ck_err_set(err, CK_EFORMAT, "%s: dataset %s declares %llu bytes but its storage holds %llu", file, path,
                      (unsigned long long)logical, (unsigned long long)stored);
  return 0;
}

int ck_h5_check_storage(hid_t ds, hid_t dcpl, const char *file, uint64_t file_size, const char *path, int kind,
                        uint64_t nelem, size_t esize, struct ck_err *err)
{
  H5D_layout_t layout = H5Pget_layout(dcpl);
  H5D_space_status_t status = H5D_SPACE_STATUS_ERROR;
  int rc = 0, nfilters = H5Pget_nfilters(dcpl);
  size_t store_esize = kind == CK_H5K_FIXED || kind == CK_H5K_FIXED_STR ? esize : 16; /* vlen: heap ids */

  if (layout == H5D_VIRTUAL) {
    rc = ck_err_set(err, CK_EUNSUP, "%s: dataset %s: virtual dataset maps other files; refused", file, path);
  } else if (H5Pget_external_count(dcpl) > 0) {
    char name[256] = "";
    off_t off;
    hsize_t size;
    H5Pget_external(dcpl, 0, sizeof(name), name, &off, &size);
    rc = ck_err_set(err, CK_EUNSUP, "%s: dataset %s: external storage refers to another file (%.200s); refused", file,
                    path, name);
  } else if (layout < 0 || nfilters < 0) {
    rc = ck_h5_err(err, CK_EFORMAT, "%s: dataset %s: cannot read its storage layout", file, path);
  } else if ((rc = check_filters(ds, dcpl, file, path, kind, esize, err)) != 0) {
  } else if (H5Dget_storage_size(ds) > file_size) {
    /* (a corrupt chunk index can claim gigabytes that libhdf5 would allocate to read) */
    rc = ck_err_set(err, CK_EFORMAT, "%s: dataset %s: its storage (%llu bytes) is larger than the file (%llu bytes): corrupt",
                    file, path, (unsigned long long)H5Dget_storage_size(ds), (unsigned long long)file_size);
  } else if (nelem == 0) {
  } else if (H5Dget_space_status(ds, &status) < 0 || status == H5D_SPACE_STATUS_NOT_ALLOCATED) {
    rc = ck_err_set(err, CK_EFORMAT, "%s: dataset %s declares %llu elements but has no storage (data never written)",
                    file, path, (unsigned long long)nelem);
  } else if (layout == H5D_CHUNKED) {
    rc = check_chunks(ds, dcpl, file, path, nfilters > 0, store_esize, err);
  } else if (kind == CK_H5K_FIXED || kind == CK_H5K_FIXED_STR) {
    rc = check_contiguous(ds, file, path, nelem * esize, err);
  }
  H5Eclear2(H5E_DEFAULT);
  return rc;
}

hid_t ck_h5_dapl_for(hid_t ds, int kind)
{
  hid_t dcpl = H5Dget_create_plist(ds), dapl = H5P_DEFAULT, space = H5Dget_space(ds), ft;
  hsize_t dims[H5S_MAX_RANK], chunk[H5S_MAX_RANK];
  int rank = H5Sget_simple_extent_ndims(space);

  /* a filtered chunk must be inflated once: cache a whole row of chunks, which is
   * what consecutive row-major blocks touch (checked against CK_H5_CHUNK_SLAB_MAX) */
  if (H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_nfilters(dcpl) > 0 && rank >= 1 && rank <= H5S_MAX_RANK &&
      H5Pget_chunk(dcpl, rank, chunk) == rank && H5Sget_simple_extent_dims(space, dims, NULL) == rank) {
    size_t esize = 16;
    uint64_t slab, per = 1;
    if (kind == CK_H5K_FIXED || kind == CK_H5K_FIXED_STR) {
      ft = H5Dget_type(ds);
      esize = H5Tget_size(ft);
      H5Tclose(ft);
    }
    slab = ck_h5_chunk_slab(rank, dims, chunk, esize);
    for (int d = 0; d < rank; d++)
      per *= chunk[d];
    if (slab <= CK_H5_CHUNK_SLAB_MAX && per * esize > 0 && (dapl = H5Pcreate(H5P_DATASET_ACCESS)) >= 0) {
      uint64_t nchunks = slab / (per * esize) + 1;
      H5Pset_chunk_cache(dapl, (size_t)(nchunks * 13 + 1), (size_t)(slab + per * esize), 1.0);
    }
  }
  H5Sclose(space);
  H5Pclose(dcpl);
  H5Eclear2(H5E_DEFAULT);
  return dapl;
}
