/* The daemon's pure decisions, from tables: real producers' temporary names (never
 * converted) and real checkpoint names (always considered), classification, output
 * names, backoff, failure classes, global steps and the "latest" order. */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../daemon/decide.h"
#include "error.h"
#include "tap.h"

static void temp_files(void)
{
  static const char *temps[] = {
    "model.ckpt-100.data-00000-of-00001.tempstate4096312", /* TF SaveV2 */
    "model.ckpt-100.index.tempstate15",
    "checkpoint.tmp6c1d0b5e9f2a4c3b8d7e6f5a4b3c2d1e",       /* TF atomic_write_string_to_file */
    "weights.h5.tmp",                                      /* writers that rename into place */
    "model.h5.part",                                       /* partial transfers */
    "ckpt_100.orbax-checkpoint-tmp-1700000000123456",      /* Orbax */
    "model.h5~", ".model.h5.swp", "model.h5.swp", ".#model.h5", "#model.h5#", /* editors */
    ".nfs000000000123456700000001",                        /* NFS silly rename */
    ".model.ckpt-1.h5.ckptd-tmp.0123abcd-1234.0",          /* ckptd's own */
    ".model.h5.Xy12Ab",                                    /* rsync */
  };
  static const char *real[] = {
    "model_temperature.ckpt-5.index", /* '_temp' inside a name */
    "model.ckpt-100.index", "model.ckpt-100.data-00000-of-00001", "weights.h5", "my.tmpl.h5",
    "temp.h5", "tmp.ckpt-1.index", "run.tempstate.h5", "checkpoint", "model.tmpx.h5",
  };

  for (size_t i = 0; i < sizeof(temps) / sizeof(temps[0]); i++)
    ok(ck_decide_temp_file(temps[i]), "temporary: %s", temps[i]);
  for (size_t i = 0; i < sizeof(real) / sizeof(real[0]); i++)
    ok(!ck_decide_temp_file(real[i]), "not a temporary: %s", real[i]);
}

static void temp_dirs(void)
{
  static const char *temps[] = {
    "model.ckpt-100_temp",                                  /* TF2 sharded save */
    "ckpt-7_temp_0123456789abcdef0123456789abcdef",         /* older TF2: _temp_<uuid hex> */
    "checkpoint_500.orbax-checkpoint-tmp-1699999999",       /* Orbax */
    "staging.tmp", ".hidden", ".git",
  };
  static const char *real[] = {
    "model_temperature", "run_temp_3", "temp", "templates", "run42", "ckpt-7_temp_xyz",
    "checkpoints", "tmp",
  };

  for (size_t i = 0; i < sizeof(temps) / sizeof(temps[0]); i++)
    ok(ck_decide_temp_dir(temps[i]), "directory never entered: %s", temps[i]);
  for (size_t i = 0; i < sizeof(real) / sizeof(real[0]); i++)
    ok(!ck_decide_temp_dir(real[i]), "directory entered: %s", real[i]);
}

