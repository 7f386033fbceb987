/* `ckpt convert SRC DST`: the format-neutral converter (common/pipeline.h) behind a
 * command line, in an isolated child process like the other converters. */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_convert.h"
#include "cli.h"
#include "fileio.h"
#include "h5.h"
#include "isolate.h"
#include "pipeline.h"

struct job {
  const char *src;
  const char *dst;
  int to;
  struct ck_cli_conv *c;
};

static int run(void *arg)
{
  struct job *j = arg;
  struct ck_convert_stats st;
  struct ck_err err = { 0 };

  if (ck_convert(j->src, j->dst, j->to, &j->c->o, &st, &err) != 0) {
    fprintf(stderr, "ckpt convert: %s\n", err.msg);
    return CK_EXIT_FAIL;
  }
  if (!j->c->quiet)
    ck_cli_summary(j->src, j->dst, &st);
  fflush(stdout);
  if (st.warning[0]) /* what was left out is never quiet */
    fprintf(stderr, "ckpt convert: %s\n", st.warning);
  return 0;
}

/* The file an output of format `to` at dst is published as (a bundle: its index). */
static char *final_file(const char *dst, int to)
{
  return to == CK_FMT_SAVER ? ck_asprintf("%s.index", dst) : strdup(dst);
}

/* --force must never turn the output into the source. */
static int same_as_source(const char *src, const char *out)
{
  struct ck_source *s = NULL;
  int same = 0;

  if (ck_source_open(src, CK_FMT_AUTO, 1u << 20, &s, NULL) != 0)
    return ck_cli_same_file(src, out);
  for (size_t i = 0; i < s->id.n && !same; i++)
    same = ck_cli_same_file(s->id.f[i].path, out);
  ck_source_close(s);
  return same;
}

/* 0: convert; 1: --help was printed; -1: a usage error. */
static int parse(int argc, char **argv, struct ck_cli_conv *c, int *to)
{
  static const struct option opts[] = { CK_CLI_CONV_LONGOPTS, { "to", required_argument, NULL, 't' },
                                        { "strict", no_argument, NULL, 's' }, { NULL, 0, NULL, 0 } };
  int opt;

  while ((opt = getopt_long(argc, argv, CK_CLI_CONV_SHORT, opts, NULL)) != -1) {
    if (opt == 'h') {
      printf("usage: ckpt convert SRC DST [options]\n\n" CK_CONVERT_USAGE);
      return 1;
    }
    if (opt == 't') {
      if ((*to = ck_format_parse(optarg)) < 0) {
        fprintf(stderr, "ckpt convert: --to: 'saver', 'h5', 'torch' or 'safetensors'\n");
        return -1;
      }
    } else if (opt == 's') {
      c->o.strict = 1;
    } else if (ck_cli_conv_option(c, opt, optarg, "ckpt convert") <= 0) {
      return -1;
    }
  }
  return optind + 2 == argc ? 0 : -1;
}

int ck_cmd_convert(int argc, char **argv)
{
  struct ck_cli_conv c = { 0 };
  char *final = NULL, *dir = NULL;
  int to = CK_FMT_AUTO, rc;

  signal(SIGXFSZ, SIG_IGN); /* a file size limit becomes EFBIG, reported and cleaned up */
  if ((rc = parse(argc, argv, &c, &to)) != 0) {
    ck_cli_conv_free(&c);
    if (rc > 0)
      return 0; /* --help */
    fprintf(stderr, "usage: ckpt convert SRC DST [options]\n\n" CK_CONVERT_USAGE);
    return CK_EXIT_USAGE;
  }
  rc = CK_EXIT_FAIL;
  if (to == CK_FMT_AUTO)
    to = ck_format_of_name(argv[optind + 1]);
  if ((final = final_file(argv[optind + 1], to)) == NULL || (dir = ck_dirname(argv[optind + 1])) == NULL)
    goto out;
  if (same_as_source(argv[optind], final)) {
    fprintf(stderr, "ckpt convert: %s is a file of the source: refusing to replace the source\n", final);
    goto out;
  }
  if (!c.force && access(final, F_OK) == 0) {
    fprintf(stderr, "ckpt convert: %s exists (use --force to replace it)\n", final);
    goto out;
  }
  if (!c.quiet)
    c.o.progress = ck_cli_progress;
  {
    struct job j = { argv[optind], argv[optind + 1], to, &c };
    const char *dirs[] = { dir, NULL };
    ck_h5_set_walkers(c.o.threads ? c.o.threads : 2); /* big groups listed by two processes */
    rc = ck_isolate_run(run, &j, argv[optind], dirs);
  }
out:
  ck_cli_conv_free(&c);
  free(final);
  free(dir);
  return rc;
}
