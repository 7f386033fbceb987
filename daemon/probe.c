/* Single-file completeness probes (see probe.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "decide.h"
#include "error.h"
#include "fileio.h"
#include "h5.h"
#include "probe.h"
#include "st.h"
#include "transition.h"
#include "zip.h"

static int ends_with(const char *s, const char *x)
{
  size_t a = strlen(s), b = strlen(x);

  return a >= b && strcmp(s + a - b, x) == 0;
}

/* An .mdl is a checkpoint only as HDF5; .h5 and .hdf5 go to the worker's probe as ever. */
static int probe_h5(const char *path, char **why)
{
  struct stat st;

  if (!ends_with(path, ".mdl"))
    return CK_CHECK_READY;
  if (stat(path, &st) != 0 || st.st_size == 0) {
    *why = strdup("empty or gone: not complete");
    return CK_CHECK_WAIT;
  }
  if (!ck_h5_is_hdf5(path)) {
    *why = strdup("no HDF5 signature: an .mdl that is not HDF5 is not a checkpoint");
    return CK_CHECK_NOT;
  }
  return CK_CHECK_READY;
}

int ck_probe_file(const char *path, int kind, char **why)
{
  struct ck_err err = { 0 };
  int rc;

  *why = NULL;
  if (kind == CK_KIND_H5)
    return probe_h5(path, why);
  if (kind != CK_KIND_TORCH && kind != CK_KIND_SAFETENSORS)
    return CK_CHECK_READY;
  rc = kind == CK_KIND_TORCH ? ck_zip_probe(path, &err) : ck_st_probe(path, &err);
  if (rc == 0)
    return CK_CHECK_READY;
  if (kind == CK_KIND_TORCH && rc == CK_EFORMAT)
    ck_err_set(&err, rc, "%s: not a zip archive: ckptd converts torch.save's zip format (PyTorch 1.6 and later)", path);
  *why = strdup(err.msg[0] ? err.msg : ck_strerror(rc));
  if (rc == CK_EINCOMPLETE || (rc < 0 && rc > -4000)) /* being written, or cannot look now (-errno) */
    return CK_CHECK_WAIT;
  return kind == CK_KIND_TORCH && rc == CK_EFORMAT && ends_with(path, ".bin") ? CK_CHECK_NOT : CK_CHECK_CORRUPT;
}
