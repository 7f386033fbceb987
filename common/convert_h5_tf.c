/* HDF5 -> TensorFlow bundle.
 *
 * Tensors are taken in the file's creation order (name order where untracked) and
 * streamed in TensorFlow's stored layout into the bundle writer through one buffer;
 * the writer computes each crc32c, which must equal the tf_crc32c attribute where
 * the file has one. The bundle is published atomically (data files, then index),
 * then the directory's `checkpoint` file names it. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bundle.h"
#include "ckptstate.h"
#include "convert.h"
#include "convert_internal.h"
#include "dtype.h"
#include "fileio.h"
#include "h5.h"

struct h5_tf {
  const struct ck_convert_opts *o;
  struct ck_bundle_writer *w;
  struct ck_progress prog;
  struct ck_err *err;
};

static int append(void *ctx, const void *data, size_t len)
{
  struct h5_tf *c = ctx;
  int rc = ck_bundle_writer_append(c->w, data, len, c->err);

  if (rc == 0 && (rc = ck_progress_add(&c->prog, len)) != 0)
    ck_err_set(c->err, rc, "cancelled");
  return rc;
}

static int one_tensor(struct h5_tf *c, struct ck_h5r *r, const struct ck_h5_tensor *t, uint8_t *buf, size_t bufsize,
                      struct ck_err *err)
{
  int rc = ck_bundle_writer_begin(c->w, t->name, t->nlen, t->dtype, t->rank, t->dims, err);

  if (rc != 0)
    return rc;
  if ((rc = ck_h5r_stream_tf(r, t, buf, bufsize, append, c, err)) != 0)
    return rc;
  if ((rc = ck_bundle_writer_end(c->w, err)) != 0)
    return rc;
  if (t->has_crc && ck_bundle_writer_last_crc(c->w) != t->tf_crc32c)
    return ck_err_set(err, CK_ECHECKSUM, "%s: %s: data has crc32c %08x but its tf_crc32c attribute says %08x",
                      ck_h5r_path(r), t->path, ck_bundle_writer_last_crc(c->w), t->tf_crc32c);
  return 0;
}

static int verify_output(const char *prefix, struct ck_h5r *r, uint8_t *buf, size_t bufsize, int threads,
                         struct ck_err *err)
{
  struct ck_bundle *b;
  int rc = ck_bundle_open(prefix, 0, &b, err);

  if (rc != 0)
    return rc;
  rc = ck_bundle_verify_all(b, threads > 0 ? threads : 2, bufsize > (1u << 18) ? 1u << 18 : bufsize, err);
  for (size_t i = 0; rc == 0 && i < ck_h5r_count(r); i++) {
    const struct ck_h5_tensor *t = ck_h5r_tensor(r, i);
    const struct ck_entry *e = ck_bundle_find(b, t->name, t->nlen);
    uint32_t crc;
    if (e == NULL)
      rc = ck_err_set(err, CK_EFORMAT, "%s: verify: %s missing from the output", prefix, t->name);
    else if ((rc = ck_tensor_crc_h5(r, t, buf, bufsize, &crc, err)) == 0 && crc != e->crc32c)
      rc = ck_err_set(err, CK_ECHECKSUM, "%s: verify: %s: crc32c %08x, source has %08x", prefix, t->name,
                      e->crc32c, crc);
  }
  ck_bundle_close(b);
  return rc;
}

/* Rename (or, with to == NULL, remove) the bundle at prefix: data files first, the
 * index last, as TensorFlow publishes, then fsync the directory. A final index that
 * ckptd must not replace is refused before anything moves; when a rename fails, the
 * data files already moved (ours) are removed again, so no new data file stays under
 * a final name without its index. */
