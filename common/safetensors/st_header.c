/* safetensors header: parse the JSON with the bounded tokenizer and validate it as the
 * reference implementation does (safetensors/src/tensor.rs, Metadata::validate): known
 * dtypes, non-negative shapes whose byte size fits, data_offsets that hold exactly that
 * many bytes, and tensors that, sorted by offset, tile the data buffer from 0 to its end
 * with no gap or overlap. Shared by the source, the fuzzer and the daemon's probe. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dtype.h"
#include "fileio.h"
#include "json.h"
#include "st.h"

static const struct {
  const char *name;
  int dtype;
} dtypes[] = {
  { "F64", CK_DT_DOUBLE }, { "F32", CK_DT_FLOAT }, { "F16", CK_DT_HALF }, { "BF16", CK_DT_BFLOAT16 },
  { "I64", CK_DT_INT64 },  { "I32", CK_DT_INT32 }, { "I16", CK_DT_INT16 }, { "I8", CK_DT_INT8 },
  { "U64", CK_DT_UINT64 }, { "U32", CK_DT_UINT32 }, { "U16", CK_DT_UINT16 }, { "U8", CK_DT_UINT8 },
  { "BOOL", CK_DT_BOOL },  { "F8_E5M2", CK_DT_FLOAT8_E5M2 }, { "F8_E4M3", CK_DT_FLOAT8_E4M3FN },
};

#define NDTYPES (sizeof(dtypes) / sizeof(dtypes[0]))
#define MAX_DEPTH 4    /* root object, tensor object, shape array; one spare */
#define MIN_TOKENS 4096

const char *ck_st_dtype_name(int dtype)
{
  for (size_t i = 0; i < NDTYPES; i++)
    if (dtypes[i].dtype == dtype)
      return dtypes[i].name;
  return NULL;
}

int ck_st_dtype_parse(const char *name, size_t len)
{
  for (size_t i = 0; i < NDTYPES; i++)
    if (strlen(dtypes[i].name) == len && memcmp(dtypes[i].name, name, len) == 0)
      return dtypes[i].dtype;
  return -1;
}

void ck_st_header_free(struct ck_st_header *h)
{
  for (size_t i = 0; h->t && i < h->n; i++) {
    free(h->t[i].name);
    free(h->t[i].dims);
  }
  for (size_t i = 0; h->meta && i < h->nmeta; i++) {
    free(h->meta[i].key);
    free(h->meta[i].val);
  }
  free(h->t);
  free(h->meta);
  memset(h, 0, sizeof(*h));
}

/* ---- one tensor entry ---- */

/* What the walk of one header needs besides the tokens. */
struct walk {
  const struct ck_json *j;
  const char *fname;
  struct ck_err *err;
};

static int bad(const struct walk *w, const struct ck_st_tensor *t, int code, const char *what)
{
  return ck_err_set(w->err, code, "%s: tensor \"%.200s\": %s", w->fname, t->name, what);
}

static int get_dtype(const struct walk *w, size_t tok, struct ck_st_tensor *t)
{
  const struct ck_jtok *k = &w->j->t[tok];
  char *s = NULL;
  size_t len;
  int rc;

  if (k->type != CK_J_STRING)
    return bad(w, t, CK_EFORMAT, "dtype is not a string");
  if ((rc = ck_json_str(w->j, tok, 0, &s, &len)) != 0)
    return rc == -ENOMEM ? ck_err_set(w->err, rc, "out of memory") : bad(w, t, rc, "dtype is not a valid string");
  if ((t->dtype = ck_st_dtype_parse(s, len)) < 0)
    rc = ck_err_set(w->err, CK_EUNSUP, "%s: tensor \"%.200s\": dtype \"%.40s\" is not one ckptd handles", w->fname,
                    t->name, s);
  free(s);
  return rc;
}

