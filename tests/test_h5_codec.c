/* The HDF5 chunk codecs (h5_codec.c), the work queue (workq.c) and the chunk ring's
 * budget (h5_chunk.c). Interoperability with libhdf5's, hdf5plugin's and the zstd
 * tool's encodings is tests/h5_chunks.py; this is round trips, the exact LZ4
 * framing, and decoding of damaged chunks (every truncation, byte flips) under the
 * sanitizers. */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "h5_chunk.h"
#include "h5_codec.h"
#include "tap.h"
#include "testutil.h"
#include "workq.h"

static uint64_t rng = 88172645463325252ull;

/* bytes like bf16 weights: small exponents, random mantissas */
static void fill_weights(uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    p[i] = i % 2 ? (uint8_t)(0x3c + tu_xorshift(&rng) % 3) : (uint8_t)tu_xorshift(&rng);
}

static void fill_random(uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)tu_xorshift(&rng);
}

static void test_shuffle(void)
{
  static const size_t sizes[] = { 0, 1, 7, 8, 9, 1000, 1003 };
  static const size_t esizes[] = { 1, 2, 4, 8, 16 };
  uint8_t src[1003], sh[1003], back[1003];
  int good = 1, ref = 1;

  fill_random(src, sizeof(src));
  for (size_t a = 0; a < sizeof(sizes) / sizeof(sizes[0]); a++)
    for (size_t b = 0; b < sizeof(esizes) / sizeof(esizes[0]); b++) {
      size_t n = sizes[a], e = esizes[b], count = n / e;
      ck_h5_shuffle(src, sh, n, e);
      /* HDF5's definition: byte j of element i goes to j * count + i; the tail stays */
      for (size_t i = 0; count > 1 && i < count; i++)
        for (size_t j = 0; j < e; j++)
          ref &= sh[j * count + i] == src[i * e + j];
      ref &= memcmp(sh + count * e, src + count * e, n - count * e) == 0;
      ck_h5_unshuffle(sh, back, n, e);
      good &= memcmp(back, src, n) == 0;
    }
  ok(ref, "shuffle puts byte j of element i at j * count + i, the tail unchanged");
  ok(good, "unshuffle inverts shuffle for every size and element size");
}

static int roundtrip(struct ck_h5_codec_ctx *x, const struct ck_h5_codec *c, const uint8_t *src, size_t n,
                     size_t *zlen)
{
  size_t cap = ck_h5_codec_bound(c, n);
  uint8_t *z = malloc(cap), *scratch = malloc(n + 1), *out = malloc(n + 1);
  const char *why;
  int good = z && scratch && out && ck_h5_codec_encode(x, c, src, n, scratch, z, cap, zlen) == 0 &&
             *zlen <= cap && ck_h5_codec_decode(x, c, 0, z, *zlen, scratch, out, n, &why) == 0 &&
             memcmp(out, src, n) == 0;

  free(z);
  free(scratch);
  free(out);
  return good;
}

static void test_roundtrips(void)
{
  struct ck_h5_codec_ctx *x = ck_h5_codec_ctx_new();
  static const size_t sizes[] = { 1, 100, 4096, 1u << 20, (1u << 20) + 3 };
  uint8_t *w = malloc((1u << 20) + 3), *r = malloc((1u << 20) + 3);
  struct ck_h5_codec cs[] = {
    { .shuffle = 1, .shuffle_pos = 0, .codec = CK_H5F_DEFLATE, .codec_pos = 1, .level = 1, .esize = 2 },
    { .shuffle = 1, .shuffle_pos = 0, .codec = CK_H5F_DEFLATE, .codec_pos = 1, .level = 9, .esize = 4 },
    { .codec = CK_H5F_DEFLATE, .level = 6 },
    { .codec = CK_H5F_LZ4 },
    { .codec = CK_H5F_LZ4, .lz4_block = 1000 },
    { .shuffle = 1, .codec = CK_H5F_LZ4, .codec_pos = 1, .esize = 2 },
    { .codec = CK_H5F_ZSTD, .level = 3 },
    { .shuffle = 1, .codec = CK_H5F_ZSTD, .codec_pos = 1, .level = 19, .esize = 8 },
    { .shuffle = 1, .esize = 4 },
  };

  fill_weights(w, (1u << 20) + 3);
  fill_random(r, (1u << 20) + 3);
  for (size_t i = 0; i < sizeof(cs) / sizeof(cs[0]); i++) {
    int good = 1;
    size_t zw = 0, zr = 0;
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
      good &= roundtrip(x, &cs[i], w, sizes[s], &zw) && roundtrip(x, &cs[i], r, sizes[s], &zr);
    ok(good, "pipeline %zu (shuffle %d, codec %u, block %u): round trips of 1 B to 1 MiB + 3, weights and random"
       " (1 MiB: weights %zu bytes, random %zu)", i, cs[i].shuffle, cs[i].codec, cs[i].lz4_block, zw, zr);
    if (cs[i].codec && (cs[i].shuffle || cs[i].codec != CK_H5F_LZ4)) /* (LZ4 finds no repeats in unshuffled floats) */
      ok(zw < (1u << 20) + 3, "  weights compress (%zu of %u bytes)", zw, (1u << 20) + 3);
  }
  free(w);
  free(r);
  ck_h5_codec_ctx_free(x);
}

