/* ckptd's configuration parser: defaults, every key, errors with file and line. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../daemon/conf.h"
#include "h5.h"
#include "tap.h"

static int bad(const char *text, const char *want)
{
  struct ck_conf c;
  struct ck_err err = { 0 };
  int rc = ck_conf_parse_string(text, "t.ini", &c, &err);

  if (rc == 0)
    ck_conf_free(&c);
  ok(rc != 0 && strstr(err.msg, want) != NULL, "refused: %s", err.msg);
  return rc;
}

/* direction: FROM-to-TO lists, both, and what is refused (with FILE:LINE). */
static void directions(void)
{
  enum { S = CK_KIND_SAVER, H = CK_KIND_H5, T = CK_KIND_TORCH, F = CK_KIND_SAFETENSORS };
  static const struct {
    const char *value;
    int target[CK_KINDS];
    const char *name;
  } good[] = {
    { "saver-to-h5", { [S] = H }, "saver-to-h5" },
    { "h5-to-saver", { [H] = S }, "h5-to-saver" },
    { "both", { [S] = H, [H] = S }, "both" },
    { "h5-to-saver, saver-to-h5", { [S] = H, [H] = S }, "both" },
    { "both, torch-to-safetensors", { [S] = H, [H] = S, [T] = F }, "saver-to-h5,h5-to-saver,torch-to-safetensors" },
    { "saver-to-safetensors, safetensors-to-h5", { [S] = F, [F] = H }, "saver-to-safetensors,safetensors-to-h5" },
    { "torch-to-safetensors,safetensors-to-torch", { [T] = F, [F] = T }, "torch-to-safetensors,safetensors-to-torch" },
    { "saver-to-h5, h5-to-torch", { [S] = H, [H] = T }, "saver-to-h5,h5-to-torch" },
    { "  torch-to-saver  ", { [T] = S }, "torch-to-saver" },
    { "torch-to-h5,", { [T] = H }, "torch-to-h5" },
    { "saver-to-h5, saver-to-h5, both", { [S] = H, [H] = S }, "both" }, /* repeated: the same target */
  };
  static const struct {
    const char *value, *want;
  } refused[] = {
    { "sideways", "t.ini:3: direction: 'sideways' is not FROM-to-TO" },
    { "h5-to-h5", "t.ini:3: direction: 'h5-to-h5': the same format on both sides" },
    { "tf-to-h5", "t.ini:3: direction: 'tf-to-h5' is not FROM-to-TO (FROM, TO: saver, h5, torch, safetensors)" },
    { "saver-to-onnx", "t.ini:3: direction: 'saver-to-onnx' is not" },
    { "saver-to-h5, saver-to-torch", "t.ini:3: direction: saver-to-h5 and saver-to-torch: at most one target per source format" },
    { "both, h5-to-safetensors", "t.ini:3: direction: h5-to-saver and h5-to-safetensors: at most one target" },
    { "", "t.ini:3: direction: empty" },
    { ",", "t.ini:3: direction: empty" },
  };
  struct ck_conf c;
  struct ck_err err = { 0 };
  char text[256];

  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    snprintf(text, sizeof(text), "[watch a]\npath = /tmp\ndirection = %s\n", good[i].value);
    int rc = ck_conf_parse_string(text, "t.ini", &c, &err);
    ok(rc == 0 && memcmp(c.watches[0].target, good[i].target, sizeof(good[i].target)) == 0 &&
           !strcmp(c.watches[0].direction, good[i].name),
       "direction = %s: %s %s", good[i].value, rc == 0 ? c.watches[0].direction : "", rc ? err.msg : "");
    if (rc == 0)
      ck_conf_free(&c);
  }
  ok(ck_conf_parse_string("[watch a]\npath = /tmp\ndirection = both\ndirection = torch-to-h5\n", "t.ini", &c, &err) == 0 &&
         c.watches[0].target[T] == H && !c.watches[0].target[S] && !c.watches[0].target[H],
     "a later direction key replaces the earlier");
  ck_conf_free(&c);
  for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
    snprintf(text, sizeof(text), "[watch a]\npath = /tmp\ndirection = %s\n", refused[i].value);
    bad(text, refused[i].want);
  }
}

