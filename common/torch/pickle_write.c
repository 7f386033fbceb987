/* Pickle protocol 2 emitter (pickle_write.h): the opcodes and encodings of CPython's
 * Pickler (Lib/pickle.py, save_long / save_float / save_str / save_global). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "pickle_write.h"

static void add(struct ck_pkl *k, const void *data, size_t n)
{
  if (k->err)
    return;
  if (n > k->max - k->len) {
    k->err = CK_ELIMIT;
    return;
  }
  if (k->len + n > k->cap) {
    size_t cap = k->cap ? k->cap : 4096;
    uint8_t *np;
    while (cap < k->len + n)
      cap = cap > k->max / 2 ? k->max : cap * 2;
    if ((np = realloc(k->p, cap)) == NULL) {
      k->err = -ENOMEM;
      return;
    }
    k->p = np;
    k->cap = cap;
  }
  memcpy(k->p + k->len, data, n);
  k->len += n;
}

static void le(uint8_t *b, uint64_t v, int n)
{
  for (int i = 0; i < n; i++)
    b[i] = (uint8_t)(v >> (8 * i));
}

void ck_pkl_init(struct ck_pkl *k, size_t max)
{
  static const uint8_t proto[2] = { 0x80, 2 };

  memset(k, 0, sizeof(*k));
  k->max = max;
  add(k, proto, 2);
}

void ck_pkl_free(struct ck_pkl *k)
{
  free(k->p);
  k->p = NULL;
}

void ck_pkl_op(struct ck_pkl *k, uint8_t op)
{
  add(k, &op, 1);
}

static void memo_op(struct ck_pkl *k, uint8_t op1, uint8_t op4, uint32_t idx)
{
  uint8_t b[5];

  if (idx < 256) {
    b[0] = op1;
    b[1] = (uint8_t)idx;
    add(k, b, 2);
  } else {
    b[0] = op4;
    le(b + 1, idx, 4);
    add(k, b, 5);
  }
}

uint32_t ck_pkl_put(struct ck_pkl *k)
{
  memo_op(k, 'q', 'r', k->memo);
  return k->memo++;
}

void ck_pkl_get(struct ck_pkl *k, uint32_t idx)
{
  memo_op(k, 'h', 'j', idx);
}

void ck_pkl_int(struct ck_pkl *k, int64_t v)
{
  uint8_t b[10];
  int n;

  if (v >= 0 && v <= 0xff) {
    b[0] = 'K';
    b[1] = (uint8_t)v;
    add(k, b, 2);
  } else if (v >= 0 && v <= 0xffff) {
    b[0] = 'M';
    le(b + 1, (uint64_t)v, 2);
    add(k, b, 3);
  } else if (v >= INT32_MIN && v <= INT32_MAX) {
    b[0] = 'J';
    le(b + 1, (uint64_t)v, 4);
    add(k, b, 5);
  } else { /* LONG1: the shortest two's complement, little-endian */
    for (n = 8; n > 1; n--) {
      int64_t top = (int64_t)((uint64_t)v << (64 - 8 * (n - 1))) >> (64 - 8 * (n - 1));
      if (top != v)
        break;
    }
    b[0] = 0x8a;
    b[1] = (uint8_t)n;
    le(b + 2, (uint64_t)v, n);
    add(k, b, (size_t)n + 2);
  }
}

void ck_pkl_float(struct ck_pkl *k, double v)
{
  uint8_t b[9];
  uint64_t u;

  memcpy(&u, &v, 8);
  b[0] = 'G';
  for (int i = 0; i < 8; i++)
    b[1 + i] = (uint8_t)(u >> (56 - 8 * i));
  add(k, b, 9);
}

void ck_pkl_str(struct ck_pkl *k, const char *s, size_t n)
{
  uint8_t b[5];

  if (n > UINT32_MAX) {
    if (!k->err)
      k->err = CK_ELIMIT;
    return;
  }
  b[0] = 'X';
  le(b + 1, n, 4);
  add(k, b, 5);
  add(k, s, n);
}

void ck_pkl_global(struct ck_pkl *k, const char *module, const char *name)
{
  add(k, "c", 1);
  add(k, module, strlen(module));
  add(k, "\n", 1);
  add(k, name, strlen(name));
  add(k, "\n", 1);
}

void ck_pkl_tuple(struct ck_pkl *k, size_t n)
{
  static const uint8_t ops[4] = { CK_PKL_EMPTY_TUPLE, CK_PKL_TUPLE1, CK_PKL_TUPLE2, CK_PKL_TUPLE3 };

  ck_pkl_op(k, n <= 3 ? ops[n] : CK_PKL_TUPLE);
}

int ck_pkl_stop(struct ck_pkl *k)
{
  ck_pkl_op(k, CK_PKL_STOP);
  return k->err;
}
