/* Helpers shared by the HDF5 reader and writer (not part of the public API). */
#ifndef CK_H5_INTERNAL_H
#define CK_H5_INTERNAL_H

#include <stdint.h>

#include <hdf5.h>

#include "error.h"

/* The HDF5 type ckptd writes for a TensorFlow dtype (little-endian, h5py's
 * conventions); also the memory type that gives TensorFlow's byte layout. */
hid_t ck_h5_type_for(int dtype);

/* Bound libhdf5's metadata cache on a file access property list, to CK_H5_CACHE.
 * The cache sizes itself by the on-disk size of what it holds, while each cached
 * object header costs several times that in memory: with the default 32 MiB bound a
 * walk over 200,000 datasets kept ~200 MB of object headers alive. 0 or -1. */
#define CK_H5_CACHE (1u << 20)
int ck_h5_limit_cache(hid_t fapl);

/* Resize an open file's metadata cache. Listing a group's links (its name heap and
 * index, no object headers) takes CK_H5_LIST_CACHE: at 1 MiB, iterating the 200,000
 * links of one group reloaded and re-checksummed heap blocks for each link. 0 or -1. */
#define CK_H5_LIST_CACHE (8u << 20)
int ck_h5_set_cache(hid_t file, size_t size);

/* Visiting the links of a group opened by address (h5_walk.c) needs no group
 * structure cached, only the object header at hand and its attributes' heap: a
 * smaller cache holds fewer decoded headers. At 200,000 datasets h5-to-tensorflow
 * peaked at 86 MB with it, 103 MB at CK_H5_CACHE. */
#define CK_H5_ADDR_CACHE (1u << 18)

/* Record an error with HDF5's innermost message appended. Returns code. */
int ck_h5_err(struct ck_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Scalar attributes. */
int ck_h5_attr_str(hid_t obj, const char *name, const char *value);
int ck_h5_attr_u32(hid_t obj, const char *name, uint32_t value);
int ck_h5_attr_i32(hid_t obj, const char *name, int32_t value);
int ck_h5_attr_u64(hid_t obj, const char *name, uint64_t value);
int ck_h5_attr_bool(hid_t obj, const char *name, int value);

/* An attribute of an object just created (none to replace), with the caller's
 * type and dataspace, shared across calls: a writer of 200,000 datasets makes
 * them once. 0 or -1. */
int ck_h5_attr_new(hid_t obj, const char *name, hid_t type, hid_t space, const void *value);

/* Types of attributes, for the caller to close: a variable-length UTF-8 string
 * (what h5py writes for a Python str) and h5py's bool (an int8 enum). */
hid_t ck_h5_str_type(void);
hid_t ck_h5_bool_type(void);

/* One attribute value, read with the only bounded reader of attributes: a single
 * element (scalar or [1]) of integer, float, 1-byte enum (h5py's bool) or string
 * class; arrays and other classes are CK_H5A_OTHER and never read. */
enum { CK_H5A_ABSENT, CK_H5A_INT, CK_H5A_FLOAT, CK_H5A_STR, CK_H5A_OTHER };
#define CK_H5_ATTR_STR_MAX (16u << 20) /* longest fixed-length string attribute read (a torch
                                        * tree spec of a large model; longer: truncated) */
struct ck_h5_attr {
  int kind;
  long long i;   /* CK_H5A_INT (enums: the stored value) */
  double d;      /* CK_H5A_FLOAT */
  int truncated; /* CK_H5A_STR longer than the caller's buffer */
};

/* Read attribute name of obj; strings go to s (NUL-terminated, may be NULL). Returns v->kind. */
int ck_h5_attr_read(hid_t obj, const char *name, struct ck_h5_attr *v, char *s, size_t slen);

/* Read a scalar string attribute (fixed or variable length) into buf; 0 or -1. */
int ck_h5_attr_get_str(hid_t obj, const char *name, char *buf, size_t len);

