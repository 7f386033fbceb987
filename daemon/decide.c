/* Pure decisions (see decide.h). */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "decide.h"
#include "error.h"
#include "fileio.h"

static int ends_with(const char *s, const char *x)
{
  size_t a = strlen(s), b = strlen(x);

  return a >= b && strcmp(s + a - b, x) == 0;
}

/* 1 if s is n or more characters, all from set (n = 0: possibly empty). */
static int all_of(const char *s, const char *set, size_t n)
{
  size_t len = strlen(s);

  return len >= n && strspn(s, set) == len;
}

/* 1 if base ends with tag followed only by characters of set (at least min of them). */
static int ends_with_tag(const char *base, const char *tag, const char *set, size_t min)
{
  const char *p = base, *hit = NULL;

  while ((p = strstr(p, tag)) != NULL) /* the last occurrence */
    hit = p++;
  return hit != NULL && all_of(hit + strlen(tag), set, min);
}

int ck_decide_temp_file(const char *base)
{
  size_t n = strlen(base);

  return base[0] == '.' ||                                           /* hidden, .nfs*, .#*, ckptd's own */
         ends_with_tag(base, ".tempstate", "0123456789", 1) ||      /* TF's SaveV2 shards */
         ends_with_tag(base, ".tmp", "0123456789abcdef", 0) ||      /* TF's atomic writes, *.tmp */
         strstr(base, ".orbax-checkpoint-tmp-") != NULL || ends_with(base, ".part") || ends_with(base, "~") ||
         ends_with(base, ".swp") || ends_with(base, ".swx") || (n >= 2 && base[0] == '#' && base[n - 1] == '#');
}

int ck_decide_temp_dir(const char *base)
{
  return base[0] == '.' || ends_with(base, "_temp") || ends_with_tag(base, "_temp_", "0123456789abcdef", 32) ||
         strstr(base, ".orbax-checkpoint-tmp-") != NULL || ends_with(base, ".tmp");
}

/* Single-file checkpoints by extension. */
static const struct {
  const char *ext;
  int kind;
} file_exts[] = {
  { ".h5", CK_KIND_H5 }, { ".hdf5", CK_KIND_H5 }, { ".mdl", CK_KIND_H5 },
  { ".pt", CK_KIND_TORCH }, { ".pth", CK_KIND_TORCH }, { ".bin", CK_KIND_TORCH },
  { ".safetensors", CK_KIND_SAFETENSORS },
};

int ck_decide_classify(const char *path, char **key)
{
  const char *base = strrchr(path, '/'), *data;

  base = base ? base + 1 : path;
  *key = NULL;
  if (ck_decide_temp_file(base))
    return CK_KIND_NONE;
  if (ends_with(base, ".index") && strlen(base) > 6) {
    *key = strndup(path, strlen(path) - 6);
    return *key ? CK_KIND_SAVER : CK_KIND_NONE;
  }
  /* PREFIX.data-NNNNN-of-NNNNN, exactly */
  if ((data = strstr(base, ".data-")) != NULL && data > base && strlen(data) == strlen(".data-00000-of-00000") &&
      strspn(data + 6, "0123456789") == 5 && strncmp(data + 11, "-of-", 4) == 0 &&
      strspn(data + 15, "0123456789") == 5) {
    *key = strndup(path, (size_t)(data - path));
    return *key ? CK_KIND_SAVER : CK_KIND_NONE;
  }
  for (size_t i = 0; i < sizeof(file_exts) / sizeof(file_exts[0]); i++)
    if (ends_with(base, file_exts[i].ext) && strlen(base) > strlen(file_exts[i].ext)) {
      *key = strdup(path);
      return *key ? file_exts[i].kind : CK_KIND_NONE;
    }
  return CK_KIND_NONE;
}

/* The length of the recognised extension key ends with (0: none). */
static size_t file_ext_len(const char *key)
{
  for (size_t i = 0; i < sizeof(file_exts) / sizeof(file_exts[0]); i++)
    if (ends_with(key, file_exts[i].ext))
      return strlen(file_exts[i].ext);
  return 0;
}

