/* Runs the safetensors fuzz target without libFuzzer, for `make check`: every file of
 * tests/fuzz/corpus-st (seeds named ok-* must validate, bad-* must not), then
 * deterministic mutants of them for CKPTD_FUZZ_SECONDS (default 5). The target aborts
 * on a broken invariant; the sanitizers catch the rest. */
#include "config.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "st.h"
#include "../tap.h"
#include "../testutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SEEDS 64
#define INPUT_MAX (64u << 10)

struct seed {
  char name[256];
  uint8_t *d;
  size_t n;
};

static struct seed seeds[MAX_SEEDS];
static int nseeds;

static int load_seeds(const char *dir)
{
  DIR *dp = opendir(dir);
  struct dirent *e;
  char path[4200];

  if (dp == NULL)
    return -1;
  while ((e = readdir(dp)) != NULL && nseeds < MAX_SEEDS) {
    struct seed *s = &seeds[nseeds];
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
    snprintf(s->name, sizeof(s->name), "%s", e->d_name);
    if ((s->d = tu_read_file(path, &s->n)) != NULL && s->n <= INPUT_MAX && s->n > 0)
      nseeds++;
    else
      free(s->d);
  }
  closedir(dp);
  return 0;
}

/* Does the seed validate? (The target itself only says it did not crash.) */
static int validates(const struct seed *s)
{
  struct ck_st_header h;
  const uint8_t *nul;
  int rc;

  if ((s->d[0] & 1) == 0)
    rc = ck_st_image_parse(s->d + 1, s->n - 1, 1 << 20, s->name, &h, NULL);
  else if ((nul = memchr(s->d + 1, 0, s->n - 1)) == NULL)
    return 0;
  else
    rc = ck_st_header_parse(s->d + 1, (size_t)(nul - s->d - 1), (uint64_t)(s->d + s->n - nul - 1), 1 << 20,
                            s->name, &h, NULL);
  if (rc == 0)
    ck_st_header_free(&h);
  return rc == 0;
}

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint64_t next(void)
{
  return tu_xorshift(&rng);
}

/* JSON-aware edits: flip bytes, put in structural characters and digits, drop or duplicate runs. */
static size_t mutate(const struct seed *s, uint8_t *out)
{
  static const char alphabet[] = "{}[],:\"\\0123456789-.eEu ntfF";
  size_t n = s->n;
  int edits = 1 + (int)(next() % 4);

  memcpy(out, s->d, n);
  for (int e = 0; e < edits && n > 2; e++) {
    size_t at = 1 + next() % (n - 1), len = 1 + next() % 8;
    switch (next() % 5) {
    case 0: out[at] ^= (uint8_t)(1u << (next() % 8)); break;
    case 1: out[at] = (uint8_t)alphabet[next() % (sizeof(alphabet) - 1)]; break;
    case 2: /* drop a run */
      if (at + len < n) {
        memmove(out + at, out + at + len, n - at - len);
        n -= len;
      }
      break;
    case 3: /* duplicate a run */
      if (at + len < n && n + len <= INPUT_MAX) {
        memmove(out + at + len, out + at, n - at);
        n += len;
      }
      break;
    default: n = at + 1; break; /* truncate */
    }
  }
  return n;
}

int main(void)
{
  const char *secs = getenv("CKPTD_FUZZ_SECONDS");
  double limit = secs ? atof(secs) : 5;
  static uint8_t buf[INPUT_MAX];
  int bad = 0, nok = 0;
  long runs = 0;
  time_t start;
  int loaded = load_seeds(ST_CORPUS);

  ok(loaded == 0 && nseeds >= 8, "%d seeds in %s", nseeds, ST_CORPUS);
  for (int i = 0; i < nseeds; i++) {
    int want = strncmp(seeds[i].name, "ok-", 3) == 0;
    LLVMFuzzerTestOneInput(seeds[i].d, seeds[i].n);
    nok += want;
    if (validates(&seeds[i]) != want) {
      printf("# seed %s: %s\n", seeds[i].name, want ? "does not validate" : "validates");
      bad++;
    }
  }
  ok(bad == 0 && nok > 0, "ok-* seeds (%d) validate, bad-* seeds do not", nok);
  start = time(NULL);
  while (nseeds > 0 && difftime(time(NULL), start) < limit) {
    for (int k = 0; k < 256; k++, runs++) {
      size_t n = mutate(&seeds[next() % (uint64_t)nseeds], buf);
      LLVMFuzzerTestOneInput(buf, n);
    }
  }
  ok(1, "%ld mutants in %.0f s without a crash or broken invariant", runs, limit);
  for (int i = 0; i < nseeds; i++)
    free(seeds[i].d);
  return tap_done();
}
