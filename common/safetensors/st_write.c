/* The safetensors sink. begin() knows every tensor, so it writes the whole header at
 * once: tensors in the order they will come, offsets back to back from 0, and
 * __metadata__; the header is padded with spaces to a multiple of 8 as the reference
 * writer does, so the data starts 8-byte aligned. Data follows sequentially through a
 * buffer into a temporary beside the output; finish() fsyncs, marks and publishes it.
 *
 * Values (a step, a learning rate) go into __metadata__, whose values must be strings:
 *   "<name>": the value as text: strings verbatim, ints in decimal, floats as Python's
 *             repr (NaN, Infinity, -Infinity), bools true / false, None null;
 *   "__ckptd_values__": a JSON object (as a string) of name -> "str" | "int" | "float" |
 *             "bool" | "none" for every value written, so our reader restores the types;
 *   "__spec__": the source's tree spec, when it has one;
 *   "format": "pt", the key the reference's torch helpers look for (unless a value
 *             has that name: then the value is written instead). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dtype.h"
#include "fileio.h"
#include "json.h"
#include "convert_internal.h"
#include "pipeline.h"
#include "st.h"

#define OBUF_BYTES (4u << 20)

struct st_sink {
  struct ck_sink base;
  const struct ck_convert_opts *conv;
  char *mark_name, *mark_id;
  char *tmp;
  int fd;
  struct ck_obuf ob;
  uint64_t *sizes; /* bytes of each tensor, in begin's order */
  size_t n, next;  /* tensors; the next to come */
  uint64_t got;    /* bytes of the current tensor so far */
  int in_tensor, failed;
};

static int st_accepts(int dtype)
{
  return ck_st_dtype_name(dtype) != NULL;
}

static void sink_free(struct st_sink *k)
{
  if (k->fd >= 0)
    close(k->fd);
  ck_obuf_free(&k->ob);
  free(k->sizes);
  free(k->tmp);
  free(k->mark_name);
  free(k->mark_id);
  free(k->base.path);
  free(k);
}

static void st_abort(struct ck_sink *base)
{
  struct st_sink *k = (struct st_sink *)base;

  if (k == NULL)
    return;
  if (k->tmp)
    unlink(k->tmp);
  sink_free(k);
}

/* ---- the header ---- */

static const char *value_kind(int kind)
{
  static const char *const kinds[] = { "none", "bool", "int", "float", "str" };

  return kind >= CK_VAL_NONE && kind <= CK_VAL_STR ? kinds[kind] : NULL;
}

static void value_text(struct ck_sbuf *b, const struct ck_value *v)
{
  struct ck_sbuf t = { 0 };

  switch (v->kind) {
  case CK_VAL_NONE: ck_sbuf_add(&t, "null", 4); break;
  case CK_VAL_BOOL: ck_sbuf_add(&t, v->i ? "true" : "false", v->i ? 4 : 5); break;
  case CK_VAL_INT: ck_sbuf_addf(&t, "%lld", (long long)v->i); break;
  case CK_VAL_FLOAT: ck_sbuf_json_double(&t, v->f); break;
  default: ck_sbuf_add(&t, v->s ? v->s : "", v->s ? v->slen : 0); break;
  }
  if (t.oom)
    b->oom = 1;
  ck_sbuf_json_str(b, t.p ? t.p : "", t.len);
  free(t.p);
}

/* The "format" key unless a value takes that name. */
static int has_value(const struct ck_source *src, const char *name)
{
  for (size_t i = 0; i < src->nvalues; i++)
    if (strcmp(src->values[i].name, name) == 0)
      return 1;
  return 0;
}

