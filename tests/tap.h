/* Minimal TAP producer for the test programs (automake's tap-driver counts each line). */
#ifndef CK_TAP_H
#define CK_TAP_H

/* Test paths are built in fixed buffers sized well above real paths. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#include <stdarg.h>
#include <stdio.h>

static int tap_count;
static int tap_failed;

__attribute__((format(printf, 4, 5), unused))
static int tap_ok(int cond, const char *file, int line, const char *fmt, ...)
{
  va_list ap;

  printf("%s %d - ", cond ? "ok" : "not ok", ++tap_count);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
  if (!cond) {
    printf("#   failed at %s:%d\n", file, line);
    tap_failed++;
  }
  fflush(stdout);
  return cond;
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

__attribute__((format(printf, 1, 2), unused))
static void tap_skip(const char *fmt, ...)
{
  va_list ap;

  printf("ok %d - # SKIP ", ++tap_count);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
}

__attribute__((unused))
static int tap_done(void)
{
  printf("1..%d\n", tap_count);
  return 0; /* failures are reported per line */
}

#endif
