/* A candidate's life, row by row: every input that matters to ck_next_after_check,
 * ck_next_after_probe, ck_next_source, ck_next_after_job and ck_mark_judge, with
 * fake stats and times. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "../daemon/decide.h"
#include "../daemon/record.h"
#include "tap.h"
#include "../daemon/transition.h"
#include "../daemon/wproto.h"

static const char *act_name(int a)
{
  static const char *n[] = { "idle", "wait", "settle", "fail", "probe", "decide", "skip" };
  return a >= 0 && a < 7 ? n[a] : "?";
}

static void check_rows(void)
{
  static const struct {
    const char *what;
    struct ck_check_seen in;
    int act;
    double delay;
  } t[] = {
    /* kind, res, age, settle, have_sig, prev_sig, sig */
    { "no .index yet", { CK_KIND_SAVER, CK_CHECK_WAIT, 100, 2, 1, 1, 1 }, CK_ACT_WAIT, 0 },
    { "shards short: wait even if old", { CK_KIND_SAVER, CK_CHECK_WAIT, 1e6, 2, 0, 0, 0 }, CK_ACT_WAIT, 0 },
    { "written 0.5 s ago: look at settle", { CK_KIND_SAVER, CK_CHECK_READY, 0.5, 2, 0, 0, 7 }, CK_ACT_SETTLE, 1.51 },
    { "mtime in the future: settle", { CK_KIND_H5, CK_CHECK_READY, -3, 2, 0, 0, 7 }, CK_ACT_SETTLE, 5.01 },
    { "quiet but changed since last check", { CK_KIND_SAVER, CK_CHECK_READY, 9, 2, 1, 6, 7 }, CK_ACT_SETTLE, 2 },
    { "quiet, unchanged bundle: decide", { CK_KIND_SAVER, CK_CHECK_READY, 9, 2, 1, 7, 7 }, CK_ACT_DECIDE, 0 },
    { "quiet, first look at an old bundle", { CK_KIND_SAVER, CK_CHECK_READY, 9, 2, 0, 0, 7 }, CK_ACT_DECIDE, 0 },
    { "quiet HDF5 file: probe before deciding", { CK_KIND_H5, CK_CHECK_READY, 9, 2, 1, 7, 7 }, CK_ACT_PROBE, 0 },
    { "corrupt but recent: settle first", { CK_KIND_SAVER, CK_CHECK_CORRUPT, 1, 2, 0, 0, 7 }, CK_ACT_SETTLE, 1.01 },
    { "corrupt and changing: settle", { CK_KIND_SAVER, CK_CHECK_CORRUPT, 9, 2, 1, 1, 7 }, CK_ACT_SETTLE, 2 },
    { "corrupt and settled: fail", { CK_KIND_SAVER, CK_CHECK_CORRUPT, 9, 2, 1, 7, 7 }, CK_ACT_FAIL, 0 },
    { "settle 0: at once", { CK_KIND_SAVER, CK_CHECK_READY, 0, 0, 0, 0, 7 }, CK_ACT_DECIDE, 0 },
    { "quiet, complete safetensors: decide", { CK_KIND_SAFETENSORS, CK_CHECK_READY, 9, 2, 1, 7, 7 }, CK_ACT_DECIDE, 0 },
    { "quiet, complete torch zip: decide", { CK_KIND_TORCH, CK_CHECK_READY, 9, 2, 1, 7, 7 }, CK_ACT_DECIDE, 0 },
    { "half-written safetensors: wait", { CK_KIND_SAFETENSORS, CK_CHECK_WAIT, 9, 2, 1, 7, 7 }, CK_ACT_WAIT, 0 },
    { "quiet .mdl that is not HDF5: skip", { CK_KIND_H5, CK_CHECK_NOT, 9, 2, 1, 7, 7 }, CK_ACT_SKIP, 0 },
    { "not a checkpoint, but recent: settle first", { CK_KIND_TORCH, CK_CHECK_NOT, 1, 2, 0, 0, 7 }, CK_ACT_SETTLE, 1.01 },
  };

  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    struct ck_next n = ck_next_after_check(&t[i].in);
    ok(n.act == t[i].act && (n.act != CK_ACT_SETTLE || (n.delay > t[i].delay - 1e-9 && n.delay < t[i].delay + 1e-9)),
       "check: %s -> %s %.2f", t[i].what, act_name(n.act), n.delay);
  }
}

