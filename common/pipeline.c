/* The format-neutral pipeline: format names and detection, what every source shares,
 * and ck_convert(), which connects any source to any sink.
 *
 * DESIGN: the converter asks the source for its list, lets the sink refuse the dtypes
 * its format cannot hold (skipped and listed, or an error with --strict), hands the
 * sink the whole list (a safetensors header or a pickle is written from it), then
 * streams tensor after tensor through one buffer. With verify the output is written
 * under a temporary name, reopened as a source, and every tensor's crc32c compared
 * with the one computed on the way; only then is it moved to its final name. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "dtype.h"
#include "fileio.h"
#include "h5.h"
#include "pipeline.h"

static const char *const fmt_names[CK_FMT_COUNT] = {
  [CK_FMT_SAVER] = "saver", [CK_FMT_H5] = "h5", [CK_FMT_TORCH] = "torch", [CK_FMT_SAFETENSORS] = "safetensors",
};

const char *ck_format_name(int fmt)
{
  return fmt > 0 && fmt < CK_FMT_COUNT ? fmt_names[fmt] : NULL;
}

int ck_format_parse(const char *s)
{
  static const struct {
    const char *name;
    int fmt;
  } alias[] = { { "tf", CK_FMT_SAVER }, { "tensorflow", CK_FMT_SAVER }, { "hdf5", CK_FMT_H5 },
                { "pt", CK_FMT_TORCH }, { "pytorch", CK_FMT_TORCH }, { "st", CK_FMT_SAFETENSORS } };

  for (int f = 1; f < CK_FMT_COUNT; f++)
    if (strcmp(s, fmt_names[f]) == 0)
      return f;
  for (size_t i = 0; i < sizeof(alias) / sizeof(alias[0]); i++)
    if (strcmp(s, alias[i].name) == 0)
      return alias[i].fmt;
  return -1;
}

static int has_suffix(const char *s, const char *suffix)
{
  size_t n = strlen(s), k = strlen(suffix);

  return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

int ck_format_of_name(const char *dst)
{
  if (has_suffix(dst, ".h5") || has_suffix(dst, ".hdf5") || has_suffix(dst, ".mdl"))
    return CK_FMT_H5;
  if (has_suffix(dst, ".safetensors"))
    return CK_FMT_SAFETENSORS;
  if (has_suffix(dst, ".pt") || has_suffix(dst, ".pth") || has_suffix(dst, ".bin"))
    return CK_FMT_TORCH;
  return CK_FMT_SAVER;
}

/* The first bytes of a regular file; -errno, or the count read. */
static ssize_t head_bytes(const char *path, uint8_t *buf, size_t n, off_t *size)
{
  struct stat st;
  ssize_t got;
  int fd = open(path, O_RDONLY | O_CLOEXEC);

  if (fd < 0)
    return -errno;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return -EINVAL;
  }
  *size = st.st_size;
  got = pread(fd, buf, n, 0);
  close(fd);
  return got < 0 ? -errno : got;
}

/* A bundle's data file: a base name ending in ".data-NNNNN-of-NNNNN". */
static int is_data_file(const char *path)
{
  const char *base = strrchr(path, '/'), *d;
  size_t n;

  base = base ? base + 1 : path;
  n = strlen(base);
  if (n < 20 || (d = base + n - 20, memcmp(d, ".data-", 6) != 0) || memcmp(d + 11, "-of-", 4) != 0)
    return 0;
  for (int i = 0; i < 20; i++)
    if ((i >= 6 && i < 11) || i >= 15)
      if (d[i] < '0' || d[i] > '9')
        return 0;
  return 1;
}

int ck_format_detect(const char *path, int *fmt, struct ck_err *err)
{
  uint8_t h[16];
  struct stat st;
  off_t size = 0;
  ssize_t n;
  char *index;

  *fmt = 0;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    *fmt = CK_FMT_SAVER; /* a directory: its `checkpoint` file's latest bundle */
    return 0;
  }
  if (has_suffix(path, ".index") || is_data_file(path)) {
    *fmt = CK_FMT_SAVER;
    return 0;
  }
  if ((n = head_bytes(path, h, sizeof(h), &size)) >= 0) {
    if (ck_h5_is_hdf5(path))
      *fmt = CK_FMT_H5;
    else if (n >= 4 && h[0] == 'P' && h[1] == 'K' && (h[2] == 3 || h[2] == 5))
      *fmt = CK_FMT_TORCH;
    else if (n >= 9 && h[8] == '{') {
      uint64_t hl = 0;
      for (int i = 7; i >= 0; i--)
        hl = hl << 8 | h[i];
      if (hl >= 2 && hl <= (uint64_t)size - 8)
        *fmt = CK_FMT_SAFETENSORS;
    }
    if (*fmt == 0 && n >= 3 && h[0] == 0x80 && h[1] >= 2 && h[1] <= 5 && h[2] == 0x8a)
      *fmt = CK_FMT_TORCH; /* a pickle opening with torch's magic number: the legacy format, which
                            * the torch reader refuses by name */
    if (*fmt)
      return 0;
  }
  if ((index = ck_asprintf("%s.index", path)) == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  if (stat(index, &st) == 0)
    *fmt = CK_FMT_SAVER;
  free(index);
  if (*fmt)
    return 0;
  if (n < 0 && n != -EINVAL)
    return ck_err_set(err, (int)n, "%s: %s", path, strerror((int)-n));
  return ck_err_set(err, CK_EFORMAT,
                    "%s: not a checkpoint ckptd reads (no HDF5 signature, zip archive, safetensors header "
                    "or TensorFlow index)",
                    path);
}

