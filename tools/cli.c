/* Command-line helpers. */
#include "config.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "fileio.h"
#include "h5.h"
#include "util.h"


void ck_cli_progress(void *ctx, uint64_t done, uint64_t total)
{
  int width = 30, fill;
  double t;
  static double start;
  struct timespec ts;

  (void)ctx;
  if (!isatty(STDERR_FILENO) || total == 0)
    return;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  t = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
  if (start == 0)
    start = t;
  fill = (int)((double)width * (double)done / (double)total);
  if (fill > width)
    fill = width;
  fprintf(stderr, "\r[%.*s%*s] %3d%% %8.1f / %.1f MB %7.1f MB/s", fill, "##############################",
          width - fill, "", (int)(100.0 * (double)done / (double)total), (double)done / 1e6, (double)total / 1e6,
          t > start ? (double)done / (t - start) / 1e6 : 0.0);
  if (done >= total)
    fputs("\r\033[K", stderr);
  fflush(stderr);
}

void ck_cli_summary(const char *src, const char *dst, const struct ck_convert_stats *st)
{
  printf("%s -> %s: %llu tensors, %llu bytes in %.2f s (%.1f MB/s)", src, dst, (unsigned long long)st->tensors,
         (unsigned long long)st->bytes, st->seconds, st->seconds > 0 ? (double)st->bytes / st->seconds / 1e6 : 0.0);
  if (st->skipped)
    printf(", %zu leaves skipped (not tensors, or not holdable by the target)", st->skipped);
  printf("\n");
}

int ck_cli_same_file(const char *a, const char *b)
{
  struct stat sa, sb;

  if (stat(a, &sa) != 0)
    return 0;
  if (stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino)
    return 1;
  return lstat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* name is base + ".index" or base + ".data-..." */
static int is_bundle_file(const char *name, const char *base)
{
  size_t n = strlen(base);

  return strncmp(name, base, n) == 0 && (strcmp(name + n, ".index") == 0 || strncmp(name + n, ".data-", 6) == 0);
}

int ck_cli_each_bundle_file(const char *prefix, int (*fn)(const char *path, void *ctx), void *ctx)
{
  char *dir = ck_dirname(prefix), *base = ck_basename(prefix), *path;
  DIR *d = dir && base ? opendir(dir) : NULL;
  struct dirent *de;
  int rc = 0;

  while (d && rc == 0 && (de = readdir(d)) != NULL) {
    if (!is_bundle_file(de->d_name, base) || (path = ck_path_join(dir, de->d_name)) == NULL)
      continue;
    rc = fn(path, ctx);
    free(path);
  }
  if (d)
    closedir(d);
  free(dir);
  free(base);
  return rc;
}

int ck_cli_conv_option(struct ck_cli_conv *c, int opt, const char *arg, const char *prog)
{
  uint64_t v;

  switch (opt) {
  case 'q': c->quiet = 1; return 1;
  case 'f': c->force = 1; return 1;
  case 'v': c->o.verify = 1; return 1;
  case 'N': c->o.no_checkpoint_file = 1; return 1;
  case 'B':
    if (ck_parse_size(arg, &v) != 0 || v < 4096) {
      fprintf(stderr, "%s: --buffer-size: '%s' is not a size of at least 4K\n", prog, arg);
      return -1;
    }
    c->o.buffer_size = (size_t)v;
    return 1;
  case 'T':
    if ((c->o.threads = atoi(arg)) < 1 || c->o.threads > 16) {
      fprintf(stderr, "%s: --threads: give 1 to 16\n", prog);
      return -1;
    }
    return 1;
  case 'L':
    if (strcmp(arg, "flat") == 0)
      c->o.layout = CK_H5_FLAT;
    else if (strcmp(arg, "nested") == 0)
      c->o.layout = CK_H5_NESTED;
    else {
      fprintf(stderr, "%s: --layout: 'flat' or 'nested'\n", prog);
      return -1;
    }
    return 1;
  case 'C':
    if (ck_h5_parse_compression(arg, &c->o.compression, &c->o.gzip_level) != 0) {
      fprintf(stderr, "%s: --compression: 'none', 'gzip', 'gzip:0'..'gzip:9' or 'lz4'\n", prog);
      return -1;
    }
    return 1;
  case 'K':
    if (ck_parse_size(arg, &v) != 0 || v < 4096 || v > (64u << 20)) {
      fprintf(stderr, "%s: --chunk-size: '%s' is not a size from 4K to 64M\n", prog, arg);
      return -1;
    }
    c->o.chunk_bytes = (size_t)v;
    return 1;
  case 'S':
    if (ck_parse_size(arg, &c->o.max_shard_bytes) != 0 || c->o.max_shard_bytes == 0) {
      fprintf(stderr, "%s: --shard-size: '%s' is not a size\n", prog, arg);
      return -1;
    }
    return 1;
  case 'R': {
    const char *eq = strrchr(arg, '=');
    if (eq == NULL || eq == arg || eq[1] < '0' || eq[1] > '9' || c->o.nrules == 64) {
      fprintf(stderr, "%s: --shard-rule: PATTERN=SHARD, e.g. 'embedding/*=1'\n", prog);
      return -1;
    }
    c->rules[c->o.nrules].pattern = strndup(arg, (size_t)(eq - arg));
    c->rules[c->o.nrules].shard = atoi(eq + 1);
    c->o.nrules++;
    c->o.rules = c->rules;
    return 1;
  }
  default:
    return 0;
  }
}

void ck_cli_conv_free(struct ck_cli_conv *c)
{
  for (size_t i = 0; i < c->o.nrules; i++)
    free((char *)c->rules[i].pattern);
  c->o.nrules = 0;
}
