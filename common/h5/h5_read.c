/* HDF5 reader.
 *
 * Opening reads the root's attributes once (the layout evidence and Cerebras 0.5
 * metadata), walks the groups iteratively (depth-first in link order, at most
 * CK_H5_MAX_DEPTH levels, each group once) and classifies every dataset
 * (h5_classify.c): a tensor (its TensorFlow dtype decided by, in order, the tf_dtype
 * attribute, is_bfloat16, Cerebras 0.5 JSON metadata, then the HDF5 type, and
 * refused when they disagree), a non-tensor leaf (skipped and listed), or an error
 * naming the dataset. The layout (h5_detect.c) then decides how names are read.
 * Tensor bytes are produced in TensorFlow's stored layout: exact little-endian data
 * in contiguous storage by pread at the dataset's offset (checked against the file
 * size), everything else by H5Dread in blocks bounded by the caller's buffer. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blocks.h"
#include "coding.h"
#include "crc32c.h"
#include "dtype.h"
#include "fileio.h"
#include "h5.h"
#include "h5_chunk.h"
#include "h5_internal.h"
#include "util.h"


struct meta {
  char *key;  /* "<key>" of a "<key>.__metadata__" root attribute */
  int dtype;  /* from its JSON "dtypes", or -1 */
};

/* Names, paths and shapes of every tensor live in one arena of large blocks: a
 * checkpoint of 200,000 tensors then costs a few allocations per 256 KiB instead of
 * three per tensor interleaved with libhdf5's own (which fragmented the heap). */
struct arena_blk {
  struct arena_blk *next;
  size_t used, cap;
  max_align_t data[];
};

#define ARENA_BLOCK (256u << 10)

struct ck_h5r {
  hid_t file;
  int fd;
  uint64_t file_size;
  char *path;
  struct ck_h5_evidence ev;
  struct ck_h5_layout layout;
  struct meta *meta;  /* Cerebras 0.5 "<key>.__metadata__" attributes, sorted by key */
  size_t nmeta, metacap;
  int oom;            /* an allocation failed inside an HDF5 iteration callback */
  haddr_t *seen;      /* open-addressing set of group addresses already walked */
  size_t nseen, seencap;
  struct ck_h5_tensor *t;
  size_t n, cap;
  struct arena_blk *arena;
  char source_name[256];  /* root ckptd_source: the base name of the bundle it came from */
  char **skipped;
  size_t nskipped;
  char **vals;        /* Cerebras 0.5 values that live only in metadata: key, JSON, key, JSON ... */
  size_t nvals;
  char *spec;         /* root __spec__ (a torch tree spec), if a string */
  int spec_too_long;  /* __spec__ is a string longer than CK_H5_SPEC_MAX */
  struct ck_err *err;
  int threads;        /* compressed chunks: decoding workers */
  size_t budget;      /* and their buffers */
  struct ck_h5_ring ring;
  int ring_on;
  int chunk_fd;       /* fd when chunks may be pread at libhdf5's addresses (no user block), else -1 */
};

#define READ_THREADS_DEFAULT 2

void ck_h5r_set_threads(struct ck_h5r *r, int threads, size_t budget)
{
  r->threads = threads;
  r->budget = budget ? budget : CK_H5_BUDGET_DEFAULT;
}

