/* A small string-keyed hash map (chained, FNV-1a), for candidates and records. */
#ifndef CK_HMAP_H
#define CK_HMAP_H

#include <stddef.h>

struct ck_hmap;

struct ck_hmap *ck_hmap_new(void);
/* Value for key, or NULL. */
void *ck_hmap_get(const struct ck_hmap *m, const char *key);
/* Insert or replace; returns the previous value (or NULL). -1 cast on allocation failure. */
int ck_hmap_put(struct ck_hmap *m, const char *key, void *value, void **old);
/* Remove key; returns its value or NULL. */
void *ck_hmap_del(struct ck_hmap *m, const char *key);
size_t ck_hmap_size(const struct ck_hmap *m);
/* Call fn for every entry (must not modify the map). */
void ck_hmap_each(const struct ck_hmap *m, void (*fn)(void *ctx, const char *key, void *value), void *ctx);
/* Free the map (values are the caller's). */
void ck_hmap_free(struct ck_hmap *m);

#endif
