/* The Slurm executor's decisions (see slurm.h). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slurm.h"
#include "fileio.h"
#include "json.h"

static const struct {
  const char *word;
  int state;
} states[] = {
  { "PENDING", CK_SLURM_PENDING },         { "REQUEUED", CK_SLURM_PENDING },
  { "REQUEUE_HOLD", CK_SLURM_PENDING },    { "REQUEUE_FED", CK_SLURM_PENDING },
  { "RESV_DEL_HOLD", CK_SLURM_PENDING },   { "RUNNING", CK_SLURM_RUNNING },
  { "CONFIGURING", CK_SLURM_RUNNING },     { "COMPLETING", CK_SLURM_RUNNING },
  { "SUSPENDED", CK_SLURM_RUNNING },       { "STOPPED", CK_SLURM_RUNNING },
  { "SIGNALING", CK_SLURM_RUNNING },       { "STAGE_OUT", CK_SLURM_RUNNING },
  { "RESIZING", CK_SLURM_RUNNING },        { "COMPLETED", CK_SLURM_COMPLETED },
  { "FAILED", CK_SLURM_FAILED },           { "CANCELLED", CK_SLURM_CANCELLED },
  { "TIMEOUT", CK_SLURM_TIMEOUT },         { "NODE_FAIL", CK_SLURM_NODE_FAIL },
  { "PREEMPTED", CK_SLURM_PREEMPTED },     { "OUT_OF_MEMORY", CK_SLURM_OUT_OF_MEMORY },
  { "OOM", CK_SLURM_OUT_OF_MEMORY },       { "BOOT_FAIL", CK_SLURM_BOOT_FAIL },
  { "DEADLINE", CK_SLURM_DEADLINE },       { "REVOKED", CK_SLURM_CANCELLED },
  { "SPECIAL_EXIT", CK_SLURM_FAILED },
};

int ck_slurm_state(const char *word)
{
  size_t n = 0;

  while (word[n] == ' ' || word[n] == '\t')
    word++;
  while (word[n] && (isupper((unsigned char)word[n]) || word[n] == '_'))
    n++;
  for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
    if (strlen(states[i].word) == n && strncmp(states[i].word, word, n) == 0)
      return states[i].state;
  return CK_SLURM_UNKNOWN;
}

const char *ck_slurm_state_name(int state)
{
  static const char *names[CK_SLURM_STATES] = { "UNKNOWN",   "GONE",      "PENDING",       "RUNNING",
                                                "COMPLETED", "FAILED",    "CANCELLED",     "TIMEOUT",
                                                "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL",
                                                "DEADLINE" };

  return state >= 0 && state < CK_SLURM_STATES ? names[state] : "UNKNOWN";
}

int ck_slurm_final(int state)
{
  return state >= CK_SLURM_COMPLETED || state == CK_SLURM_GONE;
}

int ck_slurm_outcome(const struct ck_slurm_end *e)
{
  switch (e->have_result && !e->result_stopped ? -1 : e->state) {
  case -1:
    return CK_SLURM_USE_RESULT; /* the worker said how it went: published or not */
  case CK_SLURM_TIMEOUT: case CK_SLURM_NODE_FAIL: case CK_SLURM_PREEMPTED: case CK_SLURM_OUT_OF_MEMORY:
  case CK_SLURM_BOOT_FAIL: case CK_SLURM_DEADLINE:
    /* the cluster stopped it, whatever signal the worker died of */
    return e->we_cancelled ? CK_SLURM_ABORTED : CK_SLURM_RETRY;
  }
  if (e->we_cancelled)
    return CK_SLURM_ABORTED;
  if (e->state == CK_SLURM_CANCELLED)
    return CK_SLURM_CANCELLED_BY;
  switch (e->exit_status - 128) { /* the shell's 128 + signal */
  case SIGSEGV: case SIGBUS: case SIGILL: case SIGFPE: case SIGABRT: case SIGSYS:
    return CK_SLURM_CRASHED; /* the worker's own fault: the file killed it, as a local crash */
  }
  if (e->exit_status > 128 && e->exit_status < 128 + 65)
    return CK_SLURM_RETRY; /* SIGKILL, SIGTERM, ...: the OOM killer, Slurm, an operator; not the file */
  if (e->exit_status == 126 || e->exit_status == 127)
    return CK_SLURM_REFUSED; /* ckptd missing or not executable on the node */
  return CK_SLURM_RETRY;     /* FAILED, or lost, with no word from the worker */
}

void ck_slurm_temp_tag(const char *instance, char out[9])
{
  char what[32];

  snprintf(what, sizeof(what), "slurm\n%.8s", instance);
  ck_temp_tag_of(what, out);
}

int ck_slurm_parse_jobid(const char *out, uint64_t *id)
{
  char *end;
  unsigned long long v;

  while (*out == ' ' || *out == '\n')
    out++;
  if (*out < '1' || *out > '9')
    return -1;
  errno = 0;
  v = strtoull(out, &end, 10);
  if (errno || (*end && *end != ';' && *end != '\n' && *end != ' '))
    return -1;
  *id = v;
  return 0;
}

int ck_slurm_unreachable(const char *text)
{
  static const char *words[] = { "Unable to contact slurm controller", "Socket timed out",
                                 "Connection refused", "Zero Bytes were transmitted",
                                 "Communication connection failure", "Unable to establish controller",
                                 "slurm_load_jobs error: Unable", "Transport endpoint is not connected",
                                 "Network is unreachable", "No route to host" };

  for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
    if (strstr(text, words[i]))
      return 1;
  return 0;
}