static int get_shape(const struct walk *w, size_t tok, struct ck_st_tensor *t)
{
  const struct ck_jtok *a = &w->j->t[tok];
  uint64_t n = 1;
  size_t el = ck_json_first(tok);

  if (a->type != CK_J_ARRAY)
    return bad(w, t, CK_EFORMAT, "shape is not an array");
  if (a->size > CK_ST_MAX_RANK)
    return bad(w, t, CK_ELIMIT, "shape has more than 254 dimensions");
  if ((t->dims = calloc((size_t)a->size + 1, sizeof(int64_t))) == NULL)
    return ck_err_set(w->err, -ENOMEM, "out of memory");
  t->rank = (int)a->size;
  for (int d = 0; d < t->rank; d++, el = ck_json_next(w->j, el)) {
    uint64_t v;
    if (w->j->t[el].type != CK_J_NUMBER || ck_json_u64(w->j, el, &v) != 0 || v > (uint64_t)INT64_MAX)
      return bad(w, t, CK_EFORMAT, "shape holds something other than a non-negative integer");
    if (v != 0 && n > (uint64_t)INT64_MAX / v)
      return bad(w, t, CK_EFORMAT, "the element count of its shape overflows");
    n *= v;
    t->dims[d] = (int64_t)v;
  }
  t->nelem = n;
  return 0;
}

static int get_offsets(const struct walk *w, size_t tok, struct ck_st_tensor *t)
{
  const struct ck_jtok *a = &w->j->t[tok];
  size_t b = ck_json_first(tok);

  if (a->type != CK_J_ARRAY || a->size != 2)
    return bad(w, t, CK_EFORMAT, "data_offsets is not an array of two offsets");
  if (w->j->t[b].type != CK_J_NUMBER || ck_json_u64(w->j, b, &t->begin) != 0 ||
      w->j->t[b + 1].type != CK_J_NUMBER || ck_json_u64(w->j, b + 1, &t->end) != 0)
    return bad(w, t, CK_EFORMAT, "data_offsets holds something other than two unsigned 64-bit integers");
  if (t->end < t->begin)
    return ck_err_set(w->err, CK_EFORMAT, "%s: tensor \"%.200s\": data_offsets [%llu, %llu] end before they begin",
                      w->fname, t->name, (unsigned long long)t->begin, (unsigned long long)t->end);
  return 0;
}

/* "[2, 3]" into buf, shortened if need be. */
static void shape_text(const struct ck_st_tensor *t, char *buf, size_t cap)
{
  size_t at = (size_t)snprintf(buf, cap, "[");

  for (int d = 0; d < t->rank && at < cap; d++)
    at += (size_t)snprintf(buf + at, cap - at, "%s%lld", d ? ", " : "", (long long)t->dims[d]);
  if (at < cap)
    snprintf(buf + at, cap - at, "]");
}

static int check_size(const struct walk *w, const struct ck_st_tensor *t)
{
  uint64_t esize = ck_dtype_size(t->dtype), have = t->end - t->begin;
  char shape[96];

  shape_text(t, shape, sizeof(shape));
  if (t->nelem > UINT64_MAX / esize)
    return ck_err_set(w->err, CK_EFORMAT, "%s: tensor \"%.200s\": the byte size of dtype %s shape %s overflows",
                      w->fname, t->name, ck_st_dtype_name(t->dtype), shape);
  if (have != t->nelem * esize)
    return ck_err_set(w->err, CK_EFORMAT,
                      "%s: tensor \"%.200s\": data_offsets [%llu, %llu] hold %llu bytes, dtype %s shape %s needs %llu",
                      w->fname, t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                      (unsigned long long)have, ck_st_dtype_name(t->dtype), shape,
                      (unsigned long long)(t->nelem * esize));
  return 0;
}

