/* Per-tree hooks: on_done and on_failed run a shell command after a conversion
 * (notify a serving system, page someone), with what happened in its environment
 * (CKPTD_EVENT, CKPTD_SOURCE, CKPTD_OUTPUT, CKPTD_DIRECTION, CKPTD_TREE, CKPTD_BYTES,
 * CKPTD_SECONDS, CKPTD_ERROR, CKPTD_REASON). A hook runs in its own process group,
 * is killed (the whole group) after its timeout, and its exit status is logged
 * (event=hook); when the shell exits, what it left running in its group is killed
 * too. A hook still running at shutdown delays the exit by at most its timeout.
 * Its output is discarded: the log stays one line per event. */
#ifndef CK_HOOK_H
#define CK_HOOK_H

#include <uv.h>

struct ck_hook_env {
  const char *event; /* "done" or "failed" */
  const char *source, *output, *direction, *tree, *error, *reason;
  unsigned long long bytes;
  double seconds;
};

/* Start command under /bin/sh -c. 0, or a negative libuv code (logged). */
int ck_hook_run(uv_loop_t *loop, const char *command, double timeout, const struct ck_hook_env *e);

#endif
