/* inotify watcher.
 *
 * A watch is added to a directory before the directory is listed, so a file created
 * in between is seen at least once (by the event or by the listing); duplicates are
 * harmless because the scheduler works on the state of files, not on events. When
 * the inotify queue overflows or the watch limit is reached, the periodic rescan
 * (and an immediate one on overflow) finds what the events missed. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "decide.h"
#include "fileio.h"
#include "hmap.h"
#include "log.h"
#include "watch.h"

#define MASK (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE_SELF | IN_MOVE_SELF | \
              IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK)

struct wdir {
  char *path;
  int root;
};

struct wroot {
  int id;
  char *path;
  int recursive;
  int events;
  int active;
};

struct ck_watch {
  uv_loop_t *loop;
  uv_poll_t poll;
  int fd;
  struct wdir *dirs; /* indexed by watch descriptor */
  int ndirs_cap;
  size_t nwatched;
  struct ck_hmap *by_path; /* path -> wd + 1 */
  struct wroot *roots;
  int nroots;
  int limit_logged;
  struct ck_hmap *skips;  /* paths skipped for a reason, each logged once */
  int scans;              /* rescan walks in flight on libuv's pool */
  void (*scans_done)(void *ctx);
  void *scans_ctx;
  int closing;            /* closed while walks were in flight: freed by the last */
  int poll_closed;
  ck_watch_file_fn fn;
  void *ctx;
};

static void forget(struct ck_watch *w, int wd)
{
  if (wd < 0 || wd >= w->ndirs_cap || w->dirs[wd].path == NULL)
    return;
  ck_hmap_del(w->by_path, w->dirs[wd].path);
  free(w->dirs[wd].path);
  w->dirs[wd].path = NULL;
  w->nwatched--;
}

static int remember(struct ck_watch *w, int wd, const char *path, int root)
{
  if (wd >= w->ndirs_cap) {
    int cap = w->ndirs_cap ? w->ndirs_cap : 256;
    struct wdir *nd;
    while (cap <= wd)
      cap *= 2;
    if ((nd = realloc(w->dirs, (size_t)cap * sizeof(*nd))) == NULL)
      return -ENOMEM;
    memset(nd + w->ndirs_cap, 0, (size_t)(cap - w->ndirs_cap) * sizeof(*nd));
    w->dirs = nd;
    w->ndirs_cap = cap;
  }
  if (w->dirs[wd].path) /* the same directory again: inotify reuses the descriptor */
    return 0;
  w->dirs[wd].path = strdup(path);
  w->dirs[wd].root = root;
  w->nwatched++;
  ck_hmap_put(w->by_path, path, (void *)(intptr_t)(wd + 1), NULL);
  return 0;
}

/* A directory moved out of its place (or renamed within the tree): its watches and
 * those below it carry paths that are no longer true. Drop them; a move into a tree
 * rescans the directory under its new name. */
static void forget_tree(struct ck_watch *w, const char *path)
{
  size_t len = strlen(path);

  for (int wd = 0; wd < w->ndirs_cap; wd++) {
    const char *p = w->dirs[wd].path;
    if (p && strncmp(p, path, len) == 0 && (p[len] == 0 || p[len] == '/')) {
      inotify_rm_watch(w->fd, wd);
      forget(w, wd);
    }
  }
}

static struct wroot *root_of(struct ck_watch *w, int id)
{
  for (int i = 0; i < w->nroots; i++)
    if (w->roots[i].id == id && w->roots[i].active)
      return &w->roots[i];
  return NULL;
}

static void scan_dir(struct ck_watch *w, struct wroot *r, const char *path, int initial, int depth);

/* A path the walk does not enter or report, and why: logged once per path at info
 * (a rescan every minute must not repeat it). */
static void note_skip(struct ck_watch *w, const char *path, const char *why)
{
  struct ck_log_fields f = { path, NULL, -1, -1, NULL, NULL, NULL, 0 };

  if (ck_hmap_get(w->skips, path) != NULL)
    return;
  ck_hmap_put(w->skips, path, (void *)1, NULL);
  ck_log(CK_LOG_INFO, "skip_path", &f, "not watched: %s", why);
}

