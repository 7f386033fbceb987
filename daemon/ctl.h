/* The control protocol between `ckpt ctl` and ckptd: one request line, "VERB ARG\n",
 * one reply line, "ok TEXT\n" or "error TEXT\n", on a Unix socket. Parsing only:
 * daemon/control.c serves it, tools/ckpt.c sends it. */
#ifndef CK_CTL_H
#define CK_CTL_H

#include <stddef.h>

enum { CK_CTL_RETRY = 1, CK_CTL_SKIP, CK_CTL_RECONVERT, CK_CTL_PAUSE, CK_CTL_RESUME };

#define CK_CTL_LINE_MAX 4352 /* a path of PATH_MAX and the verb */

/* Parse one request line (without or with its '\n'): 0 with *verb and the argument
 * copied into arg, or -1 (an unknown verb, no argument, control bytes, too long). */
int ck_ctl_parse(const char *line, int *verb, char *arg, size_t arglen);

/* "retry", "skip", ... */
const char *ck_ctl_verb_name(int verb);

#endif
