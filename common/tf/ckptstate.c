/* CheckpointState text format: one `field: value` per line, strings C-escaped. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ckptstate.h"
#include "fileio.h"
#include "util.h"

void ck_ckptstate_free(struct ck_ckptstate *cs)
{
  free(cs->model_checkpoint_path);
  for (size_t i = 0; i < cs->npaths; i++)
    free(cs->paths[i]);
  for (size_t i = 0; i < cs->nts; i++)
    free(cs->timestamps[i]);
  free(cs->paths);
  free(cs->timestamps);
  free(cs->last_preserved);
  memset(cs, 0, sizeof(*cs));
}

static int push(char ***arr, size_t *n, char *s)
{
  char **na = realloc(*arr, (*n + 1) * sizeof(char *));

  if (na == NULL) {
    free(s);
    return -ENOMEM;
  }
  na[(*n)++] = s;
  *arr = na;
  return 0;
}


/* Unescape a quoted string starting at *p (on the quote); NULL if malformed. */
static char *unquote(const char **pp, const char *end)
{
  const char *p = *pp;
  char q = *p++, *out = malloc((size_t)(end - p) + 1);
  size_t n = 0;

  if (out == NULL)
    return NULL;
  while (p < end && *p != q) {
    char c = *p++;
    if (c == '\\') {
      if (p >= end)
        goto bad;
      c = *p++;
      switch (c) {
      case 'n': out[n++] = '\n'; break;
      case 'r': out[n++] = '\r'; break;
      case 't': out[n++] = '\t'; break;
      case 'x': {
        int v = 0, k = 0;
        while (k < 2 && p < end && ck_hexval(*p) >= 0)
          v = v * 16 + ck_hexval(*p++), k++;
        if (k == 0)
          goto bad;
        out[n++] = (char)v;
        break;
      }
      default:
        if (c >= '0' && c <= '7') {
          int v = c - '0', k = 1;
          while (k < 3 && p < end && *p >= '0' && *p <= '7')
            v = v * 8 + (*p++ - '0'), k++;
          out[n++] = (char)v;
        } else {
          out[n++] = c; /* \" \' \\ and the rest */
        }
      }
    } else {
      out[n++] = c;
    }
  }
  if (p >= end)
    goto bad;
  out[n] = 0;
  *pp = p + 1;
  return out;
bad:
  free(out);
  return NULL;
}

static int parse_line(const char *p, const char *end, struct ck_ckptstate *cs)
{
  const char *colon, *name = p;
  size_t nlen;
  char *val;

  while (p < end && (*p == ' ' || *p == '\t'))
    p++;
  if (p == end || *p == '#')
    return 0;
  name = p;
  if ((colon = memchr(p, ':', (size_t)(end - p))) == NULL)
    return -1;
  nlen = (size_t)(colon - name);
  while (nlen > 0 && (name[nlen - 1] == ' ' || name[nlen - 1] == '\t'))
    nlen--;
  p = colon + 1;
  while (p < end && (*p == ' ' || *p == '\t'))
    p++;
  if (p < end && (*p == '"' || *p == '\'')) {
    if ((val = unquote(&p, end)) == NULL)
      return -1;
  } else {
    const char *v = p;
    char *stop;
    while (p < end && *p != ' ' && *p != '\t' && *p != '#')
      p++;
    if ((val = strndup(v, (size_t)(p - v))) == NULL)
      return -ENOMEM;
    strtod(val, &stop);
    if (*val == 0 || *stop != 0) {
      free(val);
      return -1;
    }
  }
  while (p < end && (*p == ' ' || *p == '\t'))
    p++;
  if (p < end && *p != '#') {
    free(val);
    return -1;
  }
#define IS(s) (nlen == strlen(s) && memcmp(name, s, nlen) == 0)
  if (IS("model_checkpoint_path")) {
    free(cs->model_checkpoint_path);
    cs->model_checkpoint_path = val;
    return 0;
  }
  if (IS("all_model_checkpoint_paths"))
    return push(&cs->paths, &cs->npaths, val);
  if (IS("all_model_checkpoint_timestamps"))
    return push(&cs->timestamps, &cs->nts, val);
  if (IS("last_preserved_timestamp")) {
    free(cs->last_preserved);
    cs->last_preserved = val;
    return 0;
  }
#undef IS
  free(val);
  return -1;
}

int ck_ckptstate_parse(const char *text, size_t len, const char *name, struct ck_ckptstate *cs,
                       struct ck_err *err)
{
  const char *p = text, *end = text + len;
  int line = 1;

  memset(cs, 0, sizeof(*cs));
  cs->ckptd_marker = len >= strlen(CK_CKPTSTATE_MARKER) && memcmp(text, CK_CKPTSTATE_MARKER, strlen(CK_CKPTSTATE_MARKER)) == 0;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    int rc;
    if (le > p && le[-1] == '\r')
      le--;
    if ((rc = parse_line(p, le, cs)) != 0) {
      ck_ckptstate_free(cs);
      if (rc == -ENOMEM)
        return ck_err_set(err, rc, "out of memory");
      return ck_err_set(err, CK_EFORMAT, "%s:%d: not a CheckpointState field", name, line);
    }
    p = nl ? nl + 1 : end;
    line++;
  }
  return 0;
}

