/* Splitting a tensor into row-major blocks that are both rectangular (an HDF5
 * hyperslab) and contiguous in the flattened data (a byte range of a bundle). */
#ifndef CK_BLOCKS_H
#define CK_BLOCKS_H

#include <stdint.h>

#include "bundle.h"

struct ck_blocks {
  int rank;
  int64_t dims[CK_MAX_RANK];
  int split;              /* the dimension cut into runs; later dimensions are whole */
  uint64_t inner;         /* elements in one index of the split dimension */
  uint64_t run;           /* indices of the split dimension per block */
  int64_t idx[CK_MAX_RANK];
  uint64_t pos;           /* flat element offset of the next block */
  uint64_t nelem;
};

/* Plan blocks of at most max_elems elements (at least one element per block). */
void ck_blocks_init(struct ck_blocks *b, int rank, const int64_t *dims, uint64_t max_elems);

/* Next block: hyperslab start/count (rank values each) and its flat element range.
 * Returns 1 while there is a block, 0 at the end. */
int ck_blocks_next(struct ck_blocks *b, uint64_t *start, uint64_t *count, uint64_t *elem_off,
                   uint64_t *nelems);

#endif
