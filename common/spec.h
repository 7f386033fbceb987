/* The structure of a PyTorch object tree, as torch.utils._pytree.treespec_dumps writes it
 * (protocol 1) and Cerebras' 0.5 HDF5 files carry in their root attribute __spec__:
 *   [1, NODE]   NODE = {"type": T, "context": C, "children_spec": [NODE, ...]}
 * a leaf is {"type": null, "context": null, "children_spec": []}; T is "builtins.dict",
 * "collections.OrderedDict", "builtins.list" or "builtins.tuple"; C is, for dicts, a JSON
 * *string* holding the list of keys (strings or ints), for lists and tuples "null".
 * Leaves are named by joining the keys on their path with '.' (ints and indices in
 * decimal), as Cerebras flattens a state dict: {"model": {"0.weight": t}} -> "model.0.weight". */
#ifndef CK_SPEC_H
#define CK_SPEC_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

enum { CK_SPEC_LEAF = 0, CK_SPEC_DICT, CK_SPEC_ODICT, CK_SPEC_LIST, CK_SPEC_TUPLE };

struct ck_spec_key {
  int is_int;
  int64_t i;
  char *s; /* !is_int: UTF-8, NUL-terminated */
};

struct ck_spec {
  int kind;
  size_t n;                 /* children */
  struct ck_spec_key *keys; /* dicts: n keys */
  struct ck_spec **kids;
  size_t cap;
};

/* Building (the torch reader): a new node; append a child (key used for dicts, copied). */
struct ck_spec *ck_spec_new(int kind);
int ck_spec_append(struct ck_spec *parent, const struct ck_spec_key *key, struct ck_spec *kid);
void ck_spec_free(struct ck_spec *s);

/* Parse treespec JSON (at most max_nodes nodes; depth capped at 64). */
int ck_spec_parse(const char *json, size_t len, size_t max_nodes, struct ck_spec **out, struct ck_err *err);
/* treespec_dumps JSON (malloc'd), or NULL when out of memory. */
char *ck_spec_dumps(const struct ck_spec *s);

/* Walk the leaves in order with their dotted names. fn returns non-zero to stop (returned). */
int ck_spec_leaves(const struct ck_spec *s, int (*fn)(void *ctx, const char *name, size_t len), void *ctx);
/* Number of leaves. */
size_t ck_spec_count_leaves(const struct ck_spec *s);

#endif