int ck_h5_is_hdf5(const char *path)
{
  static const uint8_t sig[8] = { 0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n' };
  uint8_t b[8];
  int fd = open(path, O_RDONLY | O_CLOEXEC), found = 0;
  struct stat st;

  if (fd < 0)
    return 0;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
    for (uint64_t off = 0; !found && off + 8 <= (uint64_t)st.st_size && off <= (1u << 20); off = off ? off * 2 : 512)
      found = ck_pread_full(fd, b, 8, off) == 0 && memcmp(b, sig, 8) == 0;
  close(fd);
  return found;
}

/* n bytes from the arena, aligned for any type; NULL on ENOMEM. */
static void *arena_alloc(struct ck_h5r *r, size_t n)
{
  struct arena_blk *b = r->arena;
  size_t need = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
  void *p;

  if (b == NULL || b->cap - b->used < need) {
    size_t cap = need > ARENA_BLOCK ? need : ARENA_BLOCK;
    if ((b = malloc(sizeof(*b) + cap)) == NULL)
      return NULL;
    b->next = r->arena;
    b->used = 0;
    b->cap = cap;
    r->arena = b;
  }
  p = (char *)b->data + b->used;
  b->used += need;
  return p;
}

static char *arena_strdup(struct ck_h5r *r, const char *prefix, const char *s, size_t n)
{
  size_t pl = strlen(prefix);
  char *p = arena_alloc(r, pl + n + 1);

  if (p) {
    memcpy(p, prefix, pl);
    memcpy(p + pl, s, n);
    p[pl + n] = 0;
  }
  return p;
}

void ck_h5r_close(struct ck_h5r *r)
{
  if (r == NULL)
    return;
  if (r->ring_on)
    ck_h5_ring_free(&r->ring);
  while (r->arena) {
    struct arena_blk *next = r->arena->next;
    free(r->arena);
    r->arena = next;
  }
  for (size_t i = 0; i < r->nskipped; i++)
    free(r->skipped[i]);
  for (size_t i = 0; i < r->nmeta; i++)
    free(r->meta[i].key);
  for (size_t i = 0; i < 2 * r->nvals; i++)
    free(r->vals[i]);
  free(r->vals);
  free(r->spec);
  free(r->meta);
  free(r->seen);
  free(r->t);
  free(r->skipped);
  if (r->file >= 0)
    H5Fclose(r->file);
  if (r->fd >= 0)
    close(r->fd);
  free(r->path);
  free(r);
}

size_t ck_h5r_count(const struct ck_h5r *r) { return r->n; }
size_t ck_h5r_value_count(const struct ck_h5r *r) { return r->nvals; }
const char *ck_h5r_spec(const struct ck_h5r *r) { return r->spec; }
int ck_h5r_spec_too_long(const struct ck_h5r *r) { return r->spec_too_long; }

void ck_h5r_value(const struct ck_h5r *r, size_t i, const char **key, const char **json)
{
  *key = r->vals[2 * i];
  *json = r->vals[2 * i + 1];
}
const struct ck_h5_tensor *ck_h5r_tensor(const struct ck_h5r *r, size_t i) { return i < r->n ? &r->t[i] : NULL; }
size_t ck_h5r_skipped_count(const struct ck_h5r *r) { return r->nskipped; }
const char *ck_h5r_skipped(const struct ck_h5r *r, size_t i) { return i < r->nskipped ? r->skipped[i] : NULL; }
int ck_h5r_fd(const struct ck_h5r *r) { return r->fd; }
const char *ck_h5r_path(const struct ck_h5r *r) { return r->path; }
int ck_h5r_is_ckptd(const struct ck_h5r *r) { return r->ev.ckptd; }
const char *ck_h5r_source_name(const struct ck_h5r *r) { return r->ev.ckptd ? r->source_name : ""; }

static void skip(struct ck_h5r *r, const char *path, const char *why)
{
  char **ns = realloc(r->skipped, (r->nskipped + 1) * sizeof(char *));
  char *s = ck_asprintf("%s (%s)", path, why);

  if (ns == NULL || s == NULL) {
    free(s);
    if (ns)
      r->skipped = ns;
    return;
  }
  r->skipped = ns;
  r->skipped[r->nskipped++] = s;
}

/* ---- root attributes: the evidence of the layout, and Cerebras 0.5 metadata ---- */

static int cmp_meta(const void *pa, const void *pb)
{
  return strcmp(((const struct meta *)pa)->key, ((const struct meta *)pb)->key);
}

static int meta_dtype_of(const char *json)
{
  char first[64];

  if (ck_json_first_string(json, strlen(json), "dtypes", first, sizeof(first)) != 0)
    return -1;
  if (strcmp(first, "torch.bfloat16") == 0)
    return CK_DT_BFLOAT16;
  if (strcmp(first, "torch.float16") == 0)
    return CK_DT_HALF;
  if (strcmp(first, "torch.bool") == 0)
    return CK_DT_BOOL;
  return -1;
}

static int add_meta(struct ck_h5r *r, hid_t loc, const char *name, size_t n)
{
  char json[4096];
  struct ck_h5_attr v;
  struct meta *m;

  if (r->nmeta == r->metacap) {
    size_t cap = r->metacap ? r->metacap * 2 : 64;
    if ((m = realloc(r->meta, cap * sizeof(*m))) == NULL)
      return -ENOMEM;
    r->meta = m;
    r->metacap = cap;
  }
  m = &r->meta[r->nmeta];
  if ((m->key = strndup(name, n - 13)) == NULL)
    return -ENOMEM;
  m->dtype = ck_h5_attr_read(loc, name, &v, json, sizeof(json)) == CK_H5A_STR && !v.truncated ? meta_dtype_of(json) : -1;
  r->nmeta++;
  return 0;
}

/* One pass over the root's attributes (H5Aiterate2): linear in their number. */
static herr_t root_attr(hid_t loc, const char *name, const H5A_info_t *info, void *data)
{
  struct ck_h5r *r = data;
  size_t n = strlen(name);
  struct ck_h5_attr v;
  char s[64];

  (void)info;
  if (n > 13 && strcmp(name + n - 13, ".__metadata__") == 0) {
    r->ev.metadata = 1;
    if (add_meta(r, loc, name, n) != 0) {
      r->oom = 1;
      return -1;
    }
  } else if (strcmp(name, "ckptd_version") == 0) {
    r->ev.ckptd = 1;
  } else if (strcmp(name, "ckptd_source") == 0) {
    if (ck_h5_attr_read(loc, name, &v, r->source_name, sizeof(r->source_name)) != CK_H5A_STR)
      r->source_name[0] = 0;
  } else if (strcmp(name, "__spec__") == 0) {
    r->ev.spec = 1;
  } else if (strcmp(name, "__SUCCESS__") == 0) {
    r->ev.success = ck_h5_attr_read(loc, name, &v, NULL, 0) == CK_H5A_INT && v.i != 0;
  } else if (strcmp(name, "__version__") == 0) {
    switch (ck_h5_attr_read(loc, name, &v, s, sizeof(s))) {
    case CK_H5A_INT: r->ev.version = (double)v.i; r->ev.has_version_number = 1; break;
    case CK_H5A_FLOAT: r->ev.version = v.d; r->ev.has_version_number = v.d == v.d; break;
    case CK_H5A_STR: r->ev.has_version_number = ck_h5_version_number(s, &r->ev.version) == 0; break;
    default: break; /* arrays (auto-FOX's [0, 1, 2]) are no version we know */
    }
  }
  return 0;
}

static int root_evidence(struct ck_h5r *r, hid_t root)
{
  hsize_t idx = 0;

  if (H5Aiterate2(root, H5_INDEX_NAME, H5_ITER_INC, &idx, root_attr, r) < 0) {
    if (r->oom)
      return ck_err_set(r->err, -ENOMEM, "out of memory");
    return ck_h5_err(r->err, CK_EFORMAT, "%s: cannot read the root group's attributes", r->path);
  }
  if (r->nmeta > 1)
    qsort(r->meta, r->nmeta, sizeof(*r->meta), cmp_meta);
  return 0;
}

static int meta_lookup(const struct ck_h5r *r, const char *key)
{
  struct meta k = { (char *)key, 0 }, *m;

  m = r->nmeta ? bsearch(&k, r->meta, r->nmeta, sizeof(*r->meta), cmp_meta) : NULL;
  return m ? m->dtype : -1;
}

/* ---- classification of one dataset ---- */

/* Attributes that name the dtype; -1 (with the tf_dtype text in named) if they contradict the stored type. */
/* The attributes the walk reads on a dataset, found in one pass (H5Aiterate2) rather
 * than a lookup each: most are absent from most files, and each absent name costs a
 * scan of the object header. */
enum { A_TF_DTYPE = 1, A_IS_BF16 = 2, A_TF_CRC = 4, A_ORDER = 8, A_H5_TYPE = 16 };

static herr_t attr_seen(hid_t loc, const char *name, const H5A_info_t *info, void *data)
{
  static const struct {
    const char *name;
    unsigned bit;
  } known[] = { { "tf_dtype", A_TF_DTYPE }, { "is_bfloat16", A_IS_BF16 }, { "tf_crc32c", A_TF_CRC },
                { "ckptd_order", A_ORDER }, { "__H5_TYPE__", A_H5_TYPE } };

  (void)loc;
  (void)info;
  for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
    if (strcmp(name, known[i].name) == 0)
      *(unsigned *)data |= known[i].bit;
  return 0;
}

static unsigned attrs_of(hid_t ds)
{
  unsigned m = 0;
  hsize_t idx = 0;

  if (H5Aiterate2(ds, H5_INDEX_NAME, H5_ITER_NATIVE, &idx, attr_seen, &m) < 0) {
    H5Eclear2(H5E_DEFAULT);
    return ~0u; /* cannot tell: look each one up */
  }
  return m;
}

static int refine_dtype(struct ck_h5r *r, hid_t ds, hid_t type, const char *key, int dt, int kind, char *named,
                        size_t nlen, unsigned attrs)
{
  long long flag;
  int tf, md;

  if ((attrs & A_TF_DTYPE) && ck_h5_attr_get_str(ds, "tf_dtype", named, nlen) == 0 && (tf = ck_dtype_parse(named)) > 0)
    return ck_h5_dtype_fits(tf, type, kind) ? tf : -1;
  named[0] = 0;
  if ((attrs & A_IS_BF16) && ck_h5_attr_get_int(ds, "is_bfloat16", &flag) == 0 && flag &&
      ck_h5_dtype_fits(CK_DT_BFLOAT16, type, kind))
    return CK_DT_BFLOAT16;
  if ((md = meta_lookup(r, key)) > 0 && ck_h5_dtype_fits(md, type, kind))
    return md;
  return dt;
}

static int add_tensor(struct ck_h5r *r, struct ck_h5_tensor *t)
{
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap + r->cap / 2 : 64; /* 1.5x: less slack for huge listings */
    struct ck_h5_tensor *nt = realloc(r->t, cap * sizeof(*nt));
    if (nt == NULL)
      return -ENOMEM;
    r->t = nt;
    r->cap = cap;
  }
  r->t[r->n++] = *t;
  return 0;
}

/* Raw pread is allowed only for exact layouts in contiguous, unfiltered storage of this file. */
static uint64_t raw_offset(const struct ck_h5r *r, hid_t ds, hid_t dcpl, int exact, const struct ck_h5_tensor *t)
{
  int contiguous = H5Pget_layout(dcpl) == H5D_CONTIGUOUS && H5Pget_nfilters(dcpl) == 0 &&
                   H5Pget_external_count(dcpl) == 0;
  haddr_t off = H5Dget_offset(ds);

  H5Eclear2(H5E_DEFAULT);
  if (!exact || !contiguous || r->fd < 0 || off == HADDR_UNDEF || t->kind != CK_H5K_FIXED || t->nelem == 0)
    return 0;
  return (uint64_t)off;
}