int ck_bundle_move(const char *prefix, const char *to, int keep_foreign, struct ck_err *err)
{
  struct ck_bundle *b;
  char from_path[4200], to_path[4200];
  int rc = ck_bundle_open(prefix, CK_BUNDLE_INDEX_ONLY, &b, err), n, i;

  if (rc != 0)
    return rc;
  n = ck_bundle_num_shards(b);
  if (to != NULL && keep_foreign) {
    snprintf(to_path, sizeof(to_path), "%s.index", to);
    if (access(to_path, F_OK) == 0 && ck_mark_get(to_path, from_path, sizeof(from_path)) != 0)
      rc = ck_err_set(err, -EEXIST, "%s: %s", to_path, ck_publish_error(-EEXIST));
  }
  for (i = 0; i <= n && rc == 0; i++) { /* i == n: the index */
    if (i < n) {
      snprintf(from_path, sizeof(from_path), "%s.data-%05d-of-%05d", prefix, i, n);
      snprintf(to_path, sizeof(to_path), "%s.data-%05d-of-%05d", to ? to : "", i, n);
    } else {
      snprintf(from_path, sizeof(from_path), "%s.index", prefix);
      snprintf(to_path, sizeof(to_path), "%s.index", to ? to : "");
    }
    if (to == NULL) {
      unlink(from_path);
      continue;
    }
    if ((rc = ck_publish_rename(from_path, to_path, keep_foreign)) != 0)
      ck_err_set(err, rc, "%s: %s", to_path, ck_publish_error(rc));
  }
  for (int j = 0; rc != 0 && to != NULL && j < i - 1 && j < n; j++) { /* undo: the moved data files */
    snprintf(to_path, sizeof(to_path), "%s.data-%05d-of-%05d", to, j, n);
    unlink(to_path);
  }
  ck_bundle_close(b);
  if (rc == 0 && to != NULL) {
    char *dir = ck_dirname(to);
    if ((rc = dir ? ck_fsync_dir(dir) : -ENOMEM) != 0)
      ck_err_set(err, rc, "%s: fsync of the directory failed", to);
    free(dir);
  }
  return rc;
}

/* Whether the directory's `checkpoint` file can be updated: a malformed one is left
 * alone, with a warning, and decided before anything is published so that the
 * outcome does not depend on it (the bundle is complete either way). */
int ck_state_usable(const char *dir, struct ck_convert_stats *st)
{
  struct ck_ckptstate cs;
  struct ck_err e = { 0 };
  int rc = ck_ckptstate_read(dir, &cs, &e);

  if (rc == 0)
    ck_ckptstate_free(&cs);
  if (rc == 0 || rc == CK_ENOTFOUND)
    return 1;
  snprintf(st->warning, sizeof(st->warning), "%s; the `checkpoint` file was left alone", e.msg);
  return 0;
}

/* Name the new bundle in the `checkpoint` file. The bundle is published by now, so
 * a failure here is a warning, not a failed conversion. */
void ck_state_update(const char *dir, const char *prefix, struct ck_convert_stats *st)
{
  struct ck_err e = { 0 };
  char *base = ck_basename(prefix);

  if (base == NULL || ck_ckptstate_add(dir, base, &e) != 0)
    snprintf(st->warning, sizeof(st->warning), "%.200s/checkpoint: not updated: %s", dir,
             base ? e.msg : "out of memory");
  free(base);
}

int ck_convert_h5_to_tf(const char *src, const char *dst_prefix, const struct ck_convert_opts *o,
                        struct ck_convert_stats *st, struct ck_err *err)
{
  struct ck_convert_opts defaults = { 0 };
  struct ck_convert_stats local;
  struct ck_bundle_writer_opts wo = { 0 };
  struct h5_tf c = { .err = err };
  struct ck_srcid id = { 0 };
  struct ck_h5r *r = NULL;
  size_t bufsize;
  uint8_t *buf = NULL;
  char *dir = NULL, *wprefix = NULL, *src_base = NULL, source_id[64];
  double t0 = ck_now();
  int rc, state;

