/* Writeback pacing (ck_wb, ck_obuf): what was written is on disk and out of the page
 * cache except the last step, or all cached with keep; a region paced from an offset;
 * holes; a descriptor that cannot be paced. The bytes are read back every time. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "fileio.h"
#include "tap.h"
#include "testutil.h"

#define MIB (1u << 20)
/* Filesystems whose pages live in the page cache, written back by sync_file_range:
 * ext4, xfs, btrfs. Elsewhere (tmpfs, overlayfs, NFS, ZFS's own cache) what is cached
 * after pacing is not ours to check. */
static int pages_are_ours(long type)
{
  return type == 0xEF53 || type == 0x58465342 || type == (long)0x9123683E;
}

static uint8_t byte_at(uint64_t off)
{
  return (uint8_t)(off * 2654435761u >> 13);
}

static void fill(uint8_t *p, size_t n, uint64_t off)
{
  for (size_t i = 0; i < n; i++)
    p[i] = byte_at(off + i);
}

/* Pages of [from, to) in the page cache, or -1. */
static long resident(int fd, uint64_t from, uint64_t to)
{
  long page = sysconf(_SC_PAGESIZE), n = 0;
  size_t len = (size_t)(to - from), pages = (len + (size_t)page - 1) / (size_t)page;
  unsigned char *vec = malloc(pages);
  void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t)from);

  if (m == MAP_FAILED || vec == NULL || mincore(m, len, vec) != 0)
    n = -1;
  for (size_t i = 0; n >= 0 && i < pages; i++)
    n += vec[i] & 1;
  if (m != MAP_FAILED)
    munmap(m, len);
  free(vec);
  return n;
}

/* The file holds byte_at(off) at [from, to) (zeros elsewhere are not checked). */
static int holds(int fd, uint64_t from, uint64_t to)
{
  uint8_t *got = malloc(MIB), *want = malloc(MIB);
  int same = got && want;

  for (uint64_t off = from; same && off < to; off += MIB) {
    size_t n = to - off < MIB ? (size_t)(to - off) : MIB;
    fill(want, n, off);
    same = ck_pread_full(fd, got, n, off) == 0 && memcmp(got, want, n) == 0;
  }
  free(got);
  free(want);
  return same;
}

