/* HDF5 completeness signals (see h5_probe.h). Superblock layout from the HDF5 file
 * format specification, section II.A: versions 0 and 1 keep a 4-byte "file
 * consistency flags" field at offset 20; versions 2 and 3 a 1-byte field at 11. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "error.h"
#include "h5.h"
#include "h5_internal.h"
#include "h5_probe.h"

#define FLAG_WRITE 0x01u /* opened for write access */
#define FLAG_SWMR 0x04u  /* opened for single-writer/multiple-reader writing */

static const uint8_t signature[8] = { 0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n' };

int ck_h5_probe_super(const uint8_t *sb, size_t len)
{
  uint32_t flags;

  if (len < 12 || memcmp(sb, signature, 8) != 0)
    return -1;
  switch (sb[8]) {
  case 0:
  case 1:
    if (len < 24)
      return -1;
    flags = (uint32_t)sb[20] | (uint32_t)sb[21] << 8 | (uint32_t)sb[22] << 16 | (uint32_t)sb[23] << 24;
    break;
  case 2:
  case 3:
    flags = sb[11];
    break;
  default:
    return -1;
  }
  return (flags & (FLAG_WRITE | FLAG_SWMR)) != 0;
}

static uint64_t le64(const uint8_t *p)
{
  uint64_t v = 0;

  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

uint64_t ck_h5_probe_eoa(const uint8_t *sb, size_t len)
{
  size_t at;

  if (len < 12 || memcmp(sb, signature, 8) != 0)
    return 0;
  switch (sb[8]) {
  case 0: /* sizes at 13/14; base, free space, end of file after the 24-byte head */
  case 1: /* version 1 adds 4 bytes (indexed storage K) before the addresses */
    if (sb[13] != 8)
      return 0;
    at = (sb[8] == 0 ? 24 : 28) + 16;
    break;
  case 2:
  case 3: /* sizes at 9/10; base, extension, end of file from 12 */
    if (sb[9] != 8)
      return 0;
    at = 12 + 16;
    break;
  default:
    return 0;
  }
  return at + 8 <= len ? le64(sb + at) : 0;
}

int ck_h5_probe_busy(const char *path, char *why, size_t whylen)
{
  uint8_t sb[CK_H5_PROBE_SB_BYTES];
  struct stat st;
  int fd = open(path, O_RDONLY | O_CLOEXEC), rc = -1;

  if (fd < 0)
    return -errno;
  if (fstat(fd, &st) != 0) {
    rc = -errno;
    goto out;
  }
  for (uint64_t off = 0; off + sizeof(sb) <= (uint64_t)st.st_size && off <= (1u << 20); off = off ? off * 2 : 512) {
    uint64_t eoa;
    if (ck_pread_full(fd, sb, sizeof(sb), off) != 0 || memcmp(sb, signature, 8) != 0)
      continue;
    if ((rc = ck_h5_probe_super(sb, sizeof(sb))) == 1) {
      snprintf(why, whylen, "%s: its HDF5 superblock says a writer has it open (if that writer died, `h5clear -s` "
               "clears the flag)", path);
    } else if (rc == 0 && (eoa = ck_h5_probe_eoa(sb, sizeof(sb))) > (uint64_t)st.st_size) {
      snprintf(why, whylen, "%s: %lld of the %llu bytes its HDF5 superblock promises: still being written or copied",
               path, (long long)st.st_size, (unsigned long long)eoa);
      rc = 1;
    }
    break;
  }
out:
  close(fd);
  return rc;
}

int ck_h5_probe_success(const char *path)
{
  long long v = 0;
  hid_t f, root;
  int rc;

  ck_h5_init();
  if ((f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0)
    return CK_EFORMAT;
  root = H5Gopen2(f, "/", H5P_DEFAULT);
  rc = root >= 0 && ck_h5_attr_get_int(root, "__SUCCESS__", &v) == 0 && v != 0;
  if (root >= 0)
    H5Gclose(root);
  H5Fclose(f);
  return rc;
}
