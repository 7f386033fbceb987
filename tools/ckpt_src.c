/* ckpt: a checkpoint of any format, as ls, verify and diff see it. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle.h"
#include "ckpt_src.h"
#include "convert.h"
#include "crc32c.h"
#include "dtype.h"
#include "fileio.h"
#include "h5.h"
#include "pipeline.h"
#include "tensor_crc.h"

int ckpt_is_h5_path(const char *path)
{
  struct stat st;

  return stat(path, &st) == 0 && S_ISREG(st.st_mode) && ck_h5_is_hdf5(path);
}

static int has_h5_extension(const char *path)
{
  const char *dot = strrchr(path, '.');

  return dot && !strchr(dot, '/') &&
         (strcasecmp(dot, ".h5") == 0 || strcasecmp(dot, ".hdf5") == 0 || strcasecmp(dot, ".mdl") == 0);
}

/* A path named like an HDF5 file that is not one, and is not a TF prefix either:
 * say that, rather than that PATH.index is missing. */
static int not_h5(const char *path, struct ck_err *err)
{
  char *index = ck_asprintf("%s.index", path);
  struct stat st;
  int rc = 0;

  if (index == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  if (access(index, F_OK) != 0) {
    if (stat(path, &st) != 0)
      rc = ck_err_set(err, -errno, "%s: %s", path, strerror(errno));
    else if (S_ISREG(st.st_mode))
      rc = ck_err_set(err, CK_EFORMAT, "%s: not an HDF5 file (no HDF5 signature) and not a TensorFlow checkpoint",
                      path);
  }
  free(index);
  return rc;
}

int ckpt_src_open(struct src *s, const char *path, int index_only, struct ck_err *err)
{
  int rc, fmt;

  memset(s, 0, sizeof(*s));
  if (ckpt_is_h5_path(path))
    return ck_h5r_open(path, &s->r, err);
  if (ck_format_detect(path, &fmt, NULL) == 0 && (fmt == CK_FMT_TORCH || fmt == CK_FMT_SAFETENSORS))
    return ck_source_open(path, fmt, CK_CONVERT_DEFAULT_BUFFER, &s->p, err);
  if (has_h5_extension(path) && (rc = not_h5(path, err)) != 0)
    return rc;
  return ck_bundle_open(path, index_only ? CK_BUNDLE_INDEX_ONLY : 0, &s->b, err);
}

void ckpt_src_close(struct src *s)
{
  ck_bundle_close(s->b);
  ck_h5r_close(s->r);
  ck_source_close(s->p);
}


size_t ckpt_src_count(const struct src *s)
{
  return s->p ? s->p->count : s->b ? ck_bundle_count(s->b) : ck_h5r_count(s->r);
}

const char *ckpt_src_format(const struct src *s)
{
  return s->p ? ck_format_name(s->p->format) : s->b ? "tf" : "h5";
}

/* Masked crc32c of a pipeline source's tensor in TensorFlow's stored layout, read through
 * the source (which checks the checksums its format stores). */
static int crc_feed(void *ctx, const void *data, size_t len)
{
  return ck_tcrc_update(ctx, data, len) == 0 ? 0 : CK_EFORMAT;
}

int ckpt_src_tensor_crc(struct src *s, const struct tinfo *t, void *buf, size_t bufsize, uint32_t *crc,
                          struct ck_err *err)
{
  struct ck_tinfo ti;
  struct ck_tcrc c;
  int rc;

  if (s->b)
    return ck_tensor_crc_bundle(s->b, t->e, buf, bufsize, crc, err);
  if (s->r)
    return ck_tensor_crc_h5(s->r, t->t, buf, bufsize, crc, err);
  s->p->ops->info(s->p, t->i, &ti);
  ck_tcrc_init(&c, ti.dtype, ti.nelem);
  if ((rc = s->p->ops->stream(s->p, t->i, buf, bufsize, crc_feed, &c, err)) != 0) {
    if (rc == CK_EFORMAT && c.why[0]) /* the layout, found by crc_feed (it has no err) */
      ck_err_set(err, rc, "%s: %.*s: %s", s->p->path, (int)t->nlen, t->name, c.why);
    return rc;
  }
  if (ck_tcrc_final(&c, crc) != 0)
    return ck_err_set(err, CK_EFORMAT, "%s: %.*s: %s", s->p->path, (int)t->nlen, t->name, c.why);
  *crc = ck_crc32c_mask(*crc);
  return 0;
}

/* Tensor i; returns 0 for bundle slice entries, which are part of their variable. */
int ckpt_src_tensor(const struct src *s, size_t i, struct tinfo *ti)
{
  memset(ti, 0, sizeof(*ti));
  if (s->p) {
    struct ck_tinfo t;
    s->p->ops->info(s->p, i, &t);
    *ti = (struct tinfo){ (const uint8_t *)t.name, t.nlen, t.dtype, t.rank, t.dims, (int64_t)t.nbytes, -1, 0,
                          t.crc32c, t.has_crc, NULL, NULL, i };
    return 1;
  }
  if (s->b) {
    const struct ck_entry *e = ck_bundle_entry(s->b, i);
    if (e->is_slice)
      return 0;
    *ti = (struct tinfo){ e->key, e->key_len, e->dtype, e->rank, e->dims, (int64_t)ck_entry_tensor_bytes(e),
                          e->nslices ? -1 : e->shard, e->offset, e->crc32c, e->nslices == 0, e, NULL, i };
    if (ck_dtype_is_varlen(e->dtype))
      ti->bytes = (int64_t)e->size;
    return 1;
  }
  {
    const struct ck_h5_tensor *t = ck_h5r_tensor(s->r, i);
    size_t es = ck_dtype_size(t->dtype);
    *ti = (struct tinfo){ t->name, t->nlen, t->dtype, t->rank, t->dims, es ? (int64_t)(t->nelem * es) : -1,
                          -1, t->raw_offset, t->tf_crc32c, t->has_crc, NULL, t, i };
    return 1;
  }
}

void ckpt_shape_str(const struct tinfo *t, char *buf, size_t len)
{
  size_t n = 0;

  if (t->rank == 0) {
    snprintf(buf, len, "scalar");
    return;
  }
  buf[0] = 0;
  for (int d = 0; d < t->rank && n < len; d++)
    n += (size_t)snprintf(buf + n, len - n, d ? "x%" PRId64 : "%" PRId64, t->dims[d]);
}

void ckpt_name_str(const struct tinfo *t, char *buf, size_t len)
{
  size_t n = 0;

  for (size_t i = 0; i < t->nlen && n + 5 < len; i++) {
    uint8_t c = t->name[i];
    if (c >= 0x20 && c < 0x7f && c != '\\')
      buf[n++] = (char)c;
    else
      n += (size_t)snprintf(buf + n, len - n, "\\x%02x", c);
  }
  buf[n] = 0;
}

void ckpt_json_str(const uint8_t *s, size_t n)
{
  putchar('"');
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '"' || s[i] == '\\')
      printf("\\%c", s[i]);
    else if (s[i] < 0x20 || s[i] >= 0x7f)
      printf("\\u%04x", s[i]);
    else
      putchar(s[i]);
  }
  putchar('"');
}
