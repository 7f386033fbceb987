/* Streaming zip writer for torch.save archives: stored entries, 64-byte aligned data,
 * CRC-32 in data descriptors, zip64 where needed (zip_write.h).
 *
 * The layout copies PyTorchStreamWriter byte for byte (miniz with MZ_ZIP_FLAG_WRITE_ZIP64):
 * version fields 0, DOS time and date 0, flags 0x0808 (UTF-8 names, data descriptor) and
 * 0x0800 for empty entries (no descriptor), the local extra field = [zip64 field][FB pad],
 * a 16-byte descriptor (24 with zip64), and a zip64 end record before the classic one.
 * CRC-32 is libdeflate's: 3x zlib's on this machine (bench/bench_crc32.c). */
#include "config.h"

#include <errno.h>
#include <libdeflate.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "zip_write.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_DESC 0x08074b50u
#define SIG_END64 0x06064b50u
#define SIG_LOC64 0x07064b50u
#define SIG_END 0x06054b50u
#define FLAG_UTF8 0x0800u
#define FLAG_DESC 0x0008u
#define U32_MARK 0xFFFFFFFFu
#define U16_MARK 0xFFFFu

static uint64_t zip64_limit = U32_MARK;
static uint64_t test_hole; /* tests: see ck_zipw_set_test_hole */

struct zentry {
  char *name;
  size_t nlen;
  uint64_t size;
  uint64_t offset; /* of the local header */
  uint32_t crc;
};

struct ck_zipw {
  struct ck_obuf ob;
  uint64_t pos;      /* bytes written, buffered included */
  struct zentry *e;
  size_t n, cap;
  int open;          /* an entry is being written: e[n - 1] */
  uint64_t done;     /* its bytes so far */
  uint32_t crc;
  int failed;
};

void ck_zipw_set_zip64_limit(uint64_t limit)
{
  zip64_limit = limit ? limit : U32_MARK;
}

void ck_zipw_set_test_hole(uint64_t len)
{
  test_hole = len;
}

uint64_t ck_zipw_test_hole(void)
{
  return test_hole;
}

static uint8_t *put16(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  return p + 2;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
  put16(p, v & 0xFFFF);
  put16(p + 2, v >> 16);
  return p + 4;
}

static uint8_t *put64(uint8_t *p, uint64_t v)
{
  put32(p, (uint32_t)v);
  put32(p + 4, (uint32_t)(v >> 32));
  return p + 8;
}

static int big(uint64_t v)
{
  return v >= zip64_limit;
}

static uint32_t mark32(uint64_t v)
{
  return big(v) ? U32_MARK : (uint32_t)v;
}

static int emit(struct ck_zipw *z, const void *p, size_t len, struct ck_err *err)
{
  int rc = ck_obuf_append(&z->ob, p, len);

  if (rc != 0) {
    z->failed = 1;
    return ck_err_set(err, rc, "write: %s", strerror(-rc));
  }
  z->pos += len;
  return 0;
}

int ck_zipw_open(int fd, size_t bufsize, int keep_cached, struct ck_zipw **out, struct ck_err *err)
{
  struct ck_zipw *z = calloc(1, sizeof(*z));

  *out = NULL;
  if (z == NULL || ck_obuf_init(&z->ob, fd, bufsize ? bufsize : (1u << 20)) != 0) {
    free(z);
    return ck_err_set(err, -ENOMEM, "out of memory");
  }
  z->ob.wb.keep = keep_cached;
  *out = z;
  return 0;
}

static struct zentry *new_entry(struct ck_zipw *z, const char *name, size_t nlen)
{
  struct zentry *e;

  if (z->n == z->cap) {
    size_t cap = z->cap ? z->cap * 2 : 16;
    struct zentry *ne = cap > SIZE_MAX / sizeof(*ne) ? NULL : realloc(z->e, cap * sizeof(*ne));
    if (ne == NULL)
      return NULL;
    z->e = ne;
    z->cap = cap;
  }
  e = &z->e[z->n];
  memset(e, 0, sizeof(*e));
  if ((e->name = malloc(nlen + 1)) == NULL)
    return NULL;
  memcpy(e->name, name, nlen);
  e->name[nlen] = 0;
  e->nlen = nlen;
  z->n++;
  return e;
}

/* The local extra field: zip64 (sizes when the entry is big, the offset when it lies
 * beyond the limit, as miniz puts them), then "FB" padding to the alignment
 * (PyTorchStreamWriter's getPadding). Returns its length. */
