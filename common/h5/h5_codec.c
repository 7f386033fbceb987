/* HDF5 chunk filters done by ckptd itself: see h5_codec.h. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libdeflate.h>
#include <lz4.h>
#include <zstd.h>

#include "error.h"
#include "h5_codec.h"

struct ck_h5_codec_ctx {
  struct libdeflate_compressor *dc;
  int dc_level;
  struct libdeflate_decompressor *dd;
  ZSTD_CCtx *zc;
  ZSTD_DCtx *zd;
};

struct ck_h5_codec_ctx *ck_h5_codec_ctx_new(void)
{
  return calloc(1, sizeof(struct ck_h5_codec_ctx));
}

void ck_h5_codec_ctx_free(struct ck_h5_codec_ctx *x)
{
  if (x == NULL)
    return;
  if (x->dc)
    libdeflate_free_compressor(x->dc);
  if (x->dd)
    libdeflate_free_decompressor(x->dd);
  ZSTD_freeCCtx(x->zc);
  ZSTD_freeDCtx(x->zd);
  free(x);
}

/* HDF5's shuffle is a byte transpose of the count x esize matrix of whole elements
 * (unshuffle: of the esize x count one); the n % esize tail stays where it is. */
static void transpose(const uint8_t *src, uint8_t *dst, size_t n, size_t esize, int inverse)
{
  size_t count = esize ? n / esize : 0;

  if (esize <= 1 || count <= 1) {
    memmove(dst, src, n);
    return;
  }
  for (size_t b = 0; b < esize; b++)
    for (size_t i = 0; i < count; i++) {
      if (inverse)
        dst[i * esize + b] = src[b * count + i];
      else
        dst[b * count + i] = src[i * esize + b];
    }
  memcpy(dst + count * esize, src + count * esize, n - count * esize);
}

void ck_h5_shuffle(const uint8_t *src, uint8_t *dst, size_t n, size_t esize)
{
  transpose(src, dst, n, esize, 0);
}

void ck_h5_unshuffle(const uint8_t *src, uint8_t *dst, size_t n, size_t esize)
{
  transpose(src, dst, n, esize, 1);
}

static uint32_t lz4_block_of(const struct ck_h5_codec *c, size_t n)
{
  return c->lz4_block && c->lz4_block < n ? c->lz4_block : (uint32_t)n;
}

size_t ck_h5_codec_bound(const struct ck_h5_codec *c, size_t n)
{
  switch (c->codec) {
  case CK_H5F_DEFLATE:
    return n + n / 16 + 1024;
  case CK_H5F_LZ4: {
    size_t blk = n ? lz4_block_of(c, n) : 1, nblocks = n ? (n - 1) / blk + 1 : 0;
    return 12 + 20 * nblocks + n + n / 255;
  }
  case CK_H5F_ZSTD:
    return ZSTD_compressBound(n);
  default:
    return n;
  }
}