static void classify(void)
{
  static const struct {
    const char *path;
    int kind;
    const char *key;
  } t[] = {
    { "/m/run/model.ckpt-100.index", CK_KIND_SAVER, "/m/run/model.ckpt-100" },
    { "/m/run/model.ckpt-100.data-00003-of-00008", CK_KIND_SAVER, "/m/run/model.ckpt-100" },
    { "/m/run/model_temperature.ckpt-5.index", CK_KIND_SAVER, "/m/run/model_temperature.ckpt-5" },
    { "/m/w.h5", CK_KIND_H5, "/m/w.h5" },
    { "/m/w.hdf5", CK_KIND_H5, "/m/w.hdf5" },
    { "/m/cs/checkpoint_100.mdl", CK_KIND_H5, "/m/cs/checkpoint_100.mdl" },      /* Cerebras: HDF5 as .mdl */
    { "/m/pt/model-300.pt", CK_KIND_TORCH, "/m/pt/model-300.pt" },
    { "/m/pt/model.pth", CK_KIND_TORCH, "/m/pt/model.pth" },
    { "/m/hf/pytorch_model.bin", CK_KIND_TORCH, "/m/hf/pytorch_model.bin" },
    { "/m/hf/model.safetensors", CK_KIND_SAFETENSORS, "/m/hf/model.safetensors" },
    { "/m/hf/model-00001-of-00002.safetensors", CK_KIND_SAFETENSORS, "/m/hf/model-00001-of-00002.safetensors" },
    { "/m/run/model.ckpt-100.data-0003-of-00008", CK_KIND_NONE, NULL },
    { "/m/run/model.ckpt-100.data-00003-of-0000x", CK_KIND_NONE, NULL },
    { "/m/run/.data-00000-of-00001", CK_KIND_NONE, NULL },
    { "/m/run/.index", CK_KIND_NONE, NULL },
    { "/m/run/checkpoint", CK_KIND_NONE, NULL },
    { "/m/run/model.ckpt-100.index.tempstate1", CK_KIND_NONE, NULL },
    { "/m/run/events.out.tfevents.1700000000.host", CK_KIND_NONE, NULL },
    { "/m/x.h5.tmp", CK_KIND_NONE, NULL },
    { "/m/.model.safetensors", CK_KIND_NONE, NULL },       /* hidden: a writer's temporary */
    { "/m/model.pt.tmp", CK_KIND_NONE, NULL },
    { "/m/model.safetensors.part", CK_KIND_NONE, NULL },
    { "/m/.pt", CK_KIND_NONE, NULL },
    { "/m/safetensors", CK_KIND_NONE, NULL },
    { "/m/model.mdl.json", CK_KIND_NONE, NULL },
    { "/m/model.ptx", CK_KIND_NONE, NULL },
  };

  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    char *key = NULL;
    int kind = ck_decide_classify(t[i].path, &key);
    ok(kind == t[i].kind && (t[i].key ? key && strcmp(key, t[i].key) == 0 : key == NULL),
       "classify %s -> kind %d key %s", t[i].path, kind, key ? key : "-");
    free(key);
  }
}

/* Output names for every pair; the file standing for the output. */
static void outputs(void)
{
  enum { S = CK_KIND_SAVER, H = CK_KIND_H5, T = CK_KIND_TORCH, F = CK_KIND_SAFETENSORS };
  static const struct {
    const char *key;
    int from, to;
    const char *output, *file;
  } t[] = {
    { "/m/run/model.ckpt-100", S, H, "/m/run/model.ckpt-100.h5", "/m/run/model.ckpt-100.h5" },
    { "/m/run/model.ckpt-100", S, T, "/m/run/model.ckpt-100.pt", "/m/run/model.ckpt-100.pt" },
    { "/m/run/model.ckpt-100", S, F, "/m/run/model.ckpt-100.safetensors", "/m/run/model.ckpt-100.safetensors" },
    { "/m/w.h5", H, S, "/m/w", "/m/w.index" },
    { "/m/w.hdf5", H, S, "/m/w", "/m/w.index" },
    { "/m/w.hdf5", H, T, "/m/w.pt", "/m/w.pt" },
    { "/m/cs/checkpoint_100.mdl", H, S, "/m/cs/checkpoint_100", "/m/cs/checkpoint_100.index" },
    { "/m/cs/checkpoint_100.mdl", H, F, "/m/cs/checkpoint_100.safetensors", "/m/cs/checkpoint_100.safetensors" },
    { "/m/cs/checkpoint_100.mdl", H, T, "/m/cs/checkpoint_100.pt", "/m/cs/checkpoint_100.pt" },
    { "/m/pt/model-300.pt", T, S, "/m/pt/model-300", "/m/pt/model-300.index" },
    { "/m/pt/model-300.pt", T, H, "/m/pt/model-300.h5", "/m/pt/model-300.h5" },
    { "/m/pt/model.pth", T, F, "/m/pt/model.safetensors", "/m/pt/model.safetensors" },
    { "/m/hf/pytorch_model.bin", T, F, "/m/hf/pytorch_model.safetensors", "/m/hf/pytorch_model.safetensors" },
    { "/m/hf/model.safetensors", F, S, "/m/hf/model", "/m/hf/model.index" },
    { "/m/hf/model.safetensors", F, H, "/m/hf/model.h5", "/m/hf/model.h5" },
    { "/m/hf/model.safetensors", F, T, "/m/hf/model.pt", "/m/hf/model.pt" },
    { "/m/a.b.pt", T, H, "/m/a.b.h5", "/m/a.b.h5" },     /* only the last extension goes */
    { "/m/w.h5", H, H, NULL, NULL },                     /* not a direction */
    { "/m/w.h5", H, CK_KIND_NONE, NULL, NULL },
    { "/m/w.txt", H, S, NULL, NULL },                    /* not a name ckptd classifies */
  };

  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    char *out = ck_decide_output(t[i].key, t[i].from, t[i].to);
    char *file = out ? ck_decide_output_file(out, t[i].to) : NULL;
    ok((t[i].output ? out && strcmp(out, t[i].output) == 0 : out == NULL) &&
           (t[i].file ? file && strcmp(file, t[i].file) == 0 : file == NULL),
       "output %s %s -> %s (%s)", t[i].key, ck_decide_dir_name(t[i].from, t[i].to) ? ck_decide_dir_name(t[i].from, t[i].to) : "-",
       out ? out : "-", file ? file : "-");
    free(out);
    free(file);
  }
}

