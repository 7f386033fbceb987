/* Reading zip archives (the container of torch.save files): the end of central
 * directory record (zip64 too), the central directory, and each entry's local header.
 * Every offset and size is checked against the file size before it is used or
 * allocated; entries must not overlap; only stored (method 0) data is read. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "zip.h"

#define EOCD_SEARCH (65535u + CK_ZIP_EOCD_SIZE)

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t le64(const uint8_t *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }

int ck_zip_pread(const struct ck_zip *z, void *buf, size_t len, uint64_t off)
{
  if (off > z->file_size || len > z->file_size - off)
    return CK_ETRUNC;
  if (z->fd < 0) {
    memcpy(buf, z->mem + off, len);
    return 0;
  }
  return ck_pread_full(z->fd, buf, len, off);
}

/* The zip64 end record named by the locator just before the end record at eocd. */
static int read_zip64(struct ck_zip *z, uint64_t eocd, uint64_t *count, uint64_t *cd_end, struct ck_err *err)
{
  uint8_t b[CK_ZIP64_EOCD_SIZE];
  uint64_t rec;
  int rc;

  if (eocd < CK_ZIP64_LOCATOR_SIZE)
    return ck_err_set(err, CK_EFORMAT, "%s: zip64 end record locator missing", z->label);
  if ((rc = ck_zip_pread(z, b, CK_ZIP64_LOCATOR_SIZE, eocd - CK_ZIP64_LOCATOR_SIZE)) != 0)
    return ck_err_set(err, rc, "%s: reading the zip64 locator", z->label);
  if (le32(b) != CK_ZIP64_LOCATOR_SIG)
    return ck_err_set(err, CK_EFORMAT, "%s: zip64 end record locator missing", z->label);
  rec = le64(b + 8);
  if (rec > eocd - CK_ZIP64_LOCATOR_SIZE || eocd - CK_ZIP64_LOCATOR_SIZE - rec < CK_ZIP64_EOCD_SIZE)
    return ck_err_set(err, CK_EFORMAT, "%s: zip64 end record offset %llu outside the file", z->label,
                      (unsigned long long)rec);
  if ((rc = ck_zip_pread(z, b, sizeof(b), rec)) != 0)
    return ck_err_set(err, rc, "%s: reading the zip64 end record", z->label);
  if (le32(b) != CK_ZIP64_EOCD_SIG)
    return ck_err_set(err, CK_EFORMAT, "%s: bad zip64 end record signature", z->label);
  *count = le64(b + 32);
  z->cd_size = le64(b + 40);
  z->cd_offset = le64(b + 48);
  *cd_end = rec;
  return 0;
}

/* Find the end of central directory record in the last 64 KiB + 22 bytes. */
static int find_eocd(struct ck_zip *z, uint64_t *count, uint64_t *cd_end, struct ck_err *err)
{
  size_t span = z->file_size < EOCD_SEARCH ? (size_t)z->file_size : EOCD_SEARCH;
  uint64_t base = z->file_size - span;
  uint8_t *b = malloc(span ? span : 1);
  int rc = CK_EFORMAT;

  if (b == NULL)
    return ck_err_set(err, -ENOMEM, "%s: out of memory", z->label);
  if (span < CK_ZIP_EOCD_SIZE || (rc = ck_zip_pread(z, b, span, base)) != 0) {
    rc = ck_err_set(err, CK_EFORMAT, "%s: no zip end of central directory record", z->label);
    goto out;
  }
  rc = ck_err_set(err, CK_EFORMAT, "%s: no zip end of central directory record", z->label);
  for (size_t i = span - CK_ZIP_EOCD_SIZE + 1; i-- > 0;) {
    const uint8_t *p = b + i;
    if (le32(p) != CK_ZIP_EOCD_SIG || i + CK_ZIP_EOCD_SIZE + le16(p + 20) != span)
      continue; /* the comment must run exactly to the end of the file */
    if (le16(p + 4) != 0 || le16(p + 6) != 0 || le16(p + 8) != le16(p + 10)) {
      rc = ck_err_set(err, CK_EUNSUP, "%s: multi-disk zip archives are not supported", z->label);
      goto out;
    }
    *count = le16(p + 10);
    z->cd_size = le32(p + 12);
    z->cd_offset = le32(p + 16);
    *cd_end = base + i;
    rc = 0;
    /* torch's writer (miniz) adds zip64 records even to small files: a locator just
     * before the end record means the zip64 record is the authority */
    if (*count == 0xffff || z->cd_size == 0xffffffffu || z->cd_offset == 0xffffffffu ||
        (i >= CK_ZIP64_LOCATOR_SIZE && le32(p - CK_ZIP64_LOCATOR_SIZE) == CK_ZIP64_LOCATOR_SIG))
      rc = read_zip64(z, base + i, count, cd_end, err);
    goto out;
  }
out:
  free(b);
  return rc;
}

