/* The durable record of conversions under state_dir: an append-only log, fsynced per
 * entry, replayed and compacted at start, so that nothing done is redone and pending
 * work resumes after a restart or crash. */
#ifndef CK_RECORD_H
#define CK_RECORD_H

#include <stdint.h>

#include "error.h"

enum { CK_REC_QUEUED = 0, CK_REC_RUNNING = 1, CK_REC_DONE = 2, CK_REC_FAILED = 3, CK_REC_SKIPPED = 4 /* ckpt ctl skip */ };

/* What a source was when it was converted (or failed): change detection. */
struct ck_ident {
  uint64_t dev, ino, size;
  int64_t mtime_ns;
};

struct ck_rec {
  char *src;
  int status;
  int direction;
  struct ck_ident id;
  long long duration_ms;
  double when;     /* wall-clock seconds */
  char *output;
  char *error;
};

struct ck_record;

/* Open (creating) state_dir/record.log, replay and compact it. 0 or -errno (-EBUSY: another
 * ckptd holds state_dir), err saying why. */
int ck_record_open(const char *state_dir, struct ck_record **out, struct ck_err *err);

/* The record as it is, beside a running ckptd (`ckptd --dry-run`): no lock, no
 * compaction, nothing written (ck_record_put only remembers). A missing state_dir
 * is an empty record. */
int ck_record_open_readonly(const char *state_dir, struct ck_record **out, struct ck_err *err);

/* The latest entry for src, or NULL. */
const struct ck_rec *ck_record_get(const struct ck_record *r, const char *src);

/* The entry whose output is path (a file ckptd wrote), or NULL. */
const struct ck_rec *ck_record_by_output(const struct ck_record *r, const char *path);

/* Append an entry (fsync) and make it the latest for its src. 0 or -errno. */
int ck_record_put(struct ck_record *r, const struct ck_rec *e);

/* Counts by status. */
void ck_record_counts(const struct ck_record *r, int *done, int *failed, int *pending);

/* Lines skipped as damaged during replay. */
int ck_record_damaged(const struct ck_record *r);

void ck_record_close(struct ck_record *r);

#endif