char *ck_decide_output(const char *key, int from, int to)
{
  static const char *ext[CK_KINDS] = { NULL, "", ".h5", ".pt", ".safetensors" };
  size_t cut;

  if (from == to || from <= CK_KIND_NONE || from >= CK_KINDS || to <= CK_KIND_NONE || to >= CK_KINDS)
    return NULL;
  if (from == CK_KIND_SAVER)
    return ck_asprintf("%s%s", key, ext[to]);
  if ((cut = file_ext_len(key)) == 0)
    return NULL;
  return ck_asprintf("%.*s%s", (int)(strlen(key) - cut), key, ext[to]);
}

char *ck_decide_output_file(const char *dst, int to)
{
  return to == CK_KIND_SAVER ? ck_asprintf("%s.index", dst) : strdup(dst);
}

int ck_decide_converted_copy(const char *key, int kind, const char *mark_name)
{
  const char *slash = strrchr(key, '/');
  char *src, *skey = NULL, *out = NULL;
  int from, yes;

  if (mark_name[0] == '\0' || strchr(mark_name, '/') != NULL)
    return 0;
  src = ck_asprintf("%.*s%s", slash ? (int)(slash + 1 - key) : 0, key, mark_name);
  if (src == NULL)
    return 0;
  from = ck_decide_classify(src, &skey);
  if (from == CK_KIND_NONE || from == CK_KIND_SAVER) /* a bundle is marked by its prefix's name */
    from = CK_KIND_SAVER;
  out = ck_decide_output(src, from, kind);
  yes = out != NULL && strcmp(out, key) == 0;
  free(out);
  free(skey);
  free(src);
  return yes;
}

static const char *const dir_names[CK_KINDS][CK_KINDS] = {
  [CK_KIND_SAVER] = { [CK_KIND_H5] = "saver-to-h5", [CK_KIND_TORCH] = "saver-to-torch",
                      [CK_KIND_SAFETENSORS] = "saver-to-safetensors" },
  [CK_KIND_H5] = { [CK_KIND_SAVER] = "h5-to-saver", [CK_KIND_TORCH] = "h5-to-torch",
                   [CK_KIND_SAFETENSORS] = "h5-to-safetensors" },
  [CK_KIND_TORCH] = { [CK_KIND_SAVER] = "torch-to-saver", [CK_KIND_H5] = "torch-to-h5",
                      [CK_KIND_SAFETENSORS] = "torch-to-safetensors" },
  [CK_KIND_SAFETENSORS] = { [CK_KIND_SAVER] = "safetensors-to-saver", [CK_KIND_H5] = "safetensors-to-h5",
                            [CK_KIND_TORCH] = "safetensors-to-torch" },
};

const char *ck_decide_dir_name(int from, int to)
{
  return from > CK_KIND_NONE && from < CK_KINDS && to > CK_KIND_NONE && to < CK_KINDS ? dir_names[from][to] : NULL;
}

/* A format's name, n bytes at s: CK_KIND_*, or CK_KIND_NONE. */
static int format_named(const char *s, size_t n)
{
  static const char *names[CK_KINDS] = { NULL, "saver", "h5", "torch", "safetensors" };

  for (int k = CK_KIND_SAVER; k < CK_KINDS; k++)
    if (strlen(names[k]) == n && strncmp(s, names[k], n) == 0)
      return k;
  return CK_KIND_NONE;
}

int ck_decide_dir_parse(const char *word, int *from, int *to)
{
  const char *sep = strstr(word, "-to-");

  *from = sep ? format_named(word, (size_t)(sep - word)) : CK_KIND_NONE;
  *to = sep ? format_named(sep + 4, strlen(sep + 4)) : CK_KIND_NONE;
  if (*from == CK_KIND_NONE || *to == CK_KIND_NONE)
    return -1;
  return *from == *to ? -2 : 0;
}

