/* ck_read_range: every byte of the range reaches fn once, in order, in pieces no larger
 * than the buffer (a half of it when read ahead), for ranges around the buffer's size,
 * with and without the reader thread (and with halves too small for it); fn's error
 * stops it at once; a read past the end of the file is an error naming where, after
 * the pieces before it. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "fileio.h"
#include "readahead.h"
#include "tap.h"
#include "testutil.h"

#define FILE_BYTES 400000u

struct seen {
  const uint8_t *file; /* the file's bytes */
  uint64_t off;        /* where the next piece must start */
  size_t max_piece;
  int calls, fail_at;  /* fail_at: return -42 on this call (1-based; 0: never) */
  int wrong;
};

static int take(void *ctx, const void *data, size_t n)
{
  struct seen *s = ctx;

  s->calls++;
  if (n == 0 || n > s->max_piece || memcmp(data, s->file + s->off, n) != 0)
    s->wrong = 1;
  s->off += n;
  return s->calls == s->fail_at ? -42 : 0;
}

int main(void)
{
  static const struct {
    uint64_t off, len;
    size_t bufsize;
    int threads;
  } cases[] = {
    { 0, 0, 16384, 2 },          /* nothing */
    { 7, 1000, 16384, 2 },       /* within one buffer: no thread */
    { 0, 16384, 16384, 2 },      /* exactly one buffer */
    { 0, 16385, 16384, 2 },      /* just over: read ahead in halves */
    { 3, 399997, 16384, 2 },     /* to the end of the file, odd start */
    { 100, 200000, 16383, 2 },   /* odd buffer: halves of 8191 */
    { 100, 200000, 16384, 1 },   /* one thread: in buffer-sized pieces */
    { 0, 50000, 8191, 2 },       /* halves under CK_READ_AHEAD_MIN: serial */
    { 0, 10000, 1, 2 },          /* one byte at a time: serial */
  };
  char *dir = tu_tmpdir(), path[4200];
  uint8_t *file = malloc(FILE_BYTES), *buf = malloc(16384);
  int fd;

  for (unsigned i = 0; i < FILE_BYTES; i++)
    file[i] = (uint8_t)(i * 131u + (i >> 9));
  snprintf(path, sizeof(path), "%s/f", dir);
  fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ok(fd >= 0 && ck_pwrite_full(fd, file, FILE_BYTES, 0) == 0, "a file of %u bytes", FILE_BYTES);

  for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
    struct seen s = { .file = file, .off = cases[c].off };
    uint64_t bad = 0;
    int ahead = cases[c].threads > 1 && cases[c].len > cases[c].bufsize && cases[c].bufsize / 2 >= CK_READ_AHEAD_MIN;
    int rc;
    s.max_piece = ahead ? cases[c].bufsize / 2 : cases[c].bufsize;
    rc = ck_read_range(fd, cases[c].off, cases[c].len, buf, cases[c].bufsize, cases[c].threads, take, &s, &bad);
    ok(rc == 0 && !s.wrong && s.off == cases[c].off + cases[c].len && bad == UINT64_MAX &&
           (uint64_t)s.calls == (cases[c].len + s.max_piece - 1) / s.max_piece,
       "[%llu, +%llu) through %zu bytes, %d thread(s): every byte once, in order, in pieces of %zu (%d calls)",
       (unsigned long long)cases[c].off, (unsigned long long)cases[c].len, cases[c].bufsize, cases[c].threads,
       s.max_piece, s.calls);
  }

  for (int threads = 1; threads <= 2; threads++) {
    struct seen s = { .file = file, .max_piece = 16384, .fail_at = 3 };
    uint64_t bad = 0;
    int rc = ck_read_range(fd, 0, 200000, buf, 16384, threads, take, &s, &bad);
    ok(rc == -42 && s.calls == 3 && bad == UINT64_MAX && !s.wrong,
       "%d thread(s): fn's error is returned and fn is not called again (%d calls)", threads, s.calls);
  }

  for (int threads = 1; threads <= 2; threads++) {
    struct seen s = { .file = file, .off = 350000, .max_piece = 16384 };
    uint64_t bad = 0;
    int rc = ck_read_range(fd, 350000, 80000, buf, 16384, threads, take, &s, &bad);
    uint64_t piece = threads > 1 ? 8192 : 16384;
    ok(rc == CK_ETRUNC && bad == 350000 + (FILE_BYTES - 350000) / piece * piece && s.off == bad && !s.wrong,
       "%d thread(s): a range past the end fails where the short piece starts (%llu), after the whole pieces",
       threads, (unsigned long long)bad);
  }

  close(fd);
  unlink(path);
  tu_rmtree(dir);
  free(dir);
  free(file);
  free(buf);
  return tap_done();
}
