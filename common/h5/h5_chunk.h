/* Direct chunk I/O for filtered HDF5 datasets (issue 12; not part of the public API).
 *
 * DESIGN: the calling thread does every libhdf5 call (H5Dread_chunk, H5Dwrite_chunk,
 * metadata), in the data's order; the filters themselves (h5_codec.c) run on a
 * ring of slots served by worker threads (workq.c). The ring has a fixed number of
 * slots, each with its own buffers, so memory is slots x (chunk + encoded bound +
 * scratch) whatever the file says; a chunk whose stored size exceeds the encoded
 * bound of its decoded size is refused before it is read. Results are consumed
 * oldest first, so output order never depends on thread timing. A pipeline this
 * module cannot run bit-exactly (fletcher32, szip, a filter option we do not
 * handle, partial edge chunks left unfiltered, a non-native element layout) is
 * not "direct": the caller falls back to libhdf5's own pipeline. */
#ifndef CK_H5_CHUNK_H
#define CK_H5_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include <hdf5.h>

#include "error.h"
#include "h5_codec.h"
#include "workq.h"

struct ck_h5_slot {
  struct ck_workq_job job;
  const struct ck_h5_codec *codec;
  int encode;           /* 1: data -> raw; 0: raw -> data */
  uint8_t *data;        /* decoded chunk */
  size_t data_len;
  uint8_t *raw;         /* encoded chunk */
  size_t raw_len, raw_cap;
  uint8_t *scratch;
  unsigned mask;        /* filters skipped (read: as stored) */
  int fd;               /* read: >= 0: the worker preads raw_len bytes at addr first */
  uint64_t addr;
  hsize_t off[H5S_MAX_RANK];
  uint64_t valid;       /* bytes of data that belong to the tensor (edge chunks: fewer) */
  int rc;
  const char *why;
};

struct ck_h5_ring {
  struct ck_workq *q;
  int threads;
  size_t budget;
  struct ck_h5_slot *slots;
  int nslots;           /* allocated */
  int active;           /* in use for the current chunk size (budget) */
  int head, inflight;   /* oldest slot in flight, how many */
  size_t data_cap, raw_cap, scratch_cap;
};

/* A ring with threads workers (0: codecs run in the caller) and at most budget bytes
 * of buffers. No buffers yet (ck_h5_ring_reserve). 0 or -ENOMEM. */
int ck_h5_ring_init(struct ck_h5_ring *r, int threads, size_t budget);

/* Make every active slot hold a chunk of data_bytes (raw: the codec's bound; scratch
 * if it shuffles and compresses), as many slots as the budget holds. Only with nothing
 * in flight. 0, -ENOMEM, or CK_ELIMIT when even one slot would exceed the budget
 * (nothing changed), unless at_least_one: then one slot, over the budget. */
int ck_h5_ring_reserve(struct ck_h5_ring *r, const struct ck_h5_codec *c, size_t data_bytes, int at_least_one);

/* The next free slot, or NULL when all active slots are in flight. */
struct ck_h5_slot *ck_h5_ring_free_slot(struct ck_h5_ring *r);

/* Hand a filled slot (from ck_h5_ring_free_slot) to the workers. */
void ck_h5_ring_push(struct ck_h5_ring *r, struct ck_h5_slot *s);

/* Wait for the oldest slot in flight and return it (NULL if none); it stays taken
 * until ck_h5_ring_pop. */
struct ck_h5_slot *ck_h5_ring_oldest(struct ck_h5_ring *r);
void ck_h5_ring_pop(struct ck_h5_ring *r);

/* Wait for everything in flight, then free (the struct itself is the caller's). */
void ck_h5_ring_free(struct ck_h5_ring *r);

/* The pipeline of a dataset's creation property list, if this module can run it
 * for elements of esize bytes. 1 (and *c filled) or 0. */
int ck_h5_codec_of_dcpl(hid_t dcpl, size_t esize, struct ck_h5_codec *c);

/* Stream a filtered chunked dataset's bytes (stored layout, row-major) through
 * emit, decoding on the ring. rank >= 1; chunk[] its chunk dims. A chunk row of a
 * general chunk shape is assembled in a slab (at most CK_H5_CHUNK_SLAB_MAX).
 * With fd >= 0 (a file without a user block, file_size bytes) the calling thread
 * only looks chunks up and the workers pread them, checked against the file's size;
 * else the calling thread reads them with H5Dread_chunk. file and path name errors. */
int ck_h5_chunks_read(struct ck_h5_ring *r, hid_t ds, const struct ck_h5_codec *c, int rank, const int64_t *dims,
                      const hsize_t *chunk, size_t esize, int fd, uint64_t file_size,
                      int (*emit)(void *ctx, const void *p, size_t n), void *ctx, const char *file, const char *path,
                      struct ck_err *err);

#endif