/* Zip64 extended information: the fields whose 32-bit values are all ones, in order. */
static int zip64_extra(const uint8_t *x, size_t xlen, struct ck_zip_entry *e, uint32_t usize32)
{
  while (xlen >= 4) {
    uint16_t id = le16(x), len = le16(x + 2);
    if ((size_t)len > xlen - 4)
      return -1;
    if (id == 1) {
      const uint8_t *f = x + 4;
      size_t left = len;
      if (usize32 == 0xffffffffu) {
        if (left < 8)
          return -1;
        f += 8, left -= 8; /* uncompressed size: equal to the stored size for method 0 */
      }
      if (e->size == 0xffffffffu) {
        if (left < 8)
          return -1;
        e->size = le64(f), f += 8, left -= 8;
      }
      if (e->local == 0xffffffffu) {
        if (left < 8)
          return -1;
        e->local = le64(f);
      }
      return 0;
    }
    x += 4 + len, xlen -= 4 + (size_t)len;
  }
  return 0;
}

static int cmp_local(const void *a, const void *b)
{
  const struct ck_zip_entry *x = *(struct ck_zip_entry *const *)a, *y = *(struct ck_zip_entry *const *)b;
  return x->local < y->local ? -1 : x->local > y->local;
}

static int cmp_name(const void *a, const void *b)
{
  const struct ck_zip_entry *x = *(struct ck_zip_entry *const *)a, *y = *(struct ck_zip_entry *const *)b;
  return strcmp(x->name, y->name);
}

/* Entries in file order must not overlap (each at least a local header plus its data)
 * and names must be unique; every entry learns where the next one starts. */
static int check_layout(struct ck_zip *z, struct ck_err *err)
{
  struct ck_zip_entry **v = malloc((z->n ? z->n : 1) * sizeof(*v));
  int rc = 0;

  if (v == NULL)
    return ck_err_set(err, -ENOMEM, "%s: out of memory", z->label);
  for (size_t i = 0; i < z->n; i++)
    v[i] = &z->e[i];
  qsort(v, z->n, sizeof(*v), cmp_local);
  for (size_t i = 0; i < z->n && rc == 0; i++) {
    uint64_t next = i + 1 < z->n ? v[i + 1]->local : z->cd_offset;
    v[i]->limit = next;
    if (v[i]->local > next || next - v[i]->local < CK_ZIP_LOCAL_SIZE + (uint64_t)v[i]->nlen ||
        next - v[i]->local - CK_ZIP_LOCAL_SIZE - v[i]->nlen < v[i]->size)
      rc = ck_err_set(err, CK_EFORMAT, "%s: zip entry '%s' overlaps the next entry or the central directory",
                      z->label, v[i]->name);
  }
  qsort(v, z->n, sizeof(*v), cmp_name);
  for (size_t i = 1; i < z->n && rc == 0; i++)
    if (strcmp(v[i - 1]->name, v[i]->name) == 0)
      rc = ck_err_set(err, CK_EFORMAT, "%s: duplicate zip entry '%s'", z->label, v[i]->name);
  z->by_name = v;
  return rc;
}

