/* libFuzzer target for the HDF5 reading path: the input is an HDF5 file image, opened
 * in memory (core driver on a copy, H5Pset_file_image) by ck_h5r_open_image, which
 * runs the same walk, classification and layout decision as ck_h5r_open; every tensor
 * is then streamed through a small buffer. A fixed-size tensor must produce exactly
 * its element count times its element size: anything else is our bug (abort). */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "dtype.h"
#include "h5.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct total {
  uint64_t bytes;
};

static int count(void *ctx, const void *p, size_t len)
{
  (void)p;
  ((struct total *)ctx)->bytes += len;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static uint8_t buf[4096];
  struct ck_h5r *r = NULL;
  struct ck_err err;

  if (size > (8u << 20))
    return 0;
  ck_h5_init();
  if (ck_h5r_open_image(data, size, "fuzz.h5", &r, &err) != 0)
    return 0;
  for (size_t i = 0; i < ck_h5r_count(r); i++) {
    const struct ck_h5_tensor *t = ck_h5r_tensor(r, i);
    struct total tot = { 0 };
    /* bounded work per input: skip tensors that would stream more than 64 MiB */
    if (t->kind == CK_H5K_FIXED && t->nelem > (64u << 20) / (ck_dtype_size(t->dtype) + 1))
      continue;
    if (t->kind != CK_H5K_FIXED && t->nelem > (1u << 20))
      continue;
    if (ck_h5r_stream_tf(r, t, buf, sizeof(buf), count, &tot, &err) == 0 && t->kind == CK_H5K_FIXED &&
        tot.bytes != t->nelem * ck_dtype_size(t->dtype))
      abort();
  }
  ck_h5r_close(r);
  return 0;
}
