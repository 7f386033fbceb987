/* Completeness signals of an HDF5 file, for the daemon's probes.
 * - The superblock's file consistency flags, read without libhdf5: a file that a
 *   writer has open for writing says so there (bit 0, and bit 2 for SWMR writers;
 *   libhdf5 1.10 sets them for every superblock version, with or without file
 *   locking), so a probe tells "still being written" from "finished" without
 *   opening the file the way a writer would notice.
 * - The root `__SUCCESS__` attribute that Cerebras' savers (and ckptd) write last. */
#ifndef CK_H5_PROBE_H
#define CK_H5_PROBE_H

#include <stddef.h>
#include <stdint.h>

/* From the bytes of a superblock (starting at its signature): 1 if open for
 * writing, 0 if not, -1 if the bytes are not a superblock we know. */
int ck_h5_probe_super(const uint8_t *sb, size_t len);

/* From the bytes of a superblock: the end-of-file address it records (the size the
 * file has once every byte of it is written), or 0 if unknown. */
uint64_t ck_h5_probe_eoa(const uint8_t *sb, size_t len);

#define CK_H5_PROBE_SB_BYTES 64

/* A file that is not finished: 1 with the reason in why if its superblock says a
 * writer has it open, or the file is shorter than the superblock's end-of-file
 * address (a copy or a save still under way: libhdf5 would call it truncated);
 * 0 if neither; a negative errno, or -1 without a superblock we know. The
 * superblock is looked for at 0, 512, 1024, ... (after a user block). */
int ck_h5_probe_busy(const char *path, char *why, size_t whylen);

/* 1 if the file's root has a true `__SUCCESS__` attribute, 0 if not, or a negative
 * code if the file cannot be opened (read-only; HDF5 file locking as the
 * environment sets it: the daemon's workers turn it off). */
int ck_h5_probe_success(const char *path);

#endif
