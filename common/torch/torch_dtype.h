/* PyTorch's dtypes and storage classes against TensorFlow DataTypes: the one table both
 * the torch reader and the torch writer use. */
#ifndef CK_TORCH_DTYPE_H
#define CK_TORCH_DTYPE_H

#include <stddef.h>

struct ck_torch_dtype {
  int tf;                /* CK_DT_* */
  const char *storage;   /* legacy typed-storage class in module torch: "FloatStorage" */
  const char *dtype;     /* attribute of module torch: "float32" */
  size_t size;           /* bytes per element */
};

/* By storage class name ("FloatStorage"), by dtype name ("float32" or "torch.float32"),
 * or by TF DataType; NULL if PyTorch has no such type. */
const struct ck_torch_dtype *ck_torch_dtype_by_storage(const char *name);
const struct ck_torch_dtype *ck_torch_dtype_by_name(const char *name);
const struct ck_torch_dtype *ck_torch_dtype_by_tf(int tf);

#endif
