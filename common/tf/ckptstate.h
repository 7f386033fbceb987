/* The `checkpoint` state file of a model directory (CheckpointState in protobuf text
 * format), read and updated atomically, keeping the entries it already has. */
#ifndef CK_CKPTSTATE_H
#define CK_CKPTSTATE_H

#include <stddef.h>

#include "error.h"

#define CK_CKPTSTATE_MAX_BYTES (16u << 20)

struct ck_ckptstate {
  char *model_checkpoint_path;
  char **paths;       /* all_model_checkpoint_paths, oldest first */
  size_t npaths;
  char **timestamps;  /* all_model_checkpoint_timestamps, kept as their text */
  size_t nts;
  char *last_preserved; /* last_preserved_timestamp text, or NULL */
  int ckptd_marker;     /* the file starts with CK_CKPTSTATE_MARKER: ckptd maintains it */
};

/* The comment line ckptd writes first in a `checkpoint` file it maintains. Protobuf's
 * text format skips comments, so TensorFlow reads the file as usual; a trainer's own
 * save rewrites the file without it, which tells ckptd the file is no longer its. */
#define CK_CKPTSTATE_MARKER "# ckptd: maintained by ckptd"

/* Parse dir/checkpoint. CK_ENOTFOUND if there is none; CK_EFORMAT names the line. */
int ck_ckptstate_read(const char *dir, struct ck_ckptstate *cs, struct ck_err *err);

/* Parse text already in memory (name is used in messages). */
int ck_ckptstate_parse(const char *text, size_t len, const char *name, struct ck_ckptstate *cs,
                       struct ck_err *err);

/* Replace dir/checkpoint atomically (temporary, fsync, rename, fsync dir). */
int ck_ckptstate_write(const char *dir, const struct ck_ckptstate *cs, struct ck_err *err);

/* Make name (relative to dir) the latest checkpoint, keeping earlier entries. */
int ck_ckptstate_add(const char *dir, const char *name, struct ck_err *err);

/* Free the contents (the struct itself is the caller's). */
void ck_ckptstate_free(struct ck_ckptstate *cs);

#endif
