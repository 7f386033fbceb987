/* TensorFlow DataType values: names, element sizes and classes. */
#ifndef CK_DTYPE_H
#define CK_DTYPE_H

#include <stddef.h>

enum {
  CK_DT_INVALID = 0, CK_DT_FLOAT = 1, CK_DT_DOUBLE = 2, CK_DT_INT32 = 3, CK_DT_UINT8 = 4,
  CK_DT_INT16 = 5, CK_DT_INT8 = 6, CK_DT_STRING = 7, CK_DT_COMPLEX64 = 8, CK_DT_INT64 = 9,
  CK_DT_BOOL = 10, CK_DT_QINT8 = 11, CK_DT_QUINT8 = 12, CK_DT_QINT32 = 13, CK_DT_BFLOAT16 = 14,
  CK_DT_QINT16 = 15, CK_DT_QUINT16 = 16, CK_DT_UINT16 = 17, CK_DT_COMPLEX128 = 18,
  CK_DT_HALF = 19, CK_DT_RESOURCE = 20, CK_DT_VARIANT = 21, CK_DT_UINT32 = 22,
  CK_DT_UINT64 = 23, CK_DT_FLOAT8_E5M2 = 24, CK_DT_FLOAT8_E4M3FN = 25,
  CK_DT_COUNT = 26,
  CK_DT_REF_OFFSET = 100
};

/* "DT_FLOAT", or NULL for an unknown value. */
const char *ck_dtype_name(int dtype);

/* The DataType named by "DT_FLOAT" or "float32"-style numpy names; -1 if unknown. */
int ck_dtype_parse(const char *name);

/* Bytes per element of a fixed-size dtype; 0 for strings, variants and unknown values. */
size_t ck_dtype_size(int dtype);

/* 1 for DT_STRING and DT_VARIANT, whose data is length-prefixed. */
int ck_dtype_is_varlen(int dtype);

/* 1 if bundles can hold this dtype (a known value other than INVALID and RESOURCE). */
int ck_dtype_storable(int dtype);

/* Strip the *_REF offset. */
static inline int ck_dtype_base(int dtype)
{
  return dtype > CK_DT_REF_OFFSET ? dtype - CK_DT_REF_OFFSET : dtype;
}

#endif
