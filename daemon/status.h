/* ckptd's status: one definition of the status file (JSON, replaced atomically) and
 * of the Prometheus textfile, written by the daemon from a snapshot, and read back
 * for people by `ckpt status`. Plain stdio: the daemon and the tool both link it. */
#ifndef CK_STATUS_H
#define CK_STATUS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct ck_status_root {
  const char *name, *path, *direction;
  double last_success;          /* wall-clock seconds of its last conversion, 0: none since start */
  long long free_bytes;         /* on its file system, -1: unknown */
  long long size_bytes;         /* of its file system, -1: unknown */
  unsigned long long disk_guard; /* jobs deferred or stopped for its min_free */
};

struct ck_status_job {
  const char *source, *direction;
  long pid;                   /* the worker's */
  double started_at;          /* wall-clock seconds */
  double seconds;             /* running for */
  unsigned long long done, total; /* tensor bytes */
  unsigned long long slurm_job;   /* the Slurm executor's job, 0: a local worker */
};

struct ck_status_recent {
  const char *source;
  int ok;
  unsigned long long bytes;
  double seconds;
  const char *error; /* "" when ok */
};

/* Counters since start, for the Prometheus textfile, by direction: index
 * ck_metrics_dir(from, to) (formats CK_KIND_*, decide.h). */
#define CK_METRIC_DIRS 25 /* CK_KINDS * CK_KINDS */
enum { CK_OUTCOME_DONE, CK_OUTCOME_FAILED, CK_OUTCOME_BLOCKED, CK_OUTCOME_RETRY, CK_OUTCOME_ABORTED, CK_OUTCOMES };
#define CK_DURATION_BUCKETS 9 /* 1, 5, 15, 60, 300, 900, 3600, 14400 s, +Inf */
#define CK_MAX_REASONS 16
struct ck_metrics {
  unsigned long long jobs[CK_METRIC_DIRS][CK_OUTCOMES];
  unsigned long long bytes[CK_METRIC_DIRS];
  unsigned long long duration_le[CK_METRIC_DIRS][CK_DURATION_BUCKETS]; /* cumulative, as Prometheus wants */
  double duration_sum[CK_METRIC_DIRS];
  unsigned long long failures[CK_MAX_REASONS]; /* by ck_decide_reason() */
  const char *const *reason_names;            /* and their labels */
  int nreasons;
  unsigned long long rescans;
  double rescan_seconds;                      /* the last one's duration */
};

/* The metrics' index of a direction (0 for anything that is not one). */
int ck_metrics_dir(int from, int to);

/* Add one finished job's duration to the histogram of direction d (ck_metrics_dir). */
void ck_metrics_observe(struct ck_metrics *m, int d, double seconds);

/* A job's rate (bytes/s) and time left (s; -1 when unknown). */
double ck_status_rate(const struct ck_status_job *j);
double ck_status_eta(const struct ck_status_job *j);

/* A snapshot of the daemon; strings are borrowed. */
struct ck_status {
  const char *version, *state, *config;
  long pid;
  double started_at, updated_at;       /* wall-clock seconds */
  const struct ck_status_root *roots;
  size_t nroots;
  size_t watched_directories;
  int running, queued, waiting, blocked, done, failed;
  unsigned long long done_since_start, failed_since_start, bytes_since_start, checks_since_start;
  const struct ck_status_job *jobs;
  size_t njobs;
  const struct ck_status_recent *recent; /* newest first */
  size_t nrecent;
  const struct ck_metrics *metrics;
};

/* The status file's JSON (one object per line inside arrays: `ckpt status` reads it
 * with a line scanner). */
void ck_status_json(FILE *f, const struct ck_status *st);

/* The Prometheus textfile-collector form. */
void ck_status_prometheus(FILE *f, const struct ck_status *st);

/* Replace path atomically with what fn writes (temporary, rename). 0 or -errno. */
int ck_status_save(const char *path, void (*fn)(FILE *f, const struct ck_status *st), const struct ck_status *st);

/* Print a status file's text (NUL-terminated, modified) for people: a summary, the
 * trees, a table of running jobs (with a progress bar per job when tty), recent
 * results. */
void ck_status_print(char *text, FILE *out, int tty);

#endif
