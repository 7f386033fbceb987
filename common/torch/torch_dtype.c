/* The PyTorch <-> TensorFlow dtype table (torch/_utils.py, torch/storage.py). */
#include "torch_dtype.h"

#include <string.h>

#include "dtype.h"

static const struct ck_torch_dtype table[] = {
  { CK_DT_FLOAT, "FloatStorage", "float32", 4 },
  { CK_DT_DOUBLE, "DoubleStorage", "float64", 8 },
  { CK_DT_HALF, "HalfStorage", "float16", 2 },
  { CK_DT_BFLOAT16, "BFloat16Storage", "bfloat16", 2 },
  { CK_DT_INT64, "LongStorage", "int64", 8 },
  { CK_DT_INT32, "IntStorage", "int32", 4 },
  { CK_DT_INT16, "ShortStorage", "int16", 2 },
  { CK_DT_INT8, "CharStorage", "int8", 1 },
  { CK_DT_UINT8, "ByteStorage", "uint8", 1 },
  { CK_DT_BOOL, "BoolStorage", "bool", 1 },
  { CK_DT_COMPLEX64, "ComplexFloatStorage", "complex64", 8 },
  { CK_DT_COMPLEX128, "ComplexDoubleStorage", "complex128", 16 },
};

#define NTABLE (sizeof(table) / sizeof(table[0]))

const struct ck_torch_dtype *ck_torch_dtype_by_storage(const char *name)
{
  for (size_t i = 0; i < NTABLE; i++)
    if (strcmp(table[i].storage, name) == 0)
      return &table[i];
  return NULL;
}

const struct ck_torch_dtype *ck_torch_dtype_by_name(const char *name)
{
  if (strncmp(name, "torch.", 6) == 0)
    name += 6;
  for (size_t i = 0; i < NTABLE; i++)
    if (strcmp(table[i].dtype, name) == 0)
      return &table[i];
  return NULL;
}

const struct ck_torch_dtype *ck_torch_dtype_by_tf(int tf)
{
  for (size_t i = 0; i < NTABLE; i++)
    if (table[i].tf == tf)
      return &table[i];
  return NULL;
}
