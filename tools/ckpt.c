/* ckpt: inspect and generate checkpoints.
 *   ckpt ls PATH [--format text|tsv|json]   list every tensor
 *   ckpt verify PATH                        verify every checksum
 *   ckpt synth PREFIX [options]             generate a checkpoint */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bundle.h"
#include "crc32c.h"
#include "dtype.h"
#include "error.h"
#include "synth.h"

#define EXIT_USAGE 2
#define VERIFY_BUF (256u << 10) /* pread + crc in L2-sized pieces: fastest measured */

static void usage(FILE *f)
{
  fprintf(f,
          "usage: ckpt COMMAND [options] ...\n"
          "\n"
          "Inspect and generate TensorFlow Saver (tensor bundle) checkpoints.\n"
          "\n"
          "commands:\n"
          "  ls PATH [--format text|tsv|json]\n"
          "      list every tensor: name, dtype, shape, bytes (and shard, offset, crc32c in tsv/json)\n"
          "  verify PATH [--threads N]\n"
          "      read every tensor and verify its crc32c (N threads, default: CPUs up to 4);\n"
          "      exit 1 on the first bad one\n"
          "  synth PREFIX [--size BYTES] [--tensors N] [--spread R] [--dtypes a,b] [--seed S]\n"
          "               [--shard-size BYTES]\n"
          "      write a synthetic checkpoint (sizes take K, M, G suffixes)\n"
          "\n"
          "PATH is a checkpoint prefix, its .index file, or a directory (its `checkpoint`\n"
          "file's latest, else its only *.index).\n");
}

static int parse_size(const char *s, uint64_t *out)
{
  char *end;
  double v = strtod(s, &end);
  uint64_t mul = 1;

  if (end == s || v < 0)
    return -1;
  switch (*end) {
  case 'k': case 'K': mul = 1ull << 10; end++; break;
  case 'm': case 'M': mul = 1ull << 20; end++; break;
  case 'g': case 'G': mul = 1ull << 30; end++; break;
  case 't': case 'T': mul = 1ull << 40; end++; break;
  default: break;
  }
  if (*end == 'i' || *end == 'B')
    end++;
  if (*end == 'B')
    end++;
  if (*end != 0)
    return -1;
  *out = (uint64_t)(v * (double)mul);
  return 0;
}

static void json_str(const uint8_t *s, size_t n)
{
  putchar('"');
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '"' || s[i] == '\\')
      printf("\\%c", s[i]);
    else if (s[i] < 0x20 || s[i] >= 0x7f)
      printf("\\u%04x", s[i]);
    else
      putchar(s[i]);
  }
  putchar('"');
}

