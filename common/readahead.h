/* Reading a byte range of a file in order, the next piece read while the caller
 * consumes the current one. */
#ifndef CK_READAHEAD_H
#define CK_READAHEAD_H

#include <stddef.h>
#include <stdint.h>

/* Read [off, off + len) of fd in pieces of buf (bufsize bytes) and hand each to
 * fn(ctx, piece, n) in order. With threads > 1, a range of more than one buffer and
 * halves of at least CK_READ_AHEAD_MIN bytes, a
 * reader thread preads the next piece into one half of buf while fn consumes the
 * other, so reading overlaps what fn does (a checksum and a write: h5-to-tensorflow,
 * ckpt verify and diff of an .h5). Returns 0, fn's non-zero result (no call after
 * it), or the error of a read that failed (-errno, CK_ETRUNC past the end of the file),
 * then *bad_off is where it was to start; else *bad_off is UINT64_MAX. */
#define CK_READ_AHEAD_MIN 4096 /* smaller halves are read without the thread */

int ck_read_range(int fd, uint64_t off, uint64_t len, void *buf, size_t bufsize, int threads,
                  int (*fn)(void *ctx, const void *data, size_t n), void *ctx, uint64_t *bad_off);

#endif
