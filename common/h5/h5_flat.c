/* ckptd's flat layout, written without libhdf5 in the loop.
 *
 * libhdf5 spends about 80 us of metadata work on each dataset it creates with
 * ckptd's three attributes, on one thread: at 200,000 small tensors that was most of
 * the conversion, whatever property lists or file format versions it was given
 * (docs/performance.md). Every dataset of the flat layout has the same kind of
 * metadata, so this file lays it out itself, in the original file format that h5py
 * writes by default and every HDF5 since 1.6 reads:
 *
 *   superblock v0 (written last)
 *   for each dataset: its object header (v1), then its contiguous data
 *   global heap collections holding the string attributes, between them
 *   the root group: local heap of names, symbol table nodes, v1 B-tree of groups,
 *   object header with the root attributes
 *
 * Each structure is encoded as libhdf5 1.10 encodes it for the same calls (checked
 * against hex dumps of files libhdf5 wrote; the layout is that of HDF5's File Format
 * Specification; docs/h5-flat.md says what and why); element types are encoded by
 * libhdf5 itself (H5Tencode). Nothing here parses: these files are read through
 * libhdf5, like any other. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "coding.h"
#include "dtype.h"
#include "fileio.h"
#include "h5_flat.h"
#include "h5_internal.h"

#define UNDEF UINT64_MAX
#define SB_SIZE 96 /* superblock v0 with 8-byte offsets and lengths */
#define LEAF_K 4   /* symbol table node: 2K entries (libhdf5's default) */
#define NODE_K 16  /* B-tree node: 2K children (libhdf5's default) */
#define ENTRY_SIZE 40
#define SNOD_SIZE (8 + 2 * LEAF_K * ENTRY_SIZE)
#define TREE_SIZE (24 + (2 * NODE_K + 1) * 8 + 2 * NODE_K * 8)
#define GCOL_MIN 4096            /* global heap collection (libhdf5's minimum) */
#define ALIGN_DATA_FROM (64u << 10) /* data this large starts on a 4 KiB boundary */
#define STAGE (1u << 20)         /* groups' metadata is written this many bytes at a time */

enum { MSG_SPACE = 1, MSG_TYPE = 3, MSG_FILL = 5, MSG_LAYOUT = 8, MSG_ATTR = 12, MSG_STAB = 17 };

struct buf {
  uint8_t *p;
  size_t len, cap;
};

struct rec {
  uint64_t name; /* offset in the local heap */
  uint64_t ohdr; /* object header address */
};

struct ck_h5f {
  char *path;
  int fd;
  uint64_t eoa; /* end of allocated space: the next address */
  struct buf heap; /* the root group's local heap: "" at 0, then each name, 8-aligned */
  struct rec *r;
  size_t n, cap;
  struct buf gcol; /* the global heap collection being filled */
  size_t gcol_size; /* its size in the file (the buffer holds at least that) */
  uint64_t gcol_addr;
  unsigned gcol_next;
  struct buf root; /* the root group's attribute messages */
  uint8_t *type[CK_DT_COUNT];
  size_t tlen[CK_DT_COUNT];
  uint8_t *bool_type;
  size_t bool_len;
  struct ck_err fail; /* the first failed object header write: every later call fails with it */
  int failed;
  size_t open;        /* datasets created and not yet closed */
};

struct ck_h5f_ds {
  struct ck_h5f *f;
  uint64_t addr, raw;
  struct buf oh;
  size_t crc_at;
};

/* A variable-length UTF-8 string, as stored (h5py's str). */
static const uint8_t vstr_type[20] = { 0x19, 0x01, 0x01, 0x00, 0x10, 0, 0, 0, 0x10, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0x08, 0 };
static const uint8_t u32_type[12] = { 0x10, 0, 0, 0, 4, 0, 0, 0, 0, 0, 32, 0 };
static const uint8_t i32_type[12] = { 0x10, 0x08, 0, 0, 4, 0, 0, 0, 0, 0, 32, 0 };
static const uint8_t u64_type[12] = { 0x10, 0, 0, 0, 8, 0, 0, 0, 0, 0, 64, 0 };
static const uint8_t scalar_space[8] = { 1, 0, 0, 0, 0, 0, 0, 0 };

static size_t pad8(size_t n)
{
  return (n + 7) & ~(size_t)7;
}

static void le16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