int main(void)
{
  struct ck_conf c;
  struct ck_err err = { 0 };
  const char *full = "[ckptd]\nworkers = 3\nmemory_budget = 1G\nstate_dir = /tmp/st\nstatus_file = /tmp/s.json\n"
                     "log_level = debug\nsettle_seconds = 2.5\nrescan_seconds = 30\nstop_timeout = 5\n"
                     "[watch a]\npath = /tmp\ndirection = saver-to-h5\nrecursive = no\ninclude = */ckpt/* x\n"
                     "exclude = */eval/*\nlayout = nested\ncompression = gzip:7\nverify = yes\n"
                     "[watch b]\npath = /usr\ndirection = h5-to-saver\nshard_size = 10G\nshard_rule = emb*=1\n"
                     "shard_rule = head*=2\nupdate_checkpoint_file = false\nevents = off\n";

  ok(ck_conf_parse_string(full, "t.ini", &c, &err) == 0, "every key parses %s", err.msg);
  ok(c.workers == 3 && c.memory_budget == (1ull << 30) && !strcmp(c.state_dir, "/tmp/st") &&
     !strcmp(c.status_file, "/tmp/s.json") && c.log_level == CK_LOG_DEBUG && c.settle_seconds == 2.5 &&
     c.rescan_seconds == 30 && c.stop_timeout == 5, "[ckptd] values");
  ok(c.nwatches == 2 && !strcmp(c.watches[0].name, "a") && c.watches[0].target[CK_KIND_SAVER] == CK_KIND_H5 && !c.watches[0].target[CK_KIND_H5] &&
     !c.watches[0].recursive && c.watches[0].ninclude == 2 && c.watches[0].nexclude == 1 &&
     c.watches[0].layout == CK_H5_NESTED && c.watches[0].compression == CK_H5_GZIP && c.watches[0].gzip_level == 7 &&
     c.watches[0].verify, "[watch a] values");
  ok(c.watches[1].target[CK_KIND_H5] == CK_KIND_SAVER && !c.watches[1].target[CK_KIND_SAVER] && c.watches[1].shard_size == (10ull << 30) &&
     c.watches[1].nrules == 2 && !strcmp(c.watches[1].rules[1].pattern, "head*") && c.watches[1].rules[1].shard == 2 &&
     !c.watches[1].update_checkpoint_file && !c.watches[1].events && !strcmp(c.watches[1].path, "/usr"),
     "[watch b] values");
  ck_conf_free(&c);

  ok(ck_conf_parse_string("[watch x]\npath = /tmp\n", "t.ini", &c, &err) == 0 && c.workers >= 1 &&
     c.settle_seconds == 5 && c.rescan_seconds == 60 && c.watches[0].target[CK_KIND_SAVER] == CK_KIND_H5 &&
     c.watches[0].target[CK_KIND_H5] == CK_KIND_SAVER && !strcmp(c.watches[0].direction, "both") &&
     c.watches[0].recursive && c.watches[0].events && c.watches[0].update_checkpoint_file &&
     !strcmp(c.status_file, "var/state/status.json"), "defaults");
  ck_conf_free(&c);

  bad("[ckptd]\nworkers = 0\n", "t.ini:2: workers");
  bad("[ckptd]\n\nmemory_budget = lots\n", "t.ini:3: memory_budget");
  bad("[ckptd]\nfrobnicate = 1\n", "t.ini:2: unknown key 'frobnicate' in [ckptd]");
  bad("[watch a]\npath = /tmp\ndirection = sideways\n", "t.ini:3: direction");
  directions();
  bad("[watch a]\npath = /tmp\ncompression = zstd\n", "t.ini:3: compression");
  bad("[watch a]\npath = /tmp\nrecursive = maybe\n", "t.ini:3: recursive");
  bad("[watch a]\npath = /tmp\nshard_rule = nope\n", "t.ini:3: shard_rule");
  bad("[watch a]\npath = /tmp\nmin_free = lots\n", "t.ini:3: min_free");
  bad("[watch a]\npath = /tmp\nworkers = 65\n", "t.ini:3: workers");
  bad("[watch a]\npath = /tmp\npriority = high\n", "t.ini:3: priority");
  bad("[watch a]\npath = /tmp\nsettle_seconds = -2\n", "t.ini:3: settle_seconds");
  bad("[watch a]\npath = /tmp\nhook_timeout = 0\n", "t.ini:3: hook_timeout");
  bad("[watch a]\npath = /tmp\non_done =\n", "t.ini:3: on_done: empty");
  bad("[watch a]\npath = /tmp\noutput_group = no-such-group-here\n", "t.ini:3: output_group: no group");
  bad("[watch a]\npath = /tmp\noutput_mode = 0040\n", "t.ini:3: output_mode");
  bad("[watch a]\npath = /tmp\noutput_mode = 999\n", "t.ini:3: output_mode");
  ok(ck_conf_parse_string("[watch a]\npath = /tmp\nworkers = 1\npriority = -5\nsettle_seconds = 0.5\n"
                          "hook_timeout = 30\non_done = curl -X POST http://serving/reload\non_failed = logger x\n"
                          "output_group = root\noutput_mode = 0640\n",
                          "t.ini", &c, &err) == 0 &&
         c.watches[0].workers == 1 && c.watches[0].priority == -5 && c.watches[0].settle_seconds == 0.5 &&
         c.watches[0].hook_timeout == 30 && !strcmp(c.watches[0].on_done, "curl -X POST http://serving/reload") &&
         !strcmp(c.watches[0].on_failed, "logger x") && !strcmp(c.watches[0].output_group, "root") &&
         c.watches[0].output_mode == 0640,
     "per-tree workers, priority, settle_seconds, hooks and output ownership %s", err.msg);
  ck_conf_free(&c);
  ok(ck_conf_parse_string("[watch a]\npath = /tmp\n", "t.ini", &c, &err) == 0 && c.watches[0].workers == 0 &&
         c.watches[0].settle_seconds < 0 && c.watches[0].hook_timeout == 60 && c.watches[0].output_mode == -1 &&
         !c.watches[0].on_done,
     "their defaults: no own limit, the global settle time, 60 s hooks, modes as created");
  ck_conf_free(&c);
  bad("[watch a]\npath = /tmp\nmin_free = 101%\n", "t.ini:3: min_free");
  bad("[watch a]\npath = /tmp\nmin_free = -1%\n", "t.ini:3: min_free");
  bad("[watch a]\npath = /tmp\nmin_free = 5x%\n", "t.ini:3: min_free");
  {
    static const struct {
      const char *value;
      uint64_t bytes;
      double pct;
    } t[] = { { NULL, 0, 5 }, { "10%", 0, 10 }, { "0%", 0, 0 }, { "2.5%", 0, 2.5 }, { "20G", 20ull << 30, 0 }, { "0", 0, 0 } };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
      char text[200];
      snprintf(text, sizeof(text), "[watch a]\npath = /tmp\n%s%s\n", t[i].value ? "min_free = " : "",
               t[i].value ? t[i].value : "");
      ok(ck_conf_parse_string(text, "t.ini", &c, &err) == 0 && c.watches[0].min_free == t[i].bytes &&
             c.watches[0].min_free_pct == t[i].pct,
         "min_free %s: %llu bytes or %g%%", t[i].value ? t[i].value : "(default)", (unsigned long long)t[i].bytes,
         t[i].pct);
      ck_conf_free(&c);
    }
  }
  bad("[watch a]\ndirection = both\n", "t.ini:1: [watch a] has no path");
  bad("[ckptd]\n\n[watch b]\ndirection = both\n", "t.ini:3: [watch b] has no path");
  bad("[ckptd]\nworkers = 2\n", "t.ini: no [watch NAME] section");
  bad("[watch a]\ndirection = both\npath = relative/no/such\n", "t.ini:3: [watch a]: path relative/no/such does not exist and is not absolute");
  bad("[watch a]\n\npath = /etc/passwd\n", "t.ini:3: [watch a]: path /etc/passwd is not a directory");
  ok(ck_conf_parse_string("[watch a]\npath = /no/such/dir/here\n", "t.ini", &c, &err) == 0 && c.watches[0].missing &&
         c.warnings && strstr(c.warnings, "t.ini:2: [watch a]: path /no/such/dir/here does not exist yet"),
     "a tree whose path does not exist yet is a warning naming file and line: %s", c.warnings ? c.warnings : "(none)");
  ck_conf_free(&c);
  bad("[watch a]\npath = /tmp\n[watch a]\npath = /\n", "duplicate section [watch a]");
  bad("[ckptd]\nlog_level = loud\n", "t.ini:2: log_level");
  bad("[ckptd]\nsettle_seconds = -1\n", "t.ini:2: settle_seconds");
  bad("[ckptd]\nthis line is not ini\n", "t.ini:2: syntax error");
  bad("[ckptd]\n[other]\nx = 1\n", "t.ini:2: unknown section [other]");
  ok(ck_conf_parse_string("[ckptd]\nexecutor = slurm\nclaims_dir = /shared/claims\nlease_seconds = 45\n"
                          "instance = login1\n[slurm]\noptions = --partition=cpu --time=2:00:00\npoll_seconds = 2\n"
                          "[watch a]\npath = /tmp\n", "t.ini", &c, &err) == 0 && c.executor == CK_EXEC_SLURM &&
         !strcmp(c.claims_dir, "/shared/claims") && c.lease_seconds == 45 && !strcmp(c.instance, "login1") &&
         !strcmp(c.slurm_options, "--partition=cpu --time=2:00:00") && c.slurm_poll == 2,
     "the cluster keys: executor, claims_dir, lease_seconds, instance, [slurm] options and poll_seconds %s", err.msg);
  ck_conf_free(&c);
  ok(ck_conf_parse_string("[watch a]\npath = /tmp\n", "t.ini", &c, &err) == 0 && c.executor == CK_EXEC_LOCAL &&
         c.claims_dir == NULL && c.lease_seconds == 30 && c.slurm_poll == 5,
     "defaults: local, no claims, a 30 s lease, polls every 5 s");
  ck_conf_free(&c);
  bad("[ckptd]\nexecutor = kubernetes\n", "t.ini:2: executor: 'kubernetes' is not local or slurm");
  bad("[ckptd]\nclaims_dir = relative/dir\n", "t.ini:2: claims_dir: 'relative/dir' is not an absolute path");
  bad("[ckptd]\nlease_seconds = 1\n", "t.ini:2: lease_seconds");
  bad("[slurm]\npoll_seconds = 0\n", "t.ini:2: poll_seconds");
  bad("[slurm]\npartition = gpu\n", "t.ini:2: unknown key 'partition' in [slurm]");
  bad("[watch a]\npath = /tmp\n[ckptd]\n[watch a]\npath = /\n", "t.ini:4: duplicate section [watch a]");
  bad("[watch a]\npath = /usr\n[watch b]\npath = /usr/share\n",
      "[watch b] (/usr/share) is inside [watch a] (/usr): overlapping trees");
  bad("[watch a]\npath = /usr/share\n[watch b]\npath = /usr\n", "[watch a] (/usr/share) is inside [watch b] (/usr)");
  bad("[watch a]\npath = /usr\n[watch b]\npath = /usr/\n", "[watch b] (/usr) is inside [watch a] (/usr)");
  ok(ck_conf_parse_string("[watch a]\npath = /usr\nrecursive = no\n[watch b]\npath = /usr/share\n", "t.ini", &c, &err) == 0,
     "a non-recursive tree does not cover its subdirectories' trees %s", err.msg);
  ck_conf_free(&c);
  {
    static const struct {
      const char *outer;
      int recursive;
      const char *inner;
      int covers;
    } t[] = {
      { "/data", 1, "/data", 1 },          { "/data", 0, "/data", 1 },      { "/data", 1, "/data/run1", 1 },
      { "/data", 0, "/data/run1", 0 },     { "/data", 1, "/data2", 0 },     { "/data", 1, "/dat", 0 },
      { "/data/", 1, "/data/run1", 1 },    { "/data", 1, "/data/", 1 },     { "/", 1, "/data", 1 },
      { "/", 0, "/data", 0 },              { "/data/run1", 1, "/data", 0 }, { "/data", 1, "/data/a/b/c", 1 },
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
      ok(ck_conf_covers(t[i].outer, t[i].recursive, t[i].inner) == t[i].covers, "%s (%s) %s %s", t[i].outer,
         t[i].recursive ? "recursive" : "flat", t[i].covers ? "covers" : "does not cover", t[i].inner);
  }
  ok(ck_conf_load("/no/such/ckptd.ini", &c, &err) != 0 && strstr(err.msg, "/no/such/ckptd.ini: cannot read"),
     "a missing file: %s", err.msg);
  ok(ck_conf_load("/bin/sh", &c, &err) != 0 && strstr(err.msg, "/bin/sh"), "a binary file: %s", err.msg);
  return tap_done();
}
