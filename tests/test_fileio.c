/* Temporary names: the owner rule from a table of names, instance ids, and removing
 * one process's temporaries removes exactly its regular files (not another pid's or
 * another instance's, not a link). */
#include "config.h"

#include <errno.h>
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
    const char *instance;
    long pid;
  } t[] = {
    { ".model.h5.ckptd-tmp.0123abcd-1234.0", "0123abcd", 1234 },
    { ".model.ckpt-1.index.ckptd-tmp.ffffffff-77.12", "ffffffff", 77 },
    { ".a.ckptd-tmp.00000000-1.0.h5.ckptd-tmp.0000000a-99.3", "0000000a", 99 }, /* synth's: the last tag */
    { "model.h5.ckptd-tmp.0123abcd-1234.0", NULL, -1 }, /* not hidden: not ours */
    { ".model.h5.ckptd-tmp.1234.0", NULL, -1 },         /* no instance (an older ckptd's) */
    { ".model.h5.ckptd-tmp.0123ABCD-1234.0", NULL, -1 },
    { ".model.h5.ckptd-tmp.0123abc-1234.0", NULL, -1 },
    { ".model.h5.ckptd-tmp.0123abcd-x.0", NULL, -1 },
    { ".model.h5.ckptd-tmp.0123abcd-12", NULL, -1 },
    { ".model.h5.ckptd-tmp.0123abcd-0.1", NULL, -1 },
    { ".model.h5.ckptd-tmp.0123abcd-5.1x", NULL, -1 },
    { ".model.h5", NULL, -1 },
  };
  char *dir = tu_tmpdir(), *tmp, path[4200], name[200], inst[9];
  long me = (long)getpid();
  struct ck_temp_owner o;

  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    int rc = ck_temp_owner(t[i].name, &o);
    ok(t[i].pid < 0 ? rc != 0 : rc == 0 && o.pid == t[i].pid && strcmp(o.instance, t[i].instance) == 0,
       "owner of %s: %s %ld", t[i].name, t[i].instance ? t[i].instance : "none", t[i].pid);
  }
  snprintf(path, sizeof(path), "%s/out.h5", dir);
  tmp = ck_temp_name(path);
  ok(tmp && ck_temp_owner(strrchr(tmp, '/') + 1, &o) == 0 && o.pid == me &&
         strcmp(o.instance, ck_temp_instance()) == 0,
     "ck_temp_name's names carry our instance and pid");
  free(tmp);
  snprintf(inst, sizeof(inst), "%s", ck_temp_instance());
  ck_temp_set_instance("host\n/var/lib/ckptd");
  ok(strcmp(inst, ck_temp_instance()) != 0 && getenv("CKPTD_INSTANCE") &&
         strcmp(getenv("CKPTD_INSTANCE"), ck_temp_instance()) == 0,
     "a daemon's instance differs from the tools' and reaches its workers through the environment");
  snprintf(inst, sizeof(inst), "%s", ck_temp_instance());
  ck_temp_set_instance("host\n/var/lib/ckptd2");
  ok(strcmp(inst, ck_temp_instance()) != 0, "another state_dir is another instance");

  snprintf(name, sizeof(name), ".a.h5.ckptd-tmp.%s-4242.0", ck_temp_instance());
  touch(dir, name);
  snprintf(name, sizeof(name), ".b.index.ckptd-tmp.%s-4242.1", ck_temp_instance());
  touch(dir, name);
  snprintf(name, sizeof(name), ".c.h5.ckptd-tmp.%s-4243.0", ck_temp_instance());
  touch(dir, name);
  touch(dir, ".d.h5.ckptd-tmp.00000000-4242.0"); /* same pid, another instance (another host) */
  touch(dir, "keep.h5");
  snprintf(path, sizeof(path), "%s/.link.ckptd-tmp.%s-4242.2", dir, ck_temp_instance());
  symlink("keep.h5", path);
  ok(ck_temp_remove_pid(dir, ck_temp_instance(), 4242) == 2, "two temporaries of pid 4242 removed");
  snprintf(name, sizeof(name), ".a.h5.ckptd-tmp.%s-4242.0", ck_temp_instance());
  ok(!exists(dir, name), "they are gone");
  snprintf(name, sizeof(name), ".c.h5.ckptd-tmp.%s-4243.0", ck_temp_instance());
  ok(exists(dir, name) && exists(dir, "keep.h5"), "another pid's temporary and other files stay");
  ok(exists(dir, ".d.h5.ckptd-tmp.00000000-4242.0"), "another instance's temporary with the same pid stays");
  ok(lstat(path, &(struct stat){ 0 }) == 0, "a symbolic link with a temporary's name is never removed");
  /* an output's temporaries only (a claim's taker): any pid, that output's names */
  touch(dir, ".model.ckpt-1.index.ckptd-tmp.0000000b-5.0");
  touch(dir, ".model.ckpt-1.data-00000-of-00001.ckptd-tmp.0000000b-6.1");
  touch(dir, ".model.ckpt-10.index.ckptd-tmp.0000000b-5.2");
  touch(dir, ".model.ckpt-1.index.ckptd-tmp.0000000c-5.3");
  ok(ck_temp_remove_of(dir, "model.ckpt-1", "0000000b", 0) == 2 &&
         exists(dir, ".model.ckpt-10.index.ckptd-tmp.0000000b-5.2") &&
         exists(dir, ".model.ckpt-1.index.ckptd-tmp.0000000c-5.3"),
     "an output's temporaries of any pid go; model.ckpt-10's and another instance's stay");
  { /* publishing never replaces a file ckptd did not write */
    char a[4200], b[4200], got[64];
    FILE *f;
    snprintf(a, sizeof(a), "%s/.out.h5.tmp", dir);
    snprintf(b, sizeof(b), "%s/out.h5", dir);
    touch(dir, ".out.h5.tmp");
    ok(ck_publish_rename(a, b, 1) == 0 && exists(dir, "out.h5") && !exists(dir, ".out.h5.tmp"), "an absent output is published");
    unlink(b);
    f = fopen(b, "w");
    fputs("trainer", f);
    fclose(f);
    touch(dir, ".out.h5.tmp");
    ok(ck_publish_rename(a, b, 1) == -EEXIST && exists(dir, ".out.h5.tmp"), "a trainer's file of that name is not replaced");
    f = fopen(b, "r");
    ok(f && fgets(got, sizeof(got), f) && strcmp(got, "trainer") == 0, "and keeps its bytes");
    if (f)
      fclose(f);
    if (ck_mark_set(b, "src", "1:2") == 0) {
      ok(ck_publish_rename(a, b, 1) == 0 && !exists(dir, ".out.h5.tmp"), "ckptd's own (marked) output is replaced");
    } else {
      ok(1, "# SKIP no user xattrs on this file system: the marked case cannot be made");
      unlink(a);
    }
    touch(dir, ".out.h5.tmp");
    ok(ck_publish_rename(a, b, 0) == 0, "without keep_foreign (the one-shot tools) it replaces");
    ok(strstr(ck_publish_error(-EEXIST), "not ckptd's") != NULL && strstr(ck_publish_error(-EACCES), "rename: ") != NULL,
       "the failure in words");
  }
  tu_rmtree(dir);
  free(dir);
  return tap_done();
}
