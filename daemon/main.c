/* ckptd: watches model_dir trees and converts every new, complete checkpoint once.
 * main() brings the modules up in order (configuration, logging, record, scheduler,
 * executor, watcher, signals, systemd notification) and takes them down in reverse:
 * SIGTERM stops the scheduler's intake, closes the watcher, lets the executor drain,
 * and the loop ends when the last handle has closed. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "conf.h"
#include "control.h"
#include "h5.h"
#include "fileio.h"
#include "log.h"
#include "pool.h"
#include "record.h"
#include "sched.h"
#include "watch.h"
#include "slurm_run.h"
#include "worker.h"

#define PROBES 2 /* HDF5 probes running at once, beside the conversions */

struct daemon {
  uv_loop_t *loop;
  const char *config_path;
  struct ck_record *rec;
  struct ck_sched *sched;
  struct ck_pool *pool;
  struct ck_watch *watch;
  struct ck_control *control;
  uv_signal_t sighup, sigterm, sigint;
  uv_timer_t watchdog, notify_timer;
  int stopping;
  int flags; /* CK_SCHED_ONCE, CK_SCHED_DRY_RUN */
};

static void notify(const char *state)
{
#ifdef HAVE_SYSTEMD
  sd_notify(0, state);
#else
  (void)state;
#endif
}

static void notify_status(struct daemon *d)
{
  char line[300], msg[340];

  ck_sched_status_line(d->sched, line, sizeof(line));
  snprintf(msg, sizeof(msg), "STATUS=%s", line);
  notify(msg);
}

static void usage(FILE *f)
{
  fprintf(f,
          "usage: ckptd [--config FILE] [--once | --dry-run] [--check-config] [--version] [--help]\n"
          "\n"
          "Watch model_dir trees and convert every new, complete checkpoint between TensorFlow\n"
          "Saver and HDF5 formats once. Runs in the foreground (systemd starts it).\n"
          "\n"
          "  -c, --config FILE   configuration (default: the built-in one, which watches\n"
          "                      ./var/model_dir in both directions, state in ./var/state)\n"
          "  -1, --once          convert what is complete now, then exit (for cron, Slurm\n"
          "                      epilogs, CI): 0 if everything converted, 1 if something\n"
          "                      failed, was blocked or held back\n"
          "  -N, --dry-run       print what --once would do, convert and write nothing (runs\n"
          "                      beside a live ckptd: its record is read, not locked)\n"
          "  -n, --check-config  parse the configuration, print it, and exit (0 ok, 2 bad)\n"
          "  -V, --version       print the version\n"
          "  -h, --help          this text\n"
          "\n"
          "Signals: SIGHUP reloads the configuration (a bad one is refused and the running\n"
          "one kept); SIGTERM stops intake, lets running conversions finish within\n"
          "stop_timeout, aborts the rest cleanly and exits 0. See conf/ckptd.ini.\n");
}

static int load(const char *path, struct ck_conf *c, struct ck_err *err)
{
  return path ? ck_conf_load(path, c, err) : ck_conf_default(c, err);
}

