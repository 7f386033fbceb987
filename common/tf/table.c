/* Table reader and writer.
 *
 * The reader never trusts a size or offset from the file: every block handle
 * is checked against the real file size before anything is allocated, every
 * block's masked crc32c is verified, snappy lengths are bounded before the
 * output buffer exists, and entry fields are checked against the block end.
 * The writer reproduces TensorFlow's TableBuilder byte for byte: 256 KiB
 * blocks, restart interval 16 (1 in the index block), no compression, an
 * empty metaindex block and shortest-separator index keys. */
#include "config.h"

#include <errno.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>

#include "coding.h"
#include "crc32c.h"
#include "fileio.h"
#include "table.h"

#define TRAILER 5
#define MAX_SNAPPY_BLOCK (256u << 20)

struct handle {
  uint64_t off;
  uint64_t size;
};

struct ck_table {
  int fd;
  uint64_t size;
  char *name;
  struct handle *blocks;
  size_t nblocks;
  struct ck_table_stats stats;
};

struct bytes {
  uint8_t *p;
  size_t len;
  size_t cap;
};

static int bytes_reserve(struct bytes *b, size_t extra)
{
  size_t need = b->len + extra;
  size_t cap = b->cap ? b->cap : 64;
  uint8_t *p;

  if (need < b->len)
    return -ENOMEM;
  if (need <= b->cap)
    return 0;
  while (cap < need)
    cap *= 2;
  if ((p = realloc(b->p, cap)) == NULL)
    return -ENOMEM;
  b->p = p;
  b->cap = cap;
  return 0;
}

static int bytes_append(struct bytes *b, const void *d, size_t n)
{
  int rc = bytes_reserve(b, n);

  if (rc == 0 && n > 0) {
    memcpy(b->p + b->len, d, n);
    b->len += n;
  }
  return rc;
}

static int bytes_put_varint(struct bytes *b, uint64_t v)
{
  uint8_t tmp[CK_VARINT64_MAX];

  return bytes_append(b, tmp, ck_put_varint64(tmp, v));
}

int ck_key_cmp(const uint8_t *a, size_t la, const uint8_t *b, size_t lb)
{
  size_t n = la < lb ? la : lb;
  int c = n ? memcmp(a, b, n) : 0;

  if (c != 0)
    return c;
  return la < lb ? -1 : la > lb;
}

/* ---- reader ---- */

static int decode_handle(const uint8_t **p, const uint8_t *end, struct handle *h)
{
  if (ck_get_varint64(p, end, &h->off) != 0 || ck_get_varint64(p, end, &h->size) != 0)
    return -1;
  return 0;
}

static int handle_in_file(const struct ck_table *t, const struct handle *h)
{
  return h->size <= t->size && h->off <= t->size - h->size &&
         t->size - h->size - h->off >= TRAILER;
}

static int uncompress_block(struct ck_table *t, const char *what, uint8_t *raw, size_t n,
                            uint8_t **out, size_t *outlen, struct ck_err *err)
{
  size_t ulen;
  uint8_t *u;

  if (snappy_uncompressed_length((const char *)raw, n, &ulen) != SNAPPY_OK)
    return ck_err_set(err, CK_EFORMAT, "%s: %s: bad snappy header", t->name, what);
  /* A snappy copy op expands at most 64 bytes from 2: bound before allocating. */
  if (ulen > MAX_SNAPPY_BLOCK || ulen / 32 > n + 64)
    return ck_err_set(err, CK_ELIMIT, "%s: %s: snappy length %zu is implausible",
                      t->name, what, ulen);
  if ((u = malloc(ulen ? ulen : 1)) == NULL)
    return ck_err_set(err, -ENOMEM, "%s: out of memory", t->name);
  if (snappy_uncompress((const char *)raw, n, (char *)u, &ulen) != SNAPPY_OK) {
    free(u);
    return ck_err_set(err, CK_EFORMAT, "%s: %s: corrupt snappy data", t->name, what);
  }
  *out = u;
  *outlen = ulen;
  return 0;
}

