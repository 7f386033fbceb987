/* CRC-32 (the zip one) throughput in memory: zlib's crc32() against libdeflate's
 * libdeflate_crc32() over the same 256 MiB buffer in the same run, best of ROUNDS, and
 * a check that both give the same value. Decides which library the torch writer uses. */
#include "config.h"

#include <libdeflate.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <zlib.h>

#define SIZE (256u << 20)
#define ROUNDS 5
#define CHUNK (1u << 30) /* zlib takes a uInt length: hand it the buffer in chunks */

static double now(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

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

static double best_gbps(uint32_t (*fn)(const uint8_t *, size_t), const uint8_t *buf, uint32_t *crc)
{
  double best = 0;

  for (int r = 0; r < ROUNDS; r++) {
    double t0 = now(), dt;
    *crc = fn(buf, SIZE);
    dt = now() - t0;
    if ((double)SIZE / dt / 1e9 > best)
      best = (double)SIZE / dt / 1e9;
  }
  return best;
}

int main(void)
{
  uint8_t *buf = malloc(SIZE);
  uint32_t cz, cd;
  double z, d;

  if (buf == NULL)
    return 1;
  for (size_t i = 0; i < SIZE; i++)
    buf[i] = (uint8_t)(i * 2654435761u >> 13);
  z = best_gbps(crc_zlib, buf, &cz);
  d = best_gbps(crc_deflate, buf, &cd);
  printf("zlib %s crc32()             %6.2f GB/s  crc %08x\n", zlibVersion(), z, (unsigned)cz);
  printf("libdeflate %s libdeflate_crc32() %6.2f GB/s  crc %08x  %.2fx zlib\n", LIBDEFLATE_VERSION_STRING, d,
         (unsigned)cd, d / z);
  free(buf);
  return cz == cd ? 0 : 1;
}
