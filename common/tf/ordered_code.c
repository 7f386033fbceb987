/* OrderedCode: unsigned numbers as a length byte plus big-endian bytes, strings with
 * 0x00 -> 00 ff and 0xff -> ff 00 escapes ended by 00 01, signed numbers with the
 * sign and length in the leading bits (TensorFlow's strings/ordered_code.cc). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "ordered_code.h"

static size_t put_num(uint8_t *p, uint64_t v)
{
  uint8_t tmp[8];
  size_t n = 0;

  while (v > 0) {
    tmp[n++] = (uint8_t)v;
    v >>= 8;
  }
  p[0] = (uint8_t)n;
  for (size_t i = 0; i < n; i++)
    p[1 + i] = tmp[n - 1 - i];
  return n + 1;
}

static size_t put_signed(uint8_t *p, int64_t val)
{
  static const uint8_t header[11][2] = {
    { 0, 0 }, { 0x80, 0 }, { 0xc0, 0 }, { 0xe0, 0 }, { 0xf0, 0 }, { 0xf8, 0 },
    { 0xfc, 0 }, { 0xfe, 0 }, { 0xff, 0 }, { 0xff, 0x80 }, { 0xff, 0xc0 }
  };
  uint64_t x = val < 0 ? ~(uint64_t)val : (uint64_t)val;
  uint8_t buf[10];
  size_t len, bits = 0;

  if (x < 64) {
    p[0] = (uint8_t)(0x80 ^ (uint8_t)val);
    return 1;
  }
  while ((x >> bits) != 0)
    bits++;
  len = (bits + 1 + 6) / 7; /* n bytes hold 7n-1 value bits */
  memset(buf, val < 0 ? 0xff : 0, 2);
  for (int i = 0; i < 8; i++)
    buf[2 + i] = (uint8_t)((uint64_t)val >> (56 - 8 * i));
  buf[10 - len] ^= header[len][0];
  buf[10 - len + 1] ^= header[len][1];
  memcpy(p, buf + 10 - len, len);
  return len;
}

int ck_slice_key_encode(const uint8_t *name, size_t nlen, int rank, const int64_t *start,
                        const int64_t *length, uint8_t **out, size_t *outlen)
{
  size_t cap = 9 + 2 * nlen + 2 + 9 + (size_t)rank * 20;
  uint8_t *p = malloc(cap), *q = p;

  if (p == NULL)
    return -ENOMEM;
  q += put_num(q, 0);
  for (size_t i = 0; i < nlen; i++) {
    if (name[i] == 0x00) {
      *q++ = 0x00;
      *q++ = 0xff;
    } else if (name[i] == 0xff) {
      *q++ = 0xff;
      *q++ = 0x00;
    } else {
      *q++ = name[i];
    }
  }
  *q++ = 0x00;
  *q++ = 0x01;
  q += put_num(q, (uint64_t)rank);
  for (int d = 0; d < rank; d++) {
    q += put_signed(q, length[d] < 0 ? 0 : start[d]);
    q += put_signed(q, length[d] < 0 ? -1 : length[d]);
  }
  *out = p;
  *outlen = (size_t)(q - p);
  return 0;
}

static int get_num(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
  size_t len;

  if (*p >= end)
    return -1;
  len = **p;
  if (len > 8 || len + 1 > (size_t)(end - *p))
    return -1;
  *v = 0;
  for (size_t i = 0; i < len; i++)
    *v = (*v << 8) | (*p)[1 + i];
  *p += len + 1;
  return 0;
}

static int get_signed(const uint8_t **p, const uint8_t *end, int64_t *v)
{
  static const uint64_t mask[11] = {
    0, 0x80ull, 0xc000ull, 0xe00000ull, 0xf0000000ull, 0xf800000000ull, 0xfc0000000000ull,
    0xfe000000000000ull, 0xff00000000000000ull, 0x8000000000000000ull, 0
  };
  const uint8_t *s = *p;
  size_t avail = (size_t)(end - s), len;
  uint64_t xm, x;
  uint8_t first;

  if (avail == 0)
    return -1;
  xm = (s[0] & 0x80) ? 0 : ~0ull;
  first = s[0] ^ (uint8_t)xm;
  if (first != 0xff) {
    len = 0; /* the sign bit and the size bits after it */
    for (uint8_t b = first; b & 0x80; b = (uint8_t)(b << 1))
      len++;
    if (len > 7 || avail < len)
      return -1;
    x = xm;
    for (size_t i = 0; i < len; i++)
      x = (x << 8) | s[i];
  } else {
    uint8_t second;
    len = 8;
    if (avail < 8)
      return -1;
    second = s[1] ^ (uint8_t)xm;
    if (second >= 0x80) {
      if (second < 0xc0)
        len = 9;
      else if (second == 0xc0 && avail >= 3 && (uint8_t)(s[2] ^ (uint8_t)xm) < 0x80)
        len = 10;
      else
        return -1;
      if (avail < len)
        return -1;
    }
    x = 0;
    for (size_t i = 0; i < 8; i++)
      x = (x << 8) | s[len - 8 + i];
  }
  x ^= mask[len];
  *v = (int64_t)x;
  *p += len;
  return 0;
}

int ck_slice_key_decode(const uint8_t *key, size_t klen, int max_rank, uint8_t **name,
                        size_t *nlen, int *rank, int64_t *start, int64_t *length)
{
  const uint8_t *p = key, *end = key + klen;
  uint8_t *out;
  size_t n = 0;
  uint64_t v;

  *name = NULL;
  if (get_num(&p, end, &v) != 0 || v != 0)
    return CK_EFORMAT;
  if ((out = malloc(klen + 1)) == NULL)
    return -ENOMEM;
  for (;;) {
    if (p >= end)
      goto bad;
    if (*p == 0x00 || *p == 0xff) {
      if (end - p < 2)
        goto bad;
      if (p[0] == 0x00 && p[1] == 0x01) {
        p += 2;
        break;
      }
      if (p[0] == 0x00 && p[1] == 0xff)
        out[n++] = 0x00;
      else if (p[0] == 0xff && p[1] == 0x00)
        out[n++] = 0xff;
      else
        goto bad;
      p += 2;
    } else {
      out[n++] = *p++;
    }
  }
  out[n] = 0;
  if (get_num(&p, end, &v) != 0 || v == 0 || v > (uint64_t)max_rank)
    goto bad;
  *rank = (int)v;
  for (int d = 0; d < *rank; d++) {
    if (get_signed(&p, end, &start[d]) != 0 || get_signed(&p, end, &length[d]) != 0)
      goto bad;
    if (length[d] < 0) {
      start[d] = 0;
      length[d] = -1;
    } else if (start[d] < 0) {
      goto bad;
    }
  }
  if (p != end)
    goto bad;
  *name = out;
  *nlen = n;
  return 0;
bad:
  free(out);
  return CK_EFORMAT;
}
