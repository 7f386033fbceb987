/* Temporary names: the pid rule from a table of names, and removing one process's
 * temporaries removes exactly its regular files (not another pid's, not a link). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "tap.h"
#include "testutil.h"

static void touch(const char *dir, const char *name)
{
  char path[4200];
  FILE *f;

  snprintf(path, sizeof(path), "%s/%s", dir, name);
  f = fopen(path, "w");
  fputs("x", f);
  fclose(f);
}

static int exists(const char *dir, const char *name)
{
  char path[4200];
  struct stat st;

  snprintf(path, sizeof(path), "%s/%s", dir, name);
  return lstat(path, &st) == 0;
}

int main(void)
{
  static const struct {
    const char *name;
    long pid;
  } t[] = {
    { ".model.h5.ckptd-tmp.1234.0", 1234 },
    { ".model.ckpt-1.index.ckptd-tmp.77.12", 77 },
    { ".a.ckptd-tmp.1.0.h5.ckptd-tmp.99.3", 99 }, /* synth's intermediate: the last tag counts */
    { "model.h5.ckptd-tmp.1234.0", -1 },          /* not hidden: not ours */
    { ".model.h5.ckptd-tmp.x.0", -1 },
    { ".model.h5.ckptd-tmp.12", -1 },
    { ".model.h5.ckptd-tmp.0.1", -1 },
    { ".model.h5", -1 },
  };
  char *dir = tu_tmpdir(), *tmp, path[4200];
  long me = (long)getpid();

  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
    ok(ck_temp_pid(t[i].name) == t[i].pid, "pid of %s: %ld", t[i].name, t[i].pid);
  snprintf(path, sizeof(path), "%s/out.h5", dir);
  tmp = ck_temp_name(path);
  ok(tmp && ck_temp_pid(strrchr(tmp, '/') + 1) == me, "ck_temp_name's names carry our pid");
  free(tmp);

  touch(dir, ".a.h5.ckptd-tmp.4242.0");
  touch(dir, ".b.index.ckptd-tmp.4242.1");
  touch(dir, ".c.h5.ckptd-tmp.4243.0");
  touch(dir, "keep.h5");
  snprintf(path, sizeof(path), "%s/.link.ckptd-tmp.4242.2", dir);
  symlink("keep.h5", path);
  ok(ck_temp_remove_pid(dir, 4242) == 2, "two temporaries of pid 4242 removed");
  ok(!exists(dir, ".a.h5.ckptd-tmp.4242.0") && !exists(dir, ".b.index.ckptd-tmp.4242.1"), "they are gone");
  ok(exists(dir, ".c.h5.ckptd-tmp.4243.0") && exists(dir, "keep.h5"), "another pid's temporary and other files stay");
  ok(exists(dir, ".link.ckptd-tmp.4242.2"), "a symbolic link with a temporary's name is never removed");
  tu_rmtree(dir);
  free(dir);
  return tap_done();
}
