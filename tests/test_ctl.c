/* The control protocol's request parser, row by row: what `ckpt ctl` may send and
 * what ckptd refuses before acting. */
#include "config.h"

#include <string.h>

#include "../daemon/ctl.h"
#include "tap.h"

int main(void)
{
  static const struct {
    const char *line;
    int verb;
    const char *arg;
  } t[] = {
    { "retry /m/model.ckpt-100\n", CK_CTL_RETRY, "/m/model.ckpt-100" },
    { "skip /m/a b.h5", CK_CTL_SKIP, "/m/a b.h5" }, /* no newline; spaces in a path */
    { "reconvert /m/x.index\n", CK_CTL_RECONVERT, "/m/x.index" },
    { "pause training\n", CK_CTL_PAUSE, "training" },
    { "resume training\n", CK_CTL_RESUME, "training" },
    { "retry\n", 0, NULL },                 /* no argument */
    { "retry \n", 0, NULL },                /* empty argument */
    { "frobnicate /m\n", 0, NULL },         /* unknown verb */
    { "retryx /m\n", 0, NULL },
    { "Retry /m\n", 0, NULL },
    { "retry /m\r\n", 0, NULL },            /* control bytes */
    { "retry /m\nskip /n\n", 0, NULL },     /* two lines */
    { "retry /a\tb\n", 0, NULL },
    { "", 0, NULL },
    { "\n", 0, NULL },
  };
  char arg[CK_CTL_LINE_MAX], small[4], long_line[CK_CTL_LINE_MAX + 10];
  int verb;

  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    int rc = ck_ctl_parse(t[i].line, &verb, arg, sizeof(arg));
    ok(t[i].verb ? rc == 0 && verb == t[i].verb && strcmp(arg, t[i].arg) == 0 : rc != 0, "\"%.*s\": %s %s",
       (int)strcspn(t[i].line, "\n"), t[i].line, t[i].verb ? ck_ctl_verb_name(t[i].verb) : "refused",
       t[i].arg ? t[i].arg : "");
  }
  ok(ck_ctl_parse("retry /m/model\n", &verb, small, sizeof(small)) != 0, "an argument longer than its buffer is refused");
  memset(long_line, 'a', sizeof(long_line));
  memcpy(long_line, "retry /", 7);
  long_line[sizeof(long_line) - 1] = '\0';
  ok(ck_ctl_parse(long_line, &verb, arg, sizeof(arg)) != 0, "a line longer than CK_CTL_LINE_MAX is refused");
  ok(strcmp(ck_ctl_verb_name(0), "?") == 0 && strcmp(ck_ctl_verb_name(CK_CTL_RESUME), "resume") == 0, "verb names");
  return tap_done();
}
