/* libFuzzer target for the zip reader (common/torch/zip_read.c) on an in-memory image,
 * then, when the directory parses, the whole torch source on the same bytes (a memfd):
 * data.pkl through the unpickler, the tree walk, view checks, and every tensor streamed
 * through a small buffer. Invariants: an entry's data lie inside the image; a tensor
 * streams exactly the bytes its info announces. */
#define _GNU_SOURCE
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pipeline.h"
#include "zip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count(void *ctx, const void *p, size_t len)
{
  (void)p;
  *(uint64_t *)ctx += len;
  return 0;
}

static void whole_source(const uint8_t *data, size_t size)
{
  static uint8_t buf[96];
  struct ck_source *s = NULL;
  struct ck_err err;
  char path[64];
  int fd = memfd_create("fuzz.pt", MFD_CLOEXEC);

  if (fd < 0)
    return;
  if (write(fd, data, size) == (ssize_t)size) {
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    if (ck_torch_source_open(path, 1 << 20, &s, &err) == 0) {
      for (size_t i = 0; i < s->count; i++) {
        struct ck_tinfo t;
        uint64_t got = 0;
        s->ops->info(s, i, &t);
        if (t.nbytes > (4u << 20))
          continue; /* bounded work per input */
        if (s->ops->stream(s, i, buf, sizeof(buf), count, &got, &err) == 0 && got != t.nbytes)
          abort();
      }
      s->ops->close(s);
    }
  }
  close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct ck_zip *z = NULL;
  struct ck_err err;

  if (size > (1u << 20))
    return 0;
  if (ck_zip_open_mem(data, size, "fuzz.zip", 1 << 20, &z, &err) != 0)
    return 0;
  for (size_t i = 0; i < z->n; i++) {
    uint64_t off;
    if (ck_zip_find(z, z->e[i].name) != &z->e[i])
      abort();
    if (ck_zip_data_offset(z, &z->e[i], &off, &err) == 0 && (off > size || z->e[i].size > size - off))
      abort();
  }
  ck_zip_close(z);
  whole_source(data, size);
  return 0;
}
