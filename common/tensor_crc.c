/* Stored-layout checksums, as TensorFlow's WriteStringTensor / WriteVariantTensor
 * define them: lengths enter the crc as fixed-width little-endian integers (not as
 * their varint bytes), stored checksums enter as their 4 raw bytes. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "coding.h"
#include "crc32c.h"
#include "dtype.h"
#include "tensor_crc.h"

enum { ST_PLAIN, ST_STR_LEN, ST_STR_CKSUM, ST_STR_BODY, ST_VAR_LEN, ST_VAR_BODY, ST_VAR_CKSUM, ST_DONE };

void ck_tcrc_init(struct ck_tcrc *s, int dtype, uint64_t nelem)
{
  memset(s, 0, sizeof(*s));
  s->dtype = ck_dtype_base(dtype);
  s->nelem = nelem;
  if (s->dtype == CK_DT_STRING)
    s->state = ST_STR_LEN;
  else if (s->dtype == CK_DT_VARIANT)
    s->state = nelem ? ST_VAR_LEN : ST_DONE;
  else
    s->state = ST_PLAIN;
}

static int fail(struct ck_tcrc *s, int code, const char *why)
{
  snprintf(s->why, sizeof(s->why), "%s (element %llu, byte %llu)", why,
           (unsigned long long)s->elem, (unsigned long long)s->consumed);
  return code;
}

/* Accumulate a varint in s->tmp; returns 1 when complete, 0 if more bytes are needed, -1 if bad. */
static int take_varint(struct ck_tcrc *s, const uint8_t **p, const uint8_t *end, uint64_t *v)
{
  while (*p < end) {
    uint8_t b = *(*p)++;
    s->consumed++;
    s->tmp[s->tmplen++] = b;
    if ((b & 0x80) == 0) {
      const uint8_t *q = s->tmp;
      int rc = ck_get_varint64(&q, s->tmp + s->tmplen, v);
      s->tmplen = 0;
      return rc == 0 ? 1 : -1;
    }
    if (s->tmplen == CK_VARINT64_MAX)
      return -1;
  }
  return 0;
}

/* Accumulate the 4 checksum bytes; returns 1 when complete. */
static int take_cksum(struct ck_tcrc *s, const uint8_t **p, const uint8_t *end)
{
  while (*p < end && s->tmplen < 4) {
    s->tmp[s->tmplen++] = *(*p)++;
    s->consumed++;
  }
  return s->tmplen == 4;
}

static int check_cksum(struct ck_tcrc *s)
{
  uint32_t stored = ck_get_fixed32(s->tmp);

  if (ck_crc32c_unmask(stored) != s->crc)
    return -1;
  s->crc = ck_crc32c_extend(s->crc, s->tmp, 4);
  s->tmplen = 0;
  return 0;
}

static void crc_len(struct ck_tcrc *s, uint64_t len, int as64)
{
  uint8_t b[8];

  if (!as64 && len <= UINT32_MAX) {
    ck_put_fixed32(b, (uint32_t)len);
    s->crc = ck_crc32c_extend(s->crc, b, 4);
  } else {
    ck_put_fixed64(b, len);
    s->crc = ck_crc32c_extend(s->crc, b, 8);
  }
}

static int step_string(struct ck_tcrc *s, const uint8_t **p, const uint8_t *end)
{
  uint64_t len;
  int r;

  switch (s->state) {
  case ST_STR_LEN:
    if (s->elem == s->nelem) {
      s->state = ST_STR_CKSUM;
      return 0;
    }
    if ((r = take_varint(s, p, end, &len)) <= 0)
      return r < 0 ? fail(s, CK_EFORMAT, "bad string length varint") : 0;
    if (len > UINT64_MAX - s->body_total)
      return fail(s, CK_EFORMAT, "string lengths overflow");
    s->body_total += len;
    crc_len(s, len, 0);
    s->elem++;
    return 0;
  case ST_STR_CKSUM:
    if (!take_cksum(s, p, end))
      return 0;
    if (check_cksum(s) != 0)
      return fail(s, CK_ECHECKSUM, "string length checksum mismatch");
    s->left = s->body_total;
    s->state = ST_STR_BODY;
    return 0;
  default: { /* ST_STR_BODY */
    size_t n = (size_t)(end - *p);
    if (s->left == 0)
      return fail(s, CK_EFORMAT, "bytes after the last string");
    if (n > s->left)
      n = (size_t)s->left;
    s->crc = ck_crc32c_extend(s->crc, *p, n);
    *p += n;
    s->consumed += n;
    s->left -= n;
    return 0;
  }
  }
}

static int step_variant(struct ck_tcrc *s, const uint8_t **p, const uint8_t *end)
{
  uint64_t len;
  int r;

  switch (s->state) {
  case ST_VAR_LEN:
    if ((r = take_varint(s, p, end, &len)) <= 0)
      return r < 0 ? fail(s, CK_EFORMAT, "bad variant length varint") : 0;
    crc_len(s, len, 1);
    s->left = len;
    s->state = ST_VAR_BODY;
    return 0;
  case ST_VAR_BODY: {
    size_t n = (size_t)(end - *p);
    if (n > s->left)
      n = (size_t)s->left;
    s->crc = ck_crc32c_extend(s->crc, *p, n);
    *p += n;
    s->consumed += n;
    s->left -= n;
    if (s->left == 0)
      s->state = ST_VAR_CKSUM;
    return 0;
  }
  case ST_VAR_CKSUM:
    if (!take_cksum(s, p, end))
      return 0;
    if (check_cksum(s) != 0)
      return fail(s, CK_ECHECKSUM, "variant element checksum mismatch");
    s->elem++;
    s->state = s->elem == s->nelem ? ST_DONE : ST_VAR_LEN;
    return 0;
  default:
    return fail(s, CK_EFORMAT, "bytes after the last variant element");
  }
}

int ck_tcrc_update(struct ck_tcrc *s, const void *data, size_t n)
{
  const uint8_t *p = data, *end = p + n;
  int rc = 0;

  if (s->state == ST_PLAIN) {
    s->crc = ck_crc32c_extend(s->crc, data, n);
    s->consumed += n;
    return 0;
  }
  while (rc == 0 && (p < end || s->state == ST_STR_LEN || s->state == ST_VAR_BODY)) {
    int before = s->state;
    const uint8_t *q = p;
    if (s->dtype == CK_DT_STRING)
      rc = step_string(s, &p, end);
    else
      rc = step_variant(s, &p, end);
    if (p == q && s->state == before)
      break; /* needs more input */
  }
  return rc;
}

int ck_tcrc_final(struct ck_tcrc *s, uint32_t *crc)
{
  int complete;

  /* An empty tensor may be stored as zero bytes. */
  if (s->consumed == 0 && s->nelem == 0) {
    *crc = 0;
    return 0;
  }
  switch (s->state) {
  case ST_PLAIN:
  case ST_DONE:
    complete = 1;
    break;
  case ST_STR_BODY:
    complete = s->left == 0;
    break;
  case ST_STR_LEN:
  case ST_STR_CKSUM:
    complete = s->nelem == 0 && s->body_total == 0 && s->consumed == 0;
    break;
  default:
    complete = 0;
  }
  if (!complete)
    return fail(s, CK_EFORMAT, "tensor data ends early");
  *crc = s->crc;
  return 0;
}
