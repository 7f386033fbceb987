/* libFuzzer target for every parser of untrusted checkpoint bytes: the first input
 * byte picks the parser, the rest is its input.
 *   0-3: a whole .index file (footer, blocks, snappy, header and entry protos, slices)
 *   4:   DT_STRING stored layout      5: DT_VARIANT stored layout
 *   6:   OrderedCode slice key        7: `checkpoint` state text
 *   8:   Cerebras 0.5 JSON metadata   9: ckptd's INI configuration */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bundle.h"
#include "ckptstate.h"
#include "dtype.h"
#include "fileio.h"
#include "ordered_code.h"
#include "tensor_crc.h"
#include "../../common/h5/h5_internal.h"
#include "../../daemon/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static char prefix[128];

static void cleanup(void)
{
  char path[200];

  snprintf(path, sizeof(path), "%s.index", prefix);
  unlink(path);
  rmdir(dir);
}

static void setup(void)
{
  if (prefix[0])
    return;
  /* Index bytes go through a real file, as in production; tmpfs keeps it fast. */
  snprintf(dir, sizeof(dir), "%s/ckptd-fuzz.XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
  if (mkdtemp(dir) == NULL)
    abort();
  snprintf(prefix, sizeof(prefix), "%s/f", dir);
  atexit(cleanup);
}

static void fuzz_index(const uint8_t *data, size_t size)
{
  char path[300];
  FILE *f;
  struct ck_bundle *b;

  snprintf(path, sizeof(path), "%s.index", prefix);
  if ((f = fopen(path, "wb")) == NULL)
    abort();
  fwrite(data, 1, size, f);
  fclose(f);
  if (ck_bundle_open(prefix, CK_BUNDLE_INDEX_ONLY, &b, NULL) == 0) {
    for (size_t i = 0; i < ck_bundle_count(b); i++) {
      char s[128];
      ck_entry_key_str(ck_bundle_entry(b, i), s, sizeof(s));
      ck_entry_shape_str(ck_bundle_entry(b, i), s, sizeof(s));
    }
    ck_bundle_close(b);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct ck_tcrc s;
  uint32_t crc;

  setup();
  if (size == 0)
    return 0;
  switch (data[0] % 10) {
  case 4:
  case 5:
    ck_tcrc_init(&s, data[0] % 10 == 4 ? CK_DT_STRING : CK_DT_VARIANT, size > 1 ? data[1] : 0);
    for (size_t i = 2; i < size; i += 7)
      if (ck_tcrc_update(&s, data + i, size - i < 7 ? size - i : 7) != 0)
        return 0;
    ck_tcrc_final(&s, &crc);
    break;
  case 6: {
    int64_t start[CK_MAX_RANK], length[CK_MAX_RANK];
    uint8_t *name;
    size_t nlen;
    int rank;
    if (ck_slice_key_decode(data + 1, size - 1, CK_MAX_RANK, &name, &nlen, &rank, start, length) == 0)
      free(name);
    break;
  }
  case 7: {
    struct ck_ckptstate cs;
    if (ck_ckptstate_parse((const char *)data + 1, size - 1, "fuzz", &cs, NULL) == 0)
      ck_ckptstate_free(&cs);
    break;
  }
  case 8: {
    char out[64];
    ck_json_first_string((const char *)data + 1, size - 1, "dtypes", out, sizeof(out));
    break;
  }
  case 9: {
    struct ck_conf c;
    struct ck_err err = { 0 };
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    if (ck_conf_parse_string(text, "fuzz.ini", &c, &err) == 0)
      ck_conf_free(&c);
    free(text);
    break;
  }
  default:
    fuzz_index(data + 1, size - 1);
  }
  return 0;
}
