/* What the in-memory throughput benchmarks (bench_crc32c, bench_crc32) share: a
 * buffer filled the same way, and the best of several timed passes of a function over
 * it, in GB/s. Header-only: each benchmark is its own small program. */
#ifndef CK_BENCH_MEM_H
#define CK_BENCH_MEM_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

static double bench_now(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The same bytes every run, not all alike (no run-length shortcut). */
static void bench_fill(uint8_t *buf, size_t size)
{
  for (size_t i = 0; i < size; i++)
    buf[i] = (uint8_t)(i * 2654435761u >> 13);
}

static volatile uint32_t bench_sink; /* every pass's value is kept: no pass is optimized away */

/* Best of rounds passes of fn over buf, in GB/s; *result gets fn's value. */
static double bench_best_gbps(uint32_t (*fn)(const uint8_t *, size_t), const uint8_t *buf, size_t size, int rounds,
                              uint32_t *result)
{
  double best = 0;

  for (int r = 0; r < rounds; r++) {
    double t0 = bench_now(), dt;
    bench_sink = *result = fn(buf, size);
    dt = bench_now() - t0;
    if ((double)size / dt / 1e9 > best)
      best = (double)size / dt / 1e9;
  }
  return best;
}

#endif
