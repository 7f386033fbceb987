/* Prints what the torch reader makes of torch.save files, in tests/torch_gen.py's
 * expected.tsv format (T rows: name dtype shape CRC-32 (zlib's polynomial) of the streamed bytes; V rows:
 * values), plus S (spec) and K (skipped) rows. -b BYTES sets the stream buffer.
 * Usage: torch_dump [-b BYTES] FILE... */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libdeflate.h>

#include "fileio.h"
#include "pipeline.h"
#include "torch_dtype.h"

struct acc {
  uint32_t crc;
  uint64_t n;
};

static int add(void *ctx, const void *data, size_t len)
{
  struct acc *a = ctx;

  a->crc = libdeflate_crc32(a->crc, data, len);
  a->n += len;
  return 0;
}

static void print_value(const char *file, const struct ck_value *v)
{
  uint64_t bits;

  switch (v->kind) {
  case CK_VAL_NONE: printf("V\t%s\t%s\tnone\t-\n", file, v->name); break;
  case CK_VAL_BOOL: printf("V\t%s\t%s\tbool\t%" PRId64 "\n", file, v->name, v->i); break;
  case CK_VAL_INT: printf("V\t%s\t%s\tint\t%" PRId64 "\n", file, v->name, v->i); break;
  case CK_VAL_FLOAT:
    memcpy(&bits, &v->f, 8);
    printf("V\t%s\t%s\tfloat\t%016" PRIx64 "\n", file, v->name, bits);
    break;
  default: printf("V\t%s\t%s\tstr\t%s\n", file, v->name, v->s); break;
  }
}

static int dump(const char *path, size_t bufsize)
{
  struct ck_source *s = NULL;
  struct ck_err err = { 0 };
  char *file = ck_basename(path);
  void *buf = malloc(bufsize);
  int rc = ck_torch_source_open(path, 64 << 20, &s, &err);

  for (size_t i = 0; rc == 0 && i < s->count; i++) {
    struct ck_tinfo t;
    struct acc a = { 0, 0 };
    s->ops->info(s, i, &t);
    if ((rc = s->ops->stream(s, i, buf, bufsize, add, &a, &err)) != 0)
      break;
    if (a.n != t.nbytes) {
      fprintf(stderr, "%s: %s: streamed %" PRIu64 " bytes, info says %" PRIu64 "\n", path, t.name, a.n, t.nbytes);
      rc = 1;
    }
    printf("T\t%s\t%s\t%s\t", file, t.name, ck_torch_dtype_by_tf(t.dtype)->dtype);
    for (int d = 0; d < t.rank; d++)
      printf("%s%" PRId64, d ? "," : "", t.dims[d]);
    printf("\t%08" PRIx32 "\n", a.crc);
  }
  for (size_t i = 0; rc == 0 && i < s->nvalues; i++)
    print_value(file, &s->values[i]);
  for (size_t i = 0; rc == 0 && i < s->nskipped; i++)
    printf("K\t%s\t%s\n", file, s->skipped[i]);
  if (rc == 0)
    printf("S\t%s\t%s\n", file, s->spec ? s->spec : "null");
  if (rc < 0)
    fprintf(stderr, "%s (%s)\n", err.msg, ck_strerror(rc));
  if (s)
    s->ops->close(s);
  free(buf);
  free(file);
  return rc;
}

int main(int argc, char **argv)
{
  size_t bufsize = 1 << 20;
  int i = 1, rc = 0;

  if (argc == 1) { /* run by `make check` as one of check_PROGRAMS: a tool, not a test */
    printf("1..0 # SKIP torch_dump is the tool tests/test_torch_files.sh runs\n");
    return 0;
  }
  if (argc > 2 && strcmp(argv[1], "-b") == 0) {
    bufsize = (size_t)strtoull(argv[2], NULL, 0);
    i = 3;
  }
  for (; i < argc; i++)
    if (dump(argv[i], bufsize) != 0)
      rc = 1;
  return rc;
}
