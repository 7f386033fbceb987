/* Error codes and caller-provided error messages shared by every ckptd module. */
#ifndef CK_ERROR_H
#define CK_ERROR_H

#include <stddef.h>

/* Format errors, beyond the negative errno values functions also return. */
#define CK_EFORMAT   (-4001)  /* bytes do not follow the format */
#define CK_ECHECKSUM (-4002)  /* a checksum does not match */
#define CK_ETRUNC    (-4003)  /* file shorter than its contents claim */
#define CK_EUNSUP    (-4004)  /* valid, but a feature we do not implement */
#define CK_ENOTFOUND (-4005)  /* no such tensor or checkpoint */
#define CK_ELIMIT    (-4006)  /* a size beyond what we accept */
#define CK_EINVAL    (-4007)  /* bad argument from the caller */
#define CK_EINCOMPLETE (-4008) /* not finished yet: a writer is still at work */
#define CK_ENOROOM   (-4009)  /* free space fell under the configured minimum (min_free) */
#define CK_ESCHED    (-4010)  /* the cluster's scheduler ended the job (timeout, node failure,
                               * preemption) or could not be reached: try again later */
#define CK_ESCHEDCONF (-4011) /* the cluster's scheduler refused the job as configured */
#define CK_ECANCELLED (-4012) /* someone else cancelled the job (scancel) */
#define CK_ECLAIMED  (-4013)  /* another ckptd instance holds the source's claim */

#define CK_ERR_MSG_MAX 512

/* Human-readable detail for the last error; callers may pass NULL. */
struct ck_err {
  int code;
  char msg[CK_ERR_MSG_MAX];
};

/* Short description of a CK_E* code or negative errno. */
const char *ck_strerror(int code);

/* Record code and a printf-style message in err (if non-NULL); returns code. */
int ck_err_set(struct ck_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix the existing message with "prefix: " (e.g. a file name). */
void ck_err_prefix(struct ck_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Clear err. */
void ck_err_clear(struct ck_err *err);

#endif
