/* Scheduler.
 *
 * DESIGN: files reported by the watcher map to candidates: a TensorFlow prefix (from
 * PREFIX.index or PREFIX.data-*) or an HDF5 file. A candidate is checked once its
 * files have been quiet for settle_seconds (newest mtime older than that, and the
 * same sizes and mtimes as at the previous check). A check decides: incomplete
 * (wait for more events), corrupt (fail until the source changes), already done or
 * someone else's counterpart present (nothing to do), or ready (queue one job).
 * A source has at most one job; events during a job only mark it dirty. Results go
 * to the durable record before anything else depends on them.
 *
 * This file gathers facts (stats, probes, the record, output marks) and performs what
 * transition.c decides from them; every decision itself is pure and table-tested.
 * sched_status.c writes the status file and metrics, sched_ctl.c answers ckpt ctl;
 * sched_int.h is what the three share. */
#include "config.h"

#include <errno.h>
#include <fnmatch.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "bundle.h"
#include "ckptfile.h"
#include "decide.h"
#include "fileio.h"
#include "h5.h"
#include "hmap.h"
#include "hook.h"
#include "log.h"
#include "pool.h"
#include "probe.h"
#include "record.h"
#include "sched.h"
#include "status.h"
#include "transition.h"
#include "watch.h"

#include "sched_int.h"

const char *sched_dir_name(int from, int to)
{
  const char *name = ck_decide_dir_name(from, to);

  return name ? name : "?";
}

