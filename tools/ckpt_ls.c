/* ckpt ls: every tensor of a checkpoint, as text, TSV or JSON. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle.h"
#include "ckpt_src.h"
#include "cli.h"
#include "convert.h"
#include "convert_internal.h"
#include "crc32c.h"
#include "dtype.h"
#include "fileio.h"
#include "h5.h"
#include "isolate.h"
#include "pipeline.h"
#include "synth.h"
#include "tensor_crc.h"

/* The shortest %g that reads back as v (a static buffer). */
static const char *fmt_double(double v)
{
  static char buf[40];

  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, sizeof(buf), "%.*g", prec, v);
    if (strtod(buf, NULL) == v)
      break;
  }
  return buf;
}

/* A non-tensor value, as JSON (json) or for people. */
static void value_print(const struct ck_value *v, int json)
{
  switch (v->kind) {
  case CK_VAL_NONE: printf(json ? "null" : "None"); break;
  case CK_VAL_BOOL: printf(json ? (v->i ? "true" : "false") : (v->i ? "True" : "False")); break;
  case CK_VAL_INT: printf("%" PRId64, v->i); break;
  case CK_VAL_FLOAT:
    if (json && !(v->f == v->f && v->f - v->f == 0))
      printf("null"); /* JSON has no NaN or infinity */
    else
      printf(strchr(fmt_double(v->f), '.') || strpbrk(fmt_double(v->f), "eEni") ? "%s" : "%s.0",
             fmt_double(v->f));
    break;
  default: ckpt_json_str((const uint8_t *)v->s, v->slen); break;
  }
}

static void ls_row(const char *format, const struct tinfo *t, int first)
{
  char shape[256], name[1024], bytes[32];

  ckpt_shape_str(t, shape, sizeof(shape));
  ckpt_name_str(t, name, sizeof(name));
  snprintf(bytes, sizeof(bytes), "%" PRId64, t->bytes);
  if (strcmp(format, "text") == 0) {
    printf("%-60s %-12s %-20s %12s%s\n", name, ck_dtype_name(t->dtype), shape, t->bytes < 0 ? "-" : bytes,
           t->e && t->e->nslices ? " (partitioned)" : "");
  } else if (strcmp(format, "tsv") == 0) {
    printf("%s\t%s\t%s\t%s\t%d\t%" PRIu64 "\t%s%08x\n", name, ck_dtype_name(t->dtype), shape, bytes, t->shard,
           t->offset, t->has_crc ? "" : "-", t->has_crc ? t->crc : 0);
  } else {
    printf("%s\n  {\"name\": ", first ? "" : ",");
    ckpt_json_str(t->name, t->nlen);
    printf(", \"dtype\": \"%s\", \"shape\": [", ck_dtype_name(t->dtype));
    for (int d = 0; d < t->rank; d++)
      printf("%s%" PRId64, d ? ", " : "", t->dims[d]);
    printf("], \"bytes\": %s, \"shard\": %d, \"offset\": %" PRIu64 ", \"crc32c\": ", bytes, t->shard, t->offset);
    if (t->has_crc)
      printf("%u}", t->crc);
    else
      printf("null}");
  }
}

struct ls_args {
  const char *path;
  const char *format;
};

static int ls_body(void *arg)
{
  const struct ls_args *a = arg;
  const char *format = a->format;
  struct src s;
  struct ck_err err = { 0 };
  int first = 1;
  uint64_t total = 0;
  size_t shown = 0;

  if (ckpt_src_open(&s, a->path, 1, &err) != 0) {
    fprintf(stderr, "ckpt: %s\n", err.msg);
    return CK_EXIT_FAIL;
  }
  if (strcmp(format, "tsv") == 0)
    printf("name\tdtype\tshape\tbytes\tshard\toffset\tcrc32c\n");
  if (strcmp(format, "json") == 0) {
    printf("{\"path\": ");
    ckpt_json_str((const uint8_t *)a->path, strlen(a->path));
    printf(", \"format\": \"%s\", \"tensors\": [", ckpt_src_format(&s));
  }
  for (size_t i = 0; i < ckpt_src_count(&s); i++) {
    struct tinfo t;
    if (!ckpt_src_tensor(&s, i, &t))
      continue;
    ls_row(format, &t, first);
    first = 0;
    total += t.bytes > 0 ? (uint64_t)t.bytes : 0;
    shown++;
  }
  if (strcmp(format, "json") == 0) {
    printf("\n], \"skipped\": [");
    for (size_t i = 0; s.r && i < ck_h5r_skipped_count(s.r); i++) {
      printf("%s", i ? ", " : "");
      ckpt_json_str((const uint8_t *)ck_h5r_skipped(s.r, i), strlen(ck_h5r_skipped(s.r, i)));
    }
    for (size_t i = 0; s.p && i < s.p->nskipped; i++) {
      printf("%s", i ? ", " : "");
      ckpt_json_str((const uint8_t *)s.p->skipped[i], strlen(s.p->skipped[i]));
    }
    printf("], \"values\": [");
    for (size_t i = 0; s.p && i < s.p->nvalues; i++) {
      printf("%s{\"name\": ", i ? ", " : "");
      ckpt_json_str((const uint8_t *)s.p->values[i].name, strlen(s.p->values[i].name));
      printf(", \"value\": ");
      value_print(&s.p->values[i], 1);
      printf("}");
    }
    printf("]}\n");
  } else if (strcmp(format, "text") == 0) {
    for (size_t i = 0; s.r && i < ck_h5r_skipped_count(s.r); i++)
      printf("skipped: %s\n", ck_h5r_skipped(s.r, i));
    for (size_t i = 0; s.p && i < s.p->nskipped; i++)
      printf("skipped: %s\n", s.p->skipped[i]);
    for (size_t i = 0; s.p && i < s.p->nvalues; i++) {
      printf("value: %s = ", s.p->values[i].name);
      value_print(&s.p->values[i], 0);
      printf("\n");
    }
    if (s.p)
      printf("%zu tensors, %" PRIu64 " bytes (%s)\n", shown, total, ckpt_src_format(&s));
    else if (s.b)
      printf("%zu tensors, %" PRIu64 " bytes, %d shard(s)\n", shown, total, ck_bundle_num_shards(s.b));
    else
      printf("%zu tensors, %" PRIu64 " bytes of fixed-size data (HDF5)\n", shown, total);
  }
  ckpt_src_close(&s);
  return 0;
}

int ck_cmd_ls(int argc, char **argv)
{
  static const struct option opts[] = { { "format", required_argument, NULL, 'f' },
                                        { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
  struct ls_args a = { NULL, "text" };
  int c;

  while ((c = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
    if (c == 'f')
      a.format = optarg;
    else {
      ckpt_usage(c == 'h' ? stdout : stderr);
      return c == 'h' ? 0 : CK_EXIT_USAGE;
    }
  }
  if (optind + 1 != argc || (strcmp(a.format, "text") && strcmp(a.format, "tsv") && strcmp(a.format, "json"))) {
    ckpt_usage(stderr);
    return CK_EXIT_USAGE;
  }
  a.path = argv[optind];
  ck_h5_set_walkers(2); /* an .h5's big groups listed by two processes */
  return ck_isolate_run(ls_body, &a, a.path, NULL);
}
