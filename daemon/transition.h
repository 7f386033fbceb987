/* A candidate's life as pure functions: given what a check, a probe, the record and
 * the output's own mark, or a job found, what happens next. No I/O, no libuv, no
 * clock (times come in as arguments): sched.c gathers the facts and performs the
 * result; tests/test_transition.c drives every row of every table. */
#ifndef CK_TRANSITION_H
#define CK_TRANSITION_H

#include <stdint.h>

/* Where a candidate is. */
enum {
  CK_ST_SETTLING, /* a check is due at next_check */
  CK_ST_CHECKING, /* a check or probe runs */
  CK_ST_WAITING,  /* not complete: the next event or rescan looks again */
  CK_ST_QUEUED,
  CK_ST_RUNNING,  /* its job is with the executor */
  CK_ST_DONE,     /* converted, unchanged since */
  CK_ST_FAILED,   /* bad input: retried when it changes */
  CK_ST_SKIPPED,  /* nothing to do (ckptd's own output, the other format already there) */
  CK_ST_RETRY,    /* a transient failure: retried after a backoff */
  CK_ST_BLOCKED,  /* a permanent cause (EACCES, EROFS, unsupported): retried when the
                   * source, the output directory's permissions or the configuration change */
};

/* What to do next. */
enum {
  CK_ACT_IDLE,   /* stopping or cancelled: WAITING, silently */
  CK_ACT_WAIT,   /* not complete yet: WAITING */
  CK_ACT_SETTLE, /* look again in `delay` seconds */
  CK_ACT_FAIL,   /* not a valid checkpoint: record it, FAILED until it changes */
  CK_ACT_PROBE,  /* a settled HDF5 file: open it in a worker */
  CK_ACT_DECIDE, /* complete: ck_next_source() says what it needs */
  CK_ACT_SKIP,   /* ckptd's own output, or not a checkpoint at all: SKIPPED */
};

struct ck_next {
  int act;      /* CK_ACT_* */
  double delay; /* CK_ACT_SETTLE: seconds from now */
};

/* A check (stats, a bundle's index parse, a single file's probe.c) found: */
enum {
  CK_CHECK_READY,
  CK_CHECK_WAIT,
  CK_CHECK_CORRUPT,
  CK_CHECK_NOT, /* not a checkpoint at all (an .mdl that is not HDF5, a .bin that is no zip) */
};

struct ck_check_seen {
  int kind;          /* CK_KIND_* */
  int res;           /* CK_CHECK_* */
  double age;        /* seconds since its newest file's mtime */
  double settle;     /* settle_seconds */
  int have_sig;      /* an earlier check left a signature */
  uint64_t prev_sig; /* its files' sizes and mtimes then ... */
  uint64_t sig;      /* ... and now */
};

/* Settled means quiet for settle_seconds and unchanged since the previous check;
 * a settled HDF5 file is probed first (in a worker), any other source decided (torch
 * and safetensors files were probed by the check itself); a settled file that is not a
 * checkpoint at all is skipped (looked at again when it changes). */
struct ck_next ck_next_after_check(const struct ck_check_seen *in);

/* A probe (an HDF5 open in a worker) found: */
struct ck_probe_seen {
  int cancelled; /* aborted, or the daemon is stopping */
  int touched;   /* an event for its files arrived while it ran */
  int changed;   /* the probe saw another size or mtime than the check */
  int failed;    /* the worker could not look (the file vanished, ...) */
  int crashed;   /* the worker died: libhdf5 crashed on the file */
  int verdict;   /* CK_PROBE_READY, _WAIT or _CORRUPT */
  int ours;      /* ckptd's converted copy of the bundle of its name */
  double settle;
};

struct ck_next ck_next_after_probe(const struct ck_probe_seen *in);

/* An output's own mark (an extended attribute ckptd sets on the .h5 or the
 * bundle's .index before publishing it): */
enum {
  CK_MARK_NONE,  /* none (not ckptd's, or a file system without user xattrs) */
  CK_MARK_SAME,  /* ckptd's output of this source as it is now */
  CK_MARK_STALE, /* ckptd's output of this source before it was rewritten */
  CK_MARK_OTHER, /* ckptd's output of another source of that name */
};

/* What a complete source needs, from the record and the files: */
enum {
  CK_NEED_NONE_DONE,     /* converted before, unchanged since: DONE */
  CK_NEED_NONE_FAILED,   /* the same bad input as last time: FAILED */
  CK_NEED_NONE_OURS,     /* ckptd wrote this file: never converted back */
  CK_NEED_NONE_THEIRS,   /* the other format is there and not ckptd's: SKIPPED */
  CK_NEED_ADOPT,         /* ckptd's current output is there (state_dir lost): record DONE */
  CK_NEED_CONVERT,       /* a new source */
  CK_NEED_RECONVERT,     /* converted before, rewritten since (or an operator asked): convert again */
  CK_NEED_NONE_SKIPPED,  /* an operator skipped it (ckpt ctl skip), unchanged since */
};

enum { CK_SEEN_NONE = -1 }; /* no record for the source */

struct ck_source_seen {
  int rec;        /* its last record status (CK_REC_*) or CK_SEEN_NONE */
  int rec_same;   /* the record's identity is the source's now */
  int rec_dst;    /* the record's output is this source's output name */
  int is_output;  /* the record lists it as the output of another source */
  int dst_exists; /* something has the output's name */
  int dst_mark;   /* CK_MARK_* of that output */
  int force;      /* an operator's request: CK_FORCE_RETRY (past a failure or a skip),
                   * CK_FORCE_RECONVERT (past a done conversion too) */
};

enum { CK_FORCE_NONE, CK_FORCE_RETRY, CK_FORCE_RECONVERT };

int ck_next_source(const struct ck_source_seen *in);

/* A conversion job ended: */
struct ck_job_seen {
  int rc;        /* 0, -ECANCELED (shutdown), or a failure */
  int transient; /* ck_decide_transient(rc) */
  int blocked;   /* ck_decide_blocked(rc) */
  int stopping;  /* the daemon is stopping */
  int attempts;  /* transient failures so far */
  int dirty;     /* an event for its files arrived while it ran */
  double settle;
};

struct ck_after_job {
  int state;    /* CK_ST_DONE, _WAITING, _RETRY, _BLOCKED or _FAILED */
  int record;   /* CK_REC_DONE, CK_REC_FAILED or CK_SEEN_NONE (nothing to record) */
  int attempts; /* the new count */
  double delay; /* CK_ST_RETRY: the backoff; else >= 0: look again after it (dirty) */
};

struct ck_after_job ck_next_after_job(const struct ck_job_seen *in);

/* The mark ckptd sets on an output: "NAME SIZE:MTIME_NS" (the source's base name
 * and identity). ck_mark_judge() compares one read back with the source's. */
int ck_mark_judge(const char *mark, const char *source_name, const char *source_id);

#endif
