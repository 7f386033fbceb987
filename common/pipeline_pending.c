/* Transitional: the torch source lands from its own branch; until then it refuses
 * cleanly. Removed when it is merged. */
#include "config.h"

#include "pipeline.h"

int ck_torch_source_open(const char *path, size_t budget, struct ck_source **out, struct ck_err *err)
{
  (void)budget;
  *out = NULL;
  return ck_err_set(err, CK_EUNSUP, "%s: PyTorch files are not supported yet", path);
}
