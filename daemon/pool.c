/* Job pool.
 *
 * DESIGN: a mutex-guarded FIFO feeds the workers (condition variable); a finished
 * job goes on a mutex-guarded list and the loop is woken with uv_async_send. The
 * async callback swaps the whole list out under the lock and hands the jobs to the
 * scheduler outside it (several sends may arrive as one callback). Workers never
 * touch libuv handles. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "convert.h"
#include "log.h"
#include "pool.h"

struct ck_pool {
  uv_loop_t *loop;
  uv_async_t async;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct ck_job *head, *tail; /* queued */
  struct ck_job *done;        /* finished, newest first */
  struct ck_job **running;
  int nthreads;
  int nrunning;
  int stopping;
  pthread_t *tids;
  ck_job_done_fn fn;
  void *ctx;
};

void ck_job_free(struct ck_job *job)
{
  if (job == NULL)
    return;
  for (size_t i = 0; i < job->opts.nrules; i++)
    free((char *)job->rules[i].pattern);
  free(job->src);
  free(job->dst);
  free(job);
}

static void run(struct ck_job *j)
{
  struct ck_err err = { 0 };
  static const char *dirs[] = { "", "saver-to-h5", "h5-to-saver" };
  struct ck_log_fields f = { j->src, dirs[j->direction], -1, -1, j->dst, NULL };

  j->opts.cancel = &j->cancel;
  ck_log(CK_LOG_INFO, "job_start", &f, "converting %s", j->src);
  if (j->direction == CK_DIR_SAVER_TO_H5)
    j->rc = ck_convert_tf_to_h5(j->src, j->dst, &j->opts, &j->st, &err);
  else
    j->rc = ck_convert_h5_to_tf(j->src, j->dst, &j->opts, &j->st, &err);
  if (j->rc != 0)
    snprintf(j->err, sizeof(j->err), "%s", err.msg[0] ? err.msg : ck_strerror(j->rc));
}

static void *worker(void *arg)
{
  struct ck_pool *p = arg;

  pthread_mutex_lock(&p->lock);
  for (;;) {
    struct ck_job *j;
    while (p->head == NULL && !p->stopping)
      pthread_cond_wait(&p->cond, &p->lock);
    if (p->head == NULL)
      break;
    j = p->head;
    p->head = j->next;
    if (p->head == NULL)
      p->tail = NULL;
    for (int i = 0; i < p->nthreads; i++)
      if (p->running[i] == NULL) {
        p->running[i] = j;
        break;
      }
    p->nrunning++;
    pthread_mutex_unlock(&p->lock);
    run(j);
    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < p->nthreads; i++)
      if (p->running[i] == j)
        p->running[i] = NULL;
    p->nrunning--;
    j->next = p->done;
    p->done = j;
    uv_async_send(&p->async);
  }
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

static void drain(uv_async_t *a)
{
  struct ck_pool *p = a->data;
  struct ck_job *list, *rev = NULL;

  pthread_mutex_lock(&p->lock);
  list = p->done;
  p->done = NULL;
  pthread_mutex_unlock(&p->lock);
  while (list) { /* oldest first */
    struct ck_job *next = list->next;
    list->next = rev;
    rev = list;
    list = next;
  }
  while (rev) {
    struct ck_job *next = rev->next;
    rev->next = NULL;
    p->fn(p->ctx, rev);
    rev = next;
  }
}

int ck_pool_start(uv_loop_t *loop, int nthreads, ck_job_done_fn done, void *ctx, struct ck_pool **out)
{
  struct ck_pool *p = calloc(1, sizeof(*p));

  *out = NULL;
  if (p == NULL || (p->tids = calloc((size_t)nthreads, sizeof(pthread_t))) == NULL ||
      (p->running = calloc((size_t)nthreads, sizeof(*p->running))) == NULL) {
    if (p)
      free(p->tids);
    free(p);
    return -ENOMEM;
  }
  p->loop = loop;
  p->fn = done;
  p->ctx = ctx;
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->cond, NULL);
  uv_async_init(loop, &p->async, drain);
  p->async.data = p;
  for (int i = 0; i < nthreads; i++)
    if (pthread_create(&p->tids[p->nthreads], NULL, worker, p) == 0)
      p->nthreads++;
  if (p->nthreads == 0)
    return -EAGAIN;
  *out = p;
  return 0;
}

void ck_pool_submit(struct ck_pool *p, struct ck_job *job)
{
  pthread_mutex_lock(&p->lock);
  job->next = NULL;
  if (p->tail)
    p->tail->next = job;
  else
    p->head = job;
  p->tail = job;
  pthread_cond_signal(&p->cond);
  pthread_mutex_unlock(&p->lock);
}

int ck_pool_queued(struct ck_pool *p)
{
  int n = 0;

  pthread_mutex_lock(&p->lock);
  for (struct ck_job *j = p->head; j; j = j->next)
    n++;
  pthread_mutex_unlock(&p->lock);
  return n;
}

int ck_pool_running(struct ck_pool *p)
{
  int n;

  pthread_mutex_lock(&p->lock);
  n = p->nrunning;
  pthread_mutex_unlock(&p->lock);
  return n;
}

void ck_pool_drop_queued(struct ck_pool *p)
{
  pthread_mutex_lock(&p->lock);
  while (p->head) {
    struct ck_job *j = p->head;
    p->head = j->next;
    j->rc = -ECANCELED;
    snprintf(j->err, sizeof(j->err), "not started before shutdown");
    j->next = p->done;
    p->done = j;
  }
  p->tail = NULL;
  pthread_mutex_unlock(&p->lock);
  uv_async_send(&p->async);
}

void ck_pool_cancel_running(struct ck_pool *p)
{
  pthread_mutex_lock(&p->lock);
  for (int i = 0; i < p->nthreads; i++)
    if (p->running[i])
      p->running[i]->cancel = 1;
  pthread_mutex_unlock(&p->lock);
}

static void pool_free(uv_handle_t *h)
{
  struct ck_pool *p = h->data;

  pthread_mutex_destroy(&p->lock);
  pthread_cond_destroy(&p->cond);
  free(p->tids);
  free(p->running);
  free(p);
}

void ck_pool_stop(struct ck_pool *p)
{
  if (p == NULL)
    return;
  pthread_mutex_lock(&p->lock);
  p->stopping = 1;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->lock);
  for (int i = 0; i < p->nthreads; i++)
    pthread_join(p->tids[i], NULL);
  drain(&p->async); /* hand back what finished last */
  uv_close((uv_handle_t *)&p->async, pool_free);
}
