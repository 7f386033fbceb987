/* ckptd's pure decisions: what a path is (a checkpoint's file, a producer's
 * temporary, nothing of ours), what its output is called, which failures are worth
 * a retry and when, and which checkpoint is "latest". No I/O, no libuv, no clock:
 * tests/test_decide.c drives every rule from a table. */
#ifndef CK_DECIDE_H
#define CK_DECIDE_H

#include <stdint.h>

/* A candidate's kind is its source format: the values are pipeline.h's CK_FMT_*. */
enum { CK_KIND_NONE = 0, CK_KIND_SAVER = 1, CK_KIND_H5 = 2, CK_KIND_TORCH = 3, CK_KIND_SAFETENSORS = 4, CK_KINDS = 5 };

/* 1 if a file name (no directory) is a producer's temporary: TensorFlow's
 * `*.tempstate<digits>` and `*.tmp<hex>` (atomic writes), `*.tmp`, `*.part`, Orbax's
 * `*.orbax-checkpoint-tmp-*`, editors' (`*~`, `*.swp`, `.#*`, `#*#`), NFS's `.nfs*`,
 * ckptd's own `.*.ckptd-tmp.*`, and every hidden name (rsync's `.name.XXXXXX`). */
int ck_decide_temp_file(const char *base);

/* 1 if a directory name is one ckptd never enters: TF2's `<prefix>_temp` and
 * `<prefix>_temp_<32 hex>` save directories, Orbax's `*.orbax-checkpoint-tmp-*`,
 * `*.tmp`, and hidden directories. */
int ck_decide_temp_dir(const char *base);

/* What a file is: CK_KIND_SAVER (PREFIX.index or PREFIX.data-NNNNN-of-NNNNN; *key
 * the prefix), CK_KIND_H5 (*.h5, *.hdf5, *.mdl: Cerebras' PyTorch stack writes HDF5 as
 * .mdl; whether it is HDF5 is the probe's question), CK_KIND_TORCH (*.pt, *.pth, *.bin),
 * CK_KIND_SAFETENSORS (*.safetensors) -- *key the path -- or CK_KIND_NONE. *key is newly
 * allocated (NULL for NONE). */
int ck_decide_classify(const char *path, char **key);

/* The output beside a source of kind `from` converted to format `to` (CK_KIND_*):
 * a bundle PREFIX becomes PREFIX.h5, PREFIX.pt or PREFIX.safetensors; a file NAME.ext
 * becomes the prefix NAME (to a bundle) or NAME with its extension replaced (.h5, .pt,
 * .safetensors). Newly allocated; NULL for from == to or an unknown kind. */
char *ck_decide_output(const char *key, int from, int to);

/* The file whose presence and mark stand for an output: a bundle's PREFIX.index, else
 * the output itself. Newly allocated. */
char *ck_decide_output_file(const char *dst, int to);

/* 1 if the source key (kind) is ckptd's converted copy of the source called
 * `mark_name` beside it (the name ckptd's mark on it records): converting mark_name's
 * directory entry to kind would produce key. Such a file is never a source. */
int ck_decide_converted_copy(const char *key, int kind, const char *mark_name);

/* A direction, FROM-to-TO: "saver-to-h5", "torch-to-safetensors". Static strings;
 * NULL unless from and to are distinct formats. */
const char *ck_decide_dir_name(int from, int to);

/* Parse "FROM-to-TO" (FROM, TO: saver, h5, torch, safetensors). 0, -1 if a name is
 * unknown (*from / *to are 0 for it), -2 if FROM == TO. */
int ck_decide_dir_parse(const char *word, int *from, int *to);

/* The number the durable record stores for a direction: 1 saver-to-h5 and 2
 * h5-to-saver as before four formats, else FROM * 10 + TO. */
int ck_decide_dir_code(int from, int to);

/* Seconds before retry number `attempts` (0-based) of a transient failure:
 * 5 s doubling to 10 min. */
double ck_decide_backoff(int attempts);

/* 1 if a failure code (negative errno or CK_E*) is worth retrying without a change
 * of the source: disk full, I/O errors, a source changing under the job, ... */
int ck_decide_transient(int rc);

/* The global step of a checkpoint prefix: the number after the last '-' of its
 * base name (`model.ckpt-1200` -> 1200), or -1 if it has none. */
int64_t ck_decide_step(const char *prefix);

/* Order for "latest": 1 if checkpoint a (step, mtime) is newer than b. The higher
 * step wins; a tie, or a step-less name on either side, goes by the source's mtime. */
int ck_decide_newer(int64_t step_a, int64_t mtime_a, int64_t step_b, int64_t mtime_b);

/* Why a job failed, as a class for metrics and the blocked/transient split. */
enum {
  CK_REASON_CORRUPT,     /* not a valid checkpoint (CK_EFORMAT, CK_ECHECKSUM, ...) */
  CK_REASON_CRASHED,     /* the worker died (libhdf5 crashed on the file) */
  CK_REASON_UNSUPPORTED, /* valid, but content ckptd does not convert (CK_EUNSUP) */
  CK_REASON_PERMISSION,  /* EACCES, EPERM */
  CK_REASON_READ_ONLY,   /* EROFS */
  CK_REASON_NO_SPACE,    /* ENOSPC, EDQUOT, EFBIG, or under min_free */
  CK_REASON_IO,          /* EIO and other transient errors */
  CK_REASON_CHANGED,     /* the source changed during the conversion */
  CK_REASON_LIMIT,       /* beyond a configured limit (CK_ELIMIT, ENOMEM) */
  CK_REASON_SCHEDULER,   /* the cluster's scheduler failed, refused or lost the job */
  CK_REASON_CANCELLED,   /* someone cancelled the job (scancel) */
  CK_REASON_OTHER,
  CK_REASONS
};

/* The class of a failure code (negative errno or CK_E*); crashed: the worker died. */
int ck_decide_reason(int rc, int crashed);

/* Its label ("corrupt", "no_space", ...). */
const char *ck_decide_reason_name(int reason);

/* 1 if a failure is permanent for the job's surroundings as they are: retrying
 * cannot help until the source, the output directory's permissions or the
 * configuration change (EACCES, EPERM, EROFS, unsupported content). */
int ck_decide_blocked(int rc);

/* The disk guard. A tree's min_free in bytes: `bytes` if set, else `percent` of
 * its file system's size. */
uint64_t ck_decide_min_free(uint64_t bytes, double percent, uint64_t fs_size);

/* 1 if a job needing `need` bytes may start: it leaves at least min_free free. */
int ck_decide_room(uint64_t fs_free, uint64_t need, uint64_t min_free);

/* Which queued job starts next when a worker is free: the highest priority whose
 * tree is not paused and under its own `workers` limit (0: none), the oldest among equals. v[i] is
 * the i-th queued job, oldest first. Returns its index, or -1 if none may start. */
struct ck_pickable {
  int priority;
  int tree_running; /* jobs of its tree running now */
  int tree_limit;   /* its tree's workers, 0: only the global limit */
  int paused;       /* its tree is paused (ckpt ctl pause): it waits */
};
int ck_decide_pick(const struct ck_pickable *v, int n);

#endif