/* ckptd's own outputs, known by the source name their mark records, are never sources:
 * whatever the pair, an output and its source never ping-pong. */
static void converted_copies(void)
{
  static const struct {
    const char *key;
    int kind;
    const char *mark_name;
    int yes;
  } t[] = {
    { "/m/model.ckpt-100.h5", CK_KIND_H5, "model.ckpt-100", 1 },        /* saver-to-h5 */
    { "/m/model.ckpt-100.safetensors", CK_KIND_SAFETENSORS, "model.ckpt-100", 1 },
    { "/m/model.ckpt-100.pt", CK_KIND_TORCH, "model.ckpt-100", 1 },
    { "/m/w", CK_KIND_SAVER, "w.h5", 1 },                               /* h5-to-saver */
    { "/m/w", CK_KIND_SAVER, "w.mdl", 1 },
    { "/m/w", CK_KIND_SAVER, "w.safetensors", 1 },
    { "/m/a.safetensors", CK_KIND_SAFETENSORS, "a.pt", 1 },             /* torch-to-safetensors ... */
    { "/m/a.pt", CK_KIND_TORCH, "a.safetensors", 1 },                   /* ... and back */
    { "/m/a.h5", CK_KIND_H5, "a.bin", 1 },
    { "/m/a.bin", CK_KIND_TORCH, "a.safetensors", 0 },                  /* ckptd writes .pt, never .bin */
    { "/m/export.h5", CK_KIND_H5, "model.ckpt-100", 0 },                /* renamed: a source like any other */
    { "/m/a.safetensors", CK_KIND_SAFETENSORS, "b.pt", 0 },
    { "/m/a.safetensors", CK_KIND_SAFETENSORS, "a.safetensors", 0 },
    { "/m/a.safetensors", CK_KIND_SAFETENSORS, "", 0 },
    { "/m/a.safetensors", CK_KIND_SAFETENSORS, "../m/a.pt", 0 },
    { "a.safetensors", CK_KIND_SAFETENSORS, "a.pt", 1 },                /* no directory */
  };

  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
    ok(ck_decide_converted_copy(t[i].key, t[i].kind, t[i].mark_name) == t[i].yes, "%s marked '%s': %s", t[i].key,
       t[i].mark_name, t[i].yes ? "ckptd's converted copy" : "a source");
}

static void directions(void)
{
  static const struct {
    const char *word;
    int rc, from, to, code;
  } t[] = {
    { "saver-to-h5", 0, CK_KIND_SAVER, CK_KIND_H5, 1 },
    { "h5-to-saver", 0, CK_KIND_H5, CK_KIND_SAVER, 2 },
    { "torch-to-safetensors", 0, CK_KIND_TORCH, CK_KIND_SAFETENSORS, 34 },
    { "safetensors-to-torch", 0, CK_KIND_SAFETENSORS, CK_KIND_TORCH, 43 },
    { "saver-to-safetensors", 0, CK_KIND_SAVER, CK_KIND_SAFETENSORS, 14 },
    { "h5-to-torch", 0, CK_KIND_H5, CK_KIND_TORCH, 23 },
    { "torch-to-saver", 0, CK_KIND_TORCH, CK_KIND_SAVER, 31 },
    { "safetensors-to-h5", 0, CK_KIND_SAFETENSORS, CK_KIND_H5, 42 },
    { "h5-to-h5", -2, CK_KIND_H5, CK_KIND_H5, 0 },
    { "tf-to-h5", -1, CK_KIND_NONE, CK_KIND_H5, 0 },
    { "pt-to-h5", -1, CK_KIND_NONE, CK_KIND_H5, 0 },
    { "saver-to-", -1, CK_KIND_SAVER, CK_KIND_NONE, 0 },
    { "both", -1, CK_KIND_NONE, CK_KIND_NONE, 0 },
    { "saver_to_h5", -1, CK_KIND_NONE, CK_KIND_NONE, 0 },
    { "Saver-to-H5", -1, CK_KIND_NONE, CK_KIND_NONE, 0 },
    { "", -1, CK_KIND_NONE, CK_KIND_NONE, 0 },
  };

  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    int from = -9, to = -9, rc = ck_decide_dir_parse(t[i].word, &from, &to);
    const char *name = rc == 0 ? ck_decide_dir_name(from, to) : NULL;
    ok(rc == t[i].rc && from == t[i].from && to == t[i].to &&
           (rc != 0 || (name && strcmp(name, t[i].word) == 0 && ck_decide_dir_code(from, to) == t[i].code)),
       "direction '%s': rc %d, %d -> %d, named %s", t[i].word, rc, from, to, name ? name : "-");
  }
  ok(ck_decide_dir_name(CK_KIND_H5, CK_KIND_H5) == NULL && ck_decide_dir_name(0, CK_KIND_H5) == NULL &&
         ck_decide_dir_name(CK_KIND_SAVER, CK_KINDS) == NULL,
     "no name for a non-direction");
}

