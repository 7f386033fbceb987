/* Progress, source identity and checksum helpers for the converters. */
#include "config.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "convert_internal.h"
#include "crc32c.h"
#include "fileio.h"
#include "tensor_crc.h"

size_t ck_convert_chunk(const struct ck_convert_opts *o)
{
  size_t b = o && o->buffer_size ? o->buffer_size : CK_CONVERT_DEFAULT_BUFFER;

  return b < CK_CONVERT_CHUNK ? b : CK_CONVERT_CHUNK;
}

double ck_now(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ms(void)
{
  return (uint64_t)(ck_now() * 1000.0);
}

void ck_progress_init(struct ck_progress *p, const struct ck_convert_opts *o)
{
  p->o = o;
  atomic_store(&p->done, 0);
  atomic_store(&p->reporting, 0);
  p->last_report_ms = 0; /* the first chunk reports at once */
  p->last_report_done = 0;
}

int ck_progress_add(struct ck_progress *p, uint64_t n)
{
  uint64_t done = atomic_fetch_add(&p->done, n) + n, now;

  if (p->o == NULL)
    return 0;
  if (p->o->cancel && atomic_load(p->o->cancel))
    return -ECANCELED;
  if (p->o->progress && atomic_exchange(&p->reporting, 1) == 0) { /* one thread at a time */
    now = now_ms();
    if (now - p->last_report_ms >= 100 || (done > p->last_report_done && done - p->last_report_done >= CK_PROGRESS_BYTES)) {
      p->last_report_ms = now;
      p->last_report_done = done;
      p->o->progress(p->o->progress_ctx, done, p->total);
    }
    atomic_store(&p->reporting, 0);
  }
  return 0;
}

void ck_progress_done(struct ck_progress *p)
{
  if (p->o && p->o->progress)
    p->o->progress(p->o->progress_ctx, atomic_load(&p->done), p->total);
}

int ck_srcid_add(struct ck_srcid *id, const char *path, struct ck_err *err)
{
  struct ck_srcfile *nf = realloc(id->f, (id->n + 1) * sizeof(*nf));
  struct stat st;

  if (nf == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  id->f = nf;
  if (stat(path, &st) != 0)
    return ck_err_set(err, -errno, "%s: %s", path, strerror(errno));
  nf[id->n].path = strdup(path);
  nf[id->n].dev = st.st_dev;
  nf[id->n].ino = st.st_ino;
  nf[id->n].size = st.st_size;
  nf[id->n].mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec;
  id->n++;
  return nf[id->n - 1].path ? 0 : ck_err_set(err, -ENOMEM, "out of memory");
}

int ck_srcid_bundle(struct ck_srcid *id, const struct ck_bundle *b, struct ck_err *err)
{
  char path[4200];
  int rc;

  snprintf(path, sizeof(path), "%s.index", ck_bundle_prefix(b));
  if ((rc = ck_srcid_add(id, path, err)) != 0)
    return rc;
  for (int i = 0; i < ck_bundle_num_shards(b); i++)
    if ((rc = ck_srcid_add(id, ck_bundle_shard_path(b, i), err)) != 0)
      return rc;
  return 0;
}

int ck_srcid_check(const struct ck_srcid *id, struct ck_err *err)
{
  for (size_t i = 0; i < id->n; i++) {
    const struct ck_srcfile *f = &id->f[i];
    struct stat st;
    if (stat(f->path, &st) != 0 || st.st_dev != f->dev || st.st_ino != f->ino || st.st_size != f->size ||
        (long long)st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec != f->mtime_ns)
      return ck_err_set(err, -EAGAIN, "%s: the source changed during the conversion; nothing was written", f->path);
  }
  return 0;
}

void ck_srcid_format(const struct ck_srcid *id, char *buf, size_t len)
{
  uint64_t size = 0;
  int64_t newest = 0;

  for (size_t i = 0; i < id->n; i++) {
    size += (uint64_t)id->f[i].size;
    if (id->f[i].mtime_ns > newest)
      newest = id->f[i].mtime_ns;
  }
  ck_source_id_format(size, newest, buf, len);
}

void ck_srcid_free(struct ck_srcid *id)
{
  for (size_t i = 0; i < id->n; i++)
    free(id->f[i].path);
  free(id->f);
  id->f = NULL;
  id->n = 0;
}

struct crc_ctx {
  struct ck_tcrc s;
};

static int crc_chunk(void *ctx, const void *data, size_t len)
{
  struct crc_ctx *c = ctx;

  return ck_tcrc_update(&c->s, data, len);
}

int ck_tensor_crc_bundle(struct ck_bundle *b, const struct ck_entry *e, void *buf, size_t bufsize, uint32_t *crc,
                         struct ck_err *err)
{
  struct crc_ctx c;
  uint32_t raw;
  int rc;

  ck_tcrc_init(&c.s, e->dtype, e->nelem);
  if ((rc = ck_bundle_stream_tensor(b, e, buf, bufsize, crc_chunk, &c, err)) != 0)
    return c.s.why[0] ? ck_err_set(err, rc, "%s: %s", e->key, c.s.why) : rc;
  if ((rc = ck_tcrc_final(&c.s, &raw)) != 0)
    return ck_err_set(err, rc, "%s: %s", e->key, c.s.why);
  *crc = ck_crc32c_mask(raw);
  return 0;
}

int ck_tensor_crc_h5(struct ck_h5r *r, const struct ck_h5_tensor *t, void *buf, size_t bufsize, uint32_t *crc,
                     struct ck_err *err)
{
  struct crc_ctx c;
  uint32_t raw;
  int rc;

  ck_tcrc_init(&c.s, t->dtype, t->nelem);
  if ((rc = ck_h5r_stream_tf(r, t, buf, bufsize, crc_chunk, &c, err)) != 0)
    return c.s.why[0] ? ck_err_set(err, rc, "%s: %s", t->path, c.s.why) : rc;
  if ((rc = ck_tcrc_final(&c.s, &raw)) != 0)
    return ck_err_set(err, rc, "%s: %s", t->path, c.s.why);
  *crc = ck_crc32c_mask(raw);
  return 0;
}

int ck_glob_match(const char *pattern, const char *name)
{
  return fnmatch(pattern, name, 0) == 0;
}

int ck_publish_file(const char *tmp, const char *dst, const char *mark_name, const char *mark_id,
                    const struct ck_convert_opts *o, struct ck_err *err)
{
  char *dir;
  int rc;

  if (mark_name)
    ck_mark_set(tmp, mark_name, mark_id); /* best effort: without user xattrs, the record knows */
  if ((rc = ck_set_owner(tmp, o->output_mode, o->output_chgrp, o->output_gid)) != 0)
    return ck_err_set(err, rc, "%s: cannot set its mode or group: %s", dst, strerror(-rc));
  if ((rc = ck_publish_rename(tmp, dst, o->keep_foreign)) != 0)
    return ck_err_set(err, rc, "%s: %s", dst, ck_publish_error(rc));
  dir = ck_dirname(dst);
  rc = dir ? ck_fsync_dir(dir) : -ENOMEM;
  free(dir);
  return rc ? ck_err_set(err, rc, "%s: fsync of the directory failed", dst) : 0;
}

int ck_rule_shard(void *ctx, const uint8_t *key, size_t klen)
{
  const struct ck_convert_opts *o = ctx;
  char name[4096];

  snprintf(name, sizeof(name), "%.*s", (int)klen, key);
  for (size_t i = 0; i < o->nrules; i++)
    if (ck_glob_match(o->rules[i].pattern, name))
      return o->rules[i].shard;
  return 0;
}
