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
  if ((ends_with(base, ".h5") && strlen(base) > 3) || (ends_with(base, ".hdf5") && strlen(base) > 5)) {
    *key = strdup(path);
    return *key ? CK_KIND_H5 : CK_KIND_NONE;
  }
  return CK_KIND_NONE;
}

char *ck_decide_output(const char *key, int kind)
{
  if (kind == CK_KIND_SAVER)
    return ck_asprintf("%s.h5", key);
  return strndup(key, strlen(key) - (ends_with(key, ".hdf5") ? 5 : 3));
}

double ck_decide_backoff(int attempts)
{
  return attempts >= 7 ? 600 : fmin(600, 5 * pow(2, attempts));
}

int ck_decide_transient(int rc)
{
  return rc == -EAGAIN || rc == -ENOSPC || rc == CK_ENOROOM || rc == -EIO || rc == -EFBIG || rc == -ENOMEM || rc == -EINTR ||
         rc == -EBUSY || rc == -EDQUOT || rc == -ETIMEDOUT || rc == -ESTALE;
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
  default: return CK_REASON_OTHER;
  }
}

const char *ck_decide_reason_name(int reason)
{
  static const char *names[CK_REASONS] = { "corrupt", "crashed", "unsupported", "permission", "read_only",
                                           "no_space", "io", "source_changed", "limit", "other" };

  return reason >= 0 && reason < CK_REASONS ? names[reason] : "other";
}

int ck_decide_blocked(int rc)
{
  return rc == -EACCES || rc == -EPERM || rc == -EROFS || rc == CK_EUNSUP;
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
