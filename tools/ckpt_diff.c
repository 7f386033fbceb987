/* ckpt diff: two checkpoints of any formats compared tensor by tensor. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle.h"
#include "ckpt_src.h"
#include "cli.h"
#include "convert.h"
#include "convert_internal.h"
#include "crc32c.h"
#include "dtype.h"
#include "fileio.h"
#include "h5.h"
#include "isolate.h"
#include "pipeline.h"
#include "synth.h"
#include "tensor_crc.h"

/* One tensor of a diff listing, compact: 200,000 of them are a few MB. */
struct dent {
  const uint8_t *name;
  const int64_t *dims;
  uint32_t nlen;
  int dtype;
  int rank;
  uint32_t crc; /* of the TensorFlow stored layout */
};

static void as_tinfo(const struct dent *d, struct tinfo *t)
{
  memset(t, 0, sizeof(*t));
  t->name = d->name;
  t->nlen = d->nlen;
  t->dtype = d->dtype;
  t->rank = d->rank;
  t->dims = d->dims;
}

static int cmp_dent(const void *pa, const void *pb)
{
  const struct dent *a = pa, *b = pb;
  size_t n = a->nlen < b->nlen ? a->nlen : b->nlen;
  int c = memcmp(a->name, b->name, n);

  return c ? c : a->nlen < b->nlen ? -1 : a->nlen > b->nlen;
}

/* A listing that no longer needs its source: names and shapes copied into one
 * block, so the source can be closed before the other one is opened (diff of two
 * 200,000-tensor checkpoints then holds one reader at a time, not two). */
struct listing {
  struct dent *d;
  size_t n;
  uint8_t *store;
};

