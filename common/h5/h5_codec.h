/* HDF5 chunk filters done by ckptd itself (issue 12), for direct chunk I/O:
 * a chunk's bytes are encoded or decoded here, in any thread, and only the
 * encoded chunk goes through libhdf5 (H5Dwrite_chunk / H5Dread_chunk), so its
 * global lock covers metadata alone. The encodings are exactly the filters':
 *   shuffle (2)       HDF5's byte transpose; a tail of nbytes % esize left as is;
 *   deflate (1)       a zlib stream (RFC 1950), made and read with libdeflate;
 *   lz4 (32004)       HDF5's LZ4 framing: big-endian u64 decoded size, u32 block
 *                     size, then per block a big-endian u32 compressed size and the
 *                     LZ4 block (stored as is when the size equals the block's);
 *   zstd (32015)      one zstd frame (hdf5plugin / HDFGroup's zstd plugin).
 * Decoding checks every size against the chunk's known size before any copy:
 * these bytes come from untrusted files. Pure functions over caller buffers. */
#ifndef CK_H5_CODEC_H
#define CK_H5_CODEC_H

#include <stddef.h>
#include <stdint.h>

#define CK_H5F_DEFLATE 1
#define CK_H5F_SHUFFLE 2
#define CK_H5F_LZ4 32004
#define CK_H5F_ZSTD 32015

/* A pipeline ckptd can run itself: an optional shuffle, then at most one codec.
 * Filter positions (for the chunk filter mask) are as stored in the dataset. */
struct ck_h5_codec {
  int shuffle;          /* 1: shuffle with esize */
  int shuffle_pos;      /* its index in the pipeline */
  unsigned codec;       /* 0, CK_H5F_DEFLATE, CK_H5F_LZ4 or CK_H5F_ZSTD */
  int codec_pos;
  int level;            /* deflate 1-9 (libdeflate up to 12), zstd 1-22 */
  uint32_t lz4_block;   /* lz4: block size written (0: the whole chunk) */
  size_t esize;         /* element size for the shuffle */
};

/* Per-thread state of the codecs (compressors are not shareable). */
struct ck_h5_codec_ctx;
struct ck_h5_codec_ctx *ck_h5_codec_ctx_new(void);
void ck_h5_codec_ctx_free(struct ck_h5_codec_ctx *x);

/* Largest encoding of n bytes (what dst must hold). */
size_t ck_h5_codec_bound(const struct ck_h5_codec *c, size_t n);

/* Encode n bytes of src into dst (capacity cap >= bound); scratch holds n bytes when
 * shuffling. *outlen: the encoded size. 0 or a negative errno / CK_E*. */
int ck_h5_codec_encode(struct ck_h5_codec_ctx *x, const struct ck_h5_codec *c, const void *src, size_t n,
                       void *scratch, void *dst, size_t cap, size_t *outlen);

/* Decode an encoded chunk of len bytes into exactly want bytes at dst; filters whose
 * bit is set in mask were skipped by the writer and are skipped here. scratch holds
 * want bytes. 0, or CK_EFORMAT with *why saying what is wrong. */
int ck_h5_codec_decode(struct ck_h5_codec_ctx *x, const struct ck_h5_codec *c, unsigned mask, const void *src,
                       size_t len, void *scratch, void *dst, size_t want, const char **why);

/* HDF5's shuffle and its inverse (n bytes, elements of esize). */
void ck_h5_shuffle(const uint8_t *src, uint8_t *dst, size_t n, size_t esize);
void ck_h5_unshuffle(const uint8_t *src, uint8_t *dst, size_t n, size_t esize);

#endif
