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

/* Newly allocated printf result; NULL on allocation failure. */
char *ck_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A temporary name beside final: "<dir>/.<base>.ckptd-tmp.<pid>.<n>". */
char *ck_temp_name(const char *final_path);

/* The pid in a file name that ck_temp_name made (the number after its last
 * ".ckptd-tmp."), or -1 if the name is not one of those. The one definition of the
 * rule: cleanups by a tool, the daemon's executor and its start-up all use it. */
long ck_temp_pid(const char *name);

/* Remove the regular files of ours named "<dir>/.*.ckptd-tmp.<pid>.*" (process
 * pid's temporaries), never following or removing anything else. Returns how
 * many went. */
int ck_temp_remove_pid(const char *dir, long pid);

/* Create a new file with O_EXCL|O_NOFOLLOW|O_CLOEXEC, mode 0644. fd or -errno. */
int ck_create_excl(const char *path);

/* Buffered sequential writer over an fd that it does not own. */
struct ck_obuf {
  int fd;
  uint8_t *buf;
  size_t cap;
  size_t len;
};

/* Set up with a buffer of cap bytes. 0 or -ENOMEM. */
int ck_obuf_init(struct ck_obuf *o, int fd, size_t cap);

/* Append len bytes. 0 or -errno. */
int ck_obuf_append(struct ck_obuf *o, const void *data, size_t len);

/* Write out what is buffered. 0 or -errno. */
int ck_obuf_flush(struct ck_obuf *o);

/* Release the buffer (does not close fd). */
void ck_obuf_free(struct ck_obuf *o);

#endif