/* The entry object at tok: exactly dtype, shape and data_offsets. */
static int parse_tensor(const struct walk *w, size_t tok, struct ck_st_tensor *t)
{
  const struct ck_jtok *o = &w->j->t[tok];
  size_t k = ck_json_first(tok);
  int seen[3] = { 0, 0, 0 }, rc = 0;

  if (o->type != CK_J_OBJECT)
    return bad(w, t, CK_EFORMAT, "not an object");
  for (uint32_t m = 0; m < o->size && rc == 0; m++, k = ck_json_next(w->j, k + 1)) {
    int f = ck_json_streq(w->j, k, "dtype") ? 0 : ck_json_streq(w->j, k, "shape") ? 1
          : ck_json_streq(w->j, k, "data_offsets") ? 2 : -1;
    if (f < 0)
      return bad(w, t, CK_EFORMAT, "has a field other than dtype, shape and data_offsets");
    if (seen[f]++)
      return bad(w, t, CK_EFORMAT, "has a field twice");
    rc = f == 0 ? get_dtype(w, k + 1, t) : f == 1 ? get_shape(w, k + 1, t) : get_offsets(w, k + 1, t);
  }
  if (rc == 0 && !(seen[0] && seen[1] && seen[2]))
    return bad(w, t, CK_EFORMAT, "lacks one of dtype, shape and data_offsets");
  return rc == 0 ? check_size(w, t) : rc;
}

/* ---- __metadata__ ---- */

static int parse_meta(const struct walk *w, size_t tok, struct ck_st_header *h)
{
  const struct ck_jtok *o = &w->j->t[tok];
  size_t k = ck_json_first(tok);
  int rc = 0;

  if (o->type == CK_J_NULL) /* the reference's Option<HashMap>: null is no metadata */
    return 0;
  if (o->type != CK_J_OBJECT)
    return ck_err_set(w->err, CK_EFORMAT, "%s: __metadata__ is not an object", w->fname);
  if ((h->meta = calloc((size_t)o->size + 1, sizeof(*h->meta))) == NULL)
    return ck_err_set(w->err, -ENOMEM, "out of memory");
  for (uint32_t m = 0; m < o->size; m++, k = ck_json_next(w->j, k + 1)) {
    struct ck_st_meta *e = &h->meta[h->nmeta];
    size_t klen;
    if (w->j->t[k + 1].type != CK_J_STRING)
      return ck_err_set(w->err, CK_EFORMAT, "%s: __metadata__ holds a value that is not a string", w->fname);
    if ((rc = ck_json_str(w->j, k, 0, &e->key, &klen)) != 0 || (rc = ck_json_str(w->j, k + 1, 1, &e->val, &e->vlen)) != 0)
      break;
    h->nmeta++;
  }
  if (rc != 0) {
    free(h->meta[h->nmeta].key); /* the entry that failed half way */
    h->meta[h->nmeta].key = NULL;
    return rc == -ENOMEM ? ck_err_set(w->err, rc, "out of memory")
                         : ck_err_set(w->err, rc, "%s: __metadata__: a key or value is not a valid string", w->fname);
  }
  return 0;
}

/* ---- the whole header ---- */

static int cmp_name(const void *pa, const void *pb)
{
  const char *a = *(const char *const *)pa, *b = *(const char *const *)pb;

  return strcmp(a, b);
}

/* Names are unique (the reference's map would keep one of them silently). */
static int check_unique(const struct walk *w, const struct ck_st_header *h)
{
  size_t n = h->n + h->nmeta;
  const char **names = malloc((n + 1) * sizeof(*names));
  int rc = 0;

  if (names == NULL)
    return ck_err_set(w->err, -ENOMEM, "out of memory");
  for (size_t i = 0; i < h->n; i++)
    names[i] = h->t[i].name;
  qsort(names, h->n, sizeof(*names), cmp_name);
  for (size_t i = 0; i < h->nmeta; i++)
    names[h->n + i] = h->meta[i].key;
  qsort(names + h->n, h->nmeta, sizeof(*names), cmp_name);
  for (size_t i = 1; i < n && rc == 0; i++)
    if (i != h->n && strcmp(names[i - 1], names[i]) == 0)
      rc = ck_err_set(w->err, CK_EFORMAT, "%s: %s \"%.200s\" appears twice", w->fname,
                      i < h->n ? "tensor" : "__metadata__ key", names[i]);
  free(names);
  return rc;
}