/* Read, verify and (if needed) decompress one block. */
static int read_block(struct ck_table *t, const struct handle *h, const char *what,
                      uint8_t **out, size_t *outlen, struct ck_err *err)
{
  uint8_t *raw;
  uint32_t want, got;
  uint8_t type;
  int rc;

  if (!handle_in_file(t, h))
    return ck_err_set(err, CK_ETRUNC,
                      "%s: %s at offset %llu size %llu lies past the end of the file (%llu bytes)",
                      t->name, what, (unsigned long long)h->off, (unsigned long long)h->size,
                      (unsigned long long)t->size);
  if ((raw = malloc(h->size + TRAILER)) == NULL)
    return ck_err_set(err, -ENOMEM, "%s: out of memory", t->name);
  if ((rc = ck_pread_full(t->fd, raw, h->size + TRAILER, h->off)) != 0) {
    free(raw);
    return ck_err_set(err, rc, "%s: %s: read failed: %s", t->name, what, ck_strerror(rc));
  }
  type = raw[h->size];
  want = ck_crc32c_unmask(ck_get_fixed32(raw + h->size + 1));
  got = ck_crc32c(raw, h->size + 1);
  if (want != got) {
    free(raw);
    return ck_err_set(err, CK_ECHECKSUM, "%s: %s at offset %llu: bad block checksum",
                      t->name, what, (unsigned long long)h->off);
  }
  if (type == 0) {
    *out = raw;
    *outlen = h->size;
    return 0;
  }
  if (type != 1) {
    free(raw);
    return ck_err_set(err, CK_EUNSUP, "%s: %s: unknown compression type %u",
                      t->name, what, type);
  }
  t->stats.snappy_blocks++;
  rc = uncompress_block(t, what, raw, h->size, out, outlen, err);
  free(raw);
  return rc;
}

struct walk {
  struct ck_table *t;
  const char *what;
  struct bytes key;  /* key being rebuilt in this block */
  struct bytes prev; /* last key seen in the table, for order checks */
  int have_prev;
  ck_table_visit_fn fn;
  void *ctx;
};

/* Decode every entry of a block and hand it to w->fn. */
static int walk_block(struct walk *w, const uint8_t *d, size_t n, struct ck_err *err)
{
  const char *name = w->t->name;
  const uint8_t *p, *end;
  uint32_t nrestarts, shared, nonshared, vlen;
  int rc;

  if (n < 4)
    return ck_err_set(err, CK_EFORMAT, "%s: %s: block of %zu bytes is too small", name, w->what, n);
  nrestarts = ck_get_fixed32(d + n - 4);
  if (nrestarts > (n - 4) / 4)
    return ck_err_set(err, CK_EFORMAT, "%s: %s: restart count %u does not fit the block",
                      name, w->what, nrestarts);
  end = d + n - 4 - 4 * (size_t)nrestarts;
  for (uint32_t i = 0; i < nrestarts; i++)
    if (ck_get_fixed32(end + 4 * i) > (size_t)(end - d))
      return ck_err_set(err, CK_EFORMAT, "%s: %s: restart point %u out of range", name, w->what, i);
  w->key.len = 0;
  for (p = d; p < end;) {
    if (ck_get_varint32(&p, end, &shared) != 0 || ck_get_varint32(&p, end, &nonshared) != 0 ||
        ck_get_varint32(&p, end, &vlen) != 0)
      return ck_err_set(err, CK_EFORMAT, "%s: %s: bad entry header at byte %td", name, w->what, p - d);
    if (shared > w->key.len || nonshared > (size_t)(end - p) || vlen > (size_t)(end - p) - nonshared)
      return ck_err_set(err, CK_EFORMAT, "%s: %s: entry at byte %td overruns the block",
                        name, w->what, p - d);
    w->key.len = shared;
    if ((rc = bytes_append(&w->key, p, nonshared)) != 0)
      return ck_err_set(err, rc, "%s: out of memory", name);
    p += nonshared;
    if (w->have_prev && ck_key_cmp(w->prev.p, w->prev.len, w->key.p, w->key.len) >= 0)
      return ck_err_set(err, CK_EFORMAT, "%s: %s: keys out of order", name, w->what);
    w->prev.len = 0;
    if ((rc = bytes_append(&w->prev, w->key.p, w->key.len)) != 0)
      return ck_err_set(err, rc, "%s: out of memory", name);
    w->have_prev = 1;
    if ((rc = w->fn(w->ctx, w->key.p, w->key.len, p, vlen)) != 0)
      return rc;
    p += vlen;
  }
  return 0;
}

struct index_ctx {
  struct ck_table *t;
  size_t cap;
  struct ck_err *err;
};

