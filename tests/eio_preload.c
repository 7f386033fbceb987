/* LD_PRELOAD for tests/test_wb_error.sh: every writeback wait (sync_file_range with
 * SYNC_FILE_RANGE_WAIT_AFTER) fails with EIO, as it does when the disk fails under
 * writeback; starting writeback alone still works. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>

int sync_file_range(int fd, off64_t off, off64_t n, unsigned int flags)
{
  static int (*real)(int, off64_t, off64_t, unsigned int);

  if (flags & SYNC_FILE_RANGE_WAIT_AFTER) {
    errno = EIO;
    return -1;
  }
  if (real == NULL)
    real = (int (*)(int, off64_t, off64_t, unsigned int))dlsym(RTLD_NEXT, "sync_file_range");
  return real ? real(fd, off, n, flags) : 0;
}
