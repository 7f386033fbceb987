/* Partitioned variables: checking that their slices tile the tensor, and assembling
 * the whole tensor from them (TensorFlow's GetSliceValue for the full slice).
 *
 * DESIGN. Coverage is decided exactly from the slices' corners, without reading data:
 * a box [lo, hi) is, as a function on the integer grid, the signed sum over its 2^k
 * corners c of step(x >= c) (sign -1 per `hi` coordinate), and the step functions of
 * distinct points are linearly independent. So the slices cover the tensor exactly
 * once iff their signed corners, together with the tensor's own corners negated,
 * cancel to nothing. Only the k axes along which some slice is partitioned matter
 * (TensorFlow's partitioners use one), so this is a sort of n * 2^k points.
 *
 * Assembly emits the tensor in row-major order as runs: a run is the elements
 * contiguous both in the full tensor and in one slice. Each slice's runs follow each
 * other in its own storage, so a min-heap of slices keyed by the position of their
 * next run yields the output in order in O(runs * log slices); the run at the top
 * must start exactly where the output stands, which checks coverage once more. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bundle.h"
#include "dtype.h"
#include "ordered_code.h"

/* Corner points the coverage check may hold, in int64 words (32 MiB). */
#define COVER_MAX_WORDS (1u << 22)

static void slice_bounds(const struct ck_entry *full, const struct ck_slice *s, int d, int64_t *lo, int64_t *hi)
{
  *lo = s->length[d] < 0 ? 0 : s->start[d];
  *hi = s->length[d] < 0 ? full->dims[d] : s->start[d] + s->length[d];
}

/* Rows of a corner table: k coordinates then a signed weight. */
static int cmp_corner(const void *pa, const void *pb, void *ctx)
{
  const int64_t *a = pa, *b = pb;
  int k = *(const int *)ctx;

  for (int j = 0; j < k; j++)
    if (a[j] != b[j])
      return a[j] < b[j] ? -1 : 1;
  return 0;
}

/* Append the 2^k signed corners of the box [lo, hi) over the partitioned axes. */
static int64_t *put_corners(int64_t *row, const int *axes, int k, const int64_t *lo, const int64_t *hi, int64_t w)
{
  for (uint32_t m = 0; m < (1u << k); m++) {
    int64_t sign = w;
    for (int j = 0; j < k; j++) {
      row[j] = (m >> j) & 1 ? hi[axes[j]] : lo[axes[j]];
      if ((m >> j) & 1)
        sign = -sign;
    }
    row[k] = sign;
    row += k + 1;
  }
  return row;
}

/* The axes along which some slice is not the whole dimension. */
static int partitioned_axes(const struct ck_entry *full, int *axes)
{
  int k = 0;

  for (int d = 0; d < full->rank; d++) {
    for (size_t i = 0; i < full->nslices; i++) {
      int64_t lo, hi;
      slice_bounds(full, &full->slices[i], d, &lo, &hi);
      if (lo != 0 || hi != full->dims[d]) {
        axes[k++] = d;
        break;
      }
    }
  }
  return k;
}

/* Sum of the slices' element counts, saturating (each count is at most nelem). */
static uint64_t volume_sum(const struct ck_entry *full)
{
  uint64_t sum = 0;

  for (size_t i = 0; i < full->nslices; i++) {
    uint64_t v = 1;
    for (int d = 0; d < full->rank; d++) {
      int64_t lo, hi;
      slice_bounds(full, &full->slices[i], d, &lo, &hi);
      v *= (uint64_t)(hi - lo);
    }
    sum = sum > UINT64_MAX - v ? UINT64_MAX : sum + v;
  }
  return sum;
}

static int cover_error(const struct ck_entry *full, const char *file, struct ck_err *err)
{
  uint64_t sum = volume_sum(full);
  const char *why = sum < full->nelem ? "leave elements in no slice"
                    : sum > full->nelem ? "overlap" : "overlap and leave elements in no slice";

  return ck_err_set(err, CK_EFORMAT, "%s: %s: its %zu slices %s (%llu elements listed for %llu)", file,
                    (const char *)full->key, full->nslices, why, (unsigned long long)sum,
                    (unsigned long long)full->nelem);
}

