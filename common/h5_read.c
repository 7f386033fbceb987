/* HDF5 reader.
 *
 * Opening walks the file once (read-only, HDF5 file locking as configured) and
 * classifies every dataset: a tensor (with its TensorFlow dtype decided by, in
 * order, the tf_dtype attribute, is_bfloat16, Cerebras 0.5 JSON metadata, then the
 * HDF5 type), a non-tensor leaf (skipped and listed), or an error naming the
 * dataset and its element type. Tensor bytes are later produced in TensorFlow's
 * stored layout: contiguous little-endian data by pread at the dataset's offset
 * (checked against the file size), everything else by H5Dread in bounded blocks. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blocks.h"
#include "coding.h"
#include "crc32c.h"
#include "dtype.h"
#include "fileio.h"
#include "h5.h"
#include "h5_internal.h"

#define VLEN_BATCH 1024

struct ck_h5r {
  hid_t file;
  int fd;
  uint64_t file_size;
  char *path;
  int unquote_root;   /* flat escaped names at the root (ckptd flat, Cerebras legacy) */
  int cerebras05;
  struct ck_h5_tensor *t;
  size_t n, cap;
  char **skipped;
  size_t nskipped;
  struct ck_err *err;
  int rc;
};

int ck_h5_is_hdf5(const char *path)
{
  static const uint8_t sig[8] = { 0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n' };
  uint8_t b[8];
  int fd = open(path, O_RDONLY | O_CLOEXEC), found = 0;
  struct stat st;

  if (fd < 0)
    return 0;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
    for (uint64_t off = 0; !found && off + 8 <= (uint64_t)st.st_size && off <= (1u << 20); off = off ? off * 2 : 512)
      found = ck_pread_full(fd, b, 8, off) == 0 && memcmp(b, sig, 8) == 0;
  close(fd);
  return found;
}

static void tensor_free(struct ck_h5_tensor *t)
{
  free(t->path);
  free(t->name);
  free(t->dims);
}

void ck_h5r_close(struct ck_h5r *r)
{
  if (r == NULL)
    return;
  for (size_t i = 0; i < r->n; i++)
    tensor_free(&r->t[i]);
  for (size_t i = 0; i < r->nskipped; i++)
    free(r->skipped[i]);
  free(r->t);
  free(r->skipped);
  if (r->file >= 0)
    H5Fclose(r->file);
  if (r->fd >= 0)
    close(r->fd);
  free(r->path);
  free(r);
}

size_t ck_h5r_count(const struct ck_h5r *r) { return r->n; }
const struct ck_h5_tensor *ck_h5r_tensor(const struct ck_h5r *r, size_t i) { return i < r->n ? &r->t[i] : NULL; }
size_t ck_h5r_skipped_count(const struct ck_h5r *r) { return r->nskipped; }
const char *ck_h5r_skipped(const struct ck_h5r *r, size_t i) { return i < r->nskipped ? r->skipped[i] : NULL; }
int ck_h5r_fd(const struct ck_h5r *r) { return r->fd; }
const char *ck_h5r_path(const struct ck_h5r *r) { return r->path; }

static void skip(struct ck_h5r *r, const char *path, const char *why)
{
  char **ns = realloc(r->skipped, (r->nskipped + 1) * sizeof(char *));
  char *s = ck_asprintf("%s (%s)", path, why);

  if (ns == NULL || s == NULL) {
    free(s);
    if (ns)
      r->skipped = ns;
    return;
  }
  r->skipped = ns;
  r->skipped[r->nskipped++] = s;
}

/* ---- classification ---- */

static int is_half(hid_t t)
{
  size_t spos, epos, esize, mpos, msize;

  return H5Tget_size(t) == 2 && H5Tget_fields(t, &spos, &epos, &esize, &mpos, &msize) >= 0 && spos == 15 &&
         epos == 10 && esize == 5 && mpos == 0 && msize == 10 && H5Tget_ebias(t) == 15;
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

static const char *class_name(H5T_class_t c)
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

/* dtype and kind from the HDF5 type alone; -1 if unsupported. */
static int dtype_of_type(hid_t t, int *kind, size_t *esize)
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
    return is_half(t) ? CK_DT_HALF : -1;
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

/* Cerebras 0.5: "<key>.__metadata__" root attribute with {"dtypes": ["torch.bfloat16"], ...}. */
static int meta_dtype(struct ck_h5r *r, const char *key)
{
  char attr[1200], json[4096], first[64];
  hid_t root;
  int dt = -1;

  snprintf(attr, sizeof(attr), "%s.__metadata__", key);
  root = H5Gopen2(r->file, "/", H5P_DEFAULT);
  if (ck_h5_attr_get_str(root, attr, json, sizeof(json)) == 0 &&
      ck_json_first_string(json, strlen(json), "dtypes", first, sizeof(first)) == 0) {
    if (strcmp(first, "torch.bfloat16") == 0)
      dt = CK_DT_BFLOAT16;
    else if (strcmp(first, "torch.float16") == 0)
      dt = CK_DT_HALF;
    else if (strcmp(first, "torch.bool") == 0)
      dt = CK_DT_BOOL;
  }
  H5Gclose(root);
  return dt;
}

/* Apply the attributes that override the element type; -1 if they contradict it. */
static int refine_dtype(struct ck_h5r *r, hid_t ds, const char *key, int dt, const struct ck_h5_tensor *t)
{
  char s[64];
  long long flag;
  int named, md;

  if (ck_h5_attr_get_str(ds, "tf_dtype", s, sizeof(s)) == 0 && (named = ck_dtype_parse(s)) > 0) {
    if (t->kind != CK_H5K_FIXED)
      return named == CK_DT_STRING || named == CK_DT_VARIANT ? named : -1;
    return ck_dtype_size(named) == t->file_esize ? named : -1;
  }
  if (ck_h5_attr_get_int(ds, "is_bfloat16", &flag) == 0 && flag && t->file_esize == 2 && t->kind == CK_H5K_FIXED)
    return CK_DT_BFLOAT16;
  if (r->cerebras05 && (md = meta_dtype(r, key)) > 0 && ck_dtype_size(md) == t->file_esize)
    return md;
  return dt;
}

static int add_tensor(struct ck_h5r *r, struct ck_h5_tensor *t)
{
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 64;
    struct ck_h5_tensor *nt = realloc(r->t, cap * sizeof(*nt));
    if (nt == NULL)
      return -ENOMEM;
    r->t = nt;
    r->cap = cap;
  }
  r->t[r->n++] = *t;
  return 0;
}

/* Where raw little-endian bytes can be read directly, their file offset. */
static uint64_t raw_offset(hid_t ds, hid_t type, const struct ck_h5_tensor *t)
{
  hid_t dcpl = H5Dget_create_plist(ds);
  int contiguous = H5Pget_layout(dcpl) == H5D_CONTIGUOUS && H5Pget_nfilters(dcpl) == 0;
  haddr_t off = H5Dget_offset(ds);
  H5T_class_t c = H5Tget_class(type);
  int le = 1;

  H5Pclose(dcpl);
  if (c == H5T_INTEGER || c == H5T_FLOAT || c == H5T_ENUM)
    le = H5Tget_order(type) == H5T_ORDER_LE || H5Tget_size(type) == 1;
  if (c == H5T_COMPOUND) {
    hid_t m = H5Tget_member_type(type, 0);
    le = H5Tget_order(m) == H5T_ORDER_LE && H5Tget_member_offset(type, 1) == H5Tget_size(m) &&
         H5Tget_size(type) == 2 * H5Tget_size(m);
    H5Tclose(m);
  }
  if (!contiguous || !le || off == HADDR_UNDEF || t->kind != CK_H5K_FIXED || t->nelem == 0)
    return 0;
  return (uint64_t)off;
}

static int classify(struct ck_h5r *r, hid_t ds, const char *path, const char *key)
{
  struct ck_h5_tensor t = { 0 };
  hid_t type = H5Dget_type(ds), space = H5Dget_space(ds);
  H5S_class_t sc = H5Sget_simple_extent_type(space);
  hsize_t hd[CK_MAX_RANK];
  int dt, rank, rc = 0;
  char htype[64] = "";

  if (sc == H5S_NULL) {
    ck_h5_attr_get_str(ds, "__H5_TYPE__", htype, sizeof(htype));
    skip(r, path, htype[0] ? htype : "empty dataset");
    goto out;
  }
  rank = sc == H5S_SCALAR ? 0 : H5Sget_simple_extent_ndims(space);
  if (rank < 0 || rank > CK_MAX_RANK) {
    rc = ck_err_set(r->err, CK_EUNSUP, "%s: dataset %s: rank %d is not supported", r->path, path, rank);
    goto out;
  }
  if ((dt = dtype_of_type(type, &t.kind, &t.file_esize)) < 0) {
    rc = ck_err_set(r->err, CK_EUNSUP, "%s: dataset %s: unsupported element type (%s, %zu bytes)", r->path, path,
                    class_name(H5Tget_class(type)), H5Tget_size(type));
    goto out;
  }
  if (rank > 0)
    H5Sget_simple_extent_dims(space, hd, NULL);
  t.rank = rank;
  t.nelem = 1;
  if ((t.dims = calloc((size_t)rank + 1, sizeof(int64_t))) == NULL || (t.path = strdup(path)) == NULL) {
    rc = ck_err_set(r->err, -ENOMEM, "out of memory");
    goto out;
  }
  for (int d = 0; d < rank; d++) {
    t.dims[d] = (int64_t)hd[d];
    if (hd[d] != 0 && t.nelem > (uint64_t)INT64_MAX / 16 / hd[d]) {
      rc = ck_err_set(r->err, CK_EFORMAT, "%s: dataset %s: element count overflows", r->path, path);
      goto out;
    }
    t.nelem *= hd[d];
  }
  t.dtype = refine_dtype(r, ds, key, dt, &t);
  if (t.dtype < 0) {
    rc = ck_err_set(r->err, CK_EFORMAT, "%s: dataset %s: its tf_dtype attribute does not fit its element type",
                    r->path, path);
    goto out;
  }
  if (ck_dtype_size(t.dtype) == 0 && t.kind == CK_H5K_FIXED) {
    rc = ck_err_set(r->err, CK_EUNSUP, "%s: dataset %s: unsupported element type", r->path, path);
    goto out;
  }
  if (r->unquote_root && strchr(key, '/') == NULL)
    rc = ck_h5_unquote(key, &t.name, &t.nlen);
  else
    rc = (t.name = (uint8_t *)strdup(key)) ? (t.nlen = strlen(key), 0) : -ENOMEM;
  if (rc != 0) {
    ck_err_set(r->err, rc, "out of memory");
    goto out;
  }
  {
    long long crc;
    if (ck_h5_attr_get_int(ds, "tf_crc32c", &crc) == 0) {
      t.has_crc = 1;
      t.tf_crc32c = (uint32_t)crc;
    }
  }
  {
    long long ord;
    if (ck_h5_attr_get_int(ds, "ckptd_order", &ord) == 0 && ord >= 0) {
      t.has_order = 1;
      t.order = (uint64_t)ord;
    }
  }
  t.raw_offset = raw_offset(ds, type, &t);
  if (t.raw_offset && (t.raw_offset > r->file_size || t.nelem * t.file_esize > r->file_size - t.raw_offset)) {
    rc = ck_err_set(r->err, CK_ETRUNC, "%s: dataset %s: data at offset %llu lies past the end of the file (truncated?)",
                    r->path, path, (unsigned long long)t.raw_offset);
    goto out;
  }
  if ((rc = add_tensor(r, &t)) != 0)
    ck_err_set(r->err, rc, "out of memory");
  else
    memset(&t, 0, sizeof(t));
out:
  tensor_free(&t);
  H5Sclose(space);
  H5Tclose(type);
  return rc;
}

struct visit_ctx {
  struct ck_h5r *r;
  const char *prefix; /* path of the group being visited, "" for the root */
};

static int walk_group(struct ck_h5r *r, hid_t g, const char *prefix);

static herr_t visit(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
  struct visit_ctx *v = data;
  struct ck_h5r *r = v->r;
  char *key = v->prefix[0] ? ck_asprintf("%s/%s", v->prefix, name) : strdup(name);
  char *path = key ? ck_asprintf("/%s", key) : NULL;
  H5O_info_t oi;
  int rc = 0;

  if (key == NULL || path == NULL) {
    rc = ck_err_set(r->err, -ENOMEM, "out of memory");
  } else if (info->type != H5L_TYPE_HARD) {
    skip(r, path, "link");
  } else if (H5Oget_info_by_name(g, name, &oi, H5P_DEFAULT) < 0) {
    rc = ck_h5_err(r->err, CK_EFORMAT, "%s: %s: cannot read object header", r->path, path);
  } else if (oi.type == H5O_TYPE_GROUP) {
    hid_t sub = H5Gopen2(g, name, H5P_DEFAULT);
    rc = sub < 0 ? ck_h5_err(r->err, CK_EFORMAT, "%s: %s: cannot open group", r->path, path) : walk_group(r, sub, key);
    if (sub >= 0)
      H5Gclose(sub);
  } else if (oi.type == H5O_TYPE_DATASET) {
    hid_t ds = H5Dopen2(g, name, H5P_DEFAULT);
    rc = ds < 0 ? ck_h5_err(r->err, CK_EFORMAT, "%s: %s: cannot open dataset", r->path, path)
                : classify(r, ds, path, key);
    if (ds >= 0)
      H5Dclose(ds);
  } else {
    skip(r, path, "not a dataset");
  }
  free(key);
  free(path);
  r->rc = rc;
  return rc == 0 ? 0 : -1;
}

static int walk_group(struct ck_h5r *r, hid_t g, const char *prefix)
{
  struct visit_ctx v = { r, prefix };
  hid_t gcpl = H5Gget_create_plist(g);
  unsigned flags = 0;
  hsize_t idx = 0;
  herr_t st;

  H5Pget_link_creation_order(gcpl, &flags);
  H5Pclose(gcpl);
  r->rc = 0;
  if (flags & H5P_CRT_ORDER_INDEXED)
    st = H5Literate(g, H5_INDEX_CRT_ORDER, H5_ITER_INC, &idx, visit, &v);
  else
    st = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, visit, &v);
  if (st < 0 && r->rc == 0)
    return ck_h5_err(r->err, CK_EFORMAT, "%s: cannot list group /%s", r->path, prefix);
  return r->rc;
}

