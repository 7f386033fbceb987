/* The worker protocol: job command lines round-trip through argv, report lines
 * round-trip through text, and malformed lines are refused (a table of each). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../daemon/ckptfile.h"
#include "../daemon/conf.h"
#include "../daemon/wproto.h"
#include "h5.h"
#include "fileio.h"
#include "tap.h"

static int argc_of(char **argv)
{
  int n = 0;

  while (argv[n])
    n++;
  return n;
}

/* Every pair travels as its name; only a bundle output carries the checkpoint-file policy. */
static void pairs_roundtrip(void)
{
  for (int from = CK_KIND_SAVER; from < CK_KINDS; from++)
    for (int to = CK_KIND_SAVER; to < CK_KINDS; to++) {
      struct ck_wjob in = { .kind = CK_WJOB_CONVERT, .from = from, .to = to, .src = "/m/a", .dst = "/m/b" }, out;
      char **argv, msg[300];
      int has_policy = 0;
      if (from == to)
        continue;
      argv = ck_wjob_argv("ckptd", &in);
      for (int k = 0; argv && argv[k]; k++)
        has_policy |= strcmp(argv[k], "--checkpoint-file") == 0;
      ok(argv && ck_wjob_parse(argc_of(argv) - 2, argv + 2, &out, msg, sizeof(msg)) == 0 && out.from == from &&
             out.to == to && has_policy == (to == CK_KIND_SAVER),
         "%s: parses back as itself%s", ck_decide_dir_name(from, to), to == CK_KIND_SAVER ? ", with the policy" : "");
      ck_strv_free(argv);
    }
}

static void job_roundtrip(void)
{
  struct ck_shard_rule rules[2] = { { "embedding/*", 1 }, { "a=b*", 2 } };
  struct ck_wjob in = { .kind = CK_WJOB_CONVERT, .from = CK_KIND_H5, .to = CK_KIND_SAVER, .src = "/m/x y.h5",
                        .dst = "/m/x y", .mem_limit = 1ull << 32, .cpu_limit = 600, .min_free = 5ull << 30 };
  struct ck_wjob out;
  char **argv, msg[300];

  in.opts.buffer_size = 32u << 20;
  in.opts.threads = 1;
  in.opts.layout = CK_H5_NESTED;
  in.opts.compression = CK_H5_GZIP;
  in.opts.gzip_level = 6;
  in.opts.max_shard_bytes = 10ull << 30;
  in.opts.rules = rules;
  in.opts.nrules = 2;
  in.opts.verify = 1;
  in.opts.output_mode = 0640;
  in.opts.output_chgrp = 1;
  in.opts.output_gid = 1234;
  in.ckpt_policy = CK_CKPTFILE_ALWAYS;
  argv = ck_wjob_argv("/usr/bin/ckptd", &in);
  ok(argv && strcmp(argv[0], "/usr/bin/ckptd") == 0 && strcmp(argv[1], "--worker") == 0, "argv starts exe --worker");
  ok(ck_wjob_parse(argc_of(argv) - 2, argv + 2, &out, msg, sizeof(msg)) == 0, "argv parses back (%s)", msg);
  ok(out.kind == CK_WJOB_CONVERT && out.from == CK_KIND_H5 && out.to == CK_KIND_SAVER, "kind and direction");
  ok(strcmp(out.src, "/m/x y.h5") == 0 && strcmp(out.dst, "/m/x y") == 0, "paths with spaces survive");
  ok(out.opts.buffer_size == (32u << 20) && out.opts.threads == 1 && out.opts.layout == CK_H5_NESTED,
     "buffer, threads, layout");
  ok(out.opts.compression == CK_H5_GZIP && out.opts.gzip_level == 6, "gzip level");
  ok(out.opts.max_shard_bytes == (10ull << 30) && out.opts.verify && out.ckpt_policy == CK_CKPTFILE_ALWAYS,
     "shard size, verify, checkpoint-file policy");
  ok(out.opts.nrules == 2 && strcmp(out.opts.rules[0].pattern, "embedding/*") == 0 && out.opts.rules[0].shard == 1 &&
         strcmp(out.opts.rules[1].pattern, "a=b*") == 0 && out.opts.rules[1].shard == 2,
     "shard rules (a '=' inside a pattern too)");
  ok(out.mem_limit == (1ull << 32) && out.cpu_limit == 600, "limits");
  ok(out.min_free == (5ull << 30), "the disk guard's min_free");
  ok(out.opts.output_mode == 0640 && out.opts.output_chgrp && out.opts.output_gid == 1234, "output mode and group");
  ck_strv_free(argv);

  in = (struct ck_wjob){ .kind = CK_WJOB_PROBE, .src = "/m/a.h5", .require_success = 1 };
  argv = ck_wjob_argv("ckptd", &in);
  ok(argv && ck_wjob_parse(argc_of(argv) - 2, argv + 2, &out, msg, sizeof(msg)) == 0 && out.kind == CK_WJOB_PROBE &&
         strcmp(out.src, "/m/a.h5") == 0 && out.mem_limit == 0 && out.require_success,
     "a probe round-trips, with require_success");
  ck_strv_free(argv);
}

