/* The HDF5 reader's state, shared by its two halves (internal): h5_read.c opens a
 * file and lists its tensors, h5_stream.c streams a tensor's bytes. */
#ifndef CK_H5_READER_H
#define CK_H5_READER_H

#include <stdint.h>

#include <hdf5.h>

#include "error.h"
#include "h5.h"
#include "h5_chunk.h"
#include "h5_internal.h"

struct meta;      /* h5_read.c: a Cerebras 0.5 "<key>.__metadata__" attribute */
struct arena_blk; /* h5_read.c: names, paths and shapes of the listing */

struct ck_h5r {
  hid_t file;
  int fd;
  uint64_t file_size;
  char *path;
  struct ck_h5_evidence ev;
  struct ck_h5_layout layout;
  struct meta *meta;  /* Cerebras 0.5 "<key>.__metadata__" attributes, sorted by key */
  size_t nmeta, metacap;
  int oom;            /* an allocation failed inside an HDF5 iteration callback */
  haddr_t *seen;      /* open-addressing set of group addresses already walked */
  size_t nseen, seencap;
  struct ck_h5_tensor *t;
  size_t n, cap;
  struct arena_blk *arena;
  char source_name[256];  /* root ckptd_source: the base name of the bundle it came from */
  char **skipped;
  size_t nskipped;
  char **vals;        /* Cerebras 0.5 values that live only in metadata: key, JSON, key, JSON ... */
  size_t nvals;
  char *spec;         /* root __spec__ (a torch tree spec), if a string */
  int spec_too_long;  /* __spec__ is a string longer than CK_H5_SPEC_MAX */
  struct ck_err *err;
  int threads;        /* compressed chunks: decoding workers */
  size_t budget;      /* and their buffers */
  struct ck_h5_ring ring;
  int ring_on;
  int chunk_fd;       /* fd when chunks may be pread at libhdf5's addresses (no user block), else -1 */
};

/* h5_read.c, for the walk (h5_walk.c): the listing's arena, a tensor or a skipped
 * leaf added to it, and one dataset classified (a tensor, a skipped leaf, or the
 * error that stops the listing). */
void *ck_h5r_arena_alloc(struct ck_h5r *r, size_t n);
char *ck_h5r_arena_strdup(struct ck_h5r *r, const char *prefix, const char *s, size_t n);
int ck_h5r_add_tensor(struct ck_h5r *r, const struct ck_h5_tensor *t);
void ck_h5r_skip(struct ck_h5r *r, const char *path, const char *why);
void ck_h5r_skip_line(struct ck_h5r *r, char *line); /* "path (why)", taken */
int ck_h5r_classify(struct ck_h5r *r, hid_t ds, const char *path, const char *key);

/* h5_walk.c: list every dataset under root into r. For the tests: how many helper
 * processes this process has started, and (*used) how many of their slices it took. */
int ck_h5r_walk(struct ck_h5r *r, hid_t root);
unsigned long ck_h5r_helpers(unsigned long *used);

#endif
