/* ckpt ctl's requests to the scheduler, acted on at once (see ctl.h for the
 * protocol, control.c for the socket). */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "hmap.h"
#include "log.h"
#include "sched_int.h"


static void resume_one(void *ctx, const char *key, void *value)
{
  struct ck_sched *s = ((void **)ctx)[0];
  const struct sroot *r = ((void **)ctx)[1];
  struct cand *c = value;

  (void)key;
  if (c->root == r->id && c->paused) {
    c->paused = 0;
    sched_settle(s, c, 0);
  }
}

static void control_tree(struct ck_sched *s, int verb, const char *name, char *reply, size_t len)
{
  struct sroot *r = NULL;
  struct ck_log_fields f = { name, NULL, -1, -1, NULL, NULL, NULL, 0 };

  for (int i = 0; i < s->nroots && !r; i++)
    if (strcmp(s->roots[i].conf->name, name) == 0)
      r = &s->roots[i];
  if (r == NULL) {
    snprintf(reply, len, "error no tree [watch %s] in %s", name, s->conf->source);
    return;
  }
  r->paused = verb == CK_CTL_PAUSE;
  ck_pool_pause_tree(s->pool, r->id, r->paused); /* its jobs already queued wait too */
  ck_log(CK_LOG_INFO, r->paused ? "pause" : "resume", &f, "[watch %s] %s by ckpt ctl", name,
         r->paused ? "paused: no new job starts there; running ones finish" : "resumed");
  if (!r->paused) {
    void *ctx[2] = { s, r };
    ck_hmap_each(s->cands, resume_one, ctx);
  }
  snprintf(reply, len, "ok [watch %s] %s", name, r->paused ? "paused (running jobs finish)" : "resumed");
  sched_mark_status(s);
}

void ck_sched_control(void *ctx, int verb, const char *arg, char *reply, size_t len)
{
  struct ck_sched *s = ctx;
  char *key = NULL;
  struct cand *c;
  struct ck_log_fields f = { arg, NULL, -1, -1, NULL, NULL, NULL, 0 };

  if (s->stopping) {
    snprintf(reply, len, "error ckptd is stopping");
    return;
  }
  if (verb == CK_CTL_PAUSE || verb == CK_CTL_RESUME) {
    control_tree(s, verb, arg, reply, len);
    return;
  }
  /* a source: PREFIX, PREFIX.index, PREFIX.data-*, or an .h5 */
  c = ck_decide_classify(arg, &key) != CK_KIND_NONE ? ck_hmap_get(s->cands, key) : ck_hmap_get(s->cands, arg);
  free(key);
  if (c == NULL) {
    snprintf(reply, len, "error %s: not a checkpoint ckptd has seen in its trees (give its absolute path)", arg);
    return;
  }
  if (verb == CK_CTL_SKIP && c->checking) {
    snprintf(reply, len, "error %s: being checked now; ask again in a moment", c->key);
    return;
  }
  if (verb == CK_CTL_SKIP) {
    sched_record(s, c, CK_REC_SKIPPED, NULL, "skipped by ckpt ctl", 0); /* kept across a restart at once */
    c->skip = 1; /* before: a queued job comes back at once */
    if ((c->state == CK_ST_RUNNING || c->state == CK_ST_QUEUED) && ck_pool_cancel_src(s->pool, c->key, SIGTERM) > 0) {
      snprintf(reply, len, "ok %s: stopping its conversion; then skipped until it changes", c->key);
    } else {
      c->skip = 0;
      c->state = CK_ST_SKIPPED;
      snprintf(reply, len, "ok %s: skipped until it changes", c->key);
    }
    ck_log(CK_LOG_INFO, "skip", &f, "skipped by ckpt ctl");
    sched_mark_status(s);
    return;
  }
  if (c->state == CK_ST_RUNNING || c->state == CK_ST_QUEUED || c->checking) {
    snprintf(reply, len, "error %s: being %s now", c->key, c->checking ? "checked" : "converted");
    return;
  }
  c->force = verb == CK_CTL_RECONVERT ? CK_FORCE_RECONVERT : CK_FORCE_RETRY;
  c->attempts = 0;
  c->paused = 0;
  c->guarded = 0;
  ck_log(CK_LOG_INFO, verb == CK_CTL_RECONVERT ? "reconvert" : "retry", &f, "%s by ckpt ctl: checking it now",
         ck_ctl_verb_name(verb));
  sched_settle(s, c, 0);
  snprintf(reply, len, "ok %s: %s now (its decision is in the log)", c->key,
           verb == CK_CTL_RECONVERT ? "checking it and converting it again" : "checking it again");
}

