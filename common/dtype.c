/* DataType table. */
#include "config.h"

#include <string.h>

#include "dtype.h"

static const struct {
  const char *name;
  const char *numpy;
  size_t size;
} dtypes[CK_DT_COUNT] = {
  [CK_DT_INVALID] = { "DT_INVALID", NULL, 0 },
  [CK_DT_FLOAT] = { "DT_FLOAT", "float32", 4 },
  [CK_DT_DOUBLE] = { "DT_DOUBLE", "float64", 8 },
  [CK_DT_INT32] = { "DT_INT32", "int32", 4 },
  [CK_DT_UINT8] = { "DT_UINT8", "uint8", 1 },
  [CK_DT_INT16] = { "DT_INT16", "int16", 2 },
  [CK_DT_INT8] = { "DT_INT8", "int8", 1 },
  [CK_DT_STRING] = { "DT_STRING", "string", 0 },
  [CK_DT_COMPLEX64] = { "DT_COMPLEX64", "complex64", 8 },
  [CK_DT_INT64] = { "DT_INT64", "int64", 8 },
  [CK_DT_BOOL] = { "DT_BOOL", "bool", 1 },
  [CK_DT_QINT8] = { "DT_QINT8", "qint8", 1 },
  [CK_DT_QUINT8] = { "DT_QUINT8", "quint8", 1 },
  [CK_DT_QINT32] = { "DT_QINT32", "qint32", 4 },
  [CK_DT_BFLOAT16] = { "DT_BFLOAT16", "bfloat16", 2 },
  [CK_DT_QINT16] = { "DT_QINT16", "qint16", 2 },
  [CK_DT_QUINT16] = { "DT_QUINT16", "quint16", 2 },
  [CK_DT_UINT16] = { "DT_UINT16", "uint16", 2 },
  [CK_DT_COMPLEX128] = { "DT_COMPLEX128", "complex128", 16 },
  [CK_DT_HALF] = { "DT_HALF", "float16", 2 },
  [CK_DT_RESOURCE] = { "DT_RESOURCE", NULL, 0 },
  [CK_DT_VARIANT] = { "DT_VARIANT", "variant", 0 },
  [CK_DT_UINT32] = { "DT_UINT32", "uint32", 4 },
  [CK_DT_UINT64] = { "DT_UINT64", "uint64", 8 },
  [CK_DT_FLOAT8_E5M2] = { "DT_FLOAT8_E5M2", "float8_e5m2", 1 },
  [CK_DT_FLOAT8_E4M3FN] = { "DT_FLOAT8_E4M3FN", "float8_e4m3fn", 1 },
};

const char *ck_dtype_name(int dtype)
{
  dtype = ck_dtype_base(dtype);
  if (dtype < 0 || dtype >= CK_DT_COUNT)
    return NULL;
  return dtypes[dtype].name;
}

int ck_dtype_parse(const char *name)
{
  for (int i = 1; i < CK_DT_COUNT; i++) {
    if (strcmp(name, dtypes[i].name) == 0 || (dtypes[i].numpy && strcmp(name, dtypes[i].numpy) == 0))
      return i;
  }
  if (strcmp(name, "float") == 0)
    return CK_DT_FLOAT;
  if (strcmp(name, "double") == 0)
    return CK_DT_DOUBLE;
  if (strcmp(name, "half") == 0)
    return CK_DT_HALF;
  return -1;
}

size_t ck_dtype_size(int dtype)
{
  dtype = ck_dtype_base(dtype);
  if (dtype < 0 || dtype >= CK_DT_COUNT)
    return 0;
  return dtypes[dtype].size;
}

int ck_dtype_is_varlen(int dtype)
{
  dtype = ck_dtype_base(dtype);
  return dtype == CK_DT_STRING || dtype == CK_DT_VARIANT;
}

int ck_dtype_storable(int dtype)
{
  dtype = ck_dtype_base(dtype);
  return dtype > CK_DT_INVALID && dtype < CK_DT_COUNT && dtype != CK_DT_RESOURCE;
}
