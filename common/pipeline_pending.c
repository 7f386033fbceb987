/* Transitional: the torch and safetensors sources and sinks land from their own branches;
 * until then these refuse cleanly. Removed when they are merged. */
#include "config.h"

#include "pipeline.h"

int ck_torch_source_open(const char *path, size_t budget, struct ck_source **out, struct ck_err *err)
{
  (void)budget;
  *out = NULL;
  return ck_err_set(err, CK_EUNSUP, "%s: PyTorch files are not supported yet", path);
}

int ck_torch_sink_open(const char *dst, const struct ck_sink_opts *o, struct ck_sink **out, struct ck_err *err)
{
  (void)o;
  *out = NULL;
  return ck_err_set(err, CK_EUNSUP, "%s: writing PyTorch files is not supported yet", dst);
}
