/* Reading a byte range ahead of its consumer (readahead.h).
 *
 * Two halves of the caller's buffer pass between a reader thread and the caller: the
 * reader fills the half the caller gave back, the caller consumes the other. Each half
 * carries its piece's length and the read's result, so an error reaches the caller in
 * order, after the pieces before it. Measured: docs/performance.md. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>

#include "fileio.h"
#include "readahead.h"

struct half {
  uint8_t *p;
  size_t n;      /* bytes of the piece */
  int full;      /* read, not yet consumed */
  int rc;        /* the read's result */
  uint64_t at;   /* file offset of the piece */
};

struct ahead {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct half h[2];
  int fd;
  uint64_t off, end;
  size_t cap;    /* bytes per half */
  int stop;      /* the caller gives up (fn failed) */
};

static void *reader(void *arg)
{
  struct ahead *a = arg;

  for (unsigned i = 0; a->off < a->end; i++) {
    struct half *h = &a->h[i & 1];
    size_t n = a->end - a->off < a->cap ? (size_t)(a->end - a->off) : a->cap;
    int rc, stop;
    pthread_mutex_lock(&a->mu);
    while (h->full && !a->stop)
      pthread_cond_wait(&a->cv, &a->mu);
    stop = a->stop;
    pthread_mutex_unlock(&a->mu);
    if (stop)
      break;
    rc = ck_pread_full(a->fd, h->p, n, a->off);
    pthread_mutex_lock(&a->mu);
    h->n = n;
    h->rc = rc;
    h->at = a->off;
    h->full = 1;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    a->off += n;
    if (rc != 0)
      break;
  }
  return NULL;
}

static int read_serial(int fd, uint64_t off, uint64_t len, uint8_t *buf, size_t bufsize,
                       int (*fn)(void *, const void *, size_t), void *ctx, uint64_t *bad_off)
{
  int rc = 0;

  for (uint64_t pos = 0, n; pos < len && rc == 0; pos += n) {
    n = len - pos < bufsize ? len - pos : bufsize;
    if ((rc = ck_pread_full(fd, buf, (size_t)n, off + pos)) != 0) {
      *bad_off = off + pos;
      return rc;
    }
    rc = fn(ctx, buf, (size_t)n);
  }
  return rc;
}

int ck_read_range(int fd, uint64_t off, uint64_t len, void *buf, size_t bufsize, int threads,
                  int (*fn)(void *ctx, const void *data, size_t n), void *ctx, uint64_t *bad_off)
{
  struct ahead a = { .fd = fd, .off = off, .end = off + len, .cap = bufsize / 2 };
  pthread_t tid;
  int rc = 0;

  *bad_off = UINT64_MAX;
  if (threads < 2 || len <= bufsize || a.cap < CK_READ_AHEAD_MIN) /* (a handoff per few bytes costs more) */
    return read_serial(fd, off, len, buf, bufsize, fn, ctx, bad_off);
  a.h[0].p = buf;
  a.h[1].p = (uint8_t *)buf + a.cap;
  pthread_mutex_init(&a.mu, NULL);
  pthread_cond_init(&a.cv, NULL);
  if (pthread_create(&tid, NULL, reader, &a) != 0) {
    pthread_cond_destroy(&a.cv);
    pthread_mutex_destroy(&a.mu);
    return read_serial(fd, off, len, buf, bufsize, fn, ctx, bad_off);
  }
  for (uint64_t i = 0, done = 0; done < len && rc == 0; i++) {
    struct half *h = &a.h[i & 1];
    pthread_mutex_lock(&a.mu);
    while (!h->full)
      pthread_cond_wait(&a.cv, &a.mu);
    pthread_mutex_unlock(&a.mu);
    if ((rc = h->rc) != 0) {
      *bad_off = h->at;
      break;
    }
    rc = fn(ctx, h->p, h->n);
    done += h->n;
    pthread_mutex_lock(&a.mu);
    h->full = 0;
    pthread_cond_broadcast(&a.cv);
    pthread_mutex_unlock(&a.mu);
  }
  pthread_mutex_lock(&a.mu);
  a.stop = 1;
  pthread_cond_broadcast(&a.cv);
  pthread_mutex_unlock(&a.mu);
  pthread_join(tid, NULL);
  pthread_cond_destroy(&a.cv);
  pthread_mutex_destroy(&a.mu);
  return rc;
}
