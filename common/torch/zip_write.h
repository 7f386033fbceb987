/* Writing zip archives of stored (uncompressed) entries the way PyTorch's
 * PyTorchStreamWriter (miniz) writes them, streamed: each entry's data starts 64-byte
 * aligned (the local header's extra field carries an "FB" padding field), its CRC-32 is
 * computed while the bytes go by and written after them in a data descriptor (bit 3, as
 * torch itself does), zip64 extra fields appear where a size or offset needs them, and
 * the central directory ends with a zip64 end record, its locator and the classic end
 * record (torch writes the zip64 pair always). The fd is not owned; nothing is fsynced. */
#ifndef CK_ZIP_WRITE_H
#define CK_ZIP_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define CK_ZIP_ALIGN 64

struct ck_zipw;

/* A writer appending to fd (at its current position, taken as offset 0) through a
 * buffer of bufsize bytes; keep_cached: the file is read back next (ck_wb). 0, -ENOMEM. */
int ck_zipw_open(int fd, size_t bufsize, int keep_cached, struct ck_zipw **out, struct ck_err *err);
/* Start entry name (nlen bytes, no NUL inside) of exactly size bytes. */
int ck_zipw_entry_begin(struct ck_zipw *z, const char *name, size_t nlen, uint64_t size, struct ck_err *err);
/* More of the current entry's bytes (CK_EINVAL beyond its size). */
int ck_zipw_entry_append(struct ck_zipw *z, const void *data, size_t len, struct ck_err *err);
/* End the entry (CK_EINVAL if fewer bytes came than announced): its data descriptor. */
int ck_zipw_entry_end(struct ck_zipw *z, struct ck_err *err);
/* A whole entry at once. */
int ck_zipw_add(struct ck_zipw *z, const char *name, const void *data, size_t len, struct ck_err *err);
/* Central directory and end records; everything is written to fd (not fsynced). */
int ck_zipw_finish(struct ck_zipw *z, struct ck_err *err);
/* Bytes written so far (the archive's size after finish). */
uint64_t ck_zipw_size(const struct ck_zipw *z);
/* Free (accepts NULL); does not close fd. */
void ck_zipw_free(struct ck_zipw *z);

/* Append len zero bytes to the current entry without writing them: a hole in the file
 * (sparse where the file system allows). */
int ck_zipw_entry_skip(struct ck_zipw *z, uint64_t len, struct ck_err *err);

/* Tests only, process-wide, 0 restores the default. Exercising zip64 without writing 4 GiB:
 * set_zip64_limit: sizes and offsets >= limit take zip64 fields (default 0xFFFFFFFF); the
 * layout is valid zip64 (Python's zipfile reads it) but miniz (torch.load) checks a 32-bit
 * 0xFFFFFFFF offset against the archive's size and refuses such a small archive.
 * set_test_hole: the torch sink begins its archives with an entry ".data/test_hole" of
 * that many zero bytes left as a hole (ck_zipw_entry_skip): with 5 GiB, torch.load reads
 * a zip64 size and zip64 offsets, as torch writes them past 4 GiB. */
void ck_zipw_set_zip64_limit(uint64_t limit);
void ck_zipw_set_test_hole(uint64_t len);
uint64_t ck_zipw_test_hole(void);

#endif
