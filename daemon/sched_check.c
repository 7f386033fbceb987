/* Scheduler, its input side: file events map to candidates (which names a tree
 * wants, temporaries left by a crashed run, the stamps that tell a quiet source);
 * a quiet candidate is checked off the loop (stats, index parses, probes) and what
 * transition.c decides from the facts is done: wait, fail, skip, or queue a job
 * (sched.c). */
#include "config.h"

#include <errno.h>
#include <fnmatch.h>
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
    sched_queue_job(s, c, dst);
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
    sched_run_hook(s, c, NULL, sched_target(s, c), 0, why, ck_decide_reason_name(reason), 0, 0);
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

void sched_probe_done(struct ck_sched *s, struct ck_job *j)
{
  struct cand *c = j->owner;
  struct ck_probe_seen in = { j->rc == -ECANCELED || s->stopping, c->touched,
                              j->probe_size != c->id.size || j->probe_mtime_ns != c->id.mtime_ns,
                              j->rc != 0, j->crashed, j->verdict, j->probe_ours, sched_settle_of(s, c) };
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
  struct ck_check_seen in = { c->kind, res, sched_wall() - newest, sched_settle_of(s, c), c->have_sig, c->sig, sig };
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

void sched_check(struct ck_sched *s, struct cand *c)
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
