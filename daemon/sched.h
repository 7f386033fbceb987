/* The scheduler: turns file events into candidates, decides when a checkpoint is
 * complete, queues one conversion per source, keeps the durable record and the
 * status file. Everything here runs on the loop thread. */
#ifndef CK_SCHED_H
#define CK_SCHED_H

#include <stddef.h>
#include <uv.h>

#include "conf.h"

struct ck_sched;

/* Open the record (locking state_dir), clean temporaries of a crashed run, start the
 * executor and watches. Takes ownership of conf once it succeeds. 0, or a negative
 * errno with msg (-EBUSY: another instance holds state_dir). */
int ck_sched_start(uv_loop_t *loop, struct ck_conf *conf, struct ck_sched **out, char *msg, size_t msglen);

/* Apply a new configuration (watched trees added and removed without a restart).
 * Takes ownership of conf. */
void ck_sched_reload(struct ck_sched *s, struct ck_conf *conf);

/* The configuration in force. */
const struct ck_conf *ck_sched_conf(const struct ck_sched *s);

/* Stop intake, let running jobs finish within stop_timeout, abort the rest (their
 * temporaries removed, their sources left pending in the record), then call done. */
void ck_sched_shutdown(struct ck_sched *s, void (*done)(void *ctx), void *ctx);

/* One line for sd_notify STATUS=. */
void ck_sched_status_line(struct ck_sched *s, char *buf, size_t len);

/* Close the scheduler's timers (then run the loop once to let them close). */
void ck_sched_close_handles(struct ck_sched *s);

/* Free (after shutdown has completed and the loop has closed its handles). */
void ck_sched_free(struct ck_sched *s);

#endif