static int index_visit(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
  struct index_ctx *ic = ctx;
  struct ck_table *t = ic->t;
  const uint8_t *p = val;
  struct handle h;

  (void)key;
  (void)klen;
  if (decode_handle(&p, val + vlen, &h) != 0)
    return ck_err_set(ic->err, CK_EFORMAT, "%s: index block: bad block handle", t->name);
  if (!handle_in_file(t, &h))
    return ck_err_set(ic->err, CK_ETRUNC,
                      "%s: index block: data block %zu at offset %llu size %llu lies past the end of the file",
                      t->name, t->nblocks, (unsigned long long)h.off, (unsigned long long)h.size);
  if (t->nblocks == ic->cap) {
    size_t cap = ic->cap ? ic->cap * 2 : 8;
    struct handle *nb = realloc(t->blocks, cap * sizeof(*nb));
    if (nb == NULL)
      return ck_err_set(ic->err, -ENOMEM, "%s: out of memory", t->name);
    t->blocks = nb;
    ic->cap = cap;
  }
  t->blocks[t->nblocks++] = h;
  return 0;
}

static int read_footer(struct ck_table *t, struct handle *meta, struct handle *index,
                       struct ck_err *err)
{
  uint8_t f[CK_TABLE_FOOTER_SIZE];
  const uint8_t *p = f;
  uint64_t magic;
  int rc;

  if (t->size < CK_TABLE_FOOTER_SIZE)
    return ck_err_set(err, CK_ETRUNC, "%s: %llu bytes is too short for a table footer (48 bytes)",
                      t->name, (unsigned long long)t->size);
  if ((rc = ck_pread_full(t->fd, f, sizeof(f), t->size - sizeof(f))) != 0)
    return ck_err_set(err, rc, "%s: reading the footer: %s", t->name, ck_strerror(rc));
  magic = (uint64_t)ck_get_fixed32(f + 40) | (uint64_t)ck_get_fixed32(f + 44) << 32;
  if (magic != CK_TABLE_MAGIC)
    return ck_err_set(err, CK_EFORMAT, "%s: bad table magic 0x%016llx: not a TensorFlow index file",
                      t->name, (unsigned long long)magic);
  if (decode_handle(&p, f + 40, meta) != 0 || decode_handle(&p, f + 40, index) != 0)
    return ck_err_set(err, CK_EFORMAT, "%s: footer: bad block handles", t->name);
  if (!handle_in_file(t, meta) || !handle_in_file(t, index))
    return ck_err_set(err, CK_ETRUNC, "%s: footer: index or metaindex block past the end of the file",
                      t->name);
  return 0;
}

int ck_table_open_fd(int fd, uint64_t size, const char *name, struct ck_table **out,
                     struct ck_err *err)
{
  struct ck_table *t = calloc(1, sizeof(*t));
  struct walk w = { 0 };
  struct index_ctx ic = { 0 };
  struct handle meta, index;
  uint8_t *blk = NULL;
  size_t n;
  int rc;

  *out = NULL;
  if (t == NULL || (t->name = strdup(name)) == NULL) {
    free(t);
    return ck_err_set(err, -ENOMEM, "%s: out of memory", name);
  }
  t->fd = fd;
  t->size = size;
  if ((rc = read_footer(t, &meta, &index, err)) != 0)
    goto out;
  if ((rc = read_block(t, &index, "index block", &blk, &n, err)) != 0)
    goto out;
  ic.t = t;
  ic.err = err;
  w.t = t;
  w.what = "index block";
  w.fn = index_visit;
  w.ctx = &ic;
  rc = walk_block(&w, blk, n, err);
out:
  free(blk);
  free(w.key.p);
  free(w.prev.p);
  if (rc != 0) {
    ck_table_free(t);
    return rc;
  }
  t->stats.data_blocks = (unsigned)t->nblocks;
  *out = t;
  return 0;
}

int ck_table_foreach(struct ck_table *t, ck_table_visit_fn fn, void *ctx, struct ck_err *err)
{
  struct walk w = { .t = t, .what = "data block", .fn = fn, .ctx = ctx };
  int rc = 0;

  t->stats.entries = 0;
  for (size_t i = 0; i < t->nblocks && rc == 0; i++) {
    uint8_t *blk;
    size_t n;
    if ((rc = read_block(t, &t->blocks[i], "data block", &blk, &n, err)) != 0)
      break;
    rc = walk_block(&w, blk, n, err);
    free(blk);
  }
  free(w.key.p);
  free(w.prev.p);
  return rc;
}