static void retries(void)
{
  static const struct {
    int attempts;
    double seconds;
  } b[] = { { 0, 5 }, { 1, 10 }, { 2, 20 }, { 6, 320 }, { 7, 600 }, { 50, 600 }, { 100000, 600 } };
  static const int transient[] = { -ENOSPC, -EIO, -EAGAIN, -EDQUOT, -ENOMEM, -ESTALE, -EFBIG };
  static const int permanent[] = { CK_EFORMAT, CK_ECHECKSUM, CK_ETRUNC, CK_EUNSUP, CK_ELIMIT, -EACCES, -EROFS,
                                   -ECANCELED };

  for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++)
    ok(ck_decide_backoff(b[i].attempts) == b[i].seconds, "backoff after %d attempts: %g s", b[i].attempts,
       b[i].seconds);
  for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
    ok(ck_decide_transient(transient[i]), "transient: %s", ck_strerror(transient[i]));
  for (size_t i = 0; i < sizeof(permanent) / sizeof(permanent[0]); i++)
    ok(!ck_decide_transient(permanent[i]), "not retried until the source changes: %s", ck_strerror(permanent[i]));
}

static void reasons(void)
{
  static const struct {
    int rc, crashed;
    const char *reason;
    int blocked;
  } t[] = {
    { CK_EFORMAT, 0, "corrupt", 0 },          { CK_ECHECKSUM, 0, "corrupt", 0 },
    { CK_ETRUNC, 0, "corrupt", 0 },           { CK_EFORMAT, 1, "crashed", 0 },
    { CK_EUNSUP, 0, "unsupported", 1 },       { -EACCES, 0, "permission", 1 },
    { -EPERM, 0, "permission", 1 },           { -EROFS, 0, "read_only", 1 },
    { -ENOSPC, 0, "no_space", 0 },            { -EDQUOT, 0, "no_space", 0 },
    { -EIO, 0, "io", 0 },                     { -ESTALE, 0, "io", 0 },
    { -EAGAIN, 0, "source_changed", 0 },      { CK_ELIMIT, 0, "limit", 0 },
    { -ENOMEM, 0, "limit", 0 },               { -ENOENT, 0, "other", 0 },
    { CK_EINVAL, 0, "other", 0 },
  };

  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    const char *got = ck_decide_reason_name(ck_decide_reason(t[i].rc, t[i].crashed));
    ok(strcmp(got, t[i].reason) == 0 && ck_decide_blocked(t[i].rc) == t[i].blocked, "%s%s: reason %s, %s",
       ck_strerror(t[i].rc), t[i].crashed ? " (worker crashed)" : "", got, t[i].blocked ? "blocked" : "not blocked");
  }
  ok(strcmp(ck_decide_reason_name(-1), "other") == 0 && strcmp(ck_decide_reason_name(CK_REASONS), "other") == 0,
     "an out-of-range reason is named other");
}

