/* The worker protocol: how ckptd describes a job to a worker process (its command
 * line, `ckptd --worker ...`) and how the worker reports back (one line per message
 * on file descriptor 3). Pure functions: no I/O, no libuv, unit-tested alone.
 *
 *   progress DONE TOTAL                       bytes done and expected
 *   done TENSORS BYTES SECONDS SKIPPED        a conversion's result
 *   fail CODE MESSAGE                         CODE a negative errno or CK_E* code
 *   slurm JOBID                               the Slurm executor's job was submitted
 *                                             (daemon/slurm_run.c relays the rest)
 *   note MESSAGE                              something worth a log line (the
 *                                             `checkpoint` file left alone, and why)
 *   probe ready|wait|corrupt SIZE MTIME_NS OURS MESSAGE
 *                                             an HDF5 completeness probe's verdict, the
 *                                             file's size and mtime as the probe saw them,
 *                                             and OURS 1 if ckptd wrote it (an output) */
#ifndef CK_WPROTO_H
#define CK_WPROTO_H

#include <stddef.h>
#include <stdint.h>

#include "convert.h"

#define CK_WPROTO_LINE_MAX 1024

enum { CK_WJOB_CONVERT = 1, CK_WJOB_PROBE = 2 };

/* A worker's task. Strings are borrowed (from argv or the scheduler's job). */
struct ck_wjob {
  int kind;                 /* CK_WJOB_CONVERT or CK_WJOB_PROBE */
  int from, to;             /* conversions: the source's and the output's format (CK_KIND_*, decide.h) */
  const char *src;
  const char *dst;          /* conversions only */
  struct ck_convert_opts opts;
  struct ck_shard_rule rules[16];
  int ckpt_policy;          /* to saver: CK_CKPTFILE_* (ckptfile.h); the worker applies it */
  int require_success;      /* probes: a file without a true root __SUCCESS__ is not complete */
  uint64_t mem_limit;       /* address-space limit in bytes, 0: none */
  uint64_t cpu_limit;       /* CPU seconds, 0: none */
  uint64_t min_free;        /* conversions: stop (CK_ENOROOM) when the output's file system has
                             * less free than this, 0: never */
};

/* argv for `exe --worker ...` (NULL-terminated; free with fileio.h's ck_strv_free). NULL on ENOMEM. */
char **ck_wjob_argv(const char *exe, const struct ck_wjob *j);

/* Parse the arguments after --worker (argv[0] is the first of them). 0, or -1 with msg. */
int ck_wjob_parse(int argc, char **argv, struct ck_wjob *j, char *msg, size_t msglen);

enum { CK_WMSG_PROGRESS = 1, CK_WMSG_DONE, CK_WMSG_FAIL, CK_WMSG_PROBE, CK_WMSG_NOTE, CK_WMSG_SLURM };
enum { CK_PROBE_READY = 1, CK_PROBE_WAIT, CK_PROBE_CORRUPT };

/* One message from a worker. */
struct ck_wmsg {
  int type;
  uint64_t done, total;              /* progress */
  uint64_t slurm_job;                /* slurm */
  uint64_t tensors, bytes, skipped;  /* done */
  double seconds;
  int code;                          /* fail */
  int verdict;                       /* probe */
  int ours;
  uint64_t size;
  int64_t mtime_ns;
  char text[CK_WPROTO_LINE_MAX];     /* fail, probe, note: the message */
};

/* Format a message as one line ending in '\n' (newlines in text become spaces).
 * Returns the length (truncated to len - 1 like snprintf). */
size_t ck_wmsg_format(const struct ck_wmsg *m, char *buf, size_t len);

/* Parse one line (without its '\n'). 0, or -1 if it is not a message. */
int ck_wmsg_parse(const char *line, struct ck_wmsg *m);

#endif
