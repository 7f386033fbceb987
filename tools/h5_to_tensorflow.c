/* h5-to-tensorflow: convert a Cerebras-style (or h5py / Keras) HDF5 checkpoint to a
 * TensorFlow Saver checkpoint. */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "convert.h"
#include "fileio.h"
#include "h5.h"
#include "isolate.h"

static void usage(FILE *f)
{
  fprintf(f,
          "usage: h5-to-tensorflow [-h] [options] h5_path saver_path\n"
          "\n"
          "Convert Cerebras H5 Checkpoint to Tensorflow Saver Format\n"
          "\n"
          "positional arguments:\n"
          "  h5_path               Path to H5 checkpoint\n"
          "  saver_path            Path prefix of the output Tensorflow Saver checkpoint\n"
          "                        (e.g. out/model.ckpt-100; a directory: the H5 file's name in it)\n"
          "\n"
          "optional arguments:\n"
          "  -h, --help            show this help message and exit\n"
          "  --shard-size SIZE     start a new data file when one reaches SIZE (e.g. 10G)\n"
          "  --shard-rule P=N      tensors whose name matches glob P go to shard N (repeatable;\n"
          "                        the first match wins, others go to shard 0)\n"
          "  --buffer-size SIZE    at most this much memory for tensor data (default 64M;\n"
          "                        tensors stream in pieces of at most 4 MiB)\n"
          "  --threads N           threads decompressing HDF5 chunks (gzip, lz4, zstd) or, above 1,\n"
          "                        one reading ahead; processes listing a group of 4,096+\n"
          "                        datasets (default 2)\n"
          "  --no-checkpoint-file  do not update the directory's `checkpoint` file\n"
          "  -v, --verify          re-read the output and compare every tensor's checksum\n"
          "  -f, --force           replace saver_path if it exists\n"
          "  -q, --quiet           no progress bar and no summary line\n"
          "\n"
          "Reads ckptd's own files, Cerebras legacy and 0.5 checkpoints (a 0.5 file without\n"
          "__SUCCESS__ is refused), and plain h5py / Keras trees; datasets that are not tensors\n"
          "are skipped and counted. Tensors keep the file's creation order. Data files are\n"
          "renamed into place first, the .index last, then the `checkpoint` file is updated;\n"
          "a `checkpoint` file that cannot be parsed is left alone with a warning (the bundle is\n"
          "still published, exit 0). An output that is the source file (a hard link, another\n"
          "name) is refused, with or without --force.\n"
          "Exit status: 0 converted, 1 conversion failed (also when libhdf5 crashes on a corrupt\n"
          "file: the work runs in a child process), 2 usage error, 128+N on signal N (SIGINT,\n"
          "SIGTERM, SIGHUP), after removing the temporaries.\n");
}

static char *default_prefix(const char *dir, const char *h5)
{
  char *base = ck_basename(h5), *dot, *p;

  if (base == NULL)
    return NULL;
  if ((dot = strrchr(base, '.')) != NULL && dot != base)
    *dot = 0;
  p = ck_path_join(dir, base);
  free(base);
  return p;
}

/* The conversion, run in the worker process. */
struct job {
  const char *src;
  const char *prefix;
  struct ck_cli_conv *c;
};

static int convert(void *arg)
{
  struct job *j = arg;
  struct ck_convert_stats st;
  struct ck_err err = { 0 };

  if (ck_convert_h5_to_tf(j->src, j->prefix, &j->c->o, &st, &err) != 0) {
    fprintf(stderr, "h5-to-tensorflow: %s\n", err.msg);
    return CK_EXIT_FAIL;
  }
  if (st.warning[0])
    fprintf(stderr, "h5-to-tensorflow: warning: %s\n", st.warning);
  if (!j->c->quiet)
    ck_cli_summary(j->src, j->prefix, &st);
  return 0;
}

/* --force must never turn the output into the source: refuse an output file (one of
 * the bundle's, or the directory's `checkpoint` file) that is the source file. */
static int is_source(const char *path, void *src)
{
  if (!ck_cli_same_file(src, path))
    return 0;
  fprintf(stderr, "h5-to-tensorflow: %s is the source file %s: refusing to replace the source\n", path, (char *)src);
  return 1;
}

static int replaces_source(const char *src, const char *prefix, const char *dir, int checkpoint_file)
{
  char *state = checkpoint_file ? ck_path_join(dir, "checkpoint") : NULL;
  int rc = ck_cli_each_bundle_file(prefix, is_source, (void *)src);

  if (rc == 0 && state)
    rc = is_source(state, (void *)src);
  free(state);
  return rc;
}

int main(int argc, char **argv)
{
  static const struct option opts[] = { CK_CLI_CONV_LONGOPTS, { NULL, 0, NULL, 0 } };
  struct ck_cli_conv c = { 0 };
  struct stat sb;
  char *prefix, *index, *dir = NULL;
  int opt, rc = CK_EXIT_FAIL;

  signal(SIGXFSZ, SIG_IGN);
  while ((opt = getopt_long(argc, argv, CK_CLI_CONV_SHORT, opts, NULL)) != -1) {
    if (opt == 'h') {
      usage(stdout);
      return 0;
    }
    if (opt == 'L' || opt == 'C' || opt == 'K') {
      fprintf(stderr, "h5-to-tensorflow: --%s applies to tensorflow-to-h5\n",
              opt == 'L' ? "layout" : opt == 'C' ? "compression" : "chunk-size");
      return CK_EXIT_USAGE;
    }
    if (ck_cli_conv_option(&c, opt, optarg, "h5-to-tensorflow") <= 0) {
      usage(stderr);
      return CK_EXIT_USAGE;
    }
  }
  if (optind + 2 != argc) {
    usage(stderr);
    return CK_EXIT_USAGE;
  }
  if (stat(argv[optind + 1], &sb) == 0 && S_ISDIR(sb.st_mode))
    prefix = default_prefix(argv[optind + 1], argv[optind]);
  else
    prefix = strdup(argv[optind + 1]);
  index = prefix ? ck_asprintf("%s.index", prefix) : NULL;
  if (index == NULL || (dir = ck_dirname(prefix)) == NULL) {
    fprintf(stderr, "h5-to-tensorflow: out of memory\n");
    goto out;
  }
  if (replaces_source(argv[optind], prefix, dir, !c.o.no_checkpoint_file))
    goto out;
  if (!c.force && access(index, F_OK) == 0) {
    fprintf(stderr, "h5-to-tensorflow: %s exists (use --force to replace it)\n", index);
    goto out;
  }
  if (!c.quiet)
    c.o.progress = ck_cli_progress;
  {
    struct job j = { argv[optind], prefix, &c };
    const char *dirs[] = { dir, NULL };
    ck_h5_set_walkers(c.o.threads ? c.o.threads : 2); /* big groups listed by two processes */
    rc = ck_isolate_run(convert, &j, argv[optind], dirs);
  }
out:
  ck_cli_conv_free(&c);
  free(dir);
  free(index);
  free(prefix);
  return rc;
}
