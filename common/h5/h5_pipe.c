/* HDF5 checkpoints in the pipeline: a source over ck_h5r (tf_crc32c verified where the
 * file has it; Cerebras 0.5 values and __spec__ passed on) and a sink over ck_h5w that
 * writes torch trees in Cerebras' storage format 0.5 (dotted keys verbatim,
 * "<key>.__metadata__" JSON, __spec__, __SUCCESS__ last). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blocks.h"
#include "crc32c.h"
#include "dtype.h"
#include "fileio.h"
#include "h5.h"
#include "json.h"
#include "pipeline.h"
#include "tensor_crc.h"
#include "torch_dtype.h"

/* ---- source ---- */

struct h5_source {
  struct ck_source base;
  struct ck_h5r *r;
};

static void src_info(struct ck_source *s, size_t i, struct ck_tinfo *out)
{
  const struct ck_h5_tensor *t = ck_h5r_tensor(((struct h5_source *)s)->r, i);

  out->name = (const char *)t->name;
  out->nlen = t->nlen;
  out->dtype = t->dtype;
  out->rank = t->rank;
  out->dims = t->dims;
  out->nelem = t->nelem;
  out->nbytes = t->nelem * ck_dtype_size(t->dtype); /* 0 for strings: known once streamed */
  out->has_crc = t->has_crc;
  out->crc32c = t->tf_crc32c;
}

struct crc_pass {
  int (*fn)(void *ctx, const void *data, size_t len);
  void *ctx;
  struct ck_tcrc crc;
  int bad;
};

static int crc_pass(void *ctx, const void *data, size_t len)
{
  struct crc_pass *p = ctx;

  if (ck_tcrc_update(&p->crc, data, len) != 0)
    p->bad = 1;
  return p->fn(p->ctx, data, len);
}

static int src_stream(struct ck_source *s, size_t i, void *buf, size_t bufsize,
                      int (*fn)(void *ctx, const void *data, size_t len), void *ctx, struct ck_err *err)
{
  struct ck_h5r *r = ((struct h5_source *)s)->r;
  const struct ck_h5_tensor *t = ck_h5r_tensor(r, i);
  struct crc_pass p = { .fn = fn, .ctx = ctx };
  uint32_t crc;
  int rc;

  if (!t->has_crc)
    return ck_h5r_stream_tf(r, t, buf, bufsize, fn, ctx, err);
  ck_tcrc_init(&p.crc, t->dtype, t->nelem);
  if ((rc = ck_h5r_stream_tf(r, t, buf, bufsize, crc_pass, &p, err)) != 0)
    return rc;
  if (p.bad || ck_tcrc_final(&p.crc, &crc) != 0)
    return ck_err_set(err, CK_EFORMAT, "%s: %s: %s", ck_h5r_path(r), t->path, p.crc.why);
  if (ck_crc32c_mask(crc) != t->tf_crc32c)
    return ck_err_set(err, CK_ECHECKSUM, "%s: %s: data does not match its tf_crc32c attribute %08x", ck_h5r_path(r),
                      t->path, t->tf_crc32c);
  return 0;
}

static void src_close(struct ck_source *s)
{
  struct h5_source *hs = (struct h5_source *)s;

  ck_h5r_close(hs->r);
  ck_source_free_common(s);
  free(hs);
}

static const struct ck_source_ops h5_source_ops = { src_info, src_stream, src_close };

