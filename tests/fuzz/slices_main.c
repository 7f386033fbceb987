/* Runs fuzz_slices without libFuzzer, for `make check`: generated tilings (a grid
 * of cuts per axis, every box listed and stored) and deterministic mutations of
 * them (a box moved, resized, dropped, unlisted or duplicated; random bytes) for
 * CKPTD_FUZZ_SECONDS (default 3). The target aborts on any disagreement with its
 * oracle; crashes and leaks show under the sanitizer build. `make fuzz-slices`
 * runs the coverage-guided fuzzer. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../tap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* An exact tiling: along each axis, cut points split [0, dim); the boxes are the grid cells. */
static size_t tiling(uint8_t *out)
{
  int rank = 1 + (int)(next() % 3), dims[3], cuts[3][8], ncut[3], ns = 1, at = 0;

  out[at++] = (uint8_t)(rank - 1);
  out[at++] = (uint8_t)(next() % 4);
  for (int k = 0; k < rank; k++) {
    dims[k] = 1 + (int)(next() % 7);
    out[at++] = (uint8_t)dims[k];
    ncut[k] = 0;
    cuts[k][ncut[k]++] = 0;
    for (int c = 1; c < dims[k]; c++)
      if (next() % 3 == 0)
        cuts[k][ncut[k]++] = c;
    cuts[k][ncut[k]] = dims[k];
    ns *= ncut[k];
  }
  if (ns > 16)
    return 0;
  out[at++] = (uint8_t)(ns - 1);
  for (int i = 0; i < ns; i++) {
    int r = i;
    int idx[3];
    for (int k = rank - 1; k >= 0; k--) {
      idx[k] = r % ncut[k];
      r /= ncut[k];
    }
    for (int k = 0; k < rank; k++) {
      int lo = cuts[k][idx[k]], hi = cuts[k][idx[k] + 1];
      int whole = lo == 0 && hi == dims[k] && next() % 2;
      out[at++] = (uint8_t)lo;
      out[at++] = whole ? 0xff : (uint8_t)(hi - lo);
    }
    out[at++] = 1; /* listed and stored */
  }
  out[at++] = (uint8_t)(next() % 64);
  return (size_t)at;
}

static void mutate(uint8_t *d, size_t n)
{
  int edits = 1 + (int)(next() % 3);

  for (int e = 0; e < edits; e++) {
    size_t at = next() % n;
    switch (next() % 4) {
    case 0: d[at] = (uint8_t)(d[at] + 1); break;
    case 1: d[at] = (uint8_t)(d[at] - 1); break;
    case 2: d[at] ^= (uint8_t)(1u << (next() % 8)); break;
    default: d[at] = (uint8_t)next();
    }
  }
}

int main(void)
{
  const char *secs = getenv("CKPTD_FUZZ_SECONDS");
  double limit = secs ? atof(secs) : 3;
  time_t start = time(NULL);
  long runs = 0, tilings = 0;
  uint8_t buf[256];

  do {
    for (int k = 0; k < 100; k++, runs++) {
      size_t n = tiling(buf);
      if (n == 0) {
        n = 8 + next() % 120;
        for (size_t i = 0; i < n; i++)
          buf[i] = (uint8_t)next();
      } else if (next() % 2) {
        mutate(buf, n);
      } else {
        tilings++;
      }
      LLVMFuzzerTestOneInput(buf, n);
    }
  } while (difftime(time(NULL), start) < limit);
  ok(tilings > 0, "%ld exact tilings assembled equal to the reference", tilings);
  ok(runs > 0, "%ld inputs in %.0f s: the reader accepted exactly the exact tilings", runs, limit);
  return tap_done();
}
