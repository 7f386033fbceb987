/* Scheduler: the periodic rescan, and the sweep after it: candidates whose
 * sources are gone are forgotten, and with mirror_deletes their outputs (unchanged
 * since converted) are removed. */
#include "config.h"

#include <errno.h>
#include <fnmatch.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "bundle.h"
#include "ckptfile.h"
#include "decide.h"
#include "fileio.h"
#include "h5.h"
#include "hmap.h"
#include "hook.h"
#include "log.h"
#include "pool.h"
#include "probe.h"
#include "record.h"
#include "sched.h"
#include "status.h"
#include "transition.h"
#include "watch.h"

#include "sched_int.h"

struct sweep_ctx {
  struct ck_sched *s;
  struct candvec gone;    /* its files are gone */
  struct candvec unblock; /* BLOCKED, and its directory's permissions changed */
};

/* What can unblock a job in a directory: its mode and owner, and whether its file
 * system is mounted read-only (entries coming and going do not count). */
int sched_dir_stamp(const char *key, struct fstamp *out)
{
  char *dir = ck_dirname(key);
  struct stat st;
  struct statvfs vfs;
  int rc = dir && stat(dir, &st) == 0 && statvfs(dir, &vfs) == 0 ? 0 : -1;

  free(dir);
  if (rc == 0)
    *out = (struct fstamp){ (uint64_t)st.st_mode | (uint64_t)st.st_uid << 32, (uint64_t)st.st_gid,
                            (vfs.f_flag & ST_RDONLY) != 0 };
  return rc;
}

static void collect_gone(void *ctx, const char *key, void *value)
{
  struct sweep_ctx *w = ctx;
  struct cand *c = value;
  struct fstamp now;

  (void)key;
  if (c->gen == w->s->gen && c->state == CK_ST_BLOCKED && sched_dir_stamp(c->key, &now) == 0 &&
      memcmp(&now, &c->outdir, sizeof(now)) != 0)
    sched_candvec_push(&w->unblock, c); /* its directory's permissions changed: try again */
  if (c->gen == w->s->gen || c->checking || c->state == CK_ST_QUEUED || c->state == CK_ST_RUNNING)
    return;
  sched_candvec_push(&w->gone, c);
}


/* 1 if path exists and was last modified no later than the job that wrote it ended:
 * still the output ckptd wrote, not a file someone put there since. */
static int unchanged_since(const char *path, double when)
{
  struct stat st;

  return lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
         (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec / 1e9 <= when + 1.0;
}

/* Remove a bundle ckptd wrote: the index first (the bundle is gone for readers at
 * once), then its data files. */
static int remove_bundle(const char *prefix, double when)
{
  char *index = ck_asprintf("%s.index", prefix);
  struct ck_bundle *b = NULL;
  int n = 0, rc = -1;

  if (index && unchanged_since(index, when) && ck_bundle_open(prefix, CK_BUNDLE_INDEX_ONLY, &b, NULL) == 0) {
    n = ck_bundle_num_shards(b);
    ck_bundle_close(b);
    if ((rc = unlink(index)) == 0)
      for (int i = 0; i < n; i++) {
        char *data = ck_asprintf("%s.data-%05d-of-%05d", prefix, i, n);
        if (data)
          unlink(data);
        free(data);
      }
  }
  free(index);
  return rc;
}

/* Retention deleted a converted source (all its files): with mirror_deletes, its
 * output goes too, if it is still the one ckptd wrote, and leaves any checkpoint
 * file that ckptd maintains. */
static void mirror_delete(struct ck_sched *s, const struct cand *c)
{
  const struct sroot *r = sched_root(s, c->root);
  const struct ck_rec *rec = ck_record_get(s->rec, c->key);
  char *probe = ck_decide_output_file(c->key, c->kind), *okey = NULL;
  struct ck_log_fields f = { c->key, NULL, -1, -1, rec ? rec->output : NULL, NULL, NULL, 0 };
  int gone = probe && access(probe, F_OK) != 0, removed, to_bundle;

  free(probe);
  if (!gone || r == NULL || !r->conf->mirror_deletes || rec == NULL || rec->status != CK_REC_DONE || !rec->output)
    return;
  to_bundle = ck_decide_classify(rec->output, &okey) == CK_KIND_NONE; /* an output prefix names no file */
  free(okey);
  if (!to_bundle)
    removed = unchanged_since(rec->output, rec->when) && unlink(rec->output) == 0;
  else
    removed = remove_bundle(rec->output, rec->when) == 0;
  if (!removed) {
    ck_log(CK_LOG_INFO, "mirror_delete", &f, "source deleted; its output was changed or is gone: left alone");
    return;
  }
  ck_log(CK_LOG_INFO, "mirror_delete", &f, "source deleted: its output removed too (mirror_deletes)");
  if (to_bundle) {
    char *dir = ck_dirname(rec->output), *base = ck_basename(rec->output);
    struct ck_err err = { 0 };
    int updated;
    if (dir && base && ck_ckptfile_forget(dir, base, &updated, &err) != 0)
      ck_log(CK_LOG_WARN, "checkpoint_file", &f, "%s", err.msg);
    free(dir);
    free(base);
  }
}

static void rescan_done(void *ctx)
{
  struct ck_sched *s = ctx;
  struct sweep_ctx w = { s, { NULL, 0, 0 }, { NULL, 0, 0 } };

  if (s->stopping)
    return;
  s->metrics.rescans++;
  s->metrics.rescan_seconds = sched_mono() - s->rescan_started;
  ck_hmap_each(s->cands, collect_gone, &w);
  for (size_t i = 0; i < w.unblock.n; i++) {
    struct ck_log_fields f = { w.unblock.v[i]->key, NULL, -1, -1, NULL, NULL, NULL, 0 };
    ck_log(CK_LOG_INFO, "unblock", &f, "the output directory's permissions changed: trying again");
    sched_settle(s, w.unblock.v[i], 0);
  }
  free(w.unblock.v);
  for (size_t i = 0; i < w.gone.n; i++) {
    mirror_delete(s, w.gone.v[i]);
    ck_hmap_del(s->cands, w.gone.v[i]->key);
    sched_free_cand(NULL, NULL, w.gone.v[i]);
  }
  free(w.gone.v);
  sched_mark_status(s);
}


void sched_on_rescan(uv_timer_t *timer)
{
  struct ck_sched *s = timer->data;

  if (ck_watch_rescanning(s->watch))
    return; /* a slow filesystem: the walk in flight is this rescan */
  sched_add_pending_roots(s);
  s->gen++; /* before anything the walk reports */
  s->rescan_started = sched_mono();
  ck_watch_rescan(s->watch, rescan_done, s);
}
