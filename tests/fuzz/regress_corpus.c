/* Runs a fuzz target without libFuzzer, for `make check`: every seed of its corpus
 * (tests/fuzz/CORPUS, made from real torch.save files), then deterministic mutants of
 * them (byte flips and sets, small-integer pokes, truncations, spliced runs) for
 * CKPTD_FUZZ_SECONDS (default 5). The sanitizer build turns a bug into a failed run. */
#include "config.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../tap.h"
#include "../testutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXSEEDS 64

static struct { uint8_t *d; size_t n; } seeds[MAXSEEDS];
static int nseeds;
static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint64_t next(void)
{
  return tu_xorshift(&rng);
}

static void load(const char *dir)
{
  DIR *d = opendir(dir);
  struct dirent *e;
  char path[4200];

  while (d && (e = readdir(d)) != NULL && nseeds < MAXSEEDS) {
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
    if ((seeds[nseeds].d = tu_read_file(path, &seeds[nseeds].n)) != NULL)
      nseeds++;
  }
  if (d)
    closedir(d);
}

static size_t mutate(uint8_t *out, size_t cap)
{
  int s = (int)(next() % (uint64_t)nseeds), edits = 1 + (int)(next() % 4);
  size_t n = seeds[s].n < cap ? seeds[s].n : cap;

  memcpy(out, seeds[s].d, n);
  for (int e = 0; e < edits && n > 0; e++) {
    size_t at = next() % n;
    switch (next() % 6) {
    case 0: out[at] ^= (uint8_t)(1u << (next() % 8)); break;
    case 1: out[at] = (uint8_t)next(); break;
    case 2: out[at] = (uint8_t)(next() % 2 ? 0xff : 0); break;
    case 3: out[at] = (uint8_t)(next() % 16); break;
    case 4: if (next() % 4 == 0) n = at; break;
    default: {
      int o = (int)(next() % (uint64_t)nseeds);
      size_t from = next() % (seeds[o].n ? seeds[o].n : 1), len = 1 + next() % 24;
      for (size_t k = 0; k < len && at + k < n && from + k < seeds[o].n; k++)
        out[at + k] = seeds[o].d[from + k];
    }
    }
  }
  return n;
}

int main(void)
{
  const char *secs = getenv("CKPTD_FUZZ_SECONDS");
  double limit = secs ? atof(secs) : 5;
  static uint8_t buf[1 << 20];
  long runs = 0;
  time_t start;

  load(CORPUS_DIR);
  ok(nseeds >= 3, "%d seeds in %s", nseeds, CORPUS_DIR);
  for (int i = 0; i < nseeds; i++)
    LLVMFuzzerTestOneInput(seeds[i].d, seeds[i].n);
  ok(1, "every seed runs cleanly");
  start = time(NULL);
  while (nseeds && difftime(time(NULL), start) < limit) {
    for (int k = 0; k < 64; k++, runs++) {
      size_t n = mutate(buf, sizeof(buf));
      LLVMFuzzerTestOneInput(buf, n);
    }
  }
  ok(1, "%ld mutants in %.0f s without a sanitizer report", runs, limit);
  for (int i = 0; i < nseeds; i++)
    free(seeds[i].d);
  return tap_done();
}
