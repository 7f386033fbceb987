/* Shared pieces of the command-line tools: sizes, progress bar, summary line. */
#ifndef CK_CLI_H
#define CK_CLI_H

#include <stdint.h>

#include "convert.h"

#define CK_EXIT_FAIL 1
#define CK_EXIT_USAGE 2

#include "util.h"

/* Sizes on the command line: see ck_parse_size. */
#define ck_cli_parse_size ck_parse_size

/* Progress callback drawing a bar on stderr (only when stderr is a terminal). */
void ck_cli_progress(void *ctx, uint64_t done, uint64_t total);

/* The one-line summary of a conversion. */
void ck_cli_summary(const char *src, const char *dst, const struct ck_convert_stats *st);

/* Options common to both converters; returns 1 if handled, 0 if not ours, -1 on error. */
struct ck_cli_conv {
  struct ck_convert_opts o;
  struct ck_shard_rule rules[64];
  int quiet;
  int force;
};

/* 1 if a and b are the same existing file: equal device and inode, where b is
 * followed through a symlink or not (hard links and other names count). */
int ck_cli_same_file(const char *a, const char *b);

/* Call fn(path, ctx) on each existing file of the TF bundle at prefix (its .index
 * and its .data-* files); returns the first non-zero result of fn, else 0. */
int ck_cli_each_bundle_file(const char *prefix, int (*fn)(const char *path, void *ctx), void *ctx);

int ck_cli_conv_option(struct ck_cli_conv *c, int opt, const char *arg, const char *prog);

/* Free what the options allocated (shard rule patterns). */
void ck_cli_conv_free(struct ck_cli_conv *c);

/* getopt_long table entries and short string for those options. */
#define CK_CLI_CONV_SHORT "hqfv"
#define CK_CLI_CONV_LONGOPTS                                                  \
  { "help", no_argument, NULL, 'h' }, { "quiet", no_argument, NULL, 'q' },     \
  { "force", no_argument, NULL, 'f' }, { "verify", no_argument, NULL, 'v' },   \
  { "buffer-size", required_argument, NULL, 'B' },                             \
  { "threads", required_argument, NULL, 'T' },                                 \
  { "layout", required_argument, NULL, 'L' },                                  \
  { "compression", required_argument, NULL, 'C' },                             \
  { "chunk-size", required_argument, NULL, 'K' },                              \
  { "shard-size", required_argument, NULL, 'S' },                              \
  { "shard-rule", required_argument, NULL, 'R' },                              \
  { "no-checkpoint-file", no_argument, NULL, 'N' }

#endif
