/* Worker process: one conversion or one probe, reported on fd 3.
 *
 * DESIGN: the daemon spawns `ckptd --worker ...` with a pipe as fd 3. The worker
 * disables HDF5's file locking before its first HDF5 call (a probe or a read must
 * never make a writer's own open fail with "unable to lock file"), applies the
 * resource limits it was given, turns SIGTERM into the converter's cancel flag (the
 * converter then removes its temporaries), and writes progress, then exactly one
 * result line. If it dies without a result line, the daemon knows it crashed. The
 * daemon's death is a SIGTERM to the worker (PR_SET_PDEATHSIG). */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "ckptfile.h"
#include "conf.h"
#include "convert.h"
#include "fileio.h"
#include "h5.h"
#include "h5_probe.h"
#include "pipeline.h"
#include "worker.h"
#include "wproto.h"

_Static_assert((int)CK_KIND_SAVER == (int)CK_FMT_SAVER && (int)CK_KIND_H5 == (int)CK_FMT_H5 &&
                   (int)CK_KIND_TORCH == (int)CK_FMT_TORCH && (int)CK_KIND_SAFETENSORS == (int)CK_FMT_SAFETENSORS &&
                   (int)CK_KINDS == (int)CK_FMT_COUNT,
               "a candidate's kind is its pipeline format");

static atomic_int cancel_flag; /* lock-free: set from a signal handler, read by converter threads */

static void on_term(int sig)
{
  (void)sig;
  atomic_store(&cancel_flag, 1);
}

static void report(const struct ck_wmsg *m)
{
  char line[CK_WPROTO_LINE_MAX + 64];
  size_t n = ck_wmsg_format(m, line, sizeof(line));

  (void)ck_write_full(CK_WORKER_FD, line, n); /* a daemon gone away: nothing to tell */
}

/* The disk guard: a conversion stops (its temporaries removed) when the output's
 * file system has less than min_free left, rather than fill the volume a trainer
 * writes its own checkpoints to. Checked with the progress reports: every 0.25 s,
 * and sooner when the bytes converted since the last look reach half of the room
 * left above min_free then, so that a fast conversion cannot run past the guard
 * between two looks (decompressing zeros writes gigabytes a second). */
struct guard {
  const char *dir;
  uint64_t min_free;
  double last;  /* monotonic seconds of the last look */
  int tripped;
  uint64_t seen; /* free bytes then */
  uint64_t done_then; /* bytes converted then */
};

static double now_mono(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
  struct ck_wmsg m = { .type = CK_WMSG_PROGRESS, .done = done, .total = total };
  struct guard *g = ctx;
  struct statvfs vfs;
  uint64_t room = g->seen > g->min_free ? g->seen - g->min_free : 0;

  report(&m);
  if (g->min_free == 0 || g->tripped ||
      (now_mono() - g->last < 0.25 && done - g->done_then < room / 2))
    return;
  g->last = now_mono();
  g->done_then = done;
  if (statvfs(g->dir, &vfs) == 0) {
    g->seen = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    if (g->seen < g->min_free) {
      g->tripped = 1;
      atomic_store(&cancel_flag, 1);
    }
  }
}

static void limit(int resource, uint64_t v)
{
  struct rlimit rl = { (rlim_t)v, (rlim_t)v };

  if (v)
    setrlimit(resource, &rl);
}

static int fail(int code, const char *text)
{
  struct ck_wmsg m = { .type = CK_WMSG_FAIL, .code = code < 0 ? code : -EIO };

  snprintf(m.text, sizeof(m.text), "%s", text);
  report(&m);
  return 1;
}

static void note(const char *text)
{
  struct ck_wmsg m = { .type = CK_WMSG_NOTE };

  snprintf(m.text, sizeof(m.text), "%s", text);
  report(&m);
}

/* The bundle is published: list it in its directory's `checkpoint` file as the
 * policy allows (ckptfile.h). A failure here leaves a good bundle unlisted: noted,
 * not a failed job. */
static void list_bundle(const struct ck_wjob *j)
{
  char *dir = ck_dirname(j->dst), *base = ck_basename(j->dst), why[CK_WPROTO_LINE_MAX - 100];
  struct ck_err err = { 0 };
  int updated = 0;

  if (dir == NULL || base == NULL)
    note("out of memory: the checkpoint file was not updated");
  else if (ck_ckptfile_update(dir, base, j->ckpt_policy, &updated, why, sizeof(why), &err) != 0)
    note(err.msg);
  else if (!updated && j->ckpt_policy != CK_CKPTFILE_NEVER)
    note(why);
  free(dir);
  free(base);
}

