/* Runs the HDF5 fuzz target without libFuzzer, for `make check`: seeds are HDF5 files
 * written at test time (ckptd's writer in every layout and compression, and a few
 * made with the HDF5 API: strings, Cerebras 0.5 metadata, odd types), then mutated
 * deterministically for CKPTD_FUZZ_SECONDS (default 10).
 *
 * libhdf5 itself crashes on some corrupt files (issue 7 item 4), so each input runs in
 * a forked child whose sanitizer report is read back: a crash whose innermost frames
 * (past the sanitizer runtime and libc) are in libhdf5 is counted and reported as
 * libhdf5's; a crash or leak anywhere in our code fails the test. Inputs that crashed
 * or hung are kept under CKPTD_FUZZ_FINDINGS (default ./h5-fuzz-findings). */
#include "config.h"

#include <errno.h>
#include <hdf5.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "convert.h"
#include "dtype.h"
#include "fileio.h"
#include "h5.h"
#include "synth.h"
#include "../tap.h"
#include "../testutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BATCH 32
#define INPUT_MAX (64u << 10)

struct seed {
  uint8_t *d;
  size_t n;
};

static struct seed seeds[BATCH];
static int nseeds;
static char *tmp;

static void add_file(const char *path)
{
  size_t n;
  uint8_t *d = tu_read_file(path, &n);

  if (d && nseeds < BATCH && n <= INPUT_MAX) {
    seeds[nseeds].d = d;
    seeds[nseeds++].n = n;
  } else {
    free(d);
  }
}

static void writer_seeds(void)
{
  static const int dtypes[] = { CK_DT_FLOAT, CK_DT_STRING, CK_DT_BFLOAT16, CK_DT_BOOL, CK_DT_INT64,
                                CK_DT_COMPLEX64, CK_DT_HALF, CK_DT_VARIANT, CK_DT_UINT8 };
  struct ck_synth_opts so = { .total_bytes = 3000, .tensors = 9, .spread = 4, .dtypes = dtypes, .ndtypes = 9,
                              .seed = 3 };
  static const struct { int layout, comp; } modes[] = {
    { CK_H5_FLAT, CK_H5_NONE }, { CK_H5_NESTED, CK_H5_NONE }, { CK_H5_FLAT, CK_H5_GZIP }, { CK_H5_NESTED, CK_H5_LZ4 },
  };
  char src[4200], h5[4300];

  snprintf(src, sizeof(src), "%s/src", tmp);
  if (ck_synth_tf(src, &so, NULL) != 0)
    return;
  for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
    struct ck_convert_opts o = { .buffer_size = 4096, .layout = modes[m].layout, .compression = modes[m].comp,
                                 .gzip_level = 6 };
    snprintf(h5, sizeof(h5), "%s/w%zu.h5", tmp, m);
    if (ck_convert_tf_to_h5(src, h5, &o, NULL, NULL) == 0)
      add_file(h5);
  }
}

static void put_str_attr(hid_t obj, const char *name, const char *v)
{
  hid_t t = H5Tcopy(H5T_C_S1), s = H5Screate(H5S_SCALAR), a;

  H5Tset_size(t, H5T_VARIABLE);
  a = H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, t, &v);
  H5Aclose(a);
  H5Sclose(s);
  H5Tclose(t);
}

