/* The scheduler's private parts, shared by its files: sched.c (candidates,
 * checks, jobs, the tick, rescans, lifecycle), sched_status.c (the status file and
 * metrics snapshot), sched_ctl.c (ckpt ctl's requests) and sched_cluster.c (claims
 * shared with other instances, Slurm outages). Not for other modules:
 * they use sched.h. */
#ifndef CK_SCHED_INT_H
#define CK_SCHED_INT_H

#include <stdint.h>
#include <uv.h>

#include "conf.h"
#include "decide.h"
#include "pool.h"
#include "record.h"
#include "sched.h"
#include "status.h"
#include "transition.h"
#include "watch.h"

enum { KIND_SAVER = CK_KIND_SAVER, KIND_H5 = CK_KIND_H5 }; /* a candidate's kind: its format (CK_KIND_*) */

#define RECENT 20
enum { PHASE_RUNNING, PHASE_STOPPING, PHASE_STOPPED };

/* A file as a check saw it: an event or rescan that finds it unchanged costs
 * nothing more (no index parse, no HDF5 probe). */
struct fstamp {
  uint64_t ino, size;
  int64_t mtime_ns;
};

struct fstamps {
  struct fstamp *f;
  int n, cap;
};

struct cand {
  char *key;
  int kind;
  int root;            /* stable root id */
  int state;
  double next_check;   /* monotonic seconds */
  uint64_t sig;
  int have_sig;
  int attempts;
  int dirty;
  int checking;        /* a check is running on libuv's pool */
  int touched;         /* an event arrived while it ran */
  double started;
  struct ck_ident id;
  char *why;           /* last reason (incomplete, error) */
  struct fstamps seen; /* its files at the last check */
  struct fstamp outdir; /* BLOCKED: its output directory then (mode, owner in mtime_ns) */
  int guarded;          /* held back by the disk guard (logged once) */
  int force;            /* ckpt ctl retry or reconvert: CK_FORCE_* for the next decision */
  int skip;             /* ckpt ctl skip of a running job: skipped when it ends */
  int paused;           /* waiting for its tree's `ckpt ctl resume` */
  int held_elsewhere;   /* its claim is another instance's (logged once) */
  int claim_lost;       /* its running job's claim was lost: stopped, looked at again */
  unsigned gen;        /* the rescan that last reported one of its files */
};

struct sroot {
  int id;
  struct ck_watch_conf *conf;
  int pending;                  /* its path is missing: watched when it appears */
  int paused;                   /* ckpt ctl pause: no job starts in it */
  double last_success;          /* wall clock */
  unsigned long long disk_guard; /* jobs deferred or stopped for min_free */
};

struct finished {
  char *src;
  int ok;
  char *error;
  unsigned long long bytes;
  double seconds;
};

struct ck_sched {
  uv_loop_t *loop;
  struct ck_conf *conf;
  struct sroot *roots;
  int nroots;
  int next_root_id;
  struct ck_record *rec;
  struct ck_pool *pool;
  struct ck_watch *watch;
  struct ck_hmap *cands;
  uv_timer_t tick;     /* one-shot, armed for the earliest check due */
  double tick_due;     /* monotonic time it is armed for, or 0 */
  uv_timer_t rescan;
  uv_timer_t status_timer;
  uv_timer_t stop_timer;
  int stopping;        /* intake stopped (PHASE_STOPPING or later) */
  int phase;           /* PHASE_RUNNING, _STOPPING (jobs still ending), _STOPPED */
  int stop_signal;     /* what running workers were last sent at shutdown */
  void (*stop_done)(void *);
  void *stop_ctx;
  uint64_t next_job_id;
  double started_wall;
  unsigned long long done_total, failed_total, bytes_total;
  unsigned long long checks_total; /* completeness checks (stats, index parses) and probes run */
  unsigned gen;        /* rescans so far */
  double rescan_started; /* monotonic */
  int flags;            /* CK_SCHED_ONCE, CK_SCHED_DRY_RUN */
  uv_timer_t idle_timer; /* --once: ends the run when nothing is left to do */
  struct ck_once once;  /* --once: what the run did */
  void (*once_done)(void *ctx); /* called when a --once run has nothing left to do */
  void *once_ctx;
  struct ck_metrics metrics;
  struct finished recent[RECENT];
  int nrecent;
  struct ck_claims *claims; /* claims_dir's, or NULL (sched_cluster.c) */
  uv_timer_t claim_timer;   /* renews the leases */
  int have_claim_timer;
  int sched_outage;         /* the cluster's scheduler cannot be reached (logged once) */
};

/* Helpers of sched.c the other two use. */
const char *sched_dir_name(int from, int to);          /* "saver-to-h5", "torch-to-safetensors", "?" */
int sched_target(struct ck_sched *s, const struct cand *c); /* its tree's target format for it, 0: none */
double sched_mono(void);                               /* monotonic seconds */
double sched_wall(void);                               /* wall-clock seconds */
struct sroot *sched_root(struct ck_sched *s, int id); /* a tree by its id, or NULL */
void sched_settle(struct ck_sched *s, struct cand *c, double delay); /* check it in delay s */
void sched_record(struct ck_sched *s, struct cand *c, int status, const char *out, const char *err, long long ms);
void sched_plan(struct ck_sched *s, const char *verb, const char *src, const char *dst, const char *why);
int sched_dir_stamp(const char *key, struct fstamp *out);
int sched_output_mark(const struct cand *c, const char *dst, int to); /* CK_MARK_* of an existing output */

/* Shared by sched.c, sched_check.c (file events, checks) and sched_sweep.c (rescans). */
double sched_settle_of(struct ck_sched *s, const struct cand *c); /* its quiet time */
void sched_want_tick_at(struct ck_sched *s, double when); /* the timer fires by then */
void sched_check(struct ck_sched *s, struct cand *c);    /* check it now (off the loop) */
void sched_probe_done(struct ck_sched *s, struct ck_job *j); /* a probe job's result */
void sched_queue_job(struct ck_sched *s, struct cand *c, char *dst); /* takes dst */
void sched_run_hook(struct ck_sched *s, const struct cand *c, const char *dst, int to, int ok,
                    const char *error, const char *reason, unsigned long long bytes, double seconds);
void sched_on_rescan(uv_timer_t *timer);
void sched_add_pending_roots(struct ck_sched *s);
void sched_free_cand(void *ctx, const char *key, void *value);
struct candvec {
  struct cand **v;
  size_t n, cap;
};
void sched_candvec_push(struct candvec *cv, struct cand *c);

/* sched_cluster.c: claims in claims_dir (claim.h), when configured; Slurm outages;
 * what a reload keeps. */
int sched_claims_start(struct ck_sched *s);            /* the timer, and the claims if configured */
int sched_claim_gate(void *ctx, struct ck_job *j);    /* the pool's gate: 0, or CK_ECLAIMED */
void sched_claim_release(struct ck_sched *s, const char *src);
void sched_claims_stop(struct ck_sched *s);            /* release all, close the timer */
int sched_outage_quiet(struct ck_sched *s, const struct ck_job *j); /* 1: a retry in a logged outage */
void sched_outage_over(struct ck_sched *s, const struct ck_job *j); /* a job Slurm accepted */
void sched_keep_cluster_settings(struct ck_conf *conf, struct ck_conf *old); /* at reload */

/* sched_status.c: write the status file (and metrics) 250 ms after a change, and
 * every 2 s while jobs run; sched_write_status writes them now. */
void sched_mark_status(struct ck_sched *s);
void sched_write_status(struct ck_sched *s);

#endif