int ck_slices_check_cover(const struct ck_entry *full, const char *file, struct ck_err *err)
{
  int axes[CK_MAX_RANK], k, rc = 0;
  int64_t lo[CK_MAX_RANK], hi[CK_MAX_RANK], *tab, *row;
  size_t nrows, width;

  if (full->nelem == 0)
    return 0; /* nothing to cover; every slice is empty */
  k = partitioned_axes(full, axes);
  width = (size_t)k + 1;
  if (k > 20 || (full->nslices + 1) > COVER_MAX_WORDS / width / ((size_t)1 << k))
    return ck_err_set(err, CK_ELIMIT, "%s: %s: %zu slices partitioned along %d axes: too many for the coverage check",
                      file, (const char *)full->key, full->nslices, k);
  nrows = (full->nslices + 1) << k;
  if ((tab = malloc(nrows * width * sizeof(int64_t))) == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  row = tab;
  for (size_t i = 0; i < full->nslices; i++) {
    for (int j = 0; j < k; j++)
      slice_bounds(full, &full->slices[i], axes[j], &lo[axes[j]], &hi[axes[j]]);
    row = put_corners(row, axes, k, lo, hi, 1);
  }
  for (int j = 0; j < k; j++) {
    lo[axes[j]] = 0;
    hi[axes[j]] = full->dims[axes[j]];
  }
  put_corners(row, axes, k, lo, hi, -1);
  qsort_r(tab, nrows, width * sizeof(int64_t), cmp_corner, &k);
  for (size_t i = 0; i < nrows && rc == 0;) {
    int64_t w = 0;
    size_t j = i;
    for (; j < nrows && cmp_corner(tab + i * width, tab + j * width, &k) == 0; j++)
      w += tab[j * width + (size_t)k];
    if (w != 0)
      rc = cover_error(full, file, err);
    i = j;
  }
  free(tab);
  return rc;
}

/* ---- assembly ---- */

struct piece {
  const struct ck_entry *e;
  int64_t *lo, *hi, *cur; /* rank each; cur: the odometer over the axes before `axis` */
  int axis;               /* last axis where the slice is not whole; runs span it and all after */
  uint64_t runlen;        /* elements per run */
  uint64_t nruns;
  uint64_t done;          /* runs emitted */
  uint64_t next;          /* position in the full tensor of the next run */
};

struct asm_state {
  struct piece *pc;
  size_t npc;
  struct piece **heap;
  size_t nheap;
  int64_t *ext;           /* lo/hi/cur storage of all pieces */
  uint64_t *mult;         /* elements per step of each axis in the full tensor */
};

static void asm_free(struct asm_state *s)
{
  free(s->pc);
  free(s->heap);
  free(s->ext);
  free(s->mult);
}

static void piece_init(const struct ck_entry *full, const uint64_t *mult, struct piece *p)
{
  int r = full->rank;

  p->axis = -1;
  for (int d = 0; d < r; d++)
    if (p->lo[d] != 0 || p->hi[d] != full->dims[d])
      p->axis = d;
  p->runlen = p->axis < 0 ? full->nelem : (uint64_t)(p->hi[p->axis] - p->lo[p->axis]) * mult[p->axis];
  p->nruns = 1;
  p->next = 0;
  for (int d = 0; d < p->axis; d++)
    p->nruns *= (uint64_t)(p->hi[d] - p->lo[d]);
  for (int d = 0; d <= p->axis; d++) {
    p->cur[d] = p->lo[d];
    p->next += (uint64_t)p->lo[d] * mult[d];
  }
}

/* Step the odometer to the slice's next run and update its output position. */
static void piece_advance(struct piece *p, const uint64_t *mult)
{
  for (int d = p->axis - 1; d >= 0; d--) {
    if (++p->cur[d] < p->hi[d]) {
      p->next += mult[d];
      return;
    }
    p->next -= (uint64_t)(p->hi[d] - 1 - p->lo[d]) * mult[d];
    p->cur[d] = p->lo[d];
  }
}

static int heap_less(const struct piece *a, const struct piece *b)
{
  return a->next < b->next;
}

static void heap_down(struct piece **h, size_t n, size_t i)
{
  for (;;) {
    size_t l = 2 * i + 1, m = i;
    struct piece *t;
    if (l < n && heap_less(h[l], h[m]))
      m = l;
    if (l + 1 < n && heap_less(h[l + 1], h[m]))
      m = l + 1;
    if (m == i)
      return;
    t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
}

/* Find each listed slice's data entry and lay out the pieces and the heap. */
static int collect(struct ck_bundle *b, const struct ck_entry *full, struct asm_state *s, struct ck_err *err)
{
  size_t r = (size_t)full->rank, esize = ck_dtype_size(full->dtype);

  s->pc = calloc(full->nslices, sizeof(*s->pc));
  s->heap = calloc(full->nslices, sizeof(*s->heap));
  s->ext = malloc((3 * r * full->nslices + 1) * sizeof(int64_t));
  s->mult = malloc((r + 1) * sizeof(uint64_t));
  if (!s->pc || !s->heap || !s->ext || !s->mult)
    return ck_err_set(err, -ENOMEM, "out of memory");
  for (size_t d = r; d-- > 0;)
    s->mult[d] = d + 1 == r ? 1 : s->mult[d + 1] * (uint64_t)full->dims[d + 1];
  for (size_t i = 0; i < full->nslices; i++) {
    const struct ck_slice *sl = &full->slices[i];
    struct piece *p = &s->pc[i];
    uint8_t *key;
    size_t klen;
    if (ck_slice_key_encode(full->key, full->key_len, full->rank, sl->start, sl->length, &key, &klen) != 0)
      return ck_err_set(err, -ENOMEM, "out of memory");
    p->e = ck_bundle_find(b, key, klen);
    free(key);
    if (p->e == NULL || !p->e->is_slice)
      return ck_err_set(err, CK_EFORMAT, "%s.index: %s: slice %zu has no data entry", ck_bundle_prefix(b),
                        full->key, i);
    p->lo = s->ext + 3 * r * i;
    p->hi = p->lo + r;
    p->cur = p->hi + r;
    for (int d = 0; d < full->rank; d++)
      slice_bounds(full, sl, d, &p->lo[d], &p->hi[d]);
    piece_init(full, s->mult, p);
    if (p->runlen * p->nruns * esize != p->e->size)
      return ck_err_set(err, CK_EFORMAT, "%s.index: %s: slice %zu holds %llu bytes, its extent needs %llu",
                        ck_bundle_prefix(b), full->key, i, (unsigned long long)p->e->size,
                        (unsigned long long)(p->runlen * p->nruns * esize));
    if (p->runlen > 0 && p->nruns > 0)
      s->heap[s->nheap++] = p;
  }
  for (size_t i = s->nheap / 2; i-- > 0;)
    heap_down(s->heap, s->nheap, i);
  return 0;
}

struct out {
  uint8_t *buf;
  size_t cap;
  size_t len;
  ck_chunk_fn fn;
  void *ctx;
};

static int emit(struct ck_bundle *b, struct out *o, const struct ck_entry *e, uint64_t off, uint64_t n,
                struct ck_err *err)
{
  int rc;

  while (n > 0) {
    size_t take = o->cap - o->len < n ? o->cap - o->len : (size_t)n;
    if ((rc = ck_bundle_read(b, e, off, o->buf + o->len, take, err)) != 0)
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

static int assemble(struct ck_bundle *b, const struct ck_entry *full, struct asm_state *s, struct out *o,
                    struct ck_err *err)
{
  size_t esize = ck_dtype_size(full->dtype);
  uint64_t pos = 0;
  int rc;

  while (s->nheap > 0) {
    struct piece *p = s->heap[0];
    if (p->next != pos)
      return ck_err_set(err, CK_EFORMAT, "%s.index: %s: element %llu is %s", ck_bundle_prefix(b), full->key,
                        (unsigned long long)(p->next > pos ? pos : p->next),
                        p->next > pos ? "in no slice" : "in two slices");
    if ((rc = emit(b, o, p->e, p->done * p->runlen * esize, p->runlen * esize, err)) != 0)
      return rc;
    pos += p->runlen;
    if (++p->done == p->nruns)
      s->heap[0] = s->heap[--s->nheap];
    else
      piece_advance(p, s->mult);
    heap_down(s->heap, s->nheap, 0);
  }
  if (pos != full->nelem)
    return ck_err_set(err, CK_EFORMAT, "%s.index: %s: element %llu is in no slice", ck_bundle_prefix(b),
                      full->key, (unsigned long long)pos);
  if (o->len > 0 && (rc = o->fn(o->ctx, o->buf, o->len)) != 0)
    return rc;
  return 0;
}

int ck_bundle_stream_tensor(struct ck_bundle *b, const struct ck_entry *e, void *buf, size_t bufsize,
                            ck_chunk_fn fn, void *ctx, struct ck_err *err)
{
  struct out o = { .buf = buf, .cap = bufsize, .fn = fn, .ctx = ctx };
  struct asm_state s = { 0 };
  int rc;

  if (e->nslices == 0)
    return ck_bundle_stream(b, e, buf, bufsize, fn, ctx, err);
  if (ck_dtype_size(e->dtype) == 0)
    return ck_err_set(err, CK_EUNSUP, "%s.index: %s: partitioned %s variables are not supported",
                      ck_bundle_prefix(b), e->key, ck_dtype_name(e->dtype));
  if (bufsize == 0)
    return ck_err_set(err, CK_EINVAL, "zero-sized buffer");
  rc = collect(b, e, &s, err);
  for (size_t i = 0; rc == 0 && i < e->nslices; i++)
    rc = ck_bundle_verify(b, s.pc[i].e, buf, bufsize, err);
  if (rc == 0)
    rc = assemble(b, e, &s, &o, err);
  asm_free(&s);
  return rc;
}