/* __metadata__ from the source's values and spec. */
static int add_metadata(struct ck_sbuf *b, const struct ck_source *src, const char *dst, struct ck_err *err)
{
  struct ck_sbuf types = { 0 };
  int sep = !has_value(src, "format");

  ck_sbuf_add(b, "\"__metadata__\":{", 16);
  if (sep)
    ck_sbuf_add(b, "\"format\":\"pt\"", 13);
  ck_sbuf_add(&types, "{", 1);
  for (size_t i = 0; i < src->nvalues; i++) {
    const struct ck_value *v = &src->values[i];
    if (strcmp(v->name, CK_ST_SPEC_KEY) == 0 || strcmp(v->name, CK_ST_VALUES_KEY) == 0 || value_kind(v->kind) == NULL) {
      free(types.p);
      return ck_err_set(err, CK_EUNSUP, "%s: value \"%.200s\" cannot be stored in __metadata__", dst, v->name);
    }
    ck_sbuf_add(b, ",", sep++ ? 1 : 0);
    ck_sbuf_json_str(b, v->name, strlen(v->name));
    ck_sbuf_add(b, ":", 1);
    value_text(b, v);
    ck_sbuf_add(&types, ",", i ? 1 : 0);
    ck_sbuf_json_str(&types, v->name, strlen(v->name));
    ck_sbuf_addf(&types, ":\"%s\"", value_kind(v->kind));
  }
  ck_sbuf_add(&types, "}", 1);
  ck_sbuf_add(b, ",", sep ? 1 : 0);
  ck_sbuf_add(b, "\"" CK_ST_VALUES_KEY "\":", sizeof(CK_ST_VALUES_KEY) + 2);
  ck_sbuf_json_str(b, types.p ? types.p : "", types.len);
  b->oom |= types.oom;
  free(types.p);
  if (src->spec) {
    ck_sbuf_add(b, ",\"" CK_ST_SPEC_KEY "\":", sizeof(CK_ST_SPEC_KEY) + 3);
    ck_sbuf_json_str(b, src->spec, strlen(src->spec));
  }
  ck_sbuf_add(b, "}", 1);
  return 0;
}

static int add_tensor(struct ck_sbuf *b, const struct ck_tinfo *t, uint64_t begin, uint64_t size, const char *dst,
                      struct ck_err *err)
{
  uint64_t esize = ck_dtype_size(t->dtype);

  if (!st_accepts(t->dtype))
    return ck_err_set(err, CK_EINVAL, "%s: tensor \"%.200s\": safetensors has no dtype %s", dst, t->name,
                      ck_dtype_name(t->dtype) ? ck_dtype_name(t->dtype) : "?");
  if (memchr(t->name, 0, t->nlen) != NULL || strcmp(t->name, "__metadata__") == 0)
    return ck_err_set(err, CK_EINVAL, "%s: tensor \"%.200s\": the name cannot be a safetensors tensor name", dst,
                      t->name);
  if (t->nelem > UINT64_MAX / esize || t->nelem * esize != size)
    return ck_err_set(err, CK_EINVAL, "%s: tensor \"%.200s\": %llu bytes, its dtype and shape need another size", dst,
                      t->name, (unsigned long long)size);
  ck_sbuf_json_str(b, t->name, t->nlen);
  ck_sbuf_addf(b, ":{\"dtype\":\"%s\",\"shape\":[", ck_st_dtype_name(t->dtype));
  for (int d = 0; d < t->rank; d++)
    ck_sbuf_addf(b, "%s%lld", d ? "," : "", (long long)t->dims[d]);
  ck_sbuf_addf(b, "],\"data_offsets\":[%llu,%llu]},", (unsigned long long)begin, (unsigned long long)(begin + size));
  return 0;
}

static int cmp_str(const void *pa, const void *pb)
{
  return strcmp(*(const char *const *)pa, *(const char *const *)pb);
}