static int root_checks(struct ck_h5r *r, hid_t root)
{
  char ver[32] = "";
  long long success = 0, dummy;
  int ours = H5Aexists(root, "ckptd_version") > 0;
  int has_success = ck_h5_attr_get_int(root, "__SUCCESS__", &success) == 0 && success;
  H5O_info_t oi;

  if (ck_h5_attr_get_str(root, "__version__", ver, sizeof(ver)) != 0 && ck_h5_attr_get_int(root, "__version__", &dummy) != 0) {
    double d;
    hid_t a = H5Aexists(root, "__version__") > 0 ? H5Aopen(root, "__version__", H5P_DEFAULT) : -1;
    if (a >= 0) {
      if (H5Aread(a, H5T_NATIVE_DOUBLE, &d) >= 0)
        snprintf(ver, sizeof(ver), "%g", d);
      H5Aclose(a);
    }
  }
  /* any "<key>.__metadata__" root attribute also marks the 0.5 format */
  if (H5Oget_info(root, &oi) >= 0 && oi.num_attrs > 0) {
    for (hsize_t i = 0; i < oi.num_attrs && !r->cerebras05; i++) {
      char name[1024];
      ssize_t n = H5Aget_name_by_idx(root, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof(name), H5P_DEFAULT);
      if (n > 13 && (size_t)n < sizeof(name) && strcmp(name + n - 13, ".__metadata__") == 0)
        r->cerebras05 = 1;
    }
  }
  if (strcmp(ver, "0.5") == 0 || strtod(ver, NULL) >= 0.5)
    r->cerebras05 = 1;
  if ((r->cerebras05 || ours) && !has_success)
    return ck_err_set(r->err, CK_EFORMAT, "%s: no __SUCCESS__ attribute: the %s checkpoint was not completely saved",
                      r->path, ours ? "ckptd" : "Cerebras 0.5");
  r->unquote_root = ours || (!r->cerebras05 && (ver[0] || H5Aexists(root, "__spec__") > 0));
  return 0;
}

