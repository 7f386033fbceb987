/* Varint coding with bounds checks on every byte. */
#include "config.h"

#include "coding.h"

int ck_get_varint64(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
  const uint8_t *q = *p;
  uint64_t result = 0;
  unsigned shift;

  for (shift = 0; shift <= 63 && q < end; shift += 7) {
    uint64_t byte = *q++;
    if (shift == 63 && byte > 1)
      return -1;
    result |= (byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *p = q;
      *v = result;
      return 0;
    }
  }
  return -1;
}

int ck_get_varint32(const uint8_t **p, const uint8_t *end, uint32_t *v)
{
  const uint8_t *q = *p;
  uint64_t x;

  if (ck_get_varint64(&q, end, &x) != 0 || x > UINT32_MAX || q - *p > 5)
    return -1;
  *p = q;
  *v = (uint32_t)x;
  return 0;
}

size_t ck_put_varint64(uint8_t *p, uint64_t v)
{
  size_t n = 0;

  while (v >= 0x80) {
    p[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (uint8_t)v;
  return n;
}
