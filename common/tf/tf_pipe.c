/* TensorFlow bundles in the pipeline: a source over ck_bundle (partitioned variables
 * assembled, every checksum verified) and a sink over ck_bundle_writer. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle.h"
#include "dtype.h"
#include "fileio.h"
#include "pipeline.h"

/* ---- source ---- */

struct saver_source {
  struct ck_source base;
  struct ck_bundle *b;
  const struct ck_entry **t; /* whole tensors in data order (a partitioned variable at its first slice) */
};

static void src_info(struct ck_source *s, size_t i, struct ck_tinfo *out)
{
  const struct ck_entry *e = ((struct saver_source *)s)->t[i];

  out->name = (const char *)e->key;
  out->nlen = e->key_len;
  out->dtype = e->dtype;
  out->rank = e->rank;
  out->dims = e->dims;
  out->nelem = e->nelem;
  out->nbytes = ck_entry_tensor_bytes(e);
  out->has_crc = e->nslices == 0;
  out->crc32c = e->crc32c;
}

static int src_stream(struct ck_source *s, size_t i, void *buf, size_t bufsize,
                      int (*fn)(void *ctx, const void *data, size_t len), void *ctx, struct ck_err *err)
{
  struct saver_source *ss = (struct saver_source *)s;

  return ck_bundle_stream_tensor(ss->b, ss->t[i], buf, bufsize, fn, ctx, err);
}

static void src_close(struct ck_source *s)
{
  struct saver_source *ss = (struct saver_source *)s;

  ck_bundle_close(ss->b);
  free(ss->t);
  ck_source_free_common(s);
  free(ss);
}

static const struct ck_source_ops saver_source_ops = { src_info, src_stream, src_close };

/* An open-addressing set of partitioned variables already listed (pointer keys). */
static int seen_add(const struct ck_entry **set, size_t cap, const struct ck_entry *e)
{
  size_t h = ((uintptr_t)e >> 4) * 0x9E3779B97F4A7C15ull & (cap - 1);

  while (set[h] != NULL) {
    if (set[h] == e)
      return 0;
    h = (h + 1) & (cap - 1);
  }
  set[h] = e;
  return 1;
}

/* Whole tensors in data-file order; a partitioned variable once, at its first slice. */
static int list_tensors(struct saver_source *ss, struct ck_err *err)
{
  size_t n = ck_bundle_data_count(ss->b), k = 0, cap = 16;
  const struct ck_entry **seen;

  while (cap < 2 * n)
    cap *= 2;
  if ((ss->t = malloc((n ? n : 1) * sizeof(*ss->t))) == NULL || (seen = calloc(cap, sizeof(*seen))) == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    const struct ck_entry *e = ck_bundle_data_entry(ss->b, i);
    if (e->is_slice && !seen_add(seen, cap, e = e->full))
      continue;
    ss->t[k++] = e;
  }
  free(seen);
  ss->base.count = k;
  return 0;
}

