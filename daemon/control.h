/* The control socket: a Unix stream socket (mode 0660, group control_group) on which
 * `ckpt ctl` sends one request and reads one reply (ctl.h). The scheduler acts on
 * each request at once, on the loop thread. */
#ifndef CK_CONTROL_H
#define CK_CONTROL_H

#include <stddef.h>
#include <uv.h>

#include "error.h"

struct ck_control;

/* fn acts on a request and writes a one-line reply: "ok ..." or "error ...". */
typedef void (*ck_control_fn)(void *ctx, int verb, const char *arg, char *reply, size_t len);

/* Listen on path (a stale socket there is replaced; any other file is an error).
 * group: NULL, or a group name the socket is given to. 0 or a negative code. */
int ck_control_start(uv_loop_t *loop, const char *path, const char *group, ck_control_fn fn, void *ctx,
                     struct ck_control **out, struct ck_err *err);

/* Stop listening and remove the socket; clients in flight are closed. */
void ck_control_close(struct ck_control *c);

#endif