double sched_mono(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double sched_wall(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct sroot *sched_root(struct ck_sched *s, int id)
{
  for (int i = 0; i < s->nroots; i++)
    if (s->roots[i].id == id)
      return &s->roots[i];
  return NULL;
}

static void run_hook(struct ck_sched *s, const struct cand *c, const char *dst, int to, int ok,
                     const char *error, const char *reason, unsigned long long bytes, double seconds);

int sched_target(struct ck_sched *s, const struct cand *c)
{
  const struct sroot *r = sched_root(s, c->root);

  return r && c->kind > CK_KIND_NONE && c->kind < CK_KINDS ? r->conf->target[c->kind] : 0;
}

/* ---- naming: decide.c ---- */

static int wanted(const struct sroot *r, const char *path, int kind)
{
  const struct ck_watch_conf *w = r->conf;
  const char *rel = path + strlen(w->path);
  int inc = w->ninclude == 0;

  if (*rel == '/')
    rel++;
  if (w->target[kind] == 0) /* no direction from this format */
    return 0;
  for (int i = 0; i < w->ninclude && !inc; i++)
    inc = fnmatch(w->include[i], rel, 0) == 0;
  for (int i = 0; i < w->nexclude && inc; i++)
    inc = fnmatch(w->exclude[i], rel, 0) != 0;
  return inc;
}

/* ---- timers ---- */

static void on_tick(uv_timer_t *t);

/* Arm the timer for `when` unless it is already due earlier: checks happen when
 * they are due, not on a polling tick, and an idle daemon has no timer running. */
static void want_tick_at(struct ck_sched *s, double when)
{
  double now = sched_mono();

  if (s->stopping || (s->tick_due > 0 && s->tick_due <= when))
    return;
  s->tick_due = when;
  uv_timer_start(&s->tick, on_tick, when > now ? (uint64_t)((when - now) * 1000) + 1 : 0, 0);
}

/* A source's quiet time: its tree's settle_seconds, else [ckptd]'s. */
static double settle_of(struct ck_sched *s, const struct cand *c)
{
  const struct sroot *r = sched_root(s, c->root);

  return r && r->conf->settle_seconds >= 0 ? r->conf->settle_seconds : s->conf->settle_seconds;
}

void sched_settle(struct ck_sched *s, struct cand *c, double delay)
{
  if ((s->flags & CK_SCHED_ONCE) && delay > 0) { /* --once: still changing is not complete now */
    sched_plan(s, "wait", c->key, NULL, "written to within settle_seconds: not complete now");
    s->once.not_complete++;
    c->state = CK_ST_WAITING;
    return;
  }
  c->state = CK_ST_SETTLING;
  c->next_check = sched_mono() + delay;
  want_tick_at(s, c->next_check);
}

/* --dry-run and --once say what they do, one line per source on stdout. */
void sched_plan(struct ck_sched *s, const char *verb, const char *src, const char *dst, const char *why)
{
  if (!(s->flags & CK_SCHED_ONCE))
    return;
  printf("%-9s %s%s%s%s%s\n", verb, src, dst ? " -> " : "", dst ? dst : "", why ? ": " : "", why ? why : "");
  fflush(stdout);
}

/* ---- temporaries of a crashed run ---- */

static void maybe_cleanup(const char *path, int initial)
{
  const char *base = strrchr(path, '/');
  struct ck_temp_owner o;

  base = base ? base + 1 : path;
  if (!initial || ck_temp_owner(base, &o) != 0 || strcmp(o.instance, ck_temp_instance()) != 0)
    return; /* not a temporary, or another instance's (another host's, another state_dir's) */
  if (o.pid == getpid() || kill((pid_t)o.pid, 0) == 0)
    return; /* ours, or a live worker's */
  if (unlink(path) == 0) {
    struct ck_log_fields f = { path, NULL, -1, -1, NULL, NULL, NULL, 0 };
    ck_log(CK_LOG_INFO, "cleanup", &f, "removed a temporary left by an interrupted conversion");
  }
}

/* ---- file events ---- */

static int64_t mtime_ns(const struct stat *st)
{
  return (int64_t)st->st_mtim.tv_sec * 1000000000ll + st->st_mtim.tv_nsec;
}

static int stamp_find(const struct fstamps *v, uint64_t ino)
{
  for (int i = 0; i < v->n; i++)
    if (v->f[i].ino == ino)
      return i;
  return -1;
}

/* Remember a file's stamp, replacing an older one of the same inode. */
static void stamp_put(struct fstamps *v, const struct fstamp *f)
{
  int i = stamp_find(v, f->ino);

  if (i >= 0) {
    v->f[i] = *f;
    return;
  }
  if (v->n == v->cap) {
    int cap = v->cap ? v->cap * 2 : 4;
    struct fstamp *nf = realloc(v->f, (size_t)cap * sizeof(*nf));
    if (nf == NULL)
      return; /* only an optimisation is lost */
    v->f = nf;
    v->cap = cap;
  }
  v->f[v->n++] = *f;
}

static struct fstamp stamp_of(const struct stat *st)
{
  return (struct fstamp){ (uint64_t)st->st_ino, (uint64_t)st->st_size, mtime_ns(st) };
}

static int stamp_known(const struct fstamps *v, const struct stat *st)
{
  int i = stamp_find(v, (uint64_t)st->st_ino);

  return i >= 0 && v->f[i].size == (uint64_t)st->st_size && v->f[i].mtime_ns == mtime_ns(st);
}

/* After a check: what it stat'ed, plus files reported by events that it did not
 * look at (the data file of a corrupt index), one stamp per inode. */
static void stamps_merge(struct fstamps *into, struct fstamps *from)
{
  for (int i = 0; i < into->n; i++)
    if (stamp_find(from, into->f[i].ino) < 0)
      stamp_put(from, &into->f[i]);
  free(into->f);
  *into = *from;
  memset(from, 0, sizeof(*from));
}

/* Outcomes that only a change of the source's files can alter: settled ones, and
 * an incomplete checkpoint waiting for its missing files. */
static int stable(const struct cand *c)
{
  return c->state == CK_ST_DONE || c->state == CK_ST_FAILED || c->state == CK_ST_SKIPPED ||
         c->state == CK_ST_WAITING || c->state == CK_ST_BLOCKED;
}

void ck_sched_on_file(void *ctx, int root, const char *path, const struct stat *st, int initial)
{
  struct ck_sched *s = ctx;
  struct sroot *r = sched_root(s, root);
  struct cand *c;
  char *key;
  int kind;

  if (!(s->flags & CK_SCHED_DRY_RUN))
    maybe_cleanup(path, initial);
  if ((s->flags & CK_SCHED_ONCE) && !initial)
    return; /* --once: what the start-up scan found is "now"; later files (ours too) are not */
  if (r == NULL || s->stopping || (kind = ck_decide_classify(path, &key)) == CK_KIND_NONE)
    return;
  if (!wanted(r, key, kind) || ((s->flags & CK_SCHED_ONCE) && ck_record_by_output(s->rec, key))) {
    free(key); /* (--once: ckptd's own outputs are not sources, and not worth a line) */
    return;
  }
  if ((c = ck_hmap_get(s->cands, key)) != NULL) {
    c->gen = s->gen;
    if (sched_root(s, c->root) == NULL) { /* its tree was removed and added again (a new id) */
      c->root = root;
      if (c->state == CK_ST_SKIPPED)
        c->state = CK_ST_WAITING;
      c->seen.n = 0; /* look at it afresh */
    }
    if (stable(c)) {
      if (stamp_known(&c->seen, st)) {
        free(key); /* an unchanged file of a settled source: a stat was all it cost */
        return;
      }
      struct fstamp f = stamp_of(st);
      stamp_put(&c->seen, &f);
    }
  }
  if (c == NULL) {
    if ((c = calloc(1, sizeof(*c))) == NULL) {
      free(key);
      return;
    }
    c->key = key;
    c->kind = kind;
    c->root = root;
    c->gen = s->gen;
    c->state = CK_ST_SETTLING;
    ck_hmap_put(s->cands, key, c, NULL);
  } else {
    free(key);
  }
  if (c->state == CK_ST_QUEUED || c->state == CK_ST_RUNNING) {
    c->dirty = 1;
    return;
  }
  if (c->checking) {
    /* a rescan re-reporting a file as the check saw it is no change: touching it would
     * discard a probe that waited longer than rescan_seconds, again at every rescan */
    if (!stamp_known(&c->seen, st))
      c->touched = 1;
    return;
  }
  if (c->state == CK_ST_RETRY && c->next_check > sched_mono())
    return; /* its backoff decides */
  if (c->state != CK_ST_SETTLING || c->next_check == 0)
    sched_settle(s, c, 0);
}

/* ---- checking a candidate ---- */

static uint64_t mix(uint64_t h, uint64_t v)
{
  return (h ^ v) * 0x100000001b3ull + 0x9e3779b97f4a7c15ull;
}

/* What a check gathers about a candidate's files. */
struct gather {
  uint64_t sig;
  double newest;
  struct ck_ident id;
  struct fstamps seen;
};

/* Add a file's size and mtime to the signature; track the newest mtime. */
static int stat_into(const char *path, struct gather *g)
{
  struct stat st;
  double m;

  if (stat(path, &st) != 0)
    return -errno;
  m = (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec / 1e9;
  g->sig = mix(mix(mix(g->sig, (uint64_t)st.st_size), (uint64_t)st.st_mtim.tv_sec), (uint64_t)st.st_mtim.tv_nsec);
  if (m > g->newest)
    g->newest = m;
  g->id.size += (uint64_t)st.st_size;
  if (mtime_ns(&st) > g->id.mtime_ns)
    g->id.mtime_ns = mtime_ns(&st);
  {
    struct fstamp f = stamp_of(&st);
    stamp_put(&g->seen, &f);
  }
  return 0;
}

static int check_saver(const char *key, struct gather *g, char **why)
{
  struct ck_bundle *b;
  struct ck_err err = { 0 };
  char *index = ck_asprintf("%s.index", key);
  struct stat st;
  int rc;

  if (index == NULL || stat(index, &st) != 0) {
    *why = strdup("no .index yet");
    free(index);
    return CK_CHECK_WAIT;
  }
  g->id = (struct ck_ident){ (uint64_t)st.st_dev, (uint64_t)st.st_ino, 0, 0 };
  stat_into(index, g);
  free(index);
  rc = ck_bundle_open(key, 0, &b, &err);
  if (rc == CK_ENOTFOUND || rc == CK_ETRUNC) {
    *why = strdup(err.msg); /* shards missing or still short: not complete */
    return CK_CHECK_WAIT;
  }
  if (rc != 0) {
    *why = strdup(err.msg);
    return CK_CHECK_CORRUPT;
  }
  for (int i = 0; i < ck_bundle_num_shards(b); i++)
    stat_into(ck_bundle_shard_path(b, i), g);
  ck_bundle_close(b);
  return CK_CHECK_READY;
}

/* A single-file source: stats, then probe.c's few reads (a torch zip's central
 * directory, a safetensors header, an .mdl's HDF5 signature). Opening an HDF5 file is
 * a probe done in a worker process (a hostile file may crash libhdf5), once the file
 * has settled. */
static int check_file(const char *key, int kind, struct gather *g, char **why)
{
  struct stat st;

  if (stat(key, &st) != 0) {
    *why = strdup("gone");
    return CK_CHECK_WAIT;
  }
  g->id = (struct ck_ident){ (uint64_t)st.st_dev, (uint64_t)st.st_ino, 0, 0 };
  stat_into(key, g);
  return ck_probe_file(key, kind, why);
}

static void queue_job(struct ck_sched *s, struct cand *c, char *dst);

void sched_record(struct ck_sched *s, struct cand *c, int status, const char *out, const char *err, long long ms)
{
  struct ck_rec e = { c->key, status, ck_decide_dir_code(c->kind, sched_target(s, c)), c->id, ms, sched_wall(),
                      (char *)out, (char *)err };
  int rc = ck_record_put(s->rec, &e);

  if (rc != 0) {
    struct ck_log_fields f = { c->key, NULL, -1, -1, NULL, strerror(-rc), NULL, 0 };
    ck_log(CK_LOG_ERROR, "record", &f, "cannot append to the record: %s", strerror(-rc));
  }
}

static int same_ident(const struct ck_ident *a, const struct ck_ident *b)
{
  return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime_ns == b->mtime_ns;
}

/* The mark on an existing output (transition.h's CK_MARK_*). */
int sched_output_mark(const struct cand *c, const char *dst, int to)
{
  char *file = ck_decide_output_file(dst, to);
  char *name = ck_basename(c->key), mark[600], id[64];
  int judged = CK_MARK_NONE;

  ck_source_id_format(c->id.size, c->id.mtime_ns, id, sizeof(id));
  if (file && name && ck_mark_get(file, mark, sizeof(mark)) == 0)
    judged = ck_mark_judge(mark, name, id);
  free(file);
  free(name);
  return judged;
}

/* Take a changed source's output out of the checkpoint file ckptd maintains: it no
 * longer is what that source holds (the conversion puts it back when it is). */
static void forget_output(const char *dst, int to, const struct ck_log_fields *f)
{
  char *dir, *base;
  struct ck_err err = { 0 };
  int updated = 0;

  if (to != KIND_SAVER)
    return;
  dir = ck_dirname(dst);
  base = ck_basename(dst);
  if (dir && base && ck_ckptfile_forget(dir, base, &updated, &err) != 0)
    ck_log(CK_LOG_WARN, "checkpoint_file", f, "%s", err.msg);
  free(dir);
  free(base);
}

/* 1 if the source carries ckptd's mark as the converted copy of the source beside it
 * that its name comes from (a bundle: on its .index): ckptd's own output, whichever
 * direction wrote it, so no pair of directions ever converts it back, and no output is
 * chained into another direction's source. The record says so too; the mark holds
 * when state_dir was lost. */
static int marked_copy(const struct cand *c)
{
  char *file = ck_decide_output_file(c->key, c->kind), mark[600], *sp;
  int yes = 0;

  if (file && ck_mark_get(file, mark, sizeof(mark)) == 0 && (sp = strrchr(mark, ' ')) != NULL) {
    *sp = '\0';
    yes = ck_decide_converted_copy(c->key, c->kind, mark);
  }
  free(file);
  return yes;
}

/* Decide what a complete source needs, from the record and the files. */
static void decide(struct ck_sched *s, struct cand *c)
{
  static const struct {
    int need;
    const char *verb, *why;
    int state;
  } settled[] = {
    { CK_NEED_NONE_SKIPPED, "skip", "skipped by an operator (ckpt ctl skip), unchanged since", CK_ST_SKIPPED },
    { CK_NEED_NONE_DONE, "done", "converted before, unchanged since", CK_ST_DONE },
    { CK_NEED_NONE_FAILED, "failed", "failed before, unchanged since", CK_ST_FAILED },
    { CK_NEED_NONE_OURS, "skip", "ckptd wrote it: never converted back", CK_ST_SKIPPED },
  };
  int need, to = sched_target(s, c);
  const struct ck_rec *rec = ck_record_get(s->rec, c->key);
  char *dst = to ? ck_decide_output(c->key, c->kind, to) : NULL;
  char *probe = dst ? ck_decide_output_file(dst, to) : NULL;
  struct ck_source_seen in = { rec ? rec->status : CK_SEEN_NONE, rec && same_ident(&rec->id, &c->id),
                               rec && rec->output && dst && strcmp(rec->output, dst) == 0,
                               ck_record_by_output(s->rec, c->key) != NULL || marked_copy(c),
                               probe && access(probe, F_OK) == 0, CK_MARK_NONE, c->force };
  struct ck_log_fields f = { c->key, sched_dir_name(c->kind, to), -1, -1, dst, NULL, NULL, 0 };

  free(probe);
  if (sched_root(s, c->root) == NULL || to == 0) { /* its tree was removed, or its direction, by a reload */
    c->state = CK_ST_SKIPPED;
    free(dst);
    return;
  }
  if (dst == NULL) {
    sched_settle(s, c, 5);
    return;
  }
  if (in.dst_exists)
    in.dst_mark = sched_output_mark(c, dst, to);
  need = ck_next_source(&in);
  if (need != CK_NEED_CONVERT && need != CK_NEED_RECONVERT)
    c->force = CK_FORCE_NONE; /* an operator's request counts until it is answered */
  for (size_t i = 0; i < sizeof(settled) / sizeof(settled[0]); i++)
    if (settled[i].need == need) { /* nothing to do, nothing to log */
      sched_plan(s, settled[i].verb, c->key, need == CK_NEED_NONE_DONE ? dst : NULL, settled[i].why);
      c->state = settled[i].state;
      free(dst);
      return;
    }
  switch (need) {
  case CK_NEED_NONE_THEIRS:
    ck_log(CK_LOG_DEBUG, "skip", &f, "the output's name is taken by a file ckptd did not write; not converting");
    sched_plan(s, "skip", c->key, dst, "the output's name is taken by a file ckptd did not write");
    c->state = CK_ST_SKIPPED;
    break;
  case CK_NEED_ADOPT:
    ck_log(CK_LOG_INFO, "adopt", &f, "ckptd's output of this source as it is now is already there; recorded as done");
    sched_plan(s, "adopt", c->key, dst, "ckptd's output of it as it is now is there: recorded as done");
    sched_record(s, c, CK_REC_QUEUED, dst, NULL, 0);
    sched_record(s, c, CK_REC_DONE, dst, NULL, 0);
    c->state = CK_ST_DONE;
    break;
  case CK_NEED_RECONVERT:
    ck_log(CK_LOG_INFO, "source_changed", &f, "the source changed since it was converted: converting it again");
    if (!(s->flags & CK_SCHED_DRY_RUN))
      forget_output(dst, to, &f);
    /* fall through */
  default:
    queue_job(s, c, dst);
    return;
  }
  free(dst);
}

/* A check reads the checkpoint's files (an index parse, an HDF5 open), so it runs on
 * libuv's pool, which exists for file-system work; its result is applied on the loop. */
struct check_req {
  uv_work_t req;
  struct ck_sched *s;
  struct cand *c;
  char *key;
  int kind;
  int res;
  struct gather g;
  char *why;
};

static void check_work(uv_work_t *w)
{
  struct check_req *q = w->data;

  q->g.sig = 0xcbf29ce484222325ull;
  q->res = q->kind == KIND_SAVER ? check_saver(q->key, &q->g, &q->why) : check_file(q->key, q->kind, &q->g, &q->why);
}

/* Not a valid checkpoint: recorded once, retried only when it changes. Takes why.
 * A source that was converted and has since been rewritten into this no longer
 * matches its output: that output leaves the checkpoint file ckptd maintains. */
static void fail_corrupt(struct ck_sched *s, struct cand *c, char *why, int reason)
{
  const struct ck_rec *rec = ck_record_get(s->rec, c->key);
  struct ck_log_fields f = { c->key, NULL, -1, -1, rec ? rec->output : NULL, why, ck_decide_reason_name(reason), 0 };

  if (rec && rec->status == CK_REC_DONE && rec->output && !same_ident(&rec->id, &c->id)) {
    ck_log(CK_LOG_INFO, "source_changed", &f, "the source changed since it was converted, into something invalid");
    if (!(s->flags & CK_SCHED_DRY_RUN))
      forget_output(rec->output, sched_target(s, c), &f);
  }
  sched_plan(s, "fail", c->key, NULL, why);
  s->once.failed++;
  if (c->force || !(rec && rec->status == CK_REC_FAILED && same_ident(&rec->id, &c->id))) {
    c->force = CK_FORCE_NONE; /* a ckpt ctl retry is answered in the log, failed or not */
    ck_log(CK_LOG_ERROR, "job_failed", &f, "not a valid checkpoint; will retry when it changes");
    sched_record(s, c, CK_REC_FAILED, NULL, why, 0);
    s->failed_total++;
    s->metrics.failures[reason]++;
    run_hook(s, c, NULL, sched_target(s, c), 0, why, ck_decide_reason_name(reason), 0, 0);
  }
  free(c->why);
  c->why = why;
  c->state = CK_ST_FAILED;
  sched_mark_status(s);
}

static void not_yet(struct cand *c, char *why)
{
  if (c->state != CK_ST_WAITING || !c->why || !why || strcmp(c->why, why) != 0) {
    struct ck_log_fields f = { c->key, NULL, -1, -1, NULL, why, NULL, 0 };
    ck_log(CK_LOG_DEBUG, "skip", &f, "not complete yet");
  }
  free(c->why);
  c->why = why;
  c->state = CK_ST_WAITING;
  c->have_sig = 0;
}

/* Open a settled HDF5 file in a worker: ready, not complete yet, or corrupt. */
static void probe(struct ck_sched *s, struct cand *c)
{
  struct ck_job *j = calloc(1, sizeof(*j));

  if (j == NULL || (j->src = strdup(c->key)) == NULL) {
    free(j);
    sched_settle(s, c, 1);
    return;
  }
  j->kind = CK_WJOB_PROBE;
  j->from = c->kind;
  j->to = sched_target(s, c);
  j->require_success = sched_root(s, c->root) ? sched_root(s, c->root)->conf->require_success : 0;
  j->owner = c;
  s->checks_total++;
  c->checking = 1;
  c->touched = 0;
  c->state = CK_ST_CHECKING;
  ck_pool_submit(s->pool, j);
}

static void probe_done(struct ck_sched *s, struct ck_job *j)
{
  struct cand *c = j->owner;
  struct ck_probe_seen in = { j->rc == -ECANCELED || s->stopping, c->touched,
                              j->probe_size != c->id.size || j->probe_mtime_ns != c->id.mtime_ns,
                              j->rc != 0, j->crashed, j->verdict, j->probe_ours, settle_of(s, c) };
  struct ck_next n = ck_next_after_probe(&in);
  struct ck_log_fields f = { c->key, NULL, -1, -1, NULL, NULL, NULL, 0 };

  c->checking = 0;
  switch (n.act) {
  case CK_ACT_IDLE: c->state = CK_ST_WAITING; break;
  case CK_ACT_SETTLE: sched_settle(s, c, n.delay); break;
  case CK_ACT_FAIL:
    fail_corrupt(s, c, strdup(j->err), j->crashed ? CK_REASON_CRASHED : CK_REASON_CORRUPT);
    break;
  case CK_ACT_WAIT: not_yet(c, strdup(j->err)); break;
  case CK_ACT_SKIP:
    ck_log(CK_LOG_DEBUG, "skip", &f, "ckptd's converted copy of the bundle of its name: never converted back");
    sched_plan(s, "skip", c->key, NULL, "ckptd's converted copy of the bundle of its name: never converted back");
    c->state = CK_ST_SKIPPED;
    break;
  default: decide(s, c); break;
  }
  c->touched = 0;
  ck_job_free(j);
}

static void apply_check(struct ck_sched *s, struct cand *c, int res, uint64_t sig, double newest, char *why)
{
  struct ck_check_seen in = { c->kind, res, sched_wall() - newest, settle_of(s, c), c->have_sig, c->sig, sig };
  struct ck_next n = ck_next_after_check(&in);

  if (n.act == CK_ACT_WAIT) {
    not_yet(c, why);
    return;
  }
  c->sig = sig;
  c->have_sig = 1;
  if (n.act == CK_ACT_FAIL) {
    fail_corrupt(s, c, why, CK_REASON_CORRUPT);
    return;
  }
  if (n.act == CK_ACT_SKIP) { /* not a checkpoint at all: looked at again when it changes */
    struct ck_log_fields f = { c->key, NULL, -1, -1, NULL, why, NULL, 0 };
    if (c->state != CK_ST_SKIPPED)
      ck_log(CK_LOG_DEBUG, "skip", &f, "not a checkpoint");
    sched_plan(s, "skip", c->key, NULL, why);
    free(c->why);
    c->why = why;
    c->state = CK_ST_SKIPPED;
    return;
  }
  free(why);
  if (n.act == CK_ACT_SETTLE)
    sched_settle(s, c, n.delay);
  else if (n.act == CK_ACT_PROBE)
    probe(s, c); /* decide() once a worker has opened it */
  else
    decide(s, c);
}

static void check_done(uv_work_t *w, int status)
{
  struct check_req *q = w->data;
  struct ck_sched *s = q->s;
  struct cand *c = q->c;

  c->checking = 0;
  if (status != 0 || s->stopping) {
    free(q->why);
  } else if (c->touched) { /* files changed while we looked: look again */
    free(q->why);
    sched_settle(s, c, 0);
  } else {
    c->id = q->g.id;
    stamps_merge(&c->seen, &q->g.seen);
    apply_check(s, c, q->res, q->g.sig, q->g.newest, q->why);
  }
  c->touched = 0;
  free(q->g.seen.f);
  free(q->key);
  free(q);
}

static void check(struct ck_sched *s, struct cand *c)
{
  struct check_req *q;

  if (sched_root(s, c->root) == NULL) { /* its tree is no longer watched */
    c->state = CK_ST_SKIPPED;
    return;
  }
  if (c->checking || (q = calloc(1, sizeof(*q))) == NULL)
    return;
  q->req.data = q;
  q->s = s;
  q->c = c;
  q->key = strdup(c->key);
  q->kind = c->kind;
  s->checks_total++;
  {
    struct ck_log_fields f = { c->key, NULL, -1, -1, NULL, NULL, NULL, 0 };
    ck_log(CK_LOG_DEBUG, "check", &f, "checking (state %d)", c->state);
  }
  c->checking = 1;
  c->touched = 0;
  c->state = CK_ST_CHECKING;
  if (q->key == NULL || uv_queue_work(s->loop, &q->req, check_work, check_done) != 0) {
    c->checking = 0;
    free(q->key);
    free(q);
    sched_settle(s, c, 1);
  }
}

/* ---- jobs ---- */

/* The disk guard at the start of a job: its output's file system must keep
 * min_free free after taking about the source's size. *min_free gets the bytes the
 * worker keeps watching. 1 if it may start. */
static int room_for(struct ck_sched *s, struct cand *c, const struct ck_watch_conf *w, const char *dst,
                    uint64_t *min_free)
{
  char *dir = ck_dirname(dst);
  struct statvfs vfs;
  uint64_t fs_free, fs_size;
  struct sroot *r = sched_root(s, c->root);

  *min_free = 0;
  if (dir == NULL || statvfs(dir, &vfs) != 0) {
    free(dir);
    return 1; /* cannot tell: the job's own errors will say */
  }
  free(dir);
  fs_free = (uint64_t)vfs.f_bavail * vfs.f_frsize;
  fs_size = (uint64_t)vfs.f_blocks * vfs.f_frsize;
  *min_free = ck_decide_min_free(w->min_free, w->min_free_pct, fs_size);
  if (ck_decide_room(fs_free, c->id.size, *min_free)) {
    c->guarded = 0;
    return 1;
  }
  if (!c->guarded) {
    struct ck_log_fields f = { c->key, sched_dir_name(c->kind, sched_target(s, c)), (long long)c->id.size, -1, dst,
                               NULL, "no_space", 0 };
    ck_log(CK_LOG_WARN, "disk_guard", &f,
           "not starting: %llu bytes free, the output needs about %llu and min_free keeps %llu; checking again "
           "every 10 s", (unsigned long long)fs_free, (unsigned long long)c->id.size, (unsigned long long)*min_free);
    c->guarded = 1;
    if (r)
      r->disk_guard++;
  }
  return 0;
}

static void queue_job(struct ck_sched *s, struct cand *c, char *dst)
{
  const struct ck_watch_conf *w = sched_root(s, c->root)->conf;
  struct ck_job *j;
  int to = sched_target(s, c);
  struct ck_log_fields f = { c->key, sched_dir_name(c->kind, to), -1, -1, dst, NULL, NULL, 0 };
  uint64_t min_free;

  if (sched_root(s, c->root)->paused) { /* ckpt ctl pause: it waits for resume */
    c->paused = 1;
    c->state = CK_ST_WAITING;
    free(dst);
    sched_mark_status(s);
    return;
  }
  if (!room_for(s, c, w, dst, &min_free)) {
    if (s->flags & CK_SCHED_ONCE) { /* --once: held back is not done now */
      sched_plan(s, "hold", c->key, dst, "the disk guard: not enough free space above min_free");
      s->once.held++;
      c->state = CK_ST_WAITING;
      free(dst);
      return;
    }
    free(dst);
    c->state = CK_ST_RETRY;
    c->next_check = sched_mono() + 10;
    want_tick_at(s, c->next_check);
    sched_mark_status(s);
    return;
  }
  if (s->flags & CK_SCHED_DRY_RUN) {
    sched_plan(s, "convert", c->key, dst, sched_dir_name(c->kind, to));
    s->once.converted++;
    c->state = CK_ST_SKIPPED;
    free(dst);
    return;
  }
  if ((j = calloc(1, sizeof(*j))) == NULL) {
    free(dst);
    sched_settle(s, c, 5);
    return;
  }
  c->force = CK_FORCE_NONE; /* answered: the job is submitted */
  j->min_free = min_free;
  j->tree = c->root;
  j->tree_limit = w->workers;
  j->priority = w->priority;
  if (w->output_mode > 0)
    j->opts.output_mode = w->output_mode;
  if (w->output_group) {
    struct group *g = getgrnam(w->output_group);
    if (g) {
      j->opts.output_chgrp = 1;
      j->opts.output_gid = (unsigned)g->gr_gid;
    }
  }
  j->id = ++s->next_job_id;
  j->kind = CK_WJOB_CONVERT;
  j->from = c->kind;
  j->to = to;
  j->src = strdup(c->key);
  j->dst = dst;
  j->owner = c;
  j->opts.buffer_size = (size_t)(s->conf->memory_budget / (uint64_t)s->conf->workers);
  if (j->opts.buffer_size < (1u << 20))
    j->opts.buffer_size = 1u << 20;
  j->opts.threads = s->conf->workers > 1 ? 1 : 2;
  j->opts.layout = w->layout;
  j->opts.compression = w->compression;
  j->opts.gzip_level = w->gzip_level;
  j->opts.max_shard_bytes = w->shard_size;
  j->opts.verify = w->verify;
  j->ckpt_policy = w->update_checkpoint_file;
  for (int i = 0; i < w->nrules; i++) {
    j->rules[i].pattern = strdup(w->rules[i].pattern);
    j->rules[i].shard = w->rules[i].shard;
  }
  j->opts.rules = j->rules;
  j->opts.nrules = (size_t)w->nrules;
  c->state = CK_ST_QUEUED;
  c->dirty = 0;
  c->started = sched_mono();
  if (!c->held_elsewhere) { /* looking again at a claim held elsewhere is no news */
    sched_record(s, c, CK_REC_QUEUED, dst, NULL, 0);
    ck_log(CK_LOG_DEBUG, "job_queued", &f, "queued");
  }
  /* from here on the pool owns the job; events only mark it dirty. Set before the
   * submission: the pool may hand the job back at once (a claim held elsewhere, a
   * failed spawn), and what its done() decides must stand. */
  c->state = CK_ST_RUNNING;
  ck_pool_submit(s->pool, j);
  sched_mark_status(s);
}

static void remember_finished(struct ck_sched *s, const struct ck_job *j, int ok)
{
  struct finished *f;

  if (s->nrecent == RECENT) {
    free(s->recent[0].src);
    free(s->recent[0].error);
    memmove(&s->recent[0], &s->recent[1], (RECENT - 1) * sizeof(s->recent[0]));
    s->nrecent--;
  }
  f = &s->recent[s->nrecent++];
  f->src = strdup(j->src);
  f->ok = ok;
  f->error = ok ? NULL : strdup(j->err);
  f->bytes = j->st.bytes;
  f->seconds = j->st.seconds;
}

static void maybe_stopped(struct ck_sched *s);

/* The tree's on_done or on_failed hook, if it has one. */
static void run_hook(struct ck_sched *s, const struct cand *c, const char *dst, int to, int ok,
                     const char *error, const char *reason, unsigned long long bytes, double seconds)
{
  const struct sroot *r = sched_root(s, c->root);
  const char *cmd = r ? (ok ? r->conf->on_done : r->conf->on_failed) : NULL;
  struct ck_hook_env e = { ok ? "done" : "failed", c->key, dst, sched_dir_name(c->kind, to),
                           r ? r->conf->name : "", error, reason, bytes, seconds };

  if (cmd && !(s->flags & CK_SCHED_DRY_RUN))
    ck_hook_run(s->loop, cmd, r->conf->hook_timeout, &e);
}

/* The job's outcome in the metrics, and its tree's last success. */
static void count_job(struct ck_sched *s, const struct cand *c, const struct ck_job *j, int state)
{
  struct ck_metrics *m = &s->metrics;
  struct sroot *r = sched_root(s, c->root);
  int d = ck_metrics_dir(j->from, j->to);
  int o = state == CK_ST_DONE      ? CK_OUTCOME_DONE
          : state == CK_ST_BLOCKED ? CK_OUTCOME_BLOCKED
          : state == CK_ST_RETRY   ? CK_OUTCOME_RETRY
          : state == CK_ST_WAITING ? CK_OUTCOME_ABORTED
                                   : CK_OUTCOME_FAILED;

  m->jobs[d][o]++;
  if (o == CK_OUTCOME_DONE) {
    m->bytes[d] += j->st.bytes;
    ck_metrics_observe(m, d, j->st.seconds);
    if (r)
      r->last_success = sched_wall();
  } else if (o != CK_OUTCOME_ABORTED) {
    m->failures[ck_decide_reason(j->rc, j->crashed)]++;
  }
  if (j->rc == CK_ENOROOM && r)
    r->disk_guard++; /* stopped by the disk guard while running */
}

void ck_sched_job_done(void *ctx, struct ck_job *j)
{
  struct ck_sched *s = ctx;
  struct cand *c = j->owner;
  long long ms = (long long)(j->st.seconds * 1000);
  struct ck_log_fields f = { j->src, sched_dir_name(j->from, j->to), (long long)j->st.bytes, ms, j->dst,
                             j->rc ? j->err : NULL, NULL, j->slurm_job };
  struct ck_after_job after;

  if (j->kind == CK_WJOB_PROBE) {
    probe_done(s, j);
    maybe_stopped(s);
    return;
  }
  if (c->claim_lost && j->rc != 0) { /* stopped because its claim was lost: as if held elsewhere */
    sched_claim_release(s, j->src);
    j->rc = CK_ECLAIMED;
    snprintf(j->err, sizeof(j->err), "its claim was lost");
  }
  c->claim_lost = 0;
  if (j->rc == CK_ECLAIMED) { /* another instance holds it, or has converted it: look again later */
    c->state = CK_ST_SETTLING;
    c->dirty = 0;
    if (!s->stopping)
      sched_settle(s, c, strstr(j->err, "meanwhile") ? 0 : s->conf->lease_seconds);
    ck_job_free(j);
    sched_mark_status(s);
    maybe_stopped(s);
    return;
  }
  sched_claim_release(s, j->src);
  sched_outage_over(s, j);
  if (c->skip && j->rc == -ECANCELED && !s->stopping) { /* ckpt ctl skip stopped it */
    c->skip = 0;
    sched_record(s, c, CK_REC_SKIPPED, NULL, "skipped by ckpt ctl", ms);
    ck_log(CK_LOG_INFO, "skip", &f, "stopped and skipped by ckpt ctl; converted again only if it changes");
    c->state = CK_ST_SKIPPED;
    c->dirty = 0;
    ck_job_free(j);
    sched_mark_status(s);
    return;
  }
  c->skip = 0;
  after = ck_next_after_job(&(struct ck_job_seen){ j->rc, ck_decide_transient(j->rc), ck_decide_blocked(j->rc),
                                                   s->stopping, c->attempts, c->dirty, settle_of(s, c) });
  if (after.record != CK_SEEN_NONE)
    sched_record(s, c, after.record, after.record == CK_REC_DONE ? j->dst : NULL, j->rc ? j->err : NULL, ms);
  c->state = after.state;
  c->attempts = after.attempts;
  count_job(s, c, j, after.state);
  if (s->flags & CK_SCHED_ONCE) { /* --once: no later retry; say how it went */
    sched_plan(s, after.state == CK_ST_DONE ? "converted" : after.state == CK_ST_BLOCKED ? "blocked" : "failed", j->src,
         j->dst, j->rc ? j->err : NULL);
    if (after.state == CK_ST_DONE)
      s->once.converted++;
    else
      s->once.failed++;
  }
  if (j->rc != 0)
    f.reason = ck_decide_reason_name(ck_decide_reason(j->rc, j->crashed));
  if (after.state == CK_ST_DONE) {
    ck_log(CK_LOG_INFO, "job_done", &f, "converted %llu tensors, %llu bytes in %.2f s (%.1f MB/s)",
           (unsigned long long)j->st.tensors, (unsigned long long)j->st.bytes, j->st.seconds,
           j->st.seconds > 0 ? (double)j->st.bytes / j->st.seconds / 1e6 : 0.0);
    s->done_total++;
    s->bytes_total += j->st.bytes;
    remember_finished(s, j, 1);
  } else if (after.state == CK_ST_WAITING) {
    ck_log(CK_LOG_WARN, "job_failed", &f, "aborted by shutdown; it stays pending and resumes at the next start");
  } else if (after.state == CK_ST_BLOCKED) {
    ck_log(CK_LOG_WARN, "job_blocked", &f,
           "cannot convert here as things are; retried when the source, the directory's permissions or the "
           "configuration change");
    if (sched_dir_stamp(c->key, &c->outdir) != 0)
      memset(&c->outdir, 0, sizeof(c->outdir));
    remember_finished(s, j, 0);
  } else if (after.state == CK_ST_RETRY) {
    if (s->flags & CK_SCHED_ONCE) { /* a later run retries it */
      ck_log(CK_LOG_WARN, "job_failed", &f, "transient failure; --once does not retry");
      c->state = CK_ST_WAITING;
    } else {
      ck_log(sched_outage_quiet(s, j) ? CK_LOG_DEBUG : CK_LOG_WARN, "job_retry", &f, "transient failure, retry %d in %.0f s",
             c->attempts, after.delay);
      c->next_check = sched_mono() + after.delay;
      want_tick_at(s, c->next_check);
    }
  } else {
    ck_log(CK_LOG_ERROR, "job_failed", &f, "conversion failed; will retry when the source changes");
    s->failed_total++;
    remember_finished(s, j, 0);
  }
  if (after.state == CK_ST_DONE || after.state == CK_ST_FAILED || after.state == CK_ST_BLOCKED)
    run_hook(s, c, j->dst, j->to, after.state == CK_ST_DONE, j->rc ? j->err : NULL, f.reason,
             j->st.bytes, j->st.seconds);
  if (after.state != CK_ST_RETRY && after.delay >= 0)
    sched_settle(s, c, after.delay);
  c->dirty = 0;
  ck_job_free(j);
  sched_mark_status(s);
  maybe_stopped(s);
}

/* ---- the tick: candidates whose check time has come ---- */

/* A growable list of candidates picked while iterating the map (acting on them
 * during the iteration would change the map under it). */
struct candvec {
  struct cand **v;
  size_t n, cap;
};

static void candvec_push(struct candvec *cv, struct cand *c)
{
  if (cv->n == cv->cap) {
    size_t cap = cv->cap ? cv->cap * 2 : 16;
    struct cand **nv = realloc(cv->v, cap * sizeof(*nv));
    if (nv == NULL)
      return; /* picked up at the next tick or rescan */
    cv->v = nv;
    cv->cap = cap;
  }
  cv->v[cv->n++] = c;
}

struct tick_ctx {
  struct ck_sched *s;
  double now;
  struct candvec due;
  int pending;
  double next; /* earliest check still to come */
};

static void collect_due(void *ctx, const char *key, void *value)
{
  struct tick_ctx *t = ctx;
  struct cand *c = value;

  (void)key;
  if (c->state != CK_ST_SETTLING && c->state != CK_ST_RETRY)
    return;
  t->pending++;
  if (c->next_check > t->now) {
    if (t->next == 0 || c->next_check < t->next)
      t->next = c->next_check;
    return;
  }
  candvec_push(&t->due, c);
}

static void on_tick(uv_timer_t *timer)
{
  struct ck_sched *s = timer->data;
  struct tick_ctx t = { s, sched_mono(), { NULL, 0, 0 }, 0, 0 };

  s->tick_due = 0;
  ck_hmap_each(s->cands, collect_due, &t);
  for (size_t i = 0; i < t.due.n && !s->stopping; i++)
    check(s, t.due.v[i]); /* may arm the timer again */
  free(t.due.v);
  if (t.next > 0)
    want_tick_at(s, t.next);
}

/* Candidates no rescan reports any more (retention deleted the checkpoint, the
 * directory went away) are forgotten, so memory and the waiting count follow what
 * is on disk. One that a check or a job still holds stays until that ends. */
struct sweep_ctx {
  struct ck_sched *s;
  struct candvec gone;    /* its files are gone */
  struct candvec unblock; /* BLOCKED, and its directory's permissions changed */
};

/* What can unblock a job in a directory: its mode and owner, and whether its file
 * system is mounted read-only (entries coming and going do not count). */
int sched_dir_stamp(const char *key, struct fstamp *out)
{
  char *dir = ck_dirname(key);
  struct stat st;
  struct statvfs vfs;
  int rc = dir && stat(dir, &st) == 0 && statvfs(dir, &vfs) == 0 ? 0 : -1;

  free(dir);
  if (rc == 0)
    *out = (struct fstamp){ (uint64_t)st.st_mode | (uint64_t)st.st_uid << 32, (uint64_t)st.st_gid,
                            (vfs.f_flag & ST_RDONLY) != 0 };
  return rc;
}

static void collect_gone(void *ctx, const char *key, void *value)
{
  struct sweep_ctx *w = ctx;
  struct cand *c = value;
  struct fstamp now;

  (void)key;
  if (c->gen == w->s->gen && c->state == CK_ST_BLOCKED && sched_dir_stamp(c->key, &now) == 0 &&
      memcmp(&now, &c->outdir, sizeof(now)) != 0)
    candvec_push(&w->unblock, c); /* its directory's permissions changed: try again */
  if (c->gen == w->s->gen || c->checking || c->state == CK_ST_QUEUED || c->state == CK_ST_RUNNING)
    return;
  candvec_push(&w->gone, c);
}

static void free_cand(void *ctx, const char *key, void *value);

/* 1 if path exists and was last modified no later than the job that wrote it ended:
 * still the output ckptd wrote, not a file someone put there since. */
static int unchanged_since(const char *path, double when)
{
  struct stat st;

  return lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
         (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec / 1e9 <= when + 1.0;
}

/* Remove a bundle ckptd wrote: the index first (the bundle is gone for readers at
 * once), then its data files. */
static int remove_bundle(const char *prefix, double when)
{
  char *index = ck_asprintf("%s.index", prefix);
  struct ck_bundle *b = NULL;
  int n = 0, rc = -1;

  if (index && unchanged_since(index, when) && ck_bundle_open(prefix, CK_BUNDLE_INDEX_ONLY, &b, NULL) == 0) {
    n = ck_bundle_num_shards(b);
    ck_bundle_close(b);
    if ((rc = unlink(index)) == 0)
      for (int i = 0; i < n; i++) {
        char *data = ck_asprintf("%s.data-%05d-of-%05d", prefix, i, n);
        if (data)
          unlink(data);
        free(data);
      }
  }
  free(index);
  return rc;
}

/* Retention deleted a converted source (all its files): with mirror_deletes, its
 * output goes too, if it is still the one ckptd wrote, and leaves any checkpoint
 * file that ckptd maintains. */
static void mirror_delete(struct ck_sched *s, const struct cand *c)
{
  const struct sroot *r = sched_root(s, c->root);
  const struct ck_rec *rec = ck_record_get(s->rec, c->key);
  char *probe = ck_decide_output_file(c->key, c->kind), *okey = NULL;
  struct ck_log_fields f = { c->key, NULL, -1, -1, rec ? rec->output : NULL, NULL, NULL, 0 };
  int gone = probe && access(probe, F_OK) != 0, removed, to_bundle;

  free(probe);
  if (!gone || r == NULL || !r->conf->mirror_deletes || rec == NULL || rec->status != CK_REC_DONE || !rec->output)
    return;
  to_bundle = ck_decide_classify(rec->output, &okey) == CK_KIND_NONE; /* an output prefix names no file */
  free(okey);
  if (!to_bundle)
    removed = unchanged_since(rec->output, rec->when) && unlink(rec->output) == 0;
  else
    removed = remove_bundle(rec->output, rec->when) == 0;
  if (!removed) {
    ck_log(CK_LOG_INFO, "mirror_delete", &f, "source deleted; its output was changed or is gone: left alone");
    return;
  }
  ck_log(CK_LOG_INFO, "mirror_delete", &f, "source deleted: its output removed too (mirror_deletes)");
  if (to_bundle) {
    char *dir = ck_dirname(rec->output), *base = ck_basename(rec->output);
    struct ck_err err = { 0 };
    int updated;
    if (dir && base && ck_ckptfile_forget(dir, base, &updated, &err) != 0)
      ck_log(CK_LOG_WARN, "checkpoint_file", &f, "%s", err.msg);
    free(dir);
    free(base);
  }
}

static void rescan_done(void *ctx)
{
  struct ck_sched *s = ctx;
  struct sweep_ctx w = { s, { NULL, 0, 0 }, { NULL, 0, 0 } };

  if (s->stopping)
    return;
  s->metrics.rescans++;
  s->metrics.rescan_seconds = sched_mono() - s->rescan_started;
  ck_hmap_each(s->cands, collect_gone, &w);
  for (size_t i = 0; i < w.unblock.n; i++) {
    struct ck_log_fields f = { w.unblock.v[i]->key, NULL, -1, -1, NULL, NULL, NULL, 0 };
    ck_log(CK_LOG_INFO, "unblock", &f, "the output directory's permissions changed: trying again");
    sched_settle(s, w.unblock.v[i], 0);
  }
  free(w.unblock.v);
  for (size_t i = 0; i < w.gone.n; i++) {
    mirror_delete(s, w.gone.v[i]);
    ck_hmap_del(s->cands, w.gone.v[i]->key);
    free_cand(NULL, NULL, w.gone.v[i]);
  }
  free(w.gone.v);
  sched_mark_status(s);
}

static void add_pending_roots(struct ck_sched *s);

static void on_rescan(uv_timer_t *timer)
{
  struct ck_sched *s = timer->data;

  if (ck_watch_rescanning(s->watch))
    return; /* a slow filesystem: the walk in flight is this rescan */
  add_pending_roots(s);
  s->gen++; /* before anything the walk reports */
  s->rescan_started = sched_mono();
  ck_watch_rescan(s->watch, rescan_done, s);
}

/* ---- roots and lifecycle ---- */

static void add_root(struct ck_sched *s, struct ck_watch_conf *w)
{
  struct sroot *nr = realloc(s->roots, (size_t)(s->nroots + 1) * sizeof(*nr));
  int rc;

  if (nr == NULL)
    return;
  s->roots = nr;
  nr[s->nroots] = (struct sroot){ .id = ++s->next_root_id, .conf = w };
  s->nroots++;
  if ((rc = ck_watch_add_root(s->watch, s->next_root_id, w->path, w->recursive, w->events)) != 0) {
    struct ck_log_fields f = { w->path, NULL, -1, -1, NULL, strerror(-rc), NULL, 0 };
    /* not there (yet): a mount not up, a run directory made later; every rescan looks */
    nr[s->nroots - 1].pending = 1;
    ck_log(CK_LOG_WARN, "watch", &f, "cannot watch [watch %s] yet: %s; looking again at every rescan", w->name,
           access(w->path, F_OK) == 0 ? "not a directory" : "it does not exist");
  }
}

/* Trees whose path was missing: watched (and scanned) once it is there. */
static void add_pending_roots(struct ck_sched *s)
{
  for (int i = 0; i < s->nroots; i++) {
    struct sroot *r = &s->roots[i];
    if (r->pending && ck_watch_add_root(s->watch, r->id, r->conf->path, r->conf->recursive, r->conf->events) == 0)
      r->pending = 0; /* ck_watch_add_root logs "watching" */
  }
}

struct ck_sched *ck_sched_new(uv_loop_t *loop, struct ck_conf *conf, struct ck_record *rec, int flags)
{
  struct ck_sched *s = calloc(1, sizeof(*s));

  if (s == NULL || (s->cands = ck_hmap_new()) == NULL) {
    free(s);
    return NULL;
  }
  s->loop = loop;
  s->conf = conf;
  s->rec = rec;
  s->flags = flags & CK_SCHED_DRY_RUN ? flags | CK_SCHED_ONCE : flags;
  s->started_wall = sched_wall();
  uv_timer_init(loop, &s->tick);
  uv_timer_init(loop, &s->rescan);
  uv_timer_init(loop, &s->status_timer);
  uv_timer_init(loop, &s->stop_timer);
  uv_timer_init(loop, &s->idle_timer);
  s->tick.data = s->rescan.data = s->status_timer.data = s->stop_timer.data = s->idle_timer.data = s;
  return s;
}

/* --once: work left is a candidate being checked, due a check, or converting. */
static void count_busy(void *ctx, const char *key, void *value)
{
  const struct cand *c = value;

  (void)key;
  if (c->checking || c->state == CK_ST_SETTLING || c->state == CK_ST_CHECKING || c->state == CK_ST_QUEUED ||
      c->state == CK_ST_RUNNING)
    (*(int *)ctx)++;
}

static void on_idle(uv_timer_t *t)
{
  struct ck_sched *s = t->data;
  int busy = 0;

  ck_hmap_each(s->cands, count_busy, &busy);
  if (busy > 0 || (s->pool && ck_pool_children(s->pool) > 0) || s->phase != PHASE_RUNNING)
    return;
  uv_timer_stop(t);
  if (s->once_done)
    s->once_done(s->once_ctx);
}

void ck_sched_run(struct ck_sched *s, struct ck_pool *pool, struct ck_watch *watch)
{
  s->pool = pool;
  s->watch = watch;
  for (int i = 0; i < s->conf->nwatches; i++)
    add_root(s, &s->conf->watches[i]); /* each scanned at once */
  if (sched_claims_start(s) != 0)
    ck_log(CK_LOG_ERROR, "claims", CK_LOG_NO_FIELDS, "out of memory: not using claims_dir");
  else if (s->claims)
    ck_pool_set_gate(pool, sched_claim_gate);
  if (s->flags & CK_SCHED_ONCE) {
    uv_timer_start(&s->idle_timer, on_idle, 100, 100);
    return;
  }
  uv_timer_start(&s->rescan, on_rescan, (uint64_t)(s->conf->rescan_seconds * 1000),
                 (uint64_t)(s->conf->rescan_seconds * 1000));
  sched_write_status(s);
}

void ck_sched_when_idle(struct ck_sched *s, void (*fn)(void *ctx), void *ctx)
{
  s->once_done = fn;
  s->once_ctx = ctx;
}

const struct ck_once *ck_sched_once(const struct ck_sched *s)
{
  return &s->once;
}

const struct ck_conf *ck_sched_conf(const struct ck_sched *s)
{
  return s->conf;
}

static void unblock_one(void *ctx, const char *key, void *value)
{
  struct cand *c = value;

  (void)key;
  if (c->state == CK_ST_BLOCKED)
    sched_settle(ctx, c, 0);
}

void ck_sched_reload(struct ck_sched *s, struct ck_conf *conf)
{
  struct ck_conf *old = s->conf;
  struct sroot *keep = calloc((size_t)s->nroots + 1, sizeof(*keep));
  int nkeep = 0;

  if (conf->workers != old->workers || conf->memory_budget != old->memory_budget ||
      strcmp(conf->state_dir, old->state_dir) != 0)
    ck_log(CK_LOG_WARN, "reload", CK_LOG_NO_FIELDS, "workers, memory_budget and state_dir change at the next restart");
  sched_keep_cluster_settings(conf, old);
  /* keep trees present in both (same name and path), pointing at the new settings */
  for (int i = 0; i < s->nroots; i++) {
    struct ck_watch_conf *match = NULL;
    for (int k = 0; k < conf->nwatches && !match; k++)
      if (!strcmp(conf->watches[k].name, s->roots[i].conf->name) && !strcmp(conf->watches[k].path, s->roots[i].conf->path))
        match = &conf->watches[k];
    if (match) {
      keep[nkeep] = s->roots[i]; /* its id and counters */
      keep[nkeep++].conf = match;
    } else {
      struct ck_log_fields f = { s->roots[i].conf->path, NULL, -1, -1, NULL, NULL, NULL, 0 };
      ck_log(CK_LOG_INFO, "watch", &f, "no longer watching [watch %s]", s->roots[i].conf->name);
      ck_watch_remove_root(s->watch, s->roots[i].id);
    }
  }
  free(s->roots);
  s->roots = keep;
  s->nroots = nkeep;
  s->conf = conf;
  for (int k = 0; k < conf->nwatches; k++) {
    int present = 0;
    for (int i = 0; i < nkeep && !present; i++)
      present = s->roots[i].conf == &conf->watches[k];
    if (!present)
      add_root(s, &conf->watches[k]);
  }
  ck_log_set_level(conf->log_level);
  ck_hmap_each(s->cands, unblock_one, s); /* a new configuration may be what they needed */
  uv_timer_start(&s->rescan, on_rescan, (uint64_t)(conf->rescan_seconds * 1000), (uint64_t)(conf->rescan_seconds * 1000));
  /* running jobs keep copies of their settings; the old configuration can go */
  ck_conf_free(old);
  free(old);
  sched_mark_status(s);
}

/* Running jobs get stop_timeout to finish, then SIGTERM (a worker removes its
 * temporaries), then SIGKILL 5 s later (the pool removes them): one-shot timers,
 * and the last job's end finishes the shutdown (no polling). */
static void on_stop_deadline(uv_timer_t *t)
{
  struct ck_sched *s = t->data;

  if (s->stop_signal == 0) {
    ck_log(CK_LOG_WARN, "stop", CK_LOG_NO_FIELDS, "stop_timeout reached: aborting %d running conversion(s)",
           ck_pool_running(s->pool));
    s->stop_signal = SIGTERM;
    uv_timer_start(t, on_stop_deadline, 5000, 0);
  } else {
    s->stop_signal = SIGKILL;
  }
  ck_pool_cancel_running(s->pool, s->stop_signal);
}

/* Called whenever a job ends while stopping: the last one completes the shutdown. */
static void maybe_stopped(struct ck_sched *s)
{
  if (s->phase != PHASE_STOPPING || ck_pool_children(s->pool) > 0)
    return;
  s->phase = PHASE_STOPPED;
  uv_timer_stop(&s->stop_timer);
  uv_timer_stop(&s->status_timer);
  sched_write_status(s);
  s->stop_done(s->stop_ctx);
}

void ck_sched_shutdown(struct ck_sched *s, void (*done)(void *ctx), void *ctx)
{
  s->stopping = 1;
  s->phase = PHASE_STOPPING;
  s->stop_done = done;
  s->stop_ctx = ctx;
  uv_timer_stop(&s->tick);
  s->tick_due = 0;
  uv_timer_stop(&s->rescan);
  s->watch = NULL; /* main closes it after this: no more intake */
  uv_timer_start(&s->stop_timer, on_stop_deadline, (uint64_t)(s->conf->stop_timeout * 1000), 0);
  ck_pool_drop_queued(s->pool);
  maybe_stopped(s); /* nothing was running */
}

static void free_cand(void *ctx, const char *key, void *value)
{
  struct cand *c = value;

  (void)ctx;
  (void)key;
  free(c->key);
  free(c->why);
  free(c->seen.f);
  free(c);
}

void ck_sched_free(struct ck_sched *s)
{
  if (s == NULL)
    return;
  ck_hmap_each(s->cands, free_cand, NULL);
  ck_hmap_free(s->cands);
  for (int i = 0; i < s->nrecent; i++) {
    free(s->recent[i].src);
    free(s->recent[i].error);
  }
  ck_conf_free(s->conf);
  free(s->conf);
  free(s->roots);
  free(s);
}

/* The timers live in s: close them before freeing it. */
void ck_sched_close_handles(struct ck_sched *s)
{
  uv_close((uv_handle_t *)&s->tick, NULL);
  uv_close((uv_handle_t *)&s->rescan, NULL);
  uv_close((uv_handle_t *)&s->status_timer, NULL);
  uv_close((uv_handle_t *)&s->stop_timer, NULL);
  uv_close((uv_handle_t *)&s->idle_timer, NULL);
  sched_claims_stop(s);
}
