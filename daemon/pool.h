/* The conversion job pool: worker threads of ckptd's own (libuv's pool serves file
 * system calls); finished jobs reach the loop through uv_async_send. */
#ifndef CK_POOL_H
#define CK_POOL_H

#include <uv.h>

#include "conf.h"
#include "convert.h"

struct ck_job {
  uint64_t id;
  int direction;               /* CK_DIR_SAVER_TO_H5 or CK_DIR_H5_TO_SAVER */
  char *src;
  char *dst;
  struct ck_convert_opts opts;
  struct ck_shard_rule rules[CK_MAX_RULES]; /* owned copies */
  volatile int cancel;
  /* results, written by the worker */
  int rc;
  char err[512];
  struct ck_convert_stats st;
  void *owner;                 /* the scheduler's candidate */
  struct ck_job *next;
};

struct ck_pool;

typedef void (*ck_job_done_fn)(void *ctx, struct ck_job *job);

/* Start nthreads workers; done() runs on the loop thread for each finished job. */
int ck_pool_start(uv_loop_t *loop, int nthreads, ck_job_done_fn done, void *ctx, struct ck_pool **out);

/* Queue a job (owned by the pool until done() gets it back). */
void ck_pool_submit(struct ck_pool *p, struct ck_job *job);

/* Jobs waiting and running. */
int ck_pool_queued(struct ck_pool *p);
int ck_pool_running(struct ck_pool *p);

/* Hand every queued job back with rc = -ECANCELED (shutdown). */
void ck_pool_drop_queued(struct ck_pool *p);

/* Ask running jobs to abort (their converters remove their temporaries). */
void ck_pool_cancel_running(struct ck_pool *p);

/* Stop and join the workers (running jobs finish first), close the async handle. */
void ck_pool_stop(struct ck_pool *p);

/* Free a job. */
void ck_job_free(struct ck_job *job);

#endif
