/* TensorFlow bundle -> HDF5.
 *
 * DESIGN: one sequential pass in the bundle's data order creates every dataset
 * (so HDF5 creation order = the source's data order). Uncompressed fixed-size
 * tensors get contiguous storage allocated at creation; their bytes are queued and
 * later copied by `threads` workers with pread -> crc32c -> pwrite, outside HDF5.
 * Everything HDF5 must encode itself (compressed chunks, strings, variants,
 * partitioned variables) is written during the pass by the calling thread. The
 * buffer budget is split between the workers, so memory does not grow with tensor
 * or checkpoint size. The result appears under its final name only after
 * __SUCCESS__, fsync and a check that the source did not change meanwhile. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blocks.h"
#include "bundle.h"
#include "coding.h"
#include "convert.h"
#include "convert_internal.h"
#include "crc32c.h"
#include "dtype.h"
#include "fileio.h"
#include "h5.h"
#include "table.h"
#include "tensor_crc.h"

struct bulk_job {
  const struct ck_entry *e;
  uint64_t dst_off;
};

struct tf_h5 {
  const struct ck_convert_opts *o;
  const char *tmp; /* the output's temporary name, for messages */
  struct ck_bundle *b;
  struct ck_h5w *w;
  int raw_fd;
  uint8_t *buf;
  size_t bufsize;
  struct bulk_job *jobs;
  size_t njobs;
  size_t jobs_cap;
  size_t next_job;
  pthread_mutex_t lock;
  int rc;
  struct ck_err err;
  struct ck_progress prog;
  struct ck_convert_stats *st;
};

/* ---- fixed-size data: a sink that writes sequential bytes to a dataset ---- */

struct fixed_sink {
  struct ck_h5w_stream w;
  struct ck_tcrc *crc;  /* when the source does not verify itself */
  struct tf_h5 *c;
  struct ck_err *err;
};

static int sink_write(void *ctx, const void *data, size_t len)
{
  struct fixed_sink *s = ctx;
  int rc;

  if (s->crc && (rc = ck_tcrc_update(s->crc, data, len)) != 0)
    return ck_err_set(s->err, rc, "%s", s->crc->why);
  if ((rc = ck_progress_add(&s->c->prog, len)) != 0)
    return ck_err_set(s->err, rc, "cancelled");
  return ck_h5w_stream_write(&s->w, data, len, s->err);
}

/* ---- bulk workers ---- */

static struct bulk_job *claim(struct tf_h5 *c)
{
  struct bulk_job *j = NULL;

  pthread_mutex_lock(&c->lock);
  if (c->rc == 0 && c->next_job < c->njobs)
    j = &c->jobs[c->next_job++];
  pthread_mutex_unlock(&c->lock);
  return j;
}

static void fail(struct tf_h5 *c, int rc, const struct ck_err *err)
{
  pthread_mutex_lock(&c->lock);
  if (c->rc == 0) {
    c->rc = rc;
    if (err)
      c->err = *err;
  }
  pthread_mutex_unlock(&c->lock);
}

struct worker_arg {
  struct tf_h5 *c;
  uint8_t *buf;
  size_t size;
};

static void *bulk_worker(void *arg)
{
  struct worker_arg *a = arg;
  struct tf_h5 *c = a->c;
  struct bulk_job *j;

  while ((j = claim(c)) != NULL) {
    struct ck_err err = { 0 };
    struct fixed_sink s = { .c = c, .err = &err };
    int rc;
    ck_h5w_stream_init(&s.w, NULL, c->raw_fd, j->dst_off, j->e->dtype, 0, NULL, NULL, 0, c->tmp);
    s.w.wb.keep = c->o->verify;
    rc = ck_bundle_stream(c->b, j->e, a->buf, a->size, sink_write, &s, &err);
    if (rc != 0)
      fail(c, rc, &err);
  }
  return NULL;
}

