/* The daemon's single-file completeness probes (daemon/probe.c): torch zips by their
 * end records (plain and zip64), safetensors by ck_st_probe, .mdl by the HDF5
 * signature; each file cut short at every interesting point. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../daemon/decide.h"
#include "../daemon/probe.h"
#include "../daemon/transition.h"
#include "tap.h"
#include "zip.h"
#include "testutil.h"

struct buf {
  uint8_t b[4096];
  size_t n;
};

static void put(struct buf *b, const void *p, size_t n)
{
  memcpy(b->b + b->n, p, n);
  b->n += n;
}

static void put_le(struct buf *b, uint64_t v, int bytes)
{
  for (int i = 0; i < bytes; i++)
    b->b[b->n++] = i < 8 ? (uint8_t)(v >> (8 * i)) : 0;
}

/* A zip with one stored entry as torch.save lays it out: local header and data, the
 * central directory, [zip64 end record and locator,] the end record [and a comment]. */
static void make_zip(struct buf *z, int zip64, const char *comment)
{
  static const char name[] = "archive/data.pkl", data[] = "0123456789abcdef";
  uint64_t cd_off, cd_size, z64;

  z->n = 0;
  put(z, "PK\x03\x04", 4);
  put_le(z, 0, 26 - 4);
  put_le(z, sizeof(name) - 1, 2);
  put_le(z, 0, 2);
  put(z, name, sizeof(name) - 1);
  put(z, data, sizeof(data) - 1);
  cd_off = z->n;
  put(z, "PK\x01\x02", 4);
  put_le(z, 0, 24);
  put_le(z, sizeof(name) - 1, 2);
  put_le(z, 0, 16);
  put(z, name, sizeof(name) - 1);
  cd_size = z->n - cd_off;
  if (zip64) {
    z64 = z->n;
    put(z, "PK\x06\x06", 4);
    put_le(z, 44, 8);           /* the record's size after this field */
    put_le(z, 45, 2);
    put_le(z, 45, 2);
    put_le(z, 0, 8);            /* disks */
    put_le(z, 1, 8);
    put_le(z, 1, 8);
    put_le(z, cd_size, 8);
    put_le(z, cd_off, 8);
    put(z, "PK\x06\x07", 4);
    put_le(z, 0, 4);
    put_le(z, z64, 8);
    put_le(z, 1, 4);
  }
  put(z, "PK\x05\x06", 4);
  put_le(z, 0, 4);
  put_le(z, zip64 ? 0xffff : 1, 2);
  put_le(z, zip64 ? 0xffff : 1, 2);
  put_le(z, zip64 ? 0xffffffff : cd_size, 4);
  put_le(z, zip64 ? 0xffffffff : cd_off, 4);
  put_le(z, strlen(comment), 2);
  put(z, comment, strlen(comment));
}

static int zip_rc(const char *path, const struct buf *z, size_t n)
{
  tu_write_file(path, z->b, n);
  return ck_zip_probe(path, NULL);
}

static void zips(const char *dir)
{
  static const struct {
    int zip64;
    const char *comment;
  } kinds[] = { { 0, "" }, { 0, "saved by a test" }, { 1, "" } };
  char path[512];
  struct buf z;

  snprintf(path, sizeof(path), "%s/m.pt", dir);
  for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
    int early = 0;
    make_zip(&z, kinds[k].zip64, kinds[k].comment);
    ok(zip_rc(path, &z, z.n) == 0, "zip%s%s: complete", kinds[k].zip64 ? "64" : "", kinds[k].comment[0] ? " with a comment" : "");
    for (size_t cut = 0; cut < z.n; cut++)
      early += zip_rc(path, &z, cut) != CK_EINCOMPLETE;
    ok(early == 0, "zip%s%s: cut short anywhere (%zu places): still being written", kinds[k].zip64 ? "64" : "",
       kinds[k].comment[0] ? " with a comment" : "", z.n);
  }
  make_zip(&z, 0, "");
  z.b[z.n - 6]++; /* the central directory's offset, off by one */
  ok(zip_rc(path, &z, z.n) == CK_EINCOMPLETE, "an end record that does not match its central directory: not complete");
  make_zip(&z, 0, "");
  put(&z, "trailing", 8);
  ok(zip_rc(path, &z, z.n) == CK_EINCOMPLETE, "bytes after the end record: not complete (an append under way)");
  ok(zip_rc(path, &(struct buf){ "\x80\x02}q\x00", 5 }, 5) == CK_EFORMAT, "a legacy pickle is not a zip");
  ok(zip_rc(path, &(struct buf){ "PK", 2 }, 2) == CK_EINCOMPLETE, "two bytes of a zip: not complete");
  ok(ck_zip_probe("/nonexistent/m.pt", NULL) == -2, "a missing file: -ENOENT");
}

