/* Runs the fuzz target without libFuzzer, for `make check`: every fixture index and
 * a few generated inputs as seeds, then deterministic mutations of them (bit flips,
 * byte sets, truncations, splices) for a bounded time. Crashes and leaks show up
 * under the sanitizer build; `make fuzz` runs the real coverage-guided fuzzer. */
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

struct seed {
  uint8_t *d;
  size_t n;
};

static struct seed seeds[256];
static int nseeds;

static void add_seed(uint8_t tag, const uint8_t *d, size_t n)
{
  if (nseeds == 256)
    return;
  seeds[nseeds].d = malloc(n + 1);
  seeds[nseeds].d[0] = tag;
  memcpy(seeds[nseeds].d + 1, d, n);
  seeds[nseeds].n = n + 1;
  nseeds++;
}

static void add_index_seeds(const char *fx)
{
  DIR *top = opendir(fx);
  struct dirent *de;

  while (top && (de = readdir(top)) != NULL) {
    char sub[4200];
    DIR *d;
    struct dirent *f;
    if (de->d_name[0] == '.')
      continue;
    snprintf(sub, sizeof(sub), "%s/%s", fx, de->d_name);
    if ((d = opendir(sub)) == NULL)
      continue;
    while ((f = readdir(d)) != NULL) {
      size_t n, l = strlen(f->d_name);
      char path[4500];
      uint8_t *data;
      int is_index = l > 6 && strcmp(f->d_name + l - 6, ".index") == 0;
      if (!is_index && strcmp(f->d_name, "checkpoint") != 0)
        continue;
      snprintf(path, sizeof(path), "%s/%s", sub, f->d_name);
      if ((data = tu_read_file(path, &n)) != NULL) {
        add_seed(strcmp(f->d_name, "checkpoint") == 0 ? 7 : 0, data, n);
        free(data);
      }
    }
    closedir(d);
  }
  if (top)
    closedir(top);
}

static uint64_t rng = 0x853c49e6748fea9bull;

static uint64_t next(void)
{
  return tu_xorshift(&rng);
}

static size_t mutate(const struct seed *s, uint8_t *out, size_t cap)
{
  size_t n = s->n < cap ? s->n : cap;
  int edits = 1 + (int)(next() % 4);

  memcpy(out, s->d, n);
  for (int e = 0; e < edits && n > 1; e++) {
    size_t at = 1 + next() % (n - 1);
    switch (next() % 6) {
    case 0: out[at] ^= (uint8_t)(1u << (next() % 8)); break;
    case 1: out[at] = (uint8_t)next(); break;
    case 2: out[at] = (uint8_t)(next() % 2 ? 0xff : 0x00); break;
    case 3: n = at + 1; break; /* truncate */
    case 4: { /* splice a chunk from another seed */
      const struct seed *o = &seeds[next() % (uint64_t)nseeds];
      size_t from = next() % o->n, len = next() % 32;
      for (size_t k = 0; k < len && at + k < n && from + k < o->n; k++)
        out[at + k] = o->d[from + k];
      break;
    }
    default: /* stretch a varint */
      out[at] |= 0x80;
    }
  }
  return n;
}

int main(void)
{
  const char *fx = tap_fixtures();
  const char *secs = getenv("CKPTD_FUZZ_SECONDS");
  double limit = secs ? atof(secs) : 15;
  uint8_t *buf = malloc(1 << 20);
  time_t start = time(NULL);
  long runs = 0;

  static const uint8_t strings[] = { 3, 1, 5, 0, 0xde, 0xad, 0xbe, 0xef, 'h', 'e', 'l', 'l', 'o' };
  static const uint8_t variant[] = { 1, 2, 'a', 'b', 1, 2, 3, 4 };
  static const uint8_t slice[] = { 0, 'e', 'm', 'b', 0, 1, 1, 2, 0x80, 0x82, 0x80, 0x7f };
  add_seed(4, strings, sizeof(strings));
  add_seed(5, variant, sizeof(variant));
  add_seed(6, slice, sizeof(slice));
  {
    static const char json[] = "{\"dtypes\": [\"torch.bfloat16\"], \"shapes\": [[4, 3]]}";
    static const char ini[] = "[ckptd]\nworkers = 2\nmemory_budget = 64M\nsettle_seconds = 1.5\n"
                              "[watch a]\npath = /tmp\ndirection = both\ninclude = */x/* y\nshard_rule = emb*=1\n";
    add_seed(8, (const uint8_t *)json, sizeof(json) - 1);
    add_seed(9, (const uint8_t *)ini, sizeof(ini) - 1);
  }
  if (fx)
    add_index_seeds(fx);
  ok(nseeds >= 3, "%d seeds", nseeds);
  for (int i = 0; i < nseeds; i++)
    LLVMFuzzerTestOneInput(seeds[i].d, seeds[i].n);
  ok(1, "every seed parsed without a crash");
  while (difftime(time(NULL), start) < limit) {
    for (int k = 0; k < 200; k++, runs++) {
      const struct seed *s = &seeds[next() % (uint64_t)nseeds];
      size_t n = mutate(s, buf, 1 << 20);
      LLVMFuzzerTestOneInput(buf, n);
    }
  }
  ok(runs > 0, "%ld mutated inputs in %.0f s without a crash", runs, limit);
  for (int i = 0; i < nseeds; i++)
    free(seeds[i].d);
  free(buf);
  return tap_done();
}