const struct ck_table_stats *ck_table_stats(const struct ck_table *t)
{
  return &t->stats;
}

void ck_table_free(struct ck_table *t)
{
  if (t == NULL)
    return;
  free(t->blocks);
  free(t->name);
  free(t);
}

/* ---- writer ---- */

struct block_builder {
  struct bytes buf;
  struct bytes last;
  uint32_t *restarts;
  size_t nrestarts;
  size_t rcap;
  int counter;
  int interval;
};

struct ck_table_builder {
  int fd;
  uint64_t offset;
  struct block_builder data;
  struct block_builder index;
  struct bytes last_key;
  uint64_t nentries;
  struct handle pending;
  int pending_index;
  int finished;
};

static int bb_push_restart(struct block_builder *bb, uint32_t off)
{
  if (bb->nrestarts == bb->rcap) {
    size_t cap = bb->rcap ? bb->rcap * 2 : 16;
    uint32_t *r = realloc(bb->restarts, cap * sizeof(*r));
    if (r == NULL)
      return -ENOMEM;
    bb->restarts = r;
    bb->rcap = cap;
  }
  bb->restarts[bb->nrestarts++] = off;
  return 0;
}

static int bb_reset(struct block_builder *bb)
{
  bb->buf.len = 0;
  bb->last.len = 0;
  bb->nrestarts = 0;
  bb->counter = 0;
  return bb_push_restart(bb, 0);
}

static size_t bb_estimate(const struct block_builder *bb)
{
  return bb->buf.len + bb->nrestarts * 4 + 4;
}

static int bb_add(struct block_builder *bb, const uint8_t *key, size_t klen,
                  const uint8_t *val, size_t vlen)
{
  size_t shared = 0;
  int rc;

  if (bb->counter < bb->interval) {
    size_t n = klen < bb->last.len ? klen : bb->last.len;
    while (shared < n && bb->last.p[shared] == key[shared])
      shared++;
  } else {
    if ((rc = bb_push_restart(bb, (uint32_t)bb->buf.len)) != 0)
      return rc;
    bb->counter = 0;
  }
  if ((rc = bytes_put_varint(&bb->buf, shared)) != 0 ||
      (rc = bytes_put_varint(&bb->buf, klen - shared)) != 0 ||
      (rc = bytes_put_varint(&bb->buf, vlen)) != 0 ||
      (rc = bytes_append(&bb->buf, key + shared, klen - shared)) != 0 ||
      (rc = bytes_append(&bb->buf, val, vlen)) != 0)
    return rc;
  bb->last.len = 0;
  if ((rc = bytes_append(&bb->last, key, klen)) != 0)
    return rc;
  bb->counter++;
  return 0;
}

static int bb_finish(struct block_builder *bb)
{
  uint8_t tmp[4];
  int rc;

  for (size_t i = 0; i < bb->nrestarts; i++) {
    ck_put_fixed32(tmp, bb->restarts[i]);
    if ((rc = bytes_append(&bb->buf, tmp, 4)) != 0)
      return rc;
  }
  ck_put_fixed32(tmp, (uint32_t)bb->nrestarts);
  return bytes_append(&bb->buf, tmp, 4);
}

static void bb_free(struct block_builder *bb)
{
  free(bb->buf.p);
  free(bb->last.p);
  free(bb->restarts);
}

static int write_block(struct ck_table_builder *b, struct block_builder *bb, struct handle *h)
{
  uint8_t trailer[TRAILER] = { 0 };
  uint32_t crc;
  int rc;

  if ((rc = bb_finish(bb)) != 0)
    return rc;
  crc = ck_crc32c_extend(ck_crc32c(bb->buf.p, bb->buf.len), trailer, 1);
  ck_put_fixed32(trailer + 1, ck_crc32c_mask(crc));
  if ((rc = ck_write_full(b->fd, bb->buf.p, bb->buf.len)) != 0 ||
      (rc = ck_write_full(b->fd, trailer, TRAILER)) != 0)
    return rc;
  h->off = b->offset;
  h->size = bb->buf.len;
  b->offset += bb->buf.len + TRAILER;
  return bb_reset(bb);
}

