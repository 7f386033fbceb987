/* Executor.
 *
 * DESIGN: a job is a child process, `ckptd --worker ...` (our own executable, found
 * with uv_exepath), spawned with uv_spawn and a pipe as its fd 3. Two FIFOs feed two
 * limits: conversions (the configured workers) and probes (a few: they are short).
 * A job ends when its process handle and both pipes are closed: the exit status says
 * how the worker ended, fd 3 holds its one result line, and whatever it printed on
 * stderr becomes log events, a line each. A worker that ends
 * without a result line crashed (libhdf5 on a hostile file, a resource limit, a
 * kill): its job fails, its temporaries (named with its pid, see ck_temp_name) are
 * removed here, and the daemon carries on. Everything runs on the loop thread. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "decide.h"
#include "pool.h"
#include "slurm.h"
#include "slurm_run.h"
#include "worker.h"

/* Bytes from a pipe, cut into lines. */
struct linebuf {
  size_t len;
  char buf[CK_WPROTO_LINE_MAX + 64];
};

struct ck_proc {
  uv_process_t process;
  uv_pipe_t pipe;      /* fd 3: the protocol */
  uv_pipe_t errpipe;   /* fd 2: anything else it prints, logged a line an event */
  struct ck_pool *pool;
  struct ck_job *job;
  int open_handles;
  int spawn_failed;    /* closing after uv_spawn failed: free, nothing to report */
  int got_result;
  int cancelled;
  int64_t exit_status;
  int term_signal;
  struct linebuf out, err;
};

struct queue {
  struct ck_job *head, *tail;
  int running, limit;
};

struct ck_pool {
  uv_loop_t *loop;
  char exe[4096];
  struct ck_pool_limits lim;
  struct queue jobs, probes;
  struct ck_job *live;   /* running jobs, through ->next */
  ck_job_done_fn fn;
  ck_job_gate_fn gate;
  char *slurm_options;
  void *ctx;
  int paused[64]; /* trees whose queued jobs wait (ckpt ctl pause) */
  int npaused;
};

static const char *dir_name(const struct ck_job *j)
{
  const char *name = j->kind == CK_WJOB_CONVERT ? ck_decide_dir_name(j->from, j->to) : NULL;

  return name ? name : j->kind == CK_WJOB_PROBE ? "probe" : "?";
}

void ck_job_free(struct ck_job *job)
{
  if (job == NULL)
    return;
  for (size_t i = 0; i < job->opts.nrules; i++)
    free((char *)job->rules[i].pattern);
  free(job->src);
  free(job->dst);
  free(job);
}

static struct queue *queue_of(struct ck_pool *p, const struct ck_job *j)
{
  return j->kind == CK_WJOB_PROBE ? &p->probes : &p->jobs;
}

static void push(struct queue *q, struct ck_job *j)
{
  j->next = NULL;
  if (q->tail)
    q->tail->next = j;
  else
    q->head = j;
  q->tail = j;
}

static struct ck_job *pop(struct queue *q)
{
  struct ck_job *j = q->head;

  if (j) {
    q->head = j->next;
    if (q->head == NULL)
      q->tail = NULL;
    j->next = NULL;
  }
  return j;
}

static void live_remove(struct ck_pool *p, struct ck_job *j)
{
  for (struct ck_job **pp = &p->live; *pp; pp = &(*pp)->next)
    if (*pp == j) {
      *pp = j->next;
      break;
    }
  j->next = NULL;
}

/* Remove what a dead worker left: temporaries carry their creator's instance and
 * pid, so only files that this worker created match. */
static void remove_temporaries(const char *dst, int pid)
{
  char *dir = ck_dirname(dst);
  int n = dir ? ck_temp_remove_pid(dir, ck_temp_instance(), pid) : 0;

  if (n > 0) {
    struct ck_log_fields f = { dir, NULL, -1, -1, NULL, NULL, NULL, 0 };
    ck_log(CK_LOG_INFO, "cleanup", &f, "removed %d temporar%s of worker %d", n, n == 1 ? "y" : "ies", pid);
  }
  free(dir);
}

