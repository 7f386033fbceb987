/* File helpers. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "error.h"
#include "fileio.h"

int ck_write_full(int fd, const void *buf, size_t len)
{
  const uint8_t *p = buf;

  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int ck_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
  const uint8_t *p = buf;

  while (len > 0) {
    ssize_t n = pwrite(fd, p, len, (off_t)off);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    p += n;
    off += (uint64_t)n;
    len -= (size_t)n;
  }
  return 0;
}

int ck_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
  uint8_t *p = buf;

  while (len > 0) {
    ssize_t n = pread(fd, p, len, (off_t)off);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (n == 0)
      return CK_ETRUNC;
    p += n;
    off += (uint64_t)n;
    len -= (size_t)n;
  }
  return 0;
}

int ck_fsync_dir(const char *dir)
{
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int rc = 0;

  if (fd < 0)
    return -errno;
  if (fsync(fd) != 0 && errno != EINVAL)
    rc = -errno;
  close(fd);
  return rc;
}

char *ck_dirname(const char *path)
{
  const char *slash = strrchr(path, '/');

  if (slash == NULL)
    return strdup(".");
  if (slash == path)
    return strdup("/");
  return strndup(path, (size_t)(slash - path));
}

char *ck_basename(const char *path)
{
  const char *slash = strrchr(path, '/');

  return strdup(slash ? slash + 1 : path);
}

void ck_strv_free(char **v)
{
  if (v == NULL)
    return;
  for (char **a = v; *a; a++)
    free(*a);
  free(v);
}

char *ck_asprintf(const char *fmt, ...)
{
  va_list ap;
  char *s = NULL;
  int n;

  va_start(ap, fmt);
  n = vasprintf(&s, fmt, ap);
  va_end(ap);
  return n < 0 ? NULL : s;
}

char *ck_path_join(const char *a, const char *b)
{
  size_t la = strlen(a);

  if (b[0] == '/' || la == 0)
    return strdup(b);
  if (a[la - 1] == '/')
    return ck_asprintf("%s%s", a, b);
  return ck_asprintf("%s/%s", a, b);
}

static char instance[9];

static void instance_of(const char *what, char out[9])
{
  uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */

  for (const unsigned char *p = (const unsigned char *)what; *p; p++)
    h = (h ^ *p) * 0x100000001b3ull;
  snprintf(out, 9, "%08x", (unsigned)(h ^ (h >> 32)));
}

static int valid_instance(const char *s)
{
  return s && strlen(s) == 8 && strspn(s, "0123456789abcdef") == 8;
}

const char *ck_temp_instance(void)
{
  if (!instance[0]) {
    const char *env = getenv("CKPTD_INSTANCE");
    char host[256] = "";
    if (valid_instance(env)) {
      memcpy(instance, env, 9);
    } else {
      gethostname(host, sizeof(host) - 1);
      char *what = ck_asprintf("%s\n(tool)", host);
      instance_of(what ? what : host, instance);
      free(what);
    }
  }
  return instance;
}

void ck_temp_set_instance(const char *what)
{
  instance_of(what, instance);
  setenv("CKPTD_INSTANCE", instance, 1); /* the workers it starts write as this instance */
}

/* The number a temporary carries: this process's pid, or a Slurm job's id (a worker
 * run by the Slurm executor: CKPTD_TEMP_OWNER, set by its batch script), which names
 * it across hosts where a pid would not. */
static long temp_owner(void)
{
  const char *env = getenv("CKPTD_TEMP_OWNER");
  char *end;
  long v = env && *env ? strtol(env, &end, 10) : 0;

  return v > 0 && *end == '\0' ? v : (long)getpid();
}

void ck_temp_tag_of(const char *what, char out[9])
{
  instance_of(what, out);
}

char *ck_temp_name(const char *final_path)
{
  static atomic_uint counter;
  char *dir = ck_dirname(final_path);
  char *base = ck_basename(final_path);
  char *tmp = NULL;

  if (dir && base)
    tmp = ck_asprintf("%s/.%s.ckptd-tmp.%s-%ld.%u", dir, base, ck_temp_instance(), temp_owner(),
                      atomic_fetch_add(&counter, 1));
  free(dir);
  free(base);
  return tmp;
}

