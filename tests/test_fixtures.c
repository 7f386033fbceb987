/* Every real TensorFlow checkpoint in the shared fixtures: every entry's key, dtype,
 * shape, shard, offset, size and crc32c equal MANIFEST.tsv, and every checksum
 * verifies (index-only fixtures: index checks only). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bundle.h"
#include "dtype.h"
#include "readahead.h"
#include "tap.h"
#include "testutil.h"

#define BUF (64 * 1024)

static int has_data(const char *prefix)
{
  char path[4200];

  snprintf(path, sizeof(path), "%s.data-00000-of-00001", prefix);
  if (access(path, F_OK) == 0)
    return 1;
  snprintf(path, sizeof(path), "%s.data-00000-of-00002", prefix);
  return access(path, F_OK) == 0;
}

static void check_row(struct ck_bundle *b, const struct tu_manifest_row *r, int *bad)
{
  const struct ck_entry *e = ck_bundle_find(b, r->key, strlen(r->key));
  char shape[256];

  if (e == NULL) {
    printf("# %s/%s: %s missing\n", r->fixture, r->prefix, r->key);
    (*bad)++;
    return;
  }
  ck_entry_shape_str(e, shape, sizeof(shape));
  if (strcmp(ck_dtype_name(e->dtype), r->dtype) || strcmp(shape, r->shape) || e->shard != r->shard ||
      e->offset != r->offset || e->size != r->size || e->crc32c != r->crc) {
    printf("# %s/%s: %s: got %s %s shard %d off %llu size %llu crc %08x\n", r->fixture, r->prefix, r->key,
           ck_dtype_name(e->dtype), shape, e->shard, (unsigned long long)e->offset,
           (unsigned long long)e->size, e->crc32c);
    (*bad)++;
  }
}

int main(void)
{
  const char *fx = tap_fixtures();
  struct tu_manifest_row *rows;
  char path[4200];
  int n, i = 0, prefixes = 0;
  uint8_t *buf;

  if (fx == NULL)
    return tap_done();
  buf = malloc(BUF);
  snprintf(path, sizeof(path), "%s/MANIFEST.tsv", fx);
  n = tu_read_manifest(path, &rows);
  ok(n > 900, "MANIFEST.tsv has %d rows", n);
  while (i < n) {
    struct ck_bundle *b;
    struct ck_err err = { 0 };
    char prefix[4200];
    int j = i, bad = 0, data, verified = 0, rc;

    while (j < n && strcmp(rows[j].fixture, rows[i].fixture) == 0 && strcmp(rows[j].prefix, rows[i].prefix) == 0)
      j++;
    snprintf(prefix, sizeof(prefix), "%s/%s/%s", fx, rows[i].fixture, rows[i].prefix);
    data = has_data(prefix);
    rc = ck_bundle_open(prefix, data ? 0 : CK_BUNDLE_INDEX_ONLY, &b, &err);
    prefixes++;
    if (!ok(rc == 0, "%s/%s opens%s", rows[i].fixture, rows[i].prefix, data ? "" : " (index only)")) {
      printf("# %s\n", err.msg);
      i = j;
      continue;
    }
    ok(ck_bundle_count(b) == (size_t)(j - i), "%s/%s: %zu entries, manifest lists %d", rows[i].fixture,
       rows[i].prefix, ck_bundle_count(b), j - i);
    for (int k = i; k < j; k++)
      check_row(b, &rows[k], &bad);
    ok(bad == 0, "%s/%s: every entry equals the manifest", rows[i].fixture, rows[i].prefix);
    if (data) {
      rc = 0;
      for (size_t k = 0; k < ck_bundle_data_count(b) && rc == 0; k++, verified++)
        rc = ck_bundle_verify(b, ck_bundle_data_entry(b, k), buf, BUF, &err);
      ok(rc == 0, "%s/%s: %d checksums verify %s", rows[i].fixture, rows[i].prefix, verified, err.msg);
      /* A tiny buffer exercises the chunked string/variant parsers at every boundary. */
      rc = 0;
      for (size_t k = 0; k < ck_bundle_data_count(b) && rc == 0; k++)
        rc = ck_bundle_verify(b, ck_bundle_data_entry(b, k), buf, 3, &err);
      ok(rc == 0, "%s/%s: checksums verify with a 3-byte buffer %s", rows[i].fixture, rows[i].prefix, err.msg);
      /* Read ahead: 4 KiB pieces from a thread (ck_read_range), other boundaries again. */
      ck_bundle_set_read_ahead(b, 1);
      rc = 0;
      for (size_t k = 0; k < ck_bundle_data_count(b) && rc == 0; k++)
        rc = ck_bundle_verify(b, ck_bundle_data_entry(b, k), buf, 2 * CK_READ_AHEAD_MIN, &err);
      ok(rc == 0, "%s/%s: checksums verify reading ahead %s", rows[i].fixture, rows[i].prefix, err.msg);
    }
    ck_bundle_close(b);
    i = j;
  }
  ok(prefixes >= 34, "%d checkpoints checked", prefixes);
  /* A directory resolves through its `checkpoint` file. */
  {
    struct ck_bundle *b;
    struct ck_err err = { 0 };
    snprintf(path, sizeof(path), "%s/tf2guide_tf_ckpts_variant", fx);
    ok(ck_bundle_open(path, 0, &b, &err) == 0 && strstr(ck_bundle_prefix(b), "/ckpt-40"),
       "directory with a checkpoint file opens its latest (ckpt-40)");
    ck_bundle_close(b);
    snprintf(path, sizeof(path), "%s/serving_bad_half_plus_two_statefile", fx);
    ok(ck_bundle_open(path, 0, &b, &err) != 0 && strstr(err.msg, "export.index"),
       "a state file naming a missing checkpoint fails naming it: %s", err.msg);
  }
  free(rows);
  free(buf);
  return tap_done();
}
