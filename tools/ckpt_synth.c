/* ckpt synth: write a synthetic checkpoint (TF bundle or HDF5). */
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

int ck_cmd_synth(int argc, char **argv)
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
    case 'h': ckpt_usage(stdout); return 0;
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
  ckpt_usage(stderr);
  return CK_EXIT_USAGE;
}
