/* A restricted pickle VM for torch.save's data.pkl: what torch.load(weights_only=True)
 * accepts, nothing that runs code. The result is a graph of plain objects (containers,
 * scalars, storages, tensor views) owned by one struct ck_unpickle. */
#ifndef CK_UNPICKLE_H
#define CK_UNPICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "torch_dtype.h"

enum {
  CK_PK_NONE = 0, CK_PK_BOOL, CK_PK_INT, CK_PK_FLOAT, CK_PK_STR,
  CK_PK_LIST, CK_PK_TUPLE, CK_PK_DICT, CK_PK_ODICT,
  CK_PK_GLOBAL,  /* an allowed global itself (torch.FloatStorage, torch.float32, ...) */
  CK_PK_STORAGE, /* a persistent id ('storage', type, key, location, numel) */
  CK_PK_TENSOR,  /* _rebuild_tensor_v2 / _rebuild_parameter */
  CK_PK_OTHER    /* an allowed object we do not convert (torch.device): s says what */
};

struct ck_pobj {
  int kind;
  int64_t i;                  /* BOOL, INT; GLOBAL: which (internal id) */
  double f;                   /* FLOAT */
  char *s;                    /* STR (UTF-8, NUL-terminated), GLOBAL / OTHER: "module.name", STORAGE: key */
  size_t slen;
  struct ck_pobj **items;     /* LIST, TUPLE; DICT/ODICT: key, value, key, value ... */
  size_t n, cap;              /* items (dicts: 2 * members) */
  const struct ck_torch_dtype *dt; /* GLOBAL of a storage type, STORAGE, TENSOR */
  /* STORAGE: numel elements; TENSOR: the view */
  int64_t numel;
  struct ck_pobj *storage;
  int64_t offset;             /* elements */
  int rank;
  int64_t *size, *stride;
};

struct ck_unpickle_limits {
  size_t max_objects;  /* objects created */
  size_t max_stack;    /* stack entries */
  size_t max_memo;     /* highest memo index + 1 */
  size_t max_marks;    /* open MARKs (nesting while building) */
  int max_rank;        /* tensor dimensions */
};

/* The defaults: 4 Mi objects, 1 Mi stack entries, 1 Mi memo slots, 256 marks, rank 64. */
extern const struct ck_unpickle_limits ck_unpickle_default_limits;

struct ck_unpickle {
  struct ck_pobj *root;
  struct ck_pobj **objs; /* every object, for freeing */
  size_t nobjs, capobjs;
};

/* Run the pickle in data[0..len). Refused globals are named ("global 'os.system' is not
 * allowed (weights_only)"); other errors say at which byte. CK_EFORMAT, CK_EUNSUP,
 * CK_ELIMIT, -ENOMEM. */
int ck_unpickle(const uint8_t *data, size_t len, const struct ck_unpickle_limits *lim, struct ck_unpickle **out,
                struct ck_err *err);
void ck_unpickle_free(struct ck_unpickle *u);

#endif
