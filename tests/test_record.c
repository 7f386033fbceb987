/* The durable record and the hash map under it: append, replay, a torn last line,
 * compaction, lookups by source and by output. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../daemon/hmap.h"
#include "../daemon/record.h"
#include "tap.h"
#include "testutil.h"

int main(void)
{
  char *dir = tu_tmpdir(), path[4200];
  struct ck_err err = { 0 };
  struct ck_record *r;
  struct ck_hmap *m = ck_hmap_new();
  const struct ck_rec *e;
  struct ck_rec a = { "/m/run1/model.ckpt-1", CK_REC_QUEUED, 1, { 1, 2, 3, 4 }, 0, 1.5, "/m/run1/model.ckpt-1.h5", NULL };
  int good = 1, done, failed, pending;

  for (int i = 0; i < 10000; i++) {
    char k[32];
    snprintf(k, sizeof(k), "key%d", i);
    ck_hmap_put(m, k, (void *)(intptr_t)(i + 1), NULL);
  }
  for (int i = 0; i < 10000; i += 2) {
    char k[32];
    snprintf(k, sizeof(k), "key%d", i);
    good &= ck_hmap_del(m, k) == (void *)(intptr_t)(i + 1);
  }
  for (int i = 0; i < 10000; i++) {
    char k[32];
    snprintf(k, sizeof(k), "key%d", i);
    good &= ck_hmap_get(m, k) == (i % 2 ? (void *)(intptr_t)(i + 1) : NULL);
  }
  ok(good && ck_hmap_size(m) == 5000, "hash map: 10,000 puts, 5,000 deletes, every lookup right");
  ck_hmap_free(m);

  ok(ck_record_open(dir, &r, &err) == 0, "a new record opens");
  ck_record_put(r, &a);
  a.status = CK_REC_DONE;
  a.duration_ms = 1234;
  a.error = NULL;
  ck_record_put(r, &a);
  {
    struct ck_rec b = { "/m/bad\twith\ttabs\nand newline", CK_REC_FAILED, 2, { 9, 9, 9, 9 }, 5, 2.0, NULL,
                        "x.index: bad block checksum" };
    ck_record_put(r, &b);
  }
  ck_record_close(r);

  /* a crash in the middle of an append leaves a torn last line */
  snprintf(path, sizeof(path), "%s/record.log", dir);
  {
    int fd = open(path, O_WRONLY | O_APPEND);
    if (write(fd, "v1 2 1 7 7 7", 12) != 12)
      perror("write");
    close(fd);
  }
  ok(ck_record_open(dir, &r, &err) == 0 && ck_record_damaged(r) == 1, "replay skips the torn line");
  e = ck_record_get(r, "/m/run1/model.ckpt-1");
  ok(e && e->status == CK_REC_DONE && e->duration_ms == 1234 && e->id.ino == 2 && e->id.mtime_ns == 4 &&
     !strcmp(e->output, "/m/run1/model.ckpt-1.h5"), "the latest entry per source wins");
  e = ck_record_get(r, "/m/bad\twith\ttabs\nand newline");
  ok(e && e->status == CK_REC_FAILED && !strcmp(e->error, "x.index: bad block checksum"),
     "tabs and newlines in paths survive");
  ok(ck_record_by_output(r, "/m/run1/model.ckpt-1.h5") != NULL && ck_record_by_output(r, "/nope") == NULL,
     "lookup by output");
  ck_record_counts(r, &done, &failed, &pending);
  ok(done == 1 && failed == 1 && pending == 0, "counts: 1 done, 1 failed");
  ck_record_close(r);
  {
    size_t n;
    char *text = (char *)tu_read_file(path, &n);
    int lines = 0;
    for (size_t i = 0; i < n; i++)
      lines += text[i] == '\n';
    ok(lines == 2 && text[n - 1] == '\n', "compaction left one line per source (%d)", lines);
    free(text);
  }
  {
    struct ck_record *r1 = NULL, *r2 = NULL;
    char want[64];
    int rc1 = ck_record_open(dir, &r1, &err), rc2;
    err.msg[0] = 0;
    rc2 = ck_record_open(dir, &r2, &err);
    snprintf(want, sizeof(want), "another ckptd with pid %ld", (long)getpid());
    ok(rc1 == 0 && rc2 == -EBUSY && r2 == NULL && strstr(err.msg, want) && strstr(err.msg, dir),
       "a second open of one state_dir is refused, naming it and the holder: %s", err.msg);
    ck_record_close(r1);
    rc2 = ck_record_open(dir, &r2, &err);
    ok(rc2 == 0, "and allowed once the first is closed");
    ck_record_close(r2);
  }
  tu_rmtree(dir);
  free(dir);
  return tap_done();
}