static void apply_line(struct ck_proc *c, const char *line)
{
  struct ck_job *j = c->job;
  struct ck_wmsg m;

  if (ck_wmsg_parse(line, &m) != 0)
    return;
  switch (m.type) {
  case CK_WMSG_PROGRESS:
    j->done_bytes = m.done;
    j->total_bytes = m.total;
    return;
  case CK_WMSG_DONE:
    j->rc = 0;
    j->st.tensors = m.tensors;
    j->st.bytes = m.bytes;
    j->st.seconds = m.seconds;
    j->st.skipped = (size_t)m.skipped;
    break;
  case CK_WMSG_FAIL:
    j->rc = m.code;
    snprintf(j->err, sizeof(j->err), "%s", m.text);
    break;
  case CK_WMSG_SLURM: {
    struct ck_log_fields f = { j->src, dir_name(j), -1, -1, j->dst, NULL, NULL, m.slurm_job };
    j->slurm_job = m.slurm_job;
    ck_log(CK_LOG_INFO, "job_start", &f, "converting %s as slurm job %llu", j->src, (unsigned long long)m.slurm_job);
    return;
  }
  case CK_WMSG_NOTE: {
    struct ck_log_fields f = { j->src, NULL, -1, -1, j->dst, NULL, NULL, 0 };
    ck_log(CK_LOG_INFO, "checkpoint_file", &f, "%s", m.text);
    return;
  }
  case CK_WMSG_PROBE:
    j->rc = 0;
    j->verdict = m.verdict;
    j->probe_ours = m.ours;
    j->probe_size = m.size;
    j->probe_mtime_ns = m.mtime_ns;
    snprintf(j->err, sizeof(j->err), "%s", m.text);
    break;
  }
  c->got_result = 1;
}

static struct linebuf *linebuf_of(struct ck_proc *c, const uv_handle_t *h)
{
  return h == (const uv_handle_t *)&c->pipe ? &c->out : &c->err;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  struct linebuf *b = linebuf_of(h->data, h);

  (void)suggested;
  buf->base = b->buf + b->len;
  buf->len = sizeof(b->buf) - b->len;
}

/* A line a worker wrote on its stderr (libhdf5, a sanitizer, the C library): one
 * log event each, so the log stays one key=value line per event. */
static void log_stray(struct ck_proc *c, const char *line)
{
  struct ck_log_fields f = { c->job->src, NULL, -1, -1, NULL, NULL, NULL, 0 };

  if (line[0])
    ck_log(CK_LOG_WARN, "worker_output", &f, "worker %d: %s", c->job->pid, line);
}

static void on_close(uv_handle_t *h);

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
  struct ck_proc *c = s->data;
  struct linebuf *b = linebuf_of(c, (uv_handle_t *)s);
  int proto = b == &c->out;
  char *nl;

  (void)buf;
  if (n < 0) {
    if (b->len > 0 && !proto) { /* a last line without its newline */
      b->buf[b->len < sizeof(b->buf) ? b->len : sizeof(b->buf) - 1] = 0;
      log_stray(c, b->buf);
    }
    uv_close((uv_handle_t *)s, on_close);
    return;
  }
  b->len += (size_t)n;
  while ((nl = memchr(b->buf, '\n', b->len)) != NULL) {
    *nl = 0;
    if (proto)
      apply_line(c, b->buf);
    else
      log_stray(c, b->buf);
    b->len -= (size_t)(nl + 1 - b->buf);
    memmove(b->buf, nl + 1, b->len);
  }
  if (b->len == sizeof(b->buf)) { /* an overlong line: the protocol never writes one */
    if (!proto) {
      b->buf[b->len - 1] = 0;
      log_stray(c, b->buf);
    }
    b->len = 0;
  }
}

static void start_next(struct ck_pool *p);

static int slurm_supervised(const struct ck_pool *p, const struct ck_job *j)
{
  return p->lim.executor == CK_EXEC_SLURM && j->kind == CK_WJOB_CONVERT;
}

static void scancel_closed(uv_handle_t *h)
{
  free(h);
}

static void scancel_exit(uv_process_t *proc, int64_t status, int sig)
{
  (void)status;
  (void)sig;
  uv_close((uv_handle_t *)proc, scancel_closed);
}

/* Cancel a job whose supervisor is gone (fire and forget: a log line says so). */
static void scancel(struct ck_pool *p, const struct ck_job *j)
{
  uv_process_t *proc;
  uv_process_options_t o = { 0 };
  uv_stdio_container_t stdio[3] = { { UV_IGNORE, { 0 } }, { UV_IGNORE, { 0 } }, { UV_IGNORE, { 0 } } };
  char id[32], *args[] = { "scancel", id, NULL };
  struct ck_log_fields f = { j->src, dir_name(j), -1, -1, j->dst, NULL, NULL, j->slurm_job };

  if (j->slurm_job == 0 || (proc = calloc(1, sizeof(*proc))) == NULL)
    return;
  snprintf(id, sizeof(id), "%llu", (unsigned long long)j->slurm_job);
  o.file = "scancel";
  o.args = args;
  o.stdio = stdio;
  o.stdio_count = 3;
  o.exit_cb = scancel_exit;
  if (uv_spawn(p->loop, proc, &o) != 0) {
    uv_close((uv_handle_t *)proc, scancel_closed);
    return;
  }
  ck_log(CK_LOG_WARN, "slurm_cancel", &f, "its supervisor died: scancel %s", id);
}

