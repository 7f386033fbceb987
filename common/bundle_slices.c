/* Assembling partitioned variables from their slices (TensorFlow's GetSliceValue for
 * the whole tensor). The output is produced in row-major order as runs: a run is as
 * many elements as are contiguous both in the full tensor and in one slice, so a
 * variable partitioned along its first dimension costs one read per slice. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bundle.h"
#include "dtype.h"
#include "ordered_code.h"

struct piece {
  const struct ck_entry *e;
  int64_t start[CK_MAX_RANK];
  int64_t end[CK_MAX_RANK];
  uint64_t stride[CK_MAX_RANK]; /* in the slice's own row-major layout, elements */
};

static int collect(struct ck_bundle *b, const struct ck_entry *full, struct piece *pc,
                   struct ck_err *err)
{
  for (size_t i = 0; i < full->nslices; i++) {
    const struct ck_slice *s = &full->slices[i];
    uint8_t *key;
    size_t klen;
    uint64_t stride = 1;
    int rc = ck_slice_key_encode(full->key, full->key_len, full->rank, s->start, s->length, &key, &klen);

    if (rc != 0)
      return ck_err_set(err, rc, "out of memory");
    pc[i].e = ck_bundle_find(b, key, klen);
    free(key);
    if (pc[i].e == NULL || !pc[i].e->is_slice)
      return ck_err_set(err, CK_EFORMAT, "%s.index: %s: slice %zu has no data entry",
                        ck_bundle_prefix(b), full->key, i);
    for (int d = full->rank - 1; d >= 0; d--) {
      pc[i].start[d] = s->length[d] < 0 ? 0 : s->start[d];
      pc[i].end[d] = s->length[d] < 0 ? full->dims[d] : s->start[d] + s->length[d];
      pc[i].stride[d] = stride;
      stride *= (uint64_t)(pc[i].end[d] - pc[i].start[d]);
    }
    if (stride * ck_dtype_size(full->dtype) != pc[i].e->size)
      return ck_err_set(err, CK_EFORMAT, "%s.index: %s: slice %zu holds %llu bytes, its extent needs %llu",
                        ck_bundle_prefix(b), full->key, i, (unsigned long long)pc[i].e->size,
                        (unsigned long long)(stride * ck_dtype_size(full->dtype)));
  }
  return 0;
}

static int contains(const struct piece *p, const int64_t *idx, int rank)
{
  for (int d = 0; d < rank; d++)
    if (idx[d] < p->start[d] || idx[d] >= p->end[d])
      return 0;
  return 1;
}

/* Elements contiguous from idx in both the full tensor and piece p. */
static uint64_t run_length(const struct piece *p, const int64_t *idx, const int64_t *dims, int rank)
{
  uint64_t inner = 1, run = 0;

  for (int k = rank - 1; k >= 0; k--) {
    run = (uint64_t)(p->end[k] - idx[k]) * inner;
    if (idx[k] != 0 || p->start[k] != 0 || p->end[k] != dims[k])
      break;
    inner *= (uint64_t)dims[k];
  }
  return run;
}

struct out {
  uint8_t *buf;
  size_t cap;
  size_t len;
  ck_chunk_fn fn;
  void *ctx;
};

static int emit(struct ck_bundle *b, struct out *o, const struct piece *p, uint64_t off, uint64_t n,
                struct ck_err *err)
{
  int rc;

  while (n > 0) {
    size_t take = o->cap - o->len < n ? o->cap - o->len : (size_t)n;
    if ((rc = ck_bundle_read(b, p->e, off, o->buf + o->len, take, err)) != 0)
      return rc;
    o->len += take;
    off += take;
    n -= take;
    if (o->len == o->cap) {
      if ((rc = o->fn(o->ctx, o->buf, o->len)) != 0)
        return rc;
      o->len = 0;
    }
  }
  return 0;
}

static int assemble(struct ck_bundle *b, const struct ck_entry *full, struct piece *pc, struct out *o,
                    struct ck_err *err)
{
  size_t esize = ck_dtype_size(full->dtype);
  int64_t idx[CK_MAX_RANK];
  uint64_t pos = 0;
  int rc;

  while (pos < full->nelem) {
    const struct piece *p = NULL;
    uint64_t rem = pos, off = 0, run;
    for (int d = full->rank - 1; d >= 0; d--) {
      idx[d] = (int64_t)(rem % (uint64_t)full->dims[d]);
      rem /= (uint64_t)full->dims[d];
    }
    for (size_t i = 0; i < full->nslices && p == NULL; i++)
      if (contains(&pc[i], idx, full->rank))
        p = &pc[i];
    if (p == NULL)
      return ck_err_set(err, CK_EFORMAT, "%s.index: %s: element %llu is in no slice", ck_bundle_prefix(b),
                        full->key, (unsigned long long)pos);
    for (int d = 0; d < full->rank; d++)
      off += (uint64_t)(idx[d] - p->start[d]) * p->stride[d];
    run = run_length(p, idx, full->dims, full->rank);
    if ((rc = emit(b, o, p, off * esize, run * esize, err)) != 0)
      return rc;
    pos += run;
  }
  if (o->len > 0 && (rc = o->fn(o->ctx, o->buf, o->len)) != 0)
    return rc;
  return 0;
}

int ck_bundle_stream_tensor(struct ck_bundle *b, const struct ck_entry *e, void *buf, size_t bufsize,
                            ck_chunk_fn fn, void *ctx, struct ck_err *err)
{
  struct out o = { .buf = buf, .cap = bufsize, .fn = fn, .ctx = ctx };
  struct piece *pc;
  int rc;

  if (e->nslices == 0)
    return ck_bundle_stream(b, e, buf, bufsize, fn, ctx, err);
  if (ck_dtype_size(e->dtype) == 0)
    return ck_err_set(err, CK_EUNSUP, "%s.index: %s: partitioned %s variables are not supported",
                      ck_bundle_prefix(b), e->key, ck_dtype_name(e->dtype));
  if (bufsize == 0)
    return ck_err_set(err, CK_EINVAL, "zero-sized buffer");
  if ((pc = calloc(e->nslices, sizeof(*pc))) == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  rc = collect(b, e, pc, err);
  for (size_t i = 0; rc == 0 && i < e->nslices; i++)
    rc = ck_bundle_verify(b, pc[i].e, buf, bufsize, err);
  if (rc == 0)
    rc = assemble(b, e, pc, &o, err);
  free(pc);
  return rc;
}
