/* The format-neutral conversion pipeline (issue 10).
 *
 * A *source* lists a checkpoint's tensors (neutral name, TensorFlow dtype, shape, byte
 * size) and streams each tensor's bytes in bounded chunks; a *sink* takes tensors one
 * after another and publishes its output atomically (or aborts, leaving nothing).
 * ck_convert() connects any source to any sink, so four formats need four sources and
 * four sinks, not twelve converters. The TF <-> HDF5 fast paths (convert_tf_h5.c,
 * convert_h5_tf.c) stay as specialisations that ck_convert() picks for those two pairs.
 *
 * The bytes of a tensor are always TensorFlow's stored layout: row-major, little-endian,
 * fixed-size elements; DT_STRING / DT_VARIANT length-prefixed as bundles store them.
 * Names: TF names verbatim ("dense/kernel"); PyTorch trees flattened as Cerebras does
 * (keys joined with '.', list indices and int keys in decimal: "model.0.weight"). */
#ifndef CK_PIPELINE_H
#define CK_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "convert.h"
#include "convert_internal.h"
#include "error.h"

enum { CK_FMT_AUTO = 0, CK_FMT_SAVER = 1, CK_FMT_H5 = 2, CK_FMT_TORCH = 3, CK_FMT_SAFETENSORS = 4, CK_FMT_COUNT = 5 };

/* "saver", "h5", "torch", "safetensors" (NULL for others). */
const char *ck_format_name(int fmt);
/* The inverse (also "tf" for saver, "hdf5" for h5, "pt" for torch); -1 if unknown. */
int ck_format_parse(const char *s);
/* A source's format from its content: HDF5 by signature, a zip by its end record, safetensors
 * by a header that parses, a TF bundle by prefix / .index / directory. CK_EFORMAT if none. */
int ck_format_detect(const char *path, int *fmt, struct ck_err *err);
/* An output's format from its name: .h5 .hdf5 .mdl -> h5, .safetensors, .pt .pth .bin ->
 * torch, anything else a TF prefix. */
int ck_format_of_name(const char *dst);

/* ---- what flows through ---- */

struct ck_tinfo {
  const char *name;  /* neutral name, NUL-terminated, nlen bytes (TF slice keys aside, no NUL inside) */
  size_t nlen;
  int dtype;         /* TensorFlow DataType (CK_DT_*) */
  int rank;
  const int64_t *dims;
  uint64_t nelem;
  uint64_t nbytes;   /* bytes stream() delivers */
  int has_crc;       /* 1: crc32c is the masked crc32c of those bytes, as the source stores it */
  uint32_t crc32c;
};

/* A leaf that is not a tensor: a step count, a learning rate, a string, None. */
enum { CK_VAL_NONE = 0, CK_VAL_BOOL, CK_VAL_INT, CK_VAL_FLOAT, CK_VAL_STR };
struct ck_value {
  char *name;        /* neutral (dotted) name */
  int kind;
  int64_t i;         /* BOOL, INT */
  double f;          /* FLOAT */
  char *s;           /* STR: UTF-8, slen bytes, NUL-terminated */
  size_t slen;
};

struct ck_source;

struct ck_source_ops {
  /* Tensor i's description; pointers stay valid until close. */
  void (*info)(struct ck_source *s, size_t i, struct ck_tinfo *out);
  /* Stream tensor i's bytes through buf (bufsize bytes) to fn, in order, verifying any
   * checksum the format stores (a mismatch: CK_ECHECKSUM naming the file and tensor). */
  int (*stream)(struct ck_source *s, size_t i, void *buf, size_t bufsize, int (*fn)(void *ctx, const void *data, size_t len),
                void *ctx, struct ck_err *err);
  /* Free everything (the common fields too, with ck_source_free_common). */
  void (*close)(struct ck_source *s);
};

/* Every source: the ops and what the pipeline needs to know besides tensors. */
struct ck_source {
  const struct ck_source_ops *ops;
  int format;
  char *path;              /* as opened */
  size_t count;            /* tensors, in the order they should be written (the source's data order) */
  struct ck_value *values; /* non-tensor leaves */
  size_t nvalues;
  char *spec;              /* the tree's structure: torch.utils._pytree.treespec_dumps JSON
                            * (see spec.h) whose leaves, in order, are named as tensors and
                            * values are; NULL for a flat name -> tensor map */
  char **skipped;          /* "name: why" for leaves that are neither (listed by tools) */
  size_t nskipped;
  char *source_name;       /* base name ckptd records in outputs (mark, ckptd_source) */
  struct ck_srcid id;      /* the files read, to notice a source that changes under a conversion */
  char source_id[64];      /* "SIZE:MTIME_NS" of those files, at open (ck_source_set_id) */
  int tf_producer, tf_min_consumer; /* TF version fields (0 if not a TF source) */
};

