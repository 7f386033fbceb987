/* HDF5 checkpoints: the layouts of ../shared/FORMATS.md section 2.
 * The writer creates ckptd's layout (flat quote-escaped or nested names, TensorFlow
 * dtypes mapped as h5py does, tf_dtype / tf_crc32c attributes, __SUCCESS__ last);
 * the reader accepts ckptd's, both Cerebras layouts and plain h5py / Keras trees,
 * and produces each tensor's bytes in TensorFlow's stored layout. */
#ifndef CK_H5_H
#define CK_H5_H

#include <stddef.h>
#include <stdint.h>

#include "blocks.h"
#include "bundle.h"
#include "error.h"
#include "fileio.h"

enum { CK_H5_FLAT = 0, CK_H5_NESTED = 1 };
enum { CK_H5_NONE = 0, CK_H5_GZIP = 1, CK_H5_LZ4 = 2 };

#define CK_H5_LZ4_FILTER 32004
#define CK_H5_CHUNK_DEFAULT (1u << 20) /* bytes per compressed chunk (make bench-compress) */
#define CK_H5_BUDGET_DEFAULT (64u << 20) /* chunk buffers when the caller gives no budget */

/* Names: Python's urllib.parse.quote(name, safe='') and its inverse. */
char *ck_h5_quote(const uint8_t *name, size_t len);
int ck_h5_unquote(const char *s, uint8_t **out, size_t *outlen);

/* Parse "none", "gzip", "gzip:6" or "lz4". 0 or CK_EINVAL. */
int ck_h5_parse_compression(const char *s, int *kind, int *level);

/* Silence HDF5's own error printing (errors are reported through ck_err). */
void ck_h5_init(void);

/* ---- writer ---- */

struct ck_h5_write_opts {
  int layout;       /* CK_H5_FLAT or CK_H5_NESTED */
  int compression;  /* CK_H5_NONE, CK_H5_GZIP, CK_H5_LZ4 */
  int gzip_level;
  const char *source_name; /* ckptd_source root attribute */
  const char *source_id;   /* ckptd_source_id: "SIZE:MTIME_NS" of the source's files (total
                            * bytes, newest mtime) when it was read, so a stale output is
                            * recognised from the file itself */
  int threads;             /* compressed chunks: codec worker threads (0: in the caller) */
  size_t budget;           /* compressed chunks: bytes of chunk buffers (0: CK_H5_BUDGET_DEFAULT) */
  size_t chunk_bytes;      /* compressed chunks: target chunk size (0: CK_H5_CHUNK_DEFAULT) */
  int fixed_only;          /* the caller writes only fixed-size dtypes: the flat layout without
                            * compression is then written directly (h5_flat.c), not by libhdf5 */
  int cerebras05;          /* torch trees: Cerebras' storage format 0.5 (root __version__ "0.5",
                            * <key>.__metadata__ and __spec__ root attributes, which may be
                            * large: stored densely, which needs the 1.8 file format) */
};

struct ck_h5w;
struct ck_h5w_ds;
struct ck_h5_slot;

/* Create a new HDF5 file at path (must not exist). */
int ck_h5w_create(const char *path, const struct ck_h5_write_opts *o, struct ck_h5w **out, struct ck_err *err);

/* Create the dataset of a tensor (dtype a TensorFlow DataType) and its attributes. */
int ck_h5w_dataset(struct ck_h5w *w, const uint8_t *name, size_t nlen, int dtype, int rank, const int64_t *dims,
                   uint32_t tf_crc32c, struct ck_h5w_ds **out, struct ck_err *err);

/* File offset of a contiguous, uncompressed, allocated fixed-size dataset (raw bytes
 * may then be written there with pwrite); 0 if its bytes must go through HDF5. */
uint64_t ck_h5w_ds_raw_offset(const struct ck_h5w_ds *ds);

/* Write fixed-size elements [elem_off, elem_off + n) given as TensorFlow bytes
 * (hyperslab start/count from ck_blocks). */
int ck_h5w_ds_write(struct ck_h5w_ds *ds, const uint64_t *start, const uint64_t *count, const void *data,
                    struct ck_err *err);

/* Write n variable-length elements (strings or variants) as a hyperslab. */
int ck_h5w_ds_write_vlen(struct ck_h5w_ds *ds, const uint64_t *start, const uint64_t *count, size_t n,
                         const uint8_t *const *ptrs, const size_t *lens, struct ck_err *err);

/* A dataset's fixed-size elements written from a stream of TensorFlow bytes in order:
 * with pwrite at raw_off when the dataset has raw storage (writeback paced, ck_wb),
 * else a hyperslab block at a time through the caller's stage buffer. path
 * names the file in messages. With raw_off set, ds may be NULL (a bulk copy thread). */
struct ck_h5w_stream {
  struct ck_h5w_ds *ds;
  int raw_fd;
  uint64_t raw_off;        /* contiguous: file offset of the data; 0: through HDF5 */
  uint64_t pos;            /* bytes received */
  struct ck_wb wb;         /* contiguous: writeback of the bytes at raw_off */
  size_t esize;
  uint8_t *stage;          /* chunked: bytes of the current block */
  size_t stage_len;
  uint64_t block_bytes;    /* chunked: bytes of the current block; 0 after the last */
  struct ck_blocks blocks; /* chunked: the block plan */
  struct ck_h5_slot *slot; /* compressed: the chunk being filled (its buffer is the stage) */
  uint64_t start[CK_MAX_RANK], count[CK_MAX_RANK];
  const char *path;
};

void ck_h5w_stream_init(struct ck_h5w_stream *s, struct ck_h5w_ds *ds, int raw_fd, uint64_t raw_off, int dtype,
                        int rank, const int64_t *dims, void *stage, size_t stage_cap, const char *path);