/* Both handles closed: the job's outcome is known. */
static void finish(struct ck_proc *c)
{
  struct ck_pool *p = c->pool;
  struct ck_job *j = c->job;

  if (!c->got_result) {
    if (c->cancelled) {
      j->rc = -ECANCELED;
      snprintf(j->err, sizeof(j->err), "aborted");
    } else if (slurm_supervised(p, j) && (c->term_signal || c->exit_status != CK_SLURM_EXIT_CRASHED)) {
      /* the supervisor itself died (killed, or out of memory): its job must not run on
       * unwatched; nothing says the file is bad, so it is retried */
      scancel(p, j);
      j->rc = CK_ESCHED;
      snprintf(j->err, sizeof(j->err), "the Slurm supervisor (pid %d) ended without a result (%s %d)%s", j->pid,
               c->term_signal ? "signal" : "status", c->term_signal ? c->term_signal : (int)c->exit_status,
               j->slurm_job ? ": its job was cancelled" : "");
    } else {
      /* no result line: it crashed (a signal, or a sanitizer's or libhdf5's own exit) */
      char how[64];
      if (c->term_signal)
        snprintf(how, sizeof(how), "died by signal %d (%s)", c->term_signal, strsignal(c->term_signal));
      else
        snprintf(how, sizeof(how), "exited with status %lld and no result", (long long)c->exit_status);
      j->rc = CK_EFORMAT;
      j->crashed = 1;
      snprintf(j->err, sizeof(j->err), "%s: the worker (pid %d) %s %s it: treated as a corrupt file", j->src, j->pid,
               how, j->kind == CK_WJOB_PROBE ? "while probing" : "while converting");
    }
    if (j->dst)
      remove_temporaries(j->dst, j->pid);
  } else if (c->cancelled && j->rc != 0) {
    j->rc = -ECANCELED;
  }
  queue_of(p, j)->running--;
  live_remove(p, j);
  j->proc = NULL;
  free(c);
  p->fn(p->ctx, j);
  start_next(p);
}

static void on_close(uv_handle_t *h)
{
  struct ck_proc *c = h->data;

  if (--c->open_handles == 0) {
    if (c->spawn_failed)
      free(c);
    else
      finish(c);
  }
}

static void on_exit_cb(uv_process_t *proc, int64_t status, int sig)
{
  struct ck_proc *c = proc->data;

  c->exit_status = status;
  c->term_signal = sig;
  uv_close((uv_handle_t *)proc, on_close);
}

/* The supervisor's command line around the worker's: `EXE --slurm-job ... -- ARGV`.
 * Takes argv. */
static char **slurm_argv(struct ck_pool *p, const struct ck_job *j, char **argv)
{
  char **v = NULL;
  int n = 0, k = 0;

  while (argv[n])
    n++;
  if ((v = calloc((size_t)n + 12, sizeof(char *))) == NULL)
    goto out;
  v[k++] = strdup(p->exe);
  v[k++] = strdup("--slurm-job");
  v[k++] = strdup("--poll");
  v[k++] = ck_asprintf("%g", p->lim.slurm_poll > 0 ? p->lim.slurm_poll : 5);
  v[k++] = strdup("--mem-mb");
  v[k++] = ck_asprintf("%llu", (unsigned long long)ck_slurm_mem_mb(j->opts.buffer_size));
  v[k++] = strdup("--cpus");
  v[k++] = ck_asprintf("%d", j->opts.threads > 0 ? j->opts.threads : 1);
  if (p->slurm_options) {
    v[k++] = strdup("--options");
    v[k++] = strdup(p->slurm_options);
  }
  v[k++] = strdup("--");
  for (int i = 0; i < n; i++)
    v[k + i] = argv[i], argv[i] = NULL;
  for (int i = 0; i < k; i++)
    if (v[i] == NULL) {
      for (int m = 0; m < k + n; m++)
        free(v[m]);
      free(v);
      v = NULL;
      break;
    }
out:
  ck_strv_free(argv);
  return v;
}

