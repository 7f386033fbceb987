/* crc32c: slicing-by-8 tables for the portable path, the SSE4.2 crc32
 * instruction where cpuid reports it. The choice is made once, at first use. */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"

#define POLY 0x82f63b78u /* Castagnoli, reflected */

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_init(void)
{
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++)
      c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
    table[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++)
    for (int t = 1; t < 8; t++)
      table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
}

static inline uint64_t load64(const uint8_t *p)
{
  uint64_t v;
  memcpy(&v, p, sizeof(v)); /* little-endian hosts only, see configure */
  return v;
}

uint32_t ck_crc32c_extend_sw(uint32_t crc, const void *buf, size_t len)
{
  const uint8_t *p = buf;
  uint32_t c = ~crc;

  pthread_once(&table_once, table_init);
  while (len > 0 && ((uintptr_t)p & 7) != 0) {
    c = (c >> 8) ^ table[0][(c ^ *p++) & 0xff];
    len--;
  }
  while (len >= 8) {
    uint64_t w = load64(p) ^ c;
    c = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^
        table[5][(w >> 16) & 0xff] ^ table[4][(w >> 24) & 0xff] ^
        table[3][(w >> 32) & 0xff] ^ table[2][(w >> 40) & 0xff] ^
        table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
    p += 8;
    len -= 8;
  }
  while (len-- > 0)
    c = (c >> 8) ^ table[0][(c ^ *p++) & 0xff];
  return ~c;
}

/* ---- combining independent streams ----
 * The crc register is linear: running data B from state s gives
 * shift(s, |B|) ^ crc_from_zero(B), where shift(s, n) runs n zero bytes through
 * the register. With shift tables for fixed block lengths, three blocks can be
 * checksummed as independent streams (the crc32 instruction has a latency of 3
 * and a throughput of 1) and joined afterwards. */
#define LONG_BLOCK 8192
#define SHORT_BLOCK 256

static uint32_t long_shift[4][256];
static uint32_t short_shift[4][256];
static pthread_once_t shift_once = PTHREAD_ONCE_INIT;

static uint32_t gf2_times(const uint32_t *mat, uint32_t vec)
{
  uint32_t sum = 0;

  for (; vec; vec >>= 1, mat++)
    if (vec & 1)
      sum ^= *mat;
  return sum;
}

static void gf2_square(uint32_t *sq, const uint32_t *mat)
{
  for (int n = 0; n < 32; n++)
    sq[n] = gf2_times(mat, mat[n]);
}

/* Operator for appending len zero bytes (len a power of two, >= 1). */
static void zeros_operator(uint32_t *op, size_t len)
{
  uint32_t a[32], b[32];
  size_t bits = 8 * len;

  a[0] = POLY; /* one zero bit, reflected */
  for (int n = 1; n < 32; n++)
    a[n] = 1u << (n - 1);
  for (size_t k = 1; k < bits; k *= 2) {
    gf2_square(b, a);
    memcpy(a, b, sizeof(a));
  }
  memcpy(op, a, sizeof(a));
}

static void shift_table(uint32_t tab[4][256], size_t len)
{
  uint32_t op[32];

  zeros_operator(op, len);
  for (uint32_t v = 0; v < 256; v++)
    for (int k = 0; k < 4; k++)
      tab[k][v] = gf2_times(op, v << (8 * k));
}

static void shift_init(void)
{
  shift_table(long_shift, LONG_BLOCK);
  shift_table(short_shift, SHORT_BLOCK);
}

static inline uint32_t shift(uint32_t tab[4][256], uint32_t crc)
{
  return tab[0][crc & 0xff] ^ tab[1][(crc >> 8) & 0xff] ^ tab[2][(crc >> 16) & 0xff] ^ tab[3][crc >> 24];
}

#if defined(__x86_64__)
#include <nmmintrin.h>

__attribute__((target("sse4.2")))
static uint64_t three_way(uint64_t c0, const uint8_t **pp, size_t *lenp, size_t block, uint32_t tab[4][256])
{
  const uint8_t *p = *pp;
  size_t len = *lenp;

  while (len >= 3 * block) {
    uint64_t c1 = 0, c2 = 0;
    const uint8_t *end = p + block;
    do {
      c0 = _mm_crc32_u64(c0, load64(p));
      c1 = _mm_crc32_u64(c1, load64(p + block));
      c2 = _mm_crc32_u64(c2, load64(p + 2 * block));
      p += 8;
    } while (p < end);
    c0 = shift(tab, (uint32_t)c0) ^ (uint32_t)c1;
    c0 = shift(tab, (uint32_t)c0) ^ (uint32_t)c2;
    p += 2 * block;
    len -= 3 * block;
  }
  *pp = p;
  *lenp = len;
  return c0;
}

__attribute__((target("sse4.2")))
static uint32_t crc32c_sse42(uint32_t crc, const void *buf, size_t len)
{
  const uint8_t *p = buf;
  uint64_t c = ~crc;

  while (len > 0 && ((uintptr_t)p & 7) != 0) {
    c = _mm_crc32_u8((uint32_t)c, *p++);
    len--;
  }
  if (len >= 3 * SHORT_BLOCK) {
    pthread_once(&shift_once, shift_init);
    c = three_way(c, &p, &len, LONG_BLOCK, long_shift);
    c = three_way(c, &p, &len, SHORT_BLOCK, short_shift);
  }
  while (len >= 8) {
    c = _mm_crc32_u64(c, load64(p));
    p += 8;
    len -= 8;
  }
  while (len-- > 0)
    c = _mm_crc32_u8((uint32_t)c, *p++);
  return ~(uint32_t)c;
}

static int cpu_has_sse42(void)
{
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2");
}
#else
static uint32_t crc32c_sse42(uint32_t crc, const void *buf, size_t len)
{
  return ck_crc32c_extend_sw(crc, buf, len);
}

static int cpu_has_sse42(void)
{
  return 0;
}
#endif

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

static crc_fn chosen;
static const char *chosen_name;
static pthread_once_t choose_once = PTHREAD_ONCE_INIT;

static void choose(void)
{
  const char *force = getenv("CKPTD_CRC32C");

  if (cpu_has_sse42() && !(force && strcmp(force, "portable") == 0)) {
    chosen = crc32c_sse42;
    chosen_name = "sse4.2";
  } else {
    chosen = ck_crc32c_extend_sw;
    chosen_name = "portable";
  }
}

uint32_t ck_crc32c_extend_hw(uint32_t crc, const void *buf, size_t len)
{
  if (cpu_has_sse42())
    return crc32c_sse42(crc, buf, len);
  return ck_crc32c_extend_sw(crc, buf, len);
}

uint32_t ck_crc32c_extend(uint32_t crc, const void *buf, size_t len)
{
  pthread_once(&choose_once, choose);
  return chosen(crc, buf, len);
}

const char *ck_crc32c_impl(void)
{
  pthread_once(&choose_once, choose);
  return chosen_name;
}
