/* The `checkpoint` file policy (see ckptfile.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ckptfile.h"
#include "ckptstate.h"
#include "decide.h"
#include "fileio.h"

/* An entry's order key: its global step, and its source's mtime (the .h5 it came
 * from if it is still there, else its own .index). */
struct entry {
  char *path;
  char *ts;      /* its all_model_checkpoint_timestamps text, or NULL */
  int64_t step;
  int64_t mtime;
};

static int64_t source_mtime(const char *dir, const char *name)
{
  static const char *const ext[] = { ".h5", ".hdf5", ".index" };
  int64_t m = 0;

  for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]) && m == 0; i++) {
    char *p = name[0] == '/' ? ck_asprintf("%s%s", name, ext[i]) : ck_asprintf("%s/%s%s", dir, name, ext[i]);
    struct stat st;
    if (p && stat(p, &st) == 0)
      m = (int64_t)st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec;
    free(p);
  }
  return m;
}

/* Stable insertion sort, oldest first: a checkpoint file lists a few hundred
 * entries at most (CK_CKPTSTATE_MAX_BYTES bounds it). */
static void sort_entries(struct entry *e, size_t n)
{
  for (size_t i = 1; i < n; i++) {
    struct entry x = e[i];
    size_t k = i;
    while (k > 0 && ck_decide_newer(e[k - 1].step, e[k - 1].mtime, x.step, x.mtime)) {
      e[k] = e[k - 1];
      k--;
    }
    e[k] = x;
  }
}

/* Add name to cs (once), order every entry by (step, mtime), latest last. */
static int relist(const char *dir, const char *name, struct ck_ckptstate *cs)
{
  int aligned = cs->nts == cs->npaths;
  size_t n = 0;
  struct entry *e = calloc(cs->npaths + 1, sizeof(*e));
  struct timespec now;
  int rc = 0;

  if (e == NULL)
    return -ENOMEM;
  clock_gettime(CLOCK_REALTIME, &now);
  for (size_t i = 0; i < cs->npaths; i++) {
    if (strcmp(cs->paths[i], name) == 0) { /* listed again below, with a new timestamp */
      free(cs->paths[i]);
      if (aligned)
        free(cs->timestamps[i]);
      continue;
    }
    e[n].path = cs->paths[i];
    e[n].ts = aligned ? cs->timestamps[i] : NULL;
    n++;
  }
  e[n].path = strdup(name);
  e[n].ts = aligned && cs->nts > 0 ? ck_asprintf("%lld.%06ld", (long long)now.tv_sec, now.tv_nsec / 1000) : NULL;
  if (e[n].path == NULL || (aligned && cs->nts > 0 && e[n].ts == NULL))
    rc = -ENOMEM;
  n++;
  for (size_t i = 0; i < n; i++) {
    e[i].step = ck_decide_step(e[i].path);
    e[i].mtime = source_mtime(dir, e[i].path);
  }
  sort_entries(e, n);
  for (size_t i = 0; i < n; i++) {
    cs->paths[i] = e[i].path;
    if (aligned && cs->nts > 0)
      cs->timestamps[i] = e[i].ts;
  }
  cs->npaths = n;
  if (aligned && cs->nts > 0)
    cs->nts = n;
  free(cs->model_checkpoint_path);
  cs->model_checkpoint_path = strdup(e[n - 1].path);
  free(e);
  return rc == 0 && cs->model_checkpoint_path == NULL ? -ENOMEM : rc;
}

/* Room for one more entry in both arrays, so relist() never reallocates. */
static int reserve(struct ck_ckptstate *cs)
{
  char **p = realloc(cs->paths, (cs->npaths + 1) * sizeof(char *));
  char **t;

  if (p == NULL)
    return -ENOMEM;
  cs->paths = p;
  if ((t = realloc(cs->timestamps, (cs->nts + 1) * sizeof(char *))) == NULL)
    return -ENOMEM;
  cs->timestamps = t;
  return 0;
}