/* {"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} and its 8 bytes. */
static void make_st(struct buf *b)
{
  static const char hdr[] = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";

  b->n = 0;
  put_le(b, sizeof(hdr) - 1, 8);
  put(b, hdr, sizeof(hdr) - 1);
  put(b, "\0\0\x80?\0\0\0@", 8);
}

static int file_res(const char *dir, const char *name, int kind, const void *p, size_t n)
{
  char path[512], *why = NULL;
  int res;

  snprintf(path, sizeof(path), "%s/%s", dir, name);
  tu_write_file(path, p, n);
  res = ck_probe_file(path, kind, &why);
  if (res != CK_CHECK_READY && why == NULL)
    res = -1; /* every verdict but READY says why */
  free(why);
  return res;
}

static void files(const char *dir)
{
  static const uint8_t hdf5_sig[16] = { 0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n' };
  struct buf z, st;

  make_zip(&z, 0, "");
  make_st(&st);
  ok(file_res(dir, "a.pt", CK_KIND_TORCH, z.b, z.n) == CK_CHECK_READY, "a complete .pt: ready");
  ok(file_res(dir, "a.pt", CK_KIND_TORCH, z.b, z.n - 1) == CK_CHECK_WAIT, "a .pt without its end: wait");
  ok(file_res(dir, "a.pt", CK_KIND_TORCH, "\x80\x02", 2) == CK_CHECK_CORRUPT, "a .pt that is no zip: corrupt");
  ok(file_res(dir, "a.bin", CK_KIND_TORCH, "vocabulary", 10) == CK_CHECK_NOT, "a .bin that is no zip: not a checkpoint");
  ok(file_res(dir, "a.bin", CK_KIND_TORCH, z.b, z.n) == CK_CHECK_READY, "a .bin that is a complete zip: ready");
  ok(file_res(dir, "a.safetensors", CK_KIND_SAFETENSORS, st.b, st.n) == CK_CHECK_READY, "a complete .safetensors: ready");
  ok(file_res(dir, "a.safetensors", CK_KIND_SAFETENSORS, st.b, st.n - 3) == CK_CHECK_WAIT,
     "a .safetensors shorter than its header says: wait");
  ok(file_res(dir, "a.safetensors", CK_KIND_SAFETENSORS, st.b, 4) == CK_CHECK_WAIT, "four bytes of one: wait");
  ok(file_res(dir, "a.safetensors", CK_KIND_SAFETENSORS, "\x05\0\0\0\0\0\0\0[1,2]", 13) == CK_CHECK_CORRUPT,
     "a .safetensors whose header is no object: corrupt");
  ok(file_res(dir, "a.mdl", CK_KIND_H5, "", 0) == CK_CHECK_WAIT, "an empty .mdl: wait");
  ok(file_res(dir, "a.mdl", CK_KIND_H5, "{\"model\": 1}", 12) == CK_CHECK_NOT, "an .mdl that is not HDF5: not a checkpoint");
  ok(file_res(dir, "a.mdl", CK_KIND_H5, hdf5_sig, sizeof(hdf5_sig)) == CK_CHECK_READY,
     "an .mdl with the HDF5 signature: ready (for the worker's probe)");
  ok(file_res(dir, "a.h5", CK_KIND_H5, "junk", 4) == CK_CHECK_READY, "an .h5 is the worker's probe's to judge, as before");
}

int main(void)
{
  char *dir = tu_tmpdir();

  if (dir == NULL) {
    ok(0, "a temporary directory");
    return tap_done();
  }
  zips(dir);
  files(dir);
  tu_rmtree(dir);
  free(dir);
  return tap_done();
}