int ck_ckptstate_read(const char *dir, struct ck_ckptstate *cs, struct ck_err *err)
{
  char *path = ck_path_join(dir, "checkpoint");
  struct stat st;
  char *text = NULL;
  int fd = -1, rc;

  memset(cs, 0, sizeof(*cs));
  if (path == NULL)
    return ck_err_set(err, -ENOMEM, "out of memory");
  if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
    rc = errno == ENOENT ? CK_ENOTFOUND : -errno;
    ck_err_set(err, rc, "%s: %s", path, strerror(errno));
    goto out;
  }
  if (fstat(fd, &st) != 0) {
    rc = ck_err_set(err, -errno, "%s: %s", path, strerror(errno));
    goto out;
  }
  if ((uint64_t)st.st_size > CK_CKPTSTATE_MAX_BYTES) {
    rc = ck_err_set(err, CK_ELIMIT, "%s: %lld bytes is too large for a checkpoint state file", path,
                    (long long)st.st_size);
    goto out;
  }
  if ((text = malloc((size_t)st.st_size + 1)) == NULL) {
    rc = ck_err_set(err, -ENOMEM, "out of memory");
    goto out;
  }
  if ((rc = ck_pread_full(fd, text, (size_t)st.st_size, 0)) != 0) {
    ck_err_set(err, rc, "%s: read: %s", path, ck_strerror(rc));
    goto out;
  }
  rc = ck_ckptstate_parse(text, (size_t)st.st_size, path, cs, err);
out:
  if (fd >= 0)
    close(fd);
  free(text);
  free(path);
  return rc;
}

static void put_quoted(FILE *f, const char *field, const char *s)
{
  fprintf(f, "%s: \"", field);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      fprintf(f, "\\%c", *p);
    else if (*p == '\n')
      fputs("\\n", f);
    else if (*p < 0x20 || *p == 0x7f)
      fprintf(f, "\\%03o", *p);
    else
      fputc(*p, f);
  }
  fputs("\"\n", f);
}

int ck_ckptstate_write(const char *dir, const struct ck_ckptstate *cs, struct ck_err *err)
{
  char *path = ck_path_join(dir, "checkpoint");
  char *tmp = path ? ck_temp_name(path) : NULL;
  FILE *f = NULL;
  int fd = -1, rc = 0;

  if (tmp == NULL) {
    rc = ck_err_set(err, -ENOMEM, "out of memory");
    goto out;
  }
  if ((fd = ck_create_excl(tmp)) < 0 || (f = fdopen(fd, "w")) == NULL) {
    rc = ck_err_set(err, fd < 0 ? fd : -errno, "%s: cannot create: %s", tmp, strerror(fd < 0 ? -fd : errno));
    goto out;
  }
  if (cs->ckptd_marker)
    fprintf(f, "%s (latest = highest global step); a trainer's own save replaces this file\n", CK_CKPTSTATE_MARKER);
  if (cs->model_checkpoint_path)
    put_quoted(f, "model_checkpoint_path", cs->model_checkpoint_path);
  for (size_t i = 0; i < cs->npaths; i++)
    put_quoted(f, "all_model_checkpoint_paths", cs->paths[i]);
  for (size_t i = 0; i < cs->nts; i++)
    fprintf(f, "all_model_checkpoint_timestamps: %s\n", cs->timestamps[i]);
  if (cs->last_preserved)
    fprintf(f, "last_preserved_timestamp: %s\n", cs->last_preserved);
  if (fflush(f) != 0 || fsync(fd) != 0) {
    rc = ck_err_set(err, -errno, "%s: write: %s", tmp, strerror(errno));
    goto out;
  }
  if (rename(tmp, path) != 0) {
    rc = ck_err_set(err, -errno, "%s: rename: %s", path, strerror(errno));
    goto out;
  }
  if ((rc = ck_fsync_dir(dir)) != 0)
    ck_err_set(err, rc, "%s: fsync: %s", dir, strerror(-rc));
out:
  if (f)
    fclose(f);
  else if (fd >= 0)
    close(fd);
  if (rc != 0 && tmp)
    unlink(tmp);
  free(tmp);
  free(path);
  return rc;
}

int ck_ckptstate_add(const char *dir, const char *name, struct ck_err *err)
{
  struct ck_ckptstate cs;
  struct ck_err rerr = { 0 };
  int aligned, rc = ck_ckptstate_read(dir, &cs, &rerr);
  struct timespec ts;

  if (rc == CK_ENOTFOUND) {
    memset(&cs, 0, sizeof(cs));
  } else if (rc != 0) {
    if (err)
      *err = rerr;
    return rc;
  }
  aligned = cs.nts == cs.npaths;
  for (size_t i = 0; i < cs.npaths; i++) {
    if (strcmp(cs.paths[i], name) != 0)
      continue;
    free(cs.paths[i]);
    memmove(&cs.paths[i], &cs.paths[i + 1], (cs.npaths - i - 1) * sizeof(char *));
    cs.npaths--;
    if (aligned && cs.nts > i) {
      free(cs.timestamps[i]);
      memmove(&cs.timestamps[i], &cs.timestamps[i + 1], (cs.nts - i - 1) * sizeof(char *));
      cs.nts--;
    }
    break;
  }
  free(cs.model_checkpoint_path);
  clock_gettime(CLOCK_REALTIME, &ts);
  if ((cs.model_checkpoint_path = strdup(name)) == NULL || push(&cs.paths, &cs.npaths, strdup(name)) != 0 ||
      (aligned && cs.nts > 0 &&
       push(&cs.timestamps, &cs.nts, ck_asprintf("%lld.%06ld", (long long)ts.tv_sec, ts.tv_nsec / 1000)) != 0)) {
    ck_ckptstate_free(&cs);
    return ck_err_set(err, -ENOMEM, "out of memory");
  }
  rc = ck_ckptstate_write(dir, &cs, err);
  ck_ckptstate_free(&cs);
  return rc;
}
