/* Parallel verification of a whole bundle.
 *
 * DESIGN: workers claim entries from a shared cursor over the data entries sorted
 * largest first, so one huge tensor starts early instead of finishing last. Reads
 * are pread on shared descriptors (no shared offsets). The first failure is kept
 * under the lock and makes the others stop at their next claim. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bundle.h"

struct verify_job {
  struct ck_bundle *b;
  const struct ck_entry **order;
  size_t n;
  size_t next;
  size_t bufsize;
  int rc;
  struct ck_err err;
  pthread_mutex_t lock;
};

static int by_size_desc(const void *pa, const void *pb)
{
  const struct ck_entry *a = *(const struct ck_entry *const *)pa;
  const struct ck_entry *b = *(const struct ck_entry *const *)pb;

  return a->size < b->size ? 1 : a->size > b->size ? -1 : 0;
}

static const struct ck_entry *claim(struct verify_job *j)
{
  const struct ck_entry *e = NULL;

  pthread_mutex_lock(&j->lock);
  if (j->rc == 0 && j->next < j->n)
    e = j->order[j->next++];
  pthread_mutex_unlock(&j->lock);
  return e;
}

static void *worker(void *arg)
{
  struct verify_job *j = arg;
  uint8_t *buf = malloc(j->bufsize);
  const struct ck_entry *e;
  struct ck_err err;

  if (buf == NULL) {
    pthread_mutex_lock(&j->lock);
    if (j->rc == 0)
      j->rc = ck_err_set(&j->err, -ENOMEM, "out of memory");
    pthread_mutex_unlock(&j->lock);
    return NULL;
  }
  while ((e = claim(j)) != NULL) {
    int rc = ck_bundle_verify(j->b, e, buf, j->bufsize, &err);
    if (rc != 0) {
      pthread_mutex_lock(&j->lock);
      if (j->rc == 0) {
        j->rc = rc;
        j->err = err;
      }
      pthread_mutex_unlock(&j->lock);
    }
  }
  free(buf);
  return NULL;
}

int ck_bundle_verify_all(struct ck_bundle *b, int nthreads, size_t bufsize, struct ck_err *err)
{
  struct verify_job j = { .b = b, .n = ck_bundle_data_count(b), .bufsize = bufsize ? bufsize : 1u << 18 };
  pthread_t tids[64];
  int started = 0;

  if (nthreads < 1)
    nthreads = 1;
  if (nthreads > 64)
    nthreads = 64;
  if ((j.order = malloc((j.n + 1) * sizeof(*j.order))) == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  for (size_t i = 0; i < j.n; i++)
    j.order[i] = ck_bundle_data_entry(b, i);
  qsort(j.order, j.n, sizeof(*j.order), by_size_desc);
  pthread_mutex_init(&j.lock, NULL);
  for (int i = 1; i < nthreads; i++)
    if (pthread_create(&tids[started], NULL, worker, &j) == 0)
      started++;
  worker(&j);
  for (int i = 0; i < started; i++)
    pthread_join(tids[i], NULL);
  pthread_mutex_destroy(&j.lock);
  free(j.order);
  if (j.rc != 0 && err)
    *err = j.err;
  return j.rc;
}