static int cmp_offsets(const void *pa, const void *pb)
{
  const struct ck_st_tensor *a = pa, *b = pb;

  if (a->begin != b->begin)
    return a->begin < b->begin ? -1 : 1;
  if (a->end != b->end)
    return a->end < b->end ? -1 : 1;
  return strcmp(a->name, b->name); /* zero-size tensors at one offset: a fixed order */
}

/* Sorted by offset, the tensors tile [0, data_len) exactly. */
static int check_tiling(const struct walk *w, struct ck_st_header *h)
{
  uint64_t at = 0;

  qsort(h->t, h->n, sizeof(*h->t), cmp_offsets);
  for (size_t i = 0; i < h->n; i++) {
    const struct ck_st_tensor *t = &h->t[i];
    if (t->begin != at)
      return ck_err_set(w->err, CK_EFORMAT, "%s: tensor \"%.200s\": data_offsets begin at %llu, %s %llu", w->fname,
                        t->name, (unsigned long long)t->begin,
                        t->begin > at ? "leaving a gap after the data that ends at" : "overlapping the data that ends at",
                        (unsigned long long)at);
    at = t->end;
  }
  if (at > h->data_len)
    return ck_err_set(w->err, CK_ETRUNC, "%s: the tensors need %llu bytes of data, the file holds %llu", w->fname,
                      (unsigned long long)at, (unsigned long long)h->data_len);
  if (at < h->data_len)
    return ck_err_set(w->err, CK_EFORMAT, "%s: %llu bytes after the end of the last tensor's data", w->fname,
                      (unsigned long long)(h->data_len - at));
  return 0;
}

static int walk_root(const struct walk *w, struct ck_st_header *h)
{
  const struct ck_jtok *root = &w->j->t[0];
  size_t k = ck_json_first(0);
  int rc = 0, seen_meta = 0;

  if (root->type != CK_J_OBJECT)
    return ck_err_set(w->err, CK_EFORMAT, "%s: the header is not a JSON object", w->fname);
  if ((h->t = calloc((size_t)root->size + 1, sizeof(*h->t))) == NULL)
    return ck_err_set(w->err, -ENOMEM, "out of memory");
  for (uint32_t m = 0; m < root->size && rc == 0; m++, k = ck_json_next(w->j, k + 1)) {
    struct ck_st_tensor *t = &h->t[h->n];
    if (ck_json_streq(w->j, k, "__metadata__")) {
      rc = seen_meta++ ? ck_err_set(w->err, CK_EFORMAT, "%s: __metadata__ appears twice", w->fname) : parse_meta(w, k + 1, h);
      continue;
    }
    if ((rc = ck_json_str(w->j, k, 0, &t->name, &t->nlen)) != 0) {
      rc = rc == -ENOMEM ? ck_err_set(w->err, rc, "out of memory")
                         : ck_err_set(w->err, rc, "%s: a tensor name holds a NUL character", w->fname);
      break;
    }
    h->n++;
    rc = parse_tensor(w, k + 1, t);
  }
  if (rc == 0)
    rc = check_unique(w, h);
  return rc == 0 ? check_tiling(w, h) : rc;
}

int ck_st_header_parse(const void *json, size_t len, uint64_t data_len, size_t budget, const char *fname,
                       struct ck_st_header *h, struct ck_err *err)
{
  struct ck_json j = { 0 };
  size_t max_tokens = budget / 2 / sizeof(struct ck_jtok);
  struct walk w = { &j, fname, err };
  int rc;

