/* A small FIFO of CPU jobs run by worker threads (chunk codecs, issue 12).
 *
 * DESIGN: the caller owns every job and pushes them in order; workers take them
 * from one mutex-guarded list and mark each done; the caller waits for a job it
 * pushed (in practice the oldest, so results are consumed in order). Jobs never
 * touch libhdf5 or file descriptors: those stay with the caller's thread. With 0
 * threads a push runs the job at once in the caller, so behaviour is the same and
 * deterministic. Each thread has its own context (a codec state), made by a
 * factory at start and passed to every job it runs. */
#ifndef CK_WORKQ_H
#define CK_WORKQ_H

struct ck_workq_job {
  void (*fn)(struct ck_workq_job *j, void *tctx);
  struct ck_workq_job *next; /* private */
  int done;                  /* private */
};

struct ck_workq;

/* Start threads workers (0: run jobs inline), each with the context tctx_new()
 * returns (freed with tctx_free). 0 or a negative errno. */
int ck_workq_start(struct ck_workq **out, int threads, void *(*tctx_new)(void), void (*tctx_free)(void *));

/* Queue j (its fn set); it must not be pushed again before ck_workq_wait returns. */
void ck_workq_push(struct ck_workq *q, struct ck_workq_job *j);

/* Wait until j has run. */
void ck_workq_wait(struct ck_workq *q, struct ck_workq_job *j);

/* Wait for queued jobs, stop the threads, free (accepts NULL). */
void ck_workq_stop(struct ck_workq *q);

#endif