static uint64_t be(const uint8_t *p, int n)
{
  uint64_t v = 0;

  for (int i = 0; i < n; i++)
    v = v << 8 | p[i];
  return v;
}

static void test_lz4_framing(void)
{
  struct ck_h5_codec_ctx *x = ck_h5_codec_ctx_new();
  struct ck_h5_codec c = { .codec = CK_H5F_LZ4, .lz4_block = 3000 };
  uint8_t src[10000], z[20000];
  size_t zlen = 0, pos = 12, blocks = 0, stored = 1;

  fill_random(src, sizeof(src));
  ok(ck_h5_codec_encode(x, &c, src, sizeof(src), NULL, z, sizeof(z), &zlen) == 0, "lz4 encodes random bytes");
  ok(be(z, 8) == sizeof(src) && be(z + 8, 4) == 3000, "header: big-endian decoded size, then the block size");
  while (pos + 4 <= zlen) {
    size_t want = sizeof(src) - blocks * 3000 < 3000 ? sizeof(src) - blocks * 3000 : 3000;
    stored &= be(z + pos, 4) == want && memcmp(z + pos + 4, src + blocks * 3000, want) == 0;
    pos += 4 + be(z + pos, 4);
    blocks++;
  }
  ok(blocks == 4 && pos == zlen && stored,
     "incompressible blocks are stored as they are, each after its big-endian size (%zu blocks)", blocks);
  ck_h5_codec_ctx_free(x);
}

/* Every truncation and 2,000 random byte flips of encoded chunks: decoding fails with a
 * reason or produces exactly the chunk's size, never reads or writes outside (ASan). */
static void test_damage(void)
{
  struct ck_h5_codec_ctx *x = ck_h5_codec_ctx_new();
  struct ck_h5_codec cs[] = {
    { .shuffle = 1, .codec = CK_H5F_DEFLATE, .codec_pos = 1, .level = 6, .esize = 4 },
    { .codec = CK_H5F_LZ4, .lz4_block = 700 },
    { .codec = CK_H5F_ZSTD, .level = 3 },
  };
  enum { N = 4096 };
  uint8_t src[N], z[2 * N], bad[2 * N], scratch[N], out[N];

  fill_weights(src, N);
  for (size_t i = 0; i < sizeof(cs) / sizeof(cs[0]); i++) {
    size_t zlen = 0;
    int errs = 0, wrong = 0, noreason = 0;
    const char *why;
    ck_h5_codec_encode(x, &cs[i], src, N, scratch, z, sizeof(z), &zlen);
    for (size_t cut = 0; cut < zlen; cut++) {
      uint8_t *t = malloc(cut ? cut : 1); /* exactly cut bytes: ASan sees any over-read */
      memcpy(t, z, cut);
      int rc = ck_h5_codec_decode(x, &cs[i], 0, t, cut, scratch, out, N, &why);
      errs += rc != 0;
      noreason += rc != 0 && why == NULL;
      free(t);
    }
    ok(errs == (int)zlen && !noreason, "codec %u: all %zu truncations refused, each with a reason", cs[i].codec, zlen);
    errs = 0;
    for (int k = 0; k < 2000; k++) {
      memcpy(bad, z, zlen);
      for (int f = 0; f < 3; f++)
        bad[tu_xorshift(&rng) % zlen] ^= (uint8_t)(1 + tu_xorshift(&rng) % 255);
      int rc = ck_h5_codec_decode(x, &cs[i], 0, bad, zlen, scratch, out, N, &why);
      errs += rc != 0;
      noreason += rc != 0 && why == NULL;
      wrong += rc == 0 && memcmp(out, src, N) != 0 && cs[i].codec == CK_H5F_DEFLATE;
    }
    ok(!noreason, "codec %u: 2,000 damaged chunks decode within bounds or are refused with a reason (%d refused)",
       cs[i].codec, errs);
    if (cs[i].codec == CK_H5F_DEFLATE)
      ok(wrong == 0, "deflate: zlib's Adler-32 catches every damaged chunk that still decodes");
  }
  /* a chunk the writer left unfiltered (mask bit set) must be exactly the chunk's size */
  {
    const char *why;
    ok(ck_h5_codec_decode(x, &cs[1], 1u << 0, src, N, scratch, out, N, &why) == 0 && memcmp(out, src, N) == 0,
       "a chunk whose codec the writer skipped (filter mask) is taken as stored");
    int rc = ck_h5_codec_decode(x, &cs[1], 1u << 0, src, N - 1, scratch, out, N, &why);
    ok(rc == CK_EFORMAT && why, "and refused when its size is not the chunk's: %s", why ? why : "");
  }
  ck_h5_codec_ctx_free(x);
}