/* n more zeroed bytes at the end of b: their address, or NULL. */
static uint8_t *buf_grow(struct buf *b, size_t n)
{
  if (n > SIZE_MAX / 2 - b->len)
    return NULL;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
      cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (p == NULL)
      return NULL;
    b->p = p;
    b->cap = cap;
  }
  uint8_t *at = b->p + b->len;
  memset(at, 0, n);
  b->len += n;
  return at;
}

static void buf_free(struct buf *b)
{
  free(b->p);
  memset(b, 0, sizeof(*b));
}

static uint64_t alloc(struct ck_h5f *f, uint64_t size)
{
  uint64_t at = f->eoa;

  f->eoa = (at + size + 7) & ~(uint64_t)7;
  return at;
}

static int put(struct ck_h5f *f, const void *p, size_t len, uint64_t at, struct ck_err *err)
{
  int rc = ck_pwrite_full(f->fd, p, len, at);

  return rc ? ck_err_set(err, rc, "%s: write: %s", f->path, strerror(-rc)) : 0;
}

/* A message header and a zeroed body of len (8-aligned) bytes: the body, or NULL (out
 * of memory; every message ckptd writes is far below the 64 KiB a message can hold). */
static uint8_t *msg(struct buf *b, unsigned type, size_t len, unsigned flags)
{
  uint8_t *h = len <= 0xfff8 ? buf_grow(b, 8 + pad8(len)) : NULL;

  if (h == NULL)
    return NULL;
  le16(h, (uint16_t)type);
  le16(h + 2, (uint16_t)pad8(len));
  h[4] = (uint8_t)flags;
  return h + 8;
}

/* ---- global heap: the bytes of string attributes ---- */

static int gcol_flush(struct ck_h5f *f, struct ck_err *err)
{
  size_t size = f->gcol_size, used = f->gcol.len;
  int rc;

  if (used == 0)
    return 0;
  if (size - used >= 16) { /* the rest is the free-space object (index 0) */
    uint8_t *p = buf_grow(&f->gcol, 16);
    ck_put_fixed64(p + 8, size - used);
  }
  rc = put(f, f->gcol.p, size, f->gcol_addr, err);
  f->gcol.len = 0;
  return rc;
}

/* Store len bytes as a new heap object; id gets the 16 bytes an attribute holds
 * (length, collection address, object index). */
static int gheap_put(struct ck_h5f *f, const void *p, size_t len, uint8_t id[16], struct ck_err *err)
{
  size_t need = 16 + pad8(len), left = f->gcol_size - f->gcol.len;
  uint8_t *o;
  int rc;

  if (len > UINT32_MAX)
    return ck_err_set(err, CK_ELIMIT, "%s: an attribute of %zu bytes", f->path, len);
  if (f->gcol.len == 0 || need > left || (left - need != 0 && left - need < 16) || f->gcol_next > 0xfffe) {
    size_t size = 16 + need <= GCOL_MIN ? GCOL_MIN : 16 + need; /* (libhdf5 reads no smaller one) */
    if ((rc = gcol_flush(f, err)) != 0)
      return rc;
    if (size > f->gcol.cap) {
      uint8_t *np = realloc(f->gcol.p, size);
      if (np == NULL)
        return ck_err_set(err, -ENOMEM, "out of memory");
      f->gcol.p = np;
      f->gcol.cap = size;
    }
    f->gcol_size = size;
    memset(f->gcol.p, 0, size);
    memcpy(f->gcol.p, "GCOL\1", 5);
    ck_put_fixed64(f->gcol.p + 8, size);
    f->gcol.len = 16;
    f->gcol_addr = alloc(f, size);
    f->gcol_next = 1;
  }
  o = f->gcol.p + f->gcol.len;
  le16(o, (uint16_t)f->gcol_next);
  ck_put_fixed64(o + 8, len);
  memcpy(o + 16, p, len);
  f->gcol.len += need;
  ck_put_fixed32(id, (uint32_t)len);
  ck_put_fixed64(id + 4, f->gcol_addr);
  ck_put_fixed32(id + 12, f->gcol_next++);
  return 0;
}

/* ---- attributes ---- */

