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
};

struct ck_status_job {
  const char *source, *direction;
  double seconds;
};

struct ck_status_recent {
  const char *source;
  int ok;
  unsigned long long bytes;
  double seconds;
  const char *error; /* "" when ok */
};

/* A snapshot of the daemon; strings are borrowed. */
struct ck_status {
  const char *version, *state, *config;
  long pid;
  double started_at, updated_at;       /* wall-clock seconds */
  const struct ck_status_root *roots;
  size_t nroots;
  size_t watched_directories;
  int running, queued, waiting, done, failed;
  unsigned long long done_since_start, failed_since_start, bytes_since_start, checks_since_start;
  const struct ck_status_job *jobs;
  size_t njobs;
  const struct ck_status_recent *recent; /* newest first */
  size_t nrecent;
};

/* The status file's JSON (one object per line inside arrays: `ckpt status` reads it
 * with a line scanner). */
void ck_status_json(FILE *f, const struct ck_status *st);

/* The Prometheus textfile-collector form. */
void ck_status_prometheus(FILE *f, const struct ck_status *st);

/* Replace path atomically with what fn writes (temporary, rename). 0 or -errno. */
int ck_status_save(const char *path, void (*fn)(FILE *f, const struct ck_status *st), const struct ck_status *st);

/* Print a status file's text (NUL-terminated, modified) for people. */
void ck_status_print(char *text, FILE *out);

#endif
