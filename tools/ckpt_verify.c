/* ckpt verify: read every tensor and check its checksum. */
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
  double t0 = ck_now(), dt;
  int rc;

  if (ckpt_src_open(&s, a->path, 0, &err) != 0) {
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
  dt = ck_now() - t0;
  if (rc != 0)
    fprintf(stderr, "ckpt: %s\n", err.msg);
  else if (s.p)
    printf("%s: %zu tensors, %" PRIu64 " bytes read in %.3f s (%s%s)\n", a->path, n, bytes, dt, ckpt_src_format(&s),
           s.p->format == CK_FMT_TORCH ? ": every storage's zip CRC-32 checked" : ": the format stores no checksum")
           ;
  else if (s.b)
    printf("%s: %zu entries, %" PRIu64 " bytes verified in %.3f s (%.1f MB/s, %d thread(s), crc32c %s)\n",
           ck_bundle_prefix(s.b), n, bytes, dt, dt > 0 ? (double)bytes / dt / 1e6 : 0.0, a->threads,
           ck_crc32c_impl());
  else
    printf("%s: %zu tensors, %" PRIu64 " bytes read in %.3f s; %zu checked against tf_crc32c, %zu without one\n",
           a->path, n, bytes, dt, n - unchecked, unchecked);
  ckpt_src_close(&s);
  return rc == 0 ? 0 : CK_EXIT_FAIL;
}

int ck_cmd_verify(int argc, char **argv)
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
      ckpt_usage(c == 'h' ? stdout : stderr);
      return c == 'h' ? 0 : CK_EXIT_USAGE;
    }
  }
  if (optind + 1 != argc) {
    ckpt_usage(stderr);
    return CK_EXIT_USAGE;
  }
  a.path = argv[optind];
  ck_h5_set_walkers(a.threads > 0 ? a.threads : 2);
  return ck_isolate_run(verify_body, &a, a.path, NULL);
}