/* An attribute message (version 1, scalar): its value's bytes, or NULL. */
static uint8_t *attr(struct buf *b, const char *name, const uint8_t *type, size_t tlen, size_t dlen)
{
  size_t nlen = strlen(name) + 1, len = 8 + pad8(nlen) + pad8(tlen) + 8 + dlen;
  uint8_t *p = msg(b, MSG_ATTR, len, 0);

  if (p == NULL)
    return NULL;
  p[0] = 1;
  le16(p + 2, (uint16_t)nlen);
  le16(p + 4, (uint16_t)tlen);
  le16(p + 6, 8);
  memcpy(p + 8, name, nlen);
  p += 8 + pad8(nlen);
  memcpy(p, type, tlen);
  p += pad8(tlen);
  memcpy(p, scalar_space, 8);
  return p + 8;
}

static int attr_str(struct ck_h5f *f, struct buf *b, const char *name, const char *value, struct ck_err *err)
{
  uint8_t id[16], *v;
  int rc = gheap_put(f, value, strlen(value), id, err);

  if (rc != 0)
    return rc;
  if ((v = attr(b, name, vstr_type, sizeof(vstr_type), 16)) == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  memcpy(v, id, 16);
  return 0;
}

/* The encoded HDF5 type of a dtype, as libhdf5 encodes it (made once). */
static int encode_type(hid_t t, uint8_t **out, size_t *outlen)
{
  size_t n = 0;
  uint8_t *p;

  if (t < 0 || H5Tencode(t, NULL, &n) < 0 || n < 3 || (p = malloc(n)) == NULL)
    return -1;
  if (H5Tencode(t, p, &n) < 0 || p[0] != 3) { /* (H5O_DTYPE_ID, then a version byte) */
    free(p);
    return -1;
  }
  memmove(p, p + 2, n - 2);
  *out = p;
  *outlen = n - 2;
  return 0;
}

static int type_of(struct ck_h5f *f, int dtype)
{
  int rc = 0;

  if (dtype <= 0 || dtype >= CK_DT_COUNT)
    return -1;
  if (f->type[dtype] == NULL) {
    hid_t t = ck_h5_type_for(dtype);
    rc = encode_type(t, &f->type[dtype], &f->tlen[dtype]);
    if (t >= 0)
      H5Tclose(t);
  }
  if (rc == 0 && f->bool_type == NULL) {
    hid_t t = ck_h5_bool_type();
    rc = encode_type(t, &f->bool_type, &f->bool_len);
    if (t >= 0)
      H5Tclose(t);
  }
  return rc;
}

/* ---- the file ---- */

int ck_h5f_create(const char *path, struct ck_h5f **out, struct ck_err *err)
{
  struct ck_h5f *f = calloc(1, sizeof(*f));
  uint8_t *p;

  *out = NULL;
  if (f == NULL || (f->path = strdup(path)) == NULL || (p = buf_grow(&f->heap, 8)) == NULL) {
    if (f)
      free(f->path);
    free(f);
    return ck_err_set(err, -ENOMEM, "out of memory");
  }
  (void)p; /* offset 0: the empty name */
  if ((f->fd = ck_create_excl(path)) < 0) {
    int rc = ck_err_set(err, f->fd, "%s: cannot create HDF5 file: %s", path, strerror(-f->fd));
    buf_free(&f->heap);
    free(f->path);
    free(f);
    return rc;
  }
  f->eoa = SB_SIZE;
  *out = f;
  return 0;
}

int ck_h5f_dataset(struct ck_h5f *f, const char *name, int dtype, int rank, const int64_t *dims,
                   uint32_t tf_crc32c, struct ck_h5f_ds **out, struct ck_err *err)
{
  static const char *h5type = "NumpyArrayH5Type";
  struct ck_h5f_ds *ds = calloc(1, sizeof(*ds));
  size_t nlen = strlen(name) + 1, esize = ck_dtype_size(dtype);
  uint64_t nelem = 1, bytes;
  uint8_t *p;
  int rc = 0;

  *out = NULL;
  if (ds == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  ds->f = f;
  if (f->failed) { /* a header could not be written: the file is lost, stop copying */
    if (err)
      *err = f->fail;
    rc = f->fail.code;
    goto out;
  }
  if (nlen == 1 || strcmp(name, ".") == 0 || strchr(name, '/') != NULL) {
    rc = ck_err_set(err, CK_EINVAL, "%s: cannot create dataset %s: not an HDF5 link name", f->path, name);
    goto out;
  }
  if (rank < 0 || rank > H5S_MAX_RANK) { /* (libhdf5 would not read it) */
    rc = ck_err_set(err, CK_EUNSUP, "%s: %s has rank %d: HDF5 holds at most %d dimensions", f->path, name, rank,
                    H5S_MAX_RANK);
    goto out;
  }
  if (type_of(f, dtype) != 0 || esize == 0) {
    rc = ck_err_set(err, CK_EUNSUP, "%s: %s: %s has no HDF5 mapping", f->path, name, ck_dtype_name(dtype));
    goto out;
  }
  for (int d = 0; d < rank; d++)
    if (dims[d] < 0 || __builtin_mul_overflow(nelem, (uint64_t)dims[d], &nelem))
      nelem = UINT64_MAX;
  if (__builtin_mul_overflow(nelem, (uint64_t)esize, &bytes) || bytes > (UINT64_MAX >> 2)) {
    rc = ck_err_set(err, CK_ELIMIT, "%s: %s: a shape too large for a file", f->path, name);
    goto out;
  }
  if (f->n == f->cap) {
    size_t cap = f->cap ? f->cap * 2 : 1024;
    struct rec *r = realloc(f->r, cap * sizeof(*r));
    if (r == NULL) {
      rc = ck_err_set(err, -ENOMEM, "out of memory");
      goto out;
    }
    f->r = r;
    f->cap = cap;
  }
  if ((p = buf_grow(&f->heap, pad8(nlen))) == NULL) {
    rc = ck_err_set(err, -ENOMEM, "out of memory");
    goto out;
  }
  memcpy(p, name, nlen);

  /* the object header: prefix, then its messages */
  if (buf_grow(&ds->oh, 16) == NULL || (p = msg(&ds->oh, MSG_SPACE, 8 + (size_t)rank * 16, 0)) == NULL)
    goto nomem;
  p[0] = 1;
  p[1] = (uint8_t)rank;
  p[2] = rank > 0; /* maximum dimensions follow */
  for (int d = 0; d < rank; d++) {
    ck_put_fixed64(p + 8 + 8 * d, (uint64_t)dims[d]);
    ck_put_fixed64(p + 8 + 8 * (rank + d), (uint64_t)dims[d]);
  }
  if ((p = msg(&ds->oh, MSG_TYPE, f->tlen[dtype], 1)) == NULL)
    goto nomem;
  memcpy(p, f->type[dtype], f->tlen[dtype]);
  if ((p = msg(&ds->oh, MSG_FILL, 8, 1)) == NULL) /* v2: allocated early, never filled */
    goto nomem;
  memcpy(p, "\2\1\1\1", 4);
  if ((p = msg(&ds->oh, MSG_LAYOUT, 18, 1)) == NULL)
    goto nomem;
  p[0] = 3;
  p[1] = 1; /* contiguous */
  size_t layout_at = (size_t)(p - ds->oh.p);
  ck_put_fixed64(p + 10, bytes);
  if ((rc = attr_str(f, &ds->oh, "__H5_TYPE__", h5type, err)) != 0 ||
      (rc = attr_str(f, &ds->oh, "tf_dtype", ck_dtype_name(dtype), err)) != 0)
    goto out;
  if ((p = attr(&ds->oh, "tf_crc32c", u32_type, sizeof(u32_type), 4)) == NULL)
    goto nomem;
  ds->crc_at = (size_t)(p - ds->oh.p);
  ck_put_fixed32(p, tf_crc32c);
  if (ck_dtype_base(dtype) == CK_DT_BFLOAT16) {
    if ((p = attr(&ds->oh, "is_bfloat16", f->bool_type, f->bool_len, 1)) == NULL)
      goto nomem;
    *p = 1;
  }
  /* the data order, as the nested layout records it: a symbol table lists by name */
  if ((p = attr(&ds->oh, "ckptd_order", u64_type, sizeof(u64_type), 8)) == NULL)
    goto nomem;
  ck_put_fixed64(p, f->n);
  p = ds->oh.p;
  p[0] = 1;
  le16(p + 2, (uint16_t)(2 + 2 + 2 + 2 + (ck_dtype_base(dtype) == CK_DT_BFLOAT16))); /* messages */
  ck_put_fixed32(p + 4, 1);                                                                   /* links to it */
  ck_put_fixed32(p + 8, (uint32_t)(ds->oh.len - 16));

  ds->addr = alloc(f, ds->oh.len);
  if (bytes > 0) {
    if (bytes >= ALIGN_DATA_FROM)
      f->eoa = (f->eoa + 4095) & ~(uint64_t)4095;
    ds->raw = alloc(f, bytes);
  }
  ck_put_fixed64(ds->oh.p + layout_at + 2, bytes > 0 ? ds->raw : UNDEF);
  f->r[f->n].name = f->heap.len - pad8(nlen);
  f->r[f->n++].ohdr = ds->addr;
  f->open++;
  *out = ds;
  return 0;
nomem:
  rc = ck_err_set(err, -ENOMEM, "out of memory");
out:
  buf_free(&ds->oh);
  free(ds);
  return rc;
}

uint64_t ck_h5f_ds_raw_offset(const struct ck_h5f_ds *ds)
{
  return ds->raw;
}

void ck_h5f_ds_set_crc(struct ck_h5f_ds *ds, uint32_t tf_crc32c)
{
  ck_put_fixed32(ds->oh.p + ds->crc_at, tf_crc32c);
}

int ck_h5f_ds_close(struct ck_h5f_ds *ds, struct ck_err *err)
{
  struct ck_err mine = { 0 };
  struct ck_h5f *f;
  int rc;

  if (ds == NULL)
    return 0;
  f = ds->f;
  f->open--;
  rc = put(f, ds->oh.p, ds->oh.len, ds->addr, &mine);
  if (rc != 0) {
    if (!f->failed) {
      f->failed = 1;
      f->fail = mine;
    }
    if (err)
      *err = mine;
  }
  buf_free(&ds->oh);
  free(ds);
  return rc;
}

int ck_h5f_root_str(struct ck_h5f *f, const char *name, const char *value, struct ck_err *err)
{
  return attr_str(f, &f->root, name, value, err);
}

int ck_h5f_root_i32(struct ck_h5f *f, const char *name, int32_t value, struct ck_err *err)
{
  uint8_t *p = attr(&f->root, name, i32_type, sizeof(i32_type), 4);

  if (p == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  ck_put_fixed32(p, (uint32_t)value);
  return 0;
}

int ck_h5f_root_bool(struct ck_h5f *f, const char *name, int value, struct ck_err *err)
{
  uint8_t *p;

  if (f->bool_type == NULL && type_of(f, CK_DT_BOOL) != 0)
    return ck_err_set(err, CK_EUNSUP, "%s: cannot encode the bool type", f->path);
  if ((p = attr(&f->root, name, f->bool_type, f->bool_len, 1)) == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  *p = value ? 1 : 0;
  return 0;
}

/* ---- the root group: names, symbol table nodes, B-tree ---- */

/* Staged sequential writes of the groups' metadata. */
struct stage {
  struct ck_h5f *f;
  uint8_t *p;
  size_t len;
  uint64_t at; /* file address of p[0] */
};

static int stage_flush(struct stage *s, struct ck_err *err)
{
  int rc = s->len ? put(s->f, s->p, s->len, s->at, err) : 0;

  s->at += s->len;
  s->len = 0;
  return rc;
}

/* size zeroed bytes at the stage's end (the next address): NULL after an error. */
static uint8_t *stage_take(struct stage *s, size_t size, int *rc, struct ck_err *err)
{
  if (s->len + size > STAGE && (*rc = stage_flush(s, err)) != 0)
    return NULL;
  memset(s->p + s->len, 0, size);
  s->len += size;
  return s->p + s->len - size;
}

static const char *heap_name(const struct ck_h5f *f, uint64_t off)
{
  return (const char *)f->heap.p + off;
}

static int cmp_rec(const void *a, const void *b, void *arg)
{
  const struct ck_h5f *f = arg;

  return strcmp(heap_name(f, ((const struct rec *)a)->name), heap_name(f, ((const struct rec *)b)->name));
}

/* A child of a B-tree level: its address and its key range (heap offsets of the
 * names bounding it: left < its names <= right). */
struct kid {
  uint64_t addr, left, right;
};

/* Write the root group's B-tree over the symbol table nodes; *root gets its address. */
static int write_tree(struct ck_h5f *f, struct stage *s, struct kid *k, size_t n, uint64_t *root,
                      struct ck_err *err)
{
  int level = 0, rc = 0;

  do {
    size_t nodes = n ? (n + 2 * NODE_K - 1) / (2 * NODE_K) : 1;
    uint64_t base = alloc(f, (uint64_t)nodes * TREE_SIZE);
    if ((rc = stage_flush(s, err)) != 0)
      return rc;
    s->at = base;
    for (size_t j = 0; j < nodes; j++) {
      size_t first = j * 2 * NODE_K, m = n - first < 2 * NODE_K ? n - first : 2 * NODE_K;
      uint8_t *p = stage_take(s, TREE_SIZE, &rc, err);
      if (p == NULL)
        return rc;
      memcpy(p, "TREE", 4);
      p[5] = (uint8_t)level;
      le16(p + 6, (uint16_t)m);
      ck_put_fixed64(p + 8, j > 0 ? base + (j - 1) * TREE_SIZE : UNDEF);
      ck_put_fixed64(p + 16, j + 1 < nodes ? base + (j + 1) * TREE_SIZE : UNDEF);
      ck_put_fixed64(p + 24, m ? k[first].left : 0);
      for (size_t i = 0; i < m; i++) {
        ck_put_fixed64(p + 32 + 16 * i, k[first + i].addr);
        ck_put_fixed64(p + 40 + 16 * i, k[first + i].right);
      }
      /* this node, as a child of the level above (in place: j <= first) */
      k[j] = (struct kid){ .addr = base + j * TREE_SIZE, .left = m ? k[first].left : 0,
                           .right = m ? k[first + m - 1].right : 0 };
    }
    n = nodes;
    level++;
  } while (n > 1);
  *root = k[0].addr;
  return stage_flush(s, err);
}

/* The local heap, the symbol table nodes (names sorted) and the B-tree. */
static int write_group(struct ck_h5f *f, uint64_t *btree, uint64_t *lheap, struct ck_err *err)
{
  size_t nsnod = (f->n + 2 * LEAF_K - 1) / (2 * LEAF_K);
  struct stage s = { .f = f, .p = malloc(STAGE) };
  struct kid *k = calloc(nsnod ? nsnod : 1, sizeof(*k));
  uint8_t prefix[32];
  uint64_t snod;
  int rc = 0;

  if (s.p == NULL || k == NULL) {
    rc = ck_err_set(err, -ENOMEM, "out of memory");
    goto out;
  }
  if (f->n > 1)
    qsort_r(f->r, f->n, sizeof(*f->r), cmp_rec, f);
  for (size_t i = 1; i < f->n; i++)
    if (cmp_rec(&f->r[i - 1], &f->r[i], f) == 0) {
      rc = ck_err_set(err, CK_EINVAL, "%s: two tensors map to the HDF5 name %s", f->path,
                      heap_name(f, f->r[i].name));
      goto out;
    }
  /* local heap: prefix, then its data right after it */
  *lheap = alloc(f, 32 + f->heap.len);
  memset(prefix, 0, sizeof(prefix));
  memcpy(prefix, "HEAP", 4);
  ck_put_fixed64(prefix + 8, f->heap.len);
  ck_put_fixed64(prefix + 16, 1); /* no free block */
  ck_put_fixed64(prefix + 24, *lheap + 32);
  if ((rc = put(f, prefix, 32, *lheap, err)) != 0 || (rc = put(f, f->heap.p, f->heap.len, *lheap + 32, err)) != 0)
    goto out;
  /* symbol table nodes, 2K entries each */
  s.at = snod = alloc(f, (uint64_t)nsnod * SNOD_SIZE);
  for (size_t j = 0; j < nsnod; j++) {
    size_t first = j * 2 * LEAF_K, m = f->n - first < 2 * LEAF_K ? f->n - first : 2 * LEAF_K;
    uint8_t *p = stage_take(&s, SNOD_SIZE, &rc, err);
    if (p == NULL)
      goto out;
    memcpy(p, "SNOD\1", 5);
    le16(p + 6, (uint16_t)m);
    for (size_t i = 0; i < m; i++) {
      ck_put_fixed64(p + 8 + ENTRY_SIZE * i, f->r[first + i].name);
      ck_put_fixed64(p + 16 + ENTRY_SIZE * i, f->r[first + i].ohdr);
    }
    k[j] = (struct kid){ .addr = snod + j * SNOD_SIZE, .left = j ? f->r[first - 1].name : 0,
                         .right = f->r[first + m - 1].name };
  }
  rc = write_tree(f, &s, k, nsnod, btree, err);
out:
  free(s.p);
  free(k);
  return rc;
}

int ck_h5f_finish(struct ck_h5f *f, struct ck_err *err)
{
  uint64_t btree = 0, lheap = 0, root;
  struct buf oh = { 0 };
  uint8_t sb[SB_SIZE], *p;
  int rc;

  if (f->failed) {
    if (err)
      *err = f->fail;
    rc = f->fail.code ? f->fail.code : -EIO;
    goto out;
  }
  if (f->open != 0) { /* (their object headers are not written: no file to publish) */
    rc = ck_err_set(err, CK_EINVAL, "%s: %zu datasets still open", f->path, f->open);
    goto out;
  }
  if ((rc = gcol_flush(f, err)) != 0 || (rc = write_group(f, &btree, &lheap, err)) != 0)
    goto out;
  /* the root's object header: its symbol table, then its attributes */
  if (buf_grow(&oh, 16) == NULL || (p = msg(&oh, MSG_STAB, 16, 0)) == NULL ||
      buf_grow(&oh, f->root.len) == NULL) {
    rc = ck_err_set(err, -ENOMEM, "out of memory");
    goto out;
  }
  p = oh.p + 16 + 8; /* (the buffer may have moved) */
  ck_put_fixed64(p, btree);
  ck_put_fixed64(p + 8, lheap);
  memcpy(oh.p + oh.len - f->root.len, f->root.p, f->root.len);
  {
    uint16_t nmsg = 1;
    for (size_t at = 0; at < f->root.len; at += 8 + (size_t)f->root.p[at + 2] + ((size_t)f->root.p[at + 3] << 8))
      nmsg++;
    oh.p[0] = 1;
    le16(oh.p + 2, nmsg);
    ck_put_fixed32(oh.p + 4, 1);
    ck_put_fixed32(oh.p + 8, (uint32_t)(oh.len - 16));
  }
  root = alloc(f, oh.len);
  if ((rc = put(f, oh.p, oh.len, root, err)) != 0)
    goto out;
  /* the superblock, last: until it is there, the file is no HDF5 file */
  memset(sb, 0, sizeof(sb));
  memcpy(sb, "\211HDF\r\n\032\n", 8);
  sb[13] = 8; /* size of offsets */
  sb[14] = 8; /* size of lengths */
  le16(sb + 16, LEAF_K);
  le16(sb + 18, NODE_K);
  ck_put_fixed64(sb + 24, 0);     /* base address */
  ck_put_fixed64(sb + 32, UNDEF); /* free-space info */
  ck_put_fixed64(sb + 40, f->eoa);
  ck_put_fixed64(sb + 48, UNDEF); /* driver information */
  ck_put_fixed64(sb + 56, 0);     /* root entry: name offset */
  ck_put_fixed64(sb + 64, root);
  ck_put_fixed32(sb + 72, 1); /* cached: the symbol table's addresses */
  ck_put_fixed64(sb + 80, btree);
  ck_put_fixed64(sb + 88, lheap);
  if ((rc = put(f, sb, sizeof(sb), 0, err)) != 0)
    goto out;
  if (ftruncate(f->fd, (off_t)f->eoa) != 0)
    rc = ck_err_set(err, -errno, "%s: truncate: %s", f->path, strerror(errno));
  else if (fsync(f->fd) != 0)
    rc = ck_err_set(err, -errno, "%s: fsync: %s", f->path, strerror(errno));
  else if (close(f->fd) != 0)
    rc = ck_err_set(err, -errno, "%s: close: %s", f->path, strerror(errno));
  else
    f->fd = -1;
out:
  buf_free(&oh);
  ck_h5f_abort(f);
  return rc;
}

void ck_h5f_abort(struct ck_h5f *f)
{
  if (f == NULL)
    return;
  if (f->fd >= 0)
    close(f->fd);
  for (int i = 0; i < CK_DT_COUNT; i++)
    free(f->type[i]);
  free(f->bool_type);
  buf_free(&f->heap);
  buf_free(&f->gcol);
  buf_free(&f->root);
  free(f->r);
  free(f->path);
  free(f);
}
