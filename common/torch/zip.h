/* Zip archives as torch.save (PyTorch >= 1.6) writes them: stored entries, data 64-byte
 * aligned, zip64 past 4 GiB. Reading here; the torch writer adds its own section. */
#ifndef CK_ZIP_H
#define CK_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* ---- record signatures and fixed sizes (APPNOTE.TXT 4.3) ---- */
#define CK_ZIP_LOCAL_SIG      0x04034b50u
#define CK_ZIP_CENTRAL_SIG    0x02014b50u
#define CK_ZIP_EOCD_SIG       0x06054b50u
#define CK_ZIP64_EOCD_SIG     0x06064b50u
#define CK_ZIP64_LOCATOR_SIG  0x07064b50u
#define CK_ZIP_LOCAL_SIZE     30u
#define CK_ZIP_CENTRAL_SIZE   46u
#define CK_ZIP_EOCD_SIZE      22u
#define CK_ZIP64_EOCD_SIZE    56u
#define CK_ZIP64_LOCATOR_SIZE 20u

/* ---- reading ---- */

struct ck_zip_entry {
  char *name;        /* NUL-terminated (names holding a NUL are refused) */
  size_t nlen;
  uint64_t local;    /* offset of the local header */
  uint64_t size;     /* stored bytes (= uncompressed: only method 0 is read) */
  uint64_t limit;    /* where the next entry (or the central directory) begins */
  uint32_t crc32;    /* from the central directory */
  uint16_t method, flags;
};

struct ck_zip {
  int fd;              /* -1 for an in-memory image */
  const uint8_t *mem;  /* the image (not owned) */
  uint64_t file_size;
  char *label;         /* the file name in messages */
  uint64_t cd_offset, cd_size;
  struct ck_zip_entry *e; /* in central-directory order */
  size_t n;
  struct ck_zip_entry **by_name; /* sorted by name, for ck_zip_find */
};

/* Open path and read its central directory; max_cd caps the directory's bytes (and so what
 * is allocated for it). CK_EFORMAT / CK_ETRUNC / CK_ELIMIT with "FILE: what" in err. */
int ck_zip_open(const char *path, size_t max_cd, struct ck_zip **out, struct ck_err *err);
/* The same over an in-memory image (not copied: it must outlive the ck_zip). */
int ck_zip_open_mem(const void *data, size_t size, const char *label, size_t max_cd, struct ck_zip **out,
                    struct ck_err *err);
void ck_zip_close(struct ck_zip *z);
/* The entry named name, or NULL. */
const struct ck_zip_entry *ck_zip_find(const struct ck_zip *z, const char *name);
/* Where entry e's data begin (its local header read and checked: stored, not encrypted,
 * the data inside the file and before the next entry). */
int ck_zip_data_offset(const struct ck_zip *z, const struct ck_zip_entry *e, uint64_t *off, struct ck_err *err);
/* Read len bytes at off of the archive. 0, -errno or CK_ETRUNC. */
int ck_zip_pread(const struct ck_zip *z, void *buf, size_t len, uint64_t off);
/* The daemon's completeness check: 0 for a complete zip (end record found, central
 * directory consistent with the file size), CK_EINCOMPLETE for a zip still being written
 * (a local header at 0, no valid end yet), CK_EFORMAT for anything else. */
int ck_zip_probe(const char *path, struct ck_err *err);

#endif