static void put_be(uint8_t *p, uint64_t v, int bytes)
{
  for (int i = bytes - 1; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int bytes)
{
  uint64_t v = 0;

  for (int i = 0; i < bytes; i++)
    v = v << 8 | p[i];
  return v;
}

static int lz4_encode(const struct ck_h5_codec *c, const uint8_t *src, size_t n, uint8_t *dst, size_t cap,
                      size_t *outlen)
{
  uint32_t blk = lz4_block_of(c, n);
  size_t pos = 12;

  if (n > (size_t)LZ4_MAX_INPUT_SIZE || cap < 12)
    return CK_EINVAL;
  put_be(dst, n, 8);
  put_be(dst + 8, blk, 4);
  for (size_t done = 0; done < n; done += blk) {
    size_t len = n - done < blk ? n - done : blk;
    int z;
    if (cap - pos < 4 + len)
      return CK_EINVAL;
    z = LZ4_compress_default((const char *)src + done, (char *)dst + pos + 4, (int)len, (int)(cap - pos - 4));
    if (z <= 0 || (size_t)z >= len) { /* incompressible: stored, as the filter does */
      memcpy(dst + pos + 4, src + done, len);
      z = (int)len;
    }
    put_be(dst + pos, (uint64_t)z, 4);
    pos += 4 + (size_t)z;
  }
  *outlen = pos;
  return 0;
}

static int lz4_decode(const uint8_t *src, size_t len, uint8_t *dst, size_t want, const char **why)
{
  uint64_t orig;
  uint32_t blk;
  size_t pos = 12;

  if (len < 12) {
    *why = "LZ4 chunk shorter than its header";
    return CK_EFORMAT;
  }
  orig = get_be(src, 8);
  blk = (uint32_t)get_be(src + 8, 4);
  if (orig != want) {
    *why = "LZ4 chunk's decoded size is not the chunk's size";
    return CK_EFORMAT;
  }
  if (blk == 0 || blk > (uint64_t)LZ4_MAX_INPUT_SIZE) {
    *why = "LZ4 chunk has a block size of 0 or over 2 GiB";
    return CK_EFORMAT;
  }
  for (size_t done = 0; done < want;) {
    size_t n = want - done < blk ? want - done : blk;
    uint32_t z;
    if (len - pos < 4) {
      *why = "LZ4 chunk ends inside a block header";
      return CK_EFORMAT;
    }
    z = (uint32_t)get_be(src + pos, 4);
    pos += 4;
    if (z > len - pos) {
      *why = "LZ4 block runs past the end of its chunk";
      return CK_EFORMAT;
    }
    if (z == n) {
      memcpy(dst + done, src + pos, n);
    } else if (LZ4_decompress_safe((const char *)src + pos, (char *)dst + done, (int)z, (int)n) != (int)n) {
      *why = "LZ4 block does not decode to its size";
      return CK_EFORMAT;
    }
    pos += z;
    done += n;
  }
  return 0;
}

static int compress(struct ck_h5_codec_ctx *x, const struct ck_h5_codec *c, const void *src, size_t n, void *dst,
                    size_t cap, size_t *outlen)
{
  size_t z;

  switch (c->codec) {
  case CK_H5F_DEFLATE:
    if (x->dc == NULL || x->dc_level != c->level) {
      if (x->dc)
        libdeflate_free_compressor(x->dc);
      x->dc_level = c->level;
      if ((x->dc = libdeflate_alloc_compressor(c->level)) == NULL)
        return -ENOMEM;
    }
    if ((z = libdeflate_zlib_compress(x->dc, src, n, dst, cap)) == 0)
      return CK_EINVAL;
    *outlen = z;
    return 0;
  case CK_H5F_LZ4:
    return lz4_encode(c, src, n, dst, cap, outlen);
  case CK_H5F_ZSTD:
    if (x->zc == NULL && (x->zc = ZSTD_createCCtx()) == NULL)
      return -ENOMEM;
    z = ZSTD_compressCCtx(x->zc, dst, cap, src, n, c->level);
    if (ZSTD_isError(z))
      return CK_EINVAL;
    *outlen = z;
    return 0;
  default:
    if (cap < n)
      return CK_EINVAL;
    memcpy(dst, src, n);
    *outlen = n;
    return 0;
  }
}

int ck_h5_codec_encode(struct ck_h5_codec_ctx *x, const struct ck_h5_codec *c, const void *src, size_t n,
                       void *scratch, void *dst, size_t cap, size_t *outlen)
{
  if (c->shuffle && c->codec) {
    ck_h5_shuffle(src, scratch, n, c->esize);
    src = scratch;
  } else if (c->shuffle) {
    if (cap < n)
      return CK_EINVAL;
    ck_h5_shuffle(src, dst, n, c->esize);
    *outlen = n;
    return 0;
  }
  return compress(x, c, src, n, dst, cap, outlen);
}

static int decompress(struct ck_h5_codec_ctx *x, const struct ck_h5_codec *c, const void *src, size_t len, void *dst,
                      size_t want, const char **why)
{
  size_t z;

  switch (c->codec) {
  case CK_H5F_DEFLATE:
    if (x->dd == NULL && (x->dd = libdeflate_alloc_decompressor()) == NULL)
      return -ENOMEM;
    if (libdeflate_zlib_decompress(x->dd, src, len, dst, want, NULL) != LIBDEFLATE_SUCCESS) {
      *why = "deflate chunk is corrupt or does not decode to the chunk's size";
      return CK_EFORMAT;
    }
    return 0;
  case CK_H5F_LZ4:
    return lz4_decode(src, len, dst, want, why);
  case CK_H5F_ZSTD:
    if (x->zd == NULL && (x->zd = ZSTD_createDCtx()) == NULL)
      return -ENOMEM;
    z = ZSTD_decompressDCtx(x->zd, dst, want, src, len);
    if (ZSTD_isError(z) || z != want) {
      *why = "zstd chunk is corrupt or does not decode to the chunk's size";
      return CK_EFORMAT;
    }
    return 0;
  default:
    return CK_EINVAL;
  }
}

int ck_h5_codec_decode(struct ck_h5_codec_ctx *x, const struct ck_h5_codec *c, unsigned mask, const void *src,
                       size_t len, void *scratch, void *dst, size_t want, const char **why)
{
  int shuffled = c->shuffle && !(mask & (1u << c->shuffle_pos));
  int coded = c->codec && !(mask & (1u << c->codec_pos));
  int rc;

  *why = NULL;
  if (!coded) {
    if (len != want) {
      *why = "unfiltered chunk's size is not the chunk's size";
      return CK_EFORMAT;
    }
    if (shuffled)
      ck_h5_unshuffle(src, dst, want, c->esize);
    else
      memcpy(dst, src, want);
    return 0;
  }
  if ((rc = decompress(x, c, src, len, shuffled ? scratch : dst, want, why)) != 0)
    return rc;
  if (shuffled)
    ck_h5_unshuffle(scratch, dst, want, c->esize);
  return 0;
}
