/* The scheduler's side of running beyond one machine (README "Clusters"):
 * - claims (claim.h): a conversion starts only once this instance holds its source's
 *   claim in claims_dir, and only if no other instance has converted it meanwhile;
 *   leases are renewed every third of a lease while jobs run; a lost claim stops its job;
 * - the Slurm executor's outages, logged once each;
 * - the settings a reload cannot change (the pool and the claims were built from them). */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "claim.h"
#include "fileio.h"
#include "hmap.h"
#include "log.h"
#include "sched_int.h"
#include "slurm.h"

/* Remove what the crashed holder of an expired claim left beside this output (only
 * this output's temporaries: the holder may be alive and slow, with other jobs in
 * that directory): its local workers' (its tag) and its Slurm jobs' (the tag derived
 * from it). This instance's own leftovers (a restart) are its start-up's to clean,
 * by pid: a job it already started may be writing beside them. */
static int remove_leftovers(const char *dst, const struct ck_claim_info *old)
{
  char *dir = ck_dirname(dst), *base = ck_basename(dst), slurm_tag[9];
  int n = 0;

  if (dir && base && strlen(old->tag) == 8 && strcmp(old->tag, ck_temp_instance()) != 0) {
    ck_slurm_temp_tag(old->tag, slurm_tag);
    n = ck_temp_remove_of(dir, base, old->tag, 0) + ck_temp_remove_of(dir, base, slurm_tag, 0);
  }
  free(dir);
  free(base);
  return n;
}

int sched_claim_gate(void *ctx, struct ck_job *j)
{
  struct ck_sched *s = ctx;
  struct cand *c = j->owner;
  struct ck_claim_info other;
  struct ck_err err = { 0 };
  struct ck_log_fields f = { j->src, sched_dir_name(j->from, j->to), -1, -1, j->dst, NULL, NULL, 0 };
  int rc;

  if (s->claims == NULL)
    return 0;
  rc = ck_claim_take(s->claims, j->src, &other, &err);
  if (rc < 0) {
    f.error = err.msg;
    ck_log(CK_LOG_WARN, "claim", &f, "cannot claim it, so not converting it now: %s", err.msg);
    snprintf(j->err, sizeof(j->err), "%s", err.msg);
    return -EIO; /* transient: retried with a backoff */
  }
  if (rc == CK_CLAIM_HELD) {
    snprintf(j->err, sizeof(j->err), "claimed by %s on %s (pid %ld)", other.instance, other.host[0] ? other.host : "?",
             other.pid);
    /* said once per holding, then quietly at each look (a long conversion elsewhere) */
    ck_log(c->held_elsewhere ? CK_LOG_DEBUG : CK_LOG_INFO, "claimed_elsewhere", &f, "%s; looking again every %.0f s",
           j->err, s->conf->lease_seconds);
    c->held_elsewhere = 1;
    return CK_ECLAIMED;
  }
  if (rc == CK_CLAIM_TOOK_OVER) {
    int n = remove_leftovers(j->dst, &other);
    ck_log(CK_LOG_WARN, "claim_takeover", &f,
           "took over the expired claim of %s on %s (pid %ld); removed %d temporar%s it left", other.instance[0] ?
           other.instance : "(unknown)", other.host[0] ? other.host : "?", other.pid, n, n == 1 ? "y" : "ies");
  }
  c->held_elsewhere = 0;
  /* ours now: did another instance finish it between our decision and now? */
  if (sched_output_mark(c, j->dst, j->to) == CK_MARK_SAME) {
    ck_claim_release(s->claims, j->src);
    snprintf(j->err, sizeof(j->err), "converted meanwhile by another instance");
    return CK_ECLAIMED;
  }
  return 0;
}

void sched_claim_release(struct ck_sched *s, const char *src)
{
  if (s->claims)
    ck_claim_release(s->claims, src);
}

static void lost(void *ctx, const char *src)
{
  struct ck_sched *s = ctx;
  struct ck_log_fields f = { src, NULL, -1, -1, NULL, NULL, NULL, 0 };
  struct cand *c = ck_hmap_get(s->cands, src);

  if (c)
    c->claim_lost = 1; /* its job's end is a claim held elsewhere, looked at again later */
  ck_log(CK_LOG_ERROR, "claim_lost", &f,
         "the claim's lease expired before it was renewed (was ckptd stopped or starved?) and another instance may "
         "have taken it over: stopping this conversion");
  if (s->pool)
    ck_pool_cancel_src(s->pool, src, SIGTERM);
}

static void on_renew(uv_timer_t *t)
{
  struct ck_sched *s = t->data;

  if (s->claims)
    ck_claims_renew(s->claims, lost, s);
}

