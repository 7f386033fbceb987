/* The scheduler: turns file events into candidates, decides when a checkpoint is
 * complete, queues one conversion per source, keeps the durable record and the
 * status file. Everything here runs on the loop thread. */
#ifndef CK_SCHED_H
#define CK_SCHED_H

#include <stddef.h>
#include <sys/stat.h>
#include <uv.h>

#include "conf.h"

struct ck_sched;
struct ck_pool;
struct ck_record;
struct ck_watch;
struct ck_job;

/* Modes: CK_SCHED_ONCE converts what is complete now and then calls the
 * ck_sched_when_idle callback (no rescans, no retries, no waiting for files still
 * being written); CK_SCHED_DRY_RUN (implies ONCE) converts nothing, writes nothing,
 * and prints what it would do. Both print one line per source on stdout. */
enum { CK_SCHED_ONCE = 1, CK_SCHED_DRY_RUN = 2 };

/* What a --once run did. */
struct ck_once {
  int converted;    /* (dry run: would convert) */
  int failed;       /* failed or blocked */
  int not_complete; /* still being written */
  int held;         /* held back by the disk guard */
};

/* A scheduler over an open record. Takes ownership of conf (reloads replace it).
 * NULL when out of memory. main() creates it before the executor and the watcher
 * that report to it ... */
struct ck_sched *ck_sched_new(uv_loop_t *loop, struct ck_conf *conf, struct ck_record *rec, int flags);

/* ... whose callbacks these are (ck_job_done_fn and ck_watch_file_fn, ctx = s) ... */
void ck_sched_job_done(void *ctx, struct ck_job *j);
void ck_sched_on_file(void *ctx, int root, const char *path, const struct stat *st, int initial);

/* ... and then starts it: the trees are added to the watcher (scanned at once) and
 * the rescan and status timers start. */
void ck_sched_run(struct ck_sched *s, struct ck_pool *pool, struct ck_watch *watch);

/* A control request (ck_control_fn, ctx = s): act at once, write a one-line reply. */
void ck_sched_control(void *ctx, int verb, const char *arg, char *reply, size_t len);

/* --once: fn(ctx) runs when nothing is left to do; ck_sched_once() says how it went. */
void ck_sched_when_idle(struct ck_sched *s, void (*fn)(void *ctx), void *ctx);
const struct ck_once *ck_sched_once(const struct ck_sched *s);

/* Apply a new configuration (watched trees added and removed without a restart).
 * Takes ownership of conf. */
void ck_sched_reload(struct ck_sched *s, struct ck_conf *conf);

/* The configuration in force. */
const struct ck_conf *ck_sched_conf(const struct ck_sched *s);

/* Stop intake (the caller closes the watcher next), let running jobs finish within
 * stop_timeout, abort the rest (their temporaries removed, their sources left
 * pending in the record), then call done. */
void ck_sched_shutdown(struct ck_sched *s, void (*done)(void *ctx), void *ctx);

/* One line for sd_notify STATUS=. */
void ck_sched_status_line(struct ck_sched *s, char *buf, size_t len);

/* Close the scheduler's timers (then run the loop once to let them close). */
void ck_sched_close_handles(struct ck_sched *s);

/* Free (after shutdown has completed and the loop has closed its handles; the
 * executor and record are main's, stopped and closed around this). */
void ck_sched_free(struct ck_sched *s);

#endif
