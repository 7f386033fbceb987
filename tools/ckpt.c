/* ckpt: inspect, compare and generate checkpoints of either format.
 *   ckpt ls PATH [--format text|tsv|json]   list every tensor
 *   ckpt verify PATH [--threads N]          verify every checksum
 *   ckpt diff A B                           compare tensor by tensor, across formats
 *   ckpt synth OUT [options]                generate a checkpoint */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bundle.h"
#include "cli.h"
#include "convert.h"
#include "convert_internal.h"
#include "pipeline.h"
#include "tensor_crc.h"
#include "crc32c.h"
#include "dtype.h"
#include "error.h"
#include "fileio.h"
#include "h5.h"
#include "isolate.h"
#include "../daemon/status.h"
#include "ckpt_convert.h"
#include "ckpt_ctl.h"
#include "synth.h"

#define VERIFY_BUF (256u << 10) /* pread + crc in L2-sized pieces: fastest measured */

static void usage(FILE *f)
{
  fprintf(f,
          "usage: ckpt COMMAND [options] ...\n"
          "\n"
          "Inspect, compare and generate checkpoints: TensorFlow Saver bundles and HDF5 files\n"
          "(the format is detected).\n"
          "\n"
          "commands:\n"
          CK_CONVERT_USAGE
          "  ls PATH [--format text|tsv|json]\n"
          "      list every tensor: name, dtype, shape, bytes (tsv/json add shard, offset, crc32c)\n"
          "  verify PATH [--threads N]\n"
          "      read every tensor and check its crc32c (for HDF5: against tf_crc32c where\n"
          "      present); exit 1 naming the first bad one\n"
          "  diff A B\n"
          "      compare names, dtypes, shapes and data of two checkpoints of either format;\n"
          "      exit 0 when equal, 1 listing the differences, 2 when one cannot be read\n"
          CK_CTL_USAGE
          "  status [--json] [--watch[=SECONDS]] [FILE]\n"
          "      print ckptd's status file for people: trees, running jobs with progress, rate\n"
          "      and ETA (a bar per job on a terminal), recent results; --json prints the file\n"
          "      as is; --watch refreshes every SECONDS (2). Default FILE: /run/ckptd/status.json,\n"
          "      else ./var/state/status.json\n"
          "  synth OUT [--format tf|h5] [--size BYTES] [--tensors N] [--spread R]\n"
          "            [--dtypes float32,bfloat16,...] [--seed S] [--shard-size BYTES]\n"
          "            [--fill random|normal]\n"
          "            [--layout flat|nested] [--compression none|gzip[:N]|lz4]\n"
          "      write a synthetic checkpoint: OUT is a TF prefix, or an .h5 file with --format h5\n"
          "      (sizes take K, M, G suffixes; --fill normal: floating-point weights drawn from\n"
          "      N(0, 0.02^2), which compress like trained ones, instead of random bytes)\n"
          "\n"
          "PATH is an .h5 file, a TF checkpoint prefix (dir/model.ckpt-100), its .index file,\n"
          "or a directory: its `checkpoint` file's latest, else its only *.index.\n"
          "Exit codes: 0 success, 1 bad or missing checkpoint (or differences; also a file that\n"
          "crashes libhdf5: the work runs in a child process), 2 usage, 128+N on signal N.\n");
}

static double now(void)
{
  return ck_now();
}

/* ---- a checkpoint of either format ---- */

struct src {
  struct ck_bundle *b;
  struct ck_h5r *r;
  struct ck_source *p; /* PyTorch and safetensors: through the pipeline's source */
};

static int is_h5_path(const char *path)
{
  struct stat st;

  return stat(path, &st) == 0 && S_ISREG(st.st_mode) && ck_h5_is_hdf5(path);
}

static int has_h5_extension(const char *path)
{
  const char *dot = strrchr(path, '.');

  return dot && !strchr(dot, '/') &&
         (strcasecmp(dot, ".h5") == 0 || strcasecmp(dot, ".hdf5") == 0 || strcasecmp(dot, ".mdl") == 0);
}

/* A path named like an HDF5 file that is not one, and is not a TF prefix either:
 * say that, rather than that PATH.index is missing. */