int ck_table_builder_new(int fd, struct ck_table_builder **out)
{
  struct ck_table_builder *b = calloc(1, sizeof(*b));

  *out = NULL;
  if (b == NULL)
    return -ENOMEM;
  b->fd = fd;
  b->data.interval = CK_TABLE_RESTART_INTERVAL;
  b->index.interval = 1;
  if (bb_reset(&b->data) != 0 || bb_reset(&b->index) != 0) {
    ck_table_builder_free(b);
    return -ENOMEM;
  }
  *out = b;
  return 0;
}

/* LevelDB's BytewiseComparator::FindShortestSeparator, in place on start. */
static void shortest_separator(struct bytes *start, const uint8_t *limit, size_t llen)
{
  size_t n = start->len < llen ? start->len : llen;
  size_t i = 0;

  while (i < n && start->p[i] == limit[i])
    i++;
  if (i >= n)
    return; /* one is a prefix of the other */
  if (start->p[i] < 0xff && start->p[i] + 1 < limit[i]) {
    start->p[i]++;
    start->len = i + 1;
  }
}

/* LevelDB's FindShortSuccessor. */
static void short_successor(struct bytes *key)
{
  for (size_t i = 0; i < key->len; i++) {
    if (key->p[i] != 0xff) {
      key->p[i]++;
      key->len = i + 1;
      return;
    }
  }
}

static int add_index_entry(struct ck_table_builder *b)
{
  uint8_t enc[2 * CK_VARINT64_MAX];
  size_t n = ck_put_varint64(enc, b->pending.off);

  n += ck_put_varint64(enc + n, b->pending.size);
  b->pending_index = 0;
  return bb_add(&b->index, b->last_key.p, b->last_key.len, enc, n);
}

static int flush_data(struct ck_table_builder *b)
{
  int rc;

  if (b->data.buf.len == 0)
    return 0;
  if ((rc = write_block(b, &b->data, &b->pending)) != 0)
    return rc;
  b->pending_index = 1;
  return 0;
}

int ck_table_builder_add(struct ck_table_builder *b, const void *key, size_t klen,
                         const void *val, size_t vlen)
{
  int rc;

  if (b->finished)
    return -EINVAL;
  if (b->nentries > 0 && ck_key_cmp(b->last_key.p, b->last_key.len, key, klen) >= 0)
    return CK_EINVAL;
  if (b->pending_index) {
    shortest_separator(&b->last_key, key, klen);
    if ((rc = add_index_entry(b)) != 0)
      return rc;
  }
  b->last_key.len = 0;
  if ((rc = bytes_append(&b->last_key, key, klen)) != 0 ||
      (rc = bb_add(&b->data, key, klen, val, vlen)) != 0)
    return rc;
  b->nentries++;
  if (bb_estimate(&b->data) >= CK_TABLE_BLOCK_SIZE)
    return flush_data(b);
  return 0;
}

int ck_table_builder_finish(struct ck_table_builder *b)
{
  struct block_builder meta = { .interval = CK_TABLE_RESTART_INTERVAL };
  struct handle meta_h, index_h;
  uint8_t footer[CK_TABLE_FOOTER_SIZE] = { 0 };
  size_t n;
  int rc;

  if (b->finished)
    return -EINVAL;
  b->finished = 1;
  if ((rc = flush_data(b)) != 0)
    return rc;
  if ((rc = bb_reset(&meta)) == 0)
    rc = write_block(b, &meta, &meta_h);
  bb_free(&meta);
  if (rc != 0)
    return rc;
  if (b->pending_index) {
    short_successor(&b->last_key);
    if ((rc = add_index_entry(b)) != 0)
      return rc;
  }
  if ((rc = write_block(b, &b->index, &index_h)) != 0)
    return rc;
  n = ck_put_varint64(footer, meta_h.off);
  n += ck_put_varint64(footer + n, meta_h.size);
  n += ck_put_varint64(footer + n, index_h.off);
  ck_put_varint64(footer + n, index_h.size);
  ck_put_fixed32(footer + 40, (uint32_t)CK_TABLE_MAGIC);
  ck_put_fixed32(footer + 44, (uint32_t)(CK_TABLE_MAGIC >> 32));
  return ck_write_full(b->fd, footer, sizeof(footer));
}

void ck_table_builder_free(struct ck_table_builder *b)
{
  if (b == NULL)
    return;
  bb_free(&b->data);
  bb_free(&b->index);
  free(b->last_key.p);
  free(b);
}