static int spawn(struct ck_pool *p, struct ck_job *j)
{
  struct ck_wjob w = { .kind = j->kind, .from = j->from, .to = j->to, .src = j->src, .dst = j->dst, .opts = j->opts,
                       .ckpt_policy = j->ckpt_policy, .require_success = j->require_success, .mem_limit = p->lim.mem_bytes, .cpu_limit = p->lim.cpu_seconds,
                       .min_free = j->min_free };
  struct ck_proc *c = calloc(1, sizeof(*c));
  uv_stdio_container_t stdio[4];
  uv_process_options_t o = { 0 };
  char **argv = ck_wjob_argv(p->exe, &w);
  int rc = -ENOMEM;

  if (c == NULL || argv == NULL)
    goto out;
  if (slurm_supervised(p, j) && (argv = slurm_argv(p, j, argv)) == NULL)
    goto out;
  c->pool = p;
  c->job = j;
  uv_pipe_init(p->loop, &c->pipe, 0);
  uv_pipe_init(p->loop, &c->errpipe, 0);
  c->pipe.data = c->errpipe.data = c->process.data = c;
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = UV_IGNORE;
  stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[2].data.stream = (uv_stream_t *)&c->errpipe;
  stdio[3].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[3].data.stream = (uv_stream_t *)&c->pipe;
  o.file = p->exe;
  o.args = argv;
  o.stdio = stdio;
  o.stdio_count = 4;
  o.exit_cb = on_exit_cb;
  if ((rc = uv_spawn(p->loop, &c->process, &o)) != 0) {
    c->open_handles = 3; /* every handle must close before c goes */
    c->spawn_failed = 1;
    uv_close((uv_handle_t *)&c->process, on_close);
    uv_close((uv_handle_t *)&c->pipe, on_close);
    uv_close((uv_handle_t *)&c->errpipe, on_close);
    c = NULL;
    goto out;
  }
  c->open_handles = 3;
  j->pid = c->process.pid;
  j->started = uv_now(p->loop) / 1000.0; /* running from now (it was queued before) */
  j->proc = c;
  uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
  uv_read_start((uv_stream_t *)&c->errpipe, on_alloc, on_read);
  c = NULL;
out:
  free(c);
  ck_strv_free(argv);
  return rc;
}

/* The next conversion to start (ck_decide_pick: priority, per-tree workers), taken
 * off the queue; NULL if none may start now. Probes go in order. */
static struct ck_job *take(struct ck_pool *p, struct queue *q)
{
  struct ck_pickable *v;
  struct ck_job **pp, *prev = NULL, *j;
  int n = 0, best;

  if (q == &p->probes)
    return pop(q);
  for (j = q->head; j; j = j->next)
    n++;
  if ((v = calloc((size_t)n + 1, sizeof(*v))) == NULL)
    return pop(q);
  n = 0;
  for (j = q->head; j; j = j->next, n++) {
    v[n] = (struct ck_pickable){ j->priority, 0, j->tree_limit, 0 };
    for (int k = 0; k < p->npaused; k++)
      v[n].paused |= p->paused[k] == j->tree;
    for (const struct ck_job *l = p->live; l; l = l->next)
      v[n].tree_running += l->kind == CK_WJOB_CONVERT && l->tree == j->tree;
  }
  best = ck_decide_pick(v, n);
  free(v);
  if (best < 0)
    return NULL;
  for (pp = &q->head, n = 0; n < best; n++) {
    prev = *pp;
    pp = &(*pp)->next;
  }
  j = *pp;
  *pp = j->next;
  if (q->tail == j)
    q->tail = prev;
  j->next = NULL;
  return j;
}

static void start_next(struct ck_pool *p)
{
  struct queue *qs[2] = { &p->probes, &p->jobs };

  for (int i = 0; i < 2; i++) {
    struct queue *q = qs[i];
    struct ck_job *j;
    while (q->running < q->limit && q->head && (j = take(p, q)) != NULL) {
      struct ck_log_fields f = { j->src, dir_name(j), -1, -1, j->dst, NULL, NULL, 0 };
      int rc;
      if (j->kind == CK_WJOB_CONVERT && p->gate && (rc = p->gate(p->ctx, j)) != 0) {
        j->rc = rc; /* not ours to run now (another instance holds it): back, unstarted */
        p->fn(p->ctx, j);
        continue;
      }
      rc = spawn(p, j);
      if (rc != 0) {
        j->rc = rc;
        snprintf(j->err, sizeof(j->err), "cannot start a worker (%.300s): %s", p->exe, uv_strerror(rc));
        p->fn(p->ctx, j);
        continue;
      }
      q->running++;
      j->next = p->live;
      p->live = j;
      if (j->kind == CK_WJOB_CONVERT && !slurm_supervised(p, j)) /* Slurm's: when submitted */
        ck_log(CK_LOG_INFO, "job_start", &f, "converting %s (worker pid %d)", j->src, j->pid);
    }
  }
}

