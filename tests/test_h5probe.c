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
  for (int i = 0; i < 32; i++) /* the rest of a superblock */
    fputc(0, f);
  fclose(f);
  {
    char why[300] = "";
    ok(ck_h5_probe_busy(path, why, sizeof(why)) == 1 && strstr(why, "writer has it open"),
       "a busy superblock after a 512-byte user block is found: %s", why);
  }
  snprintf(path, sizeof(path), "%s/none.h5", dir);
  f = fopen(path, "wb");
  fputs("not an HDF5 file at all, no signature anywhere", f);
  fclose(f);
  {
    char why[300];
    ok(ck_h5_probe_busy(path, why, sizeof(why)) == -1, "a file without a superblock: -1");
    ok(ck_h5_probe_busy("/nonexistent/x.h5", why, sizeof(why)) < 0, "a missing file: an error");
  }
  ok(ck_h5_probe_success(path) < 0, "__SUCCESS__ of a non-HDF5 file: an error code");
  {
    /* end-of-file addresses: version 0 at 40, version 1 at 44, versions 2/3 at 28 */
    static const struct {
      int version, at;
    } e[] = { { 0, 40 }, { 1, 44 }, { 2, 28 }, { 3, 28 } };
    for (size_t i = 0; i < sizeof(e) / sizeof(e[0]); i++) {
      uint8_t sbb[64];
      memset(sbb, 0, sizeof(sbb));
      memcpy(sbb, sig, 8);
      sbb[8] = (uint8_t)e[i].version;
      sbb[9] = sbb[10] = sbb[13] = sbb[14] = 8;
      sbb[e[i].at] = 0x00;
      sbb[e[i].at + 1] = 0x40; /* 16384 */
      ok(ck_h5_probe_eoa(sbb, sizeof(sbb)) == 16384, "v%d superblock: end-of-file address read at %d", e[i].version,
         e[i].at);
      ok(ck_h5_probe_eoa(sbb, (size_t)e[i].at + 7) == 0, "v%d: too few bytes: unknown", e[i].version);
    }
    /* a file shorter than its end-of-file address is still arriving */
    uint8_t sbb[64];
    char why[300] = "";
    memset(sbb, 0, sizeof(sbb));
    memcpy(sbb, sig, 8);
    sbb[8] = 3;
    sbb[9] = sbb[10] = 8;
    sbb[28 + 1] = 0x40;
    snprintf(path, sizeof(path), "%s/short.h5", dir);
    f = fopen(path, "wb");
    fwrite(sbb, 1, sizeof(sbb), f);
    for (int i = 0; i < 1000; i++)
      fputc(0, f);
    fclose(f);
    ok(ck_h5_probe_busy(path, why, sizeof(why)) == 1 && strstr(why, "1064 of the 16384 bytes"),
       "a file shorter than its superblock's end of file: not finished (%s)", why);
    f = fopen(path, "ab");
    for (int i = 0; i < 16384 - 1064; i++)
      fputc(0, f);
    fclose(f);
    ok(ck_h5_probe_busy(path, why, sizeof(why)) == 0, "complete once every byte is there");
  }

  tu_rmtree(dir);
  free(dir);
  return tap_done();
}
