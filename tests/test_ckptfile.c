/* The `checkpoint` file policy: created with ckptd's marker where none exists,
 * latest by global step whatever the order of conversions, a producer's file left
 * alone under auto and updated under always, a malformed one left alone, and no
 * lost entries when many processes add at once (flock). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../daemon/ckptfile.h"
#include "ckptstate.h"
#include "tap.h"
#include "testutil.h"

static char *dir;

static void put(const char *name, const char *text)
{
  char path[4200];
  FILE *f;

  snprintf(path, sizeof(path), "%s/%s", dir, name);
  f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
}

static char *slurp(void)
{
  char path[4200];
  size_t n;

  snprintf(path, sizeof(path), "%s/checkpoint", dir);
  char *text = (char *)tu_read_file(path, &n);
  if (text)
    text[n] = 0; /* tu_read_file leaves room for it */
  return text;
}

static void reset(void)
{
  tu_rmtree(dir);
  mkdir(dir, 0755);
}

static int add(const char *name, int policy, int *updated, char *note)
{
  struct ck_err err = { 0 };

  return ck_ckptfile_update(dir, name, policy, updated, note, 300, &err);
}

static void created_and_ordered(void)
{
  struct ck_ckptstate cs;
  struct ck_err err = { 0 };
  char note[300];
  int up = 0;

  reset();
  put("model.ckpt-200.h5", "");
  ok(add("model.ckpt-200", CK_CKPTFILE_AUTO, &up, note) == 0 && up, "no checkpoint file: created");
  ok(add("model.ckpt-100", CK_CKPTFILE_AUTO, &up, note) == 0 && up, "ckptd's own file: updated");
  ok(ck_ckptstate_read(dir, &cs, &err) == 0 && cs.ckptd_marker, "it carries ckptd's marker");
  ok(cs.model_checkpoint_path && strcmp(cs.model_checkpoint_path, "model.ckpt-200") == 0,
     "model-200 then model-100 converted: latest is still model-200 (%s)", cs.model_checkpoint_path);
  ok(cs.npaths == 2 && !strcmp(cs.paths[0], "model.ckpt-100") && !strcmp(cs.paths[1], "model.ckpt-200"),
     "both listed, oldest step first");
  ck_ckptstate_free(&cs);
  ok(add("model.ckpt-100", CK_CKPTFILE_AUTO, &up, note) == 0 && ck_ckptstate_read(dir, &cs, &err) == 0 &&
         cs.npaths == 2 && !strcmp(cs.model_checkpoint_path, "model.ckpt-200"),
     "adding an entry again does not duplicate it");
  ck_ckptstate_free(&cs);
  ok(add("exported", CK_CKPTFILE_AUTO, &up, note) == 0 && ck_ckptstate_read(dir, &cs, &err) == 0 && cs.npaths == 3,
     "a step-less name is listed too");
  ck_ckptstate_free(&cs);
}