/* The name an instance has in claims: [ckptd] instance, else host:state_dir. */
static char *instance_name(const struct ck_conf *conf)
{
  char host[256] = "", *real, *name;

  if (conf->instance)
    return strdup(conf->instance);
  gethostname(host, sizeof(host) - 1);
  real = realpath(conf->state_dir, NULL);
  name = ck_asprintf("%s:%s", host, real ? real : conf->state_dir);
  free(real);
  return name;
}

int sched_claims_start(struct ck_sched *s)
{
  char *name;
  uint64_t every;

  uv_timer_init(s->loop, &s->claim_timer);
  s->claim_timer.data = s;
  s->have_claim_timer = 1;
  if (s->conf->claims_dir == NULL || (s->flags & CK_SCHED_DRY_RUN))
    return 0;
  if (mkdir(s->conf->claims_dir, 0755) != 0 && errno != EEXIST) {
    struct ck_log_fields f = { s->conf->claims_dir, NULL, -1, -1, NULL, strerror(errno), NULL, 0 };
    ck_log(CK_LOG_ERROR, "claim", &f, "cannot create claims_dir: %s", strerror(errno));
  }
  if ((name = instance_name(s->conf)) == NULL ||
      (s->claims = ck_claims_new(s->conf->claims_dir, name, s->conf->lease_seconds)) == NULL) {
    free(name);
    return -ENOMEM;
  }
  {
    struct ck_log_fields f = { s->conf->claims_dir, NULL, -1, -1, NULL, NULL, NULL, 0 };
    ck_log(CK_LOG_INFO, "claims", &f, "converting only what this instance claims, as %s (lease %.0f s)", name,
           s->conf->lease_seconds);
  }
  free(name);
  every = (uint64_t)(s->conf->lease_seconds * 1000 / 3);
  uv_timer_start(&s->claim_timer, on_renew, every, every);
  return 0;
}

void sched_claims_stop(struct ck_sched *s)
{
  ck_claims_free(s->claims); /* what is still held is released */
  s->claims = NULL;
  if (s->have_claim_timer)
    uv_close((uv_handle_t *)&s->claim_timer, NULL);
  s->have_claim_timer = 0;
}

/* ---- the Slurm controller's outages ---- */

/* An unreachable Slurm controller is logged once per outage, not once per job and
 * retry; 1 if this job's retry is part of one already logged. */
int sched_outage_quiet(struct ck_sched *s, const struct ck_job *j)
{
  int unreachable = j->rc == CK_ESCHED && strstr(j->err, "cannot be reached") != NULL;

  if (unreachable && !s->sched_outage) {
    struct ck_log_fields f = { NULL, NULL, -1, -1, NULL, j->err, "scheduler", 0 };
    ck_log(CK_LOG_WARN, "slurm_unreachable", &f,
           "the Slurm controller cannot be reached: conversions wait and retry with a backoff (logged once per outage)");
    s->sched_outage = 1;
    return 0;
  }
  return unreachable;
}

/* A job Slurm accepted ends an outage. */
void sched_outage_over(struct ck_sched *s, const struct ck_job *j)
{
  if (s->sched_outage && j->slurm_job) {
    ck_log(CK_LOG_INFO, "slurm_reachable", CK_LOG_NO_FIELDS, "the Slurm controller answers again");
    s->sched_outage = 0;
  }
}

/* ---- reload ---- */

static int differ(const char *a, const char *b)
{
  return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

static void swap_str(char **a, char **b)
{
  char *t = *a;

  *a = *b;
  *b = t;
}

/* Where jobs run and what claims them are fixed for a run: the pool and the claims
 * were built from them. A reload keeps the running values (and says so). */
void sched_keep_cluster_settings(struct ck_conf *conf, struct ck_conf *old)
{
  if (conf->executor != old->executor || differ(conf->claims_dir, old->claims_dir) ||
      differ(conf->instance, old->instance) || conf->lease_seconds != old->lease_seconds ||
      differ(conf->slurm_options, old->slurm_options) || conf->slurm_poll != old->slurm_poll)
    ck_log(CK_LOG_WARN, "reload", CK_LOG_NO_FIELDS,
           "executor, [slurm], claims_dir, lease_seconds and instance change at the next restart");
  conf->executor = old->executor;
  conf->lease_seconds = old->lease_seconds;
  conf->slurm_poll = old->slurm_poll;
  swap_str(&conf->claims_dir, &old->claims_dir);
  swap_str(&conf->instance, &old->instance);
  swap_str(&conf->slurm_options, &old->slurm_options);
}
