/* Transitional: the torch sink lands from its own branch (the torch source is in
 * common/torch/torch_read.c); until then it refuses cleanly. Removed when it is merged. */
#include "config.h"

#include "pipeline.h"

int ck_torch_sink_open(const char *dst, const struct ck_sink_opts *o, struct ck_sink **out, struct ck_err *err)
{
  (void)o;
  *out = NULL;
  return ck_err_set(err, CK_EUNSUP, "%s: writing PyTorch files is not supported yet", dst);
}
