/* Table writer and reader: many blocks, prefix compression, keys with 0x00/0xff,
 * the exact bytes of a small table, and rejection of out-of-order keys. */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "table.h"
#include "tap.h"
#include "testutil.h"

struct seen {
  int n;
  int bad;
  char prev[64];
};

static void key_of(int i, char *buf, size_t n)
{
  snprintf(buf, n, "layer_%06d/kernel", i);
}

static int visit(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
  struct seen *s = ctx;
  char want[64];

  key_of(s->n, want, sizeof(want));
  if (klen != strlen(want) || memcmp(key, want, klen) != 0 || vlen != 100 || val[0] != (uint8_t)s->n ||
      val[99] != (uint8_t)(s->n * 7))
    s->bad++;
  s->n++;
  return 0;
}

static int open_table(const char *path, struct ck_table **t, int *fd, struct ck_err *err)
{
  struct stat st;

  *fd = open(path, O_RDONLY);
  if (*fd < 0 || fstat(*fd, &st) != 0)
    return -1;
  return ck_table_open_fd(*fd, (uint64_t)st.st_size, path, t, err);
}

int main(void)
{
  char *dir = tu_tmpdir();
  char path[4200];
  struct ck_table_builder *b;
  struct ck_table *t;
  struct ck_err err = { 0 };
  struct seen s = { 0 };
  uint8_t val[100];
  int fd, rc = 0, n = 20000;

  snprintf(path, sizeof(path), "%s/big.index", dir);
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ok(ck_table_builder_new(fd, &b) == 0, "builder created");
  for (int i = 0; i < n && rc == 0; i++) {
    char key[64];
    key_of(i, key, sizeof(key));
    memset(val, 0, sizeof(val));
    val[0] = (uint8_t)i;
    val[99] = (uint8_t)(i * 7);
    rc = ck_table_builder_add(b, key, strlen(key), val, sizeof(val));
  }
  ok(rc == 0, "added %d sorted keys", n);
  ok(ck_table_builder_add(b, "a", 1, "", 0) != 0, "a key out of order is refused");
  ok(ck_table_builder_finish(b) == 0, "table finished");
  ck_table_builder_free(b);
  close(fd);

  rc = open_table(path, &t, &fd, &err);
  ok(rc == 0, "table opens (%s)", err.msg);
  if (rc == 0) {
    ok(ck_table_stats(t)->data_blocks > 5, "%u data blocks of at most 256 KiB", ck_table_stats(t)->data_blocks);
    ok(ck_table_foreach(t, visit, &s, &err) == 0, "walk succeeds");
    ok(s.n == n && s.bad == 0, "all %d entries read back in order with their values (%d bad)", s.n, s.bad);
    ck_table_free(t);
  }
  close(fd);

  /* The smallest table: TensorFlow's bytes for one entry "a" -> "" are known. */
  snprintf(path, sizeof(path), "%s/one.index", dir);
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ck_table_builder_new(fd, &b);
  ck_table_builder_add(b, "a", 1, "", 0);
  ck_table_builder_finish(b);
  ck_table_builder_free(b);
  close(fd);
  {
    size_t len;
    uint8_t *d = tu_read_file(path, &len);
    /* data block: entry (0,1,0,'a') + restart[0] + count 1; trailer; then the
     * empty metaindex (8 bytes + trailer); the index block with key "b" = successor("a"). */
    static const uint8_t head[] = { 0x00, 0x01, 0x00, 'a', 0, 0, 0, 0, 1, 0, 0, 0, 0x00 };
    ok(d && len > 48 && memcmp(d, head, sizeof(head)) == 0, "data block bytes as LevelDB lays them out");
    ok(d && memcmp(d + len - 8, "\x57\xfb\x80\x8b\x24\x75\x47\xdb", 8) == 0, "footer magic");
    ok(d && memmem(d, len, "\x00\x01\x02\x62", 4) != NULL, "index key is the short successor 'b'");
    free(d);
  }

  /* Keys holding 0x00 and 0xff (slice keys do). */
  snprintf(path, sizeof(path), "%s/bin.index", dir);
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ck_table_builder_new(fd, &b);
  rc = ck_table_builder_add(b, "", 0, "h", 1);
  rc |= ck_table_builder_add(b, "\x00\x01", 2, "x", 1);
  rc |= ck_table_builder_add(b, "\x00\xff", 2, "y", 1);
  rc |= ck_table_builder_add(b, "\xff\xff", 2, "z", 1);
  rc |= ck_table_builder_finish(b);
  ck_table_builder_free(b);
  close(fd);
  ok(rc == 0, "binary keys written");
  {
    struct ck_table *bt;
    int bfd;
    int opened = open_table(path, &bt, &bfd, &err) == 0;
    ok(opened, "binary-key table opens");
    if (opened) {
      ok(ck_table_stats(bt)->data_blocks == 1, "one data block");
      ck_table_free(bt);
    }
    close(bfd);
  }

  tu_rmtree(dir);
  free(dir);
  return tap_done();
}
