/* Synthetic checkpoint generator. Tensor sizes are log-uniform between the smallest
 * and spread times the smallest, scaled to the requested total, which mirrors real
 * models: many small biases and norms, a few large embeddings and kernels. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle.h"
#include "dtype.h"
#include "synth.h"

#define CHUNK (1u << 20)

static uint64_t splitmix(uint64_t *s)
{
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void ck_synth_fill(void *buf, size_t len, uint64_t seed, uint64_t stream, uint64_t offset)
{
  uint64_t s = seed ^ (stream * 0xd1b54a32d192ed03ull) ^ offset;
  uint8_t *p = buf;

  while (len >= 8) {
    uint64_t v = splitmix(&s);
    memcpy(p, &v, 8);
    p += 8;
    len -= 8;
  }
  if (len) {
    uint64_t v = splitmix(&s);
    memcpy(p, &v, len);
  }
}

/* Turn n bytes of uniform random bits into weights drawn from N(0, 0.02^2) (Box-Muller,
 * one 64-bit draw per element), stored as dtype. Other dtypes keep their bytes. */
static void normalize(uint8_t *buf, size_t n, int dtype)
{
  size_t esize = ck_dtype_size(dtype);

  if (dtype != CK_DT_FLOAT && dtype != CK_DT_BFLOAT16 && dtype != CK_DT_HALF && dtype != CK_DT_DOUBLE)
    return;
  for (size_t i = 0; i + esize <= n; i += esize) {
    uint64_t r = 0x9e3779b97f4a7c15ull * (i + 1);
    memcpy(&r, buf + i, esize < 8 ? esize : 8);
    r = splitmix(&r);
    double u1 = ((double)(r >> 32) + 1.0) / 4294967297.0, u2 = (double)(uint32_t)r / 4294967296.0;
    double z = 0.02 * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
    float f = (float)z;
    uint32_t b;
    switch (dtype) {
    case CK_DT_FLOAT: memcpy(buf + i, &f, 4); break;
    case CK_DT_DOUBLE: memcpy(buf + i, &z, 8); break;
    case CK_DT_HALF: {
      _Float16 h = (_Float16)f;
      memcpy(buf + i, &h, 2);
      break;
    }
    default: /* bfloat16: float32's top half, rounded to nearest even */
      memcpy(&b, &f, 4);
      b = (b + 0x7fff + ((b >> 16) & 1)) >> 16;
      buf[i] = (uint8_t)b;
      buf[i + 1] = (uint8_t)(b >> 8);
    }
  }
}

/* Pick a 2-D shape [rows, cols] for nelem elements. */
static int shape_for(uint64_t nelem, int64_t *dims)
{
  uint64_t cols = 1;

  if (nelem <= 1) {
    dims[0] = (int64_t)nelem;
    return nelem == 1 ? 0 : 1;
  }
  for (uint64_t c = 1024; c > 1; c /= 2)
    if (nelem % c == 0 && nelem / c > 0) {
      cols = c;
      break;
    }
  if (cols == 1) {
    dims[0] = (int64_t)nelem;
    return 1;
  }
  dims[0] = (int64_t)(nelem / cols);
  dims[1] = (int64_t)cols;
  return 2;
}

static int write_fixed(struct ck_bundle_writer *w, const char *name, int dtype, uint64_t bytes, int normal,
                       uint64_t seed, unsigned idx, uint8_t *buf, struct ck_err *err)
{
  size_t esize = ck_dtype_size(dtype);
  uint64_t nelem = bytes / esize, off = 0, total;

  if (nelem >= 1024)
    nelem -= nelem % 256; /* realistic 2-D shapes: rows of 256 to 1024 */
  int64_t dims[2];
  int rank = shape_for(nelem, dims), rc;

  total = nelem * esize;
  if ((rc = ck_bundle_writer_begin(w, name, strlen(name), dtype, rank, dims, err)) != 0)
    return rc;
  while (off < total) {
    size_t n = total - off < CHUNK ? (size_t)(total - off) : CHUNK;
    ck_synth_fill(buf, n, seed, idx, off);
    if (normal)
      normalize(buf, n, dtype);
    if (dtype == CK_DT_BOOL)
      for (size_t i = 0; i < n; i++)
        buf[i] &= 1;
    if ((rc = ck_bundle_writer_append(w, buf, n, err)) != 0)
      return rc;
    off += n;
  }
  return ck_bundle_writer_end(w, err);
}

static int write_strings(struct ck_bundle_writer *w, const char *name, uint64_t seed, unsigned idx,
                         struct ck_err *err)
{
  static const char *words[] = { "", "checkpoint", "ckptd", "\xff\x00" "binary", "a longer string value" };
  const uint8_t *strs[5];
  size_t lens[5];
  uint8_t *enc;
  size_t enclen;
  int64_t dims[1] = { 5 };
  int rc;

  (void)seed;
  (void)idx;
  for (int i = 0; i < 5; i++) {
    strs[i] = (const uint8_t *)words[i];
    lens[i] = i == 3 ? 8 : strlen(words[i]);
  }
  if ((rc = ck_tf_strings_encode(strs, lens, 5, &enc, &enclen)) != 0)
    return ck_err_set(err, rc, "out of memory");
  rc = ck_bundle_writer_add(w, name, strlen(name), CK_DT_STRING, 1, dims, enc, enclen, err);
  free(enc);
  return rc;
}

int ck_synth_tf(const char *prefix, const struct ck_synth_opts *o, struct ck_err *err)
{
  struct ck_bundle_writer_opts wo = { .max_shard_bytes = o->max_shard_bytes };
  struct ck_bundle_writer *w = NULL;
  unsigned n = o->tensors ? o->tensors : 1;
  double *weight = calloc(n, sizeof(double)), sum = 0, spread = o->spread >= 1 ? o->spread : 1;
  uint8_t *buf = malloc(CHUNK);
  uint64_t s = o->seed;
  int rc;

  if (!weight || !buf) {
    rc = ck_err_set(err, -ENOMEM, "out of memory");
    goto out;
  }
  for (unsigned i = 0; i < n; i++) {
    double u = (double)(splitmix(&s) >> 11) / 9007199254740992.0;
    int dtype = o->ndtypes ? o->dtypes[i % (unsigned)o->ndtypes] : CK_DT_FLOAT;
    weight[i] = exp(u * log(spread));
    if (!ck_dtype_is_varlen(dtype)) /* string tensors are small fixed vocabularies */
      sum += weight[i];
  }
  if ((rc = ck_bundle_writer_open(prefix, &wo, &w, err)) != 0)
    goto out;
  for (unsigned i = 0; i < n && rc == 0; i++) {
    int dtype = o->ndtypes ? o->dtypes[i % (unsigned)o->ndtypes] : CK_DT_FLOAT;
    uint64_t bytes = (uint64_t)((double)o->total_bytes * weight[i] / sum);
    char name[64];
    snprintf(name, sizeof(name), "layer_%05u/%s", i, dtype == CK_DT_STRING ? "vocab" : "kernel");
    if (dtype == CK_DT_STRING || dtype == CK_DT_VARIANT)
      rc = write_strings(w, name, o->seed, i, err);
    else
      rc = write_fixed(w, name, dtype, bytes, o->normal, o->seed, i, buf, err);
  }
  if (rc == 0) {
    rc = ck_bundle_writer_finish(w, err);
    w = NULL;
  }
out:
  ck_bundle_writer_abort(w);
  free(weight);
  free(buf);
  return rc;
}