static int has_escape(const char *s)
{
  for (; *s; s++)
    if (s[0] == '%' && ck_hexval(s[1]) >= 0 && ck_hexval(s[2]) >= 0)
      return 1;
  return 0;
}

/* Cerebras' own attributes on root-level datasets are evidence of its legacy layout. */
static void dataset_evidence(struct ck_h5r *r, hid_t ds, const char *key, unsigned attrs)
{
  if (strchr(key, '/') != NULL)
    return;
  if (has_escape(key))
    r->ev.escaped_names = 1;
  if (!r->ev.cerebras_marks && (attrs & (A_H5_TYPE | A_IS_BF16)) &&
      (H5Aexists(ds, "__H5_TYPE__") > 0 || H5Aexists(ds, "is_bfloat16") > 0))
    r->ev.cerebras_marks = 1;
  H5Eclear2(H5E_DEFAULT);
}

static int shape_of(struct ck_h5r *r, hid_t space, const char *path, struct ck_h5_tensor *t)
{
  H5S_class_t sc = H5Sget_simple_extent_type(space);
  hsize_t hd[CK_MAX_RANK];
  int rank = sc == H5S_SCALAR ? 0 : H5Sget_simple_extent_ndims(space);

  if (rank < 0 || rank > CK_MAX_RANK)
    return ck_err_set(r->err, CK_EUNSUP, "%s: dataset %s: rank %d is not supported", r->path, path, rank);
  if (rank > 0 && H5Sget_simple_extent_dims(space, hd, NULL) != rank)
    return ck_h5_err(r->err, CK_EFORMAT, "%s: dataset %s: cannot read its shape", r->path, path);
  t->rank = rank;
  t->nelem = 1;
  if ((t->dims = arena_alloc(r, ((size_t)rank + 1) * sizeof(int64_t))) == NULL)
    return ck_err_set(r->err, -ENOMEM, "out of memory");
  for (int d = 0; d < rank; d++) {
    t->dims[d] = (int64_t)hd[d];
    if (hd[d] != 0 && t->nelem > (uint64_t)INT64_MAX / 16 / hd[d])
      return ck_err_set(r->err, CK_EFORMAT, "%s: dataset %s: element count overflows", r->path, path);
    t->nelem *= hd[d];
  }
  return 0;
}

/* dtype, from the stored type and the attributes; how its bytes may be read. */
static int type_of(struct ck_h5r *r, hid_t ds, hid_t type, const char *path, const char *key, struct ck_h5_tensor *t,
                   int *exact, unsigned attrs)
{
  char named[64];
  const char *why;
  int dt = ck_h5_dtype_of_type(type, &t->kind, &t->file_esize);
  hid_t mt;

  *exact = 1;
  if (dt < 0)
    return ck_err_set(r->err, CK_EUNSUP, "%s: dataset %s: unsupported element type (%s, %zu bytes)", r->path, path,
                      ck_h5_class_name(H5Tget_class(type)), H5Tget_size(type));
  if ((t->dtype = refine_dtype(r, ds, type, key, dt, t->kind, named, sizeof(named), attrs)) < 0)
    return ck_err_set(r->err, CK_EFORMAT,
                      "%s: dataset %s: its tf_dtype attribute (%s) does not match its stored type (%s%s, %zu bytes)",
                      r->path, path, named, H5Tget_class(type) == H5T_INTEGER && H5Tget_sign(type) == H5T_SGN_NONE
                      ? "unsigned " : "", ck_h5_class_name(H5Tget_class(type)), H5Tget_size(type));
  if (t->kind != CK_H5K_FIXED)
    return 0;
  if (ck_dtype_size(t->dtype) == 0)
    return ck_err_set(r->err, CK_EUNSUP, "%s: dataset %s: unsupported element type", r->path, path);
  if ((mt = ck_h5_mem_type(type, t->dtype, exact, &why)) < 0)
    return ck_err_set(r->err, CK_EUNSUP, "%s: dataset %s: %s as %s (%zu-byte %s); refused", r->path, path, why,
                      ck_dtype_name(t->dtype), H5Tget_size(type), ck_h5_class_name(H5Tget_class(type)));
  H5Tclose(mt);
  return 0;
}

static int classify(struct ck_h5r *r, hid_t ds, const char *path, const char *key)
{
  struct ck_h5_tensor t = { 0 };
  hid_t type = H5Dget_type(ds), space = H5Dget_space(ds), dcpl = H5Dget_create_plist(ds);
  unsigned attrs = attrs_of(ds);
  char htype[64] = "";
  long long v;
  int rc, exact;

  dataset_evidence(r, ds, key, attrs);
  if (H5Sget_simple_extent_type(space) == H5S_NULL) {
    if (attrs & A_H5_TYPE)
      ck_h5_attr_get_str(ds, "__H5_TYPE__", htype, sizeof(htype));
    skip(r, path, htype[0] ? htype : "empty dataset");
    rc = 0;
    goto out;
  }
  if (dcpl < 0) {
    rc = ck_h5_err(r->err, CK_EFORMAT, "%s: dataset %s: cannot read its storage layout", r->path, path);
    goto out;
  }
  if ((rc = shape_of(r, space, path, &t)) != 0 || (rc = type_of(r, ds, type, path, key, &t, &exact, attrs)) != 0 ||
      (rc = ck_h5_check_storage(ds, dcpl, r->path, r->file_size, path, t.kind, t.nelem, t.file_esize, r->err)) != 0)
    goto out;
  if ((t.path = arena_strdup(r, "", path, strlen(path))) == NULL) {
    rc = ck_err_set(r->err, -ENOMEM, "out of memory");
    goto out;
  }
  /* the name is the key, which the path already holds after its '/' (unless unquoted later) */
  t.nlen = strlen(key);
  t.name = (uint8_t *)t.path + strlen(path) - t.nlen;
  if ((t.has_crc = (attrs & A_TF_CRC) && ck_h5_attr_get_int(ds, "tf_crc32c", &v) == 0))
    t.tf_crc32c = (uint32_t)v;
  if ((t.has_order = (attrs & A_ORDER) && ck_h5_attr_get_int(ds, "ckptd_order", &v) == 0 && v >= 0))
    t.order = (uint64_t)v;
  t.raw_offset = raw_offset(r, ds, dcpl, exact, &t);
  if (t.raw_offset && (t.raw_offset > r->file_size || t.nelem * t.file_esize > r->file_size - t.raw_offset)) {
    rc = ck_err_set(r->err, CK_ETRUNC, "%s: dataset %s: data at offset %llu lies past the end of the file (truncated?)",
                    r->path, path, (unsigned long long)t.raw_offset);
    goto out;
  }
  if ((rc = add_tensor(r, &t)) != 0)
    ck_err_set(r->err, rc, "out of memory");
out: /* what t took from the arena goes with the reader */
  if (dcpl >= 0)
    H5Pclose(dcpl);
  H5Sclose(space);
  H5Tclose(type);
  return rc;
}

/* ---- the walk: iterative, depth-first in link order ---- */

/* Deeper nesting is refused (no checkpoint layout nests names this deep). */
#define CK_H5_MAX_DEPTH 1024

struct child {
  size_t off;        /* its name in the frame's name buffer: 200,000 links, no 200,000 mallocs */
  haddr_t addr;      /* a hard link's object: opened by address, not looked up by name again */
  int hard;
};

