/* Pieces shared by the two conversion directions (not part of the public API). */
#ifndef CK_CONVERT_INTERNAL_H
#define CK_CONVERT_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "bundle.h"
#include "convert.h"
#include "error.h"
#include "h5.h"

/* The buffer budget caps memory; the pieces tensors are streamed in are at most this
 * large, chosen for speed: a 4 MiB piece is still in the CPU's cache when it is written
 * out, a 64 MiB one is not. On a 1 GiB checkpoint (this machine, bench-formats and
 * by hand): h5-to-tensorflow 0.70-1.66 s with 4 MiB against 2.0-2.9 s with 64 MiB,
 * tensorflow-to-h5 0.55-0.82 s against 2.4 s, saver -> safetensors 0.83 s against 2.4 s. */
#define CK_CONVERT_CHUNK (4u << 20)

/* The streaming buffer for a budget: min(budget or the default, CK_CONVERT_CHUNK). */
size_t ck_convert_chunk(const struct ck_convert_opts *o);

/* Seconds on the monotonic clock. */
double ck_now(void);

/* Byte progress, safe to add to from several threads; reports to opts->progress
 * at most every 100 ms, and turns opts->cancel into -ECANCELED. */
struct ck_progress {
  const struct ck_convert_opts *o;
  uint64_t total;
  atomic_uint_fast64_t done;
  atomic_int reporting;     /* a thread is deciding whether to report: others skip */
  uint64_t last_report_ms;  /* (under reporting) */
  uint64_t last_report_done;
};

/* Progress is reported every 100 ms, and every this many bytes (the daemon's disk
 * guard looks at free space on each report: a fast conversion must not outrun it). */
#define CK_PROGRESS_BYTES (16u << 20)

void ck_progress_init(struct ck_progress *p, const struct ck_convert_opts *o);
int ck_progress_add(struct ck_progress *p, uint64_t n);
void ck_progress_done(struct ck_progress *p);

/* Identity of source files, to notice a source that changes under a conversion. */
struct ck_srcfile {
  char *path;
  dev_t dev;
  ino_t ino;
  off_t size;
  long long mtime_ns;
};

struct ck_srcid {
  struct ck_srcfile *f;
  size_t n;
};

int ck_srcid_add(struct ck_srcid *id, const char *path, struct ck_err *err);
int ck_srcid_bundle(struct ck_srcid *id, const struct ck_bundle *b, struct ck_err *err);
int ck_srcid_check(const struct ck_srcid *id, struct ck_err *err);

/* "SIZE:MTIME_NS": the source files' total size and newest mtime, as the daemon
 * identifies a source (ck_ident); written into outputs (ckptd_source_id). */
void ck_srcid_format(const struct ck_srcid *id, char *buf, size_t len);
void ck_srcid_free(struct ck_srcid *id);

/* Masked crc32c of a bundle tensor's bytes in TensorFlow's stored layout (a
 * partitioned variable: of its assembled bytes). */
int ck_tensor_crc_bundle(struct ck_bundle *b, const struct ck_entry *e, void *buf, size_t bufsize, uint32_t *crc,
                         struct ck_err *err);

/* Masked crc32c of an HDF5 tensor's bytes in TensorFlow's stored layout. */
int ck_tensor_crc_h5(struct ck_h5r *r, const struct ck_h5_tensor *t, void *buf, size_t bufsize, uint32_t *crc,
                     struct ck_err *err);

/* A bundle writer's shard_of over opts->rules (ctx: the ck_convert_opts): the first rule
 * whose glob matches the key, else shard 0. */
int ck_rule_shard(void *ctx, const uint8_t *key, size_t klen);

/* 1 if name matches the glob pattern (fnmatch without FNM_PATHNAME: '*' crosses '/'). */
int ck_glob_match(const char *pattern, const char *name);

/* Publish a finished single-file output: ckptd's mark (when mark_name), mode and group
 * from o, ck_publish_rename honouring o->keep_foreign, fsync of the directory. */
int ck_publish_file(const char *tmp, const char *dst, const char *mark_name, const char *mark_id,
                    const struct ck_convert_opts *o, struct ck_err *err);

/* Rename the bundle at prefix to `to` (data files first, the index last), or with to ==
 * NULL remove it; fsync the directory. */
int ck_bundle_move(const char *prefix, const char *to, int keep_foreign, struct ck_err *err);

/* Whether dir's `checkpoint` file can be updated (a malformed one is left alone, with a
 * warning in st), and naming a published bundle in it (a failure is a warning). */
int ck_state_usable(const char *dir, struct ck_convert_stats *st);
void ck_state_update(const char *dir, const char *prefix, struct ck_convert_stats *st);

#endif
