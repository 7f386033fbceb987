/* Helpers shared by the tests: fixtures, temporary directories, file comparison. */
#ifndef CK_TESTUTIL_H
#define CK_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* $CKPTD_FIXTURES/tf, or NULL if absent; *required tells whether CKPTD_REQUIRE_FIXTURES
 * is set, *why says what is missing. */
const char *tu_fixtures_tf(int *required, const char **why);

#ifdef CK_TAP_H
/* The fixtures, or NULL after a TAP skip line (a failure when they are required). */
__attribute__((unused))
static const char *tap_fixtures(void)
{
  const char *why;
  int required;
  const char *fx = tu_fixtures_tf(&required, &why);

  if (fx == NULL) {
    if (required)
      ok(0, "%s (CKPTD_REQUIRE_FIXTURES is set)", why);
    else
      tap_skip("%s (set CKPTD_FIXTURES)", why);
  }
  return fx;
}
#endif

/* The next number of a deterministic xorshift64 sequence kept in *state (never 0):
 * the fuzz regression runners' mutations, the same every run. */
uint64_t tu_xorshift(uint64_t *state);

/* A new empty temporary directory (removed by tu_rmtree). */
char *tu_tmpdir(void);

/* Remove a directory tree. */
void tu_rmtree(const char *dir);

/* Read a whole file; NULL if it cannot be read. */
uint8_t *tu_read_file(const char *path, size_t *len);

/* Write a whole file. 0 or -1. */
int tu_write_file(const char *path, const void *data, size_t len);

/* 1 if both files exist and hold the same bytes. */
int tu_files_equal(const char *a, const char *b);

/* Copy a file. 0 or -1. */
int tu_copy_file(const char *from, const char *to);

/* Number of entries in a directory (excluding . and ..). */
int tu_count_dir(const char *dir);

/* A ck_chunk_fn target that appends every chunk to buf (sized by the caller). */
struct tu_collect {
  uint8_t *buf;
  size_t len;
};

int tu_collect_chunk(void *ctx, const void *data, size_t len);

/* One row of MANIFEST.tsv. */
struct tu_manifest_row {
  char fixture[128];
  char prefix[128];
  char key[512];
  char dtype[32];
  char shape[128];
  int shard;
  unsigned long long offset;
  unsigned long long size;
  unsigned crc;
};

/* Parse MANIFEST.tsv; returns the number of rows (rows is malloc'd) or -1. */
int tu_read_manifest(const char *path, struct tu_manifest_row **rows);

#endif