/* Read a scalar numeric or bool-enum attribute as a long long (floats truncated); 0 or -1. */
int ck_h5_attr_get_int(hid_t obj, const char *name, long long *v);

/* In a JSON text, the first string of the array under "key" (e.g. "dtypes"). 0 or -1. */
int ck_json_first_string(const char *json, size_t len, const char *key, char *out, size_t outlen);

/* ---- h5_classify.c: element types and storage of datasets ---- */

/* A filtered dataset's row of chunks (cached while streaming) may hold at most this. */
#define CK_H5_CHUNK_SLAB_MAX (256u << 20)

/* HDF5 type class name ("integer", "compound", ...). */
const char *ck_h5_class_name(int h5t_class);

/* TensorFlow dtype and element kind (CK_H5K_*) from the HDF5 type alone; -1 if unsupported. */
int ck_h5_dtype_of_type(hid_t t, int *kind, size_t *esize);

/* 1 if a tensor of dtype (e.g. from a tf_dtype attribute) may be stored as HDF5 type ft:
 * same class, size and (for integers) sign; bit encodings (bfloat16, float8) in integers. */
int ck_h5_dtype_fits(int dtype, hid_t ft, int kind);

/* Memory type giving TensorFlow's bytes of dtype from stored type ft (fixed kinds):
 * *exact = 1 when ft is already exactly that layout (raw copies allowed); HDF5 converts
 * otherwise. H5I_INVALID_HID with *why when no exact conversion exists. */
hid_t ck_h5_mem_type(hid_t ft, int dtype, int *exact, const char **why);

/* Refuse external storage, virtual datasets, filters outside the allow list or not
 * installed, storage larger than the file or smaller than declared, oversized filtered
 * chunks. dcpl is the dataset's creation property list (the caller's). 0 or CK_E*. */
int ck_h5_check_storage(hid_t ds, hid_t dcpl, const char *file, uint64_t file_size, const char *path, int kind,
                        uint64_t nelem, size_t esize, struct ck_err *err);

/* Bytes in one row of chunks (chunk[0] rows, all of the other dimensions). */
uint64_t ck_h5_chunk_slab(int rank, const hsize_t *dims, const hsize_t *chunk, size_t esize);

/* Dataset access plist whose chunk cache holds a row of filtered chunks (H5P_DEFAULT
 * when the default cache serves: unfiltered or unchunked data). */
hid_t ck_h5_dapl_for(hid_t ds, int kind);

/* ---- h5_detect.c: which layout a file follows (docs/h5-detection.md) ---- */

enum { CK_H5_LAYOUT_PLAIN, CK_H5_LAYOUT_CKPTD, CK_H5_LAYOUT_CEREBRAS_LEGACY, CK_H5_LAYOUT_CEREBRAS05 };

struct ck_h5_evidence {
  int ckptd;              /* root ckptd_version attribute */
  int success;            /* root __SUCCESS__ is true */
  int has_version_number; /* root __version__ is a scalar number or a "0.4"-style decimal string */
  double version;
  int spec;               /* root __spec__ attribute (Cerebras legacy) */
  int metadata;           /* a root "<key>.__metadata__" attribute (Cerebras 0.5) */
  int cerebras_marks;     /* a root-level dataset with __H5_TYPE__ or is_bfloat16 */
  int escaped_names;      /* a root-level name with a %XX escape */
};

struct ck_h5_layout {
  int layout;         /* CK_H5_LAYOUT_* */
  int unquote_root;   /* root-level names are quote()d tensor names */
  const char *refuse; /* why the file must be refused (a save not finished: CK_EINCOMPLETE), or NULL */
};

/* The layout the evidence shows (pure). */
void ck_h5_detect(const struct ck_h5_evidence *e, struct ck_h5_layout *out);

/* "ckptd", "Cerebras legacy", "Cerebras 0.5", "h5py". */
const char *ck_h5_layout_name(int layout);

/* Parse a version string made of digits, one dot, digits ("0.5"); 0 or -1. */
int ck_h5_version_number(const char *s, double *v);

#endif
