/* ckptd's configuration: the [ckptd] section and one [watch NAME] section per tree,
 * parsed with inih; every error names the file and the line. */
#ifndef CK_CONF_H
#define CK_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#include "convert.h"
#include "decide.h"

enum { CK_LOG_ERROR = 0, CK_LOG_WARN = 1, CK_LOG_INFO = 2, CK_LOG_DEBUG = 3 };

#define CK_MAX_GLOBS 16
#define CK_MAX_RULES 16
#define CK_CONF_MAX_BYTES (1 << 20)

struct ck_watch_conf {
  char *name;
  char *path;             /* absolute, no trailing slash */
  int target[CK_KINDS];   /* direction: the format a source of each kind becomes (CK_KIND_*), 0: none;
                           * at most one target per source format */
  char direction[160];    /* its words, for humans: "both", "saver-to-safetensors,safetensors-to-h5" */
  int recursive;
  int events;             /* 0: rely on rescans only (network filesystems, tests) */
  char *include[CK_MAX_GLOBS];
  int ninclude;
  char *exclude[CK_MAX_GLOBS];
  int nexclude;
  int layout;
  int compression;
  int gzip_level;
  uint64_t shard_size;
  struct ck_shard_rule rules[CK_MAX_RULES];
  int nrules;
  int update_checkpoint_file; /* CK_CKPTFILE_NEVER, _AUTO (default) or _ALWAYS */
  int require_success;    /* an .h5 is complete only with a true root __SUCCESS__ */
  int mirror_deletes;     /* a converted source deleted: delete its unchanged output too */
  int missing;            /* path does not exist (yet): watched when it appears */
  uint64_t min_free;      /* the disk guard: bytes to leave free on the output's file system, */
  double min_free_pct;    /* or (min_free = 0) this percentage of its size; default 5% */
  int workers;            /* conversions of this tree at once, within [ckptd] workers; 0: no own limit */
  double settle_seconds;  /* this tree's quiet time; < 0: [ckptd] settle_seconds */
  int priority;           /* its queued jobs start before lower ones (default 0) */
  char *on_done;          /* shell command run after a conversion (CKPTD_* in its environment) */
  char *on_failed;        /* ... after a failed or blocked one */
  double hook_timeout;    /* seconds before a hook is killed (default 60) */
  char *output_group;     /* group given to outputs, or NULL */
  int output_mode;        /* mode given to outputs (e.g. 0640), or -1: 0644 less the umask */
  int verify;
};

struct ck_conf {
  char *source;           /* the file it came from, or "(built-in default)" */
  char *warnings;         /* "FILE:LINE: ..." lines about what works but may not be meant, or NULL */
  int workers;
  uint64_t memory_budget; /* bytes shared by all running jobs */
  char *state_dir;
  char *status_file;
  char *prometheus_file;  /* optional textfile-collector output */
  char *control_socket;   /* `ckpt ctl`'s socket; default /run/ckptd/control.sock where /run/ckptd
                           * is a directory (systemd's RuntimeDirectory), else state_dir/control.sock */
  char *control_group;    /* the socket's group, or NULL */
  int log_level;
  double settle_seconds;
  double rescan_seconds;
  double stop_timeout;    /* SIGTERM: how long running jobs may take to finish */
  uint64_t worker_memory_limit; /* address-space limit of each worker process, 0: none */
  uint64_t worker_cpu_limit;    /* CPU seconds of each worker process, 0: none */
  /* beyond one machine (README "Clusters") */
  int executor;           /* CK_EXEC_LOCAL (child processes here) or CK_EXEC_SLURM (sbatch jobs) */
  char *slurm_options;    /* [slurm] options: extra sbatch arguments, split at blanks, or NULL */
  double slurm_poll;      /* [slurm] poll_seconds: how often a job's state and progress are read */
  char *claims_dir;       /* a shared directory where instances claim sources, or NULL: no claims */
  double lease_seconds;   /* a claim's lease, renewed while its job runs */
  char *instance;         /* this instance's name in claims; default "HOST:STATE_DIR" */
  struct ck_watch_conf *watches;
  int nwatches;
};

enum { CK_EXEC_LOCAL = 0, CK_EXEC_SLURM = 1 };

/* Parse path into *out. 0, or a negative code with "file:line: what" in err. */
int ck_conf_load(const char *path, struct ck_conf *out, struct ck_err *err);

/* Parse INI text (name used in messages). */
int ck_conf_parse_string(const char *text, const char *name, struct ck_conf *out, struct ck_err *err);

/* The built-in default: watch ./var/model_dir in both directions (saver-to-h5, h5-to-saver). */
int ck_conf_default(struct ck_conf *out, struct ck_err *err);

/* Free the contents. */
void ck_conf_free(struct ck_conf *c);

/* A human summary of the configuration, for --check-config. */
void ck_conf_print(const struct ck_conf *c);

/* 1 if a tree at `outer` (recursive or not) watches the directory `inner` (both
 * absolute, real paths): the same directory, or one below a recursive tree. */
int ck_conf_covers(const char *outer, int recursive, const char *inner);

#endif
