/* A candidate's next state (see transition.h). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "decide.h"
#include "record.h"
#include "transition.h"
#include "wproto.h"

struct ck_next ck_next_after_check(const struct ck_check_seen *in)
{
  if (in->res == CK_CHECK_WAIT)
    return (struct ck_next){ CK_ACT_WAIT, 0 };
  if (in->age < in->settle) /* written to within settle_seconds: look when that has passed */
    return (struct ck_next){ CK_ACT_SETTLE, in->settle - in->age + 0.01 };
  if (in->have_sig && in->prev_sig != in->sig) /* changed since the previous check */
    return (struct ck_next){ CK_ACT_SETTLE, in->settle };
  if (in->res == CK_CHECK_CORRUPT)
    return (struct ck_next){ CK_ACT_FAIL, 0 };
  if (in->res == CK_CHECK_NOT)
    return (struct ck_next){ CK_ACT_SKIP, 0 };
  return (struct ck_next){ in->kind == CK_KIND_H5 ? CK_ACT_PROBE : CK_ACT_DECIDE, 0 };
}

struct ck_next ck_next_after_probe(const struct ck_probe_seen *in)
{
  if (in->cancelled)
    return (struct ck_next){ CK_ACT_IDLE, 0 };
  if (in->touched || (!in->failed && !in->crashed && in->changed)) /* it changed while we looked */
    return (struct ck_next){ CK_ACT_SETTLE, in->settle };
  if (in->crashed || (!in->failed && in->verdict == CK_PROBE_CORRUPT))
    return (struct ck_next){ CK_ACT_FAIL, 0 };
  if (in->failed) /* the worker could not look (no process, EIO, the file vanished): look again */
    return (struct ck_next){ CK_ACT_SETTLE, in->settle > 5 ? in->settle : 5 };
  if (in->verdict == CK_PROBE_WAIT)
    return (struct ck_next){ CK_ACT_WAIT, 0 };
  if (in->ours) /* the .h5 of a bundle retention deleted must never become a rollback */
    return (struct ck_next){ CK_ACT_SKIP, 0 };
  return (struct ck_next){ CK_ACT_DECIDE, 0 };
}

int ck_next_source(const struct ck_source_seen *in)
{
  if (in->rec == CK_REC_SKIPPED && in->rec_same && !in->force)
    return CK_NEED_NONE_SKIPPED;
  if (in->rec == CK_REC_DONE && in->rec_same && in->force != CK_FORCE_RECONVERT)
    return CK_NEED_NONE_DONE;
  if (in->rec == CK_REC_FAILED && in->rec_same && !in->force)
    return CK_NEED_NONE_FAILED;
  if (in->is_output)
    return CK_NEED_NONE_OURS; /* never converted back, whoever asks */
  if (in->dst_exists) {
    if (in->dst_mark == CK_MARK_SAME)
      return in->force == CK_FORCE_RECONVERT ? CK_NEED_RECONVERT : CK_NEED_ADOPT;
    if (in->dst_mark == CK_MARK_STALE)
      return CK_NEED_RECONVERT;
    if (!in->rec_dst) /* not ours by the record nor by its mark: the trainer's */
      return CK_NEED_NONE_THEIRS;
  }
  return in->rec == CK_REC_DONE ? CK_NEED_RECONVERT : CK_NEED_CONVERT;
}

struct ck_after_job ck_next_after_job(const struct ck_job_seen *in)
{
  struct ck_after_job r = { CK_ST_FAILED, CK_REC_FAILED, in->attempts, -1 };

  if (in->rc == 0) {
    r = (struct ck_after_job){ CK_ST_DONE, CK_REC_DONE, 0, -1 };
  } else if (in->rc == -ECANCELED) { /* shutdown: pending, resumed at the next start */
    r = (struct ck_after_job){ CK_ST_WAITING, CK_SEEN_NONE, in->attempts, -1 };
  } else if (in->transient && !in->stopping) {
    return (struct ck_after_job){ CK_ST_RETRY, CK_SEEN_NONE, in->attempts + 1, ck_decide_backoff(in->attempts) };
  } else if (in->blocked) { /* not recorded as failed: after a restart it is tried once more */
    r = (struct ck_after_job){ CK_ST_BLOCKED, CK_SEEN_NONE, in->attempts, -1 };
  }
  if (in->dirty && !in->stopping) /* its files changed while it ran: look again */
    r.delay = in->settle;
  return r;
}

int ck_mark_judge(const char *mark, const char *source_name, const char *source_id)
{
  const char *sp = mark ? strrchr(mark, ' ') : NULL;

  if (sp == NULL || sp == mark || strspn(sp + 1, "0123456789:") != strlen(sp + 1) || strchr(sp + 1, ':') == NULL)
    return CK_MARK_NONE;
  if ((size_t)(sp - mark) != strlen(source_name) || strncmp(mark, source_name, (size_t)(sp - mark)) != 0)
    return CK_MARK_OTHER;
  return strcmp(sp + 1, source_id) == 0 ? CK_MARK_SAME : CK_MARK_STALE;
}
