/* How an output's bytes reach the disk: a copy of SRC to DST, 4 MiB at a time from the
 * page cache, then fsync, written each of four ways, against `cp` + `sync FILE`
 * (bench/bench_writeback.sh runs and times the rounds):
 *   plain   write, then fsync;
 *   kick    sync_file_range(WRITE) every 8 MiB (what every ckptd writer did before);
 *   wait    the same, also waiting for the 8 MiB before;
 *   paced   ck_wb (common/fileio.c): waiting, and dropping what is on disk.
 * usage: bench_writeback MODE SRC DST. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"

#define PIECE (4u << 20)
#define STEP (8u << 20)

int main(int argc, char **argv)
{
  const char *mode = argc == 4 ? argv[1] : "";
  int kick = !strcmp(mode, "kick"), wait = !strcmp(mode, "wait"), paced = !strcmp(mode, "paced");
  uint64_t pos = 0, kicked = 0, waited = 0;
  struct ck_wb wb;
  uint8_t *buf;
  int in, out, rc = 0;

  if (!kick && !wait && !paced && strcmp(mode, "plain") != 0) {
    fprintf(stderr, "usage: bench_writeback plain|kick|wait|paced SRC DST\n");
    return 2;
  }
  if ((in = open(argv[2], O_RDONLY | O_CLOEXEC)) < 0 ||
      (out = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0 || (buf = malloc(PIECE)) == NULL) {
    perror("bench_writeback");
    return 1;
  }
  ck_wb_init(&wb, 0);
  for (;;) {
    ssize_t n = read(in, buf, PIECE);
    if (n <= 0) {
      rc = n < 0 ? -errno : 0;
      break;
    }
    if ((rc = ck_write_full(out, buf, (size_t)n)) != 0)
      break;
    pos += (uint64_t)n;
    if (paced && (rc = ck_wb_wrote(&wb, out, pos)) != 0)
      break;
    if ((kick || wait) && pos - kicked >= STEP) {
      sync_file_range(out, (off64_t)kicked, (off64_t)(pos - kicked), SYNC_FILE_RANGE_WRITE);
      if (wait && kicked > waited) {
        sync_file_range(out, (off64_t)waited, (off64_t)(kicked - waited),
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
        waited = kicked;
      }
      kicked = pos;
    }
  }
  if (rc != 0 || fsync(out) != 0) {
    fprintf(stderr, "bench_writeback: %s: %s\n", argv[3], strerror(rc ? -rc : errno));
    return 1;
  }
  free(buf);
  close(in);
  close(out);
  return 0;
}
