/* Small file helpers: full reads and writes, buffered output, paths, durable renames. */
#ifndef CK_FILEIO_H
#define CK_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Write all len bytes (retrying short writes and EINTR). 0 or -errno. */
int ck_write_full(int fd, const void *buf, size_t len);

/* pwrite all len bytes at off. 0 or -errno. */
int ck_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/* pread exactly len bytes at off. 0, -errno, or CK_ETRUNC at end of file. */
int ck_pread_full(int fd, void *buf, size_t len, uint64_t off);

/* fsync the directory holding path (or path itself if it is a directory). */
int ck_fsync_dir(const char *dir);

/* Newly allocated dirname / basename of path ("." for a bare name). */
char *ck_dirname(const char *path);
char *ck_basename(const char *path);

/* Newly allocated "a/b"; b absolute is returned as is. */
char *ck_path_join(const char *a, const char *b);

/* Free a NULL-terminated array of strings and the array (an argv). Accepts NULL. */
void ck_strv_free(char **v);

/* Newly allocated printf result; NULL on allocation failure. */
char *ck_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Temporaries. Every file ckptd writes is first a hidden temporary beside its final
 * name, "<dir>/.<base>.ckptd-tmp.<instance>-<pid>.<n>": <instance> is 8 hex digits
 * naming the writer (a daemon: its host and state_dir; a one-shot tool: its host),
 * <pid> its process. Cleanups remove only their own instance's temporaries whose
 * process is gone, so two daemons sharing a tree (two hosts on NFS, two state_dirs)
 * never remove each other's files. */
struct ck_temp_owner {
  char instance[9]; /* 8 lower-case hex digits and NUL */
  long pid;
};

/* The instance id of this process: the one set by ck_temp_set_instance() (or
 * inherited from it through the environment, CKPTD_INSTANCE), else one derived
 * from the host name. */
const char *ck_temp_instance(void);

/* Set this process's (and its children's) instance id from a text naming the
 * writer (the daemon passes host name and state_dir). */
void ck_temp_set_instance(const char *what);

/* The 8-hex-digit instance tag derived from a text (what ck_temp_set_instance uses). */
void ck_temp_tag_of(const char *what, char out[9]);

/* A temporary name beside final, owned by this instance and process (or, with
 * CKPTD_TEMP_OWNER set to a number, by that: a Slurm job id). */
char *ck_temp_name(const char *final_path);

/* The owner of a file name that ck_temp_name made (the tag after its last
 * ".ckptd-tmp."): 0, or -1 if the name is not one of those. The one definition of
 * the rule: cleanups by a tool, the daemon's executor and its start-up all use it. */
int ck_temp_owner(const char *name, struct ck_temp_owner *o);

/* Remove the regular files of ours in dir that are temporaries of instance
 * `instance` and process pid (any process: pid 0), never following or removing
 * anything else.
 * Returns how many went. */
int ck_temp_remove_pid(const char *dir, const char *instance, long pid);

/* The same, only for temporaries of the final file names that start with base
 * followed by a '.' or nothing (an output's files: "x.h5", or a bundle's
 * "model.ckpt-1.index" and data files for base "model.ckpt-1"). */
int ck_temp_remove_of(const char *dir, const char *base, const char *instance, long pid);

/* A source's identity as outputs record it: "SIZE:MTIME_NS", its files' total
 * size and newest mtime (the daemon's ck_ident, an HDF5 output's ckptd_source_id). */
void ck_source_id_format(uint64_t size, int64_t mtime_ns, char *buf, size_t len);

/* Outputs' marks: the extended attribute "user.ckptd.source" = "NAME SOURCE_ID"
 * (the source's base name and identity), set on an output (the .h5, a bundle's
 * .index) before it is published, so ckptd knows its own outputs from the files
 * themselves. 0 or -errno (-ENOTSUP where the file system has no user xattrs:
 * then the daemon's record alone knows). Never follows a symbolic link. */
