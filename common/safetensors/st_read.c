/* The safetensors source: the header is parsed and validated at open (st_header.c);
 * tensors come in data order with their names verbatim; their bytes are pread in
 * chunks of the caller's buffer. safetensors stores no checksum.
 *
 * __metadata__ becomes values: "__spec__" is the tree's spec; in a file ckptd wrote,
 * "__ckptd_values__" types the values it lists (see st_write.c); every other key is a
 * string value (in ckptd's files, its own unlisted "format" key aside). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dtype.h"
#include "fileio.h"
#include "json.h"
#include "pipeline.h"
#include "st.h"

struct st_source {
  struct ck_source base;
  int fd;
  struct ck_st_header h;
};

/* ---- ops ---- */

static void st_info(struct ck_source *s, size_t i, struct ck_tinfo *out)
{
  const struct ck_st_tensor *t = &((struct st_source *)s)->h.t[i];

  memset(out, 0, sizeof(*out));
  out->name = t->name;
  out->nlen = t->nlen;
  out->dtype = t->dtype;
  out->rank = t->rank;
  out->dims = t->dims;
  out->nelem = t->nelem;
  out->nbytes = t->end - t->begin;
}

static int st_stream(struct ck_source *s, size_t i, void *buf, size_t bufsize,
                     int (*fn)(void *ctx, const void *data, size_t len), void *ctx, struct ck_err *err)
{
  struct st_source *ss = (struct st_source *)s;
  const struct ck_st_tensor *t = &ss->h.t[i];
  uint64_t at = 8 + ss->h.hlen + t->begin, left = t->end - t->begin;
  int rc = 0;

  if (bufsize == 0)
    return ck_err_set(err, CK_EINVAL, "%s: stream with an empty buffer", s->path);
  while (left > 0 && rc == 0) {
    size_t n = left < bufsize ? (size_t)left : bufsize;
    if ((rc = ck_pread_full(ss->fd, buf, n, at)) != 0)
      return ck_err_set(err, rc, "%s: tensor \"%.200s\": read: %s", s->path, t->name, ck_strerror(rc));
    rc = fn(ctx, buf, n);
    at += n;
    left -= n;
  }
  return rc;
}

static void st_close(struct ck_source *s)
{
  struct st_source *ss = (struct st_source *)s;

  if (ss == NULL)
    return;
  if (ss->fd >= 0)
    close(ss->fd);
  ck_st_header_free(&ss->h);
  ck_source_free_common(s);
  free(ss);
}

static const struct ck_source_ops st_ops = { st_info, st_stream, st_close };

/* ---- values from __metadata__ ---- */

/* A value of kind `kind` ("int", ...) written as text by st_write.c. */
static int typed_value(struct ck_source *s, const struct ck_st_meta *m, const char *kind)
{
  char *end = NULL;
  int64_t i = 0;
  double f = 0;

  errno = 0;
  if (strcmp(kind, "str") == 0)
    return ck_source_add_value(s, m->key, CK_VAL_STR, 0, 0, m->val, m->vlen);
  if (strcmp(kind, "none") == 0)
    return strcmp(m->val, "null") == 0 ? ck_source_add_value(s, m->key, CK_VAL_NONE, 0, 0, NULL, 0) : CK_EFORMAT;
  if (strcmp(kind, "bool") == 0 && (strcmp(m->val, "true") == 0 || strcmp(m->val, "false") == 0))
    return ck_source_add_value(s, m->key, CK_VAL_BOOL, m->val[0] == 't', 0, NULL, 0);
  if (strcmp(kind, "int") == 0 && m->vlen > 0 && m->vlen == strlen(m->val)) {
    i = strtoll(m->val, &end, 10);
    return errno == 0 && *end == 0 ? ck_source_add_value(s, m->key, CK_VAL_INT, i, 0, NULL, 0) : CK_EFORMAT;
  }
  if (strcmp(kind, "float") == 0 && m->vlen > 0 && m->vlen == strlen(m->val)) {
    f = strcmp(m->val, "NaN") == 0 ? NAN : strcmp(m->val, "Infinity") == 0 ? INFINITY
      : strcmp(m->val, "-Infinity") == 0 ? -INFINITY : strtod(m->val, &end);
    return end == NULL || *end == 0 ? ck_source_add_value(s, m->key, CK_VAL_FLOAT, 0, f, NULL, 0) : CK_EFORMAT;
  }
  return CK_EFORMAT;
}

/* The kind __ckptd_values__ (parsed in types) gives key, or NULL if it lists none. */
static const char *kind_of(const struct ck_json *types, char **kinds, const char *key)
{
  size_t k = ck_json_first(0);

  for (uint32_t m = 0; types->n && m < types->t[0].size; m++, k = ck_json_next(types, k + 1))
    if (ck_json_streq(types, k, key))
      return kinds[m];
  return NULL;
}