struct frame {
  hid_t g;
  size_t plen;       /* length of the group's key (its path without the leading '/') */
  struct child *c;
  size_t n, cap, next;
  char *names;       /* the links' names, NUL-separated */
  size_t nused, ncap;
};

static herr_t list_child(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
  struct frame *f = data;

  (void)g;
  if (f->n == f->cap) {
    size_t cap = f->cap ? f->cap * 2 : 16;
    struct child *c = realloc(f->c, cap * sizeof(*c));
    if (c == NULL)
      return -1;
    f->c = c;
    f->cap = cap;
  }
  {
    size_t len = strlen(name) + 1;
    if (f->nused + len > f->ncap) {
      size_t ncap = (f->ncap ? f->ncap * 2 : 4096) + len;
      char *nn = realloc(f->names, ncap);
      if (nn == NULL)
        return -1;
      f->names = nn;
      f->ncap = ncap;
    }
    memcpy(f->names + f->nused, name, len);
    f->c[f->n].off = f->nused;
    f->nused += len;
  }
  f->c[f->n].hard = info->type == H5L_TYPE_HARD;
  f->c[f->n++].addr = info->type == H5L_TYPE_HARD ? info->u.address : HADDR_UNDEF;
  return 0;
}

/* A group's links in creation order where tracked, else name order (as h5py lists them). */
static int list_group(struct ck_h5r *r, struct frame *f, const char *key)
{
  hid_t gcpl = H5Gget_create_plist(f->g);
  unsigned flags = 0;
  hsize_t idx = 0;
  herr_t st;

  if (gcpl >= 0) {
    H5Pget_link_creation_order(gcpl, &flags);
    H5Pclose(gcpl);
  }
  st = H5Literate(f->g, flags & H5P_CRT_ORDER_INDEXED ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME, H5_ITER_INC, &idx,
                  list_child, f);
  if (st < 0)
    return ck_h5_err(r->err, CK_EFORMAT, "%s: cannot list group /%s", r->path, key);
  if (r->n + f->n > r->cap && f->n > 64) { /* a big group: room for all its tensors at once, no slack */
    struct ck_h5_tensor *nt = realloc(r->t, (r->n + f->n) * sizeof(*nt));
    if (nt != NULL) {
      r->t = nt;
      r->cap = r->n + f->n;
    }
  }
  return 0;
}

static void frame_free(struct frame *f)
{
  free(f->names);
  free(f->c);
  if (f->g >= 0)
    H5Gclose(f->g);
  memset(f, 0, sizeof(*f));
  f->g = H5I_INVALID_HID;
}

/* Groups reached through a second hard link are listed once (links may form cycles). */
static int seen_group(struct ck_h5r *r, haddr_t addr)
{
  size_t mask, i;

  if (r->nseen * 2 >= r->seencap) {
    size_t cap = r->seencap ? r->seencap * 2 : 64;
    haddr_t *ns = malloc(cap * sizeof(*ns)), *old = r->seen;
    size_t oldcap = r->seencap;
    if (ns == NULL)
      return -ENOMEM;
    for (i = 0; i < cap; i++)
      ns[i] = HADDR_UNDEF;
    r->seen = ns;
    r->seencap = cap;
    r->nseen = 0;
    for (i = 0; i < oldcap; i++)
      if (old[i] != HADDR_UNDEF)
        seen_group(r, old[i]);
    free(old);
  }
  mask = r->seencap - 1;
  for (i = (size_t)(addr * 0x9E3779B97F4A7C15ull >> 17) & mask; r->seen[i] != HADDR_UNDEF; i = (i + 1) & mask)
    if (r->seen[i] == addr)
      return 1;
  r->seen[i] = addr;
  r->nseen++;
  return 0;
}

/* One link of group g: classify a dataset, skip what is not one; *sub gets a group to enter. */
static int visit(struct ck_h5r *r, hid_t g, const struct child *c, const char *key, hid_t *sub)
{
  char *path = ck_asprintf("/%s", key);
  hid_t obj = H5I_INVALID_HID;
  H5O_info_t oi;
  int rc = 0;

  *sub = H5I_INVALID_HID;
  if (path == NULL) {
    rc = ck_err_set(r->err, -ENOMEM, "out of memory");
  } else if (!c->hard) {
    skip(r, path, "link");
  } else if ((obj = H5Oopen_by_addr(g, c->addr)) < 0) { /* one open: its kind comes with it */
    rc = ck_h5_err(r->err, CK_EFORMAT, "%s: %s: cannot read object header", r->path, path);
  } else if (H5Iget_type(obj) == H5I_GROUP) {
    if (H5Oget_info2(obj, &oi, H5O_INFO_BASIC) < 0) /* basic: no attribute scan */
      rc = ck_h5_err(r->err, CK_EFORMAT, "%s: %s: cannot read object header", r->path, path);
    else if ((rc = seen_group(r, oi.addr)) > 0)
      skip(r, path, "group already listed through another link");
    else if (rc < 0)
      ck_err_set(r->err, rc, "out of memory");
    else
      *sub = obj, obj = H5I_INVALID_HID; /* the caller's now */
    rc = rc > 0 ? 0 : rc;
  } else if (H5Iget_type(obj) == H5I_DATASET) {
    rc = classify(r, obj, path, key);
  } else {
    skip(r, path, "not a dataset");
  }
  if (obj >= 0)
    H5Oclose(obj);
  free(path);
  return rc;
}

static int key_set(char **key, size_t *cap, size_t plen, const char *name)
{
  size_t n = strlen(name), need = plen + 1 + n + 1;

  if (need > *cap) {
    char *k = realloc(*key, need * 2);
    if (k == NULL)
      return -ENOMEM;
    *key = k;
    *cap = need * 2;
  }
  if (plen > 0)
    (*key)[plen++] = '/';
  memcpy(*key + plen, name, n + 1);
  return 0;
}

static int walk(struct ck_h5r *r, hid_t root)
{
  struct frame *st = calloc(CK_H5_MAX_DEPTH, sizeof(*st));
  size_t depth = 0, kcap = 256;
  char *key = calloc(1, kcap);
  int rc = 0;

  if (st == NULL || key == NULL) {
    rc = ck_err_set(r->err, -ENOMEM, "out of memory");
    goto out;
  }
  st[depth].g = H5Oopen(root, ".", H5P_DEFAULT);
  if (st[depth++].g < 0 || (rc = list_group(r, &st[0], "")) != 0) {
    rc = rc ? rc : ck_h5_err(r->err, CK_EFORMAT, "%s: cannot open the root group", r->path);
    goto out;
  }
  while (depth > 0 && rc == 0) {
    struct frame *f = &st[depth - 1];
    hid_t sub;
    if (f->next == f->n) {
      frame_free(f);
      depth--;
      continue;
    }
    const struct child *c = &f->c[f->next++];
    if ((rc = key_set(&key, &kcap, f->plen, f->names + c->off)) != 0) {
      ck_err_set(r->err, rc, "out of memory");
      break;
    }
    if ((rc = visit(r, f->g, c, key, &sub)) != 0 || sub < 0)
      continue;
    if (depth == CK_H5_MAX_DEPTH) {
      H5Gclose(sub);
      rc = ck_err_set(r->err, CK_ELIMIT, "%s: groups nested deeper than %d levels (at /%.60s...)", r->path,
                      CK_H5_MAX_DEPTH, key);
      break;
    }
    st[depth].g = sub;
    st[depth].plen = strlen(key);
    rc = list_group(r, &st[depth++], key);
  }
out:
  while (st && depth > 0)
    frame_free(&st[--depth]);
  free(st);
  free(key);
  return rc;
}