/* One central directory record at cd[*pos]; advances *pos. */
static int parse_central(struct ck_zip *z, const uint8_t *cd, size_t *pos, struct ck_zip_entry *e, struct ck_err *err)
{
  const uint8_t *p = cd + *pos;
  size_t left = (size_t)z->cd_size - *pos, nlen, xlen, clen;
  uint32_t usize32;

  if (left < CK_ZIP_CENTRAL_SIZE || le32(p) != CK_ZIP_CENTRAL_SIG)
    return ck_err_set(err, CK_EFORMAT, "%s: bad central directory record at byte %llu", z->label,
                      (unsigned long long)(z->cd_offset + *pos));
  nlen = le16(p + 28), xlen = le16(p + 30), clen = le16(p + 32);
  if (nlen + xlen + clen > left - CK_ZIP_CENTRAL_SIZE)
    return ck_err_set(err, CK_EFORMAT, "%s: central directory record runs past the directory", z->label);
  if (nlen == 0 || memchr(p + CK_ZIP_CENTRAL_SIZE, 0, nlen) != NULL)
    return ck_err_set(err, CK_EFORMAT, "%s: empty or NUL-holding zip entry name", z->label);
  if ((e->name = malloc(nlen + 1)) == NULL)
    return ck_err_set(err, -ENOMEM, "%s: out of memory", z->label);
  memcpy(e->name, p + CK_ZIP_CENTRAL_SIZE, nlen);
  e->name[nlen] = 0;
  e->nlen = nlen;
  e->flags = le16(p + 8);
  e->method = le16(p + 10);
  e->crc32 = le32(p + 16);
  e->size = le32(p + 20);
  usize32 = le32(p + 24);
  e->local = le32(p + 42);
  if (zip64_extra(p + CK_ZIP_CENTRAL_SIZE + nlen, xlen, e, usize32) != 0)
    return ck_err_set(err, CK_EFORMAT, "%s: zip entry '%s': bad zip64 extra field", z->label, e->name);
  if (e->method == 0 && usize32 != 0xffffffffu && usize32 != e->size)
    return ck_err_set(err, CK_EFORMAT, "%s: stored zip entry '%s' has two sizes", z->label, e->name);
  *pos += CK_ZIP_CENTRAL_SIZE + nlen + xlen + clen;
  return 0;
}

static int read_directory(struct ck_zip *z, size_t max_cd, struct ck_err *err)
{
  uint64_t count = 0, cd_end = 0;
  uint8_t *cd = NULL;
  size_t pos = 0;
  int rc;

  if ((rc = find_eocd(z, &count, &cd_end, err)) != 0)
    return rc;
  if (z->cd_offset > cd_end || cd_end - z->cd_offset != z->cd_size) {
    rc = ck_err_set(err, CK_EFORMAT, "%s: central directory (offset %llu, %llu bytes) does not end at its end record",
                    z->label, (unsigned long long)z->cd_offset, (unsigned long long)z->cd_size);
    goto out;
  }
  if (z->cd_size > max_cd) {
    rc = ck_err_set(err, CK_ELIMIT, "%s: central directory of %llu bytes is beyond the limit of %zu", z->label,
                    (unsigned long long)z->cd_size, max_cd);
    goto out;
  }
  if (count > z->cd_size / CK_ZIP_CENTRAL_SIZE) {
    rc = ck_err_set(err, CK_EFORMAT, "%s: %llu zip entries cannot fit a %llu-byte central directory", z->label,
                    (unsigned long long)count, (unsigned long long)z->cd_size);
    goto out;
  }
  cd = malloc(z->cd_size ? (size_t)z->cd_size : 1);
  z->e = calloc(count ? (size_t)count : 1, sizeof(*z->e));
  if (cd == NULL || z->e == NULL) {
    rc = ck_err_set(err, -ENOMEM, "%s: out of memory", z->label);
    goto out;
  }
  if ((rc = ck_zip_pread(z, cd, (size_t)z->cd_size, z->cd_offset)) != 0) {
    rc = ck_err_set(err, rc, "%s: reading the central directory", z->label);
    goto out;
  }
  for (; z->n < count; z->n++)
    if ((rc = parse_central(z, cd, &pos, &z->e[z->n], err)) != 0) {
      z->n++; /* its name may be allocated */
      goto out;
    }
  if (pos != z->cd_size) {
    rc = ck_err_set(err, CK_EFORMAT, "%s: central directory holds more than its %llu entries", z->label,
                    (unsigned long long)count);
    goto out;
  }
  rc = check_layout(z, err);
out:
  free(cd);
  return rc;
}

static int zip_new(const char *label, struct ck_zip **out, struct ck_err *err)
{
  struct ck_zip *z = calloc(1, sizeof(*z));

  if (z == NULL || (z->label = strdup(label)) == NULL) {
    free(z);
    return ck_err_set(err, -ENOMEM, "%s: out of memory", label);
  }
  z->fd = -1;
  *out = z;
  return 0;
}