  o = o ? o : &defaults;
  st = st ? st : &local;
  memset(st, 0, sizeof(*st));
  c.o = o;
  bufsize = ck_convert_chunk(o);
  if ((dir = ck_dirname(dst_prefix)) == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  state = !o->no_checkpoint_file && ck_state_usable(dir, st);
  if ((rc = ck_h5r_open(src, &r, err)) != 0)
    goto out;
  ck_h5r_set_threads(r, o->threads > 0 ? o->threads : 2, o->buffer_size);
  if ((rc = ck_srcid_add(&id, src, err)) != 0)
    goto out;
  if ((buf = malloc(bufsize)) == NULL || (src_base = ck_basename(src)) == NULL) {
    rc = ck_err_set(err, -ENOMEM, "out of memory");
    goto out;
  }
  ck_srcid_format(&id, source_id, sizeof(source_id));
  wo.mark_name = src_base;
  wo.keep_foreign = o->keep_foreign;
  wo.keep_cached = o->verify;
  wo.mode = o->output_mode;
  wo.chgrp = o->output_chgrp;
  wo.gid = o->output_gid;
  wo.mark_id = source_id;
  wo.max_shard_bytes = o->max_shard_bytes;
  wo.expected_entries = ck_h5r_count(r);
  /* large appends bypass the writer's buffer, so a small one suffices */
  wo.buffer_size = 1u << 20;
  if (o->nrules) {
    wo.shard_of = ck_rule_shard;
    wo.shard_ctx = (void *)o;
  }
  for (size_t i = 0; i < ck_h5r_count(r); i++) {
    const struct ck_h5_tensor *t = ck_h5r_tensor(r, i);
    c.prog.total += ck_dtype_size(t->dtype) ? t->nelem * ck_dtype_size(t->dtype) : 0;
  }
  ck_progress_init(&c.prog, o);
  /* with verify, the bundle is written and checked under a temporary prefix beside
   * the output, and renamed into place only once it verifies */
  if (o->verify && (wprefix = ck_temp_name(dst_prefix)) == NULL) {
    rc = ck_err_set(err, -ENOMEM, "out of memory");
    goto out;
  }
  if ((rc = ck_bundle_writer_open(wprefix ? wprefix : dst_prefix, &wo, &c.w, err)) != 0)
    goto out;
  for (size_t i = 0; i < ck_h5r_count(r) && rc == 0; i++) {
    const struct ck_h5_tensor *t = ck_h5r_tensor(r, i);
    rc = one_tensor(&c, r, t, buf, bufsize, err);
    st->tensors++;
  }
  st->bytes = atomic_load(&c.prog.done); /* every byte written, strings' and variants' too */
  if (rc == 0)
    rc = ck_srcid_check(&id, err);
  if (rc != 0) {
    ck_bundle_writer_abort(c.w);
    goto out;
  }
  if (!wprefix) { /* the reader is done: its listing and libhdf5's state go before the index is built */
    st->skipped = ck_h5r_skipped_count(r);
    ck_h5r_close(r);
    r = NULL;
  }
  if ((rc = ck_bundle_writer_finish(c.w, err)) != 0)
    goto out;
  if (wprefix) {
    if ((rc = verify_output(wprefix, r, buf, bufsize, o->threads, err)) == 0 &&
        (rc = ck_srcid_check(&id, err)) == 0)
      rc = ck_bundle_move(wprefix, dst_prefix, o->keep_foreign, err);
    if (rc != 0) {
      ck_bundle_move(wprefix, NULL, 0, NULL); /* what did not verify is never published */
      goto out;
    }
  }
  if (state)
    ck_state_update(dir, dst_prefix, st);
out:
  if (r)
    st->skipped = ck_h5r_skipped_count(r);
  ck_progress_done(&c.prog);
  st->seconds = ck_now() - t0;
  ck_srcid_free(&id);
  ck_h5r_close(r);
  free(wprefix);
  free(src_base);
  free(buf);
  free(dir);
  return rc;
}
