/* Test helpers. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

const char *tu_fixtures_tf(int *required, const char **why)
{
  static char path[4096], msg[4200];
  const char *base = getenv("CKPTD_FIXTURES");
  const char *req = getenv("CKPTD_REQUIRE_FIXTURES");
  struct stat st;

  snprintf(path, sizeof(path), "%s/tf", base ? base : "../shared/fixtures");
  *required = req && *req && strcmp(req, "0") != 0;
  snprintf(msg, sizeof(msg), "fixtures not found at %s", path);
  *why = msg;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
    return path;
  return NULL;
}

char *tu_tmpdir(void)
{
  const char *t = getenv("TMPDIR");
  char *p = malloc(4096);

  snprintf(p, 4096, "%s/ckptd-test.XXXXXX", t && *t ? t : "/tmp");
  if (mkdtemp(p) == NULL) {
    perror("mkdtemp");
    exit(99);
  }
  return p;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

void tu_rmtree(const char *dir)
{
  nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

uint8_t *tu_read_file(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  uint8_t *buf;
  long n;

  if (f == NULL)
    return NULL;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  buf = malloc((size_t)n + 1);
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  if (buf)
    *len = (size_t)n;
  return buf;
}

int tu_write_file(const char *path, const void *data, size_t len)
{
  FILE *f = fopen(path, "wb");
  int rc = 0;

  if (f == NULL)
    return -1;
  if (len && fwrite(data, 1, len, f) != len)
    rc = -1;
  if (fclose(f) != 0)
    rc = -1;
  return rc;
}

int tu_files_equal(const char *a, const char *b)
{
  size_t la, lb;
  uint8_t *da = tu_read_file(a, &la), *db = tu_read_file(b, &lb);
  int eq = da && db && la == lb && memcmp(da, db, la) == 0;

  free(da);
  free(db);
  return eq;
}

int tu_copy_file(const char *from, const char *to)
{
  size_t n;
  uint8_t *d = tu_read_file(from, &n);
  int rc;

  if (d == NULL)
    return -1;
  rc = tu_write_file(to, d, n);
  free(d);
  return rc;
}

int tu_count_dir(const char *dir)
{
  DIR *d = opendir(dir);
  struct dirent *de;
  int n = 0;

  if (d == NULL)
    return -1;
  while ((de = readdir(d)) != NULL)
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
      n++;
  closedir(d);
  return n;
}

int tu_read_manifest(const char *path, struct tu_manifest_row **rows)
{
  FILE *f = fopen(path, "r");
  char line[4096];
  int n = 0, cap = 0;

  *rows = NULL;
  if (f == NULL)
    return -1;
  while (fgets(line, sizeof(line), f)) {
    struct tu_manifest_row r;
    char *fields[10], *save = NULL, *tok;
    int nf = 0;
    line[strcspn(line, "\r\n")] = 0;
    for (tok = strtok_r(line, "\t", &save); tok && nf < 10; tok = strtok_r(NULL, "\t", &save))
      fields[nf++] = tok;
    if (nf < 9 || strcmp(fields[0], "fixture") == 0)
      continue;
    memset(&r, 0, sizeof(r));
    snprintf(r.fixture, sizeof(r.fixture), "%s", fields[0]);
    snprintf(r.prefix, sizeof(r.prefix), "%s", fields[1]);
    snprintf(r.key, sizeof(r.key), "%s", fields[2]);
    snprintf(r.dtype, sizeof(r.dtype), "%s", fields[3]);
    snprintf(r.shape, sizeof(r.shape), "%s", fields[4]);
    r.shard = atoi(fields[5]);
    r.offset = strtoull(fields[6], NULL, 10);
    r.size = strtoull(fields[7], NULL, 10);
    r.crc = (unsigned)strtoul(fields[8], NULL, 16);
    if (n == cap) {
      cap = cap ? cap * 2 : 256;
      *rows = realloc(*rows, (size_t)cap * sizeof(r));
    }
    (*rows)[n++] = r;
  }
  fclose(f);
  return n;
}

int tu_collect_chunk(void *ctx, const void *data, size_t len)
{
  struct tu_collect *c = ctx;

  memcpy(c->buf + c->len, data, len);
  c->len += len;
  return 0;
}

uint64_t tu_xorshift(uint64_t *state)
{
  *state ^= *state << 13;
  *state ^= *state >> 7;
  *state ^= *state << 17;
  return *state;
}