static int cmp_order(const void *pa, const void *pb)
{
  const struct ck_h5_tensor *a = pa, *b = pb;

  return a->order < b->order ? -1 : a->order > b->order;
}

/* Cerebras 0.5 keeps scalars, strings and None only in "<key>.__metadata__": list them. */
static void skip_metadata_only(struct ck_h5r *r, hid_t root)
{
  H5O_info_t oi;

  if (!r->cerebras05 || H5Oget_info(root, &oi) < 0)
    return;
  for (hsize_t i = 0; i < oi.num_attrs; i++) {
    char name[1024];
    ssize_t n = H5Aget_name_by_idx(root, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof(name), H5P_DEFAULT);
    int found = 0;
    if (n <= 13 || (size_t)n >= sizeof(name) || strcmp(name + n - 13, ".__metadata__") != 0)
      continue;
    name[n - 13] = 0;
    for (size_t k = 0; k < r->n && !found; k++)
      found = strcmp((const char *)r->t[k].name, name) == 0;
    if (!found) {
      char path[1100];
      snprintf(path, sizeof(path), "/%s", name);
      skip(r, path, "value only in metadata");
    }
  }
}

/* ckptd's nested layout records the data order that its groups scatter. */
static void sort_by_order(struct ck_h5r *r)
{
  if (r->n < 2)
    return;
  for (size_t i = 0; i < r->n; i++)
    if (!r->t[i].has_order)
      return;
  qsort(r->t, r->n, sizeof(*r->t), cmp_order);
}

