/* The scheduler's status file and Prometheus textfile: a snapshot of candidates,
 * running jobs, trees and counters, handed to status.c, which owns the format. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "hmap.h"
#include "sched_int.h"

static void on_status_timer(uv_timer_t *t);

/* The status file is rewritten at most every 250 ms. */
void sched_mark_status(struct ck_sched *s)
{
  if (!uv_is_active((uv_handle_t *)&s->status_timer) || uv_timer_get_due_in(&s->status_timer) > 250)
    uv_timer_start(&s->status_timer, on_status_timer, 250, 0);
}


struct counts {
  int queued, running, waiting, blocked, failed, done;
};

static void count_cand(void *ctx, const char *key, void *value)
{
  struct counts *n = ctx;
  const struct cand *c = value;

  (void)key;
  if (c->state == CK_ST_RUNNING)
    n->running++;
  else if (c->state == CK_ST_WAITING || c->state == CK_ST_SETTLING || c->state == CK_ST_RETRY || c->state == CK_ST_CHECKING)
    n->waiting++;
  else if (c->state == CK_ST_BLOCKED)
    n->blocked++;
}

struct jobs_ctx {
  struct ck_status_job *v;
  size_t n, cap;
};

static void running_one(void *ctx, const struct ck_job *j, double seconds)
{
  struct jobs_ctx *r = ctx;

  if (r->n == r->cap)
    return;
  r->v[r->n++] = (struct ck_status_job){ j->src, sched_dir_name(j->from, j->to), j->pid,
                                         sched_wall() - seconds, seconds, j->done_bytes, j->total_bytes,
                                         j->slurm_job };
}

/* A snapshot for status.c: the status file and the Prometheus textfile. */
void sched_write_status(struct ck_sched *s)
{
  if (s->flags & CK_SCHED_DRY_RUN)
    return; /* a live daemon's status file is not ours to replace */
  static const char *reasons[CK_REASONS];
  struct counts n = { 0 };
  struct ck_status_root *roots = calloc((size_t)s->nroots + 1, sizeof(*roots));
  struct ck_status_recent recent[RECENT];
  struct jobs_ctx jobs = { NULL, 0, 0 };
  int rdone, rfailed, rpending, running = 0;
  struct ck_status st;

  ck_hmap_each(s->cands, count_cand, &n);
  running = s->pool ? ck_pool_running(s->pool) : 0;
  if (roots == NULL || (jobs.v = calloc((size_t)running + 1, sizeof(*jobs.v))) == NULL) {
    free(roots);
    return; /* the next change writes it again */
  }
  jobs.cap = (size_t)running;
  if (s->pool)
    ck_pool_each_running(s->pool, running_one, &jobs);
  for (int i = 0; i < CK_REASONS; i++)
    reasons[i] = ck_decide_reason_name(i);
  s->metrics.reason_names = reasons;
  s->metrics.nreasons = CK_REASONS;
  ck_record_counts(s->rec, &rdone, &rfailed, &rpending);
  for (int i = 0; i < s->nroots; i++) {
    struct statvfs vfs;
    int known = statvfs(s->roots[i].conf->path, &vfs) == 0;
    roots[i] = (struct ck_status_root){ s->roots[i].conf->name, s->roots[i].conf->path,
                                        s->roots[i].conf->direction, s->roots[i].last_success,
                                        known ? (long long)(vfs.f_bavail * vfs.f_frsize) : -1,
                                        known ? (long long)(vfs.f_blocks * vfs.f_frsize) : -1,
                                        s->roots[i].disk_guard };
  }
  for (int i = 0; i < s->nrecent; i++) { /* newest first */
    const struct finished *r = &s->recent[s->nrecent - 1 - i];
    recent[i] = (struct ck_status_recent){ r->src, r->ok, r->bytes, r->seconds, r->error ? r->error : "" };
  }
  st = (struct ck_status){
    .version = PACKAGE_VERSION, .pid = (long)getpid(), .config = s->conf->source,
    .state = s->phase == PHASE_STOPPED ? "stopped" : s->phase == PHASE_STOPPING ? "stopping" : "running",
    .started_at = s->started_wall, .updated_at = sched_wall(), .roots = roots, .nroots = (size_t)s->nroots,
    .watched_directories = s->watch ? ck_watch_dirs(s->watch) : 0, .running = s->pool ? ck_pool_running(s->pool) : 0,
    .queued = s->pool ? ck_pool_queued(s->pool) : 0, .waiting = n.waiting, .blocked = n.blocked, .done = rdone,
    .failed = rfailed, .metrics = &s->metrics,
    .done_since_start = s->done_total, .failed_since_start = s->failed_total, .bytes_since_start = s->bytes_total,
    .checks_since_start = s->checks_total, .jobs = jobs.v, .njobs = jobs.n, .recent = recent,
    .nrecent = (size_t)s->nrecent,
  };
  ck_status_save(s->conf->status_file, ck_status_json, &st);
  if (s->conf->prometheus_file)
    ck_status_save(s->conf->prometheus_file, ck_status_prometheus, &st);
  free(roots);
  free(jobs.v);
}

/* Written 250 ms after a change, and every 2 s while jobs run (their progress). */
static void on_status_timer(uv_timer_t *t)
{
  struct ck_sched *s = t->data;

  sched_write_status(s);
  if (s->phase != PHASE_STOPPED && s->pool && ck_pool_running(s->pool) > 0)
    uv_timer_start(&s->status_timer, on_status_timer, 2000, 0);
}

void ck_sched_status_line(struct ck_sched *s, char *buf, size_t len)
{
  struct counts n = { 0 };

  ck_hmap_each(s->cands, count_cand, &n);
  snprintf(buf, len, "watching %d tree(s), %zu dirs; running %d, queued %d, waiting %d; done %llu, failed %llu",
           s->nroots, s->watch ? ck_watch_dirs(s->watch) : 0, s->pool ? ck_pool_running(s->pool) : 0,
           s->pool ? ck_pool_queued(s->pool) : 0, n.waiting, s->done_total, s->failed_total);
}

