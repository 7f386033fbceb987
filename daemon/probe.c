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

#define EOCD_LEN 22
#define EOCD_MAX (EOCD_LEN + 0xffff) /* the record and the longest comment */
#define ZIP64_LOC_LEN 20

static uint32_t le16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const uint8_t *p) { return le16(p) | le16(p + 2) << 16; }
static uint64_t le64(const uint8_t *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }

/* The end record at file offset eocd (its bytes at p): 0 if the central directory it
 * describes (or its zip64 record's) ends exactly where that record begins. */
static int zip_consistent(int fd, uint64_t eocd, const uint8_t *p)
{
  uint8_t loc[ZIP64_LOC_LEN], z[56];
  uint64_t zoff;

  if (eocd >= ZIP64_LOC_LEN && ck_pread_full(fd, loc, sizeof(loc), eocd - ZIP64_LOC_LEN) == 0 &&
      memcmp(loc, "PK\x06\x07", 4) == 0) { /* zip64: the locator names the zip64 end record */
    zoff = le64(loc + 8);
    if (zoff > eocd - ZIP64_LOC_LEN || ck_pread_full(fd, z, sizeof(z), zoff) != 0 || memcmp(z, "PK\x06\x06", 4) != 0 ||
        le64(z + 4) > UINT64_MAX - 12 || zoff + 12 + le64(z + 4) != eocd - ZIP64_LOC_LEN)
      return -1;
    return le64(z + 48) <= zoff && le64(z + 40) == zoff - le64(z + 48) ? 0 : -1;
  }
  return (uint64_t)le32(p + 16) + le32(p + 12) == eocd ? 0 : -1;
}

/* FALLBACK until the torch reader branch is merged: then ck_probe_zip may simply call its
 * ck_zip_probe (same contract). Kept small: find "PK\5\6" in the last 22..65557 bytes,
 * ending the file with its comment, and check it against the central directory. */
int ck_probe_zip(const char *path, struct ck_err *err)
{
  uint8_t head[4], *tail = NULL;
  struct stat st;
  size_t n;
  int fd, rc;

  if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
    return ck_err_set(err, -errno, "%s: %s", path, strerror(errno));
  if (fstat(fd, &st) != 0) {
    rc = ck_err_set(err, -errno, "%s: %s", path, strerror(errno));
    goto out;
  }
  n = st.st_size < 4 ? (size_t)st.st_size : 4;
  if ((rc = ck_pread_full(fd, head, n, 0)) != 0) {
    rc = ck_err_set(err, rc == CK_ETRUNC ? CK_EINCOMPLETE : rc, "%s: cannot read its start", path);
    goto out;
  }
  if (memcmp(head, "PK\x03\x04", n) != 0 && memcmp(head, "PK\x05\x06", n) != 0) {
    rc = ck_err_set(err, CK_EFORMAT, "%s: not a zip archive", path);
    goto out;
  }
  rc = ck_err_set(err, CK_EINCOMPLETE, "%s: no complete zip central directory yet", path);
  if (st.st_size < EOCD_LEN)
    goto out;
  n = st.st_size < EOCD_MAX ? (size_t)st.st_size : EOCD_MAX;
  if ((tail = malloc(n)) == NULL) {
    rc = ck_err_set(err, -ENOMEM, "%s: out of memory", path);
    goto out;
  }
  if (ck_pread_full(fd, tail, n, (uint64_t)st.st_size - n) != 0)
    goto out; /* shrank meanwhile: still being written */
  for (size_t i = n - EOCD_LEN + 1; i-- > 0;) /* the last record that ends the file with its comment */
    if (memcmp(tail + i, "PK\x05\x06", 4) == 0 && i + EOCD_LEN + le16(tail + i + 20) == n) {
      if (zip_consistent(fd, (uint64_t)st.st_size - n + i, tail + i) == 0) {
        ck_err_clear(err);
        rc = 0;
      }
      break;
    }
out:
  free(tail);
  close(fd);
  return rc;
}

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
  rc = kind == CK_KIND_TORCH ? ck_probe_zip(path, &err) : ck_st_probe(path, &err);
  if (rc == 0)
    return CK_CHECK_READY;
  if (kind == CK_KIND_TORCH && rc == CK_EFORMAT)
    ck_err_set(&err, rc, "%s: not a zip archive: ckptd converts torch.save's zip format (PyTorch 1.6 and later)", path);
  *why = strdup(err.msg[0] ? err.msg : ck_strerror(rc));
  if (rc == CK_EINCOMPLETE || (rc < 0 && rc > -4000)) /* being written, or cannot look now (-errno) */
    return CK_CHECK_WAIT;
  return kind == CK_KIND_TORCH && rc == CK_EFORMAT && ends_with(path, ".bin") ? CK_CHECK_NOT : CK_CHECK_CORRUPT;
}
