/* Per-tree hooks (see hook.h). */
#include "config.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "hook.h"
#include "log.h"

extern char **environ;

struct hook {
  uv_process_t proc;
  uv_timer_t timer;
  int handles;
  int timed_out;
  double started; /* loop milliseconds */
  char *what;     /* the event and source, for the log line */
};

static void closed(uv_handle_t *h)
{
  struct hook *k = h->data;

  if (--k->handles == 0) {
    free(k->what);
    free(k);
  }
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
  struct hook *k = p->data;
  struct ck_log_fields f = { k->what, NULL, -1, (long long)(uv_now(p->loop) - k->started), NULL, NULL, NULL, 0 };

  if (k->timed_out)
    ck_log(CK_LOG_WARN, "hook", &f, "hook killed after its timeout");
  else if (sig)
    ck_log(CK_LOG_WARN, "hook", &f, "hook died by signal %d", sig);
  else
    ck_log(status == 0 ? CK_LOG_INFO : CK_LOG_WARN, "hook", &f, "hook exited with status %lld", (long long)status);
  kill(-p->pid, SIGKILL); /* what it left running in the background goes with it */
  uv_close((uv_handle_t *)&k->timer, closed);
  uv_close((uv_handle_t *)p, closed);
}

static void on_timeout(uv_timer_t *t)
{
  struct hook *k = t->data;

  k->timed_out = 1;
  kill(-k->proc.pid, SIGKILL); /* its process group: the shell and what it started */
}

static int env_add(char **env, int *n, const char *key, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int env_add(char **env, int *n, const char *key, const char *fmt, ...)
{
  char value[4200];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(value, sizeof(value), fmt, ap);
  va_end(ap);
  for (char *p = value; *p; p++)
    if (*p == '\n')
      *p = ' ';
  return (env[(*n)++] = ck_asprintf("%s=%s", key, value)) ? 0 : -1;
}

int ck_hook_run(uv_loop_t *loop, const char *command, double timeout, const struct ck_hook_env *e)
{
  struct hook *k = calloc(1, sizeof(*k));
  size_t nenv = 0;
  char **env;
  int n = 0, bad = 0, rc;
  char *args[] = { "/bin/sh", "-c", (char *)command, NULL };
  uv_stdio_container_t stdio[3] = { { UV_IGNORE, { 0 } }, { UV_IGNORE, { 0 } }, { UV_IGNORE, { 0 } } };
  uv_process_options_t o = { 0 };

  while (environ[nenv])
    nenv++;
  if (k == NULL || (env = calloc(nenv + 12, sizeof(char *))) == NULL) {
    free(k);
    return UV_ENOMEM;
  }
  for (size_t i = 0; i < nenv; i++)
    if (strncmp(environ[i], "CKPTD_", 6) != 0) /* ours are set below, not inherited */
      env[n++] = strdup(environ[i]);
  bad |= env_add(env, &n, "CKPTD_EVENT", "%s", e->event) | env_add(env, &n, "CKPTD_SOURCE", "%s", e->source) |
         env_add(env, &n, "CKPTD_OUTPUT", "%s", e->output ? e->output : "") |
         env_add(env, &n, "CKPTD_DIRECTION", "%s", e->direction) | env_add(env, &n, "CKPTD_TREE", "%s", e->tree) |
         env_add(env, &n, "CKPTD_BYTES", "%llu", e->bytes) | env_add(env, &n, "CKPTD_SECONDS", "%.3f", e->seconds) |
         env_add(env, &n, "CKPTD_ERROR", "%s", e->error ? e->error : "") |
         env_add(env, &n, "CKPTD_REASON", "%s", e->reason ? e->reason : "");
  k->what = ck_asprintf("%s", e->source);
  o.file = args[0];
  o.args = args;
  o.env = env;
  o.stdio = stdio;
  o.stdio_count = 3;
  o.flags = UV_PROCESS_DETACHED; /* its own process group, killed as one at the timeout */
  o.exit_cb = on_exit_cb;
  k->proc.data = k->timer.data = k;
  rc = bad ? UV_ENOMEM : uv_spawn(loop, &k->proc, &o);
  for (int i = 0; i < n; i++)
    free(env[i]);
  free(env);
  if (rc != 0) {
    struct ck_log_fields f = { e->source, NULL, -1, -1, NULL, uv_strerror(rc), NULL, 0 };
    ck_log(CK_LOG_WARN, "hook", &f, "cannot start hook: %s", uv_strerror(rc));
    if (!bad) { /* uv_spawn failed after initialising the handle: close it */
      k->handles = 1;
      uv_close((uv_handle_t *)&k->proc, closed);
    } else {
      free(k->what);
      free(k);
    }
    return rc;
  }
  k->handles = 2;
  k->started = (double)uv_now(loop);
  uv_timer_init(loop, &k->timer);
  uv_timer_start(&k->timer, on_timeout, (uint64_t)(timeout * 1000), 0);
  return 0;
}
