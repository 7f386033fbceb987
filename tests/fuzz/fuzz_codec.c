/* libFuzzer target for the HDF5 chunk decoders (h5_codec.c), on chunks from untrusted
 * files. Byte 0 picks the pipeline (codec, shuffle, the filter mask), bytes 1-3 the
 * chunk's decoded size (at most 1 MiB: larger sizes change no bound, and run slowly),
 * the rest is the stored chunk, copied to a buffer of exactly its size so ASan sees
 * any over-read.
 * A decode that succeeds must have produced exactly the chunk's size (the output
 * buffer is exactly that size too). An encode of the decoded bytes must round-trip.
 * Seeds (tests/fuzz/corpus-codec): chunks from zlib, the lz4 and zstd tools. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "h5_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ck_h5_codec_ctx *x;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static const unsigned codecs[] = { CK_H5F_DEFLATE, CK_H5F_LZ4, CK_H5F_ZSTD, 0 };
  struct ck_h5_codec c = { 0 };
  size_t want, len;
  uint8_t *in, *out, *scratch;
  const char *why;

  if (size < 4)
    return 0;
  if (x == NULL)
    x = ck_h5_codec_ctx_new();
  c.codec = codecs[data[0] & 3];
  c.shuffle = (data[0] >> 2) & 1;
  c.esize = (size_t)1 << ((data[0] >> 3) & 3);
  c.shuffle_pos = 0;
  c.codec_pos = c.shuffle;
  c.level = 1;
  want = ((size_t)data[1] << 16 | (size_t)data[2] << 8 | data[3]) & ((1u << 20) - 1);
  if (want == 0)
    want = 1;
  len = size - 4;
  in = malloc(len ? len : 1);
  out = malloc(want);
  scratch = malloc(want);
  memcpy(in, data + 4, len);
  if (ck_h5_codec_decode(x, &c, (data[0] >> 5) & 3, in, len, scratch, out, want, &why) == 0) {
    size_t cap = ck_h5_codec_bound(&c, want), zlen = 0;
    uint8_t *z = malloc(cap), *back = malloc(want);
    if (ck_h5_codec_encode(x, &c, out, want, scratch, z, cap, &zlen) != 0 ||
        ck_h5_codec_decode(x, &c, 0, z, zlen, scratch, back, want, &why) != 0 || memcmp(back, out, want) != 0)
      abort();
    free(z);
    free(back);
  } else if (why == NULL && c.codec != 0) {
    abort(); /* every refusal of a damaged chunk says why */
  }
  free(in);
  free(out);
  free(scratch);
  return 0;
}