int ck_saver_source_open(const char *path, size_t budget, struct ck_source **out, struct ck_err *err)
{
  struct saver_source *ss = calloc(1, sizeof(*ss));
  int rc;

  (void)budget;
  *out = NULL;
  if (ss == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  ss->base.ops = &saver_source_ops;
  ss->base.format = CK_FMT_SAVER;
  if ((rc = ck_bundle_open(path, 0, &ss->b, err)) != 0)
    goto fail;
  ck_bundle_version(ss->b, &ss->base.tf_producer, &ss->base.tf_min_consumer);
  ck_bundle_set_read_ahead(ss->b, 1); /* the converter takes tensors one at a time, as the .h5 source does */
  if ((ss->base.path = strdup(ck_bundle_prefix(ss->b))) == NULL ||
      (ss->base.source_name = ck_basename(ck_bundle_prefix(ss->b))) == NULL) {
    rc = ck_err_set(err, -ENOMEM, "out of memory");
    goto fail;
  }
  if ((rc = ck_srcid_bundle(&ss->base.id, ss->b, err)) != 0 || (rc = list_tensors(ss, err)) != 0)
    goto fail;
  ck_srcid_format(&ss->base.id, ss->base.source_id, sizeof(ss->base.source_id));
  *out = &ss->base;
  return 0;
fail:
  src_close(&ss->base);
  return rc;
}

/* ---- sink ---- */

struct saver_sink {
  struct ck_sink base;
  struct ck_bundle_writer *w;
  struct ck_bundle_writer_opts wo;
};

static int snk_accepts(int dtype)
{
  return ck_dtype_storable(dtype);
}

static int snk_begin(struct ck_sink *k, const struct ck_source *src, const size_t *sel, size_t n, struct ck_err *err)
{
  struct saver_sink *s = (struct saver_sink *)k;

  (void)src;
  (void)sel;
  s->wo.expected_entries = n;
  return ck_bundle_writer_open(k->path, &s->wo, &s->w, err);
}

static int snk_tensor_begin(struct ck_sink *k, const struct ck_tinfo *t, struct ck_err *err)
{
  struct saver_sink *s = (struct saver_sink *)k;

  return ck_bundle_writer_begin(s->w, t->name, t->nlen, t->dtype, t->rank, t->dims, err);
}

static int snk_append(struct ck_sink *k, const void *data, size_t len, struct ck_err *err)
{
  return ck_bundle_writer_append(((struct saver_sink *)k)->w, data, len, err);
}

static int snk_tensor_end(struct ck_sink *k, struct ck_err *err)
{
  return ck_bundle_writer_end(((struct saver_sink *)k)->w, err);
}

static void snk_free(struct saver_sink *s)
{
  free(s->base.path);
  free((char *)s->wo.mark_name);
  free((char *)s->wo.mark_id);
  free(s);
}

static int snk_finish(struct ck_sink *k, struct ck_err *err)
{
  struct saver_sink *s = (struct saver_sink *)k;
  int rc = ck_bundle_writer_finish(s->w, err);

  snk_free(s);
  return rc;
}

static void snk_abort(struct ck_sink *k)
{
  struct saver_sink *s = (struct saver_sink *)k;

  if (s == NULL)
    return;
  ck_bundle_writer_abort(s->w);
  snk_free(s);
}

static const struct ck_sink_ops saver_sink_ops = {
  snk_accepts, snk_begin, snk_tensor_begin, snk_append, snk_tensor_end, snk_finish, snk_abort,
};

int ck_saver_sink_open(const char *dst, const struct ck_sink_opts *o, struct ck_sink **out, struct ck_err *err)
{
  struct saver_sink *s = calloc(1, sizeof(*s));
  const struct ck_convert_opts *c = o->conv;

  *out = NULL;
  if (s == NULL || (s->base.path = strdup(dst)) == NULL ||
      (o->mark_name && (s->wo.mark_name = strdup(o->mark_name)) == NULL) ||
      (o->mark_id && (s->wo.mark_id = strdup(o->mark_id)) == NULL)) {
    if (s)
      snk_free(s);
    return ck_err_set(err, -ENOMEM, "out of memory");
  }
  s->base.ops = &saver_sink_ops;
  s->base.format = CK_FMT_SAVER;
  s->wo.max_shard_bytes = c->max_shard_bytes;
  s->wo.keep_foreign = c->keep_foreign;
  s->wo.keep_cached = c->verify;
  s->wo.mode = c->output_mode;
  s->wo.chgrp = c->output_chgrp;
  s->wo.gid = c->output_gid;
  s->wo.buffer_size = 1u << 20; /* large appends bypass it */
  if (c->nrules) {
    s->wo.shard_of = ck_rule_shard;
    s->wo.shard_ctx = (void *)c; /* the converter's options outlive the sink */
  }
  *out = &s->base;
  return 0;
}
