/* CRC-32 (the zip one) throughput in memory: zlib's crc32() against libdeflate's
 * libdeflate_crc32() over the same 256 MiB buffer in the same run, best of ROUNDS, and
 * a check that both give the same value. Decides which library the torch writer uses. */
#include "config.h"

#include <libdeflate.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#include "bench_mem.h"

#define SIZE (256u << 20)
#define ROUNDS 5
#define CHUNK (1u << 30) /* zlib takes a uInt length: hand it the buffer in chunks */

static uint32_t crc_zlib(const uint8_t *buf, size_t len)
{
  uLong c = crc32(0L, Z_NULL, 0);

  for (size_t off = 0; off < len; off += CHUNK)
    c = crc32(c, buf + off, (uInt)(len - off < CHUNK ? len - off : CHUNK));
  return (uint32_t)c;
}

static uint32_t crc_deflate(const uint8_t *buf, size_t len)
{
  return libdeflate_crc32(0, buf, len);
}

int main(void)
{
  uint8_t *buf = malloc(SIZE);
  uint32_t cz, cd;
  double z, d;

  if (buf == NULL)
    return 1;
  bench_fill(buf, SIZE);
  z = bench_best_gbps(crc_zlib, buf, SIZE, ROUNDS, &cz);
  d = bench_best_gbps(crc_deflate, buf, SIZE, ROUNDS, &cd);
  printf("zlib %s crc32()             %6.2f GB/s  crc %08x\n", zlibVersion(), z, (unsigned)cz);
  printf("libdeflate %s libdeflate_crc32() %6.2f GB/s  crc %08x  %.2fx zlib\n", LIBDEFLATE_VERSION_STRING, d,
         (unsigned)cd, d / z);
  free(buf);
  return cz == cd ? 0 : 1;
}