static int run_bulk(struct tf_h5 *c)
{
  int threads = c->o->threads > 0 ? c->o->threads : 2, n = threads;
  struct worker_arg args[16];
  pthread_t tids[16];
  int started = 0;

  if (c->njobs == 0)
    return 0;
  if (n > 16)
    n = 16;
  if ((size_t)n > c->njobs)
    n = (int)c->njobs;
  /* fewer tensors than threads (one big tensor): the spare threads read ahead */
  ck_bundle_set_read_ahead(c->b, n < threads);
  for (int i = 0; i < n; i++) {
    args[i].c = c;
    args[i].size = c->bufsize / (size_t)n;
    args[i].buf = c->buf + (size_t)i * args[i].size;
  }
  pthread_mutex_init(&c->lock, NULL);
  for (int i = 1; i < n; i++)
    if (pthread_create(&tids[started], NULL, bulk_worker, &args[i]) == 0)
      started++;
  bulk_worker(&args[0]);
  for (int i = 0; i < started; i++)
    pthread_join(tids[i], NULL);
  pthread_mutex_destroy(&c->lock);
  ck_bundle_set_read_ahead(c->b, 0);
  return c->rc;
}

static int cmp_job(const void *pa, const void *pb)
{
  const struct bulk_job *a = pa, *b = pb;

  return a->e->size < b->e->size ? 1 : a->e->size > b->e->size ? -1 : 0;
}

/* ---- tensors written through HDF5 during the pass ---- */

static int write_fixed_via_h5(struct tf_h5 *c, const struct ck_entry *e, struct ck_h5w_ds *ds, struct ck_err *err)
{
  size_t half = c->bufsize / 2;
  struct fixed_sink s = { .c = c, .err = err };
  struct ck_tcrc crc;
  uint32_t got;
  int rc;

  ck_h5w_stream_init(&s.w, ds, c->raw_fd, ck_h5w_ds_raw_offset(ds), e->dtype, e->rank, e->dims, c->buf + half, half,
                     c->tmp);
  s.w.wb.keep = c->o->verify;
  if (e->nslices == 0)
    return ck_bundle_stream(c->b, e, c->buf, half, sink_write, &s, err);
  /* a partitioned variable: its crc is computed over the assembled bytes */
  ck_tcrc_init(&crc, e->dtype, e->nelem);
  s.crc = &crc;
  if ((rc = ck_bundle_stream_tensor(c->b, e, c->buf, half, sink_write, &s, err)) != 0)
    return rc;
  ck_tcrc_final(&crc, &got);
  return ck_h5w_ds_set_crc(ds, ck_crc32c_mask(got), err);
}

/* Sequential reader over one entry's stored bytes, for string and variant layouts. */
struct cursor {
  struct ck_bundle *b;
  const struct ck_entry *e;
  uint64_t off;     /* entry offset of buf[0] */
  uint8_t *buf;
  size_t cap, len, pos;
  int owned;
};

static int cursor_need(struct cursor *k, size_t n, struct ck_err *err)
{
  uint64_t avail_in_entry;
  int rc;

  if (k->len - k->pos >= n)
    return 0;
  if (n > k->cap) { /* one element larger than the buffer: grow for it */
    uint8_t *nb = malloc(n);
    if (nb == NULL)
      return ck_err_set(err, -ENOMEM, "out of memory for a %zu-byte element", n);
    memcpy(nb, k->buf + k->pos, k->len - k->pos);
    if (k->owned)
      free(k->buf);
    k->buf = nb;
    k->cap = n;
    k->owned = 1;
  } else {
    memmove(k->buf, k->buf + k->pos, k->len - k->pos);
  }
  k->off += k->pos;
  k->len -= k->pos;
  k->pos = 0;
  avail_in_entry = k->e->size - (k->off + k->len);
  {
    size_t want = k->cap - k->len < avail_in_entry ? k->cap - k->len : (size_t)avail_in_entry;
    if (k->len + want < n)
      return ck_err_set(err, CK_EFORMAT, "%s: element runs past the end of the entry", k->e->key);
    if ((rc = ck_bundle_read(k->b, k->e, k->off + k->len, k->buf + k->len, want, err)) != 0)
      return rc;
    k->len += want;
  }
  return 0;
}