static void add_watch(struct ck_watch *w, struct wroot *r, const char *path)
{
  int wd;

  if (!r->events || ck_hmap_get(w->by_path, path))
    return;
  wd = inotify_add_watch(w->fd, path, MASK);
  if (wd < 0) {
    if (errno == ENOSPC && !w->limit_logged) {
      struct ck_log_fields f = { path, NULL, -1, -1, NULL, "inotify watch limit reached", NULL, 0 };
      ck_log(CK_LOG_WARN, "watch_limit", &f,
             "inotify watch limit reached (fs.inotify.max_user_watches): directories beyond it are found by rescans only");
      w->limit_logged = 1;
    }
    return;
  }
  remember(w, wd, path, r->id);
}

static void scan_dir(struct ck_watch *w, struct wroot *r, const char *path, int initial, int depth)
{
  DIR *d;
  struct dirent *de;

  if (depth > 64)
    return;
  add_watch(w, r, path); /* before listing: nothing created meanwhile is missed */
  if ((d = opendir(path)) == NULL) {
    note_skip(w, path, strerror(errno));
    return;
  }
  while ((de = readdir(d)) != NULL) {
    char *child;
    struct stat st;
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
      continue;
    if ((child = ck_path_join(path, de->d_name)) == NULL)
      continue;
    /* lstat: a symbolic link is never followed out of the tree */
    if (lstat(child, &st) == 0) {
      if (S_ISDIR(st.st_mode)) {
        if (r->recursive && !ck_decide_temp_dir(de->d_name))
          scan_dir(w, r, child, initial, depth + 1);
      } else if (S_ISREG(st.st_mode)) {
        w->fn(w->ctx, r->id, child, &st, initial);
      } else if (S_ISLNK(st.st_mode)) {
        note_skip(w, child, "a symbolic link (never followed)");
      }
    }
    free(child);
  }
  closedir(d);
}

static void on_event(struct ck_watch *w, const struct inotify_event *ev)
{
  struct wdir *d;
  struct wroot *r;
  char *path;

  if (ev->mask & IN_Q_OVERFLOW) {
    ck_log(CK_LOG_WARN, "overflow", CK_LOG_NO_FIELDS, "inotify queue overflowed: rescanning every tree");
    ck_watch_rescan(w, NULL, NULL);
    return;
  }
  if (ev->wd < 0 || ev->wd >= w->ndirs_cap || (d = &w->dirs[ev->wd])->path == NULL)
    return;
  if (ev->mask & IN_IGNORED) {
    forget(w, ev->wd);
    return;
  }
  if (ev->len == 0 || (r = root_of(w, d->root)) == NULL)
    return;
  if ((path = ck_path_join(d->path, ev->name)) == NULL)
    return;
  if (ev->mask & IN_ISDIR) {
    if (ev->mask & IN_MOVED_FROM)
      forget_tree(w, path);
    else if ((ev->mask & (IN_CREATE | IN_MOVED_TO)) && r->recursive && !ck_decide_temp_dir(ev->name))
      scan_dir(w, r, path, 0, 1); /* a new or moved-in directory, maybe with files already in it */
  } else if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE)) {
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISREG(st.st_mode))
      w->fn(w->ctx, r->id, path, &st, 0);
  }
  free(path);
}

static void on_readable(uv_poll_t *h, int status, int events)
{
  struct ck_watch *w = h->data;
  char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
  ssize_t n;

  (void)status;
  (void)events;
  while ((n = read(w->fd, buf, sizeof(buf))) > 0) {
    for (char *p = buf; p < buf + n;) {
      const struct inotify_event *ev = (const struct inotify_event *)p;
      on_event(w, ev);
      p += sizeof(*ev) + ev->len;
    }
  }
}