/* Open path as format fmt (CK_FMT_AUTO: ck_format_detect). */
int ck_source_open(const char *path, int fmt, size_t budget, struct ck_source **out, struct ck_err *err);
void ck_source_close(struct ck_source *s);
/* Add "name: why" (why NULL: name as it is) to s->skipped. 0 or -ENOMEM. */
int ck_source_skip(struct ck_source *s, const char *name, const char *why);
/* Add a value (name and s are copied). 0 or -ENOMEM. */
int ck_source_add_value(struct ck_source *s, const char *name, int kind, int64_t i, double f, const char *str,
                        size_t slen);
/* Free the common fields (for ops->close). */
void ck_source_free_common(struct ck_source *s);
/* Fill s->source_id from the files the source consists of (NULL-terminated list). */
int ck_source_set_id(struct ck_source *s, const char *const *files, struct ck_err *err);

/* Per-format openers (pipeline.c dispatches). budget: the buffer budget, which also caps
 * what a parser may allocate for the metadata it reads (a pickle, a JSON header). */
int ck_saver_source_open(const char *path, size_t budget, struct ck_source **out, struct ck_err *err);
int ck_h5_source_open(const char *path, size_t budget, struct ck_source **out, struct ck_err *err);
int ck_torch_source_open(const char *path, size_t budget, struct ck_source **out, struct ck_err *err);
int ck_st_source_open(const char *path, size_t budget, struct ck_source **out, struct ck_err *err);

/* ---- sinks ---- */

struct ck_sink;

struct ck_sink_ops {
  /* Can this format hold tensors of dtype? (torch and safetensors: not strings, variants.) */
  int (*accepts)(int dtype);
  /* Everything is known: the source (its values, spec, names) and which of its tensors
   * will come, in this order (sel[0..n)). A sink that needs a header first writes it now. */
  int (*begin)(struct ck_sink *k, const struct ck_source *src, const size_t *sel, size_t n, struct ck_err *err);
  /* Tensor sel[j] follows (j counts from 0 in begin's order); then its bytes by append. */
  int (*tensor_begin)(struct ck_sink *k, const struct ck_tinfo *t, struct ck_err *err);
  int (*append)(struct ck_sink *k, const void *data, size_t len, struct ck_err *err);
  int (*tensor_end)(struct ck_sink *k, struct ck_err *err);
  /* fsync, mark (ck_mark_set with o->mark_name/mark_id when set), publish under the final
   * name(s) (ck_publish_rename honouring keep_foreign), fsync the directory. Frees k. */
  int (*finish)(struct ck_sink *k, struct ck_err *err);
  /* Remove every temporary; free k (accepts a sink in any state). */
  void (*abort)(struct ck_sink *k);
};

struct ck_sink_opts {
  const struct ck_convert_opts *conv; /* buffer size, compression, sharding, keep_foreign, mode, group */
  const char *mark_name;              /* ckptd's mark: the source's base name and id */
  const char *mark_id;
};

struct ck_sink {
  const struct ck_sink_ops *ops;
  int format;
  char *path; /* final output path (a prefix for saver) */
};

int ck_sink_open(int fmt, const char *dst, const struct ck_sink_opts *o, struct ck_sink **out, struct ck_err *err);
int ck_saver_sink_open(const char *dst, const struct ck_sink_opts *o, struct ck_sink **out, struct ck_err *err);
int ck_h5_sink_open(const char *dst, const struct ck_sink_opts *o, struct ck_sink **out, struct ck_err *err);
int ck_torch_sink_open(const char *dst, const struct ck_sink_opts *o, struct ck_sink **out, struct ck_err *err);
int ck_st_sink_open(const char *dst, const struct ck_sink_opts *o, struct ck_sink **out, struct ck_err *err);

/* ---- the converter ---- */

/* Convert src (any format, detected) to dst in format to (CK_FMT_AUTO: ck_format_of_name).
 * Tensors the target cannot hold are skipped and listed in stats->warning, or an error with
 * o->strict. With o->verify the output is reopened and every tensor's crc32c compared. */
int ck_convert(const char *src, const char *dst, int to, const struct ck_convert_opts *o,
               struct ck_convert_stats *st, struct ck_err *err);

#endif
