/* LD_PRELOAD for tests/test_verify_fail.sh: a disk that corrupts what it is given. The
 * first write of at least 64 KiB to a ckptd temporary (a name holding ".ckptd-tmp.")
 * reaches the file with one bit flipped; every other write is untouched. So a
 * conversion's output differs from its source in one byte that no checksum computed
 * while writing can see: only reading the output back (--verify) can. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static int flipped;

/* A copy of buf with one bit flipped when fd is a temporary and this is the write to
 * corrupt; NULL otherwise. */
static void *corrupt(int fd, const void *buf, size_t n)
{
  char link[64], path[4096];
  ssize_t len;
  unsigned char *copy;

  if (flipped || n < (64u << 10))
    return NULL;
  snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
  if ((len = readlink(link, path, sizeof(path) - 1)) <= 0)
    return NULL;
  path[len] = 0;
  if (strstr(path, ".ckptd-tmp.") == NULL || (copy = malloc(n)) == NULL)
    return NULL;
  memcpy(copy, buf, n);
  copy[n / 2] ^= 0x10;
  flipped = 1;
  return copy;
}

/* The real call, given a corrupted copy where one is due: write(), or with at, pwrite()
 * at off (pwrite and pwrite64 are one call on 64-bit Linux). */
static ssize_t pass(const char *name, void **real, int fd, const void *buf, size_t n, int at, off64_t off)
{
  void *c = corrupt(fd, buf, n);
  ssize_t rc;

  if (*real == NULL)
    *real = dlsym(RTLD_NEXT, name);
  if (!at)
    rc = ((ssize_t(*)(int, const void *, size_t)) * real)(fd, c ? c : buf, n);
  else
    rc = ((ssize_t(*)(int, const void *, size_t, off64_t)) * real)(fd, c ? c : buf, n, off);
  free(c);
  return rc;
}

static void *real_write, *real_pwrite, *real_pwrite64;

ssize_t write(int fd, const void *buf, size_t n) { return pass("write", &real_write, fd, buf, n, 0, 0); }
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) { return pass("pwrite", &real_pwrite, fd, buf, n, 1, off); }
ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
  return pass("pwrite64", &real_pwrite64, fd, buf, n, 1, off);
}