/* A value as ckptd writes it into "<key>.__metadata__": {"value": X}. */
static int add_value(struct ck_source *s, const char *key, const char *text)
{
  struct ck_json j;
  size_t v, k;
  int64_t i;
  double d;
  char *str;
  size_t len;
  int rc = 0;

  if (ck_json_parse(text, strlen(text), 4096, 8, &j, NULL) != 0)
    return ck_source_skip(s, key, "value only in metadata, not JSON");
  v = ck_json_get(&j, 0, "value");
  switch (v ? j.t[v].type : 0) {
  case CK_J_NULL: rc = ck_source_add_value(s, key, CK_VAL_NONE, 0, 0, NULL, 0); break;
  case CK_J_TRUE:
  case CK_J_FALSE: rc = ck_source_add_value(s, key, CK_VAL_BOOL, j.t[v].type == CK_J_TRUE, 0, NULL, 0); break;
  case CK_J_NUMBER:
    if (ck_json_i64(&j, v, &i) == 0)
      rc = ck_source_add_value(s, key, CK_VAL_INT, i, 0, NULL, 0);
    else if (ck_json_double(&j, v, &d) == 0)
      rc = ck_source_add_value(s, key, CK_VAL_FLOAT, 0, d, NULL, 0);
    else
      rc = ck_source_skip(s, key, "value only in metadata, a number out of range");
    break;
  case CK_J_STRING:
    if ((k = ck_json_get(&j, 0, "kind")) != 0 && ck_json_streq(&j, k, "float")) {
      if (ck_json_streq(&j, v, "NaN") || ck_json_streq(&j, v, "Infinity") || ck_json_streq(&j, v, "-Infinity"))
        rc = ck_source_add_value(s, key, CK_VAL_FLOAT, 0,
                                 ck_json_streq(&j, v, "NaN") ? NAN : ck_json_streq(&j, v, "Infinity") ? INFINITY : -INFINITY,
                                 NULL, 0);
      else
        rc = ck_source_skip(s, key, "value only in metadata, a float ckptd does not read");
      break;
    }
    if ((rc = ck_json_str(&j, v, 0, &str, &len)) == 0) {
      rc = ck_source_add_value(s, key, CK_VAL_STR, 0, 0, str, len);
      free(str);
    } else if (rc != -ENOMEM) {
      rc = ck_source_skip(s, key, "value only in metadata, a string with NUL");
    }
    break;
  default: rc = ck_source_skip(s, key, "value only in metadata, in a form ckptd does not read"); break;
  }
  ck_json_free(&j);
  return rc;
}

static int collect(struct h5_source *hs, struct ck_err *err)
{
  struct ck_h5r *r = hs->r;
  static const char vsuffix[] = "(value only in metadata)";
  int rc = 0;

  for (size_t i = 0; i < ck_h5r_value_count(r) && rc == 0; i++) {
    const char *key, *json;
    ck_h5r_value(r, i, &key, &json);
    rc = add_value(&hs->base, key, json);
  }
  for (size_t i = 0; i < ck_h5r_skipped_count(r) && rc == 0; i++) {
    const char *sk = ck_h5r_skipped(r, i);
    size_t n = strlen(sk);
    if (n >= sizeof(vsuffix) - 1 && strcmp(sk + n - (sizeof(vsuffix) - 1), vsuffix) == 0)
      continue; /* a value, passed on above */
    rc = ck_source_skip(&hs->base, sk, NULL);
  }
  if (rc == 0 && ck_h5r_spec(r) && (hs->base.spec = strdup(ck_h5r_spec(r))) == NULL)
    rc = -ENOMEM;
  if (rc != 0)
    return ck_err_set(err, rc, "out of memory");
  if (ck_h5r_spec_too_long(r)) /* refused rather than flattened without a word */
    return ck_err_set(err, CK_ELIMIT, "%s: __spec__ is longer than %u MiB: the tree cannot be restored",
                      ck_h5r_path(r), CK_H5_SPEC_MAX >> 20);
  return 0;
}