/* Cerebras 0.5 style: metadata attributes, chunked shuffle+deflate, strings, a big-endian float. */
static void api_seed(void)
{
  char path[4200];
  hsize_t d2[2] = { 4, 6 }, c2[2] = { 2, 3 }, d1 = 3;
  int16_t bf[24];
  const char *strs[3] = { "a", "", "hello" };
  double be[3] = { 1.5, -2, 3 };
  hid_t f, sp, dcpl, ds, st;
  int8_t yes = 1;

  for (int i = 0; i < 24; i++)
    bf[i] = (int16_t)(i * 997);
  snprintf(path, sizeof(path), "%s/api.h5", tmp);
  if ((f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)) < 0)
    return;
  put_str_attr(f, "__version__", "0.5");
  put_str_attr(f, "model/w.__metadata__", "{\"dtypes\": [\"torch.bfloat16\"], \"shapes\": [[4, 6]]}");
  put_str_attr(f, "step.__metadata__", "{\"dtypes\": [\"int\"], \"value\": 3}");
  sp = H5Screate_simple(2, d2, NULL);
  dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, 2, c2);
  H5Pset_shuffle(dcpl);
  H5Pset_deflate(dcpl, 4);
  H5Gclose(H5Gcreate2(f, "model", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  ds = H5Dcreate2(f, "model/w", H5T_STD_I16LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  H5Dwrite(ds, H5T_NATIVE_INT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, bf);
  H5Dclose(ds);
  H5Pclose(dcpl);
  H5Sclose(sp);
  sp = H5Screate_simple(1, &d1, NULL);
  st = H5Tcopy(H5T_C_S1);
  H5Tset_size(st, H5T_VARIABLE);
  ds = H5Dcreate2(f, "names", st, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(ds, st, H5S_ALL, H5S_ALL, H5P_DEFAULT, strs);
  H5Dclose(ds);
  H5Tclose(st);
  ds = H5Dcreate2(f, "be", H5T_IEEE_F64BE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, be);
  H5Dclose(ds);
  H5Sclose(sp);
  sp = H5Screate(H5S_SCALAR);
  ds = H5Acreate2(f, "__SUCCESS__", H5T_NATIVE_INT8, sp, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(ds, H5T_NATIVE_INT8, &yes);
  H5Aclose(ds);
  H5Sclose(sp);
  H5Fclose(f);
  add_file(path);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
  return tu_xorshift(&rng);
}

/* HDF5 is offset-addressed: flips, byte sets and copied runs, rarely truncation. */
static size_t mutate(const struct seed *s, uint8_t *out)
{
  size_t n = s->n;
  int edits = 1 + (int)(next() % 6);

  memcpy(out, s->d, n);
  for (int e = 0; e < edits && n > 8; e++) {
    size_t at = next() % n;
    switch (next() % 8) {
    case 0: case 1: out[at] ^= (uint8_t)(1u << (next() % 8)); break;
    case 2: case 3: out[at] = (uint8_t)next(); break;
    case 4: out[at] = (uint8_t)(next() % 2 ? 0xff : 0x00); break;
    case 5: if (next() % 8 == 0) n = at + 1; break;
    default: { /* copy a run from elsewhere in this or another seed */
      const struct seed *o = &seeds[next() % (uint64_t)nseeds];
      size_t from = next() % o->n, len = 1 + next() % 16;
      for (size_t k = 0; k < len && at + k < n && from + k < o->n; k++)
        out[at + k] = o->d[from + k];
    }
    }
  }
  return n;
}

enum { RUN_CLEAN, RUN_HDF5_CRASH, RUN_OUR_CRASH, RUN_HANG };

/* Is the innermost frame past the sanitizer runtime and libc in libhdf5? */
static int crash_in_hdf5(const char *report)
{
  const char *p = report;

  while ((p = strstr(p, "    #")) != NULL) {
    const char *eol = strchr(p, '\n');
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    char line[600];
    snprintf(line, sizeof(line), "%.*s", (int)(len < sizeof(line) - 1 ? len : sizeof(line) - 1), p);
    p += len;
    if (strstr(line, "libasan") || strstr(line, "libubsan") || strstr(line, "libc.so") ||
        strstr(line, "sanitizer_common") || strstr(line, "/asan/") || strstr(line, "libz.so"))
      continue;
    return strstr(line, "libhdf5") != NULL;
  }
  return 0;
}

/* A batch of mutants in memory shared with the child that runs them in order; the
 * child records its progress, so after a crash the parent knows the input. */
struct batch {
  volatile long done; /* inputs finished by the child */
  size_t n[BATCH];
  uint8_t d[BATCH][INPUT_MAX];
};

static struct batch *sh;

/* Run inputs [from, to) in one child; returns the status, *at = first input not finished. */
static int run_span(int from, int to, int *at, char *report, size_t cap)
{
  int pfd[2], status = 0;
  pid_t pid;
  size_t got = 0;
  ssize_t k;

  report[0] = 0;
  sh->done = from;
  if (pipe(pfd) != 0)
    return RUN_CLEAN;
  if ((pid = fork()) == 0) {
    close(pfd[0]);
    dup2(pfd[1], 2);
    for (int i = from; i < to; i++) {
      alarm(20);
      LLVMFuzzerTestOneInput(sh->d[i], sh->n[i]);
      sh->done = i + 1;
    }
    exit(0); /* LeakSanitizer checks at exit */
  }
  close(pfd[1]);
  while ((k = read(pfd[0], report + got, cap - 1 - got)) > 0)
    if (got + (size_t)k < cap - 1)
      got += (size_t)k;
  report[got] = 0;
  close(pfd[0]);
  waitpid(pid, &status, 0);
  *at = (int)sh->done;
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
    return RUN_HANG;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && strstr(report, "runtime error") == NULL)
    return RUN_CLEAN;
  return crash_in_hdf5(report) ? RUN_HDF5_CRASH : RUN_OUR_CRASH;
}

static void keep(const char *what, long i, const uint8_t *d, size_t n, const char *report)
{
  const char *dir = getenv("CKPTD_FUZZ_FINDINGS") ? getenv("CKPTD_FUZZ_FINDINGS") : "h5-fuzz-findings";
  char path[4200];

  mkdir(dir, 0755);
  snprintf(path, sizeof(path), "%s/%s-%ld.h5", dir, what, i);
  tu_write_file(path, d, n);
  snprintf(path, sizeof(path), "%s/%s-%ld.txt", dir, what, i);
  tu_write_file(path, report, strlen(report));
}

static long counts[4], runs;
static char report[1 << 16];

static void record(int rc, int i)
{
  static const char *const what[] = { "clean", "libhdf5", "ours", "hang" };

  counts[rc]++;
  if (rc == RUN_OUR_CRASH)
    printf("# crash or leak in ckptd's code (input %ld):\n%.3000s\n", runs + i, report);
  if (rc != RUN_CLEAN)
    keep(what[rc], runs + i, sh->d[i], sh->n[i], report);
}

/* Run a batch; after a crash go on past the input that crashed; a leak found at the
 * end of a batch is traced to its inputs one by one. */
static void run_batch(int n)
{
  int from = 0, at;

  while (from < n) {
    int rc = run_span(from, n, &at, report, sizeof(report));
    if (rc == RUN_CLEAN) {
      counts[RUN_CLEAN] += n - from;
      break;
    }
    if (at >= n) { /* every input finished: a leak at exit */
      for (int i = from; i < n; i++)
        record(run_span(i, i + 1, &at, report, sizeof(report)), i);
      break;
    }
    counts[RUN_CLEAN] += at - from;
    record(rc, at);
    from = at + 1;
  }
  runs += n;
}

/* Children's reports are classified by module name, which needs no symbolizer (the
 * slow part of a report), and huge allocations fail as they do without ASan. */
static void sanitizer_options(char **argv)
{
  const char *o = getenv("ASAN_OPTIONS");
  char *opts;

  if (o && strstr(o, "symbolize=0"))
    return;
  opts = ck_asprintf("%s%ssymbolize=0:allocator_may_return_null=1", o ? o : "", o && *o ? ":" : "");
  if (opts && setenv("ASAN_OPTIONS", opts, 1) == 0)
    execv("/proc/self/exe", argv);
  free(opts);
}

int main(int argc, char **argv)
{
  const char *secs = getenv("CKPTD_FUZZ_SECONDS");
  double limit = secs ? atof(secs) : 10;
  time_t start;
  int n;

  (void)argc;
  sanitizer_options(argv);
  tmp = tu_tmpdir();
  ck_h5_init();
  sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  writer_seeds();
  api_seed();
  ok(nseeds >= 5 && sh != MAP_FAILED, "%d HDF5 seeds written", nseeds);
  for (n = 0; n < nseeds; n++) {
    memcpy(sh->d[n], seeds[n].d, seeds[n].n);
    sh->n[n] = seeds[n].n;
  }
  run_batch(n);
  ok(counts[RUN_CLEAN] == nseeds, "every seed opens and streams cleanly");
  memset(counts, 0, sizeof(counts));
  runs = 0;
  start = time(NULL);
  while (difftime(time(NULL), start) < limit) {
    for (n = 0; n < BATCH; n++)
      sh->n[n] = mutate(&seeds[next() % (uint64_t)nseeds], sh->d[n]);
    run_batch(BATCH);
  }
  printf("# %ld mutants in %.0f s: %ld clean, %ld libhdf5-internal crashes or leaks, %ld hangs (> 20 s)\n", runs,
         limit, counts[RUN_CLEAN], counts[RUN_HDF5_CRASH], counts[RUN_HANG]);
  ok(counts[RUN_OUR_CRASH] == 0, "no crash, leak or undefined behaviour in ckptd's code (%ld)", counts[RUN_OUR_CRASH]);
  for (int i = 0; i < nseeds; i++)
    free(seeds[i].d);
  munmap(sh, sizeof(*sh));
  tu_rmtree(tmp);
  free(tmp);
  return tap_done();
}
