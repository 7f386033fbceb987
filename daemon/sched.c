/* Scheduler.
 *
 * DESIGN: files reported by the watcher map to candidates: a TensorFlow prefix (from
 * PREFIX.index or PREFIX.data-*) or an HDF5 file. A candidate is checked once its
 * files have been quiet for settle_seconds (newest mtime older than that, and the
 * same sizes and mtimes as at the previous sched_check). A check decides: incomplete
 * (wait for more events), corrupt (fail until the source changes), already done or
 * someone else's counterpart present (nothing to do), or ready (queue one job).
 * A source has at most one job; events during a job only mark it dirty. Results go
 * to the durable record before anything else depends on them.
 *
 * The scheduler gathers facts (stats, probes, the record, output marks) and performs
 * what transition.c decides from them; every decision itself is pure and
 * table-tested. This file holds candidates' timers, jobs and the lifecycle;
 * sched_check.c file events and checks, sched_sweep.c rescans, sched_status.c the
 * status file and metrics, sched_ctl.c ckpt ctl, sched_cluster.c claims;
 * sched_int.h is what they share. */
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

int sched_target(struct ck_sched *s, const struct cand *c)
{
  const struct sroot *r = sched_root(s, c->root);

  return r && c->kind > CK_KIND_NONE && c->kind < CK_KINDS ? r->conf->target[c->kind] : 0;
}

/* ---- timers ---- */

static void on_tick(uv_timer_t *t);

/* Arm the timer for `when` unless it is already due earlier: checks happen when
 * they are due, not on a polling tick, and an idle daemon has no timer running. */
void sched_want_tick_at(struct ck_sched *s, double when)
{
  double now = sched_mono();

  if (s->stopping || (s->tick_due > 0 && s->tick_due <= when))
    return;
  s->tick_due = when;
  uv_timer_start(&s->tick, on_tick, when > now ? (uint64_t)((when - now) * 1000) + 1 : 0, 0);
}

/* A source's quiet time: its tree's settle_seconds, else [ckptd]'s. */
double sched_settle_of(struct ck_sched *s, const struct cand *c)
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
  sched_want_tick_at(s, c->next_check);
}

/* --dry-run and --once say what they do, one line per source on stdout. */
void sched_plan(struct ck_sched *s, const char *verb, const char *src, const char *dst, const char *why)
{
  if (!(s->flags & CK_SCHED_ONCE))
    return;
  printf("%-9s %s%s%s%s%s\n", verb, src, dst ? " -> " : "", dst ? dst : "", why ? ": " : "", why ? why : "");
  fflush(stdout);
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

void sched_queue_job(struct ck_sched *s, struct cand *c, char *dst)
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
    sched_want_tick_at(s, c->next_check);
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
void sched_run_hook(struct ck_sched *s, const struct cand *c, const char *dst, int to, int ok,
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
    sched_probe_done(s, j);
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
                                                   s->stopping, c->attempts, c->dirty, sched_settle_of(s, c) });
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
      sched_want_tick_at(s, c->next_check);
    }
  } else {
    ck_log(CK_LOG_ERROR, "job_failed", &f, "conversion failed; will retry when the source changes");
    s->failed_total++;
    remember_finished(s, j, 0);
  }
  if (after.state == CK_ST_DONE || after.state == CK_ST_FAILED || after.state == CK_ST_BLOCKED)
    sched_run_hook(s, c, j->dst, j->to, after.state == CK_ST_DONE, j->rc ? j->err : NULL, f.reason,
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

void sched_candvec_push(struct candvec *cv, struct cand *c)
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
  sched_candvec_push(&t->due, c);
}

static void on_tick(uv_timer_t *timer)
{
  struct ck_sched *s = timer->data;
  struct tick_ctx t = { s, sched_mono(), { NULL, 0, 0 }, 0, 0 };

  s->tick_due = 0;
  ck_hmap_each(s->cands, collect_due, &t);
  for (size_t i = 0; i < t.due.n && !s->stopping; i++)
    sched_check(s, t.due.v[i]); /* may arm the timer again */
  free(t.due.v);
  if (t.next > 0)
    sched_want_tick_at(s, t.next);
}

/* Candidates no rescan reports any more (retention deleted the checkpoint, the
 * directory went away) are forgotten, so memory and the waiting count follow what
 * is on disk. One that a check or a job still holds stays until that ends. */
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
void sched_add_pending_roots(struct ck_sched *s)
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

/* --once: work left is a candidate being checked, due a sched_check, or converting. */
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
  uv_timer_start(&s->rescan, sched_on_rescan, (uint64_t)(s->conf->rescan_seconds * 1000),
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
  uv_timer_start(&s->rescan, sched_on_rescan, (uint64_t)(conf->rescan_seconds * 1000), (uint64_t)(conf->rescan_seconds * 1000));
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

void sched_free_cand(void *ctx, const char *key, void *value)
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
  ck_hmap_each(s->cands, sched_free_cand, NULL);
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