int ck_h5_source_open(const char *path, size_t budget, struct ck_source **out, struct ck_err *err)
{
  struct h5_source *hs = calloc(1, sizeof(*hs));
  const char *files[] = { path, NULL };
  int rc;

  (void)budget;
  *out = NULL;
  if (hs == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  hs->base.ops = &h5_source_ops;
  hs->base.format = CK_FMT_H5;
  if ((rc = ck_h5r_open(path, &hs->r, err)) != 0)
    goto fail;
  hs->base.count = ck_h5r_count(hs->r);
  if ((hs->base.path = strdup(path)) == NULL || (hs->base.source_name = ck_basename(path)) == NULL) {
    rc = ck_err_set(err, -ENOMEM, "out of memory");
    goto fail;
  }
  if ((rc = ck_source_set_id(&hs->base, files, err)) != 0 || (rc = collect(hs, err)) != 0)
    goto fail;
  *out = &hs->base;
  return 0;
fail:
  src_close(&hs->base);
  return rc;
}

/* ---- sink ---- */

struct h5_sink {
  struct ck_sink base;
  struct ck_convert_opts conv;
  char *tmp;
  char *mark_name, *mark_id;
  struct ck_h5w *w;
  int raw_fd;
  /* the tensor being written */
  struct ck_h5w_ds *ds;
  const struct ck_tinfo *t;
  uint64_t nbytes;
  uint32_t crc;
  struct ck_h5w_stream ws;
  uint8_t *stage;
  size_t stage_cap;
};

static int snk_accepts(int dtype)
{
  return ck_dtype_size(dtype) > 0 && ck_dtype_storable(dtype); /* strings take the TF -> HDF5 path */
}

/* "<key>.__metadata__" of a tensor: its torch dtype and shape, as Cerebras 0.5 records them. */
static int tensor_meta(struct h5_sink *s, const struct ck_tinfo *t, struct ck_sbuf *b, struct ck_err *err)
{
  const struct ck_torch_dtype *td = ck_torch_dtype_by_tf(t->dtype);
  char *name;
  int rc;

  if (td == NULL)
    return 0;
  b->len = 0;
  ck_sbuf_addf(b, "{\"dtypes\": [\"torch.%s\"], \"shapes\": [[", td->dtype);
  for (int d = 0; d < t->rank; d++)
    ck_sbuf_addf(b, d ? ", %lld" : "%lld", (long long)t->dims[d]);
  ck_sbuf_add(b, "]]}", 3);
  if (b->oom || (name = ck_asprintf("%.*s.__metadata__", (int)t->nlen, t->name)) == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  rc = ck_h5w_root_attr(s->w, name, b->p, err);
  free(name);
  return rc;
}

static int value_meta(struct h5_sink *s, const struct ck_value *v, struct ck_sbuf *b, struct ck_err *err)
{
  char *name;
  int rc;

  b->len = 0;
  ck_sbuf_add(b, "{\"value\": ", 10);
  switch (v->kind) {
  case CK_VAL_NONE: ck_sbuf_add(b, "null", 4); break;
  case CK_VAL_BOOL: ck_sbuf_add(b, v->i ? "true" : "false", v->i ? 4 : 5); break;
  case CK_VAL_INT: ck_sbuf_addf(b, "%lld", (long long)v->i); break;
  case CK_VAL_FLOAT:
    if (v->f == v->f && v->f - v->f == 0) /* finite: a JSON number */
      ck_sbuf_json_double(b, v->f);
    else /* JSON has no NaN or infinity: a string, with the kind saying it is a float */
      ck_sbuf_addf(b, "\"%s\", \"kind\": \"float\"", v->f != v->f ? "NaN" : v->f > 0 ? "Infinity" : "-Infinity");
    break;
  default: ck_sbuf_json_str(b, v->s, v->slen); break;
  }
  ck_sbuf_add(b, "}", 1);
  if (b->oom || (name = ck_asprintf("%s.__metadata__", v->name)) == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  rc = ck_h5w_root_attr(s->w, name, b->p, err);
  free(name);
  return rc;
}

/* Cerebras 0.5 root attributes for a torch tree: metadata of every leaf, and __spec__. */
static int tree_attrs(struct h5_sink *s, const struct ck_source *src, const size_t *sel, size_t n,
                      struct ck_err *err)
{
  struct ck_sbuf b = { 0 };
  int rc = 0;

  for (size_t j = 0; j < n && rc == 0; j++) {
    struct ck_tinfo t;
    src->ops->info((struct ck_source *)src, sel[j], &t);
    rc = tensor_meta(s, &t, &b, err);
  }
  for (size_t i = 0; i < src->nvalues && rc == 0; i++)
    rc = value_meta(s, &src->values[i], &b, err);
  if (rc == 0 && src->spec)
    rc = ck_h5w_root_attr(s->w, "__spec__", src->spec, err);
  free(b.p);
  return rc;
}

static int snk_begin(struct ck_sink *k, const struct ck_source *src, const size_t *sel, size_t n, struct ck_err *err)
{
  struct h5_sink *s = (struct h5_sink *)k;
  int tree = src->spec != NULL || src->format == CK_FMT_TORCH || src->format == CK_FMT_SAFETENSORS;
  struct ck_h5_write_opts wo = {
    .layout = tree ? CK_H5_NESTED : s->conv.layout, .compression = s->conv.compression,
    .gzip_level = s->conv.gzip_level, .source_name = s->mark_name, .source_id = s->mark_id, .cerebras05 = tree,
    .threads = s->conv.threads > 0 ? s->conv.threads : 2, .budget = s->conv.buffer_size,
    .chunk_bytes = s->conv.chunk_bytes,
  };
  int rc;

  if ((rc = ck_h5w_create(s->tmp, &wo, &s->w, err)) != 0)
    return rc;
  if ((s->raw_fd = open(s->tmp, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
    return ck_err_set(err, -errno, "%s: %s", s->tmp, strerror(errno));
  return tree ? tree_attrs(s, src, sel, n, err) : 0;
}

static int snk_tensor_begin(struct ck_sink *k, const struct ck_tinfo *t, struct ck_err *err)
{
  struct h5_sink *s = (struct h5_sink *)k;
  int rc = ck_h5w_dataset(s->w, (const uint8_t *)t->name, t->nlen, t->dtype, t->rank, t->dims, 0, &s->ds, err);

  if (rc != 0)
    return rc;
  s->t = t;
  s->nbytes = t->nelem * ck_dtype_size(t->dtype);
  s->crc = 0;
  ck_h5w_stream_init(&s->ws, s->ds, s->raw_fd, ck_h5w_ds_raw_offset(s->ds), t->dtype, t->rank, t->dims, s->stage,
                     s->stage_cap, s->tmp);
  s->ws.wb.keep = s->conv.verify;
  return 0;
}

static int snk_append(struct ck_sink *k, const void *data, size_t len, struct ck_err *err)
{
  struct h5_sink *s = (struct h5_sink *)k;

  if (len > s->nbytes - s->ws.pos)
    return ck_err_set(err, CK_EFORMAT, "%s: %s: more bytes than its shape holds", s->tmp, s->t->name);
  s->crc = ck_crc32c_extend(s->crc, data, len);
  return ck_h5w_stream_write(&s->ws, data, len, err);
}

static int snk_tensor_end(struct ck_sink *k, struct ck_err *err)
{
  struct h5_sink *s = (struct h5_sink *)k;
  int rc = 0;

  if (s->ws.pos != s->nbytes)
    rc = ck_err_set(err, CK_EFORMAT, "%s: %s: %llu bytes of %llu", s->tmp, s->t->name, (unsigned long long)s->ws.pos,
                    (unsigned long long)s->nbytes);
  if (rc == 0)
    rc = ck_h5w_ds_set_crc(s->ds, ck_crc32c_mask(s->crc), err);
  ck_h5w_ds_close(s->ds);
  s->ds = NULL;
  return rc;
}

static void snk_free(struct h5_sink *s)
{
  if (s->ds)
    ck_h5w_ds_close(s->ds);
  ck_h5w_abort(s->w);
  if (s->raw_fd >= 0)
    close(s->raw_fd);
  free(s->stage);
  free(s->tmp);
  free(s->mark_name);
  free(s->mark_id);
  free(s->base.path);
  free(s);
}

static int snk_finish(struct ck_sink *k, struct ck_err *err)
{
  struct h5_sink *s = (struct h5_sink *)k;
  int rc = 0;

  if ((rc = ck_fsync_drop(s->raw_fd, s->conv.verify)) != 0)
    rc = ck_err_set(err, rc, "%s: fsync: %s", s->tmp, strerror(-rc));
  if (rc == 0) {
    rc = ck_h5w_finish(s->w, err);
    s->w = NULL;
  }
  if (rc == 0)
    rc = ck_publish_file(s->tmp, s->base.path, s->mark_name, s->mark_id, &s->conv, err);
  if (rc != 0)
    unlink(s->tmp);
  snk_free(s);
  return rc;
}

static void snk_abort(struct ck_sink *k)
{
  struct h5_sink *s = (struct h5_sink *)k;

  if (s == NULL)
    return;
  if (s->w || s->raw_fd >= 0)
    unlink(s->tmp);
  snk_free(s);
}

static const struct ck_sink_ops h5_sink_ops = {
  snk_accepts, snk_begin, snk_tensor_begin, snk_append, snk_tensor_end, snk_finish, snk_abort,
};

int ck_h5_sink_open(const char *dst, const struct ck_sink_opts *o, struct ck_sink **out, struct ck_err *err)
{
  struct h5_sink *s = calloc(1, sizeof(*s));
  size_t bufsize = o->conv->buffer_size ? o->conv->buffer_size : CK_CONVERT_DEFAULT_BUFFER;

  *out = NULL;
  if (s == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  s->raw_fd = -1;
  s->base.ops = &h5_sink_ops;
  s->base.format = CK_FMT_H5;
  s->conv = *o->conv;
  /* chunked datasets are written a block at a time: a quarter of the budget */
  s->stage_cap = bufsize / 4 < (16u << 10) ? (16u << 10) : bufsize / 4;
  if ((s->base.path = strdup(dst)) == NULL || (s->tmp = ck_temp_name(dst)) == NULL ||
      (s->stage = malloc(s->stage_cap)) == NULL || (o->mark_name && (s->mark_name = strdup(o->mark_name)) == NULL) ||
      (o->mark_id && (s->mark_id = strdup(o->mark_id)) == NULL)) {
    snk_free(s);
    return ck_err_set(err, -ENOMEM, "out of memory");
  }
  *out = &s->base;
  return 0;
}
