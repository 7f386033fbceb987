/* TensorFlow's copy of the LevelDB table ("SSTable"): the on-disk form of a bundle's .index. */
#ifndef CK_TABLE_H
#define CK_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define CK_TABLE_FOOTER_SIZE 48
#define CK_TABLE_MAGIC 0xdb4775248b80fb57ull
#define CK_TABLE_BLOCK_SIZE 262144
#define CK_TABLE_RESTART_INTERVAL 16

struct ck_table;

/* What the reader saw, for tests and `ckpt ls --debug`. */
struct ck_table_stats {
  unsigned data_blocks;
  unsigned snappy_blocks; /* data, metaindex or index blocks stored snappy-compressed */
  uint64_t entries;
};

/* Open the table in fd (not owned; must stay open) of the given size; name is
 * used in messages. Checks the footer and the index block. */
int ck_table_open_fd(int fd, uint64_t size, const char *name, struct ck_table **out,
                     struct ck_err *err);

/* Called for each entry in key order; a non-zero return stops the walk and is returned. */
typedef int (*ck_table_visit_fn)(void *ctx, const uint8_t *key, size_t klen,
                                 const uint8_t *val, size_t vlen);

/* Walk every entry of every data block, verifying block checksums and key order. */
int ck_table_foreach(struct ck_table *t, ck_table_visit_fn fn, void *ctx, struct ck_err *err);

/* Counters filled in by open and foreach. */
const struct ck_table_stats *ck_table_stats(const struct ck_table *t);

/* Release the table (accepts NULL). */
void ck_table_free(struct ck_table *t);

struct ck_table_builder;

/* Start a table written sequentially to fd (not owned) with TensorFlow's settings. */
int ck_table_builder_new(int fd, struct ck_table_builder **out);

/* Add an entry; keys must be strictly increasing (bytewise). */
int ck_table_builder_add(struct ck_table_builder *b, const void *key, size_t klen,
                         const void *val, size_t vlen);

/* Write the last data block, the empty metaindex, the index block and the footer. */
int ck_table_builder_finish(struct ck_table_builder *b);

/* Release the builder (accepts NULL). */
void ck_table_builder_free(struct ck_table_builder *b);

/* Bytewise key order: memcmp, then length. */
int ck_key_cmp(const uint8_t *a, size_t la, const uint8_t *b, size_t lb);

#endif
