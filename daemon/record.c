/* Durable record.
 *
 * One line per state change: "v1 STATUS DIRECTION dev ino size mtime_ns duration_ms
 * when" then the source, output and error fields, tab-separated, with tab, newline
 * and backslash escaped. Lines are appended with O_APPEND and fsynced. Replay keeps
 * the last line per source and ignores a torn last line (a crash mid-append);
 * compaction rewrites one line per source into a temporary and renames it over. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "hmap.h"
#include "record.h"

#define MAX_LINE 65536

struct ck_record {
  char *path;
  char *dir;
  int fd;
  int lock_fd;       /* state_dir/lock, flock()ed for as long as the record is open */
  struct ck_hmap *by_src;
  struct ck_hmap *by_output;
  int damaged;
};

static void rec_free(struct ck_rec *e)
{
  if (e == NULL)
    return;
  free(e->src);
  free(e->output);
  free(e->error);
  free(e);
}

static void put_field(FILE *f, const char *s)
{
  fputc('\t', f);
  for (; s && *s; s++) {
    if (*s == '\t')
      fputs("\\t", f);
    else if (*s == '\n')
      fputs("\\n", f);
    else if (*s == '\\')
      fputs("\\\\", f);
    else
      fputc(*s, f);
  }
}

static char *unescape(const char *s, size_t n)
{
  char *o = malloc(n + 1), *q = o;

  if (o == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '\\' && i + 1 < n) {
      i++;
      *q++ = s[i] == 't' ? '\t' : s[i] == 'n' ? '\n' : s[i];
    } else {
      *q++ = s[i];
    }
  }
  *q = 0;
  return o;
}

static char *format(const struct ck_rec *e, size_t *len)
{
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);

  if (f == NULL)
    return NULL;
  fprintf(f, "v1 %d %d %llu %llu %llu %lld %lld %.3f", e->status, e->direction, (unsigned long long)e->id.dev,
          (unsigned long long)e->id.ino, (unsigned long long)e->id.size, (long long)e->id.mtime_ns, e->duration_ms,
          e->when);
  put_field(f, e->src);
  put_field(f, e->output);
  put_field(f, e->error);
  fputc('\n', f);
  fclose(f);
  *len = n;
  return buf;
}

/* Parse one line (without its newline); NULL if damaged. */
static struct ck_rec *parse(const char *line, size_t len)
{
  struct ck_rec *e = calloc(1, sizeof(*e));
  const char *tab = memchr(line, '\t', len), *fields[3] = { 0 };
  size_t flen[3] = { 0 };
  unsigned long long dev, ino, size;
  long long mtime;
  char head[256];
  int k = 0;

  if (e == NULL || tab == NULL || (size_t)(tab - line) >= sizeof(head))
    goto bad;
  memcpy(head, line, (size_t)(tab - line));
  head[tab - line] = 0;
  if (sscanf(head, "v1 %d %d %llu %llu %llu %lld %lld %lf", &e->status, &e->direction, &dev, &ino, &size, &mtime,
             &e->duration_ms, &e->when) != 8 || e->status < 0 || e->status > CK_REC_SKIPPED)
    goto bad;
  e->id = (struct ck_ident){ dev, ino, size, mtime };
  for (const char *p = tab + 1; k < 3; k++) {
    const char *end = line + len, *t = p;
    while (t < end && *t != '\t')
      t++;
    fields[k] = p;
    flen[k] = (size_t)(t - p);
    if (t >= end && k < 2)
      goto bad;
    p = t + 1;
  }
  e->src = unescape(fields[0], flen[0]);
  e->output = flen[1] ? unescape(fields[1], flen[1]) : NULL;
  e->error = flen[2] ? unescape(fields[2], flen[2]) : NULL;
  if (e->src == NULL || e->src[0] == 0)
    goto bad;
  return e;
bad:
  rec_free(e);
  return NULL;
}

static void index_entry(struct ck_record *r, struct ck_rec *e)
{
  void *old = NULL;

  ck_hmap_put(r->by_src, e->src, e, &old);
  if (old) {
    struct ck_rec *o = old;
    if (o->output && ck_hmap_get(r->by_output, o->output) == o)
      ck_hmap_del(r->by_output, o->output);
    rec_free(o);
  }
  if (e->output)
    ck_hmap_put(r->by_output, e->output, e, NULL);
}

static int replay(struct ck_record *r)
{
  FILE *f = fopen(r->path, "r");
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;

  if (f == NULL)
    return errno == ENOENT ? 0 : -errno;
  while ((n = getline(&line, &cap, f)) > 0) {
    struct ck_rec *e;
    if (line[n - 1] != '\n' || n > MAX_LINE) { /* a torn last line, or garbage */
      r->damaged++;
      continue;
    }
    if ((e = parse(line, (size_t)n - 1)) == NULL) {
      r->damaged++;
      continue;
    }
    index_entry(r, e);
  }
  free(line);
  fclose(f);
  return 0;
}

struct compact_ctx {
  FILE *f;
  int rc;
};

static void write_one(void *ctx, const char *key, void *value)
{
  struct compact_ctx *c = ctx;
  size_t len;
  char *s = format(value, &len);

  (void)key;
  if (s == NULL || fwrite(s, 1, len, c->f) != len)
    c->rc = -EIO;
  free(s);
}

static int compact(struct ck_record *r)
{
  char *tmp = ck_temp_name(r->path);
  struct compact_ctx c = { NULL, 0 };
  int fd = tmp ? ck_create_excl(tmp) : -ENOMEM;

  if (fd < 0) {
    free(tmp);
    return fd;
  }
  c.f = fdopen(fd, "w");
  ck_hmap_each(r->by_src, write_one, &c);
  if (fflush(c.f) != 0 || fsync(fd) != 0)
    c.rc = -errno;
  fclose(c.f);
  if (c.rc == 0 && rename(tmp, r->path) != 0)
    c.rc = -errno;
  if (c.rc != 0)
    unlink(tmp);
  else
    c.rc = ck_fsync_dir(r->dir);
  free(tmp);
  return c.rc;
}