static void probe_rows(void)
{
  static const struct {
    const char *what;
    struct ck_probe_seen in;
    int act;
  } t[] = {
    /* cancelled, touched, changed, failed, crashed, verdict, ours, settle */
    { "ready", { 0, 0, 0, 0, 0, CK_PROBE_READY, 0, 2 }, CK_ACT_DECIDE },
    { "stopping wins over everything", { 1, 1, 1, 1, 1, CK_PROBE_CORRUPT, 0, 2 }, CK_ACT_IDLE },
    { "an event during the probe", { 0, 1, 0, 0, 0, CK_PROBE_READY, 0, 2 }, CK_ACT_SETTLE },
    { "an event during a crash: look again, not fail", { 0, 1, 0, 1, 1, 0, 0, 2 }, CK_ACT_SETTLE },
    { "size or mtime moved under the probe", { 0, 0, 1, 0, 0, CK_PROBE_READY, 0, 2 }, CK_ACT_SETTLE },
    { "a corrupt verdict on a file that moved", { 0, 0, 1, 0, 0, CK_PROBE_CORRUPT, 0, 2 }, CK_ACT_SETTLE },
    { "libhdf5 crashed: fail this source", { 0, 0, 0, 1, 1, 0, 0, 2 }, CK_ACT_FAIL },
    { "crashed; stat changed meanwhile is unknown", { 0, 0, 1, 1, 1, 0, 0, 2 }, CK_ACT_FAIL },
    { "corrupt", { 0, 0, 0, 0, 0, CK_PROBE_CORRUPT, 0, 2 }, CK_ACT_FAIL },
    { "the worker could not look (no process, EIO): again in 5 s", { 0, 0, 0, 1, 0, 0, 0, 2 }, CK_ACT_SETTLE },
    { "open for write / short of its EOA", { 0, 0, 0, 0, 0, CK_PROBE_WAIT, 0, 2 }, CK_ACT_WAIT },
    { "ckptd's own .h5 of a bundle", { 0, 0, 0, 0, 0, CK_PROBE_READY, 1, 2 }, CK_ACT_SKIP },
    { "ours but still being written", { 0, 0, 0, 0, 0, CK_PROBE_WAIT, 1, 2 }, CK_ACT_WAIT },
  };

  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    struct ck_next n = ck_next_after_probe(&t[i].in);
    ok(n.act == t[i].act && (n.act != CK_ACT_SETTLE || n.delay == (t[i].in.failed && !t[i].in.touched ? 5 : t[i].in.settle)),
       "probe: %s -> %s %.0f", t[i].what, act_name(n.act), n.delay);
  }
}

