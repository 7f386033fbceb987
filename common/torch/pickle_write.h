/* A pickle protocol 2 emitter for torch.save's data.pkl: opcodes appended to a growing
 * buffer capped at a maximum size. Errors are sticky (the first one is kept and later
 * calls do nothing), so a caller emits a whole object and checks once at ck_pkl_stop. */
#ifndef CK_PICKLE_WRITE_H
#define CK_PICKLE_WRITE_H

#include <stddef.h>
#include <stdint.h>

/* One-byte opcodes callers emit with ck_pkl_op. */
enum {
  CK_PKL_MARK = '(', CK_PKL_STOP = '.', CK_PKL_NONE = 'N', CK_PKL_NEWTRUE = 0x88, CK_PKL_NEWFALSE = 0x89,
  CK_PKL_EMPTY_DICT = '}', CK_PKL_SETITEM = 's', CK_PKL_SETITEMS = 'u', CK_PKL_EMPTY_LIST = ']',
  CK_PKL_APPEND = 'a', CK_PKL_APPENDS = 'e',
  CK_PKL_EMPTY_TUPLE = ')', CK_PKL_TUPLE = 't', CK_PKL_TUPLE1 = 0x85, CK_PKL_TUPLE2 = 0x86,
  CK_PKL_TUPLE3 = 0x87, CK_PKL_REDUCE = 'R', CK_PKL_BINPERSID = 'Q'
};

struct ck_pkl {
  uint8_t *p;
  size_t len, cap, max;
  uint32_t memo; /* the next memo index */
  int err;       /* 0, -ENOMEM, CK_ELIMIT (beyond max bytes) */
};

/* An empty pickle of at most max bytes, started with PROTO 2. */
void ck_pkl_init(struct ck_pkl *k, size_t max);
void ck_pkl_free(struct ck_pkl *k);
void ck_pkl_op(struct ck_pkl *k, uint8_t op);
/* Memoize the object on top of the stack (BINPUT, LONG_BINPUT past 255); its index. */
uint32_t ck_pkl_put(struct ck_pkl *k);
/* Push memo entry idx (BINGET / LONG_BINGET). */
void ck_pkl_get(struct ck_pkl *k, uint32_t idx);
/* An int as Python's pickler writes it: BININT1, BININT2, BININT, else LONG1. */
void ck_pkl_int(struct ck_pkl *k, int64_t v);
/* BINFLOAT (big-endian IEEE double). */
void ck_pkl_float(struct ck_pkl *k, double v);
/* BINUNICODE: s is UTF-8, n bytes. */
void ck_pkl_str(struct ck_pkl *k, const char *s, size_t n);
/* GLOBAL "module\nname\n". */
void ck_pkl_global(struct ck_pkl *k, const char *module, const char *name);
/* A tuple of the n items pushed since the MARK (n > 3) or without one (n <= 3), as
 * Python picks: EMPTY_TUPLE, TUPLE1-3, else TUPLE. The caller pushed MARK when n > 3. */
void ck_pkl_tuple(struct ck_pkl *k, size_t n);
/* STOP; the sticky error (0 when the pickle is whole). */
int ck_pkl_stop(struct ck_pkl *k);

#endif