int ck_h5r_open(const char *path, struct ck_h5r **out, struct ck_err *err)
{
  struct ck_h5r *r = calloc(1, sizeof(*r));
  struct stat st;
  hid_t root;
  int rc;

  ck_h5_init();
  *out = NULL;
  if (r == NULL || (r->path = strdup(path)) == NULL) {
    free(r);
    return ck_err_set(err, -ENOMEM, "out of memory");
  }
  r->err = err;
  r->file = H5I_INVALID_HID;
  if ((r->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(r->fd, &st) != 0) {
    rc = ck_err_set(err, errno == ENOENT ? CK_ENOTFOUND : -errno, "%s: %s", path, strerror(errno));
    goto fail;
  }
  r->file_size = (uint64_t)st.st_size;
  if (!ck_h5_is_hdf5(path)) {
    rc = ck_err_set(err, CK_EFORMAT, "%s: not an HDF5 file (no HDF5 signature)", path);
    goto fail;
  }
  if ((r->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0) {
    rc = ck_h5_err(err, CK_EFORMAT, "%s: cannot open as HDF5 (truncated or corrupt?)", path);
    goto fail;
  }
  root = H5Gopen2(r->file, "/", H5P_DEFAULT);
  if ((rc = root_checks(r, root)) == 0)
    rc = walk_group(r, root, "");
  if (rc == 0)
    skip_metadata_only(r, root);
  H5Gclose(root);
  if (rc != 0)
    goto fail;
  sort_by_order(r);
  r->err = NULL;
  *out = r;
  return 0;
fail:
  ck_h5r_close(r);
  return rc;
}

/* ---- streaming in TensorFlow's layout ---- */

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
                    void *out, struct ck_err *err, const char *path)
{
  hsize_t s[CK_MAX_RANK], c[CK_MAX_RANK];
  hid_t fspace = H5Dget_space(ds), mspace;
  herr_t st;

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
  int rc = 0;

  st = H5Dread(ds, mt, mspace, fspace, H5P_DEFAULT, out);
  if (st < 0)
    rc = ck_h5_err(err, CK_EFORMAT, "%s: %s: read failed (corrupt, truncated, or a filter is missing)", r->path,
                   path);
  H5Sclose(mspace);
  H5Sclose(fspace);
  return rc;
}

static int stream_fixed(struct ck_h5r *r, hid_t ds, const struct ck_h5_tensor *t, void *buf, size_t bufsize,
                        ck_chunk_fn fn, void *ctx, struct ck_err *err)
{
  size_t esize = ck_dtype_size(t->dtype);
  uint64_t total = t->nelem * esize, start[CK_MAX_RANK], count[CK_MAX_RANK], off, n;
  struct ck_blocks b;
  hid_t mt;
  int rc = 0;

  if (t->raw_offset) {
    for (uint64_t pos = 0; pos < total && rc == 0; pos += n) {
      n = total - pos < bufsize ? total - pos : bufsize;
      if ((rc = ck_pread_full(r->fd, buf, (size_t)n, t->raw_offset + pos)) != 0)
        return ck_err_set(err, rc, "%s: %s: read at %llu: %s", r->path, t->path,
                          (unsigned long long)(t->raw_offset + pos), ck_strerror(rc));
      rc = fn(ctx, buf, (size_t)n);
    }
    return rc;
  }
  if (bufsize < esize)
    return ck_err_set(err, CK_EINVAL, "buffer smaller than one element");
  mt = ck_h5_type_for(t->dtype);
  ck_blocks_init(&b, t->rank, t->dims, bufsize / esize);
  while (rc == 0 && ck_blocks_next(&b, start, count, &off, &n)) {
    if ((rc = read_sel(r, ds, t->rank, start, count, mt, buf, err, t->path)) == 0)
      rc = fn(ctx, buf, (size_t)(n * esize));
  }
  H5Tclose(mt);
  return rc;
}

/* A batch of variable-length elements read as (pointer, length) pairs. */
struct vbatch {
  hid_t mt;
  int kind;
  size_t fixed_size;
  void *raw;       /* hvl_t[], char*[], or fixed-size strings */
  size_t n;
  hid_t mspace;
  hid_t ds;
};

static int vbatch_read(struct ck_h5r *r, struct vbatch *v, const struct ck_h5_tensor *t, const uint64_t *start,
                       const uint64_t *count, size_t n, struct ck_err *err)
{
  size_t each = v->kind == CK_H5K_VLEN_BYTES ? sizeof(hvl_t) : v->kind == CK_H5K_VLEN_STR ? sizeof(char *) : v->fixed_size;

  v->n = n;
  if ((v->raw = calloc(n ? n : 1, each)) == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  return read_sel(r, v->ds, t->rank, start, count, v->mt, v->raw, err, t->path);
}

static void vbatch_elem(const struct vbatch *v, size_t i, const uint8_t **p, size_t *len)
{
  if (v->kind == CK_H5K_VLEN_BYTES) {
    const hvl_t *h = (const hvl_t *)v->raw + i;
    *p = h->p;
    *len = h->len;
  } else if (v->kind == CK_H5K_VLEN_STR) {
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

static void vbatch_free(struct vbatch *v, const struct ck_h5_tensor *t)
{
  if (v->raw && v->kind != CK_H5K_FIXED_STR) {
    hsize_t c = v->n;
    hid_t space = t->rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &c, NULL);
    H5Dvlen_reclaim(v->mt, space, H5P_DEFAULT, v->raw);
    H5Sclose(space);
  }
  free(v->raw);
  v->raw = NULL;
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

/* One pass over all elements in batches; cb gets each element. */
typedef int (*elem_fn)(void *ctx, const uint8_t *p, size_t len);

static int each_element(struct ck_h5r *r, hid_t ds, const struct ck_h5_tensor *t, elem_fn cb, void *ctx,
                        struct ck_err *err)
{
  struct vbatch v = { .kind = t->kind, .ds = ds };
  uint64_t start[CK_MAX_RANK], count[CK_MAX_RANK], off, n;
  struct ck_blocks b;
  int rc = 0;

  v.mt = vlen_memtype(ds, t->kind, &v.fixed_size);
  if (t->kind == CK_H5K_FIXED_STR && (v.fixed_size == 0 || v.fixed_size > (64u << 20))) {
    H5Tclose(v.mt);
    return ck_err_set(err, CK_EUNSUP, "%s: %s: fixed string size %zu not supported", r->path, t->path, v.fixed_size);
  }
  ck_blocks_init(&b, t->rank, t->dims, VLEN_BATCH);
  while (rc == 0 && ck_blocks_next(&b, start, count, &off, &n)) {
    if ((rc = vbatch_read(r, &v, t, start, count, (size_t)n, err)) == 0) {
      for (size_t i = 0; i < n && rc == 0; i++) {
        const uint8_t *p;
        size_t len;
        vbatch_elem(&v, i, &p, &len);
        rc = cb(ctx, p, len);
      }
    }
    vbatch_free(&v, t);
  }
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

int ck_h5r_stream_tf(struct ck_h5r *r, const struct ck_h5_tensor *t, void *buf, size_t bufsize, ck_chunk_fn fn,
                     void *ctx, struct ck_err *err)
{
  struct emitter e = { .buf = buf, .cap = bufsize, .fn = fn, .ctx = ctx };
  struct str_ctx s = { .e = &e };
  hid_t ds;
  int rc;

  if (bufsize == 0)
    return ck_err_set(err, CK_EINVAL, "zero-sized buffer");
  if ((ds = H5Dopen2(r->file, t->path, H5P_DEFAULT)) < 0)
    return ck_h5_err(err, CK_EFORMAT, "%s: %s: cannot open dataset", r->path, t->path);
  if (t->kind == CK_H5K_FIXED) {
    rc = stream_fixed(r, ds, t, buf, bufsize, fn, ctx, err);
  } else if (t->dtype == CK_DT_VARIANT) {
    rc = each_element(r, ds, t, var_cb, &s, err);
    if (rc == 0)
      rc = emit_flush(&e);
  } else {
    uint8_t f[4];
    /* lengths, their checksum, then the bytes: two passes keep memory bounded */
    rc = each_element(r, ds, t, str_len_cb, &s, err);
    ck_put_fixed32(f, ck_crc32c_mask(s.crc));
    if (rc == 0)
      rc = emit(&e, f, 4);
    if (rc == 0)
      rc = each_element(r, ds, t, str_body_cb, &s, err);
    if (rc == 0)
      rc = emit_flush(&e);
  }
  H5Dclose(ds);
  return rc;
}
