/* HDF5 completeness signals: the superblock's "open for writing" flags of every
 * superblock version from a table of bytes, a superblock after a user block, and
 * the root __SUCCESS__ attribute on files written by ckptd's own HDF5 writer. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5_probe.h"
#include "tap.h"
#include "testutil.h"

static const uint8_t sig[8] = { 0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n' };

static void sb(uint8_t *b, int version, uint32_t flags)
{
  memset(b, 0, 32);
  memcpy(b, sig, 8);
  b[8] = (uint8_t)version;
  if (version <= 1) {
    b[13] = b[14] = 8;
    b[20] = (uint8_t)flags;
    b[21] = (uint8_t)(flags >> 8);
  } else {
    b[9] = b[10] = 8;
    b[11] = (uint8_t)flags;
  }
}

int main(void)
{
  static const struct {
    int version;
    uint32_t flags;
    size_t len;
    int want;
  } t[] = {
    { 0, 0x0, 24, 0 }, { 0, 0x1, 24, 1 }, { 1, 0x1, 24, 1 }, { 1, 0x0, 24, 0 }, { 0, 0x100, 24, 0 },
    { 2, 0x1, 12, 1 }, { 2, 0x0, 12, 0 }, { 3, 0x1, 24, 1 }, { 3, 0x4, 24, 1 }, { 3, 0x5, 24, 1 },
    { 3, 0x2, 24, 0 }, { 3, 0x0, 24, 0 }, { 0, 0x1, 23, -1 }, { 3, 0x1, 11, -1 }, { 4, 0x0, 24, -1 },
  };
  uint8_t b[32];
  char *dir = tu_tmpdir(), path[4200];
  FILE *f;

  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    sb(b, t[i].version, t[i].flags);
    ok(ck_h5_probe_super(b, t[i].len) == t[i].want, "superblock v%d, flags 0x%x, %zu bytes: %d", t[i].version,
       t[i].flags, t[i].len, t[i].want);
  }
  sb(b, 0, 1);
  b[3] = 'X';
  ok(ck_h5_probe_super(b, 24) == -1, "not a signature: -1");

  snprintf(path, sizeof(path), "%s/userblock.h5", dir);
  f = fopen(path, "wb");
  for (int i = 0; i < 512; i++)
    fputc(0, f);
  sb(b, 2, 1);
  fwrite(b, 1, 32, f);
  fclose(f);
  ok(ck_h5_probe_busy(path) == 1, "a busy superblock after a 512-byte user block is found");
  snprintf(path, sizeof(path), "%s/none.h5", dir);
  f = fopen(path, "wb");
  fputs("not an HDF5 file at all, no signature anywhere", f);
  fclose(f);
  ok(ck_h5_probe_busy(path) == -1, "a file without a superblock: -1");
  ok(ck_h5_probe_busy("/nonexistent/x.h5") < 0, "a missing file: an error");
  ok(ck_h5_probe_success(path) < 0, "__SUCCESS__ of a non-HDF5 file: an error code");

  tu_rmtree(dir);
  free(dir);
  return tap_done();
}