static size_t local_extra(const struct zentry *e, uint8_t *x)
{
  uint8_t *p = x;
  uint64_t start;
  size_t pad;

  if (big(e->size) || big(e->offset)) {
    p = put16(p, 0x0001);
    p = put16(p, (big(e->size) ? 16 : 0) + (big(e->offset) ? 8 : 0));
    if (big(e->size)) {
      p = put64(p, e->size);
      p = put64(p, e->size);
    }
    if (big(e->offset))
      p = put64(p, e->offset);
  }
  start = e->offset + 30 + e->nlen + (size_t)(p - x) + 4;
  pad = (size_t)((CK_ZIP_ALIGN - start % CK_ZIP_ALIGN) % CK_ZIP_ALIGN);
  *p++ = 'F';
  *p++ = 'B';
  p = put16(p, (uint32_t)pad);
  memset(p, 'Z', pad);
  return (size_t)(p - x) + pad;
}

int ck_zipw_entry_begin(struct ck_zipw *z, const char *name, size_t nlen, uint64_t size, struct ck_err *err)
{
  uint8_t h[30], x[32 + CK_ZIP_ALIGN], *p = h;
  struct zentry *e;
  size_t xlen;
  int rc;

  if (z->open || z->failed)
    return ck_err_set(err, CK_EINVAL, "zip: entry begun while another is open, or after a failure");
  if (nlen == 0 || nlen > U16_MARK || memchr(name, 0, nlen))
    return ck_err_set(err, CK_EINVAL, "zip: bad entry name (%zu bytes)", nlen);
  if ((e = new_entry(z, name, nlen)) == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  e->size = size;
  e->offset = z->pos;
  xlen = local_extra(e, x);
  p = put32(p, SIG_LOCAL);
  p = put16(p, 0); /* version needed: 0, as miniz writes it */
  p = put16(p, size ? FLAG_UTF8 | FLAG_DESC : FLAG_UTF8);
  p = put16(p, 0); /* stored */
  p = put32(p, 0); /* DOS time and date */
  p = put32(p, 0); /* crc, sizes: in the descriptor */
  p = put32(p, 0);
  p = put32(p, 0);
  p = put16(p, (uint32_t)nlen);
  put16(p, (uint32_t)xlen);
  if ((rc = emit(z, h, sizeof(h), err)) != 0 || (rc = emit(z, name, nlen, err)) != 0 ||
      (rc = emit(z, x, xlen, err)) != 0)
    return rc;
  z->open = 1;
  z->done = 0;
  z->crc = 0;
  return 0;
}

int ck_zipw_entry_append(struct ck_zipw *z, const void *data, size_t len, struct ck_err *err)
{
  struct zentry *e;

  if (!z->open)
    return ck_err_set(err, CK_EINVAL, "zip: data outside an entry");
  e = &z->e[z->n - 1];
  if (len > e->size - z->done) {
    z->failed = 1;
    return ck_err_set(err, CK_EINVAL, "zip: %s: more than the %llu bytes announced", e->name,
                      (unsigned long long)e->size);
  }
  z->crc = libdeflate_crc32(z->crc, data, len);
  z->done += len;
  return emit(z, data, len, err);
}

int ck_zipw_entry_skip(struct ck_zipw *z, uint64_t len, struct ck_err *err)
{
  static const uint8_t zeros[1 << 16];
  int rc;

  if (!z->open || len > z->e[z->n - 1].size - z->done)
    return ck_err_set(err, CK_EINVAL, "zip: a hole outside an entry or beyond its size");
  if ((rc = ck_obuf_skip(&z->ob, len)) != 0) {
    z->failed = 1;
    return ck_err_set(err, rc, "write: %s", strerror(-rc));
  }
  for (uint64_t left = len; left > 0;) {
    size_t n = left < sizeof(zeros) ? (size_t)left : sizeof(zeros);
    z->crc = libdeflate_crc32(z->crc, zeros, n);
    left -= n;
  }
  z->done += len;
  z->pos += len;
  return 0;
}

int ck_zipw_entry_end(struct ck_zipw *z, struct ck_err *err)
{
  struct zentry *e;
  uint8_t d[24], *p = d;

  if (!z->open)
    return ck_err_set(err, CK_EINVAL, "zip: no entry to end");
  e = &z->e[z->n - 1];
  if (z->done != e->size) {
    z->failed = 1;
    return ck_err_set(err, CK_EINVAL, "zip: %s: %llu bytes of %llu", e->name, (unsigned long long)z->done,
                      (unsigned long long)e->size);
  }
  z->open = 0;
  e->crc = z->crc;
  if (e->size == 0)
    return 0; /* flags without bit 3: no descriptor, as miniz does for empty entries */
  p = put32(p, SIG_DESC);
  p = put32(p, e->crc);
  if (big(e->size) || big(e->offset)) { /* miniz: 64-bit sizes whenever the local header has zip64 */
    p = put64(p, e->size);
    p = put64(p, e->size);
  } else {
    p = put32(p, (uint32_t)e->size);
    p = put32(p, (uint32_t)e->size);
  }
  return emit(z, d, (size_t)(p - d), err);
}

int ck_zipw_add(struct ck_zipw *z, const char *name, const void *data, size_t len, struct ck_err *err)
{
  int rc;

  if ((rc = ck_zipw_entry_begin(z, name, strlen(name), len, err)) != 0 ||
      (rc = ck_zipw_entry_append(z, data, len, err)) != 0)
    return rc;
  return ck_zipw_entry_end(z, err);
}

static int central_entry(struct ck_zipw *z, const struct zentry *e, struct ck_err *err)
{
  uint8_t h[46], x[28], *p = h, *q = x;
  int rc;

  if (big(e->size) || big(e->offset)) {
    q = put16(q, 0x0001);
    q = put16(q, (big(e->size) ? 16 : 0) + (big(e->offset) ? 8 : 0));
    if (big(e->size)) {
      q = put64(q, e->size);
      q = put64(q, e->size);
    }
    if (big(e->offset))
      q = put64(q, e->offset);
  }
  p = put32(p, SIG_CENTRAL);
  p = put16(p, 0); /* made by, needed */
  p = put16(p, 0);
  p = put16(p, e->size ? FLAG_UTF8 | FLAG_DESC : FLAG_UTF8);
  p = put16(p, 0);
  p = put32(p, 0);
  p = put32(p, e->crc);
  p = put32(p, mark32(e->size));
  p = put32(p, mark32(e->size));
  p = put16(p, (uint32_t)e->nlen);
  p = put16(p, (uint32_t)(q - x));
  p = put16(p, 0); /* comment, disk, internal and external attributes */
  p = put16(p, 0);
  p = put16(p, 0);
  p = put32(p, 0);
  put32(p, mark32(e->offset));
  if ((rc = emit(z, h, sizeof(h), err)) != 0 || (rc = emit(z, e->name, e->nlen, err)) != 0)
    return rc;
  return emit(z, x, (size_t)(q - x), err);
}

/* zip64 end record, its locator, the classic end record (fields marked when too big). */
static int end_records(struct ck_zipw *z, uint64_t cd_off, uint64_t cd_size, struct ck_err *err)
{
  uint8_t r[56 + 20 + 22], *p = r;
  uint64_t end64 = z->pos;
  int mark_n = z->n >= U16_MARK || zip64_limit != U32_MARK;

  p = put32(p, SIG_END64);
  p = put64(p, 44);
  p = put16(p, 0x031e); /* made by, needed: as miniz */
  p = put16(p, 45);
  p = put32(p, 0);
  p = put32(p, 0);
  p = put64(p, z->n);
  p = put64(p, z->n);
  p = put64(p, cd_size);
  p = put64(p, cd_off);
  p = put32(p, SIG_LOC64);
  p = put32(p, 0);
  p = put64(p, end64);
  p = put32(p, 1);
  p = put32(p, SIG_END);
  p = put32(p, 0);
  p = put16(p, mark_n ? U16_MARK : (uint32_t)z->n);
  p = put16(p, mark_n ? U16_MARK : (uint32_t)z->n);
  p = put32(p, mark32(cd_size));
  p = put32(p, mark32(cd_off));
  p = put16(p, 0);
  return emit(z, r, (size_t)(p - r), err);
}

int ck_zipw_finish(struct ck_zipw *z, struct ck_err *err)
{
  uint64_t cd_off = z->pos;
  int rc;

  if (z->open || z->failed)
    return ck_err_set(err, CK_EINVAL, "zip: finished with an entry open or after a failure");
  for (size_t i = 0; i < z->n; i++)
    if ((rc = central_entry(z, &z->e[i], err)) != 0)
      return rc;
  if ((rc = end_records(z, cd_off, z->pos - cd_off, err)) != 0)
    return rc;
  if ((rc = ck_obuf_flush(&z->ob)) != 0) {
    z->failed = 1;
    return ck_err_set(err, rc, "write: %s", strerror(-rc));
  }
  return 0;
}

uint64_t ck_zipw_size(const struct ck_zipw *z)
{
  return z->pos;
}

void ck_zipw_free(struct ck_zipw *z)
{
  if (z == NULL)
    return;
  for (size_t i = 0; i < z->n; i++)
    free(z->e[i].name);
  free(z->e);
  ck_obuf_free(&z->ob);
  free(z);
}