static void source_rows(void)
{
  static const char *need[] = { "done", "failed", "ours", "theirs", "adopt", "convert", "reconvert", "skipped" };
  enum { N = CK_SEEN_NONE, D = CK_REC_DONE, F = CK_REC_FAILED, Q = CK_REC_QUEUED, K = CK_REC_SKIPPED };
  enum { RT = CK_FORCE_RETRY, RC = CK_FORCE_RECONVERT };
  static const struct {
    const char *what;
    struct ck_source_seen in;
    int need;
  } t[] = {
    /* rec, rec_same, rec_dst, is_output, dst_exists, dst_mark, force */
    { "new source, nothing beside it", { N, 0, 0, 0, 0, CK_MARK_NONE, 0 }, CK_NEED_CONVERT },
    { "converted, unchanged", { D, 1, 1, 0, 1, CK_MARK_SAME, 0 }, CK_NEED_NONE_DONE },
    { "converted, unchanged, output deleted by hand: not resurrected", { D, 1, 1, 0, 0, 0, 0 }, CK_NEED_NONE_DONE },
    { "converted, rewritten since", { D, 0, 1, 0, 1, CK_MARK_STALE, 0 }, CK_NEED_RECONVERT },
    { "converted, rewritten, no xattrs here", { D, 0, 1, 0, 1, CK_MARK_NONE, 0 }, CK_NEED_RECONVERT },
    { "converted, rewritten, output gone", { D, 0, 1, 0, 0, 0, 0 }, CK_NEED_RECONVERT },
    { "failed, unchanged", { F, 1, 0, 0, 0, 0, 0 }, CK_NEED_NONE_FAILED },
    { "failed, rewritten", { F, 0, 0, 0, 0, 0, 0 }, CK_NEED_CONVERT },
    { "ckptd's own output (by the record)", { N, 0, 0, 1, 0, 0, 0 }, CK_NEED_NONE_OURS },
    { "the trainer wrote both formats", { N, 0, 0, 0, 1, CK_MARK_NONE, 0 }, CK_NEED_NONE_THEIRS },
    { "state_dir lost, our output current", { N, 0, 0, 0, 1, CK_MARK_SAME, 0 }, CK_NEED_ADOPT },
    { "state_dir lost, source rewritten since", { N, 0, 0, 0, 1, CK_MARK_STALE, 0 }, CK_NEED_RECONVERT },
    { "state_dir lost, our output of a same-named other source", { N, 0, 0, 0, 1, CK_MARK_OTHER, 0 },
      CK_NEED_NONE_THEIRS },
    { "interrupted after publishing: mark says current", { Q, 0, 1, 0, 1, CK_MARK_SAME, 0 }, CK_NEED_ADOPT },
    { "interrupted before publishing", { Q, 0, 1, 0, 0, 0, 0 }, CK_NEED_CONVERT },
    { "queued, a file of that name with no mark (no xattrs)", { Q, 0, 1, 0, 1, CK_MARK_NONE, 0 }, CK_NEED_CONVERT },
    { "failed, then the trainer's other format appeared", { F, 0, 0, 0, 1, CK_MARK_NONE, 0 }, CK_NEED_NONE_THEIRS },
    { "skipped by an operator, unchanged", { K, 1, 0, 0, 0, 0, 0 }, CK_NEED_NONE_SKIPPED },
    { "skipped, then rewritten", { K, 0, 0, 0, 0, 0, 0 }, CK_NEED_CONVERT },
    { "retry: past a failure", { F, 1, 0, 0, 0, 0, RT }, CK_NEED_CONVERT },
    { "retry: past a skip", { K, 1, 0, 0, 0, 0, RT }, CK_NEED_CONVERT },
    { "retry of a done conversion: still done", { D, 1, 1, 0, 1, CK_MARK_SAME, RT }, CK_NEED_NONE_DONE },
    { "reconvert a done conversion", { D, 1, 1, 0, 1, CK_MARK_SAME, RC }, CK_NEED_RECONVERT },
    { "reconvert, output gone", { D, 1, 1, 0, 0, 0, RC }, CK_NEED_RECONVERT },
    { "reconvert never overwrites the trainer's file", { D, 1, 0, 0, 1, CK_MARK_NONE, RC }, CK_NEED_NONE_THEIRS },
    { "reconvert never converts ckptd's output back", { N, 0, 0, 1, 0, 0, RC }, CK_NEED_NONE_OURS },
  };

  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    int n = ck_next_source(&t[i].in);
    ok(n == t[i].need, "source: %s -> %s", t[i].what, n >= 0 && n < 8 ? need[n] : "?");
  }
}

