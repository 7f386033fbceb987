/* Completeness of single-file checkpoints that ckptd judges in its own process, with a
 * few reads and no libhdf5: a torch.save zip, a safetensors file, and whether an .mdl is
 * HDF5 at all. (An HDF5 file's own completeness is a worker's probe: libhdf5 may crash
 * on a hostile file.) Results are transition.h's CK_CHECK_*. */
#ifndef CK_PROBE_H
#define CK_PROBE_H

#include "error.h"

/* What the file at path, a candidate of kind (CK_KIND_*, decide.h), is now:
 * CK_CHECK_READY (complete as far as this can tell), CK_CHECK_WAIT (still being
 * written, or cannot look now), CK_CHECK_CORRUPT (not what its name says), or
 * CK_CHECK_NOT (a .bin that is no zip, an .mdl that is no HDF5: not a checkpoint).
 * *why: newly allocated reason for anything but READY. */
int ck_probe_file(const char *path, int kind, char **why);

#endif
