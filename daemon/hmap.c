/* Hash map: power-of-two buckets, grown at load factor 1. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"

struct node {
  struct node *next;
  uint64_t hash;
  void *value;
  char key[];
};

struct ck_hmap {
  struct node **b;
  size_t nb;
  size_t n;
};

static uint64_t fnv(const char *s)
{
  uint64_t h = 0xcbf29ce484222325ull;

  for (; *s; s++)
    h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
  return h;
}

struct ck_hmap *ck_hmap_new(void)
{
  struct ck_hmap *m = calloc(1, sizeof(*m));

  if (m && (m->b = calloc(64, sizeof(*m->b))) == NULL) {
    free(m);
    return NULL;
  }
  if (m)
    m->nb = 64;
  return m;
}

static struct node **slot(const struct ck_hmap *m, const char *key, uint64_t h)
{
  struct node **p = &m->b[h & (m->nb - 1)];

  while (*p && ((*p)->hash != h || strcmp((*p)->key, key) != 0))
    p = &(*p)->next;
  return p;
}

void *ck_hmap_get(const struct ck_hmap *m, const char *key)
{
  struct node *n = *slot(m, key, fnv(key));

  return n ? n->value : NULL;
}

static void grow(struct ck_hmap *m)
{
  size_t nb = m->nb * 2;
  struct node **b = calloc(nb, sizeof(*b));

  if (b == NULL)
    return; /* stay at the current size */
  for (size_t i = 0; i < m->nb; i++) {
    struct node *n = m->b[i], *next;
    for (; n; n = next) {
      next = n->next;
      n->next = b[n->hash & (nb - 1)];
      b[n->hash & (nb - 1)] = n;
    }
  }
  free(m->b);
  m->b = b;
  m->nb = nb;
}

int ck_hmap_put(struct ck_hmap *m, const char *key, void *value, void **old)
{
  uint64_t h = fnv(key);
  struct node **p = slot(m, key, h), *n;
  size_t len = strlen(key);

  if (old)
    *old = NULL;
  if (*p) {
    if (old)
      *old = (*p)->value;
    (*p)->value = value;
    return 0;
  }
  if ((n = malloc(sizeof(*n) + len + 1)) == NULL)
    return -1;
  memcpy(n->key, key, len + 1);
  n->hash = h;
  n->value = value;
  n->next = NULL;
  *p = n;
  if (++m->n > m->nb)
    grow(m);
  return 0;
}

void *ck_hmap_del(struct ck_hmap *m, const char *key)
{
  struct node **p = slot(m, key, fnv(key)), *n = *p;
  void *v;

  if (n == NULL)
    return NULL;
  *p = n->next;
  v = n->value;
  free(n);
  m->n--;
  return v;
}

size_t ck_hmap_size(const struct ck_hmap *m)
{
  return m->n;
}

void ck_hmap_each(const struct ck_hmap *m, void (*fn)(void *ctx, const char *key, void *value), void *ctx)
{
  for (size_t i = 0; i < m->nb; i++)
    for (struct node *n = m->b[i]; n; n = n->next)
      fn(ctx, n->key, n->value);
}

void ck_hmap_free(struct ck_hmap *m)
{
  if (m == NULL)
    return;
  for (size_t i = 0; i < m->nb; i++) {
    struct node *n = m->b[i], *next;
    for (; n; n = next) {
      next = n->next;
      free(n);
    }
  }
  free(m->b);
  free(m);
}