static void job_rows(void)
{
  static const struct {
    const char *what;
    struct ck_job_seen in;
    struct ck_after_job out;
  } t[] = {
    /* rc, transient, blocked, stopping, attempts, dirty, settle -> state, record, attempts, delay */
    { "done", { 0, 0, 0, 0, 3, 0, 2 }, { CK_ST_DONE, CK_REC_DONE, 0, -1 } },
    { "done, files changed meanwhile: look again", { 0, 0, 0, 0, 0, 1, 2 }, { CK_ST_DONE, CK_REC_DONE, 0, 2 } },
    { "aborted by shutdown", { -ECANCELED, 0, 0, 1, 1, 1, 2 }, { CK_ST_WAITING, CK_SEEN_NONE, 1, -1 } },
    { "disk full: first retry in 5 s", { -ENOSPC, 1, 0, 0, 0, 0, 2 }, { CK_ST_RETRY, CK_SEEN_NONE, 1, 5 } },
    { "I/O error, 4th attempt: 40 s", { -EIO, 1, 0, 0, 3, 1, 2 }, { CK_ST_RETRY, CK_SEEN_NONE, 4, 40 } },
    { "transient while stopping: failed", { -EIO, 1, 0, 1, 0, 0, 2 }, { CK_ST_FAILED, CK_REC_FAILED, 0, -1 } },
    { "bad input", { -22, 0, 0, 0, 0, 0, 2 }, { CK_ST_FAILED, CK_REC_FAILED, 0, -1 } },
    { "bad input, rewritten meanwhile", { -22, 0, 0, 0, 0, 1, 2 }, { CK_ST_FAILED, CK_REC_FAILED, 0, 2 } },
    { "read-only directory: blocked, not recorded", { -EROFS, 0, 1, 0, 0, 0, 2 }, { CK_ST_BLOCKED, CK_SEEN_NONE, 0, -1 } },
    { "permission denied, rewritten meanwhile", { -EACCES, 0, 1, 0, 2, 1, 2 }, { CK_ST_BLOCKED, CK_SEEN_NONE, 2, 2 } },
    { "blocked while stopping: still blocked", { -EACCES, 0, 1, 1, 0, 0, 2 }, { CK_ST_BLOCKED, CK_SEEN_NONE, 0, -1 } },
  };

  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    struct ck_after_job r = ck_next_after_job(&t[i].in);
    ok(r.state == t[i].out.state && r.record == t[i].out.record && r.attempts == t[i].out.attempts &&
           r.delay == t[i].out.delay,
       "job: %s -> state %d record %d attempts %d delay %.0f", t[i].what, r.state, r.record, r.attempts, r.delay);
  }
}

static void mark_rows(void)
{
  static const struct {
    const char *mark, *name, *id;
    int want;
  } t[] = {
    { "model.ckpt-100 4096:1700000000123456789", "model.ckpt-100", "4096:1700000000123456789", CK_MARK_SAME },
    { "model.ckpt-100 4096:1700000000123456789", "model.ckpt-100", "4096:1700000000999999999", CK_MARK_STALE },
    { "model.ckpt-100 4096:1", "model.ckpt-10", "4096:1", CK_MARK_OTHER },
    { "my model.h5 12:3", "my model.h5", "12:3", CK_MARK_SAME }, /* names may hold spaces */
    { "my model.h5 12:3", "model.h5", "12:3", CK_MARK_OTHER },
    { "12:3", "12:3", "12:3", CK_MARK_NONE },                     /* no name */
    { "model 12-3", "model", "12-3", CK_MARK_NONE },              /* not an identity */
    { "model 123", "model", "123", CK_MARK_NONE },
    { "", "model", "1:2", CK_MARK_NONE },
    { NULL, "model", "1:2", CK_MARK_NONE },
  };

  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
    ok(ck_mark_judge(t[i].mark, t[i].name, t[i].id) == t[i].want, "mark \"%s\" for %s %s", t[i].mark ? t[i].mark : "(none)",
       t[i].name, t[i].id);
}

int main(void)
{
  check_rows();
  probe_rows();
  source_rows();
  job_rows();
  mark_rows();
  return tap_done();
}