/* ---- what every source shares ---- */

int ck_source_open(const char *path, int fmt, size_t budget, struct ck_source **out, struct ck_err *err)
{
  int rc;

  *out = NULL;
  if (fmt == CK_FMT_AUTO && (rc = ck_format_detect(path, &fmt, err)) != 0)
    return rc;
  switch (fmt) {
  case CK_FMT_SAVER: return ck_saver_source_open(path, budget, out, err);
  case CK_FMT_H5: return ck_h5_source_open(path, budget, out, err);
  case CK_FMT_TORCH: return ck_torch_source_open(path, budget, out, err);
  case CK_FMT_SAFETENSORS: return ck_st_source_open(path, budget, out, err);
  default: return ck_err_set(err, CK_EINVAL, "unknown source format %d", fmt);
  }
}

void ck_source_close(struct ck_source *s)
{
  if (s != NULL)
    s->ops->close(s);
}

/* Room for one more element in an array of n that doubles at powers of two: growing one
 * element at a time would copy a million-value tree quadratically. */
static int grow(void **arr, size_t n, size_t size)
{
  void *p;

  if (n != 0 && (n & (n - 1)) != 0)
    return 0; /* not a power of two: there is room */
  if ((p = realloc(*arr, (n ? 2 * n : 1) * size)) == NULL)
    return -ENOMEM;
  *arr = p;
  return 0;
}

int ck_source_skip(struct ck_source *s, const char *name, const char *why)
{
  char **n;

  if (grow((void **)&s->skipped, s->nskipped, sizeof(*n)) != 0)
    return -ENOMEM;
  n = s->skipped;
  if ((n[s->nskipped] = why ? ck_asprintf("%s: %s", name, why) : strdup(name)) == NULL)
    return -ENOMEM;
  s->nskipped++;
  return 0;
}

int ck_source_add_value(struct ck_source *s, const char *name, int kind, int64_t i, double f, const char *str,
                        size_t slen)
{
  struct ck_value *v;

  if (grow((void **)&s->values, s->nvalues, sizeof(*v)) != 0)
    return -ENOMEM;
  v = &s->values[s->nvalues];
  memset(v, 0, sizeof(*v));
  v->kind = kind;
  v->i = i;
  v->f = f;
  if ((v->name = strdup(name)) == NULL)
    return -ENOMEM;
  if (kind == CK_VAL_STR) {
    if ((v->s = malloc(slen + 1)) == NULL) {
      free(v->name);
      return -ENOMEM;
    }
    memcpy(v->s, str, slen);
    v->s[slen] = 0;
    v->slen = slen;
  }
  s->nvalues++;
  return 0;
}

void ck_source_free_common(struct ck_source *s)
{
  for (size_t i = 0; i < s->nvalues; i++) {
    free(s->values[i].name);
    free(s->values[i].s);
  }
  for (size_t i = 0; i < s->nskipped; i++)
    free(s->skipped[i]);
  free(s->values);
  free(s->skipped);
  free(s->spec);
  free(s->path);
  free(s->source_name);
  ck_srcid_free(&s->id);
}

int ck_source_set_id(struct ck_source *s, const char *const *files, struct ck_err *err)
{
  int rc;

  for (size_t i = 0; files[i] != NULL; i++)
    if ((rc = ck_srcid_add(&s->id, files[i], err)) != 0)
      return rc;
  ck_srcid_format(&s->id, s->source_id, sizeof(s->source_id));
  return 0;
}

/* ---- sinks ---- */

int ck_sink_open(int fmt, const char *dst, const struct ck_sink_opts *o, struct ck_sink **out, struct ck_err *err)
{
  *out = NULL;
  switch (fmt) {
  case CK_FMT_SAVER: return ck_saver_sink_open(dst, o, out, err);
  case CK_FMT_H5: return ck_h5_sink_open(dst, o, out, err);
  case CK_FMT_TORCH: return ck_torch_sink_open(dst, o, out, err);
  case CK_FMT_SAFETENSORS: return ck_st_sink_open(dst, o, out, err);
  default: return ck_err_set(err, CK_EINVAL, "unknown output format %d", fmt);
  }
}
