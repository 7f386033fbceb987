/* The `checkpoint` state file: parsing TensorFlow's files, atomic updates that keep
 * existing entries and timestamps, escapes, and errors with line numbers. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckptstate.h"
#include "tap.h"
#include "testutil.h"

int main(void)
{
  const char *fx = tap_fixtures();
  char *dir = tu_tmpdir();
  char path[4300], sub[4300];
  struct ck_ckptstate cs;
  struct ck_err err = { 0 };
  const char *bad = "model_checkpoint_path: \"a\"\nbogus_field: 3\n";
  const char *esc = "model_checkpoint_path: \"dir with \\\"quotes\\\" \\\\ and \\303\\251\"\n";

  if (fx) {
    snprintf(sub, sizeof(sub), "%s/tf2guide_tf_ckpts_variant", fx);
    ok(ck_ckptstate_read(sub, &cs, &err) == 0, "TF2 state file parses");
    ok(cs.model_checkpoint_path && strcmp(cs.model_checkpoint_path, "ckpt-40") == 0 && cs.npaths == 3 &&
       cs.nts == 3 && cs.last_preserved && strcmp(cs.timestamps[2], "1631786675.111937") == 0,
       "latest ckpt-40, 3 paths, 3 timestamps, last_preserved");
    ck_ckptstate_free(&cs);

    /* update a copy: the new entry is appended, old ones and their timestamps kept */
    snprintf(path, sizeof(path), "%s/checkpoint", sub);
    snprintf(sub, sizeof(sub), "%s/checkpoint", dir);
    tu_copy_file(path, sub);
    ok(ck_ckptstate_add(dir, "ckpt-41", &err) == 0, "add ckpt-41");
    ok(ck_ckptstate_read(dir, &cs, &err) == 0 && strcmp(cs.model_checkpoint_path, "ckpt-41") == 0 &&
       cs.npaths == 4 && strcmp(cs.paths[0], "ckpt-38") == 0 && strcmp(cs.paths[3], "ckpt-41") == 0 &&
       cs.nts == 4 && strcmp(cs.timestamps[0], "1631786674.830938") == 0 && cs.last_preserved &&
       strcmp(cs.last_preserved, "1631779547.777057") == 0,
       "earlier paths and timestamps kept verbatim, new one last");
    ck_ckptstate_free(&cs);
    ok(ck_ckptstate_add(dir, "ckpt-39", &err) == 0 && ck_ckptstate_read(dir, &cs, &err) == 0 && cs.npaths == 4 &&
       strcmp(cs.paths[3], "ckpt-39") == 0 && strcmp(cs.paths[1], "ckpt-40") == 0 && cs.nts == 4,
       "re-adding an existing path moves it last without duplicating");
    ck_ckptstate_free(&cs);

    snprintf(sub, sizeof(sub), "%s/serving_bad_half_plus_two_statefile", fx);
    ok(ck_ckptstate_read(sub, &cs, &err) == 0 && cs.model_checkpoint_path[0] == '/',
       "absolute paths parse");
    ck_ckptstate_free(&cs);
  }

  snprintf(sub, sizeof(sub), "%s/fresh", dir);
  mkdir(sub, 0755);
  ok(ck_ckptstate_read(sub, &cs, &err) == CK_ENOTFOUND, "no file: CK_ENOTFOUND");
  ok(ck_ckptstate_add(sub, "model.ckpt-1", &err) == 0, "add creates the file");
  snprintf(path, sizeof(path), "%s/checkpoint", sub);
  {
    size_t n;
    char *t = (char *)tu_read_file(path, &n);
    ok(t && n == strlen("model_checkpoint_path: \"model.ckpt-1\"\nall_model_checkpoint_paths: \"model.ckpt-1\"\n") &&
       memcmp(t, "model_checkpoint_path: \"model.ckpt-1\"\nall_model_checkpoint_paths: \"model.ckpt-1\"\n", n) == 0,
       "written as TensorFlow writes it");
    free(t);
  }
  ok(tu_count_dir(sub) == 1, "no temporary left beside it");

  ok(ck_ckptstate_parse(bad, strlen(bad), "ckpt/checkpoint", &cs, &err) == CK_EFORMAT &&
     strcmp(err.msg, "ckpt/checkpoint:2: not a CheckpointState field") == 0, "unknown field: %s", err.msg);
  ok(ck_ckptstate_parse("model_checkpoint_path: \"unterminated\n", 37, "f", &cs, &err) == CK_EFORMAT,
     "unterminated string refused");
  ok(ck_ckptstate_parse(esc, strlen(esc), "f", &cs, &err) == 0 &&
     strcmp(cs.model_checkpoint_path, "dir with \"quotes\" \\ and \xc3\xa9") == 0, "escapes decoded");
  if (cs.model_checkpoint_path) {
    struct ck_ckptstate back;
    ok(ck_ckptstate_write(sub, &cs, &err) == 0 && ck_ckptstate_read(sub, &back, &err) == 0 &&
       strcmp(back.model_checkpoint_path, cs.model_checkpoint_path) == 0, "escapes survive a write and read");
    ck_ckptstate_free(&back);
  }
  ck_ckptstate_free(&cs);
  tu_rmtree(dir);
  free(dir);
  return tap_done();
}
