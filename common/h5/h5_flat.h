/* ckptd's flat HDF5 layout written directly, without libhdf5 in the loop (h5_flat.c).
 * Used by the writer (h5_write.c) for the flat layout, uncompressed, fixed-size
 * dtypes only; everything else goes through libhdf5. */
#ifndef CK_H5_FLAT_H
#define CK_H5_FLAT_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct ck_h5f;
struct ck_h5f_ds;

/* Create path (O_EXCL). 0 or an error. */
int ck_h5f_create(const char *path, struct ck_h5f **out, struct ck_err *err);

/* A contiguous dataset named name (a link name of the root group: no '/') with the
 * HDF5 type of dtype and ckptd's attributes. Its storage is allocated now
 * (ck_h5f_ds_raw_offset; 0 for no elements); its object header is written by
 * ck_h5f_ds_close. */
int ck_h5f_dataset(struct ck_h5f *f, const char *name, int dtype, int rank, const int64_t *dims,
                   uint32_t tf_crc32c, struct ck_h5f_ds **out, struct ck_err *err);
uint64_t ck_h5f_ds_raw_offset(const struct ck_h5f_ds *ds);
void ck_h5f_ds_set_crc(struct ck_h5f_ds *ds, uint32_t tf_crc32c);

/* Write the dataset's object header and free ds. An error is also kept by the
 * writer: ck_h5f_finish then fails with it. */
int ck_h5f_ds_close(struct ck_h5f_ds *ds, struct ck_err *err);

/* Root attributes: a UTF-8 string, a 32-bit integer, h5py's bool. */
int ck_h5f_root_str(struct ck_h5f *f, const char *name, const char *value, struct ck_err *err);
int ck_h5f_root_i32(struct ck_h5f *f, const char *name, int32_t value, struct ck_err *err);
int ck_h5f_root_bool(struct ck_h5f *f, const char *name, int value, struct ck_err *err);

/* Write the groups' metadata, then the superblock, fsync and close; frees f. */
int ck_h5f_finish(struct ck_h5f *f, struct ck_err *err);

/* Close and free (the caller removes the file). */
void ck_h5f_abort(struct ck_h5f *f);

#endif
