/* Streaming conversion between TensorFlow bundles and HDF5 checkpoints, through one
 * fixed buffer, with checksums verified on the way and atomic results. */
#ifndef CK_CONVERT_H
#define CK_CONVERT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define CK_CONVERT_DEFAULT_BUFFER (64u << 20)

/* Tensors whose name matches the glob `pattern` go to `shard`. */
struct ck_shard_rule {
  const char *pattern;
  int shard;
};

struct ck_convert_opts {
  size_t buffer_size;        /* 0: CK_CONVERT_DEFAULT_BUFFER; shared by all threads */
  int threads;               /* bulk copy threads for TF -> HDF5, and the compressing or
                              * decompressing threads of HDF5 chunks; 0: 2 */
  int layout;                /* CK_H5_FLAT / CK_H5_NESTED */
  int compression;           /* CK_H5_NONE / GZIP / LZ4 */
  int gzip_level;
  size_t chunk_bytes;        /* compressed HDF5 chunks: bytes per chunk; 0: CK_H5_CHUNK_DEFAULT */
  uint64_t max_shard_bytes;  /* HDF5 -> TF: 0 = one shard */
  const struct ck_shard_rule *rules; /* HDF5 -> TF: overrides max_shard_bytes */
  size_t nrules;
  int verify;                /* re-read the output and compare every checksum */
  int strict;                /* any format: a tensor the target cannot hold is an error, not skipped */
  int no_checkpoint_file;    /* HDF5 -> TF: leave the directory's `checkpoint` file alone */
  int keep_foreign;          /* never replace an output that ckptd did not write (the daemon) */
  int output_mode;           /* outputs get this mode before they are published; 0: as created */
  int output_chgrp;          /* 1: outputs get group output_gid before they are published */
  unsigned output_gid;
  void (*progress)(void *ctx, uint64_t done, uint64_t total);
  void *progress_ctx;
  const atomic_int *cancel;   /* set non-zero to abort (the daemon's shutdown; a signal handler
                               * may set it, converter threads read it) */
};

struct ck_convert_stats {
  uint64_t tensors;
  uint64_t bytes;     /* tensor bytes moved */
  double seconds;
  size_t skipped;     /* HDF5 leaves that were not tensors */
  char warning[CK_ERR_MSG_MAX + 256]; /* HDF5 -> TF: why the `checkpoint` file was left alone ("" if it was not) */
};

/* TF bundle (prefix, .index, or directory) -> HDF5 file at dst. */
int ck_convert_tf_to_h5(const char *src, const char *dst, const struct ck_convert_opts *o,
                        struct ck_convert_stats *st, struct ck_err *err);

/* HDF5 file -> TF bundle at dst_prefix (then the directory's `checkpoint` file). */
int ck_convert_h5_to_tf(const char *src, const char *dst_prefix, const struct ck_convert_opts *o,
                        struct ck_convert_stats *st, struct ck_err *err);

#endif