#define CK_MARK_XATTR "user.ckptd.source"
int ck_mark_set(const char *path, const char *name, const char *source_id);
int ck_mark_get(const char *path, char *buf, size_t len);

/* Publish tmp as dst (rename). With keep_foreign, never replace a dst that is not
 * ckptd's (it has no ckptd mark: a trainer wrote it while the conversion ran):
 * -EEXIST instead; an absent dst is taken with RENAME_NOREPLACE where the file system
 * has it, so one appearing at the last moment is not replaced either. 0 or -errno. */
int ck_publish_rename(const char *tmp, const char *dst, int keep_foreign);

/* Its failure in words: "appeared during the conversion and is not ckptd's: not
 * replacing it" for -EEXIST, else "rename: " and the errno text. */
const char *ck_publish_error(int rc);

/* Give a file about to be published its mode (0: leave it) and, if chgrp, group gid.
 * 0 or -errno. */
int ck_set_owner(const char *path, int mode, int chgrp, unsigned gid);

/* Create a new file with O_EXCL|O_NOFOLLOW|O_CLOEXEC, mode 0644. fd or -errno. */
int ck_create_excl(const char *path);

/* Writeback pacing of an output written front to back (a file, or one region of it).
 * Each write is handed to writeback at once (sync_file_range SYNC_FILE_RANGE_WRITE),
 * so the final fsync overlaps the writing instead of following it. Everything older
 * than the last CK_WB_STEP bytes is then waited for and dropped from the page cache:
 * at most two steps of a region are dirty or cached at a time (ck_fsync_drop takes
 * the rest when the output is complete), so a conversion does
 * not push a training job's pages out, and the kernel does not throttle it as it
 * would a writer with gigabytes dirty (a 2 GiB copy: 3.2-6.5 s with kicks alone,
 * 2.1-2.6 s paced; docs/performance.md). */
struct ck_wb {
  uint64_t kicked; /* written bytes end here, all handed to writeback */
  uint64_t waited; /* bytes before this are on disk and no longer cached */
  int keep;        /* the output is read back next (verify): only hand it to writeback,
                    * so the reading finds it cached */
  int err;         /* a wait failed: every later call fails with it */
};

#define CK_WB_STEP (8u << 20)

/* Pace a region starting at file offset start (keep: 0). */
void ck_wb_init(struct ck_wb *wb, uint64_t start);

/* The region has been written up to offset end (increasing). 0, or -errno when the
 * bytes waited for did not reach the disk (the error that fsync would have reported;
 * kept: the wait consumed it). */
int ck_wb_wrote(struct ck_wb *wb, int fd, uint64_t end);

/* fsync fd, then, unless keep, drop its pages from the page cache: they are on disk and
 * nobody reads them soon. Regions too small to be paced (tensors under two steps) are
 * left behind by ck_wb; this takes them too. 0 or -errno of the fsync. */
int ck_fsync_drop(int fd, int keep);

/* Buffered sequential writer over an fd that it does not own, paced (ck_wb; the fd's
 * position at the first write is taken as offset 0). */
struct ck_obuf {
  int fd;
  uint8_t *buf;
  size_t cap;
  size_t len;
  uint64_t pos;     /* the file offset after what reached the file (it starts at 0) */
  struct ck_wb wb;
};

/* Set up with a buffer of cap bytes. 0 or -ENOMEM. */
int ck_obuf_init(struct ck_obuf *o, int fd, size_t cap);

/* Append len bytes. 0 or -errno. */
int ck_obuf_append(struct ck_obuf *o, const void *data, size_t len);

/* Leave a hole of len bytes: write out what is buffered, then seek past it. 0 or -errno. */
int ck_obuf_skip(struct ck_obuf *o, uint64_t len);

/* Write out what is buffered. 0 or -errno. */
int ck_obuf_flush(struct ck_obuf *o);

/* Release the buffer (does not close fd). */
void ck_obuf_free(struct ck_obuf *o);

#endif