int ck_ckptfile_forget(const char *dir, const char *name, int *updated, struct ck_err *err)
{
  struct ck_ckptstate cs;
  struct ck_err rerr = { 0 };
  size_t k = 0;
  int dfd, rc;

  *updated = 0;
  if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
    return ck_err_set(err, -errno, "%s: %s", dir, strerror(errno));
  if (flock(dfd, LOCK_EX) != 0) {
    rc = ck_err_set(err, -errno, "%s: flock: %s", dir, strerror(errno));
    goto out;
  }
  if ((rc = ck_ckptstate_read(dir, &cs, &rerr)) != 0) {
    rc = 0; /* none, or not one ckptd can edit: nothing to forget */
    goto out;
  }
  if (!cs.ckptd_marker)
    goto done; /* the producer's: never edited */
  for (size_t i = 0; i < cs.npaths; i++) {
    if (strcmp(cs.paths[i], name) == 0) {
      free(cs.paths[i]);
      if (cs.nts == cs.npaths)
        free(cs.timestamps[i]);
      continue;
    }
    cs.paths[k] = cs.paths[i];
    if (cs.nts == cs.npaths)
      cs.timestamps[k] = cs.timestamps[i];
    k++;
  }
  if (k == cs.npaths)
    goto done;
  if (cs.nts == cs.npaths)
    cs.nts = k;
  cs.npaths = k;
  free(cs.model_checkpoint_path);
  cs.model_checkpoint_path = k ? strdup(cs.paths[k - 1]) : NULL; /* entries are kept oldest first */
  if (k == 0) {
    char *path = ck_path_join(dir, "checkpoint");
    rc = path && unlink(path) != 0 ? ck_err_set(err, -errno, "%s: %s", path, strerror(errno)) : 0;
    free(path);
  } else {
    rc = ck_ckptstate_write(dir, &cs, err);
  }
  *updated = rc == 0;
done:
  ck_ckptstate_free(&cs);
out:
  close(dfd);
  return rc;
}

int ck_ckptfile_update(const char *dir, const char *name, int policy, int *updated, char *note, size_t notelen,
                       struct ck_err *err)
{
  struct ck_ckptstate cs;
  struct ck_err rerr = { 0 };
  int dfd, rc;

  *updated = 0;
  note[0] = 0;
  memset(&cs, 0, sizeof(cs));
  if (policy == CK_CKPTFILE_NEVER) {
    snprintf(note, notelen, "update_checkpoint_file = never");
    return 0;
  }
  if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
    return ck_err_set(err, -errno, "%s: %s", dir, strerror(errno));
  if (flock(dfd, LOCK_EX) != 0) { /* one update of this directory at a time, across workers */
    rc = ck_err_set(err, -errno, "%s: flock: %s", dir, strerror(errno));
    goto out;
  }
  rc = ck_ckptstate_read(dir, &cs, &rerr);
  if (rc == CK_ENOTFOUND) {
    memset(&cs, 0, sizeof(cs));
    cs.ckptd_marker = 1; /* ckptd creates it, so ckptd maintains it */
  } else if (rc == CK_EFORMAT || rc == CK_ELIMIT) {
    snprintf(note, notelen, "left alone: %s", rerr.msg);
    rc = 0;
    goto out;
  } else if (rc != 0) {
    if (err)
      *err = rerr;
    goto out;
  } else if (policy == CK_CKPTFILE_AUTO && !cs.ckptd_marker) {
    snprintf(note, notelen, "%s/checkpoint is maintained by its producer: left alone (update_checkpoint_file = auto)",
             dir);
    goto out;
  }
  if ((rc = reserve(&cs)) != 0 || (rc = relist(dir, name, &cs)) != 0) {
    ck_err_set(err, rc, "out of memory");
    goto out;
  }
  if ((rc = ck_ckptstate_write(dir, &cs, err)) == 0)
    *updated = 1;
out:
  ck_ckptstate_free(&cs);
  close(dfd); /* releases the lock */
  return rc;
}
