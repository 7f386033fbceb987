/* libFuzzer target for the safetensors header parser and validator, on bytes in memory.
 * The first byte picks the shape of the rest:
 *   even: a whole file image (8-byte length, header, data), as ck_st_probe and the
 *         source read it from disk;
 *   odd:  header JSON, a NUL, then the data; the length is the JSON's, so mutations of
 *         the JSON do not all die on a stale length prefix.
 * A header that validates must satisfy what the source relies on: tensors in data
 * order tiling the data exactly, each holding nelem * element size bytes. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dtype.h"
#include "st.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct ck_st_header *h)
{
  uint64_t at = 0;

  for (size_t i = 0; i < h->n; i++) {
    const struct ck_st_tensor *t = &h->t[i];
    uint64_t nelem = 1;
    for (int d = 0; d < t->rank; d++)
      nelem *= (uint64_t)t->dims[d];
    if (t->begin != at || t->end - t->begin != t->nelem * ck_dtype_size(t->dtype) || nelem != t->nelem ||
        ck_st_dtype_name(t->dtype) == NULL || strlen(t->name) != t->nlen)
      abort();
    at = t->end;
  }
  if (at != h->data_len)
    abort();
  for (size_t i = 0; i < h->nmeta; i++)
    if (h->meta[i].key == NULL || h->meta[i].val == NULL || h->meta[i].val[h->meta[i].vlen] != 0)
      abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct ck_st_header h;
  struct ck_err err = { 0 };
  const uint8_t *nul;
  int rc;

  if (size < 1 || size > (4u << 20))
    return 0;
  if ((data[0] & 1) == 0) {
    rc = ck_st_image_parse(data + 1, size - 1, 1 << 20, "fuzz.safetensors", &h, &err);
  } else {
    nul = memchr(data + 1, 0, size - 1);
    if (nul == NULL)
      return 0;
    rc = ck_st_header_parse(data + 1, (size_t)(nul - data - 1), (uint64_t)(data + size - nul - 1), 1 << 20,
                            "fuzz.safetensors", &h, &err);
  }
  if (rc == 0) {
    check(&h);
    ck_st_header_free(&h);
  } else if (err.msg[0] == 0 || err.code != rc) {
    abort(); /* every failure says what is wrong */
  }
  return 0;
}
