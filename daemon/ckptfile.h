/* The `checkpoint` file policy of h5-to-saver jobs. The file is the trainer's: it
 * says what a resuming trainer restores. ckptd changes it only where no producer
 * maintains one (policy auto: the file is missing, or ckptd wrote it and it still
 * carries ckptd's marker), or everywhere with policy always. "Latest" is the highest
 * global step, ties and step-less names going by the source's mtime; updates of one
 * directory are serialised across processes (flock on the directory), atomic, and
 * keep every entry already there. */
#ifndef CK_CKPTFILE_H
#define CK_CKPTFILE_H

#include <stddef.h>
#include <string.h>

#include "error.h"

enum { CK_CKPTFILE_NEVER = 0, CK_CKPTFILE_AUTO = 1, CK_CKPTFILE_ALWAYS = 2 };

/* "never", "auto" or "always" (true/yes mean auto, false/no never); -1 otherwise.
 * Inline: the configuration parser and the worker protocol share it. */
static inline int ck_ckptfile_parse_policy(const char *s)
{
  if (!strcmp(s, "auto") || !strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on") || !strcmp(s, "1"))
    return CK_CKPTFILE_AUTO;
  if (!strcmp(s, "always"))
    return CK_CKPTFILE_ALWAYS;
  if (!strcmp(s, "never") || !strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off") || !strcmp(s, "0"))
    return CK_CKPTFILE_NEVER;
  return -1;
}

static inline const char *ck_ckptfile_policy_name(int policy)
{
  return policy == CK_CKPTFILE_ALWAYS ? "always" : policy == CK_CKPTFILE_AUTO ? "auto" : "never";
}

/* List name (a prefix relative to dir, just published) in dir/checkpoint under the
 * policy. 0 with *updated = 1 if the file was written, 0 with *updated = 0 and a
 * reason in note if it was left alone (a producer's file, a malformed one, policy
 * never), or an error code. */
int ck_ckptfile_update(const char *dir, const char *name, int policy, int *updated, char *note, size_t notelen,
                       struct ck_err *err);

/* Take name out of dir/checkpoint if ckptd maintains the file (its marker): the
 * bundle was deleted. "Latest" becomes the newest entry left; a file left with no
 * entry is removed (ckptd created it). 0 with *updated, or an error code. */
int ck_ckptfile_forget(const char *dir, const char *name, int *updated, struct ck_err *err);

#endif