/* Two tensors of one name would make a header no reader takes. */
static int check_unique(const struct ck_source *src, const size_t *sel, size_t n, const char *dst, struct ck_err *err)
{
  const char **names = malloc((n + 1) * sizeof(*names));
  int rc = 0;

  if (names == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  for (size_t j = 0; j < n; j++) {
    struct ck_tinfo t;
    src->ops->info((struct ck_source *)src, sel[j], &t);
    names[j] = t.name;
  }
  qsort(names, n, sizeof(*names), cmp_str);
  for (size_t j = 1; j < n && rc == 0; j++)
    if (strcmp(names[j - 1], names[j]) == 0)
      rc = ck_err_set(err, CK_EINVAL, "%s: two tensors are named \"%.200s\"", dst, names[j]);
  free(names);
  return rc;
}

static int build_header(struct st_sink *k, const struct ck_source *src, const size_t *sel, size_t n,
                        struct ck_sbuf *b, struct ck_err *err)
{
  uint64_t at = 0;
  int rc;

  ck_sbuf_add(b, "{", 1);
  for (size_t j = 0; j < n; j++) {
    struct ck_tinfo t;
    src->ops->info((struct ck_source *)src, sel[j], &t);
    if ((rc = add_tensor(b, &t, at, t.nbytes, k->base.path, err)) != 0)
      return rc;
    k->sizes[j] = t.nbytes;
    at += t.nbytes;
  }
  if ((rc = add_metadata(b, src, k->base.path, err)) != 0)
    return rc;
  ck_sbuf_add(b, "}", 1);
  while (!b->oom && (b->len % 8) != 0)
    ck_sbuf_add(b, " ", 1);
  if (b->oom)
    return ck_err_set(err, -ENOMEM, "out of memory");
  if (b->len > CK_ST_MAX_HEADER)
    return ck_err_set(err, CK_ELIMIT, "%s: the header would take %zu bytes, beyond safetensors' 100,000,000", k->base.path,
                      b->len);
  return 0;
}

static int st_begin(struct ck_sink *base, const struct ck_source *src, const size_t *sel, size_t n, struct ck_err *err)
{
  struct st_sink *k = (struct st_sink *)base;
  struct ck_sbuf b = { 0 };
  uint8_t pre[8];
  int rc;

  if (k->sizes || (k->sizes = calloc(n + 1, sizeof(*k->sizes))) == NULL) {
    rc = ck_err_set(err, k->sizes ? CK_EINVAL : -ENOMEM, k->sizes ? "begin called twice" : "out of memory");
    goto out;
  }
  k->n = n;
  if ((rc = check_unique(src, sel, n, base->path, err)) != 0 || (rc = build_header(k, src, sel, n, &b, err)) != 0)
    goto out;
  for (int i = 0; i < 8; i++)
    pre[i] = (uint8_t)((uint64_t)b.len >> (8 * i));
  if ((rc = ck_obuf_append(&k->ob, pre, 8)) != 0 || (rc = ck_obuf_append(&k->ob, b.p, b.len)) != 0)
    ck_err_set(err, rc, "%s: write: %s", k->tmp, strerror(-rc));
out:
  if (rc != 0)
    k->failed = 1;
  free(b.p);
  return rc;
}

/* ---- tensors ---- */

static int st_tensor_begin(struct ck_sink *base, const struct ck_tinfo *t, struct ck_err *err)
{
  struct st_sink *k = (struct st_sink *)base;

  if (k->failed || k->in_tensor || k->next >= k->n)
    return ck_err_set(err, CK_EINVAL, "%s: tensor \"%.200s\" does not follow the tensors begin announced", base->path,
                      t->name);
  if (t->nbytes != k->sizes[k->next]) {
    k->failed = 1;
    return ck_err_set(err, CK_EINVAL, "%s: tensor \"%.200s\": %llu bytes, begin announced %llu", base->path, t->name,
                      (unsigned long long)t->nbytes, (unsigned long long)k->sizes[k->next]);
  }
  k->in_tensor = 1;
  k->got = 0;
  return 0;
}

static int st_append(struct ck_sink *base, const void *data, size_t len, struct ck_err *err)
{
  struct st_sink *k = (struct st_sink *)base;
  int rc;

  if (!k->in_tensor || k->failed || len > k->sizes[k->next] - k->got) {
    k->failed = 1;
    return ck_err_set(err, CK_EINVAL, "%s: tensor %zu: more bytes than its dtype and shape hold", base->path, k->next);
  }
  if ((rc = ck_obuf_append(&k->ob, data, len)) != 0) {
    k->failed = 1;
    return ck_err_set(err, rc, "%s: write: %s", k->tmp, strerror(-rc));
  }
  k->got += len;
  return 0;
}

static int st_tensor_end(struct ck_sink *base, struct ck_err *err)
{
  struct st_sink *k = (struct st_sink *)base;

  if (!k->in_tensor || k->failed || k->got != k->sizes[k->next]) {
    k->failed = 1;
    return ck_err_set(err, CK_EINVAL, "%s: tensor %zu: %llu bytes written, %llu expected", base->path, k->next,
                      (unsigned long long)k->got, (unsigned long long)(k->next < k->n ? k->sizes[k->next] : 0));
  }
  k->in_tensor = 0;
  k->next++;
  return 0;
}

/* ---- finish ---- */

static int flush_close(struct st_sink *k, struct ck_err *err)
{
  int rc;

  if ((rc = ck_obuf_flush(&k->ob)) != 0)
    return ck_err_set(err, rc, "%s: write: %s", k->tmp, strerror(-rc));
  if ((rc = ck_fsync_drop(k->fd, k->ob.wb.keep)) != 0) {
    return ck_err_set(err, rc, "%s: fsync: %s", k->tmp, strerror(-rc));
  }
  rc = close(k->fd) == 0 ? 0 : -errno;
  k->fd = -1;
  return rc == 0 ? 0 : ck_err_set(err, rc, "%s: close: %s", k->tmp, strerror(-rc));
}

static int publish(struct st_sink *k, struct ck_err *err)
{
  static const struct ck_convert_opts none = { 0 };
  int rc = ck_publish_file(k->tmp, k->base.path, k->mark_id ? k->mark_name : NULL, k->mark_id,
                           k->conv ? k->conv : &none, err);

  if (rc == 0 || access(k->tmp, F_OK) != 0) {
    free(k->tmp);
    k->tmp = NULL; /* published: nothing to remove any more */
  }
  return rc;
}

static int st_finish(struct ck_sink *base, struct ck_err *err)
{
  struct st_sink *k = (struct st_sink *)base;
  int rc;

  if (k->failed || k->in_tensor || k->sizes == NULL || k->next != k->n)
    rc = ck_err_set(err, CK_EINVAL, "%s: finish before every tensor was written", base->path);
  else if ((rc = flush_close(k, err)) == 0)
    rc = publish(k, err);
  if (rc != 0 && k->tmp == NULL) /* published, then the directory's fsync failed: the output stays */
    sink_free(k);
  else if (rc != 0)
    st_abort(base);
  else
    sink_free(k);
  return rc;
}

static const struct ck_sink_ops st_sink_ops = {
  st_accepts, st_begin, st_tensor_begin, st_append, st_tensor_end, st_finish, st_abort,
};

/* ---- open ---- */

static int dup_opts(struct st_sink *k, const struct ck_sink_opts *o)
{
  k->conv = o ? o->conv : NULL;
  if (o && o->mark_name && (k->mark_name = strdup(o->mark_name)) == NULL)
    return -ENOMEM;
  if (o && o->mark_id && (k->mark_id = strdup(o->mark_id)) == NULL)
    return -ENOMEM;
  return 0;
}

int ck_st_sink_open(const char *dst, const struct ck_sink_opts *o, struct ck_sink **out, struct ck_err *err)
{
  struct st_sink *k = calloc(1, sizeof(*k));
  int rc = -ENOMEM;

  *out = NULL;
  if (k == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  k->fd = -1;
  k->base.ops = &st_sink_ops;
  k->base.format = CK_FMT_SAFETENSORS;
  if ((k->base.path = strdup(dst)) == NULL || dup_opts(k, o) != 0 || (k->tmp = ck_temp_name(dst)) == NULL ||
      ck_obuf_init(&k->ob, -1, OBUF_BYTES) != 0) {
    ck_err_set(err, rc, "out of memory");
    goto out;
  }
  if ((k->fd = ck_create_excl(k->tmp)) < 0) {
    rc = ck_err_set(err, k->fd, "%s: cannot create: %s", k->tmp, strerror(-k->fd));
    free(k->tmp);
    k->tmp = NULL; /* not ours to remove */
    goto out;
  }
  k->ob.fd = k->fd;
  k->ob.wb.keep = k->conv && k->conv->verify;
  *out = &k->base;
  rc = 0;
out:
  if (rc != 0)
    st_abort(&k->base);
  return rc;
}
