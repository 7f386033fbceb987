/* How long libhdf5 takes to create datasets like ckptd's, and which settings change it
 * (docs/performance.md, "Many small tensors"). Not built by make: it measures libhdf5,
 * not ckptd, and is kept so the table there can be remeasured:
 *
 *   cc -O2 -o libhdf5_create bench/libhdf5_create.c $(pkg-config --cflags --libs hdf5)
 *   for v in base noorder latest latest+noorder mbs noattr latest+noattr; do
 *     ./libhdf5_create /dev/shm/x.h5 50000 $v; done; rm /dev/shm/x.h5
 *
 * Each dataset: contiguous, allocated early, never filled, no timestamps, float32 of
 * 1 to 4096 elements, then ckptd's three attributes (two variable-length strings and a
 * u32). VARIANT names settings, joined by '+': noorder (no creation order on the
 * root), latest (the 1.8-and-later file format), mbs (1 MiB metadata and small-data
 * blocks), noattr (no attributes). */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
  struct timespec t;

  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void str_attr(hid_t obj, const char *name, hid_t type, hid_t space, const char *value)
{
  hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);

  H5Awrite(a, type, &value);
  H5Aclose(a);
}

int main(int argc, char **argv)
{
  if (argc != 4) {
    fprintf(stderr, "usage: %s FILE N VARIANT\n", argv[0]);
    return 2;
  }
  int n = atoi(argv[2]);
  const char *v = argv[3];
  int noattr = strstr(v, "noattr") != NULL, noorder = strstr(v, "noorder") != NULL;
  double t0 = now(), t1;
  hid_t fcpl = H5Pcreate(H5P_FILE_CREATE), fapl = H5Pcreate(H5P_FILE_ACCESS);

  if (!noorder)
    H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
  if (strstr(v, "latest"))
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST);
  if (strstr(v, "mbs")) {
    H5Pset_meta_block_size(fapl, 1 << 20);
    H5Pset_small_data_block_size(fapl, 1 << 20);
  }
  hid_t f = H5Fcreate(argv[1], H5F_ACC_TRUNC, fcpl, fapl);
  hid_t scalar = H5Screate(H5S_SCALAR), str = H5Tcopy(H5T_C_S1);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Tset_size(str, H5T_VARIABLE);
  H5Tset_cset(str, H5T_CSET_UTF8);
  H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
  H5Pset_obj_track_times(dcpl, 0);
  H5Pset_layout(dcpl, H5D_CONTIGUOUS);
  H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY);
  if (f < 0)
    return 1;
  srand(1);
  for (int i = 0; i < n; i++) {
    char name[64];
    hsize_t d = 1 + (hsize_t)(rand() % 4096);
    unsigned crc = (unsigned)i;
    snprintf(name, sizeof(name), "layer_%d%%2Fkernel_%d", i / 10, i);
    hid_t space = H5Screate_simple(1, &d, NULL);
    hid_t ds = H5Dcreate2(f, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (ds < 0)
      return 1;
    H5Dget_offset(ds);
    if (!noattr) {
      hid_t a;
      str_attr(ds, "__H5_TYPE__", str, scalar, "NumpyArrayH5Type");
      str_attr(ds, "tf_dtype", str, scalar, "DT_FLOAT");
      a = H5Acreate2(ds, "tf_crc32c", H5T_STD_U32LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
      H5Awrite(a, H5T_NATIVE_UINT, &crc);
      H5Aclose(a);
    }
    H5Sclose(space);
    H5Dclose(ds);
  }
  t1 = now();
  H5Fclose(f);
  printf("%-24s %d datasets: created in %.2f s, closed in %.2f s\n", v, n, t1 - t0, now() - t1);
  return 0;
}
