/* Block planning. A block is [1, .., 1, m, d_{k+1}, .., d_{r-1}] at some index:
 * whole trailing dimensions keep it contiguous in row-major order. k is the
 * outermost dimension whose trailing product still fits the element budget. */
#include "config.h"

#include <string.h>

#include "blocks.h"

void ck_blocks_init(struct ck_blocks *b, int rank, const int64_t *dims, uint64_t max_elems)
{
  uint64_t inner = 1;
  int k = rank - 1;

  memset(b, 0, sizeof(*b));
  b->rank = rank;
  b->nelem = 1;
  for (int d = 0; d < rank; d++) {
    b->dims[d] = dims[d];
    b->nelem *= (uint64_t)dims[d];
  }
  if (max_elems == 0)
    max_elems = 1;
  /* Grow the whole trailing part while one more dimension still fits. */
  while (k > 0 && inner * (uint64_t)dims[k] <= max_elems && dims[k] > 0) {
    inner *= (uint64_t)dims[k];
    k--;
  }
  if (rank == 0) {
    b->split = -1;
    b->inner = 1;
    b->run = 1;
    return;
  }
  if (k == 0 && inner * (uint64_t)dims[0] <= max_elems) {
    b->split = 0;
    b->inner = inner;
    b->run = (uint64_t)dims[0];
    return;
  }
  b->split = k;
  b->inner = inner;
  b->run = max_elems / inner ? max_elems / inner : 1;
}

int ck_blocks_next(struct ck_blocks *b, uint64_t *start, uint64_t *count, uint64_t *elem_off,
                   uint64_t *nelems)
{
  uint64_t m;
  int k = b->split;

  if (b->pos >= b->nelem)
    return 0;
  if (b->rank == 0) {
    *elem_off = 0;
    *nelems = 1;
    b->pos = 1;
    return 1;
  }
  m = (uint64_t)(b->dims[k] - b->idx[k]);
  if (m > b->run)
    m = b->run;
  for (int d = 0; d < b->rank; d++) {
    start[d] = d <= k ? (uint64_t)b->idx[d] : 0;
    count[d] = d < k ? 1 : d == k ? m : (uint64_t)b->dims[d];
  }
  *elem_off = b->pos;
  *nelems = m * b->inner;
  b->pos += m * b->inner;
  /* advance the index: carry from the split dimension outwards */
  b->idx[k] += (int64_t)m;
  for (int d = k; d > 0 && b->idx[d] >= b->dims[d]; d--) {
    b->idx[d] = 0;
    b->idx[d - 1]++;
  }
  return 1;
}
