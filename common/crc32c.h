/* crc32c (Castagnoli) with an SSE4.2 path chosen at run time, and TensorFlow's masking. */
#ifndef CK_CRC32C_H
#define CK_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extend crc (0 to start) with len bytes of buf. */
uint32_t ck_crc32c_extend(uint32_t crc, const void *buf, size_t len);

/* crc32c of buf alone. */
static inline uint32_t ck_crc32c(const void *buf, size_t len)
{
  return ck_crc32c_extend(0, buf, len);
}

/* The portable table-driven implementation (always available; for tests). */
uint32_t ck_crc32c_extend_sw(uint32_t crc, const void *buf, size_t len);

/* The SSE4.2 implementation, or the portable one where the CPU lacks it. */
uint32_t ck_crc32c_extend_hw(uint32_t crc, const void *buf, size_t len);

/* "sse4.2" or "portable": the implementation ck_crc32c_extend uses.
 * CKPTD_CRC32C=portable in the environment forces the portable one. */
const char *ck_crc32c_impl(void);

#define CK_CRC32C_MASK_DELTA 0xa282ead8u

/* TensorFlow/LevelDB masking of a stored crc. */
static inline uint32_t ck_crc32c_mask(uint32_t crc)
{
  return ((crc >> 15) | (crc << 17)) + CK_CRC32C_MASK_DELTA;
}

/* Inverse of ck_crc32c_mask. */
static inline uint32_t ck_crc32c_unmask(uint32_t masked)
{
  uint32_t rot = masked - CK_CRC32C_MASK_DELTA;
  return (rot >> 17) | (rot << 15);
}

#endif