static void producers_file(void)
{
  static const char trainer[] = "model_checkpoint_path: \"model.ckpt-300\"\n"
                                "all_model_checkpoint_paths: \"model.ckpt-200\"\n"
                                "all_model_checkpoint_paths: \"model.ckpt-300\"\n"
                                "all_model_checkpoint_timestamps: 1700000000.5\n"
                                "all_model_checkpoint_timestamps: 1700000100.5\n"
                                "last_preserved_timestamp: 1699999999.25\n";
  struct ck_ckptstate cs;
  struct ck_err err = { 0 };
  char note[300], *text;
  int up = 1;

  reset();
  put("checkpoint", trainer);
  ok(add("exported", CK_CKPTFILE_AUTO, &up, note) == 0 && !up && strstr(note, "maintained by its producer"),
     "a trainer's checkpoint file is left alone under auto: %s", note);
  text = slurp();
  ok(text && strcmp(text, trainer) == 0, "byte for byte");
  free(text);
  ok(add("exported", CK_CKPTFILE_NEVER, &up, note) == 0 && !up, "never: left alone");
  ok(add("model.ckpt-250", CK_CKPTFILE_ALWAYS, &up, note) == 0 && up, "always: updated");
  ok(ck_ckptstate_read(dir, &cs, &err) == 0 && !cs.ckptd_marker && cs.npaths == 3 && cs.nts == 3 &&
         !strcmp(cs.paths[1], "model.ckpt-250") && !strcmp(cs.model_checkpoint_path, "model.ckpt-300") &&
         !strcmp(cs.timestamps[0], "1700000000.5") && !strcmp(cs.timestamps[2], "1700000100.5") &&
         cs.last_preserved && !strcmp(cs.last_preserved, "1699999999.25"),
     "the new entry goes in step order, timestamps and last_preserved kept, latest still model-300, no marker");
  ck_ckptstate_free(&cs);
  put("checkpoint", "model_checkpoint_path: \"a\"\nthis is not a field\n");
  ok(add("model.ckpt-1", CK_CKPTFILE_ALWAYS, &up, note) == 0 && !up && strstr(note, "checkpoint:2"),
     "a malformed checkpoint file is left alone, naming the line: %s", note);
}

static void concurrent(void)
{
  struct ck_ckptstate cs;
  struct ck_err err = { 0 };
  enum { N = 24 };
  int all = 1;

  reset();
  for (int i = 0; i < N; i++) {
    pid_t pid = fork();
    if (pid == 0) {
      char name[32], note[300];
      int up;
      snprintf(name, sizeof(name), "model.ckpt-%d", i + 1);
      _exit(add(name, CK_CKPTFILE_AUTO, &up, note) == 0 && up ? 0 : 1);
    }
  }
  for (int i = 0; i < N; i++) {
    int st;
    wait(&st);
    all &= WIFEXITED(st) && WEXITSTATUS(st) == 0;
  }
  ok(all, "%d processes added an entry each at once", N);
  ok(ck_ckptstate_read(dir, &cs, &err) == 0 && cs.npaths == N, "no entry lost (%zu of %d listed)", cs.npaths, N);
  ok(cs.model_checkpoint_path && !strcmp(cs.model_checkpoint_path, "model.ckpt-24"), "latest is the highest step (%s)",
     cs.model_checkpoint_path);
  ck_ckptstate_free(&cs);
}

static void forget(void)
{
  struct ck_ckptstate cs;
  struct ck_err err = { 0 };
  char note[300], path[4200], *text;
  int up;

  reset();
  add("model.ckpt-1", CK_CKPTFILE_AUTO, &up, note);
  add("model.ckpt-2", CK_CKPTFILE_AUTO, &up, note);
  ok(ck_ckptfile_forget(dir, "model.ckpt-2", &up, &err) == 0 && up && ck_ckptstate_read(dir, &cs, &err) == 0 &&
         cs.npaths == 1 && !strcmp(cs.model_checkpoint_path, "model.ckpt-1") && cs.ckptd_marker,
     "forgetting the latest entry makes the newest one left latest");
  ck_ckptstate_free(&cs);
  ok(ck_ckptfile_forget(dir, "model.ckpt-1", &up, &err) == 0 && up, "forgetting the last entry");
  snprintf(path, sizeof(path), "%s/checkpoint", dir);
  ok(access(path, F_OK) != 0, "removes the file ckptd created");
  put("checkpoint", "model_checkpoint_path: \"model.ckpt-1\"\nall_model_checkpoint_paths: \"model.ckpt-1\"\n");
  ok(ck_ckptfile_forget(dir, "model.ckpt-1", &up, &err) == 0 && !up, "a producer's checkpoint file is never edited");
  text = slurp();
  ok(text && strstr(text, "model.ckpt-1"), "it still lists its entry");
  free(text);
}

int main(void)
{
  dir = tu_tmpdir();
  forget();
  created_and_ordered();
  producers_file();
  concurrent();
  tu_rmtree(dir);
  free(dir);
  return tap_done();
}
