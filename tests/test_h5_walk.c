/* The walk of an HDF5 file shared with helper processes (h5_walk.c): the listing
 * made by 1, 2 and 3 processes is the same, line for line, and so is its error. */
#include "config.h"

#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5.h"
#include "h5_reader.h"
#include "tap.h"
#include "testutil.h"

static char *tmp;

/* The listing of one group by helper processes (ck_h5_set_walkers) is the listing
 * made alone: 9,000 links of tensors (some with ckptd_order), groups holding a
 * tensor, soft links and empty datasets (skipped), in creation order; an escaped
 * name only in a helper's slice (evidence that changes how every name is read); a
 * big group in a helper's slice (helpers of its own); and a bad dataset in a
 * helper's slice stops it with the same error. */
static char *listing(const char *path, int walkers, struct ck_err *err)
{
  struct ck_h5r *r = NULL;
  char *text = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&text, &len);

  ck_h5_set_walkers(walkers);
  if (ck_h5r_open(path, &r, err) != 0) {
    fprintf(m, "error: %s", err->msg);
  } else {
    for (size_t i = 0; i < ck_h5r_count(r); i++) {
      const struct ck_h5_tensor *t = ck_h5r_tensor(r, i);
      fprintf(m, "%s|%s|%d|%d|%d|%llu|%llu|%d:%08x|%d:%llu|", t->path, (const char *)t->name, t->dtype, t->kind,
              t->rank, (unsigned long long)t->nelem, (unsigned long long)t->raw_offset, t->has_crc, t->tf_crc32c,
              t->has_order, (unsigned long long)t->order);
      for (int d = 0; d < t->rank; d++)
        fprintf(m, "%lld,", (long long)t->dims[d]);
      fputc('\n', m);
    }
    for (size_t i = 0; i < ck_h5r_skipped_count(r); i++)
      fprintf(m, "skipped %s\n", ck_h5r_skipped(r, i));
    ck_h5r_close(r);
  }
  fclose(m);
  ck_h5_set_walkers(1);
  return text;
}

static void listing_by_helpers(void)
{
  char path[4200];
  hid_t fcpl = H5Pcreate(H5P_FILE_CREATE), f, space, nullsp, vt, ct;
  const char *htype = "NoneH5Type";
  size_t ntensors = 0;

  snprintf(path, sizeof(path), "%s/helpers.h5", tmp);
  H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
  f = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
  nullsp = H5Screate(H5S_NULL);
  vt = H5Tcopy(H5T_C_S1);
  H5Tset_size(vt, H5T_VARIABLE);
  for (int i = 0; i < 9000; i++) {
    char name[32];
    hsize_t n = (hsize_t)(i % 7 + 1);
    float v[7] = { (float)i, 1, 2, 3, 4, 5, 6 };
    hid_t ds = H5I_INVALID_HID;
    if (i % 1500 == 700) {
      hid_t g;
      snprintf(name, sizeof(name), "g%05d", i);
      g = H5Gcreate2(f, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      space = H5Screate_simple(1, &n, NULL);
      ds = H5Dcreate2(g, "inner", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
      H5Sclose(space);
      H5Gclose(g);
      ntensors++;
    } else if (i % 1000 == 333) {
      snprintf(name, sizeof(name), "l%05d", i);
      H5Lcreate_soft("/t00000", f, name, H5P_DEFAULT, H5P_DEFAULT);
    } else if (i % 997 == 5) {
      hid_t a;
      snprintf(name, sizeof(name), "n%05d", i);
      ds = H5Dcreate2(f, name, H5T_IEEE_F32LE, nullsp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      a = H5Acreate2(ds, "__H5_TYPE__", vt, H5Screate(H5S_SCALAR), H5P_DEFAULT, H5P_DEFAULT);
      H5Awrite(a, vt, &htype);
      H5Aclose(a);
    } else {
      snprintf(name, sizeof(name), i == 8000 ? "esc%%2F%05d" : "t%05d", i);
      space = H5Screate_simple(1, &n, NULL);
      ds = H5Dcreate2(f, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
      H5Sclose(space);
      if (i % 3 == 0) {
        uint64_t order = (uint64_t)i;
        hid_t a, sc = H5Screate(H5S_SCALAR);
        a = H5Acreate2(ds, "ckptd_order", H5T_STD_U64LE, sc, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_UINT64, &order);
        H5Aclose(a);
        H5Sclose(sc);
      }
      ntensors++;
    }
    if (ds >= 0)
      H5Dclose(ds);
  }
  {
    hid_t g = H5Gcreate2(f, "zz_big", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t one = 1;
    float v = 1;
    space = H5Screate_simple(1, &one, NULL);
    for (int i = 0; i < 5000; i++) {
      char name[32];
      hid_t ds;
      snprintf(name, sizeof(name), "b%04d", i);
      ds = H5Dcreate2(g, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v);
      H5Dclose(ds);
    }
    H5Sclose(space);
    H5Gclose(g);
    ntensors += 5000;
  }
  H5Fclose(f);
  {
    struct ck_err err = { 0 };
    unsigned long used0, used1, forked0 = ck_h5r_helpers(&used0), forked1;
    char *one = listing(path, 1, &err), *two = listing(path, 2, &err), *three = listing(path, 3, &err);
    size_t lines = 0;
    forked1 = ck_h5r_helpers(&used1);
    /* 2 walkers: 1 helper for the root, then 1 for zz_big (in that helper's slice,
     * reached once it is reaped); 3 walkers: 2 and 2 */
    ok(forked1 - forked0 == 6 && used1 - used0 == 6, "helper processes listed slices of both big groups (%lu started, %lu used)",
       forked1 - forked0, used1 - used0);
    for (const char *p = one; (p = strchr(p, '\n')) != NULL; p++)
      lines++;
    ok(strncmp(one, "error", 5) != 0 && lines == 9000 + 5000 && strcmp(one, two) == 0 && strcmp(one, three) == 0,
       "14,001 links listed by 1, 2 and 3 processes: the same %zu lines (%zu tensors; soft links and empty datasets skipped)",
       lines, ntensors);
    ok(strstr(two, "|esc/08000|") != NULL && strstr(two, "|1:7998|") != NULL,
       "an escaped name in a helper's slice unquotes as alone; ckptd_order comes through");
    free(one);
    free(two);
    free(three);
  }
  /* a dataset of a type no tensor has, late in the group: in the last helper's slice */
  f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  ct = H5Tcreate(H5T_COMPOUND, 8);
  H5Tinsert(ct, "a", 0, H5T_NATIVE_INT);
  H5Tinsert(ct, "b", 4, H5T_NATIVE_INT);
  space = H5Screate(H5S_SCALAR);
  H5Dclose(H5Dcreate2(f, "z_bad", ct, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  H5Sclose(space);
  H5Tclose(ct);
  H5Fclose(f);
  {
    struct ck_err err = { 0 };
    char *one = listing(path, 1, &err), *two = listing(path, 2, &err);
    ok(strncmp(one, "error: ", 7) == 0 && strstr(one, "z_bad") != NULL && strcmp(one, two) == 0,
       "a bad dataset in a helper's slice stops the listing with the same error: %s", two);
    free(one);
    free(two);
  }
  H5Tclose(vt);
  H5Sclose(nullsp);
  H5Pclose(fcpl);
}

int main(void)
{
  tmp = tu_tmpdir();
  ck_h5_init();
  listing_by_helpers();
  tu_rmtree(tmp);
  free(tmp);
  return tap_done();
}
