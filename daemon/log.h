/* Logging: one key=value line per event on stderr, or structured journald entries
 * (CKPT_PATH, DIRECTION, BYTES, DURATION_MS, a stable MESSAGE_ID per event kind)
 * when stderr is connected to the journal. */
#ifndef CK_LOG_H
#define CK_LOG_H

#include "conf.h"

/* Optional structured fields of an event (NULL / -1 when absent). */
struct ck_log_fields {
  const char *path;
  const char *direction;
  long long bytes;
  long long duration_ms;
  const char *output;
  const char *error;
  const char *reason; /* a failure's class (ck_decide_reason_name) */
  unsigned long long slurm_job; /* the Slurm executor's job, 0: none */
};

#define CK_LOG_NO_FIELDS ((const struct ck_log_fields *)0)

/* Choose the sink (journald if JOURNAL_STREAM names our stderr) and the level. */
void ck_log_init(int level);

/* Change the level (after a reload). */
void ck_log_set_level(int level);

/* Log event (a short stable name such as "job_done") with a printf-style message. */
void ck_log(int level, const char *event, const struct ck_log_fields *f, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