int ck_decide_dir_code(int from, int to)
{
  if (from == CK_KIND_SAVER && to == CK_KIND_H5)
    return 1;
  if (from == CK_KIND_H5 && to == CK_KIND_SAVER)
    return 2;
  return from * 10 + to;
}

double ck_decide_backoff(int attempts)
{
  return attempts >= 7 ? 600 : fmin(600, 5 * pow(2, attempts));
}

int ck_decide_transient(int rc)
{
  return rc == -EAGAIN || rc == -ENOSPC || rc == CK_ENOROOM || rc == -EIO || rc == -EFBIG || rc == -ENOMEM || rc == -EINTR ||
         rc == -EBUSY || rc == -EDQUOT || rc == -ETIMEDOUT || rc == -ESTALE || rc == CK_ESCHED;
}

int64_t ck_decide_step(const char *prefix)
{
  const char *base = strrchr(prefix, '/'), *dash;
  char *end;
  long long v;

  base = base ? base + 1 : prefix;
  if ((dash = strrchr(base, '-')) == NULL || dash[1] < '0' || dash[1] > '9')
    return -1;
  v = strtoll(dash + 1, &end, 10);
  return *end || v < 0 ? -1 : (int64_t)v;
}

int ck_decide_newer(int64_t step_a, int64_t mtime_a, int64_t step_b, int64_t mtime_b)
{
  if (step_a >= 0 && step_b >= 0 && step_a != step_b)
    return step_a > step_b;
  return mtime_a > mtime_b; /* a tie, or a step-less name on either side */
}

int ck_decide_reason(int rc, int crashed)
{
  if (crashed)
    return CK_REASON_CRASHED;
  switch (rc) {
  case CK_EFORMAT: case CK_ECHECKSUM: case CK_ETRUNC: case CK_ENOTFOUND: return CK_REASON_CORRUPT;
  case CK_EUNSUP: return CK_REASON_UNSUPPORTED;
  case CK_ELIMIT: case -ENOMEM: return CK_REASON_LIMIT;
  case -EACCES: case -EPERM: return CK_REASON_PERMISSION;
  case -EROFS: return CK_REASON_READ_ONLY;
  case -ENOSPC: case -EDQUOT: case -EFBIG: case CK_ENOROOM: return CK_REASON_NO_SPACE;
  case -EAGAIN: return CK_REASON_CHANGED;
  case -EIO: case -EBUSY: case -ETIMEDOUT: case -ESTALE: case -EINTR: return CK_REASON_IO;
  case CK_ESCHED: case CK_ESCHEDCONF: return CK_REASON_SCHEDULER;
  case CK_ECANCELLED: return CK_REASON_CANCELLED;
  default: return CK_REASON_OTHER;
  }
}

const char *ck_decide_reason_name(int reason)
{
  static const char *names[CK_REASONS] = { "corrupt", "crashed", "unsupported", "permission", "read_only",
                                           "no_space", "io", "source_changed", "limit", "scheduler",
                                           "cancelled", "other" };

  return reason >= 0 && reason < CK_REASONS ? names[reason] : "other";
}

int ck_decide_blocked(int rc)
{
  return rc == -EACCES || rc == -EPERM || rc == -EROFS || rc == CK_EUNSUP || rc == CK_ESCHEDCONF;
}

uint64_t ck_decide_min_free(uint64_t bytes, double percent, uint64_t fs_size)
{
  return bytes ? bytes : (uint64_t)((double)fs_size * percent / 100.0);
}

int ck_decide_room(uint64_t fs_free, uint64_t need, uint64_t min_free)
{
  return fs_free >= min_free && fs_free - min_free >= need;
}

int ck_decide_pick(const struct ck_pickable *v, int n)
{
  int best = -1;

  for (int i = 0; i < n; i++)
    if (!v[i].paused && (v[i].tree_limit == 0 || v[i].tree_running < v[i].tree_limit) &&
        (best < 0 || v[i].priority > v[best].priority))
      best = i;
  return best;
}