static int cursor_varint(struct cursor *k, uint64_t *v, struct ck_err *err)
{
  const uint8_t *p;
  uint64_t left = k->e->size - (k->off + k->pos);
  size_t need = left < CK_VARINT64_MAX ? (size_t)left : CK_VARINT64_MAX;
  int rc;

  if (need == 0 || (rc = cursor_need(k, need, err)) != 0)
    return need == 0 ? ck_err_set(err, CK_EFORMAT, "%s: truncated length", k->e->key) : rc;
  p = k->buf + k->pos;
  if (ck_get_varint64(&p, k->buf + k->len, v) != 0)
    return ck_err_set(err, CK_EFORMAT, "%s: bad length varint", k->e->key);
  k->pos = (size_t)(p - k->buf);
  return 0;
}

static void cursor_free(struct cursor *k)
{
  if (k->owned)
    free(k->buf);
}

struct vlen_batch {
  const uint8_t **ptrs;
  size_t *lens;
};

/* DT_STRING: lengths at the front, bytes after the 4-byte length checksum. Two
 * cursors walk them together in batches of elements. */
static int write_strings(struct tf_h5 *c, const struct ck_entry *e, struct ck_h5w_ds *ds, struct ck_err *err)
{
  size_t q = c->bufsize / 4;
  struct cursor lens = { .b = c->b, .e = e, .buf = c->buf, .cap = q };
  struct cursor body = { .b = c->b, .e = e, .buf = c->buf + q, .cap = 2 * q };
  uint64_t start[CK_MAX_RANK], count[CK_MAX_RANK], off, n, v;
  struct vlen_batch vb = { malloc(1024 * sizeof(uint8_t *)), malloc(1024 * sizeof(size_t)) };
  uint64_t *lenv = malloc(1024 * sizeof(uint64_t));
  struct ck_blocks blocks;
  int rc;

  if (!vb.ptrs || !vb.lens || !lenv) {
    rc = ck_err_set(err, -ENOMEM, "out of memory");
    goto out;
  }
  /* the whole entry is verified first: the layout is then known to be sound */
  if ((rc = ck_bundle_verify(c->b, e, c->buf, c->bufsize, err)) != 0)
    goto out;
  for (uint64_t i = 0; i < e->nelem && rc == 0; i++) /* find where the bytes start */
    rc = cursor_varint(&lens, &v, err);
  if (rc != 0)
    goto out;
  body.off = lens.off + lens.pos + 4;
  lens.off = 0;
  lens.len = lens.pos = 0;
  ck_blocks_init(&blocks, e->rank, e->dims, 1024);
  while (rc == 0 && ck_blocks_next(&blocks, start, count, &off, &n)) {
    uint64_t total = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
      rc = cursor_varint(&lens, &lenv[i], err);
      total += lenv[i];
    }
    if (rc == 0 && total > SIZE_MAX / 2)
      rc = ck_err_set(err, CK_ELIMIT, "%s: string batch too large", e->key);
    if (rc == 0 && (rc = cursor_need(&body, (size_t)total, err)) == 0) {
      for (size_t i = 0; i < n; i++) {
        vb.ptrs[i] = body.buf + body.pos;
        vb.lens[i] = (size_t)lenv[i];
        body.pos += (size_t)lenv[i];
      }
      rc = ck_h5w_ds_write_vlen(ds, start, count, (size_t)n, vb.ptrs, vb.lens, err);
      if (rc == 0)
        rc = ck_progress_add(&c->prog, total);
    }
  }
out:
  cursor_free(&lens);
  cursor_free(&body);
  free(vb.ptrs);
  free(vb.lens);
  free(lenv);
  return rc;
}

