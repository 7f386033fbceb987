/* Little-endian fixed-width and varint encodings used by TensorFlow's table and bundle formats. */
#ifndef CK_CODING_H
#define CK_CODING_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define CK_VARINT64_MAX 10

/* Read a little-endian uint32 from p. */
static inline uint32_t ck_get_fixed32(const uint8_t *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Write v little-endian to p. */
static inline void ck_put_fixed32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

/* Write v little-endian to p. */
static inline void ck_put_fixed64(uint8_t *p, uint64_t v)
{
  ck_put_fixed32(p, (uint32_t)v);
  ck_put_fixed32(p + 4, (uint32_t)(v >> 32));
}

/* Decode a varint of at most 64 bits from [*p, end); advances *p. Returns 0 or -1. */
int ck_get_varint64(const uint8_t **p, const uint8_t *end, uint64_t *v);

/* Decode a varint that must fit in 32 bits. Returns 0 or -1. */
int ck_get_varint32(const uint8_t **p, const uint8_t *end, uint32_t *v);

/* Encode v at p (room for CK_VARINT64_MAX bytes); returns the length. */
size_t ck_put_varint64(uint8_t *p, uint64_t v);

#endif