static int cmd_ls(int argc, char **argv)
{
  static const struct option opts[] = { { "format", required_argument, NULL, 'f' },
                                        { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
  const char *format = "text";
  struct ck_bundle *b;
  struct ck_err err = { 0 };
  int c, first = 1;
  uint64_t total = 0;
  size_t shown = 0;

  while ((c = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
    if (c == 'f')
      format = optarg;
    else {
      usage(c == 'h' ? stdout : stderr);
      return c == 'h' ? 0 : EXIT_USAGE;
    }
  }
  if (optind + 1 != argc || (strcmp(format, "text") && strcmp(format, "tsv") && strcmp(format, "json"))) {
    usage(stderr);
    return EXIT_USAGE;
  }
  if (ck_bundle_open(argv[optind], CK_BUNDLE_INDEX_ONLY, &b, &err) != 0) {
    fprintf(stderr, "ckpt: %s\n", err.msg);
    return 1;
  }
  if (strcmp(format, "tsv") == 0)
    printf("name\tdtype\tshape\tbytes\tshard\toffset\tcrc32c\n");
  if (strcmp(format, "json") == 0)
    printf("{\"prefix\": \"%s\", \"num_shards\": %d, \"tensors\": [", ck_bundle_prefix(b), ck_bundle_num_shards(b));
  for (size_t i = 0; i < ck_bundle_count(b); i++) {
    const struct ck_entry *e = ck_bundle_entry(b, i);
    char shape[256], key[1024];
    if (e->is_slice)
      continue; /* shown as part of its partitioned variable */
    ck_entry_shape_str(e, shape, sizeof(shape));
    ck_entry_key_str(e, key, sizeof(key));
    total += ck_entry_tensor_bytes(e);
    shown++;
    if (strcmp(format, "text") == 0) {
      printf("%-60s %-12s %-20s %12" PRIu64 "%s\n", key, ck_dtype_name(e->dtype), shape, ck_entry_tensor_bytes(e),
             e->nslices ? " (partitioned)" : "");
    } else if (strcmp(format, "tsv") == 0) {
      printf("%s\t%s\t%s\t%" PRIu64 "\t%d\t%" PRIu64 "\t%08x\n", key, ck_dtype_name(e->dtype), shape,
             ck_entry_tensor_bytes(e), e->nslices ? -1 : e->shard, e->offset, e->crc32c);
    } else {
      printf("%s\n  {\"name\": ", first ? "" : ",");
      json_str(e->key, e->key_len);
      printf(", \"dtype\": \"%s\", \"shape\": [", ck_dtype_name(e->dtype));
      for (int d = 0; d < e->rank; d++)
        printf("%s%" PRId64, d ? ", " : "", e->dims[d]);
      printf("], \"bytes\": %" PRIu64 ", \"shard\": %d, \"offset\": %" PRIu64 ", \"crc32c\": %u, \"slices\": %zu}",
             ck_entry_tensor_bytes(e), e->shard, e->offset, e->crc32c, e->nslices);
      first = 0;
    }
  }
  if (strcmp(format, "json") == 0)
    printf("\n]}\n");
  else if (strcmp(format, "text") == 0)
    printf("%zu tensors, %" PRIu64 " bytes, %d shard(s)\n", shown, total, ck_bundle_num_shards(b));
  ck_bundle_close(b);
  return 0;
}

static double now(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmd_verify(int argc, char **argv)
{
  static const struct option opts[] = { { "threads", required_argument, NULL, 't' },
                                        { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
  struct ck_bundle *b;
  struct ck_err err = { 0 };
  uint64_t bytes = 0;
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  int threads = ncpu > 4 ? 4 : ncpu < 1 ? 1 : (int)ncpu, c, rc;
  double t0 = now(), dt;

  while ((c = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
    if (c == 't' && atoi(optarg) > 0) {
      threads = atoi(optarg);
    } else {
      usage(c == 'h' ? stdout : stderr);
      return c == 'h' ? 0 : EXIT_USAGE;
    }
  }
  if (optind + 1 != argc) {
    usage(stderr);
    return EXIT_USAGE;
  }
  if (ck_bundle_open(argv[optind], 0, &b, &err) != 0) {
    fprintf(stderr, "ckpt: %s\n", err.msg);
    return 1;
  }
  for (size_t i = 0; i < ck_bundle_data_count(b); i++)
    bytes += ck_bundle_data_entry(b, i)->size;
  if ((rc = ck_bundle_verify_all(b, threads, VERIFY_BUF, &err)) != 0)
    fprintf(stderr, "ckpt: %s\n", err.msg);
  dt = now() - t0;
  if (rc == 0)
    printf("%s: %zu entries, %" PRIu64 " bytes verified in %.3f s (%.1f MB/s, %d thread(s), crc32c %s)\n",
           ck_bundle_prefix(b), ck_bundle_data_count(b), bytes, dt, dt > 0 ? (double)bytes / dt / 1e6 : 0.0,
           threads, ck_crc32c_impl());
  ck_bundle_close(b);
  return rc == 0 ? 0 : 1;
}

static int parse_dtypes(char *list, int *out, int max)
{
  int n = 0;

  for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
    int dt = ck_dtype_parse(tok);
    if (dt < 0 || dt == CK_DT_VARIANT || !ck_dtype_storable(dt) || n == max)
      return -1;
    out[n++] = dt;
  }
  return n;
}

static int cmd_synth(int argc, char **argv)
{
  static const struct option opts[] = {
    { "size", required_argument, NULL, 's' }, { "tensors", required_argument, NULL, 'n' },
    { "spread", required_argument, NULL, 'r' }, { "dtypes", required_argument, NULL, 'd' },
    { "seed", required_argument, NULL, 'S' }, { "shard-size", required_argument, NULL, 'z' },
    { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 }
  };
  struct ck_synth_opts o = { .total_bytes = 1u << 20, .tensors = 16, .spread = 100, .seed = 1 };
  struct ck_err err = { 0 };
  int dtypes[64], c;

  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 's':
      if (parse_size(optarg, &o.total_bytes) != 0)
        goto bad;
      break;
    case 'z':
      if (parse_size(optarg, &o.max_shard_bytes) != 0)
        goto bad;
      break;
    case 'n': o.tensors = (unsigned)strtoul(optarg, NULL, 10); break;
    case 'r': o.spread = strtod(optarg, NULL); break;
    case 'S': o.seed = strtoull(optarg, NULL, 10); break;
    case 'd':
      if ((o.ndtypes = parse_dtypes(optarg, dtypes, 64)) <= 0) {
        fprintf(stderr, "ckpt synth: bad --dtypes list\n");
        return EXIT_USAGE;
      }
      o.dtypes = dtypes;
      break;
    case 'h': usage(stdout); return 0;
    default: goto bad;
    }
  }
  if (optind + 1 != argc || o.tensors == 0)
    goto bad;
  if (ck_synth_tf(argv[optind], &o, &err) != 0) {
    fprintf(stderr, "ckpt synth: %s\n", err.msg);
    return 1;
  }
  return 0;
bad:
  usage(stderr);
  return EXIT_USAGE;
}

int main(int argc, char **argv)
{
  if (argc < 2) {
    usage(stderr);
    return EXIT_USAGE;
  }
  if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("ckpt (ckptd) %s\n", PACKAGE_VERSION);
    return 0;
  }
  if (strcmp(argv[1], "ls") == 0)
    return cmd_ls(argc - 1, argv + 1);
  if (strcmp(argv[1], "verify") == 0)
    return cmd_verify(argc - 1, argv + 1);
  if (strcmp(argv[1], "synth") == 0)
    return cmd_synth(argc - 1, argv + 1);
  fprintf(stderr, "ckpt: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return EXIT_USAGE;
}