struct sq_job {
  struct ck_workq_job job;
  uint64_t in, out;
  void *seen_ctx;
};

static void sq_run(struct ck_workq_job *j, void *tctx)
{
  struct sq_job *s = (struct sq_job *)j;

  s->out = s->in * s->in;
  s->seen_ctx = tctx;
}

static int ctx_made;
static void *ctx_new(void) { ctx_made++; return malloc(1); }

static void test_workq(void)
{
  for (int threads = 0; threads <= 3; threads++) {
    struct ck_workq *q;
    struct sq_job jobs[8];
    uint64_t next = 0, done = 0;
    int good = 1, rc;
    ctx_made = 0;
    rc = ck_workq_start(&q, threads, ctx_new, free);
    /* a ring of 8 jobs in flight, consumed oldest first, 5,000 in all */
    while (rc == 0 && done < 5000) {
      while (next < 5000 && next - done < 8) {
        struct sq_job *j = &jobs[next % 8];
        j->job.fn = sq_run;
        j->in = next++;
        ck_workq_push(q, &j->job);
      }
      ck_workq_wait(q, &jobs[done % 8].job);
      good &= jobs[done % 8].out == done * done && jobs[done % 8].seen_ctx != NULL;
      done++;
    }
    ck_workq_stop(q);
    ok(rc == 0 && good && done == 5000 && ctx_made == (threads ? threads : 1),
       "workq with %d thread(s): 5,000 jobs, results in order, one context per thread (%d)", threads, ctx_made);
  }
}

static void test_ring_budget(void)
{
  struct ck_h5_ring r;
  struct ck_h5_codec c = { .shuffle = 1, .codec = CK_H5F_DEFLATE, .codec_pos = 1, .level = 6, .esize = 4 };
  size_t per = (1u << 20) + ck_h5_codec_bound(&c, 1u << 20) + (1u << 20);

  ok(ck_h5_ring_init(&r, 2, 64u << 20) == 0 && ck_h5_ring_reserve(&r, &c, 1u << 20, 0) == 0 && r.active == 4,
     "64 MiB for 1 MiB chunks and 2 threads: 4 slots (one per worker, one filling, one writing)");
  ck_h5_ring_free(&r);
  ok(ck_h5_ring_init(&r, 2, 2 * per) == 0 && ck_h5_ring_reserve(&r, &c, 1u << 20, 0) == 0 && r.active == 2,
     "a budget of two slots' buffers: 2 slots");
  ck_h5_ring_free(&r);
  ok(ck_h5_ring_init(&r, 2, per - 1) == 0 && ck_h5_ring_reserve(&r, &c, 1u << 20, 0) == CK_ELIMIT &&
     r.data_cap == 0, "a budget below one slot: CK_ELIMIT, nothing allocated");
  ok(ck_h5_ring_reserve(&r, &c, 1u << 20, 1) == 0 && r.active == 1, "unless asked for at least one slot");
  ok(ck_h5_ring_reserve(&r, &c, 4096, 0) == 0 && r.active == 4 && r.data_cap == 4096,
     "a later small chunk gets all its slots again (the big buffers are given back)");
  ck_h5_ring_free(&r);
}

int main(void)
{
  test_shuffle();
  test_roundtrips();
  test_lz4_framing();
  test_damage();
  test_workq();
  test_ring_budget();
  return tap_done();
}