int ck_watch_init(uv_loop_t *loop, ck_watch_file_fn fn, void *ctx, struct ck_watch **out)
{
  struct ck_watch *w = calloc(1, sizeof(*w));

  *out = NULL;
  if (w == NULL)
    return -ENOMEM;
  w->loop = loop;
  w->fn = fn;
  w->ctx = ctx;
  w->by_path = ck_hmap_new();
  w->skips = ck_hmap_new();
  if ((w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0) {
    int rc = -errno;
    ck_hmap_free(w->by_path);
    ck_hmap_free(w->skips);
    free(w);
    return rc;
  }
  uv_poll_init(loop, &w->poll, w->fd);
  w->poll.data = w;
  uv_poll_start(&w->poll, UV_READABLE, on_readable);
  *out = w;
  return 0;
}

static const char *network_fs(const char *path)
{
  struct statfs s;

  if (statfs(path, &s) != 0)
    return NULL;
  switch ((unsigned long)s.f_type) {
  case 0x6969: return "NFS";
  case 0x517B: return "SMB";
  case 0xFF534D42: return "CIFS";
  case 0xFE534D42: return "SMB2";
  case 0x65735546: return "FUSE";
  case 0x0BD00BD0: return "Lustre";
  case 0x47504653: return "GPFS";
  case 0x00C36400: return "CephFS";
  case 0x01021997: return "9P";
  case 0x5346414F: return "AFS";
  default: return NULL;
  }
}

int ck_watch_add_root(struct ck_watch *w, int root, const char *path, int recursive, int events)
{
  struct wroot *nr = realloc(w->roots, (size_t)(w->nroots + 1) * sizeof(*nr)), *r;
  const char *net;
  struct stat st;

  if (nr == NULL)
    return -ENOMEM;
  w->roots = nr;
  if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode))
    return -ENOTDIR;
  r = &w->roots[w->nroots++];
  r->id = root;
  r->path = strdup(path);
  r->recursive = recursive;
  r->events = events;
  r->active = 1;
  if ((net = network_fs(path)) != NULL) {
    struct ck_log_fields f = { path, NULL, -1, -1, NULL, NULL, NULL, 0 };
    ck_log(CK_LOG_WARN, "network_fs", &f,
           "%s filesystem: inotify does not see other hosts' writes there; periodic rescans find them", net);
  }
  scan_dir(w, r, path, 1, 0);
  {
    struct ck_log_fields f = { path, NULL, -1, -1, NULL, NULL, NULL, 0 };
    ck_log(CK_LOG_INFO, "watch", &f, "watching %s (%zu directories with inotify in total)", path, w->nwatched);
  }
  return 0;
}

void ck_watch_remove_root(struct ck_watch *w, int root)
{
  for (int wd = 0; wd < w->ndirs_cap; wd++)
    if (w->dirs[wd].path && w->dirs[wd].root == root) {
      inotify_rm_watch(w->fd, wd);
      forget(w, wd);
    }
  for (int i = 0; i < w->nroots; i++)
    if (w->roots[i].id == root)
      w->roots[i].active = 0;
}

/* ---- rescans, walked on libuv's file-system pool ----
 * A rescan lists every tree in a worker thread (opendir, readdir, lstat: on NFS or
 * Lustre each may take milliseconds), then applies the listing on the loop: watches
 * added for directories missing one, every regular file reported. Only the walk
 * leaves the loop; the watch table and the callbacks stay on it. */
struct found { /* what the scheduler uses of a stat, kept small: trees can hold 10^5 files */
  char *path;
  int skip_errno;   /* > 0: a directory that could not be listed; -1: a symbolic link */
  uint64_t ino, size;
  int64_t mtime_s, mtime_ns;
  uint32_t mode;
};

struct scan_job {
  uv_work_t req;
  struct ck_watch *w;
  int root;
  char *path;
  int recursive;
  struct found *v;
  size_t n, cap;
};

static int found_add(struct scan_job *j, char *path, const struct stat *st)
{
  if (j->n == j->cap) {
    size_t cap = j->cap ? j->cap * 2 : 256;
    struct found *nv = realloc(j->v, cap * sizeof(*nv));
    if (nv == NULL)
      return -ENOMEM;
    j->v = nv;
    j->cap = cap;
  }
  j->v[j->n++] = (struct found){ path, 0, (uint64_t)st->st_ino, (uint64_t)st->st_size, (int64_t)st->st_mtim.tv_sec,
                                 (int64_t)st->st_mtim.tv_nsec, (uint32_t)st->st_mode };
  return 0;
}

/* Depth-first over the listing itself: entry i's children are appended after it,
 * so the list is its own work queue (directories are the entries still to open). */