int ck_zip_open_mem(const void *data, size_t size, const char *label, size_t max_cd, struct ck_zip **out,
                    struct ck_err *err)
{
  struct ck_zip *z = NULL;
  int rc;

  *out = NULL;
  if ((rc = zip_new(label, &z, err)) != 0)
    return rc;
  z->mem = data;
  z->file_size = size;
  if ((rc = read_directory(z, max_cd, err)) != 0) {
    ck_zip_close(z);
    return rc;
  }
  *out = z;
  return 0;
}

int ck_zip_open(const char *path, size_t max_cd, struct ck_zip **out, struct ck_err *err)
{
  struct ck_zip *z = NULL;
  struct stat st;
  int rc;

  *out = NULL;
  if ((rc = zip_new(path, &z, err)) != 0)
    return rc;
  if ((z->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(z->fd, &st) != 0) {
    rc = ck_err_set(err, -errno, "%s: %s", path, strerror(errno));
    goto out;
  }
  z->file_size = (uint64_t)st.st_size;
  rc = read_directory(z, max_cd, err);
out:
  if (rc != 0)
    ck_zip_close(z);
  else
    *out = z;
  return rc;
}

void ck_zip_close(struct ck_zip *z)
{
  if (z == NULL)
    return;
  for (size_t i = 0; i < z->n; i++)
    free(z->e[i].name);
  free(z->e);
  free(z->by_name);
  if (z->fd >= 0)
    close(z->fd);
  free(z->label);
  free(z);
}

const struct ck_zip_entry *ck_zip_find(const struct ck_zip *z, const char *name)
{
  size_t lo = 0, hi = z->by_name ? z->n : 0;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(z->by_name[mid]->name, name);
    if (c == 0)
      return z->by_name[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

int ck_zip_data_offset(const struct ck_zip *z, const struct ck_zip_entry *e, uint64_t *off, struct ck_err *err)
{
  uint8_t h[CK_ZIP_LOCAL_SIZE];
  uint64_t data;
  int rc;

  if (e->flags & 1)
    return ck_err_set(err, CK_EUNSUP, "%s: zip entry '%s' is encrypted", z->label, e->name);
  if (e->method != 0)
    return ck_err_set(err, CK_EUNSUP, "%s: zip entry '%s' is compressed (method %u): torch.save writes stored entries only",
                      z->label, e->name, e->method);
  if ((rc = ck_zip_pread(z, h, sizeof(h), e->local)) != 0 || le32(h) != CK_ZIP_LOCAL_SIG)
    return ck_err_set(err, CK_EFORMAT, "%s: zip entry '%s': no local header at byte %llu", z->label, e->name,
                      (unsigned long long)e->local);
  if (le16(h + 26) != e->nlen)
    return ck_err_set(err, CK_EFORMAT, "%s: zip entry '%s': local header names another entry", z->label, e->name);
  data = e->local + CK_ZIP_LOCAL_SIZE + le16(h + 26) + le16(h + 28); /* cannot overflow: local < file size */
  if (data > e->limit || e->limit - data < e->size)
    return ck_err_set(err, CK_EFORMAT, "%s: zip entry '%s': data run past the next entry", z->label, e->name);
  *off = data;
  return 0;
}

int ck_zip_probe(const char *path, struct ck_err *err)
{
  static const uint8_t sig[4] = { 'P', 'K', 3, 4 };
  struct ck_zip *z = NULL;
  uint8_t head[4];
  ssize_t got;
  int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

  if (fd < 0)
    return ck_err_set(err, -errno, "%s: %s", path, strerror(errno));
  got = pread(fd, head, sizeof(head), 0);
  close(fd);
  if (got < 0)
    return ck_err_set(err, -errno, "%s: %s", path, strerror(errno));
  if (memcmp(head, sig, (size_t)got) != 0)
    return ck_err_set(err, CK_EFORMAT, "%s: not a zip archive", path);
  if (got < 4)
    return ck_err_set(err, CK_EINCOMPLETE, "%s: a zip archive still being written", path);
  rc = ck_zip_open(path, (size_t)1 << 30, &z, err);
  ck_zip_close(z);
  if (rc == CK_EFORMAT)
    return ck_err_set(err, CK_EINCOMPLETE, "%s: a zip archive without a valid end yet (still being written?)", path);
  return rc;
}
