/* The Slurm executor's decisions (daemon/slurm.c), table by table. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "../daemon/slurm.h"
#include "fileio.h"
#include "tap.h"

static void states(void)
{
  static const struct {
    const char *text;
    int state, final;
  } t[] = {
    { "PENDING", CK_SLURM_PENDING, 0 },          { "RUNNING|None", CK_SLURM_RUNNING, 0 },
    { "COMPLETING", CK_SLURM_RUNNING, 0 },       { "CONFIGURING", CK_SLURM_RUNNING, 0 },
    { "SUSPENDED", CK_SLURM_RUNNING, 0 },        { "REQUEUED", CK_SLURM_PENDING, 0 },
    { "COMPLETED", CK_SLURM_COMPLETED, 1 },      { "FAILED", CK_SLURM_FAILED, 1 },
    { "CANCELLED by 1000", CK_SLURM_CANCELLED, 1 }, { "CANCELLED+", CK_SLURM_CANCELLED, 1 },
    { "TIMEOUT", CK_SLURM_TIMEOUT, 1 },          { "NODE_FAIL", CK_SLURM_NODE_FAIL, 1 },
    { "PREEMPTED", CK_SLURM_PREEMPTED, 1 },      { "OUT_OF_MEMORY", CK_SLURM_OUT_OF_MEMORY, 1 },
    { "OOM", CK_SLURM_OUT_OF_MEMORY, 1 },        { "BOOT_FAIL", CK_SLURM_BOOT_FAIL, 1 },
    { "DEADLINE", CK_SLURM_DEADLINE, 1 },        { "  RUNNING", CK_SLURM_RUNNING, 0 },
    { "", CK_SLURM_UNKNOWN, 0 },                 { "running", CK_SLURM_UNKNOWN, 0 },
    { "PENDINGX", CK_SLURM_UNKNOWN, 0 },         { "COMPLETED_", CK_SLURM_UNKNOWN, 0 },
  };

  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    int st = ck_slurm_state(t[i].text);
    ok(st == t[i].state && ck_slurm_final(st) == t[i].final, "state '%s' -> %s (final %d)", t[i].text,
       ck_slurm_state_name(st), ck_slurm_final(st));
  }
  ok(ck_slurm_final(CK_SLURM_GONE), "a job squeue forgot is over");
}

static void outcomes(void)
{
  static const struct {
    struct ck_slurm_end e;
    int want;
    const char *why;
  } t[] = {
    { { CK_SLURM_COMPLETED, 1, 0, 0, 0 }, CK_SLURM_USE_RESULT, "completed with a result" },
    { { CK_SLURM_TIMEOUT, 1, 0, -1, 0 }, CK_SLURM_USE_RESULT, "a result counts even if the job then timed out" },
    { { CK_SLURM_CANCELLED, 1, 0, 0, 1 }, CK_SLURM_USE_RESULT, "a result written before our cancel counts" },
    { { CK_SLURM_CANCELLED, 0, 0, -1, 1 }, CK_SLURM_ABORTED, "our own scancel: aborted" },
    { { CK_SLURM_CANCELLED, 1, 1, 0, 1 }, CK_SLURM_ABORTED, "our own scancel, the worker saying it stopped: aborted" },
    { { CK_SLURM_GONE, 0, 0, -1, 1 }, CK_SLURM_ABORTED, "our cancel, state forgotten: aborted" },
    { { CK_SLURM_CANCELLED, 0, 0, -1, 0 }, CK_SLURM_CANCELLED_BY, "someone else's scancel: failed" },
    { { CK_SLURM_CANCELLED, 1, 1, 0, 0 }, CK_SLURM_CANCELLED_BY, "someone else's scancel, the worker saying it stopped" },
    { { CK_SLURM_TIMEOUT, 1, 1, 0, 0 }, CK_SLURM_RETRY, "a time limit's SIGTERM stopped the worker: retry" },
    { { CK_SLURM_NODE_FAIL, 1, 1, -1, 0 }, CK_SLURM_RETRY, "a node failure's signal stopped the worker: retry" },
    { { CK_SLURM_TIMEOUT, 0, 0, -1, 0 }, CK_SLURM_RETRY, "TIMEOUT: retry" },
    { { CK_SLURM_NODE_FAIL, 0, 0, -1, 0 }, CK_SLURM_RETRY, "NODE_FAIL: retry" },
    { { CK_SLURM_PREEMPTED, 0, 0, -1, 0 }, CK_SLURM_RETRY, "PREEMPTED: retry" },
    { { CK_SLURM_OUT_OF_MEMORY, 0, 0, -1, 0 }, CK_SLURM_RETRY, "OUT_OF_MEMORY: retry" },
    { { CK_SLURM_FAILED, 0, 0, -1, 0 }, CK_SLURM_RETRY, "FAILED without an exit line: retry" },
    { { CK_SLURM_BOOT_FAIL, 0, 0, -1, 0 }, CK_SLURM_RETRY, "BOOT_FAIL: retry" },
    { { CK_SLURM_GONE, 0, 0, -1, 0 }, CK_SLURM_RETRY, "forgotten, no report: retry" },
    { { CK_SLURM_COMPLETED, 0, 0, 0, 0 }, CK_SLURM_RETRY, "exit 0 and no result: retry" },
    { { CK_SLURM_COMPLETED, 0, 0, 139, 0 }, CK_SLURM_CRASHED, "SIGSEGV in the worker: a crash, as locally" },
    { { CK_SLURM_OUT_OF_MEMORY, 0, 0, 137, 0 }, CK_SLURM_RETRY, "the cgroup's OOM kill (exit 137): retry, not corrupt" },
    { { CK_SLURM_TIMEOUT, 0, 0, 143, 0 }, CK_SLURM_RETRY, "the time limit's SIGTERM (exit 143): retry" },
    { { CK_SLURM_COMPLETED, 0, 0, 137, 0 }, CK_SLURM_RETRY, "SIGKILL from outside: retry, not corrupt" },
    { { CK_SLURM_RUNNING, 1, 1, 143, 0 }, CK_SLURM_RETRY, "SIGTERM from outside, state not final yet: retry" },
    { { CK_SLURM_COMPLETED, 0, 0, 135, 0 }, CK_SLURM_CRASHED, "SIGBUS in the worker: a crash" },
    { { CK_SLURM_TIMEOUT, 0, 0, -1, 1 }, CK_SLURM_ABORTED, "our cancel racing a time limit: aborted" },
    { { CK_SLURM_COMPLETED, 0, 0, 134, 0 }, CK_SLURM_CRASHED, "SIGABRT in the worker: a crash" },
    { { CK_SLURM_COMPLETED, 0, 0, 127, 0 }, CK_SLURM_REFUSED, "ckptd not found on the node: blocked" },
    { { CK_SLURM_COMPLETED, 0, 0, 126, 0 }, CK_SLURM_REFUSED, "ckptd not executable on the node: blocked" },
    { { CK_SLURM_COMPLETED, 0, 0, 1, 0 }, CK_SLURM_RETRY, "exit 1 without a result: retry" },
    { { CK_SLURM_COMPLETED, 0, 0, 300, 0 }, CK_SLURM_RETRY, "an exit status no signal gives: retry" },
  };

  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
    ok(ck_slurm_outcome(&t[i].e) == t[i].want, "%s", t[i].why);
}

static void parsing(void)
{
  uint64_t id = 0;

  ok(ck_slurm_parse_jobid("1234\n", &id) == 0 && id == 1234, "sbatch --parsable: ID");
  ok(ck_slurm_parse_jobid("77;cluster1\n", &id) == 0 && id == 77, "sbatch --parsable: ID;CLUSTER");
  ok(ck_slurm_parse_jobid("", &id) != 0, "nothing is no id");
  ok(ck_slurm_parse_jobid("0\n", &id) != 0, "0 is no job");
  ok(ck_slurm_parse_jobid("12abc", &id) != 0, "trailing junk is refused");
  ok(ck_slurm_parse_jobid("Submitted batch job 5", &id) != 0, "sbatch without --parsable is not parsed");
  ok(ck_slurm_parse_jobid("99999999999999999999999", &id) != 0, "an overflowing id is refused");
  ok(ck_slurm_unreachable("sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)"),
     "an unreachable controller is transient");
  ok(ck_slurm_unreachable("squeue: error: slurm_load_jobs error: Socket timed out on send/recv operation"),
     "a timeout is transient");
  ok(!ck_slurm_unreachable("sbatch: error: invalid partition specified: gpu"), "an invalid partition is a refusal");
  ok(ck_slurm_unknown_job("slurm_load_jobs error: Invalid job id specified"), "squeue's unknown job");
  ok(ck_slurm_cancelled_by("CANCELLED by 1000") == 1000, "sacct names who cancelled");
  ok(ck_slurm_cancelled_by("CANCELLED") == -1, "or does not");
  {
    char a[9], b[9], c[9];
    ck_slurm_temp_tag("0123abcd", a);
    ck_slurm_temp_tag("0123abcd", b);
    ck_slurm_temp_tag("0123abce", c);
    ok(strlen(a) == 8 && strcmp(a, b) == 0 && strcmp(a, c) != 0 && strcmp(a, "0123abcd") != 0,
       "the Slurm jobs' temporaries' tag: one per instance, not the instance's own (%s)", a);
  }
  ok(ck_slurm_mem_mb(64u << 20) == 320 && ck_slurm_mem_mb(1) == 257, "memory asked: buffer + 256 MiB, in MiB up");
}

static int has(char **argv, const char *want)
{
  for (; *argv; argv++)
    if (strcmp(*argv, want) == 0)
      return 1;
  return 0;
}

static void sbatch_args(void)
{
  struct ck_slurm_req r = { "--partition=debug  --time=01:00:00 --comment='two words'", "ckptd:model.ckpt-1",
                            "/d/50%/.out", "/d/.script", "0123abcd", 320, 2 };
  int bad = 0, n = 0;
  char **argv = ck_slurm_sbatch_argv(&r, &bad);

  ok(argv != NULL && !bad, "sbatch argv built");
  if (argv == NULL)
    return;
  while (argv[n])
    n++;
  ok(strcmp(argv[0], "sbatch") == 0 && has(argv, "--parsable") && has(argv, "--mem=320M") &&
     has(argv, "--cpus-per-task=2") && has(argv, "--no-requeue") && has(argv, "--output=/d/50%%/.out") &&
     has(argv, "--export=ALL,CKPTD_INSTANCE=0123abcd") && has(argv, "--job-name=ckptd:model.ckpt-1"),
     "ours: parsable, memory, cpus, no requeue, output, instance");
  ok(has(argv, "--partition=debug") && has(argv, "--time=01:00:00") && has(argv, "--comment=two words"),
     "the configured options, split at blanks, quotes grouping");
  ok(strcmp(argv[n - 1], "/d/.script") == 0, "the script comes last");
  ck_strv_free(argv);
  r.options = "--comment='open";
  ok(ck_slurm_sbatch_argv(&r, &bad) == NULL && bad, "an unterminated quote is a configuration error");
  r.options = NULL;
  argv = ck_slurm_sbatch_argv(&r, &bad);
  ok(argv && !bad, "no options is fine");
  ck_strv_free(argv);
}

static void script(void)
{
  char *q = ck_sh_quote("it's");
  char *args[] = { "/usr/bin/ckptd", "--worker", "convert", "--src", "/m/a b", NULL };
  char *s = ck_slurm_script(args, "/m/.rep'x", "0123abcd");

  ok(q && strcmp(q, "'it'\\''s'") == 0, "sh quoting: %s", q ? q : "(null)");
  ok(s && strstr(s, "'/usr/bin/ckptd' '--worker' 'convert' '--src' '/m/a b' 3>>'/m/.rep'\\''x'\n") != NULL,
     "the worker's command line, quoted, protocol to the report");
  ok(s && strstr(s, "echo \"exit $?\" >>'/m/.rep'\\''x'") != NULL, "its exit status recorded");
  ok(s && strstr(s, "CKPTD_TEMP_OWNER=\"${SLURM_JOB_ID:-$$}\"") != NULL, "temporaries named by the job id");
  ok(s && strncmp(s, "#!/bin/sh\n", 10) == 0, "a sh script");
  ok(s && strstr(s, "CKPTD_INSTANCE='0123abcd'; export CKPTD_INSTANCE") != NULL,
     "the temporaries' tag set in the script, whatever --export says");
  free(q);
  free(s);
}

int main(void)
{
  states();
  outcomes();
  parsing();
  sbatch_args();
  script();
  printf("1..%d\n", tap_count);
  return tap_failed ? 1 : 0;
}