int ck_temp_owner(const char *name, struct ck_temp_owner *o)
{
  const char *p = NULL, *q = name;
  char *end;
  long pid;

  if (name[0] != '.')
    return -1;
  while ((q = strstr(q, ".ckptd-tmp.")) != NULL)
    p = q++;
  if (p == NULL)
    return -1;
  p += 11;
  if (strspn(p, "0123456789abcdef") != 8 || p[8] != '-' || p[9] < '0' || p[9] > '9')
    return -1;
  pid = strtol(p + 9, &end, 10);
  if (*end != '.' || pid <= 0 || end[1] < '0' || end[1] > '9' || strspn(end + 1, "0123456789") != strlen(end + 1))
    return -1;
  memcpy(o->instance, p, 8);
  o->instance[8] = '\0';
  o->pid = pid;
  return 0;
}

int ck_temp_remove_pid(const char *dir, const char *inst, long pid)
{
  return ck_temp_remove_of(dir, NULL, inst, pid);
}

/* 1 if a temporary's name is of a final name that is base or starts with "base.". */
static int temp_of(const char *name, const char *base)
{
  size_t n = base ? strlen(base) : 0;

  return base == NULL || (name[0] == '.' && strncmp(name + 1, base, n) == 0 && name[1 + n] == '.');
}

int ck_temp_remove_of(const char *dir, const char *base, const char *inst, long pid)
{
  DIR *d = opendir(dir);
  struct dirent *de;
  struct stat st;
  struct ck_temp_owner o;
  int removed = 0;

  if (d == NULL)
    return 0;
  while ((de = readdir(d)) != NULL) {
    if (ck_temp_owner(de->d_name, &o) != 0 || (pid > 0 && o.pid != pid) || strcmp(o.instance, inst) != 0 ||
        !temp_of(de->d_name, base))
      continue;
    /* only regular files of ours: never follow or remove anything else */
    if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
        st.st_uid != geteuid())
      continue;
    if (unlinkat(dirfd(d), de->d_name, 0) == 0)
      removed++;
  }
  closedir(d);
  return removed;
}

void ck_source_id_format(uint64_t size, int64_t mtime_ns, char *buf, size_t len)
{
  snprintf(buf, len, "%llu:%lld", (unsigned long long)size, (long long)mtime_ns);
}

int ck_mark_set(const char *path, const char *name, const char *source_id)
{
  char *mark = ck_asprintf("%s %s", name, source_id);
  int rc = mark == NULL ? -ENOMEM : lsetxattr(path, CK_MARK_XATTR, mark, strlen(mark), 0) == 0 ? 0 : -errno;

  free(mark);
  return rc;
}

int ck_mark_get(const char *path, char *buf, size_t len)
{
  ssize_t n = len > 0 ? lgetxattr(path, CK_MARK_XATTR, buf, len - 1) : -1;

  if (n < 0)
    return len > 0 ? -errno : -EINVAL;
  buf[n] = '\0';
  return strlen(buf) == (size_t)n ? 0 : -EINVAL; /* no NUL inside */
}

int ck_publish_rename(const char *tmp, const char *dst, int keep_foreign)
{
  struct stat st;
  char mark[600];

  if (keep_foreign) {
    if (lstat(dst, &st) != 0) {
      if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_NOREPLACE) == 0)
        return 0;
      if (errno != EINVAL && errno != ENOSYS)
        return -errno; /* EEXIST: it appeared just now */
    } else if (ck_mark_get(dst, mark, sizeof(mark)) != 0) {
      return -EEXIST;
    }
  }
  return rename(tmp, dst) == 0 ? 0 : -errno;
}

const char *ck_publish_error(int rc)
{
  static _Thread_local char buf[200];

  if (rc == -EEXIST)
    return "appeared during the conversion and is not ckptd's: not replacing it";
  snprintf(buf, sizeof(buf), "rename: %s", strerror(-rc));
  return buf;
}