/* Parse __ckptd_values__: an object of name -> "int" | "float" | "bool" | "none" | "str". */
static int parse_types(const struct ck_st_meta *m, struct ck_json *types, char ***kinds, struct ck_err *err,
                       const char *path)
{
  size_t k;
  int rc;

  if ((rc = ck_json_parse(m->val, m->vlen, m->vlen / 2 + 2, 1, types, err)) != 0)
    return rc;
  if (types->t[0].type != CK_J_OBJECT)
    return ck_err_set(err, CK_EFORMAT, "%s: " CK_ST_VALUES_KEY " is not a JSON object", path);
  if ((*kinds = calloc((size_t)types->t[0].size + 1, sizeof(char *))) == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  k = ck_json_first(0);
  for (uint32_t i = 0; i < types->t[0].size; i++, k = ck_json_next(types, k + 1))
    if (types->t[k + 1].type != CK_J_STRING || (rc = ck_json_str(types, k + 1, 0, &(*kinds)[i], NULL)) != 0)
      return ck_err_set(err, rc == -ENOMEM ? rc : CK_EFORMAT, "%s: " CK_ST_VALUES_KEY " holds a kind that is not a string",
                        path);
  return 0;
}

static int one_value(struct ck_source *s, const struct ck_st_meta *m, const char *kind, int ours, struct ck_err *err)
{
  int rc;

  if (strcmp(m->key, CK_ST_SPEC_KEY) == 0) {
    if (memchr(m->val, 0, m->vlen) != NULL)
      return ck_err_set(err, CK_EFORMAT, "%s: " CK_ST_SPEC_KEY " holds a NUL character", s->path);
    return (s->spec = strdup(m->val)) == NULL ? ck_err_set(err, -ENOMEM, "out of memory") : 0;
  }
  if (strcmp(m->key, CK_ST_VALUES_KEY) == 0 || (ours && kind == NULL && strcmp(m->key, "format") == 0))
    return 0;
  rc = kind ? typed_value(s, m, kind) : ck_source_add_value(s, m->key, CK_VAL_STR, 0, 0, m->val, m->vlen);
  if (rc == CK_EFORMAT)
    return ck_err_set(err, rc, "%s: __metadata__ \"%.200s\": \"%.60s\" is not a value of kind %s", s->path, m->key,
                      m->val, kind);
  return rc == 0 ? 0 : ck_err_set(err, rc, "out of memory");
}

static int load_values(struct st_source *ss, struct ck_err *err)
{
  struct ck_source *s = &ss->base;
  const struct ck_st_meta *vm = NULL;
  struct ck_json types = { 0 };
  char **kinds = NULL;
  int rc = 0;

  for (size_t i = 0; i < ss->h.nmeta; i++)
    if (strcmp(ss->h.meta[i].key, CK_ST_VALUES_KEY) == 0)
      vm = &ss->h.meta[i];
  if (vm && (rc = parse_types(vm, &types, &kinds, err, s->path)) != 0)
    goto out;
  for (size_t i = 0; i < ss->h.nmeta && rc == 0; i++)
    rc = one_value(s, &ss->h.meta[i], vm ? kind_of(&types, kinds, ss->h.meta[i].key) : NULL, vm != NULL, err);
out:
  for (size_t i = 0; kinds && i < types.t[0].size; i++)
    free(kinds[i]);
  free(kinds);
  ck_json_free(&types);
  return rc;
}

/* ---- open ---- */

static int set_id(struct st_source *ss, struct ck_err *err)
{
  const char *files[] = { ss->base.path, NULL };

  if ((ss->base.source_name = ck_basename(ss->base.path)) == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  return ck_source_set_id(&ss->base, files, err);
}

int ck_st_source_open(const char *path, size_t budget, struct ck_source **out, struct ck_err *err)
{
  struct st_source *ss = calloc(1, sizeof(*ss));
  struct stat st;
  int rc;

  *out = NULL;
  if (ss == NULL || (ss->base.path = strdup(path)) == NULL) {
    free(ss);
    return ck_err_set(err, -ENOMEM, "out of memory");
  }
  ss->base.ops = &st_ops;
  ss->base.format = CK_FMT_SAFETENSORS;
  if ((ss->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(ss->fd, &st) != 0) {
    rc = ck_err_set(err, -errno, "%s: cannot open: %s", path, strerror(errno));
    goto out;
  }
  if ((rc = set_id(ss, err)) != 0)
    goto out;
  if ((rc = ck_st_header_read(ss->fd, (uint64_t)st.st_size, budget, path, &ss->h, err)) != 0 ||
      (rc = load_values(ss, err)) != 0)
    goto out;
  ss->base.count = ss->h.n;
  *out = &ss->base;
out:
  if (rc != 0)
    st_close(&ss->base);
  return rc;
}
