/* The control protocol (see ctl.h). */
#include "config.h"

#include <string.h>

#include "ctl.h"

static const char *const verbs[] = { NULL, "retry", "skip", "reconvert", "pause", "resume" };

const char *ck_ctl_verb_name(int verb)
{
  return verb >= CK_CTL_RETRY && verb <= CK_CTL_RESUME ? verbs[verb] : "?";
}

int ck_ctl_parse(const char *line, int *verb, char *arg, size_t arglen)
{
  size_t n = strlen(line), vlen;
  const char *sp;

  if (n > 0 && line[n - 1] == '\n')
    n--;
  if (n == 0 || n >= CK_CTL_LINE_MAX || (sp = memchr(line, ' ', n)) == NULL)
    return -1;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
      return -1; /* one line of text: no control bytes in a path or tree name */
  vlen = (size_t)(sp - line);
  *verb = 0;
  for (int v = CK_CTL_RETRY; v <= CK_CTL_RESUME; v++)
    if (strlen(verbs[v]) == vlen && strncmp(line, verbs[v], vlen) == 0)
      *verb = v;
  if (*verb == 0 || n - vlen - 1 == 0 || n - vlen - 1 >= arglen)
    return -1;
  memcpy(arg, sp + 1, n - vlen - 1);
  arg[n - vlen - 1] = '\0';
  return 0;
}
