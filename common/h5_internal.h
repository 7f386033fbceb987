/* Helpers shared by the HDF5 reader and writer (not part of the public API). */
#ifndef CK_H5_INTERNAL_H
#define CK_H5_INTERNAL_H

#include <hdf5.h>

#include "error.h"

/* The HDF5 type ckptd writes for a TensorFlow dtype (little-endian, h5py's
 * conventions); also the memory type that gives TensorFlow's byte layout. */
hid_t ck_h5_type_for(int dtype);

/* Record an error with HDF5's innermost message appended. Returns code. */
int ck_h5_err(struct ck_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Scalar attributes. */
int ck_h5_attr_str(hid_t obj, const char *name, const char *value);
int ck_h5_attr_u32(hid_t obj, const char *name, uint32_t value);
int ck_h5_attr_i32(hid_t obj, const char *name, int32_t value);
int ck_h5_attr_u64(hid_t obj, const char *name, uint64_t value);
int ck_h5_attr_bool(hid_t obj, const char *name, int value);

/* Read a scalar string attribute (fixed or variable length) into buf; 0 or -1. */
int ck_h5_attr_get_str(hid_t obj, const char *name, char *buf, size_t len);

/* Read a scalar numeric or bool-enum attribute as a long long; 0 or -1. */
int ck_h5_attr_get_int(hid_t obj, const char *name, long long *v);

/* In a JSON text, the first string of the array under "key" (e.g. "dtypes"). 0 or -1. */
int ck_json_first_string(const char *json, size_t len, const char *key, char *out, size_t outlen);

#endif