/* DT_VARIANT: (length, bytes, checksum) per element, read with one cursor. */
static int write_variants(struct tf_h5 *c, const struct ck_entry *e, struct ck_h5w_ds *ds, struct ck_err *err)
{
  struct cursor k = { .b = c->b, .e = e, .buf = c->buf, .cap = c->bufsize };
  uint64_t start[CK_MAX_RANK], count[CK_MAX_RANK], off, n;
  struct ck_blocks blocks;
  int rc;

  if ((rc = ck_bundle_verify(c->b, e, c->buf, c->bufsize, err)) != 0)
    return rc;
  ck_blocks_init(&blocks, e->rank, e->dims, 1);
  while (rc == 0 && ck_blocks_next(&blocks, start, count, &off, &n)) {
    uint64_t len;
    const uint8_t *p;
    size_t l;
    if ((rc = cursor_varint(&k, &len, err)) != 0 || (rc = cursor_need(&k, (size_t)len + 4, err)) != 0)
      break;
    p = k.buf + k.pos;
    l = (size_t)len;
    k.pos += l + 4;
    rc = ck_h5w_ds_write_vlen(ds, start, count, 1, &p, &l, err);
  }
  cursor_free(&k);
  return rc;
}

/* ---- the pass ---- */

static int add_job(struct tf_h5 *c, const struct ck_entry *e, uint64_t off)
{
  if (c->njobs == c->jobs_cap) {
    size_t cap = c->jobs_cap ? c->jobs_cap * 2 : 64;
    struct bulk_job *nj = realloc(c->jobs, cap * sizeof(*nj));
    if (nj == NULL)
      return -ENOMEM;
    c->jobs = nj;
    c->jobs_cap = cap;
  }
  c->jobs[c->njobs].e = e;
  c->jobs[c->njobs].dst_off = off;
  c->njobs++;
  return 0;
}

static int one_tensor(struct tf_h5 *c, const struct ck_entry *e, struct ck_err *err)
{
  struct ck_h5w_ds *ds;
  int rc = ck_h5w_dataset(c->w, e->key, e->key_len, e->dtype, e->rank, e->dims, e->crc32c, &ds, err);

  if (rc != 0)
    return rc;
  c->st->tensors++;
  c->st->bytes += ck_entry_tensor_bytes(e);
  if (e->dtype == CK_DT_STRING)
    rc = write_strings(c, e, ds, err);
  else if (e->dtype == CK_DT_VARIANT)
    rc = write_variants(c, e, ds, err);
  else if (ck_h5w_ds_raw_offset(ds) && e->nslices == 0)
    rc = add_job(c, e, ck_h5w_ds_raw_offset(ds)) ? ck_err_set(err, -ENOMEM, "out of memory") : 0;
  else if (e->nelem > 0)
    rc = write_fixed_via_h5(c, e, ds, err);
  ck_h5w_ds_close(ds);
  return rc;
}

