/* ckpt: inspect, compare and generate checkpoints of either format.
 *   ckpt ls PATH [--format text|tsv|json]   list every tensor
 *   ckpt verify PATH [--threads N]          verify every checksum
 *   ckpt diff A B                           compare tensor by tensor, across formats
 *   ckpt synth OUT [options]                generate a checkpoint
 * This file: usage, status and the dispatch; each other command has its file
 * (ckpt_ls.c, ckpt_verify.c, ckpt_diff.c, ckpt_synth.c, ckpt_convert.c, ckpt_ctl.c),
 * over ckpt_src.c's view of a checkpoint of any format. */
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
#include "ckpt_src.h"
#include "ckpt_ctl.h"
#include "synth.h"


void ckpt_usage(FILE *f)
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
      ckpt_usage(stderr);
      return CK_EXIT_USAGE;
    }
  }
  if (argc - optind > 1) {
    ckpt_usage(stderr);
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

int main(int argc, char **argv)
{
  if (argc < 2) {
    ckpt_usage(stderr);
    return CK_EXIT_USAGE;
  }
  if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
    ckpt_usage(stdout);
    return 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("ckpt (ckptd) %s\n", PACKAGE_VERSION);
    return 0;
  }
  if (strcmp(argv[1], "ls") == 0)
    return ck_cmd_ls(argc - 1, argv + 1);
  if (strcmp(argv[1], "verify") == 0)
    return ck_cmd_verify(argc - 1, argv + 1);
  if (strcmp(argv[1], "diff") == 0)
    return ck_cmd_diff(argc - 1, argv + 1);
  if (strcmp(argv[1], "synth") == 0)
    return ck_cmd_synth(argc - 1, argv + 1);
  if (strcmp(argv[1], "status") == 0)
    return cmd_status(argc - 1, argv + 1);
  if (strcmp(argv[1], "ctl") == 0)
    return ck_cmd_ctl(argc - 1, argv + 1);
  if (strcmp(argv[1], "convert") == 0)
    return ck_cmd_convert(argc - 1, argv + 1);
  fprintf(stderr, "ckpt: unknown command '%s'\n", argv[1]);
  ckpt_usage(stderr);
  return CK_EXIT_USAGE;
}