static int detach(struct listing *l, struct ck_err *err)
{
  size_t need = 0;
  uint8_t *p;

  for (size_t i = 0; i < l->n; i++)
    need += l->d[i].nlen + 1 + sizeof(int64_t) * (size_t)l->d[i].rank + sizeof(int64_t);
  if ((p = l->store = malloc(need + 1)) == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  for (size_t i = 0; i < l->n; i++) { /* dims first in each record: 8-byte aligned */
    struct dent *t = &l->d[i];
    size_t dl = sizeof(int64_t) * (size_t)t->rank;
    memcpy(p, t->dims, dl);
    t->dims = (const int64_t *)(void *)p;
    p += dl;
    memcpy(p, t->name, t->nlen);
    p[t->nlen] = 0;
    t->name = p;
    p += (t->nlen + 1 + sizeof(int64_t) - 1) / sizeof(int64_t) * sizeof(int64_t);
  }
  return 0;
}

static int collect(struct src *s, struct dent **out, size_t *n, struct ck_err *err)
{
  uint8_t *buf = malloc(VERIFY_BUF);
  struct dent *d = calloc(ckpt_src_count(s) + 1, sizeof(*d));
  int rc = (buf && d) ? 0 : ck_err_set(err, -ENOMEM, "out of memory");

  *n = 0;
  for (size_t i = 0; rc == 0 && i < ckpt_src_count(s); i++) {
    struct dent *x = &d[*n];
    struct tinfo t;
    if (!ckpt_src_tensor(s, i, &t))
      continue;
    *x = (struct dent){ t.name, t.dims, (uint32_t)t.nlen, t.dtype, t.rank, 0 };
    rc = ckpt_src_tensor_crc(s, &t, buf, VERIFY_BUF, &x->crc, err);
    (*n)++;
  }
  free(buf);
  if (rc != 0) {
    free(d);
    return rc;
  }
  qsort(d, *n, sizeof(*d), cmp_dent);
  *out = d;
  return 0;
}

static int same_shape(const struct tinfo *a, const struct tinfo *b)
{
  return a->rank == b->rank && (a->rank == 0 || memcmp(a->dims, b->dims, sizeof(int64_t) * (size_t)a->rank) == 0);
}

/* Print the differences of two collected listings; returns how many. */
static size_t diff_report(const struct dent *da, size_t na, const struct dent *db, size_t nb)
{
  size_t i = 0, j = 0, ndiff = 0;
  char name[1024], sa[256], sb[256];

  while (i < na || j < nb) {
    int c = i == na ? 1 : j == nb ? -1 : cmp_dent(&da[i], &db[j]);
    struct tinfo ta, tb;
    if (c != 0) {
      as_tinfo(c < 0 ? &da[i] : &db[j], &ta);
      ckpt_name_str(&ta, name, sizeof(name));
      printf("only in %s: %s\n", c < 0 ? "A" : "B", name);
      ndiff++;
      if (c < 0)
        i++;
      else
        j++;
      continue;
    }
    as_tinfo(&da[i], &ta);
    as_tinfo(&db[j], &tb);
    ckpt_name_str(&ta, name, sizeof(name));
    ckpt_shape_str(&ta, sa, sizeof(sa));
    ckpt_shape_str(&tb, sb, sizeof(sb));
    if (ta.dtype != tb.dtype) {
      printf("dtype differs: %s: %s vs %s\n", name, ck_dtype_name(ta.dtype), ck_dtype_name(tb.dtype));
      ndiff++;
    } else if (!same_shape(&ta, &tb)) {
      printf("shape differs: %s: %s vs %s\n", name, sa, sb);
      ndiff++;
    } else if (da[i].crc != db[j].crc) {
      printf("data differs: %s (crc32c %08x vs %08x)\n", name, da[i].crc, db[j].crc);
      ndiff++;
    }
    i++;
    j++;
  }
  return ndiff;
}

struct diff_args {
  const char *a;
  const char *b;
};

/* Open, list with checksums, detach from the source, close: one source at a time. */
static int list_one(const char *path, struct listing *l, struct ck_err *err)
{
  struct src s = { 0 };
  int rc;

  if ((rc = ckpt_src_open(&s, path, 0, err)) == 0 && (rc = collect(&s, &l->d, &l->n, err)) == 0)
    rc = detach(l, err);
  ckpt_src_close(&s);
  return rc;
}

static int diff_body(void *arg)
{
  const struct diff_args *p = arg;
  struct listing a = { 0 }, b = { 0 };
  struct ck_err err = { 0 };
  size_t ndiff;
  int rc = CK_EXIT_USAGE;

  if (list_one(p->a, &a, &err) != 0 || list_one(p->b, &b, &err) != 0) {
    fprintf(stderr, "ckpt diff: %s\n", err.msg);
    goto out;
  }
  ndiff = diff_report(a.d, a.n, b.d, b.n);
  if (ndiff == 0)
    printf("same: %zu tensors, equal names, dtypes, shapes and data\n", a.n);
  else
    printf("%zu difference(s)\n", ndiff);
  rc = ndiff ? CK_EXIT_FAIL : 0;
out:
  free(a.d);
  free(a.store);
  free(b.d);
  free(b.store);
  return rc;
}

int ck_cmd_diff(int argc, char **argv)
{
  struct diff_args p;
  char *what;
  int rc;

  if (argc != 3 || argv[1][0] == '-') {
    ckpt_usage(argc == 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
    return argc == 2 && strcmp(argv[1], "--help") == 0 ? 0 : CK_EXIT_USAGE;
  }
  p = (struct diff_args){ argv[1], argv[2] };
  /* a crash can only come from an HDF5 input: name those (both if both are) */
  if (ckpt_is_h5_path(p.a) && ckpt_is_h5_path(p.b))
    what = ck_asprintf("%s or %s", p.a, p.b);
  else
    what = strdup(ckpt_is_h5_path(p.b) ? p.b : p.a);
  ck_h5_set_walkers(2);
  rc = ck_isolate_run(diff_body, &p, what ? what : p.a, NULL);
  free(what);
  return rc;
}
