/* Streaming computation of a bundle entry's crc32c from its stored bytes, for every
 * dtype layout: plain bytes, DT_STRING (lengths, length checksum, bytes) and
 * DT_VARIANT (length, bytes, checksum per element). Feeding the bytes in chunks of
 * any size gives the same result, so readers and writers never hold a whole tensor. */
#ifndef CK_TENSOR_CRC_H
#define CK_TENSOR_CRC_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct ck_tcrc {
  int dtype;
  uint64_t nelem;
  uint64_t elem;       /* element being parsed */
  uint64_t left;       /* bytes left in the current string/variant body */
  uint64_t body_total; /* DT_STRING: sum of all lengths */
  uint64_t consumed;
  uint32_t crc;
  int state;
  uint8_t tmp[16];
  unsigned tmplen;
  char why[96];        /* what went wrong, for messages */
};

/* Start for a tensor of nelem elements of dtype. */
void ck_tcrc_init(struct ck_tcrc *s, int dtype, uint64_t nelem);

/* Feed the next n stored bytes. 0, or CK_EFORMAT / CK_ECHECKSUM (see s->why). */
int ck_tcrc_update(struct ck_tcrc *s, const void *data, size_t n);

/* All bytes fed: check the layout is complete and return the (unmasked) crc. */
int ck_tcrc_final(struct ck_tcrc *s, uint32_t *crc);

#endif