/* ---- after the walk ---- */

static int cmp_order(const void *pa, const void *pb)
{
  const struct ck_h5_tensor *a = pa, *b = pb;

  return a->order < b->order ? -1 : a->order > b->order;
}

static int cmp_name_ptr(const void *pa, const void *pb)
{
  return strcmp(*(const char *const *)pa, *(const char *const *)pb);
}

/* A value that lives only in metadata: keep its JSON (bounded) for the pipeline. */
static int add_value(struct ck_h5r *r, hid_t root, const char *key)
{
  char *name = ck_asprintf("%s.__metadata__", key), *json = malloc(CK_H5_VALUE_JSON_MAX), **v;
  struct ck_h5_attr a;
  int rc = 0;

  if (name == NULL || json == NULL) {
    rc = -ENOMEM;
    goto out;
  }
  if (ck_h5_attr_read(root, name, &a, json, CK_H5_VALUE_JSON_MAX) != CK_H5A_STR || a.truncated) {
    char *path = ck_asprintf("/%s", key);
    if (path)
      skip(r, path, "value only in metadata, unreadable (not a string of at most 64 KiB)");
    free(path);
    goto out;
  }
  {
    char *path = ck_asprintf("/%s", key); /* listed too: a TF bundle has no place for it */
    if (path)
      skip(r, path, "value only in metadata");
    free(path);
  }
  if ((v = realloc(r->vals, 2 * (r->nvals + 1) * sizeof(*v))) == NULL) {
    rc = -ENOMEM;
    goto out;
  }
  r->vals = v;
  if ((v[2 * r->nvals] = strdup(key)) == NULL || (v[2 * r->nvals + 1] = strdup(json)) == NULL) {
    free(v[2 * r->nvals]);
    rc = -ENOMEM;
    goto out;
  }
  r->nvals++;
out:
  free(name);
  free(json);
  return rc;
}

/* 1 if the walk skipped a dataset at /key (listed as "/key (why)"): its metadata is no value. */
static int was_skipped(const struct ck_h5r *r, const char *key)
{
  size_t kl = strlen(key);

  for (size_t i = 0; i < r->nskipped; i++) {
    const char *s = r->skipped[i];
    if (s[0] == '/' && strncmp(s + 1, key, kl) == 0 && strncmp(s + 1 + kl, " (", 2) == 0)
      return 1;
  }
  return 0;
}

/* Cerebras 0.5 keeps scalars, strings and None only in "<key>.__metadata__": collect them. */
static int metadata_only(struct ck_h5r *r, hid_t root)
{
  const char **names;
  int rc = 0;

  if (r->nmeta == 0)
    return 0;
  if ((names = malloc((r->n ? r->n : 1) * sizeof(*names))) == NULL)
    return ck_err_set(r->err, -ENOMEM, "out of memory");
  for (size_t k = 0; k < r->n; k++)
    names[k] = (const char *)r->t[k].name;
  qsort(names, r->n, sizeof(*names), cmp_name_ptr);
  for (size_t i = 0; i < r->nmeta && rc == 0; i++) {
    const char *key = r->meta[i].key;
    if ((r->n == 0 || bsearch(&key, names, r->n, sizeof(*names), cmp_name_ptr) == NULL) && !was_skipped(r, key))
      rc = add_value(r, root, key);
  }
  free(names);
  return rc ? ck_err_set(r->err, rc, "out of memory") : 0;
}

/* The root's __spec__ (a torch tree spec), when it is a string that fits. */
static int read_spec(struct ck_h5r *r, hid_t root)
{
  struct ck_h5_attr a;
  char *buf;
  int rc = 0;

  if (!r->ev.spec)
    return 0;
  if ((buf = malloc(CK_H5_SPEC_MAX)) == NULL)
    return ck_err_set(r->err, -ENOMEM, "out of memory");
  switch (ck_h5_attr_read(root, "__spec__", &a, buf, CK_H5_SPEC_MAX)) {
  case CK_H5A_STR:
    if (a.truncated) /* kept apart from the listing: a reader of the tree refuses the file */
      r->spec_too_long = 1;
    else if ((r->spec = strdup(buf)) == NULL)
      rc = ck_err_set(r->err, -ENOMEM, "out of memory");
    break;
  default: /* Cerebras legacy: a pickled spec, opaque to us */
    skip(r, "/__spec__", "not a JSON tree spec: the tree structure is not restored");
    break;
  }
  free(buf);
  return rc;
}

/* ckptd's nested layout records the data order that its groups scatter. */
static void sort_by_order(struct ck_h5r *r)
{
  if (r->n < 2)
    return;
  for (size_t i = 0; i < r->n; i++)
    if (!r->t[i].has_order)
      return;
  qsort(r->t, r->n, sizeof(*r->t), cmp_order);
}

/* Root-level names of the quote()-escaped layouts become tensor names. */
static int unquote_names(struct ck_h5r *r)
{
  for (size_t i = 0; i < r->n; i++) {
    struct ck_h5_tensor *t = &r->t[i];
    uint8_t *name;
    size_t len;
    if (strchr((const char *)t->name, '/') != NULL)
      continue;
    if (ck_h5_unquote((const char *)t->name, &name, &len) != 0)
      return ck_err_set(r->err, -ENOMEM, "out of memory");
    t->name = (uint8_t *)arena_strdup(r, "", (const char *)name, len);
    free(name);
    if (t->name == NULL)
      return ck_err_set(r->err, -ENOMEM, "out of memory");
    t->nlen = len;
  }
  return 0;
}

/* Gather the evidence, walk, decide the layout, and finish the listing. */
static int load(struct ck_h5r *r)
{
  hid_t root = H5Gopen2(r->file, "/", H5P_DEFAULT);
  int rc;

  if (root < 0)
    return ck_h5_err(r->err, CK_EFORMAT, "%s: cannot open the root group", r->path);
  if ((rc = root_evidence(r, root)) == 0)
    rc = walk(r, root);
  if (rc != 0)
    goto out;
  ck_h5_detect(&r->ev, &r->layout);
  if (r->layout.refuse) { /* the only refusal: a save not finished (no __SUCCESS__) */
    rc = ck_err_set(r->err, CK_EINCOMPLETE, "%s: %s", r->path, r->layout.refuse);
    goto out;
  }
  if (r->layout.unquote_root && (rc = unquote_names(r)) != 0)
    goto out;
  if ((rc = metadata_only(r, root)) != 0 || (rc = read_spec(r, root)) != 0)
    goto out;
  sort_by_order(r);
out:
  H5Gclose(root);
  return rc;
}

static struct ck_h5r *reader_new(const char *path, struct ck_err *err)
{
  struct ck_h5r *r = calloc(1, sizeof(*r));

  ck_h5_init();
  if (r == NULL || (r->path = strdup(path)) == NULL) {
    free(r);
    ck_err_set(err, -ENOMEM, "out of memory");
    return NULL;
  }
  r->err = err;
  r->file = H5I_INVALID_HID;
  r->fd = -1;
  r->chunk_fd = -1;
  r->threads = READ_THREADS_DEFAULT;
  r->budget = CK_H5_BUDGET_DEFAULT;
  return r;
}

static int finish_open(struct ck_h5r *r, struct ck_h5r **out)
{
  int rc = load(r);

  if (rc != 0) {
    ck_h5r_close(r);
    return rc;
  }
  r->err = NULL;
  *out = r;
  return 0;
}

