/* HDF5 reader.
 *
 * Opening reads the root's attributes once (the layout evidence and Cerebras 0.5
 * metadata), walks the groups iteratively (depth-first in link order, at most
 * CK_H5_MAX_DEPTH levels, each group once) and classifies every dataset
 * (h5_classify.c): a tensor (its TensorFlow dtype decided by, in order, the tf_dtype
 * attribute, is_bfloat16, Cerebras 0.5 JSON metadata, then the HDF5 type, and
 * refused when they disagree), a non-tensor leaf (skipped and listed), or an error
 * naming the dataset. The layout (h5_detect.c) then decides how names are read.
 * Each tensor's bytes are streamed by h5_stream.c. */
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
#include "h5_reader.h"
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
void *ck_h5r_arena_alloc(struct ck_h5r *r, size_t n)
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

char *ck_h5r_arena_strdup(struct ck_h5r *r, const char *prefix, const char *s, size_t n)
{
  size_t pl = strlen(prefix);
  char *p = ck_h5r_arena_alloc(r, pl + n + 1);

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

void ck_h5r_skip_line(struct ck_h5r *r, char *line)
{
  char **ns = line ? realloc(r->skipped, (r->nskipped + 1) * sizeof(char *)) : NULL;

  if (ns == NULL) {
    free(line);
    return;
  }
  r->skipped = ns;
  r->skipped[r->nskipped++] = line;
}

void ck_h5r_skip(struct ck_h5r *r, const char *path, const char *why)
{
  ck_h5r_skip_line(r, ck_asprintf("%s (%s)", path, why));
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

int ck_h5r_add_tensor(struct ck_h5r *r, const struct ck_h5_tensor *t)
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
  if ((t->dims = ck_h5r_arena_alloc(r, ((size_t)rank + 1) * sizeof(int64_t))) == NULL)
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

int ck_h5r_classify(struct ck_h5r *r, hid_t ds, const char *path, const char *key)
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
    ck_h5r_skip(r, path, htype[0] ? htype : "empty dataset");
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
  if ((t.path = ck_h5r_arena_strdup(r, "", path, strlen(path))) == NULL) {
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
  if ((rc = ck_h5r_add_tensor(r, &t)) != 0)
    ck_err_set(r->err, rc, "out of memory");
out: /* what t took from the arena goes with the reader */
  if (dcpl >= 0)
    H5Pclose(dcpl);
  H5Sclose(space);
  H5Tclose(type);
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
      ck_h5r_skip(r, path, "value only in metadata, unreadable (not a string of at most 64 KiB)");
    free(path);
    goto out;
  }
  {
    char *path = ck_asprintf("/%s", key); /* listed too: a TF bundle has no place for it */
    if (path)
      ck_h5r_skip(r, path, "value only in metadata");
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
    ck_h5r_skip(r, "/__spec__", "not a JSON tree spec: the tree structure is not restored");
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
    t->name = (uint8_t *)ck_h5r_arena_strdup(r, "", (const char *)name, len);
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
    rc = ck_h5r_walk(r, root);
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