/* 40 MiB through a buffer of 1 MiB, in 3 MiB + 1 byte appends. */
static int write_obuf(const char *path, int keep, struct ck_obuf *o)
{
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), rc = 0;
  uint8_t *p = malloc(3 * MIB + 1);

  if (fd < 0 || p == NULL || ck_obuf_init(o, fd, MIB) != 0) {
    free(p);
    return -1;
  }
  o->wb.keep = keep;
  for (uint64_t off = 0; rc == 0 && off < 40 * MIB; off += 3 * MIB + 1) {
    size_t n = 40 * MIB - off < 3 * MIB + 1 ? (size_t)(40 * MIB - off) : 3 * MIB + 1;
    fill(p, n, off);
    rc = ck_obuf_append(o, p, n);
  }
  if (rc == 0)
    rc = ck_obuf_flush(o);
  ck_obuf_free(o);
  free(p);
  if (rc != 0 || fsync(fd) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int main(void)
{
  char *dir = tu_tmpdir(), path[4200];
  struct statfs sf;
  struct ck_obuf o;
  int fd, drops;

  snprintf(path, sizeof(path), "%s/out", dir);
  drops = statfs(dir, &sf) == 0 && pages_are_ours((long)sf.f_type);

  /* paced: only the newest steps stay cached */
  fd = write_obuf(path, 0, &o);
  {
    long old = fd >= 0 && o.wb.waited > 0 ? resident(fd, 0, o.wb.waited) : -1; /* before reading it back */
    ok(o.pos == 40 * MIB && o.wb.kicked == 40 * MIB, "every byte was handed to writeback");
    ok(o.wb.waited % 4096 == 0 && o.wb.waited > 0 && o.pos - o.wb.waited < 2 * CK_WB_STEP,
       "everything but the last two steps at most was waited for (%llu MiB)", (unsigned long long)(o.wb.waited / MIB));
    if (drops) /* (a few pages of slack) */
      ok(old >= 0 && old <= (long)(o.wb.waited / 4096 / 20), "and dropped from the page cache (%ld pages of it cached)", old);
    else
      ok(1, "# SKIP %s is not ext4, xfs or btrfs: what it caches is not ours to check", dir);
  }
  if (drops) {
    long left = fd >= 0 && ck_fsync_drop(fd, 0) == 0 ? resident(fd, 0, 40 * MIB) : -1;
    ok(left >= 0 && left <= (long)(40 * MIB / 4096 / 20), "ck_fsync_drop takes the last steps too (%ld pages left)", left);
  } else {
    ok(1, "# SKIP %s is not ext4, xfs or btrfs: what it caches is not ours to check", dir);
  }
  ok(fd >= 0 && holds(fd, 0, 40 * MIB), "40 MiB through the paced buffer read back the same");
  close(fd);

  /* keep: the output is read back next, so nothing is waited for or dropped */
  fd = write_obuf(path, 1, &o);
  {
    long cached = fd >= 0 ? resident(fd, 0, 40 * MIB) : -1;
    ok(o.wb.waited == 0 && o.wb.kicked == 40 * MIB, "with keep everything is handed to writeback and nothing waited for");
    long all = (long)(40 * MIB / (uint64_t)sysconf(_SC_PAGESIZE));
    if (drops) /* (reclaim may take a few) */
      ok(cached >= all * 9 / 10, "and it stays cached (%ld of %ld pages)", cached, all);
    else
      ok(1, "# SKIP %s is not ext4, xfs or btrfs: what it caches is not ours to check", dir);
  }
  ok(fd >= 0 && holds(fd, 0, 40 * MIB), "and reads back the same");
  close(fd);

  /* a region of a file, paced from an unaligned offset with pwrite (tensorflow-to-h5's
   * copy threads): what is waited for ends on a page boundary */
  {
    const uint64_t start = 5 * MIB + 3, len = 20 * MIB;
    struct ck_wb wb;
    uint8_t *p = malloc(MIB);
    int rc = 0;
    fd = open(path, O_RDWR | O_TRUNC | O_CLOEXEC);
    ck_wb_init(&wb, start);
    for (uint64_t off = start; p && fd >= 0 && rc == 0 && off < start + len; off += MIB) {
      fill(p, MIB, off);
      if ((rc = ck_pwrite_full(fd, p, MIB, off)) == 0)
        rc = ck_wb_wrote(&wb, fd, off + MIB);
    }
    ok(p && fd >= 0 && rc == 0 && holds(fd, start, start + len), "a region written from offset 5 MiB + 3 reads back");
    ok(wb.waited % 4096 == 0 && wb.waited > start && start + len - wb.waited < 2 * CK_WB_STEP,
       "what was waited for ends on a page, within two steps of the end (%llu)", (unsigned long long)wb.waited);
    free(p);
    close(fd);
  }

  /* holes (torch's zip writer skips zero runs) keep the offsets right */
  {
    static const uint8_t z[4096];
    uint8_t *p = malloc(MIB);
    int rc;
    fd = open(path, O_RDWR | O_TRUNC | O_CLOEXEC);
    rc = p && fd >= 0 ? ck_obuf_init(&o, fd, 64 << 10) : -1;
    for (uint64_t off = 0; rc == 0 && off < 24 * MIB; off += 2 * MIB) { /* 1 MiB written, 1 MiB hole */
      fill(p, MIB, off);
      if ((rc = ck_obuf_append(&o, p, MIB)) == 0)
        rc = ck_obuf_skip(&o, MIB);
    }
    if (rc == 0 && (rc = ck_obuf_append(&o, p, 1)) == 0)
      rc = ck_obuf_flush(&o);
    ok(rc == 0 && o.pos == 24 * MIB + 1 && holds(fd, 22 * MIB, 23 * MIB), "after holes the position is the file's");
    ok(rc == 0 && ck_pread_full(fd, p, sizeof(z), 23 * MIB) == 0 && memcmp(p, z, sizeof(z)) == 0,
       "and a hole reads as zeros");
    ok(o.wb.kicked == o.pos && o.wb.waited > 0 && o.pos - o.wb.waited < 2 * CK_WB_STEP,
       "pacing follows the file offsets (waited %llu MiB)", (unsigned long long)(o.wb.waited / MIB));
    ck_obuf_free(&o);
    free(p);
    close(fd);
  }

  /* a descriptor that cannot be paced (a pipe): only a hint, not an error */
  {
    int pfd[2];
    struct ck_wb wb;
    ck_wb_init(&wb, 0);
    ok(pipe(pfd) == 0 && ck_wb_wrote(&wb, pfd[1], 17 * MIB) == 0 && ck_wb_wrote(&wb, pfd[1], 34 * MIB) == 0,
       "a pipe is written without pacing errors");
    close(pfd[0]);
    close(pfd[1]);
  }

  unlink(path);
  tu_rmtree(dir);
  free(dir);
  return tap_done();
}
