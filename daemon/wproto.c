/* Worker protocol: job command lines and report lines (see wproto.h). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckptfile.h"
#include "conf.h"
#include "decide.h"
#include "fileio.h"
#include "h5.h"
#include "wproto.h"

#define MAX_ARGS (40 + 2 * CK_MAX_RULES)

static const char *compression_word(int kind, int level, char *buf, size_t len)
{
  if (kind == CK_H5_GZIP)
    snprintf(buf, len, "gzip:%d", level);
  else
    snprintf(buf, len, "%s", kind == CK_H5_LZ4 ? "lz4" : "none");
  return buf;
}

/* Append printf output as the next argument; -1 on ENOMEM. */
static int add(char **argv, int *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int add(char **argv, int *n, const char *fmt, ...)
{
  va_list ap;
  char *s;
  int rc;

  va_start(ap, fmt);
  rc = vasprintf(&s, fmt, ap);
  va_end(ap);
  if (rc < 0 || *n >= MAX_ARGS)
    return -1;
  argv[(*n)++] = s;
  return 0;
}

char **ck_wjob_argv(const char *exe, const struct ck_wjob *j)
{
  char **argv = calloc(MAX_ARGS + 1, sizeof(char *));
  const struct ck_convert_opts *o = &j->opts;
  char comp[32];
  int n = 0, bad = 0;

  if (argv == NULL)
    return NULL;
  bad |= add(argv, &n, "%s", exe) | add(argv, &n, "--worker") |
         add(argv, &n, "%s", j->kind == CK_WJOB_PROBE ? "probe" : "convert") | add(argv, &n, "--src") |
         add(argv, &n, "%s", j->src);
  if (j->kind == CK_WJOB_CONVERT) {
    bad |= add(argv, &n, "--direction") | add(argv, &n, "%s", ck_decide_dir_name(j->from, j->to) ? ck_decide_dir_name(j->from, j->to) : "?") | add(argv, &n, "--dst") |
           add(argv, &n, "%s", j->dst) | add(argv, &n, "--buffer-size") | add(argv, &n, "%zu", o->buffer_size) |
           add(argv, &n, "--threads") | add(argv, &n, "%d", o->threads) | add(argv, &n, "--layout") |
           add(argv, &n, "%s", o->layout == CK_H5_NESTED ? "nested" : "flat") | add(argv, &n, "--compression") |
           add(argv, &n, "%s", compression_word(o->compression, o->gzip_level, comp, sizeof(comp))) |
           add(argv, &n, "--shard-size") | add(argv, &n, "%" PRIu64, o->max_shard_bytes);
    for (size_t i = 0; i < o->nrules && i < CK_MAX_RULES; i++)
      bad |= add(argv, &n, "--rule") | add(argv, &n, "%s=%d", o->rules[i].pattern, o->rules[i].shard);
    if (o->verify)
      bad |= add(argv, &n, "--verify");
    if (j->to == CK_KIND_SAVER)
      bad |= add(argv, &n, "--checkpoint-file") | add(argv, &n, "%s", ck_ckptfile_policy_name(j->ckpt_policy));
  }
  if (j->kind == CK_WJOB_PROBE && j->require_success)
    bad |= add(argv, &n, "--require-success");
  if (j->mem_limit)
    bad |= add(argv, &n, "--mem-limit") | add(argv, &n, "%" PRIu64, j->mem_limit);
  if (j->cpu_limit)
    bad |= add(argv, &n, "--cpu-limit") | add(argv, &n, "%" PRIu64, j->cpu_limit);
  if (j->min_free)
    bad |= add(argv, &n, "--min-free") | add(argv, &n, "%" PRIu64, j->min_free);
  if (o->output_mode)
    bad |= add(argv, &n, "--output-mode") | add(argv, &n, "%d", o->output_mode);
  if (o->output_chgrp)
    bad |= add(argv, &n, "--output-gid") | add(argv, &n, "%u", o->output_gid);
  if (bad) {
    ck_strv_free(argv);
    return NULL;
  }
  return argv;
}

static int parse_u64(const char *s, uint64_t *v)
{
  char *end;

  if (s == NULL || *s < '0' || *s > '9')
    return -1;
  errno = 0;
  *v = strtoull(s, &end, 10);
  return errno || *end ? -1 : 0;
}

/* One option with its value; -1 if unknown or malformed. */
static int parse_opt(struct ck_wjob *j, const char *opt, const char *val, int *used)
{
  struct ck_convert_opts *o = &j->opts;
  uint64_t v;

  *used = 1;
  if (strcmp(opt, "--verify") == 0 || strcmp(opt, "--require-success") == 0) {
    *used = 0;
    if (opt[2] == 'v')
      o->verify = 1;
    else
      j->require_success = 1;
    return 0;
  }
  if (val == NULL)
    return -1;
  if (strcmp(opt, "--src") == 0)
    j->src = val;
  else if (strcmp(opt, "--dst") == 0)
    j->dst = val;
  else if (strcmp(opt, "--direction") == 0)
    return ck_decide_dir_parse(val, &j->from, &j->to) == 0 ? 0 : -1;
  else if (strcmp(opt, "--checkpoint-file") == 0)
    return (j->ckpt_policy = ck_ckptfile_parse_policy(val)) < 0 ? -1 : 0;
  else if (strcmp(opt, "--layout") == 0)
    o->layout = strcmp(val, "nested") == 0 ? CK_H5_NESTED : strcmp(val, "flat") == 0 ? CK_H5_FLAT : -1;
  else if (strcmp(opt, "--compression") == 0)
    return ck_h5_parse_compression(val, &o->compression, &o->gzip_level) == 0 ? 0 : -1;
  else if (strcmp(opt, "--rule") == 0) {
    const char *eq = strrchr(val, '=');
    if (eq == NULL || o->nrules >= CK_MAX_RULES || parse_u64(eq + 1, &v) != 0 || v > 99999)
      return -1;
    j->rules[o->nrules].pattern = val; /* the worker keeps argv; the '=' ends it below */
    j->rules[o->nrules++].shard = (int)v;
    *(char *)eq = 0;
    o->rules = j->rules;
  } else if (parse_u64(val, &v) != 0)
    return -1;
  else if (strcmp(opt, "--buffer-size") == 0)
    o->buffer_size = (size_t)v;
  else if (strcmp(opt, "--threads") == 0)
    o->threads = v > 64 ? -1 : (int)v;
  else if (strcmp(opt, "--shard-size") == 0)
    o->max_shard_bytes = v;
  else if (strcmp(opt, "--mem-limit") == 0)
    j->mem_limit = v;
  else if (strcmp(opt, "--cpu-limit") == 0)
    j->cpu_limit = v;
  else if (strcmp(opt, "--min-free") == 0)
    j->min_free = v;
  else if (strcmp(opt, "--output-mode") == 0 && v <= 0777)
    o->output_mode = (int)v;
  else if (strcmp(opt, "--output-gid") == 0 && v < UINT32_MAX) {
    o->output_chgrp = 1;
    o->output_gid = (unsigned)v;
  }
  else
    return -1;
  return o->layout < 0 || o->threads < 0 ? -1 : 0;
}

int ck_wjob_parse(int argc, char **argv, struct ck_wjob *j, char *msg, size_t msglen)
{
  int used;

  memset(j, 0, sizeof(*j));
  if (argc < 1 || (strcmp(argv[0], "convert") != 0 && strcmp(argv[0], "probe") != 0)) {
    snprintf(msg, msglen, "--worker needs 'convert' or 'probe'");
    return -1;
  }
  j->kind = argv[0][0] == 'c' ? CK_WJOB_CONVERT : CK_WJOB_PROBE;
  for (int i = 1; i < argc; i += 1 + used) {
    if (parse_opt(j, argv[i], i + 1 < argc ? argv[i + 1] : NULL, &used) != 0) {
      snprintf(msg, msglen, "worker: bad option or value: %s", argv[i]);
      return -1;
    }
  }
  if (j->src == NULL || (j->kind == CK_WJOB_CONVERT && (j->dst == NULL || j->from == 0))) {
    snprintf(msg, msglen, "worker: --src%s required", j->kind == CK_WJOB_CONVERT ? ", --dst and --direction" : "");
    return -1;
  }
  return 0;
}

static const char *verdict_word(int v)
{
  return v == CK_PROBE_READY ? "ready" : v == CK_PROBE_WAIT ? "wait" : "corrupt";
}

size_t ck_wmsg_format(const struct ck_wmsg *m, char *buf, size_t len)
{
  char text[CK_WPROTO_LINE_MAX];
  int n = 0;

  snprintf(text, sizeof(text), "%s", m->text);
  for (char *p = text; *p; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  switch (m->type) {
  case CK_WMSG_PROGRESS:
    n = snprintf(buf, len, "progress %" PRIu64 " %" PRIu64 "\n", m->done, m->total);
    break;
  case CK_WMSG_DONE:
    n = snprintf(buf, len, "done %" PRIu64 " %" PRIu64 " %.6f %" PRIu64 "\n", m->tensors, m->bytes, m->seconds,
                 m->skipped);
    break;
  case CK_WMSG_FAIL:
    n = snprintf(buf, len, "fail %d %s\n", m->code, text);
    break;
  case CK_WMSG_NOTE:
    n = snprintf(buf, len, "note %s\n", text);
    break;
  case CK_WMSG_SLURM:
    n = snprintf(buf, len, "slurm %" PRIu64 "\n", m->slurm_job);
    break;
  default:
    n = snprintf(buf, len, "probe %s %" PRIu64 " %" PRId64 " %d %s\n", verdict_word(m->verdict), m->size, m->mtime_ns,
                 m->ours ? 1 : 0, text);
    break;
  }
  if (n < 0)
    return 0;
  if ((size_t)n >= len && len >= 2) { /* truncated: keep the line a line */
    buf[len - 2] = '\n';
    return len - 1;
  }
  return (size_t)n;
}

int ck_wmsg_parse(const char *line, struct ck_wmsg *m)
{
  char word[16];
  int off = 0;

  memset(m, 0, sizeof(*m));
  if (sscanf(line, "%15s %n", word, &off) != 1)
    return -1;
  line += off;
  if (strcmp(word, "progress") == 0) {
    m->type = CK_WMSG_PROGRESS;
    return sscanf(line, "%" SCNu64 " %" SCNu64, &m->done, &m->total) == 2 ? 0 : -1;
  }
  if (strcmp(word, "done") == 0) {
    m->type = CK_WMSG_DONE;
    return sscanf(line, "%" SCNu64 " %" SCNu64 " %lf %" SCNu64, &m->tensors, &m->bytes, &m->seconds, &m->skipped) == 4
               ? 0 : -1;
  }
  if (strcmp(word, "fail") == 0) {
    m->type = CK_WMSG_FAIL;
    if (sscanf(line, "%d %n", &m->code, &off) != 1 || m->code >= 0)
      return -1;
    snprintf(m->text, sizeof(m->text), "%s", line + off);
    return 0;
  }
  if (strcmp(word, "slurm") == 0) {
    m->type = CK_WMSG_SLURM;
    return parse_u64(line, &m->slurm_job) == 0 && m->slurm_job > 0 ? 0 : -1;
  }
  if (strcmp(word, "note") == 0) {
    m->type = CK_WMSG_NOTE;
    snprintf(m->text, sizeof(m->text), "%s", line);
    return 0;
  }
  if (strcmp(word, "probe") == 0) {
    m->type = CK_WMSG_PROBE;
    if (sscanf(line, "%15s %" SCNu64 " %" SCNd64 " %d %n", word, &m->size, &m->mtime_ns, &m->ours, &off) != 4 ||
        (m->ours != 0 && m->ours != 1))
      return -1;
    m->verdict = strcmp(word, "ready") == 0 ? CK_PROBE_READY
                 : strcmp(word, "wait") == 0 ? CK_PROBE_WAIT
                 : strcmp(word, "corrupt") == 0 ? CK_PROBE_CORRUPT : 0;
    snprintf(m->text, sizeof(m->text), "%s", line + off);
    return m->verdict ? 0 : -1;
  }
  return -1;
}
