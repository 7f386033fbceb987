/* TensorFlow Saver V2 tensor bundles: PREFIX.index plus PREFIX.data-NNNNN-of-NNNNN.
 * The reader streams tensor bytes in bounded chunks and verifies every checksum;
 * the writer streams them out and finishes atomically. */
#ifndef CK_BUNDLE_H
#define CK_BUNDLE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define CK_MAX_RANK 254          /* TensorShape::MaxDimensions */
#define CK_MAX_SHARDS 100000

/* One stored slice of a partitioned variable: start/length per dimension (-1 = whole).
 * Both arrays are rank long and share one allocation, owned by start. */
struct ck_slice {
  int64_t *start;
  int64_t *length; /* = start + rank */
};

/* One index entry. */
struct ck_entry {        /* fields ordered without padding: indexes hold 10^5 of these */
  uint8_t *key;          /* NUL-terminated; slice keys may hold NUL bytes, see key_len */
  size_t key_len;
  int64_t *dims;
  uint64_t nelem;
  uint64_t offset;
  uint64_t size;
  size_t nslices;        /* > 0: a partitioned variable assembled from slice entries */
  struct ck_slice *slices;
  struct ck_entry *full; /* for slice entries: the partitioned variable */
  struct ck_slice slice; /* for slice entries: which part it holds */
  int dtype;             /* base DataType (any *_REF stripped) */
  int rank;
  int shard;
  uint32_t crc32c;       /* masked, as stored */
  int is_slice;          /* this entry is the data of one slice of `full` */
};

struct ck_bundle;

#define CK_BUNDLE_INDEX_ONLY 1 /* open without data files (no data reads) */

/* Open a checkpoint: a prefix, a PREFIX.index or data file name, or a directory
 * (its `checkpoint` file's latest, else its single *.index). */
int ck_bundle_open(const char *path, int flags, struct ck_bundle **out, struct ck_err *err);

/* Close and free (accepts NULL). */
void ck_bundle_close(struct ck_bundle *b);

/* The resolved prefix ("dir/model.ckpt-100"). */
const char *ck_bundle_prefix(const struct ck_bundle *b);

/* num_shards from the header. */
int ck_bundle_num_shards(const struct ck_bundle *b);

/* Header version fields. */
void ck_bundle_version(const struct ck_bundle *b, int *producer, int *min_consumer);

/* Number of entries in key order, slice entries included, header excluded. */
size_t ck_bundle_count(const struct ck_bundle *b);

/* Entry i in key order. */
const struct ck_entry *ck_bundle_entry(const struct ck_bundle *b, size_t i);

/* Number of entries holding data (everything except partitioned-variable headers). */
size_t ck_bundle_data_count(const struct ck_bundle *b);

/* Data entry i in data-file order (shard, then offset): the order they were written. */
const struct ck_entry *ck_bundle_data_entry(const struct ck_bundle *b, size_t i);

/* Look up an entry by key. */
const struct ck_entry *ck_bundle_find(const struct ck_bundle *b, const void *key, size_t klen);

/* Index-file statistics: data blocks and snappy-compressed blocks. */
void ck_bundle_index_stats(const struct ck_bundle *b, unsigned *data_blocks, unsigned *snappy_blocks);

/* Path of shard i's data file (owned by b). */
const char *ck_bundle_shard_path(const struct ck_bundle *b, int shard);

/* pread len stored bytes of entry e starting at byte off within it. */
int ck_bundle_read(struct ck_bundle *b, const struct ck_entry *e, uint64_t off, void *buf,
                   size_t len, struct ck_err *err);

/* Receives the stored bytes of a tensor in order, in chunks of at most the buffer size. */
typedef int (*ck_chunk_fn)(void *ctx, const void *data, size_t len);

/* Stream the stored bytes of a data entry through buf, verifying its crc32c
 * (a mismatch is reported after the last chunk). With read-ahead on, entries larger
 * than buf are read a half of it at a time by a thread of their own, the next piece
 * while fn takes the current (ck_read_range). */
int ck_bundle_stream(struct ck_bundle *b, const struct ck_entry *e, void *buf, size_t bufsize,
                     ck_chunk_fn fn, void *ctx, struct ck_err *err);

/* Read ahead in ck_bundle_stream (default off): for callers with a core to spare. */
void ck_bundle_set_read_ahead(struct ck_bundle *b, int on);

/* Verify the checksum of a data entry. */
int ck_bundle_verify(struct ck_bundle *b, const struct ck_entry *e, void *buf, size_t bufsize,
                     struct ck_err *err);

/* Verify every data entry with nthreads threads (each with its own bufsize buffer),
 * largest first. Returns 0 or the first failure (its message in err). */
