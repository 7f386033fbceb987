/* ck_convert: any source to any sink (pipeline.h), with the TF <-> HDF5 fast paths
 * as specialisations for those two pairs. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"
#include "dtype.h"
#include "fileio.h"
#include "pipeline.h"
#include "tensor_crc.h"

struct conv {
  const struct ck_convert_opts *o;
  struct ck_source *src;
  struct ck_sink *sink;
  size_t *sel;          /* tensors the sink takes, in order */
  size_t nsel;
  uint32_t *crc;        /* verify: unmasked crc32c of each selected tensor's bytes */
  uint32_t cur;
  struct ck_progress prog;
  struct ck_err *err;
};

static int append(void *ctx, const void *data, size_t len)
{
  struct conv *c = ctx;
  int rc = c->sink->ops->append(c->sink, data, len, c->err);

  if (rc == 0 && c->crc)
    c->cur = ck_crc32c_extend(c->cur, data, len);
  if (rc == 0 && (rc = ck_progress_add(&c->prog, len)) != 0)
    ck_err_set(c->err, rc, "cancelled");
  return rc;
}

/* Choose the tensors the target can hold; list the others (or refuse with strict). */
static int select_tensors(struct conv *c, int to, struct ck_convert_stats *st)
{
  size_t n = c->src->count, listed = 0, w = 0;
  int rc = 0;

  if ((c->sel = malloc((n ? n : 1) * sizeof(*c->sel))) == NULL)
    return ck_err_set(c->err, -ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    struct ck_tinfo t;
    c->src->ops->info(c->src, i, &t);
    if (c->sink->ops->accepts(t.dtype)) {
      c->sel[c->nsel++] = i;
      c->prog.total += t.nbytes;
      continue;
    }
    if (c->o->strict)
      return ck_err_set(c->err, CK_EUNSUP, "%s: tensor %s has dtype %s, which %s files cannot hold (--strict)",
                        c->src->path, t.name, ck_dtype_name(t.dtype), ck_format_name(to));
    if (listed++ == 0)
      w = (size_t)snprintf(st->warning, sizeof(st->warning), "skipped (%s cannot hold them):", ck_format_name(to));
    if (w < sizeof(st->warning))
      w += (size_t)snprintf(st->warning + w, sizeof(st->warning) - w, " %s (%s)", t.name,
                            ck_dtype_name(t.dtype) ? ck_dtype_name(t.dtype) + 3 : "?");
    st->skipped++;
  }
  return rc;
}

static int one_tensor(struct conv *c, size_t j, void *buf, size_t bufsize)
{
  struct ck_tinfo t;
  int rc;

  c->src->ops->info(c->src, c->sel[j], &t);
  if ((rc = c->sink->ops->tensor_begin(c->sink, &t, c->err)) != 0)
    return rc;
  c->cur = 0;
  if ((rc = c->src->ops->stream(c->src, c->sel[j], buf, bufsize, append, c, c->err)) != 0)
    return rc;
  if (c->crc)
    c->crc[j] = c->cur;
  return c->sink->ops->tensor_end(c->sink, c->err);
}

/* Reopen the output and compare every tensor's crc32c with what was written. */
static int crc_sink(void *ctx, const void *data, size_t len)
{
  uint32_t *crc = ctx;

  *crc = ck_crc32c_extend(*crc, data, len);
  return 0;
}

static int verify(struct conv *c, const char *work, int to, void *buf, size_t bufsize)
{
  struct ck_source *out = NULL;
  size_t j = 0;
  /* the output is read back under the budget its source was read with (a header or
   * a pickle may be larger than one streaming chunk) */
  int rc = ck_source_open(work, to, c->o->buffer_size ? c->o->buffer_size : CK_CONVERT_DEFAULT_BUFFER, &out, c->err);

  if (rc != 0)
    return rc;
  if (out->count != c->nsel) {
    rc = ck_err_set(c->err, CK_EFORMAT, "%s: verify: %zu tensors, expected %zu", work, out->count, c->nsel);
    goto out;
  }
  /* outputs keep the order they were written in; names must match too */
  for (j = 0; j < c->nsel && rc == 0; j++) {
    struct ck_tinfo a, b;
    uint32_t crc = 0;
    c->src->ops->info(c->src, c->sel[j], &a);
    out->ops->info(out, j, &b);
    if (a.nlen != b.nlen || memcmp(a.name, b.name, a.nlen) != 0 || a.dtype != b.dtype || a.nbytes != b.nbytes) {
      rc = ck_err_set(c->err, CK_EFORMAT, "%s: verify: tensor %zu is %s (dtype %d), expected %s (dtype %d)", work, j,
                      b.name, b.dtype, a.name, a.dtype);
      break;
    }
    if ((rc = out->ops->stream(out, j, buf, bufsize, crc_sink, &crc, c->err)) == 0 && crc != c->crc[j])
      rc = ck_err_set(c->err, CK_ECHECKSUM, "%s: verify: %s: crc32c %08x, written %08x", work, b.name, crc, c->crc[j]);
  }
out:
  ck_source_close(out);
  return rc;
}

