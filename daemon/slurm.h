/* The Slurm executor's decisions: what ckptd asks sbatch for, how it reads what
 * sbatch, squeue and sacct print, and what a finished job means for the conversion.
 * Pure functions, no I/O: slurm_run.c does the talking, test_slurm.c the tables.
 *
 * A conversion on Slurm is a batch job running the same worker as a local child
 * (`ckptd --worker ...`), whose protocol lines go to a report file beside the output
 * on the shared filesystem instead of a pipe. The script also records the node and
 * the worker's exit status there, so the outcome is known without accounting. */
#ifndef CK_SLURM_H
#define CK_SLURM_H

#include <stddef.h>
#include <stdint.h>

enum {
  CK_SLURM_UNKNOWN = 0, /* printed nothing we know */
  CK_SLURM_GONE,        /* the controller no longer knows the job (MinJobAge passed) */
  CK_SLURM_PENDING,
  CK_SLURM_RUNNING,     /* also CONFIGURING, COMPLETING, SUSPENDED, ...: not over */
  CK_SLURM_COMPLETED,
  CK_SLURM_FAILED,
  CK_SLURM_CANCELLED,
  CK_SLURM_TIMEOUT,
  CK_SLURM_NODE_FAIL,
  CK_SLURM_PREEMPTED,
  CK_SLURM_OUT_OF_MEMORY,
  CK_SLURM_BOOT_FAIL,
  CK_SLURM_DEADLINE,
  CK_SLURM_STATES
};

/* A state word as squeue's %T or sacct's State print it ("CANCELLED by 1000",
 * "CANCELLED+", "OUT_OF_MEMORY", "OOM"). */
int ck_slurm_state(const char *word);
const char *ck_slurm_state_name(int state);
/* 1 if a job in this state will not run any more. */
int ck_slurm_final(int state);

/* What the supervisor knows once the job is over. */
struct ck_slurm_end {
  int state;             /* CK_SLURM_* (final, GONE or UNKNOWN) */
  int have_result;       /* the worker wrote its done or fail line */
  int result_stopped;    /* ... and that line says a signal stopped it (-ECANCELED): Slurm's
                          * doing, so Slurm's state tells why */
  int exit_status;       /* the worker's exit status as the script saw it, -1: not recorded */
  int we_cancelled;      /* ckptd cancelled it (shutdown, source gone, ckpt ctl skip) */
};

enum {
  CK_SLURM_USE_RESULT = 1, /* relay the worker's own result */
  CK_SLURM_ABORTED,        /* ours: no result, like a local worker stopped by SIGTERM */
  CK_SLURM_RETRY,          /* the cluster's failure (timeout, node, preemption, memory): CK_ESCHED */
  CK_SLURM_REFUSED,        /* the worker could not even start there: CK_ESCHEDCONF (blocked) */
  CK_SLURM_CANCELLED_BY,   /* someone else's scancel: CK_ECANCELLED, failed */
  CK_SLURM_CRASHED         /* the worker died by a signal on its own: as a local crash */
};
int ck_slurm_outcome(const struct ck_slurm_end *e);

/* The instance tag (fileio.h's 8 hex digits) that the Slurm jobs of the instance with
 * tag `instance` give their temporaries: the supervisor names its jobs' files by it,
 * and a claim's taker removes a dead instance's by it. */
void ck_slurm_temp_tag(const char *instance, char out[9]);

/* sbatch --parsable prints "ID" or "ID;CLUSTER". 0, or -1. */
int ck_slurm_parse_jobid(const char *out, uint64_t *id);

/* 1 if an error text from a Slurm command means the controller cannot be reached
 * (a transient outage, not a refusal of the job). */
int ck_slurm_unreachable(const char *text);

/* 1 if squeue's error means it does not know the job (any more). */
int ck_slurm_unknown_job(const char *text);

/* "by UID" in sacct's "CANCELLED by 1000": the uid, or -1. */
long ck_slurm_cancelled_by(const char *state_text);

/* The memory (MiB) a job asks for: its buffer budget and what libhdf5 and the code
 * need beside it. */
uint64_t ck_slurm_mem_mb(uint64_t buffer_size);

/* What one sbatch needs. Strings are borrowed. */
struct ck_slurm_req {
  const char *options;   /* [slurm] options, split at blanks ('...' and "..." group), or NULL */
  const char *job_name;
  const char *out_file;  /* the job's stdout and stderr */
  const char *script;
  const char *instance;  /* CKPTD_INSTANCE for the worker's temporaries */
  uint64_t mem_mb;
  int cpus;
};

/* argv for sbatch (NULL-terminated, free with ck_strv_free); NULL on ENOMEM or
 * an unterminated quote in options (*bad set). Our options come first, so the
 * configured ones can override them. */
char **ck_slurm_sbatch_argv(const struct ck_slurm_req *r, int *bad);

/* The batch script: runs `argv` (the worker's command line) as `instance` (its
 * temporaries' tag) with its protocol on fd 3 appended to report, then records the
 * exit status there. NULL on ENOMEM. */
char *ck_slurm_script(char *const *argv, const char *report, const char *instance);

/* A word quoted for sh: 'it'\''s'. NULL on ENOMEM. */
char *ck_sh_quote(const char *s);

#endif
