/* Logging. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef HAVE_SYSTEMD
#include <systemd/sd-journal.h>
#endif

#include "log.h"

static int level = CK_LOG_INFO;
static int journal;

/* Stable MESSAGE_IDs (random 128-bit values, fixed forever) per event kind. */
static const struct {
  const char *event;
  const char *id;
} ids[] = {
  { "start", "6f1b7a3e2c9d4e58a1f0b2c3d4e5f601" }, { "stop", "6f1b7a3e2c9d4e58a1f0b2c3d4e5f602" },
  { "watch", "6f1b7a3e2c9d4e58a1f0b2c3d4e5f603" }, { "watch_limit", "6f1b7a3e2c9d4e58a1f0b2c3d4e5f604" },
  { "overflow", "6f1b7a3e2c9d4e58a1f0b2c3d4e5f605" }, { "rescan", "6f1b7a3e2c9d4e58a1f0b2c3d4e5f606" },
  { "job_queued", "6f1b7a3e2c9d4e58a1f0b2c3d4e5f607" }, { "job_start", "6f1b7a3e2c9d4e58a1f0b2c3d4e5f608" },
  { "job_done", "6f1b7a3e2c9d4e58a1f0b2c3d4e5f609" }, { "job_failed", "6f1b7a3e2c9d4e58a1f0b2c3d4e5f60a" },
  { "job_retry", "6f1b7a3e2c9d4e58a1f0b2c3d4e5f60b" }, { "reload", "6f1b7a3e2c9d4e58a1f0b2c3d4e5f60c" },
  { "reload_failed", "6f1b7a3e2c9d4e58a1f0b2c3d4e5f60d" }, { "network_fs", "6f1b7a3e2c9d4e58a1f0b2c3d4e5f60e" },
  { "record", "6f1b7a3e2c9d4e58a1f0b2c3d4e5f60f" }, { "cleanup", "6f1b7a3e2c9d4e58a1f0b2c3d4e5f610" },
  { "skip", "6f1b7a3e2c9d4e58a1f0b2c3d4e5f611" }, { "error", "6f1b7a3e2c9d4e58a1f0b2c3d4e5f612" },
};

static const char *id_of(const char *event)
{
  for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
    if (strcmp(ids[i].event, event) == 0)
      return ids[i].id;
  return ids[sizeof(ids) / sizeof(ids[0]) - 1].id;
}

void ck_log_init(int lvl)
{
  const char *js = getenv("JOURNAL_STREAM");
  struct stat st;
  unsigned long dev, ino;

  level = lvl;
#ifdef HAVE_SYSTEMD
  /* systemd sets JOURNAL_STREAM=dev:ino of the stream it connected stderr to */
  /* (sd_journal_send drops messages silently when journald's socket is missing) */
  if (js && sscanf(js, "%lu:%lu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
      (unsigned long)st.st_dev == dev && (unsigned long)st.st_ino == ino &&
      access("/run/systemd/journal/socket", W_OK) == 0)
    journal = 1;
#else
  (void)js;
  (void)st;
  (void)dev;
  (void)ino;
#endif
}

void ck_log_set_level(int lvl)
{
  level = lvl;
}

static void quoted(FILE *f, const char *key, const char *v)
{
  fprintf(f, " %s=\"", key);
  for (; *v; v++) {
    if (*v == '"' || *v == '\\')
      fputc('\\', f);
    if (*v == '\n')
      fputs("\\n", f);
    else if ((unsigned char)*v < 0x20)
      fprintf(f, "\\x%02x", (unsigned char)*v); /* one event, one line: no raw control bytes */
    else
      fputc(*v, f);
  }
  fputc('"', f);
}

void ck_log(int lvl, const char *event, const struct ck_log_fields *f, const char *fmt, ...)
{
  static const char *names[] = { "error", "warn", "info", "debug" };
  char msg[1024];
  va_list ap;

  if (lvl > level)
    return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
#ifdef HAVE_SYSTEMD
  if (journal) {
    static const int prio[] = { 3, 4, 6, 7 };
    char b[32], d[32], sj[32];
    snprintf(sj, sizeof(sj), "%llu", f ? f->slurm_job : 0);
    snprintf(b, sizeof(b), "%lld", f && f->bytes >= 0 ? f->bytes : 0);
    snprintf(d, sizeof(d), "%lld", f && f->duration_ms >= 0 ? f->duration_ms : 0);
    if (sd_journal_send("MESSAGE=%s", msg, "MESSAGE_ID=%s", id_of(event), "PRIORITY=%d", prio[lvl], "CKPTD_EVENT=%s",
                        event, "CKPT_PATH=%s", f && f->path ? f->path : "", "DIRECTION=%s",
                        f && f->direction ? f->direction : "", "BYTES=%s", b, "DURATION_MS=%s", d, "CKPT_OUTPUT=%s",
                        f && f->output ? f->output : "", "CKPT_ERROR=%s", f && f->error ? f->error : "", "CKPT_REASON=%s",
                        f && f->reason ? f->reason : "", "SLURM_JOB=%s", f && f->slurm_job ? sj : "", NULL) >= 0)
      return;
    /* journald unreachable: the line below still reaches the journal through stderr */
  }
#endif
  {
    struct timespec ts;
    struct tm tm;
    char when[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    flockfile(stderr);
    fprintf(stderr, "ts=%s.%03ldZ level=%s event=%s", when, ts.tv_nsec / 1000000, names[lvl], event);
    if (f && f->path)
      quoted(stderr, "path", f->path);
    if (f && f->direction)
      fprintf(stderr, " direction=%s", f->direction);
    if (f && f->bytes >= 0)
      fprintf(stderr, " bytes=%lld", f->bytes);
    if (f && f->duration_ms >= 0)
      fprintf(stderr, " duration_ms=%lld", f->duration_ms);
    if (f && f->output)
      quoted(stderr, "output", f->output);
    if (f && f->error)
      quoted(stderr, "error", f->error);
    if (f && f->reason)
      fprintf(stderr, " reason=%s", f->reason);
    if (f && f->slurm_job)
      fprintf(stderr, " slurm_job=%llu", f->slurm_job);
    quoted(stderr, "msg", msg);
    fputc('\n', stderr);
    funlockfile(stderr);
  }
  (void)id_of;
}