int ck_h5r_open(const char *path, struct ck_h5r **out, struct ck_err *err)
{
  struct ck_h5r *r;
  struct stat st;
  hid_t fapl;
  int rc;

  *out = NULL;
  if ((r = reader_new(path, err)) == NULL)
    return -ENOMEM;
  if ((r->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(r->fd, &st) != 0) {
    rc = ck_err_set(err, errno == ENOENT ? CK_ENOTFOUND : -errno, "%s: %s", path, strerror(errno));
    goto fail;
  }
  r->file_size = (uint64_t)st.st_size;
  if (!ck_h5_is_hdf5(path)) {
    rc = ck_err_set(err, CK_EFORMAT, "%s: not an HDF5 file (no HDF5 signature)", path);
    goto fail;
  }
  fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl >= 0)
    ck_h5_limit_cache(fapl); /* memory bounded whatever the number of datasets */
  r->file = H5Fopen(path, H5F_ACC_RDONLY, fapl >= 0 ? fapl : H5P_DEFAULT);
  if (fapl >= 0)
    H5Pclose(fapl);
  if (r->file < 0) {
    rc = ck_h5_err(err, CK_EFORMAT, "%s: cannot open as HDF5 (truncated or corrupt?)", path);
    goto fail;
  }
  {
    /* chunk addresses are relative to the superblock: with a user block, leave the reads to libhdf5 */
    hid_t fcpl = H5Fget_create_plist(r->file);
    hsize_t ub = 1;
    if (fcpl >= 0 && H5Pget_userblock(fcpl, &ub) >= 0 && ub == 0)
      r->chunk_fd = r->fd;
    if (fcpl >= 0)
      H5Pclose(fcpl);
    H5Eclear2(H5E_DEFAULT);
  }
  return finish_open(r, out);
fail:
  ck_h5r_close(r);
  return rc;
}

int ck_h5r_open_image(const void *image, size_t len, const char *name, struct ck_h5r **out, struct ck_err *err)
{
  struct ck_h5r *r;
  hid_t fapl;
  int rc;

  *out = NULL;
  if ((r = reader_new(name, err)) == NULL)
    return -ENOMEM;
  r->file_size = len;
  fapl = H5Pcreate(H5P_FILE_ACCESS);
  /* the core driver on a copy of the bytes, never written back */
  if (fapl < 0 || H5Pset_fapl_core(fapl, 1 << 16, 0) < 0 || H5Pset_file_image(fapl, (void *)image, len) < 0 ||
      (r->file = H5Fopen(name, H5F_ACC_RDONLY, fapl)) < 0) {
    rc = ck_h5_err(err, CK_EFORMAT, "%s: cannot open as HDF5 (truncated or corrupt?)", name);
    if (fapl >= 0)
      H5Pclose(fapl);
    ck_h5r_close(r);
    return rc;
  }
  H5Pclose(fapl);
  return finish_open(r, out);
}

/* ---- streaming in TensorFlow's layout ---- */

/* A single string or variant element larger than this is refused: a batch holds at
 * most the caller's buffer size of element bytes, or one element up to this size. */
#define CK_H5_ELEM_MAX (64u << 20)
#define BATCH_MAX 4096

struct emitter {
  uint8_t *buf;
  size_t cap, len;
  ck_chunk_fn fn;
  void *ctx;
};

static int emit(struct emitter *e, const void *data, size_t n)
{
  const uint8_t *p = data;
  int rc;

  while (n > 0) { /* (an empty element may come with a NULL pointer) */
    size_t take = e->cap - e->len < n ? e->cap - e->len : n;
    memcpy(e->buf + e->len, p, take);
    e->len += take;
    p += take;
    n -= take;
    if (e->len == e->cap) {
      if ((rc = e->fn(e->ctx, e->buf, e->len)) != 0)
        return rc;
      e->len = 0;
    }
  }
  return 0;
}

static int emit_flush(struct emitter *e)
{
  int rc = 0;

  if (e->len > 0)
    rc = e->fn(e->ctx, e->buf, e->len);
  e->len = 0;
  return rc;
}

static int read_sel(struct ck_h5r *r, hid_t ds, int rank, const uint64_t *start, const uint64_t *count, hid_t mt,
                    hid_t dxpl, void *out)
{
  hsize_t s[CK_MAX_RANK], c[CK_MAX_RANK];
  hid_t fspace = H5Dget_space(ds), mspace;
  herr_t st;

  (void)r;
  if (rank == 0) {
    mspace = H5Screate(H5S_SCALAR);
  } else {
    for (int d = 0; d < rank; d++) {
      s[d] = start[d];
      c[d] = count[d];
    }
    H5Sselect_hyperslab(fspace, H5S_SELECT_SET, s, NULL, c, NULL);
    mspace = H5Screate_simple(rank, c, NULL);
  }
  st = H5Dread(ds, mt, mspace, fspace, dxpl, out);
  H5Sclose(mspace);
  H5Sclose(fspace);
  return st < 0 ? -1 : 0;
}

static int read_failed(struct ck_h5r *r, const struct ck_h5_tensor *t, struct ck_err *err)
{
  return ck_h5_err(err, CK_EFORMAT, "%s: %s: read failed (corrupt, truncated, or a filter is missing)", r->path,
                   t->path);
}

/* A decoded chunk goes to the caller as it is when nothing is pending and it fits
 * the caller's buffer size (callers only read the bytes): one copy fewer. */
static int emit_cb(void *ctx, const void *p, size_t n)
{
  struct emitter *e = ctx;

  if (e->len == 0 && n <= e->cap)
    return e->fn(e->ctx, p, n);
  return emit(e, p, n);
}

/* A filtered dataset whose pipeline h5_chunk.c runs: its chunks are read raw and
 * decoded by the ring's workers. 1 when it is not such a dataset (read it through
 * libhdf5), else 0 or the error. */
static int stream_chunks(struct ck_h5r *r, hid_t ds, const struct ck_h5_tensor *t, void *buf, size_t bufsize,
                         ck_chunk_fn fn, void *ctx, struct ck_err *err)
{
  struct emitter e = { .buf = buf, .cap = bufsize, .fn = fn, .ctx = ctx };
  hsize_t chunk[H5S_MAX_RANK];
  struct ck_h5_codec c;
  hid_t dcpl = H5Dget_create_plist(ds);
  uint64_t cbytes = t->file_esize;
  int direct, rc;

  direct = dcpl >= 0 && ck_h5_codec_of_dcpl(dcpl, t->file_esize, &c) && H5Pget_chunk(dcpl, t->rank, chunk) == t->rank;
  if (dcpl >= 0)
    H5Pclose(dcpl);
  H5Eclear2(H5E_DEFAULT);
  if (!direct)
    return 1;
  if (!r->ring_on) {
    if ((rc = ck_h5_ring_init(&r->ring, r->threads, r->budget)) != 0) {
      ck_h5_ring_free(&r->ring);
      return ck_err_set(err, rc, "%s: cannot start chunk decoding: %s", r->path, ck_strerror(rc));
    }
    r->ring_on = 1;
  }
  for (int d = 0; d < t->rank; d++)
    cbytes = chunk[d] && cbytes > CK_H5_CHUNK_SLAB_MAX / chunk[d] ? CK_H5_CHUNK_SLAB_MAX + 1 : cbytes * chunk[d];
  /* chunks too large for the budget's ring: libhdf5 decodes them (one row cached) when
   * it has the filter; without it (lz4, zstd) one slot over the budget serves */
  if (t->nelem > 0 && cbytes <= CK_H5_CHUNK_SLAB_MAX && ck_h5_ring_reserve(&r->ring, &c, (size_t)cbytes, 0) == CK_ELIMIT &&
      H5Zfilter_avail((H5Z_filter_t)c.codec) > 0)
    return 1;
  rc = ck_h5_chunks_read(&r->ring, ds, &c, t->rank, t->dims, chunk, t->file_esize, r->chunk_fd, r->file_size,
                         emit_cb, &e, r->path, t->path, err);
  if (rc == 0)
    rc = emit_flush(&e);
  return rc;
}