static int convert(struct ck_wjob *j)
{
  struct ck_convert_stats st = { 0 };
  struct ck_err err = { 0 };
  struct ck_wmsg m = { .type = CK_WMSG_DONE };
  char *dir = ck_dirname(j->dst);
  struct guard g = { dir ? dir : ".", j->min_free, 0, 0, 0, 0 };
  int rc;

  j->opts.cancel = &cancel_flag;
  j->opts.progress = on_progress;
  j->opts.progress_ctx = &g;
  j->opts.no_checkpoint_file = 1; /* the policy below decides, not the converter */
  j->opts.keep_foreign = 1;       /* a trainer's file that appeared meanwhile is never replaced */
  /* an HDF5 source's big groups: listed by as many processes, unless the worker's
   * memory or CPU is limited (each helper would get a whole limit of its own) */
  ck_h5_set_walkers(j->mem_limit || j->cpu_limit ? 1 : j->opts.threads);
  if (j->from == CK_KIND_SAVER && j->to == CK_KIND_H5)
    rc = ck_convert_tf_to_h5(j->src, j->dst, &j->opts, &st, &err);
  else if (j->from == CK_KIND_H5 && j->to == CK_KIND_SAVER)
    rc = ck_convert_h5_to_tf(j->src, j->dst, &j->opts, &st, &err);
  else /* the pipeline: any source to any sink (CK_KIND_* are pipeline.h's CK_FMT_*) */
    rc = ck_convert(j->src, j->dst, j->to, &j->opts, &st, &err);
  free(dir);
  if (rc != 0 && g.tripped) {
    snprintf(err.msg, sizeof(err.msg),
             "%s: free space on its file system fell to %llu bytes, under min_free (%llu): stopped, "
             "temporaries removed", j->dst, (unsigned long long)g.seen, (unsigned long long)g.min_free);
    return fail(CK_ENOROOM, err.msg);
  }
  if (rc != 0)
    return fail(rc, err.msg[0] ? err.msg : ck_strerror(rc));
  if (st.warning[0])
    note(st.warning);
  if (j->to == CK_KIND_SAVER)
    list_bundle(j);
  m.tensors = st.tensors;
  m.bytes = st.bytes;
  m.seconds = st.seconds;
  m.skipped = st.skipped;
  report(&m);
  return 0;
}

/* An .h5 that ckptd wrote from the bundle of the same name beside it is that bundle's
 * converted copy (whether or not the bundle is still there): the daemon never converts
 * it back. An .h5 made by ckptd from some other bundle (exported under another name)
 * is a source like any other. */
static int converted_copy(const char *path, const struct ck_h5r *r)
{
  static const char *const exts[] = { ".hdf5", ".h5", ".mdl" };
  const char *base = strrchr(path, '/'), *from = ck_h5r_source_name(r);
  size_t n;

  base = base ? base + 1 : path;
  n = strlen(base);
  for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++)
    if (n > strlen(exts[i]) && strcmp(base + n - strlen(exts[i]), exts[i]) == 0) {
      n -= strlen(exts[i]);
      break;
    }
  return ck_h5r_is_ckptd(r) && from[0] && strlen(from) == n && strncmp(base, from, n) == 0;
}

static int probe(const struct ck_wjob *j)
{
  struct ck_wmsg m = { .type = CK_WMSG_PROBE };
  struct ck_err err = { 0 };
  struct ck_h5r *r = NULL;
  struct stat before, after;
  int rc;

  if (stat(j->src, &before) != 0)
    return fail(-errno, strerror(errno));
  if (ck_h5_probe_busy(j->src, err.msg, sizeof(err.msg)) == 1) {
    rc = CK_EINCOMPLETE; /* a writer at work, or a copy still arriving: not an error */
  } else if (j->require_success && ck_h5_probe_success(j->src) == 0) {
    rc = CK_EINCOMPLETE;
    ck_err_set(&err, rc, "%s: no __SUCCESS__ attribute yet (require_success = yes)", j->src);
  } else if (!ck_h5_is_hdf5(j->src)) { /* .h5 or .mdl: HDF5 by its signature, whatever the name */
    rc = before.st_size == 0 ? CK_EINCOMPLETE : CK_EFORMAT;
    ck_err_set(&err, rc, "%s: %s", j->src, before.st_size == 0 ? "empty" : "no HDF5 signature: not an HDF5 file");
  } else {
    rc = ck_h5r_open(j->src, &r, &err);
    m.ours = rc == 0 && converted_copy(j->src, r);
    ck_h5r_close(r);
  }
  if (stat(j->src, &after) != 0)
    return fail(-errno, strerror(errno));
  m.size = (uint64_t)after.st_size;
  m.mtime_ns = (int64_t)after.st_mtim.tv_sec * 1000000000ll + after.st_mtim.tv_nsec;
  if (after.st_size != before.st_size || after.st_mtim.tv_sec != before.st_mtim.tv_sec ||
      after.st_mtim.tv_nsec != before.st_mtim.tv_nsec) {
    m.verdict = CK_PROBE_WAIT;
    snprintf(m.text, sizeof(m.text), "changed while probed");
  } else if (rc == 0) {
    m.verdict = CK_PROBE_READY;
  } else {
    /* not complete yet, rather than corrupt: a writer at work, an unfinished save
     * (workers take no HDF5 locks, so a writer's lock cannot be the reason) */
    m.verdict = rc == CK_EINCOMPLETE ? CK_PROBE_WAIT : CK_PROBE_CORRUPT;
    snprintf(m.text, sizeof(m.text), "%s", err.msg[0] ? err.msg : ck_strerror(rc));
  }
  report(&m);
  return 0;
}

int ck_worker_main(int argc, char **argv)
{
  struct ck_wjob j;
  struct sigaction sa;
  char msg[300];

  if (ck_wjob_parse(argc, argv, &j, msg, sizeof(msg)) != 0) {
    fprintf(stderr, "ckptd: %s\n", msg);
    return 2;
  }
  /* before the first HDF5 call: never take a lock a writer would trip over */
  setenv("HDF5_USE_FILE_LOCKING", "FALSE", 1);
  limit(RLIMIT_AS, j.mem_limit);
  limit(RLIMIT_CPU, j.cpu_limit);
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  /* a worker outliving its daemon (kill -9, a crash) aborts cleanly instead of
   * racing the restarted daemon's own job for the same source */
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() == 1)
    atomic_store(&cancel_flag, 1);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGXFSZ, SIG_IGN); /* a file size limit is a failed write, reported as such */
  ck_h5_init();
  return j.kind == CK_WJOB_PROBE ? probe(&j) : convert(&j);
}