static void job_refusals(void)
{
  static const char *bad[][10] = {
    { NULL },
    { "frobnicate", "--src", "a", NULL },
    { "convert", "--src", "a", NULL },                                     /* no dst, no direction */
    { "convert", "--src", "a", "--dst", "b", "--direction", "sideways", NULL },
    { "convert", "--src", "a", "--dst", "b", "--direction", "h5-to-h5", NULL },
    { "probe", NULL },                                                     /* no src */
    { "probe", "--src", "a", "--buffer-size", "12x", NULL },
    { "probe", "--src", "a", "--threads", "-1", NULL },
    { "probe", "--src", "a", "--bogus", "1", NULL },
    { "probe", "--src", NULL },                                            /* value missing */
    { "convert", "--src", "a", "--dst", "b", "--direction", "h5-to-saver", "--rule", NULL },
  };
  static const char *rule_bad[] = { "convert", "--src", "a", "--dst", "b", "--direction", "h5-to-saver",
                                    "--rule", "nosharddigits=x", NULL };
  struct ck_wjob j;
  char msg[300], *copy[12];

  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int n = 0;
    while (bad[i][n])
      n++;
    for (int k = 0; k <= n; k++)
      copy[k] = (char *)bad[i][k];
    msg[0] = 0;
    ok(ck_wjob_parse(n, copy, &j, msg, sizeof(msg)) == -1 && msg[0], "refused: case %zu (%s)", i, msg);
  }
  for (int k = 0; k < 10; k++)
    copy[k] = rule_bad[k] ? strdup(rule_bad[k]) : NULL;
  ok(ck_wjob_parse(9, copy, &j, msg, sizeof(msg)) == -1, "a rule without a shard number is refused");
  for (int k = 0; k < 9; k++)
    free(copy[k]);
}

static void msg_roundtrip(void)
{
  struct ck_wmsg in[] = {
    { .type = CK_WMSG_PROGRESS, .done = 12345, .total = 1ull << 40 },
    { .type = CK_WMSG_DONE, .tensors = 7, .bytes = 99, .seconds = 1.25, .skipped = 2 },
    { .type = CK_WMSG_FAIL, .code = -28, .text = "/m/x.h5: No space left on device" },
    { .type = CK_WMSG_FAIL, .code = -4001, .text = "line one\nline two" },
    { .type = CK_WMSG_PROBE, .verdict = CK_PROBE_READY, .size = 4096, .mtime_ns = 1700000000123456789ll },
    { .type = CK_WMSG_PROBE, .verdict = CK_PROBE_READY, .size = 4096, .mtime_ns = 5, .ours = 1 },
    { .type = CK_WMSG_PROBE, .verdict = CK_PROBE_WAIT, .size = 1, .mtime_ns = 2, .text = "no __SUCCESS__ yet" },
    { .type = CK_WMSG_PROBE, .verdict = CK_PROBE_CORRUPT, .size = 3, .mtime_ns = 4, .text = "bad superblock" },
    { .type = CK_WMSG_NOTE, .text = "/m/checkpoint is maintained by its producer" },
    { .type = CK_WMSG_SLURM, .slurm_job = 4294967297ull },
  };
  char line[CK_WPROTO_LINE_MAX + 64];

  for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
    struct ck_wmsg out;
    size_t n = ck_wmsg_format(&in[i], line, sizeof(line));
    int one_line = n > 0 && line[n - 1] == '\n' && memchr(line, '\n', n - 1) == NULL;
    line[n - 1] = 0;
    ok(one_line && ck_wmsg_parse(line, &out) == 0 && out.type == in[i].type && out.done == in[i].done &&
           out.total == in[i].total && out.tensors == in[i].tensors && out.bytes == in[i].bytes &&
           out.seconds == in[i].seconds && out.skipped == in[i].skipped && out.code == in[i].code &&
           out.verdict == in[i].verdict && out.size == in[i].size && out.mtime_ns == in[i].mtime_ns &&
           out.slurm_job == in[i].slurm_job &&
           out.ours == in[i].ours &&
           (strcmp(out.text, in[i].text) == 0 || strchr(in[i].text, '\n')),
       "message %zu round-trips as one line: %s", i, line);
  }
  {
    struct ck_wmsg out;
    ck_wmsg_format(&in[3], line, sizeof(line));
    line[strlen(line) - 1] = 0;
    ok(ck_wmsg_parse(line, &out) == 0 && strcmp(out.text, "line one line two") == 0, "newlines in text flattened");
  }
  {
    struct ck_wmsg big = { .type = CK_WMSG_FAIL, .code = -5 }, out;
    char small[40];
    memset(big.text, 'x', sizeof(big.text) - 1);
    size_t n = ck_wmsg_format(&big, small, sizeof(small));
    ok(n == sizeof(small) - 1 && small[n - 1] == '\n', "a truncated message still ends its line");
    small[n - 1] = 0;
    ok(ck_wmsg_parse(small, &out) == 0 && out.code == -5, "and still parses");
  }
}

static void msg_refusals(void)
{
  static const char *bad[] = {
    "", "hello", "progress", "progress 1", "progress x 2", "done 1 2", "done 1 2 x 3", "fail", "fail 5 positive code",
    "fail x msg", "notes x", "probe", "probe ready", "probe ready 1", "probe maybe 1 2 0 text", "probe ready x 2 0", "probe ready 1 2", "probe ready 1 2 7 x",
    "slurm", "slurm 0", "slurm x", "slurm 12x", "slurm -3",
  };
  struct ck_wmsg m;

  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    ok(ck_wmsg_parse(bad[i], &m) == -1, "not a message: '%s'", bad[i]);
}

int main(void)
{
  job_roundtrip();
  pairs_roundtrip();
  job_refusals();
  msg_roundtrip();
  msg_refusals();
  return tap_done();
}