static int pass(struct tf_h5 *c, struct ck_err *err)
{
  size_t n = ck_bundle_data_count(c->b);
  const struct ck_entry **done_full = calloc(n + 1, sizeof(*done_full));
  size_t ndone = 0;
  int rc = 0;

  if (done_full == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  for (size_t i = 0; i < n && rc == 0; i++) {
    const struct ck_entry *e = ck_bundle_data_entry(c->b, i);
    if (e->is_slice) { /* the whole variable, where its first slice was stored */
      int seen = 0;
      for (size_t k = 0; k < ndone && !seen; k++)
        seen = done_full[k] == e->full;
      if (seen)
        continue;
      done_full[ndone++] = e->full;
      e = e->full;
    }
    if (c->o->cancel && atomic_load(c->o->cancel))
      rc = ck_err_set(err, -ECANCELED, "cancelled");
    else
      rc = one_tensor(c, e, err);
  }
  free(done_full);
  return rc;
}

/* What verify checks the new file against: each source tensor's name and crc32c, copied
 * out of the bundle so that the bundle is closed before the .h5 is listed (at 200,000
 * tensors the two alive together peaked at 139 MB). */
struct expect {
  const uint8_t *key;
  size_t klen;
  uint32_t crc32c;
  int assembled; /* a partitioned variable: no stored crc of the whole */
};

static int expect_cmp(const void *pa, const void *pb)
{
  const struct expect *a = pa, *b = pb;

  return ck_key_cmp(a->key, a->klen, b->key, b->klen);
}

/* The source's tensors, sorted by name, their keys in one block after the array. */
static struct expect *expect_take(const struct ck_bundle *b, size_t *count)
{
  size_t n = 0, keys = 0, k = 0;
  struct expect *x;
  uint8_t *p;

  for (size_t i = 0; i < ck_bundle_count(b); i++)
    if (!ck_bundle_entry(b, i)->is_slice) {
      n++;
      keys += ck_bundle_entry(b, i)->key_len;
    }
  if ((x = malloc(n * sizeof(*x) + keys + 1)) == NULL)
    return NULL;
  p = (uint8_t *)(x + n);
  for (size_t i = 0; i < ck_bundle_count(b); i++) {
    const struct ck_entry *e = ck_bundle_entry(b, i);
    if (e->is_slice)
      continue;
    memcpy(p, e->key, e->key_len);
    x[k++] = (struct expect){ .key = p, .klen = e->key_len, .crc32c = e->crc32c, .assembled = e->nslices > 0 };
    p += e->key_len;
  }
  qsort(x, n, sizeof(*x), expect_cmp);
  *count = n;
  return x;
}

static int verify_output(struct tf_h5 *c, const struct expect *x, size_t nx, const char *path, struct ck_err *err)
{
  struct ck_h5r *r;
  int rc = ck_h5r_open(path, &r, err);

  for (size_t i = 0; rc == 0 && i < ck_h5r_count(r); i++) {
    const struct ck_h5_tensor *t = ck_h5r_tensor(r, i);
    struct expect key = { .key = t->name, .klen = t->nlen };
    const struct expect *e = bsearch(&key, x, nx, sizeof(*x), expect_cmp);
    uint32_t crc;
    if (e == NULL) {
      rc = ck_err_set(err, CK_EFORMAT, "%s: verify: %s is not in the source", path, t->name);
      break;
    }
    if ((rc = ck_tensor_crc_h5(r, t, c->buf, c->bufsize, &crc, err)) != 0)
      break;
    if (!e->assembled && crc != e->crc32c)
      rc = ck_err_set(err, CK_ECHECKSUM, "%s: verify: %s: crc32c %08x, source has %08x", path, t->name, crc,
                      e->crc32c);
    else if (t->has_crc && crc != t->tf_crc32c)
      rc = ck_err_set(err, CK_ECHECKSUM, "%s: verify: %s: crc32c %08x disagrees with its tf_crc32c %08x", path,
                      t->name, crc, t->tf_crc32c);
  }
  if (rc == 0 && ck_h5r_count(r) != c->st->tensors)
    rc = ck_err_set(err, CK_EFORMAT, "%s: verify: %zu tensors, expected %llu", path, ck_h5r_count(r),
                    (unsigned long long)c->st->tensors);
  ck_h5r_close(r);
  return rc;
}

/* Verify with the bundle and the copy jobs freed first. */
static int verify_closing(struct tf_h5 *c, const char *path, struct ck_err *err)
{
  size_t nx = 0;
  struct expect *x = expect_take(c->b, &nx);
  int rc;

  if (x == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  ck_bundle_close(c->b);
  c->b = NULL;
  free(c->jobs);
  c->jobs = NULL;
#ifdef __GLIBC__
  malloc_trim(0); /* what the writing freed goes back to the system before the listing grows */
#endif
  rc = verify_output(c, x, nx, path, err);
  free(x);
  return rc;
}

/* Complete the file under its temporary name: every byte on disk, __SUCCESS__ last. */
static int seal(struct tf_h5 *c, const char *tmp, struct ck_err *err)
{
  int rc;

  if ((rc = ck_fsync_drop(c->raw_fd, c->o->verify)) != 0)
    return ck_err_set(err, rc, "%s: fsync: %s", tmp, strerror(-rc));
  rc = ck_h5w_finish(c->w, err);
  c->w = NULL;
  return rc;
}

static int publish(const char *tmp, const char *dst, struct ck_srcid *id, const char *source_name,
                   const char *source_id, const struct ck_convert_opts *o, struct ck_err *err)
{
  int rc;

  if ((rc = ck_srcid_check(id, err)) != 0)
    return rc;
  return ck_publish_file(tmp, dst, source_name, source_id, o, err);
}

int ck_convert_tf_to_h5(const char *src, const char *dst, const struct ck_convert_opts *o,
                        struct ck_convert_stats *st, struct ck_err *err)
{
  struct ck_convert_opts defaults = { 0 };
  struct ck_convert_stats local;
  struct tf_h5 c = { .raw_fd = -1 };
  struct ck_srcid id = { 0 };
  struct ck_h5_write_opts wo;
  char *tmp = NULL, *base = NULL, source_id[64];
  double t0 = ck_now();
  int rc, fixed_only = 1;

  o = o ? o : &defaults;
  st = st ? st : &local;
  memset(st, 0, sizeof(*st));
  c.o = o;
  c.st = st;
  c.bufsize = ck_convert_chunk(o); /* shared by the copy threads */
  if (c.bufsize < 4096)
    c.bufsize = 4096;
  if ((rc = ck_bundle_open(src, 0, &c.b, err)) != 0)
    return rc;
  if ((rc = ck_srcid_bundle(&id, c.b, err)) != 0)
    goto out;
  if ((c.buf = malloc(c.bufsize)) == NULL || (c.tmp = tmp = ck_temp_name(dst)) == NULL ||
      (base = ck_basename(ck_bundle_prefix(c.b))) == NULL) {
    rc = ck_err_set(err, -ENOMEM, "out of memory");
    goto out;
  }
  ck_srcid_format(&id, source_id, sizeof(source_id));
  for (size_t i = 0; i < ck_bundle_count(c.b); i++) {
    const struct ck_entry *e = ck_bundle_entry(c.b, i);
    if (!e->is_slice)
      c.prog.total += ck_entry_tensor_bytes(e);
    fixed_only &= !ck_dtype_is_varlen(e->dtype);
  }
  wo = (struct ck_h5_write_opts){ .layout = o->layout, .compression = o->compression, .gzip_level = o->gzip_level,
                                  .source_name = base, .source_id = source_id,
                                  .threads = o->threads > 0 ? o->threads : 2, .budget = o->buffer_size,
                                  .chunk_bytes = o->chunk_bytes, .fixed_only = fixed_only };
  if ((rc = ck_h5w_create(tmp, &wo, &c.w, err)) != 0)
    goto out;
  if ((c.raw_fd = open(tmp, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
    rc = ck_err_set(err, -errno, "%s: %s", tmp, strerror(errno));
    goto out;
  }
  ck_progress_init(&c.prog, o);
  if ((rc = pass(&c, err)) != 0)
    goto out;
  if (c.njobs > 1)
    qsort(c.jobs, c.njobs, sizeof(*c.jobs), cmp_job);
  if ((rc = run_bulk(&c)) != 0) {
    if (err)
      *err = c.err;
    goto out;
  }
  /* a result that does not verify is not a result: it is checked under its
   * temporary name and never published */
  if ((rc = seal(&c, tmp, err)) != 0 || (o->verify && (rc = verify_closing(&c, tmp, err)) != 0))
    goto out;
  rc = publish(tmp, dst, &id, base, source_id, o, err);
out:
  ck_h5w_abort(c.w);
  if (c.raw_fd >= 0)
    close(c.raw_fd);
  if (rc != 0 && tmp)
    unlink(tmp);
  ck_progress_done(&c.prog);
  st->seconds = ck_now() - t0;
  ck_srcid_free(&id);
  ck_bundle_close(c.b);
  free(c.jobs);
  free(c.buf);
  free(tmp);
  free(base);
  return rc;
}