int ck_set_owner(const char *path, int mode, int chgrp, unsigned gid)
{
  int fd, rc = 0;

  if (!mode && !chgrp)
    return 0;
  /* through a descriptor of the file itself: a link swapped in for it is never followed */
  if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
    return -errno;
  if ((chgrp && fchown(fd, (uid_t)-1, (gid_t)gid) != 0) ||
      (mode && fchmod(fd, (mode_t)mode) != 0)) /* after chown, which may clear set-id bits */
    rc = -errno;
  close(fd);
  return rc;
}

int ck_create_excl(const char *path)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);

  return fd < 0 ? -errno : fd;
}

void ck_wb_init(struct ck_wb *wb, uint64_t start)
{
  wb->kicked = wb->waited = start;
  wb->keep = 0;
  wb->err = 0;
}

int ck_wb_wrote(struct ck_wb *wb, int fd, uint64_t end)
{
  const unsigned wait = SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER;
  uint64_t upto = end > CK_WB_STEP ? (end - CK_WB_STEP) & ~(uint64_t)4095 : 0;

  if (wb->err != 0)
    return wb->err;
  if (end > wb->kicked) /* a hint: errors show when waited for, or at fsync */
    sync_file_range(fd, (off64_t)wb->kicked, (off64_t)(end - wb->kicked), SYNC_FILE_RANGE_WRITE);
  wb->kicked = end;
  if (wb->keep || upto <= wb->waited || upto - wb->waited < CK_WB_STEP)
    return 0;
  if (sync_file_range(fd, (off64_t)wb->waited, (off64_t)(upto - wb->waited), wait) != 0 &&
      errno != EINVAL && errno != ESPIPE && errno != ENOSYS) /* (not a regular file, or no support) */
    return wb->err = -errno; /* the wait took the error: a later fsync would not see it again */
  posix_fadvise(fd, (off_t)wb->waited, (off_t)(upto - wb->waited), POSIX_FADV_DONTNEED);
  wb->waited = upto;
  return 0;
}

int ck_fsync_drop(int fd, int keep)
{
  if (fsync(fd) != 0)
    return -errno;
  if (!keep)
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  return 0;
}

int ck_obuf_init(struct ck_obuf *o, int fd, size_t cap)
{
  o->fd = fd;
  o->cap = cap;
  o->len = 0;
  o->pos = 0;
  ck_wb_init(&o->wb, 0);
  o->buf = malloc(cap);
  return o->buf ? 0 : -ENOMEM;
}

/* Write len bytes at the file position, paced. */
static int obuf_write(struct ck_obuf *o, const void *p, size_t len)
{
  int rc = ck_write_full(o->fd, p, len);

  if (rc != 0)
    return rc;
  o->pos += len;
  return ck_wb_wrote(&o->wb, o->fd, o->pos);
}

int ck_obuf_flush(struct ck_obuf *o)
{
  int rc = obuf_write(o, o->buf, o->len);

  o->len = 0;
  return rc;
}

int ck_obuf_skip(struct ck_obuf *o, uint64_t len)
{
  int rc = ck_obuf_flush(o);

  if (rc != 0)
    return rc;
  if (lseek(o->fd, (off_t)len, SEEK_CUR) < 0)
    return -errno;
  o->pos += len;
  return 0;
}

int ck_obuf_append(struct ck_obuf *o, const void *data, size_t len)
{
  const uint8_t *p = data;
  int rc;

  if (len == 0)
    return 0;
  if (len >= o->cap) { /* large pieces go straight to the file */
    if ((rc = ck_obuf_flush(o)) != 0)
      return rc;
    return obuf_write(o, p, len);
  }
  if (o->len + len > o->cap && (rc = ck_obuf_flush(o)) != 0)
    return rc;
  memcpy(o->buf + o->len, p, len);
  o->len += len;
  return 0;
}

void ck_obuf_free(struct ck_obuf *o)
{
  free(o->buf);
  o->buf = NULL;
}