static int not_h5(const char *path, struct ck_err *err)
{
  char *index = ck_asprintf("%s.index", path);
  struct stat st;
  int rc = 0;

  if (index == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  if (access(index, F_OK) != 0) {
    if (stat(path, &st) != 0)
      rc = ck_err_set(err, -errno, "%s: %s", path, strerror(errno));
    else if (S_ISREG(st.st_mode))
      rc = ck_err_set(err, CK_EFORMAT, "%s: not an HDF5 file (no HDF5 signature) and not a TensorFlow checkpoint",
                      path);
  }
  free(index);
  return rc;
}

static int src_open(struct src *s, const char *path, int index_only, struct ck_err *err)
{
  int rc, fmt;

  memset(s, 0, sizeof(*s));
  if (is_h5_path(path))
    return ck_h5r_open(path, &s->r, err);
  if (ck_format_detect(path, &fmt, NULL) == 0 && (fmt == CK_FMT_TORCH || fmt == CK_FMT_SAFETENSORS))
    return ck_source_open(path, fmt, CK_CONVERT_DEFAULT_BUFFER, &s->p, err);
  if (has_h5_extension(path) && (rc = not_h5(path, err)) != 0)
    return rc;
  return ck_bundle_open(path, index_only ? CK_BUNDLE_INDEX_ONLY : 0, &s->b, err);
}

static void src_close(struct src *s)
{
  ck_bundle_close(s->b);
  ck_h5r_close(s->r);
  ck_source_close(s->p);
}

/* One tensor as ls and diff see it. */
struct tinfo {
  const uint8_t *name;
  size_t nlen;
  int dtype;
  int rank;
  const int64_t *dims;
  int64_t bytes; /* -1: variable length */
  int shard;
  uint64_t offset;
  uint32_t crc;
  int has_crc;
  const struct ck_entry *e;
  const struct ck_h5_tensor *t;
  size_t i; /* index in a pipeline source */
};

static size_t src_count(const struct src *s)
{
  return s->p ? s->p->count : s->b ? ck_bundle_count(s->b) : ck_h5r_count(s->r);
}

static const char *src_format(const struct src *s)
{
  return s->p ? ck_format_name(s->p->format) : s->b ? "tf" : "h5";
}

/* Masked crc32c of a pipeline source's tensor in TensorFlow's stored layout, read through
 * the source (which checks the checksums its format stores). */
static int crc_feed(void *ctx, const void *data, size_t len)
{
  return ck_tcrc_update(ctx, data, len) == 0 ? 0 : CK_EFORMAT;
}

static int src_tensor_crc(struct src *s, const struct tinfo *t, void *buf, size_t bufsize, uint32_t *crc,
                          struct ck_err *err)
{
  struct ck_tinfo ti;
  struct ck_tcrc c;
  int rc;

  if (s->b)
    return ck_tensor_crc_bundle(s->b, t->e, buf, bufsize, crc, err);
  if (s->r)
    return ck_tensor_crc_h5(s->r, t->t, buf, bufsize, crc, err);
  s->p->ops->info(s->p, t->i, &ti);
  ck_tcrc_init(&c, ti.dtype, ti.nelem);
  if ((rc = s->p->ops->stream(s->p, t->i, buf, bufsize, crc_feed, &c, err)) != 0) {
    if (rc == CK_EFORMAT && c.why[0]) /* the layout, found by crc_feed (it has no err) */
      ck_err_set(err, rc, "%s: %.*s: %s", s->p->path, (int)t->nlen, t->name, c.why);
    return rc;
  }
  if (ck_tcrc_final(&c, crc) != 0)
    return ck_err_set(err, CK_EFORMAT, "%s: %.*s: %s", s->p->path, (int)t->nlen, t->name, c.why);
  *crc = ck_crc32c_mask(*crc);
  return 0;
}

/* Tensor i; returns 0 for bundle slice entries, which are part of their variable. */
static int src_tensor(const struct src *s, size_t i, struct tinfo *ti)
{
  memset(ti, 0, sizeof(*ti));
  if (s->p) {
    struct ck_tinfo t;
    s->p->ops->info(s->p, i, &t);
    *ti = (struct tinfo){ (const uint8_t *)t.name, t.nlen, t.dtype, t.rank, t.dims, (int64_t)t.nbytes, -1, 0,
                          t.crc32c, t.has_crc, NULL, NULL, i };
    return 1;
  }
  if (s->b) {
    const struct ck_entry *e = ck_bundle_entry(s->b, i);
    if (e->is_slice)
      return 0;
    *ti = (struct tinfo){ e->key, e->key_len, e->dtype, e->rank, e->dims, (int64_t)ck_entry_tensor_bytes(e),
                          e->nslices ? -1 : e->shard, e->offset, e->crc32c, e->nslices == 0, e, NULL, i };
    if (ck_dtype_is_varlen(e->dtype))
      ti->bytes = (int64_t)e->size;
    return 1;
  }
  {
    const struct ck_h5_tensor *t = ck_h5r_tensor(s->r, i);
    size_t es = ck_dtype_size(t->dtype);
    *ti = (struct tinfo){ t->name, t->nlen, t->dtype, t->rank, t->dims, es ? (int64_t)(t->nelem * es) : -1,
                          -1, t->raw_offset, t->tf_crc32c, t->has_crc, NULL, t, i };
    return 1;
  }
}

static void shape_str(const struct tinfo *t, char *buf, size_t len)
{
  size_t n = 0;

  if (t->rank == 0) {
    snprintf(buf, len, "scalar");
    return;
  }
  buf[0] = 0;
  for (int d = 0; d < t->rank && n < len; d++)
    n += (size_t)snprintf(buf + n, len - n, d ? "x%" PRId64 : "%" PRId64, t->dims[d]);
}

static void name_str(const struct tinfo *t, char *buf, size_t len)
{
  size_t n = 0;

  for (size_t i = 0; i < t->nlen && n + 5 < len; i++) {
    uint8_t c = t->name[i];
    if (c >= 0x20 && c < 0x7f && c != '\\')
      buf[n++] = (char)c;
    else
      n += (size_t)snprintf(buf + n, len - n, "\\x%02x", c);
  }
  buf[n] = 0;
}

static void json_str(const uint8_t *s, size_t n)
{
  putchar('"');
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '"' || s[i] == '\\')
      printf("\\%c", s[i]);
    else if (s[i] < 0x20 || s[i] >= 0x7f)
      printf("\\u%04x", s[i]);
    else
      putchar(s[i]);
  }
  putchar('"');
}

