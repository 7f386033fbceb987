/* safetensors (huggingface/safetensors): header parsing and validation, the pipeline's
 * source and sink, and the daemon's completeness probe. docs/safetensors.md has the
 * format, the rules we check and how ckptd keeps typed values in __metadata__.
 *
 * A file: N (u64 little-endian), N bytes of JSON, then the data buffer. The JSON maps
 * tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into the
 * buffer) and may hold "__metadata__", a string -> string object. */
#ifndef CK_ST_H
#define CK_ST_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define CK_ST_MAX_HEADER 100000000u /* the reference implementation's MAX_HEADER_SIZE */
#define CK_ST_MAX_RANK 254          /* TensorFlow's, so every tensor we read can go anywhere */

/* ckptd's own __metadata__ keys (see st_write.c and docs/safetensors.md). */
#define CK_ST_SPEC_KEY "__spec__"
#define CK_ST_VALUES_KEY "__ckptd_values__"

struct ck_st_tensor {
  char *name; /* unescaped, NUL-terminated, nlen bytes, no NUL inside */
  size_t nlen;
  int dtype;  /* CK_DT_* */
  int rank;
  int64_t *dims;
  uint64_t nelem;
  uint64_t begin, end; /* offsets into the data buffer */
};

struct ck_st_meta {
  char *key; /* unescaped, no NUL inside */
  char *val; /* unescaped, vlen bytes (may hold NULs), NUL-terminated */
  size_t vlen;
};

/* A parsed, validated header. Tensors are in data order (by begin). */
struct ck_st_header {
  uint64_t hlen;     /* N */
  uint64_t data_len; /* bytes of the data buffer: file size - 8 - N */
  struct ck_st_tensor *t;
  size_t n;
  struct ck_st_meta *meta;
  size_t nmeta;
};

/* The safetensors name of a dtype ("F32"), or NULL if safetensors has none we write. */
const char *ck_st_dtype_name(int dtype);
/* The dtype named by a safetensors name of len bytes, or -1. */
int ck_st_dtype_parse(const char *name, size_t len);

/* Parse and validate the len JSON bytes of a header whose data buffer holds data_len
 * bytes. budget caps the tokens the JSON may have (memory is bounded by it and by len).
 * fname names the file in messages. CK_EFORMAT (not valid safetensors), CK_EUNSUP (a
 * dtype we do not handle), CK_ETRUNC (offsets past the end of the data: file too short),
 * CK_ELIMIT, -ENOMEM. */
int ck_st_header_parse(const void *json, size_t len, uint64_t data_len, size_t budget, const char *fname,
                       struct ck_st_header *h, struct ck_err *err);
/* The same for a whole file image in memory (8-byte length, header, data): the fuzzer's entry. */
int ck_st_image_parse(const void *buf, size_t len, size_t budget, const char *fname, struct ck_st_header *h,
                      struct ck_err *err);
/* Read and parse the header of the open file fd of fsize bytes. */
int ck_st_header_read(int fd, uint64_t fsize, size_t budget, const char *fname, struct ck_st_header *h,
                      struct ck_err *err);
/* Free what a parse allocated (accepts a zeroed or freed header). */
void ck_st_header_free(struct ck_st_header *h);

/* For the daemon: 0 if path is a complete safetensors file (header valid, size == 8 + N +
 * the end of the data), CK_EINCOMPLETE if it is shorter than its header says (or than 8
 * bytes), CK_EFORMAT if it is not safetensors; CK_EUNSUP, CK_ELIMIT or -errno otherwise. */
int ck_st_probe(const char *path, struct ck_err *err);

#endif
