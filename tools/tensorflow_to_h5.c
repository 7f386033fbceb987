/* tensorflow-to-h5: convert a TensorFlow Saver checkpoint to a Cerebras-style HDF5 file. */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle.h"
#include "cli.h"
#include "convert.h"
#include "fileio.h"
#include "h5.h"
#include "isolate.h"

static void usage(FILE *f)
{
  fprintf(f,
          "usage: tensorflow-to-h5 [-h] [options] saver_path h5_path\n"
          "\n"
          "Convert Tensorflow Saver Checkpoint to Cerebras H5 Format\n"
          "\n"
          "positional arguments:\n"
          "  saver_path            Path to Tensorflow Saver checkpoint: a prefix (model.ckpt-100),\n"
          "                        its .index file, or a directory with a `checkpoint` file\n"
          "  h5_path               Path to the output H5 file (a directory: PREFIX.h5 inside it)\n"
          "\n"
          "optional arguments:\n"
          "  -h, --help            show this help message and exit\n"
          "  --layout flat|nested  dataset names: flat quote-escaped names at the root (default),\n"
          "                        or names verbatim with '/' making groups\n"
          "  --compression C       none (default, contiguous), gzip, gzip:LEVEL, or lz4\n"
          "                        (lz4 needs HDF5 filter 32004: Debian package hdf5-filter-plugin)\n"
          "  --chunk-size SIZE     bytes per compressed chunk (default 1M; 4K to 64M)\n"
          "  --buffer-size SIZE    at most this much memory for tensor data, shared by all threads\n"
          "                        (default 64M; tensors stream in pieces of at most 4 MiB)\n"
          "  --threads N           threads copying tensor bytes, or compressing chunks (default 2)\n"
          "  -v, --verify          re-read the output and compare every tensor's checksum\n"
          "  -f, --force           replace h5_path if it exists\n"
          "  -q, --quiet           no progress bar and no summary line\n"
          "\n"
          "Every tensor's crc32c is verified while reading. The output is written under a\n"
          "temporary name and renamed only when complete; on failure nothing is left. An\n"
          "h5_path that is one of the source's files is refused, with or without --force.\n"
          "Exit status: 0 converted, 1 conversion failed (also when libhdf5 crashes on a corrupt\n"
          "file: the work runs in a child process), 2 usage error, 128+N on signal N (SIGINT,\n"
          "SIGTERM, SIGHUP), after removing the temporaries.\n");
}

/* The conversion, run in the worker process. */
struct job {
  const char *src;
  const char *dst;
  struct ck_cli_conv *c;
};

static int convert(void *arg)
{
  struct job *j = arg;
  struct ck_convert_stats st;
  struct ck_err err = { 0 };

  if (ck_convert_tf_to_h5(j->src, j->dst, &j->c->o, &st, &err) != 0) {
    fprintf(stderr, "tensorflow-to-h5: %s\n", err.msg);
    return CK_EXIT_FAIL;
  }
  if (!j->c->quiet)
    ck_cli_summary(j->src, j->dst, &st);
  return 0;
}

/* The source's prefix (NULL if its index cannot be read: the conversion will say
 * why), and the output path: h5_path, or PREFIX.h5 inside it when it is a directory. */
static int paths(const char *src, const char *dst, char **prefix, char **out)
{
  struct ck_err err = { 0 };
  struct ck_bundle *b = NULL;
  struct stat sb;
  char *base;
  int is_dir = stat(dst, &sb) == 0 && S_ISDIR(sb.st_mode);

  *prefix = *out = NULL;
  if (ck_bundle_open(src, CK_BUNDLE_INDEX_ONLY, &b, &err) != 0 && is_dir) {
    fprintf(stderr, "tensorflow-to-h5: %s\n", err.msg);
    return -1;
  }
  if (b && (*prefix = strdup(ck_bundle_prefix(b))) == NULL)
    goto oom;
  if (!is_dir)
    *out = strdup(dst);
  else if ((base = ck_basename(*prefix)) != NULL) {
    *out = ck_asprintf("%s/%s.h5", dst, base);
    free(base);
  }
  if (*out == NULL)
    goto oom;
  ck_bundle_close(b);
  return 0;
oom:
  fprintf(stderr, "tensorflow-to-h5: out of memory\n");
  ck_bundle_close(b);
  return -1;
}

/* --force must never turn the output into the source: refuse a dst that is one of its files. */
static int is_source(const char *path, void *dst)
{
  if (!ck_cli_same_file(path, dst))
    return 0;
  fprintf(stderr, "tensorflow-to-h5: %s is the source file %s: refusing to replace the source\n", (char *)dst, path);
  return 1;
}

int main(int argc, char **argv)
{
  static const struct option opts[] = { CK_CLI_CONV_LONGOPTS, { NULL, 0, NULL, 0 } };
  struct ck_cli_conv c = { 0 };
  char *dst = NULL, *dir = NULL, *prefix = NULL;
  int opt, r, rc = CK_EXIT_FAIL;

  signal(SIGXFSZ, SIG_IGN); /* a file size limit becomes EFBIG, reported and cleaned up */
  while ((opt = getopt_long(argc, argv, CK_CLI_CONV_SHORT, opts, NULL)) != -1) {
    if (opt == 'h') {
      usage(stdout);
      return 0;
    }
    if (opt == 'S' || opt == 'R' || opt == 'N' || (r = ck_cli_conv_option(&c, opt, optarg, "tensorflow-to-h5")) <= 0) {
      if (opt == 'S' || opt == 'R' || opt == 'N')
        fprintf(stderr, "tensorflow-to-h5: --%s applies to h5-to-tensorflow\n",
                opt == 'S' ? "shard-size" : opt == 'R' ? "shard-rule" : "no-checkpoint-file");
      else
        usage(stderr);
      return CK_EXIT_USAGE;
    }
  }
  if (optind + 2 != argc) {
    usage(stderr);
    return CK_EXIT_USAGE;
  }
  if (paths(argv[optind], argv[optind + 1], &prefix, &dst) != 0 || (dir = ck_dirname(dst)) == NULL)
    goto out;
  if (prefix && ck_cli_each_bundle_file(prefix, is_source, dst) != 0)
    goto out;
  if (!c.force && access(dst, F_OK) == 0) {
    fprintf(stderr, "tensorflow-to-h5: %s exists (use --force to replace it)\n", dst);
    goto out;
  }
  if (!c.quiet)
    c.o.progress = ck_cli_progress;
  {
    struct job j = { argv[optind], dst, &c };
    const char *dirs[] = { dir, NULL };
    ck_h5_set_walkers(c.o.threads ? c.o.threads : 2); /* --verify lists it: big groups by two processes */
    rc = ck_isolate_run(convert, &j, dst, dirs); /* --verify reads the new HDF5 file back */
  }
out:
  free(prefix);
  free(dir);
  free(dst);
  return rc;
}