/* ---- ls ---- */

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
  default: json_str((const uint8_t *)v->s, v->slen); break;
  }
}

static void ls_row(const char *format, const struct tinfo *t, int first)
{
  char shape[256], name[1024], bytes[32];

  shape_str(t, shape, sizeof(shape));
  name_str(t, name, sizeof(name));
  snprintf(bytes, sizeof(bytes), "%" PRId64, t->bytes);
  if (strcmp(format, "text") == 0) {
    printf("%-60s %-12s %-20s %12s%s\n", name, ck_dtype_name(t->dtype), shape, t->bytes < 0 ? "-" : bytes,
           t->e && t->e->nslices ? " (partitioned)" : "");
  } else if (strcmp(format, "tsv") == 0) {
    printf("%s\t%s\t%s\t%s\t%d\t%" PRIu64 "\t%s%08x\n", name, ck_dtype_name(t->dtype), shape, bytes, t->shard,
           t->offset, t->has_crc ? "" : "-", t->has_crc ? t->crc : 0);
  } else {
    printf("%s\n  {\"name\": ", first ? "" : ",");
    json_str(t->name, t->nlen);
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

  if (src_open(&s, a->path, 1, &err) != 0) {
    fprintf(stderr, "ckpt: %s\n", err.msg);
    return CK_EXIT_FAIL;
  }
  if (strcmp(format, "tsv") == 0)
    printf("name\tdtype\tshape\tbytes\tshard\toffset\tcrc32c\n");
  if (strcmp(format, "json") == 0) {
    printf("{\"path\": ");
    json_str((const uint8_t *)a->path, strlen(a->path));
    printf(", \"format\": \"%s\", \"tensors\": [", src_format(&s));
  }
  for (size_t i = 0; i < src_count(&s); i++) {
    struct tinfo t;
    if (!src_tensor(&s, i, &t))
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
      json_str((const uint8_t *)ck_h5r_skipped(s.r, i), strlen(ck_h5r_skipped(s.r, i)));
    }
    for (size_t i = 0; s.p && i < s.p->nskipped; i++) {
      printf("%s", i ? ", " : "");
      json_str((const uint8_t *)s.p->skipped[i], strlen(s.p->skipped[i]));
    }
    printf("], \"values\": [");
    for (size_t i = 0; s.p && i < s.p->nvalues; i++) {
      printf("%s{\"name\": ", i ? ", " : "");
      json_str((const uint8_t *)s.p->values[i].name, strlen(s.p->values[i].name));
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
      printf("%zu tensors, %" PRIu64 " bytes (%s)\n", shown, total, src_format(&s));
    else if (s.b)
      printf("%zu tensors, %" PRIu64 " bytes, %d shard(s)\n", shown, total, ck_bundle_num_shards(s.b));
    else
      printf("%zu tensors, %" PRIu64 " bytes of fixed-size data (HDF5)\n", shown, total);
  }
  src_close(&s);
  return 0;
}

static int cmd_ls(int argc, char **argv)
{
  static const struct option opts[] = { { "format", required_argument, NULL, 'f' },
                                        { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
  struct ls_args a = { NULL, "text" };
  int c;

  while ((c = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
    if (c == 'f')
      a.format = optarg;
    else {
      usage(c == 'h' ? stdout : stderr);
      return c == 'h' ? 0 : CK_EXIT_USAGE;
    }
  }
  if (optind + 1 != argc || (strcmp(a.format, "text") && strcmp(a.format, "tsv") && strcmp(a.format, "json"))) {
    usage(stderr);
    return CK_EXIT_USAGE;
  }
  a.path = argv[optind];
  ck_h5_set_walkers(2); /* an .h5's big groups listed by two processes */
  return ck_isolate_run(ls_body, &a, a.path, NULL);
}

/* ---- verify ---- */

static int verify_h5(struct ck_h5r *r, const char *path, uint64_t *bytes, size_t *unchecked, struct ck_err *err)
{
  uint8_t *buf = malloc(4u << 20);
  int rc = buf ? 0 : ck_err_set(err, -ENOMEM, "out of memory");

  for (size_t i = 0; rc == 0 && i < ck_h5r_count(r); i++) {
    const struct ck_h5_tensor *t = ck_h5r_tensor(r, i);
    uint32_t crc;
    if ((rc = ck_tensor_crc_h5(r, t, buf, 4u << 20, &crc, err)) != 0)
      break;
    *bytes += t->nelem * ck_dtype_size(t->dtype);
    if (!t->has_crc)
      (*unchecked)++;
    else if (crc != t->tf_crc32c)
      rc = ck_err_set(err, CK_ECHECKSUM, "%s: %s: crc32c %08x, its tf_crc32c attribute says %08x", path, t->path,
                      crc, t->tf_crc32c);
  }
  free(buf);
  return rc;
}

static int count_bytes(void *ctx, const void *data, size_t len)
{
  (void)data;
  *(uint64_t *)ctx += len;
  return 0;
}

/* Read every tensor of a pipeline source: it checks what its format stores. */
static int verify_source(struct ck_source *p, uint64_t *bytes, struct ck_err *err)
{
  uint8_t *buf = malloc(4u << 20);
  int rc = buf ? 0 : ck_err_set(err, -ENOMEM, "out of memory");

  for (size_t i = 0; rc == 0 && i < p->count; i++)
    rc = p->ops->stream(p, i, buf, 4u << 20, count_bytes, bytes, err);
  free(buf);
  return rc;
}

struct verify_args {
  const char *path;
  int threads;
};

static int verify_body(void *arg)
{
  const struct verify_args *a = arg;
  struct src s;
  struct ck_err err = { 0 };
  uint64_t bytes = 0;
  size_t unchecked = 0, n;
  double t0 = now(), dt;
  int rc;

  if (src_open(&s, a->path, 0, &err) != 0) {
    fprintf(stderr, "ckpt: %s\n", err.msg);
    return CK_EXIT_FAIL;
  }
  if (s.p) {
    n = s.p->count;
    rc = verify_source(s.p, &bytes, &err);
  } else if (s.b) {
    n = ck_bundle_data_count(s.b);
    for (size_t i = 0; i < n; i++)
      bytes += ck_bundle_data_entry(s.b, i)->size;
    rc = ck_bundle_verify_all(s.b, a->threads, VERIFY_BUF, &err);
  } else {
    n = ck_h5r_count(s.r);
    rc = verify_h5(s.r, a->path, &bytes, &unchecked, &err);
  }
  dt = now() - t0;
  if (rc != 0)
    fprintf(stderr, "ckpt: %s\n", err.msg);
  else if (s.p)
    printf("%s: %zu tensors, %" PRIu64 " bytes read in %.3f s (%s%s)\n", a->path, n, bytes, dt, src_format(&s),
           s.p->format == CK_FMT_TORCH ? ": every storage's zip CRC-32 checked" : ": the format stores no checksum")
           ;
  else if (s.b)
    printf("%s: %zu entries, %" PRIu64 " bytes verified in %.3f s (%.1f MB/s, %d thread(s), crc32c %s)\n",
           ck_bundle_prefix(s.b), n, bytes, dt, dt > 0 ? (double)bytes / dt / 1e6 : 0.0, a->threads,
           ck_crc32c_impl());
  else
    printf("%s: %zu tensors, %" PRIu64 " bytes read in %.3f s; %zu checked against tf_crc32c, %zu without one\n",
           a->path, n, bytes, dt, n - unchecked, unchecked);
  src_close(&s);
  return rc == 0 ? 0 : CK_EXIT_FAIL;
}

static int cmd_verify(int argc, char **argv)
{
  static const struct option opts[] = { { "threads", required_argument, NULL, 't' },
                                        { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  struct verify_args a = { NULL, ncpu > 4 ? 4 : ncpu < 1 ? 1 : (int)ncpu };
  int c;

  while ((c = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
    if (c == 't' && atoi(optarg) > 0) {
      a.threads = atoi(optarg);
    } else {
      usage(c == 'h' ? stdout : stderr);
      return c == 'h' ? 0 : CK_EXIT_USAGE;
    }
  }
  if (optind + 1 != argc) {
    usage(stderr);
    return CK_EXIT_USAGE;
  }
  a.path = argv[optind];
  ck_h5_set_walkers(a.threads > 0 ? a.threads : 2);
  return ck_isolate_run(verify_body, &a, a.path, NULL);
}

/* ---- diff ---- */

/* One tensor of a diff listing, compact: 200,000 of them are a few MB. */
struct dent {
  const uint8_t *name;
  const int64_t *dims;
  uint32_t nlen;
  int dtype;
  int rank;
  uint32_t crc; /* of the TensorFlow stored layout */
};

static void as_tinfo(const struct dent *d, struct tinfo *t)
{
  memset(t, 0, sizeof(*t));
  t->name = d->name;
  t->nlen = d->nlen;
  t->dtype = d->dtype;
  t->rank = d->rank;
  t->dims = d->dims;
}

static int cmp_dent(const void *pa, const void *pb)
{
  const struct dent *a = pa, *b = pb;
  size_t n = a->nlen < b->nlen ? a->nlen : b->nlen;
  int c = memcmp(a->name, b->name, n);

  return c ? c : a->nlen < b->nlen ? -1 : a->nlen > b->nlen;
}

/* A listing that no longer needs its source: names and shapes copied into one
 * block, so the source can be closed before the other one is opened (diff of two
 * 200,000-tensor checkpoints then holds one reader at a time, not two). */
struct listing {
  struct dent *d;
  size_t n;
  uint8_t *store;
};

static int detach(struct listing *l, struct ck_err *err)
{
  size_t need = 0;
  uint8_t *p;

  for (size_t i = 0; i < l->n; i++)
    need += l->d[i].nlen + 1 + sizeof(int64_t) * (size_t)l->d[i].rank + sizeof(int64_t);
  if ((p = l->store = malloc(need + 1)) == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  for (size_t i = 0; i < l->n; i++) { /* dims first in each record: 8-byte aligned */
    struct dent *t = &l->d[i];
    size_t dl = sizeof(int64_t) * (size_t)t->rank;
    memcpy(p, t->dims, dl);
    t->dims = (const int64_t *)(void *)p;
    p += dl;
    memcpy(p, t->name, t->nlen);
    p[t->nlen] = 0;
    t->name = p;
    p += (t->nlen + 1 + sizeof(int64_t) - 1) / sizeof(int64_t) * sizeof(int64_t);
  }
  return 0;
}

static int collect(struct src *s, struct dent **out, size_t *n, struct ck_err *err)
{
  uint8_t *buf = malloc(VERIFY_BUF);
  struct dent *d = calloc(src_count(s) + 1, sizeof(*d));
  int rc = (buf && d) ? 0 : ck_err_set(err, -ENOMEM, "out of memory");

  *n = 0;
  for (size_t i = 0; rc == 0 && i < src_count(s); i++) {
    struct dent *x = &d[*n];
    struct tinfo t;
    if (!src_tensor(s, i, &t))
      continue;
    *x = (struct dent){ t.name, t.dims, (uint32_t)t.nlen, t.dtype, t.rank, 0 };
    rc = src_tensor_crc(s, &t, buf, VERIFY_BUF, &x->crc, err);
    (*n)++;
  }
  free(buf);
  if (rc != 0) {
    free(d);
    return rc;
  }
  qsort(d, *n, sizeof(*d), cmp_dent);
  *out = d;
  return 0;
}

static int same_shape(const struct tinfo *a, const struct tinfo *b)
{
  return a->rank == b->rank && (a->rank == 0 || memcmp(a->dims, b->dims, sizeof(int64_t) * (size_t)a->rank) == 0);
}

/* Print the differences of two collected listings; returns how many. */
static size_t diff_report(const struct dent *da, size_t na, const struct dent *db, size_t nb)
{
  size_t i = 0, j = 0, ndiff = 0;
  char name[1024], sa[256], sb[256];

  while (i < na || j < nb) {
    int c = i == na ? 1 : j == nb ? -1 : cmp_dent(&da[i], &db[j]);
    struct tinfo ta, tb;
    if (c != 0) {
      as_tinfo(c < 0 ? &da[i] : &db[j], &ta);
      name_str(&ta, name, sizeof(name));
      printf("only in %s: %s\n", c < 0 ? "A" : "B", name);
      ndiff++;
      if (c < 0)
        i++;
      else
        j++;
      continue;
    }
    as_tinfo(&da[i], &ta);
    as_tinfo(&db[j], &tb);
    name_str(&ta, name, sizeof(name));
    shape_str(&ta, sa, sizeof(sa));
    shape_str(&tb, sb, sizeof(sb));
    if (ta.dtype != tb.dtype) {
      printf("dtype differs: %s: %s vs %s\n", name, ck_dtype_name(ta.dtype), ck_dtype_name(tb.dtype));
      ndiff++;
    } else if (!same_shape(&ta, &tb)) {
      printf("shape differs: %s: %s vs %s\n", name, sa, sb);
      ndiff++;
    } else if (da[i].crc != db[j].crc) {
      printf("data differs: %s (crc32c %08x vs %08x)\n", name, da[i].crc, db[j].crc);
      ndiff++;
    }
    i++;
    j++;
  }
  return ndiff;
}

struct diff_args {
  const char *a;
  const char *b;
};

/* Open, list with checksums, detach from the source, close: one source at a time. */
static int list_one(const char *path, struct listing *l, struct ck_err *err)
{
  struct src s = { 0 };
  int rc;

  if ((rc = src_open(&s, path, 0, err)) == 0 && (rc = collect(&s, &l->d, &l->n, err)) == 0)
    rc = detach(l, err);
  src_close(&s);
  return rc;
}

static int diff_body(void *arg)
{
  const struct diff_args *p = arg;
  struct listing a = { 0 }, b = { 0 };
  struct ck_err err = { 0 };
  size_t ndiff;
  int rc = CK_EXIT_USAGE;

  if (list_one(p->a, &a, &err) != 0 || list_one(p->b, &b, &err) != 0) {
    fprintf(stderr, "ckpt diff: %s\n", err.msg);
    goto out;
  }
  ndiff = diff_report(a.d, a.n, b.d, b.n);
  if (ndiff == 0)
    printf("same: %zu tensors, equal names, dtypes, shapes and data\n", a.n);
  else
    printf("%zu difference(s)\n", ndiff);
  rc = ndiff ? CK_EXIT_FAIL : 0;
out:
  free(a.d);
  free(a.store);
  free(b.d);
  free(b.store);
  return rc;
}

static int cmd_diff(int argc, char **argv)
{
  struct diff_args p;
  char *what;
  int rc;

  if (argc != 3 || argv[1][0] == '-') {
    usage(argc == 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
    return argc == 2 && strcmp(argv[1], "--help") == 0 ? 0 : CK_EXIT_USAGE;
  }
  p = (struct diff_args){ argv[1], argv[2] };
  /* a crash can only come from an HDF5 input: name those (both if both are) */
  if (is_h5_path(p.a) && is_h5_path(p.b))
    what = ck_asprintf("%s or %s", p.a, p.b);
  else
    what = strdup(is_h5_path(p.b) ? p.b : p.a);
  ck_h5_set_walkers(2);
  rc = ck_isolate_run(diff_body, &p, what ? what : p.a, NULL);
  free(what);
  return rc;
}

/* ---- status ---- */

/* The status file's text, NUL-terminated, or NULL with a message. */
static char *read_status(const char *path)
{
  struct stat st;
  char *text = NULL;
  size_t n;
  FILE *f;

  if (stat(path, &st) != 0 || st.st_size > (16 << 20) || (f = fopen(path, "r")) == NULL) {
    fprintf(stderr, "ckpt status: %s: %s\n", path, strerror(errno ? errno : EFBIG));
    return NULL;
  }
  if ((text = calloc(1, (size_t)st.st_size + 1)) == NULL) {
    fprintf(stderr, "ckpt status: out of memory\n");
  } else {
    n = fread(text, 1, (size_t)st.st_size, f);
    text[n] = 0;
  }
  fclose(f);
  return text;
}

static int cmd_status(int argc, char **argv)
{
  static const struct option opts[] = { { "json", no_argument, NULL, 'j' }, { "watch", optional_argument, NULL, 'w' },
                                        { NULL, 0, NULL, 0 } };
  const char *path;
  double every = 0;
  int json = 0, o, tty = isatty(STDOUT_FILENO);

  optind = 1;
  while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    if (o == 'j') {
      json = 1;
    } else if (o == 'w') {
      every = optarg ? atof(optarg) : 2;
      if (every < 0.1) {
        fprintf(stderr, "ckpt status: --watch=SECONDS: at least 0.1\n");
        return CK_EXIT_USAGE;
      }
    } else {
      usage(stderr);
      return CK_EXIT_USAGE;
    }
  }
  if (argc - optind > 1) {
    usage(stderr);
    return CK_EXIT_USAGE;
  }
  path = optind < argc ? argv[optind]
         : access("/run/ckptd/status.json", R_OK) == 0 ? "/run/ckptd/status.json"
                                                       : "var/state/status.json";
  for (;;) {
    char *text = read_status(path);
    if (text == NULL)
      return CK_EXIT_FAIL;
    if (every > 0 && tty)
      fputs("\033[H\033[2J", stdout); /* a fresh screen per refresh */
    if (json)
      fputs(text, stdout); /* the file itself: one definition, daemon/status.c */
    else
      ck_status_print(text, stdout, tty);
    free(text);
    fflush(stdout);
    if (every <= 0)
      return 0;
    usleep((useconds_t)(every * 1e6));
  }
}

/* ---- synth ---- */

static int parse_dtypes(char *list, int *out, int max)
{
  int n = 0;

  for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
    int dt = ck_dtype_parse(tok);
    if (dt < 0 || dt == CK_DT_VARIANT || !ck_dtype_storable(dt) || n == max)
      return -1;
    out[n++] = dt;
  }
  return n;
}

static int synth_h5(const char *out, const struct ck_synth_opts *so, const struct ck_convert_opts *co,
                    struct ck_err *err)
{
  char *tmp = ck_temp_name(out);
  struct ck_bundle *b;
  int rc;

  if (tmp == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  rc = ck_synth_tf(tmp, so, err);
  if (rc == 0)
    rc = ck_convert_tf_to_h5(tmp, out, co, NULL, err);
  if (ck_bundle_open(tmp, CK_BUNDLE_INDEX_ONLY, &b, NULL) == 0) { /* remove the intermediate bundle */
    char path[4200];
    for (int i = 0; i < ck_bundle_num_shards(b); i++) {
      snprintf(path, sizeof(path), "%s.data-%05d-of-%05d", tmp, i, ck_bundle_num_shards(b));
      unlink(path);
    }
    snprintf(path, sizeof(path), "%s.index", tmp);
    unlink(path);
    ck_bundle_close(b);
  }
  free(tmp);
  return rc;
}

struct synth_args {
  const char *out;
  const struct ck_synth_opts *so;
  const struct ck_convert_opts *co;
  int h5;
};

static int synth_body(void *arg)
{
  const struct synth_args *a = arg;
  struct ck_err err = { 0 };
  int rc = a->h5 ? synth_h5(a->out, a->so, a->co, &err) : ck_synth_tf(a->out, a->so, &err);

  if (rc != 0) {
    fprintf(stderr, "ckpt synth: %s\n", err.msg);
    return CK_EXIT_FAIL;
  }
  return 0;
}

static int cmd_synth(int argc, char **argv)
{
  static const struct option opts[] = {
    { "size", required_argument, NULL, 's' }, { "tensors", required_argument, NULL, 'n' },
    { "spread", required_argument, NULL, 'r' }, { "dtypes", required_argument, NULL, 'd' },
    { "seed", required_argument, NULL, 'S' }, { "shard-size", required_argument, NULL, 'z' },
    { "format", required_argument, NULL, 'F' }, { "layout", required_argument, NULL, 'L' },
    { "compression", required_argument, NULL, 'C' }, { "fill", required_argument, NULL, 'f' },
    { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 }
  };
  struct ck_synth_opts o = { .total_bytes = 1u << 20, .tensors = 16, .spread = 100, .seed = 1 };
  struct ck_cli_conv cv = { 0 };
  int dtypes[64], c, h5 = 0, rc;

  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 's':
      if (ck_parse_size(optarg, &o.total_bytes) != 0)
        goto bad;
      break;
    case 'z':
      if (ck_parse_size(optarg, &o.max_shard_bytes) != 0)
        goto bad;
      break;
    case 'n': o.tensors = (unsigned)strtoul(optarg, NULL, 10); break;
    case 'r': o.spread = strtod(optarg, NULL); break;
    case 'S': o.seed = strtoull(optarg, NULL, 10); break;
    case 'f':
      if (strcmp(optarg, "random") != 0 && strcmp(optarg, "normal") != 0)
        goto bad;
      o.normal = strcmp(optarg, "normal") == 0;
      break;
    case 'F':
      if (strcmp(optarg, "tf") != 0 && strcmp(optarg, "h5") != 0)
        goto bad;
      h5 = strcmp(optarg, "h5") == 0;
      break;
    case 'L':
    case 'C':
      if (ck_cli_conv_option(&cv, c, optarg, "ckpt synth") <= 0)
        return CK_EXIT_USAGE;
      break;
    case 'd':
      if ((o.ndtypes = parse_dtypes(optarg, dtypes, 64)) <= 0) {
        fprintf(stderr, "ckpt synth: bad --dtypes list\n");
        return CK_EXIT_USAGE;
      }
      o.dtypes = dtypes;
      break;
    case 'h': usage(stdout); return 0;
    default: goto bad;
    }
  }
  if (optind + 1 != argc || o.tensors == 0)
    goto bad;
  {
    struct synth_args a = { argv[optind], &o, &cv.o, h5 };
    char *dir = ck_dirname(a.out);
    const char *dirs[] = { dir, NULL };
    rc = dir ? ck_isolate_run(synth_body, &a, a.out, dirs) : CK_EXIT_FAIL;
    free(dir);
    return rc;
  }
bad:
  usage(stderr);
  return CK_EXIT_USAGE;
}

int main(int argc, char **argv)
{
  if (argc < 2) {
    usage(stderr);
    return CK_EXIT_USAGE;
  }
  if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("ckpt (ckptd) %s\n", PACKAGE_VERSION);
    return 0;
  }
  if (strcmp(argv[1], "ls") == 0)
    return cmd_ls(argc - 1, argv + 1);
  if (strcmp(argv[1], "verify") == 0)
    return cmd_verify(argc - 1, argv + 1);
  if (strcmp(argv[1], "diff") == 0)
    return cmd_diff(argc - 1, argv + 1);
  if (strcmp(argv[1], "synth") == 0)
    return cmd_synth(argc - 1, argv + 1);
  if (strcmp(argv[1], "status") == 0)
    return cmd_status(argc - 1, argv + 1);
  if (strcmp(argv[1], "ctl") == 0)
    return ck_cmd_ctl(argc - 1, argv + 1);
  if (strcmp(argv[1], "convert") == 0)
    return ck_cmd_convert(argc - 1, argv + 1);
  fprintf(stderr, "ckpt: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return CK_EXIT_USAGE;
}