int ck_h5w_stream_write(struct ck_h5w_stream *s, const void *data, size_t len, struct ck_err *err);

/* Replace the dataset's tf_crc32c attribute (for tensors assembled while written). */
int ck_h5w_ds_set_crc(struct ck_h5w_ds *ds, uint32_t tf_crc32c, struct ck_err *err);

/* Close one dataset (accepts NULL). */
void ck_h5w_ds_close(struct ck_h5w_ds *ds);

/* A string attribute on the root group (Cerebras 0.5 metadata, __spec__). */
int ck_h5w_root_attr(struct ck_h5w *w, const char *name, const char *value, struct ck_err *err);

/* Root attributes, __SUCCESS__ last, then close and fsync. Frees w. */
int ck_h5w_finish(struct ck_h5w *w, struct ck_err *err);

/* Close without __SUCCESS__ and free (the caller removes the file). */
void ck_h5w_abort(struct ck_h5w *w);

/* Path of the file being written. */
const char *ck_h5w_path(const struct ck_h5w *w);

/* ---- reader ---- */

enum { CK_H5K_FIXED, CK_H5K_VLEN_BYTES, CK_H5K_VLEN_STR, CK_H5K_FIXED_STR };

struct ck_h5_tensor { /* fields ordered without padding: 200,000 of these are listed */
  char *path;        /* HDF5 path of the dataset */
  uint8_t *name;     /* tensor name (unescaped), NUL-terminated */
  size_t nlen;
  int64_t *dims;
  uint64_t nelem;
  size_t file_esize; /* bytes per element in the file (fixed kinds) */
  uint64_t raw_offset; /* contiguous, unfiltered, little-endian as TF lays it out: file offset; else 0 */
  uint64_t order;     /* ckptd_order attribute (nested layout): the source's data order */
  int dtype;         /* TensorFlow DataType */
  int rank;
  int kind;
  int has_crc;
  uint32_t tf_crc32c; /* masked, from the tf_crc32c attribute */
  int has_order;
};

struct ck_h5r;

/* Compressed chunks: decode with threads workers within budget bytes of buffers
 * (defaults: 2 and CK_H5_BUDGET_DEFAULT); with threads > 1 contiguous data is also
 * read ahead of the caller (ck_read_range). Before the first stream. */
void ck_h5r_set_threads(struct ck_h5r *r, int threads, size_t budget);

/* Listing a group of 4,096 links or more: n - 1 forked helper processes classify
 * slices of it alongside the caller (libhdf5 itself runs on one thread). Process-wide,
 * default 1 (none). Set by programs that may fork: the tools, ckptd's workers. */
void ck_h5_set_walkers(int n);

/* Open read-only and list its tensors (creation order where tracked, else name
 * order). Refuses unfinished ckptd / Cerebras 0.5 files, external storage, virtual
 * datasets, filters outside the allow list and data its storage cannot hold. */
int ck_h5r_open(const char *path, struct ck_h5r **out, struct ck_err *err);

/* The same on an in-memory file image (copied; no raw reads; for fuzzing). name labels errors. */
int ck_h5r_open_image(const void *image, size_t len, const char *name, struct ck_h5r **out, struct ck_err *err);

/* Close and free (accepts NULL). */
void ck_h5r_close(struct ck_h5r *r);

size_t ck_h5r_count(const struct ck_h5r *r);
const struct ck_h5_tensor *ck_h5r_tensor(const struct ck_h5r *r, size_t i);

/* Leaves that are not tensors (empty datasets, metadata-only values): path and why. */
size_t ck_h5r_skipped_count(const struct ck_h5r *r);
const char *ck_h5r_skipped(const struct ck_h5r *r, size_t i);

/* Stream a tensor's bytes in TensorFlow's stored layout (for strings: varint lengths,
 * length checksum, bytes; for variants: per-element length, bytes, running checksum)
 * in pieces of at most bufsize, through buf or (decoded chunks) straight from the
 * chunk's own buffer: fn must not keep the pointer. */
int ck_h5r_stream_tf(struct ck_h5r *r, const struct ck_h5_tensor *t, void *buf, size_t bufsize,
                     ck_chunk_fn fn, void *ctx, struct ck_err *err);

/* Cerebras 0.5 values that live only in "<key>.__metadata__" (a step, a learning rate):
 * key and JSON text (at most CK_H5_VALUE_JSON_MAX bytes; longer ones are skipped). */
#define CK_H5_VALUE_JSON_MAX (64u << 10)
size_t ck_h5r_value_count(const struct ck_h5r *r);
void ck_h5r_value(const struct ck_h5r *r, size_t i, const char **key, const char **json);

/* The root's __spec__ (torch tree spec JSON, see spec.h), or NULL; 1 if it is a string
 * longer than CK_H5_SPEC_MAX (the tree cannot be restored: a torch target refuses). */
#define CK_H5_SPEC_MAX (16u << 20) /* = CK_H5_ATTR_STR_MAX */
const char *ck_h5r_spec(const struct ck_h5r *r);
int ck_h5r_spec_too_long(const struct ck_h5r *r);

/* The file's path. */
const char *ck_h5r_path(const struct ck_h5r *r);

/* 1 if ckptd wrote the file (root ckptd_version). */
int ck_h5r_is_ckptd(const struct ck_h5r *r);

/* For a file ckptd wrote: the base name of the bundle it was converted from (root
 * ckptd_source), else "". */
const char *ck_h5r_source_name(const struct ck_h5r *r);

/* The file descriptor for raw reads (a second read-only descriptor on the file). */
int ck_h5r_fd(const struct ck_h5r *r);

/* 1 if the file starts with the HDF5 signature (at 0, 512, 1024, ...). */
int ck_h5_is_hdf5(const char *path);

#endif