int ck_bundle_verify_all(struct ck_bundle *b, int nthreads, size_t bufsize, struct ck_err *err);

/* Stream a whole tensor in row-major order: a data entry as stored, or a partitioned
 * variable assembled from its slices (fixed-size dtypes), each slice verified first. */
int ck_bundle_stream_tensor(struct ck_bundle *b, const struct ck_entry *e, void *buf,
                            size_t bufsize, ck_chunk_fn fn, void *ctx, struct ck_err *err);

/* Check that the slices listed by partitioned variable full cover it exactly once
 * (no gap, no overlap; each slice already known to lie inside the tensor). file names
 * the index in messages. CK_EFORMAT when they do not, CK_ELIMIT when the slices are too
 * many for the check (more than a few million corner points). */
int ck_slices_check_cover(const struct ck_entry *full, const char *file, struct ck_err *err);

/* Bytes of the whole tensor of e (for partitioned variables, the assembled size). */
uint64_t ck_entry_tensor_bytes(const struct ck_entry *e);

/* Format dims as "2x3" ("scalar" for rank 0) into buf. */
void ck_entry_shape_str(const struct ck_entry *e, char *buf, size_t len);

/* Format a key for people: printable bytes as is, others as \xNN. Slice keys are
 * shown as "name[start:len,...]". */
void ck_entry_key_str(const struct ck_entry *e, char *buf, size_t len);

/* ---- writer ---- */

/* Maps a key to a shard number (dense from 0). */
typedef int (*ck_shard_fn)(void *ctx, const uint8_t *key, size_t klen);

struct ck_bundle_writer_opts {
  uint64_t max_shard_bytes; /* 0: no limit */
  ck_shard_fn shard_of;     /* overrides max_shard_bytes when set */
  void *shard_ctx;
  size_t buffer_size;       /* per open shard; 0: 1 MiB */
  size_t expected_entries;  /* a hint: the entry table is sized once (no regrowth copies) */
  const char *mark_name;    /* if set, the index gets ckptd's mark (ck_mark_set) naming the */
  const char *mark_id;      /* source and its identity, before it is published; kept by the caller */
  int keep_foreign;         /* never replace a final file without ckptd's mark (ck_publish_rename) */
  int keep_cached;          /* the bundle is read back next (verify): its pages stay cached (ck_wb) */
  int mode, chgrp;          /* ck_set_owner() of every file before it is published */
  unsigned gid;
};

struct ck_bundle_writer;

/* Start writing PREFIX; nothing appears under a final name until finish. */
int ck_bundle_writer_open(const char *prefix, const struct ck_bundle_writer_opts *opts,
                          struct ck_bundle_writer **out, struct ck_err *err);

/* Begin a tensor; its stored bytes follow with append. */
int ck_bundle_writer_begin(struct ck_bundle_writer *w, const void *key, size_t klen, int dtype,
                           int rank, const int64_t *dims, struct ck_err *err);

/* Begin one slice of a partitioned variable of full shape dims (length -1 = whole dim).
 * A slice covering the whole tensor is written as a plain entry, as TensorFlow does. */
int ck_bundle_writer_begin_slice(struct ck_bundle_writer *w, const void *key, size_t klen,
                                 int dtype, int rank, const int64_t *dims, const int64_t *start,
                                 const int64_t *length, struct ck_err *err);

/* Append stored bytes (for strings/variants, TensorFlow's stored layout). */
int ck_bundle_writer_append(struct ck_bundle_writer *w, const void *data, size_t len,
                            struct ck_err *err);

/* End the current tensor: checks its size against dtype and shape, records its crc32c. */
int ck_bundle_writer_end(struct ck_bundle_writer *w, struct ck_err *err);

/* The masked crc32c of the tensor last ended. */
uint32_t ck_bundle_writer_last_crc(const struct ck_bundle_writer *w);

/* Convenience: begin + append + end. */
int ck_bundle_writer_add(struct ck_bundle_writer *w, const void *key, size_t klen, int dtype,
                         int rank, const int64_t *dims, const void *data, size_t len,
                         struct ck_err *err);

/* fsync and rename data files, then the index; fsync the directory. Frees w. */
int ck_bundle_writer_finish(struct ck_bundle_writer *w, struct ck_err *err);

/* Remove every temporary and free w (accepts NULL). */
void ck_bundle_writer_abort(struct ck_bundle_writer *w);

/* Encode n strings in TensorFlow's DT_STRING stored layout into a new buffer. */
int ck_tf_strings_encode(const uint8_t *const *strs, const size_t *lens, size_t n,
                         uint8_t **out, size_t *outlen);

#endif