  memset(h, 0, sizeof(*h));
  h->hlen = len;
  h->data_len = data_len;
  if (max_tokens < MIN_TOKENS)
    max_tokens = MIN_TOKENS;
  if (max_tokens > len / 2 + 2) /* every token but the last takes two bytes at least */
    max_tokens = len / 2 + 2;
  if ((rc = ck_json_parse(json, len, max_tokens, MAX_DEPTH, &j, err)) != 0) {
    ck_err_prefix(err, "%s: header", fname);
    goto out;
  }
  rc = walk_root(&w, h);
out:
  ck_json_free(&j);
  if (rc != 0)
    ck_st_header_free(h);
  return rc;
}

/* N from the first 8 bytes, checked against the limit and the file's size. */
static int check_hlen(const uint8_t *p, uint64_t fsize, const char *fname, uint64_t *hlen, struct ck_err *err)
{
  uint64_t n = 0;

  if (fsize < 8)
    return ck_err_set(err, CK_ETRUNC, "%s: %llu bytes, shorter than the 8-byte header length", fname,
                      (unsigned long long)fsize);
  for (int i = 7; i >= 0; i--)
    n = n << 8 | p[i];
  if (n > CK_ST_MAX_HEADER)
    return ck_err_set(err, CK_EFORMAT, "%s: header length %llu is beyond the 100,000,000-byte limit", fname,
                      (unsigned long long)n);
  if (n < 2)
    return ck_err_set(err, CK_EFORMAT, "%s: header length %llu cannot hold a JSON object", fname, (unsigned long long)n);
  if (n > fsize - 8)
    return ck_err_set(err, CK_ETRUNC, "%s: header length %llu, but only %llu bytes follow", fname,
                      (unsigned long long)n, (unsigned long long)(fsize - 8));
  *hlen = n;
  return 0;
}

int ck_st_image_parse(const void *buf, size_t len, size_t budget, const char *fname, struct ck_st_header *h,
                      struct ck_err *err)
{
  uint64_t n = 0;
  int rc;

  memset(h, 0, sizeof(*h));
  if ((rc = check_hlen(buf, len, fname, &n, err)) != 0)
    return rc;
  return ck_st_header_parse((const uint8_t *)buf + 8, (size_t)n, len - 8 - n, budget, fname, h, err);
}

int ck_st_header_read(int fd, uint64_t fsize, size_t budget, const char *fname, struct ck_st_header *h,
                      struct ck_err *err)
{
  uint8_t pre[8] = { 0 };
  uint64_t n = 0;
  char *json = NULL;
  int rc;

  memset(h, 0, sizeof(*h));
  if (fsize >= 8 && (rc = ck_pread_full(fd, pre, 8, 0)) != 0)
    return ck_err_set(err, rc, "%s: read: %s", fname, ck_strerror(rc));
  if ((rc = check_hlen(pre, fsize, fname, &n, err)) != 0)
    return rc;
  if ((json = malloc((size_t)n)) == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  if ((rc = ck_pread_full(fd, json, (size_t)n, 8)) != 0)
    rc = ck_err_set(err, rc, "%s: read: %s", fname, ck_strerror(rc));
  else
    rc = ck_st_header_parse(json, (size_t)n, fsize - 8 - n, budget, fname, h, err);
  free(json);
  return rc;
}

int ck_st_probe(const char *path, struct ck_err *err)
{
  struct ck_st_header h;
  struct stat st;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), rc;

  if (fd < 0)
    return ck_err_set(err, -errno, "%s: cannot open: %s", path, strerror(errno));
  if (fstat(fd, &st) != 0) {
    rc = ck_err_set(err, -errno, "%s: stat: %s", path, strerror(errno));
    goto out;
  }
  rc = ck_st_header_read(fd, (uint64_t)st.st_size, 64u << 20, path, &h, err);
  if (rc == 0)
    ck_st_header_free(&h);
  else if (rc == CK_ETRUNC && err)
    err->code = rc = CK_EINCOMPLETE;
  else if (rc == CK_ETRUNC)
    rc = CK_EINCOMPLETE;
out:
  close(fd);
  return rc;
}