static void log_warnings(const struct ck_conf *c)
{
  char *copy = c->warnings ? strdup(c->warnings) : NULL, *save = NULL;

  for (char *l = copy ? strtok_r(copy, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
    struct ck_log_fields f = { c->source, NULL, -1, -1, NULL, NULL, NULL, 0 };
    ck_log(CK_LOG_WARN, "config", &f, "%s", l);
  }
  free(copy);
}

static void on_hup(uv_signal_t *h, int sig)
{
  struct daemon *d = h->data;
  struct ck_conf *c = calloc(1, sizeof(*c));
  struct ck_err err = { 0 };
  char mono[64];
  struct timespec ts;

  (void)sig;
  if (d->stopping || c == NULL)
    return free(c);
  clock_gettime(CLOCK_MONOTONIC, &ts);
  snprintf(mono, sizeof(mono), "RELOADING=1\nMONOTONIC_USEC=%llu",
           (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
  notify(mono);
  if (load(d->config_path, c, &err) != 0) {
    struct ck_log_fields f = { d->config_path, NULL, -1, -1, NULL, err.msg, NULL, 0 };
    ck_log(CK_LOG_ERROR, "reload_failed", &f, "configuration not reloaded, the running one is kept: %s", err.msg);
    free(c);
  } else {
    ck_log(CK_LOG_INFO, "reload", CK_LOG_NO_FIELDS, "configuration reloaded from %s", c->source);
    log_warnings(c);
    ck_sched_reload(d->sched, c);
  }
  notify("READY=1");
  notify_status(d);
}

static void stopped(void *ctx)
{
  struct daemon *d = ctx;

  ck_log(CK_LOG_INFO, "stop", CK_LOG_NO_FIELDS, "stopped");
  uv_close((uv_handle_t *)&d->sighup, NULL);
  uv_close((uv_handle_t *)&d->sigterm, NULL);
  uv_close((uv_handle_t *)&d->sigint, NULL);
  uv_close((uv_handle_t *)&d->watchdog, NULL);
  uv_close((uv_handle_t *)&d->notify_timer, NULL);
  ck_sched_close_handles(d->sched);
}

static void on_term(uv_signal_t *h, int sig)
{
  struct daemon *d = h->data;

  if (d->stopping)
    return;
  d->stopping = 1;
  notify("STOPPING=1");
  ck_log(CK_LOG_INFO, "stop", CK_LOG_NO_FIELDS, "%s: stopping intake, letting running conversions finish",
         sig == SIGTERM ? "SIGTERM" : "SIGINT");
  ck_control_close(d->control); /* started last, closed first */
  d->control = NULL;
  ck_sched_shutdown(d->sched, stopped, d); /* may call stopped() at once */
  ck_watch_close(d->watch);
  d->watch = NULL;
}

/* --once: nothing left to do; stop as SIGTERM would (nothing is running). */
static void once_done(void *ctx)
{
  struct daemon *d = ctx;

  d->stopping = 1;
  ck_sched_shutdown(d->sched, stopped, d);
  ck_watch_close(d->watch);
  d->watch = NULL;
}

/* Record, scheduler, executor, watcher, in this order; on failure what was brought
 * up goes down in reverse. Takes conf (the scheduler owns it, or it is freed here). */
static int start(struct daemon *d, struct ck_conf *conf, struct ck_err *err)
{
  struct ck_pool_limits limits = { conf->worker_memory_limit, conf->worker_cpu_limit, conf->executor,
                                   conf->slurm_options, conf->slurm_poll };
  char host[256] = "", *real = NULL, *what = NULL;
  int rc;

  if ((rc = (d->flags & CK_SCHED_DRY_RUN ? ck_record_open_readonly : ck_record_open)(conf->state_dir, &d->rec, err)) != 0)
    goto out;
  if (ck_record_damaged(d->rec))
    ck_log(CK_LOG_WARN, "record", CK_LOG_NO_FIELDS, "skipped %d damaged record line(s) (an interrupted write)",
           ck_record_damaged(d->rec));
  /* temporaries name their instance: this host and the state_dir it holds */
  gethostname(host, sizeof(host) - 1);
  real = realpath(conf->state_dir, NULL);
  what = ck_asprintf("%s\n%s", host, real ? real : conf->state_dir);
  ck_temp_set_instance(what ? what : host);
  if ((d->sched = ck_sched_new(d->loop, conf, d->rec, d->flags)) == NULL) {
    rc = ck_err_set(err, -ENOMEM, "out of memory");
    goto out;
  }
  conf = NULL; /* the scheduler's now */
  if ((rc = ck_pool_start(d->loop, ck_sched_conf(d->sched)->workers, PROBES, &limits, ck_sched_job_done, d->sched,
                          &d->pool)) != 0 ||
      (rc = ck_watch_init(d->loop, ck_sched_on_file, d->sched, &d->watch)) != 0) {
    rc = ck_err_set(err, rc, "cannot start workers or inotify: %s", uv_strerror(rc));
    goto out;
  }
  if (d->flags & CK_SCHED_ONCE)
    ck_sched_when_idle(d->sched, once_done, d);
  ck_sched_run(d->sched, d->pool, d->watch);
  if (!(d->flags & CK_SCHED_ONCE)) {
    const struct ck_conf *c = ck_sched_conf(d->sched);
    struct ck_err cerr = { 0 };
    struct ck_log_fields f = { c->control_socket, NULL, -1, -1, NULL, NULL, NULL, 0 };
    if (ck_control_start(d->loop, c->control_socket, c->control_group, ck_sched_control, d->sched, &d->control,
                         &cerr) != 0)
      ck_log(CK_LOG_WARN, "control", &f, "no control socket (ckpt ctl will not reach this ckptd): %s", cerr.msg);
    else
      ck_log(CK_LOG_INFO, "control", &f, "ckpt ctl listens here");
  }
out:
  if (rc != 0) {
    if (d->sched) {
      ck_sched_close_handles(d->sched);
      uv_run(d->loop, UV_RUN_NOWAIT);
    }
    ck_pool_stop(d->pool);
    ck_sched_free(d->sched);
    ck_record_close(d->rec);
    if (conf) {
      ck_conf_free(conf);
      free(conf);
    }
  }
  free(what);
  free(real);
  return rc;
}

static void on_watchdog(uv_timer_t *t)
{
  (void)t;
  notify("WATCHDOG=1");
}

static void on_notify(uv_timer_t *t)
{
  notify_status(t->data);
}

int main(int argc, char **argv)
{
  static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
                                        { "once", no_argument, NULL, '1' },
                                        { "dry-run", no_argument, NULL, 'N' },
                                        { "check-config", no_argument, NULL, 'n' },
                                        { "version", no_argument, NULL, 'V' },
                                        { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
  struct daemon d = { 0 };
  struct ck_conf *conf = calloc(1, sizeof(*conf));
  int check_only = 0, o, rc;
  struct ck_err err = { 0 };
  uint64_t wd_usec = 0;

  if (argc > 1 && strcmp(argv[1], "--worker") == 0) { /* a job's child process */
    free(conf);
    return ck_worker_main(argc - 2, argv + 2);
  }
  if (argc > 1 && strcmp(argv[1], "--slurm-job") == 0) { /* a conversion run by Slurm */
    free(conf);
    return ck_slurm_run_main(argc - 2, argv + 2);
  }
  while ((o = getopt_long(argc, argv, "c:1NnVh", opts, NULL)) != -1) {
    switch (o) {
    case 'c': d.config_path = optarg; break;
    case '1': d.flags |= CK_SCHED_ONCE; break;
    case 'N': d.flags |= CK_SCHED_DRY_RUN | CK_SCHED_ONCE; break;
    case 'n': check_only = 1; break;
    case 'V': printf("ckptd %s\n", PACKAGE_VERSION); free(conf); return 0;
    case 'h': usage(stdout); free(conf); return 0;
    default: usage(stderr); free(conf); return 2;
    }
  }
  if (optind != argc) {
    usage(stderr);
    free(conf);
    return 2;
  }
  if (load(d.config_path, conf, &err) != 0) {
    fprintf(stderr, "ckptd: %s\n", err.msg);
    free(conf);
    return 2;
  }
  if (check_only) {
    if (conf->warnings)
      fprintf(stderr, "%s", conf->warnings); /* "FILE:LINE: ..." lines */
    ck_conf_print(conf);
    ck_conf_free(conf);
    free(conf);
    return 0;
  }
  ck_log_init(conf->log_level);
  log_warnings(conf);
  ck_h5_init();
  signal(SIGPIPE, SIG_IGN);
  signal(SIGXFSZ, SIG_IGN); /* a file size limit is a failed job, not a dead daemon */
  d.loop = uv_default_loop();
  ck_log(CK_LOG_INFO, "start", CK_LOG_NO_FIELDS, "ckptd %s starting with %s (%d workers, %d tree(s))",
         PACKAGE_VERSION, conf->source, conf->workers, conf->nwatches);
  if ((rc = start(&d, conf, &err)) != 0) {
    ck_log(CK_LOG_ERROR, "error", CK_LOG_NO_FIELDS, "cannot start: %s", err.msg);
    return rc == -EBUSY ? 2 : 1;
  }
  uv_signal_init(d.loop, &d.sighup);
  uv_signal_init(d.loop, &d.sigterm);
  uv_signal_init(d.loop, &d.sigint);
  d.sighup.data = d.sigterm.data = d.sigint.data = &d;
  uv_signal_start(&d.sighup, on_hup, SIGHUP);
  uv_signal_start(&d.sigterm, on_term, SIGTERM);
  uv_signal_start(&d.sigint, on_term, SIGINT);
  uv_timer_init(d.loop, &d.watchdog);
  uv_timer_init(d.loop, &d.notify_timer);
  d.notify_timer.data = &d;
#ifdef HAVE_SYSTEMD
  if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec > 0)
    uv_timer_start(&d.watchdog, on_watchdog, wd_usec / 2000, wd_usec / 2000);
#endif
  (void)wd_usec;
  uv_timer_start(&d.notify_timer, on_notify, 2000, 2000);
  notify("READY=1");
  notify_status(&d);
  uv_run(d.loop, UV_RUN_DEFAULT);
  if (d.flags & CK_SCHED_ONCE) {
    const struct ck_once *run = ck_sched_once(d.sched);
    printf("%s: %d %sconverted, %d failed or blocked, %d not complete, %d held back by the disk guard\n",
           d.flags & CK_SCHED_DRY_RUN ? "dry run" : "once", run->converted,
           d.flags & CK_SCHED_DRY_RUN ? "to be " : "", run->failed, run->not_complete, run->held);
    rc = run->failed || run->held ? 1 : 0;
  }
  ck_pool_stop(d.pool);
  ck_sched_free(d.sched);
  ck_record_close(d.rec);
  uv_loop_close(d.loop);
  return rc;
}
