/* libFuzzer target for the restricted pickle VM (common/torch/unpickle.c): any bytes as
 * a data.pkl, with limits small enough that every input finishes quickly. A successful
 * result is walked (bounded depth: pickles may build cycles) to touch every object. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "unpickle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Visit the graph: depth- and visit-bounded, since shared and self-containing objects
 * make it exponentially larger than the pickle (the torch reader caps its walk the same way). */
static size_t touch(const struct ck_pobj *o, int depth, size_t *budget)
{
  size_t n = 1;

  if (depth > 64 || *budget == 0)
    return n;
  (*budget)--;
  for (size_t i = 0; i < o->n; i++)
    n += touch(o->items[i], depth + 1, budget);
  if (o->kind == CK_PK_TENSOR) {
    if (o->storage == NULL || o->storage->kind != CK_PK_STORAGE || o->dt == NULL || o->rank < 0 || o->rank > 64)
      abort();
    for (int i = 0; i < o->rank; i++)
      n += (size_t)(o->size[i] ^ o->stride[i]) & 1;
  }
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static const struct ck_unpickle_limits lim = { .max_objects = 1 << 16, .max_stack = 1 << 12, .max_memo = 1 << 12,
                                                 .max_marks = 64, .max_rank = 16 };
  struct ck_unpickle *u = NULL;
  struct ck_err err;
  size_t budget = 1 << 16;

  if (size > (1u << 20))
    return 0;
  if (ck_unpickle(data, size, &lim, &u, &err) == 0) {
    if (u == NULL || u->root == NULL || touch(u->root, 0, &budget) == 0)
      abort();
  } else if (u != NULL || err.msg[0] == 0) {
    abort(); /* a failure leaves nothing behind and says why */
  }
  ck_unpickle_free(u);
  return 0;
}
