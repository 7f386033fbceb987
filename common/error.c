/* Error codes and messages. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

const char *ck_strerror(int code)
{
  switch (code) {
  case 0: return "success";
  case CK_EFORMAT: return "malformed data";
  case CK_ECHECKSUM: return "checksum mismatch";
  case CK_ETRUNC: return "truncated file";
  case CK_EUNSUP: return "unsupported feature";
  case CK_ENOTFOUND: return "not found";
  case CK_ELIMIT: return "size limit exceeded";
  case CK_EINVAL: return "invalid argument";
  case CK_EINCOMPLETE: return "not complete yet";
  case CK_ENOROOM: return "free space under min_free";
  case CK_ESCHED: return "the cluster's scheduler failed the job";
  case CK_ESCHEDCONF: return "the cluster's scheduler refused the job";
  case CK_ECANCELLED: return "cancelled by someone else";
  case CK_ECLAIMED: return "claimed by another instance";
  default:
    if (code < 0 && code > -4000)
      return strerror(-code);
    return "unknown error";
  }
}

int ck_err_set(struct ck_err *err, int code, const char *fmt, ...)
{
  va_list ap;

  if (err == NULL)
    return code;
  err->code = code;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
  va_end(ap);
  return code;
}

void ck_err_prefix(struct ck_err *err, const char *fmt, ...)
{
  char head[CK_ERR_MSG_MAX];
  char old[CK_ERR_MSG_MAX];
  va_list ap;

  if (err == NULL)
    return;
  va_start(ap, fmt);
  vsnprintf(head, sizeof(head), fmt, ap);
  va_end(ap);
  memcpy(old, err->msg, sizeof(old));
  /* Truncating a long message is fine: the head (file name) comes first. */
  size_t n = strnlen(head, sizeof(err->msg) - 1);
  memcpy(err->msg, head, n);
  if (n + 2 < sizeof(err->msg)) {
    memcpy(err->msg + n, ": ", 2);
    n += 2;
    size_t m = strnlen(old, sizeof(err->msg) - 1 - n);
    memcpy(err->msg + n, old, m);
    n += m;
  }
  err->msg[n] = '\0';
}

void ck_err_clear(struct ck_err *err)
{
  if (err == NULL)
    return;
  err->code = 0;
  err->msg[0] = '\0';
}