static int stream_fixed(struct ck_h5r *r, hid_t ds, const struct ck_h5_tensor *t, void *buf, size_t bufsize,
                        ck_chunk_fn fn, void *ctx, struct ck_err *err)
{
  size_t esize = ck_dtype_size(t->dtype);
  uint64_t total = t->nelem * esize, start[CK_MAX_RANK], count[CK_MAX_RANK], off, n;
  struct ck_blocks b;
  const char *why;
  hid_t ft, mt;
  int rc = 0, exact;

  if (t->raw_offset && r->fd >= 0) {
    for (uint64_t pos = 0; pos < total && rc == 0; pos += n) {
      n = total - pos < bufsize ? total - pos : bufsize;
      if ((rc = ck_pread_full(r->fd, buf, (size_t)n, t->raw_offset + pos)) != 0)
        return ck_err_set(err, rc, "%s: %s: read at %llu: %s", r->path, t->path,
                          (unsigned long long)(t->raw_offset + pos), ck_strerror(rc));
      rc = fn(ctx, buf, (size_t)n);
    }
    return rc;
  }
  if (bufsize < esize)
    return ck_err_set(err, CK_EINVAL, "buffer smaller than one element");
  ft = H5Dget_type(ds);
  mt = ck_h5_mem_type(ft, t->dtype, &exact, &why);
  H5Tclose(ft);
  if (mt < 0)
    return ck_err_set(err, CK_EUNSUP, "%s: %s: %s", r->path, t->path, why);
  if (exact && t->rank >= 1 && (rc = stream_chunks(r, ds, t, buf, bufsize, fn, ctx, err)) != 1) {
    H5Tclose(mt);
    return rc;
  }
  rc = 0;
  ck_blocks_init(&b, t->rank, t->dims, bufsize / esize);
  while (rc == 0 && ck_blocks_next(&b, start, count, &off, &n)) {
    if (read_sel(r, ds, t->rank, start, count, mt, H5P_DEFAULT, buf) != 0)
      rc = read_failed(r, t, err);
    else
      rc = fn(ctx, buf, (size_t)(n * esize));
  }
  H5Tclose(mt);
  return rc;
}

/* Variable-length memory HDF5 allocates while reading a batch: counted against the
 * batch's budget and all freed after the batch, whether the read succeeded or not. */
struct vmem {
  struct vblk *head;
  size_t used, limit;
  int over;
};

struct vblk {
  struct vblk *prev, *next;
  max_align_t align[];
};

static void *vmem_alloc(size_t size, void *info)
{
  struct vmem *m = info;
  struct vblk *b;

  if (size > m->limit - m->used) {
    m->over = 1;
    return NULL;
  }
  if ((b = malloc(sizeof(*b) + size)) == NULL)
    return NULL;
  m->used += size;
  b->prev = NULL;
  b->next = m->head;
  if (m->head)
    m->head->prev = b;
  m->head = b;
  return b->align;
}

static void vmem_free(void *p, void *info)
{
  struct vmem *m = info;
  struct vblk *b;

  if (p == NULL)
    return;
  b = (struct vblk *)((char *)p - offsetof(struct vblk, align));
  if (b->prev)
    b->prev->next = b->next;
  else
    m->head = b->next;
  if (b->next)
    b->next->prev = b->prev;
  free(b);
}

static void vmem_reset(struct vmem *m)
{
  while (m->head) {
    struct vblk *b = m->head;
    m->head = b->next;
    free(b);
  }
  m->used = 0;
  m->over = 0;
}

/* One pass over all elements in bounded batches; cb gets each element. */
typedef int (*elem_fn)(void *ctx, const uint8_t *p, size_t len);

struct velems {
  struct ck_h5r *r;
  const struct ck_h5_tensor *t;
  hid_t ds, mt, dxpl;
  size_t each;        /* bytes per element in the batch array */
  size_t fixed_size;  /* fixed-length strings */
  size_t bufsize;
  uint64_t batch, fit; /* planned and currently fitting elements per read */
  void *raw;          /* hvl_t[], char*[], or fixed-size strings: BATCH_MAX elements at most */
  struct vmem mem;
  elem_fn cb;
  void *ctx;
  struct ck_err *err;
};

static void velem(const struct velems *v, size_t i, const uint8_t **p, size_t *len)
{
  if (v->t->kind == CK_H5K_VLEN_BYTES) {
    const hvl_t *h = (const hvl_t *)v->raw + i;
    *p = h->p;
    *len = h->len;
  } else if (v->t->kind == CK_H5K_VLEN_STR) {
    const char *s = ((char *const *)v->raw)[i];
    *p = (const uint8_t *)(s ? s : "");
    *len = s ? strlen(s) : 0;
  } else {
    const uint8_t *s = (const uint8_t *)v->raw + i * v->fixed_size;
    size_t n = v->fixed_size;
    while (n > 0 && s[n - 1] == 0) /* numpy 'S' semantics: trailing NULs are padding */
      n--;
    *p = s;
    *len = n;
  }
}

static int box_read(struct velems *v, const uint64_t *start, const uint64_t *count, uint64_t n);

/* Read a box in sub-boxes of at most m elements, in order. */
static int box_split(struct velems *v, const uint64_t *start, const uint64_t *count, uint64_t m)
{
  uint64_t s[CK_MAX_RANK], c[CK_MAX_RANK], off, k;
  int64_t dims[CK_MAX_RANK];
  struct ck_blocks b;
  int rc = 0;

  for (int d = 0; d < v->t->rank; d++)
    dims[d] = (int64_t)count[d];
  ck_blocks_init(&b, v->t->rank, dims, m);
  while (rc == 0 && ck_blocks_next(&b, s, c, &off, &k)) {
    for (int d = 0; d < v->t->rank; d++)
      s[d] += start[d];
    rc = box_read(v, s, c, k);
  }
  return rc;
}

/* A batch whose elements overflow the budget is read again in halves, and later
 * batches start from the size that fitted (v->fit), growing back while they fit easily. */
static int box_read(struct velems *v, const uint64_t *start, const uint64_t *count, uint64_t n)
{
  int rc = 0;

  if (n > v->fit)
    return box_split(v, start, count, v->fit);
  v->mem.limit = n == 1 ? (v->bufsize > CK_H5_ELEM_MAX ? v->bufsize : CK_H5_ELEM_MAX) : v->bufsize;
  memset(v->raw, 0, (size_t)n * v->each);
  if (read_sel(v->r, v->ds, v->t->rank, start, count, v->mt, v->dxpl, v->raw) != 0) {
    int over = v->mem.over;
    vmem_reset(&v->mem);
    if (over && n > 1) {
      H5Eclear2(H5E_DEFAULT);
      v->fit = n / 2;
      return box_split(v, start, count, v->fit);
    }
    if (over)
      return ck_err_set(v->err, CK_ELIMIT, "%s: %s: an element is larger than the %u MiB limit", v->r->path,
                        v->t->path, CK_H5_ELEM_MAX >> 20);
    return read_failed(v->r, v->t, v->err);
  }
  if (n == v->fit && v->mem.used <= v->bufsize / 4 && v->fit < v->batch)
    v->fit = v->fit * 2 < v->batch ? v->fit * 2 : v->batch;
  for (size_t i = 0; i < n && rc == 0; i++) {
    const uint8_t *p;
    size_t len;
    velem(v, i, &p, &len);
    rc = v->cb(v->ctx, p, len);
  }
  vmem_reset(&v->mem);
  return rc;
}

