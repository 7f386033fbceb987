/* Parsing helpers. */
#include "config.h"

#include <stdlib.h>

#include "util.h"

int ck_parse_size(const char *s, uint64_t *out)
{
  char *end;
  double v = strtod(s, &end), mul = 1;

  if (end == s || v < 0)
    return -1;
  switch (*end) {
  case 'k': case 'K': mul = 1024.0; end++; break;
  case 'm': case 'M': mul = 1048576.0; end++; break;
  case 'g': case 'G': mul = 1073741824.0; end++; break;
  case 't': case 'T': mul = 1099511627776.0; end++; break;
  default: break;
  }
  if (*end == 'i')
    end++;
  if (*end == 'B')
    end++;
  if (*end != 0 || v * mul > 1.8e19)
    return -1;
  *out = (uint64_t)(v * mul);
  return 0;
}

int ck_hexval(int c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}