int ck_slurm_unknown_job(const char *text)
{
  return strstr(text, "Invalid job id") != NULL;
}

long ck_slurm_cancelled_by(const char *state_text)
{
  const char *by = strstr(state_text, " by ");
  char *end;
  long v;

  if (by == NULL || by[4] < '0' || by[4] > '9')
    return -1;
  v = strtol(by + 4, &end, 10);
  return v;
}

uint64_t ck_slurm_mem_mb(uint64_t buffer_size)
{
  return (buffer_size + (256ull << 20) + (1u << 20) - 1) >> 20;
}

/* Split options at blanks; '...' and "..." group. -1 on an open quote. */
static int split(const char *s, char **argv, int *n, int max)
{
  while (*s) {
    char *w, *o;
    char q = 0;
    while (*s == ' ' || *s == '\t' || *s == '\n')
      s++;
    if (!*s)
      break;
    if (*n >= max || (w = malloc(strlen(s) + 1)) == NULL)
      return -1;
    o = w;
    for (; *s && (q || (*s != ' ' && *s != '\t' && *s != '\n')); s++) {
      if (!q && (*s == '\'' || *s == '"'))
        q = *s;
      else if (q && *s == q)
        q = 0;
      else
        *o++ = *s;
    }
    *o = 0;
    argv[(*n)++] = w;
    if (q)
      return -1;
  }
  return 0;
}

/* sbatch expands %j, %N, ... in --output: a literal % is %%. */
static char *percent_doubled(const char *opt, const char *path)
{
  size_t n = strlen(opt) + 1;
  char *out, *o;

  for (const char *p = path; *p; p++)
    n += *p == '%' ? 2 : 1;
  if ((out = malloc(n)) == NULL)
    return NULL;
  o = out + strlen(opt);
  memcpy(out, opt, strlen(opt));
  for (const char *p = path; *p; p++) {
    *o++ = *p;
    if (*p == '%')
      *o++ = '%';
  }
  *o = 0;
  return out;
}

char **ck_slurm_sbatch_argv(const struct ck_slurm_req *r, int *bad)
{
  enum { MAX = 96 };
  char **argv = calloc(MAX + 1, sizeof(char *));
  int n = 0;

  *bad = 0;
  if (argv == NULL)
    return NULL;
  argv[n++] = strdup("sbatch");
  argv[n++] = strdup("--parsable");
  argv[n++] = ck_asprintf("--job-name=%s", r->job_name);
  argv[n++] = percent_doubled("--output=", r->out_file);
  argv[n++] = percent_doubled("--error=", r->out_file);
  argv[n++] = ck_asprintf("--mem=%lluM", (unsigned long long)r->mem_mb);
  argv[n++] = ck_asprintf("--cpus-per-task=%d", r->cpus > 0 ? r->cpus : 1);
  argv[n++] = strdup("--ntasks=1");
  argv[n++] = strdup("--no-requeue"); /* ckptd retries, with its own backoff and a fresh claim */
  argv[n++] = ck_asprintf("--export=ALL,CKPTD_INSTANCE=%s", r->instance);
  for (int i = 0; i < n; i++)
    if (argv[i] == NULL)
      goto fail;
  if (r->options && split(r->options, argv, &n, MAX - 1) != 0) {
    *bad = 1;
    goto fail;
  }
  if ((argv[n++] = strdup(r->script)) == NULL)
    goto fail;
  return argv;
fail:
  ck_strv_free(argv);
  return NULL;
}

char *ck_sh_quote(const char *s)
{
  size_t n = 2;
  char *q, *o;

  for (const char *p = s; *p; p++)
    n += *p == '\'' ? 4 : 1;
  if ((q = malloc(n + 1)) == NULL)
    return NULL;
  o = q;
  *o++ = '\'';
  for (const char *p = s; *p; p++) {
    if (*p == '\'') {
      memcpy(o, "'\\''", 4);
      o += 4;
    } else {
      *o++ = *p;
    }
  }
  *o++ = '\'';
  *o = 0;
  return q;
}

static void adds(struct ck_sbuf *b, const char *s)
{
  ck_sbuf_add(b, s, strlen(s));
}

char *ck_slurm_script(char *const *argv, const char *report, const char *instance)
{
  struct ck_sbuf b = { 0 };
  char *q = ck_sh_quote(report), *out = NULL;

  if (q == NULL)
    return NULL;
  adds(&b, "#!/bin/sh\n# written by ckptd: one conversion (README, \"Clusters\")\n");
  adds(&b, "echo \"host $(hostname)\" >>");
  adds(&b, q);
  /* temporaries carry the job id, so the submitting side can remove what a killed job left */
  adds(&b, "\nCKPTD_TEMP_OWNER=\"${SLURM_JOB_ID:-$$}\"; export CKPTD_TEMP_OWNER\n");
  /* here too, not only through --export: options may say --export=NONE */
  adds(&b, "CKPTD_INSTANCE=");
  {
    char *qi = ck_sh_quote(instance);
    if (qi == NULL)
      goto out;
    adds(&b, qi);
    free(qi);
  }
  adds(&b, "; export CKPTD_INSTANCE\n");
  for (char *const *a = argv; *a; a++) {
    char *w = ck_sh_quote(*a);
    if (w == NULL)
      goto out;
    if (a != argv)
      adds(&b, " ");
    adds(&b, w);
    free(w);
  }
  adds(&b, " 3>>");
  adds(&b, q);
  adds(&b, "\necho \"exit $?\" >>");
  adds(&b, q);
  adds(&b, "\n");
  if (!b.oom && b.p)
    out = b.p, b.p = NULL;
out:
  free(b.p);
  free(q);
  return out;
}