int ck_pool_start(uv_loop_t *loop, int nworkers, int nprobes, const struct ck_pool_limits *lim, ck_job_done_fn done,
                  void *ctx, struct ck_pool **out)
{
  struct ck_pool *p = calloc(1, sizeof(*p));
  size_t len;
  int rc;

  *out = NULL;
  if (p == NULL)
    return -ENOMEM;
  len = sizeof(p->exe);
  if ((rc = uv_exepath(p->exe, &len)) != 0) {
    free(p);
    return rc;
  }
  p->loop = loop;
  p->jobs.limit = nworkers > 0 ? nworkers : 1;
  p->probes.limit = nprobes > 0 ? nprobes : 1;
  if (lim) {
    p->lim = *lim;
    p->slurm_options = lim->slurm_options ? strdup(lim->slurm_options) : NULL;
    p->lim.slurm_options = NULL;
  }
  p->fn = done;
  p->ctx = ctx;
  *out = p;
  return 0;
}

void ck_pool_submit(struct ck_pool *p, struct ck_job *job)
{
  job->started = uv_now(p->loop) / 1000.0;
  push(queue_of(p, job), job);
  start_next(p);
}

void ck_pool_each_running(struct ck_pool *p, ck_job_view_fn fn, void *ctx)
{
  double now = uv_now(p->loop) / 1000.0;

  for (const struct ck_job *j = p->live; j; j = j->next)
    if (j->kind == CK_WJOB_CONVERT)
      fn(ctx, j, now - j->started);
}

int ck_pool_queued(struct ck_pool *p)
{
  int n = 0;

  for (struct ck_job *j = p->jobs.head; j; j = j->next)
    n++;
  return n;
}

int ck_pool_running(struct ck_pool *p)
{
  return p->jobs.running;
}

int ck_pool_children(struct ck_pool *p)
{
  return p->jobs.running + p->probes.running;
}

void ck_pool_drop_queued(struct ck_pool *p)
{
  struct queue *qs[2] = { &p->probes, &p->jobs };

  for (int i = 0; i < 2; i++) {
    struct ck_job *j;
    while ((j = pop(qs[i])) != NULL) {
      j->rc = -ECANCELED;
      snprintf(j->err, sizeof(j->err), "not started before shutdown");
      p->fn(p->ctx, j);
    }
  }
}

void ck_pool_cancel_running(struct ck_pool *p, int sig)
{
  for (struct ck_job *j = p->live; j; j = j->next)
    if (j->proc) {
      j->proc->cancelled = 1;
      uv_process_kill(&j->proc->process, sig);
    }
}

void ck_pool_pause_tree(struct ck_pool *p, int tree, int paused)
{
  int k = 0;

  while (k < p->npaused && p->paused[k] != tree)
    k++;
  if (paused && k == p->npaused && p->npaused < (int)(sizeof(p->paused) / sizeof(p->paused[0])))
    p->paused[p->npaused++] = tree;
  else if (!paused && k < p->npaused)
    p->paused[k] = p->paused[--p->npaused];
  if (!paused)
    start_next(p); /* its queued jobs may go now */
}

int ck_pool_cancel_src(struct ck_pool *p, const char *src, int sig)
{
  struct ck_job **pp = &p->jobs.head, *prev = NULL;
  int n = 0;

  while (*pp) { /* not started yet: handed back at once */
    struct ck_job *j = *pp;
    if (strcmp(j->src, src) != 0) {
      prev = j;
      pp = &j->next;
      continue;
    }
    *pp = j->next;
    if (p->jobs.tail == j)
      p->jobs.tail = prev;
    j->next = NULL;
    j->rc = -ECANCELED;
    snprintf(j->err, sizeof(j->err), "cancelled before it started");
    p->fn(p->ctx, j);
    n++;
  }

  for (struct ck_job *j = p->live; j; j = j->next)
    if (j->proc && j->kind == CK_WJOB_CONVERT && strcmp(j->src, src) == 0) {
      j->proc->cancelled = 1;
      uv_process_kill(&j->proc->process, sig);
      n++;
    }
  return n;
}

void ck_pool_set_gate(struct ck_pool *p, ck_job_gate_fn gate)
{
  p->gate = gate;
}

void ck_pool_stop(struct ck_pool *p)
{
  if (p)
    free(p->slurm_options);
  free(p);
}
