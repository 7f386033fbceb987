/* Weak stand-ins for what common/spec.c, common/json.c and common/pipeline.c provide on
 * main (not merged into this branch yet): just enough for the torch reader's tests.
 * Being weak, the real definitions win as soon as the library has them. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fileio.h"
#include "pipeline.h"
#include "spec.h"

#define WEAK __attribute__((weak))

WEAK struct ck_spec *ck_spec_new(int kind)
{
  struct ck_spec *s = calloc(1, sizeof(*s));
  if (s)
    s->kind = kind;
  return s;
}

WEAK int ck_spec_append(struct ck_spec *p, const struct ck_spec_key *key, struct ck_spec *kid)
{
  if (p->n == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 4;
    struct ck_spec **k = realloc(p->kids, cap * sizeof(*k));
    struct ck_spec_key *y = realloc(p->keys, cap * sizeof(*y));
    if (k) p->kids = k;
    if (y) p->keys = y;
    if (!k || !y)
      return -ENOMEM;
    p->cap = cap;
  }
  memset(&p->keys[p->n], 0, sizeof(p->keys[0]));
  if (key) {
    p->keys[p->n] = *key;
    if (key->s && (p->keys[p->n].s = strdup(key->s)) == NULL)
      return -ENOMEM;
  }
  p->kids[p->n++] = kid;
  return 0;
}

WEAK void ck_spec_free(struct ck_spec *s)
{
  if (s == NULL)
    return;
  for (size_t i = 0; i < s->n; i++) {
    free(s->keys[i].s);
    ck_spec_free(s->kids[i]);
  }
  free(s->keys);
  free(s->kids);
  free(s);
}

struct sb { char *p; size_t len, cap; };

static void sb_add(struct sb *b, const char *s, size_t n)
{
  if (b->len + n + 1 > b->cap) {
    b->cap = (b->len + n + 1) * 2;
    b->p = realloc(b->p, b->cap);
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

/* A JSON string literal (only " and \ escaped, control bytes as \u00XX); twice for the
 * context, which is a string holding JSON. */
static void sb_str(struct sb *b, const char *s, int level)
{
  const char *q = level == 2 ? "\\\"" : "\"";
  sb_add(b, q, strlen(q));
  for (; *s; s++) {
    char e[16];
    if (*s == '"' || *s == '\\')
      snprintf(e, sizeof(e), level == 2 ? "\\\\\\%c" : "\\%c", *s);
    else if ((unsigned char)*s < 0x20)
      snprintf(e, sizeof(e), level == 2 ? "\\\\u%04x" : "\\u%04x", *s);
    else
      e[0] = *s, e[1] = 0;
    sb_add(b, e, strlen(e));
  }
  sb_add(b, q, strlen(q));
}

static void dump(struct sb *b, const struct ck_spec *s)
{
  static const char *const types[] = { "null", "\"builtins.dict\"", "\"collections.OrderedDict\"",
                                       "\"builtins.list\"", "\"builtins.tuple\"" };
  sb_add(b, "{\"type\": ", 9);
  sb_add(b, types[s->kind], strlen(types[s->kind]));
  sb_add(b, ", \"context\": ", 13);
  if (s->kind == CK_SPEC_DICT || s->kind == CK_SPEC_ODICT) {
    sb_add(b, "\"[", 2);
    for (size_t i = 0; i < s->n; i++) {
      char num[32];
      if (i)
        sb_add(b, ", ", 2);
      if (s->keys[i].is_int) {
        snprintf(num, sizeof(num), "%lld", (long long)s->keys[i].i);
        sb_add(b, num, strlen(num));
      } else {
        sb_str(b, s->keys[i].s, 2);
      }
    }
    sb_add(b, "]\"", 2);
  } else {
    sb_add(b, "null", 4);
  }
  sb_add(b, ", \"children_spec\": [", 20);
  for (size_t i = 0; i < s->n; i++) {
    if (i)
      sb_add(b, ", ", 2);
    dump(b, s->kids[i]);
  }
  sb_add(b, "]}", 2);
}

WEAK char *ck_spec_dumps(const struct ck_spec *s)
{
  struct sb b = { 0 };
  sb_add(&b, "[1, ", 4);
  dump(&b, s);
  sb_add(&b, "]", 1);
  return b.p;
}

WEAK int ck_source_add_value(struct ck_source *s, const char *name, int kind, int64_t i, double f, const char *str,
                             size_t slen)
{
  struct ck_value *v = realloc(s->values, (s->nvalues + 1) * sizeof(*v));
  if (v == NULL)
    return -ENOMEM;
  s->values = v;
  v = &v[s->nvalues++];
  memset(v, 0, sizeof(*v));
  v->name = strdup(name);
  v->kind = kind, v->i = i, v->f = f;
  if (str) {
    v->s = malloc(slen + 1);
    memcpy(v->s, str, slen);
    v->s[slen] = 0;
    v->slen = slen;
  }
  return 0;
}

WEAK int ck_source_skip(struct ck_source *s, const char *name, const char *why)
{
  char **n = realloc(s->skipped, (s->nskipped + 1) * sizeof(*n));
  if (n == NULL)
    return -ENOMEM;
  s->skipped = n;
  n[s->nskipped++] = ck_asprintf("%s: %s", name, why);
  return 0;
}

WEAK void ck_source_free_common(struct ck_source *s)
{
  for (size_t i = 0; i < s->nvalues; i++) {
    free(s->values[i].name);
    free(s->values[i].s);
  }
  free(s->values);
  for (size_t i = 0; i < s->nskipped; i++)
    free(s->skipped[i]);
  free(s->skipped);
  free(s->spec);
  free(s->path);
  free(s->source_name);
}

WEAK int ck_source_set_id(struct ck_source *s, const char *const *files, struct ck_err *err)
{
  uint64_t size = 0;
  int64_t mt = 0;
  for (; *files; files++) {
    struct stat st;
    if (stat(*files, &st) != 0)
      return ck_err_set(err, -errno, "%s: stat failed", *files);
    size += (uint64_t)st.st_size;
    if ((int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec > mt)
      mt = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
  }
  ck_source_id_format(size, mt, s->source_id, sizeof(s->source_id));
  return 0;
}