/* Move a verified output from its work name to dst, or (dst NULL) remove it. */
static int move_output(int to, const char *work, const char *dst, int keep_foreign, struct ck_err *err)
{
  char *dir;
  int rc;

  if (to == CK_FMT_SAVER)
    return ck_bundle_move(work, dst, keep_foreign, err);
  if (dst == NULL) {
    unlink(work);
    return 0;
  }
  if ((rc = ck_publish_rename(work, dst, keep_foreign)) != 0)
    return ck_err_set(err, rc, "%s: %s", dst, ck_publish_error(rc));
  dir = ck_dirname(dst);
  rc = dir ? ck_fsync_dir(dir) : -ENOMEM;
  free(dir);
  return rc ? ck_err_set(err, rc, "%s: fsync of the directory failed", dst) : 0;
}

static int run(struct conv *c, const char *dst, int to, struct ck_convert_stats *st)
{
  const struct ck_convert_opts *o = c->o;
  struct ck_convert_opts wo = *o;
  struct ck_sink_opts so = { .conv = &wo, .mark_name = c->src->source_name, .mark_id = c->src->source_id };
  size_t bufsize = ck_convert_chunk(o);
  char *work = NULL, *dir = NULL;
  void *buf = NULL;
  int rc, state = 0;

  if (o->verify) { /* written and checked under a temporary name, moved into place after */
    if ((work = ck_temp_name(dst)) == NULL)
      return ck_err_set(c->err, -ENOMEM, "out of memory");
    wo.keep_foreign = 0;
  }
  if (to == CK_FMT_SAVER) {
    if ((dir = ck_dirname(dst)) == NULL) {
      rc = ck_err_set(c->err, -ENOMEM, "out of memory");
      goto out;
    }
    state = !o->no_checkpoint_file && ck_state_usable(dir, st);
  }
  if ((rc = ck_sink_open(to, work ? work : dst, &so, &c->sink, c->err)) != 0)
    goto out;
  if ((rc = select_tensors(c, to, st)) != 0)
    goto out;
  if ((buf = malloc(bufsize)) == NULL || (o->verify && (c->crc = calloc(c->nsel + 1, sizeof(*c->crc))) == NULL)) {
    rc = ck_err_set(c->err, -ENOMEM, "out of memory");
    goto out;
  }
  ck_progress_init(&c->prog, o);
  if ((rc = c->sink->ops->begin(c->sink, c->src, c->sel, c->nsel, c->err)) != 0)
    goto out;
  for (size_t j = 0; j < c->nsel && rc == 0; j++)
    rc = one_tensor(c, j, buf, bufsize);
  st->tensors = c->nsel;
  st->bytes = atomic_load(&c->prog.done);
  st->skipped += c->src->nskipped;
  if (rc == 0)
    rc = ck_srcid_check(&c->src->id, c->err);
  if (rc != 0)
    goto out;
  rc = c->sink->ops->finish(c->sink, c->err);
  c->sink = NULL;
  if (rc != 0 && work)
    move_output(to, work, NULL, 0, NULL); /* finish may have failed after its own rename */
  if (rc == 0 && work) {
    if ((rc = verify(c, work, to, buf, bufsize)) == 0 && (rc = ck_srcid_check(&c->src->id, c->err)) == 0)
      rc = move_output(to, work, dst, o->keep_foreign, c->err);
    if (rc != 0)
      move_output(to, work, NULL, 0, NULL); /* what did not verify is never published */
  }
  if (rc == 0 && state)
    ck_state_update(dir, dst, st);
out:
  if (c->sink)
    c->sink->ops->abort(c->sink);
  free(buf);
  free(work);
  free(dir);
  return rc;
}

int ck_convert(const char *src, const char *dst, int to, const struct ck_convert_opts *o,
               struct ck_convert_stats *st, struct ck_err *err)
{
  struct ck_convert_opts defaults = { 0 };
  struct ck_convert_stats local;
  struct conv c = { .err = err };
  double t0 = ck_now();
  int from, rc;

  o = o ? o : &defaults;
  st = st ? st : &local;
  memset(st, 0, sizeof(*st));
  c.o = o;
  if (to == CK_FMT_AUTO)
    to = ck_format_of_name(dst);
  if ((rc = ck_format_detect(src, &from, err)) != 0)
    return rc;
  if (from == CK_FMT_SAVER && to == CK_FMT_H5)
    return ck_convert_tf_to_h5(src, dst, o, st, err);
  if (from == CK_FMT_H5 && to == CK_FMT_SAVER)
    return ck_convert_h5_to_tf(src, dst, o, st, err);
  if (from == to)
    return ck_err_set(err, CK_EINVAL, "%s: already a %s checkpoint", src, ck_format_name(from));
  if ((rc = ck_source_open(src, from, o->buffer_size ? o->buffer_size : CK_CONVERT_DEFAULT_BUFFER, &c.src, err)) != 0)
    return rc;
  rc = run(&c, dst, to, st);
  ck_progress_done(&c.prog);
  st->seconds = ck_now() - t0;
  ck_source_close(c.src);
  free(c.sel);
  free(c.crc);
  return rc;
}
