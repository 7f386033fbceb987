/* Small parsing helpers shared by the library, the tools and the daemon. */
#ifndef CK_UTIL_H
#define CK_UTIL_H

#include <stdint.h>

/* "64M", "10G", "1.5GiB", "4096" -> bytes (K, M, G, T are powers of 1024). 0 or -1. */
int ck_parse_size(const char *s, uint64_t *out);

/* Value of a hexadecimal digit, or -1. */
int ck_hexval(int c);

#endif
