/* TensorFlow's OrderedCode, as used for the keys of partitioned-variable slices. */
#ifndef CK_ORDERED_CODE_H
#define CK_ORDERED_CODE_H

#include <stddef.h>
#include <stdint.h>

/* Encode the slice key of (name, rank, start[i], length[i]) into a new buffer
 * (length -1 = the whole dimension). Returns 0 or -ENOMEM. */
int ck_slice_key_encode(const uint8_t *name, size_t nlen, int rank, const int64_t *start,
                        const int64_t *length, uint8_t **out, size_t *outlen);

/* Decode a slice key. name points into a new allocation; start/length must have
 * room for max_rank values. Returns 0, or CK_EFORMAT for anything malformed. */
int ck_slice_key_decode(const uint8_t *key, size_t klen, int max_rank, uint8_t **name,
                        size_t *nlen, int *rank, int64_t *start, int64_t *length);

#endif