/* One instance per state_dir: two daemons on one record both convert and lose
 * each other's lines. The lock file holds the owner's pid for the message. */
static int lock_state_dir(struct ck_record *r, const char *state_dir, struct ck_err *err)
{
  char *path = ck_path_join(state_dir, "lock"), pid[32] = "";
  int rc = 0;
  ssize_t n;

  if (path == NULL)
    return -ENOMEM;
  if ((r->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640)) < 0) {
    rc = ck_err_set(err, -errno, "%s: %s", path, strerror(errno));
    goto out;
  }
  if (flock(r->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
    if ((n = pread(r->lock_fd, pid, sizeof(pid) - 1, 0)) > 0)
      pid[strcspn(pid, "\n")] = 0;
    ck_err_set(err, rc, "%s: state_dir %s is in use by another ckptd%s%s (one instance per state_dir)", path,
               state_dir, pid[0] ? " with pid " : "", pid);
    goto out;
  }
  snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
  if (ftruncate(r->lock_fd, 0) != 0 || pwrite(r->lock_fd, pid, strlen(pid), 0) < 0)
    rc = 0; /* the pid is only for the message */
out:
  free(path);
  return rc;
}

static int open_record(const char *state_dir, int readonly, struct ck_record **out, struct ck_err *err)
{
  struct ck_record *r = calloc(1, sizeof(*r));
  int rc = 0;

  *out = NULL;
  if (r == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  r->fd = -1;
  r->lock_fd = -1;
  if (!readonly && mkdir(state_dir, 0750) != 0 && errno != EEXIST) {
    rc = ck_err_set(err, -errno, "%s: cannot create state_dir: %s", state_dir, strerror(errno));
    goto out;
  }
  if ((r->dir = strdup(state_dir)) == NULL) {
    rc = ck_err_set(err, -ENOMEM, "out of memory");
    goto out;
  }
  if (!readonly && (rc = lock_state_dir(r, state_dir, err)) != 0)
    goto out;
  r->path = ck_path_join(state_dir, "record.log");
  r->by_src = ck_hmap_new();
  r->by_output = ck_hmap_new();
  if ((rc = replay(r)) != 0 || (!readonly && (rc = compact(r)) != 0)) {
    ck_err_set(err, rc, "%s: %s", r->path, strerror(-rc));
    goto out;
  }
  if (!readonly && (r->fd = open(r->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640)) < 0)
    rc = ck_err_set(err, -errno, "%s: %s", r->path, strerror(errno));
out:
  if (rc != 0)
    ck_record_close(r);
  else
    *out = r;
  return rc;
}

int ck_record_open(const char *state_dir, struct ck_record **out, struct ck_err *err)
{
  return open_record(state_dir, 0, out, err);
}

int ck_record_open_readonly(const char *state_dir, struct ck_record **out, struct ck_err *err)
{
  return open_record(state_dir, 1, out, err);
}

const struct ck_rec *ck_record_get(const struct ck_record *r, const char *src)
{
  return ck_hmap_get(r->by_src, src);
}

const struct ck_rec *ck_record_by_output(const struct ck_record *r, const char *path)
{
  return ck_hmap_get(r->by_output, path);
}

int ck_record_put(struct ck_record *r, const struct ck_rec *e)
{
  struct ck_rec *copy = calloc(1, sizeof(*copy));
  size_t len;
  char *line;
  int rc;

  if (copy == NULL)
    return -ENOMEM;
  *copy = *e;
  copy->src = strdup(e->src);
  copy->output = e->output ? strdup(e->output) : NULL;
  copy->error = e->error ? strdup(e->error) : NULL;
  if ((line = format(copy, &len)) == NULL) {
    rec_free(copy);
    return -ENOMEM;
  }
  rc = r->fd < 0 ? 0 : ck_write_full(r->fd, line, len); /* read-only: remembered, not written */
  if (rc == 0 && r->fd >= 0 && fdatasync(r->fd) != 0)
    rc = -errno;
  free(line);
  index_entry(r, copy);
  return rc;
}

struct counts {
  int done, failed, pending;
};

static void count_one(void *ctx, const char *key, void *value)
{
  struct counts *c = ctx;
  const struct ck_rec *e = value;

  (void)key;
  if (e->status == CK_REC_DONE)
    c->done++;
  else if (e->status == CK_REC_FAILED)
    c->failed++;
  else if (e->status != CK_REC_SKIPPED)
    c->pending++;
}

void ck_record_counts(const struct ck_record *r, int *done, int *failed, int *pending)
{
  struct counts c = { 0, 0, 0 };

  ck_hmap_each(r->by_src, count_one, &c);
  *done = c.done;
  *failed = c.failed;
  *pending = c.pending;
}

int ck_record_damaged(const struct ck_record *r)
{
  return r->damaged;
}

static void free_one(void *ctx, const char *key, void *value)
{
  (void)ctx;
  (void)key;
  rec_free(value);
}

void ck_record_close(struct ck_record *r)
{
  if (r == NULL)
    return;
  if (r->fd >= 0)
    close(r->fd);
  if (r->lock_fd >= 0)
    close(r->lock_fd); /* releases the flock */
  if (r->by_src)
    ck_hmap_each(r->by_src, free_one, NULL);
  ck_hmap_free(r->by_src);
  ck_hmap_free(r->by_output);
  free(r->path);
  free(r->dir);
  free(r);
}
