/* Synthetic checkpoints for demos, tests and benchmarks: a chosen total size, tensor
 * count, spread of sizes and dtypes, generated in bounded memory from a seed. */
#ifndef CK_SYNTH_H
#define CK_SYNTH_H

#include <stdint.h>

#include "error.h"

struct ck_synth_opts {
  uint64_t total_bytes;   /* approximate sum of tensor bytes */
  unsigned tensors;       /* number of tensors */
  double spread;          /* ratio of the largest to the smallest tensor (>= 1) */
  const int *dtypes;      /* cycled through; NULL: DT_FLOAT */
  int ndtypes;
  uint64_t seed;
  uint64_t max_shard_bytes; /* 0: one shard */
  int normal;             /* floating-point tensors hold weights drawn from N(0, 0.02^2), which
                           * compress like real ones; else (and integers) uniform random bytes */
};

/* Write a TensorFlow bundle at prefix. */
int ck_synth_tf(const char *prefix, const struct ck_synth_opts *o, struct ck_err *err);

/* Fill buf with deterministic pseudo-random bytes for (seed, stream, offset). */
void ck_synth_fill(void *buf, size_t len, uint64_t seed, uint64_t stream, uint64_t offset);

#endif