static void scan_work(uv_work_t *req)
{
  struct scan_job *j = req->data;
  struct stat st;
  char *root = strdup(j->path);

  if (root == NULL || lstat(root, &st) != 0 || !S_ISDIR(st.st_mode) || found_add(j, root, &st) != 0) {
    free(root);
    return;
  }
  for (size_t i = 0; i < j->n; i++) {
    DIR *d;
    struct dirent *de;
    if (!S_ISDIR(j->v[i].mode) || (i > 0 && !j->recursive))
      continue;
    if ((d = opendir(j->v[i].path)) == NULL) {
      j->v[i].skip_errno = errno ? errno : EIO;
      continue;
    }
    while ((de = readdir(d)) != NULL) {
      char *child;
      if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
        continue;
      if ((child = ck_path_join(j->v[i].path, de->d_name)) == NULL)
        continue;
      /* lstat: a symbolic link is never followed out of the tree */
      if (lstat(child, &st) != 0 ||
          !(S_ISREG(st.st_mode) || S_ISLNK(st.st_mode) || (S_ISDIR(st.st_mode) && !ck_decide_temp_dir(de->d_name))) ||
          found_add(j, child, &st) != 0)
        free(child);
      else if (S_ISLNK(st.st_mode))
        j->v[j->n - 1].skip_errno = -1;
    }
    closedir(d);
  }
}

static void maybe_free_watch(struct ck_watch *w);

static void scan_done(uv_work_t *req, int status)
{
  struct scan_job *j = req->data;
  struct ck_watch *w = j->w;
  struct wroot *r = root_of(w, j->root);

  for (size_t i = 0; i < j->n; i++) {
    const struct found *f = &j->v[i];
    if (status == 0 && r && !w->closing) {
      struct stat st = { 0 };
      st.st_ino = (ino_t)f->ino;
      st.st_size = (off_t)f->size;
      st.st_mtim.tv_sec = (time_t)f->mtime_s;
      st.st_mtim.tv_nsec = (long)f->mtime_ns;
      st.st_mode = (mode_t)f->mode;
      if (f->skip_errno)
        note_skip(w, f->path, f->skip_errno < 0 ? "a symbolic link (never followed)" : strerror(f->skip_errno));
      if (S_ISDIR(st.st_mode))
        add_watch(w, r, f->path);
      else if (S_ISREG(st.st_mode))
        w->fn(w->ctx, r->id, f->path, &st, 0);
    }
    free(f->path);
  }
  free(j->v);
  free(j->path);
  free(j);
  if (--w->scans == 0 && w->scans_done && !w->closing) {
    void (*done)(void *) = w->scans_done;
    w->scans_done = NULL;
    done(w->scans_ctx);
  }
  maybe_free_watch(w);
}

int ck_watch_rescanning(const struct ck_watch *w)
{
  return w->scans > 0;
}

void ck_watch_rescan(struct ck_watch *w, void (*done)(void *ctx), void *ctx)
{
  if (w->scans > 0) /* the previous rescan is still walking: it covers this one */
    return;
  w->scans_done = done;
  w->scans_ctx = ctx;
  for (int i = 0; i < w->nroots; i++) {
    struct scan_job *j;
    if (!w->roots[i].active || (j = calloc(1, sizeof(*j))) == NULL)
      continue;
    j->req.data = j;
    j->w = w;
    j->root = w->roots[i].id;
    j->recursive = w->roots[i].recursive;
    if ((j->path = strdup(w->roots[i].path)) == NULL || uv_queue_work(w->loop, &j->req, scan_work, scan_done) != 0) {
      free(j->path);
      free(j);
      continue;
    }
    w->scans++;
  }
  if (w->scans == 0 && done) {
    w->scans_done = NULL;
    done(ctx);
  }
}

size_t ck_watch_dirs(const struct ck_watch *w)
{
  return w->nwatched;
}

static void maybe_free_watch(struct ck_watch *w)
{
  if (!w->closing || !w->poll_closed || w->scans > 0)
    return;
  close(w->fd); /* only once libuv no longer polls it */
  for (int i = 0; i < w->ndirs_cap; i++)
    free(w->dirs[i].path);
  for (int i = 0; i < w->nroots; i++)
    free(w->roots[i].path);
  free(w->dirs);
  free(w->roots);
  ck_hmap_free(w->by_path);
  ck_hmap_free(w->skips);
  free(w);
}

static void poll_closed(uv_handle_t *h)
{
  struct ck_watch *w = h->data;

  w->poll_closed = 1;
  maybe_free_watch(w);
}

void ck_watch_close(struct ck_watch *w)
{
  if (w == NULL)
    return;
  w->closing = 1;
  uv_poll_stop(&w->poll);
  uv_close((uv_handle_t *)&w->poll, poll_closed);
}
