/* ckpt: a checkpoint of any format (bundle, HDF5, or a pipeline source: torch,
 * safetensors), as ls, verify and diff see it; and the subcommands' entry points. */
#ifndef CK_CKPT_SRC_H
#define CK_CKPT_SRC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"

#define VERIFY_BUF (256u << 10) /* verify and diff: pread + crc in L2-sized pieces, fastest measured */

struct ck_bundle;
struct ck_h5r;
struct ck_source;
struct ck_entry;
struct ck_h5_tensor;

struct src {
  struct ck_bundle *b;
  struct ck_h5r *r;
  struct ck_source *p; /* PyTorch and safetensors: through the pipeline's source */
};

/* One tensor as ls and diff see it. */
struct tinfo {
  const uint8_t *name;
  size_t nlen;
  int dtype;
  int rank;
  const int64_t *dims;
  int64_t bytes; /* -1: variable length */
  int shard;
  uint64_t offset;
  uint32_t crc;
  int has_crc;
  const struct ck_entry *e;
  const struct ck_h5_tensor *t;
  size_t i; /* index in a pipeline source */
};

/* A regular file with the HDF5 signature. */
int ckpt_is_h5_path(const char *path);
/* Open a checkpoint of any format (index_only: a bundle's data files are not opened). */
int ckpt_src_open(struct src *s, const char *path, int index_only, struct ck_err *err);
void ckpt_src_close(struct src *s);
size_t ckpt_src_count(const struct src *s);
const char *ckpt_src_format(const struct src *s);
/* Masked crc32c of tensor t's bytes in TensorFlow's stored layout. */
int ckpt_src_tensor_crc(struct src *s, const struct tinfo *t, void *buf, size_t bufsize, uint32_t *crc,
                        struct ck_err *err);
/* Tensor i; returns 0 for bundle slice entries, which are part of their variable. */
int ckpt_src_tensor(const struct src *s, size_t i, struct tinfo *ti);
void ckpt_shape_str(const struct tinfo *t, char *buf, size_t len);
void ckpt_name_str(const struct tinfo *t, char *buf, size_t len);
void ckpt_json_str(const uint8_t *s, size_t n);

/* The subcommands (ckpt_ls.c, ckpt_verify.c, ckpt_diff.c, ckpt_synth.c), and the usage they print. */
int ck_cmd_ls(int argc, char **argv);
int ck_cmd_verify(int argc, char **argv);
int ck_cmd_diff(int argc, char **argv);
int ck_cmd_synth(int argc, char **argv);
void ckpt_usage(FILE *f);

#endif