static void disk_guard(void)
{
  static const struct {
    uint64_t bytes;
    double percent;
    uint64_t fs_size, min_free;
  } m[] = {
    { 0, 5, 1000000000000ull, 50000000000ull },  /* the default: 5% of 1 TB */
    { 0, 5, 0, 0 },                              /* size unknown */
    { 1ull << 30, 5, 1000000000000ull, 1ull << 30 }, /* bytes win over the percentage */
    { 0, 0, 1000000000000ull, 0 },               /* min_free = 0%: off */
  };
  static const struct {
    uint64_t free, need, min_free;
    int room;
  } r[] = {
    { 100, 40, 50, 1 }, { 100, 50, 50, 1 }, { 100, 51, 50, 0 }, { 40, 0, 50, 0 }, /* already under min_free */
    { UINT64_MAX, UINT64_MAX - 1, 1, 1 }, { 10, UINT64_MAX, 5, 0 },               /* no overflow */
  };

  for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
    ok(ck_decide_min_free(m[i].bytes, m[i].percent, m[i].fs_size) == m[i].min_free,
       "min_free %llu bytes or %g%% of %llu: %llu", (unsigned long long)m[i].bytes, m[i].percent,
       (unsigned long long)m[i].fs_size, (unsigned long long)m[i].min_free);
  for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++)
    ok(ck_decide_room(r[i].free, r[i].need, r[i].min_free) == r[i].room, "%llu free, %llu needed, min_free %llu: %s",
       (unsigned long long)r[i].free, (unsigned long long)r[i].need, (unsigned long long)r[i].min_free,
       r[i].room ? "starts" : "waits");
  ok(ck_decide_transient(CK_ENOROOM) && strcmp(ck_decide_reason_name(ck_decide_reason(CK_ENOROOM, 0)), "no_space") == 0,
     "a job stopped under min_free is retried with backoff, counted as no_space");
}

static void pick(void)
{
  static const struct {
    const char *what;
    struct ck_pickable v[4];
    int n, want;
  } t[] = {
    { "nothing queued", { { 0, 0, 0, 0 } }, 0, -1 },
    { "FIFO among equals", { { 0, 0, 0, 0 }, { 0, 0, 0, 0 }, { 0, 0, 0, 0 } }, 3, 0 },
    { "the highest priority first", { { 0, 0, 0, 0 }, { 5, 0, 0, 0 }, { 5, 0, 0, 0 }, { 1, 0, 0, 0 } }, 4, 1 },
    { "negative priorities last", { { -1, 0, 0, 0 }, { 0, 0, 0, 0 } }, 2, 1 },
    { "a tree at its workers limit waits", { { 9, 1, 1, 0 }, { 0, 0, 0, 0 } }, 2, 1 },
    { "under its limit it goes", { { 9, 1, 2, 0 }, { 0, 0, 0, 0 } }, 2, 0 },
    { "every tree full: none", { { 0, 2, 2, 0 }, { 3, 1, 1, 0 } }, 2, -1 },
    { "a paused tree's job waits, whatever its priority", { { 9, 0, 0, 1 }, { 0, 0, 0, 0 } }, 2, 1 },
    { "only paused trees queued: none", { { 0, 0, 0, 1 } }, 1, -1 },
  };

  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
    ok(ck_decide_pick(t[i].v, t[i].n) == t[i].want, "pick: %s -> %d", t[i].what, t[i].want);
}

static void latest(void)
{
  static const struct {
    const char *prefix;
    long long step;
  } s[] = {
    { "/m/model.ckpt-1200", 1200 }, { "model.ckpt-0", 0 }, { "/m/ckpt-7", 7 }, { "/m/exported", -1 },
    { "/m/model-v2.ckpt", -1 }, { "/m/a-1/model", -1 }, { "/m/model.ckpt-12x", -1 }, { "/m/model.ckpt-", -1 },
  };
  static const struct {
    long long sa, ma, sb, mb;
    int newer;
  } o[] = {
    { 200, 1, 100, 2, 1 },  /* a higher step wins even when older on disk */
    { 100, 2, 200, 1, 0 },  /* model-100 converted last is not latest */
    { 5, 2, 5, 1, 1 },      /* a tie goes by mtime */
    { -1, 9, 100, 1, 1 },   /* a step-less export: by mtime */
    { -1, 1, 100, 9, 0 },
  };

  for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
    ok(ck_decide_step(s[i].prefix) == s[i].step, "step of %s: %lld", s[i].prefix, s[i].step);
  for (size_t i = 0; i < sizeof(o) / sizeof(o[0]); i++)
    ok(ck_decide_newer(o[i].sa, o[i].ma, o[i].sb, o[i].mb) == o[i].newer, "step %lld mtime %lld %s step %lld mtime %lld",
       o[i].sa, o[i].ma, o[i].newer ? "newer than" : "not newer than", o[i].sb, o[i].mb);
}

int main(void)
{
  temp_files();
  temp_dirs();
  classify();
  outputs();
  converted_copies();
  directions();
  retries();
  reasons();
  disk_guard();
  pick();
  latest();
  return tap_done();
}
