/* A small FIFO of CPU jobs run by worker threads: see workq.h. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "workq.h"

#define WORKQ_MAX_THREADS 64

struct ck_workq {
  pthread_mutex_t lock;
  pthread_cond_t work; /* a job was queued, or stopping */
  pthread_cond_t done; /* a job finished */
  struct ck_workq_job *head, *tail;
  int stopping;
  int nthreads;
  pthread_t tids[WORKQ_MAX_THREADS];
  void *tctx[WORKQ_MAX_THREADS]; /* one per thread; [0] the caller's with no threads */
  void (*tctx_free)(void *);
};

struct worker {
  struct ck_workq *q;
  void *tctx;
};

static void *worker_main(void *arg)
{
  struct ck_workq *q = ((struct worker *)arg)->q;
  void *tctx = ((struct worker *)arg)->tctx;
  struct ck_workq_job *j;

  free(arg);
  pthread_mutex_lock(&q->lock);
  for (;;) {
    while (q->head == NULL && !q->stopping)
      pthread_cond_wait(&q->work, &q->lock);
    if ((j = q->head) == NULL)
      break; /* stopping, and nothing left */
    if ((q->head = j->next) == NULL)
      q->tail = NULL;
    pthread_mutex_unlock(&q->lock);
    j->fn(j, tctx);
    pthread_mutex_lock(&q->lock);
    j->done = 1;
    pthread_cond_broadcast(&q->done);
  }
  pthread_mutex_unlock(&q->lock);
  return NULL;
}

int ck_workq_start(struct ck_workq **out, int threads, void *(*tctx_new)(void), void (*tctx_free)(void *))
{
  struct ck_workq *q = calloc(1, sizeof(*q));
  int rc = 0;

  *out = NULL;
  if (q == NULL)
    return -ENOMEM;
  if (threads > WORKQ_MAX_THREADS)
    threads = WORKQ_MAX_THREADS;
  if (threads < 0)
    threads = 0;
  pthread_mutex_init(&q->lock, NULL);
  pthread_cond_init(&q->work, NULL);
  pthread_cond_init(&q->done, NULL);
  q->tctx_free = tctx_free;
  for (int i = 0; i < (threads ? threads : 1); i++) /* with no threads: the caller's */
    if (tctx_new && (q->tctx[i] = tctx_new()) == NULL)
      rc = -ENOMEM;
  for (int i = 0; rc == 0 && i < threads; i++) {
    struct worker *w = malloc(sizeof(*w));
    if (w == NULL) {
      rc = -ENOMEM;
      break;
    }
    w->q = q;
    w->tctx = q->tctx[i];
    if ((rc = -pthread_create(&q->tids[i], NULL, worker_main, w)) != 0) {
      free(w);
      break;
    }
    q->nthreads++;
  }
  if (rc != 0) { /* those started are joined by stop */
    ck_workq_stop(q);
    return rc;
  }
  *out = q;
  return 0;
}

void ck_workq_push(struct ck_workq *q, struct ck_workq_job *j)
{
  j->next = NULL;
  j->done = 0;
  if (q->nthreads == 0) {
    j->fn(j, q->tctx[0]);
    j->done = 1;
    return;
  }
  pthread_mutex_lock(&q->lock);
  if (q->tail)
    q->tail->next = j;
  else
    q->head = j;
  q->tail = j;
  pthread_cond_signal(&q->work);
  pthread_mutex_unlock(&q->lock);
}

void ck_workq_wait(struct ck_workq *q, struct ck_workq_job *j)
{
  if (q->nthreads == 0)
    return;
  pthread_mutex_lock(&q->lock);
  while (!j->done)
    pthread_cond_wait(&q->done, &q->lock);
  pthread_mutex_unlock(&q->lock);
}

void ck_workq_stop(struct ck_workq *q)
{
  if (q == NULL)
    return;
  pthread_mutex_lock(&q->lock);
  q->stopping = 1;
  pthread_cond_broadcast(&q->work);
  pthread_mutex_unlock(&q->lock);
  for (int i = 0; i < q->nthreads; i++)
    pthread_join(q->tids[i], NULL);
  for (int i = 0; i < WORKQ_MAX_THREADS; i++)
    if (q->tctx[i] && q->tctx_free)
      q->tctx_free(q->tctx[i]);
  pthread_cond_destroy(&q->work);
  pthread_cond_destroy(&q->done);
  pthread_mutex_destroy(&q->lock);
  free(q);
}
