/* The executor: every conversion and every HDF5 completeness probe runs in a worker
 * child process (`ckptd --worker`, see worker.h), at most `workers` conversions and
 * a few probes at a time. Results come back on the loop thread. */
#ifndef CK_POOL_H
#define CK_POOL_H

#include <stdint.h>
#include <uv.h>

#include "conf.h"
#include "convert.h"
#include "wproto.h"

struct ck_job {
  uint64_t id;
  int kind;                    /* CK_WJOB_CONVERT or CK_WJOB_PROBE */
  int from, to;                /* conversions: source and output format (CK_KIND_*) */
  char *src;
  char *dst;                   /* conversions only */
  struct ck_convert_opts opts;
  struct ck_shard_rule rules[CK_MAX_RULES]; /* owned copies */
  int ckpt_policy;             /* h5-to-saver: the `checkpoint` file policy */
  int require_success;         /* probes: __SUCCESS__ is mandatory */
  uint64_t min_free;           /* conversions: the worker stops under this much free space */
  int tree;                    /* conversions: its tree's id, for ... */
  int tree_limit;              /* ... that tree's own workers limit (0: none) */
  int priority;                /* higher starts first */
  void *owner;                 /* the scheduler's candidate */
  /* results */
  int rc;                      /* 0, a negative errno, or a CK_E* code */
  char err[CK_WPROTO_LINE_MAX];
  struct ck_convert_stats st;
  int verdict;                 /* probes: CK_PROBE_READY, _WAIT or _CORRUPT */
  int probe_ours;              /* probes: ckptd wrote the file */
  uint64_t probe_size;
  int64_t probe_mtime_ns;
  int crashed;                 /* the worker died by a signal we did not send */
  /* while running */
  int pid;
  uint64_t slurm_job;          /* the Slurm executor's job id, once submitted */
  uint64_t done_bytes, total_bytes;
  double started;              /* monotonic seconds: queued, then its worker's start */
  struct ck_job *next;
  struct ck_proc *proc;        /* the pool's */
};

struct ck_pool;

typedef void (*ck_job_done_fn)(void *ctx, struct ck_job *job);

/* Resource limits applied by each worker to itself (0: none), and where conversions
 * run: here, or as Slurm jobs through a local supervisor child (slurm_run.c). */
struct ck_pool_limits {
  uint64_t mem_bytes;
  uint64_t cpu_seconds;
  int executor;              /* CK_EXEC_LOCAL or CK_EXEC_SLURM */
  const char *slurm_options; /* copied */
  double slurm_poll;
};

/* Asked before a conversion starts (claims, see sched_cluster.c): 0 to start it, or a
 * negative code with j->err set to hand it back unstarted through done(). */
typedef int (*ck_job_gate_fn)(void *ctx, struct ck_job *job);
void ck_pool_set_gate(struct ck_pool *p, ck_job_gate_fn gate);

/* Run at most nworkers conversions and nprobes probes at once; done() runs on the
 * loop thread for each finished job. */
int ck_pool_start(uv_loop_t *loop, int nworkers, int nprobes, const struct ck_pool_limits *lim, ck_job_done_fn done,
                  void *ctx, struct ck_pool **out);

/* Queue a job (owned by the pool until done() gets it back). */
void ck_pool_submit(struct ck_pool *p, struct ck_job *job);

/* Each running conversion, with the seconds since its worker started (progress:
 * its done_bytes and total_bytes, pid). */
typedef void (*ck_job_view_fn)(void *ctx, const struct ck_job *job, double seconds);
void ck_pool_each_running(struct ck_pool *p, ck_job_view_fn fn, void *ctx);

/* Conversions waiting and running. */
int ck_pool_queued(struct ck_pool *p);
int ck_pool_running(struct ck_pool *p);

/* Children alive (conversions and probes). */
int ck_pool_children(struct ck_pool *p);

/* Hand every queued job back with rc = -ECANCELED (shutdown). */
void ck_pool_drop_queued(struct ck_pool *p);

/* Send sig to every running child: SIGTERM asks a worker to abort cleanly (it removes
 * its temporaries), SIGKILL ends it (the pool removes them). Their jobs come back
 * with rc = -ECANCELED. */
void ck_pool_cancel_running(struct ck_pool *p, int sig);

/* Hold back (or release) the queued conversions of a tree: running ones go on. */
void ck_pool_pause_tree(struct ck_pool *p, int tree, int paused);

/* The same for the conversion of one source (`ckpt ctl skip`); if it is still queued
 * it comes back at once with -ECANCELED. How many were found. */
int ck_pool_cancel_src(struct ck_pool *p, const char *src, int sig);

/* Free (no child may be running). */
void ck_pool_stop(struct ck_pool *p);

/* Free a job. */
void ck_job_free(struct ck_job *job);

#endif
