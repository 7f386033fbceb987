/* crc32c throughput in memory: the SSE4.2 and portable paths over a 256 MiB buffer,
 * against a plain read of the same memory (a 64-bit xor sweep) as the baseline. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_mem.h"
#include "crc32c.h"

#define SIZE (256u << 20)
#define ROUNDS 4

/* The baseline: every byte read once, 8 at a time, as cheaply as a loop can. */
static uint32_t xor_sweep(const uint8_t *buf, size_t size)
{
  uint64_t x = 0, v;

  for (size_t i = 0; i < size; i += 8) {
    memcpy(&v, buf + i, 8);
    x ^= v;
  }
  return (uint32_t)(x ^ x >> 32);
}

static uint32_t crc_hw(const uint8_t *buf, size_t size)
{
  return ck_crc32c_extend_hw(0, buf, size);
}

static uint32_t crc_sw(const uint8_t *buf, size_t size)
{
  return ck_crc32c_extend_sw(0, buf, size);
}

int main(void)
{
  uint8_t *buf = malloc(SIZE);
  double base, hw, sw;
  uint32_t crc;

  bench_fill(buf, SIZE);
  base = bench_best_gbps(xor_sweep, buf, SIZE, ROUNDS, &crc);
  hw = bench_best_gbps(crc_hw, buf, SIZE, ROUNDS, &crc);
  sw = bench_best_gbps(crc_sw, buf, SIZE, ROUNDS, &crc);
  printf("memory read (xor sweep)  %6.2f GB/s  1.00x\n", base);
  printf("crc32c sse4.2            %6.2f GB/s  %.2fx\n", hw, hw / base);
  printf("crc32c portable          %6.2f GB/s  %.2fx\n", sw, sw / base);
  printf("CRC_HW_GBPS=%.3f CRC_SW_GBPS=%.3f MEM_GBPS=%.3f\n", hw, sw, base);
  free(buf);
  return 0;
}