static hid_t vlen_memtype(hid_t ds, int kind, size_t *fixed_size)
{
  hid_t ft = H5Dget_type(ds), mt;

  if (kind == CK_H5K_VLEN_BYTES) {
    mt = H5Tvlen_create(H5T_NATIVE_UINT8);
  } else {
    mt = H5Tcopy(H5T_C_S1);
    H5Tset_cset(mt, H5Tget_cset(ft));
    if (kind == CK_H5K_VLEN_STR) {
      H5Tset_size(mt, H5T_VARIABLE);
    } else {
      *fixed_size = H5Tget_size(ft);
      H5Tset_size(mt, *fixed_size);
      H5Tset_strpad(mt, H5T_STR_NULLPAD);
    }
  }
  H5Tclose(ft);
  return mt;
}

static int each_element(struct ck_h5r *r, hid_t ds, const struct ck_h5_tensor *t, size_t bufsize, elem_fn cb,
                        void *ctx, struct ck_err *err)
{
  struct velems v = { .r = r, .t = t, .ds = ds, .bufsize = bufsize, .cb = cb, .ctx = ctx, .err = err };
  uint64_t start[CK_MAX_RANK], count[CK_MAX_RANK], off, n, batch;
  struct ck_blocks b;
  int rc = 0;

  v.mt = vlen_memtype(ds, t->kind, &v.fixed_size);
  v.each = t->kind == CK_H5K_VLEN_BYTES ? sizeof(hvl_t) : t->kind == CK_H5K_VLEN_STR ? sizeof(char *) : v.fixed_size;
  if (t->kind == CK_H5K_FIXED_STR && (v.fixed_size == 0 || v.fixed_size > CK_H5_ELEM_MAX)) {
    H5Tclose(v.mt);
    return ck_err_set(err, CK_ELIMIT, "%s: %s: fixed string size %zu not supported (limit %u MiB)", r->path, t->path,
                      v.fixed_size, CK_H5_ELEM_MAX >> 20);
  }
  /* the batch array and, for fixed strings, its bytes stay within the buffer size */
  batch = bufsize / v.each;
  batch = batch < 1 ? 1 : batch > BATCH_MAX ? BATCH_MAX : batch;
  v.dxpl = H5Pcreate(H5P_DATASET_XFER);
  if (v.dxpl < 0 || H5Pset_vlen_mem_manager(v.dxpl, vmem_alloc, &v.mem, vmem_free, &v.mem) < 0 ||
      (v.raw = malloc((size_t)batch * v.each)) == NULL) {
    rc = ck_err_set(err, -ENOMEM, "out of memory");
    goto out;
  }
  v.batch = v.fit = batch;
  ck_blocks_init(&b, t->rank, t->dims, batch);
  while (rc == 0 && ck_blocks_next(&b, start, count, &off, &n))
    rc = box_read(&v, start, count, n);
out:
  vmem_reset(&v.mem);
  free(v.raw);
  if (v.dxpl >= 0)
    H5Pclose(v.dxpl);
  H5Tclose(v.mt);
  return rc;
}

struct str_ctx {
  struct emitter *e;
  uint32_t crc;
};

static int str_len_cb(void *ctx, const uint8_t *p, size_t len)
{
  struct str_ctx *s = ctx;
  uint8_t v[CK_VARINT64_MAX], f[8];

  (void)p;
  if (len <= UINT32_MAX) {
    ck_put_fixed32(f, (uint32_t)len);
    s->crc = ck_crc32c_extend(s->crc, f, 4);
  } else {
    ck_put_fixed64(f, len);
    s->crc = ck_crc32c_extend(s->crc, f, 8);
  }
  return emit(s->e, v, ck_put_varint64(v, len));
}

static int str_body_cb(void *ctx, const uint8_t *p, size_t len)
{
  struct str_ctx *s = ctx;

  return emit(s->e, p, len);
}

static int var_cb(void *ctx, const uint8_t *p, size_t len)
{
  struct str_ctx *s = ctx;
  uint8_t v[CK_VARINT64_MAX], f[8];
  int rc;

  ck_put_fixed64(f, len);
  s->crc = ck_crc32c_extend(s->crc, f, 8);
  s->crc = ck_crc32c_extend(s->crc, p, len);
  if ((rc = emit(s->e, v, ck_put_varint64(v, len))) != 0 || (rc = emit(s->e, p, len)) != 0)
    return rc;
  ck_put_fixed32(f, ck_crc32c_mask(s->crc));
  s->crc = ck_crc32c_extend(s->crc, f, 4);
  return emit(s->e, f, 4);
}

/* Open with a chunk cache that holds a row of filtered chunks: each is inflated once. */
static hid_t open_dataset(struct ck_h5r *r, const struct ck_h5_tensor *t)
{
  hid_t ds = H5Dopen2(r->file, t->path, H5P_DEFAULT), dapl;

  if (ds < 0 || (dapl = ck_h5_dapl_for(ds, t->kind)) == H5P_DEFAULT)
    return ds;
  H5Dclose(ds);
  ds = dapl < 0 ? H5I_INVALID_HID : H5Dopen2(r->file, t->path, dapl);
  if (dapl >= 0)
    H5Pclose(dapl);
  return ds;
}

int ck_h5r_stream_tf(struct ck_h5r *r, const struct ck_h5_tensor *t, void *buf, size_t bufsize, ck_chunk_fn fn,
                     void *ctx, struct ck_err *err)
{
  struct emitter e = { .buf = buf, .cap = bufsize, .fn = fn, .ctx = ctx };
  struct str_ctx s = { .e = &e };
  hid_t ds;
  int rc;

  if (bufsize == 0)
    return ck_err_set(err, CK_EINVAL, "zero-sized buffer");
  if (t->kind == CK_H5K_FIXED && t->raw_offset && r->fd >= 0) /* contiguous, unfiltered: no dataset to open */
    return stream_fixed(r, -1, t, buf, bufsize, fn, ctx, err);
  if ((ds = open_dataset(r, t)) < 0)
    return ck_h5_err(err, CK_EFORMAT, "%s: %s: cannot open dataset", r->path, t->path);
  if (t->kind == CK_H5K_FIXED) {
    rc = stream_fixed(r, ds, t, buf, bufsize, fn, ctx, err);
  } else if (t->dtype == CK_DT_VARIANT) {
    rc = each_element(r, ds, t, bufsize, var_cb, &s, err);
    if (rc == 0)
      rc = emit_flush(&e);
  } else {
    uint8_t f[4];
    /* lengths, their checksum, then the bytes: two passes keep memory bounded */
    rc = each_element(r, ds, t, bufsize, str_len_cb, &s, err);
    ck_put_fixed32(f, ck_crc32c_mask(s.crc));
    if (rc == 0)
      rc = emit(&e, f, 4);
    if (rc == 0)
      rc = each_element(r, ds, t, bufsize, str_body_cb, &s, err);
    if (rc == 0)
      rc = emit_flush(&e);
  }
  H5Dclose(ds);
  return rc;
}
